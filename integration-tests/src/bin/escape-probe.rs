//! Attempts the attacks of ESCAPE-CASES.md from inside a sandbox and reports each
//! attempt as `BLOCKED <case>: <how>` or `ESCAPED <case>: <what happened>`.
//! Exit status: 0 when every attempt was blocked, 1 otherwise, 2 on usage errors.
//! A few subcommands (make-shm, rm-shm, with-seccomp-deny) are helpers the tests
//! run on the host.

use std::ffi::CString;
use std::io::Error;

struct Report {
    escaped: usize,
}

impl Report {
    /// `rc` is a syscall's return value (negative = failed, errno in `err`).
    /// Blocked when it failed with one of `expected`.
    fn expect_fail(&mut self, case: &str, rc: i64, err: Error, expected: &[i32]) {
        if rc >= 0 {
            println!("ESCAPED {case}: succeeded (returned {rc})");
            self.escaped += 1;
        } else if expected.contains(&err.raw_os_error().unwrap_or(0)) {
            println!("BLOCKED {case}: {err}");
        } else {
            println!("ESCAPED {case}: failed, but with an unexpected error: {err} (expected one of {expected:?})");
            self.escaped += 1;
        }
    }
    fn check(&mut self, case: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            println!("BLOCKED {case}: {detail}");
        } else {
            println!("ESCAPED {case}: {detail}");
            self.escaped += 1;
        }
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Runs a raw syscall and returns (rc, errno).
macro_rules! sys {
    ($($arg:expr),* $(,)?) => {{
        // SAFETY: the probe deliberately issues raw syscalls with harmless or
        // invalid arguments to see whether the sandbox lets them through.
        let rc = unsafe { libc::syscall($($arg as libc::c_long),*) } as i64;
        (rc, Error::last_os_error())
    }};
}

fn open(path: &str, flags: i32) -> (i64, Error) {
    let p = c(path);
    // SAFETY: valid C string; the fd (if any) is leaked on purpose, the probe exits soon.
    let rc = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) } as i64;
    (rc, Error::last_os_error())
}

const EPERM: i32 = libc::EPERM;
const EACCES: i32 = libc::EACCES;
const ENOENT: i32 = libc::ENOENT;
const EROFS: i32 = libc::EROFS;
const ENOSYS: i32 = libc::ENOSYS;

/// Whether `dir` is a tmpfs with nothing in it.
fn private_empty(dir: &str) -> bool {
    let tmpfs = nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    tmpfs && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

fn fs(r: &mut Report) {
    let (rc, e) = open("/etc/shadow", libc::O_RDONLY);
    r.expect_fail("1 read /etc/shadow", rc, e, &[EACCES, ENOENT]);
    for p in ["/root", "/home", "/var/lib/redis", "/var/lib/capexec-test"] {
        // `capexec run` gives its program an empty tmpfs at $HOME's path:
        // no host home shows through it.
        if std::env::var("HOME").is_ok_and(|h| h == p) && private_empty(p) {
            println!("BLOCKED 1 open {p}: the program's own empty tmpfs HOME");
            continue;
        }
        let (rc, e) = open(p, libc::O_RDONLY | libc::O_DIRECTORY);
        r.expect_fail(&format!("1 open {p}"), rc, e, &[ENOENT, EACCES]);
    }
    for p in ["/usr/capexec-escape", "/etc/capexec-escape", "/var/capexec-escape", "/capexec-escape", "/usr/bin/capexec-escape"] {
        let (rc, e) = open(p, libc::O_WRONLY | libc::O_CREAT);
        r.expect_fail(&format!("2 create {p}"), rc, e, &[EROFS, EACCES, ENOENT]);
    }
    let (rc, e) = open("/etc/hostname", libc::O_WRONLY);
    r.expect_fail("2 write /etc/hostname", rc, e, &[EROFS, EACCES]);
    // Through the /proc/self/root magic link, under the /proc rule that
    // allows truncation: the view's own /etc decides.
    for p in ["/proc/self/root/etc/hostname", "/proc/1/root/etc/hostname"] {
        let path = c(p);
        let (rc, e) = sys!(libc::SYS_truncate, path.as_ptr(), 0);
        r.expect_fail(&format!("2 truncate {p}"), rc, e, &[EROFS, EACCES, ENOENT]);
    }
    for d in ["/dev/vda", "/dev/sda", "/dev/mem", "/dev/kmem", "/dev/kmsg", "/dev/port", "/dev/console"] {
        let (rc, e) = open(d, libc::O_RDONLY);
        r.expect_fail(&format!("4 open {d}"), rc, e, &[ENOENT]);
    }
    let (rc, e) = open("/dev/shm/../x", libc::O_WRONLY | libc::O_CREAT);
    r.expect_fail("4 create a file in /dev", rc, e, &[EROFS, EACCES]);
    let (rc, e) = open("/proc/sys/kernel/hostname", libc::O_WRONLY);
    r.expect_fail("5 write /proc/sys/kernel/hostname", rc, e, &[ENOENT, EROFS, EACCES]);
    let (rc, e) = open("/proc/sys/kernel/core_pattern", libc::O_WRONLY);
    r.expect_fail("5 write /proc/sys/kernel/core_pattern", rc, e, &[ENOENT, EROFS, EACCES]);
    let (rc, e) = open("/proc/sysrq-trigger", libc::O_WRONLY);
    r.expect_fail("5 write /proc/sysrq-trigger", rc, e, &[ENOENT, EACCES, EROFS]);
    let (rc, e) = open("/proc/kcore", libc::O_RDONLY);
    r.expect_fail("5 read /proc/kcore", rc, e, &[ENOENT, EACCES]);
    // The host's interrupt affinities (a root service could pin every
    // device's interrupts on one CPU): no capability is asked, only root's
    // ownership of the files.
    let irq = std::fs::read_dir("/proc/irq").into_iter().flatten().flatten().map(|e| e.path().join("smp_affinity")).find(|p| p.exists());
    for p in ["/proc/irq/default_smp_affinity".into(), irq.unwrap_or_else(|| "/proc/irq/0/smp_affinity".into())] {
        let (rc, e) = open(&p.to_string_lossy(), libc::O_WRONLY);
        r.expect_fail(&format!("5 write {}", p.display()), rc, e, &[ENOENT, EROFS, EACCES]);
    }
    for p in ["/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/unified/cgroup.procs", "/sys/fs/cgroup/memory/cgroup.procs"] {
        let (rc, e) = open(p, libc::O_WRONLY);
        r.expect_fail(&format!("6 write {p}"), rc, e, &[ENOENT, EACCES, EROFS]);
    }
    let _ = std::fs::create_dir("/tmp/cg");
    let (src, dst, ty, data) = (c("cgroup"), c("/tmp/cg"), c("cgroup"), c("memory"));
    let (rc, e) = sys!(libc::SYS_mount, src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, data.as_ptr());
    r.expect_fail("6 mount cgroup v1 (release_agent)", rc, e, &[EPERM]);
}

fn status_field(name: &str) -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned())).unwrap_or_default()
}

fn identity(r: &mut Report) {
    // SAFETY: plain getters.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    r.check("3 not host uid 0", uid != 0 && euid != 0, format!("uid={uid} euid={euid}"));
    for f in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = status_field(f);
        r.check(&format!("11 {f} empty"), v.chars().all(|c| c == '0') && !v.is_empty(), format!("{f}={v}"));
    }
    r.check("11 no_new_privs set", status_field("NoNewPrivs") == "1", format!("NoNewPrivs={}", status_field("NoNewPrivs")));
    r.check("18 seccomp filter active", status_field("Seccomp") == "2", format!("Seccomp={}", status_field("Seccomp")));
    // SAFETY: integer-only prctl.
    let bits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    // NOROOT off (with no_new_privs an exec as uid 0 gains nothing; it keeps
    // what a root daemon's helper held: dovecot), NO_SETUID_FIXUP off,
    // NO_CAP_AMBIENT_RAISE, each locked; KEEP_CAPS left to the service
    // (issue 19: daemons that drop root themselves).
    r.check("11 securebits locked", bits == 0xca, format!("securebits={bits:#x} (want 0xca)"));
    // SAFETY: integer-only prctl.
    let rc = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, 0, 0, 0, 0) } as i64;
    r.expect_fail("11 unlock securebits", rc, Error::last_os_error(), &[EPERM]);
    let (rc, e) = sys!(libc::SYS_setuid, 0);
    r.expect_fail("3 setuid(0)", rc, e, &[EPERM, libc::EINVAL]);
}

fn privileged(r: &mut Report) {
    let (rc, e) = sys!(libc::SYS_unshare, libc::CLONE_NEWUSER);
    r.expect_fail("7 unshare(CLONE_NEWUSER)", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_unshare, libc::CLONE_NEWNS);
    r.expect_fail("7 unshare(CLONE_NEWNS)", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_clone, libc::CLONE_NEWUSER | libc::SIGCHLD, 0, 0, 0, 0);
    if rc == 0 {
        // SAFETY: in the (escaped) child: leave at once.
        unsafe { libc::_exit(0) };
    }
    r.expect_fail("7 clone(CLONE_NEWUSER)", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_sethostname, c("evil").as_ptr(), 4);
    r.expect_fail("7 sethostname", rc, e, &[EPERM]);
    let (t, d) = (c("tmpfs"), c("/tmp"));
    let (rc, e) = sys!(libc::SYS_mount, t.as_ptr(), d.as_ptr(), t.as_ptr(), 0, 0);
    r.expect_fail("8 mount tmpfs", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_umount2, d.as_ptr(), libc::MNT_DETACH);
    r.expect_fail("8 umount2", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_fsopen, t.as_ptr(), 0);
    r.expect_fail("8 fsopen", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_fsmount, -1, 0, 0);
    r.expect_fail("8 fsmount", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_open_tree, libc::AT_FDCWD, d.as_ptr(), 1 /* OPEN_TREE_CLONE */);
    r.expect_fail("8 open_tree", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_move_mount, -1, d.as_ptr(), libc::AT_FDCWD, d.as_ptr(), 0);
    r.expect_fail("8 move_mount", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_mount_setattr, libc::AT_FDCWD, d.as_ptr(), 0, 0, 0);
    r.expect_fail("8 mount_setattr", rc, e, &[EPERM]);
    let (rc, e) = open("/proc/1/ns/mnt", libc::O_RDONLY);
    r.expect_fail("9 open /proc/1/ns/mnt", rc, e, &[EACCES, ENOENT]);
    let (rc, e) = sys!(libc::SYS_setns, 0, 0);
    r.expect_fail("9 setns", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_chroot, d.as_ptr());
    r.expect_fail("10 chroot", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_pivot_root, d.as_ptr(), d.as_ptr());
    r.expect_fail("10 pivot_root", rc, e, &[EPERM]);
    let n = c("/tmp/capexec-null");
    let (rc, e) = sys!(libc::SYS_mknodat, libc::AT_FDCWD, n.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3));
    r.expect_fail("10 mknod char device", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_mknodat, libc::AT_FDCWD, n.as_ptr(), libc::S_IFBLK | 0o666, libc::makedev(254, 0));
    r.expect_fail("10 mknod block device", rc, e, &[EPERM]);
    let ts = libc::timespec { tv_sec: 1, tv_nsec: 0 };
    let (rc, e) = sys!(libc::SYS_clock_settime, libc::CLOCK_REALTIME, &ts as *const _);
    r.expect_fail("10 clock_settime", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_settimeofday, 0, 0);
    r.expect_fail("10 settimeofday", rc, e, &[EPERM]);
    // LINUX_REBOOT_CMD_CAD_OFF: harmless even if it got through.
    let (rc, e) = sys!(libc::SYS_reboot, 0xfee1deadu32, 672274793, 0, 0);
    r.expect_fail("10 reboot", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_swapon, n.as_ptr(), 0);
    r.expect_fail("10 swapon", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_swapoff, n.as_ptr());
    r.expect_fail("10 swapoff", rc, e, &[EPERM]);
    let empty = c("");
    let (rc, e) = sys!(libc::SYS_init_module, 0, 0, empty.as_ptr());
    r.expect_fail("10 init_module", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_finit_module, -1, empty.as_ptr(), 0);
    r.expect_fail("10 finit_module", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_kexec_load, 0, 0, 0, 0);
    r.expect_fail("10 kexec_load", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_kexec_file_load, -1, -1, 0, 0, 0);
    r.expect_fail("10 kexec_file_load", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
    r.expect_fail("13 keyctl", rc, e, &[EPERM]);
    let (ty, desc) = (c("user"), c("capexec"));
    let (rc, e) = sys!(libc::SYS_add_key, ty.as_ptr(), desc.as_ptr(), 0, 0, -3);
    r.expect_fail("13 add_key", rc, e, &[EPERM]);
    let attr = [0u8; 128];
    let (rc, e) = sys!(libc::SYS_bpf, 0 /* BPF_MAP_CREATE */, attr.as_ptr(), attr.len());
    r.expect_fail("13 bpf", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0);
    r.expect_fail("13 perf_event_open", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_userfaultfd, 0);
    r.expect_fail("13 userfaultfd", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_open_by_handle_at, libc::AT_FDCWD, attr.as_ptr(), 0);
    r.expect_fail("13 open_by_handle_at (shocker)", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */);
    r.expect_fail("13 personality(READ_IMPLIES_EXEC)", rc, e, &[EPERM]);
    let (rc, _) = sys!(libc::SYS_personality, 0xffffffffu32);
    r.check("13 personality query still works", rc >= 0, format!("personality(0xffffffff) = {rc}"));
}

fn int80_getpid() {
    // SAFETY: issues the i386 getpid syscall through the 32-bit entry point; the
    // filter must kill the process before the kernel runs it.
    unsafe { std::arch::asm!("int 0x80", inlateout("eax") 20u32 => _, options(nostack)) };
}

fn seccomp_integrity(r: &mut Report) {
    let (rc, e) = sys!(0x4000_0000i64 | libc::SYS_getpid);
    r.expect_fail("14 x32 getpid", rc, e, &[ENOSYS, EPERM]);
    let (rc, e) = sys!(0x4000_0000i64 | libc::SYS_mount, 0, 0, 0, 0, 0);
    r.expect_fail("14 x32 mount", rc, e, &[ENOSYS, EPERM]);
    // SAFETY: fork in a single-threaded probe; the child only runs int 0x80 and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        int80_getpid();
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    r.check("15 i386 syscall via int 0x80 kills", libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGSYS, format!("child status {st:#x}"));
    let params = [0u8; 120];
    let (rc, e) = sys!(libc::SYS_io_uring_setup, 1, params.as_ptr());
    r.expect_fail("16 io_uring_setup", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_io_uring_enter, 0, 0, 0, 0, 0, 0);
    r.expect_fail("16 io_uring_enter", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_io_uring_register, 0, 0, 0, 0);
    r.expect_fail("16 io_uring_register", rc, e, &[EPERM]);
    let args = [0u64; 11];
    let (rc, e) = sys!(libc::SYS_clone3, args.as_ptr(), 88);
    if rc == 0 {
        // SAFETY: in the (escaped) child: leave at once.
        unsafe { libc::_exit(0) };
    }
    r.expect_fail("17 clone3 gives ENOSYS", rc, e, &[ENOSYS]);
    let (rc, e) = sys!(1000);
    r.expect_fail("18 unknown syscall 1000", rc, e, &[ENOSYS, EPERM]);
    let t = std::thread::spawn(|| {
        let (rc, e) = sys!(libc::SYS_unshare, libc::CLONE_NEWNS);
        (rc, e.raw_os_error())
    });
    let (rc, errno) = t.join().unwrap();
    r.check("18 filter covers threads", rc < 0 && errno == Some(EPERM), format!("unshare in a thread: rc={rc} errno={errno:?}"));
    // SAFETY: fork in a single-threaded process (the thread above has ended).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let (rc, e) = sys!(libc::SYS_unshare, libc::CLONE_NEWNS);
        // SAFETY: leaving the child with a status that encodes the result.
        unsafe { libc::_exit(if rc < 0 && e.raw_os_error() == Some(EPERM) { 0 } else { 1 }) };
    }
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    r.check("18 filter survives fork", libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, format!("child status {st:#x}"));
    let (rc, e) = sys!(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0);
    r.expect_fail("19 ptrace(TRACEME)", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_ptrace, libc::PTRACE_ATTACH, 1, 0, 0);
    r.expect_fail("19 ptrace(ATTACH, 1)", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_process_vm_writev, 1, 0, 0, 0, 0, 0);
    r.expect_fail("19 process_vm_writev", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_process_vm_readv, 1, 0, 0, 0, 0, 0);
    r.expect_fail("19 process_vm_readv", rc, e, &[EPERM]);
    let ch = b'x';
    let (rc, e) = sys!(libc::SYS_ioctl, 0, libc::TIOCSTI, &ch as *const u8);
    r.expect_fail("20 TIOCSTI", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_ioctl, 0, (1u64 << 32) | libc::TIOCSTI, &ch as *const u8);
    r.expect_fail("20 TIOCSTI with junk in the upper 32 bits", rc, e, &[EPERM]);
    let (rc, e) = sys!(libc::SYS_ioctl, 0, libc::TIOCLINUX, &ch as *const u8);
    r.expect_fail("20 TIOCLINUX", rc, e, &[EPERM]);
    let (rc, e) = open("/dev/tty", libc::O_RDWR);
    r.expect_fail("20 no controlling terminal", rc, e, &[libc::ENXIO, ENOENT]);
    let (rc, e) = sys!(libc::SYS_seccomp, 0 /* SECCOMP_SET_MODE_STRICT */, 0, 0);
    r.expect_fail("39 seccomp() itself", rc, e, &[EPERM]);
}

