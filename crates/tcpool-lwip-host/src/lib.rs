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

/// The calls into the C glue (`port/glue.c`).
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{CStr, c_char, c_int, c_long, c_longlong, c_uchar};

    #[repr(C)]
    struct AbiEntry {
        name: *const c_char,
        value: c_longlong,
    }

    unsafe extern "C" {
        fn tcpool_lwip_host_start() -> c_int;
        fn tcpool_lwip_host_abi() -> *const AbiEntry;
        fn tcpool_lwip_host_fd_set_image(fd: c_int, out: *mut c_uchar, len: usize) -> c_long;
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
