//! Parsing proxy headers into hops, right-most first: `Forwarded` (RFC 7239),
//! `X-Forwarded-For` and `X-Real-IP`. Lenient where it is safe (ports, brackets,
//! spaces, case), strict where it matters (a hop that does not name one address is
//! [`Hop::Opaque`], never guessed at). Nothing here allocates: hops are read from the
//! header bytes in place, right to left, since the right end is what the closest proxy
//! wrote and the left end is what the client wrote.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

use super::cidr::canonical;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// A header through which proxies report the client address. [`ClientIp`] reads
/// exactly one, the one your proxy sets.
///
/// [`ClientIp`]: super::ClientIp
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `Forwarded: for=...` (RFC 7239), one element appended per proxy.
    Forwarded,
    /// `X-Forwarded-For: client, proxy1, proxy2`, one address appended per proxy.
    XForwardedFor,
    /// `X-Real-IP: client`: one address, written (not appended) by the closest proxy.
    XRealIp,
}

impl ProxyHeader {
    /// The header's name as usually written (`X-Forwarded-For`).
    pub fn name(self) -> &'static str {
        match self {
            ProxyHeader::Forwarded => "Forwarded",
            ProxyHeader::XForwardedFor => "X-Forwarded-For",
            ProxyHeader::XRealIp => "X-Real-IP",
        }
    }

    /// The header's name as a [`HeaderName`].
    pub fn header_name(self) -> HeaderName {
        match self {
            ProxyHeader::Forwarded => FORWARDED,
            ProxyHeader::XForwardedFor => X_FORWARDED_FOR,
            ProxyHeader::XRealIp => X_REAL_IP,
        }
    }

    /// The `ClientIp` constructor that reads this header (for warnings).
    pub(crate) fn constructor(self) -> &'static str {
        match self {
            ProxyHeader::Forwarded => "forwarded",
            ProxyHeader::XForwardedFor => "x_forwarded_for",
            ProxyHeader::XRealIp => "x_real_ip",
        }
    }
}

/// At most this many hops are read from the right of a chain (real chains hold a
/// handful); a client's padding beyond them costs nothing.
pub(crate) const MAX_HOPS: usize = 64;

/// One hop of a proxy chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// The address a proxy saw (IPv4-mapped IPv6 already shown as IPv4).
    Addr(IpAddr),
    /// `unknown`, an obfuscated `_id`, an element without `for`, an empty entry,
    /// garbage: no address.
    Opaque,
}

/// The hops of every `X-Forwarded-For` field line, right-most first (the lines in
/// order are one comma-separated list).
pub(crate) fn x_forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = Hop> + '_ {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','))
        .map(node)
}

/// The `for` hops of every `Forwarded` field line, right-most first.
pub(crate) fn forwarded(headers: &HeaderMap) -> impl Iterator<Item = Hop> + '_ {
    headers
        .get_all(FORWARDED)
        .iter()
        .rev()
        .flat_map(|line| ForwardedLine::parse(line.as_bytes()))
}

/// `X-Real-IP`: one address, written (not appended) by the closest proxy, so only the
/// last field line is read; a list or anything else is opaque.
pub(crate) fn x_real_ip(headers: &HeaderMap) -> impl Iterator<Item = Hop> + '_ {
    headers
        .get_all(X_REAL_IP)
        .iter()
        .next_back()
        .map(|line| node(line.as_bytes()))
        .into_iter()
}

/// The hops of one `Forwarded` line, read right to left. The line is scanned from
/// its right end, where the closest proxy wrote, so nothing a client put further left
/// (an unterminated quoted-string, stray escapes) can change how the proxy's own
/// elements read: the scan reaches the client's bytes only once the proxy's elements
/// are complete. What cannot be split (a quoted-string still open at the left end of the line)
/// is one opaque hop, the last of the line.
pub(crate) struct ForwardedLine<'a> {
    /// The part of the line not read yet; `None` once the left end was reached.
    rest: Option<&'a [u8]>,
}

impl<'a> ForwardedLine<'a> {
    pub(crate) fn parse(line: &'a [u8]) -> Self {
        ForwardedLine { rest: Some(line) }
    }
}

