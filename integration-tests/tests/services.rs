//! Real Debian services (nginx, redis, memcached) under `capexec exec`, reached
//! over loopback, as root and rootless; and the foreground wrapper's contract:
//! exit statuses, signal forwarding, LISTEN_FDS, nothing left behind.

use capexec_integration_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
/// The shipped units use fixed ports, and tests find service processes by
/// program name: tests that start a service take turns.
static PORTS: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn status_of(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

fn netns(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).map(|p| p.display().to_string()).unwrap_or_default()
}

fn wait_gone(needle: &str, timeout: Duration) -> Vec<i32> {
    wait_gone_by(|| pids_matching(needle), timeout)
}

fn nginx(who: As) {
    let _g = lock();
    let unit = unit("nginx.svc");
    let svc = Service::start(who, &["exec", unit.to_str().unwrap()]);
    assert!(wait_port(8080, Duration::from_secs(10)), "nginx did not come up on 127.0.0.1:8080");
    let resp = http_get(8080, "/").unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "unexpected response:\n{resp}");
    assert!(resp.ends_with(NGINX_PAGE), "not the tests' page (see own_nginx_docroot):\n{resp}");
    assert!(http_get(8080, "/does-not-exist").unwrap().starts_with("HTTP/1.1 404"));

    // A worker that has just been forked still carries the master's title for a
    // moment: wait for the titles to settle.
    let start = Instant::now();
    let mut masters = pids_matching("nginx: master");
    while masters.len() != 1 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        masters = pids_matching("nginx: master");
    }
    assert_eq!(masters.len(), 1, "one nginx master expected, found {masters:?}");
    let m = masters[0];
    let uid = status_of(m, "Uid");
    let want = if who == As::Root { "33".to_owned() } else { test_user().0.to_string() };
    assert!(uid.split_whitespace().all(|u| u == want), "nginx runs as uid {uid}, expected {want}");
    assert_ne!(netns(m), netns(std::process::id() as i32), "nginx shares the host's network namespace");
    assert_eq!(status_of(m, "CapEff"), "0000000000000000");
    assert_eq!(status_of(m, "NoNewPrivs"), "1");
    assert_eq!(status_of(m, "Seccomp"), "2");

    let out = svc.stop();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(wait_gone("nginx: ", Duration::from_secs(5)).is_empty(), "nginx processes left behind");
}

#[test]
fn nginx_as_root() {
    require_root();
    nginx(As::Root);
}

#[test]
fn nginx_rootless() {
    require_root();
    nginx(As::User);
}

#[test]
fn redis_as_root() {
    require_root();
    let _g = lock();
    let svc = Service::start(As::Root, &["exec", unit("redis.svc").to_str().unwrap()]);
    assert!(wait_port(6379, Duration::from_secs(10)), "redis did not come up");
    assert_eq!(tcp_roundtrip(6379, b"PING\r\n", "\r\n").unwrap(), "+PONG\r\n");
    let r = tcp_roundtrip(6379, b"SET capexec works\r\nGET capexec\r\n", "works\r\n").unwrap();
    assert!(r.contains("+OK") && r.contains("works"), "{r}");
    let pid = pids_of_program("/usr/bin/redis-server")[0];
    let redis_uid = nix::unistd::User::from_name("redis").unwrap().unwrap().uid.as_raw().to_string();
    assert_eq!(status_of(pid, "Uid").split_whitespace().next().unwrap(), redis_uid);
    // net = "none": redis has its own network namespace, and still listens on
    // the host's 6379 through the socket its broker made and put in place.
    assert_ne!(std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(), std::fs::read_link("/proc/self/ns/net").unwrap());
    // It can connect nowhere: a replica link to the host's loopback fails.
    let r = tcp_roundtrip(6379, b"REPLICAOF 127.0.0.1 11211\r\n", "\r\n").unwrap();
    assert!(r.starts_with("+OK"), "{r}");
    std::thread::sleep(Duration::from_millis(300));
    let info = tcp_roundtrip(6379, b"INFO replication\r\n", "master_link_status").unwrap_or_default();
    assert!(info.contains("master_link_status:down"), "redis connected out despite Landlock:\n{info}");
    let _ = tcp_roundtrip(6379, b"REPLICAOF NO ONE\r\n", "\r\n");
    let out = svc.stop();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(wait_gone_by(|| pids_of_program("/usr/bin/redis-server"), Duration::from_secs(5)).is_empty());
}

#[test]
fn memcached_as_root() {
    require_root();
    let _g = lock();
    let svc = Service::start(As::Root, &["exec", unit("memcached.svc").to_str().unwrap()]);
    assert!(wait_port(11211, Duration::from_secs(10)), "memcached did not come up");
    let r = tcp_roundtrip(11211, b"set k 0 0 7\r\ncapexec\r\nget k\r\n", "END\r\n").unwrap();
    assert!(r.contains("STORED") && r.contains("VALUE k 0 7\r\ncapexec"), "{r}");
    let pid = pids_of_program("/usr/bin/memcached")[0];
    let mc_uid = nix::unistd::User::from_name("memcache").unwrap().unwrap().uid.as_raw().to_string();
    assert_eq!(status_of(pid, "Uid").split_whitespace().next().unwrap(), mc_uid);
    assert_ne!(std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(), std::fs::read_link("/proc/self/ns/net").unwrap());
    let out = svc.stop();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(wait_gone_by(|| pids_of_program("/usr/bin/memcached"), Duration::from_secs(5)).is_empty());
}

