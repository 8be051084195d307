//! tcpool-lwip against a real lwIP (the host build of `tcpool-lwip-host`):
//! what lwIP does at its limits, and what the backend makes of it.
//!
//! lwIP is one stack per process with 10 sockets (numbered 54..64, as on
//! ESP-IDF) shared by the servers and the lwIP clients that talk to them
//! over 127.0.0.1, so the tests take a global lock and each leaves lwIP's
//! socket table empty (checked).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use tcpool_lwip::{Config, Errno, Error, Interest, Keepalive, LwipStack, Socket, SocketState};

const LWIP_SOCKETS: usize = tcpool_lwip_host::NUM_SOCKETS;

/// Serialises the tests (one lwIP, 10 sockets) and aborts the process if a
/// test hangs (a blocking lwIP call would never return).
struct Fixture {
    _lock: MutexGuard<'static, ()>,
    done: Arc<AtomicBool>,
}

fn fixture() -> Fixture {
    static LOCK: Mutex<()> = Mutex::new(());
    let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tcpool_lwip_host::init();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let name = thread::current().name().unwrap_or("?").to_owned();
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !flag.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                eprintln!("test {name} hung: aborting");
                std::process::abort();
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    Fixture { _lock: lock, done }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if !thread::panicking() {
            assert_lwip_socket_table_empty();
        }
    }
}

