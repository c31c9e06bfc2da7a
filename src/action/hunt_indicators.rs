//! Action 19 · SentinelOne Hunt Indicators (`sentinelone-hunt-indicators`).
//!
//! Hunts every indicator in SentinelOne Deep Visibility over the last `hours_back` hours. The
//! indicators are packed into as few queries as [`MAX_QUERY_CHARS`] allows: per type one clause
//! per event field that carries it (`Field In Anycase ("v1","v2",…)`), the clauses OR'ed. Each
//! query runs `POST /dv/init-query` → `GET /dv/query-status` (polled with backoff, 1 s doubling
//! up to `max_poll_seconds`) → `GET /dv/events` (cursor-paged), and every returned event is
//! mapped back to the indicators it carries (exact, case-insensitive). Per indicator:
//! `SentinelOne Sightings`, `Endpoints Seen`, `First Seen`, `Last Seen` and one `Seen On` per
//! endpoint name (at most `max_seen_on`); `records` holds the matched events (at most
//! `max_records`). A query that returned `max_events_per_query` events reached the cap: its
//! indicators' counts are lower bounds, written `N+`. Read-only: a dry run does the same (and,
//! as for every action, adds no attribute).
//!
//! Sources. Endpoints, body (`query`, `fromDate`/`toDate` in epoch milliseconds, `limit` up to
//! 20,000, `queryType: ["events"]`, `isVerbose`, `siteIds`/`accountIds`), `data.queryId`,
//! `data.progressStatus`/`responseState`/`responseError`, cursor-paged `/dv/events` and the
//! event fields `eventTime`, `endpointName`, `siteId`, `siteName`, `srcProcUser`,
//! `srcProcCmdLine`: redcanaryco/surveyor `products/sentinel_one.py` (`_process_queries`,
//! `_get_dv_events`). Terminal states FAILED, ERROR, QUERY_CANCELLED, TIMED_OUT besides
//! FINISHED: Google SecOps SentinelOneV2 (`reference/sentinelone-api.md` §12). Rate limits:
//! `api::rate::FAMILY_LIMITS`. The `(…)` list form of S1QL operators: surveyor (`in contains
//! anycase ("a", "b")`). UNCONFIRMED (no source found): the exact operator `In Anycase`, the
//! S1QL field names of hashes, destination IPs, DNS requests and paths below and their event
//! keys (taken as the camelCase of the S1QL name, as surveyor's `SrcProcUser` → `srcProcUser`),
//! backslash escaping in S1QL strings, and any limit on the length of a query.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Action, RunContext, TargetId};
use crate::api::ApiClient;
use crate::error::{ErrorCode, Failure};
use crate::indicator::IndicatorType;
use crate::result::AddedAttribute;

/// The longest query text sent. No source states SentinelOne's limit; 10,000 characters keeps
/// the JSON body small and is far below any HTTP body limit.
pub const MAX_QUERY_CHARS: usize = 10_000;

/// Longest wait for one query to finish when the run has no deadline.
const MAX_QUERY_WAIT: Duration = Duration::from_secs(30 * 60);

const SIGHTINGS: &str = "SentinelOne Sightings";
const ENDPOINTS: &str = "SentinelOne Endpoints Seen";
const FIRST_SEEN: &str = "SentinelOne First Seen";
const LAST_SEEN: &str = "SentinelOne Last Seen";
const SEEN_ON: &str = "SentinelOne Seen On";

pub struct HuntIndicators;

/// Parameters of action 19.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Hours of events before the run that are searched.
    pub hours_back: u32,
    /// Only events of these sites.
    pub site_ids: Option<Vec<String>>,
    /// Only events of these accounts.
    pub account_ids: Option<Vec<String>>,
    /// The `limit` of each query: at most this many events come back.
    pub max_events_per_query: u32,
    /// Longest wait between two status polls, in seconds.
    pub max_poll_seconds: u32,
    /// `SentinelOne Seen On` attributes per indicator, at most.
    pub max_seen_on: u32,
    /// Records per run, at most.
    pub max_records: u32,
}

