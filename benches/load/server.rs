//! The HTTP load harness's server: one axum hello handler, bare or behind a rate limiter,
//! on one tokio worker thread (`benches/load/run.sh` pins the process to one core).
//!
//! ```sh
//! cargo build --release --example load_server --features axum,redis
//! PORT=3000 target/release/examples/load_server ours allow
//! ```
//!
//! `load_server <server> <scenario>`:
//!
//! | server | what wraps the handler |
//! |---|---|
//! | `bare` | nothing |
//! | `ours` | `RateLimitLayer`, default headers (IETF `RateLimit` / `RateLimit-Policy`) |
//! | `ours_noheaders` | `RateLimitLayer`, `HeaderStyle::None` |
//! | `governor` | tower_governor's `GovernorLayer`, no headers (its default) |
//! | `governor_headers` | tower_governor with `use_headers()` |
//! | `redis` | `RateLimitLayer` on the `RedisStore` (`REDIS_URL`), built as `examples/redis.rs` builds it |
//!
//! | scenario | quota | key |
//! |---|---|---|
//! | `allow` | 10^9 per second: never denies | peer IP (one client) |
//! | `deny` | 1 per hour, burst 1: all but the first request denied | peer IP (one client) |
//! | `churn_short` | 10 per second, burst 10: a key's state is empty again 100 ms after its request | client IP from `X-Forwarded-For` (loopback trusted) |
//! | `churn_long` | 10 per hour, burst 10: every key's state outlives the run | client IP from `X-Forwarded-For` (loopback trusted) |
//!
//! tower_governor never forgets a key by itself; as its README advises, a thread calls
//! `retain_recent` (every second here, so `churn_short` can drop stale keys). Environment:
//! `PORT` (default 0: a free port), `REDIS_URL` (default `redis://127.0.0.1:6379`).

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::{PeerIpKeyExtractor, SmartIpKeyExtractor};
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::key::{ClientIp, KeyExtractor, PeerIp};
use tower_ratelimit::store::redis::{FailurePolicy, RedisStore};
use tower_ratelimit::{Quota, RateLimitLayer};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Allow,
    Deny,
    ChurnShort,
    ChurnLong,
}

impl Scenario {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "allow" => Scenario::Allow,
            "deny" => Scenario::Deny,
            "churn_short" => Scenario::ChurnShort,
            "churn_long" => Scenario::ChurnLong,
            _ => return None,
        })
    }

    fn quota(self) -> Result<Quota, Box<dyn Error>> {
        Ok(match self {
            Scenario::Allow => Quota::new(1_000_000_000, Duration::from_secs(1))?,
            Scenario::Deny => Quota::per_hour(1)?.with_burst(1)?,
            Scenario::ChurnShort => Quota::per_second(10)?,
            Scenario::ChurnLong => Quota::per_hour(10)?,
        })
    }

    fn churn(self) -> bool {
        matches!(self, Scenario::ChurnShort | Scenario::ChurnLong)
    }
}

async fn hello() -> &'static str {
    "hello\n"
}

fn app() -> Router {
    Router::new().route("/", get(hello))
}

fn ours<E: KeyExtractor>(
    key: E,
    scenario: Scenario,
    style: HeaderStyle,
) -> Result<Router, Box<dyn Error>> {
    let layer = RateLimitLayer::builder(scenario.quota()?)
        .key(key)
        .headers(style)
        .build();
    Ok(app().layer(layer))
}

/// A router behind tower_governor with `$key`, configured for `$scenario`; a macro
/// because `use_headers()` changes the config's type.
macro_rules! governor {
    ($key:expr, $scenario:expr, $headers:expr) => {{
        let mut builder = GovernorConfigBuilder::default().key_extractor($key);
        match $scenario {
            Scenario::Allow => builder.per_nanosecond(1).burst_size(u32::MAX),
            Scenario::Deny => builder.period(Duration::from_secs(3600)).burst_size(1),
            Scenario::ChurnShort => builder.per_millisecond(100).burst_size(10),
            Scenario::ChurnLong => builder.period(Duration::from_secs(360)).burst_size(10),
        };
        if $headers {
            governed!(builder.use_headers())
        } else {
            governed!(builder)
        }
    }};
}

macro_rules! governed {
    ($builder:expr) => {{
        let config = $builder.finish().ok_or("invalid tower_governor config")?;
        let limiter = config.limiter().clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                limiter.retain_recent();
            }
        });
        Ok(app().layer(GovernorLayer::new(config)))
    }};
}

async fn redis(scenario: Scenario) -> Result<Router, Box<dyn Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = RedisStore::builder(scenario.quota()?.named("minute"))
        .prefix("load:")
        .timeout(Duration::from_millis(100))
        .on_failure(FailurePolicy::FailClosed)
        .connect(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let layer = RateLimitLayer::with_store(store).key(PeerIp::new()).build();
    Ok(app().layer(layer))
}

fn client_ip() -> Result<ClientIp, Box<dyn Error>> {
    Ok(ClientIp::x_forwarded_for(["127.0.0.1"])?)
}

async fn build(server: &str, scenario: Scenario) -> Result<Router, Box<dyn Error>> {
    let churn = scenario.churn();
    match (server, churn) {
        ("bare", _) => Ok(app()),
        ("ours", false) => ours(PeerIp::new(), scenario, HeaderStyle::Ietf),
        ("ours", true) => ours(client_ip()?, scenario, HeaderStyle::Ietf),
        ("ours_noheaders", false) => ours(PeerIp::new(), scenario, HeaderStyle::None),
        ("ours_noheaders", true) => ours(client_ip()?, scenario, HeaderStyle::None),
        ("governor", false) => governor!(PeerIpKeyExtractor, scenario, false),
        ("governor", true) => governor!(SmartIpKeyExtractor, scenario, false),
        ("governor_headers", false) => governor!(PeerIpKeyExtractor, scenario, true),
        ("governor_headers", true) => governor!(SmartIpKeyExtractor, scenario, true),
        ("redis", false) => redis(scenario).await,
        _ => Err(format!("unknown server {server:?} for {scenario:?}").into()),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: load_server <bare|ours|ours_noheaders|governor|governor_headers|redis> <allow|deny|churn_short|churn_long>";
    let server = args.next().ok_or(usage)?;
    let scenario = args
        .next()
        .as_deref()
        .and_then(Scenario::parse)
        .ok_or(usage)?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().map_err(|e| format!("PORT={p:?}: {e}"))?,
        Err(_) => 0,
    };
    // One worker thread: the server's whole cost lands on the one core it is pinned to.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = build(&server, scenario).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!(
            "listening on http://127.0.0.1:{}",
            listener.local_addr()?.port()
        );
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await?;
        Ok(())
    })
}
