//! The pure pool ([`Pool`]) driven by arbitrary event sequences.
//!
//! The input decodes (with `arbitrary`) into a list of [`Step`]s: peers
//! connect, send, end their stream or reset; the driver polls (with the
//! stack's answers drawn from a seeded RNG and the step's fault mask:
//! would-block, short and zero-length transfers, errors, failed accepts);
//! time jumps, or sleeps to [`Pool::poll_at`]; the configuration and the
//! handler's [`Behaviour`] change; the application closes, aborts, sets
//! deadlines on or writes to live connections; the server shuts down and
//! listens again. The driver is the loop of the [module docs of
//! `pool`](tcpool_core::pool), over an in-memory model of sockets.
//!
//! Checked after every step: the pool hands a slot out only when its
//! socket was closed, asks for each socket's close exactly once, sends
//! exactly the handler's output in order; the stats add up (`accepted ==
//! closed.total() + active`, bytes in and out are what moved, refusals,
//! evictions and failed accepts are counted) and `active` matches the
//! slots. Checked in the handler ([`Script`]): every offer is the next
//! bytes fed through `Received`, in order, none held back; end of stream
//! after all input; one `on_closed` per connection. At the end every peer
//! ends its stream, the application closes everything, and time runs past
//! every linger: then no slot, socket or connection may be left, and
//! the pool must not ask to be polled at a time that has passed while
//! nothing moves (a spin).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use tcpool_core::embedded_nal::TcpErrorKind;
use tcpool_core::pool::{Action, Admission, Event, Pool};
use tcpool_core::{CloseReason, Config, Duration, Instant, SlotState, WhenFull};

use crate::script::{Behaviour, Outside, Script};

/// Slots in the fuzzed pool.
pub const N: usize = 3;
/// Receive buffer bytes per slot (small, so that it fills).
pub const RX: usize = 16;
/// Transmit buffer bytes per slot.
pub const TX: usize = 12;

type FuzzPool = Pool<Script, N, RX, TX>;

/// Bounds one slot's actions in one poll: more means the pool loops.
const ACTION_LIMIT: usize = 10_000;
/// Bounds the final settling.
const SETTLE_LIMIT: usize = 2_000;

/// A configuration from the input.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct FuzzConfig {
    max_connections: u8,
    when_full: u8,
    min_idle_ms: u16,
    idle_timeout_ms: Option<u16>,
    linger_ms: u16,
    read_budget: u8,
    max_per_ip: Option<u8>,
    banner: bool,
    accept_backoff_ms: u16,
    write_stall_ms: Option<u16>,
}

impl FuzzConfig {
    /// The core configuration it stands for.
    pub fn config(&self) -> Config {
        let ms = |m: u16| Duration::from_millis(u64::from(m));
        Config::new()
            .with_max_connections(usize::from(self.max_connections))
            .with_when_full(match self.when_full % 3 {
                0 => WhenFull::Defer,
                1 => WhenFull::Reject,
                _ => WhenFull::EvictIdlest {
                    min_idle: ms(self.min_idle_ms),
                },
            })
            .with_idle_timeout(self.idle_timeout_ms.map(ms))
            .with_linger(ms(self.linger_ms))
            .with_read_budget(usize::from(self.read_budget))
            .with_max_per_ip(self.max_per_ip.map(usize::from))
            .with_reject_banner(if self.banner { b"busy\n" } else { b"" })
            .with_accept_backoff(ms(self.accept_backoff_ms))
            .with_write_stall(self.write_stall_ms.map(ms))
    }
}

/// One thing that happens.
#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    /// A peer from 10.0.0.(2 + ip % 3) connects (it waits in the backlog).
    Connect {
        /// Picks the address.
        ip: u8,
    },
    /// A peer sends bytes.
    Send {
        /// Picks the peer.
        peer: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A peer ends its stream.
    Fin {
        /// Picks the peer.
        peer: u8,
    },
    /// A peer resets its connection.
    Reset {
        /// Picks the peer.
        peer: u8,
    },
    /// The driver polls; the stack answers from an RNG seeded with `seed`,
    /// with the faults in the mask (see [`Answers`]).
    Poll {
        /// The RNG seed.
        seed: u16,
        /// The fault mask.
        faults: u8,
    },
    /// Time moves on.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Time moves on a lot.
    AdvanceFar {
        /// Seconds.
        secs: u16,
    },
    /// Time moves to the pool's next deadline, if it is later.
    Sleep,
    /// A new configuration.
    Configure(FuzzConfig),
    /// A new handler behaviour.
    Behave(Behaviour),
    /// The application closes a live connection.
    Close {
        /// Picks the connection.
        conn: u8,
    },
    /// The application aborts a live connection.
    Abort {
        /// Picks the connection.
        conn: u8,
    },
    /// The application sets (or clears) a live connection's deadline.
    Deadline {
        /// Picks the connection.
        conn: u8,
        /// Milliseconds from now; `None` clears it.
        ms: Option<u16>,
    },
    /// The application writes to a live connection.
    Write {
        /// Picks the connection.
        conn: u8,
        /// Bytes.
        n: u8,
    },
    /// The server shuts down (and stops listening).
    Shutdown {
        /// The RNG seed of the stack's answers.
        seed: u16,
        /// The fault mask.
        faults: u8,
    },
    /// The server listens again.
    Listen,
}

