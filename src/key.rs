//! Keys: which bucket a request is counted in.
//!
//! A [`KeyExtractor`] reads a [`RequestHead`] (method, URI, headers, extensions; never
//! the body) and returns a key, or a [`KeyError`] the middleware turns into its
//! configured answer. Provided extractors:
//!
//! | Extractor | Key | Reads |
//! |---|---|---|
//! | [`GlobalKey`] | [`Global`] | nothing: one limit for everyone |
//! | [`PeerIp`](struct@PeerIp) | `IpAddr` | the connection's peer address (IPv6 grouped by /64) |
//! | [`ClientIp`] | `IpAddr` | the one proxy header you name (`X-Forwarded-For`, `Forwarded` or `X-Real-IP`), only from trusted proxies |
//! | [`HeaderKey`] | [`HeaderToken`] | a header such as `Authorization: Bearer <key>` |
//! | [`from_fn`] | yours | whatever your closure reads |
//!
//! No extractor panics on any input: malformed values are errors or, for
//! [`ClientIp`], the address of the trusted proxy closest to the garbage.
//!
//! ```
//! use tower_ratelimit::key::{HeaderKey, KeyExtractor, RequestHead};
//! let req = http::Request::builder()
//!     .header("authorization", "Bearer k-123")
//!     .body(())
//!     .expect("valid request");
//! let key = HeaderKey::bearer().extract(&RequestHead::from_request(&req));
//! assert_eq!(key.expect("has a key"), "k-123");
//! ```

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use http::header::{AUTHORIZATION, HeaderName};
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Uri, Version};

mod chain;
mod cidr;
mod forwarded;
mod ip;
mod misconfig;

pub use cidr::{Cidr, CidrError};
pub use forwarded::ProxyHeader;
pub use ip::{ClientIp, PeerIp};

/// The parts of a request a key may depend on, borrowed (the body is never read).
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

    /// Borrows request parts.
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        RequestHead {
            method: &parts.method,
            uri: &parts.uri,
            version: parts.version,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request extensions (where servers put the peer address).
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }
}

/// Extracts the rate-limit key of a request.
pub trait KeyExtractor: Send + Sync + 'static {
    /// The key: one bucket per distinct value.
    type Key: Hash + Eq + Clone + Send + Sync + fmt::Debug + fmt::Display + 'static;

    /// The key of `req`, or why it has none.
    fn extract(&self, req: &RequestHead<'_>) -> Result<Self::Key, KeyError>;
}

/// Why a request has no key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Something the key is built from is absent (e.g. `"peer address"`, `"key"`).
    Missing(&'static str),
    /// The header the key is read from is absent.
    MissingHeader(HeaderName),
    /// The value the key is read from is malformed (e.g. not the expected scheme,
    /// not visible ASCII, too long).
    Invalid(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(what) => write!(f, "the request has no {what} to key the rate limit on"),
            Self::MissingHeader(name) => {
                write!(
                    f,
                    "the request has no `{name}` header to key the rate limit on"
                )
            }
            Self::Invalid(what) => write!(f, "the request's {what} is not a valid rate-limit key"),
        }
    }
}

impl std::error::Error for KeyError {}

/// One key for every request: a single, global limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalKey;

/// The only key [`GlobalKey`] produces; displays as `global`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// A key read from a request header, e.g. an API key.
///
/// The value must be visible ASCII, at most [`HeaderKey::max_len`] bytes (1024 by
/// default). With a scheme ([`HeaderKey::scheme`], [`HeaderKey::bearer`],
/// [`HeaderKey::clarifai`]) the value must start with it (case-insensitively, as
/// RFC 9110 §11.1 says for schemes) and the key is what follows, trimmed. A missing
/// header is [`KeyError::MissingHeader`]; a wrong scheme, an empty key or a bad value is
/// [`KeyError::Invalid`], and so is a header sent more than once (servers and auth layers
/// differ on which of several fields they read, so a client could be limited on one key
/// and authenticated on another).
///
/// ```
/// use tower_ratelimit::key::{HeaderKey, KeyExtractor, RequestHead};
/// let req = http::Request::builder()
///     .header("authorization", "Key my-pat")
///     .body(())
///     .expect("valid request");
/// let head = RequestHead::from_request(&req);
/// assert_eq!(HeaderKey::clarifai().extract(&head).expect("key"), "my-pat");
/// assert!(HeaderKey::bearer().extract(&head).is_err());
/// assert_eq!(HeaderKey::new(http::HeaderName::from_static("x-api-key")).extract(&head).map_err(|e| e.to_string()),
///     Err("the request has no `x-api-key` header to key the rate limit on".into()));
/// ```
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
    scheme: Option<String>,
    max_len: usize,
}

impl HeaderKey {
    /// The whole value of header `name` is the key (e.g.
    /// `HeaderKey::new(HeaderName::from_static("x-api-key"))`).
    pub fn new(name: HeaderName) -> Self {
        HeaderKey {
            name,
            scheme: None,
            max_len: 1024,
        }
    }

    /// `Authorization: Bearer <key>` (Claid).
    pub fn bearer() -> Self {
        Self::new(AUTHORIZATION).scheme("Bearer")
    }

    /// `Authorization: Key <PAT>` (Clarifai).
    pub fn clarifai() -> Self {
        Self::new(AUTHORIZATION).scheme("Key")
    }

    /// Requires the value to start with `scheme` and a space, and keys on the rest.
    pub fn scheme(mut self, scheme: impl Into<String>) -> Self {
        let mut s: String = scheme.into();
        s.truncate(s.trim_end().len());
        self.scheme = Some(s);
        self
    }

