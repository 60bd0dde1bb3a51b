//! Redis store benchmarks against a PRIVATE `redis-server` this benchmark starts on a
//! free loopback port (and kills at the end); skipped, saying so, if none can be started.
//!
//! * `redis/ping_serial`: the raw round trip (PING), one client, sequential.
//! * `redis/script_serial`: our script called bare through redis-rs (`Script::invoke_async`).
//! * `redis/ours_serial`: a full decision through `RedisStore` (key, cache, timeout, outcome).
//! * `redis/ours_concurrent`: time per check with many concurrent checks on one
//!   multiplexed connection.
//! * `redis/script_pipelined`: the bare script, explicitly pipelined: the Redis-side ceiling.
//!
//! Every check is admitted (a huge quota), so each one runs the script's write path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::future::join_all;
use tower_ratelimit::store::redis::{RedisStore, SCRIPT};
use tower_ratelimit::store::{Check, Store, Tier};
use tower_ratelimit::{Quota, Quotas};

/// Checks in flight at once for the concurrent and pipelined benchmarks.
const CONCURRENCY: usize = 64;
/// Distinct client keys the benchmarks cycle through.
const KEYS: usize = 1024;

struct PrivateRedis(Child);

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a private redis-server; `None` (with the reason) if that is impossible.
fn start_redis() -> Result<(PrivateRedis, u16), String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    let server = PrivateRedis(child);
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut buf = [0u8; 16];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read(&mut buf)
                    .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
            {
                return Ok((server, port));
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err("redis-server did not answer PING".into())
}

fn quotas() -> Quotas {
    // T rounds up to 1 µs in the script: a 1000 s burst, never exhausted here.
    Quotas::from(Quota::per_second(1_000_000_000).expect("valid quota"))
}

fn bench(c: &mut Criterion) {
    let (_server, port) = match start_redis() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("\n!!!!! SKIPPING the redis benchmarks: {why} !!!!!\n");
            return;
        }
    };
    eprintln!("redis benchmarks: private redis-server on 127.0.0.1:{port}");
    let url = format!("redis://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = redis::Client::open(url.as_str()).expect("url");
    let con = rt
        .block_on(client.get_connection_manager())
        .expect("connect");
    let store = rt
        .block_on(
            RedisStore::builder(quotas())
                .prefix("bench:")
                .timeout(Duration::from_secs(1))
                .connect(&url),
        )
        .expect("store");
    // The bare script's arguments, as the store sends them: T and cap in µs.
    let script = redis::Script::new(SCRIPT);
    let script_keys: Vec<String> = (0..KEYS).map(|i| format!("bare:{{0:k{i}}}:0")).collect();
    let store_keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let (t_us, cap_us) = ("1", "1000000000");

    let mut g = c.benchmark_group("redis");
    g.bench_function("ping_serial", |b| {
        b.iter_custom(|iters| {
            let mut con = con.clone();
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let pong: String = redis::cmd("PING")
                        .query_async(&mut con)
                        .await
                        .expect("PING");
                    std::hint::black_box(pong);
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("script_serial", |b| {
        b.iter_custom(|iters| {
            let mut con = con.clone();
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters as usize {
                    let reply: Vec<i64> = script
                        .key(&script_keys[i % KEYS])
                        .arg(1)
                        .arg("")
                        .arg(t_us)
                        .arg(cap_us)
                        .invoke_async(&mut con)
                        .await
                        .expect("script");
                    std::hint::black_box(reply);
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("ours_serial", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters as usize {
                    let o = check(&store, &store_keys[i % KEYS]).await;
                    std::hint::black_box(o);
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("ours_concurrent", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut done = 0usize;
                while (done as u64) < iters {
                    let batch = CONCURRENCY.min(iters as usize - done);
                    let checks = (done..done + batch).map(|i| check(&store, &store_keys[i % KEYS]));
                    std::hint::black_box(join_all(checks).await);
                    done += batch;
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("script_pipelined", |b| {
        b.iter_custom(|iters| {
            let mut con = con.clone();
            rt.block_on(async {
                let start = Instant::now();
                let mut done = 0usize;
                while (done as u64) < iters {
                    let batch = CONCURRENCY.min(iters as usize - done);
                    let mut pipe = redis::pipe();
                    for i in done..done + batch {
                        pipe.cmd("EVALSHA")
                            .arg(script.get_hash())
                            .arg(1)
                            .arg(&script_keys[i % KEYS])
                            .arg(1)
                            .arg("")
                            .arg(t_us)
                            .arg(cap_us);
                    }
                    let replies: Vec<Vec<i64>> =
                        pipe.query_async(&mut con).await.expect("pipeline");
                    std::hint::black_box(replies);
                    done += batch;
                }
                start.elapsed()
            })
        });
    });
    g.finish();
}

/// One full check through the store (the deny cache never hits: all are admitted).
async fn check(store: &RedisStore, key: &String) -> bool {
    match store.check(key, Tier(0), 1) {
        Check::Ready(r) => r.expect("decided").is_allowed(),
        Check::Pending(f) => f.await.expect("decided").is_allowed(),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
