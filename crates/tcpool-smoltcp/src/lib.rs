//! tcpool-smoltcp (in progress).