fn processes(r: &mut Report, host_pid: i32) {
    let (rc, e) = sys!(libc::SYS_kill, host_pid, 0);
    r.expect_fail("21 kill(host process, 0)", rc, e, &[libc::ESRCH, EPERM]);
    let (rc, e) = open(&format!("/proc/{host_pid}/status"), libc::O_RDONLY);
    r.expect_fail("21 host process in /proc", rc, e, &[ENOENT]);
    let (rc, e) = sys!(libc::SYS_ptrace, libc::PTRACE_ATTACH, 1, 0, 0);
    r.expect_fail("22 ptrace the namespace init", rc, e, &[EPERM]);
    // SIGKILL from inside the namespace to its init is dropped by the kernel; if
    // it were not, this probe would die with it and report nothing.
    // SAFETY: signalling pid 1 of our own pid namespace.
    unsafe { libc::kill(1, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (rc, _) = sys!(libc::SYS_kill, 1, 0);
    r.check("22 init survives SIGKILL from the service", rc == 0, "pid 1 still there");
    for f in ["/proc/1/root/etc/shadow", "/proc/1/mem", "/proc/1/environ"] {
        let (rc, e) = open(f, libc::O_RDONLY);
        r.expect_fail(&format!("28 open {f}"), rc, e, &[EACCES, ENOENT, EPERM]);
    }
    for f in ["/proc/1/root", "/proc/1/exe", "/proc/1/cwd"] {
        let p = c(f);
        let mut buf = [0u8; 256];
        // SAFETY: valid path and buffer.
        let rc = unsafe { libc::readlink(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as i64;
        r.expect_fail(&format!("28 readlink {f}"), rc, Error::last_os_error(), &[EACCES, ENOENT, EPERM]);
    }
    let (rc, e) = open("/proc/1/fd", libc::O_RDONLY | libc::O_DIRECTORY);
    r.expect_fail("28 list /proc/1/fd", rc, e, &[EACCES, ENOENT, EPERM]);
}

fn fds(r: &mut Report, expected: &str) {
    let mut open_fds: Vec<i32> =
        std::fs::read_dir("/proc/self/fd").map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
    open_fds.sort();
    // The directory listing itself holds one fd while it runs; drop the highest
    // if it is no longer open.
    open_fds.retain(|fd| {
        // SAFETY: F_GETFD only queries.
        unsafe { libc::fcntl(*fd, libc::F_GETFD) >= 0 }
    });
    let got = open_fds.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(",");
    r.check("23 only declared fds are open", got == expected, format!("open fds {got}, expected {expected}"));
}

fn cap_field(name: &str) -> u64 {
    u64::from_str_radix(&status_field(name), 16).unwrap_or(u64::MAX)
}

/// 55: a service declared as root with a bounded capability set drops root
/// as it would outside capexec: its own setuid() to a user takes its
/// capabilities (the kernel's setuid fixup), PR_SET_KEEPCAPS keeps the
/// permitted ones it had and no more. `kept`: the declared set, as a mask.
fn privdrop(r: &mut Report, kept: u64) {
    // SAFETY: plain getters.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    r.check("55 control: the service starts as the uid 0 it declares", uid == 0 && euid == 0, format!("uid={uid} euid={euid}"));
    for f in ["CapBnd", "CapEff", "CapPrm"] {
        r.check(&format!("55 {f} is the declared set"), cap_field(f) == kept, format!("{f}={:#x} want {kept:#x}", cap_field(f)));
    }
    for keep in [false, true] {
        let Some(got) = child_output(r, |out| {
            // SAFETY: integer-only prctl and id calls in the child.
            let code = unsafe {
                if keep && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
                    10
                } else if libc::setgroups(0, std::ptr::null()) != 0 || libc::setresgid(65534, 65534, 65534) != 0 {
                    11
                } else if libc::setresuid(65534, 65534, 65534) != 0 {
                    12
                } else {
                    0
                }
            };
            let line = format!("{code} {:x} {:x} {:x}", cap_field("CapEff"), cap_field("CapPrm"), cap_field("CapAmb"));
            // SAFETY: writing a valid buffer to our pipe.
            unsafe { libc::write(out, line.as_ptr().cast(), line.len()) };
        }) else {
            return;
        };
        let f: Vec<&str> = got.split(' ').collect();
        let hex = |i: usize| f.get(i).and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(u64::MAX);
        let how = if keep { "with PR_SET_KEEPCAPS" } else { "" };
        r.check(&format!("55 control: setuid(65534) {how} works"), f.first() == Some(&"0"), format!("child: {got}"));
        r.check(&format!("55 setuid() to a user {how} leaves no effective capability"), hex(1) == 0, format!("child: {got}"));
        r.check(&format!("55 ... and no ambient one {how}"), hex(3) == 0, format!("child: {got}"));
        let want_prm = if keep { kept } else { 0 };
        r.check(&format!("55 permitted after setuid() {how}: {want_prm:#x}"), hex(2) == want_prm, format!("child: {got}"));
    }
    root_exec(r, kept);
}

/// A root daemon that lowers its own capabilities with capset() and then
/// executes a helper as root (dovecot's master does, for its log, config and
/// auth processes): the helper keeps what its parent held, as under init,
/// where exec as uid 0 restores the permitted set, and never more than that
/// (no_new_privs: the kernel does not let an exec gain a capability).
fn root_exec(r: &mut Report, kept: u64) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // The lowest capability of the declared set alone.
    let held = kept & kept.wrapping_neg();
    let Some(status) = child_output(r, |out| {
        let header = Header { version: 0x2008_0522, pid: 0 };
        let one = Data { effective: held as u32, permitted: held as u32, inheritable: 0 };
        let data = [one, Data { effective: 0, permitted: 0, inheritable: 0 }];
        let argv = [c"/bin/cat".as_ptr(), c"/proc/self/status".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        // SAFETY: capset reads the two structs it is given; dup2 and execve
        // take valid fds and NULL-terminated arrays of valid strings.
        unsafe {
            if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) == 0 && libc::dup2(out, 1) == 1 {
                libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            }
        }
    }) else {
        return;
    };
    let field = |name: &str| {
        let v = status.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::trim)).unwrap_or("");
        u64::from_str_radix(v, 16).unwrap_or(u64::MAX)
    };
    r.check(
        "55 a helper a root daemon executes after its capset() holds what the daemon held",
        field("CapPrm") == held && field("CapEff") == held,
        format!("CapPrm={:#x} CapEff={:#x}, want {held:#x} (the declared set is {kept:#x})", field("CapPrm"), field("CapEff")),
    );
}

