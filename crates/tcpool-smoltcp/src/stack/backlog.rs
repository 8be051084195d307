//! Backlog emulation: smoltcp has no accept queue, so a listener keeps
//! sockets in LISTEN on its port, turns one that caught a SYN into a pending
//! connection, drops duplicate SYNs, and re-arms at once.

use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::handle::{Kind, Listener, Role};
use super::time::to_smol_duration;
use super::{Stack, TcpHandle, TcpState, close_gracefully, is_reclaimable, tcp_socket};
use crate::config::{ListenConfig, Overflow};
use crate::error::Error;
use crate::guard::HoldPorts;

impl<D: Device, const N: usize> Stack<'_, D, N> {
    /// Like `listen`, with this listener's own backlog settings instead of
    /// [`Config::listen`](crate::Config::listen).
    pub fn listen_with(
        &mut self,
        socket: &mut TcpHandle,
        config: ListenConfig,
    ) -> Result<(), Error> {
        let i = self.socket_index(socket)?;
        let Role::Reserved { port } = self.pool[i].role else {
            return Err(Error::InvalidState);
        };
        if port == 0 {
            return Err(Error::Unaddressable);
        }
        if self.listeners.iter().flatten().any(|l| l.port == port) {
            return Err(Error::AddressInUse);
        }
        let Some(l) = self.listeners.iter().position(Option::is_none) else {
            return Err(Error::OutOfSockets);
        };
        self.listeners[l] = Some(Listener {
            port,
            config: config.normalized(),
            watch: None,
        });
        let l = l as u16;
        if !self.arm(i, l) {
            self.listeners[l as usize] = None;
            return Err(Error::InvalidState);
        }
        debug!("listener {} on port {}", l, port);
        *socket = TcpHandle::new(Kind::Listener(l));
        self.rearm();
        Ok(())
    }

    /// After each incoming packet: listeners that caught a SYN become pending
    /// connections (or, for a duplicate SYN, go back to LISTEN silently), and
    /// fresh listeners are armed.
    pub(super) fn catch_syns(&mut self) {
        let mut caught = false;
        for i in 0..N {
            let Role::Listening { listener } = self.pool[i].role else {
                continue;
            };
            let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
            let state = s.state();
            let tuple = (s.local_endpoint(), s.remote_endpoint());
            let reclaimable = is_reclaimable(s);
            match state {
                TcpState::Listen => {}
                TcpState::SynReceived => {
                    caught = true;
                    if self.tuple_held_elsewhere(i, tuple) {
                        self.counters.duplicate_syns = self.counters.duplicate_syns.wrapping_add(1);
                        debug!(
                            "pool socket {}: duplicate SYN for a connection already held, dropped",
                            i
                        );
                        let relisten = self.listeners[listener as usize].is_some_and(|l| {
                            let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                            // Both calls are silent: abort() only marks the
                            // socket CLOSED, and listen() resets it (clearing
                            // the tuple, so no RST goes out) before anything
                            // is sent.
                            s.abort();
                            s.listen(IpListenEndpoint::from(l.port)).is_ok()
                        });
                        if !relisten {
                            self.set_role(i, Role::RELEASING);
                        }
                    } else {
                        self.arrivals = self.arrivals.wrapping_add(1);
                        let arrival = self.arrivals;
                        self.set_role(i, Role::Pending { listener, arrival });
                    }
                }
                _ => {
                    caught = true;
                    let role = if reclaimable {
                        Role::Free
                    } else {
                        Role::RELEASING
                    };
                    self.set_role(i, role);
                }
            }
        }
        if caught {
            self.rearm();
        }
    }

    /// Whether a pool socket other than `i` is connected with this 4-tuple.
    fn tuple_held_elsewhere(
        &self,
        i: usize,
        tuple: (Option<IpEndpoint>, Option<IpEndpoint>),
    ) -> bool {
        self.pool.iter().enumerate().any(|(j, e)| {
            if j == i || e.role == Role::Free {
                return false;
            }
            let s = self.sockets.get::<tcp::Socket>(e.handle);
            !matches!(
                s.state(),
                TcpState::Listen | TcpState::Closed | TcpState::TimeWait
            ) && (s.local_endpoint(), s.remote_endpoint()) == tuple
        })
    }

    /// Bring every listener to its backlog of listening sockets (within its
    /// `max_queued` bound and the free pool), releasing any extra.
    pub(super) fn rearm(&mut self) {
        for l in 0..N {
            let Some(listener) = self.listeners[l] else {
                continue;
            };
            let (mut listening, mut held) = (0u16, 0u16);
            for e in &self.pool {
                match e.role {
                    Role::Listening { listener } if listener as usize == l => {
                        listening += 1;
                        held += 1;
                    }
                    Role::Pending { listener, .. } if listener as usize == l => held += 1,
                    _ => {}
                }
            }
            // A handshake reset by the peer sends its socket back to LISTEN,
            // which can leave one listening socket too many: release it.
            while listening > u16::from(listener.config.backlog) {
                let Some(i) = self.pool.iter().position(
                    |e| matches!(e.role, Role::Listening { listener } if listener as usize == l),
                ) else {
                    break;
                };
                let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                s.close(); // LISTEN -> CLOSED sends nothing
                let role = if is_reclaimable(s) {
                    Role::Free
                } else {
                    Role::RELEASING
                };
                self.set_role(i, role);
                listening -= 1;
                held -= 1;
            }
            while listening < u16::from(listener.config.backlog)
                && held < u16::from(listener.config.max_queued)
            {
                let Some(i) = self.free_index() else {
                    return;
                };
                if self.arm(i, l as u16) {
                    listening += 1;
                    held += 1;
                } else {
                    // Cannot happen (free sockets are never open); keep the
                    // socket out of the way until smoltcp lets go of it.
                    self.set_role(i, Role::RELEASING);
                }
            }
        }
    }

    /// Make free (or reserved) socket `i` listen for listener `l`.
    pub(super) fn arm(&mut self, i: usize, l: u16) -> bool {
        let Some(listener) = self.listeners[l as usize] else {
            return false;
        };
        let keepalive = self.config.effective_keepalive().map(to_smol_duration);
        let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
        // Keep-alive is set from the start (it only acts once established):
        // setting it on an established idle socket sends a probe at once.
        s.set_timeout(Some(to_smol_duration(self.config.handshake_timeout)));
        s.set_keep_alive(keepalive);
        s.set_nagle_enabled(!self.config.nodelay);
        if s.listen(IpListenEndpoint::from(listener.port)).is_err() {
            return false;
        }
        self.set_role(i, Role::Listening { listener: l });
        true
    }

    /// A free socket: a CLOSED one first, so that sockets in TIME-WAIT keep
    /// answering retransmitted FINs as long as possible.
    pub(super) fn free_index(&self) -> Option<usize> {
        let mut time_wait = None;
        for (i, e) in self.pool.iter().enumerate() {
            if e.role != Role::Free {
                continue;
            }
            if self.sockets.get::<tcp::Socket>(e.handle).state() == TcpState::Closed {
                return Some(i);
            }
            time_wait.get_or_insert(i);
        }
        time_wait
    }

    pub(super) fn remove_listener(&mut self, l: u16, reset: bool) -> Result<(), Error> {
        if self.listeners.get(l as usize).copied().flatten().is_none() {
            return Err(Error::InvalidState);
        }
        self.listeners[l as usize] = None;
        let lingering = self.lingering_close();
        for i in 0..N {
            match self.pool[i].role {
                Role::Listening { listener } if listener == l => {
                    let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                    // LISTEN -> CLOSED sends nothing.
                    s.close();
                    if is_reclaimable(s) {
                        self.set_role(i, Role::Free);
                    } else {
                        s.abort();
                        self.set_role(i, Role::RELEASING);
                    }
                }
                Role::Pending { listener, .. } if listener == l => {
                    let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
                    if reset {
                        s.abort();
                    } else {
                        close_gracefully(s);
                    }
                    let role = if is_reclaimable(s) {
                        Role::Free
                    } else if reset {
                        Role::RELEASING
                    } else {
                        lingering
                    };
                    self.set_role(i, role);
                }
                _ => {}
            }
        }
        debug!("listener {} closed", l);
        self.rearm();
        Ok(())
    }

    /// The pool socket holding listener `l`'s oldest connection that has
    /// completed its handshake (first come, first served).
    pub(super) fn oldest_established(&self, l: u16) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, e) in self.pool.iter().enumerate() {
            let Role::Pending { listener, arrival } = e.role else {
                continue;
            };
            if listener != l {
                continue;
            }
            let s = self.sockets.get::<tcp::Socket>(e.handle);
            if !matches!(s.state(), TcpState::Established | TcpState::CloseWait) {
                continue;
            }
            let age = self.arrivals.wrapping_sub(arrival);
            if best.is_none_or(|(_, a)| age > a) {
                best = Some((i, age));
            }
        }
        best.map(|(i, _)| i)
    }
}

impl<const N: usize> HoldPorts for [Option<Listener>; N] {
    fn holds(&self, port: u16) -> bool {
        self.iter()
            .flatten()
            .any(|l| l.port == port && l.config.overflow == Overflow::Hold)
    }
}
