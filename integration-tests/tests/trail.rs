//! The denial trail (issue 20): what the kernel refused a service, from its
//! own audit records (seccomp's, for the filter capexec installs with
//! SECCOMP_FILTER_FLAG_LOG, and Landlock's, logged after exec), attributed
//! to the service and shown with the fix that allows it; the fix, applied,
//! makes the program work.

use capexec_integration_tests::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn succeeds(o: &std::process::Output) {
    assert!(o.status.success(), "{}", text(o));
}

/// Saves the drop-in `capexec denials --propose` proposes for `unit`
/// (`changes` of them), reloads and starts the unit again.
fn apply_the_proposal(d: &Daemon, unit: &str, changes: u64) {
    let o = d.ctl(&["denials", "--propose", "--json", unit]);
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(p["changes"], changes, "{p}");
    let path = std::path::PathBuf::from(p["path"].as_str().unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, p["dropin"].as_str().unwrap()).unwrap();
    succeeds(&d.ctl(&["reload"]));
    succeeds(&d.ctl(&["start", unit]));
}

/// `unit`'s log once the second run wrote `marker` (or after T).
fn second_run(d: &Daemon, unit: &str, marker: &str) -> String {
    let deadline = std::time::Instant::now() + T;
    loop {
        let log = std::fs::read_to_string(d.dir.join(format!("logs/{unit}.log"))).unwrap();
        if log.matches(marker).count() >= 2 || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    // A JSON string is one: the same escapes for quotes, backslashes and newlines.
    serde_json::to_string(s).unwrap()
}

/// A program that makes one refused syscall (mincore, outside the default
/// allowlist) and one refused TCP connect (port 9, no connect grant under
/// `net = "host"`), prints what it got, and stays (the trail attributes a
/// refusal by the pid the kernel names). It also writes a broker's refusal
/// line to its stderr: no trail entry comes of what a service writes.
const PROGRAM: &str = "print STDERR \"capexec: refused: refused by broker: open(\\\"/etc/shadow\\\"): no grant; to allow it: add it\\n\"; my $r = syscall(27, 0, 0, 0); print \"mincore: $r $!\\n\"; use IO::Socket::INET; \
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:9'); print 'connect: ', ($s ? 'ok' : \"$!\"), \"\\n\"; STDOUT->flush; sleep 60;";

#[test]
fn refusals_are_reported_with_the_fix_that_allows_them() {
    require_root();
    let mut d = Daemon::prepare(As::Root, "trail");
    let unit = |extra: &str| {
        format!(
            "[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\nuser = \"nobody\"\n[namespaces]\nnet = \"host\"\n[service]\nrestart = \"no\"\n{extra}",
            toml_string(PROGRAM)
        )
    };
    d.write_unit("refused", &unit(""));
    d.start();
    let o = d.ctl(&["start", "refused"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = d.wait_for("refused", T, "two refusals in the trail", |s| s["denials"]["total"].as_u64() >= Some(2));
    let recent = s["denials"]["recent"].as_array().unwrap().clone();
    let entry = |mechanism: &str| recent.iter().find(|e| e["mechanism"] == mechanism).unwrap_or_else(|| panic!("no {mechanism} entry: {s:#}")).clone();
    let seccomp = entry("seccomp");
    assert!(seccomp["what"].as_str().unwrap().starts_with("syscall mincore (27)"), "{seccomp:#}");
    assert_eq!(seccomp["fix"], "add \"mincore\" to [seccomp] allow (capexec run: --allow-syscall mincore)");
    let landlock = entry("landlock");
    assert_eq!(landlock["what"], "TCP connect to 127.0.0.1:9");
    assert_eq!(landlock["fix"], "add 9 to [landlock] connect_tcp (capexec run: --connect-tcp 9)");
    // In the service's log, and in `capexec status`.
    let log = std::fs::read_to_string(d.dir.join("logs/refused.log")).unwrap();
    assert!(log.contains("refused by seccomp: syscall mincore (27)") && log.contains("refused by landlock: TCP connect to 127.0.0.1:9"), "{log}");
    let human = text(&d.ctl(&["status", "refused"]));
    assert!(human.contains("refused: 2 time(s)") && human.contains("--connect-tcp 9"), "{human}");
    // And on their own: `capexec denials UNIT [--json]`.
    let human = text(&d.ctl(&["denials", "refused"]));
    assert!(human.contains("refused: refused 2 time(s)") && human.contains("to allow it: add 9 to [landlock] connect_tcp"), "{human}");
    let o = d.ctl(&["denials", "--json", "refused"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!((v["unit"].as_str(), v["total"].as_u64(), v["recent"].as_array().map(Vec::len)), (Some("refused"), Some(2), Some(2)), "{v}");
    // Into `| head` that has ended: ended by SIGPIPE as other tools, not a
    // panic on the write.
    for args in [&["denials", "refused"][..], &["status", "refused"], &["logs", "refused"], &["list"]] {
        let o = d.ctl_into_closed_pipe(args);
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(libc::SIGPIPE), "capexec {args:?}: {}", text(&o));
        assert!(o.stderr.is_empty(), "capexec {args:?}: {}", text(&o));
    }
    let o = d.ctl(&["stop", "refused"]);
    assert!(o.status.success(), "{}", text(&o));

    // The fixes, applied as `capexec denials --propose` writes them: a
    // drop-in with the refused items added to the unit's lists.
    let human = text(&d.ctl(&["denials", "--propose", "refused"]));
    assert!(human.contains("allow = [\"@system-service\", \"mincore\"]") && human.contains("connect_tcp = [9]"), "{human}");
    apply_the_proposal(&d, "refused", 2);
    let log = second_run(&d, "refused", "connect: ");
    let second = &log[log.rfind("mincore: ").expect("a second run")..];
    assert!(second.starts_with("mincore: 0") && second.contains("connect: Connection refused"), "{log}");
    assert_eq!(d.status("refused")["denials"]["total"], 2, "nothing refused the second time");
    d.terminate(T);
}

/// The rootless looping program's first run, in `unit`'s log: each
/// refusal got the errno the filter gives it, as the kernel does as root
/// (an argument rule's is not EPERM), and the loop was told in a few lines.
/// Then the proposed fix applied: the second run's mincore works.
fn told_the_loop_then_fixed(d: &Daemon, unit: &str) -> String {
    let log = d.wait_log(unit, "looped", T);
    assert!(log.contains(&format!("sctp: {}\n", libc::EPROTONOSUPPORT)) && log.contains(&format!("mincore: -1 {}\n", libc::EPERM)), "{log}");
    let told = log.lines().filter(|l| l.contains("refused by seccomp: syscall mincore")).count();
    assert!((1..=3).contains(&told), "a loop is a line, not a line per call: {log}");
    succeeds(&d.ctl(&["stop", unit]));
    apply_the_proposal(d, unit, 1);
    let again = second_run(d, unit, "looped");
    let second = &again[again.rfind("mincore: ").expect("a second run")..];
    assert!(second.starts_with("mincore: 0 "), "{again}");
    log
}

/// Rootless no audit log is readable: the daemon answers the refused calls
/// of a service itself (the launcher hands it the listener of the
/// service's filter) and tells its trail, each with its fix. The program
/// gets the errno it would get as root; a loop on a refused call is counted
/// call by call, in few lines; the fix, applied as `denials --propose`
/// writes it, makes the call work and nothing is refused.
#[test]
fn a_rootless_daemon_tells_what_its_service_was_refused() {
    let mut d = Daemon::prepare(As::User, "trail-user");
    const LOOP: u64 = 5000;
    let program = format!(
        "$| = 1; socket(my $s, 2, 1, 132) or print \"sctp: \", $!+0, \"\\n\"; my $r = syscall(27, 0, 0, 0); print \"mincore: $r \", $!+0, \"\\n\"; \
         syscall(27, 0, 0, 0) for 1..{LOOP}; print \"looped\\n\"; sleep 60;"
    );
    d.write_unit("refused", &format!("[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n[service]\nrestart = \"no\"\n", toml_string(&program)));
    // Without a /dev, no /dev/log: the listener is the launcher's only fd
    // after the pidfds (it was taken for the syslog socket's and dropped).
    // (perl -e wants /dev/null; python does not.)
    let once = "import ctypes, time\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall(27, 0, 0, 0)\nprint('mincore:', r, ctypes.get_errno(), flush=True)\ntime.sleep(60)\n";
    d.write_unit("no-dev", &format!("[exec]\nargv = [\"/usr/bin/python3\", \"-c\", {}]\n[filesystem]\ndev = \"none\"\n", toml_string(once)));
    d.start();
    succeeds(&d.ctl(&["start", "no-dev"]));
    let s = d.wait_for("no-dev", T, "its refusal", |s| s["denials"]["total"].as_u64() == Some(1));
    assert!(s["denials"]["recent"][0]["what"].as_str().unwrap().starts_with("syscall mincore (27) by python3"), "{s:#}");
    let log = d.wait_log("no-dev", "mincore: ", T);
    assert!(log.contains(&format!("mincore: -1 {}\n", libc::EPERM)), "{log}");
    succeeds(&d.ctl(&["stop", "no-dev"]));
    succeeds(&d.ctl(&["start", "refused"]));
    let s = d.wait_for("refused", T, "the refusals and the loop's, all counted", |s| s["denials"]["total"].as_u64() == Some(2 + LOOP));
    let recent = s["denials"]["recent"].as_array().unwrap().clone();
    assert_eq!(recent.len(), 2, "the socket, then mincore repeated: {s:#}");
    assert!(recent[0]["what"].as_str().unwrap().starts_with("syscall socket (41) by perl"), "{s:#}");
    assert!(recent[0]["fix"].as_str().unwrap().starts_with("nothing: capexec refuses this use of socket"), "{s:#}");
    assert!(recent[1]["what"].as_str().unwrap().starts_with("syscall mincore (27) by perl"), "{s:#}");
    assert_eq!(recent[1]["fix"], "add \"mincore\" to [seccomp] allow (capexec run: --allow-syscall mincore)");
    assert_eq!(recent[1]["count"], 1 + LOOP);
    told_the_loop_then_fixed(&d, "refused");
    // The socket alone refused the second time (told once answered: wait).
    let s = d.wait_for("refused", T, "the second run's refusal", |s| s["denials"]["total"].as_u64() >= Some(3 + LOOP));
    assert_eq!(s["denials"]["total"], 3 + LOOP, "{s:#}");
    d.terminate(T);
}

/// A brokered service's too: the kernel allows one listener in a filter
/// chain, and the broker's is there, so one program does both filters'
/// work and the broker answers the refusals (with the errno the service's
/// filter gives them) beside its own calls, and tells them on the pipe its
/// own refusals take, counted the same way.
#[test]
fn a_rootless_daemon_tells_what_its_brokered_service_was_refused() {
    let mut d = Daemon::prepare(As::User, "trail-user-brokered");
    let g = grant_tree("trail-user-brokered");
    const LOOP: u64 = 3000;
    let program = format!(
        "$| = 1; open(my $f, '<', '{0}/data/readme') or die \"open: $!\"; print 'read: ', scalar(<$f>), \"\\n\"; \
         open(my $w, '>>', '{0}/data/readme') and die 'written'; print 'write: ', $!+0, \"\\n\"; \
         socket(my $s, 2, 1, 132) or print \"sctp: \", $!+0, \"\\n\"; my $r = syscall(27, 0, 0, 0); print \"mincore: $r \", $!+0, \"\\n\"; \
         syscall(27, 0, 0, 0) for 1..{LOOP}; print \"looped\\n\"; sleep 60;",
        g.display()
    );
    let grant = format!("[[broker.fs]]\npath = \"{}/data/**\"\nrights = [\"read\"]\n", g.display());
    d.write_unit("refused", &format!("[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n[service]\nrestart = \"no\"\n{grant}", toml_string(&program)));
    d.start();
    succeeds(&d.ctl(&["start", "refused"]));
    let s = d.wait_for("refused", T, "the refusals and the loop's, all counted", |s| s["denials"]["total"].as_u64() == Some(3 + LOOP));
    let recent = s["denials"]["recent"].as_array().unwrap().clone();
    assert_eq!(recent.len(), 3, "the broker's, the socket, then mincore repeated: {s:#}");
    assert_eq!(recent[0]["mechanism"], "broker", "{s:#}");
    assert!(recent[0]["what"].as_str().unwrap().starts_with(&format!("openat(\"{}/data/readme\", O_WRONLY|O_CREAT|O_APPEND)", g.display())), "{s:#}");
    assert!(recent[1]["what"].as_str().unwrap().starts_with("syscall socket (41) by perl"), "{s:#}");
    assert!(recent[2]["what"].as_str().unwrap().starts_with("syscall mincore (27) by perl"), "{s:#}");
    assert_eq!(recent[2]["fix"], "add \"mincore\" to [seccomp] allow (capexec run: --allow-syscall mincore)");
    assert_eq!(
        (recent[1]["mechanism"].as_str(), recent[2]["mechanism"].as_str(), recent[2]["count"].as_u64()),
        (Some("seccomp"), Some("seccomp"), Some(1 + LOOP))
    );
    let log = told_the_loop_then_fixed(&d, "refused");
    // The granted read went through the broker, and its refusal did not.
    assert!(log.contains("read: granted\n") && log.contains(&format!("write: {}\n", libc::EACCES)), "{log}");
    d.terminate(T);
}

/// `capexec run` after a failing exit prints what was refused, each with
/// the flag that allows it; with those flags the program gets what it asked
/// for and nothing is printed; a program that succeeds gets no summary.
#[test]
fn a_failing_run_says_what_was_refused_and_which_flags_allow_it() {
    require_root();
    let prog = "my $r = syscall(27, 0, 0, 0); print \"mincore: $r $!\\n\"; use IO::Socket::INET; \
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:9'); print 'connect: ', ($s ? 'ok' : \"$!\"), \"\\n\"; exit 3;";
    let run = |flags: &[&str]| {
        let mut c = command(As::Root);
        c.args(["run", "--net", "host"]).args(flags).args(["--", "/usr/bin/perl", "-e", prog]);
        output(c, T)
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("capexec run: the program was refused"), "{err}");
    assert!(err.contains("seccomp: syscall mincore (27) by perl; to allow it: --allow-syscall mincore"), "{err}");
    assert!(err.contains("landlock: TCP connect to 127.0.0.1:9; to allow it: --connect-tcp 9"), "{err}");
    // The flags, applied.
    let o = run(&["--allow-syscall", "mincore", "--connect-tcp", "9"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "mincore: 0 \nconnect: Connection refused\n", "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("the program was refused"), "{}", text(&o));
    // Refused, but successful: no summary.
    let mut c = command(As::Root);
    c.args(["run", "--", "/usr/bin/perl", "-e", "syscall(27, 0, 0, 0); exit 0"]);
    let o = output(c, T);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", text(&o));
    // Brokered, capexec confines itself as the broker, every thread of it:
    // the summary comes from a process of its own, forked once the program
    // runs, for a refusal made after the broker's first answer.
    let unit = test_unit("trail-brokered", "[[broker.fs]]\npath = \"/etc/**\"\nrights = [\"read\"]\n");
    let mut c = command(As::Root);
    c.args(["run", "--unit", unit.to_str().unwrap(), "--", "/usr/bin/perl", "-e"])
        .arg("$| = 1; open(my $f, '<', '/etc/hostname') or die \"open: $!\"; syscall(27, 0, 0, 0); print \"read\\n\"; <STDIN>; exit 3;");
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "read\n");
    for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert!(status.contains("Seccomp:\t2\n"), "a thread of the broker is not confined:\n{status}");
    }
    drop(child.stdin.take());
    let o = wait_output(child, T);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("seccomp: syscall mincore (27) by perl; to allow it: --allow-syscall mincore"), "{err}");
}

/// A brokered run whose main process capexec does not know when the spawn
/// returns (a forking service's, or a program that ended by then: a ping
/// refused at once, under load) still tells what was refused: its
/// refusals' reader was started only with a main process, and the run ended
/// without a word.
#[test]
fn a_brokered_run_without_a_main_process_tells_what_was_refused() {
    require_root();
    let unit = test_unit(
        "trail-forking-brokered",
        r#"[exec]
argv = ["/usr/bin/perl", "-e", "use IO::Socket::INET; my $s = IO::Socket::INET->new(Proto => 'udp', PeerAddr => '127.0.0.1:9'); print 'connect: ', ($s ? 'ok' : $!); exit 3;"]
[service]
type = "forking"
[namespaces]
net = "host"
[broker.net]
guard = true
[[broker.fs]]
path = "/etc/**"
rights = ["read"]
"#,
    );
    let mut c = command(As::Root);
    c.arg("exec").arg(&unit);
    let o = output(c, T);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused by bpf: connect to udp:127.0.0.1:9 on a host socket"), "{}", text(&o));
}

/// The kernel sends its audit records to the first network namespace's
/// multicast group only: capexec started in another (a container's
/// network, `ip netns exec`, a namespace of the test's own) heard none, said
/// nothing of what seccomp refused, and waited 5 s for its marker at the end.
/// A brokered run too, whose capexec opens its reader under the Landlock
/// layer it shares with the service: the way to the first network is
/// opened before.
#[test]
fn a_run_in_another_network_namespace_hears_the_audit_log() {
    require_root();
    let ns = NetNs::new(&format!("capexec-it-audit-{}", std::process::id()));
    let brokered = test_unit(
        "trail-netns-brokered",
        r#"[exec]
argv = ["/usr/bin/perl", "-e", "syscall(27, 0, 0, 0); exit 3"]
[[broker.fs]]
path = "/etc/**"
rights = ["read"]
"#,
    );
    let in_ns = |args: &[&std::ffi::OsStr]| {
        let _in = ns.enter_this_thread();
        let mut c = command(As::Root);
        c.args(args);
        output(c, T)
    };
    let o = in_ns(&["run", "--", "/usr/bin/perl", "-e", "syscall(27, 0, 0, 0); exit 3"].map(std::ffi::OsStr::new));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("seccomp: syscall mincore (27) by perl; to allow it: --allow-syscall mincore"), "{}", text(&o));
    let o = in_ns(&[std::ffi::OsStr::new("exec"), brokered.as_os_str()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused by seccomp: syscall mincore (27) by perl"), "{}", text(&o));
    // The reader's own start is nothing the service did.
    assert!(!err.contains("ptrace"), "{}", text(&o));
}

/// Rootless, where no audit log tells capexec anything, a failing `capexec
/// run` still says which calls were refused, each with its flag: the
/// refused calls come to capexec (their filter hands them to a listener
/// capexec holds), which answers each with the errno the filter would have
/// given: the program sees what it sees as root, where the kernel answers
/// them itself. The listener never reaches the program (with it, the
/// program could let its own calls through). Files and ports are not
/// reported rootless: a person is pointed at --explain for them.
#[test]
fn a_failing_rootless_run_says_which_calls_were_refused() {
    let prog = "$| = 1; my $r = syscall(27, 0, 0, 0); print \"mincore: $r $!\\n\"; \
        socket(my $s, 2, 1, 132) or print \"sctp: $!\\n\"; \
        opendir(my $d, '/proc/self/fd') or die; for (readdir $d) { my $l = readlink(\"/proc/self/fd/$_\") // ''; print \"listener: fd $_\\n\" if $l =~ /seccomp/ } \
        exit 3;";
    let run = |who: As, flags: &[&str]| {
        let mut c = command(who);
        c.arg("run").args(flags).args(["--", "/usr/bin/perl", "-e", prog]);
        output(c, T)
    };
    let o = run(As::User, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // An argument rule's errno (SCTP: as if the kernel had none).
    assert!(out.starts_with("mincore: -1 Operation not permitted\nsctp: Protocol not supported\n"), "{}", text(&o));
    assert!(!out.contains("listener"), "the program holds the listener: {}", text(&o));
    // The same answers as the kernel gives as root, argument rules too.
    let root = run(As::Root, &[]);
    assert_eq!(String::from_utf8_lossy(&root.stdout), out, "root: {}", text(&root));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("capexec run: the program was refused:"), "{err}");
    assert!(err.contains("seccomp: syscall mincore (27) by perl; to allow it: --allow-syscall mincore"), "{err}");
    assert!(err.contains("seccomp: syscall socket (41) by perl; to allow it: nothing: capexec refuses this use of socket"), "{err}");
    // The flag, applied: the call runs and is not reported.
    let o = run(As::User, &["--allow-syscall", "mincore"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("mincore: 0 \nsctp: "), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("mincore"), "{}", text(&o));
    // Refused a thousand times, told once; refused but successful: nothing said.
    let mut c = command(As::User);
    c.args(["run", "--", "/usr/bin/perl", "-e", "syscall(27, 0, 0, 0) for 1..1000; exit 4"]);
    let o = output(c, T);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr).matches("seccomp: syscall mincore").count(), 1, "{}", text(&o));
    let mut c = command(As::User);
    c.args(["run", "--", "/usr/bin/perl", "-e", "syscall(27, 0, 0, 0); exit 0"]);
    let o = output(c, T);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", text(&o));
}

/// `capexec exec UNIT` as root, its standard input and output piped, its
/// standard error read line by line by a thread into the receiver (the test
/// waits for a line with a deadline).
struct Exec {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    err: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

fn exec_piped(who: As, unit: &std::path::Path) -> Exec {
    let mut c = command(who);
    c.args(["exec", unit.to_str().unwrap()]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, err) = std::sync::mpsc::channel();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for l in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    Exec { child, out, err, reader }
}

/// `capexec exec` (systemd's `ExecStart=`) writes what the kernel refuses
/// the service to its standard error as it happens, the journal being the
/// service's log: a refusal is told while the service still runs (it waits
/// on its standard input after it), and a loop of the same one is not told
/// again: at the end, how many more times it came. Brokered too,
/// where capexec confines itself as the broker and a process of its own
/// reads the audit log. Rootless, where there is no audit log to read, the
/// refused calls come to capexec itself (its test fails without them), to
/// its broker where it brokers (whose listener is the one the kernel allows).
#[test]
fn capexec_exec_tells_refusals_as_they_happen() {
    require_root();
    let prog = "$| = 1; syscall(27, 0, 0, 0); print \"once\\n\"; my $l = <STDIN>; syscall(27, 0, 0, 0) for 1..40; print \"looped\\n\"; exit 3;";
    let brokered = "[[broker.fs]]\npath = \"/etc/**\"\nrights = [\"read\"]\n";
    let cases = [
        ("exec-trail", "", As::Root),
        ("exec-trail-brokered", brokered, As::Root),
        ("exec-trail-rootless", "", As::User),
        ("exec-trail-rootless-brokered", brokered, As::User),
    ];
    for (tag, extra, who) in cases {
        let nobody = if who == As::Root { "user = \"nobody\"\n" } else { "" };
        let unit = test_unit(tag, &format!("[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n{nobody}{extra}", toml_string(prog)));
        let Exec { mut child, mut out, err: rx, reader } = exec_piped(who, &unit);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line, "once\n", "{tag}");
        let want = format!("capexec: {tag}: refused by seccomp: syscall mincore (27) by perl; to allow it: add \"mincore\" to [seccomp] allow (capexec run: --allow-syscall mincore)");
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + T;
        while !seen.contains(&want) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("{tag}: no refusal told while the service runs: {seen:#?}"),
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "{tag}: the service runs on");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
        line.clear();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line, "looped\n", "{tag}");
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(3), "{tag}");
        reader.join().unwrap();
        seen.extend(rx.try_iter());
        let told = seen.iter().filter(|l| **l == want).count();
        assert_eq!(told, 1, "{tag}: 41 refusals, the same one: {seen:#?}");
        assert!(seen.contains(&format!("capexec: {tag}: (the last refusal shown came 40 more times)")), "{tag}: {seen:#?}");
    }
}

