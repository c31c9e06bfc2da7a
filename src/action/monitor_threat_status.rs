//! Action 16 · SentinelOne Monitor Threat Status (`sentinelone-monitor-threat-status`).
//!
//! Watches the threats of each SHA-1 until every one of them has incident status `resolved`.
//! Each polling round is one batched look-up (`GET /threats` with `contentHashes`, many hashes
//! per request, every page) for the indicators not resolved yet; rounds are
//! `poll_interval_seconds` apart in real time. Monitoring stops at `timeout_minutes`, or
//! earlier when the next round could not finish before the run deadline
//! (`run.deadline_seconds`): polling stops in time instead of being cut off mid-request.
//!
//! `SentinelOne Incident Status` is `resolved` when all the indicator's threats are; otherwise
//! the least advanced status seen in the last round (`unresolved` before `in_progress`), and
//! the detail says that monitoring timed out. An indicator with no threat has nothing to
//! monitor: it succeeds without the attribute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lookup::threats::{self, Threat};
use super::{Action, RunContext, TargetId};
use crate::error::Failure;
use crate::log;
use crate::result::AddedAttribute;

const ATTRIBUTE: &str = "SentinelOne Incident Status";

const RESOLVED: &str = "resolved";

/// Time kept free before the run deadline beyond twice the last round's duration, so the final
/// round's requests are not refused by the deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

pub struct MonitorThreatStatus;

/// Parameters of action 16.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Seconds between two polling rounds.
    pub poll_interval_seconds: u64,
    /// Minutes after which monitoring stops.
    pub timeout_minutes: u64,
}

/// Why polling stopped before every threat was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `timeout_minutes` would pass before the next round.
    Timeout,
    /// The next round could not finish before the run deadline.
    Deadline,
}

/// When the next round starts (`Ok(wait)`), or why there is none. `now` is the end of the
/// round that just took `round_took`; `started` is when monitoring began.
fn next_round(
    now: Instant,
    started: Instant,
    interval: Duration,
    timeout: Duration,
    deadline: Option<Instant>,
    round_took: Duration,
) -> Result<Duration, Stop> {
    let next = now + interval;
    if next.saturating_duration_since(started) > timeout {
        return Err(Stop::Timeout);
    }
    if deadline.is_some_and(|deadline| next + round_took * 2 + DEADLINE_MARGIN >= deadline) {
        return Err(Stop::Deadline);
    }
    Ok(interval)
}

/// How far along an incident status is; the least advanced one describes the indicator.
fn rank(status: &str) -> u8 {
    match status {
        RESOLVED => 2,
        "in_progress" => 1,
        _ => 0,
    }
}

/// What the last round saw of one indicator's threats.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    threats: usize,
    unresolved: usize,
    /// The least advanced incident status among them.
    status: String,
}

fn observe(threats: &[Threat]) -> Seen {
    let statuses: Vec<String> = threats
        .iter()
        .map(|threat| {
            threat
                .raw
                .pointer("/threatInfo/incidentStatus")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|status| !status.is_empty())
                .unwrap_or("unknown")
                .to_string()
        })
        .collect();
    let status = statuses
        .iter()
        .min_by_key(|status| (rank(status), (*status).clone()))
        .cloned()
        .unwrap_or_else(|| RESOLVED.to_string());
    Seen {
        threats: threats.len(),
        unresolved: statuses.iter().filter(|status| *status != RESOLVED).count(),
        status,
    }
}

impl Action for MonitorThreatStatus {
    type Params = Params;

    fn run(params: &Params, ctx: &mut RunContext<'_>) -> Result<(), Failure> {
        let started = Instant::now();
        let interval = Duration::from_secs(params.poll_interval_seconds.max(1));
        let timeout = Duration::from_secs(params.timeout_minutes.saturating_mul(60));
        let mut watch = Watch {
            watching: ctx.pending(),
            last: HashMap::new(),
            rounds: 0,
        };
        let mut stop = None;
        while !watch.watching.is_empty() {
            let round_started = Instant::now();
            watch.poll(ctx);
            if watch.watching.is_empty() || ctx.run_error().is_some() {
                break;
            }
            let (now, took) = (Instant::now(), round_started.elapsed());
            match next_round(now, started, interval, timeout, ctx.deadline(), took) {
                Ok(wait) => std::thread::sleep(wait),
                Err(reason) => {
                    stop = Some(reason);
                    break;
                }
            }
        }
        let why = match stop {
            Some(Stop::Timeout) => format!("timeout_minutes ({}) reached", params.timeout_minutes),
            Some(Stop::Deadline) | None => {
                "the run deadline leaves no time for another round".into()
            }
        };
        watch.time_out(ctx, &why);
        Ok(())
    }
}

