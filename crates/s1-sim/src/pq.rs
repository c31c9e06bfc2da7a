//! PowerQuery: `POST /dv/events/pq` and `GET /dv/events/pq-ping`, over the scenario's
//! `dv_events`.
//!
//! Sources. The body (`query`, `fromDate`, `toDate` as date-time strings or, as surveyor sends
//! them, epoch milliseconds, `accountIds`/`siteIds` of 1–500 items, `limit` 1–100,000):
//! `DeepVisibilityPQRequestSchema` as ayol377/sentinelone-rs
//! `crates/sentinelone-api-rs/src/services/deep_visibility.rs` keeps it. The answer
//! `data.{queryId, status, progress, columns[{name, type}], data[[cell…]], recommendations}`,
//! `status` `FINISHED` with `progress` 100 when done, `event.time` an INTEGER of epoch
//! milliseconds, and the recommendation "Result set limited to 1000 rows by default": XSOAR
//! SentinelOne-V2 `test_data/get_power_query_response.json` and `get_power_query_output`. The
//! POST may answer the finished query at once, otherwise `pq-ping` is polled; a `FAILED`
//! query carries its reason in the top-level `errors`: redcanaryco/surveyor
//! `products/sentinel_one.py` (`_run_query`, `_get_dv_events`). A query the console cannot
//! parse is answered 400 with code 4000040 "Bad Request": surveyor issue #103 (recorded
//! response). The field names below: surveyor `PARAMETER_MAPPING_PQ` and its `group … by`
//! column list, XSOAR's `agent.uuid`/`site.id`/`event.time`.
//!
//! UNCONFIRMED (no source): what a console without PowerQuery answers (here: 404, as for any
//! unknown route), and how `| limit` and the body `limit` combine (here: the smaller wins).
//! Only the `columns` and `limit` commands are modelled; any other is refused as a query the
//! simulator cannot run. A query matches as a Deep Visibility query does (see
//! [`super::dv::search`]): its filter is not parsed, only its quoted values are compared.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::dv;
use super::params::{ApiError, Params};
use super::state::State;

/// PowerQuery field → the key of a seeded event (Deep Visibility's camelCase) that holds it.
const FIELDS: &[(&str, &str)] = &[
    ("event.time", "eventTime"),
    ("event.type", "eventType"),
    ("endpoint.name", "endpointName"),
    ("agent.uuid", "agentUuid"),
    ("site.id", "siteId"),
    ("site.name", "siteName"),
    ("account.id", "accountId"),
    ("src.process.name", "srcProcName"),
    ("src.process.image.path", "srcProcImagePath"),
    ("src.process.image.sha1", "srcProcImageSha1"),
    ("src.process.image.sha256", "srcProcImageSha256"),
    ("src.process.image.md5", "srcProcImageMd5"),
    ("tgt.file.path", "tgtFilePath"),
    ("tgt.file.sha1", "tgtFileSha1"),
    ("tgt.file.sha256", "tgtFileSha256"),
    ("tgt.file.md5", "tgtFileMd5"),
    ("dst.ip.address", "dstIp"),
    ("event.dns.request", "dnsRequest"),
    ("url.address", "url"),
];

/// Rows a query without `| limit` returns (XSOAR's recorded recommendation).
const DEFAULT_ROWS: usize = 1_000;

/// The largest body `limit` (`DeepVisibilityPQRequestSchema`: 1–100,000).
const MAX_LIMIT: u64 = 100_000;

/// The `columns` of a query: (column name, field) pairs.
type Columns = Vec<(String, String)>;

/// A started PowerQuery.
#[derive(Debug, Clone)]
pub(crate) struct PqQuery {
    columns: Columns,
    events: Vec<Value>,
    default_cut: bool,
    polls: u32,
    failed: bool,
}

