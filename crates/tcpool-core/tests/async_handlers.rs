//! Async handlers over the in-memory stack: the same guarantees as the
//! callback handlers, driven by `async_handler::serve` with a simulated
//! clock and the future polled by hand.

use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use embedded_io_async::{BufRead, Read, Write};
use tcpool_core::async_handler::{self, Adapter, AsyncConn, AsyncHandler, AsyncServer};
use tcpool_core::asynch::Clock;
use tcpool_core::framing::next_line;
use tcpool_core::mock::{ClientRead, MockClient, MockConfig, MockStack};
use tcpool_core::{CloseReason, Closed, Config, Instant, Server};

/// A simulated clock: every read of it moves it on by a millisecond, so a
/// test that polls in a loop lets time pass.
struct SimClock(Cell<u64>);

impl Clock for SimClock {
    fn now(&self) -> Instant {
        let t = self.0.get();
        self.0.set(t + 1);
        Instant::from_millis(t)
    }
    fn wake_at(&mut self, _: Instant, _: &Waker) {}
}

/// The handlers under test, one per behaviour.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Echo until the peer finishes.
    Echo,
    /// Reads lines with `fill_buf`/`fill_more` and answers each with its length.
    Lines,
    /// Writes 20,000 bytes of a pattern, then closes.
    Stream,
    /// Holds the `fill_buf` slice across an unrelated await.
    Hog,
    /// Admits nobody.
    Refuse,
    /// Reads, queues a reply, then aborts.
    Abort,
}

struct Test {
    mode: Mode,
    closed: RefCell<Vec<Closed>>,
    /// An unrelated future the `Hog` handler waits on.
    gate: Cell<bool>,
}

impl Test {
    fn new(mode: Mode) -> Self {
        Test {
            mode,
            closed: RefCell::new(Vec::new()),
            gate: Cell::new(false),
        }
    }

    fn reasons(&self) -> Vec<CloseReason> {
        self.closed.borrow().iter().map(|c| c.reason).collect()
    }
}

fn pattern(i: usize) -> u8 {
    (i * 7 % 251) as u8
}

impl AsyncHandler for Test {
    fn admit(&self, _peer: std::net::SocketAddr) -> bool {
        self.mode != Mode::Refuse
    }

    async fn serve(&self, conn: &mut AsyncConn<'_>) -> Result<(), CloseReason> {
        match self.mode {
            Mode::Echo | Mode::Refuse => {
                let mut buf = [0u8; 7];
                loop {
                    let n = conn.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    conn.write_all(&buf[..n]).await?;
                }
            }
            Mode::Lines => loop {
                let mut have = conn.fill_buf().await?.len();
                let (len, used) = loop {
                    let input = conn.fill_more(have.saturating_sub(1)).await?;
                    if input.is_empty() {
                        return Ok(());
                    }
                    match next_line(input, 64) {
                        Ok(Some((line, used))) => break (line.len(), used),
                        Ok(None) => have = input.len() + 1,
                        Err(_) => return Err(CloseReason::Protocol),
                    }
                };
                conn.consume(used);
                let mut answer = [0u8; 8];
                let text = format_len(len, &mut answer);
                conn.write_all(text).await?;
            },
            Mode::Stream => {
                let data: Vec<u8> = (0..20_000).map(pattern).collect();
                conn.write_all(&data).await?;
                conn.flush().await?;
                Ok(())
            }
            Mode::Abort => {
                let mut buf = [0u8; 8];
                conn.read(&mut buf).await?;
                assert_eq!(conn.stats().await?.accepted, 1, "the server's counters");
                // The socket takes the first 4 bytes (its window), the
                // rest waits in the slot.
                conn.write_all(b"fill").await?;
                conn.write_all(b"bye").await?;
                assert_eq!(conn.tx_pending().await?, 3, "queued, not sent yet");
                conn.abort().await?;
                Ok(())
            }
            Mode::Hog => {
                let _slice = conn.fill_buf().await?;
                poll_fn(|_| {
                    if self.gate.get() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                Ok(())
            }
        }
    }

    fn on_closed(&self, closed: &Closed) {
        self.closed.borrow_mut().push(*closed);
    }
}

fn format_len(n: usize, out: &mut [u8; 8]) -> &[u8] {
    let s = format!("{n}\n");
    out[..s.len()].copy_from_slice(s.as_bytes());
    &out[..s.len()]
}

/// Runs `serve` with `handler` on a 2-slot server listening on port 7:
/// `connect` makes the clients once it listens, then `script` runs after
/// every poll of the future with them and the poll count; it stops when
/// `script` returns false (or fails after 20,000 polls).
fn run<const RX: usize, const TX: usize, C>(
    handler: &Test,
    stack: &mut MockStack,
    config: Config,
    connect: impl FnOnce(&MockStack) -> C,
    mut script: impl FnMut(&C, usize) -> bool,
) -> C {
    let mut server: AsyncServer<'_, MockStack, Test, 2, RX, TX> =
        Server::new(Adapter::new(handler), config);
    server.listen(stack, 7).unwrap();
    let clients = connect(stack);
    let clock = &mut SimClock(Cell::new(0));
    let mut polls = 0usize;
    let go = Cell::new(true);
    let stop = poll_fn(|_| {
        if go.get() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    });
    let probe = stack.clone();
    let fut = pin!(async_handler::serve(
        &mut server,
        stack,
        handler,
        clock,
        stop
    ));
    let mut fut = fut;
    let mut cx = Context::from_waker(Waker::noop());
    while fut.as_mut().poll(&mut cx).is_pending() {
        polls += 1;
        assert!(polls < 20_000, "the script never finished");
        if !script(&clients, polls) {
            go.set(false);
        }
    }
    drop(probe);
    clients
}

fn read_all(c: &MockClient) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match c.recv(&mut buf) {
            ClientRead::Data(n) => out.extend_from_slice(&buf[..n]),
            ClientRead::Eof => return (out, true),
            _ => return (out, false),
        }
    }
}

