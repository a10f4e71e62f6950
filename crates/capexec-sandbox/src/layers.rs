//! The layers of an overlaid run (`filesystem.overlay`), made by the caller
//! before the clone: the upper and work directory of each overlay and,
//! rootless, what overlayfs cannot do for the program in a user namespace.
//!
//! Rootless, overlayfs copies a host file up (to write, truncate, link or
//! lock it) with its owner; a file of root's, or of anybody the namespace
//! does not map, cannot be given its owner (EOVERFLOW), so the write fails,
//! even for a fake root. Two things make up for it: every directory made
//! ahead, owned by the caller (a fake root may then create, replace and
//! remove anything: [`skeleton`]), and the files of `filesystem.copy_up`
//! copied ahead, owned by the caller (the program may then rewrite them in
//! place: [`copy_in`]; a fake root's default list is the state Debian's
//! package tools lock and rewrite, capexec_decl::overlay::PACKAGE_STATE). As
//! root neither is needed: the namespace maps root, and overlayfs copies up
//! what it must itself.

use crate::error::LaunchError;
use crate::plan::MountStep;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Makes the upper and work directory of each overlay of the plan (see
/// capexec_decl::overlay), the layer directory and its parents private
/// (0700): what the program wrote is nobody else's to read. Rootless, the
/// skeleton of a fake root and the copies of `copy_up` too.
pub fn make_layers(plan: &crate::SetupPlan) -> Result<(), LaunchError> {
    let root = nix::unistd::geteuid().is_root();
    let mut overlays = Vec::new();
    for step in &plan.mounts {
        let MountStep::Overlay { path, layer } = step else { continue };
        for d in [&layer.dir, &layer.work()] {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d).map_err(|e| LaunchError::io("create the overlay layer", d.display(), e))?;
        }
        // The upper directory, and a part's directories in it, as the host
        // has them: overlayfs shows a directory's owner and mode from its
        // upper copy, so the program would see /usr as mode 0700.
        // Made writable first (rootless, a 0555 directory could not take
        // the next), given their modes after, deepest first.
        let top = path.ancestors().nth(layer.rel.components().count()).unwrap_or(path);
        let (mut upper, mut host) = (layer.dir.join("upper"), top.to_path_buf());
        let mut made = Vec::new();
        let mut dir = like_host(&upper, &host, root, false, &mut made)?;
        for c in layer.rel.components() {
            // An earlier run, with the directory overlaid whole, deleted or
            // replaced this one (a whiteout, a file): nothing is made below
            // it, and the child leaves the part out (see mounts::build).
            if !dir {
                break;
            }
            upper.push(c);
            host.push(c);
            dir = like_host(&upper, &host, root, true, &mut made)?;
        }
        for (dir, mode) in made.iter().rev() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| LaunchError::io("give the overlay layer its mode", dir.display(), e))?;
        }
        overlays.push((path.as_path(), layer));
    }
    if root {
        return Ok(());
    }
    if plan.inside.is_some() {
        for (path, layer) in &overlays {
            skeleton(path, layer);
        }
    }
    let masks: Vec<&Path> = plan.mounts.iter().filter_map(|s| if let MountStep::Mask { path, .. } = s { Some(path.as_path()) } else { None }).collect();
    for p in &plan.copy_up {
        // The innermost overlay holding it (the caller's home is one inside /home's).
        let Some((root, layer)) = overlays.iter().filter(|(o, _)| p.starts_with(o)).max_by_key(|(o, _)| o.components().count()) else { continue };
        copy_in(p, root, &layer.upper(), plan.uid, &masks);
    }
    Ok(())
}

/// Makes the directory `upper` of a layer, when missing, with the owner
/// (as root) of the host's `host`, and adds it to `made` with the mode to
/// give it; one made for a part of a split directory (`ahead`) is marked as
/// capexec's, not the program's. False when `upper` is there and is not a
/// directory.
fn like_host(upper: &Path, host: &Path, root: bool, ahead: bool, made: &mut Vec<(PathBuf, u32)>) -> Result<bool, LaunchError> {
    if let Ok(m) = upper.symlink_metadata() {
        return Ok(m.is_dir());
    }
    let m = host.metadata().ok();
    std::fs::DirBuilder::new().mode(0o700).create(upper).map_err(|e| LaunchError::io("create the overlay layer", upper.display(), e))?;
    if let (true, Some(m)) = (root, &m) {
        std::os::unix::fs::lchown(upper, Some(m.uid()), Some(m.gid())).map_err(|e| LaunchError::io("give the overlay layer its owner", upper.display(), e))?;
    }
    if ahead {
        mark_ahead(upper);
    }
    // The permission bits and setgid (a directory's group inheritance); no setuid.
    made.push((upper.to_path_buf(), m.map_or(0o755, |m| m.mode() & 0o3777)));
    Ok(true)
}

/// Marks a directory capexec made in a layer ahead of the program (see
/// capexec_decl::overlay::AHEAD_XATTR).
fn mark_ahead(dir: &Path) {
    if let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) {
        let _ = capexec_sys::lsetxattr(&c, capexec_decl::overlay::AHEAD_XATTR, b"y");
    }
}

