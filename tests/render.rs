//! Renderers: exact bodies and content types, JSON shapes, and the Clarifai seed
//! client's own logic (in Rust, and in Python against a loopback server when python3
//! with `requests` is available).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::KeyError;
use tower_ratelimit::render::{
    self, Claid, Clarifai, ProblemJson, Rejection, RejectionKind, Renderer,
    TEMPORARY_REDUCED_CAPACITY_TYPE, Text, limit_phrase,
};
use tower_ratelimit::{CheckError, Decision, Outcome, Quota, Quotas, RateLimiter, StoreError};

/// A limiter over `quotas` driven until it denies a request of `cost`.
fn deny(quotas: &Quotas, cost: u32) -> Outcome {
    let l = RateLimiter::with_clock(quotas.clone(), ManualClock::new());
    for _ in 0..10_000 {
        let d = l.check_n(cost).expect("valid cost");
        if !d.is_allowed() {
            return d.outcome();
        }
    }
    panic!("never denied");
}

fn render_with(
    r: &dyn Renderer,
    quotas: &Quotas,
    outcome: Outcome,
    headers: &HeaderMap,
) -> Response<Bytes> {
    let method = Method::GET;
    let uri = Uri::from_static("/v2/models/types");
    let d: Decision<'_> = outcome.decision(quotas).expect("the deciding set");
    r.render(&Rejection::new(d, &method, &uri, headers))
}

fn render(r: &dyn Renderer, quotas: &Quotas, outcome: Outcome) -> Response<Bytes> {
    render_with(r, quotas, outcome, &HeaderMap::new())
}

fn body(res: &Response<Bytes>) -> &str {
    std::str::from_utf8(res.body()).expect("utf-8 body")
}

fn content_type(res: &Response<Bytes>) -> &str {
    res.headers()["content-type"].to_str().expect("ascii")
}

fn minute_bound() -> Quotas {
    Quotas::new([
        Quota::per_second(4).expect("q").named("burst"),
        Quota::per_minute(120)
            .expect("q")
            .with_burst(2)
            .expect("b")
            .named("minute"),
    ])
    .expect("set")
}

#[test]
fn problem_json_exact() {
    let set = Quotas::claid();
    let res = render(&ProblemJson::new(), &set, deny(&set, 1));
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(content_type(&res), "application/problem+json");
    assert_eq!(
        body(&res),
        r#"{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","title":"Too Many Requests","status":429,"detail":"exceeded limit of 4 requests per second; retry after 1 s","violated-policies":["burst"]}"#
    );
}

#[test]
fn problem_json_lists_every_refusing_policy() {
    // Both quotas have a burst of 2: after two requests both refuse.
    let set = Quotas::new([
        Quota::per_second(2).expect("q").named("a\"b"),
        Quota::per_minute(60)
            .expect("q")
            .with_burst(2)
            .expect("b")
            .named("minute"),
    ])
    .expect("set");
    let res = render(&ProblemJson::new(), &set, deny(&set, 1));
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("valid JSON");
    assert_eq!(
        v["violated-policies"],
        serde_json::json!(["a\"b", "minute"])
    );
    assert_eq!(v["status"], 429);
    assert_eq!(v["type"], render::QUOTA_EXCEEDED_TYPE);
    // Minute refuses longest (0 remaining for 1 s vs 0.5 s), so it is named in detail.
    assert_eq!(
        v["detail"],
        "exceeded limit of 60 requests per minute; retry after 1 s"
    );
    // Only the minute quota is out: burst alone is not listed.
    let set = minute_bound();
    let res = render(&ProblemJson::new(), &set, deny(&set, 1));
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("valid JSON");
    assert_eq!(v["violated-policies"], serde_json::json!(["minute"]));
}

