//! Outgoing connections from the pool's budget:
//! [`embedded_nal_async::TcpConnect`] for [`Pool`].

use core::future::poll_fn;
use core::net::SocketAddr;
use core::task::Poll;

use embedded_nal_async::TcpConnect;

use crate::error::Error;
use crate::pool::{Kind, Pool, TcpHandle};

/// An outgoing connection of a [`Pool`]: `embedded-io-async` `Read` and
/// `Write`. Dropping it closes it with the pool's lingering close: queued
/// output is still delivered (never discarded), and the socket returns to
/// the budget once it has been.
pub struct Connection<'p, 'd, const N: usize> {
    pool: &'p Pool<'d, N>,
    index: usize,
}

impl<const N: usize> core::fmt::Debug for Connection<'_, '_, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.index)
            .finish()
    }
}

impl<const N: usize> Connection<'_, '_, N> {
    fn handle(&self) -> TcpHandle {
        TcpHandle(Kind::Socket(self.index as u16))
    }
}

impl<const N: usize> Drop for Connection<'_, '_, N> {
    fn drop(&mut self) {
        let index = self.index;
        // Established: a lingering close; still handshaking: a reset.
        let _ = self.pool.with(|inner, _| inner.close_index(index));
    }
}

/// Outgoing connections drawn from the same budget as the server's
/// listeners and connections: a full budget is [`Error::OutOfSockets`]
/// at once (not a reset), and [`Pool::stats`] counts them as `outgoing`.
///
/// ```text
/// let mut cloud = pool.connect(addr).await?; // embedded_nal_async::TcpConnect
/// cloud.write_all(b"hello").await?;
/// ```
impl<'d, const N: usize> TcpConnect for Pool<'d, N> {
    type Error = Error;
    type Connection<'a>
        = Connection<'a, 'd, N>
    where
        Self: 'a;

    async fn connect<'a>(&'a self, remote: SocketAddr) -> Result<Connection<'a, 'd, N>, Error> {
        let handle = self.with(|inner, _| inner.socket())?;
        let TcpHandle(Kind::Socket(index)) = handle else {
            return Err(Error::InvalidState);
        };
        // From here on, dropping `conn` (this future cancelled, or a failed
        // handshake) gives the socket back.
        let conn = Connection {
            pool: self,
            index: usize::from(index),
        };
        poll_fn(|cx| {
            let handle = conn.handle();
            match self.with(|inner, _| inner.connect(&handle, remote, cx)) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(nb::Error::WouldBlock) => Poll::Pending,
                Err(nb::Error::Other(e)) => Poll::Ready(Err(e)),
            }
        })
        .await?;
        Ok(conn)
    }
}

impl<const N: usize> embedded_io_async::ErrorType for Connection<'_, '_, N> {
    type Error = Error;
}

impl<const N: usize> embedded_io_async::Read for Connection<'_, '_, N> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let handle = self.handle();
            match self.pool.with(|inner, _| inner.receive(&handle, buf, cx)) {
                Ok(n) => Poll::Ready(Ok(n)),
                Err(nb::Error::WouldBlock) => Poll::Pending,
                Err(nb::Error::Other(e)) => Poll::Ready(Err(e)),
            }
        })
        .await
    }
}

impl<const N: usize> embedded_io_async::Write for Connection<'_, '_, N> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let handle = self.handle();
            match self.pool.with(|inner, _| inner.send(&handle, buf, cx)) {
                Ok(n) => Poll::Ready(Ok(n)),
                Err(nb::Error::WouldBlock) => Poll::Pending,
                Err(nb::Error::Other(e)) => Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// Waits until everything written has been acknowledged by the peer.
    async fn flush(&mut self) -> Result<(), Error> {
        let index = self.index;
        poll_fn(|cx| self.pool.with(|inner, _| inner.poll_flush(index, cx))).await
    }
}
