//! The transparent broker (issue 4): `[broker]` grants served for unmodified
//! programs through seccomp user notification, as root and rootless, and the
//! attacks of ESCAPE-CASES.md sections 5 and 6 tried from inside.

use capexec_integration_tests::*;
use std::io::Write;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn probe_under(who: As, unit: &std::path::Path, case: &[&str]) -> String {
    run_probe(who, &["--unit", unit.to_str().unwrap()], case)
}

/// The probe's output when `capexec run` refuses to start it rootless (a
/// declaration that needs the network guard): the run must fail before
/// the probe says anything, `secret` unread.
fn refused_rootless(unit: &std::path::Path, case: &[&str], secret: &str) -> String {
    let mut c = command(As::User);
    c.args(["run", "--unit", unit.to_str().unwrap(), "--"]).arg(probe()).args(case);
    let o = output(c, T);
    let out = text(&o);
    assert!(!o.status.success() && !out.contains("BLOCKED") && !out.contains(secret), "a rootless run must be refused:\n{out}");
    out
}

fn fs_unit(tag: &str, d: &std::path::Path) -> std::path::PathBuf {
    test_unit(
        tag,
        &format!(
            "[[broker.fs]]\npath = \"{0}/data/**\"\nrights = [\"read\"]\n\n[[broker.fs]]\npath = \"{0}/out/*.log\"\nrights = [\"append\", \"create\"]\n\n\
             [seccomp]\nallow = [\"@system-service\", \"seccomp\"]\n",
            d.display()
        ),
    )
}

// 29, 31, 32, 39 and the fs grants themselves: a granted file outside the view
// opens, everything around it does not, and every refusal is logged.
both!(file_grants, |who: As| {
    let d = grant_tree(&format!("fs-{who:?}"));
    let u = fs_unit(&format!("fs-{who:?}"), &d);
    let out = probe_under(who, &u, &["broker-fs", d.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(d.join("out/probe.log")).unwrap(), "line\n", "the append grant wrote nothing");
    // The audit trail: unit, call, argument, and what would allow it.
    assert!(out.contains(&format!("refused by broker: openat(\"{}/data/readme\", O_WRONLY)", d.display())), "no refusal logged:\n{out}");
    assert!(out.contains("widen that grant's rights in [[broker.fs]]"), "{out}");
    assert!(out.contains("link-out") && out.contains("leaves grant"), "symlink refusal not logged:\n{out}");
    // 50: the path the service chose is in the refusal, escaped.
    assert!(out.contains(r"\x1b]0;owned\x07\x1b[2J\u{202e}x") && !out.contains('\x1b') && !out.contains('\u{202e}'), "{out:?}");
});

// 63: the `remove` right. A daemon that removes its pid file and makes it
// anew with O_EXCL (atd, whose file capexec would otherwise bind into the
// view, where it can be written and not removed) does so through its broker
// on the host's file; no other removal follows from the grant: a name the
// pattern does not cover, a directory or symlink it covers, `..`,
// /proc/self/root, AT_REMOVEDIR, a grant without `remove`. Root and rootless.
both!(a_remove_grant_removes_the_granted_file_and_nothing_else, |who: As| {
    let d = grant_tree(&format!("remove-{who:?}"));
    let out_dir = d.join("out");
    std::fs::write(out_dir.join("keep.txt"), "keep").unwrap();
    std::fs::write(out_dir.join("b.pid"), "b").unwrap();
    std::fs::create_dir(out_dir.join("dir.pid")).unwrap();
    std::os::unix::fs::symlink("../secret", out_dir.join("link.pid")).unwrap();
    let u = test_unit(
        &format!("remove-{who:?}"),
        &format!(
            "[[broker.fs]]\npath = \"{0}/out/*.pid\"\nrights = [\"read\", \"write\", \"create\", \"remove\"]\n\n             [[broker.fs]]\npath = \"{0}/data/**\"\nrights = [\"read\"]\n",
            d.display()
        ),
    );
    let out = probe_under(who, &u, &["remove-granted", d.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out_dir.join("a.pid")).unwrap_or_default(), "2\n", "the pid file made anew:\n{out}");
    for kept in ["keep.txt", "b.pid", "dir.pid", "link.pid", "../secret", "../data/readme"] {
        assert!(out_dir.join(kept).symlink_metadata().is_ok(), "{kept} was removed:\n{out}");
    }
    assert!(out.contains("removing a file needs the `remove` right") && out.contains("add \"remove\" to that grant's rights"), "{out}");
    assert!(out.contains("the broker removes regular files only"), "{out}");
});

// 30 and 36: the host swaps the granted file with a symlink to a secret
// (renameat2 RENAME_EXCHANGE) while a thread in the service rewrites the path
// buffer between the granted name and the secret's; no open ever yields the secret.
// The probe keeps opening until the host has swapped SWAPS times while it
// raced, so the race is exercised however busy the machine is.
both!(symlink_and_pointer_races, |who: As| {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const SWAPS: u64 = 2000;
    let d = grant_tree(&format!("race-{who:?}"));
    std::os::unix::fs::symlink("../secret", d.join("data/evil")).unwrap();
    let u = fs_unit(&format!("race-{who:?}"), &d);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swaps = std::sync::Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (a, b) =
            (std::ffi::CString::new(d.join("data/f").to_str().unwrap()).unwrap(), std::ffi::CString::new(d.join("data/evil").to_str().unwrap()).unwrap());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 with two valid paths; RENAME_EXCHANGE swaps them atomically.
                unsafe { libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
                swaps.fetch_add(1, Ordering::Relaxed);
                // No sched_yield here: under EEVDF each yield pushes the
                // thread's deadline a slice further without using its time,
                // and a yield loop beside CPU hogs starves (seen: 2 ticks of
                // CPU in a minute while runnable).
            }
        })
    };
    // Stops the swapper however this test ends, so a failure does not leave it spinning.
    struct Stop(std::sync::Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop);
    let path = d.join("data/f");
    let (mut child, mut out) = interactive_under(who, &u, &probe(), &["broker-race", path.to_str().unwrap(), "granted", "3000"]);
    let mut seen = String::new();
    wait_line(&mut out, "RACING", &mut seen);
    let from = swaps.load(Ordering::Relaxed);
    // Only a hang reaches this bound: thousands of swaps take well under a
    // second on an idle machine and a few seconds on a loaded one.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while swaps.load(Ordering::Relaxed) - from < SWAPS {
        assert!(std::time::Instant::now() < deadline, "the host swapped only {} times in 300 s", swaps.load(Ordering::Relaxed) - from);
        std::thread::sleep(Duration::from_millis(5));
    }
    child.stdin.as_mut().unwrap().write_all(b"enough\n").unwrap();
    let all = finish(child, out, seen);
    drop(_stop);
    swapper.join().unwrap();
    eprintln!("{all}");
});

