//! The in-process store: lock-free, allocation-free on the check path.

use std::fmt;
use std::hash::{Hash, RandomState};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::clock::{Clock, DefaultClock, capped_now_ns};
use crate::decision::{Decision, Outcome};
use crate::error::{CheckError, ReloadError, StoreError};
use crate::gcra::carry_over;
use crate::quota::Quotas;
use crate::state::{Cell, Cell64, Cell128, Raw};
use crate::store::generations::Generations;
use crate::store::table::{Admit, CellTable, Retired};
use crate::store::{Check, Store, Tier, Tiers};

/// Why a check in one configuration generation gave no decision.
enum Miss {
    Check(CheckError),
    /// The generation was replaced under the check: start again in the current one.
    Retired,
}

impl From<Retired> for Miss {
    fn from(_: Retired) -> Self {
        Miss::Retired
    }
}

impl From<CheckError> for Miss {
    fn from(e: CheckError) -> Self {
        Miss::Check(e)
    }
}

/// A state carried from generation `old` to `new` at `at_ns`, as `new`'s cell word.
/// `None` for an empty (never used, or tombstoned) state.
fn carried<Vo: Cell, Vn: Cell>(
    old: &Quotas,
    word: Vo::Word,
    new: &Quotas,
    at_ns: u64,
) -> Option<Vn::Word> {
    let tats = Vo::decode(old, word);
    if tats[..old.len()].iter().all(|&t| t == 0) {
        return None;
    }
    let next = carry_over(old, &tats, new, at_ns);
    Some(Vn::encode(new, &next, at_ns >> new.shift))
}

/// How long a state must have been empty before a sweep (run by new keys) reaps it.
/// A reading that steps back by less than this finds every state exactly as a table
/// that never reaps would: only a state empty at the earlier reading too is gone.
const REAP_GRACE_NS: u64 = 1_000_000_000;

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

    /// Freezes the cell for good and returns its state carried over to `new`.
    fn hand_over(&self, old: &Quotas, new: &Quotas, at_ns: u64) -> DirectCell {
        let next = DirectCell::for_set(new);
        match (self, &next) {
            (Self::One(a), Self::One(b)) => adopt_carried::<_, _>(a, old, b, new, at_ns),
            (Self::One(a), Self::Many(b)) => adopt_carried::<_, _>(a, old, b, new, at_ns),
            (Self::Many(a), Self::One(b)) => adopt_carried::<_, _>(a, old, b, new, at_ns),
            (Self::Many(a), Self::Many(b)) => adopt_carried::<_, _>(a, old, b, new, at_ns),
        }
        next
    }
}

