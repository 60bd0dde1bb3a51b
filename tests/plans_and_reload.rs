//! Named plans and live reconfiguration through the middleware, on loopback axum servers:
//! an unknown plan is a 500 (never the default set), the hook sees plan names, and after
//! a reload the headers describe the new set while every client keeps its standing.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use common::{Http, serve};
use tower_ratelimit::key::HeaderKey;
use tower_ratelimit::store::{Tier, Tiers};
use tower_ratelimit::{Quotas, RateLimitLayer, ReloadError, Verdict};

/// What the hook saw: the verdict and the plan name.
type Seen = (Verdict, Option<String>);

fn set(s: &str) -> Quotas {
    s.parse().expect("valid")
}

fn app() -> Router {
    Router::new().route("/hello", get(|| async { "hello\n" }))
}

async fn hello(http: &Http, key: &str) -> common::Answer {
    http.send("GET", "/hello", &[("x-api-key", key)]).await
}

#[tokio::test]
async fn plans_by_name_and_unknown_plans_are_errors() {
    let tiers = Tiers::new(set("1/min")).plan("pro", set("3/min"));
    let pro = tiers.tier("pro").expect("declared");
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let layer = RateLimitLayer::builder(tiers)
        .key(HeaderKey::new(http::HeaderName::from_static("x-api-key")))
        .tiers(
            move |k: &tower_ratelimit::key::HeaderToken| match k.as_str() {
                k if k.starts_with("pro-") => pro,
                "typo" => Tier(7),
                _ => Tier::DEFAULT,
            },
        )
        .on_decision(move |e| {
            let plan = e.plan().map(str::to_owned);
            log.lock().expect("not poisoned").push((e.verdict(), plan));
        })
        .build();
    let http = Http::new(serve(app().layer(layer)).await);
    let codes = |answers: Vec<common::Answer>| {
        answers
            .iter()
            .map(|a| a.status.as_u16())
            .collect::<Vec<_>>()
    };
    let mut pro_answers = Vec::new();
    for _ in 0..4 {
        pro_answers.push(hello(&http, "pro-ann").await);
    }
    assert_eq!(codes(pro_answers), [200, 200, 200, 429]);
    assert_eq!(hello(&http, "bob").await.status, 200);
    assert_eq!(hello(&http, "bob").await.status, 429);
    let typo = hello(&http, "typo").await;
    assert_eq!(
        typo.status, 500,
        "an unknown plan is an error, not the default set"
    );
    assert!(
        std::str::from_utf8(&typo.body)
            .expect("text")
            .contains("unknown plan")
    );
    let seen = seen.lock().expect("not poisoned").clone();
    let plan = |s: &str| Some(s.to_owned());
    assert_eq!(
        seen,
        [
            (Verdict::Admitted, plan("pro")),
            (Verdict::Admitted, plan("pro")),
            (Verdict::Admitted, plan("pro")),
            (Verdict::Denied, plan("pro")),
            (Verdict::Admitted, plan("default")),
            (Verdict::Denied, plan("default")),
            (Verdict::StoreError, None),
        ]
    );
}

#[tokio::test]
async fn reload_changes_limits_and_headers_and_keeps_standing() {
    let layer = RateLimitLayer::builder(Tiers::new(set("4/h name hourly")))
        .key(HeaderKey::new(http::HeaderName::from_static("x-api-key")))
        .build();
    let http = Http::new(serve(app().layer(layer.clone())).await);
    for _ in 0..3 {
        assert_eq!(hello(&http, "a").await.status, 200);
    }
    let before = hello(&http, "a").await;
    assert_eq!(
        before.header("ratelimit-policy"),
        Some(r#""hourly";q=4;w=3600"#)
    );
    assert_eq!(before.header("ratelimit"), Some(r#""hourly";r=0;t=3600"#));
    // 4 of 4 used: a level of one hour. Under 8/h the same hour is 8 of 8: still none
    // left for "a"; a fresh key gets the new burst.
    layer
        .reload(Tiers::new(set("8/h name hourly")))
        .expect("reload");
    let after = hello(&http, "a").await;
    assert_eq!(
        after.status, 429,
        "standing kept: no fresh burst at the switch"
    );
    assert_eq!(
        after.header("ratelimit-policy"),
        Some(r#""hourly";q=8;w=3600"#)
    );
    let fresh: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..9 {
            v.push(hello(&http, "b").await.status.as_u16());
        }
        v
    };
    assert_eq!(fresh, [200, 200, 200, 200, 200, 200, 200, 200, 429]);
    assert_eq!(
        layer
            .reload(Tiers::new(set("1/s")).plan("extra", set("2/s")))
            .map(|_| layer.tiers().len()),
        Ok(2)
    );
    assert_eq!(
        layer.reload(Tiers::new(set("1/s"))),
        Err(ReloadError::PlanRemoved("extra".into()))
    );
}
