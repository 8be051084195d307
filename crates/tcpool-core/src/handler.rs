//! The application side: the [`Handler`] trait and the [`Conn`] handle it
//! gets in each callback.

use core::fmt;
use core::net::SocketAddr;

use crate::buffer::Buffer;
use crate::error::WriteError;
use crate::stats::Stats;
use crate::time::Instant;

/// Identifies one connection for the lifetime of a server. Ids are handed
/// out in accept order and not reused (until the `u32` wraps). Only the
/// server makes them: an id names a connection that really was accepted.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnId(u32);

impl ConnId {
    pub(crate) const fn new(n: u32) -> Self {
        ConnId(n)
    }

    /// The id as a number (accept order, from 0).
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a connection ended. Its `Display` form is a short snake_case word
/// (`peer_closed`, `idle_timeout`, ...), stable for logs and tools.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CloseReason {
    /// The handler closed it ([`Conn::close`]) while the peer was still sending.
    Local,
    /// The peer ended its side of the stream and the connection was closed
    /// after all its data was delivered and all output flushed.
    PeerClosed,
    /// The peer reset the connection (or the stack reported the pipe closed).
    Reset,
    /// The stack reported another error on this connection.
    StackError,
    /// No byte moved in either direction for [`Config::idle_timeout`](crate::Config::idle_timeout).
    IdleTimeout,
    /// Closed to make room for a new client under
    /// [`WhenFull::EvictIdlest`](crate::WhenFull::EvictIdlest).
    Evicted,
    /// The receive buffer filled up and the handler could not consume any of
    /// it even with its output flushed: a frame larger than the buffer.
    RxOverflow,
    /// The handler rejected the peer's input (for example a line over the limit).
    Protocol,
    /// The handler aborted it ([`Conn::abort`]); pending output was discarded.
    Aborted,
    /// The server was shut down.
    Shutdown,
    /// A deadline the handler set ([`Conn::set_deadline`]) passed: a request
    /// did not complete in time (a slow or trickling client).
    RequestTimeout,
    /// Output waited for [`Config::write_stall`](crate::Config::write_stall)
    /// without the peer taking a byte of it: the peer stopped reading. The
    /// connection is reset (its output could not be delivered anyway).
    WriteStall,
}

impl CloseReason {
    pub(crate) const COUNT: usize = 12;

    /// Every reason, in declaration order.
    pub const ALL: [CloseReason; Self::COUNT] = [
        CloseReason::Local,
        CloseReason::PeerClosed,
        CloseReason::Reset,
        CloseReason::StackError,
        CloseReason::IdleTimeout,
        CloseReason::Evicted,
        CloseReason::RxOverflow,
        CloseReason::Protocol,
        CloseReason::Aborted,
        CloseReason::Shutdown,
        CloseReason::RequestTimeout,
        CloseReason::WriteStall,
    ];

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::Local => "local",
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::Reset => "reset",
            CloseReason::StackError => "stack_error",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::RxOverflow => "rx_overflow",
            CloseReason::Protocol => "protocol",
            CloseReason::Aborted => "aborted",
            CloseReason::Shutdown => "shutdown",
            CloseReason::RequestTimeout => "request_timeout",
            CloseReason::WriteStall => "write_stall",
        }
    }

    /// True for reasons that mean something went wrong with the peer or the
    /// stack, as opposed to an orderly end.
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            CloseReason::Reset
                | CloseReason::StackError
                | CloseReason::RxOverflow
                | CloseReason::Protocol
                | CloseReason::RequestTimeout
                | CloseReason::WriteStall
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server reports about a connection that ended.
#[derive(Copy, Clone, PartialEq, Debug)]
#[non_exhaustive]
pub struct Closed {
    /// The connection's id.
    pub id: ConnId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Why it ended.
    pub reason: CloseReason,
    /// The stack's error kind, when a stack error ended it
    /// ([`CloseReason::Reset`] or [`CloseReason::StackError`]); `None`
    /// otherwise.
    pub error: Option<embedded_nal::TcpErrorKind>,
    /// Bytes received from the peer.
    pub bytes_in: u64,
    /// Bytes sent to the peer.
    pub bytes_out: u64,
    /// When it was accepted.
    pub opened_at: Instant,
    /// When it ended.
    pub closed_at: Instant,
}

impl fmt::Display for Closed {
    /// `id=ID peer=ADDR rx=BYTES tx=BYTES reason=REASON`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "id={} peer={} rx={} tx={} reason={}",
            self.id, self.peer, self.bytes_in, self.bytes_out, self.reason
        )
    }
}

