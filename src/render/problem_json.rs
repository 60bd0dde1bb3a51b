//! RFC 9457 problem details, the default rejection.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::{Rejection, Renderer, limit_phrase};

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

#[derive(Serialize)]
struct Problem<'a> {
    r#type: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(rename = "violated-policies")]
    violated_policies: Vec<&'a str>,
}

impl Renderer for ProblemJson {
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        let problem = Problem {
            r#type: QUOTA_EXCEEDED_TYPE,
            title: "Too Many Requests",
            status: 429,
            detail: format!(
                "exceeded limit of {}; retry after {} s",
                limit_phrase(rejection.denying().quota()),
                rejection.retry_after_secs()
            ),
            violated_policies: rejection.violated().map(|s| s.quota().name()).collect(),
        };
        super::json_response(
            StatusCode::TOO_MANY_REQUESTS,
            HeaderValue::from_static("application/problem+json"),
            &problem,
        )
    }
}
