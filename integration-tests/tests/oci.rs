//! capexec with OCI runtimes (docs/oci.md): `capexec-oci run` applying a
//! bundle's config.json through capexec's composer, and `capexec agent` as
//! the seccomp agent (linux.seccomp.listenerPath) of containers that
//! Debian's stock runc runs; both from a busybox-static root filesystem the
//! test builds.

use capexec_integration_tests::*;
use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// The agent in the background, killed on drop; its stderr read line by line.
struct Agent {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line received so far, waited for or not.
    seen: std::cell::RefCell<Vec<String>>,
    socket: PathBuf,
}

impl Agent {
    fn start(socket: &Path) -> Agent {
        let mut child = Command::new(capexec()).args(["agent", "--socket"]).arg(socket).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let agent = Agent { child, lines, seen: Default::default(), socket: socket.to_owned() };
        agent.wait_line("serving containers");
        agent
    }

    /// The first line (from now on) that contains `needle`.
    fn wait_line(&self, needle: &str) -> String {
        let end = Instant::now() + T;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.borrow_mut().push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("the agent said no {needle:?} in {T:?}"),
            }
        }
    }

    /// Everything it said so far.
    fn said(&self) -> String {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.lines.try_iter());
        seen.join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Our own child.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A runc container, killed and deleted on drop (a failed assertion must
/// not leave it running).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc").args(["delete", "--force", &self.0]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// A bundle: `runc_bundle` with `args`, a seccomp profile handing openat
/// and open to `socket`, and `annotations`.
fn bundle(dir: &Path, socket: &Path, args: &[&str], annotations: serde_json::Value) {
    runc_bundle(dir, |c| {
        c["process"]["args"] = args.into();
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["openat", "open"], "action": "SCMP_ACT_NOTIFY"}],
        });
        c["annotations"] = annotations;
    });
}

// A container of stock runc whose profile names the agent gets its
// annotation's grants: a granted host file is read through the broker,
// writing it (a read grant) is refused and reported with its fix, a host
// file not granted stays out of reach; without the annotation the granted
// file is out of reach too. Its broker is a process of its own, confined.
#[test]
fn the_agent_brokers_a_runc_containers_grants() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-agent-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    std::fs::create_dir_all(base.join("granted")).unwrap();
    std::fs::write(base.join("granted/file"), "granted-content\n").unwrap();
    std::fs::write(base.join("secret"), "SECRET\n").unwrap();
    let socket = PathBuf::from(format!("/run/capexec-it-agent-{}.sock", std::process::id()));
    let agent = Agent::start(&socket);
    // Whoever connects could hand the agent a listener: root (the runtime) only.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the agent's socket");
    let script = format!(
        "/bin/busybox cat {0}/granted/file; echo r=$?; echo x > {0}/granted/file; echo w=$?; /bin/busybox cat {0}/secret; echo s=$?; read go < /go",
        base.display()
    );
    let grant = format!("[[broker.fs]]\npath = \"{}/granted/**\"\nrights = [\"read\"]\n", base.display());
    for (tag, annotations, want) in
        [("granted", serde_json::json!({"org.capexec.broker": grant}), "granted-content\nr=0\nw=1\ns=1\n"), ("plain", serde_json::json!({}), "r=1\nw=1\ns=1\n")]
    {
        let dir = base.join(tag);
        bundle(&dir, &socket, &["/bin/busybox", "sh", "-c", &script], annotations);
        // What the container waits on at its end, while its broker is looked at.
        let fifo = std::ffi::CString::new(dir.join("rootfs/go").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let id = format!("capexec-it-{tag}-{}", std::process::id());
        let _container = Container(id.clone());
        let run = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&dir)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let line = agent.wait_line(&format!("container {id}: broker pid"));
        let pid: i32 = line.split("broker pid ").nth(1).and_then(|r| r.split(',').next()).and_then(|p| p.parse().ok()).unwrap();
        // Opening the fifo returns once the container opens it, after its
        // reads went through the broker: by then the broker has confined itself.
        let mut go = std::fs::OpenOptions::new().write(true).open(dir.join("rootfs/go")).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("?").to_owned();
        assert_eq!(
            (field("NoNewPrivs:"), field("Seccomp:"), field("Seccomp_filters:"), field("CapEff:")),
            ("1".into(), "2".into(), "1".into(), "0000000000000000".into()),
            "{status}"
        );
        go.write_all(b"go\n").unwrap();
        drop(go);
        let o = wait_output(run, T);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && out == want, "{tag}: {}\nagent:\n{}", text(&o), agent.said());
    }
    // The refusal may still be on its way through the pipe.
    let refusal = "granted/file\", O_WRONLY|O_CREAT|O_TRUNC): opening for writing needs the `write` right";
    if !agent.said().contains(refusal) {
        agent.wait_line(refusal);
    }
}

// The agent killed while it serves a container: the container's broker is
// a process of its own and goes on serving it (a granted read after the
// agent's death goes through). With no agent, runc refuses to create a
// container whose profile names it, and nothing of it is left.
#[test]
fn a_runc_container_outlives_its_agent_and_none_is_created_without_one() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-agent-gone-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    std::fs::create_dir_all(base.join("granted")).unwrap();
    std::fs::write(base.join("granted/file"), "granted-content\n").unwrap();
    let socket = PathBuf::from(format!("/run/capexec-it-agent-gone-{}.sock", std::process::id()));
    let agent = Agent::start(&socket);
    let grant = format!("[[broker.fs]]\npath = \"{}/granted/**\"\nrights = [\"read\"]\n", base.display());
    let script = format!("read go < /go; /bin/busybox cat {}/granted/file; echo r=$?", base.display());
    let dir = base.join("served");
    bundle(&dir, &socket, &["/bin/busybox", "sh", "-c", &script], serde_json::json!({"org.capexec.broker": grant}));
    let fifo = std::ffi::CString::new(dir.join("rootfs/go").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let id = format!("capexec-it-gone-{}", std::process::id());
    let _container = Container(id.clone());
    let run =
        Command::new("runc").args(["run", "--bundle"]).arg(&dir).arg(&id).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    agent.wait_line(&format!("container {id}: broker pid"));
    // Returns once the container waits at the FIFO: served, not yet reading.
    let mut go = std::fs::OpenOptions::new().write(true).open(dir.join("rootfs/go")).unwrap();
    drop(agent);
    go.write_all(b"go\n").unwrap();
    drop(go);
    let o = wait_output(run, T);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == "granted-content\nr=0\n", "after the agent's death: {}", text(&o));

    let dir = base.join("unserved");
    bundle(&dir, &socket, &["/bin/busybox", "true"], serde_json::json!({}));
    let id = format!("capexec-it-unserved-{}", std::process::id());
    let _container = Container(id.clone());
    let run =
        Command::new("runc").args(["run", "--bundle"]).arg(&dir).arg(&id).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let o = wait_output(run, T);
    assert!(!o.status.success(), "created without its agent: {}", text(&o));
    let o = Command::new("runc").args(["state", &id]).output().unwrap();
    assert!(!o.status.success(), "nothing of it is left: {}", text(&o));
}

// capexec-oci's own containers with the agent: the profile's notify rules
// hand the container's opens to `capexec agent`, which brokers the grants
// of the annotation (capexec-oci then runs no broker of its own): in the
// foreground (`run`), after create and start, and for a process `exec`
// adds, a granted host file is read, a write past the read grant and an
// ungranted file are refused. The listener is sent once the process
// waits at its gate, with the container's id and init in the state. With
// no agent listening, create fails and leaves nothing.
#[test]
fn capexec_oci_hands_notified_calls_to_the_agent() {
    require_root();
    let Scene { _cleanup, _left, base, root, dir } = scene("agent", &["ag", "gone"]);
    std::fs::create_dir_all(base.join("granted")).unwrap();
    std::fs::write(base.join("granted/file"), "granted-content\n").unwrap();
    std::fs::write(base.join("secret"), "SECRET\n").unwrap();
    let socket = PathBuf::from(format!("/run/capexec-it-oci-agent-{}.sock", std::process::id()));
    let agent = Agent::start(&socket);
    let script =
        format!("/bin/busybox cat {0}/granted/file; echo r=$?; echo x > {0}/granted/file; echo w=$?; /bin/busybox cat {0}/secret; echo s=$?", base.display());
    let grant = format!("[[broker.fs]]\npath = \"{}/granted/**\"\nrights = [\"read\"]\n", base.display());
    let want = "granted-content\nr=0\nw=1\ns=1\n";
    bundle(&dir, &socket, &["/bin/busybox", "sh", "-c", &script], serde_json::json!({"org.capexec.broker": grant}));
    let o = oci_run(&dir, "run-ag");
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == want, "run: {}\nagent:\n{}", text(&o), agent.said());
    agent.wait_line("container run-ag: broker pid");

    bundle(&dir, &socket, &["/bin/busybox", "sleep", "600"], serde_json::json!({"org.capexec.broker": grant}));
    oci_create(&root, &dir, "ag", None, &base.join("create.err"));
    // Sent during create, with the pid `state` reports.
    let line = agent.wait_line("container ag: broker pid");
    let (status, init) = oci_status(&root, "ag");
    assert_eq!(status, "created", "{line}");
    assert!(oci(&root, &["start", "ag"]).status.success());
    let o = oci(&root, &["exec", "ag", "/bin/busybox", "sh", "-c", &script]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == want, "exec: {}\nagent:\n{}", text(&o), agent.said());
    agent.wait_line("container ag: broker pid");
    assert!(std::fs::read_to_string(format!("/proc/{init}/status")).is_ok(), "the container still runs");
    let refusal = "granted/file\", O_WRONLY|O_CREAT|O_TRUNC): opening for writing needs the `write` right";
    if !agent.said().contains(refusal) {
        agent.wait_line(refusal);
    }

    drop(agent);
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "gone"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("connect to the seccomp agent at") && err.contains("start the agent first"), "{}", text(&o));
    let o = oci(&root, &["state", "gone"]);
    assert!(!o.status.success(), "nothing of it is left: {}", text(&o));
    assert!(!root.join("gone").exists());

    // An agent that dies once connected, before it has the listener (killed
    // by a prestart hook: hooks run after the connect, before the listener
    // is sent): create fails saying so, and leaves nothing.
    let agent = Agent::start(&socket);
    let pid = agent.child.id();
    let hook = base.join("kill-agent");
    // Its fds are closed once it is dead, zombie or not.
    std::fs::write(&hook, format!("#!/bin/sh\nkill -9 {pid}\nwhile [ -n \"$(ls /proc/{pid}/fd 2>/dev/null)\" ]; do sleep 0.01; done\n")).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    c["hooks"] = serde_json::json!({"prestart": [{"path": hook}]});
    std::fs::write(&config, c.to_string()).unwrap();
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "gone"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("send the container's seccomp listener to the agent at"), "{}", text(&o));
    assert!(!oci(&root, &["state", "gone"]).status.success() && !root.join("gone").exists(), "nothing of it is left");
    drop(agent);
}

/// A bundle: busybox as /bin/busybox in its rootfs, `runc spec`'s config
/// (what engines start from) without a terminal, and these changes.
fn runc_bundle(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("rootfs/bin/busybox")).expect("busybox-static (scripts/install-test-deps.sh installs it)");
    let _ = std::fs::remove_file(dir.join("config.json"));
    let o = Command::new("runc").args(["spec", "--bundle"]).arg(dir).output().expect("runc (scripts/install-test-deps.sh installs it)");
    assert!(o.status.success(), "runc spec: {}", text(&o));
    let path = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    edit(&mut c);
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

