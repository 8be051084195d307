//! Logging macros that forward to `log` when the `log` feature is on and
//! vanish otherwise.
#![allow(unused_macros)]

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        log::trace!($($arg)*);
        #[cfg(not(feature = "log"))]
        { let _ = format_args!($($arg)*); }
    }};
}

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        log::debug!($($arg)*);
        #[cfg(not(feature = "log"))]
        { let _ = format_args!($($arg)*); }
    }};
}

macro_rules! warning {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        log::warn!($($arg)*);
        #[cfg(not(feature = "log"))]
        { let _ = format_args!($($arg)*); }
    }};
}

pub(crate) use {debug, trace, warning};
