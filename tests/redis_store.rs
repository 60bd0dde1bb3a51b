//! The Redis store against a private `redis-server`: decisions on the server's clock,
//! state written only on admission with an expiry, bad input refused, and the deny
//! cache sparing Redis (counted with `INFO commandstats`).
#![cfg(feature = "redis")]

mod support;

use std::time::Duration;

use redis::Commands;
use tower_ratelimit::store::redis::{ConnectError, RedisStore};
use tower_ratelimit::store::{Check, Store, Tier, Tiers};
use tower_ratelimit::{CheckError, Outcome, Quota, Quotas, StoreError};

async fn check(store: &RedisStore, key: &str, cost: u32) -> Result<Outcome, StoreError> {
    match store.check(&key, Tier(0), cost) {
        Check::Ready(r) => r,
        Check::Pending(f) => f.await,
    }
}

/// Whether the check was answered without a round trip.
fn is_ready(store: &RedisStore, key: &str) -> bool {
    matches!(
        Store::<&str>::check(store, &key, Tier(0), 1),
        Check::Ready(_)
    )
}

const SCRIPT_COMMANDS: &[&str] = &["evalsha", "eval"];

/// Two quotas that cannot refill while a test runs (slow machines included).
fn slow_set() -> Quotas {
    Quotas::new([
        Quota::per_hour(4).expect("valid").named("burst"),
        Quota::new(120, Duration::from_secs(86_400)).expect("valid"),
    ])
    .expect("valid set")
}

#[tokio::test]
async fn burst_then_denial_on_the_server_clock() {
    if !support::redis_installed("burst_then_denial_on_the_server_clock") {
        return;
    }
    let server = support::RedisServer::start();
    let store = RedisStore::builder(slow_set())
        .connect(&server.url())
        .await
        .expect("connect");
    let quotas = Store::<&str>::quotas(&store, Tier(0)).clone();
    for expected_remaining in (0..4).rev() {
        let o = check(&store, "alice", 1).await.expect("decided");
        assert!(o.is_allowed());
        assert_eq!(
            o.decision(&quotas)
                .expect("the store's set")
                .binding()
                .remaining(),
            expected_remaining
        );
    }
    let denied = check(&store, "alice", 1).await.expect("decided");
    let d = denied.decision(&quotas).expect("the store's set");
    assert!(!d.is_allowed(), "the fifth request is denied");
    assert_eq!(d.denied_by().map(|q| q.quota().name()), Some("burst"));
    let wait = d.retry_after().expect("a denial has a wait");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(900));
    assert!(
        check(&store, "bob", 1).await.expect("decided").is_allowed(),
        "keys are independent"
    );
    // An unknown tier falls back to the default set (and its keys).
    let other = match store.check(&"alice", Tier(7), 1) {
        Check::Ready(r) => r,
        Check::Pending(f) => f.await,
    };
    assert!(!other.expect("decided").is_allowed());
}

#[tokio::test]
async fn a_denial_writes_nothing() {
    if !support::redis_installed("a_denial_writes_nothing") {
        return;
    }
    let server = support::RedisServer::start();
    let mut con = server.client();
    let store = RedisStore::builder(slow_set())
        .deny_cache(0)
        .connect(&server.url())
        .await
        .expect("connect");
    let keys = [0, 1].map(|i| store.redis_key(&"erin", Tier(0), i));
    let hash = keys[0]
        .strip_prefix("rl:{0:")
        .and_then(|k| k.strip_suffix("}:0"))
        .expect("documented layout with a shared hash tag");
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "a keyed hash, not the key: {}",
        keys[0]
    );
    assert_eq!(
        keys[1],
        format!("rl:{{0:{hash}}}:1"),
        "one tag per decision"
    );
    assert!(
        check(&store, "erin", 4)
            .await
            .expect("decided")
            .is_allowed()
    );
    let before: Vec<String> = con.mget(&keys).expect("MGET");
    let ttls_before: Vec<i64> = keys.iter().map(|k| con.pttl(k).expect("PTTL")).collect();
    assert!(
        !check(&store, "erin", 1)
            .await
            .expect("decided")
            .is_allowed()
    );
    let after: Vec<String> = con.mget(&keys).expect("MGET");
    let ttls_after: Vec<i64> = keys.iter().map(|k| con.pttl(k).expect("PTTL")).collect();
    assert_eq!(before, after, "a denial writes nothing");
    assert!(
        ttls_after.iter().zip(&ttls_before).all(|(a, b)| a <= b),
        "nor extends an expiry: {ttls_before:?} -> {ttls_after:?}"
    );
    // TATs are microseconds since the epoch: 4 requests of 15 min ahead of now.
    let tat: u64 = before[0].parse().expect("a number");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64;
    assert!(
        tat > now_us && tat <= now_us + 3_600_000_000,
        "{tat} vs {now_us}"
    );
}

