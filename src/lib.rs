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

pub mod clock;
mod decision;
mod error;
mod gcra;
pub mod headers;
pub mod key;
pub mod quota;
pub mod render;
mod state;
pub mod store;

pub use decision::{Decision, Outcome, QuotaState};
pub use error::{CheckError, StoreError};
pub use quota::{Quota, QuotaError, Quotas};
pub use store::memory::{KeyedRateLimiter, RateLimiter};
