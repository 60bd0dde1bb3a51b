//! A one-line plain-text rejection.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};

use super::{Rejection, Renderer, limit_phrase};

/// `429` with `text/plain; charset=utf-8` and one line, e.g.
/// `Too Many Requests: exceeded limit of 4 requests per second; retry after 1 s`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Text {
    _private: (),
}

impl Text {
    /// The plain-text renderer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Renderer for Text {
    fn render(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        let body = format!(
            "Too Many Requests: exceeded limit of {}; retry after {} s\n",
            limit_phrase(rejection.denying().quota()),
            rejection.retry_after_secs()
        );
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}
