//! An echo server for an ESP32 on Wi-Fi: brings Wi-Fi (and with it lwIP) up,
//! then runs the server of `tcpool-esp-idf-echo-server` (`server/`) with
//! the system clock. Everything but Wi-Fi and ESP-IDF lives there.
//!
//! NOT BUILT in the tcpool repository's CI (it needs ESP-IDF); its server
//! is, for `riscv32imc-esp-espidf`. See README.md for how to build and flash
//! the firmware.
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
use tcpool_esp_idf_echo_server::{EchoServer, PORT};

/// Wi-Fi credentials, given at build time:
/// `WIFI_SSID=... WIFI_PASS=... cargo build --release`.
const SSID: &str = env!("WIFI_SSID");
const PASS: &str = env!("WIFI_PASS");

/// The whole server, buffers included, in a static rather than on the main
/// task's stack.
static ECHO: Mutex<EchoServer> = Mutex::new(EchoServer::new());

fn main() -> Result<(), esp_idf_svc::sys::EspError> {
    esp_idf_svc::sys::link_patches();
    esp_idf_svc::log::EspLogger::initialize_default();

    // Wi-Fi up first: it starts lwIP's tcpip task (esp_netif_init), which
    // must run before the server's first lwIP call.
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

    let mut echo = ECHO.lock().expect("the server lock is never poisoned");
    if let Err(e) = echo.listen(PORT) {
        // With SO_REUSEADDR (on by default) a restarted firmware rebinds at
        // once; anything else here is a configuration error.
        panic!("listen on port {PORT}: {e:?}");
    }
    log::info!("listening on {ip}:{PORT}");

    let started = Instant::now();
    loop {
        let now = tcpool::Instant::from_millis(started.elapsed().as_millis() as u64);
        if let Err(e) = echo.serve(now, None) {
            log::warn!("lwip_select: {e}");
        }
    }
}
