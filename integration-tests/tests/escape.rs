//! ESCAPE-CASES.md sections 1-4 (and 44): each attack is tried from inside
//! `capexec run` with default options, as root and as the unprivileged test
//! user. The escape probe reports every attempt; any `ESCAPED` line fails.

use capexec_integration_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn write_unit(name: &str, body: &str) -> std::path::PathBuf {
    let dir = shared_dir().join("escape-units");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.join(format!("{name}.svc"));
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn as_root() {
                ($body)(As::Root);
            }
            #[test]
            fn as_user() {
                ($body)(As::User);
            }
        }
    };
}

// 1, 2, 4, 5, 6: filesystem view, read-only system, devices, /proc, cgroups.
both!(filesystem, |who| {
    run_probe(who, &[], &["fs"]);
});

// 5 again with the full /proc: /proc/sys read-only, kcore and sysrq-trigger masked.
both!(filesystem_full_proc, |who| {
    let u = write_unit("fullproc", "[filesystem]\nproc = \"full\"\n");
    run_probe(who, &["--unit", u.to_str().unwrap()], &["fs"]);
});

// 5 with the full /proc for a service running as root, who owns the
// host-wide files there: /proc/irq (interrupt affinities, written with no
// capability) is read-only too, as /proc/sys is.
#[test]
fn filesystem_full_proc_as_root() {
    require_root();
    let u = write_unit("fullproc-root", "[exec]\nuser = \"root\"\n[filesystem]\nproc = \"full\"\n");
    let out = run_probe(As::Root, &["--unit", u.to_str().unwrap()], &["fs"]);
    assert!(out.contains("BLOCKED 5 write /proc/irq/default_smp_affinity: Read-only file system"), "{out}");
}

// 3, 11: identity, capabilities, securebits, no_new_privs.
both!(identity_and_capabilities, |who| {
    run_probe(who, &[], &["identity"]);
});

// 7, 8, 9, 10, 13: namespaces, mounts, setns, and the privileged syscalls.
both!(privileged_syscalls, |who| {
    run_probe(who, &[], &["privileged"]);
});

// 14-20: filter integrity (x32, i386, io_uring, clone3, unknown numbers, threads,
// fork, ptrace, process_vm_*, TIOCSTI/TIOCLINUX with and without upper bits).
both!(seccomp_integrity, |who| {
    run_probe(who, &[], &["seccomp"]);
});

// 21, 22, 28: host processes, the namespace init, /proc/1/{root,mem,exe,fd}.
both!(processes, |who| {
    let me = std::process::id().to_string();
    run_probe(who, &[], &["processes", &me]);
});

// 12: a setuid-root binary gains nothing (nosuid mounts and no_new_privs).
both!(setuid_binary_gains_nothing, |who| {
    let dst = shared_dir().join(format!("id-setuid-{who:?}"));
    std::fs::copy("/usr/bin/id", &dst).unwrap();
    nix::unistd::chown(&dst, Some(0.into()), Some(0.into())).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut c = command(who);
    c.args(["run", "--"]).arg(&dst).arg("-u");
    let o = output(c, T);
    let euid = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(euid, "0", "a setuid-root binary ran with euid 0 inside the sandbox");
});

