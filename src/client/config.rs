//! [`PaceConfig`]: what a [`PaceLayer`](super::PaceLayer) and every
//! [`Pace`](super::Pace) service made from it share, and [`Observe`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::key::PaceKey;
use super::mode::PacingMode;
use super::pacer::Pacer;

/// What a [`PaceLayer`](super::PaceLayer) learns from responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observe {
    /// Nothing: pace to the configured quotas only.
    Off,
    /// When a response is throttled (429, gRPC RESOURCE_EXHAUSTED), hold the key until
    /// the server's `Retry-After` (else its reset). The default in
    /// [`PacingMode::Gcra`].
    Throttled,
    /// Also hold the key until the reset when a successful response says nothing
    /// remains. The default in the log modes (`Safe`, `Window`, `Even`), whose
    /// schedule rarely runs into such a hold early: against a fixed-window server the
    /// reset is at or before the instant the log books next anyway.
    /// Too cautious with [`PacingMode::Gcra`] against GCRA servers that announce the
    /// time until the quota is *full* again (this crate, Claid): pacing at their exact
    /// rate always sees `remaining: 0`.
    Exhausted,
    /// Everything `Exhausted` does, and the quotas a response advertises
    /// ([`RateLimitHints::quotas`](super::RateLimitHints::quotas)) replace the
    /// configured ones for its key ([`Pacer::adopt`]; log modes). Use it when the
    /// server's advertisement is trusted to be complete.
    Adopt,
}

impl Observe {
    /// What a layer observes unless told otherwise: [`Exhausted`](Self::Exhausted) in
    /// the log modes, [`Throttled`](Self::Throttled) in GCRA mode.
    pub fn default_for(mode: PacingMode) -> Self {
        match mode {
            PacingMode::Gcra => Observe::Throttled,
            _ => Observe::Exhausted,
        }
    }
}

/// The shared, cheaply cloned configuration: the pacer handle, the key function, the
/// maximum wait and what to observe.
pub(crate) struct PaceConfig<F: PaceKey, C> {
    pub(crate) pacer: Arc<Pacer<F::Key, C>>,
    pub(crate) key: F,
    pub(crate) max_wait: Option<Duration>,
    /// `None`: [`Observe::default_for`] the pacer's mode.
    pub(crate) observe: Option<Observe>,
}

impl<F: PaceKey, C: crate::clock::Clock> PaceConfig<F, C> {
    /// What responses are read for.
    pub(crate) fn observe(&self) -> Observe {
        self.observe
            .unwrap_or_else(|| Observe::default_for(self.pacer.mode()))
    }
}

impl<F: PaceKey, C> Clone for PaceConfig<F, C> {
    fn clone(&self) -> Self {
        PaceConfig {
            pacer: Arc::clone(&self.pacer),
            key: self.key.clone(),
            max_wait: self.max_wait,
            observe: self.observe,
        }
    }
}

impl<F: PaceKey + fmt::Debug, C> fmt::Debug for PaceConfig<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaceConfig")
            .field("key", &self.key)
            .field("max_wait", &self.max_wait)
            .field("observe", &self.observe)
            .finish_non_exhaustive()
    }
}
