//! tcpool-lwip (in progress).
