//! Fast user and group database reads from /etc/passwd and /etc/group.
//!
//! glibc's NSS loads modules (on Debian libnss_systemd, which pulls in libcap and
//! libm) and probes userdb sockets on every first lookup: about a millisecond,
//! paid by every `capexec run`. Where a lookup is on that path, capexec reads the
//! files first and falls back to NSS only when they do not answer.

/// The first answer `f` gives for an entry of `path` (its fields split at
/// `:`), read without copying any field: this is on every launch's path.
fn find_entry<T>(path: &str, f: impl FnMut(&[&str]) -> Option<T>) -> Option<T> {
    find_in(&std::fs::read_to_string(path).ok()?, f)
}

fn find_in<T>(text: &str, mut f: impl FnMut(&[&str]) -> Option<T>) -> Option<T> {
    let mut fields = Vec::with_capacity(8);
    for l in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        fields.clear();
        fields.extend(l.split(':'));
        if let Some(t) = f(&fields) {
            return Some(t);
        }
    }
    None
}

fn id_field(f: &[&str]) -> Option<u32> {
    f.get(2).and_then(|s| s.parse().ok())
}

/// Whether /etc/passwd has an entry with this uid or /etc/group one with this gid.
/// Used for the dynamic range, which only local system accounts occupy in practice.
pub fn id_in_local_files(id: u32) -> bool {
    // An entry whose id field reads as `id` holds its digits (a "+" or
    // leading zeros around them too), so a file without them has no such
    // entry: the usual answer for a dynamic uid, found without splitting
    // every line of both files on each launch.
    let hit = |path: &str| std::fs::read_to_string(path).is_ok_and(|text| has_id(&text, id));
    hit("/etc/passwd") || hit("/etc/group")
}

fn has_id(text: &str, id: u32) -> bool {
    text.contains(&id.to_string()) && find_in(text, |f| (id_field(f) == Some(id)).then_some(())).is_some()
}

/// The name for a uid: /etc/passwd first, then NSS.
pub fn user_name(uid: u32) -> Option<String> {
    if let Some(name) = find_entry("/etc/passwd", |f| (id_field(f) == Some(uid)).then(|| f[0].to_owned())) {
        return Some(name);
    }
    nix::unistd::User::from_uid(uid.into()).ok().flatten().map(|u| u.name)
}

/// The home directory of a uid: /etc/passwd first, then NSS.
pub fn home_of(uid: u32) -> Option<std::path::PathBuf> {
    if let Some(home) = find_entry("/etc/passwd", |f| (id_field(f) == Some(uid)).then(|| f.get(5).filter(|h| h.starts_with('/')).map(Into::into))) {
        return home;
    }
    nix::unistd::User::from_uid(uid.into()).ok().flatten().map(|u| u.dir)
}

/// The gid of a group: /etc/group first, then NSS.
pub fn group_by_name(name: &str) -> Option<u32> {
    if let Some(gid) = find_entry("/etc/group", |f| (f[0] == name).then(|| id_field(f))) {
        return gid;
    }
    nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}

/// The gids of the groups /etc/group lists `user` as a member of (what
/// initgroups(3) adds from the files), then NSS's list when the user has no
/// passwd line in the files.
pub fn groups_of(user: &str, primary: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let in_files = find_entry("/etc/passwd", |f| (f[0] == user).then_some(())).is_some();
    if in_files {
        find_entry("/etc/group", |f| {
            if f.get(3).is_some_and(|m| m.split(',').any(|m| m == user)) {
                out.extend(id_field(f));
            }
            None::<()>
        });
    } else if let Ok(c) = std::ffi::CString::new(user) {
        if let Ok(gids) = nix::unistd::getgrouplist(&c, nix::unistd::Gid::from_raw(primary)) {
            out.extend(gids.into_iter().map(|g| g.as_raw()));
        }
    }
    out.retain(|g| *g != primary);
    out
}

/// The rwx bits (4 read, 2 write, 1 search/execute) of a file's mode that
/// apply to these ids, as the kernel picks them without a capability: the
/// owner's, else the group's (primary or supplementary), else the others'.
pub fn mode_bits_for(m: &std::fs::Metadata, uid: u32, gid: u32, groups: &[u32]) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let bits = if m.uid() == uid {
        m.mode() >> 6
    } else if m.gid() == gid || groups.contains(&m.gid()) {
        m.mode() >> 3
    } else {
        m.mode()
    };
    bits & 7
}

#[cfg(test)]
mod tests {
    use super::*;

    // The digits' search only skips files that cannot hold the id: an id
    // written with a sign or leading zeros still counts, and digits found
    // elsewhere (another id, a name, a comment) do not.
    #[test]
    fn an_id_is_found_however_it_is_written_and_only_in_its_field() {
        let passwd = "# 61338 in a comment\nroot:x:0:0:root:/root:/bin/bash\nsvc61338:x:161338:161338::/:/bin/false\n";
        assert!(!has_id(passwd, 61338));
        assert!(has_id(passwd, 161338));
        assert!(has_id(passwd, 0));
        assert!(has_id("svc:x:+0061338:0::/:/bin/false\n", 61338));
        assert!(!has_id("", 61338));
    }
}
