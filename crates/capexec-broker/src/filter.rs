//! The broker's own seccomp allowlist: what a broker process may do once it
//! confined itself (`Broker::confine`). Built with capexec-sandbox's filter
//! builder; decided here, with the rest of the broker.

use capexec_sandbox::seccomp::{
    allowlist, any_of, arg_lo, jump, sock_filter, stmt, BPF_JEQ_K, BPF_JSET_K, BPF_LD_W_ABS, BPF_RET_K, NS_FLAGS, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS,
};
use seccompiler::BpfProgram;

/// What the broker itself may do once it serves: its threads' runtime, the
/// seccomp-notify ioctls, reading the service's memory and taking its fds
/// (process_vm_readv, pidfd_getfd), the granted calls it performs (openat2,
/// socket/bind/connect), and the host lookups of glibc's NSS and resolver
/// (files, sockets, netlink for AI_ADDRCONFIG). No exec, no new processes
/// (clone only with CLONE_THREAD), no id changes, no namespaces or mounts,
/// no ptrace; signals only to its own threads (tgkill on its own pid, for
/// abort). Anything else kills the broker: an attempt means it was subverted,
/// and the service's brokered calls then fail instead of hanging.
pub const BROKER_SYSCALLS: &[&str] = &[
    // memory, threads, time
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "futex",
    "set_robust_list",
    "rseq",
    "sched_yield",
    "sched_getaffinity",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "getrandom",
    "exit",
    "exit_group",
    "restart_syscall",
    "rt_sigprocmask",
    "rt_sigaction",
    "rt_sigreturn",
    "sigaltstack",
    "getpid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "uname",
    "prctl",
    // descriptors and files
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "lseek",
    "close",
    "fcntl",
    "dup",
    "fstat",
    "newfstatat",
    "statx",
    "openat",
    "openat2",
    // a granted file's removal (the `remove` right)
    "unlinkat",
    "getdents64",
    "readlink",
    "readlinkat",
    "poll",
    "ppoll",
    "pipe2",
    // the service: its memory, fds, liveness
    "process_vm_readv",
    "pidfd_open",
    "pidfd_getfd",
    // sockets
    "socket",
    "connect",
    "bind",
    "listen",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "shutdown",
];

/// A broker that is also `capexec exec`'s waiting parent: whom it may signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Foreground {
    /// The service's init, as this process sees it: any signal (forwarded
    /// stops and reloads), and waited for.
    pub init: u32,
    /// Also SIGKILL, or probe with signal 0, any one process: what init
    /// adopted and left when it was killed, which came to this process as
    /// the next subreaper (`capexec exec` without a pid namespace or a
    /// cgroup). Only for a broker whose own Landlock layer scopes signals:
    /// the kernel then keeps them to the broker's domain, which holds the
    /// service's processes and nothing else.
    pub ends_adopted: bool,
}

/// Argument rules of the broker's filter (see [`BROKER_SYSCALLS`]).
fn broker_argument_block(name: &str, own_pid: u32, service: Option<Foreground>, deny: u32) -> Option<Vec<sock_filter>> {
    let allow = SECCOMP_RET_ALLOW;
    let equals_any = |arg: u32, values: &[u32]| any_of(arg, None, values, allow, deny);
    Some(match name {
        // Threads only: CLONE_THREAD set and no namespace flag.
        "clone" => vec![
            stmt(BPF_LD_W_ABS, arg_lo(0)),
            jump(BPF_JSET_K, NS_FLAGS, 0, 1),
            stmt(BPF_RET_K, deny),
            jump(BPF_JSET_K, libc::CLONE_THREAD as u32, 1, 0),
            stmt(BPF_RET_K, deny),
            stmt(BPF_RET_K, allow),
        ],
        // abort() signals its own process; nothing else may be signalled.
        "tgkill" => equals_any(0, &[own_pid]),
        // The foreground wrapper forwards signals to the service's init only.
        "kill" => match service {
            Some(Foreground { init, ends_adopted: false }) => equals_any(0, &[init]),
            Some(Foreground { init, ends_adopted: true }) => vec![
                stmt(BPF_LD_W_ABS, arg_lo(0)),
                jump(BPF_JEQ_K, init, 0, 1),
                stmt(BPF_RET_K, allow),
                // One process: not its own group (0), not a group or every
                // process it may signal (negative).
                jump(BPF_JEQ_K, 0, 0, 1),
                stmt(BPF_RET_K, deny),
                jump(BPF_JSET_K, 0x8000_0000, 0, 1),
                stmt(BPF_RET_K, deny),
                stmt(BPF_LD_W_ABS, arg_lo(1)),
                jump(BPF_JEQ_K, libc::SIGKILL as u32, 2, 0),
                jump(BPF_JEQ_K, 0, 1, 0),
                stmt(BPF_RET_K, deny),
                stmt(BPF_RET_K, allow),
            ],
            None => vec![stmt(BPF_RET_K, deny)],
        },
        // The relay answers init which process is the service's main one
        // (capexec_sandbox::mainpid).
        "rt_sigqueueinfo" => match service {
            Some(Foreground { init, .. }) => equals_any(0, &[init]),
            None => vec![stmt(BPF_RET_K, deny)],
        },
        "ioctl" => equals_any(
            1,
            &[
                libc::SECCOMP_IOCTL_NOTIF_RECV as u32,
                libc::SECCOMP_IOCTL_NOTIF_SEND as u32,
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID as u32,
                libc::SECCOMP_IOCTL_NOTIF_ADDFD as u32,
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as u32,
                // Which network namespace a service's socket belongs to.
                libc::SIOCGSKNS as u32,
                // glibc's resolver sizes UDP answers with it.
                libc::FIONREAD as u32,
            ],
        ),
        "socket" => equals_any(0, &[libc::AF_UNIX as u32, libc::AF_INET as u32, libc::AF_INET6 as u32, libc::AF_NETLINK as u32]),
        _ => return None,
    })
}

