//! The line-command server of the `command` example (`GET_TEMP`,
//! `GET_HUMIDITY`, `PING`, `STATS`, `QUIT`, one per line) written as
//! sequential async code: an [`AsyncHandler`] that reads a line, answers
//! it and reads the next, over embassy-net on a Linux TAP device.
//!
//! Needs root for the TAP device and its network namespace; run it as the
//! `embassy_tap_echo` example (same flags, same output lines), e.g.:
//!
//! ```sh
//! cargo build --release --features embassy-tap --example embassy_tap_command
//! sudo ip netns add tcpool-demo
//! sudo ip netns exec tcpool-demo target/release/examples/embassy_tap_command \
//!     --tap tcpt0 --ip 10.123.0.2/24 --listen-port 7001
//! # in another terminal, once it prints `listening on 10.123.0.2:7001`:
//! sudo ip -n tcpool-demo addr add 10.123.0.1/24 dev tcpt0
//! sudo ip -n tcpool-demo link set tcpt0 up
//! echo PING | sudo ip netns exec tcpool-demo nc -q 1 10.123.0.2 7001
//! ```
//!
//! Unknown commands get `ERR unknown command`; a line over 128 bytes gets
//! `ERR line too long` and the connection is closed (reason `protocol`).
//! `STATS` answers with the pool's counters, as `command` does
//! (`AsyncConn::stats`).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/embassy_tap.rs"]
mod embassy_tap;
#[path = "common/flags.rs"]
mod flags;
#[path = "common/tap_args.rs"]
mod tap_args;

use std::cell::Cell;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use embedded_io_async::{BufRead, Write};
use tcpool::async_handler::{AsyncConn, AsyncHandler, ConnError};
use tcpool::framing::next_line;
use tcpool::{CloseReason, Closed, Stats};

/// The longest command line accepted, terminator not counted.
const MAX_LINE: usize = 128;

/// Answers commands from a simulated sensor.
#[derive(Default)]
struct Commands {
    /// Readings taken, to make the simulated sensor move.
    readings: Cell<u32>,
    /// `--request-timeout-ms`: each line must be complete within this
    /// time of its first byte, the first one within it of the accept.
    line_timeout: Option<Duration>,
}

/// What came of waiting for the next line.
enum Next {
    /// A command, without its terminator and surrounding spaces.
    Line([u8; MAX_LINE], usize),
    /// The peer finished (an unfinished last line is dropped).
    End,
    /// The line is over `MAX_LINE` bytes.
    TooLong,
}

impl Commands {
    /// The answer to one command; `None` for `QUIT` (after `BYE`).
    /// `stats`: the pool's counters, for `STATS`.
    fn answer(&self, line: &[u8], stats: &Stats, out: &mut String) -> Option<()> {
        let reading = || {
            let r = self.readings.get().wrapping_add(1);
            self.readings.set(r);
            r
        };
        let _ = match line {
            b"PING" => out.write_str("PONG\n"),
            b"GET_TEMP" => {
                let tenths = 215 + (reading() % 10) as i32;
                writeln!(out, "TEMP {}.{}", tenths / 10, tenths % 10)
            }
            b"GET_HUMIDITY" => writeln!(out, "HUMIDITY {}", 40 + reading() % 7),
            b"STATS" => writeln!(
                out,
                "STATS active={} accepted={} refused={} bytes_in={} bytes_out={}",
                stats.active, stats.accepted, stats.refused, stats.bytes_in, stats.bytes_out
            ),
            b"QUIT" => {
                out.push_str("BYE\n");
                return None;
            }
            _ => out.write_str("ERR unknown command\n"),
        };
        Some(())
    }

    /// Waits for the next complete line and consumes it.
    /// `first`: the first line, whose deadline was set at the accept.
    async fn next_line(&self, conn: &mut AsyncConn<'_>, first: bool) -> Result<Next, ConnError> {
        let mut have = 0;
        let mut timed = first;
        loop {
            let input = conn.fill_more(have).await?;
            if input.len() <= have {
                // Nothing more will come: the peer finished.
                return Ok(Next::End);
            }
            if !timed && let Some(t) = self.line_timeout {
                // The first byte of a line: it has `t` to complete.
                timed = true;
                let deadline = conn.now() + t;
                conn.set_deadline(deadline).await?;
                continue;
            }
            match next_line(input, MAX_LINE) {
                Ok(Some((line, used))) => {
                    let line = line.trim_ascii();
                    let mut copy = [0u8; MAX_LINE];
                    copy[..line.len()].copy_from_slice(line);
                    let len = line.len();
                    conn.consume(used);
                    if self.line_timeout.is_some() {
                        conn.clear_deadline().await?;
                    }
                    return Ok(Next::Line(copy, len));
                }
                Ok(None) => have = input.len(),
                Err(_) => return Ok(Next::TooLong),
            }
        }
    }

    async fn session(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        if let Some(t) = self.line_timeout {
            // The first line has `t` from the accept.
            let deadline = conn.now() + t;
            conn.set_deadline(deadline).await?;
        }
        let mut out = String::new();
        let mut first = true;
        loop {
            let next = self.next_line(conn, first).await?;
            first = false;
            let (line, len) = match next {
                Next::Line(line, len) => (line, len),
                Next::End => return Ok(()),
                Next::TooLong => {
                    conn.write_all(b"ERR line too long\n").await?;
                    return Err(CloseReason::Protocol);
                }
            };
            let stats = conn.stats().await?;
            out.clear();
            let more = self.answer(&line[..len], &stats, &mut out);
            conn.write_all(out.as_bytes()).await?;
            if more.is_none() {
                return Ok(());
            }
        }
    }
}

impl AsyncHandler for Commands {
    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        self.session(conn).await
    }

    fn on_closed(&self, closed: &Closed) {
        println!("closed {closed}");
    }
}

fn main() -> ExitCode {
    let args = embassy_tap::TapArgs::parse(embassy_tap::POOL);
    let commands = Commands {
        line_timeout: args.pool.request_timeout,
        ..Commands::default()
    };
    embassy_tap::serve::<_, 512, 512>(&args, &commands)
}
