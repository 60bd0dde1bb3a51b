//! [`Pace`]: the service that books a slot, waits for it, then calls the inner service.

use std::fmt;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::{Request, Response};
use tower::{BoxError, Service, ServiceExt};

use super::future::ResponseFuture;
use super::hints::RateLimitHints;
use super::key::{Cost, PaceKey};
use super::layer::{Observe, PaceLayer};
use crate::clock::Clock;

/// How many times a request re-books behind holds before it is sent anyway.
const MAX_REBOOKINGS: usize = 8;

/// A service paced by a [`PaceLayer`].
pub struct Pace<S, F: PaceKey, C> {
    pub(crate) inner: S,
    pub(crate) layer: PaceLayer<F, C>,
}

impl<S: Clone, F: PaceKey, C> Clone for Pace<S, F, C> {
    fn clone(&self) -> Self {
        Pace {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, F: PaceKey + fmt::Debug, C> fmt::Debug for Pace<S, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pace")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, F: PaceKey, C> Pace<S, F, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The wait the server asks for after `resp`, if `observe` heeds it.
fn server_wait<B>(observe: Observe, resp: &Response<B>) -> Option<Duration> {
    if observe == Observe::Off {
        return None;
    }
    let hints = RateLimitHints::from_headers(resp.status(), resp.headers(), SystemTime::now());
    if hints.throttled || observe == Observe::Exhausted {
        hints.wait()
    } else {
        None
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
    type Future = ResponseFuture<Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let key = self.layer.key.key(req.uri(), req.headers());
        let cost = req.extensions().get::<Cost>().map_or(1, |c| c.0);
        // Booked now, in call order: FIFO among callers of this key.
        let reservation = self.layer.pacer.reserve(&key, cost, self.layer.max_wait);
        // The ready clone goes into the future; `self` keeps a fresh one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let pacer = std::sync::Arc::clone(&self.layer.pacer);
        let observe = self.layer.observe;
        let max_wait = self.layer.max_wait;
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
            reservation.commit();
            let resp = inner
                .ready()
                .await
                .map_err(Into::into)?
                .call(req)
                .await
                .map_err(Into::into)?;
            if let Some(wait) = server_wait(observe, &resp) {
                pacer.hold(&key, wait);
            }
            Ok(resp)
        })
    }
}
