//! Opening a granted file the only way the broker ever does: openat2 beneath
//! the grant's pinned directory, without magic links, handing out regular
//! files only. Which open a grant allows is decided in [`crate::policy`].

use capexec_decl::grants::FsGrant;
use capexec_sandbox::sys::{openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// A lexically clean absolute path: `//` and `/./` collapsed, no trailing `/`.
/// `None` for relative paths and for any `..` (left to the kernel, which
/// resolves them inside the service's own view), and for paths with bytes
/// that are not UTF-8 (grant patterns are UTF-8).
pub fn clean_absolute(path: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(path).ok()?;
    if !s.starts_with('/') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Opens `path` (clean, absolute, matched by `grant`) beneath `base`, the
/// grant's pinned directory (`dir_slash`: the service wrote a trailing `/`). `mode` is used with O_CREAT (already masked).
/// The result is close-on-exec here; the caller sets the service's own flag.
pub fn open_granted(base: &OwnedFd, grant: &FsGrant, path: &str, dir_slash: bool, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let base_s = grant.base.to_string_lossy();
    let rel = path.strip_prefix(base_s.as_ref()).unwrap_or(path).trim_start_matches('/');
    let rel = match (rel.is_empty(), dir_slash) {
        (true, _) => ".".to_owned(),
        (false, true) => format!("{rel}/"),
        (false, false) => rel.to_owned(),
    };
    let c = CString::new(rel).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // A grant for a whole tree may follow symlinks that stay in it; any other
    // pattern was matched on the name, so a symlink could lead to a file the
    // pattern does not cover: refuse them there.
    let mut resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    if !grant.whole_tree() {
        resolve |= RESOLVE_NO_SYMLINKS;
    }
    // A file the broker creates never carries setuid or setgid bits, whatever
    // mode the service asked for (as its own chmod and creat are refused
    // them by the seccomp allowlist): such a file would be a way into the
    // service's uid for whoever runs it later.
    let mode = if flags & libc::O_CREAT != 0 { mode & !(libc::S_ISUID | libc::S_ISGID) } else { 0 };
    // Only regular files are handed out: a directory fd would let the service
    // open anything beneath it with openat(), and a device or FIFO is not what
    // a file grant means. Opening one is not harmless either (a FIFO's open
    // waits for the other end and would stall the broker's only notification
    // thread; a device's open can act), so the path is looked at with O_PATH
    // first, which opens nothing. The real open adds O_NONBLOCK, so that a
    // FIFO swapped in between still cannot make it wait, and is checked again.
    match openat2(base.as_fd(), &c, libc::O_PATH | libc::O_CLOEXEC, 0, resolve) {
        Ok(fd) => drop(regular(fd)?),
        // Nothing there yet: O_CREAT makes a regular file (and whatever appears
        // meanwhile is still checked below).
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && flags & libc::O_CREAT != 0 => {}
        Err(e) => return Err(e),
    }
    let fd = regular(openat2(base.as_fd(), &c, flags | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK, mode, resolve)?)?;
    if flags & libc::O_NONBLOCK == 0 {
        let fl = capexec_sandbox::sys::status_flags(std::os::fd::AsFd::as_fd(&fd))?;
        capexec_sandbox::sys::set_status_flags(std::os::fd::AsFd::as_fd(&fd), fl & !libc::O_NONBLOCK)?;
    }
    Ok(fd)
}

/// Removes `path` (clean, absolute, matched by `grant`) beneath `base`:
/// its directory is opened as a granted file would be (beneath `base`, no
/// magic links, no symlinks unless the grant is a whole tree), and only a
/// regular file's name is removed. `unlinkat` never follows the last
/// component, so a file swapped for a symlink meanwhile loses its name and
/// nothing else; one swapped for a directory stays (EISDIR).
pub fn remove_granted(base: &OwnedFd, grant: &FsGrant, path: &str) -> io::Result<()> {
    let base_s = grant.base.to_string_lossy();
    let rel = path.strip_prefix(base_s.as_ref()).unwrap_or(path).trim_start_matches('/');
    let (dir, name) = match rel.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => (".", rel),
    };
    if name.is_empty() {
        // The grant's own directory: never a file to remove.
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    let mut resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    if !grant.whole_tree() {
        resolve |= RESOLVE_NO_SYMLINKS;
    }
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let parent = openat2(base.as_fd(), &c(dir)?, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0, resolve)?;
    let st = nix::sys::stat::fstatat(Some(parent.as_raw_fd()), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    nix::unistd::unlinkat(Some(parent.as_raw_fd()), name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)
}

/// `fd` if it is a regular file, else EISDIR (see [`refusal`]).
fn regular(fd: OwnedFd) -> io::Result<OwnedFd> {
    // O_PATH fds included.
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_absolute(b"/srv//data/./x").as_deref(), Some("/srv/data/x"));
        assert_eq!(clean_absolute(b"/srv/data/").as_deref(), Some("/srv/data"));
        assert_eq!(clean_absolute(b"/").as_deref(), Some("/"));
        assert_eq!(clean_absolute(b"srv/x"), None);
        assert_eq!(clean_absolute(b"/srv/../etc/shadow"), None);
        assert_eq!(clean_absolute(b"/srv/\xff"), None);
    }
}
