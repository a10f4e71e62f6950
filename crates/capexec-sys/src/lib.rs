//! capexec's bottom crate: thin wrappers over the system calls that nix does
//! not cover (or covers in a way that allocates), and every mechanism the
//! other crates would otherwise write again: passing fds over sockets
//! (SCM_RIGHTS), pidfds, pipes, mount attributes, cgroup BPF attachment. This
//! is the one place for most of the project's `unsafe`; it depends on libc
//! only, so that capexec-client (a library inside services) can use it too.

pub mod clock;
pub mod notify;
pub mod process;
pub mod socket;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A raw syscall's return value: the value, or errno as an error.
pub fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `clone(2)` used like `fork(2)` but with namespace flags, so that the child is
/// created directly inside new namespaces (and is pid 1 of a new pid namespace).
/// Returns `(0, None)` in the child and the child's pid and a pidfd of it
/// (CLONE_PIDFD: no window in which the pid could be reaped and reused) in the
/// parent. With CLONE_PARENT in `flags` the child is a sibling of the caller.
///
/// Fails, cloning nothing, unless the caller is single-threaded (see
/// [`require_single_threaded`]; `what` names the clone in that error): the
/// child gets a copy of the address space with only the calling thread, as
/// with fork(2), and then runs ordinary (allocating) setup code.
pub fn clone_fork(what: &str, flags: libc::c_int) -> io::Result<(libc::pid_t, Option<OwnedFd>)> {
    require_single_threaded(what)?;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: raw clone with a NULL stack behaves like fork (copy-on-write
    // stack); the only pointer is parent_tid, where CLONE_PIDFD stores the
    // pidfd: a live local. The process has one thread (checked just above;
    // only this thread could have started another since), so the child
    // inherits no lock held by a thread that does not exist in it.
    let rc = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong, 0usize, &mut pidfd as *mut libc::c_int, 0usize, 0usize)
    };
    let pid = check(rc)? as libc::pid_t;
    // SAFETY: in the parent, the kernel stored a new pidfd that nobody else owns.
    Ok((pid, (pid != 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) })))
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)`: sets attributes on a mount (and, if `recursive`, on every
/// mount below it) without having to repeat the flags the kernel locked — which
/// a classic `MS_REMOUNT` inside a user namespace would have to.
pub fn mount_setattr(path: &CStr, recursive: bool, set: u64) -> io::Result<()> {
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is a valid NUL-terminated string and `attr` a valid struct of
    // the size passed; the kernel only reads both during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc).map(drop)
}

/// [`mount_setattr`] on the mount `fd` refers to (a detached copy from
/// open_tree, say).
pub fn mount_setattr_fd(fd: &OwnedFd, recursive: bool, set: u64) -> io::Result<()> {
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: an empty NUL-terminated path and a valid struct of the size
    // passed; the kernel only reads both during the call.
    let rc = unsafe {
        libc::syscall(libc::SYS_mount_setattr, fd.as_raw_fd(), c"".as_ptr(), flags as libc::c_uint, &attr as *const MountAttr, std::mem::size_of::<MountAttr>())
    };
    check(rc).map(drop)
}

/// Fails unless this process has one thread: forking a process with more
/// leaves the child with locks other threads held (the allocator's), so
/// ordinary code in the child could deadlock.
///
/// One syscall: unshare(CLONE_VM) is a no-op for a process whose memory
/// nobody shares, and EINVAL for one with other threads (unshare(2)). Where
/// a seccomp filter refuses unshare, /proc/self/status's `Threads:` decides.
pub fn require_single_threaded(what: &str) -> io::Result<()> {
    let multi = || io::Error::other(format!("internal: capexec must be single-threaded to {what}"));
    // SAFETY: unshare takes an integer; CLONE_VM alone changes nothing in a
    // single-threaded process and fails in any other.
    match check(unsafe { libc::unshare(libc::CLONE_VM) } as libc::c_long) {
        Ok(_) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Err(multi()),
        Err(_) => {}
    }
    // One read of a page: read_to_string would grow its buffer from 32 bytes.
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let n = std::fs::File::open("/proc/self/status")?.read(&mut buf)?;
    let status = String::from_utf8_lossy(&buf[..n]);
    match status.lines().any(|l| l.split_whitespace().eq(["Threads:", "1"])) {
        true => Ok(()),
        false => Err(multi()),
    }
}

/// A directory fd for `path` that is the root of a detached copy of the
/// mount tree at `path` (open_tree with OPEN_TREE_CLONE | AT_RECURSIVE, then
/// reopened as an ordinary directory, since an O_PATH fd cannot be read).
/// `..` at the root of a detached mount stays there, and so does
/// `/proc/self/fd/N/..`: the fd reaches exactly the subtree, with every mount
/// inside it (masks, read-only binds) carried along.
pub fn detached_dir(path: &CStr) -> io::Result<OwnedFd> {
    let tree = clone_mount(path, true)?;
    // SAFETY: "." is a valid string; the result is a new fd we own. Closing
    // `tree` afterwards dissolves the copy's place in its anonymous namespace
    // but keeps it, connected and with its submounts, for as long as the
    // reopened fd refers to it.
    let dir = check(unsafe { libc::openat(tree.as_raw_fd(), c".".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: openat returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dir as RawFd) })
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// A user namespace whose only mappings are `uid.0` → `uid.1` and `gid.0` →
/// `gid.1` (as uid_map writes them: inside, then outside), for an idmapped
/// mount ([`idmap_tree`]): nothing runs in it. Needs CAP_SETUID and
/// CAP_SETGID, and a single-threaded caller (it clones a child that only
/// waits, for the kernel makes a user namespace only for a process).
pub fn idmap_userns(uid: (u32, u32), gid: (u32, u32)) -> io::Result<OwnedFd> {
    let (rd, wr) = pipe2(libc::O_CLOEXEC)?;
    let (pid, _pidfd) = clone_fork("make a user namespace for an idmapped mount", libc::CLONE_NEWUSER)?;
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: closing this process's copy of the write end (so the read
        // ends when the parent closes its own), a read into a valid byte,
        // _exit without the parent's atexit handlers.
        unsafe {
            libc::close(wr.as_raw_fd());
            libc::read(rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0)
        }
    }
    drop(rd);
    let made = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), format!("{} {} 1\n", uid.0, uid.1))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), format!("{} {} 1\n", gid.0, gid.1))?;
        std::fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from)
    })();
    drop(wr);
    let mut status = 0;
    // SAFETY: reaping our own child, which ends as soon as the pipe closed.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    made
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at
/// `path` (relative to `dir`), close-on-exec, with `flags` added.
fn open_tree_clone(dir: RawFd, path: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | flags;
    // SAFETY: `path` is a valid NUL-terminated string the kernel reads during the call.
    let tree = check(unsafe { libc::syscall(libc::SYS_open_tree, dir, path.as_ptr(), flags) })?;
    // SAFETY: open_tree returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as RawFd) })
}

/// A detached copy of the mount tree at `path`, with every mount below it
/// (open_tree OPEN_TREE_CLONE | AT_RECURSIVE), not following a symlink at
/// `path` itself: for [`idmap_tree`] and [`move_mount_tree`].
pub fn clone_tree(path: &CStr) -> io::Result<OwnedFd> {
    open_tree_clone(libc::AT_FDCWD, path, libc::AT_RECURSIVE as libc::c_uint | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint)
}

/// A detached copy of the mount at `path` (open_tree OPEN_TREE_CLONE),
/// following a symlink at `path`; with `recursive`, every mount below it too.
pub fn clone_mount(path: &CStr, recursive: bool) -> io::Result<OwnedFd> {
    open_tree_clone(libc::AT_FDCWD, path, if recursive { libc::AT_RECURSIVE as libc::c_uint } else { 0 })
}

/// A detached bind mount of the file `fd` refers to itself (open_tree
/// OPEN_TREE_CLONE | AT_EMPTY_PATH): attached with [`move_mount_tree`], it
/// shows that very file, whatever its path leads to by then.
pub fn clone_file_tree(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    open_tree_clone(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH as libc::c_uint)
}

/// Makes the detached tree `tree` (from [`clone_tree`]) an idmapped mount:
/// its file owners are seen through `userns`'s mappings (mount_setattr(2)
/// MOUNT_ATTR_IDMAP). Needs CAP_SYS_ADMIN in the user namespace the
/// filesystem was mounted in, and a filesystem that supports idmapped mounts.
pub fn idmap_tree(tree: &OwnedFd, userns: &OwnedFd) -> io::Result<()> {
    idmap_at(tree.as_fd(), userns, libc::AT_RECURSIVE)
}

/// [`idmap_tree`] of the tree's root mount alone, not of those below it: a
/// tree holding a mount whose filesystem cannot be idmapped (nsfs, a
/// `/run/netns/NAME` of `ip netns`) fails whole (EINVAL). The kernel maps a
/// mount below the root of a detached tree only with the root (EINVAL alone).
pub fn idmap_root(tree: &OwnedFd, userns: &OwnedFd) -> io::Result<()> {
    idmap_at(tree.as_fd(), userns, 0)
}

fn idmap_at(mount: BorrowedFd<'_>, userns: &OwnedFd, recursive: libc::c_int) -> io::Result<()> {
    let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    let flags = libc::AT_EMPTY_PATH | recursive;
    // SAFETY: an empty NUL-terminated path, a valid struct of the size passed,
    // both read by the kernel during the call only.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// A new, detached proc filesystem of this process's pid namespace with
/// `options` (fsconfig string keys and values, `subset=pid`, `hidepid=...`),
/// nosuid, nodev, noexec (fsopen, fsconfig, fsmount): made here, in this
/// process's user namespace, and attached with [`move_mount_tree`] by a
/// process in a user namespace that could not mount it (a procfs needs
/// CAP_SYS_ADMIN over the pid namespace's user namespace).
pub fn proc_tree(options: &[(&CStr, &CStr)]) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: a valid NUL-terminated string, read during the call only.
    let fs = check(unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen returned a new fd that nobody else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    for (key, value) in options {
        // SAFETY: two valid NUL-terminated strings, read during the call only.
        check(unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr(), 0) })?;
    }
    // SAFETY: a command without pointers, on our fs context.
    check(unsafe {
        libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, std::ptr::null::<libc::c_char>(), std::ptr::null::<libc::c_void>(), 0)
    })?;
    let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // SAFETY: integer arguments, on our fs context.
    let mnt = check(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs as libc::c_uint) })?;
    // SAFETY: fsmount returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as RawFd) })
}

/// Attaches the detached mount tree `tree` (from open_tree) at `dst`.
pub fn move_mount_tree(tree: RawFd, dst: &CStr) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    // SAFETY: two valid NUL-terminated strings, read during the call only.
    check(unsafe { libc::syscall(libc::SYS_move_mount, tree, c"".as_ptr(), libc::AT_FDCWD, dst.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH) }).map(drop)
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: marks every fd from `first` up
/// close-on-exec, so exec drops them while a setup error can still be reported.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; affects only this process's fd table.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    check(rc).map(drop)
}

/// Closes every fd but those in `keep` (in ascending order). Allocates
/// nothing: for a process whose filter allows no brk or mmap.
pub fn close_all_but(keep: &[RawFd]) -> io::Result<()> {
    debug_assert!(keep.windows(2).all(|w| w[0] < w[1]), "ascending");
    let mut first = 0u32;
    for &k in keep {
        let k = k as u32;
        if k > first {
            // SAFETY: plain integer arguments; the caller keeps the fds it
            // uses again in `keep`, and owns none in the ranges closed.
            check(unsafe { libc::syscall(libc::SYS_close_range, first, k - 1, 0u32) })?;
        }
        first = k + 1;
    }
    close_from(first)
}

/// Closes every fd from `first` up.
pub fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; the caller owns no fd objects above `first`
    // that it will use again (only called right before a process's final loop).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    check(rc).map(drop)
}

pub const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
pub const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
pub const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
pub const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
pub const SECBIT_KEEP_CAPS: libc::c_ulong = 1 << 4;
pub const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
pub const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
pub const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// `prctl(option, arg2, 0, 0, 0)` for the integer-only options used here.
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: only called with options whose second argument is an integer
    // (PR_SET_SECUREBITS, PR_CAPBSET_DROP, PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS,
    // PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_GET_SECUREBITS, PR_SET_MDWE); no
    // pointers, and the unused arguments are 0 as PR_SET_MDWE requires.
    let rc = unsafe { libc::prctl(option, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 layout), for
/// [`default_signals`].
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Every signal's disposition to its default, but `ignored`, set to be
/// ignored; what exec keeps of them is what a program starts with. By the
/// raw syscall: glibc's signal() and sigaction() refuse 32 and 33, which it
/// keeps for itself, and a caller that ignored them would pass that on.
pub fn default_signals(ignored: &[libc::c_int]) {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let handler = if ignored.contains(&sig) { libc::SIG_IGN } else { libc::SIG_DFL };
        let act = KernelSigaction { handler, flags: 0, restorer: 0, mask: 0 };
        // SAFETY: `act` is a valid kernel sigaction that lives through the
        // call and names no handler code (SIG_DFL or SIG_IGN), so no
        // restorer is needed; no old action is asked for; 8 is the size of
        // the kernel's signal set.
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, &act as *const KernelSigaction, std::ptr::null_mut::<KernelSigaction>(), 8usize) };
    }
}

/// SIGPIPE to its default: a write to a pipe whose reader went away ends
/// the process quietly, as with other command-line tools, where Rust's
/// runtime ignores it and `println!` then panics on EPIPE.
pub fn default_sigpipe() {
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `cmd`'s program starts with the file mode creation mask `mask`, set in
/// the child between fork and exec: the caller's own mask, shared by all
/// its threads, stays as it is.
pub fn umask_at_exec(cmd: &mut std::process::Command, mask: u32) {
    let mode = (mask & 0o777) as libc::mode_t;
    // SAFETY: the hook runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: umask(2) is one, and the closure
    // allocates nothing and takes no lock.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            libc::umask(mode);
            Ok(())
        })
    };
}

/// Brings the loopback interface up in the current network namespace and,
/// with `extra`, gives it that address (a /32, labelled `lo:capexec`) beside
/// 127.0.0.1.
pub fn loopback_up(extra: Option<std::net::Ipv4Addr>) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket() takes integer arguments and returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket() and is owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let request = |name: &[u8], req: libc::Ioctl, fill: &dyn Fn(&mut libc::ifreq)| -> io::Result<libc::ifreq> {
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(name.iter().chain(&[0])) {
            *d = *s as libc::c_char;
        }
        fill(&mut ifr);
        // SAFETY: `sock` is a valid socket and `ifr` a valid ifreq that the
        // kernel reads (and for SIOCGIFFLAGS writes) during the call.
        match unsafe { libc::ioctl(sock.as_raw_fd(), req, &mut ifr) } {
            0.. => Ok(ifr),
            _ => Err(io::Error::last_os_error()),
        }
    };
    let flags = request(b"lo", libc::SIOCGIFFLAGS, &|_| {})?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let up = unsafe { flags.ifr_ifru.ifru_flags } | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    request(b"lo", libc::SIOCSIFFLAGS, &|ifr| ifr.ifr_ifru.ifru_flags = up)?;
    if let Some(addr) = extra {
        let sin = |a: std::net::Ipv4Addr| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(a).to_be() },
            sin_zero: [0; 8],
        };
        let set = |ifr: &mut libc::ifreq, a: std::net::Ipv4Addr| {
            // SAFETY: a sockaddr_in is the size of the union's sockaddr, which
            // is what SIOCSIFADDR and SIOCSIFNETMASK read as one; the union
            // holds pointers, so it is aligned for sockaddr_in.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ifr.ifr_ifru.ifru_addr).cast::<libc::sockaddr_in>(), sin(a)) }
        };
        // The kernel makes a new address for a label that has none.
        request(b"lo:capexec", libc::SIOCSIFADDR, &|ifr| set(ifr, addr))?;
        request(b"lo:capexec", libc::SIOCSIFNETMASK, &|ifr| set(ifr, std::net::Ipv4Addr::BROADCAST))?;
    }
    Ok(())
}

/// A UDP socket bound to 127.0.0.1:53 in the current network namespace: the
/// broker's stub resolver answers on it. Port 53 needs CAP_NET_BIND_SERVICE in
/// the namespace's user namespace, which init still has at this point.
pub fn dns_stub_socket() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket() takes integer arguments and returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that nobody else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 53u16.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: the kernel reads one sockaddr_in of the given size.
    if unsafe { libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as u32) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// An argument or environment list for [`execve`]: the strings and the
/// NULL-terminated array of pointers into them the kernel reads, built
/// once, so that a child can try several paths without building it again.
pub struct ExecList {
    _strings: Vec<std::ffi::CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl ExecList {
    pub fn new(strings: Vec<std::ffi::CString>) -> ExecList {
        // The pointers lead into the CStrings' heap buffers, which moving
        // the Vec into the struct does not move.
        let ptrs = strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        ExecList { _strings: strings, ptrs }
    }
}

/// `execve(2)`: returns only on error, with that error.
pub fn execve(path: &CStr, argv: &ExecList, envp: &ExecList) -> io::Error {
    // SAFETY: both lists are NULL-terminated arrays of pointers into
    // NUL-terminated strings they own, alive for the call (ExecList::new).
    unsafe { libc::execve(path.as_ptr(), argv.ptrs.as_ptr(), envp.ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// seccomp(SECCOMP_SET_MODE_FILTER, `flags`, `prog`) for the calling
/// thread: the kernel's answer (a listener fd with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0). Needs no_new_privs or
/// CAP_SYS_ADMIN.
pub fn seccomp_set_filter(prog: &[libc::sock_filter], flags: libc::c_ulong) -> io::Result<libc::c_long> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog { len, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: the kernel copies `fprog` and the instructions it points to
    // during the call; both outlive it, and neither is written.
    check(unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog) })
}

/// Installs `prog` as [`seccomp_set_filter`] does with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER: the user-notification listener,
/// close-on-exec.
pub fn seccomp_set_filter_listener(prog: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    let fd = seccomp_set_filter(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    // SAFETY: the kernel just returned this new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether this process may make a user namespace, tried for real in a
/// throwaway child: sysctls alone do not tell (Debian's
/// kernel.unprivileged_userns_clone, AppArmor's restrictions, ...).
pub fn user_namespaces_work() -> bool {
    // SAFETY: the child calls only unshare and _exit, both async-signal-safe,
    // so it is sound whatever other threads held at the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        let ok = unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0;
        process::exit_now(if ok { 0 } else { 1 });
    }
    pid > 0 && matches!(process::wait_child(pid, true), Ok(Some(status)) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

/// getaddrinfo(3) of `name` for `family` (AF_INET, AF_INET6 or AF_UNSPEC),
/// stream sockets: the addresses in the resolver's order, each once; the
/// EAI_* code on failure.
pub fn host_addresses(name: &CStr, family: i32) -> Result<Vec<std::net::IpAddr>, i32> {
    // SAFETY: addrinfo is plain data; zeroed is "no hints" except those set below.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = family;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: a valid C string and hints; on success res is a list freed below.
    let rc = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 {
        return Err(rc);
    }
    let mut out = Vec::new();
    let mut p = res;
    while !p.is_null() {
        // SAFETY: walking the list getaddrinfo returned; each ai_addr has the
        // length and family the entry states, read unaligned.
        unsafe {
            let ai = &*p;
            let ip: Option<std::net::IpAddr> = match ai.ai_family {
                libc::AF_INET => Some(std::net::Ipv4Addr::from(u32::from_be((ai.ai_addr as *const libc::sockaddr_in).read_unaligned().sin_addr.s_addr)).into()),
                libc::AF_INET6 => Some(std::net::Ipv6Addr::from((ai.ai_addr as *const libc::sockaddr_in6).read_unaligned().sin6_addr.s6_addr).into()),
                _ => None,
            };
            if let Some(ip) = ip.filter(|ip| !out.contains(ip)) {
                out.push(ip);
            }
            p = ai.ai_next;
        }
    }
    // SAFETY: the list of the successful getaddrinfo above, freed once.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

/// Whether the calling thread may run on more than one CPU.
pub fn more_than_one_cpu() -> bool {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 && libc::CPU_COUNT(&set) > 1
    }
}

/// SIGCHLD to SIG_IGN: the kernel reaps this process's children, and
/// nobody waits for them.
pub fn ignore_children() -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler code.
    match unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) } {
        libc::SIG_ERR => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// The descriptors systemd's socket activation passed (sd_listen_fds(3)):
/// `n` of them from fd 3, each checked to be open, made close-on-exec and
/// owned by the caller. Only the first call takes them; any later one is
/// EALREADY, so that no descriptor gets two owners.
pub fn take_listen_fds(n: i32) -> io::Result<Vec<OwnedFd>> {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    const FIRST: RawFd = 3;
    if TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(io::Error::from_raw_os_error(libc::EALREADY));
    }
    let mut fds = Vec::new();
    for fd in FIRST..FIRST + n {
        // SAFETY: F_SETFD takes integers; EBADF for a number not open.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } as libc::c_long)
            .map_err(|e| io::Error::new(e.kind(), format!("fd {fd} of LISTEN_FDS={n} is not open: {e}")))?;
        // SAFETY: systemd passed fds 3..3+n to this process for it to own
        // (sd_listen_fds), and the flag above makes this the only taker.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}

/// The Landlock ABI version the kernel offers (0 when Landlock is unavailable).
pub fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the kernel ignores the (NULL, 0) attr arguments
    // and returns the ABI number; nothing is created.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, LANDLOCK_CREATE_RULESET_VERSION) };
    rc.max(0)
}

/// `lsm_list_modules(2)` (Linux 6.8+): the ids of the active LSMs.
pub fn lsm_list_modules() -> io::Result<Vec<u64>> {
    const SYS_LSM_LIST_MODULES: libc::c_long = 461;
    let mut ids = [0u64; 32];
    let mut size: u32 = std::mem::size_of_val(&ids) as u32;
    // SAFETY: `ids` has `size` bytes of writable memory and `size` is a valid u32
    // the kernel updates; both outlive the call.
    let rc = unsafe { libc::syscall(SYS_LSM_LIST_MODULES, ids.as_mut_ptr(), &mut size as *mut u32, 0u32) };
    let n = check(rc)? as usize;
    Ok(ids[..n.min(ids.len())].to_vec())
}

/// Whether seccomp filters can be installed: asks the kernel whether it knows
/// SECCOMP_RET_ERRNO (fails with ENOSYS/EINVAL where seccomp is missing or blocked).
pub fn seccomp_available() -> io::Result<()> {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;
    let action: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
                                   // SAFETY: the kernel reads one u32 from a valid pointer during the call.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0u32, &action as *const u32) };
    check(rc).map(drop)
}

/// PIDFD_THREAD (Linux 6.9): a pidfd for one thread, not only a thread-group leader.
pub const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// The permitted set of the file capabilities of `path` (its
/// `security.capability` attribute, following a symlink as exec does), as a
/// mask of capability numbers; `None` where it has none.
pub fn file_capabilities(path: &CStr) -> io::Result<Option<u64>> {
    // struct vfs_cap_data: magic_etc, then {permitted, inheritable} for the
    // low and the high 32 capabilities, then (revision 3) the root id.
    let mut buf = [0u8; 24];
    // SAFETY: both names are NUL-terminated and read during the call; the
    // kernel writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getxattr(path.as_ptr(), c"security.capability".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let Ok(n) = usize::try_from(n) else {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODATA) { Ok(None) } else { Err(e) };
    };
    let word = |at: usize| buf.get(at..at + 4).filter(|_| at + 4 <= n).map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    Ok(Some(u64::from(word(4)) | u64::from(word(12)) << 32).filter(|_| n >= 12))
}

/// `pidfd_open(pid, flags)`: a pidfd for `pid` (close-on-exec), which polls
/// readable once the process exited and cannot name a reused pid.
pub fn pidfd_open(pid: libc::pid_t, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) })? as RawFd;
    // SAFETY: the kernel returned this fd just now; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SO_PEERPIDFD (Linux 6.5), the generic value (x86 and arm use it).
const SO_PEERPIDFD: libc::c_int = 77;

/// A pidfd for the process that connected the Unix socket `sock`, taken at
/// its connect: unlike SO_PEERCRED's pid, it cannot come to name another
/// process once that one has exited and its pid is reused. ENOPROTOOPT
/// before Linux 6.5.
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `fd`, an int of ours.
    check(unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, SO_PEERPIDFD, (&mut fd as *mut libc::c_int).cast(), &mut len) }.into())?;
    // SAFETY: the kernel installed this fd for us just now; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The pid `pidfd` names, as this process's pid namespace sees it (the
/// `Pid:` line of its fdinfo); None once the process has exited (-1) or
/// where it has no pid in this namespace (0). While it answers Some, the
/// process lives, so its pid names no other.
pub fn pidfd_pid(pidfd: RawFd) -> io::Result<Option<libc::pid_t>> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{pidfd}"))?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<libc::pid_t>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Pid: line in the fdinfo of a pidfd"))?;
    Ok((pid > 0).then_some(pid))
}

/// A new pseudo-terminal of the devpts instance `ptmx` leads to: its master
/// and its terminal side, opened through the master (TIOCGPTPEER), so that
/// no path lookup can lead to another instance's. Both close-on-exec.
pub fn open_pty(ptmx: &CStr) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: a NUL-terminated path and flags; returns a new fd or -1.
    let master = check(unsafe { libc::open(ptmx.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) }.into())? as RawFd;
    // SAFETY: the kernel returned this fd just now; nobody else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, valid for the call.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) }.into())?;
    // SAFETY: TIOCGPTPEER takes open flags by value; returns a new fd or -1.
    let peer = check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) }.into())? as RawFd;
    // SAFETY: as for the master.
    Ok((master, unsafe { OwnedFd::from_raw_fd(peer) }))
}

/// The number of the pseudo-terminal whose master is `master` (TIOCGPTN):
/// its terminal side is /dev/pts/N of its devpts instance.
pub fn pty_number(master: BorrowedFd<'_>) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, valid for the call.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) }.into())?;
    Ok(n)
}

/// Makes the terminal `fd` the controlling terminal of this process's
/// session, which must have none (TIOCSCTTY, without stealing it).
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int by value.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }.into()).map(|_| ())
}

/// A copy of fd `target` of process `pid` (pidfd_getfd; needs ptrace access).
pub fn pidfd_getfd_of(pid: libc::pid_t, target: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    pidfd_getfd(&pidfd_open(pid, 0)?, target)
}

/// A duplicate of fd `target` of the process `pidfd` names (same open file
/// description, close-on-exec).
pub fn pidfd_getfd(pidfd: &std::os::fd::OwnedFd, target: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_getfd takes integers and returns a new fd or -1.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, std::os::fd::AsRawFd::as_raw_fd(pidfd), target, 0) })? as RawFd;
    // SAFETY: on success the kernel returned a new fd that nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// openat2's RESOLVE_* flags (linux/openat2.h).
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `struct open_how` (linux/openat2.h); libc's is non-exhaustive.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, {flags, mode, resolve})`: `path` opened from the
/// directory `dir`, its lookup bounded by `resolve` (RESOLVE_*).
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: libc::c_int, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow { flags: flags as u64, mode: u64::from(mode), resolve };
    // SAFETY: openat2 reads the NUL-terminated path and the open_how of the given
    // size during the call; both outlive it.
    let rc = check(unsafe { libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), path.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>()) })?;
    // SAFETY: openat2 returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// `setns(fd, flags)`: enters the namespaces `flags` (CLONE_NEW*) of the
