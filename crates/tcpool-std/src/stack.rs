//! [`StdStack`]: `embedded-nal` TCP over the host's sockets.

use crate::error::to_nb;
use crate::fmt::{debug, trace};
use crate::idle::IdleSet;
use crate::linger::{Drained, LingerSet, drain};
use crate::socket::{State, TcpSocket, canonical, sock_addr};
use crate::{Config, Error};
use core::time::Duration;
use embedded_nal::{TcpClientStack, TcpFullStack};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// How many times `accept` retries at once after a pending connection was
/// aborted by its client before it reached us (`ECONNABORTED`) or a signal
/// interrupted the call; these say nothing about the listener.
const ACCEPT_RETRIES: usize = 8;

/// The host's TCP/IP stack as an `embedded-nal` [`TcpFullStack`], for
/// `tcpool`'s server and for clients.
///
/// Semantics the server relies on:
///
/// * Every call returns at once. `receive` returns
///   [`nb::Error::WouldBlock`] when nothing is buffered, `Ok(0)` only at the
///   end of the stream (the peer's FIN; or for an empty `buffer`), `Ok(n)`
///   for data. `send` returns `WouldBlock` when the kernel's buffer is full.
///   `connect` starts a non-blocking connect and returns `WouldBlock` until it
///   completes (call it again, e.g. when [`wait`](Self::wait) reports the
///   socket writable).
/// * `bind(socket, port)` binds [`Config::bind_ip`] with `SO_REUSEADDR` per
///   [`Config::reuse_address`]; `listen` uses [`Config::backlog`].
/// * `accept` returns `WouldBlock` when no client is waiting, otherwise a
///   non-blocking socket with `TCP_NODELAY` and keepalive set per the config,
///   and the **peer's** address. Errors such as `EMFILE`/`ENFILE` are
///   returned (the pending client stays in the backlog; retry later).
/// * After a read that returned less than asked for, or a [`wait`](Self::wait)
///   that found a socket without input, the next `receive` (or `accept`) on
///   it returns `WouldBlock` without a system call, once: see `wait`.
/// * `close` is a lingering close: see below. [`abort`](Self::abort) resets.
/// * Errors are [`Error`]; see there for the `PipeClosed`/`Other` split.
///
/// # Lingering close
///
/// `close` on a connection shuts down the write side (the kernel sends the
/// queued data, then a FIN), and keeps the socket in an internal list where
/// incoming bytes are read and discarded until the peer's FIN or
/// [`Config::lingering_close`] passes; then the socket is closed. Without this, bytes
/// the server never read make the kernel answer with a reset, which can
/// destroy the response the client has not read yet. `close` never blocks:
/// the list is advanced by [`wait`](Self::wait) (which also wakes for it) and
/// opportunistically by `socket`, `connect`, `accept` and `close`. A server
/// that never calls `wait` can call
/// [`advance_lingering`](Self::advance_lingering) itself. Dropping the stack
/// closes the lingering sockets. A connection whose `receive` already
/// reported the end of the stream has nothing left to drain: it is closed
/// at once (gracefully: a FIN after the queued data).
pub struct StdStack {
    config: Config,
    lingering: LingerSet,
    idle: IdleSet,
}

