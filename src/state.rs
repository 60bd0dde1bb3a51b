//! Lock-free per-key state: one atomic word per key, updated by compare-and-swap.
//!
//! # Why one word
//!
//! A quota set must be all-or-nothing: admitted only if every quota admits, consuming
//! from all or none. With one atomic per quota, two requests could each win some quotas
//! and lose others, and undoing a half-applied update races with the requests that saw
//! it, so denials would no longer be explainable by any order of the requests. Keeping
//! the whole set's state in a single word makes every decision one CAS: the linearisation
//! point is exact and a denied request never writes.
//!
//! * One quota: an `AtomicU64` holding the TAT in nanoseconds.
//! * Two to four quotas: an `AtomicU128` (cmpxchg16b on x86-64, casp/ldxp on AArch64)
//!   holding a 64-bit *base* (the time of the latest admission) and, packed into the other
//!   64 bits, each quota's level `TAT_i - base`, which GCRA bounds by `burst_i * T_i`. The
//!   set picks the finest time unit in which those levels fit (see
//!   [`Quotas::resolution`](crate::Quotas::resolution)).
//!
//! Packing is exact, not an approximation: after any admission every TAT is at least the
//! base (it is `max(TAT, now) + cost*T > now = base`, or grows further when a slower
//! thread's `now` is behind the base), so decoding `base + level` gives back precisely the
//! TATs a plain per-quota model would hold. The property tests check this.
//!
//! A zero word is the empty state (every TAT at 0, which is in the past). Valid words stay
//! below 2^127 (2^63 for one quota), which leaves room for two markers: `DEAD`, a
//! tombstone written by reclamation (the state had expired, so reviving it as zero is
//! exact), and the `FROZEN` bit, set while a keyed table migrates the cell to a larger
//! table; a frozen cell is never updated again.

use std::sync::atomic::Ordering::Relaxed;

use atomics::{AtomicU64, AtomicU128};

use crate::gcra::{Conformance, decide, decide_one};

// Reservations (booking a future slot) for client-side pacing; additive, see the file.
#[cfg(feature = "client")]
pub(crate) mod reserve;
use crate::quota::{MAX_QUOTAS, Params, Quotas};

/// What a cell reports for one check: TATs after it, and the denial if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw {
    pub(crate) tats: [u64; MAX_QUOTAS],
    pub(crate) denied: Option<(usize, u64)>,
}

/// Cells whose all-zero bytes are a valid, empty cell, so that a table of them can be
/// allocated zeroed (lazily mapped by the OS) instead of written slot by slot.
///
/// # Safety
///
/// Implement only for types made of integer atomics, for which zero bytes are a valid
/// value and the empty state.
#[cfg(not(tower_ratelimit_loom))]
#[allow(unsafe_code)]
pub(crate) unsafe trait ZeroIsEmpty {}

// SAFETY: `Cell64` is an `AtomicU64`; zero is a valid value and the empty state.
#[cfg(not(tower_ratelimit_loom))]
#[allow(unsafe_code)]
unsafe impl ZeroIsEmpty for Cell64 {}

// SAFETY: `Cell128` is a `portable_atomic::AtomicU128` (an `UnsafeCell<u128>`); zero is
// a valid value and the empty state.
#[cfg(not(tower_ratelimit_loom))]
#[allow(unsafe_code)]
unsafe impl ZeroIsEmpty for Cell128 {}

/// Under loom, atomics carry model state and tables are built slot by slot.
#[cfg(tower_ratelimit_loom)]
pub(crate) trait ZeroIsEmpty {}
#[cfg(tower_ratelimit_loom)]
impl<T> ZeroIsEmpty for T {}

