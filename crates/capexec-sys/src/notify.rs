//! A seccomp user-notification listener and the notifying process's memory
//! and fds, for the broker (which answers) and for `capexec learn` (which
//! records). Every read of the other process's memory returns a private copy; callers
//! check [`Listener::id_valid`] after reading and before acting, so that a
//! notification whose thread died (and whose pid may already be reused) is
//! never answered with data from, or effects on, another process.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// One brokered syscall, copied out of the kernel's `seccomp_notif`.
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    /// The calling thread, as the broker's pid namespace sees it.
    pub tid: u32,
    pub nr: i64,
    pub args: [u64; 6],
}

impl Notif {
    /// The process (thread group) of the calling thread, by /proc (the
    /// thread itself if it is gone): what a summary of the calls names.
    pub fn process(&self) -> i32 {
        std::fs::read_to_string(format!("/proc/{}/status", self.tid))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(self.tid as i32)
    }

    /// The calling thread's command name, as the kernel keeps it (empty if gone).
    pub fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.tid)).map(|c| c.trim_end().to_owned()).unwrap_or_default()
    }

    /// What a network call does, as a summary of them words it: "socket",
    /// "bind", "connect", or "send" (sendto, sendmsg and sendmmsg: a
    /// datagram to an address is judged as a connect is). `None` for others.
    pub fn net_op(&self) -> Option<&'static str> {
        Some(match self.nr {
            libc::SYS_socket => "socket",
            libc::SYS_bind => "bind",
            libc::SYS_connect => "connect",
            libc::SYS_sendto | libc::SYS_sendmsg | libc::SYS_sendmmsg => "send",
            _ => return None,
        })
    }

    /// Up to `min(len, max)` bytes of the caller's memory at `ptr`, as many
    /// as could be read.
    fn read_bytes(&self, ptr: u64, len: u64, max: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(max)];
        let got = read_mem(self.tid, ptr, &mut buf).ok()?;
        buf.truncate(got);
        Some(buf)
    }

    /// The caller's 64-bit word at `at` (a pointer or length in its structs).
    fn read_u64(&self, at: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        (read_mem(self.tid, at, &mut b).ok()? == 8).then(|| u64::from_ne_bytes(b))
    }

    /// The socket addresses a network call names, each a `struct sockaddr` as
    /// the caller wrote it (at most 128 bytes, as long as it said): bind's and
    /// connect's, sendto's when it has one, and every message's of sendmsg
    /// and sendmmsg (up to the kernel's UIO_MAXIOV, so that no address hides
    /// behind others). Read from memory the caller may change meanwhile: a
    /// record of what it asked, not a basis for a decision.
    pub fn addresses(&self) -> Vec<Vec<u8>> {
        let a = self.args;
        let read = |ptr: u64, len: u64| self.read_bytes(ptr, len & 0xffff_ffff, 128);
        let read_u64 = |at: u64| self.read_u64(at);
        match self.nr {
            libc::SYS_bind | libc::SYS_connect => read(a[1], a[2]).into_iter().collect(),
            libc::SYS_sendto if a[4] != 0 => read(a[4], a[5]).into_iter().collect(),
            libc::SYS_sendmsg | libc::SYS_sendmmsg => {
                // struct msghdr: msg_name at 0, msg_namelen at 8; struct
                // mmsghdr is 64 bytes (a msghdr and the length sent).
                // (vlen is an unsigned int: the register's low half.)
                let count = if self.nr == libc::SYS_sendmsg { 1 } else { (a[2] & 0xffff_ffff).min(UIO_MAXIOV) };
                let mut found = Vec::new();
                for i in 0..count {
                    let hdr = a[1].wrapping_add(i * 64);
                    let (Some(ptr), Some(len)) = (read_u64(hdr), read_u64(hdr.wrapping_add(8))) else { break };
                    if ptr != 0 {
                        found.extend(read(ptr, len));
                    }
                }
                found
            }
            _ => Vec::new(),
        }
    }

    /// What a send call sends, each message's first `max` bytes at most:
    /// sendto's and write's buffer, writev's first, the first buffer of each
    /// message of sendmsg and sendmmsg (at most 16 of these). Read from memory the caller may change
    /// meanwhile: a record of what it asked (learning reads the names of DNS
    /// queries so), not a basis for a decision.
    pub fn payloads(&self, max: usize) -> Vec<Vec<u8>> {
        let a = self.args;
        let read = |ptr: u64, len: u64| self.read_bytes(ptr, len, max);
        let read_u64 = |at: u64| self.read_u64(at);
        match self.nr {
            libc::SYS_sendto | libc::SYS_write => read(a[1], a[2]).into_iter().collect(),
            libc::SYS_writev if a[2] > 0 => {
                let (Some(base), Some(len)) = (read_u64(a[1]), read_u64(a[1].wrapping_add(8))) else { return Vec::new() };
                read(base, len).into_iter().collect()
            }
            libc::SYS_sendmsg | libc::SYS_sendmmsg => {
                // struct msghdr: msg_iov at 16, msg_iovlen at 24; struct
                // iovec: iov_base at 0, iov_len at 8; struct mmsghdr is 64 bytes.
                let count = if self.nr == libc::SYS_sendmsg { 1 } else { (a[2] & 0xffff_ffff).min(16) };
                let mut found = Vec::new();
                for i in 0..count {
                    let hdr = a[1].wrapping_add(i * 64);
                    let (Some(iov), Some(iovlen)) = (read_u64(hdr.wrapping_add(16)), read_u64(hdr.wrapping_add(24))) else { break };
                    if iovlen == 0 {
                        continue;
                    }
                    let (Some(base), Some(len)) = (read_u64(iov), read_u64(iov.wrapping_add(8))) else { break };
                    found.extend(read(base, len));
                }
                found
            }
            _ => Vec::new(),
        }
    }
}

