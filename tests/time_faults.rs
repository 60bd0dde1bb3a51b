//! Clock faults under proptest: readings that step backwards, jump years ahead, pin at
//! the end of time, and a simulated century of nanoseconds. No panic, no overflow in any
//! accessor, and never more admitted than `b + floor(L/T)` in any window of the limiter's
//! timeline: the running maximum of the readings it admitted at (a reading behind an
//! earlier one adds no time, and a denial writes nothing, so it shows none either). When
//! the only faults are steps back, that timeline never runs ahead of true time, so the
//! bound holds over the true elapsed time; a jump ahead is, to any clock-driven limiter,
//! time that passed.

use std::time::Duration;

use proptest::prelude::*;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::{Decision, KeyedRateLimiter, Quota, Quotas, RateLimiter};

/// Readings are capped at 2^62 ns by the limiter (about 146 years).
const CAP: u64 = 1 << 62;
const YEAR_NS: u64 = 365 * 86_400 * 1_000_000_000;

#[derive(Debug, Clone)]
enum Step {
    /// Forward by this many ns.
    Forward(u64),
    /// Forward by this many years.
    Years(u64),
    /// Back by this many ns (saturating at 0).
    Back(u64),
    /// Straight to this reading (anything up to `u64::MAX`).
    Set(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop_oneof![0u64..1_000, 0u64..5_000_000, 0u64..3_000_000_000].prop_map(Step::Forward),
        1 => (1u64..=200).prop_map(Step::Years),
        2 => prop_oneof![0u64..1_000_000, 0u64..u64::MAX].prop_map(Step::Back),
        1 => prop_oneof![Just(u64::MAX), Just(CAP), Just(CAP - 1), Just(0u64), any::<u64>()]
            .prop_map(Step::Set),
    ]
}

fn quota() -> impl Strategy<Value = Quota> {
    (1u32..=1000, 1u64..=86_400_000, any::<u16>()).prop_filter_map("valid", |(n, ms, b)| {
        let q = Quota::new(n, Duration::from_millis(ms)).ok()?;
        q.with_burst(1 + u32::from(b) % (2 * n)).ok()
    })
}

fn quota_set() -> impl Strategy<Value = Quotas> {
    prop::collection::vec(quota(), 1..=4).prop_filter_map("fits", |v| Quotas::new(v).ok())
}

/// Every accessor of a decision, with the sanity each must keep. `behind` is how far the
/// reading is behind the latest one: after a step back the state keeps the later time,
/// so waits may be that much longer than a full bucket (stricter, never looser).
fn inspect(d: &Decision<'_>, behind: u64) {
    // A full bucket in the set's unit (intervals rounded up to it), plus the step back.
    let res = d.quotas().resolution().as_nanos();
    let full = d
        .quotas()
        .iter()
        .map(|q| q.emission_interval().as_nanos().div_ceil(res) * res * u128::from(q.burst()))
        .max()
        .unwrap_or_default();
    let longest = Duration::from_nanos(u64::try_from(full + res).expect("small") + behind);
    for s in d.states() {
        assert!(s.remaining() <= u64::from(s.quota().burst()));
        assert!(s.reset() <= longest, "reset {:?} > {longest:?}", s.reset());
        assert!(s.next_available() <= s.reset());
    }
    let _ = d.binding();
    if let Some(w) = d.retry_after() {
        assert!(w <= longest, "retry_after {w:?} > {longest:?}");
        assert!(d.denied_by().is_some());
    }
}

/// Checks the window bound on the limiter's timeline: `admits[i] = (m, cost)` where `m`
/// is the running maximum of the (capped) readings at admissions up to this one.
///
/// Time is measured in the set's unit (readings floored to it, intervals rounded up), as
/// the limiter measures it.
fn assert_window_bound(set: &Quotas, admits: &[(u64, u32)]) {
    let res = set.resolution().as_nanos();
    for q in set.iter() {
        let t = q.emission_interval().as_nanos().div_ceil(res);
        let b = u128::from(q.burst());
        for i in 0..admits.len() {
            let mut units = 0u128;
            for &(m, c) in &admits[i..] {
                units += u128::from(c);
                let span = u128::from(m) / res - u128::from(admits[i].0) / res;
                assert!(
                    units <= b + span / t,
                    "{q:?}: {units} units in {span} time units (bound {})",
                    b + span / t
                );
            }
        }
    }
}