// 37: SIGALRM every 20 µs interrupts brokered opens, with and without
// SA_RESTART: each open gives the granted file (or EINTR without
// SA_RESTART), restarted syscalls are served again, and neither the probe
// nor the broker (the capexec process) ends with a descriptor more.
both!(signals_interrupting_brokered_calls, |who: As| {
    let d = grant_tree(&format!("sig-{who:?}"));
    let u = fs_unit(&format!("sig-{who:?}"), &d);
    let path = d.join("data/f");
    let (child, out) = interactive_under(who, &u, &probe(), &["broker-signals", path.to_str().unwrap(), "granted", "2000"]);
    eprintln!("{}", broker_fds_unchanged(child, out, |_| {}));
});

// 38: targets killed while the broker may hold their request, and their pids
// reused at once (pid_max lowered to 400 in the service's pid namespace from
// outside): nothing is injected into the process that got the
// pid, the broker never acts on that process's memory (its path would be
// refused and logged), and the broker keeps serving with the same fds.
both!(pid_reuse_after_killed_targets, |who: As| {
    let d = grant_tree(&format!("reuse-{who:?}"));
    let u = fs_unit(&format!("reuse-{who:?}"), &d);
    let (path, decoy) = (d.join("data/f"), d.join("data/link-out"));
    let (child, out) = interactive_under(who, &u, &probe(), &["broker-pid-reuse", path.to_str().unwrap(), decoy.to_str().unwrap(), "40"]);
    let all = broker_fds_unchanged(child, out, |broker| {
        let service = descendant(broker, "escape-probe").expect("the probe runs");
        set_pid_max_in(service, 400).unwrap_or_else(|e| panic!("lower pid_max in the service's pid namespace: {e}"));
    });
    assert!(!all.contains("link-out"), "the broker acted on a recycled pid's memory:\n{all}");
    eprintln!("{all}");
});

// 35 and the net grants: in net = "none", a granted bind and connect happen in
// the host's namespace; everything else is refused and logged.
both!(network_grants, |who: As| {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let _ = s.write_all(b"hello");
        }
    });
    let (granted_bind, ungranted_bind, ungranted_port) = (unused_port(), unused_port(), unused_port());
    let u = test_unit(
        &format!("net-{who:?}"),
        &format!("[namespaces]\nnet = \"none\"\n\n[broker.net]\nbind = [\"tcp:127.0.0.1:{granted_bind}\"]\nconnect = [\"tcp:127.0.0.1:{host_port}\"]\n"),
    );
    let out =
        probe_under(who, &u, &["broker-net", &granted_bind.to_string(), &ungranted_bind.to_string(), &host_port.to_string(), &ungranted_port.to_string()]);
    assert!(out.contains("refused by broker: bind(fd ") && out.contains(&format!("add \"tcp:127.0.0.1:{ungranted_bind}\" to broker.net.bind")), "{out}");
    assert!(out.contains("add \"tcp:169.254.169.254:80\" to broker.net.connect"), "{out}");
});

// A real service refused: memcached asked to listen where no grant allows stops
// with the broker's refusal in its output, naming the grant to add.
#[test]
fn refused_bind_is_logged_with_the_fix() {
    require_root();
    let u = test_unit(
        "mc-refused",
        "[exec]\nargv = [\"/usr/bin/memcached\", \"-p\", \"21299\", \"-U\", \"0\", \"-l\", \"127.0.0.1\"]\nuser = \"memcache\"\n\
         [namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"tcp:127.0.0.1:21298\"]\n",
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&u);
    let o = output(c, T);
    let out = text(&o);
    assert!(!o.status.success(), "memcached ran without its port:\n{out}");
    assert!(out.contains("capexec: mc-refused: refused by broker: bind(fd") && out.contains("add \"tcp:127.0.0.1:21299\" to broker.net.bind"), "{out}");
}

// A missing granted directory stops the start before anything runs.
#[test]
fn missing_grant_directory_is_a_clear_error() {
    require_root();
    let u = test_unit("missing-dir", "[[broker.fs]]\npath = \"/nonexistent/capexec/**\"\nrights = [\"read\"]\n");
    let mut c = command(As::Root);
    c.arg("run").arg("--unit").arg(&u).arg("--").arg("/bin/true");
    let o = output(c, T);
    let out = text(&o);
    assert!(!o.status.success());
    assert!(out.contains("open the directory /nonexistent/capexec of grant `/nonexistent/capexec/**`"), "{out}");
}

// 51: nothing the service does stalls its broker: a FIFO under a tree grant
// is refused without waiting for a writer, an open into a full fd table is
// answered EMFILE, and 80 connects that hang (the granted listener never
// accepts and its queue is full) take a fixed pool and queue, not a thread
// each: the rest get EAGAIN, and the broker's thread count stays small.
both!(the_broker_is_never_stalled, |who: As| {
    let d = grant_tree(&format!("stall-{who:?}"));
    let fifo = std::ffi::CString::new(d.join("data/fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
    // A listener that never accepts, its accept queue filled by the test, so
    // that further SYNs are dropped and connects hang (a backlog of 0 holds one).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // SAFETY: listen on the listener's own fd with a backlog of 0.
    unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), 0) };
    let _fill: Vec<_> = (0..1).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let u = test_unit(
        &format!("stall-{who:?}"),
        &format!(
            "[namespaces]\nnet = \"none\"\n\n[[broker.fs]]\npath = \"{0}/data/**\"\nrights = [\"read\"]\n\n[broker.net]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n",
            d.display()
        ),
    );
    let (mut child, mut out) = interactive_under(who, &u, &probe(), &["broker-stall", d.to_str().unwrap(), &port.to_string()]);
    let mut seen = String::new();
    wait_line(&mut out, "STALLING", &mut seen);
    // The broker is the capexec process: its threads, with 80 connects hanging.
    let threads = std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap().count();
    child.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
    let all = finish(child, out, seen);
    assert!(threads <= 12, "the broker runs {threads} threads with 80 connects hanging:\n{all}");
    eprintln!("{threads} threads\n{all}");
    drop(l);
});

// A connect to the unspecified address (glibc's getaddrinfo does one on a
// datagram socket to learn its source address) is the service's own loopback
// in its own network namespace, as the kernel has it: it succeeds there, and
// the broker logs no refusal; a connect to a host address is still refused.
both!(a_connect_to_the_unspecified_address_stays_in_the_own_namespace, |who: As| {
    let u = test_unit(&format!("unspecified-{who:?}"), "[namespaces]\nnet = \"none\"\n\n[broker.net]\nconnect = [\"tcp:127.0.0.1:9\"]\n");
    let prog = r#"
import socket
for fam, host in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::'), (socket.AF_INET, '192.0.2.1')):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.connect((host, 10050)); print(host, 'connected', s.getsockname()[0])
    except OSError as e:
        print(host, 'refused', e.errno)
"#;
    let mut c = command(who);
    c.args(["run", "--unit", u.to_str().unwrap(), "--", "/usr/bin/python3", "-c", prog]);
    let o = output(c, Duration::from_secs(30));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("0.0.0.0 connected 127.0.0.1\n") && out.contains(":: connected ::1\n"), "{}", text(&o));
    assert!(out.contains("192.0.2.1 refused 13\n"), "{}", text(&o));
    assert!(!err.contains("udp:0.0.0.0:10050") && !err.contains("udp:[::]:10050") && err.contains("udp:192.0.2.1:10050"), "{}", text(&o));
});

