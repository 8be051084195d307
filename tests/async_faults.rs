//! Property test of the async path: random traffic through
//! `async_handler::serve` with an async echo handler, over the in-memory
//! stack wrapped in a `FaultyStack` with a random fault schedule
//! (would-block, short reads and writes, accept errors, connection errors),
//! as `tests/faults.rs` does for the callback handlers.
//!
//! For every generated case: each connection ends in exactly one
//! `on_closed`; for every connection not ended by an injected error or its
//! client's reset, the bytes the handler read (and so echoed) are exactly
//! the bytes its client sent, the client reads them all back, then a clean
//! end of stream, and the close reason is `peer_closed`; for the others,
//! what the handler read is a prefix of what was sent, and what came back
//! a prefix of that.
//!
//! A failure message starts with the fault seed; proptest prints the
//! minimal case and saves it in `tests/async_faults.proptest-regressions`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use embedded_io_async::{Read, Write};
use proptest::prelude::*;
use tcpool_conformance::properties::faults;
use tcpool_conformance::{Faults, FaultyStack};
use tcpool_core::async_handler::{self, Adapter, AsyncConn, AsyncHandler, AsyncServer};
use tcpool_core::asynch::Clock;
use tcpool_core::mock::{ClientRead, MockClient, MockConfig, MockStack};
use tcpool_core::{CloseReason, Closed, Config, Instant, Server};

const PORT: u16 = 7200;
/// Slots of the server; clients beyond them wait.
const SLOTS: usize = 3;
/// Steps a case may take before it counts as stuck.
const MAX_STEPS: u32 = 60_000;

/// How a client ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Sends everything, half-closes, reads until the server's FIN.
    HalfClose,
    /// Resets the connection once `after` bytes (clamped) are sent.
    Reset { after: usize },
}

#[derive(Debug, Clone)]
struct Plan {
    data: Vec<u8>,
    /// Sizes of its sends, used in turn.
    chunks: Vec<usize>,
    /// Steps before it connects.
    start_after: u32,
    /// Bytes it reads per step.
    read_chunk: usize,
    ending: Ending,
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    faults: Faults,
    /// The mock's window per direction.
    window: usize,
    /// The echo handler's read buffer.
    read_buf: usize,
    clients: Vec<Plan>,
}

/// A waker that does nothing: the run polls the server's future at every
/// step anyway.
struct Ignore;

impl Wake for Ignore {
    fn wake(self: Arc<Self>) {}
}

/// A simulated clock: every read moves it on by a millisecond.
struct SimClock(Cell<u64>);

impl Clock for SimClock {
    fn now(&self) -> Instant {
        let t = self.0.get();
        self.0.set(t + 1);
        Instant::from_millis(t)
    }
    fn wake_at(&mut self, _: Instant, _: &Waker) {}
}

/// Echoes every byte, recording what it read per client port and how each
/// connection ended.
struct Recorder {
    read_buf: usize,
    seen: RefCell<BTreeMap<u16, Vec<u8>>>,
    closed: RefCell<Vec<(u16, CloseReason)>>,
}

impl AsyncHandler for Recorder {
    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        let port = conn.peer().port();
        let mut buf = [0u8; 64];
        let buf = &mut buf[..self.read_buf];
        loop {
            let n = conn.read(buf).await?;
            if n == 0 {
                return Ok(());
            }
            self.seen
                .borrow_mut()
                .entry(port)
                .or_default()
                .extend_from_slice(&buf[..n]);
            conn.write_all(&buf[..n]).await?;
        }
    }

    fn on_closed(&self, closed: &Closed) {
        self.closed
            .borrow_mut()
            .push((closed.peer.port(), closed.reason));
    }
}

/// A client during a run.
struct Live {
    plan: Plan,
    client: Option<MockClient>,
    port: u16,
    sent: usize,
    chunk: usize,
    got: Vec<u8>,
    shut: bool,
    /// How the stream back ended: `Some(true)` end of stream, `Some(false)` reset.
    end: Option<bool>,
    done: bool,
}

