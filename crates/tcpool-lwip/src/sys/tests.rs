//! The per-target constants and layouts against the lwIP build they are
//! used with (the host build of `tcpool-lwip-host`, compiled with the same
//! headers and options as lwIP's `sockets.c`).

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::format;
use std::vec::Vec;

use super::*;

fn c_value(name: &str) -> i64 {
    tcpool_lwip_host::abi_value(name)
        .unwrap_or_else(|| panic!("the lwIP host build does not report {name}"))
}

#[test]
fn abi_matches_the_host_lwip_build() {
    let ours: &[(&str, i64)] = &[
        ("EAGAIN", EAGAIN.into()),
        ("EWOULDBLOCK", EWOULDBLOCK.into()),
        ("EINPROGRESS", EINPROGRESS.into()),
        ("EALREADY", EALREADY.into()),
        ("EISCONN", EISCONN.into()),
        ("ENOTCONN", ENOTCONN.into()),
        ("ECONNRESET", ECONNRESET.into()),
        ("ECONNABORTED", ECONNABORTED.into()),
        ("EPIPE", EPIPE.into()),
        ("ENFILE", ENFILE.into()),
        ("EMFILE", EMFILE.into()),
        ("ENOMEM", ENOMEM.into()),
        ("ENOBUFS", ENOBUFS.into()),
        ("EINVAL", EINVAL.into()),
        ("EBADF", EBADF.into()),
        ("EADDRINUSE", EADDRINUSE.into()),
        ("ENOPROTOOPT", ENOPROTOOPT.into()),
        ("EIO", EIO.into()),
        ("EHOSTUNREACH", EHOSTUNREACH.into()),
        ("EOPNOTSUPP", EOPNOTSUPP.into()),
        ("ENOSYS", ENOSYS.into()),
        ("F_GETFL", F_GETFL.into()),
        ("F_SETFL", F_SETFL.into()),
        ("O_NONBLOCK", O_NONBLOCK.into()),
        ("POLLIN", POLLIN.into()),
        ("POLLOUT", POLLOUT.into()),
        ("AF_INET", AF_INET.into()),
        ("AF_INET6", AF_INET6.into()),
        ("SOCK_STREAM", SOCK_STREAM.into()),
        ("IPPROTO_TCP", IPPROTO_TCP.into()),
        ("SOL_SOCKET", SOL_SOCKET.into()),
        ("SO_REUSEADDR", SO_REUSEADDR.into()),
        ("SO_KEEPALIVE", SO_KEEPALIVE.into()),
        ("SO_LINGER", SO_LINGER.into()),
        ("SO_ERROR", SO_ERROR.into()),
        ("TCP_NODELAY", TCP_NODELAY.into()),
        ("TCP_KEEPIDLE", TCP_KEEPIDLE.into()),
        ("TCP_KEEPINTVL", TCP_KEEPINTVL.into()),
        ("TCP_KEEPCNT", TCP_KEEPCNT.into()),
        ("SHUT_WR", SHUT_WR.into()),
        ("FD_SETSIZE", FD_SETSIZE as i64),
    ];
    let mismatches: Vec<_> = ours
        .iter()
        .filter(|(name, value)| c_value(name) != *value)
        .map(|(name, value)| format!("{name}: ours {value}, lwIP {}", c_value(name)))
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn layouts_match_the_host_lwip_build() {
    assert_eq!(
        c_value("sizeof(struct sockaddr_in)"),
        SOCKADDR_IN_LEN as i64
    );
    assert_eq!(
        c_value("sizeof(struct sockaddr_in6)"),
        SOCKADDR_IN6_LEN as i64
    );
    assert_eq!(
        c_value("sizeof(struct sockaddr_storage)"),
        core::mem::size_of::<SockAddrBuf>() as i64
    );
    assert_eq!(c_value("sizeof(sa_family_t)"), 1);
    assert_eq!(
        c_value("offsetof(struct sockaddr_in,sin_len)"),
        SA_LEN_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in,sin_family)"),
        SA_FAMILY_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in,sin_port)"),
        SA_PORT_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in,sin_addr)"),
        SIN_ADDR_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in6,sin6_family)"),
        SA_FAMILY_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in6,sin6_port)"),
        SA_PORT_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in6,sin6_flowinfo)"),
        SIN6_FLOWINFO_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in6,sin6_addr)"),
        SIN6_ADDR_OFFSET as i64
    );
    assert_eq!(
        c_value("offsetof(struct sockaddr_in6,sin6_scope_id)"),
        SIN6_SCOPE_ID_OFFSET as i64
    );
    assert_eq!(
        c_value("sizeof(socklen_t)"),
        core::mem::size_of::<SockLen>() as i64
    );
    assert_eq!(
        c_value("sizeof(struct linger)"),
        core::mem::size_of::<Linger>() as i64
    );
    assert_eq!(
        c_value("sizeof(struct timeval)"),
        core::mem::size_of::<Timeval>() as i64
    );
    assert_eq!(
        c_value("offsetof(struct timeval,tv_usec)"),
        core::mem::offset_of!(Timeval, tv_usec) as i64
    );
    assert_eq!(
        c_value("sizeof(fd_set)"),
        core::mem::size_of::<FdSet>() as i64
    );
}

