//! The SentinelOne hash lists — blacklist (`/restrictions`, `black_hash`) and whitelist
//! (`/exclusions`, `white_hash`) — and the batched look-up of their entries.
//!
//! Shared by the actions that add, delete and read list entries. The look-up sends many hashes
//! per request (`value__contains`, as many as the URL budget allows), reads every page, and
//! matches entries back to targets exactly and case-insensitively on `value` or `sha256Value`
//! (SentinelOne's `value` filter is case-sensitive, and `__contains` also returns longer
//! values that merely contain the hash).

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::action::{RunContext, TargetId, lookup};
use crate::api::{QUERY_VALUES_BUDGET, join_csv};
use crate::error::{ErrorCode, Failure};
use crate::indicator::IndicatorType;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum HashList {
    Blacklist,
    Whitelist,
}

impl HashList {
    /// API path of the list.
    pub fn path(self) -> &'static str {
        match self {
            Self::Blacklist => "/restrictions",
            Self::Whitelist => "/exclusions",
        }
    }

    /// The entry `type` of a hash on this list.
    pub fn entry_type(self) -> &'static str {
        match self {
            Self::Blacklist => "black_hash",
            Self::Whitelist => "white_hash",
        }
    }

    /// Lower-case name for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Blacklist => "blacklist",
            Self::Whitelist => "whitelist",
        }
    }

    /// Whether this list takes the indicator type: SHA-256 only on the blacklist, where
    /// SentinelOne stores it as `sha256Value` (the exclusion API has no SHA-256 hash type).
    pub fn accepts(self, kind: IndicatorType) -> Result<(), String> {
        match (self, kind) {
            (_, IndicatorType::Sha1) | (Self::Blacklist, IndicatorType::Sha256) => Ok(()),
            (Self::Whitelist, IndicatorType::Sha256) => {
                Err("type SHA-256 is not accepted on the whitelist (SentinelOne hash exclusions are SHA-1 only)".into())
            }
            (_, other) => Err(format!("type {} is not accepted by this action", other.name())),
        }
    }
}

/// "1 blacklist entry", "3 whitelist entries".
pub fn entries(count: usize, noun: &str) -> String {
    format!(
        "{count} {noun} {}",
        if count == 1 { "entry" } else { "entries" }
    )
}

/// The kind of scope entries are written to (the `scope` parameter of action 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    Global,
    Accounts,
    Sites,
    Groups,
}

impl ScopeKind {
    /// The option's value, as configured.
    fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Accounts => "accounts",
            Self::Sites => "sites",
            Self::Groups => "groups",
        }
    }

    /// The parameter that holds this kind's ids (`None`: global).
    fn param(self) -> Option<&'static str> {
        match self {
            Self::Global => None,
            Self::Accounts => Some("account_ids"),
            Self::Sites => Some("site_ids"),
            Self::Groups => Some("group_ids"),
        }
    }
}

/// One scope of a list: the global scope, or one account, site or group. Ordered from the
/// widest kind to the narrowest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScopeRef {
    Global,
    Account(String),
    Site(String),
    Group(String),
}

impl ScopeRef {
    /// The scope's `filter` in a POST: one scope kind only, as SentinelOne's own integrations
    /// send it (`reference/sentinelone-api.md` §3.1 "Scope", §4.1: `tenant` | `accountIds` |
    /// `siteIds` | `groupIds`).
    pub fn write_filter(&self) -> Value {
        match self {
            Self::Global => json!({ "tenant": true }),
            Self::Account(id) => json!({ "accountIds": [id] }),
            Self::Site(id) => json!({ "siteIds": [id] }),
            Self::Group(id) => json!({ "groupIds": [id] }),
        }
    }