/// Rootless: the test user cannot enter /var/lib/redis, so it runs redis ad hoc
/// with its own port and a private /tmp as its directory.
#[test]
fn redis_rootless() {
    require_root();
    let _g = lock();
    let svc = Service::start(
        As::User,
        &[
            "run",
            "--net",
            "host",
            "--bind-tcp",
            "16379",
            "--",
            "/usr/bin/redis-server",
            "--port",
            "16379",
            "--bind",
            "127.0.0.1",
            "--dir",
            "/tmp",
            "--save",
            "",
        ],
    );
    assert!(wait_port(16379, Duration::from_secs(10)), "rootless redis did not come up");
    assert_eq!(tcp_roundtrip(16379, b"PING\r\n", "\r\n").unwrap(), "+PONG\r\n");
    let out = svc.stop();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn memcached_rootless() {
    require_root();
    let _g = lock();
    // Through the transparent broker, rootless: no network of its own, the
    // listening socket made in the host's namespace by the test user's broker.
    let dir = shared_dir().join("units-rootless");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let u = dir.join("memcached-rootless.svc");
    std::fs::write(
        &u,
        "[exec]\nargv = [\"/usr/bin/memcached\", \"-p\", \"21211\", \"-U\", \"0\", \"-l\", \"127.0.0.1\"]\n\
         [namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"tcp:127.0.0.1:21211\"]\n",
    )
    .unwrap();
    std::fs::set_permissions(&u, std::fs::Permissions::from_mode(0o644)).unwrap();
    let svc = Service::start(As::User, &["exec", u.to_str().unwrap()]);
    assert!(wait_port(21211, Duration::from_secs(10)), "rootless memcached did not come up");
    let r = tcp_roundtrip(21211, b"version\r\n", "\r\n").unwrap();
    assert!(r.starts_with("VERSION"), "{r}");
    let out = svc.stop();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn run_sh(who: As, script: &str) -> std::process::Output {
    let mut c = command(who);
    c.args(["run", "--", "/bin/sh", "-c", script]);
    output(c, T)
}

/// `capexec run` gives the program a writable HOME of its own (issue 20:
/// Python's ~/.cache, git's ~/.gitconfig): an empty tmpfs at the invoking
/// user's $HOME path; nothing lands in the real one.
#[test]
fn run_has_a_private_writable_home() {
    for who in [As::Root, As::User] {
        let name = format!("capexec-it-home-{}", std::process::id());
        let mut c = command(who);
        c.env("HOME", "/root").args([
            "run",
            "--",
            "/bin/sh",
            "-c",
            &format!("echo $HOME; mkdir -p $HOME/.cache && touch $HOME/.cache/{name} $HOME/{name} && ls -A $HOME"),
        ]);
        let o = output(c, T);
        assert!(o.status.success(), "{who:?}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("/root\n.cache\n{name}\n"), "{who:?}: a fresh, empty home: {}", text(&o));
        assert!(!std::path::Path::new(&format!("/root/{name}")).exists(), "{who:?}: written to the host's home");
    }
}

/// As root, `capexec run`'s dynamic uid acts as the owner of what --rw and
/// --ro give it (idmapped mounts, issue 20): it writes a root-owned
/// directory and another user's, what it makes belongs to that owner on the
/// host, it reads the owner's own files, git finds a root-owned repository
/// its own; a file of anyone else keeps only its "other" permissions, and
/// no setuid bit can be set on what it made.
// A directory given to act in as its owner with a mount below it whose
// filesystem cannot be idmapped, as /run is on a host with `ip netns add`
// (an nsfs file at /run/netns/NAME) or Docker: the kernel refuses to idmap
// the whole copy (EINVAL), and `capexec run --ro /run` failed to start. The
// directory's own mount is mapped; the mounts below keep their owners.
#[test]
fn run_acts_as_the_owner_beside_a_mount_that_cannot_be_idmapped() {
    require_root();
    use std::os::unix::fs::MetadataExt;
    let base = std::path::PathBuf::from(format!("/tmp/capexec-it-idmap-{}", std::process::id()));
    let (ns, sub) = (base.join("ns"), base.join("sub"));
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(&ns, "").unwrap();
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    mount(Some("/proc/self/ns/net"), &ns, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
    mount(Some("capexec-it"), &sub, Some("tmpfs"), MsFlags::empty(), Some("mode=755")).unwrap();
    let mut c = command(As::Root);
    c.arg("run").arg("--rw").arg(&base).args(["--", "/bin/sh", "-c"]).arg(format!("touch {0}/new && stat -c '%u %n' {0}/ns {0}/sub", base.display()));
    let o = output(c, T);
    for m in [&ns, &sub] {
        umount2(m, MntFlags::MNT_DETACH).unwrap();
    }
    let made = std::fs::symlink_metadata(base.join("new")).map(|m| m.uid());
    let _ = std::fs::remove_dir_all(&base);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(made.unwrap(), 0, "made by the service as the directory's owner");
    let out = String::from_utf8_lossy(&o.stdout);
    // Below, owners as they are: root's files are nobody's in the service's
    // own user namespace.
    assert!(out.contains(&format!("65534 {}", ns.display())) && out.contains(&format!("65534 {}", sub.display())), "{}", text(&o));
}

#[test]
fn run_acts_as_the_owner_of_what_it_is_given() {
    require_root();
    use std::os::unix::fs::MetadataExt;
    let base = std::path::PathBuf::from(format!("/tmp/capexec-it-owner-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let (rw, theirs, repo) = (base.join("rw"), base.join("theirs"), base.join("repo"));
    for d in [&rw, &theirs, &repo] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::write(rw.join("secret"), "root's own\n").unwrap();
    std::fs::set_permissions(rw.join("secret"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(rw.join("foreign"), "4321's\n").unwrap();
    std::os::unix::fs::chown(rw.join("foreign"), Some(4321), Some(4321)).unwrap();
    let script = format!(
        "cd {0} && touch new && mkdir made && cat secret && touch {1}/theirs-new && \
         (echo x >> foreign) 2>/dev/null && echo WROTE-FOREIGN; chmod u+s new 2>/dev/null && echo SET-SUID; id -u",
        rw.display(),
        theirs.display()
    );
    let mut c = command(As::Root);
    c.args(["run", "--rw"]).arg(&rw).arg("--rw").arg(&theirs).args(["--", "/bin/sh", "-c", &script]);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let uid: u32 = out.lines().last().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("{}", text(&o)));
    assert!(uid != 0 && uid != 65534, "a dynamic uid: {}", text(&o));
    assert!(out.starts_with("root's own\n") && !out.contains("WROTE-FOREIGN") && !out.contains("SET-SUID"), "{}", text(&o));
    let owner = |p: &std::path::Path| std::fs::symlink_metadata(p).map(|m| (m.uid(), m.gid(), m.mode() & 0o7000)).unwrap();
    assert_eq!(owner(&rw.join("new")), (0, 0, 0), "made by the service, the directory owner's on the host");
    assert_eq!(owner(&rw.join("made")), (0, 0, 0));
    assert_eq!(owner(&theirs.join("theirs-new")), (65534, 65534, 0));
    assert_eq!(std::fs::read_to_string(rw.join("foreign")).unwrap(), "4321's\n");

    // git in a root-owned repository given with --ro: no "dubious ownership".
    let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(&repo).args(args).output().unwrap();
    assert!(git(&["init", "-q"]).status.success());
    std::fs::write(repo.join("a"), "a\n").unwrap();
    assert!(git(&["add", "a"]).status.success() && git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"]).status.success());
    let mut c = command(As::Root);
    c.args(["run", "--ro"]).arg(&repo).arg("--cwd").arg(&repo).args(["--", "/usr/bin/git", "log", "--format=%s"]);
    let o = output(c, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == "first\n", "{}", text(&o));
}

fn exit_statuses(who: As) {
    assert_eq!(run_sh(who, "exit 7").status.code(), Some(7));
    assert_eq!(run_sh(who, "exit 0").status.code(), Some(0));
    // Killed by SIGUSR1 (10): 128 + 10.
    assert_eq!(run_sh(who, "kill -USR1 $$").status.code(), Some(138));
    let o = {
        let mut c = command(who);
        c.args(["run", "--", "/nonexistent-program"]);
        output(c, T)
    };
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
}

#[test]
fn exit_statuses_as_root() {
    exit_statuses(As::Root);
}

#[test]
fn exit_statuses_rootless() {
    exit_statuses(As::User);
}

fn forwards_signals(who: As) {
    for (sig, name, code) in [
        (nix::sys::signal::SIGTERM, "TERM", 41),
        (nix::sys::signal::SIGINT, "INT", 42),
        (nix::sys::signal::SIGHUP, "HUP", 43),
        (nix::sys::signal::SIGUSR1, "USR1", 44),
        (nix::sys::signal::SIGUSR2, "USR2", 45),
        (nix::sys::signal::SIGQUIT, "QUIT", 46),
    ] {
        let script = format!("trap 'exit {code}' {name}; echo ready; while :; do sleep 0.05; done");
        let mut c = command(who);
        c.args(["run", "--", "/bin/sh", "-c", &script]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "SIG{name} was not forwarded");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(code), "SIG{name}");
    }
}

#[test]
fn forwards_signals_as_root() {
    forwards_signals(As::Root);
}

#[test]
fn forwards_signals_rootless() {
    forwards_signals(As::User);
}

fn nothing_left_behind(who: As, tag: &str) {
    // The service forks away and double-forks; killing capexec with SIGKILL must
    // still take every one of them down (PDEATHSIG on the namespace init, whose
    // death ends the pid namespace).
    let marker = format!("98{}{}", std::process::id() % 1000, tag);
    let script = format!("sleep {marker} & (sleep {marker} &) & setsid sleep {marker} & wait");
    let sleep = format!("sleep {marker}");
    let mut svc = Service::start(who, &["run", "--", "/bin/sh", "-c", &script]);
    let start = Instant::now();
    while pids_exact(&sleep).len() < 3 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(pids_exact(&sleep).len(), 3, "the three sleeps did not start");
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    let left = wait_gone_by(|| pids_exact(&sleep), Duration::from_secs(5));
    assert!(left.is_empty(), "processes survived SIGKILL of capexec: {left:?}");

    // And when the main process exits normally, its leftover children go too.
    let marker2 = format!("{marker}1");
    // Its stdout is not inherited, so waiting for capexec does not wait for it.
    let o = run_sh(who, &format!("sleep {marker2} >/dev/null 2>&1 & exit 3"));
    assert_eq!(o.status.code(), Some(3));
    let left = wait_gone_by(|| pids_exact(&format!("sleep {marker2}")), Duration::from_secs(5));
    assert!(left.is_empty(), "a leftover child survived the service's exit: {left:?}");
}

#[test]
fn nothing_left_behind_as_root() {
    nothing_left_behind(As::Root, "1");
}

#[test]
fn nothing_left_behind_rootless() {
    nothing_left_behind(As::User, "2");
}

fn listen_fds(who: As) {
    let sock = format!("/tmp/capexec-it-lfd-{who:?}.sock");
    let mut c = command(who);
    c.args(["run", "--preopen-listen", "tcp:127.0.0.1:0", "--preopen-listen", &format!("unix:{sock}"), "--"]).args([
        "/bin/sh",
        "-c",
        "echo $LISTEN_FDS $LISTEN_PID $$ $LISTEN_FDNAMES; test -S /proc/self/fd/3 || ls -l /proc/self/fd/3",
    ]);
    let _ = std::fs::remove_file(&sock);
    let o = output(c, T);
    let out = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(f[0], "2", "LISTEN_FDS");
    assert_eq!(f[1], f[2], "LISTEN_PID must be the service's own pid");
    assert_eq!(f[3], "listen0:listen1", "LISTEN_FDNAMES");
    let _ = std::fs::remove_file(&sock);
}

// HOME is a declared user's home from its passwd entry, as systemd sets it
// for User=; for `capexec run`, an empty private tmpfs there (or at the
// caller's $HOME path, for a dynamic uid and rootless).
both!(home_is_the_declared_users, |who: As| {
    let mut c = command(who);
    c.args(["run", "--user", "www-data", "--", "/bin/sh", "-c", "echo $HOME"]);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    // Rootless the user is the caller, whose HOME here is `/`: then the
    // private /tmp.
    let want = if who == As::Root { "/var/www\n" } else { "/tmp\n" };
    assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{}", text(&o));
    let mut c = command(who);
    c.env("HOME", "/srv/capexec-it-home").args(["run", "--", "/bin/sh", "-c", "echo $HOME"]);
    let o = output(c, T);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/srv/capexec-it-home\n", "{}", text(&o));
});

// filesystem.own_files (rpcbind's lock file directly in /run): capexec makes
// the file, owned by the service's user, the one file of /run it may write
// (another in /run it may not make, nor remove this one), and removes it
// at the stop. A link planted at its place beforehand is not followed: the
// start fails, and the link's target is untouched.
#[test]
fn own_files_are_made_for_the_service_alone() {
    require_root();
    let lock = format!("/run/capexec-it{}.lock", std::process::id());
    let other = format!("/run/capexec-it{}.other", std::process::id());
    let _scratch = Scratch(vec![lock.clone().into(), other.clone().into()]);
    let script = format!(
        "echo held > {lock} && cat {lock} && stat -c %U {lock}; touch {other} 2>/dev/null && echo WIDE || echo narrow; rm -f {lock} 2>/dev/null && echo REMOVED || echo kept"
    );
    let unit = test_unit(
        "own-files",
        &format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", {}]\nuser = \"nobody\"\n[filesystem]\nown_files = [\"{lock}\"]\n",
            serde_json::to_string(&script).unwrap()
        ),
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "held\nnobody\nnarrow\nkept\n", "{}", text(&o));
    // Removed by a helper that outlives capexec: soon after, not at once.
    let deadline = Instant::now() + T;
    while std::path::Path::new(&lock).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!std::path::Path::new(&lock).exists() && !std::path::Path::new(&other).exists(), "{}", text(&o));
    // A link at its place: refused, its target untouched.
    let victim = shared_dir().join("own-files-victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert!(!o.status.success() && text(&o).contains("filesystem.own_files"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

// exec.ignore_sigpipe, systemd's IgnoreSIGPIPE= (on there by default, so
// import writes it): the program and what it starts see SIGPIPE ignored, a
// write to a closed pipe fails with EPIPE; without it SIGPIPE ends the
// writer, as after a login. Neither capexec's own ignored SIGPIPE (Rust's)
// nor what its caller ignored reaches the program: here SIGUSR1 and the
// two signals glibc keeps for itself (32 and 33, which its signal() cannot
// reset), ignored by the raw syscall before capexec is executed.
both!(sigpipe_is_ignored_as_declared, |who: As| {
    let script = "grep ^SigIgn: /proc/self/status; yes | head -c 1 >/dev/null; echo \"yes: ${PIPESTATUS[0]}\"";
    let ignoring = "for my $s (10, 32, 33) { my $a = pack('Q4', 1, 0, 0, 0); syscall(13, $s, $a, 0, 8) == 0 or die \"rt_sigaction $s: $!\" } exec @ARGV or die";
    let run = |tag: &str, body: &str| {
        let unit = test_unit(
            &format!("sigpipe-{tag}-{who:?}"),
            &format!("[exec]\nargv = [\"/bin/bash\", \"-c\", {}]\n{body}", serde_json::to_string(script).unwrap()),
        );
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new("perl");
        c.args(["-e", ignoring]).arg(capexec()).arg("exec").arg(&unit);
        if who == As::User {
            let (uid, gid) = test_user();
            c.uid(uid).gid(gid).env("HOME", "/").current_dir("/");
        }
        let o = output(c, T);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let ignored = run("ignored", "ignore_sigpipe = true\n");
    // SIGPIPE is 13: bit 12 of the mask. yes(1) gets EPIPE and fails.
    assert!(ignored.contains("SigIgn:\t0000000000001000\n") && ignored.contains("yes: 1\n"), "{ignored}");
    let default = run("default", "");
    // Killed by SIGPIPE: 128 + 13.
    assert!(default.contains("SigIgn:\t0000000000000000\n") && default.contains("yes: 141\n"), "{default}");
});

// exec.umask, systemd's UMask=: the program, its commands in the sandbox
// and (as root) its privileged ones on the host start with it, whatever
// capexec's caller had: 0 here, under which every new file would be 0666.
// Without it the caller's mask stays, as before.
both!(umask_is_the_declared_one, |who: As| {
    let host = format!("/tmp/capexec-it-umask-{}-{who:?}", std::process::id());
    let run = |tag: &str, body: &str| {
        let privileged = match who {
            As::Root => format!("[[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", \"umask > {host}\"]\nprivileged = true\n"),
            As::User => String::new(),
        };
        let unit = test_unit(
            &format!("umask-{tag}-{who:?}"),
            &format!(
                "[exec]\nargv = [\"/bin/sh\", \"-c\", \"umask; touch /tmp/made; stat -c %a /tmp/made\"]\n{body}\
                 {privileged}[[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", \"echo pre $(umask)\"]\n"
            ),
        );
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new("perl");
        c.args(["-e", "umask 0; exec @ARGV or die"]).arg(capexec()).arg("exec").arg(&unit);
        if who == As::User {
            let (uid, gid) = test_user();
            c.uid(uid).gid(gid).env("HOME", "/").current_dir("/");
        }
        let o = output(c, T);
        assert!(o.status.success(), "{}", text(&o));
        let on_host = std::fs::read_to_string(&host).unwrap_or_default();
        let _ = std::fs::remove_file(&host);
        (String::from_utf8_lossy(&o.stdout).into_owned(), on_host)
    };
    let (declared, on_host) = run("declared", "umask = \"0027\"\n");
    assert_eq!(declared, "pre 0027\n0027\n640\n");
    assert_eq!(on_host, if who == As::Root { "0027\n" } else { "" });
    let (inherited, on_host) = run("inherited", "");
    assert_eq!(inherited, "pre 0000\n0000\n666\n");
    assert_eq!(on_host, if who == As::Root { "0000\n" } else { "" });
});

// exec.nice and exec.oom_score_adjust, systemd's Nice= and OOMScoreAdjust=:
// the program, and the commands and processes it starts, have them. A
// negative nice value needs CAP_SYS_NICE (root, without a private user
// namespace; rootless it is refused with why). A lowered OOM score needs
// CAP_SYS_RESOURCE, which root lacks on these machines: as systemd does, the
// service starts with the score it had, and a warning says why (gdnsd's
// unit asks for -900).
both!(nice_and_oom_score_are_the_declared_ones, |who: As| {
    let script = "echo nice=$(cut -d' ' -f19 /proc/self/stat) oom=$(cat /proc/self/oom_score_adj)";
    let run = |tag: &str, body: &str| {
        let unit = test_unit(
            &format!("nice-{tag}-{who:?}"),
            &format!(
                "[exec]\nargv = [\"/bin/sh\", \"-c\", {}]\n{body}[[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", {}]\n",
                serde_json::to_string(script).unwrap(),
                serde_json::to_string(&format!("{script} >&2")).unwrap()
            ),
        );
        let mut c = command(who);
        c.arg("exec").arg(&unit);
        output(c, T)
    };
    let o = run("raised", "nice = 7\noom_score_adjust = 300\n");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "nice=7 oom=300\n", "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nice=7 oom=300"), "start_pre: {}", text(&o));
    let o = run("lowered", "nice = -5\noom_score_adjust = -100\n");
    match who {
        As::Root => {
            assert!(o.status.success(), "{}", text(&o));
            // CAP_SYS_RESOURCE is bit 24 of the effective set.
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:\t")).and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap();
            let (oom, warned) = match eff & (1 << 24) != 0 {
                true => ("-100\n".to_owned(), false),
                false => (std::fs::read_to_string("/proc/self/oom_score_adj").unwrap(), true),
            };
            assert_eq!(String::from_utf8_lossy(&o.stdout), format!("nice=-5 oom={oom}"), "{}", text(&o));
            let warning = "warning: oom_score_adj stays as it is: writing -100 needs CAP_SYS_RESOURCE";
            assert_eq!(String::from_utf8_lossy(&o.stderr).contains(warning), warned, "{}", text(&o));
        }
        As::User => {
            assert!(!o.status.success() && o.stdout.is_empty(), "{}", text(&o));
            assert!(String::from_utf8_lossy(&o.stderr).contains("set the nice value -5 (a negative value needs CAP_SYS_NICE"), "{}", text(&o));
        }
    }
});

// filesystem.runtime_directory and state_directory, as systemd's
// RuntimeDirectory= and StateDirectory=: created for the service, owned by
// it, writable in the view; the runtime one removed once it stops, the state
// one kept. Rootless, refused with what to do instead.
#[test]
fn managed_directories() {
    let tag = format!("capexec-it-dirs-{}", std::process::id());
    let (run, state) = (PathBuf::from(format!("/run/{tag}")), PathBuf::from(format!("/var/lib/{tag}/db")));
    let unit = test_unit(
        "dirs",
        &format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", \"id -u; stat -c %u {run} {state}; echo pid > {run}/pid && echo data > {state}/data\"]\n\
             [filesystem]\nruntime_directory = [\"{tag}\"]\nstate_directory = [\"{tag}/db\"]\n",
            run = run.display(),
            state = state.display()
        ),
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{}", text(&o));
    assert!(lines[0] != "0" && lines[1] == lines[0] && lines[2] == lines[0], "the directories belong to the service's uid: {lines:?}");
    // Removed by a helper once capexec has exited: waited for, not assumed.
    let deadline = Instant::now() + T;
    while run.exists() {
        assert!(Instant::now() < deadline, "the runtime directory outlived the service");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_to_string(state.join("data")).unwrap(), "data\n", "the state directory is kept");
    let _ = std::fs::remove_dir_all(state.parent().unwrap());

    let mut c = command(As::User);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert!(!o.status.success() && text(&o).contains("only when it runs as root") && text(&o).contains("filesystem.read_write"), "{}", text(&o));
}

// RuntimeDirectoryMode= and the others: the declared mode holds whatever
// the umask, for a directory made and for one found with another, with the
// setgid bit where it is declared (tor's 02755 /run/tor); without one, a
// found directory keeps its own.
#[test]
fn managed_directories_take_their_declared_mode() {
    require_root();
    let tag = format!("capexec-it-dirmode-{}", std::process::id());
    let dirs = ["/run", "/var/lib", "/var/cache", "/var/log"].map(|base| format!("{base}/{tag}"));
    let [run, state, cache, logs] = &dirs;
    for d in [state, cache, logs] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let unit = test_unit(
        "dirmode",
        &format!(
            "[exec]\nargv = [\"/usr/bin/stat\", \"-c\", \"%a\", \"{run}\", \"{state}\", \"{cache}\", \"{logs}\"]\n\
             [filesystem]\nruntime_directory = [\"{tag}\"]\nstate_directory = [\"{tag}\"]\ncache_directory = [\"{tag}\"]\n\
             logs_directory = [\"{tag}\"]\nruntime_directory_mode = \"0700\"\nstate_directory_mode = \"0750\"\ncache_directory_mode = \"02750\"\n"
        ),
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    for d in &dirs[1..] {
        let _ = std::fs::remove_dir_all(d);
    }
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "700\n750\n2750\n777\n", "{}", text(&o));
}

// filesystem.devices: OpenVPN's /dev/net/tun is in the service's /dev, and
// with CAP_NET_ADMIN it makes its interface in the service's own network
// (not the host's); no other device is there (FUSE, which the host has),
// and none can be made. Without the key, the TUN device is not there.
#[test]
fn declared_devices_are_there_and_no_other() {
    require_root();
    const PROGRAM: &str = r#"
import fcntl, os, socket, struct
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'cxtun0', 0x0001 | 0x1000))
print('interfaces', sorted(n for _, n in socket.if_nameindex()))
print('dev/net', os.listdir('/dev/net'))
for p in ['/dev/fuse', '/dev/kvm']:
    try:
        os.open(p, os.O_RDWR); print('OPENED', p)
    except OSError as e:
        print('absent', p, e.errno)
try:
    os.mknod('/dev/shm/tun2', 0o600 | 0o020000, os.makedev(10, 200)); print('MADE a device node')
except OSError as e:
    print('mknod refused', e.errno)
"#;
    let body = |devices: &str| {
        format!(
            "[exec]\nargv = [\"/usr/bin/python3\", \"-c\", {PROGRAM:?}]\nuser = \"root\"\n[filesystem]\n{devices}[capabilities]\nkeep = [\"CAP_NET_ADMIN\"]\n"
        )
    };
    let unit = test_unit("devices", &body("devices = [\"/dev/net/tun\"]\n"));
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("interfaces ['cxtun0', 'lo']") && out.contains("dev/net ['tun']"), "{}", text(&o));
    assert!(out.contains("absent /dev/fuse 2") && out.contains("absent /dev/kvm 2") && out.contains("mknod refused 1"), "{}", text(&o));
    let host = std::process::Command::new("ip").args(["link", "show", "cxtun0"]).output().unwrap();
    assert!(!host.status.success(), "the interface was made on the host");
    let unit = test_unit("no-devices", &body(""));
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert!(!o.status.success() && text(&o).contains("No such file or directory: '/dev/net/tun'"), "{}", text(&o));
}

// ESCAPE: a directory capexec made for the service is the service's; a
// symlink it leaves there must not lead the next start (as root) to create a
// directory elsewhere and hand it over. Here app/db is made a link to a
// host directory the service cannot write, and a later declaration asks for
// app/db/x.
#[test]
fn managed_directories_follow_no_symlink() {
    let tag = format!("capexec-it-dirlink-{}", std::process::id());
    let app = PathBuf::from(format!("/var/lib/{tag}"));
    let target = shared_dir().join(format!("{tag}-target"));
    std::fs::create_dir_all(&target).unwrap();
    let plant = test_unit(
        "dirlink-plant",
        &format!("[exec]\nargv = [\"/bin/ln\", \"-s\", \"{}\", \"{}/db\"]\n[filesystem]\nstate_directory = [\"{tag}\"]\n", target.display(), app.display()),
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&plant);
    let o = output(c, T);
    assert!(o.status.success() && app.join("db").symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()), "{}", text(&o));
    let follow = test_unit("dirlink-follow", &format!("[exec]\nargv = [\"/bin/true\"]\n[filesystem]\nstate_directory = [\"{tag}\", \"{tag}/db/x\"]\n"));
    let mut c = command(As::Root);
    c.arg("exec").arg(&follow);
    let o = output(c, T);
    let made = target.join("x").exists();
    let _ = std::fs::remove_dir_all(&app);
    let _ = std::fs::remove_dir_all(&target);
    assert!(!made, "ESCAPED: capexec created {}/x for the service through its symlink:\n{}", target.display(), text(&o));
    assert!(!o.status.success() && text(&o).contains("no symlink may lead to it"), "{}", text(&o));
}

// ESCAPE: a preopened datagram socket was bound on the host, but what it
// sends to is looked up from the service: no host path outside its view, no
// abstract socket outside its Landlock domain, by sendto or connect.
both!(unix_datagram_preopen_reaches_nothing_more, |who: As| {
    let id = format!("{who:?}-{}", std::process::id());
    let own = PathBuf::from(format!("/tmp/capexec-it-dgown-{id}.sock"));
    let secret = shared_dir().join(format!("dgsecret-{id}.sock"));
    let _ = std::fs::remove_file(&own);
    let _ = std::fs::remove_file(&secret);
    let host = std::os::unix::net::UnixDatagram::bind(&secret).unwrap();
    set_mode(&secret, 0o666);
    let abstract_name = format!("capexec-it-dgsecret-{id}");
    let host_abstract = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::UnixDatagram::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap()).unwrap()
    };
    let mut c = command(who);
    c.args(["run", "--preopen-listen", &format!("unixgram:{}", own.display()), "--"]).arg(probe()).args([
        "dgram-reach",
        secret.to_str().unwrap(),
        &abstract_name,
    ]);
    let o = output(c, T);
    let _ = std::fs::remove_file(&own);
    let _ = std::fs::remove_file(&secret);
    let out = text(&o);
    assert!(o.status.success() && !out.contains("ESCAPED") && out.contains("BLOCKED"), "{out}");
    for s in [&host, &host_abstract] {
        s.set_nonblocking(true).unwrap();
        assert!(s.recv(&mut [0u8; 8]).is_err(), "ESCAPED: a datagram reached the host socket:\n{out}");
    }
});