// A TCP port the declaration's landlock.bind_tcp lists is the service's to
// bind on its own loopback, in its own network namespace, beside its
// [broker.net] grants (named's control channel, which its `rndc stop`
// reaches): the bind and a connect to it from inside work, the host does
// not reach it, and a loopback bind to a port not listed is refused with a
// fix that names both ways. Rootless, such ports beside host sockets are
// refused at the start: without the network guard a host socket could use
// them on any address.
both!(a_landlock_bind_port_is_the_services_own, |who: As| {
    let (own, other, granted) = (unused_port(), unused_port(), unused_port());
    let u = test_unit(
        &format!("own-bind-{who:?}"),
        &format!("[namespaces]\nnet = \"none\"\n[landlock]\nbind_tcp = [{own}]\nconnect_tcp = [{own}]\n[broker.net]\nbind = [\"tcp:127.0.0.1:{granted}\"]\n"),
    );
    let prog = format!(
        r#"
import socket, sys
l = socket.socket(); l.bind(('127.0.0.1', {own})); l.listen(); print('LISTENING', flush=True)
c = socket.create_connection(('127.0.0.1', {own})); a, _ = l.accept(); a.sendall(b'own'); print('GOT', c.recv(3).decode(), flush=True)
try:
    socket.socket().bind(('127.0.0.1', {other})); print('BOUND OTHER', flush=True)
except OSError as e:
    print('BLOCKED other bind', e.errno, flush=True)
sys.stdin.readline()
"#
    );
    if who == As::User {
        let mut c = command(who);
        c.args(["run", "--unit", u.to_str().unwrap(), "--", "/usr/bin/python3", "-c", &prog]);
        let o = output(c, T);
        assert!(!o.status.success() && text(&o).contains("would run weaker than declared without capexec's network guard"), "{}", text(&o));
        return;
    }
    let (mut child, mut out) = interactive_under(who, &u, std::path::Path::new("/usr/bin/python3"), &["-c", &prog]);
    let mut seen = String::new();
    wait_line(&mut out, "LISTENING", &mut seen);
    wait_line(&mut out, "GOT own", &mut seen);
    wait_line(&mut out, "BLOCKED other bind 13", &mut seen);
    let host = std::net::TcpStream::connect(("127.0.0.1", own));
    assert!(host.is_err(), "the host reached the service's own listener on {own}");
    child.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
    let all = finish(child, out, seen);
    assert!(all.contains(&format!("and landlock.bind_tcp, which would keep it on the service's own loopback, does not list port {other}")), "{all}");
    assert!(!all.contains(&format!("tcp:127.0.0.1:{own}")), "the own port's bind or connect was refused:\n{all}");
});

// A socket that has a port cannot be bound again: the kernel answers EINVAL
// whatever the address, and so does the broker, with nothing refused to
// log. kadmind's RPC layer tries a random reserved port and then port 0 on
// the listener it has bound to 749: both were refused (EACCES) and said at
// each start, and its learning run had granted the reserved port it tried.
// A socket whose connect failed shows the port the kernel took back, and
// may be bound: that bind is checked and done as any other.
both!(a_bound_socket_bound_again_fails_as_the_kernel_says, |who: As| {
    let (port, other, closed) = (unused_port(), unused_port(), unused_port());
    let u = test_unit(
        &format!("rebind-{who:?}"),
        &format!(
            "[namespaces]\nnet = \"none\"\n\n[broker.net]\nbind = [\"tcp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{other}\"]\nconnect = [\"tcp:127.0.0.1:{closed}\"]\n"
        ),
    );
    let prog = format!(
        r#"
import socket
s = socket.socket(); s.bind(('127.0.0.1', {port}))
for p in (603, 0):
    try:
        s.bind(('0.0.0.0', p)); print(p, 'bound')
    except OSError as e:
        print(p, 'errno', e.errno)
s.listen()
try:
    s.bind(('0.0.0.0', 0)); print('listening bound')
except OSError as e:
    print('listening errno', e.errno)
t = socket.socket()
try:
    t.connect(('127.0.0.1', {closed}))
except OSError as e:
    print('connect errno', e.errno)
t.bind(('127.0.0.1', {other})); t.listen(); print('bound after the connect', t.getsockname()[1] == {other})
"#
    );
    let mut c = command(who);
    c.args(["run", "--unit", u.to_str().unwrap(), "--", "/usr/bin/python3", "-c", &prog]);
    let o = output(c, Duration::from_secs(30));
    assert!(o.status.success(), "{}", text(&o));
    let (einval, refused) = (libc::EINVAL, libc::ECONNREFUSED);
    let want = format!("603 errno {einval}\n0 errno {einval}\nlistening errno {einval}\nconnect errno {refused}\nbound after the connect True\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("refused"), "{}", text(&o));
});

// The loopback of a service's own network namespace has capexec's own
// address beside 127.0.0.1, so that getaddrinfo with AI_ADDRCONFIG resolves
// IPv4 addresses there (znc names its listening address so, and could not
// bind it): the granted listener it resolved is the host's. A bind to that
// address, which no grant names, stays in the service's own namespace
// (postfix's loopback-only binds every loopback address it finds), where
// the host does not reach it, with no refusal; another loopback address is
// refused as before.
both!(getaddrinfo_finds_ipv4_in_the_own_namespace, |who: As| {
    let port = unused_port();
    let u = test_unit(&format!("addrconfig-{who:?}"), &format!("[namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"tcp:127.0.0.1:{port}\"]\n"));
    let prog = format!(
        r#"
import socket, sys
ai = socket.getaddrinfo('127.0.0.1', {port}, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG | socket.AI_PASSIVE)
l = socket.socket(); l.bind(ai[0][4]); l.listen()
o = socket.socket(); o.bind(('127.0.0.254', {port})); o.listen()
try:
    socket.socket().bind(('127.0.0.2', {port})); print('BOUND another loopback address', flush=True)
except OSError as e:
    print('BLOCKED another loopback address', e.errno, flush=True)
print('LISTENING', flush=True)
a, _ = l.accept(); a.sendall(b'granted'); a.close()
sys.stdin.readline()
"#
    );
    let (mut child, mut out) = interactive_under(who, &u, std::path::Path::new("/usr/bin/python3"), &["-c", &prog]);
    let mut seen = String::new();
    wait_line(&mut out, "LISTENING", &mut seen);
    let mut got = String::new();
    let read = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| std::io::Read::read_to_string(&mut c, &mut got));
    assert!(read.is_ok() && got == "granted", "the granted listener: {read:?} {got:?}\n{seen}");
    let own = std::net::TcpStream::connect(("127.0.0.254", port));
    assert!(own.is_err(), "the host reached the service's own address");
    child.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
    let all = finish(child, out, seen);
    assert!(all.contains("BLOCKED another loopback address 13") && !all.contains("127.0.0.254"), "{all}");
});

