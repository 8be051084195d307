//! The scenarios: each guarantee of the design written once, generic over a
//! [`Harness`], named after the behaviour it pins down.
//!
//! Every scenario starts its own server(s) on the harness, never blocks
//! (each wait is bounded by the harness's [`Patience`](crate::Patience)),
//! and ends by checking the books: every connection ended in exactly one
//! `on_closed`, the counters add up, and no socket is left open.

use crate::drive::wait_for;
use crate::harness::Harness;
use crate::kind::{Kind, RecDrive};

mod admission;
mod basic;
mod closing;
mod framing;
mod stack;
mod transfer;

pub use admission::{
    accept_burst_larger_than_backlog, evict_idlest_picks_longest_idle_and_respects_min_idle,
    more_clients_than_slots_defer_without_eviction, refused_peer_never_evicts,
    reject_closes_newcomers_cleanly,
};
pub use basic::{connect_send_close_2000_cycles_lose_no_bytes, echo_round_trip};
pub use closing::{
    abort_resets_the_peer, graceful_close_sends_pending_output_before_eof,
    idle_timeout_closes_and_slot_is_reused, oversized_frame_closes_with_reason,
    peer_half_close_delivers_all_data_and_reply_is_still_sent,
    peer_reset_mid_transfer_affects_no_other_client, request_deadline_closes_trickling_clients,
    write_stall_resets_a_peer_that_never_reads,
};
pub use framing::{
    framing_length_prefix_split_at_every_byte_boundary, framing_lines_split_at_every_byte_boundary,
};
pub use stack::{rebind_after_restart, stack_out_of_sockets_accept_fails_and_recovers};
pub use transfer::{
    long_response_streams_through_on_writable_without_client_input,
    pattern_transfer_10mb_with_several_clients, slow_reader_backpressure_no_loss_bounded_memory,
};

/// The names of all scenarios, in the order [`conformance_suite!`](crate::conformance_suite)
/// lists them.
pub const ALL: &[&str] = &[
    "echo_round_trip",
    "connect_send_close_2000_cycles_lose_no_bytes",
    "more_clients_than_slots_defer_without_eviction",
    "reject_closes_newcomers_cleanly",
    "evict_idlest_picks_longest_idle_and_respects_min_idle",
    "peer_half_close_delivers_all_data_and_reply_is_still_sent",
    "graceful_close_sends_pending_output_before_eof",
    "idle_timeout_closes_and_slot_is_reused",
    "pattern_transfer_10mb_with_several_clients",
    "slow_reader_backpressure_no_loss_bounded_memory",
    "long_response_streams_through_on_writable_without_client_input",
    "framing_lines_split_at_every_byte_boundary",
    "framing_length_prefix_split_at_every_byte_boundary",
    "oversized_frame_closes_with_reason",
    "peer_reset_mid_transfer_affects_no_other_client",
    "rebind_after_restart",
    "stack_out_of_sockets_accept_fails_and_recovers",
    "accept_burst_larger_than_backlog",
    "refused_peer_never_evicts",
    "request_deadline_closes_trickling_clients",
    "write_stall_resets_a_peer_that_never_reads",
    "abort_resets_the_peer",
];

/// The server type the scenarios use: a [`Recorder`](crate::Recorder) over
/// the harness's stack, served by handler kind `K`.
pub type RecServer<H, K, const N: usize, const RX: usize, const TX: usize> =
    <K as Kind<<H as Harness>::Stack>>::Server<N, RX, TX>;

/// Waits until every connection has ended, then checks the books: exactly
/// one `on_closed` per connection opened, `accepted == closed.total()`,
/// byte counters equal to the sums over connections, no `on_data` after
/// `on_peer_closed`, and (if the backend can tell) only the listening
/// socket left open.
pub fn assert_all_closed<H: Harness, D: RecDrive<H::Stack>>(
    h: &mut H,
    server: &mut D,
    scenario: &str,
) {
    let b = H::BACKEND;
    wait_for(h, server, "every connection to end", |_, s| s.active() == 0);
    let stats = *server.stats();
    let rec = server.handler();
    assert_eq!(
        stats.accepted,
        stats.closed.total(),
        "[{b}] {scenario}: accepted != closed.total(): {stats:?}"
    );
    assert_eq!(
        rec.conns().len(),
        stats.accepted as usize,
        "[{b}] {scenario}: on_open calls != accepted"
    );
    assert_eq!(
        rec.closed().len(),
        stats.accepted as usize,
        "[{b}] {scenario}: on_closed calls != accepted"
    );
    for c in rec.conns() {
        assert_eq!(
            c.closed_calls, 1,
            "[{b}] {scenario}: conn {} got {} on_closed calls",
            c.id, c.closed_calls
        );
        assert_eq!(
            c.data_after_peer_closed, 0,
            "[{b}] {scenario}: conn {} got on_data after on_peer_closed",
            c.id
        );
    }
    let bytes_in: u64 = rec.closed().iter().map(|c| c.bytes_in).sum();
    let bytes_out: u64 = rec.closed().iter().map(|c| c.bytes_out).sum();
    assert_eq!(
        stats.bytes_in, bytes_in,
        "[{b}] {scenario}: bytes_in != sum over connections"
    );
    assert_eq!(
        stats.bytes_out, bytes_out,
        "[{b}] {scenario}: bytes_out != sum over connections"
    );
    if let Some(open) = h.server_sockets() {
        assert_eq!(
            open, 1,
            "[{b}] {scenario}: {open} server-side sockets open after every connection ended \
             (only the listener should be)"
        );
    }
}
