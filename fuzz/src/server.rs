//! The nb [`Server`] over the fault-injecting stack ([`FaultyStack`])
//! wrapping tcpool-core's in-memory [`MockStack`], with client actions
//! from the input.
//!
//! Clients connect, send, read, end their stream or reset; the server
//! polls; the faults (would-block, short reads and writes, errors, failed
//! accepts, socket budgets) and the configuration change; time jumps; the
//! application acts on live connections; the server shuts down and
//! listens again. The handler is the same [`Script`] as in the pool
//! target, checking each offer against what the client's sends took.
//!
//! Checked after every step: no socket leaked (the wrapper's open sockets
//! are the listener plus one per connection in a slot, and the mock
//! counts those plus its backlog); the stats add up; each client's reply
//! is a prefix of what the handler wrote for it (of the reject banner for
//! a refused one). At the end every client ends its stream, faults stop,
//! the application closes everything and time runs past every linger:
//! then nothing is left but the listener, every client that saw the
//! server's end of stream got every byte the server sent, and after a
//! shutdown no socket at all.

use core::time::Duration;
use std::net::SocketAddr;

use arbitrary::{Arbitrary, Unstructured};
use tcpool_conformance::{Faults, FaultyStack};
use tcpool_core::mock::{ClientRead, MockClient, MockConfig, MockStack};
use tcpool_core::{Instant, Server};

use crate::pool::{FuzzConfig, N, RX, TX};
use crate::script::{Behaviour, Outside, Script};

/// The port the server listens on.
const PORT: u16 = 7000;
/// Bounds the final settling.
const SETTLE_LIMIT: usize = 2_000;
/// The reject banner of [`FuzzConfig`].
const BANNER: &[u8] = b"busy\n";

type FuzzServer = Server<FaultyStack<MockStack>, Script, N, RX, TX>;

/// Fault probabilities from the input, in per mille (capped: would-blocks
/// and short transfers at 50 %, errors at 5 %).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct FuzzFaults {
    accept_would_block: u8,
    accept_error: u8,
    send_would_block: u8,
    short_write: u8,
    send_error: u8,
    receive_would_block: u8,
    short_read: u8,
    receive_error: u8,
}

impl FuzzFaults {
    fn faults(&self) -> Faults {
        let often = |p: u8| u16::from(p) * 2;
        let rare = |p: u8| u16::from(p % 51);
        Faults {
            accept_would_block: often(self.accept_would_block),
            accept_error: often(self.accept_error),
            send_would_block: often(self.send_would_block),
            short_write: often(self.short_write),
            send_error: rare(self.send_error),
            receive_would_block: often(self.receive_would_block),
            short_read: often(self.short_read),
            receive_error: rare(self.receive_error),
        }
    }
}

/// One thing that happens.
#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    /// A client connects (refused by the mock when its backlog or socket
    /// budget is full).
    Connect,
    /// A client sends what its window takes of `data`.
    Send {
        /// Picks the client.
        client: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A client reads up to `n` bytes.
    Read {
        /// Picks the client.
        client: u8,
        /// Bytes.
        n: u8,
    },
    /// A client ends its side of the stream.
    ShutdownWrite {
        /// Picks the client.
        client: u8,
    },
    /// A client resets.
    Reset {
        /// Picks the client.
        client: u8,
    },
    /// The server polls.
    Poll,
    /// Several polls.
    Polls(u8),
    /// Time moves on.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Time moves to the server's next deadline, if it is later.
    Sleep,
    /// New fault probabilities (the wrapper's RNG goes on).
    Faults(FuzzFaults),
    /// The next accepts fail.
    FailAccepts(u8),
    /// A socket budget in the wrapper (`None` lifts it).
    SocketLimit(Option<u8>),
    /// A new configuration.
    Configure(FuzzConfig),
    /// A new handler behaviour.
    Behave(Behaviour),
    /// The application closes a live connection.
    Close {
        /// Picks the connection.
        conn: u8,
    },
    /// The application aborts a live connection.
    Abort {
        /// Picks the connection.
        conn: u8,
    },
    /// The application sets (or clears) a live connection's deadline.
    Deadline {
        /// Picks the connection.
        conn: u8,
        /// Milliseconds from now; `None` clears it.
        ms: Option<u16>,
    },
    /// The application writes to a live connection.
    Write {
        /// Picks the connection.
        conn: u8,
        /// Bytes.
        n: u8,
    },
    /// The server shuts down.
    Shutdown,
    /// The server listens again (if it is not listening).
    Listen,
}

