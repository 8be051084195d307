//! [`LwipStack`]: `embedded_nal::TcpClientStack + TcpFullStack` over lwIP's
//! BSD socket API.

use core::ffi::c_int;
use core::net::SocketAddr;
use core::time::Duration;

use embedded_nal::{TcpClientStack, TcpFullStack};
use tcpool_core::Interest;

use crate::config::Config;
use crate::error::{Errno, Error};
use crate::ffi::{self, Fd};
use crate::fmt::{debug, trace, warning};
use crate::socket::{Socket, SocketState};
use crate::sys::{self, FdSet};
use crate::wait::{Selected, Waiter};
use crate::watch::Watches;

/// How many closed connections can be in a lingering close at once; beyond
/// that `close` closes at once.
pub const LINGER_SLOTS: usize = 4;

/// Most bytes read and discarded from one lingering socket per visit.
const LINGER_DRAIN_BUDGET: usize = 2048;

/// A closed connection still draining input (see
/// [`Config::lingering_close`]).
#[derive(Debug)]
struct Lingering {
    fd: Fd,
    /// `ffi::now_ms()` time after which it is closed regardless.
    deadline: u32,
}

/// lwIP's BSD socket API as an `embedded-nal` stack.
///
/// The stack holds no lwIP resources of its own apart from sockets in a
/// lingering close; it counts the sockets it hands out against
/// [`Config::socket_budget`]. Every socket it creates or accepts is set
/// non-blocking, so no call ever blocks:
///
/// - `receive` returns `WouldBlock` when nothing is buffered and `Ok(0)`
///   only at end of stream. lwIP reports end of stream once (`recv` returns
///   0) and then fails further reads with `ENOTCONN`; both are `Ok(0)`. A
///   reset is [`Error::ConnectionLost`] (`PipeClosed`), reported on every
///   call from then on.
/// - `accept` returns `WouldBlock` when no connection is pending, and the
///   peer's address otherwise. When the budget is used up it returns
///   [`Error::OutOfSockets`] without calling lwIP, so the pending client
///   stays in the backlog; when lwIP's own table is full (sockets held
///   elsewhere in the firmware) lwIP fails with `ENFILE` and resets that
///   client, also reported as `OutOfSockets`.
/// - `close` is graceful: queued output is sent, then FIN. See
///   [`Config::lingering_close`].
///
/// lwIP must be running before the first call (see the crate docs).
///
/// # Readiness
///
/// The stack reports readiness to a tcpool `Server`
/// ([`Backend::reports_ready`](tcpool_core::Backend::reports_ready) is
/// always true): the server tells it which sockets to watch and for what,
/// the stack keeps that in fixed memory (`fd_set`s and a token per
/// descriptor), and each server poll services only the sockets found
/// ready instead of trying `receive` on every connection. What is ready is
/// what the last `lwip_select` found: the one [`wait`](Self::wait) makes
/// (on the watched sockets as well as the given ones), or, when the server
/// is polled without a wait since its last poll or a watch changed since,
/// a select that does not block, made when the server asks. lwIP's select
/// is level-triggered, so a socket the server did not drain is found again.
/// `Server::interests` is empty on this stack: a loop waits with
/// `stack.wait(server.interests(), timeout)` as before, and the stack adds
/// what the server watches. Closing a socket through the stack ends its
/// watch; a socket dropped instead is forgotten at the next select.
#[derive(Debug)]
pub struct LwipStack {
    config: Config,
    in_use: usize,
    lingering: [Option<Lingering>; LINGER_SLOTS],
    watches: Watches,
}

