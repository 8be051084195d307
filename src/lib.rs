#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub use tcpool_core::*;

/// The host backend: std sockets with socket options, lingering close and
/// poll(2) readiness waiting (feature `std`, on by default).
#[cfg(feature = "std")]
pub use tcpool_std as host;

/// The smoltcp backend: a fixed socket pool with an emulated accept backlog
/// (feature `smoltcp`).
#[cfg(feature = "smoltcp")]
pub use tcpool_smoltcp as smoltcp;

/// The lwIP BSD-socket backend for ESP-IDF, or a host lwIP build (feature
/// `lwip`).
#[cfg(feature = "lwip")]
pub use tcpool_lwip as lwip;

/// The embassy-net backend, for async firmware: a socket pool with an
/// emulated accept backlog, served by the async driver (feature `embassy`).
#[cfg(feature = "embassy")]
pub use tcpool_embassy as embassy;
