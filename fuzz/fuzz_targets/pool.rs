//! Fuzz target: see `tcpool_fuzz::pool`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpool_fuzz::pool::run(data));
