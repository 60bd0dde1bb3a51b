//! The in-process store: lock-free, allocation-free on the check path.

use std::fmt;
use std::hash::Hash;

use crate::clock::{Clock, DefaultClock, capped_now_ns};
use crate::decision::{Decision, Outcome};
use crate::error::{CheckError, StoreError};
use crate::quota::Quotas;
use crate::state::{Cell, Cell64, Cell128, Raw};
use crate::store::table::{Admit, CellTable};
use crate::store::{Check, Store, Tier, Tiers};

/// The clock reading in the set's unit, capped far from overflow.
#[inline]
fn now_units<C: Clock>(clock: &C, quotas: &Quotas) -> u64 {
    capped_now_ns(clock) >> quotas.shift
}

#[inline]
fn decision(quotas: &Quotas, now: u64, raw: Raw, cost: u32) -> Decision<'_> {
    Decision::new(quotas, now, raw.tats, cost, raw.denied)
}

enum DirectCell {
    One(Cell64),
    Many(Cell128),
}

impl DirectCell {
    fn for_set(quotas: &Quotas) -> Self {
        if quotas.len() == 1 {
            Self::One(Cell64::default())
        } else {
            Self::Many(Cell128::default())
        }
    }
}

/// One limit for everything (a "direct" limiter): one state, no key.
///
/// ```
/// use tower_ratelimit::{Quotas, RateLimiter};
/// let limiter = RateLimiter::new(Quotas::claid());
/// let admitted = (0..10).filter(|_| limiter.check().unwrap().is_allowed()).count();
/// assert_eq!(admitted, 4, "the 4-per-second burst");
/// ```
pub struct RateLimiter<C = DefaultClock> {
    quotas: Quotas,
    cell: DirectCell,
    clock: C,
}

impl<C> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

impl RateLimiter<DefaultClock> {
    /// A limiter over `quotas` (a [`Quota`](crate::Quota) or a [`Quotas`] set) on the
    /// default clock ([`DefaultClock`]).
    pub fn new(quotas: impl Into<Quotas>) -> Self {
        Self::with_clock(quotas, DefaultClock::new())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter on the given clock.
    pub fn with_clock(quotas: impl Into<Quotas>, clock: C) -> Self {
        let quotas = quotas.into();
        RateLimiter {
            cell: DirectCell::for_set(&quotas),
            quotas,
            clock,
        }
    }

    /// Checks one request of cost 1.
    #[inline]
    pub fn check(&self) -> Result<Decision<'_>, CheckError> {
        self.check_n(1)
    }

    /// Checks one request of cost `cost` (its weight in every quota).
    #[inline]
    pub fn check_n(&self, cost: u32) -> Result<Decision<'_>, CheckError> {
        self.quotas.check_cost(cost)?;
        let now = now_units(&self.clock, &self.quotas);
        let raw = match &self.cell {
            DirectCell::One(c) => c.check(&self.quotas, now, u64::from(cost)),
            DirectCell::Many(c) => c.check(&self.quotas, now, u64::from(cost)),
        };
        // A direct cell is never reaped, so it is never a tombstone.
        let raw = raw.unwrap_or_else(|| unreachable!("direct cells are never reaped"));
        Ok(decision(&self.quotas, now, raw, cost))
    }

    /// The quota set.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

enum Table {
    One(CellTable<Cell64>),
    Many(CellTable<Cell128>),
}

/// What a keyed limiter does with a **new** key once it tracks its maximum number of
/// keys ([`KeyedRateLimiter::with_max_keys`]). Keys already tracked are never affected:
/// a live key is never evicted to make room, since that would hand an over-limit client
/// a fresh budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AtCapacity {
    /// Refuse to decide: the check returns [`CheckError::TooManyKeys`], which the
    /// middleware answers with 503 Service Unavailable and `Retry-After: 1`. The default:
    /// a flood of new keys cannot get past the limiter, at the price of turning new
    /// clients away until room frees.
    #[default]
    Reject,
    /// Admit the new key as if it had never been seen (a full burst), without tracking
    /// it: its next request is decided afresh again, so until room frees, each new client
    /// is limited only per request (`cost <= burst`), not over time. Service for new
    /// clients goes on during a flood; the limit on them is suspended for that time.
    AdmitUntracked,
}

