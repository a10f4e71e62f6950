//! The recorder: answers every syscall of a learning run with CONTINUE (the
//! kernel runs it unchanged) after writing down what it was. Learning enforces
//! nothing, so the usual rule against deciding on memory the program can still
//! change does not apply: a program that races its own arguments only makes its
//! own record wrong. Arguments are still read with ID_VALID checks, so that a
//! notification whose thread died is not recorded with another process's data.

use crate::observe::{Access, Observations};
use capexec_sandbox::seccomp::{self, sock_filter};
use capexec_sys::notify::{self as remote, Listener, Notif};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::Sender;

const AT_FDCWD: i64 = -100;

/// Records until every process of the run has exited. Each call is also run
/// through `judge` (a seccomp program built by capexec-sandbox, run by its
/// interpreter on the call's real arguments) and counted in `denied` when the
/// filter would have refused it. `capabilities`: the run has capabilities
/// (a root service learned as root); what its calls used of them is written
/// down (`Observations::capabilities`).
///
/// `bound`, if given, hears of every address the run binds as the call is
/// made (before the kernel runs it): `capexec learn` waits for the service to
/// listen before it starts the workload.
///
/// `activity`, if given, counts the calls as they come, but those that
/// an idle loop makes ([`idles`]): `capexec learn` waits for the run to be quiet
/// before it stops it, and a daemon's idle loop wakes up on its own.
///
/// `serving`, if given, is set once clients come (`capexec learn` starts its
/// workload): only a listener bound after that can be one made for a
/// session. Without it, any bound once the run called accept().
pub fn record(
    listener: OwnedFd,
    judge: &[sock_filter],
    capabilities: bool,
    bound: Option<Sender<Bound>>,
    activity: Option<&AtomicU64>,
    serving: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Observations {
    let l = Listener::new(listener);
    let mut obs = Observations::default();
    let ctx = Ctx {
        capabilities,
        bound,
        accepting: std::cell::Cell::new(false),
        serving,
        start_binders: Default::default(),
        polled: Default::default(),
        receiving: Default::default(),
        local: Default::default(),
        dns: Default::default(),
        dns_fds: Default::default(),
        connecting: Default::default(),
    };
    while let Ok(Some(n)) = l.recv() {
        let name = capexec_decl::syscalls::name_of(n.nr);
        if let Some(a) = activity.filter(|_| !name.is_some_and(idles)) {
            a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if !seccomp::allows(judge, n.nr, n.args) {
            let key = name.map(str::to_owned).unwrap_or_else(|| format!("#{}", n.nr));
            *obs.denied.entry(key).or_default() += 1;
        }
        match name {
            Some(name) => note(&l, &n, name, &ctx, &mut obs),
            None => {
                obs.unknown.insert(n.nr);
            }
        }
        // ENOENT: the thread went away meanwhile; nothing to answer.
        let _ = l.pass_through(n.id);
    }
    obs
}

/// Whether a call named `name` is one an idle loop makes: it waits (for
/// events, a timeout, another thread), sets the signal mask around such a
/// wait, or reads a clock. An idle daemon makes them on a timer
/// (mosquitto's main loop: rt_sigprocmask, epoll_wait, rt_sigprocmask, ten
/// times a second), and a run that makes nothing else is quiet.
fn idles(name: &str) -> bool {
    matches!(
        name,
        "epoll_wait"
            | "epoll_pwait"
            | "epoll_pwait2"
            | "poll"
            | "ppoll"
            | "select"
            | "pselect6"
            | "nanosleep"
            | "clock_nanosleep"
            | "futex"
            | "restart_syscall"
            | "rt_sigprocmask"
            | "clock_gettime"
            | "gettimeofday"
            | "time"
    )
}

/// An address a bind of the run named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// In the words of observations: `tcp:0.0.0.0:80`, `udp:[::]:53`, `unix:/run/app.sock`.
    pub address: String,
    pub datagram: bool,
}

/// What the recorder was asked to do besides writing calls down.
struct Ctx {
    capabilities: bool,
    bound: Option<Sender<Bound>>,
    /// Some process of the run has called accept(): binds from now on are
    /// made while serving (`Observations::session_binds`).
    accepting: std::cell::Cell<bool>,
    /// Set once the workload, the run's client, has started (see `record`).
    serving: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The processes (by tgid) that bound a stream socket before the run
    /// served: the service's own, whose later listeners are its own too.
    start_binders: std::cell::RefCell<std::collections::HashSet<i32>>,
    /// The fds (by tgid and number) a process added to an epoll set
    /// (`Observations::polled`).
    polled: std::cell::RefCell<std::collections::HashSet<(i32, i32)>>,
    /// Datagram sockets (by cookie) a process of the run has called recv*
    /// on: what such a socket then sends to a loopback address is taken as
    /// an answer to a client of the workload's (see `net_call`).
    receiving: std::cell::RefCell<std::collections::HashSet<u64>>,
    /// The run's own sockets on loopback ports the kernel picked.
    local: std::cell::RefCell<LocalPorts>,
    /// Datagram sockets (by cookie) connected to an address, and to where:
    /// what they send that reads as a DNS query is one (`dns_queries`).
    dns: std::cell::RefCell<std::collections::HashMap<u64, String>>,
    /// The fd numbers those sockets had in the process that connected them:
    /// a write on any other fd is no query, and is not looked at.
    dns_fds: std::cell::RefCell<std::collections::HashSet<i32>>,
    /// Sockets (by cookie) a process of the run has called connect on,
    /// whose shown port may be one the kernel took back (see `net_call`).
    connecting: std::cell::RefCell<std::collections::HashSet<u64>>,
}

/// Sockets the run bound to a loopback address with port 0, and the ports
/// they got: a pair of sockets that talk to each other (squid and its
/// helpers) is the service talking to itself, which its own network
/// namespace's loopback gives it (the broker lets such binds and connects
/// happen there). Granted, such a port would name one the next run does
/// not get.
#[derive(Default)]
struct LocalPorts {
    /// Bound at the last look, or about to be: the broker's copy of each,
    /// until its port is known.
    pending: Vec<(bool, OwnedFd)>,
    /// (datagram, port).
    ports: std::collections::HashSet<(bool, u16)>,
}

impl LocalPorts {
    /// At most this many sockets wait for their port.
    const PENDING: usize = 64;

    fn bound(&mut self, datagram: bool, sock: OwnedFd) {
        if self.pending.len() < Self::PENDING {
            self.pending.push((datagram, sock));
        }
    }

    /// Whether a datagram to loopback `port` reaches one of the run's own
    /// sockets. A socket's bind is done by the time another of the run's
    /// calls names its port. (A TCP connect to such a port stays a grant:
    /// Landlock's connect rules name ports, and the service's refuse it.)
    fn own(&mut self, datagram: bool, port: u16) -> bool {
        if !datagram {
            return false;
        }
        let ports = &mut self.ports;
        self.pending.retain(|(d, s)| match capexec_sys::socket::local_port(std::os::fd::AsFd::as_fd(s)) {
            Ok(0) => true,
            Ok(p) => {
                ports.insert((*d, p));
                false
            }
            Err(_) => false,
        });
        port != 0 && self.ports.contains(&(datagram, port))
    }
}

fn note(l: &Listener, n: &Notif, name: &str, ctx: &Ctx, obs: &mut Observations) {
    let capabilities = ctx.capabilities;
    *obs.syscalls.entry(name.to_owned()).or_default() += 1;
    let a = n.args;
    let flags = match name {
        "open" => a[1],
        "openat" => a[2],
        "openat2" => read_u64(n.tid, a[2]).unwrap_or(0),
        _ => 0,
    };
    // The source of a rename or link, paired with its target below.
    let mut moved_from = None;
    let (dirfd, path, access) = match name {
        "open" => (AT_FDCWD, a[0], open_access(flags)),
        "creat" => (AT_FDCWD, a[0], Access::Create),
        "openat" | "openat2" => (a[0] as i64, a[1], open_access(flags)),
        "execve" => (AT_FDCWD, a[0], Access::Exec),
        "execveat" => (a[0] as i64, a[1], Access::Exec),
        "stat" | "lstat" | "access" | "readlink" | "statfs" | "getxattr" | "lgetxattr" | "listxattr" | "llistxattr" => (AT_FDCWD, a[0], Access::Look),
        "newfstatat" | "statx" | "faccessat" | "faccessat2" | "readlinkat" => (a[0] as i64, a[1], Access::Look),
        // The new root must be in the view (haproxy's /var/lib/haproxy).
        "chdir" | "chroot" => (AT_FDCWD, a[0], Access::Read),
        "truncate" | "chmod" | "chown" | "lchown" | "utime" | "utimes" | "setxattr" | "lsetxattr" | "removexattr" | "lremovexattr" => {
            (AT_FDCWD, a[0], Access::Write)
        }
        "fchmodat" | "fchmodat2" | "fchownat" | "utimensat" | "futimesat" => (a[0] as i64, a[1], Access::Write),
        "mkdir" | "mknod" => (AT_FDCWD, a[0], Access::Create),
        "mkdirat" | "mknodat" => (a[0] as i64, a[1], Access::Create),
        "unlink" | "rmdir" => (AT_FDCWD, a[0], Access::Remove),
        "unlinkat" => (a[0] as i64, a[1], Access::Remove),
        // A file mapped executable is code the service runs, as an exec'd
        // one is: a library outside the system directories (which a
        // read_only mount, noexec, would refuse), or one it wrote itself
        // (varnish's compiled VCL: read_write_exec).
        "mmap" if a[2] as i32 & libc::PROT_EXEC != 0 && a[4] as i32 >= 0 => {
            fd_event(l, n, a[4] as i32, Access::Exec, obs);
            return;
        }
        "rename" | "link" => {
            let old = path_event(l, n, AT_FDCWD, a[0], Access::Remove, false, obs);
            moved_from.clone_from(&old);
            dac(capabilities, n, name, old, Access::Remove, obs);
            (AT_FDCWD, a[1], Access::Create)
        }
        "renameat" | "renameat2" | "linkat" => {
            let old = path_event(l, n, a[0] as i64, a[1], Access::Remove, false, obs);
            moved_from.clone_from(&old);
            dac(capabilities, n, name, old, Access::Remove, obs);
            (a[2] as i64, a[3], Access::Create)
        }
        "symlink" => (AT_FDCWD, a[1], Access::Create),
        "symlinkat" => (a[1] as i64, a[2], Access::Create),
        "accept" | "accept4" => {
            ctx.accepting.set(true);
            return;
        }
        "epoll_ctl" if a[1] as i32 == libc::EPOLL_CTL_ADD => {
            ctx.polled.borrow_mut().insert((n.process(), a[2] as i32));
            return;
        }
        "recvfrom" | "recvmsg" | "recvmmsg" => {
            if let Some(cookie) = datagram_cookie(n, a[0] as i32) {
                ctx.receiving.borrow_mut().insert(cookie);
            }
            return;
        }
        "socket" | "bind" | "connect" | "sendto" | "sendmsg" | "sendmmsg" => {
            net_call(l, n, ctx, obs);
            return;
        }
        // A connected datagram socket sends with write too (dnsdist's
        // queries to its backends): looked at only once the run has one.
        // (Most writes are not: only an fd number a connected datagram socket
        // had is looked at, with no syscall for the others.)
        "write" | "writev" if ctx.dns_fds.borrow().contains(&(a[0] as i32)) => {
            let sock = remote::pidfd_open(n.tid).ok().and_then(|p| remote::pidfd_getfd(&p, a[0] as i32).ok());
            if sock.as_ref().and_then(sock_type) == Some(libc::SOCK_DGRAM) {
                dns_queries(l, n, ctx, "send", sock.as_ref(), &[], obs);
            }
            return;
        }
        "capset" if capabilities => {
            capset(l, n, obs);
            return;
        }
        "fchmod" if capabilities => {
            if let Ok(target) = std::fs::read_link(format!("/proc/{}/fd/{}", n.tid, a[0] as i32)) {
                if target.is_absolute() && !unjudged(&target) {
                    fowner(n, name, &target, obs);
                }
            }
            return;
        }
        // Dropping from the bounding set needs CAP_SETPCAP, whatever the set
        // holds: libcap-ng's capng_apply asks for it first, and without it
        // fails and says so through syslog (irqbalance, setpriv), though
        // capexec has emptied the set already.
        "prctl" if capabilities && a[0] == libc::PR_CAPBSET_DROP as u64 => {
            obs.capabilities.entry("CAP_SETPCAP".into()).or_default().insert(
                "prctl(PR_CAPBSET_DROP): the program empties its own bounding set (libcap-ng's capng_apply); the capability acts on its own sets only"
                    .to_owned(),
            );
            return;
        }
        "sched_setscheduler" if capabilities => {
            scheduler(a[1] as i32, obs);
            return;
        }
        "kill" | "tkill" | "rt_sigqueueinfo" if capabilities => {
            signal(n, name, a[0] as i32, a[1] as i32, obs);
            return;
        }
        "tgkill" | "rt_tgsigqueueinfo" if capabilities => {
            signal(n, name, a[1] as i32, a[2] as i32, obs);
            return;
        }
        _ => return,
    };
    let path_only = flags as i32 & libc::O_PATH != 0;
    // Asked before the call runs: whether it makes the file or finds it.
    let new_file = |p: &str| {
        matches!(name, "open" | "openat" | "openat2" | "creat" | "mknod" | "mknodat" | "symlink" | "symlinkat") && std::fs::symlink_metadata(p).is_err()
    };
    let full = path_event(l, n, dirfd, path, access, path_only, obs);
    if let Some(p) = full.as_deref().filter(|p| access == Access::Create && new_file(p)) {
        obs.made.insert(p.to_owned());
    }
    if flags as i32 & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL {
        obs.exclusive.extend(full.clone());
    }
    if let (Some(from), Some(to)) = (moved_from, full.clone()) {
        obs.moves.insert((from, to));
    }
    // An O_PATH open needs what a stat needs: search on the way, no read.
    dac(capabilities, n, if path_only { "newfstatat" } else { name }, full, access, obs);
}

/// Records the file behind the caller's descriptor `fd`.
fn fd_event(l: &Listener, n: &Notif, fd: i32, access: Access, obs: &mut Observations) {
    let Ok(target) = std::fs::read_link(format!("/proc/{}/fd/{fd}", n.tid)) else { return };
    let target = target.to_string_lossy();
    // (Not a file: "anon_inode:...", "/memfd:... (deleted)", "socket:[...]".)
    if !target.starts_with('/') || target.ends_with(" (deleted)") || !l.id_valid(n.id) {
        return;
    }
    obs.paths.entry(normalize(&target)).or_default().insert(access);
}

/// Records the path a call names; returns it (normalized), if read.
/// `path_only`: an O_PATH open, which of a directory is no use of it: a
/// walk toward what is under it, recorded by its own path if used. (glibc's
/// NSS module for systemd opens /run so on its way to /run/systemd/userdb;
/// where that is missing, the walk made all of /run readable in nsd's
/// learned declaration.) Landlock does not check such opens either.
fn path_event(l: &Listener, n: &Notif, dirfd: i64, ptr: u64, access: Access, path_only: bool, obs: &mut Observations) -> Option<String> {
    let raw = remote::read_cstr(n.tid, ptr, libc::PATH_MAX as usize).ok()?;
    if raw.is_empty() {
        return None; // AT_EMPTY_PATH: the fd itself, already recorded when it was opened
    }
    // A name that is not UTF-8 cannot be written in a declaration, and its
    // lossy form is another path: no program's file (opendmarc unlinks
    // bytes of memory it never set; the call fails with ENOENT).
    let Ok(rel) = String::from_utf8(raw) else { return None };
    let full = if rel.starts_with('/') {
        Some(rel)
    } else {
        // The base as the thread sees it, read from /proc before ID_VALID.
        let base = match dirfd as i32 {
            -100 => std::fs::read_link(format!("/proc/{}/cwd", n.tid)),
            fd => std::fs::read_link(format!("/proc/{}/fd/{fd}", n.tid)),
        };
        base.ok().map(|b| format!("{}/{rel}", b.display()))
    };
    if !l.id_valid(n.id) {
        return None;
    }
    let p = normalize(&full?);
    if !(path_only && Path::new(&p).is_dir()) {
        obs.paths.entry(p.clone()).or_default().insert(access);
    }
    Some(p)
}

/// The ids and capabilities of a thread at the time of its call, from
/// /proc/TID/status: what the kernel's permission checks use.
#[derive(Debug, Default, PartialEq)]
struct Creds {
    /// Real, effective and saved uid.
    uids: [u32; 3],
    fsuid: u32,
    fsgid: u32,
    groups: Vec<u32>,
    effective: u64,
    permitted: u64,
}

impl Creds {
    fn of(tid: u32) -> Option<Creds> {
        Creds::parse(&std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?)
    }

    fn parse(status: &str) -> Option<Creds> {
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        // "Uid:\treal\teffective\tsaved\tfs"
        let fs = |name: &str| field(name)?.split_whitespace().nth(3)?.parse().ok();
        let hex = |name: &str| u64::from_str_radix(field(name)?, 16).ok();
        let uid = |i: usize| field("Uid:")?.split_whitespace().nth(i)?.parse().ok();
        Some(Creds {
            uids: [uid(0)?, uid(1)?, uid(2)?],
            fsuid: fs("Uid:")?,
            fsgid: fs("Gid:")?,
            groups: field("Groups:").unwrap_or("").split_whitespace().filter_map(|g| g.parse().ok()).collect(),
            effective: hex("CapEff:")?,
            permitted: hex("CapPrm:")?,
        })
    }

    /// Whether the file's mode bits alone give these ids `want` (4 read,
    /// 2 write, 1 search/execute), as the kernel checks without a capability.
    fn allowed(&self, m: &std::fs::Metadata, want: u32) -> bool {
        capexec_decl::ids::mode_bits_for(m, self.fsuid, self.fsgid, &self.groups) & want == want
    }

    fn has(&self, cap: u32) -> bool {
        self.effective & (1 << cap) != 0
    }
}

const CAP_KILL: u32 = 5;

/// For a run with capabilities: a real-time or deadline policy needs
/// CAP_SYS_NICE; the others do not (stunnel4 sets SCHED_BATCH on itself,
/// which made its mined file keep CAP_SYS_NICE, and a root service with it
/// may take the host's CPUs with a real-time policy).
fn scheduler(policy: i32, obs: &mut Observations) {
    let name = match policy & !libc::SCHED_RESET_ON_FORK {
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        6 => "SCHED_DEADLINE",
        _ => return,
    };
    obs.capabilities.entry("CAP_SYS_NICE".into()).or_default().insert(format!("sched_setscheduler({name}): a real-time policy"));
}

/// For a run with capabilities: a signal to a process of another user
/// (sshd, root, ends its privilege-separated child, which runs as sshd)
/// needs CAP_KILL. The kernel lets the sender's real or effective uid
/// match the target's real or saved one; anything else used the
/// capability. The target is read through the caller's own /proc (the
/// run has a pid namespace of its own).
fn signal(n: &Notif, call: &str, pid: i32, sig: i32, obs: &mut Observations) {
    if pid <= 0 || sig == 0 {
        return;
    }
    let Some(c) = Creds::of(n.tid).filter(|c| c.has(CAP_KILL)) else { return };
    let Some(t) = std::fs::read_to_string(format!("/proc/{}/root/proc/{pid}/status", n.tid)).ok().and_then(|s| Creds::parse(&s)) else { return };
    if !kill_allowed(&c, &t) {
        let why = format!("{call}() to a process of uid {} from uid {}", t.uids[0], c.uids[1]);
        obs.capabilities.entry("CAP_KILL".into()).or_default().insert(why);
    }
}

/// The kernel's check for a signal without CAP_KILL (kill_ok_by_cred).
fn kill_allowed(from: &Creds, to: &Creds) -> bool {
    let [ruid, euid, _] = from.uids;
    let [t_ruid, _, t_suid] = to.uids;
    [ruid, euid].iter().any(|u| *u == t_ruid || *u == t_suid)
}

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_FOWNER: u32 = 3;

/// For a run with capabilities: a chmod of a file another uid owns needs
/// CAP_FOWNER. bird's `prepare-environment`, as root, gives /run/bird to
/// bird and then chmods it: its mined file did not keep the capability, and
/// the chmod, and so the start, failed. Read before the call runs.
fn fowner(n: &Notif, call: &str, path: &Path, obs: &mut Observations) {
    use std::os::unix::fs::MetadataExt;
    let Some(c) = Creds::of(n.tid).filter(|c| c.has(CAP_FOWNER)) else { return };
    let Ok(m) = std::fs::metadata(path) else { return };
    if m.uid() != c.fsuid {
        let why = format!("{call} {} (uid {}) by uid {}", path.display(), m.uid(), c.fsuid);
        obs.capabilities.entry("CAP_FOWNER".into()).or_default().insert(why);
    }
}

/// For a run with capabilities: if the caller's ids alone would not have
/// allowed this file access and it held the capability that overrides the
/// check, the run used that capability (DAC_READ_SEARCH to search a
/// directory or read a file, DAC_OVERRIDE to write or to create and remove
/// in a directory): chronyd, root, writes its pid file into /run/chrony,
/// which is its user's and 0700. Read before the call runs, so the files
/// are as the caller found them. Not for the run's private /tmp, /dev and
/// /proc, which the recorder does not see.
fn dac(capabilities: bool, n: &Notif, call: &str, path: Option<String>, access: Access, obs: &mut Observations) {
    let Some(path) = path.filter(|_| capabilities) else { return };
    if unjudged(Path::new(&path)) {
        return;
    }
    if matches!(call, "chmod" | "fchmodat" | "fchmodat2") {
        fowner(n, call, Path::new(&path), obs);
    }
    let Some(c) = Creds::of(n.tid).filter(|c| c.has(CAP_DAC_OVERRIDE) || c.has(CAP_DAC_READ_SEARCH)) else { return };
    if let Some((cap, why)) = dac_need(&c, call, Path::new(&path), access) {
        let name = if cap == CAP_DAC_OVERRIDE { "CAP_DAC_OVERRIDE" } else { "CAP_DAC_READ_SEARCH" };
        obs.capabilities.entry(name.to_owned()).or_default().insert(why);
    }
}

/// In the run's private /tmp, /dev and /proc, which the recorder does not
/// judge for capabilities (they are not the host's files).
fn unjudged(path: &Path) -> bool {
    ["/tmp", "/dev", "/proc"].iter().any(|p| path.starts_with(p))
}

/// The capability (and why) that `call` on `path` needs beyond `c`'s ids.
fn dac_need(c: &Creds, call: &str, path: &Path, access: Access) -> Option<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let owned = |m: &std::fs::Metadata| format!("uid {}, mode {:04o}", m.uid(), m.mode() & 0o7777);
    let opens = matches!(call, "open" | "openat" | "openat2" | "creat" | "truncate");
    // A change needs DAC_OVERRIDE, which covers searching too.
    let changes = !matches!(access, Access::Read | Access::Look) && (opens || matches!(access, Access::Create | Access::Remove));
    // Every directory on the way must be searchable.
    let parent = path.parent()?;
    for dir in parent.ancestors() {
        if let Ok(m) = std::fs::metadata(dir) {
            if !c.allowed(&m, 1) {
                let cap = if c.has(CAP_DAC_READ_SEARCH) && !changes { CAP_DAC_READ_SEARCH } else { CAP_DAC_OVERRIDE };
                return Some((cap, format!("{call} {}: search {} ({})", path.display(), dir.display(), owned(&m))));
            }
        }
    }
    let target = std::fs::metadata(path).ok();
    let (on, want) = match (access, &target) {
        // An open for reading, of a file (listing a directory too).
        (Access::Read, Some(m)) if opens => (m, 4),
        (Access::Write, Some(m)) if opens => (m, 2),
        (Access::Create, Some(m)) if opens => (m, 2),
        // Made or removed: the directory it is in changes.
        (Access::Create | Access::Remove, _) if !opens || target.is_none() => (&std::fs::metadata(parent).ok()?, 3),
        _ => return None,
    };
    if c.allowed(on, want) {
        return None;
    }
    let cap = if want == 4 && c.has(CAP_DAC_READ_SEARCH) { CAP_DAC_READ_SEARCH } else { CAP_DAC_OVERRIDE };
    let what = match want {
        4 => format!("read {}", path.display()),
        2 => format!("write {}", path.display()),
        _ => format!("{} {} in {}", if access == Access::Remove { "remove" } else { "create" }, path.display(), parent.display()),
    };
    let of = if want == 3 { parent } else { path };
    Some((cap, format!("{what} ({} {})", of.display(), owned(on))))
}

