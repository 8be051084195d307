//! Unit tests of the server against the in-memory stack, with one fixture
//! builder per slot state.
//!
//! The file is compiled twice: as `tests`, on a stack that does not report
//! readiness (every poll tries every socket), and as `tests_ready`, on one
//! that does (a poll services only what the stack reports, what has work of
//! its own and what is due).

use std::vec::Vec;

use super::*;
use crate::Conn;
use crate::framing::Lines;
use crate::mock::{ClientRead, MockClient, MockConfig, MockStack};
use crate::{CloseReason, Closed, WhenFull};
use core::net::SocketAddr;
use core::time::Duration;

const PORT: u16 = 7000;

/// What the recording handler does with input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Write back what fits, consume that much.
    Echo,
    /// Consume everything, write nothing.
    Sink,
    /// Consume nothing (a frame that never completes).
    Hold,
    /// Line commands: "CLOSE" closes, "ABORT" aborts, others echo.
    Lines,
}

#[derive(Default)]
struct ConnLog {
    received: Vec<u8>,
    peer_closed: bool,
    writable: usize,
}

struct Recorder {
    mode: Mode,
    greeting: &'static [u8],
    closed: Vec<Closed>,
    refuse_all: bool,
    /// (bytes received when on_peer_closed ran) for each connection.
    eof_at: Vec<usize>,
}

impl Recorder {
    fn new(mode: Mode) -> Self {
        Recorder {
            mode,
            greeting: b"",
            closed: Vec::new(),
            refuse_all: false,
            eof_at: Vec::new(),
        }
    }

    fn reasons(&self) -> Vec<CloseReason> {
        self.closed.iter().map(|c| c.reason).collect()
    }
}

impl Handler for Recorder {
    type State = ConnLog;

    fn admit(&mut self, _peer: SocketAddr) -> bool {
        !self.refuse_all
    }

    fn on_open(&mut self, conn: &mut Conn<'_>) -> ConnLog {
        conn.write_all(self.greeting).unwrap();
        ConnLog::default()
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, state: &mut ConnLog, data: &[u8]) -> usize {
        let used = match self.mode {
            Mode::Echo => conn.write(data),
            Mode::Sink => data.len(),
            Mode::Hold => 0,
            Mode::Lines => {
                let mut lines = Lines::new(data, 16);
                for line in lines.by_ref() {
                    match line {
                        Ok(b"CLOSE") => conn.close(),
                        Ok(b"ABORT") => conn.abort(),
                        Ok(other) => {
                            let _ = conn.write_all(other);
                        }
                        Err(_) => {
                            let _ = conn.write_all(b"ERR line too long\n");
                            conn.close_with(CloseReason::Protocol);
                            return data.len();
                        }
                    }
                }
                lines.consumed()
            }
        };
        state.received.extend_from_slice(&data[..used]);
        used
    }

    fn on_peer_closed(&mut self, conn: &mut Conn<'_>, state: &mut ConnLog) {
        state.peer_closed = true;
        self.eof_at.push(state.received.len());
        conn.close();
    }

    fn on_writable(&mut self, _conn: &mut Conn<'_>, state: &mut ConnLog) {
        state.writable += 1;
    }

    fn on_closed(&mut self, closed: &Closed, _state: ConnLog) {
        self.closed.push(*closed);
    }
}

type TestServer<const N: usize = 4> = Server<MockStack, Recorder, N, 64, 64>;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Polls until nothing more happens (the mock stack is instantaneous).
fn settle<const N: usize>(server: &mut TestServer<N>, stack: &mut MockStack, now: Instant) {
    for _ in 0..10_000 {
        if !server.poll(stack, now) {
            return;
        }
    }
    panic!("server never settled");
}

/// The mock stack, reporting readiness in the `tests_ready` copy.
fn new_stack(mock: MockConfig) -> MockStack {
    let stack = MockStack::with_config(mock);
    stack.set_reports_ready(module_path!().ends_with("tests_ready"));
    stack
}

/// How many sockets a wait would wake for: the server's interests, or on a
/// stack that reports readiness, what the stack was asked to watch.
fn waited_on<const N: usize>(server: &TestServer<N>, stack: &MockStack) -> usize {
    if stack.reports_ready() {
        assert_eq!(server.interests().count(), 0);
        stack.watched()
    } else {
        server.interests().count()
    }
}

