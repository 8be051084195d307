//! The connection-pool server.

use embedded_nal::TcpError;

use crate::backend::Backend;
use crate::config::Config;
use crate::error::ListenError;
use crate::fmt::debug;
use crate::handler::{ConnId, Handler};
use crate::interest::Interest;
use crate::pool::{Action, Admission, Event, Pool};
use crate::slot::SlotState;
use crate::stats::Stats;
use crate::storage::{Inline, Storage};
use crate::time::Instant;

/// A TCP server with a fixed pool of `N` connection slots, each with an
/// `RX`-byte receive buffer and a `TX`-byte transmit buffer.
///
/// The server does not own the stack: [`poll`](Server::poll) takes it, does
/// every piece of work that can be done without blocking, and returns.
/// Memory is fixed at compile time (see [`Server::SLOT_BYTES`]); nothing is
/// allocated. The slots live inside the server value unless storage `M`
/// says otherwise (see [`storage`](crate::storage)).
///
/// The work of a poll follows what happened, not the pool size, on a
/// backend that reports readiness ([`Backend::reports_ready`]): only the
/// sockets it reports, the connections with work of their own and those
/// whose deadline has come are serviced. Otherwise every connection's
/// socket is tried at each poll.
///
/// Guarantees:
/// - an established connection is never dropped to make room, unless
///   [`WhenFull::EvictIdlest`](crate::WhenFull::EvictIdlest) is chosen;
/// - every byte received before the peer's end of stream is offered to
///   [`Handler::on_data`] before [`Handler::on_peer_closed`] is called;
/// - output is never dropped silently: writes are bounded by the buffer
///   room, and a graceful close sends what is queued first;
/// - an error on one connection closes that connection only, with a
///   [`CloseReason`](crate::CloseReason) that is counted in [`Stats::closed`];
/// - [`Handler::on_closed`] is called exactly once per connection.
///
/// ```
/// use tcpool_core::mock::MockStack;
/// use tcpool_core::{Config, Conn, Handler, Instant, Server};
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
/// let mut stack = MockStack::new();
/// let mut server: Server<MockStack, Echo, 4, 256, 256> = Server::new(Echo, Config::new());
/// server.listen(&mut stack, 7000).unwrap();
///
/// let client = stack.connect_client(7000).unwrap();
/// client.send(b"hello");
/// server.poll(&mut stack, Instant::from_millis(0));
/// assert_eq!(client.recv_all(), b"hello");
/// ```
pub struct Server<
    S,
    H,
    const N: usize = 4,
    const RX: usize = 1024,
    const TX: usize = 1024,
    M = Inline,
> where
    S: Backend,
    H: Handler,
    M: Storage,
{
    pool: Pool<H, N, RX, TX, M>,
    listener: Option<S::TcpSocket>,
    /// One socket per slot, beside the pool (which holds none).
    sockets: [Option<S::TcpSocket>; N],
    /// What the backend was last asked to watch on each slot's socket (on a
    /// backend that reports readiness).
    watched: [Interest; N],
    /// Whether the listener is watched for readability.
    listener_watched: bool,
    /// The stack reports readiness (learnt at `listen`).
    reporting: bool,
    /// The listener's token; slot `i`'s is `tokens + 1 + i`.
    tokens: usize,
}

/// What [`Server::move_direct`] moves.
pub(crate) enum Direct<'a> {
    /// Receive into the handler's buffer.
    Read(&'a mut [u8]),
    /// Send from the handler's buffer.
    Write(&'a [u8]),
}

/// What became of a [`Server::move_direct`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirectIo {
    /// This many bytes moved (none only for an empty buffer).
    Moved(usize),
    /// The socket had nothing (read) or no room (write); the waker the
    /// stack was given is registered with it.
    WouldBlock,
    /// The connection ended or its peer finished: a poll carries it out,
    /// and the slot's buffered path tells the handler.
    Changed,
    /// Not now: input or output buffered in the slot comes first, or the
    /// connection is not live. Use the slot's buffers.
    NotNow,
}

/// What the stack's answer to a send or receive means to the pool.
#[inline]
fn event<E: TcpError>(result: nb::Result<usize, E>, end_of_stream: bool) -> Event {
    match result {
        Ok(0) if end_of_stream => Event::EndOfStream,
        Ok(0) | Err(nb::Error::WouldBlock) => Event::WouldBlock,
        Ok(n) if end_of_stream => Event::Received(n),
        Ok(n) => Event::Sent(n),
        Err(nb::Error::Other(e)) => Event::Error(e.kind()),
    }
}

