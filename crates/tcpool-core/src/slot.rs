//! One connection's place in the pool: its socket, buffers, handler state
//! and the state machine that says what may happen next.
//!
//! ```text
//!  Free ──accept──▶ Open ──peer FIN──▶ PeerClosed
//!                    │                    │
//!                    └──close/timeout─────┴──▶ Closing ──output flushed or linger over──▶ Free
//!  any state but Free ──reset, stack error, abort──▶ Free
//! ```
//!
//! The slot itself does no I/O: the [`Server`](crate::Server) moves bytes
//! between the stack and the slot's buffers and calls the transitions here.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::time::Duration;

use crate::buffer::Buffer;
use crate::fmt::trace;
use crate::handler::{CloseReason, Conn, ConnId, Request};
use crate::time::Instant;

/// Where a slot is in its life.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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

const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// One slot. `repr(C)` to fix one thing about the layout: 96 bytes of
/// fixed-size bookkeeping sit between the receive and the transmit buffer
/// (the other fields come after both, small ones last, so that nothing is
/// padded).
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
pub(crate) struct Slot<Sock, St, const RX: usize, const TX: usize> {
    pub(crate) rx: Buffer<[u8; RX]>,
    // Fixed-size bookkeeping, 96 bytes, no padding.
    pub(crate) opened_at: Instant,
    pub(crate) last_activity: Instant,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    /// The handler made a short write; call `on_writable` once the free
    /// room grows beyond this.
    pub(crate) writable_after: Option<usize>,
    state: SlotState,
    pub(crate) peer: SocketAddr,
    pub(crate) tx: Buffer<[u8; TX]>,
    pub(crate) socket: Option<Sock>,
    pub(crate) id: ConnId,
    pub(crate) request: Request,
    /// The handler should be offered the buffered input (new input arrived,
    /// or it consumed some last time, or output drained since).
    pub(crate) rx_dirty: bool,
    /// The last offer of input consumed nothing.
    pub(crate) stalled: bool,
    /// The read budget ran out with room left: there may be more to read.
    pub(crate) more_to_read: bool,
    /// `on_peer_closed` has been called.
    pub(crate) eof_reported: bool,
    /// Set by [`Conn`] when a write came up short.
    pub(crate) short_write: bool,
    pub(crate) user: Option<St>,
}

impl<Sock, St, const RX: usize, const TX: usize> Slot<Sock, St, RX, TX> {
    pub(crate) const fn new() -> Self {
        Slot {
            socket: None,
            state: SlotState::Free,
            user: None,
            id: ConnId(0),
            peer: UNSPECIFIED,
            opened_at: Instant::ZERO,
            last_activity: Instant::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            rx: Buffer::new(),
            tx: Buffer::new(),
            request: Request::None,
            rx_dirty: false,
            stalled: false,
            more_to_read: false,
            writable_after: None,
            eof_reported: false,
            short_write: false,
        }
    }

    pub(crate) fn state(&self) -> SlotState {
        self.state
    }

    pub(crate) fn is_free(&self) -> bool {
        self.state == SlotState::Free
    }

    /// Open or PeerClosed: the handler still drives the connection.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.state, SlotState::Open | SlotState::PeerClosed)
    }

    /// Every transition goes through here, so each one is logged once.
    fn set_state(&mut self, next: SlotState) {
        trace!("conn {}: {} -> {}", self.id, self.state, next);
        self.state = next;
    }

    /// Free → Open with a newly accepted socket.
    pub(crate) fn open(&mut self, socket: Sock, id: ConnId, peer: SocketAddr, now: Instant) {
        debug_assert!(self.is_free());
        self.socket = Some(socket);
        self.id = id;
        self.peer = peer;
        self.opened_at = now;
        self.last_activity = now;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.rx.clear();
        self.tx.clear();
        self.request = Request::None;
        self.rx_dirty = false;
        self.stalled = false;
        self.more_to_read = false;
        self.writable_after = None;
        self.eof_reported = false;
        self.short_write = false;
        self.set_state(SlotState::Open);
    }

    /// Open → PeerClosed: the stack reported end of stream.
    pub(crate) fn peer_finished(&mut self) {
        if self.state == SlotState::Open {
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

    /// Any → Free. Returns the socket and the handler state to dispose of.
    pub(crate) fn release(&mut self) -> (Option<Sock>, Option<St>) {
        self.set_state(SlotState::Free);
        self.rx.clear();
        self.tx.clear();
        self.request = Request::None;
        (self.socket.take(), self.user.take())
    }

    /// Input was received.
    pub(crate) fn received(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.rx.commit(n);
            self.bytes_in += n as u64;
            self.last_activity = now;
            self.rx_dirty = true;
        }
    }

    /// The stack accepted `n` bytes of output.
    pub(crate) fn sent(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.tx.consume(n);
            self.bytes_out += n as u64;
            self.last_activity = now;
            // Output drained: a handler that held input back may go on.
            if !self.rx.is_empty() {
                self.rx_dirty = true;
            }
        }
    }

    /// The handler consumed `used` of the `offered` bytes.
    pub(crate) fn consumed(&mut self, used: usize) {
        let used = used.min(self.rx.len());
        self.rx.consume(used);
        self.stalled = used == 0;
        self.rx_dirty = used > 0 && !self.rx.is_empty();
    }

    /// The handler cannot make progress with a full receive buffer and no
    /// output pending: the frame it waits for does not fit.
    pub(crate) fn overflowed(&self) -> bool {
        self.is_live() && self.rx.is_full() && self.stalled && !self.rx_dirty && self.tx.is_empty()
    }

    /// Time to tell the handler the peer has finished: every byte has been
    /// offered, and what is left cannot be consumed (offered with no output
    /// pending, and refused).
    pub(crate) fn should_report_eof(&self) -> bool {
        self.state == SlotState::PeerClosed
            && !self.eof_reported
            && self.request == Request::None
            && (self.rx.is_empty() || (self.stalled && !self.rx_dirty && self.tx.is_empty()))
    }

    /// After a callback: a short write arms `on_writable` for when the free
    /// room grows beyond what it is now.
    pub(crate) fn after_callback(&mut self) {
        if core::mem::take(&mut self.short_write) {
            self.writable_after = Some(self.tx.room());
        }
    }

    /// True if `on_writable` is due.
    pub(crate) fn writable_due(&self) -> bool {
        matches!(self.writable_after, Some(room) if self.tx.room() > room)
    }

    /// Like [`conn`](Self::conn), with the unconsumed input beside.
    pub(crate) fn conn_with_input(&mut self, now: Instant) -> (Conn<'_>, Option<&mut St>, &[u8]) {
        (
            Conn {
                id: self.id,
                peer: self.peer,
                now,
                tx: &mut self.tx,
                request: &mut self.request,
                peer_closed: self.state == SlotState::PeerClosed,
                wants_writable: &mut self.short_write,
            },
            self.user.as_mut(),
            self.rx.data(),
        )
    }

    /// The handle for a callback, and the handler state beside it.
    pub(crate) fn conn(&mut self, now: Instant) -> (Conn<'_>, Option<&mut St>) {
        let (conn, state, _) = self.conn_with_input(now);
        (conn, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How far past a multiple of 4 KiB the transmit buffer's data lies from
    /// the receive buffer's, for a slot with `RX = TX = CAP`.
    fn tx_minus_rx_mod_4k<const CAP: usize>() -> usize {
        let mut slot = Slot::<u32, (), CAP, CAP>::new();
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
}
