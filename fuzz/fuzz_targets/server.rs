//! Fuzz target: see `tcpool_fuzz::server`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpool_fuzz::server::run(data));
