//! gRPC's answer to an exhausted quota: a Trailers-Only `RESOURCE_EXHAUSTED` status.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, QuotaViolation, StatusExt};

use super::{Rejection, Renderer, limit_phrase};

/// A Trailers-Only gRPC response built by tonic's own [`Status::into_http`]: HTTP 200,
/// `content-type: application/grpc`, `grpc-status: 8` (`RESOURCE_EXHAUSTED`), a
/// percent-encoded `grpc-message` ("rate limit exceeded: 5 requests per second") and
/// `grpc-status-details-bin` carrying
///
/// * `google.rpc.RetryInfo`: the exact wait until the request would be admitted, rounded
///   up to the millisecond (the `Retry-After` header says the same, in whole seconds);
/// * `google.rpc.QuotaFailure`: one violation per refusing policy, with subject
///   `policy:<name>`, the limit phrase as description, `quota_id` the policy name and
///   `quota_value` its limit.
///
/// tonic clients see it as an ordinary `Status` (read the details with
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
        let wait = rejection.decision().retry_after().unwrap_or_default();
        let mut details = ErrorDetails::with_retry_info(Some(ceil_millis(wait)));
        let violations: Vec<QuotaViolation> = rejection
            .violated()
            .map(|s| {
                let q = s.quota();
                let mut v = QuotaViolation::new(format!("policy:{}", q.name()), limit_phrase(q));
                v.quota_id = q.name().to_owned();
                v.quota_value = i64::from(q.limit());
                v
            })
            .collect();
        details.set_quota_failure(violations);
        let message = format!(
            "rate limit exceeded: {}",
            limit_phrase(rejection.denying().quota())
        );
        Status::with_error_details(Code::ResourceExhausted, message, details)
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