#[test]
fn lwip_internals_used_by_abort_match_the_host_lwip_build() {
    use core::mem::{align_of, offset_of, size_of};
    assert_eq!(c_value("offsetof(struct lwip_sock,conn)"), 0);
    assert_eq!(
        c_value("offsetof(struct netconn,type)"),
        offset_of!(NetconnHead, ty) as i64
    );
    assert_eq!(
        c_value("offsetof(struct netconn,state)"),
        offset_of!(NetconnHead, state) as i64
    );
    assert_eq!(
        c_value("offsetof(struct netconn,pcb)"),
        offset_of!(NetconnHead, pcb) as i64
    );
    assert_eq!(c_value("sizeof(enum netconn_type)"), 4);
    assert_eq!(c_value("sizeof(enum netconn_state)"), 4);
    assert_eq!(c_value("NETCONN_TCP"), i64::from(NETCONN_TCP));
    assert_eq!(c_value("NETCONN_NONE"), i64::from(NETCONN_NONE));
    assert_eq!(
        c_value("NETCONNTYPE_GROUP(0xff)"),
        i64::from(NETCONNTYPE_GROUP_MASK)
    );
    assert_eq!(c_value("sizeof(err_t)"), size_of::<ErrT>() as i64);
    assert_eq!(c_value("ERR_OK"), i64::from(ERR_OK));
    assert!(c_value("sizeof(struct tcpip_api_call_data)") <= size_of::<ApiCallData>() as i64);
    assert!(align_of::<ApiCallData>() >= align_of::<usize>());
}

#[test]
fn fd_set_bits_match_fd_set_in_c() {
    let first = c_value("LWIP_SOCKET_OFFSET") as i32;
    let last = first + c_value("MEMP_NUM_NETCONN") as i32 - 1;
    for fd in [0, first, first + 3, last] {
        let mut set = FdSet::new();
        assert!(set.insert(fd));
        assert!(set.contains(fd));
        assert_eq!(set.bytes(), tcpool_lwip_host::fd_set_image(fd), "fd {fd}");
    }
}

#[test]
fn fd_set_refuses_descriptors_it_cannot_hold() {
    let mut set = FdSet::new();
    assert!(!set.insert(-1));
    assert!(!set.insert(FD_SETSIZE as i32));
}

#[test]
fn sockaddr_in_is_lwips_native_layout() {
    let (buf, len) = to_sockaddr(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1), 0x1234)));
    assert_eq!(len, 16);
    assert_eq!(&buf.0[..8], &[16, AF_INET as u8, 0x12, 0x34, 127, 0, 0, 1]);
    assert_eq!(&buf.0[8..16], &[0; 8]);
}

#[test]
fn sockaddrs_round_trip() {
    let v4 = SocketAddr::from((Ipv4Addr::new(192, 168, 4, 1), 8080));
    let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 443, 7, 3));
    for addr in [v4, v6] {
        let (buf, _) = to_sockaddr(addr);
        assert_eq!(from_sockaddr(&buf), Some(addr));
    }
}

#[test]
fn unknown_family_is_not_an_address() {
    let buf = SockAddrBuf([0; SOCKADDR_IN6_LEN]);
    assert_eq!(from_sockaddr(&buf), None);
}

#[test]
fn fd_set_lists_removes_and_intersects() {
    let last = FD_SETSIZE as i32 - 1;
    let mut fds = std::vec![0, 3, 31, 32, 54, 63, last];
    fds.dedup();
    let mut a = FdSet::new();
    assert!(a.is_empty());
    for &fd in &fds {
        assert!(a.insert(fd));
    }
    assert_eq!(a.iter().collect::<Vec<_>>(), fds);
    a.remove(54);
    assert!(!a.contains(54) && a.contains(63));
    let mut b = FdSet::new();
    b.insert(63);
    b.insert(7);
    assert_eq!(a.intersection(&b).iter().collect::<Vec<_>>(), [63]);
    assert!(FdSet::new().intersection(&a).is_empty());
}
