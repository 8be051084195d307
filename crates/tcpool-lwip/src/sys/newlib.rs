//! lwIP built against newlib: ESP-IDF (`target_os = "espidf"`, lwIP from
//! ESP-IDF's `lwip` component), and bare-metal targets (`target_os =
//! "none"`), whose C toolchains (arm-none-eabi, riscv-none-elf) ship newlib.
//!
//! ESP-IDF's `lwipopts.h` includes newlib's `sys/fcntl.h`, `sys/select.h`
//! and `sys/poll.h` before lwIP's socket headers, so `O_NONBLOCK`, `POLL*`,
//! `fd_set` and errno are newlib's. The values are those of newlib as used by
//! ESP-IDF 5 (64-bit `time_t`). On ESP-IDF they are checked at compile time
//! against the `libc` crate's `espidf` definitions
//! (`src/unix/newlib/{mod.rs,espidf/mod.rs}`), below.
//!
//! A bare-metal lwIP port must be built the same way (newlib's errno,
//! `fd_set`, `struct timeval` and `fcntl.h` seen by lwIP's `sockets.c`);
//! nothing checks that for it.

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

/// Every newlib constant and layout above, and lwIP's own ones from
/// `sys/lwip.rs`, against the `libc` crate's `espidf` definitions (which
/// ESP-IDF's Rust `std` is built on). A mismatch fails the build.
#[cfg(target_os = "espidf")]
mod libc_espidf {
    use core::mem::{align_of, offset_of, size_of};

    use super::super::FdSet;
    use super::super::lwip::*;
    use super::*;

    /// `const _: () = assert!(ours == libc's)` for each pair.
    macro_rules! same {
        ($($ours:expr => $theirs:expr),* $(,)?) => {$(
            const _: () = assert!(
                $ours == $theirs,
                concat!(stringify!($ours), " is not the libc crate's ", stringify!($theirs)),
            );
        )*};
    }

    // errno
    same! {
        EIO => libc::EIO,
        EBADF => libc::EBADF,
        EAGAIN => libc::EAGAIN,
        EWOULDBLOCK => libc::EWOULDBLOCK,
        ENOMEM => libc::ENOMEM,
        EINVAL => libc::EINVAL,
        ENFILE => libc::ENFILE,
        EMFILE => libc::EMFILE,
        EPIPE => libc::EPIPE,
        ENOSYS => libc::ENOSYS,
        EOPNOTSUPP => libc::EOPNOTSUPP,
        ECONNRESET => libc::ECONNRESET,
        ENOBUFS => libc::ENOBUFS,
        ENOPROTOOPT => libc::ENOPROTOOPT,
        EADDRINUSE => libc::EADDRINUSE,
        ECONNABORTED => libc::ECONNABORTED,
        EHOSTUNREACH => libc::EHOSTUNREACH,
        EINPROGRESS => libc::EINPROGRESS,
        EALREADY => libc::EALREADY,
        EISCONN => libc::EISCONN,
        ENOTCONN => libc::ENOTCONN,
    }

    // fcntl and poll
    same! {
        F_GETFL => libc::F_GETFL,
        F_SETFL => libc::F_SETFL,
        O_NONBLOCK => libc::O_NONBLOCK,
        POLLIN => libc::POLLIN,
        POLLOUT => libc::POLLOUT,
    }

    // lwIP's socket constants (lwip/sockets.h), as ESP-IDF exposes them
    same! {
        AF_INET => libc::AF_INET,
        AF_INET6 => libc::AF_INET6,
        SOCK_STREAM => libc::SOCK_STREAM,
        IPPROTO_TCP => libc::IPPROTO_TCP,
        SOL_SOCKET => libc::SOL_SOCKET,
        SO_REUSEADDR => libc::SO_REUSEADDR,
        SO_KEEPALIVE => libc::SO_KEEPALIVE,
        SO_LINGER => libc::SO_LINGER,
        SO_ERROR => libc::SO_ERROR,
        TCP_NODELAY => libc::TCP_NODELAY,
        TCP_KEEPIDLE => libc::TCP_KEEPIDLE,
        TCP_KEEPINTVL => libc::TCP_KEEPINTVL,
        TCP_KEEPCNT => libc::TCP_KEEPCNT,
        SHUT_WR => libc::SHUT_WR,
    }

