//! The only module with `unsafe`: lwIP's BSD socket functions and safe
//! wrappers around them.
//!
//! The symbols are resolved at link time: on ESP-IDF from the `lwip`
//! component that `esp-idf-sys` links, on the host from the lwIP build in
//! `tcpool-lwip-host`. They are the `lwip_`-prefixed names, which exist
//! whatever `LWIP_COMPAT_SOCKETS` is set to.
//!
//! Soundness of the wrappers rests on three things:
//! - lwIP validates descriptors itself (`get_socket` returns `EBADF` for
//!   anything that is not an open socket), so any `c_int` is a safe argument;
//! - every pointer passed is derived from a live Rust reference with the
//!   length that goes with it, and lwIP only uses it for the duration of the
//!   call;
//! - lwIP is running (tcpip thread started) before the first call. That is
//!   the platform's job: on ESP-IDF `esp_netif_init()` (done by esp-idf-svc's
//!   netif/Wi-Fi drivers), on the host `tcpool_lwip_host::init()`. See the
//!   crate docs.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_void};
use core::time::Duration;

use crate::error::Errno;
use crate::sys::{
    self, ApiCallData, ErrT, FdSet, Linger, LwipSockHead, NetconnHead, SockAddrBuf, SockLen,
    Timeval,
};

unsafe extern "C" {
    fn lwip_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn lwip_bind(s: c_int, name: *const c_void, namelen: SockLen) -> c_int;
    fn lwip_listen(s: c_int, backlog: c_int) -> c_int;
    fn lwip_accept(s: c_int, addr: *mut c_void, addrlen: *mut SockLen) -> c_int;
    fn lwip_connect(s: c_int, name: *const c_void, namelen: SockLen) -> c_int;
    fn lwip_recv(s: c_int, mem: *mut c_void, len: usize, flags: c_int) -> isize;
    fn lwip_send(s: c_int, data: *const c_void, size: usize, flags: c_int) -> isize;
    fn lwip_shutdown(s: c_int, how: c_int) -> c_int;
    fn lwip_close(s: c_int) -> c_int;
    fn lwip_fcntl(s: c_int, cmd: c_int, val: c_int) -> c_int;
    fn lwip_setsockopt(
        s: c_int,
        level: c_int,
        optname: c_int,
        optval: *const c_void,
        optlen: SockLen,
    ) -> c_int;
    fn lwip_getsockopt(
        s: c_int,
        level: c_int,
        optname: c_int,
        optval: *mut c_void,
        optlen: *mut SockLen,
    ) -> c_int;
    fn lwip_getsockname(s: c_int, name: *mut c_void, namelen: *mut SockLen) -> c_int;
    fn lwip_select(
        maxfdp1: c_int,
        readset: *mut FdSet,
        writeset: *mut FdSet,
        exceptset: *mut FdSet,
        timeout: *mut Timeval,
    ) -> c_int;
    /// lwIP's millisecond clock (provided by every `sys_arch`).
    fn sys_now() -> u32;
    /// The socket-table entry of descriptor `fd`, or null if `fd` is out of
    /// range (lwip/priv/sockets_priv.h; exported by every lwIP 2.x).
    fn lwip_socket_dbg_get_socket(fd: c_int) -> *mut LwipSockHead;
    /// Runs `f(call)` on the tcpip thread (or under the core lock) and
    /// returns its result once it has run (lwip/priv/tcpip_priv.h).
    fn tcpip_api_call(
        f: unsafe extern "C" fn(call: *mut ResetCall) -> ErrT,
        call: *mut ResetCall,
    ) -> ErrT;
    /// Sends a RST and frees the PCB, calling its error callback with
    /// `ERR_ABRT` (lwip/tcp.h). tcpip thread only.
    fn tcp_abort(pcb: *mut c_void);
}

// errno: lwIP sets the C library's thread-local errno (`set_errno`), so it is
// read through the C library's accessor for the calling thread.
#[cfg(any(target_os = "espidf", target_os = "none"))]
unsafe extern "C" {
    /// newlib's per-task (or, bare metal, per-reentrancy-structure) errno.
    fn __errno() -> *mut c_int;
}

