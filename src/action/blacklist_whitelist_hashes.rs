//! Action 1 · SentinelOne Blacklist or Whitelist Hashes (`sentinelone-blacklist-whitelist-hashes`).
//!
//! For every hash, every selected OS and every scope (the global scope, or each configured
//! site), the hash must end up on the chosen list. Existing entries are found first with the
//! batched look-up; one POST is sent per missing (hash, OS, scope) — the list endpoints take a
//! single entry per request. A POST answered "Already Exists" (4000030), as when a concurrent
//! run added the entry, counts as success, so the action is idempotent.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::hash_list::{HashList, ListEntry, Lookup, LookupScope, entries};
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

/// One entry that must exist: a target's hash for one OS in one scope (`None` = global).
struct Slot {
    target: TargetId,
    os: OsType,
    site: Option<String>,
}

impl Params {
    fn sites(&self) -> Vec<Option<String>> {
        match self.site_ids.as_deref() {
            Some(sites) if !sites.is_empty() => sites.iter().cloned().map(Some).collect(),
            _ => vec![None],
        }
    }

    fn attribute_name(&self) -> &'static str {
        match self.list {
            HashList::Blacklist => "Blacklisted in SentinelOne",
            HashList::Whitelist => "Whitelisted in SentinelOne",
        }
    }

    fn body(&self, kind: IndicatorType, hash: &str, os: OsType, site: Option<&str>) -> Value {
        let filter = match site {
            Some(site) => json!({ "siteIds": [site] }),
            None => json!({ "tenant": true }),
        };
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

/// Whether `entry` is the one `slot` needs.
fn covers(entry: &ListEntry, os: OsType, site: Option<&str>) -> bool {
    entry.os_type == os.api_value()
        && match site {
            Some(site) => entry.site_ids.iter().any(|id| id == site),
            None => entry.scope_name == "global" || entry.scope_name == "tenant",
        }
}

impl Action for BlacklistWhitelistHashes {
    type Params = Params;

    fn accepts(params: &Params, kind: IndicatorType) -> Result<(), String> {
        params.list.accepts(kind)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let os_types: BTreeSet<OsType> = params.os_type.iter().copied().collect();
        let existing = params.lookup(&os_types).find(ctx, &ids);
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
    fn lookup(&self, os_types: &BTreeSet<OsType>) -> Lookup {
        let scope = match self.site_ids.as_deref() {
            Some(sites) if !sites.is_empty() => LookupScope::Sites(sites.to_vec()),
            _ => LookupScope::Global,
        };
        Lookup {
            list: self.list,
            scope,
            os_types: os_types.iter().map(|os| os.api_value()).collect(),
        }
    }

    /// The entries that must be added: one per (hash, OS, scope) the look-up did not find.
    /// Those found are counted as present.
    fn missing(
        &self,
        ids: &[TargetId],
        existing: &[Option<Vec<ListEntry>>],
        os_types: &BTreeSet<OsType>,
        counts: &mut [Counts],
    ) -> Vec<Slot> {
        let sites = self.sites();
        let mut missing = Vec::new();
        for (id, entries) in ids.iter().zip(existing) {
            let Some(entries) = entries else { continue };
            for os in os_types {
                for site in &sites {
                    if entries
                        .iter()
                        .any(|entry| covers(entry, *os, site.as_deref()))
                    {
                        counts[*id].present += 1;
                    } else {
                        missing.push(Slot {
                            target: *id,
                            os: *os,
                            site: site.clone(),
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
                let body = self.body(*kind, hash, slot.os, slot.site.as_deref());
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

    /// "the global scope" or "N site(s)", for details.
    fn scope_text(&self) -> String {
        let sites = self.sites();
        if sites.len() == 1 && sites[0].is_none() {
            "the global scope".to_string()
        } else {
            format!("{} site(s)", sites.len())
        }
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

    /// The target's detail, in the run's tense.
    fn detail(&self, params: &Params, os_list: &[&str], tense: Tense) -> String {
        let (noun, scope, present) = (params.list.noun(), params.scope_text(), self.present);
        let added = entries(self.added, noun);
        let added_os = self.added_os.iter().copied().collect::<Vec<_>>().join(", ");
        match tense {
            Tense::Planned => format!(
                "Dry run: would add {added} ({added_os}) in {scope}; {present} already present"
            ),
            Tense::Done if self.added == 0 => {
                format!(
                    "Already on the {noun} for {} in {scope}",
                    os_list.join(", ")
                )
            }
            Tense::Done => {
                format!("Added {added} ({added_os}) in {scope}; {present} already present")
            }
        }
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
            os_type: vec![OsType::Windows],
        }
    }

    #[test]
    fn bodies_follow_the_list_type_scope_and_hash_field() {
        let p = params(HashList::Blacklist, None);
        let body = p.body(IndicatorType::Sha256, "ab", OsType::Mac, None);
        assert_eq!(body["filter"], json!({"tenant": true}));
        assert_eq!(body["data"]["sha256Value"], "ab");
        assert_eq!(body["data"]["osType"], "macos");
        assert!(body["data"].get("value").is_none());
        let p = params(HashList::Whitelist, Some(vec!["5"]));
        let body = p.body(IndicatorType::Sha1, "cd", OsType::LegacyWindows, Some("5"));
        assert_eq!(body["filter"], json!({"siteIds": ["5"]}));
        assert_eq!(body["data"]["type"], "white_hash");
        assert_eq!(body["data"]["value"], "cd");
        assert_eq!(body["data"]["osType"], "windows_legacy");
    }

    #[test]
    fn an_entry_covers_a_slot_only_in_its_own_os_and_scope() {
        let entry = ListEntry {
            id: "1".into(),
            hash: "h".into(),
            os_type: "windows".into(),
            site_ids: vec!["5".into()],
            scope_name: "site".into(),
            description: None,
        };
        assert!(covers(&entry, OsType::Windows, Some("5")));
        assert!(!covers(&entry, OsType::Windows, Some("6")));
        assert!(!covers(&entry, OsType::Windows, None));
        assert!(!covers(&entry, OsType::Linux, Some("5")));
    }
}
