//! UDP (client side) and DNS, passed through to std-embedded-nal unchanged:
//! there its plain wrapping of `std::net` is right, so [`StdStack`] can stand
//! in for `std_embedded_nal::Stack` in code that also needs these.
//!
//! Not passed through: `UdpFullStack`, whose `bind` always binds `[::]` (the
//! same gap as its TCP `bind`; tcpool has no use for a UDP server yet).

use crate::StdStack;
use core::net::{IpAddr, SocketAddr};
use embedded_nal::{AddrType, Dns, UdpClientStack};
use std::io;

/// The UDP socket of [`StdStack`]: std-embedded-nal's, unchanged.
pub type UdpSocket = <std_embedded_nal::Stack as UdpClientStack>::UdpSocket;

impl UdpClientStack for StdStack {
    type UdpSocket = UdpSocket;
    type Error = io::Error;

    fn socket(&mut self) -> io::Result<UdpSocket> {
        std_embedded_nal::Stack.socket()
    }

    fn connect(&mut self, socket: &mut UdpSocket, remote: SocketAddr) -> io::Result<()> {
        std_embedded_nal::Stack.connect(socket, remote)
    }

    fn send(&mut self, socket: &mut UdpSocket, buffer: &[u8]) -> nb::Result<(), io::Error> {
        std_embedded_nal::Stack.send(socket, buffer)
    }

    fn receive(
        &mut self,
        socket: &mut UdpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), io::Error> {
        std_embedded_nal::Stack.receive(socket, buffer)
    }

    fn close(&mut self, socket: UdpSocket) -> io::Result<()> {
        UdpClientStack::close(&mut std_embedded_nal::Stack, socket)
    }
}

/// Name resolution through the system resolver (`getaddrinfo`), which
/// **blocks**; reverse lookups are not supported (std has no call for them).
impl Dns for StdStack {
    type Error = io::Error;

    fn get_host_by_name(
        &mut self,
        hostname: &str,
        addr_type: AddrType,
    ) -> nb::Result<IpAddr, io::Error> {
        std_embedded_nal::Stack.get_host_by_name(hostname, addr_type)
    }

    fn get_host_by_address(
        &mut self,
        addr: IpAddr,
        result: &mut [u8],
    ) -> nb::Result<usize, io::Error> {
        std_embedded_nal::Stack.get_host_by_address(addr, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn udp_client_round_trips_on_loopback() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut stack = StdStack::default();
        let mut sock = UdpClientStack::socket(&mut stack).unwrap();
        UdpClientStack::connect(&mut stack, &mut sock, server.local_addr().unwrap()).unwrap();
        nb::block!(UdpClientStack::send(&mut stack, &mut sock, b"ping")).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        server.send_to(b"pong", from).unwrap();
        let start = Instant::now();
        let n = loop {
            match UdpClientStack::receive(&mut stack, &mut sock, &mut buf) {
                Ok((n, _)) => break n,
                Err(nb::Error::WouldBlock) => {
                    assert!(start.elapsed() < Duration::from_secs(5), "no reply");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(nb::Error::Other(e)) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"pong");
        UdpClientStack::close(&mut stack, sock).unwrap();
    }

    #[test]
    fn dns_resolves_numeric_addresses_without_a_resolver() {
        let mut stack = StdStack::default();
        let ip = stack
            .get_host_by_name("127.0.0.1", AddrType::Either)
            .unwrap();
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
    }
}
