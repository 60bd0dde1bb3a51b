//! The pacer: per-key reservations over a quota set, shared by every clone of a layer.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use super::PaceError;
use super::clock::TokioClock;
use super::hints::RateLimitHints;
use super::mode::{PacingMode, default_margin};
use super::window::{Booked, Limit, Log, Rule};
use crate::CheckError;
use crate::clock::{Clock, MAX_NOW_NS, capped_now_ns};
use crate::quota::{MAX_QUOTAS, Quotas};
use crate::state::reserve::{Booking, NotBooked};
use crate::state::{Cell, Cell128};

/// One key's pacing state: its GCRA cell and any hold the server asked for (units).
#[derive(Debug, Default)]
struct Entry {
    cell: Cell128,
    hold_until: AtomicU64,
}

// A client talks to few hosts or API keys: a read-mostly lock around a std map is simple
// and cheap here; the decisions themselves are lock-free CASes on the cells.
type Map<K> = RwLock<HashMap<K, Arc<Entry>>>;
// The log modes' sliding logs: a short critical section per booking.
type LogMap<K> = RwLock<HashMap<K, Arc<Mutex<LogEntry>>>>;

/// Keys tracked before inserts start sweeping expired ones.
const SWEEP_FLOOR: usize = 1024;

/// Books slots in the future for outgoing requests: one state per key (host, API key);
/// a request that may not go now is given the earliest instant it may, instead of a
/// denial. How slots are booked is the [`PacingMode`]: by default safe against every
/// server algorithm ([`PacingMode::Safe`]: at most `n` requests in any interval of
/// `w + margin` per quota, and admitted by sliding-window counters of any alignment),
/// or window-safe only, evenly spaced, or GCRA.
///
/// Callers are served in booking order (FIFO) and each wakes exactly when its slot
/// comes, so nobody is woken just to be refused (no thundering herd). Dropping a
/// [`Reservation`] before its time gives the slot back when that is safe (see
/// [`Reservation`]).
///
/// The booking is the instant the request is sent, which is what the server counts
/// (plus the network delay, whose variation the margin absorbs).
///
/// Memory per key: in the log modes, 16 bytes per distinct send instant still inside
/// the longest window (at most its `n`, fewer when requests go in bursts; in `Safe`
/// mode twice the longest window, at most about `2n`) plus one per request waiting for
/// its slot; a quota above 4096 per window is paced as `n/k` per `w/k`
/// (`k = ceil(n / 4096)`), which keeps the bound and the long-run rate with at most 4096
/// entries (measured, `memory_per_key` in `client/window.rs`: Claid's quotas at full
/// rate 696 bytes a key in `Window` mode, 4.3 KB in `Safe` mode; one request per 500 ms
/// 2.2 KB / 4.3 KB; 10 000 a day spread over the day 64 KB in both). In GCRA mode, one
/// 16-byte word. A key is forgotten once nothing it sent can bind any more (the longest
/// window plus margin has passed; in `Safe` mode twice the window plus margin), when
/// the table has grown past 1024 keys.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tower_ratelimit::{Quotas, client::{Pacer, PacingMode}};
/// // Window-safe only: Claid's 4/s as 4 per 1.02 s (2% margin).
/// let pacer = Pacer::with_mode(Quotas::claid(), PacingMode::Window);
/// let slots: Vec<_> = (0..6).map(|_| pacer.reserve(&"api-key", 1, None).unwrap()).collect();
/// assert_eq!(slots[3].wait(), Duration::ZERO);
/// assert_eq!(slots[4].wait(), Duration::from_millis(1020));
/// // Dropping the newest booking gives its slot back to the next caller.
/// let mut slots = slots;
/// drop(slots.pop());
/// assert_eq!(pacer.reserve(&"api-key", 1, None).unwrap().wait(), Duration::from_millis(1020));
/// for slot in slots {
///     slot.commit(); // sent: the slot is used
/// }
/// // The default, safe against every server: 4 at once, then spread as a
/// // sliding-window counter of any alignment admits (the next just past 1.02 s).
/// let safe = Pacer::new(Quotas::claid());
/// assert_eq!(safe.mode(), PacingMode::Safe);
/// let slots: Vec<_> = (0..6).map(|_| safe.reserve(&"api-key", 1, None).unwrap()).collect();
/// assert_eq!(slots[3].wait(), Duration::ZERO);
/// assert_eq!(slots[4].wait(), Duration::from_nanos(1_020_000_001));
/// assert_eq!(slots[5].wait(), Duration::from_nanos(1_270_000_001));
/// // GCRA, for servers known to count that way: a burst of 4, then one every 250 ms.
/// let gcra = Pacer::builder(Quotas::claid()).mode(PacingMode::Gcra).build();
/// let slots: Vec<_> = (0..6).map(|_| gcra.reserve(&"api-key", 1, None).unwrap()).collect();
/// assert_eq!(slots[5].wait(), Duration::from_millis(500));
/// # }
/// ```
pub struct Pacer<K, C = TokioClock> {
    quotas: Quotas,
    mode: PacingMode,
    margin: Option<Duration>,
    limits: Vec<Limit>,
    map: Map<K>,
    logs: LogMap<K>,
    clock: C,
    inserts: AtomicUsize,
}