fn listening<const N: usize>(
    mode: Mode,
    config: Config,
    mock: MockConfig,
) -> (MockStack, TestServer<N>) {
    let mut stack = new_stack(mock);
    let mut server = Server::new(Recorder::new(mode), config);
    server.listen(&mut stack, PORT).unwrap();
    (stack, server)
}

/// Fixture: a server with one connection in `Open`.
fn open_conn(mode: Mode, config: Config) -> (MockStack, TestServer, MockClient) {
    let (mut stack, mut server) = listening(mode, config, MockConfig::default());
    let client = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    assert_eq!(server.slot_states().next(), Some(SlotState::Open));
    (stack, server, client)
}

/// Fixture: a connection whose peer has half-closed while the handler holds input.
fn peer_closed_conn() -> (MockStack, TestServer, MockClient) {
    let (mut stack, mut server, client) = open_conn(Mode::Hold, Config::new());
    client.send(b"partial");
    client.shutdown_write();
    server.poll(&mut stack, t(1));
    (stack, server, client)
}

/// Fixture: a connection in `Closing` with output the client is not reading.
fn closing_conn() -> (MockStack, TestServer, MockClient) {
    let mock = MockConfig {
        window: 16,
        ..MockConfig::default()
    };
    let (mut stack, mut server) = listening(
        Mode::Lines,
        Config::new().with_linger(Duration::from_millis(500)),
        mock,
    );
    let client = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    // 16 bytes fill the window; the reply to the second line stays queued.
    client.send(b"0123456789abcde\n");
    settle(&mut server, &mut stack, t(0));
    let rest = b"zyxwvutsrqponm\nCLOSE\n";
    let mut sent = 0;
    while sent < rest.len() {
        sent += client.send(&rest[sent..]);
        settle(&mut server, &mut stack, t(0));
    }
    let st = server.slot_states().next();
    assert!(
        matches!(st, Some(SlotState::Closing { .. })),
        "{st:?} {:?} {}",
        server.handler().reasons(),
        client.pending()
    );
    (stack, server, client)
}

#[test]
fn echo_round_trip() {
    let (mut stack, mut server, client) = open_conn(Mode::Echo, Config::new());
    client.send(b"hello, pool");
    settle(&mut server, &mut stack, t(1));
    assert_eq!(client.recv_all(), b"hello, pool");
    assert_eq!(server.stats().bytes_in, 11);
    assert_eq!(server.stats().bytes_out, 11);
}

#[test]
fn peer_fin_after_data_delivers_all_bytes_before_peer_closed() {
    let (mut stack, mut server, client) = open_conn(Mode::Sink, Config::new());
    // Data and FIN arrive together, before the server ever reads.
    client.send(b"\xaa\x05\xfe\x93\x00\x00\x01\x41");
    client.shutdown_write();
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.handler().eof_at, [8]);
    assert_eq!(server.handler().reasons(), [CloseReason::PeerClosed]);
    assert_eq!(server.handler().closed[0].bytes_in, 8);
    assert!(client.server_closed() && !client.was_reset());
}

#[test]
fn peer_close_is_reported_with_unconsumable_input_left() {
    let (mut stack, mut server, _client) = peer_closed_conn();
    settle(&mut server, &mut stack, t(2));
    assert_eq!(server.handler().eof_at, [0]);
    assert_eq!(server.handler().reasons(), [CloseReason::PeerClosed]);
}

#[test]
fn reply_is_sent_after_peer_half_close() {
    let (mut stack, mut server, client) = open_conn(Mode::Echo, Config::new());
    client.send(b"last words");
    client.shutdown_write();
    settle(&mut server, &mut stack, t(1));
    assert_eq!(client.recv_all(), b"last words");
    assert_eq!(client.recv(&mut [0; 4]), ClientRead::Eof);
}

