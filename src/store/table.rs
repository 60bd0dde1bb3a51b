//! A lock-free hash table of limiter cells, keyed by 64-bit keyed-hash fingerprints.
//!
//! # Why fingerprints
//!
//! A limiter never needs a key back: it only needs "the cell of this key". Storing a
//! 64-bit SipHash-1-3 fingerprint (random keys per table, so clients cannot aim at each
//! other) next to the cell keeps a slot at 16 bytes (32 for multi-quota sets) inline in
//! one array: one cache miss per lookup instead of the two or three of a map with boxed
//! entries, no allocation per key, and no `Clone` or `Eq` needed of the key type. Two
//! distinct keys share a cell only if their fingerprints collide, with probability about
//! `n² / 2^65` over `n` keys (3 × 10^-8 at a million keys); they would then share one
//! budget, which is never looser than either's own limit.
//!
//! # Concurrency
//!
//! Slots are claimed by CAS on the fingerprint (0 = free) and never released; the cell is
//! updated by the state module's single-word CAS. Expired cells become tombstones
//! (`DEAD`) that the same key revives, and that the next resize drops. Growing copies the
//! table: the resizer freezes every slot of the old table (a free slot gets the `FROZEN_FP`
//! fingerprint, a used one the cell's frozen bit) and copies its state into the new one;
//! any thread that meets a frozen slot helps copy it and moves on to the new table, so no
//! update is lost and nobody waits for the resizer.
//!
//! # Retirement (live reconfiguration)
//!
//! When the quota sets change, the store starts a new table for the new generation and
//! *retires* the old one: no resize starts after that (one in progress is waited out, so
//! every state sits in the chain's last table), then every slot is frozen, key by key, as
//! the new generation takes the states over. A request still working on the retired table
//! that meets a frozen slot gets [`Retired`] and starts again in the current generation:
//! each key's decisions are all under the old set, then all under the new one.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
    Ordering::SeqCst, fence,
};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use crate::state::Cell;

/// Fingerprint of a slot that was free when its table was frozen.
const FROZEN_FP: u64 = u64::MAX;
const FREE: u64 = 0;
const MIN_CAPACITY: usize = 64;

#[derive(Default)]
struct Slot<C> {
    fp: AtomicU64,
    cell: C,
}

enum Probe<'a, C> {
    Found(&'a Slot<C>),
    Free(&'a Slot<C>),
    Frozen,
}

struct Table<C> {
    slots: Box<[Slot<C>]>,
    mask: usize,
    /// Slots whose fingerprint is claimed (live or tombstone).
    used: AtomicUsize,
    next: OnceLock<Arc<Table<C>>>,
    migrated: AtomicBool,
    /// Live keys of the whole table chain (shared), to size the next table by.
    live: Arc<AtomicUsize>,
    /// Retirement state of the whole chain (shared).
    chain: Arc<Chain>,
}

/// What every table of one chain shares about its retirement.
#[derive(Default)]
struct Chain {
    /// Set once the chain's generation is replaced: no table grows after that.
    retired: AtomicBool,
    /// Resizes creating and filling a table right now.
    growing: AtomicUsize,
}

/// The table belongs to a replaced generation: start again in the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retired;

impl<C: Cell> Table<C> {
    fn new(capacity: usize, live: Arc<AtomicUsize>, chain: Arc<Chain>) -> Self {
        let capacity = capacity.max(MIN_CAPACITY).next_power_of_two();
        Table {
            slots: (0..capacity).map(|_| Slot::default()).collect(),
            mask: capacity - 1,
            used: AtomicUsize::new(0),
            next: OnceLock::new(),
            migrated: AtomicBool::new(false),
            live,
            chain,
        }
    }

    /// Finds the slot of `fp`, or the free slot where it would go.
    #[inline]
    fn probe(&self, fp: u64) -> Probe<'_, C> {
        let mut i = fp as usize & self.mask;
        // The load factor stays below 3/4, so a free slot is always within reach; the
        // bound only guards against a table filled by racing claims.
        for _ in 0..=self.mask {
            let slot = &self.slots[i];
            match slot.fp.load(Relaxed) {
                f if f == fp => return Probe::Found(slot),
                FREE => return Probe::Free(slot),
                FROZEN_FP => return Probe::Frozen,
                _ => i = (i + 1) & self.mask,
            }
        }
        Probe::Frozen
    }

    /// Claims `slot` for `fp`. `Ok(true)` if this call claimed it, `Ok(false)` if `fp`
    /// got there first, `Err(())` if the slot went to another key or was frozen.
    fn claim(&self, slot: &Slot<C>, fp: u64) -> Result<bool, ()> {
        match slot.fp.compare_exchange(FREE, fp, Relaxed, Relaxed) {
            Ok(_) => {
                self.used.fetch_add(1, Relaxed);
                Ok(true)
            }
            Err(actual) if actual == fp => Ok(false),
            Err(_) => Err(()),
        }
    }

    /// Finds the slot of `fp`, claiming a free one if absent. `Err(())` when the probe met
    /// a frozen table: the caller moves to `next`.
    fn find_or_claim(&self, fp: u64) -> Result<&Slot<C>, ()> {
        loop {
            match self.probe(fp) {
                Probe::Found(slot) => return Ok(slot),
                Probe::Frozen => return Err(()),
                Probe::Free(slot) => {
                    if self.claim(slot, fp).is_ok() {
                        return Ok(slot);
                    }
                }
            }
        }
    }

    fn is_crowded(&self) -> bool {
        self.used.load(Relaxed) * 4 >= self.slots.len() * 3
    }
}