/// Builds a [`Pacer`]: mode, margin and clock.
///
/// ```
/// use std::time::Duration;
/// use tower_ratelimit::{Quotas, client::{Pacer, PacingMode}};
/// let pacer = Pacer::builder(Quotas::clarifai())
///     .mode(PacingMode::Even)
///     .margin(Duration::from_millis(5))
///     .build::<String>();
/// assert_eq!(pacer.mode(), PacingMode::Even);
/// ```
#[derive(Debug, Clone)]
pub struct PacerBuilder<C = TokioClock> {
    quotas: Quotas,
    mode: PacingMode,
    margin: Option<Duration>,
    clock: C,
}

impl<C: Clock> PacerBuilder<C> {
    /// How slots are booked (default [`PacingMode::Safe`]).
    pub fn mode(mut self, mode: PacingMode) -> Self {
        self.mode = mode;
        self
    }

    /// The jitter margin added to every quota window in the log modes (default
    /// [`default_margin`](super::default_margin) of each window: 2%, at most 50 ms).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// Decides on `clock` instead of tokio's. The pacer sleeps with tokio timers, so a
    /// clock that runs at tokio's pace keeps waits exact.
    pub fn clock<C2: Clock>(self, clock: C2) -> PacerBuilder<C2> {
        PacerBuilder {
            quotas: self.quotas,
            mode: self.mode,
            margin: self.margin,
            clock,
        }
    }
}

impl<C: Clock> PacerBuilder<C> {
    /// The pacer, shared by every clone of a layer.
    pub fn build<K>(self) -> Arc<Pacer<K, C>>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
    {
        let clock = self.clock;
        Arc::new(Pacer {
            limits: limits_for(&self.quotas, self.margin),
            quotas: self.quotas,
            mode: self.mode,
            margin: self.margin,
            map: RwLock::new(HashMap::new()),
            logs: RwLock::new(HashMap::new()),
            clock,
            inserts: AtomicUsize::new(0),
        })
    }
}

/// The window-mode limits of `quotas`: `n` per window plus the margin.
fn limits_for(quotas: &Quotas, margin: Option<Duration>) -> Vec<Limit> {
    quotas
        .iter()
        .map(|q| {
            let m = margin.unwrap_or_else(|| default_margin(q.window()));
            let window_ns = u64::try_from(q.window().as_nanos()).unwrap_or(u64::MAX);
            let margin_ns = u64::try_from(m.as_nanos()).unwrap_or(u64::MAX);
            Limit::new(q.limit(), window_ns, margin_ns)
        })
        .collect()
}

