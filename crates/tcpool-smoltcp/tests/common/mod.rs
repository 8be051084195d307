//! Helpers shared by the integration tests: blocking-style operations over a
//! `SimNet`, written against the `embedded-nal` traits.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use embedded_nal::{TcpClientStack, TcpFullStack};
use tcpool_smoltcp::sim::{PacketInfo, SimNet};
use tcpool_smoltcp::{Error, ListenConfig, TcpHandle};

pub type Net<const S: usize, const C: usize> = SimNet<S, C>;
pub type Nal = dyn TcpClientStack<TcpSocket = TcpHandle, Error = Error>;

pub const LIMIT: Duration = Duration::from_secs(30);

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Server,
    Client,
}

pub fn stack<const S: usize, const C: usize>(net: &mut Net<S, C>, who: Who) -> &mut Nal {
    match who {
        Who::Server => &mut net.server,
        Who::Client => &mut net.client,
    }
}

pub fn listen<const S: usize, const C: usize>(
    net: &mut Net<S, C>,
    port: u16,
    config: Option<ListenConfig>,
) -> TcpHandle {
    let mut l = net.server.socket().expect("socket");
    net.server.bind(&mut l, port).expect("bind");
    match config {
        Some(c) => net.server.listen_with(&mut l, c).expect("listen"),
        None => net.server.listen(&mut l).expect("listen"),
    }
    l
}

pub fn accept<const S: usize, const C: usize>(
    net: &mut Net<S, C>,
    listener: &mut TcpHandle,
) -> (TcpHandle, SocketAddr) {
    let mut got = None;
    let ok = net.run_until(LIMIT, |net| match net.server.accept(listener) {
        Ok(c) => {
            got = Some(c);
            true
        }
        Err(nb::Error::WouldBlock) => false,
        Err(nb::Error::Other(e)) => panic!("accept: {e}"),
    });
    assert!(ok, "no connection to accept");
    got.unwrap()
}

/// A client connected to `port` and the server side of it, accepted.
pub fn connected_pair<const S: usize, const C: usize>(
    net: &mut Net<S, C>,
    listener: &mut TcpHandle,
    port: u16,
) -> (TcpHandle, TcpHandle) {
    let c = net.connect(port, LIMIT).expect("connect");
    let (s, _) = accept(net, listener);
    (c, s)
}

/// Send all of `data`, running the network while the TX buffer is full.
pub fn send_all<const S: usize, const C: usize>(
    net: &mut Net<S, C>,
    who: Who,
    h: &mut TcpHandle,
    data: &[u8],
) {
    let mut off = 0;
    let ok = net.run_until(LIMIT, |net| {
        while off < data.len() {
            match stack(net, who).send(h, &data[off..]) {
                Ok(n) => off += n,
                Err(nb::Error::WouldBlock) => return false,
                Err(nb::Error::Other(e)) => panic!("send: {e}"),
            }
        }
        true
    });
    assert!(ok, "send_all stalled at {off}/{}", data.len());
}

/// What a reader saw: the bytes, and how the stream ended.
#[derive(Debug)]
pub struct Read {
    pub data: Vec<u8>,
    /// `Ok(())`: `Ok(0)` (end of stream). `Err(e)`: the error.
    pub end: Result<(), Error>,
}

/// Read until end of stream or error.
pub fn read_to_end<const S: usize, const C: usize>(
    net: &mut Net<S, C>,
    who: Who,
    h: &mut TcpHandle,
) -> Read {
    let mut data = Vec::new();
    let mut end = None;
    let mut buf = [0u8; 1500];
    let ok = net.run_until(LIMIT, |net| {
        loop {
            match stack(net, who).receive(h, &mut buf) {
                Ok(0) => {
                    end = Some(Ok(()));
                    return true;
                }
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(nb::Error::WouldBlock) => return false,
                Err(nb::Error::Other(e)) => {
                    end = Some(Err(e));
                    return true;
                }
            }
        }
    });
    assert!(
        ok,
        "read_to_end: no end of stream after {} bytes",
        data.len()
    );
    Read {
        data,
        end: end.unwrap(),
    }
}

/// Read exactly `n` bytes.
pub fn read_exact<const S: usize, const C: usize>(
    net: &mut Net<S, C>,
    who: Who,
    h: &mut TcpHandle,
    n: usize,
) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 1500];
    let ok = net.run_until(LIMIT, |net| {
        while data.len() < n {
            let want = (n - data.len()).min(buf.len());
            match stack(net, who).receive(h, &mut buf[..want]) {
                Ok(0) => panic!("unexpected end of stream after {} bytes", data.len()),
                Ok(k) => data.extend_from_slice(&buf[..k]),
                Err(nb::Error::WouldBlock) => return false,
                Err(nb::Error::Other(e)) => panic!("receive: {e}"),
            }
        }
        true
    });
    assert!(ok, "read_exact: got {}/{n}", data.len());
    data
}

/// A deterministic test pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Segments of the capture sent by the server / the client.
pub fn from_server<const S: usize, const C: usize>(net: &Net<S, C>) -> Vec<PacketInfo> {
    let ip = net.server_ip();
    net.wire
        .captured()
        .into_iter()
        .filter(|p| p.src.ip() == ip)
        .collect()
}

pub fn from_client<const S: usize, const C: usize>(net: &Net<S, C>) -> Vec<PacketInfo> {
    let ip = net.client_ip();
    net.wire
        .captured()
        .into_iter()
        .filter(|p| p.src.ip() == ip)
        .collect()
}
