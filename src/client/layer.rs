//! [`PaceLayer`]: the configuration every paced service shares, state created once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::clock::TokioClock;
use super::config::{Observe, PaceConfig};
use super::key::PaceKey;
use super::mode::PacingMode;
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
    config: PaceConfig<F, C>,
}

impl<F: PaceKey, C> Clone for PaceLayer<F, C> {
    fn clone(&self) -> Self {
        PaceLayer {
            config: self.config.clone(),
        }
    }
}

impl<F: PaceKey + fmt::Debug, C> fmt::Debug for PaceLayer<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaceLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<F: PaceKey> PaceLayer<F, TokioClock> {
    /// Paces to `quotas` per key (`key` picks it: [`ByHost`](super::ByHost),
    /// [`ByHeader`](super::ByHeader), [`OneKey`](super::OneKey) or a closure),
    /// safe against every server algorithm ([`PacingMode::Safe`]) with the default
    /// margin, on tokio's clock.
    pub fn new(quotas: impl Into<Quotas>, key: F) -> Self {
        Self::with_pacer(Pacer::new(quotas), key)
    }

    /// Paces to `quotas` in `mode` (e.g. [`PacingMode::Gcra`] for a server known to
    /// be GCRA), with the default margin, on tokio's clock.
    pub fn with_mode(quotas: impl Into<Quotas>, key: F, mode: PacingMode) -> Self {
        Self::with_pacer(Pacer::with_mode(quotas, mode), key)
    }
}

impl<F: PaceKey, C: Clock> PaceLayer<F, C> {
    /// Paces with an existing [`Pacer`] (e.g. one from [`Pacer::builder`] with a custom
    /// margin or clock, or shared with code that calls [`Pacer::reserve`] itself).
    pub fn with_pacer(pacer: Arc<Pacer<F::Key, C>>, key: F) -> Self {
        PaceLayer {
            config: PaceConfig {
                pacer,
                key,
                max_wait: None,
                observe: None,
            },
        }
    }

    /// Fails fast with [`PaceError::WouldWait`](super::PaceError::WouldWait) instead of
    /// waiting longer than `max_wait` (nothing is booked then).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.config.max_wait = Some(max_wait);
        self
    }

    /// What to learn from responses (default [`Observe::default_for`] the mode).
    pub fn observe(mut self, observe: Observe) -> Self {
        self.config.observe = Some(observe);
        self
    }

    /// The shared pacer.
    pub fn pacer(&self) -> &Arc<Pacer<F::Key, C>> {
        &self.config.pacer
    }
}

impl<S, F: PaceKey, C> tower::Layer<S> for PaceLayer<F, C> {
    type Service = Pace<S, F, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Pace::new(inner, self.config.clone())
    }
}
