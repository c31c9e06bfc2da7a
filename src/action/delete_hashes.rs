//! Action 3 · SentinelOne Delete Hashes (`sentinelone-delete-hashes`).
//!
//! Finds every entry of each hash on the chosen list — all scopes, all OS types — with the
//! batched look-up, then deletes the entries' ids in batches (`DELETE` with a JSON body). A hash
//! that is not on the list succeeds with `0`, so a second run changes nothing.
//!
//! With a scope configured (`scope`, `account_ids`, `site_ids`, `group_ids`: the same rule as
//! action 1, `hash_list::configured_scopes`), only the entries exactly in those scopes are deleted: the
//! look-up reads each scope with the scopes above it, and an entry found in a wider scope is
//! left alone and named in the detail, since the hash stays on the list there. Without any,
//! every scope the token sees, as before.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::ids_with_owners;
use super::lookup::hash_list::{
    self, HashList, ListEntry, Lookup, LookupScope, ScopeKind, ScopeRef, ScopedEntries,
    find_in_scopes, optional_scopes,
};
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
    /// Only entries of these accounts.
    pub account_ids: Option<Vec<String>>,
    /// Only entries of these sites.
    pub site_ids: Option<Vec<String>>,
    /// Only entries of these groups.
    pub group_ids: Option<Vec<String>>,
    /// Only entries of this scope (default: every scope, or the kind of ids given).
    pub scope: Option<ScopeKind>,
}

impl Params {
    /// The scopes to delete from; `None` for every scope the token sees.
    fn scopes(&self) -> Result<Option<Vec<ScopeRef>>, Failure> {
        optional_scopes(
            self.scope,
            self.account_ids.as_deref(),
            self.site_ids.as_deref(),
            self.group_ids.as_deref(),
        )
    }

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
        let scoped: Vec<Option<ScopedEntries>> = match params.scopes()? {
            None => {
                let lookup = Lookup {
                    list: params.list,
                    scope: LookupScope::Everywhere,
                    os_types: Vec::new(),
                };
                let found = lookup.find(ctx, &ids);
                found
                    .into_iter()
                    .map(|own| {
                        own.map(|own| ScopedEntries {
                            own,
                            wider: Vec::new(),
                        })
                    })
                    .collect()
            }
            Some(scopes) => find_in_scopes(ctx, params.list, &scopes, &[], &ids),
        };
        let (found, wider): (Vec<Option<Vec<ListEntry>>>, Vec<Vec<ListEntry>>) = scoped
            .into_iter()
            .map(|entries| match entries {
                Some(ScopedEntries { own, wider }) => (Some(own), wider),
                None => (None, Vec::new()),
            })
            .unzip();
        let entries =
            ids_with_owners(ids.iter().zip(&found).map(|(id, entries)| {
                (*id, entries.iter().flatten().map(|entry| entry.id.as_str()))
            }));
        let batches: Vec<&[(&str, Vec<TargetId>)]> = entries.chunks(DELETE_BATCH).collect();
        ctx.write(
            "delete",
            &batches,
            |batch| distinct_targets(batch.iter().flat_map(|(_, owners)| owners.iter().copied())),
            |batch| {
                let entry_ids: Vec<&str> = batch.iter().map(|(entry, _)| *entry).collect();
                let body =
                    json!({ "data": { "ids": entry_ids, "type": params.list.entry_type() } });
                Write::delete(params.list.path(), body)
            },
            |_, reply: Reply<Value>| reply.answer().map(drop),
        );
        for ((id, entries), wider) in ids.into_iter().zip(found).zip(wider) {
            let Some(entries) = entries else { continue };
            let mut detail = report(params.list.noun(), &entries, ctx.tense());
            if !wider.is_empty() {
                if entries.is_empty() {
                    detail = format!(
                        "Not on the {} in the configured scope; nothing to remove",
                        params.list.noun()
                    );
                }
                // Widest first: the global scope, then accounts, sites.
                let scopes: BTreeSet<&ScopeRef> = wider.iter().map(|entry| &entry.scope).collect();
                let scopes: Vec<String> = scopes.into_iter().map(ScopeRef::describe).collect();
                detail.push_str(&format!(
                    "; still on the {} in a wider scope ({}): {} left alone",
                    params.list.noun(),
                    scopes.join(", "),
                    hash_list::entries(wider.len(), params.list.noun())
                ));
            }
            let removed = AddedAttribute::new(params.attribute_name(), entries.len().to_string());
            ctx.succeed(id, detail, vec![removed]);
        }
        Ok(())
    }
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
