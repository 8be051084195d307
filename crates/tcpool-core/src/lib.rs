//! tcpool-core: the `no_std`, heap-free connection-pool server at the heart
//! of tcpool.
//!
//! A [`Server`] owns `N` connection slots with fixed buffers and drives them
//! over any [`embedded_nal::TcpFullStack`]. The application is a
//! [`Handler`]; the [`framing`] helpers turn the byte stream into lines or
//! length-prefixed frames without a heap. Time is passed in as an
//! [`Instant`], so the server never reads a clock and tests are
//! deterministic.
//!
//! Most users depend on the `tcpool` facade crate, which re-exports this one
//! and the backends.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "mock")]
extern crate std;

mod fmt;

pub mod async_handler;
pub mod asynch;
pub mod backend;
mod buffer;
pub mod config;
pub mod error;
pub mod framing;
pub mod handler;
pub mod interest;
#[cfg(feature = "mock")]
pub mod mock;
pub mod pool;
mod sched;
pub mod server;
pub mod slot;
pub mod stats;
pub mod storage;
pub mod time;

pub use asynch::{AsyncBackend, Clock};
pub use backend::{Backend, Wait};
pub use config::{Config, WhenFull};
pub use error::{FrameError, ListenError, WriteError};
pub use handler::{CloseReason, Closed, Conn, ConnId, Handler};
pub use interest::Interest;
pub use server::Server;
pub use slot::SlotState;
pub use stats::{ClosedCounts, Stats};
pub use time::Instant;

pub use core::time::Duration;
pub use embedded_nal;
pub use nb;