/// process a pidfd names, all at once, or the one namespace an nsfs fd
/// (/proc/PID/ns/X, a bind mount of one) is.
pub fn setns(fd: RawFd, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: setns takes two integers; an fd that is neither kind is EINVAL.
    check(unsafe { libc::syscall(libc::SYS_setns, fd, flags) }).map(drop)
}

/// At most this many fds in one message (capexec's messages carry up to 4).
pub const MAX_FDS: usize = 8;

/// Control buffer space for [`MAX_FDS`] fds and one `ucred`, 8-byte aligned.
type Control = [u64; 16];

/// Sends `data` with `fds` (SCM_RIGHTS, none when empty) in one message on
/// the socket `sock`, with `flags` (MSG_NOSIGNAL, MSG_DONTWAIT, ...).
pub fn send_fds(sock: RawFd, data: &[u8], fds: &[RawFd], flags: libc::c_int) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut control: Control = [0; 16];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        // SAFETY: one SCM_RIGHTS header with at most MAX_FDS ints fits the
        // control buffer (CMSG_SPACE(32) = 48 of its 128 bytes); the libc
        // macros place the header and its data inside it.
        unsafe {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), bytes as usize);
        }
    }
    // SAFETY: `msg` points at `iov`, `data` and `control`, all alive for the call.
    let n = unsafe { libc::sendmsg(sock, &msg, flags) };
    check(n as libc::c_long).map(|n| n as usize)
}

