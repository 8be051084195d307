//! Holding SYN bursts: a driver wrapper that withholds embassy-net's refusal
//! RST to a SYN for a port whose listener holds its overflow.
//!
//! smoltcp (under embassy-net) answers a SYN that no socket takes with a
//! RST, and embassy-net's runner processes a whole burst of frames in one
//! poll, so the SYNs of a burst larger than the listening sockets are
//! refused before any socket can be re-armed. A full Linux accept queue
//! drops such SYNs instead, and the clients retransmit. [`HoldSyns`] gives
//! embassy-net the same behaviour without patching it: smoltcp sends its
//! answer to a received frame through the transmit token paired with the
//! receive token, so the wrapper stages small frames written through such a
//! token and drops one that is a refusal RST from a held port.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, Ordering};
use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

/// How many ports one [`SynHold`] can hold SYNs for (listeners with
/// [`Overflow::Hold`](crate::Overflow::Hold)).
pub const MAX_HELD_PORTS: usize = 8;

/// The largest frame staged: a RST (TCP 20 bytes) over IPv6 (40) over
/// Ethernet with a VLAN tag (18) is 78 bytes.
const STAGE: usize = 96;

/// The ports whose refused SYNs are held, shared by the [`Pool`](crate::Pool)
/// (which registers its listeners) and the [`HoldSyns`] driver wrapper
/// (which reads them). Zero-valid: put it in a `static`.
///
/// Only atomic loads and stores are used, so it works on cores without
/// compare-and-swap.
#[derive(Debug)]
pub struct SynHold {
    ports: [AtomicU16; MAX_HELD_PORTS],
    /// Sockets listening on each port, as the pool last armed them, less
    /// the SYNs seen since.
    armed: [AtomicU8; MAX_HELD_PORTS],
    /// The last armed socket of a port caught a SYN: end this round of
    /// ingress so that the pool can re-arm before the next SYN.
    pause: AtomicBool,
    held: AtomicU32,
}

impl SynHold {
    /// Holds no port.
    pub const fn new() -> Self {
        SynHold {
            ports: [const { AtomicU16::new(0) }; MAX_HELD_PORTS],
            armed: [const { AtomicU8::new(0) }; MAX_HELD_PORTS],
            pause: AtomicBool::new(false),
            held: AtomicU32::new(0),
        }
    }

    /// SYNs held so far (their refusal withheld). Wraps around.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether refused SYNs to `port` are held.
    pub fn holds(&self, port: u16) -> bool {
        port != 0 && self.ports.iter().any(|p| p.load(Ordering::Relaxed) == port)
    }

