//! [`RateLimitLayerBuilder`]: how a [`RateLimitLayer`] is configured.

use std::fmt;
use std::sync::Arc;

use super::event::{Counters, DecisionEvent};
use super::layer::RateLimitLayer;
use super::shared::{CostFn, EventFn, ExemptFn, KeyLog, MissingKey, Shared, TierFn};
use crate::clock::{Clock, DefaultClock};
use crate::headers::{HeaderPlan, HeaderStyle};
use crate::interval_gate::IntervalGate;
use crate::key::{Global, GlobalKey, KeyExtractor, RequestHead};
use crate::render::{ProblemJson, Renderer};
use crate::store::memory::{AtCapacity, MemoryStore};
use crate::store::{Store, Tier, Tiers};

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

/// Store source of a builder: the in-process [`MemoryStore`] on clock `C`, created at
/// [`build`](RateLimitLayerBuilder::build) for the key type chosen by then.
#[derive(Debug)]
pub struct InMemory<C = DefaultClock> {
    tiers: Tiers,
    max_keys: Option<usize>,
    clock: C,
    at_capacity: AtCapacity,
}

impl InMemory {
    pub(crate) fn new(tiers: Tiers) -> Self {
        InMemory {
            tiers,
            max_keys: None,
            clock: DefaultClock::new(),
            at_capacity: AtCapacity::default(),
        }
    }
}

/// Tier-resolver state of a builder: none set yet, so the key may still change.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

/// Tier-resolver state of a builder: a resolver for the current key type is set, so
/// [`key`](RateLimitLayerBuilder::key) is no longer available (it would drop it).
#[derive(Debug, Clone, Copy, Default)]
pub struct HasResolver;

/// Store source of a builder: a store supplied by the caller.
#[derive(Debug)]
pub struct WithStore<S>(pub(crate) S);

/// Configures a [`RateLimitLayer`]; see [`RateLimitLayer::builder`].
///
/// Call [`key`](Self::key) before [`tiers`](Self::tiers): the tier resolver takes the
/// key type, so `key` after `tiers` does not compile rather than drop the resolver:
///
/// ```compile_fail
/// use tower_ratelimit::{Quotas, RateLimitLayer, key::PeerIp, store::Tier};
/// let layer = RateLimitLayer::builder(Quotas::claid())
///     .tiers(|_| Tier::DEFAULT)
///     .key(PeerIp::new())
///     .build();
/// ```
pub struct RateLimitLayerBuilder<E: KeyExtractor, Src, R = NoResolver> {
    resolver: std::marker::PhantomData<R>,
    src: Src,
    extractor: E,
    style: HeaderStyle,
    renderer: Option<Box<dyn Renderer>>,
    tier_of: Option<TierFn<E::Key>>,
    cost: Option<CostFn>,
    exempt: Option<ExemptFn>,
    shadow: bool,
    missing: MissingKey,
    on_decision: Option<EventFn>,
    stats: bool,
    key_log: KeyLog,
    metrics: Option<Option<std::borrow::Cow<'static, str>>>,
}

impl<E: KeyExtractor, Src: fmt::Debug, R> fmt::Debug for RateLimitLayerBuilder<E, Src, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("store", &self.src)
            .field("headers", &self.style)
            .field("shadow", &self.shadow)
            .field("missing_key", &self.missing)
            .finish_non_exhaustive()
    }
}

impl<E: KeyExtractor, Src> RateLimitLayerBuilder<E, Src> {
    pub(crate) fn new(src: Src, extractor: E) -> Self {
        RateLimitLayerBuilder {
            resolver: std::marker::PhantomData,
            src,
            extractor,
            style: HeaderStyle::default(),
            renderer: None,
            tier_of: None,
            cost: None,
            exempt: None,
            shadow: false,
            missing: MissingKey::default(),
            on_decision: None,
            stats: false,
            key_log: KeyLog::default(),
            metrics: None,
        }
    }

    /// How requests are keyed (default: one global key). Only before
    /// [`tiers`](Self::tiers), whose resolver takes the key type.
    pub fn key<E2: KeyExtractor>(self, extractor: E2) -> RateLimitLayerBuilder<E2, Src> {
        RateLimitLayerBuilder {
            resolver: std::marker::PhantomData,
            src: self.src,
            extractor,
            style: self.style,
            renderer: self.renderer,
            tier_of: None,
            cost: self.cost,
            exempt: self.exempt,
            shadow: self.shadow,
            missing: self.missing,
            on_decision: self.on_decision,
            stats: self.stats,
            key_log: self.key_log,
            metrics: self.metrics,
        }
    }

