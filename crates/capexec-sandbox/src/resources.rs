//! Preopened resources: opened by capexec in the host's namespaces, before any
//! confinement, and handed to the service as fds 3, 4, ... (systemd's LISTEN_FDS
//! protocol). The service never needs the right to open or bind them itself.

use crate::error::LaunchError;
use capexec_decl::spec::{FileMode, ListenAddr, Preopen, PreopenKind};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage, UnixAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};

/// A preopened file in append mode as the service gets it with
/// `append_pipes`: it holds the pipe's write end, the broker this file and
/// the read end.
pub struct AppendPipe {
    pub file: OwnedFd,
    pub from: OwnedFd,
    /// For the log: the file's path.
    pub path: String,
}

/// Opens every preopen of the plan in order: the service's fds, and with
/// `append_pipes` the files in append mode the service writes through a
/// pipe. The service's uid and gid are chowned onto files and Unix socket
/// paths that capexec creates, so the service owns what was made for it.
/// Under MDWE, files opened for reading and writing come from a noexec copy
/// of their mount (see [`crate::noexec`]).
/// Creates the plan's directories (as systemd's RuntimeDirectory= and the
/// others do) before the view binds them: missing parents as root's 0755, the
/// directory itself with its declared mode (else 0755) and owned by the
/// service's ids. An existing one is given to the service if it is not its
/// already, and given its declared mode (as systemd does: chronyd refuses a
/// /run/chrony that others may read). Only as root (validation refuses these
/// directories rootless).
///
/// Walked one component at a time from `/` without following any symlink:
/// a directory made for the service earlier is the service's, and a symlink
/// it left there (state_directory = ["app", "app/db/x"], with app/db made a
/// link to /etc) must not make this root process create and hand over a
/// directory elsewhere.
pub fn make_directories(plan: &crate::SetupPlan) -> Result<(), LaunchError> {
    use std::os::unix::ffi::OsStrExt;
    for (d, mode) in &plan.directories {
        let fail = |e: std::io::Error| LaunchError::io("create the service's directory (no symlink may lead to it)", d.display(), e);
        let mut dir = OwnedFd::from(std::fs::File::open("/").map_err(fail)?);
        let parts: Vec<_> = d
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        for (i, part) in parts.iter().enumerate() {
            // Parents as root's 0755; the directory itself with its mode.
            let make = if i + 1 == parts.len() { mode.unwrap_or(0o755) } else { 0o755 };
            let name = std::ffi::CString::new(part.as_bytes()).map_err(|_| fail(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
            dir = match crate::sys::open_dir_at(dir.as_fd(), &name) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    crate::sys::mkdir_at(dir.as_fd(), &name, make)
                        .or_else(|e| if e.raw_os_error() == Some(libc::EEXIST) { Ok(()) } else { Err(e) })
                        .map_err(fail)?;
                    crate::sys::open_dir_at(dir.as_fd(), &name).map_err(fail)?
                }
                r => r.map_err(fail)?,
            };
        }
        let st = nix::sys::stat::fstat(dir.as_raw_fd()).map_err(|e| fail(e.into()))?;
        let (uid, gid) = plan.directories_owner;
        if (st.st_uid, st.st_gid) != (uid, gid) {
            std::os::unix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(|e| LaunchError::io("give the service its directory", d.display(), e))?;
            // What is in it too, as systemd does for a directory whose owner
            // is not the service's: /run/gdnsd left by a gdnsd run as root
            // held a root-owned lock file, and gdnsd refused to start.
            if st.st_nlink > 2 || !is_empty(&dir) {
                give_contents(&dir, (uid, gid)).map_err(|e| LaunchError::io("give the service what its directory holds", d.display(), e))?;
            }
        }
        // mkdir's mode went through the umask; a declared one holds exactly.
        if let Some(m) = mode.filter(|m| st.st_mode & 0o7777 != *m) {
            nix::sys::stat::fchmod(dir.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(m))
                .map_err(|e| LaunchError::io("give the service's directory its declared mode", d.display(), e.into()))?;
        }
    }
    Ok(())
}

/// Whether the directory `dir` holds nothing.
fn is_empty(dir: &OwnedFd) -> bool {
    std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())).is_ok_and(|mut e| e.next().is_none())
}

