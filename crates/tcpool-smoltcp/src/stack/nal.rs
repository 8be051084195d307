//! The `embedded-nal` traits (`TcpClientStack`, `TcpFullStack`) and
//! tcpool's `Backend`, plus the stack's own `abort` and `shutdown_write`.

use core::net::{IpAddr, SocketAddr};
use core::ops::Range;

use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};
use tcpool_core::Interest;

use super::handle::{Kind, Role};
use super::time::to_smol_duration;
use super::{
    Stack, TcpHandle, TcpState, close_gracefully, is_reclaimable, set_established_timers,
    tcp_socket,
};
use crate::config::EPHEMERAL_FIRST;
use crate::error::Error;

impl<D: Device, const N: usize> Stack<'_, D, N> {
    /// Reset the connection (RST) and give the socket back: it returns to
    /// the pool as soon as the RST has been sent. On a listener: stop
    /// listening and reset the connections it still held (not accepted).
    pub fn abort(&mut self, socket: TcpHandle) -> Result<(), Error> {
        match socket.kind() {
            Kind::Listener(l) => self.remove_listener(l, true),
            Kind::Socket(i) => {
                let i = i as usize;
                match self.pool.get(i).map(|e| e.role) {
                    Some(Role::Reserved { .. }) => self.set_role(i, Role::Free),
                    Some(Role::Open) => {
                        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                        s.abort();
                        let reclaimable = is_reclaimable(s);
                        self.set_role(i, Role::RELEASING);
                        if reclaimable {
                            self.set_role(i, Role::Free);
                        }
                    }
                    _ => return Err(Error::InvalidState),
                }
                self.rearm();
                Ok(())
            }
        }
    }

    /// Half-close a connection: send a FIN once the TX buffer has drained,
    /// and keep receiving (`receive` reports the peer's data, then `Ok(0)`
    /// at its FIN). `close` or `abort` the handle afterwards as usual.
    /// `embedded-nal` has no shutdown; this is the `shutdown(SHUT_WR)` of
    /// this stack. [`Error::InvalidState`] while the handshake is running.
    pub fn shutdown_write(&mut self, socket: &TcpHandle) -> Result<(), Error> {
        let i = self.open_index(socket)?;
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        match s.state() {
            TcpState::SynSent | TcpState::SynReceived | TcpState::Listen => {
                Err(Error::InvalidState)
            }
            _ => {
                s.close();
                // No more sending: a watch for room to write is answered.
                self.mark(i);
                Ok(())
            }
        }
    }

    /// An ephemeral port no pool socket or listener uses.
    fn ephemeral_port(&mut self) -> u16 {
        for _ in 0..=(u16::MAX - EPHEMERAL_FIRST) {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            let in_use = self.listeners.iter().flatten().any(|l| l.port == p)
                || self.pool.iter().any(|e| {
                    let s = self.sockets.get::<tcp::Socket>(e.handle);
                    s.local_endpoint().is_some_and(|ep| ep.port == p)
                });
            if !in_use {
                return p;
            }
        }
        // Unreachable with fewer than 16384 sockets.
        self.next_port
    }
}

// ------------------------------------------------------------- embedded-nal

