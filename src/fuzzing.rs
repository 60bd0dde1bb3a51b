//! Entry points shared by the `cargo fuzz` targets (`fuzz/`) and their proptest
//! equivalents (`tests/fuzz_equivalents.rs`). Not part of the API: feature `fuzzing`,
//! hidden from the docs, free to change.
//!
//! Each function takes arbitrary bytes, drives one parser of untrusted input, and
//! panics only when a property the crate promises is broken (a panic inside a parser is
//! a finding too).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request};

use crate::clock::ManualClock;
use crate::key::{ClientIp, HeaderKey, KeyExtractor, PeerIp, RequestHead};
use crate::quota::{MAX_QUOTAS, Quota, Quotas};
use crate::store::memory::RateLimiter;

/// The forwarding headers and one that is not.
const NAMES: [&str; 4] = ["forwarded", "x-forwarded-for", "x-real-ip", "x-other"];

/// A request from `peer` with the header lines encoded in `data`: lines split at `\n`,
/// each line's first byte picks the header name, the rest is the value (lines that are
/// not valid field values are dropped, as a server's parser would refuse them).
fn forwarded_request(peer: SocketAddr, data: &[u8]) -> Request<()> {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&sel, value)) = line.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(sel) % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let mut req = Request::new(());
    *req.headers_mut() = headers;
    req.extensions_mut().insert(peer);
    req
}

/// Forwarding headers through [`ClientIp`] (every header choice), from a trusted and
/// an untrusted peer: never a panic, an untrusted peer always keys on itself, and the
/// key of a trusted peer is the peer or an address written in the headers.
pub fn forwarding(data: &[u8]) {
    let (sel, rest) = data.split_first().unwrap_or((&0, &[]));
    let trusted_peer: SocketAddr = if sel & 1 == 0 {
        SocketAddr::from(([10, 0, 0, 2], 40_000))
    } else {
        SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 2], 40_000))
    };
    let untrusted_peer = SocketAddr::from(([198, 51, 100, 4], 40_000));
    let trusted = ["10.0.0.0/8", "fd00::/8"];
    let (Ok(xff), Ok(fwd), Ok(real)) = (
        ClientIp::x_forwarded_for(trusted),
        ClientIp::forwarded(trusted),
        ClientIp::x_real_ip(trusted),
    ) else {
        panic!("static CIDRs parse");
    };
    let extractors = [xff.clone(), fwd, real, xff.ipv6_prefix(128)];
    for peer in [trusted_peer, untrusted_peer] {
        let req = forwarded_request(peer, rest);
        let head = RequestHead::from_request(&req);
        let by_peer = PeerIp::default().extract(&head);
        let raw = String::from_utf8_lossy(rest);
        for x in &extractors {
            let key = x.extract(&head);
            if peer == untrusted_peer {
                assert_eq!(
                    key.as_ref().ok(),
                    by_peer.as_ref().ok(),
                    "an untrusted peer chose its key"
                );
            }
            if let Ok(ip) = key {
                // The key is the peer's address or one the headers spelled out (grouped).
                let from_peer = by_peer.as_ref().is_ok_and(|p| *p == ip) || ip == peer.ip();
                assert!(
                    from_peer || appears_grouped(ip, &raw),
                    "key {ip} is neither the peer nor an address in the headers"
                );
            }
        }
    }
}

/// Whether `ip` (possibly a grouped prefix) can come from an address written in `raw`.
fn appears_grouped(ip: IpAddr, raw: &str) -> bool {
    match ip {
        // IPv4 is not grouped by default; IPv6 is grouped by /64, whose printed form need
        // not appear verbatim, so accept any IPv6 key when the headers hold a ':'.
        IpAddr::V4(v4) => raw.contains(&v4.to_string()) || raw.contains(':'),
        IpAddr::V6(_) => raw.contains(':'),
    }
}

