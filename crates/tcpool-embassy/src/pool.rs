//! The [`Pool`]: a fixed budget of embassy-net TCP sockets shared by the
//! listeners (with their emulated backlog), the server's connections and
//! outgoing connections, and the bookkeeping that turns them into an
//! `embedded-nal` stack.

use core::cell::RefCell;
use core::future::Future;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::pin::pin;
use core::task::{Context, Poll};
use core::time::Duration;

use embassy_net::tcp::{ConnectError, State, TcpSocket};
use embassy_net::{IpAddress, IpEndpoint, IpListenEndpoint};
use embassy_time::{Duration as EDuration, Instant as EInstant};

use crate::config::{Config, ListenConfig, Overflow};
use crate::error::Error;
use crate::hold::SynHold;
use crate::storage::Storage;

/// A socket handed out by a [`Pool`] (through [`PoolStack`](crate::PoolStack)):
/// the `embedded-nal` `TcpSocket` type.
///
/// Neither `Clone` nor `Copy`: `close` and `abort` consume it, so a handle
/// never outlives the socket it names. `listen()` turns a socket handle into
/// a listener handle in place.
#[derive(Debug, PartialEq, Eq)]
pub struct TcpHandle(pub(crate) Kind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Index into the socket budget.
    Socket(u16),
    /// Index into the listener table.
    Listener(u16),
}

impl TcpHandle {
    /// Whether this handle is a listener (after `listen()`).
    pub fn is_listener(&self) -> bool {
        matches!(self.0, Kind::Listener(_))
    }
}

/// What the pool does with one socket. Every change goes through
/// [`Inner::set_role`], which logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Available: CLOSED, or in TIME-WAIT (which it may finish while free).
    Free,
    /// Handed out by `socket()`; `port` is the bound port (0: none).
    Reserved { port: u16 },
    /// Listening for a listener.
    Listening { listener: u16 },
    /// Caught a SYN for a listener: handshaking, or established and waiting
    /// for `accept`. `arrival` orders accepts.
    Pending { listener: u16, arrival: u32 },
    /// An outgoing connection in its handshake.
    Connecting,
    /// Owned by the application: accepted, or an established outgoing
    /// connection.
    Open { outgoing: bool },
    /// Given back (`close` or `abort`): delivers its queued output and FIN
    /// (or its RST), then returns to [`Role::Free`]. Reset at `deadline`;
    /// `drain`: the peer's input is read and discarded meanwhile.
    Closing {
        deadline: Option<EInstant>,
        drain: bool,
    },
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Free => "free",
            Role::Reserved { .. } => "reserved",
            Role::Listening { .. } => "listening",
            Role::Pending { .. } => "pending",
            Role::Connecting => "connecting",
            Role::Open { outgoing: false } => "open",
            Role::Open { outgoing: true } => "outgoing",
            Role::Closing { .. } => "closing",
        }
    }
}

/// How the socket budget is used right now (see [`Pool::stats`]). The
/// fields add up to the budget `N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolStats {
    /// Available to `socket()`, to listeners and to outgoing connections.
    pub free: usize,
    /// Handed out by `socket()`, not yet listening or connecting.
    pub reserved: usize,
    /// Listening for a listener.
    pub listening: usize,
    /// Caught a SYN; handshaking or waiting for `accept`.
    pub pending: usize,
    /// Accepted connections owned by the application.
    pub open: usize,
    /// Outgoing connections (handshaking or established).
    pub outgoing: usize,
    /// Closed by the application, still delivering output or a RST.
    pub closing: usize,
}

/// Events counted by a [`Pool`] since it was created. Counters wrap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Connections handed over by `accept`.
    pub accepted: u32,
    /// Outgoing connections established.
    pub connected: u32,
    /// Closing connections reset because
    /// [`Config::lingering_close`] expired.
    pub lingering_resets: u32,
    /// Handshakes that failed before `accept` (reset, timed out): their
    /// sockets went back to the budget.
    pub failed_handshakes: u32,
    /// SYNs held (their refusal withheld) because their port had no
    /// listening socket; read from the [`SynHold`].
    pub held_syns: u32,
}

#[derive(Debug, Clone, Copy)]
struct Listener {
    port: u16,
    config: ListenConfig,
}

struct Entry<'d> {
    socket: TcpSocket<'d>,
    role: Role,
}

