//! The echo application of the echo examples (std and smoltcp TAP):
//! everything a client sends comes back, and each finished connection
//! prints its `closed id=.. peer=.. rx=.. tx=.. reason=..` line.

use core::time::Duration;

use tcpool::{Closed, Conn, Handler};

/// Echoes input; what does not fit the transmit buffer stays in the
/// receive buffer until output drains (backpressure, not loss). With a
/// request timeout, a client's first byte must arrive within it of the
/// accept (`--request-timeout-ms`).
#[derive(Default)]
pub struct Echo {
    /// The time the first byte has.
    pub request_timeout: Option<Duration>,
}

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Some(t) = self.request_timeout {
            conn.set_deadline(conn.now() + t);
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        if conn.deadline().is_some() {
            conn.clear_deadline();
        }
        conn.write(data)
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        println!("closed {closed}");
    }
}
