//! How one hunt query is sent and read, per engine. Both engines take the same filter text
//! (in their language, see [`super::plan`]) and hand back the matched events in one shape:
//! JSON objects under Deep Visibility's camelCase keys (`eventTime` as RFC 3339 text,
//! `endpointName`, `agentId` or `agentUuid`, the searched fields…), so mapping events back
//! to indicators is the same code whichever engine found them.
//!
//! Deep Visibility: `POST /dv/init-query` (`query`, `fromDate`/`toDate` in epoch
//! milliseconds, `limit`, `queryType: ["events"]`, `isVerbose`, `siteIds`/`accountIds`) →
//! `GET /dv/query-status` (`data.responseState`, `data.progressStatus`,
//! `data.responseError`) → `GET /dv/events` (cursor-paged): redcanaryco/surveyor
//! `products/sentinel_one.py` (`_run_query`, `_get_dv_events`).
//!
//! PowerQuery: `POST /dv/events/pq` (`query`, `fromDate`/`toDate` as date-time strings,
//! `limit` 1–100,000, `siteIds`/`accountIds`: `DeepVisibilityPQRequestSchema`, ayol377/
//! sentinelone-rs `services/deep_visibility.rs`; XSOAR SentinelOne-V2
//! `get_power_query_request`), whose answer may already be the finished query, else
//! `GET /dv/events/pq-ping?queryId=` until `data.status` is `FINISHED` with `data.progress`
//! 100 (XSOAR `get_power_query_output`; surveyor); the rows are `data.data`, arrays of cells
//! in the order of `data.columns[].name` (XSOAR `get_columns_from_result` and
//! `test_data/get_power_query_response.json`, where `event.time` is epoch milliseconds); a
//! failed query's reason is the top-level `errors` (surveyor). The query text ends with
//! `| columns key = field, …` (renaming each field to its Deep Visibility key, as XSOAR's
//! example `| columns eventTime = event.time, agentUuid = agent.uuid, siteId = site.id`) and
//! `| limit N` (the console returns 1,000 rows without it: XSOAR's recorded recommendation
//! "Result set limited to 1000 rows by default … add a command like \"| limit 10000\"").
//! Sites are also named in the text (`site.id in (…)`): surveyor found that "PQ seems to not
//! honor site IDs provided in POST request body".
//!
//! Terminal failure states of both: `FAILED`, `FAILED_CLIENT`, `ERROR`, `QUERY_CANCELLED`,
//! `TIMED_OUT`, `QUERY_EXPIRED` (the v2.1 spec's status enum as ayol377/sentinelone-rs
//! `models/deep_visibility.rs` keeps it; Google SecOps SentinelOneV2, reference §12). Status
//! polls start 1 s apart and double up to `max_poll_seconds`. Rate limits:
//! `api::rate::FAMILY_LIMITS`.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::plan::{self, Language, Query, SEARCHED, quoted};
use crate::action::TargetId;
use crate::api::ApiClient;
use crate::error::{ErrorCode, Failure};
use crate::indicator::IndicatorType;

/// The longest Deep Visibility query text sent. No source states SentinelOne's limit
/// (UNCONFIRMED); 10,000 characters keeps the JSON body small and is far below any HTTP body
/// limit.
pub const MAX_QUERY_CHARS: usize = 10_000;

/// The longest PowerQuery text sent, its `| columns … | limit N` tail included: surveyor
/// splits its PowerQuery terms when "query is suspected to contain more than 8192 total
/// characters (current PQ limitation)".
pub const MAX_PQ_QUERY_CHARS: usize = 8_192;

/// Longest wait for one query to finish when the run has no deadline.
const MAX_QUERY_WAIT: Duration = Duration::from_secs(30 * 60);

const FAILED_STATES: &[&str] = &[
    "FAILED",
    "FAILED_CLIENT",
    "ERROR",
    "QUERY_CANCELLED",
    "TIMED_OUT",
    "QUERY_EXPIRED",
];

