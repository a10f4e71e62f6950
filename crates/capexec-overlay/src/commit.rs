//! Applying an overlaid run's changes to the host (`capexec commit`), and
//! the record that tells whether the host changed since the run.
//!
//! The layers were written by a program capexec ran; commit treats them as
//! untrusted: it follows no link, in the layer or on the host (each host
//! path is opened one directory at a time with O_NOFOLLOW, so a link made
//! by an earlier change, or a crafted layer that puts one on the way,
//! cannot aim a write elsewhere), creates no setuid or setgid file, no
//! device, FIFO or socket, and touches only paths whose host state the run
//! recorded (`DIR/seen.json`, written by capexec after each run), unless
//! forced.

use crate::{changes, io, Change, ChangeKind, FileKind, OverlayError};
use nix::fcntl::AtFlags;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a host path was when a run ended (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

fn state_of(p: &Path) -> Option<HostState> {
    let m = p.symlink_metadata().ok()?;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Some(HostState { ino: m.ino(), size: m.size(), mtime_ns: ns(m.mtime(), m.mtime_nsec()), ctime_ns: ns(m.ctime(), m.ctime_nsec()) })
}

const SEEN: &str = "seen.json";

type Seen = BTreeMap<PathBuf, Option<HostState>>;

fn read_seen(dir: &Path) -> Result<Seen, OverlayError> {
    let p = dir.join(SEEN);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| OverlayError::Io { op: "read", path: p, source: std::io::Error::other(e) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seen::new()),
        Err(e) => Err(OverlayError::Io { op: "read", path: p, source: e }),
    }
}

fn write_seen(dir: &Path, seen: &Seen) -> Result<(), OverlayError> {
    let (p, tmp) = (dir.join(SEEN), dir.join(format!(".{SEEN}.tmp")));
    std::fs::write(&tmp, serde_json::to_vec_pretty(seen).expect("the record encodes")).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &p).map_err(io("replace", &p))
}

/// After a run: the host state of each path its layers change, for those
/// not recorded by an earlier run (the first run that changed a path saw
/// the host as it was then).
pub fn record_seen(dir: &Path) -> Result<(), OverlayError> {
    let mut seen = read_seen(dir)?;
    let before = seen.len();
    for c in changes(dir, &[])? {
        seen.entry(c.path.clone()).or_insert_with(|| state_of(&c.path));
    }
    if seen.len() != before {
        write_seen(dir, &seen)?;
    }
    Ok(())
}

/// Forgets the record (after `discard`).
pub(crate) fn forget_seen(dir: &Path) -> Result<(), OverlayError> {
    match std::fs::remove_file(dir.join(SEEN)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OverlayError::Io { op: "remove", path: dir.join(SEEN), source: e }),
        _ => Ok(()),
    }
}