#[test]
fn every_byte_before_the_peers_fin_is_read_before_read_returns_zero() {
    let handler = Test::new(Mode::Echo);
    let mut stack = MockStack::new();
    let msg: Vec<u8> = (0..1000).map(pattern).collect();
    let mut got = Vec::new();
    let mut eof = false;
    let connect = |stack: &MockStack| {
        let client = stack.connect_client(7).unwrap();
        assert_eq!(client.send(&msg), 1000);
        client.shutdown_write();
        client
    };
    run::<64, 64, _>(&handler, &mut stack, Config::new(), connect, |client, _| {
        let (data, end) = read_all(client);
        got.extend(data);
        eof |= end;
        !eof
    });
    assert_eq!(got, msg, "the echo, byte for byte, before the FIN");
    assert_eq!(handler.reasons(), [CloseReason::PeerClosed]);
}

#[test]
fn a_peer_reset_drops_the_handler_future_and_leaves_the_other_connection() {
    let handler = Test::new(Mode::Echo);
    let mut stack = MockStack::new();
    let mut step = 0;
    let mut b_got = Vec::new();
    let connect = |stack: &MockStack| {
        let a = stack.connect_client(7).unwrap();
        let b = stack.connect_client(7).unwrap();
        a.send(b"hi");
        b.send(b"hello");
        (a, b)
    };
    run::<64, 64, _>(&handler, &mut stack, Config::new(), connect, |(a, b), _| {
        match step {
            0 if a.pending() == 2 => {
                a.reset();
                step = 1;
            }
            1 if handler.closed.borrow().len() == 1 => {
                b.send(b" again");
                step = 2;
            }
            _ => {}
        }
        b_got.extend(read_all(b).0);
        !(step == 2 && b_got == b"hello again")
    });
    assert_eq!(handler.reasons(), [CloseReason::Reset]);
    assert_eq!(b_got, b"hello again");
}

#[test]
fn lines_through_fill_buf_and_a_frame_that_cannot_fit_closes_with_rx_overflow() {
    let handler = Test::new(Mode::Lines);
    let mut stack = MockStack::new();
    let mut got = Vec::new();
    let mut step = 0;
    let connect = |stack: &MockStack| {
        let good = stack.connect_client(7).unwrap();
        let bad = stack.connect_client(7).unwrap();
        good.send(b"ab");
        (good, bad)
    };
    run::<16, 64, _>(
        &handler,
        &mut stack,
        Config::new(),
        connect,
        |(good, bad), polls| {
            if step == 0 && polls > 5 {
                good.send(b"c\nfour\n");
                bad.send(&[b'x'; 40]);
                step = 1;
            }
            got.extend(read_all(good).0);
            !(got == b"3\n4\n" && handler.closed.borrow().len() == 1)
        },
    );
    assert_eq!(got, b"3\n4\n", "a line split over two sends, then another");
    assert_eq!(handler.reasons(), [CloseReason::RxOverflow]);
}

