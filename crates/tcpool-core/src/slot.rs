//! One connection's place in the pool: its buffers, handler state and the
//! state machine that says what may happen next.
//!
//! ```text
//!  Free ──accept──▶ Open ──peer FIN──▶ PeerClosed
//!                    │                    │
//!                    └──close/timeout─────┴──▶ Closing ──output flushed or linger over──▶ Free
//!  any state but Free ──reset, stack error, abort, eviction──▶ Free
//! ```
//!
//! A slot does no I/O and holds no socket: the [`Pool`](crate::pool::Pool)
//! decides, the driver ([`Server`](crate::Server)) moves the bytes. Every
//! field is private; every change of state goes through
//! `Slot::set_state`, which logs it at trace level.
//!
//! Every field's empty value is all zero bytes (enums with `repr(u8)` and
//! their empty variant first), so a pool in a `static` lands in `.bss`.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::time::Duration;

use embedded_nal::TcpErrorKind;

use crate::buffer::Buffer;
use crate::fmt::trace;
use crate::handler::{CloseReason, Closed, Conn, ConnId, Handler, Request};
use crate::stats::Stats;
use crate::time::Instant;

/// Where a slot is in its life.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum SlotState {
    /// No connection.
    Free,
    /// Connected; input and output flow.
    Open,
    /// The peer ended its side; output may still flow.
    PeerClosed,
    /// Flushing output before closing, until `deadline` at the latest.
    Closing {
        /// Why the connection is closing.
        reason: CloseReason,
        /// When the close happens even if output is still pending.
        deadline: Instant,
    },
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotState::Free => f.write_str("free"),
            SlotState::Open => f.write_str("open"),
            SlotState::PeerClosed => f.write_str("peer-closed"),
            SlotState::Closing { reason, .. } => write!(f, "closing({reason})"),
        }
    }
}

/// [`SlotState`] as a slot stores it: the closing reason and deadline live
/// in fields of their own, so the state is one byte (zero: free).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Phase {
    Free,
    Open,
    PeerClosed,
    Closing,
}

const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// The stack's error kind that ended a connection, stored so that "none" is
/// a zero byte (an `Option<TcpErrorKind>` would not be).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[repr(u8)]
enum StackError {
    None,
    PipeClosed,
    Other,
}

/// Where a slot's service stands within one poll: the driver asks the pool
/// for the next action until it says it is done.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Step {
    /// Not being serviced.
    Idle,
    /// Sending queued output before reading.
    FlushFirst,
    /// Reading, within the read budget.
    Read,
    /// Sending what the callbacks queued; then done.
    FlushAfter,
    /// Sending what the callbacks queued; then another read round if the
    /// receive buffer had filled and the handler made room.
    FlushAfterMore,
    /// Closing: sending what is left, within the linger time.
    CloseFlush,
    /// Shutting down: sending what the stack takes now, then closing.
    ShutdownFlush,
    /// The slot was freed: the driver must close its socket.
    Release,
    /// The slot was freed with a reset: the driver must abort its socket.
    ReleaseReset,
    /// Nothing more this poll.
    Finished,
}

