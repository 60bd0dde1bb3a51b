//! Keys, tiers, cost, exemptions, shadow mode, missing keys, hooks and headers, on
//! loopback axum servers.

mod common;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use common::{Http, serve};
use http::StatusCode;
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::key::{KeyError, KeyExtractor, RequestHead};
use tower_ratelimit::store::{Tier, Tiers};
use tower_ratelimit::{MissingKey, Quota, Quotas, RateLimitLayer, Verdict};

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(n).expect("valid quota")
}

/// Keys by the `x-api-key` header (a local extractor, so the test does not depend on
/// the crate's own header extractor).
struct ApiKey;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key(String);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl KeyExtractor for ApiKey {
    type Key = Key;
    fn extract(&self, req: &RequestHead<'_>) -> Result<Key, KeyError> {
        req.headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|s| Key(s.to_owned()))
            .ok_or(KeyError::Missing("x-api-key header"))
    }
}

fn app(calls: &Arc<AtomicUsize>) -> Router {
    let c = Arc::clone(calls);
    let counted = move || {
        let c = Arc::clone(&c);
        async move {
            c.fetch_add(1, SeqCst);
            "ok"
        }
    };
    Router::new()
        .route("/a", get(counted.clone()))
        .route("/batch", get(counted.clone()))
        .route("/huge", get(counted.clone()))
        .route("/health", get(counted))
}

async fn statuses(http: &Http, path: &str, key: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            http.send("GET", path, &[("x-api-key", key)])
                .await
                .status
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn keys_are_limited_independently() {
    let layer = RateLimitLayer::builder(per_minute(2)).key(ApiKey).build();
    let http = Http::new(serve(app(&Arc::default()).layer(layer)).await);
    assert_eq!(statuses(&http, "/a", "alice", 3).await, [200, 200, 429]);
    assert_eq!(statuses(&http, "/a", "bob", 3).await, [200, 200, 429]);
}

#[tokio::test]
async fn tiers_give_some_keys_a_bigger_quota() {
    let tiers = Tiers::new(per_minute(1)).with(per_minute(3));
    let layer = RateLimitLayer::builder(tiers)
        .key(ApiKey)
        .tiers(|k: &Key| if k.0 == "gold" { Tier(1) } else { Tier(0) })
        .build();
    let http = Http::new(serve(app(&Arc::default()).layer(layer)).await);
    assert_eq!(statuses(&http, "/a", "basic", 2).await, [200, 429]);
    assert_eq!(statuses(&http, "/a", "gold", 4).await, [200, 200, 200, 429]);
}

#[tokio::test]
async fn cost_weighs_requests_and_an_impossible_cost_is_413() {
    let layer = RateLimitLayer::builder(per_minute(3))
        .key(ApiKey)
        .cost(|h: &RequestHead<'_>| match h.uri().path() {
            "/batch" => 2,
            "/huge" => 10,
            "/health" => 0,
            _ => 1,
        })
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let http = Http::new(serve(app(&calls).layer(layer)).await);
    assert_eq!(statuses(&http, "/batch", "k", 2).await, [200, 429]);
    assert_eq!(statuses(&http, "/a", "k", 2).await, [200, 429]);
    // Cost 0 is free.
    assert_eq!(statuses(&http, "/health", "k", 2).await, [200, 200]);
    let huge = http.send("GET", "/huge", &[("x-api-key", "other")]).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        huge.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(huge.header("retry-after"), None, "retrying cannot help");
    let problem: serde_json::Value = serde_json::from_slice(&huge.body).expect("problem+json");
    assert_eq!(problem["type"], "about:blank");
    assert_eq!(problem["status"], 413);
    assert_eq!(
        problem["detail"],
        "request cost 10 exceeds the largest the rate limit can ever admit (3)"
    );
    assert_eq!(calls.load(SeqCst), 4);
}

#[tokio::test]
async fn exempt_requests_pass_uncounted() {
    let layer = RateLimitLayer::builder(per_minute(1))
        .exempt(|h: &RequestHead<'_>| h.uri().path() == "/health")
        .stats(true)
        .build();
    let http = Http::new(serve(app(&Arc::default()).layer(layer.clone())).await);
    for _ in 0..3 {
        let r = http.get("/health").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.header("ratelimit").is_none(),
            "exempt responses carry no limit"
        );
    }
    assert_eq!(http.get("/a").await.status, StatusCode::OK);
    assert_eq!(http.get("/a").await.status, StatusCode::TOO_MANY_REQUESTS);
    let stats = layer.stats().expect("stats enabled");
    assert_eq!((stats.exempt, stats.admitted, stats.denied), (3, 1, 1));
}

