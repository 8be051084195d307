//! The pool's bookkeeping of what needs a turn, so that the work of one
//! poll follows what happened rather than the pool size:
//!
//! - [`ReadyQueue`]: the slots to service, first in, first out, each at
//!   most once;
//! - [`Lru`]: the live slots, least recently active first: the idle
//!   timeout and eviction look at its head only;
//! - [`DeadlineQueue`]: each slot's next timer (request deadline, write
//!   stall, linger), a binary min-heap with a position per slot, so a change
//!   costs O(log N) and the nearest deadline O(1).
//!
//! Each is a few `u16` arrays of `N` entries in which 0 means "none" and a
//! slot `i` is stored as `i + 1`, so that an empty structure is all zero
//! bytes (a `static` pool lands in `.bss`). `N` is at most 65,534.

use crate::time::Instant;

/// Bytes each slot adds to the ready set, the activity list and the
/// deadline queue.
pub(crate) const BYTES_PER_SLOT: usize = 2 + 2 + 2 + 2 + 2 + 2 + core::mem::size_of::<Instant>();

/// `i + 1`, the stored form of slot `i`.
const fn link(i: usize) -> u16 {
    (i + 1) as u16
}

/// The slot a stored link names, if any.
const fn unlink(v: u16) -> Option<usize> {
    match v {
        0 => None,
        v => Some(v as usize - 1),
    }
}

/// Slots in a list of their own order, doubly linked through two `u16`
/// arrays: push at the back, take out from anywhere, walk from the front,
/// each O(1).
pub(crate) struct List<const N: usize> {
    /// For a slot in the list: the one before and after it (`0`: none). A
    /// slot is in the list if it is the head or has one before it.
    prev: [u16; N],
    next: [u16; N],
    head: u16,
    tail: u16,
    len: u16,
}

impl<const N: usize> List<N> {
    pub(crate) const fn new() -> Self {
        List {
            prev: [0; N],
            next: [0; N],
            head: 0,
            tail: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.prev[i] != 0 || self.head == link(i)
    }

    /// The slot at the front.
    pub(crate) fn first(&self) -> Option<usize> {
        unlink(self.head)
    }

    /// The slot at the back.
    pub(crate) fn last(&self) -> Option<usize> {
        unlink(self.tail)
    }

    /// The slot after `i`.
    pub(crate) fn after(&self, i: usize) -> Option<usize> {
        unlink(self.next[i])
    }

    /// Puts slot `i` at the back, unless it is in the list already.
    pub(crate) fn push(&mut self, i: usize) {
        if self.contains(i) {
            return;
        }
        self.next[i] = 0;
        self.prev[i] = self.tail;
        match unlink(self.tail) {
            Some(t) => self.next[t] = link(i),
            None => self.head = link(i),
        }
        self.tail = link(i);
        self.len += 1;
    }

    /// Puts slot `i` at the back, moving it if it is in the list.
    #[inline]
    pub(crate) fn push_back(&mut self, i: usize) {
        if unlink(self.tail) != Some(i) {
            self.remove(i);
            self.push(i);
        }
    }

    /// Takes the slot at the front.
    pub(crate) fn pop(&mut self) -> Option<usize> {
        let i = unlink(self.head)?;
        self.remove(i);
        Some(i)
    }

    /// Takes slot `i` out, wherever it is (if it is in the list).
    pub(crate) fn remove(&mut self, i: usize) {
        if !self.contains(i) {
            return;
        }
        let (p, n) = (self.prev[i], self.next[i]);
        match unlink(p) {
            Some(p) => self.next[p] = n,
            None => self.head = n,
        }
        match unlink(n) {
            Some(n) => self.prev[n] = p,
            None => self.tail = p,
        }
        self.prev[i] = 0;
        self.next[i] = 0;
        self.len -= 1;
    }
}

/// Slots waiting for a turn, in the order they became ready; a slot leaves
/// it from anywhere when it gets its turn.
pub(crate) type ReadyQueue<const N: usize> = List<N>;

/// The live slots in order of their last activity, least recent first. A
/// slot whose activity time changes moves to the back
/// ([`List::push_back`]), so the order stays sorted as long as time does
/// not go backwards.
pub(crate) type Lru<const N: usize> = List<N>;

/// One deadline per slot, nearest first.
pub(crate) struct DeadlineQueue<const N: usize> {
    /// The heap of slots, by `due`.
    heap: [u16; N],
    /// Where each slot sits in `heap`, plus one (`0`: not queued).
    pos: [u16; N],
    /// Each queued slot's deadline.
    due: [Instant; N],
    len: u16,
}

impl<const N: usize> DeadlineQueue<N> {
    pub(crate) const fn new() -> Self {
        DeadlineQueue {
            heap: [0; N],
            pos: [0; N],
            due: [Instant::ZERO; N],
            len: 0,
        }
    }

