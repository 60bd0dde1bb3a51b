//! [`RateLimitLayer`]: the configuration, built once and shared by every service it wraps.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::event::Stats;
use super::service::RateLimit;
use super::shared::Shared;
use crate::error::ReloadError;
use crate::key::{Global, GlobalKey, KeyExtractor};
use crate::store::memory::MemoryStore;
use crate::store::{Store, Tiers};

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
    shared: Arc<Shared<E, S>>,
}

impl<E: KeyExtractor, S> RateLimitLayer<E, S> {
    pub(crate) fn from_shared(shared: Shared<E, S>) -> Self {
        RateLimitLayer {
            shared: Arc::new(shared),
        }
    }

    /// The store (to inspect it, or share it with another layer's builder).
    pub fn store(&self) -> &S {
        &self.shared.store
    }
}

impl<E: KeyExtractor, S: Store<E::Key>> RateLimitLayer<E, S> {
    /// Totals since the layer was built, when counting was enabled with
    /// [`RateLimitLayerBuilder::stats`](super::RateLimitLayerBuilder::stats) (per plan
    /// of the first configuration).
    pub fn stats(&self) -> Option<Stats> {
        self.shared
            .counters
            .as_ref()
            .map(|c| c.snapshot(self.shared.store.tiers_of(0)))
    }

    /// The quota tiers enforced now.
    pub fn tiers(&self) -> &Tiers {
        self.shared.store.tiers()
    }

    /// Replaces the quota sets while requests flow, without losing any client's standing;
    /// headers follow at once. The layer is its own handle: clone it into the task that
    /// watches the configuration. See
    /// [`MemoryStore::reload`](crate::store::memory::MemoryStore::reload) for the exact
    /// rules (how each key's state carries over, plans keep their handles) and
    /// [`RedisStore::reload`](crate::store::redis::RedisStore::reload) for replicas.
    ///
    /// ```
    /// use tower_ratelimit::{Quotas, RateLimitLayer, store::Tiers};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = RateLimitLayer::builder("4/s".parse::<Quotas>()?).build();
    /// layer.reload(Tiers::new("10/s, 300/min".parse::<Quotas>()?))?;
    /// assert_eq!(layer.tiers().default_set().to_string(), "10/s, 300/min");
    /// # Ok(()) }
    /// ```
    pub fn reload(&self, tiers: impl Into<Tiers>) -> Result<(), ReloadError> {
        self.shared.store.reload(tiers.into())
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
