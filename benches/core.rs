//! The core limiter against governor, side by side in one run.
//!
//! Group/function ids are stable so results can be compared over time:
//! `direct/{ours,governor}`, `direct_deny/{ours,governor}`,
//! `two_quotas/{ours,governor_chain}`, `keyed_1m/{ours,governor}`,
//! `contended/{ours,governor}`. `ours` runs on the default (coarse) clock;
//! `direct/ours_tsc` and `direct_deny/ours_tsc` (feature `tsc`) run on the same TSC clock
//! as governor.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
#[cfg(feature = "tsc")]
use tower_ratelimit::clock::MonotonicClock;
use tower_ratelimit::{KeyedRateLimiter, Quota, Quotas, RateLimiter};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("nonzero")
}

/// A quota no bench loop can exhaust: mostly admitted.
const FAST: u32 = 1_000_000_000;

fn direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("direct");
    let ours = RateLimiter::new(Quota::per_second(FAST).expect("valid"));
    g.bench_function("ours", |b| {
        b.iter(|| black_box(ours.check().is_ok_and(|d| d.is_allowed())));
    });
    let gov = governor::RateLimiter::direct(governor::Quota::per_second(nz(FAST)));
    g.bench_function("governor", |b| b.iter(|| black_box(gov.check().is_ok())));
    #[cfg(feature = "tsc")]
    {
        let tsc = RateLimiter::with_clock(
            Quota::per_second(FAST).expect("valid"),
            MonotonicClock::new(),
        );
        g.bench_function("ours_tsc", |b| {
            b.iter(|| black_box(tsc.check().is_ok_and(|d| d.is_allowed())));
        });
    }
    g.finish();
}

fn direct_deny(c: &mut Criterion) {
    let mut g = c.benchmark_group("direct_deny");
    let ours = RateLimiter::new(Quota::per_hour(1).expect("valid"));
    g.bench_function("ours", |b| {
        b.iter(|| black_box(ours.check().is_ok_and(|d| d.is_allowed())));
    });
    let gov = governor::RateLimiter::direct(governor::Quota::per_hour(nz(1)));
    g.bench_function("governor", |b| b.iter(|| black_box(gov.check().is_ok())));
    #[cfg(feature = "tsc")]
    {
        let tsc =
            RateLimiter::with_clock(Quota::per_hour(1).expect("valid"), MonotonicClock::new());
        g.bench_function("ours_tsc", |b| {
            b.iter(|| black_box(tsc.check().is_ok_and(|d| d.is_allowed())));
        });
    }
    g.finish();
}

fn two_quotas(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_quotas");
    let set = Quotas::new([
        Quota::per_second(FAST).expect("valid"),
        Quota::per_minute(u32::MAX).expect("valid"),
    ])
    .expect("fits");
    let ours = RateLimiter::new(set);
    g.bench_function("ours", |b| {
        b.iter(|| black_box(ours.check().is_ok_and(|d| d.is_allowed())));
    });
    // governor has no quota sets: two limiters checked one after the other (which is
    // not even all-or-nothing: the first consumes when the second denies).
    let g1 = governor::RateLimiter::direct(governor::Quota::per_second(nz(FAST)));
    let g2 = governor::RateLimiter::direct(governor::Quota::per_minute(nz(u32::MAX)));
    g.bench_function("governor_chain", |b| {
        b.iter(|| black_box(g1.check().is_ok() && g2.check().is_ok()));
    });
    g.finish();
}

const KEYS: u64 = 1_000_000;

/// Visits every key once per round, in a scattered order (611953 is prime to 10^6).
fn spread(i: u64) -> u64 {
    (i.wrapping_mul(611_953)) % KEYS
}

fn keyed_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyed_1m");
    // Each key's state lasts hours, so nothing expires or is re-inserted mid-run, and a
    // burst of 1000 per key keeps it mostly admitted.
    let ours = KeyedRateLimiter::new(Quota::per_hour(1000).expect("valid"));
    for k in 0..KEYS {
        ours.check_key(&k).expect("cost 1");
    }
    let mut i = 0u64;
    g.bench_function("ours", |b| {
        b.iter(|| {
            i += 1;
            black_box(ours.check_key(&spread(i)).is_ok_and(|d| d.is_allowed()))
        });
    });
    drop(ours);
    let gov = governor::RateLimiter::keyed(governor::Quota::per_hour(nz(1000)));
    for k in 0..KEYS {
        let _ = gov.check_key(&k);
    }
    let mut i = 0u64;
    g.bench_function("governor", |b| {
        b.iter(|| {
            i += 1;
            black_box(gov.check_key(&spread(i)).is_ok())
        });
    });
    g.finish();
}

/// Time per check with both cores hammering one limiter.
fn contended_run(iters: u64, check: Arc<dyn Fn() -> bool + Send + Sync>) -> Duration {
    const THREADS: u64 = 2;
    let barrier = Arc::new(Barrier::new(THREADS as usize + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (check, barrier) = (check.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters.div_ceil(THREADS) {
                    black_box(check());
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    start.elapsed()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended");
    let ours = Arc::new(RateLimiter::new(Quota::per_second(FAST).expect("valid")));
    g.bench_function("ours", |b| {
        let ours = ours.clone();
        b.iter_custom(|iters| {
            let l = ours.clone();
            contended_run(
                iters,
                Arc::new(move || l.check().is_ok_and(|d| d.is_allowed())),
            )
        });
    });
    let gov = Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
        nz(FAST),
    )));
    g.bench_function("governor", |b| {
        let gov = gov.clone();
        b.iter_custom(|iters| {
            let l = gov.clone();
            contended_run(iters, Arc::new(move || l.check().is_ok()))
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    direct,
    direct_deny,
    two_quotas,
    keyed_1m,
    contended
);
criterion_main!(benches);
