//! `capexec learn` (issue 5): the recorder follows threads, forks and execs
//! and misses nothing, and the declaration it writes allows what the run
//! used and nothing it did not.

use capexec_integration_tests::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

// A program that reads a file in each of its main thread, a second thread, a
// forked child and a program that child executes: every read, the distinctive
// syscall of each (getpriority in the thread, sysinfo in the child) and both
// execs are recorded; syscalls it never made are not in the allowlist.
both!(learning_follows_threads_forks_and_execs, |who: As| {
    let dir = shared_dir().join(format!("learn-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o755);
    for f in ["main", "thread", "child", "exec"] {
        let p = dir.join(format!("{f}.txt"));
        std::fs::write(&p, format!("{f} read\n")).unwrap();
        set_mode(&p, 0o644);
    }
    let out = dir.join("learned.svc");
    let saved = dir.join("learned.json");
    // Written by the test user when rootless: the directory must let it.
    set_mode(&dir, 0o777);
    let mut c = command(who);
    c.arg("learn").arg("--out").arg(&out).arg("--save").arg(&saved).arg("--").arg(shared_dir().join("learn-probe")).arg(&dir);
    let o = output(c, T);
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    for f in ["main", "thread", "child", "exec"] {
        assert!(all.contains(&format!("{f} read")), "the program ran whole: {all}");
    }
    let obs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    for f in ["main", "thread", "child", "exec"] {
        let p = format!("{}/{f}.txt", dir.display());
        assert_eq!(obs["paths"][&p], serde_json::json!(["read"]), "{p} not recorded as read: {obs:#}");
    }
    let calls = &obs["syscalls"];
    for s in ["getpriority", "sysinfo", "clone", "wait4"] {
        assert!(calls[s].as_u64().is_some_and(|n| n >= 1), "{s} not recorded: {calls:#}");
    }
    // The probe and cat: two programs executed.
    assert!(calls["execve"].as_u64().is_some_and(|n| n >= 2), "both execs: {calls:#}");
    assert_eq!(obs["paths"]["/usr/bin/cat"], serde_json::json!(["exec"]), "{obs:#}");
    let decl = std::fs::read_to_string(&out).unwrap();
    for s in ["\"getpriority\"", "\"sysinfo\"", "\"wait4\""] {
        assert!(decl.contains(s), "{s} missing from the allowlist:\n{decl}");
    }
    for s in ["mount", "ptrace", "bpf", "init_module", "kexec_load", "setns", "unshare"] {
        assert!(!decl.contains(&format!("\"{s}\"")), "{s} was never called but is allowed:\n{decl}");
    }
    // The files read sit below the probe's own directory, which the view
    // gives as executable (readable): no entry of their own.
    assert!(decl.contains(&format!("\"{}\", # executed: ", shared_dir().display())), "the probe's directory is in the view:\n{decl}");
    // The declaration is one capexec accepts.
    let mut c = command(who);
    c.arg("check").arg(&out);
    let o = output(c, T);
    assert!(o.status.success(), "capexec check on the mined declaration:\n{}\n{decl}", text(&o));
});

/// What a service test mines with, checks with, and asks the enforced service.
struct Case {
    name: &'static str,
    unit: &'static str,
    port: u16,
    /// The mining workload: a load generator (and the monitoring probe a
    /// deployment runs; docs/learning.md shows what leaving it out costs).
    mine: &'static str,
    /// A different client with different requests, run under --check.
    check: &'static str,
}

/// Mines a declaration for a Debian service with one workload, then judges a
/// second, different workload against it (--check: nothing would be refused,
/// so ≥ 99% of its distinct syscalls pass) and finally runs the service under
/// the mined declaration, enforced, for `enforced` to ask it real questions.
fn mine_check_enforce(c: &Case, enforced: impl FnOnce()) {
    require_root();
    let dir = shared_dir().join(format!("learn-{}", c.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{}-mined.svc", c.name));
    let mut cmd = command(As::Root);
    cmd.arg("learn").arg(unit(c.unit)).arg("--workload").arg(c.mine).arg("--out").arg(&out);
    let o = output(cmd, T);
    assert!(o.status.success(), "mining {}:\n{}", c.name, text(&o));
    // Said with every failure of the check below: what the mining run printed.
    let mined = text(&o);
    let decl = std::fs::read_to_string(&out).unwrap();
    // Calls the service never makes are not allowed.
    for s in ["mount", "umount2", "ptrace", "bpf", "init_module", "finit_module", "kexec_load", "setns", "unshare", "pivot_root", "chroot", "reboot", "swapon"]
    {
        assert!(!decl.contains(&format!("\"{s}\"")), "{s} was never called but is allowed:\n{decl}");
    }
    assert!(!decl.contains("\"@"), "no whole group was used, none should be named:\n{decl}");
    let mut cmd = command(As::Root);
    cmd.arg("check").arg(&out);
    let o = output(cmd, T);
    assert!(o.status.success(), "capexec check on the mined declaration:\n{}\n{decl}", text(&o));

    // The second workload under --check: nothing the mined unit would refuse.
    let mut cmd = command(As::Root);
    cmd.arg("learn").arg("--check").arg(&out).arg("--workload").arg(c.check).arg("--json");
    let o = output(cmd, T);
    // With --json the service and the workload write to stderr: stdout is the report.
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let distinct = report["distinct_syscalls"].as_u64().unwrap();
    let refused = report["syscalls"].as_array().unwrap().len() as u64;
    assert!(distinct > 20, "the check run recorded the service: {report:#}");
    assert!((distinct - refused) * 100 >= distinct * 99, "{refused} of {distinct} syscalls refused: {report:#}\n{decl}\nmining:\n{mined}");
    for cat in ["syscalls", "files", "network"] {
        assert_eq!(report[cat], serde_json::json!([]), "{cat} the mined unit would refuse: {report:#}\n{decl}\nmining:\n{mined}");
    }
    assert!(o.status.success(), "{}", text(&o));

    // Enforced: the mined unit runs the real service, which answers.
    let svc = Service::start(As::Root, &["exec", out.to_str().unwrap()]);
    assert!(wait_port(c.port, Duration::from_secs(20)), "{} under the mined declaration did not listen", c.name);
    // The second workload again, now enforced: every request in its `&&`
    // chain must succeed.
    let o = std::process::Command::new("/bin/sh").arg("-c").arg(c.check).output().unwrap();
    assert!(o.status.success(), "the second workload under the enforced mined declaration:\n{}\n{decl}", text(&o));
    enforced();
    let o = svc.stop();
    assert_eq!(o.status.code(), Some(0), "{} under the mined declaration:\n{}\n{decl}", c.name, text(&o));
}

fn sh(script: &str) -> String {
    let o = std::process::Command::new("/bin/sh").arg("-c").arg(script).output().unwrap();
    assert!(o.status.success(), "{script}:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn nginx_mined_with_wrk_serves_curl() {
    let c = Case {
        name: "nginx",
        unit: "nginx.svc",
        port: 8080,
        mine: "wrk -t2 -c8 -d2s http://127.0.0.1:8080/",
        check: "curl -sf http://127.0.0.1:8080/ -o /dev/null && curl -sfI http://127.0.0.1:8080/ >/dev/null && \
                curl -s -o /dev/null http://127.0.0.1:8080/nope && curl -sf -r 0-9 http://127.0.0.1:8080/ >/dev/null && \
                curl -sf http://127.0.0.1:8080/ http://127.0.0.1:8080/other.html -o /dev/null -o /dev/null",
    };
    // The unit serves the tests' own document root (see own_nginx_docroot).
    mine_check_enforce(&c, || {
        assert_eq!(sh("curl -sf http://127.0.0.1:8080/"), NGINX_PAGE);
        assert_eq!(sh("curl -sf http://127.0.0.1:8080/other.html"), NGINX_OTHER_PAGE);
        assert_eq!(sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/nope"), "404");
        assert_eq!(sh("curl -sf -r 0-14 http://127.0.0.1:8080/"), NGINX_PAGE[..15]);
        assert!(sh("curl -sfI http://127.0.0.1:8080/").starts_with("HTTP/1.1 200"));
    });
}

#[test]
fn redis_mined_with_redis_benchmark_serves_redis_cli() {
    let c = Case {
        name: "redis",
        unit: "redis.svc",
        port: 6379,
        mine: "redis-benchmark -q -n 1000 -c 4 >/dev/null && redis-cli INFO >/dev/null",
        check: "redis-cli HSET h f1 a f2 b && redis-cli HGETALL h && redis-cli SADD s x y && redis-cli SMEMBERS s && \
                redis-cli SET t 1 EX 100 && redis-cli TTL t && redis-cli DBSIZE && redis-cli SAVE && redis-cli INFO >/dev/null && \
                redis-cli DEL h s t",
    };
    mine_check_enforce(&c, || {
        assert_eq!(sh("redis-cli HSET learn:h f1 a f2 b"), "2\n");
        assert_eq!(sh("redis-cli HGETALL learn:h"), "f1\na\nf2\nb\n");
        assert_eq!(sh("redis-cli SADD learn:s x y z"), "3\n");
        assert_eq!(sh("redis-cli SCARD learn:s"), "3\n");
        assert_eq!(sh("redis-cli SAVE"), "OK\n");
        assert!(sh("redis-cli INFO server").contains("redis_version:"));
        assert_eq!(sh("redis-cli DEL learn:h learn:s"), "2\n");
    });
}

#[test]
fn memcached_mined_with_memcslap_serves_memccat() {
    let s = "--servers=127.0.0.1:11211";
    let c = Case {
        name: "memcached",
        unit: "memcached.svc",
        port: 11211,
        mine: "memcslap --servers=127.0.0.1:11211 --concurrency=4 --execute-number=2000 >/dev/null && \
               memcslap --servers=127.0.0.1:11211 --concurrency=2 --execute-number=1000 --test=get >/dev/null && \
               memcstat --servers=127.0.0.1:11211 >/dev/null",
        check: "cd /etc && memcping --servers=127.0.0.1:11211 && memccp --servers=127.0.0.1:11211 hostname && \
                memccat --servers=127.0.0.1:11211 hostname >/dev/null && memcexist --servers=127.0.0.1:11211 hostname && \
                memctouch --servers=127.0.0.1:11211 --expire=100 hostname && memcrm --servers=127.0.0.1:11211 hostname && \
                memcstat --servers=127.0.0.1:11211 >/dev/null && memcflush --servers=127.0.0.1:11211",
    };
    mine_check_enforce(&c, || {
        let want = std::fs::read_to_string("/etc/hostname").unwrap();
        sh(&format!("cd /etc && memccp {s} hostname"));
        // memccat ends each value with a newline of its own.
        assert_eq!(sh(&format!("memccat {s} hostname")), format!("{want}\n"));
        sh(&format!("memcexist {s} hostname"));
        assert!(sh(&format!("memcstat {s}")).contains("curr_items"));
        sh(&format!("memcrm {s} hostname"));
        assert!(std::process::Command::new("memcexist").arg(s).arg("hostname").status().unwrap().code() != Some(0), "removed");
    });
}

/// A service declared as root (a daemon that drops to its own user, as
/// systemd starts it) learns with every capability capexec has, and the
/// capabilities its calls point at are kept in the mined declaration: here a
/// chown to another user and a setuid to it. Before, such a daemon could not
/// get past its first chown while learning.
#[test]
fn a_root_service_learns_with_its_capabilities() {
    let dir = shared_dir().join("learn-root");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("rootd.svc");
    std::fs::write(&unit, format!("[exec]\nargv = [\"/bin/sh\", \"-c\", \"touch {d}/f && chown 65534 {d}/f && exec setpriv --reuid 65534 --regid 65534 --clear-groups id -u\"]\nuser = \"root\"\n", d = dir.display())).unwrap();
    let out = dir.join("learned.svc");
    let mut c = command(As::Root);
    c.arg("learn").arg(&unit).arg("--out").arg(&out);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("65534") || text(&o).contains("65534"), "the program dropped to 65534: {}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    let keep = decl.lines().find(|l| l.starts_with("keep = [")).unwrap_or_else(|| panic!("no capabilities kept:\n{decl}"));
    for cap in ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"] {
        assert!(keep.contains(cap), "{cap} not kept: {keep}\n{decl}");
    }
    let mut c = command(As::Root);
    c.arg("check").arg(&out);
    assert!(output(c, T).status.success(), "{decl}");
}

/// A chmod of a file another uid owns needs CAP_FOWNER, which a root run's
/// mined file keeps with the file it changed: bird's prepare-environment
/// gives /run/bird to bird and then chmods it, and under a file without the
/// capability that failed its start. A chmod of the caller's own file needs
/// nothing.
#[test]
fn a_chmod_of_another_users_file_keeps_cap_fowner() {
    // Not in /tmp, which is the run's own (its calls there are not judged).
    let (dir, _scratch) = writable_dir("fowner");
    let d = dir.display();
    let out = dir.join("fowner.svc");
    let mut c = command(As::Root);
    let script = format!("touch {d}/own {d}/theirs && chown 65534 {d}/theirs && chmod 600 {d}/own && chmod 600 {d}/theirs");
    c.arg("learn").args(["--user", "root", "--out"]).arg(&out).args(["--", "/bin/sh", "-c", &script]);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    let why = decl.lines().find(|l| l.starts_with("# CAP_FOWNER:")).unwrap_or_else(|| panic!("CAP_FOWNER not named:\n{decl}"));
    assert!(why.contains(&format!("{d}/theirs (uid 65534) by uid 0")) && !why.contains(&format!("{d}/own")), "{why}");
    assert!(decl.lines().any(|l| l.starts_with("keep = [") && l.contains("CAP_FOWNER")), "{decl}");
}

/// Only a real-time scheduling policy needs CAP_SYS_NICE: stunnel4 sets
/// SCHED_BATCH on itself, which made its mined file keep the capability,
/// with which a root service may take the host's CPUs. Learned as root,
/// `chrt --batch` keeps nothing and `chrt --fifo` keeps CAP_SYS_NICE, with
/// the policy that needed it.
#[test]
fn only_a_real_time_policy_keeps_cap_sys_nice() {
    let dir = shared_dir().join("learn-sched");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (policy, needs) in [("--batch", false), ("--fifo", true)] {
        let out = dir.join(format!("chrt{policy}.svc"));
        let mut c = command(As::Root);
        c.arg("learn").args(["--user", "root", "--out"]).arg(&out).args(["--", "/usr/bin/chrt", policy, if needs { "1" } else { "0" }, "/bin/true"]);
        let o = output(c, T);
        assert!(o.status.success(), "{policy}: {}", text(&o));
        let decl = std::fs::read_to_string(&out).unwrap();
        let kept = decl.lines().any(|l| l.starts_with("keep = [") && l.contains("CAP_SYS_NICE"));
        assert_eq!(kept, needs, "{policy}:\n{decl}");
        assert_eq!(decl.contains("sched_setscheduler(SCHED_FIFO): a real-time policy"), needs, "{policy}:\n{decl}");
    }
}

/// A program learned with `--user root` runs as a service declared as root
/// would, with the host's ids: a daemon that drops to its own user with
/// initgroups (in.tftpd --user tftp) could not in learning's private user
/// namespace ("cannot set groups"). The mined file declares the user, keeps
/// what the drop used, and runs the program the same way.
#[test]
fn a_program_learned_as_root_drops_to_its_user() {
    let dir = shared_dir().join("learn-as-root");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("dropper.svc");
    let drop = ["/usr/bin/setpriv", "--reuid", "daemon", "--regid", "daemon", "--init-groups", "/usr/bin/id", "-u"];
    let mut c = command(As::Root);
    c.arg("learn").arg("--user").arg("root").arg("--out").arg(&out).arg("--").args(drop);
    let o = output(c, T);
    assert!(o.status.success() && o.stdout == b"1\n", "the program dropped to daemon (uid 1): {}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    assert!(decl.contains("\nuser = \"root\""), "{decl}");
    let keep = decl.lines().find(|l| l.starts_with("keep = [")).unwrap_or_else(|| panic!("no capabilities kept:\n{decl}"));
    assert!(keep.contains("CAP_SETUID") && keep.contains("CAP_SETGID"), "{keep}\n{decl}");
    let mut c = command(As::Root);
    c.arg("exec").arg(&out);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == "1\n", "{}\n{decl}", text(&o));
}

/// A program that empties its own bounding set with libcap-ng's
/// capng_apply (irqbalance; setpriv --bounding-set here) needs CAP_SETPCAP
/// for it, though capexec has emptied the set already: without it the call
/// fails, and libcap-ng says so through syslog, whose socket the mined file
/// refused (socket() and the readlink of its name were said as refused).
/// The mined file keeps CAP_SETPCAP, with why, and its run is refused
/// nothing.
#[test]
fn a_program_that_drops_its_bounding_set_keeps_cap_setpcap() {
    let dir = shared_dir().join("learn-bounding");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("bounding.svc");
    let program = ["/usr/bin/setpriv", "--bounding-set=-all", "/usr/bin/grep", "CapBnd", "/proc/self/status"];
    let mut c = command(As::Root);
    c.arg("learn").args(["--user", "root", "--out"]).arg(&out).arg("--").args(program);
    let o = output(c, T);
    assert!(o.status.success() && o.stdout == b"CapBnd:\t0000000000000000\n", "{}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    assert!(decl.lines().any(|l| l.starts_with("keep = [") && l.contains("CAP_SETPCAP")), "{decl}");
    assert!(decl.contains("# CAP_SETPCAP: prctl(PR_CAPBSET_DROP): the program empties its own bounding set"), "{decl}");
    let mut c = command(As::Root);
    c.arg("exec").arg(&out);
    let o = output(c, T);
    assert!(o.status.success() && o.stdout == b"CapBnd:\t0000000000000000\n", "{}\n{decl}", text(&o));
    assert!(!text(&o).contains("refused"), "{}\n{decl}", text(&o));
}

/// A bind of a socket that has a port already fails (EINVAL) whatever the
/// address, and is no grant: kadmind's RPC layer tries a random reserved
/// port on the listener it bound to 749, and learning granted that port
/// (which the next start does not pick).
#[test]
fn a_second_bind_of_a_bound_socket_is_no_grant() {
    let dir = shared_dir().join("learn-rebind");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = unused_port();
    let prog = format!(
        "import socket\ns = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\nfor p in (603, 0):\n    try:\n        s.bind(('0.0.0.0', p)); print(p, 'bound')\n    except OSError as e:\n        print(p, 'errno', e.errno)\n"
    );
    let out = dir.join("rebind.svc");
    let mut c = command(As::Root);
    c.arg("learn").arg("--out").arg(&out).args(["--", "/usr/bin/python3", "-c", &prog]);
    let o = output(c, T);
    // (603 may be EACCES first: the run lacks CAP_NET_BIND_SERVICE, which the kernel checks before.)
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && stdout.starts_with("603 errno ") && stdout.ends_with(&format!("\n0 errno {}\n", libc::EINVAL)), "{}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    assert!(decl.contains(&format!("bind = [\"tcp:127.0.0.1:{port}\"]")), "{decl}");
    assert!(!decl.contains(":603") && !decl.contains("0.0.0.0:0"), "{decl}");
}

/// A program that adds a socket to an epoll set before it connects it
/// (boost::asio's clients do) learns the host's network, where it connects
/// by itself under the guard: the broker's connect puts a host socket in
/// place of the service's, which that set does not watch, and the program
/// may never hear of its connect's end (whether the set still sees the old
/// socket for a moment is a matter of timing). Before, only such binds were
/// noted, and the run kept a network of its own.
#[test]
fn a_socket_polled_before_its_connect_connects_for_itself() {
    require_root();
    let dir = shared_dir().join("learn-polled-connect");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in server.incoming() {
            let _ = std::io::Write::write_all(&mut c.unwrap(), b"hello");
        }
    });
    let prog = format!(
        "import socket, select\ns = socket.socket(); s.setblocking(False)\nep = select.epoll(); ep.register(s.fileno(), select.EPOLLOUT)\n\
         s.connect_ex(('127.0.0.1', {port}))\nif not ep.poll(5):\n    print('no EPOLLOUT', flush=True); raise SystemExit(3)\n\
         s.setblocking(True); s.settimeout(5); print('connected', s.recv(5).decode(), flush=True)\n"
    );
    let out = dir.join("polled.svc");
    let mut c = command(As::Root);
    c.arg("learn").arg("--out").arg(&out).args(["--", "/usr/bin/python3", "-c", &prog]);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("connected hello"), "{}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    assert!(decl.contains("net = \"host\"") && decl.contains(&format!("\"tcp:127.0.0.1:{port}\"")), "{decl}");
    assert!(decl.contains("It added sockets to an epoll set before binding or connecting them"), "{decl}");
    let run = |unit: &std::path::Path| {
        let mut c = command(As::Root);
        c.arg("exec").arg(unit);
        output(c, T)
    };
    let o = run(&out);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("connected hello"), "{}\n{decl}", text(&o));
}

