//! An echo server on the smoltcp backend, reachable from the host through a
//! Linux TAP device: a smoltcp stack with its own MAC and IP address runs in
//! this process, and everything a client sends comes back.
//!
//! As root (or with a TAP owned by your user, made once with
//! `sudo ip tuntap add dev tcpt0 mode tap user $USER`):
//!
//! ```sh
//! # the host side of the TAP link: 10.123.0.1/24
//! sudo ip tuntap add dev tcpt0 mode tap
//! sudo ip addr add 10.123.0.1/24 dev tcpt0
//! sudo ip link set tcpt0 up
//!
//! # the smoltcp side: 10.123.0.2/24, port 7000, 4 clients at once
//! cargo run -p tcpool-smoltcp --features tap --example tap_echo -- \
//!     --tap tcpt0 --ip 10.123.0.2/24 --listen-port 7000 --max-connections 4
//!
//! # from another terminal
//! nc 10.123.0.2 7000
//!
//! # clean up
//! sudo ip link del tcpt0
//! ```
//!
//! Prints `listening on ADDR` when ready, one `closed id=.. peer=.. rx=..
//! tx=.. reason=..` line per finished connection, and a `stats ...` line on
//! Ctrl-C or SIGTERM. Clients beyond `--max-connections` wait (their
//! handshake completes in the stack's emulated backlog, or their SYN is
//! held and retried) until a slot frees; nobody is dropped to make room.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use tcpool_core::{Closed, Config, Conn, Handler, Instant, Server};
use tcpool_smoltcp::tap::{self, TapConfig, TapStack};

/// Slots compiled in; `--max-connections` may use up to this many.
const POOL: usize = 16;
/// Stack sockets: the pool, the listener's backlog (4 held before accept)
/// and room for connections finishing their close.
const SOCKETS: usize = POOL + 16;

const USAGE: &str =
    "usage: --tap NAME --ip ADDR/PREFIX [--gateway ADDR] [--listen-port PORT] [--max-connections N]

  --tap NAME             TAP device to attach to (created if missing; needs root then)
  --ip ADDR/PREFIX       the smoltcp side's address, e.g. 10.123.0.2/24
  --gateway ADDR         default route for the smoltcp side (optional)
  --listen-port PORT     port to listen on (default 7000)
  --max-connections N    clients served at once, 1..=16 (default 4); more wait";

struct Args {
    tap: String,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    port: u16,
    max_connections: usize,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut tap = None;
    let mut cidr = None;
    let mut gateway = None;
    let mut port = 7000u16;
    let mut max_connections = 4usize;
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: {what}: {value:?}");
        match flag.as_str() {
            "--tap" => tap = Some(value),
            "--ip" => {
                let (ip, prefix) = value
                    .split_once('/')
                    .ok_or_else(|| bad("expected ADDR/PREFIX"))?;
                let ip: Ipv4Addr = ip.parse().map_err(|_| bad("not an IPv4 address"))?;
                let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
                if prefix > 32 {
                    return Err(bad("prefix length above 32"));
                }
                cidr = Some((ip, prefix));
            }
            "--gateway" => gateway = Some(value.parse().map_err(|_| bad("not an IPv4 address"))?),
            "--listen-port" => {
                port = value.parse().map_err(|_| bad("not a port"))?;
                if port == 0 {
                    return Err(bad("port 0 is not a port to listen on"));
                }
            }
            "--max-connections" => {
                max_connections = value.parse().map_err(|_| bad("not a number"))?;
                if !(1..=POOL).contains(&max_connections) {
                    return Err(bad(&format!("must be 1..={POOL}")));
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let tap = tap.ok_or("--tap is required")?;
    let (ip, prefix) = cidr.ok_or("--ip is required")?;
    Ok(Args {
        tap,
        ip,
        prefix,
        gateway,
        port,
        max_connections,
    })
}

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, _conn: &mut Conn<'_>) {}

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        conn.write(data)
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        println!("closed {closed}");
    }
}

type Stack = TapStack<SOCKETS>;

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("error: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut config = TapConfig::new(&args.tap, args.ip, args.prefix);
    config.gateway = args.gateway;
    let mut stack: Stack = match tap::open(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open TAP device {}: {e}", args.tap);
            return ExitCode::FAILURE;
        }
    };
    let mut server: Server<Stack, Echo, POOL, 4096, 4096> = Server::new(
        Echo,
        Config::new().with_max_connections(args.max_connections),
    );
    if let Err(e) = server.listen(&mut stack, args.port) {
        eprintln!("error: listen: {e:?}");
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
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::from_millis(start.elapsed().as_millis() as u64);
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
            eprintln!("error: waiting on the TAP: {e}");
            return ExitCode::FAILURE;
        }
    }
    let now = Instant::from_millis(start.elapsed().as_millis() as u64);
    server.shutdown(&mut stack, now);
    // Give the FINs a moment to go out.
    let until = StdInstant::now() + Duration::from_millis(200);
    while StdInstant::now() < until {
        stack.poll(Instant::from_millis(start.elapsed().as_millis() as u64));
        let _ = tap::wait(&stack, Some(Duration::from_millis(10)));
    }
    let s = server.stats();
    println!(
        "stats accepted={} refused={} deferred={} bytes_in={} bytes_out={} peak_active={} closed={}",
        s.accepted,
        s.refused,
        s.deferred,
        s.bytes_in,
        s.bytes_out,
        s.peak_active,
        s.closed.total()
    );
    ExitCode::SUCCESS
}
