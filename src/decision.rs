//! [`Decision`]: everything headers and renderers need, from the state already in hand.
//!
//! A decision keeps the raw numbers of the check (the time it was made and every quota's
//! TAT afterwards) and derives the rest on demand, so a check that only asks
//! "admitted?" pays for no division, and no accessor ever reads the clock again.

use std::time::Duration;

use crate::quota::{MAX_QUOTAS, Quota, Quotas};

/// The result of checking one request against a quota set.
///
/// ```
/// use tower_ratelimit::{Quota, RateLimiter, clock::ManualClock};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::with_clock(Quota::per_second(2)?, clock.clone());
/// let d = limiter.check()?;
/// assert!(d.is_allowed());
/// assert_eq!(d.binding().remaining(), 1);
/// limiter.check()?;
/// let denied = limiter.check()?;
/// assert!(!denied.is_allowed());
/// assert_eq!(denied.retry_after(), Some(std::time::Duration::from_millis(500)));
/// assert_eq!(denied.denied_by().map(|q| q.quota().limit()), Some(2));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Decision<'q> {
    quotas: &'q Quotas,
    outcome: Outcome,
}

/// A [`Decision`] without its quota set: plain numbers, `Copy` and `'static`, for stores
/// that answer asynchronously (the set is re-attached with [`Outcome::decision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// When the decision was made, in the set's unit.
    now: u64,
    /// Every quota's TAT after the decision (unchanged when denied), in the set's unit.
    tats: [u64; MAX_QUOTAS],
    cost: u32,
    /// [`Quotas::fingerprint`] of the set that decided.
    set: u32,
    /// The store's configuration generation the decision was made under (see
    /// [`Store::tiers_of`](crate::store::Store::tiers_of)); 0 until a reload.
    generation: u32,
    /// `(quota index, wait in units)` when denied.
    denied: Option<(u8, u64)>,
}

impl Outcome {
    /// Builds an outcome from a store's raw numbers, all in the set's unit.
    pub(crate) fn new(
        quotas: &Quotas,
        now: u64,
        tats: [u64; MAX_QUOTAS],
        cost: u32,
        denied: Option<(usize, u64)>,
    ) -> Self {
        Outcome {
            now,
            tats,
            cost,
            set: quotas.fingerprint,
            generation: 0,
            // MAX_QUOTAS is far below 256.
            denied: denied.map(|(i, w)| (i as u8, w)),
        }
    }

    /// Whether the request was admitted.
    #[inline]
    pub fn is_allowed(&self) -> bool {
        self.denied.is_none()
    }

    /// The configuration generation of the store that decided (0 until its first
    /// reload): re-attach the outcome to that generation's quota set,
    /// [`Store::tiers_of`](crate::store::Store::tiers_of)`(generation)`.
    #[inline]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    #[inline]
    pub(crate) fn in_generation(mut self, generation: u32) -> Self {
        self.generation = generation;
        self
    }

    /// Re-attaches the quota set the outcome was decided against: the store's
    /// [`quotas`](crate::store::Store::quotas) for the tier it checked. `None` if `quotas`
    /// is not that set (its unit, intervals or bursts differ), whose numbers would be
    /// meaningless.
    ///
    /// ```
    /// use tower_ratelimit::{Quota, Quotas, RateLimiter, clock::ManualClock};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = RateLimiter::with_clock(Quotas::claid(), ManualClock::new());
    /// let outcome = limiter.check()?.outcome();
    /// assert_eq!(outcome.decision(&Quotas::claid()).map(|d| d.binding().remaining()), Some(3));
    /// assert!(outcome.decision(&Quotas::from(Quota::per_second(4)?)).is_none());
    /// # Ok(()) }
    /// ```
    pub fn decision(self, quotas: &Quotas) -> Option<Decision<'_>> {
        (self.set == quotas.fingerprint).then(|| self.attach(quotas))
    }

    /// Re-attaches the set that decided, known to be `quotas` (a store's own set).
    #[inline]
    pub(crate) fn attach(self, quotas: &Quotas) -> Decision<'_> {
        debug_assert_eq!(self.set, quotas.fingerprint, "an outcome of another set");
        Decision {
            quotas,
            outcome: self,
        }
    }
}