/// One state per client key (IP, API key, any `Hash` key, unsized ones like `str`
/// included) over a lock-free table that stores a 64-bit keyed fingerprint of each key
/// inline beside its state (see the note on collisions below).
///
/// Memory stays bounded without a cleanup thread, and no check pays for the whole table:
/// each insert of a new key does one bounded step of upkeep (reaping a few dozen slots
/// whose state has become equivalent to "never seen", or moving a few hundred slots of a
/// resize in progress). The table grows as keys arrive and shrinks again when a sweep
/// finds most of it dead. An optional cap ([`KeyedRateLimiter::with_max_keys`]) bounds
/// the number of tracked keys under a flood of distinct keys; at the cap, new keys get
/// the [`AtCapacity`] policy (by default [`CheckError::TooManyKeys`]) while the sweep,
/// driven by those same attempts, frees the room of expired keys. A live key is never
/// evicted, which would reset that client's limit.
///
/// Keys are not stored: a slot holds a SipHash-1-3 fingerprint (random keys per limiter)
/// and the state, 16 bytes (32 for a multi-quota set), one cache miss per lookup. Two
/// keys share a state only if their fingerprints collide: probability about `n²/2^65`
/// over `n` keys (3 × 10^-8 at a million keys); they would then share one budget, never
/// get a looser one.
///
/// ```
/// use tower_ratelimit::{KeyedRateLimiter, Quota};
/// let limiter = KeyedRateLimiter::<str>::new(Quota::per_second(1).unwrap());
/// assert!(limiter.check_key("alice").unwrap().is_allowed());
/// assert!(!limiter.check_key("alice").unwrap().is_allowed());
/// assert!(limiter.check_key("bob").unwrap().is_allowed(), "keys are independent");
/// ```
pub struct KeyedRateLimiter<K: ?Sized, C = DefaultClock> {
    quotas: Quotas,
    table: Table,
    key: std::marker::PhantomData<fn(&K)>,
    clock: C,
    max_keys: Option<usize>,
    at_capacity: AtCapacity,
}

impl<K: ?Sized, C> fmt::Debug for KeyedRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("quotas", &self.quotas)
            .field("max_keys", &self.max_keys)
            .field("at_capacity", &self.at_capacity)
            .finish_non_exhaustive()
    }
}

impl<K> KeyedRateLimiter<K, DefaultClock>
where
    K: Hash + ?Sized,
{
    /// A keyed limiter over `quotas` on the default clock.
    pub fn new(quotas: impl Into<Quotas>) -> Self {
        Self::with_clock(quotas, DefaultClock::new())
    }
}

impl<K, C> KeyedRateLimiter<K, C>
where
    K: Hash + ?Sized,
    C: Clock,
{
    /// A keyed limiter on the given clock.
    pub fn with_clock(quotas: impl Into<Quotas>, clock: C) -> Self {
        let quotas = quotas.into();
        let table = if quotas.len() == 1 {
            Table::One(CellTable::new())
        } else {
            Table::Many(CellTable::new())
        };
        KeyedRateLimiter {
            quotas,
            table,
            key: std::marker::PhantomData,
            clock,
            max_keys: None,
            at_capacity: AtCapacity::default(),
        }
    }

    /// Caps the number of tracked keys; new keys beyond it get the [`AtCapacity`] policy
    /// ([`with_at_capacity`](Self::with_at_capacity), [`AtCapacity::Reject`] by default).
    /// Under concurrent inserts the cap may be overshot by about one key per thread.
    ///
    /// ```
    /// use tower_ratelimit::{AtCapacity, CheckError, KeyedRateLimiter, Quota};
    /// let limiter = KeyedRateLimiter::<u32>::new(Quota::per_hour(10).unwrap()).with_max_keys(2);
    /// assert!(limiter.check_key(&1).unwrap().is_allowed());
    /// assert!(limiter.check_key(&2).unwrap().is_allowed());
    /// assert_eq!(limiter.check_key(&3).unwrap_err(), CheckError::TooManyKeys { max_keys: 2 });
    ///
    /// let limiter = limiter.with_at_capacity(AtCapacity::AdmitUntracked);
    /// assert!(limiter.check_key(&3).unwrap().is_allowed(), "admitted, not tracked");
    /// assert_eq!(limiter.len(), 2);
    /// ```
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// What new keys get at the cap (see [`AtCapacity`]; no effect without a cap).
    pub fn with_at_capacity(mut self, policy: AtCapacity) -> Self {
        self.at_capacity = policy;
        self
    }

    /// Checks one request of cost 1 for `key`.
    #[inline]
    pub fn check_key(&self, key: &K) -> Result<Decision<'_>, CheckError> {
        self.check_key_n(key, 1)
    }

    /// Checks one request of cost `cost` for `key`.
    #[inline]
    pub fn check_key_n(&self, key: &K, cost: u32) -> Result<Decision<'_>, CheckError> {
        self.quotas.check_cost(cost)?;
        let now = capped_now_ns(&self.clock) >> self.quotas.shift;
        let raw = match &self.table {
            Table::One(map) => self.check_in(map, key, now, cost)?,
            Table::Many(map) => self.check_in(map, key, now, cost)?,
        };
        Ok(decision(&self.quotas, now, raw, cost))
    }

    #[inline]
    fn check_in<V: Cell>(
        &self,
        table: &CellTable<V>,
        key: &K,
        now: u64,
        cost: u32,
    ) -> Result<Raw, CheckError> {
        table.with_cell(
            key,
            |cell| cell.try_reap(&self.quotas, now),
            |live| self.admit_new(live),
            |cell| cell.check(&self.quotas, now, u64::from(cost)),
        )
    }

    /// Runs before a new key is inserted (after its bounded upkeep step).
    fn admit_new(&self, live: usize) -> Result<Admit, CheckError> {
        match self.max_keys {
            Some(max_keys) if live >= max_keys => match self.at_capacity {
                AtCapacity::Reject => Err(CheckError::TooManyKeys { max_keys }),
                AtCapacity::AdmitUntracked => Ok(Admit::Untracked),
            },
            _ => Ok(Admit::Track),
        }
    }

    /// Reclaims every expired key now, in one pass over the table (O(keys); not needed
    /// in normal use, since inserts reclaim as they go, a bounded step at a time).
    pub fn reclaim(&self) {
        let now = capped_now_ns(&self.clock) >> self.quotas.shift;
        match &self.table {
            Table::One(map) => map.reclaim_all(|cell| cell.try_reap(&self.quotas, now)),
            Table::Many(map) => map.reclaim_all(|cell| cell.try_reap(&self.quotas, now)),
        }
    }

    /// Slots allocated by the table (tables, during a resize), each 16 bytes (32 for a
    /// multi-quota set): for memory figures.
    #[doc(hidden)]
    pub fn table_bytes(&self) -> usize {
        match &self.table {
            Table::One(map) => map.slots() * size_of::<(u64, Cell64)>(),
            Table::Many(map) => map.slots() * size_of::<(u64, Cell128)>(),
        }
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        match &self.table {
            Table::One(map) => map.len(),
            Table::Many(map) => map.len(),
        }
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The quota set.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

/// The in-process [`Store`]: one [`KeyedRateLimiter`] per tier.
///
/// ```
/// use tower_ratelimit::{Quota, Quotas, store::{Check, Store, Tier, Tiers, memory::MemoryStore}};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new(Tiers::new(Quotas::claid()).with(Quota::per_second(40)?));
/// let Check::Ready(Ok(outcome)) = store.check(&"free-user", Tier(0), 1) else { unreachable!() };
/// assert!(outcome.is_allowed());
/// let decision = outcome.decision(store.quotas(Tier(0))).expect("the store's own set");
/// assert_eq!(decision.binding().remaining(), 3);
/// # Ok(()) }
/// ```
pub struct MemoryStore<K, C = DefaultClock> {
    tiers: Tiers,
    limiters: Vec<KeyedRateLimiter<K, C>>,
    /// For zero-sized keys (one global key): a direct cell per tier, which skips hashing
    /// and the table on every check.
    direct: Vec<RateLimiter<C>>,
}

impl<K, C> fmt::Debug for MemoryStore<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tiers", &self.tiers)
            .finish_non_exhaustive()
    }
}

