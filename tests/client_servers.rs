//! The pacer against servers that count in different ways, each its own small model:
//! fixed windows aligned to the clock, fixed windows aligned to the key's first request,
//! an exact sliding log, a sliding-window counter, a token bucket, and this crate's
//! GCRA layer; each with Claid's quotas (4/s AND 120/min) and Clarifai's 15/s.
//!
//! Most runs are in-process on tokio's paused clock: the model decides at the virtual
//! instant the request reaches it, so every figure is exact and the tests take
//! milliseconds. The GCRA layer (`RateLimitLayer`) and a fixed-window model also run on
//! a real loopback server. Run `cargo test --all-features --test client_servers --
//! --nocapture` for the table of rejections and throughput ratios.
//!
//! **The bound.** For each model, the most it permits is the greedy schedule: each
//! request sent at the first millisecond at which the model (fresh, the same quotas)
//! admits it; for every model here but the sliding-window counter that is the fastest
//! schedule there is. The throughput ratio is the time the greedy schedule needs for the
//! N-th request over the time the paced client needed: 1.0 means as fast as the server
//! allows.

mod client_common;
use client_common as common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_ratelimit::Quotas;
use tower_ratelimit::client::{ByHeader, Observe, OneKey, PaceLayer, PacingMode};

const N: usize = 300;
const MS: u64 = 1_000_000;

/// One quota's counting: `check` whether a request at `t` (ns since the start) would be
/// admitted, `record` one that was. A refused request counts nothing.
trait Counter: Send {
    fn check(&mut self, t: u64) -> bool;
    fn record(&mut self, t: u64);
}

/// Windows `[k*w, (k+1)*w)` of the clock, `n` each.
struct FixedClock {
    n: u64,
    w: u64,
    idx: u64,
    count: u64,
}

impl Counter for FixedClock {
    fn check(&mut self, t: u64) -> bool {
        if t / self.w != self.idx {
            self.idx = t / self.w;
            self.count = 0;
        }
        self.count < self.n
    }
    fn record(&mut self, _t: u64) {
        self.count += 1;
    }
}

/// A window of `w` opens at the first request after the previous one closed (as
/// Claid's "Reset: 32" and most counters with a TTL set on first hit do).
struct FixedFirst {
    n: u64,
    w: u64,
    start: Option<u64>,
    count: u64,
}

impl Counter for FixedFirst {
    fn check(&mut self, t: u64) -> bool {
        if self.start.is_some_and(|s| t >= s + self.w) {
            self.start = None;
        }
        self.start.is_none() || self.count < self.n
    }
    fn record(&mut self, t: u64) {
        if self.start.is_none() {
            self.start = Some(t);
            self.count = 0;
        }
        self.count += 1;
    }
}

/// At most `n` in any `(t - w, t]`: every admitted instant kept for `w`.
struct SlidingLog {
    n: u64,
    w: u64,
    log: VecDeque<u64>,
}

impl Counter for SlidingLog {
    fn check(&mut self, t: u64) -> bool {
        while self.log.front().is_some_and(|&x| x + self.w <= t) {
            self.log.pop_front();
        }
        (self.log.len() as u64) < self.n
    }
    fn record(&mut self, t: u64) {
        self.log.push_back(t);
    }
}

/// The sliding-window counter (Cloudflare's approximation): clock-aligned windows, the
/// previous window's count weighted by the part of it still inside `(t - w, t]`, as if
/// its requests had been spread evenly, and rounded down:
/// admit iff `floor(prev * (w - elapsed) / w) + cur + 1 <= n`.
struct SlidingCounter {
    n: u64,
    w: u64,
    idx: u64,
    prev: u64,
    cur: u64,
}

impl Counter for SlidingCounter {
    fn check(&mut self, t: u64) -> bool {
        let idx = t / self.w;
        if idx != self.idx {
            self.prev = if idx == self.idx + 1 { self.cur } else { 0 };
            self.cur = 0;
            self.idx = idx;
        }
        let elapsed = t - idx * self.w;
        let weighted =
            (u128::from(self.prev) * u128::from(self.w - elapsed) / u128::from(self.w)) as u64;
        weighted + self.cur < self.n
    }
    fn record(&mut self, _t: u64) {
        self.cur += 1;
    }
}

