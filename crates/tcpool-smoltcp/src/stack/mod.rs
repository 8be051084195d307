//! The [`Stack`]: an smoltcp `Interface` + `SocketSet` + device, a fixed pool
//! of TCP sockets, and the bookkeeping that turns them into an
//! `embedded-nal` `TcpFullStack` with an emulated accept backlog.
//!
//! One file per concept: [`handle`] (handles and the pool's roles),
//! [`construct`] (building and taking apart), [`drive`] (polling, timers,
//! reclaiming closed sockets), [`backlog`] (listeners and the emulated
//! accept backlog), [`introspect`] (addresses, states, statistics) and
//! [`nal`] (the `embedded-nal` and tcpool backend traits).

mod backlog;
mod construct;
mod drive;
mod handle;
mod introspect;
mod nal;
mod ready;
pub(crate) mod time;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};

use crate::config::Config;

use handle::{Entry, Listener};

pub use handle::TcpHandle;
pub use introspect::{Counters, PoolStats};

/// The TCP state of a pool socket, as smoltcp sees it (re-exported for
/// diagnostics and tests; see [`Stack::socket_state`]).
pub use smoltcp::socket::tcp::State as TcpState;

/// An `embedded-nal` [`TcpFullStack`](embedded_nal::TcpFullStack) over smoltcp
/// with a fixed pool of `N` TCP sockets.
///
/// The stack owns the smoltcp [`Interface`], the [`SocketSet`] and the device
/// `D`. Nothing happens on the network until [`poll`](Self::poll) is called;
/// call it whenever the device may have received something and at the latest
/// after [`poll_delay`](Self::poll_delay).
///
/// # Semantics
///
/// * `socket()` reserves a pool socket; when none is free it returns
///   [`Error::OutOfSockets`](crate::Error::OutOfSockets) (never a panic, never a connection dropped to make
///   room).
/// * `bind` + `listen` create a *listener*: smoltcp has no accept queue, so
///   [`ListenConfig::backlog`](crate::ListenConfig::backlog) pool sockets listen on the port and one that
///   catches a SYN becomes the connection while a fresh socket is armed at
///   once (see [`ListenConfig`](crate::ListenConfig) for the bound). When no socket of the port
///   is listening (pool exhausted, or the application not accepting), a new
///   client's SYN is dropped so that the client retransmits it and connects
///   later ([`Overflow::Hold`](crate::Overflow::Hold), the default), or answered with a RST so that
///   it sees "connection refused" at once ([`Overflow::Refuse`](crate::Overflow::Refuse)).
/// * `accept` returns `WouldBlock` until a connection has completed its
///   handshake (ESTABLISHED, or CLOSE-WAIT when the client already sent its
///   FIN); connections are handed over in arrival order, with the peer's
///   address. Connections still in SYN-RECEIVED are never handed over.
/// * `receive` returns `WouldBlock` when nothing is buffered, and `Ok(0)`
///   only at end of stream: after the peer's FIN *and* once every byte sent
///   before it has been read. A reset connection delivers what was buffered,
///   then fails with [`Error::ConnectionReset`](crate::Error::ConnectionReset) (kind `PipeClosed`).
/// * `send` returns `WouldBlock` when the TX buffer is full (or while an
///   outgoing connection is still handshaking).
/// * `close` on a listener stops listening at once (its listening sockets
///   return to the pool), closes the connections it still held gracefully,
///   and resets those still handshaking. Its port can be listened on again
///   right away.
/// * `close` is graceful: smoltcp sends the FIN once the TX buffer has
///   drained; with [`Config::lingering_close`] (the default) incoming data
///   is discarded meanwhile, so the peer is never stalled, and the
///   connection is reset if the close has not completed by the deadline.
///   The socket returns to the pool after the FIN exchange (TIME-WAIT or
///   CLOSED) or that reset. [`abort`](Self::abort) resets (RST) at once.
/// * `connect` is non-blocking: `WouldBlock` until ESTABLISHED, then `Ok(())`;
///   [`Error::ConnectionRefused`](crate::Error::ConnectionRefused) if the peer refused or did not answer
///   within [`Config::handshake_timeout`].
///
/// # smoltcp pitfalls handled by the pool
///
/// * **No accept queue, and a RST for every SYN no socket takes.** See
///   above; [`Overflow::Hold`](crate::Overflow::Hold) withholds that RST while the port is full
///   (the stack inspects only the small frames smoltcp sends in answer to an
///   incoming packet, and drops a RST|ACK with sequence number 0 from a held
///   port, which is exactly smoltcp's answer to an untaken SYN).
/// * **Duplicate SYN.** When a SYN-ACK is lost the client retransmits its
///   SYN. smoltcp lets the *first* socket in the set that matches take a
///   packet, so if a freshly armed listener comes before the SYN-RECEIVED
///   socket, the listener takes the duplicate SYN too and the first socket is
///   shadowed forever (or a late duplicate SYN shadows an *established*
///   connection, whose next packets then draw RSTs). The stack processes
///   incoming packets one at a time and, when a listener catches a SYN whose
///   4-tuple another pool socket already holds, returns that listener to
///   LISTEN silently (no SYN-ACK, no RST): the duplicate is dropped, as it
///   would be had the original socket come first.
/// * **Stuck handshakes.** A SYN-RECEIVED socket whose SYN-ACKs never get
///   through retransmits forever in smoltcp; every pool socket in a handshake
///   has [`Config::handshake_timeout`] set and is reclaimed after it.
/// * **Idle connections.** A smoltcp timeout alone kills idle established
///   connections (it counts time since the peer last sent anything), so
///   established connections get [`Config::timeout`] *and* a shorter
///   [`Config::keepalive`], whose probes make a live peer answer.
/// * **CLOSE-WAIT is not the end.** smoltcp enters CLOSE-WAIT when the FIN
///   arrives, possibly with data still buffered; `receive` reports end of
///   stream only when smoltcp does (`recv` → `Finished`), after the data.
/// * **`listen()` clears buffers.** A closed socket is re-armed (or reused by
///   `socket()`) only once smoltcp is done with it: after its FIN exchange
///   (TIME-WAIT, which it finishes while it waits in the free pool, or
///   CLOSED) or after its RST has gone out — never while it still has data
///   or a FIN to send.
/// * **Closing in SYN-RECEIVED.** smoltcp 0.14 skips the FIN of a socket
///   closed in SYN-RECEIVED and then waits in FIN-WAIT-2 forever; such
///   sockets (handshakes in progress when their listener is closed) are
///   reset instead.
pub struct Stack<'a, D: Device, const N: usize> {
    iface: Interface,
    device: D,
    medium: Medium,
    sockets: SocketSet<'a>,
    pool: [Entry; N],
    listeners: [Option<Listener>; N],
    config: Config,
    /// Time of the last `poll` (used to start lingering-close deadlines).
    now: SmolInstant,
    next_port: u16,
    arrivals: u32,
    counters: Counters,
    /// A stack poll may have changed some socket's state since the last
    /// readiness check: every watched socket is checked at the next one.
    recheck: bool,
    /// Some watched socket may be marked (found ready at the last check, or
    /// its watch changed since).
    marked: bool,
}

