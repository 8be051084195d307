//! [`StdStack`]: `embedded-nal` TCP over the host's sockets.

use crate::error::to_nb;
use crate::fmt::{debug, trace};
use crate::linger::{Drained, LingerSet, drain};
use crate::ready::{NOW, OWN, Poller, events_for, token_data};
use crate::socket::{State, TcpSocket, canonical, sock_addr};
use crate::{Config, Error};
use core::time::Duration;
use embedded_nal::{TcpClientStack, TcpFullStack};
use rustix::event::epoll::EventFlags;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::AtomicBool;
use tcpool_core::Interest;

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
/// * After a read that returned less than asked for (the socket is empty
///   now), the next `receive` on that socket returns `WouldBlock` without a
///   system call, once, unless readiness was checked in between; input that
///   arrives meanwhile is reported by the next wait or `take_ready`, as the
///   registrations are level-triggered.
/// * It reports readiness (`tcpool_core::Backend::reports_ready`): the
///   server registers the sockets it cares about with `watch`, and each
///   poll takes only the ready ones (see [`wait`](Self::wait) and the crate
///   docs).
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
/// the lingering sockets sit in the stack's epoll set under keys of their
/// own (a closed connection is never reported under its old token), and
/// every check of readiness ([`wait`](Self::wait), which also wakes for
/// them, and `take_ready`) drains those that have input; timeouts are also
/// applied by `socket`, `connect`, `accept` and `close`. A server that
/// calls neither `wait` nor `take_ready` can call
/// [`advance_lingering`](Self::advance_lingering) itself. Dropping the stack
/// closes the lingering sockets. A connection whose `receive` already
/// reported the end of the stream has nothing left to drain: it is closed
/// at once (gracefully: a FIN after the queued data).
pub struct StdStack {
    config: Config,
    lingering: LingerSet,
    poller: Poller,
    /// The socket a short read has just emptied (see `receive`).
    drained: Option<RawFd>,
}

