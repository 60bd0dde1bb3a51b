//! draft-03 fields (what Claid sends) and the legacy `X-RateLimit-*` ones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sfv::{BareItem, ListEntry, Parser};

use super::PolicyHint;

/// `RateLimit-Limit: 120, 120;w=60, 4;w=1`: the limit closest to exhaustion, then every
/// policy as `quota;w=seconds` (an SF list of integers). Returns the first value and the
/// policies that carry a window. Malformed fields give `(None, [])`.
pub fn parse_limit(value: &[u8]) -> (Option<u64>, Vec<PolicyHint>) {
    let Ok(list) = Parser::new(value).parse::<sfv::List>() else {
        return (None, Vec::new());
    };
    let mut first = None;
    let mut policies = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let ListEntry::Item(item) = entry else {
            continue;
        };
        let Some(n) = item
            .bare_item
            .as_integer()
            .and_then(|n| u64::try_from(i64::from(n)).ok())
        else {
            continue;
        };
        let window = item
            .params
            .get("w")
            .and_then(BareItem::as_integer)
            .and_then(|w| u64::try_from(i64::from(w)).ok())
            .filter(|&w| w > 0);
        match window {
            Some(w) => policies.push(PolicyHint {
                name: None,
                quota: n,
                window: Some(Duration::from_secs(w)),
                remaining: None,
                reset: None,
            }),
            None if i == 0 => first = Some(n),
            None => {}
        }
    }
    (first, policies)
}

/// An integer field (`RateLimit-Remaining: 118`, `X-RateLimit-Limit: 60`); negative
/// values (Claid's 429 says `-1`) are returned as they are.
pub fn parse_int(value: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(value).ok()?.trim();
    // At most 15 digits, as Structured Field integers.
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds above this are read as a Unix time rather than a delay (`X-RateLimit-Reset`
/// is sent both ways in the wild; no delay is 30 years long).
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// A reset field: delta seconds, or (for large values) a Unix time relative to `now`.
pub fn parse_reset(value: &[u8], now: SystemTime) -> Option<Duration> {
    let n = u64::try_from(parse_int(value)?).ok()?;
    if n < EPOCH_THRESHOLD {
        return Some(Duration::from_secs(n));
    }
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(n))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
