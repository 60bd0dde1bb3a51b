//! A one-line plain-text rejection.

use bytes::Bytes;
use http::Response;

use super::{Rejection, Renderer, TEXT_PLAIN, body, response, status_title};

/// `text/plain; charset=utf-8` and one line, the status phrase and the
/// [detail](Rejection::detail), with the [status](Rejection::status) of the rejection:
///
/// * `429`: `Too Many Requests: exceeded limit of 4 requests per second; retry after 1 s`
/// * `400`: ``Bad Request: the request has no `authorization` header to key the rate limit on``
/// * `413`: `Content Too Large: request cost 9 exceeds the largest the rate limit can ever admit (4)`
/// * `503`: `Service Unavailable: rate limiter unavailable, retry later`
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
        let status = rejection.status();
        let out = body(|out| {
            out.extend_from_slice(status_title(status).as_bytes());
            out.extend_from_slice(b": ");
            rejection.write_detail(out);
            out.push(b'\n');
        });
        response(status, TEXT_PLAIN, out)
    }
}
