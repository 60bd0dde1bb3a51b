#![no_main]
//! See `fuzz/README.md`: `cargo +nightly fuzz run quota_text -- -max_total_time=60`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_ratelimit::fuzzing::quota_text(data));
