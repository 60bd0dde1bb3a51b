//! Which pacing state an outgoing request uses.

use http::header::HeaderName;
use http::{HeaderMap, Uri};

/// Picks the pacing key of an outgoing request from its URI and headers. Implemented
/// for closures `Fn(&Uri, &HeaderMap) -> K` and for [`ByHost`], [`ByHeader`] and
/// [`OneKey`].
pub trait PaceKey: Clone + Send + Sync + 'static {
    /// The key type.
    type Key: std::hash::Hash + Eq + Clone + Send + Sync + 'static;
    /// The key of a request.
    fn key(&self, uri: &Uri, headers: &HeaderMap) -> Self::Key;
}

impl<K, F> PaceKey for F
where
    F: Fn(&Uri, &HeaderMap) -> K + Clone + Send + Sync + 'static,
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    type Key = K;
    fn key(&self, uri: &Uri, headers: &HeaderMap) -> K {
        self(uri, headers)
    }
}

/// One state per target host (`host:port` of the URI, else the `Host` header).
#[derive(Debug, Clone, Copy, Default)]
pub struct ByHost;

impl PaceKey for ByHost {
    type Key = String;
    fn key(&self, uri: &Uri, headers: &HeaderMap) -> String {
        match uri.authority() {
            Some(a) => a.as_str().to_ascii_lowercase(),
            None => headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase(),
        }
    }
}

/// One state per value of a request header, e.g. `authorization` for per-API-key
/// limits (a missing header is its own key, the empty value).
#[derive(Debug, Clone)]
pub struct ByHeader(pub HeaderName);

impl PaceKey for ByHeader {
    type Key = Vec<u8>;
    fn key(&self, _: &Uri, headers: &HeaderMap) -> Vec<u8> {
        headers
            .get(&self.0)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default()
    }
}

/// One state for every request (one limit for the whole client).
#[derive(Debug, Clone, Copy, Default)]
pub struct OneKey;

impl PaceKey for OneKey {
    type Key = ();
    fn key(&self, _: &Uri, _: &HeaderMap) {}
}

/// The cost of an outgoing request in the pacer's quotas, read from its extensions
/// (default 1): `req.extensions_mut().insert(Cost(5))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost(pub u32);
