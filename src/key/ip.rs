//! Keys by IP address: the connection's peer, or the client behind trusted proxies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

use super::cidr::{Cidr, CidrError, canonical, mask};
use super::forwarded::{self, Hop};
use super::{KeyError, KeyExtractor, RequestHead};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerIp {
    grouping: Grouping,
}

/// The default [`PeerIp`](struct@PeerIp) extractor (IPv6 grouped by /64), usable as a value:
/// `layer.key(PeerIp)`.
#[allow(non_upper_case_globals)]
pub const PeerIp: PeerIp = PeerIp::new();

impl PeerIp {
    /// Peer address, IPv6 grouped by /64.
    pub const fn new() -> Self {
        PeerIp {
            grouping: Grouping::DEFAULT,
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
        Self::peer_addr(req)
            .map(|ip| self.grouping.apply(ip))
            .ok_or(KeyError::Missing("peer address"))
    }
}

/// A header through which proxies report the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `Forwarded: for=...` (RFC 7239).
    Forwarded,
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// `X-Real-IP: client` (one address, as nginx sets it).
    XRealIp,
}

/// Keys on the client address behind trusted reverse proxies.
///
/// Proxy headers are honoured **only when the peer is in the trusted set**, so a client
/// talking to the server directly cannot choose its key. From a trusted peer, the chain
/// of hops in the header (client first, each proxy appending the address it saw) is
/// walked from the right, skipping trusted proxies; the first untrusted hop is the
/// client. A hop that names no address (`unknown`, obfuscated, garbage; a field line
/// that cannot be parsed counts as one such hop) reached on that walk makes the key
/// fall back to the peer address: never a guess, never a panic. What a client writes
/// left of its own hop is never read. If every hop is trusted, the left-most is the
/// client.
///
/// By default the first present of `Forwarded`, `X-Forwarded-For` and `X-Real-IP` is
/// read. If your proxy sets only one of them and passes the others through from
/// clients, name it with [`ClientIp::header`] so a client cannot inject another one.
///
/// The result is grouped like [`PeerIp`](struct@PeerIp) (IPv6 by /64 by default).
///
/// ```
/// use std::net::SocketAddr;
/// use tower_ratelimit::key::{ClientIp, KeyExtractor, RequestHead};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = ClientIp::trusting(["10.0.0.0/8"])?;
/// let mut req = http::Request::builder()
///     .header("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.7")
///     .body(())?;
/// req.extensions_mut().insert("10.0.0.2:50000".parse::<SocketAddr>()?);
/// // 10.0.0.7 and the peer 10.0.0.2 are trusted; 203.0.113.9 is the client
/// // (1.1.1.1 is whatever the client claimed, and is ignored).
/// assert_eq!(key.extract(&RequestHead::from_request(&req))?.to_string(), "203.0.113.9");
///
/// // The same header from an untrusted peer is ignored.
/// req.extensions_mut().insert("198.51.100.4:50000".parse::<SocketAddr>()?);
/// assert_eq!(key.extract(&RequestHead::from_request(&req))?.to_string(), "198.51.100.4");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<[Cidr]>,
    headers: &'static [ProxyHeader],
    grouping: Grouping,
}

impl ClientIp {
    /// Trusts the proxies in `trusted`.
    pub fn new(trusted: impl IntoIterator<Item = Cidr>) -> Self {
        ClientIp {
            trusted: trusted.into_iter().collect(),
            headers: &[
                ProxyHeader::Forwarded,
                ProxyHeader::XForwardedFor,
                ProxyHeader::XRealIp,
            ],
            grouping: Grouping::default(),
        }
    }

    /// Trusts the proxies in `nets` (`"10.0.0.0/8"`, `"::1"`, ...).
    pub fn trusting<I>(nets: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nets = nets
            .into_iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<Cidr>, _>>()?;
        Ok(Self::new(nets))
    }

    /// Reads only `header` (the one your proxy sets).
    pub fn header(mut self, header: ProxyHeader) -> Self {
        self.headers = match header {
            ProxyHeader::Forwarded => &[ProxyHeader::Forwarded],
            ProxyHeader::XForwardedFor => &[ProxyHeader::XForwardedFor],
            ProxyHeader::XRealIp => &[ProxyHeader::XRealIp],
        };
        self
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

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address, ungrouped; `None` only when there is no peer address.
    pub fn client_addr(&self, req: &RequestHead<'_>) -> Option<IpAddr> {
        let peer = PeerIp::peer_addr(req)?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let Some(chain) = self.chain(req.headers()) else {
            return Some(peer);
        };
        let mut leftmost = peer;
        for hop in chain.iter().rev() {
            match hop.map(canonical) {
                None => return Some(peer),
                Some(ip) if self.is_trusted(ip) => leftmost = ip,
                Some(ip) => return Some(ip),
            }
        }
        Some(leftmost)
    }

    /// The hops of the first configured header present.
    fn chain(&self, headers: &HeaderMap) -> Option<Vec<Hop>> {
        for h in self.headers {
            let name = match h {
                ProxyHeader::Forwarded => FORWARDED,
                ProxyHeader::XForwardedFor => X_FORWARDED_FOR,
                ProxyHeader::XRealIp => X_REAL_IP,
            };
            let mut fields = headers.get_all(&name).iter().peekable();
            let Some(&first) = fields.peek() else {
                continue;
            };
            return Some(match h {
                ProxyHeader::Forwarded => forwarded::forwarded(fields),
                ProxyHeader::XForwardedFor => forwarded::x_forwarded_for(fields),
                ProxyHeader::XRealIp => forwarded::x_real_ip(first),
            });
        }
        None
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
