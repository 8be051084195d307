//! The shared conformance suite on the in-memory mock stack reporting
//! readiness, as an epoll backend does: the server services only the
//! sockets the stack reports ready, what has work of its own and what is
//! due, so a socket it forgot to watch stalls its scenario.

tcpool_conformance::conformance_suite!(mock_ready, tcpool_conformance::MockReadyHarness);

// And with async handlers.
mod with_async_handlers {
    tcpool_conformance::conformance_suite!(
        mock_ready_async,
        tcpool_conformance::MockReadyHarness,
        tcpool_conformance::Async
    );
}
