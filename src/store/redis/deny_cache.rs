//! A local, bounded cache of keys Redis has just denied (as envoy's ratelimit service
//! keeps one): their repeated requests are answered here, without a round trip.
//!
//! Each entry remembers the TATs of the denial and the server's clock at that moment,
//! anchored to this process's monotonic clock *before* the call was sent. A later request
//! is re-decided locally on those TATs with the server clock advanced by the local time
//! elapsed since the anchor. That estimate of "now" is never behind the server's (the
//! server read its clock after the anchor), and TATs only grow, so a cached denial is one
//! Redis would also give; once the local decision would admit, the request goes to Redis.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::gcra::{Conformance, decide};
use crate::quota::{MAX_QUOTAS, Params};

/// Independent locks, so concurrent checks rarely wait on each other.
const SHARDS: usize = 16;

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
    shards: Box<[Mutex<HashMap<String, Entry>>]>,
    hasher: RandomState,
    /// Entries in all shards; checked before any lock, so an empty cache costs one load.
    len: AtomicUsize,
    max_keys: usize,
    origin: Instant,
    last_sweep_us: AtomicU64,
}

/// A full cache is swept for expired entries at most this often.
const SWEEP_GAP_US: u64 = 1_000;

impl DenyCache {
    pub(super) fn new(max_keys: usize) -> Self {
        DenyCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            max_keys,
            origin: Instant::now(),
            last_sweep_us: AtomicU64::new(0),
        }
    }

    fn shard(&self, stem: &str) -> MutexGuard<'_, HashMap<String, Entry>> {
        let i = (self.hasher.hash_one(stem) as usize) % SHARDS;
        // A panic while holding the lock cannot leave an entry half-written (entries are
        // plain copies), so a poisoned shard is still consistent.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Local monotonic time, whole microseconds since the cache was made (rounded down,
    /// so an anchor is never later than the moment it stands for).
    pub(super) fn local_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// The denial to give `stem` now for `cost`, if the cached state still denies it.
    pub(super) fn lookup(&self, stem: &str, params_us: &[Params], cost: u32) -> Option<Hit> {
        if self.len() == 0 {
            return None;
        }
        let entry = *self.shard(stem).get(stem)?;
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
            Conformance::Deny { quota, wait } => Some(Hit {
                now_us,
                tats_us: entry.denial.tats_us,
                quota,
                wait_us: wait,
            }),
            Conformance::Admit(_) => None,
        }
    }

    /// Remembers a denial by Redis whose call was sent at local time `anchor_us`, and
    /// which could be admitted again `wait_us` later.
    pub(super) fn insert(&self, stem: &str, denial: Denial, anchor_us: u64, wait_us: u64) {
        let entry = Entry {
            denial,
            anchor_us,
            until_us: anchor_us.saturating_add(wait_us),
        };
        if self.len() >= self.max_keys {
            self.sweep();
        }
        let mut shard = self.shard(stem);
        if let Some(e) = shard.get_mut(stem) {
            *e = entry;
            return;
        }
        // Reserve a place first, so the bound holds under concurrent inserts. When full
        // of live denials, this one simply goes to Redis next time: evicting a live entry
        // would only trade one round trip for another.
        if self
            .len
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max_keys).then_some(n + 1))
            .is_ok()
        {
            shard.insert(stem.to_owned(), entry);
        }
    }

    /// Forgets `stem` (Redis admitted it).
    pub(super) fn remove(&self, stem: &str) {
        if self.len() > 0 && self.shard(stem).remove(stem).is_some() {
            self.len.fetch_sub(1, Relaxed);
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
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let before = shard.len();
            shard.retain(|_, e| e.until_us > now);
            self.len.fetch_sub(before - shard.len(), Relaxed);
        }
    }
}