    /// The nearest deadline and its slot.
    pub(crate) fn peek(&self) -> Option<(Instant, usize)> {
        let i = unlink(*self.heap.first().filter(|_| self.len > 0)?)?;
        Some((self.due[i], i))
    }

    /// Sets (`Some`) or clears (`None`) slot `i`'s deadline.
    pub(crate) fn set(&mut self, i: usize, due: Option<Instant>) {
        match (unlink(self.pos[i]), due) {
            (None, None) => {}
            (Some(at), None) => self.remove_at(at),
            (Some(at), Some(t)) => {
                if t == self.due[i] {
                    return;
                }
                let earlier = t < self.due[i];
                self.due[i] = t;
                if earlier {
                    self.sift_up(at);
                } else {
                    self.sift_down(at);
                }
            }
            (None, Some(t)) => {
                self.due[i] = t;
                let at = self.len as usize;
                self.len += 1;
                self.place(at, i);
                self.sift_up(at);
            }
        }
    }

    /// Removes and returns the nearest deadline's slot if it is at or
    /// before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let (t, i) = self.peek()?;
        if t > now {
            return None;
        }
        self.remove_at(0);
        Some(i)
    }

    fn key(&self, at: usize) -> Instant {
        match unlink(self.heap[at]) {
            Some(i) => self.due[i],
            None => Instant::ZERO,
        }
    }

    fn place(&mut self, at: usize, i: usize) {
        self.heap[at] = link(i);
        self.pos[i] = link(at);
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        for at in [a, b] {
            if let Some(i) = unlink(self.heap[at]) {
                self.pos[i] = link(at);
            }
        }
    }

    fn remove_at(&mut self, at: usize) {
        let Some(i) = unlink(self.heap[at]) else {
            return;
        };
        let last = self.len as usize - 1;
        self.swap(at, last);
        self.heap[last] = 0;
        self.pos[i] = 0;
        self.due[i] = Instant::ZERO;
        self.len -= 1;
        if at < last {
            self.sift_down(at);
            self.sift_up(at);
        }
    }

    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.key(at) >= self.key(parent) {
                break;
            }
            self.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        let len = self.len as usize;
        loop {
            let (l, r) = (2 * at + 1, 2 * at + 2);
            let mut least = at;
            if l < len && self.key(l) < self.key(least) {
                least = l;
            }
            if r < len && self.key(r) < self.key(least) {
                least = r;
            }
            if least == at {
                break;
            }
            self.swap(at, least);
            at = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_queue_is_fifo_and_holds_each_slot_once() {
        let mut q: ReadyQueue<4> = ReadyQueue::new();
        q.push(2);
        q.push(0);
        q.push(2);
        q.push(3);
        assert_eq!(q.len(), 3);
        assert!(q.contains(0) && !q.contains(1));
        assert_eq!(q.pop(), Some(2));
        q.push(2);
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
        for i in 0..4 {
            q.push(i);
        }
        q.remove(2);
        q.remove(0);
        q.remove(0);
        q.remove(3);
        q.push(0);
        assert_eq!(q.len(), 2);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(1), Some(0), None));
    }

    #[test]
    fn lru_moves_to_the_back_and_unlinks_anywhere() {
        let mut l: Lru<4> = Lru::new();
        for i in [3, 1, 0] {
            l.push_back(i);
        }
        l.push_back(3);
        assert_eq!(l.first(), Some(1));
        assert_eq!(l.after(1), Some(0));
        assert_eq!(l.last(), Some(3));
        l.remove(0);
        assert_eq!(l.after(1), Some(3));
        l.remove(3);
        l.remove(3);
        assert_eq!((l.first(), l.last()), (Some(1), Some(1)));
        l.remove(1);
        assert_eq!(l.first(), None);
        assert!(!l.contains(1));
    }

    #[test]
    fn deadline_queue_agrees_with_a_scan_under_random_changes() {
        const N: usize = 37;
        let mut q: DeadlineQueue<N> = DeadlineQueue::new();
        let mut model: [Option<u64>; N] = [None; N];
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..20_000u64 {
            let i = rng.usize(..N);
            let due = rng.bool().then(|| rng.u64(..500));
            q.set(i, due.map(Instant::from_millis));
            model[i] = due;
            if round % 7 == 0 {
                let now = rng.u64(..500);
                let expect = model
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| d.map(|d| (d, i)))
                    .min();
                match q.pop_due(Instant::from_millis(now)) {
                    Some(i) => {
                        let (d, _) = expect.expect("popped from an empty queue");
                        assert_eq!(Some(d), model[i], "popped slot {i} is not the nearest");
                        assert!(d <= now);
                        model[i] = None;
                    }
                    None => assert!(expect.is_none_or(|(d, _)| d > now)),
                }
            }
            let nearest = model.iter().filter_map(|d| *d).min();
            assert_eq!(q.peek().map(|(t, _)| t.as_millis()), nearest);
        }
    }
}
