//! The response future of [`RateLimit`](super::RateLimit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use crate::headers::PendingHeaders;

/// The result of an asynchronous (remote store) check: the inner service's future, or a
/// rejection.
pub(crate) enum Resolved<F> {
    Call(F, Option<PendingHeaders>),
    Reject(Response<Bytes>),
}

type BoxCheck<F> = Pin<Box<dyn Future<Output = Resolved<F>> + Send + 'static>>;

pin_project! {
    /// Response future of [`RateLimit`](super::RateLimit).
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
        Inner { #[pin] future: F, admit: Option<PendingHeaders> },
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
    pub(crate) fn inner(future: F, admit: Option<PendingHeaders>) -> Self {
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