#[cfg(not(any(
    target_os = "espidf",
    target_os = "none",
    target_os = "linux",
    target_os = "android",
    target_os = "hurd",
    target_os = "dragonfly",
    target_os = "redox",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
compile_error!(
    "tcpool-lwip: no errno accessor for this target (ESP-IDF, bare metal with newlib, or a unix host)"
);

fn errno() -> Errno {
    #[cfg(any(target_os = "espidf", target_os = "none"))]
    // SAFETY: newlib's `__errno` returns a valid pointer to the calling
    // task's errno.
    let value = unsafe { *__errno() };
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "hurd",
        target_os = "dragonfly",
        target_os = "redox"
    ))]
    // SAFETY: `__errno_location` returns a valid pointer to the calling
    // thread's errno.
    let value = unsafe { *libc::__errno_location() };
    #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
    // SAFETY: `__error` returns a valid pointer to the calling thread's errno.
    let value = unsafe { *libc::__error() };
    Errno(value)
}

/// Maps a C return value: `-1` means "see errno".
fn check(ret: c_int) -> Result<c_int, Errno> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

fn check_len(ret: isize) -> Result<usize, Errno> {
    usize::try_from(ret).map_err(|_| errno())
}

/// `size_of::<T>()` as a `socklen_t`.
fn len_of<T>() -> SockLen {
    core::mem::size_of::<T>() as SockLen
}

/// An open lwIP socket descriptor, closed (`lwip_close`) when dropped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fd(c_int);

impl Fd {
    /// The descriptor number.
    pub(crate) fn raw(&self) -> c_int {
        self.0
    }

    /// Closes the socket, reporting lwIP's result.
    pub(crate) fn close(self) -> Result<(), Errno> {
        let fd = self.0;
        core::mem::forget(self);
        // SAFETY: any descriptor value is accepted (see module docs); `self`
        // is forgotten so the descriptor is closed exactly once.
        check(unsafe { lwip_close(fd) }).map(drop)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: any descriptor value is accepted; `Fd` owns the descriptor,
        // so this is its only close.
        let _ = unsafe { lwip_close(self.0) };
    }
}

/// `lwip_socket(domain, SOCK_STREAM, IPPROTO_TCP)`.
pub(crate) fn socket(domain: c_int) -> Result<Fd, Errno> {
    // SAFETY: plain integers in, a descriptor or -1 out.
    check(unsafe { lwip_socket(domain, sys::SOCK_STREAM, sys::IPPROTO_TCP) }).map(Fd)
}

/// `lwip_bind`.
pub(crate) fn bind(fd: &Fd, addr: &SockAddrBuf, len: SockLen) -> Result<(), Errno> {
    // SAFETY: `addr` is a live, 4-byte aligned buffer of at least `len`
    // bytes (`len` comes from `sys::to_sockaddr`, which filled it).
    check(unsafe { lwip_bind(fd.0, addr.0.as_ptr().cast(), len) }).map(drop)
}

/// `lwip_listen`.
pub(crate) fn listen(fd: &Fd, backlog: u8) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check(unsafe { lwip_listen(fd.0, c_int::from(backlog)) }).map(drop)
}

/// `lwip_accept`: the new socket and the peer's address.
pub(crate) fn accept(fd: &Fd) -> Result<(Fd, SockAddrBuf), Errno> {
    let mut addr = SockAddrBuf([0; sys::SOCKADDR_IN6_LEN]);
    let mut len = len_of::<SockAddrBuf>();
    // SAFETY: `addr` is writable for `len` bytes, `len` is a live u32; lwIP
    // writes at most `len` bytes and updates `len`.
    let new = check(unsafe { lwip_accept(fd.0, addr.0.as_mut_ptr().cast(), &mut len) })?;
    Ok((Fd(new), addr))
}

/// `lwip_connect`.
pub(crate) fn connect(fd: &Fd, addr: &SockAddrBuf, len: SockLen) -> Result<(), Errno> {
    // SAFETY: as for `bind`.
    check(unsafe { lwip_connect(fd.0, addr.0.as_ptr().cast(), len) }).map(drop)
}

