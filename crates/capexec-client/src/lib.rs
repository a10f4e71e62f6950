//! Ask capexec's broker for more than the sandbox started with, in the manner
//! of libcasper's `cap_*` functions: open a granted file, connect or bind a
//! granted address, resolve a granted name, look up a granted user or group,
//! log to the host's syslog, read a granted sysctl.
//!
//! A service started by capexec with `[broker]` grants inherits one end of a
//! SOCK_SEQPACKET connection to its broker; `CAPEXEC_BROKER_FD` names it.
//! Every call sends one request frame and waits for its reply (see
//! [`wire`] and docs/broker-protocol.md). Calls from several threads are
//! serialised on the one connection.
//!
//! ```no_run
//! let b = capexec_client::Broker::from_env()?;
//! let f = b.open("/srv/data/report.csv", libc::O_RDONLY, 0)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The C interface over it is in `include/capexec.h` (`libcapexec_client.so`).

// `unsafe` only in `ffi` (raw pointers from C callers); system calls are capexec-sys's.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod ffi;
pub mod wire;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
pub use wire::{Family, Group, Passwd, Proto};
use wire::{Request, MAX_FRAME};

/// A connection to the service's broker.
pub struct Broker {
    fd: RawFd,
    /// Owned when opened by the caller; the inherited fd is left open on drop.
    _owned: Option<OwnedFd>,
    /// Serialises request/reply pairs, and counts request ids.
    next_id: Mutex<u32>,
    /// How long a call busy-waits for its reply before sleeping ([`SPIN`]).
    spin: Option<std::time::Duration>,
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

impl Broker {
    /// The connection named by `CAPEXEC_BROKER_FD`. ENOENT when the variable is
    /// not set (the service was not started with broker grants).
    pub fn from_env() -> io::Result<Broker> {
        let v = std::env::var(wire::ENV_FD)
            .map_err(|_| io::Error::new(io::ErrorKind::NotFound, format!("{} is not set: the service has no broker", wire::ENV_FD)))?;
        let fd: RawFd = v.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{}={v} is not a descriptor number", wire::ENV_FD)))?;
        Broker::from_raw_fd(fd)
    }

    /// A connection over `fd`, which stays open when the Broker is dropped.
    pub fn from_raw_fd(fd: RawFd) -> io::Result<Broker> {
        if capexec_sys::socket::socket_type(fd)? != libc::SOCK_SEQPACKET {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd} is not a SOCK_SEQPACKET socket")));
        }
        Ok(Broker { fd, _owned: None, next_id: Mutex::new(1), spin: spinning_helps().then_some(SPIN) })
    }

    /// A connection that owns `fd` (closed on drop).
    pub fn from_owned(fd: OwnedFd) -> io::Result<Broker> {
        let mut b = Broker::from_raw_fd(fd.as_raw_fd())?;
        b._owned = Some(fd);
        Ok(b)
    }

