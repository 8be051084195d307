//! An echo server for an ESP32 on Wi-Fi: tcpool's `Server` over ESP-IDF's
//! lwIP, sized for lwIP's 10-socket table.
//!
//! NOT BUILT in the tcpool repository's CI (no Xtensa/RISC-V toolchain or
//! ESP-IDF there); see README.md for how to build and flash it.
//!
//! Logs `listening on IP:PORT` once Wi-Fi is up, then one `closed id=..
//! peer=.. rx=.. tx=.. reason=..` line per finished connection, as the host
//! `echo` example prints them.

use std::sync::Mutex;
use std::time::Instant;

use esp_idf_svc::eventloop::EspSystemEventLoop;
use esp_idf_svc::hal::peripherals::Peripherals;
use esp_idf_svc::nvs::EspDefaultNvsPartition;
use esp_idf_svc::wifi::{AuthMethod, BlockingWifi, ClientConfiguration, Configuration, EspWifi};
use tcpool::lwip::{Config as LwipConfig, LwipStack, SocketBudget};
use tcpool::{Closed, Config, Conn, Handler, Server, WhenFull};

/// Wi-Fi credentials, given at build time:
/// `WIFI_SSID=... WIFI_PASS=... cargo build --release`.
const SSID: &str = env!("WIFI_SSID");
const PASS: &str = env!("WIFI_PASS");

const PORT: u16 = 7000;

/// `CONFIG_LWIP_MAX_SOCKETS` in sdkconfig.defaults.
const MAX_SOCKETS: usize = 10;

/// lwIP's table: one socket for the listener, two left for the rest of the
/// firmware (SNTP, an HTTP client): 7 connections.
const BUDGET: SocketBudget = SocketBudget::new(MAX_SOCKETS).reserved(2);
const CONNECTIONS: usize = BUDGET.connections();

/// Clients beyond the pool wait in lwIP's listen backlog (nobody is
/// evicted); idle clients are closed after a minute.
const SERVER_CONFIG: Config = Config::new()
    .with_when_full(WhenFull::Defer)
    .with_idle_timeout(Some(core::time::Duration::from_secs(60)));

/// Echoes input; what does not fit the transmit buffer waits in the
/// receive buffer until output drains.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, _conn: &mut Conn<'_>) {}

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        conn.write(data)
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        log::info!("closed {closed}");
    }
}

/// The whole server, buffers included (7 × 2 KiB plus a little per slot),
/// in a static rather than on the main task's stack.
static SERVER: Mutex<Server<LwipStack, Echo, CONNECTIONS, 1024, 1024>> =
    Mutex::new(Server::new(Echo, SERVER_CONFIG));

fn main() -> Result<(), esp_idf_svc::sys::EspError> {
    esp_idf_svc::sys::link_patches();
    esp_idf_svc::log::EspLogger::initialize_default();

    // Wi-Fi up first: it starts lwIP's tcpip task (esp_netif_init), which
    // must run before the stack makes its first call.
    let peripherals = Peripherals::take()?;
    let sysloop = EspSystemEventLoop::take()?;
    let mut wifi = BlockingWifi::wrap(
        EspWifi::new(
            peripherals.modem,
            sysloop.clone(),
            Some(EspDefaultNvsPartition::take()?),
        )?,
        sysloop,
    )?;
    wifi.set_configuration(&Configuration::Client(ClientConfiguration {
        ssid: SSID.try_into().expect("SSID longer than 32 bytes"),
        password: PASS.try_into().expect("password longer than 64 bytes"),
        auth_method: AuthMethod::WPA2Personal,
        ..Default::default()
    }))?;
    wifi.start()?;
    wifi.connect()?;
    wifi.wait_netif_up()?;
    let ip = wifi.wifi().sta_netif().get_ip_info()?.ip;

    let mut stack = LwipStack::new(LwipConfig::new(BUDGET));
    let mut server = SERVER.lock().expect("the server lock is never poisoned");
    if let Err(e) = server.listen(&mut stack, PORT) {
        // With SO_REUSEADDR (on by default) a restarted firmware rebinds at
        // once; anything else here is a configuration error.
        panic!("listen on port {PORT}: {e:?}");
    }
    log::info!("listening on {ip}:{PORT}");

    let started = Instant::now();
    loop {
        let now = tcpool::Instant::from_millis(started.elapsed().as_millis() as u64);
        server.poll(&mut stack, now);
        // Sleep in lwip_select until a socket is ready or the server's next
        // deadline (idle timeout, linger, accept back-off). The stack caps a
        // wait that includes the listener at 20 ms on ESP-IDF, where select
        // does not reliably report pending connections.
        let timeout = server.poll_at().map(|t| t.saturating_duration_since(now));
        if let Err(e) = stack.wait(server.interests(), timeout) {
            log::warn!("lwip_select: {e}");
        }
    }
}
