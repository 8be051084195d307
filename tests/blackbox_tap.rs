//! Black-box test of the smoltcp TAP example (`smoltcp_tap_echo`, feature
//! `tap`): the real binary, real Linux clients, the echo example's
//! command-line contract (`listening on ADDR`, `closed ...`, `stats ...`,
//! the pool flags).
//!
//! Needs root, `/dev/net/tun` and iproute2's `ip`: the test creates a
//! network namespace (`tcpool-ex-<pid>`, deleted afterwards, even on
//! failure) and re-runs its own binary inside it to execute
//! `inner_example_in_namespace`, which starts the example on a TAP device
//! there, gives the kernel side of the link an address and talks to the
//! example with `std::net` clients. No traffic leaves the namespace.
//! Without root, `/dev/net/tun` or `ip` the test prints `SKIPPED ...` and
//! passes, unless `CI=true`, where it fails.
//!
//! The example binary must be built first (`cargo test` alone does not
//! build examples when a test is named):
//!
//! ```sh
//! cargo build --features tap --example smoltcp_tap_echo
//! cargo test --features tap --test blackbox_tap
//! ```

mod support;

use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use support::netns::{self, Inner};
use support::{ExampleServer, connect, field, read_to_eof, round_trip};

const INNER_ENV: &str = "TCPOOL_TAP_EXAMPLE_INNER";
const INNER_TEST: &str = "inner_example_in_namespace";
const TAP: &str = "tcpt0";
const HOST_CIDR: &str = "10.123.0.1/24";

#[test]
fn tap_example_serves_real_linux_clients_with_the_echo_contract() {
    Inner {
        what: "smoltcp TAP example test",
        namespace: "tcpool-ex",
        env: INNER_ENV,
        test: INNER_TEST,
        done: "TAP example: done",
        watchdog: Duration::from_secs(120),
    }
    .run();
}

// ------------------------------------------------------------------- inside

#[test]
#[ignore = "run by tap_example_serves_real_linux_clients_with_the_echo_contract inside its namespace"]
fn inner_example_in_namespace() {
    if !netns::is_inner(INNER_ENV, INNER_TEST) {
        return;
    }
    let server = ExampleServer::start(
        "smoltcp_tap_echo",
        &[
            "--tap",
            TAP,
            "--ip",
            "10.123.0.2/24",
            "--listen-port",
            "7000",
            "--max-connections",
            "2",
            "--max-per-ip",
            "1",
        ],
    );
    assert_eq!(server.addr, SocketAddr::from(([10, 123, 0, 2], 7000)));
    netns::link_up(TAP, HOST_CIDR);

    let mut first = connect(server.addr);
    assert_eq!(round_trip(&mut first, b"hello tap\n"), b"hello tap\n");
    // All clients come from 10.123.0.1: a second one is over --max-per-ip.
    let mut second = connect(server.addr);
    let (got, clean) = read_to_eof(&mut second);
    assert!(clean, "the refused client must see a clean close");
    assert!(
        got.is_empty() || got == b"busy\n",
        "a refused client gets nothing but the banner: {got:?}"
    );
    assert_eq!(round_trip(&mut first, b"still here\n"), b"still here\n");
    first.shutdown(Shutdown::Write).unwrap();
    let (rest, clean) = read_to_eof(&mut first);
    assert!(clean && rest.is_empty(), "{rest:?}");

    let closed = server.wait_closed(1, Duration::from_secs(10));
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(field(&closed[0], "reason"), Some("peer_closed"));
    assert_eq!(field(&closed[0], "rx"), Some("21"));
    assert_eq!(field(&closed[0], "tx"), Some("21"));
    assert!(field(&closed[0], "id").is_some() && field(&closed[0], "peer").is_some());

    let lines = server.stop();
    let stats = lines
        .iter()
        .find(|l| l.starts_with("stats "))
        .expect("stats line");
    for (key, want) in [
        ("accepted", Some("1")),
        ("refused", Some("1")),
        ("evicted", Some("0")),
        ("bytes_in", Some("21")),
        ("bytes_out", Some("21")),
        ("peak_active", Some("1")),
        ("closed", Some("peer_closed:1")),
    ] {
        assert_eq!(field(stats, key), want, "{key} in {stats}");
    }
    for key in ["deferred", "accept_errors"] {
        assert!(field(stats, key).is_some(), "{key} missing from {stats}");
    }
    println!("TAP example: done");
}
