//! tcpool-lwip-host (in progress).
