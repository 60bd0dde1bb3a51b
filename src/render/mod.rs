//! Rejection bodies: how the middleware answers every request it does not admit.
//!
//! A [`Renderer`] turns a [`Rejection`] into a complete response (status, content-type,
//! body). A rejection is one of the [`RejectionKind`]s: a denial, a request without a
//! key, a cost that can never fit, a store that could not decide, a full key table.
//! Every built-in renderer answers all of them in its own protocol; the middleware then
//! adds `Retry-After` (when [`Rejection::retry_after_secs`] has one) and, for denials,
//! the layer's rate-limit headers.
//!
//! | Renderer | Denied | Missing key | Cost too high | Unavailable / too many keys |
//! |---|---|---|---|---|
//! | [`ProblemJson`] (default) | 429 `quota-exceeded` | 400 `about:blank` | 413 `about:blank` | 503 `temporary-reduced-capacity` |
//! | [`Clarifai`] | 429 `CONN_THROTTLED` | as [`ProblemJson`] | as [`ProblemJson`] | as [`ProblemJson`] |
//! | [`Claid`] | 429 `"error_code":"2001"` | as [`ProblemJson`] | as [`ProblemJson`] | as [`ProblemJson`] |
//! | `Grpc` (feature `grpc`) | `RESOURCE_EXHAUSTED` | `INVALID_ARGUMENT` | `INVALID_ARGUMENT` | `UNAVAILABLE` |
//! | [`Text`] | 429 | 400 | 413 | 503 |
//! | any `Fn(&Rejection) -> Response<Bytes>` | yours | yours | yours | yours |
//!
//! The missing-key status is the layer's [`MissingKey::Reject`](crate::MissingKey)
//! status (400 by default); [`Rejection::status`] says which HTTP status fits each kind.
//! The Clarifai and Claid documents define only their throttling answer, so the other
//! kinds get RFC 9457 problem details. Answers to a store failure never carry the store's
//! own error text (it can name internal hosts); logs and the
//! [`on_decision`](crate::RateLimitLayerBuilder::on_decision) hook have it.
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
//!
//! A closure renderer sees every kind:
//!
//! ```
//! use bytes::Bytes;
//! use http::Response;
//! use tower_ratelimit::render::{Rejection, RejectionKind, Renderer};
//! let renderer = |r: &Rejection<'_>| {
//!     let body = match r.kind() {
//!         RejectionKind::Denied(d) => format!("slow down ({} ms)", d.retry_after().unwrap_or_default().as_millis()),
//!         RejectionKind::MissingKey { .. } => "who are you?".to_owned(),
//!         _ => "try again later".to_owned(),
//!     };
//!     let mut res = Response::new(Bytes::from(body));
//!     *res.status_mut() = r.status();
//!     res
//! };
//! let err = tower_ratelimit::StoreError::Timeout;
//! let req = http::Request::new(());
//! let res = renderer.render(&Rejection::new(&err, req.method(), req.uri(), req.headers()));
//! assert_eq!(res.status(), 503);
//! assert_eq!(res.body().as_ref(), b"try again later");
//! ```

use std::cell::Cell;
use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use crate::decision::{Decision, QuotaState};
use crate::error::{CheckError, StoreError};
use crate::key::KeyError;
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
pub use problem_json::{ProblemJson, QUOTA_EXCEEDED_TYPE, TEMPORARY_REDUCED_CAPACITY_TYPE};
pub use text::Text;

/// Why the middleware answered a request itself.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RejectionKind<'a> {
    /// The quotas refused the request (HTTP 429).
    Denied(Decision<'a>),
    /// No key could be extracted and the layer rejects such requests
    /// ([`MissingKey::Reject`](crate::MissingKey)) with `status`.
    MissingKey {
        /// Why the key is missing.
        error: &'a KeyError,
        /// The status the layer is configured to answer with (400 by default).
        status: StatusCode,
    },
    /// The request's cost exceeds the smallest burst of its quotas: no amount of waiting
    /// admits it (HTTP 413; retrying is pointless).
    CostTooHigh {
        /// The cost asked for.
        cost: u32,
        /// The largest cost the quotas can ever admit.
        max: u32,
    },
    /// The store could not decide (Redis down or slow, say; HTTP 503, retry later).
    Unavailable(&'a StoreError),
    /// A keyed limiter tracks its maximum number of keys and none has expired yet
    /// (HTTP 503, retry later).
    TooManyKeys {
        /// The configured maximum.
        max_keys: usize,
    },
    /// The tier resolver named a plan the store does not have: a configuration error
    /// (HTTP 500; retrying will not help, and the default set is never used instead).
    UnknownPlan {
        /// The tier index the resolver returned.
        tier: usize,
    },
}

impl<'a> From<Decision<'a>> for RejectionKind<'a> {
    fn from(d: Decision<'a>) -> Self {
        RejectionKind::Denied(d)
    }
}

