//! Settings of a [`Pool`](crate::Pool): backlog, timeouts, keepalive,
//! lingering close.

use core::time::Duration;

/// What a client whose SYN finds its port full experiences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Overflow {
    /// The SYN is dropped silently, as by a full Linux accept queue: the
    /// client retransmits it (after 1 s, then backing off) and connects once
    /// a listening socket is armed again. Needs the network driver wrapped
    /// in a [`HoldSyns`](crate::HoldSyns). The default.
    Hold,
    /// The SYN is answered with a RST (embassy-net's own behaviour): the
    /// client sees "connection refused" at once.
    Refuse,
}

/// How a listener emulates an accept backlog (embassy-net has none: a
/// socket is one listener and then one connection).
///
/// A listener keeps [`backlog`](Self::backlog) sockets of the pool
/// listening on its port. A socket that catches a SYN leaves the listening
/// set and becomes a pending connection, and a fresh socket is armed in its
/// place at the next turn of the backend (the task is woken for it), as long
/// as the listener holds fewer than [`max_queued`](Self::max_queued)
/// sockets not yet accepted (listening + handshaking + established) and the
/// budget has a free socket.
///
/// embassy-net handles a whole burst of frames in one poll of its runner,
/// so no socket can be re-armed between two SYNs of a burst: the SYNs past
/// the `backlog` find no listener. With [`Overflow::Hold`] they are held
/// (their refusal is withheld, the clients retransmit), never reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenConfig {
    /// Sockets kept listening on the port: how many SYNs one burst can
    /// catch at once. At least 1 (0 is treated as 1).
    pub backlog: u8,
    /// Upper bound on the sockets this listener holds before they are
    /// accepted. Never less than `backlog` (smaller values are raised).
    pub max_queued: u8,
    /// What happens to a SYN that finds no socket listening.
    pub overflow: Overflow,
}

impl ListenConfig {
    /// `backlog` listening sockets, at most `max_queued` held before
    /// accept, SYNs held when full ([`Overflow::Hold`]).
    pub const fn new(backlog: u8, max_queued: u8) -> Self {
        ListenConfig {
            backlog,
            max_queued,
            overflow: Overflow::Hold,
        }
    }

    /// The same, with `overflow` for SYNs that find the port full.
    pub const fn with_overflow(self, overflow: Overflow) -> Self {
        ListenConfig { overflow, ..self }
    }

    /// The effective values: `backlog >= 1`, `max_queued >= backlog`.
    pub(crate) const fn normalized(self) -> Self {
        let backlog = if self.backlog == 0 { 1 } else { self.backlog };
        let max_queued = if self.max_queued < backlog {
            backlog
        } else {
            self.max_queued
        };
        ListenConfig {
            backlog,
            max_queued,
            overflow: self.overflow,
        }
    }
}

impl Default for ListenConfig {
    /// Two sockets listening, up to four held before accept, SYNs held.
    fn default() -> Self {
        ListenConfig::new(2, 4)
    }
}

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