/// capset(): the permitted set it asks for is what the kernel refuses to
/// widen, so each capability in it must be kept. A call that leaves the set
/// as it is (the whole set of a run that has every capability) says nothing.
fn capset(l: &Listener, n: &Notif, obs: &mut Observations) {
    const V1: u32 = 0x1998_0330;
    let mut header = [0u8; 8];
    if remote::read_mem(n.tid, n.args[0], &mut header).ok() != Some(8) {
        return;
    }
    let version = u32::from_ne_bytes(header[..4].try_into().expect("4 bytes"));
    let pid = i32::from_ne_bytes(header[4..].try_into().expect("4 bytes"));
    if pid != 0 && pid as u32 != n.tid {
        return; // another process: the kernel refuses it anyway
    }
    // {effective, permitted, inheritable} u32 each, once (v1) or for the
    // low and high words (v2, v3).
    let words = if version == V1 { 1 } else { 2 };
    let mut data = [0u8; 24];
    let len = 12 * words;
    if remote::read_mem(n.tid, n.args[1], &mut data[..len]).ok() != Some(len) {
        return;
    }
    let word = |i: usize| u32::from_ne_bytes(data[i * 4..i * 4 + 4].try_into().expect("4 bytes")) as u64;
    let asked = word(1) | if words == 2 { word(4) << 32 } else { 0 };
    let Some(c) = Creds::of(n.tid) else { return };
    if !l.id_valid(n.id) || asked == c.permitted {
        return;
    }
    for cap in caps::all() {
        if asked & (1 << cap.index()) != 0 {
            obs.capabilities.entry(cap.to_string()).or_default().insert("capset(): kept in the permitted set".to_owned());
        }
    }
}

