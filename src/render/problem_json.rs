//! RFC 9457 problem details, the default rejection.

use bytes::Bytes;
use http::Response;

use super::{
    PROBLEM_JSON, Rejection, RejectionKind, Renderer, body, push_int, push_json_str, response,
    status_title,
};

/// The problem type the rate-limit draft registers for quota exhaustion.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// The problem type the rate-limit draft registers for a server that temporarily cannot
/// serve at its usual capacity (here: the limiter's store cannot decide, or its key table
/// is full).
pub const TEMPORARY_REDUCED_CAPACITY_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity";

/// `application/problem+json` (RFC 9457) for every kind of rejection:
///
/// * a denial: `429`, the draft's `quota-exceeded` type and its `violated-policies`
///   extension member, naming every policy that refuses the request in the quota set's
///   order:
///
///   ```json
///   {"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Too Many Requests","status":429,"detail":"exceeded limit of 4 requests per second; retry after 1 s","violated-policies":["burst"]}
///   ```
/// * an unavailable store or a full key table: `503` with the draft's
///   `temporary-reduced-capacity` type:
///
///   ```json
///   {"type":"https://iana.org/assignments/http-problem-types#temporary-reduced-capacity","title":"Temporarily Reduced Capacity","status":503,"detail":"rate limiter unavailable, retry later"}
///   ```
/// * a missing key (`400` unless configured otherwise) or a cost that can never fit
///   (`413`): a plain problem, `about:blank` with the status phrase as title:
///
///   ```json
///   {"type":"about:blank","title":"Content Too Large","status":413,"detail":"request cost 9 exceeds the largest the rate limit can ever admit (4)"}
///   ```
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
        let status = rejection.status();
        // Written by hand around `serde_json`'s string escaping, into a per-thread buffer.
        let out = body(|out| match rejection.kind() {
            RejectionKind::Denied(_) => {
                out.extend_from_slice(DENIED_PREFIX.as_bytes());
                rejection.write_detail(out);
                out.extend_from_slice(br#"","violated-policies":["#);
                for (i, s) in rejection.violated().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_json_str(out, s.quota().name());
                }
                out.extend_from_slice(b"]}");
            }
            RejectionKind::Unavailable(_) | RejectionKind::TooManyKeys { .. } => {
                out.extend_from_slice(UNAVAILABLE_PREFIX.as_bytes());
                push_int(out, u64::from(status.as_u16()));
                write_detail_member(out, rejection);
            }
            RejectionKind::MissingKey { .. }
            | RejectionKind::CostTooHigh { .. }
            | RejectionKind::UnknownPlan { .. } => {
                out.extend_from_slice(br#"{"type":"about:blank","title":"#);
                push_json_str(out, status_title(status));
                out.extend_from_slice(br#","status":"#);
                push_int(out, u64::from(status.as_u16()));
                write_detail_member(out, rejection);
            }
        });
        response(status, PROBLEM_JSON, out)
    }
}

/// `,"detail":"…"}`: the detail may hold a header name, so it is JSON-escaped.
fn write_detail_member(out: &mut Vec<u8>, rejection: &Rejection<'_>) {
    let mut detail = Vec::with_capacity(96);
    rejection.write_detail(&mut detail);
    out.extend_from_slice(br#","detail":"#);
    push_json_str(out, &String::from_utf8_lossy(&detail));
    out.push(b'}');
}

const DENIED_PREFIX: &str = concat!(
    r#"{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","#,
    r#""title":"Too Many Requests","status":429,"detail":""#
);

const UNAVAILABLE_PREFIX: &str = concat!(
    r#"{"type":"https://iana.org/assignments/http-problem-types#temporary-reduced-capacity","#,
    r#""title":"Temporarily Reduced Capacity","status":"#
);
