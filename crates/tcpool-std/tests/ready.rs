//! Readiness reporting: a poll services the sockets epoll reports and no
//! other, a hung-up socket nobody wants wakes nobody, several servers share
//! one stack, closed sockets are not reported under their old token, and a
//! pool of megabytes is built on the heap.

mod common;

use common::{STEP, client};
use embedded_nal::{TcpClientStack, TcpFullStack};
use socket2::SockRef;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tcpool_conformance::Echo;
use tcpool_core::{Backend, Conn, Handler, Server};
use tcpool_std::{Config, Error, Heap, Interest, StdClock, StdStack, TcpSocket};

/// The CPU time this thread has used.
fn thread_cpu() -> Duration {
    Duration::try_from(rustix::time::clock_gettime(
        rustix::time::ClockId::ThreadCPUTime,
    ))
    .unwrap()
}

/// A [`StdStack`] that notes which sockets the server reads, writes and
/// accepts on.
#[derive(Default)]
struct Counting {
    inner: StdStack,
    /// Descriptors `receive` was called on.
    received_on: Vec<i32>,
    /// Descriptors `send` was called on.
    sent_on: Vec<i32>,
    accepts: usize,
    /// Every `watch`: token and interest.
    watches: Vec<(usize, Interest)>,
}

impl Counting {
    fn forget(&mut self) {
        self.received_on.clear();
        self.sent_on.clear();
        self.accepts = 0;
    }
}

fn fd_of(socket: &TcpSocket) -> i32 {
    socket.as_fd().map_or(-1, |fd| fd.as_raw_fd())
}

impl TcpClientStack for Counting {
    type TcpSocket = TcpSocket;
    type Error = Error;

    fn socket(&mut self) -> Result<TcpSocket, Error> {
        self.inner.socket()
    }

    fn connect(&mut self, socket: &mut TcpSocket, remote: SocketAddr) -> nb::Result<(), Error> {
        self.inner.connect(socket, remote)
    }

    fn send(&mut self, socket: &mut TcpSocket, buffer: &[u8]) -> nb::Result<usize, Error> {
        self.sent_on.push(fd_of(socket));
        self.inner.send(socket, buffer)
    }

    fn receive(&mut self, socket: &mut TcpSocket, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        self.received_on.push(fd_of(socket));
        self.inner.receive(socket, buffer)
    }

    fn close(&mut self, socket: TcpSocket) -> Result<(), Error> {
        self.inner.close(socket)
    }
}

impl TcpFullStack for Counting {
    fn bind(&mut self, socket: &mut TcpSocket, local_port: u16) -> Result<(), Error> {
        self.inner.bind(socket, local_port)
    }

    fn listen(&mut self, socket: &mut TcpSocket) -> Result<(), Error> {
        self.inner.listen(socket)
    }

    fn accept(&mut self, socket: &mut TcpSocket) -> nb::Result<(TcpSocket, SocketAddr), Error> {
        self.accepts += 1;
        self.inner.accept(socket)
    }
}

impl Backend for Counting {
    fn abort(&mut self, socket: TcpSocket) -> Result<(), Error> {
        self.inner.abort(socket)
    }

    fn local_addr(&self, socket: &TcpSocket) -> Option<SocketAddr> {
        Backend::local_addr(&self.inner, socket)
    }

    fn reports_ready(&self) -> bool {
        self.inner.reports_ready()
    }

    fn watch(&mut self, socket: &TcpSocket, token: usize, interest: Interest) -> Result<(), Error> {
        self.watches.push((token, interest));
        self.inner.watch(socket, token, interest)
    }

    fn take_ready(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.inner.take_ready(tokens, ready);
    }
}

/// One turn of the documented loop: wait (at most `cap`), then poll.
/// Returns what the wait returned.
fn turn<H: Handler, const N: usize>(
    stack: &mut Counting,
    server: &mut Server<Counting, H, N, 256, 256, Heap>,
    clock: &StdClock,
    cap: Duration,
) -> usize {
    let cap = clock.now() + cap;
    let deadline = server.poll_at().map_or(cap, |t| t.min(cap));
    let ready = stack
        .inner
        .wait(server.interests(), Some(deadline), clock)
        .unwrap();
    server.poll(stack, clock.now());
    ready
}

