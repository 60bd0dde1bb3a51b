//! Spoofing through forwarding headers, black-box over loopback: a client that forges
//! `Forwarded`, `X-Real-IP`, extra left-hand `X-Forwarded-For` entries and whole header
//! lines, random on every request, is admitted exactly its quota, and another client is
//! unaffected.
//!
//! End to end: client (bound to 127.0.0.2 or 127.0.0.3) -> a forwarding proxy in this
//! process (127.0.0.1, appending the client's address to `X-Forwarded-For` the way nginx
//! or HAProxy do, passing every other header through) -> the rate-limited axum server,
//! which trusts 127.0.0.1/32 only. Linux routes all of 127.0.0.0/8 to the loopback
//! interface, so the clients have addresses of their own.
#![cfg(feature = "axum")]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::ClientIp;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::{Quota, RateLimitLayer};

const QUOTA: u32 = 10;
const XFF: &str = "x-forwarded-for";

/// A small deterministic generator (xorshift64*), seeded per run and printed, so a
/// failure can be replayed with `SPOOF_SEED=<seed>`.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("SPOOF_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x5eed, |d| d.as_nanos() as u64)
            });
        println!("SPOOF_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn octet(&mut self) -> u8 {
        (self.next() >> 7) as u8
    }

    /// An address or token a forger might write into a forwarding header.
    fn forged_hop(&mut self) -> String {
        match self.below(12) {
            0 => format!("198.51.100.{}", self.octet()),
            1 => format!("203.0.{}.{}", self.octet(), self.octet()),
            // The trusted proxy, the other client, the client itself: all claims.
            2 => "127.0.0.1".into(),
            3 => "127.0.0.3".into(),
            4 => "127.0.0.2".into(),
            5 => format!("[2001:db8::{:x}]:{}", self.next() as u16, self.below(65536)),
            6 => format!("::ffff:198.51.100.{}", self.octet()),
            7 => "unknown".into(),
            8 => format!("_hidden{}", self.below(1000)),
            9 => format!(
                "{}.{}.{}.{}:{}",
                self.octet(),
                self.octet(),
                self.octet(),
                self.octet(),
                self.below(65536)
            ),
            10 => String::new(),
            _ => "\"for=\\\"[".into(),
        }
    }

    fn forged_forwarded(&mut self) -> String {
        let n = 1 + self.below(4);
        let elements: Vec<String> = (0..n)
            .map(|_| match self.below(4) {
                0 => format!("for={}", self.forged_hop()),
                1 => format!("for=\"{}\";proto=https", self.forged_hop().replace('"', "")),
                2 => format!("For=198.51.100.{};by=127.0.0.1", self.octet()),
                _ => "for=\"[2001:db8::1".into(),
            })
            .collect();
        elements.join(", ")
    }

    /// Forged headers for one request: client-written `X-Forwarded-For` lines (the
    /// proxy appends after them), `Forwarded` and `X-Real-IP`, in random amounts.
    fn forgeries(&mut self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        // Now and then many lines (the server accepts up to 100 header fields).
        let lines = if self.below(8) == 0 {
            40
        } else {
            self.below(6)
        };
        for _ in 0..lines {
            let n = self.below(8);
            let hops: Vec<String> = (0..n).map(|_| self.forged_hop()).collect();
            headers.push((XFF, hops.join(", ")));
        }
        for _ in 0..self.below(4) {
            headers.push(("forwarded", self.forged_forwarded()));
        }
        for _ in 0..self.below(3) {
            headers.push(("x-real-ip", self.forged_hop()));
        }
        // Interleave the names at random (all of these lines are the client's).
        for i in (1..headers.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            headers.swap(i, j);
        }
        headers
    }
}

