//! Window-safe booking: an exact sliding log of booked send instants, per key, and the
//! check that sliding-window counters of every alignment admit each booking.
//!
//! # The rule
//!
//! A limit is `n` units in any interval of `span` nanoseconds (the quota's window plus
//! the margin). Bookings are made in order at non-decreasing instants, so the log is
//! sorted. A booking of `cost` at `a` keeps the limit iff the units already booked in
//! `(a - span, a]` number at most `n - cost`, that is iff the `(n - cost + 1)`-th newest
//! unit is at or before `a - span`. The earliest such `a` (at or after now, the previous
//! booking and any hold) is the maximum, over the limits of the set, of that unit's
//! instant plus `span`. Then every interval `(s, s + span]` holds at most `n` units, which
//! no fixed window (of any alignment), sliding log, token bucket or GCRA of `n` per
//! `span` or less can refuse.
//!
//! # Safe against sliding-window counters too
//!
//! A sliding-window counter of `n` per `w` (Cloudflare's) keeps clock-aligned windows
//! and, `e` into the current one, admits `cost` iff `floor(prev * (w - e) / w) + cur +
//! cost <= n`. [`Rule::Safe`] books a request only where that holds for every `e` in
//! `[0, w)`, so for every alignment, over the requests already booked: as a function
//! of `e` the weighted sum only falls between the points where a logged run enters the
//! current window or the previous one, so checking those points (and `e = 0`) is
//! checking all of them ([`Log::counter_admits`]). Every weight only falls as time
//! passes, so the admissible instants are an up-set: the earliest is found by binary
//! search, and raising the instant for one limit never breaks another. The server sees
//! a subset of what was checked (given-back bookings leave the log), so it admits every
//! request.
//!
//! Jitter: each earlier run is taken `margin` younger than it is. If the network moves
//! each request by at most the margin, the server's view of request `k` is the set of
//! requests arriving before it; the latest-sent of those (or `k` itself) was checked
//! against all the others at ages no greater than the server's (and against `k` at full
//! weight, where the server counts that latest one instead), so the server's sum is at
//! most what was checked. A request
//! the server sees early can only be one sent less than the margin after `k`, which is
//! why ages within the margin count in full.
//!
//! Limits scaled above [`MAX_SLOTS`] are not checked this way (the log holds scaled
//! units), nor are fast ones, whose checks would cost more than about 1% of a core at
//! full rate (`n² / w` above [`COUNTER_BUDGET`] per second: 1000/s is fast, 120/min and
//! 4000/h are not); they are paced more than `(w + margin) / quota` apart, and a stream with at
//! least that spacing is admitted by every counter: the `j`-th newest request is at
//! least `j` spacings old, and the weighted sum of such a stream, ages less the margin,
//! is at most `(w + margin) / spacing < n`.
//!
//! # Memory
//!
//! Units at the same instant are stored as one run `(instant, units)`. A run older than
//! the longest span can never bind again and is dropped, so the log holds at most `n`
//! runs of the longest-window limit plus one per booking still waiting for its slot:
//! 16 bytes each. In [`Rule::Safe`] a run weighs on a counter until it has left the
//! previous window, so runs are kept for `2 * w + margin`: at most about `2n` of the
//! longest-window limit. A limit of more than [`MAX_SLOTS`] is paced as `n / k` per `span / k`
//! with `k = ceil(n / MAX_SLOTS)`: any interval of `span` is covered by `k` intervals of
//! `span / k` (rounded up), each holding at most `n / k`, so the bound still holds; the
//! long-run rate loses only the rounding of `n / k`, and bursts shrink to `n / k`.
//!
//! # Giving a booking back
//!
//! Any booking not yet sent can be given back, wherever it is in the queue. The log is
//! the set of units sent or waiting, and every new booking is checked against exactly
//! that set at an instant at or after all of them (the FIFO floor stays where it was
//! unless the newest booking is the one given back). Removing units from a window-safe
//! set leaves it window-safe, and a booking at `a >= every unit` only adds to the
//! intervals that contain `a`, whose units all lie in `(a - span, a]`: the check. So a
//! dropped slot goes to the next caller who fits, without ever letting anyone in beside
//! a later booking beyond the bound. (GCRA reservations cannot do this: their state is
//! one time per quota, which forgets where in the queue a booking was.)

use std::collections::VecDeque;

/// Limits above this many units per span are scaled down (see the module docs).
pub(crate) const MAX_SLOTS: u64 = 4096;

/// Most `n² / w` (per second) whose sliding-window counters [`Rule::Safe`] checks
/// exactly ([`Limit::counter_checked`]).
const COUNTER_BUDGET: u64 = 65_536;

