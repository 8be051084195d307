//! [`FaultyStack`]: a wrapper around any [`TcpFullStack`] that injects the
//! faults a real stack produces (would-block, short reads and writes,
//! transient accept errors, connection errors) from a seeded RNG
//! (`fastrand`), plus
//! scripted faults (the next `n` accepts fail, a socket budget).

use core::cell::{RefCell, RefMut};
use core::fmt;
use core::task::Waker;
use std::net::SocketAddr;
use std::rc::Rc;

use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};

/// True with probability `per_mille / 1000`.
fn chance(rng: &mut fastrand::Rng, per_mille: u16) -> bool {
    per_mille > 0 && rng.u16(..1000) < per_mille
}

/// Fault probabilities, each in per mille of the calls of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// `accept` says `WouldBlock` although a client may be waiting.
    pub accept_would_block: u16,
    /// `accept` fails with a transient error (the client stays queued).
    pub accept_error: u16,
    /// `send` says `WouldBlock` without sending.
    pub send_would_block: u16,
    /// `send` takes only a (random, non-empty) prefix.
    pub short_write: u16,
    /// `send` fails: the connection is broken.
    pub send_error: u16,
    /// `receive` says `WouldBlock` without reading.
    pub receive_would_block: u16,
    /// `receive` reads into a (random, non-empty) prefix of the buffer.
    pub short_read: u16,
    /// `receive` fails: the connection is broken.
    pub receive_error: u16,
}

impl Faults {
    /// No random faults (only scripted ones).
    pub const NONE: Faults = Faults {
        accept_would_block: 0,
        accept_error: 0,
        send_would_block: 0,
        short_write: 0,
        send_error: 0,
        receive_would_block: 0,
        short_read: 0,
        receive_error: 0,
    };
}

/// How many faults of each kind were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Injected `WouldBlock`s (all operations).
    pub would_block: u64,
    /// Short reads.
    pub short_reads: u64,
    /// Short writes.
    pub short_writes: u64,
    /// Failed accepts (random, scripted or out of sockets).
    pub accept_errors: u64,
    /// Failed sends.
    pub send_errors: u64,
    /// Failed receives.
    pub receive_errors: u64,
}

/// The operation a fault was injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `accept`.
    Accept,
    /// `send`.
    Send,
    /// `receive`.
    Receive,
}

/// The error type of a [`FaultyStack`]: the wrapped stack's, or an injected
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultError<E> {
    /// The wrapped stack's own error.
    Stack(E),
    /// An injected error in this operation.
    Injected(Op),
    /// The socket budget set with [`FaultyStack::set_socket_limit`] is used
    /// up.
    OutOfSockets,
}

impl<E: fmt::Debug> fmt::Display for FaultError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultError::Stack(e) => write!(f, "stack error: {e:?}"),
            FaultError::Injected(op) => write!(f, "injected {op:?} error"),
            FaultError::OutOfSockets => f.write_str("out of sockets (injected budget)"),
        }
    }
}

impl<E: TcpError> TcpError for FaultError<E> {
    fn kind(&self) -> TcpErrorKind {
        match self {
            FaultError::Stack(e) => e.kind(),
            FaultError::Injected(_) | FaultError::OutOfSockets => TcpErrorKind::Other,
        }
    }
}

/// Wraps a [`TcpFullStack`] and injects faults into its calls, from a
/// seeded RNG (deterministic for a seed and a call sequence) and from
/// scripts. The wrapped stack's socket type is used as is, so backend
/// functions that take a socket (waiting, addresses) still work.
///
/// An injected `send` or `receive` error ends that connection as far as a
/// server is concerned (it closes it); the wrapped connection is left as it
/// was, to be closed normally.
///
/// ```
/// use embedded_nal::{TcpClientStack, TcpFullStack};
/// use tcpool_conformance::{FaultyStack, Faults};
/// use tcpool_core::mock::MockStack;
///
/// let mut stack = FaultyStack::new(MockStack::new(), 7, Faults::NONE);
/// let mut listener = stack.socket().unwrap();
/// stack.bind(&mut listener, 80).unwrap();
/// stack.listen(&mut listener).unwrap();
/// let _client = stack.inner().connect_client(80).unwrap();
/// stack.fail_next_accepts(1);
/// assert!(matches!(stack.accept(&mut listener), Err(nb::Error::Other(_))));
/// assert!(stack.accept(&mut listener).is_ok());
/// assert_eq!(stack.open_sockets(), 2);
/// ```
#[derive(Debug)]
pub struct FaultyStack<S> {
    inner: S,
    /// Shared by the handles of [`AsyncBackend::share`](tcpool_core::AsyncBackend::share).
    state: Rc<RefCell<FaultState>>,
    /// The async driver's waker ([`tcpool_core::AsyncBackend`]).
    waker: Option<Waker>,
}

