//! `capexec run --overlay DIR` (issue 21, after Mbox): the program sees the
//! host's files, every write lands in layers in DIR and never on the host;
//! `capexec diff` lists exactly what it changed, a second run sees the
//! first's changes, `capexec discard` drops them. Rootless and as root.

use capexec_integration_tests::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Every path below `root` with its type, mode, owner and contents.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = p.symlink_metadata().unwrap();
        let data = if m.is_file() {
            std::fs::read(&p).unwrap()
        } else if m.file_type().is_symlink() {
            std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
        } else {
            Vec::new()
        };
        out.insert(p.clone(), (m.mode(), m.uid(), data));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// A directory of the test's own in /var/tmp (which overlaid runs show
/// through their /var overlay; /tmp is private to them), removed when the
/// guard drops.
fn scratch(tag: &str) -> (PathBuf, Scratch) {
    let base = PathBuf::from(format!("/var/tmp/capexec-it-{tag}-{}", std::process::id()));
    (base.clone(), Scratch(vec![base]))
}

fn chown_tree(root: &Path, (uid, gid): (u32, u32)) {
    for p in snapshot(root).keys() {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    }
}

both!(writes_land_in_the_layers_and_diff_lists_them, |who: As| {
    let (base, _cleanup) = scratch(&format!("overlay-{who:?}"));
    let (tree, dir) = (base.join("tree"), base.join("box"));
    for d in ["keep", "gone", "emptied"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("modified"), "before\n").unwrap();
    std::fs::write(tree.join("same"), "same\n").unwrap();
    std::fs::write(tree.join("deleted"), "x\n").unwrap();
    std::fs::write(tree.join("gone/inside"), "x\n").unwrap();
    std::fs::write(tree.join("emptied/old"), "x\n").unwrap();
    std::os::unix::fs::symlink("modified", tree.join("link")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    let before = snapshot(&tree);
    let script = "echo after > modified && cat same > /dev/null && echo new > added && mkdir -p made/deep && echo d > made/deep/f && \
        rm deleted && rm -r gone && rm -r emptied && mkdir emptied && echo n > emptied/new && ln -sf same link && cat modified";
    let run = |script: &str| {
        let mut c = command(who);
        c.arg("run").arg("--overlay").arg(&dir).args(["--", "/bin/sh", "-c", script]).current_dir(&tree);
        output(c, T)
    };
    let o = run(script);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == "after\n", "{who:?}: {}", text(&o));
    assert_eq!(snapshot(&tree), before, "{who:?}: the host tree changed");

    let mut c = command(who);
    c.args(["diff", "--json"]).arg(&dir).arg(&tree);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let got: Vec<(String, String)> = serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
        .iter()
        .map(|c| (c["path"].as_str().unwrap().strip_prefix(tree.to_str().unwrap()).unwrap().to_owned(), c["change"].as_str().unwrap().to_owned()))
        .collect();
    let want: Vec<(String, String)> = [
        ("/added", "added"),
        ("/deleted", "deleted"),
        ("/emptied", "replaced"),
        ("/emptied/new", "added"),
        ("/emptied/old", "deleted"),
        ("/gone", "deleted"),
        ("/link", "modified"),
        ("/made", "added"),
        ("/made/deep", "added"),
        ("/made/deep/f", "added"),
        ("/modified", "modified"),
    ]
    .iter()
    .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(got, want, "{who:?}");
    let mut c = command(who);
    c.args(["diff", "--patch"]).arg(&dir).arg(tree.join("modified"));
    let o = output(c, T);
    assert!(text(&o).contains("-before\n+after\n"), "{}", text(&o));

    // A second run sees the first's changes.
    let o = run("cat modified added made/deep/f && test ! -e deleted");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "after\nnew\nd\n", "{who:?}: {}", text(&o));
    // Dropped: the next run sees the host again.
    let mut c = command(who);
    c.arg("discard").arg(&dir);
    assert!(output(c, T).status.success());
    let o = run("cat modified && test -e deleted && test ! -e added");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "before\n", "{who:?}: {}", text(&o));
    assert_eq!(snapshot(&tree), before);
});

/// Paths, types, permission bits and contents below `root`, as a program
/// lists them (so the same listing inside a run and on the host compares).
const LISTING: &str = "find . -printf '%p %y %m\\n' | sort; find . -type f -exec md5sum {} + | sort; find . -type l -printf '%p -> %l\\n' | sort";

