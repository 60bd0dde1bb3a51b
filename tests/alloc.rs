//! The check path allocates nothing, and keyed state costs a bounded number of bytes per
//! key. A counting global allocator (this test binary only) proves both.

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::{KeyedRateLimiter, Quota, Quotas, RateLimiter};

/// Byte totals for the whole process (bytes per key), and allocation counts per thread:
/// the keyed table frees large old tables on a short-lived thread of its own, whose
/// allocations must not be charged to the checks measured here.
struct Counting;

static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

thread_local! {
    static THREAD_ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: allocations during thread teardown are simply not counted.
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the instrumented system allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract is passed on as is.
        unsafe { GLOBAL.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as above.
        unsafe { GLOBAL.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { GLOBAL.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: as above.
        unsafe { GLOBAL.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations and reallocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = THREAD_ALLOCS.with(Cell::get);
    f();
    THREAD_ALLOCS.with(Cell::get) - before
}

#[test]
fn no_allocation_per_check_and_bytes_per_key() {
    // One #[test] so no other test thread allocates while we count.
    for set in [
        Quotas::from(Quota::per_second(1_000_000).expect("v")),
        Quotas::claid(),
    ] {
        let direct = RateLimiter::new(set.clone());
        direct.check().expect("warm up");
        let n = allocations(|| {
            for _ in 0..10_000 {
                std::hint::black_box(direct.check().expect("cost 1").is_allowed());
            }
        });
        assert_eq!(n, 0, "direct {set:?}");

        let keyed = KeyedRateLimiter::new(set.clone());
        for k in 0..64u64 {
            keyed.check_key(&k).expect("warm up");
        }
        let n = allocations(|| {
            for i in 0..10_000u64 {
                let d = keyed.check_key(&(i % 64)).expect("cost 1");
                std::hint::black_box((d.is_allowed(), d.binding().remaining()));
            }
        });
        assert_eq!(n, 0, "keyed, existing keys {set:?}");
    }

    middleware_allow_path_allocates_nothing();
    middleware_denial_allocates_only_its_header_map();

    // Bytes per tracked key at one million keys.
    for (name, set) in [
        ("one quota", Quotas::from(Quota::per_hour(100).expect("v"))),
        ("claid set", Quotas::claid()),
    ] {
        let region = Region::new(GLOBAL);
        // A frozen clock: with a real one, early keys may expire and be reclaimed
        // before the millionth is inserted.
        let keyed = KeyedRateLimiter::with_clock(set, ManualClock::new());
        for k in 0..1_000_000u64 {
            keyed.check_key(&k).expect("cost 1");
        }
        assert_eq!(keyed.len(), 1_000_000);
        let change = region.change();
        let live = change.bytes_allocated as f64 + change.bytes_reallocated as f64
            - change.bytes_deallocated as f64;
        let per_key = live / 1e6;
        println!("bytes per tracked key at 1M keys ({name}): {per_key:.1}");
        assert!(per_key < 128.0, "{name}: {per_key} bytes per key");
        drop(keyed);
    }
}

/// The middleware decides in `call` with no boxing and no allocation: an admitted request
/// through `RateLimit` (headers off) allocates nothing beyond what the inner service does,
/// whatever the key: global, a closure's, the peer address, a header, the client address
/// behind trusted proxies.
fn middleware_allow_path_allocates_nothing() {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use tower::{Layer, service_fn};
    use tower_ratelimit::RateLimitLayer;
    use tower_ratelimit::headers::HeaderStyle;
    use tower_ratelimit::key::{ClientIp, HeaderKey, PeerIp};

    let inner = service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(()))
    });
    let open = || Quota::per_second(1_000_000_000).expect("valid");
    let plain = || http::Request::new(());
    let global = RateLimitLayer::builder(open())
        .headers(HeaderStyle::None)
        .build()
        .layer(inner);
    count_allow_path(global, plain, "global key");
    let keyed = RateLimitLayer::builder(open())
        .headers(HeaderStyle::None)
        .key(tower_ratelimit::key::from_fn(
            |_: &tower_ratelimit::key::RequestHead<'_>| Some(7u64),
        ))
        .build()
        .layer(inner);
    count_allow_path(keyed, plain, "closure key");

    // As a server builds them: the peer address in the extensions, header values sharing
    // the connection's read buffer.
    let buffer = bytes::Bytes::from(
        b"GET / HTTP/1.1\r\nx-api-key: k-0123456789abcdef\r\nx-forwarded-for: 203.0.113.9, 192.0.2.1\r\n"
            .to_vec(),
    );
    let served = move || {
        let mut req = http::Request::new(());
        req.extensions_mut()
            .insert(SocketAddr::from(([192, 0, 2, 7], 40000)));
        let value = |r| http::HeaderValue::from_maybe_shared(buffer.slice(r)).expect("valid");
        req.headers_mut().insert("x-api-key", value(27..45));
        req.headers_mut().insert("x-forwarded-for", value(64..86));
        req
    };
    let peer = RateLimitLayer::builder(open())
        .headers(HeaderStyle::None)
        .key(PeerIp::new())
        .build()
        .layer(inner);
    count_allow_path(peer, served.clone(), "PeerIp");
    let header = RateLimitLayer::builder(open())
        .headers(HeaderStyle::None)
        .key(HeaderKey::new(http::HeaderName::from_static("x-api-key")))
        .build()
        .layer(inner);
    count_allow_path(header, served.clone(), "HeaderKey");
    // The peer and the last hop are trusted proxies: the client is 203.0.113.9.
    let client = RateLimitLayer::builder(open())
        .headers(HeaderStyle::None)
        .key(ClientIp::x_forwarded_for(["192.0.2.0/24"]).expect("valid"))
        .build()
        .layer(inner);
    count_allow_path(client, served, "ClientIp");
}

fn count_allow_path<S>(mut svc: S, mut request: impl FnMut() -> http::Request<()>, what: &str)
where
    S: tower::Service<
            http::Request<()>,
            Response = http::Response<tower_ratelimit::body::ResponseBody<()>>,
        >,
    S::Error: std::fmt::Debug,
{
    use std::task::{Context, Poll, Waker};
    fn poll_once<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("every future here is ready at once"),
        }
    }
    // Warm up (first key insertion, lazy statics).
    let _ = poll_once(svc.call(request()));
    // Built before counting: a request's own extensions and headers are the server's
    // allocations, not the limiter's.
    let requests: Vec<_> = (0..1_000).map(|_| request()).collect();
    let n = allocations(|| {
        for req in requests {
            let res = poll_once(svc.call(req)).expect("infallible");
            assert_eq!(res.status(), http::StatusCode::OK);
        }
    });
    assert_eq!(n, 0, "allow path allocated ({what})");
}

