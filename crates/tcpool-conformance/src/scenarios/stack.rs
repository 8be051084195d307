//! The stack's own limits: restarts, socket budget, accept failures.

use core::time::Duration;

use tcpool_core::Config;

use super::assert_all_closed;
use crate::drive::{Peer, note, skipped, start};
use crate::handlers::{Mode, Recorder};
use crate::harness::{ClientError, Harness};
use crate::kind::{Kind, RecDrive};

/// A server with connections (one closed by the server, leaving the
/// server side in TIME-WAIT on a real stack; one still established) shuts
/// down, the stack restarts, and a new server binds the same port at once
/// (seed 002's "address in use") and serves a new client.
pub fn rebind_after_restart<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let scenario = "rebind_after_restart";
    let mut server =
        start::<H, K, 4, 256, 256>(h, Recorder::new(Mode::Lines { max: 64 }), Config::new());
    let port = h.server_port();
    // The server closes this one first (QUIT): TIME-WAIT on its side.
    let mut quitter = Peer::connect(h, &mut server, "quitting client");
    quitter.send_all(h, &mut server, b"hello\nQUIT\n");
    quitter.wait_end(h, &mut server);
    assert_eq!(
        quitter.got, b"hello\n",
        "[{b}] {scenario}: reply before QUIT"
    );
    quitter.close(h);
    // This one is still connected when the server stops.
    let mut stayer = Peer::connect(h, &mut server, "connected client");
    stayer.send_all(h, &mut server, b"still here\n");
    stayer.wait_bytes(h, &mut server, 11);
    let now = h.now();
    server.shutdown(h.stack(), now);
    assert_eq!(
        server.active(),
        0,
        "[{b}] {scenario}: shutdown closes every connection"
    );
    stayer.wait_end(h, &mut crate::NoServer);
    stayer.close(h);
    if let Err(why) = h.restart_stack() {
        skipped::<H>(scenario, &why);
        return;
    }
    let mut again = K::server::<4, 256, 256>(Recorder::new(Mode::Lines { max: 64 }), Config::new());
    if let Err(e) = again.listen(h.stack(), port) {
        panic!("[{b}] {scenario}: rebinding port {port} right after the restart failed: {e:?}");
    }
    h.listening(again.listener().expect("listening"));
    assert_eq!(h.server_port(), port, "[{b}] {scenario}: same port");
    let mut fresh = Peer::connect(h, &mut again, "client after restart");
    fresh.send_all(h, &mut again, b"again\n");
    fresh.wait_bytes(h, &mut again, 6);
    assert_eq!(
        fresh.got, b"again\n",
        "[{b}] {scenario}: served after the rebind"
    );
    fresh.shutdown_write(h);
    fresh.wait_end(h, &mut again);
    fresh.close(h);
    assert_all_closed(h, &mut again, scenario);
}

/// The stack runs out of sockets: a new client is not served (refused at
/// connect, or queued while `accept` fails and is counted), established
/// clients keep working, and once sockets are available again the waiting
/// client is served. Then transient accept errors: counted, retried after
/// the backoff, and the client is served.
pub fn stack_out_of_sockets_accept_fails_and_recovers<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let scenario = "stack_out_of_sockets_accept_fails_and_recovers";
    let config = Config::new().with_accept_backoff(Duration::from_millis(20));
    let mut server = start::<H, K, 4, 256, 256>(h, Recorder::new(Mode::Echo), config);
    let mut first = Peer::connect(h, &mut server, "established client");
    first.send_all(h, &mut server, b"1");
    first.wait_bytes(h, &mut server, 1);

    // 1. Out of sockets.
    match h.exhaust_sockets() {
        Err(why) => skipped::<H>(&format!("{scenario} (socket budget part)"), &why),
        Ok(how) => {
            note::<H>(scenario, &format!("out of sockets via {how}"));
            let errors_before = server.stats().accept_errors;
            let mut newcomer = match h.connect() {
                Ok(c) => Some(Peer::<H>::from_client(c, "newcomer")),
                Err(ClientError::Refused(_)) => None,
                Err(e) => panic!("[{b}] {scenario}: connect: {e}"),
            };
            if let Some(p) = newcomer.as_mut() {
                p.send_all(h, &mut server, b"n");
            }
            h.advance(Duration::from_millis(200), &mut server);
            assert_eq!(
                server.active(),
                1,
                "[{b}] {scenario}: served beyond the socket budget"
            );
            let accept_failed = server.stats().accept_errors > errors_before;
            if let Some(p) = newcomer.as_mut() {
                p.pump(h);
                assert_eq!(
                    p.received, 0,
                    "[{b}] {scenario}: newcomer served without a socket"
                );
                assert!(!p.reset, "[{b}] {scenario}: the queued newcomer was reset");
                assert!(
                    accept_failed,
                    "[{b}] {scenario}: the newcomer was queued but no accept failed"
                );
            }
            first.send_all(h, &mut server, b"2");
            first.wait_bytes(h, &mut server, 2);
            assert_eq!(
                first.got, b"12",
                "[{b}] {scenario}: established client works"
            );
            h.restore_sockets();
            let mut p = match newcomer {
                Some(p) => p,
                None => {
                    let mut p = Peer::connect(h, &mut server, "newcomer");
                    p.send_all(h, &mut server, b"n");
                    p
                }
            };
            p.wait_bytes(h, &mut server, 1);
            assert_eq!(
                p.got, b"n",
                "[{b}] {scenario}: newcomer served after recovery"
            );
            p.shutdown_write(h);
            p.wait_end(h, &mut server);
            p.close(h);
        }
    }

    // 2. Transient accept errors.
    match h.fail_next_accepts(3) {
        Err(why) => skipped::<H>(&format!("{scenario} (accept error part)"), &why),
        Ok(()) => {
            let errors_before = server.stats().accept_errors;
            let mut p = Peer::connect(h, &mut server, "client after accept errors");
            p.send_all(h, &mut server, b"e");
            p.wait_bytes(h, &mut server, 1);
            assert_eq!(p.got, b"e");
            let errors = server.stats().accept_errors - errors_before;
            assert_eq!(errors, 3, "[{b}] {scenario}: accept errors counted");
            p.shutdown_write(h);
            p.wait_end(h, &mut server);
            p.close(h);
        }
    }
    first.send_all(h, &mut server, b"3");
    first.wait_bytes(h, &mut server, 3);
    assert_eq!(
        first.got, b"123",
        "[{b}] {scenario}: established client unaffected"
    );
    first.shutdown_write(h);
    first.wait_end(h, &mut server);
    first.close(h);
    assert_all_closed(h, &mut server, scenario);
}