/// The columns every PowerQuery row carries besides the searched fields: (key, field).
const PQ_COLUMNS: &[(&str, &str)] = &[
    ("eventTime", "event.time"),
    ("agentUuid", "agent.uuid"),
    ("endpointName", "endpoint.name"),
    ("siteId", "site.id"),
    ("siteName", "site.name"),
    ("eventType", "event.type"),
    ("srcProcName", "src.process.name"),
];

/// A way of running a hunt query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Engine {
    PowerQuery,
    DeepVisibility,
}

/// What every query of a run shares.
#[derive(Debug)]
pub(super) struct Search {
    pub(super) from: DateTime<Utc>,
    pub(super) to: DateTime<Utc>,
    pub(super) site_ids: Vec<String>,
    pub(super) account_ids: Vec<String>,
    /// At most this many events per query.
    pub(super) cap: u32,
    /// Longest wait between two status polls.
    pub(super) max_poll: Duration,
}

impl Engine {
    /// One query of this engine, in a sentence.
    pub(super) fn query_noun(self) -> &'static str {
        match self {
            Self::PowerQuery => "PowerQuery",
            Self::DeepVisibility => "Deep Visibility query",
        }
    }

    fn language(self) -> Language {
        match self {
            Self::PowerQuery => Language::PowerQuery,
            Self::DeepVisibility => Language::S1ql,
        }
    }

    /// The longest filter text of one query.
    pub(super) fn bound(self, search: &Search) -> usize {
        match self {
            Self::DeepVisibility => MAX_QUERY_CHARS,
            Self::PowerQuery => MAX_PQ_QUERY_CHARS.saturating_sub(pq_text("", search).len()),
        }
    }

    /// Packs `items` into as few queries as [`Engine::bound`] allows; see [`plan::plan`].
    pub(super) fn plan(
        self,
        items: &[(TargetId, IndicatorType, String)],
        search: &Search,
    ) -> (Vec<Query>, Vec<TargetId>) {
        plan::plan(self.language(), items, self.bound(search))
    }

    /// Runs one query (its filter text) to its end and returns its events.
    pub(super) fn run(
        self,
        client: &ApiClient,
        filter: &str,
        search: &Search,
    ) -> Result<Vec<Value>, Failure> {
        match self {
            Self::DeepVisibility => run_dv(client, filter, search),
            Self::PowerQuery => run_pq(client, filter, search),
        }
    }
}

/// The scope both engines take in the body.
fn scoped(mut body: Value, search: &Search) -> Value {
    for (key, list) in [
        ("siteIds", &search.site_ids),
        ("accountIds", &search.account_ids),
    ] {
        if !list.is_empty() {
            body[key] = json!(list);
        }
    }
    body
}

fn run_dv(client: &ApiClient, filter: &str, search: &Search) -> Result<Vec<Value>, Failure> {
    let engine = Engine::DeepVisibility;
    let body = scoped(
        json!({
            "fromDate": search.from.timestamp_millis(),
            "toDate": search.to.timestamp_millis(),
            "limit": search.cap,
            "queryType": ["events"],
            "isVerbose": false,
            "query": filter,
        }),
        search,
    );
    let started = client.post("/dv/init-query", &body)?;
    let Some(id) = started.pointer("/data/queryId").and_then(Value::as_str) else {
        return Err(no_query_id(engine));
    };
    let query = [("queryId", id.to_string())];
    let status = |client: &ApiClient| -> Result<Option<()>, Failure> {
        let answer = client.get("/dv/query-status", &query)?;
        let data = answer.get("data").unwrap_or(&Value::Null);
        let reason = text(data, "responseError");
        let done = finished(engine, data, "responseState", "progressStatus", reason)?;
        Ok(done.then_some(()))
    };
    let first = status(client)?;
    until_done(client, engine, search.max_poll, first, || status(client))?;
    client
        .pages("/dv/events", vec![("queryId", id.to_string())], "/data")
        .all_items()
}

