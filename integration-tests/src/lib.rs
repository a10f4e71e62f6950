//! Shared helpers for the end-to-end tests: locating the binaries, the
//! unprivileged test user, running commands with a timeout, and services that
//! are stopped when a test ends.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The unprivileged user that rootless tests run as; .ci/run creates it.
pub const TEST_USER: &str = "capexec-test";

/// A directory every user can read, holding copies of capexec, the escape probe
/// and the shipped units (the work tree may sit under a directory that the test
/// user or a service user such as www-data cannot enter).
pub fn shared_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_shared_dirs();
        let dir = PathBuf::from(format!("/tmp/capexec-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Test executables live in target/<profile>/deps; the binaries one level up.
        let exe = std::env::current_exe().unwrap();
        let bin_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        for b in ["capexec", "capexec-oci", "escape-probe", "client-probe", "learn-probe", "libcapexec_client.so"] {
            let src = bin_dir.join(b);
            assert!(src.exists(), "{} is missing: build the workspace first (`cargo test --workspace` does)", src.display());
            std::fs::copy(&src, dir.join(b)).unwrap();
            std::fs::set_permissions(dir.join(b), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        copy_tree(&repo_root().join("units"), &dir.join("units"));
        own_nginx_docroot(&dir);
        dir
    })
}

/// The page the tests' nginx serves at `/` (and [`NGINX_OTHER_PAGE`] at
/// `/other.html`).
pub const NGINX_PAGE: &str = "<!DOCTYPE html>\n<title>capexec test</title>\n<p>served by nginx under capexec</p>\n";
pub const NGINX_OTHER_PAGE: &str = "<p>another page</p>\n";

/// The tests' copy of the shipped nginx unit serves a document root the tests
/// own instead of /var/www/html, whose index depends on which other packages
/// are installed (apache2 puts an index.html there, which nginx then prefers).
/// Everything else about the unit is as shipped.
fn own_nginx_docroot(dir: &Path) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::set_permissions(&www, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, text) in [("index.html", NGINX_PAGE), ("other.html", NGINX_OTHER_PAGE)] {
        std::fs::write(www.join(name), text).unwrap();
        std::fs::set_permissions(www.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    for f in ["units/nginx.svc", "units/nginx/nginx.conf"] {
        let p = dir.join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("/var/www/html"), "{} no longer serves /var/www/html: update own_nginx_docroot", p.display());
        std::fs::write(&p, text.replace("/var/www/html", www.to_str().unwrap())).unwrap();
    }
}

/// Each test process copies capexec and the probes (~125 MB) into its own
/// directory, kept for looking at after a failure. Those of processes that
/// have ended go at the next start: run after run on one machine they filled
/// its disk (seen: 75 GB after a few hundred runs, and tests failing with
/// ENOSPC).
fn remove_stale_shared_dirs() {
    for e in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("capexec-it-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn capexec() -> PathBuf {
    shared_dir().join("capexec")
}

pub fn capexec_oci() -> PathBuf {
    shared_dir().join("capexec-oci")
}

pub fn probe() -> PathBuf {
    shared_dir().join("escape-probe")
}

pub fn unit(name: &str) -> PathBuf {
    shared_dir().join("units").join(name)
}

/// Who a test runs capexec as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    User,
}

pub fn test_user() -> (u32, u32) {
    let u = nix::unistd::User::from_name(TEST_USER)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the unprivileged test user `{TEST_USER}` does not exist: create it with `useradd --system {TEST_USER}` (.ci/run does)"));
    (u.uid.as_raw(), u.gid.as_raw())
}

pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests run as root (CI does); run them with sudo");
}

pub fn command(who: As) -> Command {
    require_root();
    let mut c = Command::new(capexec());
    if who == As::User {
        let (uid, gid) = test_user();
        // std drops the supplementary groups itself when switching from root.
        c.uid(uid).gid(gid);
        c.env("HOME", "/").current_dir("/");
    }
    c
}