pub(crate) struct Inner<'d, const N: usize> {
    entries: [Entry<'d>; N],
    listeners: [Option<Listener>; N],
    config: Config,
    arrivals: u32,
    counters: Counters,
    /// A role changed (or arming a listener failed) since the last
    /// [`Inner::rearm`]: the listeners may need sockets, the SYN guard a
    /// new count. Sockets become free, listening or pending only through
    /// [`Inner::set_role`], so without it `rearm` would change nothing.
    dirty: bool,
}

/// A fixed budget of `N` embassy-net TCP sockets: the listeners and their
/// emulated backlog, the server's connections, and outgoing connections
/// ([`embedded_nal_async::TcpConnect`]) all draw from it, and
/// [`stats`](Pool::stats) shows how it is used.
///
/// The pool is shared (`&Pool`): a [`PoolStack`](crate::PoolStack) from
/// [`stack`](Pool::stack) is the `embedded-nal` `TcpFullStack` a tcpool
/// `Server` runs on, and any task can open an outgoing connection with
/// `TcpConnect::connect(&pool, ..)` at the same time.
///
/// # Semantics
///
/// * `socket()` and `connect` take a socket from the budget, or fail with
///   [`Error::OutOfSockets`] (never a reset, never a connection dropped to
///   make room).
/// * `bind` + `listen` make a listener that keeps
///   [`ListenConfig::backlog`] sockets listening (see [`ListenConfig`]);
///   `accept` hands over established connections in arrival order, with
///   the peer's own address.
/// * `receive`: `WouldBlock` when nothing is buffered, `Ok(0)` only at the
///   end of stream (after every byte sent before the peer's FIN).
/// * `close` is a lingering close: the socket stays out of the budget until
///   its queued output and FIN are delivered (embassy-net would discard
///   them if the socket were dropped or reused), draining the peer's input,
///   at most [`Config::lingering_close`]; then it is reset. `abort` resets
///   at once.
/// * Every call that answers `WouldBlock` registers the waker of the
///   [`PoolStack`](crate::PoolStack) it was made through (see
///   [`tcpool_core::AsyncBackend`]).
///
/// # Not supported
///
/// * A listener bound to one address: listeners accept on every address.
/// * Choosing the local port of an outgoing connection (embassy-net picks
///   it).
/// * A retransmitted SYN caught by a second listening socket while the
///   first still handshakes (only on a lossy link): embassy-net gives no
///   access to the raw socket to undo it; the duplicate connection fails
///   its handshake and its socket is reclaimed.
pub struct Pool<'d, const N: usize> {
    stack: embassy_net::Stack<'d>,
    hold: &'d SynHold,
    inner: RefCell<Inner<'d, N>>,
}

impl<'d, const N: usize> Pool<'d, N> {
    /// A pool of `N` sockets over `stack`, with their buffers in `storage`.
    /// `hold` is the [`SynHold`] shared with the [`HoldSyns`](crate::HoldSyns)
    /// wrapper around the stack's driver.
    ///
    /// # Panics
    ///
    /// If the stack's `StackResources` has room for fewer than `N` more
    /// sockets (embassy-net panics when its socket set is full): size it
    /// for `N` plus the stack's own sockets (DHCP, DNS, UDP).
    pub fn new<const RX: usize, const TX: usize>(
        stack: embassy_net::Stack<'d>,
        storage: &'d mut Storage<N, RX, TX>,
        hold: &'d SynHold,
        config: Config,
    ) -> Self {
        let rx = storage.rx.each_mut().map(|b| &mut b[..]);
        let tx = storage.tx.each_mut().map(|b| &mut b[..]);
        Self::from_buffers(stack, rx, tx, hold, config)
    }