    /// The look-up filter of exactly this scope, with the scopes above it: `includeParents`
    /// adds the entries of the account and global scopes over a site, and so on
    /// (`reference/sentinelone-api.md` §3.2 scope parameters, both default false; §3.3 R7
    /// `get_item_ids_by_hash`; §4.2 XS `get_item_ids_from_whitelist`). The global scope alone
    /// is `tenant=true`, as before.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let ids = match self {
            Self::Global => return vec![("tenant", "true".into())],
            Self::Account(id) => ("accountIds", id.clone()),
            Self::Site(id) => ("siteIds", id.clone()),
            Self::Group(id) => ("groupIds", id.clone()),
        };
        vec![ids, ("includeParents", "true".into())]
    }

    /// The scope of a list item, read from its `scope` object: its narrowest kind named with
    /// ids (`groupIds`, then `siteIds`, then `accountIds`), else global (`tenant`).
    fn of_item(scope: Option<&Value>) -> Self {
        let first = |key: &str| {
            scope
                .and_then(|scope| scope.get(key))
                .and_then(Value::as_array)
                .and_then(|ids| ids.iter().find_map(text_id))
        };
        if let Some(id) = first("groupIds") {
            Self::Group(id)
        } else if let Some(id) = first("siteIds") {
            Self::Site(id)
        } else if let Some(id) = first("accountIds") {
            Self::Account(id)
        } else {
            Self::Global
        }
    }

    /// "the global scope", "account 1001", …
    pub fn describe(&self) -> String {
        match self {
            Self::Global => "the global scope".into(),
            Self::Account(id) => format!("account {id}"),
            Self::Site(id) => format!("site {id}"),
            Self::Group(id) => format!("group {id}"),
        }
    }
}

