//! Panics around the limiter — in the inner service, the renderer, the key closure or
//! the decision hook — leave it consistent: every other client keeps its exact count,
//! and the panicking requests are counted exactly as far as they got (a request admitted
//! before its handler or hook panicked stays counted; one that panicked before the store
//! decided, or whose denial's renderer panicked, consumed nothing).

mod common;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{Http, serve};
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, service_fn};
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::{RequestHead, from_fn};
use tower_ratelimit::render::Rejection;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::{Quota, RateLimitLayer, Verdict};

const LIMIT: usize = 5;

/// The key is the `x-api-key` header; the key "boom" makes the closure panic.
fn key_of(h: &RequestHead<'_>) -> Option<String> {
    let k = h.headers().get("x-api-key")?.to_str().ok()?;
    assert_ne!(k, "boom", "key closure panics (on purpose)");
    Some(k.to_owned())
}

fn req(key: &str, path: &str) -> Request<String> {
    Request::builder()
        .uri(path)
        .header("x-api-key", key)
        .body(String::new())
        .expect("valid request")
}

/// Outcome of one call: the status, or `None` if it panicked.
async fn call<S>(svc: &S, r: Request<String>) -> Option<StatusCode>
where
    S: Service<Request<String>, Response = Response<tower_ratelimit::body::ResponseBody<String>>>
        + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    // A panic may happen while building the future (key, store, hook, renderer run in
    // `call`) or while polling it (the inner service).
    let fut = std::panic::catch_unwind(AssertUnwindSafe(|| svc.call(r))).ok()?;
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .ok()
        .map(|r| r.expect("infallible").status())
}

#[tokio::test]
async fn panics_in_every_callback_keep_exact_counts() {
    let admitted_hook = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&admitted_hook);
    let inner_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&inner_calls);
    let inner = service_fn(move |r: Request<String>| {
        calls.fetch_add(1, SeqCst);
        let boom = r.uri().path() == "/boom-inner";
        async move {
            assert!(!boom, "inner service panics (on purpose)");
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }
    });
    let renderer = |r: &Rejection<'_>| {
        assert_ne!(
            r.uri().path(),
            "/boom-render",
            "renderer panics (on purpose)"
        );
        let mut res = Response::new(Bytes::from_static(b"no"));
        *res.status_mut() = r.status();
        res
    };
    let store = MemoryStore::with_clock(
        Quota::per_minute(LIMIT as u32).expect("quota"),
        ManualClock::new(),
    );
    let layer = RateLimitLayer::with_store(store)
        .key(from_fn(key_of))
        .renderer(renderer)
        .on_decision(move |e| {
            if e.verdict() == Verdict::Admitted {
                seen.fetch_add(1, SeqCst);
            }
            assert_ne!(
                e.head().uri().path(),
                "/boom-hook",
                "hook panics (on purpose)"
            );
        })
        .build();
    let svc = layer.layer(inner);

    let mut victim = Vec::new();
    let mut panicked = 0;
    for round in 0..8 {
        // Each round: one request of the victim, then one panicking request per kind.
        victim.push(call(&svc, req("victim", "/")).await);
        for (key, path) in [
            ("boom", "/"),
            ("inner", "/boom-inner"),
            ("hook", "/boom-hook"),
            ("render", if round < LIMIT { "/" } else { "/boom-render" }),
        ] {
            if call(&svc, req(key, path)).await.is_none() {
                panicked += 1;
            }
        }
    }
    let ok = Some(StatusCode::OK);
    let denied = Some(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(victim[..LIMIT], [ok; LIMIT], "{victim:?}");
    assert_eq!(victim[LIMIT..], [denied; 8 - LIMIT], "{victim:?}");
    // boom: 8 key panics; inner: 5 admitted then panicking, 3 denied; hook: 8 hook
    // panics (admitted or not, the hook runs); render: 3 renderer panics.
    assert_eq!(panicked, 8 + LIMIT + 8 + 3);

    // What each panicking client has left: exactly its limit minus what was admitted.
    let left = |key: &'static str| {
        let svc = svc.clone();
        async move {
            let mut n = 0;
            for _ in 0..LIMIT + 2 {
                if call(&svc, req(key, "/")).await == ok {
                    n += 1;
                }
            }
            n
        }
    };
    assert_eq!(left("victim").await, 0);
    assert_eq!(
        left("inner").await,
        0,
        "admitted before the handler panicked"
    );
    assert_eq!(
        left("render").await,
        0,
        "a denial's panic consumed nothing more"
    );
    // The hook panics after the store admitted: those requests were counted (their
    // panic still ran the hook's counter first), and the rest were denied.
    let hook_left = {
        let svc = svc.clone();
        let mut n = 0;
        for _ in 0..LIMIT + 2 {
            if call(&svc, req("hook", "/")).await == ok {
                n += 1;
            }
        }
        n
    };
    assert_eq!(hook_left, 0);
    // The key "boom" never reached the store: a fresh key "boom2" behaves as new.
    assert_eq!(left("boom2").await, LIMIT);
    // Inner calls: victim 5 + inner 5 (panicked) + render 5 + boom2 5.
    assert_eq!(inner_calls.load(SeqCst), 4 * LIMIT);
    // Admissions the hook saw: victim 5, inner 5, hook 5, render 5, boom2 5.
    assert_eq!(admitted_hook.load(SeqCst), 5 * LIMIT);
}

/// On a real axum server: a handler that panics for some requests (the connection's
/// task dies, the server lives on) does not disturb the exact count of the others.
#[tokio::test]
async fn a_panicking_handler_on_a_real_server() {
    let layer = RateLimitLayer::builder(Quota::per_minute(LIMIT as u32).expect("quota"))
        .key(from_fn(|h: &RequestHead<'_>| {
            h.headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }))
        .build();
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/boom",
        get(|| async {
            if std::hint::black_box(true) {
                panic!("handler panics (on purpose)");
            }
            "unreachable"
        }),
    );
    let addr = serve(app.layer(layer)).await;
    let http = Http::new(addr);
    let mut ok = 0;
    let mut boom_failed = 0;
    for _ in 0..(2 * LIMIT) {
        let r = http.send("GET", "/", &[("x-api-key", "victim")]).await;
        if r.status == StatusCode::OK {
            ok += 1;
        }
        // A fresh client each time: a panic takes its connection down.
        let boom = tokio::spawn(async move {
            Http::new(addr)
                .send("GET", "/boom", &[("x-api-key", "bomber")])
                .await
                .status
        })
        .await;
        if boom.is_err() {
            boom_failed += 1;
        }
    }
    assert_eq!(ok, LIMIT, "the victim's exact count");
    // The bomber's first LIMIT requests were admitted and panicked (no answer); the
    // rest were denied by the limiter with a 429, before reaching the handler.
    assert_eq!(boom_failed, LIMIT);
    let after = Http::new(addr)
        .send("GET", "/", &[("x-api-key", "bomber")])
        .await;
    assert_eq!(after.status, StatusCode::TOO_MANY_REQUESTS);
    let fresh = Http::new(addr)
        .send("GET", "/", &[("x-api-key", "new")])
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "the server keeps answering");
}