// 46: the host's sockets a net = "none" service holds (a brokered connection,
// a preopened listener) cannot be disconnected and aimed elsewhere: Fast Open
// is refused by the seccomp rule, a connect by the broker (no grant) or by
// Landlock. The witness is a host listener that answers with a secret.
both!(host_sockets_cannot_be_aimed_elsewhere, |who: As| {
    const SECRET: &str = "SECRET-46-host-listener";
    let secret = secret_listener(SECRET);
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let granted = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let _ = s.write_all(b"hello");
        }
    });
    let listen = unused_port();
    let u = test_unit(
        &format!("reuse-{who:?}"),
        &format!(
            "[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"tcp:127.0.0.1:{listen}\"\n\n[broker.net]\nconnect = [\"tcp:127.0.0.1:{granted}\"]\n"
        ),
    );
    let out = probe_under(who, &u, &["host-socket-reuse", &granted.to_string(), &secret.to_string()]);
    assert!(!out.contains(SECRET), "the host listener's secret was read:\n{out}");
    eprintln!("{out}");
});

// 46 for datagrams: the host's UDP sockets a net = "none" service holds (a
// preopened one, one the broker connected to a grant) send to no address but
// the grants and the peers they received from, by any call; the witness is a
// host UDP server that answers with a secret. That is the network guard's
// (cgroup BPF, as root); rootless there is none, and the declaration is
// refused rather than run weaker.
both!(host_udp_sockets_reach_only_grants, |who: As| {
    const SECRET: &str = "SECRET-46-host-udp";
    let secret = udp_answering(SECRET);
    let granted = udp_answering("hello");
    let listen = unused_port();
    let u = test_unit(
        &format!("udp-{who:?}"),
        &format!("[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"udp:127.0.0.1:{listen}\"\n\n[broker.net]\nconnect = [\"udp:127.0.0.1:{granted}\"]\n"),
    );
    let case = ["host-udp".to_owned(), granted.to_string(), secret.to_string()];
    let case: Vec<&str> = case.iter().map(String::as_str).collect();
    match who {
        As::Root => {
            let out = probe_under(who, &u, &case);
            assert!(!out.contains(SECRET), "the host's secret was read:\n{out}");
            assert_eq!(out.matches("BLOCKED 46 control").count(), 2, "the granted server must stay reachable:\n{out}");
            eprintln!("{out}");
            // Without a broker, nothing but the kernel sees the preopened
            // socket's connect and bind.
            let alone = test_unit("udp-alone", &format!("[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"udp:127.0.0.1:{}\"\n", unused_port()));
            let out = probe_under(who, &alone, &["host-udp", "0", &secret.to_string()]);
            assert!(!out.contains(SECRET) && out.contains("BLOCKED 46 connect the preopened"), "the host's secret was read:\n{out}");
        }
        As::User => {
            let out = refused_rootless(&u, &case, SECRET);
            assert!(out.contains("would run weaker than declared without capexec's network guard") && out.contains("help: run it as root"), "{out}");
        }
    }
});

// 62: datagrams a net = "none" service sends without connecting, from UDP
// sockets it made itself in its own network namespace. To a granted host
// address they arrive (sendto, sendmsg, sendmmsg: the broker moves the
// socket to the host); from there to anything else they are refused, and so
// are sends from new sockets to an address nowhere granted, with the fix in
// the trail; to the service's own loopback they stay there. A thread that
// flips the address between the grant and the secret while the broker looks
// gains nothing: the kernel sends the copy it made, and the network guard
// checks that one. As root: rootless such a declaration is refused (46).
#[test]
fn own_udp_sockets_send_to_grants_and_nowhere_else() {
    require_root();
    const SECRET: &str = "SECRET-62-own-udp";
    let secret = udp_answering(SECRET);
    let granted = udp_answering("hello");
    let u = test_unit("own-udp", &format!("[namespaces]\nnet = \"none\"\n\n[broker.net]\nconnect = [\"udp:127.0.0.1:{granted}\"]\n"));
    let out = probe_under(As::Root, &u, &["own-udp", &granted.to_string(), &secret.to_string()]);
    assert!(!out.contains(SECRET) && !out.contains("ESCAPED"), "the host's secret was read:\n{out}");
    assert_eq!(out.matches("BLOCKED 62 control").count(), 3, "the granted server must be reached by each call:\n{out}");
    assert_eq!(out.matches("BLOCKED 62 ").count(), 3 + 2 * 9 + 3, "every refusal must be seen:\n{out}");
    assert!(out.contains("62 race: "), "{out}");
    for call in ["sendto", "sendmsg", "sendmmsg"] {
        let refusal = format!("refused by broker: {call}(fd ");
        assert!(
            out.contains(&refusal)
                && out.contains("udp:192.0.2.1:9): no [broker.net] connect grant covers it; to allow it: add \"udp:192.0.2.1:9\" to broker.net.connect"),
            "{call}:\n{out}"
        );
    }
    eprintln!("{out}");
}

// 46 for datagrams over IPv6: the guard's IPv6 hooks for a preopened socket on
// [::1] and one the broker connected to a grant on [::1], and the IPv4 hooks
// for a v4-mapped destination (the kernel sends that by the IPv4 path). As
// root: rootless such a declaration is refused (above).
#[test]
fn host_udp_sockets_over_ipv6() {
    require_root();
    const SECRET: &str = "SECRET-46-udp6";
    let (secret6, secret4) = (udp_answering_on("[::1]:0", SECRET), udp_answering(SECRET));
    let granted = udp_answering_on("[::1]:0", "hello");
    let u = test_unit(
        "udp6",
        &format!(
            "[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"udp:[::1]:{}\"\n\n[broker.net]\nconnect = [\"udp:[::1]:{granted}\"]\n",
            unused_port()
        ),
    );
    let out = probe_under(As::Root, &u, &["host-udp6", &granted.to_string(), &secret6.to_string(), &secret4.to_string()]);
    assert!(!out.contains(SECRET), "the host's secret was read:\n{out}");
    assert_eq!(out.matches("BLOCKED 46 control").count(), 2, "the granted server must stay reachable:\n{out}");
    assert_eq!(out.matches("BLOCKED 46 send").count(), 12, "every send from both sockets to both secrets:\n{out}");
    eprintln!("{out}");
}