fn oci_run(dir: &Path, id: &str) -> std::process::Output {
    let child = Command::new(capexec_oci())
        .args(["run", "--bundle"])
        .arg(dir)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, T)
}

fn rootfs_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("rootfs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

// `capexec-oci run` applies runc's own default config: the container is
// the bundle's root filesystem (read-only, as the config says), with the
// config's user, hostname and capabilities, its masked and read-only
// paths, its bind mounts (read-only, and writable but not executable),
// capexec's seccomp allowlist and no_new_privs; the host's files are not
// there; its exit status is the program's; nothing of the setup is left in
// the root filesystem.
#[test]
fn capexec_oci_runs_a_bundle_as_its_config_says() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-run-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    std::fs::create_dir_all(base.join("data")).unwrap();
    std::fs::create_dir_all(base.join("out")).unwrap();
    std::fs::write(base.join("data/in"), "from-the-host\n").unwrap();
    let script = r#"B=/bin/busybox
echo id=$($B id -u):$($B id -g) host=$($B hostname)
$B grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status | $B tr -d '\t'
echo data=$($B cat /data/in)
( echo x > /data/in ) 2>/dev/null && echo data-write=yes || echo data-write=no
echo made > /out/made && echo out-write=yes
$B cp $B /out/bb && ( /out/bb true ) 2>/dev/null && echo out-exec=yes || echo out-exec=no
$B cat /proc/kallsyms > /dev/null 2>&1 && echo kallsyms=readable || echo kallsyms=masked
( echo x > /proc/sys/kernel/domainname ) 2>/dev/null && echo proc-sys=writable || echo proc-sys=read-only
( echo x > /written ) 2>/dev/null && echo root=writable || echo root=read-only
$B ls /etc/shadow > /dev/null 2>&1 && echo host-files=visible || echo host-files=absent
echo ping-range=$($B cat /proc/sys/net/ipv4/ping_group_range | $B tr '\t' ' ')
echo oom=$($B cat /proc/self/oom_score_adj)
exit 7"#;
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        c["hostname"] = "boxed".into();
        c["process"]["oomScoreAdj"] = 300.into();
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ping_group_range": "0 0"});
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/data", "type": "bind", "source": base.join("data"), "options": ["rbind", "ro"]}));
        mounts.push(serde_json::json!({"destination": "/out", "type": "bind", "source": base.join("out"), "options": ["rbind", "rw"]}));
    });
    let o = oci_run(&dir, "it-run");
    let out = String::from_utf8_lossy(&o.stdout);
    let want = "id=0:0 host=boxed\nCapEff:0000000020000420\nNoNewPrivs:1\nSeccomp:2\ndata=from-the-host\ndata-write=no\nout-write=yes\nout-exec=no\n\
                kallsyms=masked\nproc-sys=read-only\nroot=read-only\nhost-files=absent\nping-range=0 0\noom=300\n";
    assert_eq!((o.status.code(), out.as_ref()), (Some(7), want), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(base.join("out/made")).unwrap(), "made\n");
    assert_eq!(rootfs_entries(&dir), ["bin", "data", "dev", "out", "proc", "sys"]);
}

// `noNewPrivileges: false` (the runtime-spec's default, podman's and
// Kubernetes'): the flag is off, yet nothing else gives: the capabilities
// are the config's (not the CAP_SYS_ADMIN the setup held to install
// Landlock and the filters without the flag), the filters and Landlock are
// there (a signal to a process outside the container is refused, though
// it shares the host's pid namespace and holds CAP_KILL).
#[test]
fn capexec_oci_leaves_no_new_privs_off_when_the_config_says_so() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-nnp-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let script = "/bin/busybox grep -E '^(CapPrm|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | /bin/busybox tr -d '\\t'; \
                  /bin/busybox kill -0 1 2>/dev/null && echo signalled-host-init || echo signal-refused";
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        c["process"]["noNewPrivileges"] = false.into();
        c["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
    });
    let o = oci_run(&dir, "it-nnp");
    let want = "CapPrm:0000000020000420\nCapEff:0000000020000420\nCapBnd:0000000020000420\nNoNewPrivs:0\nSeccomp:2\nsignal-refused\n";
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(0), want), "{}", text(&o));
}

// A user namespace with the config's maps: the container's ids are the
// mapped ones on the host (what it writes belongs to them), nothing of the
// setup is left in the root filesystem (whose directories the mapped root
// could not write); each mount has the propagation the config asks, in the
// container's mount namespace only.
#[test]
fn capexec_oci_runs_a_container_in_a_user_namespace_with_the_configs_maps() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-userns-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    std::fs::create_dir_all(base.join("out")).unwrap();
    std::os::unix::fs::chown(base.join("out"), Some(100000), Some(100000)).unwrap();
    let script = r#"B=/bin/busybox
echo id=$($B id -u):$($B id -g) uid_map=$($B cat /proc/self/uid_map | $B tr -s ' ') gid_map=$($B cat /proc/self/gid_map | $B tr -s ' ')
echo made > /out/made && echo out-write=yes
$B grep -E ' /(shared|private) ' /proc/self/mountinfo | $B cut -d' ' -f5,7 | $B sed 's/master:[0-9]*/master/; s/shared:[0-9]*/shared/'
"#;
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        // A cgroup namespace too: the new user namespace may mount the cgroup tree only in one it owns.
        c["linux"]["namespaces"].as_array_mut().unwrap().extend([serde_json::json!({"type": "user"}), serde_json::json!({"type": "cgroup"})]);
        c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/out", "type": "bind", "source": base.join("out"), "options": ["rbind", "rw"]}));
        mounts.push(serde_json::json!({"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]}));
        mounts.push(serde_json::json!({"destination": "/private", "type": "tmpfs", "source": "tmpfs", "options": ["private"]}));
    });
    // The image's root is the mapped root, as engines make it (podman
    // chowns an image's copy for its user namespace): mount points are made
    // in it from inside.
    std::os::unix::fs::chown(dir.join("rootfs"), Some(100000), Some(100000)).unwrap();
    let o = oci_run(&dir, "it-userns");
    let out = String::from_utf8_lossy(&o.stdout);
    let want = "id=0:0 uid_map= 0 100000 65536 gid_map= 0 100000 65536\nout-write=yes\n/shared shared\n/private -\n";
    assert_eq!((o.status.code(), out.as_ref()), (Some(0), want), "{}", text(&o));
    let made = std::fs::metadata(base.join("out/made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (100000, 100000), "written as the mapped root");
    assert_eq!(rootfs_entries(&dir), ["bin", "dev", "out", "private", "proc", "shared", "sys"]);
}

// The config's device nodes are made with its numbers, mode and owner; one
// its device rules deny is there but cannot be opened, one they allow can.
#[test]
fn capexec_oci_makes_the_configs_devices_usable_as_its_rules_say() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-devices-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let script = r#"B=/bin/busybox
for d in fuse loop-control fifo; do echo $d $($B stat -c '%F %t:%T %a %u:%g' /dev/$d); done
: < /dev/fuse && echo fuse=opened
( : < /dev/loop-control ) 2>/dev/null && echo loop-control=opened || echo loop-control=refused
"#;
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        c["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 0, "gid": 5},
            {"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 0o600},
            {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o620},
        ]);
        c["linux"]["resources"]["devices"] =
            serde_json::json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]);
    });
    let o = oci_run(&dir, "it-devices");
    let out = String::from_utf8_lossy(&o.stdout);
    let want = "fuse character special file a:e5 640 0:5\nloop-control character special file a:ed 600 0:0\nfifo fifo 0:0 620 0:0\n\
                fuse=opened\nloop-control=refused\n";
    assert_eq!((o.status.code(), out.as_ref()), (Some(0), want), "{}", text(&o));
}

// What capexec-oci cannot run ends before anything starts, with the field
// or the path named, exit status 125; a setup that fails halfway leaves
// nothing in the root filesystem.
#[test]
fn capexec_oci_says_what_it_cannot_run() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-bad-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let dir = base.join("bundle");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: [(&str, Edit, &str); 4] = [
        (
            "hooks",
            Box::new(|c| c["hooks"] = serde_json::json!({"createContainer": [{"path": "true"}]})),
            "`hooks.createContainer[0].path`: true is not an absolute path",
        ),
        ("rootfs", Box::new(|c| c["root"]["path"] = "nowhere".into()), "the root filesystem"),
        (
            "maps",
            Box::new(|c| c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 1}])),
            "`linux.uidMappings`: id mappings need a user namespace",
        ),
        (
            "source",
            Box::new(|c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({"destination": "/x", "type": "bind", "source": "/nonexistent-capexec-source", "options": ["rbind"]}))
            }),
            "/nonexistent-capexec-source, the source of /x, does not exist on the host",
        ),
    ];
    for (tag, edit, want) in cases {
        runc_bundle(&dir, |c| {
            c["process"]["args"] = serde_json::json!(["/bin/busybox", "true"]);
            edit(c);
        });
        let before = rootfs_entries(&dir);
        let o = oci_run(&dir, &format!("it-bad-{tag}"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(125) && err.contains(want), "{tag}: {}", text(&o));
        let after = rootfs_entries(&dir);
        assert!(after.iter().all(|e| before.contains(e) || ["dev", "proc", "sys", "x"].contains(&e.as_str())), "{tag}: left {after:?}");
    }
}

/// capexec-oci's containers of a test, deleted by force on drop (a failed
/// assertion must not leave them running).
struct Deleted(PathBuf, &'static [&'static str]);