/// The indicators still watched, what the last round saw of each, and how many rounds ran.
struct Watch {
    watching: Vec<TargetId>,
    last: HashMap<TargetId, Seen>,
    rounds: usize,
}

impl Watch {
    /// One polling round: indicators whose threats are all resolved (or that have none)
    /// succeed; the others stay watched.
    fn poll(&mut self, ctx: &mut RunContext<'_>) {
        self.rounds += 1;
        let found = threats::find(ctx, &self.watching, None);
        let mut unresolved = Vec::new();
        for (id, threats) in self.watching.iter().copied().zip(found) {
            let Some(threats) = threats else { continue };
            if threats.is_empty() {
                ctx.succeed(id, "No matching threats; nothing to monitor", Vec::new());
                continue;
            }
            let seen = observe(&threats);
            if seen.unresolved == 0 {
                let detail = format!(
                    "All {} threat(s) resolved (round {})",
                    seen.threats, self.rounds
                );
                ctx.succeed(id, detail, vec![AddedAttribute::new(ATTRIBUTE, RESOLVED)]);
            } else {
                self.last.insert(id, seen);
                unresolved.push(id);
            }
        }
        self.watching = unresolved;
        let progress = json!({ "round": self.rounds, "unresolved": self.watching.len() });
        log::info("poll", "", progress);
    }

    /// Reports the indicators still unresolved when monitoring stopped, `why` it stopped.
    fn time_out(self, ctx: &mut RunContext<'_>, why: &str) {
        for id in self.watching {
            let Some(seen) = self.last.get(&id) else {
                continue;
            };
            let detail = format!(
                "Monitoring timed out after {} round(s) ({why}): {} of {} threat(s) not resolved; status {}",
                self.rounds, seen.unresolved, seen.threats, seen.status
            );
            let status = AddedAttribute::new(ATTRIBUTE, seen.status.clone());
            ctx.succeed(id, detail, vec![status]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threat(status: Option<&str>) -> Threat {
        Threat::from_json(
            &json!({"id": "1", "threatInfo": {"sha1": "ab", "incidentStatus": status}}),
        )
        .unwrap()
    }

    #[test]
    fn the_least_advanced_status_describes_the_indicator() {
        let seen = observe(&[threat(Some("resolved")), threat(Some("in_progress"))]);
        assert_eq!((seen.status.as_str(), seen.unresolved), ("in_progress", 1));
        let seen = observe(&[threat(Some("in_progress")), threat(Some("unresolved"))]);
        assert_eq!((seen.status.as_str(), seen.unresolved), ("unresolved", 2));
        let seen = observe(&[threat(Some("resolved")), threat(Some("resolved"))]);
        assert_eq!((seen.status.as_str(), seen.unresolved), ("resolved", 0));
        assert_eq!(observe(&[threat(None)]).status, "unknown");
    }

    #[test]
    fn polling_stops_at_the_timeout_and_before_the_deadline() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let minute = Duration::from_secs(60);
        let quick = Duration::from_millis(10);
        // Plenty of time: wait one interval.
        assert_eq!(
            next_round(start, start, second, minute, None, quick),
            Ok(second)
        );
        // The next round would start after the timeout.
        let late = start + Duration::from_secs(59) + Duration::from_millis(500);
        assert_eq!(
            next_round(late, start, second, minute, None, quick),
            Err(Stop::Timeout)
        );
        // Deadline 2 s, interval 1 s: a second round fits, a third does not.
        let deadline = Some(start + 2 * second);
        assert_eq!(
            next_round(start + quick, start, second, minute, deadline, quick),
            Ok(second)
        );
        assert_eq!(
            next_round(
                start + second + quick,
                start,
                second,
                minute,
                deadline,
                quick
            ),
            Err(Stop::Deadline)
        );
        // A slow round leaves room for its own duration twice.
        assert_eq!(
            next_round(
                start,
                start,
                second,
                minute,
                deadline,
                Duration::from_millis(300)
            ),
            Err(Stop::Deadline)
        );
    }
}
