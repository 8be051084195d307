//! The [`Stack`]: an smoltcp `Interface` + `SocketSet` + device, a fixed pool
//! of TCP sockets, and the bookkeeping that turns them into an
//! `embedded-nal` `TcpFullStack` with an emulated accept backlog.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use core::cell::Cell;
use smoltcp::iface::{Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};

use smoltcp::phy::{Device, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};
use tcpool_core::{Instant, Interest};

use crate::config::{Config, EPHEMERAL_FIRST, ListenConfig, Overflow};
use crate::error::Error;
use crate::guard::{HoldPorts, SynGuard};
use crate::storage::StackStorage;

/// The TCP state of a pool socket, as smoltcp sees it (re-exported for
/// diagnostics and tests; see [`Stack::socket_state`]).
pub use smoltcp::socket::tcp::State as TcpState;

/// A socket handed out by a [`Stack`]: the `embedded-nal` `TcpSocket` type.
///
/// It is deliberately neither `Clone` nor `Copy`: `close` and `abort`
/// consume it, so a handle can never outlive the pool socket it names.
/// `listen()` turns a socket handle into a listener handle in place.
#[derive(Debug, PartialEq, Eq)]
pub struct TcpHandle(Kind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Index into the socket pool.
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

/// What the pool is doing with one socket. Every change goes through
/// [`Stack::set_role`], which logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Available. The smoltcp socket is CLOSED (without a pending RST) or in
    /// TIME-WAIT, which it may finish while it waits to be reused.
    Free,
    /// Handed out by `socket()`, not yet listening or connecting. `port` is
    /// the bound port (0: not bound).
    Reserved { port: u16 },
    /// Listening on behalf of a listener.
    Listening { listener: u16 },
    /// Caught a SYN for a listener; handshaking or established, waiting for
    /// `accept`. `arrival` orders accepts (first come, first served).
    Pending { listener: u16, arrival: u32 },
    /// Owned by the application (accepted, or an outgoing connection).
    Open,
    /// Given back by the application (`close` or `abort`). Returns to
    /// [`Role::Free`] once smoltcp has finished with it (FIN exchanged or RST
    /// sent); reset if still closing at `deadline`.
    Closing { deadline: Option<SmolInstant> },
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Free => "free",
            Role::Reserved { .. } => "reserved",
            Role::Listening { .. } => "listening",
            Role::Pending { .. } => "pending",
            Role::Open => "open",
            Role::Closing { .. } => "closing",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    handle: SocketHandle,
    role: Role,
}

#[derive(Debug, Clone, Copy)]
struct Listener {
    port: u16,
    config: ListenConfig,
}

/// How the pool's sockets are being used right now (see [`Stack::pool_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolStats {
    /// Available to `socket()` and to listeners.
    pub free: usize,
    /// Handed out by `socket()`, not yet listening or connecting.
    pub reserved: usize,
    /// Listening on behalf of a listener.
    pub listening: usize,
    /// Caught a SYN; handshaking or waiting for `accept`.
    pub pending: usize,
    /// Owned by the application (accepted or outgoing).
    pub open: usize,
    /// Closed by the application, still finishing (FIN exchange, RST).
    pub closing: usize,
}

/// Events counted by a [`Stack`] since it was created (see
/// [`Stack::counters`]). Counters wrap around.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Connections handed over by `accept`.
    pub accepted: u32,
    /// SYNs caught by a listener for a 4-tuple another pool socket already
    /// held (retransmitted or late duplicate SYNs), dropped silently.
    pub duplicate_syns: u32,
    /// Closing connections reset because [`Config::linger`] expired.
    pub linger_resets: u32,
    /// SYNs dropped (not refused) because their port was full and its
    /// listener set to [`Overflow::Hold`].
    pub held_syns: u32,
}