/// The whole input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// The configuration at start.
    pub config: FuzzConfig,
    /// The handler's behaviour at start.
    pub behaviour: Behaviour,
    /// At the end, whether peers stop reading (sends block, so closes wait
    /// for the linger time) or read everything.
    pub end_blocked: bool,
    /// What happens.
    pub steps: Vec<Step>,
}

/// The stack's answers in one poll: an RNG and a fault mask. Bit 0:
/// receives may block; 1: short reads; 2: receive errors; 3: sends may
/// block; 4: short writes; 5: send errors; 6: accepts may block or fail;
/// 7: zero-length answers (`Sent(0)`, `Received(0)`).
pub struct Answers {
    rng: fastrand::Rng,
    mask: u8,
}

impl Answers {
    fn new(seed: u16, mask: u8) -> Self {
        Answers {
            rng: fastrand::Rng::with_seed(u64::from(seed)),
            mask,
        }
    }

    /// A stack that answers every call as fully as it can.
    fn honest() -> Self {
        Answers::new(0, 0)
    }

    fn on(&mut self, bit: u8, per_mille: u16) -> bool {
        self.mask & (1 << bit) != 0 && self.rng.u16(..1000) < per_mille
    }

    /// Up to `n` (at least 1 when `n > 0`), short with bit `bit`.
    fn amount(&mut self, n: usize, bit: u8) -> usize {
        if n > 1 && self.on(bit, 400) {
            1 + self.rng.usize(..n - 1)
        } else {
            n
        }
    }
}

/// Where a peer's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Backlog,
    Slot(usize),
    Refused,
    /// Closed by the server (gracefully or with a reset), or dropped with
    /// the listener.
    Gone,
}

#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    /// Sent, not yet received by the server.
    unread: VecDeque<u8>,
    fin: bool,
    reset: bool,
    place: Place,
    /// Bytes the server sent it (banner excluded).
    got: usize,
}

/// The driver and the model of the stack around the pool.
struct Driver {
    pool: FuzzPool,
    now: Instant,
    peers: Vec<Peer>,
    backlog: VecDeque<usize>,
    sockets: [Option<usize>; N],
    listening: bool,
    next_port: u16,
    refused: u32,
    evicted: u32,
    accept_errors: u32,
    /// At the end: sends block (peers stopped reading).
    sends_blocked: bool,
}

/// Runs one input; panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    run_input(&input);
}

/// Runs a decoded input.
pub fn run_input(input: &Input) {
    let mut d = Driver::new(input);
    for step in &input.steps {
        d.step(step);
        d.check();
    }
    d.finish(input.end_blocked);
}

impl Driver {
    fn new(input: &Input) -> Self {
        let mut pool = Pool::new(Script::new(input.behaviour), input.config.config());
        pool.set_listening(true);
        Driver {
            pool,
            now: Instant::ZERO,
            peers: Vec::new(),
            backlog: VecDeque::new(),
            sockets: [None; N],
            listening: true,
            next_port: 1000,
            refused: 0,
            evicted: 0,
            accept_errors: 0,
            sends_blocked: false,
        }
    }

    fn pick_peer(&self, n: u8) -> Option<usize> {
        (!self.peers.is_empty()).then(|| usize::from(n) % self.peers.len())
    }

    fn pick_conn(&self, n: u8) -> Option<tcpool_core::ConnId> {
        let live = self.pool.handler().live();
        (!live.is_empty()).then(|| live[usize::from(n) % live.len()])
    }

