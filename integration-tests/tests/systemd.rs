//! `capexec exec` as systemd's ExecStart=, with the test playing systemd (PID 1
//! here is not systemd): listening sockets handed in as LISTEN_FDS for the
//! process's own LISTEN_PID, a NOTIFY_SOCKET to listen on, WATCHDOG_USEC and a
//! CREDENTIALS_DIRECTORY. The escape probe's `systemd` case is the service.

use capexec_integration_tests::*;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Reads one line from a connection to `port`.
fn answer(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// What arrives on systemd's side of NOTIFY_SOCKET within `timeout`, until a
/// message contains `last`.
fn notifications(sock: &UnixDatagram, last: &str, timeout: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let end = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = m.contains(last);
            got.push(m);
            if done {
                break;
            }
        }
    }
    got
}

both!(socket_activation_notify_watchdog_and_credentials, |who: As| {
    let tag = format!("systemd-{who:?}");
    let dir = shared_dir().join(&tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o755);
    let (uid, gid) = match who {
        As::Root => (0, 0),
        As::User => test_user(),
    };
    let chown = |p: &std::path::Path| std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();

    // systemd's side of NOTIFY_SOCKET.
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    set_mode(&notify_path, 0o666);
    // The credentials systemd would have written for the unit's user (capexec's).
    let creds = dir.join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("token"), "s3cret").unwrap();
    set_mode(&creds.join("token"), 0o400);
    chown(&creds.join("token"));
    set_mode(&creds, 0o500);
    chown(&creds);
    // Two sockets systemd listens on for the unit, and one the declaration preopens.
    let web = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    let (web_port, admin_port, own_port) = (web.local_addr().unwrap().port(), admin.local_addr().unwrap().port(), unused_port());
    let unit = test_unit(
        &tag,
        &format!(
            "[exec]\nargv = [\"{probe}\", \"systemd\"]\n[filesystem]\nexecutable = [\"{shared}\"]\n[namespaces]\nnet = \"none\"\n\n\
             [[preopen.listen]]\naddress = \"tcp:127.0.0.1:{own_port}\"\nname = \"own\"\nenv = \"PROBE\"\n\n[broker]\nsysctl = [\"kernel.ostype\"]\n\n[service]\ntype = \"notify\"\n",
            probe = probe().display(),
            shared = shared_dir().display()
        ),
    );

    // systemd execs ExecStart= with LISTEN_PID set to that process's pid:
    // `exec` from sh keeps the pid that $$ names.
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg("LISTEN_PID=$$ WATCHDOG_PID=$$ exec \"$0\" exec \"$1\"").arg(capexec()).arg(&unit);
    c.env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "web:admin")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "30000000")
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("CAPEXEC_LOG", "warn");
    if who == As::User {
        c.uid(uid).gid(gid).env("HOME", "/").current_dir("/");
    }
    let (a, b) = (web.as_raw_fd(), admin.as_raw_fd());
    // SAFETY: only fcntl and dup2 between valid fds, async-signal-safe, in the forked child.
    unsafe {
        c.pre_exec(move || {
            // Through copies above 4 first: dup2 of an fd onto itself (web
            // already at 3, which happens when the other test variant has
            // just closed its fds) keeps its close-on-exec flag, and capexec
            // then found fd 3 closed (seen under load); and one source could
            // sit where the other goes.
            let (a, b) = (libc::fcntl(a, libc::F_DUPFD_CLOEXEC, 10), libc::fcntl(b, libc::F_DUPFD_CLOEXEC, 10));
            if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let capexec_pid = child.id();

    let before = notifications(&notify, "STATUS=reloaded", Duration::from_secs(30));
    if !before.iter().any(|m| m.contains("STATUS=reloaded")) {
        // Say why instead of timing out on the sockets next.
        let o = output_of(child, Duration::from_secs(5));
        panic!("no STATUS=reloaded within 30 s (got {before:?}):\n{}", text(&o));
    }
    let served = [answer(web_port), answer(admin_port), answer(own_port)];
    let after = notifications(&notify, "STOPPING=1", Duration::from_secs(20));
    let o = output_of(child, Duration::from_secs(30));
    let out = text(&o);

    // Socket activation: systemd's two first (3, 4, with their names), then the preopen.
    assert_eq!(served, ["fd 3 name web\n", "fd 4 name admin\n", "fd 5 name own\n"], "{out}");
    assert!(out.contains("LISTEN_FDS=3 LISTEN_FDNAMES=web:admin:own LISTEN_PID-is-mine=true"), "{out}");
    // The per-socket variable and the broker's fd come after systemd's sockets.
    assert!(out.contains("CAPEXEC_BROKER_FD=6"), "{out}");
    assert!(out.contains("WATCHDOG_USEC=30000000"), "{out}");
    // Credentials: readable, and read-only.
    assert!(out.contains("credential token=\"s3cret\""), "{out}");
    assert!(out.contains("BLOCKED credentials write") && out.contains("BLOCKED credentials overwrite"), "{out}");
    assert!(!out.contains("ESCAPED"), "{out}");
    // Notifications: relayed in order, MAINPID is capexec (the process systemd
    // started and that exits with the service), FDSTORE is not relayed.
    let main = format!("MAINPID={capexec_pid}");
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    assert_eq!(
        all,
        [
            format!("STATUS=probing\nREADY=1\n{main}"),
            "WATCHDOG=1".to_owned(),
            "RELOADING=1\nMONOTONIC_USEC=1".to_owned(),
            format!("READY=1\nSTATUS=reloaded\n{main}"),
            "STOPPING=1".to_owned(),
        ],
        "{out}"
    );
    // The exit status is the service's.
    assert_eq!(o.status.code(), Some(7), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
});

/// LISTEN_FDS meant for another process (LISTEN_PID is not capexec's) is
/// ignored, as sd_listen_fds does, and never reaches the service.
#[test]
fn listen_fds_for_another_pid_are_ignored() {
    require_root();
    let u = test_unit("systemd-other-pid", "[exec]\nargv = [\"/bin/sh\", \"-c\", \"echo fds=[$LISTEN_FDS] pid=[$LISTEN_PID]\"]\n");
    let mut c = command(As::Root);
    c.arg("exec").arg(&u).env("LISTEN_FDS", "1").env("LISTEN_PID", "1");
    let o = output(c, Duration::from_secs(30));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("fds=[] pid=[]"), "{}", text(&o));
}

/// Under a NOTIFY_SOCKET, a declaration that is not `type = "notify"` is
/// ready once its program runs: capexec says READY=1 for it, so the template
/// unit can be Type=notify for every declaration; the service itself gets no
/// NOTIFY_SOCKET.
#[test]
fn a_simple_service_is_announced_ready_once_it_runs() {
    require_root();
    let dir = shared_dir().join("systemd-simple");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let u = test_unit("systemd-simple", "[exec]\nargv = [\"/bin/sh\", \"-c\", \"echo started notify=[$NOTIFY_SOCKET]\"]\n");
    let mut c = command(As::Root);
    c.arg("exec").arg(&u).env("NOTIFY_SOCKET", &notify_path);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id();
    let got = notifications(&notify, "READY=1", Duration::from_secs(20));
    let o = output_of(child, Duration::from_secs(20));
    assert_eq!(got, [format!("READY=1\nMAINPID={pid}")], "{}", text(&o));
    assert!(o.status.success(), "{}", text(&o));
    // It is not given a socket to speak on (NotifyAccess=main in effect).
    assert!(String::from_utf8_lossy(&o.stdout).contains("started notify=[]"), "{}", text(&o));
}

/// Without systemd (`capexec exec` on a terminal, or a script), a notify
/// service still gets a NOTIFY_SOCKET that takes its messages, as under the
/// daemon: collectd daemonizes where it finds none (a fork, setsid and a pid
/// file in /run, which its declaration does not let it write) and stopped.
#[test]
fn a_notify_service_has_a_socket_to_speak_on_without_systemd() {
    let u = test_unit(
        "notify-alone",
        "[exec]\nargv = [\"/usr/bin/python3\", \"-c\", \"\"\"\nimport os, socket\n\
         p = os.environ.get('NOTIFY_SOCKET')\n\
         print('socket', bool(p), flush=True)\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.sendto(b'READY=1', p if p[0] != '@' else '\\\\0' + p[1:])\n\
         print('sent READY=1', flush=True)\n\"\"\"]\n\n[service]\ntype = \"notify\"\n",
    );
    for who in [As::Root, As::User] {
        let mut c = command(who);
        c.arg("exec").arg(&u).env_remove("NOTIFY_SOCKET");
        let o = output(c, Duration::from_secs(30));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && out.contains("socket True") && out.contains("sent READY=1"), "{who:?}: {}", text(&o));
    }
}

