//! Black-box test of the async embassy TAP examples (`embassy_tap_echo`,
//! `embassy_tap_command`, feature `embassy-tap`): the real binaries, an
//! embassy-net stack on a TAP device, real Linux clients, the echo
//! example's command-line contract.
//!
//! Needs root, `/dev/net/tun` and iproute2's `ip`: the test creates a
//! network namespace (`tcpool-emb-<pid>`, deleted afterwards, even on
//! failure) and re-runs its own binary inside it to execute
//! `inner_embassy_examples_in_namespace` (see `support/netns.rs`). No
//! traffic leaves the namespace. Without root, `/dev/net/tun` or `ip` the
//! test prints `SKIPPED ...` and passes, unless `CI=true`, where it fails.
//!
//! The example binaries must be built first:
//!
//! ```sh
//! cargo build -p tcpool --features embassy-tap --examples
//! cargo test -p tcpool --features embassy-tap --test blackbox_embassy_tap
//! ```

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::netns::{self, Inner};
use support::{ExampleServer, connect, field, read_to_eof, round_trip};

const INNER_ENV: &str = "TCPOOL_EMBASSY_TAP_INNER";
const INNER_TEST: &str = "inner_embassy_examples_in_namespace";
const TAP: &str = "tcpe0";
const HOST_CIDR: &str = "10.124.0.1/24";
const SERVER_CIDR: &str = "10.124.0.2/24";

/// Send-then-close cycles, spread over this many client threads.
const CYCLES: usize = 2_000;
const CYCLE_THREADS: usize = 4;
/// The pattern transfers: how many, and the bytes of each.
const TRANSFERS: usize = 5;
const TRANSFER_BYTES: usize = 10 * 1024 * 1024;

#[test]
fn embassy_tap_examples_serve_real_linux_clients() {
    Inner {
        what: "embassy TAP example test",
        namespace: "tcpool-emb",
        env: INNER_ENV,
        test: INNER_TEST,
        done: "embassy TAP examples: done",
        watchdog: Duration::from_secs(600),
    }
    .run();
}

// ------------------------------------------------------------------- inside

fn start(example: &str, port: &str, max_connections: &str) -> ExampleServer {
    let server = ExampleServer::start(
        example,
        &[
            "--tap",
            TAP,
            "--ip",
            SERVER_CIDR,
            "--listen-port",
            port,
            "--max-connections",
            max_connections,
        ],
    );
    netns::link_up(TAP, HOST_CIDR);
    server
}

/// A client with a long read timeout, for the bulk transfers.
fn patient(addr: SocketAddr) -> TcpStream {
    let s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s
}

/// Reads whatever arrives within `wait` (the stream has a short timeout).
fn drain_into(s: &mut TcpStream, got: &mut Vec<u8>, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    if let Ok(n) = s.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
}

