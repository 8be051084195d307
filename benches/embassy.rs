//! The async pool on embassy-net against a hand-written embassy-net server,
//! in process: the same echo served once by tcpool (`tcpool-embassy`'s
//! socket pool + `async_handler::serve` with an async echo handler, 4
//! slots of 1 KiB buffers) and once the way picoserve and edge-http serve
//! (4 tasks, each accepting on its own `TcpSocket` in a loop and echoing
//! through a 1 KiB buffer).
//!
//! Both run over the in-memory wire of `tcpool_embassy::sim` (no loss, no
//! latency) between a server stack and a client stack, on embassy-time's
//! mock clock, which moves 1 ms only when no task is ready: the runs are
//! deterministic. Tasks are polled only when woken. Same client stack,
//! seeds, socket buffers (4 KiB each way on the server, 16 KiB on the
//! clients) and executor; only the server side differs.
//!
//! * `embassy_transfer`: 4 clients each send 256 KiB and read them back.
//! * `embassy_burst`: 16 clients connect at once (4 times the slots), each
//!   sends 64 bytes, reads them back and closes. The hand-written server
//!   has 4 listening sockets: embassy-net resets the SYNs that find none.
//!   The pool holds them (`HoldSyns`) until the clients' SYN retransmit
//!   (after 1 s, then 2 s, 4 s...) finds a listener. For a fair
//!   comparison, a client whose connect is reset tries again after the
//!   same delay its SYN retransmit would have waited (counted as refused):
//!   against either server, a client that finds no listener waits as long.
//!   (Reconnecting at once would flatter the server that resets: no real
//!   client does, and a real one usually gives up.)
//!
//! The time criterion measures is the wall-clock time spent polling the
//! tasks (both stacks, the wire, the clients checking every byte), setup,
//! teardown and the simulated milliseconds in which no task was woken
//! (all waiting for a timer) excluded: the CPU the simulation costs. After
//! criterion's run, one `ratio` line per group gives the pool's throughput
//! (for the burst: clients served per CPU second) over the hand-written
//! server's: the median of 100 pairs run alternately, with two other
//! estimates of the same ratio beside it. The burst's user-visible
//! figure is another `ratio` line, printed first: clients served per
//! second of simulated time (the time until the last client has its echo),
//! which is deterministic. It also prints the memory of both servers.
//!
//! `cargo bench --bench embassy`; `-- --test` runs each once.
//! `TCPOOL_EMBASSY_ONE=embassy_transfer/tcpool_pool` (or `hand_written`,
//! or `embassy_burst/..`) runs that one simulation once and nothing else,
//! for a profiler (`valgrind --tool=callgrind`).

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant as WallClock};

use criterion::{Criterion, Throughput, criterion_group};
use embassy_futures::join::join;
use embassy_time::{MockDriver, Timer};
use embedded_io_async::{Read, Write};
use tcpool_core::async_handler::{self, Adapter, AsyncConn, AsyncHandler, AsyncServer};
use tcpool_core::{CloseReason, Config, Server};
use tcpool_embassy::embassy_net::tcp::TcpSocket;
use tcpool_embassy::embassy_net::{self, Ipv4Cidr, StackResources, StaticConfigV4};
use tcpool_embassy::sim::Wire;
use tcpool_embassy::{
    Config as PoolConfig, EmbassyClock, HoldSyns, ListenConfig, Pool, PoolStack, Storage, SynHold,
};

#[path = "support/embedded.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "each bench uses part of the shared support"
)]
mod support;

use support::{Pairs, measured, pattern, print_ratio_against, record};

