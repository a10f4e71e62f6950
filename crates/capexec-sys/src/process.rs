//! Processes: forking where that is safe, ending a forked child at once,
//! reaping, and signalling through pidfds.
//!
//! `fork` is the one call here whose safety depends on the caller's state
//! (other threads' locks are copied into the child held); [`fork`] checks that
//! state instead of trusting a comment at every call site.

use crate::{check, require_single_threaded};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Which side of a [`fork`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// fork(2) of a single-threaded process: fails (and forks nothing) when the
/// process has other threads, so that the child may run ordinary code. `what`
/// names the fork in that error.
pub fn fork(what: &str) -> io::Result<Forked> {
    require_single_threaded(what)?;
    // SAFETY: this process has one thread (checked just above; only that
    // thread could start another, and it is here), so the child inherits no
    // lock held by a thread that does not exist in it.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Ends this process now with `code`: no destructors, no atexit handlers, no
/// buffered output flushed. What a forked child that must not run its
/// parent's cleanup (copies of the parent's state) ends with.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Reaps one ended child without waiting: its pid and raw wait status, or
/// `None` when none has ended (or there are no children).
pub fn reap_any() -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a valid int; WNOHANG never blocks.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// pidfd_send_signal(2) with no siginfo: unlike kill(2), it cannot reach
/// another process that was given the pid after this one ended.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a pidfd borrowed for the call, a signal number and a null siginfo.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    check(rc).map(drop)
}

/// waitpid(2) for one child: its raw wait status once it has ended; with
/// `block` false, `None` while it still runs.
pub fn wait_child(pid: libc::pid_t, block: bool) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: waitpid writes the status into a valid int.
        match unsafe { libc::waitpid(pid, &mut status, flags) } {
            0 => return Ok(None),
            r if r > 0 => return Ok(Some(status)),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The next pending signal of `set` (which the caller has blocked):
/// sigtimedwait(2), `None` once `timeout` passed first (or on EINTR), or
/// sigwaitinfo(2) without a timeout.
pub fn wait_signal(set: &libc::sigset_t, timeout: Option<std::time::Duration>) -> Option<libc::c_int> {
    let sig = match timeout {
        Some(t) => {
            let ts = libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as libc::c_long };
            // SAFETY: a valid sigset and timespec read during the call; a null siginfo is allowed.
            unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) }
        }
        // SAFETY: a valid sigset read during the call; a null siginfo is allowed.
        None => unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) },
    };
    (sig > 0).then_some(sig)
}

/// prlimit(2) of `resource` (RLIMIT_*) for process `pid` to `soft`/`hard`.
pub fn set_rlimit_of(pid: libc::pid_t, resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: the kernel reads one rlimit; the old value is not wanted (null).
    check(unsafe { libc::prlimit(pid, resource as _, &lim, std::ptr::null_mut()) } as libc::c_long).map(drop)
}

/// This process's (soft, hard) limit of `resource`.
pub fn rlimit(resource: libc::c_int) -> io::Result<(u64, u64)> {
    let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: the kernel writes one rlimit at a valid pointer.
    check(unsafe { libc::getrlimit(resource as _, &mut now) } as libc::c_long)?;
    Ok((now.rlim_cur, now.rlim_max))
}

/// setrlimit(2) of `resource` for this process.
pub fn set_rlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: the kernel reads one rlimit at a valid pointer.
    check(unsafe { libc::setrlimit(resource as _, &lim) } as libc::c_long).map(drop)
}
