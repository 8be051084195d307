//! Sockets known to have nothing to read right now, so that the next
//! `receive` or `accept` on them can say `WouldBlock` without a system call.
//!
//! The server does not know which sockets are ready: every poll it tries to
//! read each connection and to accept, and most of those calls find nothing
//! (measured in `benches/std_peers.rs`: about a third of the server's
//! system calls). The stack knows more: [`StdStack::wait`] has just asked
//! the kernel, and a read that returned less than it asked for has just
//! emptied the socket. Each such fact is good for one call: the next
//! `receive` (or `accept`) on that socket returns `WouldBlock` at once and
//! forgets it; the call after that asks the kernel again. Nothing is lost
//! if input arrives in between: `wait` is level-triggered and sees it.
//!
//! [`StdStack::wait`]: crate::StdStack::wait

use std::os::fd::RawFd;

/// A set of file descriptors, as a bitmap indexed by descriptor number.
#[derive(Default)]
pub(crate) struct IdleSet {
    bits: Vec<u64>,
}

impl IdleSet {
    /// Forgets every socket.
    pub(crate) fn clear(&mut self) {
        self.bits.fill(0);
    }

    /// Notes that `fd` has nothing to read.
    pub(crate) fn insert(&mut self, fd: RawFd) {
        let Ok(fd) = usize::try_from(fd) else { return };
        let (word, bit) = (fd / 64, fd % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
    }

    /// True (once) if `fd` was noted as having nothing to read.
    pub(crate) fn take(&mut self, fd: RawFd) -> bool {
        let Ok(fd) = usize::try_from(fd) else {
            return false;
        };
        let (word, bit) = (fd / 64, fd % 64);
        match self.bits.get_mut(word) {
            Some(w) if *w & (1 << bit) != 0 => {
                *w &= !(1 << bit);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_socket_is_reported_once() {
        let mut idle = IdleSet::default();
        idle.insert(3);
        idle.insert(200);
        assert!(idle.take(3));
        assert!(!idle.take(3), "only once");
        assert!(!idle.take(4));
        assert!(!idle.take(-1));
        idle.clear();
        assert!(!idle.take(200));
    }
}
