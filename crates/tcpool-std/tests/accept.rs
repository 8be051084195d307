//! Accepting: sockets come back non-blocking, with the configured options and
//! the peer's address; std-embedded-nal's accept does not do the first.

mod common;

use common::{STEP, accept, client, listening};
use embedded_nal::{TcpClientStack, TcpFullStack};
use socket2::SockRef;
use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tcpool_std::{Config, Error};

#[test]
fn accepted_sockets_are_non_blocking() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let _client = client(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);

    let fd = conn.as_fd().unwrap();
    assert!(
        SockRef::from(&fd).nonblocking().unwrap(),
        "O_NONBLOCK is set"
    );

    // So a receive with nothing buffered returns at once instead of hanging.
    let start = Instant::now();
    let mut buf = [0u8; 16];
    assert!(matches!(
        stack.receive(&mut conn, &mut buf),
        Err(nb::Error::WouldBlock)
    ));
    assert!(start.elapsed() < Duration::from_millis(100));
}

/// The bug this crate exists to fix, reproduced against std-embedded-nal
/// 0.4: its `accept` hands out a *blocking* socket (Linux does not inherit
/// `O_NONBLOCK` from the listener through `accept`), so a `receive` with
/// nothing buffered blocks the whole server instead of returning
/// `WouldBlock`. (BSDs and macOS do inherit it, hence Linux only.)
#[cfg(target_os = "linux")]
#[test]
fn std_embedded_nal_accept_returns_a_blocking_socket() {
    let mut stack = std_embedded_nal::Stack;
    let mut listener = TcpClientStack::socket(&mut stack).unwrap();
    // It can only bind [::]; find a free port first (retrying on a race).
    let port = (0..5)
        .find_map(|_| {
            let port = std::net::TcpListener::bind("[::1]:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            TcpFullStack::bind(&mut stack, &mut listener, port)
                .ok()
                .map(|()| port)
        })
        .expect("no free port");
    TcpFullStack::listen(&mut stack, &mut listener).unwrap();

    let mut client = client(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port));
    let start = Instant::now();
    let (mut conn, _) = loop {
        match TcpFullStack::accept(&mut stack, &mut listener) {
            Ok(accepted) => break accepted,
            Err(nb::Error::WouldBlock) => {
                assert!(start.elapsed() < STEP, "no client to accept");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(nb::Error::Other(e)) => panic!("{e:?}"),
        }
    };

    // Directly: O_NONBLOCK is not set on the accepted socket.
    assert!(
        !nonblocking_raw(conn.as_raw_fd().unwrap()),
        "the bug is fixed?"
    );

    // Its consequence: receive blocks while nothing has arrived.
    let (tx, rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let r =
            TcpClientStack::receive(&mut stack, &mut conn, &mut buf).map_err(|e| format!("{e:?}"));
        tx.send(r).unwrap();
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "receive returned although nothing was sent"
    );
    // Unblock it with one byte so the thread ends.
    client.write_all(b"x").unwrap();
    assert_eq!(rx.recv_timeout(STEP).unwrap(), Ok(1));
    receiver.join().unwrap();
}

/// Reads `O_NONBLOCK` of a descriptor that the caller keeps open.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn nonblocking_raw(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: `fd` belongs to a socket the caller owns and keeps open for the
    // whole call; the borrow does not outlive this function.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    SockRef::from(&fd).nonblocking().unwrap()
}

#[test]
fn accept_would_block_when_nobody_is_waiting() {
    let (mut stack, mut listener, _) = listening(Config::default());
    assert!(matches!(
        stack.accept(&mut listener),
        Err(nb::Error::WouldBlock)
    ));
}

#[test]
fn accept_reports_the_peer_address() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let c = client(addr);
    let (conn, peer) = accept(&mut stack, &mut listener);
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(stack.peer_addr(&conn).unwrap(), peer);
    assert_eq!(stack.local_addr(&conn).unwrap(), addr);
}

#[test]
fn accepted_sockets_get_nodelay_and_keepalive_from_the_config() {
    let config = Config::default().with_keepalive(Some(Duration::from_secs(7)));
    let (mut stack, mut listener, addr) = listening(config);
    let _c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    let fd = conn.as_fd().unwrap();
    let sock = SockRef::from(&fd);
    assert!(sock.tcp_nodelay().unwrap());
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!(
        sock.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(7)
    );
}

#[test]
fn accepted_sockets_have_no_keepalive_and_no_nodelay_when_configured_off() {
    let config = Config::default().with_nodelay(false).with_keepalive(None);
    let (mut stack, mut listener, addr) = listening(config);
    let _c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    let fd = conn.as_fd().unwrap();
    let sock = SockRef::from(&fd);
    assert!(!sock.tcp_nodelay().unwrap());
    assert!(!sock.keepalive().unwrap());
}

#[test]
fn listener_binds_the_configured_ipv4_address_by_default_loopback() {
    let (_stack, _listener, addr) = listening(Config::default());
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 0);
}

#[test]
fn listener_binds_ipv6_loopback() {
    let config = Config::default().with_bind_ip(Ipv6Addr::LOCALHOST.into());
    let (mut stack, mut listener, addr) = listening(config);
    assert_eq!(addr.ip(), Ipv6Addr::LOCALHOST);
    let c = client(addr);
    let (conn, peer) = accept(&mut stack, &mut listener);
    assert_eq!(peer, c.local_addr().unwrap());
    assert!(peer.is_ipv6());
    let fd = conn.as_fd().unwrap();
    assert!(SockRef::from(&fd).nonblocking().unwrap());
}

#[test]
fn listen_and_accept_in_the_wrong_state_are_invalid_state_errors() {
    let mut stack = tcpool_std::StdStack::default();
    let mut s = stack.socket().unwrap();
    assert!(matches!(
        stack.listen(&mut s),
        Err(Error::InvalidState {
            state: "unbound",
            ..
        })
    ));
    assert!(matches!(
        stack.accept(&mut s),
        Err(nb::Error::Other(Error::InvalidState { .. }))
    ));
    stack.bind(&mut s, 0).unwrap();
    assert!(matches!(
        stack.bind(&mut s, 0),
        Err(Error::InvalidState { state: "bound", .. })
    ));
}

#[test]
fn binding_a_port_in_use_by_a_listener_fails_with_addr_in_use() {
    let (_stack, _listener, addr) = listening(Config::default());
    let mut stack = tcpool_std::StdStack::default();
    let mut s = stack.socket().unwrap();
    let e = stack
        .bind(&mut s, addr.port())
        .and_then(|()| stack.listen(&mut s));
    let e = e.expect_err("two listeners on one port");
    assert_eq!(e.io_error().unwrap().kind(), std::io::ErrorKind::AddrInUse);
}