    /// The longest value accepted, in bytes (default 1024).
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The header read.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

impl KeyExtractor for HeaderKey {
    type Key = HeaderToken;

    fn extract(&self, req: &RequestHead<'_>) -> Result<HeaderToken, KeyError> {
        let mut values = req.headers().get_all(&self.name).iter();
        let value = values
            .next()
            .ok_or_else(|| KeyError::MissingHeader(self.name.clone()))?;
        // Which of several fields a server, proxy or auth layer reads varies (first,
        // last, joined): keying on one of them would let a client pay on a key it does
        // not use. An ambiguous key is no key.
        if values.next().is_some() {
            return Err(KeyError::Invalid("header (sent more than once)"));
        }
        if value.len() > self.max_len {
            return Err(KeyError::Invalid("header value (too long)"));
        }
        let text = value
            .to_str()
            .map_err(|_| KeyError::Invalid("header value (not visible ASCII)"))?;
        let key = match &self.scheme {
            None => text.trim(),
            Some(scheme) => {
                let rest = text
                    .get(..scheme.len())
                    .filter(|p| p.eq_ignore_ascii_case(scheme))
                    .and_then(|_| text.get(scheme.len()..))
                    .filter(|r| r.starts_with([' ', '\t']))
                    .ok_or(KeyError::Invalid("authorization scheme"))?;
                rest.trim()
            }
        };
        if key.is_empty() {
            return Err(KeyError::Invalid("header value (empty)"));
        }
        // `key` is a subslice of `text`: its offset is the distance between the two.
        let start = key.as_ptr() as usize - text.as_ptr() as usize;
        Ok(HeaderToken {
            value: value.clone(),
            start,
            end: start + key.len(),
        })
    }
}

/// The key [`HeaderKey`] reads: the header's text after the scheme, trimmed.
///
/// It shares the request's header bytes (cloning a `HeaderValue` a server parsed copies a
/// reference, not the bytes), so keying on a header allocates nothing per request. It
/// compares, hashes and displays as that text; it is never kept beyond the request (the
/// in-memory store keeps only a keyed fingerprint of it).
///
/// ```
/// use tower_ratelimit::key::{HeaderKey, KeyExtractor, RequestHead};
/// let req = http::Request::builder()
///     .header("authorization", "Bearer  k-123 ")
///     .body(())
///     .expect("valid request");
/// let key = HeaderKey::bearer().extract(&RequestHead::from_request(&req)).expect("key");
/// assert_eq!(key.as_str(), "k-123");
/// assert_eq!(key, "k-123");
/// assert_eq!(key.to_string(), "k-123");
/// ```
#[derive(Clone)]
pub struct HeaderToken {
    /// Visible ASCII only (checked by the extractor).
    value: HeaderValue,
    start: usize,
    end: usize,
}

impl HeaderToken {
    /// The key's text.
    pub fn as_str(&self) -> &str {
        // The extractor admitted only visible ASCII, so this is always valid UTF-8 and the
        // range is in bounds; the fallback is never taken.
        self.value
            .as_bytes()
            .get(self.start..self.end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    fn bytes(&self) -> &[u8] {
        self.value
            .as_bytes()
            .get(self.start..self.end)
            .unwrap_or_default()
    }
}

impl PartialEq for HeaderToken {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for HeaderToken {}

impl Hash for HeaderToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so the token and its text land in the same bucket.
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for HeaderToken {
    fn eq(&self, other: &str) -> bool {
        self.bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for HeaderToken {
    fn eq(&self, other: &&str) -> bool {
        self.bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for HeaderToken {
    fn eq(&self, other: &String) -> bool {
        self.bytes() == other.as_bytes()
    }
}

impl AsRef<str> for HeaderToken {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for HeaderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HeaderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A key computed by a closure; see [`from_fn`].
pub struct FnKey<F, K> {
    f: F,
    _key: PhantomData<fn() -> K>,
}

impl<F: Clone, K> Clone for FnKey<F, K> {
    fn clone(&self) -> Self {
        FnKey {
            f: self.f.clone(),
            _key: PhantomData,
        }
    }
}

impl<F, K> fmt::Debug for FnKey<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnKey").finish_non_exhaustive()
    }
}

/// A key computed by `f`; `None` means the request has no key
/// ([`KeyError::Missing`]`("key")`).
///
/// ```
/// use tower_ratelimit::key::{KeyExtractor, RequestHead, from_fn};
/// // One bucket per first path segment.
/// let by_segment = from_fn(|req: &RequestHead<'_>| {
///     req.uri().path().split('/').nth(1).map(str::to_owned)
/// });
/// let req = http::Request::get("/v1/image/edit").body(()).expect("valid request");
/// assert_eq!(by_segment.extract(&RequestHead::from_request(&req)).expect("key"), "v1");
/// ```
pub fn from_fn<F, K>(f: F) -> FnKey<F, K>
where
    F: Fn(&RequestHead<'_>) -> Option<K> + Send + Sync + 'static,
{
    FnKey {
        f,
        _key: PhantomData,
    }
}

impl<F, K> KeyExtractor for FnKey<F, K>
where
    F: Fn(&RequestHead<'_>) -> Option<K> + Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + fmt::Display + 'static,
{
    type Key = K;

    fn extract(&self, req: &RequestHead<'_>) -> Result<K, KeyError> {
        (self.f)(req).ok_or(KeyError::Missing("key"))
    }
}
