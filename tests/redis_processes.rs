//! Many processes, one limit: several OS processes (this test binary re-executed as
//! children), each with several stores on separate connections, hammer one key at once
//! through one private Redis, and together admit exactly what a single limiter would.
#![cfg(feature = "redis")]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::store::redis::RedisStore;
use tower_ratelimit::store::{Check, Store, Tier};
use tower_ratelimit::{Quota, Quotas};

const STORES_PER_PROCESS: usize = 2;
const REQUESTS_PER_STORE: usize = 20;
const CHILDREN: usize = 3;
const KEY: &str = "shared-client";

/// 25 per hour (and a daily cap): nothing refills while the test runs.
fn quotas() -> Quotas {
    Quotas::new([
        Quota::per_hour(25).expect("valid").named("hour"),
        Quota::new(500, Duration::from_secs(86_400)).expect("valid"),
    ])
    .expect("valid set")
}

/// Runs this process's share: several stores with their own connections, all
/// concurrently; returns (admitted, denied).
async fn hammer(url: &str, prefix: &str) -> (usize, usize) {
    let mut tasks = Vec::new();
    for _ in 0..STORES_PER_PROCESS {
        let store = RedisStore::builder(quotas())
            .prefix(prefix)
            .timeout(Duration::from_secs(5))
            .on_failure(tower_ratelimit::store::redis::FailurePolicy::FailClosed)
            .connect(url)
            .await
            .expect("connect");
        for _ in 0..REQUESTS_PER_STORE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let r = match store.check(&KEY, Tier(0), 1) {
                    Check::Ready(r) => r,
                    Check::Pending(f) => f.await,
                };
                r.expect("Redis decided").is_allowed()
            }));
        }
    }
    let mut admitted = 0;
    let total = tasks.len();
    for t in tasks {
        admitted += usize::from(t.await.expect("task did not panic"));
    }
    (admitted, total - admitted)
}

/// Child entry point: only runs when re-executed by `processes_share_one_limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of processes_share_one_limit"]
async fn child_worker() {
    let (Ok(url), Ok(prefix)) = (
        std::env::var("TRL_CHILD_REDIS_URL"),
        std::env::var("TRL_CHILD_PREFIX"),
    ) else {
        panic!("child_worker is started by processes_share_one_limit");
    };
    let (admitted, denied) = hammer(&url, &prefix).await;
    println!("CHILD-RESULT {admitted} {denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_one_limit() {
    if !support::redis_installed("processes_share_one_limit") {
        return;
    }
    let server = support::RedisServer::start();
    let prefix = "procs:";
    let exe = std::env::current_exe().expect("this test binary");
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "child_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("TRL_CHILD_REDIS_URL", server.url())
                .env("TRL_CHILD_PREFIX", prefix)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("re-exec the test binary")
        })
        .collect();
    let (mut admitted, mut denied) = hammer(&server.url(), prefix).await;
    for child in children {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("child output");
        assert!(out.status.success(), "child failed: {:?}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("CHILD-RESULT ").map(|(_, r)| r))
            .unwrap_or_else(|| panic!("the child reports its result: {stdout}"));
        let mut nums = line
            .split(' ')
            .map(|n| n.parse::<usize>().expect("a count"));
        admitted += nums.next().expect("admitted");
        denied += nums.next().expect("denied");
    }

    let total = (CHILDREN + 1) * STORES_PER_PROCESS * REQUESTS_PER_STORE;
    assert_eq!(admitted + denied, total, "every request was decided");
    // What one limiter admits for the same requests.
    let one = MemoryStore::<&str>::new(quotas());
    let alone = (0..total)
        .filter(|_| match one.check(&KEY, Tier(0), 1) {
            Check::Ready(r) => r.expect("decided").is_allowed(),
            Check::Pending(_) => unreachable!("memory answers at once"),
        })
        .count();
    assert_eq!(alone, 25);
    assert_eq!(
        admitted,
        alone,
        "{} processes x {STORES_PER_PROCESS} stores admitted {admitted} of {total} between them",
        CHILDREN + 1
    );
}
