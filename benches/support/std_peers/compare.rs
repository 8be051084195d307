//! One criterion group of the std benchmarks: the same clients against each
//! peer in turn, and the settings every group runs with.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};

use super::clients::Workers;
use super::report::{Contender, Work};
use super::servers::EchoServer;

/// Criterion runs in a quick mode (`--test`, `--list`, `--profile-time`):
/// each benchmark once or not at all, no figures worth a ratio or a plot.
pub fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--test" || a == "--list" || a == "--profile-time")
}

/// Short settings: a dozen benchmarks in under a minute on two cores, each
/// sample a couple of hundred milliseconds of traffic.
pub fn short_config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .nresamples(20_000)
}

/// Runs group `name` of `work`: `clients` against each of `peers` in turn.
/// Each peer's server and clients are set up once, the first time
/// criterion runs the benchmark (not at all if it is filtered out; `ran` is
/// called when it is), and torn down after it.
pub fn compare<P: Contender>(
    c: &mut Criterion,
    name: &str,
    work: Work,
    peers: &[P],
    clients: impl Fn(SocketAddr) -> io::Result<Workers>,
    mut ran: impl FnMut(),
) {
    let mut g = c.benchmark_group(name);
    g.throughput(match work {
        Work::Bytes(b) => Throughput::BytesDecimal(b),
        Work::Ops(n) => Throughput::Elements(n),
    });
    // Iterations take microseconds to milliseconds; flat sampling keeps
    // every sample the same size.
    g.sampling_mode(SamplingMode::Flat);
    for &peer in peers {
        let mut running: Option<(EchoServer, Workers)> = None;
        g.bench_function(peer.name(), |b| {
            let (_, workers) = running.get_or_insert_with(|| {
                let server = peer.start();
                let workers = clients(server.addr())
                    .unwrap_or_else(|e| panic!("{name}: clients of {}: {e}", peer.name()));
                (server, workers)
            });
            ran();
            b.iter_custom(|iters| workers.run(iters));
        });
        if let Some((server, workers)) = running.take() {
            // Clients first: the servers see them close.
            drop(workers);
            server.stop();
        }
    }
    g.finish();
}
