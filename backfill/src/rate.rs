//! The optional `--max-docs-per-sec` limit, shared by all slices of a process: a virtual
//! clock that every batch advances by `docs / rate`. Batches wait until their slot; the limit
//! holds on average over any window longer than one batch, with no background task.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// A docs-per-second limiter.
#[derive(Debug)]
pub struct RateLimiter {
    per_doc: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter allowing `docs_per_sec` on average (must be > 0).
    pub fn new(docs_per_sec: u64) -> Self {
        RateLimiter { per_doc: Duration::from_secs_f64(1.0 / docs_per_sec.max(1) as f64), next: Mutex::new(Instant::now()) }
    }

    /// Waits until `docs` more documents may be written.
    pub async fn acquire(&self, docs: usize) {
        let start = {
            let mut next = self.next.lock();
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + self.per_doc * docs as u32;
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_the_average_rate() {
        let r = RateLimiter::new(1000);
        let t = Instant::now();
        for _ in 0..4 {
            r.acquire(100).await;
        }
        // 400 docs at 1000/s: the 4th batch starts 300 ms after the first.
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(290) && e < Duration::from_millis(800), "{e:?}");
    }
}
