//! Black-box tests of the example servers on the std backend: real
//! processes, real sockets on 127.0.0.1, the command-line contract
//! (`listening on ADDR`, `closed id=.. peer=.. rx=.. tx=.. reason=..`).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use support::{ExampleServer, connect, connect_from, field, read_to_eof, round_trip, silent_for};

const ANY_PORT: &str = "127.0.0.1:0";

#[test]
fn six_clients_on_four_slots_first_four_echo_the_rest_wait_and_none_is_dropped() {
    let server = ExampleServer::start("echo", &["--listen", ANY_PORT, "--max-connections", "4"]);
    let mut first: Vec<TcpStream> = (0..4).map(|_| connect(server.addr)).collect();
    for (i, c) in first.iter_mut().enumerate() {
        assert_eq!(
            round_trip(c, format!("hello {i}\n").as_bytes()),
            format!("hello {i}\n").as_bytes()
        );
    }
    let mut late: Vec<TcpStream> = (0..2).map(|_| connect(server.addr)).collect();
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
            silent_for(c, Duration::from_millis(300)),
            "a deferred client got data"
        );
    }
    assert!(
        server.closed_lines().is_empty(),
        "nobody may be closed: {:?}",
        server.closed_lines()
    );
    // One of the four leaves: the fifth is served, its early bytes echoed.
    first.remove(0).shutdown(Shutdown::Both).unwrap();
    let mut buf = [0u8; 8];
    late[0].read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"waiting\n");
    assert!(silent_for(&mut late[1], Duration::from_millis(200)));
    for c in &mut first {
        assert_eq!(round_trip(c, b"still here\n"), b"still here\n");
    }
    let closed = server.wait_closed(1, Duration::from_secs(5));
    assert_eq!(
        closed.len(),
        1,
        "exactly the client that left is closed: {closed:?}"
    );
}

