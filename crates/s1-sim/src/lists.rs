//! The blacklist (`/restrictions`, `black_hash`) and exclusions (`/exclusions`, `white_hash` and
//! the non-hash exclusion types) endpoints: GET, POST and DELETE.
//!
//! Owns entry validation, duplicate detection (400 with code 4000030; nothing is created when any
//! scope already holds the entry), scope selection in GET (`tenant`, `accountIds`, `siteIds`,
//! `groupIds`, `includeParents`, `includeChildren`) and scope parsing of POST filters (shared with
//! the IOC endpoints). It does not route requests.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::model::{ENTRY_OS_TYPES, HashEntry, ListKind, Scope, ts};
use super::paging::{PAGING_KEYS, PageRequest, SortKey, SortValue, paginate};
use super::params::{ApiError, Needles, Params, is_hex, lowered};
use super::state::State;

/// The user every entry created through the API is attributed to.
pub(crate) const USER_NAME: &str = "Simulator API User";
const USER_ID: &str = "1900000000000000000";

const GET_KEYS: &[&str] = &[
    "ids",
    "type",
    "types",
    "value",
    "value__contains",
    "osTypes",
    "tenant",
    "accountIds",
    "siteIds",
    "groupIds",
    "includeChildren",
    "includeParents",
    "source",
    "description__contains",
    "query",
    // Accepted and ignored: they do not change what the simulator holds.
    "unified",
    "recommendations",
    "imported",
    "modes",
    "modeType",
    "pathExclusionTypes",
    "userIds",
    "user__contains",
];

const SORT_FIELDS: &[&str] = &[
    "id",
    "createdAt",
    "updatedAt",
    "value",
    "osType",
    "description",
];

fn endpoint(list: ListKind) -> &'static str {
    match list {
        ListKind::Blacklist => "/restrictions",
        ListKind::Exclusions => "/exclusions",
    }
}

/// Renders one entry as the console does.
pub(crate) fn render(state: &State, entry: &HashEntry) -> Value {
    let mut out = Map::new();
    out.insert("id".to_string(), json!(entry.id));
    out.insert("type".to_string(), json!(entry.kind));
    if let Some(value) = &entry.value {
        out.insert("value".to_string(), json!(value));
    }
    if let Some(sha256) = &entry.sha256 {
        out.insert("sha256Value".to_string(), json!(sha256));
    }
    out.insert("osType".to_string(), json!(entry.os_type));
    out.insert("description".to_string(), json!(entry.description));
    out.insert("source".to_string(), json!(entry.source));
    out.insert("scope".to_string(), entry.scope.to_json());
    out.insert(
        "scopeName".to_string(),
        json!(state.scope_name(&entry.scope)),
    );
    out.insert(
        "scopePath".to_string(),
        json!(state.scope_path(&entry.scope)),
    );
    out.insert("userId".to_string(), json!(USER_ID));
    out.insert("userName".to_string(), json!(entry.user_name));
    out.insert("createdAt".to_string(), json!(ts(entry.created_at)));
    out.insert("updatedAt".to_string(), json!(ts(entry.updated_at)));
    out.insert("includeChildren".to_string(), json!(false));
    out.insert("includeParents".to_string(), json!(false));
    out.insert("notRecommended".to_string(), json!("NONE"));
    out.insert("imported".to_string(), json!(false));
    for (key, value) in &entry.extra {
        out.insert(key.clone(), value.clone());
    }
    Value::Object(out)
}

