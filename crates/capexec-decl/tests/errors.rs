//! Every class of declaration error is reported with file, line, column and key
//! path and a hint; nothing panics (ESCAPE-CASES 41).

use capexec_decl::spec::*;
use capexec_decl::{load_unit, Context, DeclError};
use std::path::{Path, PathBuf};

fn ctx_root() -> Context {
    Context { rootless: false, uid: 0, gid: 0, unit_dir: None }
}

fn ctx_user() -> Context {
    Context { rootless: true, uid: 4242, gid: 4242, unit_dir: None }
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(tag: &str) -> Dir {
    // Unique per call: tests run in parallel, and two may pass the same tag.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("capexec-decl-test-{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn write(dir: &Path, name: &str, body: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, body).unwrap();
    p
}

/// Loads `body` as t.svc and returns its errors (panics if it validates).
fn errors(body: &str) -> Vec<DeclError> {
    let d = tmpdir(&format!("{:x}", body.len() * 31 + body.bytes().map(usize::from).sum::<usize>()));
    let p = write(&d.0, "t.svc", body);
    match load_unit(p.to_str().unwrap(), &[], &ctx_root()) {
        Ok(s) => panic!("expected an error for:\n{body}\ngot {s:#?}"),
        Err(e) => e.0,
    }
}

fn one(body: &str) -> DeclError {
    let e = errors(body);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.into_iter().next().unwrap()
}

fn ok(body: &str) -> ServiceSpec {
    let d = tmpdir(&format!("ok{}", body.len()));
    let p = write(&d.0, "t.svc", body);
    load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_or_else(|e| panic!("{e}"))
}

const ARGV: &str = "[exec]\nargv = [\"/bin/true\"]\n";

#[test]
fn toml_syntax_error_has_line_and_column() {
    let e = one("[exec]\nargv = \"/bin/true\n[filesystem]\n");
    assert!(e.file.as_ref().unwrap().ends_with("t.svc"));
    assert_eq!(e.line, Some(2));
    assert!(e.column.is_some());
}

#[test]
fn unknown_top_level_key() {
    let e = one(&format!("{ARGV}colour = \"blue\"\n"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    assert!(e.message.contains("expected one of"), "must say what is allowed: {e}");
    assert!(e.help.is_some());
}

#[test]
fn unknown_nested_key_names_the_path() {
    let e = one("[exec]\nargv = [\"/bin/true\"]\n[filesystem]\nread_olny = [\"/x\"]\n");
    assert_eq!(e.key.as_deref(), Some("filesystem.read_olny"), "{e}");
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("read_olny") && e.message.contains("read_only"), "{e}");
}

#[test]
fn wrong_type() {
    let e = one("[exec]\nargv = \"/bin/true\"\n");
    assert_eq!(e.key.as_deref(), Some("exec.argv"));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("invalid type"), "{e}");
}

#[test]
fn wrong_type_inside_array_of_tables() {
    let e = one(&format!("{ARGV}[[preopen.listen]]\naddress = \"tcp:127.0.0.1:80\"\nbacklog = \"many\"\n"));
    assert_eq!(e.key.as_deref(), Some("preopen.listen[0].backlog"), "{e}");
    assert_eq!(e.line, Some(5));
}

#[test]
fn relative_program_is_located() {
    let e = one("description = \"x\"\n[exec]\nargv = [\"true\"]\n");
    assert_eq!(e.key.as_deref(), Some("exec.argv[0]"));
    assert_eq!((e.line, e.column), (Some(3), Some(9)));
    assert!(e.help.unwrap().contains("/usr/bin/true"));
}

#[test]
fn missing_argv() {
    let e = one("description = \"nothing to run\"\n");
    assert_eq!(e.key.as_deref(), Some("exec.argv"));
    assert!(e.help.is_some());
}

#[test]
fn invalid_paths() {
    for (p, what) in [("etc/x", "not absolute"), ("/etc/../root", "`..`"), ("/", "cannot be mounted"), ("/proc", "managed by capexec")] {
        let e = one(&format!("{ARGV}[filesystem]\nread_only = [\"{p}\"]\n"));
        assert_eq!(e.key.as_deref(), Some("filesystem.read_only[0]"));
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains(what), "{p}: {e}");
    }
    let e = one(&format!("{ARGV}[filesystem]\nread_only = [\"/a\\u0000b\"]\n"));
    assert!(e.message.contains("NUL"), "{e}");
}

/// Init changes into the working directory before the exec: one the view
/// lacks is an error at check time, not a failed start (kresd's, learned
/// without it). In the view: "/", a listed path or one inside it, a
/// directory capexec makes, the private /tmp; not under a masked path.
#[test]
fn the_working_directory_must_be_in_the_view() {
    let wd = |dir: &str, rest: &str| format!("[exec]\nargv = [\"/bin/true\"]\nworking_directory = \"{dir}\"\n{rest}");
    let e = one(&wd("/var/lib/knot-resolver", ""));
    assert_eq!(e.key.as_deref(), Some("exec.working_directory"), "{e}");
    assert!(e.message.contains("/var/lib/knot-resolver is not in the filesystem view"), "{e}");
    assert!(e.help.as_deref().is_some_and(|h| h.contains("add \"/var/lib/knot-resolver\" to filesystem.read_only")), "{e:?}");
    assert!(one(&wd("/etc/shadow", "")).message.contains("not in the filesystem view"), "a masked path");
    ok(&wd("/var/lib/knot-resolver", "[filesystem]\nread_only = [\"/var/lib\"]\n"));
    ok(&wd("/var/lib/knot-resolver", "[filesystem]\nstate_directory = [\"knot-resolver\"]\n"));
    for dir in ["/", "/tmp/work", "/usr/share", "/etc"] {
        ok(&wd(dir, ""));
    }
}

#[test]
fn path_listed_twice() {
    let e = one(&format!("{ARGV}[filesystem]\nread_only = [\"/srv\"]\nread_write = [\"/srv\"]\n"));
    assert_eq!(e.key.as_deref(), Some("filesystem.read_write[0]"));
    assert!(e.message.contains("already listed in filesystem.read_only[0]"), "{e}");
}

#[test]
fn unknown_enum_values_list_the_allowed_ones() {
    for (section, key, val) in [
        ("namespaces", "net", "bridge"),
        ("filesystem", "dev", "full"),
        ("filesystem", "proc", "all"),
        ("landlock", "mode", "off"),
        ("seccomp", "action", "trap"),
    ] {
        let e = one(&format!("{ARGV}[{section}]\n{key} = \"{val}\"\n"));
        assert_eq!(e.key.as_deref(), Some(format!("{section}.{key}").as_str()));
        assert!(e.help.as_deref().unwrap_or("").contains("allowed"), "{e}");
        assert_eq!(e.line, Some(4));
    }
}

#[test]
fn unknown_syscall_suggests() {
    let e = one(&format!("{ARGV}[seccomp]\nallow = [\"@system-service\", \"opnat\"]\n"));
    assert_eq!(e.key.as_deref(), Some("seccomp.allow[1]"));
    assert!(e.help.unwrap().contains("openat"));
    let e = one(&format!("{ARGV}[seccomp]\nallow = [\"@network-oi\"]\n"));
    assert!(e.help.unwrap().contains("@network-io"));
}

#[test]
fn errno_only_with_errno_action() {
    let e = one(&format!("{ARGV}[seccomp]\naction = \"kill\"\nerrno = \"EPERM\"\n"));
    assert_eq!(e.key.as_deref(), Some("seccomp.errno"));
    let e = one(&format!("{ARGV}[seccomp]\nerrno = \"EWHATEVER\"\n"));
    assert!(e.help.unwrap().contains("ENOSYS"));
}

