//! Builds the service's filesystem view inside its new mount namespace.
//!
//! Why this order:
//! 1. Make every mount a slave first, so nothing done here propagates to the host.
//! 2. Put a tmpfs on /tmp and pivot_root into it, with the host root kept at
//!    /oldroot: the view is built from `/oldroot/<path>` sources. (pivot_root moves
//!    the tmpfs off /tmp, so host paths under /tmp stay reachable as sources.)
//! 3. /dev and /proc first: a new proc instance may only be mounted inside a user
//!    namespace while a fully visible proc (the host's, under /oldroot) is still
//!    attached.
//! 4. The declared paths, parents before children, so a rule for /etc/nginx lands
//!    on top of /etc.
//! 5. Detach /oldroot, then make the root tmpfs and /dev read-only, so the service
//!    can create files only where it was given a writable path.
//!
//! With a root filesystem of its own (an OCI container's), that directory is
//! bound on /tmp instead of the tmpfs, and the view is built in it the same
//! way; /oldroot is made in it for the time of the setup.

use crate::error::{ChildError, Step};
use crate::ops::{Kind, Ops};
use crate::plan::{MountStep, DEV_NODES, PROC_MASKED, PROC_READ_ONLY};
use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use capexec_decl::spec::ProcMode;
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};

const STEP: Step = Step::FilesystemView;
const OLD: &str = "/oldroot";
/// An empty mode-000 file, bind-mounted over files that must be inaccessible.
const MASK_FILE: &str = "/.capexec-mask";
/// The source name of the tmpfs every view capexec builds on its own stands
/// on, which tells its daemons that a client is a sandboxed process (see
/// capexec-supervisor's `control::OwnServices`): anyone may read a process's
/// /proc/PID/mountinfo (its root need not be dumpable, nor the reader its
/// owner), and nothing in a view may mount, remount, chroot or pivot, so a
/// process there can neither hide the name nor leave the root it is in.
pub const VIEW_SOURCE: &str = "capexec-view";
const READ_ONLY: u64 = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display + crate::error::Errno) -> ChildError {
    ChildError::io(STEP, what, e)
}

fn host(path: &Path) -> PathBuf {
    Path::new(OLD).join(path.strip_prefix("/").unwrap_or(path))
}

fn setattr(o: &impl Ops, path: &Path, recursive: bool, attrs: u64) -> Result<(), ChildError> {
    o.mount_setattr(path, recursive, attrs).map_err(|e| err(format!("mount_setattr {}", path.display()), e))
}

fn mkdir_p(o: &impl Ops, path: &Path) -> Result<(), ChildError> {
    o.create_dir_all(path).map_err(|e| {
        // Capabilities in a user namespace override no permission on a file
        // whose owner it does not map (an image owned by the host's root).
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                " (in a user namespace, the directory must belong to an id the namespace maps: chown the root filesystem to the container's root as the host sees it)"
            }
            _ => "",
        };
        err(format!("create mount point {}{hint}", path.display()), e)
    })
}

/// Creates an empty file to bind a file onto (a bind needs a target of the same type).
fn touch(o: &impl Ops, path: &Path) -> Result<(), ChildError> {
    if let Some(parent) = path.parent() {
        mkdir_p(o, parent)?;
    }
    if o.kind(path).is_ok() {
        return Ok(());
    }
    o.create_file(path, 0o600, b"", false).map_err(|e| err(format!("create mount point {}", path.display()), e))
}

fn bind(o: &impl Ops, src: &Path, dst: &Path) -> Result<(), ChildError> {
    o.mount(Some(src), dst, None, MsFlags::MS_BIND | MsFlags::MS_REC, None).map_err(|e| err(format!("bind {} onto {}", src.display(), dst.display()), e))
}

fn tmpfs(o: &impl Ops, dst: &Path, flags: MsFlags, mode: u32) -> Result<(), ChildError> {
    let data = format!("mode={mode:o}");
    o.mount(Some(Path::new("tmpfs")), dst, Some("tmpfs"), flags, Some(data.as_str())).map_err(|e| err(format!("mount tmpfs on {}", dst.display()), e))
}

/// Builds the view of `steps` on an empty tmpfs, or on the host directory
/// `root` (read-only or not) when given.
pub fn build(
    o: &impl Ops,
    steps: &[MountStep],
    root: Option<(&Path, bool)>,
    workdir: &std::ffi::CStr,
    trees: &[(&Path, std::os::fd::RawFd)],
    before_detach: &mut dyn FnMut() -> Result<(), ChildError>,
) -> Result<(), ChildError> {
    let mut view = View::start(o, root)?;
    view.steps(o, steps, trees)?;
    view.finish(o, steps, workdir, before_detach)
}

/// A view being built, in three phases that [`build`] runs in one process
/// and the view builder (crate::view_builder) in two: [`start`](View::start)
/// pivots into the new root, [`steps`](View::steps) mounts, any number of
/// times, [`finish`](View::finish) detaches the host's tree. What one phase
/// leaves to the next is this value (a forked process takes it along).
pub struct View<'r> {
    root: Option<(&'r Path, bool)>,
    /// /oldroot was made here (not the root filesystem's own).
    made_old: bool,
    mask_file: MaskFile,
}

