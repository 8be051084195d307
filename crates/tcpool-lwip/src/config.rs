//! How an [`LwipStack`](crate::LwipStack) uses lwIP: its socket budget and
//! the options it puts on every socket.

use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;

/// ESP-IDF's default `CONFIG_LWIP_MAX_SOCKETS`.
pub const ESP_IDF_DEFAULT_MAX_SOCKETS: usize = 10;

/// How lwIP's socket table is shared out.
///
/// lwIP has a fixed number of sockets for the whole firmware
/// (`CONFIG_LWIP_MAX_SOCKETS` on ESP-IDF, 10 by default). When it runs out,
/// `accept` fails with `ENFILE` *after* taking the pending connection, which
/// lwIP then resets: the client is lost. A budget keeps the server from ever
/// asking for more sockets than it was given, so that a client that cannot
/// be served yet waits in the listen backlog instead.
///
/// ```
/// use tcpool_lwip::SocketBudget;
///
/// // 10 lwIP sockets; one for the listener; two kept for an HTTP client
/// // and SNTP elsewhere in the firmware.
/// let budget = SocketBudget::new(10).reserved(2);
/// assert_eq!(budget.sockets(), 8);     // what the stack may hold
/// assert_eq!(budget.connections(), 7); // the server's max connections
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SocketBudget {
    /// The size of lwIP's socket table (`CONFIG_LWIP_MAX_SOCKETS`).
    pub lwip_max_sockets: usize,
    /// Listening sockets this stack holds (default 1).
    pub listeners: usize,
    /// Sockets left for the rest of the firmware (default 0).
    pub reserved: usize,
}

impl SocketBudget {
    /// All of lwIP's `lwip_max_sockets` sockets, one of them a listener.
    pub const fn new(lwip_max_sockets: usize) -> SocketBudget {
        SocketBudget {
            lwip_max_sockets,
            listeners: 1,
            reserved: 0,
        }
    }

    /// With `n` listening sockets.
    pub const fn listeners(mut self, n: usize) -> SocketBudget {
        self.listeners = n;
        self
    }

    /// Leaving `n` sockets to the rest of the firmware.
    pub const fn reserved(mut self, n: usize) -> SocketBudget {
        self.reserved = n;
        self
    }

    /// Sockets the stack may hold at once: listeners, connections and
    /// sockets still in a lingering close.
    pub const fn sockets(&self) -> usize {
        self.lwip_max_sockets.saturating_sub(self.reserved)
    }

    /// Connections the server can hold at once: give this to the server as
    /// its maximum number of connections.
    pub const fn connections(&self) -> usize {
        self.sockets().saturating_sub(self.listeners)
    }
}

/// TCP keepalive settings (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_KEEPCNT`; lwIP needs `LWIP_TCP_KEEPALIVE`, which ESP-IDF enables).
///
/// A peer that vanished (power loss, Wi-Fi gone) is detected after
/// `idle + interval * count` and its socket fails with a reset.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Keepalive {
    /// Idle time before the first probe (whole seconds, at least 1).
    pub idle: Duration,
    /// Time between probes (whole seconds, at least 1).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub count: u32,
}

impl Keepalive {
    /// 2 minutes idle, then 4 probes 15 s apart: a dead peer is noticed
    /// within 3 minutes.
    pub const DEFAULT: Keepalive = Keepalive {
        idle: Duration::from_secs(120),
        interval: Duration::from_secs(15),
        count: 4,
    };
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive::DEFAULT
    }
}

