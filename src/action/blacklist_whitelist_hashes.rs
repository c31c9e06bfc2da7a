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

use super::hash_list::{HashList, ListEntry, Lookup, LookupScope, entries};
use super::{Action, RunContext, TargetId};
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
        let sites = params.sites();
        let os_types: BTreeSet<OsType> = params.os_type.iter().copied().collect();
        let scope = match params.site_ids.as_deref() {
            Some(sites) if !sites.is_empty() => LookupScope::Sites(sites.to_vec()),
            _ => LookupScope::Global,
        };
        let lookup = Lookup {
            list: params.list,
            scope,
            os_types: os_types.iter().map(|os| os.api_value()).collect(),
        };
        let existing = lookup.find(ctx, &ids);

        let mut missing: Vec<Slot> = Vec::new();
        let mut present_counts = vec![0usize; ctx.targets().len()];
        for (id, entries) in ids.iter().zip(&existing) {
            let Some(entries) = entries else { continue };
            for os in &os_types {
                for site in &sites {
                    if entries
                        .iter()
                        .any(|entry| covers(entry, *os, site.as_deref()))
                    {
                        present_counts[*id] += 1;
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

        let noun = params.list.noun();
        // Per target: entries added, and the OS types they were added for.
        let mut added: Vec<(usize, BTreeSet<&str>)> =
            vec![(0, BTreeSet::new()); ctx.targets().len()];
        if ctx.dry_run() {
            for slot in &missing {
                let target = ctx.target(slot.target);
                let body = params.body(target.kind, &target.value, slot.os, slot.site.as_deref());
                ctx.plan("POST", params.list.path(), Some(body), &[slot.target]);
                added[slot.target].0 += 1;
                added[slot.target].1.insert(slot.os.api_value());
            }
        } else {
            // Each body is made by the worker that sends it: 50,000 bodies made up front would
            // be 50,000 JSON trees held for the whole phase.
            let batches: Vec<(&Slot, IndicatorType, String)> = missing
                .iter()
                .map(|slot| {
                    let target = ctx.target(slot.target);
                    (slot, target.kind, target.value.clone())
                })
                .collect();
            let posted = ctx.batches(
                "add",
                &batches,
                |(slot, _, _)| vec![slot.target],
                |client, (slot, kind, hash)| {
                    let body = params.body(*kind, hash, slot.os, slot.site.as_deref());
                    match client.post(params.list.path(), &body) {
                        Ok(_) => Ok(true),
                        // Added by someone else since the look-up: the entry exists, which is the goal.
                        Err(failure) if failure.upstream_code == Some(ALREADY_EXISTS) => Ok(false),
                        Err(failure) => Err(failure),
                    }
                },
            );
            for (slot, created) in missing.iter().zip(posted) {
                match created {
                    Some(true) => {
                        added[slot.target].0 += 1;
                        added[slot.target].1.insert(slot.os.api_value());
                    }
                    Some(false) => present_counts[slot.target] += 1,
                    None => {}
                }
            }
        }

        let attribute = params.attribute_name();
        let os_list: Vec<&str> = os_types.iter().map(|os| os.api_value()).collect();
        for id in ids {
            let (count, added_os) = &added[id];
            let (count, present) = (*count, present_counts[id]);
            let added_os = added_os.iter().copied().collect::<Vec<_>>().join(", ");
            let scope = if sites.len() == 1 && sites[0].is_none() {
                "the global scope".to_string()
            } else {
                format!("{} site(s)", sites.len())
            };
            if ctx.dry_run() {
                let detail = format!(
                    "Dry run: would add {} ({added_os}) in {scope}; {present} already present",
                    entries(count, noun)
                );
                ctx.succeed(id, detail, Vec::new());
                continue;
            }
            let detail = if count == 0 {
                format!(
                    "Already on the {noun} for {} in {scope}",
                    os_list.join(", ")
                )
            } else {
                format!(
                    "Added {} ({added_os}) in {scope}; {present} already present",
                    entries(count, noun)
                )
            };
            let attributes = os_list
                .iter()
                .map(|os| AddedAttribute::new(attribute, *os))
                .collect();
            ctx.succeed(id, detail, attributes);
        }
        Ok(())
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
