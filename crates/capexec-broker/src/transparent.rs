//! The transparent broker: answers the syscalls the service's notify filter
//! hands over (open family, bind, connect, listen, addressed sends) for an
//! unmodified program.
//!
//! The rules (docs/broker.md): copy every argument out of the service before
//! looking at it; check ID_VALID after every read and before every effect;
//! perform a granted call itself, from its own copies, and inject the result;
//! let the kernel run (CONTINUE) only calls that are not brokered at all — paths
//! and sockets the service reaches with its own view, Landlock and network
//! namespace — or that the kernel checks again (a datagram from a host socket,
//! which the network guard checks: [`send`]), so that nothing the service
//! changes afterwards gains it anything.

use crate::net;
use crate::open::{clean_absolute, open_granted, remove_granted};
use crate::policy::{self, NetOp};
use crate::{binder, Broker};
use capexec_decl::grants::Proto;
use capexec_sys::notify::{self as remote, Listener, Notif, Waited};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

/// What to tell the kernel about one notification.
enum Answer {
    /// Not brokered: the kernel runs it with the service's own rights.
    Pass,
    Fail(i32),
    Value(i64),
    /// Already answered (ADDFD with SEND, or by a helper thread).
    Done,
    /// The calling thread died or was interrupted: nothing to answer.
    Gone,
}

/// Blocking connects run off the notification thread, on at most this many
/// worker threads...
const CONNECT_WORKERS: usize = 4;
/// ...fed from a queue this long. A service that starts more slow connects
/// at once than both hold gets EAGAIN for the rest (as for a kernel out of
/// local ports), not a broker thread each.
const CONNECT_QUEUE: usize = 64;

/// A blocking connect the broker started for the service on `host` (made
/// non-blocking for it) that did not end at once: once it does, `host` is
/// made blocking again and installed as the service's fd `target`.
struct ConnectJob {
    n: Notif,
    host: OwnedFd,
    target: i32,
    cloexec: bool,
}

/// How long the notification thread waits for a blocking connect to end
/// before it hands it to the pool: loopback and nearby hosts answer within
/// it, and a thread handoff costs more than the wait.
const FAST_CONNECT_MS: i32 = 1;

/// The end of a blocking connect: `host` blocking again (as the service
/// made it), then installed and answered.
fn finish_blocking_connect(l: &Listener, n: Notif, host: OwnedFd, target: i32, cloexec: bool, r: std::io::Result<()>) {
    let r = r.and_then(|()| net::clear_nonblocking(&host));
    install_and_answer(l, n, host, target, cloexec, r);
}

/// The fixed pool that performs blocking connects, started at the first one
/// (most brokered services never connect through the broker).
struct Connector {
    listener: Arc<Listener>,
    tx: std::sync::OnceLock<std::sync::mpsc::SyncSender<ConnectJob>>,
}

impl Connector {
    fn new(listener: &Arc<Listener>) -> Connector {
        Connector { listener: Arc::clone(listener), tx: std::sync::OnceLock::new() }
    }

    fn start_workers(&self) -> std::sync::mpsc::SyncSender<ConnectJob> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ConnectJob>(CONNECT_QUEUE);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..CONNECT_WORKERS {
            let (rx, l) = (Arc::clone(&rx), Arc::clone(&self.listener));
            // Without a worker, queued connects fail below when the queue fills.
            let _ = std::thread::Builder::new().name(format!("broker-connect-{i}")).spawn(move || loop {
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(j) = job else { return };
                let r = net::connect_result(&j.host, -1).unwrap_or(Ok(()));
                finish_blocking_connect(&l, j.n, j.host, j.target, j.cloexec, r);
            });
        }
        tx
    }

    /// Queues the connect, or answers EAGAIN when the queue is full.
    fn submit(&self, job: ConnectJob) -> Answer {
        let id = job.n.id;
        match self.tx.get_or_init(|| self.start_workers()).try_send(job) {
            Ok(()) => Answer::Done,
            Err(_) => {
                let _ = self.listener.fail(id, libc::EAGAIN);
                Answer::Done
            }
        }
    }
}

