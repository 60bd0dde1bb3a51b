//! Misconfigured IP keys are loud, once: `PeerIp` behind a proxy, and `ClientIp` whose
//! proxy is not trusted or sets another header, each log one `warn` naming the fix, per
//! extractor (so per layer, across its clones and threads); correct setups log none.
#![cfg(feature = "axum")]

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use common::{Http, serve};
use http::StatusCode;
use tower_ratelimit::key::{ClientIp, KeyExtractor, PeerIp, RequestHead};
use tower_ratelimit::{Quota, RateLimitLayer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Collects the `warn` events of target `tower_ratelimit`, as `field=value` lines.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if meta.target() == "tower_ratelimit" && *meta.level() == Level::WARN {
            let mut line = String::new();
            event.record(&mut Line(&mut line));
            self.0.lock().expect("lock").push(line);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Serves `key` on two routes (axum clones the layer per route) and sends `n`
/// requests with `headers` to each; returns the warnings logged meanwhile.
async fn warnings<E: KeyExtractor>(key: E, headers: &[(&str, &str)], n: usize) -> Vec<String>
where
    E::Key: std::hash::Hash + Eq + Clone + Send + Sync,
{
    let warnings = Warnings::default();
    let _guard = tracing::subscriber::set_default(warnings.clone());
    let layer = RateLimitLayer::builder(Quota::per_second(1_000_000).expect("quota"))
        .key(key)
        .build();
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .layer(layer);
    let http = Http::new(serve(app).await);
    for _ in 0..n {
        for path in ["/a", "/b"] {
            assert_eq!(http.send("GET", path, headers).await.status, StatusCode::OK);
        }
    }
    warnings.lines()
}

#[tokio::test]
async fn peer_ip_behind_a_proxy_warns_once() {
    let lines = warnings(PeerIp::new(), &[("x-forwarded-for", "203.0.113.7")], 50).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let w = &lines[0];
    assert!(
        w.contains("requests from 127.0.0.1 carry X-Forwarded-For"),
        "{w}"
    );
    assert!(w.contains("ClientIp::x_forwarded_for("), "{w}");
    assert!(w.contains("peer=127.0.0.1"), "{w}");

    let lines = warnings(PeerIp::new(), &[("forwarded", "for=203.0.113.7")], 5).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("ClientIp::forwarded("), "{}", lines[0]);
}

#[tokio::test]
async fn correct_setups_do_not_warn() {
    assert_eq!(warnings(PeerIp::new(), &[], 50).await, Vec::<String>::new());
    let behind = ClientIp::x_forwarded_for(["127.0.0.0/8"]).expect("cidr");
    let lines = warnings(
        behind,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=1.2.3.4"),
        ],
        50,
    )
    .await;
    assert_eq!(lines, Vec::<String>::new());
    // Trusted proxy, chosen header present on some requests only, no other header.
    let behind = ClientIp::forwarded(["127.0.0.0/8"]).expect("cidr");
    assert_eq!(warnings(behind, &[], 20).await, Vec::<String>::new());
}

#[tokio::test]
async fn client_ip_with_an_untrusted_proxy_warns_once() {
    let wrong = ClientIp::x_forwarded_for(["10.0.0.0/8"]).expect("cidr");
    let lines = warnings(wrong, &[("x-forwarded-for", "203.0.113.7")], 50).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let w = &lines[0];
    assert!(
        w.contains("requests from 127.0.0.1 carry X-Forwarded-For"),
        "{w}"
    );
    assert!(w.contains("not a trusted proxy"), "{w}");
    assert!(w.contains("ClientIp::x_forwarded_for("), "{w}");
}

#[tokio::test]
async fn client_ip_reading_the_wrong_header_warns_once() {
    let wrong = ClientIp::x_forwarded_for(["127.0.0.0/8"]).expect("cidr");
    let lines = warnings(wrong, &[("forwarded", "for=203.0.113.7")], 50).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let w = &lines[0];
    assert!(w.contains("carry Forwarded but no X-Forwarded-For"), "{w}");
    assert!(w.contains("ClientIp::forwarded("), "{w}");
}

/// Clones of one extractor on many threads, all logging to one collector: exactly one
/// warning in all; a second extractor has its own.
#[test]
fn once_across_clones_and_threads() {
    let warnings = Warnings::default();
    let mut req = http::Request::builder()
        .header("x-real-ip", "203.0.113.7")
        .body(())
        .expect("request");
    req.extensions_mut()
        .insert("192.168.1.10:5000".parse::<SocketAddr>().expect("addr"));
    let req = Arc::new(req);
    for extractor in [PeerIp::new(), PeerIp::new()] {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (extractor, warnings, req) = (extractor.clone(), warnings.clone(), req.clone());
                std::thread::spawn(move || {
                    tracing::subscriber::with_default(warnings, || {
                        let head = RequestHead::from_request(&req);
                        for _ in 0..1_000 {
                            assert!(extractor.extract(&head).is_ok());
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
    }
    let lines = warnings.lines();
    assert_eq!(lines.len(), 2, "one per extractor: {lines:?}");
    assert!(
        lines[0].contains("requests from 192.168.1.10 carry X-Real-IP"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("ClientIp::x_real_ip("), "{}", lines[0]);
}

/// A public client sending forwarding headers straight to `PeerIp` is the right setup
/// (no proxy): no warning. To `ClientIp` it is worth one, without its address.
#[test]
fn public_peers() {
    let warnings = Warnings::default();
    let mut req = http::Request::builder()
        .header("x-forwarded-for", "1.2.3.4")
        .body(())
        .expect("request");
    req.extensions_mut()
        .insert("198.51.100.20:5000".parse::<SocketAddr>().expect("addr"));
    tracing::subscriber::with_default(warnings.clone(), || {
        let head = RequestHead::from_request(&req);
        let peer = PeerIp::new();
        let client = ClientIp::x_forwarded_for(["10.0.0.0/8"]).expect("cidr");
        for _ in 0..100 {
            assert_eq!(
                peer.extract(&head).expect("key").to_string(),
                "198.51.100.20"
            );
            assert_eq!(
                client.extract(&head).expect("key").to_string(),
                "198.51.100.20"
            );
        }
    });
    let lines = warnings.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("requests from a public address carry"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("198.51.100.20"), "{}", lines[0]);
}