    /// Does `op` to the live connection `conn` picks, if any, from outside
    /// the callbacks (the script is taken out of the pool for the call).
    fn outside(&mut self, conn: u8, now: Instant, op: Outside) {
        let Some(id) = self.pick_conn(conn) else {
            return;
        };
        let mut script = core::mem::take(self.pool.handler_mut());
        self.pool.with_conn(id, now, |c, _| script.outside(c, op));
        *self.pool.handler_mut() = script;
    }

    fn step(&mut self, step: &Step) {
        let now = self.now;
        match step {
            Step::Connect { ip } => {
                if self.listening {
                    let ip = Ipv4Addr::new(10, 0, 0, 2 + ip % 3);
                    let addr = SocketAddr::new(IpAddr::V4(ip), self.next_port);
                    self.next_port = self.next_port.wrapping_add(1);
                    self.peers.push(Peer {
                        addr,
                        unread: VecDeque::new(),
                        fin: false,
                        reset: false,
                        place: Place::Backlog,
                        got: 0,
                    });
                    self.backlog.push_back(self.peers.len() - 1);
                }
            }
            Step::Send { peer, data } => {
                if let Some(p) = self.pick_peer(*peer) {
                    let p = &mut self.peers[p];
                    if !p.fin && !p.reset {
                        p.unread.extend(data);
                    }
                }
            }
            Step::Fin { peer } => {
                if let Some(p) = self.pick_peer(*peer) {
                    self.peers[p].fin = true;
                }
            }
            Step::Reset { peer } => {
                if let Some(p) = self.pick_peer(*peer) {
                    let p = &mut self.peers[p];
                    p.reset = true;
                    p.unread.clear();
                }
            }
            Step::Poll { seed, faults } => {
                self.poll(&mut Answers::new(*seed, *faults));
                self.check_wakeup();
            }
            Step::Advance { ms } => self.now = now + Duration::from_millis(u64::from(*ms)),
            Step::AdvanceFar { secs } => self.now = now + Duration::from_secs(u64::from(*secs)),
            Step::Sleep => {
                if let Some(t) = self.pool.poll_at() {
                    self.now = self.now.max(t);
                }
            }
            Step::Configure(c) => self.pool.set_config(c.config()),
            Step::Behave(b) => self.pool.handler_mut().behaviour = *b,
            Step::Close { conn } => self.outside(*conn, now, Outside::Close),
            Step::Abort { conn } => self.outside(*conn, now, Outside::Abort),
            Step::Deadline { conn, ms } => self.outside(*conn, now, Outside::Deadline(*ms)),
            Step::Write { conn, n } => self.outside(*conn, now, Outside::Write(*n)),
            Step::Shutdown { seed, faults } => self.shutdown(&mut Answers::new(*seed, *faults)),
            Step::Listen => {
                self.listening = true;
                self.pool.set_listening(true);
            }
        }
    }

    /// One poll, as a driver does it.
    fn poll(&mut self, answers: &mut Answers) -> bool {
        let now = self.now;
        self.pool.begin_poll(now);
        for _ in 0..=N {
            if !self.pool.should_accept(now) {
                break;
            }
            assert!(self.listening, "the pool accepts while not listening");
            if answers.on(6, 300) {
                if answers.rng.u16(..1000) < 500 {
                    self.accept_errors += 1;
                    self.pool.accept_failed(now);
                }
                break;
            }
            let Some(p) = self.backlog.pop_front() else {
                break;
            };
            self.admit(p);
        }
        for i in 0..N {
            self.service(i, answers);
        }
        self.pool.end_poll()
    }

    fn admit(&mut self, p: usize) {
        let now = self.now;
        let addr = self.peers[p].addr;
        let closed_before = self.pool.handler().closed();
        let evicted_before = self.pool.stats().evicted;
        match self.pool.admit(addr, now) {
            Admission::Open { slot, evicted } => {
                if let Some(v) = evicted {
                    let victim = self.sockets[v]
                        .take()
                        .unwrap_or_else(|| panic!("evicted slot {v} has no socket"));
                    self.peers[victim].place = Place::Gone;
                    self.evicted += 1;
                    assert!(
                        matches!(self.pool.config().when_full, WhenFull::EvictIdlest { .. }),
                        "an eviction without EvictIdlest"
                    );
                    assert_eq!(self.pool.handler().closed(), closed_before + 1);
                    let rec = self.pool.handler().peer(self.peers[victim].addr).unwrap();
                    assert_eq!(rec.closed.map(|c| c.reason), Some(CloseReason::Evicted));
                } else {
                    assert_eq!(self.pool.handler().closed(), closed_before);
                }
                assert!(
                    self.sockets[slot].is_none(),
                    "slot {slot} handed out while its socket is still open"
                );
                assert_ne!(self.pool.slot_state(slot), SlotState::Free);
                self.sockets[slot] = Some(p);
                self.peers[p].place = Place::Slot(slot);
                let last = self.pool.handler().last_opened;
                assert_eq!(
                    last.map(|(_, a)| a),
                    Some(addr),
                    "on_open for the admitted peer"
                );
            }
            Admission::Refuse { banner } => {
                assert_eq!(
                    self.pool.handler().closed(),
                    closed_before,
                    "a refused peer cost a connection"
                );
                assert_eq!(self.pool.stats().evicted, evicted_before);
                assert!(banner.is_empty() || banner == self.pool.config().reject_banner);
                self.refused += 1;
                self.peers[p].place = Place::Refused;
            }
            other => panic!("an admission this driver does not know: {other:?}"),
        }
    }