/// The most messages one sendmmsg sends.
const UIO_MAXIOV: u64 = 1024;

pub struct Listener(OwnedFd);

/// What [`Listener::recv_for`] waited for.
#[derive(Debug)]
pub enum Waited {
    Call(Notif),
    /// Nothing came in time.
    Quiet,
    /// Every process that could raise one has exited.
    Gone,
}

impl Waited {
    fn call(self) -> Option<Notif> {
        match self {
            Waited::Call(n) => Some(n),
            Waited::Quiet | Waited::Gone => None,
        }
    }
}

use crate::check as cvt;

impl Listener {
    pub fn new(fd: OwnedFd) -> Listener {
        // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6): the kernel wakes the
        // broker on the service's CPU, and the service on the broker's after
        // NOTIF_SEND, instead of a cross-CPU wakeup each way. (NOTIF_ADDFD still
        // wakes the plain way, which is most of a brokered open's cost on a VM:
        // docs/performance.md.) Older kernels refuse the flag; it only costs time.
        const SYNC_WAKE_UP: libc::c_ulong = 1;
        // SAFETY: SET_FLAGS takes the flags by value (not a pointer), on our listener.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SYNC_WAKE_UP) };
        Listener(fd)
    }

    /// The listener's fd, for whoever serves it next.
    pub fn into_fd(self) -> OwnedFd {
        self.0
    }

    /// The listener's fd, to poll beside others.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }

    /// Waits for the next notification. `Ok(None)`: every process that could
    /// raise one has exited (the filter has no users left).
    pub fn recv(&self) -> io::Result<Option<Notif>> {
        self.recv_for(None).map(Waited::call)
    }

    /// The next notification if one waits now; `Ok(None)` if none does (or
    /// the filter has no users left). Never blocks.
    pub fn recv_now(&self) -> io::Result<Option<Notif>> {
        self.recv_for(Some(std::time::Duration::ZERO)).map(Waited::call)
    }

