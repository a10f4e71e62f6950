//! Runs inside a capexec sandbox and uses the broker's explicit protocol:
//! through capexec-client for every grant type (`grants`), and with raw,
//! malformed frames (`frames`, ESCAPE-CASES 33), and as a daemon-started
//! service (`basic`). Prints `BLOCKED case` for
//! every expectation met and `ESCAPED case` for every one that is not.

use capexec_client::wire::{self, Family, Proto, Request};
use capexec_client::Broker;
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

struct Probe {
    escaped: usize,
}

impl Probe {
    fn expect(&mut self, case: &str, ok: bool, detail: impl std::fmt::Debug) {
        if ok {
            println!("BLOCKED {case}: {detail:?}");
        } else {
            println!("ESCAPED {case}: {detail:?}");
            self.escaped += 1;
        }
    }

    fn refused<T: std::fmt::Debug>(&mut self, case: &str, r: std::io::Result<T>, errno: i32) {
        let ok = matches!(&r, Err(e) if e.raw_os_error() == Some(errno));
        self.expect(case, ok, r.map_err(|e| e.to_string()));
    }
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut s);
    s
}

fn wait_for_go(what: &str) {
    println!("{what}");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// `grants DIR HOST_PORT UNGRANTED_PORT BIND_PORT`
fn grants(p: &mut Probe, a: &[String]) {
    let b = Broker::from_env().expect("CAPEXEC_BROKER_FD names the broker connection");
    let dir = &a[0];
    let port = |i: usize| a[i].parse::<u16>().unwrap();
    let f = b.open(&format!("{dir}/data/readme"), libc::O_RDONLY, 0);
    p.expect("client open of a granted file", f.as_ref().is_ok_and(|_| true), f.as_ref().map_err(|e| e.to_string()).map(|_| ()));
    if let Ok(f) = f {
        let s = read_all(f);
        p.expect("client open gives the granted file", s == "granted", &s);
    }
    p.refused("29 client open outside every grant", b.open(&format!("{dir}/secret"), libc::O_RDONLY, 0), libc::EACCES);
    p.refused("29 client open with `..`", b.open(&format!("{dir}/data/../secret"), libc::O_RDONLY, 0), libc::EACCES);
    p.refused("29 client open of a relative path", b.open("data/readme", libc::O_RDONLY, 0), libc::EACCES);
    p.refused("32 client write to a read-only grant", b.open(&format!("{dir}/data/readme"), libc::O_WRONLY, 0), libc::EACCES);
    p.refused("32 client O_PATH", b.open(&format!("{dir}/data/readme"), libc::O_PATH, 0), libc::EINVAL);
    p.refused("31 client open through a symlink out of the grant", b.open(&format!("{dir}/data/link-out"), libc::O_RDONLY, 0), libc::EXDEV);
    match b.open(&format!("{dir}/out/client.log"), libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o644) {
        Ok(f) => {
            let mut f = std::fs::File::from(f);
            let w = f.write_all(b"appended\n");
            p.expect("client create+append on an append grant", w.is_ok(), w);
            // 53: what the client holds is a pipe to the file, not the file.
            let t = f.set_len(0);
            p.expect("53 client ftruncate of an append-only file", t.is_err(), t);
            let w = std::os::unix::fs::FileExt::write_at(&f, b"XX", 0);
            p.expect("53 client pwrite at offset 0 to an append-only file", w.is_err(), w);
        }
        Err(e) => p.expect("client create+append on an append grant", false, e),
    }
    // 48: a file the broker creates never gets setuid or setgid bits, whatever
    // mode is asked for (the test checks the file's mode on the host).
    match b.open(&format!("{dir}/out/setid.log"), libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o6755) {
        Ok(_) => p.expect("48 client create with mode 06755 (the host checks the bits)", true, "created"),
        Err(e) => p.expect("48 client create with mode 06755", false, e),
    }

    let lo = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    match b.connect(Proto::Tcp, lo(port(1))) {
        Ok(s) => {
            let got = read_all(s);
            p.expect("client connect to a granted host port reaches the host's server", got == "hello from the host", got);
        }
        Err(e) => p.expect("client connect to a granted host port", false, e),
    }
    p.refused("35 client connect to an ungranted port", b.connect(Proto::Tcp, lo(port(2))), libc::EACCES);
    p.refused("35 client connect, granted port over UDP", b.connect(Proto::Udp, lo(port(1))), libc::EACCES);
    p.refused(
        "35 client connect to ::ffff:127.0.0.1 on an ungranted port",
        b.connect(Proto::Tcp, format!("[::ffff:127.0.0.1]:{}", port(2)).parse().unwrap()),
        libc::EACCES,
    );
    p.refused("35 client connect to 169.254.169.254", b.connect(Proto::Tcp, "169.254.169.254:80".parse().unwrap()), libc::EACCES);
    match b.bind(Proto::Tcp, lo(port(3))) {
        Ok(s) => {
            // SAFETY: getsockname writes one sockaddr_in at a valid pointer.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
            // SAFETY: as above, on the socket we own.
            unsafe { libc::getsockname(s.as_raw_fd(), (&mut sa as *mut libc::sockaddr_in).cast(), &mut len) };
            // SAFETY: listen on our socket.
            let l = unsafe { libc::listen(s.as_raw_fd(), 1) };
            p.expect("client bind of a granted port gives a bound host socket", u16::from_be(sa.sin_port) == port(3) && l == 0, (u16::from_be(sa.sin_port), l));
            // Only a host socket: nothing listens on that port in the service's own namespace.
            let own = std::net::TcpStream::connect(lo(port(3)));
            p.expect("the bound socket lives in the host's namespace, not the service's", own.is_err(), own.map(|_| ()).map_err(|e| e.to_string()));
        }
        Err(e) => p.expect("client bind of a granted port", false, e),
    }
    p.refused("35 client bind of an ungranted port", b.bind(Proto::Tcp, lo(port(2))), libc::EACCES);

    let a = b.getaddrinfo("localhost", Family::Inet);
    p.expect("client getaddrinfo of a granted name", a.as_ref().is_ok_and(|v| v.contains(&"127.0.0.1".parse().unwrap())), a.map_err(|e| e.to_string()));
    p.refused("client getaddrinfo of an ungranted name", b.getaddrinfo("vm", Family::Any), libc::ENOENT);
    p.refused("35 client getaddrinfo of an overlong name", b.getaddrinfo(&"a".repeat(300), Family::Any), libc::EINVAL);
    let pw = b.getpwnam("daemon");
    p.expect("client getpwnam of a granted user", pw.as_ref().is_ok_and(|u| u.uid == 1 && u.name == "daemon"), pw.map_err(|e| e.to_string()));
    p.refused("client getpwnam of an ungranted user", b.getpwnam("root"), libc::ENOENT);
    let gr = b.getgrnam("adm");
    p.expect("client getgrnam of a granted group", gr.as_ref().is_ok_and(|g| g.gid == 4), gr.map_err(|e| e.to_string()));
    p.refused("client getgrnam of an ungranted group", b.getgrnam("root"), libc::ENOENT);
    let s = b.syslog(4, "hello from the client\nFORGED: second line");
    p.expect("client syslog", s.is_ok(), s.map_err(|e| e.to_string()));
    let v = b.sysctl("kernel.ostype");
    p.expect("client sysctl of a granted key", v.as_deref().is_ok_and(|v| v == b"Linux\n"), v.map_err(|e| e.to_string()));
    p.refused("client sysctl of an ungranted key", b.sysctl("kernel.hostname"), libc::EACCES);
    p.refused("client sysctl with a path in it", b.sysctl("../../../etc/shadow"), libc::EACCES);
}

/// `basic DIR`: the explicit protocol wired up by whoever started the service
/// (the daemon's launcher): a granted open, a refused one, a sysctl read.
fn basic(p: &mut Probe, dir: &str) {
    let b = Broker::from_env().expect("CAPEXEC_BROKER_FD names the broker connection");
    let f = b.open(&format!("{dir}/data/readme"), libc::O_RDONLY, 0).map(read_all);
    p.expect("client open of a granted file", f.as_deref().is_ok_and(|s| s == "granted"), f.map_err(|e| e.to_string()));
    p.refused("29 client open outside every grant", b.open(&format!("{dir}/secret"), libc::O_RDONLY, 0), libc::EACCES);
    let v = b.sysctl("kernel.ostype");
    p.expect("client sysctl of a granted key", v.as_deref().is_ok_and(|v| v == b"Linux\n"), v.map_err(|e| e.to_string()));
}

fn send_raw(fd: RawFd, frame: &[u8], fds: &[RawFd]) -> isize {
    let mut iov = libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() };
    let mut cmsg = vec![0u64; 256];
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds);
        // SAFETY: one SCM_RIGHTS header in a 2 KiB buffer (at most 253 fds fit).
        unsafe {
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(bytes as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut RawFd, fds.len());
        }
    }
    // SAFETY: msg points at valid buffers.
    unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
}