#[derive(Debug, Default, Clone)]
pub struct CommitOptions {
    /// Only changes at or below these host paths (and the new directories
    /// above them).
    pub only: Vec<PathBuf>,
    /// Apply over host changes since the run.
    pub force: bool,
    /// Say what would be done, do nothing.
    pub dry_run: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct CommitReport {
    /// Applied (or, in a dry run, to be applied).
    pub applied: Vec<Change>,
    /// Host paths that changed since the run, with how: nothing is applied
    /// while there are any (unless forced).
    pub conflicts: Vec<(PathBuf, String)>,
    /// Changes not applied, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Applies the layers' changes (see the module's text); what was applied
/// leaves the layers.
pub fn commit(dir: &Path, opts: &CommitOptions) -> Result<CommitReport, OverlayError> {
    let all = changes(dir, &[])?;
    let picked = |c: &Change| opts.only.is_empty() || opts.only.iter().any(|o| c.path.starts_with(o));
    // New directories above a picked change come with it.
    let needed: Vec<&Change> = all
        .iter()
        .filter(|c| {
            picked(c) || (c.kind == FileKind::Directory && c.change == ChangeKind::Added && all.iter().any(|d| picked(d) && d.path.starts_with(&c.path)))
        })
        .collect();
    let seen = read_seen(dir)?;
    let mut report = CommitReport::default();
    for c in &needed {
        let now = state_of(&c.path);
        match seen.get(&c.path) {
            None => report.conflicts.push((c.path.clone(), "no run recorded what it was (a layer capexec did not write?)".into())),
            Some(was) if *was != now => report.conflicts.push((
                c.path.clone(),
                match (was, &now) {
                    (None, Some(_)) => "made on the host since the run".into(),
                    (Some(_), None) => "removed from the host since the run".into(),
                    _ => "changed on the host since the run".into(),
                },
            )),
            Some(_) => {}
        }
    }
    if !report.conflicts.is_empty() && !opts.force {
        return Ok(report);
    }
    for c in needed {
        if c.kind == FileKind::Other && c.change != ChangeKind::Deleted {
            report.skipped.push((c.path.clone(), "a device, FIFO or socket: not made on the host".into()));
            continue;
        }
        if !opts.dry_run {
            if let Err(e) = apply(c) {
                report.skipped.push((c.path.clone(), e.to_string()));
                continue;
            }
        }
        report.applied.push(c.clone());
    }
    if !opts.dry_run {
        drop_applied(dir, &report.applied)?;
    }
    Ok(report)
}

fn cstr(s: &std::ffi::OsStr) -> CString {
    CString::new(s.as_encoded_bytes()).unwrap_or_default()
}

fn errno(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Applies one change to the host.
fn apply(c: &Change) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (c.path.parent(), c.path.file_name()) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    let dir = capexec_sys::open_dir_no_links(parent)?;
    let there = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
    let is_dir = |st: &nix::sys::stat::FileStat| st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if c.change == ChangeKind::Deleted {
        return match there {
            Some(_) => remove_at(&dir, name),
            None => Ok(()),
        };
    }
    let upper = c.upper.as_deref().ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let um = upper.symlink_metadata()?;
    match c.kind {
        FileKind::Directory => {
            // No setgid or setuid bit on what capexec makes; the sticky bit stays.
            let mode = Mode::from_bits_truncate((um.mode() & 0o1777) as libc::mode_t);
            match there {
                Some(st) if is_dir(&st) => {}
                Some(_) => {
                    remove_at(&dir, name)?;
                    nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, mode).map_err(errno)?;
                }
                None => nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, mode).map_err(errno)?,
            }
            let made = capexec_sys::open_dir_at(dir.as_fd(), &cstr(name))?;
            nix::sys::stat::fchmod(made.as_raw_fd(), mode).map_err(errno)
        }
        FileKind::File | FileKind::Symlink => {
            let tmp = std::ffi::OsString::from(format!(".capexec-commit-{}", std::process::id()));
            let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), tmp.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
            if c.kind == FileKind::Symlink {
                let target = std::fs::read_link(upper)?;
                nix::unistd::symlinkat(target.as_os_str(), Some(dir.as_raw_fd()), tmp.as_os_str()).map_err(errno)?;
            } else {
                copy_into(upper, &dir, &tmp, (um.mode() & 0o777) as libc::mode_t)?;
            }
            if there.as_ref().is_some_and(is_dir) {
                remove_at(&dir, name)?;
            }
            nix::fcntl::renameat(Some(dir.as_raw_fd()), tmp.as_os_str(), Some(dir.as_raw_fd()), name).map_err(errno)
        }
        FileKind::Other => Ok(()),
    }
}

/// Copies the layer's file `from` (not followed if a link) into a new file
/// `name` of `dir` with `mode` (permission bits only).
fn copy_into(from: &Path, dir: &OwnedFd, name: &std::ffi::OsStr, mode: libc::mode_t) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(from)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let mut dst = std::fs::File::from(capexec_sys::open_at(dir.as_fd(), &cstr(name), flags, 0o600)?);
    std::io::copy(&mut src, &mut dst)?;
    nix::sys::stat::fchmod(dst.as_raw_fd(), Mode::from_bits_truncate(mode)).map_err(errno)
}

/// Removes `name` of `dir`, a directory with everything in it, following
/// no link.
fn remove_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> std::io::Result<()> {
    let st = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(errno);
    }
    let sub = capexec_sys::open_dir_at(dir.as_fd(), &cstr(name))?;
    // The entries of the directory this fd holds (its /proc link leads to
    // the fd's own directory, whatever its path is now).
    let names: Vec<std::ffi::OsString> =
        std::fs::read_dir(format!("/proc/self/fd/{}", sub.as_raw_fd()))?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    for n in names {
        remove_at(&sub, &n)?;
    }
    nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, nix::unistd::UnlinkatFlags::RemoveDir).map_err(errno)
}

/// Takes what was applied out of the layers (deepest first), so that they
/// hold only what is left to decide; a directory goes once it is empty.
fn drop_applied(dir: &Path, applied: &[Change]) -> Result<(), OverlayError> {
    let mut seen = read_seen(dir)?;
    let layers = crate::layers(dir)?;
    let mut paths: Vec<&Change> = applied.iter().collect();
    paths.sort_by(|a, b| b.path.cmp(&a.path));
    for c in paths {
        seen.remove(&c.path);
        // The layer entry: its copy, or the whiteout at the same place.
        let Some(entry) = layers
            .iter()
            .filter(|(h, _)| c.path.starts_with(h))
            .max_by_key(|(h, _)| h.as_os_str().len())
            .and_then(|(h, u)| c.path.strip_prefix(h).ok().map(|rel| u.join(rel)))
        else {
            continue;
        };
        let Ok(m) = entry.symlink_metadata() else { continue };
        let _ = if m.is_dir() { std::fs::remove_dir(&entry) } else { std::fs::remove_file(&entry) };
    }
    write_seen(dir, &seen)
}