/// Chowns everything below the directory `top` to `owner`, never through a
/// symlink (a symlink itself is chowned, not its target): each directory is
/// opened from its parent's fd without following, and listed through that
/// fd. A file with more than one link is left as it is: whoever could write
/// in the directory could have linked a file of theirs, or one they may only
/// write, there for the service to be given.
fn give_contents(top: &OwnedFd, owner: (u32, u32)) -> std::io::Result<()> {
    use nix::fcntl::AtFlags;
    use nix::unistd::{fchownat, Gid, Uid};
    let mut dirs = vec![top.try_clone()?];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
            let entry = entry?;
            let Ok(name) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(entry.file_name().as_os_str())) else { continue };
            let st = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if !is_dir && st.st_nlink > 1 {
                continue;
            }
            fchownat(Some(dir.as_raw_fd()), name.as_c_str(), Some(Uid::from_raw(owner.0)), Some(Gid::from_raw(owner.1)), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if is_dir {
                dirs.push(crate::sys::open_dir_at(dir.as_fd(), &name)?);
            }
        }
    }
    Ok(())
}

/// Removes the plan's runtime directories (those under /run), as systemd does
/// when a service stops, and the pid file and own files capexec made for it
/// (systemd removes a `PIDFile=`). The service could write anything in them, so
/// nothing is followed: `remove_dir_all` unlinks symlinks, never their
/// targets, and the pid file's directory is reached without a symlink.
pub fn remove_runtime_directories(spec: &capexec_decl::ServiceSpec) {
    for (dir, name) in spec.filesystem.pid_file.iter().chain(&spec.filesystem.own_files).filter_map(|p| file_place(p).ok()) {
        let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name.as_c_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    if let Some((dir, name)) = host_pid_file(spec).and_then(|p| file_place(p).ok()) {
        let st = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        if st.is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG) {
            let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name.as_c_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
    // (Last: a test waits for them to go to know the files above are done.)
    for d in spec.filesystem.directories.iter().filter(|d| d.kind == capexec_decl::spec::DirKind::Runtime) {
        let _ = std::fs::remove_dir_all(&d.path);
    }
    remove_unix_sockets(&spec.broker.bind_unix);
}

/// Whether [`remove_runtime_directories`] has anything to remove for `spec`.
pub fn leaves_anything(spec: &capexec_decl::ServiceSpec) -> bool {
    spec.filesystem.directories.iter().any(|d| d.kind == capexec_decl::spec::DirKind::Runtime)
        || spec.filesystem.pid_file.is_some()
        || !spec.filesystem.own_files.is_empty()
        || !spec.broker.bind_unix.is_empty()
        || host_pid_file(spec).is_some()
}

/// The declared pid file where the service writes it itself on the host:
/// in a writable directory of the view that is the host's (`read_write`),
/// where capexec did not make it. systemd removes a `PIDFile=` the daemon
/// left at its stop; sslh's, left by a daemon ended by SIGTERM, stayed in
/// /run/sslh and named a pid that was gone. In the private /tmp it is not
/// the host's file.
fn host_pid_file(spec: &capexec_decl::ServiceSpec) -> Option<&std::path::Path> {
    use capexec_decl::spec::MountKind;
    let path = spec.service.pid_file.as_deref()?;
    let deepest = spec.filesystem.mounts.iter().filter(|m| path.starts_with(&m.path)).max_by_key(|m| m.path.components().count())?;
    matches!(deepest.kind, MountKind::ReadWrite | MountKind::ReadWriteExec).then_some(path)
}

/// Removes the Unix sockets at `paths` (the broker's `bind_unix` grants),
/// after the service stopped and before it starts: the service may not
/// remove its own (its directory is not its to write), and a daemon that
/// finds an old one fails (unbound: "Cannot remove old local socket").
/// Only a socket goes; the directory is reached by its real path without a
/// link. Temporary names beside a grant's path stay: one the service left
/// cannot be told from another program's socket of the same name.
pub fn remove_unix_sockets(paths: &[std::path::PathBuf]) {
    for (_, dir, name) in paths.iter().filter_map(|p| crate::sys::socket_place(p).ok()) {
        let st = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        if st.is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK) {
            let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name.as_c_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Makes the plan's pid file (see `FsSpec::pid_file`) and own files
/// (`FsSpec::own_files`) before the view binds them: each empty, 0644,
/// owned as the service's directories are. Its directory
/// is reached without following a symlink and the file is opened with
/// O_NOFOLLOW; an existing one must be a regular file with no other link,
/// so that nothing planted in its place makes this root process truncate
/// and hand over another file. A file left by an earlier run is emptied.
/// Returns a detached mount of each very file for the view to attach at its
/// path (as `owner_trees` are): bound by path, whoever may write its
/// directory could swap in a link to another file between now and the bind.
pub fn make_files(plan: &crate::SetupPlan) -> Result<Vec<(std::path::PathBuf, OwnedFd)>, LaunchError> {
    let made = plan.pid_file.iter().map(|p| (p, "service.pid_file")).chain(plan.own_files.iter().map(|p| (p, "filesystem.own_files")));
    made.map(|(path, key)| make_file(path, key, plan.directories_owner)).collect()
}

fn make_file(path: &std::path::Path, key: &str, (uid, gid): (u32, u32)) -> Result<(std::path::PathBuf, OwnedFd), LaunchError> {
    let what = format!("{} ({key})", path.display());
    let what = &what;
    let fail = |op: &'static str| move |e: std::io::Error| LaunchError::io(op, what, e);
    let (dir, name) = file_place(path).map_err(fail("reach the directory of a file capexec makes (no symlink may lead to it)"))?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let f = crate::sys::open_at(dir.as_fd(), &name, flags, 0o644).map_err(fail("create a file for the service"))?;
    let st = nix::sys::stat::fstat(f.as_raw_fd()).map_err(|e| fail("stat a file made for the service")(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_nlink != 1 {
        return Err(fail("use a file made for the service (it must be a regular file with one link)")(std::io::Error::from_raw_os_error(libc::EEXIST)));
    }
    nix::unistd::ftruncate(&f, 0).map_err(|e| fail("empty a file made for the service")(e.into()))?;
    if (st.st_uid, st.st_gid) != (uid, gid) && nix::unistd::geteuid().is_root() {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(fail("give the service a file made for it"))?;
    }
    nix::sys::stat::fchmod(f.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(0o644))
        .map_err(|e| fail("set the mode of a file made for the service")(e.into()))?;
    let tree = crate::sys::clone_file_tree(f.as_fd()).map_err(fail("make a mount of a file made for the service"))?;
    Ok((path.to_owned(), tree))
}

/// The view's /proc, made here (see `capexec_sys::proc_tree`), for a
/// service in a user namespace of its own that shares the host's pid
/// namespace (as root, with a pid file: systemd's `PrivateUsers=`): its
/// init could not mount a procfs of the host's pid namespace. Its hidepid
/// shows the processes the service may ptrace, which Landlock keeps to the
/// service's own.
pub fn proc_tree(plan: &crate::SetupPlan) -> Result<Option<(std::path::PathBuf, OwnedFd)>, LaunchError> {
    if !plan.user_ns || plan.pid_ns {
        return Ok(None);
    }
    let Some((mode, hidepid)) = plan.mounts.iter().find_map(|m| match m {
        crate::plan::MountStep::Proc { mode, hidepid, .. } => Some((*mode, *hidepid)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let options: Vec<(std::ffi::CString, std::ffi::CString)> = crate::mounts::proc_options(mode, hidepid)
        .into_iter()
        .map(|(k, v)| (std::ffi::CString::new(k).expect("no NUL"), std::ffi::CString::new(v).expect("no NUL")))
        .collect();
    let options: Vec<(&std::ffi::CStr, &std::ffi::CStr)> = options.iter().map(|(k, v)| (k.as_c_str(), v.as_c_str())).collect();
    let tree = crate::sys::proc_tree(&options).map_err(|e| LaunchError::io("make the view's /proc (a procfs of the host's pid namespace)", "/proc", e))?;
    Ok(Some(("/proc".into(), tree)))
}

/// The directory of a file capexec makes or removes for the service (its
/// pid file, a Unix socket), opened without following a symlink, and its name.
/// The pid a service's pid file holds, read on the host: its directory
/// reached without following a symlink (the service may write there), the
/// file itself neither a link nor anything but a regular file (a FIFO would
/// hold the reader; a device's open may act).
pub fn read_pid_file(path: &std::path::Path) -> Option<libc::pid_t> {
    use std::io::Read;
    let (dir, name) = file_place(path).ok()?;
    let fd = crate::sys::open_at(dir.as_fd(), &name, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY, 0).ok()?;
    let mut f = std::fs::File::from(fd);
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = [0u8; 24];
    let n = f.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok().filter(|p: &libc::pid_t| *p > 0)
}

fn file_place(path: &std::path::Path) -> std::io::Result<(OwnedFd, std::ffi::CString)> {
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return Err(einval()) };
    let name = std::ffi::CString::new(name.as_encoded_bytes()).map_err(|_| einval())?;
    Ok((crate::sys::open_dir_no_links(dir)?, name))
}

pub fn open_all(plan: &crate::SetupPlan) -> Result<(Vec<OwnedFd>, Vec<AppendPipe>), LaunchError> {
    let owner = (plan.uid, plan.gid);
    let mut fds = Vec::new();
    let mut pipes = Vec::new();
    for p in &plan.preopens {
        let mut fd = open_one(p, owner)?;
        if let PreopenKind::File { path, mode: FileMode::ReadWrite, .. } = &p.kind {
            if plan.mdwe {
                let kind = crate::noexec::Kind::File { flags: libc::O_RDWR };
                fd = crate::noexec::reopen(&[(path.as_path(), kind, &fd)])?.pop().expect("one fd per item");
            }
        }
        match &p.kind {
            PreopenKind::File { path, mode: FileMode::Append, .. } if plan.append_pipes => {
                let (from, to) = crate::sys::pipe2(libc::O_CLOEXEC).map_err(|e| LaunchError::io("create the append pipe of", path.display(), e))?;
                pipes.push(AppendPipe { file: fd, from, path: path.display().to_string() });
                fds.push(to);
            }
            _ => fds.push(fd),
        }
    }
    Ok((fds, pipes))
}

fn open_one(p: &Preopen, owner: (u32, u32)) -> Result<OwnedFd, LaunchError> {
    match &p.kind {
        PreopenKind::Listen { address, backlog, socket_mode, .. } => listen(address, *backlog, *socket_mode, owner),
        PreopenKind::File { path, mode, create } => {
            let mut o = std::fs::OpenOptions::new();
            match mode {
                FileMode::Read => o.read(true),
                FileMode::Write => o.write(true),
                FileMode::ReadWrite => o.read(true).write(true),
                FileMode::Append => o.append(true),
            };
            o.create(*create).mode(0o640).custom_flags(libc::O_NOCTTY);
            let existed = path.exists();
            let f = o.open(path).map_err(|e| LaunchError::io("open preopened file", path.display(), e))?;
            if *create && !existed {
                chown(f.as_fd(), owner, &path.display().to_string())?;
            }
            Ok(f.into())
        }
        PreopenKind::Directory { path } => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOCTTY)
                .open(path)
                .map_err(|e| LaunchError::io("open preopened directory", path.display(), e))?;
            Ok(f.into())
        }
    }
}

fn chown(fd: std::os::fd::BorrowedFd, owner: (u32, u32), what: &str) -> Result<(), LaunchError> {
    if nix::unistd::geteuid().is_root() {
        nix::unistd::fchown(fd.as_raw_fd(), Some(owner.0.into()), Some(owner.1.into())).map_err(|e| LaunchError::io("chown", what, e.into()))?;
    }
    Ok(())
}

fn listen(addr: &ListenAddr, backlog: u32, mode: Option<u32>, owner: (u32, u32)) -> Result<OwnedFd, LaunchError> {
    let what = addr.to_string();
    let e = |op: &'static str| {
        let what = what.clone();
        move |err: nix::Error| LaunchError::io(op, what, err.into())
    };
    let cloexec = SockFlag::SOCK_CLOEXEC;
    match addr {
        ListenAddr::Tcp(sa) | ListenAddr::Udp(sa) => {
            let fam = if sa.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
            let ty = if matches!(addr, ListenAddr::Tcp(_)) { SockType::Stream } else { SockType::Datagram };
            let fd = socket::socket(fam, ty, cloexec, None).map_err(e("create socket for"))?;
            socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(e("set SO_REUSEADDR on"))?;
            if sa.is_ipv6() {
                // [::]:80 means IPv6 only, so that 0.0.0.0:80 can be declared beside it.
                socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(e("set IPV6_V6ONLY on"))?;
            }
            socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(*sa)).map_err(e("bind"))?;
            if ty == SockType::Stream {
                socket::listen(&fd, socket::Backlog::new(backlog.min(i32::MAX as u32) as i32).unwrap_or(socket::Backlog::MAXCONN)).map_err(e("listen on"))?;
            }
            Ok(fd)
        }
        ListenAddr::Unix(path) | ListenAddr::UnixDgram(path) => {
            // A stale socket file from an earlier run would make bind fail; replace
            // it, but never remove anything that is not a socket.
            if let Ok(m) = path.symlink_metadata() {
                if m.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            // Missing parents are made as systemd makes them for a socket
            // unit (DirectoryMode=0755): /run/systemd/journal for syslog.socket.
            if let Some(dir) = path.parent().filter(|d| !d.exists()) {
                std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o755)
                    .create(dir)
                    .map_err(|err| LaunchError::io("create the socket's directory", dir.display(), err))?;
            }
            let stream = matches!(addr, ListenAddr::Unix(_));
            let ty = if stream { SockType::Stream } else { SockType::Datagram };
            let fd = socket::socket(AddressFamily::Unix, ty, cloexec, None).map_err(e("create socket for"))?;
            let ua = UnixAddr::new(path.as_path()).map_err(e("socket path"))?;
            socket::bind(fd.as_raw_fd(), &ua).map_err(e("bind"))?;
            if let Some(m) = mode {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(|err| LaunchError::io("chmod", path.display(), err))?;
            }
            if nix::unistd::geteuid().is_root() {
                nix::unistd::chown(path.as_path(), Some(owner.0.into()), Some(owner.1.into()))
                    .map_err(|err| LaunchError::io("chown", path.display(), err.into()))?;
            }
            if stream {
                socket::listen(&fd, socket::Backlog::new(backlog.min(i32::MAX as u32) as i32).unwrap_or(socket::Backlog::MAXCONN)).map_err(e("listen on"))?;
            }
            Ok(fd)
        }
    }
}

/// For `filesystem.as_owner`: an idmapped copy of each such path of the
/// plan whose owner is not the service's user, in which its
/// owner and group are seen as the service's (so the service may write
/// there, and what it makes belongs to them on the host). The child
/// attaches the copies in place of the binds (see `mounts::build`). Made
/// here, by root in the host's user namespace: an idmapped mount needs
/// CAP_SYS_ADMIN where the filesystem was mounted. Only the owner and group
/// of the path itself are mapped: what belongs to anyone else inside it
/// shows as the overflow id and keeps only its "other" permissions.
pub fn owner_trees(plan: &crate::SetupPlan) -> Result<Vec<(std::path::PathBuf, OwnedFd)>, LaunchError> {
    use std::os::unix::fs::MetadataExt;
    let mut namespaces: Vec<((u32, u32), OwnedFd)> = Vec::new();
    let mut trees = Vec::new();
    for path in &plan.as_owner {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("paths were checked for NUL during validation");
        // The owner is read from the copy itself, so it is the owner of what
        // gets mapped, whatever happens to the path meanwhile.
        let Ok(tree) = crate::sys::clone_tree(&c) else {
            // Missing (an optional path): the child does as without the key.
            continue;
        };
        let meta = std::fs::File::from(tree.try_clone().map_err(|e| LaunchError::io("duplicate the mount copy of", path.display(), e))?)
            .metadata()
            .map_err(|e| LaunchError::io("stat the mount copy of", path.display(), e))?;
        let owner = (meta.uid(), meta.gid());
        // A link is recreated in the view, not bound.
        if meta.file_type().is_symlink() || owner == (plan.uid, plan.gid) {
            continue;
        }
        let idmap = match namespaces.iter().position(|(o, _)| *o == owner) {
            Some(i) => &namespaces[i].1,
            None => {
                let ns = crate::sys::idmap_userns((owner.0, plan.uid), (owner.1, plan.gid))
                    .map_err(|e| LaunchError::io("make the user namespace of an idmapped mount (filesystem.as_owner) for", path.display(), e))?;
                namespaces.push((owner, ns));
                &namespaces.last().expect("just pushed").1
            }
        };
        crate::sys::idmap_tree(&tree, idmap).or_else(|e| match e.raw_os_error() {
            // A mount below that cannot be idmapped fails the whole tree: an
            // nsfs file of `ip netns` (/run/netns/NAME) or of Docker under
            // /run. The kernel maps only the root of a detached tree alone,
            // so then the mounts below keep their owners as they are: there
            // the service does not act as the owner, as without as_owner.
            Some(libc::EINVAL) => crate::sys::idmap_root(&tree, idmap),
            _ => Err(e),
        }).map_err(|e| {
            LaunchError::io(
                "mount idmapped, so that the service acts as its owner (filesystem.as_owner; the filesystem must support idmapped mounts, else run as the owner: exec.user, capexec run: --user)",
                path.display(),
                e,
            )
        })?;
        trees.push((path.clone(), tree));
    }
    Ok(trees)
}
