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
        let dir = PathBuf::from(format!("/tmp/capexec-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Test executables live in target/<profile>/deps; the binaries one level up.
        let exe = std::env::current_exe().unwrap();
        let bin_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        for b in ["capexec", "escape-probe"] {
            let src = bin_dir.join(b);
            assert!(src.exists(), "{} is missing: build the workspace first (`cargo test --workspace` does)", src.display());
            std::fs::copy(&src, dir.join(b)).unwrap();
            std::fs::set_permissions(dir.join(b), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        copy_tree(&repo_root().join("units"), &dir.join("units"));
        dir
    })
}

fn copy_tree(src: &Path, dst: &Path) {
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
    let u = nix::unistd::User::from_name(TEST_USER).ok().flatten().unwrap_or_else(|| {
        panic!("the unprivileged test user `{TEST_USER}` does not exist: create it with `useradd --system {TEST_USER}` (.ci/run does)")
    });
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
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "timed out after {timeout:?}: {desc}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
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

/// Host pids whose command line contains `needle` (exact argv[0] match is too
/// strict for nginx, which rewrites its title).
pub fn pids_matching(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
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
