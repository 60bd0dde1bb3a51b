//! Rate-limit metrics in Prometheus text format: `GET /hello` is limited to 5 requests
//! per minute per peer IP, and `GET /metrics` (not limited) shows the counters of every
//! decision by plan, policy and verdict, scraped through `metrics-exporter-prometheus`.
//!
//! ```sh
//! PORT=3000 cargo run --example metrics --features metrics,axum
//! for i in 1 2 3 4 5 6 7; do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/hello; done
//! curl -s http://127.0.0.1:3000/metrics
//! ```

mod common;

use std::net::SocketAddr;

use axum::{Router, routing::get};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_ratelimit::key::PeerIp;
use tower_ratelimit::{Quota, RateLimitLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    // The recorder first: the layer registers its counters when it is built.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let layer = RateLimitLayer::builder(Quota::per_minute(5)?.named("minute"))
        .key(PeerIp::new())
        .metrics(Some("hello"))
        .build();
    let app = Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .layer(layer)
        // Added after the layer, so not limited.
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        );

    let listener = common::listen(3000).await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
