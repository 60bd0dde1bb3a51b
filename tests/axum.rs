//! The layer around real axum servers on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use axum::Router;
use axum::routing::get;
use common::{Http, serve};
use http::StatusCode;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::{Global, PeerIp};
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::{Quota, RateLimitLayer};

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(n).expect("valid quota")
}

/// A router with two routes that count how often the handlers run.
fn counted(calls: &Arc<AtomicUsize>) -> Router {
    let a = Arc::clone(calls);
    let b = Arc::clone(calls);
    Router::new()
        .route(
            "/a",
            get(move || async move {
                a.fetch_add(1, SeqCst);
                "a"
            }),
        )
        .route(
            "/b",
            get(move || async move {
                b.fetch_add(1, SeqCst);
                "b"
            }),
        )
}

#[tokio::test]
async fn limit_holds_across_routes_and_rejects_before_the_handler() {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::with_store(MemoryStore::<Global, _>::with_clock(
        per_minute(3),
        clock.clone(),
    ))
    .build();
    let calls = Arc::new(AtomicUsize::new(0));
    // `Router::layer` wraps each route separately: the limit must still be one limit.
    // That this compiles is the proof that no `HandleErrorLayer` is needed: axum only
    // accepts layers whose service error is `Infallible`, and ours keeps the inner one.
    let addr = serve(counted(&calls).layer(layer)).await;
    let http = Http::new(addr);

    let mut statuses = Vec::new();
    for path in ["/a", "/b", "/a", "/b", "/a"] {
        statuses.push(http.get(path).await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(
        calls.load(SeqCst),
        3,
        "denied requests never reach a handler"
    );

    // One emission interval (20 s) later exactly one more fits.
    clock.advance(std::time::Duration::from_secs(20));
    assert_eq!(http.get("/b").await.status, StatusCode::OK);
    assert_eq!(http.get("/a").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(SeqCst), 4);
}

#[tokio::test]
async fn limit_holds_across_layer_clones_and_servers() {
    let clock = ManualClock::new();
    let layer =
        RateLimitLayer::with_store(MemoryStore::<Global, _>::with_clock(per_minute(2), clock))
            .build();
    let calls = Arc::new(AtomicUsize::new(0));
    // Two servers, each with its own clone of the layer: one shared limit.
    let one = Http::new(serve(counted(&calls).layer(layer.clone())).await);
    let two = Http::new(serve(counted(&calls).layer(layer)).await);
    assert_eq!(one.get("/a").await.status, StatusCode::OK);
    assert_eq!(two.get("/a").await.status, StatusCode::OK);
    assert_eq!(one.get("/b").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(two.get("/b").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test]
async fn rejection_has_retry_after_and_a_typed_body() {
    let clock = ManualClock::new();
    let layer =
        RateLimitLayer::with_store(MemoryStore::<Global, _>::with_clock(per_minute(1), clock))
            .build();
    let http = Http::new(serve(counted(&Arc::default()).layer(layer)).await);
    assert_eq!(http.get("/a").await.status, StatusCode::OK);
    let denied = http.get("/a").await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = denied
        .header("retry-after")
        .expect("retry-after on a 429")
        .parse()
        .expect("delay-seconds");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(denied.header("content-type").is_some());
    assert!(!denied.body.is_empty());
}

#[tokio::test]
async fn peer_ip_keys_limit_each_client() {
    let layer = RateLimitLayer::builder(per_minute(1)).key(PeerIp).build();
    let addr: SocketAddr = serve(counted(&Arc::default()).layer(layer)).await;
    let http = Http::new(addr);
    assert_eq!(http.get("/a").await.status, StatusCode::OK);
    assert_eq!(http.get("/a").await.status, StatusCode::TOO_MANY_REQUESTS);
}
