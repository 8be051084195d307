//! A line-command server (the ESP32 chapter exercise): `GET_TEMP`,
//! `GET_HUMIDITY`, `PING`, `STATS`, `QUIT`, one per line, for many clients
//! at once.
//!
//! ```sh
//! cargo run --release --example command -- --listen 127.0.0.1:7001
//! ```
//!
//! Unknown commands get `ERR unknown command`; a line over 128 bytes gets
//! `ERR line too long` and the connection is closed. Same flags and output
//! lines as the echo example.

mod common;

use std::fmt::Write as _;
use std::process::ExitCode;

use tcpool::framing::{LineTimeout, Lines};
use tcpool::{CloseReason, Closed, Conn, Handler, Server};

use common::PoolServer;

/// The longest command line accepted, terminator not counted.
const MAX_LINE: usize = 128;

/// Answers commands from a simulated sensor.
struct Commands {
    /// Readings taken, to make the simulated sensor move.
    readings: u32,
    /// `--request-timeout-ms`: each line must be complete within this
    /// time of its first byte, the first one within it of the accept.
    line_timeout: Option<LineTimeout>,
}

impl Commands {
    fn answer(&mut self, conn: &mut Conn<'_>, line: &[u8]) -> Result<(), std::fmt::Error> {
        match line {
            b"PING" => conn.write_str("PONG\n"),
            b"GET_TEMP" => {
                self.readings = self.readings.wrapping_add(1);
                let tenths = 215 + (self.readings % 10) as i32;
                writeln!(conn, "TEMP {}.{}", tenths / 10, tenths % 10)
            }
            b"GET_HUMIDITY" => {
                self.readings = self.readings.wrapping_add(1);
                writeln!(conn, "HUMIDITY {}", 40 + self.readings % 7)
            }
            b"STATS" => {
                let stats = *conn.stats();
                writeln!(
                    conn,
                    "STATS active={} accepted={} refused={} bytes_in={} bytes_out={}",
                    stats.active, stats.accepted, stats.refused, stats.bytes_in, stats.bytes_out
                )
            }
            b"QUIT" => {
                conn.write_str("BYE\n")?;
                conn.close();
                Ok(())
            }
            _ => conn.write_str("ERR unknown command\n"),
        }
    }
}

impl Handler for Commands {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Some(t) = self.line_timeout {
            t.opened(conn);
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        let mut used = 0;
        let mut lines = Lines::new(data, MAX_LINE);
        while let Some(line) = lines.next() {
            let Ok(line) = line else {
                // Over the limit: say so, then close; the rest of the input is dropped.
                let _ = conn.write_all(b"ERR line too long\n");
                conn.close_with(CloseReason::Protocol);
                return data.len();
            };
            // Strip stray spaces so `PING ` works as well as `PING`.
            let line = line.trim_ascii();
            if self.answer(conn, line).is_err() {
                // No room for the reply: leave this line for when output drains.
                break;
            }
            used = lines.consumed();
            if conn.is_closing() {
                break;
            }
        }
        if let Some(t) = self.line_timeout {
            t.parsed(conn, used > 0, data.len() - used);
        }
        used
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        println!("closed {closed}");
    }
}

fn main() -> ExitCode {
    let args = common::Args::parse();
    let handler = Commands {
        readings: 0,
        line_timeout: args.pool.request_timeout.map(LineTimeout::new),
    };
    let mut server: PoolServer<Commands, 512, 512> = Server::new_in(handler, args.config());
    common::serve(&args, &mut server, |_| {})
}
