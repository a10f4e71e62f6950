//! The explicit protocol's server: requests a service makes through
//! capexec-client (or libcapexec_client.so) on the SOCK_SEQPACKET connection
//! it inherited. Wire format: capexec_client::wire and docs/broker-protocol.md.
//!
//! Every frame is checked before it is decoded: who sent it (SCM_CREDENTIALS,
//! which the kernel fills in, must name a process of this service), that it
//! carries no descriptors (any that came along are closed) and was not cut
//! (MSG_TRUNC, MSG_CTRUNC). A bad frame gets an error reply and the broker
//! goes on serving; replies never block it (a service that does not read its
//! replies loses them).

use crate::lookup;
use crate::open::{clean_absolute, open_granted};
use crate::policy::{self, NetOp, Refusal};
use crate::Broker;
use capexec_client::wire::{self, Family, Proto, Request, MAX_FRAME};
use capexec_sandbox::sys::socket as sock;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// Who may use the connection: processes in the service's pid namespace or,
/// when it shares the host's, descendants of its init.
pub struct Peers {
    init: i32,
    pidns: Option<std::path::PathBuf>,
    /// Senders already admitted, each with a pidfd that tells whether that very
    /// process still lives: checking /proc on every request costs more than the
    /// rest of the request, and a pid cannot be reused while its pidfd says alive.
    admitted: Vec<(i32, OwnedFd)>,
}

/// Admitted senders remembered at once (a service rarely has more requesting processes).
const ADMITTED_MAX: usize = 64;

impl Peers {
    /// `init`: the pid (in the broker's namespace) of the service's namespace init.
    pub fn of_service(init: i32) -> Peers {
        let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok();
        let own = std::fs::read_link("/proc/self/ns/pid").ok();
        Peers { init, pidns: ns.filter(|n| Some(n) != own.as_ref()), admitted: Vec::new() }
    }

    fn admits(&mut self, pid: i32) -> bool {
        if pid <= 0 {
            // 0: the sender is in a pid namespace the broker cannot see.
            return false;
        }
        if let Some(i) = self.admitted.iter().position(|(p, _)| *p == pid) {
            if alive(&self.admitted[i].1) {
                return true;
            }
            self.admitted.swap_remove(i);
        }
        if !self.belongs(pid) {
            return false;
        }
        // Checked again after the pidfd is taken: if the pid changed hands in
        // between, the pidfd names the new process, and that one is checked.
        if let Some(fd) = pidfd(pid).filter(|_| self.belongs(pid)) {
            if self.admitted.len() >= ADMITTED_MAX {
                self.admitted.remove(0);
            }
            self.admitted.push((pid, fd));
        }
        true
    }

    fn belongs(&self, pid: i32) -> bool {
        match &self.pidns {
            Some(ns) => std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|n| &n == ns),
            None => {
                let mut p = pid;
                for _ in 0..64 {
                    if p == self.init {
                        return true;
                    }
                    p = match capexec_sys::process::parent_of(p) {
                        Some(pp) if pp > 1 => pp,
                        _ => return false,
                    };
                }
                false
            }
        }
    }
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    capexec_sys::pidfd_open(pid, 0).ok()
}

/// A pidfd polls readable once its process has exited.
fn alive(fd: &OwnedFd) -> bool {
    !capexec_sandbox::sys::poll_one(fd.as_fd(), libc::POLLIN, 0).unwrap_or(true)
}

/// One received frame and what came with it.
struct Frame {
    data: Vec<u8>,
    pid: i32,
    fds: usize,
    truncated: bool,
    ctrunc: bool,
}

/// `spin`: busy-wait that long for the next request before sleeping (see
/// [`capexec_client::SPIN`]): a service that sends one request often sends the next soon.
fn recv_frame(fd: RawFd, spin: Option<std::time::Duration>) -> std::io::Result<Option<Frame>> {
    let mut data = vec![0u8; MAX_FRAME];
    let r = capexec_sys::recv_fds_spinning(fd, &mut data, 0, spin)?;
    // Closed here, whatever the frame turns out to be: no fd the service
    // sends ever stays in the broker.
    let fds = r.fds.len();
    drop(r.fds);
    if r.bytes == 0 && fds == 0 && !r.control_truncated {
        return Ok(None);
    }
    data.truncate(r.bytes);
    Ok(Some(Frame { data, pid: r.pid.unwrap_or(0), fds, truncated: r.truncated, ctrunc: r.control_truncated }))
}

