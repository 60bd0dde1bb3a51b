//! Rate-limit response headers, by generation of the IETF httpapi draft.
//!
//! A [`HeaderStyle`] picks the fields; [`HeaderStyle::prepare`] renders the parts that
//! depend only on the quota set once, so the per-response work is a few integer
//! formats. [`retry_after`] renders `Retry-After` for a denial; no style adds it by
//! itself (the middleware adds it to every 429, whatever the style).
//!
//! ```
//! use http::HeaderMap;
//! use tower_ratelimit::{Quotas, RateLimiter, clock::ManualClock, headers::HeaderStyle};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RateLimiter::with_clock(Quotas::claid(), ManualClock::new());
//! let prepared = HeaderStyle::Ietf.prepare(limiter.quotas());
//! let mut headers = HeaderMap::new();
//! prepared.apply(&limiter.check()?, &mut headers);
//! assert_eq!(headers["ratelimit-policy"], r#""burst";q=4;w=1, "minute";q=120;w=60"#);
//! assert_eq!(headers["ratelimit"], r#""burst";r=3;t=1"#);
//! # Ok(()) }
//! ```
//!
//! # What the numbers mean under GCRA
//!
//! GCRA has no windows that reset; it refills continuously. The fields therefore say:
//!
//! * **remaining** (`r`, `RateLimit-Remaining`, `X-RateLimit-Remaining`): requests of
//!   cost 1 the policy would admit right now, one after another
//!   ([`QuotaState::remaining`]). Never negative, except in [`HeaderStyle::Draft03Claid`].
//! * **reset** (`t`, `RateLimit-Reset`, `X-RateLimit-Reset`): delta seconds, rounded up.
//!   On an admitted response, the time until the policy is fully restored
//!   ([`QuotaState::reset`]): "118 remaining, full again in 32 s". On a denial, for the
//!   policy that refused, the time until the refused request would be admitted: exactly
//!   the `Retry-After` value, so the two never disagree and `Retry-After` is never
//!   earlier than the reset the headers announce.
//! * **binding policy**: the policy closest to exhaustion ([`Decision::binding`]); on a
//!   denial, the one that refused.
//!
//! Windows are announced in whole seconds (`w`), rounded up, at least 1; policy names
//! are Structured Field strings, with any byte outside printable ASCII replaced by `?`.

use std::time::Duration;

use http::header::{HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue};

use crate::decision::{Decision, QuotaState};
use crate::quota::Quotas;

mod plan;
mod value;

pub(crate) use plan::{HeaderPlan, PendingHeaders};
pub(crate) use value::{carve, number, reuse_last};

/// `RateLimit-Policy` (current draft).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (current draft).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Limit` (draft-03).
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining` (draft-03).
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset` (draft-03).
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `X-RateLimit-Limit` (legacy).
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining` (legacy).
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (legacy).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Which rate-limit header fields to send.
///
/// Examples below are for [`Quotas::claid`] (`4/s "burst"` and `120/min "minute"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// The current draft (-08 to -10): `RateLimit-Policy` lists every policy,
    /// `RateLimit` reports only the binding one (the one that decides when the client
    /// will be refused, which keeps the field short):
    ///
    /// ```text
    /// RateLimit-Policy: "burst";q=4;w=1, "minute";q=120;w=60
    /// RateLimit: "burst";r=0;t=1
    /// ```
    #[default]
    Ietf,
    /// Draft-03: the binding policy's limit, then every policy as `quota;w=seconds`,
    /// longest window first (as Claid lists them); remaining and reset of the binding
    /// policy. Remaining is never negative.
    ///
    /// ```text
    /// RateLimit-Limit: 120, 120;w=60, 4;w=1
    /// RateLimit-Remaining: 118
    /// RateLimit-Reset: 32
    /// ```
    Draft03,
    /// [`Draft03`](Self::Draft03) exactly as Claid's documentation shows it, including
    /// `RateLimit-Remaining: -1` on a denial (admitted responses are identical to
    /// `Draft03`). Pick it with [`render::Claid`](crate::render::Claid) to reproduce
    /// Claid's API.
    Draft03Claid,
    /// Legacy `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (delta
    /// seconds, the common choice, not a Unix timestamp) of the binding policy.
    XRateLimit,
    /// No rate-limit fields (a 429 still carries `Retry-After`).
    None,
}

