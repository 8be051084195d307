//! The two handler kinds every scenario runs with: callback [`Handler`]s
//! ([`Callbacks`]: the [`Recorder`] on a [`Server`]) and async handlers
//! ([`Async`]: the [`AsyncRecorder`] in connection tasks over the same
//! [`Server`]). A scenario is written once against [`RecDrive`], the
//! server as the scenarios see it, and takes the kind as a type parameter.
//!
//! [`Handler`]: tcpool_core::Handler

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};
use std::boxed::Box;
use std::rc::Rc;
use std::string::String;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Wake;
use std::vec::Vec;

use tcpool_core::async_handler::{Adapter, AsyncServer, Tasks};
use tcpool_core::asynch::ROUNDS_PER_WAKE;
use tcpool_core::{
    AsyncBackend, Backend, Config, Instant, Interest, ListenError, Server, SlotState, Stats,
};

use crate::async_handlers::AsyncRecorder;
use crate::handlers::Recorder;
use crate::harness::Drive;

/// A server running the [`Recorder`]'s application, whatever the handler
/// kind: what the scenarios step, inspect and shut down.
pub trait RecDrive<S: Backend>: Drive<S> {
    /// The records of every connection, and the recorder's settings.
    fn handler(&self) -> &Recorder;
    /// The recorder, to change its settings ([`Recorder::set_refusing`]).
    fn handler_mut(&mut self) -> &mut Recorder;
    /// [`Server::stats`].
    fn stats(&self) -> &Stats;
    /// [`Server::active`].
    fn active(&self) -> usize;
    /// [`Server::slot_states`].
    fn slot_states(&self) -> impl Iterator<Item = SlotState> + '_;
    /// [`Server::listen`].
    fn listen(&mut self, stack: &mut S, port: u16) -> Result<(), ListenError<S::Error>>;
    /// [`Server::listener`].
    fn listener(&self) -> Option<&S::TcpSocket>;
    /// [`Server::shutdown`].
    fn shutdown(&mut self, stack: &mut S, now: Instant);
}

/// A handler kind: how a scenario's [`Recorder`] becomes a server.
pub trait Kind<S: Backend> {
    /// The kind's name, for messages.
    const NAME: &'static str;
    /// The server type of this kind.
    type Server<const N: usize, const RX: usize, const TX: usize>: RecDrive<S>;
    /// A server (not listening yet) serving `recorder`'s mode.
    fn server<const N: usize, const RX: usize, const TX: usize>(
        recorder: Recorder,
        config: Config,
    ) -> Self::Server<N, RX, TX>;
}

/// Callback handlers: the [`Recorder`] itself is the server's
/// [`Handler`](tcpool_core::Handler).
#[derive(Debug, Clone, Copy, Default)]
pub struct Callbacks;

impl<S: Backend> Kind<S> for Callbacks {
    const NAME: &'static str = "callbacks";
    type Server<const N: usize, const RX: usize, const TX: usize> = Server<S, Recorder, N, RX, TX>;

    fn server<const N: usize, const RX: usize, const TX: usize>(
        recorder: Recorder,
        config: Config,
    ) -> Self::Server<N, RX, TX> {
        Server::new(recorder, config)
    }
}

impl<S: Backend, const N: usize, const RX: usize, const TX: usize> RecDrive<S>
    for Server<S, Recorder, N, RX, TX>
{
    fn handler(&self) -> &Recorder {
        Server::handler(self)
    }

    fn handler_mut(&mut self) -> &mut Recorder {
        Server::handler_mut(self)
    }

    fn stats(&self) -> &Stats {
        Server::stats(self)
    }

    fn active(&self) -> usize {
        Server::active(self)
    }

    fn slot_states(&self) -> impl Iterator<Item = SlotState> + '_ {
        Server::slot_states(self)
    }

    fn listen(&mut self, stack: &mut S, port: u16) -> Result<(), ListenError<S::Error>> {
        Server::listen(self, stack, port)
    }

    fn listener(&self) -> Option<&S::TcpSocket> {
        Server::listener(self)
    }

    fn shutdown(&mut self, stack: &mut S, now: Instant) {
        Server::shutdown(self, stack, now)
    }
}

