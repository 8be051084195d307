//! Logging shim: `trace!`, `debug!` and `warn!` forward to `log` or `defmt`
//! (whichever feature is on) and vanish when neither is. With both on (an
//! `--all-features` host build), `log` is used and `defmt` only derives
//! `defmt::Format` on the public types.
#![allow(unused_macros)]

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(all(feature = "defmt", not(feature = "log")))]
        ::defmt::trace!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($crate::fmt::Ignore, $($arg)*); }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(all(feature = "defmt", not(feature = "log")))]
        ::defmt::debug!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($crate::fmt::Ignore, $($arg)*); }
    }};
}

macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::warn!($($arg)*);
        #[cfg(all(feature = "defmt", not(feature = "log")))]
        ::defmt::warn!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($crate::fmt::Ignore, $($arg)*); }
    }};
}

/// Placeholder that lets the no-logger expansion "use" the format arguments,
/// so that variables only used in log lines do not trigger unused warnings.
#[cfg(not(any(feature = "log", feature = "defmt")))]
pub(crate) struct Ignore;