/// One message received by [`recv_fds`].
pub struct Received {
    /// Bytes of payload (0 with no fds: the peer closed its end).
    pub bytes: usize,
    /// The fds it carried, owned here (installed close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// The payload or the control data did not fit (MSG_TRUNC, MSG_CTRUNC).
    pub truncated: bool,
    /// The control data did not fit (MSG_CTRUNC): the kernel dropped fds.
    pub control_truncated: bool,
    /// The sender's pid, when SO_PASSCRED is on for the socket.
    pub pid: Option<libc::pid_t>,
}

/// Receives one message into `buf` with `flags` (MSG_DONTWAIT, ...; the fds
/// are always close-on-exec).
pub fn recv_fds(sock: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<Received> {
    let mut control: Control = [0; 16];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of::<Control>();
    // SAFETY: `msg` points at `iov`, `buf` and `control`, all alive and
    // writable for the call.
    let n = check(unsafe { libc::recvmsg(sock, &mut msg, flags | libc::MSG_CMSG_CLOEXEC) } as libc::c_long)? as usize;
    Ok(Received {
        bytes: n,
        fds: take_fds(&msg),
        truncated: msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
        control_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        pid: sender_pid(&msg),
    })
}

/// [`recv_fds`] that first tries without blocking for up to `spin`, then
/// blocks; EINTR is retried. A sleeping thread is woken on the CPU it slept
/// on, which in a VM can cost far more than a peer's quick answer: a short
/// spin catches it (see capexec_client::SPIN).
pub fn recv_fds_spinning(sock: RawFd, buf: &mut [u8], flags: libc::c_int, spin: Option<std::time::Duration>) -> io::Result<Received> {
    let deadline = spin.map(|d| std::time::Instant::now() + d);
    let mut spinning = deadline.is_some();
    loop {
        let f = if spinning { flags | libc::MSG_DONTWAIT } else { flags };
        match recv_fds(sock, buf, f) {
            Ok(r) => return Ok(r),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) if spinning => {
                    spinning = deadline.is_some_and(|d| std::time::Instant::now() < d);
                    std::hint::spin_loop();
                }
                _ => return Err(e),
            },
        }
    }
}