/// One key's state.
pub(crate) trait Cell: ZeroIsEmpty + Default + Send + Sync + 'static {
    /// Decides and, if admitted, stores. `None` if the cell is a tombstone.
    fn check(&self, quotas: &Quotas, now: u64, cost: u64) -> Option<Raw>;
    /// Turns an expired cell (every TAT at or before `now`) into a tombstone. Never an
    /// empty one: a slot is claimed empty and then filled (checked, or given a carried
    /// state), and reaping it in between would drop the state being carried in.
    fn try_reap(&self, quotas: &Quotas, now: u64) -> bool;
    /// Whether the cell is a tombstone (and not frozen).
    fn is_dead(&self) -> bool;

    /// The raw state word.
    type Word: Copy + Send + Sync;
    /// Sets the frozen bit; returns the state to carry over, `None` if it was dead.
    fn freeze(&self) -> Option<Self::Word>;
    /// Whether the frozen bit is set.
    fn is_frozen(&self) -> bool;
    /// Turns a tombstone back into the empty state (exact: it had expired).
    fn revive(&self) -> bool;
    /// Takes over a migrated state, unless this cell already holds one (a copy that got
    /// here first, possibly reclaimed since). `false` only if the cell was frozen while
    /// still empty: the state must then be carried further on.
    fn adopt(&self, word: Self::Word) -> bool;

    /// The TATs a state word holds, in the set's unit.
    fn decode(quotas: &Quotas, word: Self::Word) -> [u64; MAX_QUOTAS];
    /// The state word of `tats`, each at least `now` and at most its quota's capacity
    /// above it (as [`carry_over`](crate::gcra::carry_over) gives them).
    fn encode(quotas: &Quotas, tats: &[u64; MAX_QUOTAS], now: u64) -> Self::Word;
}

/// State of a single-quota set: the TAT.
#[derive(Debug, Default)]
pub(crate) struct Cell64(AtomicU64);

const DEAD64: u64 = u64::MAX >> 1;
const FROZEN64: u64 = 1 << 63;

impl Cell for Cell64 {
    #[inline]
    fn check(&self, quotas: &Quotas, now: u64, cost: u64) -> Option<Raw> {
        let p = &quotas.params[0];
        let mut cur = self.0.load(Relaxed);
        loop {
            if cur >= DEAD64 {
                return None;
            }
            match decide_one(p, now, cur, cost) {
                Err(wait) => {
                    return Some(Raw {
                        tats: [cur, 0, 0, 0],
                        denied: Some((0, wait)),
                    });
                }
                Ok(next) => match self.0.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                    Ok(_) => {
                        return Some(Raw {
                            tats: [next, 0, 0, 0],
                            denied: None,
                        });
                    }
                    Err(actual) => cur = actual,
                },
            }
        }
    }

    fn try_reap(&self, _: &Quotas, now: u64) -> bool {
        let cur = self.0.load(Relaxed);
        // An empty cell was just claimed (or revived) by a request about to use it.
        cur != 0
            && cur < DEAD64
            && cur <= now
            && self
                .0
                .compare_exchange(cur, DEAD64, Relaxed, Relaxed)
                .is_ok()
    }

    fn is_dead(&self) -> bool {
        self.0.load(Relaxed) == DEAD64
    }

    type Word = u64;

    fn freeze(&self) -> Option<u64> {
        let prev = self.0.fetch_or(FROZEN64, Relaxed) & !FROZEN64;
        (prev != DEAD64).then_some(prev)
    }

    fn is_frozen(&self) -> bool {
        self.0.load(Relaxed) & FROZEN64 != 0
    }

    fn revive(&self) -> bool {
        self.0.compare_exchange(DEAD64, 0, Relaxed, Relaxed).is_ok()
    }

    fn adopt(&self, word: u64) -> bool {
        match self.0.compare_exchange(0, word, Relaxed, Relaxed) {
            Ok(_) => true,
            Err(actual) => actual != FROZEN64,
        }
    }

    fn decode(_: &Quotas, word: u64) -> [u64; MAX_QUOTAS] {
        [word, 0, 0, 0]
    }

    fn encode(_: &Quotas, tats: &[u64; MAX_QUOTAS], _: u64) -> u64 {
        tats[0]
    }
}

