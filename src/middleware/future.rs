//! The response future of [`RateLimit`](super::RateLimit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::shared::{Resolution, Shared};
use crate::headers::PendingHeaders;
use crate::key::KeyExtractor;
use crate::store::{Store, Tier};

pin_project! {
    /// Response future of [`RateLimit`](super::RateLimit): the inner service's future
    /// (with the headers to add), a rejection, or, with a remote store, a request waiting
    /// for its check (which then calls the service it holds, or is rejected). A plain
    /// state machine: nothing is boxed.
    pub struct ResponseFuture<Inner, ReqB, E, S>
    where
        Inner: Service<Request<ReqB>>,
        E: KeyExtractor,
        S: Store<E::Key>,
    {
        #[pin]
        state: State<Inner, ReqB, E, S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Inner, ReqB, E, S>
    where
        Inner: Service<Request<ReqB>>,
        E: KeyExtractor,
        S: Store<E::Key>,
    {
        // Answered by the middleware (rejection, missing key, store error).
        Rejected { response: Option<Response<Bytes>> },
        // The inner service is running; `admit` holds the headers to add.
        Inner { #[pin] future: Inner::Future, admit: Option<PendingHeaders> },
        // A remote store is deciding; `call` is taken when it has.
        Waiting { #[pin] check: S::Future, call: Option<Call<Inner, ReqB, E, S>> },
    }
}

/// What a waiting request needs once its check completes.
pub(crate) struct Call<Inner, ReqB, E: KeyExtractor, S> {
    pub(crate) inner: Inner,
    pub(crate) req: Request<ReqB>,
    pub(crate) key: E::Key,
    pub(crate) tier: Tier,
    pub(crate) shared: Arc<Shared<E, S>>,
}

impl<Inner, ReqB, E, S> ResponseFuture<Inner, ReqB, E, S>
where
    Inner: Service<Request<ReqB>>,
    E: KeyExtractor,
    S: Store<E::Key>,
{
    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    #[inline]
    pub(crate) fn inner(future: Inner::Future, admit: Option<PendingHeaders>) -> Self {
        ResponseFuture {
            state: State::Inner { future, admit },
        }
    }

    pub(crate) fn waiting(check: S::Future, call: Call<Inner, ReqB, E, S>) -> Self {
        ResponseFuture {
            state: State::Waiting {
                check,
                call: Some(call),
            },
        }
    }
}

impl<Inner, ReqB, E, S> fmt::Debug for ResponseFuture<Inner, ReqB, E, S>
where
    Inner: Service<Request<ReqB>>,
    E: KeyExtractor,
    S: Store<E::Key>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Rejected { .. } => "Rejected",
            State::Inner { .. } => "Inner",
            State::Waiting { .. } => "Waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<Inner, ReqB, ResB, E, S> Future for ResponseFuture<Inner, ReqB, E, S>
where
    Inner: Service<Request<ReqB>, Response = Response<ResB>>,
    E: KeyExtractor,
    S: Store<E::Key>,
{
    type Output = Result<Response<ResponseBody<ResB>>, Inner::Error>;

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
                StateProj::Waiting { check, call } => {
                    let result = ready!(check.poll(cx));
                    let Call {
                        mut inner,
                        req,
                        key,
                        tier,
                        shared,
                    } = call.take().expect("ResponseFuture polled after completion");
                    let next = match shared.resolve(result, &key, tier, &req) {
                        // `inner` was ready when it was set aside for this request.
                        Resolution::Admit(admit) => State::Inner {
                            future: inner.call(req),
                            admit,
                        },
                        Resolution::Reject(response) => State::Rejected {
                            response: Some(response),
                        },
                    };
                    state.set(next);
                }
            }
        }
    }
}