/// Takes ownership of every fd in a received message's SCM_RIGHTS, so that
/// none leaks whatever the caller decides about the message.
pub fn take_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    // SAFETY: walking the control buffer the kernel filled, with the libc
    // macros that bound every header by msg_controllen; the fds in it were
    // just installed in our table and belong to nobody else.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const RawFd;
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..n {
                    out.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    out
}

/// The pid in a received message's SCM_CREDENTIALS, if any.
pub fn sender_pid(msg: &libc::msghdr) -> Option<libc::pid_t> {
    let mut pid = None;
    // SAFETY: as in take_fds; the ucred is read unaligned from inside the buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                pid = Some((libc::CMSG_DATA(c) as *const libc::ucred).read_unaligned().pid);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    pid
}

/// Sends one fd over a Unix socket with a one-byte payload.
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    send_fds(sock, b"L", &[fd], libc::MSG_NOSIGNAL).map(drop)
}

/// Receives one message into `buf`, waiting for it, and the fd it carries if
/// any: (payload length, fd). Length 0 and no fd: the other end closed.
pub fn recv_fd_blocking(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let r = recv_fds(sock, buf, 0)?;
    Ok((r.bytes, r.fds.into_iter().next()))
}

/// Receives one fd sent by [`send_fd`], without blocking.
pub fn recv_fd(sock: RawFd) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 1];
    recv_fds(sock, &mut buf, libc::MSG_DONTWAIT)?
        .fds
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor in the message"))
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_PROG_TYPE_LSM: u32 = 29;
const BPF_LSM_MAC: u32 = 27;
/// Flag of BPF_PROG_ATTACH: other programs may sit on the same hook, in this
/// cgroup or its ancestors (systemd attaches its own to units' cgroups), and
/// all must allow.
const BPF_F_ALLOW_MULTI: u32 = 2;

