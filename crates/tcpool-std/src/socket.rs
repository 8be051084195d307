//! The TCP socket handle of [`StdStack`](crate::StdStack).

use crate::Error;
use socket2::Socket;
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::AtomicBool;

/// A TCP socket of [`StdStack`](crate::StdStack): what
/// `TcpClientStack::socket` returns and every other call takes.
///
/// It starts without an operating-system socket; `bind` + `listen` make it a
/// listener, `connect` or `accept` a connection. Dropping it closes it at
/// once (a plain `close(2)`); give it to the stack's `close` for a graceful,
/// lingering close, or to [`StdStack::abort`](crate::StdStack::abort) for a
/// reset.
pub struct TcpSocket {
    pub(crate) state: State,
    /// A `receive` reported the end of the stream: the peer's FIN came, and
    /// every byte before it has been read.
    pub(crate) peer_finished: bool,
    /// The socket is in the stack's epoll set (see `Backend::watch`).
    pub(crate) watched: AtomicBool,
}

/// Where a socket is in its life. Every operation matches on this.
pub(crate) enum State {
    /// Created by `socket()`, no OS socket yet.
    Unbound,
    /// `bind` done (options set, address bound), `listen` not yet.
    Bound(Socket),
    /// A listening socket, non-blocking.
    Listening(TcpListener),
    /// A non-blocking `connect` in progress to the address.
    Connecting(Socket, SocketAddr),
    /// An established connection (accepted or connected), non-blocking.
    Connected(TcpStream),
}

impl State {
    /// The state's name, for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            State::Unbound => "unbound",
            State::Bound(_) => "bound",
            State::Listening(_) => "listening",
            State::Connecting(..) => "connecting",
            State::Connected(_) => "connected",
        }
    }
}

impl TcpSocket {
    pub(crate) fn new() -> Self {
        TcpSocket {
            state: State::Unbound,
            peer_finished: false,
            watched: AtomicBool::new(false),
        }
    }

    pub(crate) fn connected(stream: TcpStream) -> Self {
        TcpSocket {
            state: State::Connected(stream),
            peer_finished: false,
            watched: AtomicBool::new(false),
        }
    }

    /// Notes that the socket is not in any epoll set (it has a new OS
    /// socket, or none).
    pub(crate) fn reset_watch(&self) {
        self.watched
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn invalid(&self, operation: &'static str) -> Error {
        Error::InvalidState {
            operation,
            state: self.state.name(),
        }
    }

    /// The operating-system socket, or `None` before `bind` or `connect`.
    ///
    /// For waiting on it with something other than
    /// [`StdStack::wait`](crate::StdStack::wait), or for reading and setting
    /// options with `socket2::SockRef::from(&fd)`.
    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.state {
            State::Unbound => None,
            State::Bound(s) | State::Connecting(s, _) => Some(s.as_fd()),
            State::Listening(l) => Some(l.as_fd()),
            State::Connected(c) => Some(c.as_fd()),
        }
    }

    /// The local address the socket is bound to (with the port the system
    /// chose, after binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        match &self.state {
            State::Unbound => Err(self.invalid("get the local address of")),
            State::Bound(s) | State::Connecting(s, _) => sock_addr(s.local_addr()?),
            State::Listening(l) => Ok(l.local_addr()?),
            State::Connected(c) => Ok(c.local_addr()?),
        }
    }

    /// The address of the peer of a connected socket.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        match &self.state {
            State::Connected(c) => Ok(canonical(c.peer_addr()?)),
            _ => Err(self.invalid("get the peer address of")),
        }
    }

    /// True once the socket is an established connection.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// True once the socket is listening.
    pub fn is_listening(&self) -> bool {
        matches!(self.state, State::Listening(_))
    }
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpSocket");
        d.field("state", &self.state.name());
        if let Some(fd) = self.as_fd() {
            d.field("fd", &fd);
        }
        d.finish()
    }
}

/// A socket2 address as a std one (always an IP address for TCP sockets).
pub(crate) fn sock_addr(addr: socket2::SockAddr) -> Result<SocketAddr, Error> {
    addr.as_socket().ok_or(Error::InvalidState {
        operation: "get an IP address of",
        state: "not an IP socket",
    })
}

/// An IPv4 peer of a dual-stack listener as plain IPv4 (`1.2.3.4`, not
/// `::ffff:1.2.3.4`), so allow-lists and per-IP limits see one form.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_peer_is_reported_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:4000".parse().unwrap();
        assert_eq!(canonical(mapped), "10.1.2.3:4000".parse().unwrap());
    }

    #[test]
    fn real_ipv6_peer_is_unchanged() {
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        // An IPv4-compatible address (deprecated ::a.b.c.d) is not a mapped one.
        let compat: SocketAddr = "[::10.1.2.3]:4000".parse().unwrap();
        assert_eq!(canonical(compat), compat);
    }

    #[test]
    fn new_socket_has_no_fd_and_no_address() {
        let s = TcpSocket::new();
        assert!(s.as_fd().is_none());
        assert!(matches!(
            s.local_addr(),
            Err(Error::InvalidState {
                state: "unbound",
                ..
            })
        ));
        assert_eq!(format!("{s:?}"), "TcpSocket { state: \"unbound\" }");
    }
}