/// Runs to completion, killing the command after `timeout`.
pub fn output(mut c: Command, timeout: Duration) -> Output {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let desc = format!("{c:?}");
    let child = c.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    wait_for_output(child, timeout, &desc)
}

/// The output of `child` (spawned with piped stdout and stderr) once it
/// ends; killed, and the test failed, after `timeout`.
pub fn wait_output(child: Child, timeout: Duration) -> Output {
    wait_for_output(child, timeout, "the command")
}

fn wait_for_output(mut child: Child, timeout: Duration, desc: &str) -> Output {
    // Read while waiting: a command that writes more than a pipe holds
    // (64 KiB: `capexec learn`'s report of a big run) would block on it.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // What the command left running may hold the pipes: read until they
    // close, but not past the timeout (and at least 5 s).
    let deadline = (start + timeout).max(Instant::now() + Duration::from_secs(5));
    let collect = |h: std::thread::JoinHandle<Vec<u8>>| {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            b"(still held open by a process the command left running)".to_vec()
        }
    };
    let (stdout, stderr) = (collect(stdout), collect(stderr));
    match status {
        Some(status) => Output { status, stdout, stderr },
        None => panic!("timed out after {timeout:?}: {desc}\nstdout: {}\nstderr: {}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr)),
    }
}

pub fn text(o: &Output) -> String {
    format!("status: {:?}\nstdout:\n{}\nstderr:\n{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A `capexec exec` in the background, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Service {
    pub child: Child,
    pub name: String,
}

impl Service {
    pub fn start(who: As, args: &[&str]) -> Service {
        let mut c = command(who);
        c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().expect("spawn capexec");
        Service { child, name: args.join(" ") }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM and wait; returns the exit status and captured output.
    pub fn stop(mut self) -> Output {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::SIGTERM).ok();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::SIGTERM).ok();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Polls `find` until it returns nothing or `timeout` passes; returns what is left.
/// What `find` finds once it finds anything (empty after `timeout`): a
/// process a service runs may still be the shell that execs it, or a child
/// forked but not yet exec'd, when the service is reported started.
pub fn wait_found_by(find: impl Fn() -> Vec<i32>, timeout: Duration) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let found = find();
        if !found.is_empty() || start.elapsed() > timeout {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `timeout` for `child` to end; its status, or `None`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_gone_by(find: impl Fn() -> Vec<i32>, timeout: Duration) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let left = find();
        if left.is_empty() || start.elapsed() > timeout {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Host pids whose command line contains `needle` (exact argv[0] match is too
/// strict for nginx, which rewrites its title).
pub fn pids_matching(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmd).replace('\0', " ").contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Host pids whose argv[0] is `program` (also after a rewritten process title
/// such as redis's "/usr/bin/redis-server 127.0.0.1:6379").
pub fn pids_of_program(program: &str) -> Vec<i32> {
    pids_matching(program)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let first = c.split(|b| *b == 0).next().unwrap_or_default();
                    first == program.as_bytes() || first.starts_with(format!("{program} ").as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Host pids whose whole command line is exactly `cmdline` (arguments joined by spaces).
pub fn pids_exact(cmdline: &str) -> Vec<i32> {
    pids_matching(cmdline)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).trim_end_matches('\0').replace('\0', " ") == cmdline)
                .unwrap_or(false)
        })
        .collect()
}

/// A minimal HTTP/1.0 GET over loopback; returns the whole response.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut r = String::new();
    s.read_to_string(&mut r)?;
    Ok(r)
}

/// Sends one request line to a text protocol server and reads the reply.
pub fn tcp_roundtrip(port: u16, req: &[u8], until: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(req)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains(until) {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A `capexec daemon` with its own directories (socket, state, logs, units)
/// under a fresh directory, and its own cgroup parent. Stopped on drop
/// (SIGTERM, then SIGKILL).
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub who: As,
    pub cgroup: String,
}

impl Daemon {
    /// A daemon directory with an empty `units/`; call [`Daemon::start`] after
    /// writing units.
    pub fn prepare(who: As, tag: &str) -> Daemon {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = shared_dir().join(format!("daemon-{tag}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("units")).unwrap();
        if who == As::User {
            let (uid, gid) = test_user();
            for d in [dir.clone(), dir.join("units")] {
                std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
            }
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Daemon { child: None, dir, who, cgroup: format!("capexec-it-{}-{n}", std::process::id()) }
    }

    pub fn units(&self) -> PathBuf {
        self.dir.join("units")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/control.sock")
    }

    pub fn write_unit(&self, name: &str, text: &str) {
        let p = self.units().join(format!("{name}.svc"));
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    pub fn start(&mut self) {
        self.start_with(&["--log-files"], &[]);
    }

    /// Starts the daemon with extra arguments and environment.
    pub fn start_with(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let mut c = command(self.who);
        c.envs(env.iter().copied());
        c.arg("daemon")
            .args(args)
            .arg("--runtime-dir")
            .arg(self.dir.join("run"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--log-dir")
            .arg(self.dir.join("logs"))
            .arg("--unit-path")
            .arg(self.units())
            .arg("--cgroup")
            .arg(&self.cgroup)
            .env("CAPEXEC_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("daemon.log")).unwrap());
        if self.who == As::User {
            c.arg("--user");
            c.env("XDG_RUNTIME_DIR", &self.dir).env("HOME", &self.dir);
        }
        let _ = std::fs::remove_file(self.socket());
        self.child = Some(c.spawn().expect("spawn capexec daemon"));
        let start = Instant::now();
        while !self.socket().exists() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("capexec daemon exited with {st}:\n{}", self.log());
            }
            assert!(start.elapsed() < Duration::from_secs(10), "the daemon did not create its socket:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("started").id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Runs `capexec ARGS --socket ...` as the daemon's user.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut c = command(self.who);
        c.args(args).arg("--socket").arg(self.socket());
        output(c, Duration::from_secs(60))
    }

    /// `capexec ARGS --socket ...` with its standard output a pipe whose
    /// reader has gone (`capexec logs X | head` once head has ended).
    pub fn ctl_into_closed_pipe(&self, args: &[&str]) -> Output {
        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        drop(reader);
        let mut c = command(self.who);
        c.args(args).arg("--socket").arg(self.socket());
        c.stdin(Stdio::null()).stdout(Stdio::from(writer)).stderr(Stdio::piped());
        let desc = format!("{c:?}");
        let child = c.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
        drop(c);
        wait_for_output(child, Duration::from_secs(60), &desc)
    }

    /// `capexec status UNIT --json`, the unit's object.
    pub fn status(&self, unit: &str) -> serde_json::Value {
        let o = self.ctl(&["status", unit, "--json"]);
        assert!(o.status.success(), "status {unit}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["result"][0].clone()
    }

    /// Polls the unit's status until `pred` holds.
    pub fn wait_for(&self, unit: &str, timeout: Duration, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.status(unit);
            if pred(&s) {
                return s;
            }
            assert!(start.elapsed() < timeout, "{unit}: waited {timeout:?} for {what}; status now: {s:#}\ndaemon log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the unit's log file holds `text`; returns the log.
    pub fn wait_log(&self, unit: &str, text: &str, timeout: Duration) -> String {
        let path = self.dir.join(format!("logs/{unit}.log"));
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            if log.contains(text) {
                return log;
            }
            assert!(start.elapsed() < timeout, "{unit}: waited {timeout:?} for {text:?} in its log:\n{log}\ndaemon log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_state(&self, unit: &str, state: &str, timeout: Duration) -> serde_json::Value {
        self.wait_for(unit, timeout, &format!("state {state}"), |s| s["state"] == state)
    }

    /// SIGTERM and wait for the daemon to exit; returns its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("started");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).ok();
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon did not exit within {timeout:?} of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("started");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Removes the cgroup parent `name` a test daemon ran under (`--cgroup`), in
/// every hierarchy: the daemon removes its services' cgroups, the parent is
/// the test's.
pub fn remove_cgroup_parent(name: &str) {
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/freezer"] {
        let p = Path::new(root).join(name);
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&p);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).ok();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_cgroup_parent(&self.cgroup);
    }
}

/// Runs the escape probe's `case` under `capexec run RUN_ARGS` as `who` and
/// fails the test on any `ESCAPED` line, on a probe that reported nothing, or
/// on a non-zero exit. Returns the probe's output (stdout and stderr).
pub fn run_probe(who: As, run_args: &[&str], case: &[&str]) -> String {
    let mut c = command(who);
    c.arg("run").args(run_args).arg("--").arg(probe()).args(case);
    let o = output(c, Duration::from_secs(120));
    let out = text(&o);
    assert!(!out.contains("ESCAPED"), "an attack got through ({who:?}, {case:?}):\n{out}");
    assert!(out.contains("BLOCKED"), "the probe reported nothing ({who:?}, {case:?}):\n{out}");
    assert!(o.status.success(), "probe failed ({who:?}, {case:?}):\n{out}");
    out
}

pub fn set_mode(p: &std::path::Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A granted tree outside the service's view (its /tmp is private, so nothing
/// under the host's /tmp is visible to it except through the broker).
pub fn grant_tree(tag: &str) -> std::path::PathBuf {
    let d = shared_dir().join(format!("broker-{tag}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("data/sub")).unwrap();
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("data/readme"), "granted").unwrap();
    std::fs::write(d.join("data/f"), "granted").unwrap();
    std::fs::write(d.join("secret"), "SECRET").unwrap();
    std::os::unix::fs::symlink("../secret", d.join("data/link-out")).unwrap();
    for p in [d.clone(), d.join("data"), d.join("data/sub")] {
        set_mode(&p, 0o755);
    }
    set_mode(&d.join("out"), 0o777);
    set_mode(&d.join("data/readme"), 0o644);
    set_mode(&d.join("data/f"), 0o644);
    // Readable by everyone: only the sandbox may keep the service from it.
    set_mode(&d.join("secret"), 0o644);
    d
}

pub fn test_unit(tag: &str, body: &str) -> std::path::PathBuf {
    let dir = shared_dir().join("broker-units");
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o755);
    let p = dir.join(format!("{tag}.svc"));
    std::fs::write(&p, body).unwrap();
    set_mode(&p, 0o644);
    p
}

/// Defines a test module NAME with `as_root` and `as_user` tests running the
/// closure with [`As::Root`] and [`As::User`].
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            use $crate::{require_root, As};
            #[test]
            fn as_root() {
                require_root();
                ($body)(As::Root);
            }
            #[test]
            fn as_user() {
                require_root();
                ($body)(As::User);
            }
        }
    };
}

/// Checks, from /proc, that `pid` is a confined broker: no_new_privs, exactly
/// one seccomp filter (the broker's allowlist), no capabilities (and, as
/// root, an empty bounding set), real and filesystem uids of `service_uid`. Returns
/// what is wrong, with the status file.
pub fn broker_confinement(pid: i32, service_uid: Option<u32>) -> Result<(), String> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    let field = |k: &str| st.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("?");
    let mut wrong = Vec::new();
    for (k, want) in [("NoNewPrivs:", "1"), ("Seccomp:", "2"), ("Seccomp_filters:", "1")] {
        if field(k) != want {
            wrong.push(format!("{k} {} (want {want})", field(k)));
        }
    }
    // Only root can empty the bounding set; for anyone else it is moot, as
    // no_new_privs stops every way of gaining a capability from it.
    let euid_root = field("Uid:").split_whitespace().nth(1) == Some("0");
    for k in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        if (k != "CapBnd:" || euid_root) && field(k) != "0000000000000000" {
            wrong.push(format!("{k} {}", field(k)));
        }
    }
    if let Some(uid) = service_uid {
        let ids: Vec<&str> = field("Uid:").split_whitespace().collect();
        if ids.len() != 4 || ids[0] != uid.to_string() || ids[3] != uid.to_string() {
            wrong.push(format!("Uid: {ids:?} (want real and filesystem uid {uid})"));
        }
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(format!("broker {pid} is not confined: {}\n{st}", wrong.join(", "))),
    }
}

/// `root` and every process below it, through all threads' children.
pub fn process_tree(root: i32) -> Vec<i32> {
    let (mut all, mut todo) = (Vec::new(), vec![root]);
    while let Some(p) = todo.pop() {
        all.push(p);
        for t in std::fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten().flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            todo.extend(kids.split_whitespace().filter_map(|k| k.parse::<i32>().ok()));
        }
    }
    all
}

/// Processes under `root` (inclusive) with a thread named `broker-*`: the
/// brokers of the services started under it.
pub fn brokers_under(root: i32) -> Vec<i32> {
    let is_broker = |p: &i32| {
        std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("broker-")))
    };
    process_tree(root).into_iter().filter(is_broker).collect()
}

/// `capexec run --unit U -- PROGRAM ARGS` as `who` with stdin and stdout
/// piped, for probe cases that wait for the test between steps (the test
/// looks at the broker — the capexec process — between them).
pub fn interactive_under(who: As, u: &Path, program: &Path, args: &[&str]) -> (std::process::Child, ProbeOutput) {
    use std::process::Stdio;
    let mut c = command(who);
    c.arg("run").arg("--unit").arg(u).arg("--").arg(program).args(args);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut all);
        all
    });
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    (child, ProbeOutput { stdout, stderr })
}

/// What an [`interactive_under`] probe writes: its stdout, read by the test
/// line by line, and its stderr, drained by a thread from the start. Left
/// unread until the end, the stderr pipe fills (64 KiB: the broker's refusal
/// lines, 20 a second, fill it in about 20 s of a slow run), the broker
/// blocks writing to it with the probe's call in hand, and the test hangs.
pub struct ProbeOutput {
    stdout: std::io::BufReader<std::process::ChildStdout>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

/// Reads the probe's lines (into `seen`) up to one equal to `want`; fails
/// the test if none comes within 5 minutes (a probe waiting for ever, as
/// `malformed_frames` once did under load, would otherwise hold the suite
/// until CI's own limit, with nothing said).
pub fn wait_line(out: &mut ProbeOutput, want: &str, seen: &mut String) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if out.stdout.buffer().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i32;
            let fd = std::os::fd::AsFd::as_fd(out.stdout.get_ref());
            let ready = capexec_sys::poll_one(fd, libc::POLLIN, left).unwrap_or(true);
            assert!(ready, "the probe wrote no `{want}` within 5 minutes (is it waiting for ever?):\n{seen}");
        }
        let mut l = String::new();
        assert!(std::io::BufRead::read_line(&mut out.stdout, &mut l).unwrap() > 0, "the probe ended before `{want}`:\n{seen}");
        seen.push_str(&l);
        if l.trim() == want {
            return;
        }
    }
}

/// The process's open fds, listed with their targets (for the failure message).
pub fn fds_of(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| format!("{} -> {}", e.file_name().to_string_lossy(), std::fs::read_link(e.path()).map(|l| l.display().to_string()).unwrap_or_default()))
        .collect();
    v.sort();
    v
}

