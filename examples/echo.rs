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
#[path = "common/echo.rs"]
mod echo;

use std::process::ExitCode;

use tcpool::Server;

use common::PoolServer;

use echo::Echo;

fn main() -> ExitCode {
    let args = common::Args::parse();
    let mut server: PoolServer<Echo, 4096, 4096> = Server::new_in(
        Echo {
            request_timeout: args.pool.request_timeout,
        },
        args.config(),
    );
    common::serve(&args, &mut server, |_| {})
}
