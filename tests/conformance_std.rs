//! The shared conformance suite on the host backend, `tcpool_std::StdStack`,
//! with real OS client sockets on 127.0.0.1.
//!
//! The server runs in the test thread, between client actions, exactly as
//! the documented event loop drives it: `wait(interests, poll_at)`, then
//! `poll` only if a socket it asked for is ready or its deadline came (a
//! wait never lasts more than 2 ms, so the scenario can act; a server that
//! forgets to ask for a wake-up stalls here, as in production). Clients are
//! non-blocking `std::net::TcpStream`s.
//!
//! The stack is wrapped in a `FaultyStack` with no random faults: it counts
//! the server's open sockets (every socket must be closed), and provides the
//! socket budget and accept failures of
//! `stack_out_of_sockets_accept_fails_and_recovers` (the OS limit itself,
//! `RLIMIT_NOFILE`, is per process and would hit the tests running in
//! parallel).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tcpool_conformance::{
    ClientError, Drive, Faults, FaultyStack, Harness, Patience, Recv, Unsupported,
};
use tcpool_core::Instant;
use tcpool_std::{Config, StdClock, StdStack, TcpSocket};

/// The listen backlog of the harness's stack (Linux queues one more).
const BACKLOG: u32 = 8;

/// The longest the harness waits for readiness in one step.
const WAIT_CAP: Duration = Duration::from_millis(2);

type Stack = FaultyStack<StdStack>;

fn new_stack() -> Stack {
    FaultyStack::new(
        StdStack::new(Config::default().with_backlog(BACKLOG)),
        0,
        Faults::NONE,
    )
}

/// The [`Harness`] of the std backend.
struct StdHarness {
    stack: Stack,
    clock: StdClock,
    addr: Option<SocketAddr>,
}

/// One client: a non-blocking socket, connecting or connected.
struct StdClient {
    stream: TcpStream,
}

impl StdHarness {
    /// Waits (at most until `deadline`) for one of the server's interests,
    /// then polls it if something is ready or its own deadline has come.
    fn wait_and_poll(&mut self, server: &mut dyn Drive<Stack>, deadline: Instant) {
        let deadline = server.poll_at().map_or(deadline, |t| t.min(deadline));
        let ready = {
            let interests = server.interests();
            let StdHarness { stack, clock, .. } = self;
            stack
                .inner_mut()
                .wait(interests, Some(deadline), clock)
                .expect("poll(2) failed")
        };
        let now = self.clock.now();
        if ready > 0 || server.poll_at().is_some_and(|t| now >= t) {
            server.poll(&mut self.stack, now);
        }
    }
}

fn io_to_recv(r: std::io::Result<usize>) -> Recv {
    match r {
        Ok(0) => Recv::Eof,
        Ok(n) => Recv::Data(n),
        Err(e) => match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::NotConnected | ErrorKind::Interrupted => {
                Recv::WouldBlock
            }
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::TimedOut => Recv::Reset,
            _ => panic!("[std] client read failed: {e}"),
        },
    }
}

impl Harness for StdHarness {
    type Stack = Stack;
    type Client = StdClient;

    const BACKEND: &'static str = "std";

    fn new() -> Self {
        StdHarness {
            stack: new_stack(),
            clock: StdClock::new(),
            addr: None,
        }
    }

    fn stack(&mut self) -> &mut Stack {
        &mut self.stack
    }

    fn listen_port(&self) -> u16 {
        0
    }

    fn listening(&mut self, listener: &TcpSocket) {
        let addr = self
            .stack
            .inner()
            .local_addr(listener)
            .expect("listener address");
        self.addr = Some(addr);
    }

    fn server_port(&self) -> u16 {
        self.addr.expect("a server is listening").port()
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn step(&mut self, server: &mut dyn Drive<Stack>) {
        let cap = self.clock.now() + WAIT_CAP;
        self.wait_and_poll(server, cap);
    }

    fn advance(&mut self, by: Duration, server: &mut dyn Drive<Stack>) {
        let until = self.clock.now() + by;
        while self.clock.now() < until {
            self.wait_and_poll(server, until);
        }
    }

    fn patience(&self) -> Patience {
        Patience {
            idle_steps: u64::MAX,
            wall: Duration::from_secs(30),
        }
    }

    fn connect(&mut self) -> Result<StdClient, ClientError> {
        let addr = self.addr.expect("a server is listening");
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| ClientError::Refused(e.to_string()))?;
        socket.set_nonblocking(true).expect("non-blocking");
        socket.set_tcp_nodelay(true).expect("nodelay");
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e)
                if e.kind() == ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(ClientError::Refused(e.to_string())),
        }
        Ok(StdClient {
            stream: socket.into(),
        })
    }

    fn send(&mut self, client: &mut StdClient, data: &[u8]) -> Result<usize, ClientError> {
        match (&client.stream).write(data) {
            Ok(n) => Ok(n),
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::NotConnected | ErrorKind::Interrupted => Ok(0),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::TimedOut => Err(ClientError::Reset),
                _ => panic!("[std] client write failed: {e}"),
            },
        }
    }

    fn recv(&mut self, client: &mut StdClient, buf: &mut [u8]) -> Recv {
        io_to_recv((&client.stream).read(buf))
    }

    fn shutdown_write(&mut self, client: &mut StdClient) {
        // Not connected (yet, or any more): nothing to end.
        let _ = client.stream.shutdown(Shutdown::Write);
    }

    fn reset(&mut self, client: StdClient) {
        SockRef::from(&client.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(client);
    }

    fn close(&mut self, client: StdClient) {
        drop(client);
    }

    fn client_addr(&mut self, client: &StdClient) -> SocketAddr {
        client.stream.local_addr().expect("client address")
    }

    fn server_sockets(&mut self) -> Option<usize> {
        Some(self.stack.open_sockets())
    }

    fn backlog(&self) -> usize {
        BACKLOG as usize
    }

    /// A new `StdStack` (the old one is dropped, closing its lingering
    /// sockets): what a restarted process has.
    fn restart_stack(&mut self) -> Result<(), Unsupported> {
        self.stack = new_stack();
        Ok(())
    }

    fn exhaust_sockets(&mut self) -> Result<String, Unsupported> {
        let open = self.stack.open_sockets();
        self.stack.set_socket_limit(Some(open));
        Ok(format!(
            "a FaultyStack socket limit of {open} (the sockets open now): accept fails like \
             EMFILE and leaves the client in the kernel's backlog"
        ))
    }

    fn restore_sockets(&mut self) {
        self.stack.set_socket_limit(None);
    }

    fn fail_next_accepts(&mut self, n: usize) -> Result<(), Unsupported> {
        self.stack.fail_next_accepts(n);
        Ok(())
    }
}

// The module cannot be called `std` (it would shadow the std crate).
tcpool_conformance::conformance_suite!(host_std, StdHarness);
