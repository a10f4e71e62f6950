//! Lookups on the host's side, for granted requests only: addresses of a
//! name (the host's resolver), passwd and group entries, sysctl values, and
//! syslog lines. Callers check the grant first; these only do the work.

use capexec_client::wire::{Group, Passwd};
use std::ffi::CString;
use std::net::IpAddr;

/// Whether `name` is a host name the broker will look up at all: ASCII
/// letters, digits, `-`, `_` and dots, at most 253 bytes.
pub fn valid_host_name(name: &str) -> bool {
    let n = name.trim_end_matches('.');
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
}

/// The host's addresses for `name` (`family`: AF_INET, AF_INET6 or AF_UNSPEC),
/// without duplicates. ENOENT: no such name; ENODATA: none of that family;
/// EAGAIN: the resolver failed for now.
pub fn host_addrs(name: &str, family: i32) -> Result<Vec<IpAddr>, i32> {
    if !valid_host_name(name) {
        return Err(libc::EINVAL);
    }
    let c = CString::new(name).map_err(|_| libc::EINVAL)?;
    let out = capexec_sys::host_addresses(&c, family).map_err(|rc| match rc {
        libc::EAI_NONAME => libc::ENOENT,
        // EAI_NODATA, and EAI_ADDRFAMILY (-9, missing from libc): no address of that family.
        libc::EAI_NODATA | -9 => libc::ENODATA,
        _ => libc::EAGAIN,
    })?;
    if out.is_empty() {
        return Err(libc::ENODATA);
    }
    Ok(out)
}

/// The host's passwd entry for `name` (ENOENT if none).
pub fn passwd(name: &str) -> Result<Passwd, i32> {
    if name.contains('\0') {
        return Err(libc::EINVAL);
    }
    let pw = nix::unistd::User::from_name(name).map_err(|e| e as i32)?.ok_or(libc::ENOENT)?;
    let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
    Ok(Passwd {
        name: pw.name,
        uid: pw.uid.as_raw(),
        gid: pw.gid.as_raw(),
        gecos: pw.gecos.to_string_lossy().into_owned(),
        dir: text(&pw.dir),
        shell: text(&pw.shell),
    })
}

/// The host's group entry for `name` (ENOENT if none).
pub fn group(name: &str) -> Result<Group, i32> {
    if name.contains('\0') {
        return Err(libc::EINVAL);
    }
    let gr = nix::unistd::Group::from_name(name).map_err(|e| e as i32)?.ok_or(libc::ENOENT)?;
    Ok(Group { name: gr.name, gid: gr.gid.as_raw(), members: gr.mem })
}

/// `/etc/passwd` and `/etc/group` lines for the granted names that exist on
/// the host (a name that does not is left out, as getpwnam would not find it).
pub fn passwd_file(names: &[String]) -> String {
    let mut s = String::from("# written by capexec: only the users [broker] pwd grants\n");
    for p in names.iter().filter_map(|n| passwd(n).ok()) {
        s.push_str(&format!("{}:x:{}:{}:{}:{}:{}\n", p.name, p.uid, p.gid, p.gecos, p.dir, p.shell));
    }
    s
}

pub fn group_file(names: &[String]) -> String {
    let mut s = String::from("# written by capexec: only the groups [broker] grp grants\n");
    for g in names.iter().filter_map(|n| group(n).ok()) {
        s.push_str(&format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(",")));
    }
    s
}

/// The value of a sysctl key (dotted) from the host's /proc/sys.
pub fn sysctl(key: &str) -> Result<Vec<u8>, i32> {
    if key.is_empty() || !key.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')) {
        return Err(libc::EINVAL);
    }
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut v = std::fs::read(&path).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    v.truncate(capexec_client::wire::MAX_FRAME - capexec_client::wire::REPLY_HEADER);
    Ok(v)
}

/// Where syslog lines go: `CAPEXEC_SYSLOG_SOCKET` (for tests and unusual
/// hosts) or /dev/log, which journald and rsyslog both serve.
pub fn syslog_socket() -> std::path::PathBuf {
    std::env::var_os("CAPEXEC_SYSLOG_SOCKET").map(Into::into).unwrap_or_else(|| "/dev/log".into())
}

/// One syslog datagram: facility daemon, the unit as the tag, the service's
/// pid; control characters replaced so a message cannot forge another line.
pub fn syslog_line(unit: &str, pid: i32, level: u8, message: &[u8]) -> String {
    let msg: String = String::from_utf8_lossy(&message[..message.len().min(2048)]).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("<{}>{unit}[{pid}]: {msg}", (libc::LOG_DAEMON as u32) + u32::from(level.min(7)))
}

/// Sends a line to the host's syslog socket. ENOENT/ECONNREFUSED: no syslog
/// daemon; the caller then writes it to the service's log instead.
pub fn syslog_send(line: &str) -> Result<(), i32> {
    let sock = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    sock.send_to(line.as_bytes(), syslog_socket()).map(drop).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lines() {
        assert!(valid_host_name("db.example.com."));
        assert!(!valid_host_name("a..b"));
        assert!(!valid_host_name(&"a".repeat(254)));
        assert!(!valid_host_name("a b"));
        assert_eq!(syslog_line("web", 7, 3, b"bad\nFAKE: line\x1b[0m"), "<27>web[7]: bad FAKE: line [0m");
        assert_eq!(sysctl("../../etc/shadow"), Err(libc::EINVAL));
        assert_eq!(host_addrs("a b", libc::AF_INET), Err(libc::EINVAL));
    }
}