impl StdStack {
    /// A stack with the given configuration.
    pub fn new(config: Config) -> Self {
        StdStack {
            config,
            lingering: LingerSet::default(),
            poller: Poller::default(),
            drained: None,
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
        self.expire_lingering();
        self.forget_socket(&socket);
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
    /// arrived on the lingering sockets that have input, closes those whose
    /// peer finished or whose linger timeout passed. [`wait`](Self::wait)
    /// and a server's poll do this on their own; call this only if you call
    /// neither. (It checks readiness, as a `wait` with no time to sleep
    /// would.)
    pub fn advance_lingering(&mut self) {
        self.expire_lingering();
        if !self.lingering.is_empty() {
            let _ = self.harvest(Some(&NOW));
        }
    }

    /// Closes the lingering sockets whose timeout has passed.
    pub(crate) fn expire_lingering(&mut self) {
        if !self.lingering.is_empty() {
            self.lingering.expire(std::time::Instant::now());
        }
    }

    /// The next linger timeout, if any socket is lingering.
    pub(crate) fn next_linger_deadline(&mut self) -> Option<std::time::Instant> {
        self.lingering.next_deadline()
    }

    /// Asks the epoll instance what is ready (sleeping up to `timeout`;
    /// `None`: no limit), drains the lingering sockets it reports, and keeps
    /// the servers' tokens for `take_ready`. Returns how many servers'
    /// sockets are ready.
    pub(crate) fn harvest(
        &mut self,
        timeout: Option<&Timespec>,
    ) -> Result<usize, rustix::io::Errno> {
        // Readiness is checked afresh: the short-read hint is stale.
        self.drained = None;
        let StdStack {
            poller, lingering, ..
        } = self;
        poller.harvest(timeout, |key| lingering.drain_ready(key))
    }

    /// The epoll instance (created on first use), to wait on beside other
    /// sockets.
    pub(crate) fn poller(&mut self) -> &mut Poller {
        &mut self.poller
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
                socket.reset_watch();
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
        self.expire_lingering();
        Ok(TcpSocket::new())
    }

    fn connect(&mut self, socket: &mut TcpSocket, remote: SocketAddr) -> nb::Result<(), Error> {
        self.expire_lingering();
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
        self.forget(sock.as_raw_fd());
        socket.reset_watch();
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
                if self.drained.is_some_and(|fd| fd == c.as_raw_fd()) {
                    self.drained = None;
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
                            self.drained = Some(c.as_raw_fd());
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
        self.expire_lingering();
        self.forget_socket(&socket);
        // Dropping a socket closes its descriptor, which also takes it out
        // of the epoll set.
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
        let key = self.lingering.push(stream, until);
        // From now on the socket is reported under the lingering entry's key,
        // never under the token a server watched it with.
        if let Err(e) = self.watch_lingering(key, &socket.watched) {
            debug!("cannot wait for a lingering close ({e}): closing at once");
            self.lingering.remove(key);
        }
        Ok(())
    }
}

/// Whether `listener` has a connection waiting (or an error to report),
/// checked with a zero-timeout `poll(2)`.
///
/// The server accepts until `accept` says `WouldBlock`, so the last call of
/// every burst finds nobody waiting (and a program that accepts by hand may
/// call it on every turn). On Linux a non-blocking `accept4` that finds the
/// queue empty still allocates a socket, an inode and a file before it
/// fails with `EAGAIN`; measured on the 2-core benchmark machine
/// (`benches/std_peers.rs`) that is about 5 µs, against 0.35 µs for this
/// check. A check that cannot be made says "yes", and `accept` decides.
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

    /// Always: readiness comes from the stack's epoll instance.
    fn reports_ready(&self) -> bool {
        true
    }

    /// Adds `socket` to the epoll set with `token` (level-triggered),
    /// changes its registration, or removes it for [`Interest::NONE`].
    /// Tokens must be below 2^63 (the stack keeps the others for itself);
    /// a socket without an OS socket yet cannot be watched.
    fn watch(&mut self, socket: &TcpSocket, token: usize, interest: Interest) -> Result<(), Error> {
        let events: Option<EventFlags> = events_for(interest);
        let Some(fd) = socket.as_fd() else {
            return match events {
                None => Ok(()),
                Some(_) => Err(socket.invalid("watch")),
            };
        };
        let data = token_data(token)?;
        self.poller.set(fd, &socket.watched, data, events)?;
        Ok(())
    }

    /// Reports the ready tokens in `tokens` from the last `epoll_wait`, or
    /// from a new one without sleeping if these tokens were already taken
    /// since then or a registration changed.
    fn take_ready(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.expire_lingering();
        if self.poller.needs_harvest(&tokens) {
            // Interrupted: once more. Another error (none is expected of a
            // valid epoll instance) leaves the tokens from the last wait.
            let mut result = self.harvest(Some(&NOW));
            if result == Err(rustix::io::Errno::INTR) {
                result = self.harvest(Some(&NOW));
            }
            if let Err(e) = result {
                debug!("epoll_wait: {e}");
            }
        }
        self.poller.take(tokens, ready);
    }
}

impl StdStack {
    /// Forgets which socket a short read emptied.
    pub(crate) fn forget_drained(&mut self) {
        self.drained = None;
    }

    /// Forgets what was known about descriptor `fd` (a new socket got it).
    fn forget(&mut self, fd: RawFd) {
        if self.drained == Some(fd) {
            self.drained = None;
        }
    }

    /// Forgets what was known about `socket`'s descriptor (it is closing).
    fn forget_socket(&mut self, socket: &TcpSocket) {
        if let Some(fd) = socket.as_fd() {
            self.forget(fd.as_raw_fd());
        }
    }

    /// Registers lingering entry `key`'s socket (in the set already if
    /// `watched`) to be reported under the key.
    fn watch_lingering(&mut self, key: usize, watched: &AtomicBool) -> io::Result<()> {
        let StdStack {
            poller, lingering, ..
        } = self;
        let Some(stream) = lingering.stream(key) else {
            return Ok(());
        };
        let key = u64::try_from(key).map_err(|_| io::Error::from(ErrorKind::OutOfMemory))?;
        poller.set(stream.as_fd(), watched, OWN | key, Some(EventFlags::IN))
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
        self.forget(sock.as_raw_fd());
        socket.reset_watch();
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
        self.expire_lingering();
        let State::Listening(listener) = &socket.state else {
            return Err(nb::Error::Other(socket.invalid("accept on")));
        };
        let (stream, peer) = accept_one(listener)?;
        // The number may have been a closed socket's: forget what was known.
        self.forget(stream.as_raw_fd());
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
