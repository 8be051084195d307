//! The echo application of the echo examples (std and smoltcp TAP):
//! everything a client sends comes back, and each finished connection
//! prints its `closed id=.. peer=.. rx=.. tx=.. reason=..` line.

use tcpool::{Closed, Conn, Handler};

/// Echoes input; what does not fit the transmit buffer stays in the
/// receive buffer until output drains (backpressure, not loss).
pub struct Echo;

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
