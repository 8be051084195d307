//! tcpool-core: the `no_std`, heap-free connection-pool server.
#![no_std]
#![deny(unsafe_code)]

pub mod interest;
pub mod time;

pub use interest::Interest;
pub use time::Instant;
