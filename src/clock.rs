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

/// The default clock: monotonic on every platform, and as cheap as the platform allows.
///
/// * Linux and Android: `CLOCK_MONOTONIC_COARSE` (via [`coarsetime`]), which ticks with
///   the kernel's timer interrupt, typically every 1 to 4 ms; reading it costs about half
///   of a TSC read.
/// * Everywhere else: [`std::time::Instant`] (the OS monotonic clock: `mach_absolute_time`
///   on macOS, `QueryPerformanceCounter` on Windows, `CLOCK_MONOTONIC` on the BSDs), with
///   sub-microsecond ticks. Coarse sources elsewhere are either not monotonic (some BSDs
///   fall back to the wall clock) or too coarse (`GetTickCount64`'s 15.6 ms on Windows).
///
/// [`CoarseClock::TICK`] is the longest tick this platform's source may have. Decisions
/// stay exact on the clock's timeline; measured in real time, a quota may admit up to
/// `ceil(tick / T)` more than its bound in some window (one request more for any quota
/// with `T` at least the tick), because the clock lags real time by up to one tick. A
/// good trade for server-side limits of per-second or slower quotas; give fine-grained
/// limiters a precise clock (`MonotonicClock`, feature `tsc`).
///
/// ```
/// use tower_ratelimit::{RateLimiter, Quota, clock::CoarseClock};
/// let limiter = RateLimiter::with_clock(Quota::per_second(10).unwrap(), CoarseClock::new());
/// assert!(limiter.check().unwrap().is_allowed());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CoarseClock {
    origin: coarse::Instant,
}

/// The platform's coarse monotonic source.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod coarse {
    pub(super) use coarsetime::Instant;

    /// Longest tick: the kernel's timer interrupt at `CONFIG_HZ=100`.
    pub(super) const TICK: std::time::Duration = std::time::Duration::from_millis(10);

    #[inline]
    pub(super) fn now() -> Instant {
        // `now_without_cache_update`: the caching variant writes a global on every read,
        // which would bounce a cache line between cores.
        Instant::now_without_cache_update()
    }

    #[inline]
    pub(super) fn nanos_since(now: Instant, origin: Instant) -> u64 {
        now.duration_since(origin).as_nanos()
    }
}

/// The platform's monotonic source (no coarse one that is both monotonic and fine).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod coarse {
    pub(super) use std::time::Instant;

    /// `Instant`'s sources tick in well under a microsecond.
    pub(super) const TICK: std::time::Duration = std::time::Duration::from_micros(1);

    #[inline]
    pub(super) fn now() -> Instant {
        Instant::now()
    }

    #[inline]
    pub(super) fn nanos_since(now: Instant, origin: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl CoarseClock {
    /// The longest tick of this platform's source (10 ms on Linux and Android, where the
    /// kernel's coarse clock is used; 1 µs elsewhere).
    pub const TICK: Duration = coarse::TICK;

    /// A clock whose origin is now.
    pub fn new() -> Self {
        CoarseClock {
            origin: coarse::now(),
        }
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        // +1 keeps "now" strictly above the empty state's TAT of 0.
        coarse::nanos_since(coarse::now(), self.origin).saturating_add(1)
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
