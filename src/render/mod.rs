//! Rejection bodies: how a denied request is answered.
//!
//! A [`Renderer`] turns a [`Rejection`] into a complete response (status, content-type,
//! body). The middleware then adds `Retry-After` and the layer's rate-limit headers.
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

/// "15 requests per second", "120 requests per minute", "1 request per 90 seconds",
/// "3 requests per 1500 milliseconds": a quota as people say it, in the largest unit
/// that divides its window exactly.
pub fn limit_phrase(quota: &Quota) -> String {
    let mut out = Vec::with_capacity(32);
    write_limit_phrase(&mut out, quota);
    // Only ASCII digits and words were written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`limit_phrase`] appended to `out` (ASCII only, nothing to escape in JSON).
pub(crate) fn write_limit_phrase(out: &mut Vec<u8>, quota: &Quota) {
    const UNITS: [(u128, &str); 7] = [
        (86_400_000_000_000, "day"),
        (3_600_000_000_000, "hour"),
        (60_000_000_000, "minute"),
        (1_000_000_000, "second"),
        (1_000_000, "millisecond"),
        (1_000, "microsecond"),
        (1, "nanosecond"),
    ];
    let n = quota.limit();
    push_int(out, u64::from(n));
    out.extend_from_slice(if n == 1 {
        b" request per "
    } else {
        b" requests per "
    });
    let ns = quota.window().as_nanos().max(1);
    let (size, unit) = UNITS
        .iter()
        .copied()
        .find(|(size, _)| ns.is_multiple_of(*size))
        .unwrap_or((1, "nanosecond"));
    let k = ns / size;
    if k != 1 {
        out.extend_from_slice(itoa::Buffer::new().format(k).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(unit.as_bytes());
    if k != 1 {
        out.push(b's');
    }
}

pub(crate) fn push_int(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `s` as a JSON string (quoted and escaped by `serde_json`).
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a `&str` into a `Vec` cannot fail; on the impossible error, an empty string
    // keeps the document valid.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// The `content-type` of plain-text answers.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A response with `status`, `content_type` and `body`: every answer the crate writes
/// itself is built here.
pub(crate) fn response(
    status: http::StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}
