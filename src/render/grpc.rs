//! gRPC's answers: a Trailers-Only status for every rejection.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, QuotaViolation, StatusExt};

use super::{Rejection, RejectionKind, Renderer, limit_phrase};

/// A Trailers-Only gRPC response built by tonic's own [`Status::into_http`]: HTTP 200,
/// `content-type: application/grpc`, `grpc-status`, a percent-encoded `grpc-message`
/// and, where there is something to say, `grpc-status-details-bin`. The code follows
/// the gRPC status-code guide:
///
/// | Rejection | Code | Why |
/// |---|---|---|
/// | denied | `RESOURCE_EXHAUSTED` (8) | a per-client quota is used up; retry later |
/// | missing key | `INVALID_ARGUMENT` (3) | the request lacks what it must carry, whatever the server's state (`UNAUTHENTICATED` / `PERMISSION_DENIED` when the layer answers missing keys with 401 / 403) |
/// | cost too high | `INVALID_ARGUMENT` (3) | the cost exceeds every burst the quotas have: it is wrong regardless of the server's state and retrying cannot help, which is what separates it from `RESOURCE_EXHAUSTED` |
/// | store unavailable, too many keys | `UNAVAILABLE` (14) | transient, on the server's side; the code gRPC clients retry |
///
/// A denial carries
///
/// * `google.rpc.RetryInfo`: the exact wait until the request would be admitted, rounded
///   up to the millisecond (the `Retry-After` header says the same, in whole seconds);
/// * `google.rpc.QuotaFailure`: one violation per refusing policy, with subject
///   `policy:<name>`, the limit phrase as description, `quota_id` the policy name and
///   `quota_value` its limit.
///
/// `UNAVAILABLE` carries a `RetryInfo` of one second. The message is the rejection's
/// [detail](Rejection::detail) ("rate limit exceeded: 5 requests per second" for a
/// denial). tonic clients see an ordinary `Status` (read the details with
/// `tonic_types::StatusExt::get_error_details`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Grpc {
    _private: (),
}

impl Grpc {
    /// The gRPC renderer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Grpc {
    /// The `Status` this renderer sends for `rejection`.
    pub fn status(&self, rejection: &Rejection<'_>) -> Status {
        match rejection.kind() {
            RejectionKind::Denied(decision) => {
                let wait = decision.retry_after().unwrap_or_default();
                let mut details = ErrorDetails::with_retry_info(Some(ceil_millis(wait)));
                let violations: Vec<QuotaViolation> = rejection
                    .violated()
                    .map(|s| {
                        let q = s.quota();
                        let mut v =
                            QuotaViolation::new(format!("policy:{}", q.name()), limit_phrase(q));
                        v.quota_id = q.name().to_owned();
                        v.quota_value = i64::from(q.limit());
                        v
                    })
                    .collect();
                details.set_quota_failure(violations);
                let phrase = rejection
                    .denying()
                    .map(|s| limit_phrase(s.quota()))
                    .unwrap_or_default();
                let message = format!("rate limit exceeded: {phrase}");
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            RejectionKind::MissingKey { status, .. } => {
                let code = match *status {
                    StatusCode::UNAUTHORIZED => Code::Unauthenticated,
                    StatusCode::FORBIDDEN => Code::PermissionDenied,
                    _ => Code::InvalidArgument,
                };
                Status::new(code, rejection.detail().to_string())
            }
            RejectionKind::CostTooHigh { .. } => {
                Status::new(Code::InvalidArgument, rejection.detail().to_string())
            }
            RejectionKind::UnknownPlan { .. } => {
                Status::new(Code::Internal, rejection.detail().to_string())
            }
            RejectionKind::Unavailable(_) | RejectionKind::TooManyKeys { .. } => {
                let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(1)));
                Status::with_error_details(
                    Code::Unavailable,
                    rejection.detail().to_string(),
                    details,
                )
            }
        }
    }
}

impl Renderer for Grpc {
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        self.status(rejection).into_http()
    }
}

fn ceil_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}
