//! Calling a rate-limited API: 100 requests paced to Claid's quotas (4/s and 120/min),
//! then the same 100 without pacing, for contrast.
//!
//! ```text
//! cargo run --example client --features client               # starts its own server
//! cargo run --example claid &                                    # or: the claid example
//! TARGET=http://127.0.0.1:3000 cargo run --example client --features client
//! ```
//!
//! Each phase ends with one line scripts can read:
//! `paced: sent=N ok=N rejected=N secs=S errors=N`, then the same for `unpaced:`.
//! `errors` counts requests that got no answer (a reset connection, say): they are
//! reported, and the run goes on. `REQUESTS` (default 100) sets how many each phase
//! sends.

use std::time::{Duration, Instant};

use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_ratelimit::client::{ByHeader, PaceLayer};
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::key::HeaderKey;
use tower_ratelimit::{Quotas, RateLimitLayer, render};

/// The Claid route the `claid` example serves.
const EDIT: &str = "/v1/image/edit";
const DEFAULT_REQUESTS: usize = 100;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Logs to stderr, `RUST_LOG` honoured (default `warn`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let target = match std::env::var("TARGET") {
        // A bare server URL (as `cargo run --example claid` prints it) means its route.
        Ok(url) if !url.is_empty() => match url.parse::<http::Uri>()?.path() {
            "" | "/" => format!("{}{EDIT}", url.trim_end_matches('/')),
            _ => url,
        },
        _ => start_claid_server().await?,
    };
    let requests = match std::env::var("REQUESTS") {
        Ok(n) if !n.is_empty() => n
            .parse::<usize>()
            .map_err(|e| format!("REQUESTS={n:?}: {e}"))?,
        _ => DEFAULT_REQUESTS,
    };
    println!("target: {target}");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // Paced: every request goes through the pacer, which books it a slot within Claid's
    // quotas (per API key) and sends it then. The default mode (`PacingMode::Safe`)
    // never sends more than 4 in any 1.02 s nor 120 in any 60.05 s, and only what a
    // sliding-window counter of any alignment admits, so no fixed-window, sliding-log,
    // sliding-counter, token-bucket or GCRA server with those quotas refuses it; the
    // margin absorbs the jitter between this process and the server.
    let paced = ServiceBuilder::new()
        .layer(PaceLayer::new(
            Quotas::claid(),
            ByHeader(http::header::AUTHORIZATION),
        ))
        .service(client.clone());
    let r = run(&target, "paced", requests, paced).await?;
    println!(
        "paced: sent={requests} ok={} rejected={} secs={:.2} errors={}",
        r.ok, r.rejected, r.secs, r.errors
    );

    // Let the server's burst quota refill, so the contrast is not our own doing.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let unpaced = ServiceBuilder::new()
        .map_err(BoxError::from)
        .service(client);
    let r = run(&target, "unpaced", requests, unpaced).await?;
    println!(
        "unpaced: sent={requests} ok={} rejected={} secs={:.2} errors={}",
        r.ok, r.rejected, r.secs, r.errors
    );
    Ok(())
}

/// What one phase got back.
struct Tally {
    ok: usize,
    rejected: usize,
    /// Requests with no answer (connection reset, refused, ...).
    errors: usize,
    secs: f64,
}

/// Fires all requests at once (as fast as the caller asks) and counts the answers; a
/// request that fails is counted and reported, not fatal.
async fn run<S>(target: &str, phase: &str, requests: usize, svc: S) -> Result<Tally, BoxError>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let req = http::Request::get(target)
            .header("authorization", format!("Bearer example-{phase}"))
            .body(Full::new(Bytes::new()))?;
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let resp = svc.oneshot(req).await.map_err(Into::into)?;
            Ok::<_, BoxError>(resp.status())
        }));
    }
    let (mut ok, mut rejected, mut errors) = (0, 0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok(s)) if s.is_success() => ok += 1,
            Ok(Ok(StatusCode::TOO_MANY_REQUESTS)) => rejected += 1,
            Ok(Ok(s)) => eprintln!("{phase}: unexpected status {s}"),
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("{phase}: request failed: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("{phase}: request task failed: {e}");
            }
        }
    }
    Ok(Tally {
        ok,
        rejected,
        errors,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// A Claid-shaped API on 127.0.0.1:0, as `examples/claid.rs` serves it: the crate's
/// [`RateLimitLayer`] at 4/s and 120/min per `Authorization: Bearer` key, with Claid's
/// draft-03 headers and error body. Returns the URL to call.
async fn start_claid_server() -> Result<String, BoxError> {
    let layer = RateLimitLayer::builder(Quotas::claid())
        .key(HeaderKey::bearer())
        .headers(HeaderStyle::Draft03Claid)
        .renderer(render::Claid::default())
        .build();
    let app = axum::Router::new()
        .route(EDIT, get(edit).post(edit))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server: {e}");
        }
    });
    Ok(format!("http://{addr}{EDIT}"))
}

async fn edit() -> &'static str {
    r#"{"data":{"output":{"tmp_url":"https://example.invalid/out.png"}}}"#
}
