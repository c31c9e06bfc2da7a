//! The request-rate limiter shared by every worker of a run: SentinelOne's per-endpoint-family
//! limits ([`FAMILY_LIMITS`]) under the configured overall `requests_per_second`.
//!
//! Every request gets a start slot that satisfies two spacings at once: its family's
//! (`window / limit`, e.g. 2 s for 30 per minute) and the overall one
//! (`1 / requests_per_second`). Slots are evenly spaced, never bunched: an idle limiter does not
//! bank unused slots, so there is never a burst. Even spacing holds a console to its limit
//! whichever way it counts "30 per minute" — a token bucket without burst (as the Go SDK models
//! it) or at most 30 requests in any 60 s window. Every attempt (retries included) takes a slot.
//!
//! This module only hands out slots (pure arithmetic under one lock, unit-tested with a fixed
//! clock); waiting for them, and refusing slots past the run deadline, is the client's job.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// No slot is ever spaced further apart than this, whatever tiny rate is configured.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Added to every family spacing: the client's slot is when a request *starts*, and two requests
/// can reach the console closer together than their slots (the first one's connection set-up
/// took longer). 2 % of 2 s is 40 ms of such jitter absorbed, for 2 % of the time.
const FAMILY_GUARD_PERCENT: u32 = 2;

/// One endpoint family's limit: at most `limit` requests per `window`, per API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyLimit {
    /// Path prefix relative to `/web/api/v2.1`. A prefix ending in `/` covers only the paths
    /// below it; any other covers the path itself and the paths below it (`/agents` covers
    /// `/agents` and `/agents/actions/connect`, not `/agentsx`).
    pub prefix: &'static str,
    pub limit: u32,
    pub window: Duration,
}

impl FamilyLimit {
    const fn per_second(prefix: &'static str, limit: u32) -> Self {
        Self {
            prefix,
            limit,
            window: Duration::from_secs(1),
        }
    }