#[test]
fn writes_wait_for_room_and_lose_nothing() {
    let handler = Test::new(Mode::Stream);
    let mut stack = MockStack::with_config(MockConfig {
        window: 100,
        ..MockConfig::default()
    });
    let mut got = Vec::new();
    let mut eof = false;
    let connect = |stack: &MockStack| stack.connect_client(7).unwrap();
    run::<32, 32, _>(&handler, &mut stack, Config::new(), connect, |client, _| {
        let (data, end) = read_all(client);
        got.extend(data);
        eof |= end;
        !eof
    });
    let want: Vec<u8> = (0..20_000).map(pattern).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the stream arrived intact");
    assert_eq!(handler.reasons(), [CloseReason::Local]);
}

#[test]
fn abort_resets_the_peer_and_discards_pending_output() {
    let handler = Test::new(Mode::Abort);
    let mut stack = MockStack::with_config(MockConfig {
        window: 4,
        ..MockConfig::default()
    });
    let mut got = Vec::new();
    let mut reset = false;
    let connect = |stack: &MockStack| {
        let client = stack.connect_client(7).unwrap();
        client.send(b"x");
        client
    };
    run::<16, 16, _>(&handler, &mut stack, Config::new(), connect, |client, _| {
        let mut buf = [0u8; 16];
        match client.recv(&mut buf) {
            ClientRead::Data(n) => got.extend_from_slice(&buf[..n]),
            ClientRead::Reset => reset = true,
            ClientRead::Eof => panic!("an end of stream instead of a reset"),
            ClientRead::WouldBlock => {}
        }
        !reset
    });
    assert!(
        !got.windows(3).any(|w| w == b"bye"),
        "the queued reply was discarded: {got:?}"
    );
    assert_eq!(handler.reasons(), [CloseReason::Aborted]);
}

#[test]
fn holding_the_pool_across_an_await_closes_that_connection_only() {
    let handler = Test::new(Mode::Hog);
    let mut stack = MockStack::new();
    let connect = |stack: &MockStack| {
        let hog = stack.connect_client(7).unwrap();
        hog.send(b"x");
        hog
    };
    let hog = run::<16, 16, _>(&handler, &mut stack, Config::new(), connect, |_, _| {
        handler.closed.borrow().is_empty()
    });
    assert_eq!(handler.reasons(), [CloseReason::Protocol]);
    assert!(hog.server_closed());
}

#[test]
fn admission_and_timeouts_are_the_pools() {
    // Refused by the handler: counted, never served.
    let handler = Test::new(Mode::Refuse);
    let mut stack = MockStack::new();
    let connect = |stack: &MockStack| stack.connect_client(7).unwrap();
    run::<16, 16, _>(&handler, &mut stack, Config::new(), connect, |c, _| {
        !c.server_closed()
    });
    assert!(handler.closed.borrow().is_empty(), "never opened");

    // The idle timeout ends a silent connection: its future is dropped.
    let handler = Test::new(Mode::Echo);
    let mut stack = MockStack::new();
    let config = Config::new().with_idle_timeout(Some(Duration::from_millis(50)));
    run::<16, 16, _>(&handler, &mut stack, config, connect, |_, _| {
        handler.closed.borrow().is_empty()
    });
    assert_eq!(handler.reasons(), [CloseReason::IdleTimeout]);
}

#[test]
fn the_whole_async_server_has_a_size_known_at_compile_time() {
    let handler = Test::new(Mode::Echo);
    let mut stack = MockStack::new();
    let mut server: AsyncServer<'_, MockStack, Test, 4, 1024, 1024> =
        Server::new(Adapter::new(&handler), Config::new());
    let server_bytes = core::mem::size_of_val(&server);
    let clock = &mut SimClock(Cell::new(0));
    let fut = async_handler::serve(
        &mut server,
        &mut stack,
        &handler,
        clock,
        core::future::pending::<()>(),
    );
    let fut_bytes = core::mem::size_of_val(&fut);
    println!(
        "async server N=4, 1 KiB buffers: pool {server_bytes} bytes, serve future with 4 handler futures {fut_bytes} bytes"
    );
    assert!(server_bytes > 4 * 2048);
    assert!(fut_bytes > 0);
}