impl<K, C> fmt::Debug for Pacer<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

impl<K> Pacer<K, TokioClock>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A pacer over `quotas` in the default mode ([`PacingMode::Safe`]) on tokio's
    /// clock, with the default margin.
    pub fn new(quotas: impl Into<Quotas>) -> Arc<Self> {
        Pacer::builder(quotas).build()
    }

    /// A pacer over `quotas` in `mode`, on tokio's clock, with the default margin.
    pub fn with_mode(quotas: impl Into<Quotas>, mode: PacingMode) -> Arc<Self> {
        Pacer::builder(quotas).mode(mode).build()
    }
}

// Not generic in the key, so `Pacer::builder(..)` needs no annotation: the key type is
// chosen by `build`.
impl Pacer<(), TokioClock> {
    /// Starts a [`PacerBuilder`] (default mode, default margin, tokio's clock).
    pub fn builder(quotas: impl Into<Quotas>) -> PacerBuilder<TokioClock> {
        PacerBuilder {
            quotas: quotas.into(),
            mode: PacingMode::default(),
            margin: None,
            clock: TokioClock::new(),
        }
    }
}

impl<K, C> Pacer<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// A pacer in the default mode on the given clock (see [`PacerBuilder::clock`]).
    pub fn with_clock(quotas: impl Into<Quotas>, clock: C) -> Arc<Self> {
        PacerBuilder {
            quotas: quotas.into(),
            mode: PacingMode::default(),
            margin: None,
            clock,
        }
        .build()
    }

    /// The quota set.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// How slots are booked.
    pub fn mode(&self) -> PacingMode {
        self.mode
    }

    /// The sliding log's rule for the mode (not called in GCRA mode).
    fn rule(&self) -> Rule {
        match self.mode {
            PacingMode::Window => Rule::Window,
            PacingMode::Even => Rule::Even,
            PacingMode::Safe | PacingMode::Gcra => Rule::Safe,
        }
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        let gcra = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let logs = self
            .logs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        gcra + logs
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ns(&self) -> u64 {
        capped_now_ns(&self.clock)
    }

    fn entry(&self, key: &K, now: u64) -> Arc<Entry> {
        if let Some(e) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Arc::clone(e);
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let len = map.len();
        if len >= SWEEP_FLOOR && self.inserts.fetch_add(1, Relaxed) >= len / 2 {
            self.inserts.store(0, Relaxed);
            // Under the write lock nobody can look an entry up meanwhile; a holder of an
            // older `Arc` finds the tombstone and comes back for a fresh entry.
            map.retain(|_, e| {
                e.hold_until.load(Relaxed) > now || !e.cell.try_reap(&self.quotas, now)
            });
        }
        Arc::clone(map.entry(key.clone()).or_default())
    }

    /// Drops `key`'s entry if its cell is a tombstone.
    fn forget_dead(&self, key: &K) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|e| e.cell.is_dead()) {
            map.remove(key);
        }
    }

    /// The sliding log of `key` (log modes), created on first use; idle logs are
    /// swept once the table has grown past [`SWEEP_FLOOR`].
    fn log(&self, key: &K, now_ns: u64) -> Arc<Mutex<LogEntry>> {
        if let Some(e) = self
            .logs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Arc::clone(e);
        }
        let mut logs = self.logs.write().unwrap_or_else(PoisonError::into_inner);
        let len = logs.len();
        if len >= SWEEP_FLOOR && self.inserts.fetch_add(1, Relaxed) >= len / 2 {
            self.inserts.store(0, Relaxed);
            logs.retain(|_, e| {
                let mut e = e.lock().unwrap_or_else(PoisonError::into_inner);
                // A tombstone: a holder of an older `Arc` books nothing into it.
                e.dead = e.log.is_idle(now_ns);
                !e.dead
            });
        }
        Arc::clone(logs.entry(key.clone()).or_insert_with(|| {
            Arc::new(Mutex::new(LogEntry {
                log: Log::new(self.limits.clone(), self.rule()),
                dead: false,
            }))
        }))
    }

    /// Drops `key`'s log if it is a tombstone.
    fn forget_dead_log(&self, key: &K) {
        let mut logs = self.logs.write().unwrap_or_else(PoisonError::into_inner);
        if logs.get(key).is_some_and(|e| lock(e).dead) {
            logs.remove(key);
        }
    }

    /// Runs `f` on `key`'s live log.
    fn with_log<R>(&self, key: &K, now_ns: u64, mut f: impl FnMut(&mut Log) -> R) -> R {
        loop {
            let entry = self.log(key, now_ns);
            let mut e = lock(&entry);
            if !e.dead {
                return f(&mut e.log);
            }
            drop(e);
            self.forget_dead_log(key);
        }
    }

    /// Books a slot of `cost` for `key`: the returned [`Reservation`] says how long to
    /// wait before sending. With `max_wait`, a slot further away than that is not booked
    /// and [`PaceError::WouldWait`] is returned instead.
    pub fn reserve(
        self: &Arc<Self>,
        key: &K,
        cost: u32,
        max_wait: Option<Duration>,
    ) -> Result<Reservation<K, C>, PaceError> {
        if self.mode == PacingMode::Gcra {
            return self.reserve_gcra(key, cost, max_wait);
        }
        let max_ns = max_wait.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        loop {
            let now = self.now_ns();
            let entry = self.log(key, now);
            let mut e = lock(&entry);
            if e.dead {
                drop(e);
                self.forget_dead_log(key);
                continue;
            }
            let max_cost = e.log.max_cost();
            if cost == 0 {
                return Err(PaceError::Cost(CheckError::ZeroCost));
            }
            if u64::from(cost) > max_cost {
                return Err(PaceError::Cost(CheckError::CostExceedsBurst {
                    cost,
                    max_cost: u32::try_from(max_cost).unwrap_or(u32::MAX),
                }));
            }
            return match e.log.book(now, u64::from(cost), max_ns) {
                Ok(booked) => {
                    drop(e);
                    Ok(Reservation {
                        pacer: Arc::clone(self),
                        at_ns: booked.at,
                        wait: Duration::from_nanos(booked.at - now),
                        cost,
                        slot: Slot::Log(entry, booked),
                        armed: true,
                    })
                }
                Err(wait) => Err(PaceError::WouldWait {
                    wait: Duration::from_nanos(wait),
                    max_wait: max_wait.unwrap_or(Duration::MAX),
                }),
            };
        }
    }

    fn reserve_gcra(
        self: &Arc<Self>,
        key: &K,
        cost: u32,
        max_wait: Option<Duration>,
    ) -> Result<Reservation<K, C>, PaceError> {
        self.quotas.check_cost(cost).map_err(PaceError::Cost)?;
        let shift = self.quotas.shift;
        let max_units = max_wait.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX) >> shift
        });
        loop {
            let now_ns = self.now_ns();
            let now = now_ns >> shift;
            let entry = self.entry(key, now);
            match entry
                .cell
                .reserve(&self.quotas, now, u64::from(cost), max_units)
            {
                Ok(booking) => {
                    // In whole units: never shorter than the true wait (now_ns >= now << shift).
                    let wait = Duration::from_nanos((booking.at - now) << shift);
                    return Ok(Reservation {
                        pacer: Arc::clone(self),
                        at_ns: booking.at << shift,
                        wait,
                        cost,
                        slot: Slot::Gcra(entry, booking),
                        armed: true,
                    });
                }
                Err(NotBooked::TooLong(units)) => {
                    return Err(PaceError::WouldWait {
                        wait: Duration::from_nanos(units << shift),
                        max_wait: max_wait.unwrap_or(Duration::MAX),
                    });
                }
                // Being reclaimed: its state had expired, so a fresh cell is equivalent.
                Err(NotBooked::Dead) => self.forget_dead(key),
            }
        }
    }

    /// Admits nothing for `key` before `delay` from now (e.g. the server said
    /// `remaining=0` with a reset, or sent `Retry-After`). Requests already booked check
    /// for the hold when their slot comes and book again behind it (see
    /// [`is_held`](Self::is_held)). In GCRA mode admissions resume afterwards at the
    /// rate of the set's fastest-refilling quota.
    pub fn hold(&self, key: &K, delay: Duration) {
        let now_ns = self.now_ns();
        let delay_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let until_ns = now_ns.saturating_add(delay_ns).min(MAX_NOW_NS);
        if self.mode != PacingMode::Gcra {
            self.with_log(key, now_ns, |log| log.hold(until_ns));
            return;
        }
        let shift = self.quotas.shift;
        let until = until_ns.div_ceil(1 << shift);
        loop {
            let entry = self.entry(key, now_ns >> shift);
            if entry.cell.hold(&self.quotas, until) {
                entry.hold_until.fetch_max(until, Relaxed);
                return;
            }
            self.forget_dead(key);
        }
    }

    /// What the hints say remains of each of the pacer's quotas (by policy name, or
    /// draft-03's first `RateLimit-Limit` item, the limit of the policy closest to
    /// exhaustion), with the time until that quota frees up.
    fn reported(&self, hints: &RateLimitHints) -> [Option<(u64, Option<Duration>)>; MAX_QUOTAS] {
        let mut out = [None; MAX_QUOTAS];
        for (o, q) in out.iter_mut().zip(self.quotas.iter()) {
            let named = hints
                .policies
                .iter()
                .find(|h| h.name.as_deref() == Some(q.name()))
                .and_then(|h| h.remaining.map(|r| (r, h.reset.or(hints.reset))));
            let by_limit = (hints.limit == Some(u64::from(q.limit())))
                .then_some(hints.remaining)
                .flatten()
                .map(|r| (r, hints.reset));
            *o = named.or(by_limit);
        }
        out
    }

    /// Adopts what a server reported as remaining for `key`, so a fresh pacer does not
    /// spend quota the server has already counted: each of the pacer's quotas that the
    /// hints name (by policy name, or draft-03's first `RateLimit-Limit` item, which is
    /// the limit of the policy closest to exhaustion) is set to at most that many
    /// remaining, until the reported reset (log modes; GCRA mode spreads them at the
    /// quota's rate). Only ever makes the pacer stricter.
    pub fn sync(&self, key: &K, hints: &RateLimitHints) {
        let reported = self.reported(hints);
        if reported.iter().all(Option::is_none) {
            return;
        }
        if self.mode != PacingMode::Gcra {
            let now = self.now_ns();
            self.with_log(key, now, |log| {
                // Only the configured limits map to the pacer's quotas by index.
                if log.limits() != self.limits.as_slice() {
                    return;
                }
                for (i, (r, q)) in reported.iter().zip(self.quotas.iter()).enumerate() {
                    let Some((remaining, reset)) = *r else {
                        continue;
                    };
                    // A scaled limit counts other units than the server's.
                    if self.limits[i].n != u64::from(q.limit()) {
                        continue;
                    }
                    let used = u64::from(q.limit()).saturating_sub(remaining);
                    let free_at = reset.map_or(now, |d| {
                        now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                    });
                    log.record_used(i, used, now, free_at);
                }
            });
            return;
        }
        let shift = self.quotas.shift;
        let now = self.now_ns() >> shift;
        let mut floors = [0u64; MAX_QUOTAS];
        for ((f, r), p) in floors.iter_mut().zip(&reported).zip(self.quotas.params()) {
            if let Some((remaining, _)) = *r {
                let used = p.burst.saturating_sub(remaining);
                *f = now + used * p.t;
            }
        }
        loop {
            let entry = self.entry(key, now);
            if entry.cell.raise(&self.quotas, now, &floors) {
                return;
            }
            self.forget_dead(key);
        }
    }

    /// Replaces the quotas for `key` by those the server advertises (e.g.
    /// [`RateLimitHints::quotas`]), keeping what was already sent: it still counts
    /// under the new quotas. Log modes only; returns whether they were adopted (a
    /// GCRA pacer keeps one quota set for all keys).
    pub fn adopt(&self, key: &K, quotas: &Quotas) -> bool {
        if self.mode == PacingMode::Gcra {
            return false;
        }
        let limits = limits_for(quotas, self.margin);
        let now = self.now_ns();
        self.with_log(key, now, |log| log.set_limits(limits.clone()));
        true
    }

    /// Whether `key` is held (see [`hold`](Self::hold)) beyond now. Requests booked
    /// before the hold was placed check this when their slot comes, and book again.
    pub fn is_held(&self, key: &K) -> bool {
        let now_ns = self.now_ns();
        if self.mode != PacingMode::Gcra {
            return self
                .logs
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .is_some_and(|e| lock(e).log.is_held(now_ns));
        }
        let now = now_ns >> self.quotas.shift;
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|e| e.hold_until.load(Relaxed) > now)
    }
}