/// One slot. `repr(C)` to fix one thing about the layout: the fixed-size
/// bookkeeping sits between the receive and the transmit buffer (the other
/// fields come after both, small ones last, so that nothing is padded).
///
/// Why: a handler that passes input through (an echo, a proxy) copies from
/// `rx` to `tx`, and when the destination lies less than 64 bytes past the
/// source modulo 4 KiB, the copy's loads falsely depend on its own stores
/// (4K aliasing). With the two buffers adjacent and `RX` a multiple of 4096,
/// `tx`'s data was exactly 16 bytes (a buffer header) past that: on the
/// benchmark machine (AMD EPYC, glibc 2.36, whose `memcpy` uses `rep movsb`
/// from 4 KiB on) a 16 KiB copy took 6.6 µs instead of 0.2 µs, the largest
/// user-space cost of the echo server in `benches/std_peers.rs`. Pinned by
/// the unit test `buffers_are_not_4k_aliased`.
#[repr(C)]
pub(crate) struct Slot<St, const RX: usize, const TX: usize> {
    rx: Buffer<[u8; RX]>,
    // Fixed-size bookkeeping.
    opened_at: Instant,
    last_activity: Instant,
    bytes_in: u64,
    bytes_out: u64,
    /// The handler made a short write; call `on_writable` once the free
    /// room grows beyond this.
    writable_after: Option<u32>,
    peer: SocketAddr,
    tx: Buffer<[u8; TX]>,
    /// Read budget left in this poll.
    budget: u32,
    /// While live, the handler's deadline ([`Conn::set_deadline`]); while
    /// closing, the end of the linger time.
    deadline: Option<Instant>,
    /// Since when output has waited without the stack taking a byte (while
    /// `tx_waiting`).
    tx_waiting_since: Instant,
    id: ConnId,
    phase: Phase,
    /// Why the connection is closing (while closing).
    reason: CloseReason,
    /// Output is waiting: `tx_waiting_since` is meaningful.
    tx_waiting: bool,
    /// The stack's error kind, when a stack error ends the connection.
    error: StackError,
    request: Request,
    step: Step,
    /// The stack answered `WouldBlock` to a send in this poll.
    send_blocked: bool,
    /// The stack answered `WouldBlock` (or end of stream) to a receive in
    /// this poll.
    recv_blocked: bool,
    /// The handler should be offered the buffered input (new input arrived,
    /// or it consumed some last time, or output drained since).
    rx_dirty: bool,
    /// The last offer of input consumed nothing.
    stalled: bool,
    /// The read budget ran out with room left: there may be more to read.
    more_to_read: bool,
    /// `on_peer_closed` has been called.
    eof_reported: bool,
    /// Set by [`Conn`] when a write came up short.
    short_write: bool,
    /// An async handler's task waits in a read that takes input straight
    /// from the socket: the driver leaves the socket to it.
    direct_reader: bool,
    /// A read or write straight from an async task failed with the error
    /// in `error`: the slot's next turn ends the connection.
    direct_failed: bool,
    user: Option<St>,
}

impl<St, const RX: usize, const TX: usize> Slot<St, RX, TX> {
    pub(crate) const fn new() -> Self {
        Slot {
            phase: Phase::Free,
            reason: CloseReason::Local,
            tx_waiting: false,
            user: None,
            id: ConnId::new(0),
            peer: UNSPECIFIED,
            opened_at: Instant::ZERO,
            last_activity: Instant::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            rx: Buffer::new(),
            tx: Buffer::new(),
            budget: 0,
            deadline: None,
            tx_waiting_since: Instant::ZERO,
            error: StackError::None,
            request: Request::None,
            step: Step::Idle,
            send_blocked: false,
            recv_blocked: false,
            rx_dirty: false,
            stalled: false,
            more_to_read: false,
            writable_after: None,
            eof_reported: false,
            short_write: false,
            direct_reader: false,
            direct_failed: false,
        }
    }

    // ------------------------------------------------------------ queries

    pub(crate) fn state(&self) -> SlotState {
        match self.phase {
            Phase::Free => SlotState::Free,
            Phase::Open => SlotState::Open,
            Phase::PeerClosed => SlotState::PeerClosed,
            Phase::Closing => SlotState::Closing {
                reason: self.reason,
                deadline: self.deadline.unwrap_or(Instant::ZERO),
            },
        }
    }

    pub(crate) fn is_free(&self) -> bool {
        self.phase == Phase::Free
    }