#[test]
fn clarifai_exact_with_request_id() {
    let set = Quotas::clarifai();
    let mut h = HeaderMap::new();
    h.insert("x-request-id", HeaderValue::from_static("req-42"));
    let res = render_with(&Clarifai::new(), &set, deny(&set, 1), &h);
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(content_type(&res), "application/json");
    assert_eq!(
        body(&res),
        r#"{"status":{"code":"CONN_THROTTLED","description":"Making too many requests","details":"exceeded limit of 15 requests per second","req_id":"req-42"}}"#
    );
    let res = render_with(&Clarifai::new().numeric_code(true), &set, deny(&set, 1), &h);
    assert_eq!(
        body(&res),
        r#"{"status":{"code":11005,"description":"Making too many requests","details":"exceeded limit of 15 requests per second","req_id":"req-42"}}"#
    );
}

#[test]
fn clarifai_names_the_refusing_quota_and_escapes_ids() {
    let set = minute_bound();
    let mut h = HeaderMap::new();
    h.insert("x-request-id", HeaderValue::from_static(r#"a"b\c</x>"#));
    let res = render_with(&Clarifai::new(), &set, deny(&set, 1), &h);
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("valid JSON");
    assert_eq!(
        v["status"]["details"],
        "exceeded limit of 120 requests per minute"
    );
    assert_eq!(v["status"]["req_id"], r#"a"b\c</x>"#);
    // An id with a space is not echoed: a fresh one replaces it.
    h.insert("x-request-id", HeaderValue::from_static("a b"));
    let res = render_with(&Clarifai::new(), &set, deny(&set, 1), &h);
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("valid JSON");
    let id = v["status"]["req_id"].as_str().expect("string id");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn clarifai_fresh_ids_differ() {
    let set = Quotas::clarifai();
    let id = |res: Response<Bytes>| {
        let v: serde_json::Value = serde_json::from_slice(res.body()).expect("valid JSON");
        v["status"]["req_id"].as_str().expect("id").to_owned()
    };
    let a = id(render(&Clarifai::new(), &set, deny(&set, 1)));
    let b = id(render(&Clarifai::new(), &set, deny(&set, 1)));
    assert_ne!(a, b);
}

/// The seed page's Python client, step by step: `raise_for_status()` raises for 429,
/// then `error_response["status"]["code"] == "CONN_THROTTLED"` picks the throttled branch.
#[test]
fn clarifai_seed_client_logic_takes_the_throttled_branch() {
    let set = Quotas::clarifai();
    let res = render(&Clarifai::new(), &set, deny(&set, 1));
    let raises = res.status().is_client_error() || res.status().is_server_error();
    assert!(raises, "raise_for_status() raises HTTPError");
    let error_response: serde_json::Value =
        serde_json::from_slice(res.body()).expect("err.response.json()");
    let throttled = error_response.get("status").is_some()
        && error_response["status"]["code"] == "CONN_THROTTLED";
    assert!(throttled);
    // The NodeJS sample reads the same path.
    assert_eq!(
        error_response.pointer("/status/code"),
        Some(&serde_json::json!("CONN_THROTTLED"))
    );
    // With the numeric code, the seed clients would NOT recognise it: that is why the
    // string is the default.
    let res = render(&Clarifai::new().numeric_code(true), &set, deny(&set, 1));
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
    assert_ne!(v["status"]["code"], "CONN_THROTTLED");
}

#[test]
fn claid_exact() {
    let set = Quotas::claid();
    let res = render(&Claid::new(), &set, deny(&set, 1));
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(content_type(&res), "application/json");
    assert_eq!(
        body(&res),
        r#"{"detail":{"error_code":"2001","error_type":"general","error_message":"Too Many Requests. Rate limit exceeded."}}"#
    );
}

#[test]
fn text_exact() {
    let set = minute_bound();
    let res = render(&Text::new(), &set, deny(&set, 1));
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(content_type(&res), "text/plain; charset=utf-8");
    assert_eq!(
        body(&res),
        "Too Many Requests: exceeded limit of 120 requests per minute; retry after 1 s\n"
    );
}

#[test]
fn closures_are_renderers() {
    let custom = |r: &Rejection<'_>| {
        let mut res = Response::new(Bytes::from(format!("{} {}", r.method(), r.uri())));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        res
    };
    let set = Quotas::clarifai();
    let res = render(&custom, &set, deny(&set, 1));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(&res), "GET /v2/models/types");
}

#[test]
fn renderers_survive_admitted_decisions() {
    // A misuse (rendering an admission) still yields a well-formed answer.
    let set = Quotas::claid();
    let l = RateLimiter::with_clock(set.clone(), ManualClock::new());
    let ok = l.check().expect("check").outcome();
    let res = render(&ProblemJson::new(), &set, ok);
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
    assert_eq!(v["violated-policies"], serde_json::json!(["burst"]));
    assert_eq!(
        v["detail"],
        "exceeded limit of 4 requests per second; retry after 1 s"
    );
}

#[test]
fn limit_phrases_pick_the_largest_exact_unit() {
    let q = |n, w| limit_phrase(&Quota::new(n, w).expect("valid"));
    assert_eq!(q(15, Duration::from_secs(1)), "15 requests per second");
    assert_eq!(q(1, Duration::from_secs(60)), "1 request per minute");
    assert_eq!(q(5000, Duration::from_secs(3600)), "5000 requests per hour");
    assert_eq!(q(7, Duration::from_secs(86_400)), "7 requests per day");
    assert_eq!(
        q(7, Duration::from_secs(2 * 86_400)),
        "7 requests per 2 days"
    );
    assert_eq!(q(10, Duration::from_secs(90)), "10 requests per 90 seconds");
    assert_eq!(q(10, Duration::from_secs(120)), "10 requests per 2 minutes");
    assert_eq!(
        q(3, Duration::from_millis(1500)),
        "3 requests per 1500 milliseconds"
    );
    assert_eq!(
        q(2, Duration::from_nanos(1_000_001)),
        "2 requests per 1000001 nanoseconds"
    );
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_trailers_only_with_details() {
    use tonic::{Code, Status};
    use tonic_types::StatusExt;

    let set = minute_bound();
    let res = render(&render::Grpc::new(), &set, deny(&set, 1));
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.body().is_empty(), "Trailers-Only: no body");
    let h = res.headers();
    assert_eq!(h["content-type"], "application/grpc");
    assert_eq!(h["grpc-status"], "8");
    assert_eq!(
        h["grpc-message"],
        "rate%20limit%20exceeded:%20120%20requests%20per%20minute"
    );
    assert!(h.contains_key("grpc-status-details-bin"));
    let status = Status::from_header_map(h).expect("a status");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "rate limit exceeded: 120 requests per minute"
    );
    let details = status.get_error_details();
    let retry = details.retry_info().expect("RetryInfo");
    // The minute quota (burst 2) refills one request every 0.5 s.
    assert_eq!(retry.retry_delay, Some(Duration::from_millis(500)));
    let failure = details.quota_failure().expect("QuotaFailure");
    assert_eq!(failure.violations.len(), 1);
    let v = &failure.violations[0];
    assert_eq!(v.subject, "policy:minute");
    assert_eq!(v.description, "120 requests per minute");
    assert_eq!(v.quota_id, "minute");
    assert_eq!(v.quota_value, 120);
}

/// The seed page's Python snippet, verbatim apart from the URL and a `time.sleep` that
/// records instead of sleeping, against a loopback server that throttles once.
const SEED_CLIENT: &str = r#"
import sys, time
import requests
slept = []
time.sleep = lambda s: slept.append(s)

def make_request(url, headers):
    try:
        response = requests.get(url, headers=headers)
        response.raise_for_status()
        return response.json()
    except requests.exceptions.HTTPError as err:
        error_response = err.response.json()
        if (
            "status" in error_response
            and error_response["status"]["code"] == "CONN_THROTTLED"
        ):
            print("Rate limit exceeded. Waiting for 15 seconds before retrying...")
            time.sleep(15)
            return make_request(url, headers)  # Retry the request after waiting
        else:
            # Handle other types of errors
            print("Error:", err)
            return None

url = sys.argv[1]
headers = {"Authorization": "Key YOUR_PAT_HERE"}
response_data = make_request(url, headers)
if response_data:
    print(response_data)
print("slept", slept)
"#;

#[test]
fn clarifai_seed_python_client_backs_off() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import requests"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIPPED clarifai_seed_python_client_backs_off: python3 with `requests` not found"
        );
        return;
    }
    let set = Quotas::clarifai();
    let throttled = render(&Clarifai::new(), &set, deny(&set, 1));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        // Exactly two requests: the first is throttled, the retry succeeds.
        let mut seen = Vec::new();
        for i in 0..2 {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            r.read_line(&mut line).expect("request line");
            seen.push(line.trim_end().to_owned());
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).expect("header") == 0 || l == "\r\n" {
                    break;
                }
            }
            let (status, ctype, body): (&str, &str, &[u8]) = if i == 0 {
                (
                    "429 Too Many Requests",
                    content_type(&throttled),
                    throttled.body(),
                )
            } else {
                ("200 OK", "application/json", br#"{"ok": true}"#)
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).expect("write");
            s.write_all(body).expect("write");
            let _ = s.read(&mut [0u8; 1]);
        }
        seen
    });
    let out = std::process::Command::new("python3")
        .args(["-c", SEED_CLIENT, &format!("http://{addr}/v2/models/types")])
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "Rate limit exceeded. Waiting for 15 seconds before retrying...\n{'ok': True}\nslept [15]\n"
    );
    let seen = server.join().expect("server thread");
    assert_eq!(seen, vec!["GET /v2/models/types HTTP/1.1"; 2]);
}

