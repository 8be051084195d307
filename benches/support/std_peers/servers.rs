//! The three echo servers compared by the `std_peers` benchmark, each
//! running in its own thread of the bench process on `127.0.0.1`, on a port
//! the system picks:
//!
//! * [`Peer::TcpoolStd`]: a tcpool [`Server`] over [`StdStack`], driven by
//!   the real event loop (`poll`, then [`StdStack::wait`] until a socket is
//!   ready or the server's next deadline), so an idle server sleeps;
//! * [`Peer::TokioCurrentThread`]: a tokio current-thread runtime, one
//!   spawned task per connection that reads into a buffer and writes it
//!   back with `write_all`;
//! * [`Peer::Threads`]: blocking std sockets, one thread per connection
//!   doing the same.
//!
//! All three use a [`CONN_BUF`]-byte buffer per connection (tcpool: a
//! receive and a transmit buffer of that size each), set `TCP_NODELAY` on
//! accepted connections, and listen with a backlog of [`BACKLOG`]. Every
//! server thread is pinned to one CPU (see [`affinity`]).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::affinity;
use super::report::Contender;
use tcpool::host::{Config as StackConfig, StdClock, StdStack};
use tcpool::storage::{Inline, Storage};
use tcpool::{Config, Server};
use tcpool_conformance::Echo;

/// Bytes of buffer per connection, the same for every peer: tcpool's slots
/// have a receive and a transmit buffer of this size, the others read into
/// one buffer of this size and write it back.
pub const CONN_BUF: usize = 16 * 1024;

/// Connection slots of the tcpool server (more than any group opens at once).
pub const SLOTS: usize = 32;

/// Bytes the tcpool server reads from one connection per poll: four
/// receive buffers, so a busy connection goes round (read, echo, send) up to
/// four times before the server waits again. The default (one buffer) costs
/// a trip through `poll(2)` per 16 KiB; tokio reads until the socket is
/// empty (within its cooperative budget), the threads read until it blocks.
pub const TCPOOL_READ_BUDGET: usize = 4 * CONN_BUF;

/// The listen backlog of every peer (tcpool-std's default).
pub const BACKLOG: i32 = 128;

/// Stack size of the tcpool server thread: the server's slots live on it
/// (`SLOTS * 2 * CONN_BUF` bytes of buffers plus state).
const TCPOOL_THREAD_STACK: usize = 4 * SLOTS * CONN_BUF + (1 << 20);

/// One of the compared echo servers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// tcpool's `Server` over the std backend, one thread, poll(2) waiting.
    TcpoolStd,
    /// A tokio current-thread runtime, a task per connection.
    TokioCurrentThread,
    /// Blocking std sockets, a thread per connection.
    Threads,
}

impl Peer {
    /// Every peer, tcpool first (ratios are tcpool over the others).
    pub const ALL: [Peer; 3] = [Peer::TcpoolStd, Peer::TokioCurrentThread, Peer::Threads];

    /// The benchmark function name of this peer.
    pub fn name(self) -> &'static str {
        match self {
            Peer::TcpoolStd => "tcpool_std",
            Peer::TokioCurrentThread => "tokio_current_thread",
            Peer::Threads => "threads",
        }
    }

    /// The pairs the ratio summary compares: tcpool over each other peer.
    pub const PAIRS: [(Peer, Peer); 2] = [
        (Peer::TcpoolStd, Peer::TokioCurrentThread),
        (Peer::TcpoolStd, Peer::Threads),
    ];
}

impl Contender for Peer {
    fn name(self) -> &'static str {
        Peer::name(self)
    }

    /// The start of the names of this peer's server threads as the system
    /// shows them (`/proc/self/task/*/comm`, at most 15 bytes). Not for the
    /// threads peer: the time of connection threads that have ended is no
    /// longer listed.
    fn cpu_threads(self) -> Option<&'static str> {
        match self {
            Peer::TcpoolStd => Some("tcpool_std"),
            Peer::TokioCurrentThread => Some("tokio_current_t"),
            Peer::Threads => None,
        }
    }

    /// Starts this peer's echo server; it serves until
    /// [`EchoServer::stop`] (or drop).
    fn start(self) -> EchoServer {
        match self {
            Peer::TcpoolStd => start_tcpool(),
            Peer::TokioCurrentThread => start_tokio(CONN_BUF),
            Peer::Threads => start_threads(),
        }
    }
}

/// A running echo server: its address, and how to stop it.
pub struct EchoServer {
    addr: SocketAddr,
    stopper: Option<Box<dyn FnOnce() + Send>>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for all its threads to end.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stopper) = self.stopper.take() {
            stopper();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("echo server thread panicked");
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop_now();
        }
    }
}

/// Wakes a server sleeping in accept or poll(2) by connecting to it (and
/// closing again at once).
fn wake(addr: SocketAddr) {
    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
}

