//! Clarifai's rejection, as its rate-limit page documents it.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use super::{
    APPLICATION_JSON, ProblemJson, Rejection, Renderer, body, push_int, push_json_str, response,
    write_limit_phrase,
};

/// Clarifai's numeric code for `CONN_THROTTLED`.
pub const CONN_THROTTLED_CODE: u32 = 11005;

/// Longest `x-request-id` echoed back; longer ones get a fresh id.
const MAX_REQUEST_ID: usize = 128;

/// A denial: `429` with `application/json`, shaped like Clarifai's throttling answer:
///
/// ```json
/// {"status":{"code":"CONN_THROTTLED","description":"Making too many requests","details":"exceeded limit of 15 requests per second","req_id":"5f0e…"}}
/// ```
///
/// * `details` names the quota that refused ("exceeded limit of 120 requests per
///   minute"; other windows read "per 90 seconds", "per 1500 milliseconds").
/// * `code` is the string `"CONN_THROTTLED"` by default (what Clarifai's own client
///   samples compare); [`Clarifai::numeric_code`] switches it to the number `11005`.
/// * `req_id` echoes the request's `x-request-id` when it is 1 to 128 visible ASCII
///   characters (JSON-escaped like every string), otherwise it is a fresh id: 32
///   lowercase hex digits, unique within the process (a counter through a bijective
///   mix) and random across processes.
///
/// Clarifai's page documents only its throttling answer, so rejections other than a
/// denial (a missing key, a cost that can never fit, an unavailable store) are answered
/// as [`ProblemJson`] does.
///
/// ```
/// use tower_ratelimit::render::Clarifai;
/// let numeric = Clarifai::new().numeric_code(true);
/// # let _ = numeric;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Clarifai {
    numeric_code: bool,
}

impl Clarifai {
    /// The Clarifai renderer, with the string code.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `"code": 11005` instead of `"code": "CONN_THROTTLED"`.
    pub fn numeric_code(mut self, numeric: bool) -> Self {
        self.numeric_code = numeric;
        self
    }
}

impl Renderer for Clarifai {
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        let Some(denying) = rejection.denying() else {
            return ProblemJson::new().render(rejection);
        };
        // Written by hand around `serde_json`'s string escaping, into a per-thread buffer.
        let out = body(|out| {
            out.extend_from_slice(br#"{"status":{"code":"#);
            if self.numeric_code {
                push_int(out, u64::from(CONN_THROTTLED_CODE));
            } else {
                out.extend_from_slice(br#""CONN_THROTTLED""#);
            }
            out.extend_from_slice(
                br#","description":"Making too many requests","details":"exceeded limit of "#,
            );
            write_limit_phrase(out, denying.quota());
            out.extend_from_slice(br#"","req_id":"#);
            match echoable_request_id(rejection.headers().get("x-request-id")) {
                Some(id) => push_json_str(out, id),
                None => {
                    out.push(b'"');
                    write_fresh_request_id(out);
                    out.push(b'"');
                }
            }
            out.extend_from_slice(b"}}");
        });
        response(StatusCode::TOO_MANY_REQUESTS, APPLICATION_JSON, out)
    }
}

/// The request's own id, if it is short visible ASCII (no spaces, no controls).
fn echoable_request_id(v: Option<&HeaderValue>) -> Option<&str> {
    let b = v?.as_bytes();
    let ok = (1..=MAX_REQUEST_ID).contains(&b.len()) && b.iter().all(|c| (0x21..=0x7e).contains(c));
    if ok {
        std::str::from_utf8(b).ok()
    } else {
        None
    }
}

/// 32 hex digits: a per-process random half, and a counter through a bijection (so two
/// ids of one process never collide) keyed by another random value.
#[cfg(test)]
fn fresh_request_id() -> String {
    let mut out = Vec::new();
    write_fresh_request_id(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends a fresh id (see [`Clarifai`]) to `out`.
fn write_fresh_request_id(out: &mut Vec<u8>) {
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let &(hi, key) = SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let s = RandomState::new();
        let mut a = s.build_hasher();
        a.write_u128(nanos);
        a.write_u32(std::process::id());
        let mut b = s.build_hasher();
        b.write_u64(a.finish());
        (a.finish(), b.finish())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    push_hex(out, hi);
    push_hex(out, mix(n ^ key));
}

/// `v` as 16 lowercase hex digits.
fn push_hex(out: &mut Vec<u8>, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

/// The splitmix64 finalizer: a bijection on `u64`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_unique_hex() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| fresh_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn only_short_visible_ids_are_echoed() {
        let v = |s: &str| HeaderValue::from_str(s).expect("valid value");
        assert_eq!(echoable_request_id(Some(&v("abc-123"))), Some("abc-123"));
        assert_eq!(echoable_request_id(Some(&v(r#"a"b\c"#))), Some(r#"a"b\c"#));
        assert_eq!(echoable_request_id(Some(&v("a b"))), None);
        assert_eq!(echoable_request_id(Some(&v(""))), None);
        assert_eq!(echoable_request_id(Some(&v(&"x".repeat(129)))), None);
        let high = HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text is allowed");
        assert_eq!(echoable_request_id(Some(&high)), None);
        assert_eq!(echoable_request_id(None), None);
    }
}