/// An `Authorization` (or `x-api-key`) value through [`HeaderKey`]: never a panic, and a
/// key is visible ASCII (inner blanks allowed), trimmed, non-empty, no longer than the limit and taken from the value.
pub fn header_key(data: &[u8]) {
    let (sel, value) = data.split_first().unwrap_or((&0, &[]));
    let Ok(v) = HeaderValue::from_bytes(value) else {
        return;
    };
    let max = 1 + usize::from(*sel) * 8;
    let extractors = [
        HeaderKey::bearer(),
        HeaderKey::clarifai(),
        HeaderKey::new(HeaderName::from_static("x-api-key")),
        HeaderKey::new(HeaderName::from_static("x-api-key")).max_len(max),
        HeaderKey::bearer().max_len(max),
    ];
    let mut req = Request::new(());
    req.headers_mut()
        .insert(http::header::AUTHORIZATION, v.clone());
    req.headers_mut().insert("x-api-key", v);
    let head = RequestHead::from_request(&req);
    for (i, x) in extractors.iter().enumerate() {
        if let Ok(token) = x.extract(&head) {
            let key = token.as_str();
            assert!(!key.is_empty(), "empty key");
            // Field values allow SP and HTAB inside; the key is trimmed of both.
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
            );
            assert_eq!(key.trim(), key, "untrimmed key");
            assert!(i < 3 || key.len() <= max, "key longer than max_len");
            assert!(
                value.windows(key.len()).any(|w| w == key.as_bytes()),
                "key not taken from the value"
            );
        }
    }
}

/// The client's hint parsers over `data` as every rate-limit field and as a body.
#[cfg(feature = "client")]
pub fn hints(data: &[u8]) {
    use crate::client::hints::{self, RateLimitHints};
    use std::time::SystemTime;

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    let _ = hints::parse_limit(data);
    let _ = hints::parse_int(data);
    let _ = hints::parse_reset(data, now);
    let _ = hints::parse_ratelimit_policy(data);
    let _ = hints::parse_ratelimit(data);
    let _ = hints::parse_retry_after(data, now);
    let _ = hints::is_clarifai_throttled(data);
    const FIELDS: [&str; 11] = [
        "retry-after",
        "ratelimit-policy",
        "ratelimit",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "grpc-status",
        "grpc-message",
    ];
    let mut all = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        for name in FIELDS {
            let mut one = HeaderMap::new();
            one.insert(HeaderName::from_static(name), v.clone());
            all.insert(HeaderName::from_static(name), v.clone());
            let h = RateLimitHints::from_headers(http::StatusCode::OK, &one, now);
            let _ = (h.wait(), h.quotas());
        }
        let _ = hints::is_grpc_resource_exhausted(&all);
    }
    // Several fields at once, each from its own slice of the input.
    let mut mixed = HeaderMap::new();
    for (i, chunk) in data.split(|&b| b == b'\n').enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(chunk) {
            mixed.append(HeaderName::from_static(FIELDS[i % FIELDS.len()]), v);
        }
    }
    for status in [http::StatusCode::OK, http::StatusCode::TOO_MANY_REQUESTS] {
        let h = RateLimitHints::from_headers(status, &mixed, now).with_body(data);
        // A server may ask for any wait (`Retry-After: 11111111111111111111` is 3.5e11
        // years); the parsers report it as said and the retry policy and pacer bound it
        // (`max_total`, saturating deadlines), so only "no panic" is asked here.
        let _ = h.wait();
        if let Some(q) = h.quotas() {
            assert!((1..=MAX_QUOTAS).contains(&q.len()));
        }
    }
}

/// Reads little-endian integers off the input, zero when it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u64(&mut self, n: usize) -> u64 {
        let take = n.min(self.0.len());
        let (head, rest) = self.0.split_at(take);
        self.0 = rest;
        head.iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }
}