both!(commit_makes_the_host_what_the_program_saw, |who: As| {
    let (base, _cleanup) = scratch(&format!("commit-{who:?}"));
    let (tree, dir) = (base.join("tree"), base.join("box"));
    for d in ["keep", "emptied/deep", "gone"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    for (f, text) in [("modified", "before\n"), ("deleted", "x\n"), ("emptied/deep/old", "x\n"), ("gone/f", "x\n"), ("keep/k", "k\n"), ("later", "l\n")] {
        std::fs::write(tree.join(f), text).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    let run = |overlay: bool, script: &str| {
        let mut c = command(who);
        c.arg("run");
        if overlay {
            c.arg("--overlay").arg(&dir);
        } else {
            c.arg("--rw").arg(&tree);
        }
        c.args(["--", "/bin/sh", "-c", script]).current_dir(&tree);
        let o = output(c, T);
        assert!(o.status.success(), "{who:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(
        true,
        "echo after > modified && chmod 640 modified && rm deleted && rm -r emptied && mkdir -p emptied/new && echo n > emptied/new/f && \
         rm -r gone && echo g > gone && mkdir -p made && echo m > made/f && chmod 700 made && ln -s keep/k link && echo l2 >> later",
    );
    let seen = run(true, LISTING);
    let ctl = |args: &[&str]| {
        let mut c = command(who);
        c.args(args).arg(&dir);
        output(c, T)
    };
    // A dry run changes nothing; a partial commit only its path.
    let host_before = snapshot(&tree);
    let o = ctl(&["commit", "--dry-run"]);
    assert!(o.status.success() && snapshot(&tree) == host_before, "{}", text(&o));
    let mut c = command(who);
    c.args(["commit"]).arg(&dir).arg(tree.join("made"));
    let o = output(c, T);
    assert!(o.status.success() && tree.join("made/f").exists() && !tree.join("gone").is_file(), "{}", text(&o));
    // The host changed since the run: refused, nothing applied; --force applies.
    std::fs::write(tree.join("later"), "host's own\n").unwrap();
    if who == As::User {
        chown_tree(&tree.join("later"), test_user());
    }
    let o = ctl(&["commit"]);
    assert!(!o.status.success() && text(&o).contains("later: changed on the host since the run"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(tree.join("modified")).unwrap(), "before\n", "nothing applied");
    let o = ctl(&["commit", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    // The host is now what the program saw, file by file.
    assert_eq!(run(false, LISTING), seen, "{who:?}");
    let o = ctl(&["diff"]);
    assert!(text(&o).contains("0 new, 0 modified, 0 deleted"), "{}", text(&o));
});

/// A layer capexec did not write (crafted, or written after the run) is
/// not applied unless forced; forced, commit still follows no link (one a
/// layer puts on the way of another's path), makes no device and no
/// setuid file, and takes no layer whose name leaves its place.
#[test]
fn commit_holds_against_a_crafted_layer() {
    require_root();
    let (base, _cleanup) = scratch("crafted");
    let (tree, target, dir) = (base.join("tree"), base.join("target"), base.join("box"));
    for d in [&tree, &target] {
        std::fs::create_dir_all(d).unwrap();
    }
    let layer = |p: &Path| capexec_decl::overlay::layer_dir(&dir, p).join("upper");
    // The tree's layer: a setuid file, a device, and a link to `target`...
    let up = layer(&tree);
    std::fs::create_dir_all(&up).unwrap();
    std::fs::write(up.join("suid"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(up.join("suid"), std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    nix::sys::stat::mknod(&up.join("null"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o666), nix::sys::stat::makedev(1, 3))
        .unwrap();
    std::os::unix::fs::symlink(&target, up.join("evil")).unwrap();
    // ...and a second layer whose path goes through that link.
    let through = layer(&tree.join("evil"));
    std::fs::create_dir_all(&through).unwrap();
    std::fs::write(through.join("planted"), "x\n").unwrap();
    // A layer whose name climbs out.
    let out = dir.join("layers/..%2F..%2Fescape/upper");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("f"), "x\n").unwrap();

    let ctl = |args: &[&str]| {
        let mut c = command(As::Root);
        c.args(args).arg(&dir);
        output(c, T)
    };
    let o = ctl(&["diff", "--json"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("escape"), "{}", text(&o));
    let o = ctl(&["commit"]);
    assert!(!o.status.success() && text(&o).contains("no run recorded what it was"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&tree).unwrap().count(), 0, "nothing applied");
    let o = ctl(&["commit", "--force"]);
    let all = text(&o);
    assert!(!target.join("planted").exists(), "written through a link: {all}");
    assert!(all.contains("planted: not applied") && all.contains("null: not applied: a device"), "{all}");
    let mode = std::fs::metadata(tree.join("suid")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777, 0o755, "no setuid bit");
    assert!(tree.join("null").symlink_metadata().is_err(), "no device");
    assert!(!base.join("escape").exists() && !Path::new("/var/escape").exists());
}

/// Mbox's review at the end of an overlaid run, on a terminal only: list,
/// commit one path, quit; the rest stays in the layers. Without a terminal
/// nothing is asked.
#[test]
fn a_run_on_a_terminal_ends_with_the_review() {
    require_root();
    let (base, _cleanup) = scratch("review");
    let (tree, dir) = (base.join("tree"), base.join("box"));
    std::fs::create_dir_all(&tree).unwrap();
    chown_tree(&base, test_user());
    let line = format!("cd {} && {} run --overlay {} -- /bin/sh -c 'echo a > a; echo b > b'", tree.display(), capexec().display(), dir.display());
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"]);
    {
        use std::os::unix::process::CommandExt;
        let (uid, gid) = test_user();
        c.uid(uid).gid(gid).env("HOME", "/").current_dir("/");
    }
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let answers = format!("l\no {}\nq\n", tree.join("a").display());
        child.stdin.take().unwrap().write_all(answers.as_bytes()).unwrap();
    }
    let o = wait_output(child, T);
    let all = text(&o);
    assert!(all.contains("2 change(s) kept in") && all.contains(&format!("A {}/b", tree.display())), "{all}");
    assert!(all.contains("applied 1 change(s)") && all.contains("the changes stay in"), "{all}");
    assert_eq!(std::fs::read_to_string(tree.join("a")).unwrap(), "a\n");
    assert!(!tree.join("b").exists(), "{all}");
    // Not on a terminal: no question.
    let mut c = command(As::User);
    c.arg("run").arg("--overlay").arg(&dir).args(["--", "/bin/sh", "-c", "echo c > c"]).current_dir(&tree);
    let o = output(c, T);
    assert!(o.status.success() && !text(&o).contains("kept in"), "{}", text(&o));
}

// The network summary at the end of an overlaid run (and of any run with
// --net-summary), rootless and as root: each socket made, each address
// bound, connected or sent to, allowed or refused, with the flag that allows
// it; the program's own loopback is its own.
both!(an_overlaid_run_summarises_the_network, |who: As| {
    let (base, _cleanup) = scratch(&format!("netsum-{who:?}"));
    std::fs::create_dir_all(&base).unwrap();
    // Datagrams with their address in sendmsg's message, and in the 3rd of
    // sendmmsg's (glibc's resolver sends that way).
    std::fs::write(
        base.join("send.py"),
        r#"import ctypes, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try: s.sendmsg([b"x"], [], 0, ("192.0.2.2", 54))
except OSError: pass
class IOV(ctypes.Structure): _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class MSG(ctypes.Structure): _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(IOV)), ("iovlen", ctypes.c_size_t),
    ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int), ("pad", ctypes.c_int), ("len", ctypes.c_uint32)]
data = ctypes.create_string_buffer(b"y")
iov = IOV(ctypes.cast(data, ctypes.c_void_p), 1)
names = [ctypes.create_string_buffer(struct.pack("=H", socket.AF_INET) + struct.pack("!H", 55 + i) + socket.inet_aton("192.0.2.3") + bytes(8)) for i in range(3)]
msgs = (MSG * 3)(*[MSG(ctypes.cast(names[i], ctypes.c_void_p), 16 if i == 2 else 0, ctypes.pointer(iov), 1, None, 0, 0) for i in range(3)])
assert ctypes.sizeof(MSG) == 64
ctypes.CDLL(None).sendmmsg(s.fileno(), msgs, 3, 0)
"#,
    )
    .unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    let prog = format!("use IO::Socket::INET; my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1:8080', Listen => 1); \
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1:8080'); my $s = IO::Socket::INET->new(PeerAddr => '10.1.2.3:80', Timeout => 1); \
        my $u = IO::Socket::INET->new(Proto => 'udp'); $u->send('x', 0, pack_sockaddr_in(53, inet_aton('192.0.2.1'))); \
        system('/usr/bin/perl', '-e', 'use IO::Socket::INET; IO::Socket::INET->new(PeerAddr => q(10.9.9.9:81), Timeout => 1)'); system('/usr/bin/python3', '{}'); \
        print 'packet: ', (socket(my $p, 17, 3, 0) ? 'made' : 'refused'), \"\\n\"; print \"done\\n\";", base.join("send.py").display());
    let prog = prog.as_str();
    for flags in
        [vec!["--overlay".to_owned(), base.join("box").display().to_string()], vec!["--net-summary".to_owned(), "--ro".to_owned(), base.display().to_string()]]
    {
        let mut c = command(who);
        c.arg("run").args(&flags).args(["--", "/usr/bin/perl", "-e", prog]).current_dir(&base);
        let o = output(c, T);
        let err = String::from_utf8_lossy(&o.stderr);
        // The recorder sees only what the allowlist lets through: a packet
        // socket, which capexec's argument rules refuse, stays refused.
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == "packet: refused\ndone\n", "{who:?} {flags:?}: {}", text(&o));
        for line in [
            "network: 6 socket(s) made by 3 process(es):",
            "(python3): send udp:192.0.2.2:54: refused",
            "(python3): send udp:192.0.2.3:57: refused",
            "(perl): connect tcp:10.9.9.9:81: refused",
            "(perl): socket inet/stream (x3)",
            "(perl): socket inet/dgram",
            "(perl): bind tcp:127.0.0.1:8080: allowed, in the run's own network",
            "(perl): connect tcp:127.0.0.1:8080: allowed",
            "(perl): connect tcp:10.1.2.3:80: refused (no broker connect grant: it would connect in the service's own network namespace); to allow it: --net host --connect-tcp 80",
            "(perl): send udp:192.0.2.1:53: refused",
        ] {
            assert!(err.contains(line), "{who:?} {flags:?}: no {line:?} in:\n{err}");
        }
    }
    // No summary unless asked for (or overlaid).
    let mut c = command(who);
    c.args(["run", "--", "/usr/bin/perl", "-e", prog]).current_dir(&base);
    let o = output(c, T);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("network:"), "{}", text(&o));
});

// The summary of a run with a broker, rootless and as root: the kernel lets
// a filter chain have one seccomp listener, so the broker is handed the
// network calls and tells of them (those it answers and those it only
// watches), in the same words as the recorder. With [broker] grants (the
// broker connects) and with --net host (the broker binds).
both!(a_brokered_run_summarises_the_network, |who: As| {
    let (base, _cleanup) = scratch(&format!("netsum-broker-{who:?}"));
    std::fs::create_dir_all(&base).unwrap();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let granted = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut s, b"hello");
        }
    });
    let (refused, bind_ok, bind_refused, udp) = (unused_port(), unused_port(), unused_port(), unused_port());
    // What each run tries: connects (one in a child process), binds, a
    // datagram by sendmsg and a Unix connect.
    std::fs::write(
        base.join("net.py"),
        format!(
            r#"import socket, subprocess, sys
def attempt(what, f):
    try: f(); print(what, "ok")
    except OSError as e: print(what, "failed", e.errno)
c = socket.socket()
attempt("granted", lambda: (c.connect(("127.0.0.1", {granted})), c.recv(5)))
attempt("refused", lambda: socket.socket().connect(("127.0.0.1", {refused})))
attempt("bind", lambda: socket.socket().bind(("127.0.0.1", {bind_ok})))
attempt("bind2", lambda: socket.socket().bind(("127.0.0.1", {bind_refused})))
attempt("send", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendmsg([b"x"], [], 0, ("127.0.0.1", {udp})))
attempt("unix", lambda: socket.socket(socket.AF_UNIX).connect("/run/capexec-it-none.sock"))
sys.stdout.flush()
subprocess.run(["/usr/bin/perl", "-e", "use IO::Socket::INET; IO::Socket::INET->new(PeerAddr => q(127.0.0.1:{refused}))"])
"#
        ),
    )
    .unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    let unit = test_unit(
        &format!("netsum-{who:?}"),
        &format!("[namespaces]\nnet = \"none\"\n\n[broker.net]\nconnect = [\"tcp:127.0.0.1:{granted}\"]\nbind = [\"tcp:127.0.0.1:{bind_ok}\"]\n"),
    );
    let grants = vec!["--unit".to_owned(), unit.display().to_string()];
    let host = vec!["--net".to_owned(), "host".to_owned(), "--bind-tcp".to_owned(), bind_ok.to_string()];
    for (flags, outcome, lines) in [
        (
            &grants,
            "granted ok\nrefused failed 13\nbind ok\nbind2 failed 13\nsend ok\nunix failed 2\n",
            vec![
                format!("(python3): connect tcp:127.0.0.1:{granted}: allowed"),
                format!("(python3): connect tcp:127.0.0.1:{refused}: refused"),
                format!("(python3): bind tcp:127.0.0.1:{bind_ok}: allowed"),
                format!("(python3): bind tcp:127.0.0.1:{bind_refused}: refused"),
                format!("(python3): send udp:127.0.0.1:{udp}: allowed, in the run's own network"),
                "(python3): connect unix:/run/capexec-it-none.sock: refused".to_owned(),
                format!("(perl): connect tcp:127.0.0.1:{refused}: refused"),
                "(python3): socket inet/stream (x4)".to_owned(),
                "(perl): socket inet/stream".to_owned(),
            ],
        ),
        (
            &host,
            "granted failed 13\nrefused failed 13\nbind ok\nbind2 failed 13\nsend ok\nunix failed 2\n",
            vec![
                format!("(python3): connect tcp:127.0.0.1:{granted}: refused (Landlock allows no TCP connect to port {granted}); to allow it: --connect-tcp {granted}"),
                format!("(python3): bind tcp:127.0.0.1:{bind_ok}: allowed"),
                format!("(python3): bind tcp:127.0.0.1:{bind_refused}: refused (Landlock allows no TCP bind to port {bind_refused}); to allow it: --bind-tcp {bind_refused}"),
                format!("(python3): send udp:127.0.0.1:{udp}: allowed\n"),
                format!("(perl): connect tcp:127.0.0.1:{refused}: refused"),
            ],
        ),
    ] {
        let mut c = command(who);
        c.arg("run").args(flags).args(["--net-summary", "--ro"]).arg(&base).args(["--", "/usr/bin/python3"]).arg(base.join("net.py"));
        let o = output(c, T);
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success() && out.starts_with(outcome), "{who:?} {flags:?}: {}", text(&o));
        assert!(err.contains("network: ") && err.contains("made by 2 process(es):"), "{who:?} {flags:?}: {err}");
        for line in &lines {
            assert!(err.contains(line.as_str()), "{who:?} {flags:?}: no {line:?} in:\n{err}");
        }
        // A failing program's status is the run's: nothing after the run
        // makes a call the broker's filter (which capexec then runs under)
        // refuses, such as isatty's ioctl, which killed it with SIGSYS.
        let mut c = command(who);
        c.arg("run").args(flags).args(["--", "/bin/sh", "-c", "exit 3"]);
        let o = output(c, T);
        assert_eq!(o.status.code(), Some(3), "{who:?} {flags:?}: {}", text(&o));
    }
});

