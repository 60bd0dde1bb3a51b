//! Panics in user code around the limiter: the key closure, the cost closure, the
//! exempt predicate, the decision hook, the renderer and the inner service. None may
//! corrupt the limiter: other clients keep their exact counts, and the panicking
//! client's own count follows the rule documented in SECURITY.md:
//!
//! - a panic **before** the store decides (key, cost, exempt) costs nothing;
//! - a request the store **admitted** counts, whatever panics afterwards (the hook on
//!   the admission, the inner service): it was admitted;
//! - a **denied** request never counts, even when the hook or the renderer panics
//!   while answering it: the answer is lost (the connection closes), the limit holds.
//!
//! axum does not catch handler panics: the connection's task dies and the client sees
//! the connection close, so every request here goes on a fresh connection. The same
//! rules are checked on the asynchronous store path (what Redis takes) and by calling
//! the `tower::Service` directly under `catch_unwind`. Clocks are manual and never
//! move unless a test moves them, so every count is exact.
//!
//! The last two tests put every callback's panic into one service and one client each
//! (`panics_in_every_callback_keep_exact_counts`), and a panicking route on a server
//! built with the default store (`a_panicking_handler_on_a_real_server`).

mod common;
mod raw_http;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{Http, serve};
use futures_util::FutureExt;
use http::{HeaderMap, Request, Response, StatusCode};
use raw_http::{Reply, exchange};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::{RequestHead, from_fn};
use tower_ratelimit::render::{Rejection, Renderer, Text};
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::store::{Check, Store, Tier, Tiers};
use tower_ratelimit::{Outcome, Quota, RateLimitLayer, RateLimitLayerBuilder, StoreError, Verdict};

/// Every client's budget: a burst of 4, one more every 15 minutes of the manual clock.
const QUOTA: u32 = 4;
const EMISSION: Duration = Duration::from_secs(15 * 60);
/// Panicking requests client A sends in each scenario (more than its quota).
const PANICS: u32 = 6;
const MARK: &str = "deliberate panic";

fn quota() -> Quota {
    Quota::per_hour(QUOTA).expect("valid quota")
}

/// The deliberate panics of these tests are expected: keep them out of the output,
/// and let any other panic print as usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !msg.starts_with(MARK) {
                default(info);
            }
        }));
    });
}

/// Where a request asks to panic: its `x-panic` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Key,
    Cost,
    Exempt,
    Hook,
    Renderer,
    Inner,
}

impl Source {
    const ALL: [Source; 6] = [
        Source::Key,
        Source::Cost,
        Source::Exempt,
        Source::Hook,
        Source::Renderer,
        Source::Inner,
    ];

    fn name(self) -> &'static str {
        match self {
            Source::Key => "key",
            Source::Cost => "cost",
            Source::Exempt => "exempt",
            Source::Hook => "hook",
            Source::Renderer => "renderer",
            Source::Inner => "inner",
        }
    }

    /// How many of A's panicking requests the store admitted (and so count), when A
    /// sends them with its whole budget left (all but `Renderer`, which is only called
    /// once the budget is spent).
    fn admitted_of_panicking(self) -> u32 {
        match self {
            // Before the store decides: nothing is counted.
            Source::Key | Source::Cost | Source::Exempt => 0,
            // The first QUOTA were admitted before the panic; the rest were denied.
            Source::Hook | Source::Inner => QUOTA.min(PANICS),
            // A's budget is spent first; every panicking request is a denial.
            Source::Renderer => 0,
        }
    }

    /// What A sees for its `i`-th panicking request (0-based): a closed connection,
    /// or the status of an answer that did not reach the panicking code.
    fn panicking_reply(self, i: u32) -> u16 {
        match self {
            Source::Key | Source::Cost | Source::Exempt | Source::Hook | Source::Renderer => 0,
            // Denied requests never reach the inner service, so they are answered.
            Source::Inner if i < QUOTA => 0,
            Source::Inner => 429,
        }
    }
}