/// An id as text (SentinelOne sends ids as strings; a number is read too).
fn text_id(id: &Value) -> Option<String> {
    match id {
        Value::String(id) if !id.trim().is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The scopes entries are written to: the `scope` choice with its ids. Without a choice, the
/// one kind of ids given decides (sites, as before, when `site_ids` are given), and none means
/// global. One scope kind per write, as SentinelOne's integrations send it
/// (`reference/sentinelone-api.md` §3.1 "Scope": sending one scope kind is safest), so ids of
/// another kind than the chosen one, ids with `global`, or a kind chosen without its ids are
/// `config.invalid`.
pub fn configured_scopes(
    kind: Option<ScopeKind>,
    account_ids: Option<&[String]>,
    site_ids: Option<&[String]>,
    group_ids: Option<&[String]>,
) -> Result<Vec<ScopeRef>, Failure> {
    let given: Vec<(ScopeKind, &[String])> = [
        (ScopeKind::Accounts, account_ids),
        (ScopeKind::Sites, site_ids),
        (ScopeKind::Groups, group_ids),
    ]
    .into_iter()
    .filter_map(|(kind, ids)| ids.filter(|ids| !ids.is_empty()).map(|ids| (kind, ids)))
    .collect();
    let names = |given: &[(ScopeKind, &[String])]| -> String {
        given
            .iter()
            .filter_map(|(kind, _)| kind.param())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let kind = match kind {
        Some(kind) => kind,
        None => match given.as_slice() {
            [] => ScopeKind::Global,
            [(kind, _)] => *kind,
            _ => {
                return Err(Failure::config_invalid(
                    "config.scope",
                    format!(
                        "{} are both set: choose the scope (accounts, sites or groups) whose ids \
                         the entries are written to",
                        names(&given)
                    ),
                ));
            }
        },
    };
    let others: Vec<(ScopeKind, &[String])> = given
        .iter()
        .copied()
        .filter(|(given, _)| *given != kind)
        .collect();
    if !others.is_empty() {
        return Err(Failure::config_invalid(
            "config.scope",
            format!(
                "scope is {} but {} {} set: one scope kind at a time; clear the \
                 other ids or change the scope",
                kind.name(),
                names(&others),
                if others.len() == 1 { "is" } else { "are" },
            ),
        ));
    }
    let Some(param) = kind.param() else {
        return Ok(vec![ScopeRef::Global]);
    };
    let ids = given.first().map(|(_, ids)| *ids).unwrap_or_default();
    if ids.is_empty() {
        return Err(Failure::config_invalid(
            format!("config.{param}"),
            format!(
                "scope is {} but {param} is empty: give at least one id",
                kind.name()
            ),
        ));
    }
    let make = |id: &String| match kind {
        ScopeKind::Accounts => ScopeRef::Account(id.clone()),
        ScopeKind::Sites => ScopeRef::Site(id.clone()),
        ScopeKind::Groups | ScopeKind::Global => ScopeRef::Group(id.clone()),
    };
    Ok(ids.iter().map(make).collect())
}

/// A hash's entries in one or more configured scopes ([`find_in_scopes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopedEntries {
    /// Entries exactly in a configured scope, each once.
    pub own: Vec<ListEntry>,
    /// Entries in a scope above a configured one (they apply there too), each once.
    pub wider: Vec<ListEntry>,
}

/// The entries of every target in `ids`, in the same order, in each of `scopes` and the scopes
/// above them: one look-up per scope ([`LookupScope::Within`]). A target whose look-up failed
/// in any scope has been failed in `ctx` and gets `None`.
pub fn find_in_scopes(
    ctx: &mut RunContext<'_>,
    list: HashList,
    scopes: &[ScopeRef],
    os_types: &[&'static str],
    ids: &[TargetId],
) -> Vec<Option<ScopedEntries>> {
    let mut merged: Vec<Option<ScopedEntries>> = vec![Some(ScopedEntries::default()); ids.len()];
    for scope in scopes {
        let lookup = Lookup {
            list,
            scope: LookupScope::Within(scope.clone()),
            os_types: os_types.to_vec(),
        };
        for (slot, found) in merged.iter_mut().zip(lookup.find(ctx, ids)) {
            let (Some(merged), Some(found)) = (slot.as_mut(), found) else {
                *slot = None;
                continue;
            };
            for entry in found {
                let known = merged.own.iter().chain(&merged.wider);
                if known.clone().any(|known| known.id == entry.id) {
                    continue;
                }
                if entry.scope == *scope || scopes.contains(&entry.scope) {
                    merged.own.push(entry);
                } else {
                    merged.wider.push(entry);
                }
            }
        }
    }
    merged
}

/// As [`configured_scopes`], for the actions that read or delete in every scope unless told
/// otherwise: `None` (every scope the token sees) when no scope and no ids are configured.
pub fn optional_scopes(
    kind: Option<ScopeKind>,
    account_ids: Option<&[String]>,
    site_ids: Option<&[String]>,
    group_ids: Option<&[String]>,
) -> Result<Option<Vec<ScopeRef>>, Failure> {
    let given = [account_ids, site_ids, group_ids]
        .iter()
        .any(|ids| ids.is_some_and(|ids| !ids.is_empty()));
    if kind.is_none() && !given {
        return Ok(None);
    }
    configured_scopes(kind, account_ids, site_ids, group_ids).map(Some)
}

/// Where to look for entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupScope {
    /// Entries of this scope and of the scopes above it (for the global scope: global only).
    Within(ScopeRef),
    /// Entries of every scope the token can see.
    Everywhere,
}

/// One entry of a list, as far as the actions read it: what a DELETE sends, what a detail
/// names and what decides whether an entry covers a hash. Held for every hash of a run, so
/// nothing else of the item is kept (at 50,000 entries each field costs megabytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub id: String,
    pub os_type: String,
    /// The scope the entry is in, read from its `scope` object.
    pub scope: ScopeRef,
}

/// The fields of a list item that [`ListEntry`] reads. A page is read straight into these
/// (the rest of each item is skipped) unless the items themselves are wanted.
#[derive(Deserialize)]
struct EntryFields {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(rename = "sha256Value", default)]
    sha256_value: Option<Value>,
    #[serde(rename = "osType", default)]
    os_type: Option<Value>,
    #[serde(default)]
    scope: Option<Value>,
}