// 23: only declared fds survive, even when capexec is started with extra ones.
fn with_extra_fds(mut c: std::process::Command) -> std::process::Command {
    let f = std::fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: in the forked child before exec: duplicate an fd we own onto 7 and 9
    // without CLOEXEC, as a careless parent process would leave them.
    unsafe {
        c.pre_exec(move || {
            // Through a copy above 9: were `raw` 7 or 9 already, dup2 onto
            // itself would keep its close-on-exec flag.
            let high = libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 10);
            if high < 0 || libc::dup2(high, 7) < 0 || libc::dup2(high, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

both!(inherited_fds, |who| {
    let mut c = with_extra_fds(command(who));
    c.args(["run", "--"]).arg(probe()).args(["fds", "0,1,2"]);
    let o = output(c, T);
    assert!(o.status.success() && !text(&o).contains("ESCAPED"), "{}", text(&o));
});

both!(inherited_fds_with_preopen, |who| {
    let mut c = with_extra_fds(command(who));
    c.args(["run", "--preopen-listen", "tcp:127.0.0.1:0", "--"]).arg(probe()).args(["fds", "0,1,2,3"]);
    let o = output(c, T);
    assert!(o.status.success() && !text(&o).contains("ESCAPED"), "{}", text(&o));
});

// 24: a read-only preopened fd cannot be reopened for writing via /proc/self/fd.
both!(reopen_readonly_fd, |who| {
    let f = shared_dir().join(format!("ro-file-{who:?}"));
    std::fs::write(&f, "data").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let u = write_unit(&format!("reopen-{who:?}"), &format!("[[preopen.file]]\npath = \"{}\"\nmode = \"read\"\n", f.display()));
    run_probe(who, &["--unit", u.to_str().unwrap()], &["reopen"]);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "data");
});

// 2: writing through a preopened directory: it is read-only in the view (a
// read-only detached copy) and for Landlock.
both!(landlock_blocks_writes_through_preopened_dir, |who| {
    let d = shared_dir().join(format!("pre-dir-{who:?}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("readme"), "hello").unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(d.join("readme"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let u = write_unit(&format!("predir-{who:?}"), &format!("[[preopen.directory]]\npath = \"{}\"\n", d.display()));
    run_probe(who, &["--unit", u.to_str().unwrap()], &["preopen-dir-write"]);
    assert!(!d.join("capexec-escape-file").exists());
});

// 47: a preopened directory gives exactly its subtree as the view shows it:
// `..` (also through /proc/self/fd, O_PATH and fchdir) leads nowhere, a mask
// declared inside it holds through the fd, and a read-only path nested in a
// preopened read-write one stays read-only (runc's CVE-2024-21626 pattern).
both!(preopened_directory_is_its_subtree, |who: As| {
    const SECRET: &str = "SECRET-47-beside-the-preopen";
    let d = shared_dir().join(format!("pre-escape-{who:?}"));
    let _ = std::fs::remove_dir_all(&d);
    for sub in ["data/sub", "data/hidden", "out/conf"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    for (f, text) in [("secret", SECRET), ("data/readme", "granted"), ("data/hidden/file", SECRET), ("out/conf/settings", "keep")] {
        std::fs::write(d.join(f), text).unwrap();
        set_mode(&d.join(f), 0o666);
    }
    for sub in ["", "data", "data/sub", "data/hidden", "out", "out/conf"] {
        set_mode(&d.join(sub), 0o777);
    }
    let u = write_unit(
        &format!("pre-escape-{who:?}"),
        &format!(
            "[filesystem]\nread_write = [\"{0}/out\"]\nread_only = [\"{0}/out/conf\"]\ninaccessible = [\"{0}/data/hidden\"]\n\n\
             [[preopen.directory]]\npath = \"{0}/data\"\n\n[[preopen.directory]]\npath = \"{0}/out\"\n",
            d.display()
        ),
    );
    let out = run_probe(who, &["--unit", u.to_str().unwrap()], &["preopen-escape"]);
    assert!(!out.contains("SECRET"), "a secret was read through a preopened directory:\n{out}");
    assert_eq!(std::fs::read_to_string(d.join("out/conf/settings")).unwrap(), "keep");
    assert!(!d.join("out/conf/new").exists());
});

fn host_listeners(tag: &str) -> (std::net::TcpListener, std::os::unix::net::UnixListener, std::os::unix::net::UnixListener, String, String) {
    use std::os::linux::net::SocketAddrExt;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = shared_dir().join(format!("host-{tag}.sock"));
    let _ = std::fs::remove_file(&path);
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let name = format!("capexec-it-{}-{tag}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let abs = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    (tcp, unix, abs, path.display().to_string(), name)
}

// 25 with net = none: nothing on the host is reachable.
both!(network_none, |who: As| {
    let (tcp, _u, _a, path, name) = host_listeners(&format!("none-{who:?}"));
    let port = tcp.local_addr().unwrap().port().to_string();
    run_probe(who, &[], &["net-none", &port, &path, &name]);
});

// 25, a host path socket in the view: a declaration that shows all of /run
// (tor's imported unit writes it) would show the host's control sockets, and
// Landlock has no rule for connecting to one. Such sockets (here where
// docker's and cri-o's would be; systemd's private socket, the system bus,
// the users' runtime directories alike) are masked unless named; one named
// is reached. As root and as a user, through /run and /var/run, read-only
// and writable.
#[test]
fn host_control_sockets_stay_out_of_a_view_of_run() {
    require_root();
    let crio = std::path::Path::new("/run/crio");
    assert!(!crio.exists() && !std::path::Path::new("/run/docker.sock").exists(), "this test plays docker and cri-o: neither may run here");
    std::fs::create_dir(crio).unwrap();
    let listeners: Vec<_> = ["/run/docker.sock", "/run/crio/crio.sock"]
        .iter()
        .map(|p| {
            let l = std::os::unix::net::UnixListener::bind(p).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
            l
        })
        .collect();
    const CONNECT: &str = "import socket, sys\nfor p in sys.argv[1:]:\n    s = socket.socket(socket.AF_UNIX)\n    try:\n        s.connect(p); print('ESCAPED: connected to', p)\n    except OSError as e:\n        print('BLOCKED', p, e.errno)\n";
    let mut outs = Vec::new();
    for who in [As::Root, As::User] {
        for (flag, dir) in [("--ro", "/run"), ("--rw", "/run"), ("--ro", "/var/run")] {
            let mut c = command(who);
            c.args(["run", flag, dir, "--", "/usr/bin/python3", "-c", CONNECT, "/run/docker.sock", "/var/run/crio/crio.sock"]);
            outs.push((format!("{who:?} {flag} {dir}"), output(c, T)));
        }
        // Named, it is the declaration's to give.
        let mut c = command(who);
        c.args(["run", "--ro", "/run", "--ro", "/run/docker.sock", "--", "/usr/bin/python3", "-c", CONNECT, "/run/docker.sock"]);
        outs.push((format!("{who:?} named"), output(c, T)));
    }
    drop(listeners);
    let _ = std::fs::remove_file("/run/docker.sock");
    let _ = std::fs::remove_dir_all(crio);
    for (how, o) in &outs {
        let out = String::from_utf8_lossy(&o.stdout);
        if how.ends_with("named") {
            assert!(out.contains("ESCAPED: connected to /run/docker.sock"), "{how}: the named socket was not reached:\n{}", text(o));
        } else {
            assert!(out.matches("BLOCKED").count() == 2 && !out.contains("ESCAPED"), "{how}:\n{}", text(o));
        }
    }
}

// 25 with net = host: abstract sockets still scoped, TCP only on declared ports.
both!(network_host, |who: As| {
    let (tcp, _u, _a, _path, name) = host_listeners(&format!("host-{who:?}"));
    let port = tcp.local_addr().unwrap().port().to_string();
    run_probe(who, &["--net", "host", "--bind-tcp", "45001"], &["net-host", &port, &name, "45002"]);
});

// 45: under net = host, the paths to a TCP port that Landlock's connect rule
// does not see (MPTCP, other IP protocols, TCP Fast Open in sendto, sendmsg
// and sendmmsg, TCP_FASTOPEN_CONNECT) reach no ungranted port: the host
// listener's secret never shows up in what the probe read.
both!(network_host_paths_beside_connect, |who: As| {
    const SECRET: &str = "SECRET-45-host-listener";
    let port = secret_listener(SECRET);
    let out = run_probe(who, &["--net", "host", "--connect-tcp", "45003"], &["net-paths", &port.to_string()]);
    assert!(!out.contains(SECRET), "the host listener's secret was read:\n{out}");
});

// 52: under net = host, listen() on a TCP socket with no port of its own
// (never bound, or its connect failed) would bind a random port on every
// address; the broker refuses it and listens on sockets it bound itself. As
// `capexec run`, and as a unit of the daemon.
both!(listen_needs_a_bound_port, |who: As| {
    let (refusing, bindable) = (unused_port().to_string(), unused_port().to_string());
    let out = run_probe(who, &["--net", "host", "--connect-tcp", &refusing, "--bind-tcp", &bindable], &["net-listen", &refusing, &bindable]);
    assert!(out.contains("refused by broker: listen(fd") && out.contains("bind the socket to a port in landlock.bind_tcp"), "no refusal logged:\n{out}");
    let (refusing, bindable) = (unused_port().to_string(), unused_port().to_string());
    let rest = format!("[namespaces]\nnet = \"host\"\n[landlock]\nconnect_tcp = [{refusing}]\nbind_tcp = [{bindable}]\n");
    let out = probe_in_daemon(who, "listen", "", &["net-listen", &refusing, &bindable], &rest, "listen() again changes the backlog");
    assert!(!out.contains("ESCAPED") && out.matches("BLOCKED 52 listen()").count() == 3, "{out}");
});

// 52: binding for the service (to know which sockets may listen) gives it
// nothing its own rights do not: a UDP bind of a low port stays refused
// though the broker may hold CAP_NET_BIND_SERVICE for the declared TCP port.
both!(host_binds_through_the_broker_give_nothing_more, |who: As| {
    run_probe(who, &["--net", "host", "--bind-tcp", "1021", "--cap", "net_bind_service"], &["udp-bind", "1019"]);
});

/// Runs the escape probe with `case` as the unit `name` of a fresh daemon
/// run by `who`: `exec` goes at the top of the unit's `[exec]`, `rest` after
/// the sections the probe needs. Waits until the unit's log holds `last`,
/// stops the daemon (and with it the service and its broker) and returns the log.
fn probe_in_daemon(who: As, name: &str, exec: &str, case: &[&str], rest: &str, last: &str) -> String {
    let mut d = Daemon::prepare(who, &format!("{name}-{who:?}"));
    let argv: Vec<String> = std::iter::once(probe().display().to_string()).chain(case.iter().map(|s| s.to_string())).collect();
    d.write_unit(name, &format!("[exec]\n{exec}argv = {argv:?}\n[filesystem]\nexecutable = [\"{}\"]\n\n{rest}", shared_dir().display()));
    d.start();
    let started = d.ctl(&["start", name]);
    assert!(started.status.success(), "{}", text(&started));
    let out = d.wait_log(name, last, T);
    d.terminate(T);
    out
}

/// A fresh directory `tag` in the shared directory holding `names`, each
/// with `contents`, that anyone may write (the service runs as another user).
fn open_files(tag: &str, names: &[&str], contents: &str) -> std::path::PathBuf {
    let d = shared_dir().join(tag);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    set_mode(&d, 0o777);
    for f in names {
        std::fs::write(d.join(f), contents).unwrap();
        set_mode(&d.join(f), 0o666);
    }
    d
}

// 53: `append` means append-only. A preopened file in append mode and a file
// under an `append` grant reach the service as a pipe its broker copies to
// the file, so nothing the service does to its fd (ftruncate, clearing
// O_APPEND and pwrite, pwritev2 RWF_NOAPPEND, lseek, fallocate, a reopen
// through /proc) changes what the file held. As `capexec run` and as a unit
// of the daemon.
both!(append_means_append_only, |who: As| {
    let files = |tag: &str| {
        let d = open_files(&format!("append-{tag}-{who:?}"), &["pre.log", "granted.log"], "kept\n");
        let decl = format!(
            "[[preopen.file]]\npath = \"{0}/pre.log\"\nmode = \"append\"\n\n[[broker.fs]]\npath = \"{0}/granted.log\"\nrights = [\"append\"]\n",
            d.display()
        );
        (d, decl)
    };
    let holds = |d: &std::path::Path| {
        let want = "kept\nfirst\nlast\n";
        let start = std::time::Instant::now();
        // The broker's relay writes after the service did: wait for it.
        while ["pre.log", "granted.log"].iter().any(|f| std::fs::read_to_string(d.join(f)).unwrap() != want) && start.elapsed() < T {
            std::thread::sleep(Duration::from_millis(20));
        }
        for f in ["pre.log", "granted.log"] {
            assert_eq!(std::fs::read_to_string(d.join(f)).unwrap(), want, "{f} was changed other than by appending");
        }
    };
    let (d, decl) = files("run");
    let u = write_unit(&format!("append-{who:?}"), &decl);
    run_probe(who, &["--unit", u.to_str().unwrap()], &["append-only", &d.join("granted.log").display().to_string()]);
    holds(&d);

    let (d, decl) = files("daemon");
    let granted = d.join("granted.log").display().to_string();
    let out = probe_in_daemon(who, "append", "", &["append-only", &granted], &decl, "write to a brokered append open after the attacks");
    assert!(!out.contains("ESCAPED"), "{out}");
    holds(&d);
});

// 54: under memory_deny_write_execute, host files outside the view that the
// service may read and write (a preopened read-write file, a read+write
// grant) on a mount without noexec cannot be mapped executable after code
// was written into them: they are opened through a noexec copy of their
// mount (in a helper's namespaces when rootless). As `capexec run` and as a
// unit of the daemon.
both!(mdwe_covers_writable_host_files, |who: As| {
    let files = |tag: &str| {
        let d = open_files(&format!("mdwe-{tag}-{who:?}"), &["pre.bin", "granted.bin"], "");
        let grants = format!(
            "[[preopen.file]]\npath = \"{0}/pre.bin\"\nmode = \"read-write\"\n\n[[broker.fs]]\npath = \"{0}/granted.bin\"\nrights = [\"read\", \"write\"]\n",
            d.display()
        );
        (d, grants)
    };
    let (d, grants) = files("run");
    let u = write_unit(&format!("mdwe-files-{who:?}"), &format!("[exec]\nmemory_deny_write_execute = true\n\n{grants}"));
    run_probe(who, &["--unit", u.to_str().unwrap()], &["mdwe-files", &d.join("granted.bin").display().to_string()]);
    // The host sees what the service wrote: the same files.
    for f in ["pre.bin", "granted.bin"] {
        assert_eq!(std::fs::read(d.join(f)).unwrap(), [0xc3u8; 16], "{f}");
    }

    let (d, grants) = files("daemon");
    let granted = d.join("granted.bin").display().to_string();
    let exec = "memory_deny_write_execute = true\n";
    let out = probe_in_daemon(who, "mdwe", exec, &["mdwe-files", &granted], &grants, "54 execveat a brokered read-write open");
    assert!(!out.contains("ESCAPED") && out.matches("BLOCKED 54 map").count() == 2, "{out}");
});

// 48: no setuid or setgid bits by chmod or at creation (RestrictSUIDSGID=).
both!(no_setuid_or_setgid_files, |who| {
    run_probe(who, &[], &["setid"]);
});

// 51: a fork bomb meets the service's own task limit (RLIMIT_NPROC in its user
// namespace), the default one and one set with --tasks, not the host's.
both!(fork_bomb_meets_the_task_limit, |who: As| {
    run_probe(who, &[], &["fork-bomb", "4096"]);
    run_probe(who, &["--tasks", "40"], &["fork-bomb", "40", "fork"]);
});

// 49: under memory_deny_write_execute nothing written at run time runs: no
// memfd (whose contents could be mapped or executed from a mount without
// noexec), no executable SysV attach, no mprotect to executable.
both!(memory_deny_write_execute_closes_memfd_and_shm, |who: As| {
    let u = write_unit(&format!("mdwe-{who:?}"), "[exec]\nmemory_deny_write_execute = true\n");
    let out = run_probe(who, &["--unit", u.to_str().unwrap()], &["memfd-exec"]);
    assert!(!out.contains("memfd mapped executable: yes"), "{out}");
});

// 26: AF_PACKET and raw sockets.
both!(packet_and_raw_sockets, |who| {
    run_probe(who, &[], &["sockets"]);
    run_probe(who, &["--net", "host"], &["sockets"]);
});

// 26 where the kernel would allow a raw socket: a root service that keeps
// CAP_NET_RAW in the host's user namespace, with network guard grants. A raw
// UDP or TCP socket builds its own headers, which no connect or sendmsg hook
// of the guard sees; the protocol rule let it through.
#[test]
fn raw_sockets_with_net_raw_kept_on_the_host() {
    require_root();
    let u = write_unit(
        "raw-kept",
        "[exec]\nuser = \"root\"\n[namespaces]\nuser = false\nnet = \"host\"\n\
         [capabilities]\nkeep = [\"CAP_NET_RAW\"]\n[broker.net]\nconnect = [\"udp:127.0.0.1:53\"]\n",
    );
    let out = run_probe(As::Root, &["--unit", u.to_str().unwrap()], &["sockets"]);
    // The capability is there: without the rule the kernel would say yes.
    assert!(out.contains("CapEff:\t0000000000002000"), "{out}");
}

// 26 and 46 for `[broker.net] ping`: ping sockets (SOCK_DGRAM of ICMP and
// ICMPv6) reach the granted addresses and no other, by sendto, sendmsg,
// sendmmsg or connect; and the UDP socket that ping connects to a granted
// address to learn its source address sends nothing, by send, write or
// sendmmsg (the network guard's packet check).
#[test]
fn ping_grants_reach_their_addresses_only() {
    require_root();
    let ns = ping_net("paths");
    let probe_under = |name: &str, net: &str| {
        let u = write_unit(name, &format!("[namespaces]\nnet = \"host\"\n[broker.net]\n{net}\n"));
        let _in = ns.enter_this_thread();
        let mut c = command(As::Root);
        c.args(["run", "--unit", u.to_str().unwrap(), "--"]).arg(probe()).args(["ping-paths", "127.0.0.1", "::1", "10.77.0.1", "fd77::1"]);
        output(c, T)
    };
    let o = probe_under("ping-paths", "ping = [\"127.0.0.1\", \"::1\"]");
    let out = text(&o);
    assert!(!out.contains("ESCAPED") && out.matches("BLOCKED").count() >= 20 && o.status.success(), "{out}");
    // Without the grant, no ping socket at all.
    let o = probe_under("ping-none", "guard = true");
    assert!(text(&o).contains("ESCAPED a ping socket for 127.0.0.1 is made (positive control): fd -1"), "{}", text(&o));
    // Where the host lets no one make ping sockets (a new network
    // namespace has the kernel's "1 0"), check says so and how to fix it.
    let closed = NetNs::new(&format!("capexec-it-noping-{}", std::process::id()));
    let u =
        write_unit("ping-closed", "[exec]\nargv = [\"/usr/bin/ping\", \"127.0.0.1\"]\n[namespaces]\nnet = \"host\"\n[broker.net]\nping = [\"127.0.0.1\"]\n");
    let o = {
        let _in = closed.enter_this_thread();
        let mut c = command(As::Root);
        c.arg("check").arg(&u);
        output(c, T)
    };
    assert!(o.status.success() && text(&o).contains("ping_group_range is \"1 0\"; set it to include the group"), "{}", text(&o));
}

// Debian's ping under a ping grant, as a monitoring daemon runs it: the
// granted addresses answer; another is refused, and the refusal says which
// key to add it to.
#[test]
fn ping_runs_under_a_ping_grant() {
    require_root();
    let ns = ping_net("ping");
    // exec for the refusal, for its denial trail of the guard's refusals;
    // run for the others. `bind_tcp = [0]`: no broker (a brokered exec's
    // reader, forked at the start, once missed the guard's refusal under
    // load; see the issue's note), the guard holding every bind anyway.
    let ping = |how: &str, to: &str| {
        let body = format!(
            "[exec]\nargv = [\"/usr/bin/ping\", \"-n\", \"-c1\", \"-W5\", \"{to}\"]\n[namespaces]\nnet = \"host\"\n\
             [landlock]\nbind_tcp = [0]\n[broker.net]\nping = [\"127.0.0.1\", \"::1\"]\n"
        );
        let u = write_unit(&format!("ping-{}", to.replace(':', "_")), &body);
        let _in = ns.enter_this_thread();
        let mut c = command(As::Root);
        match how {
            "exec" => c.arg("exec").arg(&u),
            _ => c.args(["run", "--unit"]).arg(&u).arg("--").args(["/usr/bin/ping", "-n", "-c1", "-W5", to]),
        };
        output(c, T)
    };
    for to in ["127.0.0.1", "::1"] {
        let o = ping("run", to);
        assert!(o.status.success() && text(&o).contains("1 received"), "{to}: {}", text(&o));
    }
    let o = ping("exec", "10.77.0.1");
    assert!(!o.status.success() && text(&o).contains("add \"10.77.0.1\" to broker.net.ping"), "{}", text(&o));
}

// 27: host SysV IPC is invisible.
both!(sysv_ipc, |who: As| {
    let key = (std::process::id() as i32) * 10 + if who == As::Root { 1 } else { 2 };
    let made = output(
        {
            let mut c = std::process::Command::new(probe());
            c.args(["make-shm", &key.to_string()]);
            c
        },
        T,
    );
    assert!(made.status.success(), "{}", text(&made));
    let id = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let out = std::panic::catch_unwind(|| run_probe(who, &[], &["sysv", &key.to_string()]));
    let _ = std::process::Command::new(probe()).args(["rm-shm", &id]).status();
    out.unwrap();
});

// 21 via Landlock alone: without a pid namespace the host's processes exist in
// the service's view of pids, and the signal scope must still refuse.
both!(signal_scope_without_pid_namespace, |who: As| {
    let mut sleeper = {
        let mut c = std::process::Command::new("/bin/sleep");
        c.arg("30");
        if who == As::User {
            let (uid, gid) = test_user();
            c.uid(uid).gid(gid);
        }
        c.spawn().unwrap()
    };
    let u = write_unit(&format!("nopid-{who:?}"), "[namespaces]\npid = false\n[filesystem]\nproc = \"none\"\n");
    // The file-owner route first and alone (nothing the probe sees tells
    // whether it worked), then the signalling calls. Every route sends
    // SIGTERM, and a signal is queued before the sending call returns: so
    // after each, the sleeper must be running with nothing pending (not
    // dying with a fatal signal queued, not a zombie).
    let untouched = |pid: u32| {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |k: &str| st.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("?").to_owned();
        !field("State:").starts_with('Z') && field("SigPnd:").trim_start_matches('0').is_empty() && field("ShdPnd:").trim_start_matches('0').is_empty()
    };
    let pid = sleeper.id().to_string();
    let res = std::panic::catch_unwind(|| run_probe(who, &["--unit", u.to_str().unwrap()], &["signal-host", &pid, "fasync"]));
    let alive_fasync = untouched(sleeper.id());
    let res = res.and_then(|_| std::panic::catch_unwind(|| run_probe(who, &["--unit", u.to_str().unwrap()], &["signal-host", &pid])));
    let alive = untouched(sleeper.id());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(alive_fasync, "a signal reached the host process through F_SETOWN/O_ASYNC from the service");
    res.unwrap();
    assert!(alive, "a signal reached the host process from the service");
});

/// Runs `capexec ARGS` under the probe's seccomp helper, with the named
/// syscalls answering ENOSYS, as on a kernel (or in a container) without them.
fn capexec_without(who: As, syscalls: &[&str], args: &[&str]) -> std::process::Output {
    require_root();
    let mut x = std::process::Command::new(probe());
    if who == As::User {
        let (uid, gid) = test_user();
        x.uid(uid).gid(gid).current_dir("/");
    }
    x.arg("with-seccomp-deny").args(syscalls).arg("--").arg(capexec()).args(args);
    output(x, T)
}

const LANDLOCK_SYSCALLS: &[&str] = &["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"];

// 44: a required mechanism the kernel lacks stops the start with a clear message.
// The kernel here has Landlock, so its absence is simulated the way a container
// without it looks: the Landlock syscalls answer ENOSYS.
both!(missing_landlock_refuses_to_start, |who| {
    let o = capexec_without(who, LANDLOCK_SYSCALLS, &["run", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Landlock") && err.contains("required"), "unclear message:\n{err}");

    // best-effort starts, and says what it could not enforce.
    let o = capexec_without(who, LANDLOCK_SYSCALLS, &["run", "--landlock", "best-effort", "--", "/bin/true"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Landlock"), "no warning:\n{}", text(&o));
});

both!(missing_seccomp_refuses_to_start, |who| {
    let o = capexec_without(who, &["seccomp"], &["run", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("seccomp"), "{}", text(&o));
});

// 23 under `capexec exec` as root, where capexec holds the live trail's
// sources while it spawns the service: the audit socket, the broker's
// report pipe and the network guard's ring buffer. The service has its
// declared fds only: stdio, the preopened socket (3), the broker channel (4).
#[test]
fn exec_trail_sources_stay_with_capexec() {
    require_root();
    let body = format!(
        "[exec]\nargv = [\"{}\", \"fds\", \"0,1,2,3,4\"]\n[filesystem]\nexecutable = [\"{}\"]\n[namespaces]\nnet = \"none\"\n\n\
         [[preopen.listen]]\naddress = \"udp:127.0.0.1:{}\"\n\n[[broker.fs]]\npath = \"/etc/**\"\nrights = [\"read\"]\n",
        probe().display(),
        shared_dir().display(),
        unused_port()
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(test_unit("exec-trail-fds", &body));
    let o = output(c, Duration::from_secs(60));
    let out = text(&o);
    assert!(o.status.success() && out.contains("BLOCKED") && !out.contains("ESCAPED"), "{out}");
}

// `exec.memory_deny_write_execute = true` (systemd's MemoryDenyWriteExecute=):
// no mapping may be writable and executable, and written memory cannot be
// made executable, in the service and everything it starts. Without the
// setting, the same probe gets both: the control that shows it can fail.
both!(writable_executable_memory, |who: As| {
    let probe = probe();
    let body = |mdwe: bool| {
        format!(
            "[exec]\nargv = [\"{}\", \"wx-memory\"]\nmemory_deny_write_execute = {mdwe}\n[filesystem]\nexecutable = [\"{}\"]\n",
            probe.display(),
            shared_dir().display()
        )
    };
    let tag = format!("mdwe-{who:?}");
    let mut c = command(who);
    c.arg("exec").arg(test_unit(&tag, &body(true)));
    let o = output(c, Duration::from_secs(60));
    let out = text(&o);
    assert!(o.status.success() && out.matches("BLOCKED").count() == 2 && !out.contains("ESCAPED"), "{out}");
    let mut c = command(who);
    c.arg("exec").arg(test_unit(&format!("{tag}-off"), &body(false)));
    let o = output(c, Duration::from_secs(60));
    let out = text(&o);
    assert_eq!(out.matches("ESCAPED").count(), 2, "without the setting W^X memory works (the control):\n{out}");
});

// landlock.bind_tcp (and --bind-tcp) take port ranges: Landlock gets a rule
// for each port of the range and none beside it.
both!(tcp_port_ranges, |who: As| {
    // The range, a port each side of it, and one more: all this test's.
    let first = unused_ports(7) + 1;
    let (first, last) = (first, first + 4);
    let mut c = command(who);
    c.args(["run", "--net", "host", "--bind-tcp", &format!("{first}-{last}"), "--"]).arg(probe()).args(["bind-range", &first.to_string(), &last.to_string()]);
    let o = output(c, T);
    let out = text(&o);
    assert!(o.status.success() && !out.contains("ESCAPED") && out.contains("BLOCKED bind"), "{out}");
});

// 55: a daemon declared as root with a bounded capability set drops root
// itself as it would under init: setuid() to its user takes its capabilities
// (the kernel's setuid fixup, which capexec used to switch off for good), and
// PR_SET_KEEPCAPS keeps no more than the declared set. Root only: rootless,
// the service is the caller.
#[test]
fn a_daemon_started_as_root_drops_root_itself() {
    let u = write_unit("privdrop", "[exec]\nuser = \"root\"\n[capabilities]\nkeep = [\"CAP_SETUID\", \"CAP_SETGID\", \"CAP_NET_BIND_SERVICE\"]\n");
    // capabilities(7): CAP_SETGID 6, CAP_SETUID 7, CAP_NET_BIND_SERVICE 10.
    let kept: u64 = (1 << 6) | (1 << 7) | (1 << 10);
    let out = run_probe(As::Root, &["--unit", u.to_str().unwrap()], &["privdrop", &format!("{kept:x}")]);
    assert!(out.contains("with PR_SET_KEEPCAPS works"), "{out}");
}

// As root a declared service runs as its user in the host's user namespace:
// host files show their real owners, the user's groups from /etc/group
// (install-test-deps.sh puts the test user in capexec-test-extra) and the
// declared supplementary groups are set.
#[test]
fn a_declared_user_has_its_groups_and_sees_host_ownership() {
    let u = write_unit("ids", &format!("[exec]\nuser = \"{TEST_USER}\"\nsupplementary_groups = [\"adm\"]\n"));
    let mut c = command(As::Root);
    c.args(["run", "--unit", u.to_str().unwrap(), "--", "/bin/sh", "-c", "id -u; id -G; stat -c %u:%g /etc/passwd; cat /proc/self/uid_map; uname -n"]);
    let o = output(c, T);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    let (uid, _) = test_user();
    assert_eq!(lines[0], uid.to_string(), "{out}");
    let gid = |name: &str| {
        nix::unistd::Group::from_name(name).unwrap().unwrap_or_else(|| panic!("no group {name}: run scripts/install-test-deps.sh")).gid.to_string()
    };
    let groups: Vec<&str> = lines[1].split(' ').collect();
    for g in ["capexec-test-extra", "adm"] {
        assert!(groups.contains(&gid(g).as_str()), "group {g} missing: {out}");
    }
    assert_eq!(lines[2], "0:0", "root-owned files must show as root's: {out}");
    assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["0", "0", "4294967295"], "the host's user namespace: {out}");
    // Its own UTS namespace, with the host's name (what its syslog lines say).
    assert_eq!(lines[4], nix::unistd::gethostname().unwrap().to_string_lossy(), "{out}");
}

// 56: without a pid namespace of its own (as root, a forking service with a
// pid file, so that the pid it writes is the host's), the service's /proc shows
// its own processes only: hidepid=invisible, with Landlock refusing the
// ptrace access it checks for anything outside the service's domain. The
// service runs as root, like the host's init and this test, so uids alone
// would hide nothing. Also in a user namespace of its own (systemd's
// PrivateUsers=, root mapped to root), where capexec mounts that /proc for
// it (the service could not mount one of the host's pid namespace).
#[test]
fn without_a_pid_namespace_proc_shows_only_the_service() {
    let me = std::process::id();
    let host_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    for (tag, user_ns) in [("hidepid", false), ("hidepid-userns", true)] {
        let u = write_unit(tag, &format!("[exec]\nuser = \"root\"\n[namespaces]\npid = false\nuser = {user_ns}\n"));
        let mut c = command(As::Root);
        c.args([
            "run",
            "--unit",
            u.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            "echo self $$; ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; cat /proc/1/status 2>&1 | head -1; readlink /proc/self/ns/user",
        ]);
        let o = output(c, T);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{tag}: {}", text(&o));
        let mut lines = out.lines();
        let shell: i32 = lines.next().and_then(|l| l.strip_prefix("self ")).and_then(|p| p.parse().ok()).expect("the shell's pid");
        let visible: Vec<i32> = lines.next().unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect();
        assert!(shell > 1, "{tag}: the host's pids: {out}");
        assert!(visible.contains(&shell), "{tag}: the service sees itself: {out}");
        assert!(!visible.contains(&1) && !visible.contains(&(me as i32)), "{tag}: host processes are visible: {out}");
        // Only the service's own: its init and what it started.
        for p in &visible {
            let st = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            assert!(st.contains("Uid:\t0") || st.is_empty(), "{tag}: {p}: {st}");
        }
        assert!(visible.len() <= 4, "{tag}: more than the service's own processes: {out}");
        assert!(lines.next().unwrap_or_default().contains("No such file"), "{tag}: /proc/1 is readable: {out}");
        assert_eq!(lines.next() != Some(host_userns.to_str().unwrap()), user_ns, "{tag}: its user namespace: {out}");
    }
}

// 56, the opt-in: `filesystem.host_processes` (a monitoring agent's view)
// lists every process of the host with what ps shows of them (status,
// cmdline), and nothing the kernel's ptrace check guards: another process's
// environ, maps, memory, and where its fds, cwd, exe and root lead stay
// refused (a root service may list the fd numbers of a root process: the
// directory's mode allows it, not the check), since Landlock allows it only
// within the service, and the host's processes cannot be signalled. Nor
// changed through the files no ptrace check guards, which file ownership
// alone decides and a root service owns root's: another process's
// oom_score_adj (raised, the OOM killer's first victim), coredump_filter,
// clear_refs, autogroup, comm, timerslack_ns: that /proc is read-only. As
// root (uids hide nothing) and as a user of its own.
#[test]
fn host_processes_show_the_hosts_processes_not_their_insides() {
    let me = std::process::id();
    let mut victim = std::process::Command::new("/bin/sleep").arg("60").spawn().unwrap();
    let v = victim.id();
    let host_view = |f: &str| std::fs::read_to_string(format!("/proc/{v}/{f}")).unwrap();
    // spawn returns once the exec has taken the memory, a moment before the
    // kernel names the process after its program.
    let deadline = std::time::Instant::now() + T;
    while host_view("comm") != "sleep\n" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before = (host_view("oom_score_adj"), host_view("coredump_filter"), host_view("comm"));
    let script = format!(
        "ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; head -1 /proc/1/status; tr '\\0' ' ' < /proc/{me}/cmdline; echo; \
         for f in /proc/{me}/environ /proc/1/environ /proc/{me}/maps /proc/{me}/mem; do head -c1 $f >/dev/null 2>&1 && echo \"read $f\"; done; \
         for l in fd/0 cwd exe root; do readlink /proc/{me}/$l >/dev/null 2>&1 && echo \"followed $l\"; done; \
         ls /proc/{me}/root/ >/dev/null 2>&1 && echo 'entered root'; kill -0 {me} 2>/dev/null && echo signalled; \
         for w in oom_score_adj:1000 coredump_filter:0x7f clear_refs:1 autogroup:1 comm:x timerslack_ns:5 mem:x; do \
         (echo ${{w#*:}} > /proc/{v}/${{w%%:*}}) 2>/dev/null && echo \"wrote ${{w%%:*}}\"; done; echo end"
    );
    for user in ["root", "nobody"] {
        let u = write_unit(
            &format!("host-processes-{user}"),
            &format!("[exec]\nuser = \"{user}\"\n[namespaces]\npid = false\n[filesystem]\nhost_processes = true\n"),
        );
        let mut c = command(As::Root);
        c.args(["run", "--unit", u.to_str().unwrap(), "--", "/bin/sh", "-c", &script]);
        let o = output(c, T);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{user}: {}", text(&o));
        let mut lines = out.lines();
        let visible: Vec<u32> = lines.next().unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect();
        assert!(visible.contains(&1) && visible.contains(&me), "{user}: the host's processes are not listed: {out}");
        assert!(lines.next().unwrap_or_default().starts_with("Name:"), "{user}: /proc/1/status: {out}");
        assert!(lines.next().unwrap_or_default().contains("escape"), "{user}: this test's cmdline: {out}");
        assert_eq!(lines.collect::<Vec<_>>(), ["end"], "{user}: what the ptrace check guards was reached: {out}");
        // `capexec check` says so.
        let checked = write_unit(
            &format!("host-processes-check-{user}"),
            &format!("[exec]\nargv = [\"/bin/true\"]\nuser = \"{user}\"\n[namespaces]\npid = false\n[filesystem]\nhost_processes = true\n"),
        );
        let mut c = command(As::Root);
        c.arg("check").arg(&checked);
        let o = output(c, T);
        assert!(String::from_utf8_lossy(&o.stdout).contains("(every process of the host)"), "{user}: {}", text(&o));
    }
    let after = (host_view("oom_score_adj"), host_view("coredump_filter"), host_view("comm"));
    let _ = victim.kill();
    let _ = victim.wait();
    assert_eq!(after, before, "a host process was changed through /proc");
}

// A declared path whose parent is a link on the host (/var/run -> /run) is
// the host's directory in the view: the link was followed inside the view
// before, so the bind took the view's own (empty, or read-only) directory
// for its source and the service's writes never reached the host.
#[test]
fn a_declared_path_through_a_host_link_is_the_hosts() {
    assert!(std::fs::symlink_metadata("/var/run").is_ok_and(|m| m.file_type().is_symlink()), "Debian's /var/run is a link to /run");
    let name = format!("capexec-it-link-{}", std::process::id());
    let host = std::path::Path::new("/run").join(&name);
    std::fs::create_dir_all(&host).unwrap();
    let u = write_unit("via-link", &format!("[exec]\nuser = \"root\"\n[filesystem]\nread_write = [\"/var/run/{name}\"]\n"));
    let mut c = command(As::Root);
    c.args(["run", "--unit", u.to_str().unwrap(), "--", "/bin/sh", "-c", &format!("echo from-the-service > /var/run/{name}/f")]);
    let o = output(c, T);
    let got = std::fs::read_to_string(host.join("f"));
    let _ = std::fs::remove_dir_all(&host);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(got.unwrap_or_default(), "from-the-service\n", "the write did not reach the host's /run/{name}");
}

// filesystem.visible (`capexec run --visible`): a path the service may look
// at and not read. Every way from the name to the content is tried: open,
// open with O_PATH then read, a reopen of that O_PATH fd through
// /proc/self/fd, mmap of what could be opened, exec (the file is
// executable on the host), a copy by sendfile; stat, access, listing the
// directory and readlink work. A file under a visible directory is no more
// readable than the directory's own.
both!(visible_paths_are_not_readable, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("visible-{who:?}"));
    let shown = dir.join("shown");
    std::fs::create_dir_all(shown.join("sub")).unwrap();
    std::fs::write(shown.join("secret"), "#!/bin/sh\necho SECRET-VISIBLE\n").unwrap();
    std::fs::write(shown.join("sub/deeper"), "SECRET-VISIBLE-DEEPER\n").unwrap();
    std::os::unix::fs::symlink("secret", shown.join("link")).unwrap();
    for p in [shown.clone(), shown.join("sub")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in ["secret", "sub/deeper"] {
        std::fs::set_permissions(shown.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let prog = r#"
import os, sys, mmap
d = sys.argv[1]
f = os.path.join(d, 'secret')
def tr(what, fn):
    try:
        r = fn()
        print('OPENED', what, r)
    except OSError as e:
        print('BLOCKED', what, e.errno)
print('STAT', os.stat(f).st_size, 'ACCESS', os.access(f, os.F_OK), 'LINK', os.readlink(os.path.join(d, 'link')))
print('LIST', sorted(os.listdir(d)))
tr('open', lambda: open(f).read())
tr('open deeper', lambda: open(os.path.join(d, 'sub/deeper')).read())
p = os.open(f, os.O_PATH)
tr('read O_PATH', lambda: os.read(p, 100))
tr('reopen /proc/self/fd', lambda: open('/proc/self/fd/%d' % p).read())
tr('mmap', lambda: mmap.mmap(os.open(f, os.O_RDONLY), 0, prot=mmap.PROT_READ)[:])
tr('sendfile', lambda: os.sendfile(1, os.open(f, os.O_RDONLY), 0, 100))
tr('exec', lambda: os.execv(f, [f]))
"#;
    let mut c = command(who);
    c.args(["run", "--visible", shown.to_str().unwrap(), "--", "/usr/bin/python3", "-c", prog, shown.to_str().unwrap()]);
    let o = output(c, T);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("SECRET") && !out.contains("OPENED"), "a visible path was read:\n{out}");
    assert!(out.contains("ACCESS True LINK secret") && out.contains("LIST ['link', 'secret', 'sub']"), "{out}");
    assert_eq!(out.matches("BLOCKED").count(), 7, "{out}");
    // The same, declared.
    let u = write_unit(&format!("visible-{who:?}"), &format!("[filesystem]\nvisible = [{:?}]\n", shown.display()));
    let mut c = command(who);
    c.args(["run", "--unit", u.to_str().unwrap(), "--", "/bin/cat"]).arg(shown.join("secret"));
    let o = output(c, T);
    assert!(!o.status.success() && !text(&o).contains("SECRET"), "{}", text(&o));
});
