//! Readiness reporting with one `epoll` instance per stack (through rustix,
//! so without `unsafe` code).
//!
//! A socket is registered when a server starts watching it, modified when
//! its interest changes and deleted when the interest becomes
//! [`Interest::NONE`] (so a hung-up socket nobody wants, which epoll would
//! report level-triggered for ever, wakes nobody); closing a socket removes
//! it from the set (the kernel does that when the descriptor is closed, and
//! a lingering close re-points the registration at its own entry first).
//! Registrations are level-triggered: a socket is reported for as long as it
//! has what its interest asks for, or has failed or hung up.
//!
//! Each `epoll_wait` (a *harvest*) replaces the list of ready tokens with
//! what the kernel reports now: everything ready, since the events buffer
//! grows until one call does not fill it. `take_ready` hands out and
//! forgets the tokens of one range, and harvests again (without blocking)
//! first if that range was already taken since the last harvest or a
//! registration changed, so a server polled twice without a wait in
//! between still sees what became ready. The costs follow the events:
//! nothing here visits every watched socket.
//!
//! The event data is the server's token; tokens with the top bit set are
//! the stack's own (lingering closes), so servers' tokens must stay below
//! 2^63.

use rustix::buffer::spare_capacity;
use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
use rustix::io::Errno;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use tcpool_core::Interest;

/// Event data of the stack's own registrations: the lingering close with
/// key `data & !OWN`.
pub(crate) const OWN: u64 = 1 << 63;

/// How many events one `epoll_wait` takes at first (the buffer grows while
/// a call fills it).
const FIRST_CAPACITY: usize = 64;

/// A zero timeout: check without sleeping.
pub(crate) const NOW: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// The epoll instance and what its last wait found.
pub(crate) struct Poller {
    /// Created at the first registration or wait.
    epoll: Option<OwnedFd>,
    /// The buffer `epoll_wait` fills, reused.
    events: Vec<Event>,
    /// Servers' tokens found ready by the last harvest, not yet taken.
    pending: Vec<usize>,
    /// A registration changed (or nothing was harvested yet) since the last
    /// harvest.
    stale: bool,
    /// The token ranges taken since the last harvest.
    taken: Vec<Range<usize>>,
}

impl Default for Poller {
    fn default() -> Self {
        Poller {
            epoll: None,
            events: Vec::new(),
            pending: Vec::new(),
            stale: true,
            taken: Vec::new(),
        }
    }
}

/// The event data for a server's token.
pub(crate) fn token_data(token: usize) -> io::Result<u64> {
    match u64::try_from(token) {
        Ok(data) if data & OWN == 0 => Ok(data),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "readiness token too large (at most 2^63 - 1)",
        )),
    }
}

/// The epoll events for an interest, `None` for no interest.
pub(crate) fn events_for(interest: Interest) -> Option<EventFlags> {
    let mut flags = EventFlags::empty();
    if interest.readable {
        flags |= EventFlags::IN;
    }
    if interest.writable {
        flags |= EventFlags::OUT;
    }
    (!flags.is_empty()).then_some(flags)
}