impl<K> MemoryStore<K, DefaultClock>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A store for `tiers` (or a single [`Quotas`] set) on the default clock.
    pub fn new(tiers: impl Into<Tiers>) -> Self {
        Self::with_clock(tiers, DefaultClock::new())
    }
}

impl<K, C> MemoryStore<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock + Clone,
{
    /// A store on the given clock (shared by every tier).
    pub fn with_clock(tiers: impl Into<Tiers>, clock: C) -> Self {
        let tiers = tiers.into();
        let (limiters, direct) = if size_of::<K>() == 0 {
            let direct = tiers
                .iter()
                .map(|q| RateLimiter::with_clock(q.clone(), clock.clone()));
            (Vec::new(), direct.collect())
        } else {
            let keyed = tiers
                .iter()
                .map(|q| KeyedRateLimiter::with_clock(q.clone(), clock.clone()));
            (keyed.collect(), Vec::new())
        };
        MemoryStore {
            tiers,
            limiters,
            direct,
        }
    }

    /// Caps the keys tracked per tier (see [`KeyedRateLimiter::with_max_keys`]).
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.limiters = self
            .limiters
            .into_iter()
            .map(|l| l.with_max_keys(max_keys))
            .collect();
        self
    }

    /// What new keys get at the cap, in every tier (see [`AtCapacity`]).
    pub fn with_at_capacity(mut self, policy: AtCapacity) -> Self {
        self.limiters = self
            .limiters
            .into_iter()
            .map(|l| l.with_at_capacity(policy))
            .collect();
        self
    }

    /// The limiter of `tier` (the default tier's if unknown); keyed stores only.
    fn limiter(&self, tier: Tier) -> &KeyedRateLimiter<K, C> {
        self.limiters.get(tier.0).unwrap_or(&self.limiters[0])
    }
}

impl<K, C> Store<K> for MemoryStore<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock + Clone,
{
    type Future = std::future::Ready<Result<Outcome, StoreError>>;

    #[inline]
    fn check(&self, key: &K, tier: Tier, cost: u32) -> Check<Self::Future> {
        // Every value of a zero-sized key is the same key.
        if size_of::<K>() == 0 {
            let direct = self.direct.get(tier.0).unwrap_or(&self.direct[0]);
            return Check::Ready(
                direct
                    .check_n(cost)
                    .map(|d| d.outcome())
                    .map_err(StoreError::from),
            );
        }
        Check::Ready(
            self.limiter(tier)
                .check_key_n(key, cost)
                .map(|d| d.outcome())
                .map_err(StoreError::from),
        )
    }

    fn tiers(&self) -> &Tiers {
        &self.tiers
    }
}
