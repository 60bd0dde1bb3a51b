//! Shared by the HTTP examples: bind `127.0.0.1:$PORT` and announce it with the
//! `listening on http://127.0.0.1:<port>` line that scripts wait for; log to stderr.

use std::error::Error;

use tokio::net::TcpListener;

/// Binds `127.0.0.1:$PORT` (`default_port` when `PORT` is unset; 0 picks a free port),
/// prints the listening line and returns the listener. A malformed `PORT` is an error.
pub(crate) async fn listen(default_port: u16) -> Result<TcpListener, Box<dyn Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().map_err(|e| format!("PORT={p:?}: {e}"))?,
        Err(_) => default_port,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening on http://127.0.0.1:{}",
        listener.local_addr()?.port()
    );
    Ok(listener)
}

/// Logs to stderr with the `RUST_LOG` filter (default `warn`, so an operator sees the
/// limiter's warnings: a store that fails, a breaker that opens or closes).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
