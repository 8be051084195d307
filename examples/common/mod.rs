//! What the std examples share: the command line (see [`cli`] and
//! [`flags`], which the smoltcp TAP example and the load generator share
//! too), the socket setup and the poll-and-wait
//! loop. The command-line interface (flags, exit codes, the
//! `listening on ADDR` line, the `closed ...` and `stats ...` lines) is
//! relied on by acceptance tests: extend it, never change it.

pub mod cli;
pub mod flags;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tcpool::host::{Config as StackConfig, Heap, StdClock, StdStack};
use tcpool::{Config, Handler, Server};

use cli::{Cli, PoolArgs, print_stats};

/// Slots compiled into the std example servers; `--max-connections` may
/// use up to this many. The slots are built in place on the heap
/// ([`Heap`]): at 4 KiB buffers they take 8 MiB, too much for a stack.
pub const POOL: usize = 1024;

/// An example server: `POOL` slots on the heap.
pub type PoolServer<H, const RX: usize, const TX: usize> = Server<StdStack, H, POOL, RX, TX, Heap>;

/// The command line of the std examples: `--listen` and the pool flags.
pub struct Args {
    /// `--listen`: the address to listen on (default 127.0.0.1:7000).
    pub listen: SocketAddr,
    /// The pool flags.
    pub pool: PoolArgs,
}

const CLI: Cli = Cli {
    pool: POOL,
    synopsis: "[--listen ADDR]",
    help: "  --listen ADDR          address to listen on (default 127.0.0.1:7000; port 0 picks one)",
};

impl Args {
    /// Parses the process arguments; prints usage and exits on a mistake
    /// (exit code 2) or after `--help` (exit code 0).
    pub fn parse() -> Args {
        let mut listen = SocketAddr::from(([127, 0, 0, 1], 7000));
        let pool = CLI.parse_or_exit(|flag| match flag.name() {
            "--listen" => {
                listen = flag.parse("not an address like 127.0.0.1:7000 or [::1]:7000")?;
                Ok(true)
            }
            _ => Ok(false),
        });
        Args { listen, pool }
    }

    /// The server configuration these flags ask for.
    pub fn config(&self) -> Config {
        self.pool.config()
    }
}

/// Binds, prints `listening on ADDR`, and serves until SIGINT or SIGTERM;
/// then closes every connection, prints the stats and returns.
///
/// `before_poll` runs before each poll (the command server uses it to give
/// its handler a copy of the stats).
pub fn serve<H: Handler, const RX: usize, const TX: usize>(
    args: &Args,
    server: &mut PoolServer<H, RX, TX>,
    mut before_poll: impl FnMut(&mut PoolServer<H, RX, TX>),
) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("error: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut stack = StdStack::new(StackConfig::default().with_bind_ip(args.listen.ip()));
    let clock = StdClock::new();
    if let Err(e) = server.listen(&mut stack, args.listen.port()) {
        eprintln!("error: cannot listen on {}: {e}", args.listen);
        return ExitCode::FAILURE;
    }
    let bound = server
        .listener()
        .and_then(|l| stack.local_addr(l).ok())
        .unwrap_or(args.listen);
    println!("listening on {bound}");
    // Wake at least this often to notice a signal (poll(2) is restarted
    // after one); an idle server still sleeps >99.9% of the time.
    const SIGNAL_CHECK: Duration = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        before_poll(server);
        let now = clock.now();
        server.poll(&mut stack, now);
        let deadline = server
            .poll_at()
            .map_or(now + SIGNAL_CHECK, |t| t.min(now + SIGNAL_CHECK));
        if let Err(e) = stack.wait(server.interests(), Some(deadline), &clock) {
            eprintln!("error: waiting for sockets failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    server.shutdown(&mut stack, clock.now());
    print_stats(server.stats());
    ExitCode::SUCCESS
}
