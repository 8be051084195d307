//! Stack-wide settings: timeouts, keepalive, lingering close, backlog
//! defaults.
//!
//! The backlog settings, [`ListenConfig`] and [`Overflow`], are the core's
//! (`tcpool_core::backend`), shared with the embassy-net backend. On
//! smoltcp a fresh pool socket is armed within the same
//! [`Stack::poll`](crate::Stack::poll) in which one caught a SYN, before
//! the next incoming packet is processed.

use core::time::Duration;

pub use tcpool_core::backend::{ListenConfig, Overflow};

/// Settings of a [`Stack`](crate::Stack).
///
/// # Which timeout bounds what
///
/// | phase of a connection | bounded by |
/// |---|---|
/// | handshake (SYN-RECEIVED, SYN-SENT) | [`handshake_timeout`](Self::handshake_timeout): then reset and reclaimed |
/// | established, peer silent | [`timeout`](Self::timeout), kept from firing on a live idle peer by [`keepalive`](Self::keepalive) probes: then reset |
/// | after `close()`: output, FIN, draining input | [`lingering_close`](Self::lingering_close): then reset; [`timeout`](Self::timeout) still applies |
/// | after `abort()` | nothing to bound: the RST goes out with the next poll |
///
/// The server's own [`tcpool_core::Config::linger`] comes before all of
/// this: how long the server waits for its transmit buffer to drain into
/// the stack before it calls `close()` at all.
///
/// ```
/// use core::time::Duration;
/// use tcpool_smoltcp::{Config, ListenConfig};
///
/// let config = Config {
///     listen: ListenConfig::new(1, 2),
///     keepalive: Some(Duration::from_secs(10)),
///     timeout: Some(Duration::from_secs(30)),
///     lingering_close: Some(Duration::from_secs(5)),
///     ..Config::new()
/// };
/// assert_eq!(config.handshake_timeout, Duration::from_secs(10));
/// assert!(config.nodelay);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Backlog emulation used by `listen()`; per listener with
    /// [`Stack::listen_with`](crate::Stack::listen_with).
    pub listen: ListenConfig,
    /// How long a socket may stay in SYN-RECEIVED (server side) or SYN-SENT
    /// (client side) without hearing from the peer. A SYN-RECEIVED socket
    /// whose SYN-ACK never gets through (lost, or the client went away) would
    /// otherwise retransmit forever and never return to the pool.
    pub handshake_timeout: Duration,
    /// TCP keepalive: the idle interval after which an established
    /// connection sends a probe. `None` = off. Must be shorter than
    /// [`timeout`](Self::timeout): the probes' answers are what keeps an idle
    /// but healthy connection from timing out; a keepalive that is not is
    /// lowered to a third of the timeout ([`effective_keepalive`](Self::effective_keepalive)).
    pub keepalive: Option<Duration>,
    /// A connection whose peer sends nothing for this long (not even an
    /// answer to a keepalive) is reset and its socket reclaimed, whether it
    /// is established or closing. `None`: never (a vanished peer then holds
    /// its socket until the application closes it and, when closed, until
    /// [`lingering_close`](Self::lingering_close) expires).
    pub timeout: Option<Duration>,
    /// nginx's lingering close: after `close()`, how long the stack keeps
    /// the socket to deliver the queued output and the FIN while it drains
    /// (discards) whatever the peer still sends, so that unread input never
    /// closes the peer's window on the last response and its FIN. The
    /// socket returns to the pool as soon as the FIN exchange is over
    /// (TIME-WAIT or CLOSED); if it is still going when this expires, the
    /// connection is reset ([`Counters::lingering_resets`](crate::Counters::lingering_resets))
    /// and the socket reclaimed.
    ///
    /// `None` = plain close: the output and the FIN still go out (smoltcp
    /// never discards them), the peer's input is not drained, and there is
    /// no deadline: the socket returns once the FIN exchange is over or
    /// [`timeout`](Self::timeout) fires. A live peer that never closes its
    /// side then holds the socket.
    pub lingering_close: Option<Duration>,
    /// `true` = Nagle's algorithm off on new connections (the default: the
    /// server batches its own writes, and Nagle adds latency to
    /// request/response).
    pub nodelay: bool,
    /// First ephemeral port tried for outgoing connections (kept within
    /// 49152..=65535). Vary it across reboots (e.g. from a random seed) so a
    /// restarted device does not reuse the previous run's 4-tuples.
    pub ephemeral_port_start: u16,
}

impl Config {
    /// The defaults: backlog 2 (4 queued), handshake timeout 10 s,
    /// keepalive 20 s, timeout 60 s, lingering close 30 s, Nagle off
    /// (`nodelay`).
    pub const fn new() -> Self {
        Config {
            listen: ListenConfig::new(2, 4),
            handshake_timeout: Duration::from_secs(10),
            keepalive: Some(Duration::from_secs(20)),
            timeout: Some(Duration::from_secs(60)),
            lingering_close: Some(Duration::from_secs(30)),
            nodelay: true,
            ephemeral_port_start: EPHEMERAL_FIRST,
        }
    }

    /// The keepalive actually used: a keepalive that is not shorter than
    /// the timeout is lowered to a third of the timeout, so that an idle
    /// healthy connection is probed (and answers) before it would time out.
    pub fn effective_keepalive(&self) -> Option<Duration> {
        match (self.keepalive, self.timeout) {
            (Some(ka), Some(to)) if ka >= to => Some(to / 3),
            (ka, _) => ka,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// First port of the IANA dynamic range used for outgoing connections.
pub(crate) const EPHEMERAL_FIRST: u16 = 49152;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_not_shorter_than_timeout_is_lowered() {
        let c = Config {
            keepalive: Some(Duration::from_secs(90)),
            timeout: Some(Duration::from_secs(60)),
            ..Config::new()
        };
        assert_eq!(c.effective_keepalive(), Some(Duration::from_secs(20)));
        assert_eq!(
            Config::new().effective_keepalive(),
            Some(Duration::from_secs(20))
        );
    }

    #[test]
    fn listen_config_is_normalized() {
        assert_eq!(
            ListenConfig::new(0, 0).normalized(),
            ListenConfig::new(1, 1)
        );
        assert_eq!(
            ListenConfig::new(3, 1).normalized(),
            ListenConfig::new(3, 3)
        );
        assert_eq!(
            ListenConfig::new(2, 5).normalized(),
            ListenConfig::new(2, 5)
        );
    }
}