const PORT: u16 = 7;
/// Slots of the pool, tasks of the hand-written server.
const N: usize = 4;
/// The slots' buffers (each way), and each hand-written task's buffer.
const BUF: usize = 1024;
/// Every server socket's buffers, each way.
const SOCK_BUF: usize = 4096;
/// Every client socket's buffers, each way.
const CLIENT_BUF: usize = 16 * 1024;
/// The pool's socket budget: one per slot, as many as the hand-written
/// server's. At first all 4 listen (the backlog of `ListenConfig::new(4,
/// 4)` catches the transfer's 4 clients at once); while every slot is busy
/// none does, and SYNs are held (`HoldSyns`) until a connection's close is
/// over and its socket listens again. Every socket of the budget is in
/// embassy-net's socket set and costs each packet and each poll of the
/// stack a look: a spare one would cost the pool throughput that the
/// hand-written server does not pay.
const POOL_SOCKETS: usize = N;
const TRANSFER_CLIENTS: usize = 4;
/// Bytes each client of the transfer sends and reads back.
const LEN: usize = 256 * 1024;
const BURST_CLIENTS: usize = 16;
const BURST_LEN: usize = 64;
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER_SEED: u64 = 0x5e5e;
const CLIENT_SEED: u64 = 0xc1c1;
/// Pairs of the interleaved run behind each ratio line (a pair of
/// transfers takes under 2 ms: enough of them for a steady median).
const PAIRS: usize = 100;
/// Simulated time after which a run counts as stuck.
const LIMIT_MS: u64 = 600_000;

// ---------------------------------------------------------------- executor

/// A waker that records being woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A future polled when its waker was woken.
struct Task<'a> {
    fut: Pin<Box<dyn Future<Output = ()> + 'a>>,
    flag: Arc<Flag>,
    waker: Waker,
    done: bool,
}

impl<'a> Task<'a> {
    fn new(fut: impl Future<Output = ()> + 'a) -> Task<'a> {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        Task {
            fut: Box::pin(fut),
            waker: Waker::from(flag.clone()),
            flag,
            done: false,
        }
    }
}

/// Polls every woken task until none is, then moves the mock clock 1 ms;
/// until `done`. Returns the simulated milliseconds it took and the
/// wall-clock time spent polling tasks: the milliseconds in which no task
/// was woken (waiting for a timer) cost the servers nothing and are not
/// counted.
fn run_tasks(tasks: &mut [Task<'_>], done: impl Fn() -> bool) -> (u64, Duration) {
    let start = embassy_time::Instant::now();
    let mut busy = Duration::ZERO;
    loop {
        let round = WallClock::now();
        let mut polled = false;
        let mut any = true;
        while any {
            any = false;
            for t in tasks.iter_mut() {
                if !t.done && t.flag.0.swap(false, Ordering::Relaxed) {
                    let mut cx = Context::from_waker(&t.waker);
                    t.done = t.fut.as_mut().poll(&mut cx).is_ready();
                    any = true;
                }
            }
            polled |= any;
        }
        if polled {
            busy += round.elapsed();
        }
        let ms = start.elapsed().as_millis();
        if done() {
            return (ms, busy);
        }
        assert!(ms < LIMIT_MS, "run stuck after {ms} ms of simulated time");
        MockDriver::get().advance(embassy_time::Duration::from_millis(1));
    }
}

fn net_config(ip: Ipv4Addr) -> embassy_net::Config {
    embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ip, 24),
        gateway: None,
        dns_servers: Default::default(),
    })
}

// ----------------------------------------------------------------- servers

/// The async echo of the pool.
struct AsyncEcho;

impl AsyncHandler for AsyncEcho {
    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        let mut buf = [0u8; BUF];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            conn.write_all(&buf[..n]).await?;
        }
    }
}

type PoolServer<'h, 'p, 'd> =
    AsyncServer<'h, PoolStack<'p, 'd, POOL_SOCKETS>, AsyncEcho, N, BUF, BUF>;

