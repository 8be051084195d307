//! A fixed-capacity byte queue: the receive and transmit buffers of a slot.
//!
//! Bytes live in `data[start..end]`. Space is reclaimed by moving the live
//! bytes to the front when the tail runs out, which keeps the readable part
//! one contiguous slice (a handler always sees its unconsumed input in one
//! piece, so framing needs no copies).

/// A byte queue over any backing storage; `Buffer<[u8; CAP]>` is the sized
/// form stored in a slot and `Buffer<[u8]>` the form the methods work on.
pub(crate) struct Buffer<S: ?Sized> {
    // `u32` offsets: buffers are at most 4 GiB (checked where a pool is
    // made), and the slot's bookkeeping stays small on 64-bit hosts.
    start: u32,
    end: u32,
    data: S,
}

impl<const CAP: usize> Buffer<[u8; CAP]> {
    /// An empty buffer.
    pub(crate) const fn new() -> Self {
        Buffer {
            start: 0,
            end: 0,
            data: [0; CAP],
        }
    }
}

impl<const CAP: usize> core::ops::Deref for Buffer<[u8; CAP]> {
    type Target = Buffer<[u8]>;
    fn deref(&self) -> &Buffer<[u8]> {
        self
    }
}

impl<const CAP: usize> core::ops::DerefMut for Buffer<[u8; CAP]> {
    fn deref_mut(&mut self) -> &mut Buffer<[u8]> {
        self
    }
}

impl Buffer<[u8]> {
    /// Capacity in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Bytes queued.
    pub(crate) fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Room for more bytes.
    pub(crate) fn room(&self) -> usize {
        self.capacity() - self.len()
    }

    /// The queued bytes, oldest first.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data[self.start as usize..self.end as usize]
    }

    /// Drops the first `n` queued bytes (clamped to what is queued).
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n.min(self.len()) as u32;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// All free space as one writable slice; call [`commit`](Self::commit)
    /// with the number of bytes written into it.
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        if self.start > 0 && self.end as usize == self.data.len() {
            self.data
                .copy_within(self.start as usize..self.end as usize, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end as usize;
        &mut self.data[end..]
    }

    /// Free space after the queued bytes, without compacting.
    pub(crate) fn tail_room(&self) -> usize {
        self.data.len() - self.end as usize
    }

    /// Marks `n` bytes of the slice from [`spare_mut`](Self::spare_mut) as queued.
    pub(crate) fn commit(&mut self, n: usize) {
        debug_assert!(self.end as usize + n <= self.data.len());
        self.end = (self.end as usize + n).min(self.data.len()) as u32;
    }

    /// Queues as much of `bytes` as fits; returns how much that was.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room());
        if n > 0 {
            if self.tail_room() < n {
                self.spare_mut();
                if self.tail_room() < n {
                    // spare_mut only compacts when the tail is exhausted.
                    self.data
                        .copy_within(self.start as usize..self.end as usize, 0);
                    self.end -= self.start;
                    self.start = 0;
                }
            }
            let end = self.end as usize;
            self.data[end..end + n].copy_from_slice(&bytes[..n]);
            self.end += n as u32;
        }
        n
    }

    /// Forgets everything queued.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf<const N: usize>() -> Buffer<[u8; N]> {
        Buffer::new()
    }

    #[test]
    fn push_is_bounded_by_room_and_keeps_order() {
        let mut b = buf::<8>();
        let b: &mut Buffer<[u8]> = &mut b;
        assert_eq!(b.push(b"hello"), 5);
        assert_eq!(b.push(b"world"), 3);
        assert!(b.is_full());
        assert_eq!(b.data(), b"hellowor");
        b.consume(5);
        assert_eq!(b.data(), b"wor");
        assert_eq!(b.push(b"ld!!!"), 5);
        assert_eq!(b.data(), b"world!!!");
    }

    #[test]
    fn spare_compacts_only_when_tail_is_exhausted() {
        let mut b = buf::<4>();
        let b: &mut Buffer<[u8]> = &mut b;
        b.push(b"abcd");
        b.consume(2);
        let spare = b.spare_mut();
        assert_eq!(spare.len(), 2);
        spare.copy_from_slice(b"ef");
        b.commit(2);
        assert_eq!(b.data(), b"cdef");
    }

    #[test]
    fn consuming_everything_resets_to_front() {
        let mut b = buf::<4>();
        let b: &mut Buffer<[u8]> = &mut b;
        b.push(b"ab");
        b.consume(10);
        assert!(b.is_empty());
        assert_eq!(b.spare_mut().len(), 4);
    }
}
