//! [`RateLimit`]: the service that decides each request in `call`.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::decision::Outcome;
use crate::error::{CheckError, StoreError};
use crate::event::{DecisionEvent, Verdict};
use crate::future::{Admit, Resolved, ResponseFuture};
use crate::headers::{HeaderStyle, retry_after};
use crate::key::{KeyExtractor, RequestHead};
use crate::layer::{MissingKey, Shared};
use crate::render::Rejection;
use crate::store::{Check, Store, Tier};

/// Rate-limits the requests of an inner service; built by
/// [`RateLimitLayer`](crate::RateLimitLayer).
///
/// `poll_ready` only asks the inner service: the limiter never holds requests back. Each
/// request is decided in `call`; a denied one is answered at once, without calling the
/// inner service.
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
    Inner: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    Inner::Future: Send + 'static,
    ReqB: Send + 'static,
    E: KeyExtractor,
    S: Store<E::Key>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = Inner::Error;
    type Future = ResponseFuture<Inner::Future>;

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
                        ResponseFuture::rejected(text(status, e.to_string()))
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
        match shared.store.check(&key, tier, cost) {
            // The common case, kept small: no `Decision` is built unless someone looks.
            Check::Ready(Ok(outcome)) if outcome.is_allowed() => {
                let admit = shared.admitted(outcome, &key, tier, &req);
                ResponseFuture::inner(self.inner.call(req), admit)
            }
            Check::Ready(result) => match shared.resolve(result, &key, tier, &req) {
                Resolution::Admit(admit) => ResponseFuture::inner(self.inner.call(req), admit),
                Resolution::Reject(response) => ResponseFuture::rejected(response),
            },
            Check::Pending(check) => {
                // The ready clone goes into the future; `self` keeps a fresh one
                // (it will be driven to readiness before its next call).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = Arc::clone(&self.shared);
                ResponseFuture::pending(Box::pin(async move {
                    let result = check.await;
                    match shared.resolve(result, &key, tier, &req) {
                        Resolution::Admit(admit) => Resolved::Call(inner.call(req), admit),
                        Resolution::Reject(response) => Resolved::Reject(response),
                    }
                }))
            }
        }
    }
}

enum Resolution {
    Admit(Option<Admit>),
    Reject(Response<Bytes>),
}

impl<E: KeyExtractor, S: Store<E::Key>> Shared<E, S> {
    #[inline]
    fn record(
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
        if let Some(c) = &self.counters {
            c.record(verdict, tier, decision.as_ref());
        }
        if let Some(hook) = &self.on_decision {
            hook(&DecisionEvent {
                verdict,
                head,
                key: key.map(|k| k as &dyn fmt::Display),
                tier,
                decision,
                error,
            });
        }
    }

    /// Records an admission; returns what the response future needs to add headers.
    #[inline]
    fn admitted<B>(
        &self,
        outcome: Outcome,
        key: &E::Key,
        tier: Tier,
        req: &Request<B>,
    ) -> Option<Admit> {
        if self.observed {
            let decision = outcome.decision(self.store.quotas(tier));
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
        (self.style != HeaderStyle::None).then(|| Admit {
            outcome,
            tier,
            plan: Arc::clone(&self.plan),
        })
    }

    /// Turns a store's answer into "call the inner service (with these headers)" or a
    /// response.
    #[inline(never)]
    fn resolve<B>(
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
                return Resolution::Reject(store_error_response(&e));
            }
        };
        let decision = outcome.decision(self.store.quotas(tier));
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
            let admit = (self.style != HeaderStyle::None).then(|| Admit {
                outcome,
                tier,
                plan: Arc::clone(&self.plan),
            });
            return Resolution::Admit(admit);
        }
        self.record(Verdict::Denied, head, Some(key), tier, Some(decision), None);
        tracing::debug!(
            target: "tower_ratelimit",
            key = %self.log_key(key),
            policy = decision.binding().quota().name(),
            retry_after_ms = decision.retry_after().map_or(0, |d| d.as_millis() as u64),
            "request rate-limited"
        );
        let mut response = self.renderer.render(&Rejection::new(
            decision,
            req.method(),
            req.uri(),
            req.headers(),
        ));
        let headers = response.headers_mut();
        if let Some(v) = retry_after(&decision) {
            headers.insert(RETRY_AFTER, v);
        }
        self.plan.apply_decision(&decision, tier, headers);
        Resolution::Reject(response)
    }
}

/// A short `text/plain` answer for requests the middleware could not decide.
fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Store errors: a cost that can never fit is the request's fault (413, no point in
/// retrying); everything else is ours and temporary (503, retry in a second).
fn store_error_response(e: &StoreError) -> Response<Bytes> {
    if let StoreError::Check(CheckError::CostExceedsBurst { .. }) = e {
        return text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
    }
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "rate limiter unavailable, retry later",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
