//! The simulated link: two devices, a seeded fault model, a filter and a
//! capture.

use core::cell::RefCell;
use core::cmp::{Ordering, Reverse};
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::boxed::Box;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::vec;
use std::vec::Vec;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};
use tcpool_core::Instant;

use crate::stack::time::from_smol_ceil;

/// One end of a [`Wire`]. In a [`SimNet`](super::SimNet), `A` is the server
/// and `B` the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first end (the server in a `SimNet`).
    A,
    /// The second end (the client in a `SimNet`).
    B,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// The fault model and shape of a [`Wire`]. Probabilities are in `[0, 1]`
/// and drawn from one seeded generator, so a run is reproducible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireConfig {
    /// Seed of the fault generator.
    pub seed: u64,
    /// One-way delay of every packet.
    pub latency: Duration,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a packet is held back by an extra random delay of up
    /// to [`reorder_delay`](Self::reorder_delay), so later packets overtake it.
    pub reorder: f64,
    /// Largest extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// The IP MTU of both devices.
    pub mtu: usize,
    /// Record every TCP segment (see [`Wire::captured`]).
    pub capture: bool,
}

impl WireConfig {
    /// A perfect link: 1 ms latency, no faults, MTU 1500, capture on.
    pub const fn new() -> Self {
        WireConfig {
            seed: 0,
            latency: Duration::from_millis(1),
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            duplicate: 0.0,
            mtu: 1500,
            capture: true,
        }
    }

    /// A lossy link: `loss` probability of loss and of reordering, seeded.
    pub fn lossy(seed: u64, loss: f64) -> Self {
        WireConfig {
            seed,
            loss,
            reorder: loss,
            ..WireConfig::new()
        }
    }
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig::new()
    }
}

/// TCP header flags of a captured segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
}

/// A TCP segment seen on the wire (IPv4), as given to the filter and
/// recorded by the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// Which end sent it.
    pub from: Side,
    /// When it was sent (simulated time, ms).
    pub at: Instant,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Header flags.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful when `flags.ack`).
    pub ack: u32,
    /// Payload bytes.
    pub payload_len: usize,
}

impl PacketInfo {
    /// A SYN without ACK (connection request).
    pub fn is_syn(&self) -> bool {
        self.flags.syn && !self.flags.ack
    }

    /// A SYN-ACK (connection accepted).
    pub fn is_syn_ack(&self) -> bool {
        self.flags.syn && self.flags.ack
    }

    fn parse(from: Side, at: Instant, frame: &[u8]) -> Option<PacketInfo> {
        let ip = Ipv4Packet::new_checked(frame).ok()?;
        if ip.next_header() != IpProtocol::Tcp {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        Some(PacketInfo {
            from,
            at,
            src: SocketAddr::new(IpAddr::V4(ip.src_addr()), tcp.src_port()),
            dst: SocketAddr::new(IpAddr::V4(ip.dst_addr()), tcp.dst_port()),
            flags: TcpFlags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                psh: tcp.psh(),
            },
            seq: tcp.seq_number().0 as u32,
            ack: tcp.ack_number().0 as u32,
            payload_len: tcp.payload().len(),
        })
    }
}

/// What the filter decides for one TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the fault model decide (the normal path).
    Deliver,
    /// Drop it.
    Drop,
    /// Deliver it after this extra delay (no random faults applied).
    Delay(Duration),
    /// Deliver it now and a copy after this extra delay (no random faults
    /// applied): a late duplicate.
    DeliverTwice(Duration),
}

/// Counters of a [`Wire`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Packets handed to the wire.
    pub sent: u64,
    /// Packets handed to a device.
    pub delivered: u64,
    /// Packets lost by the random fault model.
    pub lost: u64,
    /// Packets dropped by the filter.
    pub filtered: u64,
    /// Packets held back by the reordering model.
    pub reordered: u64,
    /// Extra copies delivered by the duplication model.
    pub duplicated: u64,
}

type Filter = Box<dyn FnMut(&PacketInfo) -> Verdict>;