fn run(set: &Quotas, steps: &[(Step, u32)]) {
    let clock = ManualClock::new();
    clock.set_ns(1);
    let direct = RateLimiter::with_clock(set.clone(), clock.clone());
    let keyed = KeyedRateLimiter::<u8, _>::with_clock(set.clone(), clock.clone());
    let mut now = 1u64;
    let mut max_seen = 0u64;
    let (mut m_direct, mut m_keyed) = (0u64, 0u64);
    let mut admits_direct = Vec::new();
    let mut admits_keyed = Vec::new();
    for (step, cost) in steps {
        now = match *step {
            Step::Forward(ns) => now.saturating_add(ns),
            Step::Years(y) => now.saturating_add(y.saturating_mul(YEAR_NS)),
            Step::Back(ns) => now.saturating_sub(ns),
            Step::Set(ns) => ns,
        };
        clock.set_ns(now);
        let reading = now.min(CAP);
        max_seen = max_seen.max(reading);
        let cost = *cost;
        let behind = max_seen - reading;
        if let Ok(d) = direct.check_n(cost) {
            inspect(&d, behind);
            if d.is_allowed() {
                m_direct = m_direct.max(reading);
                admits_direct.push((m_direct, cost));
            }
        }
        // One key: with no new key inserted, nothing sweeps it. (A sweep reclaims a
        // state that is empty at the sweeping request's reading; if the clock then
        // steps back behind that reading, the reclaimed key starts afresh. The `Clock`
        // contract is monotonic; only a broken clock can do that.)
        if let Ok(d) = keyed.check_key_n(&1, cost) {
            inspect(&d, behind);
            if d.is_allowed() {
                m_keyed = m_keyed.max(reading);
                admits_keyed.push((m_keyed, cost));
            }
        }
    }
    assert_window_bound(set, &admits_direct);
    assert_window_bound(set, &admits_keyed);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn faulty_clocks_never_admit_more_than_the_bound(
        set in quota_set(),
        steps in prop::collection::vec((step(), 1u32..=4), 1..120),
    ) {
        run(&set, &steps);
    }
}

/// A century in nanoseconds, arriving at the emission rate with bursts and gaps: exact
/// admission counts at the end (nothing lost or gained to rounding or overflow), and the
/// bound over the whole span.
#[test]
fn a_simulated_century() {
    let set = Quotas::new([
        Quota::per_second(4).expect("q").named("burst"),
        Quota::per_minute(120).expect("q").named("minute"),
    ])
    .expect("set");
    let clock = ManualClock::new();
    clock.set_ns(1);
    let l = RateLimiter::with_clock(set.clone(), clock.clone());
    let mut now = 1u64;
    let mut admitted = 0u64;
    let century = 100 * YEAR_NS;
    // Jump through the century in uneven strides, draining each time: every stride of
    // at least a minute refills both quotas fully, so each drain admits exactly the
    // smaller burst (4) plus nothing more.
    let mut stride = 61_000_000_000u64;
    let mut drains = 0u64;
    while now < century {
        now += stride;
        clock.set_ns(now);
        let mut n = 0;
        while l.check().expect("cost 1").is_allowed() {
            n += 1;
            assert!(n <= 4, "more than the burst at {now}");
        }
        assert_eq!(n, 4, "a full refill after {stride} ns, at {now}");
        admitted += n;
        drains += 1;
        // Between 61 s and about 2 years per stride.
        stride =
            61_000_000_000 + (stride.wrapping_mul(6_364_136_223_846_793_005) >> 8) % (2 * YEAR_NS);
    }
    assert_eq!(admitted, 4 * drains);
    // At the emission rate, at the end of the century: exactly one per 250 ms.
    let mut at_rate = 0;
    for _ in 0..1000 {
        now += 500_000_000;
        clock.set_ns(now);
        if l.check().expect("cost 1").is_allowed() {
            at_rate += 1;
        }
    }
    // One request per half second is exactly the minute quota's rate (and half the
    // burst quota's): every one fits.
    assert_eq!(at_rate, 1000);
    // Past the cap the clock is stopped: a burst, then nothing.
    clock.set_ns(u64::MAX);
    let mut at_end = 0;
    while l.check().expect("cost 1").is_allowed() {
        at_end += 1;
        assert!(at_end <= 4);
    }
    for _ in 0..100 {
        clock.set_ns(u64::MAX - 1);
        assert!(
            !l.check().expect("cost 1").is_allowed(),
            "a stopped clock refills nothing"
        );
    }
}
