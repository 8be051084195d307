//! The shared conformance suite on the lwIP backend, against a real lwIP
//! 2.2.1 built for the host with ESP-IDF's limits (`tcpool-lwip-host`: 10
//! sockets, listen backlog support, MSS 1440, 4×MSS windows, loopback).
//!
//! The server runs in the test thread over `LwipStack`, driven as firmware
//! drives it: `LwipStack::wait(interests, poll_at)` (`lwip_select`, at most
//! 2 ms so the scenario can act), then `poll` if a socket it asked for is
//! ready or its deadline came. A server that forgets to ask for a wake-up
//! stalls here, as it would on a device.
//!
//! The clients are `tcpool_lwip_host::RawClient`s: TCP connections made on
//! lwIP's raw API inside the same lwIP. They take TCP PCBs, not sockets, so
//! the server has lwIP's 10-socket table to itself, as in a firmware whose
//! clients are other devices: "6 clients on a 4-slot server" really is 6
//! connections against a 10-socket lwIP.
//!
//! Per-backend choices:
//! - Out of sockets (`stack_out_of_sockets_accept_fails_and_recovers`):
//!   another `LwipStack` (the rest of the firmware) really takes every free
//!   socket of lwIP's table, and the server's stack is told so through
//!   `set_socket_budget`; its accept is then refused without asking lwIP, so
//!   the newcomer waits in the listen backlog. The other path, lwIP's own
//!   `ENFILE` when the budget did not know, is pinned by
//!   `lwip_only::table_full_behind_the_budget_enfile_is_counted_and_recovered`
//!   below: there lwIP resets the pending client, which is lwIP's behaviour,
//!   not the server's.
//! - Transient accept errors come from a `FaultyStack` wrapper (no random
//!   faults), which lwIP cannot be made to produce on demand.
//! - `server_sockets` counts the sockets the server holds: the stack's
//!   sockets minus those in a lingering close (closed by the server, still
//!   draining input for at most 500 ms, then closed by the stack). That
//!   those go too is checked when each test ends.
//!
//! One lwIP per process: this is its own test binary, and its tests take a
//! lock (they share the socket table and the ports).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use embedded_nal::{TcpClientStack, TcpFullStack};
use tcpool_conformance::{
    ClientError, Drive, Faults, FaultyStack, Harness, Patience, Recv, Unsupported,
};
use tcpool_core::Instant;
use tcpool_lwip::{Config, LwipStack, Socket, SocketBudget};
use tcpool_lwip_host::{ClientRecv, RawClient};

/// lwIP's socket table, as ESP-IDF's default `CONFIG_LWIP_MAX_SOCKETS`.
const TABLE: usize = tcpool_lwip_host::NUM_SOCKETS;

/// The longest the harness waits in `lwip_select` in one step.
const WAIT_CAP: Duration = Duration::from_millis(2);

type Stack = FaultyStack<LwipStack>;

/// The server's stack: the whole socket table, one listener, and the
/// default options (lingering close, `SO_REUSEADDR`, backlog 4).
fn server_config() -> Config {
    Config::new(SocketBudget::new(TABLE))
}

fn new_stack() -> Stack {
    FaultyStack::new(LwipStack::new(server_config()), 0, Faults::NONE)
}

/// Serialises the tests of this binary (one lwIP, 10 sockets) and starts
/// lwIP on first use.
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    tcpool_lwip_host::init();
    guard
}

/// The [`Harness`] of the lwIP backend.
struct LwipHarness {
    stack: Stack,
    started: std::time::Instant,
    port: Option<u16>,
    /// "The rest of the firmware": holds sockets while the table is full.
    firmware: LwipStack,
    held: Vec<Socket>,
    // Last, so the sockets above are closed before the next test starts.
    _lock: MutexGuard<'static, ()>,
}

/// One client connection.
struct LwipClient {
    raw: RawClient,
    shut: bool,
}

impl LwipHarness {
    /// Waits in `lwip_select` (at most until `deadline`) for one of the
    /// server's interests, then polls it if something is ready or its own
    /// deadline has come.
    fn wait_and_poll(&mut self, server: &mut dyn Drive<Stack>, deadline: Instant) {
        let deadline = server.poll_at().map_or(deadline, |t| t.min(deadline));
        let timeout = deadline.saturating_duration_since(self.now());
        let ready = {
            let interests = server.interests();
            self.stack
                .inner_mut()
                .wait(interests, Some(timeout))
                .expect("lwip_select failed")
        };
        let now = self.now();
        if ready > 0 || server.poll_at().is_some_and(|t| now >= t) {
            server.poll(&mut self.stack, now);
        }
    }

