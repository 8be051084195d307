//! The async driver: runs a [`Server`] inside a future, for executors such
//! as embassy.
//!
//! The server stays the nb [`Server`] with its callback [`Handler`]s; only
//! the waiting changes. Instead of a blocking [`Wait`](crate::Wait), the
//! stack registers the task's [`Waker`] with every socket that answered
//! `WouldBlock` ([`AsyncBackend`]), and a [`Clock`] arms a wake-up for the
//! server's next deadline ([`Server::poll_at`]). Between rounds the future
//! is pending: an idle server costs no CPU and is not polled again until a
//! socket or the deadline wakes it.
//!
//! ```
//! use core::pin::pin;
//! use core::task::{Context, Poll, Waker};
//! use tcpool_core::asynch::{self, AsyncBackend, Clock};
//! use tcpool_core::mock::MockStack;
//! use tcpool_core::{Config, Conn, Handler, Instant, Server};
//!
//! // The in-memory stack needs no waker: `MockStack` answers at once.
//! struct Echo;
//! impl Handler for Echo {
//!     type State = ();
//!     fn on_open(&mut self, _: &mut Conn<'_>) {}
//!     fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
//!         conn.write(data)
//!     }
//! }
//! struct Frozen;
//! impl Clock for Frozen {
//!     fn now(&self) -> Instant {
//!         Instant::ZERO
//!     }
//!     fn wake_at(&mut self, _: Instant, _: &Waker) {}
//! }
//!
//! let mut stack = MockStack::new();
//! let mut server: Server<MockStack, Echo, 2, 64, 64> = Server::new(Echo, Config::new());
//! server.listen(&mut stack, 7).unwrap();
//! let client = stack.connect_client(7).unwrap();
//! client.send(b"ping");
//!
//! // Run until the stop future completes: here on its second poll, so
//! // that the server has one round.
//! let mut first = true;
//! let stop = core::future::poll_fn(|_| {
//!     if core::mem::take(&mut first) { Poll::Pending } else { Poll::Ready("stopped") }
//! });
//! let mut clock = Frozen;
//! let mut fut = pin!(asynch::run(&mut server, &mut stack, &mut clock, stop));
//! let mut cx = Context::from_waker(Waker::noop());
//! assert!(fut.as_mut().poll(&mut cx).is_pending()); // one round, then asleep
//! assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready("stopped"));
//! assert_eq!(client.recv_all(), b"ping");
//! ```

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::{Poll, Waker};

use crate::backend::Backend;
use crate::handler::Handler;
use crate::interest::Interest;
use crate::server::Server;
use crate::time::Instant;

/// A [`Backend`] whose sockets can wake a task: what the async driver needs
/// from a stack.
///
/// Before each round the driver hands the backend the task's waker; from
/// then on, every nb call on the stack that answers `WouldBlock` (a
/// `receive` with nothing buffered, a `send` into a full buffer, an
/// `accept` with nobody waiting, a `connect` still in its handshake) must
/// register that waker, so that the task is woken when the answer would
/// change. A backend over an async stack does this by polling the stack's
/// own future once with a `Context` built from the stored waker (a
/// `Pending` answer becomes `WouldBlock`).
///
/// That alone is not enough: a server stops reading a socket without a
/// `WouldBlock` when its own receive buffer is full, and reads again later
/// only if the socket is still readable. So before it sleeps, the driver
/// also registers every one of [`Server::interests`] with
/// [`register_interest`](AsyncBackend::register_interest), as an nb loop
/// hands them to [`Wait::wait`](crate::Wait::wait).
pub trait AsyncBackend: Backend {
    /// The waker that `WouldBlock` answers register from now on, until the
    /// next call.
    fn register_waker(&mut self, waker: &Waker);

    /// Registers the waker given last to
    /// [`register_waker`](AsyncBackend::register_waker) for `interest` on
    /// `socket`, as `poll(2)` would wait for it: readable means data, the
    /// end of stream, an error, or for a listener a connection to accept;
    /// writable means room for output or an error. Returns true if the
    /// socket is ready now (nothing registered: the driver polls again at
    /// once).
    fn register_interest(&mut self, socket: &Self::TcpSocket, interest: Interest) -> bool;

