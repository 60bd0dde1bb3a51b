//! The Redis store (feature `redis`): one quota set shared by many processes.
//!
//! Each check is **one round trip**: a Lua script ([`SCRIPT`], called by EVALSHA, with a
//! fallback to EVAL when a restarted or failed-over server answers NOSCRIPT) reads the
//! server's `TIME`, decides over every quota of the set atomically with the same GCRA
//! rule as the in-memory store, and writes the new TATs only when the request is
//! admitted, each with an expiry equal to the time until that quota is equivalent to
//! empty, so Redis holds only active clients.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_ratelimit::Quotas;
//! use tower_ratelimit::store::{Check, Store, Tier};
//! use tower_ratelimit::store::redis::{FailurePolicy, RedisStore};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder(Quotas::claid())
//!     .prefix("api:")
//!     .timeout(Duration::from_millis(50))
//!     .on_failure(FailurePolicy::FallbackLocal)
//!     .connect("redis://127.0.0.1:6379")
//!     .await?;
//! let outcome = match store.check(&"203.0.113.7", Tier(0), 1) {
//!     Check::Ready(r) => r?,      // answered by the deny cache, no round trip
//!     Check::Pending(f) => f.await?,
//! };
//! println!("admitted: {}", outcome.is_allowed());
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! Quota `i` of `key` in tier `t` lives at `{prefix}{t:H}:i` (see
//! [`RedisStore::redis_key`]), where `H` is a keyed hash of the key (32 hex digits), never
//! the key itself: client keys are often credentials, and key names are visible to
//! `SCAN`, `MONITOR`, `SLOWLOG`, persistence files and replicas. Replicas that share a
//! limit must share the hash's secret ([`RedisStoreBuilder::key_secret`], which also says
//! what the default without a secret protects and what it does not). The braces are a
//! Redis Cluster hash tag, so all keys of one decision are in one slot and the store works
//! on a cluster ([`RedisStoreBuilder::connect_cluster`]). Each key holds a TAT in
//! microseconds. The script's arguments carry only these names, never the client key.
//!
//! # Resolution
//!
//! Lua numbers are doubles, exact only below 2^53, so the script counts time in whole
//! **microseconds** since the Unix epoch (nanoseconds would not fit). Emission intervals
//! are rounded **up** to whole microseconds, so the store never admits more than
//! configured; a quota whose interval is a whole number of microseconds (`1000/s`,
//! `4/s`, `120/min`, ...) behaves exactly as in memory. The store's own
//! [`tiers`](crate::store::Store::tiers) carry the rounded intervals, so the headers'
//! `remaining` is what Redis would admit (3/s: an interval of 333 334 µs). Results are
//! converted to the set's unit ([`Quotas::resolution`](crate::Quotas::resolution)),
//! rounding TATs and waits up.
//!
//! # Failures
//!
//! A check waits at most the configured timeout, then follows the [`FailurePolicy`]:
//! fail open, fail closed (a [`StoreError`] the middleware turns into 503 with
//! `Retry-After: 1`), or fall back to a local in-memory limiter with the same quotas. The
//! connection reconnects in the background, a connection that falls silent without
//! breaking is replaced after a few timeouts in a row, and the script is reloaded on
//! NOSCRIPT, so the store recovers by itself when Redis returns.
//!
//! # Deny cache
//!
//! Keys Redis has just denied are kept in a bounded local cache (as envoy's ratelimit
//! service does) until they could be admitted again: an over-limit client's repeated
//! requests are denied locally, costing Redis nothing. A cached denial is one Redis would
//! also give (see `deny_cache.rs` for why); it may end up to one round trip early, when
//! another replica's admission would have kept the key denied a little longer.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use crate::decision::Outcome;
use crate::error::{CheckError, ReloadError, StoreError};
use crate::interval_gate::IntervalGate;
use crate::quota::{MAX_QUOTAS, Params, Quotas};
use crate::store::generations::Generations;
use crate::store::memory::MemoryStore;
use crate::store::{Check, Store, Tier, Tiers};

mod breaker;
mod config;
mod conn;
mod deny_cache;
mod key_name;
mod reply;

use breaker::Breaker;
pub use config::{
    ConnectError, DEFAULT_BREAKER_AFTER, DEFAULT_DENY_CACHE, DEFAULT_PREFIX, DEFAULT_TIMEOUT,
    FailurePolicy, RedisStoreBuilder,
};
use conn::{Call, Connection};
use deny_cache::{Denial, DenyCache};
use key_name::KeyNames;
use reply::{Reply, outcome_from_us, parse_reply};

/// The Lua script behind every check. Its header documents the keys, the arguments
/// and the reply.
pub const SCRIPT: &str = include_str!("redis/script.lua");

/// A [`Store`] on Redis or Redis Cluster, shared by every process that uses the same
/// Redis and key prefix. Cheap to clone (clones share the connection and the cache).
///
/// Keys are anything that implements [`Display`](fmt::Display) (the key extractors'
/// keys do). See the [module docs](self) for the semantics, resolution and failure
/// handling.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Histogram of script calls (feature `metrics`), labelled `outcome` = ok, error, timeout.
#[cfg(feature = "metrics")]
const REDIS_CALL_SECONDS: &str = "tower_ratelimit_redis_call_duration_seconds";

struct Inner {
    /// Every configuration so far: the tiers and, per tier, the script's arguments.
    gens: Generations<Gen>,
    /// Serialises reloads.
    reloading: std::sync::Mutex<()>,
    conn: Connection,
    prefix: String,
    key_names: KeyNames,
    timeout: std::time::Duration,
    policy: FailurePolicy,
    local: Option<MemoryStore<String>>,
    cache: Option<DenyCache>,
    round_trips: AtomicU64,
    cache_hits: AtomicU64,
    failures: AtomicU64,
    /// Checks the open breaker answered by the policy without asking Redis.
    short_circuited: AtomicU64,
    /// Background probes sent while the breaker was open.
    probes: AtomicU64,
    breaker: Arc<Breaker>,
    /// Failure warnings go out at most once a second.
    warn_gate: IntervalGate,
}

/// One configuration generation.
struct Gen {
    tiers: Tiers,
    /// Per tier: the script's quota arguments and the same parameters in µs.
    scripts: Vec<TierScript>,
}

impl Gen {
    /// `reloaded`: a later generation, whose calls ask the script to clamp levels carried
    /// from an earlier configuration.
    fn new(tiers: Tiers, reloaded: bool) -> Self {
        let scripts = tiers.iter().map(|q| TierScript::new(q, reloaded)).collect();
        Gen { tiers, scripts }
    }

    fn quotas(&self, t: usize) -> &Quotas {
        self.tiers
            .get(Tier(t))
            .unwrap_or_else(|| self.tiers.default_set())
    }
}

struct TierScript {
    /// `T_1, cap_1, ...` in microseconds, formatted once.
    args: Vec<String>,
    /// The same in [`Params`] form (µs), for the deny cache's local decisions.
    params_us: Vec<Params>,
}

impl TierScript {
    fn new(quotas: &Quotas, clamp: bool) -> Self {
        let mut args = Vec::with_capacity(2 * quotas.len() + 1);
        let mut params_us = Vec::with_capacity(quotas.len());
        for q in quotas {
            // Rounded up: never admit more than configured.
            let t = q.t_ns().div_ceil(1000);
            let burst = u64::from(q.burst());
            let cap = t * burst;
            args.push(t.to_string());
            args.push(cap.to_string());
            params_us.push(Params {
                t,
                burst,
                cap,
                offset: 0,
                width: 64,
            });
        }
        if clamp {
            args.push("1".to_owned());
        }
        TierScript { args, params_us }
    }
}

/// `tiers` with every emission interval rounded up to whole microseconds (a set that
/// would no longer fit keeps its own intervals; the script rounds those itself).
fn micros_tiers(tiers: &Tiers) -> Tiers {
    tiers.map_sets(|q| q.rounded_to_micros().unwrap_or_else(|| q.clone()))
}

/// Counters of what a store has done since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Checks answered by Redis.
    pub round_trips: u64,
    /// Checks denied by the local deny cache, without a round trip.
    pub cache_hits: u64,
    /// Checks where Redis failed or timed out (and the failure policy answered): each of
    /// them waited for Redis, up to the timeout.
    pub failures: u64,
    /// Checks answered by the failure policy at once, without asking Redis, because the
    /// breaker was open (Redis failed several times in a row).
    pub short_circuited: u64,
    /// Background probes (`PING`, one at a time) sent while the breaker was open.
    pub probes: u64,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("tiers", &self.inner.gens.current().1.tiers)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Starts configuring a store for `tiers` (or a single [`Quotas`] set).
    pub fn builder(tiers: impl Into<Tiers>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(tiers.into())
    }

    fn from_parts(mut b: RedisStoreBuilder, conn: Connection) -> Self {
        // The script counts in whole microseconds: decisions, headers and the local
        // fallback all use the intervals it enforces, so `remaining` says what Redis
        // would admit.
        b.tiers = micros_tiers(&b.tiers);
        let local =
            (b.policy == FailurePolicy::FallbackLocal).then(|| MemoryStore::new(b.tiers.clone()));
        let cache = (b.deny_cache > 0).then(|| DenyCache::new(b.deny_cache));
        let key_names = b.names();
        RedisStore {
            inner: Arc::new(Inner {
                gens: Generations::new(Gen::new(b.tiers, false)),
                reloading: std::sync::Mutex::new(()),
                conn,
                prefix: b.prefix,
                key_names,
                timeout: b.timeout,
                policy: b.policy,
                local,
                cache,
                round_trips: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                short_circuited: AtomicU64::new(0),
                probes: AtomicU64::new(0),
                breaker: Arc::new(Breaker::new(b.breaker_after)),
                warn_gate: IntervalGate::per_second(),
            }),
        }
    }

    /// The Redis key holding quota `quota` of `key` in `tier`:
    /// `{prefix}{tier:H}:quota`, `H` being the keyed hash of `key` (or `key` itself with
    /// [`raw_key_names`](RedisStoreBuilder::raw_key_names)). For inspection and tests;
    /// the store builds it itself.
    pub fn redis_key(&self, key: &impl fmt::Display, tier: Tier, quota: usize) -> String {
        let mut s = self.inner.stem(key, tier.0);
        let _ = write!(s, ":{quota}");
        s
    }

    /// Replaces the quota sets while requests flow; returns once checks use the new
    /// sets.
    ///
    /// The quotas travel to Redis as script arguments with every call, so a process
    /// decides with whatever sets it holds: **each replica converges when its own store
    /// is reloaded** (say, every process watches the same config file, or receives the
    /// same admin call). Meanwhile each decision is still atomic under one set, the one of
    /// the process that asked, over the shared state: a replica still on a larger
    /// capacity reads a TAT that a reloaded one clamped and may admit more than the new
    /// set would, so roll a change out to every replica at about the same time. A key's state in Redis (one TAT per quota, by position in
    /// the set) carries over as it is, clamped on touch by the script to the new
    /// capacity (`TAT <= now + burst * T`, stored at the first touch), so nobody waits
    /// longer than the new
    /// tolerance and no key gets more than the new burst; keep the order of a set's
    /// quotas when changing them (a position that changes meaning carries the old
    /// quota's level). Plans keep their handles, as in
    /// [`MemoryStore::reload`](crate::store::memory::MemoryStore::reload), whose rules
    /// apply; the local fallback store, if any, is reloaded too.
    pub fn reload(&self, tiers: impl Into<Tiers>) -> Result<(), ReloadError> {
        let inner = &*self.inner;
        let _serial = inner
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tiers = micros_tiers(&inner.gens.current().1.tiers.successor(tiers.into())?);
        if let Some(local) = &inner.local {
            local.reload(tiers.clone())?;
        }
        let g = inner
            .gens
            .push(Gen::new(tiers, true))
            .map_err(|_| ReloadError::TooManyReloads)?;
        inner.gens.publish(g);
        Ok(())
    }

    /// What the store has done so far.
    pub fn stats(&self) -> RedisStats {
        RedisStats {
            round_trips: self.inner.round_trips.load(Relaxed),
            cache_hits: self.inner.cache_hits.load(Relaxed),
            failures: self.inner.failures.load(Relaxed),
            short_circuited: self.inner.short_circuited.load(Relaxed),
            probes: self.inner.probes.load(Relaxed),
        }
    }

    /// Number of keys in the deny cache (at most the configured bound).
    pub fn deny_cache_len(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, DenyCache::len)
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.policy
    }

    /// **Tests only**: one decision by the script at the injected time `now_us`
    /// (microseconds) instead of the server's clock, bypassing the deny cache and the
    /// failure policy. Keys written this way live one minute longer than their TATs,
    /// since the server's expiry clock does not follow the injected one.
    #[doc(hidden)]
    pub async fn check_at_micros(
        &self,
        key: &impl fmt::Display,
        tier: Tier,
        cost: u32,
        now_us: u64,
    ) -> Result<Outcome, StoreError> {
        let (g, config) = self.inner.gens.current();
        let t = tier_index(config, tier)?;
        config.quotas(t).check_cost(cost)?;
        let stem = self.inner.stem(key, t);
        let reply = self
            .inner
            .call(config, &stem, t, cost, Some(now_us))
            .await?;
        Ok(outcome(config, t, &reply, cost).in_generation(g))
    }
}