impl HeaderStyle {
    /// Adds this style's fields for `decision` to `headers` (replacing fields of the same
    /// name). Does not add `Retry-After`; see [`retry_after`].
    ///
    /// This renders the quota set's constant parts on every call; middleware and other
    /// hot paths should call [`HeaderStyle::prepare`] once and reuse the result.
    pub fn apply(self, decision: &Decision<'_>, headers: &mut HeaderMap) {
        if self != HeaderStyle::None {
            self.prepare(decision.quotas()).apply(decision, headers);
        }
    }

    /// Renders the parts of this style's fields that depend only on `quotas`, for
    /// [`PreparedHeaders::apply`].
    pub fn prepare(self, quotas: &Quotas) -> PreparedHeaders {
        let policies: Vec<Policy> = quotas
            .iter()
            .map(|q| Policy {
                limit: u64::from(q.limit()),
                window: window_secs(q.window()),
                name: sf_string(q.name()),
            })
            .collect();
        let mut prepared = PreparedHeaders {
            style: self,
            quotas: quotas.clone(),
            policy: None,
            item_prefix: Vec::new(),
            limit: Vec::new(),
        };
        match self {
            HeaderStyle::Ietf => {
                let list: Vec<String> = policies
                    .iter()
                    .map(|p| format!("{};q={};w={}", p.name, p.limit, p.window))
                    .collect();
                prepared.policy = Some(header_value(list.join(", ")));
                prepared.item_prefix = policies
                    .iter()
                    .map(|p| format!("{};r=", p.name).into_bytes())
                    .collect();
            }
            HeaderStyle::Draft03 | HeaderStyle::Draft03Claid => {
                let mut by_window: Vec<&Policy> = policies.iter().collect();
                // Longest window first, as Claid lists them; stable for equal windows.
                by_window.sort_by_key(|p| std::cmp::Reverse(p.window));
                let tail: Vec<String> = by_window
                    .iter()
                    .map(|p| format!("{};w={}", p.limit, p.window))
                    .collect();
                let tail = tail.join(", ");
                prepared.limit = policies
                    .iter()
                    .map(|p| header_value(format!("{}, {tail}", p.limit)))
                    .collect();
            }
            HeaderStyle::XRateLimit => {
                prepared.limit = policies.iter().map(|p| number(p.limit)).collect();
            }
            HeaderStyle::None => {}
        }
        prepared
    }
}

/// One policy's constant parts.
struct Policy {
    limit: u64,
    window: u64,
    /// Already an sf-string, quotes included.
    name: String,
}

/// A [`HeaderStyle`] with its constant parts rendered for one quota set: what the
/// middleware keeps per layer (and per quota set, with overrides).
///
/// [`apply`](Self::apply) clones the constant values (no allocation) and formats only the
/// numbers that change, into values carved from a per-thread buffer (small numbers come
/// from a shared table): no style allocates per response.
#[derive(Debug, Clone)]
pub struct PreparedHeaders {
    style: HeaderStyle,
    quotas: Quotas,
    /// `RateLimit-Policy` (Ietf).
    policy: Option<HeaderValue>,
    /// Per quota: `"name";r=` (Ietf).
    item_prefix: Vec<Vec<u8>>,
    /// Per quota as the binding one: the whole `RateLimit-Limit` (Draft03) or
    /// `X-RateLimit-Limit` (XRateLimit) value.
    limit: Vec<HeaderValue>,
}

impl PreparedHeaders {
    /// The style this was prepared for.
    pub fn style(&self) -> HeaderStyle {
        self.style
    }

    /// Adds the style's fields for `decision` to `headers` (replacing fields of the same
    /// name). Does not add `Retry-After`; see [`retry_after`].
    ///
    /// A decision made against a different quota set than the one prepared for is still
    /// rendered correctly, by the slow path.
    pub fn apply(&self, decision: &Decision<'_>, headers: &mut HeaderMap) {
        if self.style == HeaderStyle::None {
            return;
        }
        let quotas = decision.quotas();
        if !std::ptr::eq(quotas, &self.quotas) && *quotas != self.quotas {
            self.style.prepare(quotas).apply(decision, headers);
            return;
        }
        self.apply_prepared(decision, headers);
    }

