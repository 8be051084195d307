//! tcpool's async driver (`tcpool_core::asynch::run`) serving over
//! embassy-net in memory, polled like tasks of one executor: a task is
//! polled only when its waker was woken, and the mock clock jumps ahead
//! only when no task is ready.

mod support;

use std::cell::Cell;
use std::future::{Future, pending};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect;
use support::{SERVER_IP, Task};
use tcpool_conformance::Echo;
use tcpool_core::AsyncBackend;
use tcpool_core::async_handler::{self, Adapter, AsyncConn, AsyncHandler, AsyncServer};
use tcpool_core::asynch::{self, Clock};
use tcpool_core::{CloseReason, Config as ServerConfig, Instant, Server, WhenFull};
use tcpool_embassy::embassy_net::tcp::TcpSocket;
use tcpool_embassy::sim::Wire;
use tcpool_embassy::{Config, EmbassyClock, ListenConfig, Pool, PoolStack};

const PORT: u16 = 7;
const SERVER_SOCKETS: usize = 8;
const CLIENT_SOCKETS: usize = 16;

type Stack = PoolStack<'static, 'static, SERVER_SOCKETS>;
type Srv = Server<Stack, Echo, 4, 512, 512>;

struct Net {
    server_pool: &'static Pool<'static, SERVER_SOCKETS>,
    client_pool: &'static Pool<'static, CLIENT_SOCKETS>,
    tasks: Vec<Task<'static>>,
}

fn net(listen: ListenConfig) -> Net {
    let wire = Wire::new();
    let (server_pool, server_runner) = server_pool::<SERVER_SOCKETS>(&wire, listen);
    let (cstack, client_runner, chold) = support::client_stack::<CLIENT_SOCKETS>(&wire, 2);
    let client_pool = support::leak_pool::<CLIENT_SOCKETS>(
        cstack,
        chold,
        (4096, 4096),
        Config {
            handshake_timeout: Duration::from_secs(120),
            ..Config::new()
        },
    );
    Net {
        server_pool,
        client_pool,
        tasks: vec![server_runner, client_runner],
    }
}

/// The server's pool of `N` sockets (4 KiB buffers each way) listening
/// with `listen`, on the wire's server end, and its stack's runner.
fn server_pool<const N: usize>(
    wire: &Wire,
    listen: ListenConfig,
) -> (&'static Pool<'static, N>, Task<'static>) {
    let (stack, runner, hold) = support::server_stack::<N>(wire, 1);
    let config = Config {
        listen,
        ..Config::new()
    };
    (
        support::leak_pool::<N>(stack, hold, (4096, 4096), config),
        runner,
    )
}

/// Runs every woken task until none is, then moves the clock 1 ms; until
/// `done` or `limit_ms` of simulated time. Every woken task has its turn
/// before any is polled again (as in embassy's executor, whose run queue is
/// in the order of the wake-ups): clients started together really act at
/// once.
fn run_until(tasks: &mut [Task<'_>], limit_ms: u64, mut done: impl FnMut() -> bool) {
    let end = support::now_ms() + limit_ms;
    while !done() {
        assert!(support::now_ms() < end, "not done after {limit_ms} ms");
        let mut spins = 0;
        loop {
            let mut any = false;
            for t in tasks.iter_mut() {
                any |= t.poll_if_woken();
            }
            if !any {
                break;
            }
            spins += 1;
            assert!(spins < 100_000, "tasks keep waking each other");
        }
        if done() {
            break;
        }
        support::advance_ms(1);
    }
}

/// The server task: the async driver until `stop` is set, then a shutdown.
fn server_task(
    pool: &'static Pool<'static, SERVER_SOCKETS>,
    stop: Rc<Cell<bool>>,
    config: ServerConfig,
) -> Task<'static> {
    let task = Task::new(async move {
        let mut stack = pool.stack();
        let mut server: Srv = Server::new(Echo, config);
        server.listen(&mut stack, PORT).expect("listen");
        let mut clock = EmbassyClock;
        let stopped = core::future::poll_fn(|_| {
            if stop.get() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        asynch::run(&mut server, &mut stack, &mut clock, stopped).await;
        server.shutdown(&mut stack, clock.now());
    });
    task.flag.set();
    task
}

/// A client task: connects from the client pool (TcpConnect), sends
/// `msg`, reads the echo, and records it.
fn client_task(
    pool: &'static Pool<'static, CLIENT_SOCKETS>,
    msg: Vec<u8>,
    got: Rc<Cell<Option<Vec<u8>>>>,
) -> Task<'static> {
    client_task_holding(pool, msg, got, false)
}

/// The same; with `hold_open`, the connection then stays open and idle.
fn client_task_holding(
    pool: &'static Pool<'static, CLIENT_SOCKETS>,
    msg: Vec<u8>,
    got: Rc<Cell<Option<Vec<u8>>>>,
    hold_open: bool,
) -> Task<'static> {
    let task = Task::new(async move {
        let addr = SocketAddr::from((SERVER_IP, PORT));
        let mut conn = pool.connect(addr).await.expect("connect");
        conn.write_all(&msg).await.expect("write");
        let mut buf = vec![0u8; msg.len()];
        conn.read_exact(&mut buf).await.expect("read the echo");
        got.set(Some(buf));
        if hold_open {
            core::future::pending::<()>().await;
        }
        drop(conn);
    });
    task.flag.set();
    task
}