/// Builds an entry from a POST `data` object, validating it for the list.
pub(crate) fn entry_from_data(
    list: ListKind,
    data: &Value,
    id: String,
    scope: Scope,
    created_at: DateTime<Utc>,
) -> Result<HashEntry, ApiError> {
    let Some(object) = data.as_object() else {
        return Err(ApiError::missing_field(&["data"]));
    };
    let invalid = |key: &str, message: &str| {
        ApiError::validation(format!("{{'data': {{'{key}': ['{message}']}}}}"))
    };
    let mut known = vec![
        "type",
        "osType",
        "value",
        "description",
        "source",
        "externalTicketId",
    ];
    match list {
        ListKind::Blacklist => known.push("sha256Value"),
        ListKind::Exclusions => known.extend([
            "mode",
            "pathExclusionType",
            "actions",
            "inject",
            "applicationName",
        ]),
    }
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(unknown, "Unknown field."));
    }
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(key, "Not a valid string.")),
        }
    };
    let kind = text("type")?.ok_or_else(|| invalid("type", "Missing data for required field."))?;
    if !list.types().contains(&kind.as_str()) {
        return Err(invalid(
            "type",
            &format!("Must be one of: {}.", list.types().join(", ")),
        ));
    }
    let os_type =
        text("osType")?.ok_or_else(|| invalid("osType", "Missing data for required field."))?;
    if !ENTRY_OS_TYPES.contains(&os_type.as_str()) {
        return Err(invalid(
            "osType",
            &format!("Must be one of: {}.", ENTRY_OS_TYPES.join(", ")),
        ));
    }
    let value = text("value")?.filter(|v| !v.is_empty());
    let sha256 = text("sha256Value")?.filter(|v| !v.is_empty());
    if kind.ends_with("_hash") {
        if value.is_none() && sha256.is_none() {
            return Err(invalid(
                "value",
                "A SHA1 value or a SHA256 value (sha256Value) is required.",
            ));
        }
        if let Some(v) = &value
            && !is_hex(v, 40)
        {
            return Err(invalid("value", "Not a valid SHA1 hash."));
        }
        if let Some(v) = &sha256
            && !is_hex(v, 64)
        {
            return Err(invalid("sha256Value", "Not a valid SHA256 hash."));
        }
    } else if value.is_none() {
        return Err(invalid("value", "Missing data for required field."));
    }
    let mut extra = Map::new();
    for key in [
        "mode",
        "pathExclusionType",
        "actions",
        "inject",
        "applicationName",
        "externalTicketId",
    ] {
        if let Some(v) = object.get(key) {
            extra.insert(key.to_string(), v.clone());
        }
    }
    Ok(HashEntry {
        id,
        kind,
        value,
        sha256,
        os_type,
        description: text("description")?.unwrap_or_default(),
        source: text("source")?.unwrap_or_else(|| "user".to_string()),
        scope,
        user_name: USER_NAME.to_string(),
        created_at,
        updated_at: created_at,
        extra,
    })
}

/// The scope ids named by `accountIds`/`siteIds`/`groupIds`, checked against the console.
fn scope_ids(state: &State, params: &Params) -> Result<Vec<Scope>, ApiError> {
    let mut scopes = Vec::new();
    for id in params.list("accountIds").unwrap_or_default() {
        if state.account(&id).is_none() {
            return Err(ApiError::invalid_identifier(format!(
                "Account id {id} doesn't match any account"
            )));
        }
        scopes.push(Scope::Account(id));
    }
    for id in params.list("siteIds").unwrap_or_default() {
        if state.site(&id).is_none() {
            return Err(ApiError::invalid_identifier(format!(
                "Site id {id} doesn't match any site"
            )));
        }
        scopes.push(Scope::Site(id));
    }
    for id in params.list("groupIds").unwrap_or_default() {
        if state.group(&id).is_none() {
            return Err(ApiError::invalid_identifier(format!(
                "Group id {id} doesn't match any group"
            )));
        }
        scopes.push(Scope::Group(id));
    }
    Ok(scopes)
}

/// The scopes a write filter names, one id kind only. `{}` and `{"tenant": true}` mean global;
/// `tenant: true` next to scope ids is accepted and the ids decide: XSOAR posts
/// `{"siteIds":[id],"tenant":true}` once per site (demisto/content `SentinelOne-V2.py`
/// `add_hash_to_blocklists_request`) and SentinelOne's own Splunk SOAR app posts
/// `{"siteIds":[id],"tenant":"true"}` (splunk-soar-connectors/sentinelone
/// `sentinelone_connector.py` `_handle_block_hash`), both against live consoles.
pub(crate) fn write_scopes(state: &State, params: &Params) -> Result<Vec<Scope>, ApiError> {
    // Read (and so type-checked) even where the ids make it moot.
    params.bool("tenant")?;
    let kinds = usize::from(params.list("accountIds").is_some())
        + usize::from(params.list("siteIds").is_some())
        + usize::from(params.list("groupIds").is_some());
    if kinds > 1 {
        return Err(ApiError::invalid_identifier(
            "Filter must name one scope kind: accountIds, siteIds or groupIds",
        ));
    }
    let mut scopes = scope_ids(state, params)?;
    if scopes.is_empty() {
        scopes.push(Scope::Global);
    }
    let mut seen = HashSet::new();
    scopes.retain(|scope| seen.insert(scope.clone()));
    Ok(scopes)
}