/// A token bucket of `n` tokens refilled continuously at `n` per `w`; levels are kept
/// in units of `1/w` token, so the refill is exact.
struct TokenBucket {
    n: u64,
    w: u64,
    level: u128,
    last: u64,
}

impl Counter for TokenBucket {
    fn check(&mut self, t: u64) -> bool {
        let full = u128::from(self.n) * u128::from(self.w);
        let gained = u128::from(t.saturating_sub(self.last)) * u128::from(self.n);
        self.level = (self.level + gained).min(full);
        self.last = self.last.max(t);
        self.level >= u128::from(self.w)
    }
    fn record(&mut self, _t: u64) {
        self.level -= u128::from(self.w);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    FixedClock,
    FixedFirst,
    SlidingLog,
    SlidingCounter,
    TokenBucket,
}

/// A server model: every quota of the set must admit; one counts only what all admit.
struct Model(Vec<Box<dyn Counter>>);

impl Model {
    fn new(kind: Kind, quotas: &Quotas) -> Self {
        Model(
            quotas
                .iter()
                .map(|q| {
                    let n = u64::from(q.limit());
                    let w = q.window().as_nanos() as u64;
                    let c: Box<dyn Counter> = match kind {
                        Kind::FixedClock => Box::new(FixedClock {
                            n,
                            w,
                            idx: 0,
                            count: 0,
                        }),
                        Kind::FixedFirst => Box::new(FixedFirst {
                            n,
                            w,
                            start: None,
                            count: 0,
                        }),
                        Kind::SlidingLog => Box::new(SlidingLog {
                            n,
                            w,
                            log: VecDeque::new(),
                        }),
                        Kind::SlidingCounter => Box::new(SlidingCounter {
                            n,
                            w,
                            idx: 0,
                            prev: 0,
                            cur: 0,
                        }),
                        Kind::TokenBucket => Box::new(TokenBucket {
                            n,
                            w,
                            level: u128::from(n) * u128::from(w),
                            last: 0,
                        }),
                    };
                    c
                })
                .collect(),
        )
    }

    fn admit(&mut self, t: u64) -> bool {
        // Check all first (each check brings its quota up to `t`), then count in all.
        let mut ok = true;
        for c in &mut self.0 {
            ok &= c.check(t);
        }
        if ok {
            for c in &mut self.0 {
                c.record(t);
            }
        }
        ok
    }
}

/// The most a fresh model permits: the instant (ns) of the `n`-th request of the greedy
/// schedule, one request at the first millisecond it is admitted.
fn greedy_nth(kind: Kind, quotas: &Quotas, n: usize) -> u64 {
    greedy_nth_at(kind, quotas, n, 0)
}

/// [`greedy_nth`] with the server's clock `offset` ns ahead of the client's (windows
/// aligned elsewhere than the client's start).
fn greedy_nth_at(kind: Kind, quotas: &Quotas, n: usize, offset: u64) -> u64 {
    let mut m = Model::new(kind, quotas);
    let mut t = 0;
    let mut last = 0;
    for _ in 0..n {
        while !m.admit(t + offset) {
            t += MS;
        }
        last = t;
    }
    last
}

/// What a run against a model gave.
#[derive(Clone, Copy)]
struct Outcome {
    ok: usize,
    rejected: usize,
    /// Instant of the last admitted request, ns since the first was sent.
    last_ok: u64,
    bound: u64,
    /// The same for the first [`SHORT`] admitted (a short run, as the example's).
    short_ok: u64,
    short_bound: u64,
}

/// A short run: the first 100 requests of the 300.
const SHORT: usize = 100;

impl Outcome {
    fn ratio(&self) -> f64 {
        self.bound as f64 / self.last_ok.max(1) as f64
    }

    fn short_ratio(&self) -> f64 {
        self.short_bound as f64 / self.short_ok.max(1) as f64
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok={} rejected={} last={:.3}s bound={:.3}s ratio={:.4} first {SHORT}: {:.4}",
            self.ok,
            self.rejected,
            self.last_ok as f64 / 1e9,
            self.bound as f64 / 1e9,
            self.ratio(),
            self.short_ratio()
        )
    }
}