/// What the handles on one faulty stack share.
#[derive(Debug)]
struct FaultState {
    rng: fastrand::Rng,
    faults: Faults,
    fail_accepts: usize,
    socket_limit: Option<usize>,
    open: usize,
    counts: FaultCounts,
}

impl<S> FaultyStack<S> {
    /// Wraps `inner`, injecting `faults` drawn from an RNG seeded with `seed`.
    pub fn new(inner: S, seed: u64, faults: Faults) -> Self {
        FaultyStack {
            inner,
            state: Rc::new(RefCell::new(FaultState {
                rng: fastrand::Rng::with_seed(seed),
                faults,
                fail_accepts: 0,
                socket_limit: None,
                open: 0,
                counts: FaultCounts::default(),
            })),
            waker: None,
        }
    }

    fn st(&self) -> RefMut<'_, FaultState> {
        self.state.borrow_mut()
    }

    /// Draws whether to inject the fault `pick` chooses.
    fn roll(&self, pick: impl Fn(&Faults) -> u16) -> bool {
        let mut st = self.st();
        let per_mille = pick(&st.faults);
        chance(&mut st.rng, per_mille)
    }

    /// The wrapped stack.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped stack, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the stack.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Changes the fault probabilities.
    pub fn set_faults(&mut self, faults: Faults) {
        self.st().faults = faults;
    }

    /// Makes the next `n` calls to `accept` fail (the client stays queued).
    pub fn fail_next_accepts(&mut self, n: usize) {
        self.st().fail_accepts = n;
    }

    /// Limits the sockets open through this wrapper (listeners and accepted
    /// connections); at the limit, `socket` and `accept` fail with
    /// [`FaultError::OutOfSockets`] (`accept` leaves the client queued, as
    /// `EMFILE` does). `None` lifts the limit.
    pub fn set_socket_limit(&mut self, limit: Option<usize>) {
        self.st().socket_limit = limit;
    }

    /// Sockets open through this wrapper now (created or accepted, and not
    /// closed).
    pub fn open_sockets(&self) -> usize {
        self.st().open
    }

    /// The faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        self.st().counts
    }

    /// An injected `WouldBlock`: counted, and, under the async driver,
    /// its task woken at once (the next try may succeed: nothing else
    /// would wake it).
    fn injected_would_block(&mut self) {
        self.st().counts.would_block += 1;
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    fn at_limit(&self) -> bool {
        let st = self.st();
        st.socket_limit.is_some_and(|l| st.open >= l)
    }
}

impl<S: TcpClientStack> TcpClientStack for FaultyStack<S> {
    type TcpSocket = S::TcpSocket;
    type Error = FaultError<S::Error>;

    fn socket(&mut self) -> Result<S::TcpSocket, Self::Error> {
        if self.at_limit() {
            return Err(FaultError::OutOfSockets);
        }
        let s = self.inner.socket().map_err(FaultError::Stack)?;
        self.st().open += 1;
        Ok(s)
    }

    fn connect(
        &mut self,
        socket: &mut S::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        self.inner
            .connect(socket, remote)
            .map_err(|e| e.map(FaultError::Stack))
    }

