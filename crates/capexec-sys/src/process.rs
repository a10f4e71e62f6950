//! Processes: forking where that is safe, ending a forked child at once,
//! reaping, and signalling through pidfds.
//!
//! `fork` is the one call here whose safety depends on the caller's state
//! (other threads' locks are copied into the child held); [`fork`] checks that
//! state instead of trusting a comment at every call site.

use crate::{check, require_single_threaded};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

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

/// The parent of `pid`, from /proc/PID/stat: a read no Landlock layer
/// refuses or logs (unlike /proc/PID/ns/*, which a ptrace check guards).
/// The command name may hold spaces and parentheses: the fields after the
/// last `)` are state, then ppid.
pub fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The processes of a sandbox whose first process is `init`: where init has
/// a pid namespace of its own, every process in it (orphans there are
/// init's, and none leaves it); otherwise init and its descendants, by
/// parent pid. `shares_ours` says it is in this process's namespace whatever
/// the links show (one that entered a namespace path). A namespace that
/// cannot be read (init gone) is taken as shared: nothing but what descends
/// from `init` is then taken, never the whole host.
pub fn family(init: libc::pid_t, shares_ours: bool) -> Vec<libc::pid_t> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let own = ns(&init.to_string());
    let shares = match (&own, ns("self")) {
        _ if shares_ours => true,
        (Some(own), Some(ours)) => *own == ours,
        _ => true,
    };
    let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str().and_then(|p| p.parse::<libc::pid_t>().ok()));
    if !shares {
        return pids.filter(|p| ns(&p.to_string()) == own).collect();
    }
    let all: Vec<(libc::pid_t, libc::pid_t)> = pids.filter_map(|p| Some((p, parent_of(p)?))).collect();
    let mut found = vec![init];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found
}

/// The process of `init`'s [`family`] that its own pid namespace knows as
/// `ns_pid` (the last of /proc/PID/status's NSpid), as this process's
/// namespace numbers it.
pub fn in_family_as(init: libc::pid_t, ns_pid: libc::pid_t) -> Option<libc::pid_t> {
    let innermost = |p: libc::pid_t| {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("NSpid:"))?.split_whitespace().last()?.parse::<libc::pid_t>().ok()
    };
    family(init, false).into_iter().find(|p| innermost(*p) == Some(ns_pid))
}

/// The CPU time `pid` has used, all its threads, user and system, in clock
/// ticks (/proc/PID/stat's utime and stime); `None` once it is gone.
pub fn cpu_ticks(pid: libc::pid_t) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name: state is field 3, utime 14 and stime 15.
    let mut f = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
}

/// Whether `pid` (or, with `None`, any process) is a child of the caller,
/// running or ended and not yet reaped: waitid(2) without waiting or reaping,
/// which answers ECHILD for a process that is not one.
pub fn is_child(pid: Option<libc::pid_t>) -> bool {
    let (idtype, id) = match pid {
        Some(p) if p > 0 => (libc::P_PID, p as libc::id_t),
        Some(_) => return false,
        None => (libc::P_ALL, 0),
    };
    // SAFETY: an all-zero siginfo_t is a valid value to be written into.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into the valid siginfo_t; WNOHANG never blocks,
    // WNOWAIT leaves the child to be reaped.
    let rc = unsafe { libc::waitid(idtype, id, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD)
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

/// A signal that came with a value: its number, its `si_code` (`SI_QUEUE`
/// for [`queue_signal`]'s) and the value's int.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub signo: libc::c_int,
    pub code: libc::c_int,
    pub value: i32,
}

/// [`wait_signal`] that also reads what the signal carried.
pub fn wait_signal_info(set: &libc::sigset_t, timeout: Option<std::time::Duration>) -> Option<Queued> {
    // SAFETY: an all-zero siginfo_t is a valid value to be written into.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let sig = match timeout {
        Some(t) => {
            let ts = libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as libc::c_long };
            // SAFETY: a valid sigset, siginfo and timespec for the call.
            unsafe { libc::sigtimedwait(set, &mut info, &ts) }
        }
        // SAFETY: a valid sigset and siginfo for the call.
        None => unsafe { libc::sigwaitinfo(set, &mut info) },
    };
    if sig <= 0 {
        return None;
    }
    // SAFETY: the kernel filled `info` for this signal; si_value is read as
    // the int sigqueue(3) stores in the union's low bytes (zero for a signal
    // that carried none).
    let value = unsafe { info.si_value() }.sival_ptr as usize as u32 as i32;
    Some(Queued { signo: sig, code: info.si_code, value })
}

