//! The scenario handlers as async handlers: [`AsyncRecorder`] serves every
//! [`Mode`] of the [`Recorder`] in sequential code over an [`AsyncConn`]
//! and records the same events in a [`Recorder`], so that a scenario's
//! checks read the same whichever handler kind served it.
//!
//! Where the callback recorder reacts (`on_data` consumes what it can
//! answer, `on_writable` continues a stream, `on_peer_closed` writes the
//! trailer), the async one reads, waits and writes in order:
//!
//! * input is consumed when it is used (`consumed`, `data`,
//!   `last_data_at` are recorded then, at the driver's time);
//! * the peer's end of stream is `read` returning 0 (or `fill_more`
//!   bringing nothing new): `peer_closed_after` is recorded then, after
//!   every byte, and no input can follow it (`data_after_peer_closed`
//!   stays 0 by construction);
//! * `writable_calls` counts writes that had to wait for room: the
//!   moments a callback handler would have been called `on_writable`;
//! * a connection the pool ends before its task starts (a reset in the
//!   round that accepted it) is recorded at `on_closed`, so the books
//!   still hold one record per accepted connection.
//!
//! The records are kept in a [`Recorder`] that the handler holds only
//! while it runs ([`AsyncRecorder::lend`], [`AsyncRecorder::take`]): the
//! program that steps the server lends it before a poll and takes it back
//! after, and reads it in between like the callback recorder.

use core::cell::{RefCell, RefMut};
use core::future::poll_fn;
use core::pin::pin;
use std::net::SocketAddr;

use embedded_io_async::{BufRead, Read, Write};
use tcpool_core::async_handler::{AsyncConn, AsyncHandler, ConnError};
use tcpool_core::framing::{Lines, Prefix, next_frame};
use tcpool_core::{CloseReason, Closed};

use crate::handlers::{Mode, Recorder, parse_send};

/// How a served connection's input ended.
enum Ending {
    /// The peer finished its side: write the trailer and close.
    PeerClosed,
    /// The handler ended the connection itself (`QUIT`, a `SEND` stream,
    /// `ABORT`): close now.
    Done,
}

/// The [`Recorder`] as an [`AsyncHandler`]: the same modes, the same
/// records (see the module docs for what each means here).
///
/// ```
/// use tcpool_conformance::{AsyncRecorder, Mode, Recorder};
///
/// let handler = AsyncRecorder::new();
/// handler.lend(Recorder::new(Mode::Echo));
/// // ... poll the server and its connection tasks ...
/// let records = handler.take().expect("lent");
/// assert!(records.conns().is_empty());
/// ```
#[derive(Debug, Default)]
pub struct AsyncRecorder {
    book: RefCell<Option<Recorder>>,
}

impl AsyncRecorder {
    /// A handler with no recorder yet: [`lend`](Self::lend) it one before
    /// the server runs.
    pub fn new() -> Self {
        AsyncRecorder::default()
    }

    /// Gives the handler the recorder whose mode it serves and that it
    /// records into, until [`take`](Self::take).
    pub fn lend(&self, recorder: Recorder) {
        self.book.replace(Some(recorder));
    }

    /// Takes the recorder back (`None` if none is lent).
    pub fn take(&self) -> Option<Recorder> {
        self.book.borrow_mut().take()
    }

