//! Sockets by number: the family, type and protocol as the kernel reports
//! them, integer options, and IP addresses written for a socket of a given
//! family. The broker makes host sockets like a service's and acts on them;
//! nix's typed API does not name every option it reads (SO_DOMAIN,
//! SO_PROTOCOL, SO_COOKIE, TCP_INFO) and wants a protocol from a fixed enum.

use crate::check;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// socket(2); `kind` may carry SOCK_CLOEXEC and SOCK_NONBLOCK.
pub fn socket(family: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket takes integers and returns a new fd or -1.
    let raw = check(unsafe { libc::socket(family, kind, protocol) } as libc::c_long)?;
    // SAFETY: a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

/// getsockopt(2) of a plain-data value `T` (an int, a u64, a byte array).
fn getsockopt<T: Copy>(fd: BorrowedFd<'_>, level: i32, opt: i32, mut v: T) -> io::Result<T> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v`, a plain-data value of that size.
    check(unsafe { libc::getsockopt(fd.as_raw_fd(), level, opt, (&mut v as *mut T).cast(), &mut len) } as libc::c_long)?;
    Ok(v)
}

/// The type (SOCK_STREAM, SOCK_SEQPACKET, ...) of the socket numbered `fd`,
/// which a caller may know by number only (an inherited one): ENOTSOCK
/// for another file, EBADF for a number not open.
pub fn socket_type(fd: std::os::fd::RawFd) -> io::Result<i32> {
    let (mut v, mut len) = (0i32, std::mem::size_of::<i32>() as libc::socklen_t);
    // SAFETY: the kernel writes at most `len` bytes into `v`, an int.
    check(unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut v as *mut i32).cast(), &mut len) } as libc::c_long)?;
    Ok(v)
}

pub fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, opt: i32) -> io::Result<i32> {
    getsockopt(fd, level, opt, 0i32)
}

pub fn setsockopt_int(fd: BorrowedFd<'_>, level: i32, opt: i32, v: i32) -> io::Result<()> {
    // SAFETY: the kernel reads one int at a valid pointer.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, (&v as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t) };
    check(rc as libc::c_long).map(drop)
}

/// The socket's cookie (SO_COOKIE): unique among all sockets until reboot.
pub fn cookie(fd: BorrowedFd<'_>) -> io::Result<u64> {
    getsockopt(fd, libc::SOL_SOCKET, libc::SO_COOKIE, 0u64)
}

/// Whether the TCP socket `fd` is listening (TCP_INFO's first byte, the state).
pub fn is_listening(fd: BorrowedFd<'_>) -> io::Result<bool> {
    const TCP_LISTEN: u8 = 10;
    Ok(getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, [0u8; 8])?[0] == TCP_LISTEN)
}

/// `a` as a sockaddr for a socket of `family`: an AF_INET6 socket reaches an
/// IPv4 address through its v4-mapped form.
pub fn sockaddr(a: SocketAddr, family: i32) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match (a, family) {
        (SocketAddr::V4(v4), libc::AF_INET) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        (a, _) => {
            let ip = match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = ip.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// `a` as the bytes of its sockaddr for a socket of `family` ([`sockaddr`]):
/// what a service passes to bind(2) or connect(2).
pub fn sockaddr_bytes(a: SocketAddr, family: i32) -> Vec<u8> {
    let (ss, len) = sockaddr(a, family);
    // SAFETY: reading `len` bytes, at most its size, of a plain-data struct
    // that lives through the copy.
    unsafe { std::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), len as usize) }.to_vec()
}

pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddr, family: i32) -> io::Result<()> {
    let (ss, len) = sockaddr(addr, family);
    // SAFETY: the kernel reads `len` bytes of a valid sockaddr.
    check(unsafe { libc::bind(fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) } as libc::c_long).map(drop)
}

/// connect(2), again after EINTR; on a non-blocking socket this may end in
/// EINPROGRESS.
pub fn connect(fd: BorrowedFd<'_>, addr: SocketAddr, family: i32) -> io::Result<()> {
    let (ss, len) = sockaddr(addr, family);
    loop {
        // SAFETY: the kernel reads `len` bytes of a valid sockaddr.
        match check(unsafe { libc::connect(fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) } as libc::c_long) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r.map(drop),
        }
    }
}

/// The port an IP socket is bound to (getsockname(2)); 0 while unbound.
pub fn local_port(fd: BorrowedFd<'_>) -> io::Result<u16> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `ss`, which is that large.
    check(unsafe { libc::getsockname(fd.as_raw_fd(), (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) } as libc::c_long)?;
    match ss.ss_family as i32 {
        // SAFETY: sockaddr_storage is large and aligned enough for any
        // sockaddr, and sockaddr_in6 keeps the port where sockaddr_in does.
        libc::AF_INET | libc::AF_INET6 => Ok(u16::from_be(unsafe { &*(&ss as *const _ as *const libc::sockaddr_in) }.sin_port)),
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes an fd and an integer.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) } as libc::c_long).map(drop)
}
