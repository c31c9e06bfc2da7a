//! Action 3 · SentinelOne Delete Hashes (`sentinelone-delete-hashes`).
//!
//! Finds every entry of each hash on the chosen list — all scopes, all OS types — with the
//! batched look-up, then deletes the entries' ids in batches (`DELETE` with a JSON body). A hash
//! that is not on the list succeeds with `0`, so a second run changes nothing.

use std::collections::{BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::hash_list::{self, HashList, Lookup, LookupScope};
use super::{Action, RunContext, TargetId, distinct_targets};
use crate::error::Failure;
use crate::indicator::IndicatorType;
use crate::result::AddedAttribute;

/// Entry ids per DELETE request.
const DELETE_BATCH: usize = 1000;

pub struct DeleteHashes;

/// Parameters of action 3.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Which list to remove the hashes from.
    pub list: HashList,
}

impl Params {
    fn attribute_name(&self) -> &'static str {
        match self.list {
            HashList::Blacklist => "Removed from SentinelOne Blacklist",
            HashList::Whitelist => "Removed from SentinelOne Whitelist",
        }
    }
}

impl Action for DeleteHashes {
    type Params = Params;

    fn accepts(params: &Params, kind: IndicatorType) -> Result<(), String> {
        params.list.accepts(kind)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let lookup = Lookup {
            list: params.list,
            scope: LookupScope::Everywhere,
            os_types: Vec::new(),
        };
        let found = lookup.find(ctx, &ids);

        // (entry id, owning targets), each entry once, in target order so that batches stay
        // deterministic. One entry can match two targets (an entry carrying both the SHA-1 and
        // the SHA-256 of a file): its id is sent once, and a failed request fails both.
        let mut entries: Vec<(String, Vec<TargetId>)> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        for (id, found) in ids.iter().zip(&found) {
            for entry in found.iter().flatten() {
                match position.get(&entry.id) {
                    Some(&at) => entries[at].1.push(*id),
                    None => {
                        position.insert(entry.id.clone(), entries.len());
                        entries.push((entry.id.clone(), vec![*id]));
                    }
                }
            }
        }
        let batches: Vec<&[(String, Vec<TargetId>)]> = entries.chunks(DELETE_BATCH).collect();
        let body = |batch: &[(String, Vec<TargetId>)]| {
            let entry_ids: Vec<&str> = batch.iter().map(|(entry, _)| entry.as_str()).collect();
            json!({ "data": { "ids": entry_ids, "type": params.list.entry_type() } })
        };
        let owners = |batch: &&[(String, Vec<TargetId>)]| -> Vec<TargetId> {
            distinct_targets(batch.iter().flat_map(|(_, owners)| owners.iter().copied()))
        };
        if ctx.dry_run() {
            for batch in &batches {
                ctx.plan(
                    "DELETE",
                    params.list.path(),
                    Some(body(batch)),
                    &owners(batch),
                );
            }
        } else {
            ctx.batches("delete", &batches, owners, |client, batch| {
                client.delete(params.list.path(), &body(batch))
            });
        }

        let noun = params.list.noun();
        for (id, entries) in ids.into_iter().zip(found) {
            let Some(entries) = entries else { continue };
            let removed = entries.len();
            let os_types: BTreeSet<&str> =
                entries.iter().map(|entry| entry.os_type.as_str()).collect();
            let os_types = os_types.into_iter().collect::<Vec<_>>().join(", ");
            let detail = match (removed, ctx.dry_run()) {
                (0, _) => format!("Not on the {noun}; nothing to remove"),
                (n, true) => format!(
                    "Dry run: would remove {} ({os_types})",
                    hash_list::entries(n, noun)
                ),
                (n, false) => format!("Removed {} ({os_types})", hash_list::entries(n, noun)),
            };
            let attributes = if ctx.dry_run() {
                Vec::new()
            } else {
                vec![AddedAttribute::new(
                    params.attribute_name(),
                    removed.to_string(),
                )]
            };
            ctx.succeed(id, detail, attributes);
        }
        Ok(())
    }
}
