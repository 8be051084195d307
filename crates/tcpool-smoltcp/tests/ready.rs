//! `Stack::ready` (readiness for event loops) and `Stack::shutdown_write`
//! (half-close).

mod common;

use common::*;
use embedded_nal::TcpClientStack;
use tcpool_core::Interest;
use tcpool_smoltcp::Error;
use tcpool_smoltcp::sim::{SimConfig, SimNet};

#[test]
fn listener_is_readable_only_with_an_established_connection_to_accept() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    assert_eq!(net.server.ready(&l), Interest::NONE);
    let _c = net.connect(80, LIMIT).expect("connect");
    // The client is established; the server once the client's ACK arrives.
    assert!(
        !net.server.ready(&l).readable,
        "ready before the handshake ended"
    );
    assert!(net.run_until(LIMIT, |net| net.server.ready(&l).readable));
    let (_s, _) = accept(&mut net, &mut l);
    assert_eq!(net.server.ready(&l), Interest::NONE);
}

#[test]
fn connection_readiness_follows_data_end_of_stream_and_room() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    // Established, nothing buffered: writable only.
    assert_eq!(net.server.ready(&s), Interest::WRITABLE);
    send_all(&mut net, Who::Client, &mut c, b"ping");
    net.run_until(LIMIT, |net| net.server.ready(&s).readable);
    assert_eq!(read_exact(&mut net, Who::Server, &mut s, 4), b"ping");
    assert!(!net.server.ready(&s).readable);
    // The peer's FIN makes it readable (end of stream to report).
    net.client.close(c).unwrap();
    assert!(net.run_until(LIMIT, |net| net.server.ready(&s).readable));
    assert_eq!(read_to_end(&mut net, Who::Server, &mut s).end, Ok(()));
    // A full TX buffer is not writable.
    let big = vec![7u8; 64 * 1024];
    let mut queued = 0;
    while let Ok(n) = net.server.send(&mut s, &big) {
        queued += n;
    }
    assert!(queued > 0);
    assert!(!net.server.ready(&s).writable);
}

#[test]
fn shutdown_write_sends_a_fin_and_keeps_reading() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut l = listen(&mut net, 80, None);
    let (mut c, mut s) = connected_pair(&mut net, &mut l, 80);
    send_all(&mut net, Who::Client, &mut c, b"request");
    net.client.shutdown_write(&c).unwrap();
    // The server gets the request, then end of stream.
    let read = read_to_end(&mut net, Who::Server, &mut s);
    assert_eq!((read.data.as_slice(), read.end), (&b"request"[..], Ok(())));
    // The client can still receive the reply, then the server's FIN.
    send_all(&mut net, Who::Server, &mut s, b"reply");
    net.server.close(s).unwrap();
    let read = read_to_end(&mut net, Who::Client, &mut c);
    assert_eq!((read.data.as_slice(), read.end), (&b"reply"[..], Ok(())));
    net.client.close(c).unwrap();
    net.advance(secs(60));
    assert_eq!(net.client.pool_stats().free, 4);
    assert!(from_client(&net).iter().all(|p| !p.flags.rst));
    assert!(from_server(&net).iter().all(|p| !p.flags.rst));
}

#[test]
fn shutdown_write_needs_an_established_connection() {
    let mut net: Net<4, 4> = SimNet::new(SimConfig::default());
    let mut c = net.client.socket().unwrap();
    assert_eq!(net.client.shutdown_write(&c), Err(Error::InvalidState));
    let addr = net.server_addr(80);
    let _ = net.client.connect(&mut c, addr);
    assert_eq!(net.client.shutdown_write(&c), Err(Error::InvalidState));
}
