//! Errors: the errno lwIP reported ([`Errno`]) and what it means for the
//! caller ([`Error`]).

use core::fmt;

use embedded_nal::{TcpError, TcpErrorKind};

use crate::sys;

/// An errno value as lwIP set it.
///
/// The numbers are the target's: newlib's on ESP-IDF, the host C library's
/// for the host lwIP build. The associated constants name the ones lwIP's
/// socket layer produces, with the right value for the target compiled for.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Errno(pub i32);

impl Errno {
    /// Operation would block (`EWOULDBLOCK`, the same as `EAGAIN` on both
    /// targets).
    pub const EWOULDBLOCK: Errno = Errno(sys::EWOULDBLOCK);
    /// A non-blocking connect was started.
    pub const EINPROGRESS: Errno = Errno(sys::EINPROGRESS);
    /// A non-blocking connect is still in progress.
    pub const EALREADY: Errno = Errno(sys::EALREADY);
    /// Already connected.
    pub const EISCONN: Errno = Errno(sys::EISCONN);
    /// Not connected; also what lwIP's `recv` returns when called again after
    /// it has reported end of stream.
    pub const ENOTCONN: Errno = Errno(sys::ENOTCONN);
    /// Connection reset by the peer (lwIP also reports a refused connect this
    /// way).
    pub const ECONNRESET: Errno = Errno(sys::ECONNRESET);
    /// Connection aborted: from `accept`, lwIP could not allocate what a
    /// pending connection needed and dropped it.
    pub const ECONNABORTED: Errno = Errno(sys::ECONNABORTED);
    /// Broken pipe.
    pub const EPIPE: Errno = Errno(sys::EPIPE);
    /// lwIP's socket table is full (`socket`, `accept`).
    pub const ENFILE: Errno = Errno(sys::ENFILE);
    /// Too many open files.
    pub const EMFILE: Errno = Errno(sys::EMFILE);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(sys::ENOMEM);
    /// Out of buffers.
    pub const ENOBUFS: Errno = Errno(sys::ENOBUFS);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(sys::EINVAL);
    /// Not a valid socket.
    pub const EBADF: Errno = Errno(sys::EBADF);
    /// Address in use.
    pub const EADDRINUSE: Errno = Errno(sys::EADDRINUSE);
    /// Socket option not supported by this lwIP build.
    pub const ENOPROTOOPT: Errno = Errno(sys::ENOPROTOOPT);
    /// Host unreachable (no route).
    pub const EHOSTUNREACH: Errno = Errno(sys::EHOSTUNREACH);
    /// I/O error (lwIP's catch-all, e.g. for an illegal argument).
    pub const EIO: Errno = Errno(sys::EIO);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(sys::EOPNOTSUPP);
    /// Function not implemented in this lwIP build.
    pub const ENOSYS: Errno = Errno(sys::ENOSYS);

