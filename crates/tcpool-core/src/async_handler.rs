//! Async handlers: sequential per-connection code over the same pool.
//!
//! A callback [`Handler`] reacts to input; an [`AsyncHandler`] is written
//! the way a MicroPython asyncio server is: one `async fn` per connection
//! that reads, thinks and writes in order. Its [`AsyncConn`] implements
//! `embedded_io_async::Read`, `BufRead` and `Write` over the slot's own
//! buffers. The pool underneath is the same, so every guarantee holds the
//! same way: `read` returns `Ok(0)` only after every byte received before
//! the peer's end of stream; a frame that can never fit the receive buffer
//! closes with `rx_overflow`; admission, `WhenFull`, the per-IP cap, the
//! idle, request and write-stall timeouts, linger, the stats and the close
//! reasons are the pool's.
//!
//! [`serve`] runs it: the nb [`Server`] (its handler is an [`Adapter`] over
//! yours) and one task per slot, all in one future of fixed size — `N`
//! handler futures, no allocator. `core::mem::size_of_val` of that future
//! is the whole cost.
//!
//! ```
//! use tcpool_core::async_handler::{AsyncConn, AsyncHandler};
//! use tcpool_core::CloseReason;
//! use embedded_io_async::{Read, Write};
//!
//! /// Echo, one connection at a time per task, in plain sequential code.
//! struct Echo;
//!
//! impl AsyncHandler for Echo {
//!     async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
//!         let mut buf = [0u8; 256];
//!         loop {
//!             let n = conn.read(&mut buf).await?;
//!             if n == 0 {
//!                 return Ok(()); // the peer finished: close after the output
//!             }
//!             conn.write_all(&buf[..n]).await?;
//!         }
//!     }
//! }
//! ```
//!
//! One rule: the slice from `BufRead::fill_buf` (and [`AsyncConn::fill_more`]) borrows the
//! pool. Hold it across an `.await` of anything but this connection's own
//! methods and the pool cannot run; the driver then closes that connection
//! (reason `protocol`, logged) rather than stall every other one.

use core::cell::{Cell, Ref, RefCell};
use core::future::{Future, poll_fn};
use core::marker::PhantomData;
use core::net::SocketAddr;
use core::ops::DerefMut;
use core::pin::pin;
use core::task::{Poll, Waker};

use embassy_futures::join::{join, join_array};
use embassy_futures::select::{Either, select};

use crate::asynch::{Armed, AsyncBackend, Clock, ROUNDS_PER_WAKE, drive};
use crate::backend::Backend;
use crate::fmt::warning;
use crate::handler::{CloseReason, Closed, Conn, ConnId, Handler};
use crate::server::{Direct, DirectIo, Server};
use crate::stats::Stats;
use crate::time::Instant;

/// Sequential per-connection code: the second kind of handler.
///
/// `serve` runs once per connection, in its slot's task, and returns when
/// the connection should close: `Ok(())` closes it gracefully (pending
/// output is sent first), `Err(reason)` closes it with that reason. If the
/// connection ends first (the peer resets, a timeout fires), the future is
/// dropped.
#[allow(async_fn_in_trait)] // tasks run on one executor thread: no `Send` needed
pub trait AsyncHandler {
    /// Decides whether a new peer may connect, before it takes a slot (as
    /// [`Handler::admit`]).
    fn admit(&self, peer: SocketAddr) -> bool {
        let _ = peer;
        true
    }

    /// Serves one connection.
    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason>;

    /// The connection ended (as [`Handler::on_closed`]): once per
    /// connection, whatever ended it.
    fn on_closed(&self, closed: &Closed) {
        let _ = closed;
    }
}

/// An [`AsyncHandler`] seen as the pool's callback [`Handler`]: it leaves
/// input in the slot for the connection's task to read, and records
/// nothing itself. Make one with [`Adapter::new`]; see [`AsyncServer`].
pub struct Adapter<'h, A> {
    handler: &'h A,
}

impl<'h, A: AsyncHandler> Adapter<'h, A> {
    /// The adapter over `handler`, which the connection tasks share.
    pub const fn new(handler: &'h A) -> Self {
        Adapter { handler }
    }
}

impl<A: AsyncHandler> Handler for Adapter<'_, A> {
    type State = ();
    const DEFERS_INPUT: bool = true;

    fn admit(&mut self, peer: SocketAddr) -> bool {
        self.handler.admit(peer)
    }

    fn on_open(&mut self, _conn: &mut Conn<'_>) {}

    fn on_data(&mut self, _conn: &mut Conn<'_>, _: &mut (), _data: &[u8]) -> usize {
        0 // the connection's task reads it
    }

    fn on_peer_closed(&mut self, _conn: &mut Conn<'_>, _: &mut ()) {
        // The task sees the end of stream as `read` returning 0.
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        self.handler.on_closed(closed);
    }
}

/// A server whose connections are served by an [`AsyncHandler`].
pub type AsyncServer<'h, S, A, const N: usize, const RX: usize, const TX: usize> =
    Server<S, Adapter<'h, A>, N, RX, TX>;

/// Why an [`AsyncConn`] operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConnError {
    /// The connection has ended (reset by the peer, timed out, closing).
    #[error("the connection has ended")]
    Closed,
    /// More input was asked for with the receive buffer full: the frame can
    /// never fit. The connection closes with `rx_overflow`.
    #[error("the receive buffer is full")]
    RxOverflow,
}

impl embedded_io_async::Error for ConnError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        match self {
            ConnError::Closed => embedded_io_async::ErrorKind::NotConnected,
            ConnError::RxOverflow => embedded_io_async::ErrorKind::OutOfMemory,
        }
    }
}

impl From<ConnError> for CloseReason {
    /// `?` in [`AsyncHandler::serve`]: a closed connection ends it as the
    /// pool already decided; an overflow as `rx_overflow`.
    fn from(e: ConnError) -> CloseReason {
        match e {
            ConnError::Closed => CloseReason::Local,
            ConnError::RxOverflow => CloseReason::RxOverflow,
        }
    }
}

