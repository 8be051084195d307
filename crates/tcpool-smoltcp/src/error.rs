//! The stack's error type.

use embedded_nal::{TcpError, TcpErrorKind};

/// What went wrong in a [`Stack`](crate::Stack) operation.
///
/// `nb::Error::WouldBlock` is never an `Error`: "not yet" (no connection to
/// accept, no data buffered, TX buffer full, handshake in progress) is always
/// reported as `WouldBlock`, and end of stream as `Ok(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Every socket of the fixed pool is in use (connections, listeners and
    /// their backlog, sockets still closing). Retry after a connection has
    /// closed; nothing was changed.
    #[error("out of sockets: every socket of the pool is in use")]
    OutOfSockets,
    /// The connection was reset by the peer, aborted locally, or timed out
    /// (handshake timeout, or no answer to keep-alives within the timeout).
    /// Any data that arrived before the reset has been delivered first.
    #[error("connection reset")]
    ConnectionReset,
    /// An outgoing connection attempt failed: refused (RST) or no answer
    /// within the handshake timeout.
    #[error("connection refused or timed out")]
    ConnectionRefused,
    /// Another listener already uses this port.
    #[error("address in use")]
    AddressInUse,
    /// The address cannot be used: port 0 where a port is required, an
    /// address family this build does not support, or no local address to
    /// reach the destination.
    #[error("unaddressable endpoint")]
    Unaddressable,
    /// The operation does not apply to this handle in its current state
    /// (e.g. `accept` on a socket that is not listening, `send` on a
    /// listener, `bind` after `connect`).
    #[error("invalid state for this operation")]
    InvalidState,
    /// The device failed (e.g. waiting on a TAP's file descriptor).
    #[error("device error")]
    Device,
}

impl TcpError for Error {
    fn kind(&self) -> TcpErrorKind {
        match self {
            Error::ConnectionReset => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_is_pipe_closed_everything_else_is_other() {
        assert_eq!(Error::ConnectionReset.kind(), TcpErrorKind::PipeClosed);
        for e in [
            Error::OutOfSockets,
            Error::ConnectionRefused,
            Error::AddressInUse,
            Error::Unaddressable,
            Error::InvalidState,
            Error::Device,
        ] {
            assert_eq!(e.kind(), TcpErrorKind::Other);
        }
    }
}
