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
#[cfg(feature = "ipv6")]
use smoltcp::wire::Ipv6Packet;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, TcpSeqNumber,
};

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
    let tcp = whole_tcp_segment(ip_packet(frame, medium)?)?;
    let refusal = tcp.rst()
        && tcp.ack()
        && !(tcp.syn() || tcp.fin() || tcp.psh() || tcp.urg())
        && tcp.seq_number() == TcpSeqNumber(0);
    refusal.then(|| tcp.src_port())
}

/// False only for a frame that is certainly a whole TCP segment without
/// SYN: an unfragmented IPv4 packet, or an IPv6 packet with no extension
/// header, carrying TCP with the SYN flag clear. Anything else (other
/// protocols, fragments, malformed or truncated frames) may be a SYN as far
/// as the caller knows.
pub(crate) fn may_carry_syn(frame: &[u8], medium: Medium) -> bool {
    ip_packet(frame, medium)
        .and_then(whole_tcp_segment)
        .is_none_or(|tcp| tcp.syn())
}

/// The IP packet a frame carries (`None` for other protocols and frames too
/// short to hold a header).
fn ip_packet(frame: &[u8], medium: Medium) -> Option<&[u8]> {
    match medium {
        Medium::Ethernet => {
            let eth = EthernetFrame::new_checked(frame).ok()?;
            match eth.ethertype() {
                EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 => Some(eth.payload()),
                _ => None,
            }
        }
        Medium::Ip => Some(frame),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The TCP segment of an IP packet that carries one whole (an unfragmented
/// IPv4 packet, or an IPv6 packet whose first header is TCP), with every
/// length field checked against the buffer.
fn whole_tcp_segment(ip: &[u8]) -> Option<TcpPacket<&[u8]>> {
    let payload = match ip.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(ip).ok()?;
            if ip.more_frags() || ip.frag_offset() != 0 || ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            ip.payload()
        }
        // Without `ipv6` smoltcp neither sends nor accepts IPv6: such a
        // frame is "cannot tell", which costs one search and no more.
        #[cfg(feature = "ipv6")]
        6 => {
            let ip = Ipv6Packet::new_checked(ip).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            ip.payload()
        }
        _ => return None,
    };
    TcpPacket::new_checked(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed IPv4 + TCP header (no options, no payload) with the
    /// given flags byte and sequence number, from local port 80.
    fn ipv4_tcp(flags: u8, seq: u32) -> [u8; 40] {
        let mut f = [0u8; 40];
        f[0] = 0x45; // version 4, 5-word header
        f[2..4].copy_from_slice(&40u16.to_be_bytes()); // total length
        f[9] = 6; // TCP
        f[20..22].copy_from_slice(&80u16.to_be_bytes());
        f[24..28].copy_from_slice(&seq.to_be_bytes());
        f[32] = 0x50; // 5-word TCP header
        f[33] = flags;
        f
    }

    /// The same over Ethernet.
    fn ethernet(ip: &[u8; 40]) -> [u8; 54] {
        let mut eth = [0u8; 54];
        eth[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        eth[14..].copy_from_slice(ip);
        eth
    }

    /// A well-formed IPv6 + TCP header with the given flags byte.
    fn ipv6_tcp(flags: u8) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[0] = 0x60;
        f[4..6].copy_from_slice(&20u16.to_be_bytes()); // payload length
        f[6] = 6; // next header: TCP
        f[40 + 12] = 0x50;
        f[40 + 13] = flags;
        f
    }

    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;

    #[test]
    fn recognises_the_refusal_of_a_syn() {
        assert_eq!(
            refused_syn_port(&ipv4_tcp(RST | ACK, 0), Medium::Ip),
            Some(80)
        );
        // A RST|ACK with a real sequence number is an abort, not a refusal.
        assert_eq!(
            refused_syn_port(&ipv4_tcp(RST | ACK, 1234), Medium::Ip),
            None
        );
        // A plain RST (answer to a segment carrying an ACK) is not one either.
        assert_eq!(refused_syn_port(&ipv4_tcp(RST, 0), Medium::Ip), None);
        assert_eq!(refused_syn_port(&ipv4_tcp(SYN | ACK, 0), Medium::Ip), None);
        let mut eth = ethernet(&ipv4_tcp(RST | ACK, 0));
        assert_eq!(refused_syn_port(&eth, Medium::Ethernet), Some(80));
        eth[13] = 0x06; // ARP
        assert_eq!(refused_syn_port(&eth, Medium::Ethernet), None);
        assert_eq!(refused_syn_port(&[], Medium::Ip), None);
        assert_eq!(refused_syn_port(&[0x45, 0, 0], Medium::Ip), None);
    }

    #[test]
    fn only_whole_tcp_segments_without_syn_are_known_not_to_carry_one() {
        assert!(may_carry_syn(&ipv4_tcp(SYN, 0), Medium::Ip));
        assert!(may_carry_syn(&ipv4_tcp(SYN | ACK, 0), Medium::Ip));
        assert!(!may_carry_syn(&ipv4_tcp(ACK, 1), Medium::Ip));
        assert!(!may_carry_syn(&ipv4_tcp(RST | ACK, 0), Medium::Ip));
        // A fragment, a non-TCP packet, a truncated frame: cannot tell.
        let mut fragment = ipv4_tcp(ACK, 1);
        fragment[6] = 0x20; // more fragments
        assert!(may_carry_syn(&fragment, Medium::Ip));
        let mut udp = ipv4_tcp(ACK, 1);
        udp[9] = 17;
        assert!(may_carry_syn(&udp, Medium::Ip));
        assert!(may_carry_syn(&ipv4_tcp(ACK, 1)[..30], Medium::Ip));
        assert!(may_carry_syn(&[], Medium::Ip));
        // IPv6 without extension headers (known only when smoltcp speaks
        // IPv6), with a hop-by-hop header first (cannot tell).
        let known_v6 = cfg!(feature = "ipv6");
        assert_eq!(may_carry_syn(&ipv6_tcp(ACK), Medium::Ip), !known_v6);
        assert!(may_carry_syn(&ipv6_tcp(SYN), Medium::Ip));
        let mut hop_by_hop = ipv6_tcp(ACK);
        hop_by_hop[6] = 0;
        assert!(may_carry_syn(&hop_by_hop, Medium::Ip));
        // Over Ethernet.
        let mut eth = ethernet(&ipv4_tcp(ACK, 1));
        assert!(!may_carry_syn(&eth, Medium::Ethernet));
        eth[14 + 33] = SYN;
        assert!(may_carry_syn(&eth, Medium::Ethernet));
        eth[13] = 0x06; // ARP
        assert!(may_carry_syn(&eth, Medium::Ethernet));
    }

    #[test]
    fn malformed_frames_are_not_refusals_and_may_carry_a_syn() {
        let refusal = ipv4_tcp(RST | ACK, 0);
        let mut malformed: [(&str, [u8; 40]); 6] = [("", refusal); 6];
        malformed[0].0 = "IPv4 header length below 20 bytes";
        malformed[0].1[0] = 0x44;
        malformed[1].0 = "IPv4 header length beyond the buffer";
        malformed[1].1[0] = 0x4f;
        malformed[2].0 = "IPv4 total length beyond the buffer";
        malformed[2].1[2..4].copy_from_slice(&41u16.to_be_bytes());
        malformed[3].0 = "IPv4 total length shorter than a TCP header";
        malformed[3].1[2..4].copy_from_slice(&30u16.to_be_bytes());
        malformed[4].0 = "TCP data offset below 20 bytes";
        malformed[4].1[32] = 0x40;
        malformed[5].0 = "TCP data offset beyond the segment";
        malformed[5].1[32] = 0x60;
        for (what, frame) in &malformed {
            assert_eq!(refused_syn_port(frame, Medium::Ip), None, "{what}");
            assert!(may_carry_syn(frame, Medium::Ip), "{what}");
            let eth = ethernet(frame);
            assert_eq!(refused_syn_port(&eth, Medium::Ethernet), None, "{what}");
            assert!(may_carry_syn(&eth, Medium::Ethernet), "{what}");
        }
        // Every truncation of a refusal (over IP and over Ethernet) is
        // neither a refusal nor known to be SYN-free.
        let eth = ethernet(&refusal);
        for len in 0..refusal.len() {
            assert_eq!(refused_syn_port(&refusal[..len], Medium::Ip), None);
            assert!(may_carry_syn(&refusal[..len], Medium::Ip));
        }
        for len in 0..eth.len() {
            assert_eq!(refused_syn_port(&eth[..len], Medium::Ethernet), None);
            assert!(may_carry_syn(&eth[..len], Medium::Ethernet));
        }
        let v6 = ipv6_tcp(ACK);
        for len in 0..v6.len() {
            assert!(may_carry_syn(&v6[..len], Medium::Ip));
        }
        // Any single corrupted byte, any value: an answer, never a panic.
        for frame in [&refusal[..], &eth[..], &v6[..]] {
            for at in 0..frame.len() {
                for value in 0..=u8::MAX {
                    let mut copy = [0u8; 60];
                    let bad = &mut copy[..frame.len()];
                    bad.copy_from_slice(frame);
                    bad[at] = value;
                    let _ = refused_syn_port(bad, Medium::Ip);
                    let _ = refused_syn_port(bad, Medium::Ethernet);
                    let _ = may_carry_syn(bad, Medium::Ip);
                    let _ = may_carry_syn(bad, Medium::Ethernet);
                }
            }
        }
    }
}