/// `lwip_recv(fd, buf, len, 0)`: `Ok(0)` is end of stream.
pub(crate) fn recv(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    check_len(unsafe { lwip_recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// `lwip_send(fd, buf, len, 0)`.
pub(crate) fn send(fd: &Fd, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is readable for `buf.len()` bytes.
    check_len(unsafe { lwip_send(fd.0, buf.as_ptr().cast(), buf.len(), 0) })
}

/// `lwip_shutdown(fd, SHUT_WR)`: sends FIN after any queued data.
pub(crate) fn shutdown_write(fd: &Fd) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check(unsafe { lwip_shutdown(fd.0, sys::SHUT_WR) }).map(drop)
}

/// Sets `O_NONBLOCK` (the only flag lwIP's `F_SETFL` accepts).
pub(crate) fn set_nonblocking(fd: &Fd) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check(unsafe { lwip_fcntl(fd.0, sys::F_SETFL, sys::O_NONBLOCK) }).map(drop)
}

/// Whether `O_NONBLOCK` is set (`F_GETFL`).
pub(crate) fn is_nonblocking(fd: &Fd) -> Result<bool, Errno> {
    // SAFETY: plain integers.
    let flags = check(unsafe { lwip_fcntl(fd.0, sys::F_GETFL, 0) })?;
    Ok(flags & sys::O_NONBLOCK != 0)
}

/// Whether descriptor `fd` names an open lwIP socket (`F_GETFL` succeeds):
/// lwIP's select may report a closed descriptor as ready instead of failing.
pub(crate) fn is_open(fd: c_int) -> bool {
    // SAFETY: plain integers; lwIP checks the descriptor itself.
    check(unsafe { lwip_fcntl(fd, sys::F_GETFL, 0) }).is_ok()
}

/// `setsockopt` with an `int` value.
pub(crate) fn set_int_option(
    fd: &Fd,
    level: c_int,
    name: c_int,
    value: c_int,
) -> Result<(), Errno> {
    // SAFETY: `value` is a live `int` and its size is passed.
    check(unsafe {
        lwip_setsockopt(
            fd.0,
            level,
            name,
            (&raw const value).cast(),
            len_of::<c_int>(),
        )
    })
    .map(drop)
}

/// `getsockopt` for an `int` value.
pub(crate) fn int_option(fd: &Fd, level: c_int, name: c_int) -> Result<c_int, Errno> {
    let mut value: c_int = 0;
    let mut len = len_of::<c_int>();
    // SAFETY: `value` is a live, writable `int` whose size is in `len`.
    check(unsafe { lwip_getsockopt(fd.0, level, name, (&raw mut value).cast(), &mut len) })?;
    Ok(value)
}

/// `SO_LINGER`.
pub(crate) fn set_linger(fd: &Fd, on: bool, seconds: c_int) -> Result<(), Errno> {
    let linger = Linger {
        l_onoff: c_int::from(on),
        l_linger: seconds,
    };
    // SAFETY: `linger` is a live `struct linger` and its size is passed.
    check(unsafe {
        lwip_setsockopt(
            fd.0,
            sys::SOL_SOCKET,
            sys::SO_LINGER,
            (&raw const linger).cast(),
            len_of::<Linger>(),
        )
    })
    .map(drop)
}

/// The argument of [`reset_on_tcpip_thread`]: lwIP's
/// `struct tcpip_api_call_data` first, as `tcpip_api_call` wants it.
#[repr(C)]
struct ResetCall {
    api: ApiCallData,
    fd: c_int,
    reset: bool,
}

/// Resets the TCP connection of `fd` now, through lwIP's raw API: a RST
/// goes out and the PCB is freed (`tcp_abort`), whatever is in flight or
/// unread. lwIP's socket API has no such call: `SO_LINGER` 0 resets only
/// when output is unsent or unacknowledged, and closes with a FIN
/// otherwise. The socket itself stays open, failed with `ECONNABORTED`
/// (the netconn's error callback runs as for a received reset), for
/// `lwip_close` to free without sending anything more.
///
/// Returns false, having done nothing, when `fd` has no connected TCP PCB
/// (listening, connecting, or already reset or closed) or the call could
/// not be queued to the tcpip thread (out of memory).
pub(crate) fn reset(fd: &Fd) -> bool {
    let mut call = ResetCall {
        api: ApiCallData::new(),
        fd: fd.0,
        reset: false,
    };
    // SAFETY: `call` is a live `ResetCall` that starts with room for the
    // `struct tcpip_api_call_data` lwIP writes its result into; lwIP passes
    // it to `reset_on_tcpip_thread` and returns only after that ran, so the
    // pointer is not used after this call.
    let err = unsafe { tcpip_api_call(reset_on_tcpip_thread, &raw mut call) };
    err == sys::ERR_OK && call.reset
}

/// `tcp_abort` on the PCB of `call.fd`'s netconn, if it has a connected
/// one. Runs on lwIP's tcpip thread (or under the core lock), where lwIP's
/// netconns and PCBs may be read and changed.
unsafe extern "C" fn reset_on_tcpip_thread(call: *mut ResetCall) -> ErrT {
    // SAFETY: `call` is the `ResetCall` that `reset` handed to
    // `tcpip_api_call` and that outlives this call; nothing else uses it
    // meanwhile (the calling thread waits).
    let call = unsafe { &mut *call };
    // SAFETY: returns null or a pointer into lwIP's static socket table.
    let sock = unsafe { lwip_socket_dbg_get_socket(call.fd) };
    if sock.is_null() {
        return sys::ERR_OK;
    }
    // SAFETY: `sock` points to a live table entry; `call.fd` is open (the
    // caller owns it), so its `conn` is the socket's live netconn, which
    // only `lwip_close` of that descriptor frees.
    let conn: *mut NetconnHead = unsafe { (*sock).conn };
    if conn.is_null() {
        return sys::ERR_OK;
    }
    // SAFETY: `conn` is live (above); its type, state and PCB are only
    // changed on this thread (or under the lock held now).
    let (ty, state, pcb) = unsafe { ((*conn).ty, (*conn).state, (*conn).pcb) };
    if ty & sys::NETCONNTYPE_GROUP_MASK != sys::NETCONN_TCP
        || state != sys::NETCONN_NONE
        || pcb.is_null()
    {
        return sys::ERR_OK;
    }
    // SAFETY: a TCP netconn in NETCONN_NONE with a PCB holds a live,
    // connected `struct tcp_pcb` (a listener is NETCONN_LISTEN; lwIP clears
    // `pcb` when it frees the PCB). `tcp_abort` may be called here; it runs
    // the netconn's error callback, which forgets the PCB.
    unsafe { tcp_abort(pcb) };
    call.reset = true;
    sys::ERR_OK
}

/// `lwip_getsockname`.
pub(crate) fn local_addr(fd: &Fd) -> Result<SockAddrBuf, Errno> {
    let mut addr = SockAddrBuf([0; sys::SOCKADDR_IN6_LEN]);
    let mut len = len_of::<SockAddrBuf>();
    // SAFETY: as for `accept`.
    check(unsafe { lwip_getsockname(fd.0, addr.0.as_mut_ptr().cast(), &mut len) })?;
    Ok(addr)
}

/// `lwip_select(nfds, r, w, e, timeout)`; `None` waits without limit.
/// Returns the number of ready descriptors (0: timed out).
pub(crate) fn select(
    nfds: c_int,
    read: &mut FdSet,
    write: &mut FdSet,
    except: &mut FdSet,
    timeout: Option<Duration>,
) -> Result<usize, Errno> {
    let mut tv = timeout.map(sys::timeval);
    let tv_ptr = match tv.as_mut() {
        Some(tv) => tv as *mut Timeval,
        None => core::ptr::null_mut(),
    };
    // SAFETY: the three sets are live, writable `fd_set`s of the layout the
    // C library (and so lwIP) uses, and `nfds` never exceeds their size
    // (checked by `FdSet::insert`); `tv_ptr` is null or points to a live
    // `struct timeval`.
    let n = check(unsafe { lwip_select(nfds, read, write, except, tv_ptr) })?;
    Ok(n as usize)
}

/// lwIP's clock, in milliseconds (wraps).
pub(crate) fn now_ms() -> u32 {
    // SAFETY: no arguments; reads a clock.
    unsafe { sys_now() }
}
