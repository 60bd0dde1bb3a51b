//! The `client` example against a server that drops one connection mid-request: the
//! failed request is counted (`errors=1`) and the run goes on to print both contract
//! lines.

mod example_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// An HTTP/1.1 server on 127.0.0.1:0 answering 200 to every request but the third,
/// whose connection it closes without an answer. Returns its URL.
fn start_flaky_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!(
        "http://{}/v1/image/edit",
        listener.local_addr().expect("addr")
    );
    let seen = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                loop {
                    // One request head (GET, no body) per iteration.
                    let mut line = String::new();
                    let mut head = 0;
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(n) => head += n,
                        }
                    }
                    if head == 0 {
                        return;
                    }
                    if seen.fetch_add(1, Ordering::SeqCst) == 2 {
                        // Gone mid-request: the client sees the connection close.
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                        let _ = reader.read(&mut [0; 1]);
                        return;
                    }
                    let body = "{}";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The number after `name=` in `line`.
fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {line:?}"))
        .to_owned()
}

#[test]
fn a_failed_request_is_counted_not_fatal() {
    let bin = example_bin::build("client", &["--all-features"]);
    let url = start_flaky_server();
    let out = Command::new(bin)
        .env("TARGET", &url)
        .env("REQUESTS", "8")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paced = stdout
        .lines()
        .find(|l| l.starts_with("paced: sent=8 ok="))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(field(paced, "ok"), "7", "{paced}");
    assert_eq!(field(paced, "rejected"), "0", "{paced}");
    assert_eq!(field(paced, "errors"), "1", "{paced}");
    // The contract prefix, exactly: `paced: sent=N ok=N rejected=N secs=S`, then more.
    let prefix: Vec<&str> = paced.split_whitespace().take(5).collect();
    assert_eq!(prefix[..4], ["paced:", "sent=8", "ok=7", "rejected=0"]);
    assert!(prefix[4].starts_with("secs="), "{paced}");
    let unpaced = stdout
        .lines()
        .find(|l| l.starts_with("unpaced: sent=8 "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(field(unpaced, "ok"), "8", "{unpaced}");
    assert_eq!(field(unpaced, "errors"), "0", "{unpaced}");
}