/// The whole input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// The fault RNG's seed.
    pub seed: u64,
    /// The mock's window per direction (4 + this).
    pub window: u8,
    /// The mock's socket budget (2 + this % 16; listener and backlog
    /// included).
    pub max_sockets: u8,
    /// Faults at start.
    pub faults: FuzzFaults,
    /// The configuration at start.
    pub config: FuzzConfig,
    /// The handler's behaviour at start.
    pub behaviour: Behaviour,
    /// At the end, whether clients stop reading.
    pub end_blocked: bool,
    /// What happens.
    pub steps: Vec<Step>,
}

struct Client {
    client: MockClient,
    addr: SocketAddr,
    got: Vec<u8>,
    eof: bool,
    reset_seen: bool,
    shut: bool,
    reset: bool,
}

struct Driver {
    server: FuzzServer,
    stack: FaultyStack<MockStack>,
    mock: MockStack,
    clients: Vec<Client>,
    now: Instant,
}

/// Runs one input; panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    run_input(&input);
}

/// Runs a decoded input.
pub fn run_input(input: &Input) {
    let mock = MockStack::with_config(MockConfig {
        max_sockets: 2 + usize::from(input.max_sockets % 16),
        backlog: 4,
        window: 4 + usize::from(input.window),
    });
    let stack = FaultyStack::new(mock.clone(), input.seed, input.faults.faults());
    let server = Server::new(Script::new(input.behaviour), input.config.config());
    let mut d = Driver {
        server,
        stack,
        mock,
        clients: Vec::new(),
        now: Instant::ZERO,
    };
    d.server
        .listen(&mut d.stack, PORT)
        .expect("a fresh stack listens");
    for step in &input.steps {
        d.step(step);
        d.check();
    }
    d.finish(input.end_blocked);
}

impl Driver {
    fn pick(&self, n: u8) -> Option<usize> {
        (!self.clients.is_empty()).then(|| usize::from(n) % self.clients.len())
    }

    fn pick_conn(&self, n: u8) -> Option<tcpool_core::ConnId> {
        let live = self.server.handler().live();
        (!live.is_empty()).then(|| live[usize::from(n) % live.len()])
    }

    /// Does `op` to the live connection `conn` picks, if any, from outside
    /// the callbacks (the script is taken out of the server for the call).
    fn outside(&mut self, conn: u8, now: Instant, op: Outside) {
        let Some(id) = self.pick_conn(conn) else {
            return;
        };
        let mut script = core::mem::take(self.server.handler_mut());
        self.server.with_conn(id, now, |c, _| script.outside(c, op));
        *self.server.handler_mut() = script;
    }

    /// One read of up to `n` bytes by client `c`; true if it got data.
    fn read(&mut self, c: usize, n: usize) -> bool {
        let mut buf = [0u8; 256];
        let c = &mut self.clients[c];
        match c.client.recv(&mut buf[..n.clamp(1, 256)]) {
            ClientRead::Data(k) => {
                c.got.extend_from_slice(&buf[..k]);
                return true;
            }
            ClientRead::WouldBlock => {}
            ClientRead::Eof => c.eof = true,
            ClientRead::Reset => c.reset_seen = true,
        }
        false
    }

