//! RFC 9457 problem details, the default rejection.

use bytes::Bytes;
use http::{Response, StatusCode};

use super::{Rejection, Renderer, push_int, push_json_str, response, write_limit_phrase};

/// The problem type the rate-limit draft registers for quota exhaustion.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// `429` with `application/problem+json` (RFC 9457), e.g.
///
/// ```json
/// {"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Too Many Requests","status":429,"detail":"exceeded limit of 4 requests per second; retry after 1 s","violated-policies":["burst"]}
/// ```
///
/// `violated-policies` (the draft's extension member) names every policy that refuses
/// the request, in the quota set's order.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemJson {
    _private: (),
}

impl ProblemJson {
    /// The problem+json renderer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Renderer for ProblemJson {
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        // Written by hand around `serde_json`'s string escaping: one allocation.
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(PREFIX.as_bytes());
        write_limit_phrase(&mut out, rejection.denying().quota());
        out.extend_from_slice(b"; retry after ");
        push_int(&mut out, rejection.retry_after_secs());
        out.extend_from_slice(br#" s","violated-policies":["#);
        for (i, s) in rejection.violated().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(&mut out, s.quota().name());
        }
        out.extend_from_slice(b"]}");
        response(
            StatusCode::TOO_MANY_REQUESTS,
            "application/problem+json",
            out,
        )
    }
}

const PREFIX: &str = concat!(
    r#"{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","#,
    r#""title":"Too Many Requests","status":429,"detail":"exceeded limit of "#
);