    /// One slot's actions in one poll.
    fn service(&mut self, i: usize, answers: &mut Answers) {
        let now = self.now;
        for _ in 0..ACTION_LIMIT {
            match self.pool.next_action(i, now) {
                Action::Done => return,
                Action::Send(bytes) => {
                    assert!(!bytes.is_empty(), "slot {i}: an empty send");
                    let bytes = bytes.to_vec();
                    let event = self.send(i, &bytes, answers);
                    self.pool.complete(i, now, event);
                }
                Action::Receive(buf) => {
                    assert!(!buf.is_empty(), "slot {i}: an empty receive buffer");
                    let p = self.sockets[i]
                        .unwrap_or_else(|| panic!("slot {i}: receive without a socket"));
                    let peer = &mut self.peers[p];
                    let event = if peer.reset {
                        Event::Error(TcpErrorKind::PipeClosed)
                    } else if peer.unread.is_empty() {
                        if peer.fin {
                            Event::EndOfStream
                        } else {
                            Event::WouldBlock
                        }
                    } else if answers.on(2, 30) {
                        Event::Error(TcpErrorKind::Other)
                    } else if answers.on(0, 300) {
                        Event::WouldBlock
                    } else if answers.on(7, 100) {
                        Event::Received(0)
                    } else {
                        let n = answers.amount(buf.len().min(peer.unread.len()), 1);
                        for (dst, src) in buf.iter_mut().zip(peer.unread.drain(..n)) {
                            *dst = src;
                        }
                        let fed = buf[..n].to_vec();
                        let addr = peer.addr;
                        self.pool.handler_mut().peer_sent(addr, &fed, true);
                        Event::Received(n)
                    };
                    self.pool.complete(i, now, event);
                }
                Action::Close | Action::Abort => {
                    let p = self.sockets[i]
                        .take()
                        .unwrap_or_else(|| panic!("slot {i}: closed twice, or never opened"));
                    assert_eq!(self.pool.slot_state(i), SlotState::Free);
                    self.peers[p].place = Place::Gone;
                }
            }
        }
        panic!("slot {i}: no end to its actions in one poll");
    }

    fn send(&mut self, i: usize, bytes: &[u8], answers: &mut Answers) -> Event {
        let p = self.sockets[i].unwrap_or_else(|| panic!("slot {i}: send without a socket"));
        let peer = &self.peers[p];
        // The front of the output is the next bytes the handler wrote.
        let rec = self
            .pool
            .handler()
            .peer(peer.addr)
            .expect("an open peer has a record");
        let at = peer.got;
        assert!(
            rec.written.get(at..at + bytes.len()) == Some(bytes),
            "slot {i}: sending {} bytes at {at} that the handler did not write there \
             (it wrote {})",
            bytes.len(),
            rec.written.len()
        );
        if peer.reset {
            return Event::Error(TcpErrorKind::PipeClosed);
        }
        if self.sends_blocked || answers.on(3, 300) {
            return Event::WouldBlock;
        }
        if answers.on(5, 30) {
            return Event::Error(TcpErrorKind::Other);
        }
        if answers.on(7, 100) {
            return Event::Sent(0);
        }
        let n = answers.amount(bytes.len(), 4);
        self.peers[p].got += n;
        Event::Sent(n)
    }