    /// Takes every socket left in lwIP's table into `held`; returns how
    /// many.
    fn fill_the_table(&mut self) -> usize {
        loop {
            let Ok(mut s) = self.firmware.socket() else {
                break;
            };
            if self.firmware.bind(&mut s, 0).is_err() {
                let _ = self.firmware.close(s);
                break;
            }
            self.held.push(s);
        }
        self.held.len()
    }

    fn release_the_table(&mut self) {
        for s in self.held.drain(..) {
            self.firmware.close(s).expect("close a held socket");
        }
    }
}

impl Drop for LwipHarness {
    fn drop(&mut self) {
        self.release_the_table();
        if std::thread::panicking() {
            return;
        }
        // Sockets in a lingering close end within 500 ms.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while self.stack.inner().lingering() > 0 && std::time::Instant::now() < until {
            self.stack
                .inner_mut()
                .wait([], Some(Duration::from_millis(10)))
                .expect("lwip_select failed");
        }
        assert_eq!(
            self.stack.inner().lingering(),
            0,
            "[lwip] sockets still in a lingering close 5 s after the test"
        );
    }
}

impl Harness for LwipHarness {
    type Stack = Stack;
    type Client = LwipClient;

    const BACKEND: &'static str = "lwip";

    fn new() -> Self {
        let lock = lock();
        LwipHarness {
            stack: new_stack(),
            started: std::time::Instant::now(),
            port: None,
            firmware: LwipStack::new(server_config().with_lingering_close(None)),
            held: Vec::new(),
            _lock: lock,
        }
    }

    fn stack(&mut self) -> &mut Stack {
        &mut self.stack
    }

    fn listen_port(&self) -> u16 {
        0
    }

    fn listening(&mut self, listener: &Socket) {
        let addr = listener.local_addr().expect("listener address");
        self.port = Some(addr.port());
    }

    fn server_port(&self) -> u16 {
        self.port.expect("a server is listening")
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.started.elapsed().as_millis() as u64)
    }

    fn step(&mut self, server: &mut dyn Drive<Stack>) {
        let cap = self.now() + WAIT_CAP;
        self.wait_and_poll(server, cap);
    }

    fn advance(&mut self, by: Duration, server: &mut dyn Drive<Stack>) {
        let until = self.now() + by;
        while self.now() < until {
            self.wait_and_poll(server, until);
        }
    }

    /// Long enough for lwIP's SYN retransmissions (3 s, then 6 s): a client
    /// beyond the listen backlog has its SYN dropped and retries.
    fn patience(&self) -> Patience {
        Patience {
            idle_steps: u64::MAX,
            wall: Duration::from_secs(60),
        }
    }

    fn connect(&mut self) -> Result<LwipClient, ClientError> {
        let port = self.server_port();
        match RawClient::connect(port) {
            Ok(raw) => Ok(LwipClient { raw, shut: false }),
            Err(err) => Err(ClientError::Refused(format!("lwIP err_t {err}"))),
        }
    }

    fn send(&mut self, client: &mut LwipClient, data: &[u8]) -> Result<usize, ClientError> {
        if client.shut {
            return Err(ClientError::Closed);
        }
        client.raw.send(data).map_err(|_| ClientError::Reset)
    }

    fn recv(&mut self, client: &mut LwipClient, buf: &mut [u8]) -> Recv {
        match client.raw.recv(buf) {
            ClientRecv::Data(n) => Recv::Data(n),
            ClientRecv::WouldBlock => Recv::WouldBlock,
            ClientRecv::Eof => Recv::Eof,
            ClientRecv::Reset => Recv::Reset,
        }
    }

    fn shutdown_write(&mut self, client: &mut LwipClient) {
        client.shut = true;
        // Not connected (yet, or any more): nothing to end.
        let _ = client.raw.shutdown_write();
    }

    fn reset(&mut self, client: LwipClient) {
        client.raw.abort();
    }

    fn close(&mut self, client: LwipClient) {
        client.raw.close();
    }

    fn client_addr(&mut self, client: &LwipClient) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, client.raw.local_port()))
    }

    fn server_sockets(&mut self) -> Option<usize> {
        let stack = self.stack.inner();
        Some(stack.sockets_in_use() - stack.lingering())
    }

    fn backlog(&self) -> usize {
        usize::from(server_config().backlog)
    }

    /// A new `LwipStack` (the old one's lingering sockets are closed as it
    /// is dropped): what a rebooted firmware has. lwIP itself keeps running,
    /// with the old connections' PCBs in TIME-WAIT, as a soft restart of the
    /// application would leave them.
    fn restart_stack(&mut self) -> Result<(), Unsupported> {
        self.stack = new_stack();
        Ok(())
    }

    fn exhaust_sockets(&mut self) -> Result<String, Unsupported> {
        let held = self.fill_the_table();
        let mine = self.stack.inner().sockets_in_use();
        self.stack.inner_mut().set_socket_budget(mine);
        Ok(format!(
            "another part of the firmware holding the {held} free sockets of lwIP's \
             {TABLE}-socket table, and the server's budget lowered to the {mine} it holds"
        ))
    }

    fn restore_sockets(&mut self) {
        self.release_the_table();
        self.stack
            .inner_mut()
            .set_socket_budget(server_config().socket_budget);
    }

    fn fail_next_accepts(&mut self, n: usize) -> Result<(), Unsupported> {
        self.stack.fail_next_accepts(n);
        Ok(())
    }
}

