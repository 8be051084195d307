//! The backend's error type.

use embedded_nal::{TcpError, TcpErrorKind};

/// What went wrong in an operation of a [`Pool`](crate::Pool).
///
/// `nb::Error::WouldBlock` is never an `Error`: "not yet" (no connection to
/// accept, no data buffered, transmit buffer full, handshake in progress) is
/// always `WouldBlock` (or a pending future), and end of stream is `Ok(0)`.
/// A full pool is [`Error::OutOfSockets`], never a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Every socket of the budget is in use (connections in either
    /// direction, listeners and their backlog, sockets still closing).
    /// Nothing was changed; retry after a connection has closed.
    #[error("out of sockets: every socket of the budget is in use")]
    OutOfSockets,
    /// The connection was reset by the peer, aborted, or timed out. Data
    /// that arrived before the reset is delivered first.
    #[error("connection reset")]
    ConnectionReset,
    /// An outgoing connection was refused (RST) or got no answer within the
    /// handshake timeout.
    #[error("connection refused or timed out")]
    ConnectionRefused,
    /// Another listener already uses this port.
    #[error("address in use")]
    AddressInUse,
    /// Port 0 where a port is required, an address family this build does
    /// not support, or no route to the destination.
    #[error("unaddressable endpoint")]
    Unaddressable,
    /// More listeners than the pool (or the SYN guard,
    /// [`MAX_HELD_PORTS`](crate::MAX_HELD_PORTS)) can hold.
    #[error("too many listeners")]
    TooManyListeners,
    /// The operation does not apply to this handle in its current state
    /// (`accept` on a socket that is not listening, `send` on a listener,
    /// `bind` after `connect`, a handle of another pool).
    #[error("invalid state for this operation")]
    InvalidState,
}

impl TcpError for Error {
    fn kind(&self) -> TcpErrorKind {
        match self {
            Error::ConnectionReset => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

impl embedded_io_async::Error for Error {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        use embedded_io_async::ErrorKind;
        match self {
            Error::OutOfSockets => ErrorKind::OutOfMemory,
            Error::ConnectionReset => ErrorKind::ConnectionReset,
            Error::ConnectionRefused => ErrorKind::ConnectionRefused,
            Error::AddressInUse => ErrorKind::AddrInUse,
            Error::Unaddressable => ErrorKind::AddrNotAvailable,
            Error::TooManyListeners => ErrorKind::OutOfMemory,
            Error::InvalidState => ErrorKind::InvalidInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_is_not_a_reset() {
        assert_eq!(
            TcpError::kind(&Error::ConnectionReset),
            TcpErrorKind::PipeClosed
        );
        assert_eq!(TcpError::kind(&Error::OutOfSockets), TcpErrorKind::Other);
        assert_eq!(
            embedded_io_async::Error::kind(&Error::OutOfSockets),
            embedded_io_async::ErrorKind::OutOfMemory
        );
    }
}