// In its own network namespace a service binds a port below 1024 with no
// capability (net.ipv4.ip_unprivileged_port_start = 0 there, as Docker
// sets it): Debian's nginx unit tests its configuration in ExecStartPre=
// (`nginx -t`, no broker), which binds port 80. Landlock still decides
// which ports (81 is refused), and the host sees nothing of the bind.
both!(a_low_port_binds_only_in_the_services_own_network_namespace, |who: As| {
    let prog = "import socket\n\
                s = socket.socket(); s.bind(('127.0.0.1', 80)); s.listen(); print('bound 80')\n\
                try: socket.socket().bind(('127.0.0.1', 81)); print('bound 81')\n\
                except OSError as e: print('81:', e.errno)\n\
                socket.create_connection(('127.0.0.1', 80)).close(); print('served')\n";
    let mut c = command(who);
    c.args(["run", "--bind-tcp", "80", "--connect-tcp", "80", "--", "/usr/bin/python3", "-c", prog]);
    let o = output(c, T);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(0), "bound 80\n81: 13\nserved\n"), "{}", text(&o));
    assert!(std::net::TcpStream::connect("127.0.0.1:80").is_err(), "ESCAPED: the service's port 80 is the host's");
});

// `unixgram:` preopens: a datagram socket bound at a host path (syslog's
// /dev/log) that the service receives on, as root and rootless.
both!(unix_datagram_preopen, |who: As| {
    // In /tmp, where the rootless test user may create it.
    let sock = std::path::PathBuf::from(format!("/tmp/capexec-it-dgram-{who:?}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let mut c = command(who);
    c.args(["run", "--preopen-listen", &format!("unixgram:{}", sock.display()), "--", "/bin/sh", "-c", "exec dd bs=64 count=1 status=none <&3"]);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + T;
    while !sock.exists() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the datagram socket never appeared at {}:\n{}", sock.display(), text(&child.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    // The socket exists before the service runs: the datagram waits in it.
    client.send_to(b"<13>hello from the host", &sock).unwrap();
    let o = wait_output(child, T);
    let _ = std::fs::remove_file(&sock);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "<13>hello from the host", "{}", text(&o));
});

#[test]
fn listen_fds_as_root() {
    listen_fds(As::Root);
}

#[test]
fn listen_fds_rootless() {
    listen_fds(As::User);
}

fn preopened_files_and_udp(who: As) {
    // A file opened for appending (created for the service), a UDP socket, and
    // the fd numbers and names the service sees.
    let dir = shared_dir().join(format!("pre-{who:?}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let log = dir.join("out.log");
    let _ = std::fs::remove_file(&log);
    let unit = dir.join("pre.svc");
    std::fs::write(
        &unit,
        format!(
            "[[preopen.listen]]\naddress = \"udp:127.0.0.1:0\"\nname = \"dns\"\n[[preopen.file]]\npath = \"{}\"\nmode = \"append\"\ncreate = true\nname = \"log\"\n",
            log.display()
        ),
    )
    .unwrap();
    let mut c = command(who);
    c.args(["run", "--unit", unit.to_str().unwrap(), "--", "/bin/sh", "-c"])
        .arg("echo $LISTEN_FDS $LISTEN_FDNAMES; echo hello >&4; test -S /proc/self/fd/3 && echo socket3");
    let o = output(c, T);
    if who == As::User {
        // A host UDP socket needs the network guard, which needs root.
        assert!(!o.status.success() && text(&o).contains("would run weaker than declared without capexec's network guard"), "{}", text(&o));
        return;
    }
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2 dns:log") && out.contains("socket3"), "{out}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "hello\n");
    // Created for the service: owned by the user it ran as (root: its dynamic uid).
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&log).unwrap());
    assert_ne!(owner, 0, "the created file must belong to the service, not root");
}