/// `.` and `..` resolved lexically (the run saw what the path named at the time).
fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn open_access(flags: u64) -> Access {
    let f = flags as i32;
    if f & libc::O_CREAT != 0 {
        Access::Create
    } else if f & libc::O_ACCMODE != libc::O_RDONLY || f & libc::O_TRUNC != 0 {
        Access::Write
    } else {
        Access::Read
    }
}

fn read_u64(tid: u32, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (remote::read_mem(tid, addr, &mut b).ok()? == 8).then(|| u64::from_ne_bytes(b))
}

/// A network call (see `Notif::net_op`): the socket it makes or each
/// address it names, worded as the broker words those it answers.
fn net_call(l: &Listener, n: &Notif, ctx: &Ctx, obs: &mut Observations) {
    let Some(op) = n.net_op() else { return };
    if op == "socket" {
        obs.net_call(n.process(), || n.comm(), op, capexec_decl::grants::socket_kind(n.args[0] as i32, n.args[1] as i32));
        return;
    }
    let addresses = n.addresses();
    if addresses.is_empty() && op != "send" {
        return;
    }
    // The socket's type decides tcp or udp: look at the thread's own fd.
    let sock = remote::pidfd_open(n.tid).ok().and_then(|p| remote::pidfd_getfd(&p, n.args[0] as i32).ok());
    let ty = sock.as_ref().and_then(sock_type);
    // A bind of a socket that has a port already fails (EINVAL), whatever
    // the address: kadmind's RPC layer tries a random reserved port on the
    // listener it bound to 749, and that port was granted. The port
    // getsockname shows is the socket's own unless a connect gave it (a
    // failed connect leaves it shown, though the kernel took it back).
    // (Looked at for connects and binds alone: sends are the many.)
    let cookie = || sock.as_ref().and_then(|s| capexec_sys::socket::cookie(std::os::fd::AsFd::as_fd(s)).ok());
    // A ping socket's echo requests (and its connect, which names where they
    // go): `icmp:ADDRESS`, for `[broker.net] ping`; not a datagram's port.
    // (Asked of datagram sockets only: sends are the many.)
    let protocol = sock
        .as_ref()
        .filter(|_| ty == Some(libc::SOCK_DGRAM))
        .and_then(|s| capexec_sys::socket::getsockopt_int(std::os::fd::AsFd::as_fd(s), libc::SOL_SOCKET, libc::SO_PROTOCOL).ok());
    if matches!(protocol, Some(libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6)) {
        let ips: Vec<std::net::IpAddr> = addresses
            .iter()
            .filter_map(|a| capexec_decl::grants::describe_sockaddr(a, true))
            .filter_map(|d| crate::compare::inet(&d).map(|(_, sa)| sa.ip()))
            .collect();
        if op != "bind" && l.id_valid(n.id) {
            for ip in ips {
                obs.net_call(n.process(), || n.comm(), "ping", format!("icmp:{}", capexec_decl::grants::AddrRange::exact(ip)));
            }
        }
        return;
    }
    if op == "connect" {
        ctx.connecting.borrow_mut().extend(cookie());
    }
    let has_port = || sock.as_ref().is_some_and(|s| capexec_sys::socket::local_port(std::os::fd::AsFd::as_fd(s)).is_ok_and(|port| port != 0));
    if op == "bind" && has_port() && cookie().is_some_and(|c| !ctx.connecting.borrow().contains(&c)) {
        return;
    }
    if ty == Some(libc::SOCK_DGRAM) {
        dns_queries(l, n, ctx, op, sock.as_ref(), &addresses, obs);
    }
    if addresses.is_empty() {
        return;
    }
    // A Unix socket's relative path is the caller's cwd's (postfix binds
    // private/smtp in its queue directory): read before ID_VALID, as paths are.
    let relative = |a: &String| a.strip_prefix("unix:").is_some_and(|p| !p.starts_with('/') && !p.starts_with('@'));
    let datagram = ty == Some(libc::SOCK_DGRAM);
    let described: Vec<String> = addresses.iter().filter_map(|a| capexec_decl::grants::describe_sockaddr(a, datagram)).collect();
    let cwd = described.iter().any(relative).then(|| std::fs::read_link(format!("/proc/{}/cwd", n.tid)).ok()).flatten();
    if !l.id_valid(n.id) {
        return;
    }
    // A datagram from a socket that has been receiving, to loopback: the
    // answer to a client of the workload (a DNS server's reply to dig's
    // port). The network guard lets answers to peers through; granted, it
    // would name a port the next client does not use.
    let answering = op == "send"
        && datagram
        && sock.as_ref().and_then(|s| capexec_sys::socket::cookie(std::os::fd::AsFd::as_fd(s)).ok()).is_some_and(|c| ctx.receiving.borrow().contains(&c));
    // Read from /proc once per call that names an address (a send on a
    // connected socket names none): the checks below and net_call want it.
    if described.is_empty() {
        return;
    }
    let process = n.process();
    for addr in described {
        let addr = match (&cwd, addr.strip_prefix("unix:")) {
            (Some(cwd), Some(p)) if relative(&addr) => format!("unix:{}", normalize(&format!("{}/{p}", cwd.display()))),
            _ => addr,
        };
        if answering && is_loopback(&addr) {
            obs.net_event(n.process(), || n.comm(), "answer", &addr);
            continue;
        }
        // (A stream socket bound on every address with a port the kernel
        // picks is the service's own too: see the broker's transparent
        // binds. varnish probes the kernel's TCP defaults so.)
        let own_kind = |ip: std::net::IpAddr| ip.is_loopback() || (op == "bind" && !datagram && ip.is_unspecified());
        let loopback_port = crate::compare::inet(&addr).filter(|(_, a)| own_kind(capexec_decl::grants::canonical(a.ip()))).map(|(_, a)| a.port());
        if let Some(port) = loopback_port {
            let mut local = ctx.local.borrow_mut();
            if op == "bind" && port == 0 {
                // (A stream socket's port is never talked to: see `own`.)
                if let Some(s) = sock.as_ref().filter(|_| datagram).and_then(|s| s.try_clone().ok()) {
                    local.bound(datagram, s);
                }
                obs.own_loopback.insert(addr.clone());
            } else if op != "bind" && local.own(datagram, port) {
                obs.own_loopback.insert(addr.clone());
            }
        }
        if let Some(tx) = ctx.bound.as_ref().filter(|_| op == "bind") {
            // The listener went away: nobody waits any more.
            let _ = tx.send(Bound { address: addr.clone(), datagram });
        }
        // An address bound before, at the start, is the service's own
        // listener bound again (varnish reopens its listening sockets
        // when its worker stops), not one picked for a session.
        // Go's servers call accept() on a listener at once (it returns
        // EAGAIN) and bind their next listener after it: alertmanager's web
        // port, bound after its cluster port's accept() and before any
        // client came, was taken for a session's and granted as every port.
        // A session's listener is bound by a process made for the session
        // (vsftpd's for its passive port): a process that bound listeners
        // at the start binds its own next ones (i2pd opens its proxies'
        // ports after its web console took the first connection).
        let serving = ctx.serving.as_ref().is_none_or(|s| s.load(std::sync::atomic::Ordering::Relaxed));
        let inet = addr.starts_with("tcp:") || addr.starts_with("udp:");
        if matches!(op, "bind" | "connect") && inet && ctx.polled.borrow().contains(&(process, n.args[0] as i32)) && in_epoll_set(n.tid, n.args[0] as i32) {
            obs.polled.insert(addr.clone());
        }
        if op == "bind" && !datagram {
            match ctx.accepting.get() && serving {
                true if !obs.binds.contains(&addr) && !ctx.start_binders.borrow().contains(&process) => {
                    obs.session_binds.insert(addr.clone());
                }
                true => {}
                false => {
                    ctx.start_binders.borrow_mut().insert(process);
                }
            }
        }
        if op == "bind" && datagram && !serving {
            obs.start_datagram_binds.insert(addr.clone());
        }
        obs.net_call(process, || n.comm(), op, addr);
    }
}

