//! tcpool-std (in progress).
