//! The shared conformance suite on embassy-net, with both handler kinds
//! (modules `embassy` and `embassy_async`): the server's `Pool` on one
//! embassy-net stack, clients as sockets of a second `Pool` on another,
//! joined by an in-memory wire (`tcpool_embassy::sim`), on embassy-time's
//! mock clock advancing 1 ms per step.
//!
//! The server is polled as tcpool's async driver (`asynch::run`) polls it:
//! the harness hands the stack a waker (`AsyncBackend::register_waker`),
//! polls it and lets the backend work (`poll_backend`), and polls again only
//! when that waker was woken by a socket or a deadline (the server's
//! `poll_at`, the backend's own) has come. A server or backend that forgets
//! to register for a wake-up stalls the scenario.
//!
//! The server stack is wrapped in a `FaultyStack` with no random faults,
//! for `stack_out_of_sockets_accept_fails_and_recovers` (see
//! [`EmbassyHarness::exhaust_sockets`]).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use embedded_nal::TcpClientStack;
use support::{Flag, SERVER_IP, Task};
use tcpool_conformance::{
    ClientError, Drive, Faults, FaultyStack, Harness, Patience, Recv, Unsupported,
};
use tcpool_core::{AsyncBackend, Instant};
use tcpool_embassy::sim::Wire;
use tcpool_embassy::{Config, ListenConfig, Pool, PoolStack, SynHold, TcpHandle, TcpState};

/// Server sockets: the largest scenario pool (8), its backlog, and
/// connections finishing their close.
const SERVER_SOCKETS: usize = 48;
/// Client sockets: the burst scenario's clients, with room for closing ones.
const CLIENT_SOCKETS: usize = 96;
const LISTEN: ListenConfig = ListenConfig::new(2, 4);
const PORT: u16 = 7000;
const SERVER_BUFFERS: (usize, usize) = (16 * 1024, 16 * 1024);
const CLIENT_BUFFERS: (usize, usize) = (16 * 1024, 16 * 1024);

type Stack = FaultyStack<PoolStack<'static, 'static, SERVER_SOCKETS>>;

fn server_config() -> Config {
    Config {
        listen: LISTEN,
        ..Config::new()
    }
}

/// Clients give up a connect after 120 s, as Linux does (6 SYN
/// retransmissions): a SYN held by a full port is retried, not abandoned.
fn client_config() -> Config {
    Config {
        handshake_timeout: Duration::from_secs(120),
        ..Config::new()
    }
}

struct EmbassyHarness {
    _clock: MutexGuard<'static, ()>,
    wire: Wire,
    stack: Option<Stack>,
    server_runner: Task<'static>,
    client: PoolStack<'static, 'static, CLIENT_SOCKETS>,
    client_runner: Task<'static>,
    /// The waker the server's stack registers: woken by a socket.
    flag: Arc<Flag>,
    waker: Waker,
    /// The backend's own next deadline (`poll_backend`).
    backend_at: Option<Instant>,
    now: Instant,
    listening: bool,
    restarts: u64,
}

struct EmbassyClient {
    sock: TcpHandle,
    established: bool,
    shut: bool,
}

fn new_server(wire: &Wire, seed: u64) -> (Stack, Task<'static>) {
    let (stack, runner, hold) = support::server_stack::<SERVER_SOCKETS>(wire, seed);
    let pool: &'static Pool<'static, SERVER_SOCKETS> =
        support::leak_pool(stack, hold, SERVER_BUFFERS, server_config());
    (FaultyStack::new(pool.stack(), 0, Faults::NONE), runner)
}

impl EmbassyHarness {
    fn server(&self) -> &PoolStack<'static, 'static, SERVER_SOCKETS> {
        self.stack.as_ref().expect("stack").inner()
    }

    fn client_pool(&self) -> &'static Pool<'static, CLIENT_SOCKETS> {
        self.client.pool()
    }

    /// Polls the server as the async driver would: with its waker handed
    /// to the stack, followed by the backend's own work (which sees the
    /// closes of the server's round), and with its interests registered
    /// afterwards.
    fn poll_server(&mut self, server: &mut dyn Drive<Stack>) {
        let now = self.now;
        let stack = self.stack.as_mut().expect("stack");
        stack.inner_mut().register_waker(&self.waker);
        server.poll(stack, now);
        self.backend_at = stack.inner_mut().poll_backend(now);
        let mut ready = false;
        for (socket, interest) in server.interests() {
            ready |= stack.inner_mut().register_interest(socket, interest);
        }
        if ready {
            self.flag.set();
        }
    }

