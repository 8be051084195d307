//! Constants and C layouts, one file per target.
//!
//! lwIP's own socket headers (`lwip/sockets.h`) define the socket-level
//! constants and `sockaddr` layouts the same way everywhere ([`lwip`]). What
//! differs per target is what lwIP takes from the C library it is built
//! against: errno values, `fcntl` and `poll` flags, `fd_set` and
//! `struct timeval`:
//!
//! - ESP-IDF ([`newlib`]): lwIP's `lwipopts.h` includes newlib's
//!   `sys/fcntl.h`, `sys/select.h` and `sys/poll.h` before lwIP's headers, so
//!   newlib's values win. Bare-metal targets (`target_os = "none"`) take the
//!   same, assuming an lwIP built against newlib the same way.
//! - the host ([`host`]): the unix port's `arch/cc.h` includes the host's
//!   `<errno.h>` (`LWIP_ERRNO_STDINCLUDE`) and `<sys/time.h>` (which brings
//!   the host `fd_set`), but nothing defines `O_NONBLOCK` or `POLLIN` before
//!   `lwip/sockets.h` does, so those are lwIP's defaults.
//!
//! The host values are checked against the compiled lwIP by the
//! `abi_matches_the_host_lwip_build` test, the ESP-IDF ones at compile time
//! against the `libc` crate's `espidf` definitions.

pub(crate) mod lwip;

#[cfg(any(target_os = "espidf", target_os = "none"))]
mod newlib;
#[cfg(any(target_os = "espidf", target_os = "none"))]
pub(crate) use newlib::*;

#[cfg(not(any(target_os = "espidf", target_os = "none")))]
mod host;
#[cfg(not(any(target_os = "espidf", target_os = "none")))]
pub(crate) use host::*;

pub(crate) use lwip::*;

#[cfg(test)]
mod tests;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A C `fd_set` of the layout lwIP was built with: bit `fd % BITS` of word
/// `fd / BITS` (glibc and newlib agree on this; only the word size and
/// `FD_SETSIZE` differ).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdSet {
    words: [FdWord; FD_SETSIZE / FdWord::BITS as usize],
}

impl FdSet {
    /// The empty set (`FD_ZERO`).
    pub(crate) const fn new() -> FdSet {
        FdSet {
            words: [0; FD_SETSIZE / FdWord::BITS as usize],
        }
    }

    fn position(fd: core::ffi::c_int) -> Option<(usize, FdWord)> {
        let fd = usize::try_from(fd).ok().filter(|&fd| fd < FD_SETSIZE)?;
        let bits = FdWord::BITS as usize;
        Some((fd / bits, 1 << (fd % bits)))
    }

    /// `FD_SET`; false if `fd` does not fit in an `fd_set`.
    pub(crate) fn insert(&mut self, fd: core::ffi::c_int) -> bool {
        match Self::position(fd) {
            Some((word, bit)) => {
                self.words[word] |= bit;
                true
            }
            None => false,
        }
    }

    /// `FD_ISSET`.
    #[cfg(test)]
    pub(crate) fn contains(&self, fd: core::ffi::c_int) -> bool {
        Self::position(fd).is_some_and(|(word, bit)| self.words[word] & bit != 0)
    }

    /// `FD_CLR`.
    pub(crate) fn remove(&mut self, fd: core::ffi::c_int) {
        if let Some((word, bit)) = Self::position(fd) {
            self.words[word] &= !bit;
        }
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The descriptors in both sets.
    pub(crate) fn intersection(&self, other: &FdSet) -> FdSet {
        let mut both = *self;
        for (a, b) in both.words.iter_mut().zip(other.words.iter()) {
            *a &= *b;
        }
        both
    }

    /// The descriptors in the set, in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = core::ffi::c_int> + '_ {
        let bits = FdWord::BITS as usize;
        self.words.iter().enumerate().flat_map(move |(i, &word)| {
            let mut rest = word;
            core::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                core::ffi::c_int::try_from(i * bits + bit).ok()
            })
        })
    }

    /// How many descriptors are in both sets.
    pub(crate) fn count_common(&self, other: &FdSet) -> usize {
        self.words
            .iter()
            .zip(other.words.iter())
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
    }

    /// Adds every descriptor of `other`.
    pub(crate) fn union_with(&mut self, other: &FdSet) {
        for (a, b) in self.words.iter_mut().zip(other.words.iter()) {
            *a |= *b;
        }
    }

    /// The bytes of the set as C sees them (for the ABI test).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> std::vec::Vec<u8> {
        self.words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }
}

/// The address family for an IP address.
pub(crate) fn family(ip: IpAddr) -> core::ffi::c_int {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// Encodes `addr` as lwIP's native `sockaddr_in` / `sockaddr_in6`; returns
/// the buffer and the length to pass with it.
pub(crate) fn to_sockaddr(addr: SocketAddr) -> (SockAddrBuf, SockLen) {
    let mut buf = SockAddrBuf([0; SOCKADDR_IN6_LEN]);
    let b = &mut buf.0;
    b[SA_PORT_OFFSET..SA_PORT_OFFSET + 2].copy_from_slice(&addr.port().to_be_bytes());
    let len = match addr {
        SocketAddr::V4(a) => {
            b[SA_FAMILY_OFFSET] = AF_INET as u8;
            b[SIN_ADDR_OFFSET..SIN_ADDR_OFFSET + 4].copy_from_slice(&a.ip().octets());
            SOCKADDR_IN_LEN
        }
        SocketAddr::V6(a) => {
            b[SA_FAMILY_OFFSET] = AF_INET6 as u8;
            b[SIN6_FLOWINFO_OFFSET..SIN6_FLOWINFO_OFFSET + 4]
                .copy_from_slice(&a.flowinfo().to_be_bytes());
            b[SIN6_ADDR_OFFSET..SIN6_ADDR_OFFSET + 16].copy_from_slice(&a.ip().octets());
            b[SIN6_SCOPE_ID_OFFSET..SIN6_SCOPE_ID_OFFSET + 4]
                .copy_from_slice(&a.scope_id().to_ne_bytes());
            SOCKADDR_IN6_LEN
        }
    };
    b[SA_LEN_OFFSET] = len as u8;
    (buf, len as SockLen)
}

/// Decodes a `sockaddr_in` / `sockaddr_in6` written by lwIP; `None` for any
/// other family.
pub(crate) fn from_sockaddr(buf: &SockAddrBuf) -> Option<SocketAddr> {
    let b = &buf.0;
    let port = u16::from_be_bytes([b[SA_PORT_OFFSET], b[SA_PORT_OFFSET + 1]]);
    let word = |at: usize| [b[at], b[at + 1], b[at + 2], b[at + 3]];
    match core::ffi::c_int::from(b[SA_FAMILY_OFFSET]) {
        AF_INET => {
            let ip = Ipv4Addr::from(word(SIN_ADDR_OFFSET));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[SIN6_ADDR_OFFSET..SIN6_ADDR_OFFSET + 16]);
            let flowinfo = u32::from_be_bytes(word(SIN6_FLOWINFO_OFFSET));
            let scope_id = u32::from_ne_bytes(word(SIN6_SCOPE_ID_OFFSET));
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip, port, flowinfo, scope_id,
            )))
        }
        _ => None,
    }
}
