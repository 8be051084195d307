//! Readiness reporting (`tcpool_core::Backend::watch` and `take_ready`):
//! which watched sockets can do what they are watched for, computed from
//! smoltcp's socket state.
//!
//! A watch lives beside its socket (in the pool entry of a connection, in
//! the listener table for a listener): fixed memory, nothing allocated.
//! smoltcp tells whether a stack poll *may* have changed some socket's
//! state, not which one, so:
//!
//! * a [`Stack::poll`] that reports a change marks every watched socket for
//!   a check; one that reports none leaves them alone;
//! * a socket whose watch changed is marked;
//! * a check visits the marked sockets only (a handful of field reads each:
//!   the TCP state and buffer levels), reports those that are ready and
//!   keeps them marked, so readiness is level-triggered: a socket the
//!   server did not drain is reported again at the next check, poll or no
//!   poll in between;
//! * with nothing marked and no change since, a check costs nothing.
//!
//! So the cost of a check after a poll that moved packets is O(watched
//! sockets) cheap state reads, and O(1) otherwise; the server only
//! `receive`s from, and services, the sockets reported.

use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use tcpool_core::Interest;

use super::handle::{Kind, Listener, Role, Watch};
use super::{Stack, TcpHandle, TcpState};
use crate::error::Error;

impl<D: Device, const N: usize> Stack<'_, D, N> {
    /// Starts, changes or (with [`Interest::NONE`]) ends the watch of
    /// `socket`: a listener, or a connection the application owns.
    pub(super) fn set_watch(
        &mut self,
        socket: &TcpHandle,
        token: usize,
        interest: Interest,
    ) -> Result<(), Error> {
        // Marked, so the next check looks at it whatever happened before.
        let watch = (!interest.is_none()).then_some(Watch {
            token,
            interest,
            marked: true,
        });
        match socket.kind() {
            Kind::Listener(l) => {
                let Some(Some(listener)) = self.listeners.get_mut(l as usize) else {
                    return Err(Error::InvalidState);
                };
                listener.watch = watch;
            }
            Kind::Socket(_) => {
                let i = self.open_index(socket)?;
                self.pool[i].watch = watch;
            }
        }
        self.marked |= watch.is_some();
        Ok(())
    }

    /// Whether listener `l` holds a connection that has completed its
    /// handshake, ready to be accepted.
    pub(super) fn listener_ready(&self, l: u16) -> bool {
        self.pool.iter().any(|e| {
            matches!(e.role, Role::Pending { listener, .. } if listener == l)
                && matches!(
                    self.sockets.get::<tcp::Socket>(e.handle).state(),
                    TcpState::Established | TcpState::CloseWait
                )
        })
    }

    /// What pool socket `i`, a connection, is ready for: readable with
    /// buffered input, at end of stream or failed; writable with room in
    /// its TX buffer or failed. Nothing while handshaking.
    pub(super) fn connection_ready(&self, i: usize) -> Interest {
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        match s.state() {
            TcpState::SynSent | TcpState::SynReceived | TcpState::Listen => Interest::NONE,
            _ => Interest {
                readable: s.can_recv() || !s.may_recv(),
                writable: s.can_send() || !s.may_send(),
            },
        }
    }

    /// Whether connection `i` has what `want` asks for, or has failed
    /// (reset or timed out: reported whatever it is watched for).
    fn connection_ready_for(&self, i: usize, want: Interest) -> bool {
        let s = self.sockets.get::<tcp::Socket>(self.pool[i].handle);
        if s.state() == TcpState::Closed {
            return true;
        }
        let is = self.connection_ready(i);
        (want.readable && is.readable) || (want.writable && is.writable)
    }

    /// Marks the watch of connection `i`, if any, for the next check (its
    /// state changed in a way the stack poll may not have reported).
    pub(super) fn mark(&mut self, i: usize) {
        if let Some(w) = self.pool[i].watch.as_mut() {
            w.marked = true;
            self.marked = true;
        }
    }

    /// Checks the marked watches (all of them after a stack poll that
    /// changed something), calls `report` with the token of each one that
    /// is ready, and keeps exactly those marked. Returns how many are
    /// ready.
    pub(super) fn check_ready(&mut self, report: &mut dyn FnMut(usize)) -> usize {
        if !self.recheck && !self.marked {
            return 0;
        }
        let all = core::mem::take(&mut self.recheck);
        let mut ready = 0;
        for i in 0..N {
            let Some(w) = self.pool[i].watch else {
                continue;
            };
            if !(all || w.marked) {
                continue;
            }
            let is = self.connection_ready_for(i, w.interest);
            self.pool[i].watch = Some(Watch { marked: is, ..w });
            if is {
                ready += 1;
                report(w.token);
            }
        }
        for l in 0..N {
            let Some(Listener { watch: Some(w), .. }) = self.listeners[l] else {
                continue;
            };
            if !(all || w.marked) {
                continue;
            }
            let is = w.interest.readable && self.listener_ready(l as u16);
            if let Some(listener) = self.listeners[l].as_mut() {
                listener.watch = Some(Watch { marked: is, ..w });
            }
            if is {
                ready += 1;
                report(w.token);
            }
        }
        self.marked = ready > 0;
        ready
    }

    /// How many watched sockets are ready now (those the next
    /// [`take_ready`](tcpool_core::Backend::take_ready) reports). A server
    /// on this stack watches its sockets itself (the stack reports
    /// readiness, so [`Server::interests`](tcpool_core::Server::interests)
    /// is empty): an event loop that sleeps between polls asks this, after
    /// [`poll`](Self::poll), whether the server has something to do before
    /// its [`poll_at`](tcpool_core::Server::poll_at) deadline.
    ///
    /// ```
    /// use tcpool_core::{Config, Instant, Server};
    /// use tcpool_conformance::Echo;
    /// use tcpool_smoltcp::sim::{SimConfig, SimNet, SimStack};
    ///
    /// let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    /// let mut server: Server<SimStack<4>, Echo, 2, 256, 256> = Server::new(Echo, Config::new());
    /// server.listen(&mut net.server, 7).unwrap();
    /// assert_eq!(server.interests().count(), 0); // the stack watches
    /// server.poll(&mut net.server, Instant::ZERO);
    /// assert_eq!(net.server.watched_ready(), 0); // nobody connected yet
    ///
    /// let _client = net.connect(7, std::time::Duration::from_secs(5)).unwrap();
    /// net.advance(std::time::Duration::from_millis(10));
    /// assert_eq!(net.server.watched_ready(), 1); // the listener: accept
    /// ```
    pub fn watched_ready(&mut self) -> usize {
        self.check_ready(&mut |_| {})
    }
}
