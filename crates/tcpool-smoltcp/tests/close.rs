//! End of stream, graceful close, abort and reset, and when a closed socket
//! goes back to the pool.

mod common;

use common::*;
use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind};
use tcpool_smoltcp::sim::{SimConfig, SimNet};
use tcpool_smoltcp::{Config, Error, ListenConfig, TcpState};

#[test]
fn data_then_fin_is_fully_delivered_before_end_of_stream() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);

    // The client sends and closes at once, before the server reads anything.
    let data = pattern(3000, 1);
    assert_eq!(net.client.send(&mut c, &data), Ok(3000));
    net.client.close(c).unwrap();
    assert!(net.run_until(LIMIT, |net| {
        net.server.socket_state(&s) == Some(TcpState::CloseWait)
    }));
    // CLOSE-WAIT: the FIN is in, but the data is still buffered. This is
    // not the end of the stream yet.
    assert_eq!(net.server.recv_queue(&s), 3000);
    let mut buf = [0u8; 1000];
    assert_eq!(net.server.receive(&mut s, &mut buf), Ok(1000));
    assert_eq!(&buf[..], &data[..1000]);

    let rest = read_to_end(&mut net, Who::Server, &mut s);
    assert_eq!(rest.end, Ok(()));
    assert_eq!(rest.data, &data[1000..]);
    // End of stream is sticky.
    assert_eq!(net.server.receive(&mut s, &mut buf), Ok(0));
    // The write side is still open (half-close).
    assert_eq!(net.server.send(&mut s, b"bye"), Ok(3));
}

#[test]
fn receive_would_block_when_nothing_is_buffered() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (_c, mut s) = connected_pair(&mut net, &mut l, 80);
    let mut buf = [0u8; 16];
    assert_eq!(
        net.server.receive(&mut s, &mut buf),
        Err(nb::Error::WouldBlock)
    );
    assert_eq!(
        net.server.receive(&mut s, &mut []),
        Err(nb::Error::WouldBlock)
    );
}

#[test]
fn send_would_block_when_the_tx_buffer_is_full() {
    let config = SimConfig {
        server_buffers: (1024, 1024),
        client_buffers: (1024, 1024),
        ..SimConfig::default()
    };
    let mut net: SimNet<4, 4> = SimNet::new(config);
    let mut l = listen(&mut net, 80, None);
    let (_c, mut s) = connected_pair(&mut net, &mut l, 80);
    assert_eq!(net.server.send_capacity(&s), 1024);
    assert_eq!(net.server.send(&mut s, &[7; 4096]), Ok(1024));
    assert_eq!(net.server.send(&mut s, b"x"), Err(nb::Error::WouldBlock));
    assert_eq!(net.server.send_capacity(&s), 0);
}

#[test]
fn close_after_data_delivers_everything_then_fin() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);

    // Fill the TX buffer and close at once: the FIN follows the data.
    let data = pattern(4096, 2);
    assert_eq!(net.server.send(&mut s, &data), Ok(4096));
    net.server.close(s).unwrap();
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!(read.end, Ok(()));
    assert_eq!(read.data, data);

    let server = from_server(&net);
    assert!(server.iter().all(|p| !p.flags.rst), "never a RST");
    let fin = server.iter().position(|p| p.flags.fin).expect("a FIN");
    let last_data = server.iter().rposition(|p| p.payload_len > 0).unwrap();
    assert!(fin >= last_data, "FIN after the data");

    // The client closes its side; the server socket goes back to the pool.
    net.client.close(c).unwrap();
    net.advance(secs(1));
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.closing), (0, 0), "{st:?}");
}

