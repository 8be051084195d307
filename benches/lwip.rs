//! The lwIP backend against raw lwIP sockets, on the host lwIP of
//! `tcpool-lwip-host` (lwIP 2.2.1 configured like ESP-IDF, loopback
//! 127.0.0.1): the same echo transfer served once by tcpool (the core
//! `Server` over `tcpool_lwip::LwipStack`) and once by an echo loop written
//! by hand over the same non-blocking lwIP sockets.
//!
//! Three lwIP clients (lwIP's loopback only joins lwIP sockets, so they are
//! sockets of the same lwIP) each send 1 MiB of seeded data and read it
//! back, at most 4 KiB ahead of the echo (see [`IN_FLIGHT`]), over
//! connections opened before the measurement and kept open across
//! iterations. With the listener and the three server-side
//! connections that is 7 of lwIP's 10 sockets; the two servers never exist
//! at the same time.
//!
//! Both servers run the loop a firmware runs: do what can be done without
//! blocking and, after a round that moved nothing, sleep in `lwip_select`
//! (`LwipStack::wait`) until a socket is ready. The clients are driven from
//! the same thread, between the server's rounds, and their sockets join the
//! same `select`; lwIP itself runs in its tcpip thread, so the two cores
//! hold the bench thread and lwIP. Only the server side differs:
//!
//! * `tcpool_pool`: `Server<LwipStack, Echo, 3, 4096, 4096>`;
//! * `raw_lwip`: per connection one 4 KiB buffer: receive into it, send it
//!   all back, receive again; it waits for readability while the buffer is
//!   empty and for writability while it is not. This is the hand-written
//!   server a user writes without the pool, over the same `LwipStack`: both
//!   sides call lwIP through the same thin embedded-nal translation (a state
//!   check and an errno mapping per call), so the ratio measures the pool
//!   itself. Calling `lwip_recv` and friends directly would need `unsafe`
//!   FFI here; the translation layer is a few nanoseconds per call against
//!   the microseconds of lwIP's message passing to its tcpip thread.
//!
//! The time is wall-clock for the three echoes; the throughput counts the
//! bytes echoed. It is dominated by the hand-offs between the bench thread
//! and lwIP's tcpip thread (every send and every window update is a message
//! to it), whose latency on a virtual machine varies several-fold from one
//! second to the next. After the run a line `ratio lwip_transfer
//! tcpool_pool/raw_lwip = R` gives the pool's throughput over the raw
//! server's: the median ratio of 30 pairs of sessions (fresh connections,
//! one timed transfer each) run alternately, with the ratio of the fastest
//! runs and of criterion's medians beside it; the target is R ≥ 0.95.
//!
//! `cargo bench --bench lwip` (about a minute); `-- --test` runs each once.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant as WallClock};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use embedded_nal::{TcpClientStack, TcpFullStack};
use tcpool_core::{Interest, Server};
use tcpool_lwip::{Config, LwipStack, Socket, SocketBudget};

#[path = "support/embedded.rs"]
#[allow(dead_code, reason = "each bench uses part of the shared support")]
mod support;

use support::{Echo, Pairs, measured, pattern, print_ratio, record};

const CLIENTS: usize = 3;
/// Bytes each client sends and reads back per iteration.
const LEN: usize = 1024 * 1024;
/// The pool's slot buffers, and the raw server's buffer.
const BUF: usize = 4096;
/// Most bytes a client has sent and not yet seen echoed. Below lwIP's
/// receive window less its window-update threshold (5760 - 1440), so a
/// client's receive window never closes: when two lwIP sockets on loopback
/// both have a closed window they ACK each other for ever inside the tcpip
/// thread (esp-idf issue #2425), which a client that sends without bound
/// while the server waits for it to read runs straight into.
const IN_FLIGHT: usize = 4096;
/// Longest sleep in `select` (a transfer that stalls fails after `STALL`).
const TICK: Duration = Duration::from_millis(20);
const STALL: Duration = Duration::from_secs(30);
/// Sessions of each side in the interleaved run behind the ratio line, and
/// transfers per session.
const PAIRS: usize = 30;
const PAIR_TRANSFERS: u64 = 1;

