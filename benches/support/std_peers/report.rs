//! The ratio summary printed after the criterion groups, from a separate,
//! interleaved measurement.
//!
//! Criterion measures the peers of a group one after another, each for a
//! few seconds. On a shared 2-CPU machine, load from other work comes and
//! goes on that time scale, so one peer can be measured on a quiet machine
//! and the next on a busy one, and their ratio says more about the
//! neighbours than about the servers. Here all three servers run at once
//! (idle ones sleep), each with its own clients, and short batches
//! alternate between the peers, round after round, in a rotating order;
//! each peer's figure is the median of its batches. Slow changes in
//! background load then hit every peer alike.
//!
//! Throughput alone can hide a difference: the clients share one CPU, and
//! when they are what limits the rate, every server looks the same. So for
//! the two single-threaded servers the CPU time their thread used during
//! their batches (from `/proc/self/task/*/schedstat`, Linux) is reported
//! too, per unit of work: the cost of the server. (Not for `threads`: the
//! time of connection threads that have ended is no longer listed there.)

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::clients::Workers;
use super::servers::EchoServer;

/// A server compared in a measurement.
pub trait Contender: Copy + PartialEq {
    /// Its benchmark function name.
    fn name(self) -> &'static str;
    /// The start of the names of its server threads as the system shows
    /// them (at most 15 bytes), if it serves from threads that live as long
    /// as the server (their CPU time is then reported).
    fn cpu_threads(self) -> Option<&'static str>;
    /// Starts its echo server.
    fn start(self) -> EchoServer;
}

/// What one iteration of a measurement does, for turning time into
/// throughput.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Work {
    /// This many bytes echoed (reported in MB/s, 10^6 bytes per second).
    Bytes(u64),
    /// This many operations (round trips, connections), reported per second.
    Ops(u64),
}

impl Work {
    /// Throughput of `iters` iterations in `elapsed`, in this work's unit.
    fn rate(self, iters: u64, elapsed: Duration) -> f64 {
        let per_second = iters as f64 / elapsed.as_secs_f64();
        match self {
            Work::Bytes(b) => b as f64 * per_second / 1e6,
            Work::Ops(n) => n as f64 * per_second,
        }
    }

    /// The unit of [`rate`](Self::rate).
    pub fn unit(self) -> &'static str {
        match self {
            Work::Bytes(_) => "MB/s",
            Work::Ops(_) => "ops/s",
        }
    }

    /// Server CPU time per unit of work: `cpu` spent on `iters` iterations,
    /// in µs per MB or µs per operation; with its unit.
    fn cost(self, cpu: Duration, iters: u64) -> (f64, &'static str) {
        let micros = cpu.as_secs_f64() * 1e6;
        match self {
            Work::Bytes(b) => (micros / (iters as f64 * b as f64 / 1e6), "µs/MB"),
            Work::Ops(n) => (micros / (iters as f64 * n as f64), "µs/op"),
        }
    }
}

/// CPU time used so far by this process's threads whose names start with
/// `prefix`, or `None` where the system does not say (not Linux).
fn threads_cpu(prefix: &str) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        // "<ns on CPU> <ns waiting> <time slices>"; a thread may end meanwhile.
        if let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) {
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(Duration::from_nanos(total))
}

/// How long one batch of iterations should take.
const BATCH: Duration = Duration::from_millis(100);

/// Warm-up time per peer before the rounds.
const WARM_UP: Duration = Duration::from_millis(300);

/// One peer's result: the median batch throughput and the spread, and the
/// server's CPU time per unit of work.
#[derive(Copy, Clone, Debug)]
pub struct Measured<P> {
    /// The peer.
    pub peer: P,
    /// Median batch throughput.
    pub median: f64,
    /// Slowest batch.
    pub min: f64,
    /// Fastest batch.
    pub max: f64,
    /// Server CPU time per unit of work over all batches (µs per MB or per
    /// operation), for the single-threaded servers, if the system tells
    /// thread CPU times.
    pub cost: Option<f64>,
}

