//! Property-test bodies: random traffic through a server over the mock
//! stack wrapped in a [`FaultyStack`] with a random fault schedule.
//!
//! A [`Case`] is everything one run needs (fault seed and probabilities,
//! the mock's window and socket budget, the clients' data, chunking, start
//! times and endings); [`run_case`] runs it and checks:
//!
//! * the bytes each handler consumed are exactly what its client sent, or
//!   a prefix of it for a connection ended by a reset or an injected error;
//!   echoes and line replies likewise;
//! * every connection ends in exactly one `on_closed`, with a reason that
//!   fits how it ended;
//! * no slot or socket leaks: `active` returns to 0, the mock holds only the
//!   listener, the wrapper counts one open socket;
//! * the stats add up: `accepted == closed.total()`, `bytes_in` and
//!   `bytes_out` are the sums over connections.
//!
//! Failures name the fault seed, so a case can be replayed with
//! [`run_case`] (proptest also persists failing cases).

use core::time::Duration;
use std::string::String;
use std::vec::Vec;

use proptest::prelude::*;
use tcpool_core::mock::{ClientRead, MockClient, MockConfig, MockStack};
use tcpool_core::{CloseReason, Config, Instant, Server};

use crate::faulty::{Faults, FaultyStack};
use crate::handlers::{Mode, Recorder};

/// The port the property server listens on.
pub const PORT: u16 = 7100;

/// The most steps a case may take before it counts as stuck.
pub const MAX_STEPS: u32 = 50_000;

/// What the server does with input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Echo every byte.
    Echo,
    /// Consume everything, answer nothing.
    Sink,
    /// Lines of at most [`LINE_MAX`] bytes, each answered with itself.
    Lines,
}

/// The longest line in [`Traffic::Lines`] cases.
pub const LINE_MAX: usize = 24;

/// How a client ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Sends everything, half-closes, reads until the server's FIN.
    HalfClose,
    /// Resets the connection once `after` bytes (clamped to its data) are
    /// sent.
    Reset {
        /// Bytes sent before the reset.
        after: usize,
    },
}

/// One client of a [`Case`].
#[derive(Debug, Clone)]
pub struct ClientPlan {
    /// What it sends.
    pub data: Vec<u8>,
    /// Sizes of its sends, used in turn.
    pub chunks: Vec<usize>,
    /// Steps before it connects.
    pub start_after: u32,
    /// Bytes it reads per step.
    pub read_chunk: usize,
    /// How it ends.
    pub ending: Ending,
}

/// One property-test run.
#[derive(Debug, Clone)]
pub struct Case {
    /// The seed of the fault RNG.
    pub seed: u64,
    /// Fault probabilities.
    pub faults: Faults,
    /// The mock's window per direction.
    pub window: usize,
    /// The mock's socket budget (listener and backlog included).
    pub max_sockets: usize,
    /// The server's `max_connections` (its pool has [`SLOTS`] slots).
    pub max_connections: usize,
    /// What the server does with input.
    pub traffic: Traffic,
    /// The clients.
    pub clients: Vec<ClientPlan>,
}

/// The pool size of the property server.
pub const SLOTS: usize = 3;

type PropServer = Server<FaultyStack<MockStack>, Recorder, SLOTS, 32, 64>;

/// A client during a run.
struct Live {
    plan: ClientPlan,
    client: Option<MockClient>,
    sent: usize,
    chunk: usize,
    got: Vec<u8>,
    shut: bool,
    done: bool,
    refused: u32,
}

impl Live {
    fn limit(&self) -> usize {
        match self.plan.ending {
            Ending::HalfClose => self.plan.data.len(),
            Ending::Reset { after } => after.min(self.plan.data.len()),
        }
    }

    /// One step of the client; true if it did anything.
    fn act(&mut self, mock: &MockStack, step: u32, buf: &mut [u8]) {
        if self.done || step < self.plan.start_after {
            return;
        }
        let Some(client) = self.client.as_ref() else {
            match mock.connect_client(PORT) {
                Ok(c) => self.client = Some(c),
                Err(_) => self.refused += 1,
            }
            return;
        };
        let limit = self.limit();
        if self.sent < limit {
            let size = self.plan.chunks[self.chunk % self.plan.chunks.len()].max(1);
            let end = (self.sent + size).min(limit);
            let n = client.send(&self.plan.data[self.sent..end]);
            if n > 0 {
                self.chunk += 1;
            }
            self.sent += n;
        }
        if let Ending::Reset { .. } = self.plan.ending
            && self.sent >= limit
        {
            client.reset();
            self.done = true;
            return;
        }
        if self.sent == limit && !self.shut {
            client.shutdown_write();
            self.shut = true;
        }
        let want = self.plan.read_chunk.clamp(1, buf.len());
        match client.recv(&mut buf[..want]) {
            ClientRead::Data(n) => self.got.extend_from_slice(&buf[..n]),
            ClientRead::WouldBlock => {}
            ClientRead::Eof | ClientRead::Reset => self.done = true,
        }
    }
}

