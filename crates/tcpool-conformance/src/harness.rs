//! The [`Harness`] a backend implements to run the suite, and the [`Drive`]
//! view of a server that a harness steps.

use core::fmt;
use core::time::Duration;
use std::net::SocketAddr;
use std::string::String;
use std::vec::Vec;

use embedded_nal::{TcpClientStack, TcpFullStack};
use tcpool_core::{Handler, Instant, Interest, Server};

/// The socket type of a harness's server-side stack.
pub type SocketOf<H> = <<H as Harness>::Stack as TcpClientStack>::TcpSocket;

/// What a harness needs to drive a server without knowing its handler or
/// sizes: [`Server`] implements it, and [`NoServer`] stands in when a
/// scenario has shut its server down but still wants the network to move.
pub trait Drive<S: TcpFullStack> {
    /// [`Server::poll`].
    fn poll(&mut self, stack: &mut S, now: Instant) -> bool;
    /// [`Server::poll_at`].
    fn poll_at(&self) -> Option<Instant>;
    /// [`Server::interests`], collected.
    fn interests(&self) -> Vec<(&S::TcpSocket, Interest)>;
    /// A one-line account of the server (slot states and counters), for
    /// failure messages.
    fn describe(&self) -> String;
}

impl<S, H, const N: usize, const RX: usize, const TX: usize> Drive<S> for Server<S, H, N, RX, TX>
where
    S: tcpool_core::Backend,
    H: Handler,
{
    fn poll(&mut self, stack: &mut S, now: Instant) -> bool {
        Server::poll(self, stack, now)
    }

    fn poll_at(&self) -> Option<Instant> {
        Server::poll_at(self)
    }

    fn interests(&self) -> Vec<(&S::TcpSocket, Interest)> {
        Server::interests(self).collect()
    }

    fn describe(&self) -> String {
        let states: Vec<String> = self.slot_states().map(|s| s.to_string()).collect();
        let interests: Vec<String> = Server::interests(self)
            .map(|(_, i)| {
                format!(
                    "{}{}",
                    if i.readable { "r" } else { "-" },
                    if i.writable { "w" } else { "-" }
                )
            })
            .collect();
        format!(
            "slots=[{}] interests=[{}] poll_at={:?} stats={:?}",
            states.join(", "),
            interests.join(" "),
            Server::poll_at(self),
            self.stats()
        )
    }
}

/// A [`Drive`] with no server behind it: stepping it only moves the network
/// and the clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoServer;

impl<S: TcpFullStack> Drive<S> for NoServer {
    fn poll(&mut self, _stack: &mut S, _now: Instant) -> bool {
        false
    }

    fn poll_at(&self) -> Option<Instant> {
        None
    }

    fn interests(&self) -> Vec<(&S::TcpSocket, Interest)> {
        Vec::new()
    }

    fn describe(&self) -> String {
        String::from("no server")
    }
}

/// What a client read saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// This many bytes were read.
    Data(usize),
    /// Nothing to read now (or the connection is still being set up).
    WouldBlock,
    /// The server ended its side and everything before that was read.
    Eof,
    /// The connection was reset (or refused).
    Reset,
}

/// A client operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The connection attempt was refused at once (backlog full, out of
    /// sockets, nobody listening). The scenario may try again later.
    Refused(String),
    /// The connection was reset (or the attempt failed after it started).
    Reset,
    /// Sending after [`Harness::shutdown_write`].
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Refused(why) => write!(f, "connection refused ({why})"),
            ClientError::Reset => f.write_str("connection reset"),
            ClientError::Closed => f.write_str("send after shutdown"),
        }
    }
}

/// A backend cannot do what a scenario asks; the reason is printed in a
/// `SKIPPED <scenario> on <backend>: <reason>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl Unsupported {
    /// An `Unsupported` with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Unsupported(reason.into())
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a scenario waits for something before it fails.
///
/// Every waiting loop of the suite is bounded by both: `idle_steps`
/// consecutive [`Harness::step`]s without progress, or `wall` of real time
/// for the whole wait, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Steps in a row without progress (in-process stacks: with a simulated
    /// clock this is the meaningful bound).
    pub idle_steps: u64,
    /// Wall time for one wait (host stacks: the meaningful bound).
    pub wall: Duration,
}

/// How much data the bulk scenarios move per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSize {
    /// Bytes per client.
    pub bytes: usize,
    /// Why it is smaller than the 10 MiB the suite asks for, if it is; the
    /// scenario prints it.
    pub reduced_because: Option<&'static str>,
}

impl TransferSize {
    /// The full size the design asks for: 10 MiB per client.
    pub const FULL: TransferSize = TransferSize {
        bytes: 10 * 1024 * 1024,
        reduced_because: None,
    };
}

