//! Logging shim: `trace!`, `debug!` and `warning!` log through `log` or
//! `defmt` (whichever of this crate's features is on) and vanish when
//! neither is; both at once fails to compile. The macros are tcpool-core's
//! (`__logging_macros`), so every crate follows one policy. Format strings
//! only use `{}` and `{:?}` with arguments that implement both
//! `Display`/`Debug` and (with `defmt`) `defmt::Format`.

tcpool_core::__logging_macros!($);
