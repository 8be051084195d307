//! [`Socket`]: one lwIP TCP socket and the state it is in.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::config::Keepalive;
use crate::error::{Errno, Error};
use crate::ffi::{self, Fd};
use crate::fmt::trace;
use crate::sys;

/// Where a [`Socket`] is in its life.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SocketState {
    /// Counted against the budget, but no lwIP socket yet: one is created by
    /// `connect` or `bind`, with the address family they need.
    Unopened,
    /// Bound to a local port.
    Bound,
    /// Listening for connections.
    Listening,
    /// A non-blocking connect is in progress.
    Connecting,
    /// Connected (accepted, or a completed connect).
    Connected,
    /// The connect failed, or `receive` reported a reset: every further
    /// operation reports the same error (lwIP itself reports it only once,
    /// then `recv` would just block). A reset seen by `send` does not get
    /// here: what lwIP received before the reset is still to be read.
    Failed,
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketState::Unopened => "unopened",
            SocketState::Bound => "bound",
            SocketState::Listening => "listening",
            SocketState::Connecting => "connecting",
            SocketState::Connected => "connected",
            SocketState::Failed => "failed",
        })
    }
}

/// A TCP socket of an [`LwipStack`](crate::LwipStack): the
/// `TcpClientStack::TcpSocket` type.
///
/// Every lwIP socket behind it is non-blocking. Give it back with the
/// stack's `close` (or [`abort`](crate::LwipStack::abort)): that returns its
/// unit of the socket budget. A socket that is merely dropped is still
/// closed in lwIP, but its budget unit stays used for the life of the stack.
#[derive(Debug)]
#[must_use = "give sockets back with the stack's `close`, or their budget is not returned"]
pub struct Socket {
    fd: Option<Fd>,
    state: SocketState,
    peer: Option<SocketAddr>,
    last_errno: Option<Errno>,
}

impl Socket {
    pub(crate) fn unopened() -> Socket {
        Socket {
            fd: None,
            state: SocketState::Unopened,
            peer: None,
            last_errno: None,
        }
    }

    pub(crate) fn accepted(fd: Fd, peer: SocketAddr) -> Socket {
        trace!("lwip socket {}: accepted from {}", fd.raw(), peer);
        Socket {
            fd: Some(fd),
            state: SocketState::Connected,
            peer: Some(peer),
            last_errno: None,
        }
    }

    /// The one place the state changes (logged at trace level).
    pub(crate) fn set_state(&mut self, state: SocketState) {
        if self.state != state {
            trace!(
                "lwip socket {:?}: {} -> {}",
                self.fd.as_ref().map(Fd::raw),
                self.state,
                state
            );
            self.state = state;
        }
    }

    /// Takes the lwIP socket, for the stack to open it.
    pub(crate) fn set_fd(&mut self, fd: Fd) {
        self.fd = Some(fd);
    }

    pub(crate) fn take_fd(&mut self) -> Option<Fd> {
        self.fd.take()
    }

    pub(crate) fn fd(&self) -> Option<&Fd> {
        self.fd.as_ref()
    }

    pub(crate) fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = Some(peer);
    }

    /// Records `errno` as the latest one lwIP reported, and returns it.
    pub(crate) fn note(&mut self, errno: Errno) -> Errno {
        self.last_errno = Some(errno);
        errno
    }

    /// Marks the socket failed with `errno` and returns the error.
    pub(crate) fn fail(&mut self, errno: Errno) -> Error {
        self.note(errno);
        self.set_state(SocketState::Failed);
        Error::from_errno(errno)
    }

    /// The error a failed socket keeps reporting.
    pub(crate) fn failure(&self) -> Error {
        match self.last_errno {
            Some(e) => Error::from_errno(e),
            None => Error::InvalidState("socket failed"),
        }
    }

    /// The state the socket is in.
    pub fn state(&self) -> SocketState {
        self.state
    }

    /// The lwIP descriptor, once there is an lwIP socket (`54..64` with
    /// ESP-IDF's defaults).
    pub fn raw_fd(&self) -> Option<i32> {
        self.fd.as_ref().map(Fd::raw)
    }

    /// The peer's address, for accepted and connected sockets.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The local address (`lwip_getsockname`), once bound or connected; for
    /// a socket bound to port 0 this tells the port lwIP chose.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        let addr = ffi::local_addr(self.opened()?)?;
        sys::from_sockaddr(&addr).ok_or(Error::InvalidState("unknown address family"))
    }

    /// The errno of the last lwIP call on this socket that reported one
    /// (including those the stack maps to a result, such as `ENOTCONN` from
    /// a `recv` after end of stream).
    pub fn last_errno(&self) -> Option<Errno> {
        self.last_errno
    }

    /// Whether `TCP_NODELAY` is set, as lwIP reports it.
    pub fn nodelay(&self) -> Result<bool, Error> {
        let fd = self.opened()?;
        Ok(ffi::int_option(fd, sys::IPPROTO_TCP, sys::TCP_NODELAY)? != 0)
    }

    /// The keepalive settings as lwIP reports them (`None`: keepalive off).
    pub fn keepalive(&self) -> Result<Option<Keepalive>, Error> {
        let fd = self.opened()?;
        if ffi::int_option(fd, sys::SOL_SOCKET, sys::SO_KEEPALIVE)? == 0 {
            return Ok(None);
        }
        let get = |name| -> Result<u32, Error> {
            let v = ffi::int_option(fd, sys::IPPROTO_TCP, name)?;
            Ok(u32::try_from(v).unwrap_or(0))
        };
        Ok(Some(Keepalive {
            idle: Duration::from_secs(get(sys::TCP_KEEPIDLE)?.into()),
            interval: Duration::from_secs(get(sys::TCP_KEEPINTVL)?.into()),
            count: get(sys::TCP_KEEPCNT)?,
        }))
    }

    fn opened(&self) -> Result<&Fd, Error> {
        self.fd
            .as_ref()
            .ok_or(Error::InvalidState("socket not opened"))
    }

    /// Whether lwIP has `O_NONBLOCK` set on the socket (`lwip_fcntl(F_GETFL)`).
    /// Always true for sockets of this crate; here so that tests and
    /// diagnostics can check lwIP itself.
    pub fn is_nonblocking(&self) -> Result<bool, Error> {
        Ok(ffi::is_nonblocking(self.opened()?)?)
    }
}
