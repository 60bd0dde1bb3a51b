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
//! As tower middleware ([`RateLimitLayer`], see [`middleware`]), around an axum router,
//! a tonic server or any `Service<http::Request<B>>`:
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
//! Data flows one way: request → [`key`] → [`store`] (one decision) → inner service or
//! [`render`] → [`headers`] → response. The algorithm never sees HTTP.
//!
//! | module | what it holds |
//! |---|---|
//! | [`quota`] | `Quota`, `Quotas` (1 to 4 quotas as one decision), presets |
//! | [`clock`] | `Clock`; `CoarseClock` (default), `ManualClock`, `MonotonicClock` (feature `tsc`) |
//! | [`store`] | the `Store` contract and `Tiers`; `memory` (lock-free, in process); `redis` |
//! | [`key`] | who a request counts against: global, peer IP, client IP behind trusted proxies, a header, a closure |
//! | [`middleware`] | `RateLimitLayer`, its builder, the `RateLimit` service, its future and body, decision events |
//! | [`headers`] | IETF `RateLimit`/`RateLimit-Policy`, draft-03, `X-RateLimit-*`, `Retry-After` |
//! | [`render`] | 429 bodies: problem+json, Clarifai, Claid, gRPC, text, closures |
//! | `client` | outgoing calls: `PaceLayer` (wait for a slot instead of a 429), `RetryPolicy` (retry as the server asks), `hints` (parse every rate-limit field) |
//!
//! ## Cargo features
//!
//! None is on by default: the in-process core, the middleware, the headers and the
//! problem+json, Clarifai, Claid and text renderers need none of them.
//!
//! | feature | enables |
//! |---|---|
//! | `axum` | `PeerIp`/`ClientIp` read axum's `ConnectInfo<SocketAddr>` |
//! | `tonic` | `PeerIp`/`ClientIp` read tonic's `TcpConnectInfo` |
//! | `grpc` | `render::Grpc` (tonic `Status` with `RetryInfo`, `QuotaFailure`) |
//! | `redis` | `store::redis::RedisStore` (redis-rs, tokio) |
//! | `client` | `client`: pacing layer, retry policy, hint parsers (tokio time, tower retry, sfv, httpdate) |
//! | `tsc` | `clock::MonotonicClock`, a nanosecond clock on the CPU's time-stamp counter (quanta) |

#[cfg(feature = "client")]
pub mod client;
pub mod clock;
mod decision;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gcra;
pub mod headers;
mod interval_gate;
pub mod key;
pub mod middleware;
pub mod quota;
pub mod render;
mod state;
pub mod store;

// Earlier paths of the middleware's future and body modules.
#[doc(hidden)]
pub use middleware::{body, future};

pub use middleware::{
    DecisionEvent, InMemory, KeyLog, MissingKey, PolicyStats, RateLimit, RateLimitLayer,
    RateLimitLayerBuilder, Stats, Verdict, WithStore,
};

pub use decision::{Decision, Outcome, QuotaState};
pub use error::{CheckError, StoreError};
pub use quota::{Quota, QuotaError, Quotas};
pub use store::memory::{AtCapacity, KeyedRateLimiter, RateLimiter};

// The README's code blocks are compiled as doctests (they use every integration).
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "tonic",
    feature = "grpc",
    feature = "redis",
    feature = "client"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
