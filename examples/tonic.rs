//! The standard `grpc.health.v1.Health` service, limited per peer IP at 5 per second;
//! throttled calls get `RESOURCE_EXHAUSTED` with `RetryInfo`. Try it with the
//! `tonic_client` example or any gRPC client.
//!
//! ```sh
//! cargo run --example tonic --features tonic,grpc
//! TARGET=http://127.0.0.1:3000 cargo run --example tonic_client --features grpc
//! ```

mod common;

use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower_ratelimit::key::PeerIp;
use tower_ratelimit::{Quota, RateLimitLayer, render};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let layer = RateLimitLayer::builder(Quota::per_second(5)?)
        .key(PeerIp::new())
        .renderer(render::Grpc::default())
        .build();

    let listener = common::listen(3000).await?;
    Server::builder()
        .layer(layer)
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener))
        .await?;
    Ok(())
}
