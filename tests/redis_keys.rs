//! No client key reaches Redis: key names and script arguments carry only a keyed hash,
//! replicas with the same secret share a limit, and replicas with different secrets do
//! not. Against private `redis-server` processes.
#![cfg(feature = "redis")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tower_ratelimit::store::redis::{ConnectError, RedisStore};
use tower_ratelimit::store::{Check, Store, Tier};
use tower_ratelimit::{Quota, Quotas};

const SECRET: &str = "replicas-share-this-32-byte-key!";

/// Keys a real deployment would use: bearer tokens and client addresses.
const KEYS: &[&str] = &[
    "sk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
    "203.0.113.7",
    "198.51.100.23",
    "2001:db8::1",
];

fn quotas() -> Quotas {
    Quotas::new([
        Quota::per_hour(4).expect("valid"),
        Quota::new(100, Duration::from_secs(86_400)).expect("valid"),
    ])
    .expect("valid set")
}

async fn admitted(store: &RedisStore, key: &str) -> bool {
    let r = match store.check(&key, Tier(0), 1) {
        Check::Ready(r) => r,
        Check::Pending(f) => f.await,
    };
    r.expect("decided").is_allowed()
}

/// Every key name in the database, by SCAN.
fn scan_all(server: &support::RedisServer) -> Vec<String> {
    let mut con = server.client();
    let mut cursor = 0u64;
    let mut names = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .expect("SCAN");
        names.extend(batch);
        if next == 0 {
            return names;
        }
        cursor = next;
    }
}

/// A `MONITOR` session on a raw connection: every command the server runs, as text.
struct Monitor {
    reader: BufReader<TcpStream>,
}

impl Monitor {
    fn start(server: &support::RedisServer) -> Monitor {
        let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        s.write_all(b"MONITOR\r\n").expect("MONITOR");
        let mut reader = BufReader::new(s);
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("+OK");
        assert_eq!(ok.trim(), "+OK");
        Monitor { reader }
    }

    /// Lines seen until `marker` appears (or 5 s pass).
    fn lines_until(&mut self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = Vec::new();
        while Instant::now() < deadline {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    let done = line.contains(marker);
                    lines.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => continue,
            }
        }
        lines
    }
}

#[tokio::test]
async fn no_raw_key_in_key_names_or_commands() {
    if !support::redis_installed("no_raw_key_in_key_names_or_commands") {
        return;
    }
    let server = support::RedisServer::start();
    let mut monitor = Monitor::start(&server);
    let store = RedisStore::builder(quotas())
        .key_secret(SECRET)
        .deny_cache(0)
        .connect(&server.url())
        .await
        .expect("connect");
    for key in KEYS {
        for _ in 0..5 {
            admitted(&store, key).await;
        }
    }
    // A marker command after the store's, so the monitor has seen them all.
    let _: String = redis::cmd("ECHO")
        .arg("end-of-test")
        .query(&mut server.client())
        .expect("ECHO");
    let commands = monitor.lines_until("end-of-test");

    let names = scan_all(&server);
    assert_eq!(
        names.len(),
        2 * KEYS.len(),
        "two quotas per client: {names:?}"
    );
    for key in KEYS {
        for name in &names {
            assert!(!name.contains(key), "{name} holds {key}");
        }
        for line in &commands {
            assert!(!line.contains(key), "MONITOR shows {key}: {line}");
        }
        // What Redis sees instead: the hashed names, as the script's keys.
        let hashed = store.redis_key(key, Tier(0), 0);
        assert!(names.contains(&hashed), "{hashed} in {names:?}");
        assert!(
            commands.iter().any(|l| l.contains(&hashed)),
            "the script ran on {hashed}"
        );
    }
    let script_calls = commands
        .iter()
        .filter(|l| l.to_ascii_lowercase().contains("\"evalsha\""))
        .count();
    assert!(
        script_calls >= 5 * KEYS.len(),
        "{script_calls} script calls seen"
    );
}

#[tokio::test]
async fn same_secret_shares_a_limit_different_secrets_do_not() {
    if !support::redis_installed("same_secret_shares_a_limit_different_secrets_do_not") {
        return;
    }
    let server = support::RedisServer::start();
    let replica = |secret: &'static str| {
        let url = server.url();
        async move {
            RedisStore::builder(quotas())
                .key_secret(secret)
                .deny_cache(0)
                .connect(&url)
                .await
                .expect("connect")
        }
    };
    let (a, b) = (replica(SECRET).await, replica(SECRET).await);
    let other = replica("another-secret-of-sixteen-plus-bytes").await;
    let key = "sk_live_shared_between_replicas";
    let mut shared = 0;
    for i in 0..10 {
        let store = if i % 2 == 0 { &a } else { &b };
        shared += u32::from(admitted(store, key).await);
    }
    assert_eq!(
        shared, 4,
        "two replicas with one secret admit one burst between them"
    );
    let mut separate = 0;
    for _ in 0..10 {
        separate += u32::from(admitted(&other, key).await);
    }
    assert_eq!(separate, 4, "another secret is another limit");
    assert_ne!(
        a.redis_key(&key, Tier(0), 0),
        other.redis_key(&key, Tier(0), 0)
    );
}

#[tokio::test]
async fn short_secret_refused_and_raw_names_only_on_request() {
    let err = RedisStore::builder(quotas())
        .key_secret("too-short")
        .connect("redis://127.0.0.1:1")
        .await
        .expect_err("a 9-byte secret");
    assert!(
        matches!(err, ConnectError::ShortKeySecret { len: 9 }),
        "{err}"
    );
    if !support::redis_installed("short_secret_refused_and_raw_names_only_on_request") {
        return;
    }
    let server = support::RedisServer::start();
    let raw = RedisStore::builder(quotas())
        .raw_key_names(true)
        .connect(&server.url())
        .await
        .expect("connect");
    assert!(admitted(&raw, "debug-user").await);
    assert_eq!(
        raw.redis_key(&"debug-user", Tier(0), 0),
        "rl:{0:debug-user}:0"
    );
    assert!(scan_all(&server).contains(&"rl:{0:debug-user}:0".to_owned()));
    // Without a secret, names are hashed with the public default: still no raw key.
    let default = RedisStore::builder(quotas())
        .prefix("d:")
        .connect(&server.url())
        .await
        .expect("connect");
    assert!(admitted(&default, "203.0.113.9").await);
    let names = scan_all(&server);
    assert!(
        names.iter().all(|n| !n.contains("203.0.113.9")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("d:{0:")), "{names:?}");
}
