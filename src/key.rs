//! Rate-limit keys: which client a request counts against.
//!
//! Minimal version (global key and peer IP); the fuller set of extractors replaces it.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};

use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

/// The parts of a request a key extractor (or a cost / exempt predicate) may read.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: &'a Uri,
    version: Version,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// Borrows the head of `req`.
    pub fn from_request<B>(req: &'a Request<B>) -> Self {
        RequestHead {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        self.uri
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The request extensions (connection info lives here).
    pub fn extensions(&self) -> &Extensions {
        self.extensions
    }
}

/// Why a key could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The named part of the request is absent.
    Missing(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(what) => write!(f, "missing rate-limit key: {what}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Derives a rate-limit key from a request head.
pub trait KeyExtractor: Send + Sync + 'static {
    /// The key type.
    type Key: Hash + Eq + Clone + Send + Sync + fmt::Debug + fmt::Display + 'static;

    /// The key of `req`, or why it has none.
    fn extract(&self, req: &RequestHead<'_>) -> Result<Self::Key, KeyError>;
}

/// One limit shared by every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalKey;

/// The single key of [`GlobalKey`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Global;

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("global")
    }
}

impl KeyExtractor for GlobalKey {
    type Key = Global;

    #[inline]
    fn extract(&self, _req: &RequestHead<'_>) -> Result<Global, KeyError> {
        Ok(Global)
    }
}

/// The peer's IP address, from axum's `ConnectInfo<SocketAddr>` (feature `axum`), tonic's
/// `TcpConnectInfo` (feature `tonic`) or a plain `SocketAddr` extension.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerIp;

impl KeyExtractor for PeerIp {
    type Key = IpAddr;

    fn extract(&self, req: &RequestHead<'_>) -> Result<IpAddr, KeyError> {
        peer_addr(req.extensions())
            .map(|a| a.ip())
            .ok_or(KeyError::Missing("peer address"))
    }
}

fn peer_addr(ext: &Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(ci) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(ci.0);
    }
    #[cfg(feature = "tonic")]
    if let Some(addr) = ext
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|ci| ci.remote_addr())
    {
        return Some(addr);
    }
    ext.get::<SocketAddr>().copied()
}
