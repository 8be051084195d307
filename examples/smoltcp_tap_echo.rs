//! The echo server on the smoltcp backend, reachable from the host through
//! a Linux TAP device: a smoltcp stack with its own MAC and IP address runs
//! in this process, and everything a client sends comes back.
//!
//! Needs root, for the TAP device and the network namespace it runs in
//! (no traffic leaves the namespace):
//!
//! ```sh
//! cargo build --release --features tap --example smoltcp_tap_echo
//! sudo ip netns add tcpool-demo
//! # terminal 1: the smoltcp side, 10.123.0.2/24, port 7000, 4 clients at
//! # once; it creates the TAP device tcpt0 in the namespace (Ctrl-C stops it)
//! sudo ip netns exec tcpool-demo target/release/examples/smoltcp_tap_echo \
//!     --tap tcpt0 --ip 10.123.0.2/24 --listen-port 7000 --max-connections 4
//! # terminal 2, once it prints `listening on 10.123.0.2:7000`: the kernel
//! # side of the link, and a client
//! sudo ip -n tcpool-demo addr add 10.123.0.1/24 dev tcpt0
//! sudo ip -n tcpool-demo link set tcpt0 up
//! sudo ip netns exec tcpool-demo nc 10.123.0.2 7000
//! # clean up, after Ctrl-C in terminal 1 (the TAP device went with the process)
//! sudo ip netns del tcpool-demo
//! ```
//!
//! Takes the pool flags of the echo example (`--max-connections`,
//! `--when-full`, `--idle-timeout-ms`, `--min-idle-ms`, `--max-per-ip`)
//! and prints the same lines: `listening on ADDR` when ready, one `closed
//! id=.. peer=.. rx=.. tx=.. reason=..` line per finished connection, and a
//! `stats ...` line on Ctrl-C or SIGTERM. Under the default `--when-full
//! defer`, clients beyond `--max-connections` wait (their handshake
//! completes in the stack's emulated backlog, or their SYN is held and
//! retried) until a slot frees; nobody is dropped to make room.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/echo.rs"]
mod echo;
#[path = "common/flags.rs"]
mod flags;
#[path = "common/tap_args.rs"]
mod tap_args;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use tcpool::smoltcp::tap::{self, TapConfig, TapStack};
use tcpool::{Instant, Server};

use cli::print_stats;
use echo::Echo;
use tap_args::TapArgs;

/// Slots compiled in; `--max-connections` may use up to this many.
const POOL: usize = 16;
/// Stack sockets: the pool, the listener's backlog (4 held before accept)
/// and room for connections finishing their close.
const SOCKETS: usize = POOL + 16;

type Stack = TapStack<SOCKETS>;

fn main() -> ExitCode {
    let args = TapArgs::parse(POOL);
    let mut config = TapConfig::new(&args.tap, args.ip, args.prefix);
    config.gateway = args.gateway;
    let mut stack: Stack = match tap::open(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open TAP device {}: {e}", args.tap);
            return ExitCode::FAILURE;
        }
    };
    let echo = Echo {
        request_timeout: args.pool.request_timeout,
    };
    let mut server: Server<Stack, Echo, POOL, 4096, 4096> = Server::new(echo, args.pool.config());
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

    let start = StdInstant::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    while !stop.load(Ordering::Relaxed) {
        let now = now();
        for _ in 0..64 {
            stack.poll(now);
            if !server.poll(&mut stack, now) {
                break;
            }
        }
        stack.poll(now);
        // Sleep until a frame arrives or the stack's or the server's next
        // deadline (at most 1 s, to notice signals).
        let mut delay = stack
            .poll_delay(now)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(1));
        if let Some(at) = server.poll_at() {
            delay = delay.min(at.saturating_duration_since(now));
        }
        if let Err(e) = tap::wait(&stack, Some(delay))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            eprintln!("error: waiting on the TAP device: {e}");
            return ExitCode::FAILURE;
        }
    }
    server.shutdown(&mut stack, now());
    // Give the FINs a moment to go out.
    let until = StdInstant::now() + Duration::from_millis(200);
    while StdInstant::now() < until {
        stack.poll(now());
        let _ = tap::wait(&stack, Some(Duration::from_millis(10)));
    }
    print_stats(server.stats());
    ExitCode::SUCCESS
}
