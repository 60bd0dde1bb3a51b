//! The `metrics` example, as a client sees it: after a run of `GET /hello` (5 per minute
//! per peer), `GET /metrics` shows exactly the verdicts the client got, by plan, policy
//! and verdict, the near-limit admissions and the tracked keys, in Prometheus text.
#![cfg(all(feature = "metrics", feature = "axum"))]

mod example_bin;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET: status, headers (lower-case names), body.
fn get(port: u16, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the example");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The value of the sample `name{labels}` in Prometheus text (labels in any order).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_text, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let mut got: Vec<(String, String)> = labels_text
            .split(',')
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        (got == want).then(|| value.trim().parse().ok()).flatten()
    })
}

#[test]
fn metrics_count_what_clients_saw() {
    let mut child = Command::new(example_bin::build(
        "metrics",
        &["--features", "metrics,axum"],
    ))
    .env("PORT", "0")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("start the example");
    let stdout = child.stdout.take().expect("piped stdout");
    let example = Example(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let port: u16 = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));

    let (mut admitted, mut denied, mut near) = (0, 0, 0);
    for _ in 0..8 {
        let (status, headers, _) = get(port, "/hello");
        match status {
            200 => {
                admitted += 1;
                // `RateLimit: "minute";r=N;t=S`: near the limit at r <= 1 (a fifth of 5).
                let r: u64 = headers["ratelimit"]
                    .split(";r=")
                    .nth(1)
                    .and_then(|v| v.split(';').next())
                    .and_then(|v| v.parse().ok())
                    .expect("a remaining count");
                if r <= 1 {
                    near += 1;
                }
            }
            429 => denied += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(
        admitted >= 5 && denied >= 1,
        "{admitted} admitted, {denied} denied"
    );

    let (status, headers, text) = get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(
        !headers.contains_key("ratelimit"),
        "/metrics is not limited"
    );
    let labels = |verdict| {
        [
            ("layer", "hello"),
            ("plan", "default"),
            ("policy", "minute"),
            ("verdict", verdict),
        ]
    };
    let counter = "tower_ratelimit_requests_total";
    assert_eq!(
        sample(&text, counter, &labels("admitted")),
        Some(f64::from(admitted)),
        "{text}"
    );
    assert_eq!(
        sample(&text, counter, &labels("denied")),
        Some(f64::from(denied)),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tower_ratelimit_near_limit_total",
            &[
                ("layer", "hello"),
                ("plan", "default"),
                ("policy", "minute")
            ]
        ),
        Some(f64::from(near)),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tower_ratelimit_tracked_keys",
            &[("plan", "default")]
        ),
        Some(1.0),
        "one peer: {text}"
    );
    // Never the client key: no label value is the peer's address.
    assert!(!text.contains("127.0.0.1"), "{text}");
    drop(example);
}
