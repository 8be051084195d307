//! Time conversions between tcpool (milliseconds) and smoltcp
//! (microseconds).

use core::time::Duration;

use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use tcpool_core::Instant;

/// tcpool time (ms) to smoltcp time.
pub(crate) fn to_smol(now: Instant) -> SmolInstant {
    // smoltcp counts microseconds in an i64: clamp so the conversion cannot
    // overflow (that is 292,000 years of uptime).
    let millis = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    SmolInstant::from_millis(millis.min(i64::MAX / 1000))
}

/// smoltcp time to tcpool time, rounded *up* to the millisecond, so that a
/// caller polling at the returned instant is never early (which would make it
/// spin on a deadline that is a fraction of a millisecond away).
pub(crate) fn from_smol_ceil(t: SmolInstant) -> Instant {
    let micros = t.total_micros().max(0) as u64;
    Instant::from_millis(micros.div_ceil(1000))
}

/// A core duration as a smoltcp one, capped at about 35 years so that adding
/// it to an instant cannot overflow.
pub(crate) fn to_smol_duration(d: Duration) -> SmolDuration {
    const MAX_MICROS: u64 = 1 << 50;
    SmolDuration::from_micros(
        u64::try_from(d.as_micros()).map_or(MAX_MICROS, |m| m.min(MAX_MICROS)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_conversion_rounds_up_to_the_millisecond() {
        assert_eq!(
            from_smol_ceil(SmolInstant::from_micros(10_001)).as_millis(),
            11
        );
        assert_eq!(
            from_smol_ceil(SmolInstant::from_micros(10_000)).as_millis(),
            10
        );
        assert_eq!(from_smol_ceil(SmolInstant::from_micros(-5)).as_millis(), 0);
        assert_eq!(to_smol(Instant::from_millis(1234)).total_millis(), 1234);
        assert_eq!(
            to_smol(Instant::from_millis(u64::MAX)).total_millis(),
            i64::MAX / 1000
        );
    }
}