/// What one slot's task and the driver share.
#[derive(Default)]
struct Lane {
    /// The connection the driver handed this slot's task.
    conn: Cell<Option<ConnId>>,
    /// The connection the task serves or served last.
    served: Cell<Option<ConnId>>,
    /// The pool ended the connection, or the driver must: drop its future.
    kill: Cell<bool>,
    /// The task holds a `fill_buf` slice.
    holding: Cell<bool>,
    /// Input consumed while the pool was busy, applied at the next access.
    pending_consume: Cell<usize>,
    /// A `read` found no input left and the peer not finished since the
    /// driver's last round: only a round adds input or sees the end of
    /// stream, so until the next one another `read` would find the same
    /// (and need not ask the pool).
    drained: Cell<bool>,
    /// The task waits in a `read` straight from the socket: the driver
    /// leaves the socket to it.
    reading: Cell<bool>,
    /// The task's handler is running.
    serving: Cell<bool>,
}

/// The pool as the connection tasks see it, without its stack and sizes.
trait Lanes {
    fn lane(&self, slot: usize) -> &Lane;
    fn now(&self) -> Instant;
    /// Runs `f` on the connection; `Ok(false)` if the pool is busy (another
    /// task holds a `fill_buf` slice), so nothing ran.
    fn with_io(
        &self,
        slot: usize,
        id: ConnId,
        f: &mut dyn FnMut(&mut Conn<'_>, &[u8]) -> usize,
    ) -> Result<bool, ConnError>;
    fn input(&self, slot: usize, id: ConnId) -> Option<Ref<'_, [u8]>>;
    /// Receives straight from the connection's socket into `buf`, if a
    /// handle on the stack was lent and no buffered input comes first
    /// ([`DirectIo::NotNow`] otherwise).
    fn read_direct(&self, slot: usize, id: ConnId, buf: &mut [u8]) -> DirectIo;
    /// Sends straight from `buf` to the connection's socket, if a handle on
    /// the stack was lent and no queued output comes first
    /// ([`DirectIo::NotNow`] otherwise).
    fn write_direct(&self, slot: usize, id: ConnId, buf: &[u8]) -> DirectIo;
    /// Another driver round is needed (output queued, input consumed).
    fn kick(&self);
}

/// The connection tasks of an [`AsyncHandler`] and what they share with
/// the driver that polls the server: the state [`serve`] keeps, for a
/// program that polls the server itself.
///
/// [`serve`] is the usual way to run async handlers; `Tasks` is its inside,
/// for a test harness or an event loop that already steps a [`Server`]
/// with [`Server::poll`] and wants async handlers on it. `P` holds the
/// server: `&mut AsyncServer` or an owned (boxed) one. The server is lent
/// to the tasks with [`lend`](Tasks::lend) and taken back with
/// [`take`](Tasks::take); between the two, one turn is:
///
/// 1. [`step`](Tasks::step) with the server's poll in it: it runs the poll
///    and then hands each task the connection in its slot (and ends the
///    tasks whose connection the pool has ended);
/// 2. poll the future of [`run`](Tasks::run) once: each task reads and
///    writes as far as it can. A task that queued output or consumed input
///    wakes the waker given to `step`: the server has work, step again.
///
/// ```
/// use core::pin::pin;
/// use core::task::{Context, Waker};
/// use embedded_io_async::{Read, Write};
/// use tcpool_core::async_handler::{Adapter, AsyncConn, AsyncHandler, AsyncServer, Tasks};
/// use tcpool_core::mock::MockStack;
/// use tcpool_core::{CloseReason, Config, Instant, Server};
///
/// struct Shout;
/// impl AsyncHandler for Shout {
///     async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
///         let mut buf = [0u8; 16];
///         let n = conn.read(&mut buf).await?;
///         buf[..n].make_ascii_uppercase();
///         conn.write_all(&buf[..n]).await?;
///         Ok(())
///     }
/// }
///
/// let handler = Shout;
/// let mut stack = MockStack::new();
/// let mut server: AsyncServer<'_, MockStack, Shout, 2, 64, 64> =
///     Server::new(Adapter::new(&handler), Config::new());
/// server.listen(&mut stack, 7).unwrap();
/// let client = stack.connect_client(7).unwrap();
/// client.send(b"hey");
///
/// let tasks = Tasks::new();
/// tasks.lend(&mut server);
/// let mut run = pin!(tasks.run(&handler));
/// let mut cx = Context::from_waker(Waker::noop());
/// for _ in 0..4 {
///     tasks.step(Instant::ZERO, Waker::noop(), |s| s.poll(&mut stack, Instant::ZERO));
///     let _ = run.as_mut().poll(&mut cx);
/// }
/// assert_eq!(client.recv_all(), b"HEY");
/// assert!(tasks.take().is_some());
/// ```
pub struct Tasks<'h, S, A, P, const N: usize, const RX: usize, const TX: usize>
where
    S: Backend,
    A: AsyncHandler,
    P: DerefMut<Target = AsyncServer<'h, S, A, N, RX, TX>>,
{
    server: RefCell<Option<Lent<'h, S, A, P, N, RX, TX>>>,
    /// A handle on the stack ([`AsyncBackend::share`]), for reads and writes
    /// straight between sockets and handlers.
    stack: RefCell<Option<S>>,
    /// Bytes moved straight between a socket and a handler since
    /// [`take_moved`](Tasks::take_moved).
    moved: Cell<bool>,
    lanes: [Lane; N],
    now: Cell<Instant>,
    waker: RefCell<Option<Waker>>,
    /// A task asked for another round since this was last cleared.
    kicked: Cell<bool>,
    /// [`serve`] runs the rounds itself (it reads `kicked`): a task asking
    /// for one need not wake the waker.
    batching: Cell<bool>,
    /// The driver's last round (in [`serve`]) left it waiting for none of
    /// the server's sockets, and no task asked for a round since.
    unwatched: Cell<bool>,
    /// The deadline the driver's last round armed.
    due: Cell<Option<Instant>>,
    _server: PhantomData<fn(&'h A, S)>,
}

impl<'h, S, A, P, const N: usize, const RX: usize, const TX: usize> Default
    for Tasks<'h, S, A, P, N, RX, TX>
where
    S: Backend,
    A: AsyncHandler,
    P: DerefMut<Target = AsyncServer<'h, S, A, N, RX, TX>>,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<'h, S, A, P, const N: usize, const RX: usize, const TX: usize> Tasks<'h, S, A, P, N, RX, TX>
where
    S: Backend,
    A: AsyncHandler,
    P: DerefMut<Target = AsyncServer<'h, S, A, N, RX, TX>>,
{
    /// No server yet, no connection handed out.
    pub fn new() -> Self {
        Tasks {
            server: RefCell::new(None),
            stack: RefCell::new(None),
            moved: Cell::new(false),
            lanes: core::array::from_fn(|_| Lane::default()),
            now: Cell::new(Instant::ZERO),
            waker: RefCell::new(None),
            kicked: Cell::new(false),
            batching: Cell::new(false),
            unwatched: Cell::new(false),
            due: Cell::new(None),
            _server: PhantomData,
        }
    }

    /// Lends the server to the tasks (replacing one lent before).
    pub fn lend(&self, server: P) {
        self.server.replace(Some(Lent {
            server,
            _server: PhantomData,
        }));
        self.new_round();
    }

    /// Whether a task moved bytes straight between its socket and its
    /// handler since the last call (through the stack handle lent with
    /// [`lend_stack`](Tasks::lend_stack)): such a move asks nothing of the
    /// server, so it does not wake the driver, but it is progress.
    pub fn take_moved(&self) -> bool {
        self.moved.replace(false)
    }

    /// Takes the server back; `None` if none is lent, or if a task holds a
    /// `fill_buf` slice across an await (then [`step`](Tasks::step) marks it
    /// to be ended: poll the tasks and try again).
    pub fn take(&self) -> Option<P> {
        Some(self.server.try_borrow_mut().ok()?.take()?.server)
    }

    /// One turn of the driver: with `now` as the tasks' time and `waker` as
    /// the one woken when a task needs the server polled again, runs `poll`
    /// on the server (normally [`Server::poll`] and whatever else the
    /// driver does), then hands each task the connection in its slot and
    /// ends the tasks whose connection the pool has ended.
    ///
    /// `None` (and `poll` not run) if no server is lent, or if a task holds
    /// a `fill_buf` slice across an await: that task is marked to be ended
    /// (its connection closes with `protocol`), and `waker` is woken.
    pub fn step<R>(
        &self,
        now: Instant,
        waker: &Waker,
        poll: impl FnOnce(&mut AsyncServer<'h, S, A, N, RX, TX>) -> R,
    ) -> Option<R> {
        {
            let mut mine = self.waker.borrow_mut();
            match mine.as_mut() {
                Some(w) => w.clone_from(waker),
                None => *mine = Some(waker.clone()),
            }
        }
        self.now.set(now);
        let Ok(mut server) = self.server.try_borrow_mut() else {
            self.end_holders();
            waker.wake_by_ref();
            return None;
        };
        let server = &mut *server.as_mut()?.server;
        // While a task waits in a read straight from its socket, the poll
        // leaves that socket to it. Only during the poll: between polls the
        // server is the plain nb server.
        let direct = self.stack.borrow().is_some();
        if direct {
            for (slot, lane) in self.lanes.iter().enumerate() {
                server.set_direct_reader(slot, lane.reading.get());
            }
        }
        let out = poll(server);
        if direct {
            for slot in 0..N {
                server.set_direct_reader(slot, false);
            }
        }
        self.new_round();
        self.hand_out(server);
        Some(out)
    }

    /// The server may have new input for every task.
    fn new_round(&self) {
        for lane in &self.lanes {
            lane.drained.set(false);
        }
    }

    /// Whether a wake-up at `now` can only be for the tasks, so that
    /// [`serve`] may skip the server's round: its last round left the
    /// driver waiting for none of the server's sockets (nothing to accept,
    /// no queued output, every connection's input left to its task), no
    /// task asked for a round since, every task with a connection still
    /// waits in a read straight from its socket (so a round would leave
    /// every socket to them again), the deadline has not come, no task
    /// holds the pool, and the waker is the one registered. Then the tasks
    /// just read what their sockets brought; if so, this is their new
    /// round.
    fn idle_wake(&self, now: Instant, waker: &Waker) -> bool {
        let idle = self.due.get().is_none_or(|due| now < due)
            && self
                .lanes
                .iter()
                .all(|lane| !lane.serving.get() || lane.reading.get())
            && self.server.try_borrow_mut().is_ok()
            && self
                .waker
                .borrow()
                .as_ref()
                .is_some_and(|w| w.will_wake(waker));
        if idle {
            self.now.set(now);
            self.new_round();
        }
        idle
    }

    /// The connection tasks, one per slot, in one future that never
    /// completes: each waits for a connection in its slot, serves it with
    /// `handler` until the handler returns or the pool ends it, and waits
    /// again. Poll it after each [`step`](Tasks::step).
    pub async fn run(&self, handler: &A) {
        let lanes: &dyn Lanes = self;
        join_array(core::array::from_fn::<_, N, _>(|slot| {
            lane_task(slot, handler, lanes)
        }))
        .await;
    }

    /// Marks every task holding a `fill_buf` slice across an await to be
    /// ended (its future is dropped, which frees the pool).
    fn end_holders(&self) {
        for (slot, lane) in self.lanes.iter().enumerate() {
            if lane.holding.get() && !lane.kill.get() {
                warning!(
                    "slot {}: the handler held input across an await; closing",
                    slot
                );
                lane.kill.set(true);
            }
        }
    }

    /// Hands each task the connection in its slot; a task whose connection
    /// the pool has ended drops its handler future.
    fn hand_out(&self, server: &mut AsyncServer<'h, S, A, N, RX, TX>) {
        let pool = server.pool_mut();
        for (slot, lane) in self.lanes.iter().enumerate() {
            let live = pool.live_id(slot);
            if let Some(id) = lane.served.get()
                && live != Some(id)
            {
                lane.kill.set(true);
            }
            if live.is_some() {
                lane.conn.set(live);
            }
        }
    }
}

impl<'h, S, A, P, const N: usize, const RX: usize, const TX: usize> Tasks<'h, S, A, P, N, RX, TX>
where
    S: AsyncBackend,
    A: AsyncHandler,
    P: DerefMut<Target = AsyncServer<'h, S, A, N, RX, TX>>,
{
    /// Lends the tasks a handle on the server's stack (from
    /// [`AsyncBackend::share`]): from then on a task's `read` and `write`
    /// move bytes straight between the socket and the handler's buffer
    /// whenever nothing buffered in the slot has to come first. Without
    /// one, everything goes through the slot's buffers.
    pub fn lend_stack(&self, stack: S) {
        self.stack.replace(Some(stack));
    }

    /// Hands the lent stack handle the waker that its `WouldBlock`
    /// answers register (the driver's).
    pub fn register_waker(&self, waker: &Waker) {
        if let Ok(mut stack) = self.stack.try_borrow_mut()
            && let Some(stack) = stack.as_mut()
        {
            stack.register_waker(waker);
        }
    }
}

impl<'h, S, A, P, const N: usize, const RX: usize, const TX: usize> Tasks<'h, S, A, P, N, RX, TX>
where
    S: Backend,
    A: AsyncHandler,
    P: DerefMut<Target = AsyncServer<'h, S, A, N, RX, TX>>,
{
    /// One move straight between a socket and a task's buffer (see
    /// [`Lanes::read_direct`]); inlined into each, so that the direction is
    /// known where it runs.
    #[inline(always)]
    fn move_direct(&self, slot: usize, id: ConnId, io: Direct<'_>) -> DirectIo {
        let (Ok(mut stack), Ok(mut server)) =
            (self.stack.try_borrow_mut(), self.server.try_borrow_mut())
        else {
            return DirectIo::NotNow;
        };
        let (Some(stack), Some(server)) = (stack.as_mut(), server.as_mut()) else {
            return DirectIo::NotNow;
        };
        let done = server
            .server
            .move_direct(stack, slot, id, self.now.get(), io);
        if matches!(done, DirectIo::Moved(n) if n > 0) {
            self.moved.set(true);
        }
        done
    }
}

/// The server lent to [`Tasks`].
struct Lent<'h, S, A, P, const N: usize, const RX: usize, const TX: usize> {
    server: P,
    _server: PhantomData<fn(&'h A, S)>,
}

impl<'h, S, A, P, const N: usize, const RX: usize, const TX: usize> Lanes
    for Tasks<'h, S, A, P, N, RX, TX>
where
    S: Backend,
    A: AsyncHandler,
    P: DerefMut<Target = AsyncServer<'h, S, A, N, RX, TX>>,
{
    fn lane(&self, slot: usize) -> &Lane {
        &self.lanes[slot]
    }

    fn now(&self) -> Instant {
        self.now.get()
    }

    fn with_io(
        &self,
        slot: usize,
        id: ConnId,
        f: &mut dyn FnMut(&mut Conn<'_>, &[u8]) -> usize,
    ) -> Result<bool, ConnError> {
        let Ok(mut server) = self.server.try_borrow_mut() else {
            // Another task holds a `fill_buf` slice across an await; the
            // driver ends that one.
            return Ok(false);
        };
        let Some(server) = server.as_mut() else {
            return Ok(false); // not lent now
        };
        let now = self.now.get();
        let lane = &self.lanes[slot];
        server
            .server
            .pool_mut()
            .with_io(slot, id, now, |conn, input| {
                let skip = lane.pending_consume.take().min(input.len());
                ((), skip + f(conn, &input[skip..]))
            })
            .map(|()| true)
            .ok_or(ConnError::Closed)
    }

    fn input<'b>(&'b self, slot: usize, id: ConnId) -> Option<Ref<'b, [u8]>> {
        let server = self.server.try_borrow().ok()?;
        Ref::filter_map(server, |s| s.as_ref()?.server.pool().input(slot, id)).ok()
    }

    fn read_direct(&self, slot: usize, id: ConnId, buf: &mut [u8]) -> DirectIo {
        self.move_direct(slot, id, Direct::Read(buf))
    }

    fn write_direct(&self, slot: usize, id: ConnId, buf: &[u8]) -> DirectIo {
        self.move_direct(slot, id, Direct::Write(buf))
    }

    fn kick(&self) {
        self.kicked.set(true);
        self.unwatched.set(false);
        if self.batching.get() {
            return; // `serve` polls the driver again before it sleeps
        }
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// One connection as its [`AsyncHandler`] sees it: `embedded_io_async`
/// `Read`, `BufRead` and `Write` over the slot's buffers.
pub struct AsyncConn<'a> {
    lanes: &'a dyn Lanes,
    /// This slot's lane (looked up once).
    lane: &'a Lane,
    slot: usize,
    id: ConnId,
    peer: SocketAddr,
    held: Option<Ref<'a, [u8]>>,
}

impl<'a> AsyncConn<'a> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The time of the driver's last round.
    pub fn now(&self) -> Instant {
        self.lanes.now()
    }

    #[inline]
    fn release(&mut self) {
        if self.held.take().is_some() {
            self.lane.holding.set(false);
        }
    }

    /// Runs `f` on the connection now; `f` returns how much input it used.
    /// `Ok(None)`: the pool is busy, try again when woken.
    fn io<R>(
        &mut self,
        mut f: impl FnMut(&mut Conn<'_>, &[u8]) -> (R, usize),
    ) -> Result<Option<R>, ConnError> {
        self.release();
        let mut out = None;
        self.lanes.with_io(self.slot, self.id, &mut |conn, input| {
            let (r, used) = f(conn, input);
            out = Some(r);
            used
        })?;
        Ok(out)
    }

    /// Polls `f` on the connection until it answers `Some`.
    async fn until<R>(
        &mut self,
        mut f: impl FnMut(&mut Conn<'_>, &[u8]) -> (Option<R>, usize),
    ) -> Result<R, ConnError> {
        poll_fn(|_| match self.io(&mut f) {
            Err(e) => Poll::Ready(Err(e)),
            Ok(Some(Some(r))) => Poll::Ready(Ok(r)),
            Ok(_) => Poll::Pending,
        })
        .await
    }

    /// Gives the connection a deadline ([`Conn::set_deadline`]): if it is
    /// still open at `at`, it closes with `request_timeout`.
    pub async fn set_deadline(&mut self, at: Instant) -> Result<(), ConnError> {
        self.until(|conn, _| {
            conn.set_deadline(at);
            (Some(()), 0)
        })
        .await?;
        // The driver arms its wake-up for the new deadline.
        self.lanes.kick();
        Ok(())
    }

    /// Removes the deadline.
    pub async fn clear_deadline(&mut self) -> Result<(), ConnError> {
        self.until(|conn, _| {
            conn.clear_deadline();
            (Some(()), 0)
        })
        .await
    }

    /// Closes the connection at once with a reset ([`Conn::abort`]):
    /// pending output is discarded and the peer sees a reset (RST), not an
    /// end of stream; the close reason is `aborted`. Return from
    /// [`AsyncHandler::serve`] afterwards (every other operation fails).
    pub async fn abort(&mut self) -> Result<(), ConnError> {
        self.until(|conn, _| {
            conn.abort();
            (Some(()), 0)
        })
        .await?;
        self.lanes.kick();
        Ok(())
    }

    /// The server's counters as they stand now ([`Conn::stats`]).
    pub async fn stats(&mut self) -> Result<Stats, ConnError> {
        self.until(|conn, _| (Some(*conn.stats()), 0)).await
    }

    /// Bytes queued and not yet taken by the stack ([`Conn::tx_pending`]).
    pub async fn tx_pending(&mut self) -> Result<usize, ConnError> {
        self.until(|conn, _| (Some(conn.tx_pending()), 0)).await
    }

    /// Waits until more input than the `have` bytes buffered now has
    /// arrived (or the peer finished), then returns all of it without
    /// consuming any: for frames that need more than arrived so far.
    /// Fails with [`ConnError::RxOverflow`] when the receive buffer is
    /// already full.
    pub async fn fill_more(&mut self, have: usize) -> Result<&[u8], ConnError> {
        self.until(|conn, input| {
            let state = if input.len() > have || conn.peer_closed() {
                Some(Ok(()))
            } else if conn.is_closing() {
                Some(Err(ConnError::Closed))
            } else if conn.input_full {
                // More input can never arrive: the frame does not fit.
                conn.close_with(CloseReason::RxOverflow);
                Some(Err(ConnError::RxOverflow))
            } else {
                None
            };
            (state, 0)
        })
        .await??;
        self.hold()
    }

    /// Borrows the unconsumed input (possibly empty).
    fn hold(&mut self) -> Result<&[u8], ConnError> {
        self.release();
        let held = self
            .lanes
            .input(self.slot, self.id)
            .ok_or(ConnError::Closed)?;
        self.lane.holding.set(true);
        Ok(&**self.held.insert(held))
    }

    /// Waits until the output queued so far has been taken by the stack.
    async fn drained(&mut self) -> Result<(), ConnError> {
        self.until(|conn, _| ((conn.tx_pending() == 0).then_some(()), 0))
            .await
    }

    /// One attempt to read from the slot's buffered input: the way of a
    /// read that cannot take its input straight from the socket. Kept out
    /// of line, so that the direct read stays small.
    #[inline(never)]
    fn read_buffered(&mut self, buf: &mut [u8]) -> Poll<Result<usize, ConnError>> {
        let lane = self.lane;
        let read = self.io(|conn, input| {
            let n = input.len().min(buf.len());
            buf[..n].copy_from_slice(&input[..n]);
            let finished = conn.peer_closed();
            if n == input.len() && !finished {
                lane.drained.set(true);
            }
            ((n > 0 || finished).then_some(n), n)
        });
        match read {
            Err(e) => Poll::Ready(Err(e)),
            Ok(Some(Some(n))) => {
                if n > 0 {
                    // Room made in the slot: the pool may read more.
                    self.lanes.kick();
                }
                Poll::Ready(Ok(n))
            }
            Ok(_) => Poll::Pending,
        }
    }

    /// Sends straight to the socket when nothing queued comes first.
    #[inline]
    fn write_direct(&mut self, buf: &[u8]) -> DirectIo {
        self.release();
        self.lanes.write_direct(self.slot, self.id, buf)
    }

    /// Queues what fits of `buf` (not empty) in the slot, waiting for room:
    /// the way of a write that could not go straight to the socket
    /// (`direct` says why).
    async fn write_queued(&mut self, buf: &[u8], direct: DirectIo) -> Result<usize, ConnError> {
        if direct == DirectIo::Changed {
            // The end of stream or an error: the pool has it, and the
            // buffered path below reports it.
            self.lanes.kick();
        }
        let n = self
            .until(|conn, _| match conn.try_write(buf) {
                Ok(n) => (Some(Ok(n)), 0),
                Err(crate::WriteError::Full) => (None, 0),
                Err(_) => (Some(Err(ConnError::Closed)), 0),
            })
            .await??;
        self.lanes.kick();
        Ok(n)
    }
}

impl embedded_io_async::ErrorType for AsyncConn<'_> {
    type Error = ConnError;
}

impl embedded_io_async::Read for AsyncConn<'_> {
    /// Waits for input and copies what fits into `buf`; `Ok(0)` only once
    /// the peer has finished and every byte it sent has been read.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let lane = self.lane;
        let n = poll_fn(|_| {
            if lane.drained.get() {
                return Poll::Pending; // nothing new before the driver's next round
            }
            if lane.pending_consume.get() == 0 {
                // Straight from the socket when nothing buffered comes first.
                self.release();
                let direct = self.lanes.read_direct(self.slot, self.id, buf);
                // Waiting on the socket itself: the stack wakes the driver
                // when input comes, and polls leave the socket to this task.
                lane.reading.set(direct == DirectIo::WouldBlock);
                match direct {
                    DirectIo::Moved(n) => return Poll::Ready(Ok(n)),
                    DirectIo::WouldBlock => {
                        lane.drained.set(true);
                        return Poll::Pending;
                    }
                    // The end of stream or an error: the pool has it, and
                    // the buffered path below reports it.
                    DirectIo::Changed => self.lanes.kick(),
                    DirectIo::NotNow => {}
                }
            }
            self.read_buffered(buf)
        })
        .await?;
        Ok(n)
    }
}

impl embedded_io_async::BufRead for AsyncConn<'_> {
    /// Waits for input, then returns all of it unconsumed (empty once the
    /// peer has finished and everything was consumed). The slice borrows
    /// the pool: consume it, or call another method, before awaiting
    /// anything else (see the module docs).
    async fn fill_buf(&mut self) -> Result<&[u8], ConnError> {
        self.fill_more(0).await
    }

