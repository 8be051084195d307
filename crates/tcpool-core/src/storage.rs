//! Where a pool keeps its slots: inside the server value ([`Inline`], the
//! default) or in memory of the caller's choosing (any [`Storage`], such as
//! `tcpool_std::Heap`).
//!
//! The slots hold the buffers, so they are nearly all of a server's size:
//! `N × (RX + TX)` bytes and a little more. An [`Inline`] server is one
//! value of that size. That is what firmware wants (a `static` built at
//! compile time, see [`Server::with_default_config`](crate::Server::with_default_config)),
//! but a value of megabytes cannot be built on a thread's stack and then
//! moved to the heap: `Box::new(Server::new(..))` overflows the stack in
//! an unoptimised build. A [`Storage`] that allocates builds the slots one
//! at a time where they will stay, and the server value itself stays small.
//!
//! ```
//! use tcpool_core::mock::MockStack;
//! use tcpool_core::storage::{Inline, Storage};
//! use tcpool_core::{Config, Conn, Handler, Server};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type State = ();
//!     fn on_open(&mut self, _: &mut Conn<'_>) {}
//!     fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
//!         conn.write(data)
//!     }
//! }
//!
//! /// Slots in a vector's memory (a `std` program; `tcpool_std::Heap` is
//! /// this, ready-made).
//! struct OnHeap;
//! impl Storage for OnHeap {
//!     type Array<T, const N: usize> = Box<[T; N]>;
//!     fn build<T, const N: usize>(mut make: impl FnMut() -> T) -> Box<[T; N]> {
//!         let slots: Box<[T]> = (0..N).map(|_| make()).collect();
//!         match slots.try_into() {
//!             Ok(slots) => slots,
//!             Err(_) => unreachable!("exactly N slots were made"),
//!         }
//!     }
//! }
//!
//! // 1,024 slots with 4 KiB buffers: 8 MiB, never on the stack.
//! let server: Server<MockStack, Echo, 1024, 4096, 4096, OnHeap> =
//!     Server::new_in(Echo, Config::new());
//! assert_eq!(server.capacity(), 1024);
//! assert!(core::mem::size_of_val(&server) < 64 * 1024);
//! ```

use core::borrow::{Borrow, BorrowMut};

/// Where the slots of a pool live: an array type for `N` of them and how to
/// build one, a slot at a time.
pub trait Storage {
    /// `N` values of `T`, reachable as an array (`[T; N]` itself, or a
    /// pointer to one such as `Box<[T; N]>`).
    type Array<T, const N: usize>: Borrow<[T; N]> + BorrowMut<[T; N]>;

    /// `N` values, each made by `make`, in slot order. Must not build the
    /// whole array anywhere first.
    fn build<T, const N: usize>(make: impl FnMut() -> T) -> Self::Array<T, N>;
}

/// The slots inside the pool value itself: an array `[T; N]`. A server with
/// this storage can be built in a `const` context (so a `static`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

impl Storage for Inline {
    type Array<T, const N: usize> = [T; N];

    fn build<T, const N: usize>(mut make: impl FnMut() -> T) -> [T; N] {
        core::array::from_fn(|_| make())
    }
}
