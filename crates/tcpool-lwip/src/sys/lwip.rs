//! What lwIP's native socket headers define, identical on every target
//! (ESP-IDF and the host build both use lwIP's own `lwip/sockets.h`, not
//! the system's).

use core::ffi::c_int;

/// `AF_INET`.
pub(crate) const AF_INET: c_int = 2;
/// `AF_INET6`.
pub(crate) const AF_INET6: c_int = 10;
/// `SOCK_STREAM`.
pub(crate) const SOCK_STREAM: c_int = 1;
/// `IPPROTO_TCP`.
pub(crate) const IPPROTO_TCP: c_int = 6;

/// `SOL_SOCKET` (lwIP's value, not the host's 1).
pub(crate) const SOL_SOCKET: c_int = 0xfff;
/// `SO_REUSEADDR` (needs `SO_REUSE` in lwipopts.h).
pub(crate) const SO_REUSEADDR: c_int = 0x0004;
/// `SO_KEEPALIVE`.
pub(crate) const SO_KEEPALIVE: c_int = 0x0008;
/// `SO_LINGER` (needs `LWIP_SO_LINGER`).
pub(crate) const SO_LINGER: c_int = 0x0080;
/// `SO_ERROR`: get and clear the pending error.
pub(crate) const SO_ERROR: c_int = 0x1007;

/// `TCP_NODELAY`.
pub(crate) const TCP_NODELAY: c_int = 0x01;
/// `TCP_KEEPIDLE` (seconds; needs `LWIP_TCP_KEEPALIVE`).
pub(crate) const TCP_KEEPIDLE: c_int = 0x03;
/// `TCP_KEEPINTVL` (seconds; needs `LWIP_TCP_KEEPALIVE`).
pub(crate) const TCP_KEEPINTVL: c_int = 0x04;
/// `TCP_KEEPCNT` (needs `LWIP_TCP_KEEPALIVE`).
pub(crate) const TCP_KEEPCNT: c_int = 0x05;

/// `SHUT_WR`.
pub(crate) const SHUT_WR: c_int = 1;

/// `struct linger { int l_onoff; int l_linger; }`.
#[repr(C)]
pub(crate) struct Linger {
    pub(crate) l_onoff: c_int,
    pub(crate) l_linger: c_int,
}

/// `socklen_t` (lwIP: `u32_t`).
pub(crate) type SockLen = u32;

// lwIP's native `struct sockaddr_in`: sin_len (u8), sin_family (u8),
// sin_port (u16, network order), sin_addr (u32, network order),
// sin_zero[8]. `struct sockaddr_in6`: sin6_len (u8), sin6_family (u8),
// sin6_port (u16), sin6_flowinfo (u32), sin6_addr (16 bytes),
// sin6_scope_id (u32). Both start like `struct sockaddr` (len, family).

/// `sizeof(struct sockaddr_in)`.
pub(crate) const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
pub(crate) const SOCKADDR_IN6_LEN: usize = 28;
/// Offset of `sin_len` / `sin6_len`.
pub(crate) const SA_LEN_OFFSET: usize = 0;
/// Offset of `sin_family` / `sin6_family` (a `u8`: `sa_family_t` is `u8_t`).
pub(crate) const SA_FAMILY_OFFSET: usize = 1;
/// Offset of `sin_port` / `sin6_port`.
pub(crate) const SA_PORT_OFFSET: usize = 2;
/// Offset of `sin_addr`.
pub(crate) const SIN_ADDR_OFFSET: usize = 4;
/// Offset of `sin6_flowinfo`.
pub(crate) const SIN6_FLOWINFO_OFFSET: usize = 4;
/// Offset of `sin6_addr`.
pub(crate) const SIN6_ADDR_OFFSET: usize = 8;
/// Offset of `sin6_scope_id`.
pub(crate) const SIN6_SCOPE_ID_OFFSET: usize = 24;

/// Room for any socket address lwIP returns (`struct sockaddr_storage`
/// with IPv6, 28 bytes), aligned as lwIP requires (it rejects addresses not
/// aligned to 4 bytes).
#[repr(C, align(4))]
#[derive(Clone, Copy)]
pub(crate) struct SockAddrBuf(pub(crate) [u8; SOCKADDR_IN6_LEN]);

// lwIP internals, for `LwipStack::abort` (see `ffi::reset`). Not part of
// lwIP's socket API, but the same in every lwIP 2.x, ESP-IDF's included:
// `struct lwip_sock` (lwip/priv/sockets_priv.h) starts with its netconn,
// and `struct netconn` (lwip/api.h) with its type, its state and its PCB.

/// `err_t` (`s8_t` unless a port defines `LWIP_ERR_T`; neither the host
/// build nor ESP-IDF does).
pub(crate) type ErrT = i8;
/// `ERR_OK`.
pub(crate) const ERR_OK: ErrT = 0;

/// `NETCONN_TCP` (`enum netconn_type`), compared with `NETCONNTYPE_GROUP`.
pub(crate) const NETCONN_TCP: core::ffi::c_uint = 0x10;
/// The mask of `NETCONNTYPE_GROUP(t)` (`t & 0xF0`: TCP over IPv4 or IPv6).
pub(crate) const NETCONNTYPE_GROUP_MASK: core::ffi::c_uint = 0xf0;
/// `NETCONN_NONE` (`enum netconn_state`): no operation in progress (not
/// listening, connecting, writing or closing).
pub(crate) const NETCONN_NONE: core::ffi::c_uint = 0;

/// The start of `struct lwip_sock`.
#[repr(C)]
pub(crate) struct LwipSockHead {
    /// `struct netconn *conn`.
    pub(crate) conn: *mut NetconnHead,
}

/// The start of `struct netconn`.
#[repr(C)]
pub(crate) struct NetconnHead {
    /// `enum netconn_type type`.
    pub(crate) ty: core::ffi::c_uint,
    /// `enum netconn_state state`.
    pub(crate) state: core::ffi::c_uint,
    /// `union { ...; struct tcp_pcb *tcp; ... } pcb`.
    pub(crate) pcb: *mut core::ffi::c_void,
}

/// Room for `struct tcpip_api_call_data`, whatever lwIP's configuration:
/// an `err_t`, plus a `sys_sem_t` without `LWIP_NETCONN_SEM_PER_THREAD`
/// (one byte with `LWIP_TCPIP_CORE_LOCKING`). lwIP writes only inside it.
#[repr(C)]
pub(crate) struct ApiCallData {
    _room: [usize; 4],
}

impl ApiCallData {
    pub(crate) const fn new() -> ApiCallData {
        ApiCallData { _room: [0; 4] }
    }
}