/// Reads the rest of an [`interactive_under`] probe and fails the test on any
/// `ESCAPED`, on no `BLOCKED` or on a non-zero exit. Returns all its output.
pub fn finish(mut child: std::process::Child, out: ProbeOutput, mut seen: String) -> String {
    let ProbeOutput { mut stdout, stderr } = out;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    let all = format!("{seen}\nstderr:\n{}", String::from_utf8_lossy(&stderr));
    assert!(!all.contains("ESCAPED") && all.contains("BLOCKED") && status.success(), "{all}");
    all
}

/// The host pid of the process under `root` whose program name (argv[0];
/// the namespace init is a copy of capexec whose arguments name the probe
/// too) contains `needle`.
pub fn descendant(root: u32, needle: &str) -> Option<i32> {
    process_tree(root as i32).into_iter().skip(1).find(|p| {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(cmd.split(|c| *c == 0).next().unwrap_or_default()).contains(needle)
    })
}

/// Sets kernel.pid_max in the pid namespace of `pid` (namespaced since Linux
/// 6.14), so that a test can make pids wrap quickly there. Done without exec:
/// after joining the service's user namespace this process has every
/// capability in it, which an exec'd helper (nsenter) would lose, as no uid
/// 0 is mapped there.
pub fn set_pid_max_in(pid: i32, value: u32) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let user = std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| format!("open its user namespace: {e}"))?;
    // A service declared as root runs in the host's user namespace (ours),
    // which setns refuses to join again.
    let same_user_ns = std::fs::metadata(format!("/proc/{pid}/ns/user")).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        == std::fs::metadata("/proc/self/ns/user").ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let pidns = std::fs::File::open(format!("/proc/{pid}/ns/pid")).map_err(|e| format!("open its pid namespace: {e}"))?;
    let val = value.to_string();
    // Everything the child touches is prepared here: after fork in this
    // multi-threaded test it makes raw syscalls only.
    // SAFETY: the child calls only async-signal-safe functions and _exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: raw syscalls on fds and buffers prepared before the fork.
        unsafe {
            if !same_user_ns && libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER) != 0 {
                libc::_exit(10);
            }
            if libc::setns(pidns.as_raw_fd(), libc::CLONE_NEWPID) != 0 {
                libc::_exit(11);
            }
            // The pid namespace applies to children: the write happens in one.
            let g = libc::fork();
            if g == 0 {
                let fd = libc::open(c"/proc/sys/kernel/pid_max".as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    libc::_exit(12);
                }
                libc::_exit(if libc::write(fd, val.as_ptr().cast(), val.len()) == val.len() as isize { 0 } else { 13 });
            }
            let mut st = 0;
            libc::waitpid(g, &mut st, 0);
            libc::_exit(if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 14 });
        }
    }
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child, &mut st, 0) };
    match libc::WIFEXITED(st).then(|| libc::WEXITSTATUS(st)) {
        Some(0) => Ok(()),
        Some(c) => Err(format!("the helper failed at step {c} (10 join the user namespace, 11 the pid namespace, 12 open pid_max, 13 write it)")),
        None => Err("the helper was killed".into()),
    }
}

