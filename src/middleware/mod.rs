//! The tower middleware: [`RateLimitLayer`] and the [`RateLimit`] service it builds.
//!
//! A layer is configured once ([`RateLimitLayer::builder`] or
//! [`RateLimitLayer::with_store`]); its state (store, key extractor, renderer, header
//! plan) lives behind one `Arc`, so every service it wraps, every clone and every axum
//! route shares one limiter. For each request the service
//!
//! 1. extracts a key ([`key`](crate::key)); a request without one is answered per
//!    [`MissingKey`];
//! 2. asks the store for one decision over the quota set of the key's tier;
//! 3. admitted: calls the inner service and adds the rate-limit headers
//!    ([`headers`](crate::headers)) to its response; denied: answers at once with the
//!    [`Renderer`](crate::render::Renderer)'s response, `Retry-After` and the same
//!    headers, without calling the inner service.
//!
//! `poll_ready` only asks the inner service: the limiter never holds requests back.
//! The response body is [`ResponseBody`], the inner body or the rejection, and the
//! error type stays the inner service's, so axum's `.layer()` needs no
//! `HandleErrorLayer`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_ratelimit::{Quota, RateLimitLayer};
//!
//! let layer = RateLimitLayer::builder(Quota::per_minute(2)?.with_burst(2)?).build();
//! let hello = service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, Infallible>(http::Response::new(String::from("hello")))
//! });
//! let svc = ServiceBuilder::new().layer(layer).service(hello);
//!
//! for expected in [200, 200, 429] {
//!     let res = svc.clone().oneshot(http::Request::new(String::new())).await?;
//!     assert_eq!(res.status(), expected);
//! }
//! # Ok(()) }
//! ```
//!
//! With axum, per client address (the server must provide connect info):
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use tower_ratelimit::{Quotas, RateLimitLayer, key::PeerIp};
//! let app: axum::Router = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hello" }))
//!     .layer(RateLimitLayer::builder(Quotas::claid()).key(PeerIp).build());
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! # let _ = app; }
//! ```
//!
//! # Panics in your callbacks
//!
//! The middleware catches no panic: one in the key, cost or exempt closure, the tier
//! resolver, the decision hook, the renderer or the inner service unwinds through the
//! request (axum then closes that connection). The limiter stays consistent, because
//! the store's decision is one atomic step: a panic before it costs the request
//! nothing; a request the store admitted stays counted whatever panics afterwards; a
//! denied one never counts, even if its hook or renderer panics and the answer is lost.
//!
//! Files: `layer` (the `Clone` handle), `builder` (configuration), `shared` (the state
//! behind the `Arc` and the decision logic), `service` (`call`), `future` and `body`
//! (what `call` returns), `event` (what hooks and counters see).

pub mod body;
mod builder;
mod event;
pub mod future;
mod layer;
mod service;
mod shared;

pub use body::ResponseBody;
pub use builder::{InMemory, RateLimitLayerBuilder, WithStore};
pub use event::{DecisionEvent, PolicyStats, Stats, Verdict};
pub use future::ResponseFuture;
pub use layer::RateLimitLayer;
pub use service::RateLimit;
pub use shared::{KeyLog, MissingKey};
