//! Throttling signalled outside the status line: Clarifai's JSON body and gRPC status.

use http::HeaderMap;

/// Clarifai's status code for throttling.
pub const CONN_THROTTLED: &str = "CONN_THROTTLED";
/// Its numeric form.
pub const CONN_THROTTLED_CODE: u64 = 11005;

/// Whether a body is Clarifai's throttling answer:
/// `{"status":{"code":"CONN_THROTTLED",...}}` (or the numeric code 11005, as a number
/// or a string). Anything else, including invalid JSON, is `false`.
///
/// ```
/// use tower_ratelimit::client::hints::is_clarifai_throttled;
/// assert!(is_clarifai_throttled(br#"{"status":{"code":"CONN_THROTTLED","description":"Making too many requests"}}"#));
/// assert!(is_clarifai_throttled(br#"{"status":{"code":11005}}"#));
/// assert!(!is_clarifai_throttled(br#"{"status":{"code":10000}}"#));
/// ```
pub fn is_clarifai_throttled(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    match v.get("status").and_then(|s| s.get("code")) {
        Some(serde_json::Value::String(s)) => {
            s == CONN_THROTTLED || s.parse::<u64>().is_ok_and(|n| n == CONN_THROTTLED_CODE)
        }
        Some(serde_json::Value::Number(n)) => n.as_u64() == Some(CONN_THROTTLED_CODE),
        _ => false,
    }
}

/// Whether the headers (or trailers) carry `grpc-status: 8` (RESOURCE_EXHAUSTED).
pub fn is_grpc_resource_exhausted(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"8")
}
