//! Parsing proxy headers into a chain of hops: `Forwarded` (RFC 7239),
//! `X-Forwarded-For` and `X-Real-IP`. Lenient where it is safe (ports, brackets,
//! spaces), strict where it matters (an unparsable hop is never guessed at).

use std::net::{IpAddr, SocketAddr};

use http::HeaderValue;

/// One hop of the chain, client first: an address, or `None` for a hop that names no
/// address (`unknown`, an obfuscated `_id`, a missing `for`, garbage).
pub(crate) type Hop = Option<IpAddr>;

/// A field line that cannot be split (not UTF-8, an unterminated quote). It becomes
/// one hop that names no address, so the lines a trusted proxy appended after it
/// still count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

/// The `for` hops of every `Forwarded` field line, in order.
pub(crate) fn forwarded<'a>(fields: impl Iterator<Item = &'a HeaderValue>) -> Vec<Hop> {
    let mut hops = Vec::new();
    for field in fields {
        if forwarded_line(field, &mut hops).is_err() {
            hops.push(None);
        }
    }
    hops
}

fn forwarded_line(field: &HeaderValue, hops: &mut Vec<Hop>) -> Result<(), Malformed> {
    let s = std::str::from_utf8(field.as_bytes()).map_err(|_| Malformed)?;
    let elements = split_unquoted(s, b',')?;
    let mut line = Vec::with_capacity(elements.len());
    for element in elements {
        let mut hop = None;
        for pair in split_unquoted(element, b';')? {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("for") {
                hop = unquote(value.trim()).as_deref().and_then(node);
                break;
            }
        }
        line.push(hop);
    }
    hops.extend(line);
    Ok(())
}

/// The hops of every `X-Forwarded-For` field line, in order (a line that is not UTF-8
/// is one hop naming no address).
pub(crate) fn x_forwarded_for<'a>(fields: impl Iterator<Item = &'a HeaderValue>) -> Vec<Hop> {
    let mut hops = Vec::new();
    for field in fields {
        match std::str::from_utf8(field.as_bytes()) {
            Ok(s) => hops.extend(s.split(',').map(|h| node(h.trim()))),
            Err(_) => hops.push(None),
        }
    }
    hops
}

/// The single address of `X-Real-IP` (the first field if several).
pub(crate) fn x_real_ip(field: &HeaderValue) -> Vec<Hop> {
    let s = std::str::from_utf8(field.as_bytes()).unwrap_or("");
    vec![node(s.trim())]
}

/// A node: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:8080`. Anything else (`unknown`, `_hidden`) names no address.
pub(crate) fn node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    // `[v6]` without a port, or `[v6]:port` with an obfuscated port.
    let inner = s.strip_prefix('[')?;
    let (addr, _rest) = inner.split_once(']')?;
    addr.parse::<IpAddr>().ok().filter(IpAddr::is_ipv6)
}

/// Splits `s` on `sep` outside double quotes (honouring `\` escapes inside them).
fn split_unquoted(s: &str, sep: u8) -> Result<Vec<&str>, Malformed> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if !quoted && b == sep {
            // `sep` is ASCII, so `i` is a char boundary.
            parts.push(s.get(start..i).ok_or(Malformed)?);
            start = i + 1;
        }
    }
    if quoted {
        return Err(Malformed);
    }
    parts.push(s.get(start..).ok_or(Malformed)?);
    Ok(parts)
}

/// A token as is, or a quoted-string unescaped; `None` for a broken quoted-string.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Some(v.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("valid header value")
    }

    fn ip(s: &str) -> Hop {
        Some(s.parse().expect("test ip"))
    }

    #[test]
    fn forwarded_rfc7239_examples() {
        let f = hv(
            r#"for="_gazonk", For="[2001:db8:cafe::17]:4711", for=192.0.2.60;proto=http;by=203.0.113.43, for=unknown"#,
        );
        assert_eq!(
            forwarded(std::iter::once(&f)),
            vec![None, ip("2001:db8:cafe::17"), ip("192.0.2.60"), None]
        );
        let g = hv(r#"proto=https;for="198.51.100.17:80""#);
        let h = hv("by=10.0.0.1");
        assert_eq!(
            forwarded([&g, &h].into_iter()),
            vec![ip("198.51.100.17"), None]
        );
    }

    #[test]
    fn forwarded_malformed() {
        // A broken line is one opaque hop; the lines after it still count.
        let f = hv(r#"for="192.0.2.1, for=6.6.6.6"#);
        let next = hv("for=192.0.2.9");
        assert_eq!(
            forwarded([&f, &next].into_iter()),
            vec![None, ip("192.0.2.9")]
        );
        let f = hv(r#"for="1.2.3.4\"#);
        assert_eq!(forwarded(std::iter::once(&f)), vec![None]);
        let f = hv("for=[::1, for=300.1.1.1, for=, ;;, =");
        assert_eq!(
            forwarded(std::iter::once(&f)),
            vec![None, None, None, None, None]
        );
        let f = hv(r#"for="\[::1\]""#);
        assert_eq!(forwarded(std::iter::once(&f)), vec![ip("::1")]);
        let bin = HeaderValue::from_bytes(b"for=\xff").expect("obs-text");
        assert_eq!(
            forwarded([&bin, &next].into_iter()),
            vec![None, ip("192.0.2.9")]
        );
    }

    #[test]
    fn xff_and_real_ip() {
        let a = hv(" 203.0.113.7 , [2001:db8::1]:443,10.0.0.1:80, junk,");
        let b = hv("10.0.0.2");
        assert_eq!(
            x_forwarded_for([&a, &b].into_iter()),
            vec![
                ip("203.0.113.7"),
                ip("2001:db8::1"),
                ip("10.0.0.1"),
                None,
                None,
                ip("10.0.0.2")
            ]
        );
        assert_eq!(x_real_ip(&hv(" 198.51.100.1 ")), vec![ip("198.51.100.1")]);
        assert_eq!(x_real_ip(&hv("nope")), vec![None]);
        let bin = HeaderValue::from_bytes(b"\xff").expect("obs-text");
        assert_eq!(
            x_forwarded_for([&bin, &b].into_iter()),
            vec![None, ip("10.0.0.2")]
        );
        assert_eq!(x_real_ip(&bin), vec![None]);
        assert_eq!(node("[10.0.0.1]"), None, "brackets are for IPv6 only");
        assert_eq!(node("[::1]:_port"), ip("::1"));
    }
}
