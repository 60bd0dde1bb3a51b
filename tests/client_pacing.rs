//! The pacing layer against a real server on loopback, on paused tokio time.

mod client_common;
use client_common as common;

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_ratelimit::client::{ByHeader, OneKey, PaceError, PaceLayer, PacingMode};
use tower_ratelimit::{Quota, Quotas};

/// A client hammering a 4/s + 120/min GCRA server through a GCRA-mode pacer: no 429,
/// and at least 95% of the throughput the quotas allow over the period it took.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn gcra_mode_gets_no_429_from_a_gcra_server_at_full_rate() {
    const N: usize = 300; // enough to exhaust the minute quota too (it binds after ~236)
    let server = common::start(Quotas::claid()).await;
    let svc = ServiceBuilder::new()
        .layer(PaceLayer::with_mode(
            Quotas::claid(),
            ByHeader(http::header::AUTHORIZATION),
            PacingMode::Gcra,
        ))
        .service(common::client());
    let start = Instant::now();
    let tasks = common::spawn_requests(&svc, &server.url, N);
    let (mut ok, mut rejected) = (0u64, 0u64);
    for t in tasks {
        match t.await.expect("task").expect("request") {
            s if s == http::StatusCode::OK => ok += 1,
            s if s == http::StatusCode::TOO_MANY_REQUESTS => rejected += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    let elapsed = start.elapsed();
    // The period the server was actually used: first to last arrival.
    let log = server.log.lock().expect("log").clone();
    let first = log.iter().map(|e| e.0).min().expect("arrivals");
    let last = log.iter().map(|e| e.0).max().expect("arrivals");
    let allowed = common::allowed(&Quotas::claid(), last - first);
    println!(
        "paced: sent={N} ok={ok} rejected={rejected} virtual_secs={:.3} allowed_in_period={allowed} ratio={:.4}",
        elapsed.as_secs_f64(),
        ok as f64 / allowed as f64
    );
    assert_eq!(rejected, 0, "pacing must avoid every 429");
    assert_eq!(ok, N as u64);
    assert!(
        ok as f64 >= 0.95 * allowed as f64,
        "achieved {ok} of {allowed} allowed in {:?}",
        last - first
    );
    // The minute quota was reached: it took longer than the burst quota alone needs.
    assert!(last - first > Duration::from_secs(58), "{:?}", last - first);
}

/// The same hammering without pacing: the server refuses most of it.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn unpaced_client_is_rejected() {
    const N: usize = 40;
    let server = common::start(Quotas::claid()).await;
    let client = common::client();
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = client.clone();
        let req = common::request(&server.url, &i.to_string());
        tasks.push(tokio::spawn(client.oneshot(req)));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task").expect("request").status() == http::StatusCode::OK {
            ok += 1;
        }
    }
    assert!(
        ok < N / 2,
        "only about the burst gets through unpaced, got {ok}"
    );
}

fn echo_service()
-> impl Service<http::Request<()>, Response = http::Response<()>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) })
}

fn req() -> http::Request<()> {
    http::Request::get("http://api.test/")
        .body(())
        .expect("valid")
}

/// Sends in call order, each at its slot: the window mode books 2 per widened second
/// (1.02 s), the GCRA mode with burst 1 one every 500 ms.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waits_are_fifo_at_the_rate() {
    for (mode, expected) in [
        (PacingMode::Window, [0, 0, 1020, 1020, 2040]),
        (PacingMode::Gcra, [0, 500, 1000, 1500, 2000]),
    ] {
        assert_eq!(fifo_send_times(mode).await, expected, "{mode:?}");
    }
}