/// Records the names a datagram socket asks of a DNS server: a connect
/// marks the socket with its peer; what a send (addressed, or on a marked
/// socket: glibc's resolver connects, then sends A and AAAA queries with
/// one sendmmsg; dnsdist writes to its backends) carries that reads as a
/// query of class IN is one, to that address. Replies (a DNS server's own)
/// and anything else are left out.
fn dns_queries(l: &Listener, n: &Notif, ctx: &Ctx, op: &str, sock: Option<&OwnedFd>, addresses: &[Vec<u8>], obs: &mut Observations) {
    let server = |a: &Vec<u8>| capexec_decl::grants::describe_sockaddr(a, true).filter(|d| d.starts_with("udp:"));
    let cookie = || sock.and_then(|s| capexec_sys::socket::cookie(std::os::fd::AsFd::as_fd(s)).ok());
    match op {
        "connect" => {
            let Some(c) = cookie() else { return };
            match addresses.iter().find_map(server) {
                Some(to) => {
                    ctx.dns_fds.borrow_mut().insert(n.args[0] as i32);
                    ctx.dns.borrow_mut().insert(c, to)
                }
                None => ctx.dns.borrow_mut().remove(&c),
            };
        }
        "send" => {
            let to = match addresses.iter().find_map(server) {
                Some(to) => to,
                None if addresses.is_empty() => match cookie().and_then(|c| ctx.dns.borrow().get(&c).cloned()) {
                    Some(to) => to,
                    None => return,
                },
                None => return,
            };
            let names: Vec<String> =
                n.payloads(512).iter().filter_map(|p| capexec_decl::dns_query::parse_query(p).ok()).filter(|q| q.qclass == 1).map(|q| q.name).collect();
            if !names.is_empty() && l.id_valid(n.id) {
                obs.dns_queries.entry(to).or_default().extend(names);
            }
        }
        _ => {}
    }
}

