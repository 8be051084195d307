#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

mod config;
mod error;
mod ffi;
mod fmt;
mod socket;
mod stack;
mod sys;
mod wait;
mod watch;

pub use config::{Config, ESP_IDF_DEFAULT_MAX_SOCKETS, Keepalive, SocketBudget};
pub use error::{Errno, Error};
pub use socket::{Socket, SocketState};
pub use stack::{LINGER_SLOTS, LwipStack};
pub use tcpool_core::Interest;
pub use wait::wait;