impl<'r> View<'r> {
    /// Makes every mount a slave and pivots into the view's new root, the
    /// host's kept at /oldroot.
    pub fn start(o: &impl Ops, root: Option<(&'r Path, bool)>) -> Result<View<'r>, ChildError> {
        o.mount(None, Path::new("/"), None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None).map_err(|e| err("make / a slave mount", e))?;
        match root {
            None => o
                .mount(Some(Path::new(VIEW_SOURCE)), Path::new("/tmp"), Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=755"))
                .map_err(|e| err("mount tmpfs on /tmp", e))?,
            Some((dir, _)) => bind(o, dir, Path::new("/tmp"))?,
        }
        if root.is_some() {
            no_link_on_the_way(o, Path::new("/tmp/oldroot"), Path::new("/oldroot"))?;
        }
        // A root filesystem may have one already, which then stays.
        let made_old = o.kind(Path::new("/tmp/oldroot")).is_err();
        mkdir_p(o, Path::new("/tmp/oldroot"))?;
        o.pivot_root(Path::new("/tmp"), Path::new("/tmp/oldroot")).map_err(|e| err("pivot_root into the new root", e))?;
        o.chdir(Path::new("/")).map_err(|e| err("chdir /", e))?;
        // In a root filesystem of its own, nothing is written for the masks: the
        // host's /dev/null covers files (unopenable there: nodev), as in runc.
        let mask_file = if root.is_some() { MaskFile::HostNull } else { MaskFile::Unmade };
        Ok(View { root, made_old, mask_file })
    }

    /// Mounts `steps`, in their order.
    pub fn steps(&mut self, o: &impl Ops, steps: &[MountStep], trees: &[(&Path, std::os::fd::RawFd)]) -> Result<(), ChildError> {
        let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let root = self.root;
        let mask_file = &mut self.mask_file;
        for step in steps {
            if root.is_some() {
                no_link_on_the_way(o, step.target(), step.target())?;
            }
            match step {
                MountStep::Dev => dev(o)?,
                MountStep::DevLog => {
                    let log = Path::new("/dev/log");
                    o.symlink(Path::new(crate::plan::SYSLOG_SOCKET), log).map_err(|e| err("symlink /dev/log", e))?;
                }
                MountStep::Proc { mode, hidepid, host_processes } => {
                    proc(o, *mode, *hidepid, mask_file, trees.iter().find(|(p, _)| *p == Path::new("/proc")).map(|(_, t)| *t))?;
                    if *host_processes {
                        setattr(o, Path::new("/proc"), false, READ_ONLY)?;
                    }
                }
                MountStep::Bind { path, attrs, optional, source } => {
                    let src = match (source, root) {
                        (Some(s), _) => host(s),
                        (None, None) => host(path),
                        (None, Some(_)) => path.clone(),
                    };
                    let kind = match o.kind(&src) {
                        Ok(k) => k,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound && *optional => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            let what = match (source, root) {
                                (Some(s), _) => format!("{}, the source of {}, does not exist on the host", s.display(), path.display()),
                                (None, Some(_)) => format!("{} is not in the root filesystem", path.display()),
                                (None, None) => {
                                    format!("{} does not exist on the host (create it, or prefix the path with `-` to skip it when missing)", path.display())
                                }
                            };
                            return Err(ChildError::new(STEP, what));
                        }
                        Err(e) => return Err(err(format!("stat {}", path.display()), e)),
                    };
                    match kind {
                        Kind::Symlink => {
                            // Recreate the link (e.g. /bin -> usr/bin) instead of binding its target.
                            let target = o.read_link(&src).map_err(|e| err(format!("readlink {}", path.display()), e))?;
                            if o.kind(path).is_err() {
                                if let Some(p) = path.parent() {
                                    mkdir_p(o, p)?;
                                }
                                o.symlink(&target, path).map_err(|e| err(format!("symlink {}", path.display()), e))?;
                            }
                            continue;
                        }
                        Kind::Dir => mkdir_p(o, path)?,
                        Kind::File => touch(o, path)?,
                    }
                    match trees.iter().find(|(p, _)| p == path) {
                        Some((_, tree)) => o.attach_tree(*tree, path).map_err(|e| {
                            err(
                                format!("attach the prepared mount of {} (an idmapped filesystem.as_owner path, or the pid file capexec made)", path.display()),
                                e,
                            )
                        })?,
                        None => bind(o, &src, path)?,
                    }
                    setattr(o, path, true, *attrs)?;
                }
                MountStep::Overlay { path, layer } => {
                    // A part of a split directory (capexec_decl::overlay::view)
                    // was a directory of the host's when the view was planned;
                    // one removed since is left out (the split directory shows
                    // what the host has, read-only: there is no mount point to
                    // make, and nothing to overlay). So is one whose place in the
                    // layer is not a directory: an earlier run, with the
                    // directory overlaid whole, deleted or replaced it.
                    let part = !layer.rel.as_os_str().is_empty();
                    if !part {
                        mkdir_p(o, path)?;
                    } else if !matches!(o.kind(path), Ok(Kind::Dir)) || !matches!(o.kind(&host(&layer.upper())), Ok(Kind::Dir)) {
                        continue;
                    }
                    // Paths the validation kept free of `,` `:` `\` `=`. user.*
                    // xattrs (userxattr): the only ones a user namespace may
                    // write, and the same layer format as root or not.
                    let data = format!(
                        "lowerdir={},upperdir={},workdir={},userxattr",
                        host(path).display(),
                        host(&layer.upper()).display(),
                        host(&layer.work()).display()
                    );
                    match o.mount(Some(Path::new("overlay")), path, Some("overlay"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(data.as_str())) {
                        Ok(()) => {}
                        // Removed between the look above and the mount.
                        Err(e) if part && e.raw_os_error() == Some(libc::ENOENT) => continue,
                        Err(e) => {
                            // The view is planned from the host's mounts as they
                            // were: overlayfs refuses a directory something was
                            // mounted below since (EINVAL, "failed to clone lowerpath").
                            let hint = if e.raw_os_error() == Some(libc::EINVAL) {
                                " (was something mounted below it since the run started? run it again)"
                            } else {
                                ""
                            };
                            return Err(err(format!("mount the overlay of {} (layer {}){hint}", path.display(), layer.upper().display()), e));
                        }
                    }
                }
                MountStep::Tmpfs { path, mode } => {
                    mkdir_p(o, path)?;
                    tmpfs(o, path, nosuid_nodev_noexec, *mode)?;
                }
                MountStep::Filesystem { path, fstype, source, flags, data } => {
                    mkdir_p(o, path)?;
                    let flags = MsFlags::from_bits_truncate(*flags as _);
                    let data = Some(data.as_str()).filter(|d| !d.is_empty());
                    match o.mount(Some(Path::new(source)), path, Some(fstype), flags, data) {
                        Ok(()) => {}
                        // In a user namespace without a cgroup namespace of its
                        // own (rootless podman's runtime on a cgroup v1 host), the
                        // kernel refuses a new cgroup2 mount: the host's unified
                        // hierarchy instead, bound read-only (as runc does).
                        Err(e) if fstype == "cgroup2" && e.raw_os_error() == Some(libc::EPERM) => {
                            let unified = host(Path::new("/sys/fs/cgroup/unified"));
                            let src = if o.kind(&unified).is_ok_and(|k| k == Kind::Dir) { unified } else { host(Path::new("/sys/fs/cgroup")) };
                            bind(o, &src, path)?;
                            setattr(o, path, true, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)?;
                        }
                        Err(e) => return Err(err(format!("mount {fstype} on {} (options {})", path.display(), data.unwrap_or("none")), e)),
                    }
                }
                MountStep::Device { node, from_host } => device(o, node, *from_host)?,
                MountStep::Propagation { path, flags } => {
                    let flags = MsFlags::from_bits_truncate(*flags as _);
                    o.mount(None, path, None, flags, None).map_err(|e| err(format!("set the propagation of {} ({flags:?})", path.display()), e))?;
                }
                MountStep::File { path, contents } => file(o, path, contents)?,
                MountStep::Secrets { path, files } => secrets(o, path, files)?,
                MountStep::NotifyDir { path } => {
                    mkdir_p(o, path)?;
                    tmpfs(o, path, nosuid_nodev_noexec, 0o755)?;
                }
                MountStep::SyslogAt { path } => {
                    // capexec's socket directory, bound read-only: the socket
                    // init makes there later appears here too, as the same
                    // inode (a chrooted process cannot follow a link to
                    // /.capexec; and init is in the broker's Landlock domain
                    // by then, where mount(2) is refused).
                    let dir = path.parent().unwrap_or(Path::new("/"));
                    mkdir_p(o, dir)?;
                    bind(o, Path::new(crate::plan::NOTIFY_RELAY_DIR), dir)?;
                    setattr(o, dir, false, READ_ONLY)?;
                }
                MountStep::Mask { path, optional } => {
                    // In a root filesystem of its own, what the view has is all there is.
                    let seen = if root.is_some() { path.clone() } else { host(path) };
                    let kind = match o.kind(&seen) {
                        Ok(k) => k,
                        Err(_) if *optional => continue,
                        Err(e) => return Err(err(format!("stat {} to make it inaccessible", path.display()), e)),
                    };
                    // Only what is in the view needs covering.
                    if o.kind(path).is_err() {
                        continue;
                    }
                    mask(o, path, kind == Kind::Dir, mask_file)?;
                }
            }
        }
        Ok(())
    }

    /// Detaches the host's tree and makes the view's root (and /dev, among
    /// `steps`, all the view's) read-only; then into `workdir`.
    pub fn finish(
        self,
        o: &impl Ops,
        steps: &[MountStep],
        workdir: &std::ffi::CStr,
        before_detach: &mut dyn FnMut() -> Result<(), ChildError>,
    ) -> Result<(), ChildError> {
        let View { root, made_old, mask_file } = self;
        if mask_file == MaskFile::Made {
            o.remove_file(Path::new(MASK_FILE)).map_err(|e| err(format!("remove {MASK_FILE}"), e))?;
        }
        // The view is made, the host's root still in reach (an OCI container's
        // createContainer hooks).
        before_detach()?;
        o.detach(Path::new(OLD)).map_err(|e| err("detach the host root", e))?;
        if made_old {
            o.remove_dir(Path::new(OLD)).map_err(|e| err(format!("remove {OLD}"), e))?;
        }
        if o.kind(Path::new("/dev")).is_ok() && steps.contains(&MountStep::Dev) {
            setattr(o, Path::new("/dev"), false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)?;
        }
        let writable = root.is_some_and(|(_, read_only)| !read_only);
        setattr(o, Path::new("/"), false, if writable { 0 } else { MOUNT_ATTR_RDONLY } | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?;
        let workdir = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(workdir.to_bytes()));
        o.chdir(workdir).map_err(|e| {
            ChildError::new(
                STEP,
                format!("working directory {}: {e} (it must be inside the filesystem view: add it to read_only or read_write)", workdir.display()),
            )
        })?;
        Ok(())
    }
}

/// A tmpfs at `dir` with `files`, mode 0400 in a 0500 directory, owned by
/// the service's user (this process already has its ids), then read-only.
fn secrets(o: &impl Ops, dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), ChildError> {
    mkdir_p(o, dir)?;
    tmpfs(o, dir, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, 0o700)?;
    for (name, contents) in files {
        let path = dir.join(name);
        o.create_file(&path, 0o400, contents, true).map_err(|e| err(format!("write credential {}", path.display()), e))?;
    }
    o.set_mode(dir, 0o500).map_err(|e| err(format!("chmod {}", dir.display()), e))?;
    setattr(o, dir, false, READ_ONLY)
}

/// Binds the service's datagram sockets `names` in `dir` (its `NotifyDir`
/// tmpfs: `notify`, `log`), writable by every user, then makes `dir`
/// read-only: the service can send to them but not replace them. Every
/// user, since a daemon started as root sends READY=1 (or logs) after it
/// switched to its own (named as bind): the directory is in the service's
/// view only, so whoever can reach the sockets is the service (systemd's
/// own are 0777 and 0666 for the same reason). Returns the receiving ends,
/// in the order of `names`.
pub fn own_sockets(o: &impl Ops, dir: &Path, names: &[&str]) -> Result<Vec<std::os::fd::OwnedFd>, ChildError> {
    let mut socks = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(name);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).map_err(|e| err(format!("bind the socket {}", path.display()), e))?;
        // Before anything is sent: each datagram then carries its sender,
        // whose pid the reader gets as its own pid namespace sees it (a
        // syslog line names its sender by its host pid).
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)
            .map_err(|e| err(format!("set SO_PASSCRED on {}", path.display()), e))?;
        o.set_mode(&path, 0o666).map_err(|e| err(format!("chmod {}", path.display()), e))?;
        socks.push(sock.into());
    }
    setattr(o, dir, false, READ_ONLY)?;
    Ok(socks)
}

