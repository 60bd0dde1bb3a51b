//! Limits from a TOML file, changed while the server runs: `examples/limits.toml` (or the
//! file named by `LIMITS`) declares the default set and named plans; requests carrying
//! an `x-api-key` that starts with `pro-` get the `pro` plan, others the default. The
//! file is polled once a second and, when it changes and parses, swapped in live with
//! [`RateLimitLayer::reload`]: every client keeps its standing, and headers show the new
//! limits at once.
//!
//! ```sh
//! PORT=3000 cargo run --example config --features serde,axum
//! curl -i -H 'x-api-key: alice' http://127.0.0.1:3000/hello
//! curl -i -H 'x-api-key: pro-bob' http://127.0.0.1:3000/hello
//! ```

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::{Router, routing::get};
use http::HeaderName;
use tower_ratelimit::RateLimitLayer;
use tower_ratelimit::key::{HeaderKey, HeaderToken};
use tower_ratelimit::store::{Tier, Tiers};

fn read(path: &PathBuf) -> Result<(Tiers, SystemTime), String> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tiers = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((tiers, modified))
}

fn describe(tiers: &Tiers) -> String {
    let plans: Vec<String> = tiers
        .plans()
        .map(|(_, name, quotas)| format!("{name} = [{quotas}]"))
        .collect();
    plans.join("; ")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let path = std::env::var_os("LIMITS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/limits.toml"));
    let (tiers, mut seen) = read(&path)?;
    // Handles are taken once, at build time: an unknown plan is a startup error.
    let pro = tiers
        .tier("pro")
        .ok_or_else(|| format!("{}: no [plans] pro", path.display()))?;
    println!("limits: {}", describe(&tiers));
    let layer = RateLimitLayer::builder(tiers)
        .key(HeaderKey::new(HeaderName::from_static("x-api-key")))
        .tiers(move |key: &HeaderToken| {
            if key.as_str().starts_with("pro-") {
                pro
            } else {
                Tier::DEFAULT
            }
        })
        .build();

    // The layer is its own reload handle.
    let handle = layer.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified.is_none_or(|m| m == seen) {
                continue;
            }
            match read(&path) {
                Ok((tiers, modified)) => {
                    seen = modified;
                    let text = describe(&tiers);
                    match handle.reload(tiers) {
                        Ok(()) => println!("reloaded: {text}"),
                        Err(e) => eprintln!("not reloaded: {e}"),
                    }
                }
                Err(e) => {
                    // Reported once per change, and the limits in force stay.
                    seen = modified.unwrap_or(seen);
                    eprintln!("not reloaded: {e}");
                }
            }
        }
    });

    let app = Router::new()
        .route("/", get(|| async { "tower-ratelimit config example\n" }))
        .route("/hello", get(|| async { "hello\n" }))
        .layer(layer);
    let listener = common::listen(3000).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