impl Drop for Deleted {
    fn drop(&mut self) {
        for id in self.1 {
            let _ = Command::new(capexec_oci()).arg("--root").arg(&self.0).args(["delete", "--force", id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

/// `capexec-oci --root ROOT ARGS...`, its output collected.
fn oci(root: &Path, args: &[&str]) -> std::process::Output {
    let child =
        Command::new(capexec_oci()).arg("--root").arg(root).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_output(child, T)
}

/// `capexec-oci --root ROOT create --bundle DIR ID`, waited for, which must
/// succeed. Its streams, which the container keeps, go to files (a pipe
/// would see no EOF while the container lives): stdout to `out` (or
/// nowhere), stderr to `err`, which the failure message shows.
fn oci_create(root: &Path, dir: &Path, id: &str, out: Option<&Path>, err: &Path) {
    let stdout = out.map_or_else(Stdio::null, |o| Stdio::from(std::fs::File::create(o).unwrap()));
    let create = Command::new(capexec_oci())
        .arg("--root")
        .arg(root)
        .args(["create", "--bundle"])
        .arg(dir)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(std::fs::File::create(err).unwrap())
        .spawn()
        .unwrap();
    let o = wait_output(create, T);
    assert!(o.status.success(), "create {id}: {}", std::fs::read_to_string(err).unwrap());
}

fn oci_status(root: &Path, id: &str) -> (String, i64) {
    let o = oci(root, &["state", id]);
    assert!(o.status.success(), "state {id}: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (v["status"].as_str().unwrap().to_owned(), v["pid"].as_i64().unwrap())
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let end = Instant::now() + T;
    while !ok() {
        assert!(Instant::now() < end, "{what} within {T:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// The lifecycle engines call: create sets the container up and leaves its
// program waiting (nothing of it runs), start lets it exec, kill signals
// it through its init, delete removes what is stopped; a duplicate id, a
// start of a running container and a delete of a running one are refused
// without touching it; delete --force leaves no process; a create that
// fails leaves no state; a stale state directory is removed by delete
// --force.
#[test]
fn capexec_oci_create_start_kill_delete() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-life-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let root = base.join("state");
    let _left = Deleted(root.clone(), &["life", "forced"]);
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", "echo started; exec /bin/busybox sleep 600"]);
    });
    let out = base.join("out");
    // Each create's output in a file of its own: the container keeps
    // writing to the one it was given.
    let create_to = |id: &str, out: &Path| {
        let f = std::fs::File::create(out).unwrap();
        let child = Command::new(capexec_oci())
            .arg("--root")
            .arg(&root)
            .args(["create", "--bundle"])
            .arg(&dir)
            .arg("--pid-file")
            .arg(base.join("pid"))
            .arg(id)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        wait_output(child, T)
    };
    let create = |id: &str| create_to(id, &out);
    let o = create("life");
    assert!(o.status.success(), "create: {}", std::fs::read_to_string(&out).unwrap());
    let (status, pid) = oci_status(&root, "life");
    assert_eq!(status, "created");
    assert_eq!(std::fs::read_to_string(base.join("pid")).unwrap(), pid.to_string());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "", "the program waits for start");
    // Refused, the container untouched.
    let dup = create_to("life", &base.join("out-dup"));
    assert!(!dup.status.success() && std::fs::read_to_string(base.join("out-dup")).unwrap().contains("container life exists already"));
    assert_eq!(oci_status(&root, "life"), ("created".to_owned(), pid));

    let o = oci(&root, &["start", "life"]);
    assert!(o.status.success(), "start: {}", text(&o));
    wait_until("the program's output", || std::fs::read_to_string(&out).unwrap() == "started\n");
    assert_eq!(oci_status(&root, "life"), ("running".to_owned(), pid));
    let o = oci(&root, &["ps", "--format", "json", "life"]);
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(pids.len() == 2 && pids.contains(&pid), "init and the program: {pids:?}");
    for (args, want) in [(&["start", "life"][..], "only a created container starts"), (&["delete", "life"][..], "or delete it with --force")] {
        let o = oci(&root, args);
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(want), "{args:?}: {}", text(&o));
    }
    let o = oci(&root, &["kill", "life", "TERM"]);
    assert!(o.status.success(), "kill: {}", text(&o));
    wait_until("the container to stop", || oci_status(&root, "life").0 == "stopped");
    // Reaped by whoever inherited init (PID 1 here), in its own time.
    wait_until("no process left", || pids.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()));
    let o = oci(&root, &["delete", "life"]);
    assert!(o.status.success() && !root.join("life").exists(), "delete: {}", text(&o));
    let o = oci(&root, &["state", "life"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("container life does not exist"), "{}", text(&o));

    // Running, deleted by force: nothing of it is left.
    assert!(create_to("forced", &base.join("out-forced")).status.success());
    assert!(oci(&root, &["start", "forced"]).status.success());
    let (_, pid) = oci_status(&root, "forced");
    let o = oci(&root, &["delete", "--force", "forced"]);
    assert!(o.status.success() && !root.join("forced").exists(), "delete --force: {}", text(&o));
    wait_until("no process left", || !Path::new(&format!("/proc/{pid}")).exists());

    // A create that fails: no state, nothing in the root filesystem.
    let before = rootfs_entries(&dir);
    runc_bundle(&dir, |c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"destination": "/x", "type": "bind", "source": "/nonexistent-capexec-source", "options": ["rbind"]}))
    });
    let o = create_to("failed", &base.join("out-failed"));
    assert!(!o.status.success() && !root.join("failed").exists(), "{}", std::fs::read_to_string(base.join("out-failed")).unwrap());
    assert!(rootfs_entries(&dir).iter().all(|e| before.contains(e) || e == "x"), "{:?}", rootfs_entries(&dir));

    // A stale directory (a create that ended before it wrote the state).
    std::fs::create_dir_all(root.join("stale")).unwrap();
    let o = oci(&root, &["state", "stale"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("delete --force stale"), "{}", text(&o));
    assert!(oci(&root, &["delete", "--force", "stale"]).status.success() && !root.join("stale").exists());
}

/// podman with capexec-oci as its runtime, on a root filesystem of busybox
/// and its applets' links. What podman adds that capexec-oci does not
/// apply yet is turned off: its network (a namespace by path), its pids
/// limit (a cgroup); and root here lacks CAP_SYS_RESOURCE, so the limits
/// podman would raise are given.
/// `exec` puts a process into a running container as its program is:
/// the same namespaces, capabilities, no_new_privs and seccomp filters, in
/// a Landlock domain (of its own: it cannot signal the container's other
/// processes, which CAP_KILL alone would let it). Its status comes back;
/// `--detach` returns while it runs and names it in the pid file; a stopped
/// container and a missing command are refused, said so.
#[test]
fn capexec_oci_exec_enters_the_container_confined_as_its_program() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-exec-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let root = base.join("state");
    let _left = Deleted(root.clone(), &["ex"]);
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "600"]));
    oci_create(&root, &dir, "ex", None, &base.join("create.err"));
    assert!(oci(&root, &["start", "ex"]).status.success());
    let (_, init) = oci_status(&root, "ex");
    let program: i64 = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap().trim().parse().unwrap();
    let host_view = |pid: i64| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let mut lines: Vec<String> =
            status.lines().filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs") || l.starts_with("Seccomp")).map(|l| l.replace('\t', "")).collect();
        for ns in ["mnt", "pid", "ipc", "uts", "net", "cgroup", "user"] {
            lines.push(std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap().to_string_lossy().into_owned());
        }
        lines.join("\n")
    };
    let script = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status | tr -d '\\t'; \
                  for n in mnt pid ipc uts net cgroup user; do busybox readlink /proc/self/ns/$n; done; \
                  kill -0 1 2>/dev/null && echo signalled-the-program; \
                  echo fds: $(busybox ls /proc/self/fd); exit 7";
    let o = oci(&root, &["exec", "ex", "/bin/busybox", "sh", "-c", script]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    // Nothing of the launch's reaches it: not the pidfd of the container's
    // init it entered by, nor a pipe (ls's own directory is its 3).
    let want = format!("{}\nfds: 0 1 2 3", host_view(program));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim_end(), want, "{}", text(&o));

    // Detached: back at once, the pid file names a process of the container.
    let pid_file = base.join("exec.pid");
    let detached = Command::new(capexec_oci())
        .arg("--root")
        .arg(&root)
        .args(["exec", "--detach", "--pid-file"])
        .arg(&pid_file)
        .args(["ex", "busybox", "sleep", "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(base.join("exec.err")).unwrap())
        .spawn()
        .unwrap();
    let o = wait_output(detached, T);
    assert!(o.status.success(), "exec --detach: {}", std::fs::read_to_string(base.join("exec.err")).unwrap());
    let standing: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let sleeper: i64 = std::fs::read_to_string(format!("/proc/{standing}/task/{standing}/children")).unwrap().trim().parse().unwrap();
    let o = oci(&root, &["ps", "--format", "json", "ex"]);
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(pids.contains(&sleeper) && !pids.contains(&standing), "{pids:?}, exec'd {sleeper} under {standing}");

    let o = oci(&root, &["exec", "ex"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("say what to run"), "{}", text(&o));
    let o = oci(&root, &["exec", "ex", "no-such-program"]);
    assert!(o.status.code() == Some(1) && String::from_utf8_lossy(&o.stderr).contains("no-such-program: executable file not found in $PATH"), "{}", text(&o));
    assert!(oci(&root, &["kill", "ex", "KILL"]).status.success());
    wait_until("the container to stop", || oci_status(&root, "ex").0 == "stopped");
    wait_until("the exec'd process to go with it", || !Path::new(&format!("/proc/{sleeper}")).exists());
    let o = oci(&root, &["exec", "ex", "/bin/busybox", "true"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("container ex is stopped"), "{}", text(&o));
}

/// A test's scratch: /var/tmp/capexec-it-oci-TAG-PID (removed on drop),
/// the capexec-oci state root in it (the containers `ids` deleted by force
/// on drop, first) and the bundle's path.
struct Scene {
    base: PathBuf,
    root: PathBuf,
    dir: PathBuf,
    _left: Deleted,
    _cleanup: Scratch,
}

fn scene(tag: &str, ids: &'static [&'static str]) -> Scene {
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-{tag}-{}", std::process::id()));
    let root = base.join("state");
    Scene { dir: base.join("bundle"), _left: Deleted(root.clone(), ids), root, _cleanup: Scratch(vec![base.clone()]), base }
}

/// `--preserve-fds N`: fds 3 .. 3+N of `create` (and of `exec`) are the
/// program's, as they are, and nothing more; without them open, it says
/// which is missing.
#[test]
fn capexec_oci_passes_preserved_fds_on_to_the_program() {
    require_root();
    // Dropped in reverse: the containers go before their directory.
    let Scene { _cleanup, _left, base, root, dir } = scene("fds", &["fds"]);
    let script = "echo created-3 >&3; echo fds: $(busybox ls /proc/self/fd); exec busybox sleep 600";
    runc_bundle(&dir, |c| c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]));
    std::fs::write(base.join("in"), "from-4\n").unwrap();
    // The shell opens 3 (and 4) for the runtime, as an engine would.
    let sh = |line: &str| -> std::process::Output {
        let child = Command::new("sh")
            .arg("-c")
            .arg(line)
            .arg(capexec_oci())
            .arg(&root)
            .arg(&dir)
            .arg(&base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_output(child, T)
    };
    let o = sh(r#"exec "$0" --root "$1" create --bundle "$2" --preserve-fds 1 fds 3>"$3/created" >"$3/create.out" 2>&1"#);
    assert!(o.status.success(), "create: {} {}", text(&o), std::fs::read_to_string(base.join("create.out")).unwrap_or_default());
    assert!(oci(&root, &["start", "fds"]).status.success());
    wait_until("the program to write to its fd 3", || std::fs::read_to_string(base.join("created")).is_ok_and(|s| s == "created-3\n"));
    wait_until("the program to list its fds", || std::fs::read_to_string(base.join("create.out")).is_ok_and(|s| s.contains("fds:")));
    assert_eq!(std::fs::read_to_string(base.join("create.out")).unwrap(), "fds: 0 1 2 3 4\n", "ls's own directory is its 4");

    let o = sh(
        r#"exec "$0" --root "$1" exec --preserve-fds 2 fds /bin/busybox sh -c 'echo via-3 >&3; busybox cat <&4; echo fds: $(busybox ls /proc/self/fd)' 3>"$3/exec" 4<"$3/in""#,
    );
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(0), "from-4\nfds: 0 1 2 3 4 5\n"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(base.join("exec")).unwrap(), "via-3\n");
    let o = sh(r#"exec "$0" --root "$1" exec --preserve-fds 2 fds /bin/busybox true 3>/dev/null"#);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--preserve-fds 2: fd 4 is not open here"), "{}", text(&o));
}

/// The annotation's preopens: a TCP listener on the host's loopback (the
/// container has a network namespace of its own, without a route to it)
/// and a host file outside the container's view, opened by capexec-oci and
/// given as fds 3 and 4 with systemd's protocol; the listener takes
/// connections while the container holds it, none once it is gone. A
/// preopened directory is refused by name.
#[test]
fn capexec_oci_preopens_what_the_annotation_declares() {
    require_root();
    // Dropped in reverse: the containers go before their directory.
    let Scene { _cleanup, _left, base, root, dir } = scene("preopen", &["pre"]);
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("host.txt"), "from-the-host\n").unwrap();
    let port = unused_port();
    let preopen =
        format!("[[preopen.listen]]\naddress = 'tcp:127.0.0.1:{port}'\nname = 'web'\n[[preopen.file]]\npath = '{}'\n", base.join("host.txt").display());
    let script = "echo fds=$LISTEN_FDS names=$LISTEN_FDNAMES; busybox readlink /proc/self/fd/3 | busybox cut -d: -f1; busybox cat <&4; \
                  busybox cat /var/tmp/*/host.txt 2>/dev/null || echo not-in-view; \
                  ( echo x > /proc/self/fd/4 ) 2>/dev/null && echo reopened-for-write || echo no-reopen; exec busybox sleep 600";
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        c["annotations"] = serde_json::json!({ capexec_decl::PREOPEN_ANNOTATION: preopen });
    });
    let out = base.join("out");
    oci_create(&root, &dir, "pre", Some(&out), &base.join("create.err"));
    assert!(oci(&root, &["start", "pre"]).status.success());
    wait_until("the program's report", || std::fs::read_to_string(&out).is_ok_and(|s| s.contains("reopen")));
    // The read-only file is not written through its magic link either.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "fds=2 names=web:file0\nsocket\nfrom-the-host\nnot-in-view\nno-reopen\n");
    assert_eq!(std::fs::read_to_string(base.join("host.txt")).unwrap(), "from-the-host\n");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the container's preopened listener takes connections");
    assert!(oci(&root, &["delete", "--force", "pre"]).status.success());
    wait_until("the listener to go with the container", || std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    runc_bundle(&dir, |c| c["annotations"] = serde_json::json!({ capexec_decl::PREOPEN_ANNOTATION: "[[preopen.directory]]\npath = '/etc'\n" }));
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "pre"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("a container sees a host directory through a bind mount"), "{}", text(&o));
}

