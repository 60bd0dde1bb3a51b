//! Property tests of the core against a plainly written reference model, against
//! governor, and against the documented window bound.

use std::num::NonZeroU32;
use std::time::Duration;

use proptest::prelude::*;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::{Quota, Quotas, RateLimiter};

/// The reference: one TAT per quota, exact integer arithmetic in u128, the rule from the
/// `quota` module docs applied literally.
struct Model {
    /// `(T, burst)` per quota, in units of the set's resolution.
    quotas: Vec<(u128, u128)>,
    tats: Vec<u128>,
}

impl Model {
    fn new(set: &Quotas) -> Self {
        let res = set.resolution().as_nanos();
        let quotas: Vec<_> = set
            .iter()
            .map(|q| {
                (
                    q.emission_interval().as_nanos().div_ceil(res),
                    u128::from(q.burst()),
                )
            })
            .collect();
        Model {
            tats: vec![0; quotas.len()],
            quotas,
        }
    }

    /// Returns `None` if admitted, else the wait in units.
    fn check(&mut self, now: u128, cost: u128) -> Option<u128> {
        let mut wait = None::<u128>;
        let mut next = Vec::new();
        for (&(t, b), &tat) in self.quotas.iter().zip(&self.tats) {
            let new_tat = tat.max(now) + cost * t;
            let limit = now + b * t;
            if new_tat > limit {
                let w = new_tat - limit;
                wait = Some(wait.map_or(w, |x: u128| x.max(w)));
            }
            next.push(new_tat);
        }
        if wait.is_none() {
            self.tats = next;
        }
        wait
    }

    fn remaining(&self, i: usize, now: u128) -> u128 {
        let (t, b) = self.quotas[i];
        let level = self.tats[i].saturating_sub(now);
        (b * t).saturating_sub(level) / t
    }
}

fn quota() -> impl Strategy<Value = Quota> {
    // Windows from 1 ms to 2 h, limits 1..=500, bursts 1..=2*limit.
    (1u32..=500, 1u64..=7_200_000, any::<u16>()).prop_filter_map("valid", |(n, ms, b)| {
        let q = Quota::new(n, Duration::from_millis(ms)).ok()?;
        let burst = 1 + u32::from(b) % (2 * n);
        q.with_burst(burst).ok()
    })
}

fn quota_set() -> impl Strategy<Value = Quotas> {
    prop::collection::vec(quota(), 1..=4).prop_filter_map("fits", |v| Quotas::new(v).ok())
}

/// Arrivals: (gap before it in ns, cost).
fn arrivals() -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..2_000_000, 0u64..3_000_000_000],
            1u32..=4,
        ),
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Every decision (admitted or not, retry_after, every quota's remaining)
    /// equals the reference model's, and (d) a denial changes no state.
    #[test]
    fn matches_reference_model(set in quota_set(), seq in arrivals()) {
        let res = set.resolution().as_nanos();
        let clock = ManualClock::new();
        let limiter = RateLimiter::with_clock(set.clone(), clock.clone());
        let mut model = Model::new(&set);
        let mut now_ns = 0u64;
        for (gap, cost) in seq {
            now_ns += gap;
            clock.set_ns(now_ns);
            let now = u128::from(now_ns) / res;
            let cost = cost.min(set.max_cost());
            let before: Vec<u128> = (0..set.len()).map(|i| model.remaining(i, now)).collect();
            let d = limiter.check_n(cost).expect("cost within the set's max");
            let expected_wait = model.check(now, u128::from(cost));
            prop_assert_eq!(d.is_allowed(), expected_wait.is_none());
            prop_assert_eq!(d.retry_after().map(|w| w.as_nanos()), expected_wait.map(|w| w * res));
            for s in d.states() {
                prop_assert_eq!(u128::from(s.remaining()), model.remaining(s.index(), now));
            }
            if !d.is_allowed() {
                // (d): what remains is exactly what remained before the denied request.
                let after: Vec<u128> = d.states().map(|s| u128::from(s.remaining())).collect();
                prop_assert_eq!(after, before);
                let denied = d.denied_by().expect("denied names a quota");
                prop_assert!(u64::from(cost) > denied.remaining());
            }
        }
    }

    /// (b) For one quota, decisions and waits equal governor's on the same fake timeline.
    #[test]
    fn matches_governor(q in quota(), seq in arrivals()) {
        let gq = governor::Quota::with_period(q.emission_interval())
            .expect("nonzero period")
            .allow_burst(NonZeroU32::new(q.burst()).expect("burst >= 1"));
        let gclock = governor::clock::FakeRelativeClock::default();
        let gov = governor::RateLimiter::direct_with_clock(gq, gclock.clone());
        let clock = ManualClock::new();
        let ours = RateLimiter::with_clock(q.clone(), clock.clone());
        for (gap, cost) in seq {
            clock.advance(Duration::from_nanos(gap));
            gclock.advance(Duration::from_nanos(gap));
            let cost = cost.min(q.burst());
            let d = ours.check_n(cost).expect("cost <= burst");
            let g = gov
                .check_n(NonZeroU32::new(cost).expect("cost >= 1"))
                .expect("cost <= burst");
            use governor::clock::Clock as _;
            match g {
                Ok(()) => prop_assert!(d.is_allowed()),
                Err(not_until) => {
                    prop_assert!(!d.is_allowed());
                    prop_assert_eq!(d.retry_after(), Some(not_until.wait_time_from(gclock.now())));
                }
            }
        }
    }

    /// (c) In every window of every sequence, each quota admits at most
    /// `burst + floor(L / T)` units (times in the set's unit).
    #[test]
    fn window_bound_holds(set in quota_set(), seq in arrivals()) {
        let res = set.resolution().as_nanos();
        let clock = ManualClock::new();
        let limiter = RateLimiter::with_clock(set.clone(), clock.clone());
        let mut admitted: Vec<(u128, u128)> = Vec::new();
        let mut now_ns = 0u64;
        for (gap, cost) in seq {
            now_ns += gap;
            clock.set_ns(now_ns);
            let cost = cost.min(set.max_cost());
            if limiter.check_n(cost).expect("valid cost").is_allowed() {
                admitted.push((u128::from(now_ns) / res, u128::from(cost)));
            }
        }
        for q in set.iter() {
            let t = q.emission_interval().as_nanos().div_ceil(res);
            let b = u128::from(q.burst());
            for i in 0..admitted.len() {
                let mut units = 0;
                for j in i..admitted.len() {
                    units += admitted[j].1;
                    let len = admitted[j].0 - admitted[i].0;
                    prop_assert!(units <= b + len / t,
                        "{} units in {} units of time > {} + floor({}/{})", units, len, b, len, t);
                }
            }
        }
    }
}

/// The bound is tight: a full bucket then the emission rate reaches it exactly.
#[test]
fn window_bound_is_reached() {
    let q = Quota::per_minute(120).expect("valid");
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(q, clock.clone());
    let mut admitted = 0;
    // One closed minute, probed every 10 ms.
    for step in 0..=6000u64 {
        clock.set_ns(1 + step * 10_000_000);
        while limiter.check().expect("cost 1").is_allowed() {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted,
        120 + 120,
        "b + floor(L/T) with L = 60 s, T = 0.5 s"
    );
}