fn tier_index(config: &Gen, tier: Tier) -> Result<usize, CheckError> {
    config.tiers.resolve(tier).map(|_| tier.0)
}

fn outcome(config: &Gen, t: usize, r: &Reply, cost: u32) -> Outcome {
    let quotas = config.quotas(t);
    outcome_from_us(quotas, r.now_us, &r.tats_us[..quotas.len()], cost, r.denied)
}

impl Inner {
    fn stem(&self, key: &(impl fmt::Display + ?Sized), t: usize) -> String {
        let mut s = String::with_capacity(self.prefix.len() + 40);
        s.push_str(&self.prefix);
        let _ = write!(s, "{{{t}:");
        self.key_names.write(&mut s, key);
        s.push('}');
        s
    }

    /// One script call, bounded by the timeout.
    async fn call(
        &self,
        config: &Gen,
        stem: &str,
        t: usize,
        cost: u32,
        now_us: Option<u64>,
    ) -> Result<Reply, StoreError> {
        let quotas = config.quotas(t).len();
        let call = Call {
            stem,
            quotas,
            cost,
            now_us,
            params: &config.scripts[t].args,
        };
        let conn = self.conn.get();
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.timeout, conn.eval(&call)).await {
            Ok(Ok(value)) => parse_reply(&value, quotas),
            // Connecting has its own timeout, which may fire first.
            Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout),
            Ok(Err(e)) => Err(StoreError::Unavailable(Box::new(e))),
            Err(_) => Err(StoreError::Timeout),
        };
        #[cfg(feature = "metrics")]
        {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(StoreError::Timeout) => "timeout",
                Err(_) => "error",
            };
            metrics::histogram!(REDIS_CALL_SECONDS, "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
        }
        match &result {
            Err(StoreError::Timeout) => {
                self.conn.timed_out();
                self.breaker.failure();
            }
            Ok(_) => {
                self.conn.answered();
                self.breaker.success();
            }
            Err(_) => self.breaker.failure(),
        }
        result
    }

    /// One probe while the breaker is open: `PING`, bounded by the timeout.
    async fn probe(self: Arc<Self>, guard: breaker::ProbeGuard) {
        self.probes.fetch_add(1, Relaxed);
        let conn = self.conn.get();
        match tokio::time::timeout(self.timeout, conn.ping()).await {
            Ok(Ok(())) => {
                self.conn.answered();
                self.breaker.success();
            }
            Ok(Err(e)) => {
                if e.is_timeout() {
                    self.conn.timed_out();
                }
                self.breaker.probe_failed();
            }
            Err(_) => {
                self.conn.timed_out();
                self.breaker.probe_failed();
            }
        }
        drop(guard);
    }

    /// A check while the breaker is open: the policy's answer now, and a background
    /// probe if one is due.
    fn short_circuit(
        self: &Arc<Self>,
        config: &Gen,
        g: u32,
        stem: &str,
        t: usize,
        cost: u32,
    ) -> Result<Outcome, StoreError> {
        if let Some(guard) = self.breaker.try_probe() {
            // Without a runtime (a check outside tokio) the next check in one will probe.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(Arc::clone(self).probe(guard));
            }
        }
        self.short_circuited.fetch_add(1, Relaxed);
        let e = StoreError::Unavailable("Redis failing; circuit breaker open".into());
        self.warn(&e);
        self.by_policy(e, config, g, stem, t, cost)
    }

    /// A full check on Redis: the call, the deny cache's bookkeeping, the failure policy.
    async fn decide(
        self: Arc<Self>,
        g: u32,
        stem: String,
        t: usize,
        cost: u32,
    ) -> Result<Outcome, StoreError> {
        let Some(config) = self.gens.get(g) else {
            unreachable!("generations are never removed");
        };
        let anchor = self.cache.as_ref().map(DenyCache::local_us);
        match self.call(config, &stem, t, cost, None).await {
            Ok(reply) => {
                self.round_trips.fetch_add(1, Relaxed);
                if let (Some(cache), Some(anchor)) = (&self.cache, anchor) {
                    match reply.denied {
                        Some((_, wait_us)) => cache.insert(
                            &stem,
                            Denial {
                                now_us: reply.now_us,
                                tats_us: reply.tats_us,
                            },
                            anchor,
                            wait_us,
                        ),
                        None => cache.remove(&stem),
                    }
                }
                Ok(outcome(config, t, &reply, cost).in_generation(g))
            }
            Err(e) => self.fail(e, config, g, &stem, t, cost),
        }
    }

    fn fail(
        &self,
        e: StoreError,
        config: &Gen,
        g: u32,
        stem: &str,
        t: usize,
        cost: u32,
    ) -> Result<Outcome, StoreError> {
        self.failures.fetch_add(1, Relaxed);
        self.warn(&e);
        self.by_policy(e, config, g, stem, t, cost)
    }

    /// The failure policy's answer to a check Redis could not decide, under
    /// configuration `config` (generation `g`).
    fn by_policy(
        &self,
        e: StoreError,
        config: &Gen,
        g: u32,
        stem: &str,
        t: usize,
        cost: u32,
    ) -> Result<Outcome, StoreError> {
        match self.policy {
            FailurePolicy::FailOpen => {
                let quotas = config.quotas(t);
                let mut tats = [0u64; MAX_QUOTAS];
                for (tat, p) in tats.iter_mut().zip(quotas.params()) {
                    *tat = u64::from(cost) * p.t;
                }
                Ok(Outcome::new(quotas, 0, tats, cost, None).in_generation(g))
            }
            FailurePolicy::FailClosed => Err(e),
            FailurePolicy::FallbackLocal => match &self.local {
                // The local store is reloaded with this one, so its generations match.
                Some(local) => match local.check(&stem.to_owned(), Tier(t), cost) {
                    Check::Ready(r) => r,
                    Check::Pending(_) => unreachable!("the memory store always answers at once"),
                },
                None => Err(e),
            },
        }
    }

    /// A warning event, at most one per second per store.
    fn warn(&self, e: &StoreError) {
        if self.warn_gate.open() {
            tracing::warn!(
                target: "tower_ratelimit",
                error = %e,
                policy = ?self.policy,
                failures = self.failures.load(Relaxed),
                "rate-limit store: Redis did not answer; applying the failure policy"
            );
        }
    }
}

