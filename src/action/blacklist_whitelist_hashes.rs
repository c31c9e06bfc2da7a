//! Action 1 · SentinelOne Blacklist or Whitelist Hashes (`sentinelone-blacklist-whitelist-hashes`).
//!
//! For every hash, every selected OS and every scope (the global scope, or each configured
//! account, site or group: [`configured_scopes`]), the hash must end up on the chosen list.
//! Existing entries are found first with the batched look-up, one per configured scope, which
//! reads exactly that scope and the scopes above it (`includeParents`); one POST is sent per
//! missing (hash, OS, scope) — the list endpoints take a single entry per request. A hash
//! already on the list at a wider scope (the global scope covers every account, an account its
//! sites and groups, a site its groups) is covered there: nothing is added, and the detail says
//! which scope covers it. A POST answered "Already Exists" (4000030), as when a concurrent
//! run added the entry, counts as success, so the action is idempotent.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::hash_list::{
    HashList, ListEntry, Lookup, LookupScope, ScopeKind, ScopeRef, configured_scopes, entries,
};
use super::{Action, Reply, RunContext, TargetId, Tense, Write};
use crate::error::Failure;
use crate::indicator::IndicatorType;
use crate::result::AddedAttribute;

/// SentinelOne's error code for an entry that is already on the list.
const ALREADY_EXISTS: i64 = 4_000_030;

/// Where the `source` of entries made by this bundle says they came from.
const SOURCE: &str = "ThreatQ";

pub struct BlacklistWhitelistHashes;

/// Parameters of action 1.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Description given to the SentinelOne entries.
    pub description: String,
    /// Which list.
    pub list: HashList,
    /// Site scope; empty for the global scope.
    pub site_ids: Option<Vec<String>>,
    /// Account scope.
    pub account_ids: Option<Vec<String>>,
    /// Group scope.
    pub group_ids: Option<Vec<String>>,
    /// Which scope entries are written to (default: the kind of ids given, else global).
    pub scope: Option<ScopeKind>,
    /// One entry per OS selected.
    pub os_type: Vec<OsType>,
}

/// The OS choices of the configuration page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum OsType {
    #[serde(rename = "Legacy Windows")]
    LegacyWindows,
    Windows,
    Mac,
    Linux,
}

impl OsType {
    /// SentinelOne's `osType`.
    pub fn api_value(self) -> &'static str {
        match self {
            Self::LegacyWindows => "windows_legacy",
            Self::Windows => "windows",
            Self::Mac => "macos",
            Self::Linux => "linux",
        }
    }
}

/// One entry that must exist: a target's hash for one OS in one scope.
struct Slot {
    target: TargetId,
    os: OsType,
    scope: ScopeRef,
}

impl Params {
    /// The scopes written to ([`configured_scopes`]).
    fn scopes(&self) -> Result<Vec<ScopeRef>, Failure> {
        configured_scopes(
            self.scope,
            self.account_ids.as_deref(),
            self.site_ids.as_deref(),
            self.group_ids.as_deref(),
        )
    }

    fn attribute_name(&self) -> &'static str {
        match self.list {
            HashList::Blacklist => "Blacklisted in SentinelOne",
            HashList::Whitelist => "Whitelisted in SentinelOne",
        }
    }

    fn body(&self, kind: IndicatorType, hash: &str, os: OsType, scope: &ScopeRef) -> Value {
        let filter = scope.write_filter();
        let mut data = json!({
            "type": self.list.entry_type(),
            "osType": os.api_value(),
            "description": self.description,
            "source": SOURCE,
        });
        let key = if kind == IndicatorType::Sha256 {
            "sha256Value"
        } else {
            "value"
        };
        data[key] = json!(hash);
        json!({ "filter": filter, "data": data })
    }
}

/// How an entry of the look-up of `scope` stands to a slot of that scope.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cover {
    /// The entry is the slot's own.
    Present,
    /// The entry is in a wider scope (named), which covers the slot's.
    Wider(ScopeRef),
}