/// Sends a reply without ever blocking the broker. A reply that cannot be
/// sent now (full buffer, closed peer) is dropped; the fd is closed by the caller.
fn send_reply(sock: RawFd, frame: &[u8], fd: Option<&OwnedFd>) {
    let fds: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let _ = capexec_sys::send_fds(sock, frame, &fds, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
}

/// Serves the connection until the service closes its end.
pub fn serve(b: &Broker, sock: OwnedFd, mut peers: Peers) {
    let spin = capexec_sys::more_than_one_cpu().then_some(capexec_client::SPIN);
    loop {
        let f = match recv_frame(sock.as_raw_fd(), spin) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                eprintln!("capexec: {}: broker: cannot receive requests: {e}; explicit requests now fail", b.unit);
                return;
            }
        };
        let (op, id) = match f.data.len() {
            n if n >= wire::REQUEST_HEADER => (f.data[1], u32::from_le_bytes([f.data[4], f.data[5], f.data[6], f.data[7]])),
            _ => (0, 0),
        };
        let bad = if f.fds > 0 || f.ctrunc {
            Some((libc::EPROTO, "it carried descriptors (requests never do; they were closed)"))
        } else if f.truncated {
            Some((libc::EMSGSIZE, "it is longer than the protocol's 4096 bytes"))
        } else if !peers.admits(f.pid) {
            Some((libc::EPERM, "it came from a process outside the service"))
        } else {
            None
        };
        if let Some((errno, why)) = bad {
            b.refused(&format!("a request (pid {}, {} bytes)", f.pid, f.data.len()), why, "send requests with capexec-client from the service itself");
            send_reply(sock.as_raw_fd(), &wire::encode_reply(op, id, errno, &[]), None);
            continue;
        }
        let (op, id, req) = Request::decode(&f.data);
        let (errno, body, fd) = match req {
            Ok(r) => match handle(b, f.pid, r) {
                Ok((body, fd)) => (0, body, fd),
                Err(e) => (e, Vec::new(), None),
            },
            Err(e) => (e, Vec::new(), None),
        };
        send_reply(sock.as_raw_fd(), &wire::encode_reply(op, id, errno, &body), fd.as_ref());
    }
}

type Reply = Result<(Vec<u8>, Option<OwnedFd>), i32>;

/// A name or path from a request, for a refusal line (which escapes it).
fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(256)]).into_owned()
}

fn handle(b: &Broker, pid: i32, r: Request) -> Reply {
    match r {
        Request::Open { path, flags, mode } => open(b, pid, &path, flags as i32, mode),
        Request::Connect { proto, addr } => net(b, proto, addr, false),
        Request::Bind { proto, addr } => net(b, proto, addr, true),
        Request::GetAddrInfo { name, family } => {
            let name = String::from_utf8(name).map_err(|_| libc::EINVAL)?;
            if !lookup::valid_host_name(&name) {
                return Err(libc::EINVAL);
            }
            let dns = &b.spec.dns;
            if dns.grant_for(&name).is_none() {
                b.refused(&format!("getaddrinfo(\"{name}\")"), "no [broker.dns] grant covers it", &capexec_decl::fix::dns_name(&name));
                return Err(libc::ENOENT);
            }
            let af = match (family, dns.inet, dns.inet6) {
                (Family::Any, true, true) => libc::AF_UNSPEC,
                (Family::Any, true, false) | (Family::Inet, true, _) => libc::AF_INET,
                (Family::Any, false, true) | (Family::Inet6, _, true) => libc::AF_INET6,
                _ => {
                    b.refused(
                        &format!("getaddrinfo(\"{name}\", {family:?})"),
                        "broker.dns.families does not grant that family",
                        "add it to broker.dns.families",
                    );
                    return Err(libc::EAFNOSUPPORT);
                }
            };
            let addrs = lookup::host_addrs(&name, af)?;
            Ok((wire::encode_addrs(&addrs), None))
        }
        Request::GetPwNam { name } => {
            let n = String::from_utf8_lossy(&name).into_owned();
            if !b.spec.pwd.contains(&n) {
                b.refused(&format!("getpwnam(\"{}\")", shown(&name)), "broker.pwd does not grant it", &format!("add \"{n}\" to broker.pwd"));
                return Err(libc::ENOENT);
            }
            Ok((lookup::passwd(&n)?.encode(), None))
        }
        Request::GetGrNam { name } => {
            let n = String::from_utf8_lossy(&name).into_owned();
            if !b.spec.grp.contains(&n) {
                b.refused(&format!("getgrnam(\"{}\")", shown(&name)), "broker.grp does not grant it", &format!("add \"{n}\" to broker.grp"));
                return Err(libc::ENOENT);
            }
            Ok((lookup::group(&n)?.encode(), None))
        }
        Request::Syslog { level, message } => {
            if !b.spec.syslog {
                b.refused("syslog", "broker.syslog is not set", "set broker.syslog = true");
                return Err(libc::EACCES);
            }
            let line = lookup::syslog_line(&b.unit, pid, level, &message);
            if lookup::syslog_send(&line).is_err() {
                // No syslog daemon here: the line still reaches the service's log.
                eprintln!("capexec: {}: syslog: {}", b.unit, line);
            }
            Ok((Vec::new(), None))
        }
        Request::Sysctl { key } => {
            let k = String::from_utf8_lossy(&key).into_owned();
            if !b.spec.sysctl.contains(&k) {
                b.refused(&format!("sysctl read \"{}\"", shown(&key)), "broker.sysctl does not grant it", &format!("add \"{k}\" to broker.sysctl"));
                return Err(libc::EACCES);
            }
            Ok((lookup::sysctl(&k)?, None))
        }
    }
}