/// `capexec exec` tells its own service's refusals only: not those of
/// another sandbox running beside it (here one sharing the host's pids, its
/// mincore refused), whose records the audit log carries too. Neither when
/// the service shares the host's pids (every host process was the run's
/// then, by its pid namespace), nor brokered, where the reader runs under
/// the broker's Landlock layer: it looked the other process up in
/// /proc/PID/ns/pid, Landlock refused it that ptrace check, and logged it
/// in the broker's domain, which is the service's: told as a refusal of the
/// service ("refused by landlock: ptrace (opid=... ocomm=\"perl\")").
#[test]
fn capexec_exec_tells_only_its_own_services_refusals() {
    require_root();
    let waits = "$| = 1; print \"ready\\n\"; my $l = <STDIN>; exit 0;";
    let other = test_unit(
        "exec-trail-other",
        &format!(
            "[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n[namespaces]\npid = false\n[service]\npid_file = \"/run/capexec-it-other.pid\"\n",
            toml_string(&format!("syscall(27, 0, 0, 0); {waits}"))
        ),
    );
    let cases = [
        ("exec-trail-host-pids", "[namespaces]\npid = false\n[service]\npid_file = \"/run/capexec-it-host-pids.pid\"\n"),
        ("exec-trail-own-brokered", "[[broker.fs]]\npath = \"/etc/**\"\nrights = [\"read\"]\n"),
    ];
    for (tag, extra) in cases {
        let unit = test_unit(tag, &format!("[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n{extra}", toml_string(waits)));
        let Exec { mut child, mut out, err: rx, reader } = exec_piped(As::Root, &unit);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line, "ready\n", "{tag}");
        // The other sandbox is refused its call, and lives on until the end.
        let Exec { child: mut other_child, out: mut other_out, err: other_rx, reader: other_reader } = exec_piped(As::Root, &other);
        line.clear();
        std::io::BufRead::read_line(&mut other_out, &mut line).unwrap();
        assert_eq!(line, "ready\n", "{tag}");
        let told = "capexec: exec-trail-other: refused by seccomp: syscall mincore (27) by perl";
        let deadline = std::time::Instant::now() + T;
        let mut theirs = Vec::new();
        while !theirs.iter().any(|l: &String| l.starts_with(told)) {
            match other_rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(l) => theirs.push(l),
                Err(_) => panic!("{tag}: the other sandbox's refusal was not told where it belongs: {theirs:#?}"),
            }
        }
        // The run's end reads the log up to a marker written then: every
        // record of the other's, and of this reader's own doing, is read.
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
        assert!(child.wait().unwrap().success(), "{tag}");
        reader.join().unwrap();
        let seen: Vec<String> = rx.try_iter().collect();
        assert!(!seen.iter().any(|l| l.contains("refused")), "{tag}: told another's refusal, or its own lookups: {seen:#?}");
        std::io::Write::write_all(other_child.stdin.as_mut().unwrap(), b"go\n").unwrap();
        assert!(other_child.wait().unwrap().success(), "{tag}");
        other_reader.join().unwrap();
    }
}

