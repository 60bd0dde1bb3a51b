//! State shared by a layer and every service it wraps: the configuration, and the
//! decision logic that turns a store's answer into "call the inner service" or a response.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{Request, Response};

use super::event::{Counters, DecisionEvent, Verdict};
use crate::decision::Outcome;
use crate::error::StoreError;
use crate::headers::{HeaderPlan, HeaderStyle, PendingHeaders};
use crate::interval_gate::IntervalGate;
use crate::key::{KeyError, KeyExtractor, RequestHead};
use crate::render::{Rejection, RejectionKind, Renderer};
use crate::store::{Store, Tier};

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
    /// Answer with this status, rendered by the layer's renderer as
    /// [`RejectionKind::MissingKey`] (problem+json naming what was missing by default;
    /// `INVALID_ARGUMENT` with [`Grpc`](crate::render)).
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
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<super::metrics::Metrics>,
    /// Counters or a hook are set: decisions must be recorded.
    pub(crate) observed: bool,
    pub(crate) key_log: KeyLog,
    pub(crate) hasher: std::hash::RandomState,
    /// Store-error warnings go out at most once a second (an outage must not turn every
    /// request into a log line); the others are logged at debug level.
    pub(crate) warned: IntervalGate,
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

pub(crate) enum Resolution {
    Admit(Option<PendingHeaders>),
    Reject(Response<Bytes>),
}

impl<E: KeyExtractor, S: Store<E::Key>> Shared<E, S> {
    /// The quota set `outcome` was decided against: its generation's, so headers and
    /// hooks describe the set that decided even across a reload.
    #[inline]
    fn quotas_of(&self, outcome: &Outcome, tier: Tier) -> &crate::Quotas {
        let tiers = self.store.tiers_of(outcome.generation());
        tiers.get(tier).unwrap_or_else(|| tiers.default_set())
    }

    #[inline]
    pub(crate) fn record(
        &self,
        verdict: Verdict,
        head: RequestHead<'_>,
        key: Option<&E::Key>,
        tier: Tier,
        decision: Option<crate::Decision<'_>>,
        error: Option<&StoreError>,
    ) {
        if !self.observed {
            return;
        }
        // Every answer the middleware gives itself counts as a rejection.
        let rejected = match verdict {
            Verdict::Denied | Verdict::StoreError => true,
            Verdict::KeyMissing => matches!(self.missing, MissingKey::Reject(_)),
            _ => false,
        };
        if let Some(c) = &self.counters {
            c.record(verdict, tier, decision.as_ref());
        }
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.record(verdict, tier, decision.as_ref(), |g| self.store.tiers_of(g));
        }
        if let Some(hook) = &self.on_decision {
            let tiers = match &decision {
                Some(d) => self.store.tiers_of(d.outcome().generation()),
                None => self.store.tiers(),
            };
            hook(&DecisionEvent {
                verdict,
                head,
                key: key.map(|k| k as &dyn fmt::Display),
                tier,
                plan: tiers.name(tier),
                decision,
                error,
                rejected,
            });
        }
    }

    /// Records an admission; returns what the response future needs to add headers.
    #[inline]
    pub(crate) fn admitted<B>(
        &self,
        outcome: Outcome,
        key: &E::Key,
        tier: Tier,
        req: &Request<B>,
    ) -> Option<PendingHeaders> {
        if self.observed {
            let decision = outcome.attach(self.quotas_of(&outcome, tier));
            let head = RequestHead::from_request(req);
            self.record(
                Verdict::Admitted,
                head,
                Some(key),
                tier,
                Some(decision),
                None,
            );
        }
        self.pending_headers(outcome, tier)
    }

    /// The headers an admitted response gets, unless the layer sends none.
    #[inline]
    fn pending_headers(&self, outcome: Outcome, tier: Tier) -> Option<PendingHeaders> {
        if self.style == HeaderStyle::None {
            return None;
        }
        let g = outcome.generation();
        self.plan
            .prepare(g, || self.store.tiers_of(g).clone())
            .then(|| PendingHeaders::new(outcome, tier, Arc::clone(&self.plan)))
    }

    /// Turns a store's answer into "call the inner service (with these headers)" or a
    /// response.
    #[inline(never)]
    pub(crate) fn resolve<B>(
        &self,
        result: Result<Outcome, StoreError>,
        key: &E::Key,
        tier: Tier,
        req: &Request<B>,
    ) -> Resolution {
        let head = RequestHead::from_request(req);
        let outcome = match result {
            Ok(outcome) if outcome.is_allowed() => {
                return Resolution::Admit(self.admitted(outcome, key, tier, req));
            }
            Ok(outcome) => outcome,
            Err(e) => {
                self.record(Verdict::StoreError, head, Some(key), tier, None, Some(&e));
                if self.warned.open() {
                    tracing::warn!(
                        target: "tower_ratelimit",
                        key = %self.log_key(key),
                        error = %e,
                        "rate-limit store could not decide (further errors this second at debug level)"
                    );
                } else {
                    tracing::debug!(
                        target: "tower_ratelimit",
                        key = %self.log_key(key),
                        error = %e,
                        "rate-limit store could not decide"
                    );
                }
                return Resolution::Reject(self.render(RejectionKind::from(&e), req));
            }
        };
        let decision = outcome.attach(self.quotas_of(&outcome, tier));
        if decision.is_allowed() || self.shadow {
            let verdict = if decision.is_allowed() {
                Verdict::Admitted
            } else {
                tracing::debug!(
                    target: "tower_ratelimit",
                    key = %self.log_key(key),
                    policy = decision.binding().quota().name(),
                    retry_after_ms = decision.retry_after().map_or(0, |d| d.as_millis() as u64),
                    "request would be rate-limited (shadow mode)"
                );
                Verdict::ShadowDenied
            };
            self.record(verdict, head, Some(key), tier, Some(decision), None);
            return Resolution::Admit(self.pending_headers(outcome, tier));
        }
        self.record(Verdict::Denied, head, Some(key), tier, Some(decision), None);
        tracing::debug!(
            target: "tower_ratelimit",
            key = %self.log_key(key),
            policy = decision.binding().quota().name(),
            retry_after_ms = decision.retry_after().map_or(0, |d| d.as_millis() as u64),
            "request rate-limited"
        );
        let mut res = self.render(RejectionKind::Denied(decision), req);
        let g = outcome.generation();
        if self.plan.prepare(g, || self.store.tiers_of(g).clone()) {
            // The plan's copy of the tier was cloned from this generation's set, as on
            // the admitted path: its prepared values apply without comparing the sets.
            self.plan.apply(outcome, tier, res.headers_mut());
        }
        Resolution::Reject(res)
    }

    /// The answer to a request without a key, when the layer rejects those.
    pub(crate) fn reject_missing_key<B>(
        &self,
        error: &KeyError,
        status: http::StatusCode,
        req: &Request<B>,
    ) -> Response<Bytes> {
        self.render(RejectionKind::MissingKey { error, status }, req)
    }

    /// The renderer's answer, with `Retry-After` when retrying can help.
    fn render<B>(&self, kind: RejectionKind<'_>, req: &Request<B>) -> Response<Bytes> {
        let rejection = Rejection::new(kind, req.method(), req.uri(), req.headers());
        let mut res = self.renderer.render(&rejection);
        if let Some(secs) = rejection.retry_after_secs() {
            // From the table of small numbers: no allocation.
            res.headers_mut()
                .insert(RETRY_AFTER, crate::headers::number(secs));
        }
        res
    }
}