/// Serves notifications until every process of the service has exited.
pub fn serve(broker: Arc<Broker>, listener: Arc<Listener>) {
    let connector = Connector::new(&listener);
    let mut pidfds = Pidfds::default();
    let mut told = crate::refusals::Told::default();
    loop {
        if told.until_due().is_some_and(|d| d.is_zero()) {
            told.due(&broker);
        }
        let n = match listener.recv_for(told.until_due()) {
            Ok(Waited::Call(n)) => n,
            Ok(Waited::Quiet) => continue,
            Ok(Waited::Gone) => return told.rest(&broker),
            Err(e) => {
                eprintln!("capexec: {}: broker: cannot receive from the seccomp listener: {e}; brokered calls now fail with ENOSYS", broker.unit);
                return told.rest(&broker);
            }
        };
        if let Some(errno) = broker.judge.as_ref().and_then(|j| j.refuses(&n)) {
            told.refuse(&broker, &listener, &n, errno);
            continue;
        }
        let answer = handle(&broker, &listener, &connector, &mut pidfds, n);
        // ENOENT here means the thread went away meanwhile: nothing is left to answer.
        let _ = match answer {
            Answer::Pass => listener.pass_through(n.id),
            Answer::Fail(e) => listener.fail(n.id, e),
            Answer::Value(v) => listener.reply(n.id, v),
            Answer::Done | Answer::Gone => Ok(()),
        };
    }
}

fn handle(b: &Arc<Broker>, l: &Arc<Listener>, c: &Connector, p: &mut Pidfds, n: Notif) -> Answer {
    if let Some(tx) = &b.net_seen {
        watched(tx, l, p, n);
        if !b.brokered.contains(&(n.nr as u32)) {
            // Here only for the summary (Broker::watch_network): the kernel
            // decides, as for any call the broker does not answer.
            return Answer::Pass;
        }
    }
    let a = n.args;
    match n.nr {
        libc::SYS_openat => open(b, l, n, a[1], a[2] as i32, a[3] as u32, "openat"),
        libc::SYS_open => open(b, l, n, a[0], a[1] as i32, a[2] as u32, "open"),
        libc::SYS_creat => open(b, l, n, a[0], libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, a[1] as u32, "creat"),
        libc::SYS_openat2 => openat2(b, l, n),
        libc::SYS_unlink if !b.spec.bind_unix.is_empty() => socket_name_call(b, l, n),
        libc::SYS_unlink => unlink(b, l, n, n.args[0], "unlink"),
        // AT_REMOVEDIR (or a bit the kernel would refuse): never a granted
        // file's removal, the kernel's within the view.
        // (An int: the kernel reads the low half of the register only.)
        libc::SYS_unlinkat if n.args[2] as i32 != 0 => Answer::Pass,
        libc::SYS_unlinkat if !b.spec.bind_unix.is_empty() => socket_name_call(b, l, n),
        libc::SYS_unlinkat => unlink(b, l, n, n.args[1], "unlinkat"),
        libc::SYS_rename
        | libc::SYS_renameat
        | libc::SYS_renameat2
        | libc::SYS_link
        | libc::SYS_linkat
        | libc::SYS_chmod
        | libc::SYS_fchmodat
        | libc::SYS_fchmodat2
        | libc::SYS_chown
        | libc::SYS_lchown
        | libc::SYS_fchownat => socket_name_call(b, l, n),
        libc::SYS_bind => net_call(b, l, c, p, n, NetOp::Bind),
        libc::SYS_connect => net_call(b, l, c, p, n, NetOp::Connect),
        libc::SYS_listen => listen(b, l, p, n),
        libc::SYS_sendto | libc::SYS_sendmsg | libc::SYS_sendmmsg => send(b, l, p, n),
        _ => Answer::Fail(libc::ENOSYS),
    }
}

/// Tells the network summary of a network call: the socket it makes or each
/// address it names, worded as capexec-learn's recorder words those it sees.
fn watched(tx: &std::sync::mpsc::Sender<crate::NetSeen>, l: &Listener, p: &mut Pidfds, n: Notif) {
    let Some(op) = n.net_op() else { return };
    let mut found = Vec::new();
    if op == "socket" {
        found.push(capexec_decl::grants::socket_kind(n.args[0] as i32, n.args[1] as i32));
    } else {
        let addresses = n.addresses();
        if addresses.is_empty() {
            return;
        }
        // The socket's type decides tcp or udp.
        let fd = p.getfd(l, n, n.args[0] as i32).ok();
        let datagram = fd.and_then(|s| capexec_sys::socket::getsockopt_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE).ok()) == Some(libc::SOCK_DGRAM);
        found.extend(addresses.iter().filter_map(|a| capexec_decl::grants::describe_sockaddr(a, datagram)));
    }
    if !l.id_valid(n.id) {
        return;
    }
    let (pid, comm) = (n.process(), n.comm());
    for what in found {
        // The receiver gone (the run is ending) leaves nothing to tell.
        let _ = tx.send(crate::NetSeen { pid, comm: comm.clone(), op, what });
    }
}

