//! Lingering close: connections we have finished writing to, kept open for a
//! while to read and discard what the peer still sends.
//!
//! Closing a socket whose receive buffer holds unread bytes makes the kernel
//! send a reset instead of a FIN, and a reset can destroy the response the
//! peer has not read yet (it arrives before, or instead of, the data). So a
//! graceful close shuts down only our write side (a FIN after the queued
//! data) and keeps reading until the peer's FIN, an error, or the linger
//! timeout; only then is the socket closed. nginx calls this "lingering
//! close".

use crate::fmt::debug;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// How much one drain reads from one socket before giving the others a turn
/// (a peer that keeps sending cannot hold the loop; it is bounded by the
/// linger timeout anyway).
const DRAIN_BUDGET: usize = 256 * 1024;

/// How often calls other than `wait` sweep every lingering socket.
const SWEEP_INTERVAL: Duration = Duration::from_millis(10);

/// One connection in lingering close.
struct Lingering {
    stream: TcpStream,
    until: Instant,
}

/// The connections in lingering close, owned by the stack.
#[derive(Default)]
pub(crate) struct LingerSet {
    entries: Vec<Lingering>,
    last_sweep: Option<Instant>,
}

/// What a drain found.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Drained {
    /// The peer's FIN, or an error: the socket can be closed now.
    Finished,
    /// Nothing more for now (or the budget ran out).
    Pending,
}

/// Reads and discards what has arrived on `stream`, without blocking.
pub(crate) fn drain(stream: &TcpStream) -> Drained {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    let mut reader = stream;
    while total < DRAIN_BUDGET {
        match reader.read(&mut buf) {
            Ok(0) => return Drained::Finished,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::Pending,
            Err(_) => return Drained::Finished,
        }
    }
    Drained::Pending
}

impl LingerSet {
    /// Starts lingering on `stream` (already shut down for writing) until
    /// `until`.
    pub(crate) fn push(&mut self, stream: TcpStream, until: Instant) {
        self.entries.push(Lingering { stream, until });
    }

    /// How many connections are lingering.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The earliest linger timeout.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.until).min()
    }

    /// The lingering sockets, in the order `finish_ready` expects.
    pub(crate) fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.entries.iter().map(|e| e.stream.as_fd())
    }

    /// Closes the sockets whose linger timeout has passed.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.entries.retain(|e| {
            let keep = e.until > now;
            if !keep {
                debug!("lingering close timed out, closing {:?}", e.stream);
            }
            keep
        });
    }

    /// Drains the sockets that `ready(i)` says are readable (index as in
    /// [`fds`](Self::fds)) and closes those that are finished.
    pub(crate) fn finish_ready(&mut self, mut ready: impl FnMut(usize) -> bool) {
        let mut i = 0;
        self.entries.retain(|e| {
            let is_ready = ready(i);
            i += 1;
            !(is_ready && drain(&e.stream) == Drained::Finished)
        });
    }

    /// Drains every lingering socket and closes finished and expired ones.
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.last_sweep = Some(now);
        self.expire(now);
        self.finish_ready(|_| true);
    }

    /// The opportunistic advance done by calls other than `wait`: expiry
    /// always (no system call), a full sweep at most every
    /// [`SWEEP_INTERVAL`].
    pub(crate) fn tick(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        let now = Instant::now();
        match self.last_sweep {
            Some(last) if now.saturating_duration_since(last) < SWEEP_INTERVAL => self.expire(now),
            _ => self.sweep(now),
        }
    }
}