    fn step(&mut self, step: &Step) {
        let now = self.now;
        match step {
            Step::Connect => {
                if let Ok(client) = self.mock.connect_client(PORT) {
                    let addr = client.local_addr();
                    self.clients.push(Client {
                        client,
                        addr,
                        got: Vec::new(),
                        eof: false,
                        reset_seen: false,
                        shut: false,
                        reset: false,
                    });
                }
            }
            Step::Send { client, data } => {
                if let Some(c) = self.pick(*client) {
                    let c = &self.clients[c];
                    let n = c.client.send(data);
                    assert!(n == 0 || (!c.shut && !c.reset));
                    let addr = c.addr;
                    self.server.handler_mut().peer_sent(addr, &data[..n], false);
                }
            }
            Step::Read { client, n } => {
                if let Some(c) = self.pick(*client) {
                    let _ = self.read(c, usize::from(*n));
                }
            }
            Step::ShutdownWrite { client } => {
                if let Some(c) = self.pick(*client) {
                    self.clients[c].client.shutdown_write();
                    self.clients[c].shut = true;
                }
            }
            Step::Reset { client } => {
                if let Some(c) = self.pick(*client) {
                    self.clients[c].client.reset();
                    self.clients[c].reset = true;
                }
            }
            Step::Poll => {
                self.server.poll(&mut self.stack, now);
            }
            Step::Polls(n) => {
                for _ in 0..n % 8 {
                    self.server.poll(&mut self.stack, now);
                }
            }
            Step::Advance { ms } => self.now = now + Duration::from_millis(u64::from(*ms)),
            Step::Sleep => {
                if let Some(t) = self.server.poll_at() {
                    self.now = self.now.max(t);
                }
            }
            Step::Faults(f) => self.stack.set_faults(f.faults()),
            Step::FailAccepts(n) => self.stack.fail_next_accepts(usize::from(n % 4)),
            Step::SocketLimit(limit) => self.stack.set_socket_limit(limit.map(usize::from)),
            Step::Configure(c) => self.server.set_config(c.config()),
            Step::Behave(b) => self.server.handler_mut().behaviour = *b,
            Step::Close { conn } => self.outside(*conn, now, Outside::Close),
            Step::Abort { conn } => self.outside(*conn, now, Outside::Abort),
            Step::Deadline { conn, ms } => self.outside(*conn, now, Outside::Deadline(*ms)),
            Step::Write { conn, n } => self.outside(*conn, now, Outside::Write(*n)),
            Step::Shutdown => {
                self.server.shutdown(&mut self.stack, now);
                assert_eq!(self.server.active(), 0, "connections left after a shutdown");
            }
            Step::Listen => {
                if self.server.listener().is_none() {
                    // May fail (out of sockets): then it is not listening.
                    let _ = self.server.listen(&mut self.stack, PORT);
                }
            }
        }
    }

    /// The invariants that hold between steps.
    fn check(&self) {
        let stats = self.server.stats();
        let script = self.server.handler();
        assert_eq!(
            stats.accepted,
            stats.closed.total() + stats.active,
            "accepted != closed + active: {stats:?}"
        );
        let occupied = self
            .server
            .slot_states()
            .filter(|s| *s != tcpool_core::SlotState::Free)
            .count();
        assert_eq!(self.server.active(), occupied, "active vs slots in use");
        assert_eq!(
            script.opened(),
            stats.accepted as usize,
            "on_open vs accepted"
        );
        assert_eq!(
            script.closed(),
            stats.closed.total() as usize,
            "on_closed vs closed"
        );
        // No socket leaked.
        let listening = usize::from(self.server.listener().is_some());
        assert_eq!(
            self.stack.open_sockets(),
            listening + self.server.active(),
            "open sockets vs listener + connections"
        );
        assert_eq!(
            self.mock.sockets_in_use(),
            self.stack.open_sockets() + self.mock.backlog_len(PORT),
            "the mock's sockets vs the wrapper's and the backlog"
        );
        // What each client got is what the handler wrote for it.
        for c in &self.clients {
            match script.peer(c.addr).filter(|r| r.id.is_some()) {
                Some(rec) => assert!(
                    rec.written.starts_with(&c.got),
                    "{}: got {} bytes that are not a prefix of the {} written",
                    c.addr,
                    c.got.len(),
                    rec.written.len()
                ),
                None => assert!(BANNER.starts_with(&c.got), "{}: got {:?}", c.addr, c.got),
            }
        }
        let bytes_in: u64 = script
            .peers()
            .filter_map(|(_, r)| r.closed)
            .map(|c| c.bytes_in)
            .sum();
        assert!(stats.bytes_in >= bytes_in);
    }

