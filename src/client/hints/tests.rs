use super::*;
use http::HeaderValue;
use proptest::prelude::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).expect("valid header value"));
    }
    h
}

fn epoch(secs: u64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn retry_after_seconds_and_dates() {
    let now = epoch(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(
        parse_retry_after(b"120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(b" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after(b"Sun, 06 Nov 1994 08:49:47 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after(b"Sun, 06 Nov 1994 08:49:00 GMT", now),
        Some(Duration::ZERO),
        "a date in the past means now"
    );
    for bad in [&b"-1"[..], b"1.5", b"", b"99999999999999999999999", b"\xff"] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn current_draft_policies_and_state() {
    let h = headers(&[
        (
            "ratelimit-policy",
            r#""burst";q=4;w=1, "minute";q=120;w=60"#,
        ),
        ("ratelimit", r#""burst";r=0;t=1"#),
    ]);
    let hints = RateLimitHints::from_headers(StatusCode::OK, &h, SystemTime::now());
    assert_eq!(hints.policies.len(), 2);
    assert_eq!(hints.policies[0].name.as_deref(), Some("burst"));
    assert_eq!(hints.policies[0].remaining, Some(0));
    assert_eq!(hints.policies[1].window, Some(Duration::from_secs(60)));
    assert_eq!(hints.remaining, Some(0));
    assert_eq!(hints.reset, Some(Duration::from_secs(1)));
    assert!(!hints.throttled);
    assert_eq!(
        hints.wait(),
        Some(Duration::from_secs(1)),
        "nothing remains"
    );
    let q = hints.quotas().expect("a valid set");
    assert_eq!(q.get(0).map(|q| q.name()), Some("burst"));
    assert_eq!(q.get(1).map(|q| q.limit()), Some(120));
}

#[test]
fn malformed_structured_fields_are_ignored() {
    let h = headers(&[
        ("ratelimit-policy", r#""burst";q=4;w=1, ("x")"#),
        ("ratelimit", r#""burst";r=-3;t=abc"#),
    ]);
    let hints = RateLimitHints::from_headers(StatusCode::OK, &h, SystemTime::now());
    // The inner list is skipped, the rest kept; r=-3 is not a valid remaining and
    // t=abc is a token, so the RateLimit item carries nothing usable.
    assert_eq!(hints.policies.len(), 1);
    assert_eq!(hints.remaining, None);
    let broken = headers(&[("ratelimit-policy", r#""burst";q=4;w=1, "#)]);
    let hints = RateLimitHints::from_headers(StatusCode::OK, &broken, SystemTime::now());
    assert!(
        hints.policies.is_empty(),
        "a field that does not parse is ignored whole"
    );
}

#[test]
fn draft03_as_claid_sends_it() {
    let h = headers(&[
        ("ratelimit-limit", "120, 120;w=60, 4;w=1"),
        ("ratelimit-remaining", "-1"),
        ("ratelimit-reset", "32"),
    ]);
    let hints = RateLimitHints::from_headers(StatusCode::TOO_MANY_REQUESTS, &h, SystemTime::now());
    assert_eq!(hints.limit, Some(120));
    assert_eq!(
        hints.remaining,
        Some(0),
        "Claid's -1 on a 429 counts as none left"
    );
    assert_eq!(hints.reset, Some(Duration::from_secs(32)));
    assert!(hints.throttled);
    assert_eq!(hints.wait(), Some(Duration::from_secs(32)));
    let q = hints.quotas().expect("valid");
    assert_eq!(q.len(), 2);
    assert_eq!(
        q.get(0).map(|q| q.window()),
        Some(Duration::from_secs(1)),
        "sorted"
    );
}

#[test]
fn retry_after_wins_over_reset() {
    let h = headers(&[("retry-after", "3"), ("ratelimit-reset", "9")]);
    let hints = RateLimitHints::from_headers(StatusCode::TOO_MANY_REQUESTS, &h, SystemTime::now());
    assert_eq!(hints.wait(), Some(Duration::from_secs(3)));
}

#[test]
fn legacy_x_ratelimit_with_unix_reset() {
    let now = epoch(1_700_000_000);
    let h = headers(&[
        ("x-ratelimit-limit", "60"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1700000042"),
    ]);
    let hints = RateLimitHints::from_headers(StatusCode::OK, &h, now);
    assert_eq!(hints.limit, Some(60));
    assert_eq!(hints.remaining, Some(0));
    assert_eq!(hints.reset, Some(Duration::from_secs(42)));
    let delta = headers(&[("x-ratelimit-remaining", "5"), ("x-ratelimit-reset", "7")]);
    let hints = RateLimitHints::from_headers(StatusCode::OK, &delta, now);
    assert_eq!(hints.reset, Some(Duration::from_secs(7)));
    assert_eq!(hints.wait(), None, "quota left and not throttled: no wait");
}

#[test]
fn clarifai_and_grpc_signals() {
    let body = br#"{"status":{"code":"CONN_THROTTLED","description":"Making too many requests","details":"exceeded limit of 15 requests per second","req_id":"x"}}"#;
    let hints = RateLimitHints::from_headers(StatusCode::OK, &HeaderMap::new(), SystemTime::now())
        .with_body(body);
    assert!(hints.throttled && hints.clarifai_throttled);
    assert!(is_clarifai_throttled(br#"{"status":{"code":"11005"}}"#));
    assert!(!is_clarifai_throttled(br#"{"status":{"code":"SUCCESS"}}"#));
    assert!(!is_clarifai_throttled(b"{not json"));
    let g = headers(&[("grpc-status", "8")]);
    let hints = RateLimitHints::from_headers(StatusCode::OK, &g, SystemTime::now());
    assert!(hints.throttled && hints.grpc_resource_exhausted);
    let ok = headers(&[("grpc-status", "0")]);
    assert!(!RateLimitHints::from_headers(StatusCode::OK, &ok, SystemTime::now()).throttled);
}

const FIELDS: [&str; 10] = [
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
];

proptest! {
    #[test]
    fn parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), secs in any::<u64>()) {
        let now = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs % (1 << 40))).unwrap_or(SystemTime::UNIX_EPOCH);
        let _ = parse_retry_after(&bytes, now);
        let _ = parse_ratelimit_policy(&bytes);
        let _ = parse_ratelimit(&bytes);
        let _ = parse_limit(&bytes);
        let _ = parse_int(&bytes);
        let _ = parse_reset(&bytes, now);
        let _ = is_clarifai_throttled(&bytes);
        // Through the whole view too, for every field that takes these bytes as a value.
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            let mut h = HeaderMap::new();
            for f in FIELDS {
                h.insert(f, v.clone());
            }
            let hints = RateLimitHints::from_headers(StatusCode::OK, &h, now).with_body(&bytes);
            let _ = hints.wait();
            let _ = hints.quotas();
        }
    }

    #[test]
    fn parsers_never_panic_on_near_valid_fields(
        name in "[a-z]{0,6}", q in any::<i64>(), w in any::<i64>(), r in any::<i64>(), t in "[-0-9a-z.]{0,12}",
    ) {
        let policy = format!("\"{name}\";q={q};w={w}, {name};q={q}");
        let state = format!("\"{name}\";r={r};t={t}");
        let limit = format!("{q}, {q};w={w}, {r};w={t}");
        let _ = parse_ratelimit_policy(policy.as_bytes());
        let _ = parse_ratelimit(state.as_bytes());
        let (_, policies) = parse_limit(limit.as_bytes());
        // Whatever was accepted is a valid quota description or is dropped by quotas().
        let hints = RateLimitHints { policies, ..Default::default() };
        if let Some(set) = hints.quotas() {
            prop_assert!(!set.is_empty());
        }
    }

    #[test]
    fn valid_delay_seconds_round_trip(n in 0u64..1_000_000_000) {
        prop_assert_eq!(parse_retry_after(n.to_string().as_bytes(), SystemTime::now()), Some(Duration::from_secs(n)));
    }
}
