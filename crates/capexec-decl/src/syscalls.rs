//! Named syscall groups for the seccomp allowlist, modelled on systemd's
//! `SystemCallFilter=` groups, and name lookup in the x86_64 table.
//!
//! Where capexec departs from systemd it is stricter, on purpose:
//! `@system-service` leaves out `@keyring` (keyctl, add_key, request_key),
//! `userfaultfd`, `process_vm_readv`/`process_vm_writev` and `pidfd_getfd`
//! (they read or write other processes), and io_uring has a group of its own
//! that nothing includes by default (io_uring requests bypass seccomp).
//! docs/declaration.md lists every group with its members; a unit test keeps
//! that table and this one equal.

use crate::syscall_table::SYSCALLS;

pub struct Group {
    pub name: &'static str,
    pub about: &'static str,
    /// Syscall names or other groups (`@...`).
    pub members: &'static [&'static str],
    /// Part of `@system-service` (and so of the default allowlist).
    pub in_system_service: bool,
}

pub const GROUPS: &[Group] = &[
    Group {
        name: "@default",
        about: "always allowed: what every process needs to run at all",
        in_system_service: true,
        members: &[
            "arch_prctl",
            "brk",
            "clock_getres",
            "clock_gettime",
            "clock_nanosleep",
            "execve",
            "exit",
            "exit_group",
            "futex",
            "futex_waitv",
            "futex_wait",
            "futex_wake",
            "futex_requeue",
            "get_robust_list",
            "getegid",
            "geteuid",
            "getgid",
            "getgroups",
            "getpgid",
            "getpgrp",
            "getpid",
            "getppid",
            "getrandom",
            "getresgid",
            "getresuid",
            "getrlimit",
            "getsid",
            "gettid",
            "gettimeofday",
            "getuid",
            "membarrier",
            "mmap",
            "mprotect",
            "munmap",
            "nanosleep",
            "pause",
            "prlimit64",
            "restart_syscall",
            "rseq",
            "rt_sigreturn",
            "sched_getaffinity",
            "sched_yield",
            "set_robust_list",
            "set_tid_address",
            "time",
            "uname",
            "map_shadow_stack",
        ],
    },
    Group {
        name: "@basic-io",
        about: "read, write, seek and close file descriptors",
        in_system_service: true,
        members: &[
            "close",
            "close_range",
            "dup",
            "dup2",
            "dup3",
            "lseek",
            "pread64",
            "preadv",
            "preadv2",
            "pwrite64",
            "pwritev",
            "pwritev2",
            "read",
            "readv",
            "write",
            "writev",
        ],
    },
    Group {
        name: "@file-system",
        about: "open, stat, create, rename and remove files and directories (mknodat only for FIFOs, sockets and regular files)",
        in_system_service: true,
        members: &[
            "access",
            "chdir",
            "chmod",
            "creat",
            "faccessat",
            "faccessat2",
            "fallocate",
            "fchdir",
            "fchmod",
            "fchmodat",
            "fchmodat2",
            "fcntl",
            "fgetxattr",
            "flistxattr",
            "fremovexattr",
            "fsetxattr",
            "fstat",
            "fstatfs",
            "ftruncate",
            "futimesat",
            "getcwd",
            "getdents",
            "getdents64",
            "getxattr",
            "inotify_add_watch",
            "inotify_init",
            "inotify_init1",
            "inotify_rm_watch",
            "lgetxattr",
            "link",
            "linkat",
            "listxattr",
            "llistxattr",
            "lremovexattr",
            "lsetxattr",
            "lstat",
            "mkdir",
            "mkdirat",
            "mknod",
            "mknodat",
            "newfstatat",
            "open",
            "openat",
            "openat2",
            "readlink",
            "readlinkat",
            "removexattr",
            "rename",
            "renameat",
            "renameat2",
            "rmdir",
            "setxattr",
            "stat",
            "statfs",
            "statx",
            "symlink",
            "symlinkat",
            "truncate",
            "unlink",
            "unlinkat",
            "utime",
            "utimensat",
            "utimes",
        ],
    },
    Group {
        name: "@io-event",
        about: "wait for events on file descriptors (epoll, poll, select, eventfd)",
        in_system_service: true,
        members: &[
            "epoll_create",
            "epoll_create1",
            "epoll_ctl",
            "epoll_pwait",
            "epoll_pwait2",
            "epoll_wait",
            "eventfd",
            "eventfd2",
            "poll",
            "ppoll",
            "pselect6",
            "select",
        ],
    },
    Group {
        name: "@ipc",
        about: "pipes, SysV and POSIX IPC, memfd (within the service's own IPC namespace)",
        in_system_service: true,
        members: &[
            "memfd_create",
            "mq_getsetattr",
            "mq_notify",
            "mq_open",
            "mq_timedreceive",
            "mq_timedsend",
            "mq_unlink",
            "msgctl",
            "msgget",
            "msgrcv",
            "msgsnd",
            "pipe",
            "pipe2",
            "semctl",
            "semget",
            "semop",
            "semtimedop",
            "shmat",
            "shmctl",
            "shmdt",
            "shmget",
        ],
    },
    Group {
        name: "@network-io",
        about: "sockets (socket() only for AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK)",
        in_system_service: true,
        members: &[
            "accept",
            "accept4",
            "bind",
            "connect",
            "getpeername",
            "getsockname",
            "getsockopt",
            "listen",
            "recvfrom",
            "recvmmsg",
            "recvmsg",
            "sendmmsg",
            "sendmsg",
            "sendto",
            "setsockopt",
            "shutdown",
            "socket",
            "socketpair",
        ],
    },
    Group {
        name: "@process",
        about: "create, wait for and signal processes (clone without namespace flags; clone3 answers ENOSYS so libc falls back to clone)",
        in_system_service: true,
        members: &[
            "capget",
            "clone",
            "clone3",
            "execveat",
            "fork",
            "getrusage",
            "kill",
            "pidfd_open",
            "pidfd_send_signal",
            "prctl",
            "rt_sigqueueinfo",
            "rt_tgsigqueueinfo",
            "tgkill",
            "times",
            "tkill",
            "vfork",
            "wait4",
            "waitid",
        ],
    },
    Group {
        name: "@signal",
        about: "signal handlers and masks",
        in_system_service: true,
        members: &["rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigsuspend", "rt_sigtimedwait", "sigaltstack", "signalfd", "signalfd4"],
    },
    Group {
        name: "@timer",
        about: "timers and alarms",
        in_system_service: true,
        members: &[
            "alarm",
            "getitimer",
            "setitimer",
            "timer_create",
            "timer_delete",
            "timer_getoverrun",
            "timer_gettime",
            "timer_settime",
            "timerfd_create",
            "timerfd_gettime",
            "timerfd_settime",
        ],
    },
    Group {
        name: "@sync",
        about: "flush file data to disk",
        in_system_service: true,
        members: &["fdatasync", "fsync", "msync", "sync", "sync_file_range", "syncfs"],
    },
    Group {
        name: "@resources",
        about: "change the service's own scheduling, memory policy and limits",
        in_system_service: true,
        members: &[
            "ioprio_set",
            "mbind",
            "migrate_pages",
            "move_pages",
            "sched_setaffinity",
            "sched_setattr",
            "sched_setparam",
            "sched_setscheduler",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "setpriority",
            "setrlimit",
        ],
    },
    Group {
        name: "@aio",
        about: "POSIX/Linux AIO (not io_uring)",
        in_system_service: true,
        members: &["io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_setup", "io_submit"],
    },
    Group {
        name: "@chown",
        about: "change file owners (still needs CAP_CHOWN for anything but the service's own group)",
        in_system_service: true,
        members: &["chown", "fchown", "fchownat", "lchown"],
    },
    Group {
        name: "@setuid",
        about: "change the process's own ids (without capabilities only among its own ids)",
        in_system_service: true,
        members: &["setfsgid", "setfsuid", "setgid", "setgroups", "setregid", "setresgid", "setresuid", "setreuid", "setuid"],
    },
    Group { name: "@memlock", about: "lock memory into RAM", in_system_service: true, members: &["mlock", "mlock2", "mlockall", "munlock", "munlockall"] },
    Group {
        name: "@system-service",
        about: "what ordinary services need; the default allowlist",
        in_system_service: false,
        members: &[
            "@default",
            "@basic-io",
            "@file-system",
            "@io-event",
            "@ipc",
            "@network-io",
            "@process",
            "@signal",
            "@timer",
            "@sync",
            "@resources",
            "@aio",
            "@chown",
            "@setuid",
            "@memlock",
            "cachestat",
            "capset",
            "copy_file_range",
            "fadvise64",
            "flock",
            "get_mempolicy",
            "getcpu",
            "getpriority",
            "ioctl",
            "ioprio_get",
            "kcmp",
            "madvise",
            "mremap",
            "mseal",
            "name_to_handle_at",
            "personality",
            "readahead",
            "remap_file_pages",
            "sched_get_priority_max",
            "sched_get_priority_min",
            "sched_getattr",
            "sched_getparam",
            "sched_getscheduler",
            "sched_rr_get_interval",
            "sendfile",
            "setpgid",
            "setsid",
            "splice",
            "sysinfo",
            "tee",
            "umask",
            "vmsplice",
        ],
    },
    // Opt-in groups: nothing includes them by default.
    Group {
        name: "@io-uring",
        about: "io_uring (its requests are not checked by seccomp; opt in only when needed)",
        in_system_service: false,
        members: &["io_uring_enter", "io_uring_register", "io_uring_setup"],
    },
    Group { name: "@keyring", about: "the kernel keyring", in_system_service: false, members: &["add_key", "keyctl", "request_key"] },
    Group {
        name: "@mount",
        about: "mounting file systems, old and new mount API (still needs CAP_SYS_ADMIN)",
        in_system_service: false,
        members: &["chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount", "open_tree", "pivot_root", "umount2"],
    },
    Group {
        name: "@debug",
        about: "tracing and inspecting other processes",
        in_system_service: false,
        members: &["perf_event_open", "pidfd_getfd", "process_vm_readv", "process_vm_writev", "ptrace"],
    },
];