#[test]
fn capabilities_and_rlimits() {
    let e = one(&format!("{ARGV}[capabilities]\nkeep = [\"CAP_FLY\"]\n"));
    assert_eq!(e.key.as_deref(), Some("capabilities.keep[0]"));
    let e = one(&format!("{ARGV}[capabilities]\nbound = [\"CAP_CHOWN\", \"CAP_FLY\"]\n"));
    assert_eq!(e.key.as_deref(), Some("capabilities.bound[1]"));
    // keep within bound, as systemd's ambient set within its bounding set.
    let e = one(&format!("{ARGV}[capabilities]\nbound = [\"CAP_CHOWN\"]\nkeep = [\"chown\", \"CAP_DAC_OVERRIDE\"]\n"));
    assert_eq!(e.key.as_deref(), Some("capabilities.keep"));
    assert!(e.message.contains("CAP_DAC_OVERRIDE is outside capabilities.bound"), "{e}");
    let s = ok(&format!("{ARGV}[capabilities]\nbound = [\"CAP_CHOWN\", \"setuid\"]\nkeep = [\"CAP_CHOWN\"]\n"));
    assert_eq!(s.capability_bound, Some(vec![caps::Capability::CAP_CHOWN, caps::Capability::CAP_SETUID]));
    assert_eq!(s.capabilities, [caps::Capability::CAP_CHOWN]);
    assert_eq!(ok(ARGV).capability_bound, None);
    let e = one(&format!("{ARGV}[rlimits]\nfiles = 10\n"));
    assert_eq!(e.key.as_deref(), Some("rlimits.files"));
    assert!(e.help.unwrap().contains("nofile"));
    let e = one(&format!("{ARGV}[rlimits]\nnofile = {{ soft = 100, hard = 10 }}\n"));
    assert!(e.message.contains("above the hard"));
    let e = one(&format!("{ARGV}[rlimits]\nnofile = -1\n"));
    assert!(e.message.contains("negative"), "{e}");
    let e = one(&format!("{ARGV}[rlimits]\nnofile = \"lots\"\n"));
    assert!(e.message.contains("infinity"), "{e}");
    // A limit of bytes may be a size, as systemd's LimitMEMLOCK=64M; one
    // that counts something else may not.
    let s = ok(&format!("{ARGV}[rlimits]\nmemlock = \"8M\"\nstack = {{ soft = \"8M\", hard = \"infinity\" }}\ncore = \"0\"\n"));
    let lim = |r: capexec_decl::spec::Resource| s.rlimits.get(&r).map(|l| (l.soft, l.hard));
    assert_eq!(lim(capexec_decl::spec::Resource::Memlock), Some((Some(8 << 20), Some(8 << 20))));
    assert_eq!(lim(capexec_decl::spec::Resource::Stack), Some((Some(8 << 20), None)));
    assert_eq!(lim(capexec_decl::spec::Resource::Core), Some((Some(0), Some(0))));
    let e = one(&format!("{ARGV}[rlimits]\nnofile = \"64K\"\n"));
    assert_eq!(e.key.as_deref(), Some("rlimits.nofile"));
    assert!(e.message.contains("does not count bytes") && e.help.as_deref().unwrap_or_default().contains("memlock"), "{e}");
}

#[test]
fn preopen_errors() {
    let e = one(&format!("{ARGV}[[preopen.listen]]\naddress = \"127.0.0.1:80\"\n"));
    assert_eq!(e.key.as_deref(), Some("preopen.listen[0].address"));
    let e = one(&format!("{ARGV}[[preopen.listen]]\naddress = \"tcp:localhost:80\"\n"));
    assert!(e.message.contains("not an IP address"), "{e}");
    let e = one(&format!("{ARGV}[[preopen.listen]]\naddress = \"sctp:1.2.3.4:80\"\n"));
    assert!(e.message.contains("unknown socket family"), "{e}");
    let e = one(&format!(
        "{ARGV}[[preopen.listen]]\naddress = \"tcp:127.0.0.1:80\"\nname = \"a\"\n[[preopen.listen]]\naddress = \"tcp:127.0.0.1:81\"\nname = \"a\"\n"
    ));
    assert!(e.message.contains("named `a`"), "{e}");
    let e = one(&format!("{ARGV}[[preopen.listen]]\naddress = \"tcp:127.0.0.1:80\"\nname = \"a:b\"\n"));
    assert_eq!(e.key.as_deref(), Some("preopen.listen[0].name"));
    let e = one(&format!("{ARGV}[[preopen.file]]\npath = \"/var/log/x\"\ncreate = true\n"));
    assert_eq!(e.key.as_deref(), Some("preopen.file[0].create"));
    let e = one(&format!("{ARGV}[[preopen.file]]\nmode = \"read\"\n"));
    assert_eq!(e.key.as_deref(), Some("preopen.file[0].path"));
    let e = one(&format!("{ARGV}[[preopen.listen]]\naddress = \"tcp:127.0.0.1:80\"\nsocket_mode = \"0600\"\n"));
    assert!(e.message.contains("unix sockets only"), "{e}");
}

#[test]
fn namespace_rules() {
    let e = one(&format!("{ARGV}[namespaces]\nmount = false\n"));
    assert_eq!(e.key.as_deref(), Some("namespaces.mount"));
    // Without a pid namespace: as root /proc hides the host's processes;
    // rootless a /proc cannot be had at all.
    assert!(!ok(&format!("{ARGV}[namespaces]\npid = false\n")).namespaces.pid);
    let d = tmpdir("rootless-pid");
    let p = write(&d.0, "p.svc", format!("{ARGV}[namespaces]\npid = false\n"));
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap_err().0.remove(0);
    assert_eq!(e.key.as_deref(), Some("namespaces.pid"));
    // A forking service with a pid file shares the host's, as root, unless it asks.
    let forking = format!("{ARGV}[service]\ntype = \"forking\"\npid_file = \"/run/x.pid\"\n");
    assert!(!ok(&forking).namespaces.pid);
    assert!(ok(&format!("{forking}[namespaces]\npid = true\n")).namespaces.pid);
    let p = write(&d.0, "f.svc", &forking);
    assert!(load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap().namespaces.pid);
    let e = one(&format!("{ARGV}[namespaces]\nuts = false\nhostname = \"x\"\n"));
    assert_eq!(e.key.as_deref(), Some("namespaces.hostname"));
    let e = one(&format!("{ARGV}[namespaces]\nhostname = \"bad name!\"\n"));
    assert!(e.message.contains("invalid hostname"));
}

#[test]
fn unknown_user() {
    let e = one("[exec]\nargv = [\"/bin/true\"]\nuser = \"no-such-user-capexec\"\n");
    assert_eq!(e.key.as_deref(), Some("exec.user"));
    assert!(e.help.unwrap().contains("dynamic"));
    let e = one("[exec]\nargv = [\"/bin/true\"]\nuser = -5\n");
    assert!(e.message.contains("out of range"), "{e}");
}

#[test]
fn many_errors_are_all_reported() {
    let e = errors("[exec]\nargv = [\"rel\"]\n[namespaces]\nnet = \"x\"\n[seccomp]\nallow = [\"nope\"]\n");
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn non_utf8_is_located() {
    let d = tmpdir("utf8");
    let p = write(&d.0, "t.svc", b"[exec]\nargv = [\"/bin/\xff\"]\n");
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.message.contains("UTF-8"));
    assert_eq!(e.line, Some(2));
}

#[test]
fn ten_megabyte_file_is_refused_before_parsing() {
    let d = tmpdir("big");
    let body = format!("{ARGV}# {}\n", "x".repeat(10 << 20));
    let p = write(&d.0, "t.svc", body);
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.message.contains("limited to"), "{e}");
}

#[test]
fn file_names_and_missing_files() {
    let d = tmpdir("names");
    let p = write(&d.0, "t.toml", ARGV);
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.message.contains("must end in `.svc`"));
    let e = load_unit(d.0.join("missing.svc").to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.message.contains("cannot read"), "{e}");
    let e = load_unit("nothere", std::slice::from_ref(&d.0), &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.message.contains("no declaration named `nothere.svc`"), "{e}");
    let dir_named_svc = d.0.join("dir.svc");
    std::fs::create_dir_all(&dir_named_svc).unwrap();
    let e = load_unit(dir_named_svc.to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.message.contains("not a regular file"), "{e}");
}

#[test]
fn search_path_first_match_wins() {
    let d = tmpdir("search");
    let a = d.0.join("etc");
    let b = d.0.join("usr");
    write(&a, "web.svc", "description = \"from etc\"\n[exec]\nargv = [\"/bin/true\"]\n");
    write(&b, "web.svc", "description = \"from usr\"\n[exec]\nargv = [\"/bin/true\"]\n");
    write(&b, "only.svc", "description = \"only usr\"\n[exec]\nargv = [\"/bin/true\"]\n");
    let search = vec![a.clone(), b.clone()];
    assert_eq!(load_unit("web", &search, &ctx_root()).unwrap().description, "from etc");
    assert_eq!(load_unit("web.svc", &search, &ctx_root()).unwrap().description, "from etc");
    assert_eq!(load_unit("only", &search, &ctx_root()).unwrap().description, "only usr");
}