fn tcp_socket<'s, 'a>(set: &'s mut SocketSet<'a>, h: SocketHandle) -> &'s mut tcp::Socket<'a> {
    set.get_mut::<tcp::Socket>(h)
}

/// smoltcp's `close()`, except in SYN-RECEIVED, where it resets instead.
///
/// smoltcp 0.14 mishandles a close in SYN-RECEIVED: the socket moves to
/// FIN-WAIT-1 without having sent its FIN, takes the peer's ACK of the
/// SYN-ACK for the ACK of that FIN, and waits in FIN-WAIT-2 without ever
/// sending one. Only handshakes in progress are affected (a listener closed
/// with connections still handshaking, or a simultaneous open), and for those
/// a RST is the honest answer anyway.
fn close_gracefully(s: &mut tcp::Socket) {
    if s.state() == TcpState::SynReceived {
        s.abort();
    } else {
        s.close();
    }
}

/// smoltcp is done with the socket: FIN exchanged (TIME-WAIT, which it may
/// finish while free), or CLOSED with no RST left to send.
fn is_reclaimable(s: &tcp::Socket) -> bool {
    match s.state() {
        TcpState::TimeWait => true,
        TcpState::Closed => s.remote_endpoint().is_none(),
        _ => false,
    }
}

/// Switch a socket from the handshake timeout to the established one.
fn set_established_timers(
    s: &mut tcp::Socket,
    timeout: Option<SmolDuration>,
    keepalive: Option<SmolDuration>,
) {
    if s.timeout() != timeout {
        s.set_timeout(timeout);
    }
    // Normally set since the socket was armed; setting it again on an idle
    // established socket would send a probe at once, so only if it differs.
    if s.keep_alive() != keepalive {
        s.set_keep_alive(keepalive);
    }
}