async fn fifo_send_times(mode: PacingMode) -> Vec<u128> {
    let quotas = Quotas::from(
        Quota::per_second(2)
            .expect("valid")
            .with_burst(1)
            .expect("valid"),
    );
    let svc = ServiceBuilder::new()
        .layer(PaceLayer::with_mode(quotas, OneKey, mode))
        .service(echo_service());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let mut svc = svc.clone();
        // Booked at call time, in this order.
        let fut = svc.ready().await.expect("ready").call(req());
        tasks.push(tokio::spawn(async move {
            fut.await.expect("sent");
            start.elapsed()
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.expect("task"));
    }
    done.iter().map(Duration::as_millis).collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn max_wait_fails_fast_without_booking() {
    let quotas = Quotas::from(
        Quota::per_second(1)
            .expect("valid")
            .with_burst(1)
            .expect("valid"),
    );
    let layer = PaceLayer::new(quotas, OneKey).max_wait(Duration::from_millis(1500));
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(echo_service());
    let first = svc.ready().await.expect("ready").call(req());
    // The default mode books 1 per 1.02 s, each a nanosecond past the counter's edge.
    let second = svc.ready().await.expect("ready").call(req()); // waits 1.02 s: fine
    let third = svc.ready().await.expect("ready").call(req()); // would wait 2.04 s
    let err = third.await.expect_err("must fail fast");
    let err = err.downcast::<PaceError>().expect("a PaceError");
    assert_eq!(
        *err,
        PaceError::WouldWait {
            wait: Duration::from_nanos(2_040_000_002),
            max_wait: Duration::from_millis(1500)
        }
    );
    assert!(err.to_string().contains("would wait"));
    // It booked nothing: the next caller still gets the slot at 2.04 s, not 3.06 s.
    let r = layer.pacer().reserve(&(), 1, None).expect("books");
    assert_eq!(r.wait(), Duration::from_nanos(2_040_000_002));
    r.commit();
    first.await.expect("sent");
    second.await.expect("sent");
}

/// The tail of the queue given up: a newcomer gets exactly the dropped slot, in every
/// log mode (Window: 4 at 0, 4 at 1.02 s, the 10th at 2.04 s).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropped_requests_give_their_slots_back() {
    use tower_ratelimit::client::Pacer;
    let quotas = Quotas::from(Quota::per_second(4).expect("valid"));
    for mode in [PacingMode::Safe, PacingMode::Window, PacingMode::Even] {
        // Where the 10th booking of a fresh pacer goes.
        let fresh = Pacer::<()>::with_mode(quotas.clone(), mode);
        let slots: Vec<_> = (0..10)
            .map(|_| fresh.reserve(&(), 1, None).expect("books"))
            .collect();
        let tenth = slots[9].wait();
        if mode == PacingMode::Window {
            assert_eq!(tenth, Duration::from_millis(2040));
        }
        let layer = PaceLayer::with_mode(quotas.clone(), OneKey, mode);
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(echo_service());
        let start = Instant::now();
        let mut futs = Vec::new();
        for _ in 0..10 {
            futs.push(svc.ready().await.expect("ready").call(req()));
        }
        // Give up on the 10th (the tail of the queue, as the newest caller timing out
        // would).
        drop(futs.pop());
        // A newcomer now gets exactly the dropped slot, not the one after it.
        let newcomer = svc.ready().await.expect("ready").call(req());
        let h = tokio::spawn(async move {
            newcomer.await.expect("sent");
            start.elapsed()
        });
        for f in futs {
            f.await.expect("sent");
        }
        // tokio's timers fire on whole milliseconds.
        let tenth_ms = Duration::from_millis(tenth.as_nanos().div_ceil(1_000_000) as u64);
        assert_eq!(h.await.expect("task"), tenth_ms, "{mode:?}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn keys_are_paced_independently() {
    let layer = PaceLayer::new(
        Quotas::from(
            Quota::per_second(1)
                .expect("valid")
                .with_burst(1)
                .expect("valid"),
        ),
        |uri: &http::Uri, _: &http::HeaderMap| uri.host().unwrap_or("").to_owned(),
    );
    let a = layer
        .pacer()
        .reserve(&"a.test".to_owned(), 1, None)
        .expect("books");
    let a2 = layer
        .pacer()
        .reserve(&"a.test".to_owned(), 1, None)
        .expect("books");
    let b = layer
        .pacer()
        .reserve(&"b.test".to_owned(), 1, None)
        .expect("books");
    // The default mode: one per 1.02 s, a nanosecond past the edge where a counter
    // whose window began at the first would still weigh it in full.
    assert_eq!(
        (a.wait(), a2.wait(), b.wait()),
        (
            Duration::ZERO,
            Duration::from_nanos(1_020_000_001),
            Duration::ZERO
        )
    );
    assert_eq!(layer.pacer().len(), 2);
}

/// A slot dropped in the middle of the queue: the window log gives it to the next
/// caller (still after the queue, FIFO); GCRA lets it lapse. Nobody waits longer.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_dropped_slot_in_the_middle_delays_nobody() {
    // Window: 4 at 0, 4 at 1.02 s; the 6th dropped; the newcomer takes its place at 1.02 s.
    assert_eq!(
        middle_drop(PacingMode::Window).await,
        (Duration::from_millis(1020), Duration::from_millis(1020))
    );
    // GCRA: 4 at once, then every 250 ms; the newcomer queues after the 8th (1 s).
    assert_eq!(
        middle_drop(PacingMode::Gcra).await,
        (Duration::from_secs(1), Duration::from_millis(1250))
    );
}

/// (when the 8th was sent, when a newcomer is booked) after dropping the 6th of 8.
async fn middle_drop(mode: PacingMode) -> (Duration, Duration) {
    let quotas = Quotas::from(Quota::per_second(4).expect("valid"));
    let layer = PaceLayer::with_mode(quotas, OneKey, mode);
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(echo_service());
    let start = Instant::now();
    let mut futs = Vec::new();
    for _ in 0..8 {
        futs.push(svc.ready().await.expect("ready").call(req()));
    }
    // Drop the 6th while the 7th and 8th are booked at or after it.
    drop(futs.remove(5));
    let last = futs.pop().expect("eighth");
    let h = tokio::spawn(async move {
        last.await.expect("sent");
        start.elapsed()
    });
    for f in futs {
        f.await.expect("sent");
    }
    let eighth = h.await.expect("task");
    let r = layer.pacer().reserve(&(), 1, None).expect("books");
    let newcomer = start.elapsed() + r.wait();
    r.commit();
    (eighth, newcomer)
}

/// A throttled answer holds the key until the server's `Retry-After`: the next request
/// is not sent before then, even though the pacer's own quotas would allow it.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_429_holds_the_key_until_retry_after() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let start = Instant::now();
    let inner = service_fn(move |_req: http::Request<()>| {
        let n = c.fetch_add(1, Ordering::Relaxed);
        async move {
            let mut r = http::Response::new(());
            if n == 0 {
                *r.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                r.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("3"));
            }
            Ok::<_, Infallible>(r)
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(PaceLayer::new(Quotas::claid(), OneKey))
        .service(inner);
    let first = svc
        .ready()
        .await
        .expect("ready")
        .call(req())
        .await
        .expect("sent");
    assert_eq!(first.status(), http::StatusCode::TOO_MANY_REQUESTS);
    svc.ready()
        .await
        .expect("ready")
        .call(req())
        .await
        .expect("sent");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_millis(3002),
        "{waited:?}"
    );
    // Off: the same answer changes nothing.
    let mut off = ServiceBuilder::new()
        .layer(
            PaceLayer::new(Quotas::claid(), OneKey).observe(tower_ratelimit::client::Observe::Off),
        )
        .service(service_fn(|_req: http::Request<()>| async {
            let mut r = http::Response::new(());
            *r.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
            r.headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("3"));
            Ok::<_, Infallible>(r)
        }));
    let t = Instant::now();
    off.ready()
        .await
        .expect("ready")
        .call(req())
        .await
        .expect("sent");
    off.ready()
        .await
        .expect("ready")
        .call(req())
        .await
        .expect("sent");
    assert_eq!(t.elapsed(), Duration::ZERO);
}

/// Requests already booked when a 429 arrives do not go out during the hold: they book
/// again behind it, in order.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn pending_requests_respect_a_new_hold() {
    // "0" went at once and drew the 429 (Retry-After: 3); the other five were booked
    // before it arrived but went only after the 3 s the server asked for, in booking
    // order. Window: 4 in the first widened second after the hold (the 429'd request
    // at 0 no longer counts by then), the 5th 1.02 s after them.
    assert_eq!(
        sent_around_a_hold(PacingMode::Window).await,
        [0, 3000, 3000, 3000, 3000, 4020]
    );
    // GCRA: the hold raises the fastest quota, so admissions resume one emission
    // interval (250 ms) apart.
    let gcra = sent_around_a_hold(PacingMode::Gcra).await;
    assert_eq!(gcra[0], 0);
    assert!(gcra[1] >= 3000, "{gcra:?}");
    for w in gcra[1..].windows(2) {
        assert!((250..=252).contains(&(w[1] - w[0])), "{gcra:?}");
    }
}

