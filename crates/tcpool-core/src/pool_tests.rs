//! Unit tests of the pure pool: events in, actions out, no stack at all.

use std::vec::Vec;

use super::*;
use crate::handler::Closed;

/// A handler that echoes, records its callbacks, and admits only while
/// `admitting` is true.
struct Rec {
    admitting: bool,
    abort_on: Option<u8>,
    data: Vec<u8>,
    events: Vec<&'static str>,
    closed: Vec<Closed>,
}

impl Rec {
    fn new() -> Self {
        Rec {
            admitting: true,
            abort_on: None,
            data: Vec::new(),
            events: Vec::new(),
            closed: Vec::new(),
        }
    }

    fn reasons(&self) -> Vec<CloseReason> {
        self.closed.iter().map(|c| c.reason).collect()
    }
}

impl Handler for Rec {
    type State = ();
    fn admit(&mut self, _peer: SocketAddr) -> bool {
        self.admitting
    }
    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        self.events.push("open");
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        self.events.push("data");
        if self.abort_on.is_some_and(|b| data.contains(&b)) {
            conn.abort();
            return data.len();
        }
        self.data.extend_from_slice(data);
        conn.write(data)
    }
    fn on_peer_closed(&mut self, conn: &mut Conn<'_>, _: &mut ()) {
        self.events.push("peer_closed");
        conn.close();
    }
    fn on_closed(&mut self, closed: &Closed, _: ()) {
        self.events.push("closed");
        self.closed.push(*closed);
    }
}

type TestPool = Pool<Rec, 2, 16, 16>;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn peer(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(
        core::net::IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, last)),
        port,
    )
}

fn pool(config: Config) -> TestPool {
    let mut p = Pool::new(Rec::new(), config);
    p.set_listening(true);
    p
}

/// Accepts a client from `from` at `now`, expecting a slot.
fn open(p: &mut TestPool, from: SocketAddr, now: Instant) -> usize {
    p.begin_poll(now);
    assert!(p.should_accept(now), "the pool should accept");
    match p.admit(from, now) {
        Admission::Open {
            slot,
            evicted: None,
        } => slot,
        other => panic!("expected a slot, got {other:?}"),
    }
}

/// Runs slot `i`'s actions with a stack that has `input` to give (then
/// `end` if set), takes every send whole, and returns what was sent and
/// the closing action, if any.
fn serve(
    p: &mut TestPool,
    i: usize,
    now: Instant,
    mut input: &[u8],
    end: bool,
) -> (Vec<u8>, Option<&'static str>) {
    let mut sent = Vec::new();
    let mut closing = None;
    for _ in 0..100 {
        let event = match p.next_action(i, now) {
            Action::Done => return (sent, closing),
            Action::Send(bytes) => {
                sent.extend_from_slice(bytes);
                Event::Sent(bytes.len())
            }
            Action::Receive(buf) => {
                assert!(!buf.is_empty(), "never an empty receive buffer");
                if input.is_empty() {
                    if end {
                        Event::EndOfStream
                    } else {
                        Event::WouldBlock
                    }
                } else {
                    let n = buf.len().min(input.len());
                    buf[..n].copy_from_slice(&input[..n]);
                    input = &input[n..];
                    Event::Received(n)
                }
            }
            Action::Close => {
                closing = Some("close");
                continue;
            }
            Action::Abort => {
                closing = Some("abort");
                continue;
            }
        };
        p.complete(i, now, event);
    }
    panic!("slot {i} never finished its actions");
}

/// Runs slot `i`'s actions with a stack that moves nothing; returns the
/// closing action, if any.
fn stuck(p: &mut TestPool, i: usize, now: Instant) -> Option<&'static str> {
    let mut closing = None;
    for _ in 0..100 {
        match p.next_action(i, now) {
            Action::Done => return closing,
            Action::Send(_) | Action::Receive(_) => p.complete(i, now, Event::WouldBlock),
            Action::Close => closing = Some("close"),
            Action::Abort => closing = Some("abort"),
        }
    }
    panic!("slot {i} never finished its actions");
}