#[test]
fn a_closing_socket_returns_to_the_pool_only_after_its_fin_is_sent() {
    // Pool of 2: socket 0 is the accepted connection, socket 1 the re-armed
    // listener. The server closes socket 0 with 4 KiB still unsent (the
    // client's 1 KiB window lets it out slowly). Re-arming socket 0 would
    // call smoltcp's `listen()`, which clears its buffers and loses that
    // data: the pool must not touch it until its FIN has gone out.
    let config = SimConfig {
        client_buffers: (1024, 1024),
        ..SimConfig::default()
    };
    let mut net: SimNet<2, 4> = SimNet::new(config);
    let mut l = listen(&mut net, 80, Some(ListenConfig::new(1, 2)));
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    let data = pattern(4096, 3);
    assert_eq!(net.server.send(&mut s, &data), Ok(4096));
    net.server.close(s).unwrap();
    net.advance(ms(50));
    let st = net.server.pool_stats();
    assert_eq!((st.closing, st.listening, st.free), (1, 1, 0), "{st:?}");

    // A second client takes the listening socket; the listener wants a new
    // one but the closing socket is not available, so a third client waits.
    let (_c2, _s2) = connected_pair(&mut net, &mut l, 80);
    let st = net.server.pool_stats();
    assert_eq!((st.closing, st.listening, st.open), (1, 0, 1), "{st:?}");
    let mut c3 = net.client.socket().unwrap();
    let addr = net.server_addr(80);
    assert_eq!(
        net.client.connect(&mut c3, addr),
        Err(nb::Error::WouldBlock)
    );
    net.advance(secs(2));
    assert_eq!(
        net.client.connect(&mut c3, addr),
        Err(nb::Error::WouldBlock)
    );
    assert_eq!(net.server.pool_stats().closing, 1, "still not reused");

    // The first client reads everything; then the FIN goes out, and only
    // after that does the socket return to the pool and listen again, in
    // time to catch the third client's next SYN.
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!(read.data, data);
    assert_eq!(read.end, Ok(()));
    net.client.close(c).unwrap();
    net.advance(ms(100));
    let st = net.server.pool_stats();
    assert_eq!((st.closing, st.listening), (0, 1), "{st:?}");
    assert!(net.run_until(secs(10), |net| net.client.connect(&mut c3, addr).is_ok()));
    accept(&mut net, &mut l);
}

#[test]
fn abort_sends_rst_and_the_peer_sees_pipe_closed() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, s) = connected_pair(&mut net, &mut l, 80);
    net.wire.clear_capture();
    net.server.abort(s).unwrap();
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!(read.end, Err(Error::ConnectionReset));
    assert_eq!(Error::ConnectionReset.kind(), TcpErrorKind::PipeClosed);
    let server = from_server(&net);
    assert!(server.iter().any(|p| p.flags.rst), "{server:?}");
    assert!(server.iter().all(|p| !p.flags.fin));
    // The aborted socket is back in the pool once its RST is out.
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.closing), (0, 0), "{st:?}");
    // Sending on the reset connection fails the same way.
    assert_eq!(
        net.client.send(&mut c, b"x"),
        Err(nb::Error::Other(Error::ConnectionReset))
    );
}

#[test]
fn data_before_a_peer_reset_is_delivered_then_the_reset() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    assert_eq!(net.client.send(&mut c, b"last words"), Ok(10));
    assert!(net.run_until(LIMIT, |net| net.server.recv_queue(&s) == 10));
    net.client.abort(c).unwrap();
    assert!(net.run_until(LIMIT, |net| {
        net.server.socket_state(&s) == Some(TcpState::Closed)
    }));
    let read = read_to_end(&mut net, Who::Server, &mut s);
    assert_eq!(read.data, b"last words");
    assert_eq!(read.end, Err(Error::ConnectionReset));
    // Closing a reset connection frees its socket at once.
    net.server.close(s).unwrap();
    assert_eq!(net.server.pool_stats().open, 0);
}

#[test]
fn closing_a_listener_closes_its_queued_connections_gracefully() {
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let l = listen(&mut net, 80, None);
    let mut c = net.connect(80, LIMIT).unwrap();
    net.advance(ms(5)); // the client's ACK reaches the server: ESTABLISHED
    net.server.close(l).unwrap();
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!(read.end, Ok(()), "a FIN, not a RST");
    net.client.close(c).unwrap();
    net.advance(secs(1));
    assert_eq!(net.server.pool_stats().free, 4);
}