#[test]
fn full_pool_defers_newcomers_and_never_drops_established() {
    let (mut stack, mut server) = listening::<4>(Mode::Echo, Config::new(), MockConfig::default());
    let clients: Vec<MockClient> = (0..6)
        .map(|_| stack.connect_client(PORT).unwrap())
        .collect();
    settle(&mut server, &mut stack, t(0));
    assert_eq!(server.active(), 4);
    assert_eq!(stack.backlog_len(PORT), 2);
    assert_eq!(server.stats().deferred, 1);
    for round in 0..3u8 {
        for c in &clients {
            c.send(&[round]);
        }
        settle(&mut server, &mut stack, t(1 + round as u64));
        for c in &clients[..4] {
            assert_eq!(c.recv_all(), [round]);
            assert!(!c.server_closed());
        }
        for c in &clients[4..] {
            assert_eq!(c.pending(), 0, "a deferred client must get nothing");
        }
    }
    clients[1].shutdown_write();
    settle(&mut server, &mut stack, t(10));
    assert_eq!(server.active(), 4);
    assert_eq!(stack.backlog_len(PORT), 1);
    // The fifth client's earlier bytes are all echoed once it is served.
    assert_eq!(clients[4].recv_all(), [0, 1, 2]);
    assert_eq!(server.stats().closed.total(), 1);
}

#[test]
fn full_pool_under_defer_does_not_ask_to_read_the_listener() {
    let (mut stack, mut server) = listening::<2>(Mode::Echo, Config::new(), MockConfig::default());
    let _a = stack.connect_client(PORT).unwrap();
    assert_eq!(waited_on(&server, &stack), 1);
    let _b = stack.connect_client(PORT).unwrap();
    let _c = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    // Two connections want input; the listener is left alone.
    assert_eq!(waited_on(&server, &stack), 2);
}

#[test]
fn reject_sends_the_banner_and_closes_the_newcomer_only() {
    let config = Config::new()
        .with_when_full(WhenFull::Reject)
        .with_reject_banner(b"busy\n");
    let (mut stack, mut server) = listening::<2>(Mode::Echo, config, MockConfig::default());
    let a = stack.connect_client(PORT).unwrap();
    let b = stack.connect_client(PORT).unwrap();
    let c = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    assert_eq!(c.recv_all(), b"busy\n");
    assert!(c.server_closed() && !c.was_reset());
    assert_eq!(server.stats().refused, 1);
    a.send(b"x");
    b.send(b"y");
    settle(&mut server, &mut stack, t(1));
    assert_eq!((a.recv_all(), b.recv_all()), (b"x".to_vec(), b"y".to_vec()));
    assert!(
        server.handler().closed.is_empty(),
        "refused clients never reach on_closed"
    );
}

#[test]
fn evict_idlest_picks_the_longest_idle_and_respects_min_idle() {
    let config = Config::new().with_when_full(WhenFull::EvictIdlest {
        min_idle: Duration::from_millis(1000),
    });
    let (mut stack, mut server) = listening::<2>(Mode::Echo, config, MockConfig::default());
    let a = stack.connect_client(PORT).unwrap();
    let b = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    b.send(b"b");
    settle(&mut server, &mut stack, t(300));
    a.send(b"a");
    settle(&mut server, &mut stack, t(600));
    // At t=1200 b (idle since 300) is past min_idle, a (idle since 600) is not.
    let c = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(1000));
    assert_eq!(
        server.stats().evicted,
        0,
        "nobody idle long enough at t=1000"
    );
    assert_eq!(stack.backlog_len(PORT), 1);
    settle(&mut server, &mut stack, t(1300));
    assert_eq!(server.stats().evicted, 1);
    assert!(b.server_closed() && !a.server_closed());
    assert_eq!(server.handler().reasons(), [CloseReason::Evicted]);
    c.send(b"c");
    settle(&mut server, &mut stack, t(1301));
    assert_eq!(c.recv_all(), b"c");
}

#[test]
fn idle_timeout_closes_silent_clients_and_frees_their_slots() {
    let config = Config::new().with_idle_timeout(Some(Duration::from_millis(100)));
    let (mut stack, mut server) = listening::<1>(Mode::Echo, config, MockConfig::default());
    let silent = stack.connect_client(PORT).unwrap();
    let next = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    assert_eq!(server.poll_at(), Some(t(100)));
    settle(&mut server, &mut stack, t(99));
    assert!(!silent.server_closed());
    settle(&mut server, &mut stack, t(100));
    assert!(silent.server_closed());
    assert_eq!(server.handler().reasons(), [CloseReason::IdleTimeout]);
    settle(&mut server, &mut stack, t(101));
    next.send(b"hi");
    settle(&mut server, &mut stack, t(102));
    assert_eq!(next.recv_all(), b"hi");
}

