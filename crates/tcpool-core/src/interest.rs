//! What the server is waiting for on each socket, so a backend can sleep
//! until something it cares about happens.

/// The readiness a server wants from one socket.
///
/// A server only asks for what it can act on: a full pool does not ask to
/// read its listener (a pending client would otherwise wake the loop for
/// ever), and a slot whose receive buffer is full does not ask to read.
/// Backends that can wait on sockets (poll(2), `lwip_select`) turn these into
/// their own event masks; see [`Server::interests`](crate::Server::interests).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Interest {
    /// Wake when the socket can be read (data, end of stream, an error, or for
    /// a listener, a connection to accept).
    pub readable: bool,
    /// Wake when the socket can take more output.
    pub writable: bool,
}

impl Interest {
    /// Interested in nothing.
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };
    /// Readable only.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    /// Writable only.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };

    /// True if neither readiness is wanted.
    pub const fn is_none(self) -> bool {
        !self.readable && !self.writable
    }
}
