//! The pure GCRA decision over a quota set: `(now, state, quotas, cost) -> verdict`.
//!
//! No I/O, no atomics, no clock: stores call this inside their compare-and-swap loops
//! (so it may run several times for one request and must have no side effects), the
//! Redis script mirrors it, and the property tests compare it with a reference model.
//! All times are in the set's unit (`2^shift` ns); see [`crate::quota`] for the rule.

use crate::quota::{MAX_QUOTAS, Params, Quotas};

/// The outcome of one decision over a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conformance {
    /// Every quota admits: the new TATs to store.
    Admit([u64; MAX_QUOTAS]),
    /// Some quota refuses: the index of the quota whose wait is longest, and that wait.
    Deny { quota: usize, wait: u64 },
}

/// Decides a request of `cost` units at `now` against the TATs `tats` (one per quota).
///
/// `cost` must be at least 1 and at most the set's smallest burst (callers check once,
/// so the hot loop does not); under that precondition `cost * t <= cap <= 2^61`, and with
/// `now` and every TAT below 2^63 nothing here can overflow.
#[inline]
pub(crate) fn decide(params: &[Params], now: u64, tats: &[u64], cost: u64) -> Conformance {
    let mut next = [0u64; MAX_QUOTAS];
    let mut worst: Option<(usize, u64)> = None;
    for (i, (p, &tat)) in params.iter().zip(tats).enumerate() {
        let new_tat = tat.max(now) + cost * p.t;
        // Level after admission; a clock read behind the TAT only makes this larger.
        let level = new_tat - now;
        if level > p.cap {
            let wait = level - p.cap;
            if worst.is_none_or(|(_, w)| wait > w) {
                worst = Some((i, wait));
            }
        }
        next[i] = new_tat;
    }
    match worst {
        None => Conformance::Admit(next),
        Some((quota, wait)) => Conformance::Deny { quota, wait },
    }
}

/// The single-quota case of [`decide`], kept separate so the hot path is a few
/// instructions: `Ok(new_tat)` or `Err(wait)`.
#[inline(always)]
pub(crate) fn decide_one(p: &Params, now: u64, tat: u64, cost: u64) -> Result<u64, u64> {
    let new_tat = tat.max(now) + cost * p.t;
    let level = new_tat - now;
    if level > p.cap {
        Err(level - p.cap)
    } else {
        Ok(new_tat)
    }
}