struct Queued {
    due: i64,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

struct WireState {
    config: WireConfig,
    rng: fastrand::Rng,
    /// Packets in flight, by destination side, earliest first.
    queues: [BinaryHeap<Reverse<Queued>>; 2],
    seq: u64,
    filter: Option<Filter>,
    link_up: bool,
    capture: Vec<PacketInfo>,
    stats: WireStats,
}

impl WireState {
    fn transmit(state: &RefCell<WireState>, from: Side, now: SmolInstant, data: Vec<u8>) {
        let at = Instant::from_millis(now.total_millis().max(0) as u64);
        let info = PacketInfo::parse(from, at, &data);
        // The filter runs with the state released, so it may be any closure.
        let mut filter = {
            let mut st = state.borrow_mut();
            st.stats.sent += 1;
            if let Some(info) = info.filter(|_| st.config.capture) {
                st.capture.push(info);
            }
            st.filter.take()
        };
        let verdict = match (&mut filter, &info) {
            (Some(f), Some(info)) => f(info),
            _ => Verdict::Deliver,
        };
        let mut st = state.borrow_mut();
        if st.filter.is_none() {
            st.filter = filter;
        }
        if !st.link_up {
            st.stats.filtered += 1;
            return;
        }
        let base = now.total_micros() + micros(st.config.latency);
        let to = from.peer().index();
        match verdict {
            Verdict::Drop => st.stats.filtered += 1,
            Verdict::Delay(extra) => {
                let due = base + micros(extra);
                st.push(to, due, data);
            }
            Verdict::DeliverTwice(extra) => {
                st.stats.duplicated += 1;
                st.push(to, base + micros(extra), data.clone());
                st.push(to, base, data);
            }
            Verdict::Deliver => {
                let cfg = st.config;
                if chance(&mut st.rng, cfg.loss) {
                    st.stats.lost += 1;
                    return;
                }
                let mut due = base;
                if chance(&mut st.rng, cfg.reorder) {
                    st.stats.reordered += 1;
                    let max = micros(cfg.reorder_delay).max(1000);
                    due += 1000 + st.rng.i64(0..max);
                }
                if chance(&mut st.rng, cfg.duplicate) {
                    st.stats.duplicated += 1;
                    let extra = 1000 + st.rng.i64(0..micros(cfg.reorder_delay).max(1000));
                    st.push(to, due + extra, data.clone());
                }
                st.push(to, due, data);
            }
        }
    }

    fn push(&mut self, to: usize, due: i64, data: Vec<u8>) {
        self.seq += 1;
        let seq = self.seq;
        self.queues[to].push(Reverse(Queued { due, seq, data }));
    }

