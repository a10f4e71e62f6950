//! The view of an overlaid run (`filesystem.overlay`, `capexec run
//! --overlay DIR`, after Mbox): the host's filesystem as the caller sees it,
//! every write landing in a layer kept in DIR. One overlayfs per top-level
//! directory of the host (an overlay over `/` itself cannot be made in a
//! user namespace: the host's mounts below it are locked), and one more on
//! each tree of the caller's own (its home, its current directory's): a
//! rootless overlay copies up a file with its directories, and cannot give
//! a copy of root's /home or /var/tmp its owner (EOVERFLOW).
//! Layer `P` keeps its upper and work directories in
//! `DIR/layers/NAME/{upper,work}`, NAME being P without its leading `/`,
//! `%` written `%25` and `/` written `%2F`.

use crate::spec::MountKind;
use std::path::{Path, PathBuf};

/// Top-level names never overlaid: capexec provides /proc, /dev and /tmp,
/// /sys and /run are the host's machinery, not files a program makes.
const NOT_OVERLAID: &[&str] = &["proc", "sys", "dev", "tmp", "run", "lost+found"];

/// What Debian's package tools lock, append to and rewrite in place (so
/// what a rootless fake root needs copied into its layer ahead: see
/// spec::FsSpec::copy_up): dpkg's database, apt's state, caches and locks,
/// debconf's and ucf's databases, their logs.
pub const PACKAGE_STATE: &[&str] = &[
    "/var/lib/dpkg",
    "/var/lib/apt/extended_states",
    "/var/lib/apt/lists/lock",
    "/var/lib/apt/periodic",
    "/var/cache/apt",
    "/var/cache/debconf",
    "/var/cache/ldconfig",
    "/var/lib/ucf",
    "/var/log/apt",
    "/var/log/dpkg.log",
    "/var/log/alternatives.log",
    "/etc/ld.so.cache",
];

/// The extended attribute capexec gives a directory it made in a layer
/// ahead of the program (a rootless fake root's skeleton, the parents of a
/// copy_up): not a change of the program's when the host's directory is
/// gone since.
pub const AHEAD_XATTR: &std::ffi::CStr = c"user.capexec.ahead";

/// Characters overlayfs's mount options cannot hold in a path.
pub const UNSAFE_CHARS: &[char] = &[',', ':', '\\', '='];

/// The layer directory of `path` inside `dir`.
pub fn layer_dir(dir: &Path, path: &Path) -> PathBuf {
    dir.join("layers").join(one_name(path))
}

/// A path as one file name: without its leading `/`, `%` written `%25`
/// and `/` written `%2F` (the reverse is [`layer_path`]).
fn one_name(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').replace('%', "%25").replace('/', "%2F")
}

/// The host path a layer directory's name stands for (the reverse of
/// [`layer_dir`]); `None` for a name no layer has.
pub fn layer_path(name: &str) -> Option<PathBuf> {
    let mut out = String::from("/");
    let mut rest = name;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%2F") => out.push('/'),
            Some("%25") => out.push('%'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    let p = PathBuf::from(out);
    // One normal component after another: no `..`, no empty name.
    let clean = !name.is_empty() && p.components().skip(1).all(|c| matches!(c, std::path::Component::Normal(_))) && !p.to_string_lossy().contains("//");
    clean.then_some(p)
}

/// The highest directory above (or at) `path` from which down to `path`
/// every directory belongs to `uid` and `gid`: where a rootless overlay can copy up
/// everything the caller writes below it.
pub fn own_root(path: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let owned = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.gid() == gid);
    let mut root = owned(path).then(|| path.to_path_buf())?;
    while let Some(up) = root.parent().filter(|u| *u != Path::new("/") && owned(u)) {
        root = up.to_path_buf();
    }
    Some(root)
}

/// A mount point of the host, from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    pub path: PathBuf,
    pub read_only: bool,
}

/// Most overlays one top-level directory is split into (see [`view`]):
/// a host with a container engine's store has a directory per image layer
/// beside the mounted ones; past this many, directories are shown as they
/// are, read-only, the shallowest overlaid first.
pub const MAX_PARTS: usize = 256;

/// What an overlaid run shows.
#[derive(Debug, Default)]
pub struct View {
    /// (path, kind, for a part of a split directory the directory whose
    /// layer it writes into), sorted: a directory before what is below it.
    pub mounts: Vec<(PathBuf, MountKind, Option<PathBuf>)>,
    /// Directories below a split directory shown as they are, read-only:
    /// the host's mounts there, directories it cannot read, and those past
    /// [`MAX_PARTS`].
    pub as_is: Vec<PathBuf>,
    /// The directories split: shown as they are, each directory in them
    /// overlaid on its own, so no entry can be made or removed directly in
    /// them.
    pub split: Vec<PathBuf>,
}

