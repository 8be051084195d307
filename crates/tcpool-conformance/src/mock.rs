//! The harness for tcpool-core's in-memory [`MockStack`].

use core::time::Duration;
use std::net::SocketAddr;
use std::string::String;

use tcpool_core::Instant;
use tcpool_core::mock::{ClientRead, MockClient, MockConfig, MockError, MockSocket, MockStack};

use crate::harness::{ClientError, Drive, Harness, Patience, Recv, Unsupported};

/// The port the mock server listens on.
pub const MOCK_PORT: u16 = 7000;

/// The mock's listen backlog in this harness.
pub const MOCK_BACKLOG: usize = 8;

/// The mock's socket budget when not exhausted.
pub const MOCK_MAX_SOCKETS: usize = 64;

/// How the mock harness decides to poll the server in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Only when the server's `poll_at` deadline has come, or when a
    /// client did something the server declared interest in (sending,
    /// connecting or shutting down wakes readable interest, reading wakes
    /// writable interest, a reset or close wakes any); then poll until a
    /// poll makes no progress, as tcpool-core documents for in-process
    /// stacks. The mock exposes no per-socket readiness, so "until no
    /// progress" stands in for level-triggered readiness; a lost wake-up
    /// that further polls would paper over (work left without `poll_at` or
    /// an interest asking for it) is caught by event-loop harnesses with
    /// real readiness (std, smoltcp), not by this one.
    Readiness,
    /// Every step (hides lost wake-ups; for comparison).
    Always,
    /// For a mock that reports readiness ([`MockReadyHarness`]): when the
    /// server's `poll_at` deadline has come or a client did anything; the
    /// server then learns from the stack which sockets are ready and
    /// services only those, so a socket it forgot to watch stalls.
    Reported,
}

/// Client activity since the server was last polled.
#[derive(Debug, Default, Clone, Copy)]
struct Events {
    readable: bool,
    writable: bool,
    any: bool,
}

/// The [`Harness`] for the in-memory [`MockStack`]: a simulated clock
/// advancing 1 ms per step, clients are [`MockClient`]s.
///
/// With `REPORTED` false the mock reports no readiness (every poll tries
/// every socket), and the harness models readiness from the client
/// operations it performs (see [`Wake::Readiness`]); with `REPORTED` true
/// ([`MockReadyHarness`]) the mock reports readiness as an epoll backend
/// does (see [`Wake::Reported`]).
pub struct MockHarness<const REPORTED: bool = false> {
    stack: MockStack,
    now: Instant,
    events: Events,
    wake: Wake,
}

/// The mock harness on a stack that reports readiness.
pub type MockReadyHarness = MockHarness<true>;

impl<const REPORTED: bool> MockHarness<REPORTED> {
    /// A harness that polls the server as [`wake`](Wake) says.
    pub fn with_wake(wake: Wake) -> Self {
        let stack = MockStack::with_config(MockConfig {
            max_sockets: MOCK_MAX_SOCKETS,
            backlog: MOCK_BACKLOG,
            ..MockConfig::default()
        });
        stack.set_reports_ready(REPORTED);
        MockHarness {
            stack,
            now: Instant::ZERO,
            events: Events::default(),
            wake,
        }
    }

    fn due(&self, server: &dyn Drive<MockStack>) -> bool {
        server.poll_at().is_some_and(|t| t <= self.now)
    }

    fn poll_until_quiet(&mut self, server: &mut dyn Drive<MockStack>) {
        for _ in 0..10_000 {
            let progressed = server.poll(&mut self.stack, self.now);
            if !progressed && !self.due(server) {
                return;
            }
        }
        panic!(
            "[mock] the server kept making progress for 10000 polls at {}: {}",
            self.now,
            server.describe()
        );
    }
}

/// Maps a mock client read.
fn recv_of(read: ClientRead) -> Recv {
    match read {
        ClientRead::Data(n) => Recv::Data(n),
        ClientRead::WouldBlock => Recv::WouldBlock,
        ClientRead::Eof => Recv::Eof,
        ClientRead::Reset => Recv::Reset,
    }
}

impl<const REPORTED: bool> Harness for MockHarness<REPORTED> {
    type Stack = MockStack;
    type Client = MockClient;

    const BACKEND: &'static str = if REPORTED { "mock_ready" } else { "mock" };

    fn new() -> Self {
        Self::with_wake(if REPORTED {
            Wake::Reported
        } else {
            Wake::Readiness
        })
    }