#[test]
fn refused_peer_never_evicts() {
    let config = Config::new().with_when_full(WhenFull::EvictIdlest {
        min_idle: Duration::from_millis(100),
    });
    let mut p = pool(config);
    open(&mut p, peer(2, 1), t(0));
    open(&mut p, peer(3, 1), t(0));
    p.handler_mut().admitting = false;
    let now = t(1_000);
    p.begin_poll(now);
    assert!(p.should_accept(now), "an eviction is possible, so accept");
    assert_eq!(p.admit(peer(4, 1), now), Admission::Refuse { banner: b"" });
    let stats = *p.stats();
    assert_eq!((stats.refused, stats.evicted, stats.active), (1, 0, 2));
    assert!(p.handler().closed.is_empty(), "nobody was closed");
}

#[test]
fn per_ip_cap_is_checked_before_any_eviction() {
    let config = Config::new()
        .with_max_per_ip(Some(1))
        .with_when_full(WhenFull::EvictIdlest {
            min_idle: Duration::from_millis(100),
        });
    let mut p = pool(config);
    open(&mut p, peer(2, 1), t(0));
    open(&mut p, peer(3, 1), t(0));
    let now = t(1_000);
    p.begin_poll(now);
    assert!(p.should_accept(now));
    assert_eq!(
        p.admit(peer(2, 2), now),
        Admission::Refuse { banner: b"" },
        "a second client from 10.0.0.2 is over the cap"
    );
    assert_eq!((p.stats().evicted, p.active()), (0, 2));
    // Another address may take the idlest slot.
    assert_eq!(
        p.admit(peer(5, 1), now),
        Admission::Open {
            slot: 0,
            evicted: Some(0)
        }
    );
    assert_eq!(p.handler().reasons(), [CloseReason::Evicted]);
}

#[test]
fn eviction_takes_the_idlest_only_after_min_idle() {
    let config = Config::new().with_when_full(WhenFull::EvictIdlest {
        min_idle: Duration::from_millis(100),
    });
    let mut p = pool(config);
    let a = open(&mut p, peer(2, 1), t(0));
    let b = open(&mut p, peer(3, 1), t(0));
    serve(&mut p, a, t(50), b"x", false);
    serve(&mut p, b, t(60), b"y", false);
    p.begin_poll(t(100));
    assert!(!p.should_accept(t(100)), "nobody idle 100 ms yet");
    assert_eq!(p.poll_at(), Some(t(150)), "wake when one can be evicted");
    p.begin_poll(t(155));
    assert_eq!(
        p.poll_at(),
        None,
        "eviction possible: wait on the listener, do not spin"
    );
    assert!(p.should_accept(t(155)));
    assert_eq!(
        p.admit(peer(4, 1), t(155)),
        Admission::Open {
            slot: a,
            evicted: Some(a)
        }
    );
}

#[test]
fn reject_refuses_with_the_banner_when_full() {
    let config = Config::new()
        .with_max_connections(1)
        .with_when_full(WhenFull::Reject)
        .with_reject_banner(b"busy\n");
    let mut p = pool(config);
    open(&mut p, peer(2, 1), t(0));
    assert!(p.should_accept(t(1)));
    assert_eq!(
        p.admit(peer(3, 1), t(1)),
        Admission::Refuse { banner: b"busy\n" }
    );
    assert_eq!((p.stats().refused, p.active()), (1, 1));
}

#[test]
fn defer_stops_accepting_and_counts_once() {
    let mut p = pool(Config::new().with_max_connections(1));
    open(&mut p, peer(2, 1), t(0));
    for ms in 1..4 {
        p.begin_poll(t(ms));
        assert!(!p.should_accept(t(ms)));
        assert!(
            !p.wants_listener(),
            "a full pool does not wait on its listener"
        );
    }
    assert_eq!(p.stats().deferred, 1);
}

#[test]
fn data_then_end_of_stream_runs_callbacks_in_order_and_closes() {
    let mut p = pool(Config::new());
    let i = open(&mut p, peer(2, 1), t(0));
    let (sent, closing) = serve(&mut p, i, t(1), b"hello", true);
    assert_eq!(sent, b"hello");
    assert_eq!(closing, Some("close"));
    assert_eq!(
        p.handler().events,
        ["open", "data", "peer_closed", "closed"]
    );
    assert_eq!(p.handler().reasons(), [CloseReason::PeerClosed]);
    let closed = p.handler().closed[0];
    assert_eq!((closed.bytes_in, closed.bytes_out), (5, 5));
    assert_eq!(p.slot_state(i), SlotState::Free);
    assert_eq!(p.stats().active, 0);
}

