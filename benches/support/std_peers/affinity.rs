//! Where the benchmark's threads run: every server thread on one CPU, every
//! client thread on another.
//!
//! Unpinned, the scheduler decides per run whether a server and its client
//! share a CPU, and on the 2-CPU benchmark machine that alone moved a
//! one-client echo by a factor of two, for every peer alike (same CPU:
//! cheap wake-ups, ~0.9 GB/s; different CPUs: ~0.45 GB/s), so ratios
//! between peers measured in different runs meant nothing. Pinned, each
//! server has one CPU to itself (as a server whose clients are elsewhere
//! would), the load generator the other, and runs repeat.
//!
//! With fewer than two CPUs allowed, or if the system refuses, nothing is
//! pinned (and [`describe`] says so).

use std::sync::OnceLock;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The two CPUs used: (servers, clients), or `None` if not pinning.
fn cpus() -> Option<(usize, usize)> {
    static CPUS: OnceLock<Option<(usize, usize)>> = OnceLock::new();
    *CPUS.get_or_init(|| {
        let allowed = sched_getaffinity(None).ok()?;
        let mut it = (0..CpuSet::MAX_CPU).filter(|&cpu| allowed.is_set(cpu));
        Some((it.next()?, it.next()?))
    })
}

/// Pins the calling thread to `cpu`; threads it spawns inherit that.
fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    if let Err(e) = sched_setaffinity(None, &set) {
        eprintln!("warning: cannot pin a benchmark thread to CPU {cpu}: {e}");
    }
}

/// Pins the calling server thread (and the threads it will spawn) to the
/// servers' CPU.
pub fn server_thread() {
    if let Some((server, _)) = cpus() {
        pin(server);
    }
}

/// Pins the calling client thread to the clients' CPU.
pub fn client_thread() {
    if let Some((_, client)) = cpus() {
        pin(client);
    }
}

/// One line saying how threads are placed, for the bench's output.
pub fn describe() -> String {
    match cpus() {
        Some((server, client)) => {
            format!("servers pinned to CPU {server}, clients to CPU {client}")
        }
        None => "threads not pinned (fewer than two CPUs allowed)".to_string(),
    }
}