fn run_pq(client: &ApiClient, filter: &str, search: &Search) -> Result<Vec<Value>, Failure> {
    let engine = Engine::PowerQuery;
    let body = scoped(
        json!({
            "query": pq_text(filter, search),
            "fromDate": search.from.to_rfc3339_opts(SecondsFormat::Millis, true),
            "toDate": search.to.to_rfc3339_opts(SecondsFormat::Millis, true),
            "limit": search.cap,
        }),
        search,
    );
    let answer = client.post("/dv/events/pq", &body)?;
    let Some(id) = answer.pointer("/data/queryId").and_then(Value::as_str) else {
        return Err(no_query_id(engine));
    };
    let query = [("queryId", id.to_string())];
    let first = pq_rows(&answer)?;
    until_done(client, engine, search.max_poll, first, || {
        pq_rows(&client.get("/dv/events/pq-ping", &query)?)
    })
}

/// The full PowerQuery text of a filter: scoped to the sites, then its columns and limit.
fn pq_text(filter: &str, search: &Search) -> String {
    let scoped = if search.site_ids.is_empty() {
        filter.to_string()
    } else {
        let sites: Vec<String> = search.site_ids.iter().map(|id| quoted(id)).collect();
        format!("({filter}) and site.id in ({})", sites.join(","))
    };
    let searched = SEARCHED
        .iter()
        .flat_map(|fields| fields.iter())
        .map(|field| (field.key, Language::PowerQuery.name(field)));
    let columns: Vec<String> = PQ_COLUMNS
        .iter()
        .copied()
        .chain(searched)
        .map(|(key, field)| format!("{key} = {field}"))
        .collect();
    format!(
        "{scoped} | columns {} | limit {}",
        columns.join(", "),
        search.cap
    )
}

