//! # tcpool-smoltcp
//!
//! An [`embedded-nal`](embedded_nal) `TcpClientStack` + `TcpFullStack` over
//! [smoltcp] 0.14: `no_std`, no allocator, no `unsafe`. It is the
//! smoltcp backend of tcpool (whose `Server` is generic over `TcpFullStack`),
//! and usable on its own by anything written against `embedded-nal`.
//!
//! smoltcp has sockets but no accept queue. [`Stack`] owns the smoltcp
//! `Interface`, a `SocketSet` and the device, keeps a fixed pool of `N` TCP
//! sockets, and emulates listen/accept on top: a listener keeps a few pool
//! sockets in LISTEN, one that catches a SYN becomes the connection and a
//! fresh one is armed at once. See [`Stack`] for the exact semantics and the
//! smoltcp pitfalls it guards against, and [`ListenConfig`] for what a client
//! sees when the pool is full.
//!
//! ```
//! use core::net::SocketAddr;
//! use embedded_nal::{TcpClientStack, TcpFullStack};
//! use smoltcp::iface::{Config as IfaceConfig, Interface};
//! use smoltcp::phy::{Loopback, Medium};
//! use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
//! use tcpool_core::Instant;
//! use tcpool_smoltcp::{Config, Stack, StackStorage};
//!
//! // Server and client on one interface over smoltcp's loopback device.
//! let mut device = Loopback::new(Medium::Ip);
//! let mut iface = Interface::new(
//!     IfaceConfig::new(HardwareAddress::Ip),
//!     &mut device,
//!     smoltcp::time::Instant::ZERO,
//! );
//! iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
//!
//! let mut storage = StackStorage::<4, 1024, 1024>::new();
//! let mut stack = Stack::new(iface, device, &mut storage, Config::new());
//!
//! let mut listener = stack.socket()?;
//! stack.bind(&mut listener, 7)?;
//! stack.listen(&mut listener)?;
//!
//! let server: SocketAddr = "127.0.0.1:7".parse().unwrap();
//! let mut client = stack.socket()?;
//! let mut t = 0;
//! let mut conn = None;
//! let mut sent = false;
//! let mut echoed = [0u8; 5];
//! let mut got = 0;
//! while got < 5 {
//!     t += 1;
//!     assert!(t < 1_000, "no progress");
//!     stack.poll(Instant::from_millis(t));
//!     if !sent && stack.connect(&mut client, server).is_ok() {
//!         sent = stack.send(&mut client, b"hello").is_ok();
//!     }
//!     if conn.is_none() {
//!         conn = stack.accept(&mut listener).ok();
//!     }
//!     if let Some((c, _peer)) = conn.as_mut() {
//!         let mut buf = [0u8; 16];
//!         if let Ok(n) = stack.receive(c, &mut buf) {
//!             stack.send(c, &buf[..n]).unwrap();
//!         }
//!     }
//!     if let Ok(n) = stack.receive(&mut client, &mut echoed[got..]) {
//!         got += n;
//!     }
//! }
//! assert_eq!(&echoed, b"hello");
//! # Ok::<(), tcpool_smoltcp::Error>(())
//! ```
//!
//! ## Driving it
//!
//! Call [`Stack::poll`] whenever the device may have received something, and
//! at the latest after [`Stack::poll_delay`] (a firmware loop sleeps for the
//! smaller of that and the server's own deadline). Time is passed in as a
//! [`tcpool_core::Instant`], so tests run on a simulated clock.
//!
//! ## Readiness
//!
//! The stack reports readiness to a tcpool `Server`
//! ([`tcpool_core::Backend::reports_ready`] is always true): the server
//! tells it which sockets to watch, and each server poll services only the
//! sockets found ready (a listener with a connection to accept, a
//! connection with input, end of stream, room to write, or a failure),
//! instead of trying `receive` on every connection. Readiness is read from
//! smoltcp's socket state, level-triggered, and checked only where a stack
//! poll may have changed something: after a [`Stack::poll`] that moved
//! packets every watched socket is looked at (a few field reads each;
//! smoltcp does not say which socket a packet changed), otherwise only the
//! sockets still ready or whose watch changed. It is not a setting: it
//! costs nothing a server would not pay anyway, and loses nothing. The one
//! visible difference is that `Server::interests` is empty: an event loop
//! that sleeps asks [`Stack::watched_ready`] (or uses the TAP stack's
//! `Wait`), not `Stack::ready` on the server's interests.
//!
//! ## Firmware: storage in `.bss`
//!
//! [`StackStorage::new`] is a `const fn` whose value is all zero bytes, so
//! the pool's storage (socket buffers included) goes in a `static` that
//! lands in `.bss`: no copy in the flash image, no storage-sized temporary
//! on the stack.
//!
//! ```
//! # use smoltcp::iface::{Config as IfaceConfig, Interface};
//! # use smoltcp::phy::{Loopback, Medium};
//! # use smoltcp::wire::HardwareAddress;
//! # use tcpool_smoltcp::{Config, Stack, StackStorage};
//! static STORAGE: static_cell::ConstStaticCell<StackStorage<'static, 8, 1536, 1536>> =
//!     static_cell::ConstStaticCell::new(StackStorage::new());
//! # let mut device = Loopback::new(Medium::Ip);
//! # let iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut device,
//! #     smoltcp::time::Instant::ZERO);
//! let stack = Stack::new(iface, device, STORAGE.take(), Config::new());
//! # assert_eq!(stack.capacity(), 8);
//! ```
//!
//! A test reads its own executable to check that such a `static` is in
//! `.bss` (`tests/storage.rs`).
//!
//! ## Features
//!
//! * `std`: host extras (nothing required by the stack itself).
//! * `sim`: the `sim` module, an in-memory network (two interfaces joined by a wire
//!   with seeded loss, reordering and duplication, a deterministic clock)
//!   used by the tests here and by the shared conformance suite. Implies `std`.
//! * `tap`: the `tap` module, the stack on a Linux TAP device (smoltcp's
//!   `phy-tuntap_interface`), so that real host clients can talk to it; that
//!   stack implements [`tcpool_core::Wait`]. Implies `std`.
//! * `ipv6`: accept IPv6 addresses (enables smoltcp's `proto-ipv6`).
//! * `log` / `defmt`: log pool transitions (trace) and dropped duplicate SYNs,
//!   lingering-close resets (debug) through one or the other, smoltcp's own
//!   logging included. `defmt` also derives `defmt::Format` on the public
//!   types. Not both at once: such a build (e.g. `--all-features`) is
//!   refused at compile time.
//!
//! ## Not supported
//!
//! * A listener bound to one local address: listeners accept on every
//!   address of the interface.
//! * An accept queue beyond the pool: a port whose sockets are all busy holds
//!   new clients by dropping their SYNs ([`Overflow::Hold`], they retransmit)
//!   or refuses them ([`Overflow::Refuse`]); it cannot complete their
//!   handshakes without a socket.
//! * TCP Fast Open, `SO_LINGER`-style zero-linger close (use [`Stack::abort`]).
#![no_std]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "std")]
extern crate std;

#[macro_use]
mod fmt;

mod config;
mod error;
mod guard;
mod stack;
mod storage;

#[cfg(feature = "sim")]
pub mod sim;

#[cfg(all(feature = "tap", target_os = "linux"))]
pub mod tap;

pub use config::{Config, ListenConfig, Overflow};
pub use error::Error;
pub use stack::{Counters, PoolStats, Stack, TcpHandle, TcpState};
pub use storage::StackStorage;

/// The smoltcp version this crate is built against, re-exported so users can
/// name its types without a version mismatch.
pub use smoltcp;