// 64: a datagram that names its own route goes to the route's first hop,
// not to the destination its call named, which the guard's hooks were shown
// and granted: an IPv4 source route in IP_OPTIONS or in an IP_RETOPTS
// control message (out of seccomp's sight), an IPv6 routing header. The
// IPv6 one needs no privilege; the IPv4 ones need CAP_NET_RAW, which this
// service keeps (as root, it is the host's). The witness is a packet socket on lo: no packet with
// the probe's marker may leave, and each send is refused (EPERM), from the
// preopened socket and from ones the broker moved to the host. As root:
// rootless such a declaration is refused (46).
#[test]
fn host_sockets_send_no_source_routed_packets() {
    require_root();
    let granted = udp_answering_on("127.0.0.9:0", "hello");
    let granted6 = udp_answering_on("[::1]:0", "hello");
    let u = test_unit(
        "route",
        &format!(
            "[exec]\nuser = \"root\"\n[capabilities]\nkeep = [\"CAP_NET_RAW\"]\n[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"udp:127.0.0.1:{}\"\n\n\
             [broker.net]\nconnect = [\"udp:127.0.0.9:{granted}\", \"udp:[::1]:{granted6}\"]\n",
            unused_port()
        ),
    );
    let sniffer = LoSniffer::start("ROUTE-64");
    let out = probe_under(As::Root, &u, &["host-route", &granted.to_string(), &granted6.to_string()]);
    let seen = sniffer.stop();
    assert!(seen.is_empty(), "packets that named their own route left, to {seen:?}:\n{out}");
    assert!(!out.contains("ESCAPED"), "{out}");
    assert_eq!(out.matches("BLOCKED 64 control").count(), 2, "the granted addresses must stay reachable:\n{out}");
    assert_eq!(out.matches("BLOCKED 64 ").count(), 2 + 2 * 3 + 1, "every refusal must be seen:\n{out}");
    eprintln!("{out}");
}

// 65: with the host's network (an interface-watching daemon: nmbd, an SSDP
// server) every socket of the service is the host's, and its [broker.net]
// grants are the network guard's to hold on each: datagrams, UDP connects
// and binds, TCP connects whose port Landlock allows, over IPv4 and
// v4-mapped IPv6, reach the grants and nothing else; the granted server's
// reply comes back. Rootless there is no guard, and the declaration is
// refused rather than run weaker.
both!(host_network_holds_its_grants, |who: As| {
    const SECRET: &str = "SECRET-65-host-net";
    let (udp, secret_udp, secret_udp6) = (udp_answering("hello"), udp_answering(SECRET), udp_answering_on("[::1]:0", SECRET));
    let secret_tcp = secret_listener(SECRET);
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = server.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in server.incoming() {});
    let (bind, other, listen) = (unused_port(), unused_port(), unused_port());
    let u = test_unit(
        &format!("host-net-{who:?}"),
        &format!(
            "[namespaces]\nnet = \"host\"\n[landlock]\nconnect_tcp = [{tcp}, {secret_tcp}]\nbind_tcp = [{listen}]\n\n[broker.net]\n\
             connect = [\"udp:127.0.0.1:{udp}\", \"tcp:127.0.0.1:{tcp}\"]\nbind = [\"udp:127.0.0.1:{bind}\", \"tcp:127.0.0.1:{listen}\"]\n"
        ),
    );
    let case: Vec<String> =
        ["host-net".to_owned()].into_iter().chain([udp, secret_udp, tcp, secret_tcp, bind, other, secret_udp6, listen].map(|p| p.to_string())).collect();
    let case: Vec<&str> = case.iter().map(String::as_str).collect();
    match who {
        As::Root => {
            let out = probe_under(who, &u, &case);
            assert!(!out.contains(SECRET), "a secret was read:\n{out}");
            assert_eq!(out.matches("BLOCKED 65 control").count(), 5, "the grants must stay reachable:\n{out}");
            assert_eq!(out.matches("BLOCKED 65 ").count(), 5 + 3 * 4 + 3 + 2 + 2, "every refusal must be seen:\n{out}");
            eprintln!("{out}");
        }
        As::User => {
            let out = refused_rootless(&u, &case, SECRET);
            assert!(
                out.contains("would run weaker than declared without capexec's network guard") && out.contains("its [broker.net] grants are the guard's"),
                "{out}"
            );
        }
    }
});

// 66: a host agent that must see the host's network (its interfaces, as
// vnstat and collectd read them) but should reach no address asks for the
// network guard with no grants (`[broker.net] guard = true`, systemd's
// IPAddressDeny=any). Without it, `net = "host"` with no grants limits TCP
// ports only (Landlock), and UDP not at all. Rootless there is no guard,
// and the declaration is refused rather than run weaker.
both!(host_network_with_no_grants_reaches_nothing, |who: As| {
    const SECRET: &str = "SECRET-66-host-none";
    let (secret_udp, secret_udp6) = (udp_answering(SECRET), udp_answering_on("[::1]:0", SECRET));
    let secret_tcp = secret_listener(SECRET);
    let (other, listen) = (unused_port(), unused_port());
    let u = test_unit(
        &format!("host-none-{who:?}"),
        &format!("[filesystem]\nproc = \"full\"\n[namespaces]\nnet = \"host\"\n[landlock]\nconnect_tcp = [{secret_tcp}]\nbind_tcp = [{listen}]\n\n[broker.net]\nguard = true\n"),
    );
    let case: Vec<String> =
        ["host-net-none".to_owned()].into_iter().chain([secret_udp, secret_tcp, other, secret_udp6, listen].map(|p| p.to_string())).collect();
    let case: Vec<&str> = case.iter().map(String::as_str).collect();
    match who {
        As::Root => {
            let out = probe_under(who, &u, &case);
            assert!(!out.contains(SECRET), "a secret was read:\n{out}");
            assert_eq!(out.matches("BLOCKED 66 control").count(), 2, "the host's network must stay in sight:\n{out}");
            assert_eq!(out.matches("BLOCKED 66 ").count(), 2 + 3 * 4 + 3 + 2 + 2, "every refusal must be seen:\n{out}");
            assert!(out.contains("bind(fd ") && out.contains("no [broker.net] bind grant covers it"), "the broker's TCP bind refusal is said:\n{out}");
            eprintln!("{out}");
        }
        As::User => {
            let out = refused_rootless(&u, &case, SECRET);
            assert!(out.contains("would run weaker than declared without capexec's network guard") && out.contains("with guard = true"), "{out}");
        }
    }
});

