//! Quotas (`n` requests per window, with a burst) and quota sets checked as one.
//!
//! # Semantics: GCRA
//!
//! A [`Quota`] of `n` per `window` with burst `b` is enforced with the Generic Cell
//! Rate Algorithm. Its parameters are
//!
//! * the emission interval `T = window / n` (rounded **up** to whole nanoseconds, so
//!   a quota never admits faster than configured), and
//! * the tolerance `tau = (b - 1) * T`.
//!
//! The state is one number, the theoretical arrival time `TAT`. A request of cost `c`
//! arriving at `now` is admitted iff `max(TAT, now) + c*T - now <= b*T` (for `c = 1`
//! that is the textbook `TAT - now <= tau`); if admitted, `TAT := max(TAT, now) + c*T`.
//! A denied request changes nothing.
//!
//! ## The bound
//!
//! In **any** closed interval of length `L`, a quota admits at most
//!
//! ```text
//! b + floor(L / T)          (request units, i.e. the sum of costs)
//! ```
//!
//! Proof sketch: let the first admission inside `[s, s+L]` happen at `t1 >= s`. After it
//! and every later admission inside the interval, adding `k` units in total,
//! `TAT >= s + k*T` (each admission adds its `c*T` on top of something `>= s`). The last
//! admission at `tm <= s + L` leaves `TAT <= tm + b*T <= s + L + b*T`. Hence
//! `k*T <= L + b*T`. The bound is reached by a client that starts with a full bucket and
//! then sends at exactly the emission rate. The property tests check it for every window
//! of every generated sequence.
//!
//! ## What surprises people
//!
//! With the default burst (`b = n`), "120 per minute" admits up to `120 + 120 = 240`
//! requests in some closed 60-second window (a full burst of 120 at the start, then one
//! every 0.5 s), and 239 in a half-open one. Averaged over a long time the rate is exactly
//! 120 per minute, but a sliding window can see almost twice that. If you need "never more
//! than `n` in any sliding window of length `W`", choose `b` and `T` with
//! `b + ceil(W/T) - 1 <= n`; the simplest is `burst(1)`, which spaces requests evenly
//! (`Quota::per_minute(120)?.with_burst(1)?` admits at most 120 in any half-open minute),
//! or combine quotas: `4/s AND 120/min` (the [`Quotas::claid`] preset) allows short bursts
//! while capping the minute.
//!
//! ## Compared with fixed windows
//!
//! A fixed-window counter resets at window boundaries, so a client can send `n` just
//! before a boundary and `n` just after it: `2n` in a moment. GCRA has no boundaries: it
//! refills continuously (one request every `T`), needs no timer and no counter reset, and
//! its "remaining" and "reset" values move smoothly.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::error::CheckError;

/// Most quotas one [`Quotas`] set can hold.
pub const MAX_QUOTAS: usize = 4;

/// The longest span of time, in nanoseconds, a quota may take to refill completely
/// (`burst * T`): 2^61 ns, about 73 years. Keeps all time arithmetic far from overflow.
pub(crate) const MAX_SPAN_NS: u64 = 1 << 61;