/// Whether the thread's fd `fd` is the file one of its process's epoll
/// sets watches now (/proc/PID/fdinfo of each set lists its targets by fd
/// and inode): an fd added to a set once may since have been closed and its
/// number given to another socket (postfix's getaddrinfo probes got
/// numbers its event loop had watched before).
fn in_epoll_set(tid: u32, fd: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(format!("/proc/{tid}/fd/{fd}")).map(|m| m.ino()) else { return false };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{tid}/fd")) else { return false };
    let watches = |info: &str| {
        info.lines().filter_map(|l| l.strip_prefix("tfd:")).any(|l| {
            let mut f = l.split_whitespace();
            let target = f.next().and_then(|t| t.parse::<i32>().ok());
            let inode = f.find_map(|w| w.strip_prefix("ino:")).and_then(|i| u64::from_str_radix(i, 16).ok());
            target == Some(fd) && inode == Some(ino)
        })
    };
    fds.flatten().any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:[eventpoll]")
            && std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{}", e.file_name().to_string_lossy())).is_ok_and(|i| watches(&i))
    })
}

/// The cookie of the thread's fd `fd`, if it is a datagram socket.
fn datagram_cookie(n: &Notif, fd: i32) -> Option<u64> {
    let s = remote::pidfd_open(n.tid).ok().and_then(|p| remote::pidfd_getfd(&p, fd).ok())?;
    (sock_type(&s)? == libc::SOCK_DGRAM).then(|| capexec_sys::socket::cookie(std::os::fd::AsFd::as_fd(&s)).ok())?
}