/// Covers `path` with a read-only file holding `contents`: written on the new
/// root's tmpfs, bound over the target, then unlinked so only the bind remains.
fn file(o: &impl Ops, path: &Path, contents: &[u8]) -> Result<(), ChildError> {
    const SRC: &str = "/.capexec-generated";
    let src = Path::new(SRC);
    if o.kind(path).is_ok_and(|k| k == Kind::Symlink) {
        return Err(ChildError::new(
            STEP,
            format!("{} is a symlink in the view; capexec cannot put its generated file there (bind the link's target directory instead)", path.display()),
        ));
    }
    o.create_file(src, 0o444, contents, false).map_err(|e| err(format!("write the generated {}", path.display()), e))?;
    o.set_mode(src, 0o444).map_err(|e| err(format!("chmod {SRC}"), e))?;
    touch(o, path)?;
    bind(o, src, path)?;
    setattr(o, path, false, READ_ONLY)?;
    o.remove_file(src).map_err(|e| err(format!("remove {SRC}"), e))
}

/// Refuses `path` (named `shown` in the error) when it, or a directory on
/// the way to it, is a symlink. In a root filesystem of its own the links
/// are the image's, and until the host tree at /oldroot is detached one
/// could lead a mount point, or a mount, onto the host.
fn no_link_on_the_way(o: &impl Ops, path: &Path, shown: &Path) -> Result<(), ChildError> {
    let mut ancestors: Vec<&Path> = path.ancestors().filter(|a| a.parent().is_some()).collect();
    ancestors.reverse();
    for a in ancestors {
        if o.kind(a).is_ok_and(|k| k == Kind::Symlink) {
            return Err(ChildError::new(
                STEP,
                format!(
                    "{} is a symlink in the root filesystem, on the way to {}: mount destinations must not pass through links",
                    a.display(),
                    shown.display()
                ),
            ));
        }
    }
    Ok(())
}