/// A datagram socket a service binds on every address at its start is its
/// listener, granted as it was bound, even where the run also sent
/// elsewhere: in.tftpd's 0.0.0.0:6969 was taken for a resolver's source
/// port (bound on every address to a high port by a run that sent) and
/// granted as every port above 1023.
#[test]
fn a_datagram_listener_bound_at_the_start_is_no_source_port() {
    let dir = shared_dir().join("learn-udp-listener");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = unused_port();
    let server = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', {port}))\n\
         while True:\n    data, peer = s.recvfrom(100)\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'log', ('127.0.0.1', 9))\n    s.sendto(data, peer)\n"
    );
    let client = format!(
        "python3 -c \"import socket; c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(10); c.sendto(b'ping', ('127.0.0.1', {port})); assert c.recv(10) == b'ping'\""
    );
    let out = dir.join("udp.svc");
    let mut c = command(As::Root);
    c.arg("learn").arg("--workload").arg(&client).arg("--out").arg(&out).args(["--", "/usr/bin/python3", "-c", &server]);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    let bind = decl.lines().find(|l| l.starts_with("bind = [")).unwrap_or_else(|| panic!("no bind grant:\n{decl}"));
    assert!(bind.starts_with(&format!("bind = [\"udp:0.0.0.0:{port}\"]")), "{bind}\n{decl}");
    assert!(decl.contains("connect = [\"udp:127.0.0.1:9\"]"), "the run sent: {decl}");
}