/// `udp:127.0.0.1:53`, `udp:[::1]:53`: an address of the loopback.
fn is_loopback(addr: &str) -> bool {
    crate::compare::inet(addr).is_some_and(|(_, a)| capexec_decl::grants::canonical(a.ip()).is_loopback())
}

fn sock_type(s: &OwnedFd) -> Option<i32> {
    capexec_sys::socket::getsockopt_int(std::os::fd::AsFd::as_fd(s), libc::SOL_SOCKET, libc::SO_TYPE).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_told_apart() {
        for a in ["udp:127.0.0.1:38554", "udp:[::1]:53", "udp:[::ffff:127.0.0.1]:9", "tcp:127.0.0.2:80"] {
            assert!(is_loopback(a), "{a}");
        }
        for a in ["udp:192.0.2.1:53", "udp:[2001:db8::1]:53", "unix:/run/x", "udp:0.0.0.0:53"] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize("/etc/./nginx/../hosts"), "/etc/hosts");
        assert_eq!(normalize("/a//b/"), "/a/b");
        assert_eq!(normalize("/.."), "/");
    }

    #[test]
    fn open_flags_map_to_accesses() {
        assert_eq!(open_access(libc::O_RDONLY as u64), Access::Read);
        assert_eq!(open_access((libc::O_WRONLY | libc::O_APPEND) as u64), Access::Write);
        assert_eq!(open_access((libc::O_RDWR | libc::O_CREAT) as u64), Access::Create);
        assert_eq!(open_access((libc::O_RDONLY | libc::O_TRUNC) as u64), Access::Write);
    }

    #[test]
    fn credentials_come_from_the_status_file() {
        let status = "Name:\tchronyd\nUid:\t0\t0\t0\t105\nGid:\t0\t0\t0\t107\nGroups:\t4 107 \nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000000404\n";
        let c = Creds::parse(status).unwrap();
        assert_eq!(c, Creds { uids: [0, 0, 0], fsuid: 105, fsgid: 107, groups: vec![4, 107], effective: 0x404, permitted: 0x1ff_ffff_ffff });
        assert!(c.has(CAP_DAC_READ_SEARCH) && !c.has(CAP_DAC_OVERRIDE));
        assert_eq!(Creds::parse("Uid:\t0\n"), None);
    }

    #[test]
    fn signals_to_another_user_need_cap_kill() {
        let with = |uids: [u32; 3]| Creds { uids, ..Creds::default() };
        // sshd (root) and its privsep child (sshd's uid 102).
        assert!(!kill_allowed(&with([0, 0, 0]), &with([102, 102, 102])));
        // A daemon that switched but kept its saved uid, signalled by root.
        assert!(kill_allowed(&with([0, 0, 0]), &with([102, 102, 0])));
        // Same user; the sender's real uid matching counts too.
        assert!(kill_allowed(&with([102, 102, 102]), &with([102, 102, 102])));
        assert!(kill_allowed(&with([102, 0, 0]), &with([102, 102, 102])));
    }

    /// chronyd's case, on a directory of this test's making: a process with
    /// ids other than the directory's owner searches, reads, writes and
    /// creates in a 0700 directory only with a capability, and which one
    /// depends on what it does; its owner needs none.
    #[test]
    fn file_accesses_beyond_the_ids_name_the_capability_they_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("capexec-dac-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pid"), "1\n").unwrap();
        std::fs::set_permissions(dir.join("pid"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&dir).unwrap());
        let other = Creds { uids: [0; 3], fsuid: owner + 4242, fsgid: 4242, groups: vec![], effective: 0b110, permitted: 0b110 };
        let new = dir.join("new");
        let need = |c: &Creds, call, p: &Path, a| dac_need(c, call, p, a).map(|(cap, _)| cap);
        assert_eq!(need(&other, "openat", &new, Access::Create), Some(CAP_DAC_OVERRIDE));
        assert_eq!(need(&other, "openat", &dir.join("pid"), Access::Read), Some(CAP_DAC_READ_SEARCH));
        assert_eq!(need(&other, "newfstatat", &dir.join("pid"), Access::Look), Some(CAP_DAC_READ_SEARCH));
        assert_eq!(need(&other, "unlinkat", &dir.join("pid"), Access::Remove), Some(CAP_DAC_OVERRIDE));
        // Reading a file it may not read, in a directory it may search.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(need(&other, "openat", &dir.join("pid"), Access::Read), Some(CAP_DAC_READ_SEARCH));
        assert_eq!(need(&other, "openat", &dir.join("pid"), Access::Write), Some(CAP_DAC_OVERRIDE));
        assert_eq!(need(&other, "newfstatat", &dir.join("pid"), Access::Look), None, "a stat needs only the search");
        let (why_cap, why) = dac_need(&other, "mkdirat", &new, Access::Create).unwrap();
        assert_eq!(why_cap, CAP_DAC_OVERRIDE);
        assert!(why.contains("mode 0711"), "{why}");
        let me = Creds { fsuid: owner, ..other };
        for (call, p, a) in [("openat", &new, Access::Create), ("openat", &dir.join("pid"), Access::Write), ("unlinkat", &dir.join("pid"), Access::Remove)] {
            assert_eq!(need(&me, call, p, a), None, "{call} {}", p.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
