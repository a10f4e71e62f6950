//! An overlaid run's layers after it ended (`capexec run --overlay DIR`,
//! see capexec_decl::overlay for their layout): what they change against
//! the host ([`changes`], `capexec diff`), and dropping them ([`discard`]).
//!
//! A layer's upper directory is overlayfs's own format: a file or
//! directory there replaces the host's; a character device 0:0 is a
//! whiteout (the host's file deleted); a directory with the xattr
//! `user.overlay.opaque = "y"` hides everything the host has below it.
//! The upper directory is written by a program capexec ran: nothing here
//! follows a link in it, and a name is taken only as one path component.

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod commit;

use serde::Serialize;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("{} is not an overlay directory (it has no layers/): give the DIR of `capexec run --overlay DIR`", .0.display())]
    NotOverlay(PathBuf),
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OverlayError + 'a {
    move |source| OverlayError::Io { op, path: path.to_owned(), source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Not on the host.
    Added,
    /// On the host, different (contents, mode, link target or type).
    Modified,
    /// Deleted (a whiteout).
    Deleted,
    /// A host directory whose contents were all removed (an opaque
    /// directory); what it holds now is listed as added.
    Replaced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    /// A device, FIFO or socket the program made.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The host path.
    pub path: PathBuf,
    pub change: ChangeKind,
    /// What the layer has there (for a deletion: what the host has).
    pub kind: FileKind,
    /// Where the layer keeps it (none for a deletion).
    #[serde(skip)]
    pub upper: Option<PathBuf>,
}

fn kind_of(m: &std::fs::Metadata) -> FileKind {
    let t = m.file_type();
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_ahead(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    matches!(capexec_sys::lgetxattr(&c, capexec_decl::overlay::AHEAD_XATTR), Ok(Some(v)) if v == b"y")
}

fn is_opaque(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    matches!(capexec_sys::lgetxattr(&c, c"user.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// The layers of `dir`: (host path, upper directory), by host path.
pub fn layers(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, OverlayError> {
    let root = dir.join("layers");
    if !root.is_dir() {
        return Err(OverlayError::NotOverlay(dir.to_owned()));
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(&root).map_err(io("read", &root))? {
        let e = e.map_err(io("read", &root))?;
        let Some(path) = e.file_name().to_str().and_then(capexec_decl::overlay::layer_path) else { continue };
        let upper = e.path().join("upper");
        if upper.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            out.push((path, upper));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the layer's `upper` file says something other than the host's
/// `host` (both not followed if links).
fn differs(upper: &Path, um: &std::fs::Metadata, host: &Path, hm: &std::fs::Metadata) -> bool {
    if kind_of(um) != kind_of(hm) || (um.mode() & 0o7777) != (hm.mode() & 0o7777) {
        return true;
    }
    match kind_of(um) {
        FileKind::Symlink => std::fs::read_link(upper).ok() != std::fs::read_link(host).ok(),
        // Two empty files are the same unread (a lock file of root's alone).
        FileKind::File => um.len() != hm.len() || (um.len() != 0 && !same_bytes(upper, host)),
        _ => false,
    }
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(mut a), Ok(mut b)) = (std::fs::File::open(a), std::fs::File::open(b)) else { return false };
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = match a.read(&mut x) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
        if n == 0 {
            return b.read(&mut y[..1]).is_ok_and(|m| m == 0);
        }
    }
}

/// What the layers of `dir` change against the host, by host path; only
/// under `only` when it is not empty.
pub fn changes(dir: &Path, only: &[PathBuf]) -> Result<Vec<Change>, OverlayError> {
    let mut out = Vec::new();
    for (host, upper) in layers(dir)? {
        walk(&upper, &host, Host::Shown, &mut out)?;
    }
    out.retain(|c| only.is_empty() || only.iter().any(|o| c.path.starts_with(o)));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// What the host's directory is to the layer's copy of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Host {
    /// Shown below what the layer adds.
    Shown,
    /// Not there: everything in the layer is added.
    Absent,
    /// There, but hidden (an opaque directory at or above): what the layer
    /// does not have is gone.
    Hidden,
}

/// One directory of a layer: `upper` is the layer's copy of host `host`.
fn walk(upper: &Path, host: &Path, state: Host, out: &mut Vec<Change>) -> Result<(), OverlayError> {
    let mut entries: Vec<_> = std::fs::read_dir(upper).map_err(io("read", upper))?.collect::<Result<_, _>>().map_err(io("read", upper))?;
    entries.sort_by_key(|e| e.file_name());
    if state == Host::Hidden {
        // What the host has here and the layer does not: gone.
        for he in std::fs::read_dir(host).map_err(io("read", host))?.flatten() {
            if upper.join(he.file_name()).symlink_metadata().is_err() {
                let kind = he.path().symlink_metadata().map(|m| kind_of(&m)).unwrap_or(FileKind::Other);
                out.push(Change { path: he.path(), change: ChangeKind::Deleted, kind, upper: None });
            }
        }
    }
    for e in entries {
        let (u, h) = (e.path(), host.join(e.file_name()));
        let um = u.symlink_metadata().map_err(io("stat", &u))?;
        let hm = if state == Host::Absent { None } else { h.symlink_metadata().ok() };
        if is_whiteout(&um) {
            if let Some(hm) = hm {
                out.push(Change { path: h, change: ChangeKind::Deleted, kind: kind_of(&hm), upper: None });
            }
            continue;
        }
        let kind = kind_of(&um);
        let dirs = kind == FileKind::Directory && hm.as_ref().is_some_and(|m| m.is_dir());
        let hidden = dirs && (state == Host::Hidden || is_opaque(&u));
        let change = match &hm {
            // Made by capexec, not the program, for a host directory gone since.
            None if kind == FileKind::Directory && is_ahead(&u) => None,
            None => Some(ChangeKind::Added),
            Some(_) if hidden => Some(ChangeKind::Replaced),
            Some(hm) if dirs => (um.mode() & 0o7777 != hm.mode() & 0o7777).then_some(ChangeKind::Modified),
            Some(hm) => differs(&u, &um, &h, hm).then_some(ChangeKind::Modified),
        };
        if let Some(change) = change {
            out.push(Change { path: h.clone(), change, kind, upper: Some(u.clone()) });
        }
        if kind == FileKind::Directory {
            let below = match (hidden, dirs) {
                (true, _) => Host::Hidden,
                (false, true) => Host::Shown,
                // Added, or replacing a host file or link.
                (false, false) => Host::Absent,
            };
            walk(&u, &h, below, out)?;
        }
    }
    Ok(())
}

/// Removes what `dir`'s layers hold, leaving `dir` to be used again. The
/// work directories overlayfs leaves are made searchable first (it makes
/// them mode 0).
pub fn discard(dir: &Path) -> Result<(), OverlayError> {
    let root = dir.join("layers");
    if !root.is_dir() {
        return Err(OverlayError::NotOverlay(dir.to_owned()));
    }
    remove_tree(&root)?;
    commit::forget_seen(dir)?;
    std::fs::create_dir(&root).map_err(io("create", &root))
}

fn remove_tree(p: &Path) -> Result<(), OverlayError> {
    let m = p.symlink_metadata().map_err(io("stat", p))?;
    if !m.is_dir() {
        return std::fs::remove_file(p).map_err(io("remove", p));
    }
    if m.mode() & 0o700 != 0o700 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).map_err(io("make searchable", p))?;
    }
    for e in std::fs::read_dir(p).map_err(io("read", p))? {
        remove_tree(&e.map_err(io("read", p))?.path())?;
    }
    std::fs::remove_dir(p).map_err(io("remove", p))
}