#[test]
fn drop_ins_merge_in_lexical_order_and_errors_name_the_drop_in() {
    let d = tmpdir("dropins");
    let p =
        write(&d.0, "web.svc", "description = \"base\"\n[exec]\nargv = [\"/bin/true\"]\n[filesystem]\nread_only = [\"/srv\"]\n[landlock]\nbind_tcp = [80]\n");
    write(&d.0, "web.svc.d/20-late.toml", "description = \"late\"\n");
    write(&d.0, "web.svc.d/10-early.toml", "description = \"early\"\n[filesystem]\nread_write = [\"/var/lib/web\"]\n");
    write(&d.0, "web.svc.d/README", "this is not toml at all [[[");
    let s = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap();
    assert_eq!(s.description, "late");
    assert_eq!(s.sources.len(), 3);
    // systemd's .conf habit: refused, not silently ignored.
    let conf = write(&d.0, "web.svc.d/50-limits.conf", "[rlimits]\nnofile = 1024\n");
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.message.contains("must end in `.toml`") && e.file.as_ref().unwrap().ends_with("50-limits.conf"), "{e}");
    std::fs::remove_file(conf).unwrap();
    let paths: Vec<_> = s.filesystem.mounts.iter().map(|m| (m.path.display().to_string(), m.kind)).collect();
    assert!(paths.contains(&("/srv".into(), MountKind::ReadOnly)), "tables merge: {paths:?}");
    assert!(paths.contains(&("/var/lib/web".into(), MountKind::ReadWrite)), "{paths:?}");

    write(&d.0, "web.svc.d/30-bad.toml", "[landlock]\nbind_tcp = [\"http\"]\n");
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.file.as_ref().unwrap().ends_with("30-bad.toml"), "{e}");
    assert_eq!(e.line, Some(2));

    // A semantic error from a drop-in points at the drop-in that set the value.
    write(&d.0, "web.svc.d/30-bad.toml", "[namespaces]\nnet = \"bridge\"\n");
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_err().0.remove(0);
    assert!(e.file.as_ref().unwrap().ends_with("30-bad.toml"), "{e}");
    assert_eq!(e.line, Some(2));
}

#[test]
fn defaults_are_strict() {
    let s = ok(ARGV);
    assert_eq!(s.namespaces.net, NetMode::None);
    assert!(s.namespaces.pid && s.namespaces.ipc && s.namespaces.uts && s.namespaces.cgroup);
    // As root a service runs in the host's user namespace unless it asks
    // for its own; rootless there is no other way.
    assert!(!s.namespaces.user);
    assert!(ok(&format!("{ARGV}[namespaces]\nuser = true\n")).namespaces.user);
    let d = tmpdir("rootless-userns");
    let p = write(&d.0, "r.svc", ARGV);
    assert!(load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap().namespaces.user);
    assert_eq!(s.exec.user.how, IdentitySource::Dynamic);
    assert!((61184..=65519).contains(&s.exec.user.uid));
    assert!(s.capabilities.is_empty());
    assert_eq!(s.landlock.mode, Enforcement::Required);
    assert!(s.landlock.bind_tcp.is_empty() && s.landlock.connect_tcp.is_empty());
    assert!(s.landlock.scope_abstract_unix && s.landlock.scope_signals);
    assert_eq!(s.seccomp.action, DenyAction::Errno(libc::EPERM));
    assert!(s.seccomp.allowed.contains("read") && !s.seccomp.allowed.contains("io_uring_setup"));
    assert_eq!(s.filesystem.proc, ProcMode::PidOnly);
    assert_eq!(s.filesystem.dev, DevMode::Minimal);
    let kind = |p: &str| s.filesystem.mounts.iter().find(|m| m.path == Path::new(p)).map(|m| m.kind);
    assert_eq!(kind("/usr"), Some(MountKind::Executable));
    assert_eq!(kind("/etc"), Some(MountKind::ReadOnly));
    assert_eq!(kind("/tmp"), Some(MountKind::Tmpfs));
    assert_eq!(kind("/etc/shadow"), Some(MountKind::Inaccessible));
    assert_eq!(kind("/home"), None);
}

#[test]
fn unit_dir_is_expanded() {
    let s = ok("[exec]\nargv = [\"/bin/cat\", \"${UNIT_DIR}/x.conf\"]\n[filesystem]\nread_only = [\"${UNIT_DIR}\"]\n");
    let dir = s.sources[0].parent().unwrap().to_path_buf();
    assert_eq!(s.exec.argv[1], format!("{}/x.conf", dir.display()));
    assert!(s.filesystem.mounts.iter().any(|m| m.path == dir));
}

#[test]
fn rootless_runs_as_the_caller_and_says_so() {
    let d = tmpdir("rootless");
    let p = write(&d.0, "t.svc", "[exec]\nargv = [\"/bin/true\"]\nuser = \"root\"\n");
    let s = load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap();
    assert_eq!((s.exec.user.uid, s.exec.user.how), (4242, IdentitySource::Caller));
    assert!(s.warnings[0].contains("only when capexec runs as root"));
    let p = write(&d.0, "u.svc", "[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nuser = false\n");
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap_err().0.remove(0);
    assert_eq!(e.key.as_deref(), Some("namespaces.user"));
}

#[test]
fn root_is_only_used_when_declared() {
    let s = ok("[exec]\nargv = [\"/bin/true\"]\nuser = \"root\"\n");
    assert_eq!((s.exec.user.uid, s.exec.user.how), (0, IdentitySource::Declared));
    assert_ne!(ok(ARGV).exec.user.uid, 0);
}

/// Deterministic mutations of every shipped unit: whatever the bytes, loading
/// returns a value or errors, never panics.
#[test]
fn mutated_units_never_panic() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../units");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(&units).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "svc") {
            seeds.push(std::fs::read(e.path()).unwrap());
        }
    }
    assert!(seeds.len() >= 4);
    let d = tmpdir("mutate");
    let p = d.0.join("m.svc");
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let tokens: &[&[u8]] =
        &[b"[", b"]", b"\"", b"=", b"\n", b"[[", b"{", b"}", b"-1", b"99999999999999999999", b"\\u0000", b"@", b"..", b"/", b"true", b"\xff", b"'''", b"#"];
    for i in 0..1500 {
        let mut buf = seeds[i % seeds.len()].clone();
        for _ in 0..(1 + next() % 4) {
            let pos = (next() as usize) % (buf.len() + 1);
            match next() % 3 {
                0 => {
                    let t = tokens[(next() as usize) % tokens.len()];
                    buf.splice(pos..pos, t.iter().copied());
                }
                1 if pos < buf.len() => {
                    buf.remove(pos);
                }
                _ if pos < buf.len() => buf[pos] = next() as u8,
                _ => {}
            }
        }
        std::fs::write(&p, &buf).unwrap();
        let _ = load_unit(p.to_str().unwrap(), &[], &ctx_root());
        let _ = load_unit(p.to_str().unwrap(), &[], &ctx_user());
    }
}

#[test]
fn supervision_defaults_and_values() {
    let s = ok(ARGV);
    assert_eq!(s.service.kind, ServiceType::Simple);
    assert_eq!(s.service.restart, RestartPolicy::OnFailure);
    assert_eq!(s.service.restart_delay, std::time::Duration::from_millis(100));
    assert_eq!(s.service.restart_delay_max, std::time::Duration::from_secs(30));
    assert_eq!((s.service.start_limit_burst, s.service.start_limit_interval), (5, std::time::Duration::from_secs(10)));
    assert_eq!(s.service.stop_signal, libc::SIGTERM);
    assert_eq!(s.service.stop_timeout, std::time::Duration::from_secs(10));
    assert_eq!(s.service.watchdog, None);
    assert_eq!(s.limits, Limits::default());

    let s = ok(&format!(
        "{ARGV}[service]\ntype = \"notify\"\nrestart = \"always\"\nrestart_delay = \"250ms\"\nrestart_delay_max = \"1min 30s\"\n\
         start_limit_burst = 3\nstart_limit_interval = 60\nstop_signal = \"quit\"\nstop_timeout = \"2s\"\nwatchdog = \"5s\"\n\
         [limits]\nmemory_max = \"256M\"\ntasks_max = 64\ncpu_weight = 50\n"
    ));
    assert_eq!(s.service.kind, ServiceType::Notify);
    assert_eq!(s.service.restart, RestartPolicy::Always);
    assert_eq!(s.service.restart_delay, std::time::Duration::from_millis(250));
    assert_eq!(s.service.restart_delay_max, std::time::Duration::from_secs(90));
    assert_eq!(s.service.start_limit_interval, std::time::Duration::from_secs(60));
    assert_eq!(s.service.stop_signal, libc::SIGQUIT);
    assert_eq!(s.service.watchdog, Some(std::time::Duration::from_secs(5)));
    assert_eq!(s.limits, Limits { memory_max: Some(256 << 20), tasks_max: Some(64), cpu_weight: Some(50) });
    assert_eq!(ok(&format!("{ARGV}[limits]\nmemory_max = \"infinity\"\n")).limits.memory_max, None);
}