/// What a handler asked to happen to a connection. `repr(u8)` with `None`
/// first, so that "nothing asked" is a zero byte.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Request {
    /// Keep going.
    None,
    /// Flush output, then close, for this reason.
    Close(CloseReason),
    /// Close now, dropping pending output.
    Abort,
}

/// The handle a [`Handler`] gets for one connection in each callback.
///
/// Writes go into the connection's fixed transmit buffer and are sent as the
/// stack accepts them. A write never blocks and never drops bytes silently:
/// [`write`](Conn::write) returns how much it queued, and
/// [`write_all`](Conn::write_all) queues all or nothing.
pub struct Conn<'a> {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) now: Instant,
    pub(crate) tx: &'a mut Buffer<[u8]>,
    pub(crate) request: &'a mut Request,
    pub(crate) peer_closed: bool,
    pub(crate) wants_writable: &'a mut bool,
    pub(crate) deadline: &'a mut Option<Instant>,
    pub(crate) stats: &'a Stats,
    /// The receive buffer is full.
    pub(crate) input_full: bool,
}

impl Conn<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The time passed to the current [`Server::poll`](crate::Server::poll).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// True once the peer has ended its side of the stream (no more input
    /// will arrive; output can still be sent).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// True once the connection is closing or aborted.
    pub fn is_closing(&self) -> bool {
        *self.request != Request::None
    }

    /// Gives this connection a deadline: if it is still open at `at`, it is
    /// closed with [`CloseReason::RequestTimeout`]. Setting it again moves
    /// it; [`clear_deadline`](Conn::clear_deadline) removes it. This is how
    /// a handler bounds how long a request may take to arrive (see
    /// [`framing::LineTimeout`](crate::framing::LineTimeout) for the usual
    /// policy for line protocols), so that a client trickling a byte at a
    /// time cannot hold a slot for ever.
    ///
    /// ```
    /// use core::time::Duration;
    /// use tcpool_core::{Conn, Handler};
    ///
    /// /// The first byte must come within 2 s of the accept.
    /// struct Prompt;
    /// impl Handler for Prompt {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut Conn<'_>) {
    ///         conn.set_deadline(conn.now() + Duration::from_secs(2));
    ///     }
    ///     fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
    ///         conn.clear_deadline();
    ///         conn.write(data)
    ///     }
    /// }
    /// ```
    pub fn set_deadline(&mut self, at: Instant) {
        *self.deadline = Some(at);
    }

    /// Removes the deadline set with [`set_deadline`](Conn::set_deadline).
    pub fn clear_deadline(&mut self) {
        *self.deadline = None;
    }

    /// The deadline in force, if any.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline
    }

    /// The server's counters as they stand now (the connection's own
    /// bytes are in them up to the last poll).
    pub fn stats(&self) -> &Stats {
        self.stats
    }

    /// Free room in the transmit buffer, in bytes (0 once closing).
    pub fn tx_room(&self) -> usize {
        if self.is_closing() { 0 } else { self.tx.room() }
    }

    /// Bytes queued and not yet accepted by the stack.
    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// The one rule for every way of writing ([`write`](Conn::write),
    /// [`write_all`](Conn::write_all), `core::fmt::Write`,
    /// `embedded_io::Write`):
    /// - empty input queues nothing and succeeds, in any state;
    /// - a closing or aborted connection takes nothing: [`WriteError::Closing`];
    /// - a full buffer takes nothing: [`WriteError::Full`], and
    ///   [`Handler::on_writable`] is called once there is room again;
    /// - otherwise what fits is queued (all of it, or none with
    ///   `all_or_nothing`); a short write also arms `on_writable`.
    fn queue(&mut self, data: &[u8], all_or_nothing: bool) -> Result<usize, WriteError> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.is_closing() {
            return Err(WriteError::Closing);
        }
        let room = self.tx.room();
        if room == 0 || (all_or_nothing && data.len() > room) {
            *self.wants_writable = true;
            return Err(WriteError::Full);
        }
        let n = self.tx.push(data);
        if n < data.len() {
            *self.wants_writable = true;
        }
        Ok(n)
    }

    /// Queues as much of `data` as fits and returns how much that was: 0
    /// when the buffer is full or the connection is closing (see
    /// [`try_write`](Conn::try_write) to tell them apart). If not all of it
    /// fit, [`Handler::on_writable`] is called once there is room again.
    pub fn write(&mut self, data: &[u8]) -> usize {
        self.queue(data, false).unwrap_or(0)
    }

    /// Like [`write`](Conn::write), but says why nothing was queued:
    /// [`WriteError::Full`] or [`WriteError::Closing`].
    pub fn try_write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.queue(data, false)
    }

    /// Queues all of `data`, or nothing if it does not fit
    /// ([`WriteError::Full`]; [`Handler::on_writable`] is called once there
    /// is room again) or the connection is closing ([`WriteError::Closing`]).
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), WriteError> {
        self.queue(data, true).map(|_| ())
    }

    /// Graceful close: pending output is flushed (bounded by
    /// [`Config::linger`](crate::Config::linger)), then the connection is
    /// closed. No further callbacks but [`Handler::on_closed`].
    pub fn close(&mut self) {
        let reason = if self.peer_closed {
            CloseReason::PeerClosed
        } else {
            CloseReason::Local
        };
        self.close_with(reason);
    }

    /// Graceful close recording `reason` (for example
    /// [`CloseReason::Protocol`] after bad input).
    pub fn close_with(&mut self, reason: CloseReason) {
        if *self.request == Request::None {
            *self.request = Request::Close(reason);
        }
    }

    /// Immediate close with a reset: pending output is discarded and the
    /// socket is closed through [`Backend::abort`](crate::Backend::abort),
    /// so the peer sees a reset (RST), not an end of stream.
    pub fn abort(&mut self) {
        *self.request = Request::Abort;
    }
}