/// State of a multi-quota set: `base << 64 | packed levels`.
#[derive(Debug, Default)]
pub(crate) struct Cell128(AtomicU128);

const DEAD128: u128 = u128::MAX >> 1;
const FROZEN128: u128 = 1 << 127;

#[inline]
fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

#[inline]
fn unpack(params: &[Params], word: u128) -> (u64, [u64; MAX_QUOTAS]) {
    let base = (word >> 64) as u64;
    let levels = word as u64;
    let mut tats = [0u64; MAX_QUOTAS];
    for (t, p) in tats.iter_mut().zip(params) {
        *t = base + ((levels >> p.offset) & mask(p.width));
    }
    (base, tats)
}

#[inline]
fn pack(params: &[Params], base: u64, tats: &[u64; MAX_QUOTAS]) -> u128 {
    let mut levels = 0u64;
    for (t, p) in tats.iter().zip(params) {
        let level = t - base;
        debug_assert!(level <= p.cap, "level fits its field by the GCRA bound");
        levels |= level << p.offset;
    }
    (u128::from(base) << 64) | u128::from(levels)
}

impl Cell for Cell128 {
    #[inline]
    fn check(&self, quotas: &Quotas, now: u64, cost: u64) -> Option<Raw> {
        let params = quotas.params();
        let mut cur = self.0.load(Relaxed);
        loop {
            if cur >= DEAD128 {
                return None;
            }
            let (base, tats) = unpack(params, cur);
            match decide(params, now, &tats[..params.len()], cost) {
                Conformance::Deny { quota, wait } => {
                    return Some(Raw {
                        tats,
                        denied: Some((quota, wait)),
                    });
                }
                Conformance::Admit(next) => {
                    // The base only moves forward, so a thread whose clock read lags
                    // cannot pull other quotas' levels out of their fields.
                    let word = pack(params, base.max(now), &next);
                    match self.0.compare_exchange_weak(cur, word, Relaxed, Relaxed) {
                        Ok(_) => {
                            return Some(Raw {
                                tats: next,
                                denied: None,
                            });
                        }
                        Err(actual) => cur = actual,
                    }
                }
            }
        }
    }

    fn try_reap(&self, quotas: &Quotas, now: u64) -> bool {
        let cur = self.0.load(Relaxed);
        // An empty cell was just claimed (or revived) by a request about to use it.
        if cur == 0 || cur >= DEAD128 {
            return false;
        }
        let params = quotas.params();
        let (_, tats) = unpack(params, cur);
        tats[..params.len()].iter().all(|&t| t <= now)
            && self
                .0
                .compare_exchange(cur, DEAD128, Relaxed, Relaxed)
                .is_ok()
    }

    fn is_dead(&self) -> bool {
        self.0.load(Relaxed) == DEAD128
    }

    type Word = u128;

    fn freeze(&self) -> Option<u128> {
        let prev = self.0.fetch_or(FROZEN128, Relaxed) & !FROZEN128;
        (prev != DEAD128).then_some(prev)
    }

    fn is_frozen(&self) -> bool {
        self.0.load(Relaxed) & FROZEN128 != 0
    }

    fn revive(&self) -> bool {
        self.0
            .compare_exchange(DEAD128, 0, Relaxed, Relaxed)
            .is_ok()
    }

    fn adopt(&self, word: u128) -> bool {
        match self.0.compare_exchange(0, word, Relaxed, Relaxed) {
            Ok(_) => true,
            Err(actual) => actual != FROZEN128,
        }
    }

    fn decode(quotas: &Quotas, word: u128) -> [u64; MAX_QUOTAS] {
        unpack(quotas.params(), word).1
    }