/// A listener on `127.0.0.1`, port chosen by the system, with the options
/// every peer uses (`SO_REUSEADDR`, backlog [`BACKLOG`]).
fn loopback_listener() -> io::Result<TcpListener> {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

// ---------------------------------------------------------------- tcpool

fn start_tcpool() -> EchoServer {
    let config = Config::new().with_read_budget(TCPOOL_READ_BUDGET);
    start_tcpool_server::<SLOTS, CONN_BUF, Inline>("tcpool_std", config, TCPOOL_THREAD_STACK)
}

/// Starts a tcpool echo server (`N` slots of `BUF`-byte buffers in storage
/// `M`, with `config`) on a thread named `name` with a `stack`-byte stack.
pub fn start_tcpool_server<const N: usize, const BUF: usize, M>(
    name: &'static str,
    config: Config,
    stack: usize,
) -> EchoServer
where
    M: Storage + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(name.into())
        .stack_size(stack)
        .spawn(move || {
            affinity::server_thread();
            let mut stack = StdStack::new(StackConfig::default());
            let clock = StdClock::new();
            let mut server: Server<StdStack, Echo, N, BUF, BUF, M> = Server::new_in(Echo, config);
            server
                .listen(&mut stack, 0)
                .expect("tcpool server: listen on 127.0.0.1");
            let addr = server
                .listener()
                .and_then(|l| stack.local_addr(l).ok())
                .expect("tcpool server: bound address");
            ready_tx.send(addr).expect("bench waits for the address");
            // The loop of the README: an idle server sleeps with no
            // deadline. To stop it, the bench sets the flag and connects:
            // the pool never fills here (more slots than clients), so the
            // listener is always watched and the connect wakes it.
            while !flag.load(Ordering::Relaxed) {
                server.poll(&mut stack, clock.now());
                stack
                    .wait(server.interests(), server.poll_at(), &clock)
                    .expect("tcpool server: wait");
            }
            server.shutdown(&mut stack, clock.now());
        })
        .expect("spawn the tcpool server thread");
    let addr = ready_rx.recv().expect("tcpool server started");
    EchoServer {
        addr,
        stopper: Some(Box::new(move || {
            stop.store(true, Ordering::Relaxed);
            wake(addr);
        })),
        thread: Some(thread),
    }
}

// ----------------------------------------------------------------- tokio

/// The tokio peer, with a `buf`-byte buffer per connection.
pub fn start_tokio(buf: usize) -> EchoServer {
    let listener = loopback_listener().expect("tokio server: listen on 127.0.0.1");
    let addr = listener.local_addr().expect("tokio server: bound address");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("tokio_current_thread".into())
        .spawn(move || {
            affinity::server_thread();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                listener
                    .set_nonblocking(true)
                    .expect("tokio server: non-blocking listener");
                let listener = tokio::net::TcpListener::from_std(listener)
                    .expect("tokio server: register the listener");
                tokio::select! {
                    _ = stop_rx => {}
                    _ = tokio_accept_loop(listener, buf) => {}
                }
            });
            // Dropping the runtime cancels the connection tasks and closes
            // their sockets.
            drop(runtime);
        })
        .expect("spawn the tokio server thread");
    EchoServer {
        addr,
        stopper: Some(Box::new(move || {
            let _ = stop_tx.send(());
        })),
        thread: Some(thread),
    }
}

/// Accepts for ever, one echo task per connection.
async fn tokio_accept_loop(listener: tokio::net::TcpListener, buf: usize) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(tokio_echo(stream, buf));
            }
            // A client that gave up before it was accepted, or out of file
            // descriptors: try again.
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

/// Echoes one connection until the peer closes it or an error.
async fn tokio_echo(mut stream: tokio::net::TcpStream, buf: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; buf];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

// --------------------------------------------------------------- threads

/// One connection of the thread-per-connection server: a handle to shut it
/// down at stop, and its thread.
struct ConnThread {
    stream: TcpStream,
    thread: JoinHandle<()>,
}

fn start_threads() -> EchoServer {
    let listener = loopback_listener().expect("threads server: listen on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("threads server: bound address");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("threads_accept".into())
        .spawn(move || {
            // Connection threads inherit the pinning.
            affinity::server_thread();
            let mut conns: Vec<ConnThread> = Vec::new();
            loop {
                let accepted = listener.accept();
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                conns.retain(|c| !c.thread.is_finished());
                let spawned = std::thread::Builder::new()
                    .name("threads_conn".into())
                    .spawn(move || blocking_echo(stream));
                if let Ok(thread) = spawned {
                    conns.push(ConnThread {
                        stream: handle,
                        thread,
                    });
                }
            }
            // Clients should be gone by now; shut down any that are not, so
            // that every connection thread ends.
            for c in conns {
                let _ = c.stream.shutdown(Shutdown::Both);
                let _ = c.thread.join();
            }
        })
        .expect("spawn the threads server's accept thread");
    EchoServer {
        addr,
        stopper: Some(Box::new(move || {
            stop.store(true, Ordering::Relaxed);
            // Wake the blocking accept; it sees the flag and returns.
            wake(addr);
        })),
        thread: Some(thread),
    }
}

/// Echoes one connection until the peer closes it or an error.
fn blocking_echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; CONN_BUF];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
