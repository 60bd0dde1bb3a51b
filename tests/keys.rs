//! Key extractors: peer and client IPs (spoofing attempts, proxy chains, malformed
//! headers, IPv6 grouping), header keys, closures; and no panic on any header bytes.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderName, HeaderValue, Request};
use proptest::prelude::*;
use tower_ratelimit::key::{
    Cidr, ClientIp, Global, GlobalKey, HeaderKey, HeaderToken, KeyError, KeyExtractor, PeerIp,
    ProxyHeader, RequestHead, from_fn,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

/// A request from `peer` (a `SocketAddr` extension) with `headers`.
fn req(peer: Option<&str>, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().uri("/v1/image/edit");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut r = b.body(()).expect("valid request");
    if let Some(p) = peer {
        r.extensions_mut()
            .insert(p.parse::<SocketAddr>().expect("socket addr"));
    }
    r
}

fn key<E: KeyExtractor>(e: &E, r: &Request<()>) -> Result<E::Key, KeyError> {
    e.extract(&RequestHead::from_request(r))
}

/// A header key's text, so results compare with plain strings.
fn text(r: Result<HeaderToken, KeyError>) -> Result<String, KeyError> {
    r.map(|k| k.to_string())
}

const TRUSTED: [&str; 2] = ["10.0.0.0/8", "2001:db8:ffff::/48"];

/// Trusts 10/8 and 2001:db8:ffff::/48, reading `X-Forwarded-For`.
fn xff() -> ClientIp {
    ClientIp::x_forwarded_for(TRUSTED).expect("valid cidrs")
}

fn fwd() -> ClientIp {
    ClientIp::forwarded(TRUSTED).expect("valid cidrs")
}

fn real() -> ClientIp {
    ClientIp::x_real_ip(TRUSTED).expect("valid cidrs")
}

#[test]
fn global_key_is_one_bucket() {
    let r = req(None, &[]);
    assert_eq!(key(&GlobalKey, &r), Ok(Global));
    assert_eq!(Global.to_string(), "global");
}

#[test]
fn request_head_borrows_every_part() {
    let r = Request::post("http://example.test/a?b=1")
        .version(http::Version::HTTP_2)
        .header("x-a", "1")
        .body(())
        .expect("valid request");
    let h = RequestHead::from_request(&r);
    assert_eq!(h.method(), http::Method::POST);
    assert_eq!(h.uri().query(), Some("b=1"));
    assert_eq!(h.version(), http::Version::HTTP_2);
    assert_eq!(h.headers()["x-a"], "1");
    assert!(h.extensions().is_empty());
    let (parts, ()) = r.into_parts();
    assert_eq!(RequestHead::from_parts(&parts).uri().path(), "/a");
}

#[test]
fn peer_ip_sources_and_grouping() {
    assert_eq!(
        key(&PeerIp::new(), &req(Some("192.0.2.7:1234"), &[])),
        Ok(ip("192.0.2.7"))
    );
    assert_eq!(
        key(&PeerIp::new(), &req(None, &[])),
        Err(KeyError::Missing("peer address"))
    );
    // A bare IpAddr extension works too.
    let mut r = req(None, &[]);
    r.extensions_mut().insert(ip("198.51.100.3"));
    assert_eq!(key(&PeerIp::new(), &r), Ok(ip("198.51.100.3")));
    // Dual-stack sockets report IPv4 as mapped IPv6: same key as plain IPv4.
    let mapped = req(Some("[::ffff:192.0.2.7]:1234"), &[]);
    assert_eq!(key(&PeerIp::new(), &mapped), Ok(ip("192.0.2.7")));
    // One /64, one key; another /64, another key.
    let a = req(Some("[2001:db8:1:2::1]:1"), &[]);
    let b = req(Some("[2001:db8:1:2:ffff:ffff:ffff:ffff]:1"), &[]);
    let c = req(Some("[2001:db8:1:3::1]:1"), &[]);
    let p = PeerIp::new();
    assert_eq!(key(&p, &a), key(&p, &b));
    assert_ne!(key(&p, &a), key(&p, &c));
    assert_eq!(key(&p, &a), Ok(ip("2001:db8:1:2::")));
    let exact = PeerIp::new().ipv6_prefix(128);
    assert_ne!(key(&exact, &a), key(&exact, &b));
    let wide = PeerIp::new().ipv6_prefix(48).ipv4_prefix(24);
    assert_eq!(key(&wide, &a), key(&wide, &c));
    assert_eq!(
        key(&wide, &req(Some("192.0.2.200:1"), &[])),
        Ok(ip("192.0.2.0"))
    );
    // Out-of-range prefixes clamp instead of panicking.
    let clamp = PeerIp::new().ipv6_prefix(255).ipv4_prefix(99);
    assert_eq!(
        key(&clamp, &req(Some("192.0.2.200:1"), &[])),
        Ok(ip("192.0.2.200"))
    );
}

#[test]
fn spoofed_headers_from_untrusted_peers_are_ignored() {
    for k in [xff(), fwd(), real()] {
        for (name, value) in [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
        ] {
            let r = req(Some("203.0.113.50:5555"), &[(name, value)]);
            assert_eq!(key(&k, &r), Ok(ip("203.0.113.50")), "{name}");
        }
    }
    // Claiming to be a trusted proxy in the header does not help either.
    let r = req(
        Some("203.0.113.50:5555"),
        &[("x-forwarded-for", "1.2.3.4, 10.0.0.1")],
    );
    assert_eq!(key(&xff(), &r), Ok(ip("203.0.113.50")));
    // No trusted set at all: headers never count.
    let none = ClientIp::new(ProxyHeader::XForwardedFor, []);
    let r = req(Some("10.0.0.1:1"), &[("x-forwarded-for", "1.2.3.4")]);
    assert_eq!(key(&none, &r), Ok(ip("10.0.0.1")));
}

#[test]
fn rightmost_untrusted_hop_through_several_proxies() {
    let k = xff();
    // client -> (spoofed prefix) -> 10.1.1.1 -> 10.2.2.2 -> peer 10.3.3.3
    let r = req(
        Some("10.3.3.3:80"),
        &[(
            "x-forwarded-for",
            "6.6.6.6, 198.51.100.9, 10.1.1.1, 10.2.2.2",
        )],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.9")));
    // Split over several header lines, in order (HAProxy adds a line per hop).
    let r = req(
        Some("10.3.3.3:80"),
        &[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.9"),
            ("x-forwarded-for", "10.1.1.1"),
        ],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.9")));
    let r = req(
        Some("10.3.3.3:80"),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.9"),
        ],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.9")));
    // Ports, as some proxies write them in X-Forwarded-For.
    let r = req(
        Some("10.3.3.3:80"),
        &[("x-forwarded-for", "198.51.100.7:5678, [2001:db8::1]:443")],
    );
    assert_eq!(key(&k, &r), Ok(ip("2001:db8::")));
    // Forwarded, with IPv6 and ports; the client's /64 is the key.
    let r = req(
        Some("[2001:db8:ffff::1]:443"),
        &[(
            "forwarded",
            r#"for="[2001:db8:aaaa:bbbb::17]:4711", for=10.0.0.9;proto=https"#,
        )],
    );
    assert_eq!(key(&fwd(), &r), Ok(ip("2001:db8:aaaa:bbbb::")));
    assert_eq!(
        key(&fwd().ipv6_prefix(128), &r),
        Ok(ip("2001:db8:aaaa:bbbb::17"))
    );
    // Quoted, ported IPv4 and a case-insensitive parameter name.
    let r = req(
        Some("10.3.3.3:80"),
        &[(
            "forwarded",
            r#"For="198.51.100.20:80";proto=https, FOR=10.0.0.9"#,
        )],
    );
    assert_eq!(key(&fwd(), &r), Ok(ip("198.51.100.20")));
    // nginx's `$http_forwarded, for=$remote_addr` with no incoming header: an empty
    // element on the left, an unquoted IPv6 node.
    let r = req(
        Some("10.3.3.3:80"),
        &[("forwarded", ", for=2001:db8:aaaa:1::7")],
    );
    assert_eq!(key(&fwd(), &r), Ok(ip("2001:db8:aaaa:1::")));
    // Every hop trusted: the left-most is the client.
    let r = req(
        Some("10.3.3.3:80"),
        &[("x-forwarded-for", "10.0.0.5, 10.1.1.1")],
    );
    assert_eq!(key(&k, &r), Ok(ip("10.0.0.5")));
    // No header from a trusted peer: the peer is the client.
    assert_eq!(key(&k, &req(Some("10.3.3.3:80"), &[])), Ok(ip("10.3.3.3")));
    // X-Real-IP from a trusted proxy; several lines: the last, which the proxy wrote.
    let r = req(Some("10.3.3.3:80"), &[("x-real-ip", "198.51.100.10")]);
    assert_eq!(key(&real(), &r), Ok(ip("198.51.100.10")));
    let r = req(
        Some("10.3.3.3:80"),
        &[("x-real-ip", "6.6.6.6"), ("x-real-ip", "198.51.100.10")],
    );
    assert_eq!(key(&real(), &r), Ok(ip("198.51.100.10")));
    // Mapped addresses in the chain are trusted IPv4, and keys are plain IPv4.
    let r = req(
        Some("[::ffff:10.3.3.3]:80"),
        &[("x-forwarded-for", "::ffff:198.51.100.11, ::ffff:10.1.1.1")],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.11")));
    let r = req(
        Some("10.3.3.3:80"),
        &[("forwarded", r#"for="[::ffff:198.51.100.12]:9""#)],
    );
    assert_eq!(key(&fwd(), &r), Ok(ip("198.51.100.12")));
    // Grouping applies to the client found.
    let r = req(Some("10.3.3.3:80"), &[("x-forwarded-for", "198.51.100.77")]);
    assert_eq!(key(&xff().ipv4_prefix(24), &r), Ok(ip("198.51.100.0")));
}

#[test]
fn opaque_hops_stop_at_the_closest_trusted_proxy() {
    let peer = Some("10.3.3.3:80");
    // Garbage right next to the peer: the peer.
    for (k, value) in [
        (xff(), "198.51.100.9, garbage"),
        (xff(), ""),
        (xff(), "198.51.100.9,,"),
        (xff(), "unknown"),
        (xff(), "198.51.100.9, 1.2.3.4:99999"),
        (fwd(), "for=unknown"),
        (fwd(), r#"for="198.51.100.9"#),
        (fwd(), "proto=https"),
        (fwd(), "for=[2001:db8::1"),
        (fwd(), "for=198.51.100.9;for=198.51.100.10"),
        (real(), "not an ip"),
        (real(), "198.51.100.9, 198.51.100.10"),
    ] {
        let name = k.proxy_header().header_name();
        let r = req(peer, &[(name.as_str(), value)]);
        assert_eq!(key(&k, &r), Ok(ip("10.3.3.3")), "{name}: {value}");
    }
    // Garbage further left: the trusted proxy that wrote next to it.
    for (k, value) in [
        (fwd(), r#"for="_hidden", for=10.1.1.1"#),
        (xff(), "198.51.100.9, _hidden, 10.1.1.1, 10.2.2.2"),
        (xff(), "198.51.100.9, , 10.1.1.1"),
    ] {
        let name = k.proxy_header().header_name();
        let r = req(peer, &[(name.as_str(), value)]);
        assert_eq!(key(&k, &r), Ok(ip("10.1.1.1")), "{name}: {value}");
    }
    // A client's broken line does not hide the line its proxy appended.
    let r = req(
        peer,
        &[
            ("forwarded", r#"for="6.6.6.6"#),
            ("forwarded", "for=198.51.100.9"),
        ],
    );
    assert_eq!(key(&fwd(), &r), Ok(ip("198.51.100.9")));
    // Garbage left of the client is never read.
    let r = req(
        peer,
        &[("forwarded", r#"for=junk, for=198.51.100.9, for=10.1.1.1"#)],
    );
    assert_eq!(key(&fwd(), &r), Ok(ip("198.51.100.9")));
    let r = req(
        peer,
        &[("x-forwarded-for", "\"'%00<script>, unknown, 198.51.100.9")],
    );
    assert_eq!(key(&xff(), &r), Ok(ip("198.51.100.9")));
    // Non-UTF-8 bytes spoil only their own entry.
    let mut r = req(peer, &[]);
    r.headers_mut().insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"198.51.100.9\xff").expect("obs-text"),
    );
    assert_eq!(key(&xff(), &r), Ok(ip("10.3.3.3")));
    r.headers_mut()
        .append("x-forwarded-for", HeaderValue::from_static("198.51.100.10"));
    assert_eq!(key(&xff(), &r), Ok(ip("198.51.100.10")));
    // No peer at all is an error, not a guess from the headers.
    let r = req(None, &[("x-forwarded-for", "198.51.100.9")]);
    assert_eq!(key(&xff(), &r), Err(KeyError::Missing("peer address")));
}

#[test]
fn only_the_chosen_header_is_read() {
    // The proxy appends to X-Forwarded-For but passes Forwarded and X-Real-IP through
    // from the client: neither moves the key, whatever their order.
    let r = req(
        Some("10.3.3.3:80"),
        &[
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "5.6.7.8"),
            ("x-forwarded-for", "198.51.100.9"),
        ],
    );
    assert_eq!(key(&xff(), &r), Ok(ip("198.51.100.9")));
    assert_eq!(key(&fwd(), &r), Ok(ip("1.2.3.4")));
    assert_eq!(key(&real(), &r), Ok(ip("5.6.7.8")));
    // Another header present, the chosen one absent: the peer, never a fall-through.
    let r = req(Some("10.3.3.3:80"), &[("forwarded", "for=1.2.3.4")]);
    assert_eq!(key(&xff(), &r), Ok(ip("10.3.3.3")));
    assert_eq!(key(&real(), &r), Ok(ip("10.3.3.3")));
    assert_eq!(xff().proxy_header(), ProxyHeader::XForwardedFor);
    assert_eq!(fwd().proxy_header(), ProxyHeader::Forwarded);
    assert_eq!(real().proxy_header(), ProxyHeader::XRealIp);
}

#[test]
fn constructors_take_strings_cidrs_and_addresses() {
    assert_eq!(xff().trusted().len(), 2);
    assert!(ClientIp::x_forwarded_for(["10.0.0.0/40"]).is_err());
    assert_eq!(
        ClientIp::forwarded(["10.0.0.0/8", "nope"]).map(|_| ()),
        Err(tower_ratelimit::key::CidrError::Address("nope".into()))
    );
    let c: Cidr = "10.0.0.0/8".parse().expect("cidr");
    assert_eq!(ClientIp::new(ProxyHeader::Forwarded, [c]).trusted(), &[c]);
    let strings = vec!["127.0.0.0/8".to_owned(), "::1".to_owned()];
    let a = ClientIp::x_real_ip(&strings).expect("valid");
    let b = ClientIp::x_real_ip(strings).expect("valid");
    let c = ClientIp::x_real_ip(Cidr::loopback()).expect("infallible");
    let d = ClientIp::x_real_ip([ip("127.0.0.1"), ip("::1")]).expect("infallible");
    assert_eq!(a.trusted(), b.trusted());
    assert_eq!(a.trusted(), c.trusted());
    assert_eq!(d.trusted()[0].to_string(), "127.0.0.1/32");
    assert_eq!(d.trusted()[1].to_string(), "::1/128");
}

#[test]
fn header_keys() {
    let bearer = HeaderKey::bearer();
    let k = |h: &HeaderKey, v: &str| text(key(h, &req(None, &[("authorization", v)])));
    assert_eq!(k(&bearer, "Bearer abc.def"), Ok("abc.def".to_owned()));
    assert_eq!(k(&bearer, "bearer   abc  "), Ok("abc".to_owned()));
    assert_eq!(
        k(&bearer, "Bearerabc"),
        Err(KeyError::Invalid("authorization scheme"))
    );
    assert_eq!(
        k(&bearer, "Key abc"),
        Err(KeyError::Invalid("authorization scheme"))
    );
    assert_eq!(
        k(&bearer, "Bearer "),
        Err(KeyError::Invalid("header value (empty)"))
    );
    assert_eq!(
        k(&bearer, "Bé"),
        Err(KeyError::Invalid("header value (not visible ASCII)"))
    );
    assert_eq!(
        k(&HeaderKey::clarifai(), "Key PAT-1"),
        Ok("PAT-1".to_owned())
    );
    assert_eq!(
        text(key(&bearer, &req(None, &[]))),
        Err(KeyError::MissingHeader(http::header::AUTHORIZATION))
    );
    let api = HeaderKey::new(HeaderName::from_static("x-api-key")).max_len(8);
    assert_eq!(api.name(), "x-api-key");
    assert_eq!(
        text(key(&api, &req(None, &[("x-api-key", "k1")]))),
        Ok("k1".to_owned())
    );
    assert_eq!(
        text(key(&api, &req(None, &[("x-api-key", "123456789")]))),
        Err(KeyError::Invalid("header value (too long)"))
    );
    let mut r = req(None, &[]);
    r.headers_mut().insert(
        "x-api-key",
        HeaderValue::from_bytes(b"k\xe9").expect("obs-text"),
    );
    assert_eq!(
        text(key(&api, &r)),
        Err(KeyError::Invalid("header value (not visible ASCII)"))
    );
    // Two fields: ambiguous (an auth layer may read the other one), refused.
    assert_eq!(
        text(key(
            &api,
            &req(None, &[("x-api-key", "k1"), ("x-api-key", "k2")])
        )),
        Err(KeyError::Invalid("header (sent more than once)"))
    );
    assert_eq!(
        k(&bearer, "Bearer a"),
        Ok("a".to_owned()),
        "one field is fine"
    );
    let custom = HeaderKey::new(HeaderName::from_static("x-token")).scheme("Token ");
    assert_eq!(
        text(key(&custom, &req(None, &[("x-token", "TOKEN t")]))),
        Ok("t".to_owned())
    );
}

#[test]
fn closures_and_error_messages() {
    let by_path =
        from_fn(|r: &RequestHead<'_>| r.uri().path().split('/').nth(2).map(str::to_owned));
    assert_eq!(key(&by_path, &req(None, &[])), Ok("image".to_owned()));
    let never = from_fn(|_: &RequestHead<'_>| None::<u64>);
    assert_eq!(key(&never, &req(None, &[])), Err(KeyError::Missing("key")));
    assert_eq!(
        KeyError::Missing("peer address").to_string(),
        "the request has no peer address to key the rate limit on"
    );
    assert_eq!(
        KeyError::Invalid("authorization scheme").to_string(),
        "the request's authorization scheme is not a valid rate-limit key"
    );
}

#[cfg(feature = "axum")]
#[test]
fn axum_connect_info_is_the_peer() {
    let mut r = req(None, &[]);
    r.extensions_mut().insert(axum::extract::ConnectInfo(
        "192.0.2.33:9000".parse::<SocketAddr>().expect("addr"),
    ));
    assert_eq!(key(&PeerIp::new(), &r), Ok(ip("192.0.2.33")));
}

#[cfg(feature = "tonic")]
#[test]
fn tonic_connect_info_is_the_peer() {
    let mut r = req(None, &[]);
    r.extensions_mut()
        .insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some("192.0.2.34:9000".parse().expect("addr")),
        });
    assert_eq!(key(&PeerIp::new(), &r), Ok(ip("192.0.2.34")));
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        // Arbitrary bytes a header value may hold (no CR, LF, NUL).
        prop::collection::vec(
            any::<u8>().prop_filter("valid", |b| {
                *b != b'\r' && *b != b'\n' && *b != 0 && *b != 0x7f && (*b >= 0x20 || *b == b'\t')
            }),
            0..80
        )
        .prop_map(|v| HeaderValue::from_bytes(&v).expect("filtered bytes are valid")),
        // Plausible proxy syntax, shuffled.
        "([ ,;=\"\\[\\]:_a-z0-9.]|for=|10\\.0\\.0\\.1|::1|198\\.51\\.100\\.9){0,16}"
            .prop_map(|s| HeaderValue::from_str(&s).expect("ascii")),
    ]
}

/// The three forwarding headers.
const FORWARDING: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

proptest! {
    /// Any header bytes: every extractor answers (a key or an error) without
    /// panicking; ClientIp ignores every header from an untrusted peer, and from a
    /// trusted one reads its own header only (dropping the others changes nothing).
    #[test]
    fn no_panic_on_any_header_bytes(
        fwd_lines in prop::collection::vec(header_value(), 0..3),
        xff_lines in prop::collection::vec(header_value(), 0..3),
        real_lines in prop::collection::vec(header_value(), 0..2),
        auth in prop::option::of(header_value()),
        trusted_peer in any::<bool>(),
    ) {
        let peer = if trusted_peer { "10.9.9.9:1" } else { "203.0.113.1:1" };
        let mut r = req(Some(peer), &[]);
        let h = r.headers_mut();
        for v in fwd_lines { h.append("forwarded", v); }
        for v in xff_lines { h.append("x-forwarded-for", v); }
        for v in real_lines { h.append("x-real-ip", v); }
        if let Some(v) = auth { h.insert("authorization", v); }
        for k in [xff(), fwd(), real()] {
            let got = key(&k, &r).expect("a peer is present");
            if !trusted_peer {
                prop_assert_eq!(got, ip("203.0.113.1"));
            }
            let name = k.proxy_header().header_name();
            let mut only = req(Some(peer), &[]);
            for v in r.headers().get_all(&name) {
                only.headers_mut().append(&name, v.clone());
            }
            prop_assert_eq!(key(&k, &only), Ok(got));
        }
        let _ = key(&HeaderKey::bearer(), &r);
        let _ = key(&HeaderKey::new(http::header::AUTHORIZATION), &r);
        prop_assert!(key(&PeerIp::new(), &r).is_ok());
    }
}

#[test]
fn peer_ip_constant_is_the_default() {
    let r = req(Some("[2001:db8:1:2::1]:1"), &[]);
    assert_eq!(PeerIp, PeerIp::new());
    assert_eq!(PeerIp, PeerIp::default());
    assert_ne!(PeerIp, PeerIp::new().ipv6_prefix(48));
    assert_eq!(key(&PeerIp, &r), Ok(ip("2001:db8:1:2::")));
    let c = ClientIp::new(ProxyHeader::XForwardedFor, []);
    assert_eq!(key(&c, &r), Ok(ip("2001:db8:1:2::")));
}

/// How the proxy chain writes a hop: its syntax and whether it joins the last line.
#[derive(Debug, Clone, Copy)]
enum Syntax {
    XForwardedFor,
    Forwarded,
    XRealIp,
}

/// A client address and how a proxy might write it.
fn client_addr() -> impl Strategy<Value = (IpAddr, String, String)> {
    let v4 = (0u8..=255, 1u8..=254, any::<u16>()).prop_flat_map(|(c, d, port)| {
        let addr = ip(&format!("203.0.{c}.{d}"));
        prop_oneof![
            Just((addr, addr.to_string(), addr.to_string())),
            Just((addr, format!("{addr}:{port}"), format!("\"{addr}:{port}\""))),
            Just((
                addr,
                format!("::ffff:{addr}"),
                format!("\"[::ffff:{addr}]\"")
            )),
        ]
    });
    let v6 = (any::<u16>(), any::<u16>(), any::<u16>()).prop_flat_map(|(a, b, port)| {
        let addr = ip(&format!("2001:db8:{a:x}::{b:x}"));
        prop_oneof![
            Just((addr, addr.to_string(), format!("\"[{addr}]\""))),
            Just((
                addr,
                format!("[{addr}]:{port}"),
                format!("\"[{addr}]:{port}\"")
            )),
        ]
    });
    prop_oneof![v4, v6]
}

/// Appends one hop the way proxies do: a new field line (HAProxy), or joined to the
/// last line with `, ` (nginx's `$proxy_add_x_forwarded_for`).
fn append_hop(lines: &mut Vec<Vec<u8>>, hop: &str, new_line: bool) {
    match lines.last_mut() {
        Some(last) if !new_line => {
            last.extend_from_slice(b", ");
            last.extend_from_slice(hop.as_bytes());
        }
        _ => lines.push(hop.as_bytes().to_vec()),
    }
}

proptest! {
    /// Whatever a client writes (extra left-hand entries, whole forged lines of the
    /// header its proxy appends to, broken quoting, any bytes; forged values of the
    /// other forwarding headers), the key is the address its first trusted proxy saw.
    #[test]
    fn forged_entries_never_move_the_key(
        forged_lines in prop::collection::vec(header_value(), 0..4),
        others in prop::collection::vec((0usize..3, header_value()), 0..4),
        (client, xff_form, fwd_form) in client_addr(),
        proxies_seen in prop::collection::vec((0u8..=255, 0u8..=255, any::<bool>()), 0..4),
        client_new_line in any::<bool>(),
        syntax in prop_oneof![
            Just(Syntax::XForwardedFor),
            Just(Syntax::Forwarded),
            Just(Syntax::XRealIp)
        ],
    ) {
        let (name, extractor) = match syntax {
            Syntax::XForwardedFor => ("x-forwarded-for", xff()),
            Syntax::Forwarded => ("forwarded", fwd()),
            Syntax::XRealIp => ("x-real-ip", real()),
        };
        let mut lines: Vec<Vec<u8>> =
            forged_lines.iter().map(|v| v.as_bytes().to_vec()).collect();
        match syntax {
            Syntax::XForwardedFor => {
                append_hop(&mut lines, &xff_form, client_new_line);
                for (a, b, new_line) in &proxies_seen {
                    append_hop(&mut lines, &format!("10.{a}.{b}.1"), *new_line);
                }
            }
            Syntax::Forwarded => {
                append_hop(&mut lines, &format!("for={fwd_form};proto=https"), client_new_line);
                for (a, b, new_line) in &proxies_seen {
                    append_hop(&mut lines, &format!("For=\"10.{a}.{b}.1\""), *new_line);
                }
            }
            // The proxy replaces whatever the client sent.
            Syntax::XRealIp => lines = vec![xff_form.into_bytes()],
        }
        let mut r = req(Some("10.200.0.1:443"), &[]);
        for (i, v) in others {
            let other = FORWARDING[i];
            if other != name {
                r.headers_mut().append(other, v);
            }
        }
        for line in &lines {
            let v = HeaderValue::from_bytes(line).expect("forged bytes are valid header bytes");
            r.headers_mut().append(name, v);
        }
        prop_assert_eq!(key(&extractor.ipv6_prefix(128), &r), Ok(client));
    }
}
