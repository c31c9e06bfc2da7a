//! Deciding which requests are hit by a fault or by a rate limit.
//!
//! Owns the per-rule match counters, the rolling one-second window of the overall rate limiter
//! and the rolling windows of the per-endpoint-family limits (`rate_limits`). It does not carry
//! faults out (the connection handler in `mod.rs` drops, delays or garbles the exchange).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::scenario::{Fault, FaultRule, RateLimits};

/// A fault chosen for one request, with the name to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub name: String,
    pub fault: Fault,
}

/// The scenario's fault rules and how often each has matched and fired.
#[derive(Debug)]
pub(crate) struct FaultPlan {
    rules: Vec<RuleState>,
}

#[derive(Debug)]
struct RuleState {
    rule: FaultRule,
    method: Option<String>,
    path: Option<String>,
    matched: u64,
    fired: u64,
}

impl FaultPlan {
    pub(crate) fn new(rules: &[FaultRule]) -> FaultPlan {
        FaultPlan {
            rules: rules
                .iter()
                .map(|rule| RuleState {
                    method: rule.method.as_ref().map(|m| m.to_ascii_uppercase()),
                    path: rule.path.as_deref().map(super::routes::full_prefix),
                    rule: rule.clone(),
                    matched: 0,
                    fired: 0,
                })
                .collect(),
        }
    }

    /// Counts the request against every rule it matches and returns the first rule that fires.
    /// A rule that would fire after an earlier one already did keeps its `times` budget: only the
    /// fault actually applied is counted as fired.
    pub(crate) fn select(&mut self, method: &str, path: &str) -> Option<Hit> {
        let method = method.to_ascii_uppercase();
        let mut hit = None;
        for state in &mut self.rules {
            if state.method.as_ref().is_some_and(|m| *m != method) {
                continue;
            }
            if state
                .path
                .as_ref()
                .is_some_and(|prefix| !path.starts_with(prefix.as_str()))
            {
                continue;
            }
            let index = state.matched;
            state.matched += 1;
            if hit.is_some() || index < state.rule.after {
                continue;
            }
            let position = index - state.rule.after;
            if let Some(every) = state.rule.every
                && every > 1
                && (position + 1) % every != 0
            {
                continue;
            }
            if state.rule.times.is_some_and(|times| state.fired >= times) {
                continue;
            }
            state.fired += 1;
            hit = Some(Hit {
                name: state
                    .rule
                    .name
                    .clone()
                    .unwrap_or_else(|| state.rule.fault.kind_name()),
                fault: state.rule.fault.clone(),
            });
        }
        hit
    }
}

/// Admits at most `limit` requests in any rolling second.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: usize,
    admitted: VecDeque<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(limit: u32) -> RateLimiter {
        RateLimiter {
            limit: limit as usize,
            admitted: VecDeque::new(),
        }
    }

    /// True when the request may go on; refused requests do not count against the window, so a
    /// client that backs off as told gets through.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        while let Some(front) = self.admitted.front() {
            if now.duration_since(*front) >= Duration::from_secs(1) {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        if self.admitted.len() >= self.limit {
            return false;
        }
        self.admitted.push_back(now);
        true
    }
}

/// Holds each endpoint family to at most `limit` requests in any rolling window of its own.
#[derive(Debug)]
pub(crate) struct FamilyLimiter {
    families: Vec<FamilyWindow>,
    retry_after: bool,
}

#[derive(Debug)]
struct FamilyWindow {
    /// Full path prefix (`/web/api/v2.1/threats/`); a trailing `/` covers only sub-paths.
    prefix: String,
    limit: usize,
    window: Duration,
    admitted: VecDeque<Instant>,
}

impl FamilyWindow {
    fn covers(&self, path: &str) -> bool {
        match path.strip_prefix(self.prefix.as_str()) {
            None => false,
            Some(rest) => self.prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }
}

/// A refusal by [`FamilyLimiter::admit`]: the `Retry-After` to send, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub retry_after: Option<String>,
}

impl FamilyLimiter {
    pub(crate) fn new(limits: &RateLimits) -> FamilyLimiter {
        FamilyLimiter {
            families: limits
                .families
                .iter()
                .map(|rule| FamilyWindow {
                    prefix: super::routes::full_prefix(&rule.prefix),
                    limit: usize::try_from(rule.limit).unwrap_or(usize::MAX),
                    window: Duration::from_millis(rule.window_ms),
                    admitted: VecDeque::new(),
                })
                .collect(),
            retry_after: limits.retry_after,
        }
    }

