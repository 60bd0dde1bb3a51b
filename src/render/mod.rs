//! Rejection bodies: how a denied request is answered.
//!
//! CONTRACT (filled in by the headers/renderers work): a [`Renderer`] turns a
//! [`Rejection`] into a complete response (status, content-type, body). The middleware
//! then adds `Retry-After` and the layer's rate-limit headers.
//!
//! | Renderer | Status | `content-type` | Body |
//! |---|---|---|---|
//! | [`ProblemJson`] (default) | 429 | `application/problem+json` | RFC 9457 problem details with `violated-policies` |
//! | [`Clarifai`] | 429 | `application/json` | `{"status":{"code":"CONN_THROTTLED",...}}` |
//! | [`Claid`] | 429 | `application/json` | `{"detail":{"error_code":"2001",...}}` |
//! | `Grpc` (feature `grpc`) | 200 | `application/grpc` | Trailers-Only `RESOURCE_EXHAUSTED` |
//! | [`Text`] | 429 | `text/plain; charset=utf-8` | one line |
//! | any `Fn(&Rejection) -> Response<Bytes>` | yours | yours | yours |
//!
//! ```
//! use tower_ratelimit::{Quota, RateLimiter, clock::ManualClock, render::{Rejection, Renderer, Text}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RateLimiter::with_clock(Quota::per_second(1)?, ManualClock::new());
//! limiter.check()?;
//! let denied = limiter.check()?;
//! let req = http::Request::new(());
//! let rejection = Rejection::new(denied, req.method(), req.uri(), req.headers());
//! let res = Text::new().render(&rejection);
//! assert_eq!(res.status(), 429);
//! assert_eq!(res.body().as_ref(), b"Too Many Requests: exceeded limit of 1 request per second; retry after 1 s\n");
//! # Ok(()) }
//! ```

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri};

use crate::decision::{Decision, QuotaState};
use crate::quota::Quota;

mod claid;
mod clarifai;
#[cfg(feature = "grpc")]
mod grpc;
mod problem_json;
mod text;

pub use claid::Claid;
pub use clarifai::{CONN_THROTTLED_CODE, Clarifai};
#[cfg(feature = "grpc")]
pub use grpc::Grpc;
pub use problem_json::{ProblemJson, QUOTA_EXCEEDED_TYPE};
pub use text::Text;

/// What a renderer sees of a denied request.
#[derive(Debug)]
pub struct Rejection<'a> {
    decision: Decision<'a>,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl<'a> Rejection<'a> {
    /// Bundles a denial with the request it denied.
    pub fn new(
        decision: Decision<'a>,
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    ) -> Self {
        Rejection {
            decision,
            method,
            uri,
            headers,
        }
    }

    /// The denial.
    pub fn decision(&self) -> &Decision<'a> {
        &self.decision
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        self.uri
    }

    /// The request headers (e.g. `x-request-id`).
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The policy that refused the request (the binding one if the decision admitted it,
    /// so a renderer never has to handle "no policy").
    pub fn denying(&self) -> QuotaState<'a> {
        self.decision
            .denied_by()
            .unwrap_or_else(|| self.decision.binding())
    }

    /// Every policy that would refuse this request now (fewer remaining than its cost),
    /// in the set's order; never empty.
    pub fn violated(&self) -> impl Iterator<Item = QuotaState<'a>> + '_ {
        let denying = self.denying().index();
        let cost = u64::from(self.decision.cost());
        self.decision
            .states()
            .filter(move |s| s.index() == denying || s.remaining() < cost)
    }

    /// `Retry-After` in whole seconds (rounded up, at least 1), as the headers say it.
    pub fn retry_after_secs(&self) -> u64 {
        crate::headers::retry_secs(self.decision.retry_after().unwrap_or_default())
    }
}

/// "15 requests per second", "120 requests per minute", "1 request per 90 seconds",
/// "3 requests per 1500 milliseconds": a quota as people say it, in the largest unit
/// that divides its window exactly.
pub fn limit_phrase(quota: &Quota) -> String {
    let n = quota.limit();
    let noun = if n == 1 { "request" } else { "requests" };
    format!("{n} {noun} per {}", window_phrase(quota.window()))
}

fn window_phrase(w: std::time::Duration) -> String {
    const UNITS: [(u128, &str); 7] = [
        (86_400_000_000_000, "day"),
        (3_600_000_000_000, "hour"),
        (60_000_000_000, "minute"),
        (1_000_000_000, "second"),
        (1_000_000, "millisecond"),
        (1_000, "microsecond"),
        (1, "nanosecond"),
    ];
    let ns = w.as_nanos().max(1);
    let (size, unit) = UNITS
        .iter()
        .copied()
        .find(|(size, _)| ns.is_multiple_of(*size))
        .unwrap_or((1, "nanosecond"));
    match ns / size {
        1 => unit.to_owned(),
        k => format!("{k} {unit}s"),
    }
}

/// Renders the answer to a denied request.
pub trait Renderer: Send + Sync + 'static {
    /// The full response: status, `content-type`, body.
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes>;
}

impl<F> Renderer for F
where
    F: Fn(&Rejection<'_>) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        self(rejection)
    }
}

/// A JSON response; the body is serialized by `serde_json`, so every string is escaped.
fn json_response(
    status: http::StatusCode,
    content_type: http::HeaderValue,
    body: &impl serde::Serialize,
) -> Response<Bytes> {
    // Serializing plain structs of strings and numbers cannot fail; if it ever did, an
    // empty object is still valid JSON for the declared content type.
    let bytes = serde_json::to_vec(body).map_or_else(|_| Bytes::from_static(b"{}"), Bytes::from);
    let mut res = Response::new(bytes);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type);
    res
}