// `capexec learn --check` of a service that ends before it is ready (a
// refusal often causes that: vsftpd, named): what the unit would have
// refused is reported, each with its fix, then why the run ended; not
// only that nothing was worth mining (issue 20).
both!(check_reports_refusals_of_a_service_that_exits_early, |who: As| {
    let dir = shared_dir().join(format!("learn-early-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let port = unused_port();
    // Makes its cache below a directory outside its view (fresh names, as
    // apt-cacher-ng's at each start: one grant, so one line), reads its
    // configuration from a file outside its view, and gives up.
    let (cache, _scratch) = writable_dir(&format!("learn-early-{who:?}"));
    let d = cache.display();
    let prog = format!(
        "mkdir '{d}/x'; mkdir '{d}/x/q'; for my $n (1..5) {{ open(my $o, '>', \\\"{d}/x/q/$n\\\") }} open(my $f, '<', '/var/lib/dpkg/status') or exit 1; sleep 1; exit 2"
    );
    let unit = dir.join("early.svc");
    std::fs::write(&unit, format!("[exec]\nargv = [\"/usr/bin/perl\", \"-e\", \"{prog}\"]\n\n[[preopen.listen]]\naddress = \"tcp:127.0.0.1:{port}\"\n"))
        .unwrap();
    set_mode(&unit, 0o644);
    let mut c = command(who);
    c.arg("learn").arg("--check").arg(&unit).arg("--workload").arg("true").arg("--wait-for").arg(format!("tcp:127.0.0.1:{}", unused_port()));
    let o = output(c, T);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        out.contains("/var/lib/dpkg/status (read): not in the view; to allow it: add \"/var/lib/dpkg/status\" to [filesystem] read_only (capexec run: --ro /var/lib/dpkg/status)"),
        "{}",
        text(&o)
    );
    let made =
        format!("    {d}/x (create), also {d}/x/q, {d}/x/q/1, {d}/x/q/2 and 3 more: not in the view; to allow it: add \"{d}\" to [filesystem] read_write");
    assert!(out.contains(&made), "{made}\n{}", text(&o));
    assert!(err.contains("the service exited with status 2 before it was ready"), "{}", text(&o));
});

// A service without a pid namespace that ignores its stop signal and has a
// child: the learning run ends it at its stop timeout, child too, and ends.
// Only init was killed: the rest lived on (chronyd once, in CI), and the run
// waited for the recording of their calls for good.
both!(a_learning_run_ends_a_service_that_ignores_its_stop_without_a_pid_namespace, |who: As| {
    let marker = 100743 + who as u32;
    let dir = shared_dir().join(format!("learn-stubborn-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let unit = dir.join("stubborn.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", \"trap '' TERM; sleep {marker} & wait\"]\n[service]\nstop_timeout = \"1s\"\n\
             [namespaces]\npid = false\n[filesystem]\nproc = \"none\"\n"
        ),
    )
    .unwrap();
    set_mode(&unit, 0o644);
    let mut c = command(who);
    // The workload ends once the service ignores its stop: its sleep runs
    // only after its trap was set (under load, a workload of `true` ended
    // the run before the shell got there, and SIGTERM ended it).
    let workload = format!("until pgrep -x -f 'sleep {marker}' > /dev/null; do sleep 0.05; done");
    c.arg("learn").arg(&unit).args(["--no-wait", "--workload", &workload, "--out"]).arg(dir.join("out.svc"));
    let o = output(c, T);
    assert!(text(&o).contains("still running 1 s after its stop signal: killed"), "{}", text(&o));
    assert_eq!(wait_gone_by(|| pids_exact(&format!("sleep {marker}")), T), Vec::<i32>::new());
});

/// The privileged start_pre commands run on the host before the learning
/// run, as `exec` and the daemon run them: what they make is there for the
/// program (pg_dump@'s `+pg_backupcluster createdirectory` makes the
/// directory its dump, as postgres, writes in). Learning skipped them, and
/// the run failed.
#[test]
fn learn_runs_the_privileged_commands_before_the_start() {
    require_root();
    let dir = shared_dir().join("learn-privileged");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Outside /tmp, which is the service's own; writable by root alone.
    let (backups, _scratch) = writable_dir("learn-privileged");
    set_mode(&backups, 0o755);
    let made = backups.join("made");
    let unit = dir.join("dump.svc");
    let d = made.display();
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", \"echo dumped > {d}/f\"]\nuser = \"nobody\"\n\
             [[exec.start_pre]]\nargv = [\"/usr/bin/install\", \"-d\", \"-o\", \"nobody\", \"{d}\"]\nprivileged = true\n"
        ),
    )
    .unwrap();
    let mut c = command(As::Root);
    c.arg("learn").arg(&unit).arg("--out").arg(dir.join("out.svc"));
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(made.join("f")).unwrap_or_default(), "dumped\n", "{}", text(&o));
    let mined = std::fs::read_to_string(dir.join("out.svc")).unwrap();
    assert!(mined.contains(&format!("\"{d}\", # written")), "{mined}");
}