/// A notify service may name another process its main one (MAINPID=), as a
/// daemon that replaces itself does (gdnsd's reload): under `capexec exec`
/// the service goes on with that process once the first one exits, and its
/// exit status is the successor's. Before, the first process's exit ended
/// the service, and the successor with it. With and without a broker (whose
/// filter confines `capexec exec` itself, and must let it answer init).
#[test]
fn a_notify_service_goes_on_with_the_main_process_it_names() {
    let script = "[exec]\nargv = [\"/usr/bin/python3\", \"-c\", \"\"\"\nimport os, socket, time\n\
         p = os.environ['NOTIFY_SOCKET']\n\
         addr = p if p[0] != '@' else '\\\\0' + p[1:]\n\
         r, w = os.pipe()\n\
         if os.fork() == 0:\n\
         \x20   s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         \x20   s.sendto(b'MAINPID=%d\\\\nREADY=1' % os.getpid(), addr)\n\
         \x20   os.write(w, b'x')\n\
         \x20   time.sleep(1)\n\
         \x20   print('successor done', flush=True)\n\
         \x20   os._exit(7)\n\
         os.read(r, 1)\n\
         print('first exits', flush=True)\n\"\"\"]\n\n[service]\ntype = \"notify\"\n";
    for (name, extra) in [("main-named", ""), ("main-named-brokered", "\n[broker]\nsysctl = [\"kernel.ostype\"]\n")] {
        let u = test_unit(name, &format!("{script}{extra}"));
        for who in [As::Root, As::User] {
            let mut c = command(who);
            c.arg("exec").arg(&u).env_remove("NOTIFY_SOCKET");
            let o = output(c, Duration::from_secs(30));
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.contains("first exits") && out.contains("successor done"), "{name} {who:?}: {}", text(&o));
            assert_eq!(o.status.code(), Some(7), "{name} {who:?}: the successor's status: {}", text(&o));
        }
    }
}

fn output_of(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let end = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}
