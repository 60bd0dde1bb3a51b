//! `ClientIp` reads the client address without allocating: the header is walked in
//! place, right to left (a counting global allocator, this test binary only).

use std::net::{IpAddr, SocketAddr};

use http::Request;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use tower_ratelimit::key::{ClientIp, KeyExtractor, PeerIp, RequestHead};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The fewest allocations seen in three runs of `f`: the test harness's own thread
/// may allocate a few times at start-up, while a per-request allocation would show
/// 10,000 in every run.
fn allocations(f: impl Fn()) -> usize {
    (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            f();
            let change = region.change();
            change.allocations + change.reallocations
        })
        .min()
        .unwrap_or(usize::MAX)
}

fn request(peer: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder();
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut r = b.body(()).expect("valid request");
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().expect("socket addr"));
    r
}

#[test]
fn client_ip_allocates_nothing_per_request() {
    // One #[test] so no other test thread allocates while we count.
    let trusted = ["10.0.0.0/8", "2001:db8:ffff::/48"];
    let xff = ClientIp::x_forwarded_for(trusted).expect("valid");
    let fwd = ClientIp::forwarded(trusted).expect("valid");
    let real = ClientIp::x_real_ip(trusted).expect("valid");
    let long_forwarded =
        "for=\"_x\", ".repeat(100) + r#"for="[2001:db8::7]:4711";proto=https, for=10.0.0.2"#;
    let cases: Vec<(&ClientIp, Request<()>, &str)> = vec![
        (
            &xff,
            request(
                "10.0.0.1:80",
                &[
                    ("x-forwarded-for", "6.6.6.6, 198.51.100.9:5678"),
                    ("x-forwarded-for", "10.0.0.3, 10.0.0.2"),
                    ("forwarded", "for=1.2.3.4"),
                ],
            ),
            "198.51.100.9",
        ),
        (
            &fwd,
            request("10.0.0.1:80", &[("forwarded", long_forwarded.as_str())]),
            "2001:db8::",
        ),
        (
            &real,
            request("10.0.0.1:80", &[("x-real-ip", "198.51.100.10")]),
            "198.51.100.10",
        ),
        // Untrusted peer with headers (the warning path), and no header at all.
        (
            &xff,
            request("203.0.113.5:80", &[("x-forwarded-for", "1.2.3.4")]),
            "203.0.113.5",
        ),
        (&xff, request("10.0.0.1:80", &[]), "10.0.0.1"),
    ];
    for (extractor, req, want) in &cases {
        let head = RequestHead::from_request(req);
        let want: IpAddr = want.parse().expect("ip");
        assert_eq!(extractor.extract(&head), Ok(want), "warm-up");
        let n = allocations(|| {
            for _ in 0..10_000 {
                std::hint::black_box(extractor.extract(&head).expect("a key"));
            }
        });
        assert_eq!(n, 0, "{:?}", req.headers());
    }
    // PeerIp too, before and after its warning fired.
    let peer = PeerIp::new();
    let req = request("10.0.0.1:80", &[("x-forwarded-for", "1.2.3.4")]);
    let head = RequestHead::from_request(&req);
    let n = allocations(|| {
        for _ in 0..10_000 {
            std::hint::black_box(peer.extract(&head).expect("a key"));
        }
    });
    assert_eq!(n, 0);
}