#[test]
fn supervision_errors() {
    for (body, key) in [
        ("[service]\ntype = \"oneshot\"\n", "service.type"),
        ("[service]\npid_file = \"run/x.pid\"\n", "service.pid_file"),
        ("[service]\ntype = \"forking\"\npid_file = \"run/x.pid\"\n", "service.pid_file"),
        ("[service]\ntype = \"forking\"\n[namespaces]\npid = false\n[filesystem]\nproc = \"none\"\n", "service.type"),
        ("[service]\nrestart = \"sometimes\"\n", "service.restart"),
        ("[service]\nrestart_delay = \"5s\"\nrestart_delay_max = \"1s\"\n", "service.restart_delay"),
        ("[service]\nstart_limit_burst = 0\n", "service.start_limit_burst"),
        ("[service]\nstop_signal = \"SIGSTOP\"\n", "service.stop_signal"),
        ("[service]\nwatchdog = \"0s\"\n", "service.watchdog"),
        ("[limits]\nmemory_max = \"12K\"\n", "limits.memory_max"),
        ("[limits]\ntasks_max = 0\n", "limits.tasks_max"),
        ("[limits]\ncpu_weight = 20000\n", "limits.cpu_weight"),
    ] {
        let e = one(&format!("{ARGV}{body}"));
        assert_eq!(e.key.as_deref(), Some(key), "{body}: {e}");
        assert!(e.line.is_some(), "{body}: not located: {e}");
    }
    // Type errors in durations and sizes name the key and say what is allowed.
    let e = one(&format!("{ARGV}[service]\nstop_timeout = \"soon\"\n"));
    assert_eq!(e.key.as_deref(), Some("service.stop_timeout"));
    assert!(e.message.contains("250ms"), "{e}");
    let e = one(&format!("{ARGV}[limits]\nmemory_max = \"lots\"\n"));
    assert_eq!(e.key.as_deref(), Some("limits.memory_max"));
    assert!(e.message.contains("512M") || e.message.contains("K, M, G"), "{e}");
    let e = one(&format!("{ARGV}[service]\nstop_timeout = -3\n"));
    assert!(e.message.contains("negative"), "{e}");
}

/// The daemon hands specs to its launcher as JSON: every shipped unit must
/// come back identical.
#[test]
fn specs_round_trip_through_json() {
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../units");
    let mut n = 0;
    for e in std::fs::read_dir(&units).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "svc") {
            let spec = load_unit(p.to_str().unwrap(), &[], &ctx_root()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let json = serde_json::to_string(&spec).unwrap();
            let back: capexec_decl::ServiceSpec = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}\n{json}", p.display()));
            assert_eq!(back, spec, "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} units");
}

/// `unix:PATH` in `[broker.net] bind`: the broker binds the socket where
/// the service cannot write; a plain absolute path of at most 107 bytes,
/// never a connect grant, never in a directory the service may write.
#[test]
fn unix_socket_bind_grants_and_their_errors() {
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[broker.net]\nbind = [\"unix:/run/app.ctl\"]\n"));
    assert_eq!(s.broker.bind_unix, [std::path::PathBuf::from("/run/app.ctl")]);
    assert!(s.broker.bind.is_empty());
    assert!(s.seccomp.allowed.contains("bind") && s.seccomp.allowed.contains("listen"), "brokered syscalls join the allowlist");
    assert!(s.has_broker());
    for bad in ["unix:run/app.ctl", "unix:/run/../etc/app.ctl", "unix:/run//app.ctl", "unix:/run/app/", "unix:/app.ctl", "unix:/run/./x"] {
        let e = one(&format!("{ARGV}[broker.net]\nbind = [\"{bad}\"]\n"));
        assert_eq!(e.key.as_deref(), Some("broker.net.bind[0]"), "{bad}: {e}");
    }
    let long = format!("unix:/run/{}", "x".repeat(103));
    assert!(one(&format!("{ARGV}[broker.net]\nbind = [\"{long}\"]\n")).message.contains("107 bytes"));
    let e = one(&format!("{ARGV}[broker.net]\nconnect = [\"unix:/run/app.ctl\"]\n"));
    assert_eq!(e.key.as_deref(), Some("broker.net.connect[0]"));
    let e = one(&format!("{ARGV}[filesystem]\nread_write = [\"/srv/app\"]\n[broker.net]\nbind = [\"unix:/srv/app/ctl.sock\"]\n"));
    assert!(e.message.contains("binds the socket there itself"), "{e}");
    let e = one(&format!("{ARGV}[filesystem]\nruntime_directory = [\"app\"]\n[broker.net]\nbind = [\"unix:/run/app/ctl.sock\"]\n"));
    assert!(e.message.contains("binds the socket there itself"), "{e}");
}

#[test]
fn broker_grants_and_their_errors() {
    let s = ok(&format!(
        "{ARGV}[[broker.fs]]\npath = \"/srv/www/**\"\nrights = [\"read\"]\n[[broker.fs]]\npath = \"/etc/app.conf\"\nrights = [\"read\"]\n\
         [broker.net]\nbind = [\"tcp:127.0.0.1:6379\", \"[::]:8000-8009\"]\nconnect = [\"10.0.0.0/8:*\"]\n\
         [broker.dns]\nnames = [\"DB.example.com.\", \"*.svc.local\"]\n"
    ));
    assert_eq!(s.broker.fs[0].base, std::path::PathBuf::from("/srv/www"));
    assert!(s.broker.fs[0].whole_tree());
    assert_eq!(s.broker.fs[1].base, std::path::PathBuf::from("/etc"), "a plain file pins its directory");
    assert!(!s.broker.fs[1].whole_tree());
    assert_eq!(s.broker.bind.len(), 2);
    assert_eq!(s.broker.dns.names, ["db.example.com", "*.svc.local"]);
    assert!(s.seccomp.allowed.contains("bind") && s.seccomp.allowed.contains("connect"), "brokered syscalls join the allowlist");
    let e = one(&format!("{ARGV}[[broker.fs]]\npath = \"/srv/**\"\nrights = [\"execute\"]\n"));
    assert_eq!(e.key.as_deref(), Some("broker.fs[0].rights[0]"));
    assert!(e.help.as_deref().unwrap_or_default().contains("read, write, create, append"));
    let e = one(&format!("{ARGV}[[broker.fs]]\npath = \"srv/x\"\nrights = [\"read\"]\n"));
    assert_eq!(e.key.as_deref(), Some("broker.fs[0].path"));
    let e = one(&format!("{ARGV}[[broker.fs]]\npath = \"/srv/a**b\"\nrights = [\"read\"]\n"));
    assert!(e.message.contains("whole path component"));
    let e = one(&format!("{ARGV}[[broker.fs]]\npath = \"/srv/x\"\nrights = [\"create\"]\n"));
    assert!(e.message.contains("`create` needs `write` or `append`"));
    let e = one(&format!("{ARGV}[broker.net]\nconnect = [\"localhost:80\"]\n"));
    assert_eq!(e.key.as_deref(), Some("broker.net.connect[0]"));
    assert!(e.message.contains("names are not allowed here"));
    // With the host's network the grants are the network guard's; a TCP
    // one also needs its port in Landlock's rules, which check says.
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[landlock]\nbind_tcp = [80]\n[broker.net]\nbind = [\"0.0.0.0:80\", \"udp:0.0.0.0:137\"]\n"));
    assert!(s.warnings.is_empty() && !s.brokers_net() && !s.brokers_requests(), "{:?}", s.warnings);
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[landlock]\nbind_tcp = [0]\n[broker.net]\nconnect = [\"tcp:10.0.0.0/8:5432\"]\n"));
    assert!(!s.has_broker(), "no broker for the guard's grants, none for listen() with bind_tcp = [0]");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("grants tcp:10.0.0.0/8:5432, but with the host's network a TCP connect needs its port in landlock.connect_tcp too")),
        "{:?}",
        s.warnings
    );
    // `guard = true` asks for the guard with no grants (no address at all),
    // which only the host's network lacks without it; no broker for it.
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[broker.net]\nguard = true\n"));
    assert!(s.broker.guard && s.broker.guards_net() && !s.brokers_besides_listen() && s.warnings.is_empty(), "{:?}", s.warnings);
    let e = one(&format!("{ARGV}[namespaces]\nnet = \"none\"\n[broker.net]\nguard = true\n"));
    assert_eq!(e.key.as_deref(), Some("broker.net.guard"));
    assert!(e.message.contains("is for namespaces.net = \"host\""), "{e:?}");
    // `ping`: the guard's, ping sockets allowed by seccomp; host network only.
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[broker.net]\nping = [\"192.0.2.0/24\", \"::1\", \"[2001:db8::]/32\"]\n"));
    assert!(s.broker.guards_net() && s.seccomp.ping && !s.brokers_besides_listen() && s.warnings.is_empty(), "{:?}", s.warnings);
    let shown: Vec<String> = s.broker.ping.iter().map(|r| r.to_string()).collect();
    assert_eq!(shown, ["192.0.2.0/24", "[::1]", "[2001:db8::]/32"]);
    assert!(s.broker.ping_grant("192.0.2.77".parse().unwrap()).is_some() && s.broker.ping_grant("192.0.3.1".parse().unwrap()).is_none());
    assert!(s.broker.ping_grant("::ffff:192.0.2.1".parse().unwrap()).is_some(), "a v4-mapped address is the IPv4 one");
    assert!(!ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[broker.net]\nguard = true\n")).seccomp.ping);
    let e = one(&format!("{ARGV}[broker.net]\nping = [\"127.0.0.1\"]\n"));
    assert_eq!(e.key.as_deref(), Some("broker.net.ping"));
    assert!(e.message.contains("is for namespaces.net = \"host\""), "{e:?}");
    for (bad, says) in [("example.com", "is not an IP address"), ("10.0.0.1:53", "is not an IP address"), ("10.0.0.0/33", "prefix `/33`")] {
        let e = one(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[broker.net]\nping = [\"{bad}\"]\n"));
        assert_eq!(e.key.as_deref(), Some("broker.net.ping[0]"));
        assert!(e.message.contains(says), "{bad}: {e:?}");
    }
    let e = one(&format!("{ARGV}[broker.dns]\nnames = [\"bad name\"]\n"));
    assert_eq!(e.key.as_deref(), Some("broker.dns.names[0]"));
    let e = one(&format!("{ARGV}[broker]\nsysctl = [\"net..x\"]\n"));
    assert_eq!(e.key.as_deref(), Some("broker.sysctl[0]"));
    let e = one(&format!("{ARGV}[broker]\nunknown = 1\n"));
    assert!(e.message.contains("unknown"), "{e:?}");
}

