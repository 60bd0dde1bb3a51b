//! [`CheckFuture`]: how a request waits for a store's check, and what that asks of the
//! wrapped service.
//!
//! An in-process store answers at once, so the middleware asks nothing of the service it
//! wraps: no `Clone`, `Send` or `'static`, and no room in its response future for a
//! request that waits. A remote store's check completes later, in the response future,
//! which must then own a ready service to call: a clone of the wrapped one. The trait
//! says which case a store's future is, so each path keeps only the bounds it needs.

use std::future::{Future, Ready};
use std::pin::Pin;

use crate::decision::Outcome;
use crate::error::StoreError;

/// What [`CheckFuture::defer`] decided: the check's result now, or the check and the
/// ready service to call once it completes.
#[derive(Debug)]
pub enum Defer<F, Svc> {
    /// The result is known already (an always-ready future).
    Now(Result<Outcome, StoreError>),
    /// The check future, and the service to call when it has decided.
    Later(F, Svc),
}

/// A store's check future ([`Store::Future`](super::Store::Future)) as the middleware
/// drives it, for a wrapped service `Svc`.
///
/// Implemented for [`std::future::Ready`] (in-process stores: no bound on `Svc`), for
/// boxed futures and for the Redis store's future (`Svc: Clone`: the response future
/// owns a ready clone of the service while the store decides). A store with a future type
/// of its own implements it as below, or returns a boxed future.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use tower_ratelimit::store::{CheckFuture, Defer, take_ready};
/// use tower_ratelimit::{Outcome, StoreError};
///
/// /// A store's own check future.
/// struct MyCheck(Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send>>);
///
/// impl Future for MyCheck {
///     type Output = Result<Outcome, StoreError>;
///     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
///         self.0.as_mut().poll(cx)
///     }
/// }
///
/// impl<Svc: Clone> CheckFuture<Svc> for MyCheck {
///     fn defer(self, service: &mut Svc) -> Defer<Self, Svc> {
///         Defer::Later(self, take_ready(service))
///     }
/// }
/// ```
pub trait CheckFuture<Svc>: Future<Output = Result<Outcome, StoreError>> + Sized {
    /// Called with a [`Check::Pending`](super::Check::Pending) answer and the wrapped
    /// service, which is ready (its `poll_ready` returned `Ready(Ok)`): the result now, or
    /// this future with the service to call later, leaving a fresh clone in `service`
    /// ([`take_ready`] does that).
    fn defer(self, service: &mut Svc) -> Defer<Self, Svc>;
}

/// The ready `service`, leaving a clone of it in its place (which the caller drives to
/// readiness before its next call, as tower requires).
pub fn take_ready<Svc: Clone>(service: &mut Svc) -> Svc {
    let fresh = service.clone();
    std::mem::replace(service, fresh)
}

impl<Svc> CheckFuture<Svc> for Ready<Result<Outcome, StoreError>> {
    #[inline]
    fn defer(self, _: &mut Svc) -> Defer<Self, Svc> {
        Defer::Now(self.into_inner())
    }
}

/// Boxed futures (what most remote stores return): the service is cloned.
impl<'a, Svc: Clone> CheckFuture<Svc>
    for Pin<Box<dyn Future<Output = Result<Outcome, StoreError>> + Send + 'a>>
{
    fn defer(self, service: &mut Svc) -> Defer<Self, Svc> {
        Defer::Later(self, take_ready(service))
    }
}