impl ListEntry {
    fn from_json(item: &Value) -> Option<(Self, Vec<String>)> {
        Self::from_fields(EntryFields::deserialize(item).ok()?)
    }

    /// The entry and the hashes it carries (SHA-1 `value`, SHA-256 `sha256Value`), lower case.
    fn from_fields(item: EntryFields) -> Option<(Self, Vec<String>)> {
        // A blank id is no id: it would go into a DELETE's `ids`.
        let id = match item.id? {
            Value::String(id) if !id.trim().is_empty() => id,
            Value::Number(id) => id.to_string(),
            _ => return None,
        };
        let hashes: Vec<String> = [&item.value, &item.sha256_value]
            .into_iter()
            .filter_map(|hash| hash.as_ref().and_then(Value::as_str))
            .map(str::to_ascii_lowercase)
            .collect();
        let entry = Self {
            id,
            os_type: item
                .os_type
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            scope: ScopeRef::of_item(item.scope.as_ref()),
        };
        Some((entry, hashes))
    }
}

/// What one look-up request found, read by the worker that sent it: each entry matched to the
/// position of its hash in the request's values (an entry carrying two of them appears twice),
/// and how many items had no id.
struct BatchEntries<'v> {
    positions: HashMap<&'v str, usize>,
    /// How many values the request carried.
    values: usize,
    matches: Vec<(usize, ListEntry, Value)>,
    malformed: usize,
}

impl<'v> BatchEntries<'v> {
    fn new(values: &'v [String]) -> Self {
        Self {
            positions: values
                .iter()
                .enumerate()
                .map(|(position, value)| (value.as_str(), position))
                .collect(),
            values: values.len(),
            matches: Vec::new(),
            malformed: 0,
        }
    }

    /// Records an item read as `entry` (`None` when it has no id); `item` is kept with it.
    fn add(&mut self, entry: Option<(ListEntry, Vec<String>)>, item: Value) {
        let Some((entry, hashes)) = entry else {
            self.malformed += 1;
            return;
        };
        for hash in hashes {
            if let Some(&position) = self.positions.get(hash.as_str()) {
                self.matches.push((position, entry.clone(), item.clone()));
            }
        }
    }
}

impl BatchEntries<'_> {
    /// The entries of each value of the request (same positions), each entry once per value;
    /// a request whose answer held entries without an id fails as a whole.
    fn share_out(self, list: HashList) -> Result<Vec<Vec<(ListEntry, Value)>>, Failure> {
        if self.malformed > 0 {
            return Err(Failure::new(
                ErrorCode::UpstreamBadResponse,
                format!(
                    "SentinelOne answered GET {} (the look-up of {} hash(es) including this one) with {} {} entries without an id",
                    list.path(),
                    self.values,
                    self.malformed,
                    list.noun()
                ),
            ));
        }
        let mut found: Vec<Vec<(ListEntry, Value)>> = vec![Vec::new(); self.values];
        for (position, entry, item) in self.matches {
            let list = &mut found[position];
            if !list.iter().any(|(known, _)| known.id == entry.id) {
                list.push((entry, item));
            }
        }
        // Held until every look-up is done: no spare capacity.
        for list in &mut found {
            list.shrink_to_fit();
        }
        Ok(found)
    }
}

/// A look-up: which list, where, and optionally which OS types.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub list: HashList,
    pub scope: LookupScope,
    /// SentinelOne OS type values (`windows`, …); empty for every OS.
    pub os_types: Vec<&'static str>,
}

