//! tcpool-core's `Server` over the smoltcp backend, in process: the server
//! `Stack` on one end of a simulated wire, clients as `embedded-nal` sockets
//! of the client-side `Stack` on the other.
//!
//! * echo round trip;
//! * 6 clients on a 4-slot server under `WhenFull::Defer`: 4 served, 2 wait
//!   in the stack's backlog, nobody is closed to make room, a waiting client
//!   is served as soon as a slot frees;
//! * 2,000 connect-send(8 bytes)-close cycles, every byte counted by the
//!   handler;
//! * 5 clients echoing a 1 MiB pattern each over a perfect wire, and over a
//!   seeded lossy wire (1, 3 and 5 % loss plus as much reordering, and
//!   duplicates).
//!
//! The pool's speed against raw smoltcp sockets on the same transfer is a
//! benchmark, not a test: `cargo bench --bench smoltcp` in the workspace root.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{from_server, pattern};
use embedded_nal::TcpClientStack;
use tcpool_conformance::{Mode, Recorder};
use tcpool_core::{CloseReason, Closed, Config, Conn, Handler, Server};
use tcpool_smoltcp::sim::{SimConfig, SimNet, SimStack, WireConfig};
use tcpool_smoltcp::{Config as StackConfig, Error, ListenConfig, TcpHandle};

const PORT: u16 = 7;

// ------------------------------------------------------------------ handlers

/// Echoes everything; records every connection and how it ended.
fn echo() -> Recorder {
    Recorder::new(Mode::Echo).counting_only()
}

/// Consumes everything and keeps each connection's bytes, handed over when
/// the connection ends.
#[derive(Default)]
struct Collect {
    messages: Vec<Vec<u8>>,
    closed: Vec<Closed>,
    bytes: u64,
}

impl Handler for Collect {
    type State = Vec<u8>;

    fn on_open(&mut self, _conn: &mut Conn<'_>) -> Vec<u8> {
        Vec::new()
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, state: &mut Vec<u8>, data: &[u8]) -> usize {
        state.extend_from_slice(data);
        self.bytes += data.len() as u64;
        data.len()
    }

    fn on_closed(&mut self, closed: &Closed, state: Vec<u8>) {
        self.messages.push(state);
        self.closed.push(*closed);
    }
}

// -------------------------------------------------------------------- driver

type Srv<H, const S: usize, const N: usize, const RX: usize, const TX: usize> =
    Server<SimStack<S>, H, N, RX, TX>;

/// Run the network and the server as a firmware loop would (poll the server
/// until it is quiet, sleep until the next packet, stack timer or server
/// deadline) until `done` (checked after every step; it may drive the
/// clients) or `limit` of simulated time has passed.
fn run<H, const S: usize, const C: usize, const N: usize, const RX: usize, const TX: usize>(
    net: &mut SimNet<S, C>,
    server: &mut Srv<H, S, N, RX, TX>,
    limit: Duration,
    mut done: impl FnMut(&mut SimNet<S, C>, &mut Srv<H, S, N, RX, TX>) -> bool,
) -> bool
where
    H: Handler,
{
    let deadline = net.now() + limit;
    loop {
        for _ in 0..16 {
            let now = net.now();
            let served = server.poll(&mut net.server, now);
            let moved = net.poll();
            if !(served || moved) {
                break;
            }
        }
        if done(net, server) {
            return true;
        }
        let now = net.now();
        if now >= deadline {
            return false;
        }
        let left = deadline.saturating_duration_since(now);
        let max = server
            .poll_at()
            .map_or(left, |t| t.saturating_duration_since(now).min(left));
        net.step(max);
    }
}

/// One client connection on the client-side stack.
struct Client {
    sock: Option<TcpHandle>,
    established: bool,
    /// What it still has to send, from `sent`.
    out: Vec<u8>,
    sent: usize,
    /// What it received.
    got: Vec<u8>,
    eof: bool,
}

impl Client {
    /// Start connecting (non-blocking).
    fn start<const S: usize, const C: usize>(net: &mut SimNet<S, C>, out: Vec<u8>) -> Client {
        let addr = net.server_addr(PORT);
        let mut sock = net.client.socket().expect("client socket");
        match net.client.connect(&mut sock, addr) {
            Err(nb::Error::WouldBlock) | Ok(()) => {}
            Err(nb::Error::Other(e)) => panic!("connect: {e}"),
        }
        Client {
            sock: Some(sock),
            established: false,
            out,
            sent: 0,
            got: Vec::new(),
            eof: false,
        }
    }

