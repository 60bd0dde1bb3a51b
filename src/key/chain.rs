//! Which hop of a proxy chain is the client: the pure walk, apart from any header
//! syntax (see `forwarded`) and from HTTP.

use std::net::IpAddr;

use super::forwarded::{Hop, MAX_HOPS};

/// The client address behind the proxies `trusted` says may speak for one.
///
/// `peer` is the connection's address; `hops` the chosen header's hops, right-most
/// (closest proxy) first. An untrusted peer is the client whatever the header says.
/// From a trusted peer the hops are walked leftwards past trusted addresses: the first
/// untrusted one is the client. An opaque hop stops the walk at the last trusted
/// address, the proxy that wrote next to it, so garbage is never a key of its own.
/// When every hop (at most [`MAX_HOPS`]) is trusted, the left-most read is the client.
pub(crate) fn client(
    peer: IpAddr,
    hops: impl Iterator<Item = Hop>,
    trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let mut last = peer;
    for hop in hops.take(MAX_HOPS) {
        match hop {
            Hop::Addr(ip) if trusted(ip) => last = ip,
            Hop::Addr(ip) => return ip,
            Hop::Opaque => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    fn ten(ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10)
    }

    /// `hops` written left to right.
    fn walk(peer: &str, hops: &[Hop]) -> IpAddr {
        client(ip(peer), hops.iter().rev().copied(), ten)
    }

    fn a(s: &str) -> Hop {
        Hop::Addr(ip(s))
    }

    #[test]
    fn walks_right_to_left() {
        assert_eq!(walk("192.0.2.1", &[a("10.0.0.1")]), ip("192.0.2.1"));
        assert_eq!(walk("10.0.0.9", &[]), ip("10.0.0.9"));
        assert_eq!(
            walk("10.0.0.9", &[a("6.6.6.6"), a("192.0.2.1"), a("10.0.0.1")]),
            ip("192.0.2.1")
        );
        assert_eq!(
            walk("10.0.0.9", &[a("10.0.0.5"), a("10.0.0.1")]),
            ip("10.0.0.5")
        );
        assert_eq!(
            walk("10.0.0.9", &[a("192.0.2.1"), Hop::Opaque, a("10.0.0.1")]),
            ip("10.0.0.1")
        );
        assert_eq!(
            walk("10.0.0.9", &[a("192.0.2.1"), Hop::Opaque]),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn stops_after_max_hops() {
        let mut hops = vec![a("192.0.2.1")];
        hops.extend((0..MAX_HOPS as u8).map(|i| a(&format!("10.0.0.{i}"))));
        // 64 trusted hops read; the 65th, the client, is past the cap.
        assert_eq!(walk("10.9.9.9", &hops), ip("10.0.0.0"));
        hops.remove(1);
        assert_eq!(walk("10.9.9.9", &hops), ip("192.0.2.1"));
    }
}