/// Runs `child` in a forked child with the write end of a pipe (it writes
/// there, or execs with it as its stdout), then leaves; returns all the
/// child wrote, once it has exited.
fn child_output(r: &mut Report, child: impl FnOnce(std::os::fd::RawFd)) -> Option<String> {
    let mut fds = [0; 2];
    // SAFETY: a pipe into a valid two-int array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        r.check("55 pipe", false, Error::last_os_error());
        return None;
    }
    // SAFETY: the probe is single-threaded; the child only makes syscalls,
    // formats into buffers and execs or leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        child(fds[1]);
        // SAFETY: leaving the child without running the parent's exit code.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: closing our copy of the write end, reading our read end to
    // its EOF (the child's exit), then a blocking wait for our child.
    unsafe {
        libc::close(fds[1]);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

/// 48: no setuid or setgid bit on any file, by any call (systemd's
/// RestrictSUIDSGID=), in the service's writable /tmp.
fn setid(r: &mut Report) {
    let f = c("/tmp/setid-probe");
    let (fd, e) = sys!(libc::SYS_openat, libc::AT_FDCWD, f.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC, 0o755);
    r.check("48 control: a plain file is created in /tmp", fd >= 0, e);
    let (rc, e) = sys!(libc::SYS_chmod, f.as_ptr(), 0o700);
    r.check("48 control: chmod 0700 works", rc == 0, e);
    let tmp = c("/tmp");
    for (name, bits) in [("setuid", 0o4755), ("setgid", 0o2755)] {
        let (rc, e) = sys!(libc::SYS_chmod, f.as_ptr(), bits);
        r.expect_fail(&format!("48 chmod {name}"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_fchmod, fd, bits);
        r.expect_fail(&format!("48 fchmod {name}"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_fchmodat, libc::AT_FDCWD, f.as_ptr(), bits);
        r.expect_fail(&format!("48 fchmodat {name}"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_fchmodat2, libc::AT_FDCWD, f.as_ptr(), bits, 0);
        r.expect_fail(&format!("48 fchmodat2 {name}"), rc, e, &[EPERM]);
        let g = c(&format!("/tmp/setid-new-{name}"));
        let (rc, e) = sys!(libc::SYS_openat, libc::AT_FDCWD, g.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC, bits);
        r.expect_fail(&format!("48 openat(O_CREAT) {name}"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_creat, g.as_ptr(), bits);
        r.expect_fail(&format!("48 creat {name}"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_mknodat, libc::AT_FDCWD, g.as_ptr(), libc::S_IFREG | bits, 0);
        r.expect_fail(&format!("48 mknodat {name}"), rc, e, &[EPERM]);
        let d = c(&format!("/tmp/setid-dir-{name}"));
        let (rc, e) = sys!(libc::SYS_mkdirat, libc::AT_FDCWD, d.as_ptr(), bits);
        r.expect_fail(&format!("48 mkdirat {name}"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_openat, libc::AT_FDCWD, tmp.as_ptr(), libc::O_TMPFILE | libc::O_RDWR, bits);
        r.expect_fail(&format!("48 openat(O_TMPFILE) {name}"), rc, e, &[EPERM]);
    }
    let mode = std::fs::metadata("/tmp/setid-probe").map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions())).unwrap_or(0);
    r.check("48 the file has no setuid or setgid bit", mode & 0o6000 == 0, format!("mode {mode:o}"));
}

/// What a connected socket `fd` reads within a second (the witness: the
/// host listener's secret if the attack reached it).
fn read_witness(fd: i32) -> String {
    let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
    let mut buf = [0u8; 64];
    // SAFETY: fd is the probe's socket; buf and tv are valid for the calls.
    let n = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), std::mem::size_of_val(&tv) as u32);
        libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
    };
    String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
}

/// Reads the answers to ping socket `fd`'s echo requests until one from
/// `g` (at most 5 s): the sources of those that came first, or `None`
/// where `g` did not answer.
fn replies_until(fd: i64, g: &std::net::IpAddr) -> Option<Vec<std::net::IpAddr>> {
    let mut before = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis() as i32;
        let mut pfd = libc::pollfd { fd: fd as i32, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if left == 0 || unsafe { libc::poll(&mut pfd, 1, left) } != 1 {
            return None;
        }
        // SAFETY: plain data, filled by recvfrom below.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let mut buf = [0u8; 256];
        let (rc, _) = sys!(libc::SYS_recvfrom, fd, buf.as_mut_ptr(), buf.len(), 0, &mut from as *mut _, &mut len as *mut _);
        if rc < 0 {
            return None;
        }
        let ip: std::net::IpAddr = match from.ss_family as i32 {
            // SAFETY: the kernel wrote a sockaddr of this family.
            libc::AF_INET => std::net::Ipv4Addr::from(u32::from_be(unsafe { (*(&from as *const _ as *const libc::sockaddr_in)).sin_addr.s_addr })).into(),
            // SAFETY: as above.
            _ => std::net::Ipv6Addr::from(unsafe { (*(&from as *const _ as *const libc::sockaddr_in6)).sin6_addr.s6_addr }).into(),
        };
        if ip == *g {
            return Some(before);
        }
        before.push(ip);
    }
}

/// `ping-paths GRANTED_V4 GRANTED_V6 OTHER_V4 OTHER_V6`, under `[broker.net]
/// ping` granting the first two: an echo request reaches them (and is
/// answered), and no other address by any send (sendto, sendmsg, sendmmsg,
/// connect then send); a UDP socket connected to a ping-granted address
/// (ping's source-address probe) sends nothing by any call.
fn ping_paths(r: &mut Report, granted: &[std::net::IpAddr], other: &[std::net::IpAddr]) {
    for (g, o) in granted.iter().zip(other) {
        let (fam, proto, echo_type) = if g.is_ipv4() { (libc::AF_INET, libc::IPPROTO_ICMP, 8u8) } else { (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8) };
        let echo = [echo_type, 0, 0, 0, 0, 0, 0, 1, b'c', b'a', b'p', b'x'];
        let ping_socket = || sys!(libc::SYS_socket, fam, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, proto).0;
        let fd = ping_socket();
        r.check(&format!("a ping socket for {g} is made (positive control)"), fd >= 0, format!("fd {fd}"));
        if fd < 0 {
            continue;
        }
        let (to_g, g_len) = raw_addr(std::net::SocketAddr::new(*g, 0));
        let (rc, e) = sys!(libc::SYS_sendto, fd, echo.as_ptr(), echo.len(), 0, &to_g as *const _, g_len);
        r.check(&format!("an echo request to the granted {g} leaves (positive control)"), rc == echo.len() as i64, format!("rc={rc} {e}"));
        r.check(&format!("{g} answers it (positive control)"), replies_until(fd, g).is_some(), "");
        // IPv6 ping sockets report no drop to the sender (ping_v6_sendmsg
        // drops the result of the push): what counts is that no answer
        // comes from `o`. Answers over the loopback come in the order of
        // the requests, so once `g` answered the request sent after these,
        // any answer of `o` to them is in.
        let (to_o, o_len) = raw_addr(std::net::SocketAddr::new(*o, 0));
        let mut sent = Vec::new();
        let (rc, e) = sys!(libc::SYS_sendto, fd, echo.as_ptr(), echo.len(), 0, &to_o as *const _, o_len);
        sent.push(("sendto", rc, e));
        let mut iov = libc::iovec { iov_base: echo.as_ptr() as *mut _, iov_len: echo.len() };
        // SAFETY: msghdr is plain data; the fields set below point at live locals.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = &to_o as *const _ as *mut _;
        msg.msg_namelen = o_len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let (rc, e) = sys!(libc::SYS_sendmsg, fd, &msg as *const libc::msghdr, 0);
        sent.push(("sendmsg", rc, e));
        let mut mm = [libc::mmsghdr { msg_hdr: msg, msg_len: 0 }];
        let (rc, e) = sys!(libc::SYS_sendmmsg, fd, mm.as_mut_ptr(), 1, 0);
        sent.push(("sendmmsg", rc, e));
        let (rc, e) = sys!(libc::SYS_sendto, fd, echo.as_ptr(), echo.len(), 0, &to_g as *const _, g_len);
        r.check(&format!("another echo request to {g} leaves (positive control)"), rc == echo.len() as i64, format!("rc={rc} {e}"));
        let answered_by_o = replies_until(fd, g).map(|from| from.contains(o));
        for (call, rc, e) in sent {
            let refused = rc < 0 && e.raw_os_error() == Some(EPERM);
            r.check(
                &format!("echo request to {o} by {call}"),
                refused || answered_by_o == Some(false),
                format!("rc={rc} {e}; answers from it: {answered_by_o:?}"),
            );
        }
        let fd2 = ping_socket();
        let (rc, e) = sys!(libc::SYS_connect, fd2, &to_o as *const _, o_len);
        if rc < 0 {
            r.expect_fail(&format!("connect a ping socket to {o}"), rc, e, &[EPERM]);
        } else {
            let (rc, e) = sys!(libc::SYS_sendto, fd2, echo.as_ptr(), echo.len(), 0, 0, 0);
            r.expect_fail(&format!("echo request to {o} on a ping socket connected there"), rc, e, &[EPERM]);
        }
        // ping's probe: a UDP socket connected to the granted address.
        let (to_g9, g9_len) = raw_addr(std::net::SocketAddr::new(*g, 1025));
        let udp = sys!(libc::SYS_socket, fam, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).0;
        let (rc, e) = sys!(libc::SYS_connect, udp, &to_g9 as *const _, g9_len);
        r.check(&format!("a UDP socket connects to the ping-granted {g} (ping's source-address probe; positive control)"), rc == 0, format!("rc={rc} {e}"));
        let (rc, e) = sys!(libc::SYS_sendto, udp, echo.as_ptr(), echo.len(), 0, 0, 0);
        r.expect_fail(&format!("a datagram by send on that UDP socket to {g}:1025"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_write, udp, echo.as_ptr(), echo.len());
        r.expect_fail(&format!("a datagram by write on that UDP socket to {g}:1025"), rc, e, &[EPERM]);
        msg.msg_name = std::ptr::null_mut();
        msg.msg_namelen = 0;
        let mut mm = [libc::mmsghdr { msg_hdr: msg, msg_len: 0 }];
        let (rc, e) = sys!(libc::SYS_sendmmsg, udp, mm.as_mut_ptr(), 1, 0);
        r.expect_fail(&format!("a datagram by sendmmsg on that UDP socket to {g}:1025"), rc, e, &[EPERM]);
        let (to_o9, o9_len) = raw_addr(std::net::SocketAddr::new(*o, 1025));
        let udp2 = sys!(libc::SYS_socket, fam, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).0;
        let (rc, e) = sys!(libc::SYS_connect, udp2, &to_o9 as *const _, o9_len);
        r.expect_fail(&format!("a UDP connect to {o}, which no grant covers"), rc, e, &[EPERM]);
    }
}

fn v4(port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    sa
}

/// 45: every way to a TCP port besides connect() on a TCP socket. Each
/// attempt that the sandbox lets through also reads from the socket and
/// prints what came back, so the test sees the host's secret if it leaked.
fn net_paths(r: &mut Report, port: u16) {
    let sa = v4(port);
    let (sa_ptr, sa_len) = ((&sa as *const libc::sockaddr_in).cast::<libc::sockaddr>(), std::mem::size_of_val(&sa) as u32);
    let after = |what: &str, fd: i32, rc: i64| {
        if rc >= 0 {
            println!("{what}: read {:?}", read_witness(fd));
        }
    };
    // MPTCP: a stream socket that falls back to plain TCP with a peer that
    // does not speak it; Landlock's TCP rules do not cover it.
    for fam in [libc::AF_INET, libc::AF_INET6] {
        let (fd, e) = sys!(libc::SYS_socket, fam, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, libc::IPPROTO_MPTCP);
        r.expect_fail(&format!("45 create an MPTCP socket (family {fam})"), fd, e, &[libc::EPROTONOSUPPORT]);
        if fd >= 0 && fam == libc::AF_INET {
            let (rc, _) = sys!(libc::SYS_connect, fd, sa_ptr, sa_len);
            after("45 MPTCP connect", fd as i32, rc);
        }
    }
    // Other IP protocols: SCTP (a stream of its own), UDP-Lite.
    for (ty, proto) in [(libc::SOCK_STREAM, libc::IPPROTO_SCTP), (libc::SOCK_SEQPACKET, libc::IPPROTO_SCTP), (libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE)] {
        let (fd, e) = sys!(libc::SYS_socket, libc::AF_INET, ty | libc::SOCK_CLOEXEC, proto);
        r.expect_fail(&format!("45 create an IP socket of protocol {proto}"), fd, e, &[libc::EPROTONOSUPPORT]);
    }
    // TCP Fast Open: the connect happens inside sendto / sendmsg / sendmmsg.
    let tcp = || sys!(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).0;
    send_each_way(sa_ptr, sa_len, libc::MSG_FASTOPEN, tcp, |call, fd, rc, e| {
        r.expect_fail(&format!("45 {call}(MSG_FASTOPEN) to an ungranted port"), rc, e, &[libc::EOPNOTSUPP]);
        after(&format!("45 {call}(MSG_FASTOPEN)"), fd as i32, rc);
    });
    // TCP_FASTOPEN_CONNECT: connect() returns at once and the real connect
    // happens at the first write.
    let fd = tcp();
    let one: libc::c_int = 1;
    let (rc, e) = sys!(libc::SYS_setsockopt, fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, &one as *const libc::c_int, 4);
    r.expect_fail("45 setsockopt(TCP_FASTOPEN_CONNECT)", rc, e, &[libc::ENOPROTOOPT]);
    if rc >= 0 {
        let (rc, _) = sys!(libc::SYS_connect, fd, sa_ptr, sa_len);
        let (w, _) = sys!(libc::SYS_write, fd, b"x".as_ptr(), 1);
        after("45 TCP_FASTOPEN_CONNECT connect and write", fd as i32, rc.min(w));
    }
    // The ordinary path, for comparison: Landlock refuses it.
    let (rc, e) = connect_tcp(port);
    r.expect_fail("45 plain connect to the same port (Landlock)", rc, e, &[EACCES]);
}

/// The local port of the probe's socket `fd`.
fn local_port(fd: i64) -> u16 {
    // SAFETY: sockaddr_in6 is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&sa) as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `sa`.
    unsafe { libc::getsockname(fd as i32, (&mut sa as *mut libc::sockaddr_in6).cast(), &mut len) };
    u16::from_be(sa.sin6_port)
}

/// 52: listen() on the host TCP socket `fd`, which has no port of its own:
/// the kernel would bind a random port on every address.
fn listen_unbound(r: &mut Report, what: &str, fd: i64) {
    let (rc, e) = sys!(libc::SYS_listen, fd, 16);
    r.expect_fail(&format!("52 listen() on {what}"), rc, e, &[EACCES]);
    if rc >= 0 {
        println!("52 listen() on {what} opened port {} on every address", local_port(fd));
    }
}

/// 52 under net = host: listen() on sockets never bound (v4, v6), and on one
/// whose connect to `refusing` (a granted port where nothing listens) failed,
/// which releases the port the connect gave it; then the control, a bind to
/// the granted `bindable` and a listen there.
fn net_listen(r: &mut Report, refusing: u16, bindable: u16) {
    for (fam, name) in [(libc::AF_INET, "IPv4"), (libc::AF_INET6, "IPv6")] {
        let (fd, _) = sys!(libc::SYS_socket, fam, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        listen_unbound(r, &format!("a never-bound {name} socket"), fd);
    }
    let (fd, _) = sys!(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    let sa = v4(refusing);
    let (rc, e) = sys!(libc::SYS_connect, fd, &sa as *const libc::sockaddr_in, std::mem::size_of_val(&sa));
    r.check("52 control: the granted connect meets a closed port", rc < 0 && e.raw_os_error() == Some(libc::ECONNREFUSED), format!("rc={rc} {e}"));
    listen_unbound(r, "a socket whose connect failed", fd);
    let (fd, _) = sys!(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    let sa = v4(bindable);
    let (rc, e) = sys!(libc::SYS_bind, fd, &sa as *const libc::sockaddr_in, std::mem::size_of_val(&sa));
    r.check("52 control: bind to a granted port", rc == 0, format!("rc={rc} {e}"));
    let (rc, e) = sys!(libc::SYS_listen, fd, 16);
    r.check("52 control: listen() on the socket bound to a granted port", rc == 0 && local_port(fd) == bindable, format!("rc={rc} {e}"));
    let (rc, e) = sys!(libc::SYS_listen, fd, 32);
    r.check("52 control: listen() again changes the backlog", rc == 0, format!("rc={rc} {e}"));
}

/// One byte to `sa` with `flags` by sendto, sendmsg and sendmmsg, each on the
/// socket `sock()` gives; `each(call, fd, rc, error)` after every call.
fn send_each_way(sa: *const libc::sockaddr, sa_len: u32, flags: i32, mut sock: impl FnMut() -> i64, mut each: impl FnMut(&str, i64, i64, Error)) {
    let fd = sock();
    let (rc, e) = sys!(libc::SYS_sendto, fd, b"x".as_ptr(), 1, flags, sa, sa_len);
    each("sendto", fd, rc, e);
    let mut iov = libc::iovec { iov_base: b"x".as_ptr() as *mut libc::c_void, iov_len: 1 };
    // SAFETY: msghdr is plain data; all-zero is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = sa as *mut libc::c_void;
    msg.msg_namelen = sa_len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let fd = sock();
    let (rc, e) = sys!(libc::SYS_sendmsg, fd, &msg as *const libc::msghdr, flags);
    each("sendmsg", fd, rc, e);
    let fd = sock();
    let mut mm = libc::mmsghdr { msg_hdr: msg, msg_len: 0 };
    let (rc, e) = sys!(libc::SYS_sendmmsg, fd, &mut mm as *mut libc::mmsghdr, 1, flags);
    each("sendmmsg", fd, rc, e);
}

fn connect_tcp(port: u16) -> (i64, Error) {
    connect_v4([127, 0, 0, 1], port)
}

fn bind_tcp(port: u16) -> (i64, Error) {
    bind_tcp_at([127, 0, 0, 1], port)
}

/// bind() of a new TCP socket to `ip`:`port`.
fn bind_tcp_at(ip: [u8; 4], port: u16) -> (i64, Error) {
    // SAFETY: socket/bind with a valid sockaddr_in.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from_be_bytes(ip).to_be();
        let rc = libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&sa) as u32) as i64;
        (rc, Error::last_os_error())
    }
}

fn connect_unix(path: &[u8]) -> (i64, Error) {
    // SAFETY: socket/connect with a valid sockaddr_un of the given length.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as u16;
        for (d, s) in sa.sun_path.iter_mut().zip(path) {
            *d = *s as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + path.len()) as u32;
        let rc = libc::connect(fd, (&sa as *const libc::sockaddr_un).cast(), len) as i64;
        (rc, Error::last_os_error())
    }
}

/// In a container living in a mount namespace not its own (capexec-oci
/// without a mount namespace in the config): the host file `marker` stays
/// out of reach whatever the way: by path, past `..`, by a chroot and a walk
/// up from outside it (the classic escape, with CAP_SYS_CHROOT), through
/// /proc/1/root, and by setns into /proc/self/ns/mnt (the host's, here).
/// `scratch` is a writable directory of the view.
fn foreign_mount_ns(r: &mut Report, marker: &str, scratch: &str) {
    let (rc, e) = open(marker, libc::O_RDONLY);
    r.expect_fail("open the host's file by its path", rc, e, &[ENOENT, EACCES]);
    let (rc, e) = open(&format!("/../../..{marker}"), libc::O_RDONLY);
    r.expect_fail("open it past /..", rc, e, &[ENOENT, EACCES]);
    let (rc, e) = open(&format!("/proc/1/root{marker}"), libc::O_RDONLY);
    r.expect_fail("open it through /proc/1/root", rc, e, &[ENOENT, EACCES]);

    let ns = c("/proc/self/ns/mnt");
    // SAFETY: valid C string; the fd is leaked on purpose, the probe exits soon.
    let fd = unsafe { libc::open(ns.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        println!("BLOCKED open /proc/self/ns/mnt: {}", Error::last_os_error());
    }
    for nstype in [libc::CLONE_NEWNS, 0].into_iter().filter(|_| fd >= 0) {
        let (rc, e) = sys!(libc::SYS_setns, fd, nstype);
        r.expect_fail(&format!("setns into /proc/self/ns/mnt (nstype {nstype:#x})"), rc, e, &[EPERM]);
    }

    // A mount namespace of its own copies the one lived in (the host's), but
    // the root stays the view's: the host's file is still not there.
    let (rc, e) = sys!(libc::SYS_unshare, libc::CLONE_NEWNS);
    println!("INFO unshare(CLONE_NEWNS): rc {rc} {e}");
    let (rc, e) = open(marker, libc::O_RDONLY);
    r.expect_fail("open the host's file after unshare(CLONE_NEWNS)", rc, e, &[ENOENT, EACCES]);

    // Init (the shell's parent: `sh -c "/probe ..."`) holds the view's own
    // mount namespace open at its fd 0: not the program's to take.
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
    };
    if let Some(init) = parent_of(std::os::unix::process::parent_id()) {
        let (rc, e) = open(&format!("/proc/{init}/fd/0"), libc::O_RDONLY);
        // ENOENT: the view's proc hides processes the caller cannot ptrace.
        r.expect_fail(&format!("open init's fd 0 (/proc/{init}/fd/0)"), rc, e, &[EACCES, EPERM, ENOENT]);
    }

    // chroot into a subdirectory, keeping the working directory outside
    // it, then `..` up as far as it goes and chroot there.
    let sub = format!("{scratch}/chroot-escape");
    let _ = std::fs::create_dir_all(&sub);
    let _ = std::env::set_current_dir("/");
    let (rc, e) = sys!(libc::SYS_chroot, c(&sub).as_ptr());
    if rc != 0 {
        println!("BLOCKED chroot {sub}: {e}");
        return;
    }
    for _ in 0..64 {
        let _ = sys!(libc::SYS_chdir, c("..").as_ptr());
    }
    let (rc, e) = sys!(libc::SYS_chroot, c(".").as_ptr());
    println!("INFO chroot . after the walk up: rc {rc} {e}");
    let (rc, e) = open(marker, libc::O_RDONLY);
    r.expect_fail("open the host's file after a chroot escape", rc, e, &[ENOENT, EACCES]);
    // The walk ended at the view's root, not above it.
    r.check("the walk up ends at the view's root", std::fs::metadata("/bin/busybox").is_ok(), "/bin/busybox is there");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut r = Report { escaped: 0 };
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "fs" => fs(&mut r),
        "foreign-mount-ns" => foreign_mount_ns(&mut r, &arg(2), &arg(3)),
        "identity" => identity(&mut r),
        "privileged" => privileged(&mut r),
        "seccomp" => seccomp_integrity(&mut r),
        "processes" => processes(&mut r, arg(2).parse().unwrap_or(1)),
        "fds" => fds(&mut r, &arg(2)),
        "reopen" => {
            let mut b = [0u8; 1];
            // SAFETY: reading into a valid buffer from fd 3.
            let n = unsafe { libc::read(3, b.as_mut_ptr().cast(), 1) };
            r.check("24 preopened fd 3 is readable", n == 1, format!("read returned {n}"));
            for (how, fl) in [("O_WRONLY", libc::O_WRONLY), ("O_RDWR", libc::O_RDWR), ("O_WRONLY|O_TRUNC", libc::O_WRONLY | libc::O_TRUNC)] {
                let (rc, e) = open("/proc/self/fd/3", fl);
                r.expect_fail(&format!("24 reopen read-only fd 3 via /proc/self/fd as {how}"), rc, e, &[EACCES, EPERM]);
            }
            // Landlock lets a service truncate files under /proc (pam_loginuid
            // truncates /proc/self/loginuid); through the magic link the
            // file's own hierarchy decides, which allows no truncation.
            let link = c("/proc/self/fd/3");
            let (rc, e) = sys!(libc::SYS_truncate, link.as_ptr(), 0);
            r.expect_fail("24 truncate read-only fd 3's file via /proc/self/fd", rc, e, &[EACCES, EPERM]);
        }
        "preopen-dir-write" => {
            let name = c("capexec-escape-file");
            // SAFETY: openat on the preopened directory fd 3.
            let rc = unsafe { libc::openat(3, name.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) } as i64;
            r.expect_fail("2 create a file through a preopened read-only directory (read-only copy, Landlock)", rc, Error::last_os_error(), &[libc::EROFS]);
            let dot = c("readme");
            // SAFETY: as above.
            let rc = unsafe { libc::openat(3, dot.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            r.check("2 reading through it still works", rc >= 0, format!("openat readme = {rc}"));
        }
        "preopen-escape" => preopen_escape(&mut r),
        "host-udp" => host_udp(&mut r, arg(2).parse().unwrap_or(1), &[format!("127.0.0.1:{}", arg(3)).parse().unwrap()]),
        "host-udp6" => {
            let secrets = [format!("[::1]:{}", arg(3)).parse().unwrap(), format!("[::ffff:127.0.0.1]:{}", arg(4)).parse().unwrap()];
            host_udp(&mut r, arg(2).parse().unwrap_or(1), &secrets)
        }
        "host-net" => host_net(&mut r, &(2..10).map(|i| arg(i).parse().unwrap_or(1)).collect::<Vec<u16>>()),
        "host-net-none" => host_net_none(&mut r, &(2..7).map(|i| arg(i).parse().unwrap_or(1)).collect::<Vec<u16>>()),
        "host-route" => host_route(&mut r, arg(2).parse().unwrap_or(1), arg(3).parse().unwrap_or(1)),
        "remove-granted" => remove_granted(&mut r, &arg(2)),
        "own-udp" => own_udp(&mut r, arg(2).parse().unwrap_or(1), arg(3).parse().unwrap_or(1)),
        "append-only" => append_only(&mut r, &arg(2)),
        "mdwe-files" => mdwe_files(&mut r, &arg(2)),
        "host-socket-reuse" => host_socket_reuse(&mut r, arg(2).parse().unwrap_or(1), arg(3).parse().unwrap_or(1)),
        "broker-stall" => broker_stall(&mut r, &arg(2), arg(3).parse().unwrap_or(1)),
        "fork-bomb" => fork_bomb(&mut r, arg(2).parse().unwrap_or(4096), arg(3) == "fork"),
        "memfd-exec" => memfd_exec(&mut r),
        "net-none" => {
            let (rc, e) = connect_tcp(arg(2).parse().unwrap_or(1));
            r.expect_fail("25 connect to a host loopback TCP port", rc, e, &[libc::ECONNREFUSED, EACCES, libc::ENETUNREACH]);
            let (rc, e) = connect_unix(arg(3).as_bytes());
            r.expect_fail("25 connect to a host path unix socket", rc, e, &[ENOENT, EACCES, libc::ECONNREFUSED]);
            let mut abs = vec![0u8];
            abs.extend(arg(4).as_bytes());
            let (rc, e) = connect_unix(&abs);
            r.expect_fail("25 connect to a host abstract unix socket", rc, e, &[libc::ECONNREFUSED, EPERM]);
        }
        "net-host" => {
            let (rc, e) = connect_tcp(arg(2).parse().unwrap_or(1));
            r.expect_fail("25 connect to an undeclared host TCP port (Landlock)", rc, e, &[EACCES]);
            let mut abs = vec![0u8];
            abs.extend(arg(3).as_bytes());
            let (rc, e) = connect_unix(&abs);
            r.expect_fail("25 connect to a host abstract unix socket (Landlock scope)", rc, e, &[EPERM]);
            let (rc, e) = bind_tcp(arg(4).parse().unwrap_or(1));
            r.expect_fail("25 bind an undeclared TCP port (Landlock)", rc, e, &[EACCES]);
        }
        // 45: `net-paths PORT`, under net = host with no grant for PORT,
        // where a host listener answers every connection with a secret: the
        // paths to a TCP port that Landlock's connect rule does not see.
        "net-paths" => net_paths(&mut r, arg(2).parse().unwrap_or(1)),
        // 52: `net-listen REFUSING BINDABLE` under net = host, REFUSING a
        // granted connect port where nothing listens, BINDABLE a granted
        // bind port.
        // 52: `udp-bind PORT`, under net = host with CAP_NET_BIND_SERVICE
        // declared and a low TCP port to bind: a UDP bind of the low PORT,
        // which the service's own rights do not allow on the host (the
        // broker, which binds its TCP sockets, may hold the capability).
        "udp-bind" => {
            let (fd, _) = sys!(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            let sa = v4(arg(2).parse().unwrap_or(1));
            let (rc, e) = sys!(libc::SYS_bind, fd, &sa as *const libc::sockaddr_in, std::mem::size_of_val(&sa));
            r.expect_fail("52 bind a low UDP port on the host", rc, e, &[EACCES]);
        }
        "net-listen" => net_listen(&mut r, arg(2).parse().unwrap_or(1), arg(3).parse().unwrap_or(1)),
        "setid" => setid(&mut r),
        "ping-paths" => {
            let ips: Vec<std::net::IpAddr> = args[2..].iter().filter_map(|a| a.parse().ok()).collect();
            ping_paths(&mut r, &ips[..ips.len() / 2], &ips[ips.len() / 2..]);
        }
        "privdrop" => privdrop(&mut r, u64::from_str_radix(&arg(2), 16).unwrap_or(0)),
        "sockets" => {
            let (rc, e) = sys!(libc::SYS_socket, libc::AF_PACKET, libc::SOCK_RAW, 0x0300);
            r.expect_fail("26 AF_PACKET socket", rc, e, &[EPERM]);
            let (rc, e) = sys!(libc::SYS_socket, libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            r.expect_fail("26 raw IPv4 socket (protocol rule)", rc, e, &[libc::EPROTONOSUPPORT]);
            let (rc, e) = sys!(libc::SYS_socket, libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW);
            r.expect_fail("26 raw IPv6 socket (protocol rule)", rc, e, &[libc::EPROTONOSUPPORT]);
            let (rc, e) = sys!(libc::SYS_socket, libc::AF_VSOCK, libc::SOCK_STREAM, 0);
            r.expect_fail("26 AF_VSOCK socket", rc, e, &[EPERM]);
            // Raw sockets of the protocols the rule lets through: with
            // CAP_NET_RAW on the host they would build their own UDP and TCP
            // packets, past every hook of the network guard.
            for (fam, name) in [(libc::AF_INET, "IPv4"), (libc::AF_INET6, "IPv6")] {
                for proto in [libc::IPPROTO_UDP, libc::IPPROTO_TCP, 0] {
                    let (rc, e) = sys!(libc::SYS_socket, fam, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto);
                    r.expect_fail(&format!("26 raw {name} socket of protocol {proto} (type rule)"), rc, e, &[EPERM, libc::EPROTONOSUPPORT]);
                }
            }
            let caps = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            println!("{}", caps.lines().find(|l| l.starts_with("CapEff:")).unwrap_or("CapEff: ?"));
        }
        "sysv" => {
            let key: i32 = arg(2).parse().unwrap_or(0);
            let (rc, e) = sys!(libc::SYS_shmget, key, 0, 0);
            r.expect_fail("27 host SysV shared memory", rc, e, &[ENOENT]);
        }
        "signal-host" => signal_host(&mut r, arg(2).parse::<i32>().unwrap_or(1), arg(3) == "fasync"),
        // Positive controls: what an option opened up really is open.
        "io-uring-allowed" => {
            let params = [0u8; 120];
            let (rc, e) = sys!(libc::SYS_io_uring_setup, 1, params.as_ptr());
            r.check("--allow-syscall @io-uring lets io_uring_setup through", rc >= 0, format!("rc={rc} {e}"));
        }
        // Host-side helpers.
        "make-shm" => {
            // SAFETY: creates a SysV segment for the sysv case to look for.
            let id = unsafe { libc::shmget(arg(2).parse().unwrap_or(0), 4096, libc::IPC_CREAT | 0o666) };
            println!("{id}");
            std::process::exit(if id >= 0 { 0 } else { 2 });
        }
        "rm-shm" => {
            // SAFETY: removes the segment created by make-shm.
            unsafe { libc::shmctl(arg(2).parse().unwrap_or(-1), libc::IPC_RMID, std::ptr::null_mut()) };
            return;
        }
        "with-seccomp-deny" => with_seccomp_deny(&args[2..]),
        "broker-fs" => broker_fs(&mut r, &arg(2)),
        "broker-race" => broker_race(&mut r, &arg(2), &arg(3), arg(4).parse().unwrap_or(10000)),
        "broker-signals" => broker_signals(&mut r, &arg(2), &arg(3), arg(4).parse().unwrap_or(2000)),
        "broker-pid-reuse" => broker_pid_reuse(&mut r, &arg(2), &arg(3), arg(4).parse().unwrap_or(40)),
        // `dgram-reach PATH NAME` with fd 3 a preopened unixgram socket (bound
        // on the host): it reaches no host socket the service could not reach
        // itself, neither the path (outside the view) nor the abstract NAME
        // (Landlock's scope), by sendto or connect.
        "dgram-reach" => {
            let unix = |addr: &[u8]| {
                // SAFETY: sockaddr_un is plain data; all-zero is valid.
                let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
                sa.sun_family = libc::AF_UNIX as u16;
                for (d, s) in sa.sun_path.iter_mut().zip(addr) {
                    *d = *s as libc::c_char;
                }
                (sa, (std::mem::size_of::<libc::sa_family_t>() + addr.len()) as libc::socklen_t)
            };
            let path = arg(2);
            let abstract_name: Vec<u8> = std::iter::once(0).chain(arg(3).bytes()).collect();
            for (what, addr) in [("a host path outside the view", path.as_bytes()), ("a host abstract socket", &abstract_name[..])] {
                let (sa, len) = unix(addr);
                // SAFETY: sendto/connect on the probe's fd 3 with a valid sockaddr_un.
                let (rc, e) =
                    unsafe { (libc::sendto(3, b"x".as_ptr().cast(), 1, 0, (&sa as *const libc::sockaddr_un).cast(), len) as i64, Error::last_os_error()) };
                r.expect_fail(&format!("sendto {what} through the preopened datagram socket"), rc, e, &[libc::ENOENT, libc::EPERM, libc::ECONNREFUSED]);
                // SAFETY: as above.
                let (rc, e) = unsafe { (libc::connect(3, (&sa as *const libc::sockaddr_un).cast(), len) as i64, Error::last_os_error()) };
                r.expect_fail(&format!("connect the preopened datagram socket to {what}"), rc, e, &[libc::ENOENT, libc::EPERM, libc::ECONNREFUSED]);
            }
        }
        // `bind-range FIRST LAST` under --bind-tcp FIRST-LAST: every port of
        // the range binds, the ports on either side do not.
        "bind-range" => {
            let (first, last): (u16, u16) = (arg(2).parse().unwrap_or(1), arg(3).parse().unwrap_or(1));
            for p in [first, first + (last - first) / 2, last] {
                let (rc, e) = bind_tcp(p);
                r.check(&format!("control: bind {p}, in the declared range"), rc == 0, format!("bind = {rc} {e}"));
            }
            for p in [first - 1, last + 1] {
                let (rc, e) = bind_tcp(p);
                r.expect_fail(&format!("bind {p}, next to the declared range"), rc, e, &[EACCES]);
            }
        }
        "broker-net" => {
            let p = |i: usize| arg(i).parse().unwrap_or(1);
            broker_net(&mut r, p(2), p(3), p(4), p(5))
        }
        // A notify-type service: `sd-notify MESSAGE [PINGS]` sends MESSAGE ("\n"
        // separates fields) to $NOTIFY_SOCKET, then WATCHDOG=1 PINGS times at
        // WATCHDOG_USEC/4, then sleeps without pinging.
        "systemd" => systemd_side(),
        "wx-memory" => wx_memory(&mut r),
        "sd-notify" => sd_notify(&arg(2).replace("\\n", "\n"), arg(3).parse().unwrap_or(0)),
        other => {
            eprintln!("escape-probe: unknown case `{other}`");
            std::process::exit(2);
        }
    }
    std::process::exit(if r.escaped == 0 { 0 } else { 1 });
}

/// `with-seccomp-deny NAME... -- CMD ARGS`: runs CMD with the named syscalls
/// answering ENOSYS, as on a kernel that lacks them.
fn with_seccomp_deny(args: &[String]) -> ! {
    let split = args.iter().position(|a| a == "--").expect("usage: with-seccomp-deny NAME... -- CMD");
    let mut rules = std::collections::BTreeMap::new();
    for name in &args[..split] {
        let nr = match name.as_str() {
            "landlock_create_ruleset" => libc::SYS_landlock_create_ruleset,
            "landlock_add_rule" => libc::SYS_landlock_add_rule,
            "landlock_restrict_self" => libc::SYS_landlock_restrict_self,
            "seccomp" => libc::SYS_seccomp,
            other => panic!("with-seccomp-deny: unsupported syscall {other}"),
        };
        rules.insert(nr, vec![]);
    }
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(ENOSYS as u32),
        seccompiler::TargetArch::x86_64,
    )
    .unwrap();
    let prog: seccompiler::BpfProgram = filter.try_into().unwrap();
    seccompiler::apply_filter(&prog).unwrap();
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&args[split + 1]).args(&args[split + 2..]).exec();
    eprintln!("with-seccomp-deny: exec {}: {err}", args[split + 1]);
    std::process::exit(2);
}

fn sd_notify(msg: &str, pings: u32) -> ! {
    let path = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET is set for notify services");
    let sock = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    sock.send_to(msg.as_bytes(), &path).unwrap_or_else(|e| panic!("send to {path}: {e}"));
    println!("sent {msg:?} to {path}");
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    for _ in 0..pings {
        std::thread::sleep(std::time::Duration::from_micros(usec / 4));
        sock.send_to(b"WATCHDOG=1", &path).expect("watchdog ping");
    }
    if pings > 0 {
        println!("stopped pinging after {pings}");
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// `wx-memory`: memory that is writable and executable at once, or made
/// executable after being written, as injected code needs (refused under
/// `memory_deny_write_execute`, i.e. PR_SET_MDWE).
fn wx_memory(r: &mut Report) {
    let page = 4096;
    // SAFETY: anonymous mappings of our own; the pointer is only passed back to the kernel.
    unsafe {
        let p = libc::mmap(std::ptr::null_mut(), page, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        let rc = if p == libc::MAP_FAILED { -1 } else { 0 };
        r.expect_fail("mmap PROT_WRITE|PROT_EXEC", rc, Error::last_os_error(), &[libc::EACCES]);
        let q = libc::mmap(std::ptr::null_mut(), page, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        assert_ne!(q, libc::MAP_FAILED, "a plain writable mapping must work");
        let rc = libc::mprotect(q, page, libc::PROT_READ | libc::PROT_EXEC);
        r.expect_fail("mprotect written memory to PROT_EXEC", rc as i64, Error::last_os_error(), &[libc::EACCES]);
    }
}

/// `systemd`: what a service started by systemd through `capexec exec` sees.
/// Prints its environment, tries to write into its credentials directory,
/// says READY=1 (with a MAINPID of its own) and the rest of the protocol, then
/// accepts one connection on each LISTEN_FDS socket and answers with the fd's
/// number and name. Exits 7, for the test to find as capexec's status.
fn systemd_side() -> ! {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let n: i32 = env("LISTEN_FDS").parse().unwrap_or(0);
    let me = std::process::id().to_string();
    println!("LISTEN_FDS={n} LISTEN_FDNAMES={} LISTEN_PID-is-mine={}", env("LISTEN_FDNAMES"), env("LISTEN_PID") == me);
    println!("WATCHDOG_USEC={} CAPEXEC_BROKER_FD={}", env("WATCHDOG_USEC"), env("CAPEXEC_BROKER_FD"));
    let creds = env("CREDENTIALS_DIRECTORY");
    println!("credential token={:?}", std::fs::read_to_string(format!("{creds}/token")).unwrap_or_else(|e| format!("unreadable: {e}")));
    match std::fs::write(format!("{creds}/planted"), "x") {
        Ok(()) => println!("ESCAPED credentials: wrote into {creds}"),
        Err(e) => println!("BLOCKED credentials write: {e}"),
    }
    match std::fs::write(format!("{creds}/token"), "x") {
        Ok(()) => println!("ESCAPED credentials: overwrote {creds}/token"),
        Err(e) => println!("BLOCKED credentials overwrite: {e}"),
    }
    let path = env("NOTIFY_SOCKET");
    let sock = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    for msg in ["STATUS=probing\nMAINPID=1\nREADY=1", "WATCHDOG=1", "RELOADING=1\nMONOTONIC_USEC=1", "READY=1\nSTATUS=reloaded", "FDSTORE=1"] {
        match sock.send_to(msg.as_bytes(), &path) {
            Ok(_) => println!("notified {msg:?}"),
            Err(e) => println!("notify {path}: {e}"),
        }
    }
    let names: Vec<String> = env("LISTEN_FDNAMES").split(':').map(str::to_owned).collect();
    for (i, fd) in (3..3 + n).enumerate() {
        // SAFETY: accept on an fd number LISTEN_FDS says is a listening socket; no address wanted.
        let c = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
        if c < 0 {
            println!("accept on fd {fd}: {}", Error::last_os_error());
            continue;
        }
        let line = format!("fd {fd} name {}\n", names.get(i).map(String::as_str).unwrap_or("?"));
        // SAFETY: writing a valid buffer to the connection we own, then closing it.
        unsafe {
            libc::write(c, line.as_ptr().cast(), line.len());
            libc::close(c);
        }
        print!("served {line}");
    }
    let _ = sock.send_to(b"STOPPING=1", &path);
    std::process::exit(7)
}

// ---- ESCAPE-CASES.md sections 5 and 6 through the transparent broker ----

fn read_fd(fd: i64) -> String {
    let mut b = [0u8; 64];
    // SAFETY: reading into a valid buffer from an fd the probe owns.
    let n = unsafe { libc::read(fd as i32, b.as_mut_ptr().cast(), b.len()) };
    // SAFETY: closing an fd the probe owns.
    unsafe { libc::close(fd as i32) };
    String::from_utf8_lossy(&b[..n.max(0) as usize]).into_owned()
}

/// 46: `host-socket-reuse GRANTED SECRET`, in net = none with a grant to
/// connect to the host's GRANTED port and fd 3 a preopened TCP listener: the
/// host sockets the service holds are disconnected (connect with AF_UNSPEC)
/// and aimed at the host's SECRET port, by connect and by Fast Open. Whatever
/// a call that got through reads is printed, so the test sees the secret.
fn host_socket_reuse(r: &mut Report, granted: u16, secret: u16) {
    let sa = v4(secret);
    let (sa_ptr, sa_len) = ((&sa as *const libc::sockaddr_in).cast::<libc::sockaddr>(), std::mem::size_of_val(&sa) as u32);
    // SAFETY: sockaddr is plain data; AF_UNSPEC with zeroes disconnects.
    let mut unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
    unspec.sa_family = libc::AF_UNSPEC as u16;
    let (fd, e) = connect_v4([127, 0, 0, 1], granted);
    r.check("46 control: a granted connect reaches the host", fd >= 0, e);
    for (what, fd) in [("a brokered connection", fd as i32), ("the preopened listener", 3)] {
        let (rc, _) = sys!(libc::SYS_connect, fd, &unspec as *const libc::sockaddr, std::mem::size_of_val(&unspec));
        println!("46 disconnect {what}: {rc}");
        if what == "a brokered connection" {
            // Its port came from the connect, and went with the disconnect.
            listen_unbound(r, "a disconnected brokered connection", fd as i64);
        }
        let (rc, e) = sys!(libc::SYS_sendto, fd, b"x".as_ptr(), 1, libc::MSG_FASTOPEN, sa_ptr, sa_len);
        r.expect_fail(&format!("46 Fast Open from {what} to the host's secret port"), rc, e, &[libc::EOPNOTSUPP]);
        if rc >= 0 {
            println!("46 {what}: read {:?}", read_witness(fd));
        }
        let (rc, e) = sys!(libc::SYS_connect, fd, sa_ptr, sa_len);
        r.expect_fail(&format!("46 connect {what} to the host's secret port"), rc, e, &[EACCES]);
        if rc >= 0 {
            println!("46 {what}: read {:?}", read_witness(fd));
        }
    }
}

/// A sockaddr for `a`: sockaddr_in for IPv4, sockaddr_in6 for IPv6 (a
/// v4-mapped address included).
fn raw_addr(a: std::net::SocketAddr) -> (libc::sockaddr_storage, u32) {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        std::net::SocketAddr::V4(v) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = v.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(v) => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = v.port().to_be();
            sin6.sin6_addr.s6_addr = v.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as u32)
}

/// 46 for datagrams: `host-udp GRANTED SECRET`, in a `net = "none"` service
/// with a preopened UDP socket (fd 3) and a UDP connect grant to GRANTED. The
/// host's sockets it holds send to SECRET (a host UDP server that answers with
/// a secret) by every route that names an address: sendto, sendmsg, sendmmsg,
/// a new connect after a disconnect, a bind elsewhere. Whatever the sandbox
/// lets through is followed by a read, so the test sees the secret if it came.
/// `host-udp6 GRANTED SECRET6 SECRET4`: the same over IPv6 (fd 3 preopened on
/// [::1], the grant to [::1]:GRANTED), to [::1]:SECRET6 and to the v4-mapped
/// [::ffff:127.0.0.1]:SECRET4.
fn host_udp(r: &mut Report, granted: u16, secrets: &[std::net::SocketAddr]) {
    let v6 = secrets.iter().all(|s| s.is_ipv6());
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let mut sockets = vec![("the preopened UDP socket", 3)];
    // GRANTED 0: no broker, only the preopened socket.
    if granted != 0 {
        let g = match v6 {
            true => std::net::SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), granted),
            false => std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), granted),
        };
        let (g, g_len) = raw_addr(g);
        // SAFETY: socket() with constants; the broker makes it a host socket
        // connected to the granted server.
        let brokered = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        let (rc, e) = sys!(libc::SYS_connect, brokered, &g as *const libc::sockaddr_storage, g_len);
        r.check("46 control: a granted UDP connect", rc == 0, e);
        let (rc, e) = sys!(libc::SYS_write, brokered, b"ping".as_ptr(), 4);
        let answer = read_witness(brokered);
        r.check("46 control: the granted server answers", rc == 4 && answer == "hello", format!("{answer:?} {e}"));
        sockets.push(("a brokered UDP socket", brokered));
    }
    for (what, fd) in sockets {
        for secret in secrets {
            let (sa, sa_len) = raw_addr(*secret);
            let sa_ptr = (&sa as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
            // The guard answers EPERM. A v4-mapped destination from a socket
            // bound to an IPv6 address has no route (the kernel's own refusal).
            let refusals: &[i32] = match secret {
                std::net::SocketAddr::V6(v) if v.ip().to_ipv4_mapped().is_some() && what.contains("preopened") => &[EPERM, libc::ENETUNREACH],
                _ => &[EPERM],
            };
            let after = |case: &str, rc: i64| {
                if rc >= 0 {
                    println!("46 {case} from {what} to {secret}: read {:?}", read_witness(fd));
                }
            };
            send_each_way(
                sa_ptr,
                sa_len,
                0,
                || fd as i64,
                |call, _, rc, e| {
                    r.expect_fail(&format!("46 {call} from {what} to the host's secret port {secret}"), rc, e, refusals);
                    after(call, rc);
                },
            );
        }
        // SAFETY: sockaddr is plain data; AF_UNSPEC with zeroes disconnects.
        let mut unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
        unspec.sa_family = libc::AF_UNSPEC as u16;
        let (rc, _) = sys!(libc::SYS_connect, fd, &unspec as *const libc::sockaddr, std::mem::size_of_val(&unspec));
        println!("46 disconnect {what}: {rc}");
        for secret in secrets {
            let (sa, sa_len) = raw_addr(*secret);
            let (rc, e) = sys!(libc::SYS_connect, fd, &sa as *const libc::sockaddr_storage, sa_len);
            r.expect_fail(&format!("46 connect {what} to the host's secret port {secret}"), rc, e, &[EPERM, EACCES]);
            if rc >= 0 {
                let (rc, _) = sys!(libc::SYS_write, fd, b"x".as_ptr(), 1);
                if rc >= 0 {
                    println!("46 connect and write from {what} to {secret}: read {:?}", read_witness(fd));
                }
            }
        }
        // A disconnected datagram socket loses its port, unless bound
        // explicitly: a bind to any other host port must not follow.
        let anywhere = match v6 {
            true => std::net::SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
            false => std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
        };
        let (any, any_len) = raw_addr(anywhere);
        let (rc, e) = sys!(libc::SYS_bind, fd, &any as *const libc::sockaddr_storage, any_len);
        r.expect_fail(&format!("46 bind {what} to a new host port"), rc, e, &[EPERM, EACCES, libc::EINVAL]);
    }
}

/// 65: `host-net UDP SECRET_UDP TCP SECRET_TCP BIND OTHER SECRET_UDP6
/// LISTEN`, in a `net = "host"` service granted `udp:127.0.0.1:UDP`,
/// `tcp:127.0.0.1:TCP`, a UDP bind of 127.0.0.1:BIND and a TCP bind of
/// 127.0.0.1:LISTEN, whose Landlock allows TCP connects to both TCP ports
/// and binds of LISTEN: every socket is the host's, and the network guard
/// holds the grants on all of them. The granted UDP server answers (the
/// guard lets a socket receive its reply), the granted TCP port accepts,
/// and the granted listener listens; the secret servers are reached by no
/// send, connect or bind, over IPv4, IPv6 or a v4-mapped address; a TCP
/// bind of LISTEN on another address (which the broker makes, for its check
/// of listen) is refused; a bind to port 0 passes (the kernel picks it).
fn host_net(r: &mut Report, ports: &[u16]) {
    let [udp, secret_udp, tcp, secret_tcp, bind, other, secret_udp6, listen] = ports[..8] else { panic!("eight ports") };
    let at = |ip: &str, port: u16| -> std::net::SocketAddr { format!("{ip}:{port}").parse().unwrap() };
    let new_udp = |family: i32| -> i64 {
        // SAFETY: socket() with constants.
        unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as i64 }
    };
    let (g, g_len) = raw_addr(at("127.0.0.1", udp));
    let fd = new_udp(libc::AF_INET);
    let (rc, e) = sys!(libc::SYS_sendto, fd, b"ping".as_ptr(), 4, 0, &g as *const libc::sockaddr_storage, g_len);
    let answer = read_witness(fd as i32);
    r.check("65 control: the granted UDP server answers a sendto", rc == 4 && answer == "hello", format!("{answer:?} {e}"));
    udp_secrets_refused(r, "65", &[at("127.0.0.1", secret_udp), at("[::ffff:127.0.0.1]", secret_udp), at("[::1]", secret_udp6)]);
    let bind_at = |addr: std::net::SocketAddr| {
        let (sa, sa_len) = raw_addr(addr);
        let fd = new_udp(if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET });
        sys!(libc::SYS_bind, fd, &sa as *const libc::sockaddr_storage, sa_len)
    };
    let (rc, e) = bind_at(at("127.0.0.1", bind));
    r.check("65 control: the granted UDP bind", rc == 0, e);
    let (rc, e) = bind_at(at("0.0.0.0", 0));
    r.check("65 control: a UDP bind to port 0", rc == 0, e);
    for addr in [at("127.0.0.1", other), at("0.0.0.0", other), at("[::]", other)] {
        let (rc, e) = bind_at(addr);
        r.expect_fail(&format!("65 UDP bind to {addr}"), rc, e, &[EPERM]);
    }
    let (rc, e) = bind_tcp_at([127, 0, 0, 1], listen);
    r.check("65 control: the granted TCP bind", rc == 0, e);
    for ip in [[0, 0, 0, 0], [127, 0, 0, 2]] {
        let (rc, e) = bind_tcp_at(ip, listen);
        r.expect_fail(&format!("65 TCP bind of the granted port on {}", std::net::Ipv4Addr::from(ip)), rc, e, &[EPERM, EACCES]);
    }
    let (fd, e) = connect_v4([127, 0, 0, 1], tcp);
    r.check("65 control: a TCP connect to the granted port", fd >= 0, e);
    tcp_secret_refused(r, "65", secret_tcp);
}

/// Every way a datagram reaches each of `secrets` (UDP servers that answer
/// with a secret) from a new socket, `sendto`, `sendmsg`, `sendmmsg` and a
/// connect, is refused (EPERM): the network guard's check, case `case`.
fn udp_secrets_refused(r: &mut Report, case: &str, secrets: &[std::net::SocketAddr]) {
    let new_udp = |family: i32| -> i64 {
        // SAFETY: socket() with constants.
        unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as i64 }
    };
    for &secret in secrets {
        let (sa, sa_len) = raw_addr(secret);
        let family = if secret.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
        send_each_way(
            (&sa as *const libc::sockaddr_storage).cast(),
            sa_len,
            0,
            || new_udp(family),
            |call, fd, rc, e| {
                r.expect_fail(&format!("{case} {call} to the host's secret UDP port {secret}"), rc, e, &[EPERM]);
                if rc >= 0 {
                    println!("{case} {call} to {secret}: read {:?}", read_witness(fd as i32));
                }
            },
        );
        let fd = new_udp(family);
        let (rc, e) = sys!(libc::SYS_connect, fd, &sa as *const libc::sockaddr_storage, sa_len);
        r.expect_fail(&format!("{case} UDP connect to {secret}"), rc, e, &[EPERM]);
        if rc >= 0 {
            let (rc, _) = sys!(libc::SYS_write, fd, b"x".as_ptr(), 1);
            if rc >= 0 {
                println!("{case} connect and write to {secret}: read {:?}", read_witness(fd as i32));
            }
        }
    }
}

