//! A one-line plain-text rejection.

use bytes::Bytes;
use http::{Response, StatusCode};

use super::{Rejection, Renderer, TEXT_PLAIN, push_int, response, write_limit_phrase};

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
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(b"Too Many Requests: exceeded limit of ");
        write_limit_phrase(&mut out, rejection.denying().quota());
        out.extend_from_slice(b"; retry after ");
        push_int(&mut out, rejection.retry_after_secs());
        out.extend_from_slice(b" s\n");
        response(StatusCode::TOO_MANY_REQUESTS, TEXT_PLAIN, out)
    }
}