/// The rate-limited server: `QUOTA` per hour per client on a frozen clock (so the count
/// is exact however slow the machine), counting what reaches the handler.
async fn limited_server(trusted: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let reached = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::with_clock(Quota::per_hour(QUOTA).expect("quota"), ManualClock::new());
    let layer = RateLimitLayer::with_store(store)
        .key(ClientIp::x_forwarded_for([trusted]).expect("valid cidr"))
        .build();
    let counter = reached.clone();
    let app = Router::new()
        .route(
            "/",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .layer(layer);
    (common::serve(app).await, reached)
}

/// How the proxy adds the client's address.
#[derive(Debug, Clone, Copy)]
enum Append {
    /// nginx `$proxy_add_x_forwarded_for`: every line the client sent joined with the
    /// client's address into one line.
    Join,
    /// HAProxy `option forwardfor`: one more line.
    NewLine,
}

#[derive(Clone)]
struct Proxy {
    upstream: SocketAddr,
    append: Append,
    client: Client<HttpConnector, Body>,
}

/// Forwards a request upstream from 127.0.0.1, appending the peer's address to
/// `X-Forwarded-For` and passing every other header through untouched.
async fn forward(
    State(p): State<Proxy>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let seen = peer.ip().to_string();
    match p.append {
        Append::Join => {
            let mut joined = Vec::new();
            for line in parts.headers.get_all(XFF) {
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(line.as_bytes());
            }
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(seen.as_bytes());
            parts.headers.remove(XFF);
            let v = HeaderValue::from_bytes(&joined).expect("joined lines are header bytes");
            parts.headers.insert(XFF, v);
        }
        Append::NewLine => {
            let v = HeaderValue::from_str(&seen).expect("an address");
            parts.headers.append(XFF, v);
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{}{path}", p.upstream)
        .parse()
        .expect("upstream uri");
    match p.client.request(Request::from_parts(parts, body)).await {
        Ok(res) => res.map(Body::new),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn proxy(upstream: SocketAddr, append: Append) -> SocketAddr {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let app = Router::new().fallback(forward).with_state(Proxy {
        upstream,
        append,
        client,
    });
    common::serve(app).await
}

/// An HTTP/1 client whose connections come from `source`.
struct Source {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Source {
    fn new(source: [u8; 4]) -> Source {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(IpAddr::V4(Ipv4Addr::from(source))));
        Source {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn get(&self, to: SocketAddr, headers: &[(&'static str, String)]) -> StatusCode {
        let mut req = http::Request::get(format!("http://{to}/"));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(Empty::new()).expect("valid request");
        self.client.request(req).await.expect("request").status()
    }
}

/// Sends `n` requests from `client`, each with fresh forgeries, cycling through
/// `targets`; returns how many were admitted (200) and checks the rest were 429.
async fn attack(rng: &mut Rng, client: &Source, targets: &[SocketAddr], n: usize) -> usize {
    let mut admitted = 0;
    for i in 0..n {
        let forged = rng.forgeries();
        match client.get(targets[i % targets.len()], &forged).await {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other} for {forged:?}"),
        }
    }
    admitted
}

#[tokio::test]
async fn forged_headers_through_appending_proxies_admit_exactly_the_quota() {
    let mut rng = Rng::seeded();
    let (server, reached) = limited_server("127.0.0.1/32").await;
    let nginx = proxy(server, Append::Join).await;
    let haproxy = proxy(server, Append::NewLine).await;
    let a = Source::new([127, 0, 0, 2]);
    let b = Source::new([127, 0, 0, 3]);

    // Client A through both proxies, and straight to the server (an untrusted peer:
    // its headers are ignored, and it is still keyed as 127.0.0.2).
    let sent = 6 * QUOTA as usize;
    let admitted = attack(&mut rng, &a, &[nginx, haproxy, server], sent).await;
    println!(
        "client 127.0.0.2: {sent} requests with forged headers, {admitted} admitted of a \
         quota of {QUOTA}; admitted over quota: {}",
        admitted.saturating_sub(QUOTA as usize)
    );
    assert_eq!(admitted, QUOTA as usize, "client A gets exactly its quota");

    // Client B, whose address A kept forging, still has its whole quota.
    let admitted_b = attack(&mut rng, &b, &[haproxy, nginx], sent).await;
    println!(
        "client 127.0.0.3: {sent} requests, {admitted_b} admitted; admitted over quota: {}",
        admitted_b.saturating_sub(QUOTA as usize)
    );
    assert_eq!(admitted_b, QUOTA as usize, "client B is unaffected by A");
    assert_eq!(reached.load(Ordering::SeqCst), 2 * QUOTA as usize);
}

/// The issue's own measurement, with the proxy's effect written by the client: the
/// server trusts all of 127.0.0.0/8, and the right-most `X-Forwarded-For` entry is the
/// one a proxy appended. Forged `Forwarded` (which the old "first header present" rule
/// read), `X-Real-IP` and left-hand entries change nothing.
#[tokio::test]
async fn right_most_entry_is_the_client_whatever_else_is_forged() {
    let mut rng = Rng::seeded();
    let (server, _) = limited_server("127.0.0.0/8").await;
    let direct = Source::new([127, 0, 0, 1]);
    let mut admitted = [0usize; 2];
    for (i, real) in ["203.0.113.7", "203.0.113.8"].into_iter().enumerate() {
        for _ in 0..(QUOTA as usize + 10) {
            let mut headers = rng.forgeries();
            let left: Vec<String> = (0..rng.below(4)).map(|_| rng.forged_hop()).collect();
            let mut line = left.join(", ");
            if !line.is_empty() {
                line.push_str(", ");
            }
            line.push_str(real);
            headers.push((XFF, line));
            headers.push(("forwarded", format!("for=198.51.100.{}", rng.octet())));
            match direct.get(server, &headers).await {
                StatusCode::OK => admitted[i] += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("unexpected {other} for {headers:?}"),
            }
        }
    }
    println!(
        "203.0.113.7 and 203.0.113.8: {} requests each, admitted {:?} of {QUOTA}; \
         admitted over quota: {}",
        QUOTA + 10,
        admitted,
        admitted
            .iter()
            .map(|&n| n.saturating_sub(QUOTA as usize))
            .sum::<usize>()
    );
    assert_eq!(admitted, [QUOTA as usize; 2]);
}
