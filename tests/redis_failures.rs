//! Redis slow, down, and back: every check ends within the store's timeout with the
//! configured policy's answer (fail open, fail closed, fall back to a local limiter),
//! nothing panics, and the store recovers by itself (reconnecting and reloading its
//! script) when a fresh `redis-server` comes back on the same port.
//!
//! No wall-clock thresholds: a check on a frozen server must end with
//! `StoreError::Timeout` (the per-call timeout is what ended the wait), and a generous
//! outer guard turns a hang into a failure instead of a stuck test.
#![cfg(feature = "redis")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tower_ratelimit::store::redis::{FailurePolicy, RedisStore};
use tower_ratelimit::store::{Check, Store, Tier};
use tower_ratelimit::{Outcome, Quota, Quotas, StoreError};

const TIMEOUT: Duration = Duration::from_millis(100);
/// Far beyond any timeout: only a hang gets here.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn check(store: &RedisStore, key: &str) -> Result<Outcome, StoreError> {
    let f = async {
        match store.check(&key, Tier(0), 1) {
            Check::Ready(r) => r,
            Check::Pending(f) => f.await,
        }
    };
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .expect("a check hung past its timeout")
}

async fn store(server: &support::RedisServer, policy: FailurePolicy, quotas: Quotas) -> RedisStore {
    RedisStore::builder(quotas)
        .prefix(format!("{policy:?}:"))
        .timeout(TIMEOUT)
        .on_failure(policy)
        .deny_cache(0)
        .connect(&server.url())
        .await
        .expect("connect")
}

