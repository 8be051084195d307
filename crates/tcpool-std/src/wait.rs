//! Sleeping until a socket is ready: `epoll_wait` on the stack's epoll
//! instance (the sockets servers watch, and the lingering closes), and
//! `poll(2)` (`ppoll` on Linux) beside it for sockets given explicitly;
//! through rustix, so without `unsafe` code.

use crate::ready::NOW;
use crate::{StdClock, StdStack, TcpSocket};
use core::time::Duration;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use std::io;
use std::os::fd::BorrowedFd;
use tcpool_core::{Instant, Interest};

impl StdStack {
    /// Sleeps until a watched socket or one of `interests` is ready, or
    /// `deadline` passes; returns how many of them are ready (0: the
    /// deadline passed).
    ///
    /// The sockets a `tcpool_core::Server` watches (it registers them with
    /// the stack, see `Backend::watch`) are waited on in `epoll_wait`, at a
    /// cost that follows the number of ready sockets, not the number
    /// watched; what it finds is kept for the servers' next polls. A server
    /// over this stack yields no `interests()`, so the loop of the crate
    /// docs waits on the epoll set alone. Registrations are level-triggered:
    /// while a watched socket has what it is watched for, every wait returns
    /// at once, so each watched token must belong to a server that is
    /// polled (one that takes its ready tokens and services them).
    ///
    /// `interests` are further sockets to wait for, which no server watches
    /// (a client's, a listener used by hand): each is polled with `poll(2)`
    /// beside the epoll instance, and counted in the result when ready. A
    /// socket with [`Interest::NONE`], or without an OS socket yet, is not
    /// waited on. A socket that has failed or whose peer hung up counts as
    /// ready (the next call on it reports what happened), even if only
    /// writable was asked.
    ///
    /// `deadline` is an instant of `clock`; `None` waits with no deadline.
    /// When it returns 0, `clock.now() >= deadline` holds, so a server loop
    /// that waits for `server.poll_at()` never spins on a deadline that is
    /// less than a millisecond away. A deadline already passed checks
    /// readiness once without sleeping.
    ///
    /// Lingering closes (see [`StdStack`]) are handled here: the wait also
    /// wakes for their input and timeouts, handles them, and goes back to
    /// sleep; they do not make it return.
    ///
    /// Errors are those of `epoll_wait` and `poll(2)` themselves (an
    /// interrupted call is resumed).
    ///
    /// ```
    /// use tcpool_core::{Instant, Interest};
    /// use tcpool_std::{StdClock, StdStack};
    ///
    /// let mut stack = StdStack::default();
    /// let clock = StdClock::new();
    /// // Nothing to wait for: sleeps until the deadline.
    /// let deadline = clock.now() + core::time::Duration::from_millis(20);
    /// let ready = stack.wait(core::iter::empty(), Some(deadline), &clock).unwrap();
    /// assert_eq!(ready, 0);
    /// assert!(clock.now() >= deadline);
    /// ```
    pub fn wait<'a>(
        &mut self,
        interests: impl IntoIterator<Item = (&'a TcpSocket, Interest)>,
        deadline: Option<Instant>,
        clock: &StdClock,
    ) -> io::Result<usize> {
        // A deadline too far away to represent is no deadline.
        self.wait_until(interests, deadline.and_then(|d| clock.to_std(d)))
    }

