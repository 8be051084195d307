//! tcpool-core's `Server` driven over `LwipStack` against the host lwIP,
//! with lwIP clients in other threads: the loop a firmware runs (poll,
//! poll_at, wait on interests), and a server poll reading only from the
//! connections the stack reports ready.
//!
//! Its own test binary, so its own lwIP; the tests share its 10 sockets and
//! take a lock.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use embedded_nal::{TcpClientStack, TcpFullStack};
use tcpool_conformance::Echo;
use tcpool_core::{Backend, Interest, Server};
use tcpool_lwip::{Config, Error, LwipStack, Socket, SocketBudget};

const STEP: Duration = Duration::from_secs(20);

fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    tcpool_lwip_host::init();
    guard
}

/// Milliseconds since the first call, as the server's clock.
fn now() -> tcpool_core::Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    tcpool_core::Instant::from_millis(start.elapsed().as_millis() as u64)
}

/// The firmware loop: poll, then sleep in `lwip_select` until a socket is
/// ready or the server's next deadline (at most 20 ms, so `done` is
/// checked) until `done` says so. Returns how many times it went round.
fn serve<const N: usize>(
    stack: &mut LwipStack,
    server: &mut Server<LwipStack, Echo, N, 256, 256>,
    mut done: impl FnMut(&LwipStack, &Server<LwipStack, Echo, N, 256, 256>) -> bool,
) -> usize {
    let started = Instant::now();
    let mut rounds = 0;
    while !done(stack, server) {
        assert!(started.elapsed() < STEP, "the server loop did not finish");
        server.poll(stack, now());
        let cap = Duration::from_millis(20);
        let timeout = server
            .poll_at()
            .map_or(cap, |t| t.saturating_duration_since(now()).min(cap));
        stack.wait(server.interests(), Some(timeout)).unwrap();
        rounds += 1;
    }
    rounds
}

/// An lwIP client in its own thread: connect, send `len` bytes, read them
/// back, close.
fn echo_client(port: u16, seed: u8, len: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut stack = LwipStack::new(
            Config::default()
                .with_socket_budget(1)
                .with_lingering_close(None),
        );
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let block = |what: &str, started: Instant| {
            assert!(started.elapsed() < STEP, "client {seed}: {what} timed out");
            thread::sleep(Duration::from_millis(1));
        };
        let mut s = stack.socket().unwrap();
        let t = Instant::now();
        loop {
            match stack.connect(&mut s, to) {
                Ok(()) => break,
                Err(nb::Error::WouldBlock) => block("connect", t),
                Err(nb::Error::Other(e)) => panic!("client {seed}: {e}"),
            }
        }
        let msg: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
        let mut sent = 0;
        let mut back = Vec::new();
        let mut buf = [0u8; 512];
        let t = Instant::now();
        while back.len() < len {
            if sent < len {
                match stack.send(&mut s, &msg[sent..]) {
                    Ok(n) => sent += n,
                    Err(nb::Error::WouldBlock) => {}
                    Err(nb::Error::Other(e)) => panic!("client {seed}: {e}"),
                }
            }
            match stack.receive(&mut s, &mut buf) {
                Ok(0) => panic!("client {seed}: end of stream after {}", back.len()),
                Ok(n) => back.extend_from_slice(&buf[..n]),
                Err(nb::Error::WouldBlock) => block("echo", t),
                Err(nb::Error::Other(e)) => panic!("client {seed}: {e}"),
            }
        }
        assert_eq!(back, msg, "client {seed}: echo corrupted");
        stack.close(s).unwrap();
    })
}

#[test]
fn core_server_echoes_for_lwip_clients() {
    let _lock = lock();
    // 10 lwIP sockets: 3 clients, the listener and 3 connections.
    let mut stack = LwipStack::new(Config::new(SocketBudget::new(10).reserved(3)));
    let mut server: Server<LwipStack, Echo, 4, 256, 256> =
        Server::new(Echo, tcpool_core::Config::new());
    server.listen(&mut stack, 0).unwrap();
    let port = server.listener().unwrap().local_addr().unwrap().port();

    let clients: Vec<_> = (0..3).map(|i| echo_client(port, i, 3000)).collect();
    serve(&mut stack, &mut server, |_, _| {
        clients.iter().all(|c| c.is_finished())
    });
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(server.stats().accepted, 3);
    assert_eq!(server.stats().accept_errors, 0);
    // Let the server see the clients' ends of stream and close.
    serve(&mut stack, &mut server, |_, server| server.active() == 0);
    serve(&mut stack, &mut server, |stack, _| stack.lingering() == 0);
    assert_eq!(stack.sockets_in_use(), 1);
}