    /// A pool over buffers of any size: socket `i` gets `rx[i]` and
    /// `tx[i]` (e.g. a few large sockets for bulk transfers, or buffers
    /// allocated on a host). Same panics as [`new`](Pool::new).
    pub fn from_buffers(
        stack: embassy_net::Stack<'d>,
        rx: [&'d mut [u8]; N],
        tx: [&'d mut [u8]; N],
        hold: &'d SynHold,
        config: Config,
    ) -> Self {
        const {
            assert!(N > 0, "the pool needs at least one socket");
            assert!(N <= u16::MAX as usize, "at most 65535 sockets");
        }
        let mut buffers = rx.into_iter().zip(tx);
        let entries = core::array::from_fn(|_| {
            let (rx, tx) = buffers.next().expect("N buffers for N sockets");
            Entry {
                socket: TcpSocket::new(stack, rx, tx),
                role: Role::Free,
            }
        });
        Pool {
            stack,
            hold,
            inner: RefCell::new(Inner {
                entries,
                listeners: [None; N],
                config,
                arrivals: 0,
                counters: Counters::default(),
                dirty: true,
            }),
        }
    }

    /// The `embedded-nal` stack over this pool, for a tcpool `Server`.
    pub fn stack(&self) -> crate::PoolStack<'_, 'd, N> {
        crate::PoolStack::new(self)
    }

    /// The embassy-net stack the pool's sockets live on.
    pub fn embassy_stack(&self) -> embassy_net::Stack<'d> {
        self.stack
    }

    /// How the budget is used now (sockets whose close has completed are
    /// counted as free).
    pub fn stats(&self) -> PoolStats {
        let mut inner = self.inner.borrow_mut();
        inner.reclaim();
        let mut st = PoolStats::default();
        for e in &inner.entries {
            match e.role {
                Role::Free => st.free += 1,
                Role::Reserved { .. } => st.reserved += 1,
                Role::Listening { .. } => st.listening += 1,
                Role::Pending { .. } => st.pending += 1,
                Role::Open { outgoing: false } => st.open += 1,
                Role::Connecting | Role::Open { outgoing: true } => st.outgoing += 1,
                Role::Closing { .. } => st.closing += 1,
            }
        }
        st
    }

    /// The events counted so far.
    pub fn counters(&self) -> Counters {
        let mut c = self.inner.borrow().counters;
        c.held_syns = self.hold.held();
        c
    }

    /// The pool's settings.
    pub fn config(&self) -> Config {
        self.inner.borrow().config
    }

    /// The embassy-net TCP state of a connection's socket (diagnostics).
    pub fn socket_state(&self, socket: &TcpHandle) -> Option<State> {
        match socket.0 {
            Kind::Socket(i) => self
                .inner
                .borrow()
                .entries
                .get(usize::from(i))
                .map(|e| e.socket.state()),
            Kind::Listener(_) => None,
        }
    }

    /// Ends the sending side of a connection (FIN after the queued
    /// output); it can still receive. `close` it when done.
    pub fn shutdown_write(&self, socket: &TcpHandle) -> Result<(), Error> {
        let mut inner = self.inner.borrow_mut();
        let i = inner.open_index(socket)?;
        inner.entries[i].socket.close();
        Ok(())
    }

    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner<'d, N>, &SynHold) -> R) -> R {
        f(&mut self.inner.borrow_mut(), self.hold)
    }

    /// Whether maintenance has nothing to do or wait for (see
    /// [`PoolStack`](crate::PoolStack)'s `AsyncBackend::quiet`).
    pub(crate) fn quiet(&self) -> bool {
        let Ok(inner) = self.inner.try_borrow() else {
            return false;
        };
        !inner.dirty
            && inner.entries.iter().all(|e| match e.role {
                Role::Free | Role::Reserved { .. } | Role::Open { .. } | Role::Connecting => true,
                // Until a SYN arrives, maintenance leaves it as it is.
                Role::Listening { .. } => e.socket.state() == State::Listen,
                Role::Pending { .. } | Role::Closing { .. } => false,
            })
    }

    /// The sockets, borrowed.
    #[inline(always)]
    pub(crate) fn inner(&self) -> core::cell::RefMut<'_, Inner<'d, N>> {
        self.inner.borrow_mut()
    }

    /// The local address of a socket or listener.
    pub(crate) fn local_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        let inner = self.inner.borrow();
        match socket.0 {
            Kind::Socket(i) => inner
                .entries
                .get(usize::from(i))?
                .socket
                .local_endpoint()
                .map(SocketAddr::from),
            Kind::Listener(l) => {
                let port = inner.listeners.get(usize::from(l)).copied().flatten()?.port;
                let ip = self
                    .stack
                    .config_v4()
                    .map_or(Ipv4Addr::UNSPECIFIED, |c| c.address.address());
                Some(SocketAddr::new(IpAddr::V4(ip), port))
            }
        }
    }
}