    fn shutdown(&mut self, answers: &mut Answers) {
        self.pool.begin_poll(self.now);
        self.pool.begin_shutdown();
        for i in 0..N {
            self.service(i, answers);
        }
        self.pool.set_listening(false);
        self.listening = false;
        // Closing the listener drops the clients in its backlog.
        for p in self.backlog.drain(..) {
            self.peers[p].place = Place::Gone;
        }
        self.pool.end_poll();
        assert_eq!(self.pool.active(), 0, "connections left after a shutdown");
    }

    /// After a poll: when a driver would sleep (no socket ready by the
    /// pool's interests, no deadline passed), nothing may be left to do
    /// now, or it waits for an event that may never come. Checked by a
    /// poll with a stack that answers in full: it must move nothing.
    fn check_wakeup(&mut self) {
        let now = self.now;
        if self.ready() || self.pool.poll_at().is_some_and(|t| t <= now) {
            return;
        }
        let slots: Vec<_> = self.pool.slot_states().collect();
        let interests: Vec<_> = (0..N).map(|i| self.pool.interest(i)).collect();
        let poll_at = self.pool.poll_at();
        let progressed = self.poll(&mut Answers::honest());
        assert!(
            !progressed,
            "work left that no readiness and no deadline announces (slots {slots:?}, \
             interests {interests:?}, poll_at {poll_at:?} at {now:?})"
        );
    }

    /// The invariants that hold between steps.
    fn check(&self) {
        let stats = self.pool.stats();
        let script = self.pool.handler();
        let active = stats.active as usize;
        assert_eq!(
            stats.accepted,
            stats.closed.total() + stats.active,
            "accepted != closed + active: {stats:?}"
        );
        let occupied = self
            .pool
            .slot_states()
            .filter(|s| *s != SlotState::Free)
            .count();
        assert_eq!(active, occupied, "active vs slots in use");
        assert_eq!(self.pool.active(), active);
        for i in 0..N {
            assert_eq!(
                self.sockets[i].is_some(),
                self.pool.slot_state(i) != SlotState::Free,
                "slot {i}: socket and slot state disagree"
            );
        }
        assert!(stats.peak_active as usize <= N && stats.peak_active >= stats.active);
        assert_eq!(
            script.opened(),
            stats.accepted as usize,
            "on_open vs accepted"
        );
        assert_eq!(
            script.closed(),
            stats.closed.total() as usize,
            "on_closed vs closed"
        );
        assert_eq!(stats.refused, self.refused, "refusals");
        assert_eq!(stats.evicted, self.evicted, "evictions");
        assert_eq!(stats.accept_errors, self.accept_errors, "failed accepts");
        let fed: usize = script.peers().map(|(_, r)| r.stream.len()).sum();
        assert_eq!(stats.bytes_in, fed as u64, "bytes in vs bytes fed");
        let sent: usize = self.peers.iter().map(|p| p.got).sum();
        assert_eq!(stats.bytes_out, sent as u64, "bytes out vs bytes sent");
        for p in &self.peers {
            if let Some(closed) = script.peer(p.addr).and_then(|rec| rec.closed) {
                assert_eq!(closed.bytes_out as usize, p.got, "{}: bytes out", p.addr);
                assert!(!matches!(p.place, Place::Slot(_) | Place::Backlog));
            }
        }
    }

    fn settled(&self) -> bool {
        self.pool.active() == 0 && self.backlog.is_empty()
    }

    /// Whether a readiness wait on the pool's interests would return now:
    /// the listener has a client waiting, or a slot's socket has what its
    /// interest asks for (input, end of stream or a reset to read; room to
    /// send while peers read).
    fn ready(&self) -> bool {
        if self.pool.wants_listener() && !self.backlog.is_empty() {
            return true;
        }
        (0..N).any(|i| {
            let Some(p) = self.sockets[i] else {
                return false;
            };
            let peer = &self.peers[p];
            let interest = self.pool.interest(i);
            let readable = !peer.unread.is_empty() || peer.fin || peer.reset;
            let writable = !self.sends_blocked || peer.reset;
            (interest.readable && readable) || (interest.writable && writable)
        })
    }