/// 6 clients on 4 slots: 4 served, 2 wait; nobody is evicted; each one
/// that leaves lets a waiting one in.
fn six_clients_on_four_slots(addr: SocketAddr) {
    let mut clients: Vec<TcpStream> = (0..6).map(|_| connect(addr)).collect();
    let msgs: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("client {i}\n").into_bytes())
        .collect();
    for (c, m) in clients.iter_mut().zip(&msgs) {
        c.write_all(m).unwrap();
    }
    let mut got = vec![Vec::new(); 6];
    let served = |got: &[Vec<u8>]| (0..6).filter(|&i| got[i] == msgs[i]).count();
    let end = Instant::now() + Duration::from_secs(20);
    while served(&got) < 4 {
        assert!(Instant::now() < end, "4 clients not served: {got:?}");
        for (c, g) in clients.iter_mut().zip(got.iter_mut()) {
            drain_into(c, g, Duration::from_millis(20));
        }
    }
    // A few more rounds: nobody else gets in while the 4 stay.
    for _ in 0..10 {
        for (c, g) in clients.iter_mut().zip(got.iter_mut()) {
            drain_into(c, g, Duration::from_millis(20));
        }
    }
    assert_eq!(served(&got), 4, "only 4 slots: {got:?}");
    let (done, waiting): (Vec<usize>, Vec<usize>) = (0..6).partition(|&i| got[i] == msgs[i]);
    for &i in &waiting {
        assert!(got[i].is_empty(), "a waiting client got {:?}", got[i]);
    }
    // The served ones are still served (nobody was evicted for the others).
    for &i in &done {
        clients[i]
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(round_trip(&mut clients[i], b"again\n"), b"again\n");
    }
    // One leaves: exactly one waiting client gets its slot.
    clients[done[0]].shutdown(Shutdown::Write).unwrap();
    let (rest, clean) = read_to_eof(&mut clients[done[0]]);
    assert!(clean && rest.is_empty(), "{rest:?}");
    let end = Instant::now() + Duration::from_secs(20);
    while waiting.iter().all(|&i| got[i] != msgs[i]) {
        assert!(Instant::now() < end, "no waiting client was served");
        for &i in &waiting {
            drain_into(&mut clients[i], &mut got[i], Duration::from_millis(20));
        }
    }
    // Then the others leave, and the last waiting one is served too.
    for &i in &done[1..] {
        clients[i].shutdown(Shutdown::Write).unwrap();
        let (rest, clean) = read_to_eof(&mut clients[i]);
        assert!(clean && rest.is_empty(), "{rest:?}");
    }
    for &i in &waiting {
        clients[i]
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let want = msgs[i].len();
        while got[i].len() < want {
            drain_into(&mut clients[i], &mut got[i], Duration::from_secs(10));
        }
        assert_eq!(got[i], msgs[i]);
        clients[i].shutdown(Shutdown::Write).unwrap();
        let (rest, clean) = read_to_eof(&mut clients[i]);
        assert!(clean && rest.is_empty(), "{rest:?}");
    }
}

/// `CYCLES` connections that each send a message, finish their side and
/// read the echo to the end: every byte comes back.
fn send_then_close_cycles(addr: SocketAddr) -> usize {
    let workers: Vec<_> = (0..CYCLE_THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut bytes = 0;
                for k in 0..CYCLES / CYCLE_THREADS {
                    let msg = format!("cycle {t}.{k} {}\n", "x".repeat(k % 97)).into_bytes();
                    let mut s = connect(addr);
                    s.write_all(&msg).unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                    let (echo, clean) = read_to_eof(&mut s);
                    assert!(clean, "cycle {t}.{k}: not a clean close");
                    assert_eq!(echo, msg, "cycle {t}.{k}: lost or changed bytes");
                    bytes += msg.len();
                }
                bytes
            })
        })
        .collect();
    workers.into_iter().map(|w| w.join().unwrap()).sum()
}

fn pattern(k: usize, i: usize) -> u8 {
    ((i * 7 + k * 13 + i / 251) % 256) as u8
}

