//! What the stack does to the sockets it creates.

use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr};

/// Socket options and policies of a [`StdStack`](crate::StdStack).
///
/// `embedded-nal`'s `bind` takes only a port, so the address to bind comes
/// from here. Build it from [`Config::default`] and the `with_*` methods:
///
/// ```
/// use core::time::Duration;
/// use std::net::Ipv6Addr;
/// use tcpool_std::Config;
///
/// let config = Config::default()
///     .with_bind_ip(Ipv6Addr::LOCALHOST.into())
///     .with_backlog(512)
///     .with_keepalive(Some(Duration::from_secs(30)))
///     .with_lingering_close(Some(Duration::from_millis(500)));
/// assert!(config.nodelay);
/// assert!(config.reuse_address);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The local address listeners bind to (IPv4 or IPv6).
    ///
    /// Default: `127.0.0.1`, reachable from this host only. A server that
    /// should be reachable from the network must say so (`0.0.0.0`, `::`, or
    /// one interface's address); it is never the silent default.
    pub bind_ip: IpAddr,
    /// Set `SO_REUSEADDR` on listeners, so that a restarted server can bind
    /// its port at once even while connections of the previous run are still
    /// open or in `TIME_WAIT`. It does not let two live listeners share a
    /// port on Linux or the BSDs. Default: `true`.
    pub reuse_address: bool,
    /// With an IPv6 [`bind_ip`](Self::bind_ip), accept only IPv6
    /// (`IPV6_V6ONLY`). When `false`, a listener on `::` also accepts IPv4
    /// clients (reported with their plain IPv4 address, not as
    /// `::ffff:a.b.c.d`). Set explicitly either way, so behaviour does not
    /// depend on a system setting. Ignored for IPv4. Default: `false`.
    pub ipv6_only: bool,
    /// The listen backlog: how many fully established connections the kernel
    /// queues while the server does not accept them (a full pool defers
    /// accepting, so this is where waiting clients wait). The kernel may cap
    /// it (`net.core.somaxconn` on Linux). Default: 128.
    pub backlog: u32,
    /// TCP keepalive on accepted and connected sockets: `Some(idle)` sends
    /// the first probe after `idle` without traffic, then one every `idle`
    /// (where the platform lets the interval be set), and the connection
    /// fails with an error after the system's probe count (9 on Linux) goes
    /// unanswered. Whole seconds on most systems. `None` leaves keepalive
    /// off. Default: `None`.
    pub keepalive: Option<Duration>,
    /// Set `TCP_NODELAY` (no Nagle delay) on accepted and connected sockets.
    /// A request/response server wants this. Default: `true`.
    pub nodelay: bool,
    /// The lingering close: after `close`, how long the stack keeps the
    /// connection to deliver queued output and drain the peer's input
    /// (see [`StdStack`](crate::StdStack)'s `close`), so that unread input
    /// never turns into a reset that destroys the last response. `None`
    /// makes `close` a plain `close(2)`, which answers unread input with a
    /// reset. Default: 2 s.
    ///
    /// Not to be confused with the server's
    /// [`tcpool_core::Config::linger`], which bounds how long the server
    /// waits for its own transmit buffer to drain into the stack before it
    /// calls `close` at all.
    pub lingering_close: Option<Duration>,
}

impl Config {
    /// The default configuration, usable in `const` context.
    pub const DEFAULT: Config = Config {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        reuse_address: true,
        ipv6_only: false,
        backlog: 128,
        keepalive: None,
        nodelay: true,
        lingering_close: Some(Duration::from_secs(2)),
    };

    /// Sets [`bind_ip`](Self::bind_ip).
    pub const fn with_bind_ip(mut self, ip: IpAddr) -> Self {
        self.bind_ip = ip;
        self
    }

    /// Sets [`reuse_address`](Self::reuse_address).
    pub const fn with_reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// Sets [`ipv6_only`](Self::ipv6_only).
    pub const fn with_ipv6_only(mut self, on: bool) -> Self {
        self.ipv6_only = on;
        self
    }

    /// Sets [`backlog`](Self::backlog).
    pub const fn with_backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Sets [`keepalive`](Self::keepalive).
    pub const fn with_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }

    /// Sets [`nodelay`](Self::nodelay).
    pub const fn with_nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Sets [`lingering_close`](Self::lingering_close).
    pub const fn with_lingering_close(mut self, linger: Option<Duration>) -> Self {
        self.lingering_close = linger;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_binds_loopback_only() {
        assert_eq!(Config::default().bind_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn default_reuses_address_sets_nodelay_and_lingers_two_seconds() {
        let c = Config::default();
        assert!(c.reuse_address);
        assert!(c.nodelay);
        assert_eq!(c.lingering_close, Some(Duration::from_secs(2)));
        assert_eq!(c.backlog, 128);
        assert_eq!(c.keepalive, None);
        assert!(!c.ipv6_only);
    }

    #[test]
    fn builders_set_their_field_only() {
        let c = Config::default().with_nodelay(false).with_backlog(7);
        assert!(!c.nodelay);
        assert_eq!(c.backlog, 7);
        assert_eq!(
            c.with_nodelay(true).with_backlog(128),
            Config::default(),
            "nothing else changed"
        );
    }
}