fn flag_names(flags: i32) -> String {
    let acc = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let mut s = acc.to_owned();
    for (bit, name) in [(libc::O_CREAT, "O_CREAT"), (libc::O_TRUNC, "O_TRUNC"), (libc::O_APPEND, "O_APPEND"), (libc::O_EXCL, "O_EXCL")] {
        if flags & bit != 0 {
            s.push('|');
            s.push_str(name);
        }
    }
    let rest = flags & !(libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND | libc::O_EXCL | libc::O_CLOEXEC);
    if rest != 0 {
        s.push_str(&format!("|{rest:#o}"));
    }
    s
}

/// The umask of a thread of the service, from /proc/TID/status.
pub(crate) fn umask_of(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok()))
        .unwrap_or(0o022)
}

/// The path a call names at `path_ptr`, copied out of the service: its
/// raw bytes and, when it is absolute and clean, the form grants match.
/// Relative paths start from a directory in the view (the broker never
/// hands out directories), so only an absolute path can name a granted
/// file outside it: `Err(Pass)` for the others, as for a dead caller (Gone).
fn path_arg(l: &Listener, n: Notif, path_ptr: u64) -> Result<(Vec<u8>, String), Answer> {
    let path = remote::read_cstr(n.tid, path_ptr, libc::PATH_MAX as usize).map_err(Answer::Fail)?;
    if !l.id_valid(n.id) {
        return Err(Answer::Gone);
    }
    let clean = clean_absolute(&path).ok_or(Answer::Pass)?;
    Ok((path, clean))
}

fn open(b: &Broker, l: &Listener, n: Notif, path_ptr: u64, flags: i32, mode: u32, call: &str) -> Answer {
    let (path, clean) = match path_arg(l, n, path_ptr) {
        Ok(got) => got,
        Err(a) => return a,
    };
    let shown = || format!("{call}(\"{clean}\", {})", flag_names(flags));
    let (i, grant) = match policy::open(&b.spec, &clean, flags) {
        Ok(Some(g)) => g,
        Ok(None) => return Answer::Pass,
        Err(r) => return refused(b, &shown(), r),
    };
    let mode = if flags & libc::O_CREAT != 0 {
        let umask = umask_of(n.tid);
        // /proc/TID was read: the thread must still be the one that asked.
        if !l.id_valid(n.id) {
            return Answer::Gone;
        }
        policy::create_mode(flags, mode, umask)
    } else {
        0
    };
    // A trailing `/` asks for a directory; keep it so the kernel answers ENOTDIR.
    let dir_slash = path.len() > 1 && path.ends_with(b"/");
    let opened = open_granted(&b.bases[i], grant, &clean, dir_slash, flags, mode);
    let opened = match policy::append_only(flags, grant.rights) {
        true => opened.and_then(|f| b.append_through_pipe(f, flags, &clean)),
        false => opened,
    };
    match opened {
        Ok(fd) => match l.send_fd(n.id, fd.as_raw_fd(), flags & libc::O_CLOEXEC != 0) {
            Ok(_) => Answer::Done,
            Err(e) => install_failed(e),
        },
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            match policy::after_open(errno, grant) {
                Some(r) => refused(b, &shown(), r),
                None => Answer::Fail(errno),
            }
        }
    }
}

/// An unlink of a granted file (the `remove` right): done by the broker
/// beneath the grant's pinned directory. Paths no grant covers, relative
/// ones and those with `..` are the kernel's, within the service's view.
fn unlink(b: &Broker, l: &Listener, n: Notif, path_ptr: u64, call: &str) -> Answer {
    let clean = match path_arg(l, n, path_ptr) {
        Ok((_, clean)) => clean,
        Err(a) => return a,
    };
    let (i, grant) = match policy::remove(&b.spec, &clean) {
        Ok(Some(g)) => g,
        Ok(None) => return Answer::Pass,
        Err(r) => return refused(b, &format!("{call}(\"{clean}\")"), r),
    };
    match remove_granted(&b.bases[i], grant, &clean) {
        Ok(()) => Answer::Value(0),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            match policy::after_remove(errno, grant) {
                Some(r) => refused(b, &format!("{call}(\"{clean}\")"), r),
                None => Answer::Fail(errno),
            }
        }
    }
}

