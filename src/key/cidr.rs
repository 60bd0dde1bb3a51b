//! A network prefix (`10.0.0.0/8`, `2001:db8::/32`, or one address), for trusted proxies.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: an address and a prefix length. Parsed from `addr/len` or a bare
/// address (a network of one). Host bits are cleared, so `10.1.2.3/8` is `10.0.0.0/8`.
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) match the IPv4 networks they map to.
///
/// ```
/// use tower_ratelimit::key::Cidr;
/// # fn main() -> Result<(), tower_ratelimit::key::CidrError> {
/// let net: Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.200.0.1".parse().expect("ip")));
/// assert!(net.contains("::ffff:10.0.0.1".parse().expect("ip")));
/// assert!(!net.contains("11.0.0.1".parse().expect("ip")));
/// assert!("10.0.0.0/33".parse::<Cidr>().is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

/// Why a [`Cidr`] did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// The address part is not an IP address.
    Address(String),
    /// The prefix length is not a number within the family's width (32 or 128).
    PrefixLength(String),
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(s) => write!(f, "`{s}` is not an IP address"),
            Self::PrefixLength(s) => write!(f, "`{s}` is not a valid prefix length"),
        }
    }
}

impl std::error::Error for CidrError {}

/// Lets constructors that take strings or [`Cidr`]s alike (`TryInto<Cidr>`) use one
/// error type: a `Cidr` never fails to become one.
impl From<Infallible> for CidrError {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

impl Cidr {
    /// The network of `addr` with `len` leading bits (clamped to the family's width).
    /// An IPv4-mapped `addr` is taken as IPv4, its length counted in IPv6 bits
    /// (`::ffff:10.0.0.0` with 104 is `10.0.0.0/8`).
    pub fn new(addr: IpAddr, len: u8) -> Self {
        let len = if canonical(addr) == addr {
            len
        } else {
            len.saturating_sub(96)
        };
        let addr = canonical(addr);
        let len = len.min(width(addr));
        Cidr {
            addr: mask(addr, len),
            len,
        }
    }

    /// `127.0.0.0/8` and `::1/128`.
    pub fn loopback() -> [Cidr; 2] {
        [
            Cidr::new(Ipv4Addr::LOCALHOST.into(), 8),
            Cidr::new(Ipv6Addr::LOCALHOST.into(), 128),
        ]
    }

    /// The private and unique-local ranges proxies usually live in: `10.0.0.0/8`,
    /// `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`, plus [`Cidr::loopback`].
    pub fn private() -> [Cidr; 6] {
        let [l4, l6] = Cidr::loopback();
        [
            Cidr::new(Ipv4Addr::new(10, 0, 0, 0).into(), 8),
            Cidr::new(Ipv4Addr::new(172, 16, 0, 0).into(), 12),
            Cidr::new(Ipv4Addr::new(192, 168, 0, 0).into(), 16),
            Cidr::new(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0).into(), 7),
            l4,
            l6,
        ]
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| CidrError::PrefixLength(l.to_owned()))?,
        };
        // `::ffff:a.b.c.d/120` is the IPv4 network `a.b.c.d/24`; a shorter prefix
        // would reach beyond the mapped range, which is not what anyone means.
        if canonical(addr) != addr && len < 96 {
            return Err(CidrError::PrefixLength(len.to_string()));
        }
        Ok(Cidr::new(addr, len))
    }
}

impl TryFrom<&str> for Cidr {
    type Error = CidrError;

    fn try_from(s: &str) -> Result<Self, CidrError> {
        s.parse()
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(s: String) -> Result<Self, CidrError> {
        s.parse()
    }
}

impl TryFrom<&String> for Cidr {
    type Error = CidrError;

    fn try_from(s: &String) -> Result<Self, CidrError> {
        s.parse()
    }
}

/// One address is a network of one (`/32` or `/128`).
impl From<IpAddr> for Cidr {
    fn from(ip: IpAddr) -> Self {
        Cidr::new(ip, 128)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// IPv4-mapped IPv6 addresses (what dual-stack sockets report) as plain IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private (RFC 1918), link-local and unique-local addresses: where proxies
/// live, and addresses a log may name without naming a member of the public.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with all but the first `len` bits cleared (`len` clamped to the width).
pub(crate) fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn masks_every_length() {
        assert_eq!(mask(ip("10.1.2.3"), 0), ip("0.0.0.0"));
        assert_eq!(mask(ip("10.1.2.3"), 8), ip("10.0.0.0"));
        assert_eq!(mask(ip("10.1.2.3"), 32), ip("10.1.2.3"));
        assert_eq!(mask(ip("10.1.2.3"), 200), ip("10.1.2.3"));
        assert_eq!(mask(ip("2001:db8:1:2:3:4:5:6"), 64), ip("2001:db8:1:2::"));
        assert_eq!(mask(ip("2001:db8::1"), 0), ip("::"));
        assert_eq!(mask(ip("2001:db8::1"), 128), ip("2001:db8::1"));
    }

    #[test]
    fn parses_and_refuses() {
        let c: Cidr = "10.1.2.3/8".parse().expect("valid");
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let one: Cidr = " 192.0.2.1 ".parse().expect("valid");
        assert_eq!(one.prefix_len(), 32);
        assert!(one.contains(ip("192.0.2.1")));
        assert!(!one.contains(ip("192.0.2.2")));
        let v6: Cidr = "2001:db8::/32".parse().expect("valid");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().expect("valid");
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        let all: Cidr = "0.0.0.0/0".parse().expect("valid");
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::2")));
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "x/1",
            "10.0.0.0/-1",
            "10/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10.0.0.0/99".parse::<Cidr>().map_err(|e| e.to_string()),
            Err("`99` is not a valid prefix length".to_owned())
        );
    }

    #[test]
    fn presets() {
        assert!(
            Cidr::private()
                .iter()
                .any(|c| c.contains(ip("172.31.255.255")))
        );
        assert!(!Cidr::private().iter().any(|c| c.contains(ip("172.32.0.0"))));
        assert!(Cidr::loopback().iter().any(|c| c.contains(ip("::1"))));
        assert!(Cidr::private().iter().any(|c| c.contains(ip("fd12::1"))));
    }
}