impl LwipStack {
    /// A stack with `config`. `const`, so it can live in a `static`.
    pub const fn new(config: Config) -> LwipStack {
        LwipStack {
            config,
            in_use: 0,
            lingering: [const { None }; LINGER_SLOTS],
            watches: Watches::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the socket budget (see [`Config::socket_budget`]): for when
    /// another part of the firmware takes lwIP sockets for a while, or gives
    /// them back. Lowering it below [`sockets_in_use`](Self::sockets_in_use)
    /// closes nothing; new sockets and accepts are refused with
    /// [`Error::OutOfSockets`] until enough are closed.
    ///
    /// ```
    /// use tcpool_lwip::{Config, LwipStack, SocketBudget};
    ///
    /// let mut stack = LwipStack::new(Config::new(SocketBudget::new(10)));
    /// // An OTA update is about to open two sockets of its own.
    /// stack.set_socket_budget(stack.config().socket_budget - 2);
    /// assert_eq!(stack.config().socket_budget, 8);
    /// ```
    pub fn set_socket_budget(&mut self, sockets: usize) {
        debug!(
            "lwip socket budget: {} -> {}",
            self.config.socket_budget, sockets
        );
        self.config.socket_budget = sockets;
    }

    /// Sockets counted against the budget: open sockets handed out (and not
    /// yet closed) plus sockets in a lingering close.
    pub fn sockets_in_use(&self) -> usize {
        self.in_use
    }

    /// Sockets in a lingering close.
    pub fn lingering(&self) -> usize {
        self.lingering.iter().flatten().count()
    }

    /// Closes the connection abortively: the peer gets a reset (RST), and
    /// whatever is queued in either direction is discarded.
    ///
    /// lwIP's socket API cannot do this on its own: with `SO_LINGER` 0 its
    /// close resets only while output is unsent or unacknowledged, and
    /// otherwise sends a FIN, which the peer would read as a normal end of
    /// stream. So for a connected socket the reset goes through lwIP's raw
    /// API (`tcp_abort` on the socket's PCB, run on the tcpip thread with
    /// `tcpip_api_call`), then the socket is closed. Should that not be
    /// possible (the socket is not connected, lwIP already reset it, or lwIP
    /// is out of memory for the call), it falls back to `SO_LINGER` 0 and
    /// close, which resets only with data in flight (and needs
    /// `LWIP_SO_LINGER`; ESP-IDF: `CONFIG_LWIP_SO_LINGER`).
    pub fn abort(&mut self, mut socket: Socket) -> Result<(), Error> {
        self.release();
        let connected = socket.state() == SocketState::Connected;
        let Some(fd) = socket.take_fd() else {
            return Ok(());
        };
        self.watches.remove(fd.raw());
        if connected && ffi::reset(&fd) {
            trace!("lwip socket {}: reset", fd.raw());
        } else {
            if let Err(e) = ffi::set_linger(&fd, true, 0) {
                debug!(
                    "lwip socket {}: SO_LINGER unavailable ({}), plain close",
                    fd.raw(),
                    e
                );
            }
            trace!("lwip socket {}: abort", fd.raw());
        }
        fd.close().map_err(Error::from)
    }

    /// Waits until one of `interests` or of the sockets a server watches
    /// (see [Readiness](#readiness)) is ready, a socket in a lingering
    /// close needs attention, or `timeout` passes (`None`: no limit), using
    /// one `lwip_select`. Returns how many of those sockets are ready (0 on
    /// timeout), and keeps which watched ones are for the next
    /// [`take_ready`](tcpool_core::Backend::take_ready). Also advances
    /// lingering closes.
    ///
    /// This is [`wait`](crate::wait) plus the stack's watched and
    /// lingering sockets; a server on this stack lists no interests of its
    /// own (`Server::interests` is empty), so wait with this one.
    pub fn wait<'s, I>(&mut self, interests: I, timeout: Option<Duration>) -> Result<usize, Error>
    where
        I: IntoIterator<Item = (&'s Socket, Interest)>,
    {
        let mut waiter = Waiter::new(interests);
        let mut timeout = timeout;
        let now = ffi::now_ms();
        for l in self.lingering.iter().flatten() {
            waiter.add_internal(&l.fd);
            let left = Duration::from_millis(u64::from(l.deadline.wrapping_sub(now)));
            let left = if deadline_passed(l.deadline, now) {
                Duration::ZERO
            } else {
                left
            };
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        let selected = self.select_watched(waiter, timeout)?;
        let mut ready = self.record_watched(&selected);
        ready.union_with(&selected.ready_mine);
        self.poll_lingering();
        Ok(ready.count_common(&ready))
    }

    /// Selects on what `waiter` holds plus every watched socket. A watched
    /// descriptor closed behind the stack's back (its socket dropped instead
    /// of closed) fails the select with `EBADF`: such watches are forgotten
    /// and the select made again.
    fn select_watched(
        &mut self,
        waiter: Waiter,
        timeout: Option<Duration>,
    ) -> Result<Selected, Error> {
        let mut with_watches = waiter.clone();
        with_watches.add_watched(&self.watches);
        match with_watches.select(timeout) {
            Err(Error::Lwip(e)) if e == Errno(sys::EBADF) && !self.watches.is_empty() => {
                let all = self.watches.all();
                self.forget_closed_watches(&all);
                let mut with_watches = waiter;
                with_watches.add_watched(&self.watches);
                with_watches.select(timeout)
            }
            result => result,
        }
    }

    /// Ends the watches of descriptors lwIP no longer knows, among `fds`.
    fn forget_closed_watches(&mut self, fds: &FdSet) {
        for fd in fds.iter() {
            if !ffi::is_open(fd) {
                warning!("lwip socket {}: watched but closed, watch dropped", fd);
                self.watches.remove(fd);
            }
        }
    }

    /// Records what a select of the watched sockets found. A watched
    /// descriptor closed behind the stack's back may be found "ready" (lwIP
    /// reports the state its socket was left in): each one found is checked
    /// (one `fcntl`) and forgotten if closed. Returns the watched
    /// descriptors found ready.
    fn record_watched(&mut self, selected: &Selected) -> FdSet {
        let found = self
            .watches
            .record(&selected.read, &selected.write, &selected.except);
        self.forget_closed_watches(&found);
        found.intersection(&self.watches.all())
    }

    /// Watches `socket` for `interest`, reported as `token` (see
    /// [Readiness](#readiness)); [`Interest::NONE`] ends the watch.
    fn set_watch(
        &mut self,
        socket: &Socket,
        token: usize,
        interest: Interest,
    ) -> Result<(), Error> {
        let Some(fd) = socket.raw_fd() else {
            if interest.is_none() {
                return Ok(());
            }
            return Err(Error::InvalidState("watch on a socket not opened"));
        };
        let listening = socket.state() == SocketState::Listening;
        if self.watches.set(fd, token, interest, listening) {
            Ok(())
        } else {
            Err(Error::Lwip(Errno(sys::EBADF)))
        }
    }

    /// Reports the watched sockets found ready: by the last
    /// [`wait`](Self::wait) if there was one since the last take and no
    /// watch changed since, otherwise by a select that does not block.
    fn take_watched(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        if self.watches.is_empty() {
            return;
        }
        if !self.watches.fresh() {
            match self.select_watched(Waiter::empty(), Some(Duration::ZERO)) {
                Ok(selected) => {
                    self.record_watched(&selected);
                }
                Err(e) => {
                    // Nothing can be told: report every watched socket,
                    // whose own calls then say what is wrong.
                    warning!("lwip_select for readiness failed: {}", e);
                    let all = self.watches.all();
                    self.watches.record(&all, &all, &all);
                }
            }
        }
        self.watches.take(tokens, ready);
    }

    /// Advances lingering closes: reads and discards what has arrived, and
    /// closes sockets whose peer has closed, that failed, or whose time is
    /// up. Called by `socket`, `accept`, `close` and [`LwipStack::wait`].
    pub fn poll_lingering(&mut self) {
        let now = ffi::now_ms();
        for slot in self.lingering.iter_mut() {
            let Some(l) = slot else { continue };
            let done = drain(&l.fd) || deadline_passed(l.deadline, now);
            if done {
                let Some(l) = slot.take() else { continue };
                trace!("lwip socket {}: lingering close done", l.fd.raw());
                let _ = l.fd.close();
                self.in_use = self.in_use.saturating_sub(1);
            }
        }
    }

    /// Takes one unit of the budget, ending the oldest lingering close if
    /// that is what it takes.
    fn reserve(&mut self) -> Result<(), Error> {
        if self.in_use >= self.config.socket_budget {
            self.poll_lingering();
        }
        if self.in_use >= self.config.socket_budget {
            let now = ffi::now_ms();
            let oldest = self
                .lingering
                .iter_mut()
                .filter(|l| l.is_some())
                .min_by_key(|l| l.as_ref().map(|l| l.deadline.wrapping_sub(now)));
            if let Some(l) = oldest.and_then(Option::take) {
                debug!(
                    "lwip socket {}: lingering close cut short for budget",
                    l.fd.raw()
                );
                let _ = l.fd.close();
                self.in_use = self.in_use.saturating_sub(1);
            }
        }
        if self.in_use >= self.config.socket_budget {
            return Err(Error::OutOfSockets { errno: None });
        }
        self.in_use += 1;
        Ok(())
    }

    /// Parks a closed connection in a lingering slot; hands it back if
    /// there is none free.
    fn linger(&mut self, fd: Fd, linger: Duration) -> Result<(), Fd> {
        let Some(slot) = self.lingering.iter_mut().find(|l| l.is_none()) else {
            warning!("lwip socket {}: no lingering slot free, closing", fd.raw());
            return Err(fd);
        };
        let ms = u32::try_from(linger.as_millis()).unwrap_or(u32::MAX);
        let deadline = ffi::now_ms().wrapping_add(ms.min(u32::MAX / 4));
        trace!("lwip socket {}: lingering close", fd.raw());
        *slot = Some(Lingering { fd, deadline });
        Ok(())
    }

    fn release(&mut self) {
        self.in_use = self.in_use.saturating_sub(1);
    }

    /// Options for a connection (accepted or connecting). Failures are
    /// logged, not fatal: an lwIP build without keepalive still serves.
    fn configure_connection(&self, fd: &Fd) {
        let nodelay = match self.config.nodelay {
            true => ffi::set_int_option(fd, sys::IPPROTO_TCP, sys::TCP_NODELAY, 1),
            false => Ok(()),
        };
        if let Err(e) = nodelay {
            debug!("lwip socket {}: TCP_NODELAY: {}", fd.raw(), e);
        }
        if let Some(k) = self.config.keepalive {
            let secs = |d: Duration| c_int::try_from(d.as_secs().max(1)).unwrap_or(c_int::MAX);
            let count = c_int::try_from(k.count).unwrap_or(c_int::MAX);
            let results = [
                ffi::set_int_option(fd, sys::SOL_SOCKET, sys::SO_KEEPALIVE, 1),
                ffi::set_int_option(fd, sys::IPPROTO_TCP, sys::TCP_KEEPIDLE, secs(k.idle)),
                ffi::set_int_option(fd, sys::IPPROTO_TCP, sys::TCP_KEEPINTVL, secs(k.interval)),
                ffi::set_int_option(fd, sys::IPPROTO_TCP, sys::TCP_KEEPCNT, count),
            ];
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                debug!("lwip socket {}: keepalive: {}", fd.raw(), e);
            }
        }
    }

    /// A new non-blocking lwIP socket for `family`.
    fn open(family: c_int) -> Result<Fd, Error> {
        let fd = ffi::socket(family)?;
        ffi::set_nonblocking(&fd)?;
        Ok(fd)
    }

    /// Completes a connect in progress: ready once lwIP reports the socket
    /// writable (connected) or in error, then `SO_ERROR` tells which.
    fn finish_connect(socket: &mut Socket) -> nb::Result<(), Error> {
        let Some(fd) = socket.fd() else {
            return Err(nb::Error::Other(Error::InvalidState("socket not opened")));
        };
        if !crate::wait::is_ready_now(fd, Interest::WRITABLE)? {
            return Err(nb::Error::WouldBlock);
        }
        let pending = ffi::int_option(fd, sys::SOL_SOCKET, sys::SO_ERROR).map_err(Error::from)?;
        if pending == 0 {
            socket.set_state(SocketState::Connected);
            Ok(())
        } else {
            Err(nb::Error::Other(socket.fail(Errno(pending))))
        }
    }
}

impl Default for LwipStack {
    fn default() -> LwipStack {
        LwipStack::new(Config::default())
    }
}

/// Reads and discards what a lingering socket has buffered. True when the
/// socket is finished with: end of stream, error, or more input than a
/// lingering close is worth.
fn drain(fd: &Fd) -> bool {
    let mut scratch = [0u8; 256];
    let mut total = 0;
    loop {
        match ffi::recv(fd, &mut scratch) {
            Ok(0) => return true,
            Ok(n) => {
                total += n;
                if total >= LINGER_DRAIN_BUDGET {
                    return false;
                }
            }
            Err(e) if e.is_would_block() => return false,
            Err(_) => return true,
        }
    }
}

/// Whether the wrapping millisecond time `now` is at or past `deadline`.
fn deadline_passed(deadline: u32, now: u32) -> bool {
    // Deadlines are at most ~49 days ahead, so half the clock's range tells
    // "past" from "future".
    now.wrapping_sub(deadline) < u32::MAX / 2
}

impl TcpClientStack for LwipStack {
    type TcpSocket = Socket;
    type Error = Error;

    /// A socket counted against the budget; the lwIP socket itself is
    /// created by `connect` or `bind`.
    fn socket(&mut self) -> Result<Socket, Error> {
        self.poll_lingering();
        self.reserve()?;
        Ok(Socket::unopened())
    }

    fn connect(&mut self, socket: &mut Socket, remote: SocketAddr) -> nb::Result<(), Error> {
        match socket.state() {
            SocketState::Unopened => {
                let fd = Self::open(sys::family(remote.ip()))?;
                self.configure_connection(&fd);
                let (addr, len) = sys::to_sockaddr(remote);
                let started = ffi::connect(&fd, &addr, len);
                socket.set_fd(fd);
                socket.set_peer(remote);
                match started {
                    Ok(()) => {
                        socket.set_state(SocketState::Connected);
                        Ok(())
                    }
                    Err(e) if e == Errno::EINPROGRESS || e.is_would_block() => {
                        socket.note(e);
                        socket.set_state(SocketState::Connecting);
                        Err(nb::Error::WouldBlock)
                    }
                    Err(e) => Err(nb::Error::Other(socket.fail(e))),
                }
            }
            SocketState::Connecting => Self::finish_connect(socket),
            SocketState::Connected if socket.peer_addr() == Some(remote) => Ok(()),
            SocketState::Failed => Err(nb::Error::Other(socket.failure())),
            _ => Err(nb::Error::Other(Error::InvalidState(
                "connect on a socket that is bound, listening or connected elsewhere",
            ))),
        }
    }

    fn send(&mut self, socket: &mut Socket, buffer: &[u8]) -> nb::Result<usize, Error> {
        let fd = connected_fd(socket, "send on an unconnected socket")?;
        if buffer.is_empty() {
            return Ok(0);
        }
        match ffi::send(fd, buffer) {
            Ok(n) => Ok(n),
            Err(e) if e.is_would_block() => Err(nb::Error::WouldBlock),
            // Not `fail`: input lwIP buffered before the reset is still
            // there to be received.
            Err(e) => Err(nb::Error::Other(Error::from_errno(socket.note(e)))),
        }
    }

    /// `Ok(0)` only at end of stream (or for an empty `buffer`, as in std).
    fn receive(&mut self, socket: &mut Socket, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        let fd = connected_fd(socket, "receive on an unconnected socket")?;
        if buffer.is_empty() {
            return Ok(0);
        }
        match ffi::recv(fd, buffer) {
            Ok(n) => Ok(n),
            Err(e) if e.is_would_block() => Err(nb::Error::WouldBlock),
            // lwIP reports end of stream once (0) and then ENOTCONN: the
            // receive mailbox is gone, nothing buffered can be lost.
            Err(e) if e == Errno::ENOTCONN => {
                socket.note(e);
                Ok(0)
            }
            Err(e) => Err(nb::Error::Other(socket.fail(e))),
        }
    }

    /// Graceful close; see [`Config::lingering_close`].
    fn close(&mut self, mut socket: Socket) -> Result<(), Error> {
        self.poll_lingering();
        let connected = socket.state() == SocketState::Connected;
        let Some(fd) = socket.take_fd() else {
            self.release();
            return Ok(());
        };
        self.watches.remove(fd.raw());
        if connected {
            // FIN after whatever is queued. After this lwIP no longer resets
            // the connection for input left unread at close (it only does so
            // from ESTABLISHED and CLOSE_WAIT), but it still resets when input
            // arrives after the close: hence the lingering close.
            if let Err(e) = ffi::shutdown_write(&fd) {
                trace!("lwip socket {}: shutdown: {}", fd.raw(), e);
            }
            // The peer may still be sending: linger, unless it has closed
            // already (or there is no slot left).
            let fd = match self.config.lingering_close {
                Some(linger) if !drain(&fd) => match self.linger(fd, linger) {
                    Ok(()) => return Ok(()),
                    Err(fd) => fd,
                },
                _ => fd,
            };
            self.release();
            trace!("lwip socket {}: close", fd.raw());
            return fd.close().map_err(Error::from);
        }
        self.release();
        trace!("lwip socket {}: close", fd.raw());
        fd.close().map_err(Error::from)
    }
}

impl tcpool_core::Backend for LwipStack {
    /// [`LwipStack::abort`]: a reset through lwIP's raw API, then close.
    fn abort(&mut self, socket: Socket) -> Result<(), Error> {
        LwipStack::abort(self, socket)
    }

    fn local_addr(&self, socket: &Socket) -> Option<core::net::SocketAddr> {
        socket.local_addr().ok()
    }

    /// Always: the stack selects on the watched sockets (in
    /// [`LwipStack::wait`], or without blocking at a take), so a server
    /// reads only from the sockets found ready.
    fn reports_ready(&self) -> bool {
        true
    }

    /// Keeps the watch in the stack (`fd_set`s and a token per
    /// descriptor). [`Error::InvalidState`] for a socket without an lwIP
    /// socket yet.
    fn watch(&mut self, socket: &Socket, token: usize, interest: Interest) -> Result<(), Error> {
        self.set_watch(socket, token, interest)
    }

    fn take_ready(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.take_watched(tokens, ready);
    }
}

impl tcpool_core::Wait for LwipStack {
    /// [`LwipStack::wait`] with the time left until `deadline`.
    fn wait<'s, I>(
        &mut self,
        interests: I,
        deadline: Option<tcpool_core::Instant>,
        now: tcpool_core::Instant,
    ) -> Result<usize, Error>
    where
        I: IntoIterator<Item = (&'s Socket, Interest)>,
    {
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        LwipStack::wait(self, interests, timeout)
    }
}

impl TcpFullStack for LwipStack {
    /// Creates the lwIP socket (family of [`Config::bind_ip`]), sets
    /// `SO_REUSEADDR` if configured, and binds it.
    fn bind(&mut self, socket: &mut Socket, local_port: u16) -> Result<(), Error> {
        if socket.state() != SocketState::Unopened {
            return Err(Error::InvalidState("bind on a socket already in use"));
        }
        let ip = self.config.bind_ip;
        let fd = Self::open(sys::family(ip))?;
        let reuse = match self.config.reuse_address {
            true => ffi::set_int_option(&fd, sys::SOL_SOCKET, sys::SO_REUSEADDR, 1),
            false => Ok(()),
        };
        if let Err(e) = reuse {
            debug!("lwip socket {}: SO_REUSEADDR: {}", fd.raw(), e);
        }
        let (addr, len) = sys::to_sockaddr(SocketAddr::new(ip, local_port));
        ffi::bind(&fd, &addr, len).map_err(|e| Error::from_errno(socket.note(e)))?;
        socket.set_fd(fd);
        socket.set_state(SocketState::Bound);
        Ok(())
    }

    fn listen(&mut self, socket: &mut Socket) -> Result<(), Error> {
        if socket.state() != SocketState::Bound {
            return Err(Error::InvalidState("listen on a socket that is not bound"));
        }
        let Some(fd) = socket.fd() else {
            return Err(Error::InvalidState("socket not opened"));
        };
        ffi::listen(fd, self.config.backlog).map_err(|e| Error::from_errno(socket.note(e)))?;
        socket.set_state(SocketState::Listening);
        Ok(())
    }

    /// The next pending connection, set non-blocking (lwIP's accepted
    /// sockets do not inherit `O_NONBLOCK`) and configured.
    fn accept(&mut self, socket: &mut Socket) -> nb::Result<(Socket, SocketAddr), Error> {
        if socket.state() != SocketState::Listening {
            return Err(nb::Error::Other(Error::InvalidState(
                "accept on a socket that is not listening",
            )));
        }
        self.poll_lingering();
        self.reserve()?;
        let Some(listener) = socket.fd() else {
            self.release();
            return Err(nb::Error::Other(Error::InvalidState("socket not opened")));
        };
        let (fd, addr) = match ffi::accept(listener) {
            Ok(accepted) => accepted,
            Err(e) => {
                self.release();
                if e.is_would_block() {
                    return Err(nb::Error::WouldBlock);
                }
                socket.note(e);
                // ECONNABORTED: lwIP could not allocate what the pending
                // connection needed and dropped it; like ENFILE, a resource
                // shortage to retry later.
                let err = if e == Errno::ECONNABORTED {
                    Error::OutOfSockets { errno: Some(e) }
                } else {
                    Error::from_errno(e)
                };
                debug!("lwip accept: {}", err);
                return Err(nb::Error::Other(err));
            }
        };
        if let Err(e) = ffi::set_nonblocking(&fd) {
            self.release();
            return Err(nb::Error::Other(Error::from_errno(e)));
        }
        self.configure_connection(&fd);
        let Some(peer) = sys::from_sockaddr(&addr) else {
            self.release();
            return Err(nb::Error::Other(Error::InvalidState(
                "peer of unknown address family",
            )));
        };
        Ok((Socket::accepted(fd, peer), peer))
    }
}

/// The descriptor of a connected socket, or what `send`/`receive` return
/// instead: `WouldBlock` while connecting, the recorded failure, or
/// `InvalidState` with `unconnected` as the message.
fn connected_fd<'s>(socket: &'s Socket, unconnected: &'static str) -> nb::Result<&'s Fd, Error> {
    match socket.state() {
        SocketState::Connected => {}
        SocketState::Connecting => return Err(nb::Error::WouldBlock),
        SocketState::Failed => return Err(nb::Error::Other(socket.failure())),
        _ => return Err(nb::Error::Other(Error::InvalidState(unconnected))),
    }
    socket
        .fd()
        .ok_or(nb::Error::Other(Error::InvalidState("socket not opened")))
}
