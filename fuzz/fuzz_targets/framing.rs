//! Fuzz target: see `tcpool_fuzz::framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpool_fuzz::framing::run(data));