impl<'d, const N: usize> Inner<'d, N> {
    fn set_role(&mut self, i: usize, role: Role) {
        let old = self.entries[i].role;
        if old != role {
            trace!("socket {}: {} -> {}", i, old.name(), role.name());
            self.dirty = true;
        }
        self.entries[i].role = role;
    }

    fn free_index(&self) -> Option<usize> {
        self.entries.iter().position(|e| {
            e.role == Role::Free && matches!(e.socket.state(), State::Closed | State::TimeWait)
        })
    }

    /// Sockets whose close has completed go back to the budget (state checks
    /// only; no waker is registered).
    pub(crate) fn reclaim(&mut self) {
        for i in 0..N {
            if let Role::Closing { .. } = self.entries[i].role
                && is_reclaimable(&self.entries[i].socket)
            {
                self.set_role(i, Role::Free);
            }
        }
    }

    /// The backend's own work: listeners that caught a SYN hand it over to
    /// the pending set and are replaced, failed handshakes are reclaimed,
    /// closing sockets drain input and are reclaimed or reset at their
    /// deadline. Registers `cx`'s waker for each of these. Returns the
    /// nearest lingering deadline.
    pub(crate) fn maintain(&mut self, cx: &mut Context<'_>, hold: &SynHold) -> Option<EInstant> {
        // Read only for a lingering close's deadline: the clock can cost a
        // critical section.
        let mut now = None;
        let mut next: Option<EInstant> = None;
        for i in 0..N {
            match self.entries[i].role {
                Role::Listening { listener } => match self.entries[i].socket.state() {
                    State::Listen => register_write(&self.entries[i].socket, cx),
                    State::Closed | State::TimeWait => self.set_role(i, Role::Free),
                    _ => {
                        self.arrivals = self.arrivals.wrapping_add(1);
                        let arrival = self.arrivals;
                        self.set_role(i, Role::Pending { listener, arrival });
                    }
                },
                Role::Pending { .. } => {
                    if matches!(
                        self.entries[i].socket.state(),
                        State::Closed | State::TimeWait
                    ) {
                        debug!("socket {}: handshake failed before accept", i);
                        self.counters.failed_handshakes =
                            self.counters.failed_handshakes.wrapping_add(1);
                        self.entries[i].socket.abort();
                        self.set_role(
                            i,
                            Role::Closing {
                                deadline: None,
                                drain: false,
                            },
                        );
                    }
                }
                Role::Closing { deadline, drain } => {
                    let socket = &mut self.entries[i].socket;
                    if drain {
                        drain_input(socket, cx);
                    } else {
                        register_read(socket, cx);
                    }
                    if is_reclaimable(socket) {
                        self.set_role(i, Role::Free);
                        continue;
                    }
                    if deadline.is_some_and(|d| *now.get_or_insert_with(EInstant::now) >= d) {
                        debug!("socket {}: lingering close expired, reset", i);
                        socket.abort();
                        self.counters.lingering_resets =
                            self.counters.lingering_resets.wrapping_add(1);
                        let socket = &self.entries[i].socket;
                        if is_reclaimable(socket) {
                            self.set_role(i, Role::Free);
                            continue;
                        }
                        self.set_role(
                            i,
                            Role::Closing {
                                deadline: None,
                                drain: false,
                            },
                        );
                    } else if let Some(d) = deadline {
                        next = Some(next.map_or(d, |n| n.min(d)));
                    }
                    // Output, FIN or RST still to go: woken when it has.
                    let _ = pin!(self.entries[i].socket.flush()).poll(cx);
                }
                _ => {}
            }
        }
        if self.dirty {
            self.rearm(cx, hold);
        }
        next
    }

    /// Arms listening sockets up to each listener's backlog, and tells the
    /// SYN guard how many listen on each port.
    fn rearm(&mut self, cx: &mut Context<'_>, hold: &SynHold) {
        // A listener that failed to arm keeps it set: tried again next time.
        self.dirty = !self.arm_listeners(cx);
        for (l, listener) in self.listeners.iter().enumerate() {
            let Some(listener) = listener else {
                continue;
            };
            let listening = self
                .entries
                .iter()
                .filter(|e| {
                    e.role == Role::Listening { listener: l as u16 }
                        && e.socket.state() == State::Listen
                })
                .count();
            hold.set_armed(listener.port, listening);
        }
    }

