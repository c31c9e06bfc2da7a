//! Action 3 · SentinelOne Delete Hashes (`sentinelone-delete-hashes`).
//!
//! Finds every entry of each hash on the chosen list — all scopes, all OS types — with the
//! batched look-up, then deletes the entries' ids in batches (`DELETE` with a JSON body). A hash
//! that is not on the list succeeds with `0`, so a second run changes nothing.

use std::collections::{BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::hash_list::{self, HashList, ListEntry, Lookup, LookupScope};
use super::{Action, Reply, RunContext, TargetId, Tense, Write, distinct_targets};
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
        let entries = entries_to_delete(&ids, &found);
        let batches: Vec<&[(String, Vec<TargetId>)]> = entries.chunks(DELETE_BATCH).collect();
        ctx.write(
            "delete",
            &batches,
            |batch| distinct_targets(batch.iter().flat_map(|(_, owners)| owners.iter().copied())),
            |batch| {
                let entry_ids: Vec<&str> = batch.iter().map(|(entry, _)| entry.as_str()).collect();
                let body =
                    json!({ "data": { "ids": entry_ids, "type": params.list.entry_type() } });
                Write::delete(params.list.path(), body)
            },
            |_, reply: Reply<Value>| reply.answer().map(drop),
        );
        for (id, entries) in ids.into_iter().zip(found) {
            let Some(entries) = entries else { continue };
            let detail = report(params.list.noun(), &entries, ctx.tense());
            let removed = AddedAttribute::new(params.attribute_name(), entries.len().to_string());
            ctx.succeed(id, detail, vec![removed]);
        }
        Ok(())
    }
}

/// (entry id, owning targets), each entry once, in target order so that batches stay
/// deterministic. One entry can match two targets (an entry carrying both the SHA-1 and the
/// SHA-256 of a file): its id is sent once, and a failed request fails both.
fn entries_to_delete(
    ids: &[TargetId],
    found: &[Option<Vec<ListEntry>>],
) -> Vec<(String, Vec<TargetId>)> {
    let mut entries: Vec<(String, Vec<TargetId>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (id, found) in ids.iter().zip(found) {
        for entry in found.iter().flatten() {
            match position.get(entry.id.as_str()) {
                Some(&at) => entries[at].1.push(*id),
                None => {
                    position.insert(&entry.id, entries.len());
                    entries.push((entry.id.clone(), vec![*id]));
                }
            }
        }
    }
    entries
}

/// A hash's detail, in the run's tense.
fn report(noun: &str, entries: &[ListEntry], tense: Tense) -> String {
    let os_types: BTreeSet<&str> = entries.iter().map(|entry| entry.os_type.as_str()).collect();
    let os_types = os_types.into_iter().collect::<Vec<_>>().join(", ");
    let removed = hash_list::entries(entries.len(), noun);
    match entries.len() {
        0 => format!("Not on the {noun}; nothing to remove"),
        _ => tense.pick(
            format!("Removed {removed} ({os_types})"),
            format!("Dry run: would remove {removed} ({os_types})"),
        ),
    }
}