impl Lookup {
    fn query(&self, values: String) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("value__contains", values),
            ("type", self.list.entry_type().to_string()),
        ];
        if !self.os_types.is_empty() {
            query.push(("osTypes", self.os_types.join(",")));
        }
        match &self.scope {
            LookupScope::Within(scope) => query.extend(scope.query()),
            LookupScope::Everywhere => {
                query.push(("includeChildren", "true".into()));
                query.push(("includeParents", "true".into()));
            }
        }
        query
    }

    /// The entries of every target in `ids`, in the same order. A target whose look-up request
    /// failed has been failed in `ctx` and gets `None`.
    pub fn find(&self, ctx: &mut RunContext<'_>, ids: &[TargetId]) -> Vec<Option<Vec<ListEntry>>> {
        self.find_entries(ctx, ids, false)
            .into_iter()
            .map(|entries| {
                entries.map(|entries| entries.into_iter().map(|(entry, _)| entry).collect())
            })
            .collect()
    }

    /// As [`Lookup::find`], each entry with the item SentinelOne returned, for actions that
    /// report more of it (scope path, creation time).
    pub fn find_with_items(
        &self,
        ctx: &mut RunContext<'_>,
        ids: &[TargetId],
    ) -> Vec<Option<Vec<(ListEntry, Value)>>> {
        self.find_entries(ctx, ids, true)
    }

    /// The look-up. Each page is read into entries by the worker that fetched it, as it
    /// arrives: the items themselves (a few kilobytes each as JSON trees) are kept only when
    /// `keep_items`, otherwise `Value::Null` stands in, so 50,000 entries cost 50,000 small
    /// structs rather than 50,000 trees.
    fn find_entries(
        &self,
        ctx: &mut RunContext<'_>,
        ids: &[TargetId],
        keep_items: bool,
    ) -> Vec<Option<Vec<(ListEntry, Value)>>> {
        let batches = lookup::value_chunks(ctx, ids, QUERY_VALUES_BUDGET);
        lookup::per_target(
            ctx,
            "lookup",
            ids,
            &batches,
            |(chunk, _)| chunk,
            |client, (_, values)| {
                let mut read = BatchEntries::new(values);
                let (path, query) = (self.list.path(), self.query(join_csv(values)));
                if keep_items {
                    client
                        .pages(path, query, "/data")
                        .each_item(|item| read.add(ListEntry::from_json(&item), item))?;
                } else {
                    client
                        .pages_as::<EntryFields>(path, query, "/data")
                        .each_item(|fields| {
                            read.add(ListEntry::from_fields(fields), Value::Null);
                        })?;
                }
                read.share_out(self.list)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_sha1_and_sha256_entries_and_their_scope() {
        let item = json!({"id": "12", "value": "ABC", "sha256Value": "DEF", "osType": "windows",
                          "scope": {"siteIds": ["7"]}, "scopeName": "Site", "description": "d"});
        let (entry, hashes) = ListEntry::from_json(&item).unwrap();
        assert_eq!(hashes, ["abc", "def"]);
        assert_eq!(
            (entry.id.as_str(), entry.os_type.as_str(), &entry.scope),
            ("12", "windows", &ScopeRef::Site("7".into()))
        );
        assert!(ListEntry::from_json(&json!({"value": "abc"})).is_none());
        assert!(ListEntry::from_json(&json!({"id": "", "value": "abc"})).is_none());
    }

    #[test]
    fn query_carries_type_os_and_scope() {
        let lookup = Lookup {
            list: HashList::Whitelist,
            scope: LookupScope::Within(ScopeRef::Site("1".into())),
            os_types: vec!["linux"],
        };
        let query = lookup.query("a,b".into());
        assert!(query.contains(&("type", "white_hash".into())));
        assert!(query.contains(&("siteIds", "1".into())));
        assert!(query.contains(&("includeParents", "true".into())));
        assert!(query.contains(&("osTypes", "linux".into())));
        assert!(query.contains(&("value__contains", "a,b".into())));
    }

    #[test]
    fn sha256_only_on_the_blacklist() {
        assert!(HashList::Blacklist.accepts(IndicatorType::Sha256).is_ok());
        assert!(HashList::Whitelist.accepts(IndicatorType::Sha256).is_err());
        assert!(HashList::Whitelist.accepts(IndicatorType::Sha1).is_ok());
    }
}
