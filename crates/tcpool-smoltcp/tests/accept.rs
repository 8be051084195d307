//! Listening, accepting, connecting: the emulated backlog and the pool.

mod common;

use common::*;
use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use tcpool_smoltcp::sim::{SimConfig, SimNet};
use tcpool_smoltcp::{Error, ListenConfig, Overflow, TcpState};

#[test]
fn echo_round_trip() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 7, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 7);

    send_all(&mut net, Who::Client, &mut c, b"hello, pool");
    let got = read_exact(&mut net, Who::Server, &mut s, 11);
    send_all(&mut net, Who::Server, &mut s, &got);
    assert_eq!(
        read_exact(&mut net, Who::Client, &mut c, 11),
        b"hello, pool"
    );
}

#[test]
fn accept_returns_the_peer_address() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let c = net.connect(80, LIMIT).unwrap();
    let (s, peer) = accept(&mut net, &mut l);
    assert_eq!(Some(peer), net.client.local_addr(&c));
    assert_eq!(peer.ip(), net.client_ip());
    assert_eq!(net.server.peer_addr(&s), Some(peer));
    assert_eq!(net.server.local_addr(&s), Some(net.server_addr(80)));
}

#[test]
fn accept_would_block_until_a_handshake_completes() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    assert_eq!(
        net.server.accept(&mut l).unwrap_err(),
        nb::Error::WouldBlock
    );
    let mut c = net.client.socket().unwrap();
    let addr = net.server_addr(80);
    assert_eq!(net.client.connect(&mut c, addr), Err(nb::Error::WouldBlock));
    net.poll(); // the SYN leaves at t=0
    // SYN reaches the server (1 ms), SYN-ACK is on its way back: the server
    // socket is SYN-RECEIVED, which accept does not hand over.
    net.step(ms(1));
    assert_eq!(net.server.pool_stats().pending, 1);
    assert_eq!(
        net.server.accept(&mut l).unwrap_err(),
        nb::Error::WouldBlock
    );
    let (_s, peer) = accept(&mut net, &mut l);
    assert_eq!(Some(peer), net.client.local_addr(&c));
    assert_eq!(net.client.connect(&mut c, addr), Ok(()));
}

#[test]
fn backlog_of_k_accepts_k_simultaneous_connects_in_arrival_order() {
    const K: u8 = 3;
    let mut net: SimNet<8, 8> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, Some(ListenConfig::new(K, K)));
    assert_eq!(net.server.pool_stats().listening, K as usize);

    let addr = net.server_addr(80);
    let mut clients: Vec<_> = (0..K).map(|_| net.client.socket().unwrap()).collect();
    for c in clients.iter_mut() {
        assert_eq!(net.client.connect(c, addr), Err(nb::Error::WouldBlock));
    }
    let ok = net.run_until(LIMIT, |net| {
        clients
            .iter_mut()
            .all(|c| net.client.connect(c, addr).is_ok())
    });
    assert!(ok, "all K clients connect");
    let peers: Vec<_> = (0..K).map(|_| accept(&mut net, &mut l).1).collect();
    let expected: Vec<_> = clients
        .iter()
        .map(|c| net.client.local_addr(c).unwrap())
        .collect();
    assert_eq!(peers, expected, "first come, first accepted");
    assert_eq!(
        net.server.accept(&mut l).unwrap_err(),
        nb::Error::WouldBlock
    );
    // Accepting freed the backlog: K sockets listen again.
    net.poll();
    assert_eq!(net.server.pool_stats().listening, K as usize);
}

#[test]
fn a_listener_is_rearmed_as_soon_as_it_catches_a_syn() {
    // One listening socket, room for four queued: four SYNs arriving in the
    // same instant (one device queue, one poll) are all caught, because a
    // fresh listener is armed after each packet, before the next one is
    // processed (and long before the handshake completes).
    let mut net: SimNet<8, 8> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, Some(ListenConfig::new(1, 4)));
    let addr = net.server_addr(80);
    let mut clients: Vec<_> = (0..4).map(|_| net.client.socket().unwrap()).collect();
    for c in clients.iter_mut() {
        let _ = net.client.connect(c, addr);
    }
    net.poll(); // the four SYNs leave at t=0...
    net.step(ms(1)); // ...and arrive together at t=1ms
    let st = net.server.pool_stats();
    assert_eq!((st.pending, st.listening), (4, 0), "{st:?}");
    assert!(net.run_until(LIMIT, |net| {
        clients
            .iter_mut()
            .all(|c| net.client.connect(c, addr).is_ok())
    }));
    for _ in 0..4 {
        accept(&mut net, &mut l);
    }
    assert!(from_server(&net).iter().all(|p| !p.flags.rst));
}

