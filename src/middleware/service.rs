//! [`RateLimit`]: the service that decides each request in `call`.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::event::Verdict;
use super::future::{Call, ResponseFuture};
use super::shared::{MissingKey, Resolution, Shared};
use crate::key::{KeyExtractor, RequestHead};
use crate::store::{Check, CheckFuture, Defer, Store, Tier};

/// Rate-limits the requests of an inner service; built by
/// [`RateLimitLayer`](super::RateLimitLayer).
///
/// `poll_ready` only asks the inner service: the limiter never holds requests back. Each
/// request is decided in `call`; a denied one is answered at once, without calling the
/// inner service.
///
/// With the in-memory store it wraps any service: no `Clone`, `Send` or `'static` is
/// asked of the service, its future or the request body (a `tower::util::BoxService`, or
/// a `!Send` service on a tokio `LocalSet`, work as they are). With a store that decides
/// later (Redis), the service must be `Clone`: the response future holds a ready clone
/// until the store answers (see [`CheckFuture`](crate::store::CheckFuture)).
pub struct RateLimit<Inner, E: KeyExtractor, S> {
    inner: Inner,
    shared: Arc<Shared<E, S>>,
}

impl<Inner, E: KeyExtractor, S> RateLimit<Inner, E, S> {
    pub(crate) fn new(inner: Inner, shared: Arc<Shared<E, S>>) -> Self {
        RateLimit { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &Inner {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> Inner {
        self.inner
    }
}

impl<Inner: Clone, E: KeyExtractor, S> Clone for RateLimit<Inner, E, S> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Inner: fmt::Debug, E: KeyExtractor, S> fmt::Debug for RateLimit<Inner, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<Inner, E, S, ReqB, ResB> Service<Request<ReqB>> for RateLimit<Inner, E, S>
where
    Inner: Service<Request<ReqB>, Response = Response<ResB>>,
    E: KeyExtractor,
    S: Store<E::Key>,
    S::Future: CheckFuture<Inner>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = Inner::Error;
    type Future = ResponseFuture<Inner, ReqB, E, S>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let shared = &*self.shared;
        let head = RequestHead::from_request(&req);
        if shared.exempt.as_ref().is_some_and(|f| f(&head)) {
            shared.record(Verdict::Exempt, head, None, Tier(0), None, None);
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let key = match shared.extractor.extract(&head) {
            Ok(key) => key,
            Err(e) => {
                shared.record(Verdict::KeyMissing, head, None, Tier(0), None, None);
                return match shared.missing {
                    MissingKey::Reject(status) => {
                        tracing::debug!(target: "tower_ratelimit", error = %e, "rate-limit key missing");
                        ResponseFuture::rejected(shared.reject_missing_key(&e, status, &req))
                    }
                    // `MissingKey` is non-exhaustive; anything else passes.
                    _ => ResponseFuture::inner(self.inner.call(req), None),
                };
            }
        };
        let cost = shared.cost.as_ref().map_or(1, |f| f(&head));
        if cost == 0 {
            shared.record(Verdict::Exempt, head, Some(&key), Tier(0), None, None);
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let tier = shared.tier_of.as_ref().map_or(Tier(0), |f| f(&key));
        let result = match shared.store.check(&key, tier, cost) {
            // The common case, kept small: no `Decision` is built unless someone looks.
            Check::Ready(Ok(outcome)) if outcome.is_allowed() => {
                let admit = shared.admitted(outcome, &key, tier, &req);
                return ResponseFuture::inner(self.inner.call(req), admit);
            }
            Check::Ready(result) => result,
            Check::Pending(check) => match check.defer(&mut self.inner) {
                Defer::Now(result) => result,
                // The response future calls the ready service it was given once the
                // store has decided.
                Defer::Later(check, inner) => {
                    let shared = Arc::clone(&self.shared);
                    let call = Call {
                        inner,
                        req,
                        key,
                        tier,
                        shared,
                    };
                    return ResponseFuture::waiting(check, call);
                }
            },
        };
        match shared.resolve(result, &key, tier, &req) {
            Resolution::Admit(admit) => ResponseFuture::inner(self.inner.call(req), admit),
            Resolution::Reject(response) => ResponseFuture::rejected(response),
        }
    }
}
