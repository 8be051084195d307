//! Black-box tests over a TAP device in a network namespace: the test
//! creates the namespace, re-runs its own binary inside it (an `#[ignore]`d
//! inner test selected by name, told by an environment variable that it
//! runs inside), and deletes the namespace afterwards, even on failure.
//!
//! Needs root, `/dev/net/tun` and iproute2's `ip`. Without them the test
//! prints `SKIPPED ...` and passes, unless `CI=true`, where it fails.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Writes to the real stderr, past the test harness's output capture.
#[macro_export]
macro_rules! loud {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

/// Runs `ip ARGS` and fails the test if it fails.
pub fn must(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why a namespace test cannot run here, if it cannot.
pub fn why_not_runnable() -> Option<String> {
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

/// The test `what` cannot run: fails under `CI=true`, else says so loudly.
pub fn skip(what: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the {what} cannot run in CI: {reason}");
    }
    loud!("SKIPPED {what}: {reason}");
}

/// A network namespace, deleted on drop (with everything in it).
pub struct Netns(pub String);

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

/// What the outer test runs inside its namespace.
pub struct Inner<'a> {
    /// What the test checks, for `SKIPPED` and failure messages.
    pub what: &'a str,
    /// The namespace's name, before `-<pid>`.
    pub namespace: &'a str,
    /// The environment variable set for the inner run.
    pub env: &'a str,
    /// The inner test's name.
    pub test: &'a str,
    /// A line the inner test prints when its scenario ran to the end.
    pub done: &'a str,
    /// The whole inner run may take this long before it is killed.
    pub watchdog: Duration,
}

impl Inner<'_> {
    /// Creates the namespace, runs the inner test in it, deletes the
    /// namespace, and fails unless the inner test passed and printed
    /// `done`. Skips (see [`skip`]) when the namespace cannot be made.
    pub fn run(&self) {
        if let Some(reason) = why_not_runnable() {
            return skip(self.what, &reason);
        }
        let name = format!("{}-{}", self.namespace, std::process::id());
        let _ = ip(&["netns", "del", &name]); // left over by an earlier run with our pid
        let out = ip(&["netns", "add", &name]);
        if !out.status.success() {
            return skip(
                self.what,
                &format!(
                    "`ip netns add {name}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
        }
        let ns = Netns(name);
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(&exe)
            .args(["--exact", self.test, "--ignored", "--nocapture"])
            .env(self.env, "1")
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
        let watchdog = self.watchdog;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the inner run") {
                break Some(status);
            }
            if started.elapsed() > watchdog {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(50));
        };
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        println!("--- inner run (in namespace {}) ---\n{out}\n{err}", ns.0);
        drop(ns);
        let status = status.unwrap_or_else(|| panic!("inner run killed after {watchdog:?}"));
        assert!(
            status.success(),
            "inner run failed ({status}):\n{out}\n{err}"
        );
        assert!(
            out.contains("test result: ok. 1 passed") && out.contains(self.done),
            "the inner run did not run its scenario:\n{out}\n{err}"
        );
    }
}

/// Whether this is the inner run (the environment variable `env` is set);
/// if not, says so: the inner test only runs inside its outer test.
pub fn is_inner(env: &str, test: &str) -> bool {
    if std::env::var_os(env).is_none() {
        println!("{test}: only runs inside the namespace of the outer test");
        return false;
    }
    true
}

/// Waits until the TAP device `dev` has a carrier (the example attached).
pub fn wait_for_carrier(dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ip(&["-o", "link", "show", "dev", dev]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("LOWER_UP") {
            return;
        }
        assert!(Instant::now() < deadline, "{dev} has no carrier: {text}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Gives the kernel side of the TAP link `dev` the address `cidr`, brings
/// it up and waits for the carrier.
pub fn link_up(dev: &str, cidr: &str) {
    must(&["addr", "add", cidr, "dev", dev]);
    must(&["link", "set", dev, "up"]);
    wait_for_carrier(dev);
}
