//! `Stack::ready` (readiness for event loops), readiness reporting to a
//! server (`Backend::watch` / `take_ready`: a poll reads only from the
//! connections with input) and `Stack::shutdown_write` (half-close).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;

use common::*;
use embedded_nal::{TcpClientStack, TcpFullStack};
use tcpool_conformance::Echo;
use tcpool_core::{Backend, Config, Instant, Interest, Server};
use tcpool_smoltcp::sim::{SimConfig, SimNet};
use tcpool_smoltcp::{Error, TcpHandle};

#[test]
fn listener_is_readable_only_with_an_established_connection_to_accept() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    assert_eq!(net.server.ready(&l), Interest::NONE);
    let _c = net.connect(80, LIMIT).expect("connect");
    // The client is established; the server once the client's ACK arrives.
    assert!(
        !net.server.ready(&l).readable,
        "ready before the handshake ended"
    );
    assert!(net.run_until(LIMIT, |net| net.server.ready(&l).readable));
    let (_s, _) = accept(&mut net, &mut l);
    assert_eq!(net.server.ready(&l), Interest::NONE);
}

#[test]
fn connection_readiness_follows_data_end_of_stream_and_room() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    // Established, nothing buffered: writable only.
    assert_eq!(net.server.ready(&s), Interest::WRITABLE);
    send_all(&mut net, Who::Client, &mut c, b"ping");
    net.run_until(LIMIT, |net| net.server.ready(&s).readable);
    assert_eq!(read_exact(&mut net, Who::Server, &mut s, 4), b"ping");
    assert!(!net.server.ready(&s).readable);
    // The peer's FIN makes it readable (end of stream to report).
    net.client.close(c).unwrap();
    assert!(net.run_until(LIMIT, |net| net.server.ready(&s).readable));
    assert_eq!(read_to_end(&mut net, Who::Server, &mut s).end, Ok(()));
    // A full TX buffer is not writable.
    let big = vec![7u8; 64 * 1024];
    let mut queued = 0;
    while let Ok(n) = net.server.send(&mut s, &big) {
        queued += n;
    }
    assert!(queued > 0);
    assert!(!net.server.ready(&s).writable);
}

#[test]
fn shutdown_write_sends_a_fin_and_keeps_reading() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    send_all(&mut net, Who::Client, &mut c, b"request");
    net.client.shutdown_write(&c).unwrap();
    // The server gets the request, then end of stream.
    let read = read_to_end(&mut net, Who::Server, &mut s);
    assert_eq!((read.data.as_slice(), read.end), (&b"request"[..], Ok(())));
    // The client can still receive the reply, then the server's FIN.
    send_all(&mut net, Who::Server, &mut s, b"reply");
    net.server.close(s).unwrap();
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!((read.data.as_slice(), read.end), (&b"reply"[..], Ok(())));
    net.client.close(c).unwrap();
    net.advance(secs(60));
    assert_eq!(net.client.pool_stats().free, 4);
    assert!(from_client(&net).iter().all(|p| !p.flags.rst));
    assert!(from_server(&net).iter().all(|p| !p.flags.rst));
}

#[test]
fn shutdown_write_needs_an_established_connection() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut c = net.client.socket().unwrap();
    assert_eq!(net.client.shutdown_write(&c), Err(Error::InvalidState));
    let addr = net.server_addr(80);
    let _ = net.client.connect(&mut c, addr);
    assert_eq!(net.client.shutdown_write(&c), Err(Error::InvalidState));
}

// ------------------------------------------------ servers on the ready path

/// The server stack, counting `receive` calls per peer.
struct Counting {
    net: Net<12, 12>,
    receives: BTreeMap<SocketAddr, usize>,
}

impl TcpClientStack for Counting {
    type TcpSocket = TcpHandle;
    type Error = Error;

    fn socket(&mut self) -> Result<TcpHandle, Error> {
        self.net.server.socket()
    }

    fn connect(&mut self, socket: &mut TcpHandle, remote: SocketAddr) -> nb::Result<(), Error> {
        self.net.server.connect(socket, remote)
    }

    fn send(&mut self, socket: &mut TcpHandle, buffer: &[u8]) -> nb::Result<usize, Error> {
        self.net.server.send(socket, buffer)
    }

    fn receive(&mut self, socket: &mut TcpHandle, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        let peer = self.net.server.peer_addr(socket).expect("a connection");
        *self.receives.entry(peer).or_default() += 1;
        self.net.server.receive(socket, buffer)
    }

