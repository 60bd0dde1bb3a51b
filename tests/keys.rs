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

fn proxies() -> ClientIp {
    ClientIp::trusting(["10.0.0.0/8", "2001:db8:ffff::/48"]).expect("valid cidrs")
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
    let k = proxies();
    for (name, value) in [
        ("x-forwarded-for", "1.2.3.4"),
        ("x-real-ip", "1.2.3.4"),
        ("forwarded", "for=1.2.3.4"),
    ] {
        let r = req(Some("203.0.113.50:5555"), &[(name, value)]);
        assert_eq!(key(&k, &r), Ok(ip("203.0.113.50")), "{name}");
    }
    // Claiming to be a trusted proxy in the header does not help either.
    let r = req(
        Some("203.0.113.50:5555"),
        &[("x-forwarded-for", "1.2.3.4, 10.0.0.1")],
    );
    assert_eq!(key(&k, &r), Ok(ip("203.0.113.50")));
    // No trusted set at all: headers never count.
    let none = ClientIp::new([]);
    let r = req(Some("10.0.0.1:1"), &[("x-forwarded-for", "1.2.3.4")]);
    assert_eq!(key(&none, &r), Ok(ip("10.0.0.1")));
}

#[test]
fn rightmost_untrusted_hop_through_several_proxies() {
    let k = proxies();
    // client -> (spoofed prefix) -> 10.1.1.1 -> 10.2.2.2 -> peer 10.3.3.3
    let r = req(
        Some("10.3.3.3:80"),
        &[(
            "x-forwarded-for",
            "6.6.6.6, 198.51.100.9, 10.1.1.1, 10.2.2.2",
        )],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.9")));
    // Split over several header lines, in order.
    let r = req(
        Some("10.3.3.3:80"),
        &[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.9"),
            ("x-forwarded-for", "10.1.1.1"),
        ],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.9")));
    // Forwarded, with IPv6 and ports; the client's /64 is the key.
    let r = req(
        Some("[2001:db8:ffff::1]:443"),
        &[(
            "forwarded",
            r#"for="[2001:db8:aaaa:bbbb::17]:4711", for=10.0.0.9;proto=https"#,
        )],
    );
    assert_eq!(key(&k, &r), Ok(ip("2001:db8:aaaa:bbbb::")));
    // Every hop trusted: the left-most is the client.
    let r = req(
        Some("10.3.3.3:80"),
        &[("x-forwarded-for", "10.0.0.5, 10.1.1.1")],
    );
    assert_eq!(key(&k, &r), Ok(ip("10.0.0.5")));
    // X-Real-IP from a trusted proxy.
    let r = req(Some("10.3.3.3:80"), &[("x-real-ip", "198.51.100.10")]);
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.10")));
    // Mapped addresses in the chain are recognised as trusted IPv4.
    let r = req(
        Some("[::ffff:10.3.3.3]:80"),
        &[("x-forwarded-for", "198.51.100.11, ::ffff:10.1.1.1")],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.11")));
}

#[test]
fn malformed_or_opaque_hops_fall_back_to_the_peer() {
    let k = proxies();
    let peer = Some("10.3.3.3:80");
    for (name, value) in [
        ("x-forwarded-for", "198.51.100.9, garbage"),
        ("x-forwarded-for", ""),
        ("x-forwarded-for", "198.51.100.9,,"),
        ("forwarded", "for=unknown"),
        ("forwarded", r#"for="_hidden", for=10.1.1.1"#),
        ("forwarded", r#"for="198.51.100.9"#),
        ("forwarded", "proto=https"),
        ("forwarded", "for=[2001:db8::1"),
        ("x-real-ip", "not an ip"),
    ] {
        let r = req(peer, &[(name, value)]);
        assert_eq!(key(&k, &r), Ok(ip("10.3.3.3")), "{name}: {value}");
    }
    // A client's broken line does not hide the line its proxy appended.
    let r = req(
        peer,
        &[
            ("forwarded", r#"for="6.6.6.6"#),
            ("forwarded", "for=198.51.100.9"),
        ],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.9")));
    // Garbage left of the client is never read.
    let r = req(
        peer,
        &[("forwarded", r#"for=junk, for=198.51.100.9, for=10.1.1.1"#)],
    );
    assert_eq!(key(&k, &r), Ok(ip("198.51.100.9")));
    // Non-UTF-8 bytes.
    let mut r = req(peer, &[]);
    r.headers_mut().insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"198.51.100.9\xff").expect("obs-text"),
    );
    assert_eq!(key(&k, &r), Ok(ip("10.3.3.3")));
    // No peer at all is an error, not a guess from the headers.
    let r = req(None, &[("x-forwarded-for", "198.51.100.9")]);
    assert_eq!(key(&k, &r), Err(KeyError::Missing("peer address")));
}

#[test]
fn header_choice_blocks_injection_through_other_headers() {
    // The proxy sets X-Forwarded-For but passes Forwarded through from the client.
    let r = req(
        Some("10.3.3.3:80"),
        &[
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "198.51.100.9"),
        ],
    );
    let default = proxies();
    assert_eq!(
        key(&default, &r),
        Ok(ip("1.2.3.4")),
        "default: first present"
    );
    let xff_only = proxies().header(ProxyHeader::XForwardedFor);
    assert_eq!(key(&xff_only, &r), Ok(ip("198.51.100.9")));
    let real_only = proxies().header(ProxyHeader::XRealIp);
    assert_eq!(key(&real_only, &r), Ok(ip("10.3.3.3")));
    assert_eq!(proxies().trusted().len(), 2);
    assert!(ClientIp::trusting(["10.0.0.0/40"]).is_err());
    let c: Cidr = "10.0.0.0/8".parse().expect("cidr");
    assert_eq!(ClientIp::new([c]).trusted(), &[c]);
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

proptest! {
    /// Any header bytes: every extractor answers (a key or an error) without
    /// panicking, and ClientIp's answer is the peer or an address from the headers.
    #[test]
    fn no_panic_on_any_header_bytes(
        fwd in prop::collection::vec(header_value(), 0..3),
        xff in prop::collection::vec(header_value(), 0..3),
        real in prop::option::of(header_value()),
        auth in prop::option::of(header_value()),
        trusted_peer in any::<bool>(),
    ) {
        let peer = if trusted_peer { "10.9.9.9:1" } else { "203.0.113.1:1" };
        let mut r = req(Some(peer), &[]);
        let h = r.headers_mut();
        for v in fwd { h.append("forwarded", v); }
        for v in xff { h.append("x-forwarded-for", v); }
        if let Some(v) = real { h.insert("x-real-ip", v); }
        if let Some(v) = auth { h.insert("authorization", v); }
        let got = key(&proxies(), &r).expect("a peer is present");
        if !trusted_peer {
            prop_assert_eq!(got, ip("203.0.113.1"));
        }
        let _ = key(&proxies().header(ProxyHeader::Forwarded), &r);
        let _ = key(&proxies().header(ProxyHeader::XRealIp), &r);
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
    assert_eq!(key(&PeerIp, &r), Ok(ip("2001:db8:1:2::")));
    let c = ClientIp::new([]);
    assert_eq!(key(&c, &r), Ok(ip("2001:db8:1:2::")));
}

proptest! {
    /// Whatever a client writes to the left of its own hop, the key is the address the
    /// first trusted proxy saw: the right-most untrusted hop.
    #[test]
    fn client_prefix_cannot_move_the_key(
        spoofed in prop::collection::vec("[ -+\\--~]{0,20}", 0..4),
        client in (0u8..=255, 0u8..=255),
        proxies_seen in prop::collection::vec((0u8..=255, 0u8..=255), 0..4),
        forwarded_syntax in any::<bool>(),
    ) {
        let client_ip = format!("203.0.{}.{}", client.0, client.1);
        let mut hops: Vec<String> = spoofed;
        hops.push(client_ip.clone());
        hops.extend(proxies_seen.iter().map(|(a, b)| format!("10.{a}.{b}.1")));
        let (name, value) = if forwarded_syntax {
            let v: Vec<String> = hops.iter().map(|h| format!("for=\"{}\"", h.replace(['"', '\\'], ""))).collect();
            ("forwarded", v.join(", "))
        } else {
            ("x-forwarded-for", hops.join(", "))
        };
        let r = req(Some("10.200.0.1:443"), &[(name, value.as_str())]);
        prop_assert_eq!(key(&proxies(), &r), Ok(ip(&client_ip)));
    }
}