/// `N` requests fired at once through a pacer in `mode`, answered in-process by the
/// model at the virtual instant each is sent.
async fn run(kind: Kind, quotas: &Quotas, mode: PacingMode) -> Outcome {
    run_at(kind, quotas, mode, 0).await
}

/// [`run`] against a server whose clock is `offset` ns ahead of the client's.
async fn run_at(kind: Kind, quotas: &Quotas, mode: PacingMode, offset: u64) -> Outcome {
    let model = Arc::new(Mutex::new(Model::new(kind, quotas)));
    let start = Instant::now();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let (m, s) = (model.clone(), sent.clone());
    let server = service_fn(move |_req: http::Request<()>| {
        let t = start.elapsed().as_nanos() as u64;
        let ok = m.lock().expect("model").admit(t + offset);
        s.lock().expect("log").push((t, ok));
        let mut resp = http::Response::new(());
        if !ok {
            *resp.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
        }
        async move { Ok::<_, Infallible>(resp) }
    });
    let svc = ServiceBuilder::new()
        .layer(PaceLayer::with_mode(quotas.clone(), OneKey, mode))
        .service(server);
    let mut tasks = Vec::with_capacity(N);
    for _ in 0..N {
        let svc = svc.clone();
        let req = http::Request::get("http://api.test/")
            .body(())
            .expect("valid");
        tasks.push(tokio::spawn(svc.oneshot(req)));
    }
    for t in tasks {
        t.await.expect("task").expect("sent");
    }
    let sent = sent.lock().expect("log").clone();
    outcome_at(kind, quotas, &sent, offset)
}

fn outcome(kind: Kind, quotas: &Quotas, sent: &[(u64, bool)]) -> Outcome {
    outcome_at(kind, quotas, sent, 0)
}

fn outcome_at(kind: Kind, quotas: &Quotas, sent: &[(u64, bool)], offset: u64) -> Outcome {
    let first = sent.iter().map(|e| e.0).min().unwrap_or(0);
    let mut ok_at: Vec<u64> = sent.iter().filter(|e| e.1).map(|e| e.0 - first).collect();
    ok_at.sort_unstable();
    let short = SHORT.min(ok_at.len()).max(1);
    Outcome {
        ok: ok_at.len(),
        rejected: sent.len() - ok_at.len(),
        last_ok: ok_at.last().copied().unwrap_or(0),
        bound: greedy_nth_at(kind, quotas, ok_at.len().max(1), offset),
        short_ok: ok_at.get(short - 1).copied().unwrap_or(0),
        short_bound: greedy_nth_at(kind, quotas, short, offset),
    }
}

const KINDS: [Kind; 5] = [
    Kind::FixedClock,
    Kind::FixedFirst,
    Kind::SlidingLog,
    Kind::SlidingCounter,
    Kind::TokenBucket,
];

const MODES: [PacingMode; 4] = [
    PacingMode::Safe,
    PacingMode::Window,
    PacingMode::Even,
    PacingMode::Gcra,
];

/// Server clocks ahead of the client's (ms): windows aligned elsewhere than the client's
/// first request, by a fraction of a second or of a minute.
const OFFSETS_MS: [u64; 8] = [0, 1, 370, 999, 17_300, 30_001, 45_555, 59_999];

