//! Action 19 · SentinelOne Hunt Indicators (`sentinelone-hunt-indicators`).
//!
//! Hunts every indicator over the last `hours_back` hours with PowerQuery or Deep Visibility
//! (`engine`: `auto`, the default, tries PowerQuery and falls back to Deep Visibility when the
//! console refuses it; see [`engine::means_no_powerquery`]). The indicators are packed into
//! as few queries as the engine's length bound allows ([`plan`]), each query is run to its end
//! ([`engine`]), and every returned event is mapped back to the indicators it carries (exact,
//! case-insensitive). Per indicator: `SentinelOne Sightings`, `Endpoints Seen`, `First Seen`,
//! `Last Seen` and one `Seen On` per endpoint name (at most `max_seen_on`); `records` holds
//! the matched events (at most `max_records`; more is a `records.limit_reached` warning). A
//! query that returned `max_events_per_query` events reached the cap: its indicators' counts
//! are lower bounds, written `N+`. Read-only: a dry run does the same (and, as for every
//! action, adds no attribute).
//!
//! This module owns the parameters, the order of the run (find → plan → query → report) and
//! the mapping of events back to indicators; the query languages live in [`plan`], the
//! sending and reading of queries in [`engine`].

pub mod plan;

mod engine;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Action, RunContext, TargetId};
use crate::error::{ErrorCode, Failure, WarningCode};
use crate::indicator::IndicatorType;
use crate::result::{AddedAttribute, Warning};
use engine::{Engine, Search, means_no_powerquery, text};
pub use engine::{MAX_PQ_QUERY_CHARS, MAX_QUERY_CHARS};
use plan::Query;

const SIGHTINGS: &str = "SentinelOne Sightings";
const ENDPOINTS: &str = "SentinelOne Endpoints Seen";
const FIRST_SEEN: &str = "SentinelOne First Seen";
const LAST_SEEN: &str = "SentinelOne Last Seen";
const SEEN_ON: &str = "SentinelOne Seen On";

pub struct HuntIndicators;

/// Which engine runs the hunt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngineChoice {
    /// PowerQuery, or Deep Visibility when the console refuses PowerQuery.
    Auto,
    #[serde(rename = "powerquery")]
    PowerQuery,
    DeepVisibility,
}

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
    /// The query engine.
    pub engine: EngineChoice,
    /// The `limit` of each query: at most this many events come back.
    pub max_events_per_query: u32,
    /// Longest wait between two status polls, in seconds.
    pub max_poll_seconds: u32,
    /// `SentinelOne Seen On` attributes per indicator, at most.
    pub max_seen_on: u32,
    /// Records per run, at most.
    pub max_records: u32,
}

impl Params {
    fn search(&self, now: DateTime<Utc>) -> Search {
        Search {
            from: now - chrono::Duration::hours(i64::from(self.hours_back)),
            to: now,
            site_ids: self.site_ids.clone().unwrap_or_default(),
            account_ids: self.account_ids.clone().unwrap_or_default(),
            cap: self.max_events_per_query,
            max_poll: Duration::from_secs(u64::from(self.max_poll_seconds.max(1))),
        }
    }
}

impl Action for HuntIndicators {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let items: Vec<(TargetId, IndicatorType, String)> = ctx
            .pending()
            .into_iter()
            .map(|id| (id, ctx.target(id).kind, ctx.target(id).value.clone()))
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        let search = params.search(ctx.now());
        let mut engine = match params.engine {
            EngineChoice::DeepVisibility => Engine::DeepVisibility,
            EngineChoice::Auto | EngineChoice::PowerQuery => Engine::PowerQuery,
        };
        let (mut queries, mut too_long) = engine.plan(&items, &search);
        let mut answers = Vec::new();
        if params.engine == EngineChoice::Auto && !queries.is_empty() {
            match first_answer(ctx, &queries[0], &search) {
                Err(refusal) => {
                    fall_back(ctx, &refusal);
                    engine = Engine::DeepVisibility;
                    (queries, too_long) = engine.plan(&items, &search);
                }
                Ok(answer) => answers.push(answer),
            }
        }
        let rest = &queries[answers.len()..];
        answers.extend(ctx.batches("hunt", rest, ids_of, |client, query| {
            engine.run(client, &query.text, &search)
        }));
        for id in too_long {
            let message = format!(
                "The value is too long for one {} ({} characters)",
                engine.query_noun(),
                engine.bound(&search)
            );
            ctx.fail(id, Failure::new(ErrorCode::InputInvalidValue, message));
        }
        report(params, ctx, &queries, answers);
        Ok(())
    }
}

fn ids_of(query: &Query) -> Vec<TargetId> {
    query.ids.clone()
}

/// Runs the first query with PowerQuery: `Err` when the console has no PowerQuery (nothing
/// failed then), else its events (`None` when it failed, its targets failed with it).
fn first_answer(
    ctx: &mut RunContext<'_>,
    query: &Query,
    search: &Search,
) -> Result<Option<Vec<Value>>, Failure> {
    let answers = ctx.batches(
        "hunt",
        std::slice::from_ref(query),
        ids_of,
        |client, query| match Engine::PowerQuery.run(client, &query.text, search) {
            Err(failure) if means_no_powerquery(&failure) => Ok(Err(failure)),
            answer => answer.map(Ok),
        },
    );
    answers.into_iter().next().flatten().transpose()
}

