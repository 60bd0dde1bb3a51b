//! Claid.ai's rejection, as its rate-limit page documents it.

use bytes::Bytes;
use http::{Response, StatusCode};

use super::{APPLICATION_JSON, ProblemJson, Rejection, RejectionKind, Renderer, response};

/// The body Claid's documentation shows, byte for byte (compact JSON).
pub(crate) const CLAID_BODY: &str = r#"{"detail":{"error_code":"2001","error_type":"general","error_message":"Too Many Requests. Rate limit exceeded."}}"#;

/// A denial: `429` with `application/json` and Claid's fixed body:
///
/// ```json
/// {"detail":{"error_code":"2001","error_type":"general","error_message":"Too Many Requests. Rate limit exceeded."}}
/// ```
///
/// Claid documents no other error, so rejections other than a denial (a missing key, a
/// cost that can never fit, an unavailable store) are answered as [`ProblemJson`] does.
///
/// Pair it with [`HeaderStyle::Draft03Claid`](crate::headers::HeaderStyle::Draft03Claid)
/// to reproduce Claid's headers too (`RateLimit-Remaining: -1` on a 429). The body is
/// constant, so rendering allocates nothing for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claid {
    _private: (),
}

impl Claid {
    /// The Claid renderer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Renderer for Claid {
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        if !matches!(rejection.kind(), RejectionKind::Denied(_)) {
            return ProblemJson::new().render(rejection);
        }
        response(
            StatusCode::TOO_MANY_REQUESTS,
            APPLICATION_JSON,
            Bytes::from_static(CLAID_BODY.as_bytes()),
        )
    }
}
