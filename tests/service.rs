//! Tower-level properties: clones share one limit, `poll_ready` never holds a request
//! back, and a rejection never reaches the inner service.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};

use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::Global;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::{Quota, RateLimitLayer};

#[tokio::test]
async fn clones_share_the_limit_and_poll_ready_is_always_ready() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let inner = service_fn(move |_req: Request<String>| {
        c.fetch_add(1, SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::from("ok"))) }
    });
    let store = MemoryStore::<Global, _>::with_clock(
        Quota::per_minute(3).expect("quota"),
        ManualClock::new(),
    );
    let svc = RateLimitLayer::with_store(store).build().layer(inner);

    let mut statuses = Vec::new();
    for _ in 0..6 {
        // A fresh clone each time, as a server does per connection.
        let mut clone = svc.clone();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            matches!(clone.poll_ready(&mut cx), Poll::Ready(Ok(()))),
            "poll_ready must not apply backpressure, even over the limit"
        );
        let res = clone
            .call(Request::new(String::new()))
            .await
            .expect("infallible");
        statuses.push(res.status());
    }
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 3]);
    assert_eq!(
        calls.load(SeqCst),
        3,
        "rejections never reach the inner service"
    );

    // `oneshot` on yet another clone sees the same exhausted limit.
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}
