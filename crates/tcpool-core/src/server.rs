//! The connection-pool server.

use core::net::SocketAddr;
use core::time::Duration;

use embedded_nal::{TcpError, TcpErrorKind};

use crate::backend::Backend;

use crate::config::{Config, WhenFull};
use crate::error::ListenError;
use crate::fmt::{debug, warning};
use crate::handler::{CloseReason, Closed, ConnId, Handler, Request};
use crate::interest::Interest;
use crate::slot::{Slot, SlotState};
use crate::stats::{Stats, bump};
use crate::time::Instant;

/// A TCP server with a fixed pool of `N` connection slots, each with an
/// `RX`-byte receive buffer and a `TX`-byte transmit buffer.
///
/// The server does not own the stack: [`poll`](Server::poll) takes it, does
/// every piece of work that can be done without blocking, and returns.
/// Memory is fixed at compile time (see [`Server::SLOT_BYTES`]); nothing is
/// allocated.
///
/// Guarantees:
/// - an established connection is never dropped to make room, unless
///   [`WhenFull::EvictIdlest`] is chosen;
/// - every byte received before the peer's end of stream is offered to
///   [`Handler::on_data`] before [`Handler::on_peer_closed`] is called;
/// - output is never dropped silently: writes are bounded by the buffer
///   room, and a graceful close sends what is queued first;
/// - an error on one connection closes that connection only, with a
///   [`CloseReason`] that is counted in [`Stats::closed`];
/// - [`Handler::on_closed`] is called exactly once per connection.
///
/// ```
/// use tcpool_core::mock::MockStack;
/// use tcpool_core::{Config, Conn, Handler, Instant, Server};
///
/// struct Echo;
/// impl Handler for Echo {
///     type State = ();
///     fn on_open(&mut self, _: &mut Conn<'_>) {}
///     fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
///         conn.write(data)
///     }
/// }
///
/// let mut stack = MockStack::new();
/// let mut server: Server<MockStack, Echo, 4, 256, 256> = Server::new(Echo, Config::new());
/// server.listen(&mut stack, 7000).unwrap();
///
/// let client = stack.connect_client(7000).unwrap();
/// client.send(b"hello");
/// server.poll(&mut stack, Instant::from_millis(0));
/// assert_eq!(client.recv_all(), b"hello");
/// ```
pub struct Server<S, H, const N: usize = 4, const RX: usize = 1024, const TX: usize = 1024>
where
    S: Backend,
    H: Handler,
{
    handler: H,
    config: Config,
    listener: Option<S::TcpSocket>,
    slots: [Slot<S::TcpSocket, H::State, RX, TX>; N],
    stats: Stats,
    next_id: u32,
    accept_retry_at: Option<Instant>,
    deferring: bool,
    last_now: Instant,
}

/// Where a close came from, for the stack error that caused it.
fn reason_for<E: TcpError>(e: &E) -> CloseReason {
    match e.kind() {
        TcpErrorKind::PipeClosed => CloseReason::Reset,
        _ => CloseReason::StackError,
    }
}