impl<D: Device, const N: usize> embedded_nal::TcpClientStack for Stack<'_, D, N> {
    type TcpSocket = TcpHandle;
    type Error = Error;

    /// Reserve a pool socket; [`Error::OutOfSockets`] when none is free.
    fn socket(&mut self) -> Result<TcpHandle, Error> {
        let Some(i) = self.free_index() else {
            return Err(Error::OutOfSockets);
        };
        self.set_role(i, Role::Reserved { port: 0 });
        Ok(TcpHandle::new(Kind::Socket(i as u16)))
    }

    /// Start (first call) or check an outgoing connection: `WouldBlock` while
    /// the handshake runs, `Ok(())` once established.
    fn connect(&mut self, socket: &mut TcpHandle, remote: SocketAddr) -> nb::Result<(), Error> {
        let i = self.socket_index(socket)?;
        let remote_ep = to_endpoint(remote)?;
        match self.pool[i].role {
            Role::Reserved { port } => {
                let local_port = if port == 0 {
                    self.ephemeral_port()
                } else {
                    port
                };
                let handshake = to_smol_duration(self.config.handshake_timeout);
                let keepalive = self.config.effective_keepalive().map(to_smol_duration);
                let nagle = !self.config.nodelay;
                let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                s.set_timeout(Some(handshake));
                s.set_keep_alive(keepalive);
                s.set_nagle_enabled(nagle);
                s.connect(self.iface.context(), remote_ep, local_port)
                    .map_err(|e| match e {
                        tcp::ConnectError::Unaddressable => Error::Unaddressable,
                        tcp::ConnectError::InvalidState => Error::InvalidState,
                    })?;
                self.set_role(i, Role::Open);
                Err(nb::Error::WouldBlock)
            }
            Role::Open => {
                let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                match s.state() {
                    TcpState::SynSent | TcpState::SynReceived => Err(nb::Error::WouldBlock),
                    TcpState::Closed => Err(nb::Error::Other(Error::ConnectionRefused)),
                    _ if s.remote_endpoint() == Some(remote_ep) => Ok(()),
                    _ => Err(nb::Error::Other(Error::InvalidState)),
                }
            }
            _ => Err(nb::Error::Other(Error::InvalidState)),
        }
    }

    /// Queue bytes for sending: `WouldBlock` when the TX buffer is full.
    fn send(&mut self, socket: &mut TcpHandle, buffer: &[u8]) -> nb::Result<usize, Error> {
        let i = self.open_index(socket)?;
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        match s.state() {
            TcpState::SynSent | TcpState::SynReceived => return Err(nb::Error::WouldBlock),
            TcpState::Closed => return Err(nb::Error::Other(Error::ConnectionReset)),
            _ => {}
        }
        match s.send_slice(buffer) {
            Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) => Err(nb::Error::Other(Error::InvalidState)),
        }
    }

    /// Read buffered bytes: `WouldBlock` when none, `Ok(0)` only at end of
    /// stream (peer's FIN received and everything before it read).
    fn receive(&mut self, socket: &mut TcpHandle, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        let i = self.open_index(socket)?;
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        match s.recv_slice(buffer) {
            // Nothing buffered yet (smoltcp reports end of stream as
            // `Finished`, never as an empty read).
            Ok(0) => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(tcp::RecvError::InvalidState) => match s.state() {
                TcpState::SynSent | TcpState::SynReceived | TcpState::Listen => {
                    Err(nb::Error::WouldBlock)
                }
                _ => Err(nb::Error::Other(Error::ConnectionReset)),
            },
        }
    }

    /// Graceful close (FIN after the TX buffer drains), or stop a listener.
    /// The pool socket returns to the pool only once the close has completed.
    fn close(&mut self, socket: TcpHandle) -> Result<(), Error> {
        match socket.kind() {
            Kind::Listener(l) => self.remove_listener(l, false),
            Kind::Socket(i) => {
                let i = i as usize;
                match self.pool.get(i).map(|e| e.role) {
                    Some(Role::Reserved { .. }) => self.set_role(i, Role::Free),
                    Some(Role::Open) => {
                        let lingering = self.lingering_close();
                        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                        close_gracefully(s);
                        let reclaimable = is_reclaimable(s);
                        self.set_role(i, lingering);
                        if reclaimable {
                            self.set_role(i, Role::Free);
                        }
                    }
                    _ => return Err(Error::InvalidState),
                }
                self.rearm();
                Ok(())
            }
        }
    }
}