/// Says, once, that the hunt runs on Deep Visibility because PowerQuery was refused.
fn fall_back(ctx: &mut RunContext<'_>, refusal: &Failure) {
    crate::log::warn(
        "engine_fallback",
        "PowerQuery was refused; the hunt runs on Deep Visibility",
        json!({ "http_status": refusal.http_status, "reason": refusal.message }),
    );
    ctx.warn(Warning {
        code: WarningCode::HuntEngineFallback,
        message: format!(
            "The console refused PowerQuery, so the hunt ran on Deep Visibility ({})",
            refusal.message
        ),
        field: Some("config.engine".to_string()),
    });
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

impl Seen {
    fn add(&mut self, event: &Value) {
        self.count += 1;
        let endpoint = text(event, "endpointName");
        if let Some(endpoint_id) = agent_of(event).or(endpoint) {
            self.endpoints.insert(endpoint_id.to_string());
        }
        if let Some(name) = endpoint {
            self.names.insert(name.to_string());
        }
        let Some(time) = text(event, "eventTime") else {
            return;
        };
        let Ok(parsed) = DateTime::parse_from_rfc3339(time) else {
            return;
        };
        let parsed = parsed.with_timezone(&Utc);
        if self.first.as_ref().is_none_or(|(first, _)| parsed < *first) {
            self.first = Some((parsed, time.to_string()));
        }
        if self.last.as_ref().is_none_or(|(last, _)| parsed > *last) {
            self.last = Some((parsed, time.to_string()));
        }
    }
}

/// The agent an event comes from: its id (Deep Visibility) or UUID (PowerQuery rows, which
/// name agents by `agent.uuid`).
fn agent_of(event: &Value) -> Option<&str> {
    text(event, "agentId").or_else(|| text(event, "agentUuid"))
}

/// Maps every query's events back to its indicators and reports each one.
fn report(
    params: &Params,
    ctx: &mut RunContext<'_>,
    queries: &[Query],
    answers: Vec<Option<Vec<Value>>>,
) {
    let cap = params.max_events_per_query as usize;
    let mut records_left = params.max_records as usize;
    let mut records_cut = 0usize;
    for (query, events) in queries.iter().zip(answers) {
        let Some(events) = events else { continue };
        // (event key, lower-case value) → the targets it stands for.
        let mut wanted: HashMap<(&str, String), Vec<TargetId>> = HashMap::new();
        for id in &query.ids {
            let target = ctx.target(*id);
            for field in plan::fields(target.kind) {
                let value = target.value.to_lowercase();
                wanted.entry((field.key, value)).or_default().push(*id);
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
            for (id, key) in matched {
                seen.entry(id).or_default().add(event);
                if records_left == 0 {
                    records_cut += 1;
                    continue;
                }
                records_left -= 1;
                let record = record(
                    ctx.target(id).value.as_str(),
                    ctx.target(id).kind,
                    key,
                    event,
                );
                ctx.record(record);
            }
        }
        for id in &query.ids {
            let found = seen.remove(id).unwrap_or_default();
            let (attributes, detail) =
                summarise(&found, events.len() >= cap, cap, params.max_seen_on);
            ctx.succeed(*id, detail, attributes);
        }
    }
    if records_cut > 0 {
        let max = params.max_records;
        crate::log::info(
            "records",
            "",
            json!({ "dropped": records_cut, "max_records": max }),
        );
        ctx.warn(Warning {
            code: WarningCode::RecordsLimitReached,
            message: format!(
                "{records_cut} matched event(s) are not in the records: a run returns at most {max}"
            ),
            field: Some("config.max_records".to_string()),
        });
    }
}

/// One matched event as a record.
fn record(indicator: &str, kind: IndicatorType, key: &str, event: &Value) -> Value {
    json!({
        "indicator": indicator,
        "indicator_type": kind,
        "matched_field": key,
        "time": text(event, "eventTime"),
        "endpoint": text(event, "endpointName"),
        "agent_id": agent_of(event),
        "site_id": text(event, "siteId"),
        "site": text(event, "siteName"),
        "event_type": text(event, "eventType"),
        "process": text(event, "srcProcName"),
    })
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

    #[test]
    fn an_event_counts_its_endpoint_by_agent_and_its_times() {
        let mut seen = Seen::default();
        seen.add(&json!({ "agentUuid": "u1", "endpointName": "WIN-01",
                          "eventTime": "2026-04-22T10:00:00.000Z" }));
        seen.add(&json!({ "agentId": "3001", "endpointName": "WIN-01",
                          "eventTime": "2026-04-22T09:00:00.000Z" }));
        assert_eq!(seen.count, 2);
        assert_eq!(seen.endpoints.len(), 2);
        assert_eq!(seen.names.len(), 1);
        assert_eq!(
            seen.first.map(|(_, text)| text).as_deref(),
            Some("2026-04-22T09:00:00.000Z")
        );
    }
}
