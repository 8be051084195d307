//! The error type of the TCP stack.

use embedded_nal::{TcpError, TcpErrorKind};
use std::io;

/// An error from [`StdStack`](crate::StdStack)'s TCP operations.
///
/// `WouldBlock` is never an `Error`: the `nb` methods return
/// [`nb::Error::WouldBlock`] for it. Everything else the operating system
/// reports is [`Error::Io`], so the original [`io::Error`] (and its OS error
/// code) is always reachable; [`Error::InvalidState`] is an operation asked of
/// a socket in the wrong state (for example `receive` on a listener).
///
/// [`TcpError::kind`] says [`TcpErrorKind::PipeClosed`] when the connection is
/// gone (`ECONNRESET`, `EPIPE`, `ECONNABORTED`, `ENOTCONN`) and
/// [`TcpErrorKind::Other`] for everything else, including `ETIMEDOUT` from a
/// keepalive or connect timeout (std-embedded-nal maps `TimedOut` to
/// `WouldBlock`, which would hide a dead peer for ever; this crate does not).
///
/// ```
/// use embedded_nal::{TcpError, TcpErrorKind};
/// use std::io;
/// use tcpool_std::Error;
///
/// let reset = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
/// assert_eq!(reset.kind(), TcpErrorKind::PipeClosed);
/// assert_eq!(reset.io_error().unwrap().kind(), io::ErrorKind::ConnectionReset);
///
/// let full = Error::from(io::Error::from(io::ErrorKind::OutOfMemory));
/// assert_eq!(full.kind(), TcpErrorKind::Other);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The operation is not valid in the socket's current state.
    #[error("cannot {operation} a socket that is {state}")]
    InvalidState {
        /// What was asked (`"accept"`, `"receive"`, ...).
        operation: &'static str,
        /// The state the socket was in (`"unbound"`, `"listening"`, ...).
        state: &'static str,
    },
}

impl Error {
    /// The underlying I/O error, if the operating system reported one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io(e) => Some(e),
            Error::InvalidState { .. } => None,
        }
    }

    /// True if the connection is gone ([`TcpErrorKind::PipeClosed`]).
    pub fn is_pipe_closed(&self) -> bool {
        self.kind() == TcpErrorKind::PipeClosed
    }
}

/// The classification used by [`TcpError::kind`], on its own so that it is
/// tested once.
pub(crate) fn kind_of(kind: io::ErrorKind) -> TcpErrorKind {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, NotConnected};
    match kind {
        ConnectionReset | BrokenPipe | ConnectionAborted | NotConnected => TcpErrorKind::PipeClosed,
        _ => TcpErrorKind::Other,
    }
}

impl TcpError for Error {
    fn kind(&self) -> TcpErrorKind {
        match self {
            Error::Io(e) => kind_of(e.kind()),
            Error::InvalidState { .. } => TcpErrorKind::Other,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            other @ Error::InvalidState { .. } => io::Error::other(other),
        }
    }
}

/// Turns an I/O result of a non-blocking call into an `nb` result:
/// `EWOULDBLOCK`/`EAGAIN` and `EINTR` become [`nb::Error::WouldBlock`] (the
/// caller retries once the socket is ready again), everything else an error.
pub(crate) fn to_nb(e: io::Error) -> nb::Error<Error> {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => nb::Error::WouldBlock,
        _ => nb::Error::Other(Error::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_gone_kinds_are_pipe_closed() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::NotConnected,
        ] {
            assert_eq!(kind_of(kind), TcpErrorKind::PipeClosed, "{kind:?}");
        }
    }

    #[test]
    fn other_kinds_are_other() {
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::AddrInUse,
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::OutOfMemory,
            io::ErrorKind::PermissionDenied,
        ] {
            assert_eq!(kind_of(kind), TcpErrorKind::Other, "{kind:?}");
        }
    }

    #[test]
    fn timed_out_is_an_error_not_would_block() {
        let r = to_nb(io::Error::from(io::ErrorKind::TimedOut));
        assert!(matches!(r, nb::Error::Other(Error::Io(_))));
    }

    #[test]
    fn would_block_and_interrupted_are_would_block() {
        assert!(matches!(
            to_nb(io::Error::from(io::ErrorKind::WouldBlock)),
            nb::Error::WouldBlock
        ));
        assert!(matches!(
            to_nb(io::Error::from(io::ErrorKind::Interrupted)),
            nb::Error::WouldBlock
        ));
    }

    #[test]
    fn invalid_state_displays_operation_and_state() {
        let e = Error::InvalidState {
            operation: "accept",
            state: "connected",
        };
        assert_eq!(e.to_string(), "cannot accept a socket that is connected");
        assert_eq!(e.kind(), TcpErrorKind::Other);
        assert!(e.io_error().is_none());
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::Other);
    }

    #[test]
    fn io_error_round_trips_with_its_os_code() {
        let e = Error::from(io::Error::from_raw_os_error(104));
        assert_eq!(e.io_error().unwrap().raw_os_error(), Some(104));
        let back: io::Error = e.into();
        assert_eq!(back.raw_os_error(), Some(104));
    }
}
