//! Bulk data: several clients at once, and a slow reader.

use std::vec::Vec;

use tcpool_core::{CloseReason, Config};

use super::assert_all_closed;
use crate::drive::{Bound, Peer, note, start};
use crate::handlers::{Mode, Recorder};
use crate::harness::{Harness, Recv};
use crate::kind::{Kind, RecDrive};
use crate::pattern::Pattern;

/// One patterned echo stream: what was sent and what came back, verified
/// byte by byte as it arrives.
struct Stream<H: Harness> {
    peer: Peer<H>,
    pattern: Pattern,
    size: u64,
    sent: u64,
    got: u64,
    shut: bool,
}

impl<H: Harness> Stream<H> {
    fn new(peer: Peer<H>, seed: u64, size: u64) -> Self {
        Stream {
            peer,
            pattern: Pattern::new(seed),
            size,
            sent: 0,
            got: 0,
            shut: false,
        }
    }

    /// Sends up to `chunk` bytes and reads up to `read_limit`; true if
    /// anything moved.
    fn exchange(&mut self, h: &mut H, buf: &mut [u8], chunk: usize, read_limit: usize) -> bool {
        let b = H::BACKEND;
        let mut moved = false;
        if self.sent < self.size {
            let n = chunk.min((self.size - self.sent) as usize).min(buf.len());
            self.pattern.fill(self.sent, &mut buf[..n]);
            let client = self.peer.client.as_mut().expect("open");
            match h.send(client, &buf[..n]) {
                Ok(k) => {
                    self.sent += k as u64;
                    moved |= k > 0;
                }
                Err(e) => panic!("[{b}] {}: send failed: {e}", self.peer.name),
            }
            if self.sent == self.size && !self.shut {
                self.peer.shutdown_write(h);
                self.shut = true;
            }
        }
        let mut left = read_limit;
        while left > 0 && !self.peer.ended() {
            let want = left.min(buf.len());
            let client = self.peer.client.as_mut().expect("open");
            match h.recv(client, &mut buf[..want]) {
                Recv::Data(n) => {
                    if let Err(at) = self.pattern.check(self.got, &buf[..n]) {
                        panic!("[{b}] {}: wrong byte at stream offset {at}", self.peer.name);
                    }
                    self.got += n as u64;
                    left -= n;
                    moved = true;
                    assert!(
                        self.got <= self.sent,
                        "[{b}] {}: echo ahead of input",
                        self.peer.name
                    );
                }
                Recv::WouldBlock => break,
                Recv::Eof => {
                    self.peer.eof = true;
                    moved = true;
                }
                Recv::Reset => panic!(
                    "[{b}] {}: reset after {} of {} bytes",
                    self.peer.name, self.got, self.size
                ),
            }
        }
        moved
    }

    fn done(&self) -> bool {
        self.peer.eof
    }
}

/// Five clients each send a patterned stream (10 MiB each, or the
/// harness's reduced size, printed) through an echo server at once and
/// verify every echoed byte as it arrives; then the FIN. The handler counts
/// every byte of every client and each connection ends `peer_closed`.
pub fn pattern_transfer_10mb_with_several_clients<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let scenario = "pattern_transfer_10mb_with_several_clients";
    let size = h.transfer_size();
    if let Some(why) = size.reduced_because {
        note::<H>(
            scenario,
            &format!("5 clients x {} bytes instead of 10 MiB: {why}", size.bytes),
        );
    }
    let size = size.bytes as u64;
    let mut server =
        start::<H, K, 8, 4096, 4096>(h, Recorder::new(Mode::Echo).counting_only(), Config::new());
    let mut streams: Vec<Stream<H>> = (0..5)
        .map(|i| {
            Stream::new(
                Peer::connect(h, &mut server, format!("client {i}")),
                1 + i,
                size,
            )
        })
        .collect();
    let addrs: Vec<_> = streams.iter_mut().map(|s| s.peer.addr(h)).collect();
    let mut buf = std::vec![0u8; 64 * 1024];
    let mut bound = Bound::new(h, format!("5 x {size} bytes to be echoed"));
    while !streams.iter().all(Stream::done) {
        let mut moved = false;
        for s in streams.iter_mut() {
            moved |= s.exchange(h, &mut buf, 64 * 1024, 1024 * 1024);
        }
        if moved {
            bound.progress();
        }
        h.step(&mut server);
        bound.tick(h, &server);
    }
    for s in streams.iter_mut() {
        assert_eq!(s.got, size, "[{b}] {scenario}: {} echo length", s.peer.name);
        s.peer.close(h);
    }
    assert_all_closed(h, &mut server, scenario);
    for addr in addrs {
        let rec = server.handler().by_peer(addr).expect("recorded");
        assert_eq!(
            rec.consumed, size,
            "[{b}] {scenario}: bytes the handler got"
        );
        assert_eq!(rec.closed.expect("closed").reason, CloseReason::PeerClosed);
    }
    assert_eq!(server.stats().bytes_in, 5 * size);
    assert_eq!(server.stats().bytes_out, 5 * size);
}

