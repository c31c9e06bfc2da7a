//! Threat Intelligence IOCs: `GET`, `POST` and `DELETE /threat-intelligence/iocs`.
//!
//! Owns IOC validation, the create-or-update key (type, lower-cased value, scope), `validUntil`
//! defaults and caps (IPs: +14 days, capped at 30; URLs and domains: +90, capped at 180; hashes:
//! +180, capped at 180, all from the upload time), and scope selection. A POST whose filter names
//! no `accountIds`, `siteIds` or `groupIds` is answered 500, as real consoles do; when several
//! kinds are named the narrowest wins (groups, then sites, then accounts). It does not route
//! requests.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::lists::USER_NAME;
use super::model::{Ioc, Scope, hex32, ts};
use super::paging::{PAGING_KEYS, PageRequest, SortKey, SortValue, paginate};
use super::params::{ApiError, Params, is_hex};
use super::state::State;

const IOC_TYPES: &[&str] = &["DNS", "IPV4", "IPV6", "MD5", "SHA1", "SHA256", "URL"];

/// Optional IOC fields kept as posted.
const STRING_FIELDS: &[&str] = &[
    "name",
    "description",
    "externalId",
    "metadata",
    "creationTime",
    "creator",
    "pattern",
    "patternType",
];
const LIST_FIELDS: &[&str] = &[
    "reference",
    "category",
    "labels",
    "threatActors",
    "threatActorTypes",
    "mitreTactic",
    "intrusionSets",
    "campaignNames",
    "malwareNames",
];
const NUMBER_FIELDS: &[&str] = &["originalRiskScore", "severity"];

fn item_error(index: Option<usize>, key: &str, message: &str) -> ApiError {
    match index {
        Some(i) => ApiError::validation(format!("{{'data': {{{i}: {{'{key}': ['{message}']}}}}}}")),
        None => ApiError::validation(format!("{{'{key}': ['{message}']}}")),
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// Validates one IOC and builds it, without a uuid (the state gives it one).
pub(crate) fn build_ioc(
    item: &Value,
    scope: Scope,
    upload_time: DateTime<Utc>,
    batch_id: &str,
) -> Result<Ioc, ApiError> {
    build_indexed(item, None, scope, upload_time, batch_id)
}

fn build_indexed(
    item: &Value,
    index: Option<usize>,
    scope: Scope,
    upload_time: DateTime<Utc>,
    batch_id: &str,
) -> Result<Ioc, ApiError> {
    let err = |key: &str, message: &str| item_error(index, key, message);
    let Some(object) = item.as_object() else {
        return Err(err("_schema", "Invalid input type."));
    };
    for key in object.keys() {
        let known = ["type", "value", "source", "method", "validUntil"].contains(&key.as_str())
            || STRING_FIELDS.contains(&key.as_str())
            || LIST_FIELDS.contains(&key.as_str())
            || NUMBER_FIELDS.contains(&key.as_str());
        if !known {
            return Err(err(key, "Unknown field."));
        }
    }
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(err(key, "Not a valid string.")),
        }
    };
    let required = |key: &str| -> Result<String, ApiError> {
        text(key)?
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| err(key, "Missing data for required field."))
    };
    let kind = required("type")?;
    if !IOC_TYPES.contains(&kind.as_str()) {
        return Err(err(
            "type",
            &format!("Must be one of: {}.", IOC_TYPES.join(", ")),
        ));
    }
    let value = required("value")?;
    let valid_value = match kind.as_str() {
        "IPV4" => value.parse::<Ipv4Addr>().is_ok(),
        "IPV6" => value.parse::<Ipv6Addr>().is_ok(),
        "MD5" => is_hex(&value, 32),
        "SHA1" => is_hex(&value, 40),
        "SHA256" => is_hex(&value, 64),
        _ => !value.chars().any(char::is_whitespace),
    };
    if !valid_value {
        return Err(err("value", &format!("Not a valid {kind} value.")));
    }
    let method = required("method")?;
    if method != "EQUALS" {
        return Err(err("method", "Must be one of: EQUALS."));
    }
    let source = required("source")?;
    for key in STRING_FIELDS {
        text(key)?;
    }
    for key in LIST_FIELDS {
        match object.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => return Err(err(key, "Not a valid list of strings.")),
        }
    }
    for key in NUMBER_FIELDS {
        match object.get(*key) {
            None | Some(Value::Null) | Some(Value::Number(_)) => {}
            Some(_) => return Err(err(key, "Not a valid integer.")),
        }
    }
    let (default_days, cap_days) = match kind.as_str() {
        "IPV4" | "IPV6" => (14, 30),
        "DNS" | "URL" => (90, 180),
        _ => (180, 180),
    };
    let cap = upload_time + Duration::days(cap_days);
    let valid_until = match text("validUntil")? {
        None => upload_time + Duration::days(default_days),
        Some(raw) => parse_time(&raw).ok_or_else(|| err("validUntil", "Not a valid datetime."))?,
    }
    .min(cap);
    let mut fields = Map::new();
    fields.insert("source".to_string(), json!(source));
    fields.insert("method".to_string(), json!(method));
    for (key, val) in object {
        if !["type", "value", "source", "method", "validUntil"].contains(&key.as_str()) {
            fields.insert(key.clone(), val.clone());
        }
    }
    Ok(Ioc {
        uuid: String::new(),
        batch_id: batch_id.to_string(),
        scope,
        kind,
        value,
        upload_time,
        updated_at: upload_time,
        valid_until,
        fields,
    })
}