    /// False if arming a socket failed (not for want of a free one: that
    /// changes only with a role).
    fn arm_listeners(&mut self, cx: &mut Context<'_>) -> bool {
        for l in 0..N {
            let Some(listener) = self.listeners[l] else {
                continue;
            };
            let (mut listening, mut held) = (0usize, 0usize);
            for e in &self.entries {
                match e.role {
                    Role::Listening { listener } if usize::from(listener) == l => {
                        listening += 1;
                        held += 1;
                    }
                    Role::Pending { listener, .. } if usize::from(listener) == l => held += 1,
                    _ => {}
                }
            }
            while listening < usize::from(listener.config.backlog)
                && held < usize::from(listener.config.max_queued)
            {
                let Some(i) = self.free_index() else {
                    return true;
                };
                if !self.arm(i, l, listener.port, cx) {
                    return false;
                }
                listening += 1;
                held += 1;
            }
        }
        true
    }

    fn arm(&mut self, i: usize, l: usize, port: u16, cx: &mut Context<'_>) -> bool {
        let handshake = to_embassy_duration(self.config.handshake_timeout);
        let keepalive = self.config.effective_keepalive().map(to_embassy_duration);
        let nodelay = self.config.nodelay;
        let socket = &mut self.entries[i].socket;
        let endpoint = IpListenEndpoint { addr: None, port };
        // The first poll puts the socket in LISTEN and registers the waker.
        if let Poll::Ready(Err(_e)) = pin!(socket.accept(endpoint)).poll(cx) {
            warning!("socket {}: listen on port {} failed", i, port);
            return false;
        }
        socket.set_timeout(Some(handshake));
        socket.set_keep_alive(keepalive);
        socket.set_nagle_enabled(!nodelay);
        self.set_role(i, Role::Listening { listener: l as u16 });
        true
    }

    pub(crate) fn socket(&mut self) -> Result<TcpHandle, Error> {
        self.reclaim();
        let i = self.free_index().ok_or(Error::OutOfSockets)?;
        self.set_role(i, Role::Reserved { port: 0 });
        Ok(TcpHandle(Kind::Socket(i as u16)))
    }

    #[inline]
    fn socket_index(&self, socket: &TcpHandle) -> Result<usize, Error> {
        match socket.0 {
            Kind::Socket(i) if usize::from(i) < N => Ok(usize::from(i)),
            _ => Err(Error::InvalidState),
        }
    }

    #[inline]
    fn open_index(&self, socket: &TcpHandle) -> Result<usize, Error> {
        let i = self.socket_index(socket)?;
        match self.entries[i].role {
            Role::Open { .. } => Ok(i),
            _ => Err(Error::InvalidState),
        }
    }

    pub(crate) fn bind(&mut self, socket: &TcpHandle, port: u16) -> Result<(), Error> {
        let i = self.socket_index(socket)?;
        match self.entries[i].role {
            Role::Reserved { .. } => {
                self.set_role(i, Role::Reserved { port });
                Ok(())
            }
            _ => Err(Error::InvalidState),
        }
    }

    pub(crate) fn listen(
        &mut self,
        socket: &mut TcpHandle,
        hold: &SynHold,
        cx: &mut Context<'_>,
    ) -> Result<(), Error> {
        let i = self.socket_index(socket)?;
        let Role::Reserved { port } = self.entries[i].role else {
            return Err(Error::InvalidState);
        };
        if port == 0 {
            return Err(Error::Unaddressable);
        }
        if self.listeners.iter().flatten().any(|l| l.port == port) {
            return Err(Error::AddressInUse);
        }
        let l = self
            .listeners
            .iter()
            .position(Option::is_none)
            .ok_or(Error::TooManyListeners)?;
        let config = self.config.listen.normalized();
        if config.overflow == Overflow::Hold && !hold.add(port) {
            return Err(Error::TooManyListeners);
        }
        self.listeners[l] = Some(Listener { port, config });
        // The reserved socket becomes one of the listening ones.
        self.set_role(i, Role::Free);
        *socket = TcpHandle(Kind::Listener(l as u16));
        debug!("listening on port {} (backlog {})", port, config.backlog);
        self.rearm(cx, hold);
        Ok(())
    }

