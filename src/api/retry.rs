//! When to try a request again: capped exponential backoff with full jitter, `Retry-After`
//! first, a retry budget (a count for server and network failures, time for 429s) and the run
//! deadline. Also the [`Sleeper`] seam through which every
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
    /// The retry budget is spent: `max_retries` for server and network failures, or the
    /// [`THROTTLE_BUDGET`] for 429s of a run without a deadline.
    Exhausted,
    /// The next attempt could only start after the run deadline.
    PastDeadline,
}

/// Why the last attempt failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryCause {
    /// HTTP 429: the console asks us to slow down. Retried while the run deadline (or, without
    /// one, the [`THROTTLE_BUDGET`]) allows, not by count: a 30-per-minute endpoint must not
    /// fail a run after five quick retries.
    Throttled,
    /// A 5xx, 408, timeout or connection failure: retried up to `max_retries` times.
    Failed,
}

/// Without a run deadline, 429s of one request are retried for at most this long after its first
/// attempt. Ten minutes outlasts any per-minute window several times over, yet a console that
/// throttles for good still ends the run in bounded time.
pub(crate) const THROTTLE_BUDGET: Duration = Duration::from_secs(600);

/// What one request's retries have used so far.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryState {
    /// When the first attempt was about to start.
    pub(crate) started: Instant,
    /// Retries after server and network failures (the ones `max_retries` counts).
    pub(crate) failed_retries: u32,
    /// Retries after 429s (these only shape the backoff).
    pub(crate) throttled_retries: u32,
    /// The even spacing of the request's endpoint family (see `rate`), if it has one: the
    /// least a 429 without `Retry-After` waits.
    pub(crate) family_interval: Option<Duration>,
}

impl RetryState {
    pub(crate) fn new(started: Instant, family_interval: Option<Duration>) -> Self {
        Self {
            started,
            failed_retries: 0,
            throttled_retries: 0,
            family_interval,
        }
    }

    /// Records that the retry `decision` allowed for `cause` is being made.
    pub(crate) fn count(&mut self, cause: RetryCause) {
        match cause {
            RetryCause::Throttled => {
                self.throttled_retries = self.throttled_retries.saturating_add(1)
            }
            RetryCause::Failed => self.failed_retries = self.failed_retries.saturating_add(1),
        }
    }
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