/// All of lwIP's sockets can be opened (bound to port 0) again: nothing
/// leaked.
fn assert_lwip_socket_table_empty() {
    let mut stack = LwipStack::new(Config::default().with_socket_budget(LWIP_SOCKETS + 1));
    let mut held = Vec::new();
    for i in 0..LWIP_SOCKETS {
        let mut s = stack.socket().unwrap();
        if let Err(e) = stack.bind(&mut s, 0) {
            panic!("lwIP socket table not empty: socket {i} failed: {e}");
        }
        held.push(s);
    }
    let mut extra = stack.socket().unwrap();
    let err = stack.bind(&mut extra, 0).unwrap_err();
    assert_eq!(
        err,
        Error::OutOfSockets {
            errno: Some(Errno::ENFILE)
        }
    );
    stack.close(extra).unwrap();
    for s in held {
        stack.close(s).unwrap();
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Retries a non-blocking call until it completes (sleeping in between).
fn block<T>(what: &str, mut f: impl FnMut() -> nb::Result<T, Error>) -> Result<T, Error> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(nb::Error::Other(e)) => return Err(e),
            Err(nb::Error::WouldBlock) => {
                assert!(Instant::now() < deadline, "timed out: {what}");
                thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// A stack for lwIP clients: no budget worth mentioning, no lingering.
fn client_stack() -> LwipStack {
    LwipStack::new(
        Config::default()
            .with_socket_budget(100)
            .with_lingering_close(None),
    )
}

fn listen(stack: &mut LwipStack) -> (Socket, u16) {
    let mut listener = stack.socket().unwrap();
    stack.bind(&mut listener, 0).unwrap();
    stack.listen(&mut listener).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn connect(stack: &mut LwipStack, to: SocketAddr) -> Socket {
    let mut s = stack.socket().unwrap();
    block("connect", || stack.connect(&mut s, to)).unwrap();
    s
}

fn accept(stack: &mut LwipStack, listener: &mut Socket) -> (Socket, SocketAddr) {
    block("accept", || stack.accept(listener)).unwrap()
}

fn send_all(stack: &mut LwipStack, s: &mut Socket, mut data: &[u8]) {
    while !data.is_empty() {
        let n = block("send", || stack.send(s, data)).unwrap();
        data = &data[n..];
    }
}

/// Reads until end of stream.
fn read_to_end(stack: &mut LwipStack, s: &mut Socket) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match block("receive", || stack.receive(s, &mut buf)).unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn read_exact(stack: &mut LwipStack, s: &mut Socket, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = block("receive", || stack.receive(s, &mut out[got..])).unwrap();
        assert_ne!(n, 0, "end of stream after {got} of {len} bytes");
        got += n;
    }
    out
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn accepted_sockets_are_non_blocking() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    assert!(listener.is_nonblocking().unwrap());
    assert!(matches!(
        server.accept(&mut listener),
        Err(nb::Error::WouldBlock)
    ));

    let client = connect(&mut clients, localhost(port));
    let (mut conn, peer) = accept(&mut server, &mut listener);
    assert_eq!(conn.state(), SocketState::Connected);
    assert!(conn.is_nonblocking().unwrap());
    assert!(client.is_nonblocking().unwrap());
    // The peer address is the client's, not the listener's.
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(conn.peer_addr(), Some(peer));
    // Nothing buffered: WouldBlock at once, not a blocking recv.
    let mut buf = [0u8; 16];
    let started = Instant::now();
    assert!(matches!(
        server.receive(&mut conn, &mut buf),
        Err(nb::Error::WouldBlock)
    ));
    assert!(started.elapsed() < Duration::from_secs(1));

    clients.close(client).unwrap();
    server.close(conn).unwrap();
    server.close(listener).unwrap();
}

#[test]
fn end_of_stream_is_zero_then_enotconn_and_both_read_as_end_of_stream() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let mut client = connect(&mut clients, localhost(port));
    let (mut conn, _) = accept(&mut server, &mut listener);

    send_all(&mut clients, &mut client, b"hello");
    clients.close(client).unwrap();

    assert_eq!(read_to_end(&mut server, &mut conn), b"hello");
    // lwIP's recv returned 0 (end of stream) for that read.
    assert_ne!(conn.last_errno(), Some(Errno::ENOTCONN));
    // The next lwIP recv fails with ENOTCONN: still end of stream.
    let mut buf = [0u8; 16];
    assert_eq!(server.receive(&mut conn, &mut buf), Ok(0));
    assert_eq!(conn.last_errno(), Some(Errno::ENOTCONN));
    assert_eq!(server.receive(&mut conn, &mut buf), Ok(0));
    assert_eq!(conn.state(), SocketState::Connected);

    server.close(conn).unwrap();
    server.close(listener).unwrap();
}

#[test]
fn data_then_fin_read_late_is_delivered_in_full() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let mut client = connect(&mut clients, localhost(port));
    let (mut conn, _) = accept(&mut server, &mut listener);

    // Up to the receive window, sent and closed before the server reads a
    // byte: data and FIN are all queued in lwIP when the server gets to it.
    let data = pattern(5_000);
    send_all(&mut clients, &mut client, &data);
    clients.close(client).unwrap();
    thread::sleep(Duration::from_millis(100));

    assert_eq!(read_to_end(&mut server, &mut conn), data);
    server.close(conn).unwrap();
    server.close(listener).unwrap();
}

#[test]
fn accept_with_a_full_socket_table_is_out_of_sockets_and_recovers() {
    let _f = fixture();
    // No budget: let lwIP's own table run out.
    let mut server = LwipStack::new(Config::default().with_socket_budget(100));
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);

    // listener + 4 clients + 4 accepted = 9 of lwIP's 10 sockets.
    let mut pairs = Vec::new();
    for _ in 0..4 {
        let client = connect(&mut clients, localhost(port));
        let (conn, _) = accept(&mut server, &mut listener);
        pairs.push((client, conn));
    }
    // The 10th socket is a client whose connection lwIP completes and queues;
    // it sends its request at once.
    let mut last = connect(&mut clients, localhost(port));
    send_all(&mut clients, &mut last, b"request");
    thread::sleep(Duration::from_millis(50));
    let err = block("accept", || server.accept(&mut listener)).unwrap_err();
    assert!(err.is_out_of_sockets(), "{err}");
    // lwIP took the pending connection to find no socket for it: ENFILE
    // (ESP-IDF's heap-allocated netconns), and it closes that connection,
    // with its request unread: a reset. The client is lost.
    assert_eq!(
        err,
        Error::OutOfSockets {
            errno: Some(Errno::ENFILE)
        }
    );
    assert_eq!(err.kind(), TcpErrorKind::Other);
    let mut buf = [0u8; 8];
    let dropped = block("the dropped client hears of it", || {
        clients.receive(&mut last, &mut buf)
    });
    assert_eq!(dropped, Err(Error::ConnectionLost(Errno::ECONNRESET)));
    clients.close(last).unwrap();

    // Free a pair: the server accepts again.
    let (client, conn) = pairs.pop().unwrap();
    clients.close(client).unwrap();
    server.close(conn).unwrap();
    let mut client = connect(&mut clients, localhost(port));
    let (mut conn, _) = accept(&mut server, &mut listener);
    send_all(&mut clients, &mut client, b"again");
    assert_eq!(read_exact(&mut server, &mut conn, 5), b"again");

    pairs.push((client, conn));
    for (client, conn) in pairs {
        clients.close(client).unwrap();
        server.close(conn).unwrap();
    }
    server.close(listener).unwrap();
}

