//! Header styles: exact values, Structured Field validity (parsed back with `sfv`), and
//! agreement with the decision and with `Retry-After`.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::headers::{self, HeaderStyle};
use tower_ratelimit::{Decision, Quota, Quotas, RateLimiter};

fn render(style: HeaderStyle, d: &Decision<'_>) -> HeaderMap {
    let mut h = HeaderMap::new();
    style.prepare(d.quotas()).apply(d, &mut h);
    let mut slow = HeaderMap::new();
    style.apply(d, &mut slow);
    assert_eq!(h, slow, "prepared and simple paths agree");
    h
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("missing {name} in {h:?}"))
        .to_str()
        .expect("ascii")
}

/// A parsed `RateLimit` / `RateLimit-Policy` list member: name and integer params.
#[derive(Debug, PartialEq)]
struct Member {
    name: String,
    params: Vec<(String, i64)>,
}

fn parse_list(v: &str) -> Vec<Member> {
    let list: sfv::List = sfv::Parser::new(v)
        .parse()
        .unwrap_or_else(|e| panic!("{v:?} is not an RFC 9651 list: {e:?}"));
    list.into_iter()
        .map(|e| match e {
            sfv::ListEntry::Item(item) => Member {
                name: item
                    .bare_item
                    .as_string()
                    .expect("names are sf-strings")
                    .as_str()
                    .to_owned(),
                params: item
                    .params
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            i64::from(v.as_integer().expect("integer params")),
                        )
                    })
                    .collect(),
            },
            other => panic!("inner list in {v:?}: {other:?}"),
        })
        .collect()
}

fn ceil_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).expect("small")
}

fn claid() -> (RateLimiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    (
        RateLimiter::with_clock(Quotas::claid(), clock.clone()),
        clock,
    )
}

