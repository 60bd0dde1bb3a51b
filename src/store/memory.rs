//! The in-process store: lock-free, allocation-free on the check path.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::clock::{Clock, DefaultClock, capped_now_ns};
use crate::decision::{Decision, Outcome};
use crate::error::{CheckError, StoreError};
use crate::quota::Quotas;
use crate::state::{Cell, Cell64, Cell128, Raw};
use crate::store::table::CellTable;
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
    /// default monotonic clock.
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

/// One state per client key (IP, API key, any `Hash` key, unsized ones like `str`
/// included) over a lock-free table that stores a 64-bit keyed fingerprint of each key
/// inline beside its state (see the note on collisions below).
///
/// Memory stays bounded without a cleanup thread: a key whose state has become
/// equivalent to "never seen" (every quota fully restored) is reclaimed by sweeps that
/// run as part of inserting new keys, amortised to O(1) per insert. An optional cap
/// ([`KeyedRateLimiter::with_max_keys`]) bounds the number of tracked keys under a flood
/// of distinct keys: at the cap, expired keys are swept (at most once per sweep
/// interval), and if none can be freed the new key gets [`CheckError::TooManyKeys`]
/// rather than evicting a live key, which would reset that client's limit.
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
    inserts_since_sweep: AtomicUsize,
    sweeping: AtomicBool,
    last_sweep_ns: AtomicU64,
    sweep_interval_ns: u64,
}

impl<K: ?Sized, C> fmt::Debug for KeyedRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("quotas", &self.quotas)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

/// Sweeps triggered by growth wait for at least this many inserts.
const MIN_SWEEP_INSERTS: usize = 4096;

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
        // A key inserted now is usually reclaimable one emission interval later; at the
        // cap, sweeping more often than that frees nothing and costs O(keys).
        let longest_t = quotas
            .iter()
            .map(|q| q.t_ns())
            .max()
            .unwrap_or(1_000_000_000);
        KeyedRateLimiter {
            quotas,
            table,
            key: std::marker::PhantomData,
            clock,
            max_keys: None,
            inserts_since_sweep: AtomicUsize::new(0),
            sweeping: AtomicBool::new(false),
            last_sweep_ns: AtomicU64::new(0),
            sweep_interval_ns: longest_t.clamp(1_000_000, 1_000_000_000),
        }
    }

    /// Caps the number of tracked keys (see the type's docs for what happens at the cap).
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
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
        let now_ns = capped_now_ns(&self.clock);
        let now = now_ns >> self.quotas.shift;
        let raw = match &self.table {
            Table::One(map) => self.check_in(map, key, now_ns, now, cost)?,
            Table::Many(map) => self.check_in(map, key, now_ns, now, cost)?,
        };
        Ok(decision(&self.quotas, now, raw, cost))
    }

    #[inline]
    fn check_in<V: Cell>(
        &self,
        table: &CellTable<V>,
        key: &K,
        now_ns: u64,
        now: u64,
        cost: u32,
    ) -> Result<Raw, CheckError> {
        table.with_cell(
            key,
            |live| self.make_room(table, live, now_ns, now),
            |cell| cell.check(&self.quotas, now, u64::from(cost)),
        )
    }

    /// Runs before a new key is inserted: keeps the table bounded.
    fn make_room<V: Cell>(
        &self,
        table: &CellTable<V>,
        live: usize,
        now_ns: u64,
        now: u64,
    ) -> Result<(), CheckError> {
        let inserts = self.inserts_since_sweep.fetch_add(1, Relaxed) + 1;
        if inserts >= (live / 2).max(MIN_SWEEP_INSERTS) {
            self.sweep(table, now_ns, now);
        }
        if let Some(max_keys) = self.max_keys
            && live >= max_keys
        {
            let last = self.last_sweep_ns.load(Relaxed);
            if now_ns >= last.saturating_add(self.sweep_interval_ns) {
                self.sweep(table, now_ns, now);
            }
            if table.len() >= max_keys {
                return Err(CheckError::TooManyKeys { max_keys });
            }
        }
        Ok(())
    }

    /// Tombstones every key whose state equals "never seen". One sweeper at a time;
    /// others skip rather than wait.
    fn sweep<V: Cell>(&self, table: &CellTable<V>, now_ns: u64, now: u64) {
        if self.sweeping.swap(true, Relaxed) {
            return;
        }
        self.inserts_since_sweep.store(0, Relaxed);
        self.last_sweep_ns.store(now_ns, Relaxed);
        table.sweep(|cell| cell.try_reap(&self.quotas, now));
        self.sweeping.store(false, Relaxed);
    }

    /// Reclaims every expired key now (normally not needed: inserts do it as they go).
    pub fn reclaim(&self) {
        let now_ns = capped_now_ns(&self.clock);
        let now = now_ns >> self.quotas.shift;
        match &self.table {
            Table::One(map) => self.sweep(map, now_ns, now),
            Table::Many(map) => self.sweep(map, now_ns, now),
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
/// assert_eq!(outcome.decision(store.quotas(Tier(0))).binding().remaining(), 3);
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

    fn unknown(&self, tier: Tier) -> StoreError {
        StoreError::Check(CheckError::UnknownTier {
            tier: tier.0,
            tiers: self.tiers.len(),
        })
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
            let Some(direct) = self.direct.get(tier.0) else {
                return Check::Ready(Err(self.unknown(tier)));
            };
            return Check::Ready(
                direct
                    .check_n(cost)
                    .map(|d| d.outcome())
                    .map_err(StoreError::from),
            );
        }
        let Some(limiter) = self.limiters.get(tier.0) else {
            return Check::Ready(Err(self.unknown(tier)));
        };
        Check::Ready(
            limiter
                .check_key_n(key, cost)
                .map(|d| d.outcome())
                .map_err(StoreError::from),
        )
    }

    fn tiers(&self) -> &Tiers {
        &self.tiers
    }
}