/// The future of a check that goes to Redis.
pub struct RedisCheck(Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>);

impl fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCheck").finish_non_exhaustive()
    }
}

impl Future for RedisCheck {
    type Output = Result<Outcome, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// The middleware keeps a ready clone of the wrapped service while Redis decides.
impl<Svc: Clone> super::CheckFuture<Svc> for RedisCheck {
    fn defer(self, service: &mut Svc) -> super::Defer<Self, Svc> {
        super::Defer::Later(self, super::take_ready(service))
    }
}

impl<K: fmt::Display> Store<K> for RedisStore {
    type Future = RedisCheck;

    fn check(&self, key: &K, tier: Tier, cost: u32) -> Check<RedisCheck> {
        let inner = &self.inner;
        let (g, config) = inner.gens.current();
        let t = match tier_index(config, tier) {
            Ok(t) => t,
            Err(e) => return Check::Ready(Err(e.into())),
        };
        if let Err(e) = config.quotas(t).check_cost(cost) {
            return Check::Ready(Err(e.into()));
        }
        let stem = inner.stem(key, t);
        if let Some(cache) = &inner.cache
            && let Some(hit) = cache.lookup(&stem, &config.scripts[t].params_us, cost)
        {
            inner.cache_hits.fetch_add(1, Relaxed);
            let quotas = config.quotas(t);
            return Check::Ready(Ok(outcome_from_us(
                quotas,
                hit.now_us,
                &hit.tats_us[..quotas.len()],
                cost,
                Some((hit.quota, hit.wait_us)),
            )
            .in_generation(g)));
        }
        if inner.breaker.is_open() {
            return Check::Ready(inner.short_circuit(config, g, &stem, t, cost));
        }
        let inner = Arc::clone(&self.inner);
        Check::Pending(RedisCheck(Box::pin(inner.decide(g, stem, t, cost))))
    }

