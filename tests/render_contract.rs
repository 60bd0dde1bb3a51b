//! Every answer the middleware gives itself goes through the renderer, in the client's
//! own protocol: a tonic client sees a proper `Status` for a missing key, a cost that
//! can never fit and a store that is down; an HTTP client gets problem+json; the
//! decision hook counts each of them as a rejection.
#![cfg(all(feature = "tonic", feature = "grpc"))]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use axum::Router;
use axum::routing::get;
use common::{Http, serve};
use http::{HeaderName, StatusCode};
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::{HeaderKey, HeaderToken, RequestHead};
use tower_ratelimit::render::{self, Clarifai};
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::store::{Check, Store, Tier, Tiers};
use tower_ratelimit::{MissingKey, Quota, RateLimitLayer, StoreError, Verdict};

/// A store whose every check fails, as a Redis store failing closed does.
struct DownStore(Tiers);

impl Store<HeaderToken> for DownStore {
    type Future = std::future::Ready<Result<tower_ratelimit::Outcome, StoreError>>;

    fn check(&self, _key: &HeaderToken, _tier: Tier, _cost: u32) -> Check<Self::Future> {
        Check::Ready(Err(StoreError::Unavailable(
            "connection refused (10.1.2.3:6379)".into(),
        )))
    }

    fn tiers(&self) -> &Tiers {
        &self.0
    }
}

fn api_key() -> HeaderKey {
    HeaderKey::new(HeaderName::from_static("x-api-key"))
}

/// The request's cost from its `x-cost` header (1 without one).
fn cost_header(h: &RequestHead<'_>) -> u32 {
    h.headers()
        .get("x-cost")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

async fn grpc_health<S>(layer: RateLimitLayer<HeaderKey, S>) -> SocketAddr
where
    S: Store<HeaderToken>,
    S::Future: tower_ratelimit::store::CheckFuture<tonic::service::Routes>,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("serve");
    });
    addr
}

async fn health_client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

fn request(key: Option<&str>, cost: Option<u32>) -> tonic::Request<HealthCheckRequest> {
    let mut req = tonic::Request::new(HealthCheckRequest::default());
    if let Some(k) = key {
        req.metadata_mut()
            .insert("x-api-key", k.parse().expect("ascii"));
    }
    if let Some(c) = cost {
        req.metadata_mut()
            .insert("x-cost", c.to_string().parse().expect("ascii"));
    }
    req
}

#[tokio::test]
async fn tonic_clients_get_a_status_for_every_rejection() {
    let rejected = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&rejected);
    let store = MemoryStore::with_clock(Quota::per_second(3).expect("quota"), ManualClock::new());
    let layer = RateLimitLayer::with_store(store)
        .key(api_key())
        .cost(cost_header)
        .renderer(render::Grpc::new())
        .on_decision(move |e| {
            if e.rejected() {
                seen.fetch_add(1, SeqCst);
            }
        })
        .build();
    let mut client = health_client(grpc_health(layer).await).await;

    let missing = client.check(request(None, None)).await.expect_err("no key");
    assert_eq!(missing.code(), Code::InvalidArgument, "{missing:?}");
    assert!(missing.message().contains("x-api-key"), "{missing:?}");

    let huge = client
        .check(request(Some("k"), Some(50)))
        .await
        .expect_err("cost 50 > burst 3");
    assert_eq!(huge.code(), Code::InvalidArgument, "{huge:?}");
    assert_eq!(
        huge.message(),
        "request cost 50 exceeds the largest the rate limit can ever admit (3)"
    );

    // The limit itself still holds exactly: 3 admitted, then RESOURCE_EXHAUSTED.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(match client.check(request(Some("k"), None)).await {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        });
    }
    assert_eq!(
        codes,
        [Code::Ok, Code::Ok, Code::Ok, Code::ResourceExhausted]
    );
    assert_eq!(rejected.load(SeqCst), 3, "missing key, cost, denial");

    let down =
        RateLimitLayer::with_store(DownStore(Tiers::new(Quota::per_second(3).expect("quota"))))
            .key(api_key())
            .renderer(render::Grpc::new())
            .build();
    let mut client = health_client(grpc_health(down).await).await;
    let status = client
        .check(request(Some("k"), None))
        .await
        .expect_err("store down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "rate limiter unavailable, retry later");
    let retry = status.get_error_details().retry_info().cloned();
    assert_eq!(
        retry.and_then(|r| r.retry_delay),
        Some(std::time::Duration::from_secs(1))
    );
}