impl Live {
    fn limit(&self) -> usize {
        match self.plan.ending {
            Ending::HalfClose => self.plan.data.len(),
            Ending::Reset { after } => after.min(self.plan.data.len()),
        }
    }

    fn act(&mut self, mock: &MockStack, step: u32) {
        if self.done || step < self.plan.start_after {
            return;
        }
        let Some(client) = self.client.as_ref() else {
            if let Ok(c) = mock.connect_client(PORT) {
                self.port = c.local_addr().port();
                self.client = Some(c);
            }
            return;
        };
        let limit = self.limit();
        if self.sent < limit {
            let size = self.plan.chunks[self.chunk % self.plan.chunks.len()];
            self.chunk += 1;
            let end = (self.sent + size).min(limit);
            self.sent += client.send(&self.plan.data[self.sent..end]);
        }
        if self.sent == limit {
            match self.plan.ending {
                Ending::Reset { .. } => {
                    client.reset();
                    self.done = true;
                    return;
                }
                Ending::HalfClose if !self.shut => {
                    client.shutdown_write();
                    self.shut = true;
                }
                Ending::HalfClose => {}
            }
        }
        let mut buf = vec![0u8; self.plan.read_chunk];
        match client.recv(&mut buf) {
            ClientRead::Data(n) => self.got.extend_from_slice(&buf[..n]),
            ClientRead::WouldBlock => {}
            ClientRead::Eof => {
                self.end = Some(true);
                self.done = true;
            }
            ClientRead::Reset => {
                self.end = Some(false);
                self.done = true;
            }
        }
    }
}