    /// Another handle on the same stack, for the connection tasks of
    /// [`async_handler::serve`](crate::async_handler::serve): with it, a
    /// task's `read` and `write` move bytes straight between the socket and
    /// the handler's buffer whenever nothing buffered in the slot has to
    /// come first (no copy through the slot's buffers, no driver round in
    /// between). Both handles must act on the same sockets; the tasks'
    /// handle is given the driver's waker
    /// ([`register_waker`](AsyncBackend::register_waker)) at every round.
    ///
    /// `None` (the default) for a stack that is not a handle: the tasks
    /// then read and write through the slot's buffers only. The guarantees
    /// are the same either way.
    fn share(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// The backend's own work, done after each round of the server
    /// (re-arming listeners, finishing lingering closes): anything waited
    /// for registers the waker given last to
    /// [`register_waker`](AsyncBackend::register_waker). Returns the latest
    /// time by which it needs another turn even if no socket wakes the task
    /// (`None`: no deadline). `now` is the driver's [`Clock::now`].
    ///
    /// It comes after the server's round so that it sees what the round
    /// did: a socket the server has just closed must wake the task when
    /// its close completes (so that the socket returns to the budget and
    /// listens again), and its lingering deadline must be armed, even if
    /// nothing else will ever wake the task.
    fn poll_backend(&mut self, now: Instant) -> Option<Instant> {
        let _ = now;
        None
    }

    /// Whether the backend has nothing of its own to do or to wait for
    /// now: [`poll_backend`](AsyncBackend::poll_backend) would change
    /// nothing and register nothing (no socket listening, no handshake
    /// waiting to be accepted, no close in progress, and nothing changed
    /// since its last call). Then a wake-up of the task cannot be for the
    /// backend, and [`async_handler::serve`](crate::async_handler::serve)
    /// skips the server's round on a wake-up that only its connection tasks
    /// can need (see there).
    ///
    /// `false` (the default) is always correct: every wake-up then polls
    /// the server.
    fn quiet(&self) -> bool {
        false
    }
}

/// The time source of the async driver, and its way to sleep until an
/// instant.
///
/// For embassy: `now` reads `embassy_time::Instant::now()`, and `wake_at`
/// polls `embassy_time::Timer::at(..)` once with a `Context` built from the
/// waker (a timer polled once and dropped stays registered).
pub trait Clock {
    /// The time now, on the clock the server is polled with (never going
    /// backwards).
    fn now(&self) -> Instant;