/// Takes an [`interactive_under`] probe through its `BEFORE` and `AFTER`
/// handshakes and fails the test if the broker (the capexec process) holds
/// other fds after than before; `at_before` runs at BEFORE with the broker's
/// pid. Returns the probe's output (see [`finish`]).
pub fn broker_fds_unchanged(mut child: std::process::Child, mut out: ProbeOutput, at_before: impl FnOnce(u32)) -> String {
    use std::io::Write;
    let mut seen = String::new();
    wait_line(&mut out, "BEFORE", &mut seen);
    at_before(child.id());
    let before = fds_of(child.id());
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    wait_line(&mut out, "AFTER", &mut seen);
    // The broker drops its copy of a descriptor just after the ioctl that
    // installs it in the service and wakes it — possibly onto the broker's
    // own CPU, ahead of the broker. So the service's AFTER can be seen while
    // the broker still holds the last one for a moment; a leak stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut after = fds_of(child.id());
    while after != before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        after = fds_of(child.id());
    }
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let all = finish(child, out, seen);
    assert_eq!(before, after, "the broker's fds changed (and stayed so for 2 s):\n{all}");
    all
}

/// `dig` against a DNS server on 127.0.0.1:`port`: the answer section only
/// (empty on no answer).
pub fn dig(port: u16, tcp: bool, name: &str) -> String {
    let mut c = Command::new("dig");
    c.args(["+short", "+time=2", "+tries=3", "-p", &port.to_string(), "@127.0.0.1", name]);
    if tcp {
        c.arg("+tcp");
    }
    let o = output(c, Duration::from_secs(30));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A host TCP listener on loopback that answers every connection with
/// `secret`: the witness of the network escape tests.
pub fn secret_listener(secret: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut s, secret.as_bytes());
        }
    });
    port
}