/// An `embedded-nal` [`TcpFullStack`](embedded_nal::TcpFullStack) over smoltcp
/// with a fixed pool of `N` TCP sockets.
///
/// The stack owns the smoltcp [`Interface`], the [`SocketSet`] and the device
/// `D`. Nothing happens on the network until [`poll`](Self::poll) is called;
/// call it whenever the device may have received something and at the latest
/// after [`poll_delay`](Self::poll_delay).
///
/// # Semantics
///
/// * `socket()` reserves a pool socket; when none is free it returns
///   [`Error::OutOfSockets`] (never a panic, never a connection dropped to make
///   room).
/// * `bind` + `listen` create a *listener*: smoltcp has no accept queue, so
///   [`ListenConfig::backlog`] pool sockets listen on the port and one that
///   catches a SYN becomes the connection while a fresh socket is armed at
///   once (see [`ListenConfig`] for the bound). When no socket of the port
///   is listening (pool exhausted, or the application not accepting), a new
///   client's SYN is dropped so that the client retransmits it and connects
///   later ([`Overflow::Hold`], the default), or answered with a RST so that
///   it sees "connection refused" at once ([`Overflow::Refuse`]).
/// * `accept` returns `WouldBlock` until a connection has completed its
///   handshake (ESTABLISHED, or CLOSE-WAIT when the client already sent its
///   FIN); connections are handed over in arrival order, with the peer's
///   address. Connections still in SYN-RECEIVED are never handed over.
/// * `receive` returns `WouldBlock` when nothing is buffered, and `Ok(0)`
///   only at end of stream: after the peer's FIN *and* once every byte sent
///   before it has been read. A reset connection delivers what was buffered,
///   then fails with [`Error::ConnectionReset`] (kind `PipeClosed`).
/// * `send` returns `WouldBlock` when the TX buffer is full (or while an
///   outgoing connection is still handshaking).
/// * `close` on a listener stops listening at once (its listening sockets
///   return to the pool), closes the connections it still held gracefully,
///   and resets those still handshaking. Its port can be listened on again
///   right away.
/// * `close` is graceful: smoltcp sends the FIN once the TX buffer has
///   drained; incoming data is discarded meanwhile (a "lingering close", so
///   the peer is never stalled or reset); the socket returns to the pool
///   only after the FIN exchange (TIME-WAIT or CLOSED) or after
///   [`Config::linger`]. [`abort`](Self::abort) resets (RST) instead.
/// * `connect` is non-blocking: `WouldBlock` until ESTABLISHED, then `Ok(())`;
///   [`Error::ConnectionRefused`] if the peer refused or did not answer
///   within [`Config::handshake_timeout`].
///
/// # smoltcp pitfalls handled by the pool
///
/// * **No accept queue, and a RST for every SYN no socket takes.** See
///   above; [`Overflow::Hold`] withholds that RST while the port is full
///   (the stack inspects only the small frames smoltcp sends in answer to an
///   incoming packet, and drops a RST|ACK with sequence number 0 from a held
///   port, which is exactly smoltcp's answer to an untaken SYN).
/// * **Duplicate SYN.** When a SYN-ACK is lost the client retransmits its
///   SYN. smoltcp lets the *first* socket in the set that matches take a
///   packet, so if a freshly armed listener comes before the SYN-RECEIVED
///   socket, the listener takes the duplicate SYN too and the first socket is
///   shadowed forever (or a late duplicate SYN shadows an *established*
///   connection, whose next packets then draw RSTs). The stack processes
///   incoming packets one at a time and, when a listener catches a SYN whose
///   4-tuple another pool socket already holds, returns that listener to
///   LISTEN silently (no SYN-ACK, no RST): the duplicate is dropped, as it
///   would be had the original socket come first.
/// * **Stuck handshakes.** A SYN-RECEIVED socket whose SYN-ACKs never get
///   through retransmits forever in smoltcp; every pool socket in a handshake
///   has [`Config::handshake_timeout`] set and is reclaimed after it.
/// * **Idle connections.** A smoltcp timeout alone kills idle established
///   connections (it counts time since the peer last sent anything), so
///   established connections get [`Config::timeout`] *and* a shorter
///   [`Config::keep_alive`], whose probes make a live peer answer.
/// * **CLOSE-WAIT is not the end.** smoltcp enters CLOSE-WAIT when the FIN
///   arrives, possibly with data still buffered; `receive` reports end of
///   stream only when smoltcp does (`recv` → `Finished`), after the data.
/// * **`listen()` clears buffers.** A closed socket is re-armed (or reused by
///   `socket()`) only once smoltcp is done with it: after its FIN exchange
///   (TIME-WAIT, which it finishes while it waits in the free pool, or
///   CLOSED) or after its RST has gone out — never while it still has data
///   or a FIN to send.
/// * **Closing in SYN-RECEIVED.** smoltcp 0.14 skips the FIN of a socket
///   closed in SYN-RECEIVED and then waits in FIN-WAIT-2 forever; such
///   sockets (handshakes in progress when their listener is closed) are
///   reset instead.
pub struct Stack<'a, D: Device, const N: usize> {
    iface: Interface,
    device: D,
    medium: Medium,
    sockets: SocketSet<'a>,
    pool: [Entry; N],
    listeners: [Option<Listener>; N],
    config: Config,
    /// Time of the last `poll` (used to start linger deadlines).
    now: SmolInstant,
    next_port: u16,
    arrivals: u32,
    counters: Counters,
}