/// Whether `entry`, found by the look-up of `scope` (that scope and those above it), covers
/// the slot (`os`, `scope`), and how. An entry in a narrower or another scope never does.
fn covers(entry: &ListEntry, os: OsType, scope: &ScopeRef) -> Option<Cover> {
    if entry.os_type != os.api_value() {
        return None;
    }
    if entry.scope == *scope {
        return Some(Cover::Present);
    }
    // The look-up returned it as a parent: a wider kind (global < account < site < group).
    let rank = |scope: &ScopeRef| match scope {
        ScopeRef::Global => 0,
        ScopeRef::Account(_) => 1,
        ScopeRef::Site(_) => 2,
        ScopeRef::Group(_) => 3,
    };
    (rank(&entry.scope) < rank(scope)).then(|| Cover::Wider(entry.scope.clone()))
}

impl Action for BlacklistWhitelistHashes {
    type Params = Params;

    fn accepts(params: &Params, kind: IndicatorType) -> Result<(), String> {
        params.list.accepts(kind)
    }

    fn preflight(
        params: &Params,
        _state: Option<&Value>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Failure> {
        params.scopes().map(drop)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let scopes = params.scopes()?;
        let os_types: BTreeSet<OsType> = params.os_type.iter().copied().collect();
        let existing: Vec<(ScopeRef, Vec<Option<Vec<ListEntry>>>)> = scopes
            .into_iter()
            .map(|scope| {
                let found = params.lookup(&os_types, scope.clone()).find(ctx, &ids);
                (scope, found)
            })
            .collect();
        let mut counts = vec![Counts::default(); ctx.targets().len()];
        let missing = params.missing(&ids, &existing, &os_types, &mut counts);
        let created = params.add(ctx, &missing);
        for (slot, created) in missing.iter().zip(created) {
            counts[slot.target].count(slot.os, created);
        }
        let os_list: Vec<&str> = os_types.iter().map(|os| os.api_value()).collect();
        for id in ids {
            let detail = counts[id].detail(params, &os_list, ctx.tense());
            let attributes = os_list
                .iter()
                .map(|os| AddedAttribute::new(params.attribute_name(), *os))
                .collect();
            ctx.succeed(id, detail, attributes);
        }
        Ok(())
    }
}

impl Params {
    fn lookup(&self, os_types: &BTreeSet<OsType>, scope: ScopeRef) -> Lookup {
        Lookup {
            list: self.list,
            scope: LookupScope::Within(scope),
            os_types: os_types.iter().map(|os| os.api_value()).collect(),
        }
    }

    /// The entries that must be added: one per (hash, OS, scope) the look-ups did not find.
    /// Those found are counted as present, or as covered by the wider scope they are in. A
    /// target whose look-up failed in any scope gets none (it has failed).
    fn missing(
        &self,
        ids: &[TargetId],
        existing: &[(ScopeRef, Vec<Option<Vec<ListEntry>>>)],
        os_types: &BTreeSet<OsType>,
        counts: &mut [Counts],
    ) -> Vec<Slot> {
        let mut missing = Vec::new();
        for (index, id) in ids.iter().enumerate() {
            if existing.iter().any(|(_, found)| found[index].is_none()) {
                continue;
            }
            // OS first, then scope: the POSTs go in the order they always have.
            for os in os_types {
                for (scope, found) in existing {
                    let entries = found[index].as_deref().unwrap_or_default();
                    let covers: Vec<Cover> = entries
                        .iter()
                        .filter_map(|entry| covers(entry, *os, scope))
                        .collect();
                    if covers.contains(&Cover::Present) {
                        counts[*id].present += 1;
                    } else if let Some(Cover::Wider(wider)) = covers.into_iter().min_by_key(
                        // The widest scope that covers it names the cover.
                        |cover| match cover {
                            Cover::Wider(scope) => Some(scope.clone()),
                            Cover::Present => None,
                        },
                    ) {
                        counts[*id].covered += 1;
                        counts[*id].covered_by.insert(wider.describe());
                    } else {
                        missing.push(Slot {
                            target: *id,
                            os: *os,
                            scope: scope.clone(),
                        });
                    }
                }
            }
        }
        missing
    }