    /// Admits a request to `path` (the full path) unless its family (the longest matching
    /// prefix) already admitted `limit` requests in the last `window`. Refused requests do not
    /// count, so a client that waits as told gets through.
    pub(crate) fn admit(&mut self, path: &str, now: Instant) -> Result<(), Refused> {
        let Some(family) = self
            .families
            .iter_mut()
            .filter(|family| family.covers(path))
            .max_by_key(|family| family.prefix.len())
        else {
            return Ok(());
        };
        while let Some(front) = family.admitted.front() {
            if now.duration_since(*front) >= family.window {
                family.admitted.pop_front();
            } else {
                break;
            }
        }
        if family.admitted.len() < family.limit {
            family.admitted.push_back(now);
            return Ok(());
        }
        let retry_after = self.retry_after.then(|| {
            // Seconds until the oldest admission leaves the window, rounded up, at least 1.
            let free_at = family.admitted.front().map_or(Duration::ZERO, |front| {
                (*front + family.window).duration_since(now)
            });
            let seconds = free_at.as_millis().div_ceil(1000).max(1);
            seconds.to_string()
        });
        Err(Refused { retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn after_times_every_and_prefix() {
        let mut plan = FaultPlan::new(&[rule(
            r#"{"method":"post","path":"/web/api/v2.1/restrictions","after":1,"times":2,"every":2,"fault":{"status":503}}"#,
        )]);
        let fired: Vec<bool> = (0..8)
            .map(|_| plan.select("POST", "/web/api/v2.1/restrictions").is_some())
            .collect();
        // match 0 skipped by `after`; then positions 0..: every 2nd (1, 3) fires; `times` stops at 2.
        assert_eq!(
            fired,
            vec![false, false, true, false, true, false, false, false]
        );
        assert!(plan.select("GET", "/web/api/v2.1/restrictions").is_none());
        assert!(plan.select("POST", "/web/api/v2.1/exclusions").is_none());
        // A prefix without `/web/` is relative to the API base.
        let mut relative =
            FaultPlan::new(&[rule(r#"{"path":"/threats","fault":{"malformed":true}}"#)]);
        assert!(relative.select("GET", "/web/api/v2.1/threats").is_some());
        assert!(relative.select("GET", "/threats").is_none());
    }

    #[test]
    fn first_firing_rule_wins_and_names() {
        let mut plan = FaultPlan::new(&[
            rule(r#"{"name":"flaky","times":1,"fault":{"drop":"before"}}"#),
            rule(r#"{"fault":{"status":429,"retry_after":2}}"#),
        ]);
        let first = plan.select("GET", "/web/api/v2.1/x").unwrap();
        assert_eq!(first.name, "flaky");
        assert_eq!(first.fault, Fault::DropBefore);
        let second = plan.select("GET", "/web/api/v2.1/x").unwrap();
        assert_eq!(second.name, "status_429");
        assert_eq!(
            second.fault,
            Fault::Status {
                status: 429,
                retry_after: Some("2".to_string()),
                code: None,
            }
        );
    }

    #[test]
    fn fault_json_needs_exactly_one_kind() {
        assert!(serde_json::from_str::<Fault>(r#"{}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"malformed":true,"truncated":true}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"retry_after":"1"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Fault>(r#"{"delay_ms":5}"#).unwrap(),
            Fault::Delay { ms: 5 }
        );
        // A body is sent as its text when it is a string, as JSON text otherwise.
        assert_eq!(
            serde_json::from_str::<Fault>(r#"{"body":"<html>"}"#).unwrap(),
            Fault::Body {
                text: "<html>".to_string()
            }
        );
        assert_eq!(
            serde_json::from_str::<Fault>(r#"{"body":{"data":null}}"#).unwrap(),
            Fault::Body {
                text: r#"{"data":null}"#.to_string()
            }
        );
        assert!(serde_json::from_str::<Fault>(r#"{"body":"","malformed":true}"#).is_err());
    }

    fn limits(json: &str) -> RateLimits {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn family_limits_hold_each_family_to_its_window() {
        let mut limiter = FamilyLimiter::new(&limits(
            r#"{"families": {"/threat-intelligence": {"limit": 2, "window_ms": 60000}}}"#,
        ));
        let t0 = Instant::now();
        let iocs = "/web/api/v2.1/threat-intelligence/iocs";
        assert!(limiter.admit(iocs, t0).is_ok());
        assert!(limiter.admit(iocs, t0 + Duration::from_secs(10)).is_ok());
        let refused = limiter
            .admit(iocs, t0 + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(refused.retry_after.as_deref(), Some("40"));
        // Other paths are not limited; the window slides.
        assert!(limiter.admit("/web/api/v2.1/threats", t0).is_ok());
        assert!(limiter.admit(iocs, t0 + Duration::from_secs(60)).is_ok());
        assert!(limiter.admit(iocs, t0 + Duration::from_secs(61)).is_err());
    }

    #[test]
    fn the_sentinelone_preset_follows_the_client_table() {
        let preset = limits(r#""sentinelone""#);
        assert!(preset.retry_after);
        let mut limiter = FamilyLimiter::new(&preset);
        let t0 = Instant::now();
        // /threats/… (100/s) is its own family, apart from /threats (10/s).
        for _ in 0..10 {
            assert!(limiter.admit("/web/api/v2.1/threats", t0).is_ok());
        }
        assert!(limiter.admit("/web/api/v2.1/threats", t0).is_err());
        assert!(
            limiter
                .admit("/web/api/v2.1/threats/mitigate/kill", t0)
                .is_ok()
        );
        for _ in 0..30 {
            assert!(
                limiter
                    .admit("/web/api/v2.1/threat-intelligence/iocs", t0)
                    .is_ok()
            );
        }
        assert!(
            limiter
                .admit("/web/api/v2.1/threat-intelligence/iocs", t0)
                .is_err()
        );
        assert!(limiter.admit("/web/api/v2.1/restrictions", t0).is_ok());

        let quiet = limits(
            r#"{"preset": "sentinelone", "retry_after": false,
                "families": {"/threat-intelligence": {"limit": 1, "window_ms": 2000}}}"#,
        );
        assert_eq!(quiet.families.len(), preset.families.len());
        let mut limiter = FamilyLimiter::new(&quiet);
        let iocs = "/web/api/v2.1/threat-intelligence/iocs";
        assert!(limiter.admit(iocs, t0).is_ok());
        assert_eq!(limiter.admit(iocs, t0).unwrap_err().retry_after, None);
        assert!(serde_json::from_str::<RateLimits>(r#""other""#).is_err());
        assert!(
            serde_json::from_str::<RateLimits>(
                r#"{"families": {"/x": {"limit": 0, "window_ms": 1}}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn rate_limiter_window() {
        let mut limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert!(limiter.admit(t0));
        assert!(limiter.admit(t0));
        assert!(!limiter.admit(t0 + Duration::from_millis(500)));
        assert!(limiter.admit(t0 + Duration::from_millis(1000)));
    }
}
