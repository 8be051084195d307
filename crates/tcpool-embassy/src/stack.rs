//! [`PoolStack`]: the `embedded-nal` view of a [`Pool`] that a tcpool
//! `Server` runs on, with the waker its `WouldBlock` answers register.

use core::net::SocketAddr;
use core::task::{Context, Waker};

use tcpool_core::{AsyncBackend, Backend, Instant, Interest};

use crate::error::Error;
use crate::pool::{Pool, TcpHandle};

/// An `embedded-nal` [`TcpFullStack`](embedded_nal::TcpFullStack) over a
/// [`Pool`] (see there for the semantics), and the
/// [`AsyncBackend`] of tcpool's async driver: every call that answers
/// `WouldBlock` registers the waker given last to
/// [`register_waker`](AsyncBackend::register_waker) (before that, none:
/// an nb loop that polls on its own needs no waker).
///
/// Several `PoolStack`s over one pool may exist at once (one per task).
pub struct PoolStack<'p, 'd, const N: usize> {
    pool: &'p Pool<'d, N>,
    waker: Option<Waker>,
}

impl<'p, 'd, const N: usize> PoolStack<'p, 'd, N> {
    pub(crate) fn new(pool: &'p Pool<'d, N>) -> Self {
        PoolStack { pool, waker: None }
    }

    /// The pool this stack draws its sockets from.
    pub fn pool(&self) -> &'p Pool<'d, N> {
        self.pool
    }

    #[inline]
    fn with<R>(
        &mut self,
        f: impl FnOnce(&mut crate::pool::Inner<'d, N>, &crate::SynHold, &mut Context<'_>) -> R,
    ) -> R {
        let mut cx = Context::from_waker(self.waker());
        self.pool.with(|inner, hold| f(inner, hold, &mut cx))
    }

    /// The waker `WouldBlock` answers register (none before one is given).
    #[inline(always)]
    fn waker(&self) -> &Waker {
        self.waker.as_ref().unwrap_or(Waker::noop())
    }
}

impl<const N: usize> embedded_nal::TcpClientStack for PoolStack<'_, '_, N> {
    type TcpSocket = TcpHandle;
    type Error = Error;

    /// Takes a socket from the budget; [`Error::OutOfSockets`] when none is
    /// free.
    fn socket(&mut self) -> Result<TcpHandle, Error> {
        self.with(|inner, _, _| inner.socket())
    }

    /// Starts (first call) or checks an outgoing connection: `WouldBlock`
    /// while the handshake runs, `Ok(())` once established,
    /// [`Error::ConnectionRefused`] if refused or timed out.
    fn connect(&mut self, socket: &mut TcpHandle, remote: SocketAddr) -> nb::Result<(), Error> {
        self.with(|inner, _, cx| inner.connect(socket, remote, cx))
    }

    /// Queues bytes: `WouldBlock` when the transmit buffer is full.
    #[inline(always)]
    fn send(&mut self, socket: &mut TcpHandle, buffer: &[u8]) -> nb::Result<usize, Error> {
        // Not through `with`: the async tasks' hot path, kept free of a
        // call.
        let mut cx = Context::from_waker(self.waker());
        self.pool.inner().send(socket, buffer, &mut cx)
    }

    /// Reads buffered bytes: `WouldBlock` when none, `Ok(0)` only at the end
    /// of stream.
    #[inline(always)]
    fn receive(&mut self, socket: &mut TcpHandle, buffer: &mut [u8]) -> nb::Result<usize, Error> {
        // Not through `with`, as `send`.
        let mut cx = Context::from_waker(self.waker());
        self.pool.inner().receive(socket, buffer, &mut cx)
    }

    /// Lingering close of a connection (see [`Pool`]), or stops a listener.
    fn close(&mut self, socket: TcpHandle) -> Result<(), Error> {
        self.with(|inner, hold, _| inner.close(socket, hold))
    }
}

impl<const N: usize> embedded_nal::TcpFullStack for PoolStack<'_, '_, N> {
    /// Sets the port a socket from `socket()` will listen on.
    fn bind(&mut self, socket: &mut TcpHandle, local_port: u16) -> Result<(), Error> {
        self.with(|inner, _, _| inner.bind(socket, local_port))
    }

    /// Turns a bound socket into a listener with the pool's
    /// [`ListenConfig`](crate::ListenConfig).
    fn listen(&mut self, socket: &mut TcpHandle) -> Result<(), Error> {
        self.with(|inner, hold, cx| inner.listen(socket, hold, cx))
    }

    /// Hands over the oldest established connection of this listener, with
    /// the peer's address.
    fn accept(&mut self, socket: &mut TcpHandle) -> nb::Result<(TcpHandle, SocketAddr), Error> {
        self.with(|inner, hold, cx| inner.accept(socket, hold, cx))
    }
}

impl<const N: usize> Backend for PoolStack<'_, '_, N> {
    /// Resets the connection (RST), discarding queued output; on a listener,
    /// stops listening.
    fn abort(&mut self, socket: TcpHandle) -> Result<(), Error> {
        self.with(|inner, hold, _| inner.abort(socket, hold))
    }

    fn local_addr(&self, socket: &TcpHandle) -> Option<SocketAddr> {
        self.pool.local_addr(socket)
    }
}

impl<const N: usize> AsyncBackend for PoolStack<'_, '_, N> {
    fn register_waker(&mut self, waker: &Waker) {
        match &mut self.waker {
            Some(w) => w.clone_from(waker),
            None => self.waker = Some(waker.clone()),
        }
    }

    fn register_interest(&mut self, socket: &TcpHandle, interest: Interest) -> bool {
        self.with(|inner, _, cx| inner.register_interest(socket, interest, cx))
    }

    /// Another `PoolStack` over the same pool (with no waker until one is
    /// registered).
    fn share(&self) -> Option<Self> {
        Some(PoolStack::new(self.pool))
    }

    /// Re-arms listeners, hands caught SYNs to the pending set, drains and
    /// reclaims closing sockets. The deadline returned is the nearest end of
    /// a lingering close, on embassy-time's clock (the one
    /// [`EmbassyClock`](crate::EmbassyClock) reads).
    fn poll_backend(&mut self, _now: Instant) -> Option<Instant> {
        self.with(|inner, hold, cx| inner.maintain(cx, hold))
            .map(|t| Instant::from_millis(t.as_millis().saturating_add(1)))
    }

    /// No listening socket has caught a SYN, none waits to be accepted or
    /// closes, and no role changed since the last maintenance (a pool
    /// borrowed elsewhere is not quiet).
    fn quiet(&self) -> bool {
        self.pool.quiet()
    }
}
