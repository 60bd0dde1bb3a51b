//! Keys by IP address: the connection's peer, or the client behind trusted proxies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::chain;
use super::cidr::{Cidr, CidrError, canonical, mask};
use super::forwarded::{self, Hop, ProxyHeader};
use super::misconfig::{self, WarnOnce};
use super::{KeyError, KeyExtractor, RequestHead};

/// Groups addresses by prefix: one host commonly owns a whole IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grouping {
    v4: u8,
    v6: u8,
}

impl Default for Grouping {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Grouping {
    const DEFAULT: Grouping = Grouping { v4: 32, v6: 64 };

    fn apply(self, ip: IpAddr) -> IpAddr {
        let ip = canonical(ip);
        let len = if ip.is_ipv4() { self.v4 } else { self.v6 };
        mask(ip, len)
    }
}

/// Keys on the connection's peer address.
///
/// The address comes from the request's extensions, the first found of: axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`; serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`), tonic's `TcpConnectInfo`
/// (feature `tonic`), a plain `SocketAddr`, a plain `IpAddr`. None found is
/// [`KeyError::Missing`]`("peer address")`.
///
/// IPv4-mapped IPv6 peers (from dual-stack sockets) count as IPv4. IPv6 peers are
/// grouped by their /64 by default (the key is the network address, e.g.
/// `2001:db8:1:2::`), since one subscriber usually holds a whole /64 and could otherwise
/// rotate addresses to escape the limit; [`PeerIp::ipv6_prefix`] changes it (128 keys
/// every address apart). IPv4 peers are keyed individually unless
/// [`PeerIp::ipv4_prefix`] says otherwise.
///
/// ```
/// use std::net::SocketAddr;
/// use tower_ratelimit::key::{KeyExtractor, PeerIp, RequestHead};
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert("[2001:db8:1:2:aaaa::1]:443".parse::<SocketAddr>().expect("addr"));
/// let key = PeerIp::new().extract(&RequestHead::from_request(&req)).expect("key");
/// assert_eq!(key.to_string(), "2001:db8:1:2::");
/// ```
///
/// The constant [`PeerIp`](const@PeerIp) is the default extractor, so
/// `.key(PeerIp)` reads like a unit struct.
///
/// Behind a reverse proxy every request comes from the proxy, so every client would
/// share one limit. When a request from a loopback or private peer carries
/// `Forwarded`, `X-Forwarded-For` or `X-Real-IP`, one `warn` event (target
/// `tower_ratelimit`) says so and names the [`ClientIp`] constructor to use instead:
/// once per extractor made by [`PeerIp::new`] and its clones (so once per layer), once
/// per process for the [`PeerIp`](const@PeerIp) constant. After it fired the check
/// costs one relaxed atomic load.
#[derive(Debug, Clone)]
pub struct PeerIp {
    grouping: Grouping,
    warn: WarnOnce,
}

/// The default [`PeerIp`](struct@PeerIp) extractor (IPv6 grouped by /64), usable as a value:
/// `layer.key(PeerIp)`. Its misconfiguration warning is shared by every use in the
/// process.
#[allow(non_upper_case_globals)]
pub const PeerIp: PeerIp = PeerIp {
    grouping: Grouping::DEFAULT,
    warn: WarnOnce::Process,
};

/// Equal when they group alike (the warning state is not compared).
impl PartialEq for PeerIp {
    fn eq(&self, other: &Self) -> bool {
        self.grouping == other.grouping
    }
}

impl Eq for PeerIp {}

impl Default for PeerIp {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerIp {
    /// Peer address, IPv6 grouped by /64. Build it once per layer, not per request:
    /// it holds the once-only warning flag.
    pub fn new() -> Self {
        PeerIp {
            grouping: Grouping::DEFAULT,
            warn: WarnOnce::new(),
        }
    }

    /// Groups IPv6 addresses by their first `len` bits (clamped to 128).
    pub fn ipv6_prefix(mut self, len: u8) -> Self {
        self.grouping.v6 = len.min(128);
        self
    }

    /// Groups IPv4 addresses by their first `len` bits (clamped to 32; default 32).
    pub fn ipv4_prefix(mut self, len: u8) -> Self {
        self.grouping.v4 = len.min(32);
        self
    }

    /// The peer address in `req`'s extensions, ungrouped (IPv4-mapped shown as IPv4).
    pub fn peer_addr(req: &RequestHead<'_>) -> Option<IpAddr> {
        let ext = req.extensions();
        #[cfg(feature = "axum")]
        if let Some(info) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
            return Some(canonical(info.0.ip()));
        }
        #[cfg(feature = "tonic")]
        if let Some(addr) = ext
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
        {
            return Some(canonical(addr.ip()));
        }
        ext.get::<SocketAddr>()
            .map(SocketAddr::ip)
            .or_else(|| ext.get::<IpAddr>().copied())
            .map(canonical)
    }
}

impl KeyExtractor for PeerIp {
    type Key = IpAddr;