fn openat2(b: &Broker, l: &Listener, n: Notif) -> Answer {
    let size = n.args[3] as usize;
    let want = 24;
    if size < want {
        return Answer::Fail(libc::EINVAL);
    }
    if size > want {
        // A newer struct with fields this broker does not know.
        return Answer::Fail(libc::E2BIG);
    }
    let mut raw = [0u8; 24];
    match remote::read_mem(n.tid, n.args[2], &mut raw) {
        Ok(24) => {}
        _ => return Answer::Fail(libc::EFAULT),
    }
    let word = |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (flags, mode, resolve) = (word(0), word(1), word(2));
    if flags > u32::MAX as u64 || mode > 0o7777 || resolve & !0x3f != 0 {
        return Answer::Fail(libc::EINVAL);
    }
    // RESOLVE_* only ever narrow a lookup, and the broker's own lookup is narrower.
    open(b, l, n, n.args[1], flags as i32, mode as u32, "openat2")
}

fn net_call(b: &Arc<Broker>, l: &Arc<Listener>, c: &Connector, p: &mut Pidfds, n: Notif, op: NetOp) -> Answer {
    let fd = n.args[0] as i32;
    // A socklen_t: the kernel reads the low half of the register, and a
    // caller may leave anything in the high one (mpd's bind did; taken
    // whole, its length looked too long and the bind failed with EINVAL).
    let len = n.args[2] as u32 as usize;
    if len > std::mem::size_of::<libc::sockaddr_storage>() {
        return Answer::Fail(libc::EINVAL);
    }
    let mut buf = vec![0u8; len];
    match remote::read_mem(n.tid, n.args[1], &mut buf) {
        Ok(got) if got == len => {}
        _ => return Answer::Fail(libc::EFAULT),
    }
    if !l.id_valid(n.id) {
        return Answer::Gone;
    }
    if let Some(path) = net::unix_path(&buf).filter(|p| op == NetOp::Bind && b.spec.unix_name(p).is_some()) {
        return unix_bind(b, l, p, n, fd, path);
    }
    let addr = match net::parse_sockaddr(&buf) {
        Ok(Some(a)) => a,
        // A Unix (or other non-IP) address: resolved in the service's own view
        // and network namespace by the kernel, under the service's Landlock.
        Ok(None) => return Answer::Pass,
        Err(e) => return Answer::Fail(e),
    };
    let (svc, info) = match service_socket(l, p, n, fd) {
        Ok(got) => got,
        Err(a) => return a,
    };
    if info.family != libc::AF_INET && info.family != libc::AF_INET6 {
        // An IP address on a non-IP socket: the kernel would refuse it too.
        return Answer::Fail(libc::EINVAL);
    }
    let proto = match info.kind {
        libc::SOCK_STREAM => Proto::Tcp,
        libc::SOCK_DGRAM => Proto::Udp,
        _ => return refused(b, &format!("{}(fd {fd}, {addr})", op.name()), policy::not_tcp_or_udp()),
    };
    // A socket the broker bound, or one listening, has its port for good
    // (an explicit bind locks it): the kernel answers a second bind with
    // EINVAL whatever the address, and so does the broker, with no grant to
    // consult and nothing refused to log. kadmind's RPC layer tries a random
    // reserved port, then port 0, on the listener it has bound to 749: both
    // were refused and said at each start. (getsockname is no test: a
    // socket keeps showing the port a failed connect gave it and lost.)
    if op == NetOp::Bind && (b.bound.contains(&svc) || net::is_listening(&svc).unwrap_or(false)) {
        return Answer::Fail(libc::EINVAL);
    }
    // A bound TCP socket is remembered for `listen`.
    let remember = |fd: &OwnedFd, r: &std::io::Result<()>| {
        if op == NetOp::Bind && proto == Proto::Tcp && r.is_ok() {
            b.bound.insert(fd);
        }
    };
    if let Some(ports) = &b.host_bind {
        // net = "host": only binds come here, and the socket is the host's.
        if op != NetOp::Bind || info.netns != b.host_netns {
            return Answer::Fail(libc::EINVAL);
        }
        if proto == Proto::Udp {
            // Only TCP sockets listen, and the broker may hold a capability
            // the service lacks on the host (CAP_NET_BIND_SERVICE for its TCP
            // ports): a UDP bind is the kernel's, with the service's own rights.
            return Answer::Pass;
        }
        // Under the host's network the [broker.net] grants are the network
        // guard's, which does not see this bind (the broker's own).
        let granted = || if b.spec.guards_net() { policy::net(&b.spec, op, proto, addr).map(drop) } else { Ok(()) };
        if let Err(r) = policy::host_bind(ports, addr).and_then(|()| granted()) {
            let shown = capexec_decl::grants::NetGrant::exact(proto, addr);
            return refused(b, &format!("bind(fd {fd}, {shown})"), r);
        }
        let r = do_op(&svc, addr, info.family, op);
        remember(&svc, &r);
        return finish(r);
    }
    let own_ns = info.netns != b.host_netns;
    // The address only its own namespace's loopback has (OWN_ADDRESS), even
    // where a grant covers it: bound there by the broker, on the service's
    // socket, as a connect to its own loopback is (the service's own Landlock
    // domain may lack the TCP port; the broker's has those of its grants).
    if own_ns && op == NetOp::Bind && capexec_decl::grants::canonical(addr.ip()) == std::net::IpAddr::V4(capexec_decl::grants::OWN_ADDRESS) {
        return finish(do_op(&svc, addr, info.family, op));
    }
    if let Err(mut r) = policy::net(&b.spec, op, proto, addr) {
        let ip = capexec_decl::grants::canonical(addr.ip());
        // A stream socket bound on every address with a port the kernel
        // picks, in the service's own namespace, listens on its own loopback
        // alone (varnish binds one to read the kernel's TCP defaults): the
        // same as a loopback bind with port 0, below.
        let own_any = op == NetOp::Bind && proto == Proto::Tcp && addr.port() == 0 && ip.is_unspecified();
        // A connect to the unspecified address is one to this host's
        // loopback, the kernel says; in its own namespace, the service's own.
        // glibc's getaddrinfo connects a datagram socket so to learn the
        // source address it would use (zabbix-agent at each start): no
        // refusal to log.
        let own_host = op == NetOp::Connect && ip.is_unspecified();
        if own_ns && (ip.is_loopback() || own_any || own_host) {
            // The service's own loopback, in its own namespace: nothing of the
            // host is reachable there. A connect is done on its socket with the
            // broker's copy. A bind to a port the kernel picks is for the
            // service's own processes (only they learn the port: squid and its
            // helpers talk over such pairs): the service's own bind goes on,
            // under its own Landlock domain, which allows TCP port 0 in its own
            // namespace (the broker's does not); so does one to a TCP port
            // its landlock.bind_tcp lists, which its domain allows too (a
            // control channel for its own commands). A bind to another fixed
            // port is refused: a service that listens where no client can
            // reach it is a declaration to fix, so it is logged.
            let own_port = proto == Proto::Tcp && b.own_bind.contains(&addr.port());
            match op {
                NetOp::Connect => return finish(do_op(&svc, addr, info.family, op)),
                NetOp::Bind if addr.port() == 0 || (own_port && ip.is_loopback()) => return Answer::Pass,
                // The fix stays the one allowance `capexec denials --propose`
                // applies; the other way is said in the why.
                NetOp::Bind if proto == Proto::Tcp && ip.is_loopback() => {
                    r.why = format!("{}, and landlock.bind_tcp, which would keep it on the service's own loopback, does not list port {}", r.why, addr.port());
                }
                NetOp::Bind => {}
            }
        }
        let shown = capexec_decl::grants::NetGrant::exact(proto, addr);
        return refused(b, &format!("{}(fd {fd}, {shown})", op.name()), r);
    }
    if !own_ns {
        // Already a host socket from an earlier brokered call (a UDP socket that
        // is bound and then connected, say): act on it directly.
        let r = do_op(&svc, addr, info.family, op);
        remember(&svc, &r);
        return finish(r);
    }
    // A blocking connect is started without blocking (see below).
    let fast_connect = op == NetOp::Connect && !info.nonblocking;
    let host = match net::host_socket(&svc, &info, fast_connect) {
        Ok(h) => h,
        Err(e) => return Answer::Fail(e.raw_os_error().unwrap_or(libc::EIO)),
    };
    let cloexec = net::fd_cloexec(n.tid, fd);
    if fast_connect {
        // A blocking connect can take minutes; the service's thread waits
        // anyway, but the broker must keep answering its other threads. So it
        // starts without blocking; what does not end within FAST_CONNECT_MS
        // goes to the pool, which waits for it.
        let r = match net::connect(&host, addr, info.family) {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => match net::connect_result(&host, FAST_CONNECT_MS) {
                Some(r) => r,
                None => return c.submit(ConnectJob { n, host, target: fd, cloexec }),
            },
            r => r,
        };
        finish_blocking_connect(l, n, host, fd, cloexec, r);
        return Answer::Done;
    }
    let r = do_op(&host, addr, info.family, op);
    remember(&host, &r);
    install_and_answer(l, n, host, fd, cloexec, r);
    Answer::Done
}

