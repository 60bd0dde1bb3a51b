//! The client side: pace outgoing calls to a rate-limited API, and retry the way the
//! server asks. Feature `client`.
//!
//! * [`PaceLayer`] / [`Pace`]: a tower layer for outgoing requests (around e.g. a hyper
//!   client) that waits until the quota set admits each request, per key (host, API
//!   key), then sends it. Callers are served FIFO and each wakes exactly at its slot;
//!   a dropped request gives its slot back when that is safe; an optional maximum wait
//!   fails fast with [`PaceError::WouldWait`]. Built on [`Pacer`], the same multi-quota
//!   GCRA as the server side with *reservations* (a slot booked in the future).
//! * [`hints`]: `Retry-After`, `RateLimit-Policy`/`RateLimit`, draft-03
//!   `RateLimit-Limit`/`-Remaining`/`-Reset`, `X-RateLimit-*`, Clarifai's
//!   `CONN_THROTTLED` and gRPC RESOURCE_EXHAUSTED in one [`RateLimitHints`] view, from
//!   which a pacer's [`Quotas`](crate::Quotas) can be built.
//! * [`RetryPolicy`]: a [`tower::retry::Policy`] that retries throttled requests after
//!   the server's hint, with capped attempts and total time.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use std::convert::Infallible;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//! use tower_ratelimit::{Quotas, client::{ByHost, PaceLayer}};
//! // Any service of http requests: here a stand-in for a hyper client.
//! let send = service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, Infallible>(http::Response::new(String::new()))
//! });
//! let mut client = ServiceBuilder::new()
//!     .layer(PaceLayer::new(Quotas::claid(), ByHost))
//!     .service(send);
//! let start = tokio::time::Instant::now();
//! for _ in 0..6 {
//!     let req = http::Request::get("http://api.example/v1").body(String::new())?;
//!     client.ready().await?.call(req).await?;
//! }
//! // A burst of 4, then one every 250 ms: the sixth left 500 ms after the first.
//! assert_eq!(start.elapsed().as_millis(), 500);
//! # Ok(()) }
//! ```

mod clock;
mod config;
mod error;
mod future;
mod headroom;
pub mod hints;
mod key;
mod layer;
mod mode;
mod pacer;
mod retry;
mod service;
mod window;

pub use clock::TokioClock;
pub use config::Observe;
pub use error::PaceError;
pub use future::PaceFuture;
pub use headroom::with_headroom;
pub use hints::RateLimitHints;
pub use key::{ByHeader, ByHost, Cost, OneKey, PaceKey};
pub use layer::PaceLayer;
pub use mode::{PacingMode, default_margin};
pub use pacer::{Pacer, PacerBuilder, Reservation};
pub use retry::RetryPolicy;
pub use service::Pace;