#[test]
fn socket_budget_is_enforced_without_asking_lwip() {
    let _f = fixture();
    let mut stack = LwipStack::new(Config::default().with_socket_budget(3));
    let a = stack.socket().unwrap();
    let b = stack.socket().unwrap();
    let c = stack.socket().unwrap();
    assert_eq!(stack.sockets_in_use(), 3);
    let err = stack.socket().unwrap_err();
    assert_eq!(err, Error::OutOfSockets { errno: None });
    stack.close(a).unwrap();
    let d = stack.socket().unwrap();
    for s in [b, c, d] {
        stack.close(s).unwrap();
    }
    assert_eq!(stack.sockets_in_use(), 0);
}

#[test]
fn at_the_budget_a_client_waits_in_the_backlog_instead_of_being_reset() {
    let _f = fixture();
    // Listener + one connection; lingering close on (the default).
    let mut server = LwipStack::new(Config::default().with_socket_budget(2));
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);

    let mut first = connect(&mut clients, localhost(port));
    let (mut conn, _) = accept(&mut server, &mut listener);
    let mut second = connect(&mut clients, localhost(port));
    send_all(&mut clients, &mut second, b"waiting");
    thread::sleep(Duration::from_millis(50));
    // The second client is pending in lwIP; the budget says no, so lwIP is
    // not asked (it would reset the client if its table were full).
    let err = block("accept", || server.accept(&mut listener)).unwrap_err();
    assert_eq!(err, Error::OutOfSockets { errno: None });

    // The first connection ends; its socket lingers (the client has not
    // closed) but is reclaimed as soon as the budget needs it.
    send_all(&mut server, &mut conn, b"bye");
    server.close(conn).unwrap();
    assert_eq!(server.lingering(), 1);
    let (mut conn2, _) = accept(&mut server, &mut listener);
    assert_eq!(server.lingering(), 0);
    assert_eq!(read_exact(&mut server, &mut conn2, 7), b"waiting");
    assert_eq!(read_to_end(&mut clients, &mut first), b"bye");

    clients.close(first).unwrap();
    clients.close(second).unwrap();
    server.close(conn2).unwrap();
    server.close(listener).unwrap();
}

fn echo_round_trip(bind: IpAddr, connect_to: IpAddr) {
    let mut server = LwipStack::new(Config::default().with_bind_ip(bind));
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let mut client = connect(&mut clients, SocketAddr::new(connect_to, port));
    let (mut conn, peer) = accept(&mut server, &mut listener);
    assert_eq!(peer.ip(), connect_to);

    // 200 kB each way, both sides non-blocking, with partial sends.
    let data = pattern(200_000);
    let (mut sent, mut echoed, mut received) = (0, 0, Vec::new());
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 3000];
    let deadline = Instant::now() + TIMEOUT;
    while received.len() < data.len() {
        assert!(
            Instant::now() < deadline,
            "echo stalled at {}",
            received.len()
        );
        let mut progress = false;
        // An empty slice sends nothing (Ok(0)).
        let chunk = &data[sent..(sent + 1700).min(data.len())];
        if let Ok(n @ 1..) = clients.send(&mut client, chunk) {
            sent += n;
            progress = true;
        }
        if let Ok(n) = server.receive(&mut conn, &mut buf) {
            assert_ne!(n, 0);
            pending.extend_from_slice(&buf[..n]);
            progress = true;
        }
        if let Ok(n @ 1..) = server.send(&mut conn, &pending) {
            pending.drain(..n);
            echoed += n;
            progress = true;
        }
        if let Ok(n) = clients.receive(&mut client, &mut buf) {
            assert_ne!(n, 0);
            received.extend_from_slice(&buf[..n]);
            progress = true;
        }
        if !progress {
            let interests = [
                (
                    &client,
                    Interest {
                        readable: true,
                        writable: sent < data.len(),
                    },
                ),
                (
                    &conn,
                    Interest {
                        readable: true,
                        writable: !pending.is_empty(),
                    },
                ),
            ];
            tcpool_lwip::wait(interests, Some(Duration::from_millis(50))).unwrap();
        }
    }
    assert_eq!(echoed, data.len());
    assert!(received == data, "echo corrupted");

    clients.close(client).unwrap();
    assert_eq!(read_to_end(&mut server, &mut conn), b"");
    server.close(conn).unwrap();
    server.close(listener).unwrap();
}

