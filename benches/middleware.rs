//! The middleware's cost per request, like for like against tower_governor: the same
//! global key, the same trivial inner service, driven in-process with one `ready` +
//! `call` per request on a cloned service, polled to completion by a minimal
//! `block_on` (every future here is ready at its first poll).
//!
//! Groups: `allow` (headers off), `allow_headers` (ours: IETF headers; tower_governor:
//! `use_headers()`), `deny` (each with its default rejection body and headers).

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::GlobalKeyExtractor;
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::{Quota, RateLimitLayer};

/// Polls `f` until it completes; the futures benchmarked here complete at once.
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

/// One request through a clone of `svc`, as a server connection would drive it.
fn drive<S>(svc: &S)
where
    S: Service<Request<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    let res = block_on(async move {
        let ready = svc.ready().await.expect("inner service is always ready");
        ready.call(Request::new(())).await
    });
    black_box(res.is_ok());
}

/// Our limit that never denies: one request per nanosecond.
fn ours_open(style: HeaderStyle) -> RateLimitLayer {
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1)).expect("1/ns is valid");
    RateLimitLayer::builder(quota).headers(style).build()
}

/// Our limit that denies everything after its first request.
fn ours_closed() -> RateLimitLayer {
    let quota = Quota::per_hour(1)
        .expect("valid")
        .with_burst(1)
        .expect("valid");
    RateLimitLayer::builder(quota).build()
}

fn allow(c: &mut Criterion) {
    let mut g = c.benchmark_group("allow");
    let bare = service_fn(ok);
    g.bench_function("bare", |b| b.iter(|| drive(&bare)));

    let ours = ours_open(HeaderStyle::None).layer(service_fn(ok));
    g.bench_function("ours", |b| b.iter(|| drive(&ours)));

    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .key_extractor(GlobalKeyExtractor)
        .finish()
        .expect("valid config");
    let theirs = GovernorLayer::new(config).layer(service_fn(ok));
    g.bench_function("tower_governor", |b| b.iter(|| drive(&theirs)));
    g.finish();
}

fn allow_headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("allow_headers");
    let ours = ours_open(HeaderStyle::Ietf).layer(service_fn(ok));
    g.bench_function("ours", |b| b.iter(|| drive(&ours)));

    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .key_extractor(GlobalKeyExtractor)
        .use_headers()
        .finish()
        .expect("valid config");
    let theirs = GovernorLayer::new(config).layer(service_fn(ok));
    g.bench_function("tower_governor", |b| b.iter(|| drive(&theirs)));
    g.finish();
}

fn deny(c: &mut Criterion) {
    let mut g = c.benchmark_group("deny");
    let ours = ours_closed().layer(service_fn(ok));
    drive(&ours); // spend the only request
    g.bench_function("ours", |b| b.iter(|| drive(&ours)));

    let config = GovernorConfigBuilder::default()
        .period(Duration::from_secs(3600))
        .burst_size(1)
        .key_extractor(GlobalKeyExtractor)
        .finish()
        .expect("valid config");
    let theirs = GovernorLayer::new(config).layer(service_fn(ok));
    drive(&theirs);
    g.bench_function("tower_governor", |b| b.iter(|| drive(&theirs)));
    g.finish();
}

criterion_group!(benches, allow, allow_headers, deny);
criterion_main!(benches);