proptest::proptest! {
    /// Hand-assembled JSON stays valid and round-trips for any policy name and any
    /// request id a header can carry.
    #[test]
    fn json_bodies_round_trip(name in "\\PC{0,12}", id in "[ -~]{0,40}", n in 1u32..1000, ms in 1u64..10_000_000) {
        let q = Quota::new(n, Duration::from_millis(ms)).expect("valid").named(name.clone());
        let set = Quotas::from(q.clone());
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_str(&id).expect("printable"));
        let out = deny(&set, 1);
        let res = render(&ProblemJson::new(), &set, out);
        let v: serde_json::Value = serde_json::from_slice(res.body()).expect("valid JSON");
        proptest::prop_assert_eq!(&v["violated-policies"], &serde_json::json!([name]));
        let res = render_with(&Clarifai::new(), &set, out, &h);
        let v: serde_json::Value = serde_json::from_slice(res.body()).expect("valid JSON");
        let want = format!("exceeded limit of {}", limit_phrase(&q));
        proptest::prop_assert_eq!(v["status"]["details"].as_str(), Some(want.as_str()));
        let rid = v["status"]["req_id"].as_str().expect("id");
        if !id.is_empty() && !id.contains(' ') {
            proptest::prop_assert_eq!(rid, id.as_str());
        } else {
            proptest::prop_assert_eq!(rid.len(), 32);
        }
    }
}

