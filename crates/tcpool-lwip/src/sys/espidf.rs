//! ESP-IDF (`target_os = "espidf"`): lwIP from ESP-IDF's `lwip` component,
//! built against newlib.
//!
//! ESP-IDF's `lwipopts.h` includes newlib's `sys/fcntl.h`, `sys/select.h`
//! and `sys/poll.h` before lwIP's socket headers, so `O_NONBLOCK`, `POLL*`,
//! `fd_set` and errno are newlib's. The values are those of newlib as used by
//! ESP-IDF 5 (and of the `libc` crate's `espidf` target,
//! `src/unix/newlib/{mod.rs,espidf/mod.rs}`).

use core::ffi::{c_int, c_ulong};
use core::time::Duration;

// errno (newlib sys/errno.h)
pub(crate) const EIO: c_int = 5;
pub(crate) const EBADF: c_int = 9;
pub(crate) const EAGAIN: c_int = 11;
pub(crate) const EWOULDBLOCK: c_int = 11;
pub(crate) const ENOMEM: c_int = 12;
pub(crate) const EINVAL: c_int = 22;
pub(crate) const ENFILE: c_int = 23;
pub(crate) const EMFILE: c_int = 24;
pub(crate) const EPIPE: c_int = 32;
pub(crate) const ENOSYS: c_int = 88;
pub(crate) const EOPNOTSUPP: c_int = 95;
pub(crate) const ECONNRESET: c_int = 104;
pub(crate) const ENOBUFS: c_int = 105;
pub(crate) const ENOPROTOOPT: c_int = 109;
pub(crate) const EADDRINUSE: c_int = 112;
pub(crate) const ECONNABORTED: c_int = 113;
pub(crate) const EHOSTUNREACH: c_int = 118;
pub(crate) const EINPROGRESS: c_int = 119;
pub(crate) const EALREADY: c_int = 120;
pub(crate) const EISCONN: c_int = 127;
pub(crate) const ENOTCONN: c_int = 128;

// fcntl (newlib sys/_default_fcntl.h)
pub(crate) const F_GETFL: c_int = 3;
pub(crate) const F_SETFL: c_int = 4;
pub(crate) const O_NONBLOCK: c_int = 0x4000;

// poll (newlib sys/poll.h as shipped with ESP-IDF); kept for reference:
// waiting uses lwip_select.
#[allow(dead_code)]
pub(crate) const POLLIN: i16 = 1 << 0;
#[allow(dead_code)]
pub(crate) const POLLOUT: i16 = 1 << 3;

/// `FD_SETSIZE`: newlib's `fd_set` holds descriptors `0..64`; ESP-IDF puts
/// lwIP's sockets at the top (`LWIP_SOCKET_OFFSET = FD_SETSIZE -
/// CONFIG_LWIP_MAX_SOCKETS`).
pub(crate) const FD_SETSIZE: usize = 64;

/// One word of newlib's `fd_set` (`fd_mask` is `unsigned long`, 32 bits).
pub(crate) type FdWord = c_ulong;

/// newlib's `struct timeval` with ESP-IDF 5's 64-bit `time_t`
/// (`suseconds_t` is `long`, 32 bits).
#[repr(C)]
pub(crate) struct Timeval {
    tv_sec: i64,
    tv_usec: i32,
}

/// A `Timeval` for `d`.
pub(crate) fn timeval(d: Duration) -> Timeval {
    Timeval {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_usec: d.subsec_micros() as i32,
    }
}

/// lwIP's select on a *listening* socket does not reliably report pending
/// connections on ESP-IDF (edge-nal-std polls accept every 20 ms there for
/// the same reason), so a wait that includes a listener is capped at this.
pub(crate) const LISTENER_POLL_CAP: Option<Duration> = Some(Duration::from_millis(20));
