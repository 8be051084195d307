//! # Cost that follows the work: big pools and idle connections
//!
//! tcpool-std with a 64-slot and a 1,024-slot pool (4 KiB buffers, the
//! slots built in place on the heap) beside a tokio current-thread echo
//! server (4 KiB buffer per connection), with the same clients, while 0, 50
//! or 1,000 idle connections are held open on each server (each one served
//! once, then silent). The 64-slot pool is left out at 1,000 idle: they do
//! not fit.
//!
//! Groups (an iteration is one unit of work by whichever client is free):
//!
//! * `scaling/round_trip_64b/{idle}_idle`: one client sends 64 bytes and
//!   waits for the echo (round trips per second);
//! * `scaling/ping_pong_4k/{idle}_idle`: four clients each write 4 KiB and
//!   read it back (MB/s).
//!
//! After the criterion groups each group is measured again with the peers
//! interleaved (see `support/std_peers/report.rs`) and the ratios are
//! printed: each tcpool pool over tokio, and the 1,024-slot pool over the
//! 64-slot one. With `TCPOOL_BENCH_PLOT=path.svg` the 4 KiB ping-pong
//! throughput against idle connections is drawn.
//!
//! ```sh
//! cargo bench --bench scaling                  # about 2 minutes on 2 cores
//! TCPOOL_BENCH_PLOT=docs/throughput-vs-idle.svg cargo bench --bench scaling
//! cargo bench --bench scaling -- --test        # each benchmark once (CI)
//! ```

// Shared with `std_peers`, which uses all of it; this benchmark does not
// (no thread-per-connection peer, no connection-rate clients).
#[allow(dead_code)]
#[path = "support/std_peers/mod.rs"]
mod support;

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use criterion::Criterion;
use plotters::chart::SeriesLabelPosition;
use plotters::style::RGBColor;

use support::clients::{self, Workers};
use support::plot::{self, Chart, Marker, Series};
use support::report::{self, Contender, Work};
use support::servers::{self, EchoServer};
use tcpool::Config;
use tcpool::host::Heap;

/// Bytes of buffer per connection, for every peer.
const BUF: usize = 4096;

/// Idle connections held open, per group.
const IDLE: [usize; 3] = [0, 50, 1000];

/// Clients of the ping-pong groups.
const PING_PONG_CLIENTS: usize = 4;

/// Rounds of the interleaved measurement behind the ratio summary.
const SUMMARY_ROUNDS: usize = 11;

/// The compared servers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Scaled {
    /// tcpool-std, 64 slots.
    Tcpool64,
    /// tcpool-std, 1,024 slots.
    Tcpool1024,
    /// tokio current-thread, a task per connection.
    Tokio,
}

impl Scaled {
    /// The peers that can hold `idle` idle connections and the clients.
    fn fitting(idle: usize) -> Vec<Scaled> {
        [Scaled::Tcpool64, Scaled::Tcpool1024, Scaled::Tokio]
            .into_iter()
            .filter(|p| *p != Scaled::Tcpool64 || idle + PING_PONG_CLIENTS <= 64)
            .collect()
    }

    /// What the ratio summary compares.
    const PAIRS: [(Scaled, Scaled); 3] = [
        (Scaled::Tcpool64, Scaled::Tokio),
        (Scaled::Tcpool1024, Scaled::Tokio),
        (Scaled::Tcpool1024, Scaled::Tcpool64),
    ];
}

/// The configuration of a tcpool pool of `n` slots: all of them served,
/// four buffers read per connection per poll (as in `std_peers`).
fn tcpool_config(n: usize) -> Config {
    Config::new()
        .with_max_connections(n)
        .with_read_budget(4 * BUF)
}

impl Contender for Scaled {
    fn name(self) -> &'static str {
        match self {
            Scaled::Tcpool64 => "tcpool_n64",
            Scaled::Tcpool1024 => "tcpool_n1024",
            Scaled::Tokio => "tokio_current_thread",
        }
    }

    fn cpu_threads(self) -> Option<&'static str> {
        Some(match self {
            Scaled::Tcpool64 => "tcpool_n64",
            Scaled::Tcpool1024 => "tcpool_n1024",
            Scaled::Tokio => "tokio_current_t",
        })
    }

    fn start(self) -> EchoServer {
        // The slots are on the heap: the thread needs no stack for them.
        const STACK: usize = 1 << 20;
        match self {
            Scaled::Tcpool64 => {
                servers::start_tcpool_server::<64, BUF, Heap>(self.name(), tcpool_config(64), STACK)
            }
            Scaled::Tcpool1024 => servers::start_tcpool_server::<1024, BUF, Heap>(
                self.name(),
                tcpool_config(1024),
                STACK,
            ),
            Scaled::Tokio => servers::start_tokio(BUF),
        }
    }
}

