//! The circuit breaker: after a few failures in a row, checks are answered by the failure
//! policy at once instead of each waiting the timeout, while one probe at a time asks
//! Redis whether it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// First wait between probes; doubled after each failed probe up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct Breaker {
    /// Failures in a row that open the breaker (0: never opens).
    threshold: u32,
    failures_in_a_row: AtomicU32,
    open: AtomicBool,
    /// A probe is in flight (at most one at a time).
    probing: AtomicBool,
    origin: Instant,
    /// When the next probe is due, in ns since `origin`.
    next_probe_ns: AtomicU64,
    backoff_ns: AtomicU64,
}

/// Held by the one probe in flight; lets the next one start when dropped, even if the
/// probe's task panicked or was cancelled.
pub(super) struct ProbeGuard(Arc<Breaker>);

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.0.probing.store(false, Relaxed);
    }
}

impl Breaker {
    pub(super) fn new(threshold: u32) -> Self {
        Breaker {
            threshold,
            failures_in_a_row: AtomicU32::new(0),
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            origin: Instant::now(),
            next_probe_ns: AtomicU64::new(0),
            backoff_ns: AtomicU64::new(nanos(FIRST_BACKOFF)),
        }
    }

    fn now_ns(&self) -> u64 {
        nanos(self.origin.elapsed())
    }

    /// Whether checks should skip Redis and answer by the policy now.
    #[inline]
    pub(super) fn is_open(&self) -> bool {
        self.open.load(Relaxed)
    }

    /// Redis answered: closes the breaker.
    #[inline]
    pub(super) fn success(&self) {
        if self.failures_in_a_row.load(Relaxed) != 0 {
            self.failures_in_a_row.store(0, Relaxed);
        }
        if self.open.load(Relaxed) {
            self.backoff_ns.store(nanos(FIRST_BACKOFF), Relaxed);
            self.open.store(false, Relaxed);
            tracing::warn!(
                target: "tower_ratelimit",
                "rate-limit store: Redis answers again; checks go to Redis"
            );
        }
    }

    /// Redis failed or timed out; opens the breaker after `threshold` in a row.
    pub(super) fn failure(&self) {
        if self.threshold == 0 {
            return;
        }
        let n = self
            .failures_in_a_row
            .fetch_add(1, Relaxed)
            .saturating_add(1);
        if n >= self.threshold && !self.open.swap(true, Relaxed) {
            let backoff = self.backoff_ns.load(Relaxed);
            self.next_probe_ns
                .store(self.now_ns().saturating_add(backoff), Relaxed);
            tracing::warn!(
                target: "tower_ratelimit",
                failures = n,
                "rate-limit store: Redis failing; answering by the failure policy at once and probing in the background"
            );
        }
    }

    /// The right to probe now, if a probe is due and none is in flight. The caller runs
    /// the probe and reports it with [`Breaker::success`] or [`Breaker::probe_failed`].
    pub(super) fn try_probe(self: &Arc<Self>) -> Option<ProbeGuard> {
        if !self.is_open() || self.now_ns() < self.next_probe_ns.load(Relaxed) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Relaxed, Relaxed)
            .ok()
            .map(|_| ProbeGuard(Arc::clone(self)))
    }

    /// A probe failed: the next one waits twice as long (up to two seconds).
    pub(super) fn probe_failed(&self) {
        let backoff = self.backoff_ns.load(Relaxed);
        self.next_probe_ns
            .store(self.now_ns().saturating_add(backoff), Relaxed);
        self.backoff_ns
            .store(backoff.saturating_mul(2).min(nanos(MAX_BACKOFF)), Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let b = Arc::new(Breaker::new(3));
        b.failure();
        b.failure();
        assert!(!b.is_open());
        b.success();
        b.failure();
        b.failure();
        assert!(!b.is_open(), "a success resets the count");
        b.failure();
        assert!(b.is_open());
        assert!(b.try_probe().is_none(), "the first probe waits its backoff");
        b.success();
        assert!(!b.is_open());
    }

    #[test]
    fn one_probe_at_a_time() {
        let b = Arc::new(Breaker::new(1));
        b.failure();
        b.next_probe_ns.store(0, Relaxed);
        let first = b.try_probe();
        assert!(first.is_some());
        assert!(b.try_probe().is_none(), "one probe in flight");
        drop(first);
        assert!(b.try_probe().is_some(), "the guard released it");
    }

    #[test]
    fn failed_probes_back_off_to_two_seconds() {
        let b = Breaker::new(1);
        b.failure();
        for _ in 0..10 {
            b.probe_failed();
        }
        assert_eq!(b.backoff_ns.load(Relaxed), nanos(MAX_BACKOFF));
        assert!(b.next_probe_ns.load(Relaxed) > b.now_ns());
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = Breaker::new(0);
        for _ in 0..100 {
            b.failure();
        }
        assert!(!b.is_open());
    }
}
