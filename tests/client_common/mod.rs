//! A Claid-like server on 127.0.0.1:0 whose limiter runs on tokio's clock, so paused
//! tokio time drives both the client's pacer and the server's decisions.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_ratelimit::client::TokioClock;
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::key::HeaderKey;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::{Quotas, RateLimitLayer, render};

/// What the server saw: (virtual time since start, request tag, status, Retry-After sent).
pub type Log = Arc<Mutex<Vec<(Duration, String, u16, Option<u64>)>>>;

pub struct Server {
    pub url: String,
    pub log: Log,
}

/// Starts the server on 127.0.0.1:0: the crate's own [`RateLimitLayer`] with `quotas`
/// per `Authorization: Bearer` key, Claid's draft-03 headers and body, deciding on
/// tokio's clock. Every answer is logged with the virtual time it was given.
pub async fn start(quotas: Quotas) -> Server {
    let log: Log = Arc::default();
    let start = tokio::time::Instant::now();
    let limit = RateLimitLayer::with_store(MemoryStore::with_clock(quotas, TokioClock::new()))
        .key(HeaderKey::bearer())
        .headers(HeaderStyle::Draft03Claid)
        .renderer(render::Claid::default())
        .build();
    let logger = {
        let log = log.clone();
        axum::middleware::from_fn(move |req: Request, next: Next| {
            let log = log.clone();
            async move {
                let tag = req
                    .headers()
                    .get("x-tag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let resp = next.run(req).await;
                let retry = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                log.lock().expect("log lock").push((
                    start.elapsed(),
                    tag,
                    resp.status().as_u16(),
                    retry,
                ));
                resp
            }
        })
    };
    let router = axum::Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(limit)
        .layer(logger);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Server {
        url: format!("http://{addr}/"),
        log,
    }
}

/// A hyper client speaking HTTP/2 over one connection, wrapped so that paused time
/// stands still while a request is in flight (see [`Inflight`]).
pub fn client() -> Inflight<Client<HttpConnector, Full<Bytes>>> {
    Inflight(
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http(),
    )
}

/// Keeps tokio's paused clock from auto-advancing while a request is in flight.
///
/// Paused time jumps to the next timer whenever the runtime has nothing to run, and a
/// request crossing a real socket looks like nothing to run: virtual time would race
/// ahead of the I/O, and a paced request could reach the server seconds "late", bunched
/// with later ones. tokio does not auto-advance while a `spawn_blocking` task runs, so
/// each in-flight request parks one blocking task until its response has arrived.
#[derive(Clone, Debug)]
pub struct Inflight<S>(pub S);

impl<S, R> tower::Service<R> for Inflight<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || {
            // Returns when `done` is dropped: the response has arrived (or failed).
            let _ = wait.recv();
        });
        let fut = self.0.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(done);
            let _ = blocker.await;
            out
        })
    }
}

/// Spawns requests tagged `0..n` to `url`, each through its own clone of `svc` (as
/// concurrent callers do), each task giving the response's status (only the status: a
/// response held unread keeps its stream open).
pub fn spawn_requests<S, B>(
    svc: &S,
    url: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<http::StatusCode, tower::BoxError>>>
where
    S: tower::Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<tower::BoxError>,
{
    use tower::ServiceExt;
    (0..n)
        .map(|i| {
            let svc = svc.clone();
            let req = request(url, &i.to_string());
            tokio::spawn(async move {
                let resp = svc.oneshot(req).await.map_err(Into::into)?;
                Ok(resp.status())
            })
        })
        .collect()
}

pub fn request(url: &str, tag: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .header("authorization", "Bearer test-key")
        .header("x-tag", tag)
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

/// The most a quota set admits in a period of `d` starting with full quotas: each quota
/// allows `burst + floor(d / T)`, and the set the least of those.
pub fn allowed(quotas: &Quotas, d: Duration) -> u64 {
    quotas
        .iter()
        .map(|q| u64::from(q.burst()) + (d.as_nanos() / q.emission_interval().as_nanos()) as u64)
        .min()
        .unwrap_or(0)
}
