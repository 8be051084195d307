//! Caller-provided, heap-free buffers for a [`Pool`](crate::Pool).

/// Buffers for a pool of `N` TCP sockets with `RX`/`TX`-byte buffers each:
/// `N * (RX + TX)` bytes, zero-valid, so a `static` of it lands in `.bss`.
///
/// ```
/// use tcpool_embassy::Storage;
///
/// static mut _UNUSED: Storage<4, 1024, 1024> = Storage::new();
/// assert_eq!(Storage::<4, 1024, 1024>::BUFFER_BYTES, 8 * 1024);
/// ```
pub struct Storage<const N: usize, const RX: usize, const TX: usize> {
    pub(crate) rx: [[u8; RX]; N],
    pub(crate) tx: [[u8; TX]; N],
}

impl<const N: usize, const RX: usize, const TX: usize> Storage<N, RX, TX> {
    /// Bytes of socket buffers: `N * (RX + TX)`.
    pub const BUFFER_BYTES: usize = N * (RX + TX);

    /// Zeroed buffers. `N`, `RX` and `TX` must be non-zero and `N` at most
    /// 65535 (checked at compile time).
    pub const fn new() -> Self {
        const {
            assert!(N > 0, "the pool needs at least one socket");
            assert!(N <= u16::MAX as usize, "at most 65535 sockets");
            assert!(RX > 0 && TX > 0, "socket buffers cannot be empty");
        }
        Storage {
            rx: [[0; RX]; N],
            tx: [[0; TX]; N],
        }
    }
}

impl<const N: usize, const RX: usize, const TX: usize> Default for Storage<N, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}
