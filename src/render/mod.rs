//! Rejection bodies: how a denied request is answered.
//!
//! CONTRACT (filled in by the headers/renderers work): a [`Renderer`] turns a
//! [`Rejection`] into a complete response (status, content-type, body). The middleware
//! then adds `Retry-After` and the layer's rate-limit headers.

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri};

use crate::decision::Decision;

/// What a renderer sees of a denied request.
#[derive(Debug)]
pub struct Rejection<'a> {
    decision: Decision<'a>,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl<'a> Rejection<'a> {
    /// Bundles a denial with the request it denied.
    pub fn new(
        decision: Decision<'a>,
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    ) -> Self {
        Rejection {
            decision,
            method,
            uri,
            headers,
        }
    }

    /// The denial.
    pub fn decision(&self) -> &Decision<'a> {
        &self.decision
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        self.uri
    }

    /// The request headers (e.g. `x-request-id`).
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

/// Renders the answer to a denied request.
pub trait Renderer: Send + Sync + 'static {
    /// The full response: status, `content-type`, body.
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes>;
}

impl<F> Renderer for F
where
    F: Fn(&Rejection<'_>) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        self(rejection)
    }
}
