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
//!
//! The set is a slab (each entry has a stable key, which the stack puts in
//! the socket's epoll registration, so a readiness event finds its entry at
//! once) and a queue of deadlines in time order (so expiry looks at the
//! expired entries only). Nothing here visits every lingering socket.

use crate::fmt::debug;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Instant;

/// How much one drain reads from one socket before giving the others a turn
/// (a peer that keeps sending cannot hold the loop; it is bounded by the
/// linger timeout anyway).
const DRAIN_BUDGET: usize = 256 * 1024;

/// One connection in lingering close.
struct Lingering {
    stream: TcpStream,
    /// Tells this entry apart from a later one under the same key.
    serial: u64,
}

/// The connections in lingering close, owned by the stack.
#[derive(Default)]
pub(crate) struct LingerSet {
    entries: Vec<Option<Lingering>>,
    /// Keys of empty entries, for reuse.
    free: Vec<usize>,
    /// `(until, key, serial)` in `until` order; an item whose entry has
    /// gone (or was reused: another serial) is skipped.
    deadlines: VecDeque<(Instant, usize, u64)>,
    len: usize,
    next_serial: u64,
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
    /// `until`; returns the entry's key.
    pub(crate) fn push(&mut self, stream: TcpStream, until: Instant) -> usize {
        let serial = self.next_serial;
        self.next_serial += 1;
        let entry = Some(Lingering { stream, serial });
        let key = match self.free.pop() {
            Some(key) => {
                self.entries[key] = entry;
                key
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        // Deadlines are normally pushed in order (one linger time for the
        // stack): the search ends at the back.
        let at = self.deadlines.partition_point(|&(t, ..)| t <= until);
        self.deadlines.insert(at, (until, key, serial));
        self.len += 1;
        key
    }

    /// The stream of entry `key`, if it is lingering.
    pub(crate) fn stream(&self, key: usize) -> Option<&TcpStream> {
        self.entries.get(key)?.as_ref().map(|e| &e.stream)
    }

    /// Closes entry `key` (dropping the stream closes the socket, which
    /// also removes it from the epoll set).
    pub(crate) fn remove(&mut self, key: usize) {
        if let Some(slot) = self.entries.get_mut(key)
            && slot.take().is_some()
        {
            self.free.push(key);
            self.len -= 1;
        }
    }

    /// How many connections are lingering.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True if nothing is lingering.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the deadline queue item belongs to a live entry.
    fn is_live(&self, key: usize, serial: u64) -> bool {
        matches!(self.entries.get(key), Some(Some(e)) if e.serial == serial)
    }

    /// The earliest linger timeout (forgets queue items of entries that
    /// have gone).
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(until, key, serial)) = self.deadlines.front() {
            if self.is_live(key, serial) {
                return Some(until);
            }
            self.deadlines.pop_front();
        }
        None
    }

    /// Closes the sockets whose linger timeout has passed.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(until, key, serial)) = self.deadlines.front() {
            if until > now {
                break;
            }
            self.deadlines.pop_front();
            if self.is_live(key, serial) {
                debug!("lingering close timed out, closing {:?}", self.stream(key));
                self.remove(key);
            }
        }
    }

    /// Drains entry `key` (its socket is readable) and closes it if the peer
    /// has finished.
    pub(crate) fn drain_ready(&mut self, key: usize) {
        if let Some(stream) = self.stream(key)
            && drain(stream) == Drained::Finished
        {
            self.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    fn stream() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    #[test]
    fn keys_are_reused_and_stale_deadlines_skipped() {
        let now = Instant::now();
        let mut set = LingerSet::default();
        let (a, _ca) = stream();
        let (b, _cb) = stream();
        let ka = set.push(a, now + Duration::from_secs(1));
        let kb = set.push(b, now + Duration::from_secs(2));
        assert_ne!(ka, kb);
        assert_eq!(set.len(), 2);
        set.remove(ka);
        assert_eq!(set.len(), 1);
        assert_eq!(set.next_deadline(), Some(now + Duration::from_secs(2)));
        let (c, _cc) = stream();
        let kc = set.push(c, now + Duration::from_secs(3));
        assert_eq!(kc, ka, "the free key is reused");
        // The first item of key `ka` is stale: expiring past it keeps `kc`.
        set.expire(now + Duration::from_millis(2500));
        assert_eq!(set.len(), 1);
        assert!(set.stream(kc).is_some());
        assert!(set.stream(kb).is_none());
        set.expire(now + Duration::from_secs(3));
        assert!(set.is_empty());
        assert_eq!(set.next_deadline(), None);
    }

    #[test]
    fn a_drained_entry_closes_at_the_peers_fin() {
        let mut set = LingerSet::default();
        let (s, c) = stream();
        let key = set.push(s, Instant::now() + Duration::from_secs(5));
        set.drain_ready(key);
        assert_eq!(set.len(), 1, "nothing came yet");
        drop(c);
        // The FIN may take a moment on loopback.
        let start = Instant::now();
        while !set.is_empty() {
            assert!(start.elapsed() < Duration::from_secs(5), "no FIN");
            std::thread::sleep(Duration::from_millis(1));
            set.drain_ready(key);
        }
    }
}
