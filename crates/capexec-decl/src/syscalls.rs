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

/// Bytes equal, usable in constants.
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Byte order of two names, usable in constants.
const fn str_lt(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// The table's positions in name order, sorted when the crate is compiled.
const BY_NAME: [u16; SYSCALLS.len()] = {
    let mut v = [0u16; SYSCALLS.len()];
    let mut i = 0;
    while i < v.len() {
        v[i] = i as u16;
        i += 1;
    }
    // Insertion sort: a few hundred names, once, by the compiler.
    let mut i = 1;
    while i < v.len() {
        let mut j = i;
        while j > 0 && str_lt(SYSCALLS[v[j] as usize].0, SYSCALLS[v[j - 1] as usize].0) {
            let t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
            j -= 1;
        }
        i += 1;
    }
    v
};

/// One syscall of the table (its position in it, which is number order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Syscall(u16);

impl Syscall {
    /// The syscall called `name`, found by binary search in the name index.
    pub fn named(name: &str) -> Option<Syscall> {
        BY_NAME.binary_search_by(|&i| SYSCALLS[i as usize].0.cmp(name)).ok().map(|k| Syscall(BY_NAME[k]))
    }

    /// The same lookup for constants: an unknown name stops the build.
    const fn known(name: &str) -> Syscall {
        let mut i = 0;
        while i < SYSCALLS.len() {
            if str_eq(SYSCALLS[i].0, name) {
                return Syscall(i as u16);
            }
            i += 1;
        }
        panic!("not a syscall name of the table")
    }

    pub fn name(self) -> &'static str {
        SYSCALLS[self.0 as usize].0
    }

    /// The x86_64 number.
    pub fn number(self) -> u32 {
        SYSCALLS[self.0 as usize].1 as u32
    }
}

const WORDS: usize = SYSCALLS.len().div_ceil(64);

/// A set of syscalls as a bitmap over the table: a spec's allowlist is
/// built, merged and turned into a filter on every launch, and sets of
/// strings made that a fifth of `capexec run`'s own CPU time. Iterates in
/// name order (what users read); [`Set::by_number`] gives number order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Set([u64; WORDS]);

impl Set {
    pub const EMPTY: Set = Set([0; WORDS]);

    /// The set of `names`, every one of which must be in the table (checked
    /// when the constant is compiled).
    pub const fn of(names: &[&str]) -> Set {
        let mut s = Set::EMPTY;
        let mut i = 0;
        while i < names.len() {
            let c = Syscall::known(names[i]);
            s.0[c.0 as usize / 64] |= 1 << (c.0 % 64);
            i += 1;
        }
        s
    }

    pub fn insert(&mut self, c: Syscall) -> bool {
        let had = self.has(c);
        self.0[c.0 as usize / 64] |= 1 << (c.0 % 64);
        !had
    }

    pub fn remove(&mut self, c: Syscall) -> bool {
        let had = self.has(c);
        self.0[c.0 as usize / 64] &= !(1 << (c.0 % 64));
        had
    }

    pub fn has(&self, c: Syscall) -> bool {
        self.0[c.0 as usize / 64] & (1 << (c.0 % 64)) != 0
    }

    /// Whether the syscall called `name` is in the set (false for a name
    /// the table does not know).
    pub fn contains(&self, name: &str) -> bool {
        Syscall::named(name).is_some_and(|c| self.has(c))
    }

    pub fn union(&mut self, other: &Set) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    pub fn subtract(&mut self, other: &Set) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a &= !b;
        }
    }

    pub fn is_subset(&self, other: &Set) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| a & !b == 0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The members in name order.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        BY_NAME.iter().map(|&i| Syscall(i)).filter(|c| self.has(*c)).map(Syscall::name)
    }

    /// The members in number order.
    pub fn by_number(&self) -> impl Iterator<Item = Syscall> + '_ {
        (0..SYSCALLS.len() as u16).map(Syscall).filter(|c| self.has(*c))
    }
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<&'a str> for Set {
    /// Names the table does not know are left out; callers with user input
    /// check names with [`Syscall::named`] first.
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Set {
        let mut s = Set::EMPTY;
        for c in iter.into_iter().filter_map(Syscall::named) {
            s.insert(c);
        }
        s
    }
}