    fn encode(quotas: &Quotas, tats: &[u64; MAX_QUOTAS], now: u64) -> u128 {
        pack(quotas.params(), now, tats)
    }
}

#[cfg(not(tower_ratelimit_loom))]
pub(crate) mod atomics {
    pub(crate) use portable_atomic::AtomicU128;
    pub(crate) use std::sync::atomic::AtomicU64;
}

/// Under the loom model checker (`RUSTFLAGS="--cfg tower_ratelimit_loom"`), atomics are
/// loom's, so every interleaving of the CAS loops below can be explored.
#[cfg(tower_ratelimit_loom)]
pub(crate) mod atomics {
    pub(crate) use loom::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering;

    /// loom has no 128-bit atomic; a mutex-guarded word models one, each operation being
    /// one indivisible step as with cmpxchg16b.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicU128(loom::sync::Mutex<u128>);

    impl AtomicU128 {
        pub(crate) fn load(&self, _: Ordering) -> u128 {
            *self.0.lock().expect("not poisoned")
        }
        pub(crate) fn compare_exchange(
            &self,
            current: u128,
            new: u128,
            _: Ordering,
            _: Ordering,
        ) -> Result<u128, u128> {
            let mut v = self.0.lock().expect("not poisoned");
            if *v == current {
                *v = new;
                Ok(current)
            } else {
                Err(*v)
            }
        }
        pub(crate) fn compare_exchange_weak(
            &self,
            current: u128,
            new: u128,
            s: Ordering,
            f: Ordering,
        ) -> Result<u128, u128> {
            self.compare_exchange(current, new, s, f)
        }
        pub(crate) fn fetch_or(&self, bits: u128, _: Ordering) -> u128 {
            let mut v = self.0.lock().expect("not poisoned");
            let prev = *v;
            *v |= bits;
            prev
        }
    }
}

/// Whether 128-bit atomics are native (lock-free) on this machine.
#[cfg(all(test, not(tower_ratelimit_loom)))]
pub(crate) fn wide_is_lock_free() -> bool {
    AtomicU128::is_lock_free()
}

#[cfg(all(test, not(tower_ratelimit_loom)))]
mod tests {
    use super::*;
    use crate::Quota;

    #[test]
    fn pack_roundtrip() {
        let set = Quotas::claid();
        let p = set.params();
        let tats = [1000 + p[0].cap, 1000 + p[1].cap, 0, 0];
        let (base, back) = unpack(p, pack(p, 1000, &tats));
        assert_eq!(base, 1000);
        assert_eq!(back, tats);
    }

    #[test]
    fn wide_atomics_are_native_here() {
        // On x86-64 and AArch64 the multi-quota path must not fall back to locks.
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert!(wide_is_lock_free());
        }
    }

    #[test]
    fn reap_only_expired() {
        let set = Quotas::from(Quota::per_second(1).expect("valid"));
        let c = Cell64::default();
        assert!(c.check(&set, 10, 1).is_some());
        assert!(!c.try_reap(&set, 11), "still holds a TAT in the future");
        assert!(c.try_reap(&set, 10 + 1_000_000_000));
        assert!(c.is_dead());
        assert!(
            c.check(&set, 10, 1).is_none(),
            "a tombstone is never updated"
        );
    }
}

/// Model checks: every interleaving of two or three threads on one cell.
/// Run with `RUSTFLAGS="--cfg tower_ratelimit_loom" cargo test --release --lib loom`.
#[cfg(all(test, tower_ratelimit_loom))]
mod loom_tests {
    use super::*;
    use crate::Quota;
    use loom::sync::Arc;
    use loom::thread;

    fn one() -> Quotas {
        Quotas::from(Quota::per_second(2).expect("valid"))
    }