/// A datagram that names its destination (sendto, sendmsg, sendmmsg) on a
/// UDP socket the service made in its own network namespace, where only its
/// own loopback is: to a host address a connect grant covers, the broker
/// moves the socket to the host's namespace, as a connect would (a new host
/// socket with the same options in place of the service's fd), and lets the
/// kernel send it from there. That CONTINUE is not a decision on memory the
/// service may change: the kernel sends from its own copy of the message,
/// with the service's credentials, and the network guard checks that copy's
/// address on every send of every host socket of the service (a declaration
/// with UDP grants does not run without the guard: netguard::require_guard).
/// Changing the address after the broker looked can only be refused there.
/// The broker performing the send instead would block its thread on a full
/// socket and send the service's control messages with its own privileges.
///
/// A socket already in the host's namespace, or one not UDP, is the
/// kernel's (and the guard's); so are sends to the service's own loopback.
/// A send to any other address no grant covers is refused here, with the
/// fix, where the kernel would have answered ENETUNREACH.
fn send(b: &Broker, l: &Listener, p: &mut Pidfds, n: Notif) -> Answer {
    let fd = n.args[0] as i32;
    // A truncated or malformed address is the kernel's to refuse, in the
    // service's own namespace.
    let named: Vec<SocketAddr> = n.addresses().iter().filter_map(|a| net::parse_sockaddr(a).ok().flatten()).collect();
    if named.is_empty() {
        return Answer::Pass;
    }
    if !l.id_valid(n.id) {
        return Answer::Gone;
    }
    let (svc, info) = match service_socket(l, p, n, fd) {
        Ok(got) => got,
        Err(a) => return a,
    };
    let own_udp = info.netns != b.host_netns && info.kind == libc::SOCK_DGRAM && (info.family == libc::AF_INET || info.family == libc::AF_INET6);
    if !own_udp {
        return Answer::Pass;
    }
    let mut to_host = false;
    for addr in named {
        let ip = capexec_decl::grants::canonical(addr.ip());
        match policy::net(&b.spec, NetOp::Connect, Proto::Udp, addr) {
            Ok(_) => to_host = true,
            Err(_) if ip.is_loopback() || ip.is_unspecified() => {}
            Err(r) => {
                let call = match n.nr {
                    libc::SYS_sendto => "sendto",
                    libc::SYS_sendmsg => "sendmsg",
                    _ => "sendmmsg",
                };
                return refused(b, &format!("{call}(fd {fd}, {})", capexec_decl::grants::NetGrant::exact(Proto::Udp, addr)), r);
            }
        }
    }
    if !to_host {
        return Answer::Pass;
    }
    let host = match net::host_socket(&svc, &info, false) {
        Ok(h) => h,
        Err(e) => return Answer::Fail(e.raw_os_error().unwrap_or(libc::EIO)),
    };
    match l.replace_fd(n.id, host.as_raw_fd(), fd, net::fd_cloexec(n.tid, fd)) {
        Ok(()) => Answer::Pass,
        Err(e) => install_failed(e),
    }
}