    /// Finish the handshake, send what fits, read what arrived.
    fn pump<const S: usize, const C: usize>(&mut self, net: &mut SimNet<S, C>) {
        let Some(sock) = self.sock.as_mut() else {
            return;
        };
        if !self.established {
            match net.client.connect(sock, net.server_addr(PORT)) {
                Ok(()) => self.established = true,
                Err(nb::Error::WouldBlock) => return,
                Err(nb::Error::Other(e)) => panic!("connect: {e}"),
            }
        }
        while self.sent < self.out.len() {
            match net.client.send(sock, &self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => panic!("client send: {e}"),
            }
        }
        let mut buf = [0u8; 4096];
        while !self.eof {
            match net.client.receive(sock, &mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(e)) => panic!("client receive: {e}"),
            }
        }
    }

    /// Queue more output.
    fn queue(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
    }

    fn close<const S: usize, const C: usize>(&mut self, net: &mut SimNet<S, C>) {
        if let Some(sock) = self.sock.take() {
            net.client.close(sock).expect("client close");
        }
    }
}

fn assert_no_resets<const S: usize, const C: usize>(net: &SimNet<S, C>) {
    let rsts: Vec<_> = net
        .wire
        .captured()
        .into_iter()
        .filter(|p| p.flags.rst)
        .collect();
    assert!(rsts.is_empty(), "resets on the wire: {rsts:?}");
}

// --------------------------------------------------------------------- tests

#[test]
fn echo_round_trip() {
    let mut net: SimNet<6, 4> = SimNet::new(SimConfig::default());
    let mut server: Srv<Recorder, 6, 4, 1024, 1024> = Server::new(echo(), Config::new());
    server.listen(&mut net.server, PORT).expect("listen");

    let msg = b"hello, tcpool over smoltcp";
    let mut c = Client::start(&mut net, msg.to_vec());
    let ok = run(&mut net, &mut server, Duration::from_secs(5), |net, _| {
        c.pump(net);
        c.got.len() >= msg.len()
    });
    assert!(ok, "no echo: got {:?}", c.got);
    assert_eq!(c.got, msg);
    assert_eq!(server.active(), 1);

    // The client closes; the server sees the end of stream and closes too.
    c.close(&mut net);
    let ok = run(&mut net, &mut server, Duration::from_secs(5), |_, s| {
        s.handler().closed().len() == 1
    });
    assert!(ok, "server did not see the close");
    let closed = server.handler().closed()[0];
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!((closed.bytes_in, closed.bytes_out), (26, 26));
    net.advance(Duration::from_secs(60));
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.pending, st.closing), (0, 0, 0), "{st:?}");
    assert_no_resets(&net);
}

#[test]
fn conn_abort_resets_the_peer_a_rst_on_the_wire_never_a_fin() {
    // `Conn::abort` reaches `Backend::abort`, i.e. `Stack::abort`.
    let mut net: SimNet<6, 4> = SimNet::new(SimConfig::default());
    let mut server: Srv<Recorder, 6, 2, 1024, 1024> =
        Server::new(Recorder::new(Mode::Lines { max: 64 }), Config::new());
    server.listen(&mut net.server, PORT).expect("listen");
    let mut c = Client::start(&mut net, b"hi\n".to_vec());
    let ok = run(&mut net, &mut server, Duration::from_secs(5), |net, _| {
        c.pump(net);
        c.got == b"hi\n"
    });
    assert!(ok, "no echo: got {:?}", c.got);

    // An established, idle connection: the handler aborts it.
    net.wire.clear_capture();
    let sock = c.sock.as_mut().expect("connected");
    assert_eq!(net.client.send(sock, b"ABORT\n"), Ok(6));
    let mut end = None;
    let ok = run(&mut net, &mut server, Duration::from_secs(5), |net, _| {
        let mut buf = [0u8; 64];
        match net.client.receive(sock, &mut buf) {
            Ok(0) => end = Some(Ok(())),
            Ok(_) | Err(nb::Error::WouldBlock) => {}
            Err(nb::Error::Other(e)) => end = Some(Err(e)),
        }
        end.is_some()
    });
    assert!(ok, "the client saw no end at all");
    assert_eq!(end, Some(Err(Error::ConnectionReset)), "a reset, not a FIN");
    let sent = from_server(&net);
    assert!(sent.iter().any(|p| p.flags.rst), "no RST: {sent:?}");
    assert!(sent.iter().all(|p| !p.flags.fin), "a FIN: {sent:?}");
    assert_eq!(server.handler().reasons(), [CloseReason::Aborted]);
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.closing), (0, 0), "{st:?}");
}