    fn settled(&self) -> bool {
        self.server.active() == 0 && self.mock.backlog_len(PORT) == 0
    }

    fn finish(&mut self, blocked: bool) {
        self.stack.set_faults(Faults::NONE);
        self.stack.fail_next_accepts(0);
        self.stack.set_socket_limit(None);
        self.mock.set_max_sockets(usize::MAX);
        self.server.handler_mut().finishing = true;
        for c in &mut self.clients {
            c.client.shutdown_write();
            c.shut = true;
        }
        if self.server.listener().is_none() {
            self.server
                .listen(&mut self.stack, PORT)
                .expect("listening again with faults off");
        }
        let mut stalls = 0;
        for _ in 0..SETTLE_LIMIT {
            let now = self.now;
            for id in self.server.handler().live() {
                self.server.with_conn(id, now, |c, _| c.close());
            }
            if !blocked {
                for c in 0..self.clients.len() {
                    while self.read(c, 256) {}
                }
            }
            let progressed = self.server.poll(&mut self.stack, now);
            self.check();
            if progressed {
                stalls = 0;
                continue;
            }
            match self.server.poll_at() {
                None if self.settled() => break,
                Some(t) if t > now => self.now = t,
                next => {
                    stalls += 1;
                    assert!(
                        stalls < 3,
                        "nothing moves and nothing is due (poll_at {next:?} at {now:?}), \
                         yet {} connections and {} in the backlog are left",
                        self.server.active(),
                        self.mock.backlog_len(PORT),
                    );
                }
            }
        }
        assert!(self.settled(), "did not settle");
        assert_eq!(self.stack.open_sockets(), 1, "only the listener is left");
        assert_eq!(self.mock.sockets_in_use(), 1, "only the listener is left");
        let script = self.server.handler();
        assert_eq!(script.opened(), script.closed(), "on_open vs on_closed");
        let stats = *self.server.stats();
        let (mut bytes_in, mut bytes_out) = (0, 0);
        for (addr, rec) in script.peers() {
            if rec.id.is_none() {
                continue;
            }
            let closed = rec.closed.unwrap_or_else(|| panic!("{addr}: never closed"));
            bytes_in += closed.bytes_in;
            bytes_out += closed.bytes_out;
        }
        assert_eq!(stats.bytes_in, bytes_in, "bytes in vs the connections'");
        assert_eq!(stats.bytes_out, bytes_out, "bytes out vs the connections'");
        for c in &self.clients {
            let Some(rec) = script.peer(c.addr).filter(|r| r.id.is_some()) else {
                continue;
            };
            if c.eof && !c.reset {
                // A clean end of stream (the client did not reset):
                // every byte the server sent arrived.
                let closed = rec.closed.expect("closed above");
                assert_eq!(
                    c.got.len() as u64,
                    closed.bytes_out,
                    "{}: end of stream after {} of {} bytes",
                    c.addr,
                    c.got.len(),
                    closed.bytes_out
                );
            }
        }
        self.server.shutdown(&mut self.stack, self.now);
        assert_eq!(self.stack.open_sockets(), 0, "sockets left after shutdown");
        assert_eq!(self.mock.sockets_in_use(), 0, "sockets left after shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faulty_echo_session_runs_clean() {
        let faults = FuzzFaults {
            accept_would_block: 100,
            accept_error: 50,
            send_would_block: 100,
            short_write: 200,
            send_error: 0,
            receive_would_block: 100,
            short_read: 200,
            receive_error: 0,
        };
        let mut steps = vec![Step::Connect, Step::Connect];
        for i in 0..40u8 {
            steps.push(Step::Send {
                client: i,
                data: vec![i; usize::from(i)],
            });
            steps.push(Step::Poll);
            steps.push(Step::Read { client: i, n: 7 });
        }
        steps.push(Step::ShutdownWrite { client: 0 });
        steps.push(Step::Reset { client: 1 });
        run_input(&Input {
            seed: 3,
            window: 16,
            max_sockets: 8,
            faults,
            config: crate::pool::tests::config(),
            behaviour: Behaviour::default(),
            end_blocked: false,
            steps,
        });
    }
}