fn sets() -> [(&'static str, Quotas); 2] {
    [("claid", Quotas::claid()), ("clarifai", Quotas::clarifai())]
}

/// [`run_at`] on a real loopback server: the model behind axum, deciding on tokio's
/// clock at the instant each request arrives.
async fn run_loopback(kind: Kind, quotas: &Quotas, mode: PacingMode, offset: u64) -> Outcome {
    let model = Arc::new(Mutex::new(Model::new(kind, quotas)));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let (m, s) = (model.clone(), sent.clone());
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let t = start.elapsed().as_nanos() as u64;
            let ok = m.lock().expect("model").admit(t + offset);
            s.lock().expect("log").push((t, ok));
            async move {
                if ok {
                    http::StatusCode::OK
                } else {
                    http::StatusCode::TOO_MANY_REQUESTS
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let svc = ServiceBuilder::new()
        .layer(PaceLayer::with_mode(
            quotas.clone(),
            ByHeader(http::header::AUTHORIZATION),
            mode,
        ))
        .service(common::client());
    let mut tasks = Vec::new();
    for i in 0..N {
        let mut svc = svc.clone();
        let req = common::request(&url, &i.to_string());
        tasks.push(tokio::spawn(async move {
            let resp = svc.ready().await?.call(req).await?;
            Ok::<_, tower::BoxError>(resp.status())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("request");
    }
    let sent = sent.lock().expect("log").clone();
    outcome_at(kind, quotas, &sent, offset)
}

/// The crate's own GCRA layer (`RateLimitLayer`, Claid's draft-03 headers) on a real
/// loopback server, paced in `mode`; `observe` as given or the mode's default.
async fn against_gcra_layer(
    quotas: &Quotas,
    mode: PacingMode,
    observe: Option<Observe>,
) -> Outcome {
    let server = common::start(quotas.clone()).await;
    let mut layer =
        PaceLayer::with_mode(quotas.clone(), ByHeader(http::header::AUTHORIZATION), mode);
    if let Some(observe) = observe {
        layer = layer.observe(observe);
    }
    let svc = ServiceBuilder::new().layer(layer).service(common::client());
    let tasks = common::spawn_requests(&svc, &server.url, N);
    for t in tasks {
        t.await.expect("task").expect("request");
    }
    let log = server.log.lock().expect("log").clone();
    let sent: Vec<(u64, bool)> = log
        .iter()
        .map(|e| (e.0.as_nanos() as u64, e.2 == 200))
        .collect();
    // GCRA with burst n is the token bucket of n refilled at n per w.
    outcome(Kind::TokenBucket, quotas, &sent)
}

/// The table: rejections and throughput ratio (against each model's greedy bound) for
/// every mode, model and quota set, 300 requests each, in-process on paused time and,
/// for the crate's GCRA layer, on loopback. `--nocapture` prints it; the tests below
/// assert on the same runs.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn table_of_rejections_and_ratios() {
    println!(
        "{:8} {:8} {:26} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "mode", "quotas", "server", "rejected", "ratio", "bound_s", "last_s", "ratio@100"
    );
    let mut rows = 0;
    for mode in MODES {
        for (name, quotas) in sets() {
            for kind in KINDS {
                let o = run(kind, &quotas, mode).await;
                print_row(mode, name, &format!("{kind:?}"), &o);
                rows += 1;
            }
            let o = against_gcra_layer(&quotas, mode, None).await;
            print_row(mode, name, "RateLimitLayer (loopback)", &o);
            rows += 1;
        }
    }
    assert_eq!(rows, MODES.len() * 2 * (KINDS.len() + 1));
}

fn print_row(mode: PacingMode, name: &str, server: &str, o: &Outcome) {
    println!(
        "{:8} {name:8} {server:26} {:>8} {:>7.4} {:>9.3} {:>9.3} {:>9.4}",
        format!("{mode:?}"),
        o.rejected,
        o.ratio(),
        o.bound as f64 / 1e9,
        o.last_ok as f64 / 1e9,
        o.short_ratio()
    );
}
/// The default mode (`Safe`): 0 rejections from every model, both quota sets, windows
/// aligned at the client's start and at the offsets of [`OFFSETS_MS`]. The throughput
/// ratios asserted are those it achieves (paused time: exact, the same every run), each
/// next to the most any schedule safe against all six models can reach (the bound):
///
/// * a counter-safe client cannot beat the counter's own greedy schedule at the
///   alignment of its first request: Claid's 300th request at 149.5 s (120 in the
///   first minute, then 2 per second), Clarifai's at 19.93 s (15 per second, each
///   second's spread out);
/// * against fixed windows and sliding logs (134 s, 19 s) that caps the ratio at
///   134 / 149.5 = 0.896 for Claid and 19 / 19.93 = 0.953 for Clarifai;
/// * against a token bucket or GCRA (Claid: 90 s, 240 in the first minute) at
///   90 / 149.5 = 0.602; any sliding-log-safe client at 90 / 134 = 0.672;
/// * against the counter itself, 1.
///
/// The 2% margin costs the rest (Clarifai: 0.935 against 0.953).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn default_mode_is_never_rejected_by_any_model() {
    assert_eq!(PacingMode::default(), PacingMode::Safe);
    for (name, quotas) in sets() {
        for kind in KINDS {
            for offset_ms in OFFSETS_MS {
                let o = run_at(kind, &quotas, PacingMode::default(), offset_ms * MS).await;
                println!("safe    {name:8} {kind:?} +{offset_ms} ms: {o}");
                assert_eq!(o.rejected, 0, "{name} {kind:?} +{offset_ms} ms: {o}");
                assert_eq!(o.ok, N);
                if offset_ms != 0 {
                    continue;
                }
                let least = match (name, kind) {
                    // Bound 0.896 (above); achieved 0.8957.
                    ("claid", Kind::FixedClock | Kind::FixedFirst | Kind::SlidingLog) => 0.895,
                    // Bound 1; achieved 0.9993.
                    ("claid", Kind::SlidingCounter) => 0.999,
                    // Bound 0.602; achieved 0.6016.
                    ("claid", Kind::TokenBucket) => 0.601,
                    // Bound 1; achieved 0.9806 (the margin).
                    ("clarifai", Kind::SlidingCounter) => 0.98,
                    // Bound 0.953; achieved 0.9346.
                    _ => 0.934,
                };
                assert!(o.ratio() >= least, "{name} {kind:?}: {o}");
            }
        }
    }
}

/// A short run (the first 100 requests, as the `client` example sends): the default
/// bursts while no counter can tell, so it keeps 95% of what fixed windows allow for
/// Claid (4/s: 100 fit in the first minute's 120) where `Even`, spacing every request
/// by the minute quota's 0.5 s, gets under half.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn default_mode_keeps_short_runs_fast() {
    let claid = Quotas::claid();
    let safe = run(Kind::FixedFirst, &claid, PacingMode::Safe).await;
    let even = run(Kind::FixedFirst, &claid, PacingMode::Even).await;
    println!(
        "first {SHORT}: safe {:.4}, even {:.4}",
        safe.short_ratio(),
        even.short_ratio()
    );
    assert!(safe.short_ratio() >= 0.95, "{safe}");
    assert!(even.short_ratio() < 0.5, "{even}");
}

/// The default mode on real loopback servers: the crate's GCRA layer, fixed windows
/// (first-request- and clock-aligned), a sliding log and sliding-window counters at
/// several alignments, both quota sets: 0 rejections, the ratios of the in-process runs.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn default_mode_on_loopback() {
    for (name, quotas) in sets() {
        let o = against_gcra_layer(&quotas, PacingMode::default(), None).await;
        println!("safe    {name:8} RateLimitLayer (loopback): {o}");
        assert_eq!((o.ok, o.rejected), (N, 0), "{name}: {o}");
        // As against the token bucket in-process: bounds 0.602 (Claid), 0.953.
        assert!(
            o.ratio() >= if name == "claid" { 0.601 } else { 0.934 },
            "{o}"
        );
        for (kind, offset_ms) in [
            (Kind::FixedFirst, 0),
            (Kind::FixedClock, 370),
            (Kind::SlidingLog, 0),
            (Kind::SlidingCounter, 0),
            (Kind::SlidingCounter, 370),
            (Kind::SlidingCounter, 59_999),
        ] {
            let o = run_loopback(kind, &quotas, PacingMode::default(), offset_ms * MS).await;
            println!("safe    {name:8} {kind:?} +{offset_ms} ms (loopback): {o}");
            assert_eq!(
                (o.ok, o.rejected),
                (N, 0),
                "{name} {kind:?} +{offset_ms}: {o}"
            );
            if offset_ms == 0 {
                let least = match (name, kind) {
                    ("claid", Kind::SlidingCounter) => 0.999,
                    ("claid", _) => 0.895,
                    (_, Kind::SlidingCounter) => 0.98,
                    _ => 0.934,
                };
                assert!(o.ratio() >= least, "{name} {kind:?}: {o}");
            }
        }
    }
}

/// `Window`: never a 429 from fixed windows of either alignment, a sliding log or a
/// token bucket, at 95% or more of what fixed windows and sliding logs permit (0.997
/// Claid, 0.980 Clarifai). Against a token bucket with two quotas it gives up the
/// bucket's extra first burst (0.670: any sliding-log-safe client is capped at 0.672).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn window_mode_is_never_rejected_by_windows_logs_or_buckets() {
    for (name, quotas) in sets() {
        for kind in KINDS {
            if kind == Kind::SlidingCounter {
                continue;
            }
            let o = run(kind, &quotas, PacingMode::Window).await;
            println!("window  {name:8} {kind:?}: {o}");
            assert_eq!(o.rejected, 0, "{name} {kind:?}: {o}");
            assert_eq!(o.ok, N);
            match (kind, name) {
                (Kind::TokenBucket, "claid") => assert!((0.669..0.672).contains(&o.ratio()), "{o}"),
                _ => assert!(o.ratio() >= 0.95, "{name} {kind:?}: {o}"),
            }
        }
    }
}

/// A sliding-window counter refuses what a window-safe client sends at full rate: it
/// weighs the previous window's burst as if it had been spread, so 4 at 1.02 s and 4
/// more at 2.04 s look like 7.9 in the window. This is why the default is `Safe`.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn window_mode_bursts_are_refused_by_a_sliding_counter() {
    for (name, quotas) in sets() {
        let o = run(Kind::SlidingCounter, &quotas, PacingMode::Window).await;
        println!("window  {name:8} SlidingCounter: {o}");
        assert!(o.rejected > 0, "{name}: {o}");
    }
}