    // fd_set: FD_SETSIZE bits in words of `unsigned long`
    same! {
        FD_SETSIZE => libc::FD_SETSIZE,
        size_of::<FdWord>() => size_of::<libc::c_ulong>(),
        size_of::<FdSet>() => size_of::<libc::fd_set>(),
        align_of::<FdSet>() => align_of::<libc::fd_set>(),
    }

    // struct timeval (ESP-IDF 5: 64-bit time_t; ESP-IDF 4's 32-bit
    // `espidf_time32` fails here)
    same! {
        size_of::<Timeval>() => size_of::<libc::timeval>(),
        align_of::<Timeval>() => align_of::<libc::timeval>(),
        offset_of!(Timeval, tv_sec) => offset_of!(libc::timeval, tv_sec),
        offset_of!(Timeval, tv_usec) => offset_of!(libc::timeval, tv_usec),
        size_of::<i64>() => size_of::<libc::time_t>(),
        size_of::<i32>() => size_of::<libc::suseconds_t>(),
    }

    // struct linger, socklen_t, and the C types of the FFI signatures
    same! {
        size_of::<Linger>() => size_of::<libc::linger>(),
        offset_of!(Linger, l_onoff) => offset_of!(libc::linger, l_onoff),
        offset_of!(Linger, l_linger) => offset_of!(libc::linger, l_linger),
        size_of::<SockLen>() => size_of::<libc::socklen_t>(),
        size_of::<isize>() => size_of::<libc::ssize_t>(),
        size_of::<usize>() => size_of::<libc::size_t>(),
        size_of::<core::ffi::c_int>() => size_of::<libc::c_int>(),
    }

    // struct sockaddr_in, sockaddr_in6 and sockaddr_storage
    same! {
        size_of::<libc::sa_family_t>() => 1,
        SOCKADDR_IN_LEN => size_of::<libc::sockaddr_in>(),
        SA_LEN_OFFSET => offset_of!(libc::sockaddr_in, sin_len),
        SA_FAMILY_OFFSET => offset_of!(libc::sockaddr_in, sin_family),
        SA_PORT_OFFSET => offset_of!(libc::sockaddr_in, sin_port),
        SIN_ADDR_OFFSET => offset_of!(libc::sockaddr_in, sin_addr),
        4 => size_of::<libc::in_addr>(),
        SOCKADDR_IN6_LEN => size_of::<libc::sockaddr_in6>(),
        SA_LEN_OFFSET => offset_of!(libc::sockaddr_in6, sin6_len),
        SA_FAMILY_OFFSET => offset_of!(libc::sockaddr_in6, sin6_family),
        SA_PORT_OFFSET => offset_of!(libc::sockaddr_in6, sin6_port),
        SIN6_FLOWINFO_OFFSET => offset_of!(libc::sockaddr_in6, sin6_flowinfo),
        SIN6_ADDR_OFFSET => offset_of!(libc::sockaddr_in6, sin6_addr),
        16 => size_of::<libc::in6_addr>(),
        SIN6_SCOPE_ID_OFFSET => offset_of!(libc::sockaddr_in6, sin6_scope_id),
        size_of::<SockAddrBuf>() => size_of::<libc::sockaddr_storage>(),
    }

    // lwIP rejects addresses less aligned than its own sockaddr types
    const _: () = assert!(align_of::<SockAddrBuf>() >= align_of::<libc::sockaddr_in>());
    const _: () = assert!(align_of::<SockAddrBuf>() >= align_of::<libc::sockaddr_in6>());
    const _: () = assert!(align_of::<SockAddrBuf>() >= align_of::<libc::sockaddr_storage>());
}
