//! A Claid-like server on 127.0.0.1:0 whose limiter runs on tokio's clock, so paused
//! tokio time drives both the client's pacer and the server's decisions.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_ratelimit::client::TokioClock;
use tower_ratelimit::{KeyedRateLimiter, Quotas};

/// What the server saw: (virtual time since start, request tag, status, Retry-After sent).
pub type Log = Arc<Mutex<Vec<(Duration, String, u16, Option<u64>)>>>;

pub struct Server {
    pub url: String,
    pub log: Log,
}

struct App {
    limiter: KeyedRateLimiter<String, TokioClock>,
    start: tokio::time::Instant,
    log: Log,
}

fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

async fn handle(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned();
    let tag = headers
        .get("x-tag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let d = match app.limiter.check_key(&key) {
        Ok(d) => d,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let binding = d.denied_by().unwrap_or_else(|| d.binding());
    let mut limit = binding.quota().limit().to_string();
    for q in d.quotas() {
        limit.push_str(&format!(", {};w={}", q.limit(), ceil_secs(q.window())));
    }
    let retry = d.retry_after().map(ceil_secs);
    let mut h = HeaderMap::new();
    h.insert(
        "ratelimit-limit",
        HeaderValue::from_str(&limit).expect("ascii"),
    );
    let (status, body) = match retry {
        None => {
            h.insert(
                "ratelimit-remaining",
                HeaderValue::from(binding.remaining()),
            );
            h.insert(
                "ratelimit-reset",
                HeaderValue::from(ceil_secs(binding.reset())),
            );
            (StatusCode::OK, "ok".to_owned())
        }
        Some(secs) => {
            h.insert("ratelimit-remaining", HeaderValue::from_static("-1"));
            h.insert("ratelimit-reset", HeaderValue::from(secs));
            h.insert("retry-after", HeaderValue::from(secs));
            (
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"detail":{"error_code":"2001","error_type":"general","error_message":"Too Many Requests. Rate limit exceeded."}}"#.to_owned(),
            )
        }
    };
    app.log
        .lock()
        .expect("log lock")
        .push((app.start.elapsed(), tag, status.as_u16(), retry));
    (status, h, body).into_response()
}

/// Starts the server on 127.0.0.1:0 with `quotas` per `Authorization` value.
pub async fn start(quotas: Quotas) -> Server {
    let log: Log = Arc::default();
    let app = Arc::new(App {
        limiter: KeyedRateLimiter::with_clock(quotas, TokioClock::new()),
        start: tokio::time::Instant::now(),
        log: log.clone(),
    });
    let router = axum::Router::new().route("/", get(handle)).with_state(app);
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
