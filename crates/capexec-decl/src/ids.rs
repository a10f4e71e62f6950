//! Fast user and group database reads from /etc/passwd and /etc/group.
//!
//! glibc's NSS loads modules (on Debian libnss_systemd, which pulls in libcap and
//! libm) and probes userdb sockets on every first lookup: about a millisecond,
//! paid by every `capexec run`. Where a lookup is on that path, capexec reads the
//! files first and falls back to NSS only when they do not answer.

fn field_lines(path: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(':').map(str::to_owned).collect())
        .collect()
}

/// Whether /etc/passwd has an entry with this uid or /etc/group one with this gid.
/// Used for the dynamic range, which only local system accounts occupy in practice.
pub fn id_in_local_files(id: u32) -> bool {
    let hit = |path: &str| field_lines(path).iter().any(|f| f.get(2).and_then(|s| s.parse::<u32>().ok()) == Some(id));
    hit("/etc/passwd") || hit("/etc/group")
}

/// The name for a uid: /etc/passwd first, then NSS.
pub fn user_name(uid: u32) -> Option<String> {
    for f in field_lines("/etc/passwd") {
        if f.get(2).and_then(|s| s.parse::<u32>().ok()) == Some(uid) {
            return f.first().cloned();
        }
    }
    nix::unistd::User::from_uid(uid.into()).ok().flatten().map(|u| u.name)
}

/// The home directory of a uid: /etc/passwd first, then NSS.
pub fn home_of(uid: u32) -> Option<std::path::PathBuf> {
    for f in field_lines("/etc/passwd") {
        if f.get(2).and_then(|s| s.parse::<u32>().ok()) == Some(uid) {
            return f.get(5).filter(|h| h.starts_with('/')).map(Into::into);
        }
    }
    nix::unistd::User::from_uid(uid.into()).ok().flatten().map(|u| u.dir)
}

/// The gid of a group: /etc/group first, then NSS.
pub fn group_by_name(name: &str) -> Option<u32> {
    for f in field_lines("/etc/group") {
        if f.first().map(String::as_str) == Some(name) {
            return f.get(2).and_then(|s| s.parse().ok());
        }
    }
    nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}