    /// Maps a key to its plan: return a [`Tier`] handle taken by name when the layer is
    /// built ([`Tiers::tier`]). A handle the store does not have is answered `500` (a
    /// configuration error, logged), never counted against the default set.
    ///
    /// ```
    /// use tower_ratelimit::{Quotas, RateLimitLayer, key::{HeaderKey, HeaderToken}};
    /// use tower_ratelimit::store::{Tier, Tiers};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tiers = Tiers::new("4/s".parse::<Quotas>()?).plan("pro", "40/s".parse::<Quotas>()?);
    /// let pro = tiers.tier("pro").ok_or("no pro plan")?;
    /// let layer = RateLimitLayer::builder(tiers)
    ///     .key(HeaderKey::bearer())
    ///     .tiers(move |key: &HeaderToken| {
    ///         if key.as_str().starts_with("pro_") { pro } else { Tier::DEFAULT }
    ///     })
    ///     .build();
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    pub fn tiers(
        self,
        resolver: impl Fn(&E::Key) -> Tier + Send + Sync + 'static,
    ) -> RateLimitLayerBuilder<E, Src, HasResolver> {
        let RateLimitLayerBuilder {
            src,
            extractor,
            style,
            renderer,
            tier_of: _,
            cost,
            exempt,
            shadow,
            missing,
            on_decision,
            stats,
            key_log,
            metrics,
            ..
        } = self;
        RateLimitLayerBuilder {
            resolver: std::marker::PhantomData,
            src,
            extractor,
            style,
            renderer,
            tier_of: Some(Box::new(resolver)),
            cost,
            exempt,
            shadow,
            missing,
            on_decision,
            stats,
            key_log,
            metrics,
        }
    }
}

impl<E: KeyExtractor, Src, R> RateLimitLayerBuilder<E, Src, R> {
    /// Which rate-limit header fields to add to admitted responses and rejections
    /// (default [`HeaderStyle::Ietf`]). Rejections carry `Retry-After` in every style.
    pub fn headers(mut self, style: HeaderStyle) -> Self {
        self.style = style;
        self
    }

    /// How denied requests are answered (default: RFC 9457 problem+json, 429).
    pub fn renderer(mut self, renderer: impl Renderer) -> Self {
        self.renderer = Some(Box::new(renderer));
        self
    }

    /// The cost of a request (default 1), e.g. 10 for a batch endpoint. A cost of 0
    /// exempts the request. A cost above the smallest burst can never be admitted and
    /// is answered `413 Content Too Large` (not 429: waiting would not help).
    pub fn cost(mut self, cost: impl Fn(&RequestHead<'_>) -> u32 + Send + Sync + 'static) -> Self {
        self.cost = Some(Box::new(cost));
        self
    }

    /// Requests for which the predicate is true pass unchecked and uncounted (health
    /// checks, internal callers).
    pub fn exempt(
        mut self,
        exempt: impl Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.exempt = Some(Box::new(exempt));
        self
    }

    /// Dry run: decide, add headers, record and log, but never reject. How a new limit
    /// is rolled out safely.
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// The answer to a request without a key (default `Reject(400)`).
    pub fn on_missing_key(mut self, missing: MissingKey) -> Self {
        self.missing = missing;
        self
    }

    /// A hook called with every decision (admitted, denied, shadow-denied, exempt, key
    /// missing, store error), e.g. to count per policy. It runs on the request path.
    pub fn on_decision(
        mut self,
        hook: impl Fn(&DecisionEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_decision = Some(Box::new(hook));
        self
    }

    /// Keeps built-in counters, read with [`RateLimitLayer::stats`] (default off: a
    /// counter shared by every request is a contended cache line on many cores).
    pub fn stats(mut self, enabled: bool) -> Self {
        self.stats = enabled;
        self
    }

    /// Exports every decision through the [`metrics`](https://docs.rs/metrics) facade
    /// (feature `metrics`): `tower_ratelimit_requests_total` and
    /// `tower_ratelimit_near_limit_total`, labelled with `layer` (this name, if given),
    /// `plan`, `policy` and `verdict`, never the client key. Install the recorder before
    /// building the layer. See the README for the full list.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, layer: Option<&'static str>) -> Self {
        self.metrics = Some(layer.map(std::borrow::Cow::Borrowed));
        self
    }

    /// How logs show keys (default hashed).
    pub fn log_keys(mut self, mode: KeyLog) -> Self {
        self.key_log = mode;
        self
    }

    fn split(self) -> (Src, RateLimitLayerBuilder<E, ()>) {
        let RateLimitLayerBuilder {
            resolver: _,
            src,
            extractor,
            style,
            renderer,
            tier_of,
            cost,
            exempt,
            shadow,
            missing,
            on_decision,
            stats,
            key_log,
            metrics,
        } = self;
        (
            src,
            RateLimitLayerBuilder {
                resolver: std::marker::PhantomData,
                src: (),
                extractor,
                style,
                renderer,
                tier_of,
                cost,
                exempt,
                shadow,
                missing,
                on_decision,
                stats,
                key_log,
                metrics,
            },
        )
    }
}

impl<E: KeyExtractor> RateLimitLayerBuilder<E, ()> {
    fn finish<S: Store<E::Key>>(self, store: S) -> RateLimitLayer<E, S> {
        let plan = Arc::new(HeaderPlan::new(store.tiers().clone(), self.style));
        let counters = self.stats.then(|| Counters::new(store.tiers()));
        #[cfg(feature = "metrics")]
        let metrics = self
            .metrics
            .map(|layer| super::metrics::Metrics::new(layer, store.tiers()));
        #[cfg(feature = "metrics")]
        let observed = counters.is_some() || self.on_decision.is_some() || metrics.is_some();
        #[cfg(not(feature = "metrics"))]
        let observed = counters.is_some() || self.on_decision.is_some();
        RateLimitLayer::from_shared(Shared {
            store,
            extractor: self.extractor,
            plan,
            style: self.style,
            renderer: self
                .renderer
                .unwrap_or_else(|| Box::new(ProblemJson::default())),
            tier_of: self.tier_of,
            cost: self.cost,
            exempt: self.exempt,
            shadow: self.shadow,
            missing: self.missing,
            on_decision: self.on_decision,
            observed,
            counters,
            #[cfg(feature = "metrics")]
            metrics,
            key_log: self.key_log,
            hasher: std::hash::RandomState::new(),
            warned: IntervalGate::per_second(),
        })
    }
}

impl<E: KeyExtractor, C, R> RateLimitLayerBuilder<E, InMemory<C>, R> {
    /// Caps the keys the in-process store tracks per tier. At the cap a new key gets the
    /// [`at_capacity`](Self::at_capacity) policy: by default 503 with `Retry-After: 1`
    /// until expired keys are swept (see [`KeyedRateLimiter`](crate::KeyedRateLimiter)).
    /// Tracked keys are never evicted.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.src.max_keys = Some(max_keys);
        self
    }