fn adopt_carried<Vo: Cell, Vn: Cell>(from: &Vo, old: &Quotas, to: &Vn, new: &Quotas, at_ns: u64) {
    if let Some(word) = from
        .freeze()
        .and_then(|w| carried::<Vo, Vn>(old, w, new, at_ns))
    {
        to.adopt(word);
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
        match self.try_check_n(cost) {
            Ok(d) => Ok(d),
            Err(Miss::Check(e)) => Err(e),
            // Only a store's replaced generation is ever frozen.
            Err(Miss::Retired) => unreachable!("a stand-alone limiter is never retired"),
        }
    }

    #[inline]
    fn try_check_n(&self, cost: u32) -> Result<Decision<'_>, Miss> {
        self.quotas.check_cost(cost)?;
        let now = now_units(&self.clock, &self.quotas);
        let raw = match &self.cell {
            DirectCell::One(c) => c.check(&self.quotas, now, u64::from(cost)),
            DirectCell::Many(c) => c.check(&self.quotas, now, u64::from(cost)),
        };
        // A direct cell is never reaped: `None` means it was frozen by a reload.
        let raw = raw.ok_or(Miss::Retired)?;
        Ok(decision(&self.quotas, now, raw, cost))
    }

    /// The limiter of the next generation: this one's state carried over to `quotas` at
    /// `at_ns`, this one frozen.
    fn hand_over(&self, quotas: Quotas, at_ns: u64) -> Self
    where
        C: Clone,
    {
        RateLimiter {
            cell: self.cell.hand_over(&self.quotas, &quotas, at_ns),
            quotas,
            clock: self.clock.clone(),
        }
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
    /// `tower_ratelimit_tracked_keys{plan}` (feature `metrics`), set when keys are added
    /// or swept; only a store's limiters have one.
    #[cfg(feature = "metrics")]
    gauge: Option<metrics::Gauge>,
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
        Self::build(quotas.into(), clock, RandomState::new())
    }

    fn build(quotas: Quotas, clock: C, hasher: RandomState) -> Self {
        let table = if quotas.len() == 1 {
            Table::One(CellTable::with_hasher(hasher))
        } else {
            Table::Many(CellTable::with_hasher(hasher))
        };
        KeyedRateLimiter {
            quotas,
            table,
            key: std::marker::PhantomData,
            clock,
            max_keys: None,
            at_capacity: AtCapacity::default(),
            #[cfg(feature = "metrics")]
            gauge: None,
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
        match self.try_check(key, cost, None) {
            Ok(d) => Ok(d),
            Err(Miss::Check(e)) => Err(e),
            // Only a store's replaced generation is ever retired.
            Err(Miss::Retired) => unreachable!("a stand-alone limiter is never retired"),
        }
    }

    /// A check; while `from` (the previous generation and the switch instant) is given,
    /// the key's state is first carried over from it.
    #[inline]
    fn try_check(
        &self,
        key: &K,
        cost: u32,
        from: Option<(&Self, u64)>,
    ) -> Result<Decision<'_>, Miss> {
        self.quotas.check_cost(cost)?;
        let now = capped_now_ns(&self.clock) >> self.quotas.shift;
        let raw = match &self.table {
            Table::One(map) => self.check_in(map, key, now, cost, from)?,
            Table::Many(map) => self.check_in(map, key, now, cost, from)?,
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
        from: Option<(&Self, u64)>,
    ) -> Result<Raw, Miss> {
        let fp = table.fingerprint(key);
        // Every request of the new generation carries the key's old state itself before
        // touching the new cell (adopting is idempotent), so none can see it empty.
        let carried = from.and_then(|(prev, at_ns)| match &prev.table {
            Table::One(old) => old
                .take(fp)
                .and_then(|w| carried::<Cell64, V>(&prev.quotas, w, &self.quotas, at_ns)),
            Table::Many(old) => old
                .take(fp)
                .and_then(|w| carried::<Cell128, V>(&prev.quotas, w, &self.quotas, at_ns)),
        });
        // Sweeps reap only states that were already empty a second ago: a clock that
        // steps back by less than that then still finds every state it could need.
        let reap_at = now.saturating_sub(REAP_GRACE_NS >> self.quotas.shift);
        table.with_fp(
            fp,
            |cell| cell.try_reap(&self.quotas, reap_at),
            |live| self.admit_new(live).map_err(Miss::Check),
            |cell| {
                if let Some(word) = carried
                    && !cell.adopt(word)
                {
                    return None;
                }
                cell.check(&self.quotas, now, u64::from(cost))
            },
        )
    }

    /// The limiter of the next generation: same hasher (states move by fingerprint),
    /// clock and key cap, new quotas, empty until [`drain_into`](Self::drain_into).
    fn successor(&self, quotas: Quotas) -> Self
    where
        C: Clone,
    {
        let hasher = match &self.table {
            Table::One(t) => t.hasher().clone(),
            Table::Many(t) => t.hasher().clone(),
        };
        let mut next = Self::build(quotas, self.clock.clone(), hasher);
        next.max_keys = self.max_keys;
        next.at_capacity = self.at_capacity;
        #[cfg(feature = "metrics")]
        {
            next.gauge = self.gauge.clone();
        }
        next
    }

    fn retire(&self) {
        match &self.table {
            Table::One(t) => t.retire(),
            Table::Many(t) => t.retire(),
        }
    }

    /// Freezes every key of this (retired) limiter and carries its state into `next`.
    fn drain_into(&self, next: &Self, at_ns: u64) {
        fn put<V: Cell, W: Cell>(
            old: &CellTable<V>,
            old_q: &Quotas,
            new: &CellTable<W>,
            new_q: &Quotas,
            at_ns: u64,
        ) {
            old.drain(|fp, word| {
                if let Some(w) = carried::<V, W>(old_q, word, new_q, at_ns) {
                    // The key cap does not apply: these keys were already tracked.
                    let _ = new.with_fp(
                        fp,
                        |_| false,
                        |_| Ok::<Admit, Miss>(Admit::Track),
                        |cell| cell.adopt(w).then_some(()),
                    );
                }
            });
        }
        let (oq, nq) = (&self.quotas, &next.quotas);
        match (&self.table, &next.table) {
            (Table::One(a), Table::One(b)) => put(a, oq, b, nq, at_ns),
            (Table::One(a), Table::Many(b)) => put(a, oq, b, nq, at_ns),
            (Table::Many(a), Table::One(b)) => put(a, oq, b, nq, at_ns),
            (Table::Many(a), Table::Many(b)) => put(a, oq, b, nq, at_ns),
        }
    }

    /// Runs before a new key is inserted (after its bounded upkeep step).
    fn admit_new(&self, live: usize) -> Result<Admit, CheckError> {
        #[cfg(feature = "metrics")]
        if let Some(g) = &self.gauge {
            g.set(live as f64 + 1.0);
        }
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
        #[cfg(feature = "metrics")]
        if let Some(g) = &self.gauge {
            g.set(self.len() as f64);
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

/// A store's limiter for `plan`: with the `metrics` feature, it reports its key count as
/// `tower_ratelimit_tracked_keys{plan}`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
fn tracked<K: ?Sized, C>(plan: &str, limiter: KeyedRateLimiter<K, C>) -> KeyedRateLimiter<K, C> {
    #[cfg(feature = "metrics")]
    {
        let mut limiter = limiter;
        limiter.gauge = Some(metrics::gauge!(TRACKED_KEYS, "plan" => plan.to_owned()));
        limiter
    }
    #[cfg(not(feature = "metrics"))]
    limiter
}

/// Gauge of the keys a memory store tracks, per plan (feature `metrics`).
#[cfg(feature = "metrics")]
const TRACKED_KEYS: &str = "tower_ratelimit_tracked_keys";

/// The in-process [`Store`]: one [`KeyedRateLimiter`] per tier, reconfigurable while
/// requests flow ([`reload`](Self::reload)).
///
/// ```
/// use tower_ratelimit::{Quota, Quotas, store::{Check, Store, Tier, Tiers, memory::MemoryStore}};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new(Tiers::new(Quotas::claid()).plan("pro", Quota::per_second(40)?));
/// let Check::Ready(Ok(outcome)) = store.check(&"free-user", Tier(0), 1) else { unreachable!() };
/// assert!(outcome.is_allowed());
/// let decision = outcome.decision(store.quotas(Tier(0))).expect("the store's own set");
/// assert_eq!(decision.binding().remaining(), 3);
/// # Ok(()) }
/// ```
///
/// # Live reconfiguration
///
/// [`reload`](Self::reload) replaces the quota sets without losing any key's standing:
///
/// ```
/// use tower_ratelimit::{Quotas, store::{Check, Store, Tier, Tiers, memory::MemoryStore}};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::<&str>::new("2/s".parse::<Quotas>()?);
/// let admitted = |store: &MemoryStore<&'static str>| {
///     (0..10)
///         .filter(|_| matches!(store.check(&"k", Tier(0), 1), Check::Ready(Ok(o)) if o.is_allowed()))
///         .count()
/// };
/// assert_eq!(admitted(&store), 2);
/// // Exhausted under 2/s (a level of 1 s): exhausted under 5/s too, for that 1 s.
/// store.reload(Tiers::new("5/s".parse::<Quotas>()?))?;
/// assert_eq!(admitted(&store), 0);
/// assert_eq!(store.tiers().default_set().to_string(), "5/s");
/// # Ok(()) }
/// ```
pub struct MemoryStore<K, C = DefaultClock> {
    /// Every configuration so far (decisions are re-attached to theirs).
    gens: Generations<Tiers>,
    live: ArcSwap<Live<K, C>>,
    /// Serialises reloads.
    reloading: Mutex<()>,
    clock: C,
    max_keys: Option<usize>,
    at_capacity: AtCapacity,
}

/// The limiters of one configuration generation.
struct Live<K, C> {
    generation: u32,
    limiters: Arc<[KeyedRateLimiter<K, C>]>,
    /// For zero-sized keys (one global key): a direct cell per tier, which skips hashing
    /// and the table on every check.
    direct: Arc<[RateLimiter<C>]>,
    /// While the previous generation's keys are being carried over: it, and the
    /// switch instant.
    prev: Option<(Arc<Live<K, C>>, u64)>,
}

impl<K, C> fmt::Debug for MemoryStore<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tiers", self.gens.current().1)
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
        let (limiters, direct): (Vec<_>, Vec<_>) = if size_of::<K>() == 0 {
            let direct = tiers
                .iter()
                .map(|q| RateLimiter::with_clock(q.clone(), clock.clone()));
            (Vec::new(), direct.collect())
        } else {
            let keyed = tiers.plans().map(|(_, plan, q)| {
                tracked(plan, KeyedRateLimiter::with_clock(q.clone(), clock.clone()))
            });
            (keyed.collect(), Vec::new())
        };
        MemoryStore {
            gens: Generations::new(tiers),
            live: ArcSwap::from_pointee(Live {
                generation: 0,
                limiters: limiters.into(),
                direct: direct.into(),
                prev: None,
            }),
            reloading: Mutex::new(()),
            clock,
            max_keys: None,
            at_capacity: AtCapacity::default(),
        }
    }

    /// Caps the keys tracked per tier (see [`KeyedRateLimiter::with_max_keys`]); reloads
    /// keep the cap. Set before use: the tiers start afresh.
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self.restart()
    }

    /// What new keys get at the cap, in every tier (see [`AtCapacity`]); reloads keep it.
    /// Set before use: the tiers start afresh.
    pub fn with_at_capacity(mut self, policy: AtCapacity) -> Self {
        self.at_capacity = policy;
        self.restart()
    }

    /// A fresh limiter for `plan` with the store's key cap and capacity policy.
    fn fresh(&self, plan: &str, quotas: &Quotas) -> KeyedRateLimiter<K, C> {
        let mut l = KeyedRateLimiter::with_clock(quotas.clone(), self.clock.clone())
            .with_at_capacity(self.at_capacity);
        l.max_keys = self.max_keys;
        tracked(plan, l)
    }

    /// Rebuilds the current generation's keyed limiters empty (builder-time settings).
    fn restart(self) -> Self {
        let (_, tiers) = self.gens.current();
        let limiters: Vec<_> = if size_of::<K>() == 0 {
            Vec::new()
        } else {
            tiers
                .plans()
                .map(|(_, plan, q)| self.fresh(plan, q))
                .collect()
        };
        let live = self.live.load_full();
        self.live.store(Arc::new(Live {
            generation: live.generation,
            limiters: limiters.into(),
            direct: live.direct.clone(),
            prev: None,
        }));
        self
    }

    /// Replaces the quota sets while requests flow, keeping every key's standing.
    ///
    /// * **Plans** keep their handles: every plan of the current configuration must be
    ///   in `tiers` (else [`ReloadError::PlanRemoved`]); new plans get the next indices.
    /// * **State**: each key's standing carries over quota by quota, as a time. A new quota
    ///   takes the level `TAT - now` (how long until it is fully restored) of the old quota
    ///   with the same name, or the largest old level if none has its name, clamped to
    ///   the new capacity `burst * T`. So at the switch no key gets more than the new
    ///   burst, none waits longer than it would have before, and none longer than the new
    ///   quota's own tolerance; an idle key starts full; unchanged quotas are untouched.
    /// * **Atomicity**: each key's decisions are all made under the old sets, then all
    ///   under the new ones. A key's state is taken over from the old table the first
    ///   time it is touched after the switch (the old cell is frozen first, so a request
    ///   still running on the old generation starts again on the new one), and this call
    ///   carries over the rest before it returns (O(keys), on the caller's thread; no
    ///   request waits for it).
    /// * Each decision records the generation it was made under
    ///   ([`Outcome::generation`]); [`Store::tiers_of`] gives that generation's sets, so
    ///   headers always describe the set that decided.
    ///
    /// A store takes at most [`MAX_GENERATIONS`](crate::store::MAX_GENERATIONS)
    /// configurations in its life.
    pub fn reload(&self, tiers: impl Into<Tiers>) -> Result<(), ReloadError> {
        let _serial = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, current) = self.gens.current();
        let tiers = current.successor(tiers.into())?;
        let old = self.live.load_full();
        let generation = self
            .gens
            .push(tiers.clone())
            .map_err(|_| ReloadError::TooManyReloads)?;
        let at_ns = capped_now_ns(&self.clock);
        let limiters: Vec<_> = if size_of::<K>() == 0 {
            Vec::new()
        } else {
            tiers
                .plans()
                .map(|(Tier(i), plan, q)| match old.limiters.get(i) {
                    Some(prev) => prev.successor(q.clone()),
                    None => self.fresh(plan, q),
                })
                .collect()
        };
        for prev in old.limiters.iter() {
            prev.retire();
        }
        // Direct cells are one word each: handed over before the switch (a request on
        // the old cell meanwhile starts again, and finds the new one once published).
        let direct: Vec<_> = tiers
            .iter()
            .enumerate()
            .filter(|_| size_of::<K>() == 0)
            .map(|(i, q)| match old.direct.get(i) {
                Some(prev) => prev.hand_over(q.clone(), at_ns),
                None => RateLimiter::with_clock(q.clone(), self.clock.clone()),
            })
            .collect();
        let limiters: Arc<[_]> = limiters.into();
        let direct: Arc<[_]> = direct.into();
        self.live.store(Arc::new(Live {
            generation,
            limiters: limiters.clone(),
            direct: direct.clone(),
            prev: Some((old.clone(), at_ns)),
        }));
        self.gens.publish(generation);
        for (prev, next) in old.limiters.iter().zip(limiters.iter()) {
            prev.drain_into(next, at_ns);
        }
        // Everything is carried: requests stop looking at the old generation.
        self.live.store(Arc::new(Live {
            generation,
            limiters,
            direct,
            prev: None,
        }));
        Ok(())
    }

    /// The configuration generation in force (0 until the first reload).
    pub fn generation(&self) -> u32 {
        self.live.load().generation
    }

    /// Keys tracked now, over every tier.
    pub fn len(&self) -> usize {
        self.live.load().limiters.iter().map(|l| l.len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn check_once(
        &self,
        live: &Live<K, C>,
        key: &K,
        tier: Tier,
        cost: u32,
    ) -> Result<Outcome, Miss> {
        let g = live.generation;
        // Every value of a zero-sized key is the same key.
        if size_of::<K>() == 0 {
            let Some(direct) = live.direct.get(tier.0) else {
                return Err(Miss::Check(CheckError::UnknownTier {
                    tier: tier.0,
                    tiers: live.direct.len(),
                }));
            };
            return direct
                .try_check_n(cost)
                .map(|d| d.outcome().in_generation(g));
        }
        let Some(limiter) = live.limiters.get(tier.0) else {
            return Err(Miss::Check(CheckError::UnknownTier {
                tier: tier.0,
                tiers: live.limiters.len(),
            }));
        };
        let from = live
            .prev
            .as_ref()
            .and_then(|(prev, at)| prev.limiters.get(tier.0).map(|l| (l, *at)));
        limiter
            .try_check(key, cost, from)
            .map(|d| d.outcome().in_generation(g))
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
        loop {
            let live = self.live.load();
            match self.check_once(&live, key, tier, cost) {
                Ok(outcome) => return Check::Ready(Ok(outcome)),
                Err(Miss::Check(e)) => return Check::Ready(Err(e.into())),
                // Replaced under us: the new generation is (about to be) published.
                Err(Miss::Retired) => std::thread::yield_now(),
            }
        }
    }

    fn tiers(&self) -> &Tiers {
        self.gens.current().1
    }

    fn tiers_of(&self, generation: u32) -> &Tiers {
        self.gens.get(generation).unwrap_or_else(|| self.tiers())
    }

    fn reload(&self, tiers: Tiers) -> Result<(), ReloadError> {
        MemoryStore::reload(self, tiers)
    }
}
