//! An in-memory network for deterministic, unprivileged tests (feature `sim`).
//!
//! * [`Wire`]: a point-to-point link between two smoltcp devices
//!   ([`SimDevice`], IP medium) with latency, seeded random loss, reordering
//!   and duplication (in the spirit of smoltcp's `tests/netsim.rs`), a packet
//!   filter for targeted faults ("drop the first SYN-ACK") and a capture of
//!   every TCP segment for assertions ("the server sent a RST").
//! * [`SimNet`]: a server [`Stack`](crate::Stack) and a client `Stack` joined
//!   by a `Wire`, with a simulated millisecond clock that jumps from event to
//!   event, so that minutes of TCP timers run in milliseconds of CPU.
//!
//! ```
//! use embedded_nal::{TcpClientStack, TcpFullStack};
//! use std::time::Duration;
//! use tcpool_smoltcp::sim::{SimConfig, SimNet};
//!
//! let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
//! let mut listener = net.server.socket().unwrap();
//! net.server.bind(&mut listener, 80).unwrap();
//! net.server.listen(&mut listener).unwrap();
//!
//! let addr = net.server_addr(80);
//! let mut client = net.client.socket().unwrap();
//! let mut accepted = None;
//! let done = net.run_until(Duration::from_secs(5), |net| {
//!     let _ = net.client.connect(&mut client, addr); // WouldBlock until established
//!     accepted = net.server.accept(&mut listener).ok();
//!     accepted.is_some()
//! });
//! assert!(done);
//! let (_conn, peer) = accepted.unwrap();
//! assert_eq!(Some(peer), net.client.local_addr(&client));
//! ```

mod net;
mod wire;

pub use net::{SimConfig, SimNet, SimStack};
pub use wire::{
    PacketInfo, Side, SimDevice, SimRxToken, SimTxToken, TcpFlags, Verdict, Wire, WireConfig,
    WireStats,
};