impl<'a> From<&'a StoreError> for RejectionKind<'a> {
    /// A store error as the client should see it: a cost that can never fit and a full
    /// key table keep their own kinds, everything else is [`RejectionKind::Unavailable`].
    fn from(e: &'a StoreError) -> Self {
        match e {
            StoreError::Check(CheckError::CostExceedsBurst { cost, max_cost }) => {
                RejectionKind::CostTooHigh {
                    cost: *cost,
                    max: *max_cost,
                }
            }
            StoreError::Check(CheckError::TooManyKeys { max_keys }) => RejectionKind::TooManyKeys {
                max_keys: *max_keys,
            },
            StoreError::Check(CheckError::UnknownTier { tier, .. }) => {
                RejectionKind::UnknownPlan { tier: *tier }
            }
            _ => RejectionKind::Unavailable(e),
        }
    }
}

impl<'a> From<&'a KeyError> for RejectionKind<'a> {
    /// A missing key answered with 400 Bad Request.
    fn from(error: &'a KeyError) -> Self {
        RejectionKind::MissingKey {
            error,
            status: StatusCode::BAD_REQUEST,
        }
    }
}

/// What a renderer sees of a request the middleware answers itself.
#[derive(Debug)]
pub struct Rejection<'a> {
    kind: RejectionKind<'a>,
    /// For a denial, the policy that refused: derived once, read by the renderer and the
    /// middleware.
    denying: Option<QuotaState<'a>>,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl<'a> Rejection<'a> {
    /// Bundles why the request is answered (a [`Decision`], a [`&StoreError`](StoreError),
    /// a [`&KeyError`](KeyError) or any [`RejectionKind`]) with the request.
    pub fn new(
        kind: impl Into<RejectionKind<'a>>,
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    ) -> Self {
        let kind = kind.into();
        let denying = match &kind {
            RejectionKind::Denied(d) => Some(d.denied_by().unwrap_or_else(|| d.binding())),
            _ => None,
        };
        Rejection {
            kind,
            denying,
            method,
            uri,
            headers,
        }
    }

    /// Why the request is answered.
    pub fn kind(&self) -> &RejectionKind<'a> {
        &self.kind
    }

    /// The HTTP status that fits: 429 for a denial, the layer's status for a missing key
    /// (400 by default), 413 for a cost that can never fit, 503 for an unavailable store
    /// or a full key table, 500 for a plan the store does not have.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::Denied(_) => StatusCode::TOO_MANY_REQUESTS,
            RejectionKind::MissingKey { status, .. } => status,
            RejectionKind::CostTooHigh { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RejectionKind::Unavailable(_) | RejectionKind::TooManyKeys { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RejectionKind::UnknownPlan { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The denial, for [`RejectionKind::Denied`].
    pub fn decision(&self) -> Option<&Decision<'a>> {
        match &self.kind {
            RejectionKind::Denied(d) => Some(d),
            _ => None,
        }
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

    /// For a denial, the policy that refused the request (the binding one if the
    /// decision admitted it, so a renderer of a denial never has to handle "no policy").
    pub fn denying(&self) -> Option<QuotaState<'a>> {
        self.denying
    }

    /// For a denial, every policy that would refuse this request now (fewer remaining
    /// than its cost), in the set's order, never empty; for other kinds, nothing.
    pub fn violated(&self) -> impl Iterator<Item = QuotaState<'a>> + '_ {
        let denying = self.denying().map(|s| s.index());
        let cost = self.decision().map_or(0, |d| u64::from(d.cost()));
        self.decision()
            .into_iter()
            .flat_map(|d| d.states())
            .filter(move |s| Some(s.index()) == denying || s.remaining() < cost)
    }

    /// `Retry-After` in whole seconds, as the middleware sends it: for a denial the wait
    /// rounded up (at least 1), for an unavailable store or a full key table 1, and
    /// `None` when retrying the same request cannot help (missing key, cost too high).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match &self.kind {
            RejectionKind::Denied(d) => Some(crate::headers::retry_secs(
                d.retry_after().unwrap_or_default(),
            )),
            RejectionKind::Unavailable(_) | RejectionKind::TooManyKeys { .. } => Some(1),
            RejectionKind::MissingKey { .. }
            | RejectionKind::CostTooHigh { .. }
            | RejectionKind::UnknownPlan { .. } => None,
        }
    }

    /// One sentence for people: "exceeded limit of 4 requests per second; retry after
    /// 1 s", "the request has no `authorization` header to key the rate limit on",
    /// "request cost 9 exceeds the largest the rate limit can ever admit (4)", "rate
    /// limiter unavailable, retry later". Built-in renderers use it as their detail.
    pub fn detail(&self) -> impl fmt::Display + '_ {
        Detail(self)
    }

    /// [`Rejection::detail`] appended to `out`.
    pub(crate) fn write_detail(&self, out: &mut Vec<u8>) {
        match &self.kind {
            RejectionKind::Denied(_) => {
                out.extend_from_slice(b"exceeded limit of ");
                if let Some(s) = self.denying() {
                    write_limit_phrase(out, s.quota());
                }
                out.extend_from_slice(b"; retry after ");
                push_int(out, self.retry_after_secs().unwrap_or(1));
                out.extend_from_slice(b" s");
            }
            RejectionKind::MissingKey { error, .. } => {
                use std::io::Write;
                // Writing into a `Vec` cannot fail.
                let _ = write!(out, "{error}");
            }
            RejectionKind::CostTooHigh { cost, max } => {
                out.extend_from_slice(b"request cost ");
                push_int(out, u64::from(*cost));
                out.extend_from_slice(b" exceeds the largest the rate limit can ever admit (");
                push_int(out, u64::from(*max));
                out.push(b')');
            }
            RejectionKind::Unavailable(_) => {
                out.extend_from_slice(b"rate limiter unavailable, retry later");
            }
            RejectionKind::TooManyKeys { .. } => {
                out.extend_from_slice(b"rate limiter is tracking too many clients, retry later");
            }
            RejectionKind::UnknownPlan { .. } => {
                out.extend_from_slice(b"rate limiter misconfigured: unknown plan");
            }
        }
    }
}