/// Async handlers: the [`AsyncRecorder`] serves each connection in its
/// slot's task ([`AsyncServerDrive`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Async;

impl<S: AsyncBackend + 'static> Kind<S> for Async {
    const NAME: &'static str = "async";
    type Server<const N: usize, const RX: usize, const TX: usize> = AsyncServerDrive<S, N, RX, TX>;

    fn server<const N: usize, const RX: usize, const TX: usize>(
        recorder: Recorder,
        config: Config,
    ) -> Self::Server<N, RX, TX> {
        AsyncServerDrive::new(recorder, config)
    }
}

/// The async server of the scenarios.
type Served<S, const N: usize, const RX: usize, const TX: usize> =
    AsyncServer<'static, S, AsyncRecorder, N, RX, TX>;

/// The connection tasks over a boxed server.
type TasksOf<S, const N: usize, const RX: usize, const TX: usize> =
    Tasks<'static, S, AsyncRecorder, Box<Served<S, N, RX, TX>>, N, RX, TX>;

/// Set when a connection task wakes the driver.
#[derive(Debug, Default)]
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An [`AsyncServer`] with its [`AsyncRecorder`] and connection tasks,
/// stepped as a [`Drive`]: each [`poll`](Drive::poll) polls the server,
/// hands the tasks their connections and runs them until none asks the
/// server for another round (at most [`ROUNDS_PER_WAKE`] times; then it
/// says it is due at once), as `async_handler::serve` does in one wake-up,
/// but with the harness doing the waiting (its interests and deadline are
/// the server's).
///
/// The server is lent to the tasks, and the [`Recorder`] to the handler,
/// only during a poll, so between polls both can be inspected directly. The handler lives as long as the program (it
/// is leaked: the server's adapter borrows it for `'static`, which a test
/// can afford).
pub struct AsyncServerDrive<
    S: AsyncBackend + 'static,
    const N: usize,
    const RX: usize,
    const TX: usize,
> {
    server: Option<Box<Served<S, N, RX, TX>>>,
    /// The records, lent to the handler during each poll.
    book: Option<Recorder>,
    handler: &'static AsyncRecorder,
    tasks: Rc<TasksOf<S, N, RX, TX>>,
    run: Pin<Box<dyn Future<Output = ()>>>,
    woken: Arc<Woken>,
    waker: Waker,
    now: Instant,
    /// The tasks still wanted another round when the last poll ended.
    more: bool,
    /// A handle on the stack was offered to the tasks.
    stack_lent: bool,
}