    fn consume(&mut self, amt: usize) {
        if amt == 0 {
            return;
        }
        match self.io(|_, input| ((), amt.min(input.len()))) {
            Ok(Some(())) => self.lanes.kick(),
            Ok(None) => {
                // The pool is busy: consume at the next access.
                let lane = self.lane;
                lane.pending_consume.set(lane.pending_consume.get() + amt);
            }
            Err(_) => {}
        }
    }
}

impl embedded_io_async::Write for AsyncConn<'_> {
    /// Waits for room in the transmit buffer and queues what fits.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ConnError> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.write_direct(buf) {
            DirectIo::Moved(n) if n > 0 => Ok(n),
            direct => self.write_queued(buf, direct).await,
        }
    }

    /// Queues all of `buf`, waiting for room as often as needed.
    async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), ConnError> {
        while !buf.is_empty() {
            // Straight to the socket while it takes bytes, without a
            // future per chunk.
            let n = match self.write_direct(buf) {
                DirectIo::Moved(n) if n > 0 => n,
                direct => self.write_queued(buf, direct).await?,
            };
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until everything queued has been taken by the stack.
    async fn flush(&mut self) -> Result<(), ConnError> {
        self.drained().await
    }
}

/// Runs `io` until the pool is not busy (another task's `fill_buf` slice,
/// which the driver ends): `Ok` once it ran, `Err` if the connection is
/// gone.
async fn retry(mut io: impl FnMut() -> Result<bool, ConnError>) -> Result<(), ConnError> {
    poll_fn(|_| match io() {
        Ok(true) => Poll::Ready(Ok(())),
        Ok(false) => Poll::Pending,
        Err(e) => Poll::Ready(Err(e)),
    })
    .await
}

/// One slot's task: waits for a connection in its slot, serves it until
/// the handler returns or the pool ends it, closes it, and waits again.
async fn lane_task<A: AsyncHandler>(slot: usize, handler: &A, lanes: &dyn Lanes) {
    loop {
        let lane = lanes.lane(slot);
        let id = poll_fn(|_| match lane.conn.get() {
            Some(id) if lane.served.get() != Some(id) => Poll::Ready(id),
            _ => Poll::Pending,
        })
        .await;
        lane.served.set(Some(id));
        lane.kill.set(false);
        // A consume the last connection deferred is not this one's.
        lane.pending_consume.set(0);
        lane.drained.set(false);
        lane.reading.set(false);
        let mut peer = None;
        let reached = retry(|| {
            lanes.with_io(slot, id, &mut |conn, _| {
                peer = Some(conn.peer());
                0
            })
        })
        .await;
        let (Ok(()), Some(peer)) = (reached, peer) else {
            continue; // ended before its task started
        };
        let mut conn = AsyncConn {
            lanes,
            lane,
            slot,
            id,
            peer,
            held: None,
        };
        let killed = poll_fn(|_| {
            if lane.kill.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        lane.serving.set(true);
        let result = match select(handler.serve(&mut conn), killed).await {
            Either::First(result) => Some(result),
            Either::Second(()) => None,
        };
        drop(conn);
        lane.serving.set(false);
        lane.holding.set(false);
        lane.reading.set(false);
        // The handler's verdict; or, if its future was dropped while the
        // connection is still live, the driver ended it for holding the
        // pool across an await: a protocol error.
        let result = result.unwrap_or(Err(CloseReason::Protocol));
        let _ = retry(|| {
            lanes.with_io(slot, id, &mut |conn, _| {
                match result {
                    Ok(()) => conn.close(),
                    Err(reason) => conn.close_with(reason),
                }
                0
            })
        })
        .await;
        lanes.kick();
    }
}

/// Runs `server` on `stack` with `handler` serving each connection in its
/// own task, until `stop` completes; returns `stop`'s output. Like
/// [`asynch::run`](crate::asynch::run), it sleeps until a socket or the
/// next deadline wakes it; the connection tasks run in the same future.
///
/// In one wake-up it drives the server and then runs the tasks, again
/// while a task queued output, consumed input, set a deadline or ended its
/// connection (at most [`ROUNDS_PER_WAKE`] times, then it yields): a reply
/// reaches the stack in the wake-up that read its request.
///
/// A busy pool is woken mostly by its tasks' sockets bringing input. Such a
/// wake-up runs the tasks without the server's round when nothing else can
/// need it: the last round left the driver waiting for none of the
/// server's sockets (nothing to accept, no queued output), every task with
/// a connection waits in a read straight from its socket, no task asked
/// for a round since, the deadline has not come, the backend has nothing
/// of its own to do ([`AsyncBackend::quiet`]), and the executor's waker is
/// the one registered.
///
/// ```
/// use core::pin::pin;
/// use core::task::{Context, Poll, Waker};
/// use embedded_io_async::{Read, Write};
/// use tcpool_core::async_handler::{self, Adapter, AsyncConn, AsyncHandler, AsyncServer};
/// use tcpool_core::asynch::Clock;
/// use tcpool_core::mock::MockStack;
/// use tcpool_core::{CloseReason, Config, Instant, Server};
///
/// struct Greeter;
/// impl AsyncHandler for Greeter {
///     async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
///         let mut name = [0u8; 32];
///         let n = conn.read(&mut name).await?;
///         conn.write_all(b"hello ").await?;
///         conn.write_all(&name[..n]).await?;
///         Ok(())
///     }
/// }
/// struct Frozen;
/// impl Clock for Frozen {
///     fn now(&self) -> Instant { Instant::ZERO }
///     fn wake_at(&mut self, _: Instant, _: &Waker) {}
/// }
///
/// let handler = Greeter;
/// let mut stack = MockStack::new();
/// let mut server: AsyncServer<'_, MockStack, Greeter, 2, 64, 64> =
///     Server::new(Adapter::new(&handler), Config::new());
/// server.listen(&mut stack, 7).unwrap();
/// let client = stack.connect_client(7).unwrap();
/// client.send(b"ann");
///
/// let mut polls = 0;
/// let stop = core::future::poll_fn(|_| {
///     polls += 1;
///     if polls < 4 { Poll::Pending } else { Poll::Ready(()) }
/// });
/// let mut clock = Frozen;
/// {
///     let mut fut = pin!(async_handler::serve(&mut server, &mut stack, &handler, &mut clock, stop));
///     let mut cx = Context::from_waker(Waker::noop());
///     while fut.as_mut().poll(&mut cx).is_pending() {}
/// }
/// assert_eq!(client.recv_all(), b"hello ann");
/// ```
pub async fn serve<'a, 'h: 'a, S, A, C, F, const N: usize, const RX: usize, const TX: usize>(
    server: &'a mut AsyncServer<'h, S, A, N, RX, TX>,
    stack: &mut S,
    handler: &'h A,
    clock: &mut C,
    stop: F,
) -> F::Output
where
    S: AsyncBackend,
    A: AsyncHandler,
    C: Clock,
    F: Future,
{
    let tasks: Tasks<'h, S, A, &'a mut AsyncServer<'h, S, A, N, RX, TX>, N, RX, TX> = Tasks::new();
    tasks.lend(server);
    if let Some(handle) = stack.share() {
        tasks.lend_stack(handle);
    }
    let tasks = &tasks;
    let mut armed = Armed::default();
    let driver = poll_fn(|cx| {
        // Most wake-ups of a busy pool are a task's socket bringing input:
        // when nothing else can need the server, the tasks go on without
        // its round.
        let quiet = tasks.unwatched.get() && stack.quiet();
        let now = clock.now();
        if quiet && tasks.idle_wake(now, cx.waker()) {
            return Poll::Pending;
        }
        tasks.register_waker(cx.waker());
        let ran = tasks.step(now, cx.waker(), |server| {
            drive(server, stack, clock, cx.waker(), now, &mut armed)
        });
        if let Some(rest) = ran {
            tasks.now.set(rest.now);
            tasks.unwatched.set(rest.unwatched);
            tasks.due.set(rest.due);
        }
        Poll::<()>::Pending
    });
    let work_tasks = tasks.run(handler);
    let mut stop = pin!(stop);
    let mut work = pin!(join(driver, work_tasks));
    poll_fn(|cx| {
        if let Poll::Ready(out) = stop.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        // The driver, then the tasks, again while a task asks for another
        // round (queued output, consumed input, a close): its output
        // reaches the stack in this wake-up, not after a wake-up of its own.
        // The driver registered everything it waits for in the last round,
        // and no task changed anything since: the future may sleep.
        tasks.batching.set(true);
        for _ in 0..ROUNDS_PER_WAKE {
            tasks.kicked.set(false);
            let _ = work.as_mut().poll(cx);
            if !tasks.kicked.get() {
                tasks.batching.set(false);
                return Poll::Pending;
            }
        }
        // Still work: come back after the other tasks had a turn.
        tasks.batching.set(false);
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::cell::{Cell, RefCell};
    use core::pin::pin;
    use core::task::Context;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::vec::Vec;

    use embedded_io_async::{BufRead, Read, Write};

    use super::*;
    use crate::Config;
    use crate::mock::MockStack;

    /// A clock that stands still and records the wake-ups asked for.
    struct Still {
        now: Instant,
        armed: Vec<Instant>,
    }

    impl Clock for Still {
        fn now(&self) -> Instant {
            self.now
        }
        fn wake_at(&mut self, at: Instant, _: &Waker) {
            self.armed.push(at);
        }
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Echoes; with `deadline`, first gives the connection that deadline.
    struct Echo {
        deadline: Option<Instant>,
        served: Cell<usize>,
    }

    impl AsyncHandler for Echo {
        async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
            self.served.set(self.served.get() + 1);
            if let Some(at) = self.deadline {
                conn.set_deadline(at).await?;
            }
            let mut buf = [0u8; 16];
            loop {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                conn.write_all(&buf[..n]).await?;
            }
        }
    }

    #[test]
    fn a_wake_up_skips_the_servers_round_only_when_nothing_can_need_it() {
        let handler = Echo {
            deadline: None,
            served: Cell::new(0),
        };
        let mut stack = MockStack::new();
        let mut server: AsyncServer<'_, MockStack, Echo, 2, 64, 64> =
            Server::new(Adapter::new(&handler), Config::new());
        server.listen(&mut stack, 7).unwrap();
        let tasks = Tasks::new();
        tasks.lend(&mut server);
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let ms = Instant::from_millis;
        tasks.step(ms(5), &waker, |_| ());
        // As `serve` leaves it after a round that watches none of the
        // server's sockets, with a deadline at 10 ms.
        let rest = || {
            tasks.unwatched.set(true);
            tasks.due.set(Some(ms(10)));
        };
        rest();
        tasks.lanes[0].drained.set(true);
        assert!(tasks.idle_wake(ms(6), &waker));
        // The tasks' own round: new input may be there, at the new time.
        assert!(!tasks.lanes[0].drained.get());
        assert_eq!(tasks.now.get(), ms(6));
        // The deadline has come.
        assert!(!tasks.idle_wake(ms(10), &waker));
        // Another waker: what was registered with the old one may not wake
        // this one.
        let other = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        assert!(!tasks.idle_wake(ms(6), &other));
        // A task serves a connection and does not wait in a read: the
        // server's round would read its socket for it.
        tasks.lanes[1].serving.set(true);
        assert!(!tasks.idle_wake(ms(6), &waker));
        tasks.lanes[1].reading.set(true);
        assert!(tasks.idle_wake(ms(6), &waker));
        // A task holds the pool (a `fill_buf` slice): the round ends it.
        {
            let _held = tasks.server.borrow();
            assert!(!tasks.idle_wake(ms(6), &waker));
        }
        assert!(tasks.idle_wake(ms(6), &waker));
        // A task asks for a round (queued output, consumed input, a close).
        Lanes::kick(&tasks);
        assert!(!tasks.unwatched.get());
        rest();
        assert!(tasks.idle_wake(ms(6), &waker));
        assert!(tasks.take().is_some());
    }

    /// Polls `serve` once over the mock stack with one client that sent
    /// `input`; returns what the client received, the wake-ups armed and
    /// how often the future woke itself.
    fn one_poll(handler: &Echo, input: &[u8]) -> (Vec<u8>, Vec<Instant>, usize) {
        let mut stack = MockStack::new();
        let mut server: AsyncServer<'_, MockStack, Echo, 2, 64, 64> =
            Server::new(Adapter::new(handler), Config::new());
        server.listen(&mut stack, 7).unwrap();
        let client = stack.connect_client(7).unwrap();
        client.send(input);
        let mut clock = Still {
            now: Instant::from_millis(1_000),
            armed: Vec::new(),
        };
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        {
            let fut = pin!(serve(
                &mut server,
                &mut stack,
                handler,
                &mut clock,
                core::future::pending::<()>()
            ));
            assert!(fut.poll(&mut Context::from_waker(&waker)).is_pending());
        }
        let woke = wakes.0.load(Ordering::SeqCst);
        (client.recv_all(), clock.armed, woke)
    }

    /// Runs `serve` (a still clock, the no-op waker) in blocks of four polls
    /// over a listening `server`: `script` runs after each block with its
    /// number, and the run ends with one more block once it returns false.
    fn in_steps<'h, A: AsyncHandler, const N: usize, const RX: usize, const TX: usize>(
        server: &mut AsyncServer<'h, MockStack, A, N, RX, TX>,
        stack: &mut MockStack,
        handler: &'h A,
        mut script: impl FnMut(usize) -> bool,
    ) {
        let mut clock = Still {
            now: Instant::from_millis(1_000),
            armed: Vec::new(),
        };
        let mut fut = pin!(serve(
            server,
            stack,
            handler,
            &mut clock,
            core::future::pending::<()>()
        ));
        let mut cx = Context::from_waker(Waker::noop());
        let mut block = || {
            for _ in 0..4 {
                assert!(fut.as_mut().poll(&mut cx).is_pending());
            }
        };
        let mut step = 0;
        loop {
            block();
            if !script(step) {
                break;
            }
            step += 1;
        }
        block();
    }

    /// Echoes through a 512-byte buffer and records its largest read.
    struct Wide {
        largest: Cell<usize>,
    }

    impl AsyncHandler for Wide {
        async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
            let mut buf = [0u8; 512];
            loop {
                let n = conn.read(&mut buf).await?;
                self.largest.set(self.largest.get().max(n));
                if n == 0 {
                    return Ok(());
                }
                conn.write_all(&buf[..n]).await?;
            }
        }
    }

    #[test]
    fn on_a_shared_stack_reads_and_writes_bypass_the_slot_buffers() {
        let handler = Wide {
            largest: Cell::new(0),
        };
        let mut stack = MockStack::new();
        let mut server: AsyncServer<'_, MockStack, Wide, 2, 64, 64> =
            Server::new(Adapter::new(&handler), Config::new());
        server.listen(&mut stack, 7).unwrap();
        let client = stack.connect_client(7).unwrap();
        let msg: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::new();
        let mut chunks = msg.chunks(1000);
        in_steps(&mut server, &mut stack, &handler, |step| {
            if step > 0 {
                got.extend(client.recv_all());
            }
            match chunks.next() {
                Some(chunk) => client.send(chunk) > 0,
                None => {
                    client.shutdown_write();
                    false
                }
            }
        });
        assert_eq!(got, msg, "the echo, byte for byte");
        // Through the slot, no read could return more than its 64 bytes.
        assert_eq!(
            handler.largest.get(),
            512,
            "reads went straight to the socket"
        );
        let stats = server.stats();
        assert_eq!(
            (stats.bytes_in, stats.bytes_out),
            (3000, 3000),
            "counted as ever"
        );
        assert_eq!(stats.closed.total(), 1, "closed after the end of stream");
        assert!(client.server_closed());
    }

    /// Records how each connection ended.
    struct Ends {
        reasons: RefCell<Vec<CloseReason>>,
    }

    impl AsyncHandler for Ends {
        async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
            let mut buf = [0u8; 64];
            loop {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                conn.write_all(&buf[..n]).await?;
            }
        }

        fn on_closed(&self, closed: &Closed) {
            self.reasons.borrow_mut().push(closed.reason);
        }
    }

    #[test]
    fn a_reset_found_by_a_direct_read_frees_the_socket_before_the_slot_is_reused() {
        let handler = Ends {
            reasons: RefCell::new(Vec::new()),
        };
        let mut stack = MockStack::new();
        let probe = stack.clone();
        // One slot: the next client takes the slot the reset one leaves.
        let mut server: AsyncServer<'_, MockStack, Ends, 1, 64, 64> =
            Server::new(Adapter::new(&handler), Config::new());
        server.listen(&mut stack, 7).unwrap();
        let first = probe.connect_client(7).unwrap();
        let second = probe.connect_client(7).unwrap();
        in_steps(&mut server, &mut stack, &handler, |step| {
            if step == 0 {
                // The first is accepted, its task waits in a read straight
                // from the socket; the second waits in the backlog.
                first.reset();
                second.send(b"next");
                return true;
            }
            false
        });
        assert_eq!(second.recv_all(), b"next", "the next client is served");
        assert_eq!(handler.reasons.borrow().as_slice(), [CloseReason::Reset]);
        // The listener and the second client's socket: the reset one was
        // closed, not overwritten.
        assert_eq!(probe.sockets_in_use(), 2);
        drop(second);
    }

    /// Reads a 4-byte header with `read`, then a line with `fill_buf`, and
    /// answers with the line.
    struct HeaderThenLine;

    impl AsyncHandler for HeaderThenLine {
        async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
            let mut header = [0u8; 4];
            conn.read_exact(&mut header)
                .await
                .map_err(|_| CloseReason::Protocol)?;
            let mut have = 0;
            let len = loop {
                let input = conn.fill_more(have).await?;
                match input.iter().position(|&b| b == b'\n') {
                    Some(end) => break end + 1,
                    None => have = input.len(),
                }
            };
            let mut line = [0u8; 32];
            let input = conn.fill_more(0).await?;
            line[..len].copy_from_slice(&input[..len]);
            conn.consume(len);
            conn.write_all(&line[..len]).await?;
            Ok(())
        }
    }

    #[test]
    fn after_a_direct_read_a_stack_that_reports_readiness_still_wakes_the_pool() {
        let handler = HeaderThenLine;
        let mut stack = MockStack::new();
        stack.set_reports_ready(true);
        let probe = stack.clone();
        let mut server: AsyncServer<'_, MockStack, HeaderThenLine, 2, 64, 64> =
            Server::new(Adapter::new(&handler), Config::new());
        server.listen(&mut stack, 7).unwrap();
        let client = probe.connect_client(7).unwrap();
        // The task waits in a read straight from the socket, gets the header
        // that way, then waits for a line in the slot.
        in_steps(&mut server, &mut stack, &handler, |step| match step {
            0 => client.send(b"HEAD") > 0,
            1 => client.send(b"a line\n") > 0,
            _ => false,
        });
        assert_eq!(client.recv_all(), b"a line\n");
    }

    #[test]
    fn a_reply_reaches_the_stack_in_the_wake_up_that_read_the_request() {
        let handler = Echo {
            deadline: None,
            served: Cell::new(0),
        };
        let (echo, _, woke) = one_poll(&handler, b"ping");
        assert_eq!(handler.served.get(), 1);
        // Accepted, read, echoed and sent in one poll, and then asleep:
        // nothing is left for a wake-up of its own.
        assert_eq!(echo, b"ping");
        assert_eq!(woke, 0);
    }

    #[test]
    fn a_deadline_set_by_the_handler_is_armed_before_the_future_sleeps() {
        let at = Instant::from_millis(5_000);
        let handler = Echo {
            deadline: Some(at),
            served: Cell::new(0),
        };
        let (_, armed, _) = one_poll(&handler, b"");
        assert_eq!(handler.served.get(), 1);
        assert_eq!(armed.last(), Some(&at), "armed: {armed:?}");
    }
}