#[test]
fn a_preopened_directory_the_view_masks_is_an_error() {
    let e = one("[exec]\nargv = [\"/bin/true\"]\n[filesystem]\ninaccessible = [\"/srv\"]\n[[preopen.directory]]\npath = \"/srv/data\"\n");
    assert_eq!(e.key.as_deref(), Some("preopen.directory[0].path"), "{e}");
    assert!(e.to_string().contains("inaccessible") && e.to_string().contains("drop the preopen"), "{e}");
    // Beside a mask, or under a writable path, it is fine.
    ok("[exec]\nargv = [\"/bin/true\"]\n[filesystem]\ninaccessible = [\"/srv/other\"]\nread_write = [\"/srv/data\"]\n[[preopen.directory]]\npath = \"/srv/data\"\n");
}

#[test]
fn network_paths_still_open_are_said() {
    // Host UDP sockets are the network guard's as root, refused rootless:
    // nothing to warn about at validation.
    let udp = ok("[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"udp:127.0.0.1:53\"]\n");
    assert!(udp.warnings.is_empty(), "{:?}", udp.warnings);
    // The guard holds 64 grants.
    let many: Vec<String> = (0..65).map(|i| format!("\"udp:10.0.0.{i}:53\"")).collect();
    let e = one(&format!("[exec]\nargv = [\"/bin/true\"]\n[broker.net]\nconnect = [{}]\n", many.join(", ")));
    assert!(e.to_string().contains("65 bind, connect and ping grants; at most 64"), "{e}");
    // listen() on a host socket with no port goes to the broker: nothing to warn about.
    let host = ok("[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"host\"\n");
    assert!(host.warnings.is_empty(), "{:?}", host.warnings);
    assert!(host.brokers_listen() && host.has_broker());
    let any_port = ok("[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"host\"\n[landlock]\nbind_tcp = [0]\n");
    assert!(!any_port.brokers_listen() && !any_port.has_broker(), "with any port bindable, listen binds nothing ungranted");
    let none = ok("[exec]\nargv = [\"/bin/true\"]\n");
    assert!(!none.brokers_listen() && !none.has_broker(), "a service in its own network namespace listens there");
    let tcp = ok("[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"tcp:127.0.0.1:80\"]\n");
    assert!(tcp.warnings.is_empty(), "{:?}", tcp.warnings);
    assert!(tcp.brokers_listen(), "the broker's host sockets listen through it");
}

#[test]
fn io_uring_says_what_it_bypasses() {
    let u = ok("[exec]\nargv = [\"/bin/true\"]\n[seccomp]\nallow = [\"@system-service\", \"@io-uring\"]\n");
    assert!(u.warnings.iter().any(|w| w.contains("io_uring is allowed") && w.contains("MPTCP") && w.contains("listen()")), "{:?}", u.warnings);
    let plain = ok("[exec]\nargv = [\"/bin/true\"]\n");
    assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);
}

#[test]
fn escape_sequences_in_a_declaration_reach_no_terminal() {
    let e = one("[exec]\nargv = [\"/bin/true\"]\n[seccomp]\nallow = [\"\\u001b]0;owned\\u0007\\u001b[2J\"]\n");
    let shown = e.to_string();
    assert!(!shown.contains('\x1b') && !shown.contains('\x07'), "{shown:?}");
    assert!(shown.contains(r"\x1b]0;owned\x07\x1b[2J"), "{shown}");
}

#[test]
fn tcp_port_ranges_expand_and_bad_ones_are_named() {
    let s = ok(&format!("{ARGV}[landlock]\nbind_tcp = [21, \"40000-40002\"]\nconnect_tcp = [\"443-443\", \"80\"]\n"));
    assert_eq!(s.landlock.bind_tcp.iter().copied().collect::<Vec<_>>(), [21, 40000, 40001, 40002]);
    assert_eq!(s.landlock.connect_tcp.iter().copied().collect::<Vec<_>>(), [80, 443]);
    for (range, says) in
        [("\"9-1\"", "is empty"), ("\"a-b\"", "is not a port range"), ("\"http\"", "is not a port range"), ("\"1-2000\"", "at most 1024 per range")]
    {
        let e = one(&format!("{ARGV}[landlock]\nbind_tcp = [{range}]\n"));
        assert_eq!(e.key.as_deref(), Some("landlock.bind_tcp[0]"), "{e}");
        assert!(e.message.contains(says) && e.help.is_some(), "{range}: {e}");
    }
}

#[test]
fn a_network_capability_that_cannot_work_on_the_hosts_network_is_warned_about() {
    // In the host's user namespace (as root, by default) the capability works.
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[capabilities]\nkeep = [\"CAP_NET_BIND_SERVICE\", \"CAP_NET_RAW\"]\n"));
    assert!(!s.warnings.iter().any(|w| w.contains("CAP_NET")), "{:?}", s.warnings);
    let base = format!("{ARGV}[namespaces]\nnet = \"host\"\nuser = true\n[capabilities]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n");
    let s = ok(&base);
    assert!(s.warnings.iter().any(|w| w.contains("CAP_NET_BIND_SERVICE") && w.contains("landlock.bind_tcp")), "{:?}", s.warnings);
    // The broker binds port 80 for it, with the capability on the host.
    let s = ok(&format!("{base}[landlock]\nbind_tcp = [80]\n"));
    assert!(!s.warnings.iter().any(|w| w.contains("CAP_NET_BIND_SERVICE")), "{:?}", s.warnings);
    // In its own network namespace the capability is the service's to use.
    let s = ok(&format!("{ARGV}[capabilities]\nkeep = [\"CAP_NET_RAW\"]\n"));
    assert!(!s.warnings.iter().any(|w| w.contains("CAP_NET_RAW")), "{:?}", s.warnings);
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\nuser = true\n[capabilities]\nkeep = [\"CAP_NET_RAW\"]\n"));
    assert!(s.warnings.iter().any(|w| w.contains("CAP_NET_RAW") && w.contains("namespaces.user = true")), "{:?}", s.warnings);
}

/// As root a kept capability is the host's unless the service asks for a
/// user namespace of its own: check says so for those that reach past the
/// service (issue 19).
#[test]
fn a_capability_that_acts_on_the_whole_host_is_warned_about() {
    let s = ok(&format!("{ARGV}[capabilities]\nkeep = [\"CAP_SYS_ADMIN\", \"CAP_CHOWN\"]\n"));
    assert!(s.warnings.iter().any(|w| w.contains("CAP_SYS_ADMIN") && w.contains("whole host") && w.contains("namespaces.user = true")), "{:?}", s.warnings);
    assert!(!s.warnings.iter().any(|w| w.contains("CAP_CHOWN")), "{:?}", s.warnings);
    let s = ok(&format!("{ARGV}[namespaces]\nuser = true\n[capabilities]\nkeep = [\"CAP_SYS_ADMIN\"]\n"));
    assert!(!s.warnings.iter().any(|w| w.contains("whole host")), "{:?}", s.warnings);
}

