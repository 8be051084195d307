//! # tcpool-std: the host backend of tcpool
//!
//! [`StdStack`] is an [`embedded_nal::TcpFullStack`] over the host's sockets,
//! with what a server needs that a plain wrapper lacks:
//!
//! * **never blocks**: accepted and connected sockets are non-blocking,
//!   `connect` is non-blocking too; `receive` says `WouldBlock` when nothing
//!   is buffered and `Ok(0)` only at the peer's FIN;
//! * **socket options** from a [`Config`]: the bind address (IPv4 or IPv6,
//!   default `127.0.0.1`), `SO_REUSEADDR` (a restarted server rebinds at
//!   once), backlog, keepalive, `TCP_NODELAY`;
//! * **lingering close**: `close` sends a FIN after the queued data and
//!   drains the peer's input for a while, so a reset does not destroy the
//!   last response; [`StdStack::abort`] resets on purpose;
//! * **readiness reporting**: the stack keeps one `epoll` instance. A
//!   `tcpool_core::Server` registers the sockets it cares about
//!   (`Backend::watch`, only when a socket's interest changes) and each poll
//!   takes the ready ones (`Backend::take_ready`), so it services only
//!   those; [`StdStack::wait`] sleeps in `epoll_wait` until one is ready or
//!   the server's next deadline, so an idle server uses no CPU. Both cost
//!   in proportion to the ready sockets, not to the pool or to the idle
//!   connections; [`StdClock`] gives the server its `now`;
//! * **big pools on the heap**: [`Heap`] storage builds a server's slots in
//!   place (`Server::new_in`), so a pool of megabytes never passes through
//!   the stack.
//!
//! ## How it relates to std-embedded-nal
//!
//! The TCP side is implemented here over `std::net` and `socket2`, not by
//! wrapping `std_embedded_nal::Stack`, because its TCP cannot be fixed from
//! outside: its socket type has private constructors and state, so a
//! connection accepted from a listener we configured cannot be one of its
//! sockets; its `bind` always binds `[::]`; its `accept` returns a
//! **blocking** socket (std's `accept` does not inherit `O_NONBLOCK` on
//! Linux), so the first `receive` with nothing buffered hangs the whole
//! server; its `connect` blocks; and it maps `TimedOut` to `WouldBlock`,
//! which would hide a keepalive timeout for ever. The tests reproduce the
//! blocking accept against `std_embedded_nal::Stack` and show this crate's
//! accept does not have it. Where std-embedded-nal is right, it is used as
//! is: [`StdStack`] passes UDP (client side) and DNS through to it, so it
//! can replace `std_embedded_nal::Stack` in code that also needs those.
//!
//! ## Example
//!
//! A listener on a port the system chooses, one client, one response:
//!
//! ```
//! use embedded_nal::{TcpClientStack, TcpFullStack};
//! use std::io::Read;
//! use tcpool_core::Interest;
//! use tcpool_std::{Config, StdClock, StdStack};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut stack = StdStack::new(Config::default()); // binds 127.0.0.1
//! let clock = StdClock::new();
//! let mut listener = stack.socket()?;
//! stack.bind(&mut listener, 0)?;
//! stack.listen(&mut listener)?;
//! let addr = stack.local_addr(&listener)?;
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//!
//! // Sleep until the listener has a client (or 5 s pass).
//! let deadline = clock.now() + core::time::Duration::from_secs(5);
//! stack.wait([(&listener, Interest::READABLE)], Some(deadline), &clock)?;
//! let (mut conn, peer) = nb::block!(stack.accept(&mut listener))?;
//! assert_eq!(peer, client.local_addr()?);
//!
//! // Nothing sent yet: receive does not block.
//! let mut buf = [0u8; 64];
//! assert!(matches!(stack.receive(&mut conn, &mut buf), Err(nb::Error::WouldBlock)));
//!
//! nb::block!(stack.send(&mut conn, b"hello\n"))?;
//! stack.close(conn)?; // lingering close: FIN after "hello\n"
//!
//! let mut got = String::new();
//! client.read_to_string(&mut got)?; // reads to EOF
//! assert_eq!(got, "hello\n");
//! # Ok(())
//! # }
//! ```
//!
//! A server loop then looks like this (`server` being a
//! `tcpool_core::Server` over this stack):
//!
//! ```text
//! loop {
//!     server.poll(&mut stack, clock.now());
//!     let deadline = server.poll_at();
//!     stack.wait(server.interests(), deadline, &clock)?;
//! }
//! ```
//!
//! ## How waiting works
//!
//! The server tells the stack, through `Backend::watch`, which sockets to
//! report and for what (readable, writable) under which token (the
//! listener's is the server's first token, slot `i`'s the first + 1 + `i`);
//! the stack adds, modifies or deletes that socket's level-triggered epoll
//! registration then, and at no other time. `server.interests()` is empty
//! over this stack, so `wait` sleeps in `epoll_wait` alone and keeps what
//! it finds; the next `poll` takes its own tokens (`Backend::take_ready`)
//! and services those slots, plus those with work of their own or a
//! deadline due. A poll with no wait before it (a busy loop, or a second
//! poll) checks again without sleeping, so readiness is never missed.
//! Several servers on one stack each take a token range of their own
//! (`Server::set_tokens`) and chain nothing: one `wait` serves them all.
//! Sockets given to `wait` explicitly (a client's, a listener used by hand)
//! are polled with `poll(2)` beside the epoll instance. A closed socket
//! leaves the set, and a lingering close is reported under a key of the
//! stack's own, never under the token of the slot that closed it.
//!
//! ## Not supported
//!
//! * Systems without `epoll`: readiness is reported with `epoll`, so
//!   Linux and Android only (kqueue for the BSDs and macOS is not written).
//!   Tested on Linux.
//! * `UdpFullStack` (UDP servers), and reverse DNS.
//! * Waking [`StdStack::wait`] from another thread (no wake-up pipe yet).
#![deny(unsafe_code)]

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("tcpool-std supports Linux and Android only (it reports readiness with epoll)");

mod clock;
mod config;
mod error;
mod fmt;
mod heap;
mod linger;
mod passthrough;
mod ready;
mod socket;
mod stack;
mod wait;

pub use clock::StdClock;
pub use config::Config;
pub use error::Error;
pub use heap::Heap;
pub use passthrough::UdpSocket;
pub use socket::TcpSocket;
pub use stack::StdStack;

/// Re-exported so that users need not depend on tcpool-core for the types in
/// [`StdStack::wait`]'s signature.
pub use tcpool_core::{Instant, Interest};
