//! The layer wraps any tower service: with the in-memory store it asks nothing of the
//! inner service, its future or the request body (no `Clone`, `Send` or `'static`).
//! A `tower::util::BoxService` (not `Clone`) and a `!Send` service on a tokio `LocalSet`,
//! each served over loopback HTTP/1.1, are limited exactly. With a store that decides
//! later (Redis), `Clone` is the only bound.

mod raw_http;

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::util::BoxService;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::{Global, GlobalKey};
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::store::{Check, Store, Tier, Tiers};
use tower_ratelimit::{Outcome, Quota, RateLimitLayer, StoreError};

fn three_per_minute() -> RateLimitLayer<GlobalKey, MemoryStore<Global, ManualClock>> {
    let store = MemoryStore::<Global, _>::with_clock(
        Quota::per_minute(3).expect("quota"),
        ManualClock::new(),
    );
    RateLimitLayer::with_store(store).build()
}

/// Statuses of `n` requests, each on its own loopback connection.
async fn statuses(addr: SocketAddr, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let reply = raw_http::exchange(addr, &raw_http::get("/", &[])).await;
        out.push(reply.status());
    }
    out
}

/// A `!Clone` service, in process: the limiter calls it only for admitted requests, and
/// the request body need not be `Send` (an `Rc`).
#[tokio::test]
async fn a_box_service_and_a_not_send_body_in_process() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let inner: BoxService<Request<Rc<str>>, Response<String>, Infallible> =
        BoxService::new(service_fn(move |req: Request<Rc<str>>| {
            c.fetch_add(1, SeqCst);
            let body = req.into_body().to_string();
            async move { Ok(Response::new(body)) }
        }));
    let mut svc = three_per_minute().layer(inner);
    let mut got = Vec::new();
    for i in 0..5 {
        let req = Request::new(Rc::<str>::from(format!("req {i}")));
        let res = svc.ready().await.expect("ready").call(req).await;
        let res = res.expect("infallible");
        got.push(res.status());
    }
    assert_eq!(got[..3], [StatusCode::OK; 3]);
    assert_eq!(got[3..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    assert_eq!(
        calls.load(SeqCst),
        3,
        "rejections never reach the inner service"
    );
    // The wrapped service is still reachable.
    let _: &mut BoxService<_, _, _> = svc.get_mut();
}

/// A `BoxService` served over loopback, made shareable the way a server needs (one
/// clone per connection) by `tower::buffer::Buffer`.
#[tokio::test]
async fn a_box_service_behind_a_buffer_over_loopback() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let inner: BoxService<Request<Incoming>, Response<Full<Bytes>>, Infallible> =
        BoxService::new(service_fn(move |_req: Request<Incoming>| {
            c.fetch_add(1, SeqCst);
            async { Ok(Response::new(Full::new(Bytes::from_static(b"hello")))) }
        }));
    let svc = tower::buffer::Buffer::new(three_per_minute().layer(inner), 64);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let got = statuses(addr, 5).await;
    server.abort();
    assert_eq!(got, [200, 200, 200, 429, 429]);
    assert_eq!(calls.load(SeqCst), 3);
}

/// Runs `f` on a `LocalSet` of a one-thread runtime (so it may spawn `!Send` tasks).
fn on_local_set<T>(f: impl Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

/// A service whose state and futures are `!Send` (`Rc`), served over loopback from a
/// `LocalSet` on one thread: the limiter adds no `Send` bound.
#[test]
fn a_not_send_service_on_a_local_set_over_loopback() {
    let calls = Rc::new(Cell::new(0usize));
    let got = on_local_set({
        let calls = Rc::clone(&calls);
        async move {
            let inner = service_fn(move |_req: Request<Incoming>| {
                let calls = Rc::clone(&calls);
                async move {
                    // Held across an await: the future is `!Send`.
                    tokio::task::yield_now().await;
                    calls.set(calls.get() + 1);
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hi"))))
                }
            });
            let svc = three_per_minute().layer(inner);
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::task::spawn_local(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let svc = TowerToHyperService::new(svc.clone());
                    tokio::task::spawn_local(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
            let got = statuses(addr, 5).await;
            server.abort();
            got
        }
    });
    assert_eq!(got, [200, 200, 200, 429, 429]);
    assert_eq!(calls.get(), 3);
}

/// Decides with an in-memory store after yielding to the runtime, as a network store
/// answers (the path a Redis store takes).
struct Later(Arc<MemoryStore<Global, ManualClock>>);

impl Store<Global> for Later {
    type Future = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

    fn check(&self, key: &Global, tier: Tier, cost: u32) -> Check<Self::Future> {
        let (inner, key) = (Arc::clone(&self.0), *key);
        Check::Pending(Box::pin(async move {
            tokio::task::yield_now().await;
            match inner.check(&key, tier, cost) {
                Check::Ready(r) => r,
                Check::Pending(f) => f.await,
            }
        }))
    }

    fn tiers(&self) -> &Tiers {
        self.0.tiers()
    }
}

/// With a store that decides later, the only bound is `Clone` (the response future owns
/// a ready clone while it waits): a `!Send` service and body on a `LocalSet` work, each
/// request answered after its own check, the inner service called only when admitted.
#[test]
fn an_async_store_needs_only_clone() {
    let calls = Rc::new(Cell::new(0usize));
    let got = on_local_set({
        let calls = Rc::clone(&calls);
        async move {
            let inner = service_fn(move |req: Request<Rc<str>>| {
                let calls = Rc::clone(&calls);
                async move {
                    tokio::task::yield_now().await;
                    calls.set(calls.get() + 1);
                    Ok::<_, Infallible>(Response::new(req.into_body().to_string()))
                }
            });
            let store = Later(Arc::new(MemoryStore::with_clock(
                Quota::per_minute(2).expect("quota"),
                ManualClock::new(),
            )));
            let mut svc = RateLimitLayer::with_store(store).build().layer(inner);
            // Several checks in flight at once, answered in any order.
            let mut pending = Vec::new();
            for i in 0..4 {
                let req = Request::new(Rc::<str>::from(format!("{i}")));
                pending.push(svc.ready().await.expect("ready").call(req));
            }
            let mut got = Vec::new();
            for f in pending {
                got.push(f.await.expect("infallible").status());
            }
            got
        }
    });
    let ok = got.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 2, "{got:?}");
    assert_eq!(
        got.iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2
    );
    assert_eq!(calls.get(), 2);
}
