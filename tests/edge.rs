//! Malformed HTTP at the edge: real axum servers on loopback (served with connect info)
//! receive requests written byte by byte, with oversized, repeated, non-UTF-8 and
//! control-character forwarding and `Authorization` headers. Every request gets the
//! right status from the right party (hyper's own 400/431 for what it refuses to parse,
//! the limiter's missing-key 400, or the limit of the key the documented rules give),
//! the server keeps serving new connections, and a well-formed client afterwards gets
//! exactly its quota.
//!
//! The stores run on a manual clock that never moves, so every count is exact.

mod raw_http;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use raw_http::{Reply, exchange};
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::{ClientIp, HeaderKey, KeyExtractor};
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::{Quota, RateLimitLayer, Verdict};

/// Every key's budget: a burst of 4, never refilled (the clock stands still).
const QUOTA: u32 = 4;

fn quota() -> Quota {
    Quota::per_hour(QUOTA).expect("valid quota")
}

/// What the limiter decided, per key, as its decision hook saw it.
#[derive(Default)]
struct Seen {
    admitted: HashMap<String, u32>,
    denied: HashMap<String, u32>,
    missing: u32,
}

struct Server {
    addr: SocketAddr,
    /// Requests that reached the handler.
    handled: Arc<AtomicUsize>,
    seen: Arc<Mutex<Seen>>,
}

async fn serve<E>(extractor: E) -> Server
where
    E: KeyExtractor,
    E::Key: std::fmt::Display,
{
    let seen = Arc::new(Mutex::new(Seen::default()));
    let hook_seen = Arc::clone(&seen);
    let layer = RateLimitLayer::with_store(MemoryStore::<E::Key, _>::with_clock(
        quota(),
        ManualClock::new(),
    ))
    .key(extractor)
    .on_decision(move |event| {
        let mut seen = hook_seen.lock().expect("hook lock");
        let key = event.key().map(|k| k.to_string());
        match (event.verdict(), key) {
            (Verdict::Admitted, Some(k)) => *seen.admitted.entry(k).or_default() += 1,
            (Verdict::Denied, Some(k)) => *seen.denied.entry(k).or_default() += 1,
            (Verdict::KeyMissing, _) => seen.missing += 1,
            (verdict, key) => panic!("unexpected decision {verdict:?} for {key:?}"),
        }
    })
    .build();
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let router = Router::new()
        .route(
            "/",
            get(move || async move {
                count.fetch_add(1, SeqCst);
                "ok"
            }),
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
    Server {
        addr,
        handled,
        seen,
    }
}

/// Who should answer a request, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Counted against this key: 200 while its budget lasts, then 429.
    Key(String),
    /// The limiter's missing-key answer: 400 with a body, handler not reached.
    NoKey,
    /// hyper refuses the head itself (400 or 431, empty body); the limiter never sees it.
    Hyper(u16),
}

struct Case {
    name: &'static str,
    lines: Vec<Vec<u8>>,
    expect: Expect,
}

fn case(name: &'static str, lines: Vec<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        lines,
        expect,
    }
}

fn line(name: &str, value: &[u8]) -> Vec<u8> {
    let mut l = format!("{name}: ").into_bytes();
    l.extend_from_slice(value);
    l
}

fn key(k: &str) -> Expect {
    Expect::Key(k.to_owned())
}

/// `unit` repeated to at least `len` bytes.
fn repeat_to(unit: &[u8], len: usize) -> Vec<u8> {
    unit.iter()
        .copied()
        .cycle()
        .take(len.div_ceil(unit.len()) * unit.len())
        .collect()
}

fn xff(value: &[u8]) -> Vec<u8> {
    line("X-Forwarded-For", value)
}