fn app(calls: &Arc<AtomicUsize>) -> Router {
    let c = Arc::clone(calls);
    Router::new().route(
        "/",
        get(move || async move {
            c.fetch_add(1, SeqCst);
            "ok"
        }),
    )
}

fn problem(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("a problem+json body")
}

#[tokio::test]
async fn http_clients_get_problem_json_for_every_rejection() {
    let calls = Arc::new(AtomicUsize::new(0));
    let verdicts: Arc<std::sync::Mutex<Vec<(Verdict, bool)>>> = Arc::default();
    let sink = Arc::clone(&verdicts);
    // Clarifai's renderer: its own shape for a denial, problem+json for the rest.
    let layer = RateLimitLayer::builder(Quota::per_minute(2).expect("quota"))
        .key(api_key())
        .cost(cost_header)
        .renderer(Clarifai::new())
        .on_decision(move |e| sink.lock().expect("lock").push((e.verdict(), e.rejected())))
        .build();
    let http = Http::new(serve(app(&calls).layer(layer)).await);

    let r = http.get("/").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = problem(&r.body);
    assert_eq!(
        (p["type"].as_str(), p["status"].as_u64()),
        (Some("about:blank"), Some(400))
    );

    let r = http
        .send("GET", "/", &[("x-api-key", "k"), ("x-cost", "3")])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(&r.body)["title"], "Content Too Large");

    for _ in 0..2 {
        assert_eq!(
            http.send("GET", "/", &[("x-api-key", "k")]).await.status,
            200
        );
    }
    let r = http.send("GET", "/", &[("x-api-key", "k")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(problem(&r.body)["status"]["code"], "CONN_THROTTLED");
    assert_eq!(
        calls.load(SeqCst),
        2,
        "only admitted requests reach the handler"
    );

    let got = verdicts.lock().expect("lock").clone();
    assert_eq!(
        got,
        [
            (Verdict::KeyMissing, true),
            (Verdict::StoreError, true),
            (Verdict::Admitted, false),
            (Verdict::Admitted, false),
            (Verdict::Denied, true),
        ]
    );

    // A store that is down: 503 with the draft's temporary-reduced-capacity type, and
    // nothing of the store's own error (it names an internal host) in the answer.
    let down =
        RateLimitLayer::with_store(DownStore(Tiers::new(Quota::per_minute(2).expect("quota"))))
            .key(api_key())
            .build();
    let http = Http::new(serve(app(&calls).layer(down)).await);
    let r = http.send("GET", "/", &[("x-api-key", "k")]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("1"));
    let p = problem(&r.body);
    assert_eq!(
        p["type"],
        "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("10.1.2.3"));
    assert_eq!(calls.load(SeqCst), 2);
}

/// `rejected()` is false for a missing key the layer lets through.
#[tokio::test]
async fn an_allowed_missing_key_is_not_a_rejection() {
    let verdicts: Arc<std::sync::Mutex<Vec<(Verdict, bool)>>> = Arc::default();
    let sink = Arc::clone(&verdicts);
    let layer = RateLimitLayer::builder(Quota::per_minute(2).expect("quota"))
        .key(api_key())
        .on_missing_key(MissingKey::Allow)
        .on_decision(move |e| sink.lock().expect("lock").push((e.verdict(), e.rejected())))
        .build();
    let http = Http::new(serve(app(&Arc::default()).layer(layer)).await);
    assert_eq!(http.get("/").await.status, StatusCode::OK);
    assert_eq!(
        verdicts.lock().expect("lock").clone(),
        [(Verdict::KeyMissing, false)]
    );
}
