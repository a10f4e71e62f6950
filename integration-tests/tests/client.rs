//! The broker's explicit protocol (issue 4): capexec-client and its C library
//! used from inside the sandbox for every grant type, malformed frames and
//! foreign peers (ESCAPE-CASES 33, 34), and name lookups of unmodified
//! programs through the stub resolver and the generated passwd and group.

use capexec_integration_tests::*;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Child;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn client_probe() -> std::path::PathBuf {
    shared_dir().join("client-probe")
}

/// A Unix datagram socket standing in for the host's /dev/log.
fn syslog_socket(tag: &str) -> (std::os::unix::net::UnixDatagram, std::path::PathBuf) {
    let p = shared_dir().join(format!("syslog-{tag}.sock"));
    let _ = std::fs::remove_file(&p);
    let s = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
    set_mode(&p, 0o777);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (s, p)
}

fn grants_unit(tag: &str, d: &std::path::Path, host: u16, bind: u16) -> std::path::PathBuf {
    test_unit(
        tag,
        &format!(
            "[namespaces]\nnet = \"none\"\n\n[[broker.fs]]\npath = \"{0}/data/**\"\nrights = [\"read\"]\n\n\
             [[broker.fs]]\npath = \"{0}/out/*.log\"\nrights = [\"append\", \"create\"]\n\n\
             [broker.net]\nconnect = [\"tcp:127.0.0.1:{host}\"]\nbind = [\"tcp:127.0.0.1:{bind}\"]\n\n\
             [broker.dns]\nnames = [\"localhost\"]\n\n\
             [broker]\npwd = [\"daemon\"]\ngrp = [\"adm\"]\nsyslog = true\nsysctl = [\"kernel.ostype\"]\n",
            d.display()
        ),
    )
}

// Every grant type through capexec-client, refusals of what is not granted,
// and syslog lines that reach the host's socket with control characters removed.
both!(client_grants, |who: As| {
    let tag = format!("client-{who:?}");
    let d = grant_tree(&tag);
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let _ = s.write_all(b"hello from the host");
        }
    });
    let (ungranted, bind) = (unused_port(), unused_port());
    let u = grants_unit(&tag, &d, host, bind);
    let (log, log_path) = syslog_socket(&tag);
    let mut c = command(who);
    c.env("CAPEXEC_SYSLOG_SOCKET", &log_path).arg("run").arg("--unit").arg(&u).arg("--").arg(client_probe());
    c.args(["grants", d.to_str().unwrap(), &host.to_string(), &ungranted.to_string(), &bind.to_string()]);
    let o = output(c, T);
    let out = text(&o);
    assert!(!out.contains("ESCAPED") && out.contains("BLOCKED") && o.status.success(), "{out}");
    assert_eq!(std::fs::read_to_string(d.join("out/client.log")).unwrap(), "appended\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(d.join("out/setid.log")).unwrap().permissions());
    assert_eq!(mode & 0o6000, 0, "the broker created a file with setuid/setgid bits: {mode:o}");
    let mut buf = [0u8; 4096];
    let n = log.recv(&mut buf).expect("a syslog line arrives");
    let line = String::from_utf8_lossy(&buf[..n]);
    assert!(line.starts_with(&format!("<28>{tag}[")) && line.ends_with("]: hello from the client FORGED: second line"), "syslog line: {line:?}");
    for refusal in ["getpwnam(\"root\")", "add \"kernel.hostname\" to broker.sysctl", &format!("add \"tcp:127.0.0.1:{ungranted}\" to broker.net.connect")] {
        assert!(out.contains(refusal), "refusal `{refusal}` not logged:\n{out}");
    }
});

fn interactive(who: As, u: &std::path::Path, case: &str) -> (Child, ProbeOutput) {
    interactive_under(who, u, &client_probe(), &[case])
}

// 33: truncated, oversized, wrong-version and unknown frames, stray and
// too many SCM_RIGHTS, a flood of 20000 bad frames: each gets an error reply,
// a valid request afterwards is still answered, and the broker (the capexec
// process under `capexec run`) holds exactly as many fds after as before.
both!(malformed_frames, |who: As| {
    let u = test_unit(&format!("frames-{who:?}"), "[broker]\nsysctl = [\"kernel.ostype\"]\n");
    let (child, out) = interactive(who, &u, "frames");
    let all = broker_fds_unchanged(child, out, |broker| {
        // The broker under attack is itself confined (issue 4, item 2).
        let probe = descendant(broker, "client-probe").unwrap();
        let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(format!("/proc/{probe}")).unwrap());
        broker_confinement(broker as i32, Some(uid)).unwrap();
    });
    assert!(all.contains("it carried descriptors"), "{all}");
});

