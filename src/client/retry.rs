//! [`RetryPolicy`]: retry throttled requests after the wait the server asks for.

use std::time::{Duration, SystemTime};

use http::{Request, Response};
use tokio::time::Instant;

use super::hints::RateLimitHints;

/// A [`tower::retry::Policy`] that retries requests the server throttled — HTTP 429
/// (Clarifai's `CONN_THROTTLED` and Claid's error come with it) or gRPC
/// RESOURCE_EXHAUSTED (`grpc-status: 8` in a Trailers-Only response) — after the wait
/// the server asks for: `Retry-After`, else the announced reset, else exponential
/// backoff with jitter. Attempts and the total time are capped; when a cap is reached
/// the last (throttled) response is returned as it is.
///
/// Only replayable requests are retried: the policy clones the request before sending,
/// so it applies to `http::Request<B>` whose body is `Clone`. Buffer the body once to
/// opt in, e.g. `http::Request<http_body_util::Full<bytes::Bytes>>` (or `String`,
/// `Bytes`, `()`); a streaming body (`hyper::body::Incoming`) does not satisfy the bound,
/// so it cannot be retried by mistake. Extensions are cloned with the request.
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceBuilder, retry::RetryLayer};
/// use tower_ratelimit::client::RetryPolicy;
/// let policy = RetryPolicy::new()
///     .max_attempts(5)
///     .max_total(Duration::from_secs(60))
///     .backoff(Duration::from_millis(100), Duration::from_secs(10));
/// let _layer = RetryLayer::new(policy);
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    max_total: Duration,
    base: Duration,
    max_backoff: Duration,
    // Per request: the Retry service clones the policy for every call.
    attempts: u32,
    started: Option<Instant>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicy {
    /// At most 4 attempts in all, within 60 s; backoff from 500 ms up to 30 s.
    pub fn new() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_total: Duration::from_secs(60),
            base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            attempts: 0,
            started: None,
        }
    }

    /// Total attempts, the first included (1 disables retries).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Gives up when the next wait would end more than `total` after the first attempt.
    pub fn max_total(mut self, total: Duration) -> Self {
        self.max_total = total;
        self
    }

    /// Backoff when the server gives no hint: `base * 2^(retry - 1)`, capped at `max`,
    /// with jitter (uniform between half and all of it).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max_backoff = max.max(base);
        self
    }

    /// The backoff before retry number `retry` (1-based), jitter included.
    fn backoff_for(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_backoff);
        let half = exp / 2;
        half + exp.saturating_sub(half).mul_f64(fastrand::f64())
    }

    /// Whether `resp` is a throttling answer and, if so, how long to wait.
    pub fn throttle_wait<B>(&self, resp: &Response<B>) -> Option<Duration> {
        let hints = RateLimitHints::from_headers(resp.status(), resp.headers(), SystemTime::now());
        if !hints.throttled {
            return None;
        }
        Some(
            hints
                .retry_after
                .or(hints.reset)
                .unwrap_or_else(|| self.backoff_for(self.attempts)),
        )
    }
}

impl<B, RB, E> tower::retry::Policy<Request<B>, Response<RB>, E> for RetryPolicy
where
    B: Clone,
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut Request<B>,
        result: &mut Result<Response<RB>, E>,
    ) -> Option<Self::Future> {
        let resp = result.as_ref().ok()?;
        self.attempts += 1;
        let wait = self.throttle_wait(resp)?;
        if self.attempts >= self.max_attempts {
            return None;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        if started.elapsed().saturating_add(wait) > self.max_total {
            return None;
        }
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        self.started.get_or_insert_with(Instant::now);
        let mut out = Request::new(req.body().clone());
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.version_mut() = req.version();
        *out.headers_mut() = req.headers().clone();
        *out.extensions_mut() = req.extensions().clone();
        Some(out)
    }
}