/// When each of six tagged requests was sent (ms), in tag order.
async fn sent_around_a_hold(mode: PacingMode) -> Vec<u128> {
    use std::sync::{Arc, Mutex};
    let sent = Arc::new(Mutex::new(Vec::new()));
    let s = sent.clone();
    let start = Instant::now();
    let inner = service_fn(move |req: http::Request<()>| {
        let tag = req.headers()["x-tag"].to_str().expect("ascii").to_owned();
        s.lock().expect("lock").push((tag.clone(), start.elapsed()));
        async move {
            let mut r = http::Response::new(());
            if tag == "0" {
                *r.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                r.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("3"));
            }
            Ok::<_, Infallible>(r)
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(PaceLayer::with_mode(Quotas::claid(), OneKey, mode))
        .service(inner);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let mut r = req();
        r.headers_mut().insert("x-tag", http::HeaderValue::from(i));
        let fut = svc.ready().await.expect("ready").call(r);
        tasks.push(tokio::spawn(fut));
    }
    for t in tasks {
        t.await.expect("task").expect("sent");
    }
    let sent = sent.lock().expect("lock").clone();
    let tags: Vec<&str> = sent.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(tags, ["0", "1", "2", "3", "4", "5"], "{mode:?}");
    sent.iter().map(|e| e.1.as_millis()).collect()
}

/// Learn, then pace: one probe request tells the client the server's policies (draft-03
/// `RateLimit-Limit`) and what remains; a pacer built from them sends the rest with no
/// 429, although the probe already spent part of the burst.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_pacer_built_from_the_advertised_policy_gets_no_429() {
    use tower_ratelimit::client::RateLimitHints;
    let server = common::start(Quotas::claid()).await;
    let client = common::client();
    let probe = client
        .clone()
        .oneshot(common::request(&server.url, "probe"))
        .await
        .expect("probe");
    let hints = RateLimitHints::from_headers(
        probe.status(),
        probe.headers(),
        std::time::SystemTime::now(),
    );
    assert_eq!(hints.remaining, Some(3));
    drop(probe);
    let quotas = hints.quotas().expect("the server advertises its policies");
    assert_eq!(quotas.len(), 2);
    let layer = PaceLayer::new(quotas, ByHeader(http::header::AUTHORIZATION));
    let key = b"Bearer test-key".to_vec();
    layer.pacer().sync(&key, &hints);
    let svc = ServiceBuilder::new().layer(layer).service(client);
    let tasks = common::spawn_requests(&svc, &server.url, 60);
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task").expect("sent"));
    }
    let log = server.log.lock().expect("log").clone();
    assert!(
        statuses.iter().all(|s| *s == http::StatusCode::OK),
        "{statuses:?} {log:?}"
    );
    // Without the sync the fresh pacer would have sent a burst of 4 into 3 remaining.
}