tcpool_conformance::conformance_suite!(lwip, LwipHarness);

/// Scenarios only lwIP has.
mod lwip_only {
    use super::*;
    use tcpool_conformance::scenarios::assert_all_closed;
    use tcpool_conformance::{Mode, Peer, Recorder, serve, wait_for};
    use tcpool_core::{CloseReason, Config as ServerConfig, Server};

    type RecServer<const N: usize> = Server<Stack, Recorder, N, 256, 256>;

    /// More connections than lwIP has sockets, with the budget unaware (the
    /// rest of the firmware took sockets without saying so): lwIP's
    /// `accept` fails with `ENFILE` and resets the pending client. The
    /// server counts it, keeps serving its connection, and accepts again
    /// once sockets are free.
    #[test]
    fn table_full_behind_the_budget_enfile_is_counted_and_recovered() {
        let mut h = LwipHarness::new();
        let config = ServerConfig::new().with_accept_backoff(Duration::from_millis(20));
        let mut server: RecServer<4> = serve(&mut h, Recorder::new(Mode::Echo), config);
        let mut first = Peer::connect(&mut h, &mut server, "established client");
        first.send_all(&mut h, &mut server, b"1");
        first.wait_bytes(&mut h, &mut server, 1);

        let held = h.fill_the_table();
        assert_eq!(
            held + h.stack.inner().sockets_in_use(),
            TABLE,
            "the table holds the server's sockets and the firmware's"
        );
        let errors = server.stats().accept_errors;
        let mut newcomer = Peer::connect(&mut h, &mut server, "newcomer");
        newcomer.send_all(&mut h, &mut server, b"n");
        wait_for(&mut h, &mut server, "accept to fail with ENFILE", |_, s| {
            s.stats().accept_errors > errors
        });
        wait_for(&mut h, &mut server, "lwIP to reset the newcomer", |h, _| {
            newcomer.pump(h);
            newcomer.reset
        });
        assert_eq!(newcomer.received, 0, "newcomer served without a socket");
        assert_eq!(server.active(), 1);

        // The established client never noticed.
        first.send_all(&mut h, &mut server, b"2");
        first.wait_bytes(&mut h, &mut server, 2);
        assert_eq!(first.got, b"12");

        // Sockets free again: the next client is served.
        h.release_the_table();
        let mut next = Peer::connect(&mut h, &mut server, "client after recovery");
        next.send_all(&mut h, &mut server, b"r");
        next.wait_bytes(&mut h, &mut server, 1);
        assert_eq!(next.got, b"r");
        for p in [&mut first, &mut next] {
            p.shutdown_write(&mut h);
            p.wait_end(&mut h, &mut server);
            p.close(&mut h);
        }
        newcomer.close(&mut h);
        assert_all_closed(&mut h, &mut server, "table_full_behind_the_budget");
        assert_eq!(server.stats().accepted, 2);
        assert!(
            server
                .handler()
                .reasons()
                .iter()
                .all(|r| *r == CloseReason::PeerClosed),
            "{:?}",
            server.handler().reasons()
        );
    }
}