/// A backend under test: its server-side stack, clients that connect to the
/// server through the backend's network, and control over that network and
/// its clock.
///
/// Scenarios own the [`Server`]; the harness owns the stack and the clients'
/// side of the network. A scenario never blocks: it calls
/// [`step`](Harness::step) in a bounded loop until what it waits for has
/// happened. All client operations are harness methods taking the client
/// handle, so an in-process stack (smoltcp interfaces joined by an in-memory
/// wire, an lwIP running in the test process) can implement them with
/// `&mut` access to its network; a host harness can use real OS sockets.
///
/// Clients are non-blocking: [`connect`](Harness::connect) only starts a
/// connection, and sends and receives on a connection that is not yet
/// established report no progress (`Ok(0)`, [`Recv::WouldBlock`]).
pub trait Harness: Sized {
    /// The server-side stack.
    type Stack: tcpool_core::Backend;
    /// One client connection.
    type Client;

    /// The backend's name, for messages (`mock`, `std`, `smoltcp`, ...).
    const BACKEND: &'static str;

    /// A fresh network with its stack and clock.
    fn new() -> Self;

    /// The server-side stack, to pass to [`Server::listen`] and
    /// [`Server::shutdown`].
    fn stack(&mut self) -> &mut Self::Stack;

    /// The port to pass to [`Server::listen`] for a new server: a fixed
    /// port, or `0` if the stack picks one (then
    /// [`listening`](Harness::listening) learns it). A scenario runs one
    /// server at a time.
    fn listen_port(&self) -> u16;

    /// Called once a server listens, with its listening socket: from now on
    /// clients connect to it.
    fn listening(&mut self, listener: &SocketOf<Self>);

    /// The port clients connect to now (known after
    /// [`listening`](Harness::listening)); a restarted server rebinds it.
    fn server_port(&self) -> u16;

    /// The time now on the clock the server is polled with.
    fn now(&self) -> Instant;

    /// Moves the network and the clock a little and polls the server as a
    /// real event loop would: when one of its [`interests`](Drive::interests)
    /// is ready or its [`poll_at`](Drive::poll_at) deadline has come (a
    /// server that forgets to ask for a wake-up stalls here, as it would in
    /// production). Host harnesses wait at most a few milliseconds for
    /// readiness; in-process harnesses advance a simulated clock by a tick.
    fn step(&mut self, server: &mut dyn Drive<Self::Stack>);

    /// Lets `by` pass on the clock, stepping the network and the server
    /// meanwhile.
    fn advance(&mut self, by: Duration, server: &mut dyn Drive<Self::Stack>) {
        let until = self.now() + by;
        while self.now() < until {
            self.step(server);
        }
    }

    /// How long waits may last before a scenario fails.
    fn patience(&self) -> Patience;

    /// Starts a client connection to the listening server.
    fn connect(&mut self) -> Result<Self::Client, ClientError>;

    /// Sends what the client's side takes now; `Ok(0)` if nothing fits (or
    /// the connection is not established yet).
    fn send(&mut self, client: &mut Self::Client, data: &[u8]) -> Result<usize, ClientError>;

    /// Reads what has arrived into `buf` (non-empty).
    fn recv(&mut self, client: &mut Self::Client, buf: &mut [u8]) -> Recv;

    /// Ends the client's sending side (FIN); it can still read.
    fn shutdown_write(&mut self, client: &mut Self::Client);

    /// Aborts the connection with a reset (RST).
    fn reset(&mut self, client: Self::Client);

    /// Closes the client's socket normally (what a program does when it is
    /// done, whether or not it read everything).
    fn close(&mut self, client: Self::Client);

    /// The client's own address, as the server sees it as the peer.
    fn client_addr(&mut self, client: &Self::Client) -> SocketAddr;

    /// Server-side sockets in use now (listeners and connections), if the
    /// backend can tell; used to check that every socket is closed.
    fn server_sockets(&mut self) -> Option<usize>;

    /// The stack's listen backlog (connections it holds while the server
    /// does not accept), as configured by the harness.
    fn backlog(&self) -> usize;

    /// How much data the bulk-transfer scenarios move per client.
    fn transfer_size(&self) -> TransferSize {
        TransferSize::FULL
    }

    /// Replaces the server-side stack by a fresh one, as a restarted
    /// program or device would have, keeping the clients' side of the
    /// network. The caller has shut its server down first.
    fn restart_stack(&mut self) -> Result<(), Unsupported>;

    /// Makes the server-side stack run out of sockets for new connections
    /// until [`restore_sockets`](Harness::restore_sockets). Returns how (for
    /// the scenario's output): a real budget of the stack, or a wrapper.
    fn exhaust_sockets(&mut self) -> Result<String, Unsupported>;

    /// Ends [`exhaust_sockets`](Harness::exhaust_sockets).
    fn restore_sockets(&mut self);

    /// Makes the next `n` accepts fail with a transient error.
    fn fail_next_accepts(&mut self, n: usize) -> Result<(), Unsupported>;
}