/// `Window` on loopback: the crate's GCRA layer and first-request-aligned fixed
/// windows, no 429. Against fixed windows 95% of the bound. With Clarifai's 15/s the
/// layer announces `Remaining: 0, Reset: 2` after each burst (the time until the quota
/// is full again, rounded up to whole seconds), and the default `Observe::Exhausted`
/// obeys it: half the rate, still no 429; `Observe::Throttled` keeps the full rate.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn window_mode_on_loopback() {
    for (name, quotas) in sets() {
        let o = against_gcra_layer(&quotas, PacingMode::Window, None).await;
        println!("window  {name:8} RateLimitLayer (loopback): {o}");
        assert_eq!((o.ok, o.rejected), (N, 0), "{name}: {o}");
        if name == "claid" {
            // Reset is exactly 1 s after each burst of 4: the log waits 1.02 s anyway.
            assert!(o.ratio() > 0.65, "{o}");
        }
        let o = run_loopback(Kind::FixedFirst, &quotas, PacingMode::Window, 0).await;
        println!("window  {name:8} FixedFirst (loopback): {o}");
        assert_eq!((o.ok, o.rejected), (N, 0), "{name}: {o}");
        assert!(o.ratio() >= 0.95, "{name}: {o}");
    }
    let o = against_gcra_layer(
        &Quotas::clarifai(),
        PacingMode::Window,
        Some(Observe::Throttled),
    )
    .await;
    println!("window  clarifai RateLimitLayer (loopback, Observe::Throttled): {o}");
    assert_eq!(o.rejected, 0, "{o}");
    assert!(o.ratio() >= 0.95, "{o}");
}

