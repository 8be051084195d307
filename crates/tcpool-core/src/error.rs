//! Error types, one small enum per operation.

use thiserror::Error;

/// [`Server::listen`](crate::Server::listen) failed. `E` is the stack's error.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ListenError<E: core::fmt::Debug> {
    /// The server already has a listening socket; call
    /// [`Server::shutdown`](crate::Server::shutdown) first.
    #[error("the server is already listening")]
    AlreadyListening,
    /// The stack could not create a socket (often: out of sockets).
    #[error("the stack could not create a socket: {0:?}")]
    Socket(E),
    /// Binding the port failed (often: the port is in use).
    #[error("binding the port failed: {0:?}")]
    Bind(E),
    /// Putting the socket into the listening state failed.
    #[error("listening failed: {0:?}")]
    Listen(E),
}

/// A write to a connection could not be queued.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WriteError {
    /// The transmit buffer has no room for all of it; nothing was queued.
    /// Wait for [`Handler::on_writable`](crate::Handler::on_writable).
    #[error("the transmit buffer is full")]
    Full,
    /// The connection is closing or aborted; output is no longer accepted.
    #[error("the connection is closing")]
    Closing,
}

impl embedded_io::Error for WriteError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            WriteError::Full => embedded_io::ErrorKind::OutOfMemory,
            WriteError::Closing => embedded_io::ErrorKind::NotConnected,
        }
    }
}

/// Input that breaks a framing rule. The connection that sent it should be
/// closed with [`CloseReason::Protocol`](crate::CloseReason::Protocol).
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FrameError {
    /// A line is longer than the limit (its terminator not counted).
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// A length-prefixed frame announces more bytes than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