#[test]
fn beyond_the_socket_budget_clients_wait_in_the_backlog_and_are_all_served() {
    let _lock = lock();
    // Eight slots, but a budget of two connections: the other clients wait
    // in lwIP's listen backlog, none is reset.
    let budget = SocketBudget::new(3);
    assert_eq!(budget.connections(), 2);
    let mut stack = LwipStack::new(Config::new(budget));
    let mut server: Server<LwipStack, Echo, 8, 256, 256> = Server::new(
        Echo,
        tcpool_core::Config::new().with_accept_backoff(Duration::from_millis(5)),
    );
    server.listen(&mut stack, 0).unwrap();
    let port = server.listener().unwrap().local_addr().unwrap().port();

    let clients: Vec<_> = (0..5).map(|i| echo_client(port, i, 500)).collect();
    serve(&mut stack, &mut server, |_, _| {
        clients.iter().all(|c| c.is_finished())
    });
    for c in clients {
        c.join().unwrap();
    }
    let stats = server.stats();
    assert_eq!(stats.accepted, 5);
    assert!(stats.peak_active <= 2, "peak {}", stats.peak_active);
    assert!(stats.accept_errors > 0, "the budget never refused");
    serve(&mut stack, &mut server, |_, server| server.active() == 0);
}

#[test]
fn idle_core_server_sleeps_in_select() {
    let _lock = lock();
    let mut stack = LwipStack::default();
    let mut server: Server<LwipStack, Echo, 4, 256, 256> =
        Server::new(Echo, tcpool_core::Config::new());
    server.listen(&mut stack, 0).unwrap();
    let port = server.listener().unwrap().local_addr().unwrap().port();

    // One idle client connected, one idle listener.
    let mut clients = LwipStack::new(Config::default().with_lingering_close(None));
    let mut client = clients.socket().unwrap();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let t = Instant::now();
    while let Err(e) = clients.connect(&mut client, to) {
        assert!(matches!(e, nb::Error::WouldBlock), "{e:?}");
        assert!(t.elapsed() < STEP);
        thread::sleep(Duration::from_millis(1));
    }
    serve(&mut stack, &mut server, |_, server| server.active() == 1);

    let until = Instant::now() + Duration::from_millis(300);
    let rounds = serve(&mut stack, &mut server, |_, _| Instant::now() >= until);
    // 300 ms at one wake-up per 20 ms at most, not a busy loop.
    assert!(rounds <= 20, "{rounds} rounds in 300 ms idle");
    assert_eq!(server.active(), 1);
    clients.close(client).unwrap();
    serve(&mut stack, &mut server, |_, server| server.active() == 0);
}

/// The server stack, counting `receive` calls per peer.
struct Counting {
    inner: LwipStack,
    receives: BTreeMap<SocketAddr, usize>,
}

impl TcpClientStack for Counting {
    type TcpSocket = Socket;
    type Error = Error;

    fn socket(&mut self) -> Result<Socket, Error> {
        self.inner.socket()
    }

    fn connect(&mut self, socket: &mut Socket, remote: SocketAddr) -> nb::Result<(), Error> {
        self.inner.connect(socket, remote)
    }

    fn send(&mut self, socket: &mut Socket, buffer: &[u8]) -> nb::Result<usize, Error> {
        self.inner.send(socket, buffer)
    }

    fn receive(&mut self, socket: &mut Socket, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        let peer = socket.peer_addr().expect("a connection");
        *self.receives.entry(peer).or_default() += 1;
        self.inner.receive(socket, buffer)
    }

    fn close(&mut self, socket: Socket) -> Result<(), Error> {
        self.inner.close(socket)
    }
}

impl TcpFullStack for Counting {
    fn bind(&mut self, socket: &mut Socket, port: u16) -> Result<(), Error> {
        self.inner.bind(socket, port)
    }

    fn listen(&mut self, socket: &mut Socket) -> Result<(), Error> {
        self.inner.listen(socket)
    }

    fn accept(&mut self, socket: &mut Socket) -> nb::Result<(Socket, SocketAddr), Error> {
        self.inner.accept(socket)
    }
}

impl Backend for Counting {
    fn abort(&mut self, socket: Socket) -> Result<(), Error> {
        self.inner.abort(socket)
    }

    fn local_addr(&self, socket: &Socket) -> Option<SocketAddr> {
        Backend::local_addr(&self.inner, socket)
    }

    fn reports_ready(&self) -> bool {
        self.inner.reports_ready()
    }

    fn watch(&mut self, socket: &Socket, token: usize, interest: Interest) -> Result<(), Error> {
        self.inner.watch(socket, token, interest)
    }

    fn take_ready(&mut self, tokens: Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.inner.take_ready(tokens, ready);
    }
}

