//! Readiness waiting: returns promptly when a socket is ready, sleeps (not
//! spins) until the deadline otherwise.

mod common;

use common::{STEP, accept, client, listening};
use embedded_nal::TcpClientStack;
use rustix::time::{ClockId, clock_gettime};
use std::io::Write;
use std::time::{Duration, Instant};
use tcpool_std::{Config, Interest, StdClock};

#[test]
fn wait_returns_promptly_when_a_socket_becomes_readable() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let mut c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        c.write_all(b"wake up").unwrap();
        c
    });
    let clock = StdClock::new();
    let start = Instant::now();
    let ready = stack
        .wait(
            [(&listener, Interest::READABLE), (&conn, Interest::READABLE)],
            Some(clock.now() + STEP),
            &clock,
        )
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(ready, 1);
    assert!(
        elapsed >= Duration::from_millis(90),
        "{elapsed:?}: woke early"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}: woke late");
    writer.join().unwrap();
}

#[test]
fn wait_sleeps_until_the_deadline_when_nothing_is_ready() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let _c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    let clock = StdClock::new();
    let deadline = clock.now() + Duration::from_millis(200);
    let start = Instant::now();
    let cpu_start = clock_gettime(ClockId::ThreadCPUTime);
    let ready = stack
        .wait(
            [(&listener, Interest::READABLE), (&conn, Interest::READABLE)],
            Some(deadline),
            &clock,
        )
        .unwrap();
    let cpu_end = clock_gettime(ClockId::ThreadCPUTime);
    let elapsed = start.elapsed();
    assert_eq!(ready, 0);
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(clock.now() >= deadline);
    let cpu = Duration::try_from(cpu_end).unwrap() - Duration::try_from(cpu_start).unwrap();
    assert!(cpu < Duration::from_millis(20), "{cpu:?} of CPU: spinning");
}

#[test]
fn wait_with_a_passed_deadline_returns_at_once() {
    let (mut stack, listener, _) = listening(Config::default());
    let clock = StdClock::new();
    std::thread::sleep(Duration::from_millis(5));
    let start = Instant::now();
    let ready = stack
        .wait(
            [(&listener, Interest::READABLE)],
            Some(tcpool_std::Instant::ZERO),
            &clock,
        )
        .unwrap();
    assert_eq!(ready, 0);
    assert!(start.elapsed() < Duration::from_millis(50));
}

#[test]
fn wait_ignores_sockets_with_no_interest() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let mut c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    c.write_all(b"readable, but nobody asked").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let clock = StdClock::new();
    let start = Instant::now();
    let ready = stack
        .wait(
            [(&conn, Interest::NONE)],
            Some(clock.now() + Duration::from_millis(50)),
            &clock,
        )
        .unwrap();
    assert_eq!(ready, 0);
    assert!(start.elapsed() >= Duration::from_millis(45));
}

#[test]
fn wait_reports_a_connection_with_room_as_writable() {
    let (mut stack, mut listener, addr) = listening(Config::default());
    let _c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    let clock = StdClock::new();
    let start = Instant::now();
    let ready = stack
        .wait(
            [(&conn, Interest::WRITABLE)],
            Some(clock.now() + STEP),
            &clock,
        )
        .unwrap();
    assert_eq!(ready, 1);
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[test]
fn wait_takes_the_chained_interests_of_several_servers() {
    let (mut stack, listener_a, _) = listening(Config::default());
    let mut listener_b = stack.socket().unwrap();
    embedded_nal::TcpFullStack::bind(&mut stack, &mut listener_b, 0).unwrap();
    embedded_nal::TcpFullStack::listen(&mut stack, &mut listener_b).unwrap();
    let addr_b = stack.local_addr(&listener_b).unwrap();
    let _c = client(addr_b);
    let server_a = [(&listener_a, Interest::READABLE)];
    let server_b = vec![(&listener_b, Interest::READABLE)];
    let clock = StdClock::new();
    let ready = stack
        .wait(
            server_a.into_iter().chain(server_b),
            Some(clock.now() + STEP),
            &clock,
        )
        .unwrap();
    assert_eq!(ready, 1);
    let (_conn, _) = accept(&mut stack, &mut listener_b);
}

#[test]
fn wait_reports_a_reset_connection_as_ready() {
    // A reset connection is "ready" for whatever was asked: the next call
    // reports the error.
    let (mut stack, mut listener, addr) = listening(Config::default());
    let c = client(addr);
    let (conn, _) = accept(&mut stack, &mut listener);
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    let clock = StdClock::new();
    let ready = stack
        .wait(
            [(&conn, Interest::READABLE)],
            Some(clock.now() + STEP),
            &clock,
        )
        .unwrap();
    assert_eq!(ready, 1);
}
