//! Reservations: booking a slot in the future instead of being denied (client pacing).
//!
//! # The rule
//!
//! A reservation of `cost` at `now` is the check path evaluated at the *admission time*
//! `a`, the earliest `a >= now` at which [`decide`] admits the request against the
//! current TATs: `a = now + wait`, where `wait` is the longest wait a denial at `now`
//! would report. At `a` every quota admits (a quota binding at `now` has
//! `max(TAT, now) + cost*T - cap = a <= TAT`, so it is exactly full at `a`; a quota whose
//! TAT is before `a` takes `cost*T <= cap`), so the stored result is
//! `TAT_i := max(TAT_i, a) + cost*T_i` in one CAS over the whole word, all or nothing,
//! as for `check`. The caller then sleeps until `a`. Bookings are served in booking order
//! (each later booking finds the TATs at least as high), and no caller is woken only to
//! be denied again.
//!
//! The packed state stays exact: the base moves to `max(base, a)`, and every new TAT is
//! above `a` and within `cap` of it, so every level fits its field.
//!
//! # Giving a reservation back
//!
//! A booking dropped before it is used may return its `cost*T_i` to every quota, but only
//! when that cannot let anyone be admitted earlier than the quotas allow. Model the live
//! bookings (and checks) as GCRA decisions at their admission times `a_k`, in booking
//! order; the store is safe while each stored TAT is at least the TAT that model gives.
//! The model's TAT is `max(TAT_0 + sum c_j*T, max_k (a_k + sum_{j>=k} c_j*T))`. Removing
//! booking `m` lowers every term with `k <= m` by exactly `c_m*T`, and leaves the terms of
//! later bookings `k > m` as they were. Each of those is at most `base + S` (the base is
//! the latest admission time ever stored; `S` the cost booked after `m`), while the
//! stored TAT is at least `a_m + c_m*T + S`. So subtracting `c_m*T` is safe whenever
//! `base <= a_m`: nothing booked after `m` is admitted later than `m` was to be.
//!
//! Otherwise the slot lapses unused. It must: with burst 1, bookings `m` at `a` and `k` at
//! `a + T`, giving `m` back would let a third caller book at `a + T` beside `k`, two
//! requests in one emission interval. Lapsed slots cost throughput, never correctness;
//! the usual cancellations (a timed-out tail of the queue, a dropped burst sharing one
//! admission time) are given back.

use std::sync::atomic::Ordering::Relaxed;

use super::{Cell128, DEAD128, pack, unpack};
use crate::gcra::{Conformance, decide};
use crate::quota::{MAX_QUOTAS, Quotas};

/// A booked slot: what its owner needs to give it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Booking {
    /// Admission time, in the set's unit.
    pub(crate) at: u64,
    /// The booking's cost.
    pub(crate) cost: u64,
}

/// Why a reservation was not booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotBooked {
    /// The wait (in units) exceeds the caller's limit; nothing was stored.
    TooLong(u64),
    /// The cell is a tombstone (being reclaimed); retry on a fresh cell.
    Dead,
}

/// What one step of an [`Cell128::update`] loop decided.
enum Step<R> {
    /// Store this base and these TATs, then return `R`.
    Write(u64, [u64; MAX_QUOTAS], R),
    /// Return `R` without writing.
    Done(R),
}

