//! The binder: a process of its own that binds the service's Unix sockets
//! at the paths of its `unix:` bind grants (`BrokerSpec::bind_unix`), in
//! directories neither the service nor the confined broker may write, and
//! renames, links, removes and changes the mode or group of those sockets
//! and of their temporary names (`BrokerSpec::unix_name`).
//!
//! The broker itself runs with the service's filesystem uid and no
//! capability once confined (`Broker::confine`), so it cannot create a
//! socket in /run, and giving it back uid 0 would let a subverted broker
//! read every file root owns. The binder keeps uid 0, as owner of /run and
//! nothing more: no capability (so it cannot override permissions, nor
//! give a file away), Landlock lets it make and remove names in the grants'
//! directories and nothing else on any filesystem, and its seccomp filter
//! allows receiving a request, the calls of the requests, and answering. A
//! request names a grant by its index (the binder has its own copy of the
//! paths and its own descriptor of their directories) and a suffix the
//! binder checks again, so whatever the broker sends, the binder touches
//! only the grants' sockets: every call but bind is made relative to the
//! directory it opened at the start, and only on a socket. A bind carries
//! the service's socket (SCM_RIGHTS) and umask, so the socket file is made
//! as the service's own bind would have made it, but owned by root (the
//! service's group: its gid is the binder's).

use crate::BrokerError;
use capexec_decl::grants::{temporary_suffix, MAX_TEMPORARY_SUFFIX};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The broker's end of the channel to its binder.
pub struct Binder {
    channel: std::sync::Mutex<OwnedFd>,
}

/// What the broker asks of the binder, on names of one grant: each name a
/// suffix of the grant's path (empty for the path itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Bind the socket sent along at the name, with the service's umask.
    Bind {
        name: &'a [u8],
        umask: u32,
    },
    /// renameat2 with `flags` (0 or RENAME_NOREPLACE).
    Rename {
        from: &'a [u8],
        to: &'a [u8],
        flags: u32,
    },
    Link {
        from: &'a [u8],
        to: &'a [u8],
    },
    Unlink {
        name: &'a [u8],
    },
    Chmod {
        name: &'a [u8],
        mode: u32,
    },
    /// u32::MAX: leave that id.
    Chown {
        name: &'a [u8],
        uid: u32,
        gid: u32,
    },
}

/// A request: op, grant index and two numbers (native u32 each), then two
/// names, each a length byte and MAX_TEMPORARY_SUFFIX bytes.
const NAME: usize = 1 + MAX_TEMPORARY_SUFFIX;
const NUMS: usize = 4 * 4;
const REQUEST: usize = NUMS + 2 * NAME;