/// Copies a frozen slot's state into the table chain starting at `to`.
fn carry<C: Cell>(mut to: &Table<C>, fp: u64, word: C::Word) {
    loop {
        if let Ok(slot) = to.find_or_claim(fp)
            && slot.cell.adopt(word)
        {
            return;
        }
        // A retired chain grows no more; its states were all carried before it retired.
        if to.chain.retired.load(SeqCst) {
            return;
        }
        // `to` is itself being migrated (its slot or table froze before the state could
        // land): the copy must go further on.
        to = match to.next.get() {
            Some(next) => next,
            None => grow(to),
        };
    }
}

/// Freezes one slot and carries its state to `next`.
fn migrate_slot<C: Cell>(slot: &Slot<C>, next: &Table<C>) {
    let mut fp = slot.fp.load(Relaxed);
    if fp == FREE {
        match slot.fp.compare_exchange(FREE, FROZEN_FP, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => fp = actual,
        }
    }
    if fp == FROZEN_FP {
        return;
    }
    if let Some(word) = slot.cell.freeze() {
        carry(next, fp, word);
    }
}

/// Starts (or joins) the migration of `t` into a larger table; returns the new table
/// (`t` itself once the chain is retired: it grows no more).
fn grow<C: Cell>(t: &Table<C>) -> &Table<C> {
    if let Some(next) = t.next.get() {
        return next;
    }
    // Paired with `retire`: either this resize sees the flag, or `retire` waits for it.
    t.chain.growing.fetch_add(1, SeqCst);
    if t.chain.retired.load(SeqCst) {
        t.chain.growing.fetch_sub(1, SeqCst);
        return t;
    }
    // Sized by live keys, not claimed slots: tombstones are dropped by the copy, so
    // churn through many short-lived keys cannot grow the table without bound.
    let live = t.live.load(Relaxed);
    let mut created = false;
    let next = t.next.get_or_init(|| {
        created = true;
        Arc::new(Table::new(
            live.saturating_mul(2),
            t.live.clone(),
            t.chain.clone(),
        ))
    });
    if created {
        for slot in t.slots.iter() {
            migrate_slot(slot, next);
        }
        t.migrated.store(true, Relaxed);
    }
    t.chain.growing.fetch_sub(1, SeqCst);
    next
}

/// Freezes one slot for good (retirement); returns the state it held, if any.
fn freeze_slot<C: Cell>(slot: &Slot<C>) -> Option<(u64, C::Word)> {
    let mut fp = slot.fp.load(Relaxed);
    if fp == FREE {
        match slot.fp.compare_exchange(FREE, FROZEN_FP, Relaxed, Relaxed) {
            Ok(_) => return None,
            Err(actual) => fp = actual,
        }
    }
    if fp == FROZEN_FP {
        return None;
    }
    slot.cell.freeze().map(|w| (fp, w))
}

