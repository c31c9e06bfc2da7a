//! Deep Visibility: `POST /dv/init-query`, `GET /dv/query-status`, `GET /dv/events`.
//!
//! Shapes follow redcanaryco/surveyor `products/sentinel_one.py` (the body `query`, `fromDate`,
//! `toDate`, `siteIds`/`accountIds`, `limit` up to 20,000; `data.queryId`; status
//! `data.progressStatus` / `data.responseState` with `FAILED` and `responseError`; events
//! cursor-paged under `data`). The query language is not parsed: a query matches the events
//! that carry, in one of the searched fields, one of the quoted values of its text, compared
//! without case, within the time window and scope. It does not route requests.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::params::{ApiError, Params};
use super::state::State;

/// The event fields a query's quoted values are compared with.
const SEARCHED: &[&str] = &[
    "tgtFileSha1",
    "srcProcImageSha1",
    "tgtFileSha256",
    "srcProcImageSha256",
    "tgtFileMd5",
    "srcProcImageMd5",
    "dstIp",
    "dnsRequest",
    "url",
    "tgtFilePath",
    "srcProcImagePath",
];

/// The largest `limit` of `/dv/events` (surveyor issue #128: DV took up to 20,000).
const MAX_EVENTS_LIMIT: u64 = 20_000;

/// A started query.
#[derive(Debug, Clone)]
pub(crate) struct DvQuery {
    /// The events it found, capped.
    events: Vec<Value>,
    polls: u32,
    failed: bool,
}

/// The quoted values of a query's text (a backslash escapes the next character), lower-cased.
fn quoted_values(query: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        match (&mut current, c) {
            (None, '"') => current = Some(String::new()),
            (None, _) => {}
            (Some(value), '\\') => value.extend(chars.next()),
            (Some(_), '"') => values.extend(current.take().map(|value| value.to_lowercase())),
            (Some(value), c) => value.push(c),
        }
    }
    values
}

/// Whether a scenario's `refuse_containing` / `fail_containing` text is in a query.
pub(crate) fn mentions(pattern: Option<&String>, query: &str) -> bool {
    pattern.is_some_and(|text| query.contains(text.as_str()))
}

pub(crate) fn time_of(body: &Value, key: &str) -> Option<DateTime<Utc>> {
    match body.get(key)? {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.with_timezone(&Utc)),
        Value::Number(millis) => DateTime::from_timestamp_millis(millis.as_i64()?),
        _ => None,
    }
}

fn ids(body: &Value, key: &str) -> Option<Vec<String>> {
    body.get(key)?.as_array().map(|list| {
        list.iter()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect()
    })
}

/// The seeded events a query finds: within the body's `fromDate`..`toDate` and scope
/// (`siteIds`, `accountIds`), carrying one of the quoted values of `filter` in a searched
/// field, at most `limit` of them. Deep Visibility and PowerQuery search alike.
pub(crate) fn search(
    state: &State,
    body: &Value,
    filter: &str,
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    let (Some(from), Some(to)) = (time_of(body, "fromDate"), time_of(body, "toDate")) else {
        return Err(ApiError::validation(
            "{'fromDate': ['Missing data for required field.']}",
        ));
    };
    let values = quoted_values(filter);
    let sites = ids(body, "siteIds");
    let accounts = ids(body, "accountIds");
    let in_scope = |event: &Value, key: &str, scope: &Option<Vec<String>>| match scope {
        None => true,
        Some(list) if list.is_empty() => true,
        Some(list) => event
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|id| list.iter().any(|wanted| wanted == id)),
    };
    Ok(state
        .dv_events
        .iter()
        .filter(|event| {
            let time = time_of(event, "eventTime");
            time.is_none_or(|time| time >= from && time <= to)
        })
        .filter(|event| {
            in_scope(event, "siteId", &sites) && in_scope(event, "accountId", &accounts)
        })
        .filter(|event| {
            SEARCHED.iter().any(|field| {
                event
                    .get(*field)
                    .and_then(Value::as_str)
                    .is_some_and(|text| values.contains(&text.to_lowercase()))
            })
        })
        .take(limit)
        .cloned()
        .collect())
}

/// `POST /dv/init-query`.
pub(crate) fn init_query(state: &mut State, body: &Value) -> Result<Value, ApiError> {
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing_field(&["query"]))?;
    if mentions(state.dv.refuse_containing.as_ref(), query) {
        return Err(ApiError::validation(format!(
            "could not parse query: {query}"
        )));
    }
    let limit = body
        .get("limit")
        .and_then(Value::as_u64)
        .and_then(|limit| usize::try_from(limit).ok())
        .unwrap_or(usize::MAX)
        .min(state.dv.result_cap);
    let events = search(state, body, query, limit)?;
    let failed = mentions(state.dv.fail_containing.as_ref(), query);
    let id = format!("q{}", state.mint_id());
    state.dv_queries.insert(
        id.clone(),
        DvQuery {
            events,
            polls: 0,
            failed,
        },
    );
    Ok(json!({ "data": { "queryId": id } }))
}

fn query_of<'s>(state: &'s mut State, params: &Params) -> Result<&'s mut DvQuery, ApiError> {
    let id = params
        .text("queryId")?
        .ok_or_else(|| ApiError::validation("{'queryId': ['Missing data for required field.']}"))?;
    state
        .dv_queries
        .get_mut(&id)
        .ok_or_else(|| ApiError::invalid_identifier(format!("Query id {id} not found")))
}

/// `GET /dv/query-status`: `RUNNING` until the scenario's `polls_to_finish`-th call.
pub(crate) fn query_status(state: &mut State, params: &Params) -> Result<Value, ApiError> {
    let needed = state.dv.polls_to_finish.max(1);
    let query = query_of(state, params)?;
    query.polls += 1;
    let done = query.polls >= needed;
    let progress = (query.polls * 100 / needed).min(100);
    let data = match (query.failed, done) {
        (true, true) => json!({ "progressStatus": 100, "responseState": "FAILED",
                                "responseError": "The query failed to run" }),
        (_, true) => json!({ "progressStatus": 100, "responseState": "FINISHED" }),
        (_, false) => json!({ "progressStatus": progress, "responseState": "RUNNING" }),
    };
    Ok(json!({ "data": data }))
}

/// `GET /dv/events`: the events of a finished query, cursor-paged (the cursor is an offset).
pub(crate) fn events(state: &mut State, params: &Params) -> Result<Value, ApiError> {
    let limit = params.uint("limit")?.unwrap_or(10);
    if limit == 0 || limit > MAX_EVENTS_LIMIT {
        return Err(ApiError::validation(
            "{'limit': ['Must be between 1 and 20000.']}",
        ));
    }
    let offset: usize = match params.text("cursor")? {
        None => 0,
        Some(cursor) => cursor
            .parse()
            .map_err(|_| ApiError::validation("{'cursor': ['Invalid cursor.']}"))?,
    };
    let needed = state.dv.polls_to_finish.max(1);
    let query = query_of(state, params)?;
    if query.polls < needed || query.failed {
        return Err(ApiError::validation("The query has not finished"));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let page: Vec<Value> = query
        .events
        .iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    let next = offset + page.len();
    let next_cursor = (next < query.events.len()).then(|| next.to_string());
    Ok(json!({
        "data": page,
        "pagination": { "totalItems": query.events.len(), "nextCursor": next_cursor },
    }))
}
