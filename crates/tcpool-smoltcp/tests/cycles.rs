//! Many short connections: connect, send, close, over and over. Nothing is
//! lost and no socket leaks, on a clean and on a lossy wire.

mod common;

use common::*;
use embedded_nal::TcpClientStack;
use tcpool_smoltcp::sim::{SimConfig, SimNet, WireConfig};

/// `cycles` clients, each connecting, sending a numbered message and closing
/// at once; the server reads each to end of stream and closes.
fn cycles(config: SimConfig, cycles: usize) -> SimNet<4, 4> {
    let mut net: SimNet<4, 4> = SimNet::new(config);
    let mut l = listen(&mut net, 80, None);
    for i in 0..cycles {
        let msg = format!("message {i:05}");
        let mut c = net
            .connect(80, LIMIT)
            .unwrap_or_else(|e| panic!("cycle {i}: {e:?}"));
        assert_eq!(net.client.send(&mut c, msg.as_bytes()), Ok(msg.len()));
        net.client.close(c).unwrap();
        let (mut s, _) = accept(&mut net, &mut l);
        let read = read_to_end(&mut net, Who::Server, &mut s);
        assert_eq!(read.end, Ok(()), "cycle {i}");
        assert_eq!(read.data, msg.as_bytes(), "cycle {i}");
        net.server.close(s).unwrap();
    }
    net.advance(secs(60));
    let st = net.server.pool_stats();
    assert_eq!((st.open, st.pending, st.closing), (0, 0, 0), "{st:?}");
    assert_eq!(st.free + st.listening, 4);
    let st = net.client.pool_stats();
    assert_eq!(st.free, 4, "{st:?}");
    net
}

#[test]
fn five_hundred_connect_send_close_cycles_lose_nothing() {
    let net = cycles(SimConfig::default(), 500);
    assert!(net.wire.captured().iter().all(|p| !p.flags.rst));
    assert_eq!(net.server.counters().accepted, 500);
}

#[test]
fn two_hundred_cycles_over_a_lossy_wire_lose_nothing() {
    let config = SimConfig {
        wire: WireConfig {
            duplicate: 0.02,
            ..WireConfig::lossy(7, 0.03)
        },
        ..SimConfig::default()
    };
    cycles(config, 200);
}