/// What the working clients do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Load {
    /// One client, 64-byte round trips.
    RoundTrip,
    /// Four clients, 4 KiB written and read back.
    PingPong,
}

/// One comparison: the load, with this many idle connections held open.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Group {
    load: Load,
    idle: usize,
}

impl Group {
    /// Every group, in the order they run.
    fn all() -> Vec<Group> {
        [Load::RoundTrip, Load::PingPong]
            .into_iter()
            .flat_map(|load| IDLE.map(|idle| Group { load, idle }))
            .collect()
    }

    fn name(self) -> String {
        let load = match self.load {
            Load::RoundTrip => "round_trip_64b",
            Load::PingPong => "ping_pong_4k",
        };
        format!("scaling/{load}/{}_idle", self.idle)
    }

    fn work(self) -> Work {
        match self.load {
            Load::RoundTrip => Work::Ops(1),
            Load::PingPong => Work::Bytes(BUF as u64),
        }
    }

    /// The idle connections, then the working clients, for a server at
    /// `addr`.
    fn clients(self, addr: SocketAddr) -> io::Result<Workers> {
        let idle = clients::idle_connections(addr, self.idle)?;
        let workers = match self.load {
            Load::RoundTrip => clients::round_trips(addr, 1)?,
            Load::PingPong => clients::echo_chunks_of(addr, PING_PONG_CLIENTS, BUF)?,
        };
        Ok(workers.holding(idle))
    }
}

/// The groups criterion ran in this process (only those get a summary).
static RAN: Mutex<Vec<Group>> = Mutex::new(Vec::new());

fn compare(c: &mut Criterion, group: Group) {
    support::compare::compare(
        c,
        &group.name(),
        group.work(),
        &Scaled::fitting(group.idle),
        |addr| group.clients(addr),
        || {
            let mut ran = RAN.lock().expect("registry of groups");
            if !ran.contains(&group) {
                ran.push(group);
            }
        },
    );
}

/// Every server holds up to 1,000 idle connections (two descriptors each
/// in this process, three servers at once in the summary): raises the
/// soft limit on open files to the hard one.
fn enough_descriptors() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    const NEEDED: u64 = 8 * 1024;
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= NEEDED {
        return;
    }
    limit.current = Some(limit.maximum.map_or(NEEDED, |max| max.min(NEEDED)));
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("warning: cannot raise the open-file limit from {soft}: {e}");
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if now < NEEDED {
        eprintln!(
            "warning: open-file limit {now} (below {NEEDED}): the 1,000-idle groups may fail"
        );
    }
}

fn main() {
    enough_descriptors();
    let quick = support::compare::quick_mode();
    let plot = support::plot::requested();
    println!("scaling: {}", support::affinity::describe());
    let mut c = support::compare::short_config().configure_from_args();
    for group in Group::all() {
        compare(&mut c, group);
    }
    Criterion::default().configure_from_args().final_summary();
    if quick {
        println!("ratio summary skipped (criterion --test/--list/--profile-time mode)");
        return;
    }
    let ran = RAN.lock().expect("registry of groups").clone();
    println!("\nratio summary (peers interleaved, median of {SUMMARY_ROUNDS} batches each):");
    let mut series: Vec<Series> = [
        (Scaled::Tcpool64, RGBColor(120, 170, 220), Marker::Square),
        (Scaled::Tcpool1024, RGBColor(31, 119, 180), Marker::Diamond),
        (Scaled::Tokio, RGBColor(230, 110, 0), Marker::Disc),
    ]
    .into_iter()
    .map(|(peer, colour, marker)| Series {
        name: peer.name(),
        colour,
        marker,
        points: Vec::new(),
    })
    .collect();
    for group in Group::all().into_iter().filter(|g| ran.contains(g)) {
        let peers = Scaled::fitting(group.idle);
        let results =
            report::interleaved(&peers, group.work(), SUMMARY_ROUNDS, |a| group.clients(a));
        report::print(&group.name(), group.work(), &results, &Scaled::PAIRS);
        if group.load == Load::PingPong {
            for m in &results {
                if let Some(s) = series.iter_mut().find(|s| s.name == m.peer.name()) {
                    s.points.push((group.idle, m.median));
                }
            }
        }
    }
    if let Some(path) = plot {
        let chart = Chart {
            title: "4 KiB ping-pong (4 clients) vs idle connections held open",
            x_desc: "idle connections held open on the server",
            xs: &IDLE,
            command: "TCPOOL_BENCH_PLOT=docs/throughput-vs-idle.svg cargo bench --bench scaling",
            legend: SeriesLabelPosition::LowerRight,
        };
        plot::write(&path, &chart, &series);
    }
}
