//! In-process driver for instruction counts: runs N requests through one tower service
//! stack (no sockets, no runtime), so `callgrind` counts divided by N are per request.
//! `benches/load/callgrind.sh` runs every stack under `valgrind --tool=callgrind
//! --toggle-collect` on [`measured`], so set-up and warm-up are not counted.
//!
//! ```sh
//! cargo build --release --example load_driver --features axum
//! target/release/examples/load_driver ours_headers 100000
//! ```
//!
//! Stacks: `bare`, `bare_served` (the baseline of the keyed stacks), `ours` (headers off), `ours_headers` (IETF), `ours_deny` (default
//! problem+json 429 with headers), `ours_peer_ip`, `ours_client_ip`, `ours_header_key`
//! (keyed, headers off, on requests shaped as a server hands them over), `governor`, `governor_headers`, `governor_deny`. The inner
//! service and the way each request is driven are those of `benches/middleware.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::GlobalKeyExtractor;
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::key::{ClientIp, HeaderKey, PeerIp};
use tower_ratelimit::{Quota, RateLimitLayer};

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

async fn ok(_req: Request<()>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

/// What each request looks like.
#[derive(Clone)]
enum Shape {
    /// `Request::new(())`, as `benches/middleware.rs` sends.
    Plain,
    /// As a server hands it over from a loopback proxy: the peer address in the
    /// extensions, header values sharing one read buffer (as hyper's do).
    Served(Bytes),
}

impl Shape {
    fn served() -> Self {
        Shape::Served(Bytes::from(BUFFER.to_vec()))
    }

    fn request(&self) -> Request<()> {
        let mut req = Request::new(());
        if let Shape::Served(buf) = self {
            let value = |r: std::ops::Range<usize>| {
                HeaderValue::from_maybe_shared(buf.slice(r)).expect("valid value")
            };
            let headers = req.headers_mut();
            headers.insert(HeaderName::from_static("x-forwarded-for"), value(33..44));
            headers.insert(HeaderName::from_static("x-api-key"), value(57..75));
            req.extensions_mut()
                .insert(SocketAddr::from(([127, 0, 0, 1], 40000)));
        }
        req
    }
}

const BUFFER: &[u8] =
    b"GET / HTTP/1.1\r\nx-forwarded-for: 203.0.113.7\r\nx-api-key: k-0123456789abcdef\r\n\r\n";

fn drive<S>(svc: &S, shape: &Shape) -> bool
where
    S: Service<Request<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    let req = shape.request();
    block_on(async move {
        let ready = svc.ready().await.expect("inner service is always ready");
        ready.call(req).await.is_ok()
    })
}

/// The only code callgrind counts (`--toggle-collect=*measured*`).
#[inline(never)]
fn measured<S>(svc: &S, shape: &Shape, n: u64) -> u64
where
    S: Service<Request<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut ok = 0;
    for _ in 0..n {
        ok += u64::from(black_box(drive(svc, shape)));
    }
    ok
}

fn run<S>(svc: S, shape: Shape, n: u64)
where
    S: Service<Request<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    for _ in 0..1000 {
        drive(&svc, &shape);
    }
    let ok = measured(&svc, &shape, n);
    println!("{n} requests, {ok} answered");
}

fn open() -> Quota {
    Quota::new(1_000_000_000, Duration::from_secs(1)).expect("1/ns is valid")
}

fn closed() -> Quota {
    Quota::per_hour(1)
        .expect("valid")
        .with_burst(1)
        .expect("valid")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let stack = args.next().unwrap_or_else(|| "bare".into());
    let n: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let none = HeaderStyle::None;
    match stack.as_str() {
        "bare" => run(service_fn(ok), Shape::Plain, n),
        "bare_served" => run(service_fn(ok), Shape::served(), n),
        "ours" => run(
            RateLimitLayer::builder(open())
                .headers(none)
                .build()
                .layer(service_fn(ok)),
            Shape::Plain,
            n,
        ),
        "ours_headers" => run(
            RateLimitLayer::builder(open())
                .build()
                .layer(service_fn(ok)),
            Shape::Plain,
            n,
        ),
        "ours_deny" => run(
            RateLimitLayer::builder(closed())
                .build()
                .layer(service_fn(ok)),
            Shape::Plain,
            n,
        ),
        "ours_peer_ip" => run(
            RateLimitLayer::builder(open())
                .key(PeerIp::new())
                .headers(none)
                .build()
                .layer(service_fn(ok)),
            Shape::served(),
            n,
        ),
        "ours_client_ip" => run(
            RateLimitLayer::builder(open())
                .key(ClientIp::x_forwarded_for(["127.0.0.1"])?)
                .headers(none)
                .build()
                .layer(service_fn(ok)),
            Shape::served(),
            n,
        ),
        "ours_header_key" => run(
            RateLimitLayer::builder(open())
                .key(HeaderKey::new(http::HeaderName::from_static("x-api-key")))
                .headers(none)
                .build()
                .layer(service_fn(ok)),
            Shape::served(),
            n,
        ),
        "governor" | "governor_headers" => {
            let mut b = GovernorConfigBuilder::default().key_extractor(GlobalKeyExtractor);
            b.per_nanosecond(1).burst_size(u32::MAX);
            if stack == "governor_headers" {
                let config = b.use_headers().finish().ok_or("invalid config")?;
                run(
                    GovernorLayer::new(config).layer(service_fn(ok)),
                    Shape::Plain,
                    n,
                );
            } else {
                let config = b.finish().ok_or("invalid config")?;
                run(
                    GovernorLayer::new(config).layer(service_fn(ok)),
                    Shape::Plain,
                    n,
                );
            }
        }
        "governor_deny" => {
            let mut b = GovernorConfigBuilder::default().key_extractor(GlobalKeyExtractor);
            b.period(Duration::from_secs(3600)).burst_size(1);
            let config = b.finish().ok_or("invalid config")?;
            run(
                GovernorLayer::new(config).layer(service_fn(ok)),
                Shape::Plain,
                n,
            );
        }
        other => return Err(format!("unknown stack {other:?}").into()),
    }
    Ok(())
}
