//! tcpool-conformance (in progress).
