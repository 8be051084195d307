//! The backend contract: what tcpool needs from a stack beyond
//! `embedded-nal`'s [`TcpFullStack`].
//!
//! `embedded-nal` has no way to reset a connection, to ask which address a
//! socket is bound to, or to sleep until a socket is ready. Every tcpool
//! backend (std, smoltcp, lwIP) implements these traits; the server uses
//! [`Backend::abort`] for [`Conn::abort`](crate::Conn::abort) and for an
//! eviction, so the peer sees a reset (RST), not an orderly end (FIN).
//!
//! A stack from another crate can be used through [`NoReset`], which
//! implements [`Backend`] with a plain close (the orphan rule keeps a user
//! from implementing these traits for a type of a third crate).

use core::net::SocketAddr;

use embedded_nal::{TcpClientStack, TcpFullStack};

use crate::interest::Interest;
use crate::time::Instant;

/// What every tcpool backend offers beyond [`TcpFullStack`].
///
/// ```
/// use tcpool_core::mock::MockStack;
/// use tcpool_core::{Backend, Config, Conn, Handler, Instant, Server};
///
/// struct Rude;
/// impl Handler for Rude {
///     type State = ();
///     fn on_open(&mut self, conn: &mut Conn<'_>) {
///         conn.abort(); // reaches `Backend::abort`: the peer sees a reset
///     }
///     fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
///         data.len()
///     }
/// }
///
/// let mut stack = MockStack::new();
/// let mut server: Server<MockStack, Rude, 2, 64, 64> = Server::new(Rude, Config::new());
/// server.listen(&mut stack, 7000).unwrap();
/// let client = stack.connect_client(7000).unwrap();
/// server.poll(&mut stack, Instant::ZERO);
/// assert!(client.was_reset());
/// ```
pub trait Backend: TcpFullStack {
    /// Closes `socket` at once and resets its connection (RST): queued
    /// output is discarded and the peer sees an error, not an end of
    /// stream. On a listener: stops listening.
    fn abort(&mut self, socket: Self::TcpSocket) -> Result<(), Self::Error>;

    /// The local address `socket` is bound to (after binding port 0, the
    /// port the stack chose), or `None` if it is not bound or the stack
    /// cannot tell.
    fn local_addr(&self, socket: &Self::TcpSocket) -> Option<SocketAddr>;

    /// Whether this backend reports which sockets became ready
    /// ([`watch`](Self::watch) and [`take_ready`](Self::take_ready)). If it
    /// does, a server's poll services only the sockets reported ready, the
    /// slots with work of their own and the slots whose deadline is due, so
    /// its cost follows the traffic, not the pool size. If not (the
    /// default), every poll tries every connection's socket.
    fn reports_ready(&self) -> bool {
        false
    }

    /// The server's interest in `socket` changed to `interest`: from now
    /// on, report `token` through [`take_ready`](Self::take_ready) whenever
    /// the socket has what `interest` asks for (or has failed, or its peer
    /// hung up), until the next `watch` of the same socket or its close.
    /// [`Interest::NONE`]: stop reporting it. A server calls this only when
    /// an interest changes, and never for a socket it has closed; closing a
    /// socket ends its watch. An error ends that connection (counted as a
    /// stack error). Only called if [`reports_ready`](Self::reports_ready).
    fn watch(
        &mut self,
        socket: &Self::TcpSocket,
        token: usize,
        interest: Interest,
    ) -> Result<(), Self::Error> {
        let _ = (socket, token, interest);
        Ok(())
    }

    /// Calls `ready` once for each token in `tokens` whose socket was found
    /// ready since the last call, and forgets them (tokens outside `tokens`
    /// belong to another server on the same stack and are kept for it). A
    /// backend must not miss readiness when the server is polled without a
    /// wait in between: it checks again here, without blocking, if needed.
    /// Reporting a token that is not ready is allowed (the server's read or
    /// write answers `WouldBlock`); leaving out one that is, is not. Only
    /// called if [`reports_ready`](Self::reports_ready).
    fn take_ready(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        let _ = (tokens, ready);
    }
}

/// A backend that can sleep until a socket is ready or a deadline passes.
///
/// This is how an nb event loop goes idle without spinning:
///
/// ```text
/// loop {
///     server.poll(&mut stack, clock.now());
///     stack.wait(server.interests(), server.poll_at(), clock.now())?;
/// }
/// ```
pub trait Wait: Backend {
    /// Blocks until one of `interests` is ready, `deadline` passes (`None`:
    /// no deadline), or the backend's own work needs a turn (a lingering
    /// close to finish). `now` is the time on the clock the server is polled
    /// with, so the backend can turn `deadline` into a timeout. Returns how
    /// many of the given sockets are ready (0 on a timeout); a spurious
    /// early return is allowed.
    fn wait<'s, I>(
        &mut self,
        interests: I,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Result<usize, Self::Error>
    where
        I: IntoIterator<Item = (&'s Self::TcpSocket, Interest)>,
        Self::TcpSocket: 's;
}

/// Any [`TcpFullStack`] as a [`Backend`], for stacks from other crates:
/// [`abort`](Backend::abort) is a plain `close` (the peer sees a FIN, not a
/// reset) and [`local_addr`](Backend::local_addr) is unknown.
///
/// ```
/// use tcpool_core::backend::NoReset;
/// use tcpool_core::mock::MockStack;
/// use tcpool_core::{Config, Conn, Handler, Server};
///
/// struct Sink;
/// impl Handler for Sink {
///     type State = ();
///     fn on_open(&mut self, _: &mut Conn<'_>) {}
///     fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
///         data.len()
///     }
/// }
/// let mut stack = NoReset(MockStack::new());
/// let mut server: Server<NoReset<MockStack>, Sink, 2, 64, 64> = Server::new(Sink, Config::new());
/// server.listen(&mut stack, 7000).unwrap();
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NoReset<S>(pub S);

impl<S: TcpClientStack> TcpClientStack for NoReset<S> {
    type TcpSocket = S::TcpSocket;
    type Error = S::Error;

