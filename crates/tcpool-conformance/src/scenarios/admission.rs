//! What happens to new clients when the pool is full (seed 000).

use core::time::Duration;
use std::vec::Vec;

use tcpool_core::{CloseReason, Config, WhenFull};

use super::assert_all_closed;
use crate::drive::{Bound, Peer, note, start, wait_for};
use crate::handlers::{Mode, Recorder};
use crate::harness::{ClientError, Harness};
use crate::kind::{Kind, RecDrive};

/// Echoes `msg` on `peer` and waits for it.
fn round_trip<H: Harness, D: RecDrive<H::Stack>>(
    h: &mut H,
    server: &mut D,
    peer: &mut Peer<H>,
    msg: &[u8],
) {
    let want = peer.received + msg.len() as u64;
    let from = peer.got.len();
    peer.send_all(h, server, msg);
    peer.wait_bytes(h, server, want);
    assert_eq!(
        &peer.got[from..],
        msg,
        "[{}] {}: echo of {msg:?}",
        H::BACKEND,
        peer.name
    );
}

/// Half-closes every peer and waits for the server to close each.
fn leave_all<H: Harness, D: RecDrive<H::Stack>>(h: &mut H, server: &mut D, peers: &mut [Peer<H>]) {
    for p in peers.iter_mut() {
        if p.client.is_some() && !p.ended() {
            p.shutdown_write(h);
        }
    }
    for p in peers.iter_mut() {
        if p.client.is_some() {
            p.wait_end(h, server);
            p.close(h);
        }
    }
}

/// Six clients, four slots (the default `Defer`): the first four are served
/// round after round, the other two get nothing and wait, and none of the
/// four is closed to make room. When one of the four leaves, the fifth is
/// served, with the bytes it sent while waiting.
pub fn more_clients_than_slots_defer_without_eviction<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let mut server = start::<H, K, 4, 256, 256>(h, Recorder::new(Mode::Echo), Config::new());
    let mut served: Vec<Peer<H>> = Vec::new();
    for i in 0..4 {
        let mut p = Peer::connect(h, &mut server, format!("client {i}"));
        round_trip(h, &mut server, &mut p, b"hi");
        served.push(p);
    }
    assert_eq!(server.active(), 4, "[{b}] four served");
    let mut waiting: Vec<Peer<H>> = (4..6)
        .map(|i| Peer::connect(h, &mut server, format!("client {i}")))
        .collect();
    for round in 0..3u8 {
        let msg = [b'a' + round];
        for p in waiting.iter_mut() {
            p.send_all(h, &mut server, &msg);
        }
        for p in served.iter_mut() {
            round_trip(h, &mut server, p, &msg);
        }
        h.advance(Duration::from_millis(30), &mut server);
        for p in waiting.iter_mut() {
            p.pump(h);
            assert_eq!(
                p.received, 0,
                "[{b}] {} is waiting and must get nothing",
                p.name
            );
            assert!(!p.ended(), "[{b}] {} was closed while waiting", p.name);
        }
        for p in served.iter_mut() {
            p.pump(h);
            assert!(!p.ended(), "[{b}] {} was dropped to make room", p.name);
        }
        let stats = server.stats();
        assert_eq!(server.active(), 4, "[{b}] round {round}: active");
        assert_eq!(
            stats.accepted, 4,
            "[{b}] round {round}: nobody else accepted"
        );
        assert_eq!(
            stats.closed.total(),
            0,
            "[{b}] round {round}: nobody closed"
        );
        assert_eq!(stats.evicted, 0, "[{b}] round {round}: nobody evicted");
    }
    assert!(
        server.stats().deferred >= 1,
        "[{b}] the full pool was counted as deferring"
    );

    // One of the four leaves: the first waiting client takes its slot and
    // gets the echo of everything it sent while it waited.
    served[1].shutdown_write(h);
    served[1].wait_end(h, &mut server);
    assert!(served[1].eof, "[{b}] the leaving client sees a FIN");
    let mut gone = served.remove(1);
    gone.close(h);
    waiting[0].wait_bytes(h, &mut server, 3);
    assert_eq!(
        waiting[0].got, b"abc",
        "[{b}] the fifth client's queued bytes"
    );
    h.advance(Duration::from_millis(30), &mut server);
    waiting[1].pump(h);
    assert_eq!(waiting[1].received, 0, "[{b}] the sixth client still waits");
    assert_eq!(server.active(), 4);
    for p in served.iter_mut() {
        round_trip(h, &mut server, p, b"z");
    }
    let mut all: Vec<Peer<H>> = served.into_iter().chain(waiting).collect();
    leave_all(h, &mut server, &mut all);
    // The sixth client was served once slots freed up.
    assert_eq!(all[4].got, b"abc", "[{b}] the sixth client's queued bytes");
    assert_all_closed(
        h,
        &mut server,
        "more_clients_than_slots_defer_without_eviction",
    );
    for c in server.handler().conns() {
        assert_eq!(c.closed.expect("closed").reason, CloseReason::PeerClosed);
    }
    assert_eq!(server.stats().evicted, 0);
}

