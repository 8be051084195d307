//! What servers watch (`tcpool_core::Backend::watch`) and what the last
//! `lwip_select` found ready among it, kept in the stack in fixed memory:
//! `fd_set`s of the watched descriptors and a token per descriptor.

use core::ffi::c_int;
use core::fmt;

use tcpool_core::Interest;

use crate::sys::{FD_SETSIZE, FdSet};

/// The watches of one [`LwipStack`](crate::LwipStack).
#[derive(Clone)]
pub(crate) struct Watches {
    /// Descriptors watched for input (end of stream, errors and, for a
    /// listener, pending connections included).
    pub(crate) read: FdSet,
    /// Descriptors watched for room to write.
    pub(crate) write: FdSet,
    /// Watched descriptors that are listeners (for ESP-IDF's select cap).
    pub(crate) listening: FdSet,
    /// The token of each watched descriptor.
    tokens: [usize; FD_SETSIZE],
    /// Watched descriptors found ready by the last select, not yet taken.
    found: FdSet,
    /// `found` comes from a select of every watched descriptor made after
    /// the last `take` and after the last change of a watch: a take can use
    /// it as it is.
    fresh: bool,
}

impl Watches {
    pub(crate) const fn new() -> Watches {
        Watches {
            read: FdSet::new(),
            write: FdSet::new(),
            listening: FdSet::new(),
            tokens: [0; FD_SETSIZE],
            found: FdSet::new(),
            fresh: false,
        }
    }

    /// Whether nothing is watched.
    pub(crate) fn is_empty(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }

    /// Every watched descriptor.
    pub(crate) fn all(&self) -> FdSet {
        let mut all = self.read;
        all.union_with(&self.write);
        all
    }

    /// Watches `fd` for `interest` and reports it as `token`;
    /// [`Interest::NONE`] ends the watch. False if `fd` does not fit in an
    /// `fd_set` (it could never be selected).
    pub(crate) fn set(
        &mut self,
        fd: c_int,
        token: usize,
        interest: Interest,
        listening: bool,
    ) -> bool {
        let Some(slot) = usize::try_from(fd).ok().filter(|&i| i < FD_SETSIZE) else {
            return interest.is_none();
        };
        self.remove(fd);
        self.fresh = false;
        if interest.is_none() {
            return true;
        }
        self.tokens[slot] = token;
        if interest.readable {
            self.read.insert(fd);
        }
        if interest.writable {
            self.write.insert(fd);
        }
        if listening {
            self.listening.insert(fd);
        }
        true
    }

    /// Ends the watch of `fd`, if any (its socket is being closed).
    pub(crate) fn remove(&mut self, fd: c_int) {
        self.read.remove(fd);
        self.write.remove(fd);
        self.listening.remove(fd);
        self.found.remove(fd);
    }

    /// Records what a select of (at least) every watched descriptor
    /// returned: the descriptors of `read`, `write` and `except` that are
    /// watched for that (an error counts for any watch). Returns the
    /// watched descriptors found ready.
    pub(crate) fn record(&mut self, read: &FdSet, write: &FdSet, except: &FdSet) -> FdSet {
        let mut found = read.intersection(&self.read);
        found.union_with(&write.intersection(&self.write));
        found.union_with(&except.intersection(&self.all()));
        self.found = found;
        self.fresh = true;
        found
    }

    /// Whether the last select can stand for this take.
    pub(crate) fn fresh(&self) -> bool {
        self.fresh
    }

    /// Reports the tokens in `tokens` of the descriptors found ready and
    /// forgets them; the others stay for the server they belong to.
    pub(crate) fn take(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        let found = self.found;
        for fd in found.iter() {
            let token = self.tokens[fd as usize];
            if tokens.contains(&token) {
                ready(token);
                self.found.remove(fd);
            }
        }
        self.fresh = false;
    }
}

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.all();
        f.debug_struct("Watches")
            .field("watched", &all.count_common(&all))
            .field("found", &self.found.count_common(&self.found))
            .finish()
    }
}