#[test]
fn closing_a_listener_resets_handshakes_in_progress() {
    // A connection still in SYN-RECEIVED cannot be closed gracefully in
    // smoltcp 0.14 (it would skip its FIN and hang in FIN-WAIT-2), and no
    // one will ever accept it: it is reset, and its socket reclaimed.
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let l = listen(&mut net, 80, None);
    let mut c = net.client.socket().unwrap();
    let addr = net.server_addr(80);
    let _ = net.client.connect(&mut c, addr);
    net.poll();
    net.step(ms(1)); // SYN in, SYN-ACK out
    assert_eq!(net.server.pool_stats().pending, 1);
    net.server.close(l).unwrap();
    let mut result = Err(nb::Error::WouldBlock);
    assert!(net.run_until(LIMIT, |net| {
        result = net.client.connect(&mut c, addr);
        result != Err(nb::Error::WouldBlock)
    }));
    // Depending on what crossed on the wire the client saw a refused
    // handshake or a reset right after it; either way, not a hang.
    let mut buf = [0u8; 4];
    let outcome = match result {
        Ok(()) => read_to_end(&mut net, Who::Client, &mut c).end,
        Err(nb::Error::Other(e)) => Err(e),
        Err(nb::Error::WouldBlock) => unreachable!(),
    };
    assert!(outcome.is_err(), "{outcome:?}");
    let _ = net.client.receive(&mut c, &mut buf);
    net.advance(secs(1));
    assert_eq!(net.server.pool_stats().free, 4);
}

#[test]
fn lingering_close_bounds_a_close_the_peer_never_completes() {
    // The client neither reads nor closes: the server's data and FIN can
    // never all get through (zero window), yet the client answers every
    // probe. After `lingering_close` the server resets and reclaims the
    // socket.
    let config = SimConfig {
        server: Config {
            lingering_close: Some(secs(5)),
            ..Config::new()
        },
        client_buffers: (1024, 1024),
        ..SimConfig::default()
    };
    let mut net: SimNet<4, 4> = SimNet::new(config);
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    assert_eq!(net.server.send(&mut s, &[1; 4096]), Ok(4096));
    net.server.close(s).unwrap();
    net.advance(secs(4));
    assert_eq!(net.server.pool_stats().closing, 1);
    net.advance(secs(2));
    assert_eq!(net.server.pool_stats().closing, 0);
    assert_eq!(net.server.counters().lingering_resets, 1);
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!(read.data.len(), 1024, "what fit in the window");
    assert_eq!(read.end, Err(Error::ConnectionReset));
}

#[test]
fn a_plain_close_neither_drains_input_nor_resets() {
    // `lingering_close: None`: after the server closes, the client's late
    // input is not drained, so its sends stall on the server's full receive
    // window; nothing resets the live connection (no deadline, and the
    // client's window probes keep `timeout` from firing) until the client
    // gives up.
    let config = SimConfig {
        server: Config {
            lingering_close: None,
            ..Config::new()
        },
        ..SimConfig::default()
    };
    let mut net: SimNet<4, 4> = SimNet::new(config);
    let mut l = listen(&mut net, 80, None);
    let (mut c, s) = connected_pair(&mut net, &mut l, 80);
    net.server.close(s).unwrap();
    let data = pattern(64 * 1024, 5);
    let mut sent = 0;
    net.run_until(secs(120), |net| {
        while let Ok(n) = net.client.send(&mut c, &data[sent..]) {
            sent += n;
        }
        sent == data.len()
    });
    // The server's 4 KiB receive buffer and the client's 4 KiB send buffer.
    assert!(
        sent <= 2 * 4096,
        "sent {sent}: the server drained its input"
    );
    let st = net.server.pool_stats();
    assert_eq!(st.closing, 1, "{st:?}");
    assert_eq!(net.server.counters().lingering_resets, 0);
    assert!(net.wire.captured().iter().all(|p| !p.flags.rst));
    net.client.abort(c).unwrap();
    net.advance(secs(1));
    assert_eq!(net.server.pool_stats().closing, 0);
}

#[test]
fn a_closing_connection_discards_late_input_instead_of_stalling() {
    // Lingering close: after the server closes, the client keeps sending.
    // The server throws it away (it has no reader any more) so the client's
    // sends never stall on a closed window, and then the client's own close
    // completes the exchange with FINs only, no RST.
    let mut net: SimNet<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, s) = connected_pair(&mut net, &mut l, 80);
    net.server.close(s).unwrap();
    send_all(&mut net, Who::Client, &mut c, &pattern(64 * 1024, 4));
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!(read.end, Ok(()));
    net.client.close(c).unwrap();
    net.advance(secs(1));
    assert!(net.wire.captured().iter().all(|p| !p.flags.rst));
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.closing), (0, 0), "{st:?}");
}
