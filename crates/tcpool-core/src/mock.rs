//! An in-memory TCP stack for tests: a deterministic [`TcpFullStack`] with a
//! client side, no OS sockets, no threads.
//!
//! Connections are pairs of byte queues with a bounded window per
//! direction (so backpressure is real), a listen backlog per port, a
//! socket budget (so "out of sockets" can be provoked), and explicit FIN
//! and RST. Clients are [`MockClient`] handles on the same network; the
//! server side is the [`TcpFullStack`] implementation. Everything happens
//! at once when called: there is no time and no loss.
//!
//! Enabled by the `mock` feature (it uses `std`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::vec::Vec;

use embedded_nal::{TcpClientStack, TcpErrorKind, TcpFullStack};

use crate::Interest;

/// Errors of the mock stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// The socket budget is used up.
    #[error("out of sockets")]
    OutOfSockets,
    /// The port is already bound.
    #[error("address in use")]
    AddrInUse,
    /// Nobody listens on the port, or its backlog is full.
    #[error("connection refused")]
    Refused,
    /// The peer reset the connection.
    #[error("connection reset")]
    Reset,
    /// The socket is in the wrong state for the call.
    #[error("invalid socket state")]
    InvalidState,
    /// An error injected by the test.
    #[error("injected error")]
    Injected,
}

impl embedded_nal::TcpError for MockError {
    fn kind(&self) -> TcpErrorKind {
        match self {
            MockError::Reset => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

/// Settings of a mock network.
#[derive(Debug, Clone, Copy)]
pub struct MockConfig {
    /// Sockets the server side may hold at once (listeners and connections;
    /// sockets in a listen backlog count too, as in a real stack).
    pub max_sockets: usize,
    /// Connections a listener holds before `connect` is refused.
    pub backlog: usize,
    /// Bytes in flight per direction before `send` takes no more.
    pub window: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            max_sockets: 64,
            backlog: 8,
            window: 64 * 1024,
        }
    }
}

#[derive(Default)]
struct Pipe {
    to_server: VecDeque<u8>,
    to_client: VecDeque<u8>,
    client_fin: bool,
    server_fin: bool,
    client_reset: bool,
    server_reset: bool,
    server_closed: bool,
    client_port: u16,
}

struct Net {
    config: MockConfig,
    pipes: Vec<Pipe>,
    listeners: BTreeMap<u16, VecDeque<usize>>,
    sockets: usize,
    next_client_port: u16,
    accept_errors: usize,
    /// Whether the stack reports readiness ([`MockStack::set_reports_ready`]).
    reports_ready: bool,
    /// What each watched socket is watched for, and its token.
    watches: BTreeMap<SockState, (usize, Interest)>,
    /// Sockets whose state changed since they were last found not ready:
    /// only these can be ready, so `take_ready` costs what changed, not
    /// what is watched.
    changed: BTreeSet<SockState>,
    /// `receive` calls on server sockets so far.
    receives: u64,
}

impl Net {
    /// Notes that `socket`'s state changed (only tracked while the stack
    /// reports readiness).
    fn mark_changed(&mut self, socket: SockState) {
        if self.reports_ready {
            self.changed.insert(socket);
        }
    }

    fn take_socket(&mut self) -> Result<(), MockError> {
        if self.sockets >= self.config.max_sockets {
            return Err(MockError::OutOfSockets);
        }
        self.sockets += 1;
        Ok(())
    }
}

/// A server-side socket of the mock stack.
#[derive(Debug)]
pub struct MockSocket(SockState);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SockState {
    Fresh,
    Bound(u16),
    Listening(u16),
    Conn(usize),
}

/// The in-memory stack. Cloning gives another handle on the same network.
#[derive(Clone)]
pub struct MockStack {
    net: Rc<RefCell<Net>>,
}

impl Default for MockStack {
    fn default() -> Self {
        Self::new()
    }
}

/// The address every mock client connects from.
pub const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

/// The address the mock server's sockets are bound to.
pub const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

impl MockStack {
    /// A network with the default [`MockConfig`].
    pub fn new() -> Self {
        Self::with_config(MockConfig::default())
    }

    /// A network with `config`.
    pub fn with_config(config: MockConfig) -> Self {
        MockStack {
            net: Rc::new(RefCell::new(Net {
                config,
                pipes: Vec::new(),
                listeners: BTreeMap::new(),
                sockets: 0,
                next_client_port: 40000,
                accept_errors: 0,
                reports_ready: false,
                watches: BTreeMap::new(),
                changed: BTreeSet::new(),
                receives: 0,
            })),
        }
    }