/// Every non-denial kind, with the request it answers.
fn other_kinds<'a>(key_err: &'a KeyError, store_err: &'a StoreError) -> Vec<RejectionKind<'a>> {
    vec![
        RejectionKind::from(key_err),
        RejectionKind::MissingKey {
            error: key_err,
            status: StatusCode::UNAUTHORIZED,
        },
        RejectionKind::CostTooHigh { cost: 9, max: 4 },
        RejectionKind::Unavailable(store_err),
        RejectionKind::TooManyKeys { max_keys: 1000 },
    ]
}

fn render_kind(r: &dyn Renderer, kind: RejectionKind<'_>) -> Response<Bytes> {
    let (method, uri, headers) = (Method::POST, Uri::from_static("/x"), HeaderMap::new());
    r.render(&Rejection::new(kind, &method, &uri, &headers))
}

#[test]
fn store_errors_map_to_their_kinds() {
    let cost = StoreError::Check(CheckError::CostExceedsBurst {
        cost: 9,
        max_cost: 4,
    });
    assert!(matches!(
        RejectionKind::from(&cost),
        RejectionKind::CostTooHigh { cost: 9, max: 4 }
    ));
    let full = StoreError::Check(CheckError::TooManyKeys { max_keys: 7 });
    assert!(matches!(
        RejectionKind::from(&full),
        RejectionKind::TooManyKeys { max_keys: 7 }
    ));
    for e in [StoreError::Timeout, StoreError::Check(CheckError::ZeroCost)] {
        assert!(matches!(
            RejectionKind::from(&e),
            RejectionKind::Unavailable(_)
        ));
    }
}

