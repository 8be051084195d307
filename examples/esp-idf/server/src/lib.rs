//! The echo server of tcpool's ESP-IDF firmware example, without the
//! firmware: `tcpool::Server` over `tcpool::lwip::LwipStack`, sized for
//! ESP-IDF's lwIP socket table (`CONFIG_LWIP_MAX_SOCKETS=10`: one listener,
//! two sockets left to the rest of the firmware, seven connections). Clients
//! beyond seven wait in lwIP's listen backlog; nobody is evicted.
//!
//! The firmware (`examples/esp-idf/src/main.rs`) brings Wi-Fi up, which
//! starts lwIP, then calls [`EchoServer::listen`], and [`EchoServer::serve`]
//! in a loop with its clock. Everything here is `no_std` and free of
//! `esp-idf-sys`, so CI compiles it for `riscv32imc-esp-espidf`, and its
//! tests run it against the host lwIP build.
//!
//! ```no_run
//! use std::sync::Mutex;
//! use tcpool_esp_idf_echo_server::{EchoServer, PORT};
//!
//! // In a static, not on the main task's stack (`new` is `const`).
//! static ECHO: Mutex<EchoServer> = Mutex::new(EchoServer::new());
//!
//! # fn firmware(now: impl Fn() -> tcpool::Instant) {
//! // lwIP must be running (Wi-Fi up) before this.
//! let mut echo = ECHO.lock().unwrap();
//! echo.listen(PORT).expect("listen");
//! loop {
//!     if let Err(e) = echo.serve(now(), None) {
//!         // lwip_select failed: log it, and go on serving.
//!         # let _ = e;
//!     }
//! }
//! # }
//! ```
#![no_std]
#![deny(unsafe_code)]

use tcpool::lwip::{Config as LwipConfig, Error, LwipStack, SocketBudget};
use tcpool::{Closed, Config, Conn, Duration, Handler, Instant, ListenError, Server, WhenFull};

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("features `log` and `defmt` are mutually exclusive: pick one logger");

/// The port the firmware serves on.
pub const PORT: u16 = 7000;

/// `CONFIG_LWIP_MAX_SOCKETS` in the firmware's `sdkconfig.defaults`: keep
/// the two in step.
pub const MAX_SOCKETS: usize = 10;

/// lwIP's table: one socket for the listener, two left for the rest of the
/// firmware (SNTP, an HTTP client).
pub const BUDGET: SocketBudget = SocketBudget::new(MAX_SOCKETS).reserved(2);

/// The server's slots: as many as the budget has connections (7).
pub const CONNECTIONS: usize = BUDGET.connections();

/// Receive and transmit buffer of each slot.
pub const BUFFER: usize = 1024;

/// Clients beyond the pool wait in lwIP's listen backlog (nobody is
/// evicted); idle clients are closed after a minute.
pub const SERVER_CONFIG: Config = Config::new()
    .with_when_full(WhenFull::Defer)
    .with_idle_timeout(Some(Duration::from_secs(60)));

/// Echoes input; what does not fit the transmit buffer waits in the
/// receive buffer until output drains. Logs one `closed id=.. peer=..
/// rx=.. tx=.. reason=..` line per finished connection, as the host `echo`
/// example prints them.
#[derive(Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, _conn: &mut Conn<'_>) {}

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        conn.write(data)
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        let _ = closed;
        #[cfg(feature = "log")]
        log::info!(
            "closed id={} peer={} rx={} tx={} reason={}",
            closed.id,
            closed.peer,
            closed.bytes_in,
            closed.bytes_out,
            closed.reason
        );
        #[cfg(feature = "defmt")]
        defmt::info!(
            "closed id={} peer={} rx={} tx={} reason={}",
            closed.id,
            closed.peer,
            closed.bytes_in,
            closed.bytes_out,
            closed.reason
        );
    }
}

/// The server with its buffers, and the lwIP stack it runs on.
pub type Pool = Server<LwipStack, Echo, CONNECTIONS, BUFFER, BUFFER>;

/// The firmware's whole server state: about 7 × 2 KiB of buffers, so it
/// belongs in a `static`.
pub struct EchoServer {
    server: Pool,
    stack: LwipStack,
}

impl EchoServer {
    /// The server, not yet listening. `const`, so it can be a `static`.
    pub const fn new() -> EchoServer {
        EchoServer {
            server: Server::new(Echo, SERVER_CONFIG),
            stack: LwipStack::new(LwipConfig::new(BUDGET)),
        }
    }

    /// Listens on `port` on every interface. lwIP must be running. With
    /// `SO_REUSEADDR` (on by default) a restarted firmware rebinds at once.
    pub fn listen(&mut self, port: u16) -> Result<(), ListenError<Error>> {
        self.server.listen(&mut self.stack, port)
    }

    /// The port listened on (the one lwIP chose for port 0).
    pub fn local_port(&self) -> Option<u16> {
        let listener = self.server.listener()?;
        Some(listener.local_addr().ok()?.port())
    }

    /// One turn of the firmware's loop: serves what is ready, then sleeps in
    /// `lwip_select` until a socket is ready, the server's next deadline
    /// (idle timeout, linger, accept back-off) or `max_wait` (`None`: no
    /// limit of its own). `now` is the firmware's monotonic clock. Returns
    /// how many of the server's sockets are ready. The stack caps a wait
    /// that includes the listener at 20 ms on ESP-IDF, where select does not
    /// reliably report pending connections.
    pub fn serve(&mut self, now: Instant, max_wait: Option<Duration>) -> Result<usize, Error> {
        self.server.poll(&mut self.stack, now);
        let until_deadline = self
            .server
            .poll_at()
            .map(|t| t.saturating_duration_since(now));
        let timeout = match (until_deadline, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.stack.wait(self.server.interests(), timeout)
    }

    /// The server, for its statistics.
    pub fn server(&self) -> &Pool {
        &self.server
    }

    /// The lwIP stack, for its socket counts.
    pub fn stack(&self) -> &LwipStack {
        &self.stack
    }
}

impl Default for EchoServer {
    fn default() -> EchoServer {
        EchoServer::new()
    }
}
