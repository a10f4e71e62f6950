//! Network grants: a service in its own, empty network namespace (net = "none")
//! binds and connects in the host's. The broker makes a socket like the
//! service's (family, type, protocol, the options that matter) in the host's
//! namespace, binds or connects it with its own copy of the address, and puts
//! it in place of the service's socket (SECCOMP_IOCTL_NOTIF_ADDFD with SETFD).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

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

/// The path of a Unix socket address as a bind names it (sun_path up to its
/// first NUL); `None` for another family, an abstract or an unnamed one.
pub fn unix_path(b: &[u8]) -> Option<&[u8]> {
    let family = i32::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
    let path = b.get(2..).filter(|_| family == libc::AF_UNIX)?;
    let path = &path[..path.iter().position(|c| *c == 0).unwrap_or(path.len())];
    (path.first() == Some(&b'/')).then_some(path)
}

use capexec_sandbox::sys::socket as sock;
use std::os::fd::AsFd;

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
    let fd = fd.as_fd();
    let family = sock::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let kind = sock::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let protocol = sock::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    let nonblocking = capexec_sandbox::sys::status_flags(fd).is_ok_and(|fl| fl & libc::O_NONBLOCK != 0);
    let netns = capexec_sandbox::sys::socket_netns_cookie(fd)?;
    Ok(SockInfo { family, kind, protocol, nonblocking, netns })
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
    let host = sock::socket(info.family, info.kind | flags, info.protocol)?;
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
        match sock::getsockopt_int(svc.as_fd(), level, opt) {
            Ok(0) if opt != libc::IPV6_V6ONLY => {}
            Ok(v) => sock::setsockopt_int(host.as_fd(), level, opt, v)?,
            Err(_) => {}
        }
    }
    Ok(host)
}

pub fn bind(fd: &OwnedFd, addr: SocketAddr, family: i32) -> io::Result<()> {
    sock::bind(fd.as_fd(), addr, family)
}

/// Connects; on a non-blocking socket this may return EINPROGRESS, which the
/// service then sees exactly as if it had called connect itself.
pub fn connect(fd: &OwnedFd, addr: SocketAddr, family: i32) -> io::Result<()> {
    sock::connect(fd.as_fd(), addr, family)
}

pub fn is_listening(fd: &OwnedFd) -> io::Result<bool> {
    sock::is_listening(fd.as_fd())
}

pub fn cookie(fd: &OwnedFd) -> io::Result<u64> {
    sock::cookie(fd.as_fd())
}

pub fn listen(fd: &OwnedFd, backlog: i32) -> io::Result<()> {
    sock::listen(fd.as_fd(), backlog)
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
    match capexec_sandbox::sys::poll_one(fd.as_fd(), libc::POLLOUT, timeout_ms) {
        Ok(false) => return None,
        Err(e) => return Some(Err(e)),
        Ok(true) => {}
    }
    Some(match sock::getsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR) {
        Ok(0) => Ok(()),
        Ok(e) => Err(io::Error::from_raw_os_error(e)),
        Err(e) => Err(e),
    })
}

pub fn set_nonblocking(fd: &OwnedFd, on: bool) -> io::Result<()> {
    let fl = capexec_sandbox::sys::status_flags(fd.as_fd())?;
    capexec_sandbox::sys::set_status_flags(fd.as_fd(), if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK })
}

/// Makes a socket [`host_socket`] created non-blocking blocking again: its
/// status flags are O_RDWR and O_NONBLOCK only, so one F_SETFL does it.
pub fn clear_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    capexec_sandbox::sys::set_status_flags(fd.as_fd(), 0)
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
        let tcp = || sock::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).unwrap();
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
        let b = sock::sockaddr_bytes("127.0.0.1:6379".parse().unwrap(), libc::AF_INET);
        assert_eq!(parse_sockaddr(&b), Ok(Some("127.0.0.1:6379".parse().unwrap())));
        let b = sock::sockaddr_bytes("127.0.0.1:1".parse().unwrap(), libc::AF_INET6);
        assert_eq!(parse_sockaddr(&b), Ok(Some("[::ffff:127.0.0.1]:1".parse().unwrap())));
        assert_eq!(parse_sockaddr(&[1]), Err(libc::EINVAL));
        assert_eq!(parse_sockaddr(&(libc::AF_INET as u16).to_ne_bytes()), Err(libc::EINVAL));
        assert_eq!(parse_sockaddr(&(libc::AF_UNIX as u16).to_ne_bytes()), Ok(None));
    }
}
