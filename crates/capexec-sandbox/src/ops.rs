//! The seam between the child's setup and the kernel: the operations that
//! build the filesystem view, set the service's ids and capabilities and apply
//! its Landlock layer, as one narrow trait.
//!
//! [`Kernel`] makes the real calls (in the child, inside the new namespaces).
//! Tests put a recording fake in its place and check what a plan does — the
//! order of the mounts, what is skipped, what fails and with which message —
//! without root and without namespaces (youki's `Syscall` trait is the model).
//! The real calls are tested too, by every integration test that starts a
//! service.

use crate::error::ChildError;
use crate::plan::LandlockPlan;
use caps::Capability;
use nix::mount::MsFlags;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What is at a path, not following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

pub trait Ops {
    fn mount(&self, src: Option<&Path>, dst: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> io::Result<()>;
    /// mount_setattr(2) with the MOUNT_ATTR_* bits in `attrs` set.
    fn mount_setattr(&self, path: &Path, recursive: bool, attrs: u64) -> io::Result<()>;
    /// move_mount(2) of a detached tree (from open_tree) onto `dst`.
    fn attach_tree(&self, tree: RawFd, dst: &Path) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// umount2 with MNT_DETACH.
    fn detach(&self, path: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    fn kind(&self, path: &Path) -> io::Result<Kind>;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates a file with `contents` (permissions `mode` less the umask);
    /// `exclusive`: fails if it exists, else truncates it.
    fn create_file(&self, path: &Path, mode: u32, contents: &[u8], exclusive: bool) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// mknod(2): `mode` with the file type bits.
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> io::Result<()>;
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// See [`crate::creds::switch_ids`].
    fn switch_ids(&self, uid: u32, gid: u32, groups: Option<&[u32]>) -> Result<(), ChildError>;
    /// See [`crate::creds::drop_privileges`].
    fn drop_privileges(&self, keep: &[Capability], cap_last_cap: u32, hold_admin: bool) -> Result<(), ChildError>;
    /// See [`crate::landlock_rules::apply`].
    fn landlock(&self, plan: &LandlockPlan, preopened_dirs: &[RawFd]) -> Result<Option<String>, ChildError>;
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("paths were checked for NUL during validation")
}

/// The real system calls.
pub struct Kernel;

impl Ops for Kernel {
    fn mount(&self, src: Option<&Path>, dst: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> io::Result<()> {
        Ok(nix::mount::mount(src, dst, fstype, flags, data)?)
    }

    fn mount_setattr(&self, path: &Path, recursive: bool, attrs: u64) -> io::Result<()> {
        crate::sys::mount_setattr(&c(path), recursive, attrs)
    }

    fn attach_tree(&self, tree: RawFd, dst: &Path) -> io::Result<()> {
        crate::sys::move_mount_tree(tree, &c(dst))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        Ok(nix::unistd::pivot_root(new_root, put_old)?)
    }

    fn detach(&self, path: &Path) -> io::Result<()> {
        Ok(nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)?)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chdir(path)?)
    }

    fn kind(&self, path: &Path) -> io::Result<Kind> {
        let t = path.symlink_metadata()?.file_type();
        Ok(if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        })
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create_file(&self, path: &Path, mode: u32, contents: &[u8], exclusive: bool) -> io::Result<()> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).mode(mode);
        if exclusive {
            o.create_new(true);
        } else {
            o.create(true).truncate(true);
        }
        o.open(path).and_then(|mut f| std::io::Write::write_all(&mut f, contents))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> io::Result<()> {
        use nix::sys::stat::{Mode, SFlag};
        nix::sys::stat::mknod(path, SFlag::from_bits_truncate(mode & libc::S_IFMT), Mode::from_bits_truncate(mode & 0o7777), dev).map_err(io::Error::from)
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn switch_ids(&self, uid: u32, gid: u32, groups: Option<&[u32]>) -> Result<(), ChildError> {
        crate::creds::switch_ids(uid, gid, groups)
    }

    fn drop_privileges(&self, keep: &[Capability], cap_last_cap: u32, hold_admin: bool) -> Result<(), ChildError> {
        crate::creds::drop_privileges(keep, cap_last_cap, hold_admin)
    }

    fn landlock(&self, plan: &LandlockPlan, preopened_dirs: &[RawFd]) -> Result<Option<String>, ChildError> {
        crate::landlock_rules::apply(plan, preopened_dirs)
    }
}