/// Under `WhenFull::Reject`, a client arriving at a full pool gets the
/// banner and a clean close (a FIN, not a reset); the served clients are
/// untouched, and the refused one never reaches the handler.
pub fn reject_closes_newcomers_cleanly<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let config = Config::new()
        .with_when_full(WhenFull::Reject)
        .with_reject_banner(b"busy\n");
    let mut server = start::<H, K, 2, 256, 256>(h, Recorder::new(Mode::Echo), config);
    let mut a = Peer::connect(h, &mut server, "client a");
    round_trip(h, &mut server, &mut a, b"a");
    let mut c = Peer::connect(h, &mut server, "client b");
    round_trip(h, &mut server, &mut c, b"b");
    let mut newcomer = Peer::connect(h, &mut server, "newcomer");
    newcomer.wait_end(h, &mut server);
    assert_eq!(newcomer.got, b"busy\n", "[{b}] the banner");
    assert!(
        newcomer.eof && !newcomer.reset,
        "[{b}] refused with a FIN, not a reset"
    );
    newcomer.close(h);
    assert_eq!(server.stats().refused, 1, "[{b}] refused count");
    assert_eq!(
        server.handler().conns().len(),
        2,
        "[{b}] the refused client never reached on_open"
    );
    round_trip(h, &mut server, &mut a, b"still here");
    round_trip(h, &mut server, &mut c, b"me too");

    // A slot frees: the next client is served.
    a.shutdown_write(h);
    a.wait_end(h, &mut server);
    a.close(h);
    wait_for(h, &mut server, "a's slot to free", |_, s| s.active() == 1);
    let mut d = Peer::connect(h, &mut server, "client d");
    round_trip(h, &mut server, &mut d, b"d");
    assert_eq!(server.stats().refused, 1);
    let mut rest = [c, d];
    leave_all(h, &mut server, &mut rest);
    assert_all_closed(h, &mut server, "reject_closes_newcomers_cleanly");
    assert!(
        server
            .handler()
            .reasons()
            .iter()
            .all(|r| *r == CloseReason::PeerClosed)
    );
}