fn wants_panic(headers: &HeaderMap, source: Source) -> bool {
    headers
        .get("x-panic")
        .is_some_and(|v| v.as_bytes() == source.name().as_bytes())
}

fn client_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-client")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The default renderer, except when the request asks the renderer to panic.
fn panicking_renderer(rejection: &Rejection<'_>) -> Response<bytes::Bytes> {
    if wants_panic(rejection.headers(), Source::Renderer) {
        panic!("{MARK} in the renderer");
    }
    Text::new().render(rejection)
}

type Key = fn(&RequestHead<'_>) -> Option<String>;

/// A builder whose every closure panics when the request names it in `x-panic`.
fn configure<Src>(
    builder: RateLimitLayerBuilder<tower_ratelimit::key::GlobalKey, Src>,
) -> RateLimitLayerBuilder<
    tower_ratelimit::key::FnKey<Key, String>,
    Src,
    tower_ratelimit::middleware::HasResolver,
> {
    let key: Key = |head| {
        if wants_panic(head.headers(), Source::Key) {
            panic!("{MARK} in the key closure");
        }
        client_of(head.headers())
    };
    builder
        .key(from_fn(key))
        .cost(|head| {
            if wants_panic(head.headers(), Source::Cost) {
                panic!("{MARK} in the cost closure");
            }
            1
        })
        .exempt(|head| {
            if wants_panic(head.headers(), Source::Exempt) {
                panic!("{MARK} in the exempt predicate");
            }
            false
        })
        .on_decision(|event| {
            if wants_panic(event.head().headers(), Source::Hook) {
                panic!("{MARK} in the decision hook ({:?})", event.verdict());
            }
        })
        .renderer(panicking_renderer)
        .tiers(|key: &String| {
            if key == TIER_PANICS {
                panic!("{MARK} in the tier resolver");
            }
            Tier(0)
        })
}

/// The client whose key makes the tier resolver panic (it sees only the key).
const TIER_PANICS: &str = "tier-panics";

/// Handler calls per client.
#[derive(Default)]
struct Calls {
    a: AtomicUsize,
    b: AtomicUsize,
}

impl Calls {
    fn count(&self, headers: &HeaderMap) {
        match client_of(headers).as_deref() {
            Some("A") => self.a.fetch_add(1, SeqCst),
            Some("B") => self.b.fetch_add(1, SeqCst),
            _ => 0,
        };
    }
}

async fn handler(calls: Arc<Calls>, headers: HeaderMap) -> &'static str {
    calls.count(&headers);
    if wants_panic(&headers, Source::Inner) {
        panic!("{MARK} in the inner service");
    }
    "ok"
}

/// Serves the panicking configuration over `store` on loopback with connect info.
async fn serve_panicking<S>(
    builder: RateLimitLayerBuilder<tower_ratelimit::key::GlobalKey, tower_ratelimit::WithStore<S>>,
) -> (SocketAddr, Arc<Calls>)
where
    S: Store<String>,
    S::Future: tower_ratelimit::store::CheckFuture<axum::routing::Route>,
{
    quiet_deliberate_panics();
    let layer = configure(builder).build();
    let calls = Arc::new(Calls::default());
    let c = Arc::clone(&calls);
    let router = Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| handler(Arc::clone(&c), headers)),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    (addr, calls)
}

fn request(client: &str, panic: Option<Source>) -> Vec<u8> {
    let client = format!("x-client: {client}");
    let panic = panic.map(|s| format!("x-panic: {}", s.name()));
    let mut lines = vec![client.as_bytes()];
    if let Some(p) = &panic {
        lines.push(p.as_bytes());
    }
    raw_http::get("/", &lines)
}

/// Statuses of `n` plain requests from `client`.
async fn plain(addr: SocketAddr, client: &str, n: u32) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(exchange(addr, &request(client, None)).await.status());
    }
    out
}

fn statuses(ok: u32, denied: u32) -> Vec<u16> {
    let mut v = vec![200; ok as usize];
    v.extend(std::iter::repeat_n(429, denied as usize));
    v
}

