//! Micro-benchmarks of tcpool-core on its own, with no network stack cost
//! worth speaking of:
//!
//! * `poll_idle/N`: one [`Server::poll`] over `N` = 4, 16, 64 and 1,024
//!   connections that are open but idle, on the in-memory [`MockStack`]
//!   that does not report readiness. The time is per call; the summary
//!   divides it by `N` and gives the marginal cost of a slot (the slope from
//!   4 to 64). Each idle slot costs one `receive` on the stack (here a
//!   `RefCell` borrow and an empty queue), so the figure is the pool's
//!   bookkeeping plus the cheapest stack call there is.
//! * `poll_idle_ready/N`: the same on a [`MockStack`] that reports
//!   readiness (as the std backend does with epoll): a poll asks the stack
//!   what is ready (nothing), and services nothing. Its cost should not
//!   depend on `N`: the summary prints the ratio of `N` = 1,024 to `N` = 4.
//! * `framing/lines`, `framing/length_prefix`: [`framing::Lines`] and
//!   [`framing::next_frame`] over 1 MB of input that arrives in seeded random
//!   pieces of 1 to 1460 bytes, the way a slot offers it to a handler
//!   (whatever is unconsumed, plus the new piece). Only framing is timed:
//!   the input is one slice and each offer a window of it, so no bytes are
//!   copied.
//! * Memory: `size_of` of a `Server` for a few `(N, RX, TX)` on each
//!   backend's socket type, and the bytes per slot beyond its buffers
//!   (`Server::SLOT_BYTES - RX - TX`). Printed in every mode.
//!
//! `cargo bench --bench core` (under a minute); `cargo bench --bench core --
//! --test` runs each benchmark once and prints the sizes.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant as WallClock};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use tcpool::host::Heap;
use tcpool_core::framing::{self, Lines, Prefix};
use tcpool_core::mock::{MockClient, MockConfig, MockStack};
use tcpool_core::{Config, Instant, Server};

#[path = "support/embedded.rs"]
#[allow(dead_code, reason = "the ratio helpers serve the transfer benches")]
mod support;

use support::{Echo, Mode, measured, mode, record};

const PORT: u16 = 7000;

/// The pool sizes of `poll_idle` and `poll_idle_ready`.
const IDLE_SIZES: [usize; 4] = [4, 16, 64, 1024];

/// Bytes of framing input.
const FRAMING_BYTES: usize = 1_000_000;
/// Longest line of the line input (and `Lines`' limit).
const MAX_LINE: usize = 120;
/// Longest payload of the length-prefixed input (and `next_frame`'s limit).
const MAX_FRAME: usize = 1024;
/// Pieces the input arrives in: 1 to this many bytes (a TCP segment).
const MAX_PIECE: usize = 1460;

// ------------------------------------------------------------------ poll_idle

/// A server whose `N` slots all hold an open connection with nothing to do,
/// its stack, and the clients (kept so the connections stay open).
struct Idle<const N: usize> {
    stack: MockStack,
    server: Server<MockStack, Echo, N, 1024, 1024, Heap>,
    _clients: Vec<MockClient>,
}

impl<const N: usize> Idle<N> {
    fn new(ready: bool) -> Self {
        let mut stack = MockStack::with_config(MockConfig {
            max_sockets: N + 1,
            backlog: N,
            ..MockConfig::default()
        });
        stack.set_reports_ready(ready);
        let mut server = Server::new_in(Echo, Config::new().with_max_connections(N));
        server.listen(&mut stack, PORT).expect("listen");
        let clients: Vec<MockClient> = (0..N)
            .map(|_| stack.connect_client(PORT).expect("connect"))
            .collect();
        let t = Instant::from_millis(1);
        while server.poll(&mut stack, t) {}
        assert_eq!(server.active(), N, "every client accepted");
        // Idle: a poll moves nothing and there is no deadline.
        assert!(!server.poll(&mut stack, t));
        assert_eq!(server.poll_at(), None);
        Idle {
            stack,
            server,
            _clients: clients,
        }
    }

    fn bench(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, ready: bool) {
        let mut idle = Self::new(ready);
        let id = format!("poll_idle{}/{N}", if ready { "_ready" } else { "" });
        let now = Instant::from_millis(1);
        c.bench_function(BenchmarkId::from_parameter(N), |b| {
            b.iter_custom(|iters| {
                let t = WallClock::now();
                for _ in 0..iters {
                    black_box(idle.server.poll(black_box(&mut idle.stack), now));
                }
                record(&id, iters, t.elapsed())
            })
        });
        assert_eq!(idle.server.active(), N);
    }
}

