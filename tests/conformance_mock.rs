//! The shared conformance suite on tcpool-core's in-memory mock stack.
//!
//! The mock has no clock and no readiness API: the harness keeps a
//! simulated clock (1 ms per step) and polls the server only when a client
//! action it declared interest in happened or its deadline came (see
//! `tcpool_conformance::Wake`).

tcpool_conformance::conformance_suite!(mock, tcpool_conformance::MockHarness);