/// Under `capexec exec` the broker's and the network guard's refusals are
/// told with the kernel's: in the same words, and under one budget (20
/// lines per 10 s for all of them, not 20 for each). A `net = "none"`
/// service with a preopened UDP socket sends datagrams to ports no grant
/// names, each another (the guard refuses them); brokered, it also opens
/// granted files for writing, each another (the broker refuses them). Without a broker capexec reads the guard in its
/// wait; with one, a process of its own reads both.
#[test]
fn capexec_exec_tells_the_brokers_and_the_guards_refusals() {
    require_root();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = peer.local_addr().unwrap().port();
    let d = grant_tree("exec-trail");
    for (tag, opens, sends) in [("exec-guard", 0, 25), ("exec-broker-guard", 15, 15)] {
        let prog = format!(
            "use Socket; $| = 1; open(my $s, '+<&=', 3) or die \"fd 3: $!\"; \
             for (1..{opens}) {{ open(my $f, '>', \"{data}/written$_\") and die 'opened'; }} \
             for (0..{sends}-1) {{ defined(send($s, 'ping', 0, pack_sockaddr_in({to} + $_, inet_aton('127.0.0.1')))) and die 'sent'; }} \
             print \"refused\\n\"; my $l = <STDIN>; exit 0;",
            data = d.join("data").display()
        );
        let broker = match opens {
            0 => String::new(),
            _ => format!("\n[[broker.fs]]\npath = \"{}/data/**\"\nrights = [\"read\"]\n", d.display()),
        };
        let unit = test_unit(
            tag,
            &format!(
                "[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\nuser = \"nobody\"\n[namespaces]\nnet = \"none\"\n\n[[preopen.listen]]\naddress = \"udp:127.0.0.1:{}\"\n{broker}",
                toml_string(&prog),
                unused_port()
            ),
        );
        let Exec { mut child, mut out, err: rx, reader } = exec_piped(As::Root, &unit);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line, "refused\n", "{tag}: {:#?}", rx.try_iter().collect::<Vec<_>>());
        // Told while the service runs on.
        let guard = format!(
            "capexec: {tag}: refused by bpf: datagram to udp:127.0.0.1:{to} on a host socket; to allow it: add \"udp:127.0.0.1:{to}\" to broker.net.connect"
        );
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + T;
        while !seen.contains(&guard) {
            match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("{tag}: no guard refusal told while the service runs: {seen:#?}"),
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "{tag}: the service runs on");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0), "{tag}: {seen:#?}");
        reader.join().unwrap();
        seen.extend(rx.try_iter());
        let by = |m: &str| seen.iter().filter(|l| l.starts_with(&format!("capexec: {tag}: refused by {m}: "))).count();
        let broker_line = format!("capexec: {tag}: refused by broker: openat(\"{}/data/written", d.display());
        assert_eq!(seen.iter().filter(|l| l.starts_with(&broker_line)).count(), by("broker"), "{tag}: {seen:#?}");
        assert!(opens == 0 || by("broker") > 0, "{tag}: the broker's refusals are told: {seen:#?}");
        assert_eq!(by("broker") + by("bpf"), 20, "{tag}: {} refusals, 20 lines for all: {seen:#?}", opens + sends);
        let rest = format!("capexec: {tag}: ({} more refusals were not shown)", opens + sends - 20);
        assert!(seen.contains(&rest), "{tag}: {seen:#?}");
    }
}

