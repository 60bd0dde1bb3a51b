//! Calls `grpc.health.v1.Health/Check` ten times in a row against the `tonic` example
//! (`TARGET`, default `http://127.0.0.1:3000`) and prints each answer: the first five
//! are `SERVING`, the rest `RESOURCE_EXHAUSTED` with the server's retry delay.
//!
//! ```sh
//! TARGET=http://127.0.0.1:3000 cargo run --example tonic_client --features grpc
//! ```

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs to stderr, `RUST_LOG` honoured (default `warn`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let target = std::env::var("TARGET").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let channel = tonic::transport::Channel::from_shared(target)?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    for i in 1..=10 {
        match client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(res) => println!("call {i:>2}: {:?}", res.into_inner().status()),
            Err(status) => {
                let retry = tonic_types::StatusExt::get_details_retry_info(&status)
                    .and_then(|r| r.retry_delay)
                    .map(|d| format!(", retry in {d:?}"))
                    .unwrap_or_default();
                println!(
                    "call {i:>2}: {:?}: {}{retry}",
                    status.code(),
                    status.message()
                );
            }
        }
    }
    Ok(())
}