// A simple service whose program puts itself in the background (sniproxy's
// unit, which relies on KillMode=process) ends with its main process: the
// learning run says why nothing was recorded and what to do, where it said
// "nothing was recorded worth mining" alone.
both!(learn_says_when_a_simple_service_went_into_the_background, |who: As| {
    let dir = shared_dir().join(format!("learn-background-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let unit = dir.join("bg.svc");
    // As daemon(3) does it, the parent ending once the child has its session.
    let prog = "import os\nr, w = os.pipe()\nif os.fork() == 0:\n    os.setsid()\n    os.write(w, b'x')\n    os.execv('/bin/sleep', ['sleep', '100744'])\nos.read(r, 1)";
    std::fs::write(&unit, format!("[exec]\nargv = [\"/usr/bin/python3\", \"-c\", {prog:?}]\n")).unwrap();
    set_mode(&unit, 0o644);
    let mut c = command(who);
    c.arg("learn").arg(&unit).args(["--workload", "true", "--out"]).arg(dir.join("out.svc"));
    let o = output(c, T);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("exited with status 0 before it was ready"), "{}", text(&o));
    assert!(
        text(&o).contains("it went into the background (it called setsid, and its main process ended)") && text(&o).contains("service.type = \"forking\""),
        "{}",
        text(&o)
    );
});

// A unit that says nothing of when its service is ready (an imported one:
// no preopen, no grant, not notify, not forking): the workload starts once
// a socket the service binds accepts, as the recorder sees the bind, not
// at once (lighttpd's `curl` failed before it listened). A service that
// listens on nothing gets its workload once it is idle (3 s), or after
// --ready-timeout if it stays busy; --no-wait starts it at once.
both!(learn_waits_for_a_service_that_declares_no_readiness_to_listen, |who: As| {
    let dir = shared_dir().join(format!("learn-listen-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let port = unused_port();
    // Listens a while after it starts, as a daemon reading its configuration does.
    let unit = dir.join("late.svc");
    let script = format!("sleep 1; exec python3 -m http.server --bind 127.0.0.1 {port}");
    std::fs::write(&unit, format!("[exec]\nargv = [\"/bin/sh\", \"-c\", \"{script}\"]\n")).unwrap();
    set_mode(&unit, 0o644);
    let learn = |unit: &std::path::Path, args: &[&str]| {
        let mut c = command(who);
        c.arg("learn").arg(unit).args(args).arg("--out").arg(dir.join("out.svc"));
        let _ = std::fs::remove_file(dir.join("out.svc"));
        output(c, T)
    };
    let o = learn(&unit, &["--workload", &format!("curl -sf -o /dev/null http://127.0.0.1:{port}/")]);
    assert!(o.status.success(), "the workload ran before the service listened: {}", text(&o));
    assert!(text(&o).contains("the workload starts once a socket it binds accepts"), "{}", text(&o));
    let decl = std::fs::read_to_string(dir.join("out.svc")).unwrap();
    assert!(decl.contains(&format!("tcp:127.0.0.1:{port}")), "{decl}");

    let quiet = dir.join("quiet.svc");
    std::fs::write(&quiet, "[exec]\nargv = [\"/bin/sleep\", \"60\"]\n").unwrap();
    set_mode(&quiet, 0o644);
    let t = std::time::Instant::now();
    let o = learn(&quiet, &["--ready-timeout", "1", "--workload", "echo ran"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ran"), "{}", text(&o));
    assert!(text(&o).contains("not ready (a socket it binds to accept; it bound none) after 1 s: starting the workload anyway"), "{}", text(&o));
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    // Without a short timeout, its start is over once it has made calls and
    // then only waited (it slept) for 3 s, not the 30 s of the timeout.
    let o = learn(&quiet, &["--workload", "echo ran"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ran"), "{}", text(&o));
    assert!(text(&o).contains("quiet: nothing bound, and idle for 3 s: starting the workload") && !text(&o).contains("not ready"), "{}", text(&o));
    let o = learn(&quiet, &["--no-wait", "--workload", "echo ran"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ran"), "{}", text(&o));
    assert!(!text(&o).contains("not ready") && !text(&o).contains("idle for"), "{}", text(&o));
    // One that computes for 5 s with no call (rspamd compiling its rules;
    // here a loop on the vDSO's clock) before it listens is busy, not idle:
    // its workload failed, started at 3 s.
    let busy = dir.join("busy.svc");
    let prog = format!(
        "import time, http.server\nt = time.monotonic()\nwhile time.monotonic() - t < 5: pass\nhttp.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    );
    std::fs::write(&busy, format!("[exec]\nargv = [\"/usr/bin/python3\", \"-c\", {prog:?}]\nworking_directory = \"/usr/share\"\n")).unwrap();
    set_mode(&busy, 0o644);
    let o = learn(&busy, &["--workload", &format!("curl -sf -o /dev/null http://127.0.0.1:{port}/ && echo served")]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("served") && !text(&o).contains("nothing bound, and idle for"), "{}", text(&o));
});

// The commands a unit runs before its program (exec.start_pre) run in a
// learning run too, and are recorded as it is: what they prepare the
// program needs (unbound's root.key, made by its unit's
// `unbound-helper root_trust_anchor_update`; the program failed without
// it), and they run in its sandbox later (dnsmasq's `checkconfig` failed
// there, its needs unmined).
both!(learn_runs_the_units_start_pre_commands, |who: As| {
    let dir = shared_dir().join(format!("learn-pre-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let prepared = dir.join("prepared");
    let unit = dir.join("pre.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = [\"/bin/cat\", \"{p}\"]\n\n[[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", \"echo made-before > {p}; nice -n 1 true\"]\n",
            p = prepared.display()
        ),
    )
    .unwrap();
    set_mode(&unit, 0o644);
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(dir.join("out.svc"));
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("made-before"), "{}", text(&o));
    let decl = std::fs::read_to_string(dir.join("out.svc")).unwrap();
    // nice(1)'s setpriority(): the command's alone (cat and sh make none).
    assert!(decl.contains("\"setpriority\""), "the command's calls are mined: {decl}");
});

// A forking service is ready for the workload once its start has ended,
// whatever answers before: privoxy's start waits to see its daemon live,
// then reaps it with wait4, and a run stopped in between (the daemon's port
// answered first) left that call out. Here the start waits half a second,
// then calls getpriority, which nothing else does.
both!(a_forking_start_is_recorded_to_its_end, |who: As| {
    let dir = shared_dir().join(format!("learn-forking-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let port = unused_port();
    let script = format!(
        "import os, socket, time\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(8)\n\
         if os.fork() == 0:\n    while True: s.accept()[0].close()\n\
         time.sleep(0.5); os.getpriority(os.PRIO_PROCESS, 0)\n"
    );
    let unit = dir.join("forking.svc");
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", &script]).unwrap();
    std::fs::write(&unit, format!("[exec]\nargv = {argv}\n[service]\ntype = \"forking\"\n")).unwrap();
    set_mode(&unit, 0o644);
    let out = dir.join("out.svc");
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&out).args(["--wait-for", &format!("tcp:127.0.0.1:{port}"), "--workload", "true"]);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    assert!(decl.contains("\"getpriority\""), "the start's last call: {decl}");
});

// What a program does with a /proc file a pid-only /proc does not have is
// learned too: the learning run has a full /proc, so the program gets past
// its open (a flock of the file here; libcap-ng's fstatfs of cap_last_cap
// in knot and dovecot), and the mined declaration, with `proc = "full"`
// for that read, runs enforced.
both!(what_follows_the_read_of_a_host_proc_file_is_learned, |who: As| {
    let dir = shared_dir().join(format!("learn-proc-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let unit = dir.join("proc.svc");
    std::fs::write(&unit, "[exec]\nargv = [\"/bin/sh\", \"-c\", \"exec 3< /proc/sys/kernel/osrelease && flock 3 && echo locked\"]\n").unwrap();
    set_mode(&unit, 0o644);
    let out = dir.join("out.svc");
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&out);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("locked"), "{}", text(&o));
    let decl = std::fs::read_to_string(&out).unwrap();
    assert!(decl.contains("proc = \"full\"") && decl.contains("\"flock\""), "{decl}");
    let mut c = command(who);
    c.arg("exec").arg(&out);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("locked"), "enforced under the mined declaration: {}\n{decl}", text(&o));
});

// A queue as postfix keeps one: the program changes into its directory,
// binds a Unix socket by a relative path (private/sock), moves a message
// from incoming/ to active/ and removes a bounce log that is not there.
// The mined declaration names the socket by its full path, and gives the
// queue as one writable directory: a rename between two mounts fails with
// EXDEV, and a removal on a read-only one with EROFS instead of ENOENT. The
// program then runs enforced under it.
both!(a_queue_moved_between_directories_is_one_writable_directory, |who: As| {
    // Not under /tmp, which is the service's own (learning lists nothing there).
    let dir = std::path::PathBuf::from(format!("/var/tmp/capexec-it{}-queue-{who:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _scratch = Scratch(vec![dir.clone()]);
    let q = dir.join("queue");
    for sub in ["incoming", "active", "bounce", "private"] {
        std::fs::create_dir_all(q.join(sub)).unwrap();
        set_mode(&q.join(sub), 0o777);
    }
    for d in [&dir, &q] {
        set_mode(d, 0o777);
    }
    let script = "import os, socket, sys\n\
                  os.chdir(sys.argv[1])\n\
                  for f in ('active/m', 'private/sock'):\n    if os.path.exists(f): os.unlink(f)\n\
                  open('incoming/m', 'w').write('x')\n\
                  os.rename('incoming/m', 'active/m')\n\
                  try: os.unlink('bounce/m')\nexcept FileNotFoundError: pass\n\
                  socket.socket(socket.AF_UNIX).bind('private/sock')\n\
                  print('DONE')\n";
    let unit = dir.join("queue.svc");
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", script, q.to_str().unwrap()]).unwrap();
    std::fs::write(&unit, format!("[exec]\nargv = {argv}\n")).unwrap();
    set_mode(&unit, 0o644);
    let out = dir.join("learned.svc");
    let mut c = command(who);
    let saved = dir.join("learned.json");
    c.arg("learn").arg(&unit).arg("--out").arg(&out).arg("--save").arg(&saved);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("DONE"), "{}", text(&o));
    let obs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(obs["binds"], serde_json::json!([format!("unix:{}/private/sock", q.display())]), "the socket by its relative path: {obs:#}");
    let decl = std::fs::read_to_string(&out).unwrap();
    let rw = decl.lines().skip_while(|l| !l.starts_with("read_write = [")).take_while(|l| *l != "]").collect::<Vec<_>>().join("\n");
    assert!(rw.contains(&format!("\"{}\", #", q.display())), "the queue is not one writable directory:\n{decl}");
    for sub in ["incoming", "active", "bounce", "private"] {
        assert!(!rw.contains(&format!("\"{}/{sub}\"", q.display())), "{sub} is a mount of its own:\n{decl}");
    }
    let mut c = command(who);
    c.arg("exec").arg(&out);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("DONE"), "enforced under the mined declaration: {}\n{decl}", text(&o));
    // A service that also connects somewhere gets a broker for that grant,
    // under whose Landlock layer the move works too (capexec_sandbox::view_builder).
    let port = secret_listener("hello");
    let connecting = format!("{script}socket.create_connection(('127.0.0.1', {port})).close()\n");
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", &connecting, q.to_str().unwrap()]).unwrap();
    let brokered = dir.join("queue-brokered.svc");
    std::fs::write(&brokered, format!("[exec]\nargv = {argv}\n")).unwrap();
    set_mode(&brokered, 0o644);
    let mined = dir.join("learned-brokered.svc");
    let mut c = command(who);
    c.arg("learn").arg(&brokered).arg("--out").arg(&mined);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let decl = std::fs::read_to_string(&mined).unwrap();
    assert!(decl.contains(&format!("tcp:127.0.0.1:{port}")), "the grant that brings the broker:\n{decl}");
    let mut c = command(who);
    c.arg("exec").arg(&mined);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("DONE"), "the move under the broker's layer: {}\n{decl}", text(&o));
});

// A reload the service says it runs (RELOADING=1, then READY=1, as
// haproxy's master does) is recorded to its end: the stop waits for its
// READY=1. A signal's reload runs on after its command has returned; a stop
// in its midst missed what the reload does (haproxy's kill of its old
// worker, which needs CAP_KILL: the mined declaration then could not stop
// it). Here the reload's work (a getpriority) comes a second after its
// RELOADING=1. Like haproxy, the service says RELOADING=1 at its start
// too: what tells learning that it speaks the protocol (one that never
// does would leave learning waiting for a RELOADING=1 that never comes).
both!(a_reload_the_service_announces_is_recorded_to_its_end, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("reloading-{who:?}"));
    let prog = "import os, signal, socket, time\n\
                def say(m): socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(m, os.environ['NOTIFY_SOCKET'])\n\
                def hup(*_):\n\
                \x20   say(b'RELOADING=1')\n\
                \x20   time.sleep(1)\n\
                \x20   os.getpriority(os.PRIO_PROCESS, 0)\n\
                \x20   say(b'READY=1')\n\
                signal.signal(signal.SIGHUP, hup)\n\
                say(b'RELOADING=1')\n\
                say(b'READY=1')\n\
                while True: time.sleep(1)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog]).unwrap();
    let unit = dir.join("reloading.svc");
    std::fs::write(
        &unit,
        format!("[exec]\nargv = {argv}\n\n[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -HUP $MAINPID\"]\n\n[service]\ntype = \"notify\"\n"),
    )
    .unwrap();
    set_mode(&unit, 0o644);
    let mined = dir.join("learned.svc");
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&mined).args(["--workload", "true"]);
    let o = output(c, T);
    assert!(o.status.success() && !text(&o).contains("warning"), "{}", text(&o));
    let decl = std::fs::read_to_string(&mined).unwrap();
    assert!(decl.contains("\"getpriority\""), "what the reload did after its RELOADING=1 is not recorded:\n{}\n{decl}", text(&o));
});

// A reload the service does not announce goes on after its command has
// returned: learning stops the service only once it is quiet (no call for a
// moment). Here, as tinyproxy did on `kill -USR1`, a stop signal in the
// midst of the reload is lost: stopped at once, the service was killed at
// its stop timeout, and what it does at a stop (removing its pid file) went
// unrecorded, so the mined declaration refused it.
both!(a_reload_is_over_before_learning_stops_the_service, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("settle-{who:?}"));
    let d = dir.to_str().unwrap();
    let prog = "import os, signal, sys, time\n\
                d = sys.argv[1]\n\
                state = {'hup': False}\n\
                def hup(*_): state['hup'] = True\n\
                def term(*_):\n\
                \x20   os.unlink(d + '/pid')\n\
                \x20   sys.exit(0)\n\
                signal.signal(signal.SIGHUP, hup)\n\
                signal.signal(signal.SIGTERM, term)\n\
                open(d + '/pid', 'w').close()\n\
                while True:\n\
                \x20   if state['hup']:\n\
                \x20       state['hup'] = False\n\
                \x20       signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
                \x20       end = time.monotonic() + 0.5\n\
                \x20       while time.monotonic() < end: os.stat(d)\n\
                \x20       signal.signal(signal.SIGTERM, term)\n\
                \x20   signal.pause()\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, d]).unwrap();
    let unit = dir.join("settle.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = {argv}\n\n[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -HUP $MAINPID\"]\n\n\
             [filesystem]\nread_write = [\"{d}\"]\n\n[service]\nstop_timeout = \"3s\"\n"
        ),
    )
    .unwrap();
    set_mode(&unit, 0o644);
    let mined = dir.join("learned.svc");
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&mined).args(["--no-wait", "--workload", &format!("while [ ! -e {d}/pid ]; do sleep 0.05; done")]);
    let o = output(c, T);
    assert!(o.status.success() && text(&o).contains("the service exited with status 0"), "{}", text(&o));
    let decl = std::fs::read_to_string(&mined).unwrap();
    assert!(decl.contains("\"unlink\", #"), "what the service did at its stop is not recorded:\n{}\n{decl}", text(&o));
});