/// An IOC as the console shows it.
pub(crate) fn render(ioc: &Ioc) -> Value {
    let mut out = json!({
        "batchId": ioc.batch_id,
        "campaignNames": [],
        "category": [],
        "creationTime": null,
        "creator": USER_NAME,
        "description": null,
        "externalId": null,
        "intrusionSets": [],
        "labels": [],
        "malwareNames": [],
        "metadata": null,
        "method": "EQUALS",
        "mitreTactic": [],
        "name": null,
        "originalRiskScore": null,
        "pattern": null,
        "patternType": null,
        "reference": [],
        "scope": ioc.scope.level(),
        "scopeId": ioc.scope.id(),
        "severity": null,
        "source": null,
        "threatActorTypes": [],
        "threatActors": [],
        "type": ioc.kind,
        "updatedAt": ts(ioc.updated_at),
        "uploadTime": ts(ioc.upload_time),
        "uuid": ioc.uuid,
        "validUntil": ts(ioc.valid_until),
        "value": ioc.value,
    });
    if let Some(object) = out.as_object_mut() {
        for (key, value) in &ioc.fields {
            object.insert(key.clone(), value.clone());
        }
    }
    out
}

/// The scope ids a filter names, checked.
fn named_scopes(state: &State, params: &Params) -> Result<Vec<Scope>, ApiError> {
    let mut out = Vec::new();
    for id in params.list("groupIds").unwrap_or_default() {
        if state.group(&id).is_none() {
            return Err(ApiError::invalid_identifier(format!(
                "Group id {id} doesn't match any group"
            )));
        }
        out.push(Scope::Group(id));
    }
    for id in params.list("siteIds").unwrap_or_default() {
        if state.site(&id).is_none() {
            return Err(ApiError::invalid_identifier(format!(
                "Site id {id} doesn't match any site"
            )));
        }
        out.push(Scope::Site(id));
    }
    for id in params.list("accountIds").unwrap_or_default() {
        if state.account(&id).is_none() {
            return Err(ApiError::invalid_identifier(format!(
                "Account id {id} doesn't match any account"
            )));
        }
        out.push(Scope::Account(id));
    }
    Ok(out)
}

