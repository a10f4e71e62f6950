//! The recorder: answers every syscall of a learning run with CONTINUE (the
//! kernel runs it unchanged) after writing down what it was. Learning enforces
//! nothing, so the usual rule against deciding on memory the program can still
//! change does not apply: a program that races its own arguments only makes its
//! own record wrong. Arguments are still read with ID_VALID checks, so that a
//! notification whose thread died is not recorded with another process's data.

use crate::observe::{Access, Observations};
use capexec_sandbox::seccomp::{self, sock_filter};
use capexec_sys::notify::{self as remote, Listener, Notif};
use std::os::fd::OwnedFd;

const AT_FDCWD: i64 = -100;

/// Records until every process of the run has exited. Each call is also run
/// through `judge` (a seccomp program built by capexec-sandbox, run by its
/// interpreter on the call's real arguments) and counted in `denied` when the
/// filter would have refused it.
pub fn record(listener: OwnedFd, judge: &[sock_filter]) -> Observations {
    let l = Listener::new(listener);
    let mut obs = Observations::default();
    while let Ok(Some(n)) = l.recv() {
        let name = capexec_decl::syscalls::name_of(n.nr);
        if !seccomp::allows(judge, n.nr, n.args) {
            let key = name.map(str::to_owned).unwrap_or_else(|| format!("#{}", n.nr));
            *obs.denied.entry(key).or_default() += 1;
        }
        match name {
            Some(name) => note(&l, &n, name, &mut obs),
            None => {
                obs.unknown.insert(n.nr);
            }
        }
        // ENOENT: the thread went away meanwhile; nothing to answer.
        let _ = l.pass_through(n.id);
    }
    obs
}

fn note(l: &Listener, n: &Notif, name: &str, obs: &mut Observations) {
    *obs.syscalls.entry(name.to_owned()).or_default() += 1;
    let a = n.args;
    let (dirfd, path, access) = match name {
        "open" => (AT_FDCWD, a[0], open_access(a[1])),
        "creat" => (AT_FDCWD, a[0], Access::Create),
        "openat" => (a[0] as i64, a[1], open_access(a[2])),
        "openat2" => (a[0] as i64, a[1], open_access(read_u64(n.tid, a[2]).unwrap_or(0))),
        "execve" => (AT_FDCWD, a[0], Access::Exec),
        "execveat" => (a[0] as i64, a[1], Access::Exec),
        "stat" | "lstat" | "access" | "readlink" | "statfs" | "getxattr" | "lgetxattr" | "listxattr" | "llistxattr" => (AT_FDCWD, a[0], Access::Read),
        "newfstatat" | "statx" | "faccessat" | "faccessat2" | "readlinkat" => (a[0] as i64, a[1], Access::Read),
        "chdir" => (AT_FDCWD, a[0], Access::Read),
        "truncate" | "chmod" | "chown" | "lchown" | "utime" | "utimes" | "setxattr" | "lsetxattr" | "removexattr" | "lremovexattr" => {
            (AT_FDCWD, a[0], Access::Write)
        }
        "fchmodat" | "fchmodat2" | "fchownat" | "utimensat" | "futimesat" => (a[0] as i64, a[1], Access::Write),
        "mkdir" | "mknod" => (AT_FDCWD, a[0], Access::Create),
        "mkdirat" | "mknodat" => (a[0] as i64, a[1], Access::Create),
        "unlink" | "rmdir" => (AT_FDCWD, a[0], Access::Remove),
        "unlinkat" => (a[0] as i64, a[1], Access::Remove),
        "rename" | "link" => {
            path_event(l, n, AT_FDCWD, a[0], Access::Remove, obs);
            (AT_FDCWD, a[1], Access::Create)
        }
        "renameat" | "renameat2" | "linkat" => {
            path_event(l, n, a[0] as i64, a[1], Access::Remove, obs);
            (a[2] as i64, a[3], Access::Create)
        }
        "symlink" => (AT_FDCWD, a[1], Access::Create),
        "symlinkat" => (a[1] as i64, a[2], Access::Create),
        "socket" => {
            obs.sockets.insert(socket_kind(a[0] as i32, a[1] as i32));
            return;
        }
        "bind" | "connect" => {
            if let Some(addr) = sockaddr(l, n) {
                let set = if name == "bind" { &mut obs.binds } else { &mut obs.connects };
                set.insert(addr);
            }
            return;
        }
        _ => return,
    };
    path_event(l, n, dirfd, path, access, obs);
}