// The same under the daemon: its launcher opens the sockets from the
// service's supervisor cgroup, in a helper process when there is no broker.
#[test]
fn host_udp_sockets_under_the_daemon() {
    require_root();
    const SECRET: &str = "SECRET-46-daemon-udp";
    let secret = udp_answering(SECRET);
    let granted = udp_answering("hello");
    let mut d = Daemon::prepare(As::Root, "udp");
    let unit = |args: &str, broker: &str| {
        format!(
            "[exec]\nargv = [\"{}\", \"host-udp\", {args}]\n[filesystem]\nexecutable = [\"{}\"]\n[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"udp:127.0.0.1:{}\"\n{broker}",
            probe().display(),
            shared_dir().display(),
            unused_port()
        )
    };
    d.write_unit("brokered", &unit(&format!("\"{granted}\", \"{secret}\""), &format!("\n[broker.net]\nconnect = [\"udp:127.0.0.1:{granted}\"]\n")));
    d.write_unit("alone", &unit(&format!("\"0\", \"{secret}\""), ""));
    d.start();
    let started = d.ctl(&["start", "brokered", "alone"]);
    assert!(started.status.success(), "{}", text(&started));
    for (name, last) in [("brokered", "46 bind a brokered UDP socket"), ("alone", "46 bind the preopened UDP socket")] {
        let out = d.wait_log(name, last, T);
        assert!(!out.contains(SECRET) && !out.contains("ESCAPED") && out.contains("BLOCKED 46 sendto"), "{name}:\n{out}");
        if name == "brokered" {
            assert_eq!(out.matches("BLOCKED 46 control").count(), 2, "the granted server must stay reachable:\n{out}");
        }
    }
    d.terminate(T);
}