#[test]
fn ietf_exact_on_admit_and_deny() {
    let (l, _clock) = claid();
    let d = l.check().expect("check");
    let h = render(HeaderStyle::Ietf, &d);
    assert_eq!(h.len(), 2);
    assert_eq!(
        get(&h, "ratelimit-policy"),
        r#""burst";q=4;w=1, "minute";q=120;w=60"#
    );
    assert_eq!(get(&h, "ratelimit"), r#""burst";r=3;t=1"#);
    for _ in 0..3 {
        assert!(l.check().expect("check").is_allowed());
    }
    let denied = l.check().expect("check");
    assert!(!denied.is_allowed());
    let h = render(HeaderStyle::Ietf, &denied);
    assert_eq!(get(&h, "ratelimit"), r#""burst";r=0;t=1"#);
    assert_eq!(
        headers::retry_after(&denied),
        Some(HeaderValue::from_static("1"))
    );
    assert_eq!(headers::retry_after(&d), None);
    // Parsed back, the policy list is exactly the quota set.
    let policy = parse_list(get(&h, "ratelimit-policy"));
    assert_eq!(
        policy,
        vec![
            Member {
                name: "burst".into(),
                params: vec![("q".into(), 4), ("w".into(), 1)]
            },
            Member {
                name: "minute".into(),
                params: vec![("q".into(), 120), ("w".into(), 60)]
            },
        ]
    );
}

#[test]
fn draft03_reproduces_claid_seed_429() {
    let (l, _clock) = claid();
    for _ in 0..4 {
        assert!(l.check().expect("check").is_allowed());
    }
    let denied = l.check().expect("check");
    let h = render(HeaderStyle::Draft03Claid, &denied);
    // The seed page's 429, field for field.
    assert_eq!(get(&h, "ratelimit-limit"), "4, 120;w=60, 4;w=1");
    assert_eq!(get(&h, "ratelimit-remaining"), "-1");
    assert_eq!(get(&h, "ratelimit-reset"), "1");
    assert_eq!(h.len(), 3);
    // Plain draft-03 never goes negative.
    let h = render(HeaderStyle::Draft03, &denied);
    assert_eq!(get(&h, "ratelimit-limit"), "4, 120;w=60, 4;w=1");
    assert_eq!(get(&h, "ratelimit-remaining"), "0");
    assert_eq!(get(&h, "ratelimit-reset"), "1");
}

#[test]
fn draft03_first_item_is_the_binding_policy() {
    let (l, clock) = claid();
    // One request per 0.3 s keeps the burst quota nearly full while the minute
    // quota drains (it refills one per 0.5 s).
    let mut last = None;
    for _ in 0..400 {
        let d = l.check().expect("check");
        assert!(d.is_allowed(), "spaced requests stay under 4/s");
        let remaining_minute = d.states().nth(1).expect("two quotas").remaining();
        if remaining_minute < 3 {
            last = Some(d.outcome());
            break;
        }
        clock.advance(Duration::from_millis(300));
    }
    let d = last
        .expect("the minute quota drains")
        .decision(l.quotas())
        .expect("its own set");
    let h = render(HeaderStyle::Draft03, &d);
    assert_eq!(get(&h, "ratelimit-limit"), "120, 120;w=60, 4;w=1");
    let minute = d.states().nth(1).expect("minute");
    assert_eq!(
        get(&h, "ratelimit-remaining"),
        minute.remaining().to_string()
    );
    assert_eq!(
        get(&h, "ratelimit-reset"),
        ceil_secs(minute.reset()).to_string()
    );
    // Claid's preset is identical on admitted responses.
    assert_eq!(render(HeaderStyle::Draft03Claid, &d), h);
    // The same limit item leads the X-RateLimit style.
    let x = render(HeaderStyle::XRateLimit, &d);
    assert_eq!(get(&x, "x-ratelimit-limit"), "120");
    assert_eq!(
        get(&x, "x-ratelimit-remaining"),
        minute.remaining().to_string()
    );
    let ietf = render(HeaderStyle::Ietf, &d);
    assert_eq!(
        parse_list(get(&ietf, "ratelimit")),
        vec![Member {
            name: "minute".into(),
            params: vec![
                (
                    "r".into(),
                    i64::try_from(minute.remaining()).expect("small")
                ),
                ("t".into(), ceil_secs(minute.reset()))
            ]
        }]
    );
}

#[test]
fn minute_denial_resets_when_the_request_would_pass() {
    let clock = ManualClock::new();
    let set = Quotas::new([
        Quota::per_second(4).expect("q").named("burst"),
        Quota::per_minute(120)
            .expect("q")
            .with_burst(2)
            .expect("b")
            .named("minute"),
    ])
    .expect("set");
    let l = RateLimiter::with_clock(set, clock.clone());
    assert!(l.check().expect("c").is_allowed());
    assert!(l.check().expect("c").is_allowed());
    let denied = l.check().expect("c");
    assert_eq!(denied.denied_by().map(|s| s.index()), Some(1));
    let h = render(HeaderStyle::Draft03, &denied);
    assert_eq!(get(&h, "ratelimit-limit"), "120, 120;w=60, 4;w=1");
    assert_eq!(get(&h, "ratelimit-remaining"), "0");
    // Retry in 0.5 s: announced as 1, exactly the Retry-After.
    assert_eq!(get(&h, "ratelimit-reset"), "1");
    assert_eq!(
        headers::retry_after(&denied),
        Some(HeaderValue::from_static("1"))
    );
    let ietf = render(HeaderStyle::Ietf, &denied);
    assert_eq!(get(&ietf, "ratelimit"), r#""minute";r=0;t=1"#);
}

#[test]
fn xratelimit_exact_and_none_is_empty() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quotas::clarifai(), clock);
    let d = l.check().expect("check");
    let h = render(HeaderStyle::XRateLimit, &d);
    assert_eq!(get(&h, "x-ratelimit-limit"), "15");
    assert_eq!(get(&h, "x-ratelimit-remaining"), "14");
    assert_eq!(get(&h, "x-ratelimit-reset"), "1");
    assert_eq!(h.len(), 3);
    assert!(render(HeaderStyle::None, &d).is_empty());
    assert_eq!(HeaderStyle::default(), HeaderStyle::Ietf);
}

#[test]
fn long_windows_and_large_numbers() {
    let clock = ManualClock::new();
    let q = Quota::per_hour(5000).expect("q");
    let l = RateLimiter::with_clock(q, clock);
    let d = l.check().expect("check");
    let h = render(HeaderStyle::Draft03, &d);
    assert_eq!(get(&h, "ratelimit-limit"), "5000, 5000;w=3600");
    assert_eq!(get(&h, "ratelimit-remaining"), "4999");
    // Refills one per 0.72 s.
    assert_eq!(get(&h, "ratelimit-reset"), "1");
    let h = render(HeaderStyle::Ietf, &d);
    assert_eq!(get(&h, "ratelimit-policy"), r#""hour";q=5000;w=3600"#);
}

#[test]
fn awkward_names_stay_valid_structured_fields() {
    let clock = ManualClock::new();
    let set = Quotas::new([
        Quota::new(3, Duration::from_millis(1500))
            .expect("q")
            .named(r#"we"ird\ é"#),
        Quota::per_minute(10).expect("q").named(""),
    ])
    .expect("set");
    let l = RateLimiter::with_clock(set, clock);
    let d = l.check().expect("check");
    let h = render(HeaderStyle::Ietf, &d);
    let policy = parse_list(get(&h, "ratelimit-policy"));
    assert_eq!(policy[0].name, r#"we"ird\ ?"#);
    assert_eq!(policy[0].params, vec![("q".into(), 3), ("w".into(), 2)]);
    assert_eq!(policy[1].name, "");
    let long = "n".repeat(300);
    let l = RateLimiter::with_clock(
        Quota::per_second(2).expect("q").named(long.clone()),
        ManualClock::new(),
    );
    let d = l.check().expect("check");
    let h = render(HeaderStyle::Ietf, &d);
    assert_eq!(parse_list(get(&h, "ratelimit"))[0].name, long);
}

#[test]
fn prepared_for_another_set_falls_back_correctly() {
    let prepared = HeaderStyle::Draft03.prepare(&Quotas::clarifai());
    let (l, _clock) = claid();
    let d = l.check().expect("check");
    let mut h = HeaderMap::new();
    prepared.apply(&d, &mut h);
    assert_eq!(get(&h, "ratelimit-limit"), "4, 120;w=60, 4;w=1");
    assert_eq!(prepared.style(), HeaderStyle::Draft03);
}

#[test]
fn insert_retry_after_only_on_denial() {
    let (l, _clock) = claid();
    let mut h = HeaderMap::new();
    headers::insert_retry_after(&l.check().expect("c"), &mut h);
    assert!(h.is_empty());
    let mut last = l.check().expect("c");
    while last.is_allowed() {
        last = l.check().expect("c");
    }
    headers::insert_retry_after(&last, &mut h);
    assert_eq!(get(&h, "retry-after"), "1");
}

#[test]
fn interval_rounding_never_adds_a_second_to_the_reset() {
    // 15/s: T is 66,666,667 ns, so a full burst is restored after 1.000000005 s; the
    // announced reset is the 1 s a client can act on, not 2.
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quotas::clarifai(), clock.clone());
    for _ in 0..14 {
        assert!(l.check().expect("valid cost").is_allowed());
    }
    let d = l.check().expect("valid cost");
    assert!(d.is_allowed(), "the 15th request of the burst is admitted");
    assert_eq!(d.binding().remaining(), 0);
    assert!(d.binding().reset() > Duration::from_secs(1));
    for style in [HeaderStyle::Draft03, HeaderStyle::XRateLimit] {
        let h = render(style, &d);
        let reset = h
            .iter()
            .find(|(n, _)| n.as_str().ends_with("ratelimit-reset"))
            .map(|(_, v)| v.to_str().expect("ascii").to_owned());
        assert_eq!(reset.as_deref(), Some("1"), "{style:?}");
    }
    let rl = parse_list(get(&render(HeaderStyle::Ietf, &d), "ratelimit"));
    assert_eq!(rl[0].params[1].1, 1);
}

fn arb_quota() -> impl Strategy<Value = Quota> {
    (1u32..500, 1u64..200_000, 1u32..50, "[a-z\"\\\\ é]{0,8}").prop_map(|(n, ms, b, name)| {
        Quota::new(n, Duration::from_millis(ms))
            .and_then(|q| q.with_burst(b))
            .expect("small quotas are valid")
            .named(name)
    })
}

proptest! {
    /// Every style, on every decision of random traffic: values parse, agree with the
    /// decision and with Retry-After, and remaining is never negative outside the
    /// Claid preset.
    #[test]
    fn headers_agree_with_decisions(
        quotas in prop::collection::vec(arb_quota(), 1..=4),
        steps in prop::collection::vec((0u64..3_000, 1u32..4), 1..60),
    ) {
        let Ok(set) = Quotas::new(quotas) else { return Ok(()) };
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(set, clock.clone());
        for (gap_ms, cost) in steps {
            clock.advance(Duration::from_millis(gap_ms));
            let Ok(d) = l.check_n(cost) else { continue };
            let b = d.binding();
            let want_reset = match d.retry_after() {
                Some(w) => ceil_secs(w).max(1),
                // Time until full counts whole milliseconds (interval rounding never
                // adds a second).
                None => ceil_secs(Duration::from_millis(
                    u64::try_from(b.reset().as_millis()).expect("small"),
                )),
            };
            let retry = headers::retry_after(&d);
            if let Some(r) = &retry {
                prop_assert_eq!(r.to_str().expect("ascii"), want_reset.to_string());
            }

            let h = render(HeaderStyle::Ietf, &d);
            let policy = parse_list(get(&h, "ratelimit-policy"));
            prop_assert_eq!(policy.len(), d.quotas().len());
            for (m, q) in policy.iter().zip(d.quotas()) {
                prop_assert_eq!(m.params[0].1, i64::from(q.limit()));
                prop_assert_eq!(m.params[1].1, ceil_secs(q.window()).max(1));
            }
            let rl = parse_list(get(&h, "ratelimit"));
            prop_assert_eq!(rl.len(), 1);
            prop_assert_eq!(&rl[0].name, &policy[b.index()].name);
            prop_assert_eq!(rl[0].params[0].1, i64::try_from(b.remaining()).expect("small"));
            prop_assert_eq!(rl[0].params[1].1, want_reset);

            for style in [HeaderStyle::Draft03, HeaderStyle::Draft03Claid] {
                let h = render(style, &d);
                let limit: sfv::List = sfv::Parser::new(get(&h, "ratelimit-limit"))
                    .parse()
                    .expect("draft-03 limit is a list");
                prop_assert_eq!(limit.len(), d.quotas().len() + 1);
                let first = get(&h, "ratelimit-limit").split(',').next().expect("item");
                prop_assert_eq!(first, b.quota().limit().to_string());
                let rem: i64 = get(&h, "ratelimit-remaining").parse().expect("int");
                if style == HeaderStyle::Draft03Claid && !d.is_allowed() {
                    prop_assert_eq!(rem, -1);
                } else {
                    prop_assert_eq!(rem, i64::try_from(b.remaining()).expect("small"));
                }
                prop_assert_eq!(get(&h, "ratelimit-reset"), want_reset.to_string());
            }
            let h = render(HeaderStyle::XRateLimit, &d);
            prop_assert_eq!(get(&h, "x-ratelimit-remaining"), b.remaining().to_string());
            prop_assert_eq!(get(&h, "x-ratelimit-reset"), want_reset.to_string());
        }
    }
}