#[test]
fn preopened_files_and_udp_as_root() {
    preopened_files_and_udp(As::Root);
}

#[test]
fn preopened_files_and_udp_rootless() {
    preopened_files_and_udp(As::User);
}

fn options_open_things_up(who: As) {
    // --cap keeps exactly that capability.
    let mut c = command(who);
    c.args(["run", "--cap", "net_bind_service", "--", "/bin/sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status"]);
    let o = output(c, T);
    let out = String::from_utf8_lossy(&o.stdout);
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert!(out.contains(&format!("{set}:\t0000000000000400")), "{set} should hold only CAP_NET_BIND_SERVICE:\n{out}");
    }
    // --allow-syscall opens a syscall the default list denies.
    let mut c = command(who);
    c.args(["run", "--allow-syscall", "@io-uring", "--"]).arg(probe()).arg("io-uring-allowed");
    let o = output(c, T);
    assert!(o.status.success() && text(&o).contains("BLOCKED"), "{}", text(&o));
    // --ro and --rw: the one is readable only, the other writable.
    let dir = shared_dir().join(format!("rw-{who:?}"));
    let ro = shared_dir().join(format!("ro-{who:?}"));
    for d in [&dir, &ro] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    std::fs::write(ro.join("f"), "ro").unwrap();
    let mut c = command(who);
    c.args(["run", "--rw", dir.to_str().unwrap(), "--ro", ro.to_str().unwrap(), "--", "/bin/sh", "-c"]).arg(format!(
        "echo w > {d}/new && cat {r}/f && ! echo x 2>/dev/null > {r}/g",
        d = dir.display(),
        r = ro.display()
    ));
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(dir.join("new")).unwrap(), "w\n");
    assert!(!ro.join("g").exists());
    // A program written into a --rw directory cannot be run (writable means
    // noexec); into a --rw-exec one it can, and runs there, not elsewhere.
    let rwx = shared_dir().join(format!("rwx-{who:?}"));
    std::fs::create_dir_all(&rwx).unwrap();
    std::fs::set_permissions(&rwx, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    for (flag, d, runs) in [("--rw", &dir, false), ("--rw-exec", &rwx, true)] {
        let _ = std::fs::remove_file(d.join("t"));
        let mut c = command(who);
        c.args(["run", flag, d.to_str().unwrap(), "--", "/bin/sh", "-c"])
            .arg(format!("cp /bin/true {d}/t && chmod 755 {d}/t && {d}/t && echo RAN", d = d.display()));
        let o = output(c, T);
        assert_eq!(String::from_utf8_lossy(&o.stdout).contains("RAN"), runs, "{flag}: {}", text(&o));
        assert!(d.join("t").exists(), "{flag}: the copy was written: {}", text(&o));
        if !runs {
            assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"), "{flag}: {}", text(&o));
        }
    }
}

