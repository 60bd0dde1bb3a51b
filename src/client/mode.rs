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
/// | [`Safe`](Self::Safe) (default) | at most `n` in any `w + m`, and a sliding-window counter of `n` per `w` admits every request at any alignment | fixed windows (any alignment), sliding logs, sliding-window counters (any alignment), token buckets, GCRA |
/// | [`Window`](Self::Window) | at most `n` requests in any interval of `w + m` | all of those but sliding-window counters |
/// | [`Even`](Self::Even) | also one request every `(w + m) / n` at most | all of them (like `Safe`, without its bursts) |
/// | [`Gcra`](Self::Gcra) | the server's own GCRA decisions, bursts included | GCRA and token buckets of the same quotas only |
///
/// The margin absorbs network jitter: a server whose clock or network delay moves any
/// request by up to `m` relative to the others still admits everything (for the
/// counter, each earlier request is taken `m` younger than it is).
///
/// # What each gives up
///
/// Measured over 300 requests fired at once against a model of each server
/// (`tests/client_servers.rs`), as the throughput ratio: the time the fastest schedule
/// the server admits needs for them, over the time the pacer took (1 = as fast as that
/// server allows). Claid's quotas (4/s and 120/min) / Clarifai's (15/s):
///
/// | mode | fixed windows, sliding log | sliding-window counter | token bucket, GCRA |
/// |---|---|---|---|
/// | `Safe` | 0.8957 / 0.9346 | 0.9993 / 0.9806 | 0.6016 / 0.9346 |
/// | `Window` | 0.9972 / 0.9804 | 99 / 124 rejected | 0.6697 / 0.9804 |
/// | `Even` | 0.8956 / 0.9345 | 0.9992 / 0.9804 | 0.6015 / 0.9345 |
/// | `Gcra` | 119 / 14 rejected | 120 / 14 rejected | 1.0000 / 0.9999 |
///
/// `Safe` and `Even` are equally fast over long runs; on short ones `Safe` bursts
/// where no counter can tell and `Even` does not: Claid's first 100 requests at 0.951
/// of what fixed windows allow in `Safe`, 0.484 in `Even`.
///
/// # No schedule is safe everywhere and fastest everywhere
///
/// A client that does not know the server's algorithm must send what all of them
/// admit, and that costs throughput against the lenient ones:
///
/// * A token bucket (or GCRA) of 4/s and 120/min starts full: 4/s until the minute
///   bucket has drained at a net 2/s, so its 300th request can go at 90 s (240 in the
///   first minute). A sliding log refuses the 121st request in any minute, so any
///   schedule it admits sends its 121st no earlier than 60 s after its first and its
///   241st no earlier than 120 s, with 4/s between: the 300th no earlier than 134 s.
///   Against the bucket such a client gets at most 90 / 134 = 0.672.
/// * A sliding-window counter whose windows begin at the client's first request admits
///   at most 120 in that minute, and in the next weighs those 120 as if spread, which
///   leaves 2/s; its 300th request can go at 149.5 s at the earliest (60 in the third
///   minute, 0.5 s apart). Fixed windows and sliding logs allow 134 s: a counter-safe
///   client gets at most 134 / 149.5 = 0.896 against them, 90 / 149.5 = 0.602 against
///   the bucket. With Clarifai's 15/s the counter needs 19.93 s where fixed windows need
///   19 s: at most 0.953.
///
/// So no fixed (non-adaptive) schedule is both never rejected by all six and within
/// 95% of each one's own bound; `Safe` is within 0.1% of these bounds for Claid's
/// quotas, and for Clarifai's gives up only the margin (0.9346 of 0.953). Knowing the
/// server buys the rest: `Window` for fixed windows and logs, `Gcra` for GCRA.
///
/// [`Pacer`]: super::Pacer
/// [`PacerBuilder::margin`]: super::PacerBuilder::margin
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacingMode {
    /// Safe against every server: the sliding log of [`Window`](Self::Window), and a
    /// request is booked no earlier than a sliding-window counter of each quota would
    /// admit it, whatever the counter's alignment. A fresh key bursts (Claid: 4 at
    /// once), then requests are spread as such a counter requires (Claid: the next 4
    /// at 1.02, 1.27, 1.52, 1.77 s; after 120 in the first minute, 2/s). Fast quotas,
    /// whose exact check would cost more than about 1% of a core at full rate (`n² / w`
    /// above 65 536 per second, e.g. 1000/s; not 120/min or 4000/h), and quotas above
    /// 4096 per window are paced evenly instead, `(w + m) / n` apart: no burst, no
    /// counter refuses them. A booking costs about 50 µs of CPU at 120/min, under
    /// 1 µs when paced evenly.
    #[default]
    Safe,
    /// Window-safe: an exact sliding log per key of the last booked send instants; a
    /// request is booked at the earliest instant that keeps every quota at `n` or fewer
    /// in any interval of `w + margin`. The fastest against fixed windows and sliding
    /// logs; refused by sliding-window counters.
    Window,
    /// Window-safe and evenly spaced: also at least `(w + margin) / n` (the largest over
    /// the set) between requests, so a sliding-window counter, which weighs the previous
    /// window's count as if it had been spread evenly, never sees a burst it would
    /// refuse. The simplest guarantee; as fast as `Safe` on long runs, slower on
    /// short ones.
    Even,
    /// The server-side GCRA with reservations: bursts of `burst` then one request every
    /// emission interval. Exact against a GCRA server (this crate's, Claid's); too fast
    /// for fixed windows, sliding logs and sliding-window counters.
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