// `enum bpf_attach_type` in linux/bpf.h.
pub const BPF_CGROUP_INET_EGRESS: u32 = 1;
pub const BPF_CGROUP_INET4_BIND: u32 = 8;
pub const BPF_CGROUP_INET6_BIND: u32 = 9;
pub const BPF_CGROUP_INET4_CONNECT: u32 = 10;
pub const BPF_CGROUP_INET6_CONNECT: u32 = 11;
pub const BPF_CGROUP_UDP4_SENDMSG: u32 = 14;
pub const BPF_CGROUP_UDP6_SENDMSG: u32 = 15;
pub const BPF_CGROUP_UDP4_RECVMSG: u32 = 19;
pub const BPF_CGROUP_UDP6_RECVMSG: u32 = 20;

/// BPF_PROG_ATTACH of a loaded program to a cgroup v2 directory. Unlike a BPF
/// link, the attachment lasts until the cgroup is removed, whoever exits.
pub fn cgroup_attach(prog: BorrowedFd<'_>, cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<()> {
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&attach_type.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    // SAFETY: a bpf_attr of the size passed (target_fd, attach_bpf_fd,
    // attach_type, attach_flags), read during the call; both fds are open.
    check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, attr.as_ptr(), attr.len()) }).map(drop)
}

const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;

