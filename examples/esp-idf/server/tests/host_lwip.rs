//! The firmware's server against the host lwIP build (`tcpool-lwip-host`:
//! ESP-IDF's 10-socket table and defaults), with raw-API lwIP clients that
//! take no sockets, as the firmware's clients are other devices.

use std::time::{Duration, Instant};

use tcpool::CloseReason;
use tcpool_esp_idf_echo_server::{CONNECTIONS, EchoServer};
use tcpool_lwip_host::{ClientRecv, RawClient};

/// How long the test may take before it is declared stuck.
const PATIENCE: Duration = Duration::from_secs(20);

/// A raw-API client that sends its message and reads the echo.
struct Client {
    raw: RawClient,
    message: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    eof: bool,
}

impl Client {
    fn connect(port: u16, seed: u8) -> Client {
        Client {
            raw: RawClient::connect(port).expect("a raw lwIP client"),
            message: (0..300u16)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect(),
            sent: 0,
            got: Vec::new(),
            eof: false,
        }
    }

    /// Sends what is left of the message and reads what arrived.
    fn pump(&mut self) {
        if self.sent < self.message.len() {
            self.sent += self
                .raw
                .send(&self.message[self.sent..])
                .expect("client reset");
        }
        let mut buf = [0u8; 512];
        loop {
            match self.raw.recv(&mut buf) {
                ClientRecv::Data(n) => self.got.extend_from_slice(&buf[..n]),
                ClientRecv::WouldBlock => return,
                ClientRecv::Eof => {
                    self.eof = true;
                    return;
                }
                ClientRecv::Reset => panic!("client reset after {} bytes", self.got.len()),
            }
        }
    }

    fn echoed(&self) -> bool {
        self.got.len() == self.message.len()
    }
}

/// Runs the firmware's loop (at most 2 ms per wait, so the clients run
/// too) until `done`.
fn serve_until(
    echo: &mut EchoServer,
    clients: &mut [Client],
    started: Instant,
    what: &str,
    mut done: impl FnMut(&EchoServer, &[Client]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    while !done(echo, clients) {
        assert!(Instant::now() < deadline, "stuck waiting for {what}");
        let now = tcpool::Instant::from_millis(started.elapsed().as_millis() as u64);
        echo.serve(now, Some(Duration::from_millis(2)))
            .expect("lwip_select");
        clients.iter_mut().for_each(Client::pump);
    }
}

#[test]
fn seven_connections_serve_echo_and_the_eighth_client_waits_its_turn() {
    tcpool_lwip_host::init();
    let started = Instant::now();
    let mut echo = Box::new(EchoServer::new());
    echo.listen(0).expect("listen");
    let port = echo.local_port().expect("a bound port");
    assert_eq!(CONNECTIONS, 7);

    let mut clients: Vec<Client> = (0..8).map(|i| Client::connect(port, i)).collect();
    serve_until(&mut echo, &mut clients, started, "seven echoes", |_, c| {
        c.iter().filter(|c| c.echoed()).count() == 7
    });
    for c in clients.iter().filter(|c| c.echoed()) {
        assert_eq!(c.got, c.message, "echo corrupted");
    }
    // The budget is spent: the eighth waits in lwIP's listen backlog,
    // neither served nor reset (a reset would fail its `pump`).
    let waiting = clients.iter().position(|c| !c.echoed()).expect("one waits");
    assert!(clients[waiting].got.is_empty());
    assert_eq!(echo.server().active(), 7);
    assert_eq!(echo.stack().sockets_in_use(), 8);

    // One client leaves: the eighth takes its place.
    let leaving = (waiting + 1) % clients.len();
    clients[leaving].raw.shutdown_write().expect("shutdown");
    serve_until(
        &mut echo,
        &mut clients,
        started,
        "the eighth echo",
        |_, c| c[waiting].echoed() && c[leaving].eof,
    );
    assert_eq!(clients[waiting].got, clients[waiting].message);

    // Everybody leaves; every connection ends as the peer closed it.
    for c in clients.iter_mut().filter(|c| !c.eof) {
        c.raw.shutdown_write().expect("shutdown");
    }
    serve_until(
        &mut echo,
        &mut clients,
        started,
        "every end of stream",
        |e, c| c.iter().all(|c| c.eof) && e.server().active() == 0,
    );
    let stats = *echo.server().stats();
    assert_eq!(stats.accepted, 8);
    assert_eq!(stats.evicted, 0);
    assert_eq!(stats.closed.get(CloseReason::PeerClosed), 8, "{stats:?}");
    for c in clients {
        c.raw.close();
    }
}
