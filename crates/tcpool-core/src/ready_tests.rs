//! Tests of what a poll costs on a stack that reports readiness: only what
//! is ready or due is serviced, whatever the pool size.

use std::boxed::Box;
use std::vec::Vec;

use super::*;
use crate::mock::{MockClient, MockConfig, MockStack};
use crate::{CloseReason, Closed, Conn};
use core::time::Duration;

const PORT: u16 = 7000;
const N: usize = 256;

/// Echoes; with `deadlines`, sets a request deadline after each accept
/// (the n-th connection gets n × 10 ms); records how each ended.
#[derive(Default)]
struct Timed {
    deadlines: bool,
    opened: u64,
    closed: Vec<(u32, CloseReason)>,
}

impl Handler for Timed {
    type State = ();
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.opened += 1;
        if self.deadlines {
            conn.set_deadline(conn.now() + Duration::from_millis(10 * self.opened));
        }
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        conn.clear_deadline();
        conn.write(data)
    }
    fn on_closed(&mut self, closed: &Closed, _: ()) {
        self.closed.push((closed.id.get(), closed.reason));
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

type Big = Server<MockStack, Timed, N, 64, 64>;

/// A reporting stack and a server holding `n` connections.
fn full_of(n: usize) -> (MockStack, Box<Big>, Vec<MockClient>) {
    let mut stack = MockStack::with_config(MockConfig {
        max_sockets: N + 2,
        backlog: N,
        ..MockConfig::default()
    });
    stack.set_reports_ready(true);
    let timed = Timed {
        deadlines: true,
        ..Timed::default()
    };
    let mut server: Box<Big> = Box::new(Server::new(timed, Config::new().with_max_connections(N)));
    server.listen(&mut stack, PORT).unwrap();
    let clients: Vec<MockClient> = (0..n)
        .map(|_| stack.connect_client(PORT).unwrap())
        .collect();
    while server.poll(&mut stack, t(0)) {}
    assert_eq!(server.active(), n);
    (stack, server, clients)
}

#[test]
fn a_poll_receives_only_on_the_sockets_reported_ready() {
    let (mut stack, mut server, clients) = full_of(200);
    let before = stack.receive_calls();
    // Nothing ready: a poll asks the stack nothing.
    assert!(!server.poll(&mut stack, t(1)));
    assert_eq!(stack.receive_calls(), before);
    // One client of 200 talks: one socket is read (until it would block).
    clients[117].send(b"ping");
    assert!(server.poll(&mut stack, t(2)));
    assert_eq!(clients[117].recv_all(), b"ping");
    let reads = stack.receive_calls() - before;
    assert!(
        (1..=2).contains(&reads),
        "{reads} receive calls for one ready socket among 200"
    );
    // The same on a stack that does not report readiness: every socket.
    stack.set_reports_ready(false);
    let before = stack.receive_calls();
    server.poll(&mut stack, t(3));
    assert!(stack.receive_calls() - before >= 200);
}

#[test]
fn deadlines_fire_in_order_and_poll_at_is_the_nearest() {
    let (mut stack, mut server, _clients) = full_of(50);
    // Connection k (1-based) has its deadline at 10 k ms.
    assert_eq!(server.poll_at(), Some(t(10)));
    for k in 1..=50u64 {
        server.poll(&mut stack, t(10 * k));
        assert_eq!(server.active(), 50 - k as usize, "at {} ms", 10 * k);
        let closed = &server.handler().closed;
        assert_eq!(
            closed.last().map(|c| c.1),
            Some(CloseReason::RequestTimeout)
        );
        assert_eq!(closed.len(), k as usize);
        let next = if k < 50 { Some(t(10 * (k + 1))) } else { None };
        // Closing takes a poll or two (the slot flushes, then frees).
        while server.poll(&mut stack, t(10 * k)) {}
        assert_eq!(server.poll_at(), next, "after {} ms", 10 * k);
    }
    // Closed in the order of their deadlines: the order they opened.
    let ids: Vec<u32> = server.handler().closed.iter().map(|c| c.0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
}

#[test]
fn idle_timeouts_come_from_the_least_recently_active() {
    let mut stack = MockStack::new();
    stack.set_reports_ready(true);
    let config = Config::new()
        .with_max_connections(3)
        .with_idle_timeout(Some(Duration::from_millis(1000)));
    let mut server: Server<MockStack, Timed, 8, 64, 64> = Server::new(Timed::default(), config);
    server.listen(&mut stack, PORT).unwrap();
    let clients: Vec<MockClient> = (0..3)
        .map(|_| stack.connect_client(PORT).unwrap())
        .collect();
    while server.poll(&mut stack, t(0)) {}
    // Activity at 100, 200, 300 ms on clients 2, 0, 1.
    for (at, c) in [(100, 2), (200, 0), (300, 1)] {
        clients[c].send(b"x");
        while server.poll(&mut stack, t(at)) {}
        assert_eq!(clients[c].recv_all(), b"x");
    }
    // The first to go idle is client 2 (last active at 100 ms).
    assert_eq!(server.poll_at(), Some(t(1100)));
    while server.poll(&mut stack, t(1100)) {}
    assert!(clients[2].server_closed());
    assert!(!clients[0].server_closed() && !clients[1].server_closed());
    assert_eq!(server.poll_at(), Some(t(1200)));
}
