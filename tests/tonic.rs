//! The layer around a real tonic server on loopback: throttled calls reach the client as
//! a proper `RESOURCE_EXHAUSTED` status with `RetryInfo`.
#![cfg(all(feature = "tonic", feature = "grpc"))]

use std::net::SocketAddr;

use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;
use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::key::PeerIp;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::{Quota, RateLimitLayer, render};

async fn health_server(
    layer: RateLimitLayer<PeerIp, MemoryStore<std::net::IpAddr, ManualClock>>,
) -> SocketAddr {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("serve");
    });
    addr
}

#[tokio::test]
async fn throttled_grpc_calls_are_resource_exhausted_with_retry_info() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(Quota::per_second(5).expect("quota"), clock.clone());
    let layer = RateLimitLayer::with_store(store)
        .key(PeerIp)
        .renderer(render::Grpc::default())
        .stats(true)
        .build();
    let addr = health_server(layer.clone()).await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    let mut codes = Vec::new();
    let mut last_err = None;
    for _ in 0..7 {
        match client.check(HealthCheckRequest::default()).await {
            Ok(_) => codes.push(Code::Ok),
            Err(status) => {
                codes.push(status.code());
                last_err = Some(status);
            }
        }
    }
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    let status = last_err.expect("a throttled call");
    let retry = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay");
    // The manual clock stands still: exactly one emission interval (200 ms) to wait.
    assert_eq!(retry, std::time::Duration::from_millis(200));
    let stats = layer.stats().expect("stats");
    assert_eq!((stats.admitted, stats.denied), (5, 2));

    // Time passes: the client is served again on the same connection.
    clock.advance(std::time::Duration::from_millis(200));
    assert!(client.check(HealthCheckRequest::default()).await.is_ok());
}
