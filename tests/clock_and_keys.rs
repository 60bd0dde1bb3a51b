//! Clocks that misbehave, keyed state that must stay bounded, and bad input.

use std::time::Duration;

use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::{CheckError, KeyedRateLimiter, Quota, Quotas, RateLimiter};

fn drain(l: &RateLimiter<ManualClock>) -> u32 {
    let mut n = 0;
    while l.check().expect("cost 1").is_allowed() {
        n += 1;
        assert!(n < 1_000_000, "never admits without bound");
    }
    n
}

#[test]
fn clock_stepping_back_never_admits_more() {
    for set in [
        Quotas::from(Quota::per_second(10).expect("v")),
        Quotas::claid(),
    ] {
        let t0 = 50_000_000_000;
        let (clock, control_clock) = (ManualClock::new(), ManualClock::new());
        clock.set_ns(t0);
        control_clock.set_ns(t0);
        let l = RateLimiter::with_clock(set.clone(), clock.clone());
        let control = RateLimiter::with_clock(set.clone(), control_clock.clone());
        assert_eq!(drain(&l), drain(&control));
        // Step far back: the state remembers the later time, so nothing new is admitted.
        clock.set_ns(1);
        assert_eq!(drain(&l), 0, "{set:?}");
        // Forward again: exactly what a limiter whose clock never stepped back admits.
        for dt in [250_000_000, 500_000_000, 1_000_000_000, 60_000_000_000] {
            clock.set_ns(t0 + dt);
            control_clock.set_ns(t0 + dt);
            assert_eq!(drain(&l), drain(&control), "{set:?} at +{dt}");
        }
    }
}

#[test]
fn clock_jumping_to_the_end_of_time_never_panics_or_floods() {
    for set in [
        Quotas::from(Quota::per_second(10).expect("v")),
        Quotas::claid(),
    ] {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(set.clone(), clock.clone());
        clock.set_ns(u64::MAX);
        let first = drain(&l);
        assert_eq!(
            first,
            set.max_cost(),
            "a full burst, then the clock is pinned"
        );
        clock.advance(Duration::from_secs(3600));
        assert_eq!(drain(&l), 0, "pinned clock: no refill, no overflow");
        let d = l.check().expect("cost 1");
        assert!(d.retry_after().is_some());
        for s in d.states() {
            let _ = (s.remaining(), s.reset(), s.next_available());
        }
    }
}

#[test]
fn cost_errors_are_distinct_from_denials() {
    let l = RateLimiter::new(Quotas::claid());
    assert_eq!(l.check_n(0).err(), Some(CheckError::ZeroCost));
    assert_eq!(
        l.check_n(5).err(),
        Some(CheckError::CostExceedsBurst {
            cost: 5,
            max_cost: 4
        })
    );
    assert!(l.check_n(4).expect("fits").is_allowed());
    assert!(!l.check_n(4).expect("fits, not yet").is_allowed());
}

#[test]
fn expired_keys_are_reclaimed_by_normal_inserts() {
    let clock = ManualClock::new();
    let l = KeyedRateLimiter::with_clock(Quota::per_second(10).expect("v"), clock.clone());
    for k in 0..10_000u64 {
        l.check_key(&k).expect("cost 1");
    }
    assert_eq!(l.len(), 10_000);
    // One second later every state equals "never seen"; sweeps (run by new keys) reap
    // states that have been empty for a second, so two seconds later they are reaped.
    clock.advance(Duration::from_secs(2));
    for k in 10_000..20_000u64 {
        l.check_key(&k).expect("cost 1");
    }
    assert!(
        l.len() < 15_000,
        "old keys reclaimed as part of inserting: {}",
        l.len()
    );
    clock.advance(Duration::from_secs(1));
    l.reclaim();
    assert_eq!(l.len(), 0);
}

#[test]
fn live_keys_are_never_reclaimed() {
    let clock = ManualClock::new();
    let l = KeyedRateLimiter::with_clock(Quota::per_minute(2).expect("v"), clock.clone());
    assert!(l.check_key(&"a").expect("c").is_allowed());
    assert!(l.check_key(&"a").expect("c").is_allowed());
    clock.advance(Duration::from_secs(10));
    l.reclaim();
    assert_eq!(l.len(), 1);
    assert!(
        !l.check_key(&"a").expect("c").is_allowed(),
        "state survived"
    );
}

#[test]
fn key_cap_holds_under_a_flood() {
    let clock = ManualClock::new();
    let l = KeyedRateLimiter::with_clock(Quotas::claid(), clock.clone()).with_max_keys(1000);
    let mut refused = 0;
    for k in 0..50_000u64 {
        match l.check_key(&k) {
            Ok(_) => {}
            Err(CheckError::TooManyKeys { max_keys: 1000 }) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(l.len() <= 1000, "{}", l.len());
    assert_eq!(refused, 49_000);
    // Known keys keep working at the cap.
    assert!(l.check_key(&0).is_ok());
    // Once the flood's states expire, room is made for new keys.
    clock.advance(Duration::from_secs(60));
    assert!(
        l.check_key(&1_000_000)
            .expect("room after expiry")
            .is_allowed()
    );
}

/// The default clock is monotonic (across threads too) and never runs ahead of, nor lags
/// more than its documented tick behind, the OS monotonic clock.
#[test]
fn default_clock_is_monotonic_and_within_a_tick() {
    use std::time::Instant;
    use tower_ratelimit::clock::{Clock, CoarseClock};

    let clock = CoarseClock::new();
    let tick = u64::try_from(CoarseClock::TICK.as_nanos()).expect("small");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..200_000 {
                    let now = clock.now_ns();
                    assert!(now >= last, "stepped back: {last} -> {now}");
                    last = now;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no thread panicked");
    }
    for _ in 0..50 {
        let i0 = Instant::now();
        let c0 = clock.now_ns();
        std::thread::sleep(std::time::Duration::from_millis(1));
        let c1 = clock.now_ns();
        let i1 = Instant::now();
        let precise = u64::try_from((i1 - i0).as_nanos()).expect("small");
        assert!(
            c1 - c0 <= precise + tick,
            "the default clock ran ahead of the OS monotonic clock: {} > {precise} + {tick}",
            c1 - c0
        );
    }
}