impl Poller {
    /// The epoll instance, created on first use.
    pub(crate) fn fd(&mut self) -> Result<BorrowedFd<'_>, Errno> {
        if self.epoll.is_none() {
            self.epoll = Some(epoll::create(CreateFlags::CLOEXEC)?);
            self.events = Vec::with_capacity(FIRST_CAPACITY);
        }
        match &self.epoll {
            Some(fd) => Ok(fd.as_fd()),
            None => unreachable!("created above"),
        }
    }

    /// Registers `fd` with `data` for `events`, changes its registration,
    /// or (`None`) removes it. `registered` is the socket's note of whether
    /// it is in the set; a wrong note (a socket moved between stacks) costs
    /// one failed call, not an error.
    pub(crate) fn set(
        &mut self,
        fd: BorrowedFd<'_>,
        registered: &AtomicBool,
        data: u64,
        events: Option<EventFlags>,
    ) -> io::Result<()> {
        let was = registered.load(Ordering::Relaxed);
        if events.is_none() && !was {
            return Ok(());
        }
        self.stale = true;
        let epoll = self.fd()?;
        let data = EventData::new_u64(data);
        match events {
            None => match epoll::delete(epoll, fd) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            },
            Some(events) if was => match epoll::modify(epoll, fd, data, events) {
                Ok(()) => {}
                Err(Errno::NOENT) => epoll::add(epoll, fd, data, events)?,
                Err(e) => return Err(e.into()),
            },
            Some(events) => match epoll::add(epoll, fd, data, events) {
                Ok(()) => {}
                Err(Errno::EXIST) => epoll::modify(epoll, fd, data, events)?,
                Err(e) => return Err(e.into()),
            },
        }
        registered.store(events.is_some(), Ordering::Relaxed);
        Ok(())
    }

    /// Whether `take` for `tokens` must harvest first: a registration
    /// changed, or these tokens were taken since the last harvest.
    pub(crate) fn needs_harvest(&self, tokens: &Range<usize>) -> bool {
        self.stale
            || self
                .taken
                .iter()
                .any(|r| r.start < tokens.end && tokens.start < r.end)
    }

    /// Waits up to `timeout` (`None`: no limit) and replaces the pending
    /// tokens with what is ready now; calls `own(key)` for each of the
    /// stack's own registrations found ready. Returns how many servers'
    /// tokens are pending. `Errno::INTR` is returned as is, for the caller
    /// to retry with a recomputed timeout.
    pub(crate) fn harvest(
        &mut self,
        timeout: Option<&Timespec>,
        mut own: impl FnMut(usize),
    ) -> Result<usize, Errno> {
        self.fd()?;
        let Poller { epoll, events, .. } = self;
        let Some(epoll) = epoll.as_ref() else {
            unreachable!("created above")
        };
        let mut timeout = timeout;
        loop {
            events.clear();
            epoll::wait(epoll, spare_capacity(events), timeout)?;
            if events.len() < events.capacity() {
                break;
            }
            // The buffer is full: more may be ready. Registrations are
            // level-triggered, so a second call with room for all of them
            // reports all again, those of this call included.
            let more = events.capacity().max(FIRST_CAPACITY);
            events.reserve(more);
            timeout = Some(&NOW);
        }
        self.pending.clear();
        for event in self.events.iter() {
            let data = event.data.u64();
            if data & OWN != 0 {
                // Keys are slab indices: they fit (they came from a usize).
                own(usize::try_from(data & !OWN).unwrap_or(usize::MAX));
            } else if let Ok(token) = usize::try_from(data) {
                self.pending.push(token);
            }
        }
        self.stale = false;
        self.taken.clear();
        Ok(self.pending.len())
    }

    /// Calls `ready` for each pending token in `tokens` and forgets them;
    /// the others are kept for their owner.
    pub(crate) fn take(&mut self, tokens: Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.pending.retain(|&t| {
            let mine = tokens.contains(&t);
            if mine {
                ready(t);
            }
            !mine
        });
        if !self.taken.contains(&tokens) {
            self.taken.push(tokens);
        }
    }

    /// How many servers' tokens are pending.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn no_interest_is_no_registration() {
        assert_eq!(events_for(Interest::NONE), None);
        assert_eq!(events_for(Interest::READABLE), Some(EventFlags::IN));
        assert_eq!(
            events_for(Interest {
                readable: true,
                writable: true
            }),
            Some(EventFlags::IN | EventFlags::OUT)
        );
    }

    #[test]
    fn tokens_with_the_top_bit_are_refused() {
        assert_eq!(token_data(7).unwrap(), 7);
        if usize::BITS == 64 {
            let e = token_data(usize::MAX).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    }

    /// Many ready sockets, more than the first buffer holds: one harvest
    /// reports every one of them, once.
    #[test]
    fn a_harvest_reports_everything_ready_even_beyond_the_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let count = FIRST_CAPACITY * 2 + 5;
        let mut pairs = Vec::new();
        for _ in 0..count {
            let mut client = TcpStream::connect(addr).unwrap();
            let (server, _) = listener.accept().unwrap();
            client.write_all(b"x").unwrap();
            pairs.push((server, client));
        }
        let mut poller = Poller::default();
        for (token, (server, _)) in pairs.iter().enumerate() {
            let registered = AtomicBool::new(false);
            poller
                .set(
                    server.as_fd(),
                    &registered,
                    token as u64,
                    Some(EventFlags::IN),
                )
                .unwrap();
        }
        // Loopback delivers at once, but give the bytes a moment.
        let start = std::time::Instant::now();
        loop {
            let n = poller.harvest(Some(&NOW), |_| {}).unwrap();
            if n == count || start.elapsed() > std::time::Duration::from_secs(5) {
                break;
            }
        }
        let mut seen = Vec::new();
        poller.take(0..count, &mut |t| seen.push(t));
        seen.sort_unstable();
        assert_eq!(seen, (0..count).collect::<Vec<_>>());
    }

    #[test]
    fn take_keeps_other_ranges_and_asks_for_a_harvest_when_taken_twice() {
        let mut poller = Poller {
            pending: vec![1, 5, 12],
            stale: false,
            ..Poller::default()
        };
        let mut seen = Vec::new();
        poller.take(0..10, &mut |t| seen.push(t));
        assert_eq!(seen, [1, 5]);
        assert_eq!(poller.pending(), 1);
        assert!(poller.needs_harvest(&(0..10)));
        assert!(!poller.needs_harvest(&(10..20)));
        poller.take(10..20, &mut |t| seen.push(t));
        assert_eq!(seen, [1, 5, 12]);
    }
}
