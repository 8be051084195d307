//! Bulk transfer over a lossy, reordering, duplicating wire: every byte
//! arrives, in order, exactly once.

mod common;

use common::*;
use embedded_nal::TcpClientStack;
use tcpool_smoltcp::sim::{SimConfig, SimNet, WireConfig};

const MB: usize = 1024 * 1024;

/// The client streams `len` bytes to the server, which echoes them back;
/// then both close. Returns the bytes the server and the client received.
fn echo_through(seed: u64, loss: f64, len: usize) -> (Vec<u8>, Vec<u8>, SimNet<2, 2>) {
    let config = SimConfig {
        wire: WireConfig {
            duplicate: 0.01,
            capture: false,
            ..WireConfig::lossy(seed, loss)
        },
        server_buffers: (16 * 1024, 16 * 1024),
        client_buffers: (16 * 1024, 16 * 1024),
        ..SimConfig::default()
    };
    let mut net: SimNet<2, 2> = SimNet::new(config);
    let mut l = listen(&mut net, 9, None);
    let (c, s) = connected_pair(&mut net, &mut l, 9);
    let data = pattern(len, seed as u8);

    let mut sent = 0;
    let mut at_server = Vec::with_capacity(len);
    let mut echo_off = 0;
    let mut at_client = Vec::with_capacity(len);
    let (mut c, mut s) = (Some(c), Some(s));
    let mut buf = [0u8; 2048];
    let done = net.run_until(secs(3600), |net| {
        if let Some(c) = c.as_mut() {
            // Client: stream the data, read the echo.
            while sent < len {
                match net.client.send(c, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(nb::Error::WouldBlock) => break,
                    Err(e) => panic!("client send: {e:?}"),
                }
            }
            loop {
                match net.client.receive(c, &mut buf) {
                    Ok(0) => panic!("client: early end of stream"),
                    Ok(n) => at_client.extend_from_slice(&buf[..n]),
                    Err(nb::Error::WouldBlock) => break,
                    Err(e) => panic!("client receive: {e:?}"),
                }
            }
        }
        if at_client.len() == len && c.is_some() {
            net.client.close(c.take().unwrap()).unwrap();
        }
        if let Some(sock) = s.as_mut() {
            // Server: echo what it reads; close after the client's FIN.
            let mut eof = false;
            loop {
                match net.server.receive(sock, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => at_server.extend_from_slice(&buf[..n]),
                    Err(nb::Error::WouldBlock) => break,
                    Err(e) => panic!("server receive: {e:?}"),
                }
            }
            while echo_off < at_server.len() {
                match net.server.send(sock, &at_server[echo_off..]) {
                    Ok(n) => echo_off += n,
                    Err(nb::Error::WouldBlock) => break,
                    Err(e) => panic!("server send: {e:?}"),
                }
            }
            if eof {
                net.server.close(s.take().unwrap()).unwrap();
            }
        }
        s.is_none()
    });
    assert!(done, "seed {seed}: transfer did not finish");
    // Both sides finish their close, and every socket returns to its pool.
    net.advance(secs(60));
    assert_eq!(
        net.server.pool_stats().free + net.server.pool_stats().listening,
        2
    );
    assert_eq!(net.client.pool_stats().free, 2);
    (at_server, at_client, net)
}

fn check(seed: u64, loss: f64) {
    let (at_server, at_client, net) = echo_through(seed, loss, MB);
    let data = pattern(MB, seed as u8);
    assert!(at_server == data, "seed {seed}: server stream differs");
    assert!(at_client == data, "seed {seed}: echoed stream differs");
    let stats = net.wire.stats();
    assert!(
        stats.lost > 0 && stats.reordered > 0 && stats.duplicated > 0,
        "{stats:?}"
    );
}

#[test]
fn the_same_seed_replays_the_same_faults() {
    let run = |seed| {
        let (_, _, net) = echo_through(seed, 0.05, 64 * 1024);
        (net.wire.stats(), net.now())
    };
    let (a, b, other) = (run(7), run(7), run(8));
    assert_eq!(a, b);
    assert!(a.0.lost > 0 && a.0.reordered > 0, "{:?}", a.0);
    assert_ne!(a, other);
}

#[test]
fn one_megabyte_each_way_over_1_percent_loss_and_reordering() {
    check(1, 0.01);
}

#[test]
fn one_megabyte_each_way_over_3_percent_loss_and_reordering() {
    check(2, 0.03);
}

#[test]
fn one_megabyte_each_way_over_5_percent_loss_and_reordering() {
    check(3, 0.05);
}