impl<'a, D: Device, const N: usize> Stack<'a, D, N> {
    /// A stack over `iface` and `device`, with its pool of `N` sockets built
    /// in `storage`.
    ///
    /// `iface` must have been created for `device` (same medium) and have
    /// its IP address(es) configured.
    pub fn new<const RX: usize, const TX: usize>(
        iface: Interface,
        device: D,
        storage: &'a mut StackStorage<'a, N, RX, TX>,
        config: Config,
    ) -> Self {
        let StackStorage { sockets, rx, tx } = storage;
        let mut set = SocketSet::new(&mut sockets[..]);
        let mut handles = [SocketHandle::default(); N];
        for (handle, (rx, tx)) in handles.iter_mut().zip(rx.iter_mut().zip(tx.iter_mut())) {
            *handle = set.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            ));
        }
        Self::from_socket_set(iface, device, set, handles, config)
    }

    /// A stack over an existing socket set: `handles` name the `N` TCP
    /// sockets (all CLOSED) that form the pool. The set may hold other
    /// sockets too (DHCP, DNS, UDP, ...): reach them with
    /// [`sockets_mut`](Self::sockets_mut). Use this to give sockets different
    /// buffer sizes, or `Vec`-backed buffers on `alloc` targets.
    ///
    /// # Panics
    ///
    /// If a handle does not name a TCP socket of `sockets`.
    pub fn from_socket_set(
        iface: Interface,
        device: D,
        mut sockets: SocketSet<'a>,
        handles: [SocketHandle; N],
        config: Config,
    ) -> Self {
        const {
            assert!(N > 0, "the pool needs at least one socket");
            assert!(N <= u16::MAX as usize, "at most 65535 sockets");
        }
        for h in handles {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.state() != TcpState::Closed {
                s.abort();
            }
        }
        let start = config.ephemeral_port_start.max(EPHEMERAL_FIRST);
        let medium = device.capabilities().medium;
        Stack {
            iface,
            device,
            medium,
            sockets,
            pool: handles.map(|handle| Entry {
                handle,
                role: Role::Free,
            }),
            listeners: [None; N],
            config,
            now: SmolInstant::ZERO,
            next_port: start,
            arrivals: 0,
            counters: Counters::default(),
        }
    }

    // ----------------------------------------------------------------- driving

    /// Run the network: process every received packet, transmit what the
    /// sockets have queued, fire timers, and do the pool's bookkeeping
    /// (re-arm listeners as soon as one catches a SYN, reclaim sockets whose
    /// close has completed, enforce linger deadlines).
    ///
    /// Returns whether some socket's state may have changed (worth running
    /// the server's poll).
    pub fn poll(&mut self, now: Instant) -> bool {
        let ts = to_smol(now);
        self.now = ts;
        let mut changed = false;
        self.iface.poll_maintenance(ts);
        // One packet at a time, so that a listener that caught a SYN is
        // replaced (and a duplicate SYN undone) before the next packet. Only
        // a SYN moves a listening socket, so frames the guard knows carry
        // none (data and ACKs: nearly all of them) skip that search.
        let held = Cell::new(0u32);
        let syn = Cell::new(false);
        loop {
            let mut device = SynGuard {
                inner: &mut self.device,
                medium: self.medium,
                hold: &self.listeners,
                held: &held,
                syn: &syn,
            };
            match self
                .iface
                .poll_ingress_single(ts, &mut device, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => changed = true,
            }
            if syn.take() {
                self.catch_syns();
            }
        }
        if held.get() > 0 {
            debug!("{} SYN(s) held: port full", held.get());
            self.counters.held_syns = self.counters.held_syns.wrapping_add(held.get());
        }
        self.maintain(ts);
        while self
            .iface
            .poll_egress(ts, &mut self.device, &mut self.sockets)
            == PollResult::SocketStateChanged
        {
            changed = true;
        }
        // Egress may have sent RSTs or fired timeouts: reclaim at once.
        self.maintain(ts);
        changed
    }

    /// When [`poll`](Self::poll) should run next, at the latest (sooner if
    /// the device receives something): the earliest of smoltcp's timers
    /// (retransmission, delayed ACK, keep-alive, timeouts) and the pool's
    /// linger deadlines. `None`: nothing to do until a packet arrives.
    /// An instant not after `now` means "poll now".
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let ts = to_smol(now);
        let smol = self.iface.poll_at(ts, &self.sockets);
        let linger = self
            .pool
            .iter()
            .filter_map(|e| match e.role {
                Role::Closing { deadline } => deadline,
                _ => None,
            })
            .min();
        let at = match (smol, linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        at.map(from_smol_ceil)
    }

    /// How long the caller may sleep before calling [`poll`](Self::poll)
    /// (unless the device receives something first): `poll_at(now) - now`,
    /// zero if that is due already, `None` for "until a packet arrives".
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.poll_at(now)
            .map(|at| at.saturating_duration_since(now))
    }

    // --------------------------------------------------------------- inherent

    /// Like `listen`, with this listener's own backlog settings instead of
    /// [`Config::listen`].
    pub fn listen_with(
        &mut self,
        socket: &mut TcpHandle,
        config: ListenConfig,
    ) -> Result<(), Error> {
        let i = self.socket_index(socket)?;
        let Role::Reserved { port } = self.pool[i].role else {
            return Err(Error::InvalidState);
        };
        if port == 0 {
            return Err(Error::Unaddressable);
        }
        if self.listeners.iter().flatten().any(|l| l.port == port) {
            return Err(Error::AddressInUse);
        }
        let Some(l) = self.listeners.iter().position(Option::is_none) else {
            return Err(Error::OutOfSockets);
        };
        self.listeners[l] = Some(Listener {
            port,
            config: config.normalized(),
        });
        let l = l as u16;
        if !self.arm(i, l) {
            self.listeners[l as usize] = None;
            return Err(Error::InvalidState);
        }
        debug!("listener {} on port {}", l, port);
        socket.0 = Kind::Listener(l);
        self.rearm();
        Ok(())
    }

    /// Reset the connection (RST) and give the socket back: it returns to
    /// the pool as soon as the RST has been sent. On a listener: stop
    /// listening and reset the connections it still held (not accepted).
    pub fn abort(&mut self, socket: TcpHandle) -> Result<(), Error> {
        match socket.0 {
            Kind::Listener(l) => self.remove_listener(l, true),
            Kind::Socket(i) => {
                let i = i as usize;
                match self.pool.get(i).map(|e| e.role) {
                    Some(Role::Reserved { .. }) => self.set_role(i, Role::Free),
                    Some(Role::Open) => {
                        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                        s.abort();
                        let reclaimable = is_reclaimable(s);
                        self.set_role(i, Role::Closing { deadline: None });
                        if reclaimable {
                            self.set_role(i, Role::Free);
                        }
                    }
                    _ => return Err(Error::InvalidState),
                }
                self.rearm();
                Ok(())
            }
        }
    }

    /// The peer of a connection (`None` for listeners, and once the
    /// connection is gone).
    pub fn peer_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        let i = self.socket_index(socket).ok()?;
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        s.remote_endpoint().map(SocketAddr::from)
    }

    /// The local address of a connection (`None` for listeners and for
    /// sockets not connected).
    pub fn local_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        let i = self.socket_index(socket).ok()?;
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        s.local_endpoint().map(SocketAddr::from)
    }

    /// smoltcp's TCP state of a socket (`None` for listener handles).
    pub fn socket_state(&self, socket: &TcpHandle) -> Option<TcpState> {
        let i = self.socket_index(socket).ok()?;
        Some(self.sockets.get::<tcp::Socket>(self.pool[i].handle).state())
    }

    /// Free room in a connection's TX buffer, in bytes (0 for listeners and
    /// connections that cannot send).
    pub fn send_capacity(&self, socket: &TcpHandle) -> usize {
        let Ok(i) = self.socket_index(socket) else {
            return 0;
        };
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        if s.may_send() {
            s.send_capacity() - s.send_queue()
        } else {
            0
        }
    }

    /// Bytes buffered for reading on a connection.
    pub fn recv_queue(&self, socket: &TcpHandle) -> usize {
        let Ok(i) = self.socket_index(socket) else {
            return 0;
        };
        self.sockets
            .get::<tcp::Socket>(self.pool[i].handle)
            .recv_queue()
    }

    /// How the pool's `N` sockets are used right now.
    pub fn pool_stats(&self) -> PoolStats {
        let mut st = PoolStats::default();
        for e in &self.pool {
            match e.role {
                Role::Free => st.free += 1,
                Role::Reserved { .. } => st.reserved += 1,
                Role::Listening { .. } => st.listening += 1,
                Role::Pending { .. } => st.pending += 1,
                Role::Open => st.open += 1,
                Role::Closing { .. } => st.closing += 1,
            }
        }
        st
    }

    /// Events counted since the stack was created.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What a socket is ready for now, for event loops that poll the server
    /// only when one of its [`interests`](tcpool_core::Server::interests) is
    /// ready: a listener is readable when it has an established connection
    /// to accept; a connection is readable when it has buffered input, has
    /// reached end of stream or failed, and writable when its TX buffer has
    /// room or it failed (so that the error is seen). Handshaking sockets
    /// are ready for nothing.
    pub fn ready(&self, socket: &TcpHandle) -> Interest {
        match socket.0 {
            Kind::Listener(l) => {
                let readable = self.pool.iter().any(|e| {
                    matches!(e.role, Role::Pending { listener, .. } if listener == l)
                        && matches!(
                            self.sockets.get::<tcp::Socket>(e.handle).state(),
                            TcpState::Established | TcpState::CloseWait
                        )
                });
                Interest {
                    readable,
                    writable: false,
                }
            }
            Kind::Socket(i) => {
                let Some(e) = self.pool.get(i as usize) else {
                    return Interest::NONE;
                };
                if e.role != Role::Open {
                    return Interest::NONE;
                }
                let s = self.sockets.get::<tcp::Socket>(e.handle);
                match s.state() {
                    TcpState::SynSent | TcpState::SynReceived | TcpState::Listen => Interest::NONE,
                    _ => Interest {
                        readable: s.can_recv() || !s.may_recv(),
                        writable: s.can_send() || !s.may_send(),
                    },
                }
            }
        }
    }

    /// Half-close a connection: send a FIN once the TX buffer has drained,
    /// and keep receiving (`receive` reports the peer's data, then `Ok(0)`
    /// at its FIN). `close` or `abort` the handle afterwards as usual.
    /// `embedded-nal` has no shutdown; this is the `shutdown(SHUT_WR)` of
    /// this stack. [`Error::InvalidState`] while the handshake is running.
    pub fn shutdown_write(&mut self, socket: &TcpHandle) -> Result<(), Error> {
        let i = self.open_index(socket)?;
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        match s.state() {
            TcpState::SynSent | TcpState::SynReceived | TcpState::Listen => {
                Err(Error::InvalidState)
            }
            _ => {
                s.close();
                Ok(())
            }
        }
    }

    /// Take the stack apart: the interface, the device and the socket set
    /// (every pool socket aborted). What is left of open connections is
    /// lost; use it to move the device to a fresh stack (a simulated
    /// reboot) or to shut down.
    pub fn into_parts(mut self) -> (Interface, D, SocketSet<'a>) {
        for e in &self.pool {
            self.sockets.get_mut::<tcp::Socket>(e.handle).abort();
        }
        (self.iface, self.device, self.sockets)
    }

    /// The pool size, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The stack's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The smoltcp interface (addresses, routes, ...).
    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    /// The smoltcp interface, mutably (e.g. to change addresses after DHCP).
    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The socket set, for sockets outside the pool (DHCP, DNS, UDP...).
    /// Do not remove or reconfigure the pool's sockets.
    pub fn sockets_mut(&mut self) -> &mut SocketSet<'a> {
        &mut self.sockets
    }

    // ----------------------------------------------------------- bookkeeping

    /// The one place where a pool socket changes role.
    fn set_role(&mut self, i: usize, role: Role) {
        let old = self.pool[i].role;
        if old != role {
            trace!("pool socket {}: {} -> {}", i, old.name(), role.name());
        }
        self.pool[i].role = role;
    }

    /// After each incoming packet: listeners that caught a SYN become pending
    /// connections (or, for a duplicate SYN, go back to LISTEN silently), and
    /// fresh listeners are armed.
    fn catch_syns(&mut self) {
        let mut caught = false;
        for i in 0..N {
            let Role::Listening { listener } = self.pool[i].role else {
                continue;
            };
            let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
            let state = s.state();
            let tuple = (s.local_endpoint(), s.remote_endpoint());
            let reclaimable = is_reclaimable(s);
            match state {
                TcpState::Listen => {}
                TcpState::SynReceived => {
                    caught = true;
                    if self.tuple_held_elsewhere(i, tuple) {
                        self.counters.duplicate_syns = self.counters.duplicate_syns.wrapping_add(1);
                        debug!(
                            "pool socket {}: duplicate SYN for a connection already held, dropped",
                            i
                        );
                        let relisten = self.listeners[listener as usize].is_some_and(|l| {
                            let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                            // Both calls are silent: abort() only marks the
                            // socket CLOSED, and listen() resets it (clearing
                            // the tuple, so no RST goes out) before anything
                            // is sent.
                            s.abort();
                            s.listen(IpListenEndpoint::from(l.port)).is_ok()
                        });
                        if !relisten {
                            self.set_role(i, Role::Closing { deadline: None });
                        }
                    } else {
                        self.arrivals = self.arrivals.wrapping_add(1);
                        let arrival = self.arrivals;
                        self.set_role(i, Role::Pending { listener, arrival });
                    }
                }
                _ => {
                    caught = true;
                    let role = if reclaimable {
                        Role::Free
                    } else {
                        Role::Closing { deadline: None }
                    };
                    self.set_role(i, role);
                }
            }
        }
        if caught {
            self.rearm();
        }
    }

    /// Whether a pool socket other than `i` is connected with this 4-tuple.
    fn tuple_held_elsewhere(
        &self,
        i: usize,
        tuple: (Option<IpEndpoint>, Option<IpEndpoint>),
    ) -> bool {
        self.pool.iter().enumerate().any(|(j, e)| {
            if j == i || e.role == Role::Free {
                return false;
            }
            let s = self.sockets.get::<tcp::Socket>(e.handle);
            !matches!(
                s.state(),
                TcpState::Listen | TcpState::Closed | TcpState::TimeWait
            ) && (s.local_endpoint(), s.remote_endpoint()) == tuple
        })
    }

    /// Pool bookkeeping after ingress and after egress.
    fn maintain(&mut self, now: SmolInstant) {
        self.catch_syns();
        let established_timeout = self.config.timeout.map(to_smol_duration);
        let established_keep_alive = self.config.effective_keep_alive().map(to_smol_duration);
        for i in 0..N {
            let role = self.pool[i].role;
            if matches!(
                role,
                Role::Free | Role::Reserved { .. } | Role::Listening { .. }
            ) {
                continue; // nothing to maintain: spare the socket lookup
            }
            let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
            let next = match role {
                Role::Free | Role::Reserved { .. } | Role::Listening { .. } => None,
                Role::Pending { listener, .. } => match s.state() {
                    // A RST during the handshake sends smoltcp back to LISTEN.
                    TcpState::Listen => Some(Role::Listening { listener }),
                    // Reset or timed out before anyone accepted it.
                    TcpState::Closed | TcpState::TimeWait => {
                        is_reclaimable(s).then_some(Role::Free)
                    }
                    TcpState::SynReceived => None,
                    _ => {
                        set_established_timers(s, established_timeout, established_keep_alive);
                        None
                    }
                },
                Role::Open => {
                    if !matches!(
                        s.state(),
                        TcpState::SynSent | TcpState::SynReceived | TcpState::Closed
                    ) {
                        set_established_timers(s, established_timeout, established_keep_alive);
                    }
                    None
                }
                Role::Closing { deadline } => {
                    // Lingering close: discard what the peer still sends, so
                    // its window never closes and its FIN can get in.
                    while s.can_recv() {
                        if s.recv(|b| (b.len(), ())).is_err() {
                            break;
                        }
                    }
                    if is_reclaimable(s) {
                        Some(Role::Free)
                    } else if deadline.is_some_and(|d| now >= d) {
                        debug!("pool socket {}: linger expired, resetting", i);
                        s.abort();
                        self.counters.linger_resets = self.counters.linger_resets.wrapping_add(1);
                        Some(if is_reclaimable(s) {
                            Role::Free
                        } else {
                            Role::Closing { deadline: None }
                        })
                    } else {
                        None
                    }
                }
            };
            if let Some(role) = next {
                self.set_role(i, role);
            }
        }
        self.rearm();
    }

    /// Bring every listener to its backlog of listening sockets (within its
    /// `max_queued` bound and the free pool), releasing any extra.
    fn rearm(&mut self) {
        for l in 0..N {
            let Some(listener) = self.listeners[l] else {
                continue;
            };
            let (mut listening, mut held) = (0u16, 0u16);
            for e in &self.pool {
                match e.role {
                    Role::Listening { listener } if listener as usize == l => {
                        listening += 1;
                        held += 1;
                    }
                    Role::Pending { listener, .. } if listener as usize == l => held += 1,
                    _ => {}
                }
            }
            // A handshake reset by the peer sends its socket back to LISTEN,
            // which can leave one listening socket too many: release it.
            while listening > u16::from(listener.config.backlog) {
                let Some(i) = self.pool.iter().position(
                    |e| matches!(e.role, Role::Listening { listener } if listener as usize == l),
                ) else {
                    break;
                };
                let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                s.close(); // LISTEN -> CLOSED sends nothing
                let role = if is_reclaimable(s) {
                    Role::Free
                } else {
                    Role::Closing { deadline: None }
                };
                self.set_role(i, role);
                listening -= 1;
                held -= 1;
            }
            while listening < u16::from(listener.config.backlog)
                && held < u16::from(listener.config.max_queued)
            {
                let Some(i) = self.free_index() else {
                    return;
                };
                if self.arm(i, l as u16) {
                    listening += 1;
                    held += 1;
                } else {
                    // Cannot happen (free sockets are never open); keep the
                    // socket out of the way until smoltcp lets go of it.
                    self.set_role(i, Role::Closing { deadline: None });
                }
            }
        }
    }

    /// Make free (or reserved) socket `i` listen for listener `l`.
    fn arm(&mut self, i: usize, l: u16) -> bool {
        let Some(listener) = self.listeners[l as usize] else {
            return false;
        };
        let keep_alive = self.config.effective_keep_alive().map(to_smol_duration);
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        // Keep-alive is set from the start (it only acts once established):
        // setting it on an established idle socket sends a probe at once.
        s.set_timeout(Some(to_smol_duration(self.config.handshake_timeout)));
        s.set_keep_alive(keep_alive);
        s.set_nagle_enabled(self.config.nagle);
        if s.listen(IpListenEndpoint::from(listener.port)).is_err() {
            return false;
        }
        self.set_role(i, Role::Listening { listener: l });
        true
    }

    /// A free socket: a CLOSED one first, so that sockets in TIME-WAIT keep
    /// answering retransmitted FINs as long as possible.
    fn free_index(&self) -> Option<usize> {
        let mut time_wait = None;
        for (i, e) in self.pool.iter().enumerate() {
            if e.role != Role::Free {
                continue;
            }
            if self.sockets.get::<tcp::Socket>(e.handle).state() == TcpState::Closed {
                return Some(i);
            }
            time_wait.get_or_insert(i);
        }
        time_wait
    }

    fn remove_listener(&mut self, l: u16, reset: bool) -> Result<(), Error> {
        if self.listeners.get(l as usize).copied().flatten().is_none() {
            return Err(Error::InvalidState);
        }
        self.listeners[l as usize] = None;
        let deadline = self.linger_deadline();
        for i in 0..N {
            match self.pool[i].role {
                Role::Listening { listener } if listener == l => {
                    let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                    // LISTEN -> CLOSED sends nothing.
                    s.close();
                    if is_reclaimable(s) {
                        self.set_role(i, Role::Free);
                    } else {
                        s.abort();
                        self.set_role(i, Role::Closing { deadline: None });
                    }
                }
                Role::Pending { listener, .. } if listener == l => {
                    let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                    if reset {
                        s.abort();
                    } else {
                        close_gracefully(s);
                    }
                    let role = if is_reclaimable(s) {
                        Role::Free
                    } else {
                        Role::Closing {
                            deadline: if reset { None } else { deadline },
                        }
                    };
                    self.set_role(i, role);
                }
                _ => {}
            }
        }
        debug!("listener {} closed", l);
        self.rearm();
        Ok(())
    }

    fn linger_deadline(&self) -> Option<SmolInstant> {
        self.config.linger.map(|d| self.now + to_smol_duration(d))
    }

    /// An ephemeral port no pool socket or listener uses.
    fn ephemeral_port(&mut self) -> u16 {
        for _ in 0..=(u16::MAX - EPHEMERAL_FIRST) {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            let in_use = self.listeners.iter().flatten().any(|l| l.port == p)
                || self.pool.iter().any(|e| {
                    let s = self.sockets.get::<tcp::Socket>(e.handle);
                    s.local_endpoint().is_some_and(|ep| ep.port == p)
                });
            if !in_use {
                return p;
            }
        }
        // Unreachable with fewer than 16384 sockets.
        self.next_port
    }

    fn socket_index(&self, socket: &TcpHandle) -> Result<usize, Error> {
        match socket.0 {
            Kind::Socket(i) if (i as usize) < N => Ok(i as usize),
            _ => Err(Error::InvalidState),
        }
    }

    /// Index of an application-owned connection.
    fn open_index(&self, socket: &TcpHandle) -> Result<usize, Error> {
        let i = self.socket_index(socket)?;
        match self.pool[i].role {
            Role::Open => Ok(i),
            _ => Err(Error::InvalidState),
        }
    }
}