/// Detaches every program attached to `cgroup` itself at `attach_type`
/// (BPF_PROG_QUERY, then BPF_PROG_DETACH of each): a cgroup reused for a new
/// run of a service must not keep the programs, and so the policy, of the
/// last one. Programs inherited from ancestors are not touched.
pub fn cgroup_detach_all(cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<()> {
    let mut ids = [0u32; 64];
    let mut attr = [0u8; 40];
    attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&attach_type.to_ne_bytes());
    attr[16..24].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&(ids.len() as u32).to_ne_bytes());
    // SAFETY: a bpf_attr (query: target_fd, attach_type, query_flags,
    // attach_flags, prog_ids pointer, prog_cnt) of the size passed; the kernel
    // writes at most prog_cnt ids into `ids`, which outlives the call.
    check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_QUERY, attr.as_mut_ptr(), attr.len()) })?;
    let count = u32::from_ne_bytes([attr[24], attr[25], attr[26], attr[27]]) as usize;
    for id in &ids[..count.min(ids.len())] {
        let mut get = [0u8; 12];
        get[0..4].copy_from_slice(&id.to_ne_bytes());
        // SAFETY: a bpf_attr holding a program id, read during the call.
        let fd = match check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_GET_FD_BY_ID, get.as_ptr(), get.len()) }) {
            Ok(fd) => fd,
            // Gone since the query.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        // SAFETY: a new fd that nobody else owns.
        let prog = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let mut attr = [0u8; 16];
        attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
        attr[8..12].copy_from_slice(&attach_type.to_ne_bytes());
        // SAFETY: a bpf_attr of the size passed, read during the call.
        match check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_DETACH, attr.as_ptr(), attr.len()) }) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits up to `timeout_ms` (-1: without limit) for `events` on `fd`, again
/// after EINTR. `Ok(false)`: the time ran out.
pub fn poll_one(fd: BorrowedFd<'_>, events: i16, timeout_ms: i32) -> io::Result<bool> {
    poll_many(&[(fd, events)], timeout_ms).map(|r| r[0] != 0)
}

/// poll(2) of each `(fd, events)` for at most `timeout_ms` (-1: no limit),
/// retried on EINTR: each one's revents, in order.
pub fn poll_many(fds: &[(BorrowedFd<'_>, i16)], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut pfds: Vec<libc::pollfd> = fds.iter().map(|(fd, events)| libc::pollfd { fd: fd.as_raw_fd(), events: *events, revents: 0 }).collect();
    loop {
        // SAFETY: `pfds` holds pfds.len() valid pollfds, whose fds the borrows keep open.
        match check(unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) } as libc::c_long) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r.map(|_| pfds.iter().map(|p| p.revents).collect()),
        }
    }
}

/// poll(2) of the descriptor numbered `fd` for `events`, for at most
/// `timeout_ms` (-1: no limit): its revents (POLLNVAL for a number that is
/// not open). EINTR is the caller's to handle. For descriptors a forked
/// child knows by number only; poll reads the table and changes nothing.
pub fn poll_raw(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd, alive for the call.
    check(unsafe { libc::poll(&mut pfd, 1, timeout_ms) } as libc::c_long)?;
    Ok(pfd.revents)
}

/// A new close-on-exec descriptor for what the number `fd` refers to
/// (F_DUPFD_CLOEXEC), owned by the caller: for a descriptor a forked child
/// knows by number only and must hand to an API that wants a borrow.
pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes integers; EBADF for a number not open.
    let new = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) } as libc::c_long)?;
    // SAFETY: a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new as RawFd) })
}

