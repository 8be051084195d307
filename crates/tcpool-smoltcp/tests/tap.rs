//! Real Linux TCP clients against tcpool's `Server` on the smoltcp backend,
//! over a TAP device (feature `tap`; needs root and `/dev/net/tun`).
//!
//! Everything happens inside a network namespace this test creates
//! (`tcpool-<pid>`) and deletes afterwards, even on failure: the test
//! re-runs its own binary inside the namespace (`ip netns exec`) to execute
//! `inner_scenarios_in_namespace`, which
//!
//! 1. opens a TAP device `tcpt0` with smoltcp (10.123.0.2/24 on the smoltcp
//!    side) in a server thread, gives the kernel side 10.123.0.1/24 and waits
//!    for carrier (LOWER_UP);
//! 2. runs three tcpool servers on that one smoltcp stack: a 4-slot echo
//!    server (port 7001), a collector (7002) and a 5-slot echo server (7003);
//! 3. drives them with `std::net` clients: 6 clients on the 4-slot server
//!    (4 served, 2 wait in the backlog, nobody is evicted, the waiting ones
//!    are served as slots free up), 2,000 send-then-close cycles (every byte
//!    arrives), and 5 clients echoing a 10 MB pattern each (verified, MB/s
//!    printed).
//!
//! No traffic leaves the namespace. Without root, `/dev/net/tun` or `ip`,
//! the test prints `SKIPPED smoltcp TAP test: <reason>` and passes, unless
//! `CI=true`, where it fails.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use tcpool_core::{CloseReason, Closed, Config, Conn, Handler, Instant, Server, Wait};
use tcpool_smoltcp::tap::{self, TapConfig, TapStack};

const INNER_ENV: &str = "TCPOOL_TAP_INNER";
const INNER_TEST: &str = "inner_scenarios_in_namespace";
const TAP: &str = "tcpt0";
const HOST_CIDR: &str = "10.123.0.1/24";
const SMOL_IP: Ipv4Addr = Ipv4Addr::new(10, 123, 0, 2);
const PORT_SLOTS: u16 = 7001;
const PORT_CYCLES: u16 = 7002;
const PORT_BULK: u16 = 7003;
const CYCLES: usize = 2_000;
const BULK_CLIENTS: usize = 5;
const BULK_BYTES: usize = 10 * 1000 * 1000;
/// The whole inner run may take this long before it is killed.
const WATCHDOG: Duration = Duration::from_secs(600);

/// Writes to the real stderr, past the test harness's output capture.
macro_rules! loud {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

// ------------------------------------------------------------------ outside

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn why_not_runnable() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Some(format!("not root (euid {uid})")),
        None => return Some("cannot read the effective uid".into()),
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun does not exist".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip -V` failed: {}", o.status)),
        Err(e) => Some(format!("the `ip` command (iproute2) is missing: {e}")),
    }
}

fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("smoltcp TAP test cannot run in CI: {reason}");
    }
    loud!("SKIPPED smoltcp TAP test: {reason}");
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

