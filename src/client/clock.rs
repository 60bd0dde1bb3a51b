//! A [`Clock`] over tokio's time, so paused tokio time drives the limiter in tests.

use crate::clock::Clock;

/// Nanoseconds since this clock's creation, read from [`tokio::time::Instant`].
///
/// The pacer sleeps with tokio timers, so deciding on the same clock keeps the two in
/// step; under `tokio::time::pause()` both are virtual and tests are exact. Clones share
/// the origin.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tower_ratelimit::{clock::Clock, client::TokioClock};
/// let clock = TokioClock::new();
/// let t0 = clock.now_ns();
/// tokio::time::sleep(Duration::from_millis(250)).await;
/// assert_eq!(clock.now_ns() - t0, 250_000_000);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl TokioClock {
    /// A clock whose origin is tokio's "now".
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ns(&self) -> u64 {
        // +1 keeps "now" strictly above the empty state's TAT of 0.
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }
}