#[tokio::test]
async fn shadow_mode_decides_and_records_but_never_rejects() {
    let layer = RateLimitLayer::builder(per_minute(1))
        .shadow(true)
        .stats(true)
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let http = Http::new(serve(app(&calls).layer(layer.clone())).await);
    for _ in 0..3 {
        let r = http.get("/a").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.header("ratelimit").is_some(),
            "shadow mode still sends headers"
        );
        assert!(r.header("retry-after").is_none());
    }
    let last = http.get("/a").await;
    assert!(
        last.header("ratelimit")
            .is_some_and(|v| v.contains(";r=0;"))
    );
    assert_eq!(calls.load(SeqCst), 4);
    let stats = layer.stats().expect("stats enabled");
    assert_eq!(
        (stats.admitted, stats.shadow_denied, stats.denied),
        (1, 3, 0)
    );
}

#[tokio::test]
async fn missing_key_is_400_by_default_or_passes_when_allowed() {
    let strict = RateLimitLayer::builder(per_minute(5)).key(ApiKey).build();
    let http = Http::new(serve(app(&Arc::default()).layer(strict)).await);
    let r = http.get("/a").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_slice(&r.body).expect("problem+json");
    assert_eq!(problem["type"], "about:blank");
    assert_eq!(problem["title"], "Bad Request");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("x-api-key"))
    );

    let lax = RateLimitLayer::builder(per_minute(5))
        .key(ApiKey)
        .on_missing_key(MissingKey::Allow)
        .build();
    let http = Http::new(serve(app(&Arc::default()).layer(lax)).await);
    assert_eq!(http.get("/a").await.status, StatusCode::OK);

    let custom = RateLimitLayer::builder(per_minute(5))
        .key(ApiKey)
        .on_missing_key(MissingKey::Reject(StatusCode::UNAUTHORIZED))
        .build();
    let http = Http::new(serve(app(&Arc::default()).layer(custom)).await);
    let r = http.get("/a").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let problem: serde_json::Value = serde_json::from_slice(&r.body).expect("problem+json");
    assert_eq!(
        (&problem["title"], &problem["status"]),
        (&"Unauthorized".into(), &401.into())
    );
}

#[tokio::test]
async fn the_hook_sees_every_decision_with_its_policy() {
    type Seen = (Verdict, Option<String>, Option<String>);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let quotas = Quotas::new([
        Quota::per_second(2).expect("quota").named("burst"),
        per_minute(100).named("minute"),
    ])
    .expect("set");
    let layer = RateLimitLayer::builder(quotas)
        .key(ApiKey)
        .on_missing_key(MissingKey::Allow)
        .on_decision(move |e| {
            sink.lock().expect("lock").push((
                e.verdict(),
                e.policy().map(str::to_owned),
                e.key().map(|k| k.to_string()),
            ));
        })
        .build();
    let http = Http::new(serve(app(&Arc::default()).layer(layer)).await);
    assert_eq!(statuses(&http, "/a", "k1", 3).await, [200, 200, 429]);
    assert_eq!(http.get("/a").await.status, StatusCode::OK);
    let seen = seen.lock().expect("lock").clone();
    let verdicts: Vec<_> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Admitted,
            Verdict::Admitted,
            Verdict::Denied,
            Verdict::KeyMissing
        ]
    );
    assert_eq!(seen[2].1.as_deref(), Some("burst"));
    assert_eq!(seen[2].2.as_deref(), Some("k1"));
    assert_eq!(seen[3].2, None);
}

#[tokio::test]
async fn headers_on_admitted_and_rejected_responses_in_each_style() {
    for (style, probe) in [
        (HeaderStyle::Ietf, "ratelimit-policy"),
        (HeaderStyle::Draft03, "ratelimit-limit"),
        (HeaderStyle::XRateLimit, "x-ratelimit-limit"),
    ] {
        let layer = RateLimitLayer::builder(Quotas::claid())
            .headers(style)
            .build();
        let http = Http::new(serve(app(&Arc::default()).layer(layer)).await);
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(http.get("/a").await);
        }
        let (ok, denied) = (&answers[0], &answers[4]);
        assert_eq!(ok.status, StatusCode::OK, "{style:?}");
        assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS, "{style:?}");
        assert!(ok.header(probe).is_some(), "{style:?}: {probe} on 200");
        assert!(denied.header(probe).is_some(), "{style:?}: {probe} on 429");
        assert!(ok.header("retry-after").is_none());
        let retry: u64 = denied
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("retry-after");
        assert!(retry >= 1);
    }
    let none = RateLimitLayer::builder(per_minute(1))
        .headers(HeaderStyle::None)
        .build();
    let http = Http::new(serve(app(&Arc::default()).layer(none)).await);
    let ok = http.get("/a").await;
    assert!(ok.headers.keys().all(|k| !k.as_str().contains("ratelimit")));
    let denied = http.get("/a").await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(denied.header("retry-after").is_some());
}