/// At most `n` units in any interval of `span` ns; in [`Rule::Safe`] also admitted by
/// a sliding-window counter of `quota` units per `window` ns at any alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) n: u64,
    pub(crate) span: u64,
    /// The quota as configured (`n` before scaling).
    quota: u64,
    /// The quota's window without the margin (ns).
    window: u64,
    /// The margin (ns).
    margin: u64,
}

impl Limit {
    /// `n` per `window_ns`, counted over `window_ns + margin_ns`, scaled above
    /// [`MAX_SLOTS`].
    pub(crate) fn new(n: u32, window_ns: u64, margin_ns: u64) -> Self {
        let n = u64::from(n).max(1);
        let window = window_ns.max(1);
        let span = window.saturating_add(margin_ns);
        let (quota, margin) = (n, margin_ns);
        if n <= MAX_SLOTS {
            return Limit {
                n,
                span,
                quota,
                window,
                margin,
            };
        }
        let k = n.div_ceil(MAX_SLOTS);
        Limit {
            n: n / k,
            span: span.div_ceil(k),
            quota,
            window,
            margin,
        }
    }

    /// Whether the limit was scaled down (see the module docs).
    fn is_scaled(&self) -> bool {
        self.quota != self.n
    }

    /// Whether [`Rule::Safe`] checks this quota's counters exactly; if not, it paces the
    /// quota evenly (which no counter refuses). A check scans the runs of the last two
    /// windows (about `2n`) some 40 times, and a quota books `n` per window, so the work
    /// per second grows as `n² / w`: exact while that stays at most [`COUNTER_BUDGET`]
    /// (about 1% of a core at full rate), even above (a 1000/s quota, not 120/min or
    /// 4000/h).
    fn counter_checked(&self) -> bool {
        !self.is_scaled()
            && u128::from(self.quota) * u128::from(self.quota) * 1_000_000_000
                <= u128::from(COUNTER_BUDGET) * u128::from(self.window)
    }

    /// The spacing of an evenly paced stream within this limit.
    fn spacing(&self) -> u64 {
        self.span.div_ceil(self.n)
    }

    /// How long a send can still weigh on a sliding-window counter of this quota: its
    /// age counts from `margin` after it, and it leaves the previous window `2 * window`
    /// later.
    fn counter_horizon(&self) -> u64 {
        self.window.saturating_mul(2).saturating_add(self.margin)
    }
}

/// Which schedules a [`Log`] books, by [`PacingMode`](super::PacingMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// At most `n` in any `span`.
    Window,
    /// Also `span / n` (the largest over the set) between bookings.
    Even,
    /// At most `n` in any `span`, and every request admitted by a sliding-window counter
    /// of each quota, whatever its alignment (see [`Log::counter_admits`]).
    Safe,
}

/// A booking made by [`Log::book`]: what undoing it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Booked {
    /// The instant to send at (ns).
    pub(crate) at: u64,
    cost: u64,
    seq: u64,
    /// The previous booking (instant, cost), restored on undo.
    prev: Option<(u64, u64)>,
}

/// One key's sliding log and hold.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    rule: Rule,
    limits: Vec<Limit>,
    /// `(instant, units)`, ascending by instant.
    runs: VecDeque<(u64, u64)>,
    /// The newest booking: the FIFO floor, and the base of even spacing.
    last: Option<(u64, u64)>,
    /// Bumped by every booking and every change other than a give-back: a booking given
    /// back restores the previous FIFO floor only while `seq` is still its own.
    seq: u64,
    hold_until: u64,
}

impl Log {
    pub(crate) fn new(limits: Vec<Limit>, rule: Rule) -> Self {
        Log {
            rule,
            limits,
            runs: VecDeque::new(),
            last: None,
            seq: 0,
            hold_until: 0,
        }
    }

    /// The largest cost that can ever be booked (the smallest `n`).
    pub(crate) fn max_cost(&self) -> u64 {
        self.limits.iter().map(|l| l.n).min().unwrap_or(1)
    }

    /// How long a run can bind later bookings: the longest span, and in
    /// [`Rule::Safe`] the longest a send weighs on a sliding-window counter.
    fn horizon(&self) -> u64 {
        self.limits
            .iter()
            .map(|l| match self.rule {
                Rule::Safe if l.counter_checked() => l.span.max(l.counter_horizon()),
                _ => l.span,
            })
            .max()
            .unwrap_or(0)
    }

    /// Drops runs that can no longer bind any booking at or after `now`.
    fn prune(&mut self, now: u64) {
        let span = self.horizon();
        while self
            .runs
            .front()
            .is_some_and(|&(at, _)| at.saturating_add(span) <= now)
        {
            self.runs.pop_front();
        }
    }

