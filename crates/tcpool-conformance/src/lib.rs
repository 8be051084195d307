//! The shared conformance suite of tcpool: every guarantee of the design
//! written once as a scenario, generic over a backend [`Harness`], and run
//! by every backend.
//!
//! # Running a backend
//!
//! A backend implements [`Harness`] for its stack and adds one line to a
//! test file:
//!
//! ```
//! tcpool_conformance::conformance_suite!(mock, tcpool_conformance::MockHarness);
//! # fn main() {}
//! ```
//!
//! which expands to a module `mock` with one `#[test]` per scenario, so
//! `cargo test` lists `mock::echo_round_trip`, `mock::rebind_after_restart`,
//! and so on (see [`scenarios::ALL`]).
//!
//! # Both handler kinds
//!
//! Every scenario runs with either kind of handler ([`Kind`]): callback
//! `Handler`s ([`Callbacks`], the default) or async handlers ([`Async`]:
//! sequential code over `AsyncConn`, one task per slot). A third argument
//! picks the kind:
//!
//! ```
//! tcpool_conformance::conformance_suite!(
//!     mock_async,
//!     tcpool_conformance::MockHarness,
//!     tcpool_conformance::Async
//! );
//! # fn main() {}
//! ```
//!
//! The scenarios are written once, against [`RecDrive`] (the server as
//! they see it); both kinds record the same events in a [`Recorder`], so
//! each scenario checks the same things whichever kind served it.
//!
//! # What is in the crate
//!
//! * [`Harness`]: the server-side stack, clients, stepping the network and
//!   the clock, and the backend's capabilities (restart, socket budget,
//!   accept failures); a backend that cannot do one says why, and the
//!   scenario prints `SKIPPED <scenario> on <backend>: <reason>` on the real
//!   standard error (never a silent pass).
//! * [`scenarios`]: the scenario functions.
//! * [`Recorder`]: the handlers the scenarios run (echo, sink, hold, lines,
//!   length-prefixed frames), recording every connection; [`Echo`], the
//!   plain echo handler for tests and benchmarks that need nothing more.
//! * [`AsyncRecorder`]: the same application as an async handler, and
//!   [`AsyncServerDrive`], the async server stepped as a [`Drive`].
//! * [`FaultyStack`]: a wrapper injecting would-block, short reads and
//!   writes, accept errors and connection errors into any stack, from a
//!   seeded RNG.
//! * [`properties`]: property-test bodies over the mock stack wrapped in a
//!   [`FaultyStack`] (the facade's `tests/faults.rs` runs them).
//! * [`MockHarness`]: the harness of tcpool-core's in-memory stack.
//!
//! Every wait is bounded ([`Patience`]): a scenario fails with a message
//! naming what it waited for and the server's state; it never hangs.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod async_handlers;
mod drive;
mod faulty;
mod handlers;
mod harness;
mod kind;
mod mock;
mod pattern;
pub mod properties;
pub mod scenarios;

pub use async_handlers::AsyncRecorder;
pub use drive::{Bound, Peer, loud, note, serve, skipped, start, start_on, wait_for};
pub use faulty::{FaultCounts, FaultError, Faults, FaultyStack, Op};
pub use handlers::{ConnRecord, ConnState, Echo, Mode, Recorder};
pub use harness::{
    ClientError, Drive, Harness, NoServer, Patience, Recv, SocketOf, TransferSize, Unsupported,
};
pub use kind::{Async, AsyncServerDrive, Callbacks, Kind, RecDrive};
pub use mock::{MOCK_BACKLOG, MOCK_MAX_SOCKETS, MOCK_PORT, MockHarness, MockReadyHarness, Wake};
pub use pattern::Pattern;

/// Runs one scenario on a fresh harness.
pub fn run_scenario<H: Harness>(scenario: fn(&mut H)) {
    let mut h = H::new();
    scenario(&mut h);
}

/// Expands to a module named `$backend` holding one `#[test]` per scenario
/// of [`scenarios`], each running it on a fresh `$harness`, with callback
/// handlers or with the handler kind given as a third argument
/// ([`Callbacks`], [`Async`]).
///
/// The module name must not shadow a crate the tests use (`std`, `core`):
///
/// ```
/// use tcpool_conformance::MockHarness as InMemory;
/// tcpool_conformance::conformance_suite!(in_memory, InMemory);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ident, $harness:ty) => {
        $crate::conformance_suite!($backend, $harness, $crate::Callbacks);
    };
    ($backend:ident, $harness:ty, $kind:ty) => {
        #[allow(non_snake_case)]
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_tests! {
                $harness, $kind;
                echo_round_trip,
                connect_send_close_2000_cycles_lose_no_bytes,
                more_clients_than_slots_defer_without_eviction,
                reject_closes_newcomers_cleanly,
                evict_idlest_picks_longest_idle_and_respects_min_idle,
                peer_half_close_delivers_all_data_and_reply_is_still_sent,
                graceful_close_sends_pending_output_before_eof,
                idle_timeout_closes_and_slot_is_reused,
                pattern_transfer_10mb_with_several_clients,
                slow_reader_backpressure_no_loss_bounded_memory,
                long_response_streams_through_on_writable_without_client_input,
                framing_lines_split_at_every_byte_boundary,
                framing_length_prefix_split_at_every_byte_boundary,
                oversized_frame_closes_with_reason,
                peer_reset_mid_transfer_affects_no_other_client,
                rebind_after_restart,
                stack_out_of_sockets_accept_fails_and_recovers,
                accept_burst_larger_than_backlog,
                refused_peer_never_evicts,
                request_deadline_closes_trickling_clients,
                write_stall_resets_a_peer_that_never_reads,
                abort_resets_the_peer,
            }
        }
    };
}

/// The per-scenario tests of [`conformance_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($harness:ty, $kind:ty; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                $crate::run_scenario::<$harness>($crate::scenarios::$scenario::<$harness, $kind>);
            }
        )*
        /// The macro's list and [`scenarios::ALL`] name the same scenarios.
        #[test]
        fn suite_lists_every_scenario() {
            let listed: &[&str] = &[$(stringify!($scenario)),*];
            assert_eq!(listed, $crate::scenarios::ALL);
        }
    };
}