// A daemon's idle loop wakes on a timer (mosquitto's, ten times a second,
// setting its signal mask around each wait): such calls do not keep the run
// busy, so learning stops it once its reload's work is over instead of at
// --ready-timeout (it waited 30 s and said the service was "still busy"),
// and that work is recorded.
both!(an_idle_loop_on_a_timer_is_quiet, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("idle-{who:?}"));
    let d = dir.to_str().unwrap();
    let prog = "import os, select, signal, sys, time\n\
                d = sys.argv[1]\n\
                state = {'hup': False}\n\
                def hup(*_): state['hup'] = True\n\
                signal.signal(signal.SIGHUP, hup)\n\
                open(d + '/pid', 'w').close()\n\
                while True:\n\
                \x20   if state['hup']:\n\
                \x20       state['hup'] = False\n\
                \x20       end = time.monotonic() + 0.3\n\
                \x20       while time.monotonic() < end: os.getpriority(os.PRIO_PROCESS, 0)\n\
                \x20   signal.pthread_sigmask(signal.SIG_BLOCK, [])\n\
                \x20   select.select([], [], [], 0.05)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, d]).unwrap();
    let unit = dir.join("idle.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = {argv}\n\n[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -HUP $MAINPID\"]\n\n\
             [filesystem]\nread_write = [\"{d}\"]\n"
        ),
    )
    .unwrap();
    set_mode(&unit, 0o644);
    let mined = dir.join("learned.svc");
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&mined).args([
        "--no-wait",
        "--ready-timeout",
        "5",
        "--workload",
        &format!("while [ ! -e {d}/pid ]; do sleep 0.05; done"),
    ]);
    let o = output(c, T);
    assert!(o.status.success() && !text(&o).contains("still busy"), "{}", text(&o));
    let decl = std::fs::read_to_string(&mined).unwrap();
    assert!(decl.contains("\"getpriority\""), "what the reload did is not recorded:\n{}\n{decl}", text(&o));
});