    /// The earliest instant `>= now` at which `cost` units keep every limit (and the
    /// rule's spacing or counters), the previous booking and the hold.
    pub(crate) fn earliest(&self, now: u64, cost: u64) -> u64 {
        let mut a = now.max(self.hold_until);
        if let Some((last, last_cost)) = self.last {
            a = a.max(last);
            let spacing = match self.rule {
                Rule::Window => 0,
                Rule::Even => self.limits.iter().map(Limit::spacing).max().unwrap_or(0),
                // A scaled or fast limit's counter is not checked: it is paced evenly
                // instead, which no counter of it refuses (the module docs).
                Rule::Safe => self
                    .limits
                    .iter()
                    .filter(|l| !l.counter_checked())
                    .map(|l| l.window.saturating_add(l.margin).div_ceil(l.quota) + 1)
                    .max()
                    .unwrap_or(0),
            };
            a = a.max(last.saturating_add(last_cost.saturating_mul(spacing)));
        }
        for l in &self.limits {
            // The (n - cost + 1)-th newest unit must be at or before a - span.
            let Some(k) = l.n.checked_sub(cost).map(|r| r + 1) else {
                continue; // cost > n: refused by the caller
            };
            let mut seen = 0;
            for &(at, units) in self.runs.iter().rev() {
                seen += units;
                if seen >= k {
                    a = a.max(at.saturating_add(l.span));
                    break;
                }
            }
        }
        if self.rule == Rule::Safe {
            // Each counter admits from some instant on (its weights only fall as time
            // passes), so raising `a` for one never breaks another already met.
            for l in self.limits.iter().filter(|l| l.counter_checked()) {
                a = a.max(self.counter_earliest(l, a, cost));
            }
        }
        a
    }

