//! `capexec daemon` and the commands that control it, against real services:
//! several at once, restart after kill -9, crash loops, stopping what ignores
//! SIGTERM and double-forks, killing the daemon, reload, readiness and
//! watchdog, logs, limits, access control, malformed requests, user mode.
//! ESCAPE-CASES.md section 7 (40, 42, 43).

use capexec_integration_tests::*;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A unit running `sh -c SCRIPT` with `extra` TOML appended.
fn sh_unit(script: &str, extra: &str) -> String {
    format!("[exec]\nargv = [\"/bin/sh\", \"-c\", '''{script}''']\n{extra}\n")
}

/// A service that ignores SIGTERM and leaves a double-forked, setsid'd child
/// that ignores it too. `marker` is the sleep argument to find them by.
fn stubborn(marker: u32, extra: &str) -> String {
    sh_unit(
        &format!("trap '' TERM; ( trap '' TERM; setsid sh -c 'trap \"\" TERM; exec sleep {marker}' & ) ; exec sh -c 'trap \"\" TERM; sleep {marker}; true'"),
        extra,
    )
}

fn pid_of(s: &serde_json::Value) -> i32 {
    s["main_pid"].as_i64().expect("a main pid") as i32
}

#[test]
fn supervises_nginx_redis_and_memcached_at_once() {
    let mut d = Daemon::prepare(As::Root, "three");
    copy_tree(&shared_dir().join("units"), &d.units());
    d.start();
    let out = ok(&d.ctl(&["start", "nginx", "redis", "memcached"]));
    assert!(out.contains("nginx: started") && out.contains("redis: started") && out.contains("memcached: started"), "{out}");
    assert!(wait_port(8080, T) && wait_port(6379, T) && wait_port(11211, T), "not all three listen:\n{}", d.log());
    assert!(http_get(8080, "/").unwrap().starts_with("HTTP/1.1 200"), "nginx answers");
    assert!(tcp_roundtrip(6379, b"PING\r\n", "\r\n").unwrap().contains("+PONG"), "redis answers");
    assert!(tcp_roundtrip(11211, b"version\r\n", "\r\n").unwrap().starts_with("VERSION"), "memcached answers");
    for u in ["nginx", "redis", "memcached"] {
        let s = d.status(u);
        assert_eq!(s["state"], "running", "{s:#}");
        assert!(s["tasks"].as_u64().unwrap() >= 1, "{u}: task count from its cgroup: {s:#}");
        assert!(s["memory_bytes"].as_u64().unwrap() > 0, "{u}: memory from its cgroup: {s:#}");
        // Confined as under `capexec exec`: no capabilities, seccomp filter.
        let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(&s))).unwrap();
        assert!(st.contains("CapEff:\t0000000000000000") && st.contains("Seccomp:\t2"), "{u}:\n{st}");
    }
    // Human status has what an administrator looks for.
    let human = ok(&d.ctl(&["status", "redis"]));
    for want in ["state: running", "main pid:", "tasks", "memory", "restarts: 0", "cgroup:"] {
        assert!(human.contains(want), "`capexec status redis` lacks {want:?}:\n{human}");
    }
    let list = ok(&d.ctl(&["list"]));
    assert!(list.lines().filter(|l| l.contains(" running ")).count() == 3, "{list}");
    d.terminate(T);
    assert!(pids_of_program("/usr/bin/redis-server").is_empty() && pids_of_program("/usr/bin/memcached").is_empty());
    assert!(!wait_port(8080, Duration::from_millis(200)), "nginx still listens after the daemon stopped");
}

#[test]
fn kill_9_of_the_main_process_restarts_it_after_the_backoff() {
    let mut d = Daemon::prepare(As::Root, "kill9");
    d.write_unit("sleeper", &sh_unit("exec sleep 100101", "[service]\nrestart = \"always\"\nrestart_delay = \"700ms\""));
    d.start();
    ok(&d.ctl(&["start", "sleeper"]));
    let first = pid_of(&d.wait_state("sleeper", "running", T));
    let killed = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::SIGKILL).unwrap();
    d.wait_state("sleeper", "waiting-to-restart", T);
    let s = d.wait_for("sleeper", T, "a new main process", |s| s["state"] == "running" && s["main_pid"].as_i64().is_some_and(|p| p as i32 != first));
    assert!(killed.elapsed() >= Duration::from_millis(650), "restarted after {:?}, before the 700ms backoff", killed.elapsed());
    assert_eq!(s["restarts"], 1, "{s:#}");
    assert_eq!(s["last_exit"]["code"], 137, "killed by SIGKILL = 128+9: {s:#}");
    assert_eq!(pids_exact("sleep 100101").len(), 1, "exactly one instance runs");
}

#[test]
fn a_crash_loop_ends_in_failed_at_the_start_limit() {
    let mut d = Daemon::prepare(As::Root, "crash");
    d.write_unit(
        "crasher",
        &sh_unit("echo crashing; exit 3", "[service]\nrestart = \"always\"\nrestart_delay = \"20ms\"\nstart_limit_burst = 4\nstart_limit_interval = \"30s\""),
    );
    d.start();
    let _ = d.ctl(&["start", "crasher"]);
    let s = d.wait_state("crasher", "failed", T);
    assert_eq!(s["result"], "start-limit", "{s:#}");
    assert_eq!(s["restarts"], 3, "4 starts allowed = the first and 3 restarts: {s:#}");
    assert_eq!(s["last_exit"]["code"], 3, "{s:#}");
    let human = ok(&d.ctl(&["status", "crasher"]));
    assert!(human.contains("state: failed (start-limit)") && human.contains("crashing"), "{human}");
    // Failed stays failed (no more restarts) until started by hand.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.status("crasher")["restarts"], 3);
    let o = d.ctl(&["start", "crasher"]);
    assert!(o.status.success() || String::from_utf8_lossy(&o.stderr).contains("failed to start"), "{}", text(&o));
    // A manual start resets the start limit: another 4 starts, then failed again.
    d.wait_for("crasher", T, "a fresh round after the manual start", |s| s["restarts"].as_u64() == Some(6) && s["state"] == "failed");
}