    /// The server's waker was woken, or a deadline has come.
    fn server_wants_poll(&self, server: &dyn Drive<Stack>) -> bool {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= self.now);
        self.flag.take() || due(server.poll_at()) || due(self.backend_at)
    }

    fn establish(&mut self, c: &mut EmbassyClient) -> Result<bool, ClientError> {
        if c.established {
            return Ok(true);
        }
        let addr = SocketAddr::from((SERVER_IP, PORT));
        match self.client.connect(&mut c.sock, addr) {
            Ok(()) => {
                c.established = true;
                Ok(true)
            }
            Err(nb::Error::WouldBlock) => Ok(false),
            Err(nb::Error::Other(_)) => Err(ClientError::Reset),
        }
    }
}

impl Harness for EmbassyHarness {
    type Stack = Stack;
    type Client = EmbassyClient;

    const BACKEND: &'static str = "embassy";

    fn new() -> Self {
        let clock = support::lock_clock();
        let wire = Wire::new();
        let (stack, server_runner) = new_server(&wire, 0x5eed);
        let (cstack, client_runner, chold) = support::client_stack::<CLIENT_SOCKETS>(&wire, 0xc11e);
        let client_pool: &'static Pool<'static, CLIENT_SOCKETS> =
            support::leak_pool(cstack, chold, CLIENT_BUFFERS, client_config());
        let (flag, waker) = Flag::new();
        EmbassyHarness {
            _clock: clock,
            wire,
            stack: Some(stack),
            server_runner,
            client: client_pool.stack(),
            client_runner,
            flag,
            waker,
            backend_at: None,
            now: Instant::ZERO,
            listening: false,
            restarts: 0,
        }
    }

    fn stack(&mut self) -> &mut Stack {
        self.stack.as_mut().expect("stack")
    }

    fn listen_port(&self) -> u16 {
        PORT
    }

    fn listening(&mut self, _listener: &TcpHandle) {
        self.listening = true;
        // Listening armed sockets: let the backend register for them.
        self.flag.set();
    }

    fn server_port(&self) -> u16 {
        PORT
    }

    fn now(&self) -> Instant {
        self.now
    }

    /// One millisecond: the runners and the server take turns (as tasks of
    /// one executor do: the server runs between two polls of its runner when
    /// a socket woke it) until the wire is quiet and the server has no
    /// reason to run.
    fn step(&mut self, server: &mut dyn Drive<Stack>) {
        self.now = self.now + Duration::from_millis(1);
        support::advance_ms(1);
        assert_eq!(support::now_ms(), self.now.as_millis(), "clocks agree");
        let mut polls = 0;
        for _ in 0..10_000 {
            let before = self.wire.frames();
            self.server_runner.poll();
            if self.server_wants_poll(server) {
                self.poll_server(server);
                polls += 1;
            }
            self.client_runner.poll();
            self.client.poll_backend(self.now);
            let quiet = self.wire.frames() == before && self.wire.in_flight() == 0;
            if quiet && !self.server_wants_poll(server) {
                return;
            }
            if !quiet {
                continue;
            }
            // Quiet wire but the server wants to run: it runs next turn.
            self.flag.set();
            if polls > 1_000 {
                break;
            }
        }
        panic!(
            "[embassy] the server stayed ready (woken or deadline due) for {polls} polls at {}: {}",
            self.now,
            server.describe()
        );
    }

    fn patience(&self) -> Patience {
        Patience {
            idle_steps: 100_000,
            wall: Duration::from_secs(180),
        }
    }

    fn connect(&mut self) -> Result<EmbassyClient, ClientError> {
        let mut sock = self
            .client
            .socket()
            .map_err(|e| ClientError::Refused(format!("client stack: {e}")))?;
        let addr = SocketAddr::from((SERVER_IP, PORT));
        match self.client.connect(&mut sock, addr) {
            Ok(()) | Err(nb::Error::WouldBlock) => Ok(EmbassyClient {
                sock,
                established: false,
                shut: false,
            }),
            Err(nb::Error::Other(e)) => {
                let _ = self.client.close(sock);
                Err(ClientError::Refused(e.to_string()))
            }
        }
    }

