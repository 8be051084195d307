//! Runtime configuration of a [`Server`](crate::Server).

use core::time::Duration;

/// What the server does with a new client when every allowed slot is taken.
///
/// An established connection is never dropped to make room unless
/// [`EvictIdlest`](WhenFull::EvictIdlest) is chosen explicitly.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WhenFull {
    /// Do not accept: new clients wait in the stack's listen backlog and are
    /// accepted, in order, as slots free up. (Once the backlog is full too,
    /// what a client sees is the stack's choice: a dropped SYN it retries, or
    /// a refusal.) The default.
    #[default]
    Defer,
    /// Accept, send [`Config::reject_banner`] if it fits, and close at once.
    /// Needs one spare stack socket beyond the pool.
    Reject,
    /// Close the connection that has been idle longest (ties: the oldest id)
    /// and give its slot to the newcomer, but only if it has been idle for at
    /// least `min_idle`; otherwise behave like `Defer`.
    EvictIdlest {
        /// A connection idle for less than this is never evicted.
        min_idle: Duration,
    },
}

/// Runtime settings. Build with [`Config::new`] and the `with_*` methods; all
/// of them are `const`, so a config can be a `const` or live in a `static`.
///
/// ```
/// use core::time::Duration;
/// use tcpool_core::{Config, WhenFull};
///
/// const CONFIG: Config = Config::new()
///     .with_max_connections(3)
///     .with_when_full(WhenFull::Reject)
///     .with_reject_banner(b"busy\n")
///     .with_idle_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(CONFIG.max_connections, 3);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Connections served at once; clamped to the pool size `N`. Lower than
    /// `N` keeps stack sockets in reserve for other uses.
    pub max_connections: usize,
    /// What happens to new clients when `max_connections` are open.
    pub when_full: WhenFull,
    /// Close a connection after this long without a byte moving in either
    /// direction. `None` (the default) never times out.
    pub idle_timeout: Option<Duration>,
    /// How long a graceful close may wait for pending output to be accepted
    /// by the stack before the connection is closed anyway. Default 5 s.
    pub linger: Duration,
    /// At most this many bytes are read from one connection per poll, so one
    /// fast client cannot starve the rest. `0` (the default) means the slot's
    /// receive buffer size. A budget larger than the receive buffer lets a
    /// busy connection go round again in the same poll (read, handler,
    /// send) while the buffer keeps filling, the handler consumes it and the
    /// output drains: fewer trips through the event loop for bulk transfers.
    pub read_budget: usize,
    /// At most this many connections from one IP address; more are refused.
    /// `None` (the default) means no limit.
    pub max_per_ip: Option<usize>,
    /// Sent (best effort, one write) to a client refused under
    /// [`WhenFull::Reject`] before it is closed. Empty by default.
    pub reject_banner: &'static [u8],
    /// After a failed `accept` (out of sockets, ...), wait this long before
    /// trying again. Default 50 ms.
    pub accept_backoff: Duration,
    /// Reset a connection whose output has waited this long without the
    /// peer taking a byte of it (the peer stopped reading), with
    /// [`CloseReason::WriteStall`](crate::CloseReason::WriteStall). `None`
    /// (the default) never does; then only the idle timeout, if set, frees
    /// such a slot.
    pub write_stall: Option<Duration>,
}

impl Config {
    /// The defaults: `max_connections = usize::MAX` (the whole pool),
    /// [`WhenFull::Defer`], no idle timeout, 5 s linger, full read budget,
    /// no per-IP cap, no banner, 50 ms accept backoff, no write-stall timeout.
    pub const fn new() -> Self {
        Config {
            max_connections: usize::MAX,
            when_full: WhenFull::Defer,
            idle_timeout: None,
            linger: Duration::from_secs(5),
            read_budget: 0,
            max_per_ip: None,
            reject_banner: b"",
            accept_backoff: Duration::from_millis(50),
            write_stall: None,
        }
    }

    /// Sets [`max_connections`](Config::max_connections).
    pub const fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`when_full`](Config::when_full).
    pub const fn with_when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// Sets [`idle_timeout`](Config::idle_timeout).
    pub const fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`linger`](Config::linger).
    pub const fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets [`read_budget`](Config::read_budget).
    pub const fn with_read_budget(mut self, bytes: usize) -> Self {
        self.read_budget = bytes;
        self
    }

    /// Sets [`max_per_ip`](Config::max_per_ip).
    pub const fn with_max_per_ip(mut self, n: Option<usize>) -> Self {
        self.max_per_ip = n;
        self
    }

    /// Sets [`reject_banner`](Config::reject_banner).
    pub const fn with_reject_banner(mut self, banner: &'static [u8]) -> Self {
        self.reject_banner = banner;
        self
    }

    /// Sets [`write_stall`](Config::write_stall).
    pub const fn with_write_stall(mut self, stall: Option<Duration>) -> Self {
        self.write_stall = stall;
        self
    }

    /// Sets [`accept_backoff`](Config::accept_backoff).
    pub const fn with_accept_backoff(mut self, backoff: Duration) -> Self {
        self.accept_backoff = backoff;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}