/// The lines a client's data holds (terminator stripped), for
/// [`Traffic::Lines`].
fn lines_of(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
        let line = &rest[..nl];
        out.push(line.strip_suffix(b"\r").unwrap_or(line).to_vec());
        rest = &rest[nl + 1..];
    }
    out
}

fn is_prefix<T: PartialEq>(prefix: &[T], of: &[T]) -> bool {
    prefix.len() <= of.len() && of[..prefix.len()] == *prefix
}

/// Runs `case` and checks every invariant; `Err` says what broke, with the
/// seed.
pub fn run_case(case: &Case) -> Result<(), String> {
    let fail = |what: String| Err(format!("fault seed {:#x}: {what}", case.seed));
    let mock = MockStack::with_config(MockConfig {
        max_sockets: case.max_sockets,
        backlog: 8,
        window: case.window,
    });
    // Half the cases (by the seed's lowest bit) on a stack that reports
    // readiness: the server then services only what it is told is ready.
    mock.set_reports_ready(case.seed & 1 == 1);
    let mut stack = FaultyStack::new(mock.clone(), case.seed, case.faults);
    let mode = match case.traffic {
        Traffic::Echo => Mode::Echo,
        Traffic::Sink => Mode::Sink,
        Traffic::Lines => Mode::Lines { max: LINE_MAX },
    };
    let config = Config::new()
        .with_max_connections(case.max_connections)
        .with_accept_backoff(Duration::from_millis(3));
    let mut server: PropServer = Server::new(Recorder::new(mode), config);
    if let Err(e) = server.listen(&mut stack, PORT) {
        return fail(format!("listen: {e:?}"));
    }
    let mut clients: Vec<Live> = case
        .clients
        .iter()
        .map(|plan| Live {
            plan: plan.clone(),
            client: None,
            sent: 0,
            chunk: 0,
            got: Vec::new(),
            shut: false,
            done: false,
            refused: 0,
        })
        .collect();
    let mut buf = [0u8; 128];
    let mut settled = false;
    for step in 0..MAX_STEPS {
        let now = Instant::from_millis(u64::from(step));
        for c in clients.iter_mut() {
            c.act(&mock, step, &mut buf);
        }
        server.poll(&mut stack, now);
        if clients.iter().all(|c| c.done) && server.active() == 0 && mock.backlog_len(PORT) == 0 {
            settled = true;
            break;
        }
    }
    if !settled {
        let states: Vec<String> = server.slot_states().map(|s| s.to_string()).collect();
        return fail(format!(
            "did not settle in {MAX_STEPS} steps: slots {states:?}, backlog {}, clients done {:?}, \
             stats {:?}",
            mock.backlog_len(PORT),
            clients.iter().map(|c| c.done).collect::<Vec<_>>(),
            server.stats()
        ));
    }

    // No leaks, and the books balance.
    let stats = *server.stats();
    let rec = server.handler();
    if mock.sockets_in_use() != 1 || stack.open_sockets() != 1 {
        return fail(format!(
            "sockets left open: mock {}, wrapper {} (only the listener should be)",
            mock.sockets_in_use(),
            stack.open_sockets()
        ));
    }
    if stats.accepted != stats.closed.total() {
        return fail(format!(
            "accepted {} != closed {}",
            stats.accepted,
            stats.closed.total()
        ));
    }
    if rec.conns().len() != stats.accepted as usize || rec.closed().len() != rec.conns().len() {
        return fail(format!(
            "on_open {} / on_closed {} / accepted {}",
            rec.conns().len(),
            rec.closed().len(),
            stats.accepted
        ));
    }
    if let Some(c) = rec.conns().iter().find(|c| c.closed_calls != 1) {
        return fail(format!(
            "conn {} got {} on_closed calls",
            c.id, c.closed_calls
        ));
    }
    if let Some(c) = rec.conns().iter().find(|c| c.data_after_peer_closed != 0) {
        return fail(format!("conn {} got on_data after on_peer_closed", c.id));
    }
    let bytes_in: u64 = rec.closed().iter().map(|c| c.bytes_in).sum();
    let bytes_out: u64 = rec.closed().iter().map(|c| c.bytes_out).sum();
    if stats.bytes_in != bytes_in || stats.bytes_out != bytes_out {
        return fail(format!(
            "stats bytes in/out {}/{} != sums {bytes_in}/{bytes_out}",
            stats.bytes_in, stats.bytes_out
        ));
    }
    let errors_possible = case.faults.send_error > 0 || case.faults.receive_error > 0;

    // Each client's stream.
    for (i, c) in clients.iter().enumerate() {
        let Some(client) = c.client.as_ref() else {
            return fail(format!(
                "client {i} never connected ({} refusals)",
                c.refused
            ));
        };
        let Some(r) = rec.by_peer(client.local_addr()) else {
            return fail(format!("client {i} was never accepted"));
        };
        let closed = r.closed.expect("checked above");
        let data = &c.plan.data;
        let clean = closed.reason == CloseReason::PeerClosed;
        let reason_ok = match c.plan.ending {
            Ending::HalfClose => {
                clean || (errors_possible && closed.reason == CloseReason::StackError)
            }
            Ending::Reset { .. } => {
                matches!(closed.reason, CloseReason::Reset | CloseReason::StackError)
            }
        };
        if !reason_ok {
            return fail(format!(
                "client {i} ({:?}) closed with {}",
                c.plan.ending, closed.reason
            ));
        }
        if case.traffic != Traffic::Lines {
            if !is_prefix(&r.data, data) {
                return fail(format!(
                    "client {i}: the handler got {} bytes that are not a prefix of the {} sent",
                    r.data.len(),
                    data.len()
                ));
            }
            if clean && r.data != *data {
                return fail(format!(
                    "client {i}: clean close but the handler got {} of {} bytes",
                    r.data.len(),
                    data.len()
                ));
            }
        }
        if clean && closed.bytes_in != data.len() as u64 {
            return fail(format!(
                "client {i}: the server received {} of {} bytes",
                closed.bytes_in,
                data.len()
            ));
        }
        if clean && r.peer_closed_after != Some(r.consumed) {
            return fail(format!(
                "client {i}: on_peer_closed after {:?} of {} consumed bytes",
                r.peer_closed_after, r.consumed
            ));
        }
        let (expected_reply, complete) = match case.traffic {
            Traffic::Sink => (Vec::new(), true),
            Traffic::Echo => (data.clone(), clean),
            Traffic::Lines => {
                let lines = lines_of(data);
                if !is_prefix(&r.messages, &lines) {
                    return fail(format!(
                        "client {i}: the handler's lines are not a prefix of those sent: \
                         {:?} vs {:?}",
                        r.messages, lines
                    ));
                }
                if clean && r.messages != lines {
                    return fail(format!(
                        "client {i}: clean close but {} of {} lines",
                        r.messages.len(),
                        lines.len()
                    ));
                }
                let mut reply = Vec::new();
                for l in &lines {
                    reply.extend_from_slice(l);
                    reply.push(b'\n');
                }
                (reply, clean)
            }
        };
        if !is_prefix(&c.got, &expected_reply) {
            return fail(format!(
                "client {i}: received {} bytes that are not a prefix of the expected reply",
                c.got.len()
            ));
        }
        if complete && matches!(c.plan.ending, Ending::HalfClose) && c.got != expected_reply {
            return fail(format!(
                "client {i}: clean close but received {} of {} reply bytes",
                c.got.len(),
                expected_reply.len()
            ));
        }
    }
    let mut ids: Vec<u32> = rec.conns().iter().map(|c| c.id.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != rec.conns().len() {
        return fail(String::from("connection ids repeat"));
    }
    Ok(())
}

/// Fault probabilities: none at all a quarter of the time, otherwise
/// would-blocks and short transfers up to 40 %, accept errors up to 20 %,
/// connection errors up to 2 % of calls (if `errors`).
pub fn faults(errors: bool) -> impl Strategy<Value = Faults> {
    let err = if errors { 0u16..=20 } else { 0u16..=0 };
    let some = (
        (0u16..=400, 0u16..=200, 0u16..=400, 0u16..=400),
        (err.clone(), 0u16..=400, 0u16..=400, err),
    )
        .prop_map(|((awb, aerr, swb, sw), (serr, rwb, sr, rerr))| Faults {
            accept_would_block: awb,
            accept_error: aerr,
            send_would_block: swb,
            short_write: sw,
            send_error: serr,
            receive_would_block: rwb,
            short_read: sr,
            receive_error: rerr,
        });
    prop_oneof![1 => Just(Faults::NONE), 3 => some]
}

fn ending(max_after: usize) -> impl Strategy<Value = Ending> {
    prop_oneof![
        4 => Just(Ending::HalfClose),
        1 => (0..=max_after).prop_map(|after| Ending::Reset { after }),
    ]
}

fn plan(data: impl Strategy<Value = Vec<u8>>, start: u32) -> impl Strategy<Value = ClientPlan> {
    (
        data,
        proptest::collection::vec(prop_oneof![3 => 1usize..=48, 1 => 49usize..=300], 1..4),
        0..=start,
        1usize..=64,
        ending(2_000),
    )
        .prop_map(
            |(data, chunks, start_after, read_chunk, ending)| ClientPlan {
                data,
                chunks,
                start_after,
                read_chunk,
                ending,
            },
        )
}

/// Streams: echo or sink, 1 to 6 clients (more than the 3 slots) with up to
/// 2,000 random bytes each, random chunking, a random window, random faults
/// with connection errors.
pub fn stream_case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        faults(true),
        4usize..=128,
        prop_oneof![Just(Traffic::Echo), Just(Traffic::Sink)],
        proptest::collection::vec(
            plan(proptest::collection::vec(any::<u8>(), 0..2_000), 40),
            1..=6,
        ),
    )
        .prop_map(|(seed, faults, window, traffic, clients)| Case {
            seed,
            faults,
            window,
            max_sockets: 64,
            max_connections: SLOTS,
            traffic,
            clients,
        })
}