/// The console's answer to a query it cannot parse (surveyor issue #103).
fn bad_request(reason: &str) -> ApiError {
    ApiError::new(
        4000040,
        "Bad Request",
        Some(format!("Bad Request: ['{reason}']")),
    )
}

/// Splits `text` at the `|` that are not inside a quoted string.
fn pipeline(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quote, mut escaped) = (0, None, false);
    for (at, c) in text.char_indices() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(open), c) if c == open => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '|') => {
                parts.push(text[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

/// The `columns` and `limit` commands of a query: (column name, field) pairs and the limit.
fn commands(parts: &[&str]) -> Result<(Columns, Option<usize>), ApiError> {
    let mut columns = Vec::new();
    let mut limit = None;
    for part in parts {
        let (command, rest) = part.split_once(char::is_whitespace).unwrap_or((part, ""));
        match command {
            "columns" => {
                for item in rest.split(',').map(str::trim) {
                    let (name, field) = match item.split_once('=') {
                        Some((name, field)) => (name.trim(), field.trim()),
                        None => (item, item),
                    };
                    if name.is_empty() || field.is_empty() {
                        return Err(bad_request("expected a column after \"columns\""));
                    }
                    columns.push((name.to_string(), field.to_string()));
                }
            }
            "limit" => {
                let rows = rest
                    .trim()
                    .parse()
                    .map_err(|_| bad_request("expected a number after \"limit\""))?;
                limit = Some(rows);
            }
            other => {
                return Err(bad_request(&format!(
                    "the simulator does not run the \"{other}\" command"
                )));
            }
        }
    }
    Ok((columns, limit))
}

/// `POST /dv/events/pq`.
pub(crate) fn start(state: &mut State, path: &str, body: &Value) -> Result<Value, ApiError> {
    if !state.pq.available {
        return Err(ApiError::not_found(format!("No route for {path}")));
    }
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing_field(&["query"]))?;
    let body_limit = match body.get("limit") {
        None | Some(Value::Null) => None,
        Some(limit) => match limit.as_u64() {
            Some(limit @ 1..=MAX_LIMIT) => usize::try_from(limit).ok(),
            _ => {
                return Err(ApiError::validation(
                    "{'limit': ['Must be between 1 and 100000.']}",
                ));
            }
        },
    };
    if dv::mentions(state.pq.refuse_containing.as_ref(), query) {
        return Err(bad_request("could not parse query"));
    }
    let parts = pipeline(query);
    let (columns, command_limit) = commands(&parts[1..])?;
    let rows = command_limit
        .unwrap_or(DEFAULT_ROWS)
        .min(body_limit.unwrap_or(usize::MAX))
        .min(state.pq.result_cap);
    let events = dv::search(state, body, parts[0], rows)?;
    let default_cut = command_limit.is_none() && events.len() >= DEFAULT_ROWS;
    let failed = dv::mentions(state.pq.fail_containing.as_ref(), query);
    let id = format!("pq{}", state.mint_id());
    let query = PqQuery {
        columns,
        events,
        default_cut,
        polls: 0,
        failed,
    };
    let answer = answer(&id, &query, state.pq.pings_to_finish);
    state.pq_queries.insert(id, query);
    Ok(answer)
}

/// `GET /dv/events/pq-ping`.
pub(crate) fn ping(state: &mut State, path: &str, params: &Params) -> Result<Value, ApiError> {
    if !state.pq.available {
        return Err(ApiError::not_found(format!("No route for {path}")));
    }
    let needed = state.pq.pings_to_finish;
    let id = params
        .text("queryId")?
        .ok_or_else(|| ApiError::validation("{'queryId': ['Missing data for required field.']}"))?;
    let query = state
        .pq_queries
        .get_mut(&id)
        .ok_or_else(|| ApiError::invalid_identifier(format!("Query id {id} not found")))?;
    query.polls += 1;
    Ok(answer(&id, query, needed))
}

/// The answer to a query after its polls so far: running, failed, or its rows.
fn answer(id: &str, query: &PqQuery, needed: u32) -> Value {
    if query.polls < needed {
        let progress = query.polls * 100 / needed;
        return json!({ "data": { "queryId": id, "status": "RUNNING", "progress": progress } });
    }
    if query.failed {
        return json!({
            "data": { "queryId": id, "status": "FAILED", "progress": 100 },
            "errors": [{ "code": 4000040, "title": "Bad Request",
                         "detail": "The query failed to run" }],
        });
    }
    let fields: BTreeMap<&str, &str> = FIELDS.iter().copied().collect();
    let columns: Vec<Value> = query
        .columns
        .iter()
        .map(|(name, field)| {
            let kind = if field == "event.time" {
                "INTEGER"
            } else {
                "STRING"
            };
            json!({ "name": name, "type": kind })
        })
        .collect();
    let rows: Vec<Value> = query
        .events
        .iter()
        .map(|event| {
            let cells: Vec<Value> = query
                .columns
                .iter()
                .map(
                    |(_, field)| match (field.as_str(), fields.get(field.as_str())) {
                        ("event.time", _) => dv::time_of(event, "eventTime")
                            .map_or(Value::Null, |time| json!(time.timestamp_millis())),
                        (_, Some(key)) => event.get(*key).cloned().unwrap_or(Value::Null),
                        (_, None) => Value::Null,
                    },
                )
                .collect();
            Value::Array(cells)
        })
        .collect();
    let mut data = json!({
        "queryId": id, "status": "FINISHED", "progress": 100,
        "columns": columns, "data": rows,
    });
    if query.default_cut {
        data["recommendations"] = json!([
            "Result set limited to 1000 rows by default. To display more rows, add a command like \"| limit 10000\"."
        ]);
    }
    json!({ "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_splits_at_the_pipes_outside_strings() {
        let parts = pipeline(
            r#"url.address in:anycase ("a|b", 'c\'|d') | columns x = url.address | limit 5"#,
        );
        assert_eq!(
            parts,
            vec![
                r#"url.address in:anycase ("a|b", 'c\'|d')"#,
                "columns x = url.address",
                "limit 5"
            ]
        );
        let (columns, limit) = commands(&parts[1..]).unwrap_or_default();
        assert_eq!(columns, vec![("x".to_string(), "url.address".to_string())]);
        assert_eq!(limit, Some(5));
        assert_eq!(
            commands(&["group count() by endpoint.name"]).map(|_| ()),
            Err(bad_request(
                "the simulator does not run the \"group\" command"
            ))
        );
    }

    #[test]
    fn the_answer_runs_then_finishes_with_rows_by_column() {
        let mut query = PqQuery {
            columns: vec![
                ("eventTime".to_string(), "event.time".to_string()),
                ("dstIp".to_string(), "dst.ip.address".to_string()),
                ("nothing".to_string(), "no.such.field".to_string()),
            ],
            events: vec![json!({ "eventTime": "2024-08-20T11:04:14.609Z", "dstIp": "10.0.0.1" })],
            default_cut: false,
            polls: 0,
            failed: false,
        };
        let running = answer("pq1", &query, 2);
        assert_eq!(running["data"]["status"], "RUNNING");
        assert_eq!(running["data"]["progress"], 0);
        query.polls = 2;
        let done = answer("pq1", &query, 2);
        assert_eq!(done["data"]["status"], "FINISHED");
        assert_eq!(
            done["data"]["columns"][0],
            json!({ "name": "eventTime", "type": "INTEGER" })
        );
        assert_eq!(
            done["data"]["data"],
            json!([[1_724_151_854_609_i64, "10.0.0.1", null]])
        );
        query.failed = true;
        let failed = answer("pq1", &query, 2);
        assert_eq!(failed["data"]["status"], "FAILED");
        assert_eq!(failed["errors"][0]["detail"], "The query failed to run");
    }
}