/// Configuration of an [`LwipStack`](crate::LwipStack).
///
/// Built from [`Config::new`] (or [`Config::default`]: ESP-IDF's 10 sockets,
/// one listener) and adjusted with the `with_*` methods, all `const`. The
/// field names are those of every tcpool backend (`lingering_close`,
/// `keepalive`, `nodelay`, `reuse_address`, `bind_ip`, `backlog`).
///
/// What bounds what, from the server's close to the socket's end:
///
/// 1. The server's own [`tcpool_core::Config::linger`]: how long it waits
///    for its transmit buffer to drain into lwIP before it calls `close`.
/// 2. [`lingering_close`](Config::lingering_close): after `close`, how long
///    the stack keeps the socket open, reading and discarding the peer's
///    input until the peer closes too. It does not bound the delivery of
///    the output already queued in lwIP: lwIP sends it, then FIN, on its
///    own, even after the socket is closed, within its retransmission
///    limits.
/// 3. [`keepalive`](Config::keepalive): how long a peer that vanished keeps
///    an open connection (`idle + interval * count`); the server's idle
///    timeout ([`tcpool_core::Config::idle_timeout`]) usually ends it first.
///
/// ```
/// use core::time::Duration;
/// use tcpool_lwip::{Config, SocketBudget};
///
/// const CONFIG: Config = Config::new(SocketBudget::new(16).reserved(4))
///     .with_backlog(2)
///     .with_lingering_close(Some(Duration::from_millis(200)));
/// assert_eq!(CONFIG.socket_budget, 12);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// Most sockets the stack holds at once (listeners, connections, and
    /// sockets in a lingering close). `socket` and `accept` beyond it fail
    /// with [`Error::OutOfSockets`](crate::Error::OutOfSockets) without
    /// asking lwIP.
    pub socket_budget: usize,
    /// The `listen` backlog: connections lwIP completes and queues before the
    /// server accepts them (default 4). With `TCP_LISTEN_BACKLOG` (set on
    /// ESP-IDF) lwIP refuses SYNs beyond it; the clients retry.
    pub backlog: u8,
    /// The local address listeners bind to (IPv4 or IPv6). Default:
    /// `0.0.0.0`, every interface: on a device, serving the network is the
    /// point.
    pub bind_ip: IpAddr,
    /// `SO_REUSEADDR` on listeners, so a restarted server can bind at once
    /// while old connections are in TIME-WAIT (default on).
    pub reuse_address: bool,
    /// `TCP_NODELAY` on connections: `true` turns Nagle's algorithm off
    /// (default: a request/response server otherwise meets Nagle's
    /// algorithm and delayed ACKs).
    pub nodelay: bool,
    /// TCP keepalive on connections: a dead peer is noticed after
    /// `idle + interval * count` without an answer, and its socket fails
    /// with a reset. `None` leaves keepalive off. Default:
    /// [`Keepalive::DEFAULT`] (within 3 minutes).
    pub keepalive: Option<Keepalive>,
    /// The lingering close (nginx's): after `close`, how long the stack
    /// keeps the connection to drain the peer's input, so that input
    /// arriving late does not make lwIP answer with a reset that could
    /// destroy the last response in the peer's receive buffer. `close` shuts
    /// down the write side (queued output, then FIN, go out as lwIP sends
    /// them) and then reads and discards input for up to this long, or until
    /// the peer closes. Such a socket still counts against the budget, but
    /// is closed at once when the budget is needed for a new socket, and at
    /// most [`LINGER_SLOTS`](crate::LINGER_SLOTS) linger at once. `None`
    /// closes at once (after shutting down the write side). Default: 500 ms.
    pub lingering_close: Option<Duration>,
}

impl Config {
    /// A configuration with the budget's [`sockets`](SocketBudget::sockets)
    /// and the defaults for everything else.
    pub const fn new(budget: SocketBudget) -> Config {
        Config {
            socket_budget: budget.sockets(),
            backlog: 4,
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            reuse_address: true,
            nodelay: true,
            keepalive: Some(Keepalive::DEFAULT),
            lingering_close: Some(Duration::from_millis(500)),
        }
    }

    /// With a socket budget of `sockets`.
    pub const fn with_socket_budget(mut self, sockets: usize) -> Config {
        self.socket_budget = sockets;
        self
    }

    /// With a `listen` backlog of `backlog`.
    pub const fn with_backlog(mut self, backlog: u8) -> Config {
        self.backlog = backlog;
        self
    }

    /// Binding to `address`.
    pub const fn with_bind_ip(mut self, ip: IpAddr) -> Config {
        self.bind_ip = ip;
        self
    }

    /// With or without `SO_REUSEADDR` on listeners.
    pub const fn with_reuse_address(mut self, on: bool) -> Config {
        self.reuse_address = on;
        self
    }

    /// With or without `TCP_NODELAY`.
    pub const fn with_nodelay(mut self, on: bool) -> Config {
        self.nodelay = on;
        self
    }

    /// With these keepalive settings, or none.
    pub const fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Config {
        self.keepalive = keepalive;
        self
    }

    /// With this lingering-close time, or none.
    pub const fn with_lingering_close(mut self, lingering_close: Option<Duration>) -> Config {
        self.lingering_close = lingering_close;
        self
    }
}

impl Default for Config {
    /// ESP-IDF's default 10 sockets, one listener, nothing reserved.
    fn default() -> Config {
        Config::new(SocketBudget::new(ESP_IDF_DEFAULT_MAX_SOCKETS))
    }
}