/// A pid namespace given by path (a pod's, which its containers share): the
/// container's init is born in it, and so its program; `kill --all` ends
/// the container's own processes, not the namespace's first process (the
/// pod's pause), which is not the container's. The pod's cgroup namespace,
/// given by path too, is the program's.
/// A child of the test's own, killed on drop (a namespace holder's sleep
/// with it: `--kill-child`).
struct Ends(std::process::Child);

impl Drop for Ends {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pod's pause: `unshare NAMESPACES --fork --kill-child sleep 600`, and
/// the pid of its sleep, in those namespaces, once it is there.
fn pause(namespaces: &[&str]) -> (Ends, i32) {
    let unshare =
        Command::new("unshare").args(namespaces).args(["--fork", "--kill-child", "sleep", "600"]).stdin(Stdio::null()).spawn().expect("unshare (util-linux)");
    let pid = unshare.id();
    let ends = Ends(unshare);
    let children = format!("/proc/{pid}/task/{pid}/children");
    wait_until("the pause process", || std::fs::read_to_string(&children).is_ok_and(|c| !c.trim().is_empty()));
    let sleeper = std::fs::read_to_string(&children).unwrap().trim().parse().unwrap();
    (ends, sleeper)
}

#[test]
fn capexec_oci_launches_into_pid_and_cgroup_namespaces_given_by_path() {
    require_root();
    // Dropped in reverse: the containers go before their directory.
    let Scene { _cleanup, _left, base, root, dir } = scene("pidns", &["pidns"]);
    // The pause: pid 1 of a new pid namespace, a child of `unshare`.
    let (mut pause, sleeper) = pause(&["--pid", "--cgroup"]);
    // Alive: there, not a zombie, not exiting (PF_EXITING in the flags of
    // /proc/PID/stat: a killed pid namespace init waits in its exit, still
    // sleeping, until the namespace's other processes are reaped), and
    // unshare, which exits once its child died, still waits for it.
    let alive = |p: &mut Ends| {
        let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, r)| r.split(' ').collect()).unwrap_or_default();
        let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(u64::MAX);
        fields.first().is_some_and(|s| *s != "Z") && flags & 0x4 == 0 && matches!(p.0.try_wait(), Ok(None))
    };
    let pod_ns = std::fs::read_link(format!("/proc/{sleeper}/ns/pid")).unwrap();
    let pod_cgroup_ns = std::fs::read_link(format!("/proc/{sleeper}/ns/cgroup")).unwrap();
    assert_ne!(pod_cgroup_ns, std::fs::read_link("/proc/self/ns/cgroup").unwrap());
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!([
            "/bin/busybox",
            "sh",
            "-c",
            "busybox readlink /proc/self/ns/pid; busybox readlink /proc/self/ns/cgroup; busybox kill -0 1 2>/dev/null && echo signalled-the-pause || echo signal-refused; exec busybox sleep 600"
        ]);
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
        ns.push(serde_json::json!({"type": "cgroup", "path": format!("/proc/{sleeper}/ns/cgroup")}));
        for n in ns {
            if n["type"] == "pid" {
                n["path"] = format!("/proc/{sleeper}/ns/pid").into();
            }
        }
    });
    let out = base.join("out");
    oci_create(&root, &dir, "pidns", Some(&out), &base.join("create.err"));
    let (_, init) = oci_status(&root, "pidns");
    assert_eq!(std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap(), pod_ns, "init is born in the pod's pid namespace");
    assert!(oci(&root, &["start", "pidns"]).status.success());
    wait_until("the program's report", || std::fs::read_to_string(&out).is_ok_and(|s| s.contains("signal")));
    // The pod's pause (its pid 1) is outside the container's Landlock domain: no signal reaches it.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("{}\n{}\nsignal-refused\n", pod_ns.display(), pod_cgroup_ns.display()));
    assert!(oci(&root, &["kill", "--all", "pidns", "KILL"]).status.success());
    wait_until("the container to stop", || oci_status(&root, "pidns").0 == "stopped");
    assert!(oci(&root, &["delete", "pidns"]).status.success());
    assert!(alive(&mut pause), "the pod's pause outlives the container's kill --all and delete");
}

/// Without a mount namespace in its config a container lives in the
/// runtime's (its /proc/PID/ns/mnt is the host's, as the runtime-spec says),
/// and with one given by path in that one; either way its view is built in
/// a private namespace that its init keeps, and nothing is mounted in the
/// one it lives in. Its program, with CAP_SYS_CHROOT and CAP_SYS_ADMIN and a
/// profile that allows every call, reaches no host file: not by path, past
/// `..`, by a chroot escape, through /proc/1/root (no pid namespace: the
/// host's init), nor by setns into /proc/self/ns/mnt. `exec` lands in the
/// view too.
#[test]
fn capexec_oci_lives_in_the_mount_namespace_its_config_names_and_keeps_its_view() {
    require_root();
    let Scene { _cleanup, _left, base, root, dir } = scene("mntns", &["host-mnt", "path-mnt"]);
    let marker = base.join("marker");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(&marker, "host secret").unwrap();
    let bundle = |c: &mut serde_json::Value, script: &str, mount_ns: Option<String>| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = serde_json::json!(["CAP_KILL", "CAP_SYS_CHROOT", "CAP_SYS_ADMIN"]);
        }
        c["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"});
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "mount" && n["type"] != "pid");
        if let Some(path) = mount_ns {
            ns.push(serde_json::json!({"type": "mount", "path": path}));
        }
        // The probe, with the host's libraries (/lib and /lib64 lead into /usr).
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}));
        mounts.push(serde_json::json!({"destination": "/probe", "type": "bind", "source": probe(), "options": ["bind", "ro"]}));
    };
    let prepare_rootfs = || {
        for l in ["lib", "lib64"] {
            let _ = std::os::unix::fs::symlink(format!("usr/{l}"), dir.join("rootfs").join(l));
        }
    };
    let ours = |mountinfo: &str| mountinfo.lines().filter(|l| l.contains(base.to_str().unwrap())).map(str::to_owned).collect::<Vec<_>>();
    let host_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();

    // The runtime's namespace.
    let script = format!("/probe foreign-mount-ns {} /dev/shm; echo probe-exit=$?; exec busybox sleep 600", marker.display());
    runc_bundle(&dir, |c| bundle(c, &script, None));
    prepare_rootfs();
    let out = base.join("out");
    oci_create(&root, &dir, "host-mnt", Some(&out), &base.join("create.err"));
    let (_, init) = oci_status(&root, "host-mnt");
    assert_eq!(std::fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap(), host_ns, "init lives in the runtime's mount namespace");
    assert_eq!(ours(&std::fs::read_to_string("/proc/self/mountinfo").unwrap()), Vec::<String>::new(), "nothing mounted in the host's namespace");
    assert!(oci(&root, &["start", "host-mnt"]).status.success());
    wait_until("the probe's report", || std::fs::read_to_string(&out).is_ok_and(|s| s.contains("probe-exit=")));
    let report = std::fs::read_to_string(&out).unwrap();
    assert!(report.contains("probe-exit=0") && !report.contains("ESCAPED"), "{report}");
    assert!(report.contains("BLOCKED setns into /proc/self/ns/mnt (nstype 0x20000)") && report.contains("the walk up ends at the view's root"), "{report}");
    assert!(report.contains(&format!("BLOCKED open init's fd 0 (/proc/{init}/fd/0)")), "{report}");
    assert!(report.contains("INFO unshare(CLONE_NEWNS): rc 0") && report.contains("BLOCKED open the host's file after unshare(CLONE_NEWNS)"), "{report}");
    let program: i64 = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap().trim().parse().unwrap();
    assert_eq!(std::fs::read_link(format!("/proc/{program}/ns/mnt")).unwrap(), host_ns);
    let o = oci(
        &root,
        &["exec", "host-mnt", "/bin/busybox", "sh", "-c", &format!("busybox readlink /proc/self/ns/mnt; busybox ls /; busybox cat {}", marker.display())],
    );
    let seen = String::from_utf8_lossy(&o.stdout);
    assert!(seen.starts_with(&format!("{}\n", host_ns.display())) && seen.contains("probe\n") && !seen.contains("host secret"), "{}", text(&o));
    assert!(oci(&root, &["kill", "host-mnt", "KILL"]).status.success());
    wait_until("the container to stop", || oci_status(&root, "host-mnt").0 == "stopped");
    assert!(oci(&root, &["delete", "host-mnt"]).status.success());

    // Another's, by path: a holder of a mount namespace of its own.
    let (_holder, sleeper) = pause(&["--mount"]);
    wait_until("the holder's own namespace", || std::fs::read_link(format!("/proc/{sleeper}/ns/mnt")).is_ok_and(|n| n != host_ns));
    let held = std::fs::read_link(format!("/proc/{sleeper}/ns/mnt")).unwrap();
    // Its root and what is at the scene's paths: the rest of a copy of the
    // host's table follows the host (a test beside this one that adds a
    // network namespace makes /run/netns shared there).
    let seen_in = |pid: i32| -> Vec<String> {
        let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        let mine = |point: &str| point == "/" || point.starts_with(base.to_str().unwrap()) || point.starts_with(dir.to_str().unwrap());
        info.lines().filter(|l| l.split(' ').nth(4).is_some_and(mine)).map(str::to_owned).collect()
    };
    let mounts_before = seen_in(sleeper);
    runc_bundle(&dir, |c| bundle(c, "exec busybox sleep 600", Some(format!("/proc/{sleeper}/ns/mnt"))));
    oci_create(&root, &dir, "path-mnt", None, &base.join("create.err"));
    let (_, init) = oci_status(&root, "path-mnt");
    assert_eq!(std::fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap(), held, "init lives in the namespace the path names");
    assert_eq!(seen_in(sleeper), mounts_before, "nothing mounted in it");
    assert!(oci(&root, &["start", "path-mnt"]).status.success());
    let o = oci(&root, &["exec", "path-mnt", "/bin/busybox", "ls", "/"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("probe\n"), "{}", text(&o));
    assert!(oci(&root, &["delete", "--force", "path-mnt"]).status.success());
}