/// A network namespace, deleted on drop (with everything in it).
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Result<Netns, String> {
        let mut out = ip(&["netns", "add", &name]);
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("exists") {
            // Left over by an earlier run that had our pid: ours to reuse.
            ip(&["netns", "del", &name]);
            out = ip(&["netns", "add", &name]);
        }
        if out.status.success() {
            Ok(Netns { name })
        } else {
            Err(format!(
                "`ip netns add {name}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = ip(&["netns", "del", &self.name]);
        if !out.status.success() {
            loud!(
                "warning: could not delete network namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

#[test]
fn tap_echo_server_serves_real_linux_clients() {
    if let Some(reason) = why_not_runnable() {
        return skip(&reason);
    }
    let ns = match Netns::create(format!("tcpool-{}", std::process::id())) {
        Ok(ns) => ns,
        Err(reason) => return skip(&reason),
    };
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&exe)
        .args([
            "--exact",
            INNER_TEST,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the inner run");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = StdInstant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the inner run") {
            break Some(status);
        }
        if started.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().unwrap();
    let err = err.join().unwrap();
    println!("--- inner run (in namespace {}) ---\n{out}\n{err}", ns.name);
    for line in out.lines().filter(|l| l.starts_with("TAP:")) {
        loud!("{line}");
    }
    drop(ns);
    let status = status.unwrap_or_else(|| panic!("inner run killed after {WATCHDOG:?}"));
    assert!(
        status.success(),
        "inner run failed ({status}):\n{out}\n{err}"
    );
    assert!(
        out.contains("test result: ok. 1 passed") && out.contains("TAP: done"),
        "the inner scenarios did not run:\n{out}\n{err}"
    );
}

// ------------------------------------------------------------------- inside

#[derive(Default)]
struct Log {
    opened: usize,
    closed: Vec<Closed>,
    messages: Vec<Vec<u8>>,
}

type Shared = Arc<Mutex<Log>>;

/// Echo, recording opens and closes.
struct Echo(Shared);

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        self.0.lock().unwrap().opened += 1;
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        conn.write(data)
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        self.0.lock().unwrap().closed.push(*closed);
    }
}

/// Keeps each connection's bytes, recorded when it ends.
struct Collect(Shared);

impl Handler for Collect {
    type State = Vec<u8>;

    fn on_open(&mut self, _conn: &mut Conn<'_>) -> Vec<u8> {
        self.0.lock().unwrap().opened += 1;
        Vec::new()
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, state: &mut Vec<u8>, data: &[u8]) -> usize {
        state.extend_from_slice(data);
        data.len()
    }

    fn on_closed(&mut self, closed: &Closed, state: Vec<u8>) {
        let mut log = self.0.lock().unwrap();
        log.closed.push(*closed);
        log.messages.push(state);
    }
}

/// Pool sockets: 4 + 8 + 5 connections, each listener's 4 held before
/// accept, and room for connections finishing their close.
const SOCKETS: usize = 48;
type Stack = TapStack<SOCKETS>;

/// The server thread: one smoltcp stack on the TAP, three tcpool servers.
fn serve(ready: mpsc::Sender<Result<(), String>>, stop: Arc<AtomicBool>, logs: [Shared; 3]) {
    let config = TapConfig::new(TAP, SMOL_IP, 24);
    let mut stack: Stack = match tap::open(&config) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("open TAP {TAP}: {e}")));
            return;
        }
    };
    let [a, b, c] = logs;
    let mut slots: Server<Stack, Echo, 4, 2048, 2048> = Server::new(Echo(a), Config::new());
    let mut cycles: Server<Stack, Collect, 8, 256, 256> = Server::new(Collect(b), Config::new());
    let mut bulk: Server<Stack, Echo, BULK_CLIENTS, 16384, 16384> =
        Server::new(Echo(c), Config::new());
    // Three servers on one stack that reports readiness: a token range
    // each.
    cycles.set_tokens(slots.capacity() + 1);
    bulk.set_tokens(slots.capacity() + 1 + cycles.capacity() + 1);
    slots.listen(&mut stack, PORT_SLOTS).expect("listen");
    cycles.listen(&mut stack, PORT_CYCLES).expect("listen");
    bulk.listen(&mut stack, PORT_BULK).expect("listen");
    let _ = ready.send(Ok(()));

    let start = StdInstant::now();
    let clock = || Instant::from_millis(start.elapsed().as_millis() as u64);
    while !stop.load(Ordering::Relaxed) {
        let now = clock();
        for _ in 0..64 {
            stack.poll(now);
            let a = slots.poll(&mut stack, now);
            let b = cycles.poll(&mut stack, now);
            let c = bulk.poll(&mut stack, now);
            if !(a || b || c) {
                break;
            }
        }
        // Wake at least every 100 ms to see `stop`.
        let now = clock();
        let deadline = [slots.poll_at(), cycles.poll_at(), bulk.poll_at()]
            .into_iter()
            .flatten()
            .fold(now + Duration::from_millis(100), Instant::min);
        let interests = slots
            .interests()
            .chain(cycles.interests())
            .chain(bulk.interests());
        stack
            .wait(interests, Some(deadline), now)
            .expect("wait on the TAP");
    }
}