#[test]
fn stop_kills_a_service_that_ignores_sigterm_and_double_forks() {
    // With a pid namespace (the default) and without one, where only the
    // cgroup knows the escaped grandchild (ESCAPE 43).
    for (marker, extra) in [(100201, ""), (100202, "[namespaces]\npid = false\n[filesystem]\nproc = \"none\"")] {
        let mut d = Daemon::prepare(As::Root, "stubborn");
        d.write_unit("stubborn", &stubborn(marker, &format!("[service]\nstop_timeout = \"1s\"\n{extra}")));
        d.start();
        ok(&d.ctl(&["start", "stubborn"]));
        let sleeps = || pids_exact(&format!("sleep {marker}"));
        let start = Instant::now();
        while sleeps().len() < 2 {
            assert!(start.elapsed() < T, "the double-forked child did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = Instant::now();
        let out = ok(&d.ctl(&["stop", "stubborn"]));
        let took = t.elapsed();
        assert!(out.contains("stubborn: stopped"), "{out}");
        assert!(took >= Duration::from_millis(900), "stop returned after {took:?}: SIGTERM is ignored, so the 1 s timeout must pass");
        assert!(took < Duration::from_secs(5), "stop took {took:?}");
        assert_eq!(sleeps(), Vec::<i32>::new(), "processes survived `capexec stop` ({extra})");
        assert_eq!(d.status("stubborn")["state"], "stopped");
        d.terminate(T);
    }
}

#[test]
fn sigkill_of_the_daemon_leaves_no_service_process() {
    let mut d = Daemon::prepare(As::Root, "sigkill");
    d.write_unit("a", &stubborn(100301, "[service]\nautostart = true"));
    d.write_unit("b", &stubborn(100302, "[service]\nautostart = true\n[namespaces]\npid = false\n[filesystem]\nproc = \"none\""));
    d.write_unit("c", &sh_unit("exec sleep 100303", "[service]\nautostart = true"));
    d.start();
    for u in ["a", "b", "c"] {
        d.wait_state(u, "running", T);
    }
    let ours = || [100301, 100302, 100303].iter().flat_map(|m| pids_exact(&format!("sleep {m}"))).collect::<Vec<_>>();
    let start = Instant::now();
    while ours().len() < 5 {
        assert!(start.elapsed() < T, "not every process appeared: {:?}", ours());
        std::thread::sleep(Duration::from_millis(20));
    }
    let dpid = d.pid();
    let launcher: Vec<i32> =
        std::fs::read_to_string(format!("/proc/{dpid}/task/{dpid}/children")).unwrap().split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(launcher.len(), 1, "the daemon's one child is its launcher");
    d.kill9();
    assert_eq!(wait_gone_by(ours, Duration::from_secs(5)), Vec::<i32>::new(), "service processes outlived the daemon (ESCAPE 42)");
    let alive = |p: i32| std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z "));
    assert!(wait_gone_by(|| launcher.iter().copied().filter(|p| alive(*p)).collect(), Duration::from_secs(5)).is_empty(), "the launcher outlived the daemon");
}

#[test]
fn sigterm_stops_every_service_gracefully_then_the_daemon_exits() {
    let mut d = Daemon::prepare(As::Root, "sigterm");
    d.write_unit("polite", &sh_unit("trap 'echo got SIGTERM; exit 0' TERM; echo up; while :; do sleep 0.05; done", "[service]\nautostart = true"));
    d.start();
    d.wait_state("polite", "running", T);
    // "running" means exec'd, not that sh has set its trap yet: wait for "up".
    d.wait_log("polite", "up", T);
    let t = Instant::now();
    let st = d.terminate(T);
    assert!(st.success(), "daemon exit status {st}:\n{}", d.log());
    assert!(t.elapsed() < Duration::from_secs(3), "stopping took {:?}", t.elapsed());
    let log = std::fs::read_to_string(d.dir.join("logs/polite.log")).unwrap();
    assert!(log.contains("got SIGTERM"), "the service was not stopped with its stop signal:\n{log}");
    assert!(log.contains("main process ended with status 0"), "{log}");
}

#[test]
fn reload_keeps_unchanged_restarts_changed_stops_removed_and_adds_new() {
    let mut d = Daemon::prepare(As::Root, "reload");
    let auto = "[service]\nautostart = true";
    d.write_unit("same", &sh_unit("exec sleep 100401", auto));
    d.write_unit("changed", &sh_unit("exec sleep 100402", auto));
    d.write_unit("removed", &sh_unit("exec sleep 100403", auto));
    d.start();
    let pids: Vec<i32> = ["same", "changed", "removed"].iter().map(|u| pid_of(&d.wait_state(u, "running", T))).collect();
    d.write_unit("changed", &sh_unit("exec sleep 100412", auto));
    std::fs::remove_file(d.units().join("removed.svc")).unwrap();
    d.write_unit("added", &sh_unit("exec sleep 100404", auto));
    d.write_unit("broken", "[exec]\nargv = 3\n");
    let o = d.ctl(&["reload", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let r = &v["result"];
    assert_eq!(r["unchanged"], serde_json::json!(["same"]), "{v:#}");
    assert_eq!(r["restarted"], serde_json::json!(["changed"]), "{v:#}");
    assert_eq!(r["removed"], serde_json::json!(["removed"]), "{v:#}");
    assert_eq!(r["added"], serde_json::json!(["added"]), "{v:#}");
    assert_eq!(r["started"], serde_json::json!(["added"]), "{v:#}");
    assert!(r["errors"]["broken"].as_str().unwrap().contains("broken.svc:2"), "errors name file and line: {v:#}");
    assert_eq!(pid_of(&d.status("same")), pids[0], "an unchanged service keeps running");
    d.wait_for("changed", T, "the new declaration running", |s| s["state"] == "running" && s["main_pid"].as_i64() != Some(pids[1] as i64));
    assert_eq!(wait_found_by(|| pids_exact("sleep 100412"), T).len(), 1, "changed runs the new argv");
    assert!(pids_exact("sleep 100402").is_empty(), "the old argv is gone");
    assert!(wait_gone_by(|| pids_exact("sleep 100403"), T).is_empty(), "a removed service is stopped");
    let list = ok(&d.ctl(&["list"]));
    assert!(!list.contains("removed ") && list.contains("bad-declaration"), "{list}");
    d.wait_state("added", "running", T);
    // A declaration that stops validating leaves the running service alone.
    d.write_unit("same", "[exec]\nargv = []\nnope = 1\n");
    let o = d.ctl(&["reload"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("same"), "{}", text(&o));
    let s = d.status("same");
    assert_eq!(pid_of(&s), pids[0], "still the old run");
    assert!(s["error"].as_str().unwrap().contains("still using the previous one"), "{s:#}");
    // SIGHUP does the same as `capexec reload`.
    d.write_unit("same", &sh_unit("exec sleep 100411", auto));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.pid()), nix::sys::signal::SIGHUP).unwrap();
    d.wait_for("same", T, "restart after SIGHUP", |s| s["state"] == "running" && s["main_pid"].as_i64() != Some(pids[0] as i64));
}

#[test]
fn notify_readiness_status_and_watchdog() {
    let mut d = Daemon::prepare(As::Root, "notify");
    let probe = probe();
    let dir = shared_dir().display().to_string();
    d.write_unit(
        "ready",
        &format!(
            "[exec]\nargv = [\"{}\", \"sd-notify\", \"STATUS=warming up\\\\nREADY=1\\\\nSTATUS=serving 42 clients\"]\n[filesystem]\nexecutable = [\"{dir}\"]\n[service]\ntype = \"notify\"\n",
            probe.display()
        ),
    );
    d.write_unit(
        "never-ready",
        &format!("[exec]\nargv = [\"{}\", \"sd-notify\", \"STATUS=stuck\"]\n[filesystem]\nexecutable = [\"{dir}\"]\n[service]\ntype = \"notify\"\nready_timeout = \"500ms\"\nrestart = \"no\"\n", probe.display()),
    );
    d.write_unit(
        "dog",
        &format!(
            "[exec]\nargv = [\"{}\", \"sd-notify\", \"READY=1\", \"4\"]\n[filesystem]\nexecutable = [\"{dir}\"]\n[service]\ntype = \"notify\"\nwatchdog = \"400ms\"\nrestart = \"always\"\nrestart_delay = \"100ms\"\n",
            probe.display()
        ),
    );
    d.start();
    let out = ok(&d.ctl(&["start", "ready"]));
    assert!(out.contains("ready: started (running"), "start waits for READY=1: {out}");
    let s = d.status("ready");
    assert_eq!(s["status_text"], "serving 42 clients", "{s:#}");
    assert!(ok(&d.ctl(&["status", "ready"])).contains("status: \"serving 42 clients\""));

    // The socket takes anyone's datagrams (a daemon that switched users
    // must reach it), but READY=1 counts only from the service: a host
    // process sending it all along does not make the service ready.
    let socket = d.dir.join("run/notify/never-ready/notify");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forger = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let s = std::os::unix::net::UnixDatagram::unbound().unwrap();
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent += usize::from(s.send_to(b"READY=1\nSTATUS=forged", &socket).is_ok());
                std::thread::sleep(Duration::from_millis(20));
            }
            sent
        })
    };
    let t = Instant::now();
    let o = d.ctl(&["start", "never-ready"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(forger.join().unwrap() > 0, "the forger never reached the socket");
    assert!(!o.status.success(), "a service that never sends READY=1 failed to start: {}", text(&o));
    assert_ne!(d.status("never-ready")["status_text"], "forged");
    assert!(t.elapsed() >= Duration::from_millis(450), "{:?}", t.elapsed());
    assert_eq!(d.status("never-ready")["result"], "ready-timeout");

    ok(&d.ctl(&["start", "dog"]));
    let s = d.wait_for("dog", T, "a watchdog restart", |s| s["restarts"].as_u64() >= Some(1));
    // 4 pings at 100 ms, then silence: restarted about 0.8 s in, not before.
    assert!(s["restarts"].as_u64() >= Some(1), "{s:#}");
    let log = std::fs::read_to_string(d.dir.join("logs/dog.log")).unwrap();
    assert!(log.contains("stopped pinging after 4") && log.contains("watchdog timeout"), "{log}");
}

/// `service.ready_address` (issue 20): a simple service that listens only
/// after a while is running, and `capexec start` returns, once its TCP or
/// Unix address accepts, not once the program was executed; one that never
/// listens fails its start at ready_timeout.
#[test]
fn ready_address_makes_start_wait_for_the_listener() {
    let mut d = Daemon::prepare(As::Root, "ready-addr");
    let port = unused_port();
    // Listens half a second after it starts, then accepts for ever.
    let listener = |socket: &str| {
        format!(
            "select(undef, undef, undef, 0.5); use IO::Socket::INET; use IO::Socket::UNIX; \
             my $s = {socket} or die \"listen: $!\"; print \"listening\\n\"; STDOUT->flush; while (my $c = $s->accept) {{ close $c }}"
        )
    };
    let unit = |prog: &str, extra: &str| {
        format!(
            "[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n[namespaces]\nnet = \"host\"\n[service]\nrestart = \"no\"\n{extra}",
            serde_json::to_string(prog).unwrap()
        )
    };
    let tcp = listener(&format!("IO::Socket::INET->new(LocalAddr => '127.0.0.1:{port}', Listen => 5, ReuseAddr => 1)"));
    d.write_unit("tcp", &unit(&tcp, &format!("ready_address = [\"tcp:127.0.0.1:{port}\"]\n[landlock]\nbind_tcp = [{port}]\n")));
    let sock = "/run/capexec-it-ready/s";
    let unix = listener(&format!("IO::Socket::UNIX->new(Local => '{sock}', Listen => 5)"));
    d.write_unit("unix", &unit(&unix, &format!("ready_address = [\"unix:{sock}\"]\n[filesystem]\nruntime_directory = [\"capexec-it-ready\"]\n")));
    let never = unused_port();
    d.write_unit("never", &unit("sleep 60", &format!("ready_address = [\"tcp:127.0.0.1:{never}\"]\nready_timeout = \"800ms\"\n")));
    d.start();
    let out = ok(&d.ctl(&["start", "tcp"]));
    // No wait here: start has returned because the address accepts.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "running before it listens: {out}");
    assert_eq!(d.status("tcp")["state"], "running");
    assert!(std::fs::read_to_string(d.dir.join("logs/tcp.log")).unwrap().contains(&format!("ready: accepting on tcp:127.0.0.1:{port}")));
    ok(&d.ctl(&["start", "unix"]));
    assert!(std::os::unix::net::UnixStream::connect(sock).is_ok(), "running before its socket accepts");
    let t = Instant::now();
    let o = d.ctl(&["start", "never"]);
    assert!(!o.status.success() && t.elapsed() >= Duration::from_millis(750), "{:?}: {}", t.elapsed(), text(&o));
    assert_eq!(d.status("never")["result"], "ready-timeout");
    // The socket path is in the service's own directory: a link there to
    // another socket of the host must not make the daemon (root) connect
    // to that one, or count its answer as the service's readiness.
    let host_sock = format!("/var/tmp/capexec-it-decoy-{}.sock", std::process::id());
    let _cleanup = Scratch(vec![std::path::PathBuf::from(&host_sock)]);
    let host = std::os::unix::net::UnixListener::bind(&host_sock).unwrap();
    host.set_nonblocking(true).unwrap();
    let decoy = format!("symlink('{host_sock}', '/run/capexec-it-decoy/s') or die $!; mkdir '/run/capexec-it-decoy/d'; symlink('/var/tmp', '/run/capexec-it-decoy/up') or die $!; sleep 60");
    d.write_unit(
        "decoy",
        &unit(&decoy, &format!("ready_address = [\"unix:/run/capexec-it-decoy/s\", \"unix:/run/capexec-it-decoy/up/{}\"]\nready_timeout = \"800ms\"\n[filesystem]\nruntime_directory = [\"capexec-it-decoy\"]\n", std::path::Path::new(&host_sock).file_name().unwrap().to_string_lossy())),
    );
    assert!(d.ctl(&["reload"]).status.success());
    let o = d.ctl(&["start", "decoy"]);
    assert!(!o.status.success(), "ready through a link to the host's socket: {}", text(&o));
    assert_eq!(d.status("decoy")["result"], "ready-timeout");
    assert!(host.accept().is_err(), "the daemon connected to the host's socket through the service's link");
    d.terminate(T);
}

#[test]
fn logs_are_captured_rotated_followed_and_never_lost_silently() {
    let mut d = Daemon::prepare(As::Root, "logs");
    // 200000 lines as fast as sh can write them, then a line a second.
    d.write_unit(
        "chatty",
        &sh_unit("i=0; while [ $i -lt 200000 ]; do echo \"line $i\"; i=$((i+1)); done; echo done >&2; while :; do echo tick; sleep 0.2; done", ""),
    );
    d.start();
    ok(&d.ctl(&["start", "chatty"]));
    let file = d.dir.join("logs/chatty.log");
    let start = Instant::now();
    let count = || -> (usize, bool) {
        let mut n = 0;
        let mut done = false;
        for f in [logs_rotated(&file, 3), logs_rotated(&file, 2), logs_rotated(&file, 1), file.clone()] {
            let t = std::fs::read_to_string(&f).unwrap_or_default();
            n += t.lines().filter(|l| l.contains(" line ")).count();
            done |= t.contains("err: done");
        }
        (n, done)
    };
    while !count().1 {
        assert!(start.elapsed() < Duration::from_secs(60), "the flood did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = d.status("chatty");
    let dropped = s["log_lines_dropped"].as_u64().unwrap() as usize;
    assert_eq!(count().0 + dropped, 200_000, "every line is either in the log or counted as dropped");
    let o = ok(&d.ctl(&["logs", "chatty", "-n", "3"]));
    assert_eq!(o.lines().count(), 3, "{o}");
    // -f delivers new lines as they come.
    let mut c = command(As::Root);
    c.args(["logs", "-f", "-n", "0", "chatty", "--socket"]).arg(d.socket()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut buf = [0u8; 256];
    let n = child.stdout.as_mut().unwrap().read(&mut buf).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("tick"), "followed: {:?}", String::from_utf8_lossy(&buf[..n]));
}

fn logs_rotated(p: &std::path::Path, i: u32) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.{i}", p.display()))
}

#[test]
fn declared_limits_are_enforced_through_the_cgroup() {
    let mut d = Daemon::prepare(As::Root, "limits");
    d.write_unit(
        "bounded",
        &sh_unit(
            "sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 100501 & done'; echo forked; exec sleep 100599",
            "[service]\nrestart = \"no\"\n[limits]\ntasks_max = 4\nmemory_max = \"64M\"\ncpu_weight = 50",
        ),
    );
    d.start();
    ok(&d.ctl(&["start", "bounded"]));
    let s = d.wait_for("bounded", T, "the fork attempts", |s| s["log_tail"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("forked")));
    assert!(pids_exact("sleep 100501").len() <= 3, "tasks_max = 4 admits the shell and 3 sleeps, found {}", pids_exact("sleep 100501").len());
    let log = std::fs::read_to_string(d.dir.join("logs/bounded.log")).unwrap();
    assert!(log.contains("Cannot fork"), "fork failures are reported:\n{log}");
    assert!(s["tasks"].as_u64().unwrap() <= 4, "{s:#}");
    // Each limit landed in whichever hierarchy has its controller here.
    let h = capexec_supervisor_paths();
    for (file, want) in h {
        let f = std::path::Path::new(file).join(&d.cgroup).join("bounded").join(want.0);
        if f.exists() {
            assert_eq!(std::fs::read_to_string(&f).unwrap().trim(), want.1, "{}", f.display());
        }
    }
}

/// cgroup files and values for the limits above, on v2 or v1.
fn capexec_supervisor_paths() -> Vec<(&'static str, (&'static str, &'static str))> {
    vec![
        ("/sys/fs/cgroup/memory", ("memory.limit_in_bytes", "67108864")),
        ("/sys/fs/cgroup/pids", ("pids.max", "4")),
        ("/sys/fs/cgroup/cpu", ("cpu.shares", "512")),
        ("/sys/fs/cgroup", ("memory.max", "67108864")),
        ("/sys/fs/cgroup", ("cpu.weight", "50")),
    ]
}

#[test]
fn enable_and_disable_decide_what_starts_with_the_daemon() {
    let mut d = Daemon::prepare(As::Root, "enable");
    d.write_unit("x", &sh_unit("exec sleep 100601", ""));
    d.write_unit("y", &sh_unit("exec sleep 100602", "[service]\nautostart = true"));
    d.start();
    assert_eq!(d.status("x")["state"], "stopped");
    d.wait_state("y", "running", T);
    assert!(ok(&d.ctl(&["enable", "x"])).contains("x: enabled"));
    let o = ok(&d.ctl(&["disable", "y", "--now"]));
    assert!(o.contains("y: disabled, stopped"), "{o}");
    d.terminate(T);
    d.start();
    d.wait_state("x", "running", T);
    assert_eq!(d.status("y")["state"], "stopped", "disabled overrides autostart");
    assert_eq!(d.status("y")["enabled"], false);
}

#[test]
fn control_socket_refuses_unauthorised_users() {
    let mut d = Daemon::prepare(As::Root, "authz");
    d.write_unit("x", &sh_unit("exec sleep 100701", ""));
    d.start();
    let mut c = command(As::User);
    c.args(["stop", "x", "--socket"]).arg(d.socket());
    let o = output(c, T);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("permission denied") && err.contains("capexec"), "the refusal says who may: {err}");
    // Root still may.
    ok(&d.ctl(&["list"]));
    assert!(d.log().contains("refused a control connection"), "refusals are logged:\n{}", d.log());
}

/// One request to the control socket at `sock` from a Python process, which
/// prints the daemon's answer; `fork_depth` processes deep (each the child of
/// the last), so that a check of a bounded ancestry can be seen to fail.
fn control_client(sock: &std::path::Path, request: &str, fork_depth: u32) -> String {
    format!(
        r#"
import os, socket
def ask():
    s = socket.socket(socket.AF_UNIX)
    s.connect({sock:?})
    try:
        s.sendall(b'{request}\n')
    except BrokenPipeError:
        pass  # refused at once: the answer is there to read
    print('answer:', s.recv(65536).decode(), flush=True)
def nest(n):
    if n == 0:
        ask()
        return
    pid = os.fork()
    if pid == 0:
        nest(n - 1)
        os._exit(0)
    os.waitpid(pid, 0)
nest({fork_depth})
"#,
        sock = sock.display().to_string(),
    )
}

/// ESCAPE-CASES 40, from inside: a service that runs as root and sees the
/// control socket (its declaration shows the daemon's runtime directory)
/// passes the uid check, and once could stop other services, or write a
/// declaration where it may write and have the daemon start that file: an
/// unconfined root process. The daemon refuses its own services, told by
/// their ancestry (without a bound: from 80 processes deep too) and by their
/// cgroup (a process put into a service's cgroup from outside).
/// The attack of [`a_service_cannot_control_the_daemon`] from inside, under
/// a daemon of `who`: every request refused, nothing started or stopped,
/// each refusal in the service's trail. Returns the running daemon, its
/// service `victim` still running.
fn requests_from_a_service_are_refused(who: As) -> Daemon {
    let mut d = Daemon::prepare(who, &format!("selfctl-{who:?}"));
    let drop = d.dir.join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    if who == As::User {
        let (uid, gid) = test_user();
        std::os::unix::fs::chown(&drop, Some(uid), Some(gid)).unwrap();
    }
    let pwned = d.dir.join("pwned");
    let sock = d.dir.join("run/control.sock");
    d.write_unit("victim", &sh_unit("exec sleep 100711", ""));
    let evil = drop.join("evil.svc");
    let evil_unit = format!("[exec]\nargv = [\"/bin/sh\", \"-c\", \"id > {}\"]\n[filesystem]\nread_write = [{:?}]\n", pwned.display(), d.dir.display());
    let start_evil = format!(r#"{{"v":1,"op":"start","units":["{}"]}}"#, evil.display());
    let stop_victim = r#"{"v":1,"op":"stop","units":["victim"]}"#;
    let script = format!(
        "{}\nopen({:?}, 'w').write({evil_unit:?})\n{}\n{}",
        control_client(&sock, stop_victim, 0),
        evil.display().to_string(),
        control_client(&sock, &start_evil, 0),
        control_client(&sock, stop_victim, 80),
    );
    // As root the service is root in the host's user namespace (no
    // capabilities), rootless the daemon's owner as the kernel maps it:
    // either passes the uid check.
    let user = if who == As::Root { "user = \"root\"\n" } else { "" };
    d.write_unit(
        "attacker",
        &format!(
            "[exec]\nargv = [\"/usr/bin/python3\", \"-c\", '''{script}''']\n{user}[filesystem]\nread_only = [{:?}]\nread_write = [{:?}]\n",
            d.dir.join("run").display(),
            drop.display()
        ),
    );
    d.start();
    ok(&d.ctl(&["start", "victim"]));
    ok(&d.ctl(&["start", "attacker"]));
    d.wait_state("attacker", "exited", T);
    let log = std::fs::read_to_string(d.dir.join("logs/attacker.log")).unwrap();
    let answers: Vec<&str> = log.lines().filter(|l| l.contains("answer:")).collect();
    assert_eq!(answers.len(), 3, "three answers:\n{log}");
    for a in &answers {
        assert!(a.contains("\"ok\":false") && a.contains("belongs to a service of this daemon"), "refused: {a}\n{log}");
    }
    assert!(std::fs::read_to_string(&evil).unwrap().contains("id >"), "the service wrote its declaration");
    assert_eq!(d.status("victim")["state"], "running", "the other service runs on");
    let list = ok(&d.ctl(&["list"]));
    assert!(!list.contains("evil"), "the service's declaration was never loaded:\n{list}");
    assert!(!pwned.exists(), "nothing ran from the service's declaration");
    assert!(d.log().contains("refused a control connection: process"), "refusals are logged:\n{}", d.log());
    let trail = d.status("attacker")["denials"].clone();
    assert!(
        trail["recent"].as_array().unwrap().iter().any(|e| e["mechanism"] == "daemon" && e["fix"].as_str().unwrap().starts_with("nothing")),
        "the refusals are in the service's trail: {trail:#}"
    );
    d
}

/// ESCAPE-CASES 40, from inside: a service that runs as root and sees the
/// control socket (its declaration shows the daemon's runtime directory)
/// passes the uid check, and once could stop other services, or write a
/// declaration where it may write and have the daemon start that file: an
/// unconfined root process. The daemon refuses its own services, told by
/// their ancestry (without a bound: from 80 processes deep too) and by their
/// cgroup (a process put into a service's cgroup from outside).
#[test]
fn a_service_cannot_control_the_daemon() {
    require_root();
    let d = requests_from_a_service_are_refused(As::Root);
    let sock = d.socket();
    let stop_victim = r#"{"v":1,"op":"stop","units":["victim"]}"#;
    // A process of the service that is not below the launcher (as one left
    // by an init that has ended would be) is still the service's: its cgroup.
    let cgroup = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|r| std::path::Path::new(r).join(&d.cgroup).join("victim"))
        .find(|p| p.join("cgroup.procs").exists())
        .expect("the victim's cgroup v2 directory");
    let mut client = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("import sys\nsys.stdin.readline()\n{}", control_client(&sock, stop_victim, 0)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(cgroup.join("cgroup.procs"), client.id().to_string()).unwrap();
    client.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = wait_output(client, T);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("belongs to a service of this daemon"), "refused by its cgroup: {said}");
    assert_eq!(d.status("victim")["state"], "running", "the other service runs on");
    // A sandbox the daemon did not make: `capexec exec` (as under systemd)
    // of a declaration that runs as root and shows the socket.
    let unit = d.dir.join("outside.svc");
    std::fs::write(
        &unit,
        format!(
            "[exec]\nargv = [\"/usr/bin/python3\", \"-c\", '''{}''']\nuser = \"root\"\n[filesystem]\nread_only = [{:?}]\n",
            control_client(&sock, stop_victim, 0),
            d.dir.join("run").display()
        ),
    )
    .unwrap();
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert!(String::from_utf8_lossy(&o.stdout).contains("runs in a capexec sandbox"), "refused by its view: {}", text(&o));
    assert_eq!(d.status("victim")["state"], "running", "the other service runs on");
    // From the host, root still may.
    ok(&d.ctl(&["stop", "victim"]));
}

/// The same from a service of a user daemon: it runs as the daemon's owner
/// (in a user namespace of its own), which the uid check lets through.
#[test]
fn a_service_cannot_control_its_user_daemon() {
    let d = requests_from_a_service_are_refused(As::User);
    ok(&d.ctl(&["stop", "victim"]));
}

fn raw_request(d: &mut Daemon, data: &[u8]) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap_or_else(|e| {
        let status = d.child.as_mut().unwrap().try_wait().unwrap();
        panic!("connect to {}: {e}; the daemon's exit status: {status:?}; its log:\n{}", d.socket().display(), d.log())
    });
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(data);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn malformed_and_oversized_requests_get_errors_not_crashes() {
    let mut d = Daemon::prepare(As::Root, "malformed");
    d.start();
    let huge = format!("{{\"v\":1,\"op\":\"status\",\"units\":[\"{}\"]}}\n", "a".repeat(2 << 20));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"hello\n".to_vec(), "malformed request"),
        ("no version", b"{\"op\":\"list\"}\n".to_vec(), "no protocol version"),
        ("wrong version", b"{\"v\":99,\"op\":\"list\"}\n".to_vec(), "version 99"),
        ("unknown op", b"{\"v\":1,\"op\":\"format-disk\"}\n".to_vec(), "unknown variant"),
        ("unknown field", b"{\"v\":1,\"op\":\"list\",\"x\":1}\n".to_vec(), "unknown field"),
        ("wrong type", b"{\"v\":1,\"op\":\"start\",\"units\":\"nginx\"}\n".to_vec(), "invalid type"),
        ("not UTF-8", b"{\"v\":1,\"op\":\"\xff\xfe\"}\n".to_vec(), "malformed request"),
        ("no newline", b"{\"v\":1,\"op\":\"list\"}".to_vec(), "incomplete request"),
        ("empty", Vec::new(), "incomplete request"),
        ("oversized", huge.into_bytes(), "request too large"),
        ("deep nesting", format!("{}\n", "[".repeat(60_000)).into_bytes(), "malformed request"),
        ("empty units", b"{\"v\":1,\"op\":\"start\",\"units\":[]}\n".to_vec(), "no unit given"),
        ("unknown unit", b"{\"v\":1,\"op\":\"stop\",\"units\":[\"../../etc/passwd\"]}\n".to_vec(), "error"),
    ];
    for (what, data, want) in cases {
        let out = raw_request(&mut d, &data);
        assert!(out.contains("\"ok\":false") && out.contains(want), "{what}: {out:?}\n{}", d.log());
    }
    // A client that connects and says nothing does not block others.
    let _idle: Vec<_> = (0..50).map(|_| std::os::unix::net::UnixStream::connect(d.socket()).unwrap()).collect();
    let o = ok(&d.ctl(&["list"]));
    assert!(o.contains("0 units"), "{o}");
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the daemon is still running");
}