/// The errno of the next reply (waiting at most 5 s).
fn reply_errno(fd: RawFd) -> Option<i32> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut pfd, 1, 5000) } != 1 {
        return None;
    }
    let (f, got) = capexec_client::recv(fd).ok()?;
    drop(got);
    wire::decode_reply(&f).ok().map(|(_, _, e, _)| e)
}

/// `frames`: ESCAPE 33, malformed frames on the explicit connection.
fn frames(p: &mut Probe) {
    let fd: RawFd = std::env::var(wire::ENV_FD).unwrap().parse().unwrap();
    let sysctl = Request::Sysctl { key: b"kernel.ostype".to_vec() }.encode(7).unwrap();
    // One answered request first: the broker is serving, so capexec has
    // finished starting the service and closed what it needed for that.
    send_raw(fd, &sysctl, &[]);
    p.expect("a valid request is answered", reply_errno(fd) == Some(0), ());
    wait_for_go("BEFORE");
    send_raw(fd, &[1, 8, 0], &[]);
    p.expect("33 truncated frame gets EPROTO", reply_errno(fd) == Some(libc::EPROTO), ());
    send_raw(fd, &vec![1u8; 3 * wire::MAX_FRAME], &[]);
    p.expect("33 oversized frame gets EMSGSIZE", reply_errno(fd) == Some(libc::EMSGSIZE), ());
    let mut v2 = sysctl.clone();
    v2[0] = 2;
    send_raw(fd, &v2, &[]);
    p.expect("33 wrong version gets EPROTONOSUPPORT", reply_errno(fd) == Some(libc::EPROTONOSUPPORT), ());
    let mut op = sysctl.clone();
    op[1] = 200;
    send_raw(fd, &op, &[]);
    p.expect("33 unknown operation gets EOPNOTSUPP", reply_errno(fd) == Some(libc::EOPNOTSUPP), ());
    send_raw(fd, &sysctl, &[0, 1, 2]);
    p.expect("33 stray SCM_RIGHTS gets EPROTO", reply_errno(fd) == Some(libc::EPROTO), ());
    let many: Vec<RawFd> = vec![0; 250];
    send_raw(fd, &sysctl, &many);
    p.expect("33 more descriptors than the broker takes (MSG_CTRUNC) gets EPROTO", reply_errno(fd) == Some(libc::EPROTO), ());
    // A flood of bad frames, replies read as they come (the broker drops
    // replies the service does not read rather than block).
    let mut answered = 0;
    for i in 0..20000u32 {
        send_raw(fd, &[1, 8, 0, 0], &[]);
        if i % 64 == 63 {
            while {
                let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd, no wait.
                unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
            } {
                if capexec_client::recv(fd).is_ok() {
                    answered += 1;
                }
            }
        }
    }
    println!("flood: {answered} of 20000 bad frames answered");
    // The broker may still be working through the flood, and drops a reply
    // the service's full queue cannot take: a valid request sent now can lose
    // its reply behind the flood's (under load it did, and the probe waited
    // for ever). So ask, with a new id each time, until the reply to one
    // comes, reading every reply as it arrives; then the flood is behind us.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut through = false;
    let mut id = 1000;
    while !through && std::time::Instant::now() < deadline {
        id += 1;
        send_raw(fd, &Request::Sysctl { key: b"kernel.ostype".to_vec() }.encode(id).unwrap(), &[]);
        let ask_again = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !through && std::time::Instant::now() < ask_again {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 100) } == 1 {
                if let Ok((f, _)) = capexec_client::recv(fd) {
                    through = wire::decode_reply(&f).is_ok_and(|(_, got, errno, _)| got == id && errno == 0);
                }
            }
        }
    }
    p.expect("33 after the flood, a valid request is answered", through, ());
    // SAFETY: duplicating our own fd so the Broker handle can own a copy.
    let b = Broker::from_owned(unsafe { OwnedFd::from_raw_fd(libc::dup(fd)) }).unwrap();
    let v = b.sysctl("kernel.ostype");
    p.expect("33 after all that, the broker still answers a valid request", v.as_deref().is_ok_and(|v| v == b"Linux\n"), v.map_err(|e| e.to_string()));
    wait_for_go("AFTER");
}

/// `foreign`: waits while the test sends a request on this service's
/// connection from outside the service (ESCAPE 34), then checks it still works.
fn foreign(p: &mut Probe) {
    wait_for_go("READY");
    let b = Broker::from_env().unwrap();
    let v = b.sysctl("kernel.ostype");
    p.expect("34 the service's own requests still work", v.is_ok(), v.map_err(|e| e.to_string()));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut p = Probe { escaped: 0 };
    match args.get(1).map(String::as_str) {
        Some("grants") => grants(&mut p, &args[2..]),
        Some("basic") => basic(&mut p, &args[2]),
        Some("frames") => frames(&mut p),
        Some("foreign") => foreign(&mut p),
        other => {
            eprintln!("client-probe: unknown case {other:?}");
            std::process::exit(2);
        }
    }
    std::process::exit(if p.escaped == 0 { 0 } else { 1 });
}