fn must(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_carrier() {
    let deadline = StdInstant::now() + Duration::from_secs(10);
    loop {
        let out = ip(&["-o", "link", "show", "dev", TAP]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("LOWER_UP") {
            return;
        }
        assert!(StdInstant::now() < deadline, "{TAP} has no carrier: {text}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = StdInstant::now() + limit;
    while !f() {
        assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn connect(port: u16) -> TcpStream {
    let addr = SocketAddr::from((SMOL_IP, port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn read_line_exact(s: &mut TcpStream, want: &[u8]) {
    let mut buf = vec![0u8; want.len()];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("waiting for {:?}: {e}", String::from_utf8_lossy(want)));
    assert_eq!(buf, want);
}

/// Nothing arrives within `d` (the connection is waiting, not closed).
fn assert_silent(s: &mut TcpStream, d: Duration) {
    s.set_read_timeout(Some(d)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("a waiting client was closed"),
        Ok(n) => panic!("a waiting client got {n} bytes"),
        Err(e) => panic!("a waiting client failed: {e}"),
    }
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
}

fn scenario_six_clients_on_four_slots(log: &Shared) {
    let line = |i: usize| format!("client {i}\n").into_bytes();
    let mut clients: Vec<Option<TcpStream>> = Vec::new();
    for i in 0..6 {
        let mut s = connect(PORT_SLOTS);
        s.write_all(&line(i)).unwrap();
        clients.push(Some(s));
    }
    for (i, c) in clients.iter_mut().enumerate().take(4) {
        read_line_exact(c.as_mut().unwrap(), &line(i));
    }
    // Connected (the handshake completed in the backlog), but not served.
    for c in clients.iter_mut().skip(4) {
        assert_silent(c.as_mut().unwrap(), Duration::from_millis(500));
    }
    // The 4 served clients are intact.
    for c in clients.iter_mut().take(4) {
        let c = c.as_mut().unwrap();
        c.write_all(b"again\n").unwrap();
        read_line_exact(c, b"again\n");
    }
    assert_eq!(log.lock().unwrap().opened, 4);
    assert!(
        log.lock().unwrap().closed.is_empty(),
        "nobody may be closed"
    );

    // One leaves: the 5th is served, the 6th still waits; another leaves:
    // the 6th is served.
    clients[0] = None;
    read_line_exact(clients[4].as_mut().unwrap(), &line(4));
    assert_silent(clients[5].as_mut().unwrap(), Duration::from_millis(300));
    clients[1] = None;
    read_line_exact(clients[5].as_mut().unwrap(), &line(5));
    for c in clients.iter_mut().skip(2) {
        let c = c.as_mut().unwrap();
        c.write_all(b"still here\n").unwrap();
        read_line_exact(c, b"still here\n");
    }
    drop(clients);
    wait_until("6 closes", Duration::from_secs(10), || {
        log.lock().unwrap().closed.len() == 6
    });
    let log = log.lock().unwrap();
    assert_eq!(log.opened, 6);
    assert!(
        log.closed
            .iter()
            .all(|c| c.reason == CloseReason::PeerClosed),
        "{:?}",
        log.closed
    );
    println!("TAP: 6 clients on 4 slots: 4 served, 2 waited, none evicted, served in turn");
}

fn scenario_cycles(log: &Shared) {
    let start = StdInstant::now();
    for i in 0..CYCLES {
        let mut s = connect(PORT_CYCLES);
        s.write_all(format!("{i:08}").as_bytes()).unwrap();
        drop(s);
    }
    wait_until("every cycle to be closed", Duration::from_secs(60), || {
        log.lock().unwrap().closed.len() == CYCLES
    });
    let elapsed = start.elapsed();
    let log = log.lock().unwrap();
    let got: BTreeSet<&[u8]> = log.messages.iter().map(|m| m.as_slice()).collect();
    let want: Vec<Vec<u8>> = (0..CYCLES)
        .map(|i| format!("{i:08}").into_bytes())
        .collect();
    let want: BTreeSet<&[u8]> = want.iter().map(|m| m.as_slice()).collect();
    assert_eq!(log.messages.len(), CYCLES);
    assert!(got == want, "messages lost, merged or altered");
    assert!(
        log.closed
            .iter()
            .all(|c| c.reason == CloseReason::PeerClosed)
    );
    println!(
        "TAP: {CYCLES} send-then-close cycles, nothing lost ({:.0} cycles/s)",
        CYCLES as f64 / elapsed.as_secs_f64()
    );
}

/// A pattern with a prime period, so that no segment or buffer size lines
/// up with it.
fn pattern_block(seed: u8) -> Vec<u8> {
    (0..65_521u32)
        .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

fn bulk_client(i: usize) -> usize {
    let block = Arc::new(pattern_block(i as u8));
    let mut s = connect(PORT_BULK);
    let mut w = s.try_clone().unwrap();
    let wblock = block.clone();
    let writer = thread::spawn(move || {
        let mut off = 0;
        while off < BULK_BYTES {
            let at = off % wblock.len();
            let n = (wblock.len() - at).min(BULK_BYTES - off);
            w.write_all(&wblock[at..at + n]).expect("bulk write");
            off += n;
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    loop {
        let n = s.read(&mut buf).expect("bulk read");
        if n == 0 {
            break;
        }
        for (k, &b) in buf[..n].iter().enumerate() {
            let at = (got + k) % block.len();
            assert!(b == block[at], "client {i}: byte {} differs", got + k);
        }
        got += n;
    }
    writer.join().unwrap();
    got
}

fn scenario_bulk(log: &Shared) {
    let start = StdInstant::now();
    let clients: Vec<_> = (0..BULK_CLIENTS)
        .map(|i| thread::spawn(move || bulk_client(i)))
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), BULK_BYTES, "client {i}: echo length");
    }
    let secs = start.elapsed().as_secs_f64();
    wait_until("bulk closes", Duration::from_secs(10), || {
        log.lock().unwrap().closed.len() == BULK_CLIENTS
    });
    let log = log.lock().unwrap();
    assert!(
        log.closed
            .iter()
            .all(|c| c.reason == CloseReason::PeerClosed
                && c.bytes_in == BULK_BYTES as u64
                && c.bytes_out == BULK_BYTES as u64)
    );
    let mb = (BULK_CLIENTS * BULK_BYTES) as f64 / 1e6;
    println!(
        "TAP: {BULK_CLIENTS} x {} MB echoed and verified in {secs:.2} s: {:.1} MB/s each way \
         ({:.1} MB/s through the server), {} build",
        BULK_BYTES / 1_000_000,
        mb / secs,
        2.0 * mb / secs,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

#[test]
#[ignore = "run by tap_echo_server_serves_real_linux_clients inside its namespace"]
fn inner_scenarios_in_namespace() {
    if std::env::var_os(INNER_ENV).is_none() {
        println!("{INNER_TEST}: only runs inside the namespace of the outer test");
        return;
    }
    must(&["link", "set", "lo", "up"]);
    let stop = Arc::new(AtomicBool::new(false));
    let logs: [Shared; 3] = Default::default();
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = {
        let stop = stop.clone();
        let logs = logs.clone();
        thread::spawn(move || serve(ready_tx, stop, logs))
    };
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server thread")
        .expect("server start");
    must(&["addr", "add", HOST_CIDR, "dev", TAP]);
    must(&["link", "set", TAP, "up"]);
    wait_for_carrier();

    let result = std::panic::catch_unwind(|| {
        scenario_six_clients_on_four_slots(&logs[0]);
        scenario_cycles(&logs[1]);
        scenario_bulk(&logs[2]);
    });
    stop.store(true, Ordering::Relaxed);
    let served = server.join();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    served.expect("server thread panicked");
    println!("TAP: done");
}
