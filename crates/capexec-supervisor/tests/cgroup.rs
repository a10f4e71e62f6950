//! Real cgroups on this machine (hybrid: v2 without controllers, memory/pids/cpu
//! on v1). Runs as root, as CI does.

use capexec_decl::spec::Limits;
use capexec_supervisor::cgroup::{Hierarchy, ServiceCgroup};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn require_root() {
    assert!(nix_is_root(), "cgroup tests run as root (CI does)");
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

struct Cleanup(String, Hierarchy);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for root in self.1.v2.iter().map(|(p, _)| p).chain(self.1.v1.values()) {
            let dir = root.join(&self.0);
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten().filter(|e| e.path().is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

fn setup(tag: &str, limits: Limits) -> (ServiceCgroup, Cleanup) {
    require_root();
    let h = Hierarchy::detect().unwrap();
    let parent = format!("capexec-test-{}-{tag}", std::process::id());
    let cg = h.create(&parent, "svc", &limits).unwrap();
    (cg, Cleanup(parent, h))
}

/// A shell that waits for a line on stdin before running `script`, so it can be
/// put into the cgroup before it forks anything.
fn held_shell(script: &str) -> Child {
    Command::new("/bin/sh").args(["-c", &format!("read go; {script}")]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap()
}

fn release(c: &mut Child) {
    writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn limits_go_to_the_controllers_that_exist() {
    let (cg, _c) = setup("limits", Limits { memory_max: Some(64 << 20), tasks_max: Some(8), cpu_weight: Some(50) });
    let h = Hierarchy::detect().unwrap();
    let read = |controller: &str, file: &str| -> String {
        let dir = cg.v1.get(controller).or(cg.v2.as_ref()).unwrap();
        std::fs::read_to_string(dir.join(file)).unwrap().trim().to_owned()
    };
    let on_v2 = |c: &str| h.v2.as_ref().is_some_and(|(_, cs)| cs.iter().any(|x| x == c));
    if on_v2("memory") {
        assert_eq!(read("memory", "memory.max"), (64u64 << 20).to_string());
    } else {
        assert_eq!(read("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
    }
    assert_eq!(read("pids", "pids.max"), "8");
    if on_v2("cpu") {
        assert_eq!(read("cpu", "cpu.weight"), "50");
    } else {
        assert_eq!(read("cpu", "cpu.shares"), "512");
    }
    cg.remove().unwrap();
}

#[test]
fn tasks_max_is_enforced() {
    let (cg, _c) = setup("tasks", Limits { memory_max: None, tasks_max: Some(3), cpu_weight: None });
    // dash gives up at the first fork the limit refuses ("Cannot fork") and
    // exits; if the limit did not hold it would start all 8 and wait. Either
    // way the test waits for an outcome, not for a time.
    let mut sh = Command::new("/bin/sh")
        .args(["-c", "read go; for i in 1 2 3 4 5 6 7 8; do sleep 30 2>/dev/null & done; echo all-started >&2; wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cg.add(sh.id() as i32).unwrap();
    release(&mut sh);
    let mut err = String::new();
    std::io::Read::read_to_string(sh.stderr.as_mut().unwrap(), &mut err).unwrap();
    let st = sh.wait().unwrap();
    let n = cg.pids().unwrap().len();
    assert!(!st.success() && err.contains("fork") && !err.contains("all-started"), "the 4th fork was not refused ({st}): {err}");
    assert!(n <= 3, "{n} processes in a cgroup limited to 3 tasks");
    cg.kill_all().unwrap();
    assert!(wait_for(|| cg.is_empty()));
    let _ = sh.wait();
    cg.remove().unwrap();
}

#[test]
fn kill_all_gets_double_forked_and_setsid_processes() {
    let (cg, _c) = setup("kill", Limits::default());
    let mut sh = held_shell("trap '' TERM; sleep 300 & (sleep 300 &) & setsid sleep 300 & wait");
    cg.add(sh.id() as i32).unwrap();
    release(&mut sh);
    assert!(wait_for(|| cg.pids().unwrap().len() >= 4), "members: {:?}", cg.pids());
    let members = cg.pids().unwrap();
    cg.kill_all().unwrap();
    assert!(wait_for(|| cg.is_empty()), "left: {:?}", cg.pids());
    let _ = sh.wait();
    for p in members {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists() || std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default().contains(") Z"),
            "pid {p} survived"
        );
    }
    cg.remove().unwrap();
}