    /// The lent recorder (never held across an await).
    fn book(&self) -> RefMut<'_, Recorder> {
        RefMut::map(self.book.borrow_mut(), |b| {
            b.as_mut()
                .expect("the recorder is lent while the server runs")
        })
    }

    fn consumed(&self, index: usize, conn: &AsyncConn<'_>, data: &[u8]) {
        self.book().take_at(index, conn.now(), data);
    }

    fn message(&self, index: usize, message: &[u8]) {
        self.book().conns[index].messages.push(message.to_vec());
    }

    /// `write_all`, counting a write that had to wait for room as one
    /// `on_writable` of the callback recorder.
    async fn write_all(
        &self,
        conn: &mut AsyncConn<'_>,
        index: usize,
        data: &[u8],
    ) -> Result<(), ConnError> {
        let mut off = 0;
        while off < data.len() {
            let mut waited = false;
            let n = {
                let mut write = pin!(conn.write(&data[off..]));
                poll_fn(|cx| {
                    let p = write.as_mut().poll(cx);
                    waited |= p.is_pending();
                    p
                })
                .await?
            };
            if waited {
                self.book().conns[index].writable_calls += 1;
            }
            off += n;
        }
        Ok(())
    }

    /// Echo: what is read is written back; a full transmit buffer stops the
    /// reading (backpressure).
    async fn echo(&self, conn: &mut AsyncConn<'_>, index: usize) -> Result<Ending, CloseReason> {
        let mut buf = [0u8; 512];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok(Ending::PeerClosed);
            }
            self.consumed(index, conn, &buf[..n]);
            self.write_all(conn, index, &buf[..n]).await?;
        }
    }

    /// Sink: everything is consumed, nothing written.
    async fn sink(&self, conn: &mut AsyncConn<'_>, index: usize) -> Result<Ending, CloseReason> {
        let mut buf = [0u8; 512];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok(Ending::PeerClosed);
            }
            self.consumed(index, conn, &buf[..n]);
        }
    }

    /// Hold: nothing is consumed; the buffer fills and overflows.
    async fn hold(&self, conn: &mut AsyncConn<'_>) -> Result<Ending, CloseReason> {
        let mut have = 0;
        loop {
            match more(conn, have).await? {
                Some(n) => have = n,
                None => return Ok(Ending::PeerClosed),
            }
        }
    }

    /// Newline-terminated commands (see [`Mode::Lines`]), with the request
    /// deadline of [`Recorder::with_request_timeout`]: set at the start,
    /// cleared by a complete line, set again by the first bytes of the next.
    async fn lines(
        &self,
        conn: &mut AsyncConn<'_>,
        index: usize,
        max: usize,
    ) -> Result<Ending, CloseReason> {
        let timeout = self.book().line_timeout.map(|t| t.timeout());
        let mut deadline = false;
        if let Some(t) = timeout {
            conn.set_deadline(conn.now() + t).await?;
            deadline = true;
        }
        let mut have = 0;
        loop {
            if more(conn, have).await?.is_none() {
                return Ok(Ending::PeerClosed);
            }
            // Copy what arrived, so the connection is free to answer.
            let input = conn.fill_buf().await?.to_vec();
            let mut lines = Lines::new(&input, max);
            let mut used = 0;
            let mut completed = false;
            while let Some(line) = lines.next() {
                let Ok(line) = line else {
                    conn.consume(input.len() - used);
                    self.consumed(index, conn, &input[used..]);
                    self.write_all(conn, index, b"ERR line too long\n").await?;
                    return Err(CloseReason::Protocol);
                };
                let line_used = lines.consumed() - used;
                conn.consume(line_used);
                self.consumed(index, conn, &input[used..used + line_used]);
                self.message(index, line);
                used += line_used;
                completed = true;
                if line == b"ABORT" {
                    conn.abort().await?;
                    return Ok(Ending::Done);
                }
                if line == b"QUIT" {
                    return Ok(Ending::Done);
                }
                if let Some(stream) = parse_send(line) {
                    let mut chunk = [0u8; 1024];
                    let mut offset = 0;
                    while offset < stream.total {
                        let want = (stream.total - offset).min(chunk.len() as u64) as usize;
                        stream.pattern.fill(offset, &mut chunk[..want]);
                        self.write_all(conn, index, &chunk[..want]).await?;
                        offset += want as u64;
                    }
                    let pending = conn.tx_pending().await?;
                    self.book().conns[index].pending_at_close = Some(pending);
                    return Ok(Ending::Done);
                }
                self.write_all(conn, index, line).await?;
                self.write_all(conn, index, b"\n").await?;
            }
            have = input.len() - used;
            if let Some(t) = timeout {
                if completed && deadline {
                    conn.clear_deadline().await?;
                    deadline = false;
                }
                if have > 0 && !deadline {
                    conn.set_deadline(conn.now() + t).await?;
                    deadline = true;
                }
            }
        }
    }

    /// Length-prefixed frames (see [`Mode::Frames`]), each echoed.
    async fn frames(
        &self,
        conn: &mut AsyncConn<'_>,
        index: usize,
        prefix: Prefix,
        max: usize,
    ) -> Result<Ending, CloseReason> {
        let mut have = 0;
        loop {
            if more(conn, have).await?.is_none() {
                return Ok(Ending::PeerClosed);
            }
            let input = conn.fill_buf().await?.to_vec();
            let mut used = 0;
            loop {
                match next_frame(&input[used..], prefix, max) {
                    Ok(None) => break,
                    Err(_) => {
                        conn.consume(input.len() - used);
                        self.consumed(index, conn, &input[used..]);
                        return Err(CloseReason::Protocol);
                    }
                    Ok(Some((payload, len))) => {
                        let frame = &input[used..used + len];
                        conn.consume(len);
                        self.consumed(index, conn, frame);
                        self.message(index, payload);
                        let mut header = [0u8; 4];
                        let h = prefix.encode(payload.len(), &mut header).expect("fits");
                        self.write_all(conn, index, &header[..h]).await?;
                        self.write_all(conn, index, payload).await?;
                        used += len;
                    }
                }
            }
            have = input.len() - used;
        }
    }
}

/// Waits for more input than the `have` bytes buffered; `Some(total)`, or
/// `None` once the peer has finished and nothing more will come.
async fn more(conn: &mut AsyncConn<'_>, have: usize) -> Result<Option<usize>, ConnError> {
    let n = conn.fill_more(have).await?.len();
    Ok((n > have).then_some(n))
}

impl AsyncHandler for AsyncRecorder {
    fn admit(&self, _peer: SocketAddr) -> bool {
        !self.book().refusing
    }

    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        let (index, mode, trailer) = {
            let mut book = self.book();
            let index = book.open(conn.id(), conn.peer(), conn.now());
            (index, book.mode, book.trailer)
        };
        let ending = match mode {
            Mode::Echo => self.echo(conn, index).await,
            Mode::Sink => self.sink(conn, index).await,
            Mode::Hold => self.hold(conn).await,
            Mode::Lines { max } => self.lines(conn, index, max).await,
            Mode::Frames { prefix, max } => self.frames(conn, index, prefix, max).await,
        };
        if let Ending::PeerClosed = ending? {
            {
                let mut book = self.book();
                let rec = &mut book.conns[index];
                rec.peer_closed_after = Some(rec.consumed);
            }
            self.write_all(conn, index, trailer).await?;
        }
        Ok(())
    }

    fn on_closed(&self, closed: &Closed) {
        let mut book = self.book();
        let index = match book
            .conns
            .iter()
            .rposition(|c| c.id == closed.id && c.closed.is_none())
        {
            Some(i) => i,
            // Ended before its task started.
            None => book.open(closed.id, closed.peer, closed.opened_at),
        };
        book.close_record(index, closed);
    }
}
