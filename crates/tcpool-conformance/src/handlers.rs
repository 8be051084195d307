//! The handlers the scenarios run: one [`Recorder`] with several modes
//! (echo, sink, hold, lines, length-prefixed frames), which records what
//! each connection received and how it ended, so scenarios can check the
//! server from the application's side.

use std::net::SocketAddr;
use std::vec::Vec;

use tcpool_core::framing::{LineTimeout, Lines, Prefix, next_frame};
use tcpool_core::{CloseReason, Closed, Conn, ConnId, Handler, Instant};

use crate::pattern::Pattern;

/// What a [`Recorder`] does with input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Writes back what fits and consumes that much.
    Echo,
    /// Consumes everything, writes nothing.
    Sink,
    /// Consumes nothing: a frame that never completes.
    Hold,
    /// Newline-terminated commands of at most `max` bytes. Each line is
    /// answered with itself and `\n`; `QUIT` closes; `ABORT` aborts (a
    /// reset, pending output dropped); `SEND <n> <seed>`
    /// streams `n` bytes of [`Pattern`] `seed` and then closes. A line over
    /// `max` is answered with `ERR line too long\n` and closes the
    /// connection with [`CloseReason::Protocol`].
    Lines {
        /// The longest line accepted.
        max: usize,
    },
    /// Length-prefixed frames of at most `max` bytes, each answered with
    /// itself (same prefix). A frame announcing more than `max` closes the
    /// connection with [`CloseReason::Protocol`].
    Frames {
        /// The header.
        prefix: Prefix,
        /// The largest payload accepted.
        max: usize,
    },
}

/// What a [`Recorder`] knows about one connection.
#[derive(Debug, Clone)]
pub struct ConnRecord {
    /// The connection's id.
    pub id: ConnId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// When `on_open` ran.
    pub opened_at: Instant,
    /// When `on_data` last ran.
    pub last_data_at: Instant,
    /// Bytes the handler consumed.
    pub consumed: u64,
    /// The consumed bytes themselves, if the recorder keeps data.
    pub data: Vec<u8>,
    /// The lines or frames received, in order (lines without terminator,
    /// frames without header).
    pub messages: Vec<Vec<u8>>,
    /// Bytes consumed when `on_peer_closed` ran, if it did.
    pub peer_closed_after: Option<u64>,
    /// `on_data` calls made after `on_peer_closed` (must stay 0).
    pub data_after_peer_closed: u32,
    /// `on_writable` calls.
    pub writable_calls: u32,
    /// Output pending when the handler closed the connection itself after
    /// a `SEND` stream (bytes in the transmit buffer).
    pub pending_at_close: Option<usize>,
    /// What `on_closed` reported (the first time).
    pub closed: Option<Closed>,
    /// How many times `on_closed` ran (must be exactly 1 in the end).
    pub closed_calls: u32,
}

/// The per-connection state a [`Recorder`] keeps in the slot.
#[derive(Debug)]
pub struct ConnState {
    index: usize,
    stream: Option<Stream>,
    trailer_left: usize,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) pattern: Pattern,
    pub(crate) offset: u64,
    pub(crate) total: u64,
}

/// A handler that serves one [`Mode`] and records every connection in
/// open order (see [`conns`](Recorder::conns)).
#[derive(Debug)]
pub struct Recorder {
    pub(crate) mode: Mode,
    keep_data: bool,
    pub(crate) trailer: &'static [u8],
    pub(crate) conns: Vec<ConnRecord>,
    order: Vec<Closed>,
    pub(crate) refusing: bool,
    pub(crate) line_timeout: Option<LineTimeout>,
}

impl Recorder {
    /// A recorder in `mode`, keeping received data.
    pub fn new(mode: Mode) -> Self {
        Recorder {
            mode,
            keep_data: true,
            trailer: b"",
            conns: Vec::new(),
            order: Vec::new(),
            refusing: false,
            line_timeout: None,
        }
    }

    /// Do not keep received bytes (for bulk transfers); only count them.
    pub fn counting_only(mut self) -> Self {
        self.keep_data = false;
        self
    }

    /// After the peer's end of stream, write `trailer` (after all pending
    /// output) before closing.
    pub fn with_trailer(mut self, trailer: &'static [u8]) -> Self {
        self.trailer = trailer;
        self
    }

    /// In [`Mode::Lines`], a request deadline: the first line must be
    /// complete within `timeout` of the accept, every later line within
    /// `timeout` of its first byte ([`LineTimeout`]).
    pub fn with_request_timeout(mut self, timeout: core::time::Duration) -> Self {
        self.line_timeout = Some(LineTimeout::new(timeout));
        self
    }

    /// From now on, [`Handler::admit`] refuses every new peer (`true`) or
    /// admits every one (`false`, the default).
    pub fn set_refusing(&mut self, refusing: bool) {
        self.refusing = refusing;
    }