    fn tiers(&self) -> &Tiers {
        &self.inner.gens.current().1.tiers
    }

    fn tiers_of(&self, generation: u32) -> &Tiers {
        match self.inner.gens.get(generation) {
            Some(config) => &config.tiers,
            None => &self.inner.gens.current().1.tiers,
        }
    }

    fn reload(&self, tiers: Tiers) -> Result<(), ReloadError> {
        RedisStore::reload(self, tiers)
    }
}

/// A Redis reply through the checks and conversion the store applies to the script's
/// answer, for sets of one to four quotas (the fuzz targets' entry point): malformed
/// replies are errors, well-formed ones give decisions whose numbers stay in range and
/// whose headers render.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_reply(value: &::redis::Value) {
    use crate::headers::HeaderStyle;
    use std::time::Duration;

    let q = |n: u32, secs: u64| crate::Quota::new(n, Duration::from_secs(secs)).ok();
    let sets = [
        q(3, 1).map(Quotas::from),
        Some(Quotas::claid()),
        q(10, 1)
            .zip(q(100, 60))
            .zip(q(1000, 3600))
            .and_then(|((a, b), c)| Quotas::new([a, b, c]).ok()),
        q(5, 1)
            .zip(q(50, 60))
            .zip(q(500, 3600))
            .zip(q(5000, 86_400))
            .and_then(|(((a, b), c), d)| Quotas::new([a, b, c, d]).ok()),
    ];
    for set in sets.into_iter().flatten() {
        let set = set.rounded_to_micros().unwrap_or(set);
        let Ok(reply) = parse_reply(value, set.len()) else {
            continue;
        };
        let o = outcome_from_us(
            &set,
            reply.now_us,
            &reply.tats_us[..set.len()],
            1,
            reply.denied,
        );
        let d = o.attach(&set);
        assert_eq!(d.is_allowed(), reply.denied.is_none());
        for s in d.states() {
            assert!(s.remaining() <= u64::from(s.quota().burst()));
        }
        let _ = (d.binding(), d.retry_after(), d.denied_by());
        for style in [
            HeaderStyle::Ietf,
            HeaderStyle::Draft03,
            HeaderStyle::Draft03Claid,
            HeaderStyle::XRateLimit,
        ] {
            let mut h = http::HeaderMap::new();
            style.apply(&d, &mut h);
        }
        let _ = crate::headers::retry_after(&d);
    }
}