// `exec.reload` commands are run and recorded by learning, after the
// workload: systemd's usual `kill -HUP $MAINPID` (mosquitto's unit) needs
// `kill` from the declaration's allowlist, which the program itself never
// calls. The mined declaration then reloads under `capexec exec` (its
// SIGHUP runs the reload commands).
/// Learns the unit `text` (written to `dir`/t.svc) as `who`, with a
/// workload that waits until the program has made `dir`/ready: the run's
/// output and where the mined declaration is.
fn learn_until_ready(who: As, dir: &std::path::Path, text: &str) -> (std::process::Output, std::path::PathBuf) {
    let unit = dir.join("t.svc");
    std::fs::write(&unit, text).unwrap();
    set_mode(&unit, 0o644);
    let mined = dir.join("learned.svc");
    let ready = format!("while [ ! -e {}/ready ]; do sleep 0.05; done", dir.display());
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&mined).args(["--no-wait", "--workload", &ready]);
    (output(c, T), mined)
}

both!(reload_commands_are_learned, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("reload-{who:?}"));
    let d = dir.to_str().unwrap();
    let prog = "import signal, sys, time\n\
                d = sys.argv[1]\n\
                def hup(*_): open(d + '/log', 'a').write('reloaded\\n')\n\
                signal.signal(signal.SIGHUP, hup)\n\
                open(d + '/ready', 'w').close()\n\
                while True: time.sleep(1)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, d]).unwrap();
    let unit = format!("[exec]\nargv = {argv}\n\n[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -HUP $MAINPID\"]\n");
    let (o, mined) = learn_until_ready(who, &dir, &unit);
    assert!(o.status.success() && !text(&o).contains("exec.reload failed"), "{}", text(&o));
    let decl = std::fs::read_to_string(&mined).unwrap();
    assert!(decl.contains("\"kill\", # 1 call"), "the reload's kill, recorded:\n{decl}");
    for f in ["ready", "log"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let s = Service::start(who, &["exec", mined.to_str().unwrap()]);
    let waited = |f: &str| {
        let deadline = std::time::Instant::now() + T;
        while !dir.join(f).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        dir.join(f).exists()
    };
    assert!(waited("ready"), "the program under the mined declaration never got ready");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid()), nix::sys::signal::SIGHUP).unwrap();
    let reloaded = waited("log");
    let o = s.stop();
    assert!(reloaded, "no reload under the mined declaration: {}\n{decl}", text(&o));
});

// The mined file is the unit's own with what the run needed: its drop-ins
// stay beside it. Written under another name (`--out other.svc`), it lacked
// what they said without a word (h2o's lowered `LimitNOFILE=`, which the
// run had, then failed its start); learning now says so, with the copy.
both!(drop_ins_left_beside_the_unit_are_named, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("dropins-{who:?}"));
    let unit = dir.join("env.svc");
    std::fs::write(&unit, "[exec]\nargv = [\"/bin/sh\", \"-c\", \"test \\\"$FROM_DROPIN\\\" = yes\"]\n").unwrap();
    set_mode(&unit, 0o644);
    std::fs::create_dir_all(dir.join("env.svc.d")).unwrap();
    std::fs::write(dir.join("env.svc.d/10-local.toml"), "[exec.environment]\nFROM_DROPIN = \"yes\"\n").unwrap();
    let mined = dir.join("learned.svc");
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&mined);
    let o = output(c, T);
    let said = text(&o);
    assert!(o.status.success() && said.contains("exited with status 0"), "the run had the drop-in's variable: {said}");
    let cp = format!("to keep them: cp -r {}.d {}.d", unit.display(), mined.display());
    assert!(said.contains("env.svc.d/10-local.toml), which are not in") && said.contains(&cp), "{said}");
    // Onto the unit itself, the drop-ins go on applying: nothing to say.
    set_mode(&unit, 0o666);
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&unit);
    let o = output(c, T);
    assert!(o.status.success() && !text(&o).contains("drop-ins"), "{}", text(&o));
});

// What a first start leaves, the next finds: postgrey's Berkeley DB made
// its region files while learning and removed them at its next start, where
// the mined declaration refused `unlink`. A file the run made and left now
// brings unlink with it.
both!(a_file_the_run_made_may_be_removed_at_the_next_start, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("made-{who:?}"));
    let d = dir.to_str().unwrap();
    let prog = "import os, sys\n\
                p = sys.argv[1] + '/region'\n\
                if os.path.exists(p): os.unlink(p)\n\
                open(p, 'x').close()\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, d]).unwrap();
    let (mined, decl) = learn_unit(who, &dir, "made", &format!("[exec]\nargv = {argv}\n"), &[]);
    assert!(decl.contains(&format!("\"unlink\", # the run made {d}/region and left it")), "{decl}");
    let mut c = command(who);
    c.arg("exec").arg(&mined);
    let o = output(c, T);
    assert!(o.status.success(), "the next start, which finds the file: {}\n{decl}", text(&o));
});

// A listener bound before any client came is the service's own, whatever
// accept() calls came before it: Go's servers call accept() on a listener
// at once (EAGAIN) and then bind the next; alertmanager's web port, bound
// after its cluster port's accept(), was taken for a session's port (an FTP
// server's passive one) and granted as every port above 1023.
#[test]
fn a_listener_bound_before_the_workload_is_granted_as_it_is() {
    require_root();
    let (dir, _scratch) = writable_dir("accept-first");
    let (first, second) = (unused_port(), unused_port());
    let prog = "import socket, sys\n\
                a = socket.socket(); a.bind(('127.0.0.1', int(sys.argv[1]))); a.listen(); a.setblocking(False)\n\
                try: a.accept()\n\
                except BlockingIOError: pass\n\
                b = socket.socket(); b.bind(('127.0.0.1', int(sys.argv[2]))); b.listen()\n\
                while True: b.accept()[0].close()\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, &first.to_string(), &second.to_string()]).unwrap();
    let wait = format!("tcp:127.0.0.1:{second}");
    let (_, decl) = learn_unit(As::Root, &dir, "two", &format!("[exec]\nargv = {argv}\n"), &["--wait-for", &wait, "--workload", "true"]);
    let binds = decl.lines().find(|l| l.starts_with("bind = [")).unwrap_or_default();
    let each = [first, second].iter().all(|p| binds.contains(&format!("\"tcp:127.0.0.1:{p}\"")));
    assert!(each && !decl.contains("1024-65535"), "{decl}");
}