    /// The symbolic name, if this is one of the values lwIP's socket layer
    /// produces.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: &[(Errno, &str)] = &[
            (Errno::EWOULDBLOCK, "EWOULDBLOCK"),
            (Errno::EINPROGRESS, "EINPROGRESS"),
            (Errno::EALREADY, "EALREADY"),
            (Errno::EISCONN, "EISCONN"),
            (Errno::ENOTCONN, "ENOTCONN"),
            (Errno::ECONNRESET, "ECONNRESET"),
            (Errno::ECONNABORTED, "ECONNABORTED"),
            (Errno::EPIPE, "EPIPE"),
            (Errno::ENFILE, "ENFILE"),
            (Errno::EMFILE, "EMFILE"),
            (Errno::ENOMEM, "ENOMEM"),
            (Errno::ENOBUFS, "ENOBUFS"),
            (Errno::EINVAL, "EINVAL"),
            (Errno::EBADF, "EBADF"),
            (Errno::EADDRINUSE, "EADDRINUSE"),
            (Errno::ENOPROTOOPT, "ENOPROTOOPT"),
            (Errno::EHOSTUNREACH, "EHOSTUNREACH"),
            (Errno::EIO, "EIO"),
            (Errno::EOPNOTSUPP, "EOPNOTSUPP"),
            (Errno::ENOSYS, "ENOSYS"),
        ];
        NAMES.iter().find(|(e, _)| *e == self).map(|(_, n)| *n)
    }

    /// True for "try again later": `EWOULDBLOCK` / `EAGAIN`.
    pub(crate) fn is_would_block(self) -> bool {
        self.0 == sys::EWOULDBLOCK || self.0 == sys::EAGAIN
    }

    /// True for the errors that mean the connection is gone.
    pub(crate) fn is_connection_lost(self) -> bool {
        [
            sys::ECONNRESET,
            sys::ECONNABORTED,
            sys::EPIPE,
            sys::ENOTCONN,
        ]
        .contains(&self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// What went wrong in a call into lwIP.
///
/// `WouldBlock` is never an error: operations that can block return
/// `nb::Error::WouldBlock`.
#[derive(Copy, Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// No socket to be had: either this stack's socket budget is used up
    /// (`errno` is `None`: lwIP was not asked), or lwIP's socket table is
    /// full (`ENFILE`; from `accept` also `ECONNABORTED`: lwIP could not
    /// allocate a pending connection and dropped it). Temporary: retry after
    /// a socket has been closed.
    #[error("out of sockets{}", match .errno { Some(_) => " (lwIP's socket table is full)", None => " (socket budget used up)" })]
    OutOfSockets {
        /// What lwIP reported, or `None` if the budget refused before asking
        /// lwIP.
        errno: Option<Errno>,
    },
    /// lwIP is out of memory (`ENOMEM`, `ENOBUFS`). Temporary.
    #[error("lwIP out of memory: {0}")]
    OutOfMemory(Errno),
    /// The connection is gone: reset by the peer, aborted, or (for `send`)
    /// closed (`ECONNRESET`, `ECONNABORTED`, `EPIPE`, `ENOTCONN`).
    #[error("connection lost: {0}")]
    ConnectionLost(Errno),
    /// The local address is already in use (`EADDRINUSE`).
    #[error("address in use: {0}")]
    AddressInUse(Errno),
    /// The operation does not fit the socket's state (for example `send` on a
    /// socket that is not connected, or `listen` before `bind`).
    #[error("invalid socket state: {0}")]
    InvalidState(&'static str),
    /// Any other error lwIP reported.
    #[error("lwIP error: {0}")]
    Lwip(Errno),
}

impl Error {
    /// The errno behind this error, if lwIP reported one.
    pub fn errno(&self) -> Option<Errno> {
        match *self {
            Error::OutOfSockets { errno } => errno,
            Error::OutOfMemory(e)
            | Error::ConnectionLost(e)
            | Error::AddressInUse(e)
            | Error::Lwip(e) => Some(e),
            Error::InvalidState(_) => None,
        }
    }

    /// True for [`Error::OutOfSockets`].
    pub fn is_out_of_sockets(&self) -> bool {
        matches!(self, Error::OutOfSockets { .. })
    }

    /// Classifies an errno from any call (connection-level errors first).
    pub(crate) fn from_errno(e: Errno) -> Error {
        match e.0 {
            x if x == sys::ENFILE || x == sys::EMFILE => Error::OutOfSockets { errno: Some(e) },
            x if x == sys::ENOMEM || x == sys::ENOBUFS => Error::OutOfMemory(e),
            x if x == sys::EADDRINUSE => Error::AddressInUse(e),
            _ if e.is_connection_lost() => Error::ConnectionLost(e),
            _ => Error::Lwip(e),
        }
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Error {
        Error::from_errno(e)
    }
}

impl TcpError for Error {
    fn kind(&self) -> TcpErrorKind {
        match self {
            Error::ConnectionLost(_) => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    /// On both targets lwIP's errno values are the C library's, so they map
    /// onto `std::io::Error` as OS errors.
    fn from(e: Error) -> std::io::Error {
        match e.errno() {
            Some(errno) => std::io::Error::from_raw_os_error(errno.0),
            None => std::io::Error::other(e),
        }
    }
}
