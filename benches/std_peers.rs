//! # std backend beside its peers
//!
//! tcpool's `Server` over the std backend (`tcpool_std`) against a tokio
//! current-thread echo server (`tokio_current_thread`) and a
//! thread-per-connection std echo server (`threads`), on the same work in
//! the same run. Servers and clients run in this process and talk over
//! `127.0.0.1` only; server threads are pinned to one CPU, client threads
//! to another. See `benches/support/std_peers/` and BENCHMARKS.md.
//!
//! Groups (each with the three peers as functions; an iteration is one unit
//! of work done by whichever client is free):
//!
//! * `echo_throughput/1_clients`, `echo_throughput/16_clients`: a client
//!   writes a 64 KiB chunk and reads it back (MB/s);
//! * `round_trip_64b/16_clients`: one of 16 clients sends 64 bytes and waits
//!   for the echo (round trips per second);
//! * `connection_rate`: one of 4 client threads connects, sends 16 bytes,
//!   reads the 16-byte echo and closes (connections per second).
//!
//! After the criterion groups, each group that ran is measured once more
//! with the peers interleaved (see `support/std_peers/report.rs`), and per
//! other peer one `ratio GROUP tcpool_std/PEER = X` line (throughput over
//! throughput) and, against tokio, one `cpu_ratio` line (server CPU per
//! unit of work) are printed. With `TCPOOL_BENCH_PLOT=path.svg` it then
//! measures echo throughput at 1, 2, 4, 8 and 16 clients and draws it (an
//! SVG image, drawn with plotters).
//!
//! ```sh
//! cargo bench --bench std_peers                 # about 70 s on 2 cores
//! TCPOOL_BENCH_PLOT=docs/throughput-vs-clients.svg cargo bench --bench std_peers
//! cargo bench --bench std_peers -- --test       # each benchmark once (CI)
//! ```

// Shared with the `scaling` benchmark, which uses parts this one does not
// (idle connections, other chunk sizes).
#[allow(dead_code)]
#[path = "support/std_peers/mod.rs"]
mod support;

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use criterion::Criterion;

use support::clients::{self, CHUNK, Workers};
use support::report::{self, Work};
use support::servers::Peer;

/// One comparison: what the clients do, and how many there are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Group {
    /// `n` clients each echo 64 KiB chunks.
    Echo(usize),
    /// `n` clients each make 64-byte round trips.
    RoundTrip(usize),
    /// `n` client threads each connect, send 16 bytes, read, close.
    Connect(usize),
}

impl Group {
    /// Every group, in the order they run.
    const ALL: [Group; 4] = [
        Group::Echo(1),
        Group::Echo(16),
        Group::RoundTrip(16),
        Group::Connect(4),
    ];

    /// The criterion group name.
    fn name(self) -> String {
        match self {
            Group::Echo(n) => format!("echo_throughput/{n}_clients"),
            Group::RoundTrip(n) => format!("round_trip_64b/{n}_clients"),
            Group::Connect(_) => "connection_rate".to_string(),
        }
    }

    /// What one iteration does (one client's chunk, round trip or
    /// connection; the clients share the iterations out as they go).
    fn work(self) -> Work {
        match self {
            Group::Echo(_) => Work::Bytes(CHUNK as u64),
            Group::RoundTrip(_) | Group::Connect(_) => Work::Ops(1),
        }
    }

    /// The load generator for a server at `addr`.
    fn clients(self, addr: SocketAddr) -> io::Result<Workers> {
        match self {
            Group::Echo(n) => clients::echo_chunks(addr, n),
            Group::RoundTrip(n) => clients::round_trips(addr, n),
            Group::Connect(n) => Ok(clients::connections(addr, n)),
        }
    }
}

/// The groups criterion ran in this process (only those get a summary).
static RAN: Mutex<Vec<Group>> = Mutex::new(Vec::new());

/// Rounds of the interleaved measurement behind the ratio summary.
const SUMMARY_ROUNDS: usize = 11;

/// Runs one group: the same clients against each peer in turn.
fn compare(c: &mut Criterion, group: Group) {
    support::compare::compare(
        c,
        &group.name(),
        group.work(),
        &Peer::ALL,
        |addr| group.clients(addr),
        || {
            let mut ran = RAN.lock().expect("registry of groups");
            if !ran.contains(&group) {
                ran.push(group);
            }
        },
    );
}

/// `echo_throughput/{1,16}_clients`: 64 KiB chunks echoed.
fn echo_throughput(c: &mut Criterion) {
    compare(c, Group::Echo(1));
    compare(c, Group::Echo(16));
}

/// `round_trip_64b/16_clients`: 64-byte request/response round trips.
fn round_trip(c: &mut Criterion) {
    compare(c, Group::RoundTrip(16));
}

/// `connection_rate`: connect, 16 bytes, reply, close.
fn connection_rate(c: &mut Criterion) {
    compare(c, Group::Connect(4));
}

/// Every group, with the command line applied to the short settings (what
/// `criterion_group!` would generate, written out so it has docs).
fn benches() {
    let mut c = support::compare::short_config().configure_from_args();
    echo_throughput(&mut c);
    round_trip(&mut c);
    connection_rate(&mut c);
}

fn main() {
    let quick = support::compare::quick_mode();
    let plot = support::plot::requested();
    println!("std_peers: {}", support::affinity::describe());
    benches();
    Criterion::default().configure_from_args().final_summary();
    if quick {
        println!("ratio summary skipped (criterion --test/--list/--profile-time mode)");
    } else {
        let ran = RAN.lock().expect("registry of groups").clone();
        if !ran.is_empty() {
            println!(
                "\nratio summary (peers interleaved, median of {SUMMARY_ROUNDS} batches each):"
            );
        }
        for group in Group::ALL.into_iter().filter(|g| ran.contains(g)) {
            let results = report::interleaved(&Peer::ALL, group.work(), SUMMARY_ROUNDS, |addr| {
                group.clients(addr)
            });
            report::print(&group.name(), group.work(), &results, &Peer::PAIRS);
        }
    }
    if let Some(path) = plot {
        if quick {
            println!("plot skipped (criterion --test/--list/--profile-time mode)");
        } else {
            support::plot::sweep_and_draw(&path);
        }
    }
}