/// A UDP server on 127.0.0.1 that answers every datagram with `reply`; its port.
pub fn udp_answering(reply: &'static str) -> u16 {
    udp_answering_on("127.0.0.1:0", reply)
}

/// [`udp_answering`] on `addr` (`[::1]:0` for IPv6).
pub fn udp_answering_on(addr: &str, reply: &'static str) -> u16 {
    let s = std::net::UdpSocket::bind(addr).unwrap();
    let port = s.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(reply.as_bytes(), from);
        }
    });
    port
}

/// A TCP port on 127.0.0.1 for capexec (not the test) to bind later, such as
/// a preopened listener's. A port from binding `:0` and closing is free only
/// until another test, running at the same time, binds `:0` and is given it
/// (seen: the systemd test's preopen refused under load). So this one comes
/// from below the kernel's ephemeral range (ip_local_port_range starts at
/// 32768), where no `:0` bind lands, distinct for every call in this process,
/// and free when returned.
pub fn unused_port() -> u16 {
    unused_ports(1)
}

/// The first of `n` consecutive ports that no other test of this process is
/// given (by this or [`unused_port`]) and that nothing listens on now: a
/// test that uses a range must have it whole, or a test beside it takes a
/// port of it (tcp_port_ranges found its range's last port bound).
pub fn unused_ports(n: u32) -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12000;
    let start = std::process::id().wrapping_mul(97);
    loop {
        let k = NEXT.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        assert!(k < SPAN, "no unused port left between {LOW} and {}", LOW + SPAN);
        let first = start.wrapping_add(k) % SPAN;
        // Not across the end of the span, where the next port is its start.
        if first + n > SPAN {
            continue;
        }
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", (LOW + first + i) as u16)).is_ok()) {
            return (LOW + first) as u16;
        }
    }
}

