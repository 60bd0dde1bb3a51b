//! [`RateLimitLayer`]: the configuration, built once and shared by every service it wraps.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use tower_layer::Layer;

use crate::builder::{InMemory, RateLimitLayerBuilder, WithStore};
use crate::event::{Counters, DecisionEvent, Stats};
use crate::future::HeaderPlan;
use crate::headers::HeaderStyle;
use crate::key::{Global, GlobalKey, KeyExtractor, RequestHead};
use crate::render::Renderer;
use crate::service::RateLimit;
use crate::store::memory::MemoryStore;
use crate::store::{Tier, Tiers};

pub(crate) type TierFn<K> = Box<dyn Fn(&K) -> Tier + Send + Sync>;
pub(crate) type CostFn = Box<dyn Fn(&RequestHead<'_>) -> u32 + Send + Sync>;
pub(crate) type ExemptFn = Box<dyn Fn(&RequestHead<'_>) -> bool + Send + Sync>;
pub(crate) type EventFn = Box<dyn Fn(&DecisionEvent<'_>) + Send + Sync>;

/// What to do with a request whose key cannot be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingKey {
    /// Pass it on unlimited (no headers). Only sensible when every request that matters
    /// has a key, e.g. anonymous traffic limited elsewhere.
    Allow,
    /// Answer with this status and a short `text/plain` body naming what was missing.
    Reject(http::StatusCode),
}

impl Default for MissingKey {
    /// `Reject(400 Bad Request)`: a limiter that silently stops limiting when its key
    /// source is misconfigured (say, axum served without connect info) is worse than
    /// one that fails loudly.
    fn default() -> Self {
        MissingKey::Reject(http::StatusCode::BAD_REQUEST)
    }
}

/// How rejection and error logs show the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyLog {
    /// A hash of the key, stable for the life of the layer (the default): requests of one
    /// client can be correlated without logging its IP or API key.
    #[default]
    Hashed,
    /// The key itself (its `Display`).
    Raw,
}

pub(crate) struct Shared<E: KeyExtractor, S> {
    pub(crate) store: S,
    pub(crate) extractor: E,
    pub(crate) plan: Arc<HeaderPlan>,
    pub(crate) style: HeaderStyle,
    pub(crate) renderer: Box<dyn Renderer>,
    pub(crate) tier_of: Option<TierFn<E::Key>>,
    pub(crate) cost: Option<CostFn>,
    pub(crate) exempt: Option<ExemptFn>,
    pub(crate) shadow: bool,
    pub(crate) missing: MissingKey,
    pub(crate) on_decision: Option<EventFn>,
    pub(crate) counters: Option<Counters>,
    /// Counters or a hook are set: decisions must be recorded.
    pub(crate) observed: bool,
    pub(crate) key_log: KeyLog,
    pub(crate) hasher: std::hash::RandomState,
    /// Store-error warnings go out at most once a second (an outage must not turn every
    /// request into a log line); the others are logged at debug level.
    pub(crate) warned: WarnGate,
}

/// Lets one warning through per second.
#[derive(Debug)]
pub(crate) struct WarnGate {
    origin: std::time::Instant,
    /// Seconds since `origin` of the last warning, plus one (0 = never).
    last: std::sync::atomic::AtomicU64,
}

impl WarnGate {
    pub(crate) fn new() -> Self {
        WarnGate {
            origin: std::time::Instant::now(),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether this caller may warn now.
    pub(crate) fn open(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.origin.elapsed().as_secs() + 1;
        let last = self.last.load(Relaxed);
        now > last
            && self
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }
}

impl<E: KeyExtractor, S> Shared<E, S> {
    /// The key as logs show it.
    pub(crate) fn log_key<'k>(&'k self, key: &'k E::Key) -> LoggedKey<'k, E::Key> {
        LoggedKey {
            shared_hash: self.hasher.hash_one(key),
            key,
            mode: self.key_log,
        }
    }
}

pub(crate) struct LoggedKey<'k, K> {
    shared_hash: u64,
    key: &'k K,
    mode: KeyLog,
}

impl<K: fmt::Display> fmt::Display for LoggedKey<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            KeyLog::Hashed => write!(f, "{:016x}", self.shared_hash),
            KeyLog::Raw => self.key.fmt(f),
        }
    }
}

/// A tower [`Layer`] that rate-limits requests per key against a set of quotas.
///
/// All state lives behind an `Arc` created when the layer is built: every service the
/// layer wraps, every clone of those services, and every route axum re-layers share one
/// limiter. [`Layer::layer`] only clones that handle.
///
/// ```
/// use tower_ratelimit::{RateLimitLayer, Quotas, headers::HeaderStyle, key::PeerIp};
/// let layer = RateLimitLayer::builder(Quotas::claid())
///     .key(PeerIp)
///     .headers(HeaderStyle::Draft03)
///     .build();
/// # let _ = layer;
/// ```
pub struct RateLimitLayer<E: KeyExtractor = GlobalKey, S = MemoryStore<Global>> {
    pub(crate) shared: Arc<Shared<E, S>>,
}

impl RateLimitLayer<GlobalKey, MemoryStore<Global>> {
    /// A builder over the in-process store with `tiers` (a [`Quotas`](crate::Quotas) set,
    /// or [`Tiers`] with per-plan overrides). The key defaults to [`GlobalKey`].
    pub fn builder(tiers: impl Into<Tiers>) -> RateLimitLayerBuilder<GlobalKey, InMemory> {
        RateLimitLayerBuilder::new(InMemory::new(tiers.into()), GlobalKey)
    }

    /// A builder over a custom store (Redis, or a [`MemoryStore`] on a manual clock).
    /// The store's key type must match the extractor's, checked at
    /// [`build`](RateLimitLayerBuilder::build).
    pub fn with_store<S>(store: S) -> RateLimitLayerBuilder<GlobalKey, WithStore<S>> {
        RateLimitLayerBuilder::new(WithStore(store), GlobalKey)
    }
}

impl<E: KeyExtractor, S> RateLimitLayer<E, S> {
    /// Totals since the layer was built, when counting was enabled with
    /// [`RateLimitLayerBuilder::stats`].
    pub fn stats(&self) -> Option<Stats> {
        self.shared
            .counters
            .as_ref()
            .map(|c| c.snapshot(&self.shared.plan.tiers))
    }

    /// The store (to inspect it, or share it with another layer's builder).
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// The quota tiers enforced.
    pub fn tiers(&self) -> &Tiers {
        &self.shared.plan.tiers
    }
}

impl<E: KeyExtractor, S> Clone for RateLimitLayer<E, S> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E: KeyExtractor, S> fmt::Debug for RateLimitLayer<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("tiers", &self.shared.plan.tiers)
            .field("headers", &self.shared.style)
            .field("shadow", &self.shared.shadow)
            .field("missing_key", &self.shared.missing)
            .finish_non_exhaustive()
    }
}

impl<Inner, E: KeyExtractor, S> Layer<Inner> for RateLimitLayer<E, S> {
    type Service = RateLimit<Inner, E, S>;

    fn layer(&self, inner: Inner) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::WarnGate;

    #[test]
    fn warn_gate_lets_one_warning_through_per_second() {
        let gate = WarnGate::new();
        assert!(gate.open(), "the first error warns");
        assert!(!gate.open(), "the next ones in the same second do not");
        assert!(!gate.open());
    }
}