/// A signal set of `signals` (real-time ones too, which nix's `Signal` does
/// not name).
pub fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given; sigaddset adds a
    // number to it (an invalid one fails with EINVAL, leaving the set as is).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Blocks `signals` in this thread (real-time ones too).
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let set = signal_set(signals);
    // SAFETY: a valid set read during the call; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// sigqueue(3): `sig` with `value` to process `pid`, which reads it with
/// [`wait_signal_info`] (code `SI_QUEUE`).
pub fn queue_signal(pid: libc::pid_t, sig: libc::c_int, value: i32) -> io::Result<()> {
    let value = libc::sigval { sival_ptr: value as u32 as usize as *mut libc::c_void };
    // SAFETY: plain integers and a sigval passed by value; no memory is shared.
    check(unsafe { libc::sigqueue(pid, sig, value) } as libc::c_long).map(drop)
}

/// prlimit(2) of `resource` (RLIMIT_*) for process `pid` to `soft`/`hard`.
pub fn set_rlimit_of(pid: libc::pid_t, resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: the kernel reads one rlimit; the old value is not wanted (null).
    check(unsafe { libc::prlimit(pid, resource as _, &lim, std::ptr::null_mut()) } as libc::c_long).map(drop)
}

/// setpriority(2) of this process: its nice value, which every process it
/// starts inherits. Lowering it (a negative value) needs CAP_SYS_NICE.
pub fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: no pointer; PRIO_PROCESS with who = 0 names the caller.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } as libc::c_long).map(drop)
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

/// Forks a helper that runs `cleanup` once this process has exited, however
/// it exits (SIGKILL included): the helper waits for EOF on a pipe whose
/// write end only this process holds, and is returned to it. The caller must
/// keep that fd open until it exits (leaking it is the usual way), and call
/// this while single-threaded. The helper holds no other fd of this process's
/// (stdio goes to /dev/null), leaves its session, and blocks the stop signals
/// meant for it (a terminal's, systemd's), so that it lives to clean up.
pub fn after_exit(what: &str, cleanup: impl FnOnce()) -> io::Result<std::os::fd::OwnedFd> {
    let (rd, wr) = crate::pipe2(libc::O_CLOEXEC)?;
    match fork(what)? {
        Forked::Parent(_) => Ok(wr),
        Forked::Child => {
            drop(wr);
            let rd = rd.as_raw_fd();
            let open: Vec<i32> =
                std::fs::read_dir("/proc/self/fd").map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
            let null = std::fs::File::options().read(true).write(true).open("/dev/null").map(std::os::fd::IntoRawFd::into_raw_fd).unwrap_or(-1);
            // SAFETY: fd, session and signal-mask calls on this (forked,
            // single-threaded) process's own table and mask; a sigset built
            // with sigemptyset/sigaddset from valid numbers.
            unsafe {
                for fd in open.into_iter().filter(|fd| *fd != rd && *fd != null) {
                    libc::close(fd);
                }
                for std_fd in 0..3 {
                    libc::dup2(null, std_fd);
                }
                libc::setsid();
                let mut stops: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut stops);
                for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                    libc::sigaddset(&mut stops, sig);
                }
                libc::sigprocmask(libc::SIG_BLOCK, &stops, std::ptr::null_mut());
                let mut b = [0u8; 1];
                // Until every copy of the write end is closed (EOF), or the fd is gone.
                loop {
                    let n = libc::read(rd, b.as_mut_ptr().cast(), 1);
                    if n == 0 || (n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)) {
                        break;
                    }
                }
            }
            cleanup();
            // Not the parent's destructors: this process holds copies of its state.
            exit_now(0)
        }
    }
}

