//! Sleeping until a socket is ready: `poll(2)` (`ppoll` on Linux) through
//! rustix, so without `unsafe` code.

use crate::{StdClock, StdStack, TcpSocket};
use core::time::Duration;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use tcpool_core::{Instant, Interest};

impl StdStack {
    /// Sleeps until one of `interests` is ready as asked, or `deadline`
    /// passes; returns how many of them are ready (0: the deadline passed).
    ///
    /// `interests` is what `tcpool_core::Server::interests()` yields; to wait
    /// for several servers on one stack, chain their iterators. A socket with
    /// [`Interest::NONE`], or without an OS socket yet, is not waited on. A
    /// socket that has failed or whose peer hung up counts as ready (the next
    /// call on it reports what happened), even if only writable was asked.
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
    /// A socket waited on for input that has none when `wait` returns is
    /// remembered: the next `receive` or `accept` on it returns `WouldBlock`
    /// without a system call, once (the call after asks the kernel again).
    /// This saves the server a system call per idle connection per poll;
    /// input arriving in between is not lost, the next `wait` sees it.
    ///
    /// Errors are those of `poll(2)` itself (an interrupted call is resumed).
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
        let wanted: Vec<(BorrowedFd<'a>, PollFlags)> = interests
            .into_iter()
            .filter_map(|(socket, interest)| Some((socket.as_fd()?, flags(interest)?)))
            .collect();
        self.idle_set().clear();
        loop {
            let now = std::time::Instant::now();
            let lingering = self.lingering_set();
            lingering.expire(now);
            let wake = match (deadline, lingering.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = wake.map(|w| timespec(w.saturating_duration_since(now)));

            let mut fds: Vec<PollFd<'_>> = wanted
                .iter()
                .map(|(fd, events)| PollFd::from_borrowed_fd(*fd, *events))
                .chain(
                    lingering
                        .fds()
                        .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN)),
                )
                .collect();
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = fds[..wanted.len()]
                .iter()
                .filter(|fd| !fd.revents().is_empty())
                .count();
            // What was waited on for input and has none: the next receive or
            // accept on it can say so without asking the kernel (once).
            let idle: Vec<std::os::fd::RawFd> = fds[..wanted.len()]
                .iter()
                .zip(&wanted)
                .filter(|(fd, (_, events))| {
                    events.contains(PollFlags::IN) && fd.revents().is_empty()
                })
                .map(|(_, (fd, _))| fd.as_raw_fd())
                .collect();
            let lingering_ready: Vec<bool> = fds[wanted.len()..]
                .iter()
                .map(|fd| !fd.revents().is_empty())
                .collect();
            drop(fds);
            if lingering_ready.contains(&true) {
                lingering.finish_ready(|i| lingering_ready[i]);
            }
            let known_idle = self.idle_set();
            known_idle.clear();
            for fd in idle {
                known_idle.insert(fd);
            }
            if ready > 0 {
                return Ok(ready);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(0);
            }
        }
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

/// The poll events for an interest, `None` for no interest.
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
