//! The `behind_proxy` example as a user runs it: 5 requests per minute per client
//! address from `X-Forwarded-For` (loopback proxies trusted), forged headers ignored,
//! each client its own 5.
#![cfg(feature = "axum")]

mod example_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running example, killed on drop.
struct Example {
    child: Child,
    port: u16,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Example {
    let mut child = Command::new(example_bin::build("behind_proxy", &["--all-features"]))
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the example");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the example's first line");
    let port = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    Example { child, port }
}

/// One HTTP/1.1 `GET /hello` with `headers`; returns the status line's code and the
/// whole response text.
fn get(port: u16, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the example");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut req = String::from("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (code, response)
}

#[test]
fn five_per_minute_per_forwarded_client() {
    let example = start();
    let start = Instant::now();
    let xff = |client: &'static str| [("X-Forwarded-For", client)];

    let mut a = Vec::new();
    for _ in 0..5 {
        a.push(get(example.port, &xff("203.0.113.7")).0);
    }
    // The same client forging another header, a left-hand entry, a second line.
    let forged: [&[(&str, &str)]; 4] = [
        &[
            ("Forwarded", "for=198.51.100.1"),
            ("X-Forwarded-For", "203.0.113.7"),
        ],
        &[
            ("X-Real-IP", "198.51.100.2"),
            ("X-Forwarded-For", "203.0.113.7"),
        ],
        &[("X-Forwarded-For", "198.51.100.3, 203.0.113.7")],
        &[
            ("X-Forwarded-For", "203.0.113.8"),
            ("X-Forwarded-For", "203.0.113.7"),
        ],
    ];
    let mut denied = Vec::new();
    for headers in forged {
        denied.push(get(example.port, headers));
    }
    let mut b = Vec::new();
    for _ in 0..6 {
        b.push(get(example.port, &xff("203.0.113.8")).0);
    }
    let elapsed = start.elapsed();

    assert_eq!(a, [200; 5], "the first 5 of 203.0.113.7");
    assert_eq!(
        &b[..5],
        [200; 5],
        "203.0.113.8 has its own 5, untouched by A's forgeries"
    );
    // One request is replenished every 12 s: exact unless this machine took that long.
    if elapsed < Duration::from_secs(12) {
        for (code, response) in &denied {
            assert_eq!(
                *code, 429,
                "forged headers do not escape the limit: {response}"
            );
        }
        assert_eq!(b[5], 429, "the 6th of 203.0.113.8");
    }
    let (_, response) = &denied[0];
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{response}"
    );
    assert!(
        lower.contains("ratelimit-policy: \"minute\";q=5;w=60"),
        "{response}"
    );
    assert!(lower.contains("retry-after: "), "{response}");
}