#[test]
fn a_stack_error_closes_with_its_kind() {
    let mut p = pool(Config::new());
    let i = open(&mut p, peer(2, 1), t(0));
    assert!(matches!(p.next_action(i, t(1)), Action::Receive(_)));
    p.complete(i, t(1), Event::Error(TcpErrorKind::PipeClosed));
    assert_eq!(p.next_action(i, t(1)), Action::Close);
    assert_eq!(p.next_action(i, t(1)), Action::Done);
    let closed = p.handler().closed[0];
    assert_eq!(closed.reason, CloseReason::Reset);
    assert_eq!(closed.error, Some(TcpErrorKind::PipeClosed));
}

#[test]
fn abort_asks_for_a_reset_and_discards_output() {
    let mut p = pool(Config::new());
    p.handler_mut().abort_on = Some(b'!');
    let i = open(&mut p, peer(2, 1), t(0));
    let (sent, closing) = serve(&mut p, i, t(1), b"go!", false);
    assert!(sent.is_empty());
    assert_eq!(closing, Some("abort"));
    assert_eq!(p.handler().reasons(), [CloseReason::Aborted]);
}

#[test]
fn linger_bounds_a_close_whose_output_never_drains() {
    let mut p = pool(Config::new().with_linger(Duration::from_millis(500)));
    let i = open(&mut p, peer(2, 1), t(0));
    // Input arrives, the echo cannot be sent, then the peer finishes.
    assert!(matches!(p.next_action(i, t(1)), Action::Receive(_)));
    if let Action::Receive(buf) = p.next_action(i, t(1)) {
        buf[..2].copy_from_slice(b"ab");
    }
    p.complete(i, t(1), Event::Received(2));
    assert!(matches!(p.next_action(i, t(1)), Action::Receive(_)));
    p.complete(i, t(1), Event::EndOfStream);
    assert_eq!(p.next_action(i, t(1)), Action::Send(b"ab"));
    p.complete(i, t(1), Event::WouldBlock);
    assert_eq!(p.next_action(i, t(1)), Action::Done);
    assert!(matches!(p.slot_state(i), SlotState::Closing { .. }));
    assert_eq!(p.poll_at(), Some(t(501)), "the linger deadline");
    // The deadline passes with the output still stuck.
    assert_eq!(p.next_action(i, t(501)), Action::Send(b"ab"));
    p.complete(i, t(501), Event::WouldBlock);
    assert_eq!(p.next_action(i, t(501)), Action::Close);
    assert_eq!(p.next_action(i, t(501)), Action::Done);
    assert_eq!(p.stats().linger_expired, 1);
    assert_eq!(p.handler().reasons(), [CloseReason::PeerClosed]);
}

#[test]
fn idle_timeout_is_a_deadline_and_closes() {
    let mut p = pool(Config::new().with_idle_timeout(Some(Duration::from_millis(300))));
    let i = open(&mut p, peer(2, 1), t(0));
    serve(&mut p, i, t(100), b"x", false);
    p.begin_poll(t(100));
    assert_eq!(p.poll_at(), Some(t(400)));
    let (_, closing) = serve(&mut p, i, t(399), b"", false);
    assert_eq!(closing, None);
    let (_, closing) = serve(&mut p, i, t(400), b"", false);
    assert_eq!(closing, Some("close"));
    assert_eq!(p.handler().reasons(), [CloseReason::IdleTimeout]);
}

#[test]
fn accept_failure_backs_off() {
    let mut p = pool(Config::new().with_accept_backoff(Duration::from_millis(50)));
    p.begin_poll(t(10));
    assert!(p.should_accept(t(10)));
    p.accept_failed(t(10));
    assert!(!p.should_accept(t(59)));
    assert_eq!(p.poll_at(), Some(t(60)));
    assert!(p.should_accept(t(60)));
    assert_eq!(p.stats().accept_errors, 1);
}

#[test]
fn receive_buffers_respect_the_read_budget() {
    let mut p = pool(Config::new().with_read_budget(4));
    let i = open(&mut p, peer(2, 1), t(0));
    p.begin_poll(t(1));
    match p.next_action(i, t(1)) {
        Action::Receive(buf) => assert_eq!(buf.len(), 4),
        other => panic!("expected a receive, got {other:?}"),
    }
    p.complete(i, t(1), Event::Received(4));
    // Budget spent: no second receive, and a wake-up at once to go on.
    assert_eq!(p.next_action(i, t(1)), Action::Send(b"\0\0\0\0"));
    p.complete(i, t(1), Event::Sent(4));
    assert_eq!(p.next_action(i, t(1)), Action::Done);
    assert_eq!(p.poll_at(), Some(t(1)), "more may be waiting");
}