    /// [`apply`](Self::apply) for a decision known to be made against the quota set
    /// prepared for (the header plan's tiers), without comparing the sets.
    #[inline]
    pub(crate) fn apply_prepared(&self, decision: &Decision<'_>, headers: &mut HeaderMap) {
        let binding = decision.binding();
        let i = binding.index();
        let reset = reset_secs(decision, &binding);
        match self.style {
            HeaderStyle::Ietf => {
                if let Some(policy) = &self.policy {
                    headers.insert(RATELIMIT_POLICY, policy.clone());
                }
                // Built only from an sf-string and digits: always a valid value.
                let prefix = &self.item_prefix[i];
                // A client over its quota gets the same value for a second: shared.
                let v = if decision.is_allowed() {
                    value::with_numbers(prefix, binding.remaining(), b";t=", reset)
                } else {
                    value::with_numbers_repeated(prefix, binding.remaining(), b";t=", reset)
                };
                if let Some(v) = v {
                    headers.insert(RATELIMIT, v);
                }
            }
            HeaderStyle::Draft03 | HeaderStyle::Draft03Claid => {
                headers.insert(RATELIMIT_LIMIT, self.limit[i].clone());
                let remaining = if self.style == HeaderStyle::Draft03Claid && !decision.is_allowed()
                {
                    HeaderValue::from_static("-1")
                } else {
                    number(binding.remaining())
                };
                headers.insert(RATELIMIT_REMAINING, remaining);
                headers.insert(RATELIMIT_RESET, number(reset));
            }
            HeaderStyle::XRateLimit => {
                headers.insert(X_RATELIMIT_LIMIT, self.limit[i].clone());
                headers.insert(X_RATELIMIT_REMAINING, number(binding.remaining()));
                headers.insert(X_RATELIMIT_RESET, number(reset));
            }
            HeaderStyle::None => {}
        }
    }
}

/// `Retry-After` for a denied decision: whole seconds, rounded up, at least 1. `None`
/// when the decision admitted the request.
///
/// Equal to the reset every [`HeaderStyle`] announces for the refusing policy, so a
/// client that honours either waits long enough.
pub fn retry_after(decision: &Decision<'_>) -> Option<HeaderValue> {
    decision.retry_after().map(|wait| number(retry_secs(wait)))
}

/// Adds `Retry-After` to `headers` if `decision` is a denial.
pub fn insert_retry_after(decision: &Decision<'_>, headers: &mut HeaderMap) {
    if let Some(v) = retry_after(decision) {
        headers.insert(RETRY_AFTER, v);
    }
}

pub(crate) fn retry_secs(wait: Duration) -> u64 {
    ceil_secs(wait).max(1)
}

/// The reset announced for `state`: the retry delay for the policy that refused, else
/// the time until the policy is fully restored.
///
/// The time until full is counted in whole milliseconds before it is rounded up to
/// seconds: emission intervals are rounded up (to the nanosecond in memory, to the
/// microsecond on Redis), so "15 per second" is full again after 1.000000005 s, and
/// rounding that up would announce 2 s and halve the rate of a client that waits for
/// the reset. `Retry-After` stays exact (rounded up from the nanosecond).
#[inline]
fn reset_secs(decision: &Decision<'_>, state: &QuotaState<'_>) -> u64 {
    match (decision.retry_after(), decision.denied_index()) {
        (Some(wait), Some(d)) if d == state.index() => retry_secs(wait),
        _ => ceil_secs(whole_millis(state.reset())),
    }
}

/// `d` without its sub-millisecond part.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn window_secs(w: Duration) -> u64 {
    ceil_secs(w).max(1)
}

/// `s` as an RFC 9651 sf-string: quoted, `"` and `\` escaped, bytes outside printable
/// ASCII replaced by `?` (an sf-string cannot carry them).
pub(crate) fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// A value built from sanitized parts; the fallback is never expected.
fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_strings_escape_and_replace() {
        assert_eq!(sf_string("burst"), r#""burst""#);
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("é\n"), r#""??""#);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(window_secs(Duration::from_millis(1500)), 2);
        assert_eq!(window_secs(Duration::from_millis(10)), 1);
    }
}
