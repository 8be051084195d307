//! The smoltcp pitfalls the pool guards against, each reproduced on the
//! simulated wire.

mod common;

use common::*;
use embedded_nal::TcpClientStack;
use tcpool_smoltcp::sim::{PacketInfo, SimConfig, SimNet, Verdict};
use tcpool_smoltcp::{Config, Error, ListenConfig, TcpHandle, TcpState};

/// A server whose listener socket (pool index 1) comes *after* a free socket
/// (index 0) in smoltcp's socket set: when the listener catches a SYN, the
/// socket re-armed in its place is index 0, which smoltcp offers every
/// packet first. That is the order in which a duplicate SYN gets caught by
/// the fresh listener instead of being dropped by the SYN-RECEIVED socket.
fn shadowing_server(net: &mut SimNet<3, 4>) -> TcpHandle {
    let first = net.server.socket().unwrap();
    let l = listen(net, 80, Some(ListenConfig::new(1, 2)));
    net.server.close(first).unwrap();
    let st = net.server.pool_stats();
    assert_eq!((st.listening, st.free), (1, 2));
    l
}

fn syn_acks(net: &SimNet<3, 4>) -> Vec<PacketInfo> {
    from_server(net)
        .into_iter()
        .filter(|p| p.is_syn_ack())
        .collect()
}

#[test]
fn duplicate_syn_after_a_lost_syn_ack_does_not_park_a_socket() {
    let mut net: SimNet<3, 4> = SimNet::new(SimConfig::default());
    let mut l = shadowing_server(&mut net);
    let mut dropped = false;
    net.wire.set_filter(move |p| {
        if p.is_syn_ack() && !dropped {
            dropped = true;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });

    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    // The client's retransmitted SYN reached the re-armed listener first; it
    // was recognised and dropped without a SYN-ACK of its own...
    let syn_acks = syn_acks(&net);
    assert!(syn_acks.len() >= 2, "the first SYN-ACK was retransmitted");
    assert!(
        syn_acks.iter().all(|p| p.seq == syn_acks[0].seq),
        "one handshake only: {syn_acks:?}"
    );
    // ...so no socket is left in SYN-RECEIVED, and the connection works.
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.pending, st.listening), (1, 0, 1), "{st:?}");
    send_all(&mut net, Who::Client, &mut c, b"ping");
    assert_eq!(read_exact(&mut net, Who::Server, &mut s, 4), b"ping");
    net.advance(secs(60));
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.pending, st.listening), (1, 0, 1), "{st:?}");
    assert!(net.wire.captured().iter().all(|p| !p.flags.rst));
    assert_eq!(net.server.counters().duplicate_syns, 1);
}

#[test]
fn late_duplicate_syn_does_not_hijack_an_established_connection() {
    let mut net: SimNet<3, 4> = SimNet::new(SimConfig::default());
    let mut l = shadowing_server(&mut net);
    let mut first = true;
    net.wire.set_filter(move |p| {
        if p.is_syn() && std::mem::take(&mut first) {
            Verdict::DeliverTwice(ms(200))
        } else {
            Verdict::Deliver
        }
    });
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    send_all(&mut net, Who::Client, &mut c, b"before");
    assert_eq!(read_exact(&mut net, Who::Server, &mut s, 6), b"before");

    // The copy of the SYN lands on the listener, which comes first in the
    // socket set: left alone it would answer with its own SYN-ACK and then
    // capture this connection's packets (answering them with RSTs).
    net.advance(ms(300));
    assert_eq!(syn_acks(&net).len(), 1);

    send_all(&mut net, Who::Client, &mut c, b"after");
    assert_eq!(read_exact(&mut net, Who::Server, &mut s, 5), b"after");
    send_all(&mut net, Who::Server, &mut s, b"reply");
    assert_eq!(read_exact(&mut net, Who::Client, &mut c, 5), b"reply");
    assert!(net.wire.captured().iter().all(|p| !p.flags.rst));
    assert_eq!(net.server.pool_stats().listening, 1);
    assert_eq!(net.server.counters().duplicate_syns, 1);
}