impl<S, H, const N: usize, const RX: usize, const TX: usize> Server<S, H, N, RX, TX>
where
    S: Backend,
    H: Handler,
{
    const SIZES_OK: () = {
        assert!(N > 0, "a server needs at least one slot (N > 0)");
        assert!(N <= u16::MAX as usize, "at most 65535 slots");
        assert!(RX > 0, "the receive buffer must not be empty (RX > 0)");
        assert!(TX > 0, "the transmit buffer must not be empty (TX > 0)");
    };

    /// Bytes one slot takes in memory: its buffers, state and socket handle.
    pub const SLOT_BYTES: usize = core::mem::size_of::<Slot<S::TcpSocket, H::State, RX, TX>>();

    /// A server with `handler` and `config`, not yet listening. `const`, so a
    /// server can live in a `static`. Sizes that make no sense (`N`, `RX` or
    /// `TX` of zero) fail to compile.
    pub const fn new(handler: H, config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        Server {
            handler,
            config,
            listener: None,
            slots: [const { Slot::new() }; N],
            stats: Stats {
                accepted: 0,
                deferred: 0,
                refused: 0,
                evicted: 0,
                accept_errors: 0,
                close_errors: 0,
                linger_expired: 0,
                closed: crate::stats::ClosedCounts::new(),
                bytes_in: 0,
                bytes_out: 0,
                active: 0,
                peak_active: 0,
            },
            next_id: 0,
            accept_retry_at: None,
            deferring: false,
            last_now: Instant::ZERO,
        }
    }

    /// Opens a socket on the stack, binds `port` and listens.
    pub fn listen(&mut self, stack: &mut S, port: u16) -> Result<(), ListenError<S::Error>> {
        if self.listener.is_some() {
            return Err(ListenError::AlreadyListening);
        }
        let mut socket = stack.socket().map_err(ListenError::Socket)?;
        if let Err(e) = stack.bind(&mut socket, port) {
            let _ = stack.close(socket);
            return Err(ListenError::Bind(e));
        }
        if let Err(e) = stack.listen(&mut socket) {
            let _ = stack.close(socket);
            return Err(ListenError::Listen(e));
        }
        debug!("listening on port {}", port);
        self.listener = Some(socket);
        Ok(())
    }

    /// The listening socket, if any (for backend-specific queries such as
    /// the bound address).
    pub fn listener(&self) -> Option<&S::TcpSocket> {
        self.listener.as_ref()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections in a slot now.
    pub fn active(&self) -> usize {
        self.stats.active as usize
    }

    /// The pool size `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The number of connections served at once: `max_connections` clamped
    /// to `1..=N`.
    pub fn max_connections(&self) -> usize {
        self.config.max_connections.clamp(1, N)
    }

    /// Changes how many connections are served at once (clamped to `1..=N`).
    /// Lowering it closes nobody: it only stops accepting until enough
    /// connections have ended.
    pub fn set_max_connections(&mut self, n: usize) {
        self.config.max_connections = n;
    }

    /// The state of each slot, in slot order.
    pub fn slot_states(&self) -> impl Iterator<Item = SlotState> + '_ {
        self.slots.iter().map(|s| s.state())
    }

    /// Runs a closure on one live connection's handle and state, for output
    /// that does not come from a callback (a push notification, say).
    /// Returns `None` if no live connection has that id.
    pub fn with_conn<R>(
        &mut self,
        id: ConnId,
        now: Instant,
        f: impl FnOnce(&mut crate::Conn<'_>, &mut H::State) -> R,
    ) -> Option<R> {
        let slot = self.slots.iter_mut().find(|s| s.is_live() && s.id == id)?;
        let (mut conn, state) = slot.conn(now);
        let r = f(&mut conn, state?);
        slot.after_callback();
        Some(r)
    }

    fn pool_full(&self) -> bool {
        self.active() >= self.max_connections()
    }

    /// The slot to evict under `EvictIdlest`: live, idle at least
    /// `min_idle`, idle longest, oldest id on ties.
    fn eviction_candidate(&self, now: Instant, min_idle: Duration) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.is_live() && now.saturating_duration_since(s.last_activity) >= min_idle
            })
            .min_by_key(|(_, s)| (s.last_activity, s.id))
            .map(|(i, _)| i)
    }

    /// Whether the server wants to call `accept` at `now`.
    fn wants_accept(&self, now: Instant) -> bool {
        if self.listener.is_none() || self.accept_retry_at.is_some_and(|t| now < t) {
            return false;
        }
        if !self.pool_full() {
            return true;
        }
        match self.config.when_full {
            WhenFull::Defer => false,
            WhenFull::Reject => true,
            WhenFull::EvictIdlest { min_idle } => self.eviction_candidate(now, min_idle).is_some(),
        }
    }

    /// Advances everything that can advance without blocking: accepts new
    /// clients, moves bytes between the stack and the slots, runs the
    /// handler's callbacks, closes what should close, enforces timeouts.
    ///
    /// Returns true if anything happened (a byte moved, a connection opened
    /// or closed); a caller driving an in-process stack can poll until it
    /// returns false. `now` must not go backwards.
    pub fn poll(&mut self, stack: &mut S, now: Instant) -> bool {
        self.last_now = now;
        let mut progressed = self.accept_new(stack, now);
        for i in 0..N {
            progressed |= self.service(stack, i, now);
        }
        progressed
    }

    /// The latest time by which [`poll`](Server::poll) must be called again
    /// even if no socket becomes ready: the nearest idle or linger deadline,
    /// the end of an accept backoff, or the time of the last poll if there is
    /// work left right now. `None`: nothing is due until a socket is ready.
    pub fn poll_at(&self) -> Option<Instant> {
        let now = self.last_now;
        let mut next: Option<Instant> = None;
        let mut soon = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let Some(t) = self.accept_retry_at {
            soon(t);
        }
        if self.pool_full()
            && let WhenFull::EvictIdlest { min_idle } = self.config.when_full
            && self.listener.is_some()
            && let Some(t) = self
                .slots
                .iter()
                .filter(|s| s.is_live())
                .map(|s| s.last_activity + min_idle)
                .min()
        {
            soon(t);
        }
        for slot in &self.slots {
            match slot.state() {
                SlotState::Free => {}
                SlotState::Open | SlotState::PeerClosed => {
                    // `writable_due`: a short write armed on_writable and the
                    // last flush already made room, so no socket event will come.
                    if (slot.rx_dirty && !slot.rx.is_empty())
                        || slot.more_to_read
                        || slot.should_report_eof()
                        || slot.writable_due()
                    {
                        soon(now);
                    }
                    if let Some(idle) = self.config.idle_timeout {
                        soon(slot.last_activity + idle);
                    }
                }
                SlotState::Closing { deadline, .. } => {
                    soon(if slot.tx.is_empty() { now } else { deadline });
                }
            }
        }
        next
    }

    /// The sockets this server waits on and what it waits for, for backends
    /// that can sleep until a socket is ready (poll(2), `lwip_select`). A
    /// socket absent from the list, or with [`Interest::NONE`], needs no
    /// wake-up; deadlines come from [`poll_at`](Server::poll_at).
    pub fn interests(&self) -> impl Iterator<Item = (&S::TcpSocket, Interest)> + '_ {
        let accept = self.wants_accept(self.last_now);
        let listener = self
            .listener
            .iter()
            .filter(move |_| accept)
            .map(|l| (l, Interest::READABLE));
        let conns = self.slots.iter().filter_map(|slot| {
            let socket = slot.socket.as_ref()?;
            let interest = Interest {
                readable: slot.state() == SlotState::Open && !slot.rx.is_full(),
                writable: !slot.tx.is_empty(),
            };
            (!interest.is_none()).then_some((socket, interest))
        });
        listener.chain(conns)
    }

    fn accept_new(&mut self, stack: &mut S, now: Instant) -> bool {
        let mut progressed = false;
        if self.accept_retry_at.is_some_and(|t| now >= t) {
            self.accept_retry_at = None;
        }
        // Each round takes one client; the bound keeps one poll short.
        for _ in 0..=N {
            if self.pool_full()
                && self.config.when_full == WhenFull::Defer
                && self.listener.is_some()
            {
                if !self.deferring {
                    self.deferring = true;
                    bump(&mut self.stats.deferred);
                    debug!(
                        "pool full ({} connections): new clients wait in the backlog",
                        self.active()
                    );
                }
                break;
            }
            self.deferring = false;
            if !self.wants_accept(now) {
                break;
            }
            let Some(listener) = self.listener.as_mut() else {
                break;
            };
            match stack.accept(listener) {
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(_e)) => {
                    bump(&mut self.stats.accept_errors);
                    warning!(
                        "accept failed; retrying in {} ms",
                        self.config.accept_backoff.as_millis() as u64
                    );
                    self.accept_retry_at = Some(now + self.config.accept_backoff);
                    break;
                }
                Ok((socket, peer)) => {
                    progressed = true;
                    self.admit(stack, socket, peer, now);
                }
            }
        }
        progressed
    }

    /// Places a freshly accepted connection, or refuses it.
    fn admit(&mut self, stack: &mut S, mut socket: S::TcpSocket, peer: SocketAddr, now: Instant) {
        if self.pool_full() {
            match self.config.when_full {
                WhenFull::EvictIdlest { min_idle } => {
                    match self.eviction_candidate(now, min_idle) {
                        Some(victim) => {
                            bump(&mut self.stats.evicted);
                            debug!(
                                "evicting conn {} (idlest) for a new client",
                                self.slots[victim].id
                            );
                            self.finish(stack, victim, CloseReason::Evicted, now);
                        }
                        None => return self.refuse(stack, socket, b""),
                    }
                }
                _ => {
                    let banner = self.config.reject_banner;
                    if !banner.is_empty() {
                        let _ = stack.send(&mut socket, banner);
                    }
                    return self.refuse(stack, socket, b"");
                }
            }
        }
        let over_ip_cap = self.config.max_per_ip.is_some_and(|cap| {
            self.slots
                .iter()
                .filter(|s| !s.is_free() && s.peer.ip() == peer.ip())
                .count()
                >= cap
        });
        if over_ip_cap || !self.handler.admit(peer) {
            return self.refuse(stack, socket, b"");
        }
        let Some(i) = self.slots.iter().position(|s| s.is_free()) else {
            // Unreachable while `active` is kept right; refuse rather than panic.
            return self.refuse(stack, socket, b"");
        };
        let id = ConnId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        bump(&mut self.stats.accepted);
        bump(&mut self.stats.active);
        self.stats.peak_active = self.stats.peak_active.max(self.stats.active);
        let slot = &mut self.slots[i];
        slot.open(socket, id, peer, now);
        let (mut conn, _) = slot.conn(now);
        let state = self.handler.on_open(&mut conn);
        slot.user = Some(state);
        slot.after_callback();
    }

    fn refuse(&mut self, stack: &mut S, socket: S::TcpSocket, _why: &[u8]) {
        bump(&mut self.stats.refused);
        if stack.close(socket).is_err() {
            bump(&mut self.stats.close_errors);
        }
    }

    /// Frees slot `i` now: closes its socket, counts the reason, hands the
    /// state back to the handler.
    fn finish(&mut self, stack: &mut S, i: usize, reason: CloseReason, now: Instant) {
        let slot = &mut self.slots[i];
        if slot.is_free() {
            return;
        }
        if reason.is_error() {
            warning!("conn {} closed: {}", slot.id, reason);
        } else {
            debug!("conn {} closed: {}", slot.id, reason);
        }
        let closed = Closed {
            id: slot.id,
            peer: slot.peer,
            reason,
            bytes_in: slot.bytes_in,
            bytes_out: slot.bytes_out,
            opened_at: slot.opened_at,
            closed_at: now,
        };
        let (socket, state) = slot.release();
        let reset = matches!(reason, CloseReason::Aborted | CloseReason::Evicted);
        if let Some(socket) = socket
            && if reset {
                stack.abort(socket)
            } else {
                stack.close(socket)
            }
            .is_err()
        {
            bump(&mut self.stats.close_errors);
        }
        self.stats.closed.record(reason);
        self.stats.active = self.stats.active.saturating_sub(1);
        if let Some(state) = state {
            self.handler.on_closed(&closed, state);
        }
    }

    /// Sends queued output until the stack takes no more.
    #[inline]
    fn flush(&mut self, stack: &mut S, i: usize, now: Instant) -> Result<(), CloseReason> {
        if self.slots[i].tx.is_empty() {
            // The common case (every idle slot, twice per poll), answered
            // without a call.
            return Ok(());
        }
        self.send_queued(stack, i, now)
    }

    fn send_queued(&mut self, stack: &mut S, i: usize, now: Instant) -> Result<(), CloseReason> {
        let slot = &mut self.slots[i];
        let Some(mut socket) = slot.socket.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        while !slot.tx.is_empty() {
            match stack.send(&mut socket, slot.tx.data()) {
                Ok(0) | Err(nb::Error::WouldBlock) => break,
                Ok(n) => {
                    let n = n.min(slot.tx.len());
                    slot.sent(n, now);
                    self.stats.bytes_out += n as u64;
                }
                Err(nb::Error::Other(e)) => {
                    result = Err(reason_for(&e));
                    break;
                }
            }
        }
        slot.socket = Some(socket);
        result
    }

    /// Reads at most `budget` bytes into the receive buffer. Returns how
    /// many it read, and whether it stopped only because the buffer filled
    /// (so the stack may hold more).
    fn read(
        &mut self,
        stack: &mut S,
        i: usize,
        now: Instant,
        budget: usize,
    ) -> Result<(usize, bool), CloseReason> {
        let slot = &mut self.slots[i];
        let Some(mut socket) = slot.socket.take() else {
            return Ok((0, false));
        };
        let mut result = Ok(());
        let mut left = budget;
        slot.more_to_read = false;
        while slot.state() == SlotState::Open && !slot.rx.is_full() {
            if left == 0 {
                slot.more_to_read = true;
                break;
            }
            let spare = slot.rx.spare_mut();
            let want = spare.len().min(left);
            // Never hand the stack an empty buffer: `Ok(0)` must mean end of stream.
            debug_assert!(want > 0);
            match stack.receive(&mut socket, &mut spare[..want]) {
                Ok(0) => slot.peer_finished(),
                Ok(n) => {
                    let n = n.min(want);
                    slot.received(n, now);
                    self.stats.bytes_in += n as u64;
                    left -= n;
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => {
                    result = Err(reason_for(&e));
                    break;
                }
            }
        }
        let filled = slot.state() == SlotState::Open && slot.rx.is_full() && left > 0;
        slot.socket = Some(socket);
        result.map(|()| (budget - left, filled))
    }

    /// One slot's share of a poll.
    fn service(&mut self, stack: &mut S, i: usize, now: Instant) -> bool {
        let before = {
            let s = &self.slots[i];
            (s.state(), s.bytes_in, s.bytes_out)
        };
        if before.0 == SlotState::Free {
            return false;
        }
        if let Err(reason) = self.service_inner(stack, i, now) {
            self.finish(stack, i, reason, now);
            return true;
        }
        let s = &self.slots[i];
        (s.state(), s.bytes_in, s.bytes_out) != before
    }

    fn service_inner(&mut self, stack: &mut S, i: usize, now: Instant) -> Result<(), CloseReason> {
        if let SlotState::Closing { reason, deadline } = self.slots[i].state() {
            return self.continue_close(stack, i, reason, deadline, now);
        }
        self.flush(stack, i, now)?;
        let mut budget = match self.config.read_budget {
            0 => RX,
            b => b,
        };
        loop {
            let (read, filled) = self.read(stack, i, now, budget)?;
            budget -= read;
            self.run_callbacks(i, now);
            if self.slots[i].overflowed() {
                let slot = &mut self.slots[i];
                warning!(
                    "conn {}: a frame does not fit the {}-byte receive buffer",
                    slot.id,
                    RX
                );
                slot.request = Request::Close(CloseReason::RxOverflow);
            }
            if let Some(idle) = self.config.idle_timeout {
                let slot = &mut self.slots[i];
                if slot.request == Request::None
                    && now.saturating_duration_since(slot.last_activity) >= idle
                {
                    slot.request = Request::Close(CloseReason::IdleTimeout);
                }
            }
            match self.slots[i].request {
                Request::None => self.flush(stack, i, now)?,
                Request::Abort => return Err(CloseReason::Aborted),
                Request::Close(reason) => {
                    let linger = self.config.linger;
                    self.slots[i].begin_close(reason, now, linger);
                    return self.continue_close(stack, i, reason, now + linger, now);
                }
            }
            // A read budget larger than the receive buffer: read again while
            // the buffer filled (the stack may hold more), the handler made
            // room and the output drained, instead of waiting for the next
            // poll (and the readiness check before it).
            let slot = &self.slots[i];
            if !(filled && budget > 0 && !slot.rx.is_full() && slot.tx.is_empty()) {
                return Ok(());
            }
        }
    }

    fn continue_close(
        &mut self,
        stack: &mut S,
        i: usize,
        reason: CloseReason,
        deadline: Instant,
        now: Instant,
    ) -> Result<(), CloseReason> {
        self.flush(stack, i, now)?;
        if self.slots[i].tx.is_empty() {
            self.finish(stack, i, reason, now);
        } else if now >= deadline {
            bump(&mut self.stats.linger_expired);
            warning!(
                "conn {}: output not flushed within the linger time",
                self.slots[i].id
            );
            self.finish(stack, i, reason, now);
        }
        Ok(())
    }

    /// Offers input, reports end of stream and writability to the handler.
    fn run_callbacks(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        if slot.writable_due() && slot.request == Request::None {
            slot.writable_after = None;
            let (mut conn, state) = slot.conn(now);
            if let Some(state) = state {
                self.handler.on_writable(&mut conn, state);
            }
            slot.after_callback();
        }
        while slot.rx_dirty && !slot.rx.is_empty() && slot.request == Request::None {
            let (mut conn, state, input) = slot.conn_with_input(now);
            let Some(state) = state else { break };
            let used = self.handler.on_data(&mut conn, state, input);
            slot.consumed(used);
            slot.after_callback();
        }
        if slot.should_report_eof() {
            slot.eof_reported = true;
            let (mut conn, state) = slot.conn(now);
            if let Some(state) = state {
                self.handler.on_peer_closed(&mut conn, state);
            }
            slot.after_callback();
        }
    }

    /// Closes every connection (output is flushed as far as the stack takes
    /// it right now, then the connection is closed with
    /// [`CloseReason::Shutdown`]) and the listening socket. The server can
    /// [`listen`](Server::listen) again afterwards.
    pub fn shutdown(&mut self, stack: &mut S, now: Instant) {
        for i in 0..N {
            if !self.slots[i].is_free() {
                let _ = self.flush(stack, i, now);
                self.finish(stack, i, CloseReason::Shutdown, now);
            }
        }
        if let Some(listener) = self.listener.take()
            && stack.close(listener).is_err()
        {
            bump(&mut self.stats.close_errors);
        }
        // A later listen starts afresh, not inside an old accept backoff.
        self.accept_retry_at = None;
        self.deferring = false;
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