#[test]
fn six_clients_on_four_slots_defer_then_serve_in_turn() {
    // 4 slots; the stack holds up to 4 sockets for the listener before
    // accept (2 listening + waiting connections), so the 2 extra clients
    // complete their handshake and wait in the emulated backlog.
    let mut net: SimNet<10, 8> = SimNet::new(SimConfig::default());
    let mut server: Srv<Recorder, 10, 4, 1024, 1024> = Server::new(echo(), Config::new());
    server.listen(&mut net.server, PORT).expect("listen");

    let mut clients: Vec<Client> = (0..6)
        .map(|i| Client::start(&mut net, format!("client {i}\n").into_bytes()))
        .collect();
    let served = |c: &Client, i: usize| c.got == format!("client {i}\n").as_bytes();

    // Run well past every retransmission timer: the picture must not change.
    run(&mut net, &mut server, Duration::from_secs(3), |net, _| {
        clients.iter_mut().for_each(|c| c.pump(net));
        false
    });
    let first: Vec<usize> = (0..6).filter(|&i| served(&clients[i], i)).collect();
    let waiting: Vec<usize> = (0..6).filter(|&i| !served(&clients[i], i)).collect();
    assert_eq!(first.len(), 4, "served: {first:?}");
    assert!(
        waiting.iter().all(|&i| clients[i].got.is_empty()),
        "a waiting client got bytes"
    );
    assert!(
        clients.iter().all(|c| c.established),
        "the 2 extra clients should wait established in the backlog"
    );
    assert_eq!(server.active(), 4);
    assert!(server.stats().deferred >= 1);
    assert!(server.handler().closed().is_empty(), "nobody may be closed");
    assert_eq!(net.server.pool_stats().pending, 2);

    // The 4 served connections are intact: they still echo.
    for &i in &first {
        clients[i].queue(b"again\n");
    }
    let ok = run(&mut net, &mut server, Duration::from_secs(5), |net, _| {
        clients.iter_mut().for_each(|c| c.pump(net));
        first.iter().all(|&i| clients[i].got.ends_with(b"again\n"))
    });
    assert!(ok, "a served client stopped being served");
    assert!(waiting.iter().all(|&i| clients[i].got.is_empty()));

    // One leaves: exactly one waiting client is served; then the other.
    for (round, &leaver) in first.iter().take(2).enumerate() {
        clients[leaver].close(&mut net);
        let ok = run(&mut net, &mut server, Duration::from_secs(5), |net, _| {
            clients.iter_mut().for_each(|c| c.pump(net));
            waiting.iter().filter(|&&i| served(&clients[i], i)).count() == round + 1
        });
        assert!(ok, "round {round}: no waiting client was served");
        // ... and not more than one per freed slot.
        run(
            &mut net,
            &mut server,
            Duration::from_millis(500),
            |net, _| {
                clients.iter_mut().for_each(|c| c.pump(net));
                false
            },
        );
        let now_served = waiting.iter().filter(|&&i| served(&clients[i], i)).count();
        assert_eq!(now_served, round + 1);
        assert_eq!(server.active(), 4);
        assert_eq!(server.handler().closed().len(), round + 1);
        assert_eq!(
            server.handler().closed()[round].reason,
            CloseReason::PeerClosed
        );
    }
    // The first-come waiting client was served first.
    assert_eq!(server.handler().conns().len(), 6);
    assert_no_resets(&net);
}

#[test]
fn two_thousand_connect_send_close_cycles_lose_nothing() {
    const CYCLES: usize = 2_000;
    const IN_FLIGHT: usize = 4;
    let mut net: SimNet<10, 12> = SimNet::new(SimConfig::default());
    let mut server: Srv<Collect, 10, 4, 256, 256> = Server::new(Collect::default(), Config::new());
    server.listen(&mut net.server, PORT).expect("listen");

    let mut started = 0usize;
    let mut active: Vec<Client> = Vec::new();
    let ok = run(
        &mut net,
        &mut server,
        Duration::from_secs(600),
        |net, server| {
            // Clients send their 8 bytes as soon as connected, then close.
            for c in active.iter_mut() {
                c.pump(net);
                if c.established && c.sent == c.out.len() {
                    c.close(net);
                }
            }
            active.retain(|c| c.sock.is_some());
            while active.len() < IN_FLIGHT && started < CYCLES && net.client.pool_stats().free > 0 {
                active.push(Client::start(net, format!("{started:08}").into_bytes()));
                started += 1;
            }
            started == CYCLES && active.is_empty() && server.handler().closed.len() == CYCLES
        },
    );
    let h = server.handler();
    assert!(ok, "stalled: {started} started, {} closed", h.closed.len());
    assert_eq!(h.bytes, (CYCLES * 8) as u64);
    let got: BTreeSet<Vec<u8>> = h.messages.iter().cloned().collect();
    let want: BTreeSet<Vec<u8>> = (0..CYCLES)
        .map(|i| format!("{i:08}").into_bytes())
        .collect();
    assert_eq!(got.len(), CYCLES, "duplicate or merged messages");
    assert!(got == want, "messages differ");
    assert!(h.closed.iter().all(|c| c.reason == CloseReason::PeerClosed));
    assert_eq!(server.stats().accepted, CYCLES as u32);
    assert_eq!(
        server.stats().closed.get(CloseReason::PeerClosed),
        CYCLES as u32
    );
    assert_no_resets(&net);
    net.advance(Duration::from_secs(60));
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.pending, st.closing), (0, 0, 0), "{st:?}");
    assert_eq!(net.client.pool_stats().free, 12);
}

