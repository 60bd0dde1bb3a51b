//! Live reconfiguration of the Redis store, against a private `redis-server`: every
//! replica decides with its own sets until it is reloaded; the shared state carries over,
//! clamped to the new capacity.
#![cfg(feature = "redis")]

mod support;

use std::time::Duration;

use tower_ratelimit::store::redis::RedisStore;
use tower_ratelimit::store::{Store, Tier, Tiers};
use tower_ratelimit::{Outcome, Quotas};

fn set(s: &str) -> Quotas {
    s.parse().expect("valid")
}

async fn at(store: &RedisStore, now_us: u64) -> Outcome {
    store
        .check_at_micros(&"k", Tier::DEFAULT, 1, now_us)
        .await
        .expect("decided")
}

fn retry(store: &RedisStore, o: Outcome) -> Option<Duration> {
    let tiers = Store::<&str>::tiers_of(store, o.generation());
    o.decision(tiers.default_set())
        .expect("the generation's own set")
        .retry_after()
}

#[tokio::test]
async fn replicas_converge_as_each_reloads() {
    if !support::redis_installed("replicas_converge_as_each_reloads") {
        return;
    }
    let server = support::RedisServer::start();
    let connect = || async {
        RedisStore::builder(set("10/h name q"))
            .connect(&server.url())
            .await
            .expect("connect")
    };
    let (a, b) = (connect().await, connect().await);
    let t0: u64 = 1_000_000_000_000;
    for _ in 0..10 {
        assert!(at(&a, t0).await.is_allowed());
    }
    // Exhausted: a level of one hour. Replica `a` moves to 2/min (capacity 60 s).
    a.reload(Tiers::new(set("2/min name q"))).expect("reload");
    let o = at(&a, t0).await;
    assert_eq!(o.generation(), 1);
    assert_eq!(
        retry(&a, o),
        Some(Duration::from_secs(30)),
        "the level is clamped to the new 60 s capacity: one slot in 30 s, not in an hour"
    );
    // `b` still has 10/h and decides with it, over the shared state that `a` clamped to
    // 60 s: a level well inside its one-hour capacity, so it admits (this is why every
    // replica should get the new limits at about the same time).
    let o = at(&b, t0).await;
    assert_eq!(o.generation(), 0);
    assert!(o.is_allowed());
    b.reload(Tiers::new(set("2/min name q"))).expect("reload");
    let o = at(&b, t0).await;
    assert_eq!(
        retry(&b, o),
        Some(Duration::from_secs(30)),
        "b has converged"
    );
    assert_eq!(retry(&a, at(&a, t0).await), Some(Duration::from_secs(30)));
    // 30 s later one request fits, under the new set, on either replica; then none.
    let later = t0 + 30_000_000;
    assert!(at(&b, later).await.is_allowed());
    assert!(!at(&a, later).await.is_allowed());
    assert_eq!(
        Store::<&str>::tiers(&a).default_set().to_string(),
        "2/min name q"
    );
}
