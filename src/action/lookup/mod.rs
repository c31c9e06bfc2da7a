//! Reading what SentinelOne already holds before an action writes: the batched look-ups that
//! actions share (agents, threats, hash-list entries, whole listings), the two skeletons they
//! are built on, and the lenient reading of answers ([`lenient`]).
//!
//! A look-up sends many values per request (as many as fit in one URL, see
//! [`RunContext::query_chunks`]), reads every page of each answer on the client's workers, and
//! hands each target what was found for it; a failed request fails the targets it was made
//! for, and the other requests go on. [`per_target`] is the skeleton where each target is in
//! one request; [`by_ids`] the one where targets name SentinelOne ids (alerts, threats) that
//! several of them may share.
//!
//! This module does not decide what to write (see the actions) and does not page (see
//! `api::page`).

pub mod agents;
pub mod hash_list;
pub mod iocs;
pub mod lenient;
pub mod listing;
pub mod protected;
pub mod threats;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::action::{RunContext, TargetId, distinct_targets};
use crate::api::{ApiClient, QUERY_VALUES_BUDGET, chunk_for_query, join_csv};
use crate::error::Failure;

/// Runs `read` for every batch on the client's workers; `read` answers with one `T` per target
/// of its batch (`targets_of`), in the batch's order. Returns what was found for each of `ids`,
/// in order: `None` for a target that has an outcome already (its look-up failed), the default
/// for one no batch named.
pub fn per_target<B: Sync, T: Default + Send>(
    ctx: &mut RunContext<'_>,
    phase: &str,
    ids: &[TargetId],
    batches: &[B],
    targets_of: impl Fn(&B) -> &[TargetId],
    read: impl Fn(&ApiClient, &B) -> Result<Vec<T>, Failure> + Sync,
) -> Vec<Option<T>> {
    let answers = ctx.batches(phase, batches, |batch| targets_of(batch).to_vec(), read);
    let mut found: HashMap<TargetId, T> = HashMap::new();
    for (batch, answer) in batches.iter().zip(answers) {
        let Some(answer) = answer else { continue };
        found.extend(targets_of(batch).iter().copied().zip(answer));
    }
    ids.iter()
        .map(|id| {
            ctx.is_pending(*id)
                .then(|| found.remove(id).unwrap_or_default())
        })
        .collect()
}

/// Every item of `GET path` whose id is one of `owners`' keys, as `read` makes it of the item
/// (`None`: left out), many ids per request in the `filter` parameter. A failed request fails
/// every target that owns one of its ids.
pub fn by_ids<T: Send>(
    ctx: &mut RunContext<'_>,
    phase: &str,
    (path, filter): (&str, &'static str),
    owners: &BTreeMap<String, BTreeSet<TargetId>>,
    read: impl Fn(Value) -> Option<T> + Sync,
) -> Vec<T> {
    let ids: Vec<String> = owners.keys().cloned().collect();
    let chunks = chunk_for_query(&ids, QUERY_VALUES_BUDGET);
    let found = ctx.batches(
        phase,
        &chunks,
        |chunk| distinct_targets(chunk.iter().flat_map(|id| owners[id].iter().copied())),
        |client, chunk| {
            let mut items = Vec::new();
            let query = vec![(filter, join_csv(chunk))];
            client
                .pages(path, query, "/data")
                .each_item(|item| items.extend(read(item)))?;
            Ok(items)
        },
    );
    found.into_iter().flatten().flatten().collect()
}

/// `ids` in groups whose values fit in one look-up request, each with its values as sent.
pub fn value_chunks(
    ctx: &RunContext<'_>,
    ids: &[TargetId],
    budget: usize,
) -> Vec<(Vec<TargetId>, Vec<String>)> {
    ctx.query_chunks(ids, budget)
        .into_iter()
        .map(|chunk| {
            let values = chunk
                .iter()
                .map(|id| ctx.target(*id).value.clone())
                .collect();
            (chunk, values)
        })
        .collect()
}
