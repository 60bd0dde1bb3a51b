//! What servers say about their limits, parsed into one typed view.
//!
//! [`RateLimitHints::from_headers`] reads every generation of rate-limit fields:
//!
//! | field | form |
//! |---|---|
//! | `Retry-After` | delay-seconds or HTTP-date |
//! | `RateLimit-Policy` / `RateLimit` | current IETF draft, Structured Field lists |
//! | `RateLimit-Limit` / `-Remaining` / `-Reset` | draft-03 (Claid): `120, 120;w=60, 4;w=1` |
//! | `X-RateLimit-Limit` / `-Remaining` / `-Reset` | legacy; reset as delay or Unix time |
//! | `grpc-status: 8` | gRPC RESOURCE_EXHAUSTED |
//!
//! and [`RateLimitHints::with_body`] adds Clarifai's `CONN_THROTTLED` JSON body. A
//! malformed field is ignored (as the draft requires), never an error or a panic.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::{HeaderMap, StatusCode};
//! use tower_ratelimit::client::hints::RateLimitHints;
//! let mut h = HeaderMap::new();
//! h.insert("ratelimit-limit", "4, 120;w=60, 4;w=1".parse().unwrap());
//! h.insert("ratelimit-remaining", "0".parse().unwrap());
//! h.insert("ratelimit-reset", "1".parse().unwrap());
//! let hints = RateLimitHints::from_headers(StatusCode::TOO_MANY_REQUESTS, &h, SystemTime::now());
//! assert!(hints.throttled);
//! assert_eq!(hints.remaining, Some(0));
//! assert_eq!(hints.wait(), Some(Duration::from_secs(1)));
//! // The advertised policies become a quota set the pacer can adopt: 4/s and 120/min.
//! let quotas = hints.quotas().unwrap();
//! assert_eq!(quotas.len(), 2);
//! assert_eq!(quotas.get(0).unwrap().emission_interval(), Duration::from_millis(250));
//! ```

mod body;
mod draft03;
mod ietf;
mod retry_after;

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

pub use body::{
    CONN_THROTTLED, CONN_THROTTLED_CODE, is_clarifai_throttled, is_grpc_resource_exhausted,
};
pub use draft03::{parse_int, parse_limit, parse_reset};
pub use ietf::{PolicyState, parse_ratelimit, parse_ratelimit_policy};
pub use retry_after::parse_retry_after;

use crate::{Quota, Quotas};

/// One advertised policy: `quota` units per `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyHint {
    /// Its name, when the server gives one (current draft).
    pub name: Option<String>,
    /// Units per window.
    pub quota: u64,
    /// The window, when given.
    pub window: Option<Duration>,
    /// Remaining units, when the server reports them per policy.
    pub remaining: Option<u64>,
    /// Time until the policy's quota is available again.
    pub reset: Option<Duration>,
}

/// Everything a response says about the server's rate limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitHints {
    /// `Retry-After`.
    pub retry_after: Option<Duration>,
    /// The advertised policies (`RateLimit-Policy`, or the windows of draft-03
    /// `RateLimit-Limit`).
    pub policies: Vec<PolicyHint>,
    /// The current limit (draft-03 first item, or `X-RateLimit-Limit`).
    pub limit: Option<u64>,
    /// Remaining units of the tightest policy (negative values count as 0).
    pub remaining: Option<u64>,
    /// Time until the tightest policy resets.
    pub reset: Option<Duration>,
    /// The server refused for rate limiting: HTTP 429, gRPC RESOURCE_EXHAUSTED, or
    /// Clarifai's `CONN_THROTTLED`.
    pub throttled: bool,
    /// gRPC RESOURCE_EXHAUSTED (`grpc-status: 8`) was seen.
    pub grpc_resource_exhausted: bool,
    /// Clarifai's `CONN_THROTTLED` body was seen.
    pub clarifai_throttled: bool,
}

fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

