//! [`Heap`]: slot storage on the heap, for pools too big for a stack.

use tcpool_core::storage::Storage;

/// A [`Storage`] that keeps a server's slots in one heap allocation
/// (`Box<[T; N]>`), built a slot at a time, so that a pool of megabytes
/// never passes through the stack. Use it with
/// [`Server::new_in`](tcpool_core::Server::new_in); the server value itself
/// then holds only the sockets and bookkeeping, a few tens of bytes per
/// slot.
///
/// ```
/// use tcpool_core::{Config, Server};
/// use tcpool_conformance::Echo;
/// use tcpool_std::{Heap, StdStack};
///
/// // 1,024 connections with 4 KiB buffers each way: 8 MiB on the heap.
/// let server: Server<StdStack, Echo, 1024, 4096, 4096, Heap> =
///     Server::new_in(Echo, Config::new());
/// assert_eq!(server.capacity(), 1024);
/// assert!(core::mem::size_of_val(&server) < 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Heap;

impl Storage for Heap {
    type Array<T, const N: usize> = Box<[T; N]>;

    fn build<T, const N: usize>(mut make: impl FnMut() -> T) -> Box<[T; N]> {
        let mut slots = Vec::with_capacity(N);
        slots.extend((0..N).map(|_| make()));
        match slots.into_boxed_slice().try_into() {
            Ok(array) => array,
            Err(_) => unreachable!("exactly N slots were made"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_n_values_in_order() {
        let mut next = 0;
        let array: Box<[u32; 5]> = Heap::build(|| {
            next += 1;
            next
        });
        assert_eq!(*array, [1, 2, 3, 4, 5]);
    }
}