/// The view of an overlaid run on this host. `mounts` are the host's mount
/// points; `own` the trees of the caller's own (its home, its current
/// directory's, see [`own_root`]), overlaid each on its own.
///
/// In a user namespace overlayfs cannot take a tree with a mount below it
/// (it clones the lower directory's mount, and the kernel refuses to clone
/// a mount without the locked mounts on it: "failed to clone lowerpath").
/// Such a directory (/var on a host with a container engine's store) is
/// split: shown as it is, read-only, and every directory in it overlaid on
/// its own, down to the mounts, which are shown as the host has them. A
/// part writes into the layer of the directory it would be in with no
/// mount there (the top-level directory's, or the caller's tree's), at its
/// place there: a later run without the mount sees the same files.
pub fn view(mounts: &[HostMount], own: &[PathBuf]) -> View {
    let mut v = View::default();
    let Ok(entries) = std::fs::read_dir("/") else { return v };
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    let below = |p: &Path| mounts.iter().any(|m| m.path != p && m.path.starts_with(p));
    // Below a top-level directory, not under /tmp (private), a name
    // overlayfs can take.
    let own: Vec<&PathBuf> =
        own.iter().filter(|h| h.components().count() > 2 && !h.starts_with("/tmp") && !h.to_string_lossy().contains(UNSAFE_CHARS)).collect();
    for name in names {
        if NOT_OVERLAID.contains(&name.as_str()) {
            continue;
        }
        let path = Path::new("/").join(&name);
        let Ok(meta) = path.symlink_metadata() else { continue };
        if meta.file_type().is_symlink() {
            // Recreated as the same link (/bin -> usr/bin).
            v.mounts.push((path, MountKind::Executable, None));
        } else if !meta.is_dir() {
            v.mounts.push((path, MountKind::ReadOnly, None));
        } else if name.contains(UNSAFE_CHARS) {
            v.mounts.push((path, MountKind::Executable, None));
        } else if below(&path) {
            v.mounts.push((path.clone(), MountKind::Executable, None));
            split(&path, mounts, &own, &mut v);
        } else {
            v.mounts.push((path, MountKind::Overlay, None));
        }
    }
    for h in &own {
        // Inside another tree of the caller's, overlaid or split already;
        // root's overlay is no cover (rootless, a copy up of root's
        // directories fails).
        let covered = v.mounts.iter().any(|(p, k, part)| *k == MountKind::Overlay && part.is_none() && p.components().count() > 2 && h.starts_with(p))
            || v.split.iter().any(|d| d != *h && h.starts_with(d) && own.contains(&d));
        if !covered && !below(h) {
            // A layer of its own, also in place of a part or of a mount
            // shown as it is (its root has no mount on it).
            v.mounts.retain(|(p, _, _)| p != *h);
            v.as_is.retain(|p| !p.starts_with(h));
            v.mounts.push(((*h).clone(), MountKind::Overlay, None));
        }
    }
    v.mounts.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Splits `top` (see [`view`]), breadth first. A part's layer is that of
/// the innermost tree of `own` around it, or of `top`.
fn split(top: &Path, mounts: &[HostMount], own: &[&PathBuf], v: &mut View) {
    let mut queue = std::collections::VecDeque::from([top.to_path_buf()]);
    let mut parts = 0;
    while let Some(dir) = queue.pop_front() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            v.as_is.push(dir);
            continue;
        };
        v.split.push(dir.clone());
        let base = own.iter().filter(|h| dir.starts_with(h)).max_by_key(|h| h.components().count()).map_or(top, |h| h.as_path());
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let p = dir.join(&name);
            // Files and links are shown as the host has them.
            if !p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if mounts.iter().any(|m| m.path == p) {
                v.as_is.push(p);
            } else if mounts.iter().any(|m| m.path.starts_with(&p)) {
                queue.push_back(p);
            } else if parts < MAX_PARTS && !name.to_string_lossy().contains(UNSAFE_CHARS) {
                parts += 1;
                v.mounts.push((p, MountKind::Overlay, Some(base.to_path_buf())));
            } else {
                v.as_is.push(p);
            }
        }
    }
}

/// Where an overlay keeps what the program writes: the layer directory
/// (`DIR/layers/NAME`, see [`layer_dir`]) and, for a part of a split
/// directory, the part's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub dir: PathBuf,
    /// Empty for an overlay of its own.
    pub rel: PathBuf,
}