/// The file status flags (F_GETFL).
pub fn status_flags(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: F_GETFL only reads the file's status flags.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) } as libc::c_long).map(|f| f as i32)
}

/// Sets the file status flags (F_SETFL; the kernel changes only O_APPEND,
/// O_ASYNC, O_DIRECT, O_NOATIME and O_NONBLOCK).
pub fn set_status_flags(fd: BorrowedFd<'_>, flags: i32) -> io::Result<()> {
    // SAFETY: F_SETFL with an integer on an fd the caller holds.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) } as libc::c_long).map(drop)
}

/// write(2) of `buf` to the fd numbered `fd` (EBADF if none is open there):
/// for code between fork and exec, which holds its fds by number.
pub fn write_raw(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel reads `buf.len()` bytes of a valid buffer.
    check(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) } as libc::c_long).map(|n| n as usize)
}

/// The directory `name` in `dir`, never through a symlink (O_NOFOLLOW:
/// ELOOP for a symlink, ENOTDIR for anything else that is not a directory).
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a valid NUL-terminated string the kernel reads during the call.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) } as libc::c_long)?;
    // SAFETY: openat returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// mkdirat(2) of `name` in `dir` with `mode` (less the umask).
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: as in `open_dir_at`.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) } as libc::c_long).map(drop)
}

/// pipe2 with `flags`: (read end, write end).
pub fn pipe2(flags: i32) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into a valid array of two.
    if unsafe { libc::pipe2(p.as_mut_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two new fds that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// The cookie of this process's network namespace (SO_NETNS_COOKIE), as
/// `bpf_get_netns_cookie()` reports it for sockets created there.
pub fn netns_cookie() -> io::Result<u64> {
    socket_netns_cookie(std::os::unix::net::UnixDatagram::unbound()?.as_fd())
}

/// The cookie of the network namespace a socket belongs to. Unlike SIOCGSKNS,
/// SO_NETNS_COOKIE needs no capability, so a confined broker can ask too.
pub fn socket_netns_cookie(sock: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the option value is a u64 of the length passed, written by the call.
    check(unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NETNS_COOKIE, (&mut cookie as *mut u64).cast(), &mut len) } as libc::c_long)?;
    Ok(cookie)
}

/// `r0 = ret; exit`: the smallest program of any type.
fn returning(ret: i32) -> [u64; 2] {
    // BPF_ALU64 | BPF_MOV | BPF_K into r0, then BPF_JMP | BPF_EXIT.
    let mov = 0xb7u64 | (ret as u32 as u64) << 32;
    [mov, 0x95]
}

/// BPF_PROG_LOAD of a two-instruction program: its fd. `attr` fields are at
/// their offsets in `union bpf_attr` (linux/bpf.h).
fn prog_load(prog_type: u32, attach_type: u32, attach_btf_id: u32, ret: i32) -> io::Result<OwnedFd> {
    let insns = returning(ret);
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[68..72].copy_from_slice(&attach_type.to_ne_bytes());
    attr[108..112].copy_from_slice(&attach_btf_id.to_ne_bytes());
    // SAFETY: `attr` is a bpf_attr of the size passed; the instructions and the
    // license it points to outlive the call, which only reads them.
    let fd = check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, attr.as_ptr(), attr.len()) })?;
    // SAFETY: a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether a cgroup sock_addr program (what capexec's network layer uses)