#[test]
fn problem_json_answers_every_kind() {
    let key_err = KeyError::MissingHeader(http::header::AUTHORIZATION);
    let store_err = StoreError::Unavailable("connection refused (10.0.0.7:6379)".into());
    let expected = [
        (400, "about:blank", "Bad Request"),
        (401, "about:blank", "Unauthorized"),
        (413, "about:blank", "Content Too Large"),
        (
            503,
            TEMPORARY_REDUCED_CAPACITY_TYPE,
            "Temporarily Reduced Capacity",
        ),
        (
            503,
            TEMPORARY_REDUCED_CAPACITY_TYPE,
            "Temporarily Reduced Capacity",
        ),
    ];
    for (kind, (status, ty, title)) in other_kinds(&key_err, &store_err).into_iter().zip(expected) {
        for r in [
            &ProblemJson::new() as &dyn Renderer,
            &Clarifai::new(),
            &Claid::new(),
        ] {
            let res = render_kind(r, kind);
            assert_eq!(res.status().as_u16(), status, "{kind:?}");
            assert_eq!(content_type(&res), "application/problem+json");
            let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
            assert_eq!(v["type"], ty);
            assert_eq!(v["title"], title);
            assert_eq!(v["status"], status);
            let detail = v["detail"].as_str().expect("a detail");
            assert!(!detail.is_empty());
            assert!(
                !detail.contains("10.0.0.7"),
                "store internals stay out of answers: {detail}"
            );
            assert!(v.get("violated-policies").is_none());
        }
    }
    let res = render_kind(
        &ProblemJson::new(),
        RejectionKind::CostTooHigh { cost: 9, max: 4 },
    );
    assert_eq!(
        body(&res),
        r#"{"type":"about:blank","title":"Content Too Large","status":413,"detail":"request cost 9 exceeds the largest the rate limit can ever admit (4)"}"#
    );
    let res = render_kind(&ProblemJson::new(), RejectionKind::from(&key_err));
    assert_eq!(
        body(&res),
        r#"{"type":"about:blank","title":"Bad Request","status":400,"detail":"the request has no `authorization` header to key the rate limit on"}"#
    );
}

#[test]
fn text_answers_every_kind() {
    let key_err = KeyError::Invalid("authorization header");
    let store_err = StoreError::Timeout;
    let lines = [
        (
            400,
            "Bad Request: the request's authorization header is not a valid rate-limit key\n",
        ),
        (
            401,
            "Unauthorized: the request's authorization header is not a valid rate-limit key\n",
        ),
        (
            413,
            "Content Too Large: request cost 9 exceeds the largest the rate limit can ever admit (4)\n",
        ),
        (
            503,
            "Service Unavailable: rate limiter unavailable, retry later\n",
        ),
        (
            503,
            "Service Unavailable: rate limiter is tracking too many clients, retry later\n",
        ),
    ];
    for (kind, (status, line)) in other_kinds(&key_err, &store_err).into_iter().zip(lines) {
        let res = render_kind(&Text::new(), kind);
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(content_type(&res), "text/plain; charset=utf-8");
        assert_eq!(body(&res), line);
    }
}