/// What masked files are covered with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MaskFile {
    /// [`MASK_FILE`], made on first use, removed at the end.
    Unmade,
    Made,
    /// The host's /dev/null, bound read-only and nodev.
    HostNull,
}

fn mask(o: &impl Ops, path: &Path, is_dir: bool, mask_file: &mut MaskFile) -> Result<(), ChildError> {
    if is_dir {
        tmpfs(o, path, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, 0)
    } else {
        if *mask_file == MaskFile::Unmade {
            o.create_file(Path::new(MASK_FILE), 0o000, b"", true).map_err(|e| err(format!("create {MASK_FILE}"), e))?;
            o.set_mode(Path::new(MASK_FILE), 0o000).map_err(|e| err(format!("chmod {MASK_FILE}"), e))?;
            *mask_file = MaskFile::Made;
        }
        match mask_file {
            MaskFile::HostNull => bind(o, &host(Path::new("/dev/null")), path)?,
            _ => bind(o, Path::new(MASK_FILE), path)?,
        }
        setattr(o, path, false, READ_ONLY)
    }
}

fn dev(o: &impl Ops) -> Result<(), ChildError> {
    let dev = Path::new("/dev");
    mkdir_p(o, dev)?;
    tmpfs(o, dev, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, 0o755)?;
    // Plain binds: nosuid/noexec mean nothing on a character device, and the
    // service cannot remount them (no CAP_SYS_ADMIN, no mount syscalls).
    for n in DEV_NODES {
        let dst = dev.join(n);
        // The tmpfs is new and empty: no parent to make, nothing there yet.
        o.create_file(&dst, 0o600, b"", false).map_err(|e| err(format!("create mount point {}", dst.display()), e))?;
        bind(o, &host(&dst), &dst)?;
    }
    // ptmx as the runtime-spec has it: the devpts instance's own, where a
    // view mounts one at /dev/pts (an OCI container's); dangling otherwise.
    for (name, target) in
        [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")]
    {
        o.symlink(Path::new(target), &dev.join(name)).map_err(|e| err(format!("symlink /dev/{name}"), e))?;
    }
    let shm = dev.join("shm");
    mkdir_p(o, &shm)?;
    tmpfs(o, &shm, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, 0o1777)
}

/// A device node of the config's: made (mknod needs the initial user
/// namespace's CAP_MKNOD), or in a user namespace the host's node at the
/// same path bound there, as runc does. One the service may not use goes
/// on a nodev bind of itself: it shows, but cannot be opened.
fn device(o: &impl Ops, d: &capexec_decl::spec::DeviceNode, from_host: bool) -> Result<(), ChildError> {
    use capexec_decl::spec::DeviceKind;
    let path = d.path.as_path();
    if let Some(p) = path.parent() {
        mkdir_p(o, p)?;
    }
    if o.kind(path).is_ok() {
        return Err(ChildError::new(STEP, format!("device {}: the view has a file there already", path.display())));
    }
    if from_host && d.kind != DeviceKind::Fifo {
        touch(o, path)?;
        bind(o, &host(path), path)?;
    } else {
        let kind = match d.kind {
            DeviceKind::Char => libc::S_IFCHR,
            DeviceKind::Block => libc::S_IFBLK,
            DeviceKind::Fifo => libc::S_IFIFO,
        };
        o.mknod(path, kind | (d.mode & 0o7777), libc::makedev(d.major, d.minor)).map_err(|e| err(format!("mknod {}", path.display()), e))?;
        // mknod applies the umask; the config's mode is the mode.
        o.set_mode(path, d.mode & 0o7777).map_err(|e| err(format!("chmod {}", path.display()), e))?;
        o.chown(path, d.uid, d.gid).map_err(|e| err(format!("chown {} to {}:{}", path.display(), d.uid, d.gid), e))?;
    }
    if !d.usable {
        bind(o, path, path)?;
        setattr(o, path, false, crate::sys::MOUNT_ATTR_NODEV)?;
    }
    Ok(())
}

/// The `gid=` of a /proc with hidepid: (gid_t)-2, nobody's group (the plan
/// refuses a service that has it).
pub const PROC_GID: u32 = 4294967294;

/// The options of the view's /proc, as (key, value) pairs.
pub fn proc_options(mode: ProcMode, hidepid: bool) -> Vec<(&'static str, String)> {
    let mut options = Vec::new();
    if mode == ProcMode::PidOnly {
        options.push(("subset", "pid".to_owned()));
    }
    if hidepid {
        // The members of proc's `gid=` group see every process whatever
        // hidepid says, and it is root's group unless given: a service whose
        // group is root's would see the host's. PROC_GID is nobody's.
        options.push(("hidepid", "invisible".to_owned()));
        options.push(("gid", PROC_GID.to_string()));
    }
    options
}

/// Mounts the view's /proc, or attaches `tree`, the one the launch made for
/// it (`resources::proc_tree`: a service in a user namespace of its own
/// that shares the host's pid namespace cannot mount a procfs of it).
fn proc(o: &impl Ops, mode: ProcMode, hidepid: bool, mask_file: &mut MaskFile, tree: Option<std::os::fd::RawFd>) -> Result<(), ChildError> {
    let p = Path::new("/proc");
    mkdir_p(o, p)?;
    match tree {
        Some(tree) => o.attach_tree(tree, p).map_err(|e| err("attach the /proc capexec made", e))?,
        None => {
            let options = proc_options(mode, hidepid);
            let data: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let data = Some(data.join(",")).filter(|d| !d.is_empty());
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            o.mount(Some(Path::new("proc")), p, Some("proc"), flags, data.as_deref()).map_err(|e| err("mount a new /proc", e))?;
        }
    }
    if mode == ProcMode::Full {
        for ro in PROC_READ_ONLY {
            let path = Path::new(ro);
            let Ok(kind) = o.kind(path) else { continue };
            bind(o, path, path)?;
            setattr(o, path, kind == Kind::Dir, READ_ONLY)?;
        }
        for m in PROC_MASKED {
            let path = Path::new(m);
            if let Ok(kind) = o.kind(path) {
                mask(o, path, kind == Kind::Dir, mask_file)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The view's construction against a recording fake of the kernel: the
    //! host is a table of paths, every call is logged, and one call can be
    //! made to fail.

    use super::*;
    use crate::plan::{LandlockPlan, MountStep};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::io;
    use std::os::fd::RawFd;

    #[derive(Default)]
    struct Fake {
        /// The host's files, by their path on the host.
        host: BTreeMap<PathBuf, (Kind, Option<PathBuf>)>,
        /// What exists in the new root, as the setup made it.
        view: RefCell<BTreeMap<PathBuf, Kind>>,
        log: RefCell<Vec<String>>,
        /// Fails the first logged call that starts with this, with this errno.
        fail: Option<(&'static str, i32)>,
    }

    impl Fake {
        fn host(mut self, path: &str, kind: Kind) -> Fake {
            self.host.insert(path.into(), (kind, None));
            self
        }

        fn link(mut self, path: &str, target: &str) -> Fake {
            self.host.insert(path.into(), (Kind::Symlink, Some(target.into())));
            self
        }

        fn call(&self, entry: String) -> io::Result<()> {
            let failing = self.fail.filter(|(prefix, _)| entry.starts_with(prefix));
            self.log.borrow_mut().push(entry);
            match failing {
                Some((_, errno)) => Err(io::Error::from_raw_os_error(errno)),
                None => Ok(()),
            }
        }

        fn log(&self) -> Vec<String> {
            self.log.borrow().clone()
        }

        fn position(&self, entry: &str) -> usize {
            self.log().iter().position(|e| e == entry).unwrap_or_else(|| panic!("no `{entry}` in {:#?}", self.log()))
        }
    }

    impl Ops for Fake {
        fn mount(&self, src: Option<&Path>, dst: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> io::Result<()> {
            let what = match (fstype, src) {
                (Some(t), _) => t.to_owned(),
                (None, Some(s)) if flags.contains(MsFlags::MS_BIND) => format!("bind {}", s.display()),
                _ => format!("{flags:?}"),
            };
            self.call(format!("mount {what} on {} {}", dst.display(), data.unwrap_or("")).trim_end().to_owned())?;
            // A bind shows what the host has below its source.
            if let Some(rest) = src.and_then(|s| s.strip_prefix(OLD).ok()).filter(|_| flags.contains(MsFlags::MS_BIND)) {
                let from = Path::new("/").join(rest);
                let below: Vec<(PathBuf, Kind)> =
                    self.host.iter().filter_map(|(p, (k, _))| Some((dst.join(p.strip_prefix(&from).ok()?), *k))).filter(|(p, _)| p != dst).collect();
                self.view.borrow_mut().extend(below);
            }
            if fstype == Some("proc") {
                let mut v = self.view.borrow_mut();
                v.insert("/proc/sys".into(), Kind::Dir);
                v.insert("/proc/irq".into(), Kind::Dir);
                v.insert("/proc/mtrr".into(), Kind::File);
                v.insert("/proc/kcore".into(), Kind::File);
                v.insert("/proc/acpi".into(), Kind::Dir);
            }
            Ok(())
        }
        fn mount_setattr(&self, path: &Path, recursive: bool, attrs: u64) -> io::Result<()> {
            self.call(format!("setattr {} {attrs:#x}{}", path.display(), if recursive { " recursive" } else { "" }))
        }
        fn attach_tree(&self, tree: std::os::fd::RawFd, dst: &Path) -> io::Result<()> {
            self.call(format!("attach tree {tree} on {}", dst.display()))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            self.call(format!("pivot_root {} {}", new_root.display(), put_old.display()))
        }
        fn detach(&self, path: &Path) -> io::Result<()> {
            self.call(format!("detach {}", path.display()))
        }
        fn chdir(&self, path: &Path) -> io::Result<()> {
            self.call(format!("chdir {}", path.display()))
        }
        fn kind(&self, path: &Path) -> io::Result<Kind> {
            let found = match path.strip_prefix(OLD) {
                Ok(rest) => self.host.get(&Path::new("/").join(rest)).map(|(k, _)| *k),
                Err(_) => self.view.borrow().get(path).copied(),
            };
            found.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
        }
        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            let rest = path.strip_prefix(OLD).expect("links are read on the host");
            Ok(self.host[&Path::new("/").join(rest)].1.clone().expect("a symlink"))
        }
        fn create_dir_all(&self, path: &Path) -> io::Result<()> {
            let mut v = self.view.borrow_mut();
            for a in path.ancestors() {
                v.insert(a.to_path_buf(), Kind::Dir);
            }
            Ok(())
        }
        fn create_file(&self, path: &Path, mode: u32, contents: &[u8], exclusive: bool) -> io::Result<()> {
            if exclusive && self.view.borrow().contains_key(path) {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.call(format!("create {} {mode:o} {}", path.display(), String::from_utf8_lossy(contents)).trim_end().to_owned())?;
            self.view.borrow_mut().insert(path.into(), Kind::File);
            Ok(())
        }
        fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
            self.call(format!("symlink {} -> {}", link.display(), target.display()))?;
            self.view.borrow_mut().insert(link.into(), Kind::Symlink);
            Ok(())
        }

        fn mknod(&self, path: &Path, mode: u32, dev: u64) -> io::Result<()> {
            self.call(format!("mknod {} {mode:o} {}:{}", path.display(), libc::major(dev), libc::minor(dev)))?;
            self.view.borrow_mut().insert(path.into(), Kind::File);
            Ok(())
        }

        fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
            self.call(format!("chown {} {uid}:{gid}", path.display()))
        }
        fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.call(format!("chmod {} {mode:o}", path.display()))
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.view.borrow_mut().remove(path);
            self.call(format!("remove {}", path.display()))
        }
        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            self.call(format!("rmdir {}", path.display()))
        }
        fn switch_ids(&self, uid: u32, gid: u32, _: Option<&[u32]>) -> Result<(), ChildError> {
            self.call(format!("ids {uid}:{gid}")).map_err(|e| ChildError::io(Step::Credentials, "switch ids", e))
        }
        fn drop_privileges(&self, keep: &[caps::Capability], _: u32, _: bool) -> Result<(), ChildError> {
            self.call(format!("drop privileges keeping {keep:?}")).map_err(|e| ChildError::io(Step::Credentials, "drop", e))
        }
        fn landlock(&self, _: &LandlockPlan, _: &[RawFd]) -> Result<Option<String>, ChildError> {
            self.call("landlock".into()).map(|()| None).map_err(|e| ChildError::io(Step::Landlock, "apply", e))
        }
    }

    const RO: u64 = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

    fn bind_step(path: &str, optional: bool) -> MountStep {
        MountStep::Bind { path: path.into(), attrs: RO, optional, source: None }
    }

    fn usual_host() -> Fake {
        let mut f = Fake::default().host("/usr", Kind::Dir).host("/etc", Kind::Dir).host("/etc/shadow", Kind::File).link("/bin", "usr/bin");
        for n in DEV_NODES {
            f = f.host(&format!("/dev/{n}"), Kind::File);
        }
        f
    }

    // An OCI container's view: its root filesystem instead of the tmpfs,
    // host sources bound at other places, its own paths bound again
    // read-only, filesystems with their options, masks judged by the view.
    #[test]
    fn a_root_filesystem_of_its_own_is_the_view() {
        let f = usual_host().host("/srv/data", Kind::Dir);
        let steps = [
            MountStep::Proc { mode: ProcMode::Full, hidepid: false, host_processes: false },
            MountStep::Bind { path: "/mnt".into(), attrs: RO, optional: false, source: Some("/srv/data".into()) },
            MountStep::Bind { path: "/proc/sys".into(), attrs: RO, optional: false, source: None },
            MountStep::Filesystem { path: "/sys".into(), fstype: "sysfs".into(), source: "sysfs".into(), flags: libc::MS_RDONLY, data: String::new() },
            MountStep::Mask { path: "/proc/acpi".into(), optional: false },
            MountStep::Mask { path: "/proc/nothing".into(), optional: true },
        ];
        build(&f, &steps, Some((Path::new("/srv/bundle/rootfs"), false)), c"/", &[], &mut || Ok(())).unwrap();
        let log = f.log();
        assert_eq!(log[..3], ["mount MsFlags(MS_REC | MS_SLAVE) on /", "mount bind /srv/bundle/rootfs on /tmp", "pivot_root /tmp /tmp/oldroot"]);
        assert!(log.contains(&"mount bind /oldroot/srv/data on /mnt".to_owned()), "{log:#?}");
        assert!(log.contains(&"mount bind /proc/sys on /proc/sys".to_owned()), "{log:#?}");
        assert!(log.contains(&"mount sysfs on /sys".to_owned()), "{log:#?}");
        assert!(log.contains(&"mount tmpfs on /proc/acpi mode=0".to_owned()), "{log:#?}");
        assert!(!log.iter().any(|e| e.contains("/proc/nothing")), "only what the view has is masked: {log:#?}");
        // Writable: the root stays so, without setuid or device files.
        assert_eq!(log.last().unwrap(), "chdir /");
        assert_eq!(log[log.len() - 2], format!("setattr / {:#x}", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
        let f = usual_host();
        build(&f, &[], Some((Path::new("/srv/bundle/rootfs"), true)), c"/", &[], &mut || Ok(())).unwrap();
        assert_eq!(f.log()[f.log().len() - 2], format!("setattr / {:#x}", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
    }

    // A part of a split directory (capexec_decl::overlay::view) writes
    // into its directory's layer; one the host removed since the plan is
    // left out; a failing overlay says what may have changed since.
    #[test]
    fn an_overlay_writes_into_its_layer_and_says_why_it_may_fail() {
        let part =
            |p: &str| MountStep::Overlay { path: p.into(), layer: capexec_decl::overlay::Layer::of(Path::new("/b"), Path::new(p), Some(Path::new("/var"))) };
        let steps = [bind_step("/var", false), part("/var/lib/apt"), part("/var/lib/gone"), part("/var/lib/deleted")];
        // An earlier run deleted /var/lib/deleted: a whiteout in the layer.
        let host = || {
            let f = usual_host().host("/var", Kind::Dir).host("/var/lib", Kind::Dir).host("/var/lib/apt", Kind::Dir).host("/var/lib/deleted", Kind::Dir);
            f.host("/b/layers/var/upper/lib/apt", Kind::Dir).host("/b/layers/var/upper/lib/deleted", Kind::File)
        };
        let f = host();
        build(&f, &steps, None, c"/", &[], &mut || Ok(())).unwrap();
        let want = "mount overlay on /var/lib/apt lowerdir=/oldroot/var/lib/apt,upperdir=/oldroot/b/layers/var/upper/lib/apt,workdir=/oldroot/b/layers/var/parts/lib%2Fapt,userxattr";
        assert!(f.log().contains(&want.to_owned()), "{:#?}", f.log());
        assert!(!f.log().iter().any(|e| e.contains("/var/lib/gone") || e.contains("/var/lib/deleted")), "{:#?}", f.log());
        // Removed between the look and the mount: left out too.
        let f = Fake { fail: Some(("mount overlay", libc::ENOENT)), ..host() };
        build(&f, &steps, None, c"/", &[], &mut || Ok(())).unwrap();
        let f = Fake { fail: Some(("mount overlay", libc::EINVAL)), ..host() };
        let e = build(&f, &steps, None, c"/", &[], &mut || Ok(())).unwrap_err();
        assert!(e.errno == Some(libc::EINVAL) && e.detail.contains("was something mounted below it since"), "{e:?}");
    }

    #[test]
    fn the_view_is_built_in_the_order_that_keeps_the_host_safe() {
        let f = usual_host();
        let steps = [
            MountStep::Dev,
            MountStep::Proc { mode: ProcMode::Full, hidepid: false, host_processes: false },
            bind_step("/usr", false),
            bind_step("/bin", false),
            bind_step("/etc", false),
            MountStep::Mask { path: "/etc/shadow".into(), optional: false },
            MountStep::Tmpfs { path: "/var/tmp".into(), mode: 0o1777 },
        ];
        // What runs in the made view with the host's root in reach (an OCI
        // container's createContainer hooks) runs after the last mount.
        build(&f, &steps, None, c"/", &[], &mut || f.call("hooks".into()).map_err(|e| err("hooks", e))).unwrap();
        let log = f.log();
        assert_eq!(f.position("hooks") + 1, f.position("detach /oldroot"));
        assert!(f.position("mount tmpfs on /var/tmp mode=1777") < f.position("hooks"));
        // Nothing propagates to the host, and the new root is in place before any view mount.
        assert_eq!(log[..3], ["mount MsFlags(MS_REC | MS_SLAVE) on /", "mount tmpfs on /tmp mode=755", "pivot_root /tmp /tmp/oldroot"]);
        // /dev and /proc before the declared paths (a new proc needs the host's still visible).
        let usr = f.position("mount bind /oldroot/usr on /usr");
        assert!(f.position("mount tmpfs on /dev mode=755") < usr && f.position("mount proc on /proc") < usr);
        assert_eq!(log[usr + 1], format!("setattr /usr {RO:#x} recursive"));
        // A symlink on the host is recreated, never bound (its target could be anywhere).
        assert!(log.contains(&"symlink /bin -> usr/bin".to_owned()));
        assert!(!log.iter().any(|e| e.contains("/oldroot/bin")), "{log:#?}");
        // A masked file is covered by the mode-000 file, which is removed afterwards.
        let covered = f.position("mount bind /.capexec-mask on /etc/shadow");
        assert!(f.position("mount bind /.capexec-mask on /proc/kcore") < covered, "the /proc masks come with /proc");
        assert!(f.position("remove /.capexec-mask") > covered);
        // The host root goes before the root is made read-only; the working directory is last.
        let detach = f.position("detach /oldroot");
        assert!(detach > covered && f.position("mount tmpfs on /var/tmp mode=1777") < detach);
        assert!(f.position(&format!("setattr / {:#x}", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) > detach);
        assert_eq!(log.last().map(String::as_str), Some("chdir /"));
        // /proc/sys read-only, /proc/acpi (a directory) hidden under an empty read-only tmpfs.
        assert!(log.contains(&format!("setattr /proc/sys {READ_ONLY:#x} recursive")));
        // So are the interrupts' affinities, which root owns alone; absent ones are left out.
        assert!(log.contains(&format!("setattr /proc/irq {READ_ONLY:#x} recursive")) && log.contains(&format!("setattr /proc/mtrr {READ_ONLY:#x}")));
        assert!(!log.iter().any(|e| e.contains("/proc/bus")), "{log:#?}");
        assert!(log.contains(&"mount tmpfs on /proc/acpi mode=0".to_owned()));
    }

    #[test]
    fn a_missing_path_fails_with_a_hint_unless_it_is_optional() {
        let f = usual_host();
        build(&f, &[bind_step("/srv/www", true)], None, c"/", &[], &mut || Ok(())).unwrap();
        assert!(!f.log().iter().any(|e| e.contains("/srv/www")));
        let e = build(&usual_host(), &[bind_step("/srv/www", false)], None, c"/", &[], &mut || Ok(())).unwrap_err();
        assert_eq!(e.step, Step::FilesystemView);
        assert!(e.detail.contains("/srv/www does not exist on the host") && e.detail.contains("prefix the path with `-`"), "{}", e.detail);
    }

    #[test]
    fn masks_cover_only_what_the_view_shows() {
        let f = usual_host();
        // /etc/shadow exists on the host but /etc is not in the view: nothing to cover.
        build(&f, &[MountStep::Mask { path: "/etc/shadow".into(), optional: false }], None, c"/", &[], &mut || Ok(())).unwrap();
        assert!(!f.log().iter().any(|e| e.contains("capexec-mask")), "{:#?}", f.log());
        let e = build(&usual_host(), &[MountStep::Mask { path: "/etc/gshadow".into(), optional: false }], None, c"/", &[], &mut || Ok(())).unwrap_err();
        assert_eq!(e.errno, Some(libc::ENOENT));
    }

    #[test]
    fn generated_files_are_bound_read_only_and_never_onto_a_symlink() {
        let f = usual_host();
        let steps = [bind_step("/etc", false), MountStep::File { path: "/etc/resolv.conf".into(), contents: b"nameserver 127.0.0.1\n".to_vec() }];
        build(&f, &steps, None, c"/", &[], &mut || Ok(())).unwrap();
        let bound = f.position("mount bind /.capexec-generated on /etc/resolv.conf");
        assert_eq!(f.log()[bound + 1], format!("setattr /etc/resolv.conf {READ_ONLY:#x}"));
        assert_eq!(f.log()[bound + 2], "remove /.capexec-generated");

        let f = usual_host().link("/etc/resolv.conf", "../run/resolv.conf");
        let steps = [bind_step("/etc", false), bind_step("/etc/resolv.conf", false), MountStep::File { path: "/etc/resolv.conf".into(), contents: vec![] }];
        let e = build(&f, &steps, None, c"/", &[], &mut || Ok(())).unwrap_err();
        assert!(e.detail.contains("is a symlink in the view"), "{}", e.detail);
    }

    #[test]
    fn a_failing_call_names_the_step_the_path_and_the_errno() {
        let f = Fake { fail: Some(("setattr /usr", libc::EPERM)), ..usual_host() };
        let e = build(&f, &[bind_step("/usr", false)], None, c"/", &[], &mut || Ok(())).unwrap_err();
        assert_eq!((e.step, e.errno), (Step::FilesystemView, Some(libc::EPERM)));
        assert!(e.detail.contains("mount_setattr /usr"), "{}", e.detail);
        let f = Fake { fail: Some(("chdir /srv", libc::ENOENT)), ..usual_host() };
        let e = build(&f, &[], None, c"/srv", &[], &mut || Ok(())).unwrap_err();
        assert!(e.detail.contains("working directory /srv") && e.detail.contains("add it to read_only or read_write"), "{}", e.detail);
    }

    #[test]
    fn credentials_are_written_into_a_read_only_tmpfs() {
        let f = usual_host();
        let steps = [MountStep::Secrets { path: "/run/credentials".into(), files: vec![("token".into(), b"s3cret".to_vec())] }];
        build(&f, &steps, None, c"/", &[], &mut || Ok(())).unwrap();
        let tmpfs = f.position("mount tmpfs on /run/credentials mode=700");
        let written = f.position("create /run/credentials/token 400 s3cret");
        let chmod = f.position("chmod /run/credentials 500");
        let ro = f.position(&format!("setattr /run/credentials {READ_ONLY:#x}"));
        assert!(tmpfs < written && written < chmod && chmod < ro);
    }
}
