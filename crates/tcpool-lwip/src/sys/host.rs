//! The host (any target with an operating system but ESP-IDF): lwIP built
//! by `tcpool-lwip-host` with the unix port.
//!
//! The port's `arch/cc.h` includes the host `<errno.h>` and `<sys/time.h>`
//! (which on glibc defines `FD_SET`), so errno values, `fd_set` and
//! `struct timeval` are the host's (`libc`). `O_NONBLOCK`, `F_GETFL` and the
//! `POLL*` flags are not defined by anything lwIP includes, so they are
//! lwIP's own defaults from `lwip/sockets.h`. All of it is checked against
//! the compiled lwIP by the `abi_matches_the_host_lwip_build` test.

use core::ffi::{c_int, c_ulong};
use core::time::Duration;

// errno: the host's.
pub(crate) const EIO: c_int = libc::EIO;
pub(crate) const EBADF: c_int = libc::EBADF;
pub(crate) const EAGAIN: c_int = libc::EAGAIN;
pub(crate) const EWOULDBLOCK: c_int = libc::EWOULDBLOCK;
pub(crate) const ENOMEM: c_int = libc::ENOMEM;
pub(crate) const EINVAL: c_int = libc::EINVAL;
pub(crate) const ENFILE: c_int = libc::ENFILE;
pub(crate) const EMFILE: c_int = libc::EMFILE;
pub(crate) const EPIPE: c_int = libc::EPIPE;
pub(crate) const ENOSYS: c_int = libc::ENOSYS;
pub(crate) const EOPNOTSUPP: c_int = libc::EOPNOTSUPP;
pub(crate) const ECONNRESET: c_int = libc::ECONNRESET;
pub(crate) const ENOBUFS: c_int = libc::ENOBUFS;
pub(crate) const ENOPROTOOPT: c_int = libc::ENOPROTOOPT;
pub(crate) const EADDRINUSE: c_int = libc::EADDRINUSE;
pub(crate) const ECONNABORTED: c_int = libc::ECONNABORTED;
pub(crate) const EHOSTUNREACH: c_int = libc::EHOSTUNREACH;
pub(crate) const EINPROGRESS: c_int = libc::EINPROGRESS;
pub(crate) const EALREADY: c_int = libc::EALREADY;
pub(crate) const EISCONN: c_int = libc::EISCONN;
pub(crate) const ENOTCONN: c_int = libc::ENOTCONN;

// fcntl: lwIP's defaults (lwip/sockets.h), not the host's.
pub(crate) const F_GETFL: c_int = 3;
pub(crate) const F_SETFL: c_int = 4;
pub(crate) const O_NONBLOCK: c_int = 1;

// poll: lwIP's defaults; kept for the ABI check: waiting uses lwip_select.
#[allow(dead_code)]
pub(crate) const POLLIN: i16 = 0x1;
#[allow(dead_code)]
pub(crate) const POLLOUT: i16 = 0x2;

/// `FD_SETSIZE` of the host `fd_set`, which lwIP uses as is.
pub(crate) const FD_SETSIZE: usize = libc::FD_SETSIZE;

/// One word of the host `fd_set` (`__fd_mask` is `long` on glibc: bit `n`
/// of the set is bit `n % BITS` of word `n / BITS`).
pub(crate) type FdWord = c_ulong;

/// The host `struct timeval`.
pub(crate) type Timeval = libc::timeval;

/// A `Timeval` for `d`.
pub(crate) fn timeval(d: Duration) -> Timeval {
    Timeval {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}

/// No cap: lwIP's select reports pending connections on a listener
/// correctly in the host build (pinned by a test).
pub(crate) const LISTENER_POLL_CAP: Option<Duration> = None;