/// A TCP connect to `secret_tcp` on 127.0.0.1, plain and v4-mapped, whose
/// port Landlock allows, is refused (EPERM) by the network guard.
fn tcp_secret_refused(r: &mut Report, case: &str, secret_tcp: u16) {
    let (fd, e) = connect_v4([127, 0, 0, 1], secret_tcp);
    r.expect_fail(&format!("{case} TCP connect to the secret port (Landlock allows the port)"), fd, e, &[EPERM]);
    if fd >= 0 {
        println!("{case} TCP connect to the secret port: read {:?}", read_witness(fd as i32));
    }
    let (fd, e) = connect_v6_mapped([127, 0, 0, 1], secret_tcp);
    r.expect_fail(&format!("{case} TCP connect to the secret port, v4-mapped"), fd, e, &[EPERM]);
    if fd >= 0 {
        println!("{case} TCP connect to the secret port, v4-mapped: read {:?}", read_witness(fd as i32));
    }
}

/// 66: `host-net-none SECRET_UDP SECRET_TCP OTHER SECRET_UDP6 LISTEN`, in a
/// `net = "host"` service with `[broker.net] guard = true` and no grants,
/// whose Landlock allows TCP connects to SECRET_TCP and binds of LISTEN: a
/// host agent that reads the host's network state and should reach no
/// address. It sees the host's interfaces (/proc/net/dev lists more than
/// lo) and may bind UDP port 0; no datagram, UDP connect or bind, TCP
/// connect (plain or v4-mapped) or TCP bind (which the broker makes for its
/// check of listen) reaches anything, over IPv4, IPv6 or a v4-mapped address.
fn host_net_none(r: &mut Report, ports: &[u16]) {
    let [secret_udp, secret_tcp, other, secret_udp6, listen] = ports[..5] else { panic!("five ports") };
    let at = |ip: &str, port: u16| -> std::net::SocketAddr { format!("{ip}:{port}").parse().unwrap() };
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let interfaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    r.check("66 control: the host's interfaces are in sight", interfaces.iter().any(|i| *i != "lo"), format!("{interfaces:?}"));
    udp_secrets_refused(r, "66", &[at("127.0.0.1", secret_udp), at("[::ffff:127.0.0.1]", secret_udp), at("[::1]", secret_udp6)]);
    let bind_at = |addr: std::net::SocketAddr| {
        let (sa, sa_len) = raw_addr(addr);
        // SAFETY: socket() with constants.
        let fd = unsafe { libc::socket(if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET }, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        sys!(libc::SYS_bind, fd, &sa as *const libc::sockaddr_storage, sa_len)
    };
    let (rc, e) = bind_at(at("0.0.0.0", 0));
    r.check("66 control: a UDP bind to port 0", rc == 0, e);
    for addr in [at("127.0.0.1", other), at("0.0.0.0", other), at("[::]", other)] {
        let (rc, e) = bind_at(addr);
        r.expect_fail(&format!("66 UDP bind to {addr}"), rc, e, &[EPERM]);
    }
    for ip in [[127, 0, 0, 1], [0, 0, 0, 0]] {
        let (rc, e) = bind_tcp_at(ip, listen);
        r.expect_fail(&format!("66 TCP bind of the Landlock port on {}", std::net::Ipv4Addr::from(ip)), rc, e, &[EPERM, EACCES]);
    }
    tcp_secret_refused(r, "66", secret_tcp);
}

/// 64: `host-route PORT PORT6`, in a `net = "none"` service granted
/// `udp:127.0.0.9:PORT` and `udp:[::1]:PORT6`, with a preopened UDP socket
/// on 127.0.0.1 (fd 3): datagrams to the granted address that name their
/// own route, whose first hop (127.0.0.1, the test's sniffer on lo sees
/// where they go) is where the kernel sends them: an IPv4 loose source
/// route in an IP_RETOPTS control message of sendmsg and sendmmsg and in
/// the socket's IP_OPTIONS, from the preopened socket and from one the
/// broker moved to the host; and an IPv6 segment routing header
/// (IPV6_RTHDR) on a brokered IPv6 socket. Each is refused (EPERM): the
/// network guard drops such packets as they leave. Each payload holds
/// ROUTE-64, which the sniffer looks for.
fn host_route(r: &mut Report, port: u16, port6: u16) {
    let granted: std::net::SocketAddr = format!("127.0.0.9:{port}").parse().unwrap();
    let granted6: std::net::SocketAddr = format!("[::1]:{port6}").parse().unwrap();
    // Loose source route to 127.0.0.1: type 131, length 7, pointer 4, the
    // hop; a no-op pads it to 8 bytes.
    let lsrr: [u8; 8] = [131, 7, 4, 127, 0, 0, 1, 1];
    let (sa, sa_len) = raw_addr(granted);
    let sa_ptr = (&sa as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: socket() with constants; its first datagram to a granted
    // address makes the broker move it to the host.
    let brokered = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) } as i64;
    let (rc, e) = sys!(libc::SYS_sendto, brokered, b"plain".as_ptr(), 5, 0, sa_ptr, sa_len);
    r.check("64 control: a plain datagram to the granted address", rc == 5, e);
    for (what, fd) in [("the preopened UDP socket", 3i64), ("a brokered UDP socket", brokered)] {
        let payload = b"ROUTE-64-cmsg";
        let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
        let mut control = [0u8; 64];
        // SAFETY: msghdr and cmsghdr are plain data; the control buffer holds
        // one header and the 8 bytes of the option (CMSG_SPACE(8) = 24).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = sa_ptr as *mut libc::c_void;
        msg.msg_namelen = sa_len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: as above: CMSG_SPACE and CMSG_LEN only compute sizes, and
        // the header and data written lie within `control`.
        unsafe {
            msg.msg_controllen = libc::CMSG_SPACE(lsrr.len() as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::IPPROTO_IP;
            (*c).cmsg_type = libc::IP_RETOPTS;
            (*c).cmsg_len = libc::CMSG_LEN(lsrr.len() as u32) as usize;
            std::ptr::copy_nonoverlapping(lsrr.as_ptr(), libc::CMSG_DATA(c), lsrr.len());
        }
        let (rc, e) = sys!(libc::SYS_sendmsg, fd, &msg as *const libc::msghdr, 0);
        r.expect_fail(&format!("64 sendmsg from {what} with a source route in IP_RETOPTS"), rc, e, &[EPERM]);
        let mut mm = libc::mmsghdr { msg_hdr: msg, msg_len: 0 };
        let (rc, e) = sys!(libc::SYS_sendmmsg, fd, &mut mm as *mut libc::mmsghdr, 1, 0);
        // sendmmsg answers the count sent, 0 here, or the error of the first.
        r.expect_fail(&format!("64 sendmmsg from {what} with a source route in IP_RETOPTS"), if rc == 0 { -1 } else { rc }, e, &[EPERM]);
        // Without CAP_NET_RAW in the host's user namespace the kernel
        // refuses an IPv4 source route itself (EPERM), here or above.
        let (rc, e) = sys!(libc::SYS_setsockopt, fd, libc::IPPROTO_IP, libc::IP_OPTIONS, lsrr.as_ptr(), lsrr.len());
        if rc < 0 {
            r.expect_fail(&format!("64 IP_OPTIONS with a source route on {what}"), rc, e, &[EPERM]);
            continue;
        }
        let (rc, e) = sys!(libc::SYS_sendto, fd, b"ROUTE-64-opts".as_ptr(), 13, 0, sa_ptr, sa_len);
        r.expect_fail(&format!("64 sendto from {what} with a source route in IP_OPTIONS"), rc, e, &[EPERM]);
        let (rc, e) = sys!(libc::SYS_setsockopt, fd, libc::IPPROTO_IP, libc::IP_OPTIONS, lsrr.as_ptr(), 0);
        println!("64 IP_OPTIONS cleared on {what}: {rc} {e}");
    }
    // IPv6: a segment routing header (type 4) whose first segment is ::1 and
    // whose last is the granted one; no other address routes locally, so
    // the refusal is the witness here.
    let (sa6, sa6_len) = raw_addr(granted6);
    let sa6_ptr = (&sa6 as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: as above.
    let s6 = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) } as i64;
    let (rc, e) = sys!(libc::SYS_sendto, s6, b"plain".as_ptr(), 5, 0, sa6_ptr, sa6_len);
    r.check("64 control: a plain datagram to the granted IPv6 address", rc == 5, e);
    let mut srh = vec![0u8, 4, 4, 1, 1, 0, 0, 0];
    srh.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    srh.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    let (rc, e) = sys!(libc::SYS_setsockopt, s6, libc::IPPROTO_IPV6, libc::IPV6_RTHDR, srh.as_ptr(), srh.len());
    println!("64 IPV6_RTHDR: {rc} {e}");
    let (rc, e) = sys!(libc::SYS_sendto, s6, b"ROUTE-64-srh".as_ptr(), 12, 0, sa6_ptr, sa6_len);
    r.expect_fail("64 sendto from a brokered IPv6 socket with a routing header", rc, e, &[EPERM]);
}