    /// Every connection opened, in open order.
    pub fn conns(&self) -> &[ConnRecord] {
        &self.conns
    }

    /// The `on_closed` reports, in call order.
    pub fn closed(&self) -> &[Closed] {
        &self.order
    }

    /// The reasons of the `on_closed` reports, in call order.
    pub fn reasons(&self) -> Vec<CloseReason> {
        self.order.iter().map(|c| c.reason).collect()
    }

    /// The connection from `peer`, if one was opened.
    pub fn by_peer(&self, peer: SocketAddr) -> Option<&ConnRecord> {
        self.conns.iter().find(|c| c.peer == peer)
    }

    /// Bytes consumed over all connections.
    pub fn total_consumed(&self) -> u64 {
        self.conns.iter().map(|c| c.consumed).sum()
    }

    /// Records a new connection (what `on_open` records); returns its index.
    pub(crate) fn open(&mut self, id: ConnId, peer: SocketAddr, now: Instant) -> usize {
        self.conns.push(ConnRecord {
            id,
            peer,
            opened_at: now,
            last_data_at: now,
            consumed: 0,
            data: Vec::new(),
            messages: Vec::new(),
            peer_closed_after: None,
            data_after_peer_closed: 0,
            writable_calls: 0,
            pending_at_close: None,
            closed: None,
            closed_calls: 0,
        });
        self.conns.len() - 1
    }

    /// Records `data` as consumed by connection `index` at `now`.
    pub(crate) fn take_at(&mut self, index: usize, now: Instant, data: &[u8]) {
        let keep = self.keep_data;
        let rec = &mut self.conns[index];
        rec.consumed += data.len() as u64;
        rec.last_data_at = now;
        if keep {
            rec.data.extend_from_slice(data);
        }
    }

    /// Records the end of connection `index` (what `on_closed` records).
    pub(crate) fn close_record(&mut self, index: usize, closed: &Closed) {
        let rec = &mut self.conns[index];
        rec.closed_calls += 1;
        if rec.closed.is_none() {
            rec.closed = Some(*closed);
        }
        self.order.push(*closed);
    }

    fn take(&mut self, state: &ConnState, conn: &Conn<'_>, data: &[u8]) {
        self.take_at(state.index, conn.now(), data);
    }

    /// Writes as much of the `SEND` stream as fits; closes once all is queued.
    fn pump_stream(&mut self, conn: &mut Conn<'_>, state: &mut ConnState) {
        let Some(stream) = state.stream.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 1024];
        while stream.offset < stream.total {
            let want = (stream.total - stream.offset).min(chunk.len() as u64) as usize;
            stream.pattern.fill(stream.offset, &mut chunk[..want]);
            let n = conn.write(&chunk[..want]);
            stream.offset += n as u64;
            if n < want {
                return;
            }
        }
        state.stream = None;
        let pending = conn.tx_pending();
        self.conns[state.index].pending_at_close = Some(pending);
        conn.close();
    }

    /// Writes what fits of the trailer; closes once it is all queued.
    fn pump_trailer(&mut self, conn: &mut Conn<'_>, state: &mut ConnState) {
        if state.trailer_left > 0 {
            let from = self.trailer.len() - state.trailer_left;
            state.trailer_left -= conn.write(&self.trailer[from..]);
        }
        if state.trailer_left == 0 {
            conn.close();
        }
    }

    fn lines(
        &mut self,
        conn: &mut Conn<'_>,
        state: &mut ConnState,
        data: &[u8],
        max: usize,
    ) -> usize {
        if state.stream.is_some() {
            return 0;
        }
        let mut lines = Lines::new(data, max);
        let mut used = 0;
        loop {
            match lines.next() {
                None => break,
                Some(Err(_)) => {
                    let _ = conn.write_all(b"ERR line too long\n");
                    conn.close_with(CloseReason::Protocol);
                    self.take(state, conn, &data[used..]);
                    return data.len();
                }
                Some(Ok(line)) => {
                    // Answer only what fits, so nothing is dropped: an
                    // unanswered line stays buffered until output drains.
                    if conn.tx_room() < line.len() + 1 {
                        break;
                    }
                    let line_used = lines.consumed() - used;
                    self.take(state, conn, &data[used..used + line_used]);
                    self.conns[state.index].messages.push(line.to_vec());
                    used += line_used;
                    if line == b"ABORT" {
                        conn.abort();
                        return used;
                    }
                    if line == b"QUIT" {
                        conn.close();
                        return used;
                    }
                    if let Some(stream) = parse_send(line) {
                        state.stream = Some(stream);
                        self.pump_stream(conn, state);
                        return used;
                    }
                    conn.write(line);
                    conn.write(b"\n");
                }
            }
        }
        used
    }

    fn frames(
        &mut self,
        conn: &mut Conn<'_>,
        state: &mut ConnState,
        data: &[u8],
        prefix: Prefix,
        max: usize,
    ) -> usize {
        let mut used = 0;
        loop {
            match next_frame(&data[used..], prefix, max) {
                Ok(None) => return used,
                Err(_) => {
                    conn.close_with(CloseReason::Protocol);
                    self.take(state, conn, &data[used..]);
                    return data.len();
                }
                Ok(Some((payload, len))) => {
                    if conn.tx_room() < len {
                        return used;
                    }
                    let mut header = [0u8; 4];
                    let h = prefix.encode(payload.len(), &mut header).expect("fits");
                    conn.write(&header[..h]);
                    conn.write(payload);
                    self.conns[state.index].messages.push(payload.to_vec());
                    self.take(state, conn, &data[used..used + len]);
                    used += len;
                }
            }
        }
    }
}