/// `Window` against clock-aligned fixed windows at any offset: never refused.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn window_mode_any_fixed_window_alignment_is_safe() {
    for (name, quotas) in sets() {
        for offset_ms in OFFSETS_MS {
            let o = run_at(
                Kind::FixedClock,
                &quotas,
                PacingMode::Window,
                offset_ms * MS,
            )
            .await;
            println!("window  {name:8} FixedClock +{offset_ms} ms: {o}");
            assert_eq!((o.ok, o.rejected), (N, 0), "{name} +{offset_ms}: {o}");
        }
    }
}

/// `Even`: never a 429 from any of the models (any counter alignment), and at 95% or
/// more of what a sliding-window counter permits; like the default at 300 requests,
/// far slower on short runs (`default_mode_keeps_short_runs_fast`).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn even_mode_is_never_rejected_and_matches_a_sliding_counter() {
    for (name, quotas) in sets() {
        for kind in KINDS {
            let o = run(kind, &quotas, PacingMode::Even).await;
            println!("even    {name:8} {kind:?}: {o}");
            assert_eq!(o.rejected, 0, "{name} {kind:?}: {o}");
            if kind == Kind::SlidingCounter {
                assert!(o.ratio() >= 0.95, "{name} {kind:?}: {o}");
            }
        }
        for offset_ms in OFFSETS_MS {
            let o = run_at(
                Kind::SlidingCounter,
                &quotas,
                PacingMode::Even,
                offset_ms * MS,
            )
            .await;
            assert_eq!((o.ok, o.rejected), (N, 0), "{name} +{offset_ms}: {o}");
        }
    }
}

