//! Black-box tests of the bare-metal firmware (`firmware/qemu-riscv32`):
//! its runner boots it in QEMU and is driven exactly like the host `echo`
//! example — the same flags, the same `listening on`, `closed ...` and
//! `stats ...` lines — with real clients on 127.0.0.1.
//!
//! They boot QEMU, so they are ignored in a plain `cargo test`; the
//! `firmware` stage of CI (`ci/firmware.sh`) runs them with
//! `--include-ignored`. When asked to run, a missing QEMU or a firmware
//! that cannot build fails them.
//!
//! QEMU's user-mode network sits between the clients and the firmware, and
//! it has quirks of its own: the host side accepts a connection before the
//! firmware has seen its SYN (so `connect` succeeds even for a client the
//! firmware will refuse), it listens with a backlog of 1 (a burst of
//! connects waits for the host's 1 s SYN retransmission), and a SYN the
//! firmware holds is retried after 3–6 s. Timeouts here are generous for
//! those reasons; no assertion is about time.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{ExampleServer, connect, field, read_to_eof, round_trip, silent_for};

const ANY_PORT: &str = "127.0.0.1:0";

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("firmware/qemu-riscv32/run")
}

/// Boots the firmware with `args` (the first run may build it).
fn start(args: &[&str]) -> ExampleServer {
    let mut cmd = Command::new(runner());
    cmd.args(args);
    ExampleServer::start_command(cmd, Duration::from_secs(300))
}

/// Stops the firmware (SIGTERM to the runner), checks that it shut down
/// cleanly — no panic, QEMU exited 0 — and returns its `stats` line.
fn finish(server: ExampleServer) -> (String, Vec<String>) {
    let lines = server.stop();
    assert!(
        !lines.iter().any(|l| l.starts_with("panic")),
        "the firmware panicked: {lines:?}"
    );
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .unwrap_or_else(|| panic!("no stats line: {lines:?}"))
        .clone();
    let hwm: usize = field(&stats, "stack_hwm")
        .expect("stack_hwm in the stats line")
        .parse()
        .expect("stack_hwm is a number");
    assert!(hwm > 0, "the painted stack was never used? {stats}");
    (stats, lines)
}

