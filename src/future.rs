//! The response future of [`RateLimit`](crate::RateLimit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, Response};
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::decision::Outcome;
use crate::headers::PreparedHeaders;
use crate::store::{Tier, Tiers};

/// The quota tiers with their header values pre-rendered, shared by the layer and the
/// futures of admitted requests.
#[derive(Debug)]
pub(crate) struct HeaderPlan {
    pub(crate) tiers: Tiers,
    prepared: Vec<PreparedHeaders>,
}

impl HeaderPlan {
    pub(crate) fn new(tiers: Tiers, style: crate::headers::HeaderStyle) -> Self {
        let prepared = tiers.iter().map(|q| style.prepare(q)).collect();
        HeaderPlan { tiers, prepared }
    }

    /// Adds the headers of `outcome`, decided against `tier`.
    pub(crate) fn apply(&self, outcome: Outcome, tier: Tier, headers: &mut HeaderMap) {
        let quotas = self
            .tiers
            .get(tier)
            .unwrap_or_else(|| self.tiers.default_set());
        self.apply_decision(&outcome.decision(quotas), tier, headers);
    }

    /// Adds the headers of a decision already in hand (an unknown tier falls back to
    /// the default set, as stores do).
    pub(crate) fn apply_decision(
        &self,
        decision: &crate::Decision<'_>,
        tier: Tier,
        headers: &mut HeaderMap,
    ) {
        let prepared = self.prepared.get(tier.0).unwrap_or(&self.prepared[0]);
        prepared.apply(decision, headers);
    }
}

/// What an admitted response still needs: the decision's headers, added once the inner
/// service has answered. Holds plain numbers and a shared handle, never an allocation.
#[derive(Debug)]
pub(crate) struct Admit {
    pub(crate) outcome: Outcome,
    pub(crate) tier: Tier,
    pub(crate) plan: Arc<HeaderPlan>,
}

impl Admit {
    fn apply(&self, headers: &mut HeaderMap) {
        self.plan.apply(self.outcome, self.tier, headers);
    }
}

/// The result of an asynchronous (remote store) check: the inner service's future, or a
/// rejection.
pub(crate) enum Resolved<F> {
    Call(F, Option<Admit>),
    Reject(Response<Bytes>),
}

type BoxCheck<F> = Pin<Box<dyn Future<Output = Resolved<F>> + Send + 'static>>;

pin_project! {
    /// Response future of [`RateLimit`](crate::RateLimit).
    #[project = Proj]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Answered by the middleware (rejection, missing key, store error).
        Rejected { response: Option<Response<Bytes>> },
        // The inner service is running; `admit` holds the headers to add.
        Inner { #[pin] future: F, admit: Option<Admit> },
        // A remote store is deciding; boxed because only remote stores take this path.
        Pending { check: BoxCheck<F> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    #[inline]
    pub(crate) fn inner(future: F, admit: Option<Admit>) -> Self {
        ResponseFuture {
            state: State::Inner { future, admit },
        }
    }

    pub(crate) fn pending(check: BoxCheck<F>) -> Self {
        ResponseFuture {
            state: State::Pending { check },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Rejected { .. } => "Rejected",
            State::Inner { .. } => "Inner",
            State::Pending { .. } => "Pending",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Inner { future, admit } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(admit) = admit.take() {
                        admit.apply(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Pending { check } => {
                    let next = match ready!(check.as_mut().poll(cx)) {
                        Resolved::Call(future, admit) => State::Inner { future, admit },
                        Resolved::Reject(response) => State::Rejected {
                            response: Some(response),
                        },
                    };
                    state.set(next);
                }
            }
        }
    }
}