/// Why a [`Quota`] or a [`Quotas`] set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// `n` was zero: a quota must admit at least one request per window.
    ZeroLimit,
    /// The window was zero.
    ZeroWindow,
    /// The burst was zero: a quota must admit at least one request at once.
    ZeroBurst,
    /// `window / n` is below one nanosecond, so the emission interval would round to 0.
    IntervalTooSmall {
        /// The requested number of requests per window.
        limit: u32,
        /// The requested window.
        window: Duration,
    },
    /// `burst * window / n` exceeds about 73 years (2^61 ns), or the window does not fit
    /// in 64 bits of nanoseconds.
    SpanTooLong,
    /// A quota set must hold at least one quota.
    EmptySet,
    /// A quota set holds at most [`MAX_QUOTAS`] quotas.
    TooManyQuotas(usize),
    /// The quotas' bursts are too large to share one 128-bit atomic state word even at
    /// the coarsest resolution; use fewer quotas or smaller bursts.
    SetTooWide,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroLimit => f.write_str("quota limit must be at least 1 request per window"),
            Self::ZeroWindow => f.write_str("quota window must be longer than zero"),
            Self::ZeroBurst => f.write_str("quota burst must be at least 1"),
            Self::IntervalTooSmall { limit, window } => write!(
                f,
                "{limit} requests per {window:?} is more than one per nanosecond"
            ),
            Self::SpanTooLong => f.write_str("quota takes longer than 2^61 ns (about 73 years) to refill"),
            Self::EmptySet => f.write_str("a quota set needs at least one quota"),
            Self::TooManyQuotas(n) => {
                write!(f, "a quota set holds at most {MAX_QUOTAS} quotas, got {n}")
            }
            Self::SetTooWide => f.write_str(
                "the quotas' bursts are too large to share one atomic state word; use fewer quotas or smaller bursts",
            ),
        }
    }
}

impl std::error::Error for QuotaError {}

/// `n` requests per window, with a burst capacity (default `n`).
///
/// See the [module docs](crate::quota) for the exact semantics and the bound it
/// guarantees.
///
/// ```
/// use tower_ratelimit::Quota;
/// # fn main() -> Result<(), tower_ratelimit::QuotaError> {
/// let q = Quota::per_minute(120)?.with_burst(10)?.named("minute");
/// assert_eq!(q.limit(), 120);
/// assert_eq!(q.burst(), 10);
/// assert_eq!(q.emission_interval().as_millis(), 500);
/// assert!(Quota::per_second(0).is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Quota {
    limit: u32,
    window_ns: u64,
    burst: u32,
    t_ns: u64,
    name: Cow<'static, str>,
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("window", &self.window())
            .field("burst", &self.burst)
            .finish()
    }
}

impl Quota {
    /// `limit` requests per `window`, burst `limit`.
    pub fn new(limit: u32, window: Duration) -> Result<Self, QuotaError> {
        if limit == 0 {
            return Err(QuotaError::ZeroLimit);
        }
        if window.is_zero() {
            return Err(QuotaError::ZeroWindow);
        }
        let window_ns = u64::try_from(window.as_nanos()).map_err(|_| QuotaError::SpanTooLong)?;
        if window_ns / u64::from(limit) == 0 {
            return Err(QuotaError::IntervalTooSmall { limit, window });
        }
        // Round up: a quota must never admit faster than it says.
        let t_ns = window_ns.div_ceil(u64::from(limit));
        let q = Quota {
            limit,
            window_ns,
            burst: limit,
            t_ns,
            name: default_name(window_ns),
        };
        q.check_span()?;
        Ok(q)
    }

    /// `limit` requests per second.
    pub fn per_second(limit: u32) -> Result<Self, QuotaError> {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` requests per minute.
    pub fn per_minute(limit: u32) -> Result<Self, QuotaError> {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` requests per hour.
    pub fn per_hour(limit: u32) -> Result<Self, QuotaError> {
        Self::new(limit, Duration::from_secs(3600))
    }

    /// Sets the burst: how many requests may arrive at once after a quiet period.
    /// `1` spaces requests evenly; values above the limit allow larger bursts.
    pub fn with_burst(mut self, burst: u32) -> Result<Self, QuotaError> {
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        self.burst = burst;
        self.check_span()?;
        Ok(self)
    }

    /// Names the quota (the policy name in `RateLimit-Policy`, e.g. `"burst"`).
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    fn check_span(&self) -> Result<(), QuotaError> {
        match self.t_ns.checked_mul(u64::from(self.burst)) {
            Some(span) if span <= MAX_SPAN_NS => Ok(()),
            _ => Err(QuotaError::SpanTooLong),
        }
    }

    /// Requests per window, as configured.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window, as configured.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_ns)
    }