#[test]
fn the_async_driver_echoes_and_stops() {
    let _clock = support::lock_clock();
    let mut n = net(ListenConfig::new(2, 4));
    let stop = Rc::new(Cell::new(false));
    n.tasks.push(server_task(
        n.server_pool,
        stop.clone(),
        ServerConfig::new(),
    ));
    let got = Rc::new(Cell::new(None));
    n.tasks.push(client_task(
        n.client_pool,
        b"hello, embassy".to_vec(),
        got.clone(),
    ));
    let g = got.clone();
    run_until(&mut n.tasks, 5_000, || is_set(&g));
    assert_eq!(got.take().as_deref(), Some(&b"hello, embassy"[..]));
    stop.set(true);
    n.tasks[2].flag.set();
    for _ in 0..10 {
        n.tasks.iter_mut().for_each(|t| {
            t.poll_if_woken();
        });
    }
    assert!(n.tasks[2].done, "the server task ended after stop");
    // The shutdown closed the listener: its sockets went back.
    assert_eq!(n.server_pool.stats().listening, 0);
}

#[test]
fn an_idle_server_is_not_polled_while_nothing_happens() {
    let _clock = support::lock_clock();
    let mut n = net(ListenConfig::new(2, 4));
    let stop = Rc::new(Cell::new(false));
    let config = ServerConfig::new().with_idle_timeout(None);
    n.tasks.push(server_task(n.server_pool, stop, config));
    // One connection, kept open, then silence for an hour of simulated
    // time (keepalive probes go back and forth between the stacks).
    let got = Rc::new(Cell::new(None));
    n.tasks.push(client_task_holding(
        n.client_pool,
        b"x".to_vec(),
        got.clone(),
        true,
    ));
    run_until(&mut n.tasks, 5_000, || is_set(&got));
    let polls_before = n.tasks[2].polls;
    let hour = 3_600_000;
    let t0 = support::now_ms();
    run_until(&mut n.tasks, hour + 1, || support::now_ms() >= t0 + hour);
    let polls = n.tasks[2].polls - polls_before;
    eprintln!("idle polls: {polls}");
    // The runner wakes for every keepalive; the server task is woken by
    // none of them (no data, no state change): at most a few stray polls.
    assert!(
        polls <= 5,
        "the idle server task was polled {polls} times in an hour of simulated time"
    );
    assert!(
        n.tasks[0].polls > 100,
        "the runner did run the keepalives ({} polls)",
        n.tasks[0].polls
    );
    assert_eq!(n.server_pool.stats().open, 1, "{:?}", n.server_pool.stats());
}

#[test]
fn a_burst_larger_than_the_backlog_is_served_without_reset_or_eviction() {
    let _clock = support::lock_clock();
    // 2 listening sockets, 4 slots, 6 clients at once; the pool defers.
    let mut n = net(ListenConfig::new(2, 4));
    let stop = Rc::new(Cell::new(false));
    let config = ServerConfig::new().with_when_full(WhenFull::Defer);
    n.tasks.push(server_task(n.server_pool, stop, config));
    let mut results = Vec::new();
    for i in 0..6u8 {
        let got = Rc::new(Cell::new(None));
        n.tasks
            .push(client_task(n.client_pool, vec![b'a' + i; 100], got.clone()));
        results.push(got);
    }
    let r = results.clone();
    run_until(&mut n.tasks, 60_000, || all_received(&r));
    for (i, g) in results.iter().enumerate() {
        assert_eq!(g.take(), Some(vec![b'a' + i as u8; 100]), "client {i}");
    }
    let counters = n.server_pool.counters();
    eprintln!("burst counters: {counters:?}");
    assert_eq!(counters.accepted, 6);
    assert_eq!(counters.failed_handshakes, 0);
}

