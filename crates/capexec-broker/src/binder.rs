//! The binder: a process of its own that binds the service's Unix sockets
//! at the paths of its `unix:` bind grants (`BrokerSpec::bind_unix`), in
//! directories neither the service nor the confined broker may write.
//!
//! The broker itself runs with the service's filesystem uid and no
//! capability once confined (`Broker::confine`), so it cannot create a
//! socket in /run, and giving it back uid 0 would let a subverted broker
//! read every file root owns. The binder keeps uid 0, as owner of /run and
//! nothing more: no capability (so it cannot override permissions, nor
//! chown or chmod), Landlock lets it make sockets in the grants'
//! directories and nothing else on any filesystem, and its seccomp filter
//! allows receiving a request, umask, bind, and answering. A request names
//! a grant by its index (the binder has its own copy of the paths) and
//! carries the service's socket (SCM_RIGHTS) and umask, so the socket file
//! is made as the service's own bind would have made it, but owned by root
//! (the service's group: its gid is the binder's).

use crate::BrokerError;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The broker's end of the channel to its binder.
pub struct Binder {
    channel: std::sync::Mutex<OwnedFd>,
}

/// A request: the grant's index and the umask, each a native u32.
const REQUEST: usize = 8;

impl Binder {
    /// Forks the binder for `paths` (`gid`: the service's group, which the
    /// sockets get when the caller is root). Call while single-threaded. The binder is
    /// a grandchild, left to init, so that no wait of the caller's reaps
    /// it by surprise; it ends when the broker closes its end.
    pub fn spawn(paths: &[PathBuf], gid: u32) -> Result<Binder, BrokerError> {
        let io = |op| move |source| BrokerError::Io { op, source };
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ours, theirs) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(|e| io("create the binder's channel")(e.into()))?;
        // The directories, opened now, for the binder's Landlock rules.
        let dirs: Vec<OwnedFd> = paths
            .iter()
            .map(|p| capexec_sys::open_dir_no_links(p.parent().unwrap_or(p)))
            .collect::<io::Result<_>>()
            .map_err(io("open the directory of a unix: bind grant (no link may lead to it)"))?;
        match capexec_sys::process::fork("fork the binder").map_err(io("fork the binder"))? {
            capexec_sys::process::Forked::Parent(pid) => {
                drop(theirs);
                // The intermediate child exits at once: reap it.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                Ok(Binder { channel: std::sync::Mutex::new(ours) })
            }
            capexec_sys::process::Forked::Child => {
                drop(ours);
                match capexec_sys::process::fork("fork the binder") {
                    Ok(capexec_sys::process::Forked::Child) => {
                        let code = match serve(theirs, &dirs, paths, gid) {
                            Ok(()) => 0,
                            Err(e) => {
                                eprintln!("capexec: the broker's binder: {e}");
                                1
                            }
                        };
                        capexec_sys::process::exit_now(code)
                    }
                    _ => capexec_sys::process::exit_now(0),
                }
            }
        }
    }

    /// Has the binder bind `socket` (the broker's copy of the service's) at
    /// the path of grant `index`, with the service's `umask`. The errno of
    /// the bind comes back as the result.
    pub fn bind(&self, index: usize, socket: &OwnedFd, umask: u32) -> io::Result<()> {
        let ch = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        let mut req = [0u8; REQUEST];
        req[..4].copy_from_slice(&(index as u32).to_ne_bytes());
        req[4..].copy_from_slice(&umask.to_ne_bytes());
        capexec_sys::send_fds(ch.as_raw_fd(), &req, &[socket.as_raw_fd()], libc::MSG_NOSIGNAL)?;
        let mut reply = [0u8; 4];
        let got = capexec_sys::recv_fds(ch.as_raw_fd(), &mut reply, 0)?;
        if got.bytes != 4 {
            // The binder is gone (it died, or was killed for a call it may not make).
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        match i32::from_ne_bytes(reply) {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.channel.lock().unwrap_or_else(|p| p.into_inner()).as_raw_fd()
    }
}

/// The binder's life: confine itself, then answer requests until the
/// broker's end closes.
fn serve(channel: OwnedFd, dirs: &[OwnedFd], paths: &[PathBuf], gid: u32) -> Result<(), BrokerError> {
    let io = |op| move |source| BrokerError::Io { op, source };
    // Nothing of the caller's but the channel and the directories (kept:
    // its seccomp filter allows no call that could use them).
    let mut keep: Vec<RawFd> = dirs.iter().map(|d| d.as_raw_fd()).chain([channel.as_raw_fd()]).collect();
    keep.sort_unstable();
    let open: Vec<RawFd> =
        std::fs::read_dir("/proc/self/fd").map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
    for fd in open.into_iter().filter(|fd| keep.binary_search(fd).is_err() && *fd > 2) {
        let _ = nix::unistd::close(fd);
    }
    // Its stdin and stdout are the caller's (a terminal, a test's pipe),
    // which it must not hold open; stderr stays for its one message.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    if nix::unistd::geteuid().is_root() {
        let g = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setgroups(&[]).map_err(|e| io("clear supplementary groups")(e.into()))?;
        nix::unistd::setresgid(g, g, g).map_err(|e| io("set group ids")(e.into()))?;
    }
    landlock(dirs).map_err(|e| BrokerError::Io { op: "restrict the binder with Landlock", source: io::Error::other(e) })?;
    for set in [caps::CapSet::Effective, caps::CapSet::Permitted, caps::CapSet::Inheritable] {
        caps::clear(None, set).map_err(|source| BrokerError::Capabilities { set: "binder", source })?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| io("set no_new_privs")(e.into()))?;
    let prog = filter()?;
    seccompiler::apply_filter(&prog).map_err(|e| BrokerError::Filter { op: "install the binder's", detail: e.to_string() })?;
    let addrs: Vec<nix::sys::socket::UnixAddr> =
        paths.iter().map(|p| nix::sys::socket::UnixAddr::new(p.as_path())).collect::<nix::Result<_>>().map_err(|e| io("make a socket address")(e.into()))?;
    loop {
        let mut req = [0u8; REQUEST];
        let got = match capexec_sys::recv_fds(channel.as_raw_fd(), &mut req, 0) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => return Ok(()),
        };
        if got.bytes == 0 {
            return Ok(());
        }
        let index = u32::from_ne_bytes(req[..4].try_into().expect("4 bytes")) as usize;
        let umask = u32::from_ne_bytes(req[4..].try_into().expect("4 bytes"));
        let errno = match (got.bytes, got.fds.first(), addrs.get(index)) {
            (REQUEST, Some(sock), Some(addr)) => {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask & 0o777));
                match nix::sys::socket::bind(sock.as_raw_fd(), addr) {
                    Ok(()) => 0,
                    Err(e) => e as i32,
                }
            }
            _ => libc::EINVAL,
        };
        drop(got);
        if capexec_sys::send_fds(channel.as_raw_fd(), &errno.to_ne_bytes(), &[], libc::MSG_NOSIGNAL).is_err() {
            return Ok(());
        }
    }
}