    pub(crate) fn accept(
        &mut self,
        listener: &TcpHandle,
        hold: &SynHold,
        cx: &mut Context<'_>,
    ) -> nb::Result<(TcpHandle, SocketAddr), Error> {
        let Kind::Listener(l) = listener.0 else {
            return Err(nb::Error::Other(Error::InvalidState));
        };
        if self
            .listeners
            .get(usize::from(l))
            .copied()
            .flatten()
            .is_none()
        {
            return Err(nb::Error::Other(Error::InvalidState));
        }
        self.maintain(cx, hold);
        let mut best: Option<(usize, u32)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let Role::Pending { listener, arrival } = e.role else {
                continue;
            };
            if listener != l {
                continue;
            }
            if !matches!(e.socket.state(), State::Established | State::CloseWait) {
                // Still handshaking: woken when that changes.
                register_write(&e.socket, cx);
                continue;
            }
            let age = self.arrivals.wrapping_sub(arrival);
            if best.is_none_or(|(_, a)| age > a) {
                best = Some((i, age));
            }
        }
        let Some((i, _)) = best else {
            return Err(nb::Error::WouldBlock);
        };
        let Some(peer) = self.entries[i].socket.remote_endpoint() else {
            return Err(nb::Error::WouldBlock);
        };
        self.set_established_timers(i);
        self.set_role(i, Role::Open { outgoing: false });
        self.counters.accepted = self.counters.accepted.wrapping_add(1);
        self.rearm(cx, hold);
        Ok((TcpHandle(Kind::Socket(i as u16)), SocketAddr::from(peer)))
    }

    fn set_established_timers(&mut self, i: usize) {
        let timeout = self.config.timeout.map(to_embassy_duration);
        let keepalive = self.config.effective_keepalive().map(to_embassy_duration);
        let socket = &mut self.entries[i].socket;
        socket.set_timeout(timeout);
        socket.set_keep_alive(keepalive);
    }

    /// Starts (first call) or checks an outgoing connection.
    pub(crate) fn connect(
        &mut self,
        socket: &TcpHandle,
        remote: SocketAddr,
        cx: &mut Context<'_>,
    ) -> nb::Result<(), Error> {
        let i = self.socket_index(socket)?;
        match self.entries[i].role {
            Role::Reserved { .. } => {
                let remote = to_endpoint(remote)?;
                let handshake = to_embassy_duration(self.config.handshake_timeout);
                let nodelay = self.config.nodelay;
                let socket = &mut self.entries[i].socket;
                socket.set_timeout(Some(handshake));
                socket.set_nagle_enabled(!nodelay);
                let started = pin!(socket.connect(remote)).poll(cx);
                match started {
                    Poll::Ready(Err(e)) => Err(nb::Error::Other(connect_error(e))),
                    Poll::Ready(Ok(())) | Poll::Pending => {
                        self.set_role(i, Role::Connecting);
                        self.check_connect(i, cx)
                    }
                }
            }
            Role::Connecting => self.check_connect(i, cx),
            Role::Open { outgoing: true } => Ok(()),
            _ => Err(nb::Error::Other(Error::InvalidState)),
        }
    }

    fn check_connect(&mut self, i: usize, cx: &mut Context<'_>) -> nb::Result<(), Error> {
        match self.entries[i].socket.state() {
            State::SynSent | State::SynReceived => {
                register_write(&self.entries[i].socket, cx);
                Err(nb::Error::WouldBlock)
            }
            State::Closed | State::TimeWait | State::Listen => {
                Err(nb::Error::Other(Error::ConnectionRefused))
            }
            _ => {
                self.set_established_timers(i);
                self.set_role(i, Role::Open { outgoing: true });
                self.counters.connected = self.counters.connected.wrapping_add(1);
                Ok(())
            }
        }
    }

    /// Registers `cx`'s waker for `interest` on `socket` (see
    /// [`tcpool_core::AsyncBackend::register_interest`]); true if ready now.
    pub(crate) fn register_interest(
        &mut self,
        socket: &TcpHandle,
        interest: tcpool_core::Interest,
        cx: &mut Context<'_>,
    ) -> bool {
        match socket.0 {
            Kind::Listener(l) => {
                if !interest.readable {
                    return false;
                }
                let mut ready = false;
                for e in &self.entries {
                    match e.role {
                        Role::Listening { listener } if listener == l => {
                            // Catching a SYN makes it pending: woken for it.
                            ready |= e.socket.state() != State::Listen;
                            register_write(&e.socket, cx);
                        }
                        Role::Pending { listener, .. } if listener == l => {
                            if matches!(e.socket.state(), State::Established | State::CloseWait) {
                                ready = true;
                            } else {
                                register_write(&e.socket, cx);
                            }
                        }
                        _ => {}
                    }
                }
                ready
            }
            Kind::Socket(i) => {
                let Some(e) = self.entries.get(usize::from(i)) else {
                    return false;
                };
                let s = &e.socket;
                let mut ready = false;
                if interest.readable {
                    if s.can_recv() || !s.may_recv() {
                        ready = true;
                    } else {
                        register_read(s, cx);
                    }
                }
                if interest.writable {
                    if s.can_send() || !s.may_send() {
                        ready = true;
                    } else {
                        register_write(s, cx);
                    }
                }
                ready
            }
        }
    }

    #[inline(always)]
    pub(crate) fn send(
        &mut self,
        socket: &TcpHandle,
        buffer: &[u8],
        cx: &mut Context<'_>,
    ) -> nb::Result<usize, Error> {
        let i = self.open_index(socket)?;
        if buffer.is_empty() {
            return Ok(0);
        }
        let socket = &mut self.entries[i].socket;
        match pin!(socket.write(buffer)).poll(cx) {
            Poll::Pending => Err(nb::Error::WouldBlock),
            Poll::Ready(Ok(n)) => Ok(n),
            Poll::Ready(Err(_)) => Err(nb::Error::Other(Error::ConnectionReset)),
        }
    }

    #[inline(always)]
    pub(crate) fn receive(
        &mut self,
        socket: &TcpHandle,
        buffer: &mut [u8],
        cx: &mut Context<'_>,
    ) -> nb::Result<usize, Error> {
        let i = self.open_index(socket)?;
        if buffer.is_empty() {
            // Not an end of stream, and nothing can be read into it.
            return Err(nb::Error::WouldBlock);
        }
        let socket = &mut self.entries[i].socket;
        match pin!(socket.read(buffer)).poll(cx) {
            Poll::Pending => Err(nb::Error::WouldBlock),
            Poll::Ready(Ok(n)) => Ok(n),
            Poll::Ready(Err(_)) => Err(nb::Error::Other(Error::ConnectionReset)),
        }
    }

    /// Waits for output room (the `flush` of an outgoing connection): ready
    /// once everything written has been acknowledged.
    pub(crate) fn poll_flush(&mut self, i: usize, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let socket = &mut self.entries[i].socket;
        match pin!(socket.flush()).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::ConnectionReset)),
        }
    }

    pub(crate) fn close(&mut self, socket: TcpHandle, hold: &SynHold) -> Result<(), Error> {
        match socket.0 {
            Kind::Listener(l) => self.remove_listener(usize::from(l), hold),
            Kind::Socket(i) => self.close_index(usize::from(i)),
        }
    }

    /// The lingering close of socket `i` (or a reset if it is still in its
    /// handshake).
    pub(crate) fn close_index(&mut self, i: usize) -> Result<(), Error> {
        match self.entries.get(i).map(|e| e.role) {
            Some(Role::Reserved { .. }) => {
                self.set_role(i, Role::Free);
                Ok(())
            }
            Some(Role::Open { .. } | Role::Connecting) => {
                let lingering = self.config.lingering_close;
                let socket = &mut self.entries[i].socket;
                let handshaking = matches!(
                    socket.state(),
                    State::SynSent | State::SynReceived | State::Listen
                );
                let role = if handshaking {
                    socket.abort();
                    Role::Closing {
                        deadline: None,
                        drain: false,
                    }
                } else {
                    socket.close();
                    Role::Closing {
                        deadline: lingering.map(|d| EInstant::now() + to_embassy_duration(d)),
                        drain: lingering.is_some(),
                    }
                };
                self.set_role(i, role);
                if is_reclaimable(&self.entries[i].socket) {
                    self.set_role(i, Role::Free);
                }
                Ok(())
            }
            _ => Err(Error::InvalidState),
        }
    }

    pub(crate) fn abort(&mut self, socket: TcpHandle, hold: &SynHold) -> Result<(), Error> {
        let i = match socket.0 {
            Kind::Listener(l) => return self.remove_listener(usize::from(l), hold),
            Kind::Socket(i) => usize::from(i),
        };
        match self.entries.get(i).map(|e| e.role) {
            Some(Role::Reserved { .. }) => {
                self.set_role(i, Role::Free);
                Ok(())
            }
            Some(Role::Open { .. } | Role::Connecting) => {
                self.entries[i].socket.abort();
                let role = if is_reclaimable(&self.entries[i].socket) {
                    Role::Free
                } else {
                    Role::Closing {
                        deadline: None,
                        drain: false,
                    }
                };
                self.set_role(i, role);
                Ok(())
            }
            _ => Err(Error::InvalidState),
        }
    }

    /// Stops a listener: its listening sockets return to the budget, the
    /// connections it still held are closed (gracefully if established,
    /// reset if handshaking).
    fn remove_listener(&mut self, l: usize, hold: &SynHold) -> Result<(), Error> {
        let Some(listener) = self.listeners.get_mut(l).and_then(Option::take) else {
            return Err(Error::InvalidState);
        };
        hold.remove(listener.port);
        for i in 0..N {
            match self.entries[i].role {
                Role::Listening { listener } if usize::from(listener) == l => {
                    // Nothing to tell anyone: no RST leaves a LISTEN socket.
                    self.entries[i].socket.abort();
                    self.set_role(i, Role::Free);
                }
                Role::Pending { listener, .. } if usize::from(listener) == l => {
                    self.set_role(i, Role::Open { outgoing: false });
                    self.close_index(i)?;
                }
                _ => {}
            }
        }
        debug!("listener on port {} closed", listener.port);
        Ok(())
    }
}