    /// Makes the stack report readiness
    /// ([`Backend::reports_ready`](crate::Backend::reports_ready)): a
    /// server on it then services only the sockets reported ready, as on a
    /// backend with epoll. Readiness is level-triggered and computed at
    /// each [`take_ready`](crate::Backend::take_ready) from the buffers, so
    /// a server that forgets to watch a socket stalls (what the tests of the
    /// ready path look for).
    pub fn set_reports_ready(&self, on: bool) {
        let mut net = self.net.borrow_mut();
        net.reports_ready = on;
        // From now on changes are tracked; until now they were not, so
        // every watched socket may have changed.
        let watched: Vec<SockState> = net.watches.keys().copied().collect();
        net.changed.extend(watched);
    }

    /// How many times the server side has called `receive` so far (what a
    /// poll costs the stack).
    pub fn receive_calls(&self) -> u64 {
        self.net.borrow().receives
    }

    /// How many sockets are watched now (on a stack that reports
    /// readiness).
    pub fn watched(&self) -> usize {
        self.net.borrow().watches.len()
    }

    /// Connects a client to `port`. Succeeds while the listener's backlog has
    /// room, whether or not the server has accepted yet (as a kernel does).
    pub fn connect_client(&self, port: u16) -> Result<MockClient, MockError> {
        let mut net = self.net.borrow_mut();
        let backlog = net.config.backlog;
        let queued = net.listeners.get(&port).ok_or(MockError::Refused)?.len();
        if queued >= backlog {
            return Err(MockError::Refused);
        }
        net.take_socket()?;
        let client_port = net.next_client_port;
        net.next_client_port = net.next_client_port.wrapping_add(1).max(40000);
        net.pipes.push(Pipe {
            client_port,
            ..Pipe::default()
        });
        let pipe = net.pipes.len() - 1;
        net.listeners
            .get_mut(&port)
            .ok_or(MockError::Refused)?
            .push_back(pipe);
        net.mark_changed(SockState::Listening(port));
        Ok(MockClient {
            net: self.net.clone(),
            pipe,
        })
    }

    /// Makes the next `n` `accept` calls fail (a transient stack error).
    pub fn fail_next_accepts(&self, n: usize) {
        self.net.borrow_mut().accept_errors = n;
    }

    /// Changes the socket budget (to provoke or relieve "out of sockets").
    pub fn set_max_sockets(&self, n: usize) {
        self.net.borrow_mut().config.max_sockets = n;
    }

    /// Server-side sockets in use (listeners, connections, backlog entries).
    pub fn sockets_in_use(&self) -> usize {
        self.net.borrow().sockets
    }

    /// Connections waiting in the backlog of `port`.
    pub fn backlog_len(&self, port: u16) -> usize {
        self.net
            .borrow()
            .listeners
            .get(&port)
            .map_or(0, |q| q.len())
    }
}

/// The client end of a mock connection.
pub struct MockClient {
    net: Rc<RefCell<Net>>,
    pipe: usize,
}

/// What a client read saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRead {
    /// This many bytes.
    Data(usize),
    /// Nothing yet.
    WouldBlock,
    /// The server closed its side and everything was read.
    Eof,
    /// The server reset the connection.
    Reset,
}

impl MockClient {
    fn with<R>(&self, f: impl FnOnce(&mut Pipe, usize) -> R) -> R {
        let mut net = self.net.borrow_mut();
        let window = net.config.window;
        net.mark_changed(SockState::Conn(self.pipe));
        f(&mut net.pipes[self.pipe], window)
    }

