//! A lock-free hash table of limiter cells, keyed by 64-bit keyed-hash fingerprints,
//! that grows, shrinks and sweeps incrementally.
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
//! (`DEAD`) that the same key revives, and that the next resize drops.
//!
//! # Incremental resizing
//!
//! A resize (to grow, or to shrink a table that is mostly dead) links a new table behind
//! the current one; the old one is then moved over a chunk at a time, each chunk by
//! whichever insert of a new key comes next, so no request pays for more than
//! [`MIGRATE_CHUNK`] slots. Moving a slot freezes it: a free slot gets the `FROZEN_FP`
//! fingerprint, a used one the cell's frozen bit, and its state is carried into the new
//! table. While the old table is being moved, a lookup still starts there:
//!
//! * a key whose slot is not frozen yet is used in place (its later move carries it);
//! * a key whose slot is frozen is carried by the thread that meets it (copies are
//!   idempotent), which then follows it to the new table;
//! * a key absent from the old table is *closed off* there first: the free slot that ends
//!   its probe is frozen (`FREE -> FROZEN_FP`), then the key goes to the new table. A
//!   racing insert of the same key into that slot either wins the CAS (and the other
//!   thread finds it) or sees the frozen slot and follows, so a key never gets two cells.
//!
//! Claimed slots are never freed, so a key's probe path in a table never crosses a free
//! (or frozen-free) slot: a lookup that reaches one knows the key is not in that table.
//! When every chunk is moved, the new table becomes current and the old one is dropped
//! once its last reader lets go (a large one on a short-lived thread, so no request pays
//! for unmapping it).
//!
//! # Incremental sweeping
//!
//! When no resize is running, each insert of a new key reaps one [`SWEEP_CHUNK`] of slots
//! (expired cells become tombstones). Each sweep window (a sixteenth of the table) yields
//! an estimate of the live keys (fingerprints are uniform, so the window is a fair
//! sample); when it says the table is mostly dead, a shrink starts, and the moves reap
//! expired cells as they go instead of carrying them.
//!
//! # Retirement (live reconfiguration)
//!
//! When the quota sets change, the store starts a new table for the new generation and
//! *retires* the old one: the reloader seals the end of the chain (no table is linked
//! after it: sealing and linking race on the same once-cell, so either the seal wins or
//! the reloader sees the new table and moves into it before sealing that one), finishes
//! any resize (so every state sits in the chain's last table), and then every slot is frozen, key by
//! key, as the new generation takes the states over ([`CellTable::take`],
//! [`CellTable::drain`]). A request still working on the retired table that meets a
//! frozen slot with nowhere to follow gets [`Retired`] and starts again in the current
//! generation: each key's decisions are all under the old set, then all under the new.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, fence,
};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use crate::state::Cell;
use crate::state::atomics::AtomicU64;

/// Fingerprint of a slot that was free when its table was frozen.
const FROZEN_FP: u64 = u64::MAX;
const FREE: u64 = 0;
/// Smallest table; tiny under loom so that models stay small.
const MIN_CAPACITY: usize = if cfg!(tower_ratelimit_loom) { 4 } else { 64 };
/// Slots moved to the new table per insert during a resize.
pub(crate) const MIGRATE_CHUNK: usize = 512;
/// Slots swept per insert when no resize runs.
pub(crate) const SWEEP_CHUNK: usize = 64;
/// Tables at least this large (in slots) are freed off the request path.
#[cfg(not(tower_ratelimit_loom))]
const BACKGROUND_FREE_SLOTS: usize = 1 << 16;

#[derive(Default)]
pub(crate) struct Slot<C> {
    fp: AtomicU64,
    cell: C,
}

