//! Black-box test of the smoltcp TAP example (`smoltcp_tap_echo`, feature
//! `tap`): the real binary, real Linux clients, the echo example's
//! command-line contract (`listening on ADDR`, `closed ...`, `stats ...`,
//! the pool flags).
//!
//! Needs root, `/dev/net/tun` and iproute2's `ip`: the test creates a
//! network namespace (`tcpool-ex-<pid>`, deleted afterwards, even on
//! failure) and re-runs its own binary inside it to execute
//! `inner_example_in_namespace`, which starts the example on a TAP device
//! there, gives the kernel side of the link an address and talks to the
//! example with `std::net` clients. No traffic leaves the namespace.
//! Without root, `/dev/net/tun` or `ip` the test prints `SKIPPED ...` and
//! passes, unless `CI=true`, where it fails.
//!
//! The example binary must be built first (`cargo test` alone does not
//! build examples when a test is named):
//!
//! ```sh
//! cargo build --features tap --example smoltcp_tap_echo
//! cargo test --features tap --test blackbox_tap
//! ```

mod support;

use std::io::{Read, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{ExampleServer, connect, field, read_to_eof, round_trip};

const INNER_ENV: &str = "TCPOOL_TAP_EXAMPLE_INNER";
const INNER_TEST: &str = "inner_example_in_namespace";
const TAP: &str = "tcpt0";
const HOST_CIDR: &str = "10.123.0.1/24";
/// The whole inner run may take this long before it is killed.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Writes to the real stderr, past the test harness's output capture.
macro_rules! loud {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------ outside

fn why_not_runnable() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2));
    match euid {
        Some("0") => {}
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
        panic!("the smoltcp TAP example test cannot run in CI: {reason}");
    }
    loud!("SKIPPED smoltcp TAP example test: {reason}");
}

/// A network namespace, deleted on drop (with everything in it).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let out = ip(&["netns", "del", &self.0]);
        if !out.status.success() {
            loud!(
                "warning: could not delete network namespace {}: {}",
                self.0,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

#[test]
fn tap_example_serves_real_linux_clients_with_the_echo_contract() {
    if let Some(reason) = why_not_runnable() {
        return skip(&reason);
    }
    let name = format!("tcpool-ex-{}", std::process::id());
    let _ = ip(&["netns", "del", &name]); // left over by an earlier run with our pid
    let out = ip(&["netns", "add", &name]);
    if !out.status.success() {
        return skip(&format!(
            "`ip netns add {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let ns = Netns(name);
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&exe)
        .args(["--exact", INNER_TEST, "--ignored", "--nocapture"])
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
    let started = Instant::now();
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
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    println!("--- inner run (in namespace {}) ---\n{out}\n{err}", ns.0);
    drop(ns);
    let status = status.unwrap_or_else(|| panic!("inner run killed after {WATCHDOG:?}"));
    assert!(
        status.success(),
        "inner run failed ({status}):\n{out}\n{err}"
    );
    assert!(
        out.contains("test result: ok. 1 passed") && out.contains("TAP example: done"),
        "the inner run did not run its scenario:\n{out}\n{err}"
    );
}

// ------------------------------------------------------------------- inside

fn wait_for_carrier() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ip(&["-o", "link", "show", "dev", TAP]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("LOWER_UP") {
            return;
        }
        assert!(Instant::now() < deadline, "{TAP} has no carrier: {text}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "run by tap_example_serves_real_linux_clients_with_the_echo_contract inside its namespace"]
fn inner_example_in_namespace() {
    if std::env::var_os(INNER_ENV).is_none() {
        println!("{INNER_TEST}: only runs inside the namespace of the outer test");
        return;
    }
    let server = ExampleServer::start(
        "smoltcp_tap_echo",
        &[
            "--tap",
            TAP,
            "--ip",
            "10.123.0.2/24",
            "--listen-port",
            "7000",
            "--max-connections",
            "2",
            "--max-per-ip",
            "1",
        ],
    );
    assert_eq!(server.addr, SocketAddr::from(([10, 123, 0, 2], 7000)));
    must(&["addr", "add", HOST_CIDR, "dev", TAP]);
    must(&["link", "set", TAP, "up"]);
    wait_for_carrier();

    let mut first = connect(server.addr);
    assert_eq!(round_trip(&mut first, b"hello tap\n"), b"hello tap\n");
    // All clients come from 10.123.0.1: a second one is over --max-per-ip.
    let mut second = connect(server.addr);
    let (got, clean) = read_to_eof(&mut second);
    assert!(clean, "the refused client must see a clean close");
    assert!(
        got.is_empty() || got == b"busy\n",
        "a refused client gets nothing but the banner: {got:?}"
    );
    assert_eq!(round_trip(&mut first, b"still here\n"), b"still here\n");
    first.shutdown(Shutdown::Write).unwrap();
    let (rest, clean) = read_to_eof(&mut first);
    assert!(clean && rest.is_empty(), "{rest:?}");

    let closed = server.wait_closed(1, Duration::from_secs(10));
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(field(&closed[0], "reason"), Some("peer_closed"));
    assert_eq!(field(&closed[0], "rx"), Some("21"));
    assert_eq!(field(&closed[0], "tx"), Some("21"));
    assert!(field(&closed[0], "id").is_some() && field(&closed[0], "peer").is_some());

    let lines = server.stop();
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .expect("stats line");
    for (key, want) in [
        ("accepted", Some("1")),
        ("refused", Some("1")),
        ("evicted", Some("0")),
        ("bytes_in", Some("21")),
        ("bytes_out", Some("21")),
        ("peak_active", Some("1")),
        ("closed", Some("peer_closed:1")),
    ] {
        assert_eq!(field(stats, key), want, "{key} in {stats}");
    }
    for key in ["deferred", "accept_errors"] {
        assert!(field(stats, key).is_some(), "{key} missing from {stats}");
    }
    println!("TAP example: done");
}
