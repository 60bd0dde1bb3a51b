//! Private `redis-server` processes for the Redis tests: each test starts its own on a
//! free loopback port and the process is killed when the handle drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether `redis-server` can be run. In CI (`CI` set) its absence is a failure, since
/// `.ci/run` installs it; elsewhere the test is skipped with a loud message.
pub(crate) fn redis_installed(test: &str) -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not installed, but CI must run {test} (.ci/run installs it)"
        );
        eprintln!(
            "\n!!!!! SKIPPING {test}: redis-server is not installed (apt-get install redis-server) !!!!!\n"
        );
    }
    ok
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// One private `redis-server`.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a standalone server on a free port (no persistence).
    pub(crate) fn start() -> RedisServer {
        Self::start_with(free_port(), &[])
    }

    /// Starts a server on `port` with extra arguments, and waits until it answers PING.
    pub(crate) fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "tower-ratelimit-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let mut s = RedisServer {
            child: None,
            port,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        assert!(
            wait_for_pong(self.port),
            "redis-server on port {} did not answer PING",
            self.port
        );
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain synchronous connection, for inspecting the server.
    pub(crate) fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("valid url")
            .get_connection()
            .expect("connect to the private redis-server")
    }

    /// Kills the server (SIGKILL): open connections break, its memory is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a fresh server on the same port (empty, no scripts cached).
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} redis-server");
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub(crate) fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub(crate) fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.thaw();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (bounded: about 10 s) until something on `port` answers `PING` with `+PONG`.
fn wait_for_pong(port: u16) -> bool {
    for _ in 0..400 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 64];
            if s.write_all(b"PING\r\n").is_ok()
                && let Ok(n) = s.read(&mut buf)
                && buf[..n].starts_with(b"+PONG")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Total calls of the given commands on the server (`INFO commandstats`).
pub(crate) fn command_calls(con: &mut redis::Connection, commands: &[&str]) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(con)
        .expect("INFO commandstats");
    let mut total = 0;
    for line in info.lines() {
        // cmdstat_evalsha:calls=12,usec=...
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        if !commands.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            continue;
        }
        let calls = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("calls= in commandstats");
        total += calls;
    }
    total
}

/// A TCP proxy in front of a server that can *partition* the connections it already
/// carries: they stay open but silently drop everything, as after a network partition
/// or a failover behind a load balancer, while new connections pass normally.
#[derive(Debug)]
pub(crate) struct PartitionProxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicU64>,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PartitionProxy {
    pub(crate) fn start(upstream: u16) -> PartitionProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let cut = Arc::new(AtomicU64::new(0));
        let epoch = Arc::new(AtomicU64::new(0));
        let (cut2, epoch2) = (Arc::clone(&cut), Arc::clone(&epoch));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mine = epoch2.fetch_add(1, SeqCst) + 1;
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let cut = Arc::clone(&cut2);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                let _ = to.shutdown(std::net::Shutdown::Write);
                                return;
                            }
                            // A partitioned connection swallows everything.
                            if mine > cut.load(SeqCst) && to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        PartitionProxy { port, cut, epoch }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Silences every connection opened so far; later ones pass.
    pub(crate) fn partition(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        // Epochs are handed out from 1; everything up to the current count is cut.
        self.cut.store(self.epoch.load(SeqCst), SeqCst);
    }
}