/// 63: `remove-granted DIR`, in a service granted `DIR/out/*.pid` with
/// `remove` (and read, write, create) and `DIR/data/**` read-only: the
/// granted pid file is made, removed and made again with O_EXCL, as atd
/// does; every other removal a grant could be stretched to fails: a file
/// the pattern does not name, a directory and a symlink it does name, a
/// path through `..` or /proc/self/root, AT_REMOVEDIR, and a file under a
/// grant without `remove`. The test checks the host's files after.
fn remove_granted(r: &mut Report, dir: &str) {
    let pid = format!("{dir}/out/a.pid");
    let (fd, e) = open(&pid, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL);
    r.check("63 control: the granted pid file is made with O_EXCL", fd >= 0, e);
    let (rc, e) = sys!(libc::SYS_write, fd, b"1\n".as_ptr(), 2);
    r.check("63 control: and written", rc == 2, e);
    let unlink = |p: &str| {
        let cp = c(p);
        sys!(libc::SYS_unlink, cp.as_ptr())
    };
    let (rc, e) = unlink(&pid);
    r.check("63 control: and removed", rc == 0, e);
    let (fd, e) = open(&pid, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL);
    r.check("63 control: and made anew with O_EXCL", fd >= 0, e);
    let (rc, e) = sys!(libc::SYS_write, fd, b"2\n".as_ptr(), 2);
    r.check("63 control: and written again", rc == 2, e);
    for (what, p, errnos) in [
        ("a file the pattern does not name", format!("{dir}/out/keep.txt"), &[ENOENT, EACCES][..]),
        ("a directory the pattern names", format!("{dir}/out/dir.pid"), &[EACCES]),
        ("a symlink the pattern names", format!("{dir}/out/link.pid"), &[EACCES, libc::ELOOP]),
        ("the secret through ..", format!("{dir}/out/../secret"), &[ENOENT, EACCES]),
        ("the granted name through /proc/self/root", format!("/proc/self/root{dir}/out/b.pid"), &[ENOENT, EACCES]),
        ("a file under a grant without remove", format!("{dir}/data/readme"), &[EACCES]),
    ] {
        let (rc, e) = unlink(&p);
        r.expect_fail(&format!("63 unlink {what}"), rc, e, errnos);
        let cp = c(&p);
        let (rc, e) = sys!(libc::SYS_unlinkat, libc::AT_FDCWD, cp.as_ptr(), 0);
        r.expect_fail(&format!("63 unlinkat {what}"), rc, e, errnos);
    }
    let cp = c(&format!("{dir}/out/b.pid"));
    let (rc, e) = sys!(libc::SYS_unlinkat, libc::AT_FDCWD, cp.as_ptr(), libc::AT_REMOVEDIR);
    r.expect_fail("63 unlinkat AT_REMOVEDIR of a granted name", rc, e, &[ENOENT, libc::ENOTDIR, EACCES]);
}