// A service started as root that switches to another user and then binds
// through the broker (named -u bind): the kernel lets the broker read the
// switched process's memory only with CAP_SYS_PTRACE, which the broker
// holds for a service that keeps CAP_SETUID/CAP_SETGID in the host's user
// namespace (Landlock still keeps it to its own domain). Without it every
// such bind read EFAULT.
#[test]
fn the_broker_follows_a_service_that_switched_users() {
    require_root();
    let port = unused_port();
    let script = format!(
        "import socket\\ns = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(4)\\nwhile True:\\n    c, _ = s.accept(); c.sendall(b'switched'); c.close()"
    );
    let u = test_unit(
        "switch-bind",
        &format!(
            "[exec]\nargv = [\"/usr/bin/setpriv\", \"--reuid\", \"65534\", \"--regid\", \"65534\", \"--clear-groups\", \"/usr/bin/python3\", \"-c\", \"{script}\"]\n\
             user = \"root\"\n[capabilities]\nkeep = [\"CAP_SETUID\", \"CAP_SETGID\"]\n[namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"tcp:127.0.0.1:{port}\"]\n"
        ),
    );
    let mut c = command(As::Root);
    c.args(["exec", u.to_str().unwrap()]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let got = if wait_port(port, Duration::from_secs(20)) { tcp_roundtrip(port, b"", "switched").unwrap_or_default() } else { String::new() };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = wait_output(child, Duration::from_secs(20));
    assert!(got.contains("switched"), "the switched service could not bind through the broker: {}", text(&o));
}

// The commands around a program have no broker: `nginx -t` in start_pre
// binds the ports it will listen on, which the service's own Landlock once
// refused (the nginx declaration `capexec learn` mined could not start).
// They may bind their grants' ports in the service's own network
// namespace, which reaches nothing of the host. The program's binds still
// all go to the broker: its granted bind is made on the host, and a bind
// of the granted port on an address the grant does not name is refused.
both!(commands_bind_their_grants_in_their_own_network, |who: As| {
    let port = unused_port();
    let listen = unused_port();
    // And the one host socket it holds (a preopened listener, fd 3) keeps
    // its port: disconnected with connect(AF_UNSPEC), it cannot be bound
    // again to the granted port on another address.
    let pre = format!(
        "import ctypes, socket\n\
         s = socket.socket()\ns.bind(('0.0.0.0', {port}))\ns.listen()\nprint('pre: bound', flush=True)\n\
         host = socket.socket(fileno=3)\n\
         print('pre: disconnected', ctypes.CDLL(None).connect(3, ctypes.create_string_buffer(16), 16), flush=True)\n\
         try:\n    host.bind(('0.0.0.0', {port}))\n    print('pre: rebound the host socket', flush=True)\n\
         except OSError as e:\n    print('pre: host socket not rebound:', e.strerror, flush=True)\n\
         host.detach()"
    );
    let main = format!(
        "import socket\n\
         other = socket.socket()\n\
         try:\n    other.bind(('127.0.0.2', {port}))\n    print('main: bound another address', flush=True)\n\
         except OSError as e:\n    print('main: another address refused:', e.strerror, flush=True)\n\
         s = socket.socket()\n\
         s.bind(('127.0.0.1', {port}))\n\
         s.listen()\n\
         print('main: listening', flush=True)\n\
         c, _ = s.accept()\n\
         c.sendall(b'hello from the service')\n\
         c.close()"
    );
    let u = test_unit(
        &format!("pre-bind-{who:?}"),
        &format!(
            "[exec]\nargv = [\"/usr/bin/python3\", \"-c\", \"\"\"{main}\"\"\"]\n\
             [[exec.start_pre]]\nargv = [\"/usr/bin/python3\", \"-c\", \"\"\"{pre}\"\"\"]\n\
             [[preopen.listen]]\naddress = \"tcp:127.0.0.1:{listen}\"\n\
             [namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"tcp:127.0.0.1:{port}\"]\n"
        ),
    );
    let mut c = command(who);
    c.arg("exec").arg(&u).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let start = std::time::Instant::now();
    let said = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let mut got = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut got);
            break got;
        }
        if start.elapsed() > T {
            let o = wait_output(child, Duration::from_secs(5));
            panic!("the service never listened on the host:\n{}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = wait_output(child, T);
    let out = text(&o);
    assert_eq!(said, "hello from the service", "{out}");
    assert!(o.status.success(), "{out}");
    assert!(out.contains("pre: bound"), "start_pre binds the granted port in the service's network: {out}");
    // The kernel keeps the port (EINVAL); as root the network guard refuses first (EPERM).
    assert!(out.contains("pre: disconnected 0") && out.contains("pre: host socket not rebound"), "a preopened host socket keeps its port: {out}");
    assert!(out.contains("main: another address refused: Permission denied"), "the program keeps the declaration's ports: {out}");
});

// A control socket directly in /run (unbound's /run/unbound.ctl) with a
// `unix:` bind grant: the broker's binder binds the service's own socket at
// that path, which the service could not (Landlock: /run is not its to
// write), in the service's group with the mode the service's umask gives.
// Nothing else in /run can be bound, and the socket cannot be removed or
// changed by the service; capexec removes it before the start (a stale one
// made a daemon fail) and after the stop.
/// Escape case 59, the daemons' way: a `unix:` grant's socket is made
/// under a temporary name beside it and renamed or linked into place (as
/// haproxy's master and supervisord replace theirs, so that clients never
/// find none), all by the binder, since the service cannot write /run.
/// The binder touches the grant's sockets only: a file, a directory or a
/// link of the host's that merely has such a name is neither removed,
/// renamed over, linked nor changed, names in other directories or with
/// other suffixes are the kernel's (refused), and RENAME_EXCHANGE is not
/// done. Nor does it touch another program's socket with such a name: it
/// changes only the temporary names it made itself, and removes those left
/// when the service is gone.
#[test]
fn a_unix_socket_grant_is_replaced_through_temporary_names() {
    require_root();
    let path = format!("/run/capexec-it-{}-tmp.sock", std::process::id());
    let (keep, link, dir, target) =
        (format!("{path}.keep"), format!("{path}.lnk"), format!("{path}.dir"), format!("/run/capexec-it-{}-target", std::process::id()));
    let (left, host) = (format!("{path}.left"), format!("{path}.host"));
    let _scratch = Scratch([&path, &keep, &link, &dir, &target, &left, &host].iter().map(|p| p.into()).collect());
    // Another program's socket whose name is a temporary one of the grant's.
    let host_socket = std::os::unix::net::UnixListener::bind(&host).unwrap();
    std::fs::write(&keep, "the host's").unwrap();
    std::fs::write(&target, "the host's").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::create_dir(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = format!(
        "import os, socket, ctypes\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         P = '{path}'\n\
         def tried(what, f, *a):\n\
         \x20   try:\n        f(*a)\n        print(what, 'ok', flush=True)\n\
         \x20   except OSError as e:\n        print(what, 'refused', e.errno, flush=True)\n\
         def haproxy(pid):\n\
         \x20   tmp, bak = '%s.%d.tmp' % (P, pid), '%s.%d.bak' % (P, pid)\n\
         \x20   tried('unlink tmp', os.unlink, tmp)\n\
         \x20   tried('unlink bak', os.unlink, bak)\n\
         \x20   tried('link bak', os.link, P, bak)\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   s.bind(tmp)\n\
         \x20   s.listen(4)\n\
         \x20   os.rename(tmp, P)\n\
         \x20   tried('unlink bak again', os.unlink, bak)\n\
         \x20   return s\n\
         old = haproxy(101)\n\
         new = haproxy(102)\n\
         old.close()\n\
         print('after haproxy', sorted(n for n in os.listdir('/run') if n.startswith(os.path.basename(P))), flush=True)\n\
         # supervisord: bind P.PID, chmod it, link it to P (after removing a stale P), remove P.PID.\n\
         sup = socket.socket(socket.AF_UNIX)\n\
         sup.bind(P + '.77')\n\
         os.chmod(P + '.77', 0o700)\n\
         tried('link over', os.link, P + '.77', P)\n\
         os.unlink(P)\n\
         os.link(P + '.77', P)\n\
         os.chown(P, -1, -1)\n\
         os.unlink(P + '.77')\n\
         new.close()\n\
         sup.listen(4)\n\
         # A socket left under a temporary name: removed at the stop.\n\
         socket.socket(socket.AF_UNIX).bind('{left}')\n\
         for what, f, a in [\n\
         \x20   ('unlink file', os.unlink, ['{keep}']), ('rename file', os.rename, ['{keep}', P]),\n\
         \x20   ('rename over file', os.rename, [P, '{keep}']), ('link over file', os.link, [P, '{keep}']),\n\
         \x20   ('chmod file', os.chmod, ['{keep}', 0o666]), ('chown file', os.chown, ['{keep}', 0, 0]),\n\
         \x20   ('chmod link', os.chmod, ['{link}', 0o666]), ('unlink link', os.unlink, ['{link}']),\n\
         \x20   ('rename to link', os.rename, [P + '.9', '{link}']), ('rmdir dir', os.rmdir, ['{dir}']),\n\
         \x20   ('rename dir', os.rename, ['{dir}', P + '.dir2']),\n\
         \x20   ('unlink socket', os.unlink, ['{host}']), ('chmod socket', os.chmod, ['{host}', 0o777]),\n\
         \x20   ('chown socket', os.chown, ['{host}', -1, 0]), ('rename socket', os.rename, ['{host}', P]),\n\
         \x20   ('rename over socket', os.rename, [P, '{host}']), ('link socket', os.link, ['{host}', P + '.h2']),\n\
         \x20   ('rename elsewhere', os.rename, [P, '/run/capexec-it-elsewhere']), ('link elsewhere', os.link, [P, '/var/tmp/capexec-it-x']),\n\
         \x20   ('link dotdot', os.link, [P, P + '.x/../../etc/x']), ('rename spelled otherwise', os.rename, ['{left}', P.replace('/run/', '/run/./')]),\n\
         ]:\n\
         \x20   tried(what, f, *a)\n\
         # At most 16 temporary names at once (the left one is the first).\n\
         made = []\n\
         for i in range(20):\n\
         \x20   t = socket.socket(socket.AF_UNIX)\n\
         \x20   try:\n        t.bind('%s.n%d' % (P, i))\n        made.append(t)\n\
         \x20   except OSError as e:\n        print('name', i, 'refused', e.errno, flush=True)\n        break\n\
         for t in made:\n\
         \x20   os.unlink(t.getsockname())\n\
         # renameat2(RENAME_EXCHANGE) of P and the left socket.\n\
         rc = libc.renameat2(-100, P.encode(), -100, '{left}'.encode(), 2)\n\
         print('exchange', rc, ctypes.get_errno(), flush=True)\n\
         print('ready', flush=True)\n\
         c, _ = sup.accept()\n\
         c.sendall(b'from the replaced socket')\n\
         c.close()"
    );
    let u = test_unit(
        "unix-rename",
        &format!("[exec]\nargv = [\"/usr/bin/python3\", \"-c\", \"\"\"{script}\"\"\"]\nuser = \"root\"\n[filesystem]\nread_only = [\"/run\"]\n[broker.net]\nbind = [\"unix:{path}\"]\n"),
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&u).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out_pipe = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out_pipe, &mut line).unwrap_or(0) == 0 {
            let o = wait_output(child, Duration::from_secs(5));
            panic!("the service ended before it was ready:\n{said}\n{}", text(&o));
        }
        said.push_str(&line);
        if line == "ready\n" {
            break;
        }
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket(), "{said}");
    assert_eq!(meta.mode() & 0o777, 0o700, "chmod of the temporary name reached the socket linked into place: {said}");
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut s, &mut got).unwrap();
    assert_eq!(got, "from the replaced socket", "{said}");
    let o = wait_output(child, T);
    let out = format!("{said}{}", text(&o));
    assert!(o.status.success(), "{out}");
    let base = std::path::Path::new(&path).file_name().unwrap().to_str().unwrap().to_owned();
    for ok in ["unlink tmp refused 2", "unlink bak refused 2", "link bak refused 2", "link bak ok", "unlink bak again refused 2", "unlink bak again ok"] {
        assert!(out.contains(ok), "{ok}: {out}");
    }
    assert!(out.contains(&format!("after haproxy ['{base}', '{base}.dir', '{base}.host', '{base}.keep', '{base}.lnk']")), "no temporary name left: {out}");
    assert!(out.contains(&format!("link over refused {}", libc::EEXIST)), "{out}");
    // The host's files with a grant's name: not sockets, so not the binder's
    // to change (EPERM); elsewhere, the kernel's within the view (EROFS).
    for (what, errno) in [
        ("unlink file", libc::EPERM),
        ("rename file", libc::EPERM),
        ("rename over file", libc::EPERM),
        ("link over file", libc::EPERM),
        ("chmod file", libc::EPERM),
        ("chown file", libc::EPERM),
        ("chmod link", libc::EPERM),
        ("unlink link", libc::EPERM),
        ("rename to link", libc::ENOENT),
        ("rmdir dir", libc::EROFS),
        ("rename dir", libc::EPERM),
        ("unlink socket", libc::EPERM),
        ("chmod socket", libc::EPERM),
        ("chown socket", libc::EPERM),
        ("rename socket", libc::EPERM),
        ("rename over socket", libc::EPERM),
        ("link socket", libc::EPERM),
        ("rename elsewhere", libc::EROFS),
        // (Not in the view; no such directory.)
        ("link elsewhere", libc::ENOENT),
        ("link dotdot", libc::ENOENT),
        ("rename spelled otherwise", libc::EROFS),
    ] {
        assert!(out.contains(&format!("{what} refused {errno}\n")), "{what}: {out}");
    }
    assert!(out.contains(&format!("exchange -1 {}", libc::EINVAL)), "{out}");
    assert!(out.contains(&format!("name 15 refused {}", libc::ENOSPC)), "no more than 16 temporary names: {out}");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "the host's");
    assert_eq!(std::fs::metadata(&keep).unwrap().mode() & 0o777, 0o644);
    assert_eq!(std::fs::read_link(&link).unwrap(), std::path::PathBuf::from(&target));
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o600, "chmod through the host's link");
    assert!(std::path::Path::new(&dir).is_dir());
    // Removed once `capexec exec` is gone: the granted socket and the
    // temporary one left, nothing else of the same name.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (std::path::Path::new(&path).exists() || std::path::Path::new(&left).exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!std::path::Path::new(&path).exists() && !std::path::Path::new(&left).exists(), "a socket outlived the service");
    assert!(std::path::Path::new(&keep).exists() && std::path::Path::new(&link).symlink_metadata().is_ok() && std::path::Path::new(&dir).exists());
    let host_meta = std::fs::symlink_metadata(&host).unwrap();
    assert_eq!(host_meta.mode() & 0o777, 0o755, "the other program's socket kept its mode");
    drop(std::os::unix::net::UnixStream::connect(&host).expect("the other program's socket is still its own"));
    drop(host_socket);
}