#[test]
fn outgoing_connections_share_the_budget_and_a_full_budget_is_not_a_reset() {
    let _clock = support::lock_clock();
    let mut n = net(ListenConfig::new(1, 1));
    let stop = Rc::new(Cell::new(false));
    n.tasks
        .push(server_task(n.server_pool, stop, ServerConfig::new()));
    run_until(&mut n.tasks, 100, || n.server_pool.stats().listening == 1);
    // The server pool's own outgoing connection (to the client stack, where
    // nobody listens: refused) draws from the same budget while it tries.
    let pool = n.server_pool;
    let before = pool.stats();
    assert_eq!(before.listening + before.free, SERVER_SOCKETS);
    let outcome = Rc::new(Cell::new(None));
    let o = outcome.clone();
    let task = Task::new(async move {
        let addr = SocketAddr::from((support::CLIENT_IP, 9));
        let r = pool.connect(addr).await.map(|_| ());
        o.set(Some(r));
    });
    task.flag.set();
    n.tasks.push(task);
    // Polled once: the attempt holds a socket, counted as outgoing.
    n.tasks.last_mut().unwrap().poll();
    assert_eq!(pool.stats().outgoing, 1);
    run_until(&mut n.tasks, 5_000, || is_set(&outcome));
    assert_eq!(
        outcome.take(),
        Some(Err(tcpool_embassy::Error::ConnectionRefused))
    );
    run_until(&mut n.tasks, 100, || pool.stats().outgoing == 0);
    // Exhaust the budget with reserved sockets: connect fails at once with
    // OutOfSockets.
    let mut stack = pool.stack();
    let mut held = Vec::new();
    while let Ok(s) = embedded_nal::TcpClientStack::socket(&mut stack) {
        held.push(s);
    }
    let addr = SocketAddr::from((support::CLIENT_IP, 9));
    let r = embassy_futures::block_on(pool.connect(addr)).map(|_| ());
    assert_eq!(r, Err(tcpool_embassy::Error::OutOfSockets));
    let _ = Instant::ZERO;
}

#[test]
fn syns_finding_the_port_full_are_held_then_served() {
    let _clock = support::lock_clock();
    // One connection at a time, one socket listening, none queued beyond it:
    // most of the 5 clients' SYNs find no listener and must be held (not
    // refused) until their retransmission finds one.
    let mut n = net(ListenConfig::new(1, 1));
    let stop = Rc::new(Cell::new(false));
    let config = ServerConfig::new()
        .with_when_full(WhenFull::Defer)
        .with_max_connections(1);
    n.tasks.push(server_task(n.server_pool, stop, config));
    let mut results = Vec::new();
    for i in 0..5u8 {
        let got = Rc::new(Cell::new(None));
        let (pool, g) = (n.client_pool, got.clone());
        // Each client keeps its connection 2 s after its echo.
        let task = Task::new(async move {
            let addr = SocketAddr::from((SERVER_IP, PORT));
            let mut conn = pool.connect(addr).await.expect("connect");
            let msg = vec![b'k' + i; 50];
            conn.write_all(&msg).await.expect("write");
            let mut buf = vec![0u8; msg.len()];
            conn.read_exact(&mut buf).await.expect("read the echo");
            g.set(Some(buf));
            embassy_time::Timer::after_secs(2).await;
        });
        task.flag.set();
        n.tasks.push(task);
        results.push(got);
    }
    let r = results.clone();
    run_until(&mut n.tasks, 130_000, || all_received(&r));
    for (i, g) in results.iter().enumerate() {
        assert_eq!(g.take(), Some(vec![b'k' + i as u8; 50]), "client {i}");
    }
    let counters = n.server_pool.counters();
    assert!(counters.held_syns > 0, "{counters:?}");
    assert_eq!(counters.accepted, 5, "{counters:?}");
}

/// Answers any input with 500 bytes and closes.
struct ReplyAndClose;

impl tcpool_core::Handler for ReplyAndClose {
    type State = ();