impl Layer {
    /// The layer of an overlay at `path` in the overlay directory `dir`;
    /// `of`: for a part, the directory whose layer it writes into.
    pub fn of(dir: &Path, path: &Path, of: Option<&Path>) -> Layer {
        match of.and_then(|o| Some((o, path.strip_prefix(o).ok()?))) {
            Some((o, rel)) => Layer { dir: layer_dir(dir, o), rel: rel.to_path_buf() },
            None => Layer { dir: layer_dir(dir, path), rel: PathBuf::new() },
        }
    }

    /// The upper directory: a part's place in its directory's.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper").join(&self.rel)
    }

    /// The work directory: overlayfs's own, beside the upper one on its
    /// filesystem; a part's in `parts/`, named as [`layer_dir`] names.
    pub fn work(&self) -> PathBuf {
        if self.rel.as_os_str().is_empty() {
            self.dir.join("work")
        } else {
            self.dir.join("parts").join(one_name(&self.rel))
        }
    }
}

/// The host's mount points, from /proc/self/mountinfo.
pub fn host_mounts() -> Vec<HostMount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let path = f.nth(4)?;
            let read_only = f.next()?.split(',').any(|o| o == "ro");
            Some(HostMount { path: PathBuf::from(unescape(path)), read_only })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_are_one_component() {
        assert_eq!(layer_dir(Path::new("/b"), Path::new("/usr")), Path::new("/b/layers/usr"));
        assert_eq!(layer_dir(Path::new("/b"), Path::new("/home/a%b")), Path::new("/b/layers/home%2Fa%25b"));
        assert_eq!(layer_path("home%2Fa%25b"), Some(PathBuf::from("/home/a%b")));
        for bad in ["..", "a%2F..%2Fb", "a%2F%2Fb", "%2", "", "a%41"] {
            assert_eq!(layer_path(bad), None, "{bad}");
        }
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
    }

    #[test]
    fn a_split_directory_overlays_everything_but_the_way_to_its_mounts() {
        let base = std::env::temp_dir().join(format!("capexec-split-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for d in ["lib/store/mounted/inside", "lib/store/beside", "lib/apt", "cache", "odd,name"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("file"), "").unwrap();
        std::os::unix::fs::symlink("cache", base.join("link")).unwrap();
        let m = |p: &str, read_only| HostMount { path: base.join(p), read_only };
        let mut v = View::default();
        let mine = base.join("lib/store");
        split(&base, &[m("lib/store/mounted", false), m("lib/store/mounted/inside", true)], &[&mine], &mut v);
        let rel = |ps: &[PathBuf]| ps.iter().map(|p| p.strip_prefix(&base).unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>();
        assert!(v.mounts.iter().all(|(_, k, _)| *k == MountKind::Overlay));
        let parts: Vec<PathBuf> = v.mounts.iter().map(|(p, _, _)| p.clone()).collect();
        assert_eq!(rel(&parts), ["cache", "lib/apt", "lib/store/beside"]);
        // Each writes where it would with its directory overlaid whole.
        let of: Vec<PathBuf> = v.mounts.iter().map(|(_, _, of)| of.clone().unwrap()).collect();
        assert_eq!(of, [base.clone(), base.clone(), mine]);
        assert_eq!(rel(&v.as_is), ["odd,name", "lib/store/mounted"]);
        assert_eq!(rel(&v.split), ["", "lib", "lib/store"]);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_part_writes_where_its_top_level_directorys_layer_would() {
        let dir = Path::new("/b");
        let whole = Layer::of(dir, Path::new("/var"), None);
        assert_eq!((whole.upper(), whole.work()), (PathBuf::from("/b/layers/var/upper"), PathBuf::from("/b/layers/var/work")));
        let part = Layer::of(dir, Path::new("/var/lib/apt"), Some(Path::new("/var")));
        assert_eq!((part.upper(), part.work()), (PathBuf::from("/b/layers/var/upper/lib/apt"), PathBuf::from("/b/layers/var/parts/lib%2Fapt")));
        let own = Layer::of(dir, Path::new("/home/a"), None);
        assert_eq!(own.upper(), Path::new("/b/layers/home%2Fa/upper"));
        let in_own = Layer::of(dir, Path::new("/home/a/src"), Some(Path::new("/home/a")));
        assert_eq!(in_own.upper(), Path::new("/b/layers/home%2Fa/upper/src"));
    }

    #[test]
    fn the_hosts_top_level_is_overlaid_except_what_capexec_provides() {
        let v = view(&host_mounts(), &[]).mounts;
        let kind = |p: &str| v.iter().find(|(q, _, _)| q == Path::new(p)).map(|(_, k, _)| *k);
        assert_eq!(kind("/usr"), Some(MountKind::Overlay));
        assert_eq!(kind("/etc"), Some(MountKind::Overlay));
        for p in ["/proc", "/dev", "/tmp", "/sys", "/run"] {
            assert_eq!(kind(p), None, "{p}");
        }
    }
}