#[test]
fn no_daemon_gives_a_message_with_the_fix() {
    let mut c = command(As::Root);
    c.args(["status", "--socket", "/tmp/capexec-it-nonexistent/control.sock"]);
    let o = output(c, T);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no capexec daemon is running") && err.contains("help: start"), "{err}");
}

#[test]
fn user_mode_daemon_as_an_unprivileged_user() {
    let mut d = Daemon::prepare(As::User, "user");
    d.write_unit("mine", &sh_unit("echo \"uid $(id -u)\"; exec sleep 100801", "[service]\nautostart = true"));
    d.write_unit("limited", &sh_unit("exec sleep 100802", "[limits]\ntasks_max = 10"));
    d.start();
    let s = d.wait_state("mine", "running", T);
    let (uid, _) = test_user();
    let st = std::fs::read_to_string(format!("/proc/{}/status", pid_of(&s))).unwrap();
    assert!(st.lines().any(|l| l.starts_with("Uid:") && l.contains(&uid.to_string())), "runs as the user:\n{st}");
    let mode = std::fs::metadata(d.socket()).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&mode), uid, "the socket is the user's");
    // Limits need a cgroup, which a user daemon does not have: a clear error.
    let o = d.ctl(&["start", "limited"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("[limits]"), "{}", text(&o));
    ok(&d.ctl(&["stop", "mine"]));
    assert!(pids_exact("sleep 100801").is_empty());
    ok(&d.ctl(&["start", "mine"]));
    d.wait_state("mine", "running", T);
    // Another user (root is always admitted, so use the socket's mode): the
    // directory is private to the user.
    let rt = std::fs::metadata(d.dir.join("run")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&rt.permissions()) & 0o777, 0o700);
    d.kill9();
    assert!(wait_gone_by(|| pids_exact("sleep 100801"), Duration::from_secs(5)).is_empty(), "killing a user daemon leaves nothing");
}