/// Sockets may be made in the grants' directories; nothing else anywhere.
fn landlock(dirs: &[OwnedFd]) -> Result<(), landlock::RulesetError> {
    use landlock::{Access, AccessFs, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI};
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(ABI::V5))?.create()?;
    for d in dirs {
        ruleset = ruleset.add_rule(PathBeneath::new(d, AccessFs::MakeSock))?;
    }
    ruleset.restrict_self()?;
    Ok(())
}

/// The binder's seccomp allowlist: its requests, umask and bind, memory,
/// and exit. Anything else kills it (the broker then answers EIO).
fn filter() -> Result<seccompiler::BpfProgram, BrokerError> {
    const CALLS: &[&str] = &[
        "recvmsg",
        "sendmsg",
        "umask",
        "bind",
        "close",
        "fcntl",
        "brk",
        "mmap",
        "munmap",
        "mremap",
        "madvise",
        "futex",
        "rt_sigreturn",
        "sigaltstack",
        "exit",
        "exit_group",
        "write",
    ];
    let build = |detail: String| BrokerError::Filter { op: "build the binder's", detail };
    let mut nrs = Vec::new();
    for name in CALLS {
        nrs.push((capexec_decl::syscalls::number(name).ok_or_else(|| build(format!("unknown syscall `{name}`")))? as u32, None));
    }
    capexec_sandbox::seccomp::allowlist(nrs, libc::SECCOMP_RET_KILL_PROCESS).map_err(|e| build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use capexec_sandbox::seccomp::answer;

    /// The binder answers requests with umask and bind; a subverted one
    /// can open, change, execute or make nothing else.
    #[test]
    fn the_binder_may_bind_and_nothing_more() {
        let prog = super::filter().unwrap();
        let x = |name: &str| answer(&prog, capexec_decl::syscalls::number(name).unwrap() as u32, [0; 6]);
        for ok in ["recvmsg", "sendmsg", "umask", "bind"] {
            assert_eq!(x(ok), libc::SECCOMP_RET_ALLOW, "{ok}");
        }
        for bad in [
            "openat",
            "open",
            "fchmodat",
            "fchownat",
            "chmod",
            "unlinkat",
            "renameat2",
            "linkat",
            "mknodat",
            "execve",
            "socket",
            "connect",
            "setuid",
            "setfsuid",
            "capset",
            "clone",
            "ptrace",
        ] {
            assert_eq!(x(bad), libc::SECCOMP_RET_KILL_PROCESS, "{bad}");
        }
    }
}