#[test]
fn a_poll_services_the_active_connection_and_none_of_200_idle_ones() {
    // A backlog for all 201 clients at once (they connect before the first
    // accept).
    let mut stack = Counting {
        inner: StdStack::new(Config::default().with_backlog(512)),
        ..Counting::default()
    };
    let clock = StdClock::new();
    let mut server: Server<Counting, Echo, 256, 256, 256, Heap> =
        Server::new_in(Echo, tcpool_core::Config::new());
    server.listen(&mut stack, 0).unwrap();
    let addr = stack.inner.local_addr(server.listener().unwrap()).unwrap();

    let idle: Vec<TcpStream> = (0..200).map(|_| client(addr)).collect();
    let mut active = client(addr);
    let start = Instant::now();
    while server.active() < 201 {
        assert!(start.elapsed() < STEP, "{} accepted", server.active());
        turn(&mut stack, &mut server, &clock, Duration::from_millis(20));
    }
    // Quiet: nothing is ready, nothing is due.
    while turn(&mut stack, &mut server, &clock, Duration::from_millis(20)) > 0 {
        assert!(start.elapsed() < STEP, "never quiet");
    }

    stack.forget();
    active.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    let mut got = 0;
    active.set_nonblocking(true).unwrap();
    while got < back.len() {
        assert!(start.elapsed() < 2 * STEP, "no echo");
        turn(&mut stack, &mut server, &clock, Duration::from_millis(20));
        match active.read(&mut back[got..]) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&back, b"ping");

    let read: HashSet<i32> = stack.received_on.iter().copied().collect();
    let written: HashSet<i32> = stack.sent_on.iter().copied().collect();
    assert_eq!(read.len(), 1, "receive on {read:?}: only the active one");
    assert_eq!(written, read, "send on the active connection only");
    assert!(
        stack.received_on.len() <= 4,
        "{} receives for one message",
        stack.received_on.len()
    );
    assert_eq!(stack.accepts, 0, "the listener was not ready");
    assert_eq!(server.active(), 201);
    drop(idle);
}

/// Keeps every byte (it says it consumes input later, as an async handler
/// does), so the receive buffer fills and the connection waits for nothing.
struct Hoard;

impl Handler for Hoard {
    type State = ();
    const DEFERS_INPUT: bool = true;