impl Op<'_> {
    fn encode(&self, index: usize) -> [u8; REQUEST] {
        let (code, names, nums): (u32, [&[u8]; 2], [u32; 2]) = match *self {
            Op::Bind { name, umask } => (0, [name, b""], [umask, 0]),
            Op::Rename { from, to, flags } => (1, [from, to], [flags, 0]),
            Op::Link { from, to } => (2, [from, to], [0; 2]),
            Op::Unlink { name } => (3, [name, b""], [0; 2]),
            Op::Chmod { name, mode } => (4, [name, b""], [mode, 0]),
            Op::Chown { name, uid, gid } => (5, [name, b""], [uid, gid]),
        };
        let mut req = [0u8; REQUEST];
        for (i, v) in [code, index as u32].into_iter().chain(nums).enumerate() {
            req[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        for (i, n) in names.iter().enumerate() {
            let at = NUMS + i * NAME;
            // (A longer one fails the binder's check: its length byte says 255.)
            req[at] = u8::try_from(n.len()).ok().filter(|l| usize::from(*l) <= MAX_TEMPORARY_SUFFIX).unwrap_or(u8::MAX);
            let n = &n[..n.len().min(MAX_TEMPORARY_SUFFIX)];
            req[at + 1..at + 1 + n.len()].copy_from_slice(n);
        }
        req
    }

    /// The request as the binder reads it, its names checked: None for
    /// anything the broker could not have meant.
    fn decode(req: &[u8; REQUEST]) -> Option<(usize, Op<'_>)> {
        let num = |i: usize| u32::from_ne_bytes(req[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        let name = |i: usize| {
            let at = NUMS + i * NAME;
            let len = usize::from(req[at]);
            let n = req.get(at + 1..at + 1 + len).filter(|_| len <= MAX_TEMPORARY_SUFFIX)?;
            (n.is_empty() || temporary_suffix(n)).then_some(n)
        };
        let (a, b) = (num(2), num(3));
        let op = match num(0) {
            0 => Op::Bind { name: name(0)?, umask: a },
            1 => Op::Rename { from: name(0)?, to: name(1)?, flags: a },
            2 => Op::Link { from: name(0)?, to: name(1)? },
            3 => Op::Unlink { name: name(0)? },
            4 => Op::Chmod { name: name(0)?, mode: a },
            5 => Op::Chown { name: name(0)?, uid: a, gid: b },
            _ => return None,
        };
        Some((num(1) as usize, op))
    }
}

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
        // The directories, opened now, for the binder's Landlock rules and
        // its calls.
        let mut places: Vec<Place> = paths
            .iter()
            .map(|p| capexec_sys::socket_place(p).map(|(real, dir, name)| Place { real, dir, name, made: Default::default() }))
            .collect::<io::Result<_>>()
            .map_err(io("open the directory of a unix: bind grant (by its real path, no link may lead to it)"))?;
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
                        let code = match serve(theirs, &mut places, gid) {
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

    /// Has the binder do `op` on names of grant `index`; a bind sends
    /// `socket` (the broker's copy of the service's) along. The errno of
    /// the binder's call comes back as the result.
    pub fn ask(&self, index: usize, op: Op<'_>, socket: Option<&OwnedFd>) -> io::Result<()> {
        let ch = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        let fds: Vec<RawFd> = socket.iter().map(|s| s.as_raw_fd()).collect();
        capexec_sys::send_fds(ch.as_raw_fd(), &op.encode(index), &fds, libc::MSG_NOSIGNAL)?;
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

/// Temporary names of one grant that may exist at once (haproxy's and
/// supervisord's replacements need two).
const MAX_MADE: usize = 16;

/// A grant's socket as the binder reaches it.
struct Place {
    /// Its directory's real path (for bind, which takes a path).
    real: PathBuf,
    dir: OwnedFd,
    /// The socket's name in it.
    name: CString,
    /// The temporary names (suffixes) this binder made and that are still
    /// there as far as it knows: the only ones it renames, links, removes
    /// or changes. Another program's socket that happens to have such a
    /// name (the grant /run/app, a daemon's /run/app.sock) is not the
    /// service's.
    made: std::collections::BTreeSet<Vec<u8>>,
}

impl Place {
    fn name(&self, suffix: &[u8]) -> CString {
        // Neither part holds a NUL (a CString, and a checked suffix).
        CString::new([self.name.as_bytes(), suffix].concat()).expect("no NUL")
    }

    /// ENOENT when `name` is not there; EPERM when it is not a socket:
    /// the binder changes sockets only.
    fn socket(&self, name: &CString) -> nix::Result<()> {
        let st = nix::sys::stat::fstatat(Some(self.dir.as_raw_fd()), name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        match st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
            true => Ok(()),
            false => Err(nix::errno::Errno::EPERM),
        }
    }

    fn absent_or_socket(&self, name: &CString) -> nix::Result<()> {
        match self.socket(name) {
            Err(nix::errno::Errno::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// The grant's own name, or a temporary one this binder made: Ok.
    /// Another name: ENOENT if it is not there, else EPERM.
    fn ours(&self, suffix: &[u8]) -> nix::Result<()> {
        if suffix.is_empty() || self.made.contains(suffix) {
            return Ok(());
        }
        let there = nix::sys::stat::fstatat(Some(self.dir.as_raw_fd()), self.name(suffix).as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        Err(if there.is_ok() { nix::errno::Errno::EPERM } else { nix::errno::Errno::ENOENT })
    }

    /// A name a rename or link makes: one of [`Place::ours`], or one not there.
    fn ours_or_absent(&self, suffix: &[u8]) -> nix::Result<()> {
        match self.ours(suffix) {
            Err(nix::errno::Errno::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// Notes a temporary name made or gone.
    fn note(&mut self, suffix: &[u8], made: bool) {
        match (suffix.is_empty(), made) {
            (true, _) => {}
            (false, true) => drop(self.made.insert(suffix.to_vec())),
            (false, false) => drop(self.made.remove(suffix)),
        }
    }

    fn apply(&mut self, op: Op<'_>, socket: Option<&OwnedFd>) -> nix::Result<()> {
        // Each temporary name is an inode of the host's /run (a tmpfs with
        // a fixed number of them): a service makes a few at a time at most.
        let new = |n: &[u8]| !n.is_empty() && !self.made.contains(n);
        let adds = match op {
            Op::Bind { name, .. } => new(name),
            Op::Link { to, .. } => new(to),
            Op::Rename { from, to, .. } => from.is_empty() && new(to),
            Op::Unlink { .. } | Op::Chmod { .. } | Op::Chown { .. } => false,
        };
        if adds && self.made.len() >= MAX_MADE {
            return Err(nix::errno::Errno::ENOSPC);
        }
        let done = self.call(op, socket);
        if done.is_ok() {
            match op {
                Op::Bind { name, .. } => self.note(name, true),
                Op::Rename { from, to, .. } => {
                    self.note(from, false);
                    self.note(to, true);
                }
                Op::Link { to, .. } => self.note(to, true),
                Op::Unlink { name } => self.note(name, false),
                Op::Chmod { .. } | Op::Chown { .. } => {}
            }
        }
        done
    }

    fn call(&self, op: Op<'_>, socket: Option<&OwnedFd>) -> nix::Result<()> {
        use nix::errno::Errno;
        let dir = Some(self.dir.as_raw_fd());
        match op {
            Op::Bind { name, umask } => {
                let sock = socket.ok_or(Errno::EINVAL)?;
                let name = self.name(name);
                let addr = nix::sys::socket::UnixAddr::new(self.real.join(std::ffi::OsStr::from_bytes(name.as_bytes())).as_path())?;
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask & 0o777));
                nix::sys::socket::bind(sock.as_raw_fd(), &addr)
            }
            Op::Rename { from, to, flags } => {
                let flags =
                    nix::fcntl::RenameFlags::from_bits(flags).filter(|f| (*f - nix::fcntl::RenameFlags::RENAME_NOREPLACE).is_empty()).ok_or(Errno::EINVAL)?;
                self.ours(from)?;
                self.ours_or_absent(to)?;
                let (from, to) = (self.name(from), self.name(to));
                self.socket(&from)?;
                self.absent_or_socket(&to)?;
                nix::fcntl::renameat2(dir, from.as_c_str(), dir, to.as_c_str(), flags)
            }
            Op::Link { from, to } => {
                self.ours(from)?;
                self.ours_or_absent(to)?;
                let (from, to) = (self.name(from), self.name(to));
                self.socket(&from)?;
                nix::unistd::linkat(dir, from.as_c_str(), dir, to.as_c_str(), nix::fcntl::AtFlags::empty())
            }
            Op::Unlink { name } => {
                self.ours(name)?;
                let name = self.name(name);
                self.socket(&name)?;
                nix::unistd::unlinkat(dir, name.as_c_str(), nix::unistd::UnlinkatFlags::NoRemoveDir)
            }
            Op::Chmod { name, mode } => {
                self.ours(name)?;
                let name = self.name(name);
                self.socket(&name)?;
                // (Linux cannot chmod a link itself: the name was a socket just now.)
                let mode = nix::sys::stat::Mode::from_bits_truncate(mode & 0o777);
                nix::sys::stat::fchmodat(dir, name.as_c_str(), mode, nix::sys::stat::FchmodatFlags::FollowSymlink)
            }
            Op::Chown { name, uid, gid } => {
                self.ours(name)?;
                let name = self.name(name);
                self.socket(&name)?;
                let id = |v: u32| (v != u32::MAX).then_some(v);
                nix::unistd::fchownat(
                    dir,
                    name.as_c_str(),
                    id(uid).map(nix::unistd::Uid::from_raw),
                    id(gid).map(nix::unistd::Gid::from_raw),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
            }
        }
    }
}

/// The binder's life: confine itself, then answer requests until the
/// broker's end closes.
fn serve(channel: OwnedFd, places: &mut [Place], gid: u32) -> Result<(), BrokerError> {
    let io = |op| move |source| BrokerError::Io { op, source };
    // Nothing of the caller's but the channel and the directories.
    let mut keep: Vec<RawFd> = places.iter().map(|d| d.dir.as_raw_fd()).chain([channel.as_raw_fd()]).collect();
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
    landlock(places).map_err(|e| BrokerError::Io { op: "restrict the binder with Landlock", source: io::Error::other(e) })?;
    for set in [caps::CapSet::Effective, caps::CapSet::Permitted, caps::CapSet::Inheritable] {
        caps::clear(None, set).map_err(|source| BrokerError::Capabilities { set: "binder", source })?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| io("set no_new_privs")(e.into()))?;
    let prog = filter()?;
    seccompiler::apply_filter(&prog).map_err(|e| BrokerError::Filter { op: "install the binder's", detail: e.to_string() })?;
    loop {
        let mut req = [0u8; REQUEST];
        let got = match capexec_sys::recv_fds(channel.as_raw_fd(), &mut req, 0) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => break,
        };
        if got.bytes == 0 {
            break;
        }
        let errno = match (got.bytes, Op::decode(&req)) {
            (REQUEST, Some((index, op))) => match places.get_mut(index).map(|p| p.apply(op, got.fds.first())) {
                Some(Ok(())) => 0,
                Some(Err(e)) => e as i32,
                None => libc::EINVAL,
            },
            _ => libc::EINVAL,
        };
        drop(got);
        if capexec_sys::send_fds(channel.as_raw_fd(), &errno.to_ne_bytes(), &[], libc::MSG_NOSIGNAL).is_err() {
            break;
        }
    }
    // The broker is gone, so is the service: the temporary names it left
    // (a daemon killed between its bind and its rename) go with it, as
    // capexec removes the grant's own socket.
    for p in places.iter() {
        for suffix in &p.made {
            let _ = p.call(Op::Unlink { name: suffix }, None);
        }
    }
    Ok(())
}

/// Sockets may be made, and names removed (an unlink, a rename's source or
/// the socket it replaces), in the grants' directories; nothing else
/// anywhere. The binder's own checks keep what it removes to the grants'
/// sockets.
fn landlock(places: &[Place]) -> Result<(), landlock::RulesetError> {
    use landlock::{Access, AccessFs, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI};
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(ABI::V5))?.create()?;
    for p in places {
        ruleset = ruleset.add_rule(PathBeneath::new(&p.dir, AccessFs::MakeSock | AccessFs::RemoveFile))?;
    }
    ruleset.restrict_self()?;
    Ok(())
}

/// The binder's seccomp allowlist: its requests, the calls that answer
/// them (umask and bind; the *at calls on its directories' names), memory,
/// and exit. Anything else kills it (the broker then answers EIO).
fn filter() -> Result<seccompiler::BpfProgram, BrokerError> {
    const CALLS: &[&str] = &[
        "recvmsg",
        "sendmsg",
        "umask",
        "bind",
        "newfstatat",
        // (glibc's renameat2 without flags calls renameat.)
        "renameat",
        "renameat2",
        "linkat",
        "unlinkat",
        "fchmodat",
        "fchownat",
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
    use super::{Op, REQUEST};
    use capexec_sandbox::seccomp::answer;

    /// The binder answers requests with umask, bind and the *at calls on
    /// names in its directories; a subverted one can open, execute or make
    /// nothing else, and reach no path but by those directories.
    #[test]
    fn the_binder_may_bind_and_nothing_more() {
        let prog = super::filter().unwrap();
        let x = |name: &str| answer(&prog, capexec_decl::syscalls::number(name).unwrap() as u32, [0; 6]);
        for ok in ["recvmsg", "sendmsg", "umask", "bind", "renameat", "renameat2", "linkat", "unlinkat", "fchmodat", "fchownat", "newfstatat"] {
            assert_eq!(x(ok), libc::SECCOMP_RET_ALLOW, "{ok}");
        }
        for bad in [
            "openat",
            "open",
            "openat2",
            "chmod",
            "chown",
            "rename",
            "link",
            "unlink",
            "symlinkat",
            "mkdirat",
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

    /// What the broker sends is what the binder reads; a name the broker
    /// could not have sent (a `/`, too long, no dot) is no request at all.
    #[test]
    fn requests_carry_checked_names() {
        let ops = [
            Op::Bind { name: b".9881.tmp", umask: 0o022 },
            Op::Rename { from: b".9881.tmp", to: b"", flags: 1 },
            Op::Link { from: b"", to: b".9881.bak" },
            Op::Unlink { name: b".9881.bak" },
            Op::Chmod { name: b".77", mode: 0o700 },
            Op::Chown { name: b"", uid: u32::MAX, gid: 7 },
        ];
        for (i, op) in ops.into_iter().enumerate() {
            assert_eq!(Op::decode(&op.encode(i)), Some((i, op)));
        }
        for bad in [&b"/../../etc/passwd"[..], b"x", b".a/b", b".", b".0123456789012345678901234567890123456789"] {
            assert_eq!(Op::decode(&Op::Unlink { name: bad }.encode(0)), None, "{}", String::from_utf8_lossy(bad));
            assert_eq!(Op::decode(&Op::Rename { from: b"", to: bad, flags: 0 }.encode(0)), None);
        }
        let mut forged = Op::Unlink { name: b".1" }.encode(0);
        forged[16] = 40;
        assert_eq!(Op::decode(&forged), None, "a length past the name");
        forged = Op::Unlink { name: b".1" }.encode(0);
        forged[0] = 9;
        assert_eq!(Op::decode(&forged), None, "an unknown op");
        assert_eq!(REQUEST, 16 + 2 * 33);
    }
}
