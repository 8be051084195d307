//! A real lwIP for the host, so that `tcpool-lwip` is tested against lwIP
//! itself rather than a mock.
//!
//! The build script compiles lwIP 2.2.1 (from the crates.io package `lwip`
//! 0.4.0, or `LWIP_SRC_DIR`) with an `lwipopts.h` that mirrors ESP-IDF's
//! defaults: 10 sockets numbered from 54, backlog support, keepalive,
//! `SO_REUSEADDR`, `SO_RCVBUF`, `SO_LINGER`, `select` and `poll`, heap-allocated
//! pools, lwIP's native socket headers, MSS 1440 with 4×MSS windows, the
//! unix port's pthread `sys_arch.c` and a tcpip thread. The only interface
//! is loopback (`127.0.0.1`, `::1`), which works without any setup.
//!
//! Only the `lwip_`-prefixed socket functions are exported
//! (`LWIP_COMPAT_SOCKETS 0`), so nothing clashes with the host's libc. Link
//! this crate (call [`init`]) and the `lwip_*` symbols that `tcpool-lwip`
//! declares resolve to this build.
//!
//! lwIP has global state: there is one stack per process. Keep tests that use
//! it in their own test binary and serialise them.
//!
//! ```
//! tcpool_lwip_host::init();
//! assert_eq!(tcpool_lwip_host::NUM_SOCKETS, 10);
//! ```

use std::sync::Once;

/// Number of sockets in lwIP's socket table (`MEMP_NUM_NETCONN`), as
/// ESP-IDF's default `CONFIG_LWIP_MAX_SOCKETS`.
pub const NUM_SOCKETS: usize = 10;

/// First socket descriptor lwIP hands out (`LWIP_SOCKET_OFFSET`); as on
/// ESP-IDF, descriptors are `54..64`.
pub const SOCKET_OFFSET: i32 = 54;

/// Starts lwIP (its tcpip thread and the loopback interface) unless it is
/// already running, and returns once it is ready to be used from any thread.
///
/// Idempotent and thread-safe: every call after the first returns at once
/// (concurrent first calls wait for the one that starts lwIP).
pub fn init() {
    static START: Once = Once::new();
    START.call_once(|| {
        let rc = ffi::start();
        assert_eq!(
            rc, 0,
            "lwIP failed to start (tcpool_lwip_host_start = {rc})"
        );
    });
}

/// The constants and layout facts this lwIP build was compiled with, as
/// `(name, value)` pairs: errno values (`"ENFILE"`), fcntl and poll flags
/// (`"O_NONBLOCK"`, `"POLLOUT"`), socket options (`"SO_LINGER"`), sizes
/// (`"sizeof(struct sockaddr_in)"`) and field offsets
/// (`"offsetof(struct sockaddr_in,sin_family)"`).
///
/// Taken from a C file compiled with the same headers, options and include
/// order as lwIP's `sockets.c`, so a backend can check its own constants
/// against the ones lwIP really uses. Needs no [`init`].
pub fn abi() -> Vec<(&'static str, i64)> {
    ffi::abi()
}

/// One value from [`abi`], by name.
pub fn abi_value(name: &str) -> Option<i64> {
    abi().into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The bytes of a C `fd_set` in which only `fd` was set with `FD_SET`, as
/// lwIP's `lwip_select` will read it. Needs no [`init`].
pub fn fd_set_image(fd: i32) -> Vec<u8> {
    ffi::fd_set_image(fd)
}

/// How a [`RawClient::recv`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRecv {
    /// This many bytes were read.
    Data(usize),
    /// Nothing has arrived (or the connection is still being set up).
    WouldBlock,
    /// The server ended its side, and everything before that was read.
    Eof,
    /// The connection was reset, refused or timed out (after any data that
    /// arrived before that was read).
    Reset,
}

/// The connection of a [`RawClient`] was reset (or refused), or its
/// sending side was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientReset;

