//! Introspection: addresses, TCP states, buffer levels, readiness, pool
//! usage and event counters, and access to the smoltcp parts.

use core::net::SocketAddr;

use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use tcpool_core::Interest;

use super::handle::{Kind, Role};
use super::{Stack, TcpHandle, TcpState};
use crate::config::Config;

/// How the pool's sockets are being used right now (see [`Stack::pool_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolStats {
    /// Available to `socket()` and to listeners.
    pub free: usize,
    /// Handed out by `socket()`, not yet listening or connecting.
    pub reserved: usize,
    /// Listening on behalf of a listener.
    pub listening: usize,
    /// Caught a SYN; handshaking or waiting for `accept`.
    pub pending: usize,
    /// Owned by the application (accepted or outgoing).
    pub open: usize,
    /// Closed by the application, still finishing (FIN exchange, RST).
    pub closing: usize,
}

/// Events counted by a [`Stack`] since it was created (see
/// [`Stack::counters`]). Counters wrap around.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Connections handed over by `accept`.
    pub accepted: u32,
    /// SYNs caught by a listener for a 4-tuple another pool socket already
    /// held (retransmitted or late duplicate SYNs), dropped silently.
    pub duplicate_syns: u32,
    /// Closing connections reset because
    /// [`Config::lingering_close`](crate::Config::lingering_close) expired.
    pub lingering_resets: u32,
    /// SYNs dropped (not refused) because their port was full and its
    /// listener set to [`Overflow::Hold`](crate::Overflow::Hold).
    pub held_syns: u32,
}

impl<'a, D: Device, const N: usize> Stack<'a, D, N> {
    /// The peer of a connection (`None` for listeners, and once the
    /// connection is gone).
    pub fn peer_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        let i = self.socket_index(socket).ok()?;
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        s.remote_endpoint().map(SocketAddr::from)
    }

    /// The local address of a connection (`None` for listeners and for
    /// sockets not connected).
    pub fn local_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        let i = self.socket_index(socket).ok()?;
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        s.local_endpoint().map(SocketAddr::from)
    }

    /// smoltcp's TCP state of a socket (`None` for listener handles).
    pub fn socket_state(&self, socket: &TcpHandle) -> Option<TcpState> {
        let i = self.socket_index(socket).ok()?;
        Some(self.sockets.get::<tcp::Socket>(self.pool[i].handle).state())
    }

    /// Free room in a connection's TX buffer, in bytes (0 for listeners and
    /// connections that cannot send).
    pub fn send_capacity(&self, socket: &TcpHandle) -> usize {
        let Ok(i) = self.socket_index(socket) else {
            return 0;
        };
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        if s.may_send() {
            s.send_capacity() - s.send_queue()
        } else {
            0
        }
    }

    /// Bytes buffered for reading on a connection.
    pub fn recv_queue(&self, socket: &TcpHandle) -> usize {
        let Ok(i) = self.socket_index(socket) else {
            return 0;
        };
        self.sockets
            .get::<tcp::Socket>(self.pool[i].handle)
            .recv_queue()
    }

    /// How the pool's `N` sockets are used right now.
    pub fn pool_stats(&self) -> PoolStats {
        let mut st = PoolStats::default();
        for e in &self.pool {
            match e.role {
                Role::Free => st.free += 1,
                Role::Reserved { .. } => st.reserved += 1,
                Role::Listening { .. } => st.listening += 1,
                Role::Pending { .. } => st.pending += 1,
                Role::Open => st.open += 1,
                Role::Closing { .. } => st.closing += 1,
            }
        }
        st
    }

    /// Events counted since the stack was created.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What a socket is ready for now, for event loops that poll the server
    /// only when one of its [`interests`](tcpool_core::Server::interests) is
    /// ready: a listener is readable when it has an established connection
    /// to accept; a connection is readable when it has buffered input, has
    /// reached end of stream or failed, and writable when its TX buffer has
    /// room or it failed (so that the error is seen). Handshaking sockets
    /// are ready for nothing.
    pub fn ready(&self, socket: &TcpHandle) -> Interest {
        match socket.kind() {
            Kind::Listener(l) => Interest {
                readable: self.listener_ready(l),
                writable: false,
            },
            Kind::Socket(i) => match self.pool.get(i as usize) {
                Some(e) if e.role == Role::Open => self.connection_ready(i as usize),
                _ => Interest::NONE,
            },
        }
    }

    /// The pool size, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The stack's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The smoltcp interface (addresses, routes, ...).
    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    /// The smoltcp interface, mutably (e.g. to change addresses after DHCP).
    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The socket set, for sockets outside the pool (DHCP, DNS, UDP...).
    /// Do not remove or reconfigure the pool's sockets.
    pub fn sockets_mut(&mut self) -> &mut SocketSet<'a> {
        &mut self.sockets
    }
}
