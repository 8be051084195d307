//! Driving: running the interface one packet at a time, the next deadline,
//! and the pool's bookkeeping after ingress and egress (reclaiming closed
//! sockets, enforcing close deadlines, switching to established timers).

use core::cell::Cell;
use core::time::Duration;

use smoltcp::iface::{PollIngressSingleResult, PollResult};
use smoltcp::phy::Device;
use smoltcp::time::Instant as SmolInstant;
use tcpool_core::Instant;

use super::handle::Role;
use super::time::{from_smol_ceil, to_smol, to_smol_duration};
use super::{Stack, TcpState, is_reclaimable, set_established_timers, tcp_socket};
use crate::guard::SynGuard;

impl<D: Device, const N: usize> Stack<'_, D, N> {
    /// Run the network: process every received packet, transmit what the
    /// sockets have queued, fire timers, and do the pool's bookkeeping
    /// (re-arm listeners as soon as one catches a SYN, reclaim sockets whose
    /// close has completed, enforce lingering-close deadlines).
    ///
    /// Returns whether some socket's state may have changed (worth running
    /// the server's poll).
    pub fn poll(&mut self, now: Instant) -> bool {
        let ts = to_smol(now);
        self.now = ts;
        let mut changed = false;
        self.iface.poll_maintenance(ts);
        // One packet at a time, so that a listener that caught a SYN is
        // replaced (and a duplicate SYN undone) before the next packet. Only
        // a SYN moves a listening socket, so frames the guard knows carry
        // none (data and ACKs: nearly all of them) skip that search.
        let held = Cell::new(0u32);
        let syn = Cell::new(false);
        loop {
            let mut device = SynGuard {
                inner: &mut self.device,
                medium: self.medium,
                hold: &self.listeners,
                held: &held,
                syn: &syn,
            };
            match self
                .iface
                .poll_ingress_single(ts, &mut device, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => changed = true,
            }
            if syn.take() {
                self.catch_syns();
            }
        }
        if held.get() > 0 {
            debug!("{} SYN(s) held: port full", held.get());
            self.counters.held_syns = self.counters.held_syns.wrapping_add(held.get());
        }
        self.maintain(ts);
        while self
            .iface
            .poll_egress(ts, &mut self.device, &mut self.sockets)
            == PollResult::SocketStateChanged
        {
            changed = true;
        }
        // Egress may have sent RSTs or fired timeouts: reclaim at once.
        self.maintain(ts);
        // Which socket changed, smoltcp does not say: check every watched
        // one at the next `take_ready`.
        self.recheck |= changed;
        changed
    }

    /// When [`poll`](Self::poll) should run next, at the latest (sooner if
    /// the device receives something): the earliest of smoltcp's timers
    /// (retransmission, delayed ACK, keep-alive, timeouts) and the pool's
    /// lingering-close deadlines. `None`: nothing to do until a packet
    /// arrives.
    /// An instant not after `now` means "poll now".
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let ts = to_smol(now);
        let smol = self.iface.poll_at(ts, &self.sockets);
        let lingering = self
            .pool
            .iter()
            .filter_map(|e| match e.role {
                Role::Closing { deadline, .. } => deadline,
                _ => None,
            })
            .min();
        let at = match (smol, lingering) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        at.map(from_smol_ceil)
    }

    /// How long the caller may sleep before calling [`poll`](Self::poll)
    /// (unless the device receives something first): `poll_at(now) - now`,
    /// zero if that is due already, `None` for "until a packet arrives".
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.poll_at(now)
            .map(|at| at.saturating_duration_since(now))
    }

    /// Pool bookkeeping after ingress and after egress.
    pub(super) fn maintain(&mut self, now: SmolInstant) {
        self.catch_syns();
        let established_timeout = self.config.timeout.map(to_smol_duration);
        let established_keepalive = self.config.effective_keepalive().map(to_smol_duration);
        for i in 0..N {
            let role = self.pool[i].role;
            if matches!(
                role,
                Role::Free | Role::Reserved { .. } | Role::Listening { .. }
            ) {
                continue; // nothing to maintain: spare the socket lookup
            }
            let s = tcp_socket(&mut self.sockets, self.pool[i].handle);
            let next = match role {
                Role::Free | Role::Reserved { .. } | Role::Listening { .. } => None,
                Role::Pending { listener, .. } => match s.state() {
                    // A RST during the handshake sends smoltcp back to LISTEN.
                    TcpState::Listen => Some(Role::Listening { listener }),
                    // Reset or timed out before anyone accepted it.
                    TcpState::Closed | TcpState::TimeWait => {
                        is_reclaimable(s).then_some(Role::Free)
                    }
                    TcpState::SynReceived => None,
                    _ => {
                        set_established_timers(s, established_timeout, established_keepalive);
                        None
                    }
                },
                Role::Open => {
                    let state = s.state();
                    if !matches!(
                        state,
                        TcpState::SynSent | TcpState::SynReceived | TcpState::Closed
                    ) {
                        set_established_timers(s, established_timeout, established_keepalive);
                    }
                    if state == TcpState::Closed {
                        // A timeout closes a socket even when its RST
                        // cannot go out (device busy), and then egress
                        // reports no change: the failure must be seen.
                        self.mark(i);
                    }
                    None
                }
                Role::Closing { deadline, drain } => {
                    // Lingering close: discard what the peer still sends, so
                    // its window never closes and its FIN can get in.
                    while drain && s.can_recv() {
                        if s.recv(|b| (b.len(), ())).is_err() {
                            break;
                        }
                    }
                    if is_reclaimable(s) {
                        Some(Role::Free)
                    } else if deadline.is_some_and(|d| now >= d) {
                        debug!("pool socket {}: lingering close expired, resetting", i);
                        s.abort();
                        self.counters.lingering_resets =
                            self.counters.lingering_resets.wrapping_add(1);
                        Some(if is_reclaimable(s) {
                            Role::Free
                        } else {
                            Role::RELEASING
                        })
                    } else {
                        None
                    }
                }
            };
            if let Some(role) = next {
                self.set_role(i, role);
            }
        }
        self.rearm();
    }

    /// The role of a connection closed gracefully now: a lingering close
    /// with its deadline, or a plain close (see [`Config::lingering_close`](crate::Config::lingering_close)).
    pub(super) fn lingering_close(&self) -> Role {
        let lingering = self.config.lingering_close;
        Role::Closing {
            deadline: lingering.map(|d| self.now + to_smol_duration(d)),
            drain: lingering.is_some(),
        }
    }
}
