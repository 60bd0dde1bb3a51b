//! [`Pace`]: the service that books a slot, waits for it, then calls the inner service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::{Request, Response};
use tower::{BoxError, Service, ServiceExt};

use super::config::{Observe, PaceConfig};
use super::future::PaceFuture;
use super::hints::RateLimitHints;
use super::key::{Cost, PaceKey};
use super::pacer::Pacer;
use crate::clock::Clock;

/// How many times a request re-books behind holds before it is sent anyway.
const MAX_REBOOKINGS: usize = 8;

/// A service paced by a [`PaceLayer`](super::PaceLayer).
pub struct Pace<S, F: PaceKey, C> {
    inner: S,
    config: PaceConfig<F, C>,
}

impl<S, F: PaceKey, C> Pace<S, F, C> {
    pub(crate) fn new(inner: S, config: PaceConfig<F, C>) -> Self {
        Pace { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, F: PaceKey, C> Clone for Pace<S, F, C> {
    fn clone(&self) -> Self {
        Pace {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, F: PaceKey + fmt::Debug, C> fmt::Debug for Pace<S, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pace")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

/// Applies what `resp` (to a request sent `since` ago) says to `key`'s pacing, as far
/// as `observe` heeds it. A wait is counted from the send: the server measured it from
/// when the request reached it, one trip after the send, and the answer came back one
/// trip later, so counting from the answer would wait a round trip too long.
fn learn<K, C, B>(
    pacer: &Pacer<K, C>,
    key: &K,
    observe: Observe,
    resp: &Response<B>,
    since: Duration,
) where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    if observe == Observe::Off {
        return;
    }
    let hints = RateLimitHints::from_headers(resp.status(), resp.headers(), SystemTime::now());
    if let Some(quotas) = hints.quotas().filter(|_| observe == Observe::Adopt) {
        pacer.adopt(key, &quotas);
    }
    let heeded = hints.throttled || matches!(observe, Observe::Exhausted | Observe::Adopt);
    if let Some(wait) = hints.wait().filter(|_| heeded) {
        pacer.hold(key, wait.saturating_sub(since));
    }
}

impl<S, F, C, B, RB> Service<Request<B>> for Pace<S, F, C>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    F: PaceKey,
    C: Clock,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = PaceFuture<Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let key = self.config.key.key(req.uri(), req.headers());
        let cost = req.extensions().get::<Cost>().map_or(1, |c| c.0);
        let max_wait: Option<Duration> = self.config.max_wait;
        // Booked now, in call order: FIFO among callers of this key.
        let reservation = self.config.pacer.reserve(&key, cost, max_wait);
        // The ready clone goes into the future; `self` keeps a fresh one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let pacer = Arc::clone(&self.config.pacer);
        let observe = self.config.observe();
        Box::pin(async move {
            let mut reservation = reservation?;
            // Dropping this future here (cancellation) drops the reservation, which
            // gives the slot back when that is safe.
            reservation.ready().await;
            // The server asked (after this was booked) to wait longer: book again, behind
            // the hold, in the order the slots came. Bounded, as a hold can be renewed.
            for _ in 0..MAX_REBOOKINGS {
                if !pacer.is_held(&key) {
                    break;
                }
                let _ = reservation.release();
                reservation = pacer.reserve(&key, cost, max_wait)?;
                reservation.ready().await;
            }
            // The booking is what the server will see: sent now.
            reservation.commit();
            let sent = tokio::time::Instant::now();
            let resp = inner
                .ready()
                .await
                .map_err(Into::into)?
                .call(req)
                .await
                .map_err(Into::into)?;
            learn(&pacer, &key, observe, &resp, sent.elapsed());
            Ok(resp)
        })
    }
}