/// `Observe::Exhausted` also heeds `remaining: 0` on a success (fixed-window servers);
/// `Throttled` does not. The window modes default to `Exhausted`, GCRA mode to
/// `Throttled`, since a GCRA server paced at its exact rate always says 0.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn exhausted_mode_holds_on_remaining_zero() {
    use tower_ratelimit::client::Observe;
    let inner = service_fn(|_req: http::Request<()>| async {
        let mut r = http::Response::new(());
        r.headers_mut()
            .insert("x-ratelimit-remaining", http::HeaderValue::from_static("0"));
        r.headers_mut()
            .insert("x-ratelimit-reset", http::HeaderValue::from_static("2"));
        Ok::<_, Infallible>(r)
    });
    let window = || PaceLayer::new(Quotas::claid(), OneKey);
    for (name, layer, expected) in [
        (
            "throttled",
            window().observe(Observe::Throttled),
            Duration::ZERO,
        ),
        (
            "exhausted",
            window().observe(Observe::Exhausted),
            Duration::from_secs(2),
        ),
        ("window default", window(), Duration::from_secs(2)),
        (
            "gcra default",
            PaceLayer::with_mode(Quotas::claid(), OneKey, PacingMode::Gcra),
            Duration::ZERO,
        ),
    ] {
        let mut svc = ServiceBuilder::new().layer(layer).service(inner);
        let start = Instant::now();
        svc.ready()
            .await
            .expect("ready")
            .call(req())
            .await
            .expect("sent");
        svc.ready()
            .await
            .expect("ready")
            .call(req())
            .await
            .expect("sent");
        let waited = start.elapsed();
        assert!(
            waited >= expected && waited <= expected + Duration::from_millis(2),
            "{name}: {waited:?}"
        );
    }
}