fn poll_idle(c: &mut Criterion) {
    for ready in [false, true] {
        let name = if ready {
            "poll_idle_ready"
        } else {
            "poll_idle"
        };
        let mut group = c.benchmark_group(name);
        Idle::<4>::bench(&mut group, ready);
        Idle::<16>::bench(&mut group, ready);
        Idle::<64>::bench(&mut group, ready);
        Idle::<1024>::bench(&mut group, ready);
        group.finish();
    }
}

// -------------------------------------------------------------------- framing

/// The framing workloads: the input and the pieces it arrives in.
struct Input {
    lines: Vec<u8>,
    line_count: usize,
    frames: Vec<u8>,
    frame_count: usize,
    pieces: Vec<usize>,
}

impl Input {
    fn new() -> Input {
        let mut rng = fastrand::Rng::with_seed(0x11e5);
        let (mut lines, mut line_count) = (Vec::with_capacity(FRAMING_BYTES + 256), 0);
        while lines.len() < FRAMING_BYTES {
            let len = rng.usize(0..=MAX_LINE);
            lines.extend((0..len).map(|_| rng.u8(b' '..=b'~')));
            let crlf = rng.bool();
            lines.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            line_count += 1;
        }
        let (mut frames, mut frame_count) = (Vec::with_capacity(FRAMING_BYTES + 2048), 0);
        while frames.len() < FRAMING_BYTES {
            let len = rng.usize(0..=MAX_FRAME);
            let mut header = [0u8; 4];
            let h = Prefix::U16Be.encode(len, &mut header).expect("fits u16");
            frames.extend_from_slice(&header[..h]);
            frames.extend((0..len).map(|_| rng.u8(..)));
            frame_count += 1;
        }
        let longest = lines.len().max(frames.len());
        let mut pieces = Vec::new();
        let mut total = 0;
        while total < longest {
            let n = rng.usize(1..=MAX_PIECE);
            pieces.push(n);
            total += n;
        }
        Input {
            lines,
            line_count,
            frames,
            frame_count,
            pieces,
        }
    }
}

/// Feeds `input` in `pieces` to `frame` as a slot would: each call sees the
/// unconsumed bytes plus the new piece and returns `(frames, bytes)` it
/// consumed. Returns the frames found and a checksum of their lengths.
fn feed(
    input: &[u8],
    pieces: &[usize],
    mut frame: impl FnMut(&[u8]) -> (usize, usize, usize),
) -> (usize, usize) {
    let (mut start, mut end) = (0, 0);
    let (mut count, mut sum) = (0, 0);
    for &n in pieces {
        if end == input.len() {
            break;
        }
        end = (end + n).min(input.len());
        let (found, payload, used) = frame(&input[start..end]);
        count += found;
        sum += payload;
        start += used;
    }
    assert_eq!(start, input.len(), "input left unconsumed");
    (count, sum)
}

/// Every complete line in `window`: `(lines, payload bytes, bytes consumed)`.
fn frame_lines(window: &[u8]) -> (usize, usize, usize) {
    let mut lines = Lines::new(window, MAX_LINE);
    let (mut n, mut sum) = (0, 0);
    for line in lines.by_ref() {
        sum += line.expect("no line is too long").len();
        n += 1;
    }
    (n, sum, lines.consumed())
}

/// Every complete frame in `window`: `(frames, payload bytes, bytes consumed)`.
fn frame_prefixed(window: &[u8]) -> (usize, usize, usize) {
    let (mut n, mut sum, mut used) = (0, 0, 0);
    while let Some((payload, len)) =
        framing::next_frame(&window[used..], Prefix::U16Be, MAX_FRAME).expect("no frame too long")
    {
        sum += payload.len();
        used += len;
        n += 1;
    }
    (n, sum, used)
}

/// The framing input, generated once.
fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(Input::new)
}

fn framing(c: &mut Criterion) {
    let input = input();
    // Checked once, outside the timing: every frame is found.
    assert_eq!(
        feed(&input.lines, &input.pieces, frame_lines).0,
        input.line_count
    );
    assert_eq!(
        feed(&input.frames, &input.pieces, frame_prefixed).0,
        input.frame_count
    );

    let mut group = c.benchmark_group("framing");
    type Framer = fn(&[u8]) -> (usize, usize, usize);
    let cases: [(&str, &[u8], Framer); 2] = [
        ("lines", &input.lines, frame_lines),
        ("length_prefix", &input.frames, frame_prefixed),
    ];
    for (name, data, framer) in cases {
        group.throughput(Throughput::Bytes(data.len() as u64));
        let id = format!("framing/{name}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = WallClock::now();
                for _ in 0..iters {
                    black_box(feed(black_box(data), &input.pieces, framer));
                }
                record(&id, iters, t.elapsed())
            })
        });
    }
    group.finish();
}