/// A pod's user namespace, entered by path (as containerd gives it for a
/// pod with its own ids), with the pod's pid namespace, which that user
/// namespace owns: init is born in both (a helper enters them for it), the
/// maps are the namespace's (read from /proc/PID/uid_map: the config gives
/// none), the program is root inside and 100000 on the host, and can write
/// where the namespace's root may; the pod's pause gets no signal from it;
/// `exec` enters the same. Maps in the config that differ from the
/// namespace's are refused.
#[test]
fn capexec_oci_enters_a_user_namespace_given_by_path() {
    require_root();
    let Scene { _cleanup, _left, base, root, dir } = scene("userns", &["userns", "userns-maps"]);
    let (pause, sleeper) = pause(&["--user", "--pid"]);
    let unshare = pause.0.id();
    let children = format!("/proc/{unshare}/task/{unshare}/children");
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{sleeper}/{map}"), "0 100000 65536\n").unwrap();
    }
    let pod_user = std::fs::read_link(format!("/proc/{sleeper}/ns/user")).unwrap();
    let pod_pid = std::fs::read_link(format!("/proc/{sleeper}/ns/pid")).unwrap();
    let with_maps = |maps: Option<serde_json::Value>| {
        move |c: &mut serde_json::Value| {
            c["process"]["args"] = serde_json::json!([
                "/bin/busybox",
                "sh",
                "-c",
                "busybox id -u; busybox cat /proc/self/uid_map; busybox touch /tmp/made && echo wrote; busybox kill -0 1 2>/dev/null && echo signalled-the-pause || echo signal-refused; exec busybox sleep 600"
            ]);
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "pid");
            ns.push(serde_json::json!({"type": "user", "path": format!("/proc/{sleeper}/ns/user")}));
            ns.push(serde_json::json!({"type": "pid", "path": format!("/proc/{sleeper}/ns/pid")}));
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}));
            if let Some(m) = maps {
                c["linux"]["uidMappings"] = m.clone();
                c["linux"]["gidMappings"] = m;
            }
        }
    };
    runc_bundle(&dir, with_maps(None));
    // The image's files belong to the host's root, whom the pod's namespace
    // does not map: its root cannot make a mount point there, and is told why.
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "userns"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("chown the root filesystem to the container's root"), "{}", text(&o));
    // Owned by the pod's root, they do.
    for p in walk(&dir.join("rootfs")) {
        std::os::unix::fs::lchown(&p, Some(100000), Some(100000)).unwrap();
    }
    let out = base.join("out");
    oci_create(&root, &dir, "userns", Some(&out), &base.join("create.err"));
    let (_, init) = oci_status(&root, "userns");
    assert_eq!(std::fs::read_link(format!("/proc/{init}/ns/user")).unwrap(), pod_user, "init is born in the pod's user namespace");
    assert_eq!(std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap(), pod_pid, "and in its pid namespace");
    assert!(oci(&root, &["start", "userns"]).status.success());
    wait_until("the program's report", || std::fs::read_to_string(&out).is_ok_and(|s| s.contains("signal")));
    let report = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    assert_eq!(lines, ["0", "0     100000      65536", "wrote", "signal-refused"], "{report}");
    let program: i64 = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap().trim().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{program}/status")).unwrap();
    assert!(status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Uid:", "100000", "100000", "100000", "100000"]), "{status}");
    let o = oci(&root, &["exec", "userns", "/bin/busybox", "sh", "-c", "busybox id -u; busybox readlink /proc/self/ns/user"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("0\n{}\n", pod_user.display()), "{}", text(&o));
    assert!(oci(&root, &["delete", "--force", "userns"]).status.success());

    // The config's maps must be the namespace's.
    runc_bundle(&dir, with_maps(Some(serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]))));
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "userns-maps"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("`linux.uidMappings`: differs from the maps of the user namespace at"),
        "{}",
        text(&o)
    );
    assert!(std::fs::read_to_string(&children).is_ok_and(|c| c.trim() == sleeper.to_string()), "the pause outlives the containers");
}