/// The event fields that carry an indicator type: (S1QL field, event key).
fn fields(kind: IndicatorType) -> &'static [(&'static str, &'static str)] {
    match kind {
        IndicatorType::Sha1 => &[
            ("TgtFileSha1", "tgtFileSha1"),
            ("SrcProcImageSha1", "srcProcImageSha1"),
        ],
        IndicatorType::Sha256 => &[
            ("TgtFileSha256", "tgtFileSha256"),
            ("SrcProcImageSha256", "srcProcImageSha256"),
        ],
        IndicatorType::Md5 => &[
            ("TgtFileMd5", "tgtFileMd5"),
            ("SrcProcImageMd5", "srcProcImageMd5"),
        ],
        IndicatorType::IpAddress | IndicatorType::Ipv6Address => &[("DstIP", "dstIp")],
        IndicatorType::Fqdn => &[("DNSRequest", "dnsRequest")],
        // surveyor maps its `domain` search to S1QL `Url`.
        IndicatorType::Url => &[("Url", "url")],
        IndicatorType::FilePath => &[
            ("TgtFilePath", "tgtFilePath"),
            ("SrcProcImagePath", "srcProcImagePath"),
        ],
    }
}

const OPERATOR: &str = " In Anycase (";

/// A value as an S1QL string.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Length of one type's clause whose quoted values, comma-joined, are `joined` long.
fn clause_len(kind: IndicatorType, joined: usize) -> usize {
    let fields = fields(kind);
    let each: usize = fields
        .iter()
        .map(|(name, _)| name.len() + OPERATOR.len() + joined + 1)
        .sum();
    each + 4 * (fields.len() - 1) + 2
}

/// One query: its targets and text.
#[derive(Debug)]
pub struct Query {
    pub ids: Vec<TargetId>,
    pub text: String,
}

/// The query being filled: per type (keyed by its first field), the type, its quoted values
/// with their targets, and their comma-joined length.
type Filling<'f> = BTreeMap<&'f str, (IndicatorType, Vec<(TargetId, String)>, usize)>;

/// Packs `items` (target, type, value) into queries of at most `bound` characters, greedily in
/// type order: a value adds its quoted length plus a comma per field of its type, and a type's
/// first value adds its clause. A value whose clause alone is too long is returned apart.
pub fn plan(
    items: &[(TargetId, IndicatorType, String)],
    bound: usize,
) -> (Vec<Query>, Vec<TargetId>) {
    let mut sorted: Vec<&(TargetId, IndicatorType, String)> = items.iter().collect();
    sorted.sort_by_key(|(id, kind, _)| (fields(*kind)[0].0, *id));
    let mut queries = Vec::new();
    let mut too_long = Vec::new();
    let mut current: Filling = BTreeMap::new();
    let mut length = 0;
    let finish = |current: &mut Filling, queries: &mut Vec<Query>| {
        if current.is_empty() {
            return;
        }
        let mut ids = Vec::new();
        let clauses: Vec<String> = std::mem::take(current)
            .into_values()
            .map(|(kind, values, _)| {
                ids.extend(values.iter().map(|(id, _)| *id));
                let list: Vec<&str> = values.iter().map(|(_, text)| text.as_str()).collect();
                let list = list.join(",");
                let parts: Vec<String> = fields(kind)
                    .iter()
                    .map(|(name, _)| format!("{name}{OPERATOR}{list})"))
                    .collect();
                format!("({})", parts.join(" OR "))
            })
            .collect();
        queries.push(Query {
            ids,
            text: clauses.join(" OR "),
        });
    };
    for (id, kind, value) in sorted {
        let text = quoted(value);
        let key = fields(*kind)[0].0;
        if clause_len(*kind, text.len()) > bound {
            too_long.push(*id);
            continue;
        }
        let added = match current.get(key) {
            Some((_, _, joined)) => {
                clause_len(*kind, joined + 1 + text.len()) - clause_len(*kind, *joined)
            }
            None if current.is_empty() => clause_len(*kind, text.len()),
            None => clause_len(*kind, text.len()) + 4,
        };
        if length + added > bound {
            finish(&mut current, &mut queries);
            length = clause_len(*kind, text.len());
        } else {
            length += added;
        }
        let entry = current.entry(key).or_insert((*kind, Vec::new(), 0));
        entry.2 += if entry.1.is_empty() {
            text.len()
        } else {
            text.len() + 1
        };
        entry.1.push((*id, text));
    }
    finish(&mut current, &mut queries);
    (queries, too_long)
}