    /// The client's address as the server sees it.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(CLIENT_IP, self.with(|p, _| p.client_port))
    }

    /// Sends what the window allows; returns how much.
    pub fn send(&self, data: &[u8]) -> usize {
        self.with(|p, window| {
            if p.client_fin || p.client_reset || p.server_reset {
                return 0;
            }
            let n = data.len().min(window.saturating_sub(p.to_server.len()));
            p.to_server.extend(&data[..n]);
            n
        })
    }

    /// Reads into `buf`.
    pub fn recv(&self, buf: &mut [u8]) -> ClientRead {
        self.with(|p, _| {
            if p.server_reset {
                return ClientRead::Reset;
            }
            if p.to_client.is_empty() {
                return if p.server_fin {
                    ClientRead::Eof
                } else {
                    ClientRead::WouldBlock
                };
            }
            let n = buf.len().min(p.to_client.len());
            for (dst, src) in buf.iter_mut().zip(p.to_client.drain(..n)) {
                *dst = src;
            }
            ClientRead::Data(n)
        })
    }

    /// Reads everything buffered now.
    pub fn recv_all(&self) -> Vec<u8> {
        self.with(|p, _| p.to_client.drain(..).collect())
    }

    /// Bytes waiting for the client to read.
    pub fn pending(&self) -> usize {
        self.with(|p, _| p.to_client.len())
    }

    /// True once the server has closed its side (FIN) or reset.
    pub fn server_closed(&self) -> bool {
        self.with(|p, _| p.server_fin || p.server_reset)
    }

    /// True once the server has reset the connection.
    pub fn was_reset(&self) -> bool {
        self.with(|p, _| p.server_reset)
    }

    /// Ends the client's side of the stream (FIN); it can still read.
    pub fn shutdown_write(&self) {
        self.with(|p, _| p.client_fin = true);
    }

    /// Resets the connection (RST): buffered data in both directions is lost.
    pub fn reset(&self) {
        self.with(|p, _| {
            p.client_reset = true;
            p.to_server.clear();
            p.to_client.clear();
        });
    }
}

impl TcpClientStack for MockStack {
    type TcpSocket = MockSocket;
    type Error = MockError;

    fn socket(&mut self) -> Result<MockSocket, MockError> {
        self.net.borrow_mut().take_socket()?;
        Ok(MockSocket(SockState::Fresh))
    }

    /// Outgoing connections are not modelled: clients are [`MockClient`]s.
    fn connect(
        &mut self,
        _socket: &mut MockSocket,
        _remote: SocketAddr,
    ) -> nb::Result<(), MockError> {
        Err(nb::Error::Other(MockError::InvalidState))
    }

    fn send(&mut self, socket: &mut MockSocket, buffer: &[u8]) -> nb::Result<usize, MockError> {
        let SockState::Conn(i) = socket.0 else {
            return Err(nb::Error::Other(MockError::InvalidState));
        };
        let mut net = self.net.borrow_mut();
        let window = net.config.window;
        net.mark_changed(socket.0);
        let p = &mut net.pipes[i];
        if p.client_reset {
            return Err(nb::Error::Other(MockError::Reset));
        }
        if p.server_fin {
            return Err(nb::Error::Other(MockError::InvalidState));
        }
        let n = buffer.len().min(window.saturating_sub(p.to_client.len()));
        if n == 0 && !buffer.is_empty() {
            return Err(nb::Error::WouldBlock);
        }
        p.to_client.extend(&buffer[..n]);
        Ok(n)
    }