/// A test's own files and directories on the host, removed when dropped.
pub struct Scratch(pub Vec<std::path::PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.0 {
            match p.symlink_metadata() {
                Ok(m) if m.is_dir() => drop(std::fs::remove_dir_all(p)),
                Ok(_) => drop(std::fs::remove_file(p)),
                Err(_) => {}
            }
        }
    }
}

/// A fresh directory /var/tmp/capexec-it<pid>-<tag> that every user may
/// write (the service under test may run as a dynamic uid or the test
/// user), removed when the `Scratch` is dropped. Under /var/tmp, not /tmp:
/// a service's /tmp is private.
pub fn writable_dir(tag: &str) -> (std::path::PathBuf, Scratch) {
    let dir = std::path::PathBuf::from(format!("/var/tmp/capexec-it{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    (dir.clone(), Scratch(vec![dir]))
}

/// A network namespace made by `ip netns add`, deleted on drop.
pub struct NetNs {
    pub name: String,
    pub path: PathBuf,
}

impl NetNs {
    pub fn new(name: &str) -> NetNs {
        let o = Command::new("ip").args(["netns", "add", name]).output().expect("ip (iproute2)");
        assert!(o.status.success(), "ip netns add {name}: {}", text(&o));
        NetNs { name: name.to_owned(), path: Path::new("/run/netns").join(name) }
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let o = Command::new("ip").arg("-n").arg(&self.name).args(args).output().expect("ip (iproute2)");
        assert!(o.status.success(), "ip -n {} {args:?}: {}", self.name, text(&o));
    }

    /// Moves the calling thread into the namespace until the returned
    /// guard is dropped: every program it starts meanwhile (std forks from
    /// the calling thread) lives there, with the host's mounts, /sys and
    /// cgroups (unlike `ip netns exec`, which mounts a sysfs of its own and
    /// so hides cgroup v2). Other threads, and so other tests, stay where
    /// they are; the thread goes back even with `--test-threads 1`.
    #[must_use]
    pub fn enter_this_thread(&self) -> NetNsEntered {
        let back = std::fs::File::open("/proc/thread-self/ns/net").expect("/proc/thread-self/ns/net");
        let f = std::fs::File::open(&self.path).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {}: {e}", self.path.display()));
        NetNsEntered(back)
    }
}

/// A network namespace of the test's own, standing in for the host's network
/// of a `net = "host"` service, where unprivileged ping sockets may be made
/// (`net.ipv4.ping_group_range` opened, as systemd's sysctl.d does on a
/// Debian host; this machine's PID 1 leaves the kernel's "1 0"), with an
/// IPv4 and an IPv6 address on its loopback that no grant covers.
pub fn ping_net(tag: &str) -> NetNs {
    let ns = NetNs::new(&format!("capexec-it-ping-{tag}-{}", std::process::id()));
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["addr", "add", "10.77.0.1/32", "dev", "lo"]);
    ns.ip(&["addr", "add", "fd77::1/128", "dev", "lo", "nodad"]);
    let o = output(
        {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", text(&o));
    ns
}

/// The network namespace a thread left (see [`NetNs::enter_this_thread`]),
/// entered again on drop.
pub struct NetNsEntered(std::fs::File);

impl Drop for NetNsEntered {
    fn drop(&mut self) {
        let _ = nix::sched::setns(&self.0, nix::sched::CloneFlags::CLONE_NEWNET);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).output();
    }
}

/// Every packet on the loopback interface whose bytes hold a marker, seen
/// from a packet socket (root): where a datagram really went, whatever
/// address the sending call named. `stop` ends the watch and returns, for
/// each packet seen, its IP version and destination address as the header
/// has it.
pub struct LoSniffer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u8, std::net::IpAddr)>>,
}

