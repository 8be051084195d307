//! Logging shim: the same macros log through `log`, through `defmt`, or
//! vanish, depending on the crate's features. Format strings only use `{}`
//! with arguments that are integers or this crate's own types, which
//! implement both `Display` and (with `defmt`) `defmt::Format`.
//!
//! The backends define the same macros with [`__logging_macros`]
//! (`tcpool_core::__logging_macros!($);` in their own `fmt` module).

/// Defines `trace!`, `debug!` and `warning!` in the calling module, for the
/// calling crate's own logging policy: through `log` with its `log`
/// feature, through `defmt` with its `defmt` feature (both at once fails
/// to compile), otherwise nothing (the arguments are still type-checked).
/// Called as `__logging_macros!($)`: the `$` is passed in so that the
/// macros it defines can take arguments. Not part of the public API.
// rustfmt is not idempotent on macros that define macros: kept as written.
#[rustfmt::skip]
#[doc(hidden)]
#[macro_export]
macro_rules! __logging_macros {
    ($d:tt) => {
        #[cfg(all(feature = "log", feature = "defmt"))]
        compile_error!("features `log` and `defmt` are mutually exclusive: pick one logger");

        #[allow(unused_macros)]
        macro_rules! trace {
            ($d($d arg:tt)*) => {{
                #[cfg(feature = "log")]
                ::log::trace!($d($d arg)*);
                #[cfg(feature = "defmt")]
                ::defmt::trace!($d($d arg)*);
                #[cfg(not(any(feature = "log", feature = "defmt")))]
                { let _ = format_args!($d($d arg)*); }
            }};
        }

        #[allow(unused_macros)]
        macro_rules! debug {
            ($d($d arg:tt)*) => {{
                #[cfg(feature = "log")]
                ::log::debug!($d($d arg)*);
                #[cfg(feature = "defmt")]
                ::defmt::debug!($d($d arg)*);
                #[cfg(not(any(feature = "log", feature = "defmt")))]
                { let _ = format_args!($d($d arg)*); }
            }};
        }

        #[allow(unused_macros)]
        macro_rules! warning {
            ($d($d arg:tt)*) => {{
                #[cfg(feature = "log")]
                ::log::warn!($d($d arg)*);
                #[cfg(feature = "defmt")]
                ::defmt::warn!($d($d arg)*);
                #[cfg(not(any(feature = "log", feature = "defmt")))]
                { let _ = format_args!($d($d arg)*); }
            }};
        }

        #[allow(unused_imports)]
        pub(crate) use {debug, trace, warning};
    };
}

__logging_macros!($);
