//! A Claid-shaped API: `GET` and `POST /v1/image/edit`, limited per API key from
//! `Authorization: Bearer <key>` at 4 per second and 120 per minute, with Claid's
//! draft-03 headers (`RateLimit-Limit: 120, 120;w=60, 4;w=1`, `RateLimit-Remaining: -1`
//! on a 429) and its `detail` error body.
//!
//! ```sh
//! cargo run --example claid
//! curl -i -X POST -H 'Authorization: Bearer my-key' http://127.0.0.1:3000/v1/image/edit
//! ```

mod common;

use std::net::SocketAddr;

use axum::{Json, Router, routing::get};
use serde_json::json;
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::key::HeaderKey;
use tower_ratelimit::{Quotas, RateLimitLayer, render};

async fn edit() -> Json<serde_json::Value> {
    Json(json!({"data": {"output": {"tmp_url": "https://example.invalid/out.png"}}}))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let layer = RateLimitLayer::builder(Quotas::claid())
        .key(HeaderKey::bearer())
        .headers(HeaderStyle::Draft03Claid)
        .renderer(render::Claid::default())
        .build();
    let app = Router::new()
        .route("/v1/image/edit", get(edit).post(edit))
        .layer(layer);

    let listener = common::listen(3000).await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