    /// The burst capacity.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The emission interval `T`: one request's worth of time.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.t_ns)
    }

    /// The policy name.
    pub fn name(&self) -> &str {
        &self.name
    }

    #[cfg(any(feature = "redis", test))]
    pub(crate) fn t_ns(&self) -> u64 {
        self.t_ns
    }

    /// The same quota with its emission interval rounded up to whole microseconds (what a
    /// store counting in µs enforces), or `None` if that would exceed the longest span.
    #[cfg(feature = "redis")]
    pub(crate) fn rounded_to_micros(&self) -> Option<Quota> {
        let q = Quota {
            t_ns: self.t_ns.div_ceil(1000).checked_mul(1000)?,
            ..self.clone()
        };
        q.check_span().ok().map(|()| q)
    }
}

fn default_name(window_ns: u64) -> Cow<'static, str> {
    const S: u64 = 1_000_000_000;
    match window_ns {
        S => "second".into(),
        w if w == 60 * S => "minute".into(),
        w if w == 3600 * S => "hour".into(),
        w if w == 86_400 * S => "day".into(),
        w if w % S == 0 => format!("{}s", w / S).into(),
        w => format!("{w}ns").into(),
    }
}

/// Per-quota parameters in the set's time unit (`2^shift` ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Params {
    /// Emission interval `T`, in units.
    pub(crate) t: u64,
    /// Burst capacity `b`.
    pub(crate) burst: u64,
    /// `b * T`, in units: the most the level can ever reach.
    pub(crate) cap: u64,
    /// Bit offset of this quota's level in the packed 64-bit level word.
    pub(crate) offset: u32,
    /// Bit width of this quota's level in the packed word.
    pub(crate) width: u32,
}

/// FNV-1a over the unit and every quota's interval and burst (unused slots are zero).
fn fingerprint(shift: u32, params: &[Params; MAX_QUOTAS]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(u64::from(shift));
    for p in params {
        eat(p.t);
        eat(p.burst);
    }
    (h ^ (h >> 32)) as u32
}

/// One to [`MAX_QUOTAS`] quotas checked as a single decision: a request is admitted only
/// if every quota admits it, and a denied request consumes from none.
///
/// ```
/// use tower_ratelimit::{Quota, Quotas};
/// # fn main() -> Result<(), tower_ratelimit::QuotaError> {
/// let set = Quotas::new([Quota::per_second(4)?.named("burst"), Quota::per_minute(120)?])?;
/// assert_eq!(set.len(), 2);
/// assert_eq!(set, Quotas::claid());
/// # Ok(()) }
/// ```
///
/// # Resolution
///
/// One quota is tracked to the nanosecond. A set of several quotas keeps all of its state
/// in one 128-bit atomic word so that the all-or-nothing rule is exact without locks; to
/// fit, time may be counted in units of `2^k` ns, where `k` is the smallest value that
/// fits (`k = 1` for the Claid preset, `k = 0` for most two-quota sets). Emission intervals
/// are rounded up to whole units, so the set never admits more than configured;
/// [`Quotas::resolution`] tells the unit.
#[derive(Clone)]
pub struct Quotas {
    quotas: Vec<Quota>,
    pub(crate) params: [Params; MAX_QUOTAS],
    pub(crate) shift: u32,
    /// Smallest burst in the set: the largest cost that can ever be admitted.
    pub(crate) min_burst: u32,
    /// A hash of the numbers decisions depend on (unit, intervals, bursts), so an
    /// [`Outcome`](crate::Outcome) can tell whether it is re-attached to its own set.
    pub(crate) fingerprint: u32,
}

impl PartialEq for Quotas {
    fn eq(&self, other: &Self) -> bool {
        self.quotas == other.quotas
    }
}
impl Eq for Quotas {}

impl fmt::Debug for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quotas")
            .field("quotas", &self.quotas)
            .field("resolution", &self.resolution())
            .finish()
    }
}