/// embassy-net is done with the socket: FIN exchanged (TIME-WAIT, which it
/// may finish while free), or CLOSED with no RST left to send.
fn is_reclaimable(socket: &TcpSocket<'_>) -> bool {
    match socket.state() {
        State::TimeWait => true,
        State::Closed => socket.remote_endpoint().is_none(),
        _ => false,
    }
}

/// Registers the waker for the socket's send side (and for any state
/// change: embassy-net wakes both sides on one).
fn register_write(socket: &TcpSocket<'_>, cx: &mut Context<'_>) {
    let _ = pin!(socket.wait_write_ready()).poll(cx);
}

fn register_read(socket: &TcpSocket<'_>, cx: &mut Context<'_>) {
    let _ = pin!(socket.wait_read_ready()).poll(cx);
}

/// Reads and discards what the peer sent after our close; registers the
/// waker when there is nothing (more) to read.
fn drain_input(socket: &mut TcpSocket<'_>, cx: &mut Context<'_>) {
    // A ring buffer hands out at most two contiguous pieces.
    for _ in 0..3 {
        match pin!(socket.read_with(|data| (data.len(), ()))).poll(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) | Poll::Pending => return,
        }
    }
}

fn connect_error(e: ConnectError) -> Error {
    match e {
        ConnectError::InvalidState => Error::InvalidState,
        ConnectError::NoRoute => Error::Unaddressable,
        ConnectError::ConnectionReset | ConnectError::TimedOut => Error::ConnectionRefused,
    }
}

pub(crate) fn to_endpoint(addr: SocketAddr) -> Result<IpEndpoint, Error> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(_) => return Err(Error::Unaddressable),
    };
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(Error::Unaddressable);
    }
    Ok(IpEndpoint::new(ip, addr.port()))
}

/// A core duration as an embassy one (saturating).
pub(crate) fn to_embassy_duration(d: Duration) -> EDuration {
    EDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_reject_port_zero_unspecified_and_ipv6() {
        assert!(to_endpoint("10.0.0.1:80".parse().unwrap()).is_ok());
        assert_eq!(
            to_endpoint("10.0.0.1:0".parse().unwrap()),
            Err(Error::Unaddressable)
        );
        assert_eq!(
            to_endpoint("0.0.0.0:80".parse().unwrap()),
            Err(Error::Unaddressable)
        );
        assert_eq!(
            to_endpoint("[::1]:80".parse().unwrap()),
            Err(Error::Unaddressable)
        );
    }
}
