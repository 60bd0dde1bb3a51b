//! The `redis` example, twice: two copies on two ports sharing one private Redis admit
//! 10 requests per minute from one client between them, not 20.
#![cfg(all(feature = "redis", feature = "axum"))]

mod example_bin;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running copy of the example, killed on drop.
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

fn start_example(bin: &PathBuf, redis_url: &str) -> Example {
    let mut child = Command::new(bin)
        .env("REDIS_URL", redis_url)
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

/// One HTTP/1.1 GET `/`; returns the status code.
fn get(port: u16) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the example");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

#[test]
fn two_copies_share_one_limit() {
    if !support::redis_installed("two_copies_share_one_limit") {
        return;
    }
    let server = support::RedisServer::start();
    let bin = example_bin::build("redis", &["--all-features"]);
    let a = start_example(&bin, &server.url());
    let b = start_example(&bin, &server.url());
    assert_ne!(a.port, b.port);

    let start = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(get(if i % 2 == 0 { a.port } else { b.port }));
    }
    let elapsed = start.elapsed();
    let ok = statuses.iter().filter(|&&s| s == 200).count() as u64;
    let limited = statuses.iter().filter(|&&s| s == 429).count() as u64;
    assert_eq!(ok + limited, 30, "only 200 and 429: {statuses:?}");
    // 10 per minute with a burst of 10: exactly 10 at once, plus one per 6 s elapsed
    // (on any machine, however slow; normally the 30 requests take milliseconds).
    let most = 10 + elapsed.as_secs() / 6;
    assert!(
        (10..=most).contains(&ok),
        "{ok} admitted between two copies in {elapsed:?}: {statuses:?}"
    );
    assert!(ok < 20, "not 10 per copy");
}