/// A bind of the service's Unix socket to a `bind_unix` grant's path or a
/// temporary name beside it: the binder binds that very socket (the
/// broker's copy of it) there, in a directory the service cannot write
/// (see [`crate::binder`]).
fn unix_bind(b: &Broker, l: &Listener, p: &mut Pidfds, n: Notif, fd: i32, path: &[u8]) -> Answer {
    let (Some((index, name)), Some(binder)) = (b.spec.unix_name(path), &b.binder) else {
        return Answer::Fail(libc::EACCES);
    };
    let (svc, info) = match service_socket(l, p, n, fd) {
        Ok(got) => got,
        Err(a) => return a,
    };
    if info.family != libc::AF_UNIX {
        // A Unix address on another socket: the kernel would refuse it too.
        return Answer::Fail(libc::EINVAL);
    }
    let umask = umask_of(n.tid);
    // /proc/TID was read: the thread must still be the one that asked.
    if !l.id_valid(n.id) {
        return Answer::Gone;
    }
    finish(binder.ask(index, binder::Op::Bind { name, umask }, Some(&svc)))
}

/// A rename, link, unlink, chmod or chown whose names are all those of
/// one `unix:` bind grant (its path or a temporary name beside it, byte
/// for byte), for a service with such grants: done by the binder, since
/// the service cannot write their directory. haproxy binds `P.PID.tmp`
/// and renames it over P, keeping the old P as a link `P.PID.bak`
/// meanwhile; supervisord binds `P.PID`, chmods it, links it to P and
/// removes it. Any other name is the kernel's, within the view; an unlink
/// may still be a `remove` grant's.
fn socket_name_call(b: &Broker, l: &Listener, n: Notif) -> Answer {
    let a = n.args;
    // Which arguments are paths.
    let at: &[usize] = match n.nr {
        libc::SYS_rename | libc::SYS_link => &[0, 1],
        libc::SYS_renameat | libc::SYS_renameat2 | libc::SYS_linkat => &[1, 3],
        libc::SYS_unlink | libc::SYS_chmod | libc::SYS_chown | libc::SYS_lchown => &[0],
        _ => &[1],
    };
    // A path that cannot be read is no grant's: the kernel answers it.
    let Ok(raw) = at.iter().map(|&i| remote::read_cstr(n.tid, a[i], libc::PATH_MAX as usize)).collect::<Result<Vec<_>, _>>() else {
        return Answer::Pass;
    };
    if !l.id_valid(n.id) {
        return Answer::Gone;
    }
    let names: Vec<(usize, &[u8])> = raw.iter().filter_map(|p| b.spec.unix_name(p)).collect();
    let (Some(binder), Some(&(index, first))) = (&b.binder, names.first()) else { return not_a_socket_name(b, l, n) };
    if names.len() != raw.len() || names.iter().any(|(i, _)| *i != index) {
        return not_a_socket_name(b, l, n);
    }
    let second = names.get(1).map_or(&b""[..], |n| n.1);
    // The kernel reads each int, mode and id from the low half.
    let op = match n.nr {
        libc::SYS_rename | libc::SYS_renameat => binder::Op::Rename { from: first, to: second, flags: 0 },
        libc::SYS_renameat2 => binder::Op::Rename { from: first, to: second, flags: a[4] as u32 },
        libc::SYS_linkat if a[4] as i32 & !(libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) != 0 => return Answer::Fail(libc::EINVAL),
        libc::SYS_link | libc::SYS_linkat => binder::Op::Link { from: first, to: second },
        libc::SYS_unlink | libc::SYS_unlinkat => binder::Op::Unlink { name: first },
        // The socket is root's (the binder's): a service of another user
        // may use it, not change it, as the kernel would decide.
        libc::SYS_chmod | libc::SYS_fchmodat | libc::SYS_fchmodat2 | libc::SYS_chown | libc::SYS_lchown | libc::SYS_fchownat if fsuid_of(n.tid) != Some(0) => {
            return Answer::Pass
        }
        libc::SYS_chmod => binder::Op::Chmod { name: first, mode: a[1] as u32 },
        libc::SYS_fchmodat | libc::SYS_fchmodat2 => binder::Op::Chmod { name: first, mode: a[2] as u32 },
        libc::SYS_chown | libc::SYS_lchown => binder::Op::Chown { name: first, uid: a[1] as u32, gid: a[2] as u32 },
        _ => binder::Op::Chown { name: first, uid: a[2] as u32, gid: a[3] as u32 },
    };
    // /proc/TID was read for a chmod or chown: the thread must still be the one that asked.
    if !l.id_valid(n.id) {
        return Answer::Gone;
    }
    finish(binder.ask(index, op, None))
}