/// A container with a terminal: `create --console-socket` sends the
/// master of a pseudo-terminal of the container's own devpts, whose
/// terminal side is the program's stdio and controlling terminal; what is
/// typed reaches the program, what it prints comes back. Without the socket
/// the terminal is refused by name.
#[test]
fn capexec_oci_gives_a_terminal_through_the_console_socket() {
    use std::io::Read;
    require_root();
    // Dropped in reverse: the containers go before their directory.
    let Scene { _cleanup, _left, base, root, dir } = scene("tty", &["tty"]);
    // tty_nr of /proc/PID/stat: the controlling terminal, 136:0 (pts 0) is 34816.
    // Nothing of the launch is left to it: not the console socket, not the master (ls's directory is its 3).
    let script = "echo on=$(busybox tty) ctty=$(busybox cut -d' ' -f7 /proc/self/stat) fds=$(busybox ls /proc/self/fd); read x; echo got=$x";
    runc_bundle(&dir, |c| {
        c["process"]["terminal"] = true.into();
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
    });
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "tty"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("give --console-socket"), "{}", text(&o));

    let socket = base.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let create = Command::new(capexec_oci())
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(&dir)
        .arg("--console-socket")
        .arg(&socket)
        .arg("tty")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(base.join("create.err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + T;
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("no connection to the console socket: {e}: {}", std::fs::read_to_string(base.join("create.err")).unwrap()),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let mut name = [0u8; 64];
    let got = capexec_sys::recv_fds(std::os::fd::AsRawFd::as_raw_fd(&conn), &mut name, 0).unwrap();
    let sent = String::from_utf8_lossy(&name[..got.bytes]).into_owned();
    assert_eq!((got.fds.len(), sent.as_str()), (1, "/dev/pts/0"), "the master, named by its terminal's path in the container's own devpts");
    let mut master = std::fs::File::from(got.fds.into_iter().next().unwrap());
    let o = wait_output(create, T);
    assert!(o.status.success(), "create: {}", std::fs::read_to_string(base.join("create.err")).unwrap());
    assert!(oci(&root, &["start", "tty"]).status.success());
    master.write_all(b"hello\n").unwrap();
    let mut seen = String::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    while !seen.contains("got=hello") {
        match rx.recv_timeout(T) {
            Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
            Err(_) => panic!("the program did not answer through its terminal: {seen:?}"),
        }
    }
    assert!(seen.contains("on=/dev/pts/0 ctty=34816 fds=0 1 2 3\r\n"), "{seen:?}");
    wait_until("the container to stop", || oci_status(&root, "tty").0 == "stopped");
}

fn podman(args: &[&str]) -> std::process::Output {
    let child = Command::new("podman")
        .arg("--runtime")
        .arg(capexec_oci())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podman (scripts/install-test-deps.sh installs it)");
    wait_output(child, T)
}

const PODMAN_RUN: &[&str] = &["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];

/// `linux.resources`' pids, memory, cpu and cpuset limits hold: the
/// container's init and program are born in cgroups of their own with
/// those limits (v1 on these hybrid machines), a fork past the pids limit
/// fails inside, the program runs on the one cpu it is given, and `delete`
/// removes the cgroups. A block I/O throttle (v1 blkio) and a huge page
/// limit (the unified hierarchy has hugetlb here) are set too.
#[test]
fn capexec_oci_sets_pids_memory_and_cpu_limits_in_cgroups_of_its_own() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-cgroups-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let root = base.join("state");
    let _left = Deleted(root.clone(), &["limited"]);
    let dir = base.join("bundle");
    let name = format!("it-{}", std::process::id());
    // A disk of the machine (its major:minor), for the throttle.
    let disk = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| !["loop", "ram", "zram"].iter().any(|p| e.file_name().to_string_lossy().starts_with(p)))
        .find_map(|e| std::fs::read_to_string(e.path().join("dev")).ok())
        .expect("a disk in /sys/block");
    let (major, minor) = disk.trim().split_once(':').map(|(a, b)| (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap())).unwrap();
    runc_bundle(&dir, |c| {
        let script = "/bin/busybox grep Cpus_allowed_list /proc/self/status; for i in 1 2 3 4 5 6; do /bin/busybox sleep 600 & done; echo forked all";
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        c["linux"]["resources"] = serde_json::json!({"pids": {"limit": 4}, "memory": {"limit": 67108864, "swappiness": 7},
                                                    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000, "cpus": "1", "mems": "0"},
                                                    "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]},
                                                    "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]});
        c["linux"]["cgroupsPath"] = serde_json::json!(name);
    });
    let out = base.join("out");
    oci_create(&root, &dir, "limited", Some(&out), &base.join("create.err"));
    let (_, init) = oci_status(&root, "limited");
    let pids_dir = Path::new("/sys/fs/cgroup/pids/capexec-oci").join(&name);
    let memory_dir = Path::new("/sys/fs/cgroup/memory/capexec-oci").join(&name);
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_owned();
    assert_eq!(read(pids_dir.join("pids.max")), "4");
    assert_eq!(read(memory_dir.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(memory_dir.join("memory.swappiness")), "7");
    let cpu_dir = Path::new("/sys/fs/cgroup/cpu/capexec-oci").join(&name);
    let cpuset_dir = Path::new("/sys/fs/cgroup/cpuset/capexec-oci").join(&name);
    let cpu: Vec<String> = ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.cfs_burst_us"].iter().map(|f| read(cpu_dir.join(f))).collect();
    assert_eq!(cpu, ["512", "50000", "100000", "10000"]);
    assert_eq!((read(cpuset_dir.join("cpuset.cpus")), read(cpuset_dir.join("cpuset.mems"))), ("1".to_owned(), "0".to_owned()));
    let blkio_dir = Path::new("/sys/fs/cgroup/blkio/capexec-oci").join(&name);
    assert_eq!(read(blkio_dir.join("blkio.throttle.read_bps_device")), format!("{major}:{minor} 1048576"));
    let hugetlb_dir = Path::new("/sys/fs/cgroup/unified/capexec-oci").join(&name);
    assert_eq!(read(hugetlb_dir.join("hugetlb.2MB.max")), "4194304");
    assert!(read(hugetlb_dir.join("cgroup.procs")).split_whitespace().any(|p| p == init.to_string()));
    let program: i64 = read(PathBuf::from(format!("/proc/{init}/task/{init}/children"))).parse().unwrap();
    let mut procs: Vec<i64> = read(pids_dir.join("cgroup.procs")).split_whitespace().map(|p| p.parse().unwrap()).collect();
    procs.sort();
    // Pids wrap, so the program's may be the smaller one: compare as sets.
    let mut expected = [init, program];
    expected.sort();
    assert_eq!(procs, expected, "init and its program are born in the container's cgroup");
    assert!(read(memory_dir.join("cgroup.procs")).split_whitespace().any(|p| p == init.to_string()));

    assert!(oci(&root, &["start", "limited"]).status.success());
    wait_until("the container to stop", || oci_status(&root, "limited").0 == "stopped");
    // The program's streams are create's.
    let said = std::fs::read_to_string(&out).unwrap() + &std::fs::read_to_string(base.join("create.err")).unwrap();
    assert!(said.contains("can't fork") && !said.contains("forked all"), "the fifth process of the container cannot be made: {said}");
    assert!(said.contains("Cpus_allowed_list:\t1\n"), "the program runs on cpu 1 only: {said}");
    assert!(oci(&root, &["delete", "limited"]).status.success());
    for d in [&pids_dir, &memory_dir, &cpu_dir, &cpuset_dir, &blkio_dir, &hugetlb_dir] {
        assert!(!d.exists(), "delete removes the container's cgroups: {}", d.display());
    }
}

/// The config's prestart and createRuntime hooks run during `create`, the
/// container's process already in its new namespaces (a hook sees its
/// network namespace, as CNI plugins need), its poststart hooks after
/// `start` let the program go, its poststop hooks after `delete`, each
/// with the container's state on its standard input and its own
/// environment; a failing poststart is a warning, a failing prestart ends
/// the create with nothing left. createContainer hooks run inside the
/// container's namespaces with the host's paths, once its view is made;
/// startContainer hooks with the container's paths, when `start` lets it
/// go, before the program; a failing createContainer ends the create.
#[test]
fn capexec_oci_runs_the_configs_hooks_with_the_state() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-hooks-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let root = base.join("state");
    let _left = Deleted(root.clone(), &["hooked"]);
    let dir = base.join("bundle");
    let save = |name: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}.json; echo \"$WHO\" > {}/{name}.env", base.display(), base.display())], "env": ["WHO=hook"]});
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "600"]);
        let netns = format!(
            "cat > {0}/prestart.json; readlink /proc/$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/' {0}/prestart.json)/ns/net > {0}/prestart.net",
            base.display()
        );
        let inside = format!("cat > {0}/createContainer.json; readlink /proc/self/ns/mnt > {0}/createContainer.mnt", base.display());
        let start = "echo startContainer $(/bin/busybox cat) $(/bin/busybox readlink /proc/self/ns/mnt)";
        c["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", netns]}], "createRuntime": [save("createRuntime")],
                                        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", inside]}],
                                        "startContainer": [{"path": "/bin/busybox", "args": ["sh", "-c", start]}],
                                        "poststart": [save("poststart"), {"path": "/bin/false"}], "poststop": [save("poststop")]});
    });
    let out = base.join("out");
    oci_create(&root, &dir, "hooked", Some(&out), &base.join("create.err"));
    let (_, init) = oci_status(&root, "hooked");
    for hook in ["prestart", "createRuntime", "createContainer"] {
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(base.join(format!("{hook}.json"))).unwrap()).unwrap();
        assert_eq!((state["id"].as_str(), state["status"].as_str(), state["pid"].as_i64()), (Some("hooked"), Some("creating"), Some(init)), "{hook}");
    }
    let container_mnt = std::fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap();
    assert_eq!(std::fs::read_to_string(base.join("createContainer.mnt")).unwrap().trim(), container_mnt.to_str().unwrap(), "createContainer runs inside");
    assert_ne!(std::fs::read_link("/proc/self/ns/mnt").unwrap(), container_mnt);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "", "no startContainer before start");
    let container_net = std::fs::read_link(format!("/proc/{init}/ns/net")).unwrap();
    assert_eq!(
        std::fs::read_to_string(base.join("prestart.net")).unwrap().trim(),
        container_net.to_str().unwrap(),
        "prestart sees the container's network namespace"
    );
    assert_ne!(std::fs::read_link("/proc/self/ns/net").unwrap(), container_net);
    assert!(!base.join("poststart.json").exists(), "no poststart before start");
    let o = oci(&root, &["start", "hooked"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("warning: hooks.poststart[1] /bin/false: exited"), "{}", text(&o));
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(base.join("poststart.json")).unwrap()).unwrap();
    assert_eq!((state["id"].as_str(), state["status"].as_str(), state["pid"].as_i64()), (Some("hooked"), Some("running"), Some(init)));
    // startContainer: in the container (its busybox, its mount namespace).
    wait_until("the startContainer hook's line", || std::fs::read_to_string(&out).is_ok_and(|o| o.ends_with('\n')));
    let line = std::fs::read_to_string(&out).unwrap();
    let (state, mnt) = line.trim_end().strip_prefix("startContainer ").and_then(|l| l.rsplit_once(' ')).unwrap_or_else(|| panic!("{line:?}"));
    let state: serde_json::Value = serde_json::from_str(state).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(
        (state["id"].as_str(), state["status"].as_str(), state["pid"].as_i64(), mnt),
        (Some("hooked"), Some("created"), Some(init), container_mnt.to_str().unwrap())
    );
    assert_eq!(std::fs::read_to_string(base.join("poststart.env")).unwrap(), "hook\n");
    assert!(oci(&root, &["kill", "hooked", "KILL"]).status.success());
    wait_until("the container to stop", || oci_status(&root, "hooked").0 == "stopped");
    assert!(!base.join("poststop.json").exists(), "no poststop before delete");
    assert!(oci(&root, &["delete", "hooked"]).status.success());
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(base.join("poststop.json")).unwrap()).unwrap();
    assert_eq!((state["id"].as_str(), state["status"].as_str()), (Some("hooked"), Some("stopped")));

    // A prestart hook that fails: no container, no process, no state.
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "600"]);
        c["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/false"}]});
    });
    let before = rootfs_entries(&dir);
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "hooked"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("hooks.prestart[0] /bin/false: exited"), "{}", text(&o));
    assert!(!oci(&root, &["state", "hooked"]).status.success(), "no container is left");
    assert_eq!(rootfs_entries(&dir), before, "nothing of the setup is left in the root filesystem");
    // The same for a createContainer hook.
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "600"]);
        c["hooks"] = serde_json::json!({"createContainer": [{"path": "/bin/false"}]});
    });
    let o = oci(&root, &["create", "--bundle", dir.to_str().unwrap(), "hooked"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("hooks.createContainer[0] /bin/false: exited with status 1"), "{}", text(&o));
    assert!(!oci(&root, &["state", "hooked"]).status.success(), "no container is left");
    assert_eq!(rootfs_entries(&dir), before, "nothing of the setup is left in the root filesystem");

    // What a createContainer hook leaves running is in the container's pid
    // namespace, chrooted to the host's root, outside the container's
    // Landlock domain: the program sees it but reaches nothing through it
    // (its root and environ magic links, a signal).
    let leftover = dir.join("rootfs/leftover.pid");
    // The host's /dev is gone from its view once the setup detaches the
    // host's root, and sh opens /dev/null in the child of an `&`, which may
    // run only then: the hook waits until the child says it is past that.
    let started = dir.join("leftover.started");
    let _ = std::fs::remove_file(&started);
    let hook = format!(
        "exec 3> {}; exec < /dev/null > /dev/null 2>&1; (echo up > {1}; exec /bin/sleep 600) & echo $! >&3; while [ ! -s {1} ]; do :; done",
        leftover.display(),
        started.display()
    );
    // The hook's child may not have exec'd sleep yet: waited for (10 s at
    // most); what the program saw is printed if it is not there.
    let script = "P=$(busybox cat /leftover.pid); \
                  for i in $(busybox seq 200); do busybox grep -q sleep /proc/$P/comm 2>/dev/null && break; busybox sleep 0.05; done; \
                  [ -d /proc/$P ] && busybox grep -q sleep /proc/$P/comm && echo sees-it || echo P=$P $(busybox ls /proc) comm=$(busybox cat /proc/$P/comm 2>&1); \
                  busybox ls /proc/$P/root/etc >/dev/null 2>&1 && echo reached-root || echo root-refused; \
                  busybox readlink /proc/$P/root >/dev/null 2>&1 && echo read-root-link || echo root-link-refused; \
                  busybox cat /proc/$P/environ >/dev/null 2>&1 && echo reached-environ || echo environ-refused; \
                  busybox kill -0 $P 2>/dev/null && echo signalled || echo signal-refused";
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
        c["hooks"] = serde_json::json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}]});
    });
    let o = oci_run(&dir, "it-hook-leftover");
    let _ = std::fs::remove_file(&leftover);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "sees-it\nroot-refused\nroot-link-refused\nenviron-refused\nsignal-refused\n", "{}", text(&o));
}

/// A container with a broker (a grant in its annotation): the launch
/// enters the broker's Landlock layer, which scopes signals; its prestart
/// and createRuntime hooks, the host's programs, still run outside it (a
/// process forked before), so a hook can signal a host process, and both
/// see the state.
#[test]
fn capexec_oci_runs_setup_hooks_outside_the_brokers_layer() {
    require_root();
    let Scene { _cleanup, _left, base, root, dir } = scene("hooks-broker", &["hooked-broker"]);
    std::fs::create_dir_all(&base).unwrap();
    let host = Ends(Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().unwrap());
    let host_pid = host.0.id();
    let grant = format!("broker.fs = [{{path = '{}/**', rights = ['read']}}]", base.display());
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "600"]);
        c["annotations"] = serde_json::json!({capexec_decl::BROKER_ANNOTATION: grant});
        let hook = |name: &str| format!("cat > {0}/{name}.json && kill -0 {host_pid} && echo signalled > {0}/{name}.signal", base.display());
        c["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", hook("prestart")]}],
                                        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", hook("createRuntime")]}]});
    });
    oci_create(&root, &dir, "hooked-broker", None, &base.join("create.err"));
    let (_, init) = oci_status(&root, "hooked-broker");
    for hook in ["prestart", "createRuntime"] {
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(base.join(format!("{hook}.json"))).unwrap()).unwrap();
        assert_eq!((state["status"].as_str(), state["pid"].as_i64()), (Some("creating"), Some(init)), "{hook}");
        assert_eq!(std::fs::read_to_string(base.join(format!("{hook}.signal"))).unwrap(), "signalled\n", "{hook}");
    }
    assert!(oci(&root, &["delete", "--force", "hooked-broker"]).status.success());
}

/// A container whose annotation declares `[broker]` grants shares a
/// Landlock layer with its broker, which must allow moves between the
/// container's writable directories (Landlock refuses a rename or link
/// between two directories, EXDEV, in every layer without a rule for it):
/// the view is built by a builder outside that layer, as for capexec's own
/// views, also in a pod's namespaces given by path (network, UTS, IPC,
/// cgroup, pid). A hard link and a rename between two directories of the
/// writable root filesystem work, and the granted host file is read; in
/// the pod, the container's namespaces are the pod's.
#[test]
fn capexec_oci_moves_files_between_directories_under_a_broker() {
    require_root();
    let Scene { _cleanup, _left, base, root, dir } = scene("moves", &["moves", "moves-pod"]);
    std::fs::create_dir_all(base.join("granted")).unwrap();
    std::fs::write(base.join("granted/file"), "granted-content\n").unwrap();
    let grant = format!("broker.fs = [{{path = '{}/granted/**', rights = ['read']}}]", base.display());
    let script = format!(
        "cd /; busybox rm -rf /d1 /d2; busybox mkdir /d1 /d2; echo x > /d1/f; busybox ln /d1/f /d2/g && echo linked; busybox mv /d1/f /d2/f; \
         [ \"$(busybox stat -c %i /d2/f)\" = \"$(busybox stat -c %i /d2/g)\" ] && echo renamed; busybox cat {}/granted/file; \
         for n in net uts ipc cgroup pid; do busybox readlink /proc/self/ns/$n; done",
        base.display()
    );
    let (_pause, sleeper) = pause(&["--net", "--uts", "--ipc", "--cgroup", "--pid"]);
    let kinds = ["net", "uts", "ipc", "cgroup", "pid"];
    for (id, pod) in [("moves", false), ("moves-pod", true)] {
        runc_bundle(&dir, |c| {
            c["root"]["readonly"] = false.into();
            c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", script]);
            c["annotations"] = serde_json::json!({capexec_decl::BROKER_ANNOTATION: grant});
            if pod {
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                let given = [("network", "net"), ("uts", "uts"), ("ipc", "ipc"), ("cgroup", "cgroup"), ("pid", "pid")];
                ns.retain(|n| !given.iter().any(|(kind, _)| n["type"] == *kind));
                for (kind, file) in given {
                    ns.push(serde_json::json!({"type": kind, "path": format!("/proc/{sleeper}/ns/{file}")}));
                }
            }
        });
        let out = base.join(format!("{id}.out"));
        oci_create(&root, &dir, id, Some(&out), &base.join("create.err"));
        assert!(oci(&root, &["start", id]).status.success());
        wait_until("the container's end", || oci_status(&root, id).0 == "stopped");
        let got = std::fs::read_to_string(&out).unwrap();
        let stderr = std::fs::read_to_string(base.join("create.err")).unwrap();
        assert!(got.starts_with("linked\nrenamed\ngranted-content\n"), "{id}: {got}\nstderr: {stderr}");
        let pods: Vec<String> = kinds.iter().map(|n| std::fs::read_link(format!("/proc/{sleeper}/ns/{n}")).unwrap().display().to_string()).collect();
        let theirs: Vec<&str> = got.lines().skip(3).collect();
        assert_eq!(theirs.len(), kinds.len(), "{id}: {got}");
        for ((kind, pods), theirs) in kinds.iter().zip(&pods).zip(&theirs) {
            assert_eq!(pods == theirs, pod, "{id}: {kind} namespace {theirs} (the pod's: {pods})");
        }
        assert!(oci(&root, &["delete", id]).status.success());
    }
}

