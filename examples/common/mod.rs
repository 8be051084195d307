//! What the examples share: the command line, the socket setup and the
//! poll-and-wait loop. The command-line interface (flags, the
//! `listening on ADDR` line, the `closed ...` lines) is relied on by
//! acceptance tests: extend it, never change it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tcpool::host::{Config as StackConfig, StdClock, StdStack};
use tcpool::{Config, Handler, Server, Stats, WhenFull};

/// Slots compiled into the example servers; `--max-connections` may use
/// up to this many.
pub const POOL: usize = 64;

/// The parsed command line.
pub struct Args {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub when_full: WhenFull,
    pub idle_timeout: Option<Duration>,
    pub max_per_ip: Option<usize>,
}

const USAGE: &str = "usage: [--listen ADDR] [--max-connections N] \
[--when-full defer|reject|evict-idlest] [--idle-timeout-ms MS] [--min-idle-ms MS] [--max-per-ip N]

  --listen ADDR          address to listen on (default 127.0.0.1:7000; port 0 picks one)
  --max-connections N    clients served at once, 1..=64 (default 4); more wait or are refused
  --when-full MODE       defer (default): new clients wait in the kernel backlog;
                         reject: accept, say `busy`, close; evict-idlest: close the
                         longest-idle client (idle at least --min-idle-ms) to make room
  --idle-timeout-ms MS   close a client silent for MS milliseconds (default 0 = never)
  --min-idle-ms MS       with evict-idlest: never evict a client idle less than this (default 1000)
  --max-per-ip N         at most N clients from one IP address at once; more are refused
                         with a clean close (default 0 = no cap)";

impl Args {
    /// Parses the process arguments; prints usage and exits on a mistake.
    pub fn parse() -> Args {
        match Self::try_parse(std::env::args().skip(1)) {
            Ok(args) => args,
            Err(msg) => {
                eprintln!("error: {msg}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    fn try_parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut listen: SocketAddr = "127.0.0.1:7000".parse().map_err(|_| "default address")?;
        let mut max_connections = 4;
        let mut mode = String::from("defer");
        let mut idle_ms = 0u64;
        let mut min_idle_ms = 1000u64;
        let mut max_per_ip = 0usize;
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |what: &str| format!("{flag}: {what}: {value:?}");
            match flag.as_str() {
                "--listen" => {
                    listen = value
                        .parse()
                        .map_err(|_| bad("not an address like 127.0.0.1:7000 or [::1]:7000"))?
                }
                "--max-connections" => {
                    max_connections = value.parse().map_err(|_| bad("not a number"))?;
                    if !(1..=POOL).contains(&max_connections) {
                        return Err(bad(&format!("must be 1..={POOL}")));
                    }
                }
                "--when-full" => mode = value,
                "--idle-timeout-ms" => idle_ms = value.parse().map_err(|_| bad("not a number"))?,
                "--min-idle-ms" => min_idle_ms = value.parse().map_err(|_| bad("not a number"))?,
                "--max-per-ip" => max_per_ip = value.parse().map_err(|_| bad("not a number"))?,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        let when_full = match mode.as_str() {
            "defer" => WhenFull::Defer,
            "reject" => WhenFull::Reject,
            "evict-idlest" => WhenFull::EvictIdlest {
                min_idle: Duration::from_millis(min_idle_ms),
            },
            other => {
                return Err(format!(
                    "--when-full: expected defer, reject or evict-idlest, got {other:?}"
                ));
            }
        };
        let idle_timeout = (idle_ms > 0).then(|| Duration::from_millis(idle_ms));
        Ok(Args {
            listen,
            max_connections,
            when_full,
            idle_timeout,
            max_per_ip: (max_per_ip > 0).then_some(max_per_ip),
        })
    }

    /// The server configuration these flags ask for.
    pub fn config(&self) -> Config {
        Config::new()
            .with_max_connections(self.max_connections)
            .with_when_full(self.when_full)
            .with_idle_timeout(self.idle_timeout)
            .with_max_per_ip(self.max_per_ip)
            .with_reject_banner(b"busy\n")
    }
}

/// Prints the counters in one line.
pub fn print_stats(stats: &Stats) {
    let closed: Vec<String> = stats
        .closed
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r}:{n}"))
        .collect();
    println!(
        "stats accepted={} refused={} evicted={} deferred={} accept_errors={} bytes_in={} bytes_out={} peak_active={} closed={}",
        stats.accepted,
        stats.refused,
        stats.evicted,
        stats.deferred,
        stats.accept_errors,
        stats.bytes_in,
        stats.bytes_out,
        stats.peak_active,
        if closed.is_empty() {
            "-".to_string()
        } else {
            closed.join(",")
        }
    );
}

/// Binds, prints `listening on ADDR`, and serves until SIGINT or SIGTERM;
/// then closes every connection, prints the stats and returns.
///
/// `before_poll` runs before each poll (the command server uses it to give
/// its handler a copy of the stats).
pub fn serve<H: Handler, const RX: usize, const TX: usize>(
    args: &Args,
    server: &mut Server<StdStack, H, POOL, RX, TX>,
    mut before_poll: impl FnMut(&mut Server<StdStack, H, POOL, RX, TX>),
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