/// Milliseconds since the first call: the pool's clock.
fn now() -> tcpool_core::Instant {
    static START: OnceLock<WallClock> = OnceLock::new();
    let start = *START.get_or_init(WallClock::now);
    tcpool_core::Instant::from_millis(start.elapsed().as_millis() as u64)
}

/// The server's stack: lwIP's 10 sockets less the clients'.
fn server_stack() -> LwipStack {
    LwipStack::new(Config::new(SocketBudget::new(10).reserved(CLIENTS)))
}

// ------------------------------------------------------------ server sides

/// The server side of a transfer.
trait EchoServer {
    /// Listens on a port lwIP picks; returns it.
    fn listen(&mut self) -> u16;
    /// Does what can be done without blocking; whether a byte moved or a
    /// connection opened.
    fn poll(&mut self) -> bool;
    /// Connections open.
    fn connections(&self) -> usize;
    /// Sleeps until one of the server's sockets or `others` is ready, or
    /// `TICK` passes.
    fn wait<'s>(&'s mut self, others: impl Iterator<Item = (&'s Socket, Interest)>);
    /// Closes everything (after the clients have closed).
    fn shut_down(self);
}

/// tcpool: the core's pool over `LwipStack`.
struct Pool {
    stack: LwipStack,
    server: Box<Server<LwipStack, Echo, CLIENTS, BUF, BUF>>,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            stack: server_stack(),
            server: Box::new(Server::new(Echo, tcpool_core::Config::new())),
        }
    }
}

impl EchoServer for Pool {
    fn listen(&mut self) -> u16 {
        self.server.listen(&mut self.stack, 0).expect("listen");
        let listener = self.server.listener().expect("listening");
        listener.local_addr().expect("bound").port()
    }

    fn poll(&mut self) -> bool {
        self.server.poll(&mut self.stack, now())
    }

    fn connections(&self) -> usize {
        self.server.active()
    }

    fn wait<'s>(&'s mut self, others: impl Iterator<Item = (&'s Socket, Interest)>) {
        let timeout = self
            .server
            .poll_at()
            .map_or(TICK, |t| t.saturating_duration_since(now()).min(TICK));
        self.stack
            .wait(self.server.interests().chain(others), Some(timeout))
            .expect("select");
    }

    fn shut_down(mut self) {
        let t = WallClock::now();
        while self.server.active() > 0 {
            assert!(t.elapsed() < STALL, "pool connections did not close");
            self.server.poll(&mut self.stack, now());
            self.wait(std::iter::empty());
        }
        self.server.shutdown(&mut self.stack, now());
    }
}

/// One connection of the raw server: what was received and is not yet sent
/// back is `buf[start..end]`.
struct RawConn {
    sock: Socket,
    buf: Box<[u8; BUF]>,
    start: usize,
    end: usize,
    eof: bool,
}

/// The echo server without the pool.
struct Raw {
    stack: LwipStack,
    listener: Option<Socket>,
    conns: Vec<RawConn>,
}

impl Raw {
    fn new() -> Raw {
        Raw {
            stack: server_stack(),
            listener: None,
            conns: Vec::new(),
        }
    }

    /// Sends what is buffered, then receives more, until lwIP would block.
    fn echo(stack: &mut LwipStack, c: &mut RawConn) -> bool {
        let mut moved = false;
        loop {
            if c.start < c.end {
                match stack.send(&mut c.sock, &c.buf[c.start..c.end]) {
                    Ok(0) | Err(nb::Error::WouldBlock) => return moved,
                    Ok(n) => {
                        c.start += n;
                        moved = true;
                    }
                    Err(nb::Error::Other(e)) => panic!("raw send: {e}"),
                }
                continue;
            }
            if c.eof {
                return moved;
            }
            match stack.receive(&mut c.sock, &mut c.buf[..]) {
                Ok(0) => c.eof = true,
                Ok(n) => {
                    (c.start, c.end) = (0, n);
                    moved = true;
                }
                Err(nb::Error::WouldBlock) => return moved,
                Err(nb::Error::Other(e)) => panic!("raw receive: {e}"),
            }
        }
    }
}

impl EchoServer for Raw {
    fn listen(&mut self) -> u16 {
        let mut l = self.stack.socket().expect("socket");
        self.stack.bind(&mut l, 0).expect("bind");
        self.stack.listen(&mut l).expect("listen");
        let port = l.local_addr().expect("bound").port();
        self.listener = Some(l);
        port
    }

