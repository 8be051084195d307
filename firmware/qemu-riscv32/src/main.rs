//! tcpool's echo server as bare-metal firmware for QEMU's riscv32 `virt`
//! board: `tcpool-core`'s `Server` over `tcpool-smoltcp`'s `Stack` on a
//! virtio-net NIC, no heap, no allocator. Everything a client sends comes
//! back.
//!
//! The flags are those of the host `echo` example, read from the device
//! tree's bootargs (QEMU's `-append`). The console (UART) prints
//! `listening on ADDR` when ready, one `closed id=.. peer=.. rx=.. tx=..
//! reason=..` line per finished connection, and on `q` (or Ctrl-C) typed on
//! the console the server closes every connection, prints a `stats ...`
//! line and powers off (QEMU exits with status 0). A panic prints
//! `panic: ...` and makes QEMU exit with status 1; bad flags exit with 2.
//!
//! Between events the hart sleeps in `wfi` until a frame, a console byte or
//! the next deadline of the stack or the server.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::fmt::Write;
use core::time::Duration;

use smoltcp::iface::{Config as IfaceConfig, Interface};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use static_cell::ConstStaticCell;
use tcpool_core::{Closed, Conn, Handler, Instant, Server, Stats};
use tcpool_smoltcp::{Config as StackConfig, ListenConfig, StackStorage};

mod args;
mod board;
mod nic;

use args::{ArgError, Args, POOL, USAGE};
use board::{Plic, UART_IRQ, Uart};
use nic::{MmioSlot, Nic};

/// Prints a line on the console.
macro_rules! println {
    ($($arg:tt)*) => {{
        let _ = writeln!(Uart, $($arg)*);
    }};
}

/// Bytes of each slot's receive and transmit buffers in the server.
const SLOT_RX: usize = 1024;
const SLOT_TX: usize = 1024;
/// Sockets of the smoltcp stack: the slots, the listener's queue, one
/// spare for `--when-full reject`, and room for connections finishing
/// their close.
const SOCKETS: usize = 16;
/// Bytes of each socket's receive and transmit buffers in smoltcp.
const SOCKET_RX: usize = 2048;
const SOCKET_TX: usize = 2048;
/// Sockets kept listening (SYNs caught between two polls: QEMU's network
/// forwards host connections in bursts) and held before accept.
const LISTEN: ListenConfig = ListenConfig::new(4, 6);
/// How long the stack gets after a shutdown to send the last FINs.
const SHUTDOWN_FLUSH_MS: u64 = 200;

type Net = tcpool_smoltcp::Stack<'static, Nic, SOCKETS>;
type EchoServer = Server<Net, Echo, POOL, SLOT_RX, SLOT_TX>;

/// The stack's storage: all zero bytes, so in `.bss` and never built on
/// the stack.
static STORAGE: ConstStaticCell<StackStorage<'static, SOCKETS, SOCKET_RX, SOCKET_TX>> =
    ConstStaticCell::new(StackStorage::new());
/// The server lives here, all zero bytes, so in `.bss` (not built on the
/// stack and not copied from the image): `with_default_config` and a
/// handler whose fields are zero-valid; the configuration is set at boot.
static SERVER: ConstStaticCell<EchoServer> =
    ConstStaticCell::new(Server::with_default_config(Echo {
        request_timeout_ms: 0,
    }));

/// Echoes input; what does not fit the transmit buffer stays in the
/// receive buffer until output drains (backpressure, not loss). With
/// `--request-timeout-ms`, a client's first byte must arrive within that
/// time of the accept. (Milliseconds as a `u64`, 0 = off, rather than an
/// `Option<Duration>`, whose `None` is not zero bytes: the server's static
/// stays in `.bss`.)
struct Echo {
    request_timeout_ms: u64,
}

impl Handler for Echo {
    type State = ();

    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.request_timeout_ms > 0 {
            conn.set_deadline(conn.now() + Duration::from_millis(self.request_timeout_ms));
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        if conn.deadline().is_some() {
            conn.clear_deadline();
        }
        conn.write(data)
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        println!("closed {closed}");
    }
}

/// Prints the counters in one line, as the host examples do, with the
/// stack's high-water mark at the end.
fn print_stats(stats: &Stats) {
    let mut out = Uart;
    let _ = write!(
        out,
        "stats accepted={} refused={} evicted={} deferred={} accept_errors={} bytes_in={} bytes_out={} peak_active={} closed=",
        stats.accepted,
        stats.refused,
        stats.evicted,
        stats.deferred,
        stats.accept_errors,
        stats.bytes_in,
        stats.bytes_out,
        stats.peak_active,
    );
    let mut any = false;
    for (reason, n) in stats.closed.iter().filter(|(_, n)| *n > 0) {
        let _ = write!(out, "{}{reason}:{n}", if any { "," } else { "" });
        any = true;
    }
    if !any {
        let _ = out.write_str("-");
    }
    let _ = writeln!(out, " stack_hwm={}", board::stack_high_water());
}

