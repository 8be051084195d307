//! The pool: every decision the server makes, and no I/O.
//!
//! A [`Pool`] owns the slots (buffers, handler state, timers), the handler,
//! the configuration and the counters. It names no stack type and holds no
//! socket: events go in (a client was accepted from this peer, the stack
//! took `n` bytes, `n` bytes arrived, end of stream, an error of this kind,
//! the time), and it answers with what to do next ([`Admission`],
//! [`Action`]). The drivers only call the stack and feed the results in:
//! the nb [`Server`](crate::Server) (a poll loop) keeps the sockets in an
//! array beside the pool, one per slot.
//!
//! What lives here: admission (place, evict which, or refuse with the
//! banner, admission always decided before any eviction), how much to read
//! and what a read result means (data, end of stream, overflow), which
//! callbacks run and when, close and linger deadlines, the idle timeout, the
//! accept backoff, [`poll_at`](Pool::poll_at) and the interests.
//!
//! A driver's poll, in outline:
//!
//! ```text
//! pool.begin_poll(now);
//! while pool.should_accept(now) {
//!     match stack.accept(listener) {
//!         WouldBlock => break,
//!         Err(_) => { pool.accept_failed(now); break }
//!         Ok((socket, peer)) => match pool.admit(peer, now) {
//!             Admission::Open { slot, evicted } => { abort sockets[evicted]; sockets[slot] = socket }
//!             Admission::Refuse { banner } => { send banner; close socket }
//!         },
//!     }
//! }
//! for i in 0..N {
//!     loop {
//!         match pool.next_action(i, now) {
//!             Action::Send(bytes) => pool.complete(i, now, result of stack.send),
//!             Action::Receive(buf) => pool.complete(i, now, result of stack.receive),
//!             Action::Close => close sockets[i],
//!             Action::Abort => abort sockets[i],
//!             Action::Done => break,
//!         }
//!     }
//! }
//! pool.end_poll()
//! ```

use core::borrow::{Borrow, BorrowMut};
use core::net::SocketAddr;
use core::time::Duration;

use embedded_nal::TcpErrorKind;

use crate::config::{Config, WhenFull};
use crate::fmt::{debug, warning};
use crate::handler::{CloseReason, Conn, ConnId, Handler, Request};
use crate::interest::Interest;
use crate::sched::{DeadlineQueue, Lru, ReadyQueue};
use crate::slot::{Slot, SlotState, Step};
use crate::stats::{Stats, bump};
use crate::storage::{Inline, Storage};
use crate::time::Instant;

/// What to do with a client the stack just accepted.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Admission {
    /// Give it slot `slot`. If `evicted` names a slot, that slot's
    /// connection was closed to make room (already reported to the
    /// handler): abort its socket (a reset) before storing the new one.
    Open {
        /// The slot the new connection takes.
        slot: usize,
        /// The slot whose connection was evicted for it, if any.
        evicted: Option<usize>,
    },
    /// Refuse it: send `banner` if it is not empty (best effort, one
    /// write), then close the socket. Counted in
    /// [`Stats::refused`](crate::Stats::refused).
    Refuse {
        /// What to send first.
        banner: &'static [u8],
    },
}

/// The next thing a driver does for one slot, from
/// [`Pool::next_action`].
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Send these bytes on the slot's socket (the front of its transmit
    /// buffer), then report with [`Event::Sent`], [`Event::WouldBlock`] or
    /// [`Event::Error`].
    Send(&'a [u8]),
    /// Receive into this buffer (never empty) from the slot's socket, then
    /// report with [`Event::Received`], [`Event::EndOfStream`],
    /// [`Event::WouldBlock`] or [`Event::Error`].
    Receive(&'a mut [u8]),
    /// The slot was freed: close its socket (gracefully). Nothing to report
    /// but a failed close ([`Pool::close_failed`]).
    Close,
    /// The slot was freed: abort its socket (a reset). Nothing to report
    /// but a failed close ([`Pool::close_failed`]).
    Abort,
    /// Nothing more for this slot in this poll.
    Done,
}

/// What the stack answered to an [`Action::Send`] or [`Action::Receive`].
#[derive(Copy, Clone, PartialEq, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The stack took this many bytes of output (0: as `WouldBlock`).
    Sent(usize),
    /// This many bytes arrived (0 counts as `WouldBlock`: an end of stream
    /// is [`Event::EndOfStream`]).
    Received(usize),
    /// The peer ended its side of the stream (a receive returned `Ok(0)`).
    EndOfStream,
    /// Nothing can move now.
    WouldBlock,
    /// The stack reported an error of this kind; the connection ends.
    Error(TcpErrorKind),
}

