//! [`IntervalGate`]: lets one event through per interval, shared by every thread.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Opens at most once per interval: the first caller after the interval has passed wins,
/// the others are told to stay quiet.
///
/// Used wherever a fault could otherwise produce one log line (or one reconnect) per
/// request: an outage must not turn every request into a warning.
#[derive(Debug)]
pub(crate) struct IntervalGate {
    origin: Instant,
    interval_ns: u64,
    /// Nanoseconds since `origin` of the last opening, plus one (0 = never opened).
    last: AtomicU64,
}

impl IntervalGate {
    pub(crate) fn new(interval: Duration) -> Self {
        IntervalGate {
            origin: Instant::now(),
            interval_ns: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            last: AtomicU64::new(0),
        }
    }

    /// One event per second.
    pub(crate) fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// Whether this caller may go ahead now.
    pub(crate) fn open(&self) -> bool {
        let now = u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.last.load(Relaxed);
        // A full interval since the last opening, measured in time, not in calendar
        // seconds: two openings are never closer than the interval.
        let due = last == 0 || now.saturating_sub(last) >= self.interval_ns;
        due && self
            .last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::IntervalGate;
    use std::time::Duration;

    #[test]
    fn opens_once_per_interval() {
        let gate = IntervalGate::per_second();
        assert!(gate.open(), "the first event goes through");
        assert!(!gate.open(), "the next ones within the interval do not");
        assert!(!gate.open());
    }

    #[test]
    fn opens_again_after_the_interval() {
        let gate = IntervalGate::new(Duration::from_millis(1));
        assert!(gate.open());
        std::thread::sleep(Duration::from_millis(5));
        assert!(gate.open(), "a full interval has passed");
    }

    #[test]
    fn two_openings_are_never_closer_than_the_interval() {
        // With a long interval, however the calls straddle calendar seconds, only the
        // first of many rapid calls opens.
        let gate = IntervalGate::new(Duration::from_secs(3600));
        let opened = (0..10_000).filter(|_| gate.open()).count();
        assert_eq!(opened, 1);
    }

    #[test]
    fn only_one_thread_wins_each_interval() {
        let gate = IntervalGate::new(Duration::from_secs(3600));
        let opened = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1_000).filter(|_| gate.open()).count()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .sum::<usize>()
        });
        assert_eq!(opened, 1);
    }
}
