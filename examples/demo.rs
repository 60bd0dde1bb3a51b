//! Drives the core limiter with Claid's quotas (4/s AND 120/min) on a simulated clock
//! and prints what a client sending 10 requests per second would see.

use std::time::Duration;
use tower_ratelimit::{KeyedRateLimiter, Quotas, clock::ManualClock};

fn main() {
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::with_clock(Quotas::claid(), clock.clone());
    println!("second  sent  admitted  denied  remaining(binding)  retry_after");
    for second in 0..5 {
        let (mut ok, mut denied, mut remaining, mut retry) = (0, 0, 0, Duration::ZERO);
        for _ in 0..10 {
            let d = limiter.check_key(&"api-key-1").expect("cost 1 always fits");
            remaining = d.binding().remaining();
            match d.retry_after() {
                None => ok += 1,
                Some(r) => {
                    denied += 1;
                    retry = r;
                }
            }
            clock.advance(Duration::from_millis(100));
        }
        println!(
            "{second:>6}  {:>4}  {ok:>8}  {denied:>6}  {remaining:>18}  {retry:?}",
            10
        );
    }
}