    fn socket(&mut self) -> Result<Self::TcpSocket, Self::Error> {
        self.0.socket()
    }

    fn connect(
        &mut self,
        socket: &mut Self::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        self.0.connect(socket, remote)
    }

    fn send(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &[u8],
    ) -> nb::Result<usize, Self::Error> {
        self.0.send(socket, buffer)
    }

    fn receive(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        self.0.receive(socket, buffer)
    }

    fn close(&mut self, socket: Self::TcpSocket) -> Result<(), Self::Error> {
        self.0.close(socket)
    }
}

impl<S: TcpFullStack> TcpFullStack for NoReset<S> {
    fn bind(&mut self, socket: &mut Self::TcpSocket, local_port: u16) -> Result<(), Self::Error> {
        self.0.bind(socket, local_port)
    }

    fn listen(&mut self, socket: &mut Self::TcpSocket) -> Result<(), Self::Error> {
        self.0.listen(socket)
    }

    fn accept(
        &mut self,
        socket: &mut Self::TcpSocket,
    ) -> nb::Result<(Self::TcpSocket, SocketAddr), Self::Error> {
        self.0.accept(socket)
    }
}

impl<S: TcpFullStack> Backend for NoReset<S> {
    fn abort(&mut self, socket: Self::TcpSocket) -> Result<(), Self::Error> {
        self.0.close(socket)
    }

    fn local_addr(&self, _socket: &Self::TcpSocket) -> Option<SocketAddr> {
        None
    }
}

/// What a client whose SYN finds its port full experiences, on a backend
/// that emulates an accept backlog (smoltcp, embassy-net).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Overflow {
    /// The SYN is dropped silently, as by a full Linux accept queue: the
    /// client retransmits it (after 1 s, then backing off) and connects once
    /// a listening socket is armed again, unless its own connect timeout
    /// expires first. The default.
    Hold,
    /// The SYN is answered with a RST (the stack's own behaviour): the
    /// client sees *connection refused* at once.
    Refuse,
}

/// How a listener emulates an accept backlog on a stack that has none
/// (smoltcp, embassy-net: there a socket is one listener and then one
/// connection).
///
/// A listener keeps [`backlog`](Self::backlog) sockets of the backend's
/// pool listening on its port. A socket that catches a SYN leaves the
/// listening set and becomes a pending connection, and a fresh socket is
/// armed in its place (each backend says when), as long as the listener
/// holds fewer than [`max_queued`](Self::max_queued) sockets not yet
/// accepted (listening + handshaking + established) and the pool has a free
/// socket.
///
/// The port is *full* when none of its sockets is listening: the pool is
/// exhausted, or `max_queued` is reached because the application is not
/// accepting. A SYN arriving then is held or refused according to
/// [`overflow`](Self::overflow). Connections already established are never
/// touched to make room. Size the pool so that
/// `sockets >= connections + sum(max_queued) + sockets kept for outgoing
/// clients`, remembering that a closed connection keeps its socket until
/// its FIN is acknowledged.
///
/// ```
/// use tcpool_core::backend::{ListenConfig, Overflow};
///
/// let config = ListenConfig::new(0, 0).with_overflow(Overflow::Refuse);
/// let effective = config.normalized();
/// assert_eq!((effective.backlog, effective.max_queued), (1, 1));
/// assert_eq!(ListenConfig::default(), ListenConfig::new(2, 4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenConfig {
    /// Sockets kept listening on the port: how many SYNs one burst can
    /// catch at once. At least 1 (0 is treated as 1).
    pub backlog: u8,
    /// Upper bound on the sockets this listener holds before they are
    /// accepted. Never less than `backlog` (smaller values are raised).
    pub max_queued: u8,
    /// What happens to a SYN that finds no socket listening.
    pub overflow: Overflow,
}

impl ListenConfig {
    /// `backlog` listening sockets, at most `max_queued` held before
    /// accept, SYNs held when full ([`Overflow::Hold`]).
    pub const fn new(backlog: u8, max_queued: u8) -> Self {
        ListenConfig {
            backlog,
            max_queued,
            overflow: Overflow::Hold,
        }
    }

    /// The same, with `overflow` for SYNs that find the port full.
    pub const fn with_overflow(self, overflow: Overflow) -> Self {
        ListenConfig { overflow, ..self }
    }

    /// The effective values: `backlog >= 1`, `max_queued >= backlog`.
    pub const fn normalized(self) -> Self {
        let backlog = if self.backlog == 0 { 1 } else { self.backlog };
        let max_queued = if self.max_queued < backlog {
            backlog
        } else {
            self.max_queued
        };
        ListenConfig {
            backlog,
            max_queued,
            overflow: self.overflow,
        }
    }
}

impl Default for ListenConfig {
    /// Two sockets listening, up to four held before accept, SYNs held
    /// when full.
    fn default() -> Self {
        ListenConfig::new(2, 4)
    }
}