/// The set of scopes a GET selects, or `None` for "everything the token sees".
///
/// The named scopes alone by default; `includeParents=true` adds the scopes above them (a
/// site's account, the global scope) and `includeChildren=true` those below (an account's
/// sites and groups), both default false (SW24 `ExclusionsAndBlocklistApi.md`, see
/// `reference/sentinelone-api.md` §3.2; R7 `get_item_ids_by_hash` sends both to find a hash's
/// entries in every scope, §3.3; XSOAR `get_item_ids_from_whitelist` notes that without both
/// only a subset is returned, §4.2).
pub(crate) fn read_scopes(
    state: &State,
    params: &Params,
) -> Result<Option<HashSet<Scope>>, ApiError> {
    let mut targets = scope_ids(state, params)?;
    if params.bool("tenant")? == Some(true) {
        targets.push(Scope::Global);
    }
    if targets.is_empty() {
        return Ok(None);
    }
    let mut set: HashSet<Scope> = targets.iter().cloned().collect();
    if params.bool("includeParents")? == Some(true) {
        for target in &targets {
            set.extend(state.parents(target));
        }
    }
    if params.bool("includeChildren")? == Some(true) {
        let all = state
            .accounts
            .iter()
            .map(|a| Scope::Account(a.id.clone()))
            .chain(state.sites.iter().map(|s| Scope::Site(s.id.clone())))
            .chain(state.groups.iter().map(|g| Scope::Group(g.id.clone())));
        for scope in all {
            if targets.iter().any(|target| state.within(&scope, target)) {
                set.insert(scope);
            }
        }
    }
    Ok(Some(set))
}

/// `GET /restrictions` and `GET /exclusions`.
pub(crate) fn get(state: &State, list: ListKind, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(
        &[PAGING_KEYS, GET_KEYS].concat(),
        &["createdAt", "updatedAt"],
    )?;
    let page = PageRequest::from_params(params, endpoint(list), SORT_FIELDS)?;
    let ids: Option<HashSet<String>> = params.list("ids").map(|l| l.into_iter().collect());
    let mut types = params.list("types").unwrap_or_default();
    types.extend(params.text("type")?);
    for kind in &types {
        if !list.types().contains(&kind.as_str()) {
            return Err(params.invalid(
                "type",
                &format!("Must be one of: {}.", list.types().join(", ")),
            ));
        }
    }
    let exact = params.text("value")?;
    let contains = params.list("value__contains").map(Needles::new);
    let os_types = params.list("osTypes");
    let sources = params.list("source");
    let description = params
        .text("description__contains")?
        .map(|d| d.to_lowercase());
    let query = params.text("query")?.map(|q| q.to_lowercase());
    let created = params.time_range("createdAt")?;
    let updated = params.time_range("updatedAt")?;
    let scopes = read_scopes(state, params)?;

    let matches = |entry: &HashEntry| {
        let value_lower = entry.value.as_deref().map(lowered);
        let sha_lower = entry.sha256.as_deref().map(lowered);
        let fields = || {
            value_lower
                .iter()
                .chain(sha_lower.iter())
                .map(|f| f.as_ref())
        };
        ids.as_ref().is_none_or(|ids| ids.contains(&entry.id))
            && (types.is_empty() || types.contains(&entry.kind))
            && exact
                .as_ref()
                .is_none_or(|v| entry.value.as_ref() == Some(v) || entry.sha256.as_ref() == Some(v))
            && contains
                .as_ref()
                .is_none_or(|needles| fields().any(|f| needles.found_in(f)))
            && os_types
                .as_ref()
                .is_none_or(|os| os.contains(&entry.os_type))
            && sources.as_ref().is_none_or(|s| s.contains(&entry.source))
            && description
                .as_ref()
                .is_none_or(|d| entry.description.to_lowercase().contains(d.as_str()))
            && query.as_ref().is_none_or(|q| {
                fields().any(|f| f.contains(q.as_str()))
                    || entry.description.to_lowercase().contains(q.as_str())
            })
            && created.contains(entry.created_at)
            && updated.contains(entry.updated_at)
            && scopes.as_ref().is_none_or(|s| s.contains(&entry.scope))
    };
    let entries = state.entries(list);
    let items: Vec<&HashEntry> = match &contains {
        // Only entries equal to a needle or longer than one can match.
        Some(needles) => state
            .value_candidates(list, needles.iter())
            .into_iter()
            .map(|position| &entries[position])
            .filter(|e| matches(e))
            .collect(),
        None => entries.iter().filter(|e| matches(e)).collect(),
    };
    let page = paginate(items, &page, |entry, sort_by| SortKey {
        primary: match sort_by {
            "createdAt" => SortValue::Int(entry.created_at.timestamp_micros()),
            "updatedAt" => SortValue::Int(entry.updated_at.timestamp_micros()),
            "value" => SortValue::Text(
                entry
                    .value
                    .clone()
                    .or_else(|| entry.sha256.clone())
                    .unwrap_or_default()
                    .to_lowercase(),
            ),
            "osType" => SortValue::Text(entry.os_type.clone()),
            "description" => SortValue::Text(entry.description.clone()),
            _ => SortValue::Null,
        },
        id: entry.id.clone(),
    });
    Ok(page.to_json(|entry| render(state, entry)))
}