    /// [`wait`](Self::wait) with the deadline on the host's clock.
    fn wait_until<'a>(
        &mut self,
        interests: impl IntoIterator<Item = (&'a TcpSocket, Interest)>,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<usize> {
        // Empty (so no allocation) for a server loop: servers watch their
        // sockets through the epoll set.
        let wanted: Vec<(BorrowedFd<'a>, PollFlags)> = interests
            .into_iter()
            .filter_map(|(socket, interest)| Some((socket.as_fd()?, flags(interest)?)))
            .collect();
        loop {
            let now = std::time::Instant::now();
            self.expire_lingering();
            let wake = match (deadline, self.next_linger_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = wake.map(|w| timespec(w.saturating_duration_since(now)));
            let ready = if wanted.is_empty() {
                self.harvest(timeout.as_ref())
            } else {
                self.poll_beside(&wanted, timeout.as_ref())
            };
            match ready {
                Ok(0) => {}
                Ok(ready) => return Ok(ready),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(0);
            }
        }
    }

    /// `poll(2)` on `wanted` and the epoll instance; if the latter is
    /// readable, takes its events without sleeping. Returns how many of
    /// `wanted` and of the watched sockets are ready.
    fn poll_beside(
        &mut self,
        wanted: &[(BorrowedFd<'_>, PollFlags)],
        timeout: Option<&Timespec>,
    ) -> Result<usize, Errno> {
        let epoll = self.poller().fd()?;
        let mut fds: Vec<PollFd<'_>> = wanted
            .iter()
            .map(|(fd, events)| PollFd::from_borrowed_fd(*fd, *events))
            .chain(core::iter::once(PollFd::from_borrowed_fd(
                epoll,
                PollFlags::IN,
            )))
            .collect();
        poll(&mut fds, timeout)?;
        let (given, own) = fds.split_at(wanted.len());
        let ready = given.iter().filter(|fd| !fd.revents().is_empty()).count();
        let epoll_ready = own.iter().any(|fd| !fd.revents().is_empty());
        drop(fds);
        // Readiness was checked afresh: the short-read hint is stale.
        self.forget_drained();
        if !epoll_ready {
            return Ok(ready);
        }
        let watched = match self.harvest(Some(&NOW)) {
            Err(Errno::INTR) => self.harvest(Some(&NOW))?,
            other => other?,
        };
        Ok(ready + watched)
    }
}

impl tcpool_core::Wait for StdStack {
    /// [`StdStack::wait`], for a deadline `deadline - now` from the moment
    /// of the call (`now` is read from the same clock as `deadline`, rounded
    /// down, so the deadline has passed on that clock when this returns 0).
    fn wait<'s, I>(
        &mut self,
        interests: I,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Result<usize, crate::Error>
    where
        I: IntoIterator<Item = (&'s TcpSocket, Interest)>,
    {
        let deadline = deadline
            .and_then(|d| std::time::Instant::now().checked_add(d.saturating_duration_since(now)));
        Ok(self.wait_until(interests, deadline)?)
    }
}

/// The poll(2) events for an interest, `None` for no interest.
fn flags(interest: Interest) -> Option<PollFlags> {
    let mut flags = PollFlags::empty();
    if interest.readable {
        flags |= PollFlags::IN;
    }
    if interest.writable {
        flags |= PollFlags::OUT;
    }
    (!flags.is_empty()).then_some(flags)
}

/// The longest single sleep; a longer wait sleeps again (keeps far-future
/// deadlines clear of overflow in the system's time arithmetic).
const MAX_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

/// A poll timeout, rounded up to whole milliseconds: systems whose poll
/// counts milliseconds would otherwise round a sub-millisecond wait down to
/// zero and spin until the deadline.
fn timespec(d: Duration) -> Timespec {
    let d = d.min(MAX_SLEEP);
    let millis = d.as_nanos().div_ceil(1_000_000);
    let millis = u64::try_from(millis).unwrap_or(u64::MAX);
    Timespec::try_from(Duration::from_millis(millis)).unwrap_or(Timespec {
        tv_sec: 24 * 60 * 60,
        tv_nsec: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_interest_is_not_waited_on() {
        assert_eq!(flags(Interest::NONE), None);
        assert_eq!(flags(Interest::READABLE), Some(PollFlags::IN));
        assert_eq!(
            flags(Interest {
                readable: true,
                writable: true
            }),
            Some(PollFlags::IN | PollFlags::OUT)
        );
    }

    #[test]
    fn timeout_rounds_up_to_whole_milliseconds() {
        let t = timespec(Duration::from_micros(300));
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 1_000_000));
        let t = timespec(Duration::from_millis(2_500));
        assert_eq!((t.tv_sec, t.tv_nsec), (2, 500_000_000));
        let t = timespec(Duration::ZERO);
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 0));
        let t = timespec(Duration::MAX);
        assert_eq!((t.tv_sec, t.tv_nsec), (24 * 60 * 60, 0));
    }
}
