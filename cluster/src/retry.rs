//! The one retry policy of both binaries: exponential backoff with jitter, an optional budget,
//! cancellation, and a `cutover_retries_total{what}` count, for every remote call that waits
//! out a busy or sick cluster or broker.
//!
//! One driver, two ways in. [`RetryPolicy::run`] retries one call until it succeeds: merge-base
//! and verify `_mget`s, dead letters, and every control-plane call of [`crate::Es`] (settings,
//! health, pipelines, index creation). [`RetryPolicy::start`] hands the same driver
//! ([`Attempts`]) to the two loops that carry state between attempts: the bulk writer (which
//! items are left, a 413 split, progress resetting the budget) and the backfill's scan (which
//! search context to reopen, from which position).
//!
//! Jitter matters: after an outage every writer wakes at once, and without it they would all
//! hit the recovering cluster in the same millisecond.

use rand::Rng;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How failures are retried. Built once from the command line of each binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff ceiling.
    pub base: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
    /// Give up after this many consecutive failures (`None`: never; an outage pauses the
    /// writer instead of losing data).
    pub max_retries: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_millis(100), max_delay: Duration::from_secs(30), max_retries: None }
    }
}

/// Why a retried piece of work stopped without succeeding.
#[derive(Debug, thiserror::Error)]
pub enum GiveUp {
    /// Shutdown was requested while waiting.
    #[error("cancelled while retrying")]
    Cancelled,
    /// The retry budget ran out.
    #[error("still failing after {0} retries")]
    Exhausted(u32),
}

/// One piece of work being retried: counts failures, sleeps between attempts.
#[derive(Debug)]
pub struct Attempts {
    what: &'static str,
    budget: Option<u32>,
    backoff: Backoff,
}

impl Attempts {
    /// Records a failure of `what` and sleeps before the next attempt; gives up when the
    /// budget is spent or `cancel` fires.
    pub async fn failed(&mut self, error: &(dyn Display + Send + Sync), cancel: &CancellationToken) -> Result<(), GiveUp> {
        if let Some(max) = self.budget {
            if self.backoff.attempts() >= max {
                return Err(GiveUp::Exhausted(max));
            }
        }
        metrics::counter!("cutover_retries_total", "what" => self.what).increment(1);
        let delay = self.backoff.next_delay();
        tracing::warn!(what = self.what, attempt = self.backoff.attempts(), retry_in_ms = delay.as_millis() as u64, error = %error, "retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = cancel.cancelled() => Err(GiveUp::Cancelled),
        }
    }

    /// Forget past failures after progress.
    pub fn reset(&mut self) {
        self.backoff.reset();
    }
}

/// The error of [`RetryPolicy::run`].
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E> {
    /// An error the caller said is not worth retrying.
    #[error(transparent)]
    Failed(E),
    /// Stopped retrying (cancelled, or the budget ran out) after this last error.
    #[error("{why}; last error: {last}")]
    GaveUp { why: GiveUp, last: E },
}

impl<E> RetryError<E> {
    /// The error itself: the one not worth retrying, or the last one before giving up.
    pub fn into_last(self) -> E {
        match self {
            RetryError::Failed(e) | RetryError::GaveUp { last: e, .. } => e,
        }
    }
}

impl RetryPolicy {
    /// Starts retrying one piece of work named `what` (a metric label: `bulk`, `mget`, ...).
    pub fn start(&self, what: &'static str) -> Attempts {
        Attempts { what, budget: self.max_retries, backoff: Backoff::new(self.base, self.max_delay) }
    }

    /// Runs `op` until it succeeds, fails with an error `transient` rejects, the budget runs
    /// out, or `cancel` fires.
    pub async fn run<T, E, Fut>(
        &self,
        what: &'static str,
        cancel: &CancellationToken,
        transient: impl Fn(&E) -> bool,
        mut op: impl FnMut() -> Fut,
    ) -> Result<T, RetryError<E>>
    where
        E: Display + Send + Sync,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempts = self.start(what);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) => {
                    if let Err(why) = attempts.failed(&e, cancel).await {
                        return Err(RetryError::GaveUp { why, last: e });
                    }
                }
                Err(e) => return Err(RetryError::Failed(e)),
            }
        }
    }
}

/// Backoff state for one retried piece of work.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// `base` is the first ceiling; each attempt doubles it up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max, attempt: 0 }
    }

    /// How many delays were handed out so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the next delay (without jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in [ceiling/2, ceiling] ("equal jitter": never zero, never
    /// more than the ceiling).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter)
    }

    /// Forget past failures after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn run_retries_transient_errors_within_the_budget() {
        let policy = RetryPolicy { base: Duration::from_millis(10), max_delay: Duration::from_millis(50), max_retries: Some(3) };
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let r: Result<u32, _> = policy
            .run(
                "test",
                &cancel,
                |e: &String| e == "busy",
                || {
                    calls += 1;
                    let n = calls;
                    async move {
                        if n < 3 {
                            Err("busy".to_string())
                        } else {
                            Ok(n)
                        }
                    }
                },
            )
            .await;
        assert_eq!(r.unwrap(), 3);
        let r: Result<(), _> = policy.run("test", &cancel, |_: &String| true, || async { Err("down".to_string()) }).await;
        assert!(matches!(r, Err(RetryError::GaveUp { why: GiveUp::Exhausted(3), .. })), "{r:?}");
        let r: Result<(), _> = policy.run("test", &cancel, |e: &String| e == "busy", || async { Err("refused".to_string()) }).await;
        assert!(matches!(r, Err(RetryError::Failed(_))));
        cancel.cancel();
        let forever = RetryPolicy::default();
        let r: Result<(), _> = forever.run("test", &cancel, |_: &String| true, || async { Err("down".to_string()) }).await;
        assert!(matches!(r, Err(RetryError::GaveUp { why: GiveUp::Cancelled, .. })));
    }

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut last_ceiling = Duration::ZERO;
        for _ in 0..10 {
            let ceiling = b.ceiling();
            assert!(ceiling >= last_ceiling);
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling + Duration::from_millis(1), "{d:?} vs {ceiling:?}");
            last_ceiling = ceiling;
        }
        assert_eq!(b.ceiling(), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }
}
