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

use crate::error::{ChildError, Step};
use crate::plan::{MountStep, DEV_NODES, PROC_MASKED};
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use capexec_decl::spec::ProcMode;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const STEP: Step = Step::FilesystemView;
const OLD: &str = "/oldroot";
/// An empty mode-000 file, bind-mounted over files that must be inaccessible.
const MASK_FILE: &str = "/.capexec-mask";

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("paths were checked for NUL during validation")
}

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display + crate::error::Errno) -> ChildError {
    ChildError::io(STEP, what, e)
}

fn host(path: &Path) -> PathBuf {
    Path::new(OLD).join(path.strip_prefix("/").unwrap_or(path))
}

fn setattr(path: &Path, recursive: bool, attrs: u64) -> Result<(), ChildError> {
    sys::mount_setattr(&c(path), recursive, attrs).map_err(|e| err(format!("mount_setattr {}", path.display()), e))
}

fn mkdir_p(path: &Path) -> Result<(), ChildError> {
    std::fs::create_dir_all(path).map_err(|e| err(format!("create mount point {}", path.display()), e))
}

/// Creates an empty file to bind a file onto (a bind needs a target of the same type).
fn touch(path: &Path) -> Result<(), ChildError> {
    if let Some(parent) = path.parent() {
        mkdir_p(parent)?;
    }
    if path.symlink_metadata().is_ok() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| err(format!("create mount point {}", path.display()), e))
}

fn bind(src: &Path, dst: &Path) -> Result<(), ChildError> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| err(format!("bind {} onto {}", src.display(), dst.display()), e))
}

fn tmpfs(dst: &Path, flags: MsFlags, mode: u32) -> Result<(), ChildError> {
    let data = format!("mode={mode:o}");
    mount(Some("tmpfs"), dst, Some("tmpfs"), flags, Some(data.as_str())).map_err(|e| err(format!("mount tmpfs on {}", dst.display()), e))
}

pub fn build(steps: &[MountStep], workdir: &std::ffi::CStr) -> Result<(), ChildError> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>).map_err(|e| err("make / a slave mount", e))?;
    tmpfs(Path::new("/tmp"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, 0o755)?;
    mkdir_p(Path::new("/tmp/oldroot"))?;
    nix::unistd::pivot_root("/tmp", "/tmp/oldroot").map_err(|e| err("pivot_root into the new root", e))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir /", e))?;

    let mut mask_file = false;
    for step in steps {
        match step {
            MountStep::Dev => dev()?,
            MountStep::Proc(mode) => proc(*mode, &mut mask_file)?,
            MountStep::Bind { path, attrs, optional } => {
                let src = host(path);
                let meta = match src.symlink_metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && *optional => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(ChildError::new(
                            STEP,
                            format!("{} does not exist on the host (create it, or prefix the path with `-` to skip it when missing)", path.display()),
                        ))
                    }
                    Err(e) => return Err(err(format!("stat {}", path.display()), e)),
                };
                if meta.file_type().is_symlink() {
                    // Recreate the link (e.g. /bin -> usr/bin) instead of binding its target.
                    let target = std::fs::read_link(&src).map_err(|e| err(format!("readlink {}", path.display()), e))?;
                    if path.symlink_metadata().is_err() {
                        if let Some(p) = path.parent() {
                            mkdir_p(p)?;
                        }
                        std::os::unix::fs::symlink(&target, path).map_err(|e| err(format!("symlink {}", path.display()), e))?;
                    }
                    continue;
                }
                if meta.is_dir() {
                    mkdir_p(path)?;
                } else {
                    touch(path)?;
                }
                bind(&src, path)?;
                setattr(path, true, *attrs)?;
            }
            MountStep::Tmpfs { path, mode } => {
                mkdir_p(path)?;
                tmpfs(path, nosuid_nodev_noexec, *mode)?;
            }
            MountStep::File { path, contents } => file(path, contents)?,
            MountStep::Secrets { path, files } => secrets(path, files)?,
            MountStep::NotifyDir { path } => {
                mkdir_p(path)?;
                tmpfs(path, nosuid_nodev_noexec, 0o755)?;
            }
            MountStep::Mask { path, optional } => {
                let meta = match host(path).symlink_metadata() {
                    Ok(m) => m,
                    Err(_) if *optional => continue,
                    Err(e) => return Err(err(format!("stat {} to make it inaccessible", path.display()), e)),
                };
                // Only what is in the view needs covering.
                if path.symlink_metadata().is_err() {
                    continue;
                }
                mask(path, meta.is_dir(), &mut mask_file)?;
            }
        }
    }

    if mask_file {
        std::fs::remove_file(MASK_FILE).map_err(|e| err(format!("remove {MASK_FILE}"), e))?;
    }
    umount2(OLD, MntFlags::MNT_DETACH).map_err(|e| err("detach the host root", e))?;
    std::fs::remove_dir(OLD).map_err(|e| err(format!("remove {OLD}"), e))?;
    if Path::new("/dev").exists() && steps.contains(&MountStep::Dev) {
        setattr(Path::new("/dev"), false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)?;
    }
    setattr(Path::new("/"), false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?;
    nix::unistd::chdir(workdir).map_err(|e| {
        ChildError::new(
            STEP,
            format!("working directory {}: {e} (it must be inside the filesystem view: add it to read_only or read_write)", workdir.to_string_lossy()),
        )
    })?;
    Ok(())
}

