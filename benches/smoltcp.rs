//! The smoltcp backend against raw smoltcp, in process: the same echo
//! transfer served once by tcpool (`tcpool_smoltcp::Stack` + the core
//! `Server` with an echo handler) and once by smoltcp sockets driven by hand.
//!
//! Five clients each send 2 MiB of seeded data and read it back, over the
//! simulated wire of `tcpool_smoltcp::sim` (perfect: no loss, 1 ms latency,
//! MTU 1500) on a simulated clock that jumps from event to event. Both runs
//! use the same client stack, wire, seeds, socket buffers (16 KiB each way)
//! and event loop; only the server side differs:
//!
//! * `tcpool_pool`: a `Stack` of 10 pool sockets (5 connections, and 5 that
//!   its emulated backlog keeps listening, so that all 5 handshakes of the
//!   start are caught at once) and a `Server<_, Echo, 5, 8192, 8192>`;
//! * `raw_smoltcp`: an `Interface` and 5 sockets listening on the port,
//!   echoing through an 8 KiB buffer with `recv_slice` / `send_slice`: what
//!   an application without tcpool writes.
//!
//! The time is wall-clock for the whole simulation (both stacks, the wire,
//! the clients checking every byte), from the first `connect` until every
//! client has its echo; setup and teardown are not timed. The throughput
//! counts the bytes echoed (each crosses the server twice). After the run a
//! line `ratio smoltcp_transfer tcpool_pool/raw_smoltcp = R` gives the
//! pool's throughput over raw smoltcp's: the median ratio of 60 pairs of
//! transfers run alternately (robust to other work on the machine), with
//! the ratio of the fastest runs and of criterion's medians beside it; the
//! target is R ≥ 0.95.
//!
//! `cargo bench --bench smoltcp` (under a minute); `-- --test` runs each once.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant as WallClock};

use criterion::{Criterion, Throughput, criterion_group};
use embedded_nal::TcpClientStack;
use smoltcp::iface::{Config as IfaceConfig, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tcpool_core::{Config, Instant, Server};
use tcpool_smoltcp::sim::{SimDevice, SimStack, Wire, WireConfig};
use tcpool_smoltcp::{Config as StackConfig, ListenConfig, TcpHandle};

#[path = "support/embedded.rs"]
#[allow(dead_code, reason = "each bench uses part of the shared support")]
mod support;

use support::{Echo, Pairs, measured, pattern, print_ratio, record};

const PORT: u16 = 7;
const CLIENTS: usize = 5;
/// Bytes each client sends and reads back.
const LEN: usize = 2 * 1024 * 1024;
/// Socket buffers of every smoltcp socket, both sides (RX, TX).
const SOCKET_BUFFERS: (usize, usize) = (16 * 1024, 16 * 1024);
/// Pool sockets of the tcpool server stack, as many as it needs: the 5
/// connections, and the 5 listening sockets its backlog keeps armed for the
/// next clients (a backlog of 5 catches all 5 SYNs of the start at once, so
/// that the TCP exchange is the same as raw smoltcp's).
const SERVER_SOCKETS: usize = 10;
const CLIENT_SOCKETS: usize = 8;
/// The pool's slot buffers, and the raw server's copy buffer.
const SLOT: usize = 8192;
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER_SEED: u64 = 0x5e5e;
const CLIENT_SEED: u64 = 0xc1c1;
/// Transfers of each side in the interleaved run behind the ratio line.
const PAIRS: usize = 60;
/// Simulated time after which a transfer counts as stuck.
const LIMIT: Duration = Duration::from_secs(600);

// ------------------------------------------------------------ server sides

/// The server side of a transfer, on wire end A.
trait EchoServer {
    /// Runs the server at `now` until it has nothing more to do; whether
    /// anything happened.
    fn poll(&mut self, now: Instant) -> bool;
    /// When the server must run next at the latest if no packet arrives.
    fn poll_at(&mut self, now: Instant) -> Option<Instant>;
}

/// tcpool: the smoltcp backend's stack and the core's pool.
struct Pool {
    stack: SimStack<SERVER_SOCKETS>,
    server: Box<Server<SimStack<SERVER_SOCKETS>, Echo, CLIENTS, SLOT, SLOT>>,
}

impl Pool {
    fn new(device: SimDevice) -> Pool {
        let config = StackConfig {
            // Every client connects at once: the backlog takes them all.
            listen: ListenConfig::new(CLIENTS as u8, CLIENTS as u8),
            ..StackConfig::new()
        };
        let mut stack = SimStack::on_device(device, SERVER_IP, config, SOCKET_BUFFERS, SERVER_SEED);
        let mut server = Box::new(Server::new(Echo, Config::new()));
        server.listen(&mut stack, PORT).expect("listen");
        Pool { stack, server }
    }
}

impl EchoServer for Pool {
    fn poll(&mut self, now: Instant) -> bool {
        let mut any = false;
        for _ in 0..64 {
            let moved = self.stack.poll(now);
            let served = self.server.poll(&mut self.stack, now);
            if !(moved || served) {
                break;
            }
            any = true;
        }
        any
    }

    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        [self.stack.poll_at(now), self.server.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Raw smoltcp: one listening socket per client, echo by hand.
struct Raw {
    iface: Interface,
    device: SimDevice,
    sockets: SocketSet<'static>,
    handles: Vec<SocketHandle>,
    chunk: Vec<u8>,
}

fn smol(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(t.as_millis() as i64)
}

impl Raw {
    fn new(mut device: SimDevice) -> Raw {
        let mut config = IfaceConfig::new(HardwareAddress::Ip);
        config.random_seed = SERVER_SEED;
        let mut iface = Interface::new(config, &mut device, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IpAddress::Ipv4(SERVER_IP), 24))
                .expect("one address");
        });
        let mut sockets = SocketSet::new(Vec::new());
        let handles = (0..CLIENTS)
            .map(|_| {
                let mut s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; SOCKET_BUFFERS.0]),
                    tcp::SocketBuffer::new(vec![0; SOCKET_BUFFERS.1]),
                );
                s.set_nagle_enabled(false); // as the tcpool stack's default
                s.listen(PORT).expect("listen");
                sockets.add(s)
            })
            .collect();
        Raw {
            iface,
            device,
            sockets,
            handles,
            chunk: vec![0; SLOT],
        }
    }

    /// Echoes what the send buffers have room for; closes after the peer's
    /// FIN once everything is sent. Whether a byte moved.
    fn echo(&mut self) -> bool {
        let mut moved = false;
        for &h in &self.handles {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            while s.can_recv() && s.can_send() {
                let room = (s.send_capacity() - s.send_queue()).min(self.chunk.len());
                let n = match s.recv_slice(&mut self.chunk[..room]) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                let sent = s.send_slice(&self.chunk[..n]).expect("send");
                assert_eq!(sent, n, "room was checked");
                moved = true;
            }
            if s.state() == tcp::State::CloseWait && s.send_queue() == 0 {
                s.close();
            }
        }
        moved
    }
}

