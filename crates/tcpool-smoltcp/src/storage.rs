//! Caller-provided, heap-free memory for a [`Stack`](crate::Stack).

use smoltcp::iface::SocketStorage;

/// Memory for a pool of `N` TCP sockets with `RX`/`TX`-byte buffers each:
/// `N * (RX + TX)` bytes plus smoltcp's per-socket state, all sized at
/// compile time. Put it in a `static` (e.g. with `static_cell`) on firmware,
/// or on the stack of a long-lived task, and hand it to
/// [`Stack::new`](crate::Stack::new).
///
/// ```
/// use tcpool_smoltcp::StackStorage;
///
/// let storage: StackStorage<'_, 4, 1024, 1024> = StackStorage::new();
/// assert_eq!(StackStorage::<'static, 4, 1024, 1024>::BUFFER_BYTES, 8 * 1024);
/// # drop(storage);
/// ```
pub struct StackStorage<'a, const N: usize, const RX: usize, const TX: usize> {
    pub(crate) sockets: [SocketStorage<'a>; N],
    pub(crate) rx: [[u8; RX]; N],
    pub(crate) tx: [[u8; TX]; N],
}

impl<'a, const N: usize, const RX: usize, const TX: usize> StackStorage<'a, N, RX, TX> {
    /// Bytes of socket buffers: `N * (RX + TX)`.
    pub const BUFFER_BYTES: usize = N * (RX + TX);

    /// Zeroed storage. `N`, `RX` and `TX` must all be non-zero and `N` at most
    /// 65535 (checked at compile time).
    pub const fn new() -> Self {
        const {
            assert!(N > 0, "the pool needs at least one socket");
            assert!(N <= u16::MAX as usize, "at most 65535 sockets");
            assert!(RX > 0 && TX > 0, "socket buffers cannot be empty");
        }
        StackStorage {
            sockets: [SocketStorage::EMPTY; N],
            rx: [[0; RX]; N],
            tx: [[0; TX]; N],
        }
    }
}

impl<const N: usize, const RX: usize, const TX: usize> Default for StackStorage<'_, N, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}