impl<S: AsyncBackend + 'static, const N: usize, const RX: usize, const TX: usize>
    AsyncServerDrive<S, N, RX, TX>
{
    /// A server (not listening yet) whose connections `recorder`'s mode
    /// serves as async handlers.
    pub fn new(recorder: Recorder, config: Config) -> Self {
        let handler: &'static AsyncRecorder = Box::leak(Box::new(AsyncRecorder::new()));
        let tasks: Rc<TasksOf<S, N, RX, TX>> = Rc::new(Tasks::new());
        let run = {
            let tasks = Rc::clone(&tasks);
            Box::pin(async move { tasks.run(handler).await })
        };
        let woken = Arc::new(Woken::default());
        AsyncServerDrive {
            server: Some(Box::new(Server::new(Adapter::new(handler), config))),
            book: Some(recorder),
            handler,
            tasks,
            run,
            waker: Waker::from(Arc::clone(&woken)),
            woken,
            now: Instant::ZERO,
            more: false,
            stack_lent: false,
        }
    }

    fn server(&self) -> &Served<S, N, RX, TX> {
        self.server
            .as_ref()
            .expect("the server is back after each poll")
    }

    fn server_mut(&mut self) -> &mut Served<S, N, RX, TX> {
        self.server
            .as_mut()
            .expect("the server is back after each poll")
    }

    /// Polls the connection tasks once; true if one asked for another
    /// round of the server.
    fn run_tasks(&mut self) -> bool {
        self.woken.0.store(false, Ordering::SeqCst);
        let mut cx = Context::from_waker(&self.waker);
        let _ = self.run.as_mut().poll(&mut cx);
        self.woken.0.swap(false, Ordering::SeqCst)
    }

    /// Lends the server to the tasks, runs `poll` on it and the tasks in
    /// turn while they ask for it, and takes the server back.
    fn turn(
        &mut self,
        now: Instant,
        mut poll: impl FnMut(&mut Served<S, N, RX, TX>) -> bool,
    ) -> bool {
        self.now = now;
        let server = self
            .server
            .take()
            .expect("the server is back after each poll");
        self.tasks.lend(server);
        let book = self
            .book
            .take()
            .expect("the recorder is back after each poll");
        self.handler.lend(book);
        self.tasks.register_waker(&self.waker);
        let mut progress = false;
        self.more = true;
        for _ in 0..ROUNDS_PER_WAKE {
            if let Some(p) = self.tasks.step(now, &self.waker, &mut poll) {
                progress |= p;
            }
            let again = self.run_tasks();
            // Bytes moved straight through the stack ask nothing of the
            // server, but they are progress.
            progress |= self.tasks.take_moved();
            if !again {
                self.more = false;
                break;
            }
            progress = true;
        }
        // A task that holds input across an await keeps the server: the
        // step ends it (its connection closes with `protocol`), and the
        // next poll of the tasks drops its future.
        for _ in 0..3 {
            if let Some(server) = self.tasks.take() {
                self.server = Some(server);
                self.book = self.handler.take();
                return progress;
            }
            let _ = self.tasks.step(now, &self.waker, |_| false);
            self.run_tasks();
        }
        panic!("the connection tasks keep the server borrowed");
    }
}

impl<S: AsyncBackend + 'static, const N: usize, const RX: usize, const TX: usize> Drive<S>
    for AsyncServerDrive<S, N, RX, TX>
{
    fn poll(&mut self, stack: &mut S, now: Instant) -> bool {
        if !self.stack_lent {
            // The tasks read and write straight through a handle on the
            // stack, as under `async_handler::serve`.
            self.stack_lent = true;
            if let Some(handle) = stack.share() {
                self.tasks.lend_stack(handle);
            }
        }
        self.turn(now, |server| server.poll(stack, now))
    }

    fn poll_at(&self) -> Option<Instant> {
        if self.more {
            Some(self.now)
        } else {
            self.server().poll_at()
        }
    }

    fn interests(&self) -> Vec<(&S::TcpSocket, Interest)> {
        self.server().interests().collect()
    }

    fn describe(&self) -> String {
        format!("async handlers: {}", Drive::<S>::describe(self.server()))
    }
}

impl<S: AsyncBackend + 'static, const N: usize, const RX: usize, const TX: usize> RecDrive<S>
    for AsyncServerDrive<S, N, RX, TX>
{
    fn handler(&self) -> &Recorder {
        self.book
            .as_ref()
            .expect("the recorder is back after each poll")
    }

    fn handler_mut(&mut self) -> &mut Recorder {
        self.book
            .as_mut()
            .expect("the recorder is back after each poll")
    }

    fn stats(&self) -> &Stats {
        self.server().stats()
    }

    fn active(&self) -> usize {
        self.server().active()
    }

    fn slot_states(&self) -> impl Iterator<Item = SlotState> + '_ {
        self.server().slot_states()
    }

    fn listen(&mut self, stack: &mut S, port: u16) -> Result<(), ListenError<S::Error>> {
        self.server_mut().listen(stack, port)
    }

    fn listener(&self) -> Option<&S::TcpSocket> {
        self.server().listener()
    }

    /// Shuts the server down, then lets the tasks see their connections
    /// end (their handler futures are dropped).
    fn shutdown(&mut self, stack: &mut S, now: Instant) {
        let mut done = false;
        self.turn(now, |server| {
            if !core::mem::replace(&mut done, true) {
                server.shutdown(stack, now);
            }
            false
        });
    }
}
