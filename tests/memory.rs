//! Memory per connection is fixed at compile time: buffers plus a small,
//! bounded overhead per slot.

use tcpool::Server;
use tcpool::host::StdStack;
use tcpool_conformance::Echo;

fn report<const N: usize, const RX: usize, const TX: usize>() -> usize {
    let total = core::mem::size_of::<Server<StdStack, Echo, N, RX, TX>>();
    let per_slot = Server::<StdStack, Echo, N, RX, TX>::SLOT_BYTES;
    let overhead = per_slot - RX - TX;
    println!(
        "Server<StdStack, Echo, N={N}, RX={RX}, TX={TX}>: {total} bytes; {per_slot} per slot ({overhead} beyond the buffers)"
    );
    overhead
}

#[test]
fn per_slot_overhead_beyond_the_buffers_is_small_and_fixed() {
    let sizes = [
        report::<4, 1024, 1024>(),
        report::<16, 1024, 1024>(),
        report::<4, 4096, 4096>(),
        report::<64, 512, 512>(),
    ];
    // 184 bytes of state and socket, 20 of scheduling (the slot's entries
    // in the ready set, the activity list and the deadline queue, which
    // make a poll's cost follow the traffic) and 2 of the watched interest.
    for overhead in sizes {
        assert!(overhead <= 208, "slot overhead grew to {overhead} bytes");
    }
    // The whole server is the slots plus a small constant.
    let total = core::mem::size_of::<Server<StdStack, Echo, 4, 1024, 1024>>();
    let slots = 4 * Server::<StdStack, Echo, 4, 1024, 1024>::SLOT_BYTES;
    assert!(
        total - slots <= 384,
        "server overhead beyond its slots: {} bytes",
        total - slots
    );
}

/// A 1,024-slot server with 4 KiB buffers (8 MiB) as a `static`: built at
/// compile time (`Server::with_default_config` is `const`), so it never
/// passes through a stack; configured at start-up, it listens and serves.
/// (On the heap: `Server::new_in` with `tcpool::host::Heap`, tested in
/// tcpool-std's `tests/ready.rs`.)
#[test]
fn a_static_server_of_1024_slots_with_4_kib_buffers_serves() {
    use std::io::{Read, Write};
    use std::sync::Mutex;
    use tcpool::Config;
    use tcpool::host::{Config as StackConfig, StdClock};

    type Big = Server<StdStack, Echo, 1024, 4096, 4096>;
    static BIG: Mutex<Big> = Mutex::new(Server::with_default_config(Echo));

    let mut server = BIG.lock().unwrap();
    assert!(core::mem::size_of::<Big>() > 8 << 20);
    server.set_config(Config::new().with_max_connections(1024));
    let mut stack = StdStack::new(StackConfig::default());
    let clock = StdClock::new();
    server.listen(&mut stack, 0).unwrap();
    let addr = server.local_addr(&stack).unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.write_all(b"static").unwrap();
    let mut back = [0u8; 6];
    let mut got = 0;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    client.set_nonblocking(true).unwrap();
    while got < back.len() {
        assert!(std::time::Instant::now() < end, "no echo");
        server.poll(&mut stack, clock.now());
        stack
            .wait(
                server.interests(),
                Some(clock.now() + core::time::Duration::from_millis(10)),
                &clock,
            )
            .unwrap();
        match client.read(&mut back[got..]) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&back, b"static");
    server.shutdown(&mut stack, clock.now());
}