/// A sends PANICS panicking requests, each followed by one request from B (B sends
/// 2 × QUOTA in all); then both are probed, and the clock moved by one emission
/// interval must give each exactly one more.
async fn scenario(source: Source, addr: SocketAddr, calls: &Calls, clock: &ManualClock) {
    let name = source.name();
    if source == Source::Renderer {
        // The renderer only runs on a denial: A spends its budget first.
        assert_eq!(plain(addr, "A", QUOTA).await, statuses(QUOTA, 0), "{name}");
    }
    let a_calls_before = calls.a.load(SeqCst);
    let mut b_seen = Vec::new();
    for i in 0..2 * QUOTA {
        if i < PANICS {
            let reply = exchange(addr, &request("A", Some(source))).await;
            assert_eq!(
                reply.status(),
                source.panicking_reply(i),
                "{name}: A's panic #{i}"
            );
            if let Reply::Answer(a) = &reply {
                assert!(a.header("retry-after").is_some(), "{name}: a full 429");
            }
        }
        b_seen.extend(plain(addr, "B", 1).await);
    }
    assert_eq!(
        b_seen,
        statuses(QUOTA, QUOTA),
        "{name}: B gets exactly its quota"
    );
    assert_eq!(
        calls.b.load(SeqCst),
        QUOTA as usize,
        "{name}: B's handler calls"
    );
    let inner_calls = if source == Source::Inner {
        QUOTA as usize
    } else {
        0
    };
    assert_eq!(
        calls.a.load(SeqCst) - a_calls_before,
        inner_calls,
        "{name}: only admitted requests reach the handler"
    );

    // A's own budget: what the panicking requests did not count.
    let left = match source {
        Source::Renderer => 0,
        _ => QUOTA - source.admitted_of_panicking(),
    };
    assert_eq!(
        plain(addr, "A", left + 2).await,
        statuses(left, 2),
        "{name}: A's budget left"
    );

    // One emission interval later, exactly one more each: no panic left a request
    // half-counted or a cell stuck.
    clock.advance(EMISSION);
    assert_eq!(
        plain(addr, "A", 2).await,
        statuses(1, 1),
        "{name}: A after refill"
    );
    assert_eq!(
        plain(addr, "B", 2).await,
        statuses(1, 1),
        "{name}: B after refill"
    );
}

fn memory_store(clock: &ManualClock) -> MemoryStore<String, ManualClock> {
    MemoryStore::with_clock(quota(), clock.clone())
}

#[tokio::test]
async fn panics_on_the_in_memory_path_leave_exact_counts() {
    for source in Source::ALL {
        let clock = ManualClock::new();
        let (addr, calls) = serve_panicking(RateLimitLayer::with_store(memory_store(&clock))).await;
        scenario(source, addr, &calls, &clock).await;
    }
}

#[tokio::test]
async fn a_panicking_tier_resolver_costs_nothing_and_moves_no_other_count() {
    let clock = ManualClock::new();
    let (addr, calls) = serve_panicking(RateLimitLayer::with_store(memory_store(&clock))).await;
    let mut b = Vec::new();
    for _ in 0..2 * QUOTA {
        let reply = exchange(addr, &request(TIER_PANICS, None)).await;
        assert_eq!(
            reply.status(),
            0,
            "the resolver's panic closes the connection"
        );
        b.extend(plain(addr, "B", 1).await);
    }
    assert_eq!(b, statuses(QUOTA, QUOTA), "B gets exactly its quota");
    assert_eq!(calls.b.load(SeqCst), QUOTA as usize);
}

/// Decides with an in-memory store after yielding, the way a network store answers,
/// so the hook, the renderer and the inner call run inside the response future.
struct Deferred(Arc<MemoryStore<String, ManualClock>>);

impl Store<String> for Deferred {
    type Future = Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>;

    fn check(&self, key: &String, tier: Tier, cost: u32) -> Check<Self::Future> {
        let inner = Arc::clone(&self.0);
        let key = key.clone();
        Check::Pending(Box::pin(async move {
            tokio::task::yield_now().await;
            match inner.check(&key, tier, cost) {
                Check::Ready(r) => r,
                Check::Pending(f) => f.await,
            }
        }))
    }

