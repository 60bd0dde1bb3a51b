//! A local, bounded cache of keys Redis has just denied (as envoy's ratelimit service
//! keeps one): their repeated requests are answered here, without a round trip.
//!
//! Each entry remembers the TATs of the denial and the server's clock at that moment,
//! anchored to this process's monotonic clock *before* the call was sent. A later request
//! is re-decided locally on those TATs with the server clock advanced by the local time
//! elapsed since the anchor. That estimate of "now" is never behind the server's (the
//! server read its clock after the anchor), and TATs only grow, so a cached denial is one
//! Redis would also give; once the local decision would admit, the request goes to Redis.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::gcra::{Verdict, decide};
use crate::quota::{MAX_QUOTAS, Params};

type Map<K, V> = papaya::HashMap<K, V, foldhash::fast::RandomState>;

/// The TATs of a denial and when it was made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Denial {
    /// The server's clock at the denial, microseconds.
    pub(super) now_us: u64,
    /// Every quota's TAT as stored, microseconds.
    pub(super) tats_us: [u64; MAX_QUOTAS],
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    denial: Denial,
    /// Local clock (µs since the cache's origin) when the call was sent.
    anchor_us: u64,
    /// Local time after which the entry may admit something: dropped by sweeps.
    until_us: u64,
}

/// A cached denial, re-decided now: the server time estimate, the TATs, the denying quota
/// and its wait.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub(super) now_us: u64,
    pub(super) tats_us: [u64; MAX_QUOTAS],
    pub(super) quota: usize,
    pub(super) wait_us: u64,
}

pub(super) struct DenyCache {
    map: Map<String, Entry>,
    max_keys: usize,
    origin: Instant,
    last_sweep_us: AtomicU64,
}

/// A full cache is swept for expired entries at most this often.
const SWEEP_GAP_US: u64 = 1_000;

impl DenyCache {
    pub(super) fn new(max_keys: usize) -> Self {
        DenyCache {
            map: Map::with_hasher(Default::default()),
            max_keys,
            origin: Instant::now(),
            last_sweep_us: AtomicU64::new(0),
        }
    }

    /// Local monotonic time, whole microseconds since the cache was made (rounded down,
    /// so an anchor is never later than the moment it stands for).
    pub(super) fn local_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// The denial to give `stem` now for `cost`, if the cached state still denies it.
    pub(super) fn lookup(&self, stem: &str, params_us: &[Params], cost: u32) -> Option<Hit> {
        if self.map.is_empty() {
            return None;
        }
        let map = self.map.pin();
        let entry = *map.get(stem)?;
        // Rounded up: "now" must not lag the server's clock.
        let elapsed = self.local_us().saturating_sub(entry.anchor_us) + 1;
        let now_us = entry.denial.now_us + elapsed;
        let n = params_us.len();
        match decide(
            params_us,
            now_us,
            &entry.denial.tats_us[..n],
            u64::from(cost),
        ) {
            Verdict::Deny { quota, wait } => Some(Hit {
                now_us,
                tats_us: entry.denial.tats_us,
                quota,
                wait_us: wait,
            }),
            Verdict::Admit(_) => None,
        }
    }

    /// Remembers a denial by Redis whose call was sent at local time `anchor_us`, and
    /// which could be admitted again `wait_us` later.
    pub(super) fn insert(&self, stem: &str, denial: Denial, anchor_us: u64, wait_us: u64) {
        let map = self.map.pin();
        if map.len() >= self.max_keys && !map.contains_key(stem) {
            self.sweep();
            if map.len() >= self.max_keys {
                // Full of live denials: this one simply goes to Redis next time. Evicting a
                // live entry would only trade one round trip for another.
                return;
            }
        }
        let until_us = anchor_us.saturating_add(wait_us);
        map.insert(
            stem.to_owned(),
            Entry {
                denial,
                anchor_us,
                until_us,
            },
        );
    }

    /// Forgets `stem` (Redis admitted it).
    pub(super) fn remove(&self, stem: &str) {
        if !self.map.is_empty() {
            self.map.pin().remove(stem);
        }
    }

    /// Drops entries past their wait; at most once per [`SWEEP_GAP_US`].
    fn sweep(&self) {
        let now = self.local_us();
        let last = self.last_sweep_us.load(Relaxed);
        if now < last.saturating_add(SWEEP_GAP_US)
            || self
                .last_sweep_us
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        self.map.pin().retain(|_, e| e.until_us > now);
    }
}
