//! Shared by the in-memory tests: the process-wide mock clock (one test at
//! a time), wakers that record being woken, and two embassy-net stacks
//! joined by a simulated wire, the server's driver wrapped in `HoldSyns`.
#![allow(dead_code)]

use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};

use embassy_time::{Duration as EDuration, MockDriver};
use tcpool_embassy::sim::{Wire, WireEnd, leak_stack};
use tcpool_embassy::{Config, HoldSyns, Pool, SynHold};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// embassy-time's mock driver is one clock for the whole process: tests
/// that use it hold this lock, and start from time zero.
pub fn lock_clock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    MockDriver::get().reset();
    guard
}

/// Moves the mock clock (timers that come due are woken).
pub fn advance_ms(ms: u64) {
    MockDriver::get().advance(EDuration::from_millis(ms));
}

/// The mock clock, in milliseconds.
pub fn now_ms() -> u64 {
    embassy_time::Instant::now().as_millis()
}

/// A waker that records that it was woken, and how often.
#[derive(Default)]
pub struct Flag {
    woken: AtomicBool,
    wakes: AtomicU64,
}

impl Flag {
    pub fn new() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        (flag, waker)
    }

    /// Whether it was woken since the last call.
    pub fn take(&self) -> bool {
        self.woken.swap(false, Ordering::SeqCst)
    }

    /// Marks it woken (as a wake would, without one).
    pub fn set(&self) {
        self.woken.store(true, Ordering::SeqCst);
    }

    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// A boxed future polled by hand, with the waker it is polled with.
pub struct Task<'a> {
    fut: Pin<Box<dyn Future<Output = ()> + 'a>>,
    pub flag: Arc<Flag>,
    waker: Waker,
    pub polls: u64,
    pub done: bool,
}

impl<'a> Task<'a> {
    pub fn new(fut: impl Future<Output = ()> + 'a) -> Self {
        let (flag, waker) = Flag::new();
        Task {
            fut: Box::pin(fut),
            flag,
            waker,
            polls: 0,
            done: false,
        }
    }

    /// Polls once (unless finished); true if it finished now.
    pub fn poll(&mut self) -> bool {
        if self.done {
            return false;
        }
        self.polls += 1;
        let mut cx = Context::from_waker(&self.waker);
        self.done = self.fut.as_mut().poll(&mut cx).is_ready();
        self.done
    }

    /// Polls if it was woken since the last poll.
    pub fn poll_if_woken(&mut self) -> bool {
        if self.flag.take() {
            self.poll();
            true
        } else {
            false
        }
    }
}

/// An embassy-net runner as a task.
pub fn runner_task<D: embassy_net_driver::Driver + 'static>(
    mut runner: embassy_net::Runner<'static, D>,
) -> Task<'static> {
    let task = Task::new(async move {
        runner.run().await;
    });
    task.flag.set();
    task
}

/// Socket buffers for `N` sockets, leaked (they live as long as the test
/// process, as the stacks do).
pub fn leak_buffers<const N: usize>(size: usize) -> [&'static mut [u8]; N] {
    std::array::from_fn(|_| &mut *Vec::leak(vec![0u8; size]))
}

/// A pool of `N` sockets on `stack`, leaked.
pub fn leak_pool<const N: usize>(
    stack: embassy_net::Stack<'static>,
    hold: &'static SynHold,
    buffers: (usize, usize),
    config: Config,
) -> &'static Pool<'static, N> {
    let rx = leak_buffers::<N>(buffers.0);
    let tx = leak_buffers::<N>(buffers.1);
    Box::leak(Box::new(Pool::from_buffers(stack, rx, tx, hold, config)))
}

/// The server's end of the wire: an embassy-net stack at `SERVER_IP` whose
/// driver holds refused SYNs for the pool's ports.
pub fn server_stack<const SOCK: usize>(
    wire: &Wire,
    seed: u64,
) -> (embassy_net::Stack<'static>, Task<'static>, &'static SynHold) {
    let hold: &'static SynHold = Box::leak(Box::new(SynHold::new()));
    let driver: HoldSyns<'static, WireEnd> = HoldSyns::new(wire.end(0), hold);
    let (stack, runner) = leak_stack::<_, SOCK>(driver, SERVER_IP, seed);
    (stack, runner_task(runner), hold)
}

/// The clients' end of the wire: an embassy-net stack at `CLIENT_IP`.
pub fn client_stack<const SOCK: usize>(
    wire: &Wire,
    seed: u64,
) -> (embassy_net::Stack<'static>, Task<'static>, &'static SynHold) {
    let hold: &'static SynHold = Box::leak(Box::new(SynHold::new()));
    let (stack, runner) = leak_stack::<_, SOCK>(wire.end(1), CLIENT_IP, seed);
    (stack, runner_task(runner), hold)
}
