//! Sleeping until sockets are ready: [`wait`], over `lwip_select`.

use core::ffi::c_int;
use core::time::Duration;

use tcpool_core::Interest;

use crate::error::{Errno, Error};
use crate::ffi::{self, Fd};
use crate::socket::{Socket, SocketState};
use crate::sys::{self, FdSet};
use crate::watch::Watches;

/// Waits until one of `interests` is ready or `timeout` passes (`None`:
/// no limit), with `lwip_select`. Returns how many of the sockets are ready
/// (0: timed out).
///
/// "Readable" also wakes on end of stream, on an error, and for a listener
/// on a pending connection; every socket with an interest is also watched
/// for errors. Sockets without an lwIP socket yet, and interests that are
/// [`Interest::NONE`], are skipped; if nothing is left to wait for and there
/// is no timeout, returns `Ok(0)` at once instead of sleeping for ever.
///
/// On ESP-IDF a wait that includes a listener's readability is capped at
/// 20 ms, because lwIP's select there does not reliably report pending
/// connections on a listening socket; the caller just polls `accept` again.
///
/// For a stack with [`Config::lingering_close`](crate::Config::lingering_close)
/// use [`LwipStack::wait`](crate::LwipStack::wait), which also watches the
/// sockets in a lingering close; and for a tcpool server, whose
/// `interests()` are empty on an [`LwipStack`](crate::LwipStack) (the stack
/// watches its sockets), always use that one: this function does not know
/// the stack's watches.
pub fn wait<'s, I>(interests: I, timeout: Option<Duration>) -> Result<usize, Error>
where
    I: IntoIterator<Item = (&'s Socket, Interest)>,
{
    Waiter::new(interests).wait(timeout)
}

/// Whether `fd` is ready for `interest` (or has an error) right now.
pub(crate) fn is_ready_now(fd: &Fd, interest: Interest) -> Result<bool, Error> {
    let mut waiter = Waiter::empty();
    waiter.add(fd.raw(), interest, false)?;
    Ok(waiter.wait(Some(Duration::ZERO))? > 0)
}

/// The three `fd_set`s of one `lwip_select` call being built.
#[derive(Clone)]
pub(crate) struct Waiter {
    read: FdSet,
    write: FdSet,
    except: FdSet,
    /// The caller's descriptors (not the stack's lingering ones).
    mine: FdSet,
    max_fd: c_int,
    listener: bool,
    error: Option<Error>,
}

impl Waiter {
    pub(crate) fn empty() -> Waiter {
        Waiter {
            read: FdSet::new(),
            write: FdSet::new(),
            except: FdSet::new(),
            mine: FdSet::new(),
            max_fd: -1,
            listener: false,
            error: None,
        }
    }

    pub(crate) fn new<'s, I>(interests: I) -> Waiter
    where
        I: IntoIterator<Item = (&'s Socket, Interest)>,
    {
        let mut waiter = Waiter::empty();
        for (socket, interest) in interests {
            let Some(fd) = socket.raw_fd() else { continue };
            let listening = socket.state() == SocketState::Listening;
            if let Err(e) = waiter.add(fd, interest, listening) {
                waiter.error.get_or_insert(e);
            }
        }
        waiter
    }

    pub(crate) fn add(
        &mut self,
        fd: c_int,
        interest: Interest,
        listening: bool,
    ) -> Result<(), Error> {
        if interest.is_none() {
            return Ok(());
        }
        if !self.except.insert(fd) {
            return Err(Error::Lwip(Errno(sys::EBADF)));
        }
        self.mine.insert(fd);
        if interest.readable {
            self.read.insert(fd);
            self.listener |= listening;
        }
        if interest.writable {
            self.write.insert(fd);
        }
        self.max_fd = self.max_fd.max(fd);
        Ok(())
    }

    /// Watches a socket of the stack itself for input (not counted in the
    /// result).
    pub(crate) fn add_internal(&mut self, fd: &Fd) {
        let fd = fd.raw();
        if self.read.insert(fd) {
            self.except.insert(fd);
            self.max_fd = self.max_fd.max(fd);
        }
    }

    /// Watches what servers watch on the stack (see
    /// [`Backend::watch`](tcpool_core::Backend::watch)), for input, room to
    /// write and errors.
    pub(crate) fn add_watched(&mut self, watches: &Watches) {
        let all = watches.all();
        self.read.union_with(&watches.read);
        self.write.union_with(&watches.write);
        self.except.union_with(&all);
        self.listener |= !watches.read.intersection(&watches.listening).is_empty();
        if let Some(max) = all.iter().last() {
            self.max_fd = self.max_fd.max(max);
        }
    }

    pub(crate) fn wait(self, timeout: Option<Duration>) -> Result<usize, Error> {
        Ok(self.select(timeout)?.mine)
    }

    /// Runs the `lwip_select`; what it found.
    pub(crate) fn select(mut self, timeout: Option<Duration>) -> Result<Selected, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut timeout = timeout;
        if let (true, Some(cap)) = (self.listener, sys::LISTENER_POLL_CAP) {
            timeout = Some(timeout.map_or(cap, |t| t.min(cap)));
        }
        if self.max_fd < 0 && timeout.is_none() {
            return Ok(Selected {
                read: FdSet::new(),
                write: FdSet::new(),
                except: FdSet::new(),
                mine: 0,
                ready_mine: FdSet::new(),
            });
        }
        ffi::select(
            self.max_fd + 1,
            &mut self.read,
            &mut self.write,
            &mut self.except,
            timeout,
        )?;
        let mut ready = self.read;
        ready.union_with(&self.write);
        ready.union_with(&self.except);
        let ready_mine = ready.intersection(&self.mine);
        Ok(Selected {
            read: self.read,
            write: self.write,
            except: self.except,
            mine: ready_mine.count_common(&ready_mine),
            ready_mine,
        })
    }
}

/// What one `lwip_select` found.
pub(crate) struct Selected {
    /// Readable descriptors.
    pub(crate) read: FdSet,
    /// Writable descriptors.
    pub(crate) write: FdSet,
    /// Descriptors with an error.
    pub(crate) except: FdSet,
    /// How many of the caller's own descriptors are ready.
    pub(crate) mine: usize,
    /// Those descriptors.
    pub(crate) ready_mine: FdSet,
}