#[test]
fn reject_gives_extra_clients_a_clean_close_and_leaves_the_four_untouched() {
    let server = ExampleServer::start(
        "echo",
        &[
            "--listen",
            ANY_PORT,
            "--max-connections",
            "4",
            "--when-full",
            "reject",
        ],
    );
    let mut four: Vec<TcpStream> = (0..4).map(|_| connect(server.addr)).collect();
    for c in &mut four {
        assert_eq!(round_trip(c, b"in\n"), b"in\n");
    }
    for _ in 0..2 {
        let mut extra = connect(server.addr);
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
    let lines = server.stop();
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .expect("stats line");
    assert_eq!(field(stats, "refused"), Some("2"));
}

fn send_then_close_cycles(read_reply: bool) {
    const CYCLES: usize = 2000;
    let server = ExampleServer::start("echo", &["--listen", ANY_PORT, "--max-connections", "16"]);
    for i in 0..CYCLES {
        let mut c = TcpStream::connect(server.addr).expect("connect");
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
    let rx: u64 = closed
        .iter()
        .map(|l| field(l, "rx").unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(closed.len(), CYCLES);
    assert_eq!(
        rx,
        8 * CYCLES as u64,
        "the server must see every byte of every connection"
    );
    assert!(
        closed.iter().all(|l| field(l, "rx") == Some("8")),
        "a connection lost bytes"
    );
}

#[test]
fn two_thousand_send_then_half_close_cycles_lose_no_bytes() {
    send_then_close_cycles(true);
}

#[test]
fn two_thousand_send_then_close_without_reading_lose_no_bytes() {
    send_then_close_cycles(false);
}

#[test]
fn five_clients_stream_10mb_patterns_echoed_byte_by_byte() {
    const TOTAL: usize = 10 * 1024 * 1024;
    let server = ExampleServer::start("echo", &["--listen", ANY_PORT, "--max-connections", "5"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..5u8)
        .map(|k| {
            std::thread::spawn(move || {
                let pattern = move |i: usize| {
                    (i as u8).wrapping_mul(31).wrapping_add(k.wrapping_mul(7)) ^ (i >> 13) as u8
                };
                support::echo_pattern(connect(addr), TOTAL, 64 * 1024, pattern)
            })
        })
        .collect();
    for (k, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), TOTAL, "client {k} got a short stream");
    }
    let closed = server.wait_closed(5, Duration::from_secs(10));
    assert!(
        closed
            .iter()
            .all(|l| field(l, "reason") == Some("peer_closed")),
        "{closed:?}"
    );
}

#[test]
fn silent_clients_are_closed_after_the_idle_timeout_and_their_slots_reused() {
    let server = ExampleServer::start(
        "echo",
        &[
            "--listen",
            ANY_PORT,
            "--max-connections",
            "2",
            "--idle-timeout-ms",
            "300",
        ],
    );
    let mut silent: Vec<TcpStream> = (0..2).map(|_| connect(server.addr)).collect();
    let mut waiting = connect(server.addr);
    waiting.write_all(b"queued\n").unwrap();
    for s in &mut silent {
        let (_, clean) = read_to_eof(s);
        assert!(clean, "an idle close must be clean");
    }
    let mut buf = [0u8; 7];
    waiting.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"queued\n", "the waiting client gets a freed slot");
    let closed = server.wait_closed(2, Duration::from_secs(5));
    assert!(
        closed
            .iter()
            .take(2)
            .all(|l| field(l, "reason") == Some("idle_timeout")),
        "{closed:?}"
    );
}

#[test]
fn a_client_that_resets_mid_transfer_affects_no_other_client() {
    let server = ExampleServer::start("echo", &["--listen", ANY_PORT, "--max-connections", "4"]);
    let mut steady = connect(server.addr);
    let resetting = connect(server.addr);
    assert_eq!(round_trip(&mut steady, b"before\n"), b"before\n");
    let mut r = resetting.try_clone().unwrap();
    r.write_all(&vec![0x5a; 256 * 1024]).ok();
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
    let closed = server.wait_closed(1, Duration::from_secs(5));
    assert_eq!(closed.len(), 1);
    assert!(
        ["reset", "peer_closed"].contains(&field(&closed[0], "reason").unwrap()),
        "{closed:?}"
    );
}

#[test]
fn max_per_ip_refuses_a_third_client_from_the_same_address_with_a_clean_close() {
    let server = ExampleServer::start("echo", &["--listen", ANY_PORT, "--max-per-ip", "2"]);
    let mut two: Vec<TcpStream> = (0..2).map(|_| connect(server.addr)).collect();
    for c in &mut two {
        assert_eq!(round_trip(c, b"in\n"), b"in\n");
    }
    let mut third = connect(server.addr);
    let (got, clean) = read_to_eof(&mut third);
    assert!(clean && got.is_empty(), "refused with a clean close");
    for c in &mut two {
        assert_eq!(round_trip(c, b"untouched\n"), b"untouched\n");
    }
    two.remove(0).shutdown(Shutdown::Both).unwrap();
    server.wait_closed(1, Duration::from_secs(5));
    let mut next = connect(server.addr);
    assert_eq!(round_trip(&mut next, b"now\n"), b"now\n");
    let lines = server.stop();
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .expect("stats line");
    assert_eq!(field(stats, "refused"), Some("1"));
}

#[test]
fn a_restarted_server_rebinds_the_same_port_at_once() {
    let first = ExampleServer::start("echo", &["--listen", ANY_PORT]);
    let addr = first.addr;
    let mut c = connect(addr);
    assert_eq!(round_trip(&mut c, b"one\n"), b"one\n");
    // Stopping closes the live connection from the server side: its end
    // goes to TIME_WAIT, which must not block the next bind.
    let lines = first.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("closed ") && field(l, "reason") == Some("shutdown")),
        "{lines:?}"
    );
    let (_, clean) = read_to_eof(&mut c);
    assert!(clean);
    let second = ExampleServer::start("echo", &["--listen", &addr.to_string()]);
    assert_eq!(second.addr, addr);
    let mut c = connect(addr);
    assert_eq!(round_trip(&mut c, b"two\n"), b"two\n");
}

#[test]
fn an_over_long_line_gets_err_line_too_long_and_a_close_others_unaffected() {
    let server = ExampleServer::start("command", &["--listen", ANY_PORT]);
    let mut good = connect(server.addr);
    let mut bad = connect(server.addr);
    assert_eq!(round_trip(&mut good, b"PING\n"), b"PONG\n");
    let mut line = vec![b'A'; 129];
    line.push(b'\n');
    bad.write_all(&line).unwrap();
    // More input after the long line must not turn the close into a reset.
    bad.write_all(&[b'B'; 4096]).unwrap();
    let (got, clean) = read_to_eof(&mut bad);
    assert_eq!(String::from_utf8_lossy(&got), "ERR line too long\n");
    assert!(clean, "the error reply must not be destroyed by a reset");
    assert_eq!(round_trip(&mut good, b"PING\n"), b"PONG\n");
    good.write_all(b"NOPE\n").unwrap();
    let mut buf = [0u8; 20];
    good.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ERR unknown command\n");
    let closed = server.wait_closed(1, Duration::from_secs(5));
    assert_eq!(field(&closed[0], "reason"), Some("protocol"));
}

