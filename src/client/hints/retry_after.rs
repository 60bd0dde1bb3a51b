//! `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value: `120` (seconds) or `Fri, 31 Dec 1999 23:59:59 GMT`
/// (relative to `now`; a date in the past means zero). Anything else is `None`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_ratelimit::client::hints::parse_retry_after;
/// assert_eq!(parse_retry_after(b"2", SystemTime::now()), Some(Duration::from_secs(2)));
/// let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// assert_eq!(
///     parse_retry_after(b"Sun, 06 Nov 1994 08:49:40 GMT", now),
///     Some(Duration::from_secs(3))
/// );
/// assert_eq!(parse_retry_after(b"soon", now), None);
/// ```
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let s = std::str::from_utf8(value).ok()?.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
