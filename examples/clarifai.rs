//! A Clarifai-shaped API: `GET /v2/models/types`, limited per API key from
//! `Authorization: Key <PAT>` at 15 requests per second, throttled calls answered the
//! way Clarifai's clients expect (`CONN_THROTTLED`).
//!
//! ```sh
//! cargo run --example clarifai
//! curl -i -H 'Authorization: Key my-pat' http://127.0.0.1:3000/v2/models/types
//! ```

mod common;

use std::net::SocketAddr;

use axum::{Json, Router, routing::get};
use serde_json::json;
use tower_ratelimit::key::HeaderKey;
use tower_ratelimit::{Quotas, RateLimitLayer, render};

async fn model_types() -> Json<serde_json::Value> {
    Json(json!({
        "status": {"code": 10000, "description": "Ok", "req_id": "example"},
        "model_types": [
            {"id": "visual-classifier", "title": "Visual Classifier"},
            {"id": "text-to-text", "title": "Text To Text"}
        ]
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let layer = RateLimitLayer::builder(Quotas::clarifai())
        .key(HeaderKey::clarifai())
        .renderer(render::Clarifai::default())
        .build();
    let app = Router::new()
        .route("/v2/models/types", get(model_types))
        .layer(layer);

    let listener = common::listen(3000).await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