    /// Starts holding `port`; false if every entry is taken.
    pub(crate) fn add(&self, port: u16) -> bool {
        if self.holds(port) {
            return true;
        }
        match self.ports.iter().find(|p| p.load(Ordering::Relaxed) == 0) {
            Some(p) => {
                p.store(port, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Stops holding `port`.
    pub(crate) fn remove(&self, port: u16) {
        for (p, a) in self.ports.iter().zip(&self.armed) {
            if p.load(Ordering::Relaxed) == port {
                p.store(0, Ordering::Relaxed);
                a.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The pool has `n` sockets listening on `port` now.
    pub(crate) fn set_armed(&self, port: u16, n: usize) {
        if let Some(i) = self.index(port) {
            self.armed[i].store(u8::try_from(n).unwrap_or(u8::MAX), Ordering::Relaxed);
        }
    }

    fn index(&self, port: u16) -> Option<usize> {
        if port == 0 {
            return None;
        }
        self.ports
            .iter()
            .position(|p| p.load(Ordering::Relaxed) == port)
    }

    /// A SYN for `port` is about to be processed: if it takes the last
    /// armed socket, pause ingress after it.
    fn syn_seen(&self, port: u16) {
        let Some(i) = self.index(port) else {
            return;
        };
        let n = self.armed[i].load(Ordering::Relaxed);
        if n == 1 {
            self.pause.store(true, Ordering::Relaxed);
        }
        self.armed[i].store(n.saturating_sub(1), Ordering::Relaxed);
    }

    fn count(&self) {
        // One writer (the runner's task): a load and a store suffice.
        let n = self.held.load(Ordering::Relaxed);
        self.held.store(n.wrapping_add(1), Ordering::Relaxed);
    }
}

impl Default for SynHold {
    fn default() -> Self {
        SynHold::new()
    }
}

/// An [`embassy_net_driver::Driver`] wrapper that withholds the refusal RST
/// to a SYN for a port registered in its [`SynHold`] (see the module docs).
/// Everything else passes through unchanged.
///
/// ```text
/// static HOLD: SynHold = SynHold::new();
/// let driver = HoldSyns::new(driver, &HOLD);
/// let (stack, runner) = embassy_net::new(driver, config, resources, seed);
/// let pool = Pool::new(stack, storage, &HOLD, tcpool_embassy::Config::new());
/// ```
pub struct HoldSyns<'h, D> {
    inner: D,
    hold: &'h SynHold,
}

impl<'h, D: Driver> HoldSyns<'h, D> {
    /// Wraps `inner`; `hold` is shared with the [`Pool`](crate::Pool).
    pub fn new(inner: D, hold: &'h SynHold) -> Self {
        HoldSyns { inner, hold }
    }

    /// The wrapped driver.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    fn ethernet(&self) -> bool {
        matches!(self.inner.hardware_address(), HardwareAddress::Ethernet(_))
    }
}

impl<D: Driver> Driver for HoldSyns<'_, D> {
    type RxToken<'a>
        = HoldRx<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = HoldTx<'a, D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let ethernet = self.ethernet();
        let hold = self.hold;
        if hold.pause.swap(false, Ordering::Relaxed) {
            // The last listening socket of a port just caught a SYN: leave
            // the next frames in the driver until the runner's next poll,
            // so that the pool's task can arm a fresh socket first.
            cx.waker().wake_by_ref();
            return None;
        }
        let (rx, tx) = self.inner.receive(cx)?;
        Some((
            HoldRx {
                inner: rx,
                hold,
                ethernet,
            },
            HoldTx {
                inner: tx,
                hold: Some(hold),
                ethernet,
            },
        ))
    }

    fn transmit(&mut self, cx: &mut Context) -> Option<Self::TxToken<'_>> {
        // Frames sent on their own (not as answers) are never refusals.
        let ethernet = self.ethernet();
        let tx = self.inner.transmit(cx)?;
        Some(HoldTx {
            inner: tx,
            hold: None,
            ethernet,
        })
    }

    fn link_state(&mut self, cx: &mut Context) -> LinkState {
        self.inner.link_state(cx)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn hardware_address(&self) -> HardwareAddress {
        self.inner.hardware_address()
    }
}

/// A receive token of [`HoldSyns`] that notes SYNs to the held ports.
pub struct HoldRx<'h, T> {
    inner: T,
    hold: &'h SynHold,
    ethernet: bool,
}

impl<T: RxToken> RxToken for HoldRx<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let (hold, ethernet) = (self.hold, self.ethernet);
        self.inner.consume(|frame| {
            if let Some(port) = syn_port(frame, ethernet) {
                hold.syn_seen(port);
            }
            f(frame)
        })
    }
}

/// A transmit token of [`HoldSyns`] that may withhold a refusal RST.
pub struct HoldTx<'h, T> {
    inner: T,
    hold: Option<&'h SynHold>,
    ethernet: bool,
}

impl<T: TxToken> TxToken for HoldTx<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let Some(hold) = self.hold.filter(|_| len <= STAGE) else {
            return self.inner.consume(len, f);
        };
        let mut stage = [0u8; STAGE];
        let frame = &mut stage[..len];
        let r = f(frame);
        if refused_syn_port(frame, self.ethernet).is_some_and(|port| hold.holds(port)) {
            hold.count();
            return r; // the inner token is dropped: nothing is sent
        }
        self.inner.consume(len, |buf| buf.copy_from_slice(frame));
        r
    }
}