/// A wheel of one module, `capexec_it_hello`, made by hand (a zip with its
/// metadata): what `pip install --no-index` takes from a file.
fn wheel(dir: &Path) -> PathBuf {
    let script = r#"
import zipfile, hashlib, base64, sys
name, ver = "capexec_it_hello", "1.0"; di = f"{name}-{ver}.dist-info"
files = {f"{name}.py": "def hello():\n    return 'hello'\n", f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n",
         f"{di}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
rec = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b'=').decode()},{len(c.encode())}" for p, c in files.items()]
files[f"{di}/RECORD"] = "\n".join(rec + [f"{di}/RECORD,,"]) + "\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    [z.writestr(p, c) for p, c in files.items()]
"#;
    let whl = dir.join("capexec_it_hello-1.0-py3-none-any.whl");
    assert!(std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&whl).status().unwrap().success());
    whl
}

/// A small package of its own, built with dpkg-deb: `name` installs
/// /usr/share/NAME/data.
fn deb(base: &Path, name: &str) -> PathBuf {
    let pkg = base.join(name);
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/share").join(name)).unwrap();
    std::fs::write(pkg.join("DEBIAN/control"), format!("Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n")).unwrap();
    std::fs::write(pkg.join("usr/share").join(name).join("data"), "data\n").unwrap();
    let deb = base.join(format!("{name}.deb"));
    let o = std::process::Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&pkg).arg(&deb).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    deb
}