/// A tmpfs at `dir` with `files`, mode 0400 in a 0500 directory, owned by
/// the service's user (this process already has its ids), then read-only.
fn secrets(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), ChildError> {
    mkdir_p(dir)?;
    tmpfs(dir, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, 0o700)?;
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, contents))
            .map_err(|e| err(format!("write credential {}", path.display()), e))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).map_err(|e| err(format!("chmod {}", dir.display()), e))?;
    setattr(dir, false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
}

/// Binds the service's notify socket in `dir` (its `NotifyDir` tmpfs),
/// writable by the service's user only, then makes `dir` read-only: the
/// service can send to the socket but not replace it. Returns the receiving end.
pub fn notify_socket(dir: &Path) -> Result<std::os::fd::OwnedFd, ChildError> {
    let path = dir.join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).map_err(|e| err(format!("bind the notify socket {}", path.display()), e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| err(format!("chmod {}", path.display()), e))?;
    setattr(dir, false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)?;
    Ok(sock.into())
}

/// Covers `path` with a read-only file holding `contents`: written on the new
/// root's tmpfs, bound over the target, then unlinked so only the bind remains.
fn file(path: &Path, contents: &[u8]) -> Result<(), ChildError> {
    const SRC: &str = "/.capexec-generated";
    if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(ChildError::new(
            STEP,
            format!("{} is a symlink in the view; capexec cannot put its generated file there (bind the link's target directory instead)", path.display()),
        ));
    }
    std::fs::write(SRC, contents).map_err(|e| err(format!("write the generated {}", path.display()), e))?;
    std::fs::set_permissions(SRC, std::fs::Permissions::from_mode(0o444)).map_err(|e| err(format!("chmod {SRC}"), e))?;
    touch(path)?;
    bind(Path::new(SRC), path)?;
    setattr(path, false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)?;
    std::fs::remove_file(SRC).map_err(|e| err(format!("remove {SRC}"), e))
}

fn mask(path: &Path, is_dir: bool, mask_file: &mut bool) -> Result<(), ChildError> {
    if is_dir {
        tmpfs(path, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, 0)
    } else {
        if !*mask_file {
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o000).open(MASK_FILE).map_err(|e| err(format!("create {MASK_FILE}"), e))?;
            std::fs::set_permissions(MASK_FILE, std::fs::Permissions::from_mode(0o000)).map_err(|e| err(format!("chmod {MASK_FILE}"), e))?;
            *mask_file = true;
        }
        bind(Path::new(MASK_FILE), path)?;
        setattr(path, false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
    }
}

fn dev() -> Result<(), ChildError> {
    let dev = Path::new("/dev");
    mkdir_p(dev)?;
    tmpfs(dev, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, 0o755)?;
    // Plain binds: nosuid/noexec mean nothing on a character device, and the
    // service cannot remount them (no CAP_SYS_ADMIN, no mount syscalls).
    for n in DEV_NODES {
        let dst = dev.join(n);
        touch(&dst)?;
        bind(&host(&dst), &dst)?;
    }
    for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
        std::os::unix::fs::symlink(target, dev.join(name)).map_err(|e| err(format!("symlink /dev/{name}"), e))?;
    }
    let shm = dev.join("shm");
    mkdir_p(&shm)?;
    tmpfs(&shm, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, 0o1777)
}

fn proc(mode: ProcMode, mask_file: &mut bool) -> Result<(), ChildError> {
    let p = Path::new("/proc");
    mkdir_p(p)?;
    let data = if mode == ProcMode::PidOnly { Some("subset=pid") } else { None };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), p, Some("proc"), flags, data).map_err(|e| err("mount a new /proc", e))?;
    if mode == ProcMode::Full {
        let sys = Path::new("/proc/sys");
        bind(sys, sys)?;
        setattr(sys, true, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)?;
        for m in PROC_MASKED {
            let path = Path::new(m);
            if let Ok(meta) = path.symlink_metadata() {
                mask(path, meta.is_dir(), mask_file)?;
            }
        }
    }
    Ok(())
}
