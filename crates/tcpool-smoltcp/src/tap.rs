//! The stack on a Linux TAP device (feature `tap`, Linux only): real
//! clients (`nc`, `curl`, std sockets) talk to a smoltcp stack running in a
//! host process. Used by the TAP integration test and the `tap_echo`
//! example; handy to try a firmware's server logic on the host.
//!
//! The smoltcp side has its own MAC and IP address on the TAP's link; the
//! host side of the TAP gets another address of the same subnet:
//!
//! ```text
//! ip tuntap add dev tcpt0 mode tap        # or let `open` create it (root)
//! ip addr add 10.123.0.1/24 dev tcpt0
//! ip link set tcpt0 up
//! ```
//!
//! The stack implements [`tcpool_core::Wait`]: an event loop polls the
//! server, then sleeps in `wait` until one of the server's sockets is
//! ready or its deadline passes (the stack runs itself meanwhile).
//!
//! ```no_run
//! use core::net::Ipv4Addr;
//! use std::time::Instant as StdInstant;
//! use tcpool_conformance::Echo;
//! use tcpool_core::{Config, Instant, Server, Wait};
//! use tcpool_smoltcp::tap::{self, TapConfig, TapStack};
//!
//! let config = TapConfig::new("tcpt0", Ipv4Addr::new(10, 123, 0, 2), 24);
//! let mut stack: TapStack<8> = tap::open(&config)?;
//! let mut server: Server<TapStack<8>, Echo, 4, 1024, 1024> = Server::new(Echo, Config::new());
//! server.listen(&mut stack, 7).expect("listen");
//! let start = StdInstant::now();
//! let clock = || Instant::from_millis(start.elapsed().as_millis() as u64);
//! loop {
//!     let now = clock();
//!     stack.poll(now);
//!     server.poll(&mut stack, now);
//!     stack.wait(server.interests(), server.poll_at(), clock())?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::net::Ipv4Addr;
use core::time::Duration;
use std::io;
use std::os::fd::AsRawFd;
use std::vec;
use std::vec::Vec;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use tcpool_core::{Instant, Interest};

use crate::{Config, Error, Stack, TcpHandle};

/// A [`Stack`] over a TAP device, with `Vec`-backed socket buffers.
pub type TapStack<const N: usize> = Stack<'static, TunTapInterface, N>;

/// How to bring up a [`TapStack`].
#[derive(Debug, Clone, PartialEq)]
pub struct TapConfig<'n> {
    /// The TAP device: attached to if it exists (a persistent TAP made with
    /// `ip tuntap add`, usable without root by its owner), created otherwise
    /// (needs root or `CAP_NET_ADMIN`; it vanishes when the stack is dropped).
    pub name: &'n str,
    /// The smoltcp side's MAC address.
    pub mac: [u8; 6],
    /// The smoltcp side's IPv4 address.
    pub address: Ipv4Addr,
    /// Its prefix length (the subnet shared with the host side of the TAP).
    pub prefix_len: u8,
    /// A default route, if the stack must reach beyond its subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Socket buffers (RX, TX), bytes per socket.
    pub buffers: (usize, usize),
    /// The stack's settings.
    pub stack: Config,
    /// smoltcp's random seed (initial sequence numbers, ephemeral ports):
    /// vary it between runs.
    pub seed: u64,
}

impl<'n> TapConfig<'n> {
    /// `address/prefix_len` on the TAP `name`: a locally administered MAC
    /// derived from the address (`02:00:a.b.c.d`), no gateway, 64 KiB socket
    /// buffers, default stack settings, a seed from the system clock.
    pub fn new(name: &'n str, address: Ipv4Addr, prefix_len: u8) -> Self {
        let [a, b, c, d] = address.octets();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        TapConfig {
            name,
            mac: [0x02, 0x00, a, b, c, d],
            address,
            prefix_len,
            gateway: None,
            buffers: (64 * 1024, 64 * 1024),
            stack: Config::new(),
            seed,
        }
    }
}