// A process that bound listeners at the start binds its own next ones, also
// once clients came: i2pd opens its proxies' ports after its web console took
// the first connection, and each was taken for a session's (an FTP server's
// passive port) and granted as every port above 1023. A process made for a
// session (vsftpd's) still binds a session's port.
#[test]
fn a_listener_the_first_process_binds_while_serving_is_its_own() {
    require_root();
    let (dir, _scratch) = writable_dir("serving-binds");
    let (first, second, session) = (unused_port(), unused_port(), unused_port());
    let prog = "import os, socket, sys\n\
                p1, p2, p3 = (int(a) for a in sys.argv[1:4])\n\
                a = socket.socket(); a.bind(('127.0.0.1', p1)); a.listen()\n\
                while True:\n    c = a.accept()[0]\n    if c.recv(2) == b'go': break\n    c.close()\n\
                b = socket.socket(); b.bind(('127.0.0.1', p2)); b.listen()\n\
                if os.fork() == 0:\n    d = socket.socket(); d.bind(('127.0.0.1', p3)); d.listen(); os._exit(0)\n\
                os.wait(); c.send(b'ok'); c.close()\n\
                while True: b.accept()[0].close()\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, &first.to_string(), &second.to_string(), &session.to_string()]).unwrap();
    let wait = format!("tcp:127.0.0.1:{first}");
    let workload = format!("python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {first})); s.send(b'go'); assert s.recv(2) == b'ok'\"");
    let (_, decl) = learn_unit(As::Root, &dir, "serving", &format!("[exec]\nargv = {argv}\n"), &["--wait-for", &wait, "--workload", &workload]);
    let binds = decl.lines().find(|l| l.starts_with("bind = [")).unwrap_or_default();
    let own = [first, second].iter().all(|p| binds.contains(&format!("\"tcp:127.0.0.1:{p}\"")));
    assert!(own && binds.contains("\"tcp:127.0.0.1:1024-65535\"") && !binds.contains(&format!(":{session}\"")), "{decl}");
}

// tomcat writes its logs through /var/lib/tomcat10/logs, a link to
// /var/log/tomcat10: mined as the link, the view made the link and not the
// place it leads to, and tomcat could not make its logs. The entry is now
// where the link leads, and the link is shown.
both!(written_through_a_link_is_mined_as_where_it_leads, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("link-{who:?}"));
    let d = dir.to_str().unwrap();
    std::fs::create_dir_all(dir.join("real")).unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    set_mode(&dir.join("real"), 0o777);
    std::os::unix::fs::symlink("../real", dir.join("lib/logs")).unwrap();
    let argv = serde_json::to_string(&["/bin/sh", "-c", &format!("echo line >> {d}/lib/logs/out.log")]).unwrap();
    let (mined, decl) = learn_unit(who, &dir, "link", &format!("[exec]\nargv = {argv}\n"), &[]);
    assert!(decl.contains(&format!("\"{d}/lib/logs\", # a link the run wrote through, to {d}/real")), "{decl}");
    // (Made anew: as root, each run has a uid of its own.)
    std::fs::remove_file(dir.join("real/out.log")).unwrap();
    let mut c = command(who);
    c.arg("exec").arg(&mined);
    let o = output(c, T);
    assert!(o.status.success(), "the mined declaration: {}\n{decl}", text(&o));
    assert_eq!(std::fs::read_to_string(dir.join("real/out.log")).unwrap(), "line\n");
});

/// `capexec learn` as `who` of the unit `body` (written to `dir/NAME.svc`)
/// with `args`, which must succeed; returns the mined file and its text.
fn learn_unit(who: As, dir: &std::path::Path, name: &str, body: &str, args: &[&str]) -> (std::path::PathBuf, String) {
    let unit = dir.join(format!("{name}.svc"));
    std::fs::write(&unit, body).unwrap();
    set_mode(&unit, 0o644);
    let mined = dir.join(format!("{name}-learned.svc"));
    let mut c = command(who);
    c.arg("learn").arg(&unit).arg("--out").arg(&mined).args(args);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let decl = std::fs::read_to_string(&mined).unwrap();
    (mined, decl)
}

// A monitoring check's ping, learned: the mined declaration has the host's
// network and a [broker.net] ping grant of the address it pinged (not
// ping's UDP probe of port 1025, which sends nothing), runs, and its check
// refuses nothing. The run used to mine `udp:ADDRESS:1025` and a
// network of its own, where no ping socket reaches anything.
#[test]
fn ping_is_learned_as_a_ping_grant() {
    require_root();
    let ns = ping_net("learn");
    let dir = shared_dir().join("learn-ping");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let body = "[exec]\nargv = [\"/usr/bin/ping\", \"-n\", \"-c1\", \"-W5\", \"10.77.0.1\"]\n";
    let _in = ns.enter_this_thread();
    let (mined, decl) = learn_unit(As::Root, &dir, "ping", body, &[]);
    assert!(decl.contains("net = \"host\"") && decl.contains("ping = [\"10.77.0.1\"]") && !decl.contains("connect = ["), "{decl}");
    let mut c = command(As::Root);
    c.arg("exec").arg(&mined);
    let o = output(c, T);
    assert!(o.status.success() && text(&o).contains("1 received"), "{}", text(&o));
    let mut c = command(As::Root);
    c.arg("learn").arg("--check").arg(&mined);
    let o = output(c, T);
    assert!(o.status.success() && text(&o).contains("network: nothing refused"), "{}", text(&o));
}