/// 62: `own-udp GRANTED SECRET`, in a `net = "none"` service granted
/// `udp:127.0.0.1:GRANTED` and nothing else. Datagrams from UDP sockets it
/// made itself (in its own network namespace), sent without a connect: to
/// the grant by sendto, sendmsg and sendmmsg they reach the host's server
/// (the broker moves each socket to the host); from those moved sockets to
/// the host's SECRET server and to an address nowhere granted they are
/// refused by every call; from new sockets to 127.0.0.1:SECRET they stay on
/// the service's own loopback. Then a thread flips the port of one address
/// between GRANTED and SECRET while sendto uses it, so that the broker
/// checks one and the kernel may send to the other. Every reply is printed:
/// the test looks for the secret.
fn own_udp(r: &mut Report, granted: u16, secret: u16) {
    let new_socket = || {
        // SAFETY: socket() with constants.
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as i64 }
    };
    let to = |port: u16| raw_addr(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let (g, g_len) = to(granted);
    let mut moved = Vec::new();
    send_each_way((&g as *const libc::sockaddr_storage).cast(), g_len, 0, new_socket, |call, fd, rc, e| {
        let answer = if rc >= 0 { read_witness(fd as i32) } else { String::new() };
        r.check(
            &format!("62 control: {call} from an own socket to the granted server answers"),
            rc == 1 && answer == "hello",
            format!("rc={rc} {answer:?} {e}"),
        );
        moved.push(fd);
    });
    let nowhere = raw_addr(std::net::SocketAddr::from(([192, 0, 2, 1], 9)));
    for (what, (sa, sa_len)) in [("the host's secret port", to(secret)), ("an address no grant names", nowhere)] {
        let sa_ptr = (&sa as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
        for &fd in &moved {
            send_each_way(
                sa_ptr,
                sa_len,
                0,
                || fd,
                |call, fd, rc, e| {
                    r.expect_fail(&format!("62 {call} from a moved socket to {what}"), rc, e, &[EPERM]);
                    if rc >= 0 {
                        println!("62 {call} from a moved socket to {what}: read {:?}", read_witness(fd as i32));
                    }
                },
            );
        }
    }
    let (sa, sa_len) = nowhere;
    send_each_way((&sa as *const libc::sockaddr_storage).cast(), sa_len, 0, new_socket, |call, _, rc, e| {
        r.expect_fail(&format!("62 {call} from a new own socket to an address no grant names"), rc, e, &[EACCES]);
    });
    let (sa, sa_len) = to(secret);
    send_each_way((&sa as *const libc::sockaddr_storage).cast(), sa_len, 0, new_socket, |call, fd, rc, _| {
        println!(
            "62 {call} from a new own socket to its own loopback's port {secret}: rc={rc}, read {:?}",
            if rc >= 0 { read_witness(fd as i32) } else { String::new() }
        );
    });
    own_udp_race(granted, secret);
}

/// Sends from new own sockets to one address whose port another thread
/// flips between `granted` and `secret`, then prints every reply.
fn own_udp_race(granted: u16, secret: u16) {
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
    let (sa, sa_len) = raw_addr(std::net::SocketAddr::from(([127, 0, 0, 1], granted)));
    let sa: &'static mut libc::sockaddr_storage = Box::leak(Box::new(sa));
    let sa_ptr = (sa as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
    // SAFETY: sin_port is a u16 at an aligned offset of the leaked, never
    // freed sockaddr; from here on it is only touched as this atomic (the
    // kernel and the broker read it as plain memory, which is the race).
    let port = unsafe { AtomicU16::from_ptr(std::ptr::addr_of_mut!((*sa_ptr).sin_port)) };
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let flipper = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            port.store(secret.to_be(), Ordering::Relaxed);
            port.store(granted.to_be(), Ordering::Relaxed);
        }
    });
    let mut fds = Vec::new();
    for _ in 0..200 {
        // SAFETY: socket/sendto with the leaked sockaddr, valid for the call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        let (rc, _) = sys!(libc::SYS_sendto, fd, b"x".as_ptr(), 1, 0, sa_ptr, sa_len);
        if rc >= 0 {
            fds.push(fd);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    // Replies on loopback come within microseconds; a second is plenty for
    // the secret to show if it was sent.
    let mut replies = std::collections::BTreeMap::<String, usize>::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        for &fd in &fds {
            let mut buf = [0u8; 64];
            // SAFETY: fd is the probe's non-blocking socket; buf is valid.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                *replies.entry(String::from_utf8_lossy(&buf[..n as usize]).into_owned()).or_default() += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    println!("62 race: {} of 200 sends went out; replies {replies:?}", fds.len());
}

/// 53: `append-only PATH`, with fd 3 a preopened file in append mode and
/// PATH under an `append` grant (opened through the broker): every way to
/// change what a file already holds from an fd meant for appending. Each
/// writes "first" before the attacks and "last" after them; the test checks
/// that the files hold exactly what they held before, then those two lines.
fn append_only(r: &mut Report, path: &str) {
    let (brokered, e) = open(path, libc::O_WRONLY | libc::O_APPEND);
    r.check("53 control: the append grant opens", brokered >= 0, e);
    for (what, fd) in [("the preopened append file", 3), ("a brokered append open", brokered)] {
        let write = |s: &str| sys!(libc::SYS_write, fd, s.as_ptr(), s.len()).0 == s.len() as i64;
        r.check(&format!("53 control: write to {what}"), write("first\n"), "");
        let (rc, e) = sys!(libc::SYS_ftruncate, fd, 0);
        r.expect_fail(&format!("53 ftruncate {what}"), rc, e, &[libc::EINVAL, EPERM]);
        let (fl, _) = sys!(libc::SYS_fcntl, fd, libc::F_GETFL);
        let (rc, _) = sys!(libc::SYS_fcntl, fd, libc::F_SETFL, fl & !(libc::O_APPEND as i64));
        println!("53 clear O_APPEND on {what}: {rc}");
        let (rc, e) = sys!(libc::SYS_pwrite64, fd, b"XX".as_ptr(), 2, 0);
        r.expect_fail(&format!("53 pwrite at offset 0 to {what} (O_APPEND cleared)"), rc, e, &[libc::ESPIPE]);
        let iov = libc::iovec { iov_base: b"YY".as_ptr() as *mut libc::c_void, iov_len: 2 };
        const RWF_NOAPPEND: i64 = 0x20;
        let (rc, e) = sys!(libc::SYS_pwritev2, fd, &iov as *const libc::iovec, 1, 0, 0, RWF_NOAPPEND);
        r.expect_fail(&format!("53 pwritev2(RWF_NOAPPEND) at offset 0 to {what}"), rc, e, &[libc::ESPIPE, libc::EOPNOTSUPP, libc::EINVAL]);
        let (rc, e) = sys!(libc::SYS_lseek, fd, 0, libc::SEEK_SET);
        r.expect_fail(&format!("53 lseek to 0 on {what}"), rc, e, &[libc::ESPIPE]);
        let (rc, e) = sys!(libc::SYS_fallocate, fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, 4096);
        r.expect_fail(&format!("53 fallocate(PUNCH_HOLE) on {what}"), rc, e, &[libc::ESPIPE, EPERM]);
        // A new open of the same thing through /proc opens the pipe again, not the file.
        let (again, e) = open(&format!("/proc/self/fd/{fd}"), libc::O_WRONLY | libc::O_TRUNC);
        if again >= 0 {
            let (rc, e) = sys!(libc::SYS_ftruncate, again, 0);
            r.expect_fail(&format!("53 ftruncate {what} reopened through /proc"), rc, e, &[libc::EINVAL, EPERM]);
        } else {
            println!("53 reopen {what} through /proc: {e}");
        }
        r.check(&format!("53 control: write to {what} after the attacks"), write("last\n"), "");
    }
}

/// fcntl's F_SETSIG (linux/fcntl.h; not in the libc crate for glibc).
const F_SETSIG: i32 = 10;

/// 21: `signal-host PID [fasync]`, without a pid namespace (host pids are
/// nameable): every route by which a signal reaches a process: kill, tgkill,
/// rt_sigqueueinfo, pidfd_send_signal; with `fasync`, only a file's owner
/// (F_SETOWN with F_SETSIG SIGTERM and O_ASYNC, then I/O on it: the kernel
/// sends the signal itself), which no call's result reveals. The test checks
/// that PID is still alive afterwards.
fn signal_host(r: &mut Report, pid: i32, fasync: bool) {
    if fasync {
        return signal_by_fasync(r, pid);
    }
    let (rc, e) = sys!(libc::SYS_kill, pid, 0);
    r.expect_fail("21 kill(PID, 0) to a host process (Landlock scope)", rc, e, &[EPERM, libc::ESRCH]);
    let (rc, e) = sys!(libc::SYS_kill, pid, libc::SIGTERM);
    r.expect_fail("21 kill(PID, SIGTERM)", rc, e, &[EPERM, libc::ESRCH]);
    let (rc, e) = sys!(libc::SYS_tgkill, pid, pid, libc::SIGTERM);
    r.expect_fail("21 tgkill", rc, e, &[EPERM, libc::ESRCH]);
    // SAFETY: siginfo_t is plain data; all-zero with si_code SI_QUEUE is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    info.si_signo = libc::SIGTERM;
    info.si_code = -1; // SI_QUEUE
    let (rc, e) = sys!(libc::SYS_rt_sigqueueinfo, pid, libc::SIGTERM, &info as *const libc::siginfo_t);
    r.expect_fail("21 rt_sigqueueinfo", rc, e, &[EPERM, libc::ESRCH]);
    let (pidfd, _) = sys!(libc::SYS_pidfd_open, pid, 0);
    if pidfd >= 0 {
        let (rc, e) = sys!(libc::SYS_pidfd_send_signal, pidfd, libc::SIGTERM, 0, 0);
        r.expect_fail("21 pidfd_send_signal", rc, e, &[EPERM]);
    }
}

fn signal_by_fasync(r: &mut Report, pid: i32) {
    // The owner of a file gets its I/O signals, sent by the kernel.
    let mut sv = [0i32; 2];
    // SAFETY: socketpair fills two fds; fcntl and write on them.
    let owner = unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr());
        let own = libc::fcntl(sv[0], libc::F_SETOWN, pid);
        libc::fcntl(sv[0], F_SETSIG, libc::SIGTERM);
        libc::fcntl(sv[0], libc::F_SETFL, libc::O_ASYNC | libc::O_NONBLOCK);
        libc::write(sv[1], b"x".as_ptr().cast(), 1);
        own
    };
    r.check("21 F_SETOWN to a host process, then I/O (the test checks the process lives)", true, format!("F_SETOWN = {owner}"));
}