/// loads, and attaches to an empty cgroup made for the probe under `cgroup2`
/// (removing the cgroup detaches it). Needs root.
pub fn probe_cgroup_bpf(cgroup2: &std::path::Path) -> io::Result<()> {
    (|| {
        let prog = prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, 0, 1)?;
        let dir = cgroup2.join(format!("capexec-doctor-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let attached = std::fs::File::open(&dir).and_then(|cg| cgroup_attach(prog.as_fd(), cg.as_fd(), BPF_CGROUP_INET4_CONNECT));
        let _ = std::fs::remove_dir(&dir);
        attached
    })()
}

/// Whether an LSM-type BPF program loads: one attached (BPF_LSM_MAC) to the
/// `bpf_lsm_file_open` hook, found in the kernel's BTF. A kernel can list
/// the BPF LSM and still refuse these (as the machines here do, with EPERM).
pub fn probe_bpf_lsm() -> io::Result<()> {
    (|| {
        let btf = std::fs::read("/sys/kernel/btf/vmlinux")?;
        let id = btf_func_id(&btf, "bpf_lsm_file_open").ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no bpf_lsm_file_open in the kernel's BTF"))?;
        prog_load(BPF_PROG_TYPE_LSM, BPF_LSM_MAC, id, 0).map(drop)
    })()
}

/// The type id of the function `name` in raw BTF (linux/btf.h): a header,
/// then types numbered from 1, each a 12-byte `btf_type` and data whose size
/// depends on its kind.
fn btf_func_id(btf: &[u8], name: &str) -> Option<u32> {
    let u32_at = |at: usize| btf.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if btf.get(0..2)? != [0x9f, 0xeb] {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len, str_off) = (u32_at(8)? as usize, u32_at(12)? as usize, u32_at(16)? as usize);
    let (types, strings) = (hdr_len + type_off, hdr_len + str_off);
    let (mut at, mut id) = (types, 1u32);
    while at + 12 <= types + type_len {
        let (name_off, info) = (u32_at(at)? as usize, u32_at(at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        const FUNC: u32 = 12;
        if kind == FUNC {
            let s = btf.get(strings + name_off..)?;
            let end = s.iter().position(|c| *c == 0)?;
            if &s[..end] == name.as_bytes() {
                return Some(id);
            }
        }
        let extra = match kind {
            1 | 14 | 17 => 4,     // INT, VAR, DECL_TAG
            3 => 12,              // ARRAY
            4 | 5 => 12 * vlen,   // STRUCT, UNION
            6 | 13 => 8 * vlen,   // ENUM, FUNC_PROTO
            15 | 19 => 12 * vlen, // DATASEC, ENUM64
            _ => 0,
        };
        at += 12 + extra;
        id += 1;
    }
    None
}

#[cfg(test)]
mod fd_passing_tests {
    use super::*;

    fn seqpacket() -> (OwnedFd, OwnedFd) {
        let mut sv = [0; 2];
        // SAFETY: socketpair writes two fds into a valid array.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) }, 0);
        // SAFETY: two new fds that nobody else owns.
        unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) }
    }

    #[test]
    fn fds_and_payload_arrive_together() {
        let (a, b) = seqpacket();
        let (r, w) = pipe2(libc::O_CLOEXEC).unwrap();
        send_fds(a.as_raw_fd(), b"hello", &[r.as_raw_fd(), w.as_raw_fd()], libc::MSG_NOSIGNAL).unwrap();
        let mut buf = [0u8; 16];
        let got = recv_fds(b.as_raw_fd(), &mut buf, 0).unwrap();
        assert_eq!((&buf[..got.bytes], got.fds.len(), got.truncated), (&b"hello"[..], 2, false));
        // The received write end writes into the pipe whose read end we kept.
        // SAFETY: writing one byte from a valid buffer to an fd we own.
        assert_eq!(unsafe { libc::write(got.fds[1].as_raw_fd(), b"x".as_ptr().cast(), 1) }, 1);
        // SAFETY: F_GETFD on an fd we own.
        assert_ne!(unsafe { libc::fcntl(got.fds[0].as_raw_fd(), libc::F_GETFD) } & libc::FD_CLOEXEC, 0, "received fds are close-on-exec");
        send_fds(a.as_raw_fd(), b"a longer message", &[], 0).unwrap();
        let mut small = [0u8; 4];
        assert!(recv_fds(b.as_raw_fd(), &mut small, 0).unwrap().truncated);
        drop(a);
        let end = recv_fds(b.as_raw_fd(), &mut buf, 0).unwrap();
        assert_eq!((end.bytes, end.fds.len()), (0, 0), "end of file");
        assert!(send_fds(b.as_raw_fd(), b"x", &[0; MAX_FDS + 1], 0).is_err());
    }
}

#[cfg(test)]
mod tests {
    /// The test harness may run tests on threads of its own, so the check
    /// runs in a forked child, which has one thread until it starts another:
    /// `process::fork` works there, and it and `clone_fork` are refused once
    /// a second thread runs.
    #[test]
    fn fork_is_refused_once_a_second_thread_exists() {
        // SAFETY: glibc's fork leaves malloc usable in the child, which checks,
        // starts one thread and ends with _exit, touching nothing else of the
        // harness's.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let alone = match crate::process::fork("test") {
                Ok(crate::process::Forked::Child) => crate::process::exit_now(0),
                Ok(crate::process::Forked::Parent(p)) => crate::process::wait_child(p, true).is_ok(),
                Err(_) => false,
            };
            let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(5)));
            let refused = crate::process::fork("test").is_err_and(|e| e.to_string().contains("single-threaded to test"))
                && crate::clone_fork("clone", 0).is_err_and(|e| e.to_string().contains("single-threaded to clone"));
            drop(t);
            crate::process::exit_now(if alone && refused { 0 } else { 1 });
        }
        assert_eq!(crate::process::wait_child(pid, true).unwrap().map(|s| libc::WEXITSTATUS(s)), Some(0));
    }

    #[test]
    fn btf_func_id_finds_the_lsm_hook() {
        let btf = std::fs::read("/sys/kernel/btf/vmlinux").expect("this kernel has BTF");
        let id = super::btf_func_id(&btf, "bpf_lsm_file_open").expect("found");
        // bpftool (scripts/install-test-deps.sh installs it) reads the same BTF.
        let dump = std::process::Command::new("bpftool").args(["btf", "dump", "file", "/sys/kernel/btf/vmlinux"]).output().expect("bpftool runs");
        let want = String::from_utf8_lossy(&dump.stdout)
            .lines()
            .find(|l| l.contains("FUNC 'bpf_lsm_file_open'"))
            .and_then(|l| l.strip_prefix('[')?.split(']').next()?.parse::<u32>().ok())
            .expect("bpftool lists the hook");
        assert_eq!(id, want);
        assert_eq!(super::btf_func_id(&btf, "no_such_function_anywhere"), None);
        assert_eq!(super::btf_func_id(b"junk", "bpf_lsm_file_open"), None);
    }
}

/// The extended attribute `name` of `path` itself (lgetxattr: a symlink's
/// own); `None` when it has none.
pub fn lgetxattr(path: &CStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    // SAFETY: two valid NUL-terminated strings and a buffer of the length passed.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

/// bind(-1, NULL, 0): a call that does nothing (EBADF) but, under a filter
/// that hands bind to a seccomp listener, waits until whoever holds the
/// listener answers it.
pub fn bind_nothing() {
    // SAFETY: no pointer the kernel would follow (NULL with length 0) and no fd.
    unsafe { libc::bind(-1, std::ptr::null(), 0) };
}

/// Sets the extended attribute `name` of `path` itself (lsetxattr).
pub fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: two valid NUL-terminated strings and a value of the length passed, all read during the call only.
    check(unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) } as libc::c_long).map(drop)
}

/// openat(2) of `name` in `dir` with `flags` (O_CLOEXEC added) and `mode`.
pub fn open_at(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string the kernel reads during the call.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) } as libc::c_long)?;
    // SAFETY: openat returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Where a Unix socket at `path` (absolute) lies: its directory by its real
/// path (the host's own links before the last component resolved, as a
/// bind of `path` resolves them: /var/run/x.sock is in /run), that
/// directory opened without following any link, and the socket's name.
pub fn socket_place(path: &std::path::Path) -> io::Result<(std::path::PathBuf, OwnedFd, std::ffi::CString)> {
    let einval = || io::Error::from_raw_os_error(libc::EINVAL);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return Err(einval()) };
    let real = std::fs::canonicalize(dir)?;
    let fd = open_dir_no_links(&real)?;
    Ok((real, fd, std::ffi::CString::new(name.as_encoded_bytes()).map_err(|_| einval())?))
}

/// The directory `path` (absolute), opened from `/` one component at a time
/// with O_NOFOLLOW: no link on the way is followed (ELOOP), `..` and `.`
/// are refused (EINVAL). For paths a less trusted party may have changed.
pub fn open_dir_no_links(path: &std::path::Path) -> io::Result<OwnedFd> {
    let mut fd = OwnedFd::from(std::fs::File::open("/")?);
    for c in path.components() {
        match c {
            std::path::Component::RootDir => {}
            std::path::Component::Normal(n) => {
                let name = std::ffi::CString::new(n.as_encoded_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                fd = open_dir_at(fd.as_fd(), &name)?;
            }
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
    Ok(fd)
}
