//! Caller-provided, heap-free memory for a [`Stack`](crate::Stack).

use smoltcp::iface::SocketStorage;

/// Memory for a pool of `N` TCP sockets with `RX`/`TX`-byte buffers each:
/// `N * (RX + TX)` bytes plus smoltcp's per-socket state, all sized at
/// compile time, handed to [`Stack::new`](crate::Stack::new).
///
/// [`StackStorage::new`] is a `const fn` whose value is all zero bytes, so
/// firmware puts the storage in a `static` that lands in `.bss`: no copy of
/// it in the flash image, and no storage-sized temporary on the stack (the
/// socket buffers are used where they lie). smoltcp's own socket slots are
/// built in place by [`Stack::new`](crate::Stack::new) (their empty value is
/// not all zeros).
///
/// ```
/// use smoltcp::iface::{Config as IfaceConfig, Interface};
/// use smoltcp::phy::{Loopback, Medium};
/// use smoltcp::wire::HardwareAddress;
/// use static_cell::ConstStaticCell;
/// use tcpool_smoltcp::{Config, Stack, StackStorage};
///
/// // In `.bss`: 4 sockets, 8 KiB of buffers, nothing in flash.
/// static STORAGE: ConstStaticCell<StackStorage<'static, 4, 1024, 1024>> =
///     ConstStaticCell::new(StackStorage::new());
///
/// let mut device = Loopback::new(Medium::Ip);
/// let iface = Interface::new(
///     IfaceConfig::new(HardwareAddress::Ip),
///     &mut device,
///     smoltcp::time::Instant::ZERO,
/// );
/// let stack = Stack::new(iface, device, STORAGE.take(), Config::new());
/// assert_eq!(stack.capacity(), 4);
/// assert_eq!(StackStorage::<'static, 4, 1024, 1024>::BUFFER_BYTES, 8 * 1024);
/// ```
pub struct StackStorage<'a, const N: usize, const RX: usize, const TX: usize> {
    pub(crate) sockets: SocketSlots<'a, N>,
    pub(crate) rx: [[u8; RX]; N],
    pub(crate) tx: [[u8; TX]; N],
}

/// smoltcp's socket slots for the pool, not built until
/// [`Stack::new`](crate::Stack::new) needs them.
///
/// `SocketStorage::EMPTY` is smoltcp's `None` in a niche of the socket
/// type, which is not a zero byte, and one non-zero byte moves a whole
/// `static` from `.bss` to `.data`. With an explicit `u8` tag, `Unbuilt`
/// is a zero tag and no payload (bytes that count as zero).
#[repr(u8)]
pub(crate) enum SocketSlots<'a, const N: usize> {
    /// The `const` empty value: all zero.
    Unbuilt = 0,
    /// Built by `Stack::new`, borrowed by its `SocketSet`.
    Built([SocketStorage<'a>; N]) = 1,
}

impl<'a, const N: usize> SocketSlots<'a, N> {
    /// Build the slots (all empty) and lend them out.
    pub(crate) fn build(&mut self) -> &mut [SocketStorage<'a>] {
        *self = SocketSlots::Built([SocketStorage::EMPTY; N]);
        match self {
            SocketSlots::Built(slots) => slots,
            SocketSlots::Unbuilt => unreachable!("just built"),
        }
    }
}

impl<'a, const N: usize, const RX: usize, const TX: usize> StackStorage<'a, N, RX, TX> {
    /// Bytes of socket buffers: `N * (RX + TX)`.
    pub const BUFFER_BYTES: usize = N * (RX + TX);

    /// Zeroed storage (every byte zero: a `static` holding it goes to
    /// `.bss`). `N`, `RX` and `TX` must all be non-zero and `N` at most
    /// 65535 (checked at compile time).
    pub const fn new() -> Self {
        const {
            assert!(N > 0, "the pool needs at least one socket");
            assert!(N <= u16::MAX as usize, "at most 65535 sockets");
            assert!(RX > 0 && TX > 0, "socket buffers cannot be empty");
        }
        StackStorage {
            sockets: SocketSlots::Unbuilt,
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
