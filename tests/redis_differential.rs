//! The Redis store and the in-memory store give identical decisions for the same
//! sequences of requests (quotas, tiers, keys, costs, times), time being injected into
//! the script. Quotas have whole-microsecond intervals and a resolution that divides a
//! microsecond, so both stores must agree exactly, down to every TAT.
#![cfg(feature = "redis")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::store::redis::RedisStore;
use tower_ratelimit::store::{Check, Store, Tier, Tiers};
use tower_ratelimit::{Quota, Quotas};

/// A realistic "now": microseconds since the epoch in late 2023.
const T0_US: u64 = 1_700_000_000_000_000;

fn quota_set() -> impl Strategy<Value = Quotas> {
    (1usize..=4)
        .prop_flat_map(|n| {
            // Longer intervals for small sets; larger sets must pack into 64 bits at a
            // resolution of at most 8 ns to be exactly comparable.
            let max_t_us = [1_000_000, 40_000, 1_500, 50][n - 1];
            (
                prop::collection::vec((1u64..=max_t_us, 1u32..=4, 1u32..=10), n),
                any::<bool>(),
            )
        })
        .prop_filter_map("resolution must divide 1 µs", |(mut v, twin)| {
            // Sometimes two quotas wait exactly as long: the first must be named.
            if twin && v.len() > 1 {
                v[1] = v[0];
            }
            let quotas = v
                .into_iter()
                .map(|(t_us, limit, burst)| {
                    Quota::new(limit, Duration::from_micros(t_us * u64::from(limit)))
                        .and_then(|q| q.with_burst(burst))
                })
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let set = Quotas::new(quotas).ok()?;
            (1000 % set.resolution().as_nanos() == 0).then_some(set)
        })
}

#[derive(Debug, Clone)]
struct Op {
    key: u8,
    tier: usize,
    cost: u32,
    dt_us: i64,
}

fn scenario() -> impl Strategy<Value = (Quotas, Quotas, Vec<Op>)> {
    (quota_set(), quota_set()).prop_flat_map(|(a, b)| {
        let span = a
            .iter()
            .chain(b.iter())
            .map(|q| q.emission_interval().as_micros() as i64 * i64::from(q.burst()))
            .max()
            .unwrap_or(1_000);
        // Mostly simultaneous or close requests (bursts hit their caps exactly), some
        // far apart, some with the clock stepping back; mostly valid costs.
        let dt = prop_oneof![
            4 => Just(0i64),
            4 => 0..=span / 8,
            2 => -(span / 8)..=span,
        ];
        let cost = prop_oneof![8 => 1u32..=2, 2 => 0u32..=11];
        let op = (0u8..3, 0usize..3, cost, dt).prop_map(|(key, tier, cost, dt_us)| Op {
            key,
            tier,
            cost,
            dt_us,
        });
        (Just(a), Just(b), prop::collection::vec(op, 1..60))
    })
}

#[test]
fn redis_decides_exactly_like_memory() {
    if !support::redis_installed("redis_decides_exactly_like_memory") {
        return;
    }
    let server = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let case = AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |((a, b, ops) in scenario())| {
        let n = case.fetch_add(1, Ordering::Relaxed);
        let tiers = Tiers::new(a).with(b);
        let clock = ManualClock::new();
        let memory = MemoryStore::<String, _>::with_clock(tiers.clone(), clock.clone());
        let redis = rt
            .block_on(
                RedisStore::builder(tiers)
                    .prefix(format!("diff{n}:"))
                    .connect(&server.url()),
            )
            .expect("connect to the private redis-server");
        let mut now = T0_US;
        for (i, op) in ops.iter().enumerate() {
            now = now.saturating_add_signed(op.dt_us).max(T0_US);
            clock.set_ns(now * 1000);
            let key = format!("k{}", op.key);
            let mem = match memory.check(&key, Tier(op.tier), op.cost) {
                Check::Ready(r) => r.map_err(|e| e.to_string()),
                Check::Pending(_) => panic!("the memory store answers at once"),
            };
            let red = rt
                .block_on(redis.check_at_micros(&key, Tier(op.tier), op.cost, now))
                .map_err(|e| e.to_string());
            prop_assert_eq!(&mem, &red, "op {} of {:?}", i, ops);
        }
    });
}
