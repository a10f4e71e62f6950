//! The command line as a user meets it: check, doctor, run --dry-run, help.

use std::path::Path;
use std::process::{Command, Output};

fn capexec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capexec")).args(args).output().unwrap()
}

fn units() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../units")
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn check_accepts_every_shipped_unit() {
    let mut args = vec!["check".to_owned()];
    for e in std::fs::read_dir(units()).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "svc") {
            args.push(e.path().display().to_string());
        }
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = capexec(&a);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("# nginx: OK"), "{text}");
    assert!(text.contains("runs       /usr/sbin/nginx"), "summarises the declaration: {text}");
    assert!(text.contains("fd 3       http = tcp:127.0.0.1:8080 (also $NGINX)"), "{text}");
    let o = capexec(&["check", "--full", units().join("nginx.svc").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("argv = [\"/usr/sbin/nginx\""), "--full prints the resolved declaration");
}

/// `filesystem.visible` in the summary, and a warning for one inside a
/// readable mount (Landlock's rights go down the tree).
#[test]
fn check_shows_visible_paths_and_warns_about_readable_ones() {
    let d = std::env::temp_dir().join(format!("capexec-cli-visible-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let u = d.join("vis.svc");
    std::fs::write(&u, "[exec]\nargv = [\"/bin/true\"]\n[filesystem]\nvisible = [\"/var/lib/dpkg\", \"/etc/ssh\"]\n").unwrap();
    let o = capexec(&["check", u.to_str().unwrap()]);
    let text = out(&o);
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("  visible    /etc/ssh /var/lib/dpkg (looked at, not read)"), "{text}");
    assert!(text.contains("filesystem.visible has /etc/ssh, inside /etc (readable in the view), which lets the service read it"), "{text}");
    assert!(!text.contains("has /var/lib/dpkg, inside"), "{text}");
}

/// A program with file capabilities (Debian's ping: cap_net_raw) gets none
/// of them under capexec (no_new_privs), and check says so; fping reported
/// every host as lost, with nothing to tell why.
#[test]
fn check_says_file_capabilities_are_not_granted() {
    let d = std::env::temp_dir().join(format!("capexec-cli-fcaps-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let (with, without) = (d.join("ping.svc"), d.join("true.svc"));
    std::fs::write(&with, "[exec]\nargv = [\"/usr/bin/ping\", \"-V\"]\n").unwrap();
    std::fs::write(&without, "[exec]\nargv = [\"/bin/true\"]\n").unwrap();
    let o = capexec(&["check", with.to_str().unwrap(), without.to_str().unwrap()]);
    let text = out(&o);
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{text}");
    let caps = std::process::Command::new("getcap").arg("/usr/bin/ping").output().unwrap();
    assert!(String::from_utf8_lossy(&caps.stdout).contains("cap_net_raw"), "the test needs Debian's ping, with its file capability");
    assert!(text.contains("# warning: /usr/bin/ping has file capabilities (CAP_NET_RAW), which it does not get under capexec"), "{text}");
    assert_eq!(text.matches("has file capabilities").count(), 1, "{text}");
}

#[test]
fn check_json_is_machine_readable() {
    let u = units().join("nginx.svc");
    let o = capexec(&["check", "--json", u.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let unit = &v["units"][0];
    assert_eq!(unit["name"], "nginx");
    assert_eq!(unit["namespaces"]["net"], "none");
    assert_eq!(unit["preopen"][0]["kind"]["type"], "listen");
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn check_reports_errors_with_location_and_fails() {
    let d = std::env::temp_dir().join(format!("capexec-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let bad = d.join("bad.svc");
    std::fs::write(&bad, "[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"bridge\"\n").unwrap();
    let o = capexec(&["check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:4:7: `namespaces.net`: unknown value `bridge`", bad.display())), "{err}");
    assert!(err.contains("help: allowed"), "{err}");

    let o = capexec(&["check", "--json", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["errors"][0]["line"], 4);
    assert_eq!(v["errors"][0]["key"], "namespaces.net");

    // Duplicate unit names in one check.
    let o = capexec(&["check", units().join("demo.svc").to_str().unwrap(), units().join("demo.svc").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("given twice"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn check_looks_up_names_in_the_unit_path() {
    let u = units();
    let o = capexec(&["check", "-q", "--unit-path", u.to_str().unwrap(), "demo", "nginx.svc"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_capexec")).args(["check", "nope"]).env("CAPEXEC_UNIT_PATH", u.to_str().unwrap()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no declaration named `nope.svc`"), "{}", out(&o));
    // A file in the current directory, named as people type it.
    let o = Command::new(env!("CARGO_BIN_EXE_capexec"))
        .args(["check", "-q", "demo.svc"])
        .current_dir(&u)
        .env("CAPEXEC_UNIT_PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    // A file of that very name without .svc (`learn --out demo.learned`): its name is what is wrong.
    let d = std::env::temp_dir().join(format!("capexec-cli-names-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(u.join("demo.svc"), d.join("demo.learned")).unwrap();
    let o =
        Command::new(env!("CARGO_BIN_EXE_capexec")).args(["check", "demo.learned"]).current_dir(&d).env("CAPEXEC_UNIT_PATH", "/nonexistent").output().unwrap();
    std::fs::remove_dir_all(&d).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must end in `.svc`"), "{}", out(&o));
}

#[test]
fn doctor_reports_this_kernel() {
    let o = capexec(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The machines this project runs on (and CI) have all of these; a kernel
    // without them must make doctor say so, which is what this checks too.
    assert!(v["landlock_abi"].as_i64().unwrap() >= 6, "{v}");
    assert_eq!(v["seccomp_user_notif"], true);
    assert_eq!(v["user_namespaces"], true);
    assert_eq!(v["defaults_supported"], true);
    // BPF is probed by loading, not read off a list: this kernel lists the BPF
    // LSM but refuses its programs, and loads and attaches cgroup programs.
    assert_eq!(v["bpf_lsm"], true, "{v}");
    assert_eq!(v["bpf_lsm_programs"]["result"], "refused", "{v}");
    assert!(v["bpf_lsm_programs"]["error"].as_str().unwrap().contains("os error 1"), "EPERM: {v}");
    assert_eq!(v["cgroup_bpf"]["result"], "works", "as root: {v}");
    assert!(o.status.success());
    let o = capexec(&["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Landlock") && out.contains("programs: NO") && out.contains("cgroup BPF (sock_addr)      yes"), "{out}");
}

#[test]
fn run_dry_run_shows_strict_defaults() {
    let o = capexec(&["run", "--dry-run", "--", "true"]);
    assert!(o.status.success(), "{}", out(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("argv = [\"/usr/bin/true\"]") || t.contains("argv = [\"/bin/true\"]"), "{t}");
    assert!(t.contains("net = \"none\""), "{t}");
    assert!(t.contains("capabilities = []"), "{t}");
    let o = capexec(&["run", "--dry-run", "--net", "host", "--rw", "/srv", "--allow-syscall", "@mount", "--", "true"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("net = \"host\"") && t.contains("\"/srv\"") && t.contains("\"pivot_root\""), "{t}");
}

#[test]
fn run_rejects_bad_options_clearly() {
    let o = capexec(&["run", "--net", "bridge", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("namespaces.net"), "{}", out(&o));
    let o = capexec(&["run", "--", "no-such-program-capexec"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found in PATH"));
    let o = capexec(&["run", "--env", "NOEQUALS", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn help_teaches() {
    let o = capexec(&["--help"]);
    let t = String::from_utf8_lossy(&o.stdout);
    for w in ["check", "exec", "run", "doctor", "Examples", "Exit status"] {
        assert!(t.contains(w), "--help lacks {w}:\n{t}");
    }
    let o = capexec(&["run", "--help"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("--preopen-listen") && t.contains("strict"), "{t}");
}

#[test]
fn learn_says_what_to_give_it() {
    // Nothing to run, a program given where a unit goes, both at once, a
    // bad --wait-for: each a clear error before anything runs.
    let o = capexec(&["learn"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("give a UNIT"), "{}", out(&o));
    let o = capexec(&["learn", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("put a program after `--`"), "{}", out(&o));
    let unit = units().join("redis.svc");
    let o = capexec(&["learn", unit.to_str().unwrap(), "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not both"), "{}", out(&o));
    let o = capexec(&["learn", unit.to_str().unwrap(), "--workload", "true", "--wait-for", "localhost"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected tcp:HOST:PORT"), "{}", out(&o));
    // --check needs the unit to judge against.
    let o = capexec(&["learn", "--check", "--", "/bin/true"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let o = capexec(&["learn", "--help"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("--workload") && t.contains("--check") && t.contains("Examples"), "{t}");
}

/// `--net host` alone says at start that TCP still needs its ports (issue
/// 20: curl failed with no word from capexec); not once a port is given.
#[test]
fn run_net_host_says_tcp_needs_its_ports() {
    let o = capexec(&["run", "--net", "host", "--", "/bin/true"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TCP connects and binds still need their ports: --connect-tcp PORT"), "{}", out(&o));
    let o = capexec(&["run", "--net", "host", "--connect-tcp", "443", "--", "/bin/true"]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("still need their ports"), "{}", out(&o));
}

/// A program on PATH that the sandbox's user cannot reach (behind a 0700
/// home) is named at once with what to type instead, not left to a bare
/// EACCES in the view's setup.
#[test]
fn run_names_a_program_its_user_cannot_reach() {
    if !nix::unistd::geteuid().is_root() {
        return; // rootless the program's user is the caller, who reached it
    }
    let dir = std::env::temp_dir().join(format!("capexec-cli-hidden-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/true", bin.join("true")).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let o = Command::new(env!("CARGO_BIN_EXE_capexec")).args(["run", "--", "true"]).env("PATH", &path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(125), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach") && err.contains("is mode 0700") && err.contains("/usr/bin/true is in every view"), "{err}");
}

/// An option `capexec run` does not know is named as such, not looked up as
/// the program (issue 20).
#[test]
fn run_names_an_option_it_does_not_know() {
    let o = capexec(&["run", "--sandbox-dir", "/tmp/x", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown option `--sandbox-dir` for capexec run") && !err.contains("not found in PATH"), "{err}");
}

/// `daemon --cgroup` takes a name under the cgroup v2 root: a path was made
/// as a directory wherever it led (/sys/fs/cgroup's tmpfs on a hybrid
/// host), and every start then failed to attach the network guard there.
/// Refused before anything is made, with the form to use.
#[test]
fn daemon_refuses_a_cgroup_path() {
    for bad in ["/sys/fs/cgroup/x", "a/../b", "a//b", ""] {
        let o = capexec(&["daemon", "--cgroup", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", out(&o));
        assert!(out(&o).contains("--cgroup takes a name relative to the cgroup v2 root"), "{bad}: {}", out(&o));
    }
}