#[test]
fn a_poll_receives_only_from_connections_with_input() {
    let _lock = lock();
    let mut stack = Counting {
        inner: LwipStack::default(),
        receives: BTreeMap::new(),
    };
    assert!(stack.reports_ready());
    let mut server: Server<Counting, Echo, 4, 256, 256> =
        Server::new(Echo, tcpool_core::Config::new());
    server.listen(&mut stack, 0).unwrap();
    assert_eq!(server.interests().count(), 0, "the stack watches");
    let port = server.listener().unwrap().local_addr().unwrap().port();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    // A loop that waits (on what the server watches) between polls, and
    // sometimes polls twice without a wait: the stack must then look
    // itself.
    let mut polls = 0;
    let mut run =
        |stack: &mut Counting,
         server: &mut Server<Counting, Echo, 4, 256, 256>,
         done: &mut dyn FnMut(&mut Server<Counting, Echo, 4, 256, 256>) -> bool| {
            let started = Instant::now();
            while !done(server) {
                assert!(started.elapsed() < STEP, "the server loop did not finish");
                server.poll(stack, now());
                polls += 1;
                if polls % 3 == 0 {
                    server.poll(stack, now());
                    polls += 1;
                }
                let timeout = Duration::from_millis(5);
                stack.inner.wait(server.interests(), Some(timeout)).unwrap();
            }
            polls
        };

    // Four clients: three idle, one active.
    let mut clients = LwipStack::new(Config::default().with_lingering_close(None));
    let mut socks = Vec::new();
    for n in 1..=4 {
        let mut c = clients.socket().unwrap();
        let t = Instant::now();
        while let Err(e) = clients.connect(&mut c, to) {
            assert!(matches!(e, nb::Error::WouldBlock), "{e:?}");
            assert!(t.elapsed() < STEP);
            thread::sleep(Duration::from_millis(1));
        }
        socks.push(c);
        run(&mut stack, &mut server, &mut |server| server.active() == n);
    }
    stack.receives.clear();
    let before = run(&mut stack, &mut server, &mut |_| true);
    let active = socks[1].local_addr().unwrap();
    let mut echoed = Vec::new();
    for round in 0..3 {
        let mut sent = false;
        run(&mut stack, &mut server, &mut |_| {
            if !sent {
                sent = clients.send(&mut socks[1], b"ping").is_ok();
            }
            let mut buf = [0u8; 64];
            if let Ok(n) = clients.receive(&mut socks[1], &mut buf) {
                echoed.extend_from_slice(&buf[..n]);
            }
            echoed.len() == (round + 1) * 4
        });
    }
    assert_eq!(echoed, b"pingpingping");
    let polls = run(&mut stack, &mut server, &mut |_| true) - before;
    let receives: Vec<_> = stack.receives.iter().map(|(a, n)| (*a, *n)).collect();
    assert_eq!(receives.len(), 1, "receive calls per peer: {receives:?}");
    assert_eq!(receives[0].0, active);
    assert!(
        (3..=polls).contains(&receives[0].1),
        "{} receive calls in {polls} polls",
        receives[0].1
    );
    // All idle for a while: no receive at all.
    let quiet = stack.receives.clone();
    let until = Instant::now() + Duration::from_millis(100);
    run(&mut stack, &mut server, &mut |_| Instant::now() >= until);
    assert_eq!(stack.receives, quiet, "receive calls while all were idle");

    for c in socks {
        clients.close(c).unwrap();
    }
    run(&mut stack, &mut server, &mut |server| server.active() == 0);
}

#[test]
fn a_watched_socket_dropped_instead_of_closed_does_not_break_waiting() {
    let _lock = lock();
    let mut stack = LwipStack::default();
    let listener = |stack: &mut LwipStack| {
        let mut l = stack.socket().unwrap();
        stack.bind(&mut l, 0).unwrap();
        stack.listen(&mut l).unwrap();
        l
    };
    let dropped = listener(&mut stack);
    let mut kept = listener(&mut stack);
    stack.watch(&dropped, 1, Interest::READABLE).unwrap();
    stack.watch(&kept, 2, Interest::READABLE).unwrap();
    // Closes the lwIP socket behind the stack's back.
    drop(dropped);
    let none: [(&Socket, Interest); 0] = [];
    assert_eq!(stack.wait(none, Some(Duration::from_millis(5))).unwrap(), 0);
    let mut tokens = Vec::new();
    stack.take_ready(0..10, &mut |t| tokens.push(t));
    assert_eq!(tokens, []);
    // The other watch still reports.
    let port = kept.local_addr().unwrap().port();
    let mut clients = LwipStack::new(Config::default().with_lingering_close(None));
    let mut c = clients.socket().unwrap();
    let _ = clients.connect(&mut c, SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let none: [(&Socket, Interest); 0] = [];
    assert_eq!(stack.wait(none, Some(STEP)).unwrap(), 1);
    let mut tokens = Vec::new();
    stack.take_ready(0..10, &mut |t| tokens.push(t));
    assert_eq!(tokens, [2]);
    let (conn, _) = stack.accept(&mut kept).unwrap();
    stack.close(conn).unwrap();
    stack.close(kept).unwrap();
    clients.close(c).unwrap();
}
