//! The current IETF fields (draft-ietf-httpapi-ratelimit-headers -08 and later):
//! `RateLimit-Policy` and `RateLimit`, Structured Field lists parsed with [`sfv`].

use std::time::Duration;

use sfv::{BareItem, ListEntry, Parser};

use super::PolicyHint;

fn items(value: &[u8]) -> Vec<sfv::Item> {
    // A field that does not parse as a whole is ignored, as the draft requires.
    match Parser::new(value).parse::<sfv::List>() {
        Ok(list) => list
            .into_iter()
            .filter_map(|e| match e {
                ListEntry::Item(i) => Some(i),
                ListEntry::InnerList(_) => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn name(b: &BareItem) -> Option<String> {
    b.as_string()
        .map(|s| s.as_str().to_owned())
        .or_else(|| b.as_token().map(|t| t.as_str().to_owned()))
}

fn non_negative(params: &sfv::Parameters, key: &str) -> Option<u64> {
    params
        .get(key)
        .and_then(BareItem::as_integer)
        .and_then(|i| u64::try_from(i64::from(i)).ok())
}

/// `RateLimit-Policy: "burst";q=4;w=1, "minute";q=120;w=60`: one hint per policy with a
/// quota; items without a valid `q` are skipped.
pub fn parse_ratelimit_policy(value: &[u8]) -> Vec<PolicyHint> {
    items(value)
        .into_iter()
        .filter_map(|i| {
            let quota = non_negative(&i.params, "q")?;
            Some(PolicyHint {
                name: name(&i.bare_item),
                quota,
                window: non_negative(&i.params, "w").map(Duration::from_secs),
                remaining: None,
                reset: None,
            })
        })
        .collect()
}

/// One item of the `RateLimit` field: a policy's remaining quota and time until reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    /// The policy's name.
    pub name: Option<String>,
    /// `r`: remaining quota units.
    pub remaining: Option<u64>,
    /// `t`: time until the quota is available again.
    pub reset: Option<Duration>,
}

/// `RateLimit: "burst";r=0;t=1`.
pub fn parse_ratelimit(value: &[u8]) -> Vec<PolicyState> {
    items(value)
        .into_iter()
        .map(|i| PolicyState {
            name: name(&i.bare_item),
            remaining: non_negative(&i.params, "r"),
            reset: non_negative(&i.params, "t").map(Duration::from_secs),
        })
        .filter(|s| s.remaining.is_some() || s.reset.is_some())
        .collect()
}