/// Sends `sig` to `pid`, listed in `family` (see [`family`]), if it is still
/// the process listed: its parent, read once a pidfd holds it, is one of
/// the family. A pid that was freed and given to another process after the
/// listing (which a service could try to bring about) is not signalled.
pub fn signal_listed(pid: libc::pid_t, family: &[libc::pid_t], sig: libc::c_int) -> bool {
    let Ok(fd) = crate::pidfd_open(pid, 0) else { return false };
    parent_of(pid).is_some_and(|p| family.contains(&p)) && pidfd_send_signal(fd.as_fd(), sig).is_ok()
}

/// Kills the caller's children until it has none: what a pid namespace's end
/// does, for a subreaper without one. `lists` are the caller's lists of
/// children (`/proc/PID/task/TID/children`, one per thread that may have
/// adopted some), opened before and read afresh each round (a read at
/// offset 0 starts a seq_file over). A child's own children come to the
/// subreaper as it dies and are killed in the next round; a process can fork
/// while a round runs but not once it is killed, so the rounds end. A round
/// that kills none (none left, or none the caller may kill) is the last:
/// only a child that was killed is waited for. Allocates nothing (init's
/// filter has no brk or mmap).
pub fn end_children(lists: &[BorrowedFd<'_>]) {
    // SAFETY: kill(2) with plain integers.
    let sent = |p: libc::pid_t, sig: libc::c_int| unsafe { libc::kill(p, sig) } == 0;
    loop {
        let mut killed = 0;
        for list in lists {
            // The caller's children, not yet reaped: no pid here can be reused.
            each_child(*list, |p| killed += usize::from(sent(p, libc::SIGKILL)));
            each_child(*list, |p| {
                if sent(p, 0) {
                    let _ = wait_child(p, true);
                }
            });
        }
        if killed == 0 {
            return;
        }
    }
}

/// Sends `sig` to each of the caller's children in `list` (see
/// [`end_children`]) but `except`: what kill(-1) is from a pid namespace's
/// init, for a subreaper without one. Allocates nothing.
pub fn signal_children(list: BorrowedFd<'_>, except: Option<libc::pid_t>, sig: libc::c_int) {
    each_child(list, |p| {
        if Some(p) != except {
            // SAFETY: kill(2) with plain integers; `p` is an unreaped child.
            unsafe { libc::kill(p, sig) };
        }
    });
}

/// Calls `f` with each pid in a list of children, read afresh (a read at
/// offset 0 starts a seq_file over) into a buffer on the stack.
fn each_child(list: BorrowedFd<'_>, mut f: impl FnMut(libc::pid_t)) {
    let mut buf = [0u8; 4096];
    // SAFETY: reads at most buf.len() bytes into buf from an fd the caller holds.
    let n = unsafe { libc::pread(list.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let Ok(n) = usize::try_from(n) else { return };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    // A full buffer may end in half a pid: that one waits for the next read.
    let whole = if n == buf.len() { text.rsplit_once(' ').map_or("", |(w, _)| w) } else { text };
    for p in whole.split_whitespace().filter_map(|p| p.parse::<libc::pid_t>().ok()).filter(|p| *p > 0) {
        f(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In this process's pid namespace a family is the process and its
    /// descendants, not the host; the CPU time a process burns shows in its
    /// ticks.
    #[test]
    fn a_family_is_its_descendants_and_its_cpu_time_counts() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let me = std::process::id() as libc::pid_t;
        let family = family(me, false);
        let _ = child.kill();
        let _ = child.wait();
        assert!(family.contains(&me) && family.contains(&(child.id() as libc::pid_t)), "{family:?}");
        assert!(!family.contains(&1), "{family:?}");
        let before = cpu_ticks(me).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_ticks(me).unwrap() > before, "{x}");
        assert_eq!(cpu_ticks(-1), None);
        // In this namespace a process's innermost pid is its pid.
        assert_eq!(in_family_as(me, me), Some(me));
    }
}