/// Idle keys are forgotten: once the table has grown past its sweep floor, keys whose
/// every send can no longer bind go, live ones stay. In the default mode that is twice
/// the longest window plus the margin (a send weighs on a sliding-window counter until
/// it leaves the previous window); in `Window` mode the longest window plus margin.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn idle_keys_are_reclaimed() {
    use tower_ratelimit::client::Pacer;
    for (mode, idle_ms) in [(PacingMode::Safe, 120_051), (PacingMode::Window, 60_051)] {
        let pacer = Pacer::<u32>::with_mode(Quotas::claid(), mode);
        for k in 0..1100 {
            pacer.reserve(&k, 1, None).expect("books").commit();
        }
        assert_eq!(pacer.len(), 1100);
        // A millisecond short of idle: nothing can be swept.
        tokio::time::sleep(Duration::from_millis(idle_ms - 2)).await;
        for k in 5_000..5_600 {
            pacer.reserve(&k, 1, None).expect("books").commit();
        }
        assert!(pacer.len() >= 1700, "{mode:?}: {}", pacer.len());
        tokio::time::sleep(Duration::from_millis(2)).await;
        for k in 10_000..11_000 {
            pacer.reserve(&k, 1, None).expect("books").commit();
        }
        // Once idle, a sweep (when the inserts since the table passed its floor reach
        // half its size) keeps only the keys still inside their horizon.
        assert_eq!(pacer.len(), 1600, "{mode:?}");
    }
}

/// Four threads booking on one key at once, a third of the bookings dropped: the
/// instants kept never put more than 4 in any 1.02 s, and with nothing dropped the
/// `Window` schedule is exact (4 at each multiple of 1.02 s, 1000 in all).
#[test]
fn concurrent_bookings_keep_the_bound_exactly() {
    use std::sync::{Arc, Mutex};
    use tower_ratelimit::client::Pacer;
    use tower_ratelimit::clock::ManualClock;
    let quotas = Quotas::from(Quota::per_second(4).expect("valid"));
    for drop_every in [0usize, 3] {
        let pacer = Pacer::builder(quotas.clone())
            .mode(PacingMode::Window)
            .clock(ManualClock::new())
            .build::<&str>();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (pacer, kept) = (pacer.clone(), kept.clone());
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let r = pacer.reserve(&"k", 1, None).expect("books");
                        if drop_every != 0 && i % drop_every == 0 {
                            drop(r); // given back
                        } else {
                            kept.lock().expect("lock").push(r.wait());
                            r.commit();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let mut kept = kept.lock().expect("lock").clone();
        kept.sort();
        for (i, start) in kept.iter().enumerate() {
            let inside = kept[i..]
                .iter()
                .take_while(|t| **t < *start + Duration::from_millis(1020))
                .count();
            assert!(inside <= 4, "{inside} within 1.02 s of {start:?}");
        }
        if drop_every == 0 {
            assert_eq!(kept.len(), 1000);
            for (i, t) in kept.iter().enumerate() {
                assert_eq!(*t, Duration::from_millis(1020) * (i / 4) as u32);
            }
        } else {
            assert_eq!(kept.len(), 4 * (250 - 250usize.div_ceil(3)));
        }
    }
}

/// `adopt` replaces a key's quotas: a pacer configured for 8/s books 4 per 1.02 s once
/// the server's advertised 4/s is adopted; other keys keep the configured quotas.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn adopted_quotas_replace_the_configured_ones_for_that_key() {
    use tower_ratelimit::client::Pacer;
    let pacer = Pacer::<&str>::new(Quota::per_second(8).expect("valid"));
    assert!(pacer.adopt(&"a", &Quotas::from(Quota::per_second(4).expect("valid"))));
    let waits = |key| {
        (0..5)
            .map(|_| {
                let r = pacer.reserve(&key, 1, None).expect("books");
                let w = r.wait();
                r.commit();
                w
            })
            .collect::<Vec<_>>()
    };
    // 4 per 1.02 s (the default mode: a nanosecond past the counter's edge).
    assert_eq!(waits("a")[4], Duration::from_nanos(1_020_000_001));
    assert_eq!(waits("b")[4], Duration::ZERO);
    let gcra = Pacer::<&str>::with_mode(Quotas::claid(), PacingMode::Gcra);
    assert!(!gcra.adopt(&"a", &Quotas::clarifai()));
}