impl Iterator for ForwardedLine<'_> {
    type Item = Hop;

    fn next(&mut self) -> Option<Hop> {
        let line = self.rest?;
        let mut element = Element::default();
        let mut quoted = false;
        let mut pair_end = line.len();
        for (i, &b) in line.iter().enumerate().rev() {
            if b == b'"' && !escaped(line, i) {
                quoted = !quoted;
            } else if !quoted && (b == b';' || b == b',') {
                element.pair(line.get(i + 1..pair_end).unwrap_or_default());
                pair_end = i;
                if b == b',' {
                    self.rest = line.get(..i);
                    return Some(element.hop());
                }
            }
        }
        self.rest = None;
        if quoted {
            return Some(Hop::Opaque);
        }
        element.pair(line.get(..pair_end).unwrap_or_default());
        Some(element.hop())
    }
}

/// Whether the byte at `i` is escaped: preceded by an odd run of backslashes (inside a
/// quoted-string a backslash escapes the next byte, so `\\"` ends one and `\"` does
/// not).
fn escaped(line: &[u8], i: usize) -> bool {
    let before = line.get(..i).unwrap_or_default();
    before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// The `for` parameter of one forwarded-element.
#[derive(Debug, Default)]
struct Element {
    node: Option<Hop>,
    repeated: bool,
}

impl Element {
    fn pair(&mut self, pair: &[u8]) {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            return;
        };
        let (name, value) = pair.split_at(eq);
        if !trim(name).eq_ignore_ascii_case(b"for") {
            return;
        }
        // RFC 7239 §4: a parameter occurs at most once per element; two `for`s are
        // not a choice we make on the client's behalf.
        self.repeated |= self.node.is_some();
        self.node = Some(value_node(trim(value.get(1..).unwrap_or_default())));
    }

    fn hop(self) -> Hop {
        match self.node {
            Some(hop) if !self.repeated => hop,
            _ => Hop::Opaque,
        }
    }
}

/// The node in a token or quoted-string parameter value.
fn value_node(v: &[u8]) -> Hop {
    let Some(inner) = v.strip_prefix(b"\"") else {
        return node(v);
    };
    let Some(inner) = inner.strip_suffix(b"\"") else {
        return Hop::Opaque;
    };
    // The longest node worth reading, `[ffff:...:255.255.255.255]:65535`, is 54 bytes.
    let mut buf = [0u8; 64];
    let mut len = 0;
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        let b = match b {
            b'\\' => match bytes.next() {
                Some(&e) => e,
                None => return Hop::Opaque,
            },
            b'"' => return Hop::Opaque,
            b => b,
        };
        let Some(slot) = buf.get_mut(len) else {
            return Hop::Opaque;
        };
        *slot = b;
        len += 1;
    }
    node(buf.get(..len).unwrap_or_default())
}