/// The peer (127.0.0.1) is the one trusted proxy, so each request's `X-Forwarded-For`
/// is read as if that proxy had written it.
fn forwarding_cases() -> Vec<Case> {
    const PROXY: &str = "127.0.0.1";
    let mut padded_client = repeat_to(b"203.0.113.50, ", 8 * 1024);
    padded_client.extend_from_slice(b"127.0.0.1");
    let mut long_chain = repeat_to(b"10.9.8.7, ", 8 * 1024);
    long_chain.extend_from_slice(b"198.51.100.1");
    vec![
        // Garbage never becomes a key of its own: it stops the walk at the proxy.
        case(
            "8 KiB of garbage",
            vec![xff(&repeat_to(b"x", 8 * 1024))],
            key(PROXY),
        ),
        case(
            "64 KiB of garbage",
            vec![xff(&repeat_to(b"a", 64 * 1024))],
            key(PROXY),
        ),
        case(
            "8 KiB of addresses, right-most untrusted wins",
            vec![xff(&long_chain)],
            key("198.51.100.1"),
        ),
        case(
            "8 KiB of trusted hops (only 64 read)",
            vec![xff(&repeat_to(b"127.0.0.1, ", 8 * 1024))],
            key(PROXY),
        ),
        case(
            "8 KiB of client padding before trusted hop",
            vec![xff(&padded_client)],
            key("203.0.113.50"),
        ),
        case(
            "98 lines, one address each (100 header lines in all)",
            (1..=98)
                .map(|i| xff(format!("192.0.2.{i}").as_bytes()))
                .collect(),
            key("192.0.2.98"),
        ),
        case(
            "98 lines of garbage",
            (0..98).map(|_| xff(b"not-an-ip")).collect(),
            key(PROXY),
        ),
        // hyper's limit is 100 header lines: 100 forwarding lines plus Host and
        // Connection are refused before the limiter runs.
        case(
            "100 lines, one address each",
            (1..=100)
                .map(|i| xff(format!("192.0.2.{i}").as_bytes()))
                .collect(),
            Expect::Hyper(431),
        ),
        case(
            "obs-text left of an address",
            vec![xff(b"\xff\xfe\x80, 198.51.100.7")],
            key("198.51.100.7"),
        ),
        case(
            "obs-text as the right-most hop",
            vec![xff(b"198.51.100.7, \xff\xfe")],
            key(PROXY),
        ),
        case(
            "address with UTF-8 bytes glued on",
            vec![xff("198.51.100.8é".as_bytes())],
            key(PROXY),
        ),
        case("empty value", vec![xff(b"")], key(PROXY)),
        case("only commas and spaces", vec![xff(b" , ,, ,")], key(PROXY)),
        case("unknown", vec![xff(b"unknown")], key(PROXY)),
        case(
            "other forwarding headers are never read",
            vec![
                line("Forwarded", b"for=\"[2001:db8::1"),
                line("X-Real-IP", b"198.51.100.9"),
            ],
            key(PROXY),
        ),
        case(
            "control character",
            vec![xff(b"198.51.100.10\x01")],
            Expect::Hyper(400),
        ),
        case(
            "NUL byte",
            vec![xff(b"198.51.100.11\x00")],
            Expect::Hyper(400),
        ),
        case(
            "well-formed",
            vec![xff(b"198.51.100.12")],
            key("198.51.100.12"),
        ),
    ]
}

fn auth(value: &[u8]) -> Vec<u8> {
    line("Authorization", value)
}

fn bearer_cases() -> Vec<Case> {
    let mut at_limit = b"Bearer ".to_vec();
    at_limit.extend(std::iter::repeat_n(b'k', 1024 - at_limit.len()));
    let at_limit_key = String::from_utf8(at_limit[7..].to_vec()).expect("ascii");
    let mut over_limit = at_limit.clone();
    over_limit.push(b'k');
    let mut many_spaces = b"Bearer".to_vec();
    many_spaces.extend(std::iter::repeat_n(b' ', 400));
    many_spaces.extend_from_slice(b"tok-spaced");
    many_spaces.extend(std::iter::repeat_n(b' ', 400));
    let mut huge = b"Bearer ".to_vec();
    huge.extend(repeat_to(b"A", 64 * 1024));
    let mut huge_obs = b"Bearer ".to_vec();
    huge_obs.extend(repeat_to(b"\xff", 64 * 1024));
    vec![
        case("64 KiB token", vec![auth(&huge)], Expect::NoKey),
        case("64 KiB of obs-text", vec![auth(&huge_obs)], Expect::NoKey),
        case(
            "token of 1017 bytes (value at the 1024-byte limit)",
            vec![auth(&at_limit)],
            Expect::Key(at_limit_key),
        ),
        case(
            "value one byte over the limit",
            vec![auth(&over_limit)],
            Expect::NoKey,
        ),
        case("Bearer with nothing", vec![auth(b"Bearer")], Expect::NoKey),
        case(
            "Bearer and 400 spaces",
            vec![auth(&[b"Bearer".as_slice(), &[b' '; 400]].concat())],
            Expect::NoKey,
        ),
        case(
            "token between 400 spaces each side",
            vec![auth(&many_spaces)],
            key("tok-spaced"),
        ),
        case(
            "tab after the scheme",
            vec![auth(b"Bearer\ttok-spaced")],
            key("tok-spaced"),
        ),
        case(
            "scheme in mixed case",
            vec![auth(b"bEaReR tok-case")],
            key("tok-case"),
        ),
        case(
            "scheme glued to the token",
            vec![auth(b"Bearertok")],
            Expect::NoKey,
        ),
        case(
            "another scheme",
            vec![auth(b"Basic dXNlcjpwYXNz")],
            Expect::NoKey,
        ),
        case(
            "non-ASCII token (UTF-8)",
            vec![auth("Bearer clé".as_bytes())],
            Expect::NoKey,
        ),
        case(
            "obs-text token",
            vec![auth(b"Bearer \xff\xfe\x80")],
            Expect::NoKey,
        ),
        case("empty value", vec![auth(b"")], Expect::NoKey),
        case("no Authorization at all", vec![], Expect::NoKey),
        // Servers and auth layers differ on which field they read: ambiguous, refused.
        case(
            "two fields",
            vec![auth(b"Bearer tok-first"), auth(b"Bearer tok-second")],
            Expect::NoKey,
        ),
        case(
            "two fields with the same token",
            vec![auth(b"Bearer tok-same"), auth(b"Bearer tok-same")],
            Expect::NoKey,
        ),
        case(
            "98 fields",
            (0..98)
                .map(|i| auth(format!("Bearer tok-{i}").as_bytes()))
                .collect(),
            Expect::NoKey,
        ),
        case(
            "100 fields",
            (0..100)
                .map(|i| auth(format!("Bearer tok-{i}").as_bytes()))
                .collect(),
            Expect::Hyper(431),
        ),
        case(
            "control character in the token",
            vec![auth(b"Bearer tok\x01x")],
            Expect::Hyper(400),
        ),
        case(
            "DEL in the token",
            vec![auth(b"Bearer tok\x7fx")],
            Expect::Hyper(400),
        ),
        case(
            "NUL in the token",
            vec![auth(b"Bearer tok\x00x")],
            Expect::Hyper(400),
        ),
        case(
            "bare CR in the value",
            vec![auth(b"Bearer tok\rx")],
            Expect::Hyper(400),
        ),
    ]
}