    /// Arranges for `waker` to be woken at `at` or soon after (at once if
    /// `at` has passed). An earlier wake-up armed before may still fire: a
    /// spurious wake is harmless, a missing one is not.
    fn wake_at(&mut self, at: Instant, waker: &Waker);
}

/// Rounds of [`Server::poll`] in one poll of the [`run`] future while the
/// server still has work due now (and, in
/// [`async_handler::serve`](crate::async_handler::serve), rounds of the
/// driver and the connection tasks while a task asks for another); then
/// the future yields (waking itself), so that other tasks — the network
/// stack's runner first — get a turn.
pub const ROUNDS_PER_WAKE: usize = 8;

/// Runs `server` on `stack` until `stop` completes, and returns `stop`'s
/// output.
///
/// Each time the future is polled it polls `stop`, hands the task's waker
/// to the stack ([`AsyncBackend::register_waker`]), polls the server and
/// lets the backend do its own work ([`AsyncBackend::poll_backend`]). It
/// repeats that while the server has work due now or one of its interests
/// is ready (at most [`ROUNDS_PER_WAKE`] times, then yields). Otherwise it
/// has registered the server's interests
/// ([`AsyncBackend::register_interest`]), arms a wake-up at the nearer of
/// the server's and the backend's deadlines, and sleeps: it is woken only
/// by a socket, by that deadline, or by `stop`. It never busy-polls.
///
/// The server is left as it is when `stop` completes: call
/// [`Server::shutdown`] to close its connections, or `run` again to go on.
pub async fn run<S, H, C, F, const N: usize, const RX: usize, const TX: usize>(
    server: &mut Server<S, H, N, RX, TX>,
    stack: &mut S,
    clock: &mut C,
    stop: F,
) -> F::Output
where
    S: AsyncBackend,
    H: Handler,
    C: Clock,
    F: Future,
{
    let mut stop = pin!(stop);
    let mut armed = Armed::default();
    poll_fn(move |cx| {
        if let Poll::Ready(out) = stop.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let now = clock.now();
        drive(server, stack, clock, cx.waker(), now, &mut armed);
        Poll::Pending
    })
    .await
}

/// The wake-up the driver armed last: a deadline no earlier than one still
/// to come for the same waker needs no new one (that one fires first, and
/// its round arms the next).
#[derive(Default)]
pub(crate) struct Armed {
    at: Option<Instant>,
    waker: Option<Waker>,
}

impl Armed {
    fn arm<C: Clock>(&mut self, clock: &mut C, at: Instant, now: Instant, waker: &Waker) {
        if let (Some(prev), Some(w)) = (self.at, &self.waker)
            && now < prev
            && prev <= at
            && w.will_wake(waker)
        {
            return;
        }
        clock.wake_at(at, waker);
        self.at = Some(at);
        match &mut self.waker {
            Some(w) => w.clone_from(waker),
            None => self.waker = Some(waker.clone()),
        }
    }
}

/// How one wake-up of the driver ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rest {
    /// The time of the last round.
    pub(crate) now: Instant,
    /// It sleeps waiting for none of the server's sockets (no interest),
    /// only for `due`: until then, only the backend's own sockets or
    /// someone else's can wake the task.
    pub(crate) unwatched: bool,
    /// The deadline armed (`None`: none).
    pub(crate) due: Option<Instant>,
}

/// One wake-up of the driver: rounds of the server while it has work due
/// now (at most [`ROUNDS_PER_WAKE`]), then registers what it waits for and
/// arms the deadline; or, with work still due, wakes itself to come back
/// after the other tasks had a turn. `now` is the time of the first round.
pub(crate) fn drive<S, H, C, const N: usize, const RX: usize, const TX: usize>(
    server: &mut Server<S, H, N, RX, TX>,
    stack: &mut S,
    clock: &mut C,
    waker: &Waker,
    mut now: Instant,
    armed: &mut Armed,
) -> Rest
where
    S: AsyncBackend,
    H: Handler,
    C: Clock,
{
    stack.register_waker(waker);
    for round in 0..ROUNDS_PER_WAKE {
        if round > 0 {
            now = clock.now();
        }
        server.poll(stack, now);
        let backend_at = stack.poll_backend(now);
        let due = earliest(server.poll_at(), backend_at);
        if due.is_some_and(|t| t <= now) {
            continue;
        }
        let (mut ready, mut watched) = (false, false);
        for (socket, interest) in server.interests() {
            watched = true;
            ready |= stack.register_interest(socket, interest);
        }
        if ready {
            continue;
        }
        if let Some(t) = due {
            armed.arm(clock, t, now, waker);
        }
        return Rest {
            now,
            unwatched: !watched,
            due,
        };
    }
    // Still work due now: come back after the others had a turn.
    waker.wake_by_ref();
    Rest {
        now,
        unwatched: false,
        due: Some(now),
    }
}

/// The in-memory test stack answers every call at once and has nothing to
/// wake a task with: a test that runs the driver over it polls the future
/// itself.
#[cfg(feature = "mock")]
impl AsyncBackend for crate::mock::MockStack {
    fn register_waker(&mut self, _waker: &Waker) {}

