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
//! address it is given; meant for 127.0.0.1.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let mut connect: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let mut clients = 1usize;
    let mut seconds = 5u64;
    let mut chunk = 64 * 1024usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("error: {flag} needs a value");
            return ExitCode::from(2);
        };
        let ok = match flag.as_str() {
            "--connect" => value.parse().map(|v| connect = v).is_ok(),
            "--clients" => value.parse().map(|v| clients = v).is_ok(),
            "--seconds" => value.parse().map(|v| seconds = v).is_ok(),
            "--chunk" => value.parse().map(|v| chunk = v).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!(
                "error: bad flag or value: {flag} {value}\nusage: --connect ADDR --clients N --seconds S --chunk BYTES"
            );
            return ExitCode::from(2);
        }
    }
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
