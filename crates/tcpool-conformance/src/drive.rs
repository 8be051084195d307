//! Bounded waiting and client-side helpers the scenarios are written with.
//!
//! Nothing here blocks: every loop steps the harness and gives up with a
//! message naming what it waited for, the backend and the server's state
//! once the harness's [`Patience`] runs out.

use std::io::Write as _;
use std::string::String;
use std::vec::Vec;

use tcpool_core::{Config, Handler, Instant, Server};

use crate::handlers::Recorder;
use crate::harness::{ClientError, Drive, Harness, Patience, Recv, Unsupported};
use crate::kind::{Kind, RecDrive};

/// Writes a line to the real standard error, bypassing the test harness's
/// output capture, so it shows even for passing tests (skips, reduced
/// sizes).
pub fn loud(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Prints `SKIPPED <scenario> on <backend>: <reason>` (loudly).
pub fn skipped<H: Harness>(scenario: &str, why: &Unsupported) {
    loud(&format!("SKIPPED {scenario} on {}: {why}", H::BACKEND));
}

/// Prints `NOTE <scenario> on <backend>: <what>` (loudly).
pub fn note<H: Harness>(scenario: &str, what: &str) {
    loud(&format!("NOTE {scenario} on {}: {what}", H::BACKEND));
}

/// A bound on one wait: fails the scenario after `Patience::idle_steps`
/// steps without [`progress`](Bound::progress) or `Patience::wall` of real
/// time.
#[derive(Debug)]
pub struct Bound {
    what: String,
    backend: &'static str,
    patience: Patience,
    started: std::time::Instant,
    start_now: Instant,
    idle: u64,
    steps: u64,
}

impl Bound {
    /// Starts a bound for waiting on `what`.
    pub fn new<H: Harness>(h: &H, what: impl Into<String>) -> Self {
        Bound {
            what: what.into(),
            backend: H::BACKEND,
            patience: h.patience(),
            started: std::time::Instant::now(),
            start_now: h.now(),
            idle: 0,
            steps: 0,
        }
    }

    /// Something moved: the idle-step count starts again.
    pub fn progress(&mut self) {
        self.idle = 0;
    }

    /// Counts one step; panics with a description of the wait and of
    /// `server` once the patience is spent.
    pub fn tick<H: Harness>(&mut self, h: &H, server: &dyn Drive<H::Stack>) {
        self.steps += 1;
        self.idle += 1;
        let elapsed = self.started.elapsed();
        if self.idle > self.patience.idle_steps || elapsed > self.patience.wall {
            panic!(
                "[{}] gave up waiting for {}: {} steps ({} without progress), {:?} of wall time, \
                 clock {} -> {}; server: {}",
                self.backend,
                self.what,
                self.steps,
                self.idle,
                elapsed,
                self.start_now,
                h.now(),
                server.describe()
            );
        }
    }
}

/// Steps until `done` holds, within the harness's patience.
pub fn wait_for<H, D>(
    h: &mut H,
    server: &mut D,
    what: &str,
    mut done: impl FnMut(&mut H, &mut D) -> bool,
) where
    H: Harness,
    D: Drive<H::Stack>,
{
    let mut bound = Bound::new(h, what);
    while !done(h, server) {
        h.step(server);
        bound.tick(h, server);
    }
}

/// Starts a server listening where the harness says, and tells the harness
/// its address.
pub fn serve<H, Hd, const N: usize, const RX: usize, const TX: usize>(
    h: &mut H,
    handler: Hd,
    config: Config,
) -> Server<H::Stack, Hd, N, RX, TX>
where
    H: Harness,
    Hd: Handler,
{
    let mut server = Server::new(handler, config);
    let port = h.listen_port();
    if let Err(e) = server.listen(h.stack(), port) {
        panic!("[{}] listen on port {port} failed: {e:?}", H::BACKEND);
    }
    let listener = server.listener().expect("listening");
    h.listening(listener);
    server
}

/// Starts a server of handler kind `K` serving `recorder`'s mode, listening
/// where the harness says, and tells the harness its address.
pub fn start<H, K, const N: usize, const RX: usize, const TX: usize>(
    h: &mut H,
    recorder: Recorder,
    config: Config,
) -> K::Server<N, RX, TX>
where
    H: Harness,
    K: Kind<H::Stack>,
{
    let port = h.listen_port();
    start_on::<H, K, N, RX, TX>(h, recorder, config, port)
}

/// [`start`] on a given port (a restarted server rebinding its port).
pub fn start_on<H, K, const N: usize, const RX: usize, const TX: usize>(
    h: &mut H,
    recorder: Recorder,
    config: Config,
    port: u16,
) -> K::Server<N, RX, TX>
where
    H: Harness,
    K: Kind<H::Stack>,
{
    let mut server = K::server::<N, RX, TX>(recorder, config);
    if let Err(e) = server.listen(h.stack(), port) {
        panic!(
            "[{}] {} server: listen on port {port} failed: {e:?}",
            H::BACKEND,
            K::NAME
        );
    }
    let listener = server.listener().expect("listening");
    h.listening(listener);
    server
}

/// One client connection and what it has read so far.
pub struct Peer<H: Harness> {
    /// The connection (`None` once closed or reset by the scenario).
    pub client: Option<H::Client>,
    /// A name for messages (`client 3`).
    pub name: String,
    /// Everything read, if [`keep`](Peer::keep) (otherwise only counted).
    pub got: Vec<u8>,
    /// Bytes read in total.
    pub received: u64,
    /// Bytes the client's side accepted for sending.
    pub sent: u64,
    /// Keep what is read in [`got`](Peer::got).
    pub keep: bool,
    /// The server's end of stream was read.
    pub eof: bool,
    /// The connection was reset.
    pub reset: bool,
}

impl<H: Harness> Peer<H> {
    /// Connects a client, retrying (with steps) while the attempt is refused.
    pub fn connect<D: Drive<H::Stack>>(h: &mut H, server: &mut D, name: impl Into<String>) -> Self {
        let name = name.into();
        let mut bound = Bound::new(h, format!("{name} to connect"));
        loop {
            match h.connect() {
                Ok(client) => return Self::from_client(client, name),
                Err(ClientError::Refused(_)) => {
                    h.step(server);
                    bound.tick(h, server);
                }
                Err(e) => panic!("[{}] {name}: connect failed: {e}", H::BACKEND),
            }
        }
    }

    /// Wraps a connection made with [`Harness::connect`].
    pub fn from_client(client: H::Client, name: impl Into<String>) -> Self {
        Peer {
            client: Some(client),
            name: name.into(),
            got: Vec::new(),
            received: 0,
            sent: 0,
            keep: true,
            eof: false,
            reset: false,
        }
    }

    fn client(&mut self) -> &mut H::Client {
        match self.client.as_mut() {
            Some(c) => c,
            None => panic!("{} is closed", self.name),
        }
    }

    /// True once the server's end of stream or a reset was seen.
    pub fn ended(&self) -> bool {
        self.eof || self.reset
    }

    /// Reads what has arrived (up to `limit` bytes); true if anything was
    /// read or the stream ended.
    pub fn pump_up_to(&mut self, h: &mut H, limit: usize) -> bool {
        if self.ended() || self.client.is_none() {
            return false;
        }
        let mut buf = [0u8; 16 * 1024];
        let mut moved = false;
        let mut left = limit;
        while left > 0 {
            let want = left.min(buf.len());
            let client = self.client.as_mut().expect("checked");
            match h.recv(client, &mut buf[..want]) {
                Recv::Data(n) => {
                    assert!(n <= want && n > 0, "recv returned {n} for {want}");
                    if self.keep {
                        self.got.extend_from_slice(&buf[..n]);
                    }
                    self.received += n as u64;
                    left -= n;
                    moved = true;
                }
                Recv::WouldBlock => break,
                Recv::Eof => {
                    self.eof = true;
                    return true;
                }
                Recv::Reset => {
                    self.reset = true;
                    return true;
                }
            }
        }
        moved
    }

    /// Reads everything that has arrived.
    pub fn pump(&mut self, h: &mut H) -> bool {
        self.pump_up_to(h, usize::MAX)
    }

    /// Sends what the client takes now; panics on a reset.
    pub fn try_send(&mut self, h: &mut H, data: &[u8]) -> usize {
        let name = self.name.clone();
        match h.send(self.client(), data) {
            Ok(n) => {
                self.sent += n as u64;
                n
            }
            Err(e) => panic!("[{}] {name}: send failed: {e}", H::BACKEND),
        }
    }

    /// Sends all of `data`, stepping while the client's side is full (and
    /// reading meanwhile, so an echo cannot deadlock).
    pub fn send_all<D: Drive<H::Stack>>(&mut self, h: &mut H, server: &mut D, data: &[u8]) {
        let mut bound = Bound::new(h, format!("{} to send {} bytes", self.name, data.len()));
        let mut off = 0;
        while off < data.len() {
            let n = self.try_send(h, &data[off..]);
            off += n;
            let read = self.pump(h);
            if n > 0 || read {
                bound.progress();
            }
            if off < data.len() {
                h.step(server);
                bound.tick(h, server);
            }
        }
    }

    /// Steps until at least `n` bytes in total have been read.
    pub fn wait_bytes<D: Drive<H::Stack>>(&mut self, h: &mut H, server: &mut D, n: u64) {
        let mut bound = Bound::new(h, format!("{} to read {n} bytes", self.name));
        loop {
            if self.pump(h) {
                bound.progress();
            }
            if self.received >= n {
                return;
            }
            assert!(
                !self.ended(),
                "[{}] {}: the stream ended (eof={}, reset={}) after {} of {n} bytes",
                H::BACKEND,
                self.name,
                self.eof,
                self.reset,
                self.received
            );
            h.step(server);
            bound.tick(h, server);
        }
    }

    /// Steps until the server's end of stream or a reset is seen.
    pub fn wait_end<D: Drive<H::Stack>>(&mut self, h: &mut H, server: &mut D) {
        let mut bound = Bound::new(h, format!("{} to see the connection end", self.name));
        loop {
            if self.pump(h) {
                bound.progress();
            }
            if self.ended() {
                return;
            }
            h.step(server);
            bound.tick(h, server);
        }
    }

    /// Ends the client's sending side.
    pub fn shutdown_write(&mut self, h: &mut H) {
        let client = self.client();
        h.shutdown_write(client);
    }

    /// Closes the client normally.
    pub fn close(&mut self, h: &mut H) {
        if let Some(c) = self.client.take() {
            h.close(c);
        }
    }

    /// Resets the connection.
    pub fn reset(&mut self, h: &mut H) {
        if let Some(c) = self.client.take() {
            h.reset(c);
        }
    }

    /// The client's address (the peer address the server records).
    pub fn addr(&mut self, h: &mut H) -> std::net::SocketAddr {
        let client = self.client();
        h.client_addr(client)
    }
}