/// `POST /restrictions` and `POST /exclusions`: one entry per scope id of the filter.
pub(crate) fn post(state: &mut State, list: ListKind, body: &Value) -> Result<Value, ApiError> {
    let params = Params::required_filter(body)?;
    params.reject_unknown(&["tenant", "accountIds", "siteIds", "groupIds"], &[])?;
    let scopes = write_scopes(state, &params)?;
    let data = body.get("data").unwrap_or(&Value::Null);
    let now = state.now();
    // Validate first with placeholder ids so a rejected request mints nothing.
    let mut entries = Vec::with_capacity(scopes.len());
    for scope in &scopes {
        let entry = entry_from_data(list, data, String::new(), scope.clone(), now)?;
        if let Some(existing) = state.find_duplicate(list, &entry) {
            let hash = entry
                .value
                .clone()
                .or(entry.sha256.clone())
                .unwrap_or_default();
            return Err(ApiError::already_exists(format!(
                "{hash} already exists for {} in {} (id {existing})",
                entry.os_type,
                state.scope_name(&entry.scope),
            )));
        }
        entries.push(entry);
    }
    let mut rendered = Vec::with_capacity(entries.len());
    for mut entry in entries {
        entry.id = state.mint_id();
        rendered.push(render(state, &entry));
        state.insert_entry(list, entry);
    }
    Ok(json!({"data": rendered}))
}

/// `DELETE /restrictions` and `DELETE /exclusions` with `{"data":{"ids":[…],"type"?}}`.
pub(crate) fn delete(state: &mut State, list: ListKind, body: &Value) -> Result<Value, ApiError> {
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return Err(ApiError::missing_field(&["data"]));
    };
    if let Some(unknown) = data.keys().find(|k| !["ids", "type"].contains(&k.as_str())) {
        return Err(ApiError::validation(format!(
            "{{'data': {{'{unknown}': ['Unknown field.']}}}}"
        )));
    }
    let ids: HashSet<String> = match data.get("ids") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ApiError::validation(
                    "{'data': {'ids': ['Not a valid list of strings.']}}",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => HashSet::new(),
    };
    if ids.is_empty() {
        return Err(ApiError::missing_field(&["data", "ids"]));
    }
    let kind = match data.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) if list.types().contains(&kind.as_str()) => Some(kind.clone()),
        Some(_) => {
            return Err(ApiError::validation(format!(
                "{{'data': {{'type': ['Must be one of: {}.']}}}}",
                list.types().join(", ")
            )));
        }
    };
    let affected = state.remove_entries(list, |e| {
        ids.contains(&e.id) && kind.as_ref().is_none_or(|k| *k == e.kind)
    });
    Ok(json!({"data": {"affected": affected}}))
}