#[test]
fn supplementary_groups_are_resolved() {
    let s = ok(&format!("{ARGV}user = \"nobody\"\nsupplementary_groups = [\"adm\", 4, 65534]\n"));
    // adm is 4 on Debian; the primary group is not repeated; sorted, once each.
    let adm = nix::unistd::Group::from_name("adm").unwrap().unwrap().gid.as_raw();
    assert!(s.exec.user.groups.contains(&adm) && s.exec.user.groups.contains(&4), "{:?}", s.exec.user.groups);
    assert!(!s.exec.user.groups.contains(&s.exec.user.gid));
    assert!(s.exec.user.groups.windows(2).all(|w| w[0] < w[1]));
    let e = one(&format!("{ARGV}supplementary_groups = [\"no-such-group-here\"]\n"));
    assert_eq!(e.key.as_deref(), Some("exec.supplementary_groups[0]"));
    // Rootless they cannot be set, and a warning says so.
    let d = tmpdir("rootless-groups");
    let p = write(&d.0, "g.svc", format!("{ARGV}supplementary_groups = [\"adm\"]\n"));
    let s = load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap();
    assert!(s.exec.user.groups.is_empty() && s.warnings.iter().any(|w| w.contains("supplementary_groups")), "{:?}", s.warnings);
}

/// A daemon started as root that drops to its own user (systemd's `!`): its
/// directories belong to that user.
#[test]
fn directories_user_owns_the_managed_directories() {
    let s = ok(&format!("{ARGV}user = \"root\"\n[filesystem]\nruntime_directory = [\"d\"]\ndirectories_user = \"nobody\"\n"));
    assert_eq!((s.exec.user.uid, s.filesystem.directories_owner), (0, Some((65534, 65534))));
    let e = one(&format!("{ARGV}[filesystem]\nruntime_directory = [\"d\"]\ndirectories_user = \"no-such-user-capexec\"\n"));
    assert_eq!(e.key.as_deref(), Some("filesystem.directories_user"));
    let s = ok(&format!("{ARGV}[filesystem]\ndirectories_user = \"nobody\"\n"));
    assert!(s.warnings.iter().any(|w| w.contains("directories_user")), "{:?}", s.warnings);
}

/// RuntimeDirectoryMode= and the others: permission bits and setgid, per
/// kind; no setuid (meaningless on a directory) or sticky bit.
#[test]
fn managed_directories_take_their_kinds_mode() {
    let s = ok(&format!(
        "{ARGV}[filesystem]\nruntime_directory = [\"a\", \"b\"]\nstate_directory = [\"s\"]\nruntime_directory_mode = \"0700\"\n\
         cache_directory = [\"c\"]\ncache_directory_mode = \"02750\"\n"
    ));
    let modes: Vec<_> = s.filesystem.directories.iter().map(|d| (d.path.display().to_string(), d.mode)).collect();
    assert_eq!(modes, [("/run/a".into(), Some(0o700)), ("/run/b".into(), Some(0o700)), ("/var/lib/s".into(), None), ("/var/cache/c".into(), Some(0o2750))]);
    for bad in ["\"4755\"", "\"1777\"", "\"6750\"", "\"rwx\"", "\"0800\""] {
        let e = one(&format!("{ARGV}[filesystem]\nruntime_directory = [\"a\"]\nruntime_directory_mode = {bad}\n"));
        assert_eq!(e.key.as_deref(), Some("filesystem.runtime_directory_mode"), "{bad}");
    }
    let s = ok(&format!("{ARGV}[filesystem]\nlogs_directory_mode = \"0750\"\n"));
    assert!(s.warnings.iter().any(|w| w.contains("logs_directory_mode")), "{:?}", s.warnings);
}

/// `filesystem.as_owner` names paths the view gives (read_only or
/// read_write), as root only: idmapped mounts need root.
#[test]
fn as_owner_names_given_paths_as_root() {
    let s = ok(&format!("{ARGV}[filesystem]\nread_write = [\"/srv/data\"]\nread_only = [\"/srv/repo\"]\nas_owner = [\"/srv/data\", \"/srv/repo\"]\n"));
    assert_eq!(s.filesystem.as_owner, [PathBuf::from("/srv/data"), PathBuf::from("/srv/repo")]);
    let e = one(&format!("{ARGV}[filesystem]\nread_write = [\"/srv/data\"]\nas_owner = [\"/srv\"]\n"));
    assert_eq!(e.key.as_deref(), Some("filesystem.as_owner[0]"));
    assert!(e.to_string().contains("not listed in read_only or read_write"), "{e}");
    let e = one(&format!("{ARGV}[filesystem]\nexecutable = [\"/opt/x\"]\nas_owner = [\"/opt/x\"]\n"));
    assert_eq!(e.key.as_deref(), Some("filesystem.as_owner[0]"));
    let d = tmpdir("as-owner-rootless");
    let p = write(&d.0, "t.svc", format!("{ARGV}[filesystem]\nread_write = [\"/srv/data\"]\nas_owner = [\"/srv/data\"]\n"));
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap_err().0;
    assert!(e.iter().any(|e| e.key.as_deref() == Some("filesystem.as_owner[0]") && e.to_string().contains("need root")), "{e:#?}");
}

/// `service.ready_address`: for simple and exec services, checked from the
/// host (a TCP address under net = "host", a socket in a path the host sees).
#[test]
fn ready_address_is_one_the_host_can_reach() {
    let s = ok(&format!("{ARGV}[namespaces]\nnet = \"host\"\n[service]\nready_address = [\"tcp:127.0.0.1:8080\", \"unix:/run/app/s\"]\n[filesystem]\nruntime_directory = [\"app\"]\n"));
    assert_eq!(s.service.ready_address.iter().map(|a| a.to_string()).collect::<Vec<_>>(), ["tcp:127.0.0.1:8080", "unix:/run/app/s"]);
    for (body, key, says) in [
        ("[service]\nready_address = [\"tcp:127.0.0.1:8080\"]\n", "service.ready_address[0]", "own network"),
        ("[service]\nready_address = [\"unix:/tmp/s\"]\n", "service.ready_address[0]", "host never sees"),
        ("[service]\nready_address = [\"localhost:80\"]\n", "service.ready_address[0]", "expected tcp:HOST:PORT"),
        ("[service]\nready_address = [\"unix:run/s\"]\n", "service.ready_address[0]", "absolute path"),
        (
            "[service]\ntype = \"notify\"\nready_address = [\"unix:/run/app/s\"]\n[filesystem]\nruntime_directory = [\"app\"]\n",
            "service.ready_address",
            "simple",
        ),
    ] {
        let e = one(&format!("{ARGV}{body}"));
        assert_eq!(e.key.as_deref(), Some(key), "{body}: {e}");
        assert!(e.to_string().contains(says), "{body}: {e}");
    }
}

/// `filesystem.overlay`: the host's view, overlaid (issue 21).
#[test]
fn an_overlay_shows_the_host_overlaid() {
    let s = ok(&format!("{ARGV}[filesystem]\noverlay = \"/var/tmp/box\"\n"));
    let kind = |p: &str| s.filesystem.mounts.iter().find(|m| m.path == Path::new(p)).map(|m| m.kind);
    assert_eq!(
        (kind("/usr"), kind("/etc"), kind("/etc/shadow"), kind("/tmp")),
        (Some(MountKind::Overlay), Some(MountKind::Overlay), Some(MountKind::Inaccessible), Some(MountKind::Tmpfs))
    );
    for (body, says) in [("overlay = \"/var/tmp/a,b\"\n", "overlayfs options"), ("overlay = \"/var/tmp/box\"\nsystem = false\n", "system = true")] {
        let e = one(&format!("{ARGV}[filesystem]\n{body}"));
        assert_eq!(e.key.as_deref(), Some("filesystem.overlay"), "{body}");
        assert!(e.to_string().contains(says), "{e}");
    }
}

/// `exec.fakeroot` needs an overlaid view in a user namespace of its own.
#[test]
fn a_fake_root_needs_an_overlay() {
    let e = one(&ARGV.replace("[exec]\n", "[exec]\nfakeroot = true\n"));
    assert_eq!(e.key.as_deref(), Some("exec.fakeroot"), "{e}");
    let s = ok(&format!("{ARGV}[namespaces]\nuser = true\n[filesystem]\noverlay = \"/var/tmp/box\"\n").replace("[exec]\n", "[exec]\nfakeroot = true\n"));
    assert!(s.exec.fakeroot);
    // A fake root gets the package tools' state copied in.
    assert!(s.filesystem.copy_up.iter().any(|p| p == std::path::Path::new("/var/lib/dpkg")), "{:?}", s.filesystem.copy_up);
}

/// `filesystem.copy_up` copies into an overlay's layer: there must be one,
/// and the path must be in it.
#[test]
fn copy_up_names_a_path_of_the_overlay() {
    let e = one(&format!("{ARGV}[filesystem]\ncopy_up = [\"/etc/hosts\"]\n"));
    assert_eq!(e.key.as_deref(), Some("filesystem.copy_up[0]"), "{e}");
    assert!(e.to_string().contains("filesystem.overlay"), "{e}");
    let e = one(&format!("{ARGV}[filesystem]\noverlay = \"/var/tmp/box\"\ncopy_up = [\"/proc/self\"]\n"));
    assert!(e.to_string().contains("not in an overlaid directory"), "{e}");
    let s = ok(&format!("{ARGV}[filesystem]\noverlay = \"/var/tmp/box\"\ncopy_up = [\"/etc/hosts\", \"/etc/hosts\"]\n"));
    assert_eq!(s.filesystem.copy_up, [std::path::PathBuf::from("/etc/hosts")]);
}