#[test]
fn options_open_things_up_as_root() {
    options_open_things_up(As::Root);
    // --user (root only) and --env.
    let mut c = command(As::Root);
    c.args(["run", "--user", "nobody", "--env", "GREETING=hello world", "--", "/bin/sh", "-c", "echo $(id -u) $GREETING"]);
    let o = output(c, T);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "65534 hello world", "{}", text(&o));
}

#[test]
fn options_open_things_up_rootless() {
    options_open_things_up(As::User);
}

/// As root, a service whose host UDP sockets need the network guard is
/// refused where no cgroup v2 hierarchy is mounted to attach it to, and
/// told so: `ip netns exec` mounts a /sys of its own without the host's
/// cgroup mounts (trying pdns-recursor as a new user would, the help said
/// to run as root, which it was).
#[test]
fn without_cgroup_v2_here_root_is_told_what_is_missing() {
    require_root();
    let net = NetNs::new(&format!("capexec-it-nov2-{}", std::process::id()));
    let u = test_unit(
        "udp-nov2",
        &format!("[exec]\nargv = [\"/bin/true\"]\n\n[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"udp:127.0.0.1:{}\"\n", unused_port()),
    );
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &net.name]).arg(capexec()).arg("exec").arg(&u);
    let o = output(c, T);
    let out = text(&o);
    assert!(!o.status.success() && out.contains("would run weaker than declared"), "{out}");
    assert!(out.contains("nsenter --net=/run/netns/NAME") && !out.contains("run it as root"), "{out}");
}