#[test]
fn echo_round_trip_over_ipv4() {
    let _f = fixture();
    echo_round_trip(Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::LOCALHOST.into());
}

#[test]
fn echo_round_trip_over_ipv6() {
    let _f = fixture();
    echo_round_trip(Ipv6Addr::UNSPECIFIED.into(), Ipv6Addr::LOCALHOST.into());
}

#[test]
fn wait_times_out_when_nothing_happens() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let client = connect(&mut clients, localhost(port));
    let (conn, _) = accept(&mut server, &mut listener);

    let started = Instant::now();
    let ready = tcpool_lwip::wait(
        [(&conn, Interest::READABLE), (&listener, Interest::READABLE)],
        Some(Duration::from_millis(200)),
    )
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(ready, 0);
    assert!(
        waited >= Duration::from_millis(190),
        "woke after {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "woke after {waited:?}");

    // A connected socket with room to send is writable at once.
    let ready =
        tcpool_lwip::wait([(&conn, Interest::WRITABLE)], Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ready, 1);
    // Nothing to wait for and no timeout: returns at once.
    assert_eq!(
        tcpool_lwip::wait([(&conn, Interest::NONE)], None).unwrap(),
        0
    );

    clients.close(client).unwrap();
    server.close(conn).unwrap();
    server.close(listener).unwrap();
}