/// `Gcra`: exactly what a token bucket (GCRA) permits, in-process and against the
/// crate's GCRA layer on loopback (1.000); fixed windows and sliding logs refuse its
/// bursts at full rate.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn gcra_mode_matches_a_token_bucket_and_breaks_windows() {
    for (name, quotas) in sets() {
        let o = run(Kind::TokenBucket, &quotas, PacingMode::Gcra).await;
        println!("gcra    {name:8} TokenBucket: {o}");
        assert_eq!(o.rejected, 0, "{name}: {o}");
        assert!(o.ratio() >= 0.95, "{name}: {o}");
        let o = against_gcra_layer(&quotas, PacingMode::Gcra, None).await;
        println!("gcra    {name:8} RateLimitLayer (loopback): {o}");
        assert_eq!((o.ok, o.rejected), (N, 0), "{name}: {o}");
        assert!(o.ratio() >= 0.95, "{name}: {o}");
        let o = run(Kind::SlidingLog, &quotas, PacingMode::Gcra).await;
        println!("gcra    {name:8} SlidingLog: {o}");
        assert!(o.rejected > 0, "{name}: {o}");
    }
}

/// The bounds themselves, by hand, for the models whose greedy schedule is easy to
/// state: Claid's 300th request at 134 s against fixed windows and sliding logs (4 per
/// second for 30 s, then the minute quota: 120 in each minute), at 90 s against a
/// token bucket (4/s until the minute bucket has drained at a net 2/s, then 2/s), at
/// 149.5 s against a sliding-window counter (120 in the first minute, then 2/s);
/// Clarifai's at 19 s (15 per second), 19.93 s against the counter.
#[test]
fn greedy_bounds_match_hand_computed_ones() {
    let s = 1_000 * MS;
    let claid = Quotas::claid();
    for kind in [Kind::FixedClock, Kind::FixedFirst, Kind::SlidingLog] {
        assert_eq!(greedy_nth(kind, &claid, N), 134 * s, "{kind:?}");
        assert_eq!(greedy_nth(kind, &Quotas::clarifai(), N), 19 * s, "{kind:?}");
    }
    let bucket = greedy_nth(Kind::TokenBucket, &claid, N);
    assert!((90 * s..=91 * s).contains(&bucket), "{bucket}");
    let counter = greedy_nth(Kind::SlidingCounter, &claid, N);
    assert!((149 * s..=150 * s).contains(&counter), "{counter}");
    let counter = greedy_nth(Kind::SlidingCounter, &Quotas::clarifai(), N);
    assert!((19_900 * MS..=19_950 * MS).contains(&counter), "{counter}");
}

/// Cancellation anywhere in the queue: requests whose callers give up after a random
/// time (dropping their reservation wherever it is) never let a later one break the
/// bound (a sliding log refuses nothing), and nobody waits longer because of them.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelled_requests_never_break_the_bound() {
    for (mode, (name, quotas)) in [PacingMode::Safe, PacingMode::Window]
        .into_iter()
        .flat_map(|m| sets().map(|s| (m, s)))
    {
        let model = Arc::new(Mutex::new(Model::new(Kind::SlidingLog, &quotas)));
        let start = Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (m, s) = (model.clone(), sent.clone());
        let server = service_fn(move |_req: http::Request<()>| {
            let t = start.elapsed().as_nanos() as u64;
            let ok = m.lock().expect("model").admit(t);
            s.lock().expect("log").push((t, ok));
            async move { Ok::<_, Infallible>(http::Response::new(())) }
        });
        let svc = ServiceBuilder::new()
            .layer(PaceLayer::with_mode(quotas.clone(), OneKey, mode))
            .service(server);
        // A fixed LCG: the same cancellations every run.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut tasks = Vec::with_capacity(N);
        for _ in 0..N {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // A third give up after 0..20 s, wherever they are in the queue.
            let give_up = (seed >> 33).is_multiple_of(3);
            let patience = Duration::from_millis((seed >> 40) % 20_000);
            let svc = svc.clone();
            let req = http::Request::get("http://api.test/")
                .body(())
                .expect("valid");
            tasks.push(tokio::spawn(async move {
                let call = svc.oneshot(req);
                if give_up {
                    tokio::time::timeout(patience, call).await.is_ok()
                } else {
                    call.await.is_ok()
                }
            }));
        }
        let mut done = 0;
        for t in tasks {
            done += usize::from(t.await.expect("task"));
        }
        let sent = sent.lock().expect("log").clone();
        let o = outcome(Kind::SlidingLog, &quotas, &sent);
        println!("{mode:?} {name:8} SlidingLog with cancellations: sent={done} {o}");
        assert_eq!(o.rejected, 0, "{name}: {o}");
        assert_eq!(o.ok, done);
        assert!(done < N && done > N / 2, "{done}");
        let uncancelled = run(Kind::SlidingLog, &quotas, mode).await;
        assert!(o.last_ok <= uncancelled.last_ok, "{o} vs {uncancelled}");
    }
}

