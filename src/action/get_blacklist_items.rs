//! Action 6 · SentinelOne Get Blacklist Items (`sentinelone-get-blacklist-items`).
//!
//! Two modes, chosen by the envelope:
//! - **Look-up** (the envelope holds objects): every entry of each SHA-1 / SHA-256 on the
//!   blacklist, in every scope and for every OS, is found with the batched look-up of
//!   `hash_list` (`GET /restrictions`, `type=black_hash`, many hashes per request,
//!   `includeChildren`/`includeParents`) and added as one `SentinelOne Blacklist Entry`
//!   attribute per entry: `<osType> · <scope name>[ · <scope path or scope ids>]`. A hash with
//!   no entry succeeds with the detail "not on the blacklist".
//! - **List** (the envelope holds no objects at all): the whole blacklist is read
//!   (`GET /restrictions`, `type=black_hash`, every scope, cursor paging) and every entry comes
//!   back as a `produced` SHA-1 indicator (`value`) and/or SHA-256 indicator (`sha256Value`),
//!   one per hash however many entries it has, with the entries' OS type, scope, description
//!   and creation time as attributes. An envelope whose objects were all skipped or invalid is
//!   not an empty one: it does not list.
//!
//! With a scope configured (`scope`, `account_ids`, `site_ids`, `group_ids`, the rule of
//! action 1), both modes read, for each configured scope, exactly that scope and the scopes
//! above it (`includeParents`): the entries that apply there. Without one, every scope the
//! token sees, as before.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::hash_list::{
    HashList, ListEntry, Lookup, LookupScope, ScopeKind, ScopeRef, optional_scopes,
};
use super::{Action, RunContext, TargetId};
use crate::error::{Failure, WarningCode};
use crate::indicator::IndicatorType;
use crate::result::{AddedAttribute, Warning};

const ENTRY: &str = "SentinelOne Blacklist Entry";
const OS_TYPE: &str = "SentinelOne OS Type";
const SCOPE: &str = "SentinelOne Scope";
const DESCRIPTION: &str = "SentinelOne Blacklist Description";
const CREATED_AT: &str = "SentinelOne Blacklisted At";

/// Tag given to every produced indicator.
const TAG: &str = "SentinelOne Blacklist";

pub struct GetBlacklistItems;

/// Parameters of action 6.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Only entries that apply to these accounts.
    pub account_ids: Option<Vec<String>>,
    /// Only entries that apply to these sites.
    pub site_ids: Option<Vec<String>>,
    /// Only entries that apply to these groups.
    pub group_ids: Option<Vec<String>>,
    /// Which scope to read (default: every scope, or the kind of ids given).
    pub scope: Option<ScopeKind>,
}

impl Params {
    /// The scopes read; `None` for every scope the token sees.
    fn scopes(&self) -> Result<Option<Vec<ScopeRef>>, Failure> {
        optional_scopes(
            self.scope,
            self.account_ids.as_deref(),
            self.site_ids.as_deref(),
            self.group_ids.as_deref(),
        )
    }
}

/// The readable parts of one blacklist entry as SentinelOne returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryText {
    os_type: String,
    /// `scopeName` (e.g. `Global`, a site's name), else the scope's kind.
    scope_name: String,
    /// `scopePath` (`Global / Acme Corp / Acme HQ`), else the scope's ids; `None` when it says
    /// nothing the name does not.
    scope_detail: Option<String>,
    description: Option<String>,
    created_at: Option<String>,
}

