//! Threads hammering one limiter (and one key) with a frozen clock admit exactly the
//! burst: never more, never fewer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::{KeyedRateLimiter, Quota, Quotas, RateLimiter};

const THREADS: usize = 8;
const ATTEMPTS: usize = 5_000;

fn hammer(check: impl Fn() -> bool + Send + Sync + 'static) -> u64 {
    let check = Arc::new(check);
    let admitted = Arc::new(AtomicU64::new(0));
    let start = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (check, admitted, start) = (check.clone(), admitted.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for _ in 0..ATTEMPTS {
                    if check() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no thread panics");
    }
    admitted.load(Ordering::Relaxed)
}

fn sets() -> Vec<(Quotas, u64)> {
    let q = |n, w| Quota::new(n, Duration::from_secs(w)).expect("valid");
    vec![
        (Quotas::from(q(1000, 1)), 1000),
        (Quotas::claid(), 4),
        (
            Quotas::new([q(3000, 1).with_burst(2500).expect("valid"), q(5000, 60)]).expect("fits"),
            2500,
        ),
        (
            Quotas::new([q(900, 1), q(2000, 60), q(10_000, 3600), q(1500, 86_400)]).expect("fits"),
            900,
        ),
    ]
}

#[test]
fn direct_admits_exactly_the_burst() {
    for (set, burst) in sets() {
        let clock = ManualClock::new();
        clock.set_ns(1_000_000);
        let limiter = Arc::new(RateLimiter::with_clock(set.clone(), clock));
        let l = limiter.clone();
        let admitted = hammer(move || l.check().expect("cost 1").is_allowed());
        assert_eq!(admitted, burst, "{set:?}");
    }
}

#[test]
fn one_key_admits_exactly_the_burst() {
    for (set, burst) in sets() {
        let clock = ManualClock::new();
        clock.set_ns(1_000_000);
        let limiter = Arc::new(KeyedRateLimiter::with_clock(set.clone(), clock));
        let l = limiter.clone();
        let admitted = hammer(move || l.check_key(&"one-key").expect("cost 1").is_allowed());
        assert_eq!(admitted, burst, "{set:?}");
    }
}

#[test]
fn weighted_requests_never_overdraw() {
    // Costs 1..=3 from many threads. Every thread keeps sending cost-1 requests after
    // the bucket runs low, so the admitted units must add up to the burst exactly.
    let clock = ManualClock::new();
    let limiter = Arc::new(RateLimiter::with_clock(
        Quota::per_second(600).expect("valid"),
        clock,
    ));
    let units = Arc::new(AtomicU64::new(0));
    let (l, u) = (limiter.clone(), units.clone());
    let counter = Arc::new(AtomicU64::new(0));
    hammer(move || {
        let cost = 1 + (counter.fetch_add(1, Ordering::Relaxed) % 3) as u32;
        let ok = l.check_n(cost).expect("cost <= burst").is_allowed();
        if ok {
            u.fetch_add(u64::from(cost), Ordering::Relaxed);
        }
        ok
    });
    let units = units.load(Ordering::Relaxed);
    assert_eq!(units, 600);
}

#[test]
fn keys_reclaimed_under_load_never_overadmit() {
    // Sweeps run while other threads check the same keys; a reclaimed key must come
    // back with a state equivalent to the one it lost, never a fresh burst early.
    let clock = ManualClock::new();
    let limiter = Arc::new(KeyedRateLimiter::with_clock(
        Quota::per_second(5).expect("valid"),
        clock.clone(),
    ));
    let l = limiter.clone();
    let admitted = hammer(move || {
        let ok = l.check_key(&7u64).expect("cost 1").is_allowed();
        l.reclaim();
        ok
    });
    assert_eq!(admitted, 5);
}

#[test]
fn no_update_lost_while_the_table_grows_and_sweeps() {
    let minute = || Quota::per_minute(10).expect("valid"); // T = 6 s, burst 10
    churn(Quotas::from(minute()));
    // The hour quota never binds within the test, so the expected count is the same.
    churn(Quotas::new([minute(), Quota::per_hour(1000).expect("valid")]).expect("fits"));
}

fn churn(quota: Quotas) {
    // Hot keys are hammered while other threads insert a stream of cold keys (forcing
    // many resizes) and time advances (so cold keys expire and sweeps reap them). Every
    // hot key must end with exactly burst + floor(elapsed / T) admissions: a lost update
    // during a migration, or a live key reaped, would show as extra admissions.
    let clock = ManualClock::new();
    clock.set_ns(1);
    let limiter = Arc::new(KeyedRateLimiter::with_clock(quota, clock.clone()));
    const HOT: u64 = 8;
    let admitted: Arc<Vec<AtomicU64>> = Arc::new((0..HOT).map(|_| AtomicU64::new(0)).collect());
    let start = Arc::new(std::sync::Barrier::new(4));
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let (l, a, c, s) = (
            limiter.clone(),
            admitted.clone(),
            clock.clone(),
            start.clone(),
        );
        handles.push(thread::spawn(move || {
            s.wait();
            for i in 0..40_000u64 {
                let hot = i % HOT;
                if l.check_key(&hot).expect("cost 1").is_allowed() {
                    a[hot as usize].fetch_add(1, Ordering::Relaxed);
                }
                // Cold keys, distinct per thread, far from the hot ones.
                l.check_key(&(1_000_000 + t * 1_000_000 + i))
                    .expect("cost 1");
                if t == 0 && i % 100 == 0 {
                    c.advance(Duration::from_millis(50));
                }
            }
        }));
    }
    for h in handles {
        h.join().expect("no panic");
    }
    // Drain at the final time so every key has taken all it may.
    let elapsed = tower_ratelimit::clock::Clock::now_ns(&clock) - 1;
    for hot in 0..HOT {
        while limiter.check_key(&hot).expect("cost 1").is_allowed() {
            admitted[hot as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
    let expected = 10 + elapsed / 6_000_000_000;
    for hot in 0..HOT {
        assert_eq!(
            admitted[hot as usize].load(Ordering::Relaxed),
            expected,
            "hot key {hot}"
        );
    }
    // Once everything has expired, one sweep reclaims every key: the live count kept
    // through concurrent inserts, resizes and sweeps is exact.
    clock.advance(Duration::from_secs(61));
    limiter.reclaim();
    assert_eq!(limiter.len(), 0);
}