/// capexec-oci killed in the middle of `create`, at its last step: the
/// test holds the pid file's write (a FIFO at the temporary name create
/// writes first) until create waits in it, then SIGKILLs create. The
/// container it set up is recorded and whole (`state` says created, its
/// program waits at the gate, no `oldroot` is left in the root filesystem),
/// and `delete --force` ends it: no process of it, no state.
#[test]
fn capexec_oci_killed_during_create_leaves_what_delete_force_removes() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-killed-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let root = base.join("state");
    let _left = Deleted(root.clone(), &["killed"]);
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "600"]));
    let before = rootfs_entries(&dir);
    let pid_file = base.join("pid");
    nix::unistd::mkfifo(&pid_file.with_extension("capexec-tmp"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut create = Command::new(capexec_oci())
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(&dir)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("killed")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(base.join("create.err")).unwrap())
        .spawn()
        .unwrap();
    let wchan = format!("/proc/{}/wchan", create.id());
    wait_until("create to wait to write the pid file", || std::fs::read_to_string(&wchan).unwrap_or_default() == "wait_for_partner");
    // Our own child.
    create.kill().unwrap();
    create.wait().unwrap();
    let (status, init) = oci_status(&root, "killed");
    assert_eq!(status, "created", "{}", std::fs::read_to_string(base.join("create.err")).unwrap());
    let program: i64 = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap().trim().parse().unwrap();
    // Mount points for the config's mounts are made, as runc makes them.
    let made: Vec<String> = rootfs_entries(&dir).into_iter().filter(|e| !before.contains(e)).collect();
    assert_eq!(made, ["dev", "proc", "sys"], "nothing but mount points is left in the root filesystem");
    let o = oci(&root, &["delete", "--force", "killed"]);
    assert!(o.status.success() && !root.join("killed").exists(), "delete --force: {}", text(&o));
    wait_until("no process of the container", || [init, program].iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()));
    assert!(!pid_file.exists(), "create was killed before it wrote the pid file");
}

/// A container in the host's pid namespace (a config without one): its
/// processes are init and what descends from it, nothing else, so `ps`,
/// `kill --all` and `delete --force` reach only those. (They once took
/// every process of the host for the container's where PID 1's namespace
/// link is unreadable, as on these machines, and killed them all.)
#[test]
fn capexec_oci_without_a_pid_namespace_signals_only_its_own_processes() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-hostpid-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let root = base.join("state");
    let _left = Deleted(root.clone(), &["hostpid"]);
    let dir = base.join("bundle");
    runc_bundle(&dir, |c| {
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", "/bin/busybox sleep 600 & exec /bin/busybox sleep 600"]);
        c["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
        c.as_object_mut().unwrap().remove("hostname");
    });
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    oci_create(&root, &dir, "hostpid", None, &base.join("create.err"));
    assert!(oci(&root, &["start", "hostpid"]).status.success());
    let (_, init) = oci_status(&root, "hostpid");
    let descendants = || {
        let mut found = vec![init];
        let mut i = 0;
        while i < found.len() {
            let p = found[i];
            let children = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            found.extend(children.split_whitespace().map(|c| c.parse::<i64>().unwrap()));
            i += 1;
        }
        found.sort();
        found
    };
    wait_until("the program and its child", || descendants().len() == 3);
    let o = oci(&root, &["ps", "--format", "json", "hostpid"]);
    let mut pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    pids.sort();
    assert_eq!(pids, descendants(), "{}", text(&o));
    let o = oci(&root, &["kill", "--all", "hostpid", "KILL"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_until("the container to stop", || oci_status(&root, "hostpid").0 == "stopped");
    assert!(oci(&root, &["delete", "hostpid"]).status.success());
    assert!(bystander.try_wait().unwrap().is_none(), "a process outside the container was killed");

    // Created, never started: the program waits at its gate. Init killed
    // (no namespace takes it down), the program goes with it.
    oci_create(&root, &dir, "hostpid", None, &base.join("create.err"));
    let (_, init) = oci_status(&root, "hostpid");
    let waiting: i64 = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap().trim().parse().unwrap();
    assert!(oci(&root, &["kill", "hostpid", "KILL"]).status.success());
    wait_until("the waiting program to go with its init", || !Path::new(&format!("/proc/{waiting}")).exists());
    assert!(oci(&root, &["delete", "hostpid"]).status.success());
    // Our own child.
    let _ = bystander.kill();
    let _ = bystander.wait();
}

/// containerd (Debian's 1.6) with capexec-oci as its runc binary, as
/// Kubernetes nodes would have it (`io.containerd.runc.v2` with
/// `BinaryName`): an image the test builds (an OCI image layout with one
/// busybox layer) and imports from a tarball runs through `ctr run`, with
/// its output, its exit status and capexec's confinement (no_new_privs,
/// capexec's seccomp allowlist, which ctr's spec leaves to the runtime).
/// The containerd instance is the test's own (socket, root, state).
#[test]
fn containerd_runs_an_imported_image_through_capexec_oci() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-ctr-{}", std::process::id()));
    let ns = format!("capexec-it-{}", std::process::id());
    let _cleanup = Scratch(vec![base.clone(), Path::new("/run/containerd/runc").join(&ns)]);
    let image = image_tarball(&base.join("image"));
    let address = base.join("containerd.sock");
    let config = base.join("containerd.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{1}\"\n",
            base.display(),
            address.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(base.join("containerd.log")).unwrap();
    // containerd and its shims keep sockets and FIFOs there.
    let made_run = !Path::new("/run/containerd").exists();
    let daemon = Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd (scripts/install-test-deps.sh installs it)");
    let _daemon = Containerd { child: daemon, root: base.join("root"), state: base.join("state"), made_run };
    let ctr = |args: &[&str]| {
        let child = Command::new("ctr")
            .arg("--address")
            .arg(&address)
            .args(["--namespace", &ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_output(child, T)
    };
    wait_until("containerd to answer", || ctr(&["version"]).status.success());
    let o = ctr(&["images", "import", image.to_str().unwrap()]);
    assert!(o.status.success(), "import: {}\n{}", text(&o), std::fs::read_to_string(base.join("containerd.log")).unwrap());
    let script = "echo hello from ctr; grep -E '^(NoNewPrivs|Seccomp_filters):' /proc/self/status | tr -d '\\t'; exit 3";
    let o = ctr(&["run", "--rm", "--runc-binary", capexec_oci().to_str().unwrap(), "localhost/capexec-busybox:it", "it-ctr", "/bin/sh", "-c", script]);
    let log = std::fs::read_to_string(base.join("containerd.log")).unwrap();
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()),
        (Some(3), "hello from ctr\nNoNewPrivs:1\nSeccomp_filters:1\n"),
        "{}\n{log}",
        text(&o)
    );
    let o = ctr(&["containers", "ls", "--quiet"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "--rm removed it: {}", text(&o));
}

/// An OCI image layout (one uncompressed layer: busybox and its applets)
/// as a tarball in `dir`, named localhost/capexec-busybox:it for containerd.
fn image_tarball(dir: &Path) -> PathBuf {
    let layer = dir.join("layer");
    std::fs::create_dir_all(layer.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", layer.join("bin/busybox")).expect("busybox-static (scripts/install-test-deps.sh installs it)");
    for applet in ["sh", "grep", "tr", "echo"] {
        std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
    }
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let o = Command::new("tar").arg("-C").arg(&layer).arg("-cf").arg(dir.join("layer.tar")).arg(".").output().unwrap();
    assert!(o.status.success(), "tar: {}", text(&o));
    // A blob by its digest; returns (digest, size).
    let blob = |bytes: &[u8]| {
        let tmp = dir.join("blob");
        std::fs::write(&tmp, bytes).unwrap();
        let o = Command::new("sha256sum").arg(&tmp).output().unwrap();
        let digest = String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_owned();
        std::fs::rename(&tmp, blobs.join(&digest)).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let (layer_digest, layer_size) = blob(&std::fs::read(dir.join("layer.tar")).unwrap());
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                                    "rootfs": {"type": "layers", "diff_ids": [layer_digest]}});
    let (config_digest, config_size) = blob(config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]});
    let (manifest_digest, manifest_size) = blob(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size,
        "annotations": {"io.containerd.image.name": "localhost/capexec-busybox:it", "org.opencontainers.image.ref.name": "it"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    let tarball = dir.join("image.tar");
    let o = Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&tarball).arg(".").output().unwrap();
    assert!(o.status.success(), "tar: {}", text(&o));
    tarball
}

/// The test's containerd: killed on drop, and whatever it left mounted
/// under its root and state (a snapshot of a failed run) unmounted, so
/// that removing the scratch directory cannot reach through a mount.
struct Containerd {
    child: std::process::Child,
    root: PathBuf,
    state: PathBuf,
    /// /run/containerd did not exist before: it goes too.
    made_run: bool,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Our own child.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.root) || Path::new(m).starts_with(&self.state))
            .collect();
        // Deepest first.
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").arg("--lazy").arg(m).output();
        }
        if self.made_run {
            let _ = std::fs::remove_dir_all("/run/containerd");
        }
    }
}

/// podman's containers of a test, removed by force on drop.
struct PodmanContainers(&'static [&'static str]);

