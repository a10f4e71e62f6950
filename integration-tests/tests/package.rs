//! The Debian package (issue 6): built with packaging/build-deb.sh from this
//! build's binaries, installed with dpkg on this machine, its shipped
//! declarations checked and scored by the installed capexec, then each shipped
//! service started by name under the installed daemon against the real
//! Debian program, and asked something. The package is purged at the end.

use capexec_integration_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNITS: &[&str] = &["nginx", "redis", "memcached", "unbound", "dnsmasq"];

fn run(c: &mut Command) -> String {
    let desc = format!("{c:?}");
    let o = output(std::mem::replace(c, Command::new("true")), Duration::from_secs(300));
    assert!(o.status.success(), "{desc}:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Purges the package even when the test fails half-way.
struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "capexec"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// Stops the installed daemon (and with it every service it started) even
/// when the test fails half-way: a daemon left running would hold the shipped
/// units' ports for every later test.
struct Daemon(std::process::Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(20);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn waited(what: &str, timeout: Duration, ok: impl Fn() -> bool) {
    let end = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < end, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_deb_installs_and_its_units_run_under_the_daemon() {
    require_root();
    let bin_dir = std::env::current_exe().unwrap().parent().and_then(Path::parent).unwrap().to_path_buf();
    let out = shared_dir().join("deb");
    let deb = run(Command::new(repo_root().join("packaging/build-deb.sh")).arg("--bin-dir").arg(&bin_dir).arg("--out").arg(&out));
    let deb = PathBuf::from(deb.trim());
    assert!(deb.exists(), "{}", deb.display());
    let _installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));

    // Everything the package promises is where it says.
    for f in [
        "/usr/bin/capexec",
        "/usr/bin/capexec-oci",
        "/lib/systemd/system/capexecd.service",
        "/lib/systemd/system/capexec-agent.service",
        "/usr/share/man/man1/capexec-agent.1.gz",
        "/lib/systemd/system/capexec@.service",
        "/usr/share/man/man1/capexec.1.gz",
        "/usr/share/man/man1/capexec-analyze.1.gz",
        "/usr/share/bash-completion/completions/capexec",
        "/usr/share/zsh/vendor-completions/_capexec",
        "/usr/share/fish/vendor_completions.d/capexec.fish",
        "/usr/include/capexec.h",
    ] {
        assert!(Path::new(f).exists(), "{f} is not installed");
    }
    for u in UNITS {
        assert!(Path::new(&format!("/usr/lib/capexec/units/{u}.svc")).exists(), "{u}.svc is not installed");
    }
    run(Command::new("getent").args(["group", "capexec"]));
    let listed = run(Command::new("bash").args(["-c", "source /usr/share/bash-completion/completions/capexec && complete -p capexec"]));
    assert!(listed.contains("capexec"), "{listed}");

    // The installed capexec finds the shipped declarations by name.
    let capexec = Path::new("/usr/bin/capexec");
    let checked = run(Command::new(capexec).arg("check").args(UNITS));
    assert_eq!(checked.matches(": OK (/usr/lib/capexec/units/").count(), UNITS.len(), "{checked}");
    let scored = run(Command::new(capexec).args(["analyze", "--short", "--threshold", "1"]).args(UNITS));
    assert_eq!(scored.lines().count(), UNITS.len(), "{scored}");

    // The installed daemon, system mode, its own directories and cgroup; the
    // default search path, so it starts the packaged declarations by name.
    let dir = shared_dir().join("deb-daemon");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("run/control.sock");
    let cgroup = format!("capexec-deb-{}", std::process::id());
    let mut daemon = Daemon(
        Command::new(capexec)
            .arg("daemon")
            .arg("--runtime-dir")
            .arg(dir.join("run"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .args(["--log-files", "--cgroup", &cgroup])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    waited("the daemon's control socket", Duration::from_secs(10), || socket.exists());
    let ctl = |args: &[&str]| {
        let mut c = Command::new(capexec);
        c.args(args).arg("--socket").arg(&socket);
        output(c, Duration::from_secs(60))
    };
    let o = ctl(&[&["start"][..], UNITS].concat());
    assert!(o.status.success(), "start {UNITS:?}: {}\ndaemon log:\n{}", text(&o), log());

    // `start` returns once each service runs; redis's and memcached's
    // sockets appear when they bind them (their broker makes them then).
    for (name, port) in [("nginx", 8080), ("redis", 6379), ("memcached", 11211)] {
        assert!(wait_port(port, Duration::from_secs(20)), "{name} does not listen on {port}; daemon log:\n{}", log());
    }
    let page = http_get(8080, "/").unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert_eq!(tcp_roundtrip(6379, b"PING\r\n", "\r\n").unwrap(), "+PONG\r\n");
    let r = tcp_roundtrip(11211, b"set k 0 0 3\r\ndeb\r\nget k\r\n", "END\r\n").unwrap();
    assert!(r.contains("VALUE k 0 3\r\ndeb"), "{r}");
    for (name, port, want) in [("unbound", 8053, "192.0.2.53"), ("dnsmasq", 8054, "192.0.2.54")] {
        let end = Instant::now() + Duration::from_secs(20);
        let mut got = dig(port, false, "www.capexec.test");
        while got != want && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            got = dig(port, false, "www.capexec.test");
        }
        assert_eq!(got, want, "{name} under the daemon:\n{}", log());
    }

    let o = ctl(&[&["stop"][..], UNITS].concat());
    assert!(o.status.success(), "stop: {}", text(&o));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.0.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let st = daemon.0.wait().unwrap();
    remove_cgroup_parent(&cgroup);
    assert!(st.success(), "daemon: {st}\n{}", log());
    for p in ["/usr/sbin/nginx", "/usr/bin/redis-server", "/usr/bin/memcached", "/usr/sbin/unbound", "/usr/sbin/dnsmasq"] {
        assert!(wait_gone_by(|| pids_of_program(p), Duration::from_secs(5)).is_empty(), "{p} still runs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