enum Probe<'a, C> {
    Found(&'a Slot<C>),
    Free(&'a Slot<C>),
    Frozen,
}

pub(crate) struct Table<C: Cell> {
    slots: Box<[Slot<C>]>,
    mask: usize,
    /// Slots whose fingerprint is claimed (live or tombstone).
    used: AtomicUsize,
    /// The table after this one, once linked; `Some(None)` once the chain is retired
    /// and this is its end: sealing and linking race on this one cell, so a table is
    /// never linked behind a retired chain's end (where the reloader would miss it).
    next: OnceLock<Option<Arc<Table<C>>>>,
    /// Next migration chunk to hand out, and chunks whose move has finished.
    migrate_cursor: AtomicUsize,
    migrated_chunks: AtomicUsize,
    migrated: AtomicBool,
    /// Next sweep chunk (wraps around), and the current window's slots and live cells.
    sweep_cursor: AtomicUsize,
    window_slots: AtomicUsize,
    window_live: AtomicUsize,
    /// Live keys of the whole table chain (shared).
    live: Arc<AtomicUsize>,
}

/// The table belongs to a replaced generation: start again in the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retired;

impl<C: Cell> Table<C> {
    pub(crate) fn new(capacity: usize, live: Arc<AtomicUsize>) -> Self {
        let capacity = capacity.max(MIN_CAPACITY).next_power_of_two();
        Table {
            slots: alloc::slots(capacity),
            mask: capacity - 1,
            used: AtomicUsize::new(0),
            next: OnceLock::new(),
            migrate_cursor: AtomicUsize::new(0),
            migrated_chunks: AtomicUsize::new(0),
            migrated: AtomicBool::new(false),
            sweep_cursor: AtomicUsize::new(0),
            window_slots: AtomicUsize::new(0),
            window_live: AtomicUsize::new(0),
            live,
        }
    }

    /// The table linked after this one.
    #[inline]
    fn next(&self) -> Option<&Arc<Table<C>>> {
        self.next.get().and_then(Option::as_ref)
    }

    /// Whether this is the end of a retired chain: nowhere further to go.
    fn is_retired_end(&self) -> bool {
        matches!(self.next.get(), Some(None))
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Finds the slot of `fp`, or the free slot where it would go.
    #[inline]
    fn probe(&self, fp: u64) -> Probe<'_, C> {
        let mut i = fp as usize & self.mask;
        // Claims stop at a load factor of 3/4 (later keys are closed off and go to the
        // next table), so a free slot is always within reach; the bound is a backstop.
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

    fn is_crowded(&self) -> bool {
        self.used.load(Relaxed) * 4 >= self.capacity() * 3
    }

    /// The table after this one, linking a new one if there is none yet (`None` at the
    /// end of a retired chain). Only links: the move is done chunk by chunk.
    fn next_or_link(&self) -> Option<&Table<C>> {
        let next = self.next.get_or_init(|| {
            // The keys it will hold: this table's (the global count may still include
            // keys that have expired but are not reaped yet, and a young table behind an
            // old one holds only part of them), and the new keys that arrive while this
            // table is moved, one chunk per insert. Half load, as after any resize.
            let keys = self.live.load(Relaxed).min(self.used.load(Relaxed));
            Some(self.link_sized(keys))
        });
        next.as_deref()
    }

    /// A next table for `keys` keys plus the inserts that arrive during the move.
    fn link_sized(&self, keys: usize) -> Arc<Table<C>> {
        let arriving = self.capacity() / self.migrate_chunk_len();
        Arc::new(Table::new(
            keys.saturating_add(arriving).saturating_mul(2),
            self.live.clone(),
        ))
    }

    /// Where a key absent from this table goes: `None` if it may be claimed here; else
    /// the table it must go to, after closing its probe path here at `slot`.
    fn close_off(&self, slot: &Slot<C>) -> Option<&Table<C>> {
        // A retired chain grows no more: late keys are claimed where they are.
        if self.is_retired_end() {
            return None;
        }
        let next = if let Some(next) = self.next() {
            next
        } else if self.is_crowded() {
            self.next_or_link()?
        } else {
            return None;
        };
        // Whether or not this CAS wins, the caller probes again: the slot is now either
        // frozen (and the probe goes on to `next`) or claimed.
        let _ = slot.fp.compare_exchange(FREE, FROZEN_FP, Relaxed, Relaxed);
        Some(next)
    }

    fn migrate_chunk_len(&self) -> usize {
        MIGRATE_CHUNK.min(self.capacity())
    }

    /// Moves one chunk of this table into its next table, reaping expired cells instead
    /// of carrying them. `false` if there was no chunk left to hand out.
    fn migrate_chunk(&self, reap: &impl Fn(&C) -> bool) -> bool {
        let Some(next) = self.next() else {
            return false;
        };
        let len = self.migrate_chunk_len();
        let chunks = self.capacity() / len;
        let c = self.migrate_cursor.fetch_add(1, Relaxed);
        if c >= chunks {
            return false;
        }
        for slot in &self.slots[c * len..(c + 1) * len] {
            migrate_slot(slot, next, Some(reap));
        }
        if self.migrated_chunks.fetch_add(1, Relaxed) + 1 == chunks {
            self.migrated.store(true, Relaxed);
        }
        true
    }

    /// Reaps one chunk of slots and, at the end of a window, starts a shrink if the
    /// window says most of the table is dead.
    fn sweep_chunk(&self, reap: &impl Fn(&C) -> bool) {
        let len = SWEEP_CHUNK.min(self.capacity());
        let chunks = self.capacity() / len;
        let c = self.sweep_cursor.fetch_add(1, Relaxed) % chunks;
        let mut live = 0;
        for slot in &self.slots[c * len..(c + 1) * len] {
            let fp = slot.fp.load(Relaxed);
            if fp == FREE || fp == FROZEN_FP {
                continue;
            }
            if reap(&slot.cell) {
                self.live.fetch_sub(1, Relaxed);
            } else if !slot.cell.is_dead() {
                live += 1;
            }
        }
        let window = (self.capacity() / 16).max(len * 16).min(self.capacity());
        let slots = self.window_slots.fetch_add(len, Relaxed) + len;
        let seen_live = self.window_live.fetch_add(live, Relaxed) + live;
        if slots >= window {
            self.window_slots.store(0, Relaxed);
            self.window_live.store(0, Relaxed);
            let estimate = seen_live.saturating_mul(self.capacity()) / slots;
            // A sealed (retired) end keeps its seal: `get_or_init` then links nothing.
            if self.capacity() > MIN_CAPACITY && estimate.saturating_mul(8) < self.capacity() {
                let _ = self.next.get_or_init(|| Some(self.link_sized(estimate)));
            }
        }
    }
}

/// Copies a frozen slot's state into the table chain starting at `to`.
fn carry<C: Cell>(mut to: &Table<C>, fp: u64, word: C::Word) {
    loop {
        // The reloader finished every move before retiring: nothing is left to carry.
        if to.is_retired_end() && !matches!(to.probe(fp), Probe::Free(_)) {
            if let Probe::Found(slot) = to.probe(fp) {
                slot.cell.adopt(word);
            }
            return;
        }
        match to.probe(fp) {
            Probe::Found(slot) => {
                if slot.cell.adopt(word) {
                    return;
                }
                // Frozen while still empty: the state must go further on (at a sealed
                // end, the check above takes over on the next turn).
                if let Some(next) = to.next_or_link() {
                    to = next;
                }
            }
            Probe::Frozen => {
                if let Some(next) = to.next_or_link() {
                    to = next;
                }
            }
            Probe::Free(slot) => {
                if to.close_off(slot).is_some() {
                    continue;
                }
                // A lost claim race is resolved by probing again.
                if to.claim(slot, fp).is_ok() && slot.cell.adopt(word) {
                    return;
                }
            }
        }
    }
}

/// Freezes one slot and carries its state to `next`; with `reap`, an expired cell is
/// reaped first and so left behind.
fn migrate_slot<C: Cell>(slot: &Slot<C>, next: &Table<C>, reap: Option<&dyn Fn(&C) -> bool>) {
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
    if let Some(reap) = reap
        && reap(&slot.cell)
    {
        next.live.fetch_sub(1, Relaxed);
    }
    if let Some(word) = slot.cell.freeze() {
        carry(next, fp, word);
    }
}

/// What a new key may do (decided by the caller's `admit_new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Insert it.
    Track,
    /// Decide on a fresh state without storing it.
    Untracked,
}

/// The table of cells, with its hasher and live-key count.
pub(crate) struct CellTable<C: Cell> {
    current: ArcSwap<Table<C>>,
    hasher: RandomState,
    live: Arc<AtomicUsize>,
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
        CellTable {
            current: ArcSwap::from_pointee(Table::new(MIN_CAPACITY, live.clone())),
            hasher,
            live,
        }
    }

    pub(crate) fn hasher(&self) -> &RandomState {
        &self.hasher
    }

    /// Links no table after this call and finishes any resize, so every state sits in
    /// the chain's last table. Slots are frozen afterwards, by [`take`](Self::take) and
    /// [`drain`](Self::drain). O(table), on the reloader's thread.
    pub(crate) fn retire(&self) {
        let mut table = self.current.load_full();
        loop {
            // Seals the end of the chain, unless a table was linked first: then that one
            // is moved into and sealed in turn.
            let Some(next) = table.next.get_or_init(|| None).clone() else {
                break;
            };
            while table.migrate_chunk(&|_| false) {}
            // Chunks handed out to other threads are being moved: wait for them.
            while !table.migrated.load(Relaxed) {
                std::thread::yield_now();
            }
            self.publish(&table);
            table = next;
        }
    }

    fn last(&self) -> Arc<Table<C>> {
        let mut table = self.current.load_full();
        while let Some(next) = table.next().cloned() {
            table = next;
        }
        table
    }

    /// Freezes the slot of `fp` in a retired table (closing it if absent, so a late
    /// request cannot create it), and returns the state it held.
    pub(crate) fn take(&self, fp: u64) -> Option<C::Word> {
        let table = self.last();
        // A request that meets this frozen slot must also see that the chain is retired.
        fence(Release);
        loop {
            match table.probe(fp) {
                Probe::Found(slot) => return slot.cell.freeze(),
                Probe::Frozen => return None,
                Probe::Free(slot) => {
                    if slot
                        .fp
                        .compare_exchange(FREE, FROZEN_FP, Relaxed, Relaxed)
                        .is_ok()
                    {
                        return None;
                    }
                }
            }
        }
    }

    /// Freezes every slot of a retired table chain, handing each held state to `f`.
    pub(crate) fn drain(&self, mut f: impl FnMut(u64, C::Word)) {
        let mut table = self.current.load_full();
        fence(Release);
        loop {
            for slot in table.slots.iter() {
                let mut fp = slot.fp.load(Relaxed);
                if fp == FREE {
                    match slot.fp.compare_exchange(FREE, FROZEN_FP, Relaxed, Relaxed) {
                        Ok(_) => continue,
                        Err(actual) => fp = actual,
                    }
                }
                if fp == FROZEN_FP {
                    continue;
                }
                if let Some(word) = slot.cell.freeze() {
                    f(fp, word);
                }
            }
            match table.next().cloned() {
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
    /// key is new (as `admit_new` decides, given the live count) and reviving it if it was
    /// reclaimed. A new key first does one bounded step of upkeep (a migration or a sweep
    /// chunk, reaping with `reap`).
    ///
    /// On a retired table, gives `Retired` (as `E`) where the key's slot is frozen.
    #[cfg(test)]
    pub(crate) fn with_cell<K, R, E>(
        &self,
        key: &K,
        reap: impl Fn(&C) -> bool,
        admit_new: impl FnMut(usize) -> Result<Admit, E>,
        f: impl FnMut(&C) -> Option<R>,
    ) -> Result<R, E>
    where
        K: Hash + ?Sized,
        E: From<Retired>,
    {
        self.with_fp(self.fingerprint(key), reap, admit_new, f)
    }

    /// [`with_cell`](Self::with_cell) for a fingerprint already computed.
    #[inline]
    pub(crate) fn with_fp<R, E>(
        &self,
        fp: u64,
        reap: impl Fn(&C) -> bool,
        mut admit_new: impl FnMut(usize) -> Result<Admit, E>,
        mut f: impl FnMut(&C) -> Option<R>,
    ) -> Result<R, E>
    where
        E: From<Retired>,
    {
        let guard = self.current.load();
        let mut table: &Table<C> = &guard;
        let mut room_checked = false;
        loop {
            let slot = match table.probe(fp) {
                Probe::Found(slot) => slot,
                Probe::Frozen => {
                    fence(Acquire);
                    match table.next_or_link() {
                        Some(next) => table = next,
                        None => return Err(Retired.into()),
                    }
                    continue;
                }
                Probe::Free(slot) => {
                    if let Some(next) = table.close_off(slot) {
                        // Probe again: the slot is frozen now, or the key claimed it.
                        let _ = next;
                        continue;
                    }
                    // Only a key that is not present anywhere may be refused for room.
                    if !room_checked {
                        room_checked = true;
                        if !self.contains_fp(table, fp) {
                            self.upkeep(&guard, &reap);
                            if admit_new(self.live.load(Relaxed))? == Admit::Untracked {
                                let fresh = C::default();
                                loop {
                                    if let Some(r) = f(&fresh) {
                                        return Ok(r);
                                    }
                                }
                            }
                        }
                    }
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
                // Carry this slot (idempotent), then follow it.
                let Some(next) = table.next_or_link() else {
                    return Err(Retired.into());
                };
                migrate_slot(slot, next, None);
                table = next;
            } else if slot.cell.revive() {
                self.live.fetch_add(1, Relaxed);
            }
        }
    }

    /// One bounded step of upkeep on the current table: move a chunk if it is being
    /// resized (making the next table current once all are moved), else sweep a chunk.
    fn upkeep(&self, current: &Arc<Table<C>>, reap: &impl Fn(&C) -> bool) {
        if current.next().is_some() {
            current.migrate_chunk(reap);
            self.publish(current);
        } else {
            current.sweep_chunk(reap);
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
            match table.next() {
                Some(next) => table = next,
                None => return false,
            }
        }
    }

    /// Makes the newest fully migrated table current.
    fn publish(&self, seen: &Arc<Table<C>>) {
        let mut cur = seen.clone();
        while cur.migrated.load(Relaxed) {
            let Some(next) = cur.next().cloned() else {
                break;
            };
            let prev = self.current.compare_and_swap(&cur, next.clone());
            if !Arc::ptr_eq(&prev, &cur) {
                break;
            }
            cur = next;
        }
    }

    /// Finishes any resize this thread can, then reaps every expired cell of the table
    /// chain. O(table): for explicit calls, never run by checks.
    pub(crate) fn reclaim_all(&self, reap: impl Fn(&C) -> bool) {
        loop {
            let current = self.current.load_full();
            if current.next().is_none() {
                break;
            }
            while current.migrate_chunk(&reap) {}
            self.publish(&current);
            if Arc::ptr_eq(&self.current.load_full(), &current) {
                // Another thread still moves a chunk; sweep the chain as it is.
                break;
            }
        }
        let current = self.current.load_full();
        let mut table: &Table<C> = &current;
        loop {
            for slot in table.slots.iter() {
                let fp = slot.fp.load(Relaxed);
                if fp != FREE && fp != FROZEN_FP && reap(&slot.cell) {
                    self.live.fetch_sub(1, Relaxed);
                }
            }
            match table.next() {
                Some(next) => table = next,
                None => break,
            }
        }
    }

    /// Keys with a live (non-tombstone) cell, approximately under concurrency.
    pub(crate) fn len(&self) -> usize {
        self.live.load(Relaxed)
    }

    /// Slots allocated by the current table chain (for memory figures).
    pub(crate) fn slots(&self) -> usize {
        let current = self.current.load();
        let mut table: &Table<C> = &current;
        let mut n = table.capacity();
        while let Some(next) = table.next() {
            n += next.capacity();
            table = next;
        }
        n
    }
}

impl<C: Cell> Drop for Table<C> {
    fn drop(&mut self) {
        #[cfg(not(tower_ratelimit_loom))]
        if self.slots.len() >= BACKGROUND_FREE_SLOTS {
            // Unmapping hundreds of megabytes takes milliseconds: not on a request.
            let slots = std::mem::take(&mut self.slots);
            let _ = std::thread::Builder::new()
                .name("tower-ratelimit-free".into())
                .spawn(move || drop(slots));
        }
    }
}

/// Table allocation.
///
/// Zeroed memory from the allocator is mapped lazily by the OS, so even a table of
/// millions of slots is allocated in O(1) and its pages are touched only as keys land
/// in them; initialising the slots one by one would stall the insert that links the
/// table for as long as it takes to write them all (hundreds of milliseconds at 10 M
/// keys). This is the crate's only `unsafe`.
#[cfg(not(tower_ratelimit_loom))]
#[allow(unsafe_code)]
mod alloc {
    use std::alloc::{Layout, alloc_zeroed, handle_alloc_error};

    use super::Slot;
    use crate::state::Cell;

    pub(super) fn slots<C: Cell>(n: usize) -> Box<[Slot<C>]> {
        assert!(n > 0, "tables have at least one slot");
        let layout = Layout::array::<Slot<C>>(n).unwrap_or_else(|_| {
            handle_alloc_error(Layout::new::<Slot<C>>());
        });
        // SAFETY: `layout` has a non-zero size (n > 0 and slots are not zero-sized). The
        // memory is zeroed, and a `Slot<C>` (an `AtomicU64` and a `C: Cell`, whose
        // supertrait `ZeroIsEmpty` promises it) is valid when zeroed. The pointer comes from the global
        // allocator with the layout of `[Slot<C>; n]`, which is what `Box<[Slot<C>]>`
        // frees it with.
        unsafe {
            let p = alloc_zeroed(layout).cast::<Slot<C>>();
            if p.is_null() {
                handle_alloc_error(layout);
            }
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n))
        }
    }
}

/// Under loom, atomics carry model state and must be built one by one.
#[cfg(tower_ratelimit_loom)]
mod alloc {
    use super::Slot;
    use crate::state::Cell;

    pub(super) fn slots<C: Cell>(n: usize) -> Box<[Slot<C>]> {
        (0..n).map(|_| Slot::default()).collect()
    }
}

#[cfg(all(test, not(tower_ratelimit_loom)))]
mod tests {
    use super::*;
    use crate::Quota;
    use crate::quota::Quotas;
    use crate::state::Cell64;

    /// Live cells and distinct fingerprints actually in the current table chain.
    fn census(t: &CellTable<Cell64>) -> (usize, usize, usize) {
        let current = t.current.load_full();
        let mut table: &Table<Cell64> = &current;
        let mut live = 0;
        let mut fps = std::collections::HashSet::new();
        let mut dups = 0;
        loop {
            for slot in table.slots.iter() {
                let fp = slot.fp.load(Relaxed);
                if fp != FREE && fp != FROZEN_FP && !slot.cell.is_frozen() {
                    if !fps.insert(fp) {
                        dups += 1;
                    }
                    if !slot.cell.is_dead() {
                        live += 1;
                    }
                }
            }
            match table.next() {
                Some(next) => table = next,
                None => break,
            }
        }
        (live, fps.len(), dups)
    }

    fn track(_: usize) -> Result<Admit, Retired> {
        Ok(Admit::Track)
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
                            |c| c.try_reap(&set, now),
                            track,
                            |c| c.check(&set, now, 1),
                        );
                        if i % 5_000 == 0 {
                            table.reclaim_all(|c| c.try_reap(&set, now));
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no panic");
        }
        let (live, distinct, dups) = census(&table);
        assert_eq!(dups, 0, "a fingerprint claimed twice in the chain");
        assert_eq!(table.len(), live, "live count (distinct {distinct})");
    }

    #[test]
    fn grows_and_shrinks_in_bounded_steps() {
        let set = Quotas::from(Quota::per_second(1).expect("valid"));
        let table = CellTable::<Cell64>::new();
        let now = 1;
        for key in 0..100_000u64 {
            let r = table.with_cell(
                &key,
                |c| c.try_reap(&set, now),
                track,
                |c| c.check(&set, now, 1),
            );
            assert!(r.expect("tracked").denied.is_none());
        }
        assert_eq!(table.len(), 100_000);
        let grown = table.slots();
        assert!(grown >= 131_072, "{grown} slots for 100k keys");
        // Every key expires; new keys' upkeep alone must shrink the table.
        let later = 10_000_000_000;
        for key in 1_000_000..1_040_000u64 {
            let _ = table.with_cell(
                &key,
                |c| c.try_reap(&set, later),
                track,
                |c| c.check(&set, later, 1),
            );
        }
        let shrunk = table.slots();
        assert!(
            shrunk * 2 <= grown,
            "{shrunk} slots after expiry, {grown} at the peak"
        );
        assert!(table.len() >= 40_000, "the new keys are live");
        table.reclaim_all(|c| c.try_reap(&set, later + 10_000_000_000));
        assert_eq!(table.len(), 0);
    }
}

/// Model checks of the resize protocol on tiny tables: every interleaving of an insert
/// racing the move of its slot.
/// Run with `RUSTFLAGS="--cfg tower_ratelimit_loom" cargo test --release --lib loom`.
#[cfg(all(test, tower_ratelimit_loom))]
mod loom_tests {
    use super::*;
    use crate::Quota;
    use crate::quota::Quotas;
    use crate::state::Cell64;
    use loom::thread;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// An old table of one chunk with its next table linked (so no `OnceLock` is
    /// contended inside the model).
    fn resizing() -> Arc<Table<Cell64>> {
        let live = Arc::new(AtomicUsize::new(0));
        let old = Arc::new(Table::new(MIN_CAPACITY, live.clone()));
        old.next_or_link();
        old
    }

    /// What a check does, from the old table on (the `with_cell` walk, without room
    /// checks): admitted or not.
    fn check_from(mut table: &Table<Cell64>, fp: u64, quotas: &Quotas) -> bool {
        loop {
            let slot = match table.probe(fp) {
                Probe::Found(slot) => slot,
                Probe::Frozen => {
                    table = table.next().expect("linked");
                    continue;
                }
                Probe::Free(slot) => {
                    if table.close_off(slot).is_some() {
                        continue;
                    }
                    match table.claim(slot, fp) {
                        Ok(_) => slot,
                        Err(()) => continue,
                    }
                }
            };
            if let Some(raw) = slot.cell.check(quotas, 1, 1) {
                return raw.denied.is_none();
            }
            assert!(slot.cell.is_frozen(), "never reaped in this model");
            let next = table.next().expect("linked");
            migrate_slot(slot, next, None);
            table = next;
        }
    }

    /// The key's cells in the chain that are not frozen: exactly one after the move.
    fn cells_of(old: &Table<Cell64>, fp: u64) -> Vec<u64> {
        let next = old.next().expect("linked");
        [old, &**next]
            .iter()
            .flat_map(|t| t.slots.iter())
            .filter(|s| s.fp.load(Relaxed) == fp && !s.cell.is_frozen())
            .map(|s| s.cell.freeze().expect("alive"))
            .collect()
    }

    /// Two checks of a key the old table has never seen race the move of its chunk: both
    /// land in one cell (the burst of 2 is spent exactly once), never two.
    #[test]
    fn new_key_inserts_race_the_move() {
        model(|| {
            let old = resizing();
            let quotas = Arc::new(Quotas::from(Quota::per_second(2).expect("valid")));
            let fp = 5;
            let checkers: Vec<_> = (0..2)
                .map(|_| {
                    let (old, quotas) = (old.clone(), quotas.clone());
                    thread::spawn(move || check_from(&old, fp, &quotas))
                })
                .collect();
            // The migrator moves the chunk holding the key's home slot.
            let never = |_: &Cell64| false;
            assert!(old.migrate_chunk(&never));
            for h in checkers {
                assert!(h.join().expect("no panic"), "the burst admits both");
            }
            assert!(old.migrated.load(Relaxed));
            // The only unfrozen cell of the key holds both admissions: a third is denied.
            let next = old.next().expect("linked");
            assert!(!check_from(next, fp, &quotas), "burst spent once");
            assert_eq!(cells_of(&old, fp).len(), 1, "one cell per key");
        });
    }

    /// A key admitted in the old table before the move, checked again during it: the
    /// carried state keeps the first admission (no fresh burst in the new table).
    #[test]
    fn carried_state_is_never_lost() {
        model(|| {
            let old = resizing();
            let quotas = Arc::new(Quotas::from(Quota::per_second(2).expect("valid")));
            let fp = 9;
            // Admitted once before the resize began: claimed in place.
            let slot = match old.probe(fp) {
                Probe::Free(slot) => slot,
                _ => unreachable!("empty table"),
            };
            assert_eq!(old.claim(slot, fp), Ok(true));
            assert!(
                slot.cell
                    .check(&quotas, 1, 1)
                    .expect("alive")
                    .denied
                    .is_none()
            );
            let checker = {
                let (old, quotas) = (old.clone(), quotas.clone());
                thread::spawn(move || check_from(&old, fp, &quotas))
            };
            let never = |_: &Cell64| false;
            assert!(old.migrate_chunk(&never));
            assert!(checker.join().expect("no panic"), "second of the burst");
            let next = old.next().expect("linked");
            assert!(!check_from(next, fp, &quotas), "third is denied");
        });
    }
}