    /// [`recv`](Self::recv), waiting at most `timeout` (`None`: for ever).
    pub fn recv_for(&self, timeout: Option<std::time::Duration>) -> io::Result<Waited> {
        // Rounded up: a wait for a due time must not wake just before it.
        let timeout_ms = timeout.map_or(-1, |t| libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX));
        loop {
            // NOTIF_RECV blocks even on a non-blocking fd and does not wake up when
            // the last filter user dies; poll first, which reports that as POLLHUP.
            let mut pfd = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if n == 0 {
                return Ok(Waited::Quiet);
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if pfd.revents & libc::POLLIN == 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                return Ok(Waited::Gone);
            }
            // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
            let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: RECV fills exactly one seccomp_notif at a valid pointer.
            let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                // ENOENT: the caller was interrupted or died between poll and RECV.
                if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINTR)) {
                    continue;
                }
                return Err(e);
            }
            return Ok(Waited::Call(Notif { id: n.id, tid: n.pid, nr: n.data.nr as i64, args: n.data.args }));
        }
    }

    /// Whether notification `id` is still pending: its thread has not died or
    /// been interrupted, so the pid in it still names that thread.
    pub fn id_valid(&self, id: u64) -> bool {
        // SAFETY: the kernel reads one u64 at a valid pointer.
        unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
    }

    fn send(&self, id: u64, val: i64, error: i32, flags: u32) -> io::Result<()> {
        let resp = libc::seccomp_notif_resp { id, val, error, flags };
        // SAFETY: the kernel reads one seccomp_notif_resp at a valid pointer.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
        cvt(rc as libc::c_long).map(drop)
    }

    /// The syscall returns `val` in the service.
    pub fn reply(&self, id: u64, val: i64) -> io::Result<()> {
        self.send(id, val, 0, 0)
    }

    /// The syscall fails with `errno` in the service.
    pub fn fail(&self, id: u64, errno: i32) -> io::Result<()> {
        self.send(id, 0, -errno, 0)
    }

    /// The kernel runs the syscall as the service made it, with the service's own
    /// rights. Never a grant: used only where the call is not brokered at all
    /// (a path or socket the service reaches through its own view and network
    /// namespace) or where the kernel checks what it does (a datagram from a
    /// host socket, which the network guard checks), so whatever the service
    /// changes in its memory afterwards is checked by the kernel against the
    /// service's own confinement.
    pub fn pass_through(&self, id: u64) -> io::Result<()> {
        self.send(id, 0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32)
    }

    /// Installs `fd` in the service as the syscall's result (ADDFD with SEND:
    /// installing and answering are one atomic step). Returns the fd number.
    pub fn send_fd(&self, id: u64, fd: RawFd, cloexec: bool) -> io::Result<i32> {
        let a = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
            srcfd: fd as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: the kernel reads one seccomp_notif_addfd at a valid pointer.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &a) };
        cvt(rc as libc::c_long).map(|n| n as i32)
    }

    /// Replaces the service's fd `target` with `fd` (ADDFD with SETFD, like dup2
    /// into the service's table). The syscall still waits for a reply.
    pub fn replace_fd(&self, id: u64, fd: RawFd, target: i32, cloexec: bool) -> io::Result<()> {
        let a = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
            srcfd: fd as u32,
            newfd: target as u32,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: as in `send_fd`.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &a) };
        cvt(rc as libc::c_long).map(drop)
    }
}

/// Copies up to `buf.len()` bytes at `addr` in `tid`'s address space. Returns
/// how many bytes were readable (a read stops at the first unmapped page).
pub fn read_mem(tid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `local` describes our own writable buffer; `remote` is only read
    // by the kernel in the target, which checks it (EFAULT on a bad address).
    let n = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    cvt(n as libc::c_long).map(|n| n as usize)
}

/// Copies a NUL-terminated string of at most `max` bytes (NUL included) from
/// the service. Reads page by page, so a string that ends just before an
/// unmapped page is still read. Errors: EFAULT (unreadable), ENAMETOOLONG.
pub fn read_cstr(tid: u32, addr: u64, max: usize) -> Result<Vec<u8>, i32> {
    const PAGE: u64 = 4096;
    let mut out = Vec::with_capacity(256);
    let mut at = addr;
    while out.len() < max {
        let chunk = ((PAGE - at % PAGE) as usize).min(max - out.len());
        let start = out.len();
        out.resize(start + chunk, 0);
        let n = read_mem(tid, at, &mut out[start..]).map_err(|e| e.raw_os_error().unwrap_or(libc::EFAULT))?;
        out.truncate(start + n);
        if let Some(nul) = out[start..].iter().position(|b| *b == 0) {
            out.truncate(start + nul);
            return Ok(out);
        }
        if n < chunk {
            return Err(libc::EFAULT);
        }
        at += chunk as u64;
    }
    Err(libc::ENAMETOOLONG)
}

/// A pidfd for one thread (PIDFD_THREAD): the notification names a thread, not
/// necessarily a thread-group leader.
pub fn pidfd_open(tid: u32) -> io::Result<OwnedFd> {
    crate::pidfd_open(tid as libc::pid_t, crate::PIDFD_THREAD)
}

/// A duplicate of the service's fd `target` (same open file description).
pub use crate::pidfd_getfd;
