//! The asynchronous store path (what a Redis store takes): the decision arrives later,
//! the inner service is called only when admitted, and store failures answer 503.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use axum::Router;
use axum::routing::get;
use common::{Http, serve};
use http::StatusCode;
use tower::ServiceBuilder;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::Global;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::store::{Check, Store, Tier, Tiers};
use tower_ratelimit::{Outcome, Quota, RateLimitLayer, StoreError};

/// Decides with an in-memory store, but only after yielding to the runtime, the way a
/// network store answers; can be switched to fail.
struct Deferred {
    inner: Arc<MemoryStore<Global, ManualClock>>,
    failing: Arc<AtomicBool>,
}

impl Store<Global> for Deferred {
    type Future = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

    fn check(&self, key: &Global, tier: Tier, cost: u32) -> Check<Self::Future> {
        let inner = Arc::clone(&self.inner);
        let failing = self.failing.load(SeqCst);
        let key = *key;
        Check::Pending(Box::pin(async move {
            tokio::task::yield_now().await;
            if failing {
                return Err(StoreError::Unavailable("store down".into()));
            }
            match inner.check(&key, tier, cost) {
                Check::Ready(r) => r,
                Check::Pending(f) => f.await,
            }
        }))
    }

    fn tiers(&self) -> &Tiers {
        self.inner.tiers()
    }
}

#[tokio::test]
async fn pending_store_decisions_limit_and_fail_closed_with_503() {
    let failing = Arc::new(AtomicBool::new(false));
    let store = Deferred {
        inner: Arc::new(MemoryStore::with_clock(
            Quota::per_minute(2).expect("quota"),
            ManualClock::new(),
        )),
        failing: Arc::clone(&failing),
    };
    let layer = RateLimitLayer::with_store(store).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let app = Router::new().route(
        "/",
        get(move || async move {
            c.fetch_add(1, SeqCst);
            "ok"
        }),
    );
    // Through `ServiceBuilder` this time, then into the router.
    let http = Http::new(serve(app.layer(ServiceBuilder::new().layer(layer))).await);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = http.get("/").await;
        statuses.push(r.status);
        assert!(r.header("ratelimit").is_some());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(calls.load(SeqCst), 2);

    failing.store(true, SeqCst);
    let down = http.get("/").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        down.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(down.header("retry-after"), Some("1"));
    let problem: serde_json::Value = serde_json::from_slice(&down.body).expect("problem+json");
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
    );
    assert_eq!(problem["status"], 503);
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test]
async fn a_full_key_table_answers_503_not_500() {
    let layer = RateLimitLayer::builder(Quota::per_minute(5).expect("quota"))
        .key(tower_ratelimit::key::from_fn(
            |h: &tower_ratelimit::key::RequestHead<'_>| Some(h.uri().path().to_owned()),
        ))
        .max_keys(1)
        .build();
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }));
    let http = Http::new(serve(app.layer(layer)).await);
    assert_eq!(http.get("/a").await.status, StatusCode::OK);
    let full = http.get("/b").await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.header("retry-after"), Some("1"));
    assert_eq!(
        full.header("content-type"),
        Some("application/problem+json")
    );
    let problem: serde_json::Value = serde_json::from_slice(&full.body).expect("problem+json");
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
    );
}

#[tokio::test]
async fn a_full_key_table_can_admit_new_keys_untracked() {
    let layer = RateLimitLayer::builder(Quota::per_hour(2).expect("quota"))
        .key(tower_ratelimit::key::from_fn(
            |h: &tower_ratelimit::key::RequestHead<'_>| Some(h.uri().path().to_owned()),
        ))
        .max_keys(1)
        .at_capacity(tower_ratelimit::AtCapacity::AdmitUntracked)
        .build();
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }));
    let http = Http::new(serve(app.layer(layer)).await);
    // /a is tracked and goes over its limit; /b arrives at the cap.
    for _ in 0..2 {
        assert_eq!(http.get("/a").await.status, StatusCode::OK);
    }
    for _ in 0..5 {
        assert_eq!(
            http.get("/b").await.status,
            StatusCode::OK,
            "served untracked"
        );
        assert_eq!(
            http.get("/a").await.status,
            StatusCode::TOO_MANY_REQUESTS,
            "the tracked key keeps its limit"
        );
    }
}
