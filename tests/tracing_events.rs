//! Rejections are logged under target `tower_ratelimit` with the key hashed, unless raw
//! keys are asked for.

mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use common::{Http, serve};
use http::StatusCode;
use tower_ratelimit::key::{HeaderKey, KeyExtractor};
use tower_ratelimit::{KeyLog, Quota, RateLimitLayer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Collects `target: field=value ...` lines of every event.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = format!("{}:", event.metadata().target());
        event.record(&mut Line(&mut line));
        self.0.lock().expect("lock").push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

async fn rejected_lines<E: KeyExtractor>(
    layer: RateLimitLayer<E, tower_ratelimit::store::memory::MemoryStore<E::Key>>,
) -> Vec<String> {
    let collect = Collect::default();
    let _guard = tracing::subscriber::set_default(collect.clone());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let http = Http::new(serve(app).await);
    let auth = [("authorization", "Bearer secret-api-key")];
    assert_eq!(http.send("GET", "/", &auth).await.status, StatusCode::OK);
    assert_eq!(
        http.send("GET", "/", &auth).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let lines = collect.0.lock().expect("lock").clone();
    lines
        .into_iter()
        .filter(|l| l.starts_with("tower_ratelimit:") && l.contains("rate-limited"))
        .collect()
}

fn layer(
    log: KeyLog,
) -> RateLimitLayer<
    HeaderKey,
    tower_ratelimit::store::memory::MemoryStore<tower_ratelimit::key::HeaderToken>,
> {
    RateLimitLayer::builder(Quota::per_minute(1).expect("quota"))
        .key(HeaderKey::bearer())
        .log_keys(log)
        .build()
}

#[tokio::test]
async fn rejections_are_logged_with_the_key_hashed() {
    let lines = rejected_lines(layer(KeyLog::Hashed)).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!lines[0].contains("secret-api-key"), "{}", lines[0]);
    assert!(lines[0].contains(" key="), "{}", lines[0]);
}

#[tokio::test]
async fn raw_keys_are_logged_only_when_asked() {
    let lines = rejected_lines(layer(KeyLog::Raw)).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("secret-api-key"), "{}", lines[0]);
}