#[test]
fn rejection_accessors_per_kind() {
    let key_err = KeyError::Missing("peer address");
    let store_err = StoreError::Timeout;
    let (method, uri, headers) = (Method::GET, Uri::from_static("/"), HeaderMap::new());
    let retry: Vec<Option<u64>> = other_kinds(&key_err, &store_err)
        .into_iter()
        .map(|k| {
            let r = Rejection::new(k, &method, &uri, &headers);
            assert!(r.decision().is_none() && r.denying().is_none());
            assert_eq!(r.violated().count(), 0);
            r.retry_after_secs()
        })
        .collect();
    assert_eq!(retry, [None, None, None, Some(1), Some(1)]);
    let set = minute_bound();
    let denied = deny(&set, 1).decision(&set).expect("the deciding set");
    let r = Rejection::new(denied, &method, &uri, &headers);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.retry_after_secs(), Some(1));
    assert_eq!(
        r.detail().to_string(),
        "exceeded limit of 120 requests per minute; retry after 1 s"
    );
}

#[test]
fn closures_see_every_kind() {
    let custom = |r: &Rejection<'_>| {
        let tag = match r.kind() {
            RejectionKind::Denied(_) => "denied",
            RejectionKind::MissingKey { .. } => "missing",
            RejectionKind::CostTooHigh { .. } => "cost",
            RejectionKind::Unavailable(_) => "unavailable",
            RejectionKind::TooManyKeys { .. } => "full",
            _ => "other",
        };
        let mut res = Response::new(Bytes::from(tag));
        *res.status_mut() = r.status();
        res
    };
    let key_err = KeyError::Missing("peer address");
    let store_err = StoreError::Timeout;
    let tags: Vec<String> = other_kinds(&key_err, &store_err)
        .into_iter()
        .map(|k| body(&render_kind(&custom, k)).to_owned())
        .collect();
    assert_eq!(tags, ["missing", "missing", "cost", "unavailable", "full"]);
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_answers_every_kind() {
    use tonic::{Code, Status};
    use tonic_types::StatusExt;

    let key_err = KeyError::MissingHeader(http::header::AUTHORIZATION);
    let store_err = StoreError::Unavailable("connection refused (10.0.0.7:6379)".into());
    let codes = [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::InvalidArgument,
        Code::Unavailable,
        Code::Unavailable,
    ];
    for (kind, code) in other_kinds(&key_err, &store_err).into_iter().zip(codes) {
        let res = render_kind(&render::Grpc::new(), kind);
        assert_eq!(res.status(), StatusCode::OK, "Trailers-Only is HTTP 200");
        assert!(res.body().is_empty());
        assert_eq!(res.headers()["content-type"], "application/grpc");
        let status = Status::from_header_map(res.headers()).expect("a status");
        assert_eq!(status.code(), code, "{kind:?}");
        assert!(!status.message().is_empty());
        assert!(!status.message().contains("10.0.0.7"));
        let raw = res.headers()["grpc-message"].as_bytes();
        assert!(
            raw.iter().all(|b| b.is_ascii_graphic() || *b == b' '),
            "percent-encoded"
        );
        let retry = status.get_error_details().retry_info().cloned();
        let expect_retry = code == Code::Unavailable;
        assert_eq!(retry.is_some(), expect_retry);
        if let Some(r) = retry {
            assert_eq!(r.retry_delay, Some(Duration::from_secs(1)));
        }
    }
    let res = render_kind(&render::Grpc::new(), RejectionKind::from(&key_err));
    assert_eq!(
        res.headers()["grpc-message"],
        "the%20request%20has%20no%20%60authorization%60%20header%20to%20key%20the%20rate%20limit%20on"
    );
}

/// An outcome re-attached to another set is refused instead of panicking (a denial by
/// quota 1 would index past a one-quota set).
#[test]
fn outcomes_refuse_a_foreign_set() {
    let set = minute_bound();
    let denied = deny(&set, 1);
    let d = denied.decision(&set).expect("its own set");
    assert_eq!(d.denied_by().map(|s| s.index()), Some(1));
    assert!(
        denied.decision(&set.clone()).is_some(),
        "an equal set is its set"
    );
    for other in [
        Quotas::from(Quota::per_second(4).expect("q")),
        Quotas::claid(),
        Quotas::clarifai(),
    ] {
        assert!(denied.decision(&other).is_none(), "{other:?}");
    }
}