/// Sends every case once, in order, and checks each answer against a model of the
/// per-key budgets, `used` (admitted so far per key), which it updates.
async fn run_in_order(server: &Server, cases: &[Case], used: &mut HashMap<String, u32>) {
    let mut expected_handled = server.handled.load(SeqCst);
    for c in cases {
        let lines: Vec<&[u8]> = c.lines.iter().map(Vec::as_slice).collect();
        let reply = exchange(server.addr, &raw_http::get("/", &lines)).await;
        let Reply::Answer(answer) = reply else {
            panic!("{}: connection closed without an answer", c.name);
        };
        match &c.expect {
            Expect::Key(k) => {
                let n = used.entry(k.clone()).or_default();
                let want = if *n < QUOTA { 200 } else { 429 };
                assert_eq!(
                    answer.status, want,
                    "{}: key {k} after {n} admitted",
                    c.name
                );
                if want == 200 {
                    *n += 1;
                    expected_handled += 1;
                    assert_eq!(answer.body, b"ok", "{}", c.name);
                }
            }
            Expect::NoKey => {
                assert_eq!(answer.status, 400, "{}", c.name);
                assert!(
                    !answer.body.is_empty(),
                    "{}: the limiter's 400 names what is missing",
                    c.name
                );
            }
            Expect::Hyper(status) => {
                assert_eq!(answer.status, *status, "{}", c.name);
                assert!(answer.body.is_empty(), "{}: hyper's own answer", c.name);
            }
        }
        assert_eq!(
            server.handled.load(SeqCst),
            expected_handled,
            "{}: only admitted requests reach the handler",
            c.name
        );
    }
}

/// The per-key totals the hook must have seen after `rounds` passes over `cases`.
fn expected_totals(cases: &[Case], rounds: u32) -> (HashMap<String, (u32, u32)>, u32) {
    let mut sent: HashMap<String, u32> = HashMap::new();
    let mut missing = 0;
    for c in cases {
        match &c.expect {
            Expect::Key(k) => *sent.entry(k.clone()).or_default() += rounds,
            Expect::NoKey => missing += rounds,
            Expect::Hyper(_) => {}
        }
    }
    let totals = sent
        .into_iter()
        .map(|(k, n)| (k, (n.min(QUOTA), n.saturating_sub(QUOTA))))
        .collect();
    (totals, missing)
}

fn assert_seen(server: &Server, totals: &HashMap<String, (u32, u32)>, missing: u32) {
    let seen = server.seen.lock().expect("lock");
    for (k, &(admitted, denied)) in totals {
        assert_eq!(
            seen.admitted.get(k).copied().unwrap_or(0),
            admitted,
            "admitted for {k}"
        );
        assert_eq!(
            seen.denied.get(k).copied().unwrap_or(0),
            denied,
            "denied for {k}"
        );
    }
    let keys: Vec<&String> = seen.admitted.keys().chain(seen.denied.keys()).collect();
    for k in keys {
        assert!(
            totals.contains_key(k),
            "a key no case should produce: {k:?}"
        );
    }
    assert_eq!(seen.missing, missing, "missing-key answers");
}

