//! # tower-ratelimit
//!
//! Rate limiting for tower services and their clients: several quotas checked as one
//! decision (4 per second AND 120 per minute), per client key, by a lock-free GCRA core;
//! admitted responses carry rate-limit headers, denied requests get a rendered 429 (or a
//! gRPC `RESOURCE_EXHAUSTED`); the same quotas can be shared by many processes on Redis.
//!
//! ```
//! use tower_ratelimit::{KeyedRateLimiter, Quotas};
//! // Claid's documented limits: 4 per second AND 120 per minute, per API key.
//! let limiter = KeyedRateLimiter::<str>::new(Quotas::claid());
//! let d = limiter.check_key("key-1").unwrap();
//! assert!(d.is_allowed());
//! assert_eq!(d.binding().remaining(), 3);
//! ```
//!
//! See [`quota`] for the algorithm, the exact bound it guarantees (`b + floor(L/T)` in any
//! interval of length `L`) and how it differs from fixed windows.
//!
//! As tower middleware ([`RateLimitLayer`]), around an axum router, a tonic server or any
//! `Service<http::Request<B>>`:
//!
//! ```
//! use tower_ratelimit::{Quotas, RateLimitLayer, headers::HeaderStyle, key::HeaderKey, render};
//! let layer = RateLimitLayer::builder(Quotas::claid())
//!     .key(HeaderKey::bearer())
//!     .headers(HeaderStyle::Draft03Claid)
//!     .renderer(render::Claid::default())
//!     .build();
//! # #[cfg(feature = "axum")]
//! let app: axum::Router = axum::Router::new()
//!     .route("/v1/image/edit", axum::routing::post(|| async { "ok" }))
//!     .layer(layer);
//! ```
//!
//! ## Modules
//!
//! | module | what it holds |
//! |---|---|
//! | [`quota`] | `Quota`, `Quotas` (1 to 4 quotas as one decision), presets |
//! | [`clock`] | `Clock`; `CoarseClock` (default), `MonotonicClock` (TSC), `ManualClock` |
//! | [`store`] | the `Store` contract; `memory` (lock-free, in process); `redis` |
//! | [`key`] | who a request counts against: global, peer IP, client IP behind trusted proxies, a header, a closure |
//! | [`headers`] | IETF `RateLimit`/`RateLimit-Policy`, draft-03, `X-RateLimit-*`, `Retry-After` |
//! | [`render`] | 429 bodies: problem+json, Clarifai, Claid, gRPC, text, closures |
//! | `client` | pace outgoing calls, retry as the server asks, parse its hints |
//! | `client` | outgoing calls: `PaceLayer` (wait for a slot instead of a 429), `RetryPolicy` (retry as the server asks), `hints` (parse every rate-limit field) |
//!
//! ## Cargo features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `axum` | yes | `PeerIp`/`ClientIp` read axum's `ConnectInfo<SocketAddr>` |
//! | `tonic` | yes | `PeerIp`/`ClientIp` read tonic's `TcpConnectInfo` |
//! | `grpc` | yes | `render::Grpc` (tonic `Status` with `RetryInfo`, `QuotaFailure`) |
//! | `redis` | yes | `store::redis::RedisStore` (redis-rs, tokio) |
//! | `client` | yes | `client`: pacing layer, retry policy, hint parsers (tokio time, tower retry, sfv, httpdate) |
//!
//! The in-memory core, the middleware, headers and the other renderers need none of
//! them: `default-features = false` gives the lean build.

pub mod body;
mod builder;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
mod decision;
mod error;
mod event;
pub mod future;
mod gcra;
pub mod headers;
pub mod key;
mod layer;
pub mod quota;
pub mod render;
mod service;
mod state;
pub mod store;

pub use builder::{InMemory, RateLimitLayerBuilder, WithStore};
pub use event::{DecisionEvent, PolicyStats, Stats, Verdict};
pub use layer::{KeyLog, MissingKey, RateLimitLayer};
pub use service::RateLimit;

pub use decision::{Decision, Outcome, QuotaState};
pub use error::{CheckError, ReloadError, StoreError};
pub use quota::{ParseQuotaError, Quota, QuotaError, Quotas};
pub use store::memory::{KeyedRateLimiter, RateLimiter};
