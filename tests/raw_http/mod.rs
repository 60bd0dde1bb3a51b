//! Requests written byte by byte over a fresh loopback TCP connection, for the tests
//! that must control what a client sends (malformed heads) or must not share a
//! connection with a request that tears its connection down (a panicking service).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on one exchange, so a wedged server fails the test instead of hanging it.
const EXCHANGE_BOUND: Duration = Duration::from_secs(20);

/// What came back on one connection.
#[derive(Debug)]
pub enum Reply {
    /// A parsed HTTP/1.1 response.
    Answer(RawAnswer),
    /// The server closed (or reset) the connection without a byte of response.
    Closed,
}

/// One response as read off the wire.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

impl Reply {
    /// The status, or 0 for a closed connection (handy in tables of expectations).
    pub fn status(&self) -> u16 {
        match self {
            Reply::Answer(a) => a.status,
            Reply::Closed => 0,
        }
    }

    pub fn answer(self) -> RawAnswer {
        match self {
            Reply::Answer(a) => a,
            Reply::Closed => panic!("connection closed without a response"),
        }
    }
}

/// Sends `request` (a complete HTTP/1.1 request, which should say `Connection: close`)
/// on a new connection to `addr` and reads until the server closes.
///
/// A server may answer and close before it has read everything (an oversized head), so
/// write errors are not failures; what was read decides.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    tokio::time::timeout(EXCHANGE_BOUND, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to loopback");
        let _ = stream.write_all(request).await;
        let _ = stream.flush().await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A reset after (or instead of) the response: keep what arrived.
                Err(_) => break,
            }
        }
        parse(&buf)
    })
    .await
    .expect("server answered or closed within the bound")
}

/// `GET path` with the given extra header lines (raw bytes, each without CRLF).
pub fn get(path: &str, lines: &[&[u8]]) -> Vec<u8> {
    let mut req =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for line in lines {
        req.extend_from_slice(line);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

fn parse(buf: &[u8]) -> Reply {
    if buf.is_empty() {
        return Reply::Closed;
    }
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = String::from_utf8_lossy(lines.next().expect("status line")).into_owned();
    let mut parts = status_line.split(' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("numeric status");
    let headers = lines
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&l[..colon]).to_ascii_lowercase();
            Some((name, l[colon + 1..].trim_ascii().to_vec()))
        })
        .collect::<Vec<_>>();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply::Answer(RawAnswer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .expect("chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
    out
}