fn run(case: &Case) -> Result<(), String> {
    let mock = MockStack::with_config(MockConfig {
        window: case.window,
        ..MockConfig::default()
    });
    let mut stack = FaultyStack::new(mock.clone(), case.seed, case.faults);
    let handler = Recorder {
        read_buf: case.read_buf,
        seen: RefCell::new(BTreeMap::new()),
        closed: RefCell::new(Vec::new()),
    };
    let mut server: AsyncServer<'_, FaultyStack<MockStack>, Recorder, SLOTS, 32, 64> =
        Server::new(Adapter::new(&handler), Config::new());
    server
        .listen(&mut stack, PORT)
        .map_err(|e| format!("listen: {e:?}"))?;
    let mut clients: Vec<Live> = case
        .clients
        .iter()
        .map(|plan| Live {
            plan: plan.clone(),
            client: None,
            port: 0,
            sent: 0,
            chunk: 0,
            got: Vec::new(),
            shut: false,
            end: None,
            done: false,
        })
        .collect();
    let go = Cell::new(true);
    let stop = poll_fn(|_| {
        if go.get() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    });
    let mut clock = SimClock(Cell::new(0));
    {
        let mut fut = pin!(async_handler::serve(
            &mut server,
            &mut stack,
            &handler,
            &mut clock,
            stop
        ));
        // A waker that compares equal to itself (`Waker::noop()` need not),
        // as an executor's does: `serve` then skips the server's round on
        // wake-ups only its tasks can need, and the property covers that.
        let waker = Waker::from(Arc::new(Ignore));
        let mut cx = Context::from_waker(&waker);
        let mut step = 0u32;
        // Until every client is done and every connection it made has
        // ended in the server.
        while fut.as_mut().poll(&mut cx).is_pending() {
            step += 1;
            if step > MAX_STEPS {
                let waiting: Vec<String> = clients
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.done)
                    .map(|(i, c)| {
                        format!(
                            "client {i} (port {}): sent {} of {}, got {} back, read by the handler {}, {:?}",
                            c.port,
                            c.sent,
                            c.limit(),
                            c.got.len(),
                            handler.seen.borrow().get(&c.port).map_or(0, Vec::len),
                            c.plan.ending
                        )
                    })
                    .collect();
                return Err(format!(
                    "stuck after {MAX_STEPS} steps: {} of {} clients done, {} connections closed; {}",
                    clients.iter().filter(|c| c.done).count(),
                    clients.len(),
                    handler.closed.borrow().len(),
                    waiting.join("; ")
                ));
            }
            for c in &mut clients {
                c.act(&mock, step);
            }
            let all_done = clients.iter().all(|c| c.done);
            let closed = handler.closed.borrow();
            let ended = clients
                .iter()
                .filter(|c| c.client.is_some())
                .all(|c| closed.iter().any(|(p, _)| *p == c.port));
            if all_done && (ended || step > MAX_STEPS / 2) {
                go.set(false);
            }
        }
    }
    let closed = handler.closed.borrow();
    let seen = handler.seen.borrow();
    for (i, c) in clients.iter().enumerate() {
        let reasons: Vec<CloseReason> = closed
            .iter()
            .filter(|(p, _)| *p == c.port)
            .map(|(_, r)| *r)
            .collect();
        let empty = Vec::new();
        let seen = seen.get(&c.port).unwrap_or(&empty);
        let sent = &c.plan.data[..c.sent];
        let reset_by_client = matches!(c.plan.ending, Ending::Reset { .. });
        if reasons.len() > 1 {
            return Err(format!(
                "client {i}: closed {} times: {reasons:?}",
                reasons.len()
            ));
        }
        if !sent.starts_with(seen) {
            return Err(format!(
                "client {i}: the handler read bytes that were not sent ({} read, {} sent)",
                seen.len(),
                sent.len()
            ));
        }
        if !seen.starts_with(&c.got) {
            return Err(format!(
                "client {i}: got back bytes the handler did not read ({} back, {} read)",
                c.got.len(),
                seen.len()
            ));
        }
        if reset_by_client {
            continue;
        }
        let Some(&reason) = reasons.first() else {
            return Err(format!("client {i}: its connection never closed"));
        };
        if matches!(reason, CloseReason::StackError | CloseReason::Reset) {
            // Ended by an injected error: a prefix is all it promises.
            continue;
        }
        if reason != CloseReason::PeerClosed {
            return Err(format!("client {i}: closed with {reason:?}"));
        }
        if seen.len() != c.plan.data.len() {
            return Err(format!(
                "client {i}: the handler read {} of the {} bytes sent",
                seen.len(),
                c.plan.data.len()
            ));
        }
        if c.got != c.plan.data {
            return Err(format!(
                "client {i}: {} of the {} bytes came back",
                c.got.len(),
                c.plan.data.len()
            ));
        }
        if c.end != Some(true) {
            return Err(format!("client {i}: no clean end of stream ({:?})", c.end));
        }
    }
    Ok(())
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec(any::<u8>(), 0..1_500),
        proptest::collection::vec(prop_oneof![3 => 1usize..=48, 1 => 49usize..=300], 1..4),
        0u32..=40,
        1usize..=64,
        prop_oneof![
            4 => Just(Ending::HalfClose),
            1 => (0usize..=1_500).prop_map(|after| Ending::Reset { after }),
        ],
    )
        .prop_map(|(data, chunks, start_after, read_chunk, ending)| Plan {
            data,
            chunks,
            start_after,
            read_chunk,
            ending,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        faults(true),
        4usize..=128,
        1usize..=64,
        proptest::collection::vec(plan(), 1..=6),
    )
        .prop_map(|(seed, faults, window, read_buf, clients)| Case {
            seed,
            faults,
            window,
            read_buf,
            clients,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Up to 6 clients on 3 slots, random chunking, half-closes and resets,
    /// random faults including connection errors: the async echo handler
    /// reads exactly what each client sent.
    #[test]
    fn async_handler_reads_exactly_the_bytes_each_client_sent(case in case()) {
        let checked = run(&case);
        prop_assert!(checked.is_ok(), "fault seed {:#x}: {}", case.seed, checked.unwrap_err());
    }
}
