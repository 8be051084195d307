//! Receiving and sending: WouldBlock versus end of stream, resets as
//! PipeClosed, and the non-blocking connect.

mod common;

use common::{STEP, accept, client, listening, receive, send_all};
use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind};
use socket2::SockRef;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;
use tcpool_std::{Config, Error, Interest, StdClock, StdStack};

#[test]
fn receive_would_block_until_data_and_returns_zero_only_at_eof() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let mut c = client(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);
    let mut buf = [0u8; 64];

    assert!(matches!(
        stack.receive(&mut conn, &mut buf),
        Err(nb::Error::WouldBlock)
    ));

    c.write_all(b"hi").unwrap();
    assert_eq!(receive(&mut stack, &mut conn, &mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"hi");
    assert!(matches!(
        stack.receive(&mut conn, &mut buf),
        Err(nb::Error::WouldBlock)
    ));

    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(receive(&mut stack, &mut conn, &mut buf).unwrap(), 0);
    // Still end of stream, and the write side still works (half-close).
    assert_eq!(receive(&mut stack, &mut conn, &mut buf).unwrap(), 0);
    send_all(&mut stack, &mut conn, b"after your FIN");
    stack.close(conn).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "after your FIN");
}

/// What a short read teaches is good for one call: after a read that
/// emptied the socket, the next receive says WouldBlock without asking the
/// kernel even if input has arrived since; the one after that asks, and
/// nothing is lost. A check of readiness in between (a wait) forgets it.
#[test]
fn emptied_socket_says_would_block_once_then_reads_what_came() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let mut c = client(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);
    let mut buf = [0u8; 64];

    // A short read (2 of 64 bytes) empties the socket.
    c.write_all(b"hi").unwrap();
    assert_eq!(receive(&mut stack, &mut conn, &mut buf).unwrap(), 2);
    c.write_all(b"there").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(matches!(
        stack.receive(&mut conn, &mut buf),
        Err(nb::Error::WouldBlock)
    ));
    assert_eq!(stack.receive(&mut conn, &mut buf).unwrap(), 5);

    // Another short read, then a wait that finds the new input: the
    // receive after it asks the kernel.
    c.write_all(b"!").unwrap();
    assert_eq!(receive(&mut stack, &mut conn, &mut buf).unwrap(), 1);
    c.write_all(b"?").unwrap();
    let clock = StdClock::new();
    let ready = stack
        .wait(
            [(&conn, Interest::READABLE)],
            Some(clock.now() + STEP),
            &clock,
        )
        .unwrap();
    assert_eq!(ready, 1);
    assert_eq!(stack.receive(&mut conn, &mut buf).unwrap(), 1);
    assert_eq!(&buf[..1], b"?");
}

/// A client that resets instead of closing (SO_LINGER 0).
fn reset(c: std::net::TcpStream) {
    SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
    drop(c);
}

#[test]
fn peer_reset_maps_to_pipe_closed_on_receive() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let c = client(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);
    reset(c);
    let mut buf = [0u8; 16];
    let e = receive(&mut stack, &mut conn, &mut buf).expect_err("reset");
    assert_eq!(e.kind(), TcpErrorKind::PipeClosed);
    assert!(e.is_pipe_closed());
    assert_eq!(e.io_error().unwrap().kind(), ErrorKind::ConnectionReset);
}

#[test]
fn peer_reset_maps_to_pipe_closed_on_send() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let c = client(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);
    reset(c);
    let clock = StdClock::new();
    // Wait for the reset to arrive, then send into the dead connection.
    stack
        .wait(
            [(&conn, Interest::READABLE)],
            Some(clock.now() + STEP),
            &clock,
        )
        .unwrap();
    let e = loop {
        match stack.send(&mut conn, b"into the void") {
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(nb::Error::WouldBlock) => panic!("a dead connection is not full"),
            Err(nb::Error::Other(e)) => break e,
        }
    };
    assert_eq!(e.kind(), TcpErrorKind::PipeClosed, "{e:?}");
}

#[test]
fn receive_on_a_listener_is_an_invalid_state_error() {
    let (mut stack, mut listener, _) = listening(Config::default());
    let mut buf = [0u8; 4];
    let r = stack.receive(&mut listener, &mut buf);
    let Err(nb::Error::Other(e)) = r else {
        panic!("{r:?}")
    };
    assert!(matches!(
        e,
        Error::InvalidState {
            state: "listening",
            ..
        }
    ));
    assert_eq!(e.kind(), TcpErrorKind::Other);
}

#[test]
fn connect_does_not_block_and_completes_when_writable() {
    let (mut server, mut listener, addr) = listening(Config::default());
    let mut stack = StdStack::default();
    let clock = StdClock::new();
    let mut sock = stack.socket().unwrap();
    let deadline = clock.now() + STEP;
    loop {
        match stack.connect(&mut sock, addr) {
            Ok(()) => break,
            Err(nb::Error::WouldBlock) => {
                assert!(clock.now() < deadline, "connect did not complete");
                stack
                    .wait([(&sock, Interest::WRITABLE)], Some(deadline), &clock)
                    .unwrap();
            }
            Err(nb::Error::Other(e)) => panic!("{e}"),
        }
    }
    assert!(sock.is_connected());
    // Calling connect again once connected is harmless.
    assert!(stack.connect(&mut sock, addr).is_ok());

    let (mut conn, peer) = accept(&mut server, &mut listener);
    assert_eq!(peer, stack.local_addr(&sock).unwrap());
    assert_eq!(stack.peer_addr(&sock).unwrap(), addr);
    send_all(&mut stack, &mut sock, b"ping");
    let mut buf = [0u8; 8];
    assert_eq!(receive(&mut server, &mut conn, &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let (stack, listener, addr) = listening(Config::default());
    drop(listener);
    drop(stack);
    let mut stack = StdStack::default();
    let clock = StdClock::new();
    let mut sock = stack.socket().unwrap();
    let deadline = clock.now() + STEP;
    let e = loop {
        match stack.connect(&mut sock, addr) {
            Ok(()) => panic!("connected to a closed port"),
            Err(nb::Error::WouldBlock) => {
                assert!(clock.now() < deadline, "connect did not fail");
                stack
                    .wait([(&sock, Interest::WRITABLE)], Some(deadline), &clock)
                    .unwrap();
            }
            Err(nb::Error::Other(e)) => break e,
        }
    };
    assert_eq!(e.io_error().unwrap().kind(), ErrorKind::ConnectionRefused);
    assert_eq!(e.kind(), TcpErrorKind::Other);
    // The socket can try again.
    assert!(!sock.is_connected());
}

#[test]
fn send_returns_would_block_when_the_peer_does_not_read() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let _c = client(addr); // never reads
    let (mut conn, _) = accept(&mut stack, &mut listener);
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    loop {
        match stack.send(&mut conn, &chunk) {
            Ok(n) => sent += n,
            Err(nb::Error::WouldBlock) => break,
            Err(nb::Error::Other(e)) => panic!("{e}"),
        }
        assert!(sent < 1 << 30, "send never filled the buffers");
    }
    assert!(sent > 0);
}
