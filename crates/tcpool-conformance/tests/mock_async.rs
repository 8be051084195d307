//! Every scenario with async handlers on tcpool-core's in-memory stack
//! (the callback kind runs on it in the facade's `tests/conformance_mock.rs`).

tcpool_conformance::conformance_suite!(
    mock_async,
    tcpool_conformance::MockHarness,
    tcpool_conformance::Async
);