impl From<Quota> for Quotas {
    fn from(q: Quota) -> Self {
        // A single quota always fits: it is tracked in its own 64-bit word.
        Self::build(vec![q]).unwrap_or_else(|_| unreachable!("one valid quota always fits"))
    }
}

impl Quotas {
    /// Builds a set from 1 to [`MAX_QUOTAS`] quotas.
    pub fn new(quotas: impl IntoIterator<Item = Quota>) -> Result<Self, QuotaError> {
        Self::build(quotas.into_iter().collect())
    }

    fn build(quotas: Vec<Quota>) -> Result<Self, QuotaError> {
        match quotas.len() {
            0 => return Err(QuotaError::EmptySet),
            n if n > MAX_QUOTAS => return Err(QuotaError::TooManyQuotas(n)),
            _ => {}
        }
        let min_burst = quotas.iter().map(|q| q.burst).min().unwrap_or(1);
        if quotas.len() == 1 {
            let q = &quotas[0];
            let mut params = [Params::default(); MAX_QUOTAS];
            params[0] = Params {
                t: q.t_ns,
                burst: u64::from(q.burst),
                cap: q.t_ns * u64::from(q.burst),
                offset: 0,
                width: 64,
            };
            return Ok(Quotas {
                fingerprint: fingerprint(0, &params),
                quotas,
                params,
                shift: 0,
                min_burst,
            });
        }
        // Several quotas share one AtomicU128: a 64-bit base time plus every quota's
        // level (TAT - base, at most burst*T) packed into the other 64 bits. Find the
        // finest unit 2^shift ns in which all the levels fit.
        for shift in 0..62 {
            let mut params = [Params::default(); MAX_QUOTAS];
            let mut offset = 0u32;
            for (p, q) in params.iter_mut().zip(&quotas) {
                let t = q.t_ns.div_ceil(1 << shift);
                let cap = t * u64::from(q.burst);
                let width = 64 - cap.leading_zeros();
                *p = Params {
                    t,
                    burst: u64::from(q.burst),
                    cap,
                    offset,
                    width,
                };
                offset += width;
            }
            if offset <= 64 {
                return Ok(Quotas {
                    fingerprint: fingerprint(shift, &params),
                    quotas,
                    params,
                    shift,
                    min_burst,
                });
            }
        }
        Err(QuotaError::SetTooWide)
    }

    /// The same set with every emission interval rounded up to whole microseconds, or
    /// `None` if the rounded set no longer fits.
    #[cfg(feature = "redis")]
    pub(crate) fn rounded_to_micros(&self) -> Option<Quotas> {
        let quotas = self
            .quotas
            .iter()
            .map(Quota::rounded_to_micros)
            .collect::<Option<Vec<_>>>()?;
        Self::build(quotas).ok()
    }

    /// Clarifai's documented default: 15 requests per second.
    pub fn clarifai() -> Self {
        Quota::new(15, Duration::from_secs(1))
            .map(|q| q.named("second"))
            .map(Self::from)
            .unwrap_or_else(|_| unreachable!("15/s is a valid quota"))
    }

    /// Claid's documented default: 4 per second AND 120 per minute, named `"burst"` and
    /// `"minute"`.
    pub fn claid() -> Self {
        let set = Quota::new(4, Duration::from_secs(1))
            .map(|q| q.named("burst"))
            .and_then(|s| Ok((s, Quota::new(120, Duration::from_secs(60))?.named("minute"))))
            .and_then(|(s, m)| Quotas::new([s, m]));
        set.unwrap_or_else(|_| unreachable!("4/s + 120/min is a valid set"))
    }

    /// Number of quotas in the set.
    pub fn len(&self) -> usize {
        self.quotas.len()
    }

    /// Always `false`: a set holds at least one quota.
    pub fn is_empty(&self) -> bool {
        self.quotas.is_empty()
    }