    fn tiers(&self) -> &Tiers {
        self.0.tiers()
    }
}

#[tokio::test]
async fn panics_on_the_asynchronous_store_path_leave_exact_counts() {
    for source in Source::ALL {
        let clock = ManualClock::new();
        let store = Deferred(Arc::new(memory_store(&clock)));
        let (addr, calls) = serve_panicking(RateLimitLayer::with_store(store)).await;
        scenario(source, addr, &calls, &clock).await;
    }
}

/// Every source at once: A's panicking requests of all kinds race B's requests on a
/// multi-threaded runtime. B still gets exactly its quota; A's panics before the store
/// cost nothing, so with key/cost/exempt panics only, A keeps its whole budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_panics_do_not_move_another_clients_count() {
    let clock = ManualClock::new();
    let (addr, calls) = serve_panicking(RateLimitLayer::with_store(memory_store(&clock))).await;
    let mut tasks = Vec::new();
    for _ in 0..PANICS {
        for source in [Source::Key, Source::Cost, Source::Exempt] {
            tasks.push(tokio::spawn(async move {
                (
                    Some(source),
                    exchange(addr, &request("A", Some(source))).await.status(),
                )
            }));
        }
        for _ in 0..2 {
            tasks.push(tokio::spawn(async move {
                (None, exchange(addr, &request("B", None)).await.status())
            }));
        }
    }
    let mut b = Vec::new();
    for task in tasks {
        match task.await.expect("client task") {
            (Some(source), status) => assert_eq!(status, 0, "{source:?} closes the connection"),
            (None, status) => b.push(status),
        }
    }
    b.sort_unstable();
    assert_eq!(
        b,
        statuses(QUOTA, 2 * PANICS - QUOTA),
        "B: exactly its quota"
    );
    assert_eq!(calls.b.load(SeqCst), QUOTA as usize);
    assert_eq!(calls.a.load(SeqCst), 0);
    assert_eq!(
        plain(addr, "A", QUOTA + 1).await,
        statuses(QUOTA, 1),
        "A's budget untouched"
    );
}

fn http_request(client: &str, panic: Option<Source>) -> Request<String> {
    let mut req = Request::builder().header("x-client", client);
    if let Some(s) = panic {
        req = req.header("x-panic", s.name());
    }
    req.body(String::new()).expect("valid request")
}

/// The `tower::Service` called directly, its panics caught: the same service value
/// keeps deciding correctly after each one (nothing in it is poisoned or half-updated).
#[tokio::test]
async fn a_service_that_panicked_keeps_limiting() {
    quiet_deliberate_panics();
    for source in Source::ALL {
        let clock = ManualClock::new();
        let layer = configure(RateLimitLayer::with_store(memory_store(&clock))).build();
        let calls = Arc::new(Calls::default());
        let c = Arc::clone(&calls);
        let mut svc = ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(move |req: Request<String>| {
                let c = Arc::clone(&c);
                async move {
                    c.count(req.headers());
                    if wants_panic(req.headers(), Source::Inner) {
                        panic!("{MARK} in the inner service");
                    }
                    Ok::<_, std::convert::Infallible>(Response::new(String::from("ok")))
                }
            }));
        let name = source.name();
        if source == Source::Renderer {
            for _ in 0..QUOTA {
                let res = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(http_request("A", None))
                    .await;
                assert_eq!(res.expect("infallible").status(), StatusCode::OK, "{name}");
            }
        }
        let mut panicked = 0;
        for i in 0..PANICS {
            let ready = svc.ready().await.expect("ready");
            // A panic in `call` itself (key, cost, exempt, hook, renderer), or in the
            // future it returns (the inner service).
            let called = catch_unwind(AssertUnwindSafe(|| {
                ready.call(http_request("A", Some(source)))
            }));
            let status = match called {
                Err(_) => None,
                Ok(fut) => match AssertUnwindSafe(fut).catch_unwind().await {
                    Err(_) => None,
                    Ok(res) => Some(res.expect("infallible").status().as_u16()),
                },
            };
            let want = source.panicking_reply(i);
            assert_eq!(status.unwrap_or(0), want, "{name}: panic #{i}");
            panicked += u32::from(status.is_none());
        }
        assert!(panicked > 0, "{name}: the source did panic");
        let mut b = Vec::new();
        for _ in 0..QUOTA + 1 {
            let res = svc
                .ready()
                .await
                .expect("ready")
                .call(http_request("B", None))
                .await;
            b.push(res.expect("infallible").status().as_u16());
        }
        assert_eq!(b, statuses(QUOTA, 1), "{name}: B");
        let left = match source {
            Source::Renderer => 0,
            _ => QUOTA - source.admitted_of_panicking(),
        };
        let mut a = Vec::new();
        for _ in 0..left + 1 {
            let res = svc
                .ready()
                .await
                .expect("ready")
                .call(http_request("A", None))
                .await;
            a.push(res.expect("infallible").status().as_u16());
        }
        assert_eq!(a, statuses(left, 1), "{name}: A's budget left");
    }
}