// 34: a process outside the service (this test, as root) takes the service's
// end of its broker connection (pidfd_getfd) and sends a request on it: the
// broker sees from SCM_CREDENTIALS that it is not the service's and refuses.
both!(foreign_peers, |who: As| {
    let u = test_unit(&format!("foreign-{who:?}"), "[broker]\nsysctl = [\"kernel.ostype\"]\n");
    let (mut child, mut out) = interactive(who, &u, "foreign");
    let mut seen = String::new();
    wait_line(&mut out, "READY", &mut seen);
    let probe = descendant(child.id(), "client-probe").expect("the probe's process");
    // SAFETY: pidfd_open and pidfd_getfd return new fds (or -1) that we own.
    let stolen = unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, probe, 0);
        assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd, 3, 0);
        assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        libc::close(pidfd as i32);
        OwnedFd::from_raw_fd(fd as i32)
    };
    let req = capexec_client::wire::Request::Sysctl { key: b"kernel.ostype".to_vec() }.encode(42).unwrap();
    capexec_client::send(stolen.as_raw_fd(), &req).unwrap();
    let (reply, _) = capexec_client::recv(stolen.as_raw_fd()).unwrap();
    let (_, id, errno, _) = capexec_client::wire::decode_reply(&reply).unwrap();
    assert_eq!((id, errno), (42, libc::EPERM), "a request from outside the service was not refused");
    drop(stolen);
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let all = finish(child, out, seen);
    assert!(all.contains("it came from a process outside the service"), "{all}");
});

// The C library: a C program built against include/capexec.h and linked with
// libcapexec_client.so uses the broker as it would use libcasper.
#[test]
fn c_programs_use_the_c_library() {
    require_root();
    let d = grant_tree("c-lib");
    let exe = shared_dir().join("client-test-c");
    let cc = std::process::Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(repo_root().join("crates/capexec-client/include"))
        .arg(repo_root().join("integration-tests/c/client-test.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(shared_dir())
        .arg("-lcapexec_client")
        .arg("-Wl,-rpath,$ORIGIN")
        .output()
        .unwrap();
    assert!(cc.status.success(), "cc failed:\n{}", text(&cc));
    let u = test_unit(
        "c-lib",
        &format!(
            "[[broker.fs]]\npath = \"{}/data/readme\"\nrights = [\"read\"]\n\n[broker.dns]\nnames = [\"localhost\"]\n\n\
             [broker]\npwd = [\"daemon\"]\ngrp = [\"adm\"]\nsyslog = true\nsysctl = [\"kernel.ostype\"]\n",
            d.display()
        ),
    );
    for who in [As::Root, As::User] {
        let mut c = command(who);
        let lib = shared_dir().join("libcapexec_client.so");
        c.arg("run").arg("--unit").arg(&u).arg("--exec-path").arg(&lib).arg("--").arg(&exe).arg(d.join("data/readme"));
        let o = output(c, T);
        let out = text(&o);
        assert!(o.status.success() && !out.contains("FAIL") && out.contains("ok capexec_sysctl_read"), "{who:?}:\n{out}");
    }
}

/// Runs `sh -c SCRIPT` under `capexec run --unit U` as `who`, in a private
/// mount namespace whose /etc/hosts is `hosts`: the host's resolver, as the
/// broker sees it, knows the test's names; the service's view does not.
fn with_hosts(who: As, hosts: &std::path::Path, u: &std::path::Path, script: &str) -> String {
    require_root();
    let run = format!("{} run --unit {} -- sh -c '{script}'", capexec().display(), u.display());
    let as_who = match who {
        As::Root => run,
        As::User => {
            let (uid, gid) = test_user();
            format!("setpriv --reuid {uid} --regid {gid} --clear-groups {run}")
        }
    };
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "--propagation", "private", "--", "sh", "-c"]).arg(format!("mount --bind {} /etc/hosts && cd / && exec {as_who}", hosts.display()));
    let o = output(c, T);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    out
}

// Name lookups of unmodified programs: `getent hosts` in a net = "none"
// service resolves a granted name through the stub resolver and the broker,
// not an ungranted one; getent passwd and group see only granted entries.
both!(getent_through_the_broker, |who: As| {
    let hosts = shared_dir().join(format!("hosts-{who:?}"));
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.1.1 loop.test\n10.1.2.3 granted.test\n10.4.5.6 other.test\n10.7.8.9 a.wild.test\n").unwrap();
    set_mode(&hosts, 0o644);
    let u = test_unit(
        &format!("getent-{who:?}"),
        "[namespaces]\nnet = \"none\"\n\n[broker.dns]\nnames = [\"granted.test\", \"*.wild.test\"]\n\n[broker]\npwd = [\"daemon\"]\ngrp = [\"adm\"]\n",
    );
    let out = with_hosts(
        who,
        &hosts,
        &u,
        "getent ahosts localhost; getent hosts loop.test; getent hosts granted.test; getent hosts a.wild.test; getent hosts other.test; echo other=$?; getent passwd daemon; getent passwd games; echo games=$?; getent group adm; getent group games; echo ggames=$?",
    );
    assert!(out.contains("10.1.2.3        granted.test") && out.contains("10.7.8.9        a.wild.test"), "granted names did not resolve:\n{out}");
    assert!(out.contains("other=2") && !out.contains("10.4.5.6"), "an ungranted name resolved:\n{out}");
    // localhost and the host's own loopback names resolve as the host's
    // file has them: rspamd bound [::1] where the view named it alone.
    assert!(out.contains("127.0.0.1       STREAM localhost") && !out.contains("::1"), "localhost is not the host's:\n{out}");
    assert!(out.contains("127.0.1.1       loop.test"), "{out}");
    assert!(out.contains("refused by broker: the name lookup other.test") && out.contains("add \"other.test\" to broker.dns.names"), "{out}");
    assert!(out.contains("daemon:x:1:1:") && out.contains("games=2"), "passwd is not limited to granted users:\n{out}");
    assert!(out.contains("adm:x:4:") && out.contains("ggames=2"), "group is not limited to granted groups:\n{out}");
});