/// Open (or create) the TAP device and build a stack of `N` sockets on it.
pub fn open<const N: usize>(config: &TapConfig<'_>) -> io::Result<TapStack<N>> {
    if config.prefix_len > 32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "IPv4 prefix length above 32",
        ));
    }
    let mut device = TunTapInterface::new(config.name, Medium::Ethernet)?;
    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
    iface_config.random_seed = config.seed;
    let mut iface = Interface::new(iface_config, &mut device, smoltcp::time::Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for one address.
        let _ = addrs.push(IpCidr::new(
            IpAddress::Ipv4(config.address),
            config.prefix_len,
        ));
    });
    if let Some(gw) = config.gateway {
        iface
            .routes_mut()
            .add_default_ipv4_route(gw)
            .map_err(|_| io::Error::other("route table full"))?;
    }
    let (rx, tx) = config.buffers;
    let mut sockets = SocketSet::new(Vec::new());
    let handles = core::array::from_fn(|_| {
        sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; rx]),
            tcp::SocketBuffer::new(vec![0; tx]),
        ))
    });
    Ok(Stack::from_socket_set(
        iface,
        device,
        sockets,
        handles,
        config.stack,
    ))
}

/// Sleep until the TAP has a frame to read or `timeout` has passed (`None`:
/// until a frame arrives). Use the smaller of
/// [`Stack::poll_delay`] and the server's own deadline as `timeout`, or let
/// the stack's [`Wait`](tcpool_core::Wait) implementation do all of that.
pub fn wait<const N: usize>(stack: &TapStack<N>, timeout: Option<Duration>) -> io::Result<()> {
    // smoltcp's `wait` drops the sub-millisecond part of a timeout: round
    // up, so that a wait for 0.3 ms does not turn into a busy loop.
    let timeout = timeout.map(|d| {
        let millis = u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX / 2000);
        smoltcp::time::Duration::from_millis(millis.min(u64::MAX / 2000))
    });
    smoltcp::phy::wait(stack.device().as_raw_fd(), timeout)
}

impl<const N: usize> tcpool_core::Wait for TapStack<N> {
    /// Runs the stack while it waits: polls it ([`Stack::poll`], which sends
    /// what the server queued and fires timers), then sleeps on the TAP
    /// until a frame arrives or the next stack timer
    /// ([`Stack::poll_delay`]) or `deadline` is due, and again, until one
    /// of `interests` ([`Stack::ready`]) or of the sockets servers watch
    /// ([`Stack::watched_ready`]) is ready, or `deadline` has passed. The
    /// stack is polled at `now` plus the time spent in here (on the host's
    /// monotonic clock). Returns how many of those sockets are ready (0:
    /// the deadline passed, or a signal interrupted the wait).
    ///
    /// Fails with [`Error::Device`] if waiting on the TAP's file descriptor
    /// fails.
    fn wait<'s, I>(
        &mut self,
        interests: I,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Result<usize, Error>
    where
        I: IntoIterator<Item = (&'s TcpHandle, Interest)>,
        TcpHandle: 's,
    {
        let interests: Vec<(&TcpHandle, Interest)> = interests
            .into_iter()
            .filter(|(_, want)| !want.is_none())
            .collect();
        let start = std::time::Instant::now();
        loop {
            let t = now + start.elapsed();
            self.poll(t);
            let given = interests
                .iter()
                .filter(|(socket, want)| {
                    let is = self.ready(socket);
                    (is.readable && want.readable) || (is.writable && want.writable)
                })
                .count();
            let ready = given + self.watched_ready();
            if ready > 0 {
                return Ok(ready);
            }
            let left = deadline.map(|d| d.saturating_duration_since(t));
            if left == Some(Duration::ZERO) {
                return Ok(0);
            }
            let timeout = match (left, self.poll_delay(t)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wait(self, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
                Err(e) => {
                    warning!(
                        "waiting on the TAP failed: errno {}",
                        e.raw_os_error().unwrap_or(0)
                    );
                    return Err(Error::Device);
                }
            }
        }
    }
}