    fn send(&mut self, socket: &mut S::TcpSocket, buffer: &[u8]) -> nb::Result<usize, Self::Error> {
        if buffer.is_empty() {
            return self
                .inner
                .send(socket, buffer)
                .map_err(|e| e.map(FaultError::Stack));
        }
        if self.roll(|f| f.send_error) {
            self.st().counts.send_errors += 1;
            return Err(nb::Error::Other(FaultError::Injected(Op::Send)));
        }
        if self.roll(|f| f.send_would_block) {
            self.injected_would_block();
            return Err(nb::Error::WouldBlock);
        }
        let mut len = buffer.len();
        if len > 1 && self.roll(|f| f.short_write) {
            len = self.st().rng.usize(1..len);
            self.st().counts.short_writes += 1;
        }
        self.inner
            .send(socket, &buffer[..len])
            .map_err(|e| e.map(FaultError::Stack))
    }

    fn receive(
        &mut self,
        socket: &mut S::TcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        if buffer.is_empty() {
            return self
                .inner
                .receive(socket, buffer)
                .map_err(|e| e.map(FaultError::Stack));
        }
        if self.roll(|f| f.receive_error) {
            self.st().counts.receive_errors += 1;
            return Err(nb::Error::Other(FaultError::Injected(Op::Receive)));
        }
        if self.roll(|f| f.receive_would_block) {
            self.injected_would_block();
            return Err(nb::Error::WouldBlock);
        }
        let mut len = buffer.len();
        if len > 1 && self.roll(|f| f.short_read) {
            len = self.st().rng.usize(1..len);
            self.st().counts.short_reads += 1;
        }
        self.inner
            .receive(socket, &mut buffer[..len])
            .map_err(|e| e.map(FaultError::Stack))
    }

    fn close(&mut self, socket: S::TcpSocket) -> Result<(), Self::Error> {
        let mut st = self.st();
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.inner.close(socket).map_err(FaultError::Stack)
    }
}

impl<S: tcpool_core::Backend> tcpool_core::Backend for FaultyStack<S> {
    fn abort(&mut self, socket: S::TcpSocket) -> Result<(), Self::Error> {
        let mut st = self.st();
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.inner.abort(socket).map_err(FaultError::Stack)
    }

    fn local_addr(&self, socket: &S::TcpSocket) -> Option<SocketAddr> {
        self.inner.local_addr(socket)
    }

    // Readiness is the wrapped stack's: an injected `WouldBlock` on a
    // socket it reports ready is reported again (readiness is level-
    // triggered), as a spurious wake-up would be.
    fn reports_ready(&self) -> bool {
        self.inner.reports_ready()
    }

    fn watch(
        &mut self,
        socket: &S::TcpSocket,
        token: usize,
        interest: tcpool_core::Interest,
    ) -> Result<(), Self::Error> {
        self.inner
            .watch(socket, token, interest)
            .map_err(FaultError::Stack)
    }

    fn take_ready(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        self.inner.take_ready(tokens, ready);
    }
}

/// The async driver over a faulty stack: the wrapped stack registers the
/// waker for its own `WouldBlock`s; an injected one wakes the task at once.
impl<S: tcpool_core::AsyncBackend> tcpool_core::AsyncBackend for FaultyStack<S> {
    fn register_waker(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
        self.inner.register_waker(waker);
    }

    fn register_interest(
        &mut self,
        socket: &S::TcpSocket,
        interest: tcpool_core::Interest,
    ) -> bool {
        self.inner.register_interest(socket, interest)
    }

    fn poll_backend(&mut self, now: tcpool_core::Instant) -> Option<tcpool_core::Instant> {
        self.inner.poll_backend(now)
    }

    fn quiet(&self) -> bool {
        self.inner.quiet()
    }

    /// A handle on the same wrapped stack and the same faults (one RNG, one
    /// count), if the wrapped stack can be shared.
    fn share(&self) -> Option<Self> {
        Some(FaultyStack {
            inner: self.inner.share()?,
            state: Rc::clone(&self.state),
            waker: None,
        })
    }
}

impl<S: TcpFullStack> TcpFullStack for FaultyStack<S> {
    fn bind(&mut self, socket: &mut S::TcpSocket, port: u16) -> Result<(), Self::Error> {
        self.inner.bind(socket, port).map_err(FaultError::Stack)
    }

