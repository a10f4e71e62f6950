//! Lookups on the host's side, for granted requests only: addresses of a
//! name (the host's resolver), passwd and group entries, sysctl values, and
//! syslog lines. Callers check the grant first; these only do the work.

use capexec_client::wire::{Group, Passwd};
use std::ffi::{CStr, CString};
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
    // SAFETY: addrinfo is plain data; zeroed is "no hints" except those set below.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = family;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string and hints; on success res is a list we free below.
    let rc = unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) };
    match rc {
        0 => {}
        libc::EAI_NONAME => return Err(libc::ENOENT),
        // EAI_NODATA, and EAI_ADDRFAMILY (-9, missing from libc): no address of that family.
        libc::EAI_NODATA | -9 => return Err(libc::ENODATA),
        _ => return Err(libc::EAGAIN),
    }
    let mut out = Vec::new();
    let mut p = res;
    while !p.is_null() {
        // SAFETY: walking the list getaddrinfo returned; each ai_addr has the
        // length and family the entry states.
        unsafe {
            let ai = &*p;
            let ip: Option<IpAddr> = match ai.ai_family {
                libc::AF_INET => Some(std::net::Ipv4Addr::from(u32::from_be((ai.ai_addr as *const libc::sockaddr_in).read_unaligned().sin_addr.s_addr)).into()),
                libc::AF_INET6 => Some(std::net::Ipv6Addr::from((ai.ai_addr as *const libc::sockaddr_in6).read_unaligned().sin6_addr.s6_addr).into()),
                _ => None,
            };
            if let Some(ip) = ip.filter(|ip| !out.contains(ip)) {
                out.push(ip);
            }
            p = ai.ai_next;
        }
    }
    // SAFETY: the list from the successful getaddrinfo above, freed once.
    unsafe { libc::freeaddrinfo(res) };
    if out.is_empty() {
        return Err(libc::ENODATA);
    }
    Ok(out)
}

fn text(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string inside the buffer getpw*_r filled.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The host's passwd entry for `name` (ENOENT if none).
pub fn passwd(name: &str) -> Result<Passwd, i32> {
    let c = CString::new(name).map_err(|_| libc::EINVAL)?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: plain data, filled by getpwnam_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers valid for the call; buf's length is passed.
    let rc = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if rc != 0 {
        return Err(rc);
    }
    if res.is_null() {
        return Err(libc::ENOENT);
    }
    Ok(Passwd { name: text(pw.pw_name), uid: pw.pw_uid, gid: pw.pw_gid, gecos: text(pw.pw_gecos), dir: text(pw.pw_dir), shell: text(pw.pw_shell) })
}

/// The host's group entry for `name` (ENOENT if none).
pub fn group(name: &str) -> Result<Group, i32> {
    let c = CString::new(name).map_err(|_| libc::EINVAL)?;
    let mut buf = vec![0 as libc::c_char; 65536];
    // SAFETY: plain data, filled by getgrnam_r.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers valid for the call; buf's length is passed.
    let rc = unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut res) };
    if rc != 0 {
        return Err(rc);
    }
    if res.is_null() {
        return Err(libc::ENOENT);
    }
    let mut members = Vec::new();
    let mut m = gr.gr_mem;
    // SAFETY: gr_mem is a NULL-terminated array inside buf.
    unsafe {
        while !m.is_null() && !(*m).is_null() {
            members.push(text(*m));
            m = m.add(1);
        }
    }
    Ok(Group { name: text(gr.gr_name), gid: gr.gr_gid, members })
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