/// Polls `cond` every 20 ms, at most `tries` times.
async fn eventually(tries: usize, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_into_each_policy() {
    if !support::redis_installed("frozen_redis_times_out_into_each_policy") {
        return;
    }
    let server = support::RedisServer::start();
    let quotas = Quotas::from(Quota::per_hour(3).expect("valid"));
    let open = store(&server, FailurePolicy::FailOpen, quotas.clone()).await;
    let closed = store(&server, FailurePolicy::FailClosed, quotas.clone()).await;
    let local = store(&server, FailurePolicy::FallbackLocal, quotas.clone()).await;
    for s in [&open, &closed, &local] {
        assert!(check(s, "warm").await.expect("Redis is up").is_allowed());
    }

    // SIGSTOP: connections stay open and nothing is answered, the worst case.
    server.freeze();
    assert!(
        matches!(check(&closed, "k").await, Err(StoreError::Timeout)),
        "fail closed: the timeout's error"
    );
    for i in 0..3 {
        let o = check(&open, &format!("k{i}"))
            .await
            .expect("fail open answers");
        assert!(o.is_allowed(), "fail open admits");
        // Fail open even admits one key beyond its limit: Redis is not consulted.
        assert!(check(&open, "warm").await.expect("answers").is_allowed());
    }
    // The local fallback enforces the same quotas, per process.
    let mut admitted = 0;
    for _ in 0..5 {
        admitted += u32::from(
            check(&local, "k")
                .await
                .expect("local answers")
                .is_allowed(),
        );
    }
    assert_eq!(admitted, 3, "the local limiter holds the burst of 3");
    for s in [&open, &closed, &local] {
        assert!(s.stats().failures >= 1);
    }

    // Back: every store answers from Redis again, by itself.
    server.thaw();
    for s in [&open, &closed, &local] {
        let before = s.stats().round_trips;
        let mut back = false;
        for _ in 0..250 {
            if check(s, "after").await.is_ok() && s.stats().round_trips > before {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(back, "{:?} recovered", s.failure_policy());
    }
    // Redis kept its state across the freeze: "warm" still has 2 left there. (Checks
    // that timed out may still have been applied by Redis once it woke up: a timeout
    // says "unknown", not "not counted"; none of them touched "warm".)
    assert!(check(&closed, "warm").await.expect("up").is_allowed());
    assert!(check(&closed, "warm").await.expect("up").is_allowed());
    assert!(!check(&closed, "warm").await.expect("up").is_allowed());
}

#[derive(Default)]
struct Tally {
    admitted: AtomicU64,
    denied: AtomicU64,
    timeouts: AtomicU64,
    unavailable: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_redis_under_load() {
    if !support::redis_installed("killed_and_restarted_redis_under_load") {
        return;
    }
    let mut server = support::RedisServer::start();
    let quotas = Quotas::from(Quota::per_second(1_000_000).expect("valid"));
    let policies = [
        FailurePolicy::FailOpen,
        FailurePolicy::FailClosed,
        FailurePolicy::FallbackLocal,
    ];
    let mut stores = Vec::new();
    for p in policies {
        stores.push(store(&server, p, quotas.clone()).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Vec<Arc<Tally>> = policies.iter().map(|_| Arc::default()).collect();
    let mut load = Vec::new();
    for (s, tally) in stores.iter().zip(&tallies) {
        for task in 0..2 {
            let (s, tally, stop) = (s.clone(), Arc::clone(tally), Arc::clone(&stop));
            load.push(tokio::spawn(async move {
                // Bounded in count as well as by the stop flag.
                for i in 0..200_000u64 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    match check(&s, &format!("t{task}-{}", i % 64)).await {
                        Ok(o) if o.is_allowed() => tally.admitted.fetch_add(1, Relaxed),
                        Ok(_) => tally.denied.fetch_add(1, Relaxed),
                        Err(StoreError::Timeout) => tally.timeouts.fetch_add(1, Relaxed),
                        Err(_) => tally.unavailable.fetch_add(1, Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }));
        }
    }

    let up = eventually(500, || stores.iter().all(|s| s.stats().round_trips >= 20)).await;
    assert!(up, "load reached Redis");
    server.kill();
    // Answered by the policy: after waiting for Redis, or at once once the breaker opened.
    let failing = eventually(500, || {
        stores.iter().all(|s| {
            let st = s.stats();
            st.failures + st.short_circuited >= 10
        })
    })
    .await;
    assert!(failing, "every store saw the outage");
    // During the outage: fail open admits, fail closed errs, fallback decides locally.
    let closed_errors = tallies[1].timeouts.load(Relaxed) + tallies[1].unavailable.load(Relaxed);
    assert!(closed_errors >= 10, "fail closed returned errors");
    for i in [0, 2] {
        let t = &tallies[i];
        assert_eq!(
            t.timeouts.load(Relaxed) + t.unavailable.load(Relaxed),
            0,
            "{:?} never errs",
            policies[i]
        );
    }

    // A fresh, empty server on the same port: no data, no cached script.
    let at_restart: Vec<u64> = stores.iter().map(|s| s.stats().round_trips).collect();
    server.restart();
    let recovered = eventually(500, || {
        stores
            .iter()
            .zip(&at_restart)
            .all(|(s, &n)| s.stats().round_trips >= n + 20)
    })
    .await;
    stop.store(true, Relaxed);
    for task in load {
        tokio::time::timeout(HANG_GUARD, task)
            .await
            .expect("load task ended")
            .expect("load task did not panic");
    }
    assert!(
        recovered,
        "every store answers from Redis again after the restart"
    );
    let mut con = server.client();
    let script_loaded: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(redis::Script::new(tower_ratelimit::store::redis::SCRIPT).get_hash())
        .query(&mut con)
        .expect("SCRIPT EXISTS");
    assert_eq!(
        script_loaded,
        vec![true],
        "the script was reloaded (EVAL on NOSCRIPT)"
    );
    assert!(support::command_calls(&mut con, &["eval"]) >= 1);
    for (p, t) in policies.iter().zip(&tallies) {
        eprintln!(
            "{p:?}: admitted {} denied {} timeouts {} unavailable {}",
            t.admitted.load(Relaxed),
            t.denied.load(Relaxed),
            t.timeouts.load(Relaxed),
            t.unavailable.load(Relaxed)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_store_starts_without_redis_and_connects_when_it_appears() {
    if !support::redis_installed("lazy_store_starts_without_redis_and_connects_when_it_appears") {
        return;
    }
    let port = support::free_port();
    let store = RedisStore::builder(Quotas::from(Quota::per_hour(2).expect("valid")))
        .timeout(TIMEOUT)
        .on_failure(FailurePolicy::FailClosed)
        .connect_lazy(&format!("redis://127.0.0.1:{port}"))
        .expect("a lazy store needs no server yet");
    assert!(
        check(&store, "early").await.is_err(),
        "nothing listens yet: fail closed"
    );
    let _server = support::RedisServer::start_with(port, &[]);
    let mut answered = false;
    for _ in 0..250 {
        if let Ok(o) = check(&store, "late").await {
            assert!(o.is_allowed());
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "the store connected once Redis appeared");
    assert!(check(&store, "late").await.expect("up").is_allowed());
    assert!(!check(&store, "late").await.expect("up").is_allowed());
}

#[test]
fn a_lazy_store_outside_a_runtime_is_an_error() {
    let err = RedisStore::builder(Quotas::claid())
        .connect_lazy("redis://127.0.0.1:6379")
        .expect_err("no Tokio runtime here");
    assert!(matches!(
        err,
        tower_ratelimit::store::redis::ConnectError::NoRuntime
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_replaced() {
    if !support::redis_installed("a_silent_connection_is_replaced") {
        return;
    }
    let server = support::RedisServer::start();
    let proxy = support::PartitionProxy::start(server.port());
    let store = RedisStore::builder(Quotas::from(Quota::per_hour(1000).expect("valid")))
        .timeout(TIMEOUT)
        .on_failure(FailurePolicy::FailClosed)
        .deny_cache(0)
        .connect(&proxy.url())
        .await
        .expect("connect through the proxy");
    assert!(check(&store, "k").await.is_ok());
    // The connection stays open but nothing comes back: no error ever reports it.
    proxy.partition();
    assert!(matches!(check(&store, "k").await, Err(StoreError::Timeout)));
    let mut recovered = false;
    for _ in 0..100 {
        if check(&store, "k").await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        recovered,
        "after timeouts in a row the store opens a new connection"
    );
}