/// A TCP client on lwIP's raw API, connecting to `127.0.0.1` inside this
/// process's lwIP.
///
/// It takes a TCP PCB but no socket, so a server under test has lwIP's
/// socket table to itself, as in a firmware where the clients are other
/// devices; the connection still crosses lwIP's TCP and loopback
/// interface. Non-blocking: every call returns at once. Received data is
/// acknowledged to the server only as it is read, so a client that does not
/// read pushes back through the TCP window.
///
/// Dropping a client that was not [`close`](RawClient::close)d resets its
/// connection.
///
/// ```
/// tcpool_lwip_host::init();
/// // Nobody listens on port 9: lwIP refuses with a reset.
/// let mut c = tcpool_lwip_host::RawClient::connect(9).unwrap();
/// let refused = std::time::Instant::now() + std::time::Duration::from_secs(5);
/// while c.recv(&mut [0; 8]) != tcpool_lwip_host::ClientRecv::Reset {
///     assert!(std::time::Instant::now() < refused);
///     std::thread::sleep(std::time::Duration::from_millis(1));
/// }
/// ```
#[derive(Debug)]
pub struct RawClient {
    client: ffi::ClientPtr,
}

impl RawClient {
    /// Starts connecting to `127.0.0.1:port`. Fails with lwIP's `err_t`
    /// when it has no PCB or memory for it. Needs [`init`].
    pub fn connect(port: u16) -> Result<RawClient, i32> {
        ffi::client_connect(port).map(|client| RawClient { client })
    }

    /// The client's own port, as the server sees it as the peer's.
    pub fn local_port(&self) -> u16 {
        ffi::client_local_port(&self.client)
    }

    /// Queues what fits of `data` for sending: `Ok(0)` if nothing fits now
    /// or the connection is still being set up.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, ClientReset> {
        let n = ffi::client_send(&mut self.client, data);
        usize::try_from(n).map_err(|_| ClientReset)
    }

    /// Reads what has arrived into `buf` (`Data(0)` if `buf` is empty).
    pub fn recv(&mut self, buf: &mut [u8]) -> ClientRecv {
        if buf.is_empty() {
            return ClientRecv::Data(0);
        }
        match ffi::client_recv(&mut self.client, buf) {
            0 => ClientRecv::Eof,
            ffi::CLIENT_WOULD_BLOCK => ClientRecv::WouldBlock,
            n => usize::try_from(n).map_or(ClientRecv::Reset, ClientRecv::Data),
        }
    }

    /// Sends FIN after what is queued; the client can still read. Fails if
    /// the connection is not established.
    pub fn shutdown_write(&mut self) -> Result<(), ClientReset> {
        match ffi::client_shutdown_write(&mut self.client) {
            0 => Ok(()),
            _ => Err(ClientReset),
        }
    }

    /// Aborts the connection with a reset.
    pub fn abort(self) {
        // Drop aborts.
    }

    /// Closes normally: FIN after what is queued, or a reset if input was
    /// left unread (as a BSD stack does).
    pub fn close(self) {
        let client = std::mem::ManuallyDrop::new(self);
        ffi::client_close(&client.client);
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        ffi::client_abort(&self.client);
    }
}

