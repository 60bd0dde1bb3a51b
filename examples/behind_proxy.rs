//! The safe setup behind a reverse proxy: trust only the proxies you run (here loopback,
//! 127.0.0.0/8 and ::1), key by the client address they append to `X-Forwarded-For`,
//! and read no other forwarding header. 5 requests per minute per client on
//! `GET /hello`, default headers (IETF `RateLimit`) and renderer (problem+json).
//!
//! ```sh
//! PORT=3000 cargo run --example behind_proxy --features axum
//! # What nginx's `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for` sends:
//! for i in $(seq 7); do
//!   curl -s -o /dev/null -w '%{http_code}\n' -H 'X-Forwarded-For: 203.0.113.7' \
//!     127.0.0.1:3000/hello
//! done   # 200 x5, then 429
//! # A forged Forwarded header or left-hand entry changes nothing:
//! curl -i -H 'Forwarded: for=198.51.100.1' -H 'X-Forwarded-For: 1.2.3.4, 203.0.113.7' \
//!   127.0.0.1:3000/hello   # 429: still 203.0.113.7
//! ```
//!
//! A request from a peer that is not a trusted proxy is keyed by that peer, whatever its
//! headers say (and the first such request logs one warning). Environment: `PORT`
//! (default 3000; 0 picks a free port).

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use tower_ratelimit::key::ClientIp;
use tower_ratelimit::{Quota, RateLimitLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    // Only addresses of proxies you run belong here: a trusted peer speaks for clients.
    let key = ClientIp::x_forwarded_for(["127.0.0.0/8", "::1"])?;
    let layer = RateLimitLayer::builder(Quota::per_minute(5)?.named("minute"))
        .key(key)
        .build();
    let app = Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .layer(layer);
    let listener = common::listen(3000).await?;
    // Connect info gives `ClientIp` the peer (the proxy) to check against the list.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
