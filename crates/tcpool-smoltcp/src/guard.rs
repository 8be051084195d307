//! The SYN guard: a device wrapper, used only while processing incoming
//! packets, that withholds smoltcp's RST answer to a SYN for a port whose
//! listener is full and set to [`Overflow::Hold`](crate::Overflow::Hold).
//!
//! smoltcp answers every segment no socket takes with a RST; for a SYN to a
//! port with no socket listening that means "connection refused". A full
//! Linux accept queue drops the SYN instead, and the client retransmits it
//! until there is room. The guard gives smoltcp the same behaviour without
//! patching it: the answer to a SYN is generated while the SYN is processed
//! and sent through the transmit token paired with the receive token, so the
//! guard stages small frames built with that token, and drops a staged frame
//! that is a refusal RST for a held port instead of sending it.
//!
//! The guard also notes whether a received frame may carry a SYN, so that
//! the stack looks for listeners that caught one only after such frames
//! (a listening socket changes state on a SYN and on nothing else), not
//! after every data segment.

use core::cell::Cell;

use smoltcp::phy::{Device, DeviceCapabilities, Medium, PacketMeta, RxToken, TxToken};
use smoltcp::time::Instant as SmolInstant;

/// The largest frame staged: a RST (TCP 20 bytes, no options) over IPv6
/// (40) over Ethernet with a VLAN tag (18) is 78 bytes.
const STAGE: usize = 96;

/// Which ports to hold SYNs for: a predicate over the destination port of
/// the refused SYN (the source port of the RST).
pub(crate) trait HoldPorts {
    fn holds(&self, port: u16) -> bool;
}

/// Wraps the stack's device during ingress.
pub(crate) struct SynGuard<'d, D: Device, H: HoldPorts> {
    pub(crate) inner: &'d mut D,
    pub(crate) medium: Medium,
    pub(crate) hold: &'d H,
    pub(crate) held: &'d Cell<u32>,
    /// Set when a received frame may carry a SYN.
    pub(crate) syn: &'d Cell<bool>,
}

impl<'d, D: Device, H: HoldPorts> Device for SynGuard<'d, D, H> {
    type RxToken<'a>
        = GuardRx<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = GuardTx<'a, D::TxToken<'a>, H>
    where
        Self: 'a;

    fn receive(
        &mut self,
        timestamp: SmolInstant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(timestamp)?;
        Some((
            GuardRx {
                inner: rx,
                medium: self.medium,
                syn: self.syn,
            },
            GuardTx {
                inner: tx,
                medium: self.medium,
                hold: Some(self.hold),
                held: self.held,
            },
        ))
    }

    fn transmit(&mut self, timestamp: SmolInstant) -> Option<Self::TxToken<'_>> {
        // Frames sent on their own (not as answers) are never refusals.
        let tx = self.inner.transmit(timestamp)?;
        Some(GuardTx {
            inner: tx,
            medium: self.medium,
            hold: None,
            held: self.held,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

/// A receive token that notes whether its frame may carry a SYN.
pub(crate) struct GuardRx<'a, T: RxToken> {
    inner: T,
    medium: Medium,
    syn: &'a Cell<bool>,
}

impl<T: RxToken> RxToken for GuardRx<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let (medium, syn) = (self.medium, self.syn);
        self.inner.consume(|frame| {
            if may_carry_syn(frame, medium) {
                syn.set(true);
            }
            f(frame)
        })
    }

    fn meta(&self) -> PacketMeta {
        self.inner.meta()
    }
}

/// A transmit token that may withhold a refusal RST.
pub(crate) struct GuardTx<'a, T: TxToken, H: HoldPorts> {
    inner: T,
    medium: Medium,
    hold: Option<&'a H>,
    held: &'a Cell<u32>,
}

impl<T: TxToken, H: HoldPorts> TxToken for GuardTx<'_, T, H> {
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
        if refused_syn_port(frame, self.medium).is_some_and(|port| hold.holds(port)) {
            self.held.set(self.held.get().wrapping_add(1));
            return r; // the inner token is dropped: nothing is sent
        }
        self.inner.consume(len, |buf| buf.copy_from_slice(frame));
        r
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.inner.set_meta(meta)
    }
}

/// If `frame` is smoltcp's answer to a SYN that no socket took — a TCP
/// segment with exactly RST|ACK set and sequence number 0 — the local port
/// it refuses.
pub(crate) fn refused_syn_port(frame: &[u8], medium: Medium) -> Option<u16> {
    let ip = match medium {
        Medium::Ethernet => {
            let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
            match ethertype {
                0x0800 | 0x86dd => frame.get(14..)?,
                _ => return None,
            }
        }
        Medium::Ip => frame,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    let (protocol, tcp) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            (*ip.get(9)?, ip.get(ihl..)?)
        }
        6 => (*ip.get(6)?, ip.get(40..)?),
        _ => return None,
    };
    if protocol != 6 || tcp.len() < 20 {
        return None;
    }
    const RST_ACK: u8 = 0x04 | 0x10;
    let refusal = tcp[13] & 0x3f == RST_ACK && tcp[4..8] == [0; 4];
    refusal.then(|| u16::from_be_bytes([tcp[0], tcp[1]]))
}