    fn receive(
        &mut self,
        socket: &mut MockSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, MockError> {
        let SockState::Conn(i) = socket.0 else {
            return Err(nb::Error::Other(MockError::InvalidState));
        };
        let mut net = self.net.borrow_mut();
        net.mark_changed(socket.0);
        net.receives += 1;
        let p = &mut net.pipes[i];
        if p.client_reset {
            return Err(nb::Error::Other(MockError::Reset));
        }
        if p.to_server.is_empty() {
            return if p.client_fin {
                Ok(0)
            } else {
                Err(nb::Error::WouldBlock)
            };
        }
        let n = buffer.len().min(p.to_server.len());
        for (dst, src) in buffer.iter_mut().zip(p.to_server.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    /// Graceful: the client sees everything sent, then end of stream.
    fn close(&mut self, socket: MockSocket) -> Result<(), MockError> {
        let mut net = self.net.borrow_mut();
        net.sockets = net.sockets.saturating_sub(1);
        net.watches.remove(&socket.0);
        match socket.0 {
            SockState::Conn(i) => {
                let p = &mut net.pipes[i];
                p.server_closed = true;
                // Unread input at close turns into a reset, as in a kernel.
                if p.to_server.is_empty() {
                    p.server_fin = true;
                } else {
                    p.server_reset = true;
                }
            }
            SockState::Listening(port) | SockState::Bound(port) => {
                if let Some(queue) = net.listeners.remove(&port) {
                    for pipe in queue {
                        net.pipes[pipe].server_reset = true;
                        net.sockets = net.sockets.saturating_sub(1);
                    }
                }
            }
            SockState::Fresh => {}
        }
        Ok(())
    }
}

impl crate::Backend for MockStack {
    /// Resets the connection: the client sees a reset, buffered data in
    /// both directions is lost.
    fn abort(&mut self, socket: MockSocket) -> Result<(), MockError> {
        if let SockState::Conn(i) = socket.0 {
            let mut net = self.net.borrow_mut();
            net.sockets = net.sockets.saturating_sub(1);
            net.watches.remove(&socket.0);
            let p = &mut net.pipes[i];
            p.server_closed = true;
            p.server_reset = true;
            p.to_server.clear();
            p.to_client.clear();
            return Ok(());
        }
        self.close(socket)
    }

    fn local_addr(&self, socket: &MockSocket) -> Option<SocketAddr> {
        match socket.0 {
            SockState::Listening(port) | SockState::Bound(port) => {
                Some(SocketAddr::new(SERVER_IP, port))
            }
            _ => None,
        }
    }

    fn reports_ready(&self) -> bool {
        self.net.borrow().reports_ready
    }

    fn watch(
        &mut self,
        socket: &MockSocket,
        token: usize,
        interest: Interest,
    ) -> Result<(), MockError> {
        let mut net = self.net.borrow_mut();
        if interest.is_none() {
            net.watches.remove(&socket.0);
        } else {
            net.watches.insert(socket.0, (token, interest));
            net.mark_changed(socket.0);
        }
        Ok(())
    }

    fn take_ready(&mut self, tokens: core::ops::Range<usize>, ready: &mut dyn FnMut(usize)) {
        let mut net = self.net.borrow_mut();
        let net = &mut *net;
        let window = net.config.window;
        // Level-triggered: a socket stays among the changed ones while it is
        // ready, and leaves when it is found not ready (or unwatched).
        net.changed.retain(|socket| {
            let Some(&(token, interest)) = net.watches.get(socket) else {
                return false;
            };
            let is_ready = match *socket {
                SockState::Conn(i) => {
                    let p = &net.pipes[i];
                    p.client_reset
                        || (interest.readable && (!p.to_server.is_empty() || p.client_fin))
                        || (interest.writable && p.to_client.len() < window)
                }
                SockState::Listening(port) => {
                    interest.readable && net.listeners.get(&port).is_some_and(|q| !q.is_empty())
                }
                SockState::Fresh | SockState::Bound(_) => false,
            };
            if is_ready && tokens.contains(&token) {
                ready(token);
            }
            is_ready
        });
    }
}

impl TcpFullStack for MockStack {
    fn bind(&mut self, socket: &mut MockSocket, port: u16) -> Result<(), MockError> {
        if socket.0 != SockState::Fresh {
            return Err(MockError::InvalidState);
        }
        if self.net.borrow().listeners.contains_key(&port) {
            return Err(MockError::AddrInUse);
        }
        socket.0 = SockState::Bound(port);
        Ok(())
    }

    fn listen(&mut self, socket: &mut MockSocket) -> Result<(), MockError> {
        let SockState::Bound(port) = socket.0 else {
            return Err(MockError::InvalidState);
        };
        self.net
            .borrow_mut()
            .listeners
            .insert(port, VecDeque::new());
        socket.0 = SockState::Listening(port);
        Ok(())
    }

    fn accept(
        &mut self,
        socket: &mut MockSocket,
    ) -> nb::Result<(MockSocket, SocketAddr), MockError> {
        let SockState::Listening(port) = socket.0 else {
            return Err(nb::Error::Other(MockError::InvalidState));
        };
        let mut net = self.net.borrow_mut();
        if net.accept_errors > 0 {
            net.accept_errors -= 1;
            return Err(nb::Error::Other(MockError::Injected));
        }
        let queue = net
            .listeners
            .get_mut(&port)
            .ok_or(nb::Error::Other(MockError::InvalidState))?;
        let Some(pipe) = queue.pop_front() else {
            return Err(nb::Error::WouldBlock);
        };
        net.mark_changed(SockState::Listening(port));
        let peer = SocketAddr::new(CLIENT_IP, net.pipes[pipe].client_port);
        Ok((MockSocket(SockState::Conn(pipe)), peer))
    }
}