impl RateLimitHints {
    /// Reads the status and headers; `now` resolves HTTP-dates and Unix-time resets.
    pub fn from_headers(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Self {
        let mut h = RateLimitHints {
            retry_after: get(headers, "retry-after").and_then(|v| parse_retry_after(v, now)),
            grpc_resource_exhausted: is_grpc_resource_exhausted(headers),
            ..Default::default()
        };
        // Current draft first: it names its policies.
        if let Some(v) = get(headers, "ratelimit-policy") {
            h.policies = parse_ratelimit_policy(v);
        }
        if let Some(v) = get(headers, "ratelimit") {
            for s in parse_ratelimit(v) {
                if let Some(p) = h
                    .policies
                    .iter_mut()
                    .find(|p| p.name.is_some() && p.name == s.name)
                {
                    p.remaining = s.remaining;
                    p.reset = s.reset;
                }
                h.tighten(s.remaining, s.reset);
            }
        }
        // draft-03.
        if let Some(v) = get(headers, "ratelimit-limit") {
            let (limit, policies) = parse_limit(v);
            h.limit = limit.or(h.limit);
            if h.policies.is_empty() {
                h.policies = policies;
            }
        }
        let remaining = get(headers, "ratelimit-remaining").and_then(parse_int);
        let reset = get(headers, "ratelimit-reset").and_then(|v| parse_reset(v, now));
        h.tighten(remaining.map(|r| r.max(0).unsigned_abs()), reset);
        // Legacy.
        if h.limit.is_none() {
            h.limit = get(headers, "x-ratelimit-limit")
                .and_then(parse_int)
                .and_then(|n| u64::try_from(n).ok());
        }
        let remaining = get(headers, "x-ratelimit-remaining").and_then(parse_int);
        let reset = get(headers, "x-ratelimit-reset").and_then(|v| parse_reset(v, now));
        if h.remaining.is_none() && h.reset.is_none() {
            h.tighten(remaining.map(|r| r.max(0).unsigned_abs()), reset);
        }
        h.throttled = status == StatusCode::TOO_MANY_REQUESTS || h.grpc_resource_exhausted;
        h
    }

    /// Adds what a response body says (Clarifai's `CONN_THROTTLED`).
    pub fn with_body(mut self, body: &[u8]) -> Self {
        if is_clarifai_throttled(body) {
            self.clarifai_throttled = true;
            self.throttled = true;
        }
        self
    }

    /// Keeps the tightest view: the lowest remaining, and with it its reset.
    fn tighten(&mut self, remaining: Option<u64>, reset: Option<Duration>) {
        match (self.remaining, remaining) {
            (_, None) if self.reset.is_none() => self.reset = reset,
            (_, None) => {}
            (None, Some(r)) => {
                self.remaining = Some(r);
                self.reset = reset.or(self.reset);
            }
            (Some(old), Some(r)) if r < old || (r == old && reset > self.reset) => {
                self.remaining = Some(r);
                self.reset = reset.or(self.reset);
            }
            _ => {}
        }
    }

    /// How long the server asks the client to wait before the next request, if it does:
    /// `Retry-After`, else the reset when nothing remains (or the request was throttled).
    pub fn wait(&self) -> Option<Duration> {
        if self.retry_after.is_some() {
            return self.retry_after;
        }
        if self.throttled || self.remaining == Some(0) {
            return self.reset;
        }
        None
    }

    /// The advertised policies as a [`Quotas`] set the pacer can adopt (at most four,
    /// those with a window; `None` if there are none or they are invalid).
    pub fn quotas(&self) -> Option<Quotas> {
        let quotas: Vec<Quota> = self
            .policies
            .iter()
            .filter_map(|p| {
                let window = p.window?;
                let limit = u32::try_from(p.quota).ok()?;
                let q = Quota::new(limit, window).ok()?;
                Some(match &p.name {
                    Some(n) => q.named(n.clone()),
                    None => q,
                })
            })
            .collect();
        // Tightest window first, as the presets order them.
        let mut quotas = quotas;
        quotas.sort_by_key(Quota::window);
        quotas.dedup_by(|a, b| a.limit() == b.limit() && a.window() == b.window());
        Quotas::new(quotas).ok()
    }
}

#[cfg(test)]
mod tests;
