//! Logging shim: `trace!`, `debug!` and `warn!` forward to `log` or `defmt`
//! (whichever feature is on) and vanish when neither is. Both at once is
//! refused at compile time.
#![allow(unused_macros)]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("features `log` and `defmt` are mutually exclusive: pick one logger");

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::trace!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($crate::fmt::Ignore, $($arg)*); }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($crate::fmt::Ignore, $($arg)*); }
    }};
}

macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::warn!($($arg)*);
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ($crate::fmt::Ignore, $($arg)*); }
    }};
}

/// Placeholder that lets the no-logger expansion "use" the format arguments,
/// so that variables only used in log lines do not trigger unused warnings.
#[cfg(not(any(feature = "log", feature = "defmt")))]
pub(crate) struct Ignore;