#[tokio::test]
async fn state_expires_when_equivalent_to_empty() {
    if !support::redis_installed("state_expires_when_equivalent_to_empty") {
        return;
    }
    let server = support::RedisServer::start();
    let mut con = server.client();
    let quotas = Quotas::new([
        Quota::new(2, Duration::from_millis(200)).expect("valid"),
        Quota::new(3, Duration::from_millis(600)).expect("valid"),
    ])
    .expect("valid set");
    let store = RedisStore::builder(quotas)
        .deny_cache(0)
        .connect(&server.url())
        .await
        .expect("connect");
    let k0 = store.redis_key(&"carol", Tier(0), 0);
    let k1 = store.redis_key(&"carol", Tier(0), 1);
    assert!(
        check(&store, "carol", 2)
            .await
            .expect("decided")
            .is_allowed()
    );
    // Each quota's key expires when that quota is empty again: after cost * T.
    let ttl0: i64 = con.pttl(&k0).expect("PTTL");
    let ttl1: i64 = con.pttl(&k1).expect("PTTL");
    assert!(0 < ttl0 && ttl0 <= 200, "ttl {ttl0} ms");
    assert!(0 < ttl1 && ttl1 <= 400, "ttl {ttl1} ms");
    // Once every TAT has passed, Redis holds nothing for the client.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let exists: u32 = redis::cmd("EXISTS")
        .arg(&k0)
        .arg(&k1)
        .query(&mut con)
        .expect("EXISTS");
    assert_eq!(exists, 0);
    assert!(
        check(&store, "carol", 2)
            .await
            .expect("decided")
            .is_allowed()
    );
}

#[tokio::test]
async fn bad_input_is_an_error_not_a_panic() {
    if !support::redis_installed("bad_input_is_an_error_not_a_panic") {
        return;
    }
    let server = support::RedisServer::start();
    let quotas = Quotas::from(Quota::per_second(3).expect("valid"));
    let err = RedisStore::builder(quotas.clone())
        .prefix("a{b")
        .connect(&server.url())
        .await
        .expect_err("braces in the prefix");
    assert!(matches!(err, ConnectError::InvalidPrefix(_)));
    let err = RedisStore::builder(quotas.clone())
        .timeout(Duration::ZERO)
        .connect(&server.url())
        .await
        .expect_err("zero timeout");
    assert!(matches!(err, ConnectError::ZeroTimeout));
    assert!(
        RedisStore::builder(quotas.clone())
            .connect("not a url")
            .await
            .is_err()
    );
    let nobody = format!("redis://127.0.0.1:{}", support::free_port());
    let err = RedisStore::builder(quotas.clone())
        .connect(&nobody)
        .await
        .expect_err("nothing listens there");
    assert!(err.to_string().contains("Redis"), "{err}");

    let store = RedisStore::builder(quotas)
        .connect(&server.url())
        .await
        .expect("connect");
    assert!(matches!(
        check(&store, "k", 0).await,
        Err(StoreError::Check(CheckError::ZeroCost))
    ));
    assert!(matches!(
        check(&store, "k", 4).await,
        Err(StoreError::Check(CheckError::CostExceedsBurst {
            cost: 4,
            max_cost: 3
        }))
    ));
    // A key with braces, spaces and non-ASCII text is just a key.
    assert!(
        check(&store, "{weird} kéy}", 3)
            .await
            .expect("decided")
            .is_allowed()
    );
}

#[tokio::test]
async fn deny_cache_answers_an_over_limit_client_without_round_trips() {
    if !support::redis_installed("deny_cache_answers_an_over_limit_client_without_round_trips") {
        return;
    }
    let server = support::RedisServer::start();
    let mut con = server.client();
    let quotas = Quotas::from(Quota::per_hour(2).expect("valid"));
    let cached = RedisStore::builder(quotas.clone())
        .prefix("cached:")
        .connect(&server.url())
        .await
        .expect("connect");
    let uncached = RedisStore::builder(quotas.clone())
        .prefix("uncached:")
        .deny_cache(0)
        .connect(&server.url())
        .await
        .expect("connect");
    const REQUESTS: u64 = 100;

    let mut per_store = Vec::new();
    for store in [&cached, &uncached] {
        let start = support::command_calls(&mut con, SCRIPT_COMMANDS);
        let mut admitted = 0;
        for _ in 0..REQUESTS {
            let o = check(store, "mallory", 1).await.expect("decided");
            admitted += u64::from(o.is_allowed());
            if !o.is_allowed() {
                let wait = o
                    .decision(&quotas)
                    .expect("the store's set")
                    .retry_after()
                    .expect("denied");
                assert!(wait > Duration::from_secs(1700), "about 30 min: {wait:?}");
            }
        }
        assert_eq!(admitted, 2);
        per_store.push(support::command_calls(&mut con, SCRIPT_COMMANDS) - start);
    }
    // With the cache: 2 admissions and the first denial went to Redis; the other 97
    // denials cost nothing. Without it, every request is a script call.
    assert_eq!(per_store, vec![3, REQUESTS]);
    assert_eq!(cached.stats().round_trips, 3);
    assert_eq!(cached.stats().cache_hits, REQUESTS - 3);
    assert!(is_ready(&cached, "mallory"), "answered at once, no future");
    assert!(!is_ready(&uncached, "mallory"));
    eprintln!(
        "script calls for {REQUESTS} requests of one over-limit client: {} with the deny cache, {} without",
        per_store[0], per_store[1]
    );
}

