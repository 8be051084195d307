//! Logging shim: the macros log through `log` when the `log` feature is on
//! and vanish otherwise (the host backend has no `defmt`: that is for
//! firmware). Arguments are still type-checked when logging is off.
#![allow(unused_macros)]

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(not(feature = "log"))]
        { let _ = format_args!($($arg)*); }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(not(feature = "log"))]
        { let _ = format_args!($($arg)*); }
    }};
}

pub(crate) use {debug, trace};