#[test]
fn shutdown_flushes_what_it_can_then_closes() {
    let mut p = pool(Config::new());
    let i = open(&mut p, peer(2, 1), t(0));
    assert!(matches!(p.next_action(i, t(1)), Action::Receive(_)));
    if let Action::Receive(buf) = p.next_action(i, t(1)) {
        buf[..3].copy_from_slice(b"bye");
    }
    p.complete(i, t(1), Event::Received(3));
    assert!(matches!(p.next_action(i, t(1)), Action::Receive(_)));
    p.complete(i, t(1), Event::WouldBlock);
    assert_eq!(p.next_action(i, t(1)), Action::Send(b"bye"));
    p.complete(i, t(1), Event::WouldBlock);
    assert_eq!(p.next_action(i, t(1)), Action::Done);
    p.begin_shutdown();
    assert_eq!(p.next_action(i, t(2)), Action::Send(b"bye"));
    p.complete(i, t(2), Event::Sent(3));
    assert_eq!(p.next_action(i, t(2)), Action::Close);
    assert_eq!(p.next_action(i, t(2)), Action::Done);
    assert_eq!(p.handler().reasons(), [CloseReason::Shutdown]);
}

#[test]
fn a_default_config_pool_uses_the_defaults_until_set() {
    let mut p: TestPool = Pool::with_default_config(Rec::new());
    assert_eq!(*p.config(), Config::new());
    p.set_config(Config::new().with_max_connections(1));
    assert_eq!(p.max_connections(), 1);
}

#[test]
fn callbacks_can_read_the_stats() {
    struct Peek(u32);
    impl Handler for Peek {
        type State = ();
        fn on_open(&mut self, conn: &mut Conn<'_>) {
            self.0 = conn.stats().accepted;
        }
        fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), d: &[u8]) -> usize {
            d.len()
        }
    }
    let mut p: Pool<Peek, 2, 8, 8> = Pool::new(Peek(0), Config::new());
    p.set_listening(true);
    p.begin_poll(t(0));
    p.admit(peer(2, 1), t(0));
    p.admit(peer(3, 1), t(0));
    assert_eq!(p.handler().0, 2, "on_open saw its own accept counted");
}

/// A handler whose first byte must come within 100 ms of the accept, and
/// which never reads (to stall output) when `sink` is off.
struct Deadline;

impl Handler for Deadline {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_deadline(conn.now() + Duration::from_millis(100));
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        if data.contains(&b'\n') {
            conn.clear_deadline();
        }
        conn.write(data)
    }
}