/// `TRANSFERS` clients at once (one more than the slots: the last waits),
/// each sending `TRANSFER_BYTES` of a pattern and checking the echo byte
/// for byte.
fn pattern_transfers(addr: SocketAddr) {
    let workers: Vec<_> = (0..TRANSFERS)
        .map(|k| {
            thread::spawn(move || {
                let mut s = patient(addr);
                let mut writer = s.try_clone().unwrap();
                let send = thread::spawn(move || {
                    let mut chunk = vec![0u8; 64 * 1024];
                    let mut i = 0;
                    while i < TRANSFER_BYTES {
                        let n = chunk.len().min(TRANSFER_BYTES - i);
                        for (j, b) in chunk[..n].iter_mut().enumerate() {
                            *b = pattern(k, i + j);
                        }
                        writer.write_all(&chunk[..n]).unwrap();
                        i += n;
                    }
                    writer.shutdown(Shutdown::Write).unwrap();
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut i = 0;
                loop {
                    let n = s.read(&mut buf).unwrap_or_else(|e| {
                        panic!("transfer {k}: read failed after {i} bytes: {e}")
                    });
                    if n == 0 {
                        break;
                    }
                    for (j, &b) in buf[..n].iter().enumerate() {
                        assert_eq!(b, pattern(k, i + j), "transfer {k}: byte {}", i + j);
                    }
                    i += n;
                }
                send.join().unwrap();
                assert_eq!(i, TRANSFER_BYTES, "transfer {k}: echo length");
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
#[ignore = "run by embassy_tap_examples_serve_real_linux_clients inside its namespace"]
fn inner_embassy_examples_in_namespace() {
    if !netns::is_inner(INNER_ENV, INNER_TEST) {
        return;
    }
    let server = start("embassy_tap_echo", "7000", "4");
    assert_eq!(server.addr, SocketAddr::from(([10, 124, 0, 2], 7000)));
    let memory = server.wait_line(Duration::from_secs(5), |l| l.starts_with("memory "));
    let server_bytes: usize = field(&memory, "server").unwrap().parse().unwrap();
    let task_bytes: usize = field(&memory, "tasks").unwrap().parse().unwrap();
    assert!(
        server_bytes > 16 * 8192 && task_bytes > 0,
        "the pool holds 16 slots of 2 x 4 KiB: {memory}"
    );

    six_clients_on_four_slots(server.addr);
    println!("6 clients on 4 slots: ok");
    let cycle_bytes = send_then_close_cycles(server.addr);
    println!("{CYCLES} send-then-close cycles: ok");
    let started = Instant::now();
    pattern_transfers(server.addr);
    println!(
        "{TRANSFERS} x {TRANSFER_BYTES} byte transfers: ok in {:?}",
        started.elapsed()
    );

    let connections = 6 + CYCLES + TRANSFERS;
    let closed = server.wait_closed(connections, Duration::from_secs(30));
    assert_eq!(closed.len(), connections);
    for line in &closed {
        assert_eq!(field(line, "reason"), Some("peer_closed"), "{line}");
    }
    let lines = server.stop();
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .expect("stats line");
    let msgs: usize = (0..6).map(|i| format!("client {i}\n").len()).sum();
    let bytes = msgs + 4 * "again\n".len() + cycle_bytes + TRANSFERS * TRANSFER_BYTES;
    let (connections, bytes) = (connections.to_string(), bytes.to_string());
    let closed_all = format!("peer_closed:{connections}");
    for (key, want) in [
        ("accepted", connections.as_str()),
        ("refused", "0"),
        ("evicted", "0"),
        ("accept_errors", "0"),
        ("bytes_in", bytes.as_str()),
        ("bytes_out", bytes.as_str()),
        ("peak_active", "4"),
        ("closed", closed_all.as_str()),
    ] {
        assert_eq!(field(stats, key), Some(want), "{key} in {stats}");
    }

    // The async command server, on the same device (the echo example took
    // its TAP device with it).
    let server = start("embassy_tap_command", "7001", "4");
    let mut c = connect(server.addr);
    c.write_all(b"PING\n").unwrap();
    let mut pong = [0u8; 5];
    if let Err(e) = c.read_exact(&mut pong) {
        thread::sleep(Duration::from_millis(200));
        panic!("no answer to PING: {e}; output: {:?}", server.lines());
    }
    assert_eq!(&pong, b"PONG\n");
    c.write_all(b"NOPE\n").unwrap();
    let mut line = vec![0u8; "ERR unknown command\n".len()];
    c.read_exact(&mut line).unwrap();
    assert_eq!(line, b"ERR unknown command\n");
    c.write_all(&[b'A'; 200]).unwrap();
    let (rest, _) = read_to_eof(&mut c);
    assert_eq!(rest, b"ERR line too long\n");
    let mut q = connect(server.addr);
    let mut bye = [0u8; 4];
    q.write_all(b"QUIT\n").unwrap();
    if let Err(e) = q.read_exact(&mut bye) {
        thread::sleep(Duration::from_millis(300));
        panic!("QUIT: {e}; output: {:?}", server.lines());
    }
    let (rest, clean) = read_to_eof(&mut q);
    let rest = [&bye[..], &rest].concat();
    if rest != b"BYE\n" {
        thread::sleep(Duration::from_millis(300));
        panic!("QUIT: got {rest:?}; output: {:?}", server.lines());
    }
    assert!(clean);
    let closed = server.wait_closed(2, Duration::from_secs(10));
    let mut reasons: Vec<_> = closed.iter().map(|l| field(l, "reason")).collect();
    reasons.sort();
    assert_eq!(reasons, [Some("local"), Some("protocol")], "{closed:?}");
    let lines = server.stop();
    assert!(lines.iter().any(|l| l.starts_with("stats ")), "{lines:?}");
    println!("embassy TAP examples: done");
}
