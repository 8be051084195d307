//! The shared conformance suite on the smoltcp backend: the server's
//! `Stack` on one end of a simulated wire (`tcpool_smoltcp::sim`), clients
//! as sockets of a second smoltcp `Stack` on the other end, a simulated
//! clock advancing 1 ms per step.
//!
//! Each step moves the clock, lets both stacks process what the wire
//! delivered, and wakes the server only as an event loop would: when its
//! `poll_at` deadline has come or a socket it watches is ready (the stack
//! reports readiness: `Stack::watched_ready`), so a server that forgets to
//! ask for a wake-up stalls.
//!
//! The server stack is wrapped in a `FaultyStack` with no random faults, for
//! the socket budget and the accept failures of
//! `stack_out_of_sockets_accept_fails_and_recovers` (see
//! [`SmolHarness::exhaust_sockets`] for why not the pool's own limit).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use embedded_nal::TcpClientStack;
use tcpool_conformance::{
    ClientError, Drive, Faults, FaultyStack, Harness, Patience, Recv, Unsupported,
};
use tcpool_core::Instant;
use tcpool_smoltcp::sim::{Side, SimConfig, SimNet, SimStack, Wire, WireConfig};
use tcpool_smoltcp::{Config, Error, ListenConfig, TcpHandle, TcpState};

/// Server pool sockets: the largest scenario pool (8), its backlog, and
/// connections finishing their close.
const SERVER_SOCKETS: usize = 48;
/// Client sockets: the burst scenario's clients, with room for closing ones.
const CLIENT_SOCKETS: usize = 96;
/// Emulated backlog: 2 sockets listening, up to 4 connections held before
/// accept.
const LISTEN: ListenConfig = ListenConfig::new(2, 4);
const PORT: u16 = 7000;
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER_BUFFERS: (usize, usize) = (16 * 1024, 16 * 1024);
const TICK: Duration = Duration::from_millis(1);

type Server = SimStack<SERVER_SOCKETS>;
type Stack = FaultyStack<Server>;

fn server_config() -> Config {
    Config {
        listen: LISTEN,
        ..Config::new()
    }
}

/// The [`Harness`] of the smoltcp backend.
struct SmolHarness {
    stack: Option<Stack>,
    client: SimStack<CLIENT_SOCKETS>,
    wire: Wire,
    now: Instant,
    listening: bool,
    restarts: u64,
}

/// One client connection on the client-side stack.
struct SmolClient {
    sock: TcpHandle,
    established: bool,
    shut: bool,
}

impl SmolHarness {
    fn server(&self) -> &Server {
        self.stack.as_ref().expect("stack").inner()
    }

    fn server_mut(&mut self) -> &mut Server {
        self.stack.as_mut().expect("stack").inner_mut()
    }

    /// Both stacks process what has arrived and send what they have, until
    /// nothing more happens at this instant.
    fn poll_network(&mut self) {
        let now = self.now;
        for _ in 0..64 {
            let a = self.server_mut().poll(now);
            let b = self.client.poll(now);
            let due = self.wire.next_arrival().is_some_and(|t| t <= now);
            if !(a || b || due) {
                break;
            }
        }
    }

    /// The server's deadline has come, or a socket it watches is ready
    /// (the stack reports readiness: `Stack::watched_ready`). Interests the
    /// server lists itself are looked at too, for a server that does not
    /// use the stack's reports.
    fn server_wants_poll(&mut self, server: &dyn Drive<Stack>) -> bool {
        if server.poll_at().is_some_and(|t| t <= self.now) {
            return true;
        }
        let stack = self.server();
        let listed = server.interests().into_iter().any(|(socket, want)| {
            let ready = stack.ready(socket);
            (want.readable && ready.readable) || (want.writable && ready.writable)
        });
        listed || self.server_mut().watched_ready() > 0
    }