    fn extract(&self, req: &RequestHead<'_>) -> Result<IpAddr, KeyError> {
        let peer = Self::peer_addr(req).ok_or(KeyError::Missing("peer address"))?;
        if self.warn.pending() {
            misconfig::peer_ip(&self.warn, peer, req.headers());
        }
        Ok(self.grouping.apply(peer))
    }
}

/// Keys on the client address that your reverse proxies report in **one** header, the
/// one they set: [`ClientIp::x_forwarded_for`], [`ClientIp::forwarded`] or
/// [`ClientIp::x_real_ip`]. Other forwarding headers are never read, so a client cannot
/// choose its key by adding one that the proxy passes through untouched (nginx,
/// HAProxy and AWS ALB append to `X-Forwarded-For` and forward a client's own
/// `Forwarded` and `X-Real-IP` as they are).
///
/// The walk, from the connection's peer address:
///
/// 1. A peer outside the trusted networks is the client; headers are ignored.
/// 2. From a trusted peer, the header's hops are read right to left (every field line
///    of it, in order, as one list; at most the 64 right-most hops), skipping trusted
///    addresses: the first untrusted hop is the client. What a client writes left of
///    its own hop is never reached.
/// 3. A hop that names no address (`unknown`, an obfuscated `_id`, an empty entry,
///    garbage) stops the walk at the last trusted address read, the proxy closest to
///    the garbage: never a key made from it, never a panic.
/// 4. If every hop is trusted, the left-most read is the client (a trusted host
///    itself).
///
/// Addresses may carry ports (`192.0.2.1:4711`, `[2001:db8::1]:443`, as `Forwarded`
/// nodes and some proxies' `X-Forwarded-For` entries do), brackets and quotes;
/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is IPv4 both for the trust check and in the
/// key. The key is grouped like [`PeerIp`](struct@PeerIp) (IPv6 by /64 by default).
/// Reading the key allocates nothing.
///
/// | Proxy | Constructor |
/// |---|---|
/// | nginx `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`, HAProxy `option forwardfor`, AWS ALB, Traefik, most ingresses | [`ClientIp::x_forwarded_for`] |
/// | a proxy that appends RFC 7239 `Forwarded` (HAProxy 2.8+ `option forwarded`, nginx configured to) | [`ClientIp::forwarded`] |
/// | nginx `proxy_set_header X-Real-IP $remote_addr` (the header is replaced, not appended) | [`ClientIp::x_real_ip`] |
///
/// Misconfiguration is logged once per extractor (and its clones, so once per layer)
/// as a `warn` event under target `tower_ratelimit`: forwarding headers from a peer
/// that is not trusted (is the proxy missing from the list?), or a trusted peer that
/// sends another forwarding header but not the chosen one.
///
/// ```
/// use std::net::SocketAddr;
/// use tower_ratelimit::key::{ClientIp, KeyExtractor, RequestHead};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = ClientIp::x_forwarded_for(["10.0.0.0/8"])?;
/// let mut req = http::Request::builder()
///     .header("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.7")
///     .header("forwarded", "for=198.51.100.1") // passed through from the client: unread
///     .body(())?;
/// req.extensions_mut().insert("10.0.0.2:50000".parse::<SocketAddr>()?);
/// // 10.0.0.7 and the peer 10.0.0.2 are trusted; 203.0.113.9 is the client
/// // (1.1.1.1 is whatever the client claimed, and is never read).
/// assert_eq!(key.extract(&RequestHead::from_request(&req))?.to_string(), "203.0.113.9");
///
/// // The same headers from an untrusted peer are ignored.
/// req.extensions_mut().insert("198.51.100.4:50000".parse::<SocketAddr>()?);
/// assert_eq!(key.extract(&RequestHead::from_request(&req))?.to_string(), "198.51.100.4");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientIp {
    header: ProxyHeader,
    trusted: Arc<[Cidr]>,
    grouping: Grouping,
    warn: WarnOnce,
}

impl ClientIp {
    /// Reads `header` from the proxies in `trusted`. The fallible constructors named
    /// after each header take strings as well.
    ///
    /// ```
    /// use tower_ratelimit::key::{Cidr, ClientIp, ProxyHeader};
    /// let key = ClientIp::new(ProxyHeader::XForwardedFor, Cidr::loopback());
    /// assert_eq!(key.trusted().len(), 2);
    /// ```
    pub fn new(header: ProxyHeader, trusted: impl IntoIterator<Item = Cidr>) -> Self {
        ClientIp {
            header,
            trusted: trusted.into_iter().collect(),
            grouping: Grouping::default(),
            warn: WarnOnce::new(),
        }
    }

