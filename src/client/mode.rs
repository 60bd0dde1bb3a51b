//! [`PacingMode`]: how the pacer books slots, and the jitter margin of window-safe pacing.

use std::time::Duration;

/// How a [`Pacer`](super::Pacer) books slots for outgoing requests.
///
/// Servers count requests in different ways; a schedule that one server admits in full
/// can draw 429s from another with the same quotas. The modes trade throughput for how
/// many server algorithms they are safe against (`n` per `w` for each quota of the set,
/// `m` the margin, [`default_margin`] unless set with [`PacerBuilder::margin`]):
///
/// | mode | guarantee | never rejected by |
/// |---|---|---|
/// | [`Window`](Self::Window) (default) | at most `n` requests in any interval of `w + m` | fixed windows (any alignment), sliding logs, token buckets, GCRA |
/// | [`Even`](Self::Even) | also one request every `(w + m) / n` at most | all of the above and sliding-window counters |
/// | [`Gcra`](Self::Gcra) | the server's own GCRA decisions, bursts included | GCRA and token buckets of the same quotas only |
///
/// What each gives up, against the fastest schedule the server would admit:
/// `Window` loses `m / w` (2% by default) everywhere, and against GCRA or token-bucket
/// servers with several quotas also their extra first burst (a 4/s + 120/min bucket
/// admits 240 requests in its first minute, a window-safe client 120). `Even` sends no
/// burst at all: nothing lost against a sliding-window counter (which only admits
/// spread requests anyway), about 10% against fixed windows with Claid's quotas over 300
/// requests. `Gcra` loses nothing against a GCRA server and draws 429s from fixed
/// windows and sliding logs.
///
/// [`Pacer`]: super::Pacer
/// [`PacerBuilder::margin`]: super::PacerBuilder::margin
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacingMode {
    /// Safe against every server: window-safe, and each request admitted by a
    /// sliding-window counter of each quota whatever its alignment.
    #[default]
    Safe,
    /// Window-safe: an exact sliding log per key of the last booked send instants; a
    /// request is booked at the earliest instant that keeps every quota at `n` or fewer
    /// in any interval of `w + margin`.
    Window,
    /// Window-safe and evenly spaced: also at least `(w + margin) / n` (the largest over
    /// the set) between requests, so a sliding-window counter, which weighs the previous
    /// window's count as if it had been spread evenly, never sees a burst it would
    /// refuse.
    Even,
    /// The server-side GCRA with reservations: bursts of `burst` then one request every
    /// emission interval. Exact against a GCRA server (this crate's, Claid's); too fast
    /// for fixed windows and sliding logs.
    Gcra,
}

/// The default margin for a quota window: 2% of it, at most 50 ms.
///
/// The margin absorbs the difference between when this process sends and when the
/// server counts: network delay that varies from request to request, and a server that
/// timestamps on arrival. 2% keeps the loss below the few percent a client can afford at
/// short windows (20 ms on a 1-s window: 4/s paces as 4 per 1.02 s); the 50-ms cap keeps
/// long windows from waiting seconds for jitter that never exceeds tens of milliseconds
/// on a sane path (60-s window: 50 ms, 0.08%).
///
/// ```
/// use std::time::Duration;
/// use tower_ratelimit::client::default_margin;
/// assert_eq!(default_margin(Duration::from_secs(1)), Duration::from_millis(20));
/// assert_eq!(default_margin(Duration::from_secs(60)), Duration::from_millis(50));
/// ```
pub fn default_margin(window: Duration) -> Duration {
    (window / 50).min(Duration::from_millis(50))
}
