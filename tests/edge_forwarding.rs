//! Malformed forwarding and `Authorization` headers at the edge, written byte for byte
//! on raw TCP to real axum servers on loopback: 8 KiB forwarding headers, 100
//! forwarding lines, non-UTF-8 bytes, absurd `Authorization` values. Every request gets an answer with the right status (never a
//! 5xx, never a dropped connection), and the limits hold exactly afterwards.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use common::serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_ratelimit::key::{ClientIp, HeaderKey};
use tower_ratelimit::{Quota, RateLimitLayer};

const LIMIT: usize = 5;

/// A named request (its header lines) and the statuses it may get.
type Case<'a> = (&'a str, Vec<Vec<u8>>, &'a [u16]);

/// Sends `head` (request line and header lines, without the final blank line) on a
/// fresh connection and returns the response's status code.
async fn raw(addr: SocketAddr, head: &[u8]) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = head.to_vec();
    req.extend_from_slice(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(&req).await.expect("write");
    let mut buf = Vec::new();
    // The server closes after its answer (`Connection: close`); bounded by a timeout.
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("an answer, not a hang")
        .expect("read");
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {:?}", String::from_utf8_lossy(&buf)))
}

fn header(name: &str, value: &[u8]) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.extend_from_slice(b": ");
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n");
    v
}

fn get_with(headers: &[Vec<u8>]) -> Vec<u8> {
    let mut v = b"GET / HTTP/1.1\r\n".to_vec();
    for h in headers {
        v.extend_from_slice(h);
    }
    v
}

/// `n` admitted of `tries` requests with `headers`.
async fn admitted(addr: SocketAddr, headers: &[Vec<u8>], tries: usize) -> usize {
    let mut n = 0;
    for _ in 0..tries {
        match raw(addr, &get_with(headers)).await {
            200 => n += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    n
}

#[tokio::test]
async fn malformed_forwarding_headers() {
    // The test client connects from 127.0.0.1: a trusted proxy here.
    let key = ClientIp::x_forwarded_for(["127.0.0.0/8"]).expect("valid CIDR");
    let layer = RateLimitLayer::builder(Quota::per_minute(LIMIT as u32).expect("quota"))
        .key(key)
        .build();
    let addr = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let xff = |v: &[u8]| header("X-Forwarded-For", v);

    let mut long_garbage = Vec::new();
    while long_garbage.len() < 8 << 10 {
        long_garbage.extend_from_slice(b"not-an-ip,;\"=[]:");
    }
    let mut long_list = Vec::new();
    for i in 0..700u32 {
        long_list.extend_from_slice(format!("198.18.{}.{}, ", i / 250, i % 250).as_bytes());
    }
    long_list.extend_from_slice(b"198.19.0.1");
    assert!(long_list.len() >= 8 << 10);
    let many_lines: Vec<Vec<u8>> = (0..100)
        .map(|i| xff(format!("198.20.0.{i}").as_bytes()))
        .collect();
    let cases: Vec<Case<'_>> = vec![
        // Garbage names no address: the key falls back (never a new key per garbage).
        ("8 KiB of garbage", vec![xff(&long_garbage)], &[200, 429]),
        ("8 KiB address list", vec![xff(&long_list)], &[200, 429]),
        (
            "non-UTF-8",
            vec![xff(b"\xff\xfe\x80 203.0.113.250")],
            &[200, 429],
        ),
        (
            "NUL-free control",
            vec![xff(b"1.2.3.4\x7f")],
            &[200, 429, 400],
        ),
        // 100 forwarding lines plus Host and Connection exceed hyper's 100 headers:
        // refused by the server itself before any key is read.
        ("100 lines", many_lines.clone(), &[431]),
        ("99 lines", many_lines[..98].to_vec(), &[200, 429]),
    ];
    for (name, headers, allowed) in &cases {
        for _ in 0..3 {
            let status = raw(addr, &get_with(headers)).await;
            assert!(allowed.contains(&status), "{name}: {status}");
        }
    }

    // The limits hold exactly afterwards: a client the garbage never named has its full
    // quota, and is then refused.
    let client = [xff(b"203.0.113.9")];
    assert_eq!(admitted(addr, &client, LIMIT + 3).await, LIMIT);
    // The 8 KiB list keyed on its right-most hop, which has used 3 of its 5.
    assert_eq!(
        admitted(addr, &[xff(b"198.19.0.1")], LIMIT).await,
        LIMIT - 3
    );
    // And the server keeps answering.
    assert_eq!(raw(addr, &get_with(&[xff(b"203.0.113.10")])).await, 200);
}

#[tokio::test]
async fn absurd_authorization_values() {
    let layer = RateLimitLayer::builder(Quota::per_minute(LIMIT as u32).expect("quota"))
        .key(HeaderKey::bearer())
        .build();
    let addr = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let auth = |v: &[u8]| header("Authorization", v);
    let mut huge = b"Bearer ".to_vec();
    huge.resize(8 << 10, b'k');
    let mut huge_spaces = b"Bearer".to_vec();
    huge_spaces.resize(8 << 10, b' ');
    let cases: Vec<(&str, Vec<Vec<u8>>, u16)> = vec![
        ("no header", vec![], 400),
        (
            "8 KiB key (over the 1024-byte limit)",
            vec![auth(&huge)],
            400,
        ),
        ("scheme and 8 KiB of spaces", vec![auth(&huge_spaces)], 400),
        ("scheme only", vec![auth(b"Bearer")], 400),
        ("other scheme", vec![auth(b"Basic dXNlcjpwYXNz")], 400),
        ("non-UTF-8 key", vec![auth(b"Bearer \xff\xfe\x80")], 400),
        ("empty", vec![auth(b"")], 400),
    ];
    for (name, headers, expected) in &cases {
        for _ in 0..3 {
            assert_eq!(raw(addr, &get_with(headers)).await, *expected, "{name}");
        }
    }
    // Many Authorization lines: ambiguous (an auth layer may read another one than the
    // limiter), refused with 400 and counted against no key.
    let mut lines = vec![auth(b"Bearer first")];
    lines.extend((0..50).map(|i| auth(format!("Bearer other-{i}").as_bytes())));
    for _ in 0..3 {
        assert_eq!(raw(addr, &get_with(&lines)).await, 400);
    }
    assert_eq!(
        admitted(addr, &[auth(b"Bearer first")], LIMIT + 2).await,
        LIMIT,
        "no budget spent by the refused requests"
    );
    assert_eq!(
        admitted(addr, &[auth(b"Bearer other-0")], LIMIT).await,
        LIMIT
    );
    // Case-insensitive scheme and extra blanks name the same key.
    assert_eq!(admitted(addr, &[auth(b"bEARER \t legit")], 3).await, 3);
    assert_eq!(admitted(addr, &[auth(b"Bearer legit")], LIMIT).await, 2);
}
