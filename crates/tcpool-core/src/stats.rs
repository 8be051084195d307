//! Counters kept by a [`Server`](crate::Server).

use crate::handler::CloseReason;

/// How many connections ended, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClosedCounts {
    counts: [u32; CloseReason::COUNT],
}

impl ClosedCounts {
    /// All zero.
    pub const fn new() -> Self {
        ClosedCounts {
            counts: [0; CloseReason::COUNT],
        }
    }

    /// Connections that ended for `reason`.
    pub fn get(&self, reason: CloseReason) -> u32 {
        self.counts[reason.index()]
    }

    /// All connections that ended.
    pub fn total(&self) -> u32 {
        self.counts.iter().fold(0u32, |a, b| a.saturating_add(*b))
    }

    /// Every reason with its count, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (CloseReason, u32)> + '_ {
        CloseReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }

    pub(crate) fn record(&mut self, reason: CloseReason) {
        let c = &mut self.counts[reason.index()];
        *c = c.saturating_add(1);
    }
}

/// Server counters. All counts saturate instead of wrapping.
///
/// ```
/// use tcpool_core::{CloseReason, Stats};
/// let stats = Stats::default();
/// assert_eq!(stats.accepted, 0);
/// assert_eq!(stats.closed.get(CloseReason::IdleTimeout), 0);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted into a slot.
    pub accepted: u32,
    /// Times the pool filled up under [`WhenFull::Defer`](crate::WhenFull::Defer)
    /// and the server stopped accepting (new clients wait in the stack's backlog).
    pub deferred: u32,
    /// Connections accepted and closed at once: pool full under
    /// [`WhenFull::Reject`](crate::WhenFull::Reject), refused by
    /// [`Handler::admit`](crate::Handler::admit), or over the per-IP cap.
    pub refused: u32,
    /// Connections closed to make room under
    /// [`WhenFull::EvictIdlest`](crate::WhenFull::EvictIdlest).
    pub evicted: u32,
    /// `accept` calls that failed (out of sockets, out of memory, ...); the
    /// server retries after [`Config::accept_backoff`](crate::Config::accept_backoff).
    pub accept_errors: u32,
    /// Stack errors returned by `close` (the slot is freed regardless).
    pub close_errors: u32,
    /// Graceful closes whose output could not be flushed within the linger time.
    pub linger_expired: u32,
    /// Connections that ended, by reason.
    pub closed: ClosedCounts,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// Connections in a slot now.
    pub active: u32,
    /// The most connections in slots at once.
    pub peak_active: u32,
}

impl Stats {
    /// All zero.
    pub const fn new() -> Self {
        Stats {
            accepted: 0,
            deferred: 0,
            refused: 0,
            evicted: 0,
            accept_errors: 0,
            close_errors: 0,
            linger_expired: 0,
            closed: ClosedCounts::new(),
            bytes_in: 0,
            bytes_out: 0,
            active: 0,
            peak_active: 0,
        }
    }
}

pub(crate) fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}