// ------------------------------------------------------------- embedded-nal

impl<D: Device, const N: usize> embedded_nal::TcpClientStack for Stack<'_, D, N> {
    type TcpSocket = TcpHandle;
    type Error = Error;

    /// Reserve a pool socket; [`Error::OutOfSockets`] when none is free.
    fn socket(&mut self) -> Result<TcpHandle, Error> {
        let Some(i) = self.free_index() else {
            return Err(Error::OutOfSockets);
        };
        self.set_role(i, Role::Reserved { port: 0 });
        Ok(TcpHandle(Kind::Socket(i as u16)))
    }

    /// Start (first call) or check an outgoing connection: `WouldBlock` while
    /// the handshake runs, `Ok(())` once established.
    fn connect(&mut self, socket: &mut TcpHandle, remote: SocketAddr) -> nb::Result<(), Error> {
        let i = self.socket_index(socket)?;
        let remote_ep = to_endpoint(remote)?;
        match self.pool[i].role {
            Role::Reserved { port } => {
                let local_port = if port == 0 {
                    self.ephemeral_port()
                } else {
                    port
                };
                let handshake = to_smol_duration(self.config.handshake_timeout);
                let keep_alive = self.config.effective_keep_alive().map(to_smol_duration);
                let nagle = self.config.nagle;
                let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                s.set_timeout(Some(handshake));
                s.set_keep_alive(keep_alive);
                s.set_nagle_enabled(nagle);
                s.connect(self.iface.context(), remote_ep, local_port)
                    .map_err(|e| match e {
                        tcp::ConnectError::Unaddressable => Error::Unaddressable,
                        tcp::ConnectError::InvalidState => Error::InvalidState,
                    })?;
                self.set_role(i, Role::Open);
                Err(nb::Error::WouldBlock)
            }
            Role::Open => {
                let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                match s.state() {
                    TcpState::SynSent | TcpState::SynReceived => Err(nb::Error::WouldBlock),
                    TcpState::Closed => Err(nb::Error::Other(Error::ConnectionRefused)),
                    _ if s.remote_endpoint() == Some(remote_ep) => Ok(()),
                    _ => Err(nb::Error::Other(Error::InvalidState)),
                }
            }
            _ => Err(nb::Error::Other(Error::InvalidState)),
        }
    }

    /// Queue bytes for sending: `WouldBlock` when the TX buffer is full.
    fn send(&mut self, socket: &mut TcpHandle, buffer: &[u8]) -> nb::Result<usize, Error> {
        let i = self.open_index(socket)?;
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        match s.state() {
            TcpState::SynSent | TcpState::SynReceived => return Err(nb::Error::WouldBlock),
            TcpState::Closed => return Err(nb::Error::Other(Error::ConnectionReset)),
            _ => {}
        }
        match s.send_slice(buffer) {
            Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) => Err(nb::Error::Other(Error::InvalidState)),
        }
    }

    /// Read buffered bytes: `WouldBlock` when none, `Ok(0)` only at end of
    /// stream (peer's FIN received and everything before it read).
    fn receive(&mut self, socket: &mut TcpHandle, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        let i = self.open_index(socket)?;
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        match s.recv_slice(buffer) {
            // Nothing buffered yet (smoltcp reports end of stream as
            // `Finished`, never as an empty read).
            Ok(0) => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(tcp::RecvError::InvalidState) => match s.state() {
                TcpState::SynSent | TcpState::SynReceived | TcpState::Listen => {
                    Err(nb::Error::WouldBlock)
                }
                _ => Err(nb::Error::Other(Error::ConnectionReset)),
            },
        }
    }

    /// Graceful close (FIN after the TX buffer drains), or stop a listener.
    /// The pool socket returns to the pool only once the close has completed.
    fn close(&mut self, socket: TcpHandle) -> Result<(), Error> {
        match socket.0 {
            Kind::Listener(l) => self.remove_listener(l, false),
            Kind::Socket(i) => {
                let i = i as usize;
                match self.pool.get(i).map(|e| e.role) {
                    Some(Role::Reserved { .. }) => self.set_role(i, Role::Free),
                    Some(Role::Open) => {
                        let deadline = self.linger_deadline();
                        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                        close_gracefully(s);
                        let reclaimable = is_reclaimable(s);
                        self.set_role(i, Role::Closing { deadline });
                        if reclaimable {
                            self.set_role(i, Role::Free);
                        }
                    }
                    _ => return Err(Error::InvalidState),
                }
                self.rearm();
                Ok(())
            }
        }
    }
}