/// `POST /threat-intelligence/iocs`: create or update each IOC in each scope of the filter.
pub(crate) fn post(state: &mut State, body: &Value) -> Result<Value, ApiError> {
    let params = match body.get("filter") {
        None | Some(Value::Null) => Params::default(),
        Some(filter) => Params::from_filter(filter)?,
    };
    params.reject_unknown(&["accountIds", "siteIds", "groupIds", "tenant"], &[])?;
    let named = named_scopes(state, &params)?;
    // The narrowest kind named wins.
    let Some(level) = named.first().map(Scope::level) else {
        return Err(ApiError::server_error(
            "Internal server error (no accountIds, siteIds or groupIds in filter)",
        ));
    };
    let mut seen = HashSet::new();
    let scopes: Vec<Scope> = named
        .into_iter()
        .filter(|s| s.level() == level && seen.insert(s.clone()))
        .collect();
    let Some(items) = body.get("data").and_then(Value::as_array) else {
        return Err(ApiError::missing_field(&["data"]));
    };
    let now = state.now();
    // The batch id is derived from the content, so it needs no minted id and a rejected
    // request changes nothing.
    let batch_id = hex32(&format!("batch-{}-{}", ts(now), body));
    let mut built = Vec::with_capacity(items.len() * scopes.len());
    for scope in &scopes {
        for (index, item) in items.iter().enumerate() {
            built.push(build_indexed(
                item,
                Some(index),
                scope.clone(),
                now,
                &batch_id,
            )?);
        }
    }
    let mut rendered = Vec::with_capacity(built.len());
    for ioc in built {
        rendered.push(render(state.upsert_ioc(ioc)));
    }
    Ok(json!({"data": rendered}))
}

const GET_KEYS: &[&str] = &[
    "value",
    "type",
    "externalId",
    "accountIds",
    "siteIds",
    "groupIds",
    "tenant",
    "uuids",
    "batchId",
    "source",
    "name__contains",
    "description__contains",
    "creator__contains",
    // Accepted and ignored.
    "category__in",
    "severity",
    "malwareNames__in",
    "threatActors__in",
    "threatActorTypes__in",
    "labels__in",
    "campaignNames__in",
];

const TIME_FIELDS: &[&str] = &["uploadTime", "updatedAt", "validUntil"];

/// A compiled IOC selection (GET query or DELETE filter).
struct IocFilter {
    scopes: Option<Vec<Scope>>,
    value: Option<String>,
    kind: Option<String>,
    external_id: Option<String>,
    uuids: Option<HashSet<String>>,
    batch_id: Option<String>,
    sources: Option<Vec<String>>,
    name_contains: Option<String>,
    description_contains: Option<String>,
    creator_contains: Option<String>,
    upload: super::params::TimeRange,
    updated: super::params::TimeRange,
    valid_until: super::params::TimeRange,
}

impl IocFilter {
    fn from_params(state: &State, params: &Params) -> Result<IocFilter, ApiError> {
        let named = named_scopes(state, params)?;
        let lower = |key: &str| -> Result<Option<String>, ApiError> {
            Ok(params.text(key)?.map(|v| v.to_lowercase()))
        };
        Ok(IocFilter {
            scopes: (!named.is_empty()).then_some(named),
            value: lower("value")?,
            kind: lower("type")?,
            external_id: params.text("externalId")?,
            uuids: params.list("uuids").map(|l| l.into_iter().collect()),
            batch_id: params.text("batchId")?,
            sources: params.list("source"),
            name_contains: lower("name__contains")?,
            description_contains: lower("description__contains")?,
            creator_contains: lower("creator__contains")?,
            upload: params.time_range("uploadTime")?,
            updated: params.time_range("updatedAt")?,
            valid_until: params.time_range("validUntil")?,
        })
    }

    /// True when the filter selects particular IOCs rather than a whole scope.
    fn has_selector(&self) -> bool {
        self.value.is_some()
            || self.kind.is_some()
            || self.external_id.is_some()
            || self.uuids.is_some()
            || self.batch_id.is_some()
            || self.sources.is_some()
            || self.name_contains.is_some()
            || self.description_contains.is_some()
            || self.creator_contains.is_some()
    }

