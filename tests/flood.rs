//! Key floods against the in-memory keyed limiter.
//!
//! The figures (`#[ignore]`d, 10 million keys, a minute or two in release mode; the command
//! is in SECURITY.md, "Key floods"):
//!
//! ```text
//! cargo test --release --all-features --test flood -- --ignored --nocapture
//! ```
//!
//! The other tests here run by default: exact counts while the table grows, shrinks and
//! sweeps under concurrent threads, and the at-capacity policies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use tower_ratelimit::clock::{Clock, ManualClock};
use tower_ratelimit::{AtCapacity, CheckError, KeyedRateLimiter, Quota, Quotas};

/// `VmHWM` and `VmRSS` of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

const OVER_LIMIT: u64 = u64::MAX - 7;

/// CPU time of this thread: unlike wall time, it leaves out the time the thread spends
/// preempted (the 2-core test machine runs many other jobs), so it is the work a check
/// itself does, page faults included.
#[allow(unsafe_code)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The slowest check (thread CPU time and wall time), and how many took over 100 µs and
/// over 1 ms of CPU.
#[derive(Default)]
struct Latency {
    cpu_max: Duration,
    wall_max: Duration,
    over_100us: u64,
    over_1ms: u64,
}

impl Latency {
    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (c, t) = (thread_cpu(), Instant::now());
        let r = f();
        let (wall, cpu) = (t.elapsed(), thread_cpu().saturating_sub(c));
        self.cpu_max = self.cpu_max.max(cpu);
        self.wall_max = self.wall_max.max(wall);
        self.over_100us += u64::from(cpu > Duration::from_micros(100));
        self.over_1ms += u64::from(cpu > Duration::from_millis(1));
        r
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} CPU (over 100 µs: {}, over 1 ms: {}; wall {:?})",
            self.cpu_max, self.over_100us, self.over_1ms, self.wall_max
        )
    }
}

struct Figures {
    tracked: usize,
    peak_rss: u64,
    rss: u64,
    refused: u64,
    slowest_during: Latency,
    over_limit_admitted: u64,
    slowest_after: Latency,
    refused_after: u64,
    rss_after: u64,
    table_after: usize,
    tracked_after: usize,
}

