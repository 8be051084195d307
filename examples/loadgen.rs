//! A load generator for the echo example: N clients each stream chunks
//! and read the echo back, and the aggregate echo rate is printed.
//!
//! ```sh
//! cargo run --release --example echo -- --max-connections 16 &
//! cargo run --release --example loadgen -- --connect 127.0.0.1:7000 --clients 16 --seconds 5
//! ```
//!
//! Prints `echo clients=N bytes=B seconds=S mb_per_s=X` (MB = 10^6 bytes,
//! counted once: bytes that made the round trip). Only connects to the
//! address it is given; meant for 127.0.0.1. A bad command line prints
//! `error: ...` and the usage and exits with 2, as the servers do.

#[path = "common/flags.rs"]
mod flags;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: [--connect ADDR] [--clients N] [--seconds S] [--chunk BYTES]

  --connect ADDR         the echo server (default 127.0.0.1:7000)
  --clients N            clients streaming at once (default 1)
  --seconds S            how long they stream (default 5)
  --chunk BYTES          bytes per write, at least 1 (default 65536)";

fn main() -> ExitCode {
    let mut connect = SocketAddr::from(([127, 0, 0, 1], 7000));
    let mut clients = 1usize;
    let mut seconds = 5u64;
    let mut chunk = 64 * 1024usize;
    flags::parse_or_exit(USAGE, |flag| {
        match flag.name() {
            "--connect" => connect = flag.parse("not an address like 127.0.0.1:7000")?,
            "--clients" => clients = flag.parse("not a number")?,
            "--seconds" => seconds = flag.parse("not a number")?,
            "--chunk" => {
                chunk = flag.parse("not a number")?;
                if chunk == 0 {
                    return Err(flag.bad("0", "must be at least 1"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || -> std::io::Result<u64> {
                let stream = TcpStream::connect(connect)?;
                stream.set_nodelay(true)?;
                let mut reader = stream.try_clone()?;
                let mut writer = stream;
                let sender = std::thread::spawn(move || -> std::io::Result<()> {
                    let data = vec![0xa5u8; chunk];
                    while !stop.load(Ordering::Relaxed) {
                        writer.write_all(&data)?;
                    }
                    writer.shutdown(Shutdown::Write)
                });
                let mut buf = vec![0u8; chunk];
                let mut echoed = 0u64;
                loop {
                    match reader.read(&mut buf)? {
                        0 => break,
                        n => echoed += n as u64,
                    }
                }
                sender.join().expect("sender thread")?;
                Ok(echoed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    for w in workers {
        match w.join().expect("client thread") {
            Ok(n) => total += n,
            Err(e) => {
                eprintln!("error: a client failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "echo clients={clients} bytes={total} seconds={secs:.2} mb_per_s={:.1}",
        total as f64 / secs / 1e6
    );
    ExitCode::SUCCESS
}