    fn matches(&self, state: &State, ioc: &Ioc) -> bool {
        let field = |key: &str| {
            ioc.fields
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_lowercase)
        };
        let contains = |key: &str, needle: &Option<String>| {
            needle
                .as_ref()
                .is_none_or(|n| field(key).is_some_and(|f| f.contains(n.as_str())))
        };
        self.scopes
            .as_ref()
            .is_none_or(|scopes| scopes.iter().any(|s| state.within(&ioc.scope, s)))
            && self
                .value
                .as_ref()
                .is_none_or(|v| *v == ioc.value.to_lowercase())
            && self
                .kind
                .as_ref()
                .is_none_or(|k| *k == ioc.kind.to_lowercase())
            && self.external_id.as_ref().is_none_or(|e| {
                ioc.fields.get("externalId").and_then(Value::as_str) == Some(e.as_str())
            })
            && self.uuids.as_ref().is_none_or(|u| u.contains(&ioc.uuid))
            && self.batch_id.as_ref().is_none_or(|b| *b == ioc.batch_id)
            && self.sources.as_ref().is_none_or(|s| {
                ioc.fields
                    .get("source")
                    .and_then(Value::as_str)
                    .is_some_and(|src| s.iter().any(|x| x == src))
            })
            && contains("name", &self.name_contains)
            && contains("description", &self.description_contains)
            && (self.creator_contains.is_none() || {
                let creator = field("creator").unwrap_or_else(|| USER_NAME.to_lowercase());
                self.creator_contains
                    .as_ref()
                    .is_some_and(|c| creator.contains(c.as_str()))
            })
            && self.upload.contains(ioc.upload_time)
            && self.updated.contains(ioc.updated_at)
            && self.valid_until.contains(ioc.valid_until)
    }
}

/// `GET /threat-intelligence/iocs`. `accountIds`/`siteIds` select IOCs of those scopes and of the
/// scopes below them.
pub(crate) fn get(state: &State, params: &Params) -> Result<Value, ApiError> {
    params.reject_unknown(&[PAGING_KEYS, GET_KEYS].concat(), TIME_FIELDS)?;
    let page = PageRequest::from_params(
        params,
        "/threat-intelligence/iocs",
        &[
            "id",
            "uploadTime",
            "updatedAt",
            "type",
            "source",
            "creationTime",
        ],
    )?;
    let filter = IocFilter::from_params(state, params)?;
    let items: Vec<&Ioc> = state
        .iocs()
        .iter()
        .filter(|ioc| filter.matches(state, ioc))
        .collect();
    let page = paginate(items, &page, |ioc, sort_by| SortKey {
        primary: match sort_by {
            "uploadTime" => SortValue::Int(ioc.upload_time.timestamp_micros()),
            "updatedAt" => SortValue::Int(ioc.updated_at.timestamp_micros()),
            "type" => SortValue::Text(ioc.kind.clone()),
            "source" | "creationTime" => ioc
                .fields
                .get(sort_by)
                .and_then(Value::as_str)
                .map_or(SortValue::Null, |s| SortValue::Text(s.to_string())),
            _ => SortValue::Null,
        },
        id: ioc.uuid.clone(),
    });
    Ok(page.to_json(|ioc| render(ioc)))
}

/// `DELETE /threat-intelligence/iocs`: the filter needs a scope and at least one other field.
pub(crate) fn delete(state: &mut State, body: &Value) -> Result<Value, ApiError> {
    let params = Params::required_filter(body)?;
    params.reject_unknown(GET_KEYS, TIME_FIELDS)?;
    let filter = IocFilter::from_params(state, &params)?;
    let tenant = params.bool("tenant")? == Some(true);
    if filter.scopes.is_none() && !tenant {
        return Err(params.invalid("accountIds", "Missing data for required field."));
    }
    if !filter.has_selector() {
        return Err(ApiError::validation(
            "{'filter': ['The filter needs accountIds and at least one other field.']}",
        ));
    }
    let affected = state.remove_iocs(|state, ioc| filter.matches(state, ioc));
    Ok(json!({"data": {"affected": affected}}))
}
