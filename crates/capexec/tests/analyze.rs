//! `capexec analyze` against systemd's own `systemd-analyze security` on this
//! machine: the same checks, weights, ranges and syscall sets; the same
//! arithmetic on Debian's own units; the shipped declarations at most 1.0 and
//! below the best Debian unit; and the mechanisms it credits really in place.

use capexec_analyze::exposure::{self, Finding, CHECKS, SYSTEMD_SETS};
use std::path::{Path, PathBuf};
use std::process::Command;

fn systemd_analyze() -> Command {
    let p = Path::new("/usr/bin/systemd-analyze");
    assert!(p.exists(), "systemd-analyze is missing: install Debian's systemd package (scripts/install-test-deps.sh does)");
    let mut c = Command::new(p);
    c.env("SYSTEMD_ANALYZE_DEBUG", "1");
    c
}

/// systemd's findings (with weights and badness) and its overall score in
/// tenths for a unit file.
fn systemd_security(unit: &Path) -> (Vec<serde_json::Value>, u64) {
    let o = systemd_analyze().args(["security", "--offline=true", "--no-pager", "--json=short"]).arg(unit).output().unwrap();
    let json: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let o = systemd_analyze().args(["security", "--offline=true", "--no-pager"]).arg(unit).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no overall line:\n{text}"));
    let score = line.split(": ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap();
    let (a, b) = score.split_once('.').unwrap();
    (json, a.parse::<u64>().unwrap() * 10 + b.parse::<u64>().unwrap())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_checks_weights_and_ranges_are_systemds() {
    let dir = std::env::temp_dir().join(format!("capexec-analyze-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("plain.service");
    std::fs::write(&unit, "[Service]\nExecStart=/bin/true\n").unwrap();
    let (json, _) = systemd_security(&unit);
    let _ = std::fs::remove_dir_all(&dir);
    let mut theirs: Vec<(String, String, u64, u64)> = json
        .iter()
        .map(|c| {
            (c["name"].as_str().unwrap().to_owned(), c["json_field"].as_str().unwrap().to_owned(), c["weight"].as_u64().unwrap(), c["range"].as_u64().unwrap())
        })
        .collect();
    let mut ours: Vec<(String, String, u64, u64)> = CHECKS.iter().map(|c| (c.name.to_owned(), c.json_field.to_owned(), c.weight, c.range)).collect();
    theirs.sort();
    ours.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn the_syscall_sets_are_systemds() {
    for (name, members) in SYSTEMD_SETS {
        let o = systemd_analyze().args(["syscall-filter", "--no-pager", name]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let mut theirs: Vec<&str> = text.lines().skip(1).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let mut ours: Vec<&str> = members.to_vec();
        theirs.sort();
        ours.sort();
        assert_eq!(ours, theirs, "{name}");
    }
}

/// Debian's own units: our arithmetic, fed systemd's badness, gives systemd's score.
#[test]
fn the_arithmetic_is_systemds() {
    for name in ["nginx.service", "memcached.service", "redis-server.service"] {
        let unit = Path::new("/lib/systemd/system").join(name);
        assert!(unit.exists(), "{} is missing: scripts/install-test-deps.sh installs nginx-light, memcached and redis-server", unit.display());
        let (json, score) = systemd_security(&unit);
        let findings: Vec<Finding> = json
            .iter()
            .map(|c| Finding {
                name: "",
                json_field: "",
                weight: c["weight"].as_u64().unwrap(),
                range: c["range"].as_u64().unwrap(),
                badness: c["badness"].as_u64().filter(|b| *b != u64::MAX),
                description: String::new(),
                credit: None,
            })
            .collect();
        assert_eq!(exposure::exposure(&findings), score, "{name}");
    }
}

fn capexec_analyze(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_capexec")).arg("analyze").args(args).output().unwrap()
}

#[test]
fn every_shipped_unit_scores_at_most_1_and_beats_debians_best() {
    let units: Vec<String> =
        ["nginx", "redis", "memcached", "unbound", "dnsmasq"].iter().map(|u| repo().join(format!("units/{u}.svc")).display().to_string()).collect();
    let mut args = vec!["--json", "--threshold", "1"];
    args.extend(units.iter().map(String::as_str));
    let o = capexec_analyze(&args);
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(o.status.success(), "{out:#}");
    let best_debian = ["nginx.service", "memcached.service", "redis-server.service"]
        .iter()
        .map(|n| systemd_security(&Path::new("/lib/systemd/system").join(n)).1)
        .min()
        .unwrap();
    for u in out["units"].as_array().unwrap() {
        let e = u["exposure"].as_f64().unwrap();
        assert!(e <= 1.0, "{} scores {e}", u["name"]);
        assert!(e * 10.0 < best_debian as f64, "{} scores {e}, Debian's best unit {}", u["name"], best_debian as f64 / 10.0);
        assert_eq!(u["checks"].as_array().unwrap().len(), CHECKS.len());
    }
    assert_eq!(out["units"].as_array().unwrap().len(), 5);
}

#[test]
fn the_threshold_fails_an_exposed_unit_and_says_which() {
    let dir = std::env::temp_dir().join(format!("capexec-analyze-wide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wide = dir.join("wide.svc");
    std::fs::write(
        &wide,
        "[exec]\nargv = [\"/bin/true\"]\nuser = \"root\"\n[filesystem]\nread_write = [\"/home\"]\n[namespaces]\nnet = \"host\"\n\
         [capabilities]\nkeep = [\"CAP_SYS_ADMIN\", \"CAP_NET_ADMIN\"]\n[seccomp]\nallow = [\"@system-service\", \"@mount\", \"unshare\"]\n",
    )
    .unwrap();
    let o = capexec_analyze(&["--json", "--threshold", "1", wide.to_str().unwrap()]);
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1), "{out:#}");
    let e = out["units"][0]["exposure"].as_f64().unwrap();
    assert!(e > 3.0, "root, host network, CAP_SYS_ADMIN, writable /home and @mount score only {e}");
    assert_eq!(out["above_threshold"][0], format!("wide ({e:.1})"));
    let bad: Vec<&str> =
        out["units"][0]["checks"].as_array().unwrap().iter().filter(|c| c["badness"].as_u64().unwrap_or(0) > 0).map(|c| c["name"].as_str().unwrap()).collect();
    for want in [
        "User=/DynamicUser=",
        "PrivateNetwork=",
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "ProtectHome=",
        "SystemCallFilter=~@mount",
        "RestrictNamespaces=~user",
    ] {
        assert!(bad.contains(&want), "{want} not counted: {bad:?}");
    }
    // Text mode says the same on stderr.
    let o = capexec_analyze(&["--threshold", "9.9", "--short", &repo().join("units/nginx.svc").display().to_string()]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("nginx "));
    let o = capexec_analyze(&["--threshold", "11", "nginx"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A host agent under `net = "host"` is scored as reaching every address,
/// unless `[broker.net] guard = true` has the network guard hold its
/// sockets to no address at all.
#[test]
fn the_guard_with_no_grants_is_scored_as_reaching_nothing() {
    let dir = std::env::temp_dir().join(format!("capexec-analyze-guard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let score = |guard: &str| {
        let unit = dir.join("agent.svc");
        std::fs::write(&unit, format!("[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"host\"\n{guard}")).unwrap();
        let o = capexec_analyze(&["--json", unit.to_str().unwrap()]);
        let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        out["units"][0]["checks"].as_array().unwrap().iter().find(|c| c["name"] == "IPAddressDeny=").unwrap().clone()
    };
    let (open, guarded) = (score(""), score("[broker.net]\nguard = true\n"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(open["badness"], 10, "{open}");
    assert_eq!(guarded["badness"], 0, "{guarded}");
    assert!(
        guarded["description"].as_str().unwrap().contains("can reach no IP address") && guarded["credit"].as_str().unwrap().contains("network guard"),
        "{guarded}"
    );
}

/// What analyze credits is what the sandbox enforces: the shipped nginx
/// unit's real filter refuses what the credited checks say it refuses.
#[test]
fn credited_seccomp_rules_are_in_the_real_filter() {
    use capexec_sandbox::seccomp::run;
    let spec = capexec_decl::load_unit(&repo().join("units/nginx.svc").display().to_string(), &[], &capexec_decl::Context::current()).unwrap();
    let prog = capexec_sandbox::seccomp::service_filter(&spec.seccomp).unwrap();
    const X86_64: u32 = 0xc000_003e;
    const ALLOW: u32 = 0x7fff_0000;
    let nr = |n: &str| capexec_decl::syscalls::number(n).unwrap() as u32;
    let findings = exposure::assess(&spec);
    let good = |name: &str| findings.iter().find(|f| f.name == name).unwrap().badness == Some(0);
    // RestrictNamespaces=~*: clone with a namespace flag, unshare and setns refused.
    assert!(good("RestrictNamespaces=~user"));
    assert_ne!(run(&prog, X86_64, nr("clone"), [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(run(&prog, X86_64, nr("clone"), [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_ne!(run(&prog, X86_64, nr("unshare"), [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_ne!(run(&prog, X86_64, nr("setns"), [0; 6]), ALLOW);
    // RestrictAddressFamilies=~AF_PACKET and exotic families.
    assert!(good("RestrictAddressFamilies=~AF_PACKET") && good("RestrictAddressFamilies=~…"));
    for family in [libc::AF_PACKET, libc::AF_VSOCK, libc::AF_BLUETOOTH, libc::AF_ALG] {
        assert_ne!(run(&prog, X86_64, nr("socket"), [family as u64, 0, 0, 0, 0, 0]), ALLOW, "family {family}");
    }
    // LockPersonality=.
    assert!(good("LockPersonality="));
    assert_ne!(run(&prog, X86_64, nr("personality"), [0x0040_0000 /* READ_IMPLIES_EXEC */, 0, 0, 0, 0, 0]), ALLOW);
    // SystemCallArchitectures=: i386 is killed.
    assert!(good("SystemCallArchitectures="));
    assert_eq!(run(&prog, 0x4000_0003, 20, [0; 6]), 0x8000_0000);
    // The @privileged and @resources calls the shipped units deny.
    assert!(good("SystemCallFilter=~@privileged") && good("SystemCallFilter=~@resources"));
    for call in ["setuid", "setresuid", "chown", "capset", "setrlimit", "sched_setscheduler"] {
        assert_ne!(run(&prog, X86_64, nr(call), [0; 6]), ALLOW, "{call}");
    }
}

/// UMask= as systemd scores it: a unit with each mask, imported (UMask= is
/// `exec.umask`), gets from `capexec analyze` the description and badness
/// `systemd-analyze security` gives the unit itself.
#[test]
fn the_umask_is_scored_as_systemd_does() {
    let dir = std::env::temp_dir().join(format!("capexec-analyze-umask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mask in ["0000", "0002", "0022", "0007", "0027", "0077"] {
        let unit = dir.join(format!("umask{mask}.service"));
        std::fs::write(&unit, format!("[Service]\nExecStart=/bin/true\nUMask={mask}\n")).unwrap();
        let (systemd, _) = systemd_security(&unit);
        let theirs = systemd.iter().find(|c| c["name"] == "UMask=").unwrap_or_else(|| panic!("no UMask= in {systemd:?}"));
        let decl = dir.join(format!("umask{mask}.svc"));
        let _ = std::fs::remove_file(&decl);
        let o = Command::new(env!("CARGO_BIN_EXE_capexec")).arg("import").arg(&unit).arg("-o").arg(&decl).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::read_to_string(&decl).unwrap().contains(&format!("\numask = \"{mask}\"\n")));
        let o = capexec_analyze(&["--json", decl.to_str().unwrap()]);
        let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        let ours = out["units"][0]["checks"].as_array().unwrap().iter().find(|c| c["name"] == "UMask=").unwrap().clone();
        assert_eq!(ours["description"], theirs["description"], "UMask={mask}: {ours} against systemd's {theirs}");
        assert_eq!(ours["badness"], theirs["badness"], "UMask={mask}: {ours} against systemd's {theirs}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
