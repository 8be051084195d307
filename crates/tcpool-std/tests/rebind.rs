//! A restarted server binds its port again at once.

mod common;

use common::{accept, client, listening, receive};
use embedded_nal::{TcpClientStack, TcpFullStack};
use std::io::Read;
use std::time::{Duration, Instant};
use tcpool_std::{Config, Error, StdClock, StdStack, TcpSocket};

fn bind_port(config: Config, port: u16) -> Result<(StdStack, TcpSocket), Error> {
    let mut stack = StdStack::new(config);
    let mut listener = stack.socket()?;
    stack.bind(&mut listener, port)?;
    stack.listen(&mut listener)?;
    Ok((stack, listener))
}

/// Runs a server that accepts a client and closes the connection first
/// (leaving it in TIME_WAIT on the server's port), then stops.
fn run_and_stop_leaving_time_wait(config: Config) -> u16 {
    let (mut stack, mut listener, addr) = listening(config);
    let mut c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    stack.close(conn).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(c.read(&mut buf).unwrap(), 0, "the server's FIN");
    drop(c);
    // Wait until the server has seen the client's FIN: its side is now in
    // TIME_WAIT.
    let clock = StdClock::new();
    let start = Instant::now();
    while stack.lingering() > 0 {
        assert!(start.elapsed() < Duration::from_secs(2));
        let tick = clock.now() + Duration::from_millis(10);
        stack.wait(core::iter::empty(), Some(tick), &clock).unwrap();
    }
    addr.port()
}

#[test]
fn rebind_right_after_restart_with_a_connection_in_time_wait() {
    let port = run_and_stop_leaving_time_wait(Config::default());
    let (mut stack, mut listener) = bind_port(Config::default(), port).expect("rebind");
    // And it serves.
    let addr = stack.local_addr(&listener).unwrap();
    let _c = client(addr);
    accept(&mut stack, &mut listener);
}

#[test]
fn rebind_right_after_restart_with_a_live_connection() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let c = client(addr);
    let (mut old_conn, _) = accept(&mut stack, &mut listener);
    // The old server's listener goes away; its connection stays open.
    stack.close(listener).unwrap();

    let (mut stack2, mut listener2) = bind_port(Config::default(), addr.port()).expect("rebind");
    let mut c2 = client(addr);
    let (mut conn2, _) = accept(&mut stack2, &mut listener2);
    common::send_all(&mut stack2, &mut conn2, b"new");
    let mut buf = [0u8; 3];
    c2.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"new");

    // The old connection still works.
    drop(c);
    assert_eq!(receive(&mut stack, &mut old_conn, &mut buf).unwrap(), 0);
}

/// The control: without SO_REUSEADDR the TIME_WAIT connection holds the port.
#[cfg(target_os = "linux")]
#[test]
fn without_reuse_address_time_wait_blocks_the_rebind() {
    let config = Config::default().with_reuse_address(false);
    let port = run_and_stop_leaving_time_wait(config.clone());
    let e = bind_port(config, port)
        .map(|_| ())
        .expect_err("bound anyway");
    assert_eq!(e.io_error().unwrap().kind(), std::io::ErrorKind::AddrInUse);
}
