//! Clocks: where "now" comes from.
//!
//! A [`Clock`] returns nanoseconds since an arbitrary origin of its own. The limiter
//! never trusts it blindly: readings are capped far below overflow, and a reading that
//! goes backwards only makes decisions stricter (the state remembers the later time), so
//! a misbehaving clock can never admit more than the quotas allow.

#[cfg(feature = "tsc")]
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Readings are capped here (2^62 ns, about 146 years) so `now + burst*T` cannot overflow.
/// A clock pinned at the cap behaves like a stopped clock: requests are admitted until
/// the quotas are exhausted, then denied.
pub(crate) const MAX_NOW_NS: u64 = 1 << 62;

/// A clock reading capped at [`MAX_NOW_NS`]: what every limiter uses as "now".
#[inline]
pub(crate) fn capped_now_ns<C: Clock + ?Sized>(clock: &C) -> u64 {
    clock.now_ns().min(MAX_NOW_NS)
}

/// A source of monotonic time in nanoseconds.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since this clock's origin.
    fn now_ns(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// The clock limiters use unless given another: [`CoarseClock`].
///
/// Server-side limits are per second or slower, where a clock with a millisecond tick
/// loses nothing and halves the cost of a check. Where sub-millisecond precision matters,
/// pass a precise clock to `with_clock`: `MonotonicClock` (TSC, feature `tsc`), or any
/// [`Clock`] of your own.
pub type DefaultClock = CoarseClock;

/// A precise clock: the CPU's invariant time-stamp counter where available (via
/// [`quanta`], nanosecond resolution), else the OS monotonic clock. Feature `tsc`.
#[cfg(feature = "tsc")]
#[derive(Clone)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    origin: u64,
}

#[cfg(feature = "tsc")]
impl fmt::Debug for MonotonicClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonotonicClock").finish_non_exhaustive()
    }
}

#[cfg(feature = "tsc")]
impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tsc")]
impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        MonotonicClock { clock, origin }
    }
}

#[cfg(feature = "tsc")]
impl Clock for MonotonicClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        // +1 keeps "now" strictly above the empty state's TAT of 0.
        self.clock.delta_as_nanos(self.origin, self.clock.raw()) + 1
    }
}

/// A cheaper clock with the kernel tick's resolution (`CLOCK_MONOTONIC_COARSE` on
/// Linux, typically 1 to 4 ms), via [`coarsetime`].
///
/// The default clock. Reading it costs about half of a TSC read. Decisions stay exact on
/// its timeline; measured in real time, a quota may admit up to `ceil(tick / T)` more than
/// its bound in some window (one request more for any quota with `T` of 4 ms or longer),
/// because the clock lags real time by up to one tick. A good trade for server-side limits
/// of per-second or slower quotas; give fine-grained limiters a precise clock.
///
/// ```
/// use tower_ratelimit::{RateLimiter, Quota, clock::CoarseClock};
/// let limiter = RateLimiter::with_clock(Quota::per_second(10).unwrap(), CoarseClock::new());
/// assert!(limiter.check().unwrap().is_allowed());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CoarseClock {
    origin: coarsetime::Instant,
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl CoarseClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        CoarseClock {
            origin: coarsetime::Instant::now_without_cache_update(),
        }
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        // `now_without_cache_update`: the caching variant writes a global on every read,
        // which would bounce a cache line between cores.
        let now = coarsetime::Instant::now_without_cache_update();
        now.duration_since(self.origin).as_nanos() + 1
    }
}

/// A clock moved by hand, for deterministic tests. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use tower_ratelimit::clock::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let t0 = clock.now_ns();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now_ns() - t0, 250_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A manual clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward, saturating instead of overflowing.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the time, forwards or backwards (to test clocks that step back).
    pub fn set_ns(&self, ns: u64) {
        self.0.store(ns, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
