//! The pacer: per-key reservations over a quota set, shared by every clone of a layer.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use super::PaceError;
use super::clock::TokioClock;
use super::hints::RateLimitHints;
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

/// Keys tracked before inserts start sweeping expired ones.
const SWEEP_FLOOR: usize = 1024;

/// Books slots in the future for outgoing requests: one state per key (host, API key),
/// the same multi-quota GCRA as the server side, but a request that is not admitted now
/// is given the earliest admission time instead of a denial.
///
/// Callers are served in booking order (FIFO) and each wakes exactly when its slot
/// comes, so nobody is woken just to be refused (no thundering herd). Dropping a
/// [`Reservation`] before its time gives the slot back when that is safe (see
/// [`Reservation`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tower_ratelimit::{Quotas, client::Pacer};
/// let pacer = Pacer::new(Quotas::claid());
/// let slots: Vec<_> = (0..6).map(|_| pacer.reserve(&"api-key", 1, None).unwrap()).collect();
/// // Claid allows a burst of 4, then one every 250 ms.
/// assert_eq!(slots[3].wait(), Duration::ZERO);
/// assert_eq!(slots[5].wait(), Duration::from_millis(500));
/// // Dropping the newest booking gives its slot back to the next caller.
/// let mut slots = slots;
/// drop(slots.pop());
/// assert_eq!(pacer.reserve(&"api-key", 1, None).unwrap().wait(), Duration::from_millis(500));
/// for slot in slots {
///     slot.commit(); // sent: the slot is used
/// }
/// # }
/// ```
pub struct Pacer<K, C = TokioClock> {
    quotas: Quotas,
    map: Map<K>,
    clock: C,
    inserts: AtomicUsize,
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
    /// A pacer over `quotas` on tokio's clock.
    pub fn new(quotas: impl Into<Quotas>) -> Arc<Self> {
        Self::with_clock(quotas, TokioClock::new())
    }
}

impl<K, C> Pacer<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    /// A pacer on the given clock. The pacer sleeps with tokio timers, so a clock that
    /// runs at tokio's pace ([`TokioClock`], the default) keeps waits exact.
    pub fn with_clock(quotas: impl Into<Quotas>, clock: C) -> Arc<Self> {
        Arc::new(Pacer {
            quotas: quotas.into(),
            map: RwLock::new(HashMap::new()),
            clock,
            inserts: AtomicUsize::new(0),
        })
    }

    /// The quota set.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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

    /// Books a slot of `cost` for `key`: the returned [`Reservation`] says how long to
    /// wait before sending. With `max_wait`, a slot further away than that is not booked
    /// and [`PaceError::WouldWait`] is returned instead.
    pub fn reserve(
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
                        entry,
                        booking,
                        wait,
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
    /// `remaining=0` with a reset, or sent `Retry-After`). Afterwards admissions resume
    /// at the rate of the set's fastest-refilling quota.
    pub fn hold(&self, key: &K, delay: Duration) {
        let shift = self.quotas.shift;
        let now_ns = self.now_ns();
        let delay_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let until = now_ns
            .saturating_add(delay_ns)
            .min(MAX_NOW_NS)
            .div_ceil(1 << shift);
        loop {
            let entry = self.entry(key, now_ns >> shift);
            if entry.cell.hold(&self.quotas, until) {
                entry.hold_until.fetch_max(until, Relaxed);
                return;
            }
            self.forget_dead(key);
        }
    }

    /// Adopts what a server reported as remaining for `key`, so a fresh pacer does not
    /// spend quota the server has already counted: each of the pacer's quotas that the
    /// hints name (by policy name, or draft-03's first `RateLimit-Limit` item, which is
    /// the limit of the policy closest to exhaustion) is set to at most that many
    /// remaining. Only ever makes the pacer stricter.
    pub fn sync(&self, key: &K, hints: &RateLimitHints) {
        let shift = self.quotas.shift;
        let now = self.now_ns() >> shift;
        let mut floors = [0u64; MAX_QUOTAS];
        let mut any = false;
        for ((f, q), p) in floors
            .iter_mut()
            .zip(self.quotas.iter())
            .zip(self.quotas.params())
        {
            let named = hints
                .policies
                .iter()
                .find(|h| h.name.as_deref() == Some(q.name()))
                .and_then(|h| h.remaining);
            let by_limit = (hints.limit == Some(u64::from(q.limit())))
                .then_some(hints.remaining)
                .flatten();
            if let Some(r) = named.or(by_limit) {
                let used = p.burst.saturating_sub(r);
                *f = now + used * p.t;
                any = true;
            }
        }
        if !any {
            return;
        }
        loop {
            let entry = self.entry(key, now);
            if entry.cell.raise(&self.quotas, now, &floors) {
                return;
            }
            self.forget_dead(key);
        }
    }

    /// Whether `key` is held (see [`hold`](Self::hold)) beyond now. Requests booked
    /// before the hold was placed check this when their slot comes, and book again.
    pub fn is_held(&self, key: &K) -> bool {
        let now = self.now_ns() >> self.quotas.shift;
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|e| e.hold_until.load(Relaxed) > now)
    }
}

/// A booked slot. Wait [`wait`](Reservation::wait) (or [`ready`](Reservation::ready)),
/// then send and [`commit`](Reservation::commit).
///
/// Dropping it uncommitted gives the slot back when no later booking is admitted later
/// than this one (the tail of the queue, or a burst sharing one admission time): then the
/// next caller gets exactly this slot. A slot in the middle of the queue lapses unused,
/// because giving it back could let a new caller in beside a later booking, more than
/// the quotas allow. Either way nobody else waits longer because of it.
pub struct Reservation<K, C = TokioClock>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    pacer: Arc<Pacer<K, C>>,
    entry: Arc<Entry>,
    booking: Booking,
    wait: Duration,
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
            .field("cost", &self.booking.cost)
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
        let remaining =
            (self.booking.at << self.pacer.quotas.shift).saturating_sub(self.pacer.now_ns());
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
        self.entry.cell.release(&self.pacer.quotas, self.booking)
    }
}

impl<K, C> Drop for Reservation<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    fn drop(&mut self) {
        if self.armed {
            let _ = self.entry.cell.release(&self.pacer.quotas, self.booking);
        }
    }
}