fn path_event(l: &Listener, n: &Notif, dirfd: i64, ptr: u64, access: Access, obs: &mut Observations) {
    let Ok(raw) = remote::read_cstr(n.tid, ptr, libc::PATH_MAX as usize) else { return };
    if raw.is_empty() {
        return; // AT_EMPTY_PATH: the fd itself, already recorded when it was opened
    }
    let rel = String::from_utf8_lossy(&raw).into_owned();
    let full = if rel.starts_with('/') {
        Some(rel)
    } else {
        // The base as the thread sees it, read from /proc before ID_VALID.
        let base = match dirfd as i32 {
            -100 => std::fs::read_link(format!("/proc/{}/cwd", n.tid)),
            fd => std::fs::read_link(format!("/proc/{}/fd/{fd}", n.tid)),
        };
        base.ok().map(|b| format!("{}/{rel}", b.display()))
    };
    if !l.id_valid(n.id) {
        return;
    }
    if let Some(p) = full {
        obs.paths.entry(normalize(&p)).or_default().insert(access);
    }
}

/// `.` and `..` resolved lexically (the run saw what the path named at the time).
fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn open_access(flags: u64) -> Access {
    let f = flags as i32;
    if f & libc::O_CREAT != 0 {
        Access::Create
    } else if f & libc::O_ACCMODE != libc::O_RDONLY || f & libc::O_TRUNC != 0 {
        Access::Write
    } else {
        Access::Read
    }
}

fn read_u64(tid: u32, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (remote::read_mem(tid, addr, &mut b).ok()? == 8).then(|| u64::from_ne_bytes(b))
}

fn socket_kind(domain: i32, ty: i32) -> String {
    let d = match domain {
        libc::AF_UNIX => "unix".to_owned(),
        libc::AF_INET => "inet".to_owned(),
        libc::AF_INET6 => "inet6".to_owned(),
        libc::AF_NETLINK => "netlink".to_owned(),
        other => format!("family {other}"),
    };
    let t = match ty & 0xf {
        libc::SOCK_STREAM => "stream".to_owned(),
        libc::SOCK_DGRAM => "dgram".to_owned(),
        libc::SOCK_SEQPACKET => "seqpacket".to_owned(),
        libc::SOCK_RAW => "raw".to_owned(),
        other => format!("type {other}"),
    };
    format!("{d}/{t}")
}

/// The address of a bind or connect as a grant would name it
/// (`tcp:127.0.0.1:6379`, `udp:[::1]:53`, `unix:/run/x.sock`).
fn sockaddr(l: &Listener, n: &Notif) -> Option<String> {
    let len = (n.args[2] as usize).min(128);
    let mut buf = vec![0u8; len];
    let got = remote::read_mem(n.tid, n.args[1], &mut buf).ok()?;
    buf.truncate(got);
    // The socket's type decides tcp or udp: look at the thread's own fd.
    let ty = remote::pidfd_open(n.tid).ok().and_then(|p| remote::pidfd_getfd(&p, n.args[0] as i32).ok()).and_then(|s| sock_type(&s));
    if !l.id_valid(n.id) || buf.len() < 2 {
        return None;
    }
    let proto = if ty == Some(libc::SOCK_DGRAM) { "udp" } else { "tcp" };
    let family = u16::from_ne_bytes([buf[0], buf[1]]) as i32;
    match family {
        libc::AF_INET if buf.len() >= 8 => {
            let port = u16::from_be_bytes([buf[2], buf[3]]);
            Some(format!("{proto}:{}.{}.{}.{}:{port}", buf[4], buf[5], buf[6], buf[7]))
        }
        libc::AF_INET6 if buf.len() >= 24 => {
            let port = u16::from_be_bytes([buf[2], buf[3]]);
            let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&buf[8..24]).ok()?);
            Some(format!("{proto}:[{ip}]:{port}"))
        }
        libc::AF_UNIX => {
            let path = &buf[2..];
            match path.first() {
                Some(0) => Some(format!("unix:@{}", String::from_utf8_lossy(&path[1..]).trim_end_matches('\0'))),
                Some(_) => Some(format!("unix:{}", String::from_utf8_lossy(path.split(|b| *b == 0).next().unwrap_or_default()))),
                None => None,
            }
        }
        _ => None,
    }
}

fn sock_type(s: &OwnedFd) -> Option<i32> {
    capexec_sys::socket::getsockopt_int(std::os::fd::AsFd::as_fd(s), libc::SOL_SOCKET, libc::SO_TYPE).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize("/etc/./nginx/../hosts"), "/etc/hosts");
        assert_eq!(normalize("/a//b/"), "/a/b");
        assert_eq!(normalize("/.."), "/");
    }

    #[test]
    fn open_flags_map_to_accesses() {
        assert_eq!(open_access(libc::O_RDONLY as u64), Access::Read);
        assert_eq!(open_access((libc::O_WRONLY | libc::O_APPEND) as u64), Access::Write);
        assert_eq!(open_access((libc::O_RDWR | libc::O_CREAT) as u64), Access::Create);
        assert_eq!(open_access((libc::O_RDONLY | libc::O_TRUNC) as u64), Access::Write);
    }
}