/// Carries a key's standing over a change of quota set (live reconfiguration).
///
/// `tats` are the key's TATs under `old` (in `old`'s unit) at the instant `at_ns`; the
/// result is its TATs under `new` (in `new`'s unit). Each quota's *level* `TAT - now` (the
/// time until it is fully restored; `burst * T` when exhausted) carries over as a time:
///
/// * a new quota takes the level of the old quota with the same name (at the same position
///   if the name repeats), or, if no old quota
///   has its name, the largest level of the old set;
/// * the level is clamped to the new quota's capacity `burst' * T'`.
///
/// So at the switch nobody waits longer than before it, nor longer than the new quota's
/// own tolerance allows, and no key can get more than the new quotas' bursts: an
/// exhausted key stays exhausted for exactly as long as it would have, at most `b' * T'`.
/// Unchanged quotas keep their state exactly.
pub(crate) fn carry_over(
    old: &Quotas,
    tats: &[u64; MAX_QUOTAS],
    new: &Quotas,
    at_ns: u64,
) -> [u64; MAX_QUOTAS] {
    let old_now = at_ns >> old.shift;
    let level_ns = |i: usize| {
        tats[i]
            .saturating_sub(old_now)
            .saturating_mul(1 << old.shift)
    };
    let largest = (0..old.len()).map(level_ns).max().unwrap_or(0);
    let new_now = at_ns >> new.shift;
    let mut out = [0u64; MAX_QUOTAS];
    for (j, (q, p)) in new.iter().zip(new.params()).enumerate() {
        // The same position first, so sets that repeat a name keep their order.
        let same = old.get(j).is_some_and(|o| o.name() == q.name());
        let level = if same {
            Some(j)
        } else {
            old.iter().position(|o| o.name() == q.name())
        }
        .map_or(largest, level_ns);
        // Rounded up to the new unit: a carried level never shrinks by rounding.
        let level = level.div_ceil(1 << new.shift).min(p.cap);
        out[j] = new_now + level;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quota, Quotas};

    #[test]
    fn burst_then_refill() {
        let set = Quotas::from(Quota::per_second(2).expect("valid"));
        let p = set.params();
        let mut tat = 0;
        for _ in 0..2 {
            match decide(p, 1_000, &[tat], 1) {
                Conformance::Admit(n) => tat = n[0],
                v => panic!("should admit: {v:?}"),
            }
        }
        assert_eq!(
            decide(p, 1_000, &[tat], 1),
            Conformance::Deny {
                quota: 0,
                wait: 500_000_000
            }
        );
        assert!(matches!(
            decide(p, 1_000 + 500_000_000, &[tat], 1),
            Conformance::Admit(_)
        ));
        assert_eq!(decide_one(&p[0], 1_000, tat, 1), Err(500_000_000));
    }

    #[test]
    fn deny_names_the_longest_wait() {
        let set = Quotas::claid();
        let p = set.params();
        // Minute quota nearly full, second quota empty: the minute quota binds.
        let tats = [0, 119 * p[1].t + 10];
        match decide(p, 10, &tats, 2) {
            Conformance::Deny { quota, .. } => assert_eq!(quota, 1),
            v => panic!("{v:?}"),
        }
    }

    use proptest::prelude::*;
    use std::time::Duration;

    fn arb_set() -> impl Strategy<Value = Quotas> {
        let names = prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")];
        let quota = (1u32..50, 1u64..120, proptest::option::of(1u32..80), names).prop_filter_map(
            "valid",
            |(n, secs, b, name)| {
                let q = Quota::new(n, Duration::from_secs(secs)).ok()?.named(name);
                match b {
                    Some(b) => q.with_burst(b).ok(),
                    None => Some(q),
                }
            },
        );
        proptest::collection::vec(quota, 1..=4).prop_filter_map("fits", |v| Quotas::new(v).ok())
    }

    /// Admits cost-1 requests at `now` until one is denied; returns how many.
    fn drain(set: &Quotas, tats: &mut [u64; MAX_QUOTAS], now: u64) -> u32 {
        let mut admitted = 0;
        while let Conformance::Admit(next) = decide(set.params(), now, &tats[..set.len()], 1) {
            *tats = next;
            admitted += 1;
            assert!(admitted <= 1_000_000, "runaway");
        }
        admitted
    }

    proptest! {
        /// At the switch a key gets at most the new set's burst, and exactly that if it
        /// was idle; an unchanged set keeps the state exactly; and the carried state is
        /// a valid one (every level within its quota's capacity).
        #[test]
        fn no_key_gains_more_than_the_new_burst(
            old in arb_set(),
            new in arb_set(),
            used in 0u32..200,
            start_ms in 1u64..1_000_000,
            gap_ms in 0u64..200_000,
        ) {
            let start_ns = start_ms * 1_000_000;
            let at_ns = start_ns + gap_ms * 1_000_000;
            // `used` requests at `start` (as many as the old set admits), then a gap.
            let mut tats = [0u64; MAX_QUOTAS];
            let now = start_ns >> old.shift;
            for _ in 0..used {
                match decide(old.params(), now, &tats[..old.len()], 1) {
                    Conformance::Admit(next) => tats = next,
                    Conformance::Deny { .. } => break,
                }
            }
            let mut carried = carry_over(&old, &tats, &new, at_ns);
            let new_now = at_ns >> new.shift;
            for (t, p) in carried.iter().zip(new.params()) {
                prop_assert!(*t >= new_now && *t - new_now <= p.cap);
            }
            let fresh = drain(&new, &mut [0; MAX_QUOTAS], new_now);
            prop_assert_eq!(fresh, new.max_cost(), "an idle key gets the smallest burst");
            let got = drain(&new, &mut carried, new_now);
            prop_assert!(got <= fresh, "carried {} > burst {}", got, fresh);
            if used == 0 {
                prop_assert_eq!(got, fresh, "an idle key is not punished");
            }
            let same = carry_over(&old, &tats, &old, at_ns);
            let old_now = at_ns >> old.shift;
            for (a, b) in same.iter().zip(&tats).take(old.len()) {
                prop_assert_eq!(*a, (*b).max(old_now), "an unchanged set keeps its state");
            }
        }
    }
}