impl EchoServer for Raw {
    fn poll(&mut self, now: Instant) -> bool {
        let mut any = false;
        for _ in 0..64 {
            let changed = self
                .iface
                .poll(smol(now), &mut self.device, &mut self.sockets)
                == PollResult::SocketStateChanged;
            let moved = self.echo();
            if !(changed || moved) {
                break;
            }
            any = true;
        }
        any
    }

    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let at = self.iface.poll_at(smol(now), &self.sockets)?;
        let micros = at.total_micros().max(0) as u64;
        Some(Instant::from_millis(micros.div_ceil(1000)))
    }
}

// ----------------------------------------------------------------- clients

/// One client: sends its pattern, checks every byte of the echo, closes.
struct Client<'p> {
    sock: Option<TcpHandle>,
    established: bool,
    pattern: &'p [u8],
    sent: usize,
    got: usize,
}

impl<'p> Client<'p> {
    fn connect(stack: &mut SimStack<CLIENT_SOCKETS>, pattern: &'p [u8]) -> Client<'p> {
        let mut sock = stack.socket().expect("client socket");
        match stack.connect(&mut sock, server_addr()) {
            Ok(()) | Err(nb::Error::WouldBlock) => {}
            Err(nb::Error::Other(e)) => panic!("connect: {e}"),
        }
        Client {
            sock: Some(sock),
            established: false,
            pattern,
            sent: 0,
            got: 0,
        }
    }

    /// Sends what fits, reads what arrived; closes once the echo is
    /// complete. Whether a byte moved.
    fn pump(&mut self, stack: &mut SimStack<CLIENT_SOCKETS>, buf: &mut [u8]) -> bool {
        let Some(sock) = self.sock.as_mut() else {
            return false;
        };
        if !self.established {
            match stack.connect(sock, server_addr()) {
                Ok(()) => self.established = true,
                Err(nb::Error::WouldBlock) => return false,
                Err(nb::Error::Other(e)) => panic!("connect: {e}"),
            }
        }
        let mut moved = false;
        while self.sent < self.pattern.len() {
            match stack.send(sock, &self.pattern[self.sent..]) {
                Ok(n) => {
                    self.sent += n;
                    moved = true;
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => panic!("client send: {e}"),
            }
        }
        loop {
            match stack.receive(sock, buf) {
                Ok(0) => panic!("end of stream after {} of {} bytes", self.got, LEN),
                Ok(n) => {
                    let want = &self.pattern[self.got..self.got + n];
                    assert!(&buf[..n] == want, "echo differs at byte {}", self.got);
                    self.got += n;
                    moved = true;
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => panic!("client receive: {e}"),
            }
        }
        if self.got == self.pattern.len()
            && let Some(sock) = self.sock.take()
        {
            stack.close(sock).expect("client close");
        }
        moved
    }
}

fn server_addr() -> SocketAddr {
    SocketAddr::from((SERVER_IP, PORT))
}

// ---------------------------------------------------------------- transfer

/// One transfer, ready to run: the wire, the client stack and a server.
struct Run<E> {
    wire: Wire,
    client: SimStack<CLIENT_SOCKETS>,
    server: E,
}

impl<E: EchoServer> Run<E> {
    fn new(server: impl FnOnce(SimDevice) -> E) -> Run<E> {
        let (wire, a, b) = Wire::new(WireConfig {
            capture: false,
            ..WireConfig::new()
        });
        let client = SimStack::on_device(
            b,
            CLIENT_IP,
            StackConfig::new(),
            SOCKET_BUFFERS,
            CLIENT_SEED,
        );
        Run {
            wire,
            client,
            server: server(a),
        }
    }

    /// Every client sends its pattern and reads it back, then closes.
    /// Returns the simulated time it took.
    fn transfer(&mut self, patterns: &[Vec<u8>]) -> Duration {
        let mut clients: Vec<Client<'_>> = patterns
            .iter()
            .map(|p| Client::connect(&mut self.client, p))
            .collect();
        let mut buf = vec![0u8; SOCKET_BUFFERS.0];
        let mut now = Instant::ZERO;
        loop {
            for _ in 0..64 {
                let served = self.server.poll(now);
                let moved = self.client.poll(now);
                let mut pumped = false;
                for c in clients.iter_mut() {
                    pumped |= c.pump(&mut self.client, &mut buf);
                }
                if !(served || moved || pumped) {
                    break;
                }
            }
            if clients.iter().all(|c| c.sock.is_none()) {
                return now.saturating_duration_since(Instant::ZERO);
            }
            assert!(
                now.saturating_duration_since(Instant::ZERO) < LIMIT,
                "transfer stuck"
            );
            // Jump to the next event, at least 1 ms ahead.
            let next = [
                self.wire.next_arrival(),
                self.server.poll_at(now),
                self.client.poll_at(now),
            ]
            .into_iter()
            .flatten()
            .min();
            let earliest = now + Duration::from_millis(1);
            now = next.map_or(earliest, |t| t.max(earliest));
        }
    }
}

/// The clients' data.
fn patterns() -> Vec<Vec<u8>> {
    (0..CLIENTS).map(|i| pattern(LEN, 100 + i as u64)).collect()
}

/// Runs `iters` transfers with fresh stacks, timing only the transfers.
fn timed<E: EchoServer>(
    iters: u64,
    patterns: &[Vec<u8>],
    server: impl Fn(SimDevice) -> E,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut run = Run::new(&server);
        let t = WallClock::now();
        black_box(run.transfer(patterns));
        total += t.elapsed();
    }
    total
}

fn smoltcp_transfer(c: &mut Criterion) {
    let patterns = patterns();
    let mut group = c.benchmark_group("smoltcp_transfer");
    group.throughput(Throughput::Bytes((CLIENTS * LEN) as u64));
    group.bench_function("tcpool_pool", |b| {
        b.iter_custom(|iters| {
            let t = timed(iters, &patterns, Pool::new);
            record("smoltcp_transfer/tcpool_pool", iters, t)
        })
    });
    group.bench_function("raw_smoltcp", |b| {
        b.iter_custom(|iters| {
            let t = timed(iters, &patterns, Raw::new);
            record("smoltcp_transfer/raw_smoltcp", iters, t)
        })
    });
    group.finish();
}

/// Both sides once, untimed by criterion: the simulated time each took (the
/// same TCP behaviour should give about the same time).
fn print_simulated() {
    let patterns = patterns();
    let pool = Run::new(Pool::new).transfer(&patterns);
    let raw = Run::new(Raw::new).transfer(&patterns);
    let mbps = |d: Duration| (CLIENTS * LEN) as f64 / d.as_secs_f64() / 1e6;
    println!(
        "smoltcp_transfer: {CLIENTS} clients x {} MiB echoed; simulated time: tcpool_pool {pool:?} \
         ({:.1} MB/s), raw_smoltcp {raw:?} ({:.1} MB/s)",
        LEN / (1024 * 1024),
        mbps(pool),
        mbps(raw)
    );
}

/// The criterion group (in a module of its own: the function the macro
/// generates is public and has no doc comment).
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = support::criterion(Duration::from_secs(3), Duration::from_secs(12));
        targets = smoltcp_transfer
    }
}

fn main() {
    print_simulated();
    group::benches();
    Criterion::default().configure_from_args().final_summary();
    let (pool, peer) = (
        "smoltcp_transfer/tcpool_pool",
        "smoltcp_transfer/raw_smoltcp",
    );
    let pairs = (measured(pool).is_some() && measured(peer).is_some()).then(|| {
        let patterns = patterns();
        Pairs::run(
            PAIRS,
            || timed(1, &patterns, Pool::new),
            || timed(1, &patterns, Raw::new),
        )
    });
    print_ratio(
        "smoltcp_transfer",
        "tcpool_pool",
        "raw_smoltcp",
        pairs.as_ref(),
    );
}