#[test]
fn graceful_close_flushes_pending_output_before_closing() {
    let (mut stack, mut server, client) = closing_conn();
    assert!(!client.server_closed());
    let mut got = client.recv_all();
    settle(&mut server, &mut stack, t(1));
    got.extend(client.recv_all());
    assert_eq!(got, b"0123456789abcdezyxwvutsrqponm");
    assert!(client.server_closed() && !client.was_reset());
    assert_eq!(server.handler().reasons(), [CloseReason::Local]);
    assert_eq!(server.stats().linger_expired, 0);
}

#[test]
fn linger_timeout_closes_a_connection_whose_output_never_drains() {
    let (mut stack, mut server, client) = closing_conn();
    settle(&mut server, &mut stack, t(499));
    assert!(!client.server_closed());
    settle(&mut server, &mut stack, t(500));
    assert!(client.server_closed());
    assert_eq!(server.stats().linger_expired, 1);
    assert_eq!(server.active(), 0);
}

#[test]
fn slow_reader_gets_every_byte_through_backpressure() {
    let mock = MockConfig {
        window: 8,
        ..MockConfig::default()
    };
    let (mut stack, mut server) = listening::<1>(Mode::Echo, Config::new(), mock);
    let client = stack.connect_client(PORT).unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    let (mut sent, mut got) = (0, Vec::new());
    let mut now = 0;
    while got.len() < data.len() {
        sent += client.send(&data[sent..]);
        server.poll(&mut stack, t(now));
        // Read at most 3 bytes per round: a slow reader.
        let mut buf = [0u8; 3];
        if let ClientRead::Data(n) = client.recv(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        now += 1;
        assert!(now < 100_000, "transfer stalled at {} bytes", got.len());
    }
    assert_eq!(got, data);
    assert_eq!(server.active(), 1);
}

#[test]
fn frame_larger_than_the_receive_buffer_closes_with_rx_overflow() {
    let (mut stack, mut server, client) = open_conn(Mode::Hold, Config::new());
    client.send(&[b'x'; 100]);
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.handler().reasons(), [CloseReason::RxOverflow]);
    assert_eq!(server.stats().closed.get(CloseReason::RxOverflow), 1);
}

#[test]
fn over_long_line_gets_an_error_and_a_protocol_close() {
    let (mut stack, mut server, client) = open_conn(Mode::Lines, Config::new());
    client.send(b"ok\n0123456789abcdefXYZ\n");
    settle(&mut server, &mut stack, t(1));
    assert_eq!(client.recv_all(), b"okERR line too long\n");
    assert!(client.server_closed());
    assert_eq!(server.handler().reasons(), [CloseReason::Protocol]);
}

#[test]
fn reset_mid_transfer_affects_no_other_connection() {
    let (mut stack, mut server) = listening::<4>(Mode::Echo, Config::new(), MockConfig::default());
    let a = stack.connect_client(PORT).unwrap();
    let b = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    a.send(b"aaaa");
    b.send(b"bbbb");
    a.reset();
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.handler().reasons(), [CloseReason::Reset]);
    assert_eq!(b.recv_all(), b"bbbb");
    b.send(b"more");
    settle(&mut server, &mut stack, t(2));
    assert_eq!(b.recv_all(), b"more");
    assert_eq!(server.active(), 1);
}

#[test]
fn abort_discards_output_and_frees_the_slot_at_once() {
    let (mut stack, mut server, client) = open_conn(Mode::Lines, Config::new());
    client.send(b"ABORT\n");
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.handler().reasons(), [CloseReason::Aborted]);
    assert_eq!(server.active(), 0);
}

#[test]
fn accept_errors_are_counted_and_retried_after_the_backoff() {
    let (mut stack, mut server) = listening::<2>(Mode::Echo, Config::new(), MockConfig::default());
    stack.fail_next_accepts(1);
    let client = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    assert_eq!(server.stats().accept_errors, 1);
    assert_eq!(server.active(), 0);
    assert_eq!(server.poll_at(), Some(t(50)));
    assert_eq!(
        waited_on(&server, &stack),
        0,
        "no accept interest during the backoff"
    );
    settle(&mut server, &mut stack, t(50));
    assert_eq!(server.active(), 1);
    client.send(b"ok");
    settle(&mut server, &mut stack, t(51));
    assert_eq!(client.recv_all(), b"ok");
}

