//! Settings of a [`Pool`](crate::Pool): backlog, timeouts, keepalive,
//! lingering close.
//!
//! The backlog settings, [`ListenConfig`] and [`Overflow`], are the core's
//! (`tcpool_core::backend`), shared with the smoltcp backend. On
//! embassy-net a fresh socket is armed at the next turn of the backend (the
//! task is woken for it); embassy-net handles a whole burst of frames in
//! one poll of its runner, so the SYNs of a burst past the `backlog` find
//! no listener. [`Overflow::Hold`] needs the network driver wrapped in a
//! [`HoldSyns`](crate::HoldSyns): their refusal is then withheld and the
//! clients retransmit, never reset.

use core::time::Duration;

pub use tcpool_core::backend::{ListenConfig, Overflow};

/// Settings of a [`Pool`](crate::Pool).
///
/// ```
/// use core::time::Duration;
/// use tcpool_embassy::{Config, ListenConfig};
///
/// let config = Config {
///     listen: ListenConfig::new(4, 4),
///     lingering_close: Some(Duration::from_secs(5)),
///     ..Config::new()
/// };
/// assert!(config.nodelay);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Backlog emulation of `listen()`.
    pub listen: ListenConfig,
    /// How long a socket may stay in a handshake (SYN-RECEIVED, SYN-SENT)
    /// without hearing from the peer before it is reset and reclaimed.
    pub handshake_timeout: Duration,
    /// TCP keepalive: the idle interval after which an established
    /// connection sends a probe. `None` = off. A keepalive not shorter than
    /// [`timeout`](Self::timeout) is lowered to a third of it.
    pub keepalive: Option<Duration>,
    /// An established connection whose peer sends nothing (not even an
    /// answer to a keepalive) for this long is reset and reclaimed. `None`:
    /// never.
    pub timeout: Option<Duration>,
    /// After `close`, how long the pool keeps the socket to deliver the
    /// queued output and the FIN, draining (discarding) the peer's input
    /// meanwhile, so unread input never stalls or resets the last response.
    /// Then the connection is reset and the socket reclaimed. `None` = plain
    /// close: the queued output and the FIN still go out (embassy-net never
    /// discards them here), input is not drained, and the socket returns
    /// once the FIN exchange is over or [`timeout`](Self::timeout) fires.
    pub lingering_close: Option<Duration>,
    /// `true` = Nagle's algorithm off on new connections (the default: the
    /// server batches its own writes).
    pub nodelay: bool,
}

impl Config {
    /// The defaults: backlog 2 (4 queued), handshake timeout 10 s,
    /// keepalive 20 s, timeout 60 s, lingering close 30 s, Nagle off.
    pub const fn new() -> Self {
        Config {
            listen: ListenConfig::new(2, 4),
            handshake_timeout: Duration::from_secs(10),
            keepalive: Some(Duration::from_secs(20)),
            timeout: Some(Duration::from_secs(60)),
            lingering_close: Some(Duration::from_secs(30)),
            nodelay: true,
        }
    }

    /// The keepalive actually used (see [`keepalive`](Self::keepalive)).
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
    }
}