    /// Open or PeerClosed: the handler still drives the connection.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::PeerClosed)
    }

    pub(crate) fn id(&self) -> ConnId {
        self.id
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    pub(crate) fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    pub(crate) fn last_activity(&self) -> Instant {
        self.last_activity
    }

    pub(crate) fn step(&self) -> Step {
        self.step
    }

    pub(crate) fn request(&self) -> Request {
        self.request
    }

    pub(crate) fn tx_pending(&self) -> &[u8] {
        self.tx.data()
    }

    /// Bytes of output queued.
    #[inline]
    pub(crate) fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Bytes of input not consumed yet.
    #[inline]
    pub(crate) fn input_len(&self) -> usize {
        self.rx.len()
    }

    pub(crate) fn tx_is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    pub(crate) fn send_blocked(&self) -> bool {
        self.send_blocked
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget as usize
    }

    /// Whether the slot can take more input now: open, room in the receive
    /// buffer, and the stack has not said it has nothing.
    pub(crate) fn can_read(&self) -> bool {
        self.phase == Phase::Open && !self.rx.is_full() && !self.recv_blocked && !self.direct_reader
    }

    /// Whether input may go straight from the socket to the handler: open,
    /// nothing buffered that would have to come first, nothing asked of the
    /// pool (a close, an abort).
    pub(crate) fn can_read_direct(&self) -> bool {
        self.phase == Phase::Open
            && self.rx.is_empty()
            && self.request == Request::None
            && !self.direct_failed
    }

    /// Whether output may go straight from the handler to the socket:
    /// live, nothing queued that would have to go first, nothing asked of
    /// the pool.
    pub(crate) fn can_send_direct(&self) -> bool {
        self.is_live() && self.tx.is_empty() && self.request == Request::None && !self.direct_failed
    }

    /// A read or write straight from the async task failed with `kind`:
    /// the slot's next turn ends the connection (not the task itself, which
    /// must not run the handler's `on_closed` from inside its own read).
    pub(crate) fn fail_direct(&mut self, kind: TcpErrorKind) {
        self.set_error(kind);
        self.direct_failed = true;
    }

    /// The error of a failed direct read or write, once: the turn that
    /// ends the connection takes it.
    pub(crate) fn take_direct_failure(&mut self) -> Option<TcpErrorKind> {
        if !core::mem::take(&mut self.direct_failed) {
            return None;
        }
        Some(match self.error {
            StackError::PipeClosed => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        })
    }

    /// An async task reads this open slot's socket itself and the slot has
    /// nothing of its own to do: no input or output buffered, nothing asked
    /// of the pool, between polls.
    pub(crate) fn direct_reader_idle(&self) -> bool {
        self.direct_reader
            && !self.direct_failed
            && self.phase == Phase::Open
            && self.step == Step::Idle
            && self.rx.is_empty()
            && self.tx.is_empty()
            && self.request == Request::None
            && self.writable_after.is_none()
    }

    /// An async task reads this slot's socket itself.
    pub(crate) fn direct_reader(&self) -> bool {
        self.direct_reader
    }

    /// An async handler's task waits (or stops waiting) in a direct read.
    pub(crate) fn set_direct_reader(&mut self, waiting: bool) {
        self.direct_reader = waiting;
    }

    /// Whether the receive buffer filled while reading with budget left, so
    /// the stack may hold more.
    pub(crate) fn filled_with_budget_left(&self) -> bool {
        self.phase == Phase::Open && self.rx.is_full() && self.budget > 0
    }

    /// Another read round in the same poll is worth it: the buffer filled
    /// (the stack may hold more), there is budget left, the handler made
    /// room and the output drained.
    pub(crate) fn wants_another_round(&self, filled: bool) -> bool {
        filled && self.budget > 0 && !self.rx.is_full() && self.tx.is_empty()
    }

    /// The readiness to wait for on this slot's socket.
    pub(crate) fn interest(&self) -> crate::Interest {
        crate::Interest {
            readable: self.phase == Phase::Open && !self.rx.is_full(),
            writable: !self.tx.is_empty(),
        }
    }

    /// Work is left that no socket event will announce.
    pub(crate) fn has_work_now(&self) -> bool {
        (self.rx_dirty && !self.rx.is_empty())
            || self.more_to_read
            || self.should_report_eof()
            || self.writable_due()
    }

    /// What the handler learns when the connection ends.
    pub(crate) fn closed(&self, reason: CloseReason, now: Instant) -> Closed {
        Closed {
            id: self.id,
            peer: self.peer,
            reason,
            error: match self.error {
                StackError::None => None,
                StackError::PipeClosed => Some(TcpErrorKind::PipeClosed),
                StackError::Other => Some(TcpErrorKind::Other),
            },
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            opened_at: self.opened_at,
            closed_at: now,
        }
    }

    // -------------------------------------------------------- transitions

    /// Every transition goes through here, so each one is logged once.
    fn set_state(&mut self, next: SlotState) {
        trace!("conn {}: {} -> {}", self.id, self.state(), next);
        self.phase = match next {
            SlotState::Free => Phase::Free,
            SlotState::Open => Phase::Open,
            SlotState::PeerClosed => Phase::PeerClosed,
            SlotState::Closing { reason, deadline } => {
                self.reason = reason;
                self.deadline = Some(deadline);
                Phase::Closing
            }
        };
    }

    /// Free → Open for a newly accepted connection.
    pub(crate) fn open(&mut self, id: ConnId, peer: SocketAddr, now: Instant) {
        debug_assert!(self.is_free());
        self.id = id;
        self.peer = peer;
        self.opened_at = now;
        self.last_activity = now;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.rx.clear();
        self.tx.clear();
        self.budget = 0;
        self.deadline = None;
        self.tx_waiting = false;
        self.error = StackError::None;
        self.request = Request::None;
        self.step = Step::Idle;
        self.send_blocked = false;
        self.recv_blocked = false;
        self.rx_dirty = false;
        self.stalled = false;
        self.more_to_read = false;
        self.writable_after = None;
        self.eof_reported = false;
        self.short_write = false;
        self.direct_reader = false;
        self.direct_failed = false;
        self.set_state(SlotState::Open);
    }

    /// Open → PeerClosed: the stack reported end of stream.
    pub(crate) fn peer_finished(&mut self) {
        self.recv_blocked = true;
        if self.phase == Phase::Open {
            self.set_state(SlotState::PeerClosed);
        }
    }

    /// Open/PeerClosed → Closing. A second request keeps the first reason.
    pub(crate) fn begin_close(&mut self, reason: CloseReason, now: Instant, linger: Duration) {
        if self.is_live() {
            self.rx.clear();
            self.rx_dirty = false;
            self.set_state(SlotState::Closing {
                reason,
                deadline: now + linger,
            });
        }
    }

    /// Any → Free. Hands back the handler state; the driver closes the
    /// socket (with a reset if `reset`) when it next asks for an action.
    pub(crate) fn release(&mut self, reset: bool) -> Option<St> {
        self.set_state(SlotState::Free);
        self.rx.clear();
        self.tx.clear();
        self.request = Request::None;
        self.step = if reset {
            Step::ReleaseReset
        } else {
            Step::Release
        };
        self.user.take()
    }

    /// Records the stack's error kind for the `Closed` report.
    pub(crate) fn set_error(&mut self, kind: TcpErrorKind) {
        self.error = match kind {
            TcpErrorKind::PipeClosed => StackError::PipeClosed,
            _ => StackError::Other,
        };
    }

    pub(crate) fn set_step(&mut self, step: Step) {
        self.step = step;
    }

    /// Starts a poll's service: nothing known about the socket yet.
    pub(crate) fn begin_service(&mut self, budget: usize) {
        let budget = u32::try_from(budget).unwrap_or(u32::MAX);
        self.send_blocked = false;
        self.recv_blocked = false;
        self.budget = budget;
    }

    /// Starts a read round.
    pub(crate) fn begin_read(&mut self) {
        self.more_to_read = false;
    }

    pub(crate) fn set_send_blocked(&mut self) {
        self.send_blocked = true;
    }

    pub(crate) fn set_recv_blocked(&mut self) {
        self.recv_blocked = true;
    }

    /// The read budget ran out with room left.
    pub(crate) fn budget_spent(&mut self) {
        self.more_to_read = true;
    }

    /// The buffer to receive into: the receive buffer's free space, at most
    /// the budget left. Never empty while [`can_read`](Self::can_read) and
    /// budget is left.
    pub(crate) fn receive_buffer(&mut self) -> &mut [u8] {
        let budget = self.budget as usize;
        let spare = self.rx.spare_mut();
        let want = spare.len().min(budget);
        &mut spare[..want]
    }

    /// Input was received into [`receive_buffer`](Self::receive_buffer).
    pub(crate) fn received(&mut self, n: usize, now: Instant) {
        let n = n.min(self.budget as usize).min(self.rx.tail_room());
        if n > 0 {
            self.rx.commit(n);
            self.bytes_in += n as u64;
            self.budget = self.budget.saturating_sub(n as u32);
            self.last_activity = now;
            self.rx_dirty = true;
        }
    }

    /// `n` bytes went from the socket straight to the handler.
    pub(crate) fn received_direct(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.bytes_in += n as u64;
            self.last_activity = now;
        }
    }

    /// The stack took `n` bytes straight from the handler.
    pub(crate) fn sent_direct(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.bytes_out += n as u64;
            self.last_activity = now;
        }
    }

    /// The stack accepted `n` bytes of output.
    pub(crate) fn sent(&mut self, n: usize, now: Instant) {
        let n = n.min(self.tx.len());
        if n > 0 {
            self.tx.consume(n);
            self.bytes_out += n as u64;
            self.last_activity = now;
            self.tx_waiting = !self.tx.is_empty();
            self.tx_waiting_since = now;
            // Output drained: a handler that held input back may go on.
            if !self.rx.is_empty() {
                self.rx_dirty = true;
            }
        }
    }

    /// The handler consumed `used` of the `offered` bytes (`defers`: it
    /// consumes later, outside the callback, so nothing left is a stall).
    fn consumed(&mut self, used: usize, defers: bool) {
        let used = used.min(self.rx.len());
        self.rx.consume(used);
        self.stalled = used == 0 && !defers;
        self.rx_dirty = used > 0 && !self.rx.is_empty();
    }

    /// The handler asks for a close or abort.
    pub(crate) fn set_request(&mut self, request: Request) {
        if self.request == Request::None {
            self.request = request;
        }
    }

    /// The handler cannot make progress with a full receive buffer and no
    /// output pending: the frame it waits for does not fit.
    pub(crate) fn overflowed(&self) -> bool {
        self.is_live() && self.rx.is_full() && self.stalled && !self.rx_dirty && self.tx.is_empty()
    }

    /// The handler's deadline, if any (while live).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.is_live() { self.deadline } else { None }
    }

    /// Notes the time output started waiting (after callbacks queued some).
    pub(crate) fn track_tx_wait(&mut self, now: Instant) {
        if self.tx.is_empty() {
            self.tx_waiting = false;
        } else if !self.tx_waiting {
            self.tx_waiting = true;
            self.tx_waiting_since = now;
        }
    }

    /// When output that is waiting will have stalled for `stall`.
    pub(crate) fn stall_deadline(&self, stall: Duration) -> Option<Instant> {
        (self.tx_waiting && !self.tx.is_empty()).then(|| self.tx_waiting_since + stall)
    }

    /// Nothing moved for `idle` or longer.
    pub(crate) fn idle_for(&self, now: Instant, idle: Duration) -> bool {
        now.saturating_duration_since(self.last_activity) >= idle
    }

    /// Time to tell the handler the peer has finished: every byte has been
    /// offered, and what is left cannot be consumed (offered with no output
    /// pending, and refused).
    fn should_report_eof(&self) -> bool {
        self.phase == Phase::PeerClosed
            && !self.eof_reported
            && self.request == Request::None
            && (self.rx.is_empty() || (self.stalled && !self.rx_dirty && self.tx.is_empty()))
    }

    /// After a callback: a short write arms `on_writable` for when the free
    /// room grows beyond what it is now.
    fn after_callback(&mut self) {
        if core::mem::take(&mut self.short_write) {
            self.writable_after = Some(self.tx.room() as u32);
        }
    }

    /// True if `on_writable` is due.
    fn writable_due(&self) -> bool {
        matches!(self.writable_after, Some(room) if self.tx.room() > room as usize)
    }

    // ---------------------------------------------------------- callbacks

    /// The handle for a callback, the handler state beside it, and the
    /// unconsumed input.
    fn parts<'a>(
        &'a mut self,
        now: Instant,
        stats: &'a Stats,
    ) -> (Conn<'a>, Option<&'a mut St>, &'a [u8]) {
        (
            Conn {
                id: self.id,
                peer: self.peer,
                now,
                tx: &mut self.tx,
                request: &mut self.request,
                peer_closed: self.phase == Phase::PeerClosed,
                wants_writable: &mut self.short_write,
                deadline: &mut self.deadline,
                stats,
                input_full: self.rx.is_full(),
            },
            self.user.as_mut(),
            self.rx.data(),
        )
    }

    /// Runs `f` with the connection's handle and state (if it has state).
    pub(crate) fn with_conn<R>(
        &mut self,
        now: Instant,
        stats: &Stats,
        f: impl FnOnce(&mut Conn<'_>, Option<&mut St>) -> R,
    ) -> R {
        let (mut conn, state, _) = self.parts(now, stats);
        let r = f(&mut conn, state);
        self.after_callback();
        r
    }

    /// Runs `f` with the connection's handle and its unconsumed input, for
    /// a handler that reads outside the callbacks; `f` returns how many
    /// input bytes it consumed.
    pub(crate) fn with_io<R>(
        &mut self,
        now: Instant,
        stats: &Stats,
        f: impl FnOnce(&mut Conn<'_>, &[u8]) -> (R, usize),
    ) -> R {
        let (mut conn, _, input) = self.parts(now, stats);
        let (r, used) = f(&mut conn, input);
        let used = used.min(self.rx.len());
        self.rx.consume(used);
        self.stalled = false;
        self.after_callback();
        r
    }

    /// The unconsumed input.
    pub(crate) fn input(&self) -> &[u8] {
        self.rx.data()
    }

    /// Stores the state `on_open` returned.
    pub(crate) fn set_user(&mut self, state: St) {
        self.user = Some(state);
    }

    /// Offers input, reports end of stream and writability to the handler.
    pub(crate) fn run_callbacks<H: Handler<State = St>>(
        &mut self,
        now: Instant,
        stats: &Stats,
        handler: &mut H,
    ) {
        if self.writable_due() && self.request == Request::None {
            self.writable_after = None;
            self.with_conn(now, stats, |conn, state| {
                if let Some(state) = state {
                    handler.on_writable(conn, state);
                }
            });
        }
        // Never after `on_peer_closed`: input the handler left then (a frame
        // that cannot complete) is not offered again when output drains.
        while self.rx_dirty
            && !self.rx.is_empty()
            && self.request == Request::None
            && !self.eof_reported
        {
            let (mut conn, state, input) = self.parts(now, stats);
            let Some(state) = state else { break };
            let used = handler.on_data(&mut conn, state, input);
            self.consumed(used, H::DEFERS_INPUT);
            self.after_callback();
        }
        if self.should_report_eof() {
            self.eof_reported = true;
            self.with_conn(now, stats, |conn, state| {
                if let Some(state) = state {
                    handler.on_peer_closed(conn, state);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How far past a multiple of 4 KiB the transmit buffer's data lies from
    /// the receive buffer's, for a slot with `RX = TX = CAP`.
    fn tx_minus_rx_mod_4k<const CAP: usize>() -> usize {
        let mut slot = Slot::<(), CAP, CAP>::new();
        let rx = slot.rx.spare_mut().as_ptr() as usize;
        let tx = slot.tx.spare_mut().as_ptr() as usize;
        tx.wrapping_sub(rx) % 4096
    }

    #[test]
    fn buffers_are_not_4k_aliased() {
        // A copy from rx to tx whose destination is less than 64 bytes past
        // its source, modulo 4 KiB, is up to 35 times slower on some x86
        // machines (see `Slot`). Power-of-two sizes are the common choice.
        for distance in [
            tx_minus_rx_mod_4k::<512>(),
            tx_minus_rx_mod_4k::<1024>(),
            tx_minus_rx_mod_4k::<4096>(),
            tx_minus_rx_mod_4k::<16384>(),
        ] {
            assert!(
                !(1..64).contains(&distance),
                "tx data is {distance} bytes past rx data, modulo 4096"
            );
        }
    }

    #[test]
    fn end_of_stream_is_reported_only_after_all_input_was_offered() {
        let stats = Stats::default();
        let mut slot = Slot::<(), 8, 8>::new();
        slot.open(ConnId::new(1), UNSPECIFIED, Instant::ZERO);
        slot.set_user(());
        slot.begin_service(8);
        slot.receive_buffer()[..3].copy_from_slice(b"abc");
        slot.received(3, Instant::ZERO);
        slot.peer_finished();
        struct Collect {
            seen: std::vec::Vec<u8>,
            eof_after: Option<usize>,
        }
        impl Handler for Collect {
            type State = ();
            fn on_open(&mut self, _: &mut Conn<'_>) {}
            fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
                self.seen.extend_from_slice(data);
                data.len()
            }
            fn on_peer_closed(&mut self, _: &mut Conn<'_>, _: &mut ()) {
                self.eof_after = Some(self.seen.len());
            }
        }
        let mut h = Collect {
            seen: std::vec::Vec::new(),
            eof_after: None,
        };
        slot.run_callbacks(Instant::ZERO, &stats, &mut h);
        let (seen, n, eof_after) = (&h.seen, h.seen.len(), h.eof_after);
        assert_eq!(&seen[..n], b"abc");
        assert_eq!(eof_after, Some(3), "on_peer_closed after all 3 bytes");
    }
}