#[test]
fn a_handshake_that_never_completes_is_reclaimed_after_the_handshake_timeout() {
    // Every SYN-ACK is lost: without a timeout the SYN-RECEIVED socket
    // would retransmit forever and never return to the pool. (The client
    // keeps trying for longer than the server's 10 s, so that it is the
    // server's timeout that ends the handshake.)
    let config = SimConfig {
        client: Config {
            handshake_timeout: secs(60),
            ..Config::new()
        },
        ..SimConfig::default()
    };
    let mut net: SimNet<4, 4> = SimNet::new(config);
    let _l = listen(&mut net, 80, Some(ListenConfig::new(1, 2)));
    net.wire.set_filter(|p| {
        if p.is_syn_ack() {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let mut c = net.client.socket().unwrap();
    let addr = net.server_addr(80);
    let _ = net.client.connect(&mut c, addr);
    net.advance(secs(5));
    let st = net.server.pool_stats();
    assert_eq!((st.pending, st.listening), (1, 1), "{st:?}");

    assert!(net.run_until(secs(10), |net| net.server.pool_stats().pending == 0));
    let t = net.now().as_millis();
    assert!(
        (10_000..10_100).contains(&t),
        "reclaimed after 10 s, at {t} ms"
    );
    let st = net.server.pool_stats();
    assert_eq!((st.listening, st.free), (1, 3), "{st:?}");
    // The server's RST tells the client its handshake is over.
    let mut result = Err(nb::Error::WouldBlock);
    net.run_until(secs(1), |net| {
        result = net.client.connect(&mut c, addr);
        result != Err(nb::Error::WouldBlock)
    });
    assert_eq!(result, Err(nb::Error::Other(Error::ConnectionRefused)));
}

#[test]
fn keepalive_keeps_an_idle_connection_open_past_the_timeout() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    net.wire.clear_capture();
    net.advance(secs(600)); // ten timeouts' worth of silence
    assert_eq!(net.server.socket_state(&s), Some(TcpState::Established));
    let probes = net
        .wire
        .captured()
        .iter()
        .filter(|p| p.payload_len == 1)
        .count();
    assert!(probes >= 10, "keepalive probes: {probes}");
    send_all(&mut net, Who::Client, &mut c, b"still");
    assert_eq!(read_exact(&mut net, Who::Server, &mut s, 5), b"still");
}

#[test]
fn a_timeout_without_keepalive_kills_idle_connections() {
    // Why keepalive is not optional: smoltcp's timeout counts from the
    // peer's last packet, so an idle healthy connection times out.
    let no_keepalive = Config {
        keepalive: None,
        ..Config::new()
    };
    let config = SimConfig {
        server: no_keepalive,
        client: no_keepalive,
        ..SimConfig::default()
    };
    let mut net: SimNet<4, 4> = SimNet::new(config);
    let mut l = listen(&mut net, 80, None);
    let (_c, mut s) = connected_pair(&mut net, &mut l, 80);
    net.advance(secs(61));
    let mut buf = [0u8; 8];
    assert_eq!(
        net.server.receive(&mut s, &mut buf),
        Err(nb::Error::Other(Error::ConnectionReset))
    );
}

#[test]
fn a_vanished_peer_is_timed_out_accepted_or_not() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, Some(ListenConfig::new(1, 3)));
    let (_c1, mut s1) = connected_pair(&mut net, &mut l, 80);
    let _c2 = net.connect(80, LIMIT).unwrap(); // never accepted
    net.advance(ms(10));
    assert_eq!(net.server.pool_stats().pending, 1);

    net.wire.set_link_up(false); // the client's side goes dark
    net.advance(secs(90));
    let st = net.server.pool_stats();
    assert_eq!(st.pending, 0, "unaccepted connection reclaimed: {st:?}");
    let mut buf = [0u8; 8];
    assert_eq!(
        net.server.receive(&mut s1, &mut buf),
        Err(nb::Error::Other(Error::ConnectionReset))
    );
    net.server.close(s1).unwrap();
    net.poll();
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.closing, st.pending), (0, 0, 0), "{st:?}");
}