/// The broker's filter for a broker whose pid (as it sees itself) is `own_pid`.
/// With `foreground` (`capexec exec`, where the broker is also the wrapper
/// that forwards signals to the service's init and waits for it), init may
/// be signalled and waited for (and what init adopted killed, see
/// [`Foreground`]).
pub fn broker_filter(own_pid: u32, foreground: Option<Foreground>) -> Result<BpfProgram, crate::BrokerError> {
    let build = |detail: String| crate::BrokerError::Filter { op: "build", detail };
    let deny = SECCOMP_RET_KILL_PROCESS;
    let mut nrs = Vec::new();
    let waiting: &[&str] = if foreground.is_some() { &["kill", "wait4", "rt_sigtimedwait", "rt_sigqueueinfo"] } else { &[] };
    for name in BROKER_SYSCALLS.iter().chain(&["clone", "tgkill", "ioctl"]).chain(waiting) {
        let nr = capexec_decl::syscalls::number(name).ok_or_else(|| build(format!("unknown syscall `{name}`")))? as u32;
        nrs.push((nr, broker_argument_block(name, own_pid, foreground, deny)));
    }
    allowlist(nrs, deny).map_err(|e| build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capexec_sandbox::seccomp::answer;

    #[test]
    fn broker_filter_allows_its_work_and_kills_the_rest() {
        let nr = |n: &str| capexec_decl::syscalls::number(n).unwrap() as u32;
        const KILL: u32 = SECCOMP_RET_KILL_PROCESS;
        let fgs = [None, Some(Foreground { init: 77, ends_adopted: false }), Some(Foreground { init: 77, ends_adopted: true })];
        for fg in fgs {
            let prog = broker_filter(42, fg).unwrap();
            let x = |name: &str, args: [u64; 6]| answer(&prog, nr(name), args);
            let a = |v: u64| [v, 0, 0, 0, 0, 0];
            for ok in ["openat2", "process_vm_readv", "pidfd_getfd", "recvmsg", "sendmsg", "futex", "connect", "bind"] {
                assert_eq!(x(ok, a(0)), SECCOMP_RET_ALLOW, "{ok}");
            }
            for bad in ["execve", "execveat", "ptrace", "mount", "setns", "unshare", "setresuid", "setuid", "bpf", "process_vm_writev", "fork", "vfork"] {
                assert_eq!(x(bad, a(0)), KILL, "{bad}");
            }
            let thread = (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64;
            assert_eq!(x("clone", a(thread)), SECCOMP_RET_ALLOW);
            assert_eq!(x("clone", a(libc::SIGCHLD as u64)), KILL, "a new process");
            assert_eq!(x("clone", a(thread | libc::CLONE_NEWNET as u64)), KILL);
            assert_eq!(answer(&prog, nr("clone3"), [0; 6]), 0x0005_0000 | libc::ENOSYS as u32, "clone3: ENOSYS, glibc falls back");
            assert_eq!(x("tgkill", a(42)), SECCOMP_RET_ALLOW);
            assert_eq!(x("tgkill", a(1)), KILL);
            assert_eq!(x("ioctl", [0, libc::SECCOMP_IOCTL_NOTIF_RECV, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
            assert_eq!(x("ioctl", [0, libc::TIOCSTI, 0, 0, 0, 0]), KILL);
            assert_eq!(x("socket", a(libc::AF_INET6 as u64)), SECCOMP_RET_ALLOW);
            assert_eq!(x("socket", a(libc::AF_PACKET as u64)), KILL);
            // Only the foreground wrapper signals and waits, and only for the service.
            assert_eq!(x("kill", a(77)), if fg.is_some() { SECCOMP_RET_ALLOW } else { KILL });
            assert_eq!(x("kill", [1, libc::SIGTERM as u64, 0, 0, 0, 0]), KILL);
            assert_eq!(x("kill", [77, libc::SIGTERM as u64, 0, 0, 0, 0]), if fg.is_some() { SECCOMP_RET_ALLOW } else { KILL });
            assert_eq!(x("kill", a(u32::MAX as u64)), KILL, "kill(-1) signals everything");
            assert_eq!(x("wait4", a(77)), if fg.is_some() { SECCOMP_RET_ALLOW } else { KILL });
            assert_eq!(x("rt_sigqueueinfo", a(77)), if fg.is_some() { SECCOMP_RET_ALLOW } else { KILL });
            assert_eq!(x("rt_sigqueueinfo", a(1234)), KILL, "a queued signal goes to init only");
            // What init adopted: one process at a time, killed or probed.
            let adopts = fg.is_some_and(|f| f.ends_adopted);
            assert_eq!(x("kill", [1234, libc::SIGKILL as u64, 0, 0, 0, 0]), if adopts { SECCOMP_RET_ALLOW } else { KILL });
            assert_eq!(x("kill", [1234, 0, 0, 0, 0, 0]), if adopts { SECCOMP_RET_ALLOW } else { KILL });
            assert_eq!(x("kill", [1234, libc::SIGTERM as u64, 0, 0, 0, 0]), KILL, "another signal");
            for group in [0u64, u32::MAX as u64, (-1234i32) as u32 as u64, (-1i64) as u64] {
                assert_eq!(x("kill", [group, libc::SIGKILL as u64, 0, 0, 0, 0]), KILL, "kill({}, SIGKILL): a group", group as i64);
            }
        }
    }
}