#[test]
fn command_server_answers_every_command_and_quit_closes() {
    let server = ExampleServer::start("command", &["--listen", ANY_PORT]);
    let mut c = connect(server.addr);
    // All commands in one write, split arbitrarily by TCP: framing must cope.
    c.write_all(b"PING\r\nGET_TEMP\nGET_HUMIDITY\nSTATS\nQUIT\nPING\n")
        .unwrap();
    let (got, clean) = read_to_eof(&mut c);
    assert!(clean);
    let text = String::from_utf8(got).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text:?}");
    assert_eq!(lines[0], "PONG");
    assert!(lines[1].starts_with("TEMP "));
    assert!(lines[2].starts_with("HUMIDITY "));
    assert!(lines[3].starts_with("STATS active=1 "), "{}", lines[3]);
    assert_eq!(lines[4], "BYE");
}

#[test]
fn a_client_over_the_per_ip_cap_is_refused_and_never_costs_an_idle_client_its_slot() {
    let server = ExampleServer::start(
        "echo",
        &[
            "--listen",
            ANY_PORT,
            "--max-connections",
            "2",
            "--when-full",
            "evict-idlest",
            "--min-idle-ms",
            "100",
            "--max-per-ip",
            "1",
        ],
    );
    let host_a: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let host_b: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    let mut a = connect_from(host_a, server.addr);
    let mut b = connect_from(host_b, server.addr);
    // Both hold a slot (the pool is full), then go idle past --min-idle-ms:
    // each could be evicted for a newcomer the server admits.
    assert_eq!(round_trip(&mut a, b"a\n"), b"a\n");
    assert_eq!(round_trip(&mut b, b"b\n"), b"b\n");
    std::thread::sleep(Duration::from_millis(300));

    // A second connection from host A is over its cap: refused, whatever
    // the eviction policy could free.
    let mut third = connect_from(host_a, server.addr);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (got, clean) = read_to_eof(&mut third);
    let closed = server.closed_lines();
    assert!(
        !closed.iter().any(|l| field(l, "reason") == Some("evicted")),
        "an idle client was evicted for a client the per-IP cap refuses: {closed:?}"
    );
    assert!(
        clean,
        "the refused client must see the server close its connection (got {got:?})"
    );
    assert!(
        got.is_empty() || got == b"busy\n",
        "a refused client gets nothing but the banner: {got:?}"
    );
    for (name, client) in [("127.0.0.2", &mut a), ("127.0.0.3", &mut b)] {
        assert_eq!(
            round_trip(client, b"still here\n"),
            b"still here\n",
            "the idle client from {name} lost service"
        );
    }
    assert!(
        server.closed_lines().is_empty(),
        "nobody may be closed: {:?}",
        server.closed_lines()
    );
    let lines = server.stop();
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .expect("stats line");
    assert_eq!(field(stats, "refused"), Some("1"), "{stats}");
    assert_eq!(field(stats, "evicted"), Some("0"), "{stats}");
    assert_eq!(field(stats, "accepted"), Some("2"), "{stats}");
}

