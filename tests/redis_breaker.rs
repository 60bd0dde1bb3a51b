//! The Redis store's breaker and its behaviour under faults, on private `redis-server`s.
//!
//! * `breaker_answers_at_once_while_redis_is_down` (normal test): with Redis killed, once
//!   the breaker opens every check is answered synchronously by the policy (counted: no
//!   check waits for Redis), one background probe at a time notices the restart, and
//!   the store goes back to Redis without being rebuilt.
//! * `faults_under_load_report` (`#[ignore]`, figures): killed, restarted empty,
//!   `DEBUG SLEEP`, `SIGSTOP`/`SIGCONT` and `maxclients` reached, under a loop of
//!   concurrent requests, for each failure policy; prints the slowest request and the
//!   time to recover. Run with
//!   `cargo test --all-features --test redis_breaker -- --ignored --nocapture`.
#![cfg(feature = "redis")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tower_ratelimit::store::redis::{FailurePolicy, RedisStore};
use tower_ratelimit::store::{Check, Store, Tier};
use tower_ratelimit::{Outcome, Quota, Quotas, StoreError};

const TIMEOUT: Duration = Duration::from_millis(100);

async fn check(store: &RedisStore, key: &str) -> Result<Outcome, StoreError> {
    match store.check(&key, Tier(0), 1) {
        Check::Ready(r) => r,
        Check::Pending(f) => tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("a check hung past its timeout"),
    }
}

async fn store(url: &str, policy: FailurePolicy, quotas: Quotas, prefix: &str) -> RedisStore {
    RedisStore::builder(quotas)
        .prefix(prefix)
        .timeout(TIMEOUT)
        .on_failure(policy)
        .deny_cache(0)
        .connect(url)
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_answers_at_once_while_redis_is_down() {
    if !support::redis_installed("breaker_answers_at_once_while_redis_is_down") {
        return;
    }
    let mut server = support::RedisServer::start();
    let quotas = Quotas::from(Quota::per_hour(5).expect("valid"));
    for policy in [
        FailurePolicy::FailClosed,
        FailurePolicy::FailOpen,
        FailurePolicy::FallbackLocal,
    ] {
        let prefix = format!("{policy:?}:");
        let s = store(&server.url(), policy, quotas.clone(), &prefix).await;
        assert!(check(&s, "warm").await.expect("Redis is up").is_allowed());
        server.kill();
        // A few failures in a row (each waited for Redis) open the breaker.
        let mut tries = 0;
        while s.stats().short_circuited == 0 {
            let _ = check(&s, "k").await;
            tries += 1;
            assert!(tries < 100, "the breaker never opened");
        }
        let before = s.stats();
        assert!(before.failures >= 3, "{before:?}");
        // Now: every check is answered at once (synchronously, by the policy).
        let mut admitted = 0;
        for i in 0..500 {
            let key = format!("c{}", i % 2);
            let Check::Ready(r) = s.check(&key.as_str(), Tier(0), 1) else {
                panic!("{policy:?}: a check went to Redis while the breaker was open");
            };
            match (policy, r) {
                (FailurePolicy::FailClosed, Err(StoreError::Unavailable(_))) => {}
                (FailurePolicy::FailOpen, Ok(o)) => assert!(o.is_allowed()),
                (FailurePolicy::FallbackLocal, Ok(o)) => admitted += u32::from(o.is_allowed()),
                (p, other) => panic!("{p:?}: {other:?}"),
            }
        }
        if policy == FailurePolicy::FallbackLocal {
            assert_eq!(admitted, 10, "the local limiter's exact count: 5 per key");
        }
        let after = s.stats();
        assert_eq!(after.failures, before.failures, "no check waited for Redis");
        assert_eq!(after.short_circuited, before.short_circuited + 500);

        // Back, empty: a probe notices, and checks go to Redis again (bounded wait).
        server.restart();
        let mut back = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let _ = check(&s, "probe-trigger").await;
            if s.stats().round_trips > after.round_trips {
                back = true;
                break;
            }
        }
        assert!(
            back,
            "{policy:?}: the store went back to Redis ({:?})",
            s.stats()
        );
        assert!(s.stats().probes >= 1);
        // The restarted server is empty: "warm" has its full quota again.
        let mut n = 0;
        while check(&s, "warm").await.expect("Redis is up").is_allowed() {
            n += 1;
            assert!(n <= 5);
        }
        assert_eq!(n, 5, "{policy:?}: exact count on Redis after recovery");
    }
}

/// Per-policy tallies of one load loop.
#[derive(Default)]
struct Load {
    requests: AtomicU64,
    errors: AtomicU64,
    slowest_us: AtomicU64,
}