/// The table of cells, with its hasher and live-key count.
pub(crate) struct CellTable<C> {
    current: ArcSwap<Table<C>>,
    hasher: RandomState,
    live: Arc<AtomicUsize>,
    chain: Arc<Chain>,
}

impl<C: Cell> CellTable<C> {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }

    /// A table fingerprinting keys as `hasher` does: a successor generation shares its
    /// predecessor's hasher so states can be carried by fingerprint.
    pub(crate) fn with_hasher(hasher: RandomState) -> Self {
        let live = Arc::new(AtomicUsize::new(0));
        let chain = Arc::new(Chain::default());
        CellTable {
            current: ArcSwap::from_pointee(Table::new(MIN_CAPACITY, live.clone(), chain.clone())),
            hasher,
            live,
            chain,
        }
    }

    pub(crate) fn hasher(&self) -> &RandomState {
        &self.hasher
    }

    /// Stops all growth; returns once no resize is in progress (so every state is in the
    /// chain's last table). Slots are frozen afterwards, by [`take`](Self::take) and
    /// [`drain`](Self::drain).
    pub(crate) fn retire(&self) {
        self.chain.retired.store(true, SeqCst);
        while self.chain.growing.load(SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    fn last(&self) -> Arc<Table<C>> {
        let mut table = self.current.load_full();
        while let Some(next) = table.next.get().cloned() {
            table = next;
        }
        table
    }

    /// Freezes the slot of `fp` in a retired table (claiming it first if absent, so a
    /// late request cannot create it), and returns the state it held.
    pub(crate) fn take(&self, fp: u64) -> Option<C::Word> {
        debug_assert!(self.chain.retired.load(Relaxed));
        let table = self.last();
        let slot = table.find_or_claim(fp).ok()?;
        // A request that meets this frozen slot must also see that the chain is retired.
        fence(Release);
        slot.cell.freeze()
    }

    /// Freezes every slot of a retired table, handing each held state to `f`.
    pub(crate) fn drain(&self, mut f: impl FnMut(u64, C::Word)) {
        debug_assert!(self.chain.retired.load(Relaxed));
        let mut table = self.current.load_full();
        // A request that meets a slot frozen here must also see that the chain is retired.
        fence(Release);
        loop {
            for slot in table.slots.iter() {
                if let Some((fp, word)) = freeze_slot(slot) {
                    f(fp, word);
                }
            }
            match table.next.get().cloned() {
                Some(next) => table = next,
                None => break,
            }
        }
    }

    #[inline]
    pub(crate) fn fingerprint<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        let h = self.hasher.hash_one(key) | 1;
        if h == FROZEN_FP { h - 2 } else { h }
    }

    /// Runs `f` on the cell of `key` until it gives a result, creating the cell if the
    /// key is new (after `admit_new` allows it) and reviving it if it was reclaimed.
    ///
    /// On a retired table, gives `Retired` (as `E`) where the key's slot is frozen.
    #[cfg(test)]
    pub(crate) fn with_cell<K, R, E>(
        &self,
        key: &K,
        admit_new: impl FnMut(usize) -> Result<(), E>,
        f: impl FnMut(&C) -> Option<R>,
    ) -> Result<R, E>
    where
        K: Hash + ?Sized,
        E: From<Retired>,
    {
        self.with_fp(self.fingerprint(key), admit_new, f)
    }

    /// [`with_cell`](Self::with_cell) for a fingerprint already computed.
    #[inline]
    pub(crate) fn with_fp<R, E>(
        &self,
        fp: u64,
        mut admit_new: impl FnMut(usize) -> Result<(), E>,
        mut f: impl FnMut(&C) -> Option<R>,
    ) -> Result<R, E>
    where
        E: From<Retired>,
    {
        let guard = self.current.load();
        let mut table: &Table<C> = &guard;
        let mut room_checked = false;
        loop {
            if table.is_crowded() && table.next.get().is_none() {
                // Start (or join) the resize but stay on this table: this key's state
                // may still live here, and only its own frozen slot may send it on.
                grow(table);
                self.publish(&guard);
            }
            let slot = match table.probe(fp) {
                Probe::Found(slot) => slot,
                Probe::Frozen => {
                    fence(Acquire);
                    if self.chain.retired.load(Relaxed) {
                        return Err(Retired.into());
                    }
                    table = grow(table);
                    self.publish(&guard);
                    continue;
                }
                Probe::Free(slot) => {
                    // Only a key that is not present anywhere may be refused for room.
                    if !room_checked && !self.contains_fp(table, fp) {
                        admit_new(self.live.load(Relaxed))?;
                    }
                    room_checked = true;
                    match table.claim(slot, fp) {
                        Ok(true) => {
                            self.live.fetch_add(1, Relaxed);
                            slot
                        }
                        Ok(false) => slot,
                        Err(()) => continue,
                    }
                }
            };
            if let Some(r) = f(&slot.cell) {
                return Ok(r);
            }
            if slot.cell.is_frozen() {
                fence(Acquire);
                if self.chain.retired.load(Relaxed) {
                    return Err(Retired.into());
                }
                // Help the migration along for this slot, then follow it.
                let next = grow(table);
                migrate_slot(slot, next);
                table = next;
            } else if slot.cell.revive() {
                self.live.fetch_add(1, Relaxed);
            }
        }
    }

    fn contains_fp(&self, mut table: &Table<C>, fp: u64) -> bool {
        loop {
            let mut i = fp as usize & table.mask;
            for _ in 0..=table.mask {
                match table.slots[i].fp.load(Relaxed) {
                    f if f == fp => return !table.slots[i].cell.is_dead(),
                    FREE => return false,
                    FROZEN_FP => break,
                    _ => i = (i + 1) & table.mask,
                }
            }
            match table.next.get() {
                Some(next) => table = next,
                None => return false,
            }
        }
    }

    /// Makes the newest fully migrated table current.
    fn publish(&self, seen: &Arc<Table<C>>) {
        let mut cur = seen.clone();
        while cur.migrated.load(Relaxed) {
            let Some(next) = cur.next.get().cloned() else {
                break;
            };
            let prev = self.current.compare_and_swap(&cur, next.clone());
            if !Arc::ptr_eq(&prev, &cur) {
                break;
            }
            cur = next;
        }
    }

    /// Turns every expired cell of the current table into a tombstone.
    pub(crate) fn sweep(&self, mut reap: impl FnMut(&C) -> bool) {
        let table = self.current.load();
        for slot in table.slots.iter() {
            let fp = slot.fp.load(Relaxed);
            if fp != FREE && fp != FROZEN_FP && reap(&slot.cell) {
                self.live.fetch_sub(1, Relaxed);
            }
        }
        // A resize that finished since is made current here too.
        self.publish(&table);
    }

    /// Keys with a live (non-tombstone) cell, approximately under concurrency.
    pub(crate) fn len(&self) -> usize {
        self.live.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;
    use crate::quota::Quotas;
    use crate::state::Cell64;

    /// Live cells and distinct fingerprints actually in the current table.
    fn census(t: &CellTable<Cell64>) -> (usize, usize, usize) {
        let table = t.current.load();
        assert!(table.next.get().is_none(), "no resize in progress");
        let mut live = 0;
        let mut fps = std::collections::HashSet::new();
        let mut dups = 0;
        for slot in table.slots.iter() {
            let fp = slot.fp.load(Relaxed);
            if fp != FREE && fp != FROZEN_FP {
                if !fps.insert(fp) {
                    dups += 1;
                }
                if !slot.cell.is_dead() {
                    live += 1;
                }
            }
        }
        (live, fps.len(), dups)
    }

    #[test]
    fn live_count_matches_the_table_after_concurrent_churn() {
        let set = Quotas::from(Quota::per_second(1).expect("valid"));
        let table = Arc::new(CellTable::<Cell64>::new());
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (table, set) = (table.clone(), set.clone());
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        let now = 1 + i * 10_000_000;
                        let key = t * 1_000_000 + i % 20_000;
                        let _ = table.with_cell(
                            &key,
                            |_| Ok::<(), Retired>(()),
                            |c| c.check(&set, now, 1),
                        );
                        if i % 5_000 == 0 {
                            table.sweep(|c| c.try_reap(&set, now));
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no panic");
        }
        let (live, distinct, dups) = census(&table);
        assert_eq!(dups, 0, "a fingerprint claimed twice in one table");
        assert_eq!(table.len(), live, "live count (distinct {distinct})");
    }
}