/// Bytes per client of the echo transfers.
const LOSSY_BYTES: usize = 1024 * 1024;
const CLIENTS: usize = 5;

fn sim_config(wire: WireConfig) -> SimConfig {
    SimConfig {
        wire,
        // All clients connect at once: the emulated backlog must catch all
        // their SYNs, or those beyond `max_queued` are held and retried
        // after the client's 1 s retransmission timeout (see `ListenConfig`).
        server: StackConfig {
            listen: ListenConfig::new(CLIENTS as u8, CLIENTS as u8),
            ..StackConfig::new()
        },
        server_buffers: (16 * 1024, 16 * 1024),
        client_buffers: (16 * 1024, 16 * 1024),
        ..SimConfig::default()
    }
}

/// `CLIENTS` clients each stream `len` bytes of their own pattern to the
/// pool's echo server and read the echo back; then they close. Returns the
/// network, for its wire counters.
fn pool_echo(wire: WireConfig, len: usize) -> SimNet<12, 8> {
    let mut net: SimNet<12, 8> = SimNet::new(sim_config(wire));
    let mut server: Srv<Recorder, 12, CLIENTS, 8192, 8192> = Server::new(echo(), Config::new());
    server.listen(&mut net.server, PORT).expect("listen");
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| Client::start(&mut net, pattern(len, i as u8)))
        .collect();
    let ok = run(
        &mut net,
        &mut server,
        Duration::from_secs(3600),
        |net, _| {
            for c in clients.iter_mut() {
                c.pump(net);
                if c.got.len() == len {
                    c.close(net);
                }
            }
            clients.iter().all(|c| c.sock.is_none())
        },
    );
    let got: Vec<usize> = clients.iter().map(|c| c.got.len()).collect();
    assert!(ok, "transfer did not finish: {got:?}");
    for (i, c) in clients.iter().enumerate() {
        assert!(c.got == pattern(len, i as u8), "client {i}: echo differs");
    }
    let ok = run(&mut net, &mut server, Duration::from_secs(120), |_, s| {
        s.handler().closed().len() == CLIENTS
    });
    assert!(ok, "server did not close every connection");
    let h = server.handler();
    assert!(
        h.closed()
            .iter()
            .all(|c| c.reason == CloseReason::PeerClosed
                && c.bytes_in == len as u64
                && c.bytes_out == len as u64)
    );
    net
}

fn lossy(seed: u64, loss: f64) {
    let wire = WireConfig {
        duplicate: 0.01,
        capture: false,
        ..WireConfig::lossy(seed, loss)
    };
    let net = pool_echo(wire, LOSSY_BYTES);
    let st = net.wire.stats();
    assert!(
        st.lost > 0 && st.reordered > 0 && st.duplicated > 0,
        "{st:?}"
    );
    println!(
        "{CLIENTS} x {} KiB echoed over {:.0}% loss: {st:?}",
        LOSSY_BYTES / 1024,
        loss * 100.0
    );
}

#[test]
fn five_clients_echo_a_pattern_over_a_perfect_wire() {
    let wire = WireConfig {
        capture: false,
        ..WireConfig::new()
    };
    let net = pool_echo(wire, LOSSY_BYTES);
    let st = net.wire.stats();
    assert_eq!((st.lost, st.reordered, st.duplicated), (0, 0, 0));
}

#[test]
fn five_clients_echo_a_pattern_over_1_percent_loss() {
    lossy(11, 0.01);
}

#[test]
fn five_clients_echo_a_pattern_over_3_percent_loss() {
    lossy(12, 0.03);
}

#[test]
fn five_clients_echo_a_pattern_over_5_percent_loss() {
    lossy(13, 0.05);
}