/// The shipped DNS units (unbound, dnsmasq) answer over UDP and TCP through
/// sockets their broker made, from a network namespace of their own, as the
/// package's user when started by root (their answers go out through the
/// network guard's remembered peers). Rootless they are refused: nothing
/// would limit their host UDP sockets.
fn dns_unit(who: As, unit_name: &str, program: &str, port: u16, want: &str, user: &str) {
    let _g = lock();
    if who == As::User {
        // Their host UDP sockets need the network guard, which needs root:
        // refused rootless, with what to do.
        let mut c = command(who);
        c.args(["exec", unit(unit_name).to_str().unwrap()]);
        let o = output(c, Duration::from_secs(30));
        let out = text(&o);
        assert!(!o.status.success() && out.contains("would run weaker than declared") && out.contains("help: run it as root"), "{out}");
        assert!(pids_of_program(program).is_empty(), "{unit_name} started anyway");
        return;
    }
    let svc = Service::start(who, &["exec", unit(unit_name).to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = String::new();
    while Instant::now() < deadline && got != want {
        got = dig(port, false, "www.capexec.test");
    }
    assert_eq!(got, want, "{unit_name} did not answer over UDP");
    assert_eq!(dig(port, true, "www.capexec.test"), want, "{unit_name} did not answer over TCP");
    let pid = pids_of_program(program)[0];
    let uid = match who {
        As::Root => nix::unistd::User::from_name(user).unwrap().unwrap().uid.as_raw(),
        As::User => test_user().0,
    };
    assert_eq!(status_of(pid, "Uid").split_whitespace().next().unwrap(), uid.to_string());
    assert_ne!(netns(pid), netns(std::process::id() as i32), "{unit_name} shares the host's network namespace");
    let out = svc.stop();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(wait_gone_by(|| pids_of_program(program), Duration::from_secs(5)).is_empty());
}

both!(unbound_unit, |who| dns_unit(who, "unbound.svc", "/usr/sbin/unbound", 8053, "192.0.2.53", "unbound"));
both!(dnsmasq_unit, |who| dns_unit(who, "dnsmasq.svc", "/usr/sbin/dnsmasq", 8054, "192.0.2.54", "dnsmasq"));

// A forking daemon that writes its pid file well after its starter exited
// (apache's master on a busy machine): init waits for the file, as systemd
// does, and a stop reaches the daemon. Init once read it for 100 ms only,
// then stood for nobody; without a pid namespace its stop reached no
// process, and the stop waited out the service's stop timeout.
#[test]
fn a_late_pid_file_still_names_the_daemon_to_stop() {
    require_root();
    let (dir, _scratch) = writable_dir("latepid");
    let d = dir.to_str().unwrap();
    let prog = "import os, sys, time\n\
                d = sys.argv[1]\n\
                if os.fork(): sys.exit(0)\n\
                os.setsid()\n\
                time.sleep(0.6)\n\
                open(d + '/daemon.pid', 'w').write(str(os.getpid()))\n\
                while True: time.sleep(1)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, d]).unwrap();
    let unit = dir.join("late.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = {argv}\n[namespaces]\npid = false\n[filesystem]\nread_write = [{}]\n[service]\ntype = \"forking\"\npid_file = {}\nstop_timeout = \"60s\"\n",
            serde_json::to_string(d).unwrap(),
            serde_json::to_string(&format!("{d}/daemon.pid")).unwrap()
        ),
    )
    .unwrap();
    let s = Service::start(As::Root, &["exec", unit.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + T;
    while std::fs::read_to_string(dir.join("daemon.pid")).map_or(true, |p| p.is_empty()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let daemon: i32 = std::fs::read_to_string(dir.join("daemon.pid")).unwrap().trim().parse().unwrap();
    let mut s = s;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid()), nix::sys::signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut ended = false;
    while !ended && std::time::Instant::now() < deadline {
        ended = s.child.try_wait().unwrap().is_some();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Left running, it would hold the test's pipes: ended here either way.
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon), None).is_ok();
    if alive {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon), nix::sys::signal::SIGKILL);
    }
    assert!(ended && !alive, "the stop did not reach the daemon {daemon} within 10 s (capexec ended: {ended})");
}

