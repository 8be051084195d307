//! An echo server on the std backend: everything a client sends comes back.
//!
//! ```sh
//! cargo run --release --example echo -- --listen 127.0.0.1:7000 --max-connections 4
//! ```
//!
//! Prints `listening on ADDR` when ready, one `closed id=.. peer=.. rx=..
//! tx=.. reason=..` line per finished connection, and a `stats ...` line on
//! Ctrl-C or SIGTERM.

mod common;

use std::process::ExitCode;

use tcpool::{Closed, Conn, Handler, Server};

/// Echoes input; what does not fit the transmit buffer stays in the
/// receive buffer until output drains (backpressure, not loss).
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

fn main() -> ExitCode {
    let args = common::Args::parse();
    let mut server: Server<_, Echo, { common::POOL }, 4096, 4096> =
        Server::new(Echo, args.config());
    common::serve(&args, &mut server, |_| {})
}