    fn on_open(&mut self, _: &mut tcpool_core::Conn<'_>) {}

    fn on_data(&mut self, conn: &mut tcpool_core::Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        conn.write(&[b'r'; 500]);
        conn.close();
        data.len()
    }
}

#[test]
fn a_lingering_close_the_peer_never_lets_finish_is_reset_at_its_deadline() {
    let _clock = support::lock_clock();
    let wire = Wire::new();
    let (pool, server_runner) = server_pool::<SERVER_SOCKETS>(&wire, Config::new().listen);
    // The client's sockets have a 64-byte window.
    let (cstack, client_runner, chold) = support::client_stack::<CLIENT_SOCKETS>(&wire, 2);
    let client_pool = support::leak_pool::<CLIENT_SOCKETS>(cstack, chold, (64, 64), Config::new());
    let mut tasks = vec![server_runner, client_runner];
    let linger = pool
        .config()
        .lingering_close
        .expect("the default config lingers")
        .as_millis() as u64;
    let server = Task::new(async move {
        let mut stack = pool.stack();
        let mut server: Server<Stack, ReplyAndClose, 2, 512, 512> =
            Server::new(ReplyAndClose, ServerConfig::new().with_idle_timeout(None));
        server.listen(&mut stack, PORT).expect("listen");
        let mut clock = EmbassyClock;
        asynch::run(
            &mut server,
            &mut stack,
            &mut clock,
            core::future::pending::<()>(),
        )
        .await;
    });
    server.flag.set();
    tasks.push(server);
    // A client that sends a byte and never reads: the reply cannot all go
    // out, so the close cannot finish.
    let client = Task::new(async move {
        let addr = SocketAddr::from((SERVER_IP, PORT));
        let mut conn = client_pool.connect(addr).await.expect("connect");
        conn.write_all(b"?").await.expect("write");
        core::future::pending::<()>().await;
        drop(conn);
    });
    client.flag.set();
    tasks.push(client);
    let mut n = Net {
        server_pool: pool,
        client_pool,
        tasks,
    };
    run_until(&mut n.tasks, 5_000, || pool.stats().closing == 1);
    // A close in progress: the backend has work of its own.
    assert!(!AsyncBackend::quiet(&pool.stack()));
    let closed_at = support::now_ms();
    // Still lingering shortly before the deadline...
    run_until(&mut n.tasks, linger, || {
        support::now_ms() >= closed_at + linger - 100
    });
    assert_eq!(pool.stats().closing, 1, "{:?}", pool.stats());
    assert_eq!(pool.counters().lingering_resets, 0);
    // ...reset and reclaimed once it has passed.
    run_until(&mut n.tasks, 1_000, || pool.stats().closing == 0);
    assert_eq!(pool.counters().lingering_resets, 1, "{:?}", pool.counters());
}

/// The budget of a pool with no socket to spare.
const TIGHT: usize = 4;

type TightStack = PoolStack<'static, 'static, TIGHT>;

/// An async echo.
struct AsyncEcho;

impl AsyncHandler for AsyncEcho {
    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        let mut buf = [0u8; 256];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            conn.write_all(&buf[..n]).await?;
        }
    }
}

#[test]
fn a_budget_with_no_spare_socket_listens_again_after_its_connections_close() {
    tight_budget_burst(|pool| async move {
        let mut stack = pool.stack();
        let mut server: Server<TightStack, Echo, TIGHT, 512, 512> =
            Server::new(Echo, ServerConfig::new().with_when_full(WhenFull::Defer));
        server.listen(&mut stack, PORT).expect("listen");
        let mut clock = EmbassyClock;
        asynch::run(&mut server, &mut stack, &mut clock, pending::<()>()).await;
    });
}

#[test]
fn a_budget_with_no_spare_socket_listens_again_after_async_handlers_close() {
    tight_budget_burst(|pool| async move {
        let handler = AsyncEcho;
        let mut stack = pool.stack();
        let mut server: AsyncServer<'_, TightStack, AsyncEcho, TIGHT, 512, 512> = Server::new(
            Adapter::new(&handler),
            ServerConfig::new().with_when_full(WhenFull::Defer),
        );
        server.listen(&mut stack, PORT).expect("listen");
        let mut clock = EmbassyClock;
        async_handler::serve(
            &mut server,
            &mut stack,
            &handler,
            &mut clock,
            pending::<()>(),
        )
        .await;
    });
}

