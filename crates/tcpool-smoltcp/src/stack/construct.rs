//! Construction: a stack from caller storage or from an existing socket
//! set, and taking it apart again.

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;

use super::handle::{Entry, Role};
use super::{Counters, Stack, TcpState};
use crate::config::{Config, EPHEMERAL_FIRST};
use crate::storage::StackStorage;

impl<'a, D: Device, const N: usize> Stack<'a, D, N> {
    /// A stack over `iface` and `device`, with its pool of `N` sockets built
    /// in `storage`.
    ///
    /// `iface` must have been created for `device` (same medium) and have
    /// its IP address(es) configured.
    pub fn new<const RX: usize, const TX: usize>(
        iface: Interface,
        device: D,
        storage: &'a mut StackStorage<'a, N, RX, TX>,
        config: Config,
    ) -> Self {
        let StackStorage { sockets, rx, tx } = storage;
        let mut set = SocketSet::new(sockets.build());
        let mut handles = [SocketHandle::default(); N];
        for (handle, (rx, tx)) in handles.iter_mut().zip(rx.iter_mut().zip(tx.iter_mut())) {
            *handle = set.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            ));
        }
        Self::from_socket_set(iface, device, set, handles, config)
    }

    /// A stack over an existing socket set: `handles` name the `N` TCP
    /// sockets (all CLOSED) that form the pool. The set may hold other
    /// sockets too (DHCP, DNS, UDP, ...): reach them with
    /// [`sockets_mut`](Self::sockets_mut). Use this to give sockets different
    /// buffer sizes, or `Vec`-backed buffers on `alloc` targets.
    ///
    /// # Panics
    ///
    /// If a handle does not name a TCP socket of `sockets`.
    pub fn from_socket_set(
        iface: Interface,
        device: D,
        mut sockets: SocketSet<'a>,
        handles: [SocketHandle; N],
        config: Config,
    ) -> Self {
        const {
            assert!(N > 0, "the pool needs at least one socket");
            assert!(N <= u16::MAX as usize, "at most 65535 sockets");
        }
        for h in handles {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.state() != TcpState::Closed {
                s.abort();
            }
        }
        let start = config.ephemeral_port_start.max(EPHEMERAL_FIRST);
        let medium = device.capabilities().medium;
        Stack {
            iface,
            device,
            medium,
            sockets,
            pool: handles.map(|handle| Entry {
                handle,
                role: Role::Free,
                watch: None,
            }),
            listeners: [None; N],
            config,
            now: SmolInstant::ZERO,
            next_port: start,
            arrivals: 0,
            counters: Counters::default(),
            recheck: false,
            marked: false,
        }
    }

    /// Take the stack apart: the interface, the device and the socket set
    /// (every pool socket aborted). What is left of open connections is
    /// lost; use it to move the device to a fresh stack (a simulated
    /// reboot) or to shut down.
    pub fn into_parts(mut self) -> (Interface, D, SocketSet<'a>) {
        for e in &self.pool {
            self.sockets.get_mut::<tcp::Socket>(e.handle).abort();
        }
        (self.iface, self.device, self.sockets)
    }
}