fn flood(keys: u64, cap: Option<(usize, AtCapacity)>) -> Figures {
    let clock = ManualClock::new();
    clock.set_ns(1_000_000_000);
    let quota = Quota::per_hour(100).expect("valid");
    let mut limiter = KeyedRateLimiter::<u64, _>::with_clock(quota, clock.clone());
    if let Some((max, policy)) = cap {
        limiter = limiter.with_max_keys(max).with_at_capacity(policy);
    }
    // The over-limit client spends its burst before the flood.
    while limiter
        .check_key(&OVER_LIMIT)
        .expect("tracked")
        .is_allowed()
    {}
    let mut slowest = Latency::default();
    let mut refused = 0;
    let mut over_limit_admitted = 0;
    for k in 0..keys {
        let r = slowest.time(|| limiter.check_key(&k));
        match r {
            Ok(_) => {}
            Err(CheckError::TooManyKeys { .. }) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
        if k % 1000 == 0 {
            let d = slowest.time(|| limiter.check_key(&OVER_LIMIT).expect("tracked"));
            if d.is_allowed() {
                over_limit_admitted += 1;
            }
        }
    }
    let tracked = limiter.len();
    let (peak_rss, rss) = memory();
    // Every key expires; then 100,000 new clients arrive.
    clock.advance(Duration::from_secs(7200));
    let mut slowest_after = Latency::default();
    let mut refused_after = 0;
    for k in 0..100_000u64 {
        let r = slowest_after.time(|| limiter.check_key(&(keys + k)));
        if r.is_err() {
            refused_after += 1;
        }
    }
    // Large tables are freed on a short-lived thread.
    thread::sleep(Duration::from_millis(300));
    let (_, rss_after) = memory();
    Figures {
        tracked,
        peak_rss,
        rss,
        refused,
        slowest_during: slowest,
        over_limit_admitted,
        slowest_after,
        refused_after,
        rss_after,
        table_after: limiter.table_bytes(),
        tracked_after: limiter.len(),
    }
}

/// The table bytes 100,000 keys need on their own.
fn need_of_100k() -> usize {
    let limiter = KeyedRateLimiter::<u64, _>::with_clock(
        Quota::per_hour(100).expect("valid"),
        ManualClock::new(),
    );
    for k in 0..100_000u64 {
        limiter.check_key(&k).expect("tracked");
    }
    limiter.table_bytes()
}

const RUN: &str = "TOWER_RATELIMIT_FLOOD_RUN";

/// Runs each configuration in a process of its own (a child running `flood_run`), so
/// that one run's freed memory, kept by the allocator, does not count in the next.
#[test]
#[ignore = "figures: 10 M keys, run in release (see SECURITY.md)"]
fn ten_million_keys() {
    let exe = std::env::current_exe().expect("test binary");
    for run in ["uncapped", "reject", "admit_untracked"] {
        let status = std::process::Command::new(&exe)
            .args(["--exact", "flood_run", "--ignored", "--nocapture"])
            .env(RUN, run)
            .status()
            .expect("run the child");
        assert!(status.success(), "{run}");
    }
}

/// One configuration of [`ten_million_keys`], chosen by the environment.
#[test]
#[ignore = "started by ten_million_keys"]
fn flood_run() {
    const KEYS: u64 = 10_000_000;
    let Ok(run) = std::env::var(RUN) else {
        return;
    };
    let (name, cap) = match run.as_str() {
        "uncapped" => ("uncapped", None),
        "reject" => ("cap 1M, Reject", Some((1_000_000, AtCapacity::Reject))),
        _ => (
            "cap 1M, AdmitUntracked",
            Some((1_000_000, AtCapacity::AdmitUntracked)),
        ),
    };
    let (_, base) = memory();
    let f = flood(KEYS, cap);
    let need = need_of_100k();
    let grown = f.rss.saturating_sub(base);
    let after = f.rss_after.saturating_sub(base);
    println!(
        "{name}: tracked {} of {KEYS} keys ({} refused), peak RSS {:.1} MiB (+{:.1} over \
         the {:.1} MiB before), RSS {:.1} MiB, {:.1} B/key; slowest check during {}; \
         over-limit client admitted {} times; after expiry + 100,000 new keys: slowest \
         {}, {} refused, tracked {}, table {:.1} MiB, RSS +{:.1} MiB over the start \
         ({:.2}x the {:.1} MiB table of 100,000 keys alone)",
        f.tracked,
        f.refused,
        mib(f.peak_rss),
        mib(f.peak_rss.saturating_sub(base)),
        mib(base),
        mib(f.rss),
        grown as f64 / f.tracked.max(1) as f64,
        f.slowest_during,
        f.over_limit_admitted,
        f.slowest_after,
        f.refused_after,
        f.tracked_after,
        mib(f.table_after as u64),
        mib(after),
        after as f64 / need as f64,
        mib(need as u64),
    );
    assert_eq!(f.over_limit_admitted, 0, "{name}");
    if let Some((max, _)) = cap {
        assert!(f.tracked <= max + 1, "{name}: {}", f.tracked);
    }
}

/// Hot keys hammered while other threads flood cold keys through growth, then (time
/// advancing) through sweeps and shrinks: each hot key ends with exactly its burst plus
/// what the elapsed time refilled, and the live count ends exact.
#[test]
fn exact_counts_through_incremental_grow_and_shrink() {
    let clock = ManualClock::new();
    clock.set_ns(1);
    // T = 6 s, burst 10.
    let limiter = Arc::new(KeyedRateLimiter::with_clock(
        Quotas::from(Quota::per_minute(10).expect("valid")),
        clock.clone(),
    ));
    const HOT: u64 = 4;
    const THREADS: u64 = 4;
    let admitted: Arc<Vec<AtomicU64>> = Arc::new((0..HOT).map(|_| AtomicU64::new(0)).collect());
    let peak_bytes = Arc::new(AtomicU64::new(0));
    let start = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (l, a, c, s, p) = (
                limiter.clone(),
                admitted.clone(),
                clock.clone(),
                start.clone(),
                peak_bytes.clone(),
            );
            thread::spawn(move || {
                s.wait();
                // Phase 1 (clock frozen): 200,000 cold keys grow the table many times.
                // Phase 2: time jumps past every cold key's expiry in small steps while
                // a trickle of new keys drives the sweep and the shrink.
                for i in 0..60_000u64 {
                    let hot = i % HOT;
                    if l.check_key(&hot).expect("cost 1").is_allowed() {
                        a[hot as usize].fetch_add(1, Relaxed);
                    }
                    let cold = 1_000_000 * (t + 1) + i;
                    if i < 50_000 || i % 4 == 0 {
                        l.check_key(&cold).expect("no cap");
                    }
                    if t == 0 && i >= 50_000 && i % 50 == 0 {
                        c.advance(Duration::from_millis(300));
                    }
                    p.fetch_max(l.table_bytes() as u64, Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no panic");
    }
    let elapsed = clock.now_ns() - 1;
    for hot in 0..HOT {
        while limiter.check_key(&hot).expect("cost 1").is_allowed() {
            admitted[hot as usize].fetch_add(1, Relaxed);
        }
    }
    let expected = 10 + elapsed / 6_000_000_000;
    for hot in 0..HOT {
        assert_eq!(
            admitted[hot as usize].load(Relaxed),
            expected,
            "hot key {hot}"
        );
    }
    // The sweep found the table mostly dead and shrank it while the threads ran.
    let peak = peak_bytes.load(Relaxed);
    let end = limiter.table_bytes() as u64;
    assert!(
        end * 4 <= peak,
        "table {end} B at the end, {peak} B at the peak"
    );
    clock.advance(Duration::from_secs(61));
    limiter.reclaim();
    assert_eq!(limiter.len(), 0, "the live count is exact");
}

#[test]
fn at_capacity_policies() {
    let clock = ManualClock::new();
    clock.set_ns(1);
    let quota = Quota::per_hour(2).expect("valid");
    for policy in [AtCapacity::Reject, AtCapacity::AdmitUntracked] {
        let l = KeyedRateLimiter::<u64, _>::with_clock(quota.clone(), clock.clone())
            .with_max_keys(100)
            .with_at_capacity(policy);
        for k in 0..100 {
            assert!(l.check_key(&k).expect("room").is_allowed());
        }
        // Key 0 goes over its limit; a flood of new keys never resets it.
        assert!(l.check_key(&0).expect("tracked").is_allowed());
        assert!(!l.check_key(&0).expect("tracked").is_allowed());
        for k in 1000..2000 {
            match (policy, l.check_key(&k)) {
                (AtCapacity::Reject, Err(CheckError::TooManyKeys { max_keys: 100 })) => {}
                (AtCapacity::AdmitUntracked, Ok(d)) => {
                    assert!(d.is_allowed());
                    assert_eq!(d.binding().remaining(), 1, "a fresh burst, not stored");
                }
                (p, r) => panic!("{p:?}: {r:?}"),
            }
            assert!(
                !l.check_key(&0).expect("tracked").is_allowed(),
                "{policy:?}"
            );
        }
        assert_eq!(l.len(), 100, "{policy:?}: nothing evicted, nothing added");
    }
}