impl<S, H, const N: usize, const RX: usize, const TX: usize> Server<S, H, N, RX, TX, Inline>
where
    S: Backend,
    H: Handler,
{
    /// A server with `handler` and `config`, not yet listening. `const`, so a
    /// server can live in a `static`. Sizes that make no sense (`N`, `RX` or
    /// `TX` of zero) fail to compile.
    pub const fn new(handler: H, config: Config) -> Self {
        Server {
            pool: Pool::new(handler, config),
            listener: None,
            sockets: [const { None }; N],
            watched: [Interest::NONE; N],
            listener_watched: false,
            reporting: false,
            tokens: 0,
        }
    }

    /// A server with `handler` and the default [`Config`] whose bytes are
    /// all zero when the handler's are and the stack's "no socket" is (true
    /// of the smoltcp and lwIP backends): a `static` of it lands in `.bss`
    /// and costs nothing in the flash image. Set the configuration at
    /// start-up with [`set_config`](Self::set_config).
    ///
    /// ```
    /// use tcpool_core::mock::MockStack;
    /// use tcpool_core::{Config, Conn, Handler, Server};
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
    /// // In firmware: `static SERVER: static_cell::ConstStaticCell<..> =
    /// // ConstStaticCell::new(Server::with_default_config(Echo));`
    /// let mut server: Server<MockStack, Echo, 4, 1024, 1024> = Server::with_default_config(Echo);
    /// server.set_config(Config::new().with_max_connections(2));
    /// assert_eq!(server.max_connections(), 2);
    /// ```
    pub const fn with_default_config(handler: H) -> Self {
        Server {
            pool: Pool::with_default_config(handler),
            listener: None,
            sockets: [const { None }; N],
            watched: [Interest::NONE; N],
            listener_watched: false,
            reporting: false,
            tokens: 0,
        }
    }
}