/// One task of the hand-written server: accept on its own socket, echo
/// through a 1 KiB buffer until the peer finishes, close, accept again.
async fn raw_task(stack: embassy_net::Stack<'_>, rx: &mut [u8], tx: &mut [u8]) {
    let mut socket = TcpSocket::new(stack, rx, tx);
    let mut buf = [0u8; BUF];
    loop {
        if socket.accept(PORT).await.is_err() {
            socket.abort();
            let _ = socket.flush().await;
            continue;
        }
        socket.set_nagle_enabled(false); // as the pool's default
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        socket.close();
        let _ = socket.flush().await;
        // Ready for the next accept even if the close did not complete.
        socket.abort();
        let _ = socket.flush().await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Pool,
    Raw,
}

/// The first retransmission timeout of a SYN (smoltcp's, as RFC 6298's
/// initial RTO): doubled after each retry, up to [`SYN_RTO_MAX_MS`].
const SYN_RTO_MS: u64 = 1_000;
const SYN_RTO_MAX_MS: u64 = 60_000;

/// One client: connects, sends `data` while reading the echo back and
/// checking every byte, closes.
///
/// A refused connect (reset) is retried after the delay the SYN's own
/// retransmission would have waited at that point (1 s, 2 s, 4 s...): the
/// same schedule as a client whose SYN the server holds, so that both
/// servers are judged by when they serve a client, not by how they make it
/// wait.
async fn client(
    stack: embassy_net::Stack<'_>,
    rx: &mut [u8],
    tx: &mut [u8],
    data: &[u8],
    refused: &Cell<u32>,
    done: &Cell<usize>,
) {
    let mut socket = TcpSocket::new(stack, rx, tx);
    socket.set_nagle_enabled(false);
    let mut rto = SYN_RTO_MS;
    while socket.connect((SERVER_IP, PORT)).await.is_err() {
        refused.set(refused.get() + 1);
        socket.abort();
        Timer::after_millis(rto).await;
        rto = (rto * 2).min(SYN_RTO_MAX_MS);
    }
    {
        let (mut r, mut w) = socket.split();
        let write = async { w.write_all(data).await.expect("client write") };
        let read = async {
            let mut buf = [0u8; 2048];
            let mut got = 0;
            while got < data.len() {
                let n = r.read(&mut buf).await.expect("client read");
                assert!(n > 0, "end of stream after {got} of {} bytes", data.len());
                assert!(buf[..n] == data[got..got + n], "echo differs at {got}");
                got += n;
            }
        };
        join(write, read).await;
    }
    socket.close();
    let _ = socket.flush().await;
    done.set(done.get() + 1);
}

/// What one run took.
struct Outcome {
    /// Wall-clock time spent polling tasks (see [`run_tasks`]).
    wall: Duration,
    simulated_ms: u64,
    refused: u32,
}

/// Serves `datas` (one client each, all at once) with `side`; times the
/// run from the first poll until every client has its echo.
fn run(side: Side, datas: &[Vec<u8>]) -> Outcome {
    MockDriver::get().reset();
    let wire = Wire::new();
    let hold = SynHold::new();
    let mut server_resources = Box::new(StackResources::<{ POOL_SOCKETS + 2 }>::new());
    let (server_stack, mut server_runner) = embassy_net::new(
        HoldSyns::new(wire.end(0), &hold),
        net_config(SERVER_IP),
        &mut server_resources,
        SERVER_SEED,
    );
    let mut client_resources = Box::new(StackResources::<{ BURST_CLIENTS + 2 }>::new());
    let (client_stack, mut client_runner) = embassy_net::new(
        wire.end(1),
        net_config(CLIENT_IP),
        &mut client_resources,
        CLIENT_SEED,
    );
    let refused = Cell::new(0);
    let done = Cell::new(0);
    let mut client_buffers: Vec<(Vec<u8>, Vec<u8>)> = datas
        .iter()
        .map(|_| (vec![0; CLIENT_BUF], vec![0; CLIENT_BUF]))
        .collect();
    // The server side, on the server stack.
    let mut storage = Box::new(Storage::<POOL_SOCKETS, SOCK_BUF, SOCK_BUF>::new());
    let handler = AsyncEcho;
    let pool = (side == Side::Pool).then(|| {
        let config = PoolConfig {
            listen: ListenConfig::new(N as u8, N as u8),
            ..PoolConfig::new()
        };
        Pool::new(server_stack, &mut storage, &hold, config)
    });
    let mut nal = pool.as_ref().map(|p| p.stack());
    let mut server: Option<Box<PoolServer<'_, '_, '_>>> = nal.as_mut().map(|nal| {
        let mut server = Box::new(Server::new(Adapter::new(&handler), Config::new()));
        server.listen(nal, PORT).expect("listen");
        server
    });
    let mut clock = EmbassyClock;
    let mut raw_buffers: Vec<(Vec<u8>, Vec<u8>)> = (0..N)
        .map(|_| (vec![0; SOCK_BUF], vec![0; SOCK_BUF]))
        .collect();

    let mut tasks: Vec<Task<'_>> = Vec::new();
    tasks.push(Task::new(async move {
        server_runner.run().await;
    }));
    tasks.push(Task::new(async move {
        client_runner.run().await;
    }));
    for (data, (rx, tx)) in datas.iter().zip(client_buffers.iter_mut()) {
        tasks.push(Task::new(client(
            client_stack,
            rx,
            tx,
            data,
            &refused,
            &done,
        )));
    }
    match (server.as_mut(), nal.as_mut()) {
        (Some(server), Some(nal)) => tasks.push(Task::new(async {
            async_handler::serve(
                server,
                nal,
                &handler,
                &mut clock,
                core::future::pending::<()>(),
            )
            .await;
        })),
        _ => {
            for (rx, tx) in raw_buffers.iter_mut() {
                tasks.push(Task::new(raw_task(server_stack, rx, tx)));
            }
        }
    }
    let (simulated_ms, wall) = run_tasks(&mut tasks, || done.get() == datas.len());
    drop(tasks);
    Outcome {
        wall,
        simulated_ms,
        refused: refused.get(),
    }
}