    fn set() -> Quotas {
        Quotas::new([
            Quota::per_second(2).expect("valid"),
            Quota::per_minute(3).expect("valid"),
        ])
        .expect("fits")
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        // Bounded preemptions keep the 128-bit model tractable; CAS races need only one
        // or two preemptions to show.
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// `threads` threads race for the burst at a frozen instant: exactly `burst` win, and
    /// the stored state is exactly that many admissions' worth.
    fn exact_burst<C: Cell>(quotas: Quotas, threads: usize, burst: usize) {
        model(move || {
            let cell = Arc::new(C::default());
            let quotas = Arc::new(quotas.clone());
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (cell, quotas) = (cell.clone(), quotas.clone());
                    thread::spawn(move || {
                        let raw = cell.check(&quotas, 1, 1).expect("never dead");
                        raw.denied.is_none()
                    })
                })
                .collect();
            let admitted = handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .filter(|&ok| ok)
                .count();
            assert_eq!(admitted, burst);
            let raw = cell.check(&quotas, 1, 1).expect("never dead");
            assert!(raw.denied.is_some(), "the burst is spent");
        });
    }

    #[test]
    fn exact_burst_one_quota() {
        exact_burst::<Cell64>(one(), 3, 2);
    }

    #[test]
    fn exact_burst_quota_set() {
        let set = Quotas::new([
            Quota::per_second(1).expect("valid"),
            Quota::per_minute(3).expect("valid"),
        ])
        .expect("fits");
        exact_burst::<Cell128>(set, 2, 1);
    }

    /// A reaper and a checker on an expired cell: whatever the order, the checker is
    /// admitted from a state equivalent to empty, and a reaped cell is never updated.
    fn reap_vs_check<C: Cell>(quotas: Quotas) {
        model(move || {
            let cell = Arc::new(C::default());
            let quotas = Arc::new(quotas.clone());
            assert!(cell.check(&quotas, 1, 1).expect("fresh").denied.is_none());
            let later = 10_000_000_000; // every TAT has passed
            let reaper = {
                let (cell, quotas) = (cell.clone(), quotas.clone());
                thread::spawn(move || cell.try_reap(&quotas, later))
            };
            let checker = {
                let (cell, quotas) = (cell.clone(), quotas.clone());
                thread::spawn(move || {
                    loop {
                        match cell.check(&quotas, later, 2) {
                            Some(raw) => return raw.denied.is_none(),
                            None => {
                                cell.revive();
                            }
                        }
                    }
                })
            };
            let _reaped = reaper.join().expect("no panic");
            assert!(
                checker.join().expect("no panic"),
                "a full burst is available"
            );
            // The checker's admission is recorded: one more cost-1 request is denied.
            let raw = cell.check(&quotas, later, 1).expect("alive");
            assert!(raw.denied.is_some());
        });
    }

    #[test]
    fn reap_vs_check_one_quota() {
        reap_vs_check::<Cell64>(one());
    }

    #[test]
    fn reap_vs_check_quota_set() {
        reap_vs_check::<Cell128>(set());
    }

    /// Freezing (for migration) races a checker: every admission happens either before
    /// the freeze (and is in the carried state) or is retried elsewhere, never lost.
    #[test]
    fn freeze_vs_check() {
        model(|| {
            let cell = Arc::new(Cell64::default());
            let quotas = Arc::new(one());
            let checker = {
                let (cell, quotas) = (cell.clone(), quotas.clone());
                thread::spawn(move || cell.check(&quotas, 1, 1).map(|r| r.denied.is_none()))
            };
            let carried = cell.freeze();
            let admitted_here = checker.join().expect("no panic");
            let carried = carried.expect("not dead");
            match admitted_here {
                // Admitted before the freeze: the carried state includes it.
                Some(true) => assert!(carried > 0),
                // Saw the frozen cell: nothing was written, the carried state is empty.
                None => assert_eq!(carried, 0),
                Some(false) => unreachable!("a fresh cell admits"),
            }
            assert!(
                cell.check(&quotas, 1, 1).is_none(),
                "frozen cells stay frozen"
            );
        });
    }
}
