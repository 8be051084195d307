//! tcpool-core's `Server` driven over `StdStack`: the loop the crate docs
//! describe (poll, poll_at, wait on interests), end to end.

mod common;

use common::STEP;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tcpool_conformance::Echo;
use tcpool_core::Server;
use tcpool_std::{StdClock, StdStack};

/// Runs the server loop until `done` says so or [`STEP`] passes; returns the
/// CPU time the loop's thread used.
fn serve(
    stack: &mut StdStack,
    server: &mut Server<StdStack, Echo, 4, 256, 256>,
    clock: &StdClock,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let cpu = || {
        Duration::try_from(rustix::time::clock_gettime(
            rustix::time::ClockId::ThreadCPUTime,
        ))
        .unwrap()
    };
    let cpu_start = cpu();
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < STEP, "the server loop did not finish");
        server.poll(stack, clock.now());
        // Never sleep past 20 ms, so `done` is checked.
        let cap = clock.now() + Duration::from_millis(20);
        let deadline = server.poll_at().map_or(cap, |t| t.min(cap));
        stack
            .wait(server.interests(), Some(deadline), clock)
            .unwrap();
    }
    cpu() - cpu_start
}

#[test]
fn core_server_echoes_for_several_clients_over_the_std_stack() {
    let (mut stack, clock, mut server, addr) = common::echo_server();

    let clients: Vec<_> = (0..3u8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = common::client(addr);
                let msg: Vec<u8> = (0..1000u32).map(|n| (n as u8) ^ i).collect();
                c.write_all(&msg).unwrap();
                let mut back = vec![0u8; msg.len()];
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, msg);
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
            })
        })
        .collect();

    serve(&mut stack, &mut server, &clock, || {
        clients.iter().all(|c| c.is_finished())
    });
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(server.stats().accepted, 3);
}

#[test]
fn idle_core_server_over_the_std_stack_uses_almost_no_cpu() {
    let (mut stack, clock, mut server, addr) = common::echo_server();
    // One idle client connected, one idle listener.
    let _c = common::client(addr);
    let until = Instant::now() + Duration::from_millis(300);
    let cpu = serve(&mut stack, &mut server, &clock, || Instant::now() >= until);
    assert!(
        cpu < Duration::from_millis(30),
        "{cpu:?} of CPU in 300 ms idle"
    );
    assert_eq!(server.active(), 1);
}