/// Every header style the hints parser reads holds the key, requests already booked
/// included: six requests booked at once on a generous pacer (all would go at 0), the
/// first answered "nothing left for 2 s" in one style; the other five go only after
/// the 2 s (counted from the first's send). With `Observe::Off` they all go at once,
/// so the holds are what the server's answer caused.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_header_style_holds_booked_requests() {
    use std::sync::{Arc, Mutex};
    use tower_ratelimit::client::Observe;
    // (style, status, headers of the first answer)
    type Style = (&'static str, u16, &'static [(&'static str, &'static str)]);
    let styles: [Style; 4] = [
        ("ietf", 200, &[("ratelimit", "\"default\";r=0;t=2")]),
        (
            "draft-03",
            200,
            &[("ratelimit-remaining", "0"), ("ratelimit-reset", "2")],
        ),
        (
            "x-ratelimit",
            200,
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "2")],
        ),
        ("retry-after", 429, &[("retry-after", "2")]),
    ];
    for (style, status, headers) in styles {
        for observe in [None, Some(Observe::Off)] {
            let sent = Arc::new(Mutex::new(Vec::new()));
            let s = sent.clone();
            let start = Instant::now();
            let inner = service_fn(move |req: http::Request<()>| {
                let first = req.headers().contains_key("x-first");
                s.lock().expect("lock").push(start.elapsed());
                async move {
                    let mut r = http::Response::new(());
                    if first {
                        *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
                        for (k, v) in headers {
                            r.headers_mut()
                                .insert(*k, http::HeaderValue::from_static(v));
                        }
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            let mut layer = PaceLayer::new(Quota::per_second(100).expect("valid"), OneKey);
            if let Some(o) = observe {
                layer = layer.observe(o);
            }
            let mut svc = ServiceBuilder::new().layer(layer).service(inner);
            let mut tasks = Vec::new();
            for i in 0..6 {
                let mut r = req();
                if i == 0 {
                    r.headers_mut()
                        .insert("x-first", http::HeaderValue::from_static("1"));
                }
                // Booked now, before any answer has come back.
                let fut = svc.ready().await.expect("ready").call(r);
                tasks.push(tokio::spawn(fut));
            }
            for t in tasks {
                t.await.expect("task").expect("sent");
            }
            let sent = sent.lock().expect("lock").clone();
            assert_eq!(sent.len(), 6);
            assert_eq!(sent[0], Duration::ZERO, "{style}");
            for t in &sent[1..] {
                if observe.is_none() {
                    assert!(*t >= Duration::from_secs(2), "{style}: {sent:?}");
                } else {
                    assert_eq!(*t, Duration::ZERO, "{style} (Off): {sent:?}");
                }
            }
        }
    }
}

/// `Observe::Adopt`: the quotas a response advertises (`RateLimit-Policy`) replace the
/// configured ones for that key from the next booking on: configured 100/s, the server
/// says 2 per second, so the third request waits a (widened) second. Without `Adopt`
/// the same answers change nothing.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn observe_adopt_replaces_the_configured_quotas() {
    use tower_ratelimit::client::Observe;
    let inner = service_fn(|_req: http::Request<()>| async {
        let mut r = http::Response::new(());
        r.headers_mut().insert(
            "ratelimit-policy",
            http::HeaderValue::from_static("\"slow\";q=2;w=1"),
        );
        Ok::<_, Infallible>(r)
    });
    for (observe, third_at) in [
        (Observe::Adopt, Duration::from_millis(1020)),
        (Observe::Exhausted, Duration::ZERO),
    ] {
        let layer = PaceLayer::new(Quota::per_second(100).expect("valid"), OneKey).observe(observe);
        let mut svc = ServiceBuilder::new().layer(layer).service(inner);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..3 {
            svc.ready()
                .await
                .expect("ready")
                .call(req())
                .await
                .expect("sent");
            at.push(start.elapsed());
        }
        assert_eq!(at[1], Duration::ZERO, "{observe:?}: {at:?}");
        // tokio's timers fire on whole milliseconds: 1.02 s and a nanosecond is 1.021 s.
        assert!(
            at[2] >= third_at && at[2] <= third_at + Duration::from_millis(1),
            "{observe:?}: {at:?}"
        );
    }
}