    /// Clones are handles on the same network.
    fn share(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn register_interest(&mut self, _socket: &Self::TcpSocket, _interest: Interest) -> bool {
        false
    }

    /// The in-memory stack has no work of its own.
    fn quiet(&self) -> bool {
        true
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::cell::Cell;
    use core::pin::pin;
    use core::task::Context;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::mock::MockStack;
    use crate::{Config, Conn, Duration};

    struct Echo;
    impl Handler for Echo {
        type State = ();
        fn on_open(&mut self, _: &mut Conn<'_>) {}
        fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
            conn.write(data)
        }
    }

    /// A simulated clock that records the wake-up it was asked for.
    struct SimClock {
        now: Cell<Instant>,
        armed: Option<Instant>,
    }
    impl Clock for SimClock {
        fn now(&self) -> Instant {
            self.now.get()
        }
        fn wake_at(&mut self, at: Instant, _: &Waker) {
            self.armed = Some(at);
        }
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_idle_server_arms_its_idle_deadline_and_sleeps() {
        let mut stack = MockStack::new();
        let config = Config {
            idle_timeout: Some(Duration::from_secs(5)),
            ..Config::new()
        };
        let mut server: Server<MockStack, Echo, 2, 64, 64> = Server::new(Echo, config);
        server.listen(&mut stack, 7).unwrap();
        let client = stack.connect_client(7).unwrap();
        let mut clock = SimClock {
            now: Cell::new(Instant::from_millis(1_000)),
            armed: None,
        };
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        {
            let fut = pin!(run(
                &mut server,
                &mut stack,
                &mut clock,
                core::future::pending::<()>()
            ));
            assert!(fut.poll(&mut cx).is_pending());
        }
        // Accepted and idle: the only deadline is the idle timeout, and the
        // future did not wake itself.
        assert_eq!(server.active(), 1);
        assert_eq!(clock.armed, Some(Instant::from_millis(6_000)));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        drop(client);
    }

    #[test]
    fn stop_ends_the_run_with_its_output() {
        let mut stack = MockStack::new();
        let mut server: Server<MockStack, Echo, 2, 64, 64> = Server::new(Echo, Config::new());
        server.listen(&mut stack, 7).unwrap();
        let mut clock = SimClock {
            now: Cell::new(Instant::ZERO),
            armed: None,
        };
        let mut cx = Context::from_waker(Waker::noop());
        let fut = pin!(run(&mut server, &mut stack, &mut clock, async { 42 }));
        assert_eq!(fut.poll(&mut cx), Poll::Ready(42));
    }

    /// A clock that records every wake-up armed.
    #[derive(Default)]
    struct Arming(std::vec::Vec<Instant>);
    impl Clock for Arming {
        fn now(&self) -> Instant {
            Instant::ZERO
        }
        fn wake_at(&mut self, at: Instant, _: &Waker) {
            self.0.push(at);
        }
    }

    #[test]
    fn a_later_deadline_waits_for_the_wake_up_already_armed() {
        let ms = Instant::from_millis;
        let mut clock = Arming::default();
        let mut armed = Armed::default();
        let first = Arc::new(Count(AtomicUsize::new(0)));
        let first = Waker::from(first);
        armed.arm(&mut clock, ms(100), ms(0), &first);
        // Later or equal, still to come, same waker: the armed one fires first.
        armed.arm(&mut clock, ms(150), ms(10), &first);
        armed.arm(&mut clock, ms(100), ms(20), &first);
        assert_eq!(clock.0, [ms(100)]);
        // Earlier: armed.
        armed.arm(&mut clock, ms(50), ms(30), &first);
        assert_eq!(clock.0, [ms(100), ms(50)]);
        // The armed one has come: the next deadline is armed anew.
        armed.arm(&mut clock, ms(200), ms(50), &first);
        assert_eq!(clock.0, [ms(100), ms(50), ms(200)]);
        // Another waker would not be woken by the armed one.
        let second = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        armed.arm(&mut clock, ms(250), ms(60), &second);
        assert_eq!(clock.0, [ms(100), ms(50), ms(200), ms(250)]);
    }

    #[test]
    fn earliest_picks_the_nearer_deadline() {
        let a = Some(Instant::from_millis(5));
        let b = Some(Instant::from_millis(3));
        assert_eq!(earliest(a, b), b);
        assert_eq!(earliest(a, None), a);
        assert_eq!(earliest(None, b), b);
        assert_eq!(earliest(None, None), None);
    }
}