/// Under `WhenFull::EvictIdlest { min_idle }`, a newcomer waits while every
/// served client has been active within `min_idle`; once one has been
/// silent that long, the one idle longest is closed (reason `evicted`) and
/// the newcomer takes its slot. Checked with the server's own timestamps.
pub fn evict_idlest_picks_longest_idle_and_respects_min_idle<H: Harness, K: Kind<H::Stack>>(
    h: &mut H,
) {
    let b = H::BACKEND;
    let min_idle = Duration::from_millis(1_000);
    let config = Config::new().with_when_full(WhenFull::EvictIdlest { min_idle });
    let mut server = start::<H, K, 2, 256, 256>(h, Recorder::new(Mode::Echo), config);
    let mut a = Peer::connect(h, &mut server, "client a");
    round_trip(h, &mut server, &mut a, b"a");
    let a_addr = a.addr(h);
    let mut c = Peer::connect(h, &mut server, "client b");
    round_trip(h, &mut server, &mut c, b"b");
    let c_addr = c.addr(h);
    let mut newcomer = Peer::connect(h, &mut server, "newcomer");
    newcomer.send_all(h, &mut server, b"n");

    // Both served clients stay active: nobody may be evicted.
    for _ in 0..8 {
        round_trip(h, &mut server, &mut a, b".");
        round_trip(h, &mut server, &mut c, b".");
        h.advance(Duration::from_millis(100), &mut server);
        assert_eq!(
            server.stats().evicted,
            0,
            "[{b}] evicted a client active within min_idle"
        );
        newcomer.pump(h);
        assert_eq!(
            newcomer.received, 0,
            "[{b}] the newcomer was served too early"
        );
    }

    // Now only b talks: a becomes the idlest and is evicted after min_idle.
    let mut bound = Bound::new(h, "the idle client to be evicted");
    while server.stats().evicted == 0 {
        round_trip(h, &mut server, &mut c, b".");
        h.advance(Duration::from_millis(50), &mut server);
        bound.tick(h, &server);
    }
    assert_eq!(server.stats().evicted, 1, "[{b}] exactly one eviction");
    let rec = server.handler();
    let a_rec = rec.by_peer(a_addr).expect("a recorded");
    let closed = a_rec
        .closed
        .expect("the idlest client (a) is the one evicted");
    assert_eq!(closed.reason, CloseReason::Evicted, "[{b}] reason");
    let idle = closed
        .closed_at
        .saturating_duration_since(a_rec.last_data_at);
    assert!(
        idle >= min_idle,
        "[{b}] a was evicted after {idle:?} idle, less than min_idle {min_idle:?}"
    );
    assert!(
        rec.by_peer(c_addr).expect("b recorded").closed.is_none(),
        "[{b}] b kept"
    );
    a.wait_end(h, &mut server);
    a.close(h);
    newcomer.wait_bytes(h, &mut server, 1);
    assert_eq!(
        newcomer.got, b"n",
        "[{b}] the newcomer's queued byte is echoed"
    );
    let newcomer_rec = server.handler().conns().last().expect("newcomer recorded");
    assert!(
        newcomer_rec.opened_at >= closed.closed_at,
        "[{b}] the newcomer was admitted before the eviction"
    );
    round_trip(h, &mut server, &mut c, b"still here");
    let mut rest = [c, newcomer];
    leave_all(h, &mut server, &mut rest);
    assert_all_closed(
        h,
        &mut server,
        "evict_idlest_picks_longest_idle_and_respects_min_idle",
    );
}

/// A full pool under `EvictIdlest`, both clients idle long enough to be
/// evicted, and a handler that admits nobody new: the newcomer is refused,
/// and neither idle client loses its slot (admission is decided before
/// eviction, so a refused peer never costs anyone a slot).
pub fn refused_peer_never_evicts<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let min_idle = Duration::from_millis(100);
    let config = Config::new().with_when_full(WhenFull::EvictIdlest { min_idle });
    let mut server = start::<H, K, 2, 256, 256>(h, Recorder::new(Mode::Echo), config);
    let mut idle: Vec<Peer<H>> = Vec::new();
    for i in 0..2 {
        let mut p = Peer::connect(h, &mut server, format!("idle client {i}"));
        round_trip(h, &mut server, &mut p, b"hi");
        idle.push(p);
    }
    h.advance(3 * min_idle, &mut server);
    server.handler_mut().set_refusing(true);

    let mut newcomer = Peer::connect(h, &mut server, "refused newcomer");
    newcomer.send_all(h, &mut server, b"let me in");
    newcomer.wait_end(h, &mut server);
    let stats = *server.stats();
    assert!(
        stats.refused >= 1,
        "[{b}] the newcomer was refused: {stats:?}"
    );
    assert_eq!(stats.evicted, 0, "[{b}] a refused peer evicted someone");
    assert_eq!(
        server.active(),
        2,
        "[{b}] both idle clients keep their slots"
    );
    assert_eq!(
        newcomer.received, 0,
        "[{b}] the refused newcomer got no echo"
    );
    newcomer.close(h);
    for p in idle.iter_mut() {
        assert!(!p.ended(), "[{b}] {} was closed", p.name);
        round_trip(h, &mut server, p, b"still here");
    }
    assert!(
        server.handler().closed().is_empty(),
        "[{b}] nobody was closed: {:?}",
        server.handler().reasons()
    );
    server.handler_mut().set_refusing(false);
    leave_all(h, &mut server, &mut idle);
    assert_all_closed(h, &mut server, "refused_peer_never_evicts");
}

