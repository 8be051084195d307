//! The host's monotonic clock, as the server's millisecond [`Instant`].

use core::time::Duration;
use tcpool_core::Instant;

/// A monotonic clock reading [`tcpool_core::Instant`]s from
/// [`std::time::Instant`], in milliseconds since the clock was created.
///
/// Instants from two different `StdClock`s are not comparable; pass the same
/// clock to [`StdStack::wait`](crate::StdStack::wait) that produced the
/// deadline.
///
/// ```
/// use tcpool_std::StdClock;
///
/// let clock = StdClock::new();
/// let t0 = clock.now();
/// let t1 = clock.now();
/// assert!(t1 >= t0);
/// ```
#[derive(Copy, Clone, Debug)]
pub struct StdClock {
    epoch: std::time::Instant,
}

impl StdClock {
    /// A clock whose epoch (`Instant::ZERO`) is now.
    pub fn new() -> Self {
        StdClock {
            epoch: std::time::Instant::now(),
        }
    }

    /// The time now: whole milliseconds since the epoch, rounded down.
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The [`std::time::Instant`] that `t` stands for on this clock, or
    /// `None` if it is too far in the future for the platform to represent.
    ///
    /// Once that `std` instant has passed, [`now`](Self::now) is at least `t`.
    pub fn to_std(&self, t: Instant) -> Option<std::time::Instant> {
        self.epoch.checked_add(Duration::from_millis(t.as_millis()))
    }
}

impl Default for StdClock {
    fn default() -> Self {
        StdClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic_and_starts_near_zero() {
        let clock = StdClock::new();
        let a = clock.now();
        assert!(a.as_millis() < 1_000);
        std::thread::sleep(Duration::from_millis(20));
        let b = clock.now();
        assert!(b.saturating_duration_since(a) >= Duration::from_millis(20));
    }

    #[test]
    fn to_std_and_now_agree() {
        let clock = StdClock::new();
        let t = Instant::from_millis(30);
        let at = clock.to_std(t).unwrap();
        while std::time::Instant::now() < at {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(clock.now() >= t);
    }
}
