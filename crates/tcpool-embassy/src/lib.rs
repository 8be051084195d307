//! # tcpool-embassy
//!
//! The embassy-net backend of tcpool, for async firmware: an
//! [`embedded-nal`](embedded_nal) `TcpFullStack` over embassy-net 0.9
//! sockets, run by tcpool's async driver ([`tcpool_core::asynch::run`]),
//! with outgoing connections through
//! [`embedded_nal_async::TcpConnect`]. `no_std`, no allocator, no `unsafe`.
//!
//! What it adds to embassy-net:
//!
//! * **An explicit socket budget**: a [`Pool`] of `N` sockets with fixed
//!   buffers ([`Storage`]), shared by the listeners, the server's
//!   connections and outgoing connections; [`Pool::stats`] shows how it is
//!   used, and a full budget is [`Error::OutOfSockets`], never a reset.
//! * **An emulated accept backlog**: `K` sockets listening per port
//!   ([`ListenConfig`]), re-armed as they catch SYNs. A SYN burst larger
//!   than `K` is **held**, not reset: [`HoldSyns`] wraps the network driver
//!   and withholds embassy-net's refusal RSTs for the pool's ports, so the
//!   clients' SYN retransmits find a listener ([`Overflow::Hold`]).
//! * **The true peer address** on `accept`.
//! * **A lingering close that never discards queued output**: a closed
//!   socket stays out of the budget until its output and FIN are delivered
//!   (draining the peer's input), at most [`Config::lingering_close`].
//! * **Waker registration** ([`tcpool_core::AsyncBackend`]): every call
//!   that answers `WouldBlock` registers the server task's waker with the
//!   socket, so the async driver sleeps until a socket or a deadline wakes
//!   it, and [`EmbassyClock`] arms the deadlines on embassy-time.
//!
//! ## Wiring it up
//!
//! ```text
//! static HOLD: SynHold = SynHold::new();
//! let driver = HoldSyns::new(driver, &HOLD);
//! let (stack, runner) = embassy_net::new(driver, net_config, resources, seed);
//! spawner.spawn(net_task(runner)); // runner.run().await
//!
//! let storage = STORAGE.init(Storage::<6, 1024, 1024>::new());
//! let pool = POOL.init(Pool::new(stack, storage, &HOLD, Config::new()));
//! let mut nal = pool.stack();
//! let mut server: Server<PoolStack<'static, 'static, 6>, Echo, 4> = Server::new(Echo, tcpool_core::Config::new());
//! server.listen(&mut nal, 7)?;
//! tcpool_core::asynch::run(&mut server, &mut nal, &mut EmbassyClock, core::future::pending::<()>()).await;
//! ```
//!
//! The budget must cover the server's `max_connections`, each listener's
//! `max_queued`, the outgoing connections and the sockets still finishing a
//! close; the embassy-net `StackResources` must have room for the `N`
//! sockets of the pool plus its own. A smaller budget (as many sockets as
//! slots, say) serves everyone too, only later: behind a [`HoldSyns`]
//! driver, SYNs that find no socket listening are held, not reset, and a
//! socket listens again as soon as its close has completed.
//!
//! ## Features
//!
//! * `log` / `defmt`: log pool transitions (trace), lingering-close resets
//!   and failed handshakes (debug). Both at once are refused.
//! * `sim`: the `sim` module: in-memory embassy-net drivers (a wire
//!   joining two stacks) for tests on the host (needs `std`).
//!
//! ## Not supported
//!
//! * IPv6 endpoints (the pool is built with embassy-net's `proto-ipv4`).
//! * A listener bound to one address; choosing the local port of an
//!   outgoing connection.
//! * Undoing a retransmitted SYN caught by a second listening socket (only
//!   on a lossy link; the duplicate fails its handshake and is reclaimed).
#![no_std]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "sim")]
extern crate std;

#[macro_use]
mod fmt;

mod clock;
mod config;
mod connect;
mod error;
mod hold;
mod pool;
mod stack;
mod storage;

#[cfg(feature = "sim")]
pub mod sim;

pub use clock::EmbassyClock;
pub use config::{Config, ListenConfig, Overflow};
pub use connect::Connection;
pub use error::Error;
pub use hold::{HoldSyns, HoldTx, MAX_HELD_PORTS, SynHold};
pub use pool::{Counters, Pool, PoolStats, TcpHandle};
pub use stack::PoolStack;
pub use storage::Storage;

/// The embassy-net version this crate is built against.
pub use embassy_net;
pub use embassy_net::tcp::State as TcpState;
