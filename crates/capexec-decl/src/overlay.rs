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
    let name = path.to_string_lossy().trim_start_matches('/').replace('%', "%25").replace('/', "%2F");
    dir.join("layers").join(name)
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

/// The view's mounts for an overlaid run on this host: (path, kind).
/// `mounts` are the host's mount points (from /proc/self/mountinfo);
/// `own` the trees of the caller's own (its home, its current directory's,
/// see [`own_root`]), overlaid each on its own.
pub fn view(mounts: &[PathBuf], own: &[PathBuf]) -> Vec<(PathBuf, MountKind)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/") else { return out };
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    for name in names {
        if NOT_OVERLAID.contains(&name.as_str()) {
            continue;
        }
        let path = Path::new("/").join(&name);
        let Ok(meta) = path.symlink_metadata() else { continue };
        let kind = if meta.file_type().is_symlink() {
            // Recreated as the same link (/bin -> usr/bin).
            MountKind::Executable
        } else if !meta.is_dir() {
            MountKind::ReadOnly
        } else if mounts.iter().any(|m| m != &path && m.starts_with(&path)) || name.contains(UNSAFE_CHARS) {
            // An overlay cannot take a tree with mounts below it in a user
            // namespace: shown as it is, read-only.
            MountKind::Executable
        } else {
            MountKind::Overlay
        };
        out.push((path, kind));
    }
    for h in own {
        // Below a top-level directory, with nothing mounted inside, not
        // inside another of them, and not under /tmp (private).
        let nested = h.components().count() > 2 && !h.starts_with("/tmp") && !h.to_string_lossy().contains(UNSAFE_CHARS);
        let covered = out.iter().any(|(p, k)| *k == MountKind::Overlay && p.components().count() > 2 && h.starts_with(p));
        if nested && !covered && !mounts.iter().any(|m| m != h && m.starts_with(h)) {
            out.push((h.clone(), MountKind::Overlay));
        }
    }
    out
}

/// The host's mount points, from /proc/self/mountinfo.
pub fn host_mount_points() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().filter_map(|l| l.split(' ').nth(4)).map(|p| PathBuf::from(unescape(p))).collect()
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
    fn the_hosts_top_level_is_overlaid_except_what_capexec_provides() {
        let v = view(&host_mount_points(), &[]);
        let kind = |p: &str| v.iter().find(|(q, _)| q == Path::new(p)).map(|(_, k)| *k);
        assert_eq!(kind("/usr"), Some(MountKind::Overlay));
        assert_eq!(kind("/etc"), Some(MountKind::Overlay));
        for p in ["/proc", "/dev", "/tmp", "/sys", "/run"] {
            assert_eq!(kind(p), None, "{p}");
        }
    }
}