impl<D: Device, const N: usize> tcpool_core::Backend for Stack<'_, D, N> {
    /// [`Stack::abort`]: the peer gets a reset.
    fn abort(&mut self, socket: TcpHandle) -> Result<(), Error> {
        Stack::abort(self, socket)
    }

    fn local_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        Stack::local_addr(self, socket)
    }
}

impl<D: Device, const N: usize> embedded_nal::TcpFullStack for Stack<'_, D, N> {
    /// Set the local port of a socket from `socket()` (before `listen` or
    /// `connect`).
    fn bind(&mut self, socket: &mut TcpHandle, local_port: u16) -> Result<(), Error> {
        let i = self.socket_index(socket)?;
        match self.pool[i].role {
            Role::Reserved { .. } => {
                self.set_role(i, Role::Reserved { port: local_port });
                Ok(())
            }
            _ => Err(Error::InvalidState),
        }
    }

    /// Turn a bound socket into a listener with [`Config::listen`]'s backlog.
    fn listen(&mut self, socket: &mut TcpHandle) -> Result<(), Error> {
        let config = self.config.listen;
        self.listen_with(socket, config)
    }

    /// Hand over the oldest established connection of this listener.
    fn accept(&mut self, socket: &mut TcpHandle) -> nb::Result<(TcpHandle, SocketAddr), Error> {
        let Kind::Listener(l) = socket.0 else {
            return Err(nb::Error::Other(Error::InvalidState));
        };
        if self.listeners.get(l as usize).copied().flatten().is_none() {
            return Err(nb::Error::Other(Error::InvalidState));
        }
        let mut best: Option<(usize, u32)> = None;
        for (i, e) in self.pool.iter().enumerate() {
            let Role::Pending { listener, arrival } = e.role else {
                continue;
            };
            if listener != l {
                continue;
            }
            let s = self.sockets.get::<tcp::Socket>(e.handle);
            if !matches!(s.state(), TcpState::Established | TcpState::CloseWait) {
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
        let timeout = self.config.timeout.map(to_smol_duration);
        let keep_alive = self.config.effective_keep_alive().map(to_smol_duration);
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        set_established_timers(s, timeout, keep_alive);
        let Some(peer) = s.remote_endpoint() else {
            return Err(nb::Error::WouldBlock);
        };
        self.set_role(i, Role::Open);
        self.counters.accepted = self.counters.accepted.wrapping_add(1);
        self.rearm();
        Ok((TcpHandle(Kind::Socket(i as u16)), SocketAddr::from(peer)))
    }
}

// ------------------------------------------------------------------ helpers

impl<const N: usize> HoldPorts for [Option<Listener>; N] {
    fn holds(&self, port: u16) -> bool {
        self.iter()
            .flatten()
            .any(|l| l.port == port && l.config.overflow == Overflow::Hold)
    }
}

fn tcp_socket<'s, 'a>(set: &'s mut SocketSet<'a>, h: SocketHandle) -> &'s mut tcp::Socket<'a> {
    set.get_mut::<tcp::Socket>(h)
}

/// smoltcp's `close()`, except in SYN-RECEIVED, where it resets instead.
///
/// smoltcp 0.14 mishandles a close in SYN-RECEIVED: the socket moves to
/// FIN-WAIT-1 without having sent its FIN, takes the peer's ACK of the
/// SYN-ACK for the ACK of that FIN, and waits in FIN-WAIT-2 without ever
/// sending one. Only handshakes in progress are affected (a listener closed
/// with connections still handshaking, or a simultaneous open), and for those
/// a RST is the honest answer anyway.
fn close_gracefully(s: &mut tcp::Socket) {
    if s.state() == TcpState::SynReceived {
        s.abort();
    } else {
        s.close();
    }
}

/// smoltcp is done with the socket: FIN exchanged (TIME-WAIT, which it may
/// finish while free), or CLOSED with no RST left to send.
fn is_reclaimable(s: &tcp::Socket) -> bool {
    match s.state() {
        TcpState::TimeWait => true,
        TcpState::Closed => s.remote_endpoint().is_none(),
        _ => false,
    }
}

/// Switch a socket from the handshake timeout to the established one.
fn set_established_timers(
    s: &mut tcp::Socket,
    timeout: Option<SmolDuration>,
    keep_alive: Option<SmolDuration>,
) {
    if s.timeout() != timeout {
        s.set_timeout(timeout);
    }
    // Normally set since the socket was armed; setting it again on an idle
    // established socket would send a probe at once, so only if it differs.
    if s.keep_alive() != keep_alive {
        s.set_keep_alive(keep_alive);
    }
}

fn to_endpoint(addr: SocketAddr) -> Result<IpEndpoint, Error> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        #[cfg(feature = "ipv6")]
        IpAddr::V6(a) => IpAddress::Ipv6(a),
        #[cfg(not(feature = "ipv6"))]
        IpAddr::V6(_) => return Err(Error::Unaddressable),
    };
    if addr.port() == 0 || ip.is_unspecified() {
        return Err(Error::Unaddressable);
    }
    Ok(IpEndpoint::new(ip, addr.port()))
}