/// The configuration as the pool stores it: `Default` is a zero byte, so a
/// pool made by [`Pool::with_default_config`] is all zero bytes (for a
/// zero-sized handler) and a `static` of it lands in `.bss`.
#[derive(Copy, Clone)]
#[repr(u8)]
enum Settings {
    Default,
    Set(Config),
}

/// What code outside the callbacks may change in a slot: output queued,
/// input left, a close asked for, the request deadline.
type IoMark = (usize, usize, Request, Option<Instant>);

/// The defaults, for [`Settings::Default`].
static DEFAULT_CONFIG: Config = Config::new();

/// The pure connection pool: `N` slots with `RX` and `TX` byte buffers,
/// the handler, the configuration and the counters. See the
/// [module docs](self) for how a driver uses it.
///
/// ```
/// use tcpool_core::pool::{Action, Admission, Event, Pool};
/// use tcpool_core::{Config, Conn, Handler, Instant};
///
/// struct Echo;
/// impl Handler for Echo {
///     type State = ();
///     fn on_open(&mut self, _: &mut Conn<'_>) {}
///     fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
///         conn.write(data)
///     }
/// }
///
/// let mut pool: Pool<Echo, 2, 64, 64> = Pool::new(Echo, Config::new());
/// pool.set_listening(true);
/// let now = Instant::ZERO;
/// pool.begin_poll(now);
/// assert!(pool.should_accept(now));
/// let peer = "10.0.0.2:4000".parse().unwrap();
/// assert_eq!(pool.admit(peer, now), Admission::Open { slot: 0, evicted: None });
///
/// // The stack has "hi" for slot 0: read it, and the echo is to be sent.
/// assert!(matches!(pool.next_action(0, now), Action::Receive(_)));
/// if let Action::Receive(buf) = pool.next_action(0, now) {
///     buf[..2].copy_from_slice(b"hi");
/// }
/// pool.complete(0, now, Event::Received(2));
/// assert!(matches!(pool.next_action(0, now), Action::Receive(_)));
/// pool.complete(0, now, Event::WouldBlock);
/// assert_eq!(pool.next_action(0, now), Action::Send(b"hi"));
/// pool.complete(0, now, Event::Sent(2));
/// assert_eq!(pool.next_action(0, now), Action::Done);
/// assert!(pool.end_poll());
/// ```
pub struct Pool<H, const N: usize, const RX: usize, const TX: usize, M = Inline>
where
    H: Handler,
    M: Storage,
{
    handler: H,
    settings: Settings,
    slots: M::Array<Slot<H::State, RX, TX>, N>,
    /// Slots to service at the next poll.
    ready: ReadyQueue<N>,
    /// Live slots, least recently active first.
    lru: Lru<N>,
    /// Each slot's next request, write-stall or linger deadline.
    timers: DeadlineQueue<N>,
    stats: Stats,
    next_id: u32,
    accept_retry_at: Option<Instant>,
    listening: bool,
    deferring: bool,
    progressed: bool,
    last_now: Instant,
}

impl<H: Handler, const N: usize, const RX: usize, const TX: usize> Pool<H, N, RX, TX, Inline> {
    /// A pool with `handler` and `config`. Sizes that make no sense (`N`,
    /// `RX` or `TX` of zero) fail to compile.
    pub const fn new(handler: H, config: Config) -> Self {
        let mut pool = Self::with_default_config(handler);
        pool.settings = Settings::Set(config);
        pool
    }

    /// A pool with `handler` and the default [`Config`], every byte of
    /// which is zero when the handler's are (a zero-sized handler, say): a
    /// `static` of it lands in `.bss`, not in the flash image. Change the
    /// configuration at start-up with [`set_config`](Self::set_config).
    pub const fn with_default_config(handler: H) -> Self {
        Self::assemble(handler, Settings::Default, [const { Slot::new() }; N])
    }
}