// One service, every callback panicking for its own client.

const LIMIT: usize = 5;

/// The key is the `x-api-key` header; the key "boom" makes the closure panic.
fn key_of(h: &RequestHead<'_>) -> Option<String> {
    let k = h.headers().get("x-api-key")?.to_str().ok()?;
    assert_ne!(k, "boom", "key closure panics (on purpose)");
    Some(k.to_owned())
}

fn req(key: &str, path: &str) -> Request<String> {
    Request::builder()
        .uri(path)
        .header("x-api-key", key)
        .body(String::new())
        .expect("valid request")
}

/// Outcome of one call: the status, or `None` if it panicked.
async fn call<S>(svc: &S, r: Request<String>) -> Option<StatusCode>
where
    S: Service<Request<String>, Response = Response<tower_ratelimit::body::ResponseBody<String>>>
        + Clone,
    S::Error: std::fmt::Debug,
{
    let mut svc = svc.clone();
    // A panic may happen while building the future (key, store, hook, renderer run in
    // `call`) or while polling it (the inner service).
    let fut = std::panic::catch_unwind(AssertUnwindSafe(|| svc.call(r))).ok()?;
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .ok()
        .map(|r| r.expect("infallible").status())
}

#[tokio::test]
async fn panics_in_every_callback_keep_exact_counts() {
    let admitted_hook = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&admitted_hook);
    let inner_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&inner_calls);
    let inner = service_fn(move |r: Request<String>| {
        calls.fetch_add(1, SeqCst);
        let boom = r.uri().path() == "/boom-inner";
        async move {
            assert!(!boom, "inner service panics (on purpose)");
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }
    });
    let renderer = |r: &Rejection<'_>| {
        assert_ne!(
            r.uri().path(),
            "/boom-render",
            "renderer panics (on purpose)"
        );
        let mut res = Response::new(Bytes::from_static(b"no"));
        *res.status_mut() = r.status();
        res
    };
    let store = MemoryStore::with_clock(
        Quota::per_minute(LIMIT as u32).expect("quota"),
        ManualClock::new(),
    );
    let layer = RateLimitLayer::with_store(store)
        .key(from_fn(key_of))
        .renderer(renderer)
        .on_decision(move |e| {
            if e.verdict() == Verdict::Admitted {
                seen.fetch_add(1, SeqCst);
            }
            assert_ne!(
                e.head().uri().path(),
                "/boom-hook",
                "hook panics (on purpose)"
            );
        })
        .build();
    let svc = layer.layer(inner);

    let mut victim = Vec::new();
    let mut panicked = 0;
    for round in 0..8 {
        // Each round: one request of the victim, then one panicking request per kind.
        victim.push(call(&svc, req("victim", "/")).await);
        for (key, path) in [
            ("boom", "/"),
            ("inner", "/boom-inner"),
            ("hook", "/boom-hook"),
            ("render", if round < LIMIT { "/" } else { "/boom-render" }),
        ] {
            if call(&svc, req(key, path)).await.is_none() {
                panicked += 1;
            }
        }
    }
    let ok = Some(StatusCode::OK);
    let denied = Some(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(victim[..LIMIT], [ok; LIMIT], "{victim:?}");
    assert_eq!(victim[LIMIT..], [denied; 8 - LIMIT], "{victim:?}");
    // boom: 8 key panics; inner: 5 admitted then panicking, 3 denied; hook: 8 hook
    // panics (admitted or not, the hook runs); render: 3 renderer panics.
    assert_eq!(panicked, 8 + LIMIT + 8 + 3);

    // What each panicking client has left: exactly its limit minus what was admitted.
    let left = |key: &'static str| {
        let svc = svc.clone();
        async move {
            let mut n = 0;
            for _ in 0..LIMIT + 2 {
                if call(&svc, req(key, "/")).await == ok {
                    n += 1;
                }
            }
            n
        }
    };
    assert_eq!(left("victim").await, 0);
    assert_eq!(
        left("inner").await,
        0,
        "admitted before the handler panicked"
    );
    assert_eq!(
        left("render").await,
        0,
        "a denial's panic consumed nothing more"
    );
    // The hook panics after the store admitted: those requests were counted (their
    // panic still ran the hook's counter first), and the rest were denied.
    let hook_left = {
        let svc = svc.clone();
        let mut n = 0;
        for _ in 0..LIMIT + 2 {
            if call(&svc, req("hook", "/")).await == ok {
                n += 1;
            }
        }
        n
    };
    assert_eq!(hook_left, 0);
    // The key "boom" never reached the store: a fresh key "boom2" behaves as new.
    assert_eq!(left("boom2").await, LIMIT);
    // Inner calls: victim 5 + inner 5 (panicked) + render 5 + boom2 5.
    assert_eq!(inner_calls.load(SeqCst), 4 * LIMIT);
    // Admissions the hook saw: victim 5, inner 5, hook 5, render 5, boom2 5.
    assert_eq!(admitted_hook.load(SeqCst), 5 * LIMIT);
}

