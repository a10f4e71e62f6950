//! File grants: which open flags a grant's rights admit, and opening a granted
//! file the only way the broker ever does — openat2 beneath the grant's pinned
//! directory, without magic links, and handing out regular files only.

use capexec_decl::grants::{FsGrant, FsRights};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Open flags the broker understands. Anything else (O_PATH, O_TMPFILE,
/// O_DIRECTORY, bits this code does not know) is refused: an unknown bit may
/// change what the call means.
const KNOWN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_LARGEFILE
    | libc::O_NOFOLLOW
    | libc::O_CLOEXEC
    | libc::O_NOATIME
    | libc::O_DIRECT
    | libc::O_ASYNC;

/// Why an open is refused: the errno for the service and the text for the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub errno: i32,
    pub why: String,
}

fn refuse(errno: i32, why: impl Into<String>) -> Refusal {
    Refusal { errno, why: why.into() }
}

/// What `flags` need of a grant. Pure: the decision, separate from the call.
pub fn check_flags(flags: i32, rights: FsRights) -> Result<(), Refusal> {
    let unknown = flags & !KNOWN_FLAGS;
    if unknown != 0 {
        return Err(refuse(libc::EINVAL, format!("open flags {unknown:#o} are not brokered (O_PATH, O_TMPFILE, O_DIRECTORY and unknown bits never are)")));
    }
    let acc = flags & libc::O_ACCMODE;
    if acc == libc::O_ACCMODE {
        return Err(refuse(libc::EINVAL, "access mode 3 is not a valid open mode"));
    }
    let reads = acc == libc::O_RDONLY || acc == libc::O_RDWR;
    let writes = acc == libc::O_WRONLY || acc == libc::O_RDWR;
    let append = flags & libc::O_APPEND != 0;
    let trunc = flags & libc::O_TRUNC != 0;
    if reads && !rights.read {
        return Err(refuse(libc::EACCES, "opening for reading needs the `read` right"));
    }
    if trunc && !writes {
        return Err(refuse(libc::EACCES, "O_TRUNC on a read-only open would still truncate the file"));
    }
    if writes && !rights.write && !(rights.append && append && !trunc) {
        let need = if rights.append { "the `write` right (the grant allows `append`: open with O_APPEND and without O_TRUNC)" } else { "the `write` right" };
        return Err(refuse(libc::EACCES, format!("opening for writing needs {need}")));
    }
    if flags & libc::O_CREAT != 0 && !rights.create {
        return Err(refuse(libc::EACCES, "O_CREAT needs the `create` right"));
    }
    Ok(())
}

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

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

/// `struct open_how` (linux/openat2.h); libc's is non-exhaustive.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
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
    let mode = if flags & libc::O_CREAT != 0 { u64::from(mode & !(libc::S_ISUID | libc::S_ISGID)) } else { 0 };
    // Only regular files are handed out: a directory fd would let the service
    // open anything beneath it with openat(), and a device or FIFO is not what
    // a file grant means. Opening one is not harmless either (a FIFO's open
    // waits for the other end and would stall the broker's only notification
    // thread; a device's open can act), so the path is looked at with O_PATH
    // first, which opens nothing. The real open adds O_NONBLOCK, so that a
    // FIFO swapped in between still cannot make it wait, and is checked again.
    let lookup = OpenHow { flags: (libc::O_PATH | libc::O_CLOEXEC) as u64, mode: 0, resolve };
    match openat2(base, &c, &lookup) {
        Ok(fd) => drop(regular(fd)?),
        // Nothing there yet: O_CREAT makes a regular file (and whatever appears
        // meanwhile is still checked below).
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && flags & libc::O_CREAT != 0 => {}
        Err(e) => return Err(e),
    }
    let how = OpenHow { flags: (flags | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64, mode, resolve };
    let fd = regular(openat2(base, &c, &how)?)?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: F_GETFL/F_SETFL on an fd we own.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) & !libc::O_NONBLOCK) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

fn openat2(base: &OwnedFd, path: &CString, how: &OpenHow) -> io::Result<OwnedFd> {
    // SAFETY: openat2 reads the NUL-terminated path and the open_how of the given
    // size during the call; both outlive it.
    let rc = unsafe { libc::syscall(libc::SYS_openat2, base.as_raw_fd(), path.as_ptr(), how as *const OpenHow, std::mem::size_of::<OpenHow>()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// `fd` if it is a regular file, else EISDIR (see [`refusal`]).
fn regular(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fstat writes one struct stat at a valid pointer, on an fd we own
    // (O_PATH fds included).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    Ok(fd)
}

/// When a granted open failed because of what the path turned out to be (a
/// link leaving the grant, a directory) rather than an ordinary error: why,
/// what to change, and the errno for the service. `None`: pass the errno on.
pub fn refusal(errno: i32, grant: &FsGrant) -> Option<(String, &'static str, i32)> {
    match errno {
        libc::EISDIR => Some(("it is not a regular file (the broker hands out regular files only)".to_owned(), "open a file inside it instead", libc::EACCES)),
        libc::EXDEV | libc::ELOOP => Some((
            format!("it resolves through a symlink or magic link that leaves grant `{}`", grant.pattern),
            "grant the file the link points to, or a whole tree with `dir/**`",
            errno,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(read: bool, write: bool, create: bool, append: bool) -> FsRights {
        FsRights { read, write, create, append }
    }

    #[test]
    fn flags_against_rights() {
        let ro = r(true, false, false, false);
        assert!(check_flags(libc::O_RDONLY | libc::O_CLOEXEC, ro).is_ok());
        assert_eq!(check_flags(libc::O_WRONLY, ro).unwrap_err().errno, libc::EACCES);
        assert_eq!(check_flags(libc::O_RDWR, ro).unwrap_err().errno, libc::EACCES);
        assert_eq!(check_flags(libc::O_RDONLY | libc::O_TRUNC, ro).unwrap_err().errno, libc::EACCES);
        assert_eq!(check_flags(libc::O_RDONLY | libc::O_CREAT, ro).unwrap_err().errno, libc::EACCES);
        assert_eq!(check_flags(libc::O_PATH, ro).unwrap_err().errno, libc::EINVAL);
        assert_eq!(check_flags(libc::O_DIRECTORY, ro).unwrap_err().errno, libc::EINVAL);
        assert_eq!(check_flags(libc::O_TMPFILE | libc::O_RDWR, r(true, true, true, false)).unwrap_err().errno, libc::EINVAL);
        assert_eq!(check_flags(0o3, ro).unwrap_err().errno, libc::EINVAL);
        assert_eq!(check_flags(0x4000_0000, ro).unwrap_err().errno, libc::EINVAL);
        let app = r(false, false, true, true);
        assert!(check_flags(libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, app).is_ok());
        assert!(check_flags(libc::O_WRONLY | libc::O_APPEND | libc::O_TRUNC, app).is_err());
        assert!(check_flags(libc::O_WRONLY, app).is_err());
        assert!(check_flags(libc::O_RDWR | libc::O_APPEND, app).is_err(), "append does not grant read");
        let rw = r(true, true, false, false);
        assert!(check_flags(libc::O_RDWR | libc::O_TRUNC, rw).is_ok());
        assert!(check_flags(libc::O_RDWR | libc::O_CREAT, rw).is_err());
    }

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