// A pid file the daemon left at its stop (killed by SIGTERM, as sslh is)
// is removed, as systemd removes a `PIDFile=`, also where capexec did not
// make it (a read_write directory); in the private /tmp it is the
// service's own file, and the host's file at that path stays.
#[test]
fn a_pid_file_the_daemon_left_is_removed_at_the_stop() {
    require_root();
    let (dir, _scratch) = writable_dir("leftpid");
    let d = dir.to_str().unwrap();
    let host_tmp = format!("/tmp/capexec-it{}-leftpid.pid", std::process::id());
    std::fs::write(&host_tmp, "the host's\n").unwrap();
    let _tmp = Scratch(vec![host_tmp.clone().into()]);
    let prog = "import os, sys, time\n\
                open(sys.argv[1], 'w').write(str(os.getpid()))\n\
                open(sys.argv[2] + '/running', 'w').close()\n\
                while True: time.sleep(1)\n";
    for pid_file in [format!("{d}/daemon.pid"), host_tmp.clone()] {
        let _ = std::fs::remove_file(dir.join("running"));
        let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, &pid_file, d]).unwrap();
        let unit = dir.join("left.svc");
        std::fs::write(
            &unit,
            format!(
                "[exec]\nargv = {argv}\n[namespaces]\npid = false\n[filesystem]\nread_write = [{}]\n[service]\npid_file = {}\n",
                serde_json::to_string(d).unwrap(),
                serde_json::to_string(&pid_file).unwrap()
            ),
        )
        .unwrap();
        let s = Service::start(As::Root, &["exec", unit.to_str().unwrap()]);
        let deadline = std::time::Instant::now() + T;
        while !dir.join("running").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(dir.join("running").exists(), "the daemon never ran");
        let o = s.stop();
        let deadline = std::time::Instant::now() + T;
        while std::path::Path::new(&pid_file).exists() && pid_file.starts_with(d) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        match pid_file.starts_with(d) {
            true => assert!(!std::path::Path::new(&pid_file).exists(), "the pid file the daemon left is still there: {}", text(&o)),
            false => assert_eq!(std::fs::read_to_string(&host_tmp).unwrap(), "the host's\n", "the host's file at the private /tmp's path"),
        }
    }
}