impl<S, H, const N: usize, const RX: usize, const TX: usize, M> Server<S, H, N, RX, TX, M>
where
    S: Backend,
    H: Handler,
    M: Storage,
{
    /// Bytes one slot takes in memory: its buffers, state and socket handle.
    pub const SLOT_BYTES: usize = Pool::<H, N, RX, TX, M>::SLOT_BYTES
        + core::mem::size_of::<Option<S::TcpSocket>>()
        + core::mem::size_of::<Interest>();

    /// A server with `handler` and `config` whose slots are built in place
    /// in storage `M` (see [`storage`](crate::storage)): a pool of
    /// megabytes on the heap without a stack temporary of its size. The
    /// server value itself holds the sockets and bookkeeping, a few tens of
    /// bytes per slot.
    pub fn new_in(handler: H, config: Config) -> Self {
        Server {
            pool: Pool::new_in(handler, config),
            listener: None,
            sockets: core::array::from_fn(|_| None),
            watched: [Interest::NONE; N],
            listener_watched: false,
            reporting: false,
            tokens: 0,
        }
    }

    /// Sets the first readiness token this server uses with a backend that
    /// reports readiness: the listener's is `first`, slot `i`'s is
    /// `first + 1 + i`. Only needed when several servers share one such
    /// stack: give each a range of `N + 1` tokens of its own. Call it
    /// before [`listen`](Self::listen).
    pub fn set_tokens(&mut self, first: usize) {
        self.tokens = first;
    }

    /// Opens a socket on the stack, binds `port` and listens.
    pub fn listen(&mut self, stack: &mut S, port: u16) -> Result<(), ListenError<S::Error>> {
        if self.listener.is_some() {
            return Err(ListenError::AlreadyListening);
        }
        let mut socket = stack.socket().map_err(ListenError::Socket)?;
        if let Err(e) = stack.bind(&mut socket, port) {
            let _ = stack.close(socket);
            return Err(ListenError::Bind(e));
        }
        if let Err(e) = stack.listen(&mut socket) {
            let _ = stack.close(socket);
            return Err(ListenError::Listen(e));
        }
        debug!("listening on port {}", port);
        self.listener = Some(socket);
        self.pool.set_listening(true);
        self.reporting = stack.reports_ready();
        if self.reporting
            && let Err(e) = self.watch_listener(stack)
        {
            self.pool.set_listening(false);
            if let Some(socket) = self.listener.take() {
                let _ = stack.close(socket);
            }
            return Err(ListenError::Listen(e));
        }
        Ok(())
    }

    /// The listening socket, if any (for backend-specific queries such as
    /// the bound address).
    pub fn listener(&self) -> Option<&S::TcpSocket> {
        self.listener.as_ref()
    }

    /// The address the listening socket is bound to (after listening on
    /// port 0: the port the stack chose), if the backend can tell.
    pub fn local_addr(&self, stack: &S) -> Option<core::net::SocketAddr> {
        stack.local_addr(self.listener.as_ref()?)
    }

    /// The pure pool this server drives: every decision, no I/O.
    pub fn pool(&self) -> &Pool<H, N, RX, TX, M> {
        &self.pool
    }

    /// The pure pool, mutably (for drivers built on this one, such as the
    /// async handler driver).
    pub(crate) fn pool_mut(&mut self) -> &mut Pool<H, N, RX, TX, M> {
        &mut self.pool
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        self.pool.handler()
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        self.pool.handler_mut()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        self.pool.config()
    }

    /// Replaces the configuration; takes effect at once (lowering
    /// `max_connections` closes nobody).
    pub fn set_config(&mut self, config: Config) {
        self.pool.set_config(config);
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        self.pool.stats()
    }

    /// Connections in a slot now.
    pub fn active(&self) -> usize {
        self.pool.active()
    }

    /// The pool size `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The number of connections served at once: `max_connections` clamped
    /// to `1..=N`.
    pub fn max_connections(&self) -> usize {
        self.pool.max_connections()
    }

    /// Changes how many connections are served at once (clamped to `1..=N`).
    /// Lowering it closes nobody: it only stops accepting until enough
    /// connections have ended.
    pub fn set_max_connections(&mut self, n: usize) {
        self.pool.set_max_connections(n);
    }

    /// The state of each slot, in slot order.
    pub fn slot_states(&self) -> impl Iterator<Item = SlotState> + '_ {
        self.pool.slot_states()
    }

    /// Runs a closure on one live connection's handle and state, for output
    /// that does not come from a callback (a push notification, say).
    /// Returns `None` if no live connection has that id.
    pub fn with_conn<R>(
        &mut self,
        id: ConnId,
        now: Instant,
        f: impl FnOnce(&mut crate::Conn<'_>, &mut H::State) -> R,
    ) -> Option<R> {
        self.pool.with_conn(id, now, f)
    }

    /// Moves bytes straight between the socket of the live connection `id`
    /// in slot `i` and an async handler's buffer: a receive into `buf`
    /// (`Direct::Read`) or a send from it, with the pool's bookkeeping
    /// (counters, activity, the end of stream, errors) but no copy through
    /// the slot's buffers. Only when nothing buffered in the slot would
    /// have to come first ([`DirectIo::NotNow`] otherwise).
    #[inline(always)]
    pub(crate) fn move_direct(
        &mut self,
        stack: &mut S,
        i: usize,
        id: ConnId,
        now: Instant,
        io: Direct<'_>,
    ) -> DirectIo {
        let read = matches!(io, Direct::Read(_));
        if !self.pool.can_move_direct(i, id, read) {
            return DirectIo::NotNow;
        }
        let Some(socket) = self.sockets.get_mut(i).and_then(Option::as_mut) else {
            return DirectIo::NotNow;
        };
        let result = match io {
            // An empty buffer would read as the end of stream.
            Direct::Read([]) | Direct::Write([]) => return DirectIo::Moved(0),
            Direct::Read(buf) => stack.receive(socket, buf),
            Direct::Write(buf) => stack.send(socket, buf),
        };
        // The common answers first, with no detour through an `Event`.
        match result {
            Ok(n) if n > 0 => {
                self.pool.moved_direct(i, now, n, read);
                DirectIo::Moved(n)
            }
            Err(nb::Error::WouldBlock) => DirectIo::WouldBlock,
            other => {
                if self.pool.complete_direct(i, now, event(other, read)) {
                    DirectIo::Changed
                } else {
                    DirectIo::WouldBlock
                }
            }
        }
    }

    /// Slot `i`'s async task waits (or stops waiting) in a read straight
    /// from the socket ([`move_direct`](Self::move_direct)): polls leave the
    /// socket to it meanwhile.
    pub(crate) fn set_direct_reader(&mut self, i: usize, waiting: bool) {
        self.pool.set_direct_reader(i, waiting);
    }

    /// Advances everything that can advance without blocking: accepts new
    /// clients, moves bytes between the stack and the slots, runs the
    /// handler's callbacks, closes what should close, enforces timeouts.
    ///
    /// On a backend that reports readiness ([`Backend::reports_ready`]) a
    /// poll asks the stack which sockets are ready and services only those,
    /// the connections with work of their own and those whose deadline has
    /// come: its cost follows the traffic, not `N`. Otherwise it tries every
    /// connection's socket.
    ///
    /// Returns true if anything happened (a byte moved, a connection opened
    /// or closed); a caller driving an in-process stack can poll until it
    /// returns false. `now` must not go backwards.
    pub fn poll(&mut self, stack: &mut S, now: Instant) -> bool {
        self.pool.begin_poll(now);
        if stack.reports_ready() {
            self.poll_ready(stack, now);
        } else {
            // Every connection gets a turn (and leaves the ready set), but
            // one whose async task reads its socket itself and that has
            // nothing else to do.
            self.accept_new(stack, now);
            for i in 0..N {
                if !self.pool.left_to_its_reader(i) {
                    self.service(stack, i, now);
                }
            }
        }
        self.pool.end_poll()
    }

    /// A poll on a backend that reports readiness: the listener if it is
    /// ready, then each slot in the ready set once.
    fn poll_ready(&mut self, stack: &mut S, now: Instant) {
        // Whether to accept may have changed since the last poll (a backoff
        // ended, an eviction became possible, the limit was raised).
        if self.watch_listener(stack).is_err() {
            self.pool.accept_failed(now);
        }
        let first = self.tokens;
        let mut listener_ready = false;
        let pool = &mut self.pool;
        stack.take_ready(
            first..first + N + 1,
            &mut |token| match token.checked_sub(first) {
                Some(0) => listener_ready = true,
                Some(t) => pool.mark_ready(t - 1),
                None => {}
            },
        );
        if listener_ready {
            self.accept_new(stack, now);
        }
        for _ in 0..self.pool.ready_len() {
            let Some(i) = self.pool.next_ready() else {
                break;
            };
            self.service(stack, i, now);
            self.watch(stack, i, now);
        }
        if self.watch_listener(stack).is_err() {
            // Retried at the next poll, after the backoff.
            self.pool.accept_failed(now);
        }
    }

    /// Tells the backend what to watch slot `i`'s socket for, if that
    /// changed.
    fn watch(&mut self, stack: &mut S, i: usize, now: Instant) {
        let Some(socket) = self.sockets[i].as_ref() else {
            self.watched[i] = Interest::NONE;
            return;
        };
        let interest = self.pool.interest(i);
        if interest == self.watched[i] {
            return;
        }
        match stack.watch(socket, self.tokens + 1 + i, interest) {
            Ok(()) => self.watched[i] = interest,
            Err(e) => {
                // Unwatched, the connection would never be serviced again.
                self.pool.complete(i, now, Event::Error(e.kind()));
                self.service(stack, i, now);
            }
        }
    }

    /// Tells the backend whether to watch the listener, if that changed.
    fn watch_listener(&mut self, stack: &mut S) -> Result<(), S::Error> {
        let Some(listener) = self.listener.as_ref() else {
            self.listener_watched = false;
            return Ok(());
        };
        let wanted = self.pool.wants_listener();
        if wanted == self.listener_watched {
            return Ok(());
        }
        let interest = if wanted {
            Interest::READABLE
        } else {
            Interest::NONE
        };
        stack.watch(listener, self.tokens, interest)?;
        self.listener_watched = wanted;
        Ok(())
    }

    /// The latest time by which [`poll`](Server::poll) must be called again
    /// even if no socket becomes ready: the nearest idle or linger deadline,
    /// the end of an accept backoff, or the time of the last poll if there is
    /// work left right now. `None`: nothing is due until a socket is ready.
    pub fn poll_at(&self) -> Option<Instant> {
        self.pool.poll_at()
    }

    /// The sockets this server waits on and what it waits for, for backends
    /// that can sleep until a socket is ready (poll(2), `lwip_select`). A
    /// socket absent from the list, or with [`Interest::NONE`], needs no
    /// wake-up; deadlines come from [`poll_at`](Server::poll_at).
    ///
    /// Empty on a backend that reports readiness
    /// ([`Backend::reports_ready`]): it already knows what to watch, from
    /// [`Backend::watch`].
    pub fn interests(&self) -> impl Iterator<Item = (&S::TcpSocket, Interest)> + '_ {
        let reporting = self.reporting;
        let accept = self.pool.wants_listener() && !reporting;
        let listener = self
            .listener
            .iter()
            .filter(move |_| accept)
            .map(|l| (l, Interest::READABLE));
        let shown = if reporting { 0 } else { N };
        let conns = self.sockets[..shown]
            .iter()
            .enumerate()
            .filter_map(|(i, socket)| {
                let socket = socket.as_ref()?;
                let interest = self.pool.wait_interest(i);
                (!interest.is_none()).then_some((socket, interest))
            });
        listener.chain(conns)
    }

    fn accept_new(&mut self, stack: &mut S, now: Instant) {
        // Each round takes one client; the bound keeps one poll short.
        for _ in 0..=N {
            if !self.pool.should_accept(now) {
                break;
            }
            let Some(listener) = self.listener.as_mut() else {
                break;
            };
            match stack.accept(listener) {
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(_)) => {
                    self.pool.accept_failed(now);
                    break;
                }
                Ok((mut socket, peer)) => match self.pool.admit(peer, now) {
                    Admission::Open { slot, evicted } => {
                        if let Some(victim) = evicted {
                            self.release(stack, victim, true);
                        }
                        self.sockets[slot] = Some(socket);
                    }
                    Admission::Refuse { banner } => {
                        if !banner.is_empty() {
                            let _ = stack.send(&mut socket, banner);
                        }
                        if stack.close(socket).is_err() {
                            self.pool.close_failed();
                        }
                    }
                },
            }
        }
    }

    /// Closes (or with `reset`, aborts) slot `i`'s socket.
    fn release(&mut self, stack: &mut S, i: usize, reset: bool) {
        // Closing a socket ends its watch.
        self.watched[i] = Interest::NONE;
        if let Some(socket) = self.sockets[i].take() {
            let closed = if reset {
                stack.abort(socket)
            } else {
                stack.close(socket)
            };
            if closed.is_err() {
                self.pool.close_failed();
            }
        }
    }

    /// One slot's share of a poll: carries out the pool's actions.
    fn service(&mut self, stack: &mut S, i: usize, now: Instant) {
        loop {
            match self.pool.next_action(i, now) {
                Action::Done => return,
                Action::Send(bytes) => {
                    let result = match self.sockets[i].as_mut() {
                        Some(socket) => stack.send(socket, bytes),
                        None => Err(nb::Error::WouldBlock),
                    };
                    self.pool.complete(i, now, event(result, false));
                }
                Action::Receive(buf) => {
                    // The pool never offers an empty buffer: `Ok(0)` means
                    // end of stream.
                    let result = match self.sockets[i].as_mut() {
                        Some(socket) => stack.receive(socket, buf),
                        None => Err(nb::Error::WouldBlock),
                    };
                    self.pool.complete(i, now, event(result, true));
                }
                Action::Close => self.release(stack, i, false),
                Action::Abort => self.release(stack, i, true),
            }
        }
    }

    /// Closes every connection (output is flushed as far as the stack takes
    /// it right now, then the connection is closed with
    /// [`CloseReason::Shutdown`](crate::CloseReason::Shutdown)) and the
    /// listening socket. The server can [`listen`](Server::listen) again
    /// afterwards.
    pub fn shutdown(&mut self, stack: &mut S, now: Instant) {
        self.pool.begin_poll(now);
        self.pool.begin_shutdown();
        for i in 0..N {
            self.service(stack, i, now);
        }
        if let Some(listener) = self.listener.take()
            && stack.close(listener).is_err()
        {
            self.pool.close_failed();
        }
        self.listener_watched = false;
        self.pool.set_listening(false);
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "ready_tests.rs"]
mod ready_tests;

// The same tests on a stack that reports readiness (the file tells the two
// copies apart by their module path).
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "server_tests.rs"]
mod tests_ready;