/// On a real axum server: a handler that panics for some requests (the connection's
/// task dies, the server lives on) does not disturb the exact count of the others.
#[tokio::test]
async fn a_panicking_handler_on_a_real_server() {
    let layer = RateLimitLayer::builder(Quota::per_minute(LIMIT as u32).expect("quota"))
        .key(from_fn(|h: &RequestHead<'_>| {
            h.headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }))
        .build();
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/boom",
        get(|| async {
            if std::hint::black_box(true) {
                panic!("handler panics (on purpose)");
            }
            "unreachable"
        }),
    );
    let addr = serve(app.layer(layer)).await;
    let http = Http::new(addr);
    let mut ok = 0;
    let mut boom_failed = 0;
    for _ in 0..(2 * LIMIT) {
        let r = http.send("GET", "/", &[("x-api-key", "victim")]).await;
        if r.status == StatusCode::OK {
            ok += 1;
        }
        // A fresh client each time: a panic takes its connection down.
        let boom = tokio::spawn(async move {
            Http::new(addr)
                .send("GET", "/boom", &[("x-api-key", "bomber")])
                .await
                .status
        })
        .await;
        if boom.is_err() {
            boom_failed += 1;
        }
    }
    assert_eq!(ok, LIMIT, "the victim's exact count");
    // The bomber's first LIMIT requests were admitted and panicked (no answer); the
    // rest were denied by the limiter with a 429, before reaching the handler.
    assert_eq!(boom_failed, LIMIT);
    let after = Http::new(addr)
        .send("GET", "/", &[("x-api-key", "bomber")])
        .await;
    assert_eq!(after.status, StatusCode::TOO_MANY_REQUESTS);
    let fresh = Http::new(addr)
        .send("GET", "/", &[("x-api-key", "new")])
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "the server keeps answering");
}