    fn pop_due(&mut self, to: usize, now: SmolInstant) -> Option<Vec<u8>> {
        let Reverse(top) = self.queues[to].peek()?;
        if top.due > now.total_micros() {
            return None;
        }
        let Reverse(q) = self.queues[to].pop()?;
        self.stats.delivered += 1;
        Some(q.data)
    }
}

/// `true` with probability `p` (never for `p <= 0`).
fn chance(rng: &mut fastrand::Rng, p: f64) -> bool {
    p > 0.0 && rng.f64() < p
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

/// A simulated point-to-point link. Cloning gives another handle to the
/// same link (to set a filter or read the capture while stacks own the
/// devices).
///
/// ```
/// use tcpool_smoltcp::sim::{Verdict, Wire, WireConfig};
///
/// let (wire, server_dev, client_dev) = Wire::new(WireConfig::lossy(42, 0.02));
/// // Drop every SYN-ACK the server sends.
/// wire.set_filter(|p| if p.is_syn_ack() { Verdict::Drop } else { Verdict::Deliver });
/// # drop((server_dev, client_dev));
/// ```
#[derive(Clone)]
pub struct Wire {
    state: Rc<RefCell<WireState>>,
}

impl Wire {
    /// A link and its two devices: `(wire, device A, device B)`.
    pub fn new(config: WireConfig) -> (Wire, SimDevice, SimDevice) {
        let state = Rc::new(RefCell::new(WireState {
            config,
            rng: fastrand::Rng::with_seed(config.seed),
            queues: [BinaryHeap::new(), BinaryHeap::new()],
            seq: 0,
            filter: None,
            link_up: true,
            capture: Vec::new(),
            stats: WireStats::default(),
        }));
        let a = SimDevice {
            state: state.clone(),
            side: Side::A,
        };
        let b = SimDevice {
            state: state.clone(),
            side: Side::B,
        };
        (Wire { state }, a, b)
    }

    /// Another handle to one end of the link, for a stack that replaces
    /// the one holding that end (a simulated reboot): packets in flight to
    /// that end are delivered to whichever stack polls it next.
    pub fn device(&self, side: Side) -> SimDevice {
        SimDevice {
            state: self.state.clone(),
            side,
        }
    }

    /// Decide the fate of each TCP segment before the fault model does
    /// (replaces any previous filter). Non-TCP packets bypass the filter.
    pub fn set_filter(&self, filter: impl FnMut(&PacketInfo) -> Verdict + 'static) {
        self.state.borrow_mut().filter = Some(Box::new(filter));
    }

    /// Remove the filter.
    pub fn clear_filter(&self) {
        self.state.borrow_mut().filter = None;
    }

    /// Bring the link down (every packet sent meanwhile is dropped; packets
    /// already in flight still arrive) or up again.
    pub fn set_link_up(&self, up: bool) {
        self.state.borrow_mut().link_up = up;
    }

    /// The current fault model.
    pub fn config(&self) -> WireConfig {
        self.state.borrow().config
    }

    /// Change the fault model from now on (the generator keeps its state).
    pub fn set_config(&self, config: WireConfig) {
        self.state.borrow_mut().config = config;
    }

    /// The counters.
    pub fn stats(&self) -> WireStats {
        self.state.borrow().stats
    }

    /// Every TCP segment sent so far (when [`WireConfig::capture`] is on),
    /// in sending order, including those then dropped.
    pub fn captured(&self) -> Vec<PacketInfo> {
        self.state.borrow().capture.clone()
    }

    /// Forget the capture so far.
    pub fn clear_capture(&self) {
        self.state.borrow_mut().capture.clear();
    }

    /// Packets in flight.
    pub fn in_flight(&self) -> usize {
        let st = self.state.borrow();
        st.queues[0].len() + st.queues[1].len()
    }

    /// When the next packet in flight arrives (rounded up to the ms).
    pub fn next_arrival(&self) -> Option<Instant> {
        let st = self.state.borrow();
        st.queues
            .iter()
            .filter_map(|q| q.peek().map(|Reverse(p)| p.due))
            .min()
            .map(|due| from_smol_ceil(SmolInstant::from_micros(due)))
    }
}

/// One end of a [`Wire`]: a smoltcp [`Device`] with the IP medium (no ARP).
pub struct SimDevice {
    state: Rc<RefCell<WireState>>,
    side: Side,
}

impl SimDevice {
    /// Which end of the wire this is.
    pub fn side(&self) -> Side {
        self.side
    }
}

impl Device for SimDevice {
    type RxToken<'a> = SimRxToken;
    type TxToken<'a> = SimTxToken;

    fn receive(&mut self, timestamp: SmolInstant) -> Option<(SimRxToken, SimTxToken)> {
        let data = self
            .state
            .borrow_mut()
            .pop_due(self.side.index(), timestamp)?;
        Some((
            SimRxToken { data },
            SimTxToken {
                state: self.state.clone(),
                from: self.side,
                now: timestamp,
            },
        ))
    }

    fn transmit(&mut self, timestamp: SmolInstant) -> Option<SimTxToken> {
        Some(SimTxToken {
            state: self.state.clone(),
            from: self.side,
            now: timestamp,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.state.borrow().config.mtu;
        caps
    }
}

/// A received packet (see [`SimDevice`]).
pub struct SimRxToken {
    data: Vec<u8>,
}

impl phy::RxToken for SimRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.data)
    }
}

/// Permission to send one packet (see [`SimDevice`]).
pub struct SimTxToken {
    state: Rc<RefCell<WireState>>,
    from: Side,
    now: SmolInstant,
}

impl phy::TxToken for SimTxToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut data = vec![0; len];
        let r = f(&mut data);
        WireState::transmit(&self.state, self.from, self.now, data);
        r
    }
}