    fn send(&mut self, client: &mut EmbassyClient, data: &[u8]) -> Result<usize, ClientError> {
        if client.shut {
            return Err(ClientError::Closed);
        }
        if !self.establish(client)? {
            return Ok(0);
        }
        match self.client.send(&mut client.sock, data) {
            Ok(n) => Ok(n),
            Err(nb::Error::WouldBlock) => Ok(0),
            Err(nb::Error::Other(_)) => Err(ClientError::Reset),
        }
    }

    fn recv(&mut self, client: &mut EmbassyClient, buf: &mut [u8]) -> Recv {
        match self.establish(client) {
            Ok(true) => {}
            Ok(false) => return Recv::WouldBlock,
            Err(_) => return Recv::Reset,
        }
        match self.client.receive(&mut client.sock, buf) {
            Ok(0) => Recv::Eof,
            Ok(n) => Recv::Data(n),
            Err(nb::Error::WouldBlock) => Recv::WouldBlock,
            Err(nb::Error::Other(_)) => Recv::Reset,
        }
    }

    fn shutdown_write(&mut self, client: &mut EmbassyClient) {
        if self.establish(client).unwrap_or(false) {
            let _ = self.client_pool().shutdown_write(&client.sock);
        }
        client.shut = true;
    }

    fn reset(&mut self, client: EmbassyClient) {
        use tcpool_core::Backend;
        self.client.abort(client.sock).expect("abort a client");
    }

    /// The pool's lingering close: a FIN after what is queued; input
    /// arriving later is drained, not answered with a RST.
    fn close(&mut self, client: EmbassyClient) {
        self.client.close(client.sock).expect("close a client");
    }

    fn client_addr(&mut self, client: &EmbassyClient) -> SocketAddr {
        use tcpool_core::Backend;
        self.client
            .local_addr(&client.sock)
            .expect("client address")
    }

    /// Accepted connections not closed by the server, plus the listener.
    fn server_sockets(&mut self) -> Option<usize> {
        let st = self.server().pool().stats();
        Some(st.open + st.reserved + usize::from(self.listening && st.listening > 0))
    }

    fn backlog(&self) -> usize {
        LISTEN.max_queued as usize
    }

    /// A fresh embassy-net stack and pool (another seed) on the server's
    /// end of the same wire: packets in flight reach it, as they would reach
    /// a rebooted device.
    fn restart_stack(&mut self) -> Result<(), Unsupported> {
        drop(self.stack.take());
        self.restarts += 1;
        let (stack, runner) = new_server(&self.wire, 0x5eed ^ self.restarts);
        self.stack = Some(stack);
        self.server_runner = runner;
        self.listening = false;
        self.backend_at = None;
        Ok(())
    }

    /// The pool's own budget cannot play the scenario's newcomer: with every
    /// socket in use none listens, so the newcomer's SYN is held and its
    /// connect never completes (that is pinned by this crate's `burst.rs`).
    /// So, like the std and smoltcp harnesses, the budget is a
    /// `FaultyStack` socket limit: the newcomer completes its handshake in
    /// the emulated backlog and `accept` fails like `EMFILE`.
    fn exhaust_sockets(&mut self) -> Result<String, Unsupported> {
        let stack = self.stack.as_mut().expect("stack");
        let open = stack.open_sockets();
        stack.set_socket_limit(Some(open));
        Ok(format!(
            "a FaultyStack socket limit of {open} (the sockets open now): accept fails like \
             EMFILE and the client waits established in the emulated backlog"
        ))
    }

    fn restore_sockets(&mut self) {
        self.stack.as_mut().expect("stack").set_socket_limit(None);
        self.flag.set();
    }

    fn fail_next_accepts(&mut self, n: usize) -> Result<(), Unsupported> {
        self.stack.as_mut().expect("stack").fail_next_accepts(n);
        Ok(())
    }
}

impl EmbassyHarness {
    #[allow(dead_code)]
    fn client_open(&self, client: &EmbassyClient) -> bool {
        !matches!(
            self.client_pool().socket_state(&client.sock),
            None | Some(TcpState::Closed)
        )
    }
}

#[allow(dead_code)]
fn _hold_is_static(_: &'static SynHold) {}

// Every scenario with each handler kind: callback `Handler`s, and async
// handlers (`AsyncHandler`s in connection tasks over the same server).
tcpool_conformance::conformance_suite!(embassy, EmbassyHarness);
tcpool_conformance::conformance_suite!(embassy_async, EmbassyHarness, tcpool_conformance::Async);