#[test]
fn help_lists_every_flag_and_exits_zero() {
    let out = std::process::Command::new(support::example_path("echo"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let usage = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen ADDR",
        "--max-connections N",
        "--when-full",
        "--idle-timeout-ms MS",
        "--min-idle-ms MS",
        "--max-per-ip N",
        "--request-timeout-ms MS",
        "--write-stall-ms MS",
    ] {
        assert!(usage.contains(flag), "usage lacks {flag}:\n{usage}");
    }
}

#[test]
fn a_bad_max_per_ip_is_refused_with_usage() {
    let out = std::process::Command::new(support::example_path("echo"))
        .args(["--max-per-ip", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--max-per-ip") && err.contains("usage:"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_refused_with_usage() {
    let out = std::process::Command::new(
        std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples")
            .join("echo"),
    )
    .args(["--when-full", "sometimes"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--when-full"));
}

/// Slowloris against the command server: four clients trickle one byte of
/// a line every 500 ms and hold all four slots; with a 1 s request timeout
/// they are closed with `request_timeout`, and a fifth client's `PING` is
/// answered (within 5 s here: the functional bound, not a speed target).
#[test]
fn trickling_clients_are_closed_by_the_request_timeout_and_a_fifth_is_served() {
    let server = ExampleServer::start(
        "command",
        &[
            "--listen",
            ANY_PORT,
            "--max-connections",
            "4",
            "--request-timeout-ms",
            "1000",
        ],
    );
    let mut tricklers: Vec<TcpStream> = (0..4).map(|_| connect(server.addr)).collect();
    let started = std::time::Instant::now();
    let mut fifth = connect(server.addr);
    fifth.write_all(b"PING\n").unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 16];
    let mut sent = 0usize;
    while !answer.ends_with(b"PONG\n") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the fifth client was not served; output: {:?}",
            server.lines()
        );
        // One byte of "GET_TEMP" every 500 ms from each trickler.
        if started.elapsed() >= Duration::from_millis(500 * sent as u64) {
            for t in &mut tricklers {
                let _ = t.write_all(&[b"GET_TEMP"[sent % 8]]);
            }
            sent += 1;
        }
        match fifth.read(&mut buf) {
            Ok(0) => panic!("the fifth client was closed"),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    assert_eq!(answer, b"PONG\n");
    let closed = server.wait_closed(4, Duration::from_secs(5));
    for line in &closed[..4] {
        assert_eq!(field(line, "reason"), Some("request_timeout"), "{line}");
    }
    let stats = server.stop();
    let stats = stats.iter().find(|l| l.starts_with("stats ")).unwrap();
    assert!(stats.contains("request_timeout:4"), "{stats}");
}

/// `echo --request-timeout-ms`: a client that connects and says nothing is
/// closed with `request_timeout`; one that speaks in time is echoed and
/// kept.
#[test]
fn echo_request_timeout_bounds_the_first_byte_only() {
    let server = ExampleServer::start(
        "echo",
        &["--listen", ANY_PORT, "--request-timeout-ms", "300"],
    );
    let mut mute = connect(server.addr);
    let mut talker = connect(server.addr);
    assert_eq!(round_trip(&mut talker, b"hi\n"), b"hi\n");
    let closed = server.wait_closed(1, Duration::from_secs(5));
    assert_eq!(field(&closed[0], "reason"), Some("request_timeout"));
    let (_, _) = read_to_eof(&mut mute);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(round_trip(&mut talker, b"still\n"), b"still\n");
    assert_eq!(
        server.closed_lines().len(),
        1,
        "only the mute client closed"
    );
}

/// The std examples' pool has 1,024 slots (built on the heap): with
/// `--max-connections 1024`, 1,000 clients held open at once are all
/// served, each echoes, and none is closed until it leaves.
#[test]
fn a_thousand_clients_are_served_at_once_with_max_connections_1024() {
    support::raise_open_files(8192);
    let server = ExampleServer::start("echo", &["--listen", ANY_PORT, "--max-connections", "1024"]);
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect(server.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let msg = format!("client {i}\n");
        assert_eq!(round_trip(c, msg.as_bytes()), msg.as_bytes());
    }
    // Every one still served after all have connected.
    for (i, c) in clients.iter_mut().enumerate().step_by(37) {
        let msg = format!("again {i}\n");
        assert_eq!(round_trip(c, msg.as_bytes()), msg.as_bytes());
    }
    assert!(
        server.closed_lines().is_empty(),
        "nobody may be closed: {:?}",
        server.closed_lines()
    );
    drop(clients);
    let closed = server.wait_closed(1000, Duration::from_secs(20));
    assert_eq!(closed.len(), 1000);
    let lines = server.stop();
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .expect("a stats line");
    assert_eq!(field(stats, "accepted"), Some("1000"), "{stats}");
    assert_eq!(field(stats, "peak_active"), Some("1000"), "{stats}");
}

#[test]
fn max_connections_above_the_pool_is_refused_with_usage() {
    let out = std::process::Command::new(support::example_path("echo"))
        .args(["--max-connections", "1025"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--max-connections") && err.contains("1024"),
        "{err}"
    );
}
