//! [`PaceLayer`]: configuration shared by every clone, state created once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::clock::TokioClock;
use super::key::PaceKey;
use super::pacer::Pacer;
use super::service::Pace;
use crate::clock::Clock;
use crate::quota::Quotas;

/// Paces outgoing requests: each request waits until the quota set admits it for its
/// key, then is sent. See the [module docs](crate::client).
///
/// Clones share one [`Pacer`], so a layer applied to many clients still holds one limit
/// per key.
pub struct PaceLayer<F: PaceKey, C = TokioClock> {
    pub(crate) pacer: Arc<Pacer<F::Key, C>>,
    pub(crate) key: F,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) observe: Observe,
}

/// What a [`PaceLayer`] learns from responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observe {
    /// Nothing: pace to the configured quotas only.
    Off,
    /// When a response is throttled (429, gRPC RESOURCE_EXHAUSTED), hold the key until
    /// the server's `Retry-After` (else its reset). The default.
    #[default]
    Throttled,
    /// Also hold the key until the reset when a successful response says nothing
    /// remains. Right for fixed-window servers (reset = end of the window); for GCRA
    /// servers that announce the time until the quota is *full* again (this crate, Claid)
    /// it is too cautious: pacing at the server's exact rate always sees `remaining: 0`.
    Exhausted,
}

impl<F: PaceKey, C> Clone for PaceLayer<F, C> {
    fn clone(&self) -> Self {
        PaceLayer {
            pacer: Arc::clone(&self.pacer),
            key: self.key.clone(),
            max_wait: self.max_wait,
            observe: self.observe,
        }
    }
}

impl<F: PaceKey + fmt::Debug, C> fmt::Debug for PaceLayer<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaceLayer")
            .field("key", &self.key)
            .field("max_wait", &self.max_wait)
            .field("observe", &self.observe)
            .finish_non_exhaustive()
    }
}

impl<F: PaceKey> PaceLayer<F, TokioClock> {
    /// Paces to `quotas` per key (`key` picks it: [`ByHost`](super::ByHost),
    /// [`ByHeader`](super::ByHeader), [`Global`](super::Global) or a closure), on tokio's
    /// clock.
    pub fn new(quotas: impl Into<Quotas>, key: F) -> Self {
        Self::with_pacer(Pacer::new(quotas), key)
    }
}

impl<F: PaceKey, C: Clock> PaceLayer<F, C> {
    /// Paces with an existing [`Pacer`] (e.g. one on a custom clock, or shared with code
    /// that calls [`Pacer::reserve`] itself).
    pub fn with_pacer(pacer: Arc<Pacer<F::Key, C>>, key: F) -> Self {
        PaceLayer {
            pacer,
            key,
            max_wait: None,
            observe: Observe::default(),
        }
    }

    /// Fails fast with [`PaceError::WouldWait`](super::PaceError::WouldWait) instead of
    /// waiting longer than `max_wait` (nothing is booked then).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// What to learn from responses (default [`Observe::Throttled`]).
    pub fn observe(mut self, observe: Observe) -> Self {
        self.observe = observe;
        self
    }

    /// The shared pacer.
    pub fn pacer(&self) -> &Arc<Pacer<F::Key, C>> {
        &self.pacer
    }
}

impl<S, F: PaceKey, C> tower::Layer<S> for PaceLayer<F, C> {
    type Service = Pace<S, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Pace {
            inner,
            layer: self.clone(),
        }
    }
}
