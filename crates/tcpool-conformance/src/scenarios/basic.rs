//! Echo and connection churn.

use std::collections::BTreeMap;
use std::vec::Vec;

use tcpool_core::{CloseReason, Config};

use super::assert_all_closed;
use crate::drive::{Bound, Peer, start, wait_for};
use crate::handlers::{Mode, Recorder};
use crate::harness::{ClientError, Harness};
use crate::kind::{Kind, RecDrive};

/// One client sends two messages, gets each echoed, half-closes and sees
/// the server close after it; the handler saw exactly the bytes sent.
pub fn echo_round_trip<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let mut server = start::<H, K, 4, 512, 512>(h, Recorder::new(Mode::Echo), Config::new());
    let mut c = Peer::connect(h, &mut server, "client");
    let addr = c.addr(h);
    c.send_all(h, &mut server, b"hello, pool");
    c.wait_bytes(h, &mut server, 11);
    assert_eq!(c.got, b"hello, pool", "[{b}] first echo");
    c.send_all(h, &mut server, b"again");
    c.wait_bytes(h, &mut server, 16);
    assert_eq!(c.got, b"hello, poolagain", "[{b}] second echo");
    c.shutdown_write(h);
    c.wait_end(h, &mut server);
    assert!(
        c.eof && !c.reset,
        "[{b}] a graceful close is a FIN, not a reset"
    );
    c.close(h);
    wait_for(h, &mut server, "the connection to be released", |_, s| {
        s.active() == 0
    });
    let rec = server
        .handler()
        .by_peer(addr)
        .expect("the server recorded the client");
    assert_eq!(rec.data, b"hello, poolagain", "[{b}] handler input");
    assert_eq!(
        rec.peer_closed_after,
        Some(16),
        "[{b}] on_peer_closed after all data"
    );
    let closed = rec.closed.expect("closed");
    assert_eq!(closed.reason, CloseReason::PeerClosed, "[{b}] close reason");
    assert_eq!(
        (closed.bytes_in, closed.bytes_out),
        (16, 16),
        "[{b}] byte counts"
    );
    assert_all_closed(h, &mut server, "echo_round_trip");
}

/// How a churn client ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Half-close, then read the echo to the end.
    HalfCloseThenRead,
    /// Close at once, never reading.
    CloseWithoutReading,
}

const CYCLES: usize = 2_000;
const IN_FLIGHT: usize = 8;

/// 2,000 clients, each sending 8 bytes and closing at once (seed 001):
/// first half-closing and reading the reply, then closing without reading.
/// The server receives every one of the 16,000 bytes of each run, every
/// connection is closed exactly once, and nothing leaks.
pub fn connect_send_close_2000_cycles_lose_no_bytes<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let mut server = start::<H, K, 8, 256, 256>(h, Recorder::new(Mode::Echo), Config::new());
    for ending in [Ending::HalfCloseThenRead, Ending::CloseWithoutReading] {
        let first_conn = server.handler().conns().len();
        let bytes_before = server.stats().bytes_in;
        let closed_before = server.stats().closed.total() as usize;
        // Message of cycle i: its number in 8 ASCII digits.
        let message = |i: usize| format!("{i:08}").into_bytes();
        struct Cycle<H: Harness> {
            peer: Peer<H>,
            message: Vec<u8>,
            sent: usize,
            shut: bool,
        }
        let mut live: Vec<Cycle<H>> = Vec::new();
        let mut started = 0;
        let mut finished = 0;
        let mut refused = 0u64;
        let mut bound = Bound::new(h, format!("{CYCLES} cycles ({ending:?})"));
        while finished < CYCLES {
            let closed_now = server.stats().closed.total() as usize - closed_before;
            while started < CYCLES && started - closed_now.min(started) < IN_FLIGHT {
                match h.connect() {
                    Ok(client) => {
                        live.push(Cycle {
                            peer: Peer::from_client(client, format!("cycle {started}")),
                            message: message(started),
                            sent: 0,
                            shut: false,
                        });
                        started += 1;
                    }
                    Err(ClientError::Refused(_)) => {
                        refused += 1;
                        break;
                    }
                    Err(e) => panic!("[{b}] connect failed: {e}"),
                }
            }
            let mut moved = false;
            let mut i = 0;
            while i < live.len() {
                let cy = &mut live[i];
                if cy.sent < cy.message.len() {
                    let n = cy.peer.try_send(h, &cy.message[cy.sent..]);
                    cy.sent += n;
                    moved |= n > 0;
                }
                let mut done = false;
                if cy.sent == cy.message.len() {
                    match ending {
                        Ending::CloseWithoutReading => {
                            cy.peer.close(h);
                            done = true;
                        }
                        Ending::HalfCloseThenRead => {
                            if !cy.shut {
                                cy.peer.shutdown_write(h);
                                cy.shut = true;
                            }
                            moved |= cy.peer.pump(h);
                            if cy.peer.ended() {
                                assert!(
                                    cy.peer.eof,
                                    "[{b}] {}: reset instead of the reply and FIN",
                                    cy.peer.name
                                );
                                assert_eq!(
                                    cy.peer.got, cy.message,
                                    "[{b}] {}: reply",
                                    cy.peer.name
                                );
                                cy.peer.close(h);
                                done = true;
                            }
                        }
                    }
                }
                if done {
                    live.swap_remove(i);
                    finished += 1;
                    moved = true;
                } else {
                    i += 1;
                }
            }
            if moved {
                bound.progress();
            }
            h.step(&mut server);
            bound.tick(h, &server);
        }
        wait_for(h, &mut server, "every churn connection to end", |_, s| {
            s.active() == 0 && s.stats().closed.total() as usize - closed_before == CYCLES
        });
        let got = server.stats().bytes_in - bytes_before;
        assert_eq!(
            got,
            (CYCLES * 8) as u64,
            "[{b}] {ending:?}: the server received {got} of {} bytes",
            CYCLES * 8
        );
        let conns = &server.handler().conns()[first_conn..];
        assert_eq!(conns.len(), CYCLES, "[{b}] {ending:?}: connections opened");
        let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for c in conns {
            assert_eq!(
                c.data.len(),
                8,
                "[{b}] {ending:?}: conn {} got {:?}",
                c.id,
                c.data
            );
            *seen.entry(c.data.clone()).or_default() += 1;
            let reason = c.closed.expect("closed").reason;
            let ok = match ending {
                Ending::HalfCloseThenRead => reason == CloseReason::PeerClosed,
                // The echo may reach a client that has closed: its stack
                // answers with a reset, after the 8 bytes were delivered.
                Ending::CloseWithoutReading => {
                    matches!(reason, CloseReason::PeerClosed | CloseReason::Reset)
                }
            };
            assert!(ok, "[{b}] {ending:?}: conn {} closed with {reason}", c.id);
        }
        assert_eq!(
            seen.len(),
            CYCLES,
            "[{b}] {ending:?}: every message exactly once"
        );
        if refused > 0 {
            crate::drive::note::<H>(
                "connect_send_close_2000_cycles_lose_no_bytes",
                &format!("{ending:?}: {refused} connection attempts refused and retried"),
            );
        }
    }
    assert_all_closed(
        h,
        &mut server,
        "connect_send_close_2000_cycles_lose_no_bytes",
    );
}
