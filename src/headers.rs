//! Rate-limit response headers, by generation of the IETF httpapi draft.
//!
//! CONTRACT (filled in by the headers/renderers work): `HeaderStyle::apply` adds the
//! style's fields for a decision, admitted or denied; `retry_after` renders
//! `Retry-After` for a denial.

use http::{HeaderMap, HeaderValue};

use crate::decision::Decision;

/// Which rate-limit header fields to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// The current draft: `RateLimit-Policy` and `RateLimit` Structured Field lists.
    #[default]
    Ietf,
    /// Draft-03 (what Claid sends): `RateLimit-Limit: 120, 120;w=60, 4;w=1`,
    /// `RateLimit-Remaining`, `RateLimit-Reset`.
    Draft03,
    /// Legacy `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
    XRateLimit,
    /// No rate-limit fields (a 429 still carries `Retry-After`).
    None,
}

impl HeaderStyle {
    /// Adds this style's fields for `decision` to `headers`.
    pub fn apply(self, decision: &Decision<'_>, headers: &mut HeaderMap) {
        let _ = (decision, headers);
    }
}

/// `Retry-After` for a denied decision: whole seconds, rounded up, at least 1.
pub fn retry_after(decision: &Decision<'_>) -> Option<HeaderValue> {
    let wait = decision.retry_after()?;
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Some(HeaderValue::from(secs.max(1)))
}
