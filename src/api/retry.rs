//! When to try a request again: capped exponential backoff with full jitter, `Retry-After`
//! first, a retry budget and the run deadline. Also the [`Sleeper`] seam through which every
//! wait of the client passes, so tests run without really sleeping.
//!
//! This module decides delays; it does not classify answers (`classify`), send requests,
//! count metrics or log (`client`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// Base of the exponential backoff: the first retry waits up to this long.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// No computed backoff is longer than this (a `Retry-After` may be, up to its own cap).
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Blocks the calling thread for a while. The client waits only through this trait.
pub trait Sleeper: Send + Sync {
    fn sleep(&self, duration: Duration);
}

/// The real sleeper: `std::thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A sleeper that returns at once and records every requested wait, for tests.
#[derive(Debug, Default)]
pub struct RecordingSleeper {
    slept: Mutex<Vec<Duration>>,
}

impl RecordingSleeper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every wait requested so far, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) {
        self.slept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(duration);
    }
}

/// What to do after a retryable failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryDecision {
    /// Wait this long, then try again.
    After(Duration),
    /// The retry budget (`max_retries`) is spent.
    Exhausted,
    /// The next attempt could only start after the run deadline.
    PastDeadline,
}

/// The retry budget and backoff shape of one client.
#[derive(Clone, Debug)]
pub(crate) struct RetryPolicy {
    pub(crate) max_retries: u32,
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
}

impl RetryPolicy {
    pub(crate) fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base: BACKOFF_BASE,
            cap: BACKOFF_CAP,
        }
    }

    /// Decides about retry number `retries_done + 1`, given the server's `Retry-After` (already
    /// capped by the classifier), the current time and the run deadline.
    pub(crate) fn decide(
        &self,
        retries_done: u32,
        retry_after: Option<Duration>,
        now: Instant,
        deadline: Option<Instant>,
        rng: &mut impl Rng,
    ) -> RetryDecision {
        if retries_done >= self.max_retries {
            return RetryDecision::Exhausted;
        }
        let delay = self.delay(retries_done, retry_after, rng);
        match deadline {
            Some(deadline) if now + delay >= deadline => RetryDecision::PastDeadline,
            _ => RetryDecision::After(delay),
        }
    }

    /// The wait before retry number `retries_done + 1`: the server's `Retry-After` when given,
    /// else a uniformly random delay in `0..=min(cap, base * 2^retries_done)` ("full jitter",
    /// which spreads the retries of parallel workers instead of synchronising them).
    pub(crate) fn delay(
        &self,
        retries_done: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        if let Some(after) = retry_after {
            return after;
        }
        let ceiling = self.ceiling(retries_done);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.random_range(0..=micros))
    }

    /// `min(cap, base * 2^retries_done)`.
    fn ceiling(&self, retries_done: u32) -> Duration {
        // 2^20 × 250 ms is far past any sane cap; stopping there avoids overflow.
        let factor = 1u32 << retries_done.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn backoff_grows_then_stays_under_the_cap() {
        let policy = RetryPolicy::new(100);
        let ceilings: Vec<u128> = (0..8).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(policy.ceiling(u32::MAX), BACKOFF_CAP);
        let mut rng = StdRng::seed_from_u64(7);
        for retries_done in 0..40 {
            for _ in 0..50 {
                let delay = policy.delay(retries_done, None, &mut rng);
                assert!(delay <= policy.ceiling(retries_done));
                assert!(delay <= BACKOFF_CAP);
            }
        }
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        let policy = RetryPolicy::new(5);
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<Duration> = (0..1000).map(|_| policy.delay(3, None, &mut rng)).collect();
        let ceiling = policy.ceiling(3);
        assert!(delays.iter().any(|d| *d < ceiling / 10));
        assert!(delays.iter().any(|d| *d > ceiling * 9 / 10));
        let mean = delays.iter().sum::<Duration>() / 1000;
        assert!(
            mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10,
            "{mean:?}"
        );
    }

    #[test]
    fn retry_after_wins_over_backoff() {
        let policy = RetryPolicy::new(5);
        let mut rng = StdRng::seed_from_u64(3);
        let after = Some(Duration::from_secs(42));
        assert_eq!(policy.delay(0, after, &mut rng), Duration::from_secs(42));
        assert_eq!(
            policy.delay(9, Some(Duration::ZERO), &mut rng),
            Duration::ZERO
        );
    }

    #[test]
    fn budget_and_deadline_end_retries() {
        let policy = RetryPolicy::new(2);
        let mut rng = StdRng::seed_from_u64(5);
        let now = Instant::now();
        let after = Some(Duration::from_secs(5));
        assert_eq!(
            policy.decide(1, after, now, None, &mut rng),
            RetryDecision::After(Duration::from_secs(5))
        );
        assert_eq!(
            policy.decide(2, after, now, None, &mut rng),
            RetryDecision::Exhausted
        );
        let deadline = Some(now + Duration::from_secs(4));
        assert_eq!(
            policy.decide(0, after, now, deadline, &mut rng),
            RetryDecision::PastDeadline
        );
        let deadline = Some(now + Duration::from_secs(6));
        assert_eq!(
            policy.decide(0, after, now, deadline, &mut rng),
            RetryDecision::After(Duration::from_secs(5))
        );
    }

    #[test]
    fn recording_sleeper_records_without_sleeping() {
        let sleeper = RecordingSleeper::new();
        let started = Instant::now();
        sleeper.sleep(Duration::from_secs(3600));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(sleeper.slept(), [Duration::from_secs(3600)]);
    }
}