    /// Every peer ends, the application closes everything, time runs past
    /// every deadline; nothing may be left.
    fn finish(&mut self, sends_blocked: bool) {
        self.sends_blocked = sends_blocked;
        self.pool.handler_mut().finishing = true;
        for p in &mut self.peers {
            p.fin = true;
        }
        self.listening = true;
        self.pool.set_listening(true);
        // A driver that sleeps until a socket is ready (by the pool's
        // interests) or the pool's deadline: polling again at once is only
        // right when something is ready or due, and then the poll must move
        // something (else it spins); with nothing ready and nothing due, the
        // pool must have nothing left (else it never wakes again).
        let mut spins = 0;
        for _ in 0..SETTLE_LIMIT {
            let now = self.now;
            for id in self.pool.handler().live() {
                self.pool.with_conn(id, now, |c, _| c.close());
            }
            let progressed = self.poll(&mut Answers::honest());
            self.check();
            let ready = self.ready();
            let next = self.pool.poll_at();
            if ready || next.is_some_and(|t| t <= now) {
                spins = if progressed { 0 } else { spins + 1 };
                assert!(
                    spins < 3,
                    "the pool spins: ready {ready}, poll_at {next:?} at {now:?}, yet nothing \
                     moves; slots {:?}",
                    self.pool.slot_states().collect::<Vec<_>>()
                );
                continue;
            }
            match next {
                Some(t) => self.now = t,
                None if self.settled() => break,
                None => panic!(
                    "nothing is ready and nothing is due, yet {} connections and {} in the \
                     backlog are left (the driver would sleep for ever); slots {:?}, \
                     interests {:?}",
                    self.pool.active(),
                    self.backlog.len(),
                    self.pool.slot_states().collect::<Vec<_>>(),
                    (0..N).map(|i| self.pool.interest(i)).collect::<Vec<_>>()
                ),
            }
        }
        assert!(
            self.settled() && self.pool.poll_at().is_none(),
            "did not settle: {} active, {} in the backlog, poll_at {:?}",
            self.pool.active(),
            self.backlog.len(),
            self.pool.poll_at()
        );
        // Nothing left: no slot, socket, or connection without its on_closed.
        assert!(self.pool.slot_states().all(|s| s == SlotState::Free));
        assert!(
            self.sockets.iter().all(Option::is_none),
            "a socket was never closed"
        );
        let script = self.pool.handler();
        assert_eq!(script.opened(), script.closed(), "on_open vs on_closed");
        for p in &self.peers {
            assert!(matches!(p.place, Place::Gone | Place::Refused), "{p:?}");
            let Some(rec) = script.peer(p.addr) else {
                continue;
            };
            if rec.id.is_some() {
                assert!(rec.closed.is_some(), "{}: never closed", p.addr);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Three connections, defer, 100 ms linger, 10 ms accept backoff.
    pub(crate) fn config() -> FuzzConfig {
        FuzzConfig {
            max_connections: 3,
            when_full: 0,
            min_idle_ms: 0,
            idle_timeout_ms: None,
            linger_ms: 100,
            read_budget: 0,
            max_per_ip: None,
            banner: false,
            accept_backoff_ms: 10,
            write_stall_ms: None,
        }
    }

    fn echo_input(steps: Vec<Step>) -> Input {
        Input {
            config: config(),
            behaviour: Behaviour::default(),
            end_blocked: false,
            steps,
        }
    }

    #[test]
    fn an_echo_session_runs_clean() {
        let poll = Step::Poll {
            seed: 1,
            faults: 0xff,
        };
        run_input(&echo_input(vec![
            Step::Connect { ip: 0 },
            Step::Connect { ip: 0 },
            Step::Send {
                peer: 0,
                data: b"hello there, a long line".to_vec(),
            },
            poll.clone(),
            poll.clone(),
            Step::Send {
                peer: 1,
                data: b"x".to_vec(),
            },
            Step::Fin { peer: 0 },
            poll.clone(),
            Step::Reset { peer: 1 },
            poll,
        ]));
    }

    #[test]
    fn a_short_read_then_would_block_leaves_the_slot_awake() {
        // Input left at the peer after a poll that stopped reading early
        // must keep the slot readable (checked after each poll), for any
        // handler that holds input back.
        for seed in 0..50 {
            let mut input = echo_input(vec![
                Step::Connect { ip: 0 },
                Step::Poll { seed, faults: 0 },
                Step::Send {
                    peer: 0,
                    data: vec![7; 10],
                },
                Step::Poll { seed, faults: 3 },
            ]);
            input.behaviour.consume = crate::script::Consume::Nothing;
            input.behaviour.echo = false;
            run_input(&input);
        }
    }

    #[test]
    #[should_panic(expected = "socket and slot state disagree")]
    fn a_socket_the_pool_does_not_know_is_caught() {
        // The checks are live: a socket without a connection in its slot
        // (a leak) fails them.
        let mut d = Driver::new(&echo_input(Vec::new()));
        d.sockets[1] = Some(0);
        d.check();
    }
}