impl<'q> Decision<'q> {
    pub(crate) fn new(
        quotas: &'q Quotas,
        now: u64,
        tats: [u64; MAX_QUOTAS],
        cost: u32,
        denied: Option<(usize, u64)>,
    ) -> Self {
        Outcome::new(quotas, now, tats, cost, denied).attach(quotas)
    }

    /// The numbers behind this decision, without the borrow of the quota set.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the request was admitted (and its cost consumed from every quota).
    #[inline]
    pub fn is_allowed(&self) -> bool {
        self.outcome.denied.is_none()
    }

    /// The cost the request was checked with.
    pub fn cost(&self) -> u32 {
        self.outcome.cost
    }

    /// The quota set the decision was made against.
    pub fn quotas(&self) -> &'q Quotas {
        self.quotas
    }

    /// For a denied request: how long until this same request would be admitted, if no
    /// other request consumes capacity meanwhile. `None` when admitted.
    pub fn retry_after(&self) -> Option<Duration> {
        self.outcome.denied.map(|(_, w)| self.units_to_duration(w))
    }

    /// For a denied request: the quota that refused it (the one with the longest wait).
    #[inline]
    pub fn denied_by(&self) -> Option<QuotaState<'q>> {
        self.outcome.denied.map(|(i, _)| self.state(usize::from(i)))
    }

    /// The state of every quota after the decision, in the set's order.
    pub fn states(&self) -> impl ExactSizeIterator<Item = QuotaState<'q>> + '_ {
        (0..self.quotas.len()).map(|i| self.state(i))
    }

    /// The quota closest to exhaustion (fewest remaining requests; on a tie, the one that
    /// takes longest to refill). For a denial it is the quota that refused.
    #[inline]
    pub fn binding(&self) -> QuotaState<'q> {
        if let Some(d) = self.denied_by() {
            return d;
        }
        let mut best = self.state(0);
        for i in 1..self.quotas.len() {
            let s = self.state(i);
            if (s.remaining, std::cmp::Reverse(s.reset_ns))
                < (best.remaining, std::cmp::Reverse(best.reset_ns))
            {
                best = s;
            }
        }
        best
    }

    /// The state of quota `i`. Panics if `i` is out of range; use [`Decision::states`].
    #[inline]
    fn state(&self, i: usize) -> QuotaState<'q> {
        let p = self.quotas.params[i];
        let level = self.outcome.tats[i].saturating_sub(self.outcome.now);
        // A clock that stepped back can leave the level above the cap: nothing remains.
        let free = p.cap.saturating_sub(level);
        let remaining = free / p.t;
        // Time until one more request fits: the level must drop to cap - t.
        let next = level.saturating_sub(p.cap - p.t);
        QuotaState {
            index: i,
            quota: &self.quotas.as_slice()[i],
            remaining,
            // Kept as nanoseconds: most callers read only `remaining` or one duration.
            reset_ns: self.units_to_nanos(level),
            next_ns: self.units_to_nanos(next),
        }
    }

    /// The index of the quota that refused, for a denial.
    #[inline]
    pub(crate) fn denied_index(&self) -> Option<usize> {
        self.outcome.denied.map(|(i, _)| usize::from(i))
    }

    #[inline]
    fn units_to_nanos(&self, units: u64) -> u64 {
        units.saturating_mul(1 << self.quotas.shift)
    }

    fn units_to_duration(&self, units: u64) -> Duration {
        Duration::from_nanos(self.units_to_nanos(units))
    }
}

/// One quota's state as seen by a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState<'q> {
    index: usize,
    quota: &'q Quota,
    remaining: u64,
    reset_ns: u64,
    next_ns: u64,
}

impl<'q> QuotaState<'q> {
    /// Position of the quota in its set.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The quota.
    pub fn quota(&self) -> &'q Quota {
        self.quota
    }

    /// Whole requests (of cost 1) that would be admitted right now, one after another.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Time until the quota is fully restored (its whole burst available again).
    pub fn reset(&self) -> Duration {
        Duration::from_nanos(self.reset_ns)
    }

    /// Time until at least one more request of cost 1 fits (zero if one fits now).
    pub fn next_available(&self) -> Duration {
        Duration::from_nanos(self.next_ns)
    }
}