    fn poll(&mut self) -> bool {
        let mut moved = false;
        if let Some(l) = self.listener.as_mut() {
            while self.conns.len() < CLIENTS {
                match self.stack.accept(l) {
                    Ok((sock, _peer)) => {
                        self.conns.push(RawConn {
                            sock,
                            buf: Box::new([0; BUF]),
                            start: 0,
                            end: 0,
                            eof: false,
                        });
                        moved = true;
                    }
                    Err(nb::Error::WouldBlock) => break,
                    Err(nb::Error::Other(e)) => panic!("raw accept: {e}"),
                }
            }
        }
        for c in self.conns.iter_mut() {
            moved |= Self::echo(&mut self.stack, c);
        }
        moved
    }

    fn connections(&self) -> usize {
        self.conns.len()
    }

    fn wait<'s>(&'s mut self, others: impl Iterator<Item = (&'s Socket, Interest)>) {
        let room = self.conns.len() < CLIENTS;
        let listener = self
            .listener
            .iter()
            .filter(|_| room)
            .map(|l| (l, Interest::READABLE));
        let conns = self.conns.iter().map(|c| {
            let pending = c.start < c.end;
            let interest = Interest {
                readable: !pending && !c.eof,
                writable: pending,
            };
            (&c.sock, interest)
        });
        self.stack
            .wait(listener.chain(conns).chain(others), Some(TICK))
            .expect("select");
    }

    fn shut_down(mut self) {
        let t = WallClock::now();
        while self.conns.iter().any(|c| !c.eof || c.start < c.end) {
            assert!(t.elapsed() < STALL, "raw connections did not finish");
            self.poll();
            self.wait(std::iter::empty());
        }
        for c in self.conns.drain(..) {
            self.stack.close(c.sock).expect("close");
        }
        if let Some(l) = self.listener.take() {
            self.stack.close(l).expect("close listener");
        }
    }
}

// ----------------------------------------------------------------- clients

/// The clients: lwIP sockets of their own stack, driven without blocking.
struct Clients {
    stack: LwipStack,
    socks: Vec<Socket>,
    patterns: Vec<Vec<u8>>,
    /// Per client: bytes sent and received in this iteration.
    progress: Vec<(usize, usize)>,
    buf: Vec<u8>,
}

impl Clients {
    /// Connects the clients to `port`, letting `server` accept them.
    fn connect(server: &mut impl EchoServer, port: u16) -> Clients {
        let mut stack = LwipStack::new(
            Config::default()
                .with_socket_budget(CLIENTS)
                .with_lingering_close(None),
        );
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut socks: Vec<Socket> = (0..CLIENTS)
            .map(|_| stack.socket().expect("client socket"))
            .collect();
        let mut connected = [false; CLIENTS];
        let t = WallClock::now();
        while !(connected.iter().all(|&c| c) && server.connections() == CLIENTS) {
            assert!(t.elapsed() < STALL, "clients did not connect");
            for (s, done) in socks.iter_mut().zip(connected.iter_mut()) {
                match stack.connect(s, to) {
                    Ok(()) => *done = true,
                    Err(nb::Error::WouldBlock) => {}
                    Err(nb::Error::Other(e)) => panic!("connect: {e}"),
                }
            }
            if !server.poll() {
                let pending = socks.iter().map(|s| (s, Interest::WRITABLE));
                server.wait(pending);
            }
        }
        Clients {
            stack,
            socks,
            patterns: (0..CLIENTS).map(|i| pattern(LEN, 200 + i as u64)).collect(),
            progress: vec![(0, 0); CLIENTS],
            buf: vec![0; 16 * 1024],
        }
    }