/// After the abuse, a well-formed client on new connections gets exactly its quota.
async fn well_formed_client_gets_its_quota(server: &Server, header: &[u8]) {
    let before = server.handled.load(SeqCst);
    let mut statuses = Vec::new();
    for _ in 0..QUOTA + 3 {
        let reply = exchange(server.addr, &raw_http::get("/", &[header])).await;
        statuses.push(reply.status());
    }
    let mut want = vec![200; QUOTA as usize];
    want.extend([429; 3]);
    assert_eq!(statuses, want);
    assert_eq!(server.handled.load(SeqCst) - before, QUOTA as usize);
}

#[tokio::test]
async fn malformed_forwarding_headers_get_the_documented_key_and_the_limit_holds() {
    let server = serve(ClientIp::x_forwarded_for(["127.0.0.1"]).expect("valid trust list")).await;
    let cases = forwarding_cases();
    // Twice over: the second pass meets keys whose budget the first pass spent.
    let mut used = HashMap::new();
    for _ in 0..2 {
        run_in_order(&server, &cases, &mut used).await;
    }
    let (totals, missing) = expected_totals(&cases, 2);
    assert_seen(&server, &totals, missing);
    assert_eq!(missing, 0, "behind a trusted proxy there is always a key");
    well_formed_client_gets_its_quota(&server, b"X-Forwarded-For: 203.0.113.200").await;
}

#[tokio::test]
async fn absurd_authorization_values_get_400_or_their_key_and_the_limit_holds() {
    let server = serve(HeaderKey::bearer()).await;
    let cases = bearer_cases();
    let mut used = HashMap::new();
    for _ in 0..2 {
        run_in_order(&server, &cases, &mut used).await;
    }
    let (totals, missing) = expected_totals(&cases, 2);
    assert_seen(&server, &totals, missing);
    well_formed_client_gets_its_quota(&server, b"Authorization: Bearer good-client").await;
}

/// The same abuse all at once, from many connections on a multi-threaded runtime: the
/// per-key totals are exact whatever the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_malformed_requests_keep_exact_counts() {
    const ROUNDS: u32 = 3;
    let xff_server =
        Arc::new(serve(ClientIp::x_forwarded_for(["127.0.0.1"]).expect("valid trust list")).await);
    let bearer_server = Arc::new(serve(HeaderKey::bearer()).await);
    let xff_cases = Arc::new(forwarding_cases());
    let bearer_cases = Arc::new(bearer_cases());
    let mut tasks = Vec::new();
    for _ in 0..ROUNDS {
        for (server, cases) in [(&xff_server, &xff_cases), (&bearer_server, &bearer_cases)] {
            for i in 0..cases.len() {
                let (server, cases) = (Arc::clone(server), Arc::clone(cases));
                tasks.push(tokio::spawn(async move {
                    let c = &cases[i];
                    let lines: Vec<&[u8]> = c.lines.iter().map(Vec::as_slice).collect();
                    let status = exchange(server.addr, &raw_http::get("/", &lines))
                        .await
                        .status();
                    (c.expect.clone(), c.name, status)
                }));
            }
        }
    }
    let mut ok: HashMap<String, u32> = HashMap::new();
    for task in tasks {
        let (expect, name, status) = task.await.expect("client task");
        match expect {
            Expect::Key(k) => {
                assert!(status == 200 || status == 429, "{name}: {status}");
                if status == 200 {
                    *ok.entry(k).or_default() += 1;
                }
            }
            Expect::NoKey => assert_eq!(status, 400, "{name}"),
            Expect::Hyper(want) => assert_eq!(status, want, "{name}"),
        }
    }
    for (server, cases) in [(&xff_server, &xff_cases), (&bearer_server, &bearer_cases)] {
        let (totals, missing) = expected_totals(cases, ROUNDS);
        assert_seen(server, &totals, missing);
        let admitted: u32 = totals.values().map(|&(a, _)| a).sum();
        assert_eq!(server.handled.load(SeqCst), admitted as usize);
    }
    let (xff_totals, _) = expected_totals(&xff_cases, ROUNDS);
    let (bearer_totals, _) = expected_totals(&bearer_cases, ROUNDS);
    for (k, &(admitted, _)) in xff_totals.iter().chain(bearer_totals.iter()) {
        assert_eq!(ok.get(k).copied().unwrap_or(0), admitted, "200s for {k}");
    }
    well_formed_client_gets_its_quota(&xff_server, b"X-Forwarded-For: 203.0.113.201").await;
    well_formed_client_gets_its_quota(&bearer_server, b"Authorization: Bearer good-client").await;
}

#[test]
fn the_case_tables_name_distinct_keys_per_extractor() {
    // The XFF keys parse as addresses (a typo in a table would silently expect a key
    // the extractor can never produce).
    for c in forwarding_cases() {
        if let Expect::Key(k) = &c.expect {
            assert!(k.parse::<IpAddr>().is_ok(), "{}: {k}", c.name);
        }
    }
}