#[test]
fn more_connects_than_the_backlog_wait_and_are_served_after_an_accept() {
    // backlog 2 / max_queued 2 and nobody accepting: two clients complete
    // their handshake and wait in the backlog; the third SYN finds no
    // listening socket and is dropped (Overflow::Hold, the default), so that
    // client keeps retransmitting instead of being refused. Once the
    // application accepts, a socket listens again and catches the next
    // retransmission.
    let mut net: SimNet<8, 8> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, Some(ListenConfig::new(2, 2)));
    let addr = net.server_addr(80);
    let mut clients: Vec<_> = (0..3).map(|_| net.client.socket().unwrap()).collect();
    for c in clients.iter_mut() {
        let _ = net.client.connect(c, addr);
    }
    net.advance(secs(3));
    assert_eq!(net.client.connect(&mut clients[0], addr), Ok(()));
    assert_eq!(net.client.connect(&mut clients[1], addr), Ok(()));
    assert_eq!(
        net.client.connect(&mut clients[2], addr),
        Err(nb::Error::WouldBlock),
        "the third client waits"
    );
    assert!(
        net.server.counters().held_syns >= 2,
        "SYN and retransmissions held"
    );
    assert!(
        net.wire.captured().iter().all(|p| !p.flags.rst),
        "no refusal"
    );

    let (_s1, p1) = accept(&mut net, &mut l);
    assert_eq!(Some(p1), net.client.local_addr(&clients[0]));
    let third = &mut clients[2];
    assert!(net.run_until(secs(10), |net| net.client.connect(third, addr).is_ok()));
    accept(&mut net, &mut l);
    let (_s3, p3) = accept(&mut net, &mut l);
    assert_eq!(Some(p3), net.client.local_addr(&clients[2]));
}

#[test]
fn more_connects_than_the_backlog_are_refused_with_rst_when_so_configured() {
    // The same with Overflow::Refuse: smoltcp's RST goes out, and the third
    // client sees "connection refused" at once. Once the application
    // accepts, the port listens again.
    let mut net: SimNet<8, 8> = SimNet::new(SimConfig::default());
    let refuse = ListenConfig::new(2, 2).with_overflow(Overflow::Refuse);
    let mut l = listen(&mut net, 80, Some(refuse));
    let addr = net.server_addr(80);
    let mut clients: Vec<_> = (0..3).map(|_| net.client.socket().unwrap()).collect();
    for c in clients.iter_mut() {
        let _ = net.client.connect(c, addr);
    }
    let refused_port = net.client.local_addr(&clients[2]);
    let mut results = [Err(nb::Error::WouldBlock); 3];
    net.run_until(LIMIT, |net| {
        for (c, r) in clients.iter_mut().zip(results.iter_mut()) {
            if *r == Err(nb::Error::WouldBlock) {
                *r = net.client.connect(c, addr);
            }
        }
        !results.contains(&Err(nb::Error::WouldBlock))
    });
    assert_eq!(results[0], Ok(()));
    assert_eq!(results[1], Ok(()));
    assert_eq!(results[2], Err(nb::Error::Other(Error::ConnectionRefused)));
    assert!(
        net.now().as_millis() < 100,
        "refused at once, not after a timeout"
    );
    let rst = from_server(&net)
        .into_iter()
        .find(|p| p.flags.rst)
        .expect("a RST");
    assert_eq!(Some(rst.dst), refused_port);

    // The two queued connections are intact, and accepting re-arms the port.
    accept(&mut net, &mut l);
    accept(&mut net, &mut l);
    let late = net.connect(80, LIMIT);
    assert!(late.is_ok(), "{late:?}");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let r = net.connect(81, LIMIT);
    assert_eq!(r.unwrap_err(), nb::Error::Other(Error::ConnectionRefused));
    assert_eq!(Error::ConnectionRefused.kind(), TcpErrorKind::Other);
    // The failed socket went back to the client's pool.
    net.poll();
    assert_eq!(net.client.pool_stats().free, 4);
}

