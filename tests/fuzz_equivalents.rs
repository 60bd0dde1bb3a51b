//! The fuzz targets' entry points (`fuzz/`, `tower_ratelimit::fuzzing`) under proptest,
//! so CI covers them in `cargo test --all-features` without a fuzzer: arbitrary and
//! shaped bytes, no panic (each entry point asserts its own properties), and allocation
//! bounded by a constant plus a multiple of the input's length.
#![cfg(feature = "fuzzing")]

use std::alloc::System;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower_ratelimit::fuzzing;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated while `f` runs (one #[test] in this binary, so no other test thread
/// allocates meanwhile).
fn bytes_allocated(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    region.change().bytes_allocated
}

/// Runs `entry` over `strategy`, checking the allocation bound `fixed + per_byte * len`.
fn check<S>(name: &str, strategy: S, fixed: usize, per_byte: usize, entry: fn(&[u8]))
where
    S: Strategy<Value = Vec<u8>>,
{
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    // Lazily initialised statics are allocated once, not per input.
    entry(&[]);
    entry(&[1; 64]);
    let worst = std::cell::Cell::new(0.0f64);
    let result = runner.run(&strategy, |data| {
        let n = bytes_allocated(|| entry(&data));
        let bound = fixed + per_byte * data.len();
        worst.set(worst.get().max(n as f64 / bound as f64));
        if n > bound {
            return Err(TestCaseError::fail(format!(
                "{name}: {n} bytes allocated for {} input bytes (bound {bound})",
                data.len()
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!(
        "{name}: worst allocation {:.0}% of the bound",
        worst.get() * 100.0
    );
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4096)
}

/// Pieces forwarding headers are made of, joined into lines with a header selector.
fn forwarding_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just("10.0.0.7".to_owned()),
        Just("203.0.113.9".to_owned()),
        Just("fd00::7".to_owned()),
        Just("[2001:db8::1]:443".to_owned()),
        Just("for=198.51.100.1".to_owned()),
        Just("for=\"[2001:db8::2]:80\";proto=https".to_owned()),
        Just("for=unknown".to_owned()),
        Just("for=_hidden".to_owned()),
        Just("999.1.1.1".to_owned()),
        "[ -~]{0,24}",
    ];
    let sep = prop_oneof![Just(", "), Just(","), Just(";"), Just(" ")];
    let line =
        (any::<u8>(), prop::collection::vec((piece, sep), 0..12)).prop_map(|(sel, parts)| {
            let mut v = vec![sel % 4];
            for (p, s) in parts {
                v.extend_from_slice(p.as_bytes());
                v.extend_from_slice(s.as_bytes());
            }
            v
        });
    (any::<u8>(), prop::collection::vec(line, 0..24)).prop_map(|(peer, lines)| {
        let mut out = vec![peer];
        for l in lines {
            out.extend_from_slice(&l);
            out.push(b'\n');
        }
        out
    })
}

fn authorization_bytes() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop_oneof![
        Just("Bearer "),
        Just("bearer  "),
        Just("Key "),
        Just("KEY\t"),
        Just(""),
        Just("Basic ")
    ];
    (
        any::<u8>(),
        scheme,
        "[ -~]{0,300}",
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(sel, scheme, key, tail)| {
            let mut v = vec![sel];
            v.extend_from_slice(scheme.as_bytes());
            v.extend_from_slice(key.as_bytes());
            v.extend_from_slice(&tail);
            v
        })
}

#[cfg(feature = "client")]
fn hint_bytes() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("120, 120;w=60, 4;w=1".to_owned()),
        Just("\"burst\";q=4;w=1, \"minute\";q=120;w=60".to_owned()),
        Just("\"burst\";r=0;t=1".to_owned()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1764000000".to_owned()),
        Just("8".to_owned()),
        Just(r#"{"status":{"code":"CONN_THROTTLED"}}"#.to_owned()),
        Just(r#"{"status":{"code":11005}}"#.to_owned()),
        "[ -~]{0,40}",
    ];
    prop::collection::vec(field, 0..16).prop_map(|fs| fs.join("\n").into_bytes())
}

#[test]
fn fuzz_entry_points_hold_under_proptest() {
    check(
        "forwarding/any",
        any_bytes(),
        64 << 10,
        64,
        fuzzing::forwarding,
    );
    check(
        "forwarding/shaped",
        forwarding_bytes(),
        64 << 10,
        64,
        fuzzing::forwarding,
    );
    check(
        "header_key/any",
        any_bytes(),
        16 << 10,
        16,
        fuzzing::header_key,
    );
    check(
        "header_key/shaped",
        authorization_bytes(),
        16 << 10,
        16,
        fuzzing::header_key,
    );
    check("quota/any", any_bytes(), 16 << 10, 0, fuzzing::quota);
    check(
        "quota_text/any",
        any_bytes(),
        16 << 10,
        16,
        fuzzing::quota_text,
    );
    check(
        "quota_text/shaped",
        "[0-9]{1,6}/[0-9]{0,3}(s|min|h|d|ms|sec)( burst [0-9]{1,4})?(, [0-9]{1,4}/(s|min))?"
            .prop_map(String::into_bytes),
        16 << 10,
        16,
        fuzzing::quota_text,
    );
    #[cfg(feature = "client")]
    {
        check("hints/any", any_bytes(), 64 << 10, 256, fuzzing::hints);
        check("hints/shaped", hint_bytes(), 64 << 10, 256, fuzzing::hints);
    }
    #[cfg(feature = "redis")]
    {
        check(
            "redis_reply/any",
            any_bytes(),
            16 << 10,
            64,
            fuzzing::redis_reply,
        );
        redis_values();
    }
}

/// Replies shaped like the script's (an array of integers, of roughly the right length),
/// straight into the store's checks: what the raw-bytes target rarely reaches.
#[cfg(feature = "redis")]
fn redis_values() {
    use redis::Value;
    let int = prop_oneof![
        Just(0i64),
        Just(1),
        Just(2),
        Just(4),
        Just(-1),
        Just(i64::MAX),
        Just(i64::MIN),
        Just((1 << 53) - 1),
        Just(1 << 53),
        0i64..(1 << 53),
        1_700_000_000_000_000i64..1_900_000_000_000_000,
    ]
    .prop_map(Value::Int);
    let item = prop_oneof![
        8 => int,
        1 => Just(Value::Nil),
        1 => Just(Value::Okay),
        1 => "[0-9]{0,20}".prop_map(|s| Value::BulkString(s.into_bytes())),
    ];
    let reply = prop_oneof![
        prop::collection::vec(item, 0..9).prop_map(Value::Array),
        Just(Value::Nil),
    ];
    let warm = Value::Array(vec![
        Value::Int(1 << 50),
        Value::Int(0),
        Value::Int(0),
        Value::Int(1 << 50),
    ]);
    fuzzing::redis_value(&warm);
    let mut runner = TestRunner::new(Config {
        cases: 1024,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&reply, |v| {
        let n = bytes_allocated(|| fuzzing::redis_value(&v));
        prop_assert!(n <= 16 << 10, "{n} bytes for one reply");
        Ok(())
    });
    if let Err(e) = result {
        panic!("redis_value: {e}");
    }
}