/// 51: `broker-stall DIR PORT`: what could stall the transparent broker, each
/// followed by an open that must still be answered. DIR/data/** is granted
/// read (DIR/data/fifo is a FIFO nobody writes to); PORT is a granted host
/// port whose listener never accepts and has a full queue, so a connect to it
/// blocks for minutes. Prints STALLING once its connects are under way and
/// waits for a line on stdin (the host counts the broker's threads meanwhile).
fn broker_stall(r: &mut Report, dir: &str, port: u16) {
    // Whatever happens, the probe does not wait forever.
    // SAFETY: alarm has no memory effects; SIGALRM's default action ends the probe.
    unsafe { libc::alarm(60) };
    let readme = format!("{dir}/data/readme");
    let answered = |r: &mut Report, after: &str| {
        let (fd, e) = open(&readme, libc::O_RDONLY);
        r.check(&format!("51 the broker still answers after {after}"), fd >= 0 && read_fd(fd) == "granted", format!("open = {fd} {e}"));
    };
    let (rc, e) = open(&format!("{dir}/data/fifo"), libc::O_RDONLY);
    r.expect_fail("51 a FIFO under a tree grant is refused, without waiting for a writer", rc, e, &[EACCES]);
    answered(r, "the FIFO");
    // A full fd table: the broker's ADDFD fails with EMFILE, and the call must
    // still be answered (with EMFILE) rather than left waiting.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with valid structs; lowering the soft limit needs no privilege.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let none = libc::rlimit { rlim_cur: 0, rlim_max: lim.rlim_max };
        libc::setrlimit(libc::RLIMIT_NOFILE, &none);
    }
    let (rc, e) = open(&readme, libc::O_RDONLY);
    // SAFETY: restoring the soft limit saved above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    r.expect_fail("51 a brokered open into a full fd table is answered EMFILE", rc, e, &[libc::EMFILE]);
    answered(r, "EMFILE");
    // 80 blocking connects that hang: a fixed pool takes some, a bounded queue
    // holds some, the rest get EAGAIN; none costs a thread of its own.
    const N: usize = 80;
    let eagain = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..N {
        let eagain = eagain.clone();
        std::thread::spawn(move || {
            let (_, e) = connect_tcp(port);
            if e.raw_os_error() == Some(libc::EAGAIN) {
                eagain.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    // The connects not taken are answered at once; wait for those answers.
    let start = std::time::Instant::now();
    while eagain.load(std::sync::atomic::Ordering::Relaxed) == 0 && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let refused = eagain.load(std::sync::atomic::Ordering::Relaxed);
    r.check("51 connects beyond the broker's budget get EAGAIN", refused > 0 && refused < N, format!("{refused} of {N} got EAGAIN"));
    answered(r, "80 hanging connects");
    handshake("STALLING");
}

/// 51: `fork-bomb LIMIT [fork]`: the task limit is LIMIT; with `fork`, forks
/// children that wait until a fork fails: the limit must stop it with EAGAIN
/// below LIMIT children.
fn fork_bomb(r: &mut Report, limit: u64, fork: bool) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit into a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) };
    r.check("51 a task limit is set", lim.rlim_cur == limit, format!("RLIMIT_NPROC {}/{}", lim.rlim_cur, lim.rlim_max));
    if !fork {
        return;
    }
    let mut children = Vec::new();
    let err = loop {
        // SAFETY: the child only pauses until it is killed.
        match unsafe { libc::fork() } {
            -1 => break Error::last_os_error(),
            0 => loop {
                // SAFETY: pause has no arguments.
                unsafe { libc::pause() };
            },
            pid => children.push(pid),
        }
        if children.len() as u64 > limit + 10 {
            break Error::from_raw_os_error(0);
        }
    };
    let made = children.len();
    for pid in children {
        // SAFETY: killing and reaping the probe's own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    r.check(
        "51 a fork bomb stops at the service's own task limit",
        err.raw_os_error() == Some(libc::EAGAIN) && (made as u64) < limit,
        format!("{made} children, then {err}"),
    );
}

/// 49: `memfd-exec` under memory_deny_write_execute: code written at run time
/// is never executed, whether through a memfd (mapped or executed) or a SysV
/// segment attached executable.
fn memfd_exec(r: &mut Report) {
    let name = c("probe");
    let (fd, e) = sys!(libc::SYS_memfd_create, name.as_ptr(), libc::MFD_CLOEXEC);
    r.expect_fail("49 memfd_create under memory_deny_write_execute", fd, e, &[EPERM]);
    if fd >= 0 {
        // What an attacker would do next: write code, map it executable.
        let code = [0xc3u8; 16]; // ret
                                 // SAFETY: writing a valid buffer, then mapping the probe's own memfd.
        let p = unsafe {
            libc::write(fd as i32, code.as_ptr().cast(), code.len());
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED, fd as i32, 0)
        };
        println!("49 memfd mapped executable: {}", if p == libc::MAP_FAILED { "no" } else { "yes" });
    }
    // SAFETY: plain integer arguments; the segment is private to the probe.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o700) };
    // Read and execute only, beside a writable attach: nothing MDWE refuses.
    let (rc, e) = sys!(libc::SYS_shmat, id, 0, SHM_EXEC_FLAG | libc::SHM_RDONLY);
    r.expect_fail("49 shmat(SHM_EXEC) of a segment written at run time", rc, e, &[EPERM]);
    // SAFETY: removing the probe's own segment.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    // The kernel's MDWE itself: an anonymous mapping made executable after a write.
    // SAFETY: mapping and mprotecting the probe's own anonymous memory.
    let (rc, e) = unsafe {
        let p = libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        (libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC) as i64, Error::last_os_error())
    };
    r.expect_fail("49 mprotect(PROT_EXEC) of written memory (PR_SET_MDWE)", rc, e, &[libc::EACCES]);
}

/// 54: `mdwe-files PATH` under memory_deny_write_execute, with fd 3 a file
/// preopened read-write and PATH under a read+write `[[broker.fs]]` grant,
/// both on a host mount without noexec: code written into them at run time
/// and mapped executable (which MDWE allows for a file mapping, and the view's
/// noexec mounts do not cover: neither file is in the view).
fn mdwe_files(r: &mut Report, path: &str) {
    let (brokered, e) = open(path, libc::O_RDWR);
    r.check("54 control: the read+write grant opens", brokered >= 0, e);
    for (what, fd) in [("the preopened read-write file", 3), ("a brokered read-write open", brokered)] {
        let code = [0xc3u8; 16]; // ret
        let (rc, e) = sys!(libc::SYS_pwrite64, fd, code.as_ptr(), code.len(), 0);
        r.check(&format!("54 control: write code into {what}"), rc == code.len() as i64, format!("rc={rc} {e}"));
        // SAFETY: mapping the probe's own fd; the result is only compared.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_PRIVATE, fd as i32, 0) };
        let e = Error::last_os_error();
        r.expect_fail(&format!("54 map {what} executable after writing code into it"), if p == libc::MAP_FAILED { -1 } else { 0 }, e, &[EPERM]);
        // execveat of the fd itself: the kernel refuses a file open for writing.
        let (rc, e) = sys!(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            [std::ptr::null::<libc::c_char>()].as_ptr(),
            [std::ptr::null::<libc::c_char>()].as_ptr(),
            libc::AT_EMPTY_PATH
        );
        r.expect_fail(&format!("54 execveat {what}"), rc, e, &[libc::ETXTBSY, EACCES, EPERM]);
    }
}

/// shmat's SHM_EXEC (linux/shm.h).
const SHM_EXEC_FLAG: i32 = 0o100000;

/// 47: `preopen-escape`, with fd 3 a preopened DIR/data (DIR/data/hidden
/// declared inaccessible, DIR/secret beside data holding SECRET) and fd 4 a
/// preopened DIR/out (read-write, DIR/out/conf read-only). Every way from
/// those fds to a path outside them or under a mask; whatever a successful
/// open reads is printed, so the test sees SECRET if it leaked.
fn preopen_escape(r: &mut Report) {
    let at = |dirfd: i32, path: &str, flags: i32| -> (i64, Error) {
        let p = c(path);
        // SAFETY: a valid C string; the fd (if any) is the probe's.
        let rc = unsafe { libc::openat(dirfd, p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) } as i64;
        (rc, Error::last_os_error())
    };
    let shown = |what: &str, rc: i64| {
        if rc >= 0 {
            println!("{what}: read {:?}", read_fd(rc));
        }
    };
    let (rc, e) = at(3, "readme", libc::O_RDONLY);
    r.check("47 control: a file in the preopened directory opens", rc >= 0, e);
    shown("47 control", rc);
    for path in ["../secret", "../../../../../../etc/passwd", "sub/../../secret", "/proc/self/fd/3/../secret", "/dev/fd/3/../secret"] {
        let (rc, e) = at(3, path, libc::O_RDONLY);
        r.expect_fail(&format!("47 openat(fd 3, {path:?})"), rc, e, &[ENOENT]);
        shown(path, rc);
    }
    // `..` as a directory of its own, O_PATH, then onward.
    let (up, _) = at(3, "..", libc::O_PATH | libc::O_DIRECTORY);
    let (rc, e) = at(up as i32, "secret", libc::O_RDONLY);
    r.expect_fail("47 openat(openat(fd 3, \"..\", O_PATH), \"secret\")", rc, e, &[ENOENT]);
    shown("47 via O_PATH ..", rc);
    // The working directory put inside it with fchdir, then `..`.
    // SAFETY: fchdir on the probe's own fd.
    unsafe { libc::fchdir(3) };
    let (rc, e) = at(libc::AT_FDCWD, "../secret", libc::O_RDONLY);
    r.expect_fail("47 fchdir(fd 3), then open(\"../secret\")", rc, e, &[ENOENT]);
    shown("47 fchdir ..", rc);
    let (rc, e) = at(libc::AT_FDCWD, "../../../../etc/shadow", libc::O_RDONLY);
    r.expect_fail("47 fchdir(fd 3), then open(\"../../../../etc/shadow\")", rc, e, &[ENOENT]);
    shown("47 fchdir shadow", rc);
    // SAFETY: back to the view's root.
    unsafe { libc::chdir(c("/").as_ptr()) };
    // A mask inside the preopened directory holds through the fd.
    let (rc, e) = at(3, "hidden/file", libc::O_RDONLY);
    r.expect_fail("47 openat(fd 3, \"hidden/file\") under a declared mask", rc, e, &[EACCES, ENOENT]);
    shown("47 hidden", rc);
    // A read-only path nested in a read-write one stays read-only through the fd.
    let (rc, e) = at(4, "conf/new", libc::O_WRONLY | libc::O_CREAT);
    r.expect_fail("47 create through fd 4 in its read-only conf/", rc, e, &[libc::EROFS]);
    let (rc, e) = at(4, "conf/settings", libc::O_WRONLY | libc::O_TRUNC);
    r.expect_fail("47 truncate through fd 4 in its read-only conf/", rc, e, &[libc::EROFS]);
    let (rc, e) = at(4, "written", libc::O_WRONLY | libc::O_CREAT);
    r.check("47 control: fd 4 itself is writable", rc >= 0, e);
}

/// `broker-fs DIR`: the unit grants DIR/data/** read and DIR/out/*.log
/// append+create. DIR/secret exists on the host and is granted nothing;
/// DIR/data/link-out is a symlink to ../secret.
fn broker_fs(r: &mut Report, dir: &str) {
    let readme = format!("{dir}/data/readme");
    let (fd, e) = open(&readme, libc::O_RDONLY);
    r.check("29 control: a granted file opens through the broker", fd >= 0 && read_fd(fd) == "granted", format!("open = {fd} {e}"));
    let (rc, e) = open(&format!("{dir}/secret"), libc::O_RDONLY);
    r.expect_fail("29 a file next to the grant", rc, e, &[ENOENT, EACCES]);
    let (rc, e) = open(&format!("{dir}/data/../secret"), libc::O_RDONLY);
    r.expect_fail("29 `..` out of the granted tree", rc, e, &[ENOENT, EACCES]);
    let (rc, e) = open(&format!("{dir}/data/link-out"), libc::O_RDONLY);
    r.expect_fail("29 a symlink out of the granted tree (RESOLVE_BENEATH)", rc, e, &[libc::EXDEV, libc::ELOOP, EACCES]);
    let (rc, e) = open(&format!("{dir}/data"), libc::O_RDONLY);
    r.expect_fail("32 the granted directory itself (no directory fds)", rc, e, &[EACCES]);
    let (rc, e) = open(&format!("{dir}/data/"), libc::O_RDONLY | libc::O_DIRECTORY);
    r.expect_fail("32 O_DIRECTORY on the granted tree", rc, e, &[libc::EINVAL]);
    let (rc, e) = open(&format!("{dir}/data/readme/"), libc::O_RDONLY);
    r.expect_fail("29 trailing `/` on a file", rc, e, &[libc::ENOTDIR, EACCES]);
    let long = format!("{dir}/data/{}", "a/".repeat(2100));
    let (rc, e) = open(&long, libc::O_RDONLY);
    r.expect_fail("29 a path longer than PATH_MAX", rc, e, &[libc::ENAMETOOLONG]);
    let (rc, e) = open("/proc/self/fd/0", libc::O_RDONLY);
    // Not a grant: the kernel opens it with the service's own rights (its own
    // stdin), so success is fine; what must not happen is the broker acting.
    let _ = (rc, e);
    for (name, flags, errs) in [
        ("O_WRONLY", libc::O_WRONLY, &[EACCES][..]),
        ("O_RDWR", libc::O_RDWR, &[EACCES]),
        ("O_RDONLY|O_TRUNC", libc::O_RDONLY | libc::O_TRUNC, &[EACCES]),
        ("O_CREAT without a create grant", libc::O_RDONLY | libc::O_CREAT, &[EACCES]),
        ("O_PATH", libc::O_PATH, &[libc::EINVAL]),
        ("O_TMPFILE", libc::O_TMPFILE | libc::O_RDWR, &[libc::EINVAL]),
        ("unknown bit 0x40000000", libc::O_RDONLY | 0x4000_0000, &[libc::EINVAL]),
        ("access mode 3", 3, &[libc::EINVAL]),
    ] {
        let (rc, e) = open(&readme, flags);
        r.expect_fail(&format!("31 {name} on a read-only grant"), rc, e, errs);
    }
    let log = format!("{dir}/out/probe.log");
    let (fd, e) = open(&log, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT);
    r.check("31 control: append+create grant creates and appends", fd >= 0, format!("open = {fd} {e}"));
    if fd >= 0 {
        // SAFETY: writing a valid buffer to the fd just opened, then closing it.
        unsafe {
            libc::write(fd as i32, b"line\n".as_ptr().cast(), 5);
            libc::close(fd as i32);
        }
    }
    let (rc, e) = open(&log, libc::O_WRONLY | libc::O_TRUNC);
    r.expect_fail("31 O_TRUNC on an append grant", rc, e, &[EACCES]);
    // 48: creating with setuid/setgid bits is refused before the broker is asked.
    let setid = c(&format!("{dir}/out/setid.log"));
    // SAFETY: a valid C string; the fd (if any) is leaked, the probe exits soon.
    let rc = unsafe { libc::open(setid.as_ptr(), libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC, 0o6755) } as i64;
    r.expect_fail("48 brokered create with mode 06755", rc, Error::last_os_error(), &[EPERM]);
    let (rc, e) = open(&log, libc::O_RDONLY);
    r.expect_fail("31 reading an append-only grant", rc, e, &[EACCES]);
    let (rc, e) = open(&format!("{dir}/out/probe.txt"), libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT);
    r.expect_fail("31 a name the pattern *.log does not match", rc, e, &[ENOENT, EACCES]);
    // 50: a refused path chosen to hold escape sequences: the refusal line
    // (which goes to capexec's stderr, a terminal under `capexec run`) shows
    // them escaped; the test checks the output for raw ones.
    let (rc, e) = open(&format!("{dir}/data/\x1b]0;owned\x07\x1b[2J\u{202e}x"), libc::O_WRONLY);
    r.expect_fail("50 a refused path with escape sequences", rc, e, &[EACCES]);
    // 39: a filter of the service's own answering first. The kernel takes the
    // most restrictive verdict (ERRNO beats USER_NOTIF), so the broker is never asked.
    own_filter_errno(libc::SYS_openat as u32, libc::EXDEV);
    let (rc, e) = open(&readme, libc::O_RDONLY);
    r.expect_fail("39 the service's own ERRNO filter wins over the broker", rc, e, &[libc::EXDEV]);
}

fn own_filter_errno(nr: u32, errno: i32) {
    let prog = [
        libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt: 0, jf: 1, k: nr },
        libc::sock_filter { code: libc::BPF_RET as u16, jt: 0, jf: 0, k: 0x0005_0000 | errno as u32 },
        libc::sock_filter { code: libc::BPF_RET as u16, jt: 0, jf: 0, k: 0x7fff_0000 },
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
    // SAFETY: installing a valid filter; no_new_privs is set by the sandbox.
    let rc = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog) };
    assert_eq!(rc, 0, "install own filter: {}", Error::last_os_error());
}