/// Quotas as text (`"4/s burst 2, 120/min"`): never a panic, and whatever parses prints
/// back to text that parses to the same quota or set.
pub fn quota_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(q) = text.parse::<Quota>() {
        assert_eq!(q.to_string().parse::<Quota>().ok(), Some(q.clone()), "{q}");
    }
    if let Ok(set) = text.parse::<Quotas>() {
        assert_eq!(
            set.to_string().parse::<Quotas>().ok(),
            Some(set.clone()),
            "{set}"
        );
    }
}

/// Quotas from arbitrary numbers: construction is an error or a valid set, and a
/// limiter over it on a manual clock never admits more than `b + floor(L/T)` per quota
/// over the elapsed time `L`, whatever the clock does.
pub fn quota(data: &[u8]) {
    let mut b = Bytes(data);
    let n = 1 + (b.u64(1) as usize) % (MAX_QUOTAS + 1);
    let mut quotas = Vec::new();
    for _ in 0..n {
        let limit = b.u64(4) as u32;
        let window = Duration::from_nanos(b.u64(8));
        let burst = b.u64(4) as u32;
        let Ok(mut q) = Quota::new(limit, window) else {
            continue;
        };
        if burst & 1 == 1 {
            match q.clone().with_burst(burst >> 1) {
                Ok(with) => q = with,
                Err(_) => continue,
            }
        }
        assert!(q.limit() > 0 && q.burst() > 0 && !q.window().is_zero());
        assert!(q.emission_interval() >= q.window() / q.limit());
        quotas.push(q);
    }
    let Ok(set) = Quotas::new(quotas) else {
        return;
    };
    let clock = ManualClock::new();
    let start = b.u64(8);
    clock.set_ns(start);
    let limiter = RateLimiter::with_clock(set.clone(), clock.clone());
    let mut admitted = 0u64;
    // The limiter's timeline is the running maximum of the readings it admitted at (a
    // denial or an error writes nothing, a reading behind the state adds no time): every
    // admission lies between the first admission's reading and the latest.
    let read = |c: &ManualClock| crate::clock::Clock::now_ns(c).min(crate::clock::MAX_NOW_NS);
    let mut first = None;
    let mut latest = 0;
    for _ in 0..64 {
        let step = b.u64(2);
        if b.0.is_empty() && step == 0 {
            break;
        }
        match step & 3 {
            // Forward by a small, large or huge step; or back.
            0 => clock.advance(Duration::from_nanos(step >> 2)),
            1 => clock.advance(Duration::from_nanos((step >> 2) << 30)),
            2 => clock.advance(Duration::from_secs((step >> 2) * 86_400 * 365)),
            _ => clock.set_ns(start.saturating_sub(step)),
        }
        let cost = 1 + (b.u64(1) as u32 & 3);
        let now = read(&clock);
        if let Ok(d) = limiter.check_n(cost)
            && d.is_allowed()
        {
            admitted += u64::from(cost);
            let first = *first.get_or_insert(now);
            latest = latest.max(now).max(first);
        }
    }
    // In the set's unit, as the limiter counts: readings floored, intervals rounded up.
    let res = set.resolution().as_nanos().max(1);
    let elapsed = u128::from(latest) / res - u128::from(first.unwrap_or(latest)) / res;
    for q in set.iter() {
        let t = q.emission_interval().as_nanos().div_ceil(res).max(1);
        let bound = u128::from(q.burst()) + elapsed / t;
        assert!(
            u128::from(admitted) <= bound,
            "{q:?}: admitted {admitted} > {bound} over {elapsed} units"
        );
    }
}

/// A RESP reply (as Redis would send it) through the Redis store's reply checks and
/// conversion, for sets of 1 to [`MAX_QUOTAS`] quotas.
#[cfg(feature = "redis")]
pub fn redis_reply(data: &[u8]) {
    let Ok(value) = ::redis::parse_redis_value(data) else {
        return;
    };
    redis_value(&value);
}

/// A parsed reply through the Redis store's checks and conversion.
#[cfg(feature = "redis")]
pub fn redis_value(value: &::redis::Value) {
    crate::store::redis::fuzz_reply(value);
}