/// A writable mount that holds capexec's own directories (the daemon loads
/// units from /run/capexec/units at its next start) is warned about when
/// the service may write there as root; not for a dynamic uid, a private
/// user namespace, or a directory of the service's own.
#[test]
fn a_writable_mount_over_capexecs_own_directories_is_warned_about() {
    let says = |s: &ServiceSpec| s.warnings.iter().any(|w| w.contains("capexec's own /run/capexec") && w.contains("runtime_directory"));
    let root = format!("{ARGV}user = \"root\"\n");
    let s = ok(&format!("{root}[filesystem]\nread_write = [\"/run\"]\n"));
    assert!(says(&s), "{:?}", s.warnings);
    // A non-root user that overrides file permissions writes there too.
    let s = ok(&format!("{ARGV}user = \"nobody\"\n[filesystem]\nread_write = [\"/run\"]\n[capabilities]\nkeep = [\"CAP_DAC_OVERRIDE\"]\n"));
    assert!(says(&s), "{:?}", s.warnings);
    for (body, why) in [
        (format!("{ARGV}[filesystem]\nread_write = [\"/run\"]\n"), "a dynamic uid"),
        (format!("{root}[namespaces]\nuser = true\n[filesystem]\nread_write = [\"/run\"]\n"), "a private user namespace"),
        (format!("{root}[filesystem]\nread_only = [\"/run\"]\nruntime_directory = [\"app\"]\n"), "its own directory"),
    ] {
        let s = ok(&body);
        assert!(!says(&s), "{why}: {:?}", s.warnings);
    }
}

/// filesystem.devices: a node of capexec's short list, as the host has it,
/// in the minimal /dev; another device, one twice, one with no /dev, or
/// one the host lacks (without `-`) is an error.
#[test]
fn devices_come_from_the_short_list_as_the_host_has_them() {
    use std::os::unix::fs::MetadataExt;
    let s = ok(&format!("{ARGV}[filesystem]\ndevices = [\"/dev/net/tun\", \"-/dev/vhost-vsock\"]\n"));
    let host = std::fs::metadata("/dev/net/tun").unwrap();
    let tun = &s.filesystem.devices[0];
    assert_eq!(
        (tun.path.as_path(), tun.major, tun.minor, tun.mode),
        (Path::new("/dev/net/tun"), libc::major(host.rdev()), libc::minor(host.rdev()), host.mode() & 0o7777)
    );
    for (bad, says) in [
        ("[\"/dev/sda\"]", "not a device capexec gives"),
        ("[\"/dev/mem\"]", "not a device capexec gives"),
        ("[\"/dev/net/tun\", \"/dev/net/tun\"]", "listed twice"),
        ("[\"/dev/../dev/mem\"]", ""),
    ] {
        let e = one(&format!("{ARGV}[filesystem]\ndevices = {bad}\n"));
        assert!(e.key.as_deref().is_some_and(|k| k.starts_with("filesystem.devices")) && e.message.contains(says), "{bad}: {e:?}");
    }
    let e = one(&format!("{ARGV}[filesystem]\ndev = \"none\"\ndevices = [\"/dev/net/tun\"]\n"));
    assert!(e.message.contains("minimal /dev"), "{e:?}");
}

/// The host's control sockets (systemd's private socket, the system bus,
/// container engines, the users' runtime directories) are masked where a
/// declared directory above them shows them, and shown where the
/// declaration names them or their home.
#[test]
fn host_control_sockets_are_hidden_unless_named() {
    use capexec_decl::spec::MountKind;
    let kind = |s: &ServiceSpec, p: &str| s.filesystem.covering(Path::new(p)).map(|m| (m.path.display().to_string(), m.kind));
    let s = ok(&format!("{ARGV}[filesystem]\nread_write = [\"/run\"]\nread_only = [\"/var/lib\"]\n"));
    for (_, hidden) in capexec_decl::validate::HOST_CONTROLS {
        assert_eq!(kind(&s, hidden), Some((hidden.to_string(), MountKind::Inaccessible)), "{hidden}");
    }
    assert_eq!(kind(&s, "/run/user/0/bus"), Some(("/run/user".into(), MountKind::Inaccessible)));
    assert_eq!(kind(&s, "/run/haproxy/admin.sock"), Some(("/run".into(), MountKind::ReadWrite)));
    let s = ok(&format!("{ARGV}[filesystem]\nread_only = [\"/run/dbus\", \"/run/docker.sock\"]\n"));
    assert_eq!(kind(&s, "/run/dbus/system_bus_socket"), Some(("/run/dbus".into(), MountKind::ReadOnly)));
    assert_eq!(kind(&s, "/run/docker.sock"), Some(("/run/docker.sock".into(), MountKind::ReadOnly)));
    assert_eq!(kind(&s, "/run/systemd/private"), None, "nothing shows it, nothing masks it");
    // All of /run is said to show every other daemon's socket; its parts are not.
    let says = |s: &ServiceSpec| s.warnings.iter().any(|w| w.contains("all of the host's /run"));
    assert!(says(&ok(&format!("{ARGV}[filesystem]\nread_only = [\"/run\"]\n"))));
    assert!(!says(&s), "{:?}", s.warnings);
}

/// filesystem.own_files: other files capexec makes as it makes a pid file
/// (rpcbind's lock file directly in /run), each alone writable; one whose
/// directory the service writes already needs nothing made; a path that is
/// not a file below a directory, the pid file again, or one in a hidden
/// directory is an error.
#[test]
fn own_files_are_made_writable_alone_where_their_directory_is_not() {
    let s = ok(&format!("{ARGV}[filesystem]\nown_files = [\"/run/x.lock\", \"/run/y.lock\"]\nread_write = [\"/srv/x\"]\n"));
    assert_eq!(s.filesystem.own_files, [Path::new("/run/x.lock"), Path::new("/run/y.lock")]);
    let m = s.filesystem.covering(Path::new("/run/x.lock")).unwrap();
    assert_eq!((m.path.as_path(), m.kind), (Path::new("/run/x.lock"), MountKind::ReadWrite));
    assert!(s.filesystem.covering(Path::new("/run/other")).is_none_or(|m| m.kind != MountKind::ReadWrite));
    assert!(ok(&format!("{ARGV}[filesystem]\nread_write = [\"/srv/x\"]\nown_files = [\"/srv/x/x.lock\"]\n")).filesystem.own_files.is_empty());
    for (files, says) in [
        ("[\"x.lock\"]", "not an absolute path"),
        ("[\"/x.lock\"]", "below a directory"),
        ("[\"/run/../x.lock\"]", "without `..`"),
        ("[\"/run/x.pid\"]\n[service]\npid_file = \"/run/x.pid\"", "is service.pid_file"),
        ("[\"/root/x.lock\"]\ninaccessible = [\"/root\"]", "makes inaccessible"),
    ] {
        let e = one(&format!("{ARGV}[filesystem]\nown_files = {files}\n"));
        assert!(e.to_string().contains(says) && e.to_string().contains("own_files"), "{files}: {e}");
    }
}

/// A pid file where the service may not write (directly in /run): capexec
/// makes that file alone writable, and the service shares the host's pids
/// as root so that the file means what host tools read; one in a directory
/// the service writes already needs nothing made.
#[test]
fn a_pid_file_is_made_writable_alone_where_its_directory_is_not() {
    let s = ok(&format!("{ARGV}[filesystem]\nread_only = [\"/run\"]\n[service]\npid_file = \"/run/x.pid\"\n"));
    assert_eq!(s.filesystem.pid_file.as_deref(), Some(Path::new("/run/x.pid")));
    let m = s.filesystem.covering(Path::new("/run/x.pid")).unwrap();
    assert_eq!((m.path.as_path(), m.kind), (Path::new("/run/x.pid"), MountKind::ReadWrite));
    assert_eq!(s.filesystem.covering(Path::new("/run/other")).unwrap().kind, MountKind::ReadOnly);
    assert!(!s.namespaces.pid);
    // Not in the view at all: the same.
    assert_eq!(ok(&format!("{ARGV}[service]\npid_file = \"/run/x.pid\"\n")).filesystem.pid_file.as_deref(), Some(Path::new("/run/x.pid")));
    // In a directory capexec makes, or in a writable one: nothing more.
    let s = ok(&format!("{ARGV}[filesystem]\nruntime_directory = [\"x\"]\n[service]\npid_file = \"/run/x/x.pid\"\n"));
    assert_eq!(s.filesystem.pid_file, None);
    assert_eq!(s.filesystem.covering(Path::new("/run/x/x.pid")).unwrap().path, Path::new("/run/x"));
    assert_eq!(ok(&format!("{ARGV}[filesystem]\nread_write = [\"/srv/x\"]\n[service]\npid_file = \"/srv/x/x.pid\"\n")).filesystem.pid_file, None);
    // In a user namespace of its own too (systemd's PrivateUsers=), as
    // root: capexec mounts its /proc of the host's pids; it may ask for its own.
    let private = |ns: &str| format!("{ARGV}[namespaces]\nuser = true\n{ns}[service]\npid_file = \"/run/x.pid\"\n");
    assert!(!ok(&private("")).namespaces.pid);
    assert!(ok(&private("pid = true\n")).namespaces.pid);
    // Listed read-only itself, or inside an inaccessible directory: refused.
    for fs in ["read_only = [\"/run/x.pid\"]", "inaccessible = [\"/run\"]"] {
        let e = one(&format!("{ARGV}[filesystem]\n{fs}\n[service]\npid_file = \"/run/x.pid\"\n"));
        assert_eq!(e.key.as_deref(), Some("service.pid_file"), "{fs}: {e:?}");
    }
}