/// `broker-race PATH EXPECTED N`: opens PATH over and over while a sibling
/// thread rewrites the path buffer between PATH and DIR/secret (36); the host
/// swaps PATH with a symlink to a secret (30). Every open that succeeds must
/// read EXPECTED: the broker acts only on its own copy and never lets a check
/// on one name open another. It prints RACING once the opens are under way and
/// stops after at least N opens *and* a line on stdin: the host says when it
/// has swapped enough, so how much racing happens does not depend on how the
/// scheduler shares the CPUs between the probe and the host's swapper.
fn broker_race(r: &mut Report, path: &str, expected: &str, n: usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = path.rsplit_once("/data/").map(|(d, _)| d.to_owned()).unwrap_or_default();
    let other = format!("{dir}/secret");
    let len = path.len().max(other.len()) + 1;
    let mut a = vec![0u8; len];
    a[..path.len()].copy_from_slice(path.as_bytes());
    let mut b = vec![0u8; len];
    b[..other.len()].copy_from_slice(other.as_bytes());
    let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
    buf.copy_from_slice(&a);
    let addr = buf.as_mut_ptr() as usize;
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let flipper = std::thread::spawn(move || {
        let mut flip = false;
        while !stop.load(Ordering::Relaxed) {
            let src = if flip { &b } else { &a };
            // SAFETY: racing writes into the leaked buffer are the point of the
            // test; the bytes are plain data and the buffer outlives the thread.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), addr as *mut u8, len) };
            flip = !flip;
            // No sched_yield: a yield loop starves under EEVDF beside busy
            // threads (see broker::symlink_and_pointer_races); plain spinning
            // gets its fair share.
        }
    });
    let told: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        told.store(true, Ordering::Relaxed);
    });
    let (mut ok, mut wrong, mut tries) = (0, 0, 0usize);
    while tries < n || !told.load(Ordering::Relaxed) {
        tries += 1;
        // SAFETY: the buffer is NUL-terminated in both versions.
        let fd = unsafe { libc::open(addr as *const libc::c_char, libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            if read_fd(fd as i64) == expected {
                ok += 1;
            } else {
                wrong += 1;
            }
        }
        if tries == 1 {
            println!("RACING");
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    r.check(
        "30/36 racing the path never opens anything but the granted file",
        wrong == 0 && ok > 0,
        format!("{ok} granted opens, {wrong} of something else, of {tries}"),
    );
}

/// The number of descriptors the probe has open.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Prints `what` and waits for a line on stdin: the test looks at the broker
/// in between.
fn handshake(what: &str) {
    println!("{what}");
    let _ = std::io::stdin().read_line(&mut String::new());
}

static SIGNALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// `broker-signals PATH EXPECTED N` (37): opens the granted PATH N times while
/// an interval timer sends SIGALRM every 20 µs — first to an SA_RESTART
/// handler, then to one without. Every open must give the granted file, or
/// EINTR where there is no SA_RESTART; the probe's fd count is the same after.
/// BEFORE and AFTER handshakes let the test compare the broker's fds.
fn broker_signals(r: &mut Report, path: &str, expected: &str, n: usize) {
    let cpath = c(path);
    handshake("BEFORE");
    for (flags, how) in [(libc::SA_RESTART, "with"), (0, "without")] {
        // Counted with no timer running: listing /proc/self/fd opens it too.
        let before = fd_count();
        // SAFETY: installing a handler that only bumps an atomic counter, and
        // arming a process timer; both take valid structures.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_signal as *const () as usize;
            sa.sa_flags = flags;
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
            let t = libc::itimerval { it_interval: libc::timeval { tv_sec: 0, tv_usec: 20 }, it_value: libc::timeval { tv_sec: 0, tv_usec: 20 } };
            libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut());
        }
        SIGNALS.store(0, std::sync::atomic::Ordering::Relaxed);
        let (mut ok, mut wrong, mut eintr, mut other) = (0, 0, 0, Vec::new());
        for _ in 0..n {
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd >= 0 {
                if read_fd(fd as i64) == expected {
                    ok += 1;
                } else {
                    wrong += 1;
                }
            } else {
                match Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => eintr += 1,
                    e => other.push(e),
                }
            }
        }
        // SAFETY: disarming the timer (a zeroed itimerval).
        unsafe { libc::setitimer(libc::ITIMER_REAL, &std::mem::zeroed(), std::ptr::null_mut()) };
        let signals = SIGNALS.load(std::sync::atomic::Ordering::Relaxed);
        // Without SA_RESTART an open completes only if the broker answers
        // between two signals 20 µs apart, which on a busy machine may never
        // happen: that the broker still serves is asked of an open made once
        // the timer is off, not of luck during it.
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let served_after = fd >= 0 && read_fd(fd as i64) == expected;
        let after = fd_count();
        let fine = wrong == 0
            && other.is_empty()
            && served_after
            && before == after
            && signals > 100
            && if flags != 0 { eintr == 0 && ok == n } else { eintr > 0 && ok + eintr == n };
        r.check(
            &format!("37 brokered opens interrupted by signals {how} SA_RESTART"),
            fine,
            format!(
                "{ok} opened, {eintr} EINTR, {wrong} wrong file, errors {other:?}, {signals} signals, fds {before} -> {after}, an open after the signals {}",
                if served_after { "served" } else { "not served" }
            ),
        );
    }
    handshake("AFTER");
}

/// `broker-pid-reuse PATH DECOY N` (38): N times, a child loops opening the
/// granted PATH and is SIGKILLed at a varying moment — often while the broker
/// holds its request — then the probe forks until a child gets the dead one's
/// pid (the test lowered pid_max in the service's pid namespace, so pids wrap
/// every 100). That recycler holds DECOY (a path the broker would refuse and
/// log) where the killed child held PATH, and checks that no descriptor
/// appears in it. The broker must never act on a recycled pid's memory (no
/// refusal of DECOY in the log) nor inject anything (no new fds).
fn broker_pid_reuse(r: &mut Report, path: &str, decoy: &str, n: usize) {
    let len = path.len().max(decoy.len()) + 1;
    let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
    buf[..path.len()].copy_from_slice(path.as_bytes());
    let addr = buf.as_mut_ptr() as usize;
    let decoy = decoy.as_bytes().to_vec();
    handshake("BEFORE");
    let (mut reused, mut injected, mut kills) = (0, 0, 0);
    for i in 0..n {
        // SAFETY: the probe is single-threaded; the child only loops on open/close.
        let child = unsafe { libc::fork() };
        if child == 0 {
            loop {
                // SAFETY: a NUL-terminated path in the leaked buffer.
                let fd = unsafe { libc::open(addr as *const libc::c_char, libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd >= 0 {
                    // SAFETY: closing the fd just opened.
                    unsafe { libc::close(fd) };
                }
            }
        }
        let mut x = 0u64;
        for k in 0..(i as u64 % 16) * 20_000 {
            x = std::hint::black_box(x.wrapping_add(k));
        }
        // SAFETY: killing and reaping our own child, which frees its pid.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        kills += 1;
        // Fork until a recycler gets the dead child's pid (at most twice
        // around the lowered pid_max); the others leave at once.
        for _ in 0..250 {
            // SAFETY: single-threaded; the recycler writes its own copy of the buffer and exits.
            let p = unsafe { libc::fork() };
            if p == 0 {
                // SAFETY: getpid has no arguments.
                if unsafe { libc::getpid() } != child {
                    // SAFETY: leaving the forked child without running the parent's destructors.
                    unsafe { libc::_exit(0) };
                }
                let before = fd_count();
                // SAFETY: the leaked buffer is `len` bytes; DECOY plus NUL fits.
                unsafe {
                    std::ptr::write_bytes(addr as *mut u8, 0, len);
                    std::ptr::copy_nonoverlapping(decoy.as_ptr(), addr as *mut u8, decoy.len());
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
                // SAFETY: as above.
                unsafe { libc::_exit(if fd_count() == before { 0 } else { 1 }) };
            }
            if p < 0 {
                break;
            }
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(p, &mut st, 0) };
            injected += usize::from(!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0));
            if p == child {
                reused += 1;
                break;
            }
        }
    }
    let (fd, _) = open(path, libc::O_RDONLY);
    let still = fd >= 0 && !read_fd(fd).is_empty();
    r.check(
        "38 killed targets and recycled pids: nothing injected, the broker still serves",
        injected == 0 && reused > 0 && still,
        format!(
            "{kills} targets killed, {reused} of their pids reused by a recycler, {injected} recyclers gained a descriptor, granted open afterwards: {still}"
        ),
    );
    handshake("AFTER");
}

/// `broker-net GRANTED_BIND UNGRANTED_BIND HOST_PORT UNGRANTED_PORT`: the unit
/// (net = "none") grants bind on 127.0.0.1:GRANTED_BIND and connect to
/// 127.0.0.1:HOST_PORT, where the host listens and answers "hello".
fn broker_net(r: &mut Report, granted_bind: u16, ungranted_bind: u16, host_port: u16, ungranted_port: u16) {
    let (rc, e) = bind_tcp(granted_bind);
    r.check("35 control: a granted bind succeeds", rc == 0, format!("bind = {rc} {e}"));
    let (rc, e) = bind_tcp(ungranted_bind);
    r.expect_fail("35 bind a port the grants do not name", rc, e, &[EACCES]);
    let (rc, e) = bind_tcp_at([0, 0, 0, 0], ungranted_bind);
    r.expect_fail("35 bind a port the grants do not name on every address", rc, e, &[EACCES]);
    let (fd, e) = connect_v4([127, 0, 0, 1], host_port);
    r.check("35 control: a granted connect reaches the host", fd >= 0 && read_fd(fd) == "hello", format!("connect = {fd} {e}"));
    let (fd, e) = connect_v6_mapped([127, 0, 0, 1], host_port);
    r.check("35 ::ffff:127.0.0.1 is checked as 127.0.0.1 (granted)", fd >= 0 && read_fd(fd) == "hello", format!("connect = {fd} {e}"));
    brokered_socket_keeps_its_attributes(r, host_port);
    let (rc, e) = connect_v4([127, 0, 0, 1], ungranted_port);
    r.expect_fail("35 connect to a host port the grants do not name", rc, e, &[EACCES, libc::ECONNREFUSED]);
    let (rc, e) = connect_v6_mapped([127, 0, 0, 1], ungranted_port);
    r.expect_fail("35 ::ffff:127.0.0.1 on an ungranted port", rc, e, &[EACCES, libc::ECONNREFUSED]);
    // An address length with garbage in the register's high half, which
    // the kernel ignores (a socklen_t): mpd's compiled bind left some there,
    // and the broker, reading the register whole, answered EINVAL.
    let (host, _) = raw_addr(std::net::SocketAddr::from(([127, 0, 0, 1], host_port)));
    let (other, _) = raw_addr(std::net::SocketAddr::from(([127, 0, 0, 1], ungranted_bind)));
    let wide = 0x7fba_0000_0000_u64 | 16;
    // SAFETY: socket() with constants.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let (rc, e) = sys!(libc::SYS_connect, s, &host as *const libc::sockaddr_storage, wide);
    r.check(
        "35 control: a granted connect with a length the high half of whose register is set",
        rc == 0 && read_fd(s as i64) == "hello",
        format!("connect = {rc} {e}"),
    );
    // SAFETY: socket() with constants.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let (rc, e) = sys!(libc::SYS_bind, s, &other as *const libc::sockaddr_storage, wide);
    r.expect_fail("35 bind a port the grants do not name, the length's high half set (judged, not EINVAL)", rc, e, &[EACCES]);
    own_loopback_pairs(r);
    let (rc, e) = connect_v4([169, 254, 169, 254], 80);
    r.expect_fail("35 the metadata address 169.254.169.254", rc, e, &[EACCES]);
    let (rc, e) = connect_v6_mapped([169, 254, 169, 254], 80);
    r.expect_fail("35 ::ffff:169.254.169.254", rc, e, &[EACCES]);
    // Malformed arguments: the broker answers as the kernel would.
    // SAFETY: raw socket/bind/connect calls with deliberately bad arguments.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let junk = [0u8; 300];
        let rc = libc::bind(s, junk.as_ptr().cast(), 300) as i64;
        r.expect_fail("33 an oversized address", rc, Error::last_os_error(), &[libc::EINVAL]);
        let rc = libc::bind(s, junk.as_ptr().cast(), 1) as i64;
        r.expect_fail("33 a truncated address", rc, Error::last_os_error(), &[libc::EINVAL]);
        let rc = libc::connect(s, 8 as *const libc::sockaddr, 16) as i64;
        r.expect_fail("33 an unmapped address pointer", rc, Error::last_os_error(), &[libc::EFAULT]);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = granted_bind.to_be();
        sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let rc = libc::bind(9999, (&sa as *const libc::sockaddr_in).cast(), 16) as i64;
        r.expect_fail("33 bind on a closed fd", rc, Error::last_os_error(), &[libc::EBADF]);
        let rc = libc::bind(0, (&sa as *const libc::sockaddr_in).cast(), 16) as i64;
        r.expect_fail("33 bind on a non-socket", rc, Error::last_os_error(), &[libc::ENOTSOCK]);
        let rc = libc::bind(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0), (&sa as *const libc::sockaddr_in).cast(), 16) as i64;
        r.expect_fail("33 an IPv4 address on a Unix socket", rc, Error::last_os_error(), &[libc::EINVAL]);
    }
}

/// Sockets bound to loopback on a port the kernel picks (squid and its
/// helpers talk over such a UDP pair; squid binds a TCP one to see whether
/// IPv6 works): the service's own loopback gives them, with no grant, while
/// fixed ports there stay refused (above).
fn own_loopback_pairs(r: &mut Report) {
    for ip in ["127.0.0.1", "[::1]"] {
        let pair = (|| -> std::io::Result<String> {
            let (a, b) = (std::net::UdpSocket::bind(format!("{ip}:0"))?, std::net::UdpSocket::bind(format!("{ip}:0"))?);
            a.connect(b.local_addr()?)?;
            b.connect(a.local_addr()?)?;
            a.send(b"ping")?;
            b.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
            let mut buf = [0u8; 8];
            let n = b.recv(&mut buf)?;
            let l = std::net::TcpListener::bind(format!("{ip}:0"))?;
            Ok(format!("{} {}", String::from_utf8_lossy(&buf[..n]), l.local_addr()?.port() != 0))
        })();
        r.check(
            &format!("control: UDP sockets on {ip}, port 0, reach each other in the service's own network; a TCP one binds"),
            pair.as_deref().is_ok_and(|s| s == "ping true"),
            format!("{pair:?}"),
        );
    }
    // A stream socket on every address with a port the kernel picks
    // (varnish's probe of the kernel's TCP defaults) binds with no grant,
    // in the service's own network: its namespace is the service's (a host
    // socket the broker bound would be in the host's).
    for any in ["0.0.0.0", "[::]"] {
        let own = (|| -> std::io::Result<bool> {
            use std::os::fd::AsFd;
            let l = std::net::TcpListener::bind(format!("{any}:0"))?;
            Ok(capexec_sys::socket_netns_cookie(l.as_fd())? == capexec_sys::netns_cookie()?)
        })();
        r.check(&format!("control: a TCP bind to {any}:0 stays in the service's own network"), matches!(own, Ok(true)), format!("{own:?}"));
    }
}

/// The host socket the broker puts in place of the service's is the
/// service's as it made it: close-on-exec or not, blocking or not, with the
/// options it set (and none it did not).
fn brokered_socket_keeps_its_attributes(r: &mut Report, host_port: u16) {
    let one: libc::c_int = 1;
    let int_opt = |fd: i32, level: i32, opt: i32| {
        let mut v: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one int at a valid pointer.
        unsafe { libc::getsockopt(fd, level, opt, (&mut v as *mut libc::c_int).cast(), &mut len) };
        v
    };
    for nonblocking in [false, true] {
        let kind = libc::SOCK_STREAM | if nonblocking { libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC } else { 0 };
        // SAFETY: socket, setsockopt, connect and poll with valid arguments on the probe's own fd.
        let (fd, rc, err) = unsafe {
            let fd = libc::socket(libc::AF_INET, kind, 0);
            if !nonblocking {
                for (level, opt) in [(libc::SOL_SOCKET, libc::SO_KEEPALIVE), (libc::IPPROTO_TCP, libc::TCP_NODELAY)] {
                    libc::setsockopt(fd, level, opt, (&one as *const libc::c_int).cast(), 4);
                }
            }
            let sa = v4(host_port);
            let rc = libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), 16);
            let err = Error::last_os_error();
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            libc::poll(&mut p, 1, 5000);
            (fd, rc, err)
        };
        // SAFETY: F_GETFD/F_GETFL only read the probe's own fd's flags.
        let (fd_flags, fl) = unsafe { (libc::fcntl(fd, libc::F_GETFD), libc::fcntl(fd, libc::F_GETFL)) };
        let got = (
            rc == 0 || err.raw_os_error() == Some(libc::EINPROGRESS),
            fd_flags & libc::FD_CLOEXEC != 0,
            fl & libc::O_NONBLOCK != 0,
            int_opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY),
        );
        let want = (true, nonblocking, nonblocking, if nonblocking { 0 } else { 1 }, if nonblocking { 0 } else { 1 });
        let answer = read_fd(fd as i64);
        r.check(
            &format!(
                "control: a brokered {} connect keeps close-on-exec, O_NONBLOCK and the options set",
                if nonblocking { "non-blocking" } else { "blocking" }
            ),
            got == want && answer == "hello",
            format!("(connected, cloexec, nonblocking, keepalive, nodelay) = {got:?}, expected {want:?}; read {answer:?}; connect = {rc} {err}"),
        );
    }
}

fn connect_v4(ip: [u8; 4], port: u16) -> (i64, Error) {
    // SAFETY: socket/connect with a valid sockaddr_in.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from_be_bytes(ip).to_be();
        let rc = libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), 16);
        (if rc == 0 { fd as i64 } else { -1 }, Error::last_os_error())
    }
}

fn connect_v6_mapped(ip: [u8; 4], port: u16) -> (i64, Error) {
    // SAFETY: socket/connect with a valid sockaddr_in6.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
        sa.sin6_family = libc::AF_INET6 as u16;
        sa.sin6_port = port.to_be();
        let mut o = [0u8; 16];
        o[10] = 0xff;
        o[11] = 0xff;
        o[12..].copy_from_slice(&ip);
        sa.sin6_addr.s6_addr = o;
        let rc = libc::connect(fd, (&sa as *const libc::sockaddr_in6).cast(), std::mem::size_of_val(&sa) as u32);
        (if rc == 0 { fd as i64 } else { -1 }, Error::last_os_error())
    }
}