    fn close(&mut self, socket: TcpHandle) -> Result<(), Error> {
        self.net.server.close(socket)
    }
}

impl TcpFullStack for Counting {
    fn bind(&mut self, socket: &mut TcpHandle, port: u16) -> Result<(), Error> {
        self.net.server.bind(socket, port)
    }

    fn listen(&mut self, socket: &mut TcpHandle) -> Result<(), Error> {
        self.net.server.listen(socket)
    }

    fn accept(&mut self, socket: &mut TcpHandle) -> nb::Result<(TcpHandle, SocketAddr), Error> {
        self.net.server.accept(socket)
    }
}

impl Backend for Counting {
    fn abort(&mut self, socket: TcpHandle) -> Result<(), Error> {
        self.net.server.abort(socket)
    }

    fn local_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        self.net.server.local_addr(socket)
    }

    fn reports_ready(&self) -> bool {
        Backend::reports_ready(&self.net.server)
    }

    fn watch(&mut self, socket: &TcpHandle, token: usize, interest: Interest) -> Result<(), Error> {
        Backend::watch(&mut self.net.server, socket, token, interest)
    }

    fn take_ready(&mut self, tokens: Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.net.server.take_ready(tokens, ready);
    }
}

/// Runs the network and the server (polled after every step, as a loop
/// that does not sleep would) until `done`; returns the server polls made.
fn serve(
    stack: &mut Counting,
    server: &mut Server<Counting, Echo, 8, 512, 512>,
    mut done: impl FnMut(&mut Counting, &Server<Counting, Echo, 8, 512, 512>) -> bool,
) -> usize {
    for polls in 1..=10_000 {
        stack.net.poll();
        let now = stack.net.now();
        server.poll(stack, now);
        stack.net.poll();
        if done(stack, server) {
            return polls;
        }
        stack.net.step(ms(10));
    }
    panic!("not done after 10,000 polls: {:?}", server.stats());
}

#[test]
fn a_poll_receives_only_from_connections_with_input() {
    let mut stack = Counting {
        net: SimNet::new(SimConfig::default()),
        receives: BTreeMap::new(),
    };
    assert!(Backend::reports_ready(&stack.net.server));
    let mut server: Server<Counting, Echo, 8, 512, 512> = Server::new(Echo, Config::new());
    server.listen(&mut stack, 80).expect("listen");
    assert_eq!(server.interests().count(), 0, "the stack watches");
    let mut clients = Vec::new();
    for n in 1..=6 {
        clients.push(stack.net.connect(80, LIMIT).expect("connect"));
        serve(&mut stack, &mut server, |_, server| server.active() == n);
    }
    // Settle, then count from here: five idle connections, one active.
    serve(&mut stack, &mut server, |s, _| {
        s.net.now() > Instant::from_millis(5_000)
    });
    stack.receives.clear();
    let active = stack.net.client.local_addr(&clients[2]).expect("address");
    let mut echoed = Vec::new();
    let mut pinged = 0;
    let polls = serve(&mut stack, &mut server, |s, _| {
        let c = &mut clients[2];
        if pinged < 3 && echoed.len() == pinged * 4 {
            s.net.client.send(c, b"ping").expect("send");
            pinged += 1;
        }
        let mut buf = [0u8; 64];
        while let Ok(n) = s.net.client.receive(c, &mut buf) {
            echoed.extend_from_slice(&buf[..n]);
        }
        echoed.len() == 12
    });
    assert_eq!(echoed, b"pingpingping");
    assert!(polls >= 3, "{polls} server polls");
    let receives: Vec<_> = stack.receives.iter().map(|(a, n)| (*a, *n)).collect();
    assert_eq!(receives.len(), 1, "receive calls per peer: {receives:?}");
    assert_eq!(receives[0].0, active);
    // One read per ping at least, and not one per poll.
    assert!(
        (3..polls).contains(&receives[0].1),
        "{} receive calls in {polls} polls",
        receives[0].1
    );
    // Idle, nothing is reported at all.
    let before = stack.receives.clone();
    serve(&mut stack, &mut server, |s, _| {
        s.net.now() > Instant::from_millis(30_000)
    });
    assert_eq!(stack.receives, before, "receive calls while all were idle");
    assert_eq!(stack.net.server.watched_ready(), 0);
}
