//! Runs an example server as a child process and reads its output lines,
//! for black-box tests of the examples' command-line contract.
#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An example binary running in the background; killed on drop.
pub struct ExampleServer {
    child: Child,
    /// The address from its `listening on ADDR` line.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

/// The path of a built example (cargo builds examples beside the tests).
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example binary {} not found: run through `cargo test`",
        path.display()
    );
    path
}

impl ExampleServer {
    /// Starts example `name` with `args` and waits for `listening on`.
    pub fn start(name: &str, args: &[&str]) -> ExampleServer {
        let mut cmd = Command::new(example_path(name));
        cmd.args(args);
        Self::start_command(cmd, Duration::from_secs(20))
    }

    /// Starts `cmd` (a server with the examples' command-line contract) and
    /// waits up to `ready` for its `listening on` line.
    pub fn start_command(mut cmd: Command, ready: Duration) -> ExampleServer {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = ExampleServer {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
        };
        // Like `wait_line`, but a server that exits first fails at once.
        let end = Instant::now() + ready;
        let first = loop {
            if let Some(l) = server
                .lines()
                .into_iter()
                .find(|l| l.starts_with("listening on "))
            {
                break l;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{cmd:?} exited with {status} before `listening on`; output: {:?}",
                    server.lines()
                );
            }
            assert!(
                Instant::now() < end,
                "no `listening on` line within {ready:?}; output: {:?}",
                server.lines()
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        server.addr = first
            .trim_start_matches("listening on ")
            .parse()
            .expect("address in `listening on` line");
        server
    }

    /// All output lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The `closed ...` lines so far.
    pub fn closed_lines(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with("closed "))
            .collect()
    }

    /// Waits for a line matching `pred`, failing after `timeout`.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < end,
                "no matching line within {timeout:?}; output: {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until at least `n` `closed` lines were printed.
    pub fn wait_closed(&self, n: usize, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        loop {
            let closed = self.closed_lines();
            if closed.len() >= n {
                return closed;
            }
            assert!(
                Instant::now() < end,
                "only {} of {n} closed lines within {timeout:?}",
                closed.len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its output.
    pub fn stop(mut self) -> Vec<String> {
        // SIGTERM through the kill(1) command: no unsafe code in tests.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "server exited with {status}");
                break;
            }
            assert!(Instant::now() < end, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Let the reader thread collect the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.lines()
    }
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `key=value` out of a `closed` or `stats` line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Connects with a read timeout so no test can hang on a read.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Connects from the local address `source` (any of 127.0.0.0/8 on
/// Linux's loopback), as [`connect`] does otherwise: a client that another
/// host would be, for per-IP limits.
pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .unwrap_or_else(|e| panic!("bind the client to {source}: {e}"));
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Writes `msg` and reads exactly `msg.len()` bytes back.
pub fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).expect("write");
    let mut buf = vec![0; msg.len()];
    s.read_exact(&mut buf).expect("read echo");
    buf
}

/// True if nothing arrives on `s` within `wait` (and it is still open).
pub fn silent_for(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    let r = s.read(&mut b);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

/// Reads to end of stream; true if it ended with a clean EOF (not a reset).
pub fn read_to_eof(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let clean = s.read_to_end(&mut out).is_ok();
    (out, clean)
}

/// Raises this process's soft limit on open files to at least `n` (within
/// the hard limit; a process started afterwards inherits it), for tests
/// that hold many connections. Panics if the limit stays below `n`.
pub fn raise_open_files(n: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|soft| soft >= n) {
        return;
    }
    limit.current = Some(limit.maximum.map_or(n, |max| max.min(n)));
    let _ = setrlimit(Resource::Nofile, limit);
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|soft| soft >= n),
        "the open-file limit is {now:?}, below the {n} this test needs (raise the hard limit: ulimit -Hn)"
    );
}

/// Streams `total` bytes of `pattern` (byte `i` is `pattern(i)`) through
/// the echo server on `stream` in `chunk`-byte writes from a second thread,
/// then half-closes; reads the echo until end of stream, checking every
/// byte. Returns how many bytes came back (panics on the first wrong one).
pub fn echo_pattern(
    stream: TcpStream,
    total: usize,
    chunk: usize,
    pattern: impl Fn(usize) -> u8 + Send + Copy + 'static,
) -> usize {
    let mut w = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut buf = vec![0u8; chunk];
        let mut sent = 0;
        while sent < total {
            let n = buf.len().min(total - sent);
            for (j, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(sent + j);
            }
            w.write_all(&buf[..n]).unwrap();
            sent += n;
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut r = stream;
    let mut buf = vec![0u8; chunk];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).expect("read echo");
        if n == 0 {
            break;
        }
        for (j, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, pattern(got + j), "byte {} differs", got + j);
        }
        got += n;
    }
    writer.join().unwrap();
    got
}
