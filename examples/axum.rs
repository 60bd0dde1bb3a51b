//! The default style: problem+json rejections and IETF `RateLimit` headers, keyed by
//! peer IP (no proxy trusted), 10 per second and 300 per minute.
//!
//! ```sh
//! PORT=3000 cargo run --example axum --features axum
//! curl -i http://127.0.0.1:3000/hello
//! ```

mod common;

use std::net::SocketAddr;

use axum::{Router, routing::get};
use tower_ratelimit::key::PeerIp;
use tower_ratelimit::{Quota, Quotas, RateLimitLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let quotas = Quotas::new([
        Quota::per_second(10)?.named("burst"),
        Quota::per_minute(300)?.named("minute"),
    ])?;
    let app = Router::new()
        .route("/", get(|| async { "tower-ratelimit axum example\n" }))
        .route("/hello", get(|| async { "hello\n" }))
        .layer(RateLimitLayer::builder(quotas).key(PeerIp::new()).build());

    let listener = common::listen(3000).await?;
    // Connect info gives `PeerIp` the client's address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