/// A key's sliding log and whether it was swept from the table.
#[derive(Debug)]
struct LogEntry {
    log: Log,
    dead: bool,
}

fn lock(e: &Mutex<LogEntry>) -> MutexGuard<'_, LogEntry> {
    e.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a [`Reservation`] holds, per mode.
enum Slot {
    Gcra(Arc<Entry>, Booking),
    Log(Arc<Mutex<LogEntry>>, Booked),
}

/// A booked slot. Wait [`wait`](Reservation::wait) (or [`ready`](Reservation::ready)),
/// then send and [`commit`](Reservation::commit).
///
/// Dropping it uncommitted gives the slot back when that provably cannot let a later
/// request break a quota. In the log modes that is always: the sliding log holds
/// exactly the requests sent or waiting, and a newcomer still queues after every
/// waiting one, so it takes the freed capacity only where the bound allows. In GCRA
/// mode only when no later booking is admitted later than this one (the tail of the
/// queue, or a burst sharing one admission time): then the next caller gets exactly this
/// slot; a GCRA slot in the middle of the queue lapses unused, because its one time per
/// quota cannot tell where the slot was, and giving it back could let a new caller in
/// beside a later booking. Either way nobody else waits longer because of it.
pub struct Reservation<K, C = TokioClock>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    pacer: Arc<Pacer<K, C>>,
    slot: Slot,
    at_ns: u64,
    wait: Duration,
    cost: u32,
    armed: bool,
}

impl<K, C> fmt::Debug for Reservation<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("wait", &self.wait)
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl<K, C> Reservation<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// How long to wait, from the booking, before sending.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Sleeps (on tokio time) until the slot. Cancellation-safe: dropping the future
    /// keeps the reservation, dropping the reservation gives it back.
    pub async fn ready(&self) {
        let remaining = self.at_ns.saturating_sub(self.pacer.now_ns());
        if remaining > 0 {
            tokio::time::sleep(Duration::from_nanos(remaining)).await;
        }
    }

    /// Marks the slot as used: dropping no longer gives it back.
    pub fn commit(mut self) {
        self.armed = false;
    }

    /// Gives the slot back now if that is safe; returns whether it was given back.
    pub fn release(mut self) -> bool {
        self.armed = false;
        self.give_back()
    }

    fn give_back(&self) -> bool {
        match &self.slot {
            Slot::Gcra(entry, booking) => entry.cell.release(&self.pacer.quotas, *booking),
            Slot::Log(entry, booked) => {
                let mut e = lock(entry);
                !e.dead && e.log.undo(booked)
            }
        }
    }
}

impl<K, C> Drop for Reservation<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    fn drop(&mut self) {
        if self.armed {
            let _ = self.give_back();
        }
    }
}