// A program with file capabilities (Debian's ping has cap_net_raw) runs in
// the learning run as in the service's own: its view is mounted nosuid, so
// the file's capabilities grant nothing. The learning run bound the host's
// directories as they were, and the kernel refused the exec (EPERM: the
// file asks for a capability the bounding set lacks).
both!(a_program_with_file_capabilities_runs_while_learning, |who: As| {
    let dir = shared_dir().join(format!("learn-fcaps-{who:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let caps = output(
        {
            let mut c = std::process::Command::new("getcap");
            c.arg("/usr/bin/ping");
            c
        },
        T,
    );
    assert!(text(&caps).contains("cap_net_raw"), "the test needs Debian's ping, with its file capability: {}", text(&caps));
    let (_, mined) = learn_unit(who, &dir, "fcaps", "[exec]\nargv = [\"/usr/bin/ping\", \"-V\"]\n", &[]);
    assert!(mined.contains("argv = [\"/usr/bin/ping\", \"-V\"]"), "{mined}");
});

/// A command around a root service's program that writes where the program
/// does not (php-fpm's start_post runs update-alternatives, which writes
/// /etc/alternatives and /var/lib/dpkg; tinysshd's start_pre makes its host
/// keys in /etc/tinyssh, which the program only reads) is mined as privileged, run on the
/// host as root as systemd runs it, and the program's view does not gain
/// that directory; a command that writes nothing stays in the sandbox, and
/// so does one that runs a script from where the program writes (on the
/// host as root it would run what the program put there), and one that
/// copies a file the view may give content of its own (/etc/hosts: on the
/// host it would copy the host's): their writes are granted instead.
/// Under the daemon the mined declaration runs the command on the host,
/// and the program cannot write there.
#[test]
fn a_command_that_writes_where_the_program_does_not_is_mined_privileged() {
    require_root();
    let dir = shared_dir().join("learn-host-command");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (host, _scratch) = writable_dir("learn-host-command");
    let (own, _own_scratch) = writable_dir("learn-host-command-own");
    let (hooked, _hooked_scratch) = writable_dir("learn-host-command-hook");
    std::fs::write(own.join("hook.sh"), format!("echo y > {}/marker\n", hooked.display())).unwrap();
    let port = unused_port();
    let prog = format!(
        "import socket, os\nopen('{o}/state', 'w').write('s')\ns = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n\
         while True:\n    c = s.accept()[0]\n    if c.recv(1) != b'w':\n        c.close(); continue\n    try:\n        open('{h}/from-program', 'w')\n        wrote = 'wrote'\n    except OSError:\n        wrote = 'refused'\n    c.sendall(wrote.encode()); c.close()\n",
        h = host.display(),
        o = own.display()
    );
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", &prog]).unwrap();
    let body = format!(
        "[exec]\nargv = {argv}\nuser = \"root\"\n\
         [[exec.condition]]\nargv = [\"/bin/true\"]\n\
         [[exec.start_pre]]\nargv = [\"/bin/true\"]\n\
         [[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", \"echo p > {h}/pre-marker\"]\n\
         [[exec.start_pre]]\nargv = [\"/bin/cp\", \"/etc/hosts\", \"{k}/hosts-copy\"]\n\
         [[exec.start_post]]\nargv = [\"/bin/sh\", \"-c\", \"echo x > {h}/marker\"]\n\
         [[exec.start_post]]\nargv = [\"/bin/true\"]\n\
         [[exec.start_post]]\nargv = [\"/bin/sh\", \"{o}/hook.sh\"]\n",
        h = host.display(),
        o = own.display(),
        k = hooked.display()
    );
    let ask = format!("python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {port})); s.sendall(b'w'); print(s.recv(100).decode())\"");
    let (_, decl) = learn_unit(As::Root, &dir, "hostcmd", &body, &["--wait-for", &format!("tcp:127.0.0.1:{port}"), "--workload", "true"]);
    let v: toml::Value = toml::from_str(&decl).unwrap_or_else(|e| panic!("{e}\n{decl}"));
    let post = v["exec"]["start_post"].as_array().unwrap();
    assert_eq!((post[0].get("privileged"), post[1].get("privileged"), post[2].get("privileged")), (Some(&toml::Value::Boolean(true)), None, None), "{decl}");
    let pre = v["exec"]["start_pre"].as_array().unwrap();
    // The copy of /etc/hosts would copy the host's on the host, not the view's.
    assert_eq!((pre[0].get("privileged"), pre[1].get("privileged"), pre[2].get("privileged")), (None, Some(&toml::Value::Boolean(true)), None), "{decl}");
    assert!(v["exec"]["condition"][0].get("privileged").is_none(), "{decl}");
    assert!(decl.contains(&format!("\"{}\"", hooked.display())), "the sandboxed hook's writes are granted: {decl}");
    assert!(decl.contains("# It wrote where the program does not") && !decl.contains(&format!("\"{}\"", host.display())), "{decl}");
    std::fs::remove_file(host.join("marker")).unwrap();
    std::fs::remove_file(host.join("pre-marker")).unwrap();
    std::fs::remove_file(hooked.join("marker")).unwrap();
    std::fs::remove_file(hooked.join("hosts-copy")).unwrap();
    // The mined declaration under the daemon: the command ran on the host
    // (the marker is there again), and the program may not write beside it.
    let mut d = Daemon::prepare(As::Root, "hostcmd");
    d.write_unit("hostcmd", &decl);
    d.start();
    let o = d.ctl(&["start", "hostcmd"]);
    assert!(o.status.success(), "{}\n{}", text(&o), text(&d.ctl(&["logs", "hostcmd"])));
    assert!(wait_port(port, T), "{}", text(&d.ctl(&["logs", "hostcmd"])));
    let answer = sh(&ask);
    assert_eq!(answer.trim(), "refused", "{}\n{decl}", text(&d.ctl(&["logs", "hostcmd"])));
    assert!(host.join("marker").exists() && host.join("pre-marker").exists() && !host.join("from-program").exists(), "{}", text(&d.ctl(&["logs", "hostcmd"])));
    assert!(hooked.join("marker").exists(), "the hook ran in the sandbox: {}", text(&d.ctl(&["logs", "hostcmd"])));
    d.terminate(T);
}

// What a program does at its stop is recorded even when the recording makes
// it slower than its stop timeout: every call waits for the recorder, and on
// a busy machine nginx's exit (the unlink of its pid file) missed the
// timeout, was killed, and the mined file lacked the call. A program still
// making calls gets more time; this one spends 1.5 s ending against a 1 s
// timeout, then writes a file whose directory the mined file must grant.
both!(a_slow_stop_is_recorded_to_its_end, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("slow-stop-{who:?}"));
    let d = dir.to_str().unwrap();
    let out = dir.join("at-stop");
    std::fs::create_dir_all(&out).unwrap();
    set_mode(&out, 0o777);
    let script = format!(
        "trap 'i=0; while [ $i -lt 15 ]; do sleep 0.1; i=$((i+1)); done; echo bye > {d}/at-stop/bye; exit 0' TERM; \
         touch {d}/ready; while :; do sleep 0.1; done"
    );
    let argv = serde_json::to_string(&["/bin/sh", "-c", &script]).unwrap();
    let unit = format!("[exec]\nargv = {argv}\n[filesystem]\nread_write = [\"{d}\"]\n[service]\nstop_timeout = \"1s\"\n");
    let (o, mined) = learn_until_ready(who, &dir, &unit);
    assert!(o.status.success() && !text(&o).contains("killed"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(out.join("bye")).unwrap_or_default(), "bye\n", "the stop ran to its end: {}", text(&o));
    let decl = std::fs::read_to_string(&mined).unwrap();
    assert!(decl.contains(&format!("{d}/at-stop")), "the write at the stop, recorded:\n{decl}");
});

/// A program that looks a name up through the host's resolver (glibc reads
/// /etc/resolv.conf and asks its nameserver) is granted that name in
/// `[broker.dns]`, not the resolver's port 53, which answered it every name
/// (a channel out whatever the grants) and named this host's resolver
/// only. Under the mined file the name resolves through the broker's stub
/// and another name is refused and said, by the broker and by `learn
/// --check`. In a mount and network namespace
/// of the test's own (unshare), whose resolv.conf names a DNS server of the
/// test's on its loopback: nothing leaves the machine. And a DNS server
/// asked over UDP on another port, by a query written on a connected
/// socket (as dnsdist asks its backends), is granted over TCP too, which a
/// long answer takes.
#[test]
fn names_looked_up_become_dns_grants() {
    require_root();
    let dir = std::env::temp_dir().join(format!("capexec-learn-dns-{}", std::process::id()));
    let _scratch = Scratch(vec![dir.clone()]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fake_dns.py");
    let (d, cx) = (dir.display(), capexec().display().to_string());
    // A query written (write(2)) on a datagram socket connected to a DNS
    // server on another port, as dnsdist asks its backends.
    let writer = "import os, socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('127.0.0.1', 5300)); \
                  os.write(s.fileno(), bytes.fromhex('12340100000100000000000003777777076578616d706c65047465737400000100 01'.replace(' ', ''))); print('answered', len(s.recv(512)))";
    let script = format!(
        "set -e\nip link set lo up\nmount --bind {d}/resolv.conf /etc/resolv.conf\n\
         python3 {server} > {d}/dns.log 2>&1 &\n\
         for i in $(seq 200); do grep -q ready {d}/dns.log && break; sleep 0.05; done\n\
         {cx} learn --out {d}/mined.svc -- /usr/bin/getent hosts backend.example.test\n\
         echo '--- granted'; {cx} run --unit {d}/mined.svc -- /usr/bin/getent hosts backend.example.test\n\
         echo '--- other'; {cx} run --unit {d}/mined.svc -- /usr/bin/getent hosts other.example.test || echo \"other: $?\"\n\
         echo '--- check'; {cx} learn --check --unit {d}/mined.svc -- /usr/bin/getent hosts other.example.test 2>&1 || true\n\
         kill $!\n\
         python3 {server} 5300 > {d}/dns5300.log 2>&1 &\n\
         for i in $(seq 200); do grep -q ready {d}/dns5300.log && break; sleep 0.05; done\n\
         {cx} learn --out {d}/writer.svc -- /usr/bin/python3 -c \"{writer}\"\n\
         kill $!\n"
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--net", "--propagation", "private", "sh", "-c", &script]);
    let o = output(c, Duration::from_secs(120));
    let out = text(&o);
    let mined = std::fs::read_to_string(dir.join("mined.svc")).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    let v: toml::Value = toml::from_str(&mined).unwrap();
    let names = v.get("broker").and_then(|b| b.get("dns")).and_then(|d| d.get("names")).and_then(|n| n.as_array());
    let names: Vec<&str> = names.unwrap_or_else(|| panic!("no [broker.dns] names:\n{mined}")).iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names, ["backend.example.test"], "{mined}");
    assert!(!mined.contains(":53\""), "the resolver's port is granted:\n{mined}");
    let granted = out.split("--- granted").nth(1).unwrap_or_default();
    assert!(granted.contains("127.0.0.1       backend.example.test"), "the granted name does not resolve:\n{out}");
    // learn --check judges a lookup by its name, not as the resolver's port.
    let check = out.split("--- check").nth(1).unwrap_or_default();
    assert!(
        check.contains("other.example.test (lookup): no [broker.dns] grant covers it")
            && check.contains("add \"other.example.test\" to broker.dns.names")
            && !check.contains(":53"),
        "learn --check does not judge the lookup by name:\n{out}"
    );
    let written = std::fs::read_to_string(dir.join("writer.svc")).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    assert!(out.contains("answered "), "the writer had no answer:\n{out}");
    assert!(
        written.contains("\"tcp:127.0.0.1:5300\"") && written.contains("\"udp:127.0.0.1:5300\""),
        "a DNS server asked over UDP is not granted over TCP too (a long answer):\n{written}"
    );
    let other = out.split("--- other").nth(1).unwrap_or_default();
    assert!(
        other.contains("other: 2") && other.contains("the name lookup other.example.test A: no [broker.dns] grant covers it"),
        "another name is not refused:\n{out}"
    );
}
