//! The limiter at work in a few seconds: starts a server with Claid's quotas (4 per
//! second AND 120 per minute, per API key, Claid's headers and 429 body), sends it 10
//! requests per second for 4 seconds from its own client, prints what came back each
//! second, then exits.
//!
//! ```sh
//! cargo run --example demo
//! ```

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Router, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_ratelimit::headers::HeaderStyle;
use tower_ratelimit::key::HeaderKey;
use tower_ratelimit::{Quotas, RateLimitLayer, render};

const SECONDS: u32 = 4;
const PER_SECOND: u32 = 10;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let layer = RateLimitLayer::builder(Quotas::claid())
        .key(HeaderKey::bearer())
        .headers(HeaderStyle::Draft03Claid)
        .renderer(render::Claid::default())
        .build();
    let app = Router::new()
        .route("/v1/image/edit", get(|| async { "edited\n" }))
        .layer(layer);
    // PORT if set, else any free port: the demo talks only to itself.
    let listener = common::listen(0).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    println!(
        "Claid quotas: 4/s and 120/min per API key; sending {PER_SECOND} requests per second for {SECONDS} s\n"
    );
    println!(
        "{:>6} {:>5} {:>9} {:>5}  last headers (RateLimit-Limit | -Remaining | -Reset | Retry-After)",
        "second", "sent", "admitted", "429"
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut tick = tokio::time::interval(Duration::from_millis(u64::from(1000 / PER_SECOND)));
    for second in 0..SECONDS {
        let (mut admitted, mut limited) = (0, 0);
        let mut last = String::new();
        for _ in 0..PER_SECOND {
            tick.tick().await;
            let req = http::Request::get(format!("http://{addr}/v1/image/edit"))
                .header("authorization", "Bearer demo-key")
                .body(Empty::new())?;
            let res = client.request(req).await?;
            match res.status().as_u16() {
                200 => admitted += 1,
                429 => limited += 1,
                other => println!("unexpected status {other}"),
            }
            let h = |name: &str| {
                res.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            last = format!(
                "{} | {} | {} | {}",
                h("ratelimit-limit"),
                h("ratelimit-remaining"),
                h("ratelimit-reset"),
                h("retry-after")
            );
            res.into_body().collect().await?;
        }
        println!("{second:>6} {PER_SECOND:>5} {admitted:>9} {limited:>5}  {last}");
    }
    Ok(())
}