/// tcpool time (ms) to smoltcp time.
pub(crate) fn to_smol(now: Instant) -> SmolInstant {
    // smoltcp counts microseconds in an i64: clamp so the conversion cannot
    // overflow (that is 292,000 years of uptime).
    let millis = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    SmolInstant::from_millis(millis.min(i64::MAX / 1000))
}

/// smoltcp time to tcpool time, rounded *up* to the millisecond, so that a
/// caller polling at the returned instant is never early (which would make it
/// spin on a deadline that is a fraction of a millisecond away).
pub(crate) fn from_smol_ceil(t: SmolInstant) -> Instant {
    let micros = t.total_micros().max(0) as u64;
    Instant::from_millis(micros.div_ceil(1000))
}

/// A core duration as a smoltcp one, capped at about 35 years so that adding
/// it to an instant cannot overflow.
fn to_smol_duration(d: Duration) -> SmolDuration {
    const MAX_MICROS: u64 = 1 << 50;
    SmolDuration::from_micros(
        u64::try_from(d.as_micros()).map_or(MAX_MICROS, |m| m.min(MAX_MICROS)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_conversion_rounds_up_to_the_millisecond() {
        assert_eq!(
            from_smol_ceil(SmolInstant::from_micros(10_001)).as_millis(),
            11
        );
        assert_eq!(
            from_smol_ceil(SmolInstant::from_micros(10_000)).as_millis(),
            10
        );
        assert_eq!(from_smol_ceil(SmolInstant::from_micros(-5)).as_millis(), 0);
        assert_eq!(to_smol(Instant::from_millis(1234)).total_millis(), 1234);
        assert_eq!(
            to_smol(Instant::from_millis(u64::MAX)).total_millis(),
            i64::MAX / 1000
        );
    }

    #[test]
    fn endpoints_reject_port_zero_and_unspecified() {
        let ok: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(to_endpoint(ok).is_ok());
        assert_eq!(
            to_endpoint("10.0.0.1:0".parse().unwrap()),
            Err(Error::Unaddressable)
        );
        assert_eq!(
            to_endpoint("0.0.0.0:80".parse().unwrap()),
            Err(Error::Unaddressable)
        );
    }
}