/// A node: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:8080`, with an obfuscated port (`:_a1`) too; spaces around it
/// ignored. Anything else (`unknown`, `_hidden`, an empty entry, a zone id, bytes
/// that are not ASCII) is [`Hop::Opaque`].
pub(crate) fn node(raw: &[u8]) -> Hop {
    let raw = trim(raw);
    if raw.len() > 64 {
        return Hop::Opaque;
    }
    // The common hop, a bare IPv4 address, without the general parser; anything else
    // (ports, IPv6, leading zeros) takes the general path, which decides as before.
    if let Some(ip) = dotted_quad(raw) {
        return Hop::Addr(IpAddr::V4(ip));
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(address)
        .map_or(Hop::Opaque, |ip| Hop::Addr(canonical(ip)))
}

/// `a.b.c.d` with decimal octets of one to three digits, no leading zero, each at most
/// 255: a subset of what `Ipv4Addr`'s parser accepts, read to the same address.
fn dotted_quad(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    let mut n: u16 = 0;
    let mut digits = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                if digits > 0 && n == 0 {
                    return None;
                }
                n = n * 10 + u16::from(c - b'0');
                digits += 1;
                if n > 255 {
                    return None;
                }
            }
            b'.' if digits > 0 && i < 3 => {
                octets[i] = n as u8;
                i += 1;
                n = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if i != 3 || digits == 0 {
        return None;
    }
    octets[3] = n as u8;
    Some(Ipv4Addr::from(octets))
}

fn address(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        // Brackets are for IPv6 only (RFC 7239 §6).
        let (addr, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = addr.parse().ok()?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok.then_some(IpAddr::V6(ip));
    }
    let (addr, port) = s.rsplit_once(':')?;
    let ip: Ipv4Addr = addr.parse().ok()?;
    is_port(port).then_some(IpAddr::V4(ip))
}

/// `node-port = port / obfport` (RFC 7239 §6.1 and §6.3).
fn is_port(p: &str) -> bool {
    let digits = p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok();
    let obfuscated = p.strip_prefix('_').is_some_and(|o| {
        !o.is_empty()
            && o.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    digits || obfuscated
}

/// `s` without leading and trailing spaces and tabs (OWS).
fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(a), Some(b)) => s.get(a..=b).unwrap_or_default(),
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_quads_read_as_the_general_parser_does() {
        for s in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4:80",
            "1.2.3.0004",
            "10.0.0.255",
            "9.99.199.249",
            "1000.1.1.1",
            "",
        ] {
            let want = s.parse::<Ipv4Addr>().ok();
            let got = dotted_quad(s.as_bytes());
            if got.is_some() {
                assert_eq!(got, want, "{s:?}");
            }
            assert_eq!(
                node(s.as_bytes()),
                address(s).map_or(Hop::Opaque, |ip| Hop::Addr(canonical(ip))),
                "{s:?}"
            );
        }
    }
    use http::HeaderValue;

    fn headers(name: &HeaderName, lines: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                name,
                HeaderValue::from_bytes(l).expect("valid header value"),
            );
        }
        h
    }

    fn ip(s: &str) -> Hop {
        Hop::Addr(s.parse().expect("test ip"))
    }

    /// Hops left to right, as written.
    fn fwd(lines: &[&[u8]]) -> Vec<Hop> {
        let h = headers(&FORWARDED, lines);
        let mut v: Vec<Hop> = forwarded(&h).collect();
        v.reverse();
        v
    }

    fn xff(lines: &[&[u8]]) -> Vec<Hop> {
        let h = headers(&X_FORWARDED_FOR, lines);
        let mut v: Vec<Hop> = x_forwarded_for(&h).collect();
        v.reverse();
        v
    }

    const O: Hop = Hop::Opaque;

    #[test]
    fn forwarded_rfc7239_examples() {
        assert_eq!(
            fwd(&[
                br#"for="_gazonk", For="[2001:db8:cafe::17]:4711", for=192.0.2.60;proto=http;by=203.0.113.43, for=unknown"#
            ]),
            vec![O, ip("2001:db8:cafe::17"), ip("192.0.2.60"), O]
        );
        assert_eq!(
            fwd(&[br#"proto=https;for="198.51.100.17:80""#, b"by=10.0.0.1"]),
            vec![ip("198.51.100.17"), O]
        );
        assert_eq!(
            fwd(&[b"FOR = 192.0.2.1 ; proto=http"]),
            vec![ip("192.0.2.1")]
        );
        assert_eq!(
            fwd(&[br#"for="[::ffff:192.0.2.1]:80""#]),
            vec![ip("192.0.2.1")]
        );
        assert_eq!(fwd(&[br#"for="[::1]:_port""#]), vec![ip("::1")]);
        assert_eq!(fwd(&[br#"for="192.0.2.1:_x-1""#]), vec![ip("192.0.2.1")]);
    }

    #[test]
    fn forwarded_malformed() {
        // A broken line is one opaque hop; the lines after it still count.
        // An unterminated quoted-string spoils what is left of it, not what is right.
        assert_eq!(
            fwd(&[br#"for="192.0.2.1, for=6.6.6.6"#, b"for=192.0.2.9"]),
            vec![O, ip("6.6.6.6"), ip("192.0.2.9")]
        );
        assert_eq!(fwd(&[br#"for="1.2.3.4\"#]), vec![O]);
        assert_eq!(
            fwd(&[b"for=[::1, for=300.1.1.1, for=, ;;, ="]),
            vec![O, O, O, O, O]
        );
        assert_eq!(fwd(&[br#"for="\[::1\]""#]), vec![ip("::1")]);
        assert_eq!(
            fwd(&[b"for=\xff", b"for=192.0.2.9"]),
            vec![O, ip("192.0.2.9")]
        );
        // Two `for`s in one element, a quote in the middle, trailing bytes.
        assert_eq!(fwd(&[b"for=1.2.3.4;for=5.6.7.8"]), vec![O]);
        assert_eq!(fwd(&[br#"for="1.2"3.4""#]), vec![O]);
        assert_eq!(fwd(&[br#"for="1.2.3.4"x"#]), vec![O]);
        assert_eq!(fwd(&[br#"for="[::1]x""#]), vec![O]);
        assert_eq!(
            fwd(&[br#"for="[10.0.0.1]""#]),
            vec![O],
            "brackets are for IPv6"
        );
        assert_eq!(fwd(&[br#"for="fe80::1%eth0""#]), vec![O]);
        assert_eq!(fwd(&[b""]), vec![O]);
    }

    #[test]
    fn forwarded_reads_long_lines_from_the_right() {
        let mut line = String::new();
        for i in 0..200 {
            line.push_str(&format!("for=10.0.{}.{}, ", i / 256, i % 256));
        }
        line.push_str("for=192.0.2.1");
        let h = headers(&FORWARDED, &[line.as_bytes()]);
        let mut hops = forwarded(&h);
        assert_eq!(hops.next(), Some(ip("192.0.2.1")));
        assert_eq!(hops.next(), Some(ip("10.0.0.199")));
        assert_eq!(hops.count(), 199);
    }

    #[test]
    fn client_bytes_cannot_spoil_what_a_proxy_appended() {
        // A proxy appending `, for=...` to the client's own line (nginx with
        // `$http_forwarded, for=$remote_addr`).
        for client in [
            r#"for="6.6.6.6"#,
            r#"for="6.6.6.6\"#,
            r#"for=6.6.6.6\"#,
            r#"""#,
            r#"\\""#,
            r#"for="x\\\"#,
            r#"for="a;b,c"#,
            ";;,,",
        ] {
            let line = format!(r#"{client}, for=192.0.2.1, for="[2001:db8::1]:80""#);
            let hops: Vec<Hop> = ForwardedLine::parse(line.as_bytes()).take(2).collect();
            assert_eq!(hops, vec![ip("2001:db8::1"), ip("192.0.2.1")], "{line}");
        }
        assert!(escaped(br#"\""#, 1));
        assert!(!escaped(br#"a\\""#, 3));
        assert!(escaped(br#"\\\""#, 3));
    }

    #[test]
    fn xff_and_real_ip() {
        assert_eq!(
            xff(&[
                b" 203.0.113.7 , [2001:db8::1]:443,10.0.0.1:80, junk,",
                b"10.0.0.2"
            ]),
            vec![
                ip("203.0.113.7"),
                ip("2001:db8::1"),
                ip("10.0.0.1"),
                O,
                O,
                ip("10.0.0.2")
            ]
        );
        assert_eq!(
            xff(&[b"::ffff:10.0.0.1, 2001:db8::1\t"]),
            vec![ip("10.0.0.1"), ip("2001:db8::1")]
        );
        // Bytes that are not ASCII spoil only the entry they are in.
        assert_eq!(xff(&[b"1.2.3.4\xff, 10.0.0.2"]), vec![O, ip("10.0.0.2")]);
        assert_eq!(
            xff(&[b"unknown", b"01.2.3.4", b"1.2.3.4:99999"]),
            vec![O, O, O]
        );
        let real = |lines: &[&[u8]]| x_real_ip(&headers(&X_REAL_IP, lines)).collect::<Vec<Hop>>();
        assert_eq!(real(&[b" 198.51.100.1 "]), vec![ip("198.51.100.1")]);
        assert_eq!(
            real(&[b"6.6.6.6", b"198.51.100.1"]),
            vec![ip("198.51.100.1")]
        );
        assert_eq!(real(&[b"nope"]), vec![O]);
        assert_eq!(real(&[b"1.2.3.4, 5.6.7.8"]), vec![O]);
        assert_eq!(real(&[]), vec![]);
    }

    proptest::proptest! {
        /// Any bytes: no panic, and whatever a client wrote before it on the same line
        /// or on earlier lines, the element a proxy appended reads as written.
        #[test]
        fn appended_element_survives_any_client_bytes(
            client in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            earlier in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            v6 in proptest::prelude::any::<bool>(),
        ) {
            let (appended, want) = if v6 {
                (r#"for="[2001:db8::5]:8080""#, ip("2001:db8::5"))
            } else {
                ("for=192.0.2.5", ip("192.0.2.5"))
            };
            let mut line = client.clone();
            line.extend_from_slice(b", ");
            line.extend_from_slice(appended.as_bytes());
            let _ = node(&client);
            let _ = ForwardedLine::parse(&client).count();
            proptest::prop_assert_eq!(ForwardedLine::parse(&line).next(), Some(want));
            let mut xline = client;
            xline.extend_from_slice(b", 192.0.2.5");
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&earlier) {
                h.append(X_FORWARDED_FOR, v);
            }
            if let Ok(v) = HeaderValue::from_bytes(&xline) {
                h.append(X_FORWARDED_FOR, v);
                proptest::prop_assert_eq!(x_forwarded_for(&h).next(), Some(ip("192.0.2.5")));
            }
        }
    }
}