#[test]
fn out_of_sockets_is_an_error_not_a_panic() {
    let mut net: SimNet<2, 4> = SimNet::new(SimConfig::default());
    let a = net.server.socket().unwrap();
    let _b = net.server.socket().unwrap();
    assert_eq!(net.server.socket().unwrap_err(), Error::OutOfSockets);
    assert_eq!(Error::OutOfSockets.kind(), TcpErrorKind::Other);
    net.server.close(a).unwrap();
    let _c = net
        .server
        .socket()
        .expect("a closed reservation is reusable at once");
    assert_eq!(net.server.socket().unwrap_err(), Error::OutOfSockets);
}

#[test]
fn a_full_pool_refuses_new_clients_and_never_drops_established_ones() {
    // Pool of 2, both sockets connections: the listener cannot re-arm while
    // the pool is exhausted, so a third client is refused (Overflow::Refuse);
    // the established connections are untouched.
    let mut net: SimNet<2, 4> = SimNet::new(SimConfig::default());
    let refuse = ListenConfig::new(1, 2).with_overflow(Overflow::Refuse);
    let mut l = listen(&mut net, 80, Some(refuse));
    let (mut c1, mut s1) = connected_pair(&mut net, &mut l, 80);
    // Socket 1 re-armed after the first SYN; the second client takes it.
    let (mut c2, _s2) = connected_pair(&mut net, &mut l, 80);
    assert_eq!(net.server.pool_stats().free, 0);
    assert_eq!(net.server.pool_stats().listening, 0);
    let r = net.connect(80, LIMIT);
    assert_eq!(r.unwrap_err(), nb::Error::Other(Error::ConnectionRefused));
    assert_eq!(net.server.socket().unwrap_err(), Error::OutOfSockets);

    send_all(&mut net, Who::Client, &mut c1, b"still here");
    assert_eq!(
        read_exact(&mut net, Who::Server, &mut s1, 10),
        b"still here"
    );
    assert_eq!(net.client.socket_state(&c2), Some(TcpState::Established));
    let _ = &mut c2;
}

#[test]
fn listening_twice_on_a_port_is_address_in_use_and_rebinding_after_close_works() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let l = listen(&mut net, 80, None);
    let mut dup = net.server.socket().unwrap();
    net.server.bind(&mut dup, 80).unwrap();
    assert_eq!(net.server.listen(&mut dup), Err(Error::AddressInUse));
    net.server.close(dup).unwrap();

    net.server.close(l).unwrap();
    assert_eq!(
        net.server.pool_stats().free,
        4,
        "listening sockets free at once"
    );
    assert_eq!(
        net.connect(80, LIMIT).unwrap_err(),
        nb::Error::Other(Error::ConnectionRefused)
    );
    // Restart: the same port is usable right away.
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    send_all(&mut net, Who::Server, &mut s, b"back");
    assert_eq!(read_exact(&mut net, Who::Client, &mut c, 4), b"back");
}

#[test]
fn handle_misuse_is_invalid_state() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let mut buf = [0u8; 4];
    assert_eq!(
        net.server.receive(&mut l, &mut buf),
        Err(nb::Error::Other(Error::InvalidState))
    );
    assert_eq!(
        net.server.send(&mut l, b"x"),
        Err(nb::Error::Other(Error::InvalidState))
    );
    assert_eq!(net.server.bind(&mut l, 81), Err(Error::InvalidState));
    let mut s = net.server.socket().unwrap();
    assert_eq!(
        net.server.accept(&mut s).unwrap_err(),
        nb::Error::Other(Error::InvalidState)
    );
    assert_eq!(
        net.server.listen(&mut s),
        Err(Error::Unaddressable),
        "port 0"
    );
    assert!(l.is_listener() && !s.is_listener());
}

#[test]
fn poll_delay_is_none_when_idle_and_follows_timers() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let _l = listen(&mut net, 80, None);
    let now = net.now();
    assert_eq!(net.server.poll_delay(now), None, "listening needs no timer");
    let mut c = net.client.socket().unwrap();
    let addr = net.server_addr(80);
    let _ = net.client.connect(&mut c, addr);
    assert_eq!(
        net.client.poll_delay(now),
        Some(std::time::Duration::ZERO),
        "a SYN to send: poll now"
    );
    net.client.poll(now);
    let d = net
        .client
        .poll_delay(now)
        .expect("SYN retransmission timer");
    assert!(d > ms(0) && d <= secs(10), "{d:?}");
}
