//! The axum example on the Redis store: every copy of this server that shares one Redis
//! shares one limit, per peer IP at 10 per minute.
//!
//! ```sh
//! redis-server --port 6379 &
//! PORT=3000 cargo run --example redis --features redis,axum &
//! PORT=3001 cargo run --example redis --features redis,axum &
//! for i in $(seq 20); do curl -s -o /dev/null -w '%{http_code}\n' 127.0.0.1:300$((i % 2))/hello; done
//! ```
//!
//! Between them the two copies admit 10 requests, not 20. Environment: `REDIS_URL`
//! (default `redis://127.0.0.1:6379`), `PORT` (default 3000; 0 picks a free port),
//! `RATE_LIMIT_KEY_SECRET` (the secret of the hashed Redis key names, the same for every
//! copy; a fixed example value if unset, which is fine only for a demo).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tower_ratelimit::key::PeerIp;
use tower_ratelimit::store::redis::{FailurePolicy, RedisStore};
use tower_ratelimit::{Quota, RateLimitLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = RedisStore::builder(Quota::per_minute(10)?.named("minute"))
        .prefix("example:")
        // Redis sees a keyed hash of each client address, never the address itself.
        .key_secret(
            std::env::var("RATE_LIMIT_KEY_SECRET")
                .unwrap_or_else(|_| "example-only-secret-replace-me".into()),
        )
        .timeout(Duration::from_millis(100))
        // Without Redis, refuse (503) rather than serve unlimited.
        .on_failure(FailurePolicy::FailClosed)
        .connect(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let layer = RateLimitLayer::with_store(store).key(PeerIp::new()).build();
    let app = Router::new()
        // The axum example's routes, on a shared limit.
        .route("/", get(|| async { "tower-ratelimit redis example\n" }))
        .route("/hello", get(|| async { "hello\n" }))
        .layer(layer);
    let listener = common::listen(3000).await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