/// What was found for one indicator.
#[derive(Debug, Default)]
struct Seen {
    count: usize,
    endpoints: BTreeSet<String>,
    names: BTreeSet<String>,
    first: Option<(DateTime<Utc>, String)>,
    last: Option<(DateTime<Utc>, String)>,
}

fn text<'e>(event: &'e Value, key: &str) -> Option<&'e str> {
    event
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// Runs one query to its end and returns its events.
fn run_query(client: &ApiClient, body: &Value, max_poll: Duration) -> Result<Vec<Value>, Failure> {
    let started = client.post("/dv/init-query", body)?;
    let Some(id) = started.pointer("/data/queryId").and_then(Value::as_str) else {
        return Err(Failure::new(
            ErrorCode::UpstreamBadResponse,
            "SentinelOne started the Deep Visibility query without a query id",
        ));
    };
    let give_up = client
        .deadline()
        .unwrap_or_else(|| Instant::now() + MAX_QUERY_WAIT);
    let mut wait = Duration::from_secs(1);
    loop {
        let status = client.get("/dv/query-status", &[("queryId", id.to_string())])?;
        let data = status.get("data").unwrap_or(&Value::Null);
        let state = text(data, "responseState").unwrap_or("");
        let progress = data.get("progressStatus").and_then(Value::as_u64);
        match state.to_ascii_uppercase().as_str() {
            "FAILED" | "ERROR" | "QUERY_CANCELLED" | "TIMED_OUT" => {
                let reason = text(data, "responseError").unwrap_or(state);
                return Err(Failure::new(
                    ErrorCode::UpstreamRejected,
                    format!("The Deep Visibility query did not finish ({reason})"),
                )
                .not_retryable());
            }
            "FINISHED" => break,
            _ if progress == Some(100) => break,
            _ => {}
        }
        let now = Instant::now();
        if now + wait > give_up {
            return Err(Failure::new(
                ErrorCode::RunDeadline,
                "The Deep Visibility query was still running when the time allowed ran out",
            ));
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(max_poll);
    }
    client
        .pages("/dv/events", vec![("queryId", id.to_string())], "/data")
        .all_items()
}

impl Action for HuntIndicators {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let ids = ctx.pending();
        if ids.is_empty() {
            return Ok(());
        }
        let items: Vec<(TargetId, IndicatorType, String)> = ids
            .iter()
            .map(|id| {
                let target = ctx.target(*id);
                (*id, target.kind, target.value.clone())
            })
            .collect();
        let (queries, too_long) = plan(&items, MAX_QUERY_CHARS);
        for id in too_long {
            ctx.fail(
                id,
                Failure::new(
                    ErrorCode::InputInvalidValue,
                    format!("The value is too long for one Deep Visibility query ({MAX_QUERY_CHARS} characters)"),
                ),
            );
        }
        let now = ctx.now();
        let from = now - chrono::Duration::hours(i64::from(params.hours_back));
        let cap = params.max_events_per_query as usize;
        let mut base = json!({
            "fromDate": from.timestamp_millis(),
            "toDate": now.timestamp_millis(),
            "limit": params.max_events_per_query,
            "queryType": ["events"],
            "isVerbose": false,
        });
        for (key, list) in [
            ("siteIds", &params.site_ids),
            ("accountIds", &params.account_ids),
        ] {
            if let Some(list) = list.as_ref().filter(|list| !list.is_empty()) {
                base[key] = json!(list);
            }
        }
        let max_poll = Duration::from_secs(u64::from(params.max_poll_seconds.max(1)));
        let answers = ctx.batches(
            "hunt",
            &queries,
            |query| query.ids.clone(),
            |client, query| {
                let mut body = base.clone();
                body["query"] = Value::from(query.text.as_str());
                run_query(client, &body, max_poll)
            },
        );
        let mut records_left = params.max_records as usize;
        let mut records_dropped = 0usize;
        for (query, events) in queries.iter().zip(answers) {
            let Some(events) = events else { continue };
            let capped = events.len() >= cap;
            // (event key, lower-case value) → the targets it stands for.
            let mut wanted: HashMap<(&str, String), Vec<TargetId>> = HashMap::new();
            for id in &query.ids {
                let target = ctx.target(*id);
                for (_, key) in fields(target.kind) {
                    wanted
                        .entry((key, target.value.to_lowercase()))
                        .or_default()
                        .push(*id);
                }
            }
            let keys: BTreeSet<&str> = wanted.keys().map(|(key, _)| *key).collect();
            let mut seen: HashMap<TargetId, Seen> = HashMap::new();
            for event in &events {
                let mut matched: BTreeMap<TargetId, &str> = BTreeMap::new();
                for key in &keys {
                    let Some(value) = text(event, key) else {
                        continue;
                    };
                    for id in wanted
                        .get(&(*key, value.to_lowercase()))
                        .into_iter()
                        .flatten()
                    {
                        matched.entry(*id).or_insert(key);
                    }
                }
                let time = text(event, "eventTime");
                let endpoint = text(event, "endpointName");
                let agent = text(event, "agentId");
                for (id, key) in matched {
                    let entry = seen.entry(id).or_default();
                    entry.count += 1;
                    if let Some(endpoint_id) = agent.or(endpoint) {
                        entry.endpoints.insert(endpoint_id.to_string());
                    }
                    if let Some(name) = endpoint {
                        entry.names.insert(name.to_string());
                    }
                    if let Some(parsed) = time
                        .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
                        .map(|time| time.with_timezone(&Utc))
                    {
                        let time = time.unwrap_or_default().to_string();
                        if entry
                            .first
                            .as_ref()
                            .is_none_or(|(first, _)| parsed < *first)
                        {
                            entry.first = Some((parsed, time.clone()));
                        }
                        if entry.last.as_ref().is_none_or(|(last, _)| parsed > *last) {
                            entry.last = Some((parsed, time));
                        }
                    }
                    if records_left == 0 {
                        records_dropped += 1;
                        continue;
                    }
                    records_left -= 1;
                    let target = ctx.target(id);
                    let record = json!({
                        "indicator": target.value,
                        "indicator_type": target.kind,
                        "matched_field": key,
                        "time": time,
                        "endpoint": endpoint,
                        "agent_id": agent,
                        "site_id": text(event, "siteId"),
                        "site": text(event, "siteName"),
                        "event_type": text(event, "eventType"),
                        "process": text(event, "srcProcName"),
                    });
                    ctx.record(record);
                }
            }
            for id in &query.ids {
                let found = seen.remove(id).unwrap_or_default();
                let (attributes, detail) = summarise(&found, capped, cap, params.max_seen_on);
                ctx.succeed(*id, detail, attributes);
            }
        }
        if records_dropped > 0 {
            crate::log::info(
                "records",
                "",
                json!({ "dropped": records_dropped, "max_records": params.max_records }),
            );
        }
        Ok(())
    }
}