#[test]
fn admit_hook_and_per_ip_cap_refuse_cleanly() {
    let (mut stack, mut server) = listening::<4>(
        Mode::Echo,
        Config::new().with_max_per_ip(Some(2)),
        MockConfig::default(),
    );
    let clients: Vec<MockClient> = (0..3)
        .map(|_| stack.connect_client(PORT).unwrap())
        .collect();
    settle(&mut server, &mut stack, t(0));
    assert_eq!(server.active(), 2);
    assert_eq!(server.stats().refused, 1);
    assert!(clients[2].server_closed());
    server.handler_mut().refuse_all = true;
    let d = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(1));
    assert!(d.server_closed());
    assert_eq!(server.stats().refused, 2);
}

#[test]
fn max_connections_below_pool_size_keeps_sockets_in_reserve() {
    let (mut stack, mut server) = listening::<4>(
        Mode::Echo,
        Config::new().with_max_connections(2),
        MockConfig::default(),
    );
    for _ in 0..3 {
        stack.connect_client(PORT).unwrap();
    }
    settle(&mut server, &mut stack, t(0));
    assert_eq!(server.active(), 2);
    assert_eq!(stack.backlog_len(PORT), 1);
    server.set_max_connections(3);
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.active(), 3);
}

#[test]
fn on_writable_follows_a_short_write_once_output_drains() {
    let mock = MockConfig {
        window: 4,
        ..MockConfig::default()
    };
    let (mut stack, mut server) = listening::<1>(Mode::Echo, Config::new(), mock);
    let client = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    // 64-byte TX buffer plus a 4-byte window: 100 bytes cannot all be echoed at once.
    let mut sent = 0;
    while sent < 100 {
        sent += client.send(&[7u8; 100][sent..]);
        settle(&mut server, &mut stack, t(1));
    }
    let mut got = Vec::new();
    while got.len() < 100 {
        got.extend(client.recv_all());
        settle(&mut server, &mut stack, t(2));
    }
    assert_eq!(got, [7u8; 100]);
    let mut writable = 0;
    server.with_conn(ConnId::new(0), t(3), |_, s| writable = s.writable);
    assert!(writable > 0, "on_writable was never called");
}

#[test]
fn every_connection_ends_in_exactly_one_on_closed_and_stats_add_up() {
    let (mut stack, mut server) = listening::<3>(Mode::Echo, Config::new(), MockConfig::default());
    for round in 0..50u64 {
        let c = stack.connect_client(PORT).unwrap();
        c.send(b"12345678");
        if round % 2 == 0 {
            c.shutdown_write()
        } else {
            c.reset()
        }
        settle(&mut server, &mut stack, t(round));
    }
    let stats = *server.stats();
    assert_eq!(server.handler().closed.len(), 50);
    assert_eq!(stats.accepted, 50);
    assert_eq!(stats.closed.total(), 50);
    assert_eq!(stats.active, 0);
    assert_eq!(stack.sockets_in_use(), 1, "only the listener is left");
    let mut ids: Vec<u32> = server.handler().closed.iter().map(|c| c.id.get()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 50);
}

#[test]
fn shutdown_closes_everything_and_the_port_can_be_reused() {
    let (mut stack, mut server, client) = open_conn(Mode::Echo, Config::new());
    server.shutdown(&mut stack, t(1));
    assert!(client.server_closed());
    assert_eq!(server.handler().reasons(), [CloseReason::Shutdown]);
    assert_eq!(stack.sockets_in_use(), 0);
    server.listen(&mut stack, PORT).unwrap();
    assert!(matches!(
        server.listen(&mut stack, PORT),
        Err(ListenError::AlreadyListening)
    ));
}

#[test]
fn read_budget_limits_bytes_per_poll_and_asks_to_be_polled_again() {
    let config = Config::new().with_read_budget(10);
    let (mut stack, mut server, client) = open_conn(Mode::Sink, config);
    client.send(&[1u8; 30]);
    server.poll(&mut stack, t(1));
    assert_eq!(server.stats().bytes_in, 10);
    assert_eq!(server.poll_at(), Some(t(1)));
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.stats().bytes_in, 30);
}

#[test]
fn default_read_budget_is_one_receive_buffer_per_poll() {
    let (mut stack, mut server, client) = open_conn(Mode::Sink, Config::new());
    client.send(&[1u8; 1000]);
    server.poll(&mut stack, t(1));
    assert_eq!(server.stats().bytes_in, 64);
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.stats().bytes_in, 1000);
}