impl serde::Serialize for Set {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Set {
    /// An unknown name is an error: a spec only ever holds names from the table.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Set, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut s = Set::EMPTY;
        for n in &names {
            s.insert(Syscall::named(n).ok_or_else(|| serde::de::Error::custom(format!("unknown syscall `{n}`")))?);
        }
        Ok(s)
    }
}

/// Each group's own syscalls (not those of the groups it includes), made
/// when the crate is compiled.
static DIRECT: [Set; GROUPS.len()] = {
    let mut out = [Set::EMPTY; GROUPS.len()];
    let mut g = 0;
    while g < GROUPS.len() {
        let members = GROUPS[g].members;
        let mut i = 0;
        while i < members.len() {
            let m = members[i];
            if m.as_bytes()[0] != b'@' {
                let c = Syscall::known(m);
                out[g].0[c.0 as usize / 64] |= 1 << (c.0 % 64);
            }
            i += 1;
        }
        g += 1;
    }
    out
};

/// The syscall number on x86_64, if the name is known.
pub fn number(name: &str) -> Option<i64> {
    Syscall::named(name).map(|c| c.number() as i64)
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

/// Every syscall this build knows.
pub fn all() -> Set {
    let mut s = Set::EMPTY;
    for i in 0..SYSCALLS.len() as u16 {
        s.insert(Syscall(i));
    }
    s
}

pub fn group(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.name == name)
}

/// A group's syscalls, those of the groups it includes too.
pub fn expand(group: &Group) -> Set {
    let k = GROUPS.iter().position(|g| g.name == group.name);
    let mut out = k.map(|k| DIRECT[k]).unwrap_or_default();
    for sub in group.members.iter().filter(|m| m.starts_with('@')).filter_map(|m| self::group(m)) {
        out.union(&expand(sub));
    }
    out
}

/// The table's own copy of a syscall name.
pub fn static_name(name: &str) -> Option<&'static str> {
    Syscall::named(name).map(Syscall::name)
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
        let set = expand(group("@system-service").unwrap());
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

    /// The set agrees with the table: name order, number order, lookups.
    #[test]
    fn sets_follow_the_table() {
        let all = all();
        assert_eq!(all.len(), SYSCALLS.len());
        let names: Vec<&str> = all.iter().collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "iteration is in name order");
        let nrs: Vec<u32> = all.by_number().map(Syscall::number).collect();
        assert!(nrs.windows(2).all(|w| w[0] < w[1]), "by_number is in number order");
        for (name, nr) in SYSCALLS {
            let c = Syscall::named(name).unwrap();
            assert_eq!((c.name(), c.number() as i64), (*name, *nr));
        }
        assert_eq!(Syscall::named("no_such_call"), None);
        let mut s = Set::of(&["read", "write"]);
        assert!(s.contains("read") && !s.contains("open") && !s.contains("bogus"));
        assert!(!s.insert(Syscall::named("read").unwrap()) && s.insert(Syscall::named("open").unwrap()));
        assert_eq!(s.iter().collect::<Vec<_>>(), ["open", "read", "write"]);
        assert!(s.remove(Syscall::named("write").unwrap()) && !s.contains("write"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"["open","read"]"#);
        assert_eq!(serde_json::from_str::<Set>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Set>(r#"["nope"]"#).is_err());
    }

    /// Expanding a group gives the names of its members and subgroups.
    #[test]
    fn expand_follows_subgroups() {
        let ss = expand(group("@system-service").unwrap());
        assert!(expand(group("@default").unwrap()).is_subset(&ss));
        for g in GROUPS {
            let set = expand(g);
            for m in g.members.iter().filter(|m| !m.starts_with('@')) {
                assert!(set.contains(m), "{}: {m}", g.name);
            }
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("opnat"), Some("openat"));
        assert_eq!(suggest("@network-oi"), None.or(Some("@network-io")));
    }
}