/// The attributes and detail of one indicator.
fn summarise(
    seen: &Seen,
    capped: bool,
    cap: usize,
    max_seen_on: u32,
) -> (Vec<AddedAttribute>, String) {
    let count = if capped {
        format!("{}+", seen.count)
    } else {
        seen.count.to_string()
    };
    let mut attributes = vec![
        AddedAttribute::new(SIGHTINGS, count.clone()),
        AddedAttribute::new(ENDPOINTS, seen.endpoints.len().to_string()),
    ];
    if let Some((_, first)) = &seen.first {
        attributes.push(AddedAttribute::new(FIRST_SEEN, first.clone()));
    }
    if let Some((_, last)) = &seen.last {
        attributes.push(AddedAttribute::new(LAST_SEEN, last.clone()));
    }
    for name in seen.names.iter().take(max_seen_on as usize) {
        attributes.push(AddedAttribute::new(SEEN_ON, name.clone()));
    }
    let mut detail = match seen.count {
        0 if capped => "Not among the events returned".to_string(),
        0 => "Not seen".to_string(),
        _ => format!(
            "Seen in {count} event(s) on {} endpoint(s)",
            seen.endpoints.len()
        ),
    };
    if capped {
        detail.push_str(&format!(
            "; the query reached the result cap of {cap} events, so these are lower bounds"
        ));
    }
    (attributes, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 indicators, 125 of each of the eight types.
    fn mixed() -> Vec<(TargetId, IndicatorType, String)> {
        let kinds = [
            IndicatorType::Sha1,
            IndicatorType::Sha256,
            IndicatorType::Md5,
            IndicatorType::IpAddress,
            IndicatorType::Ipv6Address,
            IndicatorType::Fqdn,
            IndicatorType::Url,
            IndicatorType::FilePath,
        ];
        (0..1000)
            .map(|i| {
                let kind = kinds[i % kinds.len()];
                let value = match kind {
                    IndicatorType::Sha1 => format!("{i:040x}"),
                    IndicatorType::Sha256 => format!("{i:064x}"),
                    IndicatorType::Md5 => format!("{i:032x}"),
                    IndicatorType::IpAddress => format!("10.0.{}.{}", i / 256, i % 256),
                    IndicatorType::Ipv6Address => format!("2001:db8::{i:x}"),
                    IndicatorType::Fqdn => format!("host{i}.evil.example"),
                    IndicatorType::Url => format!("https://evil.example/p/{i}"),
                    IndicatorType::FilePath => format!("C:\\Users\\Public\\drop{i}.exe"),
                };
                (i, kind, value)
            })
            .collect()
    }

    /// The bound is [`MAX_QUERY_CHARS`]: 1,000 mixed indicators take 6 queries, every query
    /// within the bound, no two consecutive ones small enough to be one, every indicator in
    /// exactly one. (The text is about 55,000 characters: 6 is the least that can hold it.)
    #[test]
    fn a_thousand_mixed_indicators_take_the_fewest_queries_the_bound_allows() {
        let items = mixed();
        let (queries, too_long) = plan(&items, MAX_QUERY_CHARS);
        assert!(too_long.is_empty());
        let total: usize = queries.iter().map(|query| query.text.len()).sum();
        assert_eq!(queries.len(), total.div_ceil(MAX_QUERY_CHARS));
        assert_eq!(queries.len(), 6);
        for query in &queries {
            assert!(query.text.len() <= MAX_QUERY_CHARS, "{}", query.text.len());
        }
        for pair in queries.windows(2) {
            assert!(pair[0].text.len() + pair[1].text.len() + 4 > MAX_QUERY_CHARS);
        }
        let mut ids: Vec<TargetId> = queries.iter().flat_map(|query| query.ids.clone()).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn each_type_is_searched_on_its_fields_with_escaped_values() {
        let items = vec![
            (0, IndicatorType::FilePath, r#"C:\a "b".exe"#.to_string()),
            (1, IndicatorType::IpAddress, "10.0.0.1".to_string()),
            (2, IndicatorType::IpAddress, "10.0.0.2".to_string()),
        ];
        let (queries, _) = plan(&items, MAX_QUERY_CHARS);
        assert_eq!(queries.len(), 1);
        assert_eq!(
            queries[0].text,
            r#"(DstIP In Anycase ("10.0.0.1","10.0.0.2")) OR (TgtFilePath In Anycase ("C:\\a \"b\".exe") OR SrcProcImagePath In Anycase ("C:\\a \"b\".exe"))"#
        );
    }

    #[test]
    fn a_value_too_long_for_any_query_is_set_apart() {
        let items = vec![(0, IndicatorType::Url, "x".repeat(MAX_QUERY_CHARS))];
        let (queries, too_long) = plan(&items, MAX_QUERY_CHARS);
        assert!(queries.is_empty());
        assert_eq!(too_long, vec![0]);
    }

    #[test]
    fn a_capped_query_reports_lower_bounds() {
        let seen = Seen {
            count: 2,
            ..Seen::default()
        };
        let (attributes, detail) = summarise(&seen, true, 2, 25);
        assert_eq!(attributes[0].value, "2+");
        assert!(detail.contains("lower bounds"));
    }
}
