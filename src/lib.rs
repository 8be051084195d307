//! tcpool (in progress).
pub use tcpool_core::*;