// The pid file's directory is the service's to write: it may put a link
// there in place of a directory on the way to the pid file, toward another
// file of that name. capexec, as root, reaches the directory without
// following a link, and removes a regular file only: the file the link
// leads to stays.
#[test]
fn a_pid_file_behind_a_swapped_directory_is_not_removed() {
    require_root();
    let (dir, _scratch) = writable_dir("swappid");
    let d = dir.to_str().unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    set_mode(&dir.join("run"), 0o777);
    std::fs::create_dir_all(dir.join("victim")).unwrap();
    std::fs::write(dir.join("victim/daemon.pid"), "not the service's\n").unwrap();
    let runtime = format!("capexec-it{}-swappid", std::process::id());
    let prog = "import os, sys, time\n\
                d = sys.argv[1]\n\
                open(d + '/run/daemon.pid', 'w').write(str(os.getpid()))\n\
                os.rename(d + '/run', d + '/run.old')\n\
                os.symlink(d + '/victim', d + '/run')\n\
                open(d + '/running', 'w').close()\n\
                while True: time.sleep(1)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, d]).unwrap();
    let unit = dir.join("swap.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = {argv}\n[namespaces]\npid = false\n[filesystem]\nread_write = [{}]\nruntime_directory = [\"{runtime}\"]\n[service]\npid_file = {}\n",
            serde_json::to_string(d).unwrap(),
            serde_json::to_string(&format!("{d}/run/daemon.pid")).unwrap()
        ),
    )
    .unwrap();
    let s = Service::start(As::Root, &["exec", unit.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + T;
    while !dir.join("running").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(dir.join("running").exists(), "the daemon never ran");
    let o = s.stop();
    // The runtime directory goes after the pid file: once it is gone, so
    // is whatever capexec removes.
    let gone = format!("/run/{runtime}");
    let deadline = std::time::Instant::now() + T;
    while std::path::Path::new(&gone).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!std::path::Path::new(&gone).exists(), "the stop never ended: {}", text(&o));
    assert_eq!(std::fs::read_to_string(dir.join("victim/daemon.pid")).unwrap(), "not the service's\n", "removed through the link");
}

// A stop while init still waits for a forking daemon's pid file (one that
// never writes it) is passed on at once, not after the wait: init waits
// for the file up to the start timeout (here 60 s), and the stop signal
// once stayed pending all that while. In its own pid namespace (declared:
// a pid file alone makes it the host's), the stop reaches every process left.
#[test]
fn a_stop_does_not_wait_for_a_missing_pid_file() {
    require_root();
    let (dir, _scratch) = writable_dir("nopid");
    let d = dir.to_str().unwrap();
    let prog = "import os, sys, time\n\
                d = sys.argv[1]\n\
                if os.fork(): sys.exit(0)\n\
                os.setsid()\n\
                open(d + '/running', 'w').close()\n\
                while True: time.sleep(1)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog, d]).unwrap();
    let unit = dir.join("nopid.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = {argv}\n[namespaces]\npid = true\n[filesystem]\nread_write = [{}]\n[service]\ntype = \"forking\"\npid_file = {}\nready_timeout = \"60s\"\n",
            serde_json::to_string(d).unwrap(),
            serde_json::to_string(&format!("{d}/daemon.pid")).unwrap()
        ),
    )
    .unwrap();
    let mut s = Service::start(As::Root, &["exec", unit.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + T;
    while !dir.join("running").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(dir.join("running").exists(), "the daemon never ran");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid()), nix::sys::signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut ended = None;
    while ended.is_none() && std::time::Instant::now() < deadline {
        ended = s.child.try_wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if ended.is_none() {
        let _ = s.child.kill();
    }
    assert!(ended.is_some(), "capexec exec did not end within 10 s of its stop while init waited for the pid file");
}

// Under `capexec run` (and so `exec`), what the program sends to /dev/log
// comes out on capexec's standard error, without syslog's header, root and
// rootless. A program that binds /dev/log itself (a syslog daemon's
// unixgram preopen) keeps it: capexec adds none then.
both!(syslog_lines_come_out_on_standard_error, |who: As| {
    let mut c = command(who);
    c.args(["run", "--", "/bin/sh", "-c", "logger -t probe 'to syslog' && readlink /dev/log"]);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/.capexec/log\n", "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().any(|l| l.starts_with("probe") && l.ends_with(": to syslog")), "{}", text(&o));
});

// A chrooted daemon's syslog(3) sends to /dev/log inside its chroot (haproxy
// chroots into /var/lib/haproxy, whose unit binds /dev/log there):
// `filesystem.syslog_sockets` puts capexec's socket there too, root and
// rootless. Its directory holds the socket alone and is read-only: the
// service can neither replace the socket nor leave files there.
both!(syslog_lines_from_a_chroot_come_out_on_standard_error, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("jail-{who:?}"));
    let jail = dir.join("jail");
    std::fs::create_dir_all(jail.join("dev")).unwrap();
    let prog = format!(
        "import os, socket\n\
         print(sorted(os.listdir({jail:?} + '/dev')), flush=True)\n\
         try:\n\
         \x20   open({jail:?} + '/dev/planted', 'w')\n\
         \x20   print('planted', flush=True)\n\
         except OSError as e:\n\
         \x20   print('refused', e.errno, flush=True)\n\
         os.chroot({jail:?})\n\
         socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'<13>probe: from the jail', '/dev/log')\n"
    );
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", &prog]).unwrap();
    let unit = test_unit(
        &format!("jail-{who:?}"),
        &format!(
            "[exec]\nargv = {argv}\n[filesystem]\nread_write = [{:?}]\nsyslog_sockets = [{:?}]\n\
             [capabilities]\nkeep = [\"CAP_SYS_CHROOT\"]\n[seccomp]\nallow = [\"@system-service\", \"chroot\"]\n",
            dir.display(),
            jail.join("dev/log").display()
        ),
    );
    let mut c = command(who);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("['log']\nrefused 30\n"), "the chroot's dev holds the socket alone, read-only (EROFS):\n{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().any(|l| l == "probe: from the jail"), "{}", text(&o));
    assert!(!jail.join("dev/log").exists() && !jail.join("dev/planted").exists(), "nothing is left on the host");
});

// ESCAPE: descriptors sent along with syslog datagrams (SCM_RIGHTS) never
// reach `capexec exec`, whose relay reads the service's /dev/log: 2,400 of
// them would fill its descriptor table. Root and rootless.
both!(descriptors_sent_to_dev_log_do_not_reach_capexec_exec, |who: As| {
    use std::io::BufRead;
    let prog = "import array, os, socket, time\n\
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                fd = os.open('/dev/null', os.O_RDONLY)\n\
                for i in range(300):\n\
                \x20   s.sendmsg([b'<13>fds: %d' % i], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [fd] * 8))], 0, '/dev/log')\n\
                print('sent', flush=True)\n\
                time.sleep(600)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog]).unwrap();
    let unit = test_unit(&format!("syslog-fds-{who:?}"), &format!("[exec]\nargv = {argv}\n"));
    let mut s = Service::start(who, &["exec", unit.to_str().unwrap()]);
    let mut line = String::new();
    std::io::BufReader::new(s.child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "sent\n");
    // Its last line relayed: every datagram has been read by then.
    let mut err = std::io::BufReader::new(s.child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("fds: 299") {
        seen.clear();
        assert!(err.read_line(&mut seen).unwrap() > 0, "capexec exec ended before the last line");
    }
    let held = std::fs::read_dir(format!("/proc/{}/fd", s.pid())).unwrap().count();
    let _ = s.stop();
    assert!(held < 100, "capexec exec holds {held} descriptors after the service sent 2,400 along with its syslog lines");
});