#[test]
fn logs_go_to_the_journal_when_one_runs() {
    // A stand-in for journald's socket (CAPEXEC_JOURNAL_SOCKET moves it).
    let mut d = Daemon::prepare(As::Root, "journal");
    let sock_path = d.dir.join("journal.sock");
    let journal = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    journal.set_read_timeout(Some(T)).unwrap();
    d.write_unit("talker", &sh_unit("echo to-stdout; echo to-stderr >&2; exec sleep 100901", ""));
    d.start_with(&[], &[("CAPEXEC_JOURNAL_SOCKET", sock_path.to_str().unwrap())]);
    ok(&d.ctl(&["start", "talker"]));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !(seen.iter().any(|m: &String| m.contains("MESSAGE=to-stdout")) && seen.iter().any(|m| m.contains("MESSAGE=err: to-stderr"))) {
        let n = journal.recv(&mut buf).unwrap_or_else(|e| panic!("no journal entry ({e}); got {seen:?}"));
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let out = seen.iter().find(|m| m.contains("MESSAGE=to-stdout")).unwrap();
    assert!(out.contains("PRIORITY=6\n") && out.contains("CAPEXEC_UNIT=talker\n") && out.contains("SYSLOG_IDENTIFIER=talker\n"), "{out}");
    let err = seen.iter().find(|m| m.contains("to-stderr")).unwrap();
    assert!(err.contains("PRIORITY=3\n"), "{err}");
    assert!(!d.dir.join("logs/talker.log").exists(), "no log file when the journal takes the lines");
    let o = d.ctl(&["logs", "talker"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("to-stdout"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("journalctl CAPEXEC_UNIT=talker"), "{}", text(&o));
}

// Issue 4 under the daemon, root and rootless: the broker is a process of its
// own per service (forked by the launcher), confined itself; its refusals land
// in the service's log, so a start that fails for want of a grant says which
// grant to add.
both!(brokered_services_and_their_refusals_under_the_daemon, |who: As| {
    let mut d = Daemon::prepare(who, &format!("broker-{who:?}"));
    // Ports and user per mode: both modes run at once.
    let (port, refused, user) = match who {
        As::Root => (21311, 21312, "user = \"memcache\"\n"),
        As::User => (21321, 21322, ""),
    };
    let memcached = |p: u16, extra: &str| {
        format!(
            "[exec]\nargv = [\"/usr/bin/memcached\", \"-p\", \"{p}\", \"-U\", \"0\", \"-l\", \"127.0.0.1\"]\n{user}\
             [namespaces]\nnet = \"none\"\n{extra}[broker.net]\nbind = [\"tcp:127.0.0.1:{port}\"]\n"
        )
    };
    d.write_unit("mc-granted", &memcached(port, ""));
    d.write_unit("mc-refused", &memcached(refused, "[service]\nrestart = \"no\"\n"));
    // The explicit protocol under the daemon: the launcher hands the service its
    // end of the broker connection (CAPEXEC_BROKER_FD) and the broker answers.
    let tree = grant_tree(&format!("daemon-explicit-{who:?}"));
    let probe = shared_dir().join("client-probe");
    d.write_unit(
        "explicit",
        &format!(
            "[exec]\nargv = [\"{}\", \"basic\", \"{1}\"]\n\n[service]\nrestart = \"no\"\n\n\
             [filesystem]\nexecutable = [\"{2}\"]\n\n\
             [[broker.fs]]\npath = \"{1}/data/**\"\nrights = [\"read\"]\n\n[broker]\nsysctl = [\"kernel.ostype\"]\n",
            probe.display(),
            tree.display(),
            shared_dir().display()
        ),
    );
    d.start();
    ok(&d.ctl(&["start", "explicit"]));
    let s = d.wait_for("explicit", T, "the explicit-protocol probe to finish", |s| s["state"] != "running");
    let logs = text(&d.ctl(&["logs", "explicit"]));
    assert!(
        s["last_exit"]["code"] == 0
            && logs.contains("BLOCKED client open of a granted file")
            && logs.contains("BLOCKED client sysctl")
            && !logs.contains("ESCAPED"),
        "status {s}\nlogs:\n{logs}"
    );
    assert!(logs.contains(&format!("add a [[broker.fs]] grant with path = \"{}/secret\"", tree.display())), "the refusal is logged:\n{logs}");
    ok(&d.ctl(&["start", "mc-granted"]));
    assert!(wait_port(port, T), "brokered memcached does not listen:\n{}", d.log());
    assert!(tcp_roundtrip(port, b"version\r\n", "\r\n").unwrap().starts_with("VERSION"));
    let s = d.status("mc-granted");
    let pid = pid_of(&s);
    assert_ne!(std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(), std::fs::read_link("/proc/self/ns/net").unwrap());
    // The broker: its own process under the daemon, confined, with the
    // service's uid (as root, the service's dynamic uid: memcached's own).
    let service_uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(format!("/proc/{pid}")).unwrap());
    let brokers = brokers_under(d.pid());
    assert_eq!(brokers.len(), 1, "one broker for the one brokered service: {brokers:?}");
    broker_confinement(brokers[0], Some(service_uid)).unwrap();
    // The broker dies: the launcher stops the service (it cannot work as
    // declared without it) and the restart policy brings both back.
    // SAFETY: killing the broker this test's daemon started.
    unsafe { libc::kill(brokers[0], libc::SIGKILL) };
    let s2 = d.wait_for("mc-granted", T, "a restart after the broker's death", |s| s["state"] == "running" && pid_of(s) != pid);
    assert!(wait_port(port, T) && tcp_roundtrip(port, b"version\r\n", "\r\n").unwrap().starts_with("VERSION"), "after restart: {s2}");
    let logs = text(&d.ctl(&["logs", "mc-granted"]));
    assert!(logs.contains("the service's broker ended (status 137); stopping the service"), "logs:\n{logs}");
    let brokers2 = brokers_under(d.pid());
    assert!(brokers2.len() == 1 && brokers2[0] != brokers[0], "a new broker: {brokers2:?}");
    let o = d.ctl(&["start", "mc-refused"]);
    let out = text(&o);
    // type = simple is running as soon as it is started; it ends when its bind is refused.
    if o.status.success() {
        d.wait_for("mc-refused", T, "mc-refused to end without its port", |s| s["state"] != "running");
    }
    // The broker's refusal is in the service's denial trail (the broker
    // reports it on a pipe of its own, not through the log the service
    // writes too) and in its log.
    let fix = format!("add \"tcp:127.0.0.1:{refused}\" to broker.net.bind");
    let s = d.wait_for("mc-refused", T, "the broker's refusal in the trail", |s| s["denials"]["total"].as_u64() >= Some(1));
    let entry = s["denials"]["recent"].as_array().unwrap().iter().find(|e| e["mechanism"] == "broker").unwrap_or_else(|| panic!("{s:#}")).clone();
    assert!(entry["what"].as_str().unwrap().starts_with("bind(fd ") && entry["fix"] == fix.as_str(), "{s:#}");
    let logs = text(&d.ctl(&["logs", "mc-refused"]));
    assert!(logs.contains("refused by broker: bind(fd") && logs.contains(&fix), "logs:\n{logs}\nstart:\n{out}");
    // The fix, applied as `capexec denials --propose` writes it: memcached
    // gets its port through the broker and answers.
    let o = d.ctl(&["denials", "--propose", "--json", "mc-refused"]);
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let dropin = std::path::PathBuf::from(p["path"].as_str().unwrap());
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    std::fs::write(&dropin, p["dropin"].as_str().unwrap_or_else(|| panic!("nothing proposed: {p}"))).unwrap();
    ok(&d.ctl(&["reload"]));
    ok(&d.ctl(&["start", "mc-refused"]));
    assert!(wait_port(refused, T) && tcp_roundtrip(refused, b"version\r\n", "\r\n").unwrap().starts_with("VERSION"), "{p}");
    d.terminate(T);
    // Only this test's memcacheds: other tests run theirs in parallel.
    assert!(pids_matching(&format!("/usr/bin/memcached -p {port}")).is_empty());
});

// 50: a service's bytes reach an administrator's terminal only escaped.
// Its log lines and its STATUS= text carry escape sequences that would set
// the window title, clear the screen and move the cursor (and a bidi
// override): `capexec status` and `capexec logs` print them as `\x1b...`,
// the log file keeps the raw bytes.
#[test]
fn service_text_reaches_the_terminal_escaped() {
    let mut d = Daemon::prepare(As::Root, "terminal");
    let probe = probe();
    let dir = shared_dir().display().to_string();
    d.write_unit("painter", &sh_unit(r"printf '\033]0;owned\007\033[2J\033[1Ahello \342\200\256gnp.exe\n'; exec sleep 100951", ""));
    d.write_unit(
        "titler",
        &format!(
            "[exec]\nargv = [\"{}\", \"sd-notify\", \"READY=1\\\\nSTATUS=\\u001b]0;owned\\u0007\\u001b[2Jserving\"]\n[filesystem]\nexecutable = [\"{dir}\"]\n[service]\ntype = \"notify\"\n",
            probe.display()
        ),
    );
    d.start();
    ok(&d.ctl(&["start", "painter", "titler"]));
    let raw = d.dir.join("logs/painter.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&raw).unwrap_or_default().contains("hello") {
        assert!(start.elapsed() < T, "painter said nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(std::fs::read_to_string(&raw).unwrap().contains("\x1b]0;owned\x07\x1b[2J"), "the log file keeps the raw bytes");
    let harmless = |what: &str, out: &str| {
        assert!(!out.contains('\x1b') && !out.contains('\x07') && !out.contains('\u{202e}'), "{what} printed a control character raw: {out:?}");
    };
    let logs = ok(&d.ctl(&["logs", "painter"]));
    harmless("logs", &logs);
    assert!(logs.contains(r"\x1b]0;owned\x07\x1b[2J\x1b[1Ahello \u{202e}gnp.exe"), "{logs}");
    let status = ok(&d.ctl(&["status", "titler", "painter"]));
    harmless("status", &status);
    assert!(status.contains(r#"status: "\x1b]0;owned\x07\x1b[2Jserving""#), "{status}");
    let json = ok(&d.ctl(&["status", "--json", "titler"]));
    harmless("status --json", &json);
    assert!(json.contains(r"\u001b]0;owned"), "JSON carries the text, escaped by its own rules: {json}");
}

/// `type = "forking"` (issue 19): started when the started process exits with
/// 0 (not before), the daemon it left is the service; with `pid_file`, that
/// process alone (its end ends the service though another child runs on);
/// stop reaches it; a start that exits non-zero fails. With a pid namespace
/// and without one (as root the default with a pid file: init then reaps as
/// a subreaper, and the file holds the host's pid).
#[test]
fn forking_services_run_until_the_daemon_they_left_ends() {
    for (marker, extra) in [(100301, "[namespaces]\npid = true\n"), (100311, "")] {
        let own_pid_ns = !extra.is_empty();
        let mut d = Daemon::prepare(As::Root, &format!("forking-{marker}"));
        let (main, other, lone) = (marker, marker + 1, marker + 2);
        // The pid file is written before the started process exits, as
        // forking daemons do; the wait shows start waits for that exit.
        // In a host directory, where host tools would read it.
        let piddir = shared_dir().join(format!("forking-{marker}"));
        std::fs::create_dir_all(&piddir).unwrap();
        set_mode(&piddir, 0o777);
        let pid_file = piddir.join("d.pid");
        d.write_unit(
            "forker",
            &sh_unit(
                &format!("sleep {main} & echo $! > {}; sleep {other} & sleep 0.4; exit 0", pid_file.display()),
                &format!(
                    "[service]\ntype = \"forking\"\npid_file = \"{}\"\nrestart = \"no\"\n[filesystem]\nread_write = [\"{}\"]\n{extra}",
                    pid_file.display(),
                    piddir.display()
                ),
            ),
        );
        d.write_unit("bad", &sh_unit("sleep 0.1; exit 3", &format!("[service]\ntype = \"forking\"\npid_file = \"/tmp/d.pid\"\nrestart = \"no\"\n{extra}")));
        if own_pid_ns {
            d.write_unit("any", &sh_unit(&format!("sleep {lone} & exit 0"), "[service]\ntype = \"forking\"\nrestart = \"no\"\n"));
        }
        d.start();
        let t = Instant::now();
        let out = ok(&d.ctl(&["start", "forker"]));
        assert!(out.contains("forker: started (running"), "{out}");
        assert!(t.elapsed() >= Duration::from_millis(380), "running before the started process exited: {:?}", t.elapsed());
        let mains = wait_found_by(|| pids_exact(&format!("sleep {main}")), T);
        assert_eq!(mains.len(), 1, "the daemon's main process runs ({extra})");
        // Without a pid namespace of its own the file holds the host's pid.
        let written: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        assert_eq!(written == mains[0], !own_pid_ns, "pid file {written}, host pid {} ({extra})", mains[0]);
        assert_eq!(wait_found_by(|| pids_exact(&format!("sleep {other}")), T).len(), 1);
        // Its main process ends: so does the service, and the rest with it.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(mains[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
        let s = d.wait_for("forker", T, "the end of the service", |s| s["state"] != "running");
        assert_eq!(s["result"], "exit-failure", "{s:#}");
        assert_eq!(wait_gone_by(|| pids_exact(&format!("sleep {other}")), T), Vec::<i32>::new(), "the other child outlived the service");

        // Started again, then stopped: the stop signal reaches the daemon.
        ok(&d.ctl(&["start", "forker"]));
        assert_eq!(wait_found_by(|| pids_exact(&format!("sleep {main}")), T).len(), 1);
        let out = ok(&d.ctl(&["stop", "forker"]));
        assert!(out.contains("forker: stopped"), "{out}");
        assert_eq!(wait_gone_by(|| pids_exact(&format!("sleep {main}")), T), Vec::<i32>::new());

        let o = d.ctl(&["start", "bad"]);
        assert!(!o.status.success(), "a start that exits 3 failed: {}", text(&o));
        assert_eq!(d.status("bad")["result"], "exit-failure");

        if own_pid_ns {
            // Without a pid file: running while any process is left.
            ok(&d.ctl(&["start", "any"]));
            let lones = wait_found_by(|| pids_exact(&format!("sleep {lone}")), T);
            assert_eq!(lones.len(), 1);
            assert_eq!(d.status("any")["state"], "running");
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(lones[0]), nix::sys::signal::Signal::SIGTERM).unwrap();
            d.wait_for("any", T, "the end of the service", |s| s["state"] != "running");
        }
        d.terminate(T);
    }
}

/// A forking service whose start ends at once, with a task helper (a
/// reload command): the daemon took init's first child for the main process
/// as the setup ended, and where the start had ended already (a busy
/// machine) that was the helper. The stop signal went to the helper, the
/// daemon ran on, and the stop waited out the stop timeout (varnishncsa's,
/// under load). Init stands for a forking service's daemon now: each stop
/// reaches it at once, and `status` shows the daemon's pid from its file.
#[test]
fn a_forking_start_that_ends_at_once_is_stopped_through_its_daemon() {
    let marker = 100331;
    let mut d = Daemon::prepare(As::Root, "forking-quick");
    let piddir = shared_dir().join("forking-quick");
    std::fs::create_dir_all(&piddir).unwrap();
    set_mode(&piddir, 0o777);
    let pid_file = piddir.join("d.pid");
    let extra = format!(
        "[service]\ntype = \"forking\"\npid_file = \"{}\"\nrestart = \"no\"\nstop_timeout = \"300s\"\n[filesystem]\nread_write = [\"{}\"]\n[[exec.reload]]\nargv = [\"/bin/true\"]\n",
        pid_file.display(),
        piddir.display()
    );
    d.write_unit("quick", &sh_unit(&format!("sleep {marker} & echo $! > {}", pid_file.display()), &extra));
    d.start();
    for round in 0..8 {
        ok(&d.ctl(&["start", "quick"]));
        let mains = wait_found_by(|| pids_exact(&format!("sleep {marker}")), T);
        assert_eq!(mains.len(), 1, "round {round}");
        // Shown as the daemon its pid file names (not the task helper).
        let s = d.status("quick");
        assert_eq!(s["main_pid"], mains[0], "round {round}: {s:#}");
        let out = ok(&d.ctl(&["stop", "quick"]));
        assert!(out.contains("quick: stopped"), "round {round}: {out}");
        assert_eq!(wait_gone_by(|| pids_exact(&format!("sleep {marker}")), T), Vec::<i32>::new(), "round {round}");
    }
    d.terminate(T);
}

/// A forking service without a pid file (oidentd's unit): its reload
/// command's $MAINPID is the daemon the start left, the one process init
/// adopted, as systemd guesses it. It was the started program's pid, which
/// had ended: `kill -HUP $MAINPID` failed, "No such process".
#[test]
fn a_forking_start_without_a_pid_file_reloads_its_daemon() {
    let dir = shared_dir().join("forking-nopid");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let log = dir.join("log");
    let d_ = dir.display();
    let mut d = Daemon::prepare(As::Root, "forking-nopid");
    let daemon = format!("( trap 'echo reloaded >> {d_}/log' HUP; echo started >> {d_}/log; while :; do sleep 0.1 & wait; done ) & exit 0");
    let extra = format!(
        "[service]\ntype = \"forking\"\nrestart = \"no\"\n[filesystem]\nread_write = [\"{d_}\"]\n[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -HUP $MAINPID\"]\n"
    );
    d.write_unit("nopid", &sh_unit(&daemon, &extra));
    d.start();
    ok(&d.ctl(&["start", "nopid"]));
    assert!(wait_file_lines(&log, 1).contains(&"started".to_owned()));
    let out = ok(&d.ctl(&["reload", "nopid"]));
    assert!(out.contains("nopid: reloaded"), "{out}");
    assert!(wait_file_lines(&log, 2).contains(&"reloaded".to_owned()), "the reload did not reach the daemon");
    let out = ok(&d.ctl(&["stop", "nopid"]));
    assert!(out.contains("nopid: stopped"), "{out}");
    d.terminate(T);
}

/// A forking daemon that replaces itself (nginx's binary upgrade: the new
/// master writes the pid file, then the old one exits) goes on as the
/// service with the process its pid file names now, as systemd reads the
/// file again after a reload. Before, the old master's exit ended the
/// service, and its successor with it. Each generation here starts the
/// next on SIGUSR2 (the reload's `kill -USR2 $MAINPID`), waits for the pid
/// file to name it, and exits.
#[test]
fn a_forking_daemon_that_replaces_itself_goes_on_by_its_pid_file() {
    let dir = shared_dir().join("forking-upgrade");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let (log, pid_file) = (dir.join("log"), dir.join("d.pid"));
    let prog = format!(
        "import os, signal, time\n\
         def serve(gen):\n\
         \x20   open('{p}.tmp', 'w').write(str(os.getpid())); os.rename('{p}.tmp', '{p}')\n\
         \x20   open('{l}', 'a').write('generation %d %d\\n' % (gen, os.getpid()))\n\
         \x20   def upgrade(sig, frame):\n\
         \x20       child = os.fork()\n\
         \x20       if child == 0:\n\
         \x20           serve(gen + 1)\n\
         \x20       while open('{p}').read() != str(child):\n\
         \x20           time.sleep(0.01)\n\
         \x20       os._exit(0)\n\
         \x20   signal.signal(signal.SIGUSR2, upgrade)\n\
         \x20   while True:\n\
         \x20       time.sleep(0.1)\n\
         if os.fork() == 0:\n\
         \x20   os.setsid(); serve(1)\n",
        p = pid_file.display(),
        l = log.display()
    );
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", &prog]).unwrap();
    let unit = format!(
        "[exec]\nargv = {argv}\n[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -USR2 $MAINPID\"]\n\
         [service]\ntype = \"forking\"\npid_file = \"{p}\"\nrestart = \"no\"\n\
         [namespaces]\npid = false\n[filesystem]\nread_write = [\"{d}\"]\n",
        p = pid_file.display(),
        d = dir.display()
    );
    let mut d = Daemon::prepare(As::Root, "forking-upgrade");
    d.write_unit("upgrade", &unit);
    d.start();
    ok(&d.ctl(&["start", "upgrade"]));
    let pid_of = |line: &str| line.rsplit(' ').next().unwrap().parse::<i32>().unwrap();
    let first = pid_of(&wait_file_lines(&log, 1)[0]);
    for generation in 2..=3 {
        let out = ok(&d.ctl(&["reload", "upgrade"]));
        assert!(out.contains("upgrade: reloaded"), "{out}");
        let lines = wait_file_lines(&log, generation);
        let old = pid_of(&lines[generation - 2]);
        assert!(
            wait_gone_by(|| if std::path::Path::new(&format!("/proc/{old}")).exists() { vec![old] } else { vec![] }, T).is_empty(),
            "generation {} did not exit",
            generation - 1
        );
        let s = d.wait_for("upgrade", T, "running", |s| s["state"] != "reloading");
        assert_eq!(s["state"], "running", "generation {} exited and the service ended: {}", generation - 1, text(&d.ctl(&["logs", "upgrade"])));
    }
    let last = pid_of(&wait_file_lines(&log, 3)[2]);
    assert_ne!(first, last);
    let out = ok(&d.ctl(&["stop", "upgrade"]));
    assert!(out.contains("upgrade: stopped"), "{out}");
    assert!(!std::path::Path::new(&format!("/proc/{last}")).exists(), "the last generation outlived the stop");
    d.terminate(T);
}

/// A forking service without a pid namespace, stopped while its start waits
/// for the pid file to name the daemon (chronyd's learning run once was): the
/// stop reaches the daemon the start left (init's adopted child), which ends
/// as its stop signal has it end, long before the stop timeout. It was
/// dropped (nothing named the daemon yet), and only the timeout's SIGKILL
/// ended the daemon.
#[test]
fn a_forking_daemon_stopped_before_its_pid_file_names_it_gets_the_signal() {
    let dir = shared_dir().join("forking-latepid");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let log = dir.join("log");
    let d_ = dir.display();
    let mut d = Daemon::prepare(As::Root, "forking-latepid");
    // The pid file comes a minute late. (The daemon ends its own child: what
    // it leaves would get no signal before the stop timeout.)
    let daemon = format!(
        "( trap 'kill $!; echo stopping >> {d_}/log; exit 0' TERM; echo started >> {d_}/log; sleep 60 & wait; echo $$ > {d_}/d.pid; while :; do sleep 0.1 & wait; done ) & exit 0"
    );
    let extra = format!(
        "[service]\ntype = \"forking\"\npid_file = \"{d_}/d.pid\"\nready_timeout = \"120s\"\nrestart = \"no\"\nstop_timeout = \"30s\"\n\
         [namespaces]\npid = false\n[filesystem]\nproc = \"none\"\nread_write = [\"{d_}\"]\n"
    );
    d.write_unit("latepid", &sh_unit(&daemon, &extra));
    d.start();
    std::thread::scope(|s| {
        let start = s.spawn(|| d.ctl(&["start", "latepid"]));
        assert!(wait_file_lines(&log, 1).contains(&"started".to_owned()));
        let asked = Instant::now();
        let out = d.ctl(&["stop", "latepid"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(asked.elapsed() < Duration::from_secs(30), "stopped by the stop timeout, after {:?}", asked.elapsed());
        assert!(wait_file_lines(&log, 2).contains(&"stopping".to_owned()), "the stop signal did not reach the daemon: {}", d.log());
        let _ = start.join();
    });
    d.terminate(T);
}

/// `status` reads a forking service's pid file on the host, as root: a
/// directory on its way that the service replaced with a symlink is not
/// followed (it could lead the daemon's open to any file of that name, a
/// device's too), and no main pid is shown; the file reached directly is.
#[test]
fn status_reads_a_pid_file_without_following_links() {
    let marker = 100341;
    let mut d = Daemon::prepare(As::Root, "forking-link");
    let dir = shared_dir().join("forking-link");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    for (name, via) in [("direct", "real"), ("linked", "sub")] {
        // Each its own directories: each service is a user of its own.
        let script =
            format!("mkdir -p {d}/{name}-real; sleep {marker} & echo $! > {d}/{name}-real/d.pid; ln -sfn {name}-real {d}/{name}-sub", d = dir.display());
        let extra = format!(
            "[service]\ntype = \"forking\"\npid_file = \"{}/{name}-{via}/d.pid\"\nrestart = \"no\"\n[filesystem]\nread_write = [\"{}\"]\n",
            dir.display(),
            dir.display()
        );
        d.write_unit(name, &sh_unit(&script, &extra));
    }
    d.start();
    for (name, shown) in [("direct", true), ("linked", false)] {
        ok(&d.ctl(&["start", name]));
        let mains = wait_found_by(|| pids_exact(&format!("sleep {marker}")), T);
        assert_eq!(mains.len(), 1, "{name}");
        let s = d.status(name);
        let want = if shown { serde_json::json!(mains[0]) } else { serde_json::Value::Null };
        assert_eq!(s["main_pid"], want, "{name}: {s:#}");
        ok(&d.ctl(&["stop", name]));
        assert_eq!(wait_gone_by(|| pids_exact(&format!("sleep {marker}")), T), Vec::<i32>::new(), "{name}");
    }
    d.terminate(T);
}

/// `service.pid_file` of a service of any type (issue 19: lighttpd, nginx,
/// rsyslog and cron write theirs directly in /run): capexec makes that file
/// alone writable for the service, which may create nothing else in /run,
/// nor remove it; it holds the host's pid (as root the service shares the
/// host's pids), belongs to the service's user, is emptied of an earlier
/// run's pid, and is gone after the stop, as systemd removes a PIDFile=. A
/// symlink, a second link or a FIFO planted in its place fails the start
/// (at once), and what it leads to is left as it was.
#[test]
fn a_pid_file_in_run_is_made_for_the_service_alone() {
    let tag = std::process::id();
    let pid_file = PathBuf::from(format!("/run/capexec-test-{tag}.pid"));
    let other = PathBuf::from(format!("/run/capexec-test-{tag}.other"));
    let marker = 100421;
    let mut d = Daemon::prepare(As::Root, "pidfile");
    let script = format!(
        "echo $$ > {p}; echo uid $(id -u) owner $(stat -c %u {p}); touch {o} || echo made nothing else; rm {p} || echo kept; exec sleep {marker}",
        p = pid_file.display(),
        o = other.display()
    );
    d.write_unit("pf", &sh_unit(&script, &format!("[service]\npid_file = \"{}\"\nrestart = \"no\"\n", pid_file.display())));
    std::fs::write(&pid_file, "1\n").unwrap();
    d.start();
    ok(&d.ctl(&["start", "pf"]));
    let mains = wait_found_by(|| pids_exact(&format!("sleep {marker}")), T);
    assert_eq!(mains.len(), 1);
    let logs = d.wait_log("pf", "kept", T);
    let written: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_eq!(written, mains[0], "the host's pid of the service's main process: {logs}");
    let ids = logs.lines().find_map(|l| l.split_once("uid ").map(|(_, r)| r.to_owned())).unwrap_or_default();
    let (uid, owner) = ids.split_once(" owner ").unwrap_or_else(|| panic!("{logs}"));
    assert_eq!(uid, owner, "the file is the service's: {logs}");
    assert_ne!(uid, "0", "{logs}");
    assert!(logs.contains("made nothing else") && !other.exists(), "{logs}");
    ok(&d.ctl(&["stop", "pf"]));
    d.wait_for("pf", T, "the stop", |s| s["state"] != "running");
    let deadline = Instant::now() + T;
    while pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_file.exists(), "the pid file outlived the service");

    // Planted in its place: a symlink to a file of root's, a hard link of
    // it, and a FIFO (no reader: an open for writing that waited for one
    // would hold the start for ever).
    let victim = shared_dir().join(format!("pidfile-victim-{tag}"));
    std::fs::write(&victim, "secret\n").unwrap();
    set_mode(&victim, 0o600);
    for how in ["symlink", "hard link", "fifo"] {
        match how {
            "symlink" => std::os::unix::fs::symlink(&victim, &pid_file).unwrap(),
            "hard link" => std::fs::hard_link(&victim, &pid_file).unwrap(),
            _ => nix::unistd::mkfifo(&pid_file, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap(),
        }
        let o = d.ctl(&["start", "pf"]);
        assert!(!o.status.success(), "{how}: {}", text(&o));
        assert!(text(&o).contains("service.pid_file"), "{how}: {}", text(&o));
        let m = std::fs::metadata(&victim).unwrap();
        assert_eq!((std::fs::read_to_string(&victim).unwrap().as_str(), m.uid(), m.mode() & 0o7777), ("secret\n", 0, 0o600), "{how}");
        // The failed start removed it (as at every stop), or the test does.
        let _ = std::fs::remove_file(&pid_file);
    }
    d.terminate(T);
    let _ = std::fs::remove_file(&victim);
}

// `capexec exec` of a forking service (what systemd's ExecStart= runs) lasts
// as long as the daemon the start left, and ends with its status; root and
// rootless.
both!(forking_service_under_capexec_exec, |who: As| {
    let u = test_unit(
        &format!("forking-exec-{who:?}"),
        "[exec]\nargv = [\"/bin/sh\", \"-c\", \"(sleep 0.6; exit 7) & echo $! > /tmp/d.pid; exit 0\"]\n[service]\ntype = \"forking\"\npid_file = \"/tmp/d.pid\"\n",
    );
    let t = Instant::now();
    let mut c = command(who);
    c.args(["exec", u.to_str().unwrap()]);
    let o = output(c, T);
    assert_eq!(o.status.code(), Some(7), "the daemon's own status: {}", text(&o));
    assert!(t.elapsed() >= Duration::from_millis(550), "ended with the start, not with the daemon: {:?}", t.elapsed());
});

// exec.start_pre (issue 19): commands run in the service's own sandbox before
// the program (what one writes to the private /tmp the program reads), as the
// service's user; a failure fails the start with the command named, unless
// ignored; an exec error is named with its cause. Root and rootless.
both!(start_pre_runs_in_the_sandbox_before_the_program, |who: As| {
    let run = |tag: &str, pre: &str| {
        let u = test_unit(&format!("pre-{tag}-{who:?}"), &format!("[exec]\nargv = [\"/bin/sh\", \"-c\", \"cat /tmp/pre; id -u\"]\n{pre}"));
        let mut c = command(who);
        c.args(["exec", u.to_str().unwrap()]);
        output(c, T)
    };
    let pre = |argv: &str, extra: &str| format!("[[exec.start_pre]]\nargv = {argv}\n{extra}\n");
    let o = run("ok", &pre(r#"["/bin/sh", "-c", "echo made-by-pre $(id -u) > /tmp/pre"]"#, ""));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = out.lines();
    let (pre_line, uid) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(pre_line, format!("made-by-pre {uid}"), "start_pre ran in the same sandbox, as the service: {}", text(&o));

    let o = run("fails", &pre(r#"["/bin/sh", "-c", "echo never > /tmp/pre; exit 3"]"#, ""));
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("exec.start_pre[0] `/bin/sh -c echo never > /tmp/pre; exit 3` exited with status 3"), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("never"), "the program ran after a failed start_pre: {}", text(&o));

    let o = run("ignored", &format!("{}{}", pre(r#"["/bin/false"]"#, "ignore_failure = true"), pre(r#"["/bin/sh", "-c", "echo second > /tmp/pre"]"#, "")));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("second"), "{}", text(&o));

    // One that does not end is killed after service.ready_timeout.
    let t = Instant::now();
    let o = run("hangs", &format!("{}[service]\nready_timeout = \"300ms\"\n", pre(r#"["/bin/sh", "-c", "sleep 30; sleep 30"]"#, "")));
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("did not end within 300ms (service.ready_timeout); killed"), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    let o = run("noexec", &pre(r#"["/nonexistent/tool"]"#, ""));
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("exec.start_pre[0]: exec: execve /nonexistent/tool: No such file or directory"), "{}", text(&o));
});

// exec.condition (systemd's ExecCondition=, issue 19): run first, in the
// service's sandbox; an exit of 1 to 254 means "not now": the program does not
// run, the start prepared nothing, and capexec exec ends with 0; 255 fails the
// start as a start_pre failure would, and 0 lets it go on. Root and rootless.
both!(exec_condition_decides_whether_the_service_starts, |who: As| {
    let run = |tag: &str, code: u8, under_systemd: bool| {
        let body = format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", \"echo program-ran\"]\n\
             [[exec.condition]]\nargv = [\"/bin/sh\", \"-c\", \"echo condition-$(id -u); exit {code}\"]\n\
             [[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", \"echo pre-ran\"]\n"
        );
        let u = test_unit(&format!("condition-{tag}-{who:?}"), &body);
        let mut c = command(who);
        c.args(["exec", u.to_str().unwrap()]);
        if under_systemd {
            c.env("INVOCATION_ID", "0123456789abcdef0123456789abcdef");
        }
        output(c, T)
    };
    let o = run("met", 0, false);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with("condition-") && out.contains("pre-ran\nprogram-ran"), "{}", text(&o));
    let o = run("unmet", 1, false);
    assert_eq!(o.status.code(), Some(0), "not starting is no failure: {}", text(&o));
    assert!(!text(&o).contains("help: under systemd"), "{}", text(&o));
    assert!(
        text(&o).contains("not started: sandbox setup failed at `condition`: exec.condition[0]") && text(&o).contains("exited with status 1"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("pre-ran") && !text(&o).contains("program-ran"), "{}", text(&o));
    // Under systemd, whose Restart=always would repeat a run that ended well.
    let o = run("unmet-systemd", 1, true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("help: under systemd, give the unit the same check as ExecCondition="), "{}", text(&o));
    let o = run("failed", 255, false);
    assert_eq!(o.status.code(), Some(125), "255 is a failure: {}", text(&o));
    assert!(text(&o).contains("exec.condition[0]") && text(&o).contains("exited with status 255"), "{}", text(&o));
    assert!(!text(&o).contains("program-ran") && !text(&o).contains("not started"), "{}", text(&o));
});

/// exec.condition under the daemon, sandboxed (with a broker too) and
/// privileged: a start the
/// condition declines leaves the service exited as `condition-unmet`, not
/// failed, and not restarted even with restart = "always"; the next start
/// asks the condition again.
#[test]
fn an_unmet_condition_leaves_the_service_exited_under_the_daemon() {
    let dir = shared_dir().join("condition");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let flag = dir.join("wanted");
    let body = |privileged: bool| {
        format!(
            "[exec]\nargv = [\"/bin/sleep\", \"600\"]\n[filesystem]\nread_only = [\"{d}\"]\n[service]\nrestart = \"always\"\n\
             [[exec.condition]]\nargv = [\"/bin/sh\", \"-c\", \"echo asked >> {d}/asked-{privileged}; test -e {f}\"]\nprivileged = {privileged}\n",
            d = dir.display(),
            f = flag.display()
        )
    };
    let mut d = Daemon::prepare(As::Root, "condition");
    d.write_unit("sandboxed", &body(false));
    d.write_unit("privileged", &body(true));
    // With a broker, whose own process starts the service and reports back.
    d.write_unit("brokered", &format!("{}[namespaces]\nnet = \"none\"\n[broker.net]\nconnect = [\"tcp:127.0.0.1:9\"]\n", body(false)));
    d.start();
    for name in ["sandboxed", "privileged", "brokered"] {
        let out = ok(&d.ctl(&["start", name]));
        assert!(
            out.contains(&format!("{name}: not started (exited, condition-unmet)\n"))
                && (out.contains("exited with status 1") || out.contains("exit status: 1")),
            "{out}"
        );
        let s = d.status(name);
        assert_eq!((s["state"].as_str(), s["result"].as_str()), (Some("exited"), Some("condition-unmet")), "{name}: {s:#}");
        assert!(s["error"].is_null(), "{name}: {s:#}");
    }
    // Not restarted: the privileged one's condition ran once.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(dir.join("asked-true")).unwrap_or_default(), "asked\n");
    std::fs::write(&flag, "").unwrap();
    for name in ["sandboxed", "privileged", "brokered"] {
        let out = ok(&d.ctl(&["start", name]));
        assert!(out.contains(&format!("{name}: started (running")), "{out}");
    }
    d.terminate(T);
}

/// A privileged start_pre runs on the host as root before the sandbox exists
/// (it makes a directory the service then writes to); under `capexec exec`
/// and the daemon, whose start fails with the command named when it fails.
#[test]
fn privileged_start_pre_runs_on_the_host_first() {
    let dir = shared_dir().join("privileged-pre");
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display();
    let body = format!(
        "[exec]\nargv = [\"/bin/sh\", \"-c\", \"echo service >> {d}/made/log; exec sleep 600\"]\nuser = \"{TEST_USER}\"\n\
         [filesystem]\nread_write = [\"-{d}/made\"]\n\
         [[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", \"mkdir -p {d}/made && echo root-$(id -u) >> {d}/made/log && chown -R {TEST_USER} {d}/made\"]\nprivileged = true\n"
    );
    let mut daemon = Daemon::prepare(As::Root, "privileged-pre");
    daemon.write_unit("prepared", &body);
    daemon.write_unit("refused", &format!("{body}[[exec.start_pre]]\nargv = [\"/bin/false\"]\nprivileged = true\n"));
    daemon.start();
    let out = ok(&daemon.ctl(&["start", "prepared"]));
    assert!(out.contains("prepared: started (running"), "{out}");
    let log = wait_file_lines(&dir.join("made/log"), 2);
    assert_eq!(log, ["root-0", "service"], "the privileged command ran first, as root");
    ok(&daemon.ctl(&["stop", "prepared"]));
    let o = daemon.ctl(&["start", "refused"]);
    assert!(!o.status.success(), "{}", text(&o));
    let s = daemon.status("refused");
    assert!(s["error"].as_str().unwrap_or_default().contains("exec.start_pre[1] `/bin/false` failed"), "{s:#}");
    daemon.terminate(T);
    // The same under `capexec exec`: the host command first, then nothing.
    let u = test_unit(
        "privileged-pre-exec",
        "[exec]\nargv = [\"/bin/true\"]\n[[exec.start_pre]]\nargv = [\"/bin/sh\", \"-c\", \"echo host-$(id -u); exit 4\"]\nprivileged = true\n",
    );
    let mut c = command(As::Root);
    c.args(["exec", u.to_str().unwrap()]);
    let o = output(c, T);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("host-0") && text(&o).contains("exec.start_pre[0]") && text(&o).contains("exit status: 4"),
        "{}",
        text(&o)
    );
}

fn wait_file_lines(p: &std::path::Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines: Vec<String> = std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_owned).collect();
        if lines.len() >= n || start.elapsed() > T {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// exec.start_post and exec.reload (issue 19): run by the service's task
/// helper, in its sandbox (they see its private /tmp and may signal it); a
/// failing start_post stops the service as failed; `capexec reload NAME`
/// runs the reload commands and says which failed. A reload command of a
/// root service without a pid namespace still cannot signal a host process
/// running as root (the helper is in the service's Landlock domain).
#[test]
fn start_post_and_reload_run_in_the_service() {
    let dir = shared_dir().join("post-reload");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let log = dir.join("log");
    let d_ = dir.display();
    let main = format!("echo $$ > /tmp/main.pid; trap 'echo reloaded >> {d_}/log' HUP; echo started >> {d_}/log; while :; do sleep 0.1 & wait; done");
    let rw = format!("[filesystem]\nread_write = [\"{d_}\"]\n");
    let mut d = Daemon::prepare(As::Root, "post-reload");
    d.write_unit(
        "svc",
        &sh_unit(
            &main,
            &format!(
                "{rw}[[exec.start_post]]\nargv = [\"/bin/sh\", \"-c\", \"echo post-$(id -u) >> {d_}/log\"]\n\
                 [[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"test \\\"$MAINPID\\\" = $(cat /tmp/main.pid) && kill -HUP $MAINPID\"]\n"
            ),
        ),
    );
    d.write_unit("badpost", &sh_unit("exec sleep 600", "[[exec.start_post]]\nargv = [\"/bin/sh\", \"-c\", \"exit 5\"]\n[service]\nrestart = \"no\"\n"));
    let me = std::process::id();
    d.write_unit(
        "escaper",
        &format!(
            "[exec]\nargv = [\"/bin/sleep\", \"600\"]\nuser = \"root\"\n[namespaces]\npid = false\n[filesystem]\nproc = \"none\"\n\
             [[exec.reload]]\nargv = [\"/bin/kill\", \"-0\", \"{me}\"]\n"
        ),
    );
    d.write_unit("slow", &sh_unit("exec sleep 600", "[[exec.reload]]\nargv = [\"/bin/sleep\", \"5\"]\n[service]\nready_timeout = \"300ms\"\n"));
    d.start();
    // A reload that does not end is given up after service.ready_timeout.
    ok(&d.ctl(&["start", "slow"]));
    let t = Instant::now();
    let o = d.ctl(&["reload", "slow"]);
    assert!(!o.status.success() && text(&o).contains("did not end within 300ms"), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    ok(&d.ctl(&["start", "svc"]));
    let lines = wait_file_lines(&log, 2);
    let uid = d.status("svc")["main_pid"].as_i64().map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default()).unwrap_or_default();
    assert!(lines.contains(&"started".to_owned()), "{lines:?}");
    let post = lines.iter().find(|l| l.starts_with("post-")).unwrap_or_else(|| panic!("start_post did not run: {lines:?}"));
    assert!(uid.contains(&format!("Uid:\t{}\t", &post[5..])), "start_post ran as the service's user: {post} vs\n{uid}");
    let out = ok(&d.ctl(&["reload", "svc"]));
    assert!(out.contains("svc: reloaded"), "{out}");
    assert!(wait_file_lines(&log, 3).contains(&"reloaded".to_owned()), "the reload command signalled the service");

    let o = d.ctl(&["start", "badpost"]);
    let s = d.wait_for("badpost", T, "the failed start_post", |s| s["state"] != "running" && s["state"] != "starting" && s["state"] != "stopping");
    assert_eq!(s["result"], "exit-failure", "{s:#} {}", text(&o));
    assert!(s["error"].as_str().unwrap_or_default().contains("exec.start_post[0] `/bin/sh -c exit 5` exited with status 5"), "{s:#}");

    let o = d.ctl(&["reload", "badpost"]);
    assert!(!o.status.success() && text(&o).contains("badpost: the declaration has no exec.reload commands"), "{}", text(&o));

    ok(&d.ctl(&["start", "escaper"]));
    let o = d.ctl(&["reload", "escaper"]);
    assert!(!o.status.success() && text(&o).contains("exec.reload[0] `/bin/kill -0"), "a reload command signalled a host process: {}", text(&o));
    // Stopped, a service has nothing to reload.
    ok(&d.ctl(&["stop", "svc"]));
    let o = d.ctl(&["reload", "svc"]);
    assert!(!o.status.success() && text(&o).contains("svc: it is stopped, not running"), "{}", text(&o));
    d.terminate(T);
}

// `capexec reload NAME` of a service that announces its reloads (systemd's
// RELOADING=1 ... READY=1, as haproxy's master does) answers when the
// service says its reload is over, not when `kill -HUP` returns: what the
// reload does (here a second after its RELOADING=1) is done by then.
both!(a_reload_the_service_announces_is_answered_at_its_end, |who: As| {
    let (dir, _scratch) = writable_dir(&format!("announced-{who:?}"));
    let done = dir.join("reloaded");
    let prog = format!(
        "import os, signal, socket, time\n\
         def say(m): socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(m, os.environ['NOTIFY_SOCKET'])\n\
         def hup(*_):\n\
         \x20   say(b'RELOADING=1')\n\
         \x20   time.sleep(1)\n\
         \x20   open({done:?}, 'w').close()\n\
         \x20   say(b'READY=1')\n\
         signal.signal(signal.SIGHUP, hup)\n\
         say(b'RELOADING=1')\n\
         say(b'READY=1')\n\
         while True: time.sleep(1)\n"
    );
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", &prog]).unwrap();
    let mut d = Daemon::prepare(who, &format!("announced-{who:?}"));
    d.write_unit(
        "svc",
        &format!(
            "[exec]\nargv = {argv}\n[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -HUP $MAINPID\"]\n\
             [filesystem]\nread_write = [{:?}]\n[service]\ntype = \"notify\"\n",
            dir.display()
        ),
    );
    d.start();
    ok(&d.ctl(&["start", "svc"]));
    let out = ok(&d.ctl(&["reload", "svc"]));
    assert!(done.exists(), "answered before the service's READY=1 ended its reload: {out}");
    assert!(!d.status("svc")["reloading"].as_bool().unwrap_or(true), "{}", d.status("svc"));
    d.terminate(T);
});

// Under `capexec exec`: a simple service's start_post runs in its sandbox
// once it runs, and SIGHUP to capexec runs its reload commands (which signal
// the service by $MAINPID), root and rootless.
both!(start_post_and_reload_under_capexec_exec, |who: As| {
    use std::io::BufRead;
    let u = test_unit(
        &format!("exec-post-{who:?}"),
        "[exec]\nargv = [\"/bin/sh\", \"-c\", \"trap 'echo reloaded' HUP; echo started; while [ ! -e /tmp/post ]; do sleep 0.05; done; echo saw-post; while :; do sleep 0.1 & wait; done\"]\n\
         [[exec.start_post]]\nargv = [\"/bin/sh\", \"-c\", \"touch /tmp/post\"]\n\
         [[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"kill -HUP $MAINPID\"]\n",
    );
    let mut c = command(who);
    c.args(["exec", u.to_str().unwrap()]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut line = |want: &str, seen: &mut String| {
        let start = Instant::now();
        while !seen.lines().any(|l| l == want) {
            assert!(start.elapsed() < T, "no `{want}` line: {seen}");
            let mut l = String::new();
            if out.read_line(&mut l).unwrap_or(0) == 0 {
                panic!("capexec exec ended before `{want}`: {seen}");
            }
            seen.push_str(&l);
        }
    };
    line("saw-post", &mut seen);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    line("reloaded", &mut seen);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = wait_output(child, T);
    assert!(!text(&o).contains("reload failed"), "{}", text(&o));
});

/// A service that ends only when its own tool tells it to (named's `rndc
/// stop`, dovecot's `doveadm stop`): it ignores SIGTERM and SIGINT and ends
/// when the stop command writes its note. The note says which pid the
/// command had as $MAINPID and as whom it ran.
fn stopped_by_its_command() -> String {
    sh_unit(
        "trap '' TERM INT; echo started; while [ ! -e /tmp/stop-for ]; do sleep 0.05; done; echo \"stopped-by $(cat /tmp/stop-for) me $$ $(id -u)\"",
        "[[exec.stop]]\nargv = [\"/bin/sh\", \"-c\", \"echo \\\"$MAINPID $(id -u)\\\" > /tmp/stop-for\"]\n[service]\nstop_timeout = \"2min\"\nrestart = \"no\"\n",
    )
}

/// The stop note `stopped_by_its_command` printed: the command's $MAINPID
/// was the service's main process, and it ran as the service's user.
fn stopped_by_the_command(out: &str) -> bool {
    out.lines().filter_map(|l| l.split_once("stopped-by ")).any(|(_, rest)| {
        let w: Vec<&str> = rest.split_whitespace().collect();
        matches!(w.as_slice(), [pid, uid, "me", pid2, uid2] if pid == pid2 && uid == uid2)
    })
}

/// A daemon of `who` running `unit` as "svc", started, then stopped by
/// `capexec stop`, which must end well before the unit's 2-minute stop
/// timeout: the daemon and the service's status after the stop.
fn stopped_before_its_stop_timeout(who: As, tag: &str, unit: &str) -> (Daemon, serde_json::Value) {
    let mut d = Daemon::prepare(who, &format!("{tag}-{who:?}"));
    d.write_unit("svc", unit);
    d.start();
    ok(&d.ctl(&["start", "svc"]));
    let t = Instant::now();
    ok(&d.ctl(&["stop", "svc"]));
    assert!(t.elapsed() < Duration::from_secs(60), "the stop waited for the stop timeout: {:?}\n{}", t.elapsed(), d.log());
    let s = d.status("svc");
    (d, s)
}

// `[[exec.stop]]` (systemd's ExecStop=): `capexec stop` of a service that
// ignores its stop signal runs its stop command in its sandbox, with $MAINPID,
// and the service ends by it long before the stop timeout (2 minutes, then
// SIGKILL) would end it.
both!(a_stop_command_ends_a_service_that_ignores_its_stop_signal, |who: As| {
    let (mut d, s) = stopped_before_its_stop_timeout(who, "stopcmd", &stopped_by_its_command());
    assert_eq!(s["last_exit"]["code"], 0, "it ended by itself: {s:#}");
    let logs = text(&d.ctl(&["logs", "svc"]));
    assert!(stopped_by_the_command(&logs), "{logs}");
    assert!(logs.contains("running exec.stop"), "{logs}");
    d.terminate(T);
});

// The same under `capexec exec`: systemd's SIGTERM to capexec runs the stop
// commands before it goes on to the service; brokered too, where capexec is
// confined as the broker by then.
both!(a_stop_command_ends_a_service_under_capexec_exec, |who: As| {
    for (tag, extra) in [("plain", ""), ("brokered", "[[broker.fs]]\npath = \"/etc/**\"\nrights = [\"read\"]\n")] {
        stopped_under_capexec_exec(who, tag, extra);
    }
});

/// `capexec exec` of `unit` as `who`, once its service printed `started`
/// (and nothing more): its output still to be read.
fn started_under_capexec_exec(who: As, unit: &std::path::Path) -> std::process::Child {
    let mut c = command(who);
    c.arg("exec").arg(unit).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut l = String::new();
    std::io::BufRead::read_line(&mut out, &mut l).unwrap();
    assert_eq!(l, "started\n");
    assert!(out.buffer().is_empty(), "nothing more before the stop");
    child.stdout = Some(out.into_inner());
    child
}

fn stopped_under_capexec_exec(who: As, tag: &str, extra: &str) {
    let u = test_unit(&format!("exec-stopcmd-{tag}-{who:?}"), &format!("{}{extra}", stopped_by_its_command()));
    let child = started_under_capexec_exec(who, &u);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = wait_output(child, T);
    assert_eq!(o.status.code(), Some(0), "{tag}: {}", text(&o));
    assert!(stopped_by_the_command(&String::from_utf8_lossy(&o.stdout)), "{tag}: {}", text(&o));
}

/// A service whose stop command stops it with SIGSTOP first
/// (transmission-daemon's unit: `ExecStop=/bin/kill -s STOP $MAINPID`):
/// the stop signal that follows is pending on a stopped process, and
/// systemd sends SIGCONT after it. Without that the stop waits for the stop
/// timeout (2 minutes here) and ends in SIGKILL.
fn stopped_by_sigstop_first() -> String {
    "[exec]\nargv = [\"/bin/sh\", \"-c\", \"echo started; exec sleep 100402\"]\n\
     [[exec.stop]]\nargv = [\"/bin/sh\", \"-c\", \"kill -s STOP $MAINPID\"]\n[service]\nstop_timeout = \"2min\"\nrestart = \"no\"\n"
        .into()
}

// The stop signal is followed by SIGCONT, under the daemon and under
// `capexec exec`: a service its stop command stopped (SIGSTOP) ends by the
// stop signal at once, not by SIGKILL after the stop timeout.
both!(a_stopped_service_ends_by_its_stop_signal, |who: As| {
    let (mut d, s) = stopped_before_its_stop_timeout(who, "sigcont", &stopped_by_sigstop_first());
    assert_eq!(s["last_exit"]["code"], 143, "ended by SIGTERM, not SIGKILL: {s:#}");
    d.terminate(T);

    let u = test_unit(&format!("exec-sigcont-{who:?}"), &stopped_by_sigstop_first());
    let child = started_under_capexec_exec(who, &u);
    let t = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = wait_output(child, T);
    assert!(t.elapsed() < Duration::from_secs(60), "capexec exec waited for the stop timeout: {:?}\n{}", t.elapsed(), text(&o));
    assert_eq!(o.status.code(), Some(143), "ended by SIGTERM: {}", text(&o));
});

/// A service started as root that switches to another user (named -u bind)
/// still gets the stop signal from capexec exec: init keeps CAP_KILL (and
/// nothing else) once the service runs; without it, root could not signal
/// the switched process and capexec exec waited for ever.
#[test]
fn capexec_exec_stops_a_service_that_switched_users() {
    let u = test_unit(
        "switcher",
        "[exec]\nargv = [\"/usr/bin/setpriv\", \"--reuid\", \"65534\", \"--regid\", \"65534\", \"--clear-groups\", \"/bin/sleep\", \"100401\"]\n\
         user = \"root\"\n[capabilities]\nkeep = [\"CAP_SETUID\", \"CAP_SETGID\"]\n",
    );
    let mut c = command(As::Root);
    c.args(["exec", u.to_str().unwrap()]);
    let child = c.spawn().unwrap();
    let start = Instant::now();
    let sleeper = loop {
        if let Some(p) = pids_exact("/bin/sleep 100401").first() {
            break *p;
        }
        assert!(start.elapsed() < T, "the service did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let st = std::fs::read_to_string(format!("/proc/{sleeper}/status")).unwrap();
    assert!(st.contains("Uid:\t65534\t65534\t65534\t65534"), "{st}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = wait_output(child, T);
    assert_eq!(o.status.code(), Some(143), "the service ended by the stop signal: {}", text(&o));
}

// A service without a pid namespace that forks a daemon off (setsid, its
// parent gone: init, the subreaper, adopts it) ends with a `capexec exec`
// that is SIGKILLed. Rootless, init ends it: its parent-death signal is
// one it waits for, and it kills its children until none is left (before,
// the daemon lived on, adopted by the host's init). As root the cgroup's
// watcher kills them too.
both!(a_forked_off_daemon_without_a_pid_namespace_ends_with_a_killed_capexec_exec, |who: As| {
    let (daemon_arg, program_arg) = match who {
        As::Root => ("100403", "100404"),
        As::User => ("100413", "100414"),
    };
    let u = test_unit(
        &format!("forked-off-{who:?}"),
        &format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", \"(setsid sh -c 'exec /bin/sleep {daemon_arg}' &) ; exec /bin/sleep {program_arg}\"]\n{}\
             [namespaces]\npid = false\n[filesystem]\nproc = \"none\"\n",
            if who == As::Root { "user = \"root\"\n" } else { "" }
        ),
    );
    let mut c = command(who);
    c.args(["exec", u.to_str().unwrap()]);
    let mut child = c.spawn().unwrap();
    let (daemon, program) = sleeps_started(daemon_arg, program_arg);
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{daemon}")).exists() || std::path::Path::new(&format!("/proc/{program}")).exists() {
        assert!(start.elapsed() < T, "the service outlived capexec exec: daemon {daemon} alive {}", std::path::Path::new(&format!("/proc/{daemon}")).exists());
        std::thread::sleep(Duration::from_millis(20));
    }
});

// Without a pid namespace and rootless (no cgroup), init killed all the
// same (the service's commands share its domain and could; here the test
// does it): what init had adopted comes to `capexec exec`, its next
// subreaper, which ends it before it exits. Before, the daemon the service
// forked off lived on under the host's init.
#[test]
fn a_killed_init_leaves_nothing_under_a_rootless_capexec_exec() {
    killed_init_leaves_nothing("init-killed", "", ("100416", "100417"));
}

// The same with a broker: then `capexec exec` is the service's broker,
// confined before the service runs (its filter lets it signal no one but
// init), and still ends what init adopted: it may SIGKILL the processes of
// its own Landlock domain, which holds only the service's (signals are
// scoped). Before, the daemon lived on under the host's init.
#[test]
fn a_killed_init_leaves_nothing_under_a_rootless_brokered_capexec_exec() {
    killed_init_leaves_nothing("init-killed-brokered", "[broker]\nsysctl = [\"kernel.ostype\"]\n", ("100418", "100419"));
}

/// The pids of the service's `sleep DAEMON_ARG` and `sleep PROGRAM_ARG`,
/// once both run.
fn sleeps_started(daemon_arg: &str, program_arg: &str) -> (i32, i32) {
    let start = Instant::now();
    loop {
        if let (Some(d), Some(p)) = (pids_exact(&format!("/bin/sleep {daemon_arg}")).first(), pids_exact(&format!("/bin/sleep {program_arg}")).first()) {
            return (*d, *p);
        }
        assert!(start.elapsed() < T, "the service did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn killed_init_leaves_nothing(name: &str, extra: &str, (daemon_arg, program_arg): (&str, &str)) {
    require_root();
    let u = test_unit(
        name,
        &format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", \"(setsid sh -c 'exec /bin/sleep {daemon_arg}' &) ; exec /bin/sleep {program_arg}\"]\n\
             [namespaces]\npid = false\n[filesystem]\nproc = \"none\"\n{extra}"
        ),
    );
    let mut c = command(As::User);
    c.args(["exec", u.to_str().unwrap()]);
    c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let (daemon, program) = sleeps_started(daemon_arg, program_arg);
    // The program's parent is init; the daemon was adopted by it.
    let ppid = |pid: i32| -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(") ").unwrap().1.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let init = ppid(program);
    assert_eq!(ppid(daemon), init, "init adopts what the service forks off");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), nix::sys::signal::Signal::SIGKILL).unwrap();
    let o = wait_output(child, T);
    // Whatever outlived capexec is the test's to end, after it looked.
    let outlived: Vec<i32> = [daemon, program].into_iter().filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists()).collect();
    for p in &outlived {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::Signal::SIGKILL);
    }
    assert_eq!(o.status.code(), Some(137), "init's end: {}", text(&o));
    assert_eq!(outlived, Vec::<i32>::new(), "outlived capexec exec (daemon {daemon}, program {program}): {}", text(&o));
}

// Without a pid namespace, the service cannot kill its own init (which
// would leave what it forked unsupervised: nothing else ends it rootless):
// a Landlock layer of the program's own scopes its signals below init's
// domain. And what it leaves when its program ends goes with init, as
// with a pid namespace. Before, the kill succeeded and the daemon lived on.
both!(a_service_without_a_pid_namespace_can_neither_kill_its_init_nor_leave_a_daemon, |who: As| {
    let daemon_arg = match who {
        As::Root => "100405",
        As::User => "100415",
    };
    let u = test_unit(
        &format!("kills-init-{who:?}"),
        &format!(
            "[exec]\nargv = [\"/bin/sh\", \"-c\", \"(setsid sh -c 'exec /bin/sleep {daemon_arg}' &) ; kill -9 $PPID && echo init-killed; mkdir /tmp/a /tmp/b && touch /tmp/a/f && ln /tmp/a/f /tmp/b/f && echo linked; exit 3\"]\n{}\
             [namespaces]\npid = false\n[filesystem]\nproc = \"none\"\n",
            if who == As::Root { "user = \"root\"\n" } else { "" }
        ),
    );
    let mut c = command(who);
    c.args(["exec", u.to_str().unwrap()]);
    let o = output(c, T);
    assert_eq!(o.status.code(), Some(3), "the program's own status, init alive: {}", text(&o));
    assert!(!text(&o).contains("init-killed"), "{}", text(&o));
    assert!(text(&o).contains("kill: Operation not permitted"), "{}", text(&o));
    // The program's own Landlock layer does not refuse a link or a move
    // between directories (a layer that does not handle them would).
    assert!(text(&o).contains("linked"), "{}", text(&o));
    // capexec exec ended after init, which ended the daemon first.
    assert_eq!(pids_exact(&format!("/bin/sleep {daemon_arg}")), Vec::<i32>::new(), "the daemon outlived the service");
});

/// filesystem.directories_user: a service running as root gets its runtime
/// directory owned by the user it drops to (chrony, systemd's `!`).
#[test]
fn managed_directories_can_belong_to_the_user_a_root_daemon_drops_to() {
    let name = format!("capexec-it-owner-{}", std::process::id());
    let u = test_unit(
        "dir-owner",
        &format!("[exec]\nargv = [\"/bin/sh\", \"-c\", \"id -u; stat -c %U /run/{name}\"]\nuser = \"root\"\n[filesystem]\nruntime_directory = [\"{name}\"]\ndirectories_user = \"{TEST_USER}\"\n"),
    );
    let mut c = command(As::Root);
    c.args(["exec", u.to_str().unwrap()]);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().collect::<Vec<_>>(), ["0", TEST_USER], "{}", text(&o));
}

// What a service sends to /dev/log (syslog(3); here util-linux's logger)
// lands in its log, as journald takes it under systemd: for a plain and a
// brokered service (their launches differ), an error's line on the side of
// stderr. /dev/log leads to capexec's socket, in a read-only directory of
// the view: the service cannot replace it (nor reach the host's syslog),
// even as root with CAP_DAC_OVERRIDE: Landlock (the directory is read-only
// in the service's layer) and the read-only mount each refuse the unlink;
// with both made writable the test fails (tried).
#[test]
fn syslog_lines_land_in_the_services_log() {
    let mut d = Daemon::prepare(As::Root, "syslog");
    let script = "logger -t talker -p daemon.err 'err via syslog'; logger -t talker 'info via syslog'; \
                  rm -f /.capexec/log 2>/dev/null || echo socket-kept; exec sleep 100902";
    // As root with CAP_DAC_OVERRIDE: only the directory's read-only mount keeps the socket.
    d.write_unit("talker", &sh_unit(script, "user = \"root\"\n[capabilities]\nkeep = [\"CAP_DAC_OVERRIDE\"]\n"));
    d.write_unit("brokered", &sh_unit(script, "[namespaces]\nnet = \"none\"\n[broker]\nsysctl = [\"kernel.ostype\"]\n"));
    d.start();
    for unit in ["talker", "brokered"] {
        ok(&d.ctl(&["start", unit]));
        let deadline = Instant::now() + T;
        let mut logs = String::new();
        while !(logs.contains("info via syslog") && logs.contains("socket-kept")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            logs = text(&d.ctl(&["logs", unit]));
        }
        let line = |needle: &str| logs.lines().find(|l| l.contains(needle)).unwrap_or_default().to_owned();
        assert!(line("err via syslog").contains("err: talker"), "{unit}: the error's line, on stderr's side:\n{logs}");
        let info = line("info via syslog");
        assert!(info.contains("talker") && !info.contains("err: "), "{unit}:\n{logs}");
        assert!(logs.contains("socket-kept"), "{unit}: the service replaced its /dev/log:\n{logs}");
        ok(&d.ctl(&["stop", unit]));
    }
    d.terminate(T);
}

// A syslog line names its sender by the pid the host knows it by, as
// journald's do: syslog(3) writes `TAG[PID]` with its own pid namespace's pid
// (gpsd's lines said `gpsd[3]`, a pid of nothing on the host).
#[test]
fn syslog_lines_name_the_sender_by_its_host_pid() {
    let mut d = Daemon::prepare(As::Root, "syslog-pid");
    let prog = "import syslog, time\nsyslog.openlog('talker', syslog.LOG_PID)\nsyslog.syslog('pid via syslog')\ntime.sleep(100903)";
    d.write_unit("talker", &format!("[exec]\nargv = [\"/usr/bin/python3\", \"-c\", {prog:?}]\n"));
    d.start();
    ok(&d.ctl(&["start", "talker"]));
    let logs = d.wait_log("talker", "pid via syslog", T);
    let main = pid_of(&d.status("talker"));
    let line = logs.lines().find(|l| l.contains("pid via syslog")).unwrap_or_default();
    assert!(line.contains(&format!("talker[{main}]: pid via syslog")), "the main pid is {main}:\n{logs}");
    ok(&d.ctl(&["stop", "talker"]));
    d.terminate(T);
}

// ESCAPE: descriptors sent along with syslog datagrams (SCM_RIGHTS) never
// reach the daemon, which reads every service's /dev/log: received, 2,400
// of them would fill its descriptor table (every service's logs, control
// connections and launches stop). Its reader takes no control messages,
// so the kernel closes them; the daemon's table stays as it was.
#[test]
fn descriptors_sent_to_dev_log_do_not_reach_the_daemon() {
    let mut d = Daemon::prepare(As::Root, "syslog-fds");
    let prog = "import array, os, socket, time\n\
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                fd = os.open('/dev/null', os.O_RDONLY)\n\
                for i in range(300):\n\
                \x20   s.sendmsg([b'<13>fds: %d' % i], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [fd] * 8))], 0, '/dev/log')\n\
                time.sleep(600)\n";
    let argv = serde_json::to_string(&["/usr/bin/python3", "-c", prog]).unwrap();
    d.write_unit("fds", &format!("[exec]\nargv = {argv}\n"));
    d.start();
    let pid = d.child.as_ref().unwrap().id();
    let count = || std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let before = count();
    ok(&d.ctl(&["start", "fds"]));
    d.wait_log("fds", "fds: 299", T);
    let after = count();
    assert!(after < before + 50, "the daemon holds {after} descriptors, {before} before the service sent 2,400 along with its syslog lines");
    ok(&d.ctl(&["stop", "fds"]));
    d.terminate(T);
}