impl EntryText {
    fn from_item(item: &Value) -> Self {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        };
        let scope = item.get("scope");
        let scope_ids = |key: &str| -> Vec<String> {
            scope
                .and_then(|scope| scope.get(key))
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| match id {
                            Value::String(id) => Some(id.clone()),
                            Value::Number(id) => Some(id.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        // The narrowest scope kind named, with its ids.
        let kinds = [
            ("group", scope_ids("groupIds")),
            ("site", scope_ids("siteIds")),
            ("account", scope_ids("accountIds")),
        ];
        let narrowest = kinds.into_iter().find(|(_, ids)| !ids.is_empty());
        let scope_name = text("scopeName").unwrap_or_else(|| match &narrowest {
            Some((kind, _)) => kind.to_string(),
            None => "Global".to_string(),
        });
        let scope_detail = match text("scopePath") {
            Some(path) => Some(path),
            None => narrowest.map(|(kind, ids)| format!("{kind} {}", ids.join(", "))),
        }
        .filter(|detail| *detail != scope_name);
        Self {
            os_type: text("osType").unwrap_or_else(|| "unknown OS".into()),
            scope_name,
            scope_detail,
            description: text("description"),
            created_at: text("createdAt"),
        }
    }

    /// `<osType> · <scope name>[ · <scope path or ids>]`.
    fn entry(&self) -> String {
        let mut text = format!("{} · {}", self.os_type, self.scope_name);
        if let Some(detail) = &self.scope_detail {
            text.push_str(" · ");
            text.push_str(detail);
        }
        text
    }

    /// The scope as one text: the path when known, else the name.
    fn scope(&self) -> String {
        self.scope_detail
            .clone()
            .unwrap_or_else(|| self.scope_name.clone())
    }
}

/// One produced indicator being assembled from the entries carrying its hash.
#[derive(Debug, Default)]
struct Produced {
    attributes: Vec<(&'static str, String)>,
    descriptions: Vec<String>,
}

impl Produced {
    fn add(&mut self, name: &'static str, value: String) {
        if !self
            .attributes
            .iter()
            .any(|(known, text)| *known == name && *text == value)
        {
            self.attributes.push((name, value));
        }
    }

    fn absorb(&mut self, entry: &EntryText) {
        self.add(ENTRY, entry.entry());
        self.add(OS_TYPE, entry.os_type.clone());
        self.add(SCOPE, entry.scope());
        if let Some(description) = &entry.description {
            self.add(DESCRIPTION, description.clone());
            if !self.descriptions.contains(description) {
                self.descriptions.push(description.clone());
            }
        }
        if let Some(created_at) = &entry.created_at {
            self.add(CREATED_AT, created_at.clone());
        }
    }

    fn to_object(&self, kind: IndicatorType, value: &str) -> Value {
        let attributes: Vec<Value> = self
            .attributes
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        let mut object = json!({ "type": kind.name(), "value": value });
        if !self.descriptions.is_empty() {
            object["description"] = json!(self.descriptions.join("; "));
        }
        object["attributes"] = json!(attributes);
        object["tags"] = json!([TAG]);
        object
    }
}

/// The hashes an entry carries, lower case, with their ThreatQ types.
fn hashes_of(item: &Value) -> Vec<(IndicatorType, String)> {
    [
        ("value", IndicatorType::Sha1),
        ("sha256Value", IndicatorType::Sha256),
    ]
    .into_iter()
    .filter_map(|(key, kind)| {
        let hash = item.get(key).and_then(Value::as_str)?.trim();
        kind.normalise(hash).ok().map(|hash| (kind, hash))
    })
    .collect()
}

/// List mode: every blacklist entry (of the configured scopes, when there are some),
/// de-duplicated by (type, hash), as produced indicators.
fn list_everything(ctx: &mut RunContext<'_>, scopes: Option<&[ScopeRef]>) -> Result<(), Failure> {
    let entry_type = ("type", HashList::Blacklist.entry_type().to_string());
    let queries: Vec<Vec<(&'static str, String)>> = match scopes {
        None => vec![vec![
            entry_type,
            // Without both, SentinelOne returns only the entries of the token's own scope level.
            ("includeChildren", "true".to_string()),
            ("includeParents", "true".to_string()),
        ]],
        Some(scopes) => scopes
            .iter()
            .map(|scope| {
                let mut query = vec![entry_type.clone()];
                query.extend(scope.query());
                query
            })
            .collect(),
    };
    let mut produced: BTreeMap<(IndicatorType, String), Produced> = BTreeMap::new();
    let mut order: Vec<(IndicatorType, String)> = Vec::new();
    let mut without_hash = 0usize;
    // An entry above two configured scopes is read twice: it counts once.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let pages = queries.into_iter().flat_map(|query| {
        ctx.client()
            .pages(HashList::Blacklist.path(), query, "/data")
    });
    for page in pages {
        for item in page? {
            if let Some(id) = item.get("id").map(Value::to_string)
                && !seen.insert(id)
            {
                continue;
            }
            let entry = EntryText::from_item(&item);
            let hashes = hashes_of(&item);
            if hashes.is_empty() {
                without_hash += 1;
            }
            for key in hashes {
                if !produced.contains_key(&key) {
                    order.push(key.clone());
                }
                produced.entry(key).or_default().absorb(&entry);
            }
        }
    }
    if without_hash > 0 {
        ctx.warn(Warning {
            code: WarningCode::UpstreamEntryWithoutHash,
            message: format!(
                "{without_hash} blacklist entr{} carried neither a SHA-1 nor a SHA-256 and {} not returned",
                if without_hash == 1 { "y" } else { "ies" },
                if without_hash == 1 { "was" } else { "were" }
            ),
            field: None,
        });
    }
    for key in order {
        let object = produced[&key].to_object(key.0, &key.1);
        ctx.produce(object);
    }
    Ok(())
}

impl Action for GetBlacklistItems {
    type Params = Params;

    fn accepts(_params: &Params, kind: IndicatorType) -> Result<(), String> {
        HashList::Blacklist.accepts(kind)
    }