/// A client sends a large stream to an echo server but reads at most 4 KiB
/// per step: the server stops reading from it when its buffers are full
/// instead of buffering more (bytes received minus bytes sent never exceed
/// the pool's buffers), loses nothing, and keeps serving a second client's
/// round trips promptly meanwhile.
pub fn slow_reader_backpressure_no_loss_bounded_memory<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let scenario = "slow_reader_backpressure_no_loss_bounded_memory";
    const RX: usize = 1024;
    const TX: usize = 1024;
    const N: usize = 4;
    let size = h.transfer_size().bytes.min(4 * 1024 * 1024) as u64;
    let mut server =
        start::<H, K, N, RX, TX>(h, Recorder::new(Mode::Echo).counting_only(), Config::new());
    let mut slow = Stream::new(Peer::connect(h, &mut server, "slow reader"), 42, size);
    let mut fast = Peer::connect(h, &mut server, "fast client");
    fast.keep = true;
    let mut buf = std::vec![0u8; 64 * 1024];
    let mut round_trips = 0u32;
    let mut fast_waiting: Option<u64> = None;
    let mut bound = Bound::new(h, format!("{size} bytes to a slow reader"));
    while !slow.done() {
        let mut moved = slow.exchange(h, &mut buf, 64 * 1024, 4 * 1024);
        // The fast client: one byte at a time, waiting for each echo.
        match fast_waiting {
            None if !slow.shut => {
                let want = fast.received + 1;
                if fast.try_send(h, &[b'0' + (round_trips % 10) as u8]) == 1 {
                    fast_waiting = Some(want);
                }
            }
            None => {}
            Some(want) => {
                moved |= fast.pump(h);
                if fast.received >= want {
                    round_trips += 1;
                    fast_waiting = None;
                }
            }
        }
        let stats = server.stats();
        let held = stats.bytes_in - stats.bytes_out;
        assert!(
            held <= (N * (RX + TX)) as u64,
            "[{b}] {scenario}: the server holds {held} bytes, more than its buffers"
        );
        if moved {
            bound.progress();
        }
        h.step(&mut server);
        bound.tick(h, &server);
    }
    assert_eq!(
        slow.got, size,
        "[{b}] {scenario}: slow reader's echo length"
    );
    assert!(
        round_trips >= 10,
        "[{b}] {scenario}: only {round_trips} round trips of the fast client during the transfer"
    );
    let expected: Vec<u8> = (0..fast.received).map(|i| b'0' + (i % 10) as u8).collect();
    assert_eq!(fast.got, expected, "[{b}] {scenario}: fast client's echoes");
    slow.peer.close(h);
    fast.shutdown_write(h);
    fast.wait_end(h, &mut server);
    fast.close(h);
    assert_all_closed(h, &mut server, scenario);
}

/// One request, a response many times the transmit buffer: the handler
/// writes what fits and continues from `on_writable` each time output
/// drains, while the client only reads. Every byte arrives, then the FIN;
/// the server needs no further input from the client to keep going (its
/// `poll_at`/`interests` must ask for the wake-up `on_writable` needs).
pub fn long_response_streams_through_on_writable_without_client_input<
    H: Harness,
    K: Kind<H::Stack>,
>(
    h: &mut H,
) {
    let b = H::BACKEND;
    let scenario = "long_response_streams_through_on_writable_without_client_input";
    let total: u64 = 256 * 1024;
    let mut server =
        start::<H, K, 2, 256, 1024>(h, Recorder::new(Mode::Lines { max: 64 }), Config::new());
    let mut c = Peer::connect(h, &mut server, "reader");
    c.keep = false;
    let addr = c.addr(h);
    c.send_all(h, &mut server, format!("SEND {total} 5\n").as_bytes());
    let pattern = Pattern::new(5);
    let mut buf = std::vec![0u8; 64 * 1024];
    let mut bound = Bound::new(h, format!("a {total}-byte response and the FIN"));
    while !c.eof {
        let client = c.client.as_mut().expect("open");
        match h.recv(client, &mut buf) {
            Recv::Data(n) => {
                if let Err(at) = pattern.check(c.received, &buf[..n]) {
                    panic!("[{b}] {scenario}: wrong byte at stream offset {at}");
                }
                c.received += n as u64;
                bound.progress();
            }
            Recv::WouldBlock => {}
            Recv::Eof => c.eof = true,
            Recv::Reset => panic!("[{b}] {scenario}: reset after {} bytes", c.received),
        }
        h.step(&mut server);
        bound.tick(h, &server);
    }
    assert_eq!(c.received, total, "[{b}] {scenario}: response length");
    c.close(h);
    assert_all_closed(h, &mut server, scenario);
    let rec = server.handler().by_peer(addr).expect("recorded");
    assert!(
        rec.writable_calls > 0,
        "[{b}] {scenario}: on_writable was never called"
    );
    assert_eq!(rec.closed.expect("closed").reason, CloseReason::Local);
}