/// The network guard (cgroup BPF) reports what it refused a service's host
/// socket into the trail: a datagram from a preopened UDP socket of a `net =
/// "none"` service to an address no grant names. The fix, applied, lets the
/// datagram through.
#[test]
fn the_network_guard_reports_what_it_refused() {
    require_root();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let to = peer.local_addr().unwrap().port();
    let prog = format!(
        "use Socket; open(my $s, '+<&=', 3) or die \"fd 3: $!\"; my $r = send($s, 'ping', 0, pack_sockaddr_in({to}, inet_aton('127.0.0.1'))); \
         print 'send: ', (defined $r ? 'ok' : \"$!\"), \"\\n\"; STDOUT->flush; sleep 60;"
    );
    let mut d = Daemon::prepare(As::Root, "trail-bpf");
    let unit = |extra: &str| {
        format!(
            "[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n[namespaces]\nnet = \"none\"\n[service]\nrestart = \"no\"\n\n[[preopen.listen]]\naddress = \"udp:127.0.0.1:{}\"\n{extra}",
            toml_string(&prog),
            unused_port()
        )
    };
    d.write_unit("guarded", &unit(""));
    d.start();
    let o = d.ctl(&["start", "guarded"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = d.wait_log("guarded", "send: ", T);
    assert!(log.contains("send: Operation not permitted"), "{log}");
    let s = d.wait_for("guarded", T, "the guard's refusal in the trail", |s| s["denials"]["total"].as_u64() >= Some(1));
    let grant = format!("udp:127.0.0.1:{to}");
    let entry = s["denials"]["recent"].as_array().unwrap().iter().find(|e| e["mechanism"] == "bpf").unwrap_or_else(|| panic!("{s:#}")).clone();
    assert_eq!(entry["what"], format!("datagram to {grant} on a host socket"), "{s:#}");
    assert_eq!(entry["fix"], format!("add \"{grant}\" to broker.net.connect"), "{s:#}");
    let log = d.wait_log("guarded", "refused by bpf: ", T);
    assert!(log.contains(&format!("to allow it: add \"{grant}\" to broker.net.connect")), "{log}");
    assert!(d.ctl(&["stop", "guarded"]).status.success());

    // The fix, applied: the datagram arrives, and nothing is refused.
    d.write_unit("guarded", &unit(&format!("\n[broker.net]\nconnect = [\"{grant}\"]\n")));
    assert!(d.ctl(&["reload"]).status.success());
    let o = d.ctl(&["start", "guarded"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut buf = [0u8; 16];
    let n = peer.recv(&mut buf).unwrap_or_else(|e| panic!("no datagram ({e}): {}", d.wait_log("guarded", "send: ", T)));
    assert_eq!(&buf[..n], b"ping");
    let log = d.wait_log("guarded", "send: ok", T);
    assert_eq!(d.status("guarded")["denials"]["total"], 1, "nothing refused the second time: {log}");
    d.terminate(T);
}

/// `capexec run --explain` (issue 20), rootless too, where the kernel
/// reports nothing: the program runs recorded, nothing denied, and what the
/// options would have refused is printed with the flag for each; with
/// those flags the program gets what it asked for, and --explain finds
/// nothing more. `capexec exec --explain` names the declaration's keys.
#[test]
fn explain_says_what_the_options_would_refuse() {
    let prog = "my $r = syscall(27, 0, 0, 0); print \"mincore: $r\\n\"; use IO::Socket::INET; \
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:9'); print 'connect: ', ($s ? 'ok' : \"$!\"), \"\\n\"; \
        IO::Socket::INET->new(PeerAddr => '127.0.0.2:9'); \
        print 'read: ', (open(my $f, '<', '/var/lib/dpkg/status') ? 'ok' : \"$!\"), \"\\n\"; exit 3;";
    let fixes = ["--allow-syscall", "mincore", "--connect-tcp", "9", "--ro", "/var/lib/dpkg/status"];
    for who in [As::User, As::Root] {
        let run = |flags: &[&str]| {
            let mut c = command(who);
            c.args(["run", "--net", "host"]).args(flags).args(["--", "/usr/bin/perl", "-e", prog]);
            output(c, T)
        };
        let o = run(&["--explain"]);
        assert_eq!(o.status.code(), Some(3), "{who:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        for line in [
            "seccomp: mincore (1 of 1 calls): not in the allowlist; to allow it: --allow-syscall mincore",
            // One fix, one line.
            "network: tcp:127.0.0.1:9 (connect), also tcp:127.0.0.2:9: Landlock allows no TCP connect to port 9; to allow it: --connect-tcp 9",
            "files: /var/lib/dpkg/status (read): not in the view; to allow it: --ro /var/lib/dpkg/status",
        ] {
            assert!(err.contains(line), "{who:?}: no {line:?} in:\n{err}");
        }
        // Recorded, not confined: the program got everything.
        assert!(String::from_utf8_lossy(&o.stdout).contains("read: ok"), "{who:?}: {}", text(&o));
        // The flags, applied and enforced.
        let o = run(&fixes);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "mincore: 0\nconnect: Connection refused\nread: ok\n", "{who:?}: {}", text(&o));
        let o = run(&[&["--explain"][..], &fixes].concat());
        assert!(String::from_utf8_lossy(&o.stderr).contains("would have refused nothing it did"), "{who:?}: {}", text(&o));
    }
    // Rootless, a failing run points a person at --explain (on a terminal
    // only: a script reading stderr gets the program's own output).
    let failing = |tty: bool| {
        use std::os::unix::process::CommandExt;
        let line = format!("{} run -- /bin/sh -c 'exit 3'", capexec().display());
        let mut c = match tty {
            true => std::process::Command::new("script"),
            false => std::process::Command::new("/bin/sh"),
        };
        match tty {
            true => c.args(["-qec", &line, "/dev/null"]),
            false => c.args(["-c", &line]),
        };
        let (uid, gid) = test_user();
        c.uid(uid).gid(gid).env("HOME", "/").current_dir("/");
        output(c, T)
    };
    let o = failing(true);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("the program failed (status 3); to see what the sandbox refused it, run it again with --explain"), "{}", text(&o));
    let o = failing(false);
    assert!(o.status.code() == Some(3) && o.stderr.is_empty(), "{}", text(&o));

    // exec: the declaration's keys.
    let dir = shared_dir().join(format!("explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("explained.svc");
    std::fs::write(&unit, format!("[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}]\n[namespaces]\nnet = \"host\"\n", toml_string(prog))).unwrap();
    let mut c = command(As::User);
    c.arg("exec").arg("--explain").arg(&unit);
    let o = output(c, T);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(err.contains("to allow it: add \"mincore\" to [seccomp] allow (capexec run: --allow-syscall mincore)"), "{err}");
    assert!(err.contains("to allow it: add \"/var/lib/dpkg/status\" to [filesystem] read_only"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rename between two directories of a writable path works in a service
/// with a broker: the Landlock layer it shares with its broker allows moves
/// beneath the view's writable directories, which a builder outside that
/// layer mounted (capexec_sandbox::view_builder; before, every move there
/// failed with EXDEV). `capexec run --net host` (brokered for its listens),
/// as root and rootless, and under the daemon a service with a `[broker]`
/// grant, whose trail stays empty. (The layer allows no more than the
/// service's own: a move beneath its writable directories, and a move
/// between two mounts is EXDEV whatever Landlock says.)
#[test]
fn a_move_between_directories_works_under_a_broker() {
    require_root();
    let dir = std::path::PathBuf::from(format!("/var/tmp/capexec-it{}-moves", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let d = dir.to_str().unwrap();
    // umask 0: each run (a dynamic uid as root, the test user rootless) makes its files in the others' directories.
    let prog = "umask 0; my $d = shift; mkdir \"$d/a\"; mkdir \"$d/b\"; open(my $f, '>', \"$d/a/x\") or die \"create: $!\"; close $f; \
        if (rename(\"$d/a/x\", \"$d/b/x\")) { print \"moved\\n\"; unlink \"$d/b/x\"; exit 0 } print \"rename: $!\\n\"; unlink \"$d/a/x\"; STDOUT->flush; exit 3;";
    let run = |who: As| {
        let mut c = command(who);
        c.args(["run", "--net", "host", "--rw", d, "--", "/usr/bin/perl", "-e", prog, d]);
        output(c, T)
    };
    for who in [As::Root, As::User] {
        let o = run(who);
        assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(0), "moved\n"), "{who:?}: {}", text(&o));
    }

    let mut daemon = Daemon::prepare(As::Root, "moves");
    daemon.write_unit(
        "moves",
        &format!(
            "[exec]\nargv = [\"/usr/bin/perl\", \"-e\", {}, {}]\nuser = \"nobody\"\n[filesystem]\nread_write = [{}]\n[[broker.fs]]\npath = \"/etc/hostname\"\nrights = [\"read\"]\n[service]\nrestart = \"no\"\n",
            toml_string(prog),
            toml_string(d),
            toml_string(d)
        ),
    );
    daemon.start();
    let o = daemon.ctl(&["start", "moves"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = daemon.wait_for("moves", T, "the service's end", |s| s["last_exit"]["code"].as_i64().is_some());
    assert_eq!((s["last_exit"]["code"].as_i64(), s["denials"]["total"].as_u64()), (Some(0), Some(0)), "the move under the daemon's broker: {s:#}");
    assert!(daemon.wait_log("moves", "moved", T).contains("moved"));
    daemon.terminate(T);
    let _ = std::fs::remove_dir_all(&dir);
}