// ------------------------------------------------------------------ memory

/// Prints the memory of both servers beyond the network
/// stack: the pool's state and its future, against the tasks' futures.
fn print_memory() {
    let handler = AsyncEcho;
    let wire = Wire::new();
    let hold = SynHold::new();
    let mut resources = Box::new(StackResources::<{ POOL_SOCKETS + 2 }>::new());
    let (stack, _runner) = embassy_net::new(
        HoldSyns::new(wire.end(0), &hold),
        net_config(SERVER_IP),
        &mut resources,
        SERVER_SEED,
    );
    let mut storage = Box::new(Storage::<POOL_SOCKETS, SOCK_BUF, SOCK_BUF>::new());
    let pool = Pool::new(stack, &mut storage, &hold, PoolConfig::new());
    let mut nal = pool.stack();
    let mut server: PoolServer<'_, '_, '_> = Server::new(Adapter::new(&handler), Config::new());
    let server_bytes = size_of_val(&server);
    let pool_bytes = size_of_val(&pool);
    let mut clock = EmbassyClock;
    let serve = async_handler::serve(
        &mut server,
        &mut nal,
        &handler,
        &mut clock,
        core::future::pending::<()>(),
    );
    let serve_bytes = size_of_val(&serve);
    drop(serve);
    let (mut rx, mut tx) = (vec![0u8; SOCK_BUF], vec![0u8; SOCK_BUF]);
    let task_bytes = size_of_val(&raw_task(stack, &mut rx, &mut tx));
    let socket_buffers = 2 * SOCK_BUF;
    println!(
        "memory embassy N={N} buffers={BUF}: tcpool server {server_bytes} + serve future {serve_bytes} \
         + socket pool {pool_bytes} = {} bytes, {POOL_SOCKETS} sockets x {socket_buffers} bytes of \
         socket buffers; hand-written {N} task futures x {task_bytes} = {} bytes, {N} sockets x \
         {socket_buffers} bytes of socket buffers",
        server_bytes + serve_bytes + pool_bytes,
        N * task_bytes
    );
}

// ------------------------------------------------------------------ groups

fn transfer_data() -> Vec<Vec<u8>> {
    (0..TRANSFER_CLIENTS)
        .map(|i| pattern(LEN, 100 + i as u64))
        .collect()
}

fn burst_data() -> Vec<Vec<u8>> {
    (0..BURST_CLIENTS)
        .map(|i| pattern(BURST_LEN, 200 + i as u64))
        .collect()
}

fn timed(side: Side, iters: u64, datas: &[Vec<u8>]) -> Duration {
    (0..iters).map(|_| black_box(run(side, datas)).wall).sum()
}