    /// Sends what lwIP takes and reads what arrived, checking every byte.
    /// Whether a byte moved.
    fn pump(&mut self) -> bool {
        let mut moved = false;
        for ((sock, pattern), (sent, got)) in self
            .socks
            .iter_mut()
            .zip(&self.patterns)
            .zip(self.progress.iter_mut())
        {
            while *sent < LEN && *sent - *got < IN_FLIGHT {
                let end = LEN.min(*got + IN_FLIGHT);
                match self.stack.send(sock, &pattern[*sent..end]) {
                    Ok(0) | Err(nb::Error::WouldBlock) => break,
                    Ok(n) => {
                        *sent += n;
                        moved = true;
                    }
                    Err(nb::Error::Other(e)) => panic!("client send: {e}"),
                }
            }
            while *got < LEN {
                match self.stack.receive(sock, &mut self.buf) {
                    Ok(0) => panic!("end of stream after {got} bytes"),
                    Ok(n) => {
                        assert!(
                            self.buf[..n] == pattern[*got..*got + n],
                            "echo differs at byte {got}"
                        );
                        *got += n;
                        moved = true;
                    }
                    Err(nb::Error::WouldBlock) => break,
                    Err(nb::Error::Other(e)) => panic!("client receive: {e}"),
                }
            }
        }
        moved
    }

    fn done(&self) -> bool {
        self.progress.iter().all(|&(s, g)| s == LEN && g == LEN)
    }

    /// What the clients wait for: the echo, and room to send.
    fn interests(&self) -> impl Iterator<Item = (&Socket, Interest)> {
        self.socks
            .iter()
            .zip(&self.progress)
            .map(|(s, &(sent, got))| {
                let interest = Interest {
                    readable: got < LEN,
                    writable: sent < LEN && sent - got < IN_FLIGHT,
                };
                (s, interest)
            })
    }

    /// One iteration: every client sends its pattern and reads it back.
    fn transfer(&mut self, server: &mut impl EchoServer) {
        self.progress.iter_mut().for_each(|p| *p = (0, 0));
        let t = WallClock::now();
        loop {
            let served = server.poll();
            let pumped = self.pump();
            if self.done() {
                return;
            }
            if !(served || pumped) {
                assert!(t.elapsed() < STALL, "transfer stalled");
                server.wait(self.interests());
            }
        }
    }

    fn close(self) {
        let mut stack = self.stack;
        for s in self.socks {
            stack.close(s).expect("client close");
        }
    }
}

// ------------------------------------------------------------------ bench

/// Sets up `server` and its clients, runs criterion's iterations with
/// `bench`, and tears everything down.
fn with_server<E: EchoServer>(mut server: E, bench: impl FnOnce(&mut dyn FnMut(u64) -> Duration)) {
    let port = server.listen();
    let mut clients = Clients::connect(&mut server, port);
    bench(&mut |iters| {
        let t = WallClock::now();
        for _ in 0..iters {
            clients.transfer(&mut server);
        }
        t.elapsed()
    });
    clients.close();
    server.shut_down();
}

fn lwip_transfer(c: &mut Criterion) {
    let mut group = c.benchmark_group("lwip_transfer");
    group.throughput(Throughput::Bytes((CLIENTS * LEN) as u64));
    // A transfer takes a good part of a second: the same iterations in every
    // sample, rather than 1, 2, .. 10 of them.
    group.sampling_mode(SamplingMode::Flat);
    with_server(Pool::new(), |run| {
        group.bench_function("tcpool_pool", |b| {
            b.iter_custom(|iters| record("lwip_transfer/tcpool_pool", iters, run(iters)))
        });
    });
    with_server(Raw::new(), |run| {
        group.bench_function("raw_lwip", |b| {
            b.iter_custom(|iters| record("lwip_transfer/raw_lwip", iters, run(iters)))
        });
    });
    group.finish();
}

/// One session for the interleaved run: set up, `PAIR_TRANSFERS` timed
/// transfers, tear down.
fn session<E: EchoServer>(server: E) -> Duration {
    let mut time = Duration::ZERO;
    with_server(server, |run| time = run(PAIR_TRANSFERS));
    time
}

/// The criterion group (in a module of its own: the function the macro
/// generates is public and has no doc comment).
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = support::criterion(Duration::from_secs(2), Duration::from_secs(10));
        targets = lwip_transfer
    }
}

fn main() {
    tcpool_lwip_host::init();
    group::benches();
    Criterion::default().configure_from_args().final_summary();
    let (pool, peer) = ("lwip_transfer/tcpool_pool", "lwip_transfer/raw_lwip");
    let pairs = (measured(pool).is_some() && measured(peer).is_some())
        .then(|| Pairs::run(PAIRS, || session(Pool::new()), || session(Raw::new())));
    print_ratio("lwip_transfer", "tcpool_pool", "raw_lwip", pairs.as_ref());
}
