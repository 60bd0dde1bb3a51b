//! The retry policy against a real server on loopback, on paused tokio time.

mod client_common;
use client_common as common;

use std::time::Duration;

use tower::retry::RetryLayer;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ratelimit::client::RetryPolicy;
use tower_ratelimit::{Quota, Quotas};

fn one_per_second() -> Quotas {
    Quotas::from(
        Quota::per_second(1)
            .expect("valid")
            .with_burst(1)
            .expect("valid"),
    )
}

/// A burst of 5 at a 1/s server: 1 admitted, 4 refused with `Retry-After: 1`; every
/// refused request comes back exactly when the server said, until all succeed.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_burst_of_429s_becomes_successes_at_the_hinted_times() {
    let server = common::start(one_per_second()).await;
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(10)
                .max_total(Duration::from_secs(60)),
        ))
        .service(common::client());
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut svc = svc.clone();
        let req = common::request(&server.url, &format!("r{i}"));
        tasks.push(tokio::spawn(
            async move { svc.ready().await?.call(req).await },
        ));
    }
    for t in tasks {
        let resp = t.await.expect("task").expect("request");
        assert_eq!(
            resp.status(),
            http::StatusCode::OK,
            "every request ends admitted"
        );
    }
    let log = server.log.lock().expect("log").clone();
    let rejected = log.iter().filter(|e| e.2 == 429).count();
    let ok = log.iter().filter(|e| e.2 == 200).count();
    println!("retry: ok={ok} rejected_then_retried={rejected}");
    assert_eq!(ok, 5);
    assert_eq!(
        rejected,
        4 + 3 + 2 + 1,
        "one admitted per second, the rest retried"
    );
    // Each retry of a request arrives when its previous 429 said (paused time: exact up
    // to the timer's 1 ms granularity).
    for i in 0..5 {
        let tag = format!("r{i}");
        let attempts: Vec<_> = log.iter().filter(|e| e.1 == tag).collect();
        for w in attempts.windows(2) {
            let hint = Duration::from_secs(w[0].3.expect("a 429 carries Retry-After"));
            let gap = w[1].0 - w[0].0;
            assert!(
                gap >= hint && gap <= hint + Duration::from_millis(2),
                "{tag}: waited {gap:?}, server asked {hint:?}"
            );
        }
    }
}

/// At the attempt cap the last 429 is returned as it is.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn attempts_are_capped() {
    let server = common::start(Quotas::from(
        Quota::new(1, Duration::from_secs(30)).expect("valid"),
    ))
    .await;
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::new().max_attempts(3)))
        .service(common::client());
    let first = svc
        .ready()
        .await
        .expect("ready")
        .call(common::request(&server.url, "a"))
        .await;
    assert_eq!(first.expect("ok").status(), http::StatusCode::OK);
    let start = tokio::time::Instant::now();
    let resp = svc
        .ready()
        .await
        .expect("ready")
        .call(common::request(&server.url, "b"))
        .await
        .expect("a response");
    // Retry-After 30 fits the 60 s total: one retry at 30 s is admitted.
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_secs(30));
    // Now a third: Retry-After 30 again, but 2 more attempts would need 60 s of waits.
    let mut capped = ServiceBuilder::new()
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(2)
                .max_total(Duration::from_secs(10)),
        ))
        .service(common::client());
    let resp = capped
        .ready()
        .await
        .expect("ready")
        .call(common::request(&server.url, "c"))
        .await
        .expect("a response");
    assert_eq!(
        resp.status(),
        http::StatusCode::TOO_MANY_REQUESTS,
        "30 s exceeds the 10 s budget"
    );
    let log = server.log.lock().expect("log").clone();
    assert_eq!(log.iter().filter(|e| e.1 == "c").count(), 1, "not retried");
}

/// Non-throttling failures are not retried.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn other_statuses_are_not_retried() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(move |_req: http::Request<String>| {
        c.fetch_add(1, Ordering::Relaxed);
        async {
            let mut r = http::Response::new(String::new());
            *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::new()))
        .service(inner);
    let req = http::Request::get("http://x.test/")
        .body(String::new())
        .expect("valid");
    let resp = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("response");
    assert_eq!(resp.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// Without hints the policy backs off exponentially with jitter, within [d/2, d].
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn backoff_without_hints_grows() {
    use std::sync::{Arc, Mutex};
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let start = tokio::time::Instant::now();
    let inner = tower::service_fn(move |req: http::Request<String>| {
        t.lock().expect("lock").push(start.elapsed());
        // gRPC RESOURCE_EXHAUSTED, Trailers-Only: HTTP 200 with grpc-status 8, no hint.
        let mut r = http::Response::new(req.into_body());
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("8"));
        async { Ok::<_, std::convert::Infallible>(r) }
    });
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            RetryPolicy::new()
                .max_attempts(4)
                .backoff(Duration::from_secs(1), Duration::from_secs(60)),
        ))
        .service(inner);
    let req = http::Request::get("http://x.test/")
        .body("payload".to_owned())
        .expect("valid");
    let resp = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("response");
    assert_eq!(resp.body(), "payload", "the body was replayed");
    let times = times.lock().expect("lock").clone();
    assert_eq!(times.len(), 4);
    for (i, w) in times.windows(2).enumerate() {
        let full = Duration::from_secs(1 << i);
        let gap = w[1] - w[0];
        assert!(
            gap >= full / 2 && gap <= full + Duration::from_millis(2),
            "retry {i}: {gap:?}"
        );
    }
}

/// Retry around pacing: a pacer configured too optimistically (8/s against a 4/s +
/// 120/min server) learns from the 429s (it holds the key for `Retry-After`) and the
/// retry policy replays the refused requests through it; every request ends admitted.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retry_and_pace_compose() {
    use tower_ratelimit::client::{ByHeader, PaceLayer};
    const N: usize = 20;
    let server = common::start(Quotas::claid()).await;
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::new().max_attempts(8)))
        .layer(PaceLayer::new(
            Quota::per_second(8).expect("valid"),
            ByHeader(http::header::AUTHORIZATION),
        ))
        .service(common::client());
    let tasks = common::spawn_requests(&svc, &server.url, N);
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("sent"), http::StatusCode::OK);
    }
    let log = server.log.lock().expect("log").clone();
    let rejected = log.iter().filter(|e| e.2 == 429).count();
    println!("retry+pace: ok={N} rejected_then_retried={rejected}");
    assert_eq!(log.iter().filter(|e| e.2 == 200).count(), N);
}