struct Detail<'r, 'a>(&'r Rejection<'a>);

impl fmt::Display for Detail<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(96);
        self.0.write_detail(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// Renders the answer to a request the middleware does not admit (see
/// [`RejectionKind`]).
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

/// The phrase RFC 9110 recommends for `status` (RFC 9457's `title` for `about:blank`).
pub(crate) fn status_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        // RFC 9110 renamed it from "Payload Too Large".
        413 => "Content Too Large",
        _ => status.canonical_reason().unwrap_or("Error"),
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
    const UNITS: [(u64, &str); 7] = [
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
    // A quota's window fits in 64 bits of nanoseconds (`Quota::new` checks), so no
    // 128-bit division, which is a library call.
    let ns = u64::try_from(quota.window().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
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
    // What `serde_json` escapes: `"`, `\` and control characters. Names and ids seldom
    // hold any, and then the string is copied as is.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a `&str` into a `Vec` cannot fail; on the impossible error, an empty string
    // keeps the document valid.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// Longest body carved from the per-thread chunk; longer ones get an allocation of their own.
const MAX_CARVED_BODY: usize = 1024;

thread_local! {
    /// Where bodies are written before they are carved: keeps its capacity, so writing a
    /// body allocates nothing.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static LAST_BODY: std::cell::RefCell<Option<Bytes>> = const { std::cell::RefCell::new(None) };
}

/// A body written by `write`, without an allocation of its own: carved from the shared
/// per-thread chunk (see `headers::value`), or the thread's last body if it is the same.
pub(crate) fn body(write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    // Taken for the call: a renderer rendering inside a renderer, or a call during
    // thread teardown, writes into a fresh buffer.
    let mut out = SCRATCH.try_with(Cell::take).unwrap_or_default();
    out.clear();
    write(&mut out);
    let carve = |bytes: &[u8]| crate::headers::carve(&[bytes], MAX_CARVED_BODY);
    let bytes = if out.len() <= MAX_CARVED_BODY {
        let Ok(bytes) = crate::headers::reuse_last(&LAST_BODY, &out, |b| {
            Ok::<_, std::convert::Infallible>(carve(b))
        });
        bytes
    } else {
        // A big one is not kept as the last body.
        carve(&out)
    };
    // Nor as scratch space.
    if out.capacity() <= 4 * MAX_CARVED_BODY {
        let _ = SCRATCH.try_with(|cell| cell.set(out));
    }
    bytes
}

// Content types as constants: `HeaderValue::from_static` validates every byte when it
// runs, and in a `const` it runs at compile time.
/// The `content-type` of plain-text answers.
pub(crate) const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
/// The `content-type` of JSON answers.
pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The `content-type` of problem details (RFC 9457).
pub(crate) const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");

/// A response with `status`, `content_type` and `body`: every answer the crate writes
/// itself is built here.
pub(crate) fn response(
    status: http::StatusCode,
    content_type: HeaderValue,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type);
    res
}
