//! [`PaceFuture`]: the response future of [`Pace`](super::Pace).

use std::future::Future;
use std::pin::Pin;

use tower::BoxError;

/// Waits for the request's slot, then runs the inner call. Boxed: the wait and the call
/// are one `async` block, so dropping it at any point releases what it holds.
pub type PaceFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;