/// False only for a frame that is certainly a whole TCP segment without
/// SYN: an unfragmented IPv4 packet, or an IPv6 packet with no extension
/// header, carrying TCP with the SYN flag clear. Anything else (other
/// protocols, fragments, frames too short to tell) may be a SYN as far as
/// the caller knows.
pub(crate) fn may_carry_syn(frame: &[u8], medium: Medium) -> bool {
    tcp_flags(frame, medium).is_none_or(|flags| flags & 0x02 != 0)
}

/// The TCP flags byte of a frame that is one whole TCP segment.
fn tcp_flags(frame: &[u8], medium: Medium) -> Option<u8> {
    let ip = match medium {
        Medium::Ethernet => match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
            0x0800 | 0x86dd => frame.get(14..)?,
            _ => return None,
        },
        Medium::Ip => frame,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    let tcp = match ip.first()? >> 4 {
        4 => {
            // More fragments, or a fragment offset: part of a datagram.
            let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff;
            if fragment != 0 || *ip.get(9)? != 6 {
                return None;
            }
            ip.get(usize::from(ip[0] & 0x0f) * 4..)?
        }
        6 if *ip.get(6)? == 6 => ip.get(40..)?,
        _ => return None,
    };
    tcp.get(13).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 + TCP header with the given flags byte and sequence number.
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
    fn recognises_the_refusal_of_a_syn() {
        assert_eq!(refused_syn_port(&ipv4_tcp(0x14, 0), Medium::Ip), Some(80));
        // A RST|ACK with a real sequence number is an abort, not a refusal.
        assert_eq!(refused_syn_port(&ipv4_tcp(0x14, 1234), Medium::Ip), None);
        // A plain RST (answer to a segment carrying an ACK) is not one either.
        assert_eq!(refused_syn_port(&ipv4_tcp(0x04, 0), Medium::Ip), None);
        assert_eq!(refused_syn_port(&ipv4_tcp(0x12, 0), Medium::Ip), None);
        let mut eth = [0u8; 54];
        eth[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        eth[14..].copy_from_slice(&ipv4_tcp(0x14, 0));
        assert_eq!(refused_syn_port(&eth, Medium::Ethernet), Some(80));
        eth[12] = 0x08;
        eth[13] = 0x06; // ARP
        assert_eq!(refused_syn_port(&eth, Medium::Ethernet), None);
        assert_eq!(refused_syn_port(&[], Medium::Ip), None);
        assert_eq!(refused_syn_port(&[0x45, 0, 0], Medium::Ip), None);
    }

    #[test]
    fn only_whole_tcp_segments_without_syn_are_known_not_to_carry_one() {
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        assert!(may_carry_syn(&ipv4_tcp(SYN, 0), Medium::Ip));
        assert!(may_carry_syn(&ipv4_tcp(SYN | ACK, 0), Medium::Ip));
        assert!(!may_carry_syn(&ipv4_tcp(ACK, 1), Medium::Ip));
        assert!(!may_carry_syn(&ipv4_tcp(0x14, 0), Medium::Ip)); // RST|ACK
        // A fragment, a non-TCP packet, a truncated frame: cannot tell.
        let mut fragment = ipv4_tcp(ACK, 1);
        fragment[6] = 0x20; // more fragments
        assert!(may_carry_syn(&fragment, Medium::Ip));
        let mut udp = ipv4_tcp(ACK, 1);
        udp[9] = 17;
        assert!(may_carry_syn(&udp, Medium::Ip));
        assert!(may_carry_syn(&ipv4_tcp(ACK, 1)[..30], Medium::Ip));
        assert!(may_carry_syn(&[], Medium::Ip));
        // IPv6 without extension headers, and over Ethernet.
        let mut v6 = [0u8; 60];
        v6[0] = 0x60;
        v6[6] = 6;
        v6[40 + 13] = ACK;
        assert!(!may_carry_syn(&v6, Medium::Ip));
        v6[40 + 13] = SYN;
        assert!(may_carry_syn(&v6, Medium::Ip));
        v6[6] = 0; // hop-by-hop options first
        v6[40 + 13] = ACK;
        assert!(may_carry_syn(&v6, Medium::Ip));
        let mut eth = [0u8; 54];
        eth[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        eth[14..].copy_from_slice(&ipv4_tcp(ACK, 1));
        assert!(!may_carry_syn(&eth, Medium::Ethernet));
        eth[14 + 33] = SYN;
        assert!(may_carry_syn(&eth, Medium::Ethernet));
        eth[13] = 0x06; // ARP
        assert!(may_carry_syn(&eth, Medium::Ethernet));
    }
}
