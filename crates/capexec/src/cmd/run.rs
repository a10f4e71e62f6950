//! `capexec run`: ad-hoc confinement. The options become a raw declaration that
//! goes through the same validation as a file, so `run` and `exec` cannot drift.

use super::CmdError;
use capexec::cli::RunArgs;
use capexec_decl::raw::*;
use capexec_decl::spec::MountKind;
use capexec_decl::terminal::safe;
use capexec_decl::Context;
use std::path::{Path, PathBuf};

/// Passed from the caller's environment by default: terminal and locale only.
const DEFAULT_PASS_ENV: &[&str] = &["TERM", "COLORTERM", "NO_COLOR", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ"];

pub fn run(args: &RunArgs) -> i32 {
    match build(args) {
        Ok(spec) if args.dry_run => {
            println!("{}", toml::to_string(&spec).unwrap_or_else(|e| format!("# {e}")));
            0
        }
        Ok(spec) if args.explain => super::learn::explain(&spec, "capexec run", true),
        Ok(spec) => {
            // Strict by default, easy to open up: --net host shares the
            // network, and TCP still needs its ports; said now rather than
            // after a failed connect.
            if args.net.as_deref() == Some("host") && args.connect_tcp.is_empty() && args.bind_tcp.is_empty() && args.unit.is_none() {
                eprintln!("capexec run: note: --net host shares the host's network, but TCP connects and binds still need their ports: --connect-tcp PORT, --bind-tcp PORT");
            }
            // What the kernel refused the program, for a summary if it
            // fails (see Watch): as root from the audit log; rootless, the
            // refused calls themselves.
            let rootless = !nix::unistd::geteuid().is_root();
            let watch = Some(std::rc::Rc::new(capexec_supervisor::trail::Watch::new(&spec, print_refusal)));
            // What the program did on the network, recorded as it happens.
            let recorder: std::rc::Rc<std::cell::RefCell<Option<std::thread::JoinHandle<capexec_learn::Observations>>>> = Default::default();
            let wanted = args.net_summary || spec.filesystem.overlay.is_some();
            // With a broker, the broker is handed the calls and tells of them.
            let (seen_tx, seen) = std::sync::mpsc::channel();
            let brokered = spec.has_broker();
            let net_watch = (wanted && !brokered).then(|| {
                let slot = recorder.clone();
                Box::new(move |listener| {
                    let judge = capexec_sandbox::seccomp::rules_filter().unwrap_or_default();
                    *slot.borrow_mut() = Some(std::thread::spawn(move || capexec_learn::record::record(listener, &judge, false, None, None, None)));
                }) as Box<dyn FnOnce(std::os::fd::OwnedFd)>
            });
            let handoff = super::systemd::Handoff { watch: watch.clone(), net_watch, net_seen: (wanted && brokered).then_some(seen_tx), ..Default::default() };
            // Asked before the launch: a run with a broker ends confined as
            // its broker, whose filter has no ioctl (isatty's TCGETS).
            let (stdin_tty, stderr_tty) = (nix::unistd::isatty(0).unwrap_or(false), nix::unistd::isatty(2).unwrap_or(false));
            let code = super::exec::launch_foreground(&spec, handoff);
            let recorded = recorder.take().and_then(|h| h.join().ok());
            if let Some(mut obs) = recorded.or_else(|| (wanted && brokered).then(Default::default)) {
                for s in seen.try_iter() {
                    obs.net_call(s.pid, || s.comm, s.op, s.what);
                }
                net_summary(&obs, &spec);
            }
            if let Some(dir) = &spec.filesystem.overlay {
                // What the host was, for `capexec commit` to tell whether it changed since.
                match capexec_overlay::commit::record_seen(dir) {
                    Err(e) => eprintln!("capexec run: warning: record the host's state for `capexec commit`: {e}"),
                    // Mbox's review, for a person only: never when standard input is not a terminal.
                    Ok(()) if stdin_tty => super::overlay::review(dir),
                    Ok(()) => {}
                }
            }
            let (told, audited) = match watch.and_then(|w| std::rc::Rc::try_unwrap(w).ok()).filter(|w| w.listening()) {
                Some(w) => (w.finish(code), !rootless),
                None => (0, false),
            };
            // Rootless (or without an audit log to read) the kernel tells
            // nobody what it refused of files and ports: say how to find
            // out, to a person (not to a script reading stderr), after a
            // failure of the program's own (not capexec's 125, not a
            // program that could not be executed, 126 and 127).
            if !audited && (1..125).contains(&code) && stderr_tty {
                match told {
                    0 => eprintln!("capexec run: the program failed (status {code}); to see what the sandbox refused it, run it again with --explain"),
                    _ => eprintln!("capexec run: refused files and TCP ports are not reported rootless: --explain runs the program again to find them"),
                }
            }
            code
        }
        Err(e) => {
            eprintln!("capexec run: {e}");
            e.exit_code()
        }
    }
}

/// Makes a relative path absolute against the current directory, without
/// resolving symlinks (the view shows the path as the user wrote it).
fn absolute(p: &str) -> String {
    if p.starts_with('/') {
        return p.to_owned();
    }
    std::path::absolute(p).map(|a| a.display().to_string()).unwrap_or_else(|_| p.to_owned())
}

/// The home directory of `user` (a name or a uid) in the passwd database.
fn passwd_home(user: &str) -> Option<String> {
    let entry = match user.parse::<u32>() {
        Ok(id) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    entry.ok().flatten().map(|u| u.dir.display().to_string())
}

/// A writable, private HOME for an ad-hoc program (Python's ~/.cache, git's
/// ~/.gitconfig): an empty tmpfs at the invoking user's `$HOME` path, gone
/// with the program. Not when the user sets HOME or shows that directory
/// (or one above it) with --ro, --rw or --tmpfs: then HOME is the directory
/// as shown. A home under the system directories (read-only in every view)
/// or none at all: HOME is the private /tmp.
fn private_home(raw: &mut RawUnit, home: Option<&str>) {
    let exec = raw.exec.get_or_insert_with(Default::default);
    if exec.environment.as_ref().is_some_and(|e| e.contains_key("HOME")) {
        return;
    }
    let fs = raw.filesystem.get_or_insert_with(Default::default);
    let home = home.filter(|h| h.starts_with('/') && *h != "/").map(|h| h.trim_end_matches('/'));
    let system = || capexec_decl::validate::SYSTEM_EXECUTABLE.iter().chain(capexec_decl::validate::SYSTEM_READ_ONLY);
    let listed = |h: &str| {
        [&fs.read_only, &fs.read_write, &fs.executable, &fs.tmpfs].into_iter().flatten().flatten().any(|p| Path::new(h).starts_with(p.trim_start_matches('-')))
    };
    let home = match home {
        Some(h) if listed(h) => h.to_owned(),
        Some(h) if !system().any(|s| Path::new(h).starts_with(s.trim_start_matches('-'))) && !Path::new(h).starts_with("/tmp") => {
            fs.tmpfs.get_or_insert_with(Vec::new).push(h.to_owned());
            h.to_owned()
        }
        _ => "/tmp".to_owned(),
    };
    exec.environment.get_or_insert_with(Default::default).insert("HOME".into(), home);
}

/// The first directory on the way to `path` that `who` cannot search by
/// its mode bits (uid 0 passes: root in its own user namespace still owns
/// root's files), with that directory's mode and owner.
fn blocked_on_the_way(path: &Path, who: &capexec_decl::spec::Identity) -> Option<(PathBuf, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if who.uid == 0 {
        return None;
    }
    path.ancestors().skip(1).collect::<Vec<_>>().into_iter().rev().find_map(|dir| {
        let m = std::fs::metadata(dir).ok()?;
        let bits = capexec_decl::ids::mode_bits_for(&m, who.uid, who.gid, &who.groups);
        (bits & 1 == 0).then(|| (dir.to_path_buf(), m.mode() & 0o7777, m.uid()))
    })
}

/// A program the sandbox's user cannot reach fails in the view's setup with
/// a bare EACCES: say so now, with what to type instead (the same name in
/// the system directories, which every view shows, or a user who can).
fn unreachable_program(typed: &str, prog: &Path, who: &capexec_decl::spec::Identity) -> Result<(), CmdError> {
    let Some((dir, mode, owner)) = blocked_on_the_way(prog, who) else { return Ok(()) };
    let name = prog.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let system = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"].iter().map(|d| Path::new(d).join(&name)).find(|p| p.is_file() && *p != prog);
    let instead = match system {
        Some(p) => format!("{} is in every view: capexec run ... -- {} ...; or", p.display(), p.display()),
        None => "give a program outside it, or".to_owned(),
    };
    Err(CmdError::Usage(format!(
        "`{typed}` is {}, which the program's user (uid {}) cannot reach: {} is mode {mode:04o}, owned by uid {owner}; {instead} run as a user who can reach it (--user) and show its directory (--ro DIR)",
        prog.display(),
        who.uid,
        dir.display()
    )))
}

/// One line of the summary of what was refused (the first with a heading).
fn print_refusal(mechanism: &str, what: &str, fix: &str) {
    static HEADING: std::sync::Once = std::sync::Once::new();
    HEADING.call_once(|| eprintln!("capexec run: the program was refused:"));
    // One write: the program shares this stream.
    capexec_decl::terminal::say(format_args!("  {mechanism}: {}; to allow it: {}", safe(what), safe(capexec_decl::fix::run_flag(fix))));
}

fn find_program(prog: &str) -> Result<PathBuf, CmdError> {
    // clap takes everything from the first word it does not know as the
    // program: an option it does not know lands here.
    if prog.starts_with('-') {
        return Err(CmdError::Usage(format!(
            "unknown option `{prog}` for capexec run (see `capexec run --help`); the program and its arguments come after the options (a program named so: ./{prog})"
        )));
    }
    if prog.contains('/') {
        let p = PathBuf::from(absolute(prog));
        return if p.is_file() { Ok(p) } else { Err(CmdError::Usage(format!("{}: no such file", p.display()))) };
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| capexec_sandbox::plan::DEFAULT_PATH.into());
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let p = Path::new(dir).join(prog);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(CmdError::Usage(format!("`{prog}` not found in PATH; give its path")))
}

fn push(list: &mut Option<Vec<String>>, items: impl IntoIterator<Item = String>) {
    list.get_or_insert_with(Vec::new).extend(items);
}

pub fn build(args: &RunArgs) -> Result<capexec_decl::ServiceSpec, CmdError> {
    build_in(args, Context::current(), std::env::var("HOME").ok().as_deref())
}

/// [`build`] for the ids and privilege in `ctx` and the invoking user's
/// `home` (the golden tests plan as root and as a user, whoever runs them).
pub fn build_in(args: &RunArgs, mut ctx: Context, home: Option<&str>) -> Result<capexec_decl::ServiceSpec, CmdError> {
    let (name, mut raw, sources) = match &args.unit {
        Some(u) => {
            let loaded = capexec_decl::source::load(u)?;
            ctx.unit_dir = Some(capexec_decl::unit_dir(u));
            let sources = loaded.files.iter().map(|f| f.path.clone()).collect();
            (loaded.name, loaded.raw, sources)
        }
        None => ("run".to_owned(), RawUnit::default(), Vec::new()),
    };
    let exec = raw.exec.get_or_insert_with(Default::default);
    // No command: the unit's own program (`capexec learn UNIT`).
    if let Some((first, rest)) = args.command.split_first() {
        let mut argv = vec![find_program(first)?.display().to_string()];
        argv.extend(rest.iter().cloned());
        exec.argv = Some(argv);
    }
    if let Some(u) = &args.user {
        exec.user = Some(match u.parse::<u32>() {
            Ok(id) => NameOrId::Id(id),
            Err(_) => NameOrId::Name(u.clone()),
        });
    }
    if args.unit.is_none() {
        push(&mut exec.pass_environment, DEFAULT_PASS_ENV.iter().map(|s| (*s).to_owned()));
    }
    push(&mut exec.pass_environment, args.pass_env.iter().cloned());
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| CmdError::Usage(format!("--env {kv}: expected NAME=VALUE")))?;
        exec.environment.get_or_insert_with(Default::default).insert(k.to_owned(), v.to_owned());
    }
    if let Some(c) = &args.cwd {
        exec.working_directory = Some(absolute(c));
    }

    let fs = raw.filesystem.get_or_insert_with(Default::default);
    push(&mut fs.read_only, args.ro.iter().map(|p| absolute(p)));
    push(&mut fs.visible, args.visible.iter().map(|p| absolute(p)));
    push(&mut fs.read_write, args.rw.iter().map(|p| absolute(p)));
    push(&mut fs.read_write_exec, args.rw_exec.iter().map(|p| absolute(p)));
    push(&mut fs.executable, args.exec_path.iter().map(|p| absolute(p)));
    push(&mut fs.tmpfs, args.tmpfs.iter().map(|p| absolute(p)));
    push(&mut fs.inaccessible, args.hide.iter().map(|p| absolute(p)));
    push(&mut fs.copy_up, args.copy_up.iter().map(|p| absolute(p)));
    if let Some(dir) = &args.overlay {
        fs.overlay = Some(absolute(dir));
        // The host as the caller sees it: as root, root (in the run's own
        // user namespace, every capability dropped; its writes stay in the
        // layers). Rootless the caller is who runs anyway.
        if args.user.is_none() && !ctx.rootless {
            exec.user = Some(NameOrId::Id(0));
        }
        if args.fakeroot {
            exec.fakeroot = Some(true);
        }
    }

    if let Some(n) = &args.net {
        raw.namespaces.get_or_insert_with(Default::default).net = Some(n.clone());
    }
    if args.unit.is_none() {
        // An ad-hoc program keeps its private user namespace as root too (a
        // declared service runs in the host's; docs/security.md, "Identity").
        // Not one that learning runs as a --user: it stands for the service
        // the mined file declares with that user, which runs in the host's
        // (a root daemon's initgroups and setuid to its own user need the
        // host's ids: in.tftpd --user tftp).
        let declared = args.as_service && args.user.is_some() && !ctx.rootless;
        raw.namespaces.get_or_insert_with(Default::default).user.get_or_insert(!declared);
        // A declared user's own home path, as root (rootless the user is
        // the caller); else the caller's.
        let user_home = args.user.as_deref().filter(|_| !ctx.rootless).and_then(passwd_home);
        private_home(&mut raw, user_home.as_deref().or(home));
        // As root the program's dynamic uid acts as the owner of what --ro
        // and --rw give it (idmapped): it writes where the owner may, and
        // git finds its repository its own. Not for a --user the caller chose.
        if !ctx.rootless && args.user.is_none() {
            let fs = raw.filesystem.get_or_insert_with(Default::default);
            push(&mut fs.as_owner, args.ro.iter().chain(&args.rw).chain(&args.rw_exec).map(|p| absolute(p).trim_start_matches('-').to_owned()));
        }
    }
    let ll = raw.landlock.get_or_insert_with(Default::default);
    if let Some(m) = &args.landlock {
        ll.mode = Some(m.clone());
    }
    // A number is a port, anything else a range that validation reads (and names if it is wrong).
    let ports = |a: &[String]| a.iter().map(|p| p.parse::<u16>().map_or_else(|_| RawPorts::Range(p.clone()), RawPorts::One)).collect::<Vec<_>>();
    ll.bind_tcp.get_or_insert_with(Vec::new).extend(ports(&args.bind_tcp));
    ll.connect_tcp.get_or_insert_with(Vec::new).extend(ports(&args.connect_tcp));
    if let Some(n) = args.tasks {
        let r = raw.rlimits.get_or_insert_with(Default::default);
        r.insert("nproc".to_owned(), capexec_decl::raw::RawRlimit::Both(capexec_decl::raw::LimitValue::Value(n)));
    }
    if !args.allow_syscall.is_empty() {
        let sc = raw.seccomp.get_or_insert_with(Default::default);
        let allow = sc.allow.get_or_insert_with(|| vec!["@system-service".to_owned()]);
        allow.extend(args.allow_syscall.iter().cloned());
    }
    if !args.cap.is_empty() {
        push(&mut raw.capabilities.get_or_insert_with(Default::default).keep, args.cap.iter().cloned());
    }
    if !args.preopen_listen.is_empty() {
        let pre = raw.preopen.get_or_insert_with(Default::default);
        for a in &args.preopen_listen {
            pre.listen.get_or_insert_with(Vec::new).push(RawListen { address: Some(a.clone()), ..Default::default() });
        }
    }

    let mut spec = capexec_decl::validate::validate(&name, &raw, sources, &ctx)?;
    let prog = PathBuf::from(&spec.exec.argv[0]);
    if let Some(first) = args.command.first() {
        unreachable_program(first, &prog, &spec.exec.user)?;
    }

    // The program itself must be in the view and executable; add just that file
    // when no listed path covers it (e.g. ./downloaded-binary in a home directory).
    let covered = spec.filesystem.mounts.iter().any(|m| m.kind == MountKind::Executable && prog.starts_with(&m.path));
    if !covered {
        spec.filesystem.mounts.push(capexec_decl::spec::Mount {
            path: prog.clone(),
            kind: MountKind::Executable,
            optional: false,
            source: None,
            propagation: None,
            layer_of: None,
        });
    }
    // Stay in the current directory when the view shows it; otherwise start at /.
    if args.cwd.is_none() && args.unit.is_none() {
        if let Ok(cwd) = std::env::current_dir() {
            let visible = spec.filesystem.mounts.iter().any(|m| {
                cwd.starts_with(&m.path)
                    && matches!(m.kind, MountKind::ReadOnly | MountKind::ReadWrite | MountKind::ReadWriteExec | MountKind::Executable | MountKind::Overlay)
            });
            if visible {
                spec.exec.working_directory = cwd;
            }
        }
    }
    Ok(spec)
}

