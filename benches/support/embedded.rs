//! Shared by the `core`, `smoltcp` and `lwip` benches: the echo handler,
//! seeded test data, a record of criterion's own samples, and
//! the interleaved runs behind the ratio line each transfer bench prints
//! after criterion's run.
//!
//! Included by each bench with `#[path = "support/embedded.rs"] mod support;`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Sample size of every group of these benches (criterion's minimum is 10).
pub const SAMPLE_SIZE: usize = 10;

/// The criterion configuration of these benches: [`SAMPLE_SIZE`] samples,
/// the given warm-up and measurement times, and no plots (drawing them took
/// half of a run's time).
pub fn criterion(warm_up: Duration, measurement: Duration) -> criterion::Criterion {
    criterion::Criterion::default()
        .without_plots()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(warm_up)
        .measurement_time(measurement)
}

/// The echo application (the conformance suite's).
pub use tcpool_conformance::Echo;

/// `len` bytes of seeded noise: what a client sends and expects back.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    fastrand::Rng::with_seed(seed).fill(&mut out);
    out
}

/// How the bench binary was started, decided from the arguments as
/// criterion decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cargo bench`: measure.
    Bench,
    /// `cargo bench -- --test` or `cargo test --benches`: run each once.
    Test,
    /// `--list`, `--profile-time` or `--quick`: no samples to make ratios
    /// from.
    Other,
}

/// The mode of this run.
pub fn mode() -> Mode {
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    if has("--list") || has("--profile-time") || has("--quick") {
        Mode::Other
    } else if has("--test") || !has("--bench") {
        Mode::Test
    } else {
        Mode::Bench
    }
}

/// Every `iter_custom` call of every benchmark: id → `(iterations, time)`.
static SAMPLES: Mutex<BTreeMap<String, Vec<(u64, Duration)>>> = Mutex::new(BTreeMap::new());

/// Records one criterion sample of benchmark `id` (`"group/function"`, as
/// criterion names it) and hands the time back, for use as the body of
/// `iter_custom`: `b.iter_custom(|iters| record(id, iters, run(iters)))`.
pub fn record(id: &str, iters: u64, elapsed: Duration) -> Duration {
    let mut samples = SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
    samples
        .entry(id.to_owned())
        .or_default()
        .push((iters, elapsed));
    elapsed
}

/// The median time per iteration of benchmark `id` over criterion's
/// samples: criterion first calls the routine for its warm-up, then exactly
/// [`SAMPLE_SIZE`] times for its samples, so those are the last ones
/// recorded. `None` if the benchmark did not run (filtered out, or a
/// `--test` run).
pub fn measured(id: &str) -> Option<Duration> {
    let samples = SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
    let all = samples.get(id)?;
    if all.len() <= SAMPLE_SIZE {
        return None; // a --test run (one call), or no warm-up: not a measurement
    }
    let mut per_iter: Vec<Duration> = all[all.len() - SAMPLE_SIZE..]
        .iter()
        .map(|&(iters, t)| t / u32::try_from(iters.max(1)).unwrap_or(u32::MAX))
        .collect();
    per_iter.sort();
    let mid = per_iter.len() / 2;
    Some(if per_iter.len().is_multiple_of(2) {
        (per_iter[mid - 1] + per_iter[mid]) / 2
    } else {
        per_iter[mid]
    })
}

/// Times of the pool and its peer run alternately, in pairs.
#[derive(Debug, Clone)]
pub struct Pairs {
    /// `(pool, peer)` time of each pair.
    pub times: Vec<(Duration, Duration)>,
}

impl Pairs {
    /// Runs `pool` and `peer` alternately `pairs` times, each returning the
    /// time of its own measured work, and swaps who goes first every other
    /// pair: a pair shares the machine's conditions of the moment, so its
    /// ratio is robust to load that comes and goes (other processes on the
    /// same cores), unlike two measurements taken one after the other.
    pub fn run(
        pairs: usize,
        mut pool: impl FnMut() -> Duration,
        mut peer: impl FnMut() -> Duration,
    ) -> Pairs {
        let times = (0..pairs)
            .map(|i| {
                if i.is_multiple_of(2) {
                    let p = pool();
                    (p, peer())
                } else {
                    let r = peer();
                    (pool(), r)
                }
            })
            .collect();
        Pairs { times }
    }

    /// The pool's throughput over the peer's in each pair, sorted.
    fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .times
            .iter()
            .map(|(pool, peer)| peer.as_secs_f64() / pool.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Prints the ratio line of `group`: the pool's throughput over the peer's.
///
/// The figure is the median of the pair ratios of `pairs` (a run after
/// criterion's, see [`Pairs::run`]), with their quartiles. Beside it, two
/// other estimates of the same ratio: the peer's fastest run over the pool's
/// fastest (noise only ever slows a run down, so for CPU-bound work the
/// fastest run is the best estimate of the undisturbed time; it is unstable
/// where the time itself is bimodal, as lwIP's thread hand-offs are on a
/// virtual machine), and the ratio of criterion's medians for the two
/// functions (measured a while apart, so it moves most with the machine's
/// load). In test mode nothing was measured and the line says so.
pub fn print_ratio(group: &str, pool: &str, peer: &str, pairs: Option<&Pairs>) {
    print_ratio_against(group, pool, peer, pairs, "target >= 0.95");
}

/// [`print_ratio`] with another note on the target at the end of the line
/// (e.g. `"target >= 1.0"`, or why this ratio has none).
pub fn print_ratio_against(
    group: &str,
    pool: &str,
    peer: &str,
    pairs: Option<&Pairs>,
    target: &str,
) {
    let name = format!("ratio {group} {pool}/{peer}");
    match mode() {
        Mode::Bench => {}
        Mode::Test => return println!("{name}: skipped (test mode, nothing measured)"),
        Mode::Other => return println!("{name}: skipped (no measurement in this mode)"),
    }
    let criterion = match (
        measured(&format!("{group}/{pool}")),
        measured(&format!("{group}/{peer}")),
    ) {
        (Some(p), Some(r)) => format!(
            "criterion medians {p:.2?} / {r:.2?}: {:.3}",
            r.as_secs_f64() / p.as_secs_f64()
        ),
        _ => "criterion: one side did not run".to_owned(),
    };
    let Some(pairs) = pairs.filter(|p| !p.times.is_empty()) else {
        return println!("{name}: skipped (no interleaved run; {criterion})");
    };
    let fastest = |side: fn(&(Duration, Duration)) -> Duration| {
        pairs.times.iter().map(side).min().unwrap_or_default()
    };
    let (p, r) = (fastest(|t| t.0), fastest(|t| t.1));
    let ratios = pairs.ratios();
    println!(
        "{name} = {:.3}  (median of {} interleaved pairs, quartiles {:.3}..{:.3}; \
         fastest runs {p:.2?} / {r:.2?}: {:.3}; {criterion}; {target})",
        quantile(&ratios, 0.5),
        ratios.len(),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
        r.as_secs_f64() / p.as_secs_f64(),
    );
}