/// A call of [`socket_name_call`]'s whose names are not a grant's socket:
/// an unlink may be a `remove` grant's, the rest are the kernel's.
fn not_a_socket_name(b: &Broker, l: &Listener, n: Notif) -> Answer {
    match n.nr {
        libc::SYS_unlink => unlink(b, l, n, n.args[0], "unlink"),
        libc::SYS_unlinkat => unlink(b, l, n, n.args[1], "unlinkat"),
        _ => Answer::Pass,
    }
}

/// The filesystem uid of thread `tid` (the fourth `Uid:` field).
fn fsuid_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(3)?.parse().ok()
}

/// pidfds of the service's threads that made brokered calls, kept for the
/// next call of the same thread (a connect or bind would otherwise open and
/// close one each time). A pidfd names one task for its whole life: once that
/// task has exited, every use fails with ESRCH, and its thread id can name
/// another task only after that. So a cached pidfd that still works belongs
/// to the thread that sent the notification.
#[derive(Default)]
struct Pidfds(std::collections::VecDeque<(u32, OwnedFd)>);

impl Pidfds {
    /// Threads remembered; the oldest is dropped beyond this.
    const MAX: usize = 32;

    /// The caller's copy of `fd` in the notifying thread's fd table.
    fn getfd(&mut self, l: &Listener, n: Notif, fd: i32) -> Result<OwnedFd, Answer> {
        let fail = |e: std::io::Error| Answer::Fail(e.raw_os_error().unwrap_or(libc::EBADF));
        if let Some(i) = self.0.iter().position(|(tid, _)| *tid == n.tid) {
            match remote::pidfd_getfd(&self.0[i].1, fd) {
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => drop(self.0.remove(i)),
                r => return r.map_err(fail),
            }
        }
        let Ok(pidfd) = remote::pidfd_open(n.tid) else { return Err(Answer::Gone) };
        // The thread id named the notifying thread when the pidfd was opened.
        if !l.id_valid(n.id) {
            return Err(Answer::Gone);
        }
        let got = remote::pidfd_getfd(&pidfd, fd).map_err(fail)?;
        if self.0.len() >= Self::MAX {
            self.0.pop_front();
        }
        self.0.push_back((n.tid, pidfd));
        Ok(got)
    }
}

