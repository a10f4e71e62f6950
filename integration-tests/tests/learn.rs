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