impl Cell128 {
    /// The CAS loop every operation here shares: decode the word, let `f` decide, and
    /// store its result all at once. `None` if the cell is a tombstone.
    fn update<R>(
        &self,
        quotas: &Quotas,
        mut f: impl FnMut(u64, [u64; MAX_QUOTAS]) -> Step<R>,
    ) -> Option<R> {
        let params = quotas.params();
        let mut cur = self.0.load(Relaxed);
        loop {
            if cur >= DEAD128 {
                return None;
            }
            let (base, tats) = unpack(params, cur);
            let (base, next, r) = match f(base, tats) {
                Step::Done(r) => return Some(r),
                Step::Write(base, next, r) => (base, next, r),
            };
            match self
                .0
                .compare_exchange_weak(cur, pack(params, base, &next), Relaxed, Relaxed)
            {
                Ok(_) => return Some(r),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Books `cost` at the earliest admission time `>= now`, unless the wait exceeds
    /// `max_wait` units. `cost` must be in `1..=min_burst` (the caller checks).
    pub(crate) fn reserve(
        &self,
        quotas: &Quotas,
        now: u64,
        cost: u64,
        max_wait: u64,
    ) -> Result<Booking, NotBooked> {
        let params = quotas.params();
        let booked = self.update(quotas, |base, tats| {
            let tats = &tats[..params.len()];
            let (at, next) = match decide(params, now, tats, cost) {
                Conformance::Admit(next) => (now, next),
                Conformance::Deny { wait, .. } if wait > max_wait => {
                    return Step::Done(Err(NotBooked::TooLong(wait)));
                }
                Conformance::Deny { wait, .. } => match decide(params, now + wait, tats, cost) {
                    Conformance::Admit(next) => (now + wait, next),
                    // Impossible by the rule in the module docs; refuse rather than guess.
                    Conformance::Deny { wait, .. } => {
                        return Step::Done(Err(NotBooked::TooLong(wait)));
                    }
                },
            };
            Step::Write(base.max(at), next, Ok(Booking { at, cost }))
        });
        booked.unwrap_or(Err(NotBooked::Dead))
    }

    /// Gives `booking` back if that is safe (see the module docs); returns whether it was.
    pub(crate) fn release(&self, quotas: &Quotas, booking: Booking) -> bool {
        let params = quotas.params();
        let released = self.update(quotas, |base, tats| {
            if base > booking.at {
                return Step::Done(false);
            }
            let mut next = [0u64; MAX_QUOTAS];
            for ((n, &t), p) in next.iter_mut().zip(&tats).zip(params) {
                // Never below the base: keeps the packing exact and only errs on the safe side.
                *n = t.saturating_sub(booking.cost * p.t).max(base);
            }
            Step::Write(base, next, true)
        });
        released.unwrap_or(false)
    }

    /// Holds the set until `until` (units): no request is admitted before it. Raises only
    /// the quota that refills fastest, so admissions resume at its rate afterwards.
    pub(crate) fn hold(&self, quotas: &Quotas, until: u64) -> bool {
        let params = quotas.params();
        let Some(fastest) = (0..params.len()).min_by_key(|&i| params[i].cap) else {
            return false;
        };
        let p = params[fastest];
        // At any a < until: level = TAT + T - a > cap, so nothing of cost >= 1 fits.
        let floor = until + (p.cap - p.t) + 1;
        let held = self.update(quotas, |base, mut tats| {
            if tats[fastest] >= floor {
                return Step::Done(true);
            }
            tats[fastest] = floor;
            let new_base = base.max(until);
            for t in tats.iter_mut().take(params.len()) {
                *t = (*t).max(new_base);
            }
            Step::Write(new_base, tats, true)
        });
        held.unwrap_or(false)
    }

    /// Raises each quota's TAT to at least `floors[i]` (units), never lowering any: used
    /// to adopt what a server reports as remaining. Raising only ever admits less.
    pub(crate) fn raise(&self, quotas: &Quotas, now: u64, floors: &[u64; MAX_QUOTAS]) -> bool {
        let params = quotas.params();
        let raised = self.update(quotas, |base, tats| {
            let new_base = base.max(now);
            let mut next = tats;
            for ((t, &f), p) in next.iter_mut().zip(floors).zip(params) {
                // A floor above `now + cap` would not fit the level field; `cap` is full.
                *t = (*t).max(f.min(now + p.cap)).max(new_base);
            }
            if next == tats && new_base == base {
                return Step::Done(true);
            }
            Step::Write(new_base, next, true)
        });
        raised.unwrap_or(false)
    }

    /// The current TATs (units), or `None` for a tombstone.
    #[cfg(test)]
    pub(crate) fn tats(&self, quotas: &Quotas) -> Option<[u64; MAX_QUOTAS]> {
        let cur = self.0.load(Relaxed);
        (cur < DEAD128).then(|| unpack(quotas.params(), cur).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Cell;
    use crate::{Quota, Quotas};
    use proptest::prelude::*;

    fn unit_s(q: &Quotas) -> u64 {
        1_000_000_000 >> q.shift
    }

    #[test]
    fn bookings_queue_in_order_at_the_rate() {
        let q = Quotas::claid();
        let s = unit_s(&q);
        let c = Cell128::default();
        let now = 10 * s;
        let ats: Vec<u64> = (0..8)
            .map(|_| c.reserve(&q, now, 1, u64::MAX).expect("booked").at)
            .collect();
        // Four at once (the burst), then one every 250 ms, FIFO.
        assert_eq!(&ats[..4], &[now; 4]);
        for (k, at) in ats[4..].iter().enumerate() {
            assert_eq!(*at, now + (k as u64 + 1) * s / 4);
        }
        // The check path agrees: at `now` nothing more is admitted.
        assert!(c.check(&q, now, 1).expect("live").denied.is_some());
    }

    #[test]
    fn too_long_books_nothing() {
        let q = Quotas::from(Quota::per_second(1).expect("valid"));
        let c = Cell128::default();
        let now = 1_000;
        assert!(c.reserve(&q, now, 1, 0).is_ok());
        let before = c.tats(&q);
        assert_eq!(
            c.reserve(&q, now, 1, 10),
            Err(NotBooked::TooLong(1_000_000_000))
        );
        assert_eq!(c.tats(&q), before, "a refused reservation stores nothing");
    }

    #[test]
    fn release_of_the_tail_gives_back_exactly() {
        let q = Quotas::claid();
        let c = Cell128::default();
        let now = 5 * unit_s(&q);
        for _ in 0..6 {
            c.reserve(&q, now, 1, u64::MAX).expect("booked");
        }
        let last = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        assert!(c.release(&q, last));
        let again = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        assert_eq!(
            again.at, last.at,
            "the freed slot is the next one handed out"
        );
    }

    #[test]
    fn release_in_the_middle_lapses_when_unsafe() {
        // Burst 1: m at a, k at a+T; giving m back would admit a third at a+T beside k.
        let q = Quotas::from(
            Quota::per_second(1)
                .expect("valid")
                .with_burst(1)
                .expect("valid"),
        );
        let c = Cell128::default();
        let now = 1_000;
        let _first = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        let m = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        let k = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        assert!(k.at > m.at);
        assert!(!c.release(&q, m), "refused: k is admitted later than m");
        let next = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        assert!(next.at >= k.at + q.params()[0].t);
    }

    #[test]
    fn hold_blocks_until_then_resumes() {
        let q = Quotas::claid();
        let s = unit_s(&q);
        let c = Cell128::default();
        let now = 3 * s;
        assert!(c.hold(&q, now + 7 * s));
        let b = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        assert!(b.at >= now + 7 * s && b.at <= now + 7 * s + 1, "{b:?}");
        let b2 = c.reserve(&q, now, 1, u64::MAX).expect("booked");
        assert_eq!(b2.at - b.at, s / 4, "then at the burst quota's rate");
    }

    #[test]
    fn raise_only_tightens() {
        let q = Quotas::claid();
        let s = unit_s(&q);
        let c = Cell128::default();
        let now = 2 * s;
        // The server says 1 of the burst's 4 remains: 3 used.
        let t0 = q.params()[0].t;
        assert!(c.raise(&q, now, &[now + 3 * t0, 0, 0, 0]));
        assert_eq!(c.reserve(&q, now, 1, u64::MAX).map(|b| b.at), Ok(now));
        assert_eq!(c.reserve(&q, now, 1, u64::MAX).map(|b| b.at), Ok(now + t0));
        let before = c.tats(&q);
        // A lower floor changes nothing.
        assert!(c.raise(&q, now, &[now, now, 0, 0]));
        assert_eq!(c.tats(&q), before);
    }

    /// Many threads booking on one cell: sorted by admission time, the bookings never
    /// exceed any quota's bound `b + floor(L / T)` in any window.
    #[test]
    fn concurrent_reservations_respect_the_bound() {
        let q = Quotas::claid();
        let c = std::sync::Arc::new(Cell128::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (c, q) = (c.clone(), q.clone());
                std::thread::spawn(move || {
                    (0..150u64)
                        .map(|i| {
                            // Each thread's clock creeps forward a little, out of step.
                            let now = 1 + (i * 3 + t) * 1_000_000;
                            c.reserve(&q, now, 1, u64::MAX).expect("booked").at
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ats: Vec<u64> = threads
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        ats.sort_unstable();
        assert_eq!(ats.len(), 600);
        for p in q.params() {
            for i in 0..ats.len() {
                for j in i..ats.len() {
                    let count = (j - i + 1) as u64;
                    assert!(
                        count <= p.burst + (ats[j] - ats[i]) / p.t,
                        "{count} in [{}, {}]",
                        ats[i],
                        ats[j]
                    );
                }
            }
        }
        // And the set was used at its rate: the last admission is where a perfect
        // schedule would put it (600 bookings: 120 burst + 480 at 2/s ~ 240 s).
        let span_s = (ats[599] - ats[0]) / unit_s(&q);
        assert!((235..=242).contains(&span_s), "{span_s}");
    }

    /// A reference GCRA over plain TATs, one per quota, deciding at the admission times.
    fn conforms(q: &Quotas, admitted: &[(u64, u64)]) -> bool {
        let params = q.params();
        let mut tats = vec![0u64; params.len()];
        for &(at, cost) in admitted {
            for (t, p) in tats.iter_mut().zip(params) {
                let new = (*t).max(at) + cost * p.t;
                if new - at > p.cap {
                    return false;
                }
                *t = new;
            }
        }
        true
    }

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        Reserve(u64),
        Check(u64),
        /// Cancel the i-th still-pending booking (modulo their number).
        Cancel(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..400_000_000).prop_map(Op::Advance),
            (1u64..=3).prop_map(Op::Reserve),
            (1u64..=3).prop_map(Op::Check),
            any::<usize>().prop_map(Op::Cancel),
        ]
    }

    fn sets() -> impl Strategy<Value = Quotas> {
        prop_oneof![
            Just(Quotas::claid()),
            Just(Quotas::from(Quota::per_second(3).expect("v"))),
            Just(Quotas::from(
                Quota::per_second(5).expect("v").with_burst(3).expect("v")
            )),
            Just(
                Quotas::new([
                    Quota::per_second(4).expect("v").with_burst(3).expect("v"),
                    Quota::new(10, std::time::Duration::from_secs(5)).expect("v"),
                ])
                .expect("fits")
            ),
        ]
    }

    proptest! {
        /// Whatever the interleaving of reservations, checks and cancellations, the
        /// requests that are actually sent (checks admitted, bookings not given back)
        /// conform to the quotas when replayed, in booking order, at their admission times.
        #[test]
        fn reservations_never_over_admit(set in sets(), ops in proptest::collection::vec(op(), 1..120)) {
            let c = Cell128::default();
            let mut now = 1u64;
            // (admission time, cost, live?) in booking order.
            let mut log: Vec<(u64, u64, bool)> = Vec::new();
            let mut pending: Vec<(usize, Booking)> = Vec::new();
            for op in ops {
                match op {
                    Op::Advance(ns) => {
                        now += ns >> set.shift;
                        pending.retain(|(_, b)| b.at > now);
                    }
                    Op::Reserve(cost) => {
                        let cost = cost.min(u64::from(set.max_cost()));
                        let b = c.reserve(&set, now, cost, u64::MAX).expect("never dead here");
                        prop_assert!(b.at >= now);
                        log.push((b.at, cost, true));
                        pending.push((log.len() - 1, b));
                    }
                    Op::Check(cost) => {
                        let cost = cost.min(u64::from(set.max_cost()));
                        let raw = c.check(&set, now, cost).expect("never dead here");
                        if raw.denied.is_none() {
                            log.push((now, cost, true));
                        }
                    }
                    Op::Cancel(i) if !pending.is_empty() => {
                        let (idx, b) = pending.remove(i % pending.len());
                        if c.release(&set, b) {
                            log[idx].2 = false;
                        }
                    }
                    Op::Cancel(_) => {}
                }
            }
            let sent: Vec<(u64, u64)> = log.iter().filter(|e| e.2).map(|e| (e.0, e.1)).collect();
            prop_assert!(conforms(&set, &sent), "{:?}", log);
        }

        /// With no wait allowed, a reservation is the check path: same verdicts, same state.
        #[test]
        fn zero_wait_reservation_is_a_check(set in sets(), steps in proptest::collection::vec((0u64..300_000_000, 1u64..=3), 1..100)) {
            let (a, b) = (Cell128::default(), Cell128::default());
            let mut now = 1u64;
            for (dt, cost) in steps {
                now += dt >> set.shift;
                let cost = cost.min(u64::from(set.max_cost()));
                let checked = a.check(&set, now, cost).expect("live");
                let reserved = b.reserve(&set, now, cost, 0);
                match (checked.denied, reserved) {
                    (None, Ok(booking)) => prop_assert_eq!(booking.at, now),
                    (Some((_, wait)), Err(NotBooked::TooLong(w))) => prop_assert_eq!(wait, w),
                    (c, r) => prop_assert!(false, "check {:?} vs reserve {:?}", c, r),
                }
                prop_assert_eq!(a.tats(&set), b.tats(&set));
            }
        }

        /// A booking released right after it was made leaves the TATs of the quota that
        /// made it wait exactly where they were, and the next booking gets its slot.
        #[test]
        fn cancellation_gives_back_exactly(set in sets(), n in 1usize..40, cost in 1u64..=3) {
            let cost = cost.min(u64::from(set.max_cost()));
            let c = Cell128::default();
            let now = 7u64;
            for _ in 0..n {
                c.reserve(&set, now, 1, u64::MAX).expect("booked");
            }
            let b = c.reserve(&set, now, cost, u64::MAX).expect("booked");
            prop_assert!(c.release(&set, b));
            let again = c.reserve(&set, now, cost, u64::MAX).expect("booked");
            prop_assert_eq!(again.at, b.at);
        }
    }
}