/// More clients connect at once than the stack's backlog holds (before the
/// server runs): the stack queues what it can and refuses or delays the
/// rest; clients retry. Every client is eventually served exactly its own
/// echo, no client that was served is reset, and the books balance.
pub fn accept_burst_larger_than_backlog<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    const SLOTS: usize = 4;
    let burst = 2 * (h.backlog() + SLOTS) + 4;
    let mut server = start::<H, K, SLOTS, 256, 256>(h, Recorder::new(Mode::Echo), Config::new());
    struct Burst<H: Harness> {
        peer: Option<Peer<H>>,
        message: Vec<u8>,
        sent: usize,
        shut: bool,
        done: bool,
        retry_at: u64,
    }
    let mut clients: Vec<Burst<H>> = (0..burst)
        .map(|i| Burst {
            peer: None,
            message: format!("burst client {i:04}\n").into_bytes(),
            sent: 0,
            shut: false,
            done: false,
            retry_at: 0,
        })
        .collect();
    let mut refused = 0u64;
    let mut resets_before_service = 0u64;
    // The burst: every connect before the server runs once.
    for (i, cl) in clients.iter_mut().enumerate() {
        match h.connect() {
            Ok(c) => cl.peer = Some(Peer::from_client(c, format!("burst client {i}"))),
            Err(ClientError::Refused(_)) => refused += 1,
            Err(e) => panic!("[{b}] connect: {e}"),
        }
    }
    let mut steps = 0u64;
    let started = h.now();
    let mut bound = Bound::new(h, format!("all {burst} burst clients to be served"));
    while !clients.iter().all(|c| c.done) {
        for (i, cl) in clients.iter_mut().enumerate() {
            if cl.done {
                continue;
            }
            let Some(p) = cl.peer.as_mut() else {
                if steps >= cl.retry_at {
                    match h.connect() {
                        Ok(c) => {
                            cl.peer = Some(Peer::from_client(c, format!("burst client {i}")));
                            cl.sent = 0;
                            cl.shut = false;
                            bound.progress();
                        }
                        Err(ClientError::Refused(_)) => {
                            refused += 1;
                            cl.retry_at = steps + 10;
                        }
                        Err(e) => panic!("[{b}] connect: {e}"),
                    }
                }
                continue;
            };
            if cl.sent < cl.message.len() {
                match h.send(p.client.as_mut().expect("open"), &cl.message[cl.sent..]) {
                    Ok(n) => cl.sent += n,
                    Err(_) => p.reset = true,
                }
            }
            if p.pump(h) {
                bound.progress();
            }
            if p.reset {
                assert!(
                    p.got.is_empty(),
                    "[{b}] {} was reset after being served ({} bytes)",
                    p.name,
                    p.got.len()
                );
                // Never served: the stack gave up on the attempt; try again.
                resets_before_service += 1;
                let mut dead = cl.peer.take().expect("peer");
                dead.close(h);
                cl.retry_at = steps + 10;
                continue;
            }
            if p.got.len() >= cl.message.len() && !cl.shut {
                p.shutdown_write(h);
                cl.shut = true;
            }
            if p.eof {
                assert_eq!(p.got, cl.message, "[{b}] {}: echo", p.name);
                p.close(h);
                cl.done = true;
                bound.progress();
            }
        }
        h.step(&mut server);
        steps += 1;
        bound.tick(h, &server);
    }
    note::<H>(
        "accept_burst_larger_than_backlog",
        &format!(
            "{burst} clients at once against a backlog of {}: {refused} connects refused at once, \
             {resets_before_service} attempts reset before service; all retried and served in {:?}",
            h.backlog(),
            h.now().saturating_duration_since(started)
        ),
    );
    assert_all_closed(h, &mut server, "accept_burst_larger_than_backlog");
    let served = server
        .handler()
        .conns()
        .iter()
        .filter(|c| !c.data.is_empty())
        .count();
    assert_eq!(served, burst, "[{b}] connections that got data");
    for c in server
        .handler()
        .conns()
        .iter()
        .filter(|c| !c.data.is_empty())
    {
        assert_eq!(c.closed.expect("closed").reason, CloseReason::PeerClosed);
    }
    assert_eq!(server.stats().evicted, 0);
}