    /// POSTs (or plans) each missing entry; per entry, whether it was added (`false`: it turned
    /// out to exist), `None` where its request failed.
    fn add(&self, ctx: &mut RunContext<'_>, missing: &[Slot]) -> Vec<Option<bool>> {
        let slots: Vec<(&Slot, IndicatorType, String)> = missing
            .iter()
            .map(|slot| {
                let target = ctx.target(slot.target);
                (slot, target.kind, target.value.clone())
            })
            .collect();
        ctx.write(
            "add",
            &slots,
            |(slot, _, _)| vec![slot.target],
            |(slot, kind, hash)| {
                let body = self.body(*kind, hash, slot.os, &slot.scope);
                Write::post(self.list.path(), body)
            },
            |_, reply: Reply<Value>| match reply.answer() {
                Ok(_) => Ok(true),
                // Added by someone else since the look-up: the entry exists, which is the goal.
                Err(failure) if failure.upstream_code == Some(ALREADY_EXISTS) => Ok(false),
                Err(failure) => Err(failure),
            },
        )
    }

    /// "the global scope", "N site(s)", "N account(s)" or "N group(s)", for details.
    fn scope_text(&self) -> String {
        let scopes = self.scopes().unwrap_or_default();
        let kind = match scopes.first() {
            None | Some(ScopeRef::Global) => return "the global scope".to_string(),
            Some(ScopeRef::Account(_)) => "account",
            Some(ScopeRef::Site(_)) => "site",
            Some(ScopeRef::Group(_)) => "group",
        };
        format!("{} {kind}(s)", scopes.len())
    }
}

/// What became of one target's entries.
#[derive(Debug, Clone, Default)]
struct Counts {
    /// Entries added (or, in a dry run, to be added), and their OS types.
    added: usize,
    added_os: BTreeSet<&'static str>,
    /// Entries that were there already.
    present: usize,
    /// (OS, scope) pairs covered by an entry in a wider scope, and those scopes.
    covered: usize,
    covered_by: BTreeSet<String>,
}

impl Counts {
    /// Counts one missing entry by its POST: `Some(true)` added, `Some(false)` found to exist
    /// after all, `None` failed.
    fn count(&mut self, os: OsType, created: Option<bool>) {
        match created {
            Some(true) => {
                self.added += 1;
                self.added_os.insert(os.api_value());
            }
            Some(false) => self.present += 1,
            None => {}
        }
    }

    /// The target's detail, in the run's tense, with the wider scopes that cover it.
    fn detail(&self, params: &Params, os_list: &[&str], tense: Tense) -> String {
        let mut detail = self.own_detail(params, os_list, tense);
        if self.covered > 0 {
            let by: Vec<&str> = self.covered_by.iter().map(String::as_str).collect();
            detail.push_str(&format!(
                "; {} covered by an entry in a wider scope ({}), not added again",
                self.covered,
                by.join(", ")
            ));
        }
        detail
    }

