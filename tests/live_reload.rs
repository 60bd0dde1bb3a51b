//! Live reconfiguration of the in-memory store: states carry over exactly, every decision
//! belongs to one generation, under threads, across table resizes.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use tower_ratelimit::clock::ManualClock;
use tower_ratelimit::store::memory::MemoryStore;
use tower_ratelimit::store::{Check, Store, Tier, Tiers};
use tower_ratelimit::{Outcome, Quotas, ReloadError};

fn set(s: &str) -> Quotas {
    s.parse().expect("valid quotas")
}

fn outcome<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    store: &MemoryStore<K, ManualClock>,
    key: &K,
    tier: Tier,
) -> Outcome {
    match store.check(key, tier, 1) {
        Check::Ready(Ok(o)) => o,
        other => panic!("memory store answers at once: {other:?}"),
    }
}

/// Threads exhaust many keys while the set changes from 10/min to 20/min (same name, so
/// the level carries as a time): with the clock frozen, a key admitted `k` times under
/// the old set (level 6k s) has exactly `(60 - 6k) / 3 = 20 - 2k` admissions left under
/// the new one. Each thread sees generations in order, never a decision of an old set
/// after one of the new set.
#[test]
fn concurrent_requests_see_the_old_set_or_the_new_one() {
    const THREADS: usize = 4;
    const KEYS: u64 = 3_000; // enough to resize the table during the run
    const ROUNDS: usize = 25; // more than any key can be admitted
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(1_000));
    let store = Arc::new(MemoryStore::<u64, _>::with_clock(
        set("10/min name q"),
        clock.clone(),
    ));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                // [key] -> (admitted under gen 0, admitted under gen 1)
                let mut counts = vec![(0u32, 0u32); KEYS as usize];
                let mut seen = 0;
                for round in 0..ROUNDS {
                    for k in 0..KEYS {
                        // Threads walk the keys in different orders.
                        let k = (k + t as u64 * 997 + round as u64) % KEYS;
                        let o = outcome(&store, &k, Tier::DEFAULT);
                        assert!(o.generation() >= seen, "a thread went back to an old set");
                        seen = o.generation();
                        if o.is_allowed() {
                            let c = &mut counts[k as usize];
                            match o.generation() {
                                0 => c.0 += 1,
                                1 => c.1 += 1,
                                g => panic!("generation {g}"),
                            }
                        }
                    }
                }
                counts
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_millis(5));
    store
        .reload(Tiers::new(set("20/min name q")))
        .expect("reload");
    let mut totals = vec![(0u32, 0u32); KEYS as usize];
    for h in handles {
        for (t, c) in totals.iter_mut().zip(h.join().expect("no panic")) {
            t.0 += c.0;
            t.1 += c.1;
        }
    }
    // Keys touched only after the switch admit 20; after the reload finishes every key
    // is exhausted under the new set.
    for k in 0..KEYS {
        assert!(!outcome(&store, &k, Tier::DEFAULT).is_allowed());
    }
    let mut mixed = 0;
    for (k, &(old, new)) in totals.iter().enumerate() {
        assert!(old <= 10, "key {k}: {old} under 10/min");
        assert_eq!(
            new,
            20 - 2 * old,
            "key {k}: {old} admitted under the old set, {new} under the new"
        );
        if old > 0 && new > 0 {
            mixed += 1;
        }
    }
    eprintln!("{mixed} keys were switched part-way");
}

/// A changed set with another shape (1 quota -> 2 quotas, new unit), and a new plan;
/// removing a plan is refused; headers' set is the generation's.
#[test]
fn shape_changes_plans_and_generations() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(10));
    let store = MemoryStore::<&str, _>::with_clock(
        Tiers::new(set("4/s name burst")).plan("pro", set("40/s")),
        clock.clone(),
    );
    let pro = store.tiers().tier("pro").expect("declared");
    for _ in 0..3 {
        assert!(outcome(&store, &"a", Tier::DEFAULT).is_allowed());
    }
    // "burst" keeps its level (3 of 4 used: 750 ms); "minute" is new and takes the
    // largest old level, 750 ms of its 60 s; with this request's 500 ms, 1.25 s used
    // leaves 117 (floor of 58.75 s / 0.5 s).
    store
        .reload(
            Tiers::new(set("4/s name burst, 120/min"))
                .plan("pro", set("40/s"))
                .plan("max", set("1000/s")),
        )
        .expect("reload");
    assert_eq!(store.generation(), 1);
    let o = outcome(&store, &"a", Tier::DEFAULT);
    assert!(o.is_allowed());
    assert_eq!(o.generation(), 1);
    let d = o
        .decision(
            store
                .tiers_of(o.generation())
                .get(Tier::DEFAULT)
                .expect("known"),
        )
        .expect("the generation's own set");
    assert_eq!(d.quotas().len(), 2);
    let remaining: Vec<u64> = d.states().map(|q| q.remaining()).collect();
    assert_eq!(remaining, [0, 117], "{d:?}");
    assert!(!outcome(&store, &"a", Tier::DEFAULT).is_allowed());
    // Plans keep their handles; new ones come after.
    assert_eq!(store.tiers().tier("pro"), Some(pro));
    assert_eq!(store.tiers().tier("max"), Some(Tier(2)));
    assert!(outcome(&store, &"a", pro).is_allowed());
    assert_eq!(
        store.reload(Tiers::new(set("1/s"))),
        Err(ReloadError::PlanRemoved("pro".into()))
    );
    assert_eq!(store.generation(), 1, "a refused reload changes nothing");
    // The old generation's sets stay readable for outcomes made under it.
    assert_eq!(store.tiers_of(0).default_set().len(), 1);
}

/// The global (zero-sized) key: its single cell is handed over too.
#[test]
fn a_global_key_carries_over() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(10));
    let store = MemoryStore::<(), _>::with_clock(set("10/s"), clock.clone());
    for _ in 0..10 {
        assert!(outcome(&store, &(), Tier::DEFAULT).is_allowed());
    }
    // Exhausted: a level of 1 s (full again in 1 s). Under 5 per 5 s (T = 1 s, capacity
    // 5 s) that 1 s level leaves 4 requests, and one more each second.
    store
        .reload(Tiers::new(set("5/5s name second")))
        .expect("reload");
    let burst = (0..10)
        .filter(|_| outcome(&store, &(), Tier::DEFAULT).is_allowed())
        .count();
    assert_eq!(burst, 4);
    clock.advance(Duration::from_millis(1_000));
    assert!(outcome(&store, &(), Tier::DEFAULT).is_allowed());
    assert!(!outcome(&store, &(), Tier::DEFAULT).is_allowed());
}