/// Measures every peer of `peers` on the same work, interleaved: `rounds`
/// rounds of one batch per peer. `clients` connects a peer's load generator
/// to its server's address.
pub fn interleaved<P: Contender>(
    peers: &[P],
    work: Work,
    rounds: usize,
    clients: impl Fn(SocketAddr) -> io::Result<Workers>,
) -> Vec<Measured<P>> {
    let servers: Vec<EchoServer> = peers.iter().map(|p| p.start()).collect();
    let pools: Vec<Workers> = servers
        .iter()
        .zip(peers.iter().copied())
        .map(|(s, p)| clients(s.addr()).unwrap_or_else(|e| panic!("clients of {}: {e}", p.name())))
        .collect();
    // A batch size per peer that takes about BATCH, then a warm-up.
    let iters: Vec<u64> = pools
        .iter()
        .map(|w| {
            let mut n = 1;
            while w.run(n) < BATCH / 2 {
                n *= 2;
            }
            let start = Instant::now();
            while start.elapsed() < WARM_UP {
                w.run(n);
            }
            n
        })
        .collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); pools.len()];
    let mut cpu: Vec<Option<Duration>> = vec![Some(Duration::ZERO); pools.len()];
    for round in 0..rounds {
        for k in 0..pools.len() {
            let i = (round + k) % pools.len();
            let prefix = peers[i].cpu_threads();
            let before = prefix.and_then(threads_cpu);
            rates[i].push(work.rate(iters[i], pools[i].run(iters[i])));
            let after = prefix.and_then(threads_cpu);
            let used = after.zip(before).map(|(a, b)| a.saturating_sub(b));
            cpu[i] = cpu[i].zip(used).map(|(sum, u)| sum + u);
        }
    }
    drop(pools);
    for s in servers {
        s.stop();
    }
    peers
        .iter()
        .zip(rates)
        .zip(cpu)
        .enumerate()
        .map(|(i, ((&peer, mut r), cpu))| {
            r.sort_by(f64::total_cmp);
            Measured {
                peer,
                median: r[r.len() / 2],
                min: r[0],
                max: r[r.len() - 1],
                cost: cpu.map(|c| work.cost(c, iters[i] * rounds as u64).0),
            }
        })
        .collect()
}

/// Prints one measurement: a `summary` line with each peer's median (with
/// its range) and server CPU cost, then per pair `(ours, theirs)` of
/// `pairs` `ratio GROUP OURS/THEIRS = X` (throughput over throughput: above
/// 1.0, ours was faster) and, where known, `cpu_ratio GROUP THEIRS/OURS =
/// Y` (their server CPU per unit of work over ours: above 1.0, ours was
/// cheaper).
pub fn print<P: Contender>(group: &str, work: Work, results: &[Measured<P>], pairs: &[(P, P)]) {
    let unit = work.unit();
    let cost_unit = work.cost(Duration::ZERO, 1).1;
    let line: Vec<String> = results
        .iter()
        .map(|m| {
            let cost = m
                .cost
                .map_or(String::new(), |c| format!(" cpu={c:.1} {cost_unit}"));
            format!(
                "{}={:.1} {unit} [{:.1}..{:.1}]{cost}",
                m.peer.name(),
                m.median,
                m.min,
                m.max
            )
        })
        .collect();
    println!("summary {group} {}", line.join(" "));
    let find = |p: P| results.iter().find(|m| m.peer == p);
    for &(ours, theirs) in pairs {
        let (Some(ours), Some(theirs)) = (find(ours), find(theirs)) else {
            continue;
        };
        println!(
            "ratio {group} {}/{} = {:.2}",
            ours.peer.name(),
            theirs.peer.name(),
            ours.median / theirs.median
        );
    }
    for &(ours, theirs) in pairs {
        let (Some(ours), Some(theirs)) = (find(ours), find(theirs)) else {
            continue;
        };
        if let (Some(a), Some(b)) = (theirs.cost, ours.cost) {
            println!(
                "cpu_ratio {group} {}/{} = {:.2}",
                theirs.peer.name(),
                ours.peer.name(),
                a / b
            );
        }
    }
}