/// A 429 (default problem+json body, IETF headers, `Retry-After`) allocates only the
/// response's `HeaderMap` (its index and its entries): the body and the header values
/// are written into per-thread buffers and shared, not allocated per response.
fn middleware_denial_allocates_only_its_header_map() {
    use std::convert::Infallible;
    use std::task::{Context, Poll, Waker};
    use tower::{Layer, Service, service_fn};
    use tower_ratelimit::RateLimitLayer;

    fn poll_once<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("every future here is ready at once"),
        }
    }
    let inner = service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(()))
    });
    let closed = Quota::per_hour(1)
        .and_then(|q| q.with_burst(1))
        .expect("valid");
    let mut svc = RateLimitLayer::builder(closed).build().layer(inner);
    // Warm up: the one admission, the first denial (lazy statics, per-thread buffers).
    for _ in 0..2 {
        let _ = poll_once(svc.call(http::Request::new(())));
    }
    let requests: Vec<_> = (0..1_000).map(|_| http::Request::new(())).collect();
    let mut responses = Vec::with_capacity(requests.len());
    let n = allocations(|| {
        for req in requests {
            responses.push(poll_once(svc.call(req)).expect("infallible"));
        }
    });
    for res in &responses {
        assert_eq!(res.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key("ratelimit"));
        assert!(res.headers().contains_key("retry-after"));
    }
    println!("allocations per denial: {:.3}", n as f64 / 1e3);
    // Two per response; a little room for a per-thread chunk when the wait crosses a
    // second during the loop (a new `Retry-After` and body are carved then).
    assert!(n <= 2 * 1_000 + 8, "{n} allocations for 1000 denials");
}