/// The calls into the C glue (`port/glue.c`, `port/client.c`).
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{CStr, c_char, c_int, c_long, c_longlong, c_uchar};

    #[repr(C)]
    struct AbiEntry {
        name: *const c_char,
        value: c_longlong,
    }

    /// `struct tcpool_client` (opaque).
    #[repr(C)]
    pub(crate) struct Client {
        _opaque: [u8; 0],
    }

    /// An owned `struct tcpool_client *`, never null; freed by
    /// `client_close` or `client_abort` (each called at most once, by
    /// `RawClient`).
    #[derive(Debug)]
    pub(crate) struct ClientPtr(std::ptr::NonNull<Client>);

    // SAFETY: the C client's state is only ever touched on lwIP's tcpip
    // thread (every function below marshals itself there and waits), so the
    // handle may be used from any one thread at a time.
    unsafe impl Send for ClientPtr {}

    /// `TCPOOL_CLIENT_WOULD_BLOCK` in client.c.
    pub(crate) const CLIENT_WOULD_BLOCK: c_long = -1;

    unsafe extern "C" {
        fn tcpool_client_connect(port: u16, err: *mut c_int) -> *mut Client;
        fn tcpool_client_local_port(c: *const Client) -> u16;
        fn tcpool_client_send(c: *mut Client, data: *const u8, len: usize) -> c_long;
        fn tcpool_client_recv(c: *mut Client, out: *mut u8, len: usize) -> c_long;
        fn tcpool_client_shutdown_write(c: *mut Client) -> c_long;
        fn tcpool_client_abort(c: *mut Client);
        fn tcpool_client_close(c: *mut Client);
        fn tcpool_lwip_host_start() -> c_int;
        fn tcpool_lwip_host_abi() -> *const AbiEntry;
        fn tcpool_lwip_host_fd_set_image(fd: c_int, out: *mut c_uchar, len: usize) -> c_long;
    }

    pub(crate) fn client_connect(port: u16) -> Result<ClientPtr, i32> {
        let mut err: c_int = 0;
        // SAFETY: `err` is a valid place for the C side to write the error
        // to; the result is a fresh allocation or null.
        let c = unsafe { tcpool_client_connect(port, &mut err) };
        std::ptr::NonNull::new(c).map(ClientPtr).ok_or(err)
    }

    pub(crate) fn client_local_port(c: &ClientPtr) -> u16 {
        // SAFETY: `c` is a live client (not yet freed: freeing consumes
        // the `RawClient` that owns it).
        unsafe { tcpool_client_local_port(c.0.as_ptr()) }
    }

    pub(crate) fn client_send(c: &mut ClientPtr, data: &[u8]) -> c_long {
        // SAFETY: `c` is live; `data` is valid for reads of its length for
        // the whole call (the C side copies it before returning).
        unsafe { tcpool_client_send(c.0.as_ptr(), data.as_ptr(), data.len()) }
    }

    pub(crate) fn client_recv(c: &mut ClientPtr, buf: &mut [u8]) -> c_long {
        // SAFETY: `c` is live; `buf` is valid for writes of its length, and
        // the C side writes at most that many bytes.
        unsafe { tcpool_client_recv(c.0.as_ptr(), buf.as_mut_ptr(), buf.len()) }
    }

    pub(crate) fn client_shutdown_write(c: &mut ClientPtr) -> c_long {
        // SAFETY: `c` is live.
        unsafe { tcpool_client_shutdown_write(c.0.as_ptr()) }
    }

    /// Frees the client: called once, from `RawClient::drop`.
    pub(crate) fn client_abort(c: &ClientPtr) {
        // SAFETY: `c` is live, and this is the last use of it: the owning
        // `RawClient` is being dropped.
        unsafe { tcpool_client_abort(c.0.as_ptr()) }
    }

    /// Frees the client: called once, from `RawClient::close`, whose
    /// `ManuallyDrop` keeps `client_abort` from running as well.
    pub(crate) fn client_close(c: &ClientPtr) {
        // SAFETY: `c` is live, and this is the last use of it (see above).
        unsafe { tcpool_client_close(c.0.as_ptr()) }
    }

    pub(crate) fn start() -> c_int {
        // SAFETY: the C function takes no arguments; it is called once per
        // process (guarded by a `Once` in `init`), which is what
        // `tcpip_init` requires.
        unsafe { tcpool_lwip_host_start() }
    }

    pub(crate) fn abi() -> Vec<(&'static str, i64)> {
        let mut out = Vec::new();
        // SAFETY: returns a pointer to a static, NULL-name-terminated array
        // that lives for the whole program and is never written.
        let mut entry = unsafe { tcpool_lwip_host_abi() };
        loop {
            // SAFETY: `entry` points into the static array and we stop at
            // the terminating entry, so it is always in bounds.
            let e = unsafe { &*entry };
            if e.name.is_null() {
                break;
            }
            // SAFETY: names are C string literals: static, NUL-terminated.
            let name = unsafe { CStr::from_ptr(e.name) };
            let name = name.to_str().expect("ABI names are ASCII");
            out.push((name, e.value));
            // SAFETY: not the terminator, so the next entry is in bounds.
            entry = unsafe { entry.add(1) };
        }
        out
    }

    pub(crate) fn fd_set_image(fd: i32) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes, which the
        // C side checks before writing.
        let n = unsafe { tcpool_lwip_host_fd_set_image(fd, buf.as_mut_ptr(), buf.len()) };
        let n = usize::try_from(n).expect("fd_set larger than 4096 bytes");
        buf.truncate(n);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_matches_the_constants_exported_here() {
        assert_eq!(
            abi_value("LWIP_SOCKET_OFFSET"),
            Some(i64::from(SOCKET_OFFSET))
        );
        assert_eq!(abi_value("MEMP_NUM_NETCONN"), Some(NUM_SOCKETS as i64));
    }

    #[test]
    fn lwip_uses_its_native_sockaddr_layout() {
        assert_eq!(abi_value("sizeof(struct sockaddr_in)"), Some(16));
        assert_eq!(
            abi_value("offsetof(struct sockaddr_in,sin_family)"),
            Some(1)
        );
        assert_eq!(abi_value("sizeof(sa_family_t)"), Some(1));
    }
}
