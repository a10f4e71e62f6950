//! Network grants: a service in its own, empty network namespace (net = "none")
//! binds and connects in the host's. The broker makes a socket like the
//! service's (family, type, protocol, the options that matter) in the host's
//! namespace, binds or connects it with its own copy of the address, and puts
//! it in place of the service's socket (SECCOMP_IOCTL_NOTIF_ADDFD with SETFD).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Parses a sockaddr copied from the service. `Ok(None)`: not an IP family.
pub fn parse_sockaddr(b: &[u8]) -> Result<Option<SocketAddr>, i32> {
    if b.len() < 2 {
        return Err(libc::EINVAL);
    }
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    match family {
        libc::AF_INET => {
            if b.len() < std::mem::size_of::<libc::sockaddr_in>() {
                return Err(libc::EINVAL);
            }
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        libc::AF_INET6 => {
            if b.len() < std::mem::size_of::<libc::sockaddr_in6>() {
                return Err(libc::EINVAL);
            }
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[8..24]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)))
        }
        _ => Ok(None),
    }
}

fn sockaddr(a: SocketAddr, family: i32) -> (libc::sockaddr_storage, libc::socklen_t) {
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
            // An AF_INET6 socket reaches IPv4 through a v4-mapped address.
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

fn getsockopt_int(fd: RawFd, level: i32, opt: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v`.
    let rc = unsafe { libc::getsockopt(fd, level, opt, (&mut v as *mut i32).cast(), &mut len) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

fn setsockopt_int(fd: RawFd, level: i32, opt: i32, v: i32) -> io::Result<()> {
    // SAFETY: the kernel reads one int at a valid pointer.
    let rc = unsafe { libc::setsockopt(fd, level, opt, (&v as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The service's socket as far as the broker needs it.
#[derive(Debug, Clone, Copy)]
pub struct SockInfo {
    pub family: i32,
    pub kind: i32,
    pub protocol: i32,
    pub nonblocking: bool,
    /// The cookie of the network namespace the socket lives in
    /// (SO_NETNS_COOKIE, which needs no capability: SIOCGSKNS needs
    /// CAP_NET_ADMIN, which the confined broker no longer has).
    pub netns: u64,
}

pub fn sock_info(fd: &OwnedFd) -> io::Result<SockInfo> {
    let raw = fd.as_raw_fd();
    let family = getsockopt_int(raw, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let kind = getsockopt_int(raw, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let protocol = getsockopt_int(raw, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    // SAFETY: F_GETFL only reads the file's status flags.
    let fl = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    let netns = capexec_sandbox::sys::socket_netns_cookie(std::os::fd::AsFd::as_fd(fd))?;
    Ok(SockInfo { family, kind, protocol, nonblocking: fl >= 0 && fl & libc::O_NONBLOCK != 0, netns })
}

/// The options copied from the service's socket to the host one: those that
/// change how bind and connect behave. Buffer sizes are not (reading them
/// back gives the doubled value the kernel keeps).
const COPIED: &[(i32, i32)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_BROADCAST),
    (libc::IPPROTO_IP, libc::IP_FREEBIND),
];

/// A socket like `svc` (already checked to be AF_INET/AF_INET6, stream or
/// datagram), made in the broker's — the host's — network namespace.
/// `nonblocking`: made non-blocking even where the service's is not (for a
/// connect the broker must not wait for; see [`clear_nonblocking`]).
pub fn host_socket(svc: &OwnedFd, info: &SockInfo, nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_CLOEXEC | if info.nonblocking || nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket takes integers and returns a new fd or -1.
    let raw = unsafe { libc::socket(info.family, info.kind | flags, info.protocol) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that nobody else owns.
    let host = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut opts: Vec<(i32, i32)> = COPIED.to_vec();
    if info.family == libc::AF_INET6 {
        opts.push((libc::IPPROTO_IPV6, libc::IPV6_V6ONLY));
    }
    if info.kind == libc::SOCK_STREAM {
        opts.push((libc::IPPROTO_TCP, libc::TCP_NODELAY));
    }
    for (level, opt) in opts {
        // Every copied option is 0 on a new socket, but IPV6_V6ONLY, whose
        // default is each namespace's net.ipv6.bindv6only: set what differs.
        match getsockopt_int(svc.as_raw_fd(), level, opt) {
            Ok(0) if opt != libc::IPV6_V6ONLY => {}
            Ok(v) => setsockopt_int(host.as_raw_fd(), level, opt, v)?,
            Err(_) => {}
        }
    }
    Ok(host)
}

pub fn bind(fd: &OwnedFd, addr: SocketAddr, family: i32) -> io::Result<()> {
    let (ss, len) = sockaddr(addr, family);
    // SAFETY: the kernel reads `len` bytes of a valid sockaddr.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Connects; on a non-blocking socket this may return EINPROGRESS, which the
/// service then sees exactly as if it had called connect itself.
pub fn connect(fd: &OwnedFd, addr: SocketAddr, family: i32) -> io::Result<()> {
    let (ss, len) = sockaddr(addr, family);
    loop {
        // SAFETY: the kernel reads `len` bytes of a valid sockaddr.
        let rc = unsafe { libc::connect(fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Whether the TCP socket `fd` is listening (TCP_INFO's first byte).
pub fn is_listening(fd: &OwnedFd) -> io::Result<bool> {
    const TCP_LISTEN: u8 = 10;
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[0] == TCP_LISTEN)
}

/// The socket's cookie (SO_COOKIE): unique among all sockets until reboot.
pub fn cookie(fd: &OwnedFd) -> io::Result<u64> {
    let mut v: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v`.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_COOKIE, (&mut v as *mut u64).cast(), &mut len) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

pub fn listen(fd: &OwnedFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes an fd we own and an integer.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The host TCP sockets the broker bound for the service (on either
/// channel), by cookie. A bind to a port fixes it for good (a bind to port 0
/// only where a grant allows any port), so a listen on one of them opens
/// that port and no other; any other socket that is not listening may have
/// no port, or one that a failing connect is about to release, and a listen
/// would bind a random port on every address.
#[derive(Default)]
pub struct BoundSockets(std::sync::Mutex<(std::collections::HashSet<u64>, std::collections::VecDeque<u64>)>);

/// At most this many remembered (the oldest go first; cookies are never
/// reused, so forgetting one only refuses a listen on that socket).
const BOUND_MAX: usize = 65536;

impl BoundSockets {
    /// Remembers `fd`, which has just been bound.
    pub fn insert(&self, fd: &OwnedFd) {
        let Ok(c) = cookie(fd) else { return };
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *g;
        if set.insert(c) {
            order.push_back(c);
            if order.len() > BOUND_MAX {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }

    /// Whether the broker bound `fd` (the same socket, whichever fd names it).
    pub fn contains(&self, fd: &OwnedFd) -> bool {
        cookie(fd).is_ok_and(|c| self.0.lock().unwrap_or_else(|e| e.into_inner()).0.contains(&c))
    }
}

/// Waits at most `timeout_ms` (-1: without end) for the connect in progress
/// on `fd` to end: its result, or `None` while it is still in progress.
pub fn connect_result(fd: &OwnedFd, timeout_ms: i32) -> Option<io::Result<()>> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, timeout_ms) } {
            0 => return None,
            n if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
            n if n < 0 => return Some(Err(io::Error::last_os_error())),
            _ => break,
        }
    }
    Some(match getsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR) {
        Ok(0) => Ok(()),
        Ok(e) => Err(io::Error::from_raw_os_error(e)),
        Err(e) => Err(e),
    })
}