/// The syscall number on x86_64, if the name is known.
pub fn number(name: &str) -> Option<i64> {
    by_name(name).map(|(_, nr)| nr)
}

/// The table's entry for `name`, found by binary search in an index sorted
/// by name (built once): a launch looks up some 300 names, and a linear
/// search of the table for each was a third of `capexec run`'s own CPU time.
fn by_name(name: &str) -> Option<(&'static str, i64)> {
    static INDEX: std::sync::OnceLock<Vec<(&'static str, i64)>> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut v = SYSCALLS.to_vec();
        v.sort_unstable_by_key(|(n, _)| *n);
        v
    });
    index.binary_search_by_key(&name, |(n, _)| n).ok().map(|i| index[i])
}

/// The x86_64 name of a syscall number, if the number is known. The table is
/// sorted by number (a test keeps it so): the recorder of `capexec learn`
/// asks this for every call a program makes.
pub fn name_of(nr: i64) -> Option<&'static str> {
    SYSCALLS.binary_search_by_key(&nr, |(_, n)| *n).ok().map(|i| SYSCALLS[i].0)
}

/// Every syscall name this build knows, in table order.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    SYSCALLS.iter().map(|(n, _)| *n)
}

pub fn group(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.name == name)
}

/// Expands a group into syscall names, recursively. Unknown names inside a group
/// are a bug in the table (caught by a unit test), not a user error.
pub fn expand(group: &Group, out: &mut std::collections::BTreeSet<&'static str>) {
    for m in group.members {
        if let Some(sub) = m.strip_prefix('@').and_then(|_| self::group(m)) {
            expand(sub, out);
        } else {
            out.insert(m);
        }
    }
}