    fn preflight(
        params: &Params,
        _state: Option<&Value>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Failure> {
        params.scopes().map(drop)
    }

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let scopes = params.scopes()?;
        if ctx.object_count() == 0 {
            return list_everything(ctx, scopes.as_deref());
        }
        let ids: Vec<TargetId> = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let found = find(ctx, &ids, scopes);
        for (id, entries) in ids.into_iter().zip(found) {
            let Some(entries) = entries else { continue };
            if entries.is_empty() {
                ctx.succeed(id, "Not on the blacklist", Vec::new());
                continue;
            }
            let mut attributes: Vec<AddedAttribute> = Vec::new();
            for (_, item) in &entries {
                let text = EntryText::from_item(item).entry();
                if !attributes.iter().any(|known| known.value == text) {
                    attributes.push(AddedAttribute::new(ENTRY, text));
                }
            }
            let count = entries.len();
            let detail = format!(
                "On the blacklist: {count} entr{}",
                if count == 1 { "y" } else { "ies" }
            );
            ctx.succeed(id, detail, attributes);
        }
        Ok(())
    }
}

/// Each target's entries with their items, everywhere or in each of `scopes` and the scopes
/// above them, each entry once; `None` for a target whose look-up failed in any scope.
fn find(
    ctx: &mut RunContext<'_>,
    ids: &[TargetId],
    scopes: Option<Vec<ScopeRef>>,
) -> Vec<Option<Vec<(ListEntry, Value)>>> {
    let scopes: Vec<LookupScope> = match scopes {
        None => vec![LookupScope::Everywhere],
        Some(scopes) => scopes.into_iter().map(LookupScope::Within).collect(),
    };
    let mut merged: Vec<Option<Vec<(ListEntry, Value)>>> = vec![Some(Vec::new()); ids.len()];
    for scope in scopes {
        let lookup = Lookup {
            list: HashList::Blacklist,
            scope,
            os_types: Vec::new(),
        };
        for (slot, found) in merged.iter_mut().zip(lookup.find_with_items(ctx, ids)) {
            let (Some(merged), Some(found)) = (slot.as_mut(), found) else {
                *slot = None;
                continue;
            };
            for (entry, item) in found {
                if !merged.iter().any(|(known, _)| known.id == entry.id) {
                    merged.push((entry, item));
                }
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_text_names_os_scope_and_path() {
        let site = json!({"id": "1", "value": "ab", "osType": "windows",
            "scope": {"siteIds": ["475"]}, "scopeName": "Acme HQ",
            "scopePath": "Global / Acme Corp / Acme HQ", "createdAt": "2026-04-21T03:00:00Z"});
        assert_eq!(
            EntryText::from_item(&site).entry(),
            "windows · Acme HQ · Global / Acme Corp / Acme HQ"
        );
        let global = json!({"id": "2", "osType": "linux", "scope": {"tenant": true},
            "scopeName": "Global", "scopePath": "Global"});
        assert_eq!(EntryText::from_item(&global).entry(), "linux · Global");
        // A console that sends neither name nor path: the scope kind and its ids.
        let bare = json!({"id": "3", "osType": "macos", "scope": {"siteIds": ["7", "8"]}});
        assert_eq!(
            EntryText::from_item(&bare).entry(),
            "macos · site · site 7, 8"
        );
        assert_eq!(
            EntryText::from_item(&json!({"osType": "linux"})).entry(),
            "linux · Global"
        );
    }

    #[test]
    fn both_hashes_of_an_entry_are_read_and_bad_ones_ignored() {
        let sha1 = "30357c6b110ca56dcafbaf1c94c3df8b33987c44";
        let sha256 = "80928FED778D0BAD54205A45CB427CC5F0F44ACD8BFFD94812633D2A948812B7";
        let hashes = hashes_of(&json!({"value": sha1, "sha256Value": sha256}));
        assert_eq!(
            hashes,
            [
                (IndicatorType::Sha1, sha1.to_string()),
                (IndicatorType::Sha256, sha256.to_ascii_lowercase())
            ]
        );
        assert!(hashes_of(&json!({"value": "not-a-hash"})).is_empty());
    }

    #[test]
    fn a_hash_with_several_entries_is_produced_once() {
        let mut produced = Produced::default();
        let a = EntryText::from_item(&json!({"osType": "windows", "scopeName": "Global",
            "description": "dropper", "createdAt": "2026-01-01T00:00:00Z"}));
        let b = EntryText::from_item(&json!({"osType": "linux", "scopeName": "Global",
            "description": "dropper", "createdAt": "2026-01-02T00:00:00Z"}));
        produced.absorb(&a);
        produced.absorb(&b);
        let object = produced.to_object(IndicatorType::Sha1, "ab");
        assert_eq!(object["description"], "dropper");
        let names: Vec<&str> = object["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|attribute| attribute["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                ENTRY,
                OS_TYPE,
                SCOPE,
                DESCRIPTION,
                CREATED_AT,
                ENTRY,
                OS_TYPE,
                CREATED_AT
            ]
        );
    }
}