    /// Reads `X-Forwarded-For` from the proxies in `trusted`: networks as [`Cidr`]s,
    /// addresses, or strings (`"10.0.0.0/8"`, `"::1"`), a malformed one being an error.
    ///
    /// ```
    /// use tower_ratelimit::key::{Cidr, ClientIp};
    /// # fn main() -> Result<(), tower_ratelimit::key::CidrError> {
    /// let from_strings = ClientIp::x_forwarded_for(["127.0.0.0/8", "::1"])?;
    /// let from_cidrs = ClientIp::x_forwarded_for(Cidr::loopback())?;
    /// assert_eq!(from_strings.trusted(), from_cidrs.trusted());
    /// assert!(ClientIp::x_forwarded_for(["10.0.0.0/33"]).is_err());
    /// # Ok(()) }
    /// ```
    pub fn x_forwarded_for<I>(trusted: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: TryInto<Cidr>,
        CidrError: From<<I::Item as TryInto<Cidr>>::Error>,
    {
        Self::parse(ProxyHeader::XForwardedFor, trusted)
    }

    /// Reads RFC 7239 `Forwarded` (`for=` of each element) from the proxies in
    /// `trusted`, given as for [`ClientIp::x_forwarded_for`].
    pub fn forwarded<I>(trusted: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: TryInto<Cidr>,
        CidrError: From<<I::Item as TryInto<Cidr>>::Error>,
    {
        Self::parse(ProxyHeader::Forwarded, trusted)
    }

    /// Reads `X-Real-IP` (one address; the last field line if several) from the
    /// proxies in `trusted`, given as for [`ClientIp::x_forwarded_for`]. Use it only
    /// when the proxy replaces the header rather than passing a client's through.
    pub fn x_real_ip<I>(trusted: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: TryInto<Cidr>,
        CidrError: From<<I::Item as TryInto<Cidr>>::Error>,
    {
        Self::parse(ProxyHeader::XRealIp, trusted)
    }

    fn parse<I>(header: ProxyHeader, trusted: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: TryInto<Cidr>,
        CidrError: From<<I::Item as TryInto<Cidr>>::Error>,
    {
        let trusted = trusted
            .into_iter()
            .map(|net| net.try_into().map_err(CidrError::from))
            .collect::<Result<Vec<Cidr>, CidrError>>()?;
        Ok(Self::new(header, trusted))
    }

    /// Groups IPv6 addresses by their first `len` bits (clamped to 128; default 64).
    pub fn ipv6_prefix(mut self, len: u8) -> Self {
        self.grouping.v6 = len.min(128);
        self
    }

    /// Groups IPv4 addresses by their first `len` bits (clamped to 32; default 32).
    pub fn ipv4_prefix(mut self, len: u8) -> Self {
        self.grouping.v4 = len.min(32);
        self
    }

    /// The trusted networks.
    pub fn trusted(&self) -> &[Cidr] {
        &self.trusted
    }

    /// The one header read.
    pub fn proxy_header(&self) -> ProxyHeader {
        self.header
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address, ungrouped; `None` only when there is no peer address.
    pub fn client_addr(&self, req: &RequestHead<'_>) -> Option<IpAddr> {
        let peer = PeerIp::peer_addr(req)?;
        let headers = req.headers();
        if !self.is_trusted(peer) {
            if self.warn.pending() {
                misconfig::untrusted_peer(&self.warn, self.header, peer, headers);
            }
            return Some(peer);
        }
        Some(match self.header {
            ProxyHeader::XForwardedFor => self.walk(peer, req, forwarded::x_forwarded_for(headers)),
            ProxyHeader::Forwarded => self.walk(peer, req, forwarded::forwarded(headers)),
            ProxyHeader::XRealIp => self.walk(peer, req, forwarded::x_real_ip(headers)),
        })
    }

    /// The client behind trusted `peer`, from the chosen header's `hops`.
    fn walk(&self, peer: IpAddr, req: &RequestHead<'_>, hops: impl Iterator<Item = Hop>) -> IpAddr {
        let mut hops = hops.peekable();
        if hops.peek().is_none() && self.warn.pending() {
            misconfig::other_header(&self.warn, self.header, peer, req.headers());
        }
        chain::client(peer, hops, |ip| self.is_trusted(ip))
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract(&self, req: &RequestHead<'_>) -> Result<IpAddr, KeyError> {
        self.client_addr(req)
            .map(|ip| self.grouping.apply(ip))
            .ok_or(KeyError::Missing("peer address"))
    }
}