impl<H, const N: usize, const RX: usize, const TX: usize, M> Pool<H, N, RX, TX, M>
where
    H: Handler,
    M: Storage,
{
    const SIZES_OK: () = {
        assert!(N > 0, "a server needs at least one slot (N > 0)");
        assert!(N < u16::MAX as usize, "at most 65534 slots");
        assert!(RX > 0, "the receive buffer must not be empty (RX > 0)");
        assert!(TX > 0, "the transmit buffer must not be empty (TX > 0)");
        assert!(RX <= u32::MAX as usize, "a receive buffer is at most 4 GiB");
        assert!(
            TX <= u32::MAX as usize,
            "a transmit buffer is at most 4 GiB"
        );
    };

    /// Bytes one slot takes in memory: its buffers and state, and its
    /// entries in the ready set, the activity list and the deadline queue.
    pub const SLOT_BYTES: usize =
        core::mem::size_of::<Slot<H::State, RX, TX>>() + crate::sched::BYTES_PER_SLOT;

    /// A pool with `handler` and `config` whose slots are built in place in
    /// storage `M` (see [`storage`](crate::storage)): with a storage that
    /// allocates, the slots never pass through the stack.
    pub fn new_in(handler: H, config: Config) -> Self {
        Self::assemble(handler, Settings::Set(config), M::build(Slot::new))
    }

    /// A pool around `slots` (all free), with nothing scheduled and nothing
    /// counted yet. `const`, for the inline constructors.
    const fn assemble(
        handler: H,
        settings: Settings,
        slots: M::Array<Slot<H::State, RX, TX>, N>,
    ) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SIZES_OK;
        Pool {
            handler,
            settings,
            slots,
            ready: ReadyQueue::new(),
            lru: Lru::new(),
            timers: DeadlineQueue::new(),
            stats: Stats::new(),
            next_id: 0,
            accept_retry_at: None,
            listening: false,
            deferring: false,
            progressed: false,
            last_now: Instant::ZERO,
        }
    }

    fn slots(&self) -> &[Slot<H::State, RX, TX>; N] {
        self.slots.borrow()
    }

    fn slots_mut(&mut self) -> &mut [Slot<H::State, RX, TX>; N] {
        self.slots.borrow_mut()
    }

    // -------------------------------------------------------------- access

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        match &self.settings {
            Settings::Default => &DEFAULT_CONFIG,
            Settings::Set(config) => config,
        }
    }

    /// Replaces the configuration. Takes effect at once; lowering
    /// `max_connections` closes nobody.
    pub fn set_config(&mut self, config: Config) {
        self.settings = Settings::Set(config);
        // Deadlines that depend on the configuration (the write stall).
        for i in 0..N {
            if !self.slots()[i].is_free() {
                self.refresh(i);
            }
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections in a slot now.
    pub fn active(&self) -> usize {
        self.stats.active as usize
    }

    /// The number of connections served at once: `max_connections` clamped
    /// to `1..=N`.
    pub fn max_connections(&self) -> usize {
        self.config().max_connections.clamp(1, N)
    }

    /// Changes how many connections are served at once (clamped to `1..=N`).
    pub fn set_max_connections(&mut self, n: usize) {
        let mut config = *self.config();
        config.max_connections = n;
        self.set_config(config);
    }

    /// The state of slot `i`.
    pub fn slot_state(&self, i: usize) -> SlotState {
        self.slots()[i].state()
    }

    /// The state of each slot, in slot order.
    pub fn slot_states(&self) -> impl Iterator<Item = SlotState> + '_ {
        self.slots().iter().map(|s| s.state())
    }

    /// Whether the driver has a listening socket (set by the driver).
    pub fn set_listening(&mut self, listening: bool) {
        self.listening = listening;
        if !listening {
            // A later listen starts afresh, not inside an old accept backoff.
            self.accept_retry_at = None;
            self.deferring = false;
        }
    }

    /// Runs `f` on a live connection's handle and state, for output that
    /// does not come from a callback. `None` if no live connection has that
    /// id.
    pub fn with_conn<R>(
        &mut self,
        id: ConnId,
        now: Instant,
        f: impl FnOnce(&mut Conn<'_>, &mut H::State) -> R,
    ) -> Option<R> {
        let i = self.slot_of(id)?;
        let before = self.io_mark(i);
        let Pool { slots, stats, .. } = self;
        let result =
            slots.borrow_mut()[i].with_conn(now, stats, |conn, state| state.map(|s| f(conn, s)));
        self.after_io(i, before);
        result
    }

    /// What a driver's next turn on slot `i` would act on, and its timer,
    /// to tell whether code outside the callbacks changed them.
    #[inline]
    fn io_mark(&self, i: usize) -> IoMark {
        let slot = &self.slots()[i];
        (
            slot.tx_len(),
            slot.input_len(),
            slot.request(),
            slot.deadline(),
        )
    }

    /// After code outside the callbacks ran on slot `i`: if it wrote output,
    /// consumed input or asked for a close, the slot gets a turn at the next
    /// poll (to send, to read into the room made, to close); if it set a
    /// deadline, the deadline queue learns it. Nothing else changes there.
    #[inline]
    fn after_io(&mut self, i: usize, before: IoMark) {
        if self.io_mark(i) != before {
            self.ready.push(i);
            self.refresh(i);
        }
    }

    /// The slot a live connection is in.
    pub fn slot_of(&self, id: ConnId) -> Option<usize> {
        self.slots()
            .iter()
            .position(|s| s.is_live() && s.id() == id)
    }

    /// The id of the live connection in slot `i`, if any.
    pub fn live_id(&self, i: usize) -> Option<ConnId> {
        let slot = self.slots().get(i)?;
        slot.is_live().then(|| slot.id())
    }

    /// Runs `f` with the handle of the live connection `id` in slot `i` and
    /// its unconsumed input, outside the callbacks (how async handlers read
    /// and write); `f` returns how many input bytes it consumed. `None` if
    /// that connection is not live in that slot.
    pub fn with_io<R>(
        &mut self,
        i: usize,
        id: ConnId,
        now: Instant,
        f: impl FnOnce(&mut Conn<'_>, &[u8]) -> (R, usize),
    ) -> Option<R> {
        self.live_id(i).filter(|live| *live == id)?;
        let before = self.io_mark(i);
        let Pool { slots, stats, .. } = self;
        let result = slots.borrow_mut()[i].with_io(now, stats, f);
        self.after_io(i, before);
        Some(result)
    }

    /// Whether the live connection `id` in slot `i` can move bytes straight
    /// between its socket and an async handler, bypassing the slot's
    /// buffers: for a read (`read`), nothing buffered comes first and the
    /// peer has not finished; for a write, nothing queued comes first.
    /// Either way nothing (a close, an abort) is asked of the pool.
    #[inline]
    pub(crate) fn can_move_direct(&self, i: usize, id: ConnId, read: bool) -> bool {
        let Some(slot) = self.slots().get(i) else {
            return false;
        };
        slot.id() == id
            && if read {
                slot.can_read_direct()
            } else {
                slot.can_send_direct()
            }
    }

    /// Slot `i`'s async task waits (or stops waiting) in a read straight
    /// from the socket: while it does, polls leave the socket to it (no
    /// receive, no readable interest).
    pub(crate) fn set_direct_reader(&mut self, i: usize, waiting: bool) {
        if let Some(slot) = self.slots_mut().get_mut(i) {
            slot.set_direct_reader(waiting);
        }
    }

    /// Whether a poll can pass slot `i` by on a stack that reports no
    /// readiness: its async task reads the socket itself, nothing is queued
    /// to send, and the slot is not in the ready set (no deadline due, no
    /// work of its own).
    pub(crate) fn left_to_its_reader(&self, i: usize) -> bool {
        let slot = &self.slots()[i];
        slot.direct_reader_idle() && !self.ready.contains(i)
    }

    /// Reports the stack's answer to a receive (`read`) or send that moved
    /// bytes straight between slot `i`'s socket and its async handler. True
    /// if the connection changed in a way only a poll carries out (the end
    /// of stream, an error that ends it): the slot is ready for the next
    /// poll.
    #[cold]
    pub(crate) fn complete_direct(&mut self, i: usize, now: Instant, event: Event) -> bool {
        match event {
            Event::Received(n) if n > 0 => self.moved_direct(i, now, n, true),
            Event::Sent(n) if n > 0 => self.moved_direct(i, now, n, false),
            Event::Received(_) | Event::Sent(_) | Event::WouldBlock => {}
            Event::EndOfStream => {
                self.slots_mut()[i].peer_finished();
                self.refresh(i);
                return true;
            }
            Event::Error(kind) => {
                // Ended at the slot's next turn, by the driver: the task
                // that failed must not run `on_closed` from inside its read.
                self.slots_mut()[i].fail_direct(kind);
                self.ready.push(i);
                return true;
            }
        }
        false
    }

    /// `n` (> 0) bytes moved straight between slot `i`'s socket and its
    /// async handler: received (`read`) or sent. Counts them and records
    /// the activity.
    #[inline(always)]
    pub(crate) fn moved_direct(&mut self, i: usize, now: Instant, n: usize, read: bool) {
        let slot = &mut self.slots.borrow_mut()[i];
        // The activity list is in the order of the slots' last activity: a
        // slot whose time does not change (more moves within one tick of
        // the clock) keeps its place among its equals.
        let later = slot.last_activity() != now;
        if read {
            slot.received_direct(n, now);
            self.stats.bytes_in += n as u64;
        } else {
            slot.sent_direct(n, now);
            self.stats.bytes_out += n as u64;
        }
        // Activity moved the slot to the back of the activity list; nothing
        // else of its scheduling changed.
        if later {
            self.lru.push_back(i);
        }
    }

    /// The unconsumed input of the live connection `id` in slot `i`.
    pub fn input(&self, i: usize, id: ConnId) -> Option<&[u8]> {
        let slot = self
            .slots()
            .get(i)
            .filter(|s| s.is_live() && s.id() == id)?;
        Some(slot.input())
    }

    // --------------------------------------------------------------- polls

    /// Starts a poll at `now` (which must not go backwards).
    ///
    /// Slots whose deadline has come (a request deadline, a write stall,
    /// the end of a linger, the idle timeout) join the ready set.
    pub fn begin_poll(&mut self, now: Instant) {
        self.last_now = now;
        self.progressed = false;
        while let Some(i) = self.timers.pop_due(now) {
            self.ready.push(i);
        }
        if let Some(idle) = self.config().idle_timeout {
            let mut at = self.lru.first();
            while let Some(i) = at {
                if !self.slots()[i].idle_for(now, idle) {
                    break;
                }
                self.ready.push(i);
                at = self.lru.after(i);
            }
        }
    }

    /// Slot `i`'s socket is ready (as the backend reports): it joins the
    /// ready set, to be serviced at the next poll.
    pub fn mark_ready(&mut self, i: usize) {
        if i < N {
            self.ready.push(i);
        }
    }

    /// How many slots are in the ready set. A driver that services only
    /// ready slots takes this many with [`next_ready`](Self::next_ready) in
    /// one poll; a slot that becomes ready again meanwhile waits for the next
    /// poll (each ready slot gets one turn per poll, in the order it became
    /// ready).
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Takes the next slot from the ready set: the driver services it
    /// ([`next_action`](Self::next_action) until [`Action::Done`]).
    pub fn next_ready(&mut self) -> Option<usize> {
        self.ready.pop()
    }

    /// Brings slot `i`'s entries in the ready set, the activity list and the
    /// deadline queue up to date after something happened to it.
    fn refresh(&mut self, i: usize) {
        let write_stall = self.config().write_stall;
        let slot = &self.slots()[i];
        match slot.state() {
            SlotState::Free => {
                self.lru.remove(i);
                self.timers.set(i, None);
            }
            SlotState::Open | SlotState::PeerClosed => {
                let since = slot.last_activity();
                let due = match (
                    slot.deadline(),
                    write_stall.and_then(|d| slot.stall_deadline(d)),
                ) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let work = slot.has_work_now();
                let to_back = match self.lru.last() {
                    Some(last) if last == i => false,
                    Some(last) => {
                        !self.lru.contains(i) || since >= self.slots()[last].last_activity()
                    }
                    None => true,
                };
                if to_back {
                    self.lru.push_back(i);
                }
                self.timers.set(i, due);
                if work {
                    self.ready.push(i);
                }
            }
            SlotState::Closing { deadline, .. } => {
                let flushed = slot.tx_is_empty();
                self.lru.remove(i);
                if flushed {
                    self.timers.set(i, None);
                    self.ready.push(i);
                } else {
                    self.timers.set(i, Some(deadline));
                }
            }
        }
    }

    /// Ends a poll: true if anything happened since
    /// [`begin_poll`](Self::begin_poll) (a byte moved, a connection opened
    /// or closed).
    pub fn end_poll(&mut self) -> bool {
        self.progressed
    }

    fn pool_full(&self) -> bool {
        self.active() >= self.max_connections()
    }

    /// The slot to evict under `EvictIdlest`: live, idle at least
    /// `min_idle`, idle longest, oldest id on ties.
    ///
    /// The least recently active slot heads the activity list; only the
    /// slots as idle as it are looked at.
    fn eviction_candidate(&self, now: Instant, min_idle: Duration) -> Option<usize> {
        let slots = self.slots();
        let first = self.lru.first()?;
        if !slots[first].idle_for(now, min_idle) {
            return None;
        }
        let since = slots[first].last_activity();
        let mut best = first;
        let mut at = self.lru.after(first);
        while let Some(i) = at {
            if slots[i].last_activity() != since {
                break;
            }
            if slots[i].id() < slots[best].id() {
                best = i;
            }
            at = self.lru.after(i);
        }
        Some(best)
    }

    /// Whether an accepted client could be placed or refused at `now`.
    fn wants_accept(&self, now: Instant) -> bool {
        if !self.listening || self.accept_retry_at.is_some_and(|t| now < t) {
            return false;
        }
        if !self.pool_full() {
            return true;
        }
        match self.config().when_full {
            WhenFull::Defer => false,
            WhenFull::Reject => true,
            WhenFull::EvictIdlest { min_idle } => self.eviction_candidate(now, min_idle).is_some(),
        }
    }

    /// Whether the driver should call `accept` now. Counts the pool filling
    /// up under [`WhenFull::Defer`] (once per filling).
    pub fn should_accept(&mut self, now: Instant) -> bool {
        if self.accept_retry_at.is_some_and(|t| now >= t) {
            self.accept_retry_at = None;
        }
        if self.listening && self.pool_full() && self.config().when_full == WhenFull::Defer {
            if !self.deferring {
                self.deferring = true;
                bump(&mut self.stats.deferred);
                debug!(
                    "pool full ({} connections): new clients wait in the backlog",
                    self.active()
                );
            }
            return false;
        }
        self.deferring = false;
        self.wants_accept(now)
    }

    /// `accept` failed (out of sockets, out of memory, ...): counted, and no
    /// accept is tried again before the backoff passes.
    pub fn accept_failed(&mut self, now: Instant) {
        bump(&mut self.stats.accept_errors);
        let backoff = self.config().accept_backoff;
        warning!(
            "accept failed; retrying in {} ms",
            backoff.as_millis() as u64
        );
        self.accept_retry_at = Some(now + backoff);
    }

    /// Closing a socket failed (the slot is free regardless): counted.
    pub fn close_failed(&mut self) {
        bump(&mut self.stats.close_errors);
    }

    /// Decides what happens to a client just accepted from `peer`.
    ///
    /// Admission is decided before anything else: a client over the per-IP
    /// cap or refused by [`Handler::admit`] is refused and never costs
    /// another client its slot. Only then, if the pool is full, does
    /// [`WhenFull`] apply: `Reject` refuses with the banner, `EvictIdlest`
    /// evicts the idlest connection idle at least `min_idle` (or refuses if
    /// none is).
    pub fn admit(&mut self, peer: SocketAddr, now: Instant) -> Admission {
        self.progressed = true;
        let config = *self.config();
        let full = self.pool_full();
        if full && config.when_full == WhenFull::Reject {
            bump(&mut self.stats.refused);
            return Admission::Refuse {
                banner: config.reject_banner,
            };
        }
        let over_ip_cap = config.max_per_ip.is_some_and(|cap| {
            self.slots()
                .iter()
                .filter(|s| !s.is_free() && s.peer().ip() == peer.ip())
                .count()
                >= cap
        });
        if over_ip_cap || !self.handler.admit(peer) {
            debug!(
                "refused a client ({})",
                if over_ip_cap { "per-IP cap" } else { "handler" }
            );
            bump(&mut self.stats.refused);
            return Admission::Refuse { banner: b"" };
        }
        let mut evicted = None;
        if full {
            let candidate = match config.when_full {
                WhenFull::EvictIdlest { min_idle } => self.eviction_candidate(now, min_idle),
                _ => None,
            };
            let Some(victim) = candidate else {
                bump(&mut self.stats.refused);
                return Admission::Refuse { banner: b"" };
            };
            bump(&mut self.stats.evicted);
            debug!(
                "evicting conn {} (idlest) for a new client",
                self.slots.borrow_mut()[victim].id()
            );
            self.release(victim, CloseReason::Evicted, true, now);
            // The driver aborts the victim's socket as part of this
            // admission, not through a later action.
            self.slots.borrow_mut()[victim].set_step(Step::Idle);
            evicted = Some(victim);
        }
        let Some(i) = self.slots().iter().position(|s| s.is_free()) else {
            // Unreachable while `active` is kept right; refuse rather than panic.
            bump(&mut self.stats.refused);
            return Admission::Refuse { banner: b"" };
        };
        let id = ConnId::new(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        bump(&mut self.stats.accepted);
        bump(&mut self.stats.active);
        self.stats.peak_active = self.stats.peak_active.max(self.stats.active);
        let Pool {
            slots,
            stats,
            handler,
            ..
        } = self;
        let slot = &mut slots.borrow_mut()[i];
        slot.open(id, peer, now);
        let state = slot.with_conn(now, stats, |conn, _| handler.on_open(conn));
        slot.set_user(state);
        if let Some(victim) = evicted {
            self.refresh(victim);
        }
        // A new connection gets a turn at once: input may be waiting, and
        // its socket is not watched yet.
        self.ready.push(i);
        self.refresh(i);
        Admission::Open { slot: i, evicted }
    }

    /// Frees slot `i`: counts the reason, hands the state back to the
    /// handler, and leaves the socket for the driver to close (or abort,
    /// with `reset`) at its next action.
    fn release(&mut self, i: usize, reason: CloseReason, reset: bool, now: Instant) {
        let slot = &mut self.slots.borrow_mut()[i];
        if slot.is_free() {
            return;
        }
        if reason.is_error() {
            warning!("conn {} closed: {}", slot.id(), reason);
        } else {
            debug!("conn {} closed: {}", slot.id(), reason);
        }
        let closed = slot.closed(reason, now);
        let state = slot.release(reset);
        self.stats.closed.record(reason);
        self.stats.active = self.stats.active.saturating_sub(1);
        self.progressed = true;
        if let Some(state) = state {
            self.handler.on_closed(&closed, state);
        }
    }

    /// The slot's connection ends on a stack error of `kind`.
    fn fail(&mut self, i: usize, kind: TcpErrorKind, now: Instant) {
        self.slots.borrow_mut()[i].set_error(kind);
        let reason = match kind {
            TcpErrorKind::PipeClosed => CloseReason::Reset,
            _ => CloseReason::StackError,
        };
        self.release(i, reason, false, now);
    }

    /// Marks every connection for shutdown: at the next actions each slot
    /// sends what the stack takes right away, then is closed with
    /// [`CloseReason::Shutdown`].
    pub fn begin_shutdown(&mut self) {
        for slot in self.slots_mut() {
            if !slot.is_free() {
                slot.begin_service(0);
                slot.set_step(Step::ShutdownFlush);
            }
        }
    }

    /// The next thing to do for slot `i` in this poll. Call it until it
    /// returns [`Action::Done`], reporting the stack's answer to each
    /// `Send` and `Receive` with [`complete`](Self::complete).
    pub fn next_action(&mut self, i: usize, now: Instant) -> Action<'_> {
        loop {
            let slot = &mut self.slots.borrow_mut()[i];
            let step = slot.step();
            if step == Step::Idle {
                // This is the slot's turn.
                self.ready.remove(i);
            }
            let slot = &mut self.slots.borrow_mut()[i];
            match step {
                Step::Idle => match slot.state() {
                    SlotState::Free => {
                        self.refresh(i);
                        return Action::Done;
                    }
                    SlotState::Closing { .. } => {
                        slot.begin_service(0);
                        slot.set_step(Step::CloseFlush);
                    }
                    SlotState::Open | SlotState::PeerClosed => {
                        if let Some(kind) = slot.take_direct_failure() {
                            self.fail(i, kind, now);
                            continue;
                        }
                        let budget = match self.config().read_budget {
                            0 => RX,
                            b => b,
                        };
                        let slot = &mut self.slots.borrow_mut()[i];
                        slot.begin_service(budget);
                        slot.set_step(Step::FlushFirst);
                    }
                },
                Step::FlushFirst
                | Step::FlushAfter
                | Step::FlushAfterMore
                | Step::CloseFlush
                | Step::ShutdownFlush
                    if !slot.tx_is_empty() && !slot.send_blocked() =>
                {
                    return Action::Send(self.slots.borrow_mut()[i].tx_pending());
                }
                Step::FlushFirst => {
                    slot.begin_read();
                    slot.set_step(Step::Read);
                }
                Step::Read => {
                    if slot.can_read() {
                        if slot.budget() > 0 {
                            return Action::Receive(self.slots.borrow_mut()[i].receive_buffer());
                        }
                        slot.budget_spent();
                    }
                    self.after_read(i, now);
                }
                Step::FlushAfter => {
                    slot.set_step(Step::Finished);
                }
                Step::CloseFlush => {
                    let SlotState::Closing { reason, deadline } = slot.state() else {
                        slot.set_step(Step::Finished);
                        continue;
                    };
                    if slot.tx_is_empty() {
                        self.release(i, reason, false, now);
                    } else if now >= deadline {
                        bump(&mut self.stats.linger_expired);
                        warning!(
                            "conn {}: output not flushed within the linger time",
                            slot.id()
                        );
                        self.release(i, reason, false, now);
                    } else {
                        slot.set_step(Step::Finished);
                    }
                }
                Step::ShutdownFlush => {
                    self.release(i, CloseReason::Shutdown, false, now);
                }
                Step::Release => {
                    slot.set_step(Step::Finished);
                    return Action::Close;
                }
                Step::ReleaseReset => {
                    slot.set_step(Step::Finished);
                    return Action::Abort;
                }
                Step::Finished => {
                    slot.set_step(Step::Idle);
                    self.refresh(i);
                    return Action::Done;
                }
                Step::FlushAfterMore => {
                    if slot.wants_another_round(true) {
                        slot.begin_read();
                        slot.set_step(Step::Read);
                    } else {
                        slot.set_step(Step::Finished);
                    }
                }
            }
        }
    }

    /// Reading is over for this round: run the callbacks, then decide
    /// whether the connection goes on, closes or aborts.
    fn after_read(&mut self, i: usize, now: Instant) {
        let config = *self.config();
        let Pool {
            slots,
            stats,
            handler,
            ..
        } = self;
        let slot = &mut slots.borrow_mut()[i];
        let filled = slot.filled_with_budget_left();
        slot.run_callbacks(now, stats, handler);
        if slot.overflowed() {
            warning!(
                "conn {}: a frame does not fit the {}-byte receive buffer",
                slot.id(),
                RX
            );
            slot.set_request(Request::Close(CloseReason::RxOverflow));
        }
        slot.track_tx_wait(now);
        if let Some(idle) = config.idle_timeout
            && slot.idle_for(now, idle)
        {
            slot.set_request(Request::Close(CloseReason::IdleTimeout));
        }
        if slot.deadline().is_some_and(|t| now >= t) {
            debug!("conn {}: request deadline passed", slot.id());
            slot.set_request(Request::Close(CloseReason::RequestTimeout));
        }
        if let Some(stall) = config.write_stall
            && slot.stall_deadline(stall).is_some_and(|t| now >= t)
            && slot.request() == Request::None
        {
            warning!(
                "conn {}: the peer took no output for {} ms",
                slot.id(),
                stall.as_millis() as u64
            );
            self.release(i, CloseReason::WriteStall, true, now);
            return;
        }
        match slot.request() {
            Request::None => slot.set_step(if filled {
                Step::FlushAfterMore
            } else {
                Step::FlushAfter
            }),
            Request::Abort => self.release(i, CloseReason::Aborted, true, now),
            Request::Close(reason) => {
                slot.begin_close(reason, now, config.linger);
                slot.set_step(Step::CloseFlush);
                self.progressed = true;
            }
        }
    }

    /// Reports what the stack answered to the last [`Action::Send`] or
    /// [`Action::Receive`] of slot `i`.
    pub fn complete(&mut self, i: usize, now: Instant, event: Event) {
        let slot = &mut self.slots.borrow_mut()[i];
        match event {
            Event::Sent(0) | Event::WouldBlock if slot.step() == Step::Read => {
                slot.set_recv_blocked();
            }
            Event::Sent(0) | Event::WouldBlock => slot.set_send_blocked(),
            Event::Received(0) => slot.set_recv_blocked(),
            Event::Sent(n) => {
                let before = slot.bytes_out();
                slot.sent(n, now);
                self.stats.bytes_out += slot.bytes_out() - before;
                self.progressed = true;
            }
            Event::Received(n) => {
                let before = slot.bytes_in();
                slot.received(n, now);
                self.stats.bytes_in += slot.bytes_in() - before;
                self.progressed = true;
            }
            Event::EndOfStream => {
                slot.peer_finished();
                self.progressed = true;
            }
            Event::Error(kind) => self.fail(i, kind, now),
        }
    }

    // ------------------------------------------------------------- waiting

    /// Whether the driver should wait for its listener to be readable.
    pub fn wants_listener(&self) -> bool {
        self.wants_accept(self.last_now)
    }

    /// The readiness to wait for on slot `i`'s socket.
    pub fn interest(&self, i: usize) -> Interest {
        self.slots()[i].interest()
    }

    /// What a driver that sleeps on sockets waits for on slot `i`'s: its
    /// [`interest`](Self::interest), but not readability while an async
    /// task reads the socket itself (its own `WouldBlock` registered the
    /// wake-up; waiting for it again would wake the driver for input that
    /// only the task takes).
    pub(crate) fn wait_interest(&self, i: usize) -> Interest {
        let slot = &self.slots()[i];
        let mut interest = slot.interest();
        interest.readable &= !slot.direct_reader();
        interest
    }

    /// The latest time by which the driver must poll again even if no
    /// socket becomes ready: the nearest idle or linger deadline, the end of
    /// an accept backoff, an eviction becoming possible (while none is), or the time of the
    /// last poll if there is work left right now. `None`: nothing is due
    /// until a socket is ready.
    pub fn poll_at(&self) -> Option<Instant> {
        // Answered from the heads of the ready set, the activity list and
        // the deadline queue: no slot is visited.
        let now = self.last_now;
        if !self.ready.is_empty() {
            return Some(now);
        }
        let config = self.config();
        let mut next: Option<Instant> = None;
        let mut soon = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let Some(t) = self.accept_retry_at {
            soon(t);
        }
        if let Some((t, _)) = self.timers.peek() {
            soon(t);
        }
        if let Some(first) = self.lru.first() {
            let least_recent = self.slots()[first].last_activity();
            if let Some(idle) = config.idle_timeout {
                soon(least_recent + idle);
            }
            if self.pool_full()
                && let WhenFull::EvictIdlest { min_idle } = config.when_full
                && self.listening
                // Once an eviction is possible the listener's readiness is
                // waited on instead: a passed deadline here would spin.
                && least_recent + min_idle > now
            {
                soon(least_recent + min_idle);
            }
        }
        next
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