impl StdStack {
    /// A stack with the given configuration.
    pub fn new(config: Config) -> Self {
        StdStack {
            config,
            lingering: LingerSet::default(),
            idle: IdleSet::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The local address of `socket`; after binding port 0, this tells the
    /// port the system chose.
    pub fn local_addr(&self, socket: &TcpSocket) -> Result<SocketAddr, Error> {
        socket.local_addr()
    }

    /// The peer address of a connected `socket`.
    pub fn peer_addr(&self, socket: &TcpSocket) -> Result<SocketAddr, Error> {
        socket.peer_addr()
    }

    /// Closes `socket` at once, discarding unsent data; a connection is reset
    /// (`SO_LINGER` 0, so the peer gets a RST, not a FIN). For evicting a
    /// client or dropping a misbehaving one.
    pub fn abort(&mut self, socket: TcpSocket) -> Result<(), Error> {
        self.lingering.tick();
        match &socket.state {
            State::Connected(c) => SockRef::from(c).set_linger(Some(Duration::ZERO))?,
            State::Connecting(s, _) => s.set_linger(Some(Duration::ZERO))?,
            State::Unbound | State::Bound(_) | State::Listening(_) => {}
        }
        drop(socket);
        Ok(())
    }

    /// How many closed connections are still lingering (draining the peer's
    /// input before the socket is closed).
    pub fn lingering(&self) -> usize {
        self.lingering.len()
    }

    /// Advances lingering closes now, without waiting: reads what has
    /// arrived on every lingering socket, closes those whose peer finished
    /// or whose linger timeout passed. [`wait`](Self::wait) does this on its
    /// own; call this only if you never call `wait`.
    pub fn advance_lingering(&mut self) {
        self.lingering.sweep(std::time::Instant::now());
    }

    pub(crate) fn lingering_set(&mut self) -> &mut LingerSet {
        &mut self.lingering
    }

    pub(crate) fn idle_set(&mut self) -> &mut IdleSet {
        &mut self.idle
    }

    /// Sets the options the config asks for on a connection (the caller
    /// makes it non-blocking). Keepalive is only ever switched on: it is off
    /// on a new socket, and an accepted one inherits it from the listener,
    /// where `bind` leaves it off (one system call less per connection).
    fn configure_connection(&self, sock: SockRef<'_>) -> io::Result<()> {
        sock.set_tcp_nodelay(self.config.nodelay)?;
        if let Some(idle) = self.config.keepalive {
            sock.set_keepalive(true)?;
            sock.set_tcp_keepalive(&keepalive_params(idle))?;
        }
        Ok(())
    }

    /// Checks on a connect in progress: `Ok(Some)` once established,
    /// `Ok(None)` while in progress.
    fn finish_connect(sock: &Socket) -> io::Result<bool> {
        if let Some(e) = sock.take_error()? {
            return Err(e);
        }
        match sock.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes progress on a `Connecting` socket; after `Ok(())` the socket is
    /// `Connected`.
    fn advance_connect(socket: &mut TcpSocket) -> nb::Result<(), Error> {
        let State::Connecting(sock, _) = &socket.state else {
            return Ok(());
        };
        match Self::finish_connect(sock) {
            Ok(true) => {}
            Ok(false) => return Err(nb::Error::WouldBlock),
            Err(e) => {
                // The attempt is over; the socket can be connected afresh.
                socket.state = State::Unbound;
                return Err(nb::Error::Other(e.into()));
            }
        }
        let State::Connecting(sock, remote) = core::mem::replace(&mut socket.state, State::Unbound)
        else {
            unreachable!("matched above")
        };
        trace!("connected to {remote}");
        socket.state = State::Connected(sock.into());
        Ok(())
    }
}

/// The keepalive parameters for an idle time (see [`Config::keepalive`]).
fn keepalive_params(idle: Duration) -> TcpKeepalive {
    let params = TcpKeepalive::new().with_time(idle);
    // The platforms on which socket2 can set the probe interval.
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
    ))]
    let params = params.with_interval(idle);
    params
}

impl Default for StdStack {
    fn default() -> Self {
        StdStack::new(Config::default())
    }
}

impl core::fmt::Debug for StdStack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StdStack")
            .field("config", &self.config)
            .field("lingering", &self.lingering.len())
            .finish()
    }
}

impl TcpClientStack for StdStack {
    type TcpSocket = TcpSocket;
    type Error = Error;

    fn socket(&mut self) -> Result<TcpSocket, Error> {
        self.lingering.tick();
        Ok(TcpSocket::new())
    }