/// The broker's own copy of the service's socket `fd` (the same socket:
/// whatever the service's fd number names later, this stays the socket the
/// broker checked), and what it is.
fn service_socket(l: &Listener, p: &mut Pidfds, n: Notif, fd: i32) -> Result<(OwnedFd, net::SockInfo), Answer> {
    let svc = p.getfd(l, n, fd)?;
    let info = net::sock_info(&svc).map_err(|e| Answer::Fail(e.raw_os_error().unwrap_or(libc::ENOTSOCK)))?;
    Ok((svc, info))
}

/// A `listen()`, performed by the broker on its own copy of the socket, so
/// that the socket checked is the socket that listens (the service could make
/// the fd number name another one in between). A TCP socket in the host's
/// network namespace must be one the broker bound or one already listening
/// (see [`net::BoundSockets`] and `ServiceSpec::brokers_listen`). Every other socket
/// listens as it would have without the broker.
fn listen(b: &Broker, l: &Listener, p: &mut Pidfds, n: Notif) -> Answer {
    let fd = n.args[0] as i32;
    let (svc, info) = match service_socket(l, p, n, fd) {
        Ok(got) => got,
        Err(a) => return a,
    };
    let ip = info.family == libc::AF_INET || info.family == libc::AF_INET6;
    // A listening socket stays on its port: every listener got it from an
    // explicit bind (here, by capexec, or by systemd), which fixes it.
    if ip && info.kind == libc::SOCK_STREAM && info.netns == b.host_netns && !b.bound.contains(&svc) && !net::is_listening(&svc).unwrap_or(false) {
        return refused(b, &format!("listen(fd {fd})"), policy::listen_unbound(b.host_bind.is_some()));
    }
    // The kernel takes the backlog as an int.
    finish(net::listen(&svc, n.args[1] as i32))
}

/// Logs the refusal of `call` and answers with its errno.
fn refused(b: &Broker, call: &str, r: policy::Refusal) -> Answer {
    b.refused(call, &r.why, &r.fix);
    Answer::Fail(r.errno)
}

/// ADDFD failed. ENOENT: the calling thread died or was interrupted, and
/// there is nothing left to answer. Anything else (EMFILE: the service's fd
/// table is full; EBADF) leaves the syscall waiting for an answer, which is
/// that error: a brokered call is always answered.
fn install_failed(e: std::io::Error) -> Answer {
    match e.raw_os_error() {
        Some(libc::ENOENT) | None => Answer::Gone,
        Some(errno) => Answer::Fail(errno),
    }
}

fn do_op(fd: &OwnedFd, addr: SocketAddr, family: i32, op: NetOp) -> std::io::Result<()> {
    match op {
        NetOp::Bind => net::bind(fd, addr, family),
        NetOp::Connect => net::connect(fd, addr, family),
    }
}

fn finish(r: std::io::Result<()>) -> Answer {
    match r {
        Ok(()) => Answer::Value(0),
        Err(e) => Answer::Fail(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// Puts the host socket in place of the service's fd and answers. A connect in
/// progress (EINPROGRESS) is installed too: the service polls it as its own.
fn install_and_answer(l: &Listener, n: Notif, host: OwnedFd, target: i32, cloexec: bool, r: std::io::Result<()>) {
    let errno = r.err().map(|e| e.raw_os_error().unwrap_or(libc::EIO));
    if errno.is_some_and(|e| e != libc::EINPROGRESS) {
        let _ = l.fail(n.id, errno.unwrap_or(libc::EIO));
        return;
    }
    if let Err(e) = l.replace_fd(n.id, host.as_raw_fd(), target, cloexec) {
        if let Answer::Fail(errno) = install_failed(e) {
            let _ = l.fail(n.id, errno);
        }
        return;
    }
    let _ = match errno {
        Some(e) => l.fail(n.id, e),
        None => l.reply(n.id, 0),
    };
}
