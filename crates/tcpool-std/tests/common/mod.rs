//! Helpers shared by the integration tests: every wait is bounded.
#![allow(dead_code)]

use embedded_nal::{TcpClientStack, TcpFullStack};
use std::net::SocketAddr;
use std::time::Duration;
use tcpool_std::{Config, Error, Instant, Interest, StdClock, StdStack, TcpSocket};

/// The longest any single step of a test may take.
pub const STEP: Duration = Duration::from_secs(5);

/// The echo server the server tests run: 4 slots of 256-byte buffers.
pub type EchoServer = tcpool_core::Server<StdStack, tcpool_conformance::Echo, 4, 256, 256>;

/// A default stack, its clock, and an [`EchoServer`] listening on a port
/// the system chose, with that port's address.
pub fn echo_server() -> (StdStack, StdClock, EchoServer, SocketAddr) {
    let mut stack = StdStack::new(Config::default());
    let clock = StdClock::new();
    let mut server = EchoServer::new(tcpool_conformance::Echo, tcpool_core::Config::new());
    server.listen(&mut stack, 0).unwrap();
    let addr = stack.local_addr(server.listener().unwrap()).unwrap();
    (stack, clock, server, addr)
}

/// A stack listening on `config`'s bind address, on a port the system chose.
pub fn listening(config: Config) -> (StdStack, TcpSocket, SocketAddr) {
    let mut stack = StdStack::new(config);
    let mut listener = stack.socket().unwrap();
    stack.bind(&mut listener, 0).unwrap();
    stack.listen(&mut listener).unwrap();
    let addr = stack.local_addr(&listener).unwrap();
    (stack, listener, addr)
}

/// `clock.now() + d`.
pub fn after(clock: &StdClock, d: Duration) -> Instant {
    clock.now() + d
}

/// Accepts one client, waiting for it at most [`STEP`].
pub fn accept(stack: &mut StdStack, listener: &mut TcpSocket) -> (TcpSocket, SocketAddr) {
    let clock = StdClock::new();
    let deadline = after(&clock, STEP);
    loop {
        match stack.accept(listener) {
            Ok(accepted) => return accepted,
            Err(nb::Error::WouldBlock) => {
                assert!(clock.now() < deadline, "no client to accept");
                stack
                    .wait([(&*listener, Interest::READABLE)], Some(deadline), &clock)
                    .unwrap();
            }
            Err(nb::Error::Other(e)) => panic!("accept failed: {e}"),
        }
    }
}

/// Receives once something other than `WouldBlock` comes, waiting at most
/// [`STEP`].
pub fn receive(
    stack: &mut StdStack,
    socket: &mut TcpSocket,
    buf: &mut [u8],
) -> Result<usize, Error> {
    let clock = StdClock::new();
    let deadline = after(&clock, STEP);
    loop {
        match stack.receive(socket, buf) {
            Ok(n) => return Ok(n),
            Err(nb::Error::Other(e)) => return Err(e),
            Err(nb::Error::WouldBlock) => {
                assert!(clock.now() < deadline, "nothing to receive");
                stack
                    .wait([(&*socket, Interest::READABLE)], Some(deadline), &clock)
                    .unwrap();
            }
        }
    }
}

/// Sends all of `data`, waiting for room at most [`STEP`] each time.
pub fn send_all(stack: &mut StdStack, socket: &mut TcpSocket, mut data: &[u8]) {
    let clock = StdClock::new();
    while !data.is_empty() {
        match stack.send(socket, data) {
            Ok(n) => data = &data[n..],
            Err(nb::Error::WouldBlock) => {
                let deadline = after(&clock, STEP);
                assert_eq!(
                    stack
                        .wait([(&*socket, Interest::WRITABLE)], Some(deadline), &clock)
                        .unwrap(),
                    1,
                    "no room to send"
                );
            }
            Err(nb::Error::Other(e)) => panic!("send failed: {e}"),
        }
    }
}

/// A std client connected to `addr`, with read and write timeouts of
/// [`STEP`] so that a test fails instead of hanging.
pub fn client(addr: SocketAddr) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect_timeout(&addr, STEP).unwrap();
    c.set_read_timeout(Some(STEP)).unwrap();
    c.set_write_timeout(Some(STEP)).unwrap();
    c
}