    /// The clock of the in-process store (default [`DefaultClock`]), e.g. a
    /// [`ManualClock`](crate::clock::ManualClock) in tests.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_ratelimit::{Quotas, RateLimitLayer, clock::ManualClock};
    /// let clock = ManualClock::new();
    /// let layer = RateLimitLayer::builder(Quotas::claid()).clock(clock.clone()).build();
    /// clock.advance(Duration::from_secs(1));
    /// # let _ = layer;
    /// ```
    pub fn clock<C2: Clock + Clone>(self, clock: C2) -> RateLimitLayerBuilder<E, InMemory<C2>, R> {
        let RateLimitLayerBuilder {
            resolver,
            src,
            extractor,
            style,
            renderer,
            tier_of,
            cost,
            exempt,
            shadow,
            missing,
            on_decision,
            stats,
            key_log,
            metrics,
        } = self;
        RateLimitLayerBuilder {
            resolver,
            src: InMemory {
                tiers: src.tiers,
                max_keys: src.max_keys,
                at_capacity: src.at_capacity,
                clock,
            },
            extractor,
            style,
            renderer,
            tier_of,
            cost,
            exempt,
            shadow,
            missing,
            on_decision,
            stats,
            key_log,
            metrics,
        }
    }

    /// What a new key gets once [`max_keys`](Self::max_keys) keys are tracked:
    /// [`AtCapacity::Reject`] (503, the default) or [`AtCapacity::AdmitUntracked`]
    /// (served, limited per request only until room frees).
    ///
    /// ```
    /// use tower_ratelimit::{AtCapacity, Quota, RateLimitLayer, key::from_fn};
    /// let layer = RateLimitLayer::builder(Quota::per_minute(60).unwrap())
    ///     .key(from_fn(|h: &tower_ratelimit::key::RequestHead<'_>| {
    ///         h.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned)
    ///     }))
    ///     .max_keys(1_000_000)
    ///     .at_capacity(AtCapacity::AdmitUntracked)
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn at_capacity(mut self, policy: AtCapacity) -> Self {
        self.src.at_capacity = policy;
        self
    }

    /// Builds the layer and its in-process store.
    pub fn build(self) -> RateLimitLayer<E, MemoryStore<E::Key, C>>
    where
        C: Clock + Clone,
    {
        let (src, rest) = self.split();
        let mut store =
            MemoryStore::with_clock(src.tiers, src.clock).with_at_capacity(src.at_capacity);
        if let Some(n) = src.max_keys {
            store = store.with_max_keys(n);
        }
        rest.finish(store)
    }
}

impl<E: KeyExtractor, S: Store<E::Key>, R> RateLimitLayerBuilder<E, WithStore<S>, R> {
    /// Builds the layer over the supplied store.
    pub fn build(self) -> RateLimitLayer<E, S> {
        let (WithStore(store), rest) = self.split();
        rest.finish(store)
    }
}