impl fmt::Write for Conn<'_> {
    /// All or nothing: a string that does not fit is not queued and the
    /// write fails with `fmt::Error`.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_all(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

impl embedded_io::ErrorType for Conn<'_> {
    type Error = WriteError;
}

impl embedded_io::Write for Conn<'_> {
    /// [`Conn::try_write`]: queues what fits. Never blocks: a full buffer
    /// is [`WriteError::Full`] rather than a wait.
    fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        self.queue(buf, false)
    }

    /// Output is flushed by the server's poll; nothing to do here.
    fn flush(&mut self) -> Result<(), WriteError> {
        Ok(())
    }
}

/// The application: what to do with each connection.
///
/// Per-connection state lives in the server's slot as
/// [`State`](Handler::State), created by [`on_open`](Handler::on_open) and
/// handed back in [`on_closed`](Handler::on_closed). Callbacks run inside
/// [`Server::poll`](crate::Server::poll) and must not block.
///
/// An echo server:
///
/// ```
/// use tcpool_core::{Conn, Handler};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type State = ();
///     fn on_open(&mut self, _conn: &mut Conn<'_>) {}
///     fn on_data(&mut self, conn: &mut Conn<'_>, _state: &mut (), data: &[u8]) -> usize {
///         // Echo what fits; the rest stays buffered until output drains.
///         conn.write(data)
///     }
/// }
/// ```
pub trait Handler {
    /// Per-connection state, stored in the connection's slot.
    type State;

    /// Decides whether a new peer may connect. Refused peers are closed at
    /// once and counted in [`Stats::refused`](crate::Stats::refused).
    fn admit(&mut self, peer: SocketAddr) -> bool {
        let _ = peer;
        true
    }

    /// A connection was accepted into a slot. May write a greeting.
    fn on_open(&mut self, conn: &mut Conn<'_>) -> Self::State;

    /// Input arrived. `data` is everything received and not yet consumed,
    /// oldest first. Returns how many bytes from the front were consumed; the
    /// rest is offered again with the next input or once output has drained.
    fn on_data(&mut self, conn: &mut Conn<'_>, state: &mut Self::State, data: &[u8]) -> usize;

    /// The peer ended its side of the stream, and every byte it sent before
    /// that has been offered to [`on_data`](Handler::on_data). The default
    /// closes the connection gracefully (pending output is still sent).
    fn on_peer_closed(&mut self, conn: &mut Conn<'_>, state: &mut Self::State) {
        let _ = state;
        conn.close();
    }

    /// A write came up short earlier and there is room in the transmit
    /// buffer again.
    fn on_writable(&mut self, conn: &mut Conn<'_>, state: &mut Self::State) {
        let _ = (conn, state);
    }

    /// The connection ended; `state` is handed back for the last time. Called
    /// exactly once for every connection that [`on_open`](Handler::on_open) saw.
    fn on_closed(&mut self, closed: &Closed, state: Self::State) {
        let _ = (closed, state);
    }

    /// True for a handler that consumes input later, outside
    /// [`on_data`](Handler::on_data) (the async handler adapter): input
    /// left unconsumed in `on_data` is then not a stalled frame, and end of
    /// stream is reported once all input has been consumed.
    #[doc(hidden)]
    const DEFERS_INPUT: bool = false;
}
