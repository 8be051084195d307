//! Closing: the lingering close delivers the last response even when the
//! client is still sending; abort resets.

mod common;

use common::{STEP, accept, client, listening, send_all};
use embedded_nal::TcpClientStack;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tcpool_std::{Config, Interest, StdClock, StdStack, TcpSocket};

/// What the client read: all bytes until EOF, or the bytes before an error.
type ClientOutcome = Result<Vec<u8>, (Vec<u8>, ErrorKind)>;

/// A client that sends 200 KB the server never reads, then reads until EOF
/// or an error.
fn upload_then_read(addr: SocketAddr) -> JoinHandle<ClientOutcome> {
    let mut c = client(addr);
    std::thread::spawn(move || {
        // The server may reset mid-upload (the control test): carry on and
        // read what it sent.
        let _ = c.write_all(&vec![0x55; 200_000]);
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err((got, e.kind())),
            }
        }
    })
}

/// Accepts, waits until the client's bytes have arrived (unread), answers
/// "bye\n" and closes; then keeps the stack waiting until the client is done.
fn answer_and_close(config: Config) -> (ClientOutcome, StdStack) {
    let (mut stack, mut listener, addr) = listening(config);
    let client = upload_then_read(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);
    let clock = StdClock::new();
    let deadline = clock.now() + STEP;
    assert_eq!(
        stack
            .wait([(&conn, Interest::READABLE)], Some(deadline), &clock)
            .unwrap(),
        1,
        "the upload did not arrive"
    );
    send_all(&mut stack, &mut conn, b"bye\n");
    stack.close(conn).unwrap();
    while !client.is_finished() {
        assert!(clock.now() < deadline, "the client did not finish");
        let tick = clock.now() + Duration::from_millis(20);
        stack.wait(core::iter::empty(), Some(tick), &clock).unwrap();
    }
    (client.join().unwrap(), stack)
}

#[test]
fn lingering_close_delivers_the_last_response_to_a_client_still_sending() {
    let (outcome, _) = answer_and_close(Config::default());
    assert_eq!(outcome, Ok(b"bye\n".to_vec()), "bye, then EOF, no reset");
}

/// The control: the same exchange with a plain close. The unread upload
/// makes the kernel reset the connection, so the client does not get the
/// response followed by a clean EOF. This is what lingering close prevents.
#[cfg(target_os = "linux")]
#[test]
fn plain_close_with_unread_input_resets_the_connection() {
    let (outcome, _) = answer_and_close(Config::default().with_lingering_close(None));
    assert!(
        matches!(outcome, Err((_, ErrorKind::ConnectionReset))),
        "{outcome:?}"
    );
}

fn closed_with_unread_input(config: Config) -> (StdStack, std::net::TcpStream) {
    let (mut stack, mut listener, addr) = listening(config);
    let mut c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    c.write_all(b"unread").unwrap();
    wait_readable(&mut stack, &conn);
    stack.close(conn).unwrap();
    (stack, c)
}

fn wait_readable(stack: &mut StdStack, conn: &TcpSocket) {
    let clock = StdClock::new();
    let deadline = clock.now() + STEP;
    assert_eq!(
        stack
            .wait([(conn, Interest::READABLE)], Some(deadline), &clock)
            .unwrap(),
        1
    );
}

#[test]
fn lingering_socket_is_released_at_the_peers_eof() {
    let (mut stack, mut c) = closed_with_unread_input(Config::default());
    assert_eq!(stack.lingering(), 1);
    // Our FIN went out at once.
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
    drop(c);
    let clock = StdClock::new();
    let start = Instant::now();
    while stack.lingering() > 0 {
        assert!(start.elapsed() < Duration::from_secs(1), "not released");
        let tick = clock.now() + Duration::from_millis(10);
        stack.wait(core::iter::empty(), Some(tick), &clock).unwrap();
    }
}

#[test]
fn lingering_socket_is_released_after_the_linger_timeout() {
    let config = Config::default().with_lingering_close(Some(Duration::from_millis(100)));
    let (mut stack, _c) = closed_with_unread_input(config);
    assert_eq!(stack.lingering(), 1);
    // The client keeps its side open; wait sleeps through the timeout.
    let clock = StdClock::new();
    let start = Instant::now();
    stack
        .wait(
            core::iter::empty(),
            Some(clock.now() + Duration::from_millis(300)),
            &clock,
        )
        .unwrap();
    assert_eq!(stack.lingering(), 0);
    assert!(start.elapsed() >= Duration::from_millis(290));
}

#[test]
fn lingering_timeout_is_also_applied_by_other_calls() {
    let config = Config::default().with_lingering_close(Some(Duration::from_millis(50)));
    let (mut stack, _c) = closed_with_unread_input(config);
    assert_eq!(stack.lingering(), 1);
    std::thread::sleep(Duration::from_millis(80));
    let s = stack.socket().unwrap();
    assert_eq!(stack.lingering(), 0);
    stack.close(s).unwrap();
}

#[test]
fn close_with_zero_linger_does_not_linger() {
    let (stack, _c) = closed_with_unread_input(Config::default().with_lingering_close(None));
    assert_eq!(stack.lingering(), 0);
}

#[test]
fn close_after_the_peers_fin_does_not_linger() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let c = client(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);
    c.shutdown(std::net::Shutdown::Write).unwrap();
    wait_readable(&mut stack, &conn);
    let mut buf = [0u8; 4];
    assert_eq!(common::receive(&mut stack, &mut conn, &mut buf).unwrap(), 0);
    stack.close(conn).unwrap();
    assert_eq!(stack.lingering(), 0);
}

#[test]
fn abort_resets_the_connection() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let mut c = client(addr);
    let (mut conn, _) = accept(&mut stack, &mut listener);
    send_all(&mut stack, &mut conn, b"never mind");
    stack.abort(conn).unwrap();
    assert_eq!(stack.lingering(), 0);
    let mut buf = [0u8; 64];
    let mut result = c.read(&mut buf);
    // Data that arrived before the reset may still be read first.
    while let Ok(n) = result {
        assert!(n > 0, "a clean EOF instead of a reset");
        result = c.read(&mut buf);
    }
    assert_eq!(result.unwrap_err().kind(), ErrorKind::ConnectionReset);
}