#[test]
fn a_passed_request_deadline_closes_with_request_timeout() {
    let mut p: Pool<Deadline, 2, 16, 16> = Pool::new(Deadline, Config::new());
    p.set_listening(true);
    p.begin_poll(t(0));
    assert!(matches!(p.admit(peer(2, 1), t(0)), Admission::Open { .. }));
    assert!(matches!(p.admit(peer(3, 1), t(0)), Admission::Open { .. }));
    assert_eq!(
        p.poll_at(),
        Some(t(0)),
        "new connections get a turn at once"
    );
    for i in 0..2 {
        assert!(matches!(p.next_action(i, t(0)), Action::Receive(_)));
        p.complete(i, t(0), Event::WouldBlock);
        assert_eq!(p.next_action(i, t(0)), Action::Done);
    }
    assert_eq!(p.poll_at(), Some(t(100)), "the deadline is a wake-up");
    // Slot 1 completes its request in time; slot 0 trickles.
    for (i, input) in [(0, &b"P"[..]), (1, &b"PING\n"[..])] {
        let mut left = input;
        loop {
            match p.next_action(i, t(50)) {
                Action::Done => break,
                Action::Receive(buf) => {
                    let n = left.len().min(buf.len());
                    buf[..n].copy_from_slice(&left[..n]);
                    left = &left[n..];
                    let ev = if n == 0 {
                        Event::WouldBlock
                    } else {
                        Event::Received(n)
                    };
                    p.complete(i, t(50), ev);
                }
                Action::Send(b) => {
                    let n = b.len();
                    p.complete(i, t(50), Event::Sent(n));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    p.begin_poll(t(100));
    assert_eq!(p.poll_at(), Some(t(100)));
    assert!(matches!(p.next_action(0, t(100)), Action::Receive(_)));
    p.complete(0, t(100), Event::WouldBlock);
    assert_eq!(p.next_action(0, t(100)), Action::Close);
    assert_eq!(p.next_action(0, t(100)), Action::Done);
    assert_eq!(p.slot_state(1), SlotState::Open, "the prompt client stays");
    assert_eq!(p.stats().closed.get(CloseReason::RequestTimeout), 1);
}

#[test]
fn output_the_peer_never_takes_is_reset_after_write_stall() {
    let config = Config::new().with_write_stall(Some(Duration::from_millis(200)));
    let mut p = pool(config);
    let i = open(&mut p, peer(2, 1), t(0));
    // Input to echo, but the peer takes nothing.
    assert!(matches!(p.next_action(i, t(10)), Action::Receive(_)));
    if let Action::Receive(buf) = p.next_action(i, t(10)) {
        buf[..4].copy_from_slice(b"data");
    }
    p.complete(i, t(10), Event::Received(4));
    assert!(matches!(p.next_action(i, t(10)), Action::Receive(_)));
    p.complete(i, t(10), Event::WouldBlock);
    assert_eq!(p.next_action(i, t(10)), Action::Send(b"data"));
    p.complete(i, t(10), Event::WouldBlock);
    assert_eq!(p.next_action(i, t(10)), Action::Done);
    p.begin_poll(t(10));
    assert_eq!(p.poll_at(), Some(t(210)), "the stall deadline is a wake-up");
    // Progress restarts the clock.
    assert_eq!(p.next_action(i, t(150)), Action::Send(b"data"));
    p.complete(i, t(150), Event::Sent(1));
    assert_eq!(p.next_action(i, t(150)), Action::Send(b"ata"));
    p.complete(i, t(150), Event::WouldBlock);
    assert!(matches!(p.next_action(i, t(150)), Action::Receive(_)));
    p.complete(i, t(150), Event::WouldBlock);
    assert_eq!(p.next_action(i, t(150)), Action::Done);
    assert_eq!(stuck(&mut p, i, t(349)), None, "stalled 199 ms only");
    assert_eq!(stuck(&mut p, i, t(350)), Some("abort"));
    assert_eq!(p.handler().reasons(), [CloseReason::WriteStall]);
}

/// Holds every input (a frame that never completes) and keeps the
/// connection open after the peer's end of stream.
#[derive(Default)]
struct Holder {
    events: Vec<&'static str>,
}

impl Handler for Holder {
    type State = ();
    fn on_open(&mut self, _: &mut Conn<'_>) {}
    fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), _: &[u8]) -> usize {
        self.events.push("data");
        0
    }
    fn on_peer_closed(&mut self, _: &mut Conn<'_>, _: &mut ()) {
        self.events.push("peer_closed");
    }
}

#[test]
fn input_left_at_the_peers_end_is_never_offered_again_after_on_peer_closed() {
    let mut p: Pool<Holder, 1, 16, 16> = Pool::new(Holder::default(), Config::new());
    p.set_listening(true);
    p.begin_poll(t(0));
    assert!(matches!(p.admit(peer(2, 1), t(0)), Admission::Open { .. }));
    if let Action::Receive(buf) = p.next_action(0, t(1)) {
        buf[..3].copy_from_slice(b"par");
    }
    p.complete(0, t(1), Event::Received(3));
    assert!(matches!(p.next_action(0, t(1)), Action::Receive(_)));
    p.complete(0, t(1), Event::EndOfStream);
    assert_eq!(p.next_action(0, t(1)), Action::Done);
    assert_eq!(p.handler().events, ["data", "peer_closed"]);
    // Output written later drains: the held input is not offered again.
    let id = ConnId::new(0);
    p.with_conn(id, t(2), |conn, _| assert_eq!(conn.write(b"late"), 4));
    assert_eq!(p.next_action(0, t(2)), Action::Send(b"late"));
    p.complete(0, t(2), Event::Sent(4));
    assert_eq!(p.next_action(0, t(2)), Action::Done);
    assert_eq!(
        p.handler().events,
        ["data", "peer_closed"],
        "no on_data after on_peer_closed"
    );
}