    /// Finishes the client's handshake if it can: `Ok(true)` established,
    /// `Ok(false)` still connecting, `Err` refused or timed out.
    fn establish(&mut self, c: &mut SmolClient) -> Result<bool, ClientError> {
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

impl Harness for SmolHarness {
    type Stack = Stack;
    type Client = SmolClient;

    const BACKEND: &'static str = "smoltcp";

    fn new() -> Self {
        let config = SimConfig {
            wire: WireConfig {
                capture: false,
                ..WireConfig::new()
            },
            server: server_config(),
            server_buffers: SERVER_BUFFERS,
            client_buffers: (32 * 1024, 32 * 1024),
            server_ip: SERVER_IP,
            ..SimConfig::new()
        };
        let net: SimNet<SERVER_SOCKETS, CLIENT_SOCKETS> = SimNet::new(config);
        // The harness steps the network itself (the server stack is wrapped),
        // so it keeps the parts.
        let SimNet {
            server,
            client,
            wire,
            ..
        } = net;
        SmolHarness {
            stack: Some(FaultyStack::new(server, 0, Faults::NONE)),
            client,
            wire,
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
    }

    fn server_port(&self) -> u16 {
        PORT
    }

    fn now(&self) -> Instant {
        self.now
    }

    fn step(&mut self, server: &mut dyn Drive<Stack>) {
        self.now = self.now + TICK;
        self.poll_network();
        // Poll while the server has a reason to be woken (deadline due or an
        // interest ready), letting the stacks move the bytes between polls.
        // Not "until `poll` returns false": a wake-up the server forgot to
        // ask for stalls the scenario, as it would stall a firmware loop
        // that sleeps on `poll_at` and readiness.
        for _ in 0..1_000 {
            if !self.server_wants_poll(server) {
                return;
            }
            let now = self.now;
            server.poll(self.stack.as_mut().expect("stack"), now);
            self.poll_network();
        }
        panic!(
            "[smoltcp] the server stayed ready (deadline due or interest ready) for 1000 polls at {}: {}",
            self.now,
            server.describe()
        );
    }

    fn advance(&mut self, by: Duration, server: &mut dyn Drive<Stack>) {
        let until = self.now + by;
        while self.now < until {
            self.step(server);
        }
    }

    fn patience(&self) -> Patience {
        // 1 ms per step: 100 s of simulated time without progress covers
        // SYN retransmissions (1 s, 2 s, ...) and every stack timeout.
        Patience {
            idle_steps: 100_000,
            wall: Duration::from_secs(120),
        }
    }

    fn connect(&mut self) -> Result<SmolClient, ClientError> {
        let mut sock = self
            .client
            .socket()
            .map_err(|e| ClientError::Refused(format!("client stack: {e}")))?;
        let addr = SocketAddr::from((SERVER_IP, PORT));
        match self.client.connect(&mut sock, addr) {
            Ok(()) | Err(nb::Error::WouldBlock) => Ok(SmolClient {
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

    fn send(&mut self, client: &mut SmolClient, data: &[u8]) -> Result<usize, ClientError> {
        if client.shut {
            return Err(ClientError::Closed);
        }
        if !self.establish(client)? {
            return Ok(0);
        }
        match self.client.send(&mut client.sock, data) {
            Ok(n) => Ok(n),
            Err(nb::Error::WouldBlock) => Ok(0),
            Err(nb::Error::Other(Error::InvalidState)) if !self.client_open(client) => {
                Err(ClientError::Reset)
            }
            Err(nb::Error::Other(_)) => Err(ClientError::Reset),
        }
    }

    fn recv(&mut self, client: &mut SmolClient, buf: &mut [u8]) -> Recv {
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

    fn shutdown_write(&mut self, client: &mut SmolClient) {
        // Not connected (yet, or any more): nothing to end.
        if self.establish(client).unwrap_or(false) {
            let _ = self.client.shutdown_write(&client.sock);
        }
        client.shut = true;
    }

    fn reset(&mut self, client: SmolClient) {
        self.client.abort(client.sock).expect("abort a client");
    }

    /// `Stack::close`: a FIN after what is queued; input arriving later is
    /// discarded (the stack's lingering close), not answered with a RST.
    fn close(&mut self, client: SmolClient) {
        self.client.close(client.sock).expect("close a client");
    }

    fn client_addr(&mut self, client: &SmolClient) -> SocketAddr {
        self.client
            .local_addr(&client.sock)
            .expect("client address")
    }

    /// Accepted connections not closed by the server, plus the listener:
    /// the pool's own account (sockets still finishing a close the server
    /// already asked for are the stack's business, not counted).
    fn server_sockets(&mut self) -> Option<usize> {
        let st = self.server().pool_stats();
        Some(st.open + st.reserved + usize::from(self.listening && st.listening > 0))
    }

    fn backlog(&self) -> usize {
        LISTEN.max_queued as usize
    }

    /// A fresh stack (new smoltcp interface and socket pool, another random
    /// seed) on the server's end of the same wire: packets in flight reach
    /// it, as they would reach a rebooted device.
    fn restart_stack(&mut self) -> Result<(), Unsupported> {
        drop(self.stack.take());
        self.restarts += 1;
        let server = Server::on_device(
            self.wire.device(Side::A),
            SERVER_IP,
            server_config(),
            SERVER_BUFFERS,
            0x5e5e ^ self.restarts,
        );
        self.stack = Some(FaultyStack::new(server, 0, Faults::NONE));
        self.listening = false;
        Ok(())
    }

    /// The pool's own exhaustion cannot play the scenario's newcomer: with
    /// every pool socket in use no socket listens, so the newcomer's SYN is
    /// held (`Overflow::Hold`, it retransmits) or refused, and its connect
    /// never completes — the newcomer cannot even send its byte. (That
    /// behaviour is pinned by this crate's `accept.rs` tests.) So, like the
    /// std harness, the budget is a `FaultyStack` socket limit: the
    /// newcomer completes its handshake in the emulated backlog and
    /// `accept` fails like `EMFILE`.
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
    }

    fn fail_next_accepts(&mut self, n: usize) -> Result<(), Unsupported> {
        self.stack.as_mut().expect("stack").fail_next_accepts(n);
        Ok(())
    }
}

impl SmolHarness {
    /// The client's connection still exists on its side.
    fn client_open(&self, client: &SmolClient) -> bool {
        !matches!(
            self.client.socket_state(&client.sock),
            None | Some(TcpState::Closed)
        )
    }
}

tcpool_conformance::conformance_suite!(smoltcp, SmolHarness);
