//! Load generation: blocking std client threads in the bench process,
//! spawned (and, where the work allows, connected) before measuring, so that
//! what is timed is the traffic and not the set-up.
//!
//! A [`Workers`] pool runs one job per thread. [`Workers::run`] sets a
//! shared count of iterations and starts every thread; each takes one
//! iteration at a time from the count until none are left, and `run`
//! returns the wall time until the last thread has finished: that is what
//! `iter_custom` reports. Taking iterations one at a time, rather than
//! giving each client an equal share, measures the server's aggregate
//! throughput: a client the server happens to serve less does not leave the
//! others idle at the end of a batch.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::affinity;

/// Bytes a client writes, and then reads back, per echo-throughput
/// iteration.
pub const CHUNK: usize = 64 * 1024;

/// Bytes of one request (and of its reply) in the round-trip group.
pub const SMALL_MESSAGE: usize = 64;

/// Bytes sent (and read back) on each connection of the connection-rate
/// group.
pub const CONNECT_MESSAGE: usize = 16;

/// A client gives up (and the bench fails) after this long without
/// progress, rather than hang on a stuck server.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Each connect of the connection-rate group is retried this many times
/// when the system has no local port free for it at once (loopback ports
/// in `TIME_WAIT`), with a short sleep between attempts.
const CONNECT_RETRIES: u32 = 50;

/// One iteration of a client's work.
pub type Job = Box<dyn FnMut() -> io::Result<()> + Send>;

/// One client thread: where its start signals go, and the thread.
struct Worker {
    start: Sender<()>,
    thread: JoinHandle<()>,
}

/// Client threads that share out iterations, on command.
pub struct Workers {
    workers: Vec<Worker>,
    left: Arc<AtomicU64>,
    done: Receiver<io::Result<()>>,
    /// Idle connections held open beside the working ones.
    held: Vec<TcpStream>,
}

/// Takes one iteration from `left`; false when none are left.
fn take_one(left: &AtomicU64) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

impl Workers {
    /// Spawns one thread per job.
    pub fn spawn(jobs: Vec<Job>) -> Workers {
        let (done_tx, done) = channel();
        let left = Arc::new(AtomicU64::new(0));
        let workers = jobs
            .into_iter()
            .enumerate()
            .map(|(i, mut job)| {
                let (start, starts) = channel::<()>();
                let done_tx = done_tx.clone();
                let left = Arc::clone(&left);
                let thread = std::thread::Builder::new()
                    .name(format!("client{i}"))
                    .spawn(move || {
                        affinity::client_thread();
                        // Ends when the pool is dropped (the channel closes).
                        for () in starts {
                            let mut result = Ok(());
                            while result.is_ok() && take_one(&left) {
                                result = job();
                            }
                            if done_tx.send(result).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawn a client thread");
                Worker { start, thread }
            })
            .collect();
        Workers {
            workers,
            left,
            done,
            held: Vec::new(),
        }
    }

    /// These workers, holding `idle` open (and silent) as long as they
    /// live.
    pub fn holding(mut self, idle: Vec<TcpStream>) -> Workers {
        self.held = idle;
        self
    }

    /// Runs `iters` iterations, shared out among the clients as they go;
    /// the wall time from the start until the last client finished.
    ///
    /// Panics if a client failed (the benchmark would be meaningless).
    pub fn run(&self, iters: u64) -> Duration {
        self.left.store(iters, Ordering::Relaxed);
        let start = Instant::now();
        for w in &self.workers {
            w.start.send(()).expect("client thread alive");
        }
        for _ in &self.workers {
            let result = self.done.recv().expect("client thread alive");
            if let Err(e) = result {
                panic!("a benchmark client failed: {e}");
            }
        }
        start.elapsed()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.held.clear();
        for w in self.workers.drain(..) {
            drop(w.start);
            let _ = w.thread.join();
        }
    }
}

/// A connected client socket with the options every client uses.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// `clients` connected clients; an iteration is one of them writing a
/// [`CHUNK`] and reading it back.
pub fn echo_chunks(addr: SocketAddr, clients: usize) -> io::Result<Workers> {
    echo_chunks_of(addr, clients, CHUNK)
}

/// `clients` connected clients; an iteration is one of them writing `size`
/// bytes (at least 128) and reading them back.
pub fn echo_chunks_of(addr: SocketAddr, clients: usize, size: usize) -> io::Result<Workers> {
    let size = size.max(128);
    let mut jobs: Vec<Job> = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut stream = connect(addr)?;
        let chunk: Vec<u8> = (0..size).map(|j| (i + j) as u8).collect();
        let mut back = vec![0u8; size];
        let mut checked = false;
        jobs.push(Box::new(move || {
            stream.write_all(&chunk)?;
            stream.read_exact(&mut back)?;
            // The whole echo once, then its ends (cheaply, every time).
            if !checked {
                checked = true;
                check_echo(&chunk, &back)
            } else {
                check_echo(&chunk[..64], &back[..64])?;
                check_echo(&chunk[size - 64..], &back[size - 64..])
            }
        }));
    }
    Ok(Workers::spawn(jobs))
}

/// `clients` connected clients; an iteration is one of them sending a
/// [`SMALL_MESSAGE`]-byte request and waiting for the echo (a round trip).
pub fn round_trips(addr: SocketAddr, clients: usize) -> io::Result<Workers> {
    let mut jobs: Vec<Job> = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut stream = connect(addr)?;
        let request = [i as u8; SMALL_MESSAGE];
        let mut reply = [0u8; SMALL_MESSAGE];
        jobs.push(Box::new(move || {
            stream.write_all(&request)?;
            stream.read_exact(&mut reply)?;
            check_echo(&request, &reply)
        }));
    }
    Ok(Workers::spawn(jobs))
}

/// `clients` client threads; an iteration is one of them connecting,
/// sending [`CONNECT_MESSAGE`] bytes, reading the echo and closing.
pub fn connections(addr: SocketAddr, clients: usize) -> Workers {
    let jobs: Vec<Job> = (0..clients)
        .map(|i| -> Job {
            let request = [i as u8; CONNECT_MESSAGE];
            let mut reply = [0u8; CONNECT_MESSAGE];
            Box::new(move || {
                let mut stream = connect_retrying(addr)?;
                stream.write_all(&request)?;
                stream.read_exact(&mut reply)?;
                // Dropped here: the client closes first (so TIME_WAIT is on
                // the client side; Linux reuses those loopback ports).
                drop(stream);
                check_echo(&request, &reply)
            })
        })
        .collect();
    Workers::spawn(jobs)
}

/// `n` connections to `addr`, each served (a one-byte echo made on it)
/// before the next is opened, then left silent: what a server holds for
/// clients that are connected but idle.
pub fn idle_connections(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    (0..n)
        .map(|_| {
            let mut stream = connect_retrying(addr)?;
            stream.write_all(b"i")?;
            let mut back = [0u8; 1];
            stream.read_exact(&mut back)?;
            check_echo(b"i", &back)?;
            Ok(stream)
        })
        .collect()
}

/// [`connect`], retried while the system is out of local ports for the
/// moment (`EADDRNOTAVAIL`).
fn connect_retrying(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut attempt = 0;
    loop {
        match connect(addr) {
            Err(e) if e.kind() == ErrorKind::AddrNotAvailable && attempt < CONNECT_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// An error unless `back` is what was sent.
fn check_echo(sent: &[u8], back: &[u8]) -> io::Result<()> {
    if sent == back {
        Ok(())
    } else {
        Err(io::Error::new(
            ErrorKind::InvalidData,
            "the echo differs from what was sent",
        ))
    }
}
