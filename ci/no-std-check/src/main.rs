//! Proof that tcpool-core builds and links with neither `std` nor an
//! allocator: a bare `no_std`, `no_main` binary that runs a real `Server`
//! over a stack with no sockets. Had anything pulled in `std`, the panic
//! handler below would clash with std's; had anything allocated, linking
//! would fail for want of a global allocator.
#![no_std]
#![no_main]
// `no_mangle` on the entry point is what the unsafe_code lint flags; it is
// sound because no other symbol in this binary is named `_start`.
#![allow(unsafe_code)]

use core::net::SocketAddr;

use tcpool_core::{Config, Conn, Handler, Instant, Server};

/// A stack with no sockets at all: every call fails or would block.
struct NoSockets;

#[derive(Debug)]
struct Never;

impl embedded_nal::TcpError for Never {
    fn kind(&self) -> embedded_nal::TcpErrorKind {
        embedded_nal::TcpErrorKind::Other
    }
}

impl embedded_nal::TcpClientStack for NoSockets {
    type TcpSocket = ();
    type Error = Never;
    fn socket(&mut self) -> Result<(), Never> {
        Ok(())
    }
    fn connect(&mut self, _: &mut (), _: SocketAddr) -> nb::Result<(), Never> {
        Err(nb::Error::WouldBlock)
    }
    fn send(&mut self, _: &mut (), _: &[u8]) -> nb::Result<usize, Never> {
        Err(nb::Error::WouldBlock)
    }
    fn receive(&mut self, _: &mut (), _: &mut [u8]) -> nb::Result<usize, Never> {
        Err(nb::Error::WouldBlock)
    }
    fn close(&mut self, _: ()) -> Result<(), Never> {
        Ok(())
    }
}

impl embedded_nal::TcpFullStack for NoSockets {
    fn bind(&mut self, _: &mut (), _: u16) -> Result<(), Never> {
        Ok(())
    }
    fn listen(&mut self, _: &mut ()) -> Result<(), Never> {
        Ok(())
    }
    fn accept(&mut self, _: &mut ()) -> nb::Result<((), SocketAddr), Never> {
        Err(nb::Error::WouldBlock)
    }
}

impl tcpool_core::Backend for NoSockets {
    fn abort(&mut self, _: ()) -> Result<(), Never> {
        Ok(())
    }
    fn local_addr(&self, _: &()) -> Option<SocketAddr> {
        None
    }
}

struct Echo;

impl Handler for Echo {
    type State = u32;
    fn on_open(&mut self, _: &mut Conn<'_>) -> u32 {
        0
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, lines: &mut u32, data: &[u8]) -> usize {
        let mut it = tcpool_core::framing::Lines::new(data, 64);
        for line in it.by_ref().flatten() {
            *lines += 1;
            let _ = conn.write_all(line);
        }
        it.consumed()
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut stack = NoSockets;
    let mut server: Server<NoSockets, Echo, 4, 256, 256> = Server::new(Echo, Config::new());
    let _ = server.listen(&mut stack, 7000);
    let mut ms = 0;
    loop {
        server.poll(&mut stack, Instant::from_millis(ms));
        ms += 1;
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
