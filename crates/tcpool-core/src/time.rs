//! Time as the server sees it: a monotonic millisecond [`Instant`] passed in
//! by the caller, so that tests can drive the clock and firmware can use any
//! timer it has.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in milliseconds since an arbitrary epoch chosen by the
/// caller (boot, the start of a test, ...).
///
/// The server never reads a clock itself: every call that needs the time
/// takes an `Instant`. It must not go backwards between calls; if it does,
/// elapsed times saturate at zero rather than wrap.
///
/// ```
/// use core::time::Duration;
/// use tcpool_core::Instant;
///
/// let t0 = Instant::from_millis(1_000);
/// let t1 = t0 + Duration::from_millis(250);
/// assert_eq!(t1.as_millis(), 1_250);
/// assert_eq!(t1.saturating_duration_since(t0), Duration::from_millis(250));
/// assert_eq!(t0.saturating_duration_since(t1), Duration::ZERO);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    millis: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant { millis: 0 };

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant { millis }
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.millis.saturating_sub(earlier.millis))
    }
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            millis: self.millis.saturating_add(duration_millis(rhs)),
        }
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant {
            millis: self.millis.saturating_sub(duration_millis(rhs)),
        }
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.millis / 1000, self.millis % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates_instead_of_overflowing() {
        let t = Instant::from_millis(u64::MAX - 1);
        assert_eq!((t + Duration::from_secs(10)).as_millis(), u64::MAX);
    }

    #[test]
    fn display_shows_seconds_and_millis() {
        let mut s: heapless::String<16> = heapless::String::new();
        core::fmt::write(&mut s, format_args!("{}", Instant::from_millis(12_034))).unwrap();
        assert_eq!(s.as_str(), "12.034s");
    }
}