/// Logs the refusal of `call` and answers with its errno.
fn refused(b: &Broker, call: &str, r: Refusal) -> Reply {
    b.refused(call, &r.why, &r.fix);
    Err(r.errno)
}

fn open(b: &Broker, pid: i32, path: &[u8], flags: i32, mode: u32) -> Reply {
    // Only a refusal needs the call written out.
    let call = || format!("open(\"{}\")", shown(path));
    let Some(clean) = clean_absolute(path) else { return refused(b, &call(), policy::not_clean()) };
    let (i, grant) = match policy::open(&b.spec, &clean, flags) {
        Ok(Some(g)) => g,
        Ok(None) => return refused(b, &call(), policy::no_fs_grant(&clean)),
        Err(r) => return refused(b, &call(), r),
    };
    let umask = if flags & libc::O_CREAT != 0 { crate::transparent::umask_of(pid as u32) } else { 0 };
    let mode = policy::create_mode(flags, mode, umask);
    let dir_slash = path.len() > 1 && path.ends_with(b"/");
    let opened = open_granted(&b.bases[i], grant, &clean, dir_slash, flags, mode);
    let opened = match policy::append_only(flags, grant.rights) {
        true => opened.and_then(|f| b.append_through_pipe(f, flags, &clean)),
        false => opened,
    };
    match opened {
        Ok(fd) => Ok((Vec::new(), Some(fd))),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            match policy::after_open(errno, grant) {
                Some(r) => refused(b, &call(), r),
                None => Err(errno),
            }
        }
    }
}

fn net(b: &Broker, proto: Proto, addr: SocketAddr, bind: bool) -> Reply {
    let addr = SocketAddr::new(capexec_decl::grants::canonical(addr.ip()), addr.port());
    let dproto = match proto {
        Proto::Tcp => capexec_decl::grants::Proto::Tcp,
        Proto::Udp => capexec_decl::grants::Proto::Udp,
    };
    let op = if bind { NetOp::Bind } else { NetOp::Connect };
    if let Err(r) = policy::net(&b.spec, op, dproto, addr) {
        return refused(b, &format!("{}({})", op.name(), capexec_decl::grants::NetGrant::exact(dproto, addr)), r);
    }
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let kind = if proto == Proto::Tcp { libc::SOCK_STREAM } else { libc::SOCK_DGRAM };
    let fd = sock::socket(family, kind | libc::SOCK_CLOEXEC, 0).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let r = if bind {
        if proto == Proto::Tcp {
            // What servers set before bind: a restart must not wait out TIME_WAIT.
            let _ = sock::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        }
        crate::net::bind(&fd, addr, family)
    } else {
        crate::net::connect(&fd, addr, family)
    };
    r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    if bind && proto == Proto::Tcp {
        // So that the service may listen on it.
        b.bound.insert(&fd);
    }
    Ok((Vec::new(), Some(fd)))
}