#[test]
fn wait_wakes_when_data_or_a_connection_arrives() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let (mut listener, port) = listen(&mut server);

    // A connection arriving wakes a wait on the listener (on the host; on
    // ESP-IDF such a wait is capped at 20 ms instead).
    let client_thread = thread::spawn(move || {
        let mut clients = client_stack();
        thread::sleep(Duration::from_millis(100));
        let mut client = connect(&mut clients, localhost(port));
        thread::sleep(Duration::from_millis(100));
        send_all(&mut clients, &mut client, b"wake up");
        (clients, client)
    });
    let started = Instant::now();
    let ready = server
        .wait(
            [(&listener, Interest::READABLE)],
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    assert_eq!(ready, 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    let (mut conn, _) = accept(&mut server, &mut listener);

    // Data arriving wakes a wait on the connection.
    let ready = server
        .wait([(&conn, Interest::READABLE)], Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ready, 1);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(read_exact(&mut server, &mut conn, 7), b"wake up");

    let (mut clients, client) = client_thread.join().unwrap();
    clients.close(client).unwrap();
    // End of stream also wakes a readable wait.
    let ready = server
        .wait([(&conn, Interest::READABLE)], Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ready, 1);
    assert_eq!(read_to_end(&mut server, &mut conn), b"");
    server.close(conn).unwrap();
    server.close(listener).unwrap();
}

#[test]
fn two_thousand_connect_send_close_cycles_lose_nothing() {
    let _f = fixture();
    const CYCLES: u64 = 2_000;
    const IN_FLIGHT: usize = 4;
    // Listener + 4 connections for the server, up to 4 lwIP clients: 9 of
    // lwIP's 10 sockets.
    let mut server = LwipStack::new(Config::default().with_socket_budget(1 + IN_FLIGHT));
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);

    let mut started = 0u64;
    let mut connecting: Vec<(Socket, u64)> = Vec::new();
    let mut conns: Vec<(Socket, Vec<u8>)> = Vec::new();
    let mut received = BTreeSet::new();
    let mut budget_refusals = 0u32;
    let deadline = Instant::now() + Duration::from_secs(100);
    while received.len() < CYCLES as usize {
        assert!(
            Instant::now() < deadline,
            "stalled at {} cycles",
            received.len()
        );
        // Clients: connect, send 8 bytes, close at once.
        while started < CYCLES && connecting.len() < IN_FLIGHT {
            connecting.push((clients.socket().unwrap(), started));
            started += 1;
        }
        let mut still = Vec::new();
        for (mut s, id) in connecting.drain(..) {
            match clients.connect(&mut s, localhost(port)) {
                Ok(()) => {
                    send_all(&mut clients, &mut s, &id.to_le_bytes());
                    clients.close(s).unwrap();
                }
                Err(nb::Error::WouldBlock) => still.push((s, id)),
                Err(nb::Error::Other(e)) => panic!("client {id}: {e}"),
            }
        }
        connecting = still;
        // Server: accept what it has room for, read to end of stream.
        loop {
            match server.accept(&mut listener) {
                Ok((s, _)) => conns.push((s, Vec::new())),
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(Error::OutOfSockets { errno: None })) => {
                    budget_refusals += 1;
                    break;
                }
                Err(nb::Error::Other(e)) => panic!("accept: {e}"),
            }
        }
        let mut open = Vec::new();
        for (mut s, mut data) in conns.drain(..) {
            let mut buf = [0u8; 64];
            let eof = loop {
                match server.receive(&mut s, &mut buf) {
                    Ok(0) => break true,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                    Err(nb::Error::WouldBlock) => break false,
                    Err(nb::Error::Other(e)) => panic!("receive: {e}"),
                }
            };
            if eof {
                assert_eq!(data.len(), 8, "a connection delivered {data:?}");
                let id = u64::from_le_bytes(data.try_into().unwrap());
                assert!(received.insert(id), "{id} twice");
                server.close(s).unwrap();
            } else {
                open.push((s, data));
            }
        }
        conns = open;
        let mut interests: Vec<(&Socket, Interest)> =
            conns.iter().map(|(s, _)| (s, Interest::READABLE)).collect();
        interests.push((&listener, Interest::READABLE));
        interests.extend(connecting.iter().map(|(s, _)| (s, Interest::WRITABLE)));
        server
            .wait(interests, Some(Duration::from_millis(5)))
            .unwrap();
    }
    assert_eq!(received, (0..CYCLES).collect::<BTreeSet<_>>());
    println!("2000 cycles; accept refused by the budget {budget_refusals} times");
    server.close(listener).unwrap();
    assert_eq!(server.sockets_in_use(), 0);
}

/// A server connection with `len` bytes queued that the client is not
/// reading (so some stay unsent or unacknowledged in lwIP).
fn stuffed_connection(
    server: &mut LwipStack,
    clients: &mut LwipStack,
    listener: &mut Socket,
    port: u16,
) -> (Socket, Socket, usize) {
    let client = connect(clients, localhost(port));
    let (mut conn, _) = accept(server, listener);
    let chunk = pattern(1000);
    let mut queued = 0;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match server.send(&mut conn, &chunk) {
            Ok(n) => queued += n,
            Err(nb::Error::WouldBlock) => break,
            Err(nb::Error::Other(e)) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline);
    }
    (client, conn, queued)
}

#[test]
fn graceful_close_delivers_queued_output_then_end_of_stream() {
    let _f = fixture();
    let mut server = LwipStack::new(Config::default().with_lingering_close(None));
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let (mut client, conn, queued) =
        stuffed_connection(&mut server, &mut clients, &mut listener, port);
    server.close(conn).unwrap();
    let got = read_to_end(&mut clients, &mut client);
    assert_eq!(got.len(), queued);
    clients.close(client).unwrap();
    server.close(listener).unwrap();
}

