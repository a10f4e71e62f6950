//! Host files and directories handed to a service under
//! `memory_deny_write_execute`, reopened through a private copy of their
//! mount marked noexec.
//!
//! Why: MDWE refuses memory that is (or was) writable and executable, but a
//! file mapping is neither until it is mapped. A service that holds a host
//! file open for reading and writing (a preopened `read-write` file, a
//! `[[broker.fs]]` grant with `read` and `write`) on a mount without noexec
//! can write code into it and map it executable. The view's own writable
//! mounts are noexec; these files are not in the view. An fd opened through
//! a detached clone of the mount (open_tree OPEN_TREE_CLONE) that carries
//! MOUNT_ATTR_NOEXEC refuses PROT_EXEC mappings and execveat, and it is the
//! same file: the host keeps seeing what the service writes.
//!
//! Cloning a mount needs CAP_SYS_ADMIN over the mount namespace. As root
//! capexec has it; rootless, a short-lived helper process makes a user and
//! mount namespace of its own (a copy of the caller's mounts), clones there
//! and sends the fds back. Either way the opens are permission-checked with
//! the caller's ids, as the original opens were, and each result is checked
//! to be the same file as the one the caller opened first.

use crate::error::LaunchError;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What to reopen: a file with these open flags, or a directory (the
/// result is an O_PATH fd of the copy's root, with every submount beneath).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File { flags: i32 },
    Dir,
}

/// Reopens each `(path, kind, original)` through a noexec copy of its mount.
/// `original` is the caller's fd of the same path: the result must be the
/// same file (or the path changed in between, and the launch fails).
pub fn reopen(items: &[(&Path, Kind, &OwnedFd)]) -> Result<Vec<OwnedFd>, LaunchError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let fds = if nix::unistd::geteuid().is_root() { reopen_here(items) } else { reopen_in_helper(items) }
        .map_err(|e| LaunchError::io("reopen through a noexec copy of its mount", describe(items), e))?;
    for ((path, _, original), fd) in items.iter().zip(&fds) {
        if identity(fd)? != identity(original)? {
            return Err(LaunchError::io(
                "reopen through a noexec copy of its mount",
                path.display(),
                io::Error::other("the path names another file than when it was opened (it changed meanwhile)"),
            ));
        }
    }
    Ok(fds)
}

fn describe(items: &[(&Path, Kind, &OwnedFd)]) -> String {
    items.iter().map(|(p, _, _)| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn identity(fd: &OwnedFd) -> Result<(u64, u64), LaunchError> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| LaunchError::io("fstat", "a reopened file", e.into()))?;
    Ok((st.st_dev, st.st_ino))
}

fn reopen_here(items: &[(&Path, Kind, &OwnedFd)]) -> io::Result<Vec<OwnedFd>> {
    items.iter().map(|(path, kind, _)| reopen_one(path, *kind)).collect()
}

fn reopen_one(path: &Path, kind: Kind) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let recursive = matches!(kind, Kind::Dir);
    let tree = crate::sys::clone_mount(&c, recursive)?;
    crate::sys::mount_setattr_fd(&tree, recursive, crate::sys::MOUNT_ATTR_NOEXEC | crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV)?;
    match kind {
        Kind::Dir => Ok(tree),
        Kind::File { flags } => {
            // The magic link leads to the file on the copy, and the open is
            // checked against the file's permissions as any open is.
            use std::os::unix::fs::OpenOptionsExt;
            let (read, write) = match flags & libc::O_ACCMODE {
                libc::O_WRONLY => (false, true),
                libc::O_RDWR => (true, true),
                _ => (true, false),
            };
            let custom = flags & !(libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL) | libc::O_NOCTTY;
            let f = std::fs::File::options().read(read).write(write).custom_flags(custom).open(format!("/proc/self/fd/{}", tree.as_raw_fd()))?;
            Ok(f.into())
        }
    }
}

/// Rootless: a helper in a user and mount namespace of its own does the
/// reopens and sends the fds back over a socket pair.
fn reopen_in_helper(items: &[(&Path, Kind, &OwnedFd)]) -> io::Result<Vec<OwnedFd>> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(io::Error::from)?;
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    match crate::sys::process::fork("fork the noexec helper")? {
        crate::sys::process::Forked::Child => {
            drop(ours);
            let code = match helper(items, uid, gid, theirs.as_raw_fd()) {
                Ok(()) => 0,
                Err(e) => {
                    // The errno as the message: the parent turns it back into an error.
                    let errno = e.raw_os_error().unwrap_or(libc::EIO).to_ne_bytes();
                    let _ = crate::sys::write_raw(theirs.as_raw_fd(), &errno);
                    1
                }
            };
            crate::sys::process::exit_now(code)
        }
        crate::sys::process::Forked::Parent(pid) => {
            drop(theirs);
            let mut fds = Vec::new();
            let result = (|| {
                for _ in items {
                    let mut buf = [0u8; 4];
                    let (n, fd) = crate::sys::recv_fd_blocking(ours.as_raw_fd(), &mut buf)?;
                    match fd {
                        Some(fd) => fds.push(fd),
                        None if n == 4 => return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf))),
                        None => return Err(io::Error::other("the noexec helper ended without an answer")),
                    }
                }
                Ok(())
            })();
            let _ = crate::sys::process::wait_child(pid, true);
            result.map(|()| fds)
        }
    }
}

fn helper(items: &[(&Path, Kind, &OwnedFd)], uid: u32, gid: u32, sock: RawFd) -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    for (path, kind, _) in items {
        let fd = reopen_one(path, *kind)?;
        crate::sys::send_fd(sock, fd.as_raw_fd())?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    /// The same file, on a mount that refuses executable mappings. (The
    /// rootless helper forks, which a multi-threaded test process must not:
    /// the escape tests run it, under `capexec run` as a user.)
    #[test]
    fn reopened_files_are_the_same_and_not_executable() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: cloning a mount in this process needs root (CI runs this as root)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("capexec-noexec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("code");
        std::fs::write(&file, [0xc3u8; 64]).unwrap();
        let original: OwnedFd = std::fs::OpenOptions::new().read(true).write(true).open(&file).unwrap().into();
        let d: OwnedFd = std::fs::File::open(&dir).unwrap().into();
        let items = [(file.as_path(), Kind::File { flags: libc::O_RDWR }, &original), (dir.as_path(), Kind::Dir, &d)];
        let fds = reopen(&items).unwrap();
        {
            let f = std::fs::File::from(fds.into_iter().next().unwrap());
            std::os::unix::fs::FileExt::write_at(&f, b"\xc3", 0).unwrap();
            // SAFETY: mapping our own fd; only the result is looked at.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_PRIVATE, f.as_raw_fd(), 0) };
            assert_eq!(p, libc::MAP_FAILED, "an executable mapping of a file on a noexec copy");
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
        }
        let other: OwnedFd = std::fs::File::open("/etc/hostname").unwrap().into();
        assert!(reopen(&[(file.as_path(), Kind::File { flags: libc::O_RDONLY }, &other)]).is_err(), "another file than the one opened");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