/// Learning from the server: a client configured too generously (8/s) against a
/// fixed-window server of 4/s that says `X-RateLimit-Remaining: 0` with the reset. By
/// default (`Observe::Exhausted` in the window modes) the client holds the key until
/// the reset, requests already booked included, and draws no 429; heeding only 429s
/// (`Observe::Throttled`) it does draw them.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn remaining_zero_with_a_reset_holds_the_key() {
    let configured = Quotas::from(tower_ratelimit::Quota::per_second(8).expect("valid"));
    let server_quotas = Quotas::from(tower_ratelimit::Quota::per_second(4).expect("valid"));
    for (observe, expect_rejections) in [
        (None, false),
        (Some(Observe::Adopt), false),
        (Some(Observe::Throttled), true),
    ] {
        let model = Arc::new(Mutex::new(Model::new(Kind::FixedClock, &server_quotas)));
        let start = Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (m, s) = (model.clone(), sent.clone());
        let server = service_fn(move |_req: http::Request<()>| {
            let t = start.elapsed().as_nanos() as u64;
            let ok = m.lock().expect("model").admit(t);
            s.lock().expect("log").push((t, ok));
            // What a fixed-window server announces: what is left of this second, and
            // the whole seconds until it ends (rounded up).
            let s_ns = 1_000 * MS;
            let in_second = sent_in_second(&s, t / s_ns);
            let remaining = 4u64.saturating_sub(in_second);
            let reset = (s_ns - t % s_ns).div_ceil(s_ns);
            let mut resp = http::Response::new(());
            if !ok {
                *resp.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
            }
            let h = resp.headers_mut();
            h.insert(
                "ratelimit-limit",
                http::HeaderValue::from_static("4, 4;w=1"),
            );
            h.insert("x-ratelimit-remaining", http::HeaderValue::from(remaining));
            h.insert("x-ratelimit-reset", http::HeaderValue::from(reset));
            async move { Ok::<_, Infallible>(resp) }
        });
        let mut layer = PaceLayer::new(configured.clone(), OneKey);
        if let Some(o) = observe {
            layer = layer.observe(o);
        }
        let svc = ServiceBuilder::new().layer(layer).service(server);
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let svc = svc.clone();
            let req = http::Request::get("http://api.test/")
                .body(())
                .expect("valid");
            tasks.push(tokio::spawn(svc.oneshot(req)));
        }
        for t in tasks {
            t.await.expect("task").expect("sent");
        }
        let sent = sent.lock().expect("log").clone();
        let rejected = sent.iter().filter(|e| !e.1).count();
        println!("{observe:?}: sent={} rejected={rejected}", sent.len());
        assert_eq!(rejected > 0, expect_rejections, "{observe:?}: {rejected}");
        if !expect_rejections {
            assert_eq!(sent.len(), 40);
        }
    }
}

/// Admitted requests the log holds for second `sec`.
fn sent_in_second(log: &Mutex<Vec<(u64, bool)>>, sec: u64) -> u64 {
    log.lock()
        .expect("log")
        .iter()
        .filter(|e| e.1 && e.0 / (1_000 * MS) == sec)
        .count() as u64
}