    /// Sends `req` and waits for its reply: `(body, fd)`.
    fn call(&self, req: &Request) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
        let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        let id = *next;
        *next = next.wrapping_add(1);
        let frame = req.encode(id).map_err(errno)?;
        send(self.fd, &frame)?;
        loop {
            let (buf, fd) = recv_spinning(self.fd, self.spin)?;
            let (op, rid, err, body) = wire::decode_reply(&buf).map_err(errno)?;
            // A reply to an earlier request whose caller gave up (EINTR) is skipped.
            if rid != id {
                continue;
            }
            if op != req.op() as u8 {
                return Err(errno(libc::EPROTO));
            }
            if err != 0 {
                return Err(errno(err));
            }
            if req.op().returns_fd() && fd.is_none() {
                return Err(errno(libc::EPROTO));
            }
            return Ok((body.to_vec(), fd));
        }
    }

    fn call_fd(&self, req: &Request) -> io::Result<OwnedFd> {
        self.call(req)?.1.ok_or_else(|| errno(libc::EPROTO))
    }

    /// Opens a file a `[[broker.fs]]` grant covers (absolute path; `flags` as
    /// open(2): O_RDONLY, O_WRONLY|O_APPEND|O_CREAT, ...). The descriptor is
    /// close-on-exec.
    pub fn open(&self, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        self.call_fd(&Request::Open { path: path.as_bytes().to_vec(), flags: flags as u32, mode })
    }

    /// A socket connected to `addr` (a `broker.net.connect` grant), made in the
    /// host's network namespace.
    pub fn connect(&self, proto: Proto, addr: SocketAddr) -> io::Result<OwnedFd> {
        self.call_fd(&Request::Connect { proto, addr })
    }

    /// A socket bound to `addr` (a `broker.net.bind` grant) in the host's
    /// network namespace; call listen(2) on it for TCP.
    pub fn bind(&self, proto: Proto, addr: SocketAddr) -> io::Result<OwnedFd> {
        self.call_fd(&Request::Bind { proto, addr })
    }

    /// The addresses of a name a `broker.dns` grant covers.
    pub fn getaddrinfo(&self, name: &str, family: Family) -> io::Result<Vec<IpAddr>> {
        let (body, _) = self.call(&Request::GetAddrInfo { name: name.as_bytes().to_vec(), family })?;
        wire::decode_addrs(&body).map_err(errno)
    }

    /// A user `broker.pwd` grants.
    pub fn getpwnam(&self, name: &str) -> io::Result<Passwd> {
        let (body, _) = self.call(&Request::GetPwNam { name: name.as_bytes().to_vec() })?;
        Passwd::decode(&body).map_err(errno)
    }

    /// A group `broker.grp` grants.
    pub fn getgrnam(&self, name: &str) -> io::Result<Group> {
        let (body, _) = self.call(&Request::GetGrNam { name: name.as_bytes().to_vec() })?;
        Group::decode(&body).map_err(errno)
    }

    /// Logs `message` at `level` (0 emerg .. 7 debug) to the host's syslog,
    /// tagged with the unit's name (`broker.syslog = true`).
    pub fn syslog(&self, level: u8, message: &str) -> io::Result<()> {
        self.call(&Request::Syslog { level, message: message.as_bytes().to_vec() }).map(drop)
    }

    /// The value of a sysctl key `broker.sysctl` grants (as in /proc/sys,
    /// usually ending with a newline).
    pub fn sysctl(&self, key: &str) -> io::Result<Vec<u8>> {
        self.call(&Request::Sysctl { key: key.as_bytes().to_vec() }).map(|(b, _)| b)
    }
}

/// Sends one frame (no descriptors).
pub fn send(fd: RawFd, frame: &[u8]) -> io::Result<()> {
    loop {
        // MSG_NOSIGNAL: a broker that is gone is an EPIPE error, not a
        // SIGPIPE that kills the caller.
        match capexec_sys::send_fds(fd, frame, &[], libc::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How long one side of the connection busy-waits for the other's next frame
/// before it sleeps. A sleeping thread is woken on the CPU it slept on; when
/// that CPU has gone idle, the wakeup is an inter-processor interrupt, which in
/// a VM costs tens to hundreds of µs (docs/performance.md measured ~100 µs per
/// request without this, ~10 µs with it). An open answered by the broker takes
/// a few µs, so a short spin catches almost every reply; a slow request (a DNS
/// lookup) costs at most this much CPU before the caller sleeps as before.
pub const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Whether busy-waiting can pay off for the calling thread: only if another
/// CPU is allowed to run the peer meanwhile. On one CPU a spinner would only
/// delay the peer it waits for.
pub fn spinning_helps() -> bool {
    capexec_sys::more_than_one_cpu()
}

/// Receives one reply frame and at most one descriptor (close-on-exec). EOF
/// (the broker is gone) is ECONNRESET.
pub fn recv(fd: RawFd) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    recv_spinning(fd, None)
}

fn recv_spinning(fd: RawFd, spin: Option<std::time::Duration>) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_FRAME];
    let r = capexec_sys::recv_fds_spinning(fd, &mut buf, 0, spin)?;
    if r.bytes == 0 {
        return Err(errno(libc::ECONNRESET));
    }
    if r.truncated || r.fds.len() > 1 {
        return Err(errno(libc::EPROTO));
    }
    buf.truncate(r.bytes);
    Ok((buf, r.fds.into_iter().next()))
}
