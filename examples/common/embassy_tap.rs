//! What the async embassy TAP examples share: their command line (the
//! network flags of the smoltcp TAP example beside the pool flags), an
//! embassy-net stack on a Linux TAP device with a tcpool socket pool on
//! it, a small executor, and the run of `async_handler::serve` with the
//! echo example's output lines.
//!
//! Time: every build of this workspace links embassy-time's mock driver
//! (the in-memory tests and the benchmark run on it), so these examples
//! move that clock along with the host's: [`block_on`] advances it to the
//! time since start before each round, which fires the timers that came
//! due (smoltcp's retransmits and delayed ACKs, tcpool's deadlines).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant as StdInstant};

use embassy_futures::select::select;
use embassy_net_tuntap::TunTapDevice;
use embassy_time::MockDriver;
use tcpool::Server;
use tcpool::async_handler::{self, Adapter, AsyncHandler, AsyncServer};
use tcpool::asynch::Clock;
use tcpool::embassy::embassy_net::{self, Ipv4Cidr, StackResources, StaticConfigV4};
use tcpool::embassy::{
    Config as PoolConfig, EmbassyClock, HoldSyns, ListenConfig, Pool, PoolStack, SynHold,
};

use super::cli::print_stats;
pub use super::tap_args::TapArgs;

/// Slots compiled in; `--max-connections` may use up to this many.
pub const POOL: usize = 16;
/// Stack sockets: the pool, the listener's backlog (up to 8 held before
/// accept) and room for connections finishing their close.
pub const SOCKETS: usize = POOL + 16;
/// Each stack socket's receive and transmit buffer.
const SOCKET_BUFFER: usize = 8 * 1024;

/// The embedded-nal stack the server runs on.
pub type Stack = PoolStack<'static, 'static, SOCKETS>;

/// The network driver: the TAP device, refused SYNs held.
type Driver = HoldSyns<'static, TunTapDevice>;

/// The embassy-net stack on the TAP device, and the socket pool on it.
struct Net {
    pool: &'static Pool<'static, SOCKETS>,
    runner: embassy_net::Runner<'static, Driver>,
}

impl Net {
    /// Opens (or creates) the TAP device and builds the stack on it. The
    /// stack, its sockets and their buffers live as long as the process.
    fn open(args: &TapArgs) -> std::io::Result<Net> {
        let device = TunTapDevice::new(&args.tap)?;
        let hold: &'static SynHold = Box::leak(Box::new(SynHold::new()));
        let resources: &'static mut StackResources<{ SOCKETS + 2 }> =
            Box::leak(Box::new(StackResources::new()));
        let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(args.ip, args.prefix),
            gateway: args.gateway,
            dns_servers: Default::default(),
        });
        // The seed of the stack's initial sequence numbers and ports.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        let (stack, runner) =
            embassy_net::new(HoldSyns::new(device, hold), config, resources, seed);
        let buffers = || std::array::from_fn(|_| &mut *Vec::leak(vec![0u8; SOCKET_BUFFER]));
        let config = PoolConfig {
            listen: ListenConfig::new(4, 8),
            ..PoolConfig::new()
        };
        let pool = Box::leak(Box::new(Pool::from_buffers(
            stack,
            buffers(),
            buffers(),
            hold,
            config,
        )));
        Ok(Net { pool, runner })
    }
}

/// Runs `handler` on the TAP device the flags name, with the echo
/// example's output: `listening on ADDR` when ready, then `memory
/// server=BYTES tasks=BYTES` (the pool, and the future that runs it with
/// its `POOL` handler futures), one `closed ...` line per connection (the
/// handler prints it), and `stats ...` after SIGINT or SIGTERM.
pub fn serve<A: AsyncHandler, const RX: usize, const TX: usize>(
    args: &TapArgs,
    handler: &A,
) -> ExitCode {
    let mut net = match Net::open(args) {
        Ok(net) => net,
        Err(e) => {
            eprintln!("error: cannot open TAP device {}: {e}", args.tap);
            return ExitCode::FAILURE;
        }
    };
    let mut stack = net.pool.stack();
    let mut server: AsyncServer<'_, Stack, A, POOL, RX, TX> =
        Server::new(Adapter::new(handler), args.pool.config());
    if let Err(e) = server.listen(&mut stack, args.port) {
        eprintln!("error: cannot listen on port {}: {e:?}", args.port);
        return ExitCode::FAILURE;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("error: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("listening on {}", SocketAddr::from((args.ip, args.port)));

    let clock = MockClock::start();
    let server_bytes = size_of_val(&server);
    let mut embassy_clock = EmbassyClock;
    {
        let stopped = std::future::poll_fn(|_| {
            if stop.load(Ordering::Relaxed) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let serve = async_handler::serve(
            &mut server,
            &mut stack,
            handler,
            &mut embassy_clock,
            stopped,
        );
        println!("memory server={server_bytes} tasks={}", size_of_val(&serve));
        block_on(&clock, &stop, select(serve, net.runner.run()));
    }
    server.shutdown(&mut stack, embassy_clock.now());
    // Give the FINs a moment to go out.
    let until = embassy_time::Instant::now() + embassy_time::Duration::from_millis(200);
    let never = AtomicBool::new(false);
    block_on(
        &clock,
        &never,
        select(embassy_time::Timer::at(until), net.runner.run()),
    );
    print_stats(server.stats());
    ExitCode::SUCCESS
}

/// embassy-time's mock clock, kept at the time since start.
struct MockClock {
    start: StdInstant,
}

impl MockClock {
    fn start() -> MockClock {
        MockClock {
            start: StdInstant::now()
                - Duration::from_micros(embassy_time::Instant::now().as_micros()),
        }
    }

    /// Moves the mock clock to now; wakes the timers that came due.
    fn sync(&self) {
        let target = self.start.elapsed().as_micros() as u64;
        let now = embassy_time::Instant::now().as_micros();
        if target > now {
            MockDriver::get().advance(embassy_time::Duration::from_micros(target - now));
        }
    }
}

/// Wakes the executor's thread.
struct Unpark {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs `fut` on this thread until it completes, polling it only when it
/// was woken (the TAP device's reactor thread, a timer) or `kick` is set
/// (a signal). Between rounds the thread sleeps; it looks at the clock
/// every millisecond while the network is busy and every 20 ms when it has
/// been quiet for a while, to fire embassy-time's timers.
fn block_on<F: Future>(clock: &MockClock, kick: &AtomicBool, fut: F) -> F::Output {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        woken: AtomicBool::new(true),
    });
    let waker = Waker::from(Arc::clone(&unpark));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let mut active = StdInstant::now();
    loop {
        clock.sync();
        if unpark.woken.swap(false, Ordering::SeqCst) || kick.load(Ordering::Relaxed) {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            active = StdInstant::now();
        }
        if !unpark.woken.load(Ordering::SeqCst) {
            let tick = if active.elapsed() < Duration::from_millis(500) {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(20)
            };
            thread::park_timeout(tick);
        }
    }
}