/// The table's own copy of a syscall name. Specs hold these instead of owned
/// strings: a daemon keeps a thousand specs of some 300 names each.
pub fn static_name(name: &str) -> Option<&'static str> {
    by_name(name).map(|(n, _)| n)
}

/// Closest known names, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<&'static str> {
    let candidates = SYSCALLS.iter().map(|(n, _)| *n).chain(GROUPS.iter().map(|g| g.name));
    candidates.map(|c| (edit_distance(name, c), c)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, c)| c)
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_by_number_for_name_of() {
        assert!(SYSCALLS.windows(2).all(|w| w[0].1 < w[1].1), "syscall_table.rs must stay sorted by number, without repeats");
        for (name, nr) in SYSCALLS {
            assert_eq!(name_of(*nr), Some(*name));
        }
        assert_eq!(name_of(100_000), None);
    }

    #[test]
    fn every_group_member_is_a_known_syscall_or_group() {
        for g in GROUPS {
            for m in g.members {
                if m.starts_with('@') {
                    assert!(group(m).is_some(), "{}: unknown group {m}", g.name);
                } else {
                    assert!(number(m).is_some(), "{}: unknown syscall {m}", g.name);
                }
            }
        }
    }

    #[test]
    fn system_service_excludes_the_dangerous_ones() {
        let mut set = std::collections::BTreeSet::new();
        expand(group("@system-service").unwrap(), &mut set);
        for bad in [
            "io_uring_setup",
            "io_uring_enter",
            "keyctl",
            "add_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "open_by_handle_at",
            "ptrace",
            "process_vm_writev",
            "process_vm_readv",
            "mount",
            "unshare",
            "setns",
            "chroot",
            "pivot_root",
            "kexec_load",
            "init_module",
            "finit_module",
            "reboot",
            "swapon",
            "clock_settime",
            "seccomp",
            "fsopen",
            "move_mount",
        ] {
            assert!(!set.contains(bad), "@system-service must not contain {bad}");
        }
        assert!(set.contains("execve") && set.contains("read") && set.contains("socket"));
    }

    #[test]
    fn groups_flagged_in_system_service_are_its_members() {
        let ss = group("@system-service").unwrap();
        for g in GROUPS.iter().filter(|g| g.in_system_service) {
            assert!(ss.members.contains(&g.name), "{} flagged but not listed", g.name);
        }
    }

    /// docs/declaration.md lists every group with its members; keep them equal.
    #[test]
    fn documented_groups_match() {
        let doc = include_str!("../../../docs/declaration.md");
        for g in GROUPS {
            let row =
                doc.lines().find(|l| l.starts_with(&format!("| `{}` |", g.name))).unwrap_or_else(|| panic!("docs/declaration.md has no row for {}", g.name));
            let members = row.trim_end_matches(" |").rsplit(" | ").next().unwrap();
            assert_eq!(members, g.members.join(", "), "docs/declaration.md row for {} is out of date", g.name);
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("opnat"), Some("openat"));
        assert_eq!(suggest("@network-oi"), None.or(Some("@network-io")));
    }
}
