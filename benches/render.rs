//! Per-response cost of the header styles and the renderers.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method, Uri};
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::headers::{self, HeaderStyle};
use tower_ratelimit::render::{Claid, Clarifai, ProblemJson, Rejection, Renderer};
use tower_ratelimit::{Quotas, RateLimiter};

fn bench(c: &mut Criterion) {
    let limiter = RateLimiter::with_clock(Quotas::claid(), ManualClock::new());
    let admitted = limiter.check().expect("check");
    let mut denied = limiter.check().expect("check");
    while denied.is_allowed() {
        denied = limiter.check().expect("check");
    }
    let mut g = c.benchmark_group("headers");
    for (name, style) in [
        ("ietf", HeaderStyle::Ietf),
        ("draft03", HeaderStyle::Draft03),
        ("xratelimit", HeaderStyle::XRateLimit),
    ] {
        let prepared = style.prepare(limiter.quotas());
        g.bench_function(format!("{name}_prepared"), |b| {
            b.iter(|| {
                let mut h = HeaderMap::new();
                prepared.apply(black_box(&admitted), &mut h);
                h
            });
        });
    }
    g.bench_function("ietf_simple", |b| {
        b.iter(|| {
            let mut h = HeaderMap::new();
            HeaderStyle::Ietf.apply(black_box(&admitted), &mut h);
            h
        });
    });
    g.bench_function("retry_after", |b| {
        b.iter(|| headers::retry_after(black_box(&denied)));
    });
    g.finish();

    let mut g = c.benchmark_group("render");
    let (method, uri, req_headers) = (Method::GET, Uri::from_static("/"), HeaderMap::new());
    let rejection = Rejection::new(denied, &method, &uri, &req_headers);
    g.bench_function("problem_json", |b| {
        b.iter(|| ProblemJson::new().render(black_box(&rejection)));
    });
    g.bench_function("clarifai", |b| {
        b.iter(|| Clarifai::new().render(black_box(&rejection)));
    });
    g.bench_function("claid", |b| {
        b.iter(|| Claid::new().render(black_box(&rejection)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