    fn own_detail(&self, params: &Params, os_list: &[&str], tense: Tense) -> String {
        let (noun, scope, present) = (params.list.noun(), params.scope_text(), self.present);
        let added = entries(self.added, noun);
        let added_os = self.added_os.iter().copied().collect::<Vec<_>>().join(", ");
        if self.added == 0 && present == 0 {
            // Every slot is covered by an entry in a wider scope, which the caller names.
            return tense.pick(
                format!("Nothing to add in {scope}"),
                format!("Dry run: nothing to add in {scope}"),
            );
        }
        if self.added == 0 {
            let already = format!(
                "Already on the {noun} for {} in {scope}",
                os_list.join(", ")
            );
            return tense.pick(
                already.clone(),
                format!("Dry run: nothing to add. {already}"),
            );
        }
        tense.pick(
            format!("Added {added} ({added_os}) in {scope}; {present} already present"),
            format!(
                "Dry run: would add {added} ({added_os}) in {scope}; {present} already present"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: HashList, sites: Option<Vec<&str>>) -> Params {
        Params {
            description: "d".into(),
            list,
            site_ids: sites.map(|sites| sites.into_iter().map(str::to_string).collect()),
            account_ids: None,
            group_ids: None,
            scope: None,
            os_type: vec![OsType::Windows],
        }
    }

    #[test]
    fn bodies_follow_the_list_type_scope_and_hash_field() {
        let p = params(HashList::Blacklist, None);
        let body = p.body(IndicatorType::Sha256, "ab", OsType::Mac, &ScopeRef::Global);
        assert_eq!(body["filter"], json!({"tenant": true}));
        assert_eq!(body["data"]["sha256Value"], "ab");
        assert_eq!(body["data"]["osType"], "macos");
        assert!(body["data"].get("value").is_none());
        let p = params(HashList::Whitelist, Some(vec!["5"]));
        let site = ScopeRef::Site("5".into());
        let body = p.body(IndicatorType::Sha1, "cd", OsType::LegacyWindows, &site);
        assert_eq!(body["filter"], json!({"siteIds": ["5"]}));
        assert_eq!(body["data"]["type"], "white_hash");
        assert_eq!(body["data"]["value"], "cd");
        assert_eq!(body["data"]["osType"], "windows_legacy");
    }

    #[test]
    fn an_entry_covers_a_slot_only_in_its_own_os_and_scope() {
        let entry = ListEntry {
            id: "1".into(),
            os_type: "windows".into(),
            scope: ScopeRef::Site("5".into()),
        };
        let site = |id: &str| ScopeRef::Site(id.into());
        assert_eq!(
            covers(&entry, OsType::Windows, &site("5")),
            Some(Cover::Present)
        );
        assert_eq!(covers(&entry, OsType::Windows, &site("6")), None);
        assert_eq!(covers(&entry, OsType::Windows, &ScopeRef::Global), None);
        assert_eq!(covers(&entry, OsType::Linux, &site("5")), None);
        // Found by a group's look-up, a site entry is its parent: it covers the group.
        assert_eq!(
            covers(&entry, OsType::Windows, &ScopeRef::Group("9".into())),
            Some(Cover::Wider(site("5")))
        );
    }

    #[test]
    fn scope_defaults_to_the_kind_of_ids_given_and_refuses_contradictions() {
        let ids = |list: &[&str]| list.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        let (a, s) = (ids(&["1"]), ids(&["2", "3"]));
        assert_eq!(
            configured_scopes(None, None, None, None).unwrap(),
            [ScopeRef::Global]
        );
        assert_eq!(
            configured_scopes(None, None, Some(&s), None).unwrap(),
            [ScopeRef::Site("2".into()), ScopeRef::Site("3".into())]
        );
        assert_eq!(
            configured_scopes(None, Some(&a), None, None).unwrap(),
            [ScopeRef::Account("1".into())]
        );
        for (kind, accounts, sites) in [
            (Some(ScopeKind::Accounts), None, None),
            (Some(ScopeKind::Accounts), Some(&a), Some(&s)),
            (Some(ScopeKind::Global), None, Some(&s)),
            (None, Some(&a), Some(&s)),
        ] {
            let err = configured_scopes(
                kind,
                accounts.map(Vec::as_slice),
                sites.map(Vec::as_slice),
                None,
            )
            .unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::ConfigInvalid, "{kind:?}");
        }
    }
}
