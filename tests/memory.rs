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
