//! # tower-ratelimit
//!
//! Multi-quota GCRA rate limiting: a lock-free in-process core today; tower middleware,
//! a Redis store and client-side pacing build on it.
//!
//! ```
//! use tower_ratelimit::{KeyedRateLimiter, Quotas};
//! // Claid's documented limits: 4 per second AND 120 per minute, per API key.
//! let limiter = KeyedRateLimiter::new(Quotas::claid());
//! let d = limiter.check_key(&"key-1").unwrap();
//! assert!(d.is_allowed());
//! assert_eq!(d.binding().remaining(), 3);
//! ```
//!
//! See [`quota`] for the algorithm, its exact bound and how it differs from fixed windows.
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

pub mod body;
mod builder;
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
pub use error::{CheckError, StoreError};
pub use quota::{Quota, QuotaError, Quotas};
pub use store::memory::{KeyedRateLimiter, RateLimiter};