    /// The quotas, in the order given.
    pub fn iter(&self) -> std::slice::Iter<'_, Quota> {
        self.quotas.iter()
    }

    /// The `i`-th quota.
    pub fn get(&self, i: usize) -> Option<&Quota> {
        self.quotas.get(i)
    }

    /// The time unit the set's state is kept in (1 ns unless several quotas needed a
    /// coarser unit to share one atomic word).
    pub fn resolution(&self) -> Duration {
        Duration::from_nanos(1 << self.shift)
    }

    /// The largest cost a single request can have and still ever be admitted.
    pub fn max_cost(&self) -> u32 {
        self.min_burst
    }

    /// Rejects costs that are zero or above the set's smallest burst, in one comparison.
    #[inline]
    pub(crate) fn check_cost(&self, cost: u32) -> Result<(), CheckError> {
        if cost.wrapping_sub(1) < self.min_burst {
            Ok(())
        } else if cost == 0 {
            Err(CheckError::ZeroCost)
        } else {
            Err(CheckError::CostExceedsBurst {
                cost,
                max_cost: self.min_burst,
            })
        }
    }

    pub(crate) fn as_slice(&self) -> &[Quota] {
        &self.quotas
    }

    pub(crate) fn params(&self) -> &[Params] {
        &self.params[..self.quotas.len()]
    }
}

impl<'a> IntoIterator for &'a Quotas {
    type Item = &'a Quota;
    type IntoIter = std::slice::Iter<'a, Quota>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_quotas_are_refused() {
        assert_eq!(Quota::per_second(0), Err(QuotaError::ZeroLimit));
        assert_eq!(Quota::new(1, Duration::ZERO), Err(QuotaError::ZeroWindow));
        assert!(matches!(
            Quota::new(10, Duration::from_nanos(9)),
            Err(QuotaError::IntervalTooSmall { .. })
        ));
        assert_eq!(
            Quota::new(1, Duration::MAX),
            Err(QuotaError::SpanTooLong),
            "window beyond u64 ns"
        );
        assert_eq!(
            Quota::per_hour(1).and_then(|q| q.with_burst(u32::MAX)),
            Err(QuotaError::SpanTooLong)
        );
        assert_eq!(
            Quota::per_second(1).and_then(|q| q.with_burst(0)),
            Err(QuotaError::ZeroBurst)
        );
        assert_eq!(Quotas::new([]), Err(QuotaError::EmptySet));
        let q = Quota::per_second(1).expect("valid");
        assert_eq!(Quotas::new(vec![q; 5]), Err(QuotaError::TooManyQuotas(5)));
        let wide = Quota::per_hour(u32::MAX).and_then(|q| q.with_burst(u32::MAX));
        let wide = wide.expect("valid alone");
        assert_eq!(Quotas::new(vec![wide; 3]), Err(QuotaError::SetTooWide));
        // Errors render as sentences, not panics.
        assert!(QuotaError::SetTooWide.to_string().contains("fewer quotas"));
    }

    #[test]
    fn emission_interval_rounds_up() {
        let q = Quota::per_second(3).expect("valid");
        assert_eq!(q.t_ns(), 333_333_334);
    }

    #[test]
    fn presets_pack_exactly_enough() {
        let claid = Quotas::claid();
        assert_eq!(claid.len(), 2);
        assert_eq!(claid.resolution(), Duration::from_nanos(2));
        let p = claid.params();
        assert_eq!(p[0].t * 2, 250_000_000, "no rounding at 2 ns");
        assert!(p[0].width + p[1].width <= 64);
        assert_eq!(Quotas::clarifai().resolution(), Duration::from_nanos(1));
        // Four quotas spanning a second to a day still fit, at a coarser unit.
        let four = Quotas::new([
            Quota::per_second(10).expect("v"),
            Quota::per_minute(100).expect("v"),
            Quota::per_hour(1000).expect("v"),
            Quota::new(10_000, Duration::from_secs(86_400)).expect("v"),
        ])
        .expect("fits");
        assert!(four.resolution() < Duration::from_millis(100));
    }
}