/// One line: printable ASCII (no `\n`, no `\r`), at most [`LINE_MAX`]
/// bytes, ended by LF or CRLF.
fn line() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(b' '..=b'~', 0..=LINE_MAX),
        any::<bool>(),
    )
        .prop_map(|(mut text, crlf)| {
            // Keep clear of the commands the line handler acts on.
            if text.starts_with(b"QUIT") || text.starts_with(b"SEND") {
                text[0] = b'#';
            }
            text.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            text
        })
}

/// Lines: 1 to 4 clients sending up to 40 random lines each, randomly
/// chunked (so lines split anywhere), under random faults with connection
/// errors.
pub fn lines_case() -> impl Strategy<Value = Case> {
    let data = proptest::collection::vec(line(), 0..40).prop_map(|ls| ls.concat());
    (
        any::<u64>(),
        faults(true),
        4usize..=96,
        proptest::collection::vec(plan(data, 30), 1..=4),
    )
        .prop_map(|(seed, faults, window, clients)| Case {
            seed,
            faults,
            window,
            max_sockets: 64,
            max_connections: SLOTS,
            traffic: Traffic::Lines,
            clients,
        })
}

/// Churn: 4 to 24 short connections (up to 16 bytes) against 1 or 2 served
/// at once, a tight socket budget (connects refused, retried), and heavy
/// accept faults.
pub fn churn_case() -> impl Strategy<Value = Case> {
    let accept_faults = (0u16..=600, 0u16..=500, faults(false)).prop_map(|(awb, aerr, f)| Faults {
        accept_would_block: awb,
        accept_error: aerr,
        ..f
    });
    (
        any::<u64>(),
        accept_faults,
        2usize..=32,
        3usize..=8,
        1usize..=2,
        prop_oneof![Just(Traffic::Echo), Just(Traffic::Sink)],
        proptest::collection::vec(
            plan(proptest::collection::vec(any::<u8>(), 1..=16), 60),
            4..=24,
        ),
    )
        .prop_map(
            |(seed, faults, window, max_sockets, max_connections, traffic, clients)| Case {
                seed,
                faults,
                window,
                max_sockets,
                max_connections,
                traffic,
                clients,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple(traffic: Traffic, ending: Ending, faults: Faults) -> Case {
        Case {
            seed: 1,
            faults,
            window: 16,
            max_sockets: 64,
            max_connections: SLOTS,
            traffic,
            clients: (0..5)
                .map(|i| ClientPlan {
                    data: (0..100u8).map(|b| b ^ i).collect(),
                    chunks: std::vec![7, 13],
                    start_after: u32::from(i),
                    read_chunk: 9,
                    ending,
                })
                .collect(),
        }
    }

    #[test]
    fn clean_echo_case_passes() {
        run_case(&simple(Traffic::Echo, Ending::HalfClose, Faults::NONE)).unwrap();
    }

    #[test]
    fn faulty_lines_and_resets_pass() {
        let faults = Faults {
            short_read: 300,
            short_write: 300,
            receive_would_block: 200,
            accept_error: 100,
            ..Faults::NONE
        };
        run_case(&simple(Traffic::Echo, Ending::Reset { after: 50 }, faults)).unwrap();
        let mut lines = simple(Traffic::Lines, Ending::HalfClose, faults);
        for c in lines.clients.iter_mut() {
            c.data = b"one\r\ntwo\n\nthree four\n".to_vec();
        }
        run_case(&lines).unwrap();
    }

    #[test]
    fn a_case_that_cannot_finish_fails_with_its_seed() {
        let mut case = simple(Traffic::Sink, Ending::HalfClose, Faults::NONE);
        case.seed = 0xabc;
        case.clients[0].start_after = MAX_STEPS + 1;
        let err = run_case(&case).unwrap_err();
        assert!(err.starts_with("fault seed 0xabc: did not settle"), "{err}");
    }
}