    fn connect(&mut self, socket: &mut TcpSocket, remote: SocketAddr) -> nb::Result<(), Error> {
        self.lingering.tick();
        match &socket.state {
            State::Unbound => {}
            State::Connecting(_, to) if *to == remote => return Self::advance_connect(socket),
            State::Connected(c) if c.peer_addr().map(canonical).ok() == Some(canonical(remote)) => {
                return Ok(());
            }
            _ => return Err(nb::Error::Other(socket.invalid("connect"))),
        }
        let sock = Socket::new(
            Domain::for_address(remote),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(Error::from)?;
        // The number may have been a closed socket's: forget what was known.
        self.idle.take(sock.as_raw_fd());
        sock.set_nonblocking(true).map_err(Error::from)?;
        self.configure_connection(SockRef::from(&sock))
            .map_err(Error::from)?;
        match sock.connect(&remote.into()) {
            Ok(()) => {
                socket.state = State::Connected(sock.into());
                Ok(())
            }
            Err(e) if in_progress(&e) => {
                socket.state = State::Connecting(sock, remote);
                Err(nb::Error::WouldBlock)
            }
            Err(e) => Err(nb::Error::Other(e.into())),
        }
    }

    fn send(&mut self, socket: &mut TcpSocket, buffer: &[u8]) -> nb::Result<usize, Error> {
        Self::advance_connect(socket)?;
        match &socket.state {
            State::Connected(c) => (&mut &*c).write(buffer).map_err(to_nb),
            _ => Err(nb::Error::Other(socket.invalid("send on"))),
        }
    }

    fn receive(&mut self, socket: &mut TcpSocket, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        Self::advance_connect(socket)?;
        match &socket.state {
            State::Connected(c) => {
                if self.idle.take(c.as_raw_fd()) {
                    return Err(nb::Error::WouldBlock);
                }
                match (&mut &*c).read(buffer) {
                    Ok(0) if !buffer.is_empty() => {
                        socket.peer_finished = true;
                        Ok(0)
                    }
                    Ok(n) => {
                        // Less than asked for: the socket is empty now.
                        if n < buffer.len() {
                            self.idle.insert(c.as_raw_fd());
                        }
                        Ok(n)
                    }
                    Err(e) => Err(to_nb(e)),
                }
            }
            _ => Err(nb::Error::Other(socket.invalid("receive on"))),
        }
    }

    fn close(&mut self, socket: TcpSocket) -> Result<(), Error> {
        self.lingering.tick();
        let State::Connected(stream) = socket.state else {
            // Listeners, connects in progress, unbound sockets: nothing to
            // deliver, close at once.
            return Ok(());
        };
        let Some(linger) = self.config.lingering_close.filter(|d| !d.is_zero()) else {
            return Ok(());
        };
        if socket.peer_finished {
            // Everything the peer sent has been read, up to its FIN, so no
            // unread input can turn the close into a reset: a plain close(2)
            // is graceful (the kernel sends what is queued, then a FIN), and
            // it saves the shutdown and the drain.
            return Ok(());
        }
        if stream.shutdown(Shutdown::Write).is_err() {
            // Not connected any more (reset by the peer): nothing to protect.
            return Ok(());
        }
        if drain(&stream) == Drained::Finished {
            // The peer had finished too: a normal close, the kernel still
            // sends what is queued.
            return Ok(());
        }
        let until = std::time::Instant::now() + linger;
        trace!("lingering close of {:?} for {:?}", stream, linger);
        self.lingering.push(stream, until);
        Ok(())
    }
}

/// Whether `listener` has a connection waiting (or an error to report),
/// checked with a zero-timeout `poll(2)`.
///
/// The server calls `accept` on every poll while it has room, and most of
/// those calls find nobody waiting. On Linux a non-blocking `accept4` that
/// finds the queue empty still allocates a socket, an inode and a file
/// before it fails with `EAGAIN`; measured on the 2-core benchmark machine
/// (`benches/std_peers.rs`) that is about 5 µs, against 0.35 µs for this
/// check, and it was one such call per event-loop turn. A check that cannot
/// be made says "yes", and `accept` decides.
fn has_pending(listener: &TcpListener) -> bool {
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    !matches!(poll(&mut fds, Some(&zero)), Ok(0))
}

/// True for the error of a non-blocking connect that has started.
fn in_progress(e: &io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
        || rustix::io::Errno::from_io_error(e) == Some(rustix::io::Errno::INPROGRESS)
}

impl tcpool_core::Backend for StdStack {
    /// [`StdStack::abort`]: `SO_LINGER` 0, so the peer gets a reset.
    fn abort(&mut self, socket: TcpSocket) -> Result<(), Error> {
        StdStack::abort(self, socket)
    }