pub fn set_nonblocking(fd: &OwnedFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    let rc = unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK })
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes a socket [`host_socket`] created non-blocking blocking again: its
/// status flags are O_RDWR and O_NONBLOCK only, so one F_SETFL does it.
pub fn clear_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_SETFL on an fd we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the service's fd `fd` is close-on-exec, from /proc/TID/fdinfo
/// (close-on-exec when it cannot be read). One read: the `flags:` line is
/// the second, well within the buffer.
pub fn fd_cloexec(tid: u32, fd: i32) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 256];
    let Ok(n) = std::fs::File::open(format!("/proc/{tid}/fdinfo/{fd}")).and_then(|mut f| f.read(&mut buf)) else { return true };
    let s = String::from_utf8_lossy(&buf[..n]);
    s.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|v| i64::from_str_radix(v.trim(), 8).ok()).is_none_or(|f| f & libc::O_CLOEXEC as i64 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_sockets_are_known_by_cookie() {
        let tcp = || {
            // SAFETY: socket takes integers; the result is checked below.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            assert!(fd >= 0);
            // SAFETY: a new fd that nobody else owns.
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        let (a, b) = (tcp(), tcp());
        let bound = BoundSockets::default();
        bound.insert(&a);
        assert!(bound.contains(&a) && !bound.contains(&b));
        // Another fd of the same socket is the same socket.
        assert!(bound.contains(&a.try_clone().unwrap()));
        assert!(!is_listening(&a).unwrap());
        bind(&a, "127.0.0.1:0".parse().unwrap(), libc::AF_INET).unwrap();
        listen(&a, 1).unwrap();
        assert!(is_listening(&a).unwrap());
    }

    #[test]
    fn sockaddrs() {
        let (ss, len) = sockaddr("127.0.0.1:6379".parse().unwrap(), libc::AF_INET);
        // SAFETY: reading the bytes of a plain-data struct we own.
        let b = unsafe { std::slice::from_raw_parts(&ss as *const _ as *const u8, len as usize) };
        assert_eq!(parse_sockaddr(b), Ok(Some("127.0.0.1:6379".parse().unwrap())));
        let (ss, len) = sockaddr("127.0.0.1:1".parse().unwrap(), libc::AF_INET6);
        // SAFETY: as above.
        let b = unsafe { std::slice::from_raw_parts(&ss as *const _ as *const u8, len as usize) };
        assert_eq!(parse_sockaddr(b), Ok(Some("[::ffff:127.0.0.1]:1".parse().unwrap())));
        assert_eq!(parse_sockaddr(&[1]), Err(libc::EINVAL));
        assert_eq!(parse_sockaddr(&(libc::AF_INET as u16).to_ne_bytes()), Err(libc::EINVAL));
        assert_eq!(parse_sockaddr(&(libc::AF_UNIX as u16).to_ne_bytes()), Ok(None));
    }
}