/// The TCP segment of a frame (IPv4 unfragmented or IPv6 without
/// extension headers), if it is one.
fn tcp_segment(frame: &[u8], ethernet: bool) -> Option<&[u8]> {
    let ip = if ethernet {
        match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
            0x0800 | 0x86dd => frame.get(14..)?,
            _ => return None,
        }
    } else {
        frame
    };
    let tcp = match ip.first()? >> 4 {
        4 => {
            let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
            if fragment != 0 || *ip.get(9)? != 6 {
                return None;
            }
            ip.get(usize::from(ip[0] & 0x0f) * 4..)?
        }
        6 if *ip.get(6)? == 6 => ip.get(40..)?,
        _ => return None,
    };
    (tcp.len() >= 20).then_some(tcp)
}

/// The destination port of a connection request (SYN without ACK).
fn syn_port(frame: &[u8], ethernet: bool) -> Option<u16> {
    let tcp = tcp_segment(frame, ethernet)?;
    (tcp[13] & 0x12 == 0x02).then(|| u16::from_be_bytes([tcp[2], tcp[3]]))
}

/// If `frame` is smoltcp's answer to a SYN that no socket took — a TCP
/// segment with exactly RST|ACK set and sequence number 0 — the local port
/// it refuses.
fn refused_syn_port(frame: &[u8], ethernet: bool) -> Option<u16> {
    let tcp = tcp_segment(frame, ethernet)?;
    const RST_ACK: u8 = 0x04 | 0x10;
    let refusal = tcp[13] & 0x3f == RST_ACK && tcp[4..8] == [0; 4];
    refusal.then(|| u16::from_be_bytes([tcp[0], tcp[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(flags: u8, seq: u32) -> [u8; 40] {
        let mut f = [0u8; 40];
        f[0] = 0x45;
        f[9] = 6;
        f[20..22].copy_from_slice(&80u16.to_be_bytes());
        f[24..28].copy_from_slice(&seq.to_be_bytes());
        f[33] = flags;
        f
    }

    #[test]
    fn only_the_refusal_of_a_syn_is_recognised() {
        assert_eq!(refused_syn_port(&ipv4_tcp(0x14, 0), false), Some(80));
        assert_eq!(refused_syn_port(&ipv4_tcp(0x14, 7), false), None);
        assert_eq!(refused_syn_port(&ipv4_tcp(0x04, 0), false), None);
        assert_eq!(refused_syn_port(&ipv4_tcp(0x12, 0), false), None);
        let mut eth = [0u8; 54];
        eth[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        eth[14..].copy_from_slice(&ipv4_tcp(0x14, 0));
        assert_eq!(refused_syn_port(&eth, true), Some(80));
        eth[13] = 0x06; // ARP
        assert_eq!(refused_syn_port(&eth, true), None);
        assert_eq!(refused_syn_port(&[], false), None);
        assert_eq!(refused_syn_port(&[0x45, 0, 0], false), None);
    }

    #[test]
    fn a_syn_taking_the_last_armed_socket_pauses_ingress() {
        let hold = SynHold::new();
        assert!(hold.add(80));
        hold.set_armed(80, 2);
        let mut syn = ipv4_tcp(0x02, 1);
        syn[22..24].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(syn_port(&syn, false), Some(80));
        assert_eq!(syn_port(&ipv4_tcp(0x12, 1), false), None, "SYN-ACK");
        hold.syn_seen(80);
        assert!(!hold.pause.load(Ordering::Relaxed));
        hold.syn_seen(80);
        assert!(hold.pause.load(Ordering::Relaxed));
        hold.syn_seen(81); // not held: no effect
    }

    #[test]
    fn ports_are_added_and_removed() {
        let hold = SynHold::new();
        assert!(!hold.holds(80));
        assert!(hold.add(80));
        assert!(hold.holds(80));
        assert!(!hold.holds(0));
        for p in 1..MAX_HELD_PORTS as u16 {
            assert!(hold.add(1000 + p));
        }
        assert!(!hold.add(2000), "every entry taken");
        hold.remove(80);
        assert!(!hold.holds(80));
        assert!(hold.add(2000));
    }
}
