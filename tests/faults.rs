//! Property tests: random traffic through a server over the in-memory stack
//! wrapped in a `FaultyStack` with a random fault schedule (would-block,
//! short reads and writes, accept errors, connection errors).
//!
//! Each property checks, for every generated case, that the byte stream
//! each handler sees is exactly what its client sent (a prefix for a
//! connection ended by a reset or an injected error), that every connection
//! ends in exactly one `on_closed`, that no slot or socket leaks, and that
//! the stats add up (see `tcpool_conformance::properties`).
//!
//! 10,000 cases in all by default. A failure message starts with the fault
//! seed (`fault seed 0x...`); proptest prints the whole minimal case and
//! saves it in `tests/faults.proptest-regressions`, from which it is
//! replayed first on the next run.

use proptest::prelude::*;
use tcpool_conformance::properties::{churn_case, lines_case, run_case, stream_case};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// Echo and sink traffic, up to 5 clients on 3 slots, random chunking,
    /// half-closes and resets, random faults including connection errors.
    #[test]
    fn handler_sees_exactly_the_bytes_each_client_sent(case in stream_case()) {
        let checked = run_case(&case);
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Lines split anywhere by random chunking and short reads come out as
    /// the lines sent, each answered once.
    #[test]
    fn lines_survive_any_split_and_fault_schedule(case in lines_case()) {
        let checked = run_case(&case);
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Many short connections against one or two served at once, a tight
    /// socket budget and heavy accept faults: nothing is lost or leaked.
    #[test]
    fn connection_churn_under_accept_faults_loses_and_leaks_nothing(case in churn_case()) {
        let checked = run_case(&case);
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }
}