    fn stack(&mut self) -> &mut MockStack {
        &mut self.stack
    }

    fn listen_port(&self) -> u16 {
        MOCK_PORT
    }

    fn listening(&mut self, _listener: &MockSocket) {}

    fn server_port(&self) -> u16 {
        MOCK_PORT
    }

    fn now(&self) -> Instant {
        self.now
    }

    fn step(&mut self, server: &mut dyn Drive<MockStack>) {
        self.now = self.now + Duration::from_millis(1);
        let wake = match self.wake {
            Wake::Always => true,
            Wake::Reported => {
                self.due(server) || self.events.any || self.events.readable || self.events.writable
            }
            Wake::Readiness => {
                let interests = server.interests();
                let readable = interests.iter().any(|(_, i)| i.readable);
                let writable = interests.iter().any(|(_, i)| i.writable);
                self.due(server)
                    || self.events.any
                    || (self.events.readable && readable)
                    || (self.events.writable && writable)
            }
        };
        if wake {
            self.events = Events::default();
            self.poll_until_quiet(server);
        }
    }

    fn advance(&mut self, by: Duration, server: &mut dyn Drive<MockStack>) {
        // Jump to the earlier of the target and each deadline the server
        // asks for, so timers fire at their time.
        let until = self.now + by;
        while self.now < until {
            let next = server
                .poll_at()
                .filter(|t| *t > self.now)
                .map_or(until, |t| t.min(until));
            self.now = next - Duration::from_millis(1);
            self.step(server);
        }
    }

    fn patience(&self) -> Patience {
        Patience {
            idle_steps: 20_000,
            wall: Duration::from_secs(60),
        }
    }

    fn connect(&mut self) -> Result<MockClient, ClientError> {
        match self.stack.connect_client(MOCK_PORT) {
            Ok(c) => {
                self.events.readable = true;
                Ok(c)
            }
            Err(e @ (MockError::Refused | MockError::OutOfSockets)) => {
                Err(ClientError::Refused(format!("{e}")))
            }
            Err(e) => panic!("[mock] connect: unexpected {e:?}"),
        }
    }

    fn send(&mut self, client: &mut MockClient, data: &[u8]) -> Result<usize, ClientError> {
        if client.was_reset() {
            return Err(ClientError::Reset);
        }
        let n = client.send(data);
        if n > 0 {
            self.events.readable = true;
        }
        Ok(n)
    }

    fn recv(&mut self, client: &mut MockClient, buf: &mut [u8]) -> Recv {
        let r = recv_of(client.recv(buf));
        if matches!(r, Recv::Data(_)) {
            self.events.writable = true;
        }
        r
    }

    fn shutdown_write(&mut self, client: &mut MockClient) {
        client.shutdown_write();
        self.events.readable = true;
    }

    fn reset(&mut self, client: MockClient) {
        client.reset();
        self.events.any = true;
    }

    /// The mock models no receive buffer limit on close: closing is a FIN
    /// (the server sees end of stream); output sent later is never read.
    fn close(&mut self, client: MockClient) {
        client.shutdown_write();
        self.events.any = true;
    }

    fn client_addr(&mut self, client: &MockClient) -> SocketAddr {
        client.local_addr()
    }

    fn server_sockets(&mut self) -> Option<usize> {
        Some(self.stack.sockets_in_use())
    }

    fn backlog(&self) -> usize {
        MOCK_BACKLOG
    }

    /// The mock is the whole network (clients included), so it is kept; the
    /// server restarts on it, which checks that `shutdown` gave the port
    /// back to the stack.
    fn restart_stack(&mut self) -> Result<(), Unsupported> {
        Ok(())
    }

    fn exhaust_sockets(&mut self) -> Result<String, Unsupported> {
        let in_use = self.stack.sockets_in_use();
        self.stack.set_max_sockets(in_use);
        Ok(format!(
            "MockStack::set_max_sockets({in_use}): the mock's own budget \
             (it allocates at connect, so new clients are refused at connect)"
        ))
    }

    fn restore_sockets(&mut self) {
        self.stack.set_max_sockets(MOCK_MAX_SOCKETS);
        self.events.any = true;
    }

    fn fail_next_accepts(&mut self, n: usize) -> Result<(), Unsupported> {
        self.stack.fail_next_accepts(n);
        Ok(())
    }
}
