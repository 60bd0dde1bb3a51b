//! Calling a rate-limited API: 100 requests paced to Claid's quotas (4/s and 120/min),
//! then the same 100 without pacing, for contrast.
//!
//! ```text
//! cargo run --example client --features client                 # starts its own server
//! TARGET=http://127.0.0.1:3000/ cargo run --example client --features client
//! ```
//!
//! Each phase ends with one line scripts can read:
//! `paced: sent=N ok=N rejected=N secs=S`, then `unpaced: sent=N ok=N rejected=N secs=S`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_ratelimit::client::{ByHeader, PaceLayer};
use tower_ratelimit::{KeyedRateLimiter, Quotas};

const REQUESTS: usize = 100;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let target = match std::env::var("TARGET") {
        Ok(url) if !url.is_empty() => url,
        _ => start_claid_server().await?,
    };
    println!("target: {target}");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // Paced: every request goes through the pacer, which books it a slot within Claid's
    // quotas (per API key) and sends it then.
    let paced = ServiceBuilder::new()
        .layer(PaceLayer::new(
            Quotas::claid(),
            ByHeader(http::header::AUTHORIZATION),
        ))
        .service(client.clone());
    let (ok, rejected, secs) = run(&target, "paced", paced).await?;
    println!("paced: sent={REQUESTS} ok={ok} rejected={rejected} secs={secs:.2}");

    // Let the server's burst quota refill, so the contrast is not our own doing.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let unpaced = ServiceBuilder::new()
        .map_err(BoxError::from)
        .service(client);
    let (ok, rejected, secs) = run(&target, "unpaced", unpaced).await?;
    println!("unpaced: sent={REQUESTS} ok={ok} rejected={rejected} secs={secs:.2}");
    Ok(())
}

/// Fires all requests at once (as fast as the caller asks) and counts the answers.
async fn run<S>(target: &str, phase: &str, svc: S) -> Result<(usize, usize, f64), BoxError>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let req = http::Request::get(target)
            .header("authorization", format!("Bearer example-{phase}"))
            .body(Full::new(Bytes::new()))?;
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let resp = svc.oneshot(req).await.map_err(Into::into)?;
            Ok::<_, BoxError>(resp.status())
        }));
    }
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        match t.await?? {
            s if s.is_success() => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => rejected += 1,
            s => eprintln!("{phase}: unexpected status {s}"),
        }
    }
    Ok((ok, rejected, start.elapsed().as_secs_f64()))
}

/// A Claid-like API on 127.0.0.1:0: 4/s and 120/min per `Authorization` value, answering
/// 429 with Claid's JSON error, `Retry-After` and draft-03 `RateLimit-*` headers.
/// Returns its URL.
async fn start_claid_server() -> Result<String, BoxError> {
    let limiter = Arc::new(KeyedRateLimiter::<String>::new(Quotas::claid()));
    let app = axum::Router::new()
        .fallback(any(claid_handler))
        .with_state(limiter);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server: {e}");
        }
    });
    Ok(format!("http://{addr}/"))
}

fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

async fn claid_handler(
    State(limiter): State<Arc<KeyedRateLimiter<String>>>,
    headers: HeaderMap,
) -> Response {
    let key = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned();
    let d = match limiter.check_key(&key) {
        Ok(d) => d,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    // draft-03: the policy closest to exhaustion, then every policy as quota;w=seconds.
    let binding = d.denied_by().unwrap_or_else(|| d.binding());
    let mut limit = binding.quota().limit().to_string();
    for q in d.quotas() {
        limit.push_str(&format!(", {};w={}", q.limit(), ceil_secs(q.window())));
    }
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&limit) {
        h.insert("ratelimit-limit", v);
    }
    match d.retry_after() {
        None => {
            h.insert(
                "ratelimit-remaining",
                HeaderValue::from(binding.remaining()),
            );
            h.insert(
                "ratelimit-reset",
                HeaderValue::from(ceil_secs(binding.reset())),
            );
            (StatusCode::OK, h, r#"{"data":"ok"}"#).into_response()
        }
        Some(wait) => {
            let secs = ceil_secs(wait);
            h.insert("ratelimit-remaining", HeaderValue::from_static("-1"));
            h.insert("ratelimit-reset", HeaderValue::from(secs));
            h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let body = r#"{"detail":{"error_code":"2001","error_type":"general","error_message":"Too Many Requests. Rate limit exceeded."}}"#;
            (StatusCode::TOO_MANY_REQUESTS, h, body).into_response()
        }
    }
}
