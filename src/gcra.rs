//! The pure GCRA decision over a quota set: `(now, state, quotas, cost) -> verdict`.
//!
//! No I/O, no atomics, no clock: stores call this inside their compare-and-swap loops
//! (so it may run several times for one request and must have no side effects), the
//! Redis script mirrors it, and the property tests compare it with a reference model.
//! All times are in the set's unit (`2^shift` ns); see [`crate::quota`] for the rule.

use crate::quota::{MAX_QUOTAS, Params};

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
}