#[tokio::test]
async fn deny_cache_lets_the_client_back_after_its_retry_after() {
    if !support::redis_installed("deny_cache_lets_the_client_back_after_its_retry_after") {
        return;
    }
    let server = support::RedisServer::start();
    let mut con = server.client();
    let quotas = Quotas::from(Quota::new(1, Duration::from_secs(1)).expect("valid"));
    let store = RedisStore::builder(quotas.clone())
        .connect(&server.url())
        .await
        .expect("connect");
    assert!(
        check(&store, "dave", 1)
            .await
            .expect("decided")
            .is_allowed()
    );
    let denied = check(&store, "dave", 1).await.expect("decided");
    let wait = denied
        .decision(&quotas)
        .expect("the store's set")
        .retry_after()
        .expect("the second request is denied");
    let calls = support::command_calls(&mut con, SCRIPT_COMMANDS);
    let again = check(&store, "dave", 1).await.expect("decided");
    assert!(!again.is_allowed());
    let left = again
        .decision(&quotas)
        .expect("the store's set")
        .retry_after()
        .expect("denied");
    assert!(
        left <= wait,
        "the cached wait counts down: {left:?} vs {wait:?}"
    );
    assert_eq!(support::command_calls(&mut con, SCRIPT_COMMANDS), calls);
    // After the wait, the request goes to Redis again and is admitted.
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert!(
        check(&store, "dave", 1)
            .await
            .expect("decided")
            .is_allowed()
    );
    assert_eq!(support::command_calls(&mut con, SCRIPT_COMMANDS), calls + 1);
    assert_eq!(store.deny_cache_len(), 0, "an admission clears the entry");
}

#[tokio::test]
async fn deny_cache_is_bounded() {
    if !support::redis_installed("deny_cache_is_bounded") {
        return;
    }
    let server = support::RedisServer::start();
    let store = RedisStore::builder(Tiers::new(Quota::per_hour(1).expect("valid")))
        .deny_cache(8)
        .connect(&server.url())
        .await
        .expect("connect");
    for i in 0..40 {
        let key = format!("client-{i}");
        assert!(check(&store, &key, 1).await.expect("decided").is_allowed());
        assert!(!check(&store, &key, 1).await.expect("decided").is_allowed());
    }
    assert_eq!(
        store.deny_cache_len(),
        8,
        "full, and never beyond its bound"
    );
    // Keys that did not fit are still denied, by Redis.
    assert!(
        !check(&store, "client-39", 1)
            .await
            .expect("decided")
            .is_allowed()
    );
}

/// 3/s has an interval of 333 333 334 ns, which the script counts as 333 334 µs: the
/// `remaining` the store reports must be what Redis then admits, not one fewer.
#[tokio::test]
async fn remaining_matches_what_redis_admits_for_fractional_micros() {
    if !support::redis_installed("remaining_matches_what_redis_admits_for_fractional_micros") {
        return;
    }
    let server = support::RedisServer::start();
    for limit in [3u32, 7, 3000] {
        let store = RedisStore::builder(Quota::per_second(limit).expect("valid"))
            .connect(&server.url())
            .await
            .expect("connect");
        let quotas = Store::<&str>::quotas(&store, Tier(0)).clone();
        let key = format!("frac-{limit}");
        // A fixed instant: nothing refills between the checks.
        let now_us = 1_800_000_000_000_000;
        let first = store
            .check_at_micros(&key, Tier(0), 1, now_us)
            .await
            .expect("decided");
        assert!(first.is_allowed());
        let reported = first
            .decision(&quotas)
            .expect("the store's set")
            .binding()
            .remaining();
        let mut admitted = 0;
        for _ in 0..=limit {
            let o = store
                .check_at_micros(&key, Tier(0), 1, now_us)
                .await
                .expect("decided");
            if !o.is_allowed() {
                break;
            }
            admitted += 1;
        }
        assert_eq!(
            reported, admitted,
            "{limit}/s: remaining after one request vs what Redis admitted next"
        );
        assert_eq!(admitted, u64::from(limit) - 1);
        assert_eq!(
            quotas
                .iter()
                .next()
                .map(|q| q.emission_interval().as_nanos() % 1000),
            Some(0),
            "the store's quotas carry the interval the script enforces"
        );
    }
}
