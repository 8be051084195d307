//! Two stacks, one wire, one clock.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::vec;
use std::vec::Vec;

use embedded_nal::TcpClientStack;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tcpool_core::Instant;

use super::wire::{SimDevice, Wire, WireConfig};
use crate::stack::time::to_smol;
use crate::{Config, Error, Stack, TcpHandle};

/// A [`Stack`] over a simulated device, with `Vec`-backed socket buffers.
pub type SimStack<const N: usize> = Stack<'static, SimDevice, N>;

/// How to build a [`SimNet`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// The link between the two stacks.
    pub wire: WireConfig,
    /// The server stack's settings.
    pub server: Config,
    /// The client stack's settings.
    pub client: Config,
    /// Server socket buffers (RX, TX), bytes per socket.
    pub server_buffers: (usize, usize),
    /// Client socket buffers (RX, TX), bytes per socket.
    pub client_buffers: (usize, usize),
    /// The server's address (a /24 shared with the client).
    pub server_ip: Ipv4Addr,
    /// The client's address.
    pub client_ip: Ipv4Addr,
}

impl SimConfig {
    /// A perfect 1 ms link, default stack settings, 4 KiB buffers,
    /// server 10.0.0.1, client 10.0.0.2.
    pub const fn new() -> Self {
        SimConfig {
            wire: WireConfig::new(),
            server: Config::new(),
            client: Config::new(),
            server_buffers: (4096, 4096),
            client_buffers: (4096, 4096),
            server_ip: Ipv4Addr::new(10, 0, 0, 1),
            client_ip: Ipv4Addr::new(10, 0, 0, 2),
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new()
    }
}

/// A server stack with `S` pool sockets and a client stack with `C`, joined
/// by a [`Wire`], on a simulated clock.
///
/// The clock only moves when asked ([`step`](Self::step),
/// [`run_until`](Self::run_until), [`advance`](Self::advance)), and then
/// jumps straight to the next event (a packet arriving, a TCP timer), so
/// timeouts of minutes cost nothing. Both stacks are public: drive the
/// server through `net.server` and clients through `net.client`, with the
/// `embedded-nal` traits.
pub struct SimNet<const S: usize, const C: usize> {
    /// The server side (wire end A).
    pub server: SimStack<S>,
    /// The client side (wire end B).
    pub client: SimStack<C>,
    /// The link (filter, capture, counters, fault model).
    pub wire: Wire,
    now: Instant,
    server_ip: Ipv4Addr,
    client_ip: Ipv4Addr,
}

impl<const S: usize, const C: usize> SimNet<S, C> {
    /// Build both stacks and the wire, at time zero.
    pub fn new(config: SimConfig) -> Self {
        let (wire, a, b) = Wire::new(config.wire);
        let seed = config.wire.seed;
        let server = build_stack(
            a,
            config.server_ip,
            config.server,
            config.server_buffers,
            seed ^ 0x5e5e,
        );
        let client = build_stack(
            b,
            config.client_ip,
            config.client,
            config.client_buffers,
            seed ^ 0xc1c1,
        );
        SimNet {
            server,
            client,
            wire,
            now: Instant::ZERO,
            server_ip: config.server_ip,
            client_ip: config.client_ip,
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The server's IP address.
    pub fn server_ip(&self) -> IpAddr {
        IpAddr::V4(self.server_ip)
    }

    /// The client's IP address.
    pub fn client_ip(&self) -> IpAddr {
        IpAddr::V4(self.client_ip)
    }

    /// The server's address with `port`.
    pub fn server_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.server_ip(), port)
    }

    /// Poll both stacks at the current time until nothing more happens
    /// (bounded). Returns whether anything changed.
    pub fn poll(&mut self) -> bool {
        let mut any = false;
        for _ in 0..64 {
            let a = self.server.poll(self.now);
            let b = self.client.poll(self.now);
            any |= a || b;
            let due = self.wire.next_arrival().is_some_and(|t| t <= self.now);
            if !(a || b || due) {
                break;
            }
        }
        any
    }

    /// The next instant something is due: a packet arriving, or a timer of
    /// either stack.
    pub fn next_event(&mut self) -> Option<Instant> {
        let now = self.now;
        [
            self.wire.next_arrival(),
            self.server.poll_at(now),
            self.client.poll_at(now),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Move the clock to the next event — at least 1 ms, at most `max`
    /// ahead — and poll. Returns the new time.
    pub fn step(&mut self, max: Duration) -> Instant {
        let limit = self.now + max;
        let earliest = self.now + Duration::from_millis(1);
        let t = match self.next_event() {
            Some(t) => t.max(earliest).min(limit),
            None => limit,
        };
        self.now = t;
        self.poll();
        t
    }

    /// Run the network until `done(self)` returns true (checked after every
    /// step, so it may drive the stacks: connect, send, read) or `limit` of
    /// simulated time has passed. Returns whether `done` was reached.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = self.now + limit;
        self.poll();
        loop {
            if done(self) {
                return true;
            }
            if self.now >= deadline {
                return false;
            }
            let left = deadline.saturating_duration_since(self.now);
            self.step(left);
        }
    }

    /// Let `d` of simulated time pass, running the network.
    pub fn advance(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Open a client connection to the server's `port` and run the network
    /// until it is established (`Ok`), refused or timed out (`Err`), or
    /// `limit` has passed (`Err(WouldBlock)`).
    pub fn connect(&mut self, port: u16, limit: Duration) -> nb::Result<TcpHandle, Error> {
        let addr = self.server_addr(port);
        let mut sock = self.client.socket()?;
        let mut result = Err(nb::Error::WouldBlock);
        self.run_until(limit, |net| {
            result = net.client.connect(&mut sock, addr);
            !matches!(result, Err(nb::Error::WouldBlock))
        });
        match result {
            Ok(()) => Ok(sock),
            Err(e) => {
                let _ = self.client.abort(sock);
                Err(e)
            }
        }
    }

    /// The simulated time as smoltcp sees it (for direct smoltcp calls).
    pub fn smol_now(&self) -> smoltcp::time::Instant {
        to_smol(self.now)
    }
}

impl<const N: usize> SimStack<N> {
    /// A stack of `N` sockets on `device`, with address `ip`/24,
    /// `Vec`-backed `(rx, tx)` buffers per socket and smoltcp's random
    /// `seed`: what [`SimNet::new`] builds for each side. With
    /// [`Wire::device`], this replaces a stack by a fresh one (a reboot).
    pub fn on_device(
        device: SimDevice,
        ip: Ipv4Addr,
        config: Config,
        buffers: (usize, usize),
        seed: u64,
    ) -> Self {
        build_stack(device, ip, config, buffers, seed)
    }
}

fn build_stack<const N: usize>(
    mut device: SimDevice,
    ip: Ipv4Addr,
    config: Config,
    (rx, tx): (usize, usize),
    seed: u64,
) -> SimStack<N> {
    let mut iface_config = IfaceConfig::new(HardwareAddress::Ip);
    iface_config.random_seed = seed;
    let mut iface = Interface::new(iface_config, &mut device, smoltcp::time::Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for this one address.
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24));
    });
    let mut sockets = SocketSet::new(Vec::new());
    let handles = core::array::from_fn(|_| {
        sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; rx]),
            tcp::SocketBuffer::new(vec![0; tx]),
        ))
    });
    Stack::from_socket_set(iface, device, sockets, handles, config)
}