    fn local_addr(&self, socket: &TcpSocket) -> Option<SocketAddr> {
        socket.local_addr().ok()
    }
}

impl TcpFullStack for StdStack {
    fn bind(&mut self, socket: &mut TcpSocket, local_port: u16) -> Result<(), Error> {
        if !matches!(socket.state, State::Unbound) {
            return Err(socket.invalid("bind"));
        }
        let addr = SocketAddr::new(self.config.bind_ip, local_port);
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(self.config.reuse_address)?;
        if addr.is_ipv6() {
            sock.set_only_v6(self.config.ipv6_only)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        debug!("bound {}", sock_addr(sock.local_addr()?)?);
        socket.state = State::Bound(sock);
        Ok(())
    }

    fn listen(&mut self, socket: &mut TcpSocket) -> Result<(), Error> {
        let State::Bound(sock) = &socket.state else {
            return Err(socket.invalid("listen on"));
        };
        let backlog = i32::try_from(self.config.backlog).unwrap_or(i32::MAX);
        sock.listen(backlog)?;
        let State::Bound(sock) = core::mem::replace(&mut socket.state, State::Unbound) else {
            unreachable!("matched above")
        };
        socket.state = State::Listening(sock.into());
        Ok(())
    }

    fn accept(&mut self, socket: &mut TcpSocket) -> nb::Result<(TcpSocket, SocketAddr), Error> {
        self.lingering.tick();
        let State::Listening(listener) = &socket.state else {
            return Err(nb::Error::Other(socket.invalid("accept on")));
        };
        if self.idle.take(listener.as_raw_fd()) {
            return Err(nb::Error::WouldBlock);
        }
        let (stream, peer) = accept_one(listener)?;
        // The number may have been a closed socket's: forget what was known.
        self.idle.take(stream.as_raw_fd());
        // std's accept leaves the new socket blocking (Linux does not inherit
        // O_NONBLOCK from the listener): make it non-blocking before anyone
        // can receive on it. (std's call is one ioctl(FIONBIO) on Linux,
        // socket2's two fcntl calls.)
        stream.set_nonblocking(true).map_err(Error::from)?;
        self.configure_connection(SockRef::from(&stream))
            .map_err(Error::from)?;
        let peer = canonical(peer);
        trace!("accepted {peer}");
        Ok((TcpSocket::connected(stream), peer))
    }
}

/// Accepts one pending connection, retrying at once after errors that
/// concern only that connection.
fn accept_one(listener: &TcpListener) -> nb::Result<(TcpStream, SocketAddr), Error> {
    if !has_pending(listener) {
        return Err(nb::Error::WouldBlock);
    }
    for _ in 0..ACCEPT_RETRIES {
        match listener.accept() {
            Ok(accepted) => return Ok(accepted),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::Interrupted
                ) =>
            {
                trace!("accept: {e}, retrying");
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(nb::Error::WouldBlock),
            Err(e) => return Err(nb::Error::Other(e.into())),
        }
    }
    Err(nb::Error::WouldBlock)
}
