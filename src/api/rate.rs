//! The request-rate limiter shared by every worker of a run.
//!
//! Requests get evenly spaced start slots `1 / requests_per_second` apart; an idle limiter does
//! not bank unused slots, so there is never a burst above the configured rate. Every attempt
//! (retries included) takes a slot. This module only hands out slots; waiting for them, and
//! refusing slots past the run deadline, is the client's job.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// No slot is ever spaced further apart than this, whatever tiny rate is configured.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter at `requests_per_second`; zero, negative or non-finite rates mean no limit.
    pub(crate) fn new(requests_per_second: f64) -> Self {
        let interval = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            Duration::try_from_secs_f64(1.0 / requests_per_second)
                .unwrap_or(MAX_INTERVAL)
                .min(MAX_INTERVAL)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next_free: Mutex::new(None),
        }
    }

    /// Reserves the earliest free slot at or after `now` and returns its start; the caller
    /// waits until then. The lock is held only for the arithmetic, never while waiting.
    pub(crate) fn reserve(&self, now: Instant) -> Instant {
        if self.interval.is_zero() {
            return now;
        }
        let mut next_free = self
            .next_free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = next_free.map_or(now, |free| free.max(now));
        *next_free = Some(slot + self.interval);
        slot
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn concurrent_reservations_are_evenly_spaced() {
        let limiter = Arc::new(RateLimiter::new(50.0));
        let now = Instant::now();
        let mut slots: Vec<Instant> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..250).map(|_| limiter.reserve(now)).collect::<Vec<_>>()))
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
        assert_eq!(limiter.reserve(start), start);
        let later = start + Duration::from_secs(5);
        assert_eq!(limiter.reserve(later), later);
        assert_eq!(limiter.reserve(later), later + Duration::from_millis(100));
    }

    #[test]
    fn workers_waiting_for_slots_hold_the_rate() {
        let limiter = RateLimiter::new(500.0);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        let slot = limiter.reserve(Instant::now());
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
            assert_eq!(limiter.reserve(now), now);
            assert_eq!(limiter.reserve(now), now);
        }
        let slow = RateLimiter::new(1e-300);
        assert_eq!(slow.interval, MAX_INTERVAL);
    }
}