    fn on_open(&mut self, _: &mut Conn<'_>) {}

    fn on_data(&mut self, _: &mut Conn<'_>, _: &mut (), _: &[u8]) -> usize {
        0
    }

    /// Keeps a half-closed connection open.
    fn on_peer_closed(&mut self, _: &mut Conn<'_>, _: &mut ()) {}
}

/// A client that resets instead of closing (SO_LINGER 0).
fn reset(c: TcpStream) {
    SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
    drop(c);
}

/// Brings one connection to `Hoard` into a state where the server asks for
/// nothing (`prepare` does the client's part), resets it from the client,
/// then runs the loop for 300 ms: returns the wakes (waits that reported
/// something) and the CPU time used.
fn reset_while_unwanted(prepare: impl FnOnce(&mut TcpStream)) -> (usize, Duration) {
    let mut stack = Counting::default();
    let clock = StdClock::new();
    let mut server: Server<Counting, Hoard, 2, 256, 256, Heap> =
        Server::new_in(Hoard, tcpool_core::Config::new());
    server.listen(&mut stack, 0).unwrap();
    let addr = stack.inner.local_addr(server.listener().unwrap()).unwrap();
    let mut c = client(addr);
    let start = Instant::now();
    while server.active() < 1 {
        assert!(start.elapsed() < STEP, "not accepted");
        turn(&mut stack, &mut server, &clock, Duration::from_millis(20));
    }
    // The connection is watched for input; `prepare` makes the server stop
    // wanting anything of it.
    prepare(&mut c);
    while turn(&mut stack, &mut server, &clock, Duration::from_millis(20)) == 0 {
        assert!(start.elapsed() < STEP, "the input was not seen");
    }
    while turn(&mut stack, &mut server, &clock, Duration::from_millis(20)) > 0 {
        assert!(start.elapsed() < STEP, "never quiet");
    }
    assert_eq!(
        stack.watches.last(),
        Some(&(1, Interest::NONE)),
        "the server wants nothing of slot 0 ({:?})",
        stack.watches
    );
    reset(c);
    let cpu_start = thread_cpu();
    let until = Instant::now() + Duration::from_millis(300);
    let mut wakes = 0;
    while Instant::now() < until {
        if turn(&mut stack, &mut server, &clock, Duration::from_millis(20)) > 0 {
            wakes += 1;
        }
    }
    let cpu = thread_cpu() - cpu_start;
    assert_eq!(server.active(), 1, "nobody looked at the connection");
    (wakes, cpu)
}

#[test]
fn a_reset_connection_with_a_full_receive_buffer_does_not_make_wait_spin() {
    let (wakes, cpu) = reset_while_unwanted(|c| {
        // More than the 256-byte receive buffer: it fills and stays full.
        c.write_all(&[7u8; 4096]).unwrap();
    });
    assert!(wakes <= 1, "{wakes} wakes: spinning on the hang-up");
    assert!(cpu < Duration::from_millis(30), "{cpu:?} of CPU in 300 ms");
}

#[test]
fn a_reset_half_closed_connection_does_not_make_wait_spin() {
    let (wakes, cpu) = reset_while_unwanted(|c| c.shutdown(Shutdown::Write).unwrap());
    assert!(wakes <= 1, "{wakes} wakes: spinning on the hang-up");
    assert!(cpu < Duration::from_millis(30), "{cpu:?} of CPU in 300 ms");
}

/// Sends `msg` from a new client and reads the echo back, while `step`
/// drives the servers.
fn echo_through(addr: SocketAddr, msg: &[u8], mut step: impl FnMut()) {
    let mut c = client(addr);
    c.set_nonblocking(true).unwrap();
    c.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    let mut got = 0;
    let start = Instant::now();
    while got < back.len() {
        assert!(start.elapsed() < STEP, "no echo");
        step();
        match c.read(&mut back[got..]) {
            Ok(0) => panic!("closed"),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(back, msg);
}

#[test]
fn two_servers_on_one_stack_with_their_own_tokens_both_serve() {
    let mut stack = StdStack::new(Config::default());
    let clock = StdClock::new();
    let mut a: Server<StdStack, Echo, 4, 256, 256> = Server::new(Echo, tcpool_core::Config::new());
    let mut b: Server<StdStack, Echo, 4, 256, 256> = Server::new(Echo, tcpool_core::Config::new());
    b.set_tokens(a.capacity() + 1);
    a.listen(&mut stack, 0).unwrap();
    b.listen(&mut stack, 0).unwrap();
    let addr_a = stack.local_addr(a.listener().unwrap()).unwrap();
    let addr_b = stack.local_addr(b.listener().unwrap()).unwrap();

    let mut step = || {
        a.poll(&mut stack, clock.now());
        b.poll(&mut stack, clock.now());
        let cap = clock.now() + Duration::from_millis(20);
        let deadline = [a.poll_at(), b.poll_at()]
            .into_iter()
            .flatten()
            .fold(cap, |d, t| d.min(t));
        stack
            .wait(a.interests().chain(b.interests()), Some(deadline), &clock)
            .unwrap();
    };
    echo_through(addr_a, b"to a", &mut step);
    echo_through(addr_b, b"to b", &mut step);
    echo_through(addr_a, b"a again", &mut step);

    assert_eq!(a.stats().accepted, 2);
    assert_eq!(b.stats().accepted, 1);
}

#[test]
fn a_server_polled_without_waits_still_sees_what_becomes_ready() {
    let (mut stack, clock, mut server, addr) = common::echo_server();
    echo_through(addr, b"no wait in this loop", || {
        server.poll(&mut stack, clock.now());
        std::thread::sleep(Duration::from_millis(1));
    });
    echo_through(addr, b"nor in this one", || {
        server.poll(&mut stack, clock.now());
    });
}

#[test]
fn a_closed_socket_is_not_reported_under_its_old_token() {
    let (mut stack, mut listener, addr) = common::listening(Config::default());
    let mut c = client(addr);
    let (conn, _) = common::accept(&mut stack, &mut listener);
    stack.watch(&conn, 7, Interest::READABLE).unwrap();
    c.write_all(b"unread").unwrap();
    let clock = StdClock::new();
    assert_eq!(
        stack
            .wait(core::iter::empty(), Some(clock.now() + STEP), &clock)
            .unwrap(),
        1
    );
    let mut seen = Vec::new();
    stack.take_ready(0..10, &mut |t| seen.push(t));
    assert_eq!(seen, [7]);

    // The unread input makes the close linger: the socket stays open, in
    // the epoll set, under a key of the stack's own.
    stack.close(conn).unwrap();
    assert_eq!(stack.lingering(), 1);
    c.write_all(b"more, still unread").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let ready = stack
        .wait(
            core::iter::empty(),
            Some(clock.now() + Duration::from_millis(50)),
            &clock,
        )
        .unwrap();
    assert_eq!(ready, 0, "the lingering socket is not a server's");
    seen.clear();
    stack.take_ready(0..usize::MAX >> 1, &mut |t| seen.push(t));
    assert_eq!(seen, [] as [usize; 0]);

    // The client finishes: the lingering close ends.
    c.shutdown(Shutdown::Write).unwrap();
    let start = Instant::now();
    while stack.lingering() > 0 {
        assert!(start.elapsed() < STEP, "not released");
        stack
            .wait(
                core::iter::empty(),
                Some(clock.now() + Duration::from_millis(10)),
                &clock,
            )
            .unwrap();
    }
}

#[test]
fn watching_with_no_interest_stops_the_reports() {
    let (mut stack, mut listener, addr) = common::listening(Config::default());
    let mut c = client(addr);
    let (conn, _) = common::accept(&mut stack, &mut listener);
    stack.watch(&conn, 3, Interest::READABLE).unwrap();
    c.write_all(b"x").unwrap();
    let clock = StdClock::new();
    let soon = || clock.now() + Duration::from_millis(30);
    assert_eq!(
        stack
            .wait(core::iter::empty(), Some(clock.now() + STEP), &clock)
            .unwrap(),
        1
    );
    // Level-triggered: still readable, still reported.
    assert_eq!(
        stack
            .wait(core::iter::empty(), Some(soon()), &clock)
            .unwrap(),
        1
    );
    stack.watch(&conn, 3, Interest::NONE).unwrap();
    let mut seen = Vec::new();
    stack.take_ready(0..10, &mut |t| seen.push(t));
    assert_eq!(seen, [] as [usize; 0], "the change is seen at once");
    assert_eq!(
        stack
            .wait(core::iter::empty(), Some(soon()), &clock)
            .unwrap(),
        0
    );
    // Watched for writing: a connection with room is writable.
    stack.watch(&conn, 4, Interest::WRITABLE).unwrap();
    stack.take_ready(0..10, &mut |t| seen.push(t));
    assert_eq!(seen, [4]);
}

/// (On 32-bit targets every token fits beside the stack's own keys.)
#[cfg(target_pointer_width = "64")]
#[test]
fn a_token_the_stack_keeps_for_itself_is_refused() {
    let (mut stack, listener, _) = common::listening(Config::default());
    let e = stack
        .watch(&listener, usize::MAX, Interest::READABLE)
        .unwrap_err();
    assert_eq!(
        e.io_error().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
}

#[test]
fn a_server_of_1024_slots_with_4_kib_buffers_is_built_on_the_heap_and_serves() {
    // 8 MiB of slots: on the stack of a test thread (2 MiB), an unoptimised
    // build would overflow if the slots passed through it.
    let mut server = Box::new(Server::<StdStack, Echo, 1024, 4096, 4096, Heap>::new_in(
        Echo,
        tcpool_core::Config::new(),
    ));
    assert!(core::mem::size_of::<Server<StdStack, Echo, 1024, 4096, 4096, Heap>>() < 1024 * 1024);
    let mut stack = StdStack::default();
    let clock = StdClock::new();
    server.listen(&mut stack, 0).unwrap();
    let addr = stack.local_addr(server.listener().unwrap()).unwrap();
    echo_through(addr, &[42u8; 10_000], || {
        server.poll(&mut stack, clock.now());
        let cap = clock.now() + Duration::from_millis(20);
        let deadline = server.poll_at().map_or(cap, |t| t.min(cap));
        stack
            .wait(server.interests(), Some(deadline), &clock)
            .unwrap();
    });
    assert_eq!(server.stats().accepted, 1);
}