// --------------------------------------------------------------------- memory

/// `size_of` of a server over stack `S`, and its bytes per slot beyond the
/// buffers.
fn sizes<S: tcpool_core::Backend, const N: usize, const RX: usize, const TX: usize>()
-> (usize, usize) {
    (
        core::mem::size_of::<Server<S, Echo, N, RX, TX>>(),
        Server::<S, Echo, N, RX, TX>::SLOT_BYTES - RX - TX,
    )
}

/// One row of the memory table: `(N, RX, TX)` and `(total, per-slot
/// overhead)` for each stack.
fn row<const N: usize, const RX: usize, const TX: usize>()
-> ((usize, usize, usize), [(usize, usize); 4]) {
    (
        (N, RX, TX),
        [
            sizes::<MockStack, N, RX, TX>(),
            sizes::<tcpool_smoltcp::sim::SimStack<4>, N, RX, TX>(),
            sizes::<tcpool_lwip::LwipStack, N, RX, TX>(),
            sizes::<tcpool_std::StdStack, N, RX, TX>(),
        ],
    )
}

fn print_memory() {
    println!(
        "memory: size_of::<Server<S, Echo, N, RX, TX>>() in bytes, and (in brackets) bytes per slot beyond \
         its RX + TX buffers (Server::SLOT_BYTES - RX - TX); the socket handle S::TcpSocket is part of the slot"
    );
    println!(
        "  {:>3} {:>5} {:>5} | {:>13} | {:>13} | {:>13} | {:>13}",
        "N", "RX", "TX", "mock", "smoltcp", "lwip", "std"
    );
    for ((n, rx, tx), cols) in [
        row::<4, 1024, 1024>(),
        row::<16, 1024, 1024>(),
        row::<4, 4096, 4096>(),
        row::<64, 512, 512>(),
    ] {
        let cell = |(total, extra): (usize, usize)| format!("{total} ({extra})");
        println!(
            "  {n:>3} {rx:>5} {tx:>5} | {:>13} | {:>13} | {:>13} | {:>13}",
            cell(cols[0]),
            cell(cols[1]),
            cell(cols[2]),
            cell(cols[3])
        );
    }
}

// -------------------------------------------------------------------- summary

fn print_summary() {
    if mode() != Mode::Bench {
        println!("summary: skipped (test mode, nothing measured)");
        return;
    }
    for n in IDLE_SIZES {
        if let Some(m) = measured(&format!("poll_idle/{n}")) {
            println!(
                "poll_idle N={n}: {m:.1?} per poll, {:.2} ns per idle slot",
                m.as_secs_f64() * 1e9 / n as f64
            );
        }
    }
    if let (Some(lo), Some(hi)) = (measured("poll_idle/4"), measured("poll_idle/64")) {
        let slope = (hi.as_secs_f64() - lo.as_secs_f64()) * 1e9 / 60.0;
        println!("poll_idle marginal cost of an idle slot (N 4 -> 64): {slope:.2} ns");
    }
    for n in IDLE_SIZES {
        if let Some(m) = measured(&format!("poll_idle_ready/{n}")) {
            println!("poll_idle_ready N={n}: {m:.1?} per poll");
        }
    }
    if let (Some(lo), Some(hi)) = (
        measured("poll_idle_ready/4"),
        measured("poll_idle_ready/1024"),
    ) {
        println!(
            "ratio poll_idle_ready N=1024/N=4 = {:.2} (1.0: the cost of an idle poll does not grow with N)",
            hi.as_secs_f64() / lo.as_secs_f64()
        );
    }
    let input = input();
    for (name, bytes) in [
        ("lines", input.lines.len()),
        ("length_prefix", input.frames.len()),
    ] {
        if let Some(m) = measured(&format!("framing/{name}")) {
            println!(
                "framing {name}: {:.0} MB/s ({bytes} bytes in {m:.1?})",
                bytes as f64 / m.as_secs_f64() / 1e6
            );
        }
    }
}

/// The criterion group (in a module of its own: the function the macro
/// generates is public and has no doc comment).
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = support::criterion(Duration::from_secs(2), Duration::from_secs(5));
        targets = poll_idle, framing
    }
}

fn main() {
    print_memory();
    group::benches();
    Criterion::default().configure_from_args().final_summary();
    print_summary();
}