    /// Decides about the next retry of a request whose last attempt failed for `cause`, given
    /// the server's `Retry-After` (already capped by the classifier), the current time and the
    /// run deadline.
    ///
    /// - `max_retries` = 0 turns every retry off, 429s included (an explicit "fail fast").
    /// - Server and network failures: at most `max_retries` retries.
    /// - 429: retried while the deadline allows; without a deadline, while the retry would start
    ///   within [`THROTTLE_BUDGET`] of the first attempt. Without `Retry-After`, the wait is at
    ///   least the family's spacing (2 s for 30 per minute), so the retry cannot land in the
    ///   window that refused it.
    pub(crate) fn decide(
        &self,
        state: &RetryState,
        cause: RetryCause,
        retry_after: Option<Duration>,
        now: Instant,
        deadline: Option<Instant>,
        rng: &mut impl Rng,
    ) -> RetryDecision {
        if self.max_retries == 0 {
            return RetryDecision::Exhausted;
        }
        let delay = match cause {
            RetryCause::Failed => {
                if state.failed_retries >= self.max_retries {
                    return RetryDecision::Exhausted;
                }
                self.delay(state.failed_retries, retry_after, rng)
            }
            RetryCause::Throttled => {
                let delay = match retry_after {
                    Some(after) => after,
                    None => self
                        .delay(state.throttled_retries, None, rng)
                        .max(state.family_interval.unwrap_or(Duration::ZERO)),
                };
                if deadline.is_none()
                    && now.saturating_duration_since(state.started) + delay > THROTTLE_BUDGET
                {
                    return RetryDecision::Exhausted;
                }
                delay
            }
        };
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

    fn decide(
        policy: &RetryPolicy,
        state: &RetryState,
        cause: RetryCause,
        after: Option<Duration>,
        now: Instant,
        deadline: Option<Instant>,
    ) -> RetryDecision {
        let mut rng = StdRng::seed_from_u64(5);
        policy.decide(state, cause, after, now, deadline, &mut rng)
    }

    #[test]
    fn budget_and_deadline_end_retries() {
        let policy = RetryPolicy::new(2);
        let now = Instant::now();
        let mut state = RetryState::new(now, None);
        let after = Some(Duration::from_secs(5));
        let failed = RetryCause::Failed;
        state.failed_retries = 1;
        assert_eq!(
            decide(&policy, &state, failed, after, now, None),
            RetryDecision::After(Duration::from_secs(5))
        );
        state.failed_retries = 2;
        assert_eq!(
            decide(&policy, &state, failed, after, now, None),
            RetryDecision::Exhausted
        );
        state.failed_retries = 0;
        let deadline = Some(now + Duration::from_secs(4));
        assert_eq!(
            decide(&policy, &state, failed, after, now, deadline),
            RetryDecision::PastDeadline
        );
        let deadline = Some(now + Duration::from_secs(6));
        assert_eq!(
            decide(&policy, &state, failed, after, now, deadline),
            RetryDecision::After(Duration::from_secs(5))
        );
    }

    #[test]
    fn server_errors_keep_their_count_cap_whatever_the_429s() {
        let policy = RetryPolicy::new(5);
        let now = Instant::now();
        let mut state = RetryState::new(now, None);
        for _ in 0..20 {
            state.count(RetryCause::Throttled);
        }
        for _ in 0..5 {
            assert!(matches!(
                decide(&policy, &state, RetryCause::Failed, None, now, None),
                RetryDecision::After(_)
            ));
            state.count(RetryCause::Failed);
        }
        assert_eq!(
            decide(&policy, &state, RetryCause::Failed, None, now, None),
            RetryDecision::Exhausted
        );
        // The 429s after that are still retried: they do not share the count.
        assert!(matches!(
            decide(&policy, &state, RetryCause::Throttled, None, now, None),
            RetryDecision::After(_)
        ));
    }

    #[test]
    fn a_429_without_retry_after_waits_the_family_window() {
        let policy = RetryPolicy::new(5);
        let now = Instant::now();
        let two = Some(Duration::from_secs(2));
        let mut rng = StdRng::seed_from_u64(9);
        let state = RetryState::new(now, two);
        for _ in 0..200 {
            let RetryDecision::After(delay) =
                policy.decide(&state, RetryCause::Throttled, None, now, None, &mut rng)
            else {
                panic!("retried");
            };
            // At least the family's spacing; the first backoff ceiling (250 ms) is below it.
            assert_eq!(delay, Duration::from_secs(2));
        }
        // Outside any family, the plain backoff.
        let outside = RetryState::new(now, None);
        let RetryDecision::After(delay) =
            policy.decide(&outside, RetryCause::Throttled, None, now, None, &mut rng)
        else {
            panic!("retried");
        };
        assert!(delay <= BACKOFF_BASE);
        // A Retry-After wins, shorter or not.
        assert_eq!(
            policy.decide(
                &state,
                RetryCause::Throttled,
                Some(Duration::from_secs(1)),
                now,
                None,
                &mut rng
            ),
            RetryDecision::After(Duration::from_secs(1))
        );
    }

    #[test]
    fn throttled_requests_retry_while_the_deadline_allows() {
        let policy = RetryPolicy::new(5);
        let start = Instant::now();
        let deadline = Some(start + Duration::from_secs(100));
        let two = Some(Duration::from_secs(2));
        let mut state = RetryState::new(start, two);
        let mut now = start;
        let mut retries = 0;
        loop {
            match decide(&policy, &state, RetryCause::Throttled, None, now, deadline) {
                RetryDecision::After(delay) => {
                    now += delay;
                    state.count(RetryCause::Throttled);
                    retries += 1;
                }
                decision => {
                    assert_eq!(decision, RetryDecision::PastDeadline);
                    break;
                }
            }
        }
        // Far more than max_retries: the deadline, not the count, ended them.
        assert!(retries > 5, "{retries}");
        assert!(now < start + Duration::from_secs(100));
    }

    #[test]
    fn without_a_deadline_429s_stop_at_the_time_budget() {
        let policy = RetryPolicy::new(5);
        let start = Instant::now();
        let state = RetryState::new(start, None);
        let after = Some(Duration::from_secs(30));
        let late = start + THROTTLE_BUDGET - Duration::from_secs(31);
        assert_eq!(
            decide(&policy, &state, RetryCause::Throttled, after, late, None),
            RetryDecision::After(Duration::from_secs(30))
        );
        let later = start + THROTTLE_BUDGET - Duration::from_secs(29);
        assert_eq!(
            decide(&policy, &state, RetryCause::Throttled, after, later, None),
            RetryDecision::Exhausted
        );
    }

    #[test]
    fn no_retries_means_none_at_all() {
        let policy = RetryPolicy::new(0);
        let now = Instant::now();
        let state = RetryState::new(now, None);
        for cause in [RetryCause::Throttled, RetryCause::Failed] {
            assert_eq!(
                decide(&policy, &state, cause, None, now, None),
                RetryDecision::Exhausted
            );
        }
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