fn bench_group(c: &mut Criterion, name: &str, datas: &[Vec<u8>], throughput: Throughput) {
    let mut group = c.benchmark_group(name);
    group.throughput(throughput);
    for (id, side) in [("tcpool_pool", Side::Pool), ("hand_written", Side::Raw)] {
        let full = format!("{name}/{id}");
        group.bench_function(id, |b| {
            b.iter_custom(|iters| record(&full, iters, timed(side, iters, datas)))
        });
    }
    group.finish();
}

fn embassy_transfer(c: &mut Criterion) {
    let datas = transfer_data();
    let bytes = (TRANSFER_CLIENTS * LEN) as u64;
    bench_group(c, "embassy_transfer", &datas, Throughput::Bytes(bytes));
}

fn embassy_burst(c: &mut Criterion) {
    let datas = burst_data();
    let n = BURST_CLIENTS as u64;
    bench_group(c, "embassy_burst", &datas, Throughput::Elements(n));
}

/// Both sides once, untimed by criterion: simulated time and refusals;
/// for the burst, the ratio of clients served per simulated second (the
/// rate a user of either server sees; deterministic).
fn print_simulated() {
    for (name, datas) in [
        ("embassy_transfer", transfer_data()),
        ("embassy_burst", burst_data()),
    ] {
        let pool = run(Side::Pool, &datas);
        let raw = run(Side::Raw, &datas);
        println!(
            "{name}: {} clients; simulated time tcpool_pool {} ms, hand_written {} ms; \
             refused connects tcpool_pool {}, hand_written {}",
            datas.len(),
            pool.simulated_ms,
            raw.simulated_ms,
            pool.refused,
            raw.refused
        );
        if name == "embassy_burst" {
            println!(
                "ratio {name} clients per simulated second tcpool_pool/hand_written = {:.3}  \
                 (all {} clients served after {} ms / {} ms of simulated time; \
                 deterministic; target >= 1.0)",
                raw.simulated_ms.max(1) as f64 / pool.simulated_ms.max(1) as f64,
                datas.len(),
                pool.simulated_ms,
                raw.simulated_ms,
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
        config = support::criterion(Duration::from_secs(2), Duration::from_secs(8));
        targets = embassy_transfer, embassy_burst
    }
}

fn main() {
    // One simulation, once, for a profiler: `TCPOOL_EMBASSY_ONE=group/side`
    // (e.g. `embassy_transfer/tcpool_pool`), nothing else runs.
    if let Ok(one) = std::env::var("TCPOOL_EMBASSY_ONE") {
        let (name, side) = one.split_once('/').expect("group/side");
        let datas = match name {
            "embassy_transfer" => transfer_data(),
            "embassy_burst" => burst_data(),
            _ => panic!("no group {name}"),
        };
        let side = match side {
            "tcpool_pool" => Side::Pool,
            "hand_written" => Side::Raw,
            _ => panic!("no side {side}"),
        };
        let out = run(side, &datas);
        println!(
            "{one}: simulated {} ms, refused {}, wall {:?}",
            out.simulated_ms, out.refused, out.wall
        );
        return;
    }
    print_memory();
    print_simulated();
    group::benches();
    Criterion::default().configure_from_args().final_summary();
    for (name, datas) in [
        ("embassy_transfer", transfer_data()),
        ("embassy_burst", burst_data()),
    ] {
        let (pool, peer) = (
            format!("{name}/tcpool_pool"),
            format!("{name}/hand_written"),
        );
        let pairs = (measured(&pool).is_some() && measured(&peer).is_some()).then(|| {
            Pairs::run(
                PAIRS,
                || timed(Side::Pool, 1, &datas),
                || timed(Side::Raw, 1, &datas),
            )
        });
        let target = if name == "embassy_burst" {
            "CPU per client served; the target >= 1.0 is on the simulated rate above"
        } else {
            "target >= 0.95"
        };
        print_ratio_against(name, "tcpool_pool", "hand_written", pairs.as_ref(), target);
    }
}
