//! [`RateLimitLayer`]: the configuration, built once and shared by every service it wraps.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::event::Stats;
use super::service::RateLimit;
use super::shared::Shared;
use crate::key::{Global, GlobalKey, KeyExtractor};
use crate::store::Tiers;
use crate::store::memory::MemoryStore;

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

    /// Totals since the layer was built, when counting was enabled with
    /// [`RateLimitLayerBuilder::stats`](super::RateLimitLayerBuilder::stats).
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