impl<D: Device, const N: usize> tcpool_core::Backend for Stack<'_, D, N> {
    /// [`Stack::abort`]: the peer gets a reset.
    fn abort(&mut self, socket: TcpHandle) -> Result<(), Error> {
        Stack::abort(self, socket)
    }

    fn local_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        Stack::local_addr(self, socket)
    }

    /// Always: readiness is read from smoltcp's socket state, in process,
    /// so a server on this stack services only the sockets that can make
    /// progress (see [`Stack::watched_ready`] for event loops).
    fn reports_ready(&self) -> bool {
        true
    }

    /// Keeps the watch beside the socket (fixed memory). A listener is
    /// ready when it holds a connection that has completed its handshake;
    /// a connection as [`Stack::ready`] says, and always once it has
    /// failed. [`Error::InvalidState`] for a handle that is neither a
    /// listener nor a connection the application owns.
    fn watch(&mut self, socket: &TcpHandle, token: usize, interest: Interest) -> Result<(), Error> {
        self.set_watch(socket, token, interest)
    }

    /// Checks the watched sockets that a stack poll may have changed, or
    /// that were ready at the last check, or whose watch changed since;
    /// nothing else (see [`Stack::watched_ready`]).
    fn take_ready(&mut self, tokens: Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.check_ready(&mut |token| {
            if tokens.contains(&token) {
                ready(token);
            }
        });
    }
}

impl<D: Device, const N: usize> embedded_nal::TcpFullStack for Stack<'_, D, N> {
    /// Set the local port of a socket from `socket()` (before `listen` or
    /// `connect`).
    fn bind(&mut self, socket: &mut TcpHandle, local_port: u16) -> Result<(), Error> {
        let i = self.socket_index(socket)?;
        match self.pool[i].role {
            Role::Reserved { .. } => {
                self.set_role(i, Role::Reserved { port: local_port });
                Ok(())
            }
            _ => Err(Error::InvalidState),
        }
    }

    /// Turn a bound socket into a listener with [`Config::listen`](crate::Config::listen)'s backlog.
    fn listen(&mut self, socket: &mut TcpHandle) -> Result<(), Error> {
        let config = self.config.listen;
        self.listen_with(socket, config)
    }

    /// Hand over the oldest established connection of this listener.
    fn accept(&mut self, socket: &mut TcpHandle) -> nb::Result<(TcpHandle, SocketAddr), Error> {
        let Kind::Listener(l) = socket.kind() else {
            return Err(nb::Error::Other(Error::InvalidState));
        };
        if self.listeners.get(l as usize).copied().flatten().is_none() {
            return Err(nb::Error::Other(Error::InvalidState));
        }
        let Some(i) = self.oldest_established(l) else {
            return Err(nb::Error::WouldBlock);
        };
        let timeout = self.config.timeout.map(to_smol_duration);
        let keepalive = self.config.effective_keepalive().map(to_smol_duration);
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        set_established_timers(s, timeout, keepalive);
        let Some(peer) = s.remote_endpoint() else {
            return Err(nb::Error::WouldBlock);
        };
        self.set_role(i, Role::Open);
        self.counters.accepted = self.counters.accepted.wrapping_add(1);
        self.rearm();
        Ok((
            TcpHandle::new(Kind::Socket(i as u16)),
            SocketAddr::from(peer),
        ))
    }
}

fn to_endpoint(addr: SocketAddr) -> Result<IpEndpoint, Error> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        #[cfg(feature = "ipv6")]
        IpAddr::V6(a) => IpAddress::Ipv6(a),
        #[cfg(not(feature = "ipv6"))]
        IpAddr::V6(_) => return Err(Error::Unaddressable),
    };
    if addr.port() == 0 || ip.is_unspecified() {
        return Err(Error::Unaddressable);
    }
    Ok(IpEndpoint::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_reject_port_zero_and_unspecified() {
        let ok: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(to_endpoint(ok).is_ok());
        assert_eq!(
            to_endpoint("10.0.0.1:0".parse().unwrap()),
            Err(Error::Unaddressable)
        );
        assert_eq!(
            to_endpoint("0.0.0.0:80".parse().unwrap()),
            Err(Error::Unaddressable)
        );
    }
}