/// `SEND <n> <seed>`.
pub(crate) fn parse_send(line: &[u8]) -> Option<Stream> {
    let text = core::str::from_utf8(line).ok()?;
    let mut words = text.split(' ');
    if words.next()? != "SEND" {
        return None;
    }
    let total = words.next()?.parse().ok()?;
    let seed = words.next()?.parse().ok()?;
    Some(Stream {
        pattern: Pattern::new(seed),
        offset: 0,
        total,
    })
}

impl Handler for Recorder {
    type State = ConnState;

    fn admit(&mut self, _peer: SocketAddr) -> bool {
        !self.refusing
    }

    fn on_open(&mut self, conn: &mut Conn<'_>) -> ConnState {
        let index = self.open(conn.id(), conn.peer(), conn.now());
        if let (Some(t), Mode::Lines { .. }) = (self.line_timeout, self.mode) {
            t.opened(conn);
        }
        ConnState {
            index,
            stream: None,
            trailer_left: 0,
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, state: &mut ConnState, data: &[u8]) -> usize {
        if self.conns[state.index].peer_closed_after.is_some() {
            self.conns[state.index].data_after_peer_closed += 1;
        }
        match self.mode {
            Mode::Echo => {
                let n = conn.write(data);
                self.take(state, conn, &data[..n]);
                n
            }
            Mode::Sink => {
                self.take(state, conn, data);
                data.len()
            }
            Mode::Hold => 0,
            Mode::Lines { max } => {
                let before = self.conns[state.index].messages.len();
                let used = self.lines(conn, state, data, max);
                if let Some(t) = self.line_timeout {
                    let completed = self.conns[state.index].messages.len() > before;
                    t.parsed(conn, completed, data.len() - used);
                }
                used
            }
            Mode::Frames { prefix, max } => self.frames(conn, state, data, prefix, max),
        }
    }

    fn on_peer_closed(&mut self, conn: &mut Conn<'_>, state: &mut ConnState) {
        let rec = &mut self.conns[state.index];
        rec.peer_closed_after = Some(rec.consumed);
        if state.stream.is_some() {
            // Finish the stream first; it closes when done.
            return;
        }
        state.trailer_left = self.trailer.len();
        self.pump_trailer(conn, state);
    }

    fn on_writable(&mut self, conn: &mut Conn<'_>, state: &mut ConnState) {
        self.conns[state.index].writable_calls += 1;
        if state.stream.is_some() {
            self.pump_stream(conn, state);
        } else if state.trailer_left > 0 {
            self.pump_trailer(conn, state);
        }
    }

    fn on_closed(&mut self, closed: &Closed, state: ConnState) {
        self.close_record(state.index, closed);
    }
}

/// The plain echo application, for tests and benchmarks that need a
/// handler and nothing else: everything received is written back; what
/// does not fit the transmit buffer stays in the receive buffer until
/// output drains (backpressure, not loss). Records nothing (see
/// [`Recorder`] in [`Mode::Echo`] for that).
///
/// ```
/// use tcpool_conformance::Echo;
/// use tcpool_core::mock::MockStack;
/// use tcpool_core::{Config, Instant, Server};
///
/// let mut stack = MockStack::new();
/// let mut server: Server<MockStack, Echo, 2, 64, 64> = Server::new(Echo, Config::new());
/// server.listen(&mut stack, 7).unwrap();
/// let client = stack.connect_client(7).unwrap();
/// client.send(b"hello");
/// server.poll(&mut stack, Instant::from_millis(0));
/// assert_eq!(client.recv_all(), b"hello");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Echo;

impl Handler for Echo {
    type State = ();

    // Inlined across crates so that benchmarks measure the pool, not a
    // call into this crate.
    #[inline]
    fn on_open(&mut self, _conn: &mut Conn<'_>) {}

    #[inline]
    fn on_data(&mut self, conn: &mut Conn<'_>, _state: &mut (), data: &[u8]) -> usize {
        conn.write(data)
    }
}