#[test]
fn a_unix_socket_grant_is_bound_by_the_broker() {
    require_root();
    let path = format!("/run/capexec-it-{}.sock", std::process::id());
    let other = format!("/run/capexec-it-{}-other.sock", std::process::id());
    // The granted path spelled otherwise: the kernel's, so refused.
    let (odd1, odd2) = (path.replace("/run/", "/run//"), path.replace("/run/", "/run/./"));
    let _scratch = Scratch(vec![path.clone().into(), other.clone().into()]);
    // Left by an earlier run: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::path::Path::new(&path).exists());
    let script = format!(
        "import os, socket\n\
         os.umask(0o007)\n\
         for odd in ['{odd1}', '{odd2}']:\n\
         \x20   t = socket.socket(socket.AF_UNIX)\n\
         \x20   try:\n        t.bind(odd)\n        print('odd bound', odd, flush=True)\n\
         \x20   except OSError as e:\n        print('odd refused', e.errno, flush=True)\n\
         import ctypes\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         i = socket.socket(socket.AF_INET)\n\
         un = (1).to_bytes(2, 'little') + b'{path}' + bytes(1)\n\
         rc = libc.bind(i.fileno(), ctypes.create_string_buffer(un, len(un)), len(un))\n\
         print('inet socket', rc, ctypes.get_errno(), flush=True)\n\
         s = socket.socket(socket.AF_UNIX)\n\
         s.bind('{path}')\n\
         mine = {{t.fileno(), i.fileno(), s.fileno(), int(os.environ['CAPEXEC_BROKER_FD'])}}\n\
         held = [f for f in range(3, 1024) if f not in mine and os.path.exists('/proc/self/fd/%d' % f)]\n\
         print('also held', held, flush=True)\n\
         print('name', s.getsockname(), flush=True)\n\
         try:\n    os.chmod('{path}', 0o660)\n    print('chmod ok', flush=True)\n\
         except OSError as e:\n    print('chmod refused', e.errno, flush=True)\n\
         t = socket.socket(socket.AF_UNIX)\n\
         try:\n    t.bind('{other}')\n    print('other bound', flush=True)\n\
         except OSError as e:\n    print('other refused', e.errno, flush=True)\n\
         try:\n    os.rename('{path}', '{other}')\n    print('renamed', flush=True)\n\
         except OSError as e:\n    print('rename refused', e.errno, flush=True)\n\
         s.listen(1)\n\
         c, _ = s.accept()\n\
         c.sendall(b'from the run socket')\n\
         c.close()"
    );
    let u = test_unit(
        "unix-bind",
        &format!("[exec]\nargv = [\"/usr/bin/python3\", \"-c\", \"\"\"{script}\"\"\"]\nuser = \"capexec-test\"\n[filesystem]\nread_only = [\"/run\"]\n[broker.net]\nbind = [\"unix:{path}\"]\n"),
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&u).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let start = std::time::Instant::now();
    let (said, meta) = loop {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&path) {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mut got = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut got);
            break (got, meta);
        }
        if start.elapsed() > T || child.try_wait().unwrap().is_some() {
            let o = wait_output(child, Duration::from_secs(5));
            panic!("the service never listened at {path}:\n{}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = wait_output(child, T);
    let out = text(&o);
    assert_eq!(said, "from the run socket", "{out}");
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("name {path}")), "getsockname names the path asked for: {out}");
    // Root's (the binder's), the service's group, the mode its umask gives;
    // the service may use it, not change it (nor move it out of its name).
    // (EROFS: /run is a read-only mount of the view; Landlock refuses too.)
    assert!(out.contains("chmod refused") && out.contains("rename refused") && out.contains("other refused"), "{out}");
    assert_eq!(out.matches("odd refused").count(), 2, "{out}");
    // A Unix address on an IP socket is no grant's bind (EINVAL, as the kernel says).
    assert!(out.contains(&format!("inet socket -1 {}", libc::EINVAL)), "{out}");
    // Nothing of the broker's or its binder's reaches the service: its
    // stdio, the broker's channel and its own sockets alone.
    assert!(out.contains("also held []"), "{out}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (0, test_user().1), "the socket is root's, in the service's group");
    assert_eq!(meta.mode() & 0o7777, 0o770, "the mode the service's umask gives");
    assert!(!std::path::Path::new(&other).exists());
    // Removed by a helper once `capexec exec` is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&path).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!std::path::Path::new(&path).exists(), "the socket outlived the service");
}