    const fn per_minute(prefix: &'static str, limit: u32) -> Self {
        Self {
            prefix,
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// Whether `path` (relative to `/web/api/v2.1`, without a query) is in this family.
    pub fn covers(&self, path: &str) -> bool {
        match path.strip_prefix(self.prefix) {
            None => false,
            Some(rest) => self.prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }

    /// The even spacing that holds the family to its limit: `window / limit`.
    pub fn interval(&self) -> Duration {
        match self.window.checked_div(self.limit) {
            Some(interval) => interval.min(MAX_INTERVAL),
            None => MAX_INTERVAL,
        }
    }
}

/// SentinelOne's per-API-token limits of the endpoint families this bundle calls.
///
/// Source: the Go SDK of SentinelOne's build-partner organisation,
/// `s1buildpartners/sentinelone-go-sdk` `ratelimit.go` `buildDefaultRateLimits` ("the official
/// SentinelOne MGMT API rate-limit table"), see `reference/sentinelone-api.md` §9. Its token
/// buckets give `/threat-intelligence` and `/cloud-detection/rules` 30/60 per second with burst
/// 1 (no burst), which is what the even spacing here does.
///
/// Matching follows the SDK: the longest matching prefix wins. The SDK's `/threats/` entry (with
/// the trailing slash) covers *every* path below `/threats`, so `/threats/mitigate/{action}`,
/// `/threats/analyst-verdict`, `/threats/incident` and `/threats/{id}/notes` are 100/s and only
/// `/threats` itself (the listing) is 10/s. `/restrictions`, `/groups`, `/hashes`,
/// `/cloud-detection/alerts` are not in the SDK's table: they have only `requests_per_second`.
pub const FAMILY_LIMITS: &[FamilyLimit] = &[
    FamilyLimit::per_second("/threats", 10),
    FamilyLimit::per_second("/threats/", 100),
    FamilyLimit::per_second("/agents", 25),
    FamilyLimit::per_second("/exclusions", 25),
    FamilyLimit::per_second("/activities", 10),
    FamilyLimit::per_second("/sites", 100),
    FamilyLimit::per_second("/accounts", 100),
    // The SDK notes this limit applies to "dedicated Consoles only"; held everywhere, since a
    // shared console is not known to be faster.
    FamilyLimit::per_minute("/threat-intelligence", 30),
    FamilyLimit::per_minute("/cloud-detection/rules", 30),
    // `POST /users/api-token-details` (the `check` command) falls under the SDK's `/users`.
    FamilyLimit::per_second("/users", 40),
    FamilyLimit::per_second("/users/login", 1),
    // Deep Visibility: `POST /dv/init-query` "1 call per minute per user token" and
    // `GET /dv/query-status` "1 call per second per token" (SW24 doc strings,
    // `reference/sentinelone-api.md` §9; redcanaryco/surveyor `products/sentinel_one.py` sleeps
    // 60 s between init-queries and 1 s between status polls for the same reason).
    FamilyLimit::per_minute("/dv/init-query", 1),
    FamilyLimit::per_second("/dv/query-status", 1),
    // PowerQuery: the SDK's `/dv/events/pq` and `/dv/events/pq-ping` rules, 4 per second each
    // (burst 1). `/dv/events/pq` does not cover `/dv/events/pq-ping` here (see `covers`).
    FamilyLimit::per_second("/dv/events/pq", 4),
    FamilyLimit::per_second("/dv/events/pq-ping", 4),
];

/// The index in [`FAMILY_LIMITS`] of the family `path` belongs to: the longest matching prefix.
/// `path` is relative to `/web/api/v2.1`; a query string, if any, is ignored.
pub fn family_of(path: &str) -> Option<usize> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    FAMILY_LIMITS
        .iter()
        .enumerate()
        .filter(|(_, family)| family.covers(path))
        .max_by_key(|(_, family)| family.prefix.len())
        .map(|(index, _)| index)
}

#[derive(Debug, Default)]
struct Slots {
    /// Reserved overall slots not yet long past, in order (a slot can be reserved before an
    /// earlier free gap when its family makes it wait; a later request of another family may
    /// still take the gap).
    overall: VecDeque<Instant>,
    /// No overall slot before this (set after a 429 on a path outside every family).
    overall_hold: Option<Instant>,
    /// Per family: no slot before this.
    family_next: Vec<Option<Instant>>,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Overall spacing; zero means no overall limit.
    interval: Duration,
    /// Per family of [`FAMILY_LIMITS`]: its spacing, guard included.
    family_intervals: Vec<Duration>,
    slots: Mutex<Slots>,
}

impl RateLimiter {
    /// A limiter at `requests_per_second` overall, under the family limits; zero, negative or
    /// non-finite rates mean no overall limit (the family limits still hold).
    pub(crate) fn new(requests_per_second: f64) -> Self {
        Self::with_families(requests_per_second, FAMILY_LIMITS)
    }

    pub(crate) fn with_families(requests_per_second: f64, families: &[FamilyLimit]) -> Self {
        let interval = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            Duration::try_from_secs_f64(1.0 / requests_per_second)
                .unwrap_or(MAX_INTERVAL)
                .min(MAX_INTERVAL)
        } else {
            Duration::ZERO
        };
        let family_intervals: Vec<Duration> = families
            .iter()
            .map(|family| {
                let interval = family.interval();
                interval.saturating_add(interval * FAMILY_GUARD_PERCENT / 100)
            })
            .collect();
        Self {
            interval,
            slots: Mutex::new(Slots {
                family_next: vec![None; family_intervals.len()],
                ..Slots::default()
            }),
            family_intervals,
        }
    }

    /// The spacing of `family` (guard included), if it is one.
    pub(crate) fn family_interval(&self, family: Option<usize>) -> Option<Duration> {
        family.and_then(|index| self.family_intervals.get(index).copied())
    }

    /// Reserves the earliest slot at or after `now` that keeps both `family`'s spacing and the
    /// overall spacing, and returns its start; the caller waits until then. The lock is held
    /// only for the arithmetic, never while waiting.
    pub(crate) fn reserve(&self, family: Option<usize>, now: Instant) -> Instant {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let family_interval = self.family_interval(family);
        let mut slot = now;
        if let Some(hold) = slots.overall_hold {
            slot = slot.max(hold);
        }
        if let Some(next) = family.and_then(|index| slots.family_next.get(index).copied().flatten())
        {
            slot = slot.max(next);
        }
        if !self.interval.is_zero() {
            // Slots more than one interval in the past cannot conflict with any new one.
            while slots
                .overall
                .front()
                .is_some_and(|front| *front + self.interval <= now)
            {
                slots.overall.pop_front();
            }
            // The earliest gap at or after `slot` at least one interval from every reserved slot.
            let mut at = slots.overall.len();
            for (index, taken) in slots.overall.iter().enumerate() {
                if *taken + self.interval <= slot {
                    continue;
                }
                if slot + self.interval <= *taken {
                    at = index;
                    break;
                }
                slot = *taken + self.interval;
            }
            slots.overall.insert(at, slot);
        }
        if let (Some(index), Some(interval)) = (family, family_interval) {
            if let Some(next) = slots.family_next.get_mut(index) {
                *next = Some(slot + interval);
            }
        }
        slot
    }

    /// After a 429: no slot of `family` (or, outside every family, no slot at all) starts
    /// before `until`, so the other workers do not keep hitting a console that said "slow down".
    pub(crate) fn hold(&self, family: Option<usize>, until: Instant) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = match family {
            Some(index) => match slots.family_next.get_mut(index) {
                Some(next) => next,
                None => return,
            },
            None => &mut slots.overall_hold,
        };
        *next = Some(next.map_or(until, |current| current.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn family(prefix: &str) -> Option<usize> {
        FAMILY_LIMITS
            .iter()
            .position(|family| family.prefix == prefix)
    }

    #[test]
    fn the_table_holds_the_sdk_limits() {
        let per_second = |path: &str| {
            let family = &FAMILY_LIMITS[family_of(path).unwrap()];
            f64::from(family.limit) / family.window.as_secs_f64()
        };
        assert_eq!(per_second("/threats"), 10.0);
        assert_eq!(per_second("/threats/mitigate/kill"), 100.0);
        assert_eq!(per_second("/threats/analyst-verdict"), 100.0);
        assert_eq!(per_second("/threats/incident"), 100.0);
        assert_eq!(per_second("/threats/123/notes"), 100.0);
        assert_eq!(per_second("/agents"), 25.0);
        assert_eq!(per_second("/agents/actions/disconnect"), 25.0);
        assert_eq!(per_second("/exclusions"), 25.0);
        assert_eq!(per_second("/activities"), 10.0);
        assert_eq!(per_second("/activities/types"), 10.0);
        assert_eq!(per_second("/sites"), 100.0);
        assert_eq!(per_second("/accounts"), 100.0);
        assert_eq!(per_second("/threat-intelligence/iocs"), 0.5);
        assert_eq!(per_second("/cloud-detection/rules"), 0.5);
        assert_eq!(per_second("/users/api-token-details"), 40.0);
        assert_eq!(per_second("/users/login"), 1.0);
        for outside in [
            "/restrictions",
            "/groups",
            "/hashes/abc/verdict",
            "/cloud-detection/alerts",
            "/agentsx",
            "/threatsx",
            "/",
            "",
        ] {
            assert_eq!(family_of(outside), None, "{outside}");
        }
        assert_eq!(family_of("/threats?limit=1"), family("/threats"));
        assert_eq!(
            FAMILY_LIMITS[family("/threat-intelligence").unwrap()].interval(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_family_is_held_to_its_limit_in_every_window() {
        let limiter = RateLimiter::new(1000.0);
        let ti = family_of("/threat-intelligence/iocs");
        let now = Instant::now();
        let slots: Vec<Instant> = (0..100).map(|_| limiter.reserve(ti, now)).collect();
        assert_eq!(slots[0], now);
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(2040));
        }
        // At most 30 in any 60 s window, closed at both ends.
        for (index, start) in slots.iter().enumerate() {
            let within = slots[index..]
                .iter()
                .filter(|slot| **slot - *start <= Duration::from_secs(60))
                .count();
            assert!(within <= 30, "{within} slots in 60 s from slot {index}");
        }
        // Another family is not held back by the slow one.
        let accounts = limiter.reserve(family_of("/accounts"), now);
        assert!(
            accounts - now <= Duration::from_millis(1),
            "{:?}",
            accounts - now
        );
    }

    #[test]
    fn the_overall_cap_holds_across_families() {
        let limiter = RateLimiter::new(10.0);
        let now = Instant::now();
        let paths = ["/sites", "/accounts", "/restrictions", "/threats/incident"];
        let mut slots: Vec<Instant> = (0..40)
            .map(|i| limiter.reserve(family_of(paths[i % 4]), now))
            .collect();
        slots.sort();
        for pair in slots.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100));
        }
        assert_eq!(slots[39] - slots[0], Duration::from_millis(100) * 39);
    }

    #[test]
    fn a_fast_family_fills_the_gaps_a_slow_one_leaves() {
        let limiter = RateLimiter::new(10.0);
        let ti = family_of("/threat-intelligence/iocs");
        let now = Instant::now();
        assert_eq!(limiter.reserve(ti, now), now);
        let second = limiter.reserve(ti, now);
        assert_eq!(second - now, Duration::from_millis(2040));
        // A look-up does not wait behind the second upload: it takes the next overall slot.
        let lookup = limiter.reserve(None, now);
        assert_eq!(lookup - now, Duration::from_millis(100));
        // And a gap too short for the overall spacing is skipped.
        let late = limiter.reserve(None, now + Duration::from_millis(1990));
        assert_eq!(late - now, Duration::from_millis(2140));
    }

    #[test]
    fn a_hold_delays_the_family_or_everything() {
        let limiter = RateLimiter::new(0.0);
        let now = Instant::now();
        let agents = family_of("/agents");
        limiter.hold(agents, now + Duration::from_secs(3));
        assert_eq!(limiter.reserve(agents, now), now + Duration::from_secs(3));
        assert_eq!(limiter.reserve(None, now), now);
        limiter.hold(None, now + Duration::from_secs(5));
        limiter.hold(None, now + Duration::from_secs(1));
        assert_eq!(limiter.reserve(None, now), now + Duration::from_secs(5));
    }

    #[test]
    fn concurrent_reservations_are_evenly_spaced() {
        let limiter = Arc::new(RateLimiter::new(50.0));
        let now = Instant::now();
        let mut slots: Vec<Instant> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..250)
                            .map(|_| limiter.reserve(None, now))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().unwrap())
                .collect()
        });
        slots.sort();
        assert_eq!(slots[0], now);
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(20));
        }
        // 1000 slots at 50/s span 999 intervals: exactly the configured rate.
        assert_eq!(slots[999] - slots[0], Duration::from_millis(20) * 999);
    }

    #[test]
    fn idle_time_is_not_banked_as_a_burst() {
        let limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        assert_eq!(limiter.reserve(None, start), start);
        let later = start + Duration::from_secs(5);
        assert_eq!(limiter.reserve(None, later), later);
        assert_eq!(
            limiter.reserve(None, later),
            later + Duration::from_millis(100)
        );
        let ti = family_of("/threat-intelligence/iocs");
        assert_eq!(
            limiter.reserve(ti, later + Duration::from_secs(60)),
            later + Duration::from_secs(60)
        );
    }

    #[test]
    fn workers_waiting_for_slots_hold_the_rate() {
        let limiter = RateLimiter::new(500.0);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        let slot = limiter.reserve(None, Instant::now());
                        std::thread::sleep(slot.saturating_duration_since(Instant::now()));
                    }
                });
            }
        });
        // 100 requests at 500/s cannot finish before 99 intervals of 2 ms.
        assert!(started.elapsed() >= Duration::from_millis(198));
    }

    #[test]
    fn no_rate_means_no_wait() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let limiter = RateLimiter::new(rate);
            let now = Instant::now();
            assert_eq!(limiter.reserve(None, now), now);
            assert_eq!(limiter.reserve(None, now), now);
        }
        let slow = RateLimiter::new(1e-300);
        assert_eq!(slow.interval, MAX_INTERVAL);
        let odd = FamilyLimit {
            prefix: "/x",
            limit: 0,
            window: Duration::from_secs(1),
        };
        assert_eq!(odd.interval(), MAX_INTERVAL);
    }
}