impl LoSniffer {
    pub fn start(marker: &'static str) -> LoSniffer {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        require_root();
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket() with constants; the fd is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, i32::from(proto)) };
        assert!(raw >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // SAFETY: a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ifindex = nix::net::if_::if_nametoindex("lo").expect("the loopback interface");
        // SAFETY: sockaddr_ll is plain data; all-zero is valid before the
        // fields are set, and bind reads exactly its size.
        let rc = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            libc::bind(fd.as_raw_fd(), (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
        };
        assert_eq!(rc, 0, "bind the packet socket to lo: {}", std::io::Error::last_os_error());
        let tv = nix::sys::time::TimeVal::new(0, 50_000);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 70000];
            loop {
                // Once stopped, what is queued is drained, without waiting.
                let done = stopped.load(std::sync::atomic::Ordering::Relaxed);
                let flags = if done { nix::sys::socket::MsgFlags::MSG_DONTWAIT } else { nix::sys::socket::MsgFlags::empty() };
                let n = match nix::sys::socket::recv(fd.as_raw_fd(), &mut buf, flags) {
                    Ok(n) => n,
                    Err(_) if done => break,
                    Err(_) => continue,
                };
                let p = &buf[..n];
                if n < 20 || !p.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                    continue;
                }
                let dst = match p[0] >> 4 {
                    4 => std::net::IpAddr::from([p[16], p[17], p[18], p[19]]),
                    6 if n >= 40 => std::net::IpAddr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap()),
                    _ => continue,
                };
                seen.push((p[0] >> 4, dst));
            }
            seen
        });
        LoSniffer { stop, thread }
    }

    /// Every packet sent before this call is counted: a packet socket gets
    /// its copy of a packet within the sender's call (the transmit tap).
    pub fn stop(self) -> Vec<(u8, std::net::IpAddr)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