impl Drop for PodmanContainers {
    fn drop(&mut self) {
        for name in self.0 {
            let _ = Command::new("podman").args(["rm", "--force", name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

// podman runs containers through capexec-oci: run with the program's
// output and exit status, with no_new_privs and podman's own seccomp
// profile (a stack of three filters: its EPERM rules, its EINVAL rule, the
// allowlist with the ENOSYS default), or, with seccomp=unconfined,
// capexec's allowlist (one filter); run detached,
// logs, stop (SIGTERM reaches the program through init), logs again, rm.
#[test]
fn podman_runs_containers_through_capexec_oci() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-podman-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let name = "capexec-it-podman";
    let _containers = PodmanContainers(&["capexec-it-podman"]);
    let rootfs = base.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static (scripts/install-test-deps.sh installs it)");
    for applet in ["sh", "cat", "grep", "tr", "sleep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let rootfs = rootfs.to_str().unwrap();
    let script = "echo hi; grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status | tr -d '\\t'; exit 3";
    // no_new_privs as podman says: off by default, on when asked.
    let o = podman(&[&["run", "--rm"], PODMAN_RUN, &["--rootfs", rootfs, "/bin/sh", "-c", script]].concat());
    let want = "hi\nNoNewPrivs:0\nSeccomp:2\nSeccomp_filters:3\n";
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(3), want), "{}", text(&o));
    let unconfined = ["--security-opt", "seccomp=unconfined", "--security-opt", "no-new-privileges"];
    let o = podman(&[&["run", "--rm"], &unconfined[..], PODMAN_RUN, &["--rootfs", rootfs, "/bin/sh", "-c", script]].concat());
    let want = "hi\nNoNewPrivs:1\nSeccomp:2\nSeccomp_filters:1\n";
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(3), want), "{}", text(&o));
    // A terminal (-t): podman's conmon gets its master through the console socket.
    let o = podman(&[&["run", "--rm", "-t"], PODMAN_RUN, &["--rootfs", rootfs, "/bin/busybox", "tty"]].concat());
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(0), "/dev/pts/0\r\n"), "{}", text(&o));

    // The engine's network namespace, entered by path (a namespace of the
    // test's own, not podman's bridge): the container is in it, and its
    // net.* sysctl (podman sets ping_group_range) lands there, not on the host.
    let netns = NetNs::new(&format!("capexec-it-podman-{}", std::process::id()));
    let o = podman(
        &[
            &["run", "--rm", "--network", &format!("ns:{}", netns.path.display())],
            &PODMAN_RUN[2..],
            &["--rootfs", rootfs, "/bin/sh", "-c", "readlink /proc/self/ns/net"],
        ]
        .concat(),
    );
    let inode = std::fs::metadata(&netns.path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("net:[{inode}]\n"), "{}", text(&o));
    drop(netns);

    // Grants in the annotation (podman reads --annotation as CSV: the pair
    // quoted, TOML's strings single-quoted): a host file the container can
    // read through its broker, nothing past the grant.
    let shared = base.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("granted.txt"), "granted\n").unwrap();
    std::fs::write(base.join("secret.txt"), "secret\n").unwrap();
    let grant = format!("\"{}=broker.fs = [{{path = '{}/**', rights = ['read']}}]\"", capexec_decl::BROKER_ANNOTATION, shared.display());
    let script = format!("cat {0}/granted.txt; cat {1}/secret.txt || echo no-secret; echo x > {0}/new.txt || echo no-write", shared.display(), base.display());
    let o = podman(&[&["run", "--rm", "--annotation", &grant], PODMAN_RUN, &["--rootfs", rootfs, "/bin/sh", "-c", &script]].concat());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "granted\nno-secret\nno-write\n", "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs the `write` right"), "the broker says why it refused: {}", text(&o));
    assert!(!shared.join("new.txt").exists());
    // The same grants answered by `capexec agent` instead, through a podman
    // seccomp profile that hands the container's opens to it.
    let socket = PathBuf::from(format!("/run/capexec-it-podman-agent-{}.sock", std::process::id()));
    let agent = Agent::start(&socket);
    let profile = base.join("agent-profile.json");
    let rules = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": socket, "syscalls": [{"names": ["openat", "open"], "action": "SCMP_ACT_NOTIFY"}]});
    std::fs::write(&profile, rules.to_string()).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let o =
        podman(&[&["run", "--rm", "--annotation", &grant, "--security-opt", &seccomp], PODMAN_RUN, &["--rootfs", rootfs, "/bin/sh", "-c", &script]].concat());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "granted\nno-secret\nno-write\n", "{}\nagent:\n{}", text(&o), agent.said());
    // The agent's broker refused the write, not one of capexec-oci's own.
    agent.wait_line("broker pid");
    if !agent.said().contains("needs the `write` right") {
        agent.wait_line("needs the `write` right");
    }
    assert!(!shared.join("new.txt").exists());
    drop(agent);
    // A preopened host file by annotation: fd 3, with systemd's variables.
    let preopen = format!("\"{}=preopen.file = [{{path = '{}', name = 'secret'}}]\"", capexec_decl::PREOPEN_ANNOTATION, base.join("secret.txt").display());
    let o = podman(&[&["run", "--rm", "--annotation", &preopen], PODMAN_RUN, &["--rootfs", rootfs, "/bin/sh", "-c", "echo $LISTEN_FDNAMES; cat <&3"]].concat());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "secret\nsecret\n", "{}", text(&o));

    let script = "echo logged; trap 'echo bye; exit 0' TERM; while :; do sleep 1; done";
    let o = podman(&[&["run", "--detach", "--name", name], PODMAN_RUN, &["--rootfs", rootfs, "/bin/sh", "-c", script]].concat());
    assert!(o.status.success(), "run --detach: {}", text(&o));
    wait_until("the container's log", || String::from_utf8_lossy(&podman(&["logs", name]).stdout) == "logged\n");
    // podman's default pids limit, in the cgroup podman names (cgroupfs).
    let o = podman(&["inspect", "--format", "{{.State.Pid}}", name]);
    let pid = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let pids_path = cgroup.lines().find_map(|l| l.split_once(":pids:").map(|(_, p)| p.to_owned())).expect("a pids cgroup line");
    assert!(pids_path.contains("libpod"), "{cgroup}");
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{pids_path}/pids.max")).unwrap();
    assert_eq!(max.trim(), "2048", "podman's --pids-limit default");
    let o = podman(&["exec", "--env", "WHO=exec", name, "sh", "-c", "echo $WHO; grep NoNewPrivs /proc/self/status | tr -d '\\t'; exit 5"]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(5), "exec\nNoNewPrivs:0\n"), "exec: {}", text(&o));
    let o = podman(&["exec", "-t", name, "busybox", "tty"]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(0), "/dev/pts/0\r\n"), "exec -t: {}", text(&o));
    let o = podman(&["exec", name, "no-such-program"]);
    assert_eq!(o.status.code(), Some(127), "podman's code for a program not found: {}", text(&o));
    let o = podman(&["stop", "--time", "20", name]);
    assert!(o.status.success(), "stop: {}", text(&o));
    let o = podman(&["logs", name]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "logged\nbye\n", "the program got SIGTERM: {}", text(&o));
    let o = podman(&["inspect", "--format", "{{.State.ExitCode}}", name]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "{}", text(&o));
    let o = podman(&["rm", name]);
    assert!(o.status.success(), "rm: {}", text(&o));
}

// Rootless podman (the unprivileged test user, no subuid ranges: podman's
// single mapping) runs capexec-oci inside its own user namespace, as root
// there: the state goes under $XDG_RUNTIME_DIR (the host's /run is not
// the user's), supplementary groups are not set where setgroups is
// denied, and the cgroup filesystem podman asks for is the host's
// unified hierarchy bound read-only (a new one is refused without a
// cgroup namespace). run (output, status, confinement), run --detach,
// exec, stop (SIGTERM reaches the program), logs, rm: nothing is left in
// the state directory.
#[test]
fn rootless_podman_runs_containers_through_capexec_oci() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-podman-rootless-{}", std::process::id()));
    let (uid, gid) = test_user();
    let (home, xdg, rootfs) = (base.join("home"), base.join("xdg"), base.join("rootfs"));
    for d in [&home, &xdg, &rootfs.join("bin")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static (scripts/install-test-deps.sh installs it)");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    for entry in walk(&base) {
        std::os::unix::fs::lchown(&entry, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    // Podman's pause process (it keeps the user's namespace) is ended by
    // its pid file, then the directory goes.
    struct Rootless(PathBuf, PathBuf);
    impl Drop for Rootless {
        fn drop(&mut self) {
            if let Some(pid) = std::fs::read_to_string(self.1.join("libpod/tmp/pause.pid")).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                // Started by this test's podman, as its user.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Rootless(base.clone(), xdg.clone());
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--runtime").arg(capexec_oci()).args(args).uid(uid).gid(gid).env("HOME", &home).env("XDG_RUNTIME_DIR", &xdg).current_dir(&base);
        wait_output(c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(), T)
    };
    let rootfs = rootfs.to_str().unwrap();
    let script = "echo hi; /bin/busybox id -u; /bin/busybox grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | /bin/busybox tr -d '\\t'; \
                  /bin/busybox touch /sys/fs/cgroup/x 2>/dev/null || echo cgroup-ro; exit 3";
    let o = podman(&["run", "--rm", "--network", "none", "--rootfs", rootfs, "/bin/sh", "-c", script]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(3), "hi\n0\nNoNewPrivs:0\nSeccomp:2\ncgroup-ro\n"), "{}", text(&o));
    let name = "capexec-it-rootless";
    let script = "echo logged; trap 'echo bye; exit 0' TERM; while :; do /bin/busybox sleep 1; done";
    let o = podman(&["run", "--detach", "--name", name, "--network", "none", "--rootfs", rootfs, "/bin/sh", "-c", script]);
    assert!(o.status.success(), "run --detach: {}", text(&o));
    wait_until("the container's log", || String::from_utf8_lossy(&podman(&["logs", name]).stdout) == "logged\n");
    let o = podman(&["exec", name, "/bin/sh", "-c", "echo in-exec; exit 5"]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(5), "in-exec\n"), "exec: {}", text(&o));
    let o = podman(&["stop", "--time", "20", name]);
    assert!(o.status.success(), "stop: {}", text(&o));
    assert_eq!(String::from_utf8_lossy(&podman(&["logs", name]).stdout), "logged\nbye\n");
    let o = podman(&["rm", name]);
    assert!(o.status.success(), "rm: {}", text(&o));
    let left: Vec<_> = std::fs::read_dir(xdg.join("capexec-oci")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "state left: {left:?}");
}

/// Every path under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

// The root filesystem is the image's, so its symlinks are the attacker's:
// a mount destination reached through one must not make a mount point (or
// mount) anywhere on the host. An image whose /run leads to the host tree
// kept at /oldroot during the setup, and a config that mounts below /run
// (podman's /run/.containerenv), must fail with nothing made on the host;
// the same for a destination that is itself such a symlink, and for an
// image whose /oldroot (made for the setup) leads onto the host.
#[test]
fn capexec_oci_mounts_nothing_through_the_images_symlinks() {
    require_root();
    let base = PathBuf::from(format!("/var/tmp/capexec-it-oci-link-{}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let host = base.join("host-dir");
    std::fs::create_dir_all(&host).unwrap();
    let dir = base.join("bundle");
    let under_old = Path::new("/oldroot").join(host.strip_prefix("/").unwrap());
    for (tag, link, dest, target) in [
        ("below", "run", Some("/run/made"), under_old.clone()),
        ("at", "made", Some("/made"), under_old.join("made")),
        ("old", "oldroot", None, host.join("made")),
    ] {
        runc_bundle(&dir, |c| {
            c["process"]["args"] = serde_json::json!(["/bin/busybox", "true"]);
            if let Some(dest) = dest {
                c["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
            }
        });
        let _ = std::fs::remove_file(dir.join("rootfs").join(link));
        std::os::unix::fs::symlink(&target, dir.join("rootfs").join(link)).unwrap();
        let o = oci_run(&dir, &format!("it-link-{tag}"));
        let made: Vec<_> = std::fs::read_dir(&host).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(made.is_empty(), "{tag}: made on the host: {made:?}\n{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(125) && err.contains("is a symlink in the root filesystem"), "{tag}: {}", text(&o));
        std::fs::remove_file(dir.join("rootfs").join(link)).unwrap();
    }
}
