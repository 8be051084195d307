//! The echo server as async code: an [`AsyncHandler`] over embassy-net,
//! reachable from the host through a Linux TAP device. The embassy-net
//! stack, with its own MAC and IP address, runs in this process on a
//! small executor; tcpool's socket pool and `async_handler::serve` run on
//! it, one handler future per slot.
//!
//! Needs root, for the TAP device and the network namespace it runs in
//! (no traffic leaves the namespace):
//!
//! ```sh
//! cargo build --release --features embassy-tap --example embassy_tap_echo
//! sudo ip netns add tcpool-demo
//! # terminal 1: the embassy-net side, 10.123.0.2/24, port 7000, 4 clients
//! # at once; it creates the TAP device tcpt0 in the namespace (Ctrl-C stops it)
//! sudo ip netns exec tcpool-demo target/release/examples/embassy_tap_echo \
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
//! Takes the flags of the smoltcp TAP example and prints the same lines:
//! `listening on ADDR` when ready, then `memory server=BYTES tasks=BYTES`
//! (the pool with its buffers, and the future that runs it with its 16
//! handler futures), one `closed id=.. peer=.. rx=.. tx=.. reason=..` line
//! per finished connection, and a `stats ...` line on Ctrl-C or SIGTERM.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/embassy_tap.rs"]
mod embassy_tap;
#[path = "common/flags.rs"]
mod flags;
#[path = "common/tap_args.rs"]
mod tap_args;

use std::process::ExitCode;
use std::time::Duration;

use embedded_io_async::{Read, Write};
use tcpool::async_handler::{AsyncConn, AsyncHandler};
use tcpool::{CloseReason, Closed};

/// Echoes input, one connection per handler future. With a request
/// timeout, a client's first byte must arrive within it of the accept
/// (`--request-timeout-ms`).
struct Echo {
    request_timeout: Option<Duration>,
}

impl AsyncHandler for Echo {
    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        if let Some(t) = self.request_timeout {
            conn.set_deadline(conn.now() + t).await?;
        }
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await?;
        if self.request_timeout.is_some() {
            conn.clear_deadline().await?;
        }
        let mut n = n;
        while n > 0 {
            conn.write_all(&buf[..n]).await?;
            n = conn.read(&mut buf).await?;
        }
        // The peer finished and every byte went back: close after the output.
        Ok(())
    }

    fn on_closed(&self, closed: &Closed) {
        println!("closed {closed}");
    }
}

fn main() -> ExitCode {
    let args = embassy_tap::TapArgs::parse(embassy_tap::POOL);
    let echo = Echo {
        request_timeout: args.pool.request_timeout,
    };
    embassy_tap::serve::<_, 4096, 4096>(&args, &echo)
}