/// `service.success_exit_status`: codes 1..255 and signal names (seen by
/// the daemon as 128 + the signal's number).
#[test]
fn success_exit_statuses_and_their_errors() {
    let s = ok(&format!("{ARGV}[service]\nsuccess_exit_status = [143, \"sigkill\", \"TERM\"]\n"));
    assert_eq!(s.service.success_exit_status, [143, 137, 143]);
    for (bad, key) in [("0", "[0]"), ("256", "[0]"), ("\"SIGFOO\"", "[0]")] {
        let e = one(&format!("{ARGV}[service]\nsuccess_exit_status = [{bad}]\n"));
        assert_eq!(e.key.as_deref(), Some(format!("service.success_exit_status{key}").as_str()), "{bad}: {e}");
    }
}

/// `filesystem.read_write_exec`: writable and executable (the one exception
/// to writable-means-noexec, for JIT-compiling services such as varnish),
/// and so refused together with `exec.memory_deny_write_execute`.
#[test]
fn read_write_exec_is_writable_and_conflicts_with_memory_deny_write_execute() {
    let s = ok(&format!("{ARGV}[filesystem]\nread_only = [\"/srv\"]\nread_write_exec = [\"/srv/jit\"]\nas_owner = [\"/srv/jit\"]\n"));
    let m = s.filesystem.covering(Path::new("/srv/jit/x.so")).unwrap();
    assert_eq!((m.path.as_path(), m.kind), (Path::new("/srv/jit"), MountKind::ReadWriteExec));
    assert_eq!(s.filesystem.covering(Path::new("/srv/other")).unwrap().kind, MountKind::ReadOnly);
    // A pid file in it needs nothing made writable.
    let s = ok(&format!("{ARGV}[filesystem]\nread_write_exec = [\"/srv/jit\"]\n[service]\npid_file = \"/srv/jit/x.pid\"\n"));
    assert_eq!(s.filesystem.pid_file, None);
    let e = one(&format!("{ARGV}memory_deny_write_execute = true\n[filesystem]\nread_write_exec = [\"/srv/jit\"]\n"));
    assert_eq!(e.key.as_deref(), Some("filesystem.read_write_exec"), "{e:?}");
    assert!(e.to_string().contains("memory_deny_write_execute"), "{e}");
    let e = one(&format!("{ARGV}[filesystem]\nread_write = [\"/srv/jit\"]\nread_write_exec = [\"/srv/jit\"]\n"));
    assert!(e.key.as_deref().is_some_and(|k| k.starts_with("filesystem.read_write")), "{e:?}");
    // Empty is the default: no mount is both.
    assert!(ok(ARGV).filesystem.mounts.iter().all(|m| m.kind != MountKind::ReadWriteExec));
}

/// `filesystem.syslog_sockets`: a chroot's dev/log, whose `dev` directory
/// becomes a tmpfs holding the socket alone; refused where capexec gives no
/// syslog socket or the tmpfs would hide a declared path.
#[test]
fn syslog_sockets_are_a_chroots_dev_log() {
    let s = ok(&format!("{ARGV}[filesystem]\nread_only = [\"/var/lib/haproxy\"]\nsyslog_sockets = [\"/var/lib/haproxy/dev/log\"]\n"));
    assert_eq!(s.filesystem.syslog_sockets, [PathBuf::from("/var/lib/haproxy/dev/log")]);
    for (extra, bad, says) in [
        ("", "/dev/log", "not in the `dev` directory of a chroot"),
        ("", "/srv/jail/log", "not in the `dev` directory of a chroot"),
        ("dev = \"none\"\n", "/srv/jail/dev/log", "filesystem.dev is not"),
        ("read_write = [\"/srv/jail/dev/shm\"]\n", "/srv/jail/dev/log", "shows capexec's syslog socket instead"),
        ("read_write = [\"/srv/jail/dev\"]\n", "/srv/jail/dev/log", "shows capexec's syslog socket instead"),
    ] {
        let e = one(&format!("{ARGV}[filesystem]\n{extra}syslog_sockets = [\"{bad}\"]\n"));
        assert!(e.key.as_deref() == Some("filesystem.syslog_sockets[0]") && e.message.contains(says), "{bad}: {e}");
    }
    let e = one(&format!("{ARGV}[filesystem]\nsyslog_sockets = [\"/srv/jail/dev/log\"]\n[[preopen.listen]]\naddress = \"unixgram:/dev/log\"\n"));
    assert!(e.message.contains("binds /dev/log itself"), "{e}");
    let e = one(&format!("{ARGV}[filesystem]\nsyslog_sockets = [\"/srv/j/dev/log\", \"/srv/j/dev/log\"]\n"));
    assert!(e.key.as_deref() == Some("filesystem.syslog_sockets[1]") && e.message.contains("listed twice"), "{e}");
}

/// `[[exec.condition]]` takes what the other command lists take, and says
/// which entry is wrong under its own name.
#[test]
fn condition_commands_are_checked_as_the_other_lists() {
    let spec = ok(&format!("{ARGV}[[exec.condition]]\nargv = [\"/usr/share/samba/is-configured\", \"smb\"]\nprivileged = true\n"));
    assert_eq!(spec.exec.condition.len(), 1);
    assert!(spec.exec.condition[0].privileged && spec.exec.start_pre.is_empty());
    let e = one(&format!("{ARGV}[[exec.condition]]\nargv = [\"is-configured\"]\n"));
    assert!(e.to_string().contains("exec.condition[0].argv[0]") && e.to_string().contains("give the program's full path"), "{e}");
}

#[test]
fn umask_is_octal_permission_bits() {
    for bad in ["0999", "1777", "", "u=rwx", "+022", "00022"] {
        let e = one(&format!("[exec]\nargv = [\"/bin/true\"]\numask = \"{bad}\"\n"));
        assert_eq!((e.key.as_deref(), e.line), (Some("exec.umask"), Some(3)), "{bad}: {e}");
        assert!(e.help.as_deref().is_some_and(|h| h.contains("\"0027\"")), "{bad}: {e}");
    }
}

/// filesystem.host_processes shows the host's processes in /proc, which only
/// the host's pid namespace has: with a pid namespace of the service's own
/// (the default, and always rootless) or without a /proc it is an error
/// that says what to change.
#[test]
fn host_processes_need_the_hosts_pid_namespace() {
    let e = one(&format!("{ARGV}[filesystem]\nhost_processes = true\n"));
    assert_eq!(e.key.as_deref(), Some("filesystem.host_processes"), "{e}");
    assert!(e.help.as_deref().is_some_and(|h| h.contains("namespaces.pid = false")), "{e}");
    let e = one(&format!("{ARGV}[filesystem]\nhost_processes = true\nproc = \"none\"\n[namespaces]\npid = false\n"));
    assert!(e.help.as_deref().is_some_and(|h| h.contains("filesystem.proc")), "{e}");
    let s = ok(&format!("{ARGV}[filesystem]\nhost_processes = true\n[namespaces]\npid = false\n"));
    assert!(s.filesystem.host_processes && !s.namespaces.pid);
    assert!(!ok(ARGV).filesystem.host_processes, "the default hides them");
    let d = tmpdir("rootless-host-processes");
    let p = write(&d.0, "r.svc", format!("{ARGV}[filesystem]\nhost_processes = true\n"));
    let e = load_unit(p.to_str().unwrap(), &[], &ctx_user()).unwrap_err().0;
    assert!(e.iter().any(|e| e.help.as_deref().is_some_and(|h| h.contains("as root"))), "{e:#?}");
}
