//! The client side: pace outgoing calls to a rate-limited API, and retry the way the
//! server asks. Feature `client`.
//!
//! * [`PaceLayer`] / [`Pace`]: a tower layer for outgoing requests (around e.g. a hyper
//!   client) that waits until the quota set admits each request, per key (host, API
//!   key), then sends it. Callers are served FIFO and each wakes exactly at its slot;
//!   a dropped request gives its slot back when that is safe; an optional maximum wait
//!   fails fast with [`PaceError::WouldWait`]. Built on [`Pacer`], which books slots in
//!   one of three [`PacingMode`]s.
//! * [`hints`]: `Retry-After`, `RateLimit-Policy`/`RateLimit`, draft-03
//!   `RateLimit-Limit`/`-Remaining`/`-Reset`, `X-RateLimit-*`, Clarifai's
//!   `CONN_THROTTLED` and gRPC RESOURCE_EXHAUSTED in one [`RateLimitHints`] view, from
//!   which a pacer's [`Quotas`](crate::Quotas) can be built.
//! * [`RetryPolicy`]: a [`tower::retry::Policy`] that retries throttled requests after
//!   the server's hint, with capped attempts and total time.
//!
//! # Which mode
//!
//! Servers count in different ways, and a schedule one admits in full can draw 429s
//! from another with the same quotas: GCRA at full rate puts a fifth request into a
//! fixed window that already holds four; a burst of four at each widened second, which
//! every fixed window admits, is refused by a sliding-window counter, which weighs the
//! previous window's burst as if it had been spread. For each quota `n` per `w` of the
//! set, with a margin `m` ([`default_margin`]: 2% of `w`, at most 50 ms):
//!
//! | mode | guarantee | no 429 from | gives up (Claid / Clarifai, 300 requests) |
//! |---|---|---|---|
//! | [`Safe`](PacingMode::Safe) (default) | at most `n` in any `w + m`, and admitted by a sliding-window counter at any alignment | fixed windows (any alignment), sliding logs, sliding-window counters (any alignment), token buckets, GCRA | ratio 0.896 / 0.935 against fixed windows and logs, 0.999 / 0.981 against counters, 0.602 / 0.935 against buckets and GCRA: within 0.1% of what any client safe against all of them can get for Claid, the margin for Clarifai |
//! | [`Window`](PacingMode::Window) | at most `n` in any `w + m` | all but sliding-window counters | 0.997 / 0.980 against fixed windows and logs, 0.670 / 0.980 against buckets and GCRA; refused by counters |
//! | [`Even`](PacingMode::Even) | also at least `(w + m) / n` between requests | all six | as `Safe` over long runs; no burst ever, so short runs are slow (Claid's first 100: 0.48 of fixed windows' bound, `Safe` 0.95) |
//! | [`Gcra`](PacingMode::Gcra) | the server's own GCRA decisions | GCRA and token buckets only | nothing against GCRA; 429s from fixed windows, logs and counters |
//!
//! Keep the default unless you know the server: `Window` for fixed windows or sliding
//! logs (most APIs announcing `RateLimit-Reset`), `Gcra` for a GCRA server (this
//! crate's [`RateLimitLayer`](crate::RateLimitLayer), Claid's). Against a token bucket
//! with two quotas a client safe against a sliding log cannot use the bucket's double
//! first minute (see [`PacingMode`] for the proof and the bound per model). The figures
//! come from `tests/client_servers.rs`, which runs each mode against a model of each
//! server (`--nocapture` prints the table).
//!
//! The guarantee is about the instants the pacer sends at, which is what the server
//! counts once the request has crossed the network. A send that leaves later than its
//! slot by more than the margin (a starved runtime, an inner service slow to become
//! ready) or a network delay that varies by more than the margin can still draw a 429;
//! the holds below and [`RetryPolicy`] deal with those.
//!
//! What the server says is obeyed in every mode: a 429's `Retry-After` (and, by default
//! in the log modes, `remaining: 0` with a reset on a success: [`Observe`]) holds the
//! key, and requests already booked wait for the hold and book again behind it.
//!
//! Memory per key, log modes: 16 bytes per distinct send instant inside the longest
//! window (at most its `n`; in `Safe` mode twice the window, about `2n`) plus one per
//! waiting request; quotas above 4096 per window are paced as `n/k` per `w/k`, which
//! keeps the bound (see [`Pacer`]). Idle keys are forgotten.
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
//! // Safe against every server: 4 at once, then the next 4 spread from a widened
//! // second (1.02 s) on, as a sliding-window counter of any alignment admits them; the
//! // 6th just after 1.27 s (tokio's timers fire on whole milliseconds).
//! assert_eq!(start.elapsed().as_millis(), 1271);
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