/// The rows of a finished PowerQuery answer as events; `None` while it runs.
fn pq_rows(answer: &Value) -> Result<Option<Vec<Value>>, Failure> {
    let data = answer.get("data").unwrap_or(&Value::Null);
    let reason = answer.pointer("/errors/0/detail").and_then(Value::as_str);
    if !finished(Engine::PowerQuery, data, "status", "progress", reason)? {
        return Ok(None);
    }
    let names: Vec<&str> = data
        .get("columns")
        .and_then(Value::as_array)
        .map(|columns| {
            columns
                .iter()
                .map(|column| column.get("name").and_then(Value::as_str).unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    let rows = data.get("data").and_then(Value::as_array);
    let events = rows
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .map(|cells| {
            let event: Map<String, Value> = names
                .iter()
                .zip(cells)
                .map(|(name, cell)| match (*name, cell.as_i64()) {
                    ("eventTime", Some(millis)) => {
                        let time = DateTime::from_timestamp_millis(millis)
                            .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true));
                        (name.to_string(), json!(time))
                    }
                    _ => (name.to_string(), cell.clone()),
                })
                .collect();
            Value::Object(event)
        })
        .collect();
    Ok(Some(events))
}

/// Whether a status answer says the query finished; `Err` when it ended any other way.
fn finished(
    engine: Engine,
    data: &Value,
    state_key: &str,
    progress_key: &str,
    reason: Option<&str>,
) -> Result<bool, Failure> {
    let state = text(data, state_key).unwrap_or("").to_ascii_uppercase();
    if FAILED_STATES.contains(&state.as_str()) {
        let reason = reason.unwrap_or(&state);
        return Err(Failure::new(
            ErrorCode::UpstreamRejected,
            format!("The {} did not finish ({reason})", engine.query_noun()),
        )
        .not_retryable());
    }
    Ok(state == "FINISHED" || data.get(progress_key).and_then(Value::as_u64) == Some(100))
}

/// Polls with backoff (1 s doubling up to `max_poll`) until `poll` has an answer, starting
/// from `first`; gives up at the run deadline (or after [`MAX_QUERY_WAIT`]).
fn until_done<T>(
    client: &ApiClient,
    engine: Engine,
    max_poll: Duration,
    first: Option<T>,
    mut poll: impl FnMut() -> Result<Option<T>, Failure>,
) -> Result<T, Failure> {
    let give_up = client
        .deadline()
        .unwrap_or_else(|| Instant::now() + MAX_QUERY_WAIT);
    let mut wait = Duration::from_secs(1);
    let mut answer = first;
    loop {
        if let Some(done) = answer {
            return Ok(done);
        }
        if Instant::now() + wait > give_up {
            return Err(Failure::new(
                ErrorCode::RunDeadline,
                format!(
                    "The {} was still running when the time allowed ran out",
                    engine.query_noun()
                ),
            ));
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(max_poll);
        answer = poll()?;
    }
}

fn no_query_id(engine: Engine) -> Failure {
    Failure::new(
        ErrorCode::UpstreamBadResponse,
        format!(
            "SentinelOne started the {} without a query id",
            engine.query_noun()
        ),
    )
}

/// A non-empty text field of an event or answer, trimmed.
pub(super) fn text<'e>(event: &'e Value, key: &str) -> Option<&'e str> {
    event
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// Whether a failure of the first PowerQuery means the console has no PowerQuery, so `auto`
/// falls back to Deep Visibility: an unknown route (404, 405, 501) or a refusal of the
/// feature for this token (403). No source says which answer a console without PowerQuery
/// gives (UNCONFIRMED); a 400 is not one of them: it is the console's answer to a query it
/// cannot parse (surveyor issue #103), which Deep Visibility would not fix.
pub(super) fn means_no_powerquery(failure: &Failure) -> bool {
    matches!(failure.http_status, Some(403 | 404 | 405 | 501))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(sites: &[&str]) -> Search {
        Search {
            from: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            to: DateTime::from_timestamp(3600, 0).unwrap_or_default(),
            site_ids: sites.iter().map(|id| (*id).to_string()).collect(),
            account_ids: Vec::new(),
            cap: 20_000,
            max_poll: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_powerquery_names_its_sites_columns_and_limit_within_the_bound() {
        let search = search(&["2001"]);
        let text = pq_text("(dst.ip.address in:anycase (\"10.0.0.1\"))", &search);
        assert!(text.starts_with(
            "((dst.ip.address in:anycase (\"10.0.0.1\"))) and site.id in (\"2001\") | columns eventTime = event.time, "
        ));
        assert!(text.contains(", dstIp = dst.ip.address, "));
        assert!(text.ends_with(" | limit 20000"));
        let bound = Engine::PowerQuery.bound(&search);
        assert_eq!(bound + pq_text("", &search).len(), MAX_PQ_QUERY_CHARS);
    }

    #[test]
    fn rows_are_read_by_column_name_with_the_time_as_text() {
        let answer = json!({ "data": {
            "queryId": "pq1", "status": "FINISHED", "progress": 100,
            "columns": [{ "name": "eventTime", "type": "INTEGER" }, { "name": "dstIp", "type": "STRING" }],
            "data": [[1724151854609_i64, "10.0.0.1"]],
        }});
        let rows = pq_rows(&answer).unwrap_or_default().unwrap_or_default();
        assert_eq!(
            rows,
            vec![json!({ "eventTime": "2024-08-20T11:04:14.609Z", "dstIp": "10.0.0.1" })]
        );
        let running = json!({ "data": { "queryId": "pq1", "status": "RUNNING", "progress": 40 } });
        assert_eq!(pq_rows(&running).ok(), Some(None));
    }

    #[test]
    fn a_failed_query_reports_the_console_reason() {
        let answer = json!({
            "data": { "queryId": "pq1", "status": "FAILED", "progress": 100 },
            "errors": [{ "code": 4000040, "detail": "bad field" }],
        });
        let failure = pq_rows(&answer).err();
        assert_eq!(
            failure.map(|failure| failure.message),
            Some("The PowerQuery did not finish (bad field)".to_string())
        );
    }

    #[test]
    fn only_an_unknown_route_or_a_refused_feature_means_no_powerquery() {
        let with = |status| Failure::new(ErrorCode::UpstreamRejected, "x").with_http_status(status);
        assert!(means_no_powerquery(&with(404)));
        assert!(means_no_powerquery(&with(403)));
        assert!(!means_no_powerquery(&with(400)));
        assert!(!means_no_powerquery(&with(500)));
    }
}
