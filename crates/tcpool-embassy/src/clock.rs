//! [`EmbassyClock`]: embassy-time as the async driver's clock.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Waker};

use tcpool_core::Instant;
use tcpool_core::asynch::Clock;

/// The [`Clock`] of tcpool's async driver on embassy-time: milliseconds
/// since embassy-time's epoch (boot), and wake-ups armed with
/// `embassy_time::Timer::at`.
///
/// ```
/// use tcpool_core::asynch::Clock;
/// use tcpool_embassy::EmbassyClock;
///
/// let clock = EmbassyClock;
/// let t = clock.now();
/// assert!(clock.now() >= t);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }

    fn wake_at(&mut self, at: Instant, waker: &Waker) {
        let at = embassy_time::Instant::from_millis(at.as_millis());
        // A timer polled once stays registered with the time driver after it
        // is dropped: the waker is woken at `at`.
        let mut cx = Context::from_waker(waker);
        let _ = pin!(embassy_time::Timer::at(at)).poll(&mut cx);
    }
}