    /// The earliest instant `>= from` at which every sliding-window counter of `l`
    /// admits `cost` units (binary search: admission is monotone in time).
    fn counter_earliest(&self, l: &Limit, from: u64, cost: u64) -> u64 {
        if self.counter_admits(l, from, cost) {
            return from;
        }
        // Once every run is `margin + 2 * window` old nothing weighs any more.
        let newest = self.runs.back().map_or(from, |&(at, _)| at);
        let (mut lo, mut hi) = (from, newest.saturating_add(l.counter_horizon()).max(from));
        if !self.counter_admits(l, hi, cost) {
            return hi; // cost > n: refused by the caller before booking
        }
        // Invariant: refused at `lo`, admitted at `hi`.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.counter_admits(l, mid, cost) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    /// Whether a sliding-window counter of `l.quota` per `l.window`, whatever its
    /// alignment, admits `cost` units at `t` after the runs logged (all at or before
    /// `t`), even if the network brings each earlier run up to `l.margin` closer.
    ///
    /// The counter (Cloudflare's) weighs the previous window's count by the share of
    /// it still inside `(t - window, t]`: with `e` the time since its current window
    /// began, it admits iff `floor(prev * (window - e) / window) + cur + cost <= quota`,
    /// which holds when `prev * (window - e) / window + cur < quota + 1 - cost`. A run of
    /// age `y` (less the margin) weighs 1 if `y <= e` (current window), `(window - e) /
    /// window` if `e < y <= e + window` (previous), else 0. As a function of `e` the sum
    /// falls between the points where a run enters the current window (`e = y`) or the
    /// previous one (`e = y - window`), so checking those points and `e = 0` checks
    /// every alignment. Each weight only falls as `y` grows, hence monotone in `t`.
    fn counter_admits(&self, l: &Limit, t: u64, cost: u64) -> bool {
        let w = u128::from(l.window);
        let Some(bound) = (l.quota + 1).checked_sub(cost) else {
            return false;
        };
        // The sum times `w` must stay below this.
        let bound = u128::from(bound) * w;
        let len = self.runs.len();
        // Runs newest first: ages ascending.
        let run = |i: usize| self.runs[len - 1 - i];
        let age = |i: usize| t.saturating_sub(run(i).0).saturating_sub(l.margin);
        let (win, two) = (l.window, l.window.saturating_mul(2));
        // `cur`: units of age <= e; `upto`: units of age <= e + window.
        let (mut a, mut b, mut cur, mut upto) = (0, 0, 0u128, 0u128);
        // Candidates: e = 0, then the ages below `window` (i1) merged with the ages in
        // [window, 2 * window) less `window` (i2), ascending.
        let mut i1 = 0;
        let mut i2 = (0..len).find(|&i| age(i) >= win).unwrap_or(len);
        let mut e = 0u64;
        loop {
            while a < len && age(a) <= e {
                cur += u128::from(run(a).1);
                a += 1;
            }
            while b < len && age(b) <= e.saturating_add(win) {
                upto += u128::from(run(b).1);
                b += 1;
            }
            let sum = cur * w + (upto - cur) * (w - u128::from(e));
            if sum >= bound {
                return false;
            }
            let c1 = (i1 < len && age(i1) < win).then(|| age(i1));
            let c2 = (i2 < len && age(i2) < two).then(|| age(i2) - win);
            e = match (c1, c2) {
                (Some(x), Some(y)) if x <= y => {
                    i1 += 1;
                    x
                }
                (_, Some(y)) => {
                    i2 += 1;
                    y
                }
                (Some(x), None) => {
                    i1 += 1;
                    x
                }
                (None, None) => return true,
            };
        }
    }

    /// Books `cost` units at the earliest admissible instant, unless that is more than
    /// `max_wait` ns after `now` (then `Err(wait)`, nothing booked).
    pub(crate) fn book(&mut self, now: u64, cost: u64, max_wait: u64) -> Result<Booked, u64> {
        self.prune(now);
        let at = self.earliest(now, cost);
        let wait = at - now;
        if wait > max_wait {
            return Err(wait);
        }
        match self.runs.back_mut() {
            Some((t, units)) if *t == at => *units += cost,
            _ => self.runs.push_back((at, cost)),
        }
        let prev = self.last.replace((at, cost));
        self.seq += 1;
        Ok(Booked {
            at,
            cost,
            seq: self.seq,
            prev,
        })
    }

    /// Gives `b` back: its units leave the log. Returns whether they were found (a
    /// booking is given back once).
    pub(crate) fn undo(&mut self, b: &Booked) -> bool {
        let pos = self.runs.partition_point(|&(t, _)| t < b.at);
        match self.runs.get_mut(pos) {
            Some((at, units)) if *at == b.at && *units >= b.cost => {
                *units -= b.cost;
                if *units == 0 {
                    self.runs.remove(pos);
                }
            }
            // Pruned (its instant is long past) or never booked here: nothing to give.
            _ => return false,
        }
        if b.seq == self.seq {
            // The newest booking: the state is exactly as before it was made.
            self.last = b.prev;
            self.seq -= 1;
        }
        true
    }

    /// Nothing is sent before `until` (ns); bookings already made keep their instants
    /// (the caller re-books them when it sees the hold).
    pub(crate) fn hold(&mut self, until: u64) {
        self.hold_until = self.hold_until.max(until);
    }

    /// Whether a hold is in force at `now`.
    pub(crate) fn is_held(&self, now: u64) -> bool {
        self.hold_until > now
    }

    /// Records that the server already counts `used` units of limit `i` in the window
    /// that frees at `free_at` (ns; `now` when unknown): units are added at
    /// `free_at - span` until the log holds `used` in `(free_at - span, ..]`. Only ever
    /// makes the log stricter.
    pub(crate) fn record_used(&mut self, i: usize, used: u64, now: u64, free_at: u64) {
        let Some(l) = self.limits.get(i).copied() else {
            return;
        };
        let used = used.min(l.n);
        let at = free_at
            .min(now.saturating_add(l.span))
            .saturating_sub(l.span);
        let counted: u64 = self
            .runs
            .iter()
            .filter(|&&(t, _)| t >= at)
            .map(|&(_, u)| u)
            .sum();
        if counted >= used {
            return;
        }
        let add = used - counted;
        // `at` may lie before booked runs: insert in order (the log is short).
        let pos = self.runs.partition_point(|&(t, _)| t <= at);
        match pos.checked_sub(1).and_then(|p| self.runs.get_mut(p)) {
            Some((t, units)) if *t == at => *units += add,
            _ => self.runs.insert(pos, (at, add)),
        }
        // A booking given back from now on leaves the FIFO floor where it is.
        self.seq += 1;
    }

    /// Replaces the limits (advertised by the server). The log is kept: what was sent
    /// still counts under the new limits.
    pub(crate) fn set_limits(&mut self, limits: Vec<Limit>) {
        if !limits.is_empty() && limits != self.limits {
            self.limits = limits;
            self.seq += 1;
        }
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// Whether the log can be forgotten at `now`: nothing booked within the longest
    /// span, nothing waiting, no hold.
    pub(crate) fn is_idle(&self, now: u64) -> bool {
        let span = self.horizon();
        self.hold_until <= now
            && self
                .runs
                .back()
                .is_none_or(|&(at, _)| at.saturating_add(span) <= now)
    }

    /// Runs stored (for memory figures and tests).
    #[cfg(test)]
    fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    fn claid() -> Vec<Limit> {
        vec![Limit::new(4, S, 20 * MS), Limit::new(120, 60 * S, 50 * MS)]
    }

    /// Every interval `(s, s + span]` holds at most `n` of the booked units.
    fn assert_window_safe(limits: &[Limit], units: &[(u64, u64)]) {
        let mut units = units.to_vec();
        units.sort_unstable();
        for l in limits {
            for (i, &(start, _)) in units.iter().enumerate() {
                let inside: u64 = units[i..]
                    .iter()
                    .take_while(|&&(t, _)| t < start + l.span)
                    .map(|&(_, c)| c)
                    .sum();
                assert!(
                    inside <= l.n,
                    "{inside} > {} in {} ns from {start}",
                    l.n,
                    l.span
                );
            }
        }
    }

    #[test]
    fn claid_bursts_four_then_waits_a_widened_second() {
        let mut log = Log::new(claid(), Rule::Window);
        let at: Vec<u64> = (0..9)
            .map(|_| log.book(1, 1, u64::MAX).expect("books").at)
            .collect();
        assert_eq!(
            at,
            [
                1,
                1,
                1,
                1,
                1 + 1020 * MS,
                1 + 1020 * MS,
                1 + 1020 * MS,
                1 + 1020 * MS,
                1 + 2040 * MS
            ]
        );
    }

    #[test]
    fn the_minute_quota_binds_after_120() {
        let mut log = Log::new(claid(), Rule::Window);
        let mut last = 0;
        for _ in 0..121 {
            last = log.book(1, 1, u64::MAX).expect("books").at;
        }
        // 121st: one window of 60.05 s after the first.
        assert_eq!(last, 1 + 60_050 * MS);
    }

    #[test]
    fn even_spaces_by_the_slowest_limit() {
        let mut log = Log::new(claid(), Rule::Even);
        let a: Vec<u64> = (0..3)
            .map(|_| log.book(1, 1, u64::MAX).expect("books").at)
            .collect();
        // max(1.02 s / 4, 60.05 s / 120) = 500.4166... ms, rounded up to whole ns.
        let s = (60_050 * MS).div_ceil(120);
        assert_eq!(a, [1, 1 + s, 1 + 2 * s]);
    }

    #[test]
    fn given_back_slots_go_to_the_next_caller_who_fits() {
        let mut log = Log::new(vec![Limit::new(1, S, 0)], Rule::Window);
        let a = log.book(0, 1, u64::MAX).expect("books");
        let b = log.book(0, 1, u64::MAX).expect("books");
        let c = log.book(0, 1, u64::MAX).expect("books");
        assert_eq!((a.at, b.at, c.at), (0, S, 2 * S));
        // The middle one: the next caller still queues after c (FIFO), one span later,
        // never beside c.
        assert!(log.undo(&b));
        assert!(!log.undo(&b), "given back once");
        let d = log.book(0, 1, u64::MAX).expect("books");
        assert_eq!(d.at, 3 * S);
        // The tail: its instant goes to the next caller.
        assert!(log.undo(&d));
        assert_eq!(log.book(0, 1, u64::MAX).expect("books").at, 3 * S);
        // With 1 per second and 2 of 3 slots given back in a 2-per-span limit, the
        // freed capacity is used at the floor: two fit where one was.
        let mut log = Log::new(vec![Limit::new(2, S, 0)], Rule::Window);
        let v: Vec<Booked> = (0..4)
            .map(|_| log.book(0, 1, u64::MAX).expect("books"))
            .collect();
        assert_eq!(v.iter().map(|b| b.at).collect::<Vec<_>>(), [0, 0, S, S]);
        assert!(log.undo(&v[2]));
        assert_eq!(log.book(0, 1, u64::MAX).expect("books").at, S);
    }

    #[test]
    fn max_wait_books_nothing() {
        let mut log = Log::new(vec![Limit::new(1, S, 0)], Rule::Window);
        log.book(0, 1, 0).expect("books");
        assert_eq!(log.book(0, 1, S - 1), Err(S));
        assert_eq!(log.book(0, 1, S).expect("books").at, S);
    }

    #[test]
    fn a_hold_delays_new_bookings() {
        let mut log = Log::new(claid(), Rule::Window);
        log.hold(5 * S);
        assert!(log.is_held(S));
        assert_eq!(log.book(S, 1, u64::MAX).expect("books").at, 5 * S);
        assert!(!log.is_held(5 * S));
    }

    #[test]
    fn huge_limits_are_scaled_and_stay_safe() {
        let l = Limit::new(10_000, 86_400 * S, 0);
        assert_eq!((l.n, l.span), (3333, 28_800 * S));
        let mut log = Log::new(vec![l], Rule::Window);
        let mut units = Vec::new();
        let mut now = 0;
        for _ in 0..7000u64 {
            // A client that sends each request at its slot, one per millisecond at most.
            let b = log.book(now + MS, 1, u64::MAX).expect("books");
            now = b.at;
            units.push((b.at, 1));
            // n sent within the span, plus the one just booked ahead.
            assert!(log.runs() <= 3334, "{}", log.runs());
        }
        // Three bursts of 3333 ms-spaced sends, 8 h apart: 10 000 a day.
        assert_eq!(units[3333].0, units[0].0 + 28_800 * S);
        // 10 000 per day still holds over the real day.
        assert_window_safe(
            &[Limit {
                n: 10_000,
                span: 86_400 * S,
                quota: 10_000,
                window: 86_400 * S,
                margin: 0,
            }],
            &units,
        );
    }

    /// In the safe rule a scaled limit is paced evenly (its counter is not checked)
    /// and its log stays within the scaled bound.
    #[test]
    fn huge_limits_are_paced_evenly_in_the_safe_rule() {
        let l = Limit::new(10_000, 86_400 * S, 0);
        let mut log = Log::new(vec![l], Rule::Safe);
        let mut last = None;
        for _ in 0..5000u64 {
            let b = log.book(0, 1, u64::MAX).expect("books");
            if let Some(prev) = last {
                assert!(b.at - prev > 8_640 * MS, "{}", b.at - prev);
            }
            last = Some(b.at);
            assert!(log.runs() <= 5000);
        }
        log.prune(last.unwrap_or(0));
        // Only the scaled span (8 h) is kept: 3333 runs and the one at its edge.
        assert!(log.runs() <= 3335, "{}", log.runs());
    }

    /// Which quotas the safe rule checks exactly: work per second grows as `n² / w`.
    #[test]
    fn fast_quotas_are_paced_evenly_and_no_counter_refuses_them() {
        assert!(Limit::new(4, S, 20 * MS).counter_checked());
        assert!(Limit::new(120, 60 * S, 50 * MS).counter_checked());
        assert!(Limit::new(256, S, 0).counter_checked(), "n² / w = 65 536");
        assert!(Limit::new(5000, 3600 * S, 50 * MS).is_scaled());
        assert!(Limit::new(4000, 3600 * S, 50 * MS).counter_checked());
        assert!(!Limit::new(257, S, 0).counter_checked());
        let l = Limit::new(1000, S, 20 * MS);
        assert!(!l.counter_checked());
        let mut log = Log::new(vec![l], Rule::Safe);
        let mut sent = Vec::new();
        for _ in 0..3000u64 {
            let b = log.book(0, 1, u64::MAX).expect("books");
            if let Some(&(prev, _)) = sent.last() {
                assert!(b.at - prev > MS, "no burst: {} ns apart", b.at - prev);
            }
            sent.push((b.at, 1));
        }
        assert_window_safe(&[l], &sent);
        for offset in [0, 1, 333 * MS, 999 * MS] {
            let jittered = arrivals(&sent, |i| (i as u64 * 7_919) % (20 * MS));
            assert_eq!(
                counter_refuses(&l, offset, &jittered),
                None,
                "offset {offset}"
            );
        }
        // The log keeps one span, not the counter's two windows.
        log.prune(sent.last().map_or(0, |&(t, _)| t));
        assert!(log.runs() <= 1001, "{}", log.runs());
    }

    #[test]
    fn reports_of_used_units_are_respected() {
        let mut log = Log::new(vec![Limit::new(4, S, 0)], Rule::Window);
        // The server says 3 of 4 are used and the window frees 400 ms from now.
        log.record_used(0, 3, 10 * S, 10 * S + 400 * MS);
        let a: Vec<u64> = (0..3)
            .map(|_| log.book(10 * S, 1, u64::MAX).expect("books").at)
            .collect();
        assert_eq!(a[0], 10 * S);
        assert!(
            a[1] >= 10 * S + 400 * MS && a[1] <= 10 * S + 400 * MS + 1,
            "{a:?}"
        );
    }

    #[test]
    fn idle_logs_are_reclaimable() {
        let mut log = Log::new(claid(), Rule::Window);
        log.book(S, 1, u64::MAX).expect("books");
        assert!(!log.is_idle(S + 60 * S));
        assert!(log.is_idle(S + 60_050 * MS));
    }

    /// Bytes one key's log occupies (struct and heap), for the figure in the docs:
    /// `cargo test --all-features --lib memory_per_key -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints a figure"]
    fn memory_per_key() {
        let bytes = |log: &Log| {
            std::mem::size_of::<Log>()
                + log.runs.capacity() * std::mem::size_of::<(u64, u64)>()
                + log.limits.capacity() * std::mem::size_of::<Limit>()
        };
        let cases = [
            ("claid, at full rate", claid(), 0),
            ("claid, one per 500 ms", claid(), 500 * MS),
            (
                "10000/day, one per 8.64 s",
                vec![Limit::new(10_000, 86_400 * S, 0)],
                8_640 * MS,
            ),
        ];
        for (rule, (name, limits, gap)) in [Rule::Window, Rule::Safe]
            .into_iter()
            .flat_map(|r| cases.clone().map(|c| (r, c)))
        {
            let mut log = Log::new(limits, rule);
            let mut now = 0;
            let mut most = 0;
            for _ in 0..20_000 {
                let b = log.book(now, 1, u64::MAX).expect("books");
                now = b.at + gap;
                most = most.max(bytes(&log));
            }
            println!("{rule:?} {name}: {} runs, at most {most} bytes", log.runs());
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Book { dt: u64, cost: u64 },
        UndoNewest,
        Undo(usize),
        Hold(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u64..400 * MS, 1u64..=3).prop_map(|(dt, cost)| Op::Book { dt, cost }),
            1 => Just(Op::UndoNewest),
            1 => any::<usize>().prop_map(Op::Undo),
            1 => (0u64..2 * S).prop_map(Op::Hold),
        ]
    }

    fn limits() -> impl Strategy<Value = Vec<Limit>> {
        proptest::collection::vec((3u32..12, 1u64..5, 0u64..30), 1..=3).prop_map(|v| {
            v.into_iter()
                .map(|(n, secs, margin_ms)| Limit::new(n, secs * S, margin_ms * MS))
                .collect()
        })
    }

    /// A sliding-window counter of `l.quota` per `l.window` with its windows starting
    /// at `-offset` (Cloudflare's, as `tests/client_servers.rs` models it), fed the
    /// `(arrival, cost)` requests in arrival order: the index of the first it refuses.
    fn counter_refuses(l: &Limit, offset: u64, arrivals: &[(u64, u64)]) -> Option<usize> {
        let (n, w) = (u128::from(l.quota), u128::from(l.window));
        let (mut idx, mut prev, mut cur) = (0u128, 0u128, 0u128);
        for (i, &(t, cost)) in arrivals.iter().enumerate() {
            let t = u128::from(t + offset);
            if t / w != idx {
                prev = if t / w == idx + 1 { cur } else { 0 };
                cur = 0;
                idx = t / w;
            }
            let e = t - idx * w;
            if prev * (w - e) / w + cur + u128::from(cost) > n {
                return Some(i);
            }
            cur += u128::from(cost);
        }
        None
    }

    /// Requests sent at `units` reach the server `delay(i)` later (in arrival order,
    /// ties in sending order).
    fn arrivals(units: &[(u64, u64)], delay: impl Fn(usize) -> u64) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, usize, u64)> = units
            .iter()
            .enumerate()
            .map(|(i, &(t, c))| (t + delay(i), i, c))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(t, _, c)| (t, c)).collect()
    }

    /// Claid's quotas paced safely: the first four at once (no counter can refuse a
    /// fresh burst within its quota), then spread as no counter alignment refuses.
    #[test]
    fn safe_bursts_once_then_spreads() {
        let mut log = Log::new(claid(), Rule::Safe);
        let at: Vec<u64> = (0..12)
            .map(|_| log.book(0, 1, u64::MAX).expect("books").at)
            .collect();
        assert_eq!(at[..4], [0, 0, 0, 0]);
        // The fifth waits out the burst's window plus the margin (a counter whose window
        // began just before the burst still holds all four in its current window).
        assert_eq!(at[4], 1020 * MS + 1);
        for w in at[4..].windows(2) {
            assert!(w[1] > w[0], "{at:?}");
        }
        let units: Vec<(u64, u64)> = at.iter().map(|&t| (t, 1)).collect();
        for l in &claid() {
            for offset in (0..1000).map(|k| k * MS) {
                assert_eq!(counter_refuses(l, offset, &units), None, "+{offset}");
            }
        }
    }

    /// The check is exact: one nanosecond before each booking either the log or a
    /// counter of some alignment (found by brute force) would have refused it.
    #[test]
    fn safe_bookings_are_at_the_earliest_instant() {
        let limits = vec![Limit::new(5, S, 0), Limit::new(12, 4 * S, 0)];
        let mut log = Log::new(limits.clone(), Rule::Safe);
        let mut units = Vec::new();
        for _ in 0..60 {
            units.push((log.book(0, 1, u64::MAX).expect("books").at, 1));
        }
        let mut by_counter = 0;
        for i in 1..units.len() {
            let t = units[i].0;
            if t == units[i - 1].0 {
                continue;
            }
            let history = &units[..i];
            let by_log = limits.iter().any(|l| {
                let inside: u64 = history
                    .iter()
                    .filter(|&&(u, _)| u + l.span > t - 1)
                    .map(|&(_, c)| c)
                    .sum();
                inside + 1 > l.n
            });
            let refused = limits
                .iter()
                .any(|l| !every_alignment_admits(l, history, t - 1));
            assert!(by_log || refused, "booking {i} at {t} could go earlier");
            by_counter += usize::from(refused && !by_log);
        }
        // Most instants are the counters' doing, not the log's.
        assert!(by_counter > 30, "{by_counter}");
    }

    /// Whether counters of `l` at every alignment that matters admit one unit at `t`
    /// after `history`: windows starting at `t - age` and `t - age - window` for each
    /// age in the history, and at `t`.
    fn every_alignment_admits(l: &Limit, history: &[(u64, u64)], t: u64) -> bool {
        let w = l.window;
        let mut elapsed = vec![0];
        for &(u, _) in history {
            let age = t - u;
            elapsed.extend([age, age.wrapping_sub(w)].into_iter().filter(|&e| e < w));
        }
        let mut all = history.to_vec();
        all.push((t, 1));
        elapsed.iter().all(|&e| {
            // The offset that puts `t` at `e` into its window.
            let offset = (e + w - t % w) % w;
            counter_refuses(l, offset, &all).is_none()
        })
    }

    proptest! {
        /// Whatever is booked, given back (anywhere in the queue) or held, the units
        /// left booked never exceed any limit in any interval, and bookings are FIFO.
        /// With the safe rule, sliding-window counters of every quota admit them at
        /// any alignment, even when each request is delayed by up to the margin.
        #[test]
        fn bookings_stay_window_safe(limits in limits(), rule in prop_oneof![Just(Rule::Window), Just(Rule::Even), Just(Rule::Safe)], ops in proptest::collection::vec(op(), 1..150), seed in any::<u64>()) {
            let even = rule == Rule::Even;
            let mut log = Log::new(limits.clone(), rule);
            let mut now = 0;
            let mut live: Vec<Booked> = Vec::new();
            let mut held = 0;
            let span = limits.iter().map(|l| l.span).max().unwrap_or(0);
            for op in ops {
                match op {
                    Op::Book { dt, cost } => {
                        now += dt;
                        let b = log.book(now, cost, u64::MAX).expect("books");
                        // FIFO: at or after everything still booked.
                        let last_at = live.iter().map(|b| b.at).max().unwrap_or(0);
                        prop_assert!(b.at >= now && b.at >= last_at && b.at >= held);
                        live.push(b);
                    }
                    Op::UndoNewest => {
                        if let Some(b) = live.pop() {
                            // False only for a booking pruned as long past.
                            prop_assert!(log.undo(&b) || b.at + span <= now);
                        }
                    }
                    Op::Undo(i) if !live.is_empty() => {
                        let b = live.remove(i % live.len());
                        prop_assert!(log.undo(&b) || b.at + span <= now);
                    }
                    Op::Undo(_) => {}
                    Op::Hold(d) => {
                        held = held.max(now + d);
                        log.hold(now + d);
                    }
                }
            }
            let units: Vec<(u64, u64)> = live.iter().map(|b| (b.at, b.cost)).collect();
            assert_window_safe(&limits, &units);
            if even {
                let spacing = limits.iter().map(Limit::spacing).max().unwrap_or(0);
                for w in live.windows(2) {
                    prop_assert!(w[1].at >= w[0].at + w[0].cost * spacing);
                }
            }
            if rule == Rule::Safe {
                let jitter = limits.iter().map(|l| l.margin).min().unwrap_or(0);
                for l in &limits {
                    for k in 0..24u64 {
                        let offset = (seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % l.window;
                        // No delay, then a pseudo-random one of up to the margin each.
                        let delay = |i: usize| {
                            let h = (i as u64 ^ seed).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ k;
                            if k % 2 == 0 { 0 } else { h % (jitter + 1) }
                        };
                        let got = counter_refuses(l, offset, &arrivals(&units, delay));
                        prop_assert_eq!(got, None, "{:?} +{} {:?}", l, offset, units);
                    }
                }
            }
        }
    }
}
