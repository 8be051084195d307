//! Handles and roles: what the application holds ([`TcpHandle`]) and what
//! the pool is doing with each of its sockets ([`Role`]).

use smoltcp::iface::SocketHandle;
use smoltcp::phy::Device;
use smoltcp::time::Instant as SmolInstant;
use tcpool_core::Interest;

use super::Stack;
use crate::config::ListenConfig;
use crate::error::Error;

/// A socket handed out by a [`Stack`]: the `embedded-nal` `TcpSocket` type.
///
/// It is deliberately neither `Clone` nor `Copy`: `close` and `abort`
/// consume it, so a handle can never outlive the pool socket it names.
/// `listen()` turns a socket handle into a listener handle in place.
///
/// Stored as a non-zero number so that `Option<TcpHandle>`'s `None` is zero
/// bytes: a server holding `Option`s of handles can live in `.bss`.
#[derive(Debug, PartialEq, Eq)]
pub struct TcpHandle(core::num::NonZeroU32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Index into the socket pool.
    Socket(u16),
    /// Index into the listener table.
    Listener(u16),
}

/// The listener bit of a [`TcpHandle`]'s number.
const LISTENER: u32 = 1 << 16;

impl TcpHandle {
    pub(super) fn new(kind: Kind) -> Self {
        let n = match kind {
            Kind::Socket(i) => u32::from(i),
            Kind::Listener(l) => LISTENER | u32::from(l),
        };
        TcpHandle(core::num::NonZeroU32::MIN.saturating_add(n))
    }

    pub(super) fn kind(&self) -> Kind {
        let n = self.0.get() - 1;
        let index = (n & 0xFFFF) as u16;
        if n & LISTENER != 0 {
            Kind::Listener(index)
        } else {
            Kind::Socket(index)
        }
    }

    /// Whether this handle is a listener (after `listen()`).
    pub fn is_listener(&self) -> bool {
        matches!(self.kind(), Kind::Listener(_))
    }
}

/// What the pool is doing with one socket. Every change goes through
/// [`Stack::set_role`], which logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Available. The smoltcp socket is CLOSED (without a pending RST) or in
    /// TIME-WAIT, which it may finish while it waits to be reused.
    Free,
    /// Handed out by `socket()`, not yet listening or connecting. `port` is
    /// the bound port (0: not bound).
    Reserved { port: u16 },
    /// Listening on behalf of a listener.
    Listening { listener: u16 },
    /// Caught a SYN for a listener; handshaking or established, waiting for
    /// `accept`. `arrival` orders accepts (first come, first served).
    Pending { listener: u16, arrival: u32 },
    /// Owned by the application (accepted, or an outgoing connection).
    Open,
    /// Given back by the application (`close` or `abort`), or let go of by
    /// the pool. Returns to [`Role::Free`] once smoltcp has finished with it
    /// (FIN exchanged or RST sent); reset if still closing at `deadline`.
    /// `drain`: discard the peer's input meanwhile (a lingering close).
    Closing {
        deadline: Option<SmolInstant>,
        drain: bool,
    },
}

impl Role {
    /// Closing with no deadline and nothing to drain: a socket reset (its
    /// RST still to go out) or left for smoltcp to finish with.
    pub(super) const RELEASING: Role = Role::Closing {
        deadline: None,
        drain: false,
    };

    fn name(&self) -> &'static str {
        match self {
            Role::Free => "free",
            Role::Reserved { .. } => "reserved",
            Role::Listening { .. } => "listening",
            Role::Pending { .. } => "pending",
            Role::Open => "open",
            Role::Closing { .. } => "closing",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) handle: SocketHandle,
    pub(super) role: Role,
    /// What a server watches this connection for ([`Role::Open`] only).
    pub(super) watch: Option<Watch>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Listener {
    pub(super) port: u16,
    pub(super) config: ListenConfig,
    /// Whether a server watches this listener, and its token.
    pub(super) watch: Option<Watch>,
}

/// A socket watched through `tcpool_core::Backend::watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Watch {
    /// Reported by `take_ready` when the socket is ready.
    pub(super) token: usize,
    /// What the socket is watched for.
    pub(super) interest: Interest,
    /// Found ready at the last check (or its watch just changed): checked
    /// again at the next one, and reported meanwhile.
    pub(super) marked: bool,
}

impl<D: Device, const N: usize> Stack<'_, D, N> {
    /// The one place where a pool socket changes role.
    pub(super) fn set_role(&mut self, i: usize, role: Role) {
        let old = self.pool[i].role;
        if old != role {
            trace!("pool socket {}: {} -> {}", i, old.name(), role.name());
        }
        self.pool[i].role = role;
        if role != Role::Open {
            // Only an application's connection is watched; a socket given
            // back ends its watch.
            self.pool[i].watch = None;
        }
    }

    pub(super) fn socket_index(&self, socket: &TcpHandle) -> Result<usize, Error> {
        match socket.kind() {
            Kind::Socket(i) if (i as usize) < N => Ok(i as usize),
            _ => Err(Error::InvalidState),
        }
    }

    /// Index of an application-owned connection.
    pub(super) fn open_index(&self, socket: &TcpHandle) -> Result<usize, Error> {
        let i = self.socket_index(socket)?;
        match self.pool[i].role {
            Role::Open => Ok(i),
            _ => Err(Error::InvalidState),
        }
    }
}