/// A client with generous timeouts for QEMU's forwarding.
fn client(server: &ExampleServer) -> TcpStream {
    let s = connect(server.addr);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn echo_round_trip_and_a_clean_shutdown_with_stats() {
    let server = start(&["--listen", ANY_PORT]);
    let mut c = client(&server);
    for i in 0..10 {
        let msg = format!("hello {i}\n");
        assert_eq!(round_trip(&mut c, msg.as_bytes()), msg.as_bytes());
    }
    let (stats, lines) = finish(server);
    // The live connection was closed by the shutdown, cleanly.
    let (rest, clean) = read_to_eof(&mut c);
    assert!(
        clean && rest.is_empty(),
        "shutdown must end with a clean EOF"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("closed ") && field(l, "reason") == Some("shutdown")),
        "{lines:?}"
    );
    assert_eq!(field(&stats, "accepted"), Some("1"), "{stats}");
    assert_eq!(field(&stats, "bytes_in"), field(&stats, "bytes_out"));
    assert_eq!(field(&stats, "closed"), Some("shutdown:1"), "{stats}");
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn six_clients_on_four_slots_first_four_echo_the_rest_wait_and_none_is_dropped() {
    let server = start(&["--listen", ANY_PORT, "--max-connections", "4"]);
    let mut first: Vec<TcpStream> = (0..4).map(|_| client(&server)).collect();
    for (i, c) in first.iter_mut().enumerate() {
        let msg = format!("hello {i}\n");
        assert_eq!(round_trip(c, msg.as_bytes()), msg.as_bytes());
    }
    let mut late: Vec<TcpStream> = (0..2).map(|_| client(&server)).collect();
    for c in &mut late {
        c.write_all(b"waiting\n").unwrap();
    }
    for round in 0..5 {
        for (i, c) in first.iter_mut().enumerate() {
            let msg = format!("round {round} client {i}\n");
            assert_eq!(
                round_trip(c, msg.as_bytes()),
                msg.as_bytes(),
                "an established client lost service"
            );
        }
    }
    for c in &mut late {
        assert!(
            silent_for(c, Duration::from_millis(500)),
            "a deferred client got data"
        );
    }
    assert!(
        server.closed_lines().is_empty(),
        "nobody may be closed: {:?}",
        server.closed_lines()
    );
    // One of the four leaves: a waiting client is served, its early bytes
    // echoed; the other still waits.
    first.remove(0).shutdown(Shutdown::Both).unwrap();
    let closed = server.wait_closed(1, Duration::from_secs(30));
    let mut buf = [0u8; 8];
    late[0].read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"waiting\n");
    assert!(silent_for(&mut late[1], Duration::from_millis(500)));
    for c in &mut first {
        assert_eq!(round_trip(c, b"still here\n"), b"still here\n");
    }
    assert_eq!(field(&closed[0], "reason"), Some("peer_closed"));
    assert_eq!(
        server.closed_lines().len(),
        1,
        "exactly the client that left is closed: {:?}",
        server.closed_lines()
    );
    let (stats, _) = finish(server);
    assert_eq!(field(&stats, "evicted"), Some("0"), "{stats}");
    assert_eq!(field(&stats, "refused"), Some("0"), "{stats}");
    assert_eq!(field(&stats, "peak_active"), Some("4"), "{stats}");
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn reject_gives_extra_clients_a_clean_busy_close_and_leaves_the_four_untouched() {
    let server = start(&[
        "--listen",
        ANY_PORT,
        "--max-connections",
        "4",
        "--when-full",
        "reject",
    ]);
    let mut four: Vec<TcpStream> = (0..4).map(|_| client(&server)).collect();
    for c in &mut four {
        assert_eq!(round_trip(c, b"in\n"), b"in\n");
    }
    for _ in 0..2 {
        let mut extra = client(&server);
        let (got, clean) = read_to_eof(&mut extra);
        assert!(
            clean,
            "a refused client must see a clean close, not a reset"
        );
        assert_eq!(got, b"busy\n");
    }
    for c in &mut four {
        assert_eq!(round_trip(c, b"untouched\n"), b"untouched\n");
    }
    assert!(server.closed_lines().is_empty());
    let (stats, _) = finish(server);
    assert_eq!(field(&stats, "refused"), Some("2"), "{stats}");
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn max_per_ip_refuses_a_third_client_from_the_same_address() {
    // Through QEMU's user-mode network every client comes from 10.0.2.2.
    let server = start(&["--listen", ANY_PORT, "--max-per-ip", "2"]);
    let mut two: Vec<TcpStream> = (0..2).map(|_| client(&server)).collect();
    for c in &mut two {
        assert_eq!(round_trip(c, b"in\n"), b"in\n");
    }
    let mut third = client(&server);
    let (got, clean) = read_to_eof(&mut third);
    assert!(clean && got.is_empty(), "refused with a clean close");
    for c in &mut two {
        assert_eq!(round_trip(c, b"untouched\n"), b"untouched\n");
    }
    // A slot of that address frees: the next client is served.
    two.remove(0).shutdown(Shutdown::Both).unwrap();
    server.wait_closed(1, Duration::from_secs(30));
    let mut next = client(&server);
    assert_eq!(round_trip(&mut next, b"now\n"), b"now\n");
    let (stats, _) = finish(server);
    assert_eq!(field(&stats, "refused"), Some("1"), "{stats}");
}

fn send_then_close_cycles(read_reply: bool) {
    const CYCLES: usize = 500;
    const IN_FLIGHT: usize = 1;
    let server = start(&["--listen", ANY_PORT, "--max-connections", "8"]);
    for i in 0..CYCLES {
        // Client `i` connects once the firmware has finished with all but
        // IN_FLIGHT of the earlier ones. Clients that close at once would
        // otherwise outrun QEMU's forwarding, which has two quirks a real
        // network does not: its host side listens with a backlog of 1 (a
        // third pending connect waits for the 1 s SYN retransmission), and
        // it accepts a connection before the firmware has seen its SYN, so
        // a fast loop opens hundreds at once; it then sends the firmware
        // bursts of SYNs that its listening sockets cannot all catch,
        // retries the rest with backoff, and drops a connection whose SYN
        // is not answered within 75 s — bytes that never reached the
        // firmware. A client on a real network waits in `connect` for the
        // firmware's SYN-ACK and never gets that far ahead.
        if i >= IN_FLIGHT {
            server.wait_closed(i - IN_FLIGHT, Duration::from_secs(60));
        }
        let mut c = TcpStream::connect(server.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let msg = (i as u64).to_be_bytes();
        c.write_all(&msg).unwrap();
        if read_reply {
            c.shutdown(Shutdown::Write).unwrap();
            let (got, clean) = read_to_eof(&mut c);
            assert!(clean, "cycle {i}: reset instead of a clean close");
            assert_eq!(got, msg, "cycle {i}: wrong echo");
        }
        // Without reading: drop at once; FIN (or RST) races the data.
    }
    let closed = server.wait_closed(CYCLES, Duration::from_secs(60));
    assert_eq!(closed.len(), CYCLES);
    let rx: u64 = closed
        .iter()
        .map(|l| field(l, "rx").unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        rx,
        8 * CYCLES as u64,
        "the firmware must see every byte of every connection"
    );
    assert!(
        closed.iter().all(|l| field(l, "rx") == Some("8")),
        "a connection lost bytes"
    );
    let (stats, _) = finish(server);
    assert_eq!(field(&stats, "accepted"), Some("500"), "{stats}");
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn five_hundred_send_then_half_close_cycles_lose_no_bytes() {
    send_then_close_cycles(true);
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn five_hundred_send_then_close_without_reading_lose_no_bytes() {
    send_then_close_cycles(false);
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn a_one_mib_pattern_is_echoed_byte_for_byte() {
    const TOTAL: usize = 1024 * 1024;
    let pattern = |i: usize| (i as u8).wrapping_mul(31) ^ (i >> 11) as u8;
    let server = start(&["--listen", ANY_PORT]);
    let got = support::echo_pattern(client(&server), TOTAL, 16 * 1024, pattern);
    assert_eq!(got, TOTAL, "short echo");
    let closed = server.wait_closed(1, Duration::from_secs(30));
    assert_eq!(field(&closed[0], "reason"), Some("peer_closed"));
    assert_eq!(field(&closed[0], "rx"), Some("1048576"));
    assert_eq!(field(&closed[0], "tx"), Some("1048576"));
    finish(server);
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn silent_clients_are_closed_after_the_idle_timeout_and_their_slots_reused() {
    let server = start(&[
        "--listen",
        ANY_PORT,
        "--max-connections",
        "2",
        "--idle-timeout-ms",
        "300",
    ]);
    let mut silent: Vec<TcpStream> = (0..2).map(|_| client(&server)).collect();
    let mut waiting = client(&server);
    waiting.write_all(b"queued\n").unwrap();
    for s in &mut silent {
        let (_, clean) = read_to_eof(s);
        assert!(clean, "an idle close must be clean");
    }
    let mut buf = [0u8; 7];
    waiting.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"queued\n", "the waiting client gets a freed slot");
    let closed = server.wait_closed(2, Duration::from_secs(30));
    assert!(
        closed
            .iter()
            .take(2)
            .all(|l| field(l, "reason") == Some("idle_timeout")),
        "{closed:?}"
    );
    finish(server);
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn a_client_that_resets_mid_transfer_affects_no_other_client() {
    let server = start(&["--listen", ANY_PORT, "--max-connections", "4"]);
    let mut steady = client(&server);
    let resetting = client(&server);
    assert_eq!(round_trip(&mut steady, b"before\n"), b"before\n");
    let mut r = resetting.try_clone().unwrap();
    // The echo is never read: the write may stall once every buffer on the
    // way is full, so it is bounded.
    r.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    r.write_all(&vec![0x5a; 64 * 1024]).ok();
    // SO_LINGER 0 turns the close into a reset.
    socket2::SockRef::from(&resetting)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(resetting);
    drop(r);
    for i in 0..20 {
        let msg = format!("after {i}\n");
        assert_eq!(round_trip(&mut steady, msg.as_bytes()), msg.as_bytes());
    }
    let closed = server.wait_closed(1, Duration::from_secs(30));
    assert_eq!(closed.len(), 1);
    assert!(
        ["reset", "peer_closed"].contains(&field(&closed[0], "reason").unwrap()),
        "{closed:?}"
    );
    let (stats, _) = finish(server);
    assert_eq!(field(&stats, "accepted"), Some("2"), "{stats}");
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn bad_flags_are_refused_with_usage() {
    let out = Command::new(runner())
        .args(["--listen", ANY_PORT, "--when-full", "sometimes"])
        .output()
        .expect("run the runner");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--when-full"),
        "{out:?}"
    );
    let out = Command::new(runner())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .expect("run the runner");
    assert_eq!(
        out.status.code(),
        Some(2),
        "only loopback is forwarded: {out:?}"
    );
}

#[test]
#[ignore = "boots QEMU: run by ci/firmware.sh"]
fn a_client_that_says_nothing_is_closed_by_the_request_timeout() {
    let server = start(&[
        "--listen",
        ANY_PORT,
        "--request-timeout-ms",
        "500",
        "--write-stall-ms",
        "5000",
    ]);
    let mut mute = client(&server);
    let mut talker = client(&server);
    talker.write_all(b"hi\n").unwrap();
    let mut buf = [0u8; 3];
    talker.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi\n");
    let closed = server.wait_closed(1, Duration::from_secs(30));
    assert_eq!(
        field(&closed[0], "reason"),
        Some("request_timeout"),
        "{closed:?}"
    );
    let (_, _) = read_to_eof(&mut mute);
    talker.write_all(b"still\n").unwrap();
    let mut buf = [0u8; 6];
    talker.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still\n", "the talker is kept");
    finish(server);
}