    fn listen(&mut self, socket: &mut S::TcpSocket) -> Result<(), Self::Error> {
        self.inner.listen(socket).map_err(FaultError::Stack)
    }

    fn accept(
        &mut self,
        socket: &mut S::TcpSocket,
    ) -> nb::Result<(S::TcpSocket, SocketAddr), Self::Error> {
        if self.st().fail_accepts > 0 {
            self.st().fail_accepts -= 1;
            self.st().counts.accept_errors += 1;
            return Err(nb::Error::Other(FaultError::Injected(Op::Accept)));
        }
        if self.at_limit() {
            self.st().counts.accept_errors += 1;
            return Err(nb::Error::Other(FaultError::OutOfSockets));
        }
        if self.roll(|f| f.accept_error) {
            self.st().counts.accept_errors += 1;
            return Err(nb::Error::Other(FaultError::Injected(Op::Accept)));
        }
        if self.roll(|f| f.accept_would_block) {
            self.injected_would_block();
            return Err(nb::Error::WouldBlock);
        }
        let accepted = self
            .inner
            .accept(socket)
            .map_err(|e| e.map(FaultError::Stack))?;
        self.st().open += 1;
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcpool_core::mock::MockStack;

    fn listening(
        seed: u64,
        faults: Faults,
    ) -> (FaultyStack<MockStack>, tcpool_core::mock::MockSocket) {
        let mut stack = FaultyStack::new(MockStack::new(), seed, faults);
        let mut l = stack.socket().unwrap();
        stack.bind(&mut l, 9).unwrap();
        stack.listen(&mut l).unwrap();
        (stack, l)
    }

    #[test]
    fn same_seed_same_faults() {
        let faults = Faults {
            short_read: 500,
            receive_would_block: 300,
            ..Faults::NONE
        };
        let run = |seed| {
            let (mut stack, mut l) = listening(seed, faults);
            let c = stack.inner().connect_client(9).unwrap();
            let (mut s, _) = stack.accept(&mut l).unwrap();
            c.send(&[5u8; 200]);
            let mut log = std::vec::Vec::new();
            for _ in 0..50 {
                log.push(match stack.receive(&mut s, &mut [0u8; 64]) {
                    Ok(n) => n as i64,
                    Err(nb::Error::WouldBlock) => -1,
                    Err(nb::Error::Other(_)) => -2,
                });
            }
            log
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn short_reads_and_writes_never_lose_or_invent_bytes() {
        let faults = Faults {
            short_read: 700,
            short_write: 700,
            ..Faults::NONE
        };
        let (mut stack, mut l) = listening(1, faults);
        let c = stack.inner().connect_client(9).unwrap();
        let (mut s, _) = stack.accept(&mut l).unwrap();
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        c.send(&data);
        let mut got = std::vec::Vec::new();
        let mut buf = [0u8; 100];
        while let Ok(n) = stack.receive(&mut s, &mut buf) {
            assert!(n > 0 && n <= 100);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        let mut sent = 0;
        while sent < data.len() {
            sent += stack.send(&mut s, &data[sent..]).unwrap();
        }
        assert_eq!(c.recv_all(), data);
        assert!(stack.counts().short_reads > 0 && stack.counts().short_writes > 0);
    }

    #[test]
    fn socket_limit_fails_accept_and_keeps_the_client_queued() {
        let (mut stack, mut l) = listening(1, Faults::NONE);
        let _c = stack.inner().connect_client(9).unwrap();
        stack.set_socket_limit(Some(1));
        assert!(matches!(
            stack.accept(&mut l),
            Err(nb::Error::Other(FaultError::OutOfSockets))
        ));
        assert_eq!(stack.inner().backlog_len(9), 1);
        stack.set_socket_limit(None);
        let (s, _) = stack.accept(&mut l).unwrap();
        assert_eq!(stack.open_sockets(), 2);
        stack.close(s).unwrap();
        assert_eq!(stack.open_sockets(), 1);
    }
}