/// Prints an error and powers off with `code`.
fn fail(code: u16, args: core::fmt::Arguments<'_>) -> ! {
    println!("error: {args}");
    board::exit(code)
}

/// The virtio-mmio slots the device tree lists.
fn virtio_slots(dt: &fdt::Fdt<'static>) -> impl Iterator<Item = MmioSlot> {
    dt.all_nodes()
        .filter(|node| {
            node.compatible()
                .is_some_and(|c| c.all().any(|s| s == "virtio,mmio"))
        })
        .filter_map(|node| {
            let reg = node.reg()?.next()?;
            let irq = node.interrupts()?.next()?;
            Some(MmioSlot {
                base: reg.starting_address as usize,
                size: reg.size?,
                irq: u32::try_from(irq).ok()?,
            })
        })
}

/// Runs the stack and the server until neither has more to do right now.
fn run(stack: &mut Net, server: &mut EchoServer, now: Instant) {
    for _ in 0..64 {
        stack.poll(now);
        if !server.poll(stack, now) {
            break;
        }
    }
    stack.poll(now);
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[riscv_rt::entry]
fn main(_hart: usize, dtb: usize) -> ! {
    board::paint_stack();
    Uart::init();
    let dt = board::device_tree(dtb)
        .unwrap_or_else(|e| fail(1, format_args!("no device tree at {dtb:#x}: {e:?}")));
    let bootargs = dt
        .find_node("/chosen")
        .and_then(|chosen| chosen.property("bootargs"))
        .and_then(|p| p.as_str())
        .unwrap_or("");
    let args = match Args::parse(bootargs) {
        Ok(args) => args,
        Err(ArgError::Help) => {
            println!("{USAGE}");
            board::exit(0)
        }
        Err(e) => fail(2, format_args!("{e}\n{USAGE}")),
    };

    let mut nic = Nic::probe(virtio_slots(&dt)).unwrap_or_else(|e| fail(1, format_args!("{e}")));
    let mut plic = Plic::init(&[nic.irq(), UART_IRQ]);
    let net_irq = nic.irq();

    let ip = *args.listen.ip();
    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(nic.mac()));
    iface_config.random_seed = board::seed();
    let mut iface = Interface::new(iface_config, &mut nic, smol_now());
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for one address.
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24));
    });
    let [a, b, c, _] = ip.octets();
    if iface
        .routes_mut()
        .add_default_ipv4_route(Ipv4Address::new(a, b, c, 2))
        .is_err()
    {
        fail(1, format_args!("route table full"));
    }

    let storage = STORAGE.take();
    let stack_config = StackConfig {
        listen: LISTEN,
        ..StackConfig::new()
    };
    let mut stack = Net::new(iface, nic, storage, stack_config);
    let server = SERVER.take();
    server.set_config(args.config());
    server.handler_mut().request_timeout_ms = args.request_timeout_ms;
    if let Err(e) = server.listen(&mut stack, args.listen.port()) {
        fail(1, format_args!("cannot listen on {}: {e:?}", args.listen));
    }
    println!("listening on {}", args.listen);

    let mut stop = false;
    while !stop {
        let now = board::now();
        run(&mut stack, server, now);
        board::sleep_until(earliest(stack.poll_at(now), server.poll_at()));
        plic.dispatch(|src| {
            if src == net_irq {
                stack.device_mut().ack_interrupt();
            } else if src == UART_IRQ {
                while let Some(byte) = Uart::get() {
                    stop |= byte == b'q' || byte == 0x03;
                }
            }
        });
    }

    let now = board::now();
    server.shutdown(&mut stack, now);
    let until = Instant::from_millis(now.as_millis() + SHUTDOWN_FLUSH_MS);
    loop {
        let now = board::now();
        stack.poll(now);
        if now >= until {
            break;
        }
        board::sleep_until(earliest(stack.poll_at(now), Some(until)));
        plic.dispatch(|src| {
            if src == net_irq {
                stack.device_mut().ack_interrupt();
            } else if src == UART_IRQ {
                while Uart::get().is_some() {}
            }
        });
    }
    print_stats(server.stats());
    board::exit(0)
}

/// The board's clock as smoltcp's instant.
fn smol_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(board::now().as_millis() as i64)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    board::exit(1)
}