/// A fault: how to cause it and how to end it.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Killed,
    RestartedEmpty,
    DebugSleep,
    Stopped,
    MaxClients,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures: run with --ignored --nocapture"]
async fn faults_under_load_report() {
    if !support::redis_installed("faults_under_load_report") {
        return;
    }
    let mut server =
        support::RedisServer::start_with(support::free_port(), &["--enable-debug-command", "yes"]);
    let policies = [
        FailurePolicy::FailOpen,
        FailurePolicy::FailClosed,
        FailurePolicy::FallbackLocal,
    ];
    println!(
        "fault | policy | requests | errors | slowest ms | recovered after ms | exact while healthy"
    );
    for fault in [
        Fault::Killed,
        Fault::RestartedEmpty,
        Fault::DebugSleep,
        Fault::Stopped,
        Fault::MaxClients,
    ] {
        for policy in policies {
            let prefix = format!("{fault:?}-{policy:?}:");
            // A big quota for the load, and a small one checked exactly while healthy.
            let load_store = store(
                &server.url(),
                policy,
                Quotas::from(Quota::per_second(1_000_000).expect("valid")),
                &prefix,
            )
            .await;
            let exact_store = store(
                &server.url(),
                FailurePolicy::FailClosed,
                Quotas::from(Quota::per_hour(50).expect("valid")),
                &format!("{prefix}exact:"),
            )
            .await;
            let stop = Arc::new(AtomicBool::new(false));
            let load = Arc::new(Load::default());
            let mut tasks = Vec::new();
            for task in 0..8u64 {
                let (s, stop, load) = (load_store.clone(), Arc::clone(&stop), Arc::clone(&load));
                tasks.push(tokio::spawn(async move {
                    for i in 0..100_000u64 {
                        if stop.load(Relaxed) {
                            break;
                        }
                        let t0 = Instant::now();
                        let r = check(&s, &format!("t{task}-{}", i % 16)).await;
                        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        load.slowest_us.fetch_max(us, Relaxed);
                        load.requests.fetch_add(1, Relaxed);
                        if r.is_err() {
                            load.errors.fetch_add(1, Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }));
            }
            // Healthy: the small quota's exact count, under the load.
            let mut exact = 0;
            for _ in 0..60 {
                if check(&exact_store, "one")
                    .await
                    .expect("healthy")
                    .is_allowed()
                {
                    exact += 1;
                }
            }
            load.slowest_us.store(0, Relaxed);
            let mut inspect = server.client();
            match fault {
                Fault::Killed => {
                    server.kill();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    server.restart();
                }
                Fault::RestartedEmpty => server.restart(),
                Fault::DebugSleep => {
                    let _: redis::RedisResult<()> =
                        redis::cmd("DEBUG").arg("SLEEP").arg(1).query(&mut inspect);
                }
                Fault::Stopped => {
                    server.freeze();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    server.thaw();
                }
                Fault::MaxClients => {
                    let _: redis::RedisResult<()> = redis::cmd("CONFIG")
                        .arg("SET")
                        .arg("maxclients")
                        .arg(1)
                        .query(&mut inspect);
                    let _: redis::RedisResult<()> = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("TYPE")
                        .arg("normal")
                        .arg("SKIPME")
                        .arg("yes")
                        .query(&mut inspect);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _: redis::RedisResult<()> = redis::cmd("CONFIG")
                        .arg("SET")
                        .arg("maxclients")
                        .arg(10_000)
                        .query(&mut inspect);
                }
            }
            drop(inspect);
            let fault_end = Instant::now();
            // Recovered: the load's checks reach Redis again (bounded wait).
            let at_end = load_store.stats().round_trips;
            let mut recovered = None;
            for _ in 0..600 {
                if load_store.stats().round_trips > at_end + 8 {
                    recovered = Some(fault_end.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.store(true, Relaxed);
            for t in tasks {
                t.await.expect("no load task panicked");
            }
            // Healthy again: a fresh key's exact count.
            let mut exact_after = 0;
            for _ in 0..60 {
                if check(&exact_store, "two")
                    .await
                    .is_ok_and(|o| o.is_allowed())
                {
                    exact_after += 1;
                }
            }
            println!(
                "{fault:?} | {policy:?} | {} | {} | {:.1} | {} | {exact}/50 before, {exact_after}/50 after",
                load.requests.load(Relaxed),
                load.errors.load(Relaxed),
                load.slowest_us.load(Relaxed) as f64 / 1000.0,
                recovered.map_or("never".to_owned(), |d| d.as_millis().to_string()),
            );
            assert_eq!(exact, 50, "exact count while healthy");
            assert_eq!(exact_after, 50, "exact count after recovery");
            assert!(
                recovered.is_some(),
                "{fault:?} {policy:?}: recovered without a restart"
            );
        }
    }
}