#[test]
fn the_backend_is_quiet_only_while_its_maintenance_has_nothing_to_do() {
    let _clock = support::lock_clock();
    let mut n = net(ListenConfig::new(2, 4));
    let pool = n.server_pool;
    let stop = Rc::new(Cell::new(false));
    n.tasks.push(server_task(pool, stop, ServerConfig::new()));
    run_until(&mut n.tasks, 100, || pool.stats().listening == 2);
    let quiet = || AsyncBackend::quiet(&pool.stack());
    // Listening sockets that have caught nothing.
    assert!(quiet(), "{:?}", pool.stats());
    // A client whose connection stays open until `close`.
    let echoed = Rc::new(Cell::new(false));
    let close = Rc::new(Cell::new(false));
    let client = {
        let (echoed, close, client_pool) = (echoed.clone(), close.clone(), n.client_pool);
        Task::new(async move {
            let addr = SocketAddr::from((SERVER_IP, PORT));
            let mut conn = client_pool.connect(addr).await.expect("connect");
            conn.write_all(b"hi").await.expect("write");
            let mut buf = [0u8; 2];
            conn.read_exact(&mut buf).await.expect("read the echo");
            echoed.set(true);
            while !close.get() {
                embassy_time::Timer::after_millis(1).await;
            }
            drop(conn);
        })
    };
    client.flag.set();
    // Its SYN caught while the server's task is not polled: a listening
    // socket has left LISTEN, and maintenance has work.
    let server = n.tasks.remove(2);
    n.tasks.push(client);
    run_until(&mut n.tasks, 100, || !quiet());
    // Accepted, served, and the backlog armed again.
    n.tasks.insert(2, server);
    run_until(&mut n.tasks, 1_000, || echoed.get());
    run_until(&mut n.tasks, 100, quiet);
    assert_eq!(pool.stats().open, 1, "{:?}", pool.stats());
    // Closed (in memory, the whole close fits in one step: a close still
    // in progress is not quiet, see the lingering-close test).
    close.set(true);
    run_until(&mut n.tasks, 5_000, || pool.stats().open == 0);
    assert!(quiet(), "{:?}", pool.stats());
}

/// 16 clients at once (embassy-net sockets) against a pool of 4 sockets
/// for 4 slots: while the slots are busy no socket listens and later SYNs
/// are held. Once the connections close, only those closes can wake the
/// server to reclaim their sockets and listen again (held SYNs wake
/// nobody). Before the backend's work followed the server's round, the
/// server slept forever with every socket closed and none listening.
fn tight_budget_burst<F: Future<Output = ()> + 'static>(
    server: impl FnOnce(&'static Pool<'static, TIGHT>) -> F,
) {
    let _clock = support::lock_clock();
    let wire = Wire::new();
    let (pool, server_runner) =
        server_pool::<TIGHT>(&wire, ListenConfig::new(TIGHT as u8, TIGHT as u8));
    let (cstack, client_runner, _) = support::client_stack::<CLIENT_SOCKETS>(&wire, 2);
    let mut tasks = vec![server_runner, client_runner];
    let server = Task::new(server(pool));
    server.flag.set();
    tasks.push(server);
    let mut results = Vec::new();
    for i in 0..CLIENT_SOCKETS as u8 {
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        // Each client sends, reads its echo and closes at once.
        let task = Task::new(async move {
            let [rx, tx] = support::leak_buffers::<2>(4096);
            let mut socket = TcpSocket::new(cstack, rx, tx);
            socket.connect((SERVER_IP, PORT)).await.expect("connect");
            let msg = vec![b'a' + i; 64];
            socket.write_all(&msg).await.expect("write");
            let mut buf = vec![0u8; msg.len()];
            socket.read_exact(&mut buf).await.expect("read the echo");
            g.set(Some(buf));
            socket.close();
            let _ = socket.flush().await;
        });
        task.flag.set();
        tasks.push(task);
        results.push(got);
    }
    // Not `pool.stats()` while waiting: it reclaims closed sockets itself.
    let r = results.clone();
    run_until(&mut tasks, 60_000, || all_received(&r));
    for (i, g) in results.iter().enumerate() {
        assert_eq!(g.take(), Some(vec![b'a' + i as u8; 64]), "client {i}");
    }
    let counters = pool.counters();
    assert_eq!(counters.accepted, CLIENT_SOCKETS as u32, "{counters:?}");
    assert!(counters.held_syns > 0, "{counters:?}");
}

/// Whether every client has its echo.
fn all_received(results: &[Rc<Cell<Option<Vec<u8>>>>]) -> bool {
    results.iter().all(|g| is_set(g))
}

/// Whether `cell` holds a value (left in place).
fn is_set<T>(cell: &Cell<Option<T>>) -> bool {
    let v = cell.take();
    let done = v.is_some();
    cell.set(v);
    done
}