#[test]
fn abort_with_output_in_flight_resets_and_the_reset_sticks() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let (mut client, conn, queued) =
        stuffed_connection(&mut server, &mut clients, &mut listener, port);
    server.abort(conn).unwrap();

    let mut got = 0;
    let mut buf = [0u8; 1024];
    let err = loop {
        match block("receive", || clients.receive(&mut client, &mut buf)) {
            Ok(0) => panic!("end of stream instead of a reset, after {got} bytes"),
            Ok(n) => got += n,
            Err(e) => break e,
        }
    };
    assert!(got < queued, "all {queued} bytes arrived despite the abort");
    assert_eq!(err, Error::ConnectionLost(Errno::ECONNRESET));
    assert_eq!(err.kind(), TcpErrorKind::PipeClosed);
    assert_eq!(client.state(), SocketState::Failed);
    // lwIP reports a reset once; the socket keeps reporting it.
    assert_eq!(
        clients.receive(&mut client, &mut buf),
        Err(nb::Error::Other(err))
    );
    assert_eq!(clients.send(&mut client, b"x"), Err(nb::Error::Other(err)));
    clients.close(client).unwrap();
    server.close(listener).unwrap();
}

/// How a raw-API client's connection ended: `Ok(bytes)` at end of stream
/// (a FIN), `Err(bytes)` at a reset, with the bytes read before it.
fn raw_client_end(client: &mut tcpool_lwip_host::RawClient) -> Result<usize, usize> {
    use tcpool_lwip_host::ClientRecv;
    let deadline = Instant::now() + TIMEOUT;
    let mut got = 0;
    let mut buf = [0u8; 256];
    loop {
        match client.recv(&mut buf) {
            ClientRecv::Data(n) => got += n,
            ClientRecv::Eof => return Ok(got),
            ClientRecv::Reset => return Err(got),
            ClientRecv::WouldBlock => {
                assert!(Instant::now() < deadline, "the connection never ended");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// An established connection from a raw-API client (which takes no
/// socket) after the client sent a request that the server read in full:
/// nothing unread, and nothing in flight (the server sent nothing).
fn quiet_connection(
    server: &mut LwipStack,
    listener: &mut Socket,
    port: u16,
) -> (tcpool_lwip_host::RawClient, Socket) {
    let mut client = tcpool_lwip_host::RawClient::connect(port).unwrap();
    let (mut conn, _) = accept(server, listener);
    let deadline = Instant::now() + TIMEOUT;
    let mut sent = 0;
    while sent < 7 {
        sent += client.send(&b"request"[sent..]).unwrap();
        assert!(Instant::now() < deadline, "the request was never sent");
    }
    assert_eq!(read_exact(server, &mut conn, 7), b"request");
    (client, conn)
}

#[test]
fn abort_with_nothing_unread_and_nothing_in_flight_resets() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let (mut listener, port) = listen(&mut server);
    let (mut client, conn) = quiet_connection(&mut server, &mut listener, port);
    server.abort(conn).unwrap();
    assert_eq!(
        raw_client_end(&mut client),
        Err(0),
        "a FIN instead of a reset"
    );
    assert_eq!(server.sockets_in_use(), 1);
    // The client's side is gone: it can no longer send.
    assert!(client.send(b"more").is_err());
    client.close();
    server.close(listener).unwrap();
}

#[test]
fn abort_of_a_connection_that_never_sent_resets() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let (mut listener, port) = listen(&mut server);
    let mut client = tcpool_lwip_host::RawClient::connect(port).unwrap();
    let (conn, _) = accept(&mut server, &mut listener);
    server.abort(conn).unwrap();
    assert_eq!(
        raw_client_end(&mut client),
        Err(0),
        "a FIN instead of a reset"
    );
    client.close();
    server.close(listener).unwrap();
}

#[test]
fn abort_after_the_peer_closed_resets() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let (mut listener, port) = listen(&mut server);
    let (mut client, mut conn) = quiet_connection(&mut server, &mut listener, port);
    client.shutdown_write().unwrap();
    assert_eq!(read_to_end(&mut server, &mut conn), b"");
    server.abort(conn).unwrap();
    assert_eq!(
        raw_client_end(&mut client),
        Err(0),
        "a FIN instead of a reset"
    );
    client.close();
    server.close(listener).unwrap();
}

#[test]
fn abort_of_listeners_and_unconnected_sockets_just_closes_them() {
    let _f = fixture();
    let mut server = LwipStack::default();
    let (listener, _) = listen(&mut server);
    let unopened = server.socket().unwrap();
    assert_eq!(server.sockets_in_use(), 2);
    server.abort(listener).unwrap();
    server.abort(unopened).unwrap();
    assert_eq!(server.sockets_in_use(), 0);
}

/// What the client of `late_input_after_close` saw.
struct LateInput {
    /// Bytes received.
    answer: Vec<u8>,
    /// How the answer ended: `Ok` for end of stream.
    end: Result<(), Error>,
    /// The error that refused the client's later sends, if any.
    refused: Option<Error>,
}

/// Server reads a request, answers and closes; the client then sends more.
fn late_input_after_close(lingering: Option<Duration>) -> (LateInput, LwipStack) {
    let mut server = LwipStack::new(Config::default().with_lingering_close(lingering));
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let mut client = connect(&mut clients, localhost(port));
    let (mut conn, _) = accept(&mut server, &mut listener);

    send_all(&mut clients, &mut client, b"request");
    assert_eq!(read_exact(&mut server, &mut conn, 7), b"request");
    send_all(&mut server, &mut conn, b"response");
    server.close(conn).unwrap();

    // The client keeps talking for 300 ms while the server runs its loop.
    let mut refused = None;
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until && refused.is_none() {
        match clients.send(&mut client, b"late input") {
            Ok(_) | Err(nb::Error::WouldBlock) => {}
            Err(nb::Error::Other(e)) => refused = Some(e),
        }
        server
            .wait(
                [(&listener, Interest::READABLE)],
                Some(Duration::from_millis(20)),
            )
            .unwrap();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 64];
    let end = loop {
        match block("receive", || clients.receive(&mut client, &mut buf)) {
            Ok(0) => break Ok(()),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    clients.close(client).unwrap();
    server.close(listener).unwrap();
    (
        LateInput {
            answer,
            end,
            refused,
        },
        server,
    )
}

#[test]
fn without_lingering_late_input_makes_lwip_reset_the_connection() {
    let _f = fixture();
    let (client, _server) = late_input_after_close(None);
    assert_eq!(
        client.refused,
        Some(Error::ConnectionLost(Errno::ECONNRESET))
    );
    // The answer arrived, but lwIP reports the FIN that followed it as the
    // reset (it finds the connection gone when it gets to the FIN): a client
    // that reads to end of stream sees an error, not a complete answer.
    assert_eq!(client.answer, b"response");
    assert_eq!(client.end, Err(Error::ConnectionLost(Errno::ECONNRESET)));
}

#[test]
fn lingering_close_drains_late_input_without_a_reset_and_frees_the_socket() {
    let _f = fixture();
    let (client, mut server) = late_input_after_close(Some(Duration::from_secs(5)));
    assert_eq!(client.answer, b"response");
    assert_eq!(client.end, Ok(()));
    assert_eq!(client.refused, None);
    // The client has closed: the lingering socket sees end of stream and is
    // closed long before its 5 s are up.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.lingering() > 0 {
        assert!(Instant::now() < deadline, "lingering socket not closed");
        server.wait([], Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(server.sockets_in_use(), 0);
}

#[test]
fn lingering_close_ends_at_its_deadline() {
    let _f = fixture();
    let mut server =
        LwipStack::new(Config::default().with_lingering_close(Some(Duration::from_millis(100))));
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let mut client = connect(&mut clients, localhost(port));
    let (conn, _) = accept(&mut server, &mut listener);
    server.close(conn).unwrap();
    assert_eq!(server.lingering(), 1);
    let started = Instant::now();
    while server.lingering() > 0 {
        assert!(started.elapsed() < Duration::from_secs(2));
        // The wait itself is bounded by the lingering deadline.
        server.wait([], Some(Duration::from_secs(5))).unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(90));
    assert_eq!(read_to_end(&mut clients, &mut client), b"");
    clients.close(client).unwrap();
    server.close(listener).unwrap();
}

/// Runs a server on `port` with one connection that the server closes
/// first (so its side of it sits in TIME-WAIT), then tries to bind again.
fn rebind_after_restart(reuse: bool) -> Result<(), Error> {
    let config = Config::default()
        .with_reuse_address(reuse)
        .with_lingering_close(None);
    let mut server = LwipStack::new(config);
    let mut clients = client_stack();
    let (mut listener, port) = listen(&mut server);
    let mut client = connect(&mut clients, localhost(port));
    let (conn, _) = accept(&mut server, &mut listener);
    server.close(conn).unwrap();
    assert_eq!(read_to_end(&mut clients, &mut client), b"");
    clients.close(client).unwrap();
    server.close(listener).unwrap();
    thread::sleep(Duration::from_millis(50));

    let mut restarted = LwipStack::new(config);
    let mut listener = restarted.socket().unwrap();
    let bound = restarted.bind(&mut listener, port);
    if bound.is_ok() {
        restarted.listen(&mut listener).unwrap();
        let mut client = connect(&mut clients, localhost(port));
        let (mut conn, _) = accept(&mut restarted, &mut listener);
        send_all(&mut clients, &mut client, b"up");
        assert_eq!(read_exact(&mut restarted, &mut conn, 2), b"up");
        clients.close(client).unwrap();
        restarted.close(conn).unwrap();
    }
    restarted.close(listener).unwrap();
    bound
}

#[test]
fn rebinding_right_after_a_restart_needs_reuse_address() {
    let _f = fixture();
    let err = rebind_after_restart(false).unwrap_err();
    assert_eq!(err, Error::AddressInUse(Errno::EADDRINUSE));
    rebind_after_restart(true).unwrap();
}

#[test]
fn connecting_to_a_closed_port_fails_as_a_reset() {
    let _f = fixture();
    let mut clients = client_stack();
    let mut client = clients.socket().unwrap();
    let err = block("connect", || clients.connect(&mut client, localhost(9))).unwrap_err();
    // lwIP reports the RST answering the SYN as a reset, not ECONNREFUSED.
    assert_eq!(err, Error::ConnectionLost(Errno::ECONNRESET));
    assert_eq!(client.state(), SocketState::Failed);
    clients.close(client).unwrap();
}

#[test]
fn operations_out_of_order_are_invalid_state_errors() {
    let _f = fixture();
    let mut stack = LwipStack::default();
    let mut s = stack.socket().unwrap();
    let mut buf = [0u8; 4];
    assert!(matches!(
        stack.send(&mut s, b"x"),
        Err(nb::Error::Other(Error::InvalidState(_)))
    ));
    assert!(matches!(
        stack.receive(&mut s, &mut buf),
        Err(nb::Error::Other(Error::InvalidState(_)))
    ));
    assert!(matches!(stack.listen(&mut s), Err(Error::InvalidState(_))));
    assert!(matches!(
        stack.accept(&mut s),
        Err(nb::Error::Other(Error::InvalidState(_)))
    ));
    stack.bind(&mut s, 0).unwrap();
    assert!(matches!(stack.bind(&mut s, 0), Err(Error::InvalidState(_))));
    stack.close(s).unwrap();
}

#[test]
fn connections_get_nodelay_and_keepalive_from_the_config() {
    let _f = fixture();
    let keepalive = Keepalive {
        idle: Duration::from_secs(30),
        interval: Duration::from_secs(5),
        count: 3,
    };
    let mut server = LwipStack::new(Config::default().with_keepalive(Some(keepalive)));
    let mut clients = LwipStack::new(
        Config::default()
            .with_socket_budget(100)
            .with_nodelay(false)
            .with_keepalive(None),
    );
    let (mut listener, port) = listen(&mut server);
    let client = connect(&mut clients, localhost(port));
    let (conn, _) = accept(&mut server, &mut listener);
    assert!(conn.nodelay().unwrap());
    assert_eq!(conn.keepalive().unwrap(), Some(keepalive));
    assert!(!client.nodelay().unwrap());
    assert_eq!(client.keepalive().unwrap(), None);
    clients.close(client).unwrap();
    server.close(conn).unwrap();
    server.close(listener).unwrap();
}