// `--fakeroot` (issue 21): the program is root in its own user namespace,
// and package installs land in the layers, rootless and as root: pip of a
// local wheel into the system's dist-packages, `dpkg -i` and `apt-get
// install` of small local .debs (rootless, capexec copies the package
// tools' state into the layers ahead: overlayfs cannot copy root's files up
// in a user namespace). `capexec diff` shows what was installed and not the
// copies; commit as the user applies only what the user may write; discard
// drops the rest.
both!(fakeroot_installs_packages_into_the_layers, |who: As| {
    let base = PathBuf::from(format!("/var/tmp/capexec-it-fakeroot-{}-{who:?}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone(), PathBuf::from("/usr/share/capexec-it-hello")]);
    std::fs::create_dir_all(&base).unwrap();
    let whl = wheel(&base);
    let (hello, by_apt) = (deb(&base, "capexec-it-hello"), deb(&base, "capexec-it-byapt"));
    // A directory nobody may list, as the work directory of another run's
    // overlay is: the fake root's skeleton must not copy it into the layer
    // as the caller's own, where `capexec diff` could not read it.
    std::fs::create_dir_all(base.join("other/work/work")).unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    set_mode(&base.join("other/work/work"), 0);
    let dir = base.join("box");
    let run = |script: &str| {
        let mut c = command(who);
        c.arg("run").arg("--overlay").arg(&dir).args(["--fakeroot", "--", "/bin/sh", "-c", script]).current_dir(&base);
        output(c, Duration::from_secs(120))
    };
    let o = run(&format!(
        "id -u && /usr/bin/python3 -m pip -q install --no-index --break-system-packages {} 2>/dev/null && /usr/bin/python3 -c 'import capexec_it_hello; print(capexec_it_hello.hello())'",
        whl.display()
    ));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\nhello\n", "{who:?}: {}", text(&o));
    // Where Debian's pip installs as root.
    let minor = std::process::Command::new("/usr/bin/python3").args(["-c", "import sys; print(sys.version_info.minor)"]).output().unwrap();
    let site = PathBuf::from(format!("/usr/local/lib/python3.{}/dist-packages", String::from_utf8_lossy(&minor.stdout).trim()));
    let site = site.as_path();
    assert!(!site.join("capexec_it_hello.py").exists(), "installed on the host");

    let o = run(&format!(
        "dpkg -i {} >/dev/null && apt-get install -y -q {} >/dev/null 2>&1; dpkg -s capexec-it-hello capexec-it-byapt | grep Status",
        hello.display(),
        by_apt.display()
    ));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Status: install ok installed\n".repeat(2), "{who:?}: {}", text(&o));
    let mut c = command(who);
    c.arg("diff").arg(&dir);
    let o = output(c, T);
    let listed = text(&o);
    for line in [
        format!("A {}/capexec_it_hello.py", site.display()),
        "A /usr/share/capexec-it-hello/data".into(),
        "A /usr/share/capexec-it-byapt/data".into(),
        "A /var/lib/dpkg/info/capexec-it-hello.list".into(),
        "M /var/lib/dpkg/status".into(),
    ] {
        assert!(listed.lines().any(|l| l == line), "{who:?}: {line} not in\n{listed}");
    }
    // The copies made ahead and left as they were are no change.
    assert!(!listed.contains("lock") && !listed.contains("/var/lib/dpkg/available"), "{who:?}: {listed}");
    for p in ["/usr/share/capexec-it-hello", "/usr/share/capexec-it-byapt"] {
        assert!(!Path::new(p).exists(), "{p} installed on the host");
    }
    let mut c = command(who);
    c.args(["commit"]).arg(&dir).arg("/usr/share/capexec-it-hello");
    if who == As::User {
        c.arg(site);
    }
    let o = output(c, T);
    if who == As::User {
        // The user may not write there on the host: nothing applied.
        assert!(!o.status.success() && text(&o).contains("Permission denied"), "{}", text(&o));
        assert!(!site.join("capexec_it_hello.py").exists() && !Path::new("/usr/share/capexec-it-hello").exists());
    } else {
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(std::fs::read_to_string("/usr/share/capexec-it-hello/data").unwrap(), "data\n");
    }
    let status = std::process::Command::new("dpkg").args(["-s", "capexec-it-hello"]).output().unwrap();
    assert!(!status.status.success(), "the host's dpkg database was changed");
    let mut c = command(who);
    c.arg("discard").arg(&dir);
    assert!(output(c, T).status.success());
});

// `--copy-up` (rootless): a file of root's cannot be copied up by a
// rootless overlay, so a write to it fails; copied into the layer ahead it
// is the caller's there, and the program may rewrite it, the host
// unchanged. What the caller may not read is not copied (but an empty lock
// file is), nor a setuid file; a file the program deleted stays
// deleted on the next run; copies left as they were are no change.
#[test]
fn copy_up_lets_a_rootless_run_rewrite_roots_files() {
    require_root();
    let (base, _cleanup) = scratch("copyup");
    let tree = base.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::create_dir_all(tree.join("opq")).unwrap();
    let files = [
        ("opq/x", 0o644, "x\n"),
        ("conf", 0o644, "a\n"),
        ("lock", 0o600, ""),
        ("secret", 0o600, "s\n"),
        ("tool", 0o4755, "#!/bin/sh\n"),
        ("sub/f", 0o644, "f\n"),
        ("sub/g", 0o644, "g\n"),
    ];
    for (f, mode, data) in files {
        std::fs::write(tree.join(f), data).unwrap();
        std::fs::set_permissions(tree.join(f), std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let dir = base.join("box");
    std::fs::create_dir_all(&dir).unwrap();
    chown_tree(&dir, test_user());
    let before = snapshot(&tree);
    let run = |copy: bool, script: &str| {
        let mut c = command(As::User);
        c.arg("run").arg("--overlay").arg(&dir);
        if copy {
            for f in ["conf", "lock", "secret", "tool", "sub", "opq"] {
                c.arg("--copy-up").arg(tree.join(f));
            }
        }
        c.args(["--", "/bin/sh", "-c", script]).current_dir(&tree);
        output(c, T)
    };
    let o = run(false, "echo b >> conf");
    assert!(!o.status.success() && text(&o).contains("Permission denied"), "{}", text(&o));
    let o = run(
        true,
        "echo b >> conf && echo f2 >> sub/f && exec 3<>lock && rm sub/g && rm -r opq && mkdir opq && cat conf; cat secret 2>/dev/null || echo unreadable",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a\nb\nunreadable\n", "{}", text(&o));
    assert_eq!(snapshot(&tree), before, "the host tree changed");
    let upper = capexec_decl::overlay::layer_dir(&dir, Path::new("/var")).join("upper").join(tree.strip_prefix("/var").unwrap());
    assert!(!upper.join("tool").exists(), "a setuid file was copied");
    assert!(!upper.join("secret").exists(), "a file the caller cannot read was copied");
    // A second run copies nothing over what the first did or deleted.
    let o = run(true, "cat conf sub/f; test -e sub/g || echo gone; ls opq");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a\nb\nf\nf2\ngone\n", "{}", text(&o));
    let mut c = command(As::User);
    c.arg("diff").arg(&dir).arg(&tree);
    let o = output(c, T);
    let mut listed: Vec<String> = text(&o).lines().filter(|l| l.starts_with(['A', 'M', 'D', 'R'])).map(String::from).collect();
    listed.sort();
    let t = tree.display();
    assert_eq!(listed, [format!("D {t}/opq/x"), format!("D {t}/sub/g"), format!("M {t}/conf"), format!("M {t}/sub/f"), format!("R {t}/opq/")], "{}", text(&o));
}

// Every way a program may try to reach a host file under --overlay lands in
// the layers: a hard link then a write through it, a write through
// /proc/self/root and through /proc/self/fd of a file opened read-only, a
// rename out and back, truncate, chmod, a new mtime, a directory renamed,
// a symlink swapped for its target. The host is unchanged, byte for byte,
// mode and times included.
both!(no_path_reaches_the_host_under_an_overlay, |who: As| {
    let (base, _cleanup) = scratch(&format!("ovpaths-{who:?}"));
    let tree = base.join("tree");
    for d in ["dir", "mnt", "src"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    for f in ["a", "b", "c", "d", "dir/e", "src/f"] {
        std::fs::write(tree.join(f), format!("{f}\n")).unwrap();
    }
    std::os::unix::fs::symlink("a", tree.join("link")).unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    let times = |p: &Path| {
        let m = p.symlink_metadata().unwrap();
        (m.mtime(), m.mtime_nsec(), m.ino())
    };
    let files = ["a", "b", "c", "d", "dir", "dir/e", "link", "src", "src/f"];
    let state = || -> Vec<_> { files.iter().map(|f| (snapshot(&tree.join(f)), times(&tree.join(f)))).collect() };
    let before = state();
    let t = tree.display();
    // mnt: an empty directory, or (the split run below) the host's src
    // mounted there.
    let script = format!(
        "cd {t} && ln a hard && echo x >> hard; echo y >> /proc/self/root{t}/b; exec 3<c; echo z >> /proc/self/fd/3; \
         mv d /tmp/d && mv /tmp/d d && echo w >> d; truncate -s 0 dir/e; chmod 600 a; touch -m -d 2001-01-01 b; \
         mv dir dir2; rm link && cp a link; \
         echo q >> mnt/f; ln mnt/f mnt/h; exec 4<mnt/f; echo r >> /proc/self/fd/4; echo s >> /proc/self/root{t}/mnt/f; \
         chmod 600 mnt/f; truncate -s 0 mnt/f; mv mnt/f mnt/g; echo done"
    );
    let mut c = command(who);
    c.arg("run").arg("--overlay").arg(base.join("box")).args(["--", "/bin/sh", "-c", &script]).current_dir(&tree);
    let o = output(c, T);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("done\n"), "{who:?}: {}", text(&o));
    assert_eq!(state(), before, "{who:?}: a host file changed");
    assert!(!tree.join("hard").exists() && !tree.join("dir2").exists());
    // The same with a host mount below the tree (src bound on mnt), which
    // splits it: the files in it are the host's, read-only, dir an overlay
    // of its own, the mount shown read-only.
    let o = run_in_mount_ns(who, &format!("mount --bind {t}/src {t}/mnt"), &["--overlay", base.join("box").to_str().unwrap()], &script, &tree);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("done\n"), "{who:?}: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("filesystem.overlay: {t}/mnt")), "{who:?}: not split: {}", text(&o));
    assert_eq!(state(), before, "{who:?}: a host file changed under a split directory");
    assert!(!tree.join("hard").exists() && !tree.join("dir2").exists() && !tree.join("src/h").exists() && !tree.join("src/g").exists());
    // The same script with the tree given read-write (no overlay there)
    // does change the host: the comparison above can fail.
    let mut c = command(who);
    c.arg("run").arg("--rw").arg(&tree).args(["--", "/bin/sh", "-c", &script]).current_dir(&tree);
    let o = output(c, T);
    assert!(tree.join("dir2").exists() && std::fs::read_to_string(tree.join("hard")).is_ok(), "{who:?}: {}", text(&o));
});

/// `capexec run ARGS -- /bin/sh -c SCRIPT` in `cwd`, as `who`, in a mount
/// namespace of its own in which the shell command `setup` ran first (as
/// root): a host mount that no other test sees.
fn run_in_mount_ns(who: As, setup: &str, args: &[&str], script: &str, cwd: &Path) -> std::process::Output {
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"]).arg(format!("{setup} && exec \"$@\"")).arg("sh");
    if who == As::User {
        let (uid, gid) = test_user();
        c.args(["setpriv", &format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups", "env", "HOME=/"]);
    }
    c.arg(capexec()).arg("run").args(args).args(["--", "/bin/sh", "-c", script]).current_dir(cwd);
    output(c, T)
}

// A host mount below a top-level directory (a container engine's store
// under /var): overlayfs cannot take that directory in a user namespace.
// The run shows the mount and the directories on the way to it as they
// are, read-only, and overlays every other directory there, each writing
// where the top-level directory's layer would have kept it; a later run
// without the mount, with /var overlaid whole, sees the same changes. The
// mount is made in a mount namespace of the test's own, so nothing else
// sees it.
both!(a_mount_below_a_directory_leaves_the_rest_overlaid, |who: As| {
    let (base, _cleanup) = scratch(&format!("split-{who:?}"));
    let (tree, dir) = (base.join("tree"), base.join("box"));
    for d in ["mnt", "side/deep"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("side/deep/f"), "before\n").unwrap();
    std::fs::write(tree.join("top-file"), "host\n").unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    let before = snapshot(&tree);
    let run = |mount: bool, script: &str, extra: &[&str]| {
        let setup = if mount { format!("mount -t tmpfs -o mode=755 none {0}/mnt && echo in-mount > {0}/mnt/f", tree.display()) } else { "true".into() };
        let mut args = vec!["--overlay", dir.to_str().unwrap()];
        args.extend(extra);
        run_in_mount_ns(who, &setup, &args, script, &tree)
    };
    let o = run(
        true,
        "cat mnt/f && echo after > side/deep/f && echo new > side/new && \
         { echo x > mnt/g 2>/dev/null || echo mount: read-only; } && { echo x > top-file 2>/dev/null || echo top-file: read-only; } && \
         stat -c '%a' /usr /var/cache",
        &[],
    );
    let usr = format!("{:o}\n{:o}\n", Path::new("/usr").metadata().unwrap().mode() & 0o7777, Path::new("/var/cache").metadata().unwrap().mode() & 0o7777);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("in-mount\nmount: read-only\ntop-file: read-only\n{usr}"), "{who:?}: {}", text(&o));
    assert!(o.status.success(), "{who:?}: {}", text(&o));
    // Said, whatever else the host has mounted below its directories.
    let mnt = tree.join("mnt").display().to_string();
    let warned = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr).lines().any(|l| l.contains("warning: filesystem.overlay: ") && l.contains(&mnt) && l.contains("read-only"))
    };
    assert!(warned(&o), "{who:?}: no warning about {mnt} in {}", text(&o));
    assert_eq!(snapshot(&tree), before, "{who:?}: the host tree changed");

    let mut c = command(who);
    c.args(["diff", "--json"]).arg(&dir).arg(&tree);
    let o = output(c, T);
    let got: Vec<(String, String)> = serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
        .iter()
        .map(|c| (c["path"].as_str().unwrap().strip_prefix(tree.to_str().unwrap()).unwrap().to_owned(), c["change"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, [("/side/deep/f".to_owned(), "modified".to_owned()), ("/side/new".to_owned(), "added".to_owned())], "{who:?}");

    // Without the mount (and with no other below it on the host, /var is
    // one overlay then), over the same layer.
    let o = run(false, "cat side/deep/f side/new && echo again > top-file && cat top-file", &[]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "after\nnew\nagain\n", "{who:?}: {}", text(&o));
    assert!(!warned(&o), "{who:?}: {}", text(&o));
    assert_eq!(snapshot(&tree), before, "{who:?}: the host tree changed");

    // --rw writes through to the host below a split directory too: no part
    // of it on top.
    let o = run(true, "echo through > side/direct", &["--rw", tree.to_str().unwrap()]);
    assert!(o.status.success(), "{who:?}: {}", text(&o));
    assert_eq!(std::fs::read_to_string(tree.join("side/direct")).ok().as_deref(), Some("through\n"), "{who:?}: {}", text(&o));

    // A directory a run without the mount deleted (a whiteout in the layer)
    // cannot be a part: a run with the mount shows the host's, read-only,
    // and runs.
    let o = run(false, "rm -r side && test ! -e side", &[]);
    assert!(o.status.success(), "{who:?}: {}", text(&o));
    let o = run(true, "test -d side && { touch side/x 2>/dev/null || echo side: read-only; }", &[]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "side: read-only\n", "{who:?}: {}", text(&o));
});