#[test]
fn read_budget_beyond_the_buffer_reads_again_in_the_same_poll() {
    // 64-byte buffers, a 256-byte budget: four rounds of read, echo, send.
    let config = Config::new().with_read_budget(256);
    let (mut stack, mut server, client) = open_conn(Mode::Echo, config);
    client.send(&[7u8; 1000]);
    server.poll(&mut stack, t(1));
    assert_eq!(server.stats().bytes_in, 256);
    assert_eq!(server.stats().bytes_out, 256);
    assert_eq!(client.recv_all(), [7u8; 256]);
    settle(&mut server, &mut stack, t(1));
    assert_eq!(server.stats().bytes_in, 1000);
    assert_eq!(client.recv_all(), [7u8; 744]);
}

#[test]
fn read_rounds_stop_while_the_handler_holds_input() {
    // The handler consumes nothing: no room is made, so no second round.
    let config = Config::new().with_read_budget(256);
    let (mut stack, mut server, client) = open_conn(Mode::Hold, config);
    client.send(&[1u8; 1000]);
    server.poll(&mut stack, t(1));
    assert_eq!(server.stats().bytes_in, 64);
}

#[test]
fn closed_line_format_is_stable() {
    let (mut stack, mut server, client) = open_conn(Mode::Echo, Config::new());
    client.send(b"abc");
    client.shutdown_write();
    settle(&mut server, &mut stack, t(1));
    let line = std::format!("{}", server.handler().closed[0]);
    assert_eq!(
        line,
        "id=0 peer=10.0.0.2:40000 rx=3 tx=3 reason=peer_closed"
    );
}

#[test]
fn a_server_fits_in_a_const() {
    struct Nop;
    impl Handler for Nop {
        type State = ();
        fn on_open(&mut self, _: &mut Conn<'_>) {}
        fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), d: &[u8]) -> usize {
            d.len()
        }
    }
    const CONFIG: Config = Config::new().with_max_connections(2);
    let server: Server<MockStack, Nop, 2, 32, 32> = const { Server::new(Nop, CONFIG) };
    assert_eq!(server.max_connections(), 2);
    const { assert!(Server::<MockStack, Nop, 2, 32, 32>::SLOT_BYTES >= 64) };
}

/// Streams `left` bytes from `on_open` and `on_writable`, never waiting for input.
struct Streamer {
    left: usize,
}

impl Handler for Streamer {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.on_writable(conn, &mut ());
    }
    fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        data.len()
    }
    fn on_writable(&mut self, conn: &mut Conn<'_>, _: &mut ()) {
        let chunk = [b's'; 256];
        let n = conn.write(&chunk[..self.left.min(256)]);
        self.left -= n;
    }
}

#[test]
fn poll_at_asks_for_a_wake_up_when_on_writable_is_due_with_output_drained() {
    // The short write in on_open arms on_writable; the same poll's flush
    // drains the buffer, so no socket event will ever come: poll_at must
    // say "now", or a server sleeping on interests stalls for good.
    let mut stack = new_stack(MockConfig::default());
    let mut server: Server<MockStack, Streamer, 1, 64, 64> =
        Server::new(Streamer { left: 1000 }, Config::new());
    server.listen(&mut stack, PORT).unwrap();
    let client = stack.connect_client(PORT).unwrap();
    server.poll(&mut stack, t(5));
    assert!(client.pending() < 1000);
    assert_eq!(server.poll_at(), Some(t(5)));
    let mut got = client.recv_all().len();
    for ms in 6..100 {
        if server.poll_at().is_none() {
            break;
        }
        server.poll(&mut stack, t(ms));
        got += client.recv_all().len();
    }
    assert_eq!(got, 1000, "the stream stalled");
}

#[test]
fn listening_again_after_shutdown_does_not_inherit_an_accept_backoff() {
    let (mut stack, mut server) = listening::<2>(Mode::Echo, Config::new(), MockConfig::default());
    stack.fail_next_accepts(1);
    let _c = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(0));
    assert_eq!(server.stats().accept_errors, 1);
    server.shutdown(&mut stack, t(1));
    server.listen(&mut stack, PORT).unwrap();
    let client = stack.connect_client(PORT).unwrap();
    settle(&mut server, &mut stack, t(2));
    assert_eq!(
        server.active(),
        1,
        "accepted at once, not after the old backoff"
    );
    client.send(b"x");
    settle(&mut server, &mut stack, t(3));
    assert_eq!(client.recv_all(), b"x");
}