fn is_opaque(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    matches!(capexec_sys::lgetxattr(&c, c"user.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// Whether the host's `rel` still shows through `upper`: no whiteout, file
/// or opaque directory at or above it in the layer (what the program
/// deleted stays deleted).
fn shows_through(upper: &Path, rel: &Path) -> bool {
    let mut at = upper.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match at.symlink_metadata() {
            Err(_) => return true,
            Ok(m) if !m.is_dir() || is_opaque(&at) => return false,
            Ok(_) => {}
        }
    }
    true
}

/// Every directory of the host's `lower` (this filesystem only) made ahead
/// in `upper`, with its mode, owned by the caller: a merged directory in
/// which the fake root may create, replace and remove what it likes. Made
/// once: a directory there already is left as it is, and nothing is made
/// below what the program deleted or replaced. Directories the caller may not
/// list and search are skipped, with what is below them.
fn skeleton(lower: &Path, layer: &capexec_decl::overlay::Layer) {
    let Ok(dev) = lower.metadata().map(|m| m.dev()) else { return };
    let upper = &layer.upper();
    // DIR of DIR/layers/NAME.
    let overlay_dir = layer.dir.ancestors().nth(2);
    let mut stack = vec![PathBuf::new()];
    // Made writable first (a 0555 directory could not take its children),
    // given their modes after, deepest first.
    let mut made = Vec::new();
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(lower.join(&rel)) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            // Not the layers themselves (they may be below `lower`): a walk
            // that made what it walks would never end.
            if !m.is_dir() || m.dev() != dev || Some(e.path().as_path()) == overlay_dir {
                continue;
            }
            // Nor one the caller may not list and search (the mode-0 work
            // directory of another overlay): made ahead with that mode, it
            // would be a directory of the caller's own that `capexec diff`
            // cannot read; overlayfs copies it up if the program needs it.
            if nix::unistd::access(&e.path(), nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK).is_err() {
                continue;
            }
            let r = rel.join(e.file_name());
            let dir = upper.join(&r);
            match dir.symlink_metadata() {
                Err(_) => {
                    if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() {
                        mark_ahead(&dir);
                        // The permission bits and setgid (a directory's group inheritance); no setuid.
                        made.push((dir, m.mode() & 0o3777));
                    }
                }
                // Deleted or replaced by the program: nothing below comes back.
                Ok(um) if !um.is_dir() || is_opaque(&dir) => continue,
                Ok(_) => {}
            }
            stack.push(r);
        }
    }
    for (dir, mode) in made.iter().rev() {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode));
    }
}

/// Copies the regular files of the host's `path` (a file or a tree; this
/// filesystem only, no link followed, nothing under `masks`) into `upper`,
/// the layer of the overlay at `root`, where overlayfs could not copy them
/// up itself: those not the caller's (`uid`), that the caller may read (or
/// empty), without a setuid or setgid bit, not in the layer already and
/// not deleted there. Each copy keeps the permission bits and times, owned by
/// the caller; missing directories above take the host's modes. What
/// cannot be read or made is left to overlayfs (the program's write then
/// fails as without the copy).
fn copy_in(path: &Path, root: &Path, upper: &Path, uid: u32, masks: &[&Path]) {
    let Ok(top) = path.symlink_metadata() else { return };
    let overlay_dir = upper.ancestors().nth(3);
    let mut stack = vec![path.to_path_buf()];
    let mut made = Vec::new();
    while let Some(p) = stack.pop() {
        if masks.iter().any(|m| p.starts_with(m)) || Some(p.as_path()) == overlay_dir {
            continue;
        }
        let Ok(m) = p.symlink_metadata() else { continue };
        if m.dev() != top.dev() {
            continue;
        }
        if m.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
            continue;
        }
        let Ok(rel) = p.strip_prefix(root) else { continue };
        // A copy without its setuid or setgid bit would be a change the
        // program did not make, one with it a setuid file of the caller's.
        if !m.is_file() || m.uid() == uid || m.mode() & 0o6000 != 0 || !shows_through(upper, rel) {
            continue;
        }
        let _ = copy_file(&p, &m, root, upper, rel, &mut made);
    }
    // Writable while the copies went in, given their modes after, deepest first.
    for (dir, mode) in made.iter().rev() {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode));
    }
}

fn copy_file(host: &Path, meta: &std::fs::Metadata, root: &Path, upper: &Path, rel: &Path, made: &mut Vec<(PathBuf, u32)>) -> std::io::Result<()> {
    // An empty file is copied exactly without reading it: lock files are
    // often root's alone (dpkg's 0640 lock), and opened for writing all the same.
    let mut from: Box<dyn std::io::Read> = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(host) {
        Ok(f) => Box::new(f),
        Err(_) if meta.len() == 0 => Box::new(std::io::empty()),
        Err(e) => return Err(e),
    };
    // The directories above, as overlayfs would copy them up (modes, the
    // caller as owner).
    let mut at = upper.to_path_buf();
    let mut on_host = root.to_path_buf();
    for c in rel.parent().into_iter().flat_map(|p| p.components()) {
        at.push(c);
        on_host.push(c);
        if at.symlink_metadata().is_err() {
            let mode = on_host.symlink_metadata()?.mode() & 0o3777;
            std::fs::DirBuilder::new().mode(0o700).create(&at)?;
            mark_ahead(&at);
            made.push((at.clone(), mode));
        }
    }
    let dest = upper.join(rel);
    let mut to = std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).mode(0o600).open(&dest)?;
    let copied = std::io::copy(&mut from, &mut to).and_then(|_| {
        to.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o777))?;
        to.set_times(std::fs::FileTimes::new().set_accessed(meta.accessed()?).set_modified(meta.modified()?))
    });
    if copied.is_err() {
        // Half a copy would hide the host's file.
        let _ = std::fs::remove_file(&dest);
    }
    copied
}
