//! The script's reply: checked (never trusted to be well-formed) and converted from
//! microseconds to the quota set's unit.

use ::redis::Value;

use crate::decision::Outcome;
use crate::error::StoreError;
use crate::quota::{MAX_QUOTAS, Quotas};

/// Converts the script's microsecond numbers to an [`Outcome`] in the set's unit.
///
/// Levels (`TAT - now`) and waits are rounded up, each on its own, so a level of `k`
/// requests never reads as more than `k` emission intervals of the set and a
/// `retry_after` is never early.
pub(super) fn outcome_from_us(
    quotas: &Quotas,
    now_us: u64,
    tats_us: &[u64],
    cost: u32,
    denied: Option<(usize, u64)>,
) -> Outcome {
    let unit = 1u64 << quotas.shift;
    let now = (now_us * 1000) >> quotas.shift;
    let mut tats = [0u64; MAX_QUOTAS];
    for (t, &us) in tats.iter_mut().zip(tats_us) {
        *t = if us > now_us {
            now + ((us - now_us) * 1000).div_ceil(unit)
        } else {
            (us * 1000) >> quotas.shift
        };
    }
    Outcome::new(
        quotas,
        now,
        tats,
        cost,
        denied.map(|(i, w)| (i, (w * 1000).div_ceil(unit))),
    )
}

/// The script's reply, checked: numbers in µs.
pub(super) struct Reply {
    pub(super) now_us: u64,
    pub(super) denied: Option<(usize, u64)>,
    pub(super) tats_us: [u64; MAX_QUOTAS],
}

/// Largest number the script can return exactly (2^53).
const LUA_EXACT: u64 = 1 << 53;

pub(super) fn parse_reply(value: &Value, quotas: usize) -> Result<Reply, StoreError> {
    let bad = || {
        StoreError::Unavailable(
            format!("unexpected reply from the rate-limit script: {value:?}").into(),
        )
    };
    let Value::Array(items) = value else {
        return Err(bad());
    };
    if items.len() != 3 + quotas {
        return Err(bad());
    }
    let mut nums = [0u64; 3 + MAX_QUOTAS];
    for (n, item) in nums.iter_mut().zip(items) {
        match item {
            Value::Int(i) => match u64::try_from(*i) {
                Ok(v) if v < LUA_EXACT => *n = v,
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        }
    }
    let denied = match nums[1] {
        0 => None,
        i if (i as usize) <= quotas => Some((i as usize - 1, nums[2])),
        _ => return Err(bad()),
    };
    let mut tats_us = [0u64; MAX_QUOTAS];
    tats_us[..quotas].copy_from_slice(&nums[3..3 + quotas]);
    Ok(Reply {
        now_us: nums[0],
        denied,
        tats_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;
    use std::time::Duration;

    #[test]
    fn levels_survive_a_coarse_unit() {
        // Two long quotas need a unit of several microseconds to pack in memory.
        let set = Quotas::new([
            Quota::per_hour(4).expect("valid"),
            Quota::new(120, Duration::from_secs(86_400)).expect("valid"),
        ])
        .expect("valid set");
        assert!(set.resolution() > Duration::from_micros(1));
        let now = 1_763_000_000_123_457;
        let tats = [now + 900_000_000, now + 720_000_000];
        let o = outcome_from_us(&set, now, &tats, 1, None).attach(&set);
        let remaining: Vec<u64> = o.states().map(|s| s.remaining()).collect();
        assert_eq!(remaining, [3, 119], "one request used, not two");
    }

    #[test]
    fn malformed_replies_are_errors() {
        let int = Value::Int;
        let ok = Value::Array(vec![int(10), int(0), int(0), int(12)]);
        assert!(parse_reply(&ok, 1).is_ok());
        for bad in [
            Value::Nil,
            Value::Array(vec![int(10), int(0), int(0)]),
            Value::Array(vec![int(10), int(2), int(5), int(12)]),
            Value::Array(vec![int(-1), int(0), int(0), int(12)]),
            Value::Array(vec![int(10), int(0), int(0), int(1 << 60)]),
            Value::Array(vec![int(10), int(0), int(0), Value::Okay]),
        ] {
            assert!(
                matches!(parse_reply(&bad, 1), Err(StoreError::Unavailable(_))),
                "{bad:?}"
            );
        }
    }
}