/// `--net-summary` (and every overlaid run, as Mbox did): by process, the
/// sockets the program made and the addresses it bound, connected and sent
/// to, each allowed or refused by these options with the flag that allows it.
fn net_summary(obs: &capexec_learn::Observations, spec: &capexec_decl::ServiceSpec) {
    let report = capexec_learn::compare::compare(obs, spec, |p: &str| Path::new(p).symlink_metadata().is_ok());
    if obs.network.is_empty() {
        eprintln!("capexec run: network: the program made no socket");
        return;
    }
    let sockets: u64 = obs.network.iter().filter(|e| e.op == "socket").map(|e| e.count).sum();
    let processes: std::collections::BTreeSet<i32> = obs.network.iter().map(|e| e.pid).collect();
    eprintln!("capexec run: network: {sockets} socket(s) made by {} process(es):", processes.len());
    for e in &obs.network {
        let who = format!("pid {} ({})", e.pid, safe(&e.comm));
        let times = if e.count > 1 { format!(" (x{})", e.count) } else { String::new() };
        if e.op == "socket" {
            eprintln!("  {who}: socket {}{times}", safe(&e.what));
            continue;
        }
        // A datagram's address is judged as a connect's.
        let how = if e.op == "bind" { "bind" } else { "connect" };
        // In the run's own network namespace its loopback is its own (but
        // for a grant's address, which the broker reaches on the host): a
        // datagram goes there, and a bind works, unless the broker answers
        // binds (any network grant) and refuses it; nothing outside is reached.
        let a = &e.what;
        let inet = capexec_learn::compare::inet(a);
        let granted = inet.is_some_and(|(p, addr)| match how {
            "bind" => spec.broker.bind_grant(p, addr).is_some(),
            _ => spec.broker.connect_grant(p, addr).is_some(),
        });
        let own_loopback = spec.namespaces.net == capexec_decl::spec::NetMode::None
            && !granted
            && inet.is_some_and(|(_, addr)| capexec_decl::grants::canonical(addr.ip()).is_loopback());
        // (A bind to port 0 there goes on even where the broker answers binds.)
        let picked = inet.is_some_and(|(_, addr)| addr.port() == 0);
        let own = own_loopback && (e.op == "send" || how == "bind" && (picked || !spec.brokers_listen()));
        let refused = report.network.iter().find(|d| d.what == *a && d.how == how).filter(|_| !own);
        let verdict = match refused {
            Some(d) => format!("refused ({}); to allow it: {}", safe(&d.why), safe(capexec_decl::fix::run_flag(&d.fix))),
            None if own_loopback => "allowed, in the run's own network (nothing outside reaches it)".into(),
            None => "allowed".into(),
        };
        eprintln!("  {who}: {} {}{times}: {verdict}", e.op, safe(a));
    }
}
