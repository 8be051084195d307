//! Firmware places a stack's storage in a `static` with no copy in the flash
//! image: `StackStorage::new()` is a `const` whose bytes are all zero, so a
//! `static` holding it lands in `.bss`. Checked on this test's own
//! executable (ELF, hence Linux only), against a control that must not.
#![cfg(target_os = "linux")]

use embedded_nal::{TcpClientStack, TcpFullStack};
use object::{Object, ObjectSection, ObjectSymbol};
use smoltcp::iface::{Config as IfaceConfig, Interface};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use static_cell::ConstStaticCell;
use tcpool_smoltcp::{Config, Stack, StackStorage};

/// The firmware pattern, as the crate docs show it.
static STACK_STORAGE_IN_BSS: ConstStaticCell<StackStorage<'static, 4, 1024, 1024>> =
    ConstStaticCell::new(StackStorage::new());

/// The control: one non-zero byte puts a whole static in `.data`.
static NONZERO_CONTROL_IN_DATA: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new({
    let mut bytes = [0u8; 4096];
    bytes[4095] = 1;
    bytes
});

/// The section of this executable that holds the one symbol whose (mangled)
/// name contains `name`.
fn section_of(name: &str) -> String {
    let exe = std::env::current_exe().expect("own executable");
    let data = std::fs::read(&exe).expect("read own executable");
    let file = object::File::parse(&*data).expect("parse own executable");
    let symbols: Vec<_> = file
        .symbols()
        .filter(|s| s.name().is_ok_and(|n| n.contains(name)))
        .collect();
    assert_eq!(
        symbols.len(),
        1,
        "symbols named like {name}: {:?}",
        symbols.iter().map(|s| s.name()).collect::<Vec<_>>()
    );
    let index = symbols[0].section_index().expect("symbol in a section");
    let section = file.section_by_index(index).expect("section");
    section.name().expect("section name").to_owned()
}

#[test]
fn a_static_stack_storage_is_all_zero_and_lands_in_bss() {
    // Use both statics, so that the linker keeps them.
    let control = NONZERO_CONTROL_IN_DATA.take();
    assert_eq!(control[4095], 1);
    let storage = STACK_STORAGE_IN_BSS.take();
    let mut device = Loopback::new(Medium::Ip);
    let mut iface = Interface::new(
        IfaceConfig::new(HardwareAddress::Ip),
        &mut device,
        smoltcp::time::Instant::ZERO,
    );
    iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
    let mut stack = Stack::new(iface, device, storage, Config::new());
    let mut listener = stack.socket().unwrap();
    stack.bind(&mut listener, 7).unwrap();
    stack.listen(&mut listener).unwrap();
    assert_eq!(stack.pool_stats().listening, 2);

    assert_eq!(section_of("NONZERO_CONTROL_IN_DATA"), ".data");
    assert_eq!(section_of("STACK_STORAGE_IN_BSS"), ".bss");
}

/// The server too: `Server::with_default_config` over this backend is all
/// zero bytes (its slots, and `None` for every socket handle), so firmware
/// sets its configuration at boot and the value costs nothing in the image.
static SERVER_IN_BSS: ConstStaticCell<
    tcpool_core::Server<Stack<'static, Loopback, 4>, tcpool_conformance::Echo, 4, 1024, 1024>,
> = ConstStaticCell::new(tcpool_core::Server::with_default_config(
    tcpool_conformance::Echo,
));

#[test]
fn a_static_server_with_the_default_config_lands_in_bss() {
    let server = SERVER_IN_BSS.take();
    server.set_config(tcpool_core::Config::new().with_max_connections(2));
    assert_eq!(server.max_connections(), 2);
    assert_eq!(section_of("SERVER_IN_BSS"), ".bss");
}
