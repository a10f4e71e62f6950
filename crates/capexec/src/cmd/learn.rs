//! `capexec learn`: the program runs under a learning plan (the host's view,
//! nothing denied, every syscall handed to the recorder); what the recorder
//! saw becomes a declaration (capexec-learn's `mine`, laid over the unit by
//! `merge`), or, with `--check`, is judged against a unit (`compare`).
//! With `--workload`, a command on the host drives the service and its exit
//! ends the run (`drive`).

use super::CmdError;
use capexec::cli::{LearnArgs, RunArgs};
use capexec_decl::spec::ReadyAddr;
use capexec_decl::terminal::{safe, safe_lines};
use capexec_decl::ServiceSpec;
use capexec_learn::{compare, merge, mine, Observations};
use capexec_sandbox::launch::Tasks;
use capexec_sandbox::Spawned;
use capexec_sys::process;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub fn run(args: &LearnArgs) -> i32 {
    match learn(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("capexec learn: {e}");
            e.exit_code()
        }
    }
}

/// The same declaration `capexec run` would build, so the user, environment
/// and namespaces of the learning run are those the program will run with.
fn run_args(a: &LearnArgs) -> RunArgs {
    RunArgs {
        unit: a.target.clone().or_else(|| a.unit.clone()),
        ro: Vec::new(),
        visible: Vec::new(),
        rw: Vec::new(),
        rw_exec: Vec::new(),
        exec_path: Vec::new(),
        overlay: None,
        fakeroot: false,
        copy_up: Vec::new(),
        hide: Vec::new(),
        net_summary: false,
        tmpfs: Vec::new(),
        net: None,
        bind_tcp: Vec::new(),
        tasks: None,
        connect_tcp: Vec::new(),
        allow_syscall: Vec::new(),
        cap: Vec::new(),
        preopen_listen: Vec::new(),
        env: a.env.clone(),
        pass_env: Vec::new(),
        user: a.user.clone(),
        cwd: None,
        landlock: None,
        dry_run: false,
        explain: false,
        command: a.command.clone(),
        as_service: true,
    }
}

/// How the recorded run ended.
struct Ended {
    /// The program's exit status (or the service's, when it ended before the workload).
    status: i32,
    /// The workload's exit status, when there was one.
    workload: Option<i32>,
    interrupted: bool,
    /// The service ended before it was ready or while the workload ran:
    /// what to say after the report of what the run did.
    early: Option<String>,
}

fn learn(a: &LearnArgs) -> Result<i32, CmdError> {
    match (&a.target, a.command.is_empty()) {
        (None, true) if a.unit.is_none() => return Err(CmdError::Usage("nothing to run: give a UNIT (with --workload), or a program after `--`".into())),
        (None, true) => {
            return Err(CmdError::Usage(
                "--unit needs a program after `--`; to run the unit's own program, give it as UNIT: `capexec learn UNIT --workload CMD`".into(),
            ))
        }
        (Some(_), false) => {
            return Err(CmdError::Usage("give a UNIT or a program after `--`, not both (use --unit FILE -- PROG to start PROG from a unit)".into()))
        }
        _ => {}
    }
    if let Some(t) = &a.target {
        use std::os::unix::fs::PermissionsExt;
        let program = std::fs::metadata(t).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if program && t.extension().is_none_or(|e| e != "svc") {
            return Err(CmdError::Usage(format!(
                "{} looks like a program, not a unit: put a program after `--` (capexec learn -- {} ...)",
                t.display(),
                t.display()
            )));
        }
    }
    // Earlier runs first: a bad file is found before the program runs.
    let mut obs = Observations::default();
    for f in &a.merge {
        let text = std::fs::read_to_string(f).map_err(CmdError::file("read", f))?;
        let saved: Observations = serde_json::from_str(&text)
            .map_err(|e| CmdError::Content { path: f.clone(), detail: format!("not observations saved by `capexec learn --save`: {e}") })?;
        obs.merge(saved);
    }
    let spec = super::run::build(&run_args(a))?;
    let ready = ready_addresses(a, &spec)?;
    let how = Recording {
        judge_own_filter: a.check,
        ready,
        listen_wait: !a.no_wait,
        workload: a.workload.as_deref(),
        // A learning run is slower than the service's own start (each call
        // waits for the recorder): the unit's own start timeout (systemd's
        // 90 s where the unit names none) bounds it, never below 30 s. A
        // fixed 30 s was too short for postfix's start on a busy machine.
        // (A program without a unit has capexec's own 30 s.)
        ready_timeout: a.ready_timeout.map(Duration::from_secs).unwrap_or_else(|| spec.service.ready_timeout.max(DEFAULT_READY_TIMEOUT)),
        json: a.json,
    };
    let (run, ended, began, host) = record(&spec, how)?;
    let rootless = !nix::unistd::geteuid().is_root();
    let had_capabilities = spec.exec.user.uid == 0 && !rootless;
    let calls: u64 = run.syscalls.values().sum();
    let what = if a.workload.is_some() { "the service" } else { "the program" };
    eprintln!(
        "capexec learn: {what} exited with status {}{}; recorded in {:.1} s: {calls} syscalls ({} distinct), {} paths, {} binds, {} connects",
        ended.status,
        ended.workload.map(|w| format!(", the workload with status {w}")).unwrap_or_default(),
        began.elapsed().as_secs_f64(),
        run.syscalls.len(),
        run.paths.len(),
        run.binds.len(),
        run.connects.len()
    );
    if ended.interrupted {
        eprintln!("capexec learn: interrupted: what was recorded until then is used");
    }
    obs.merge(run);
    if let Some(f) = &a.save {
        let json = serde_json::to_string_pretty(&obs).expect("observations encode as JSON");
        std::fs::write(f, json + "\n").map_err(CmdError::file("write", f))?;
    }
    let exists = |p: &str| Path::new(p).symlink_metadata().is_ok();
    // A failed workload did not exercise what it meant to: say so in the status.
    let workload_failed = ended.workload.is_some_and(|w| w != 0);
    if workload_failed {
        eprintln!("capexec learn: warning: the workload failed (status {}); the run may not have exercised the service", ended.workload.unwrap_or(0));
    }

    if a.check || ended.early.is_some() {
        // An early end is what a refusal often causes: what the unit would
        // have refused is the first thing to look at (under --check, its
        // syscalls too; else the files and the network).
        let report = compare::compare(&obs, &spec, exists).without_absent_sockets(exists);
        print_report(&report, &spec.name, a.json);
        if let Some(early) = ended.early {
            return Err(CmdError::Run(early + &went_to_background(&spec, ended.status, &obs)));
        }
        return Ok(if report.denials() > 0 || workload_failed { 1 } else { 0 });
    }

    let private: Vec<String> =
        spec.filesystem.mounts.iter().filter(|m| m.kind == capexec_decl::spec::MountKind::Tmpfs).map(|m| m.path.display().to_string()).collect();
    // (Normalised: `runtime_directory = ["irqbalance/"]` is /run/irqbalance.)
    let managed = spec.filesystem.directories.iter().map(|d| d.path.components().collect::<std::path::PathBuf>().display().to_string()).collect();
    let proc_writable = spec
        .filesystem
        .mounts
        .iter()
        .filter(|m| m.kind == capexec_decl::spec::MountKind::ReadWrite && m.path.starts_with("/proc"))
        .map(|m| m.path.display().to_string())
        .collect();
    let origin = mine::Origin {
        argv: &spec.exec.argv,
        date: capexec_supervisor::logs::rfc3339_now()[..10].to_owned(),
        private,
        proc_writable,
        managed,
        as_root: !rootless,
        pid_file: spec.service.pid_file.as_ref().map(|p| p.display().to_string()),
        had_capabilities,
        bound: spec.capability_bound.as_ref().map(|b| b.iter().map(ToString::to_string).collect()),
        // Learning starts a service declared as another user with its `keep`.
        kept: match had_capabilities {
            true => Vec::new(),
            false => spec.capabilities.iter().map(ToString::to_string).collect(),
        },
        user: a.user.clone().filter(|_| a.target.is_none() && a.unit.is_none()),
        unit_sockets: spec.service.kind == capexec_decl::spec::ServiceType::Notify
            || spec.preopen.iter().any(|p| !matches!(p.kind, capexec_decl::spec::PreopenKind::File { .. })),
        stream_listeners: spec.preopen.iter().any(|p| {
            use capexec_decl::spec::{ListenAddr, PreopenKind};
            matches!(p.kind, PreopenKind::Listen { address: ListenAddr::Tcp(_) | ListenAddr::Unix(_), .. })
        }),
        working_directory: Some(spec.exec.working_directory.display().to_string()),
        nameservers: mine::host_nameservers(),
        // As root, a service without a capability over file permissions
        // read as its own user and groups (rootless, through a mapping).
        reader: {
            let overrides = spec.capabilities.iter().any(|c| matches!(c.to_string().as_str(), "CAP_DAC_OVERRIDE" | "CAP_DAC_READ_SEARCH"));
            let id = &spec.exec.user;
            (!rootless && !had_capabilities && !overrides)
                .then(|| mine::Reader { uid: id.uid, gids: std::iter::once(id.gid).chain(id.groups.iter().copied()).collect() })
        },
    };
    let mut text = mine::declaration(&obs, &origin, exists);
    let unit = a.target.as_ref().or(a.unit.as_ref());
    if let Some(u) = unit {
        let unit_text = std::fs::read_to_string(u).map_err(CmdError::file("read", u))?;
        let dir = capexec_decl::unit_dir(u);
        text = merge::onto_unit(&text, &unit_text, &dir.display().to_string()).map_err(|e| CmdError::Content { path: u.clone(), detail: e.to_string() })?;
        for h in &host {
            text = merge::privileged(&text, h.list, h.index, &h.wrote).map_err(|e| CmdError::Content { path: u.clone(), detail: e.to_string() })?;
            eprintln!("capexec learn: {}[{}] wrote where the program does not; the mined file runs it privileged, on the host", h.list, h.index);
        }
        // How the unit as declared fares against this run.
        print_report(&compare::compare(&obs, &spec, exists).without_absent_sockets(exists), &spec.name, a.json);
    }
    match &a.out {
        Some(f) => {
            std::fs::write(f, &text).map_err(CmdError::file("write", f))?;
            eprintln!("capexec learn: wrote {} (check it with `capexec check {}`)", f.display(), f.display());
            if let Some(u) = unit {
                left_behind(u, f);
            }
        }
        None if unit.is_some() => {
            eprintln!("capexec learn: no --out given: the mined declaration follows on standard error");
            eprint!("{}", safe_lines(&text));
        }
        // Paths the program touched are quoted in comments: escaped for the
        // terminal (TOML's strings escape control characters already).
        None => print!("{}", safe_lines(&text)),
    }
    Ok(if workload_failed { 1 } else { 0 })
}

/// The mined file is the unit's own with what the run needed added; the
/// unit's drop-ins stay beside the unit. Written elsewhere, it lacks what
/// they said (a lowered limit, the test's address), which the run had: say
/// so, with the copy that keeps them.
fn left_behind(unit: &Path, out: &Path) {
    let same = match (unit.canonicalize(), out.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let theirs = capexec_decl::source::dropins(unit).unwrap_or_default();
    if same || theirs.is_empty() || !capexec_decl::source::dropins(out).unwrap_or_default().is_empty() {
        return;
    }
    let names: Vec<String> = theirs.iter().map(|p| p.display().to_string()).collect();
    eprintln!(
        "capexec learn: note: the run had {}'s drop-ins ({}), which are not in {}; to keep them: cp -r {}.d {}.d",
        unit.display(),
        names.join(", "),
        out.display(),
        unit.display(),
        out.display()
    );
}

/// `capexec run --explain` and `capexec exec --explain`: runs `spec`'s
/// program under the recorder (nothing denied) to its end, then prints what
/// `spec` would have refused, each with what allows it: the `capexec run`
/// flag (`flags`), else the declaration key. The kernel reports refusals
/// only to root (the audit log); this works for anyone. Returns the
/// program's status.
pub fn explain(spec: &ServiceSpec, who: &str, flags: bool) -> i32 {
    eprintln!("{who} --explain: {} runs with nothing denied: recorded, not confined", safe(&spec.exec.argv[0]));
    let how = Recording { judge_own_filter: true, ready: Vec::new(), listen_wait: false, workload: None, ready_timeout: Duration::ZERO, json: false };
    let (obs, ended, _, _) = match record(spec, how) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{who} --explain: {e}");
            return e.exit_code();
        }
    };
    let report = {
        let exists = |p: &str| Path::new(p).symlink_metadata().is_ok();
        compare::compare(&obs, spec, exists).without_absent_sockets(exists)
    };
    if report.denials() == 0 {
        eprintln!(
            "{who} --explain: the program exited with status {}; the {} would have refused nothing it did",
            ended.status,
            if flags { "options" } else { "declaration" }
        );
        return ended.status;
    }
    eprintln!("{who} --explain: the program exited with status {}; the {} would have refused:", ended.status, if flags { "options" } else { "declaration" });
    for (kind, list) in [("seccomp", &report.syscalls), ("files", &report.files), ("network", &report.network)] {
        for (d, also) in one_line_per_fix(list) {
            let fix = if flags { capexec_decl::fix::run_flag(&d.fix) } else { d.fix.as_str() };
            eprintln!("  {kind}: {} ({}){}: {}; to allow it: {}", safe(&d.what), d.how, safe(&also), safe(&d.why), safe(fix));
        }
    }
    ended.status
}

/// Refusals with one fix, as one line each: the first refusal, and the
/// text that names the others (up to three, then how many else). The files
/// a service makes below one directory (apt-cacher-ng's cache) are one grant.
fn one_line_per_fix(list: &[compare::Denial]) -> Vec<(&compare::Denial, String)> {
    let mut groups: Vec<(&compare::Denial, Vec<&str>)> = Vec::new();
    for d in list {
        match groups.iter_mut().find(|(first, _)| first.why == d.why && first.fix == d.fix) {
            Some((_, more)) => more.push(&d.what),
            None => groups.push((d, Vec::new())),
        }
    }
    groups
        .into_iter()
        .map(|(d, more)| {
            let also = match more.len() {
                0 => String::new(),
                n @ 1..=3 => format!(", also {}", more[..n].join(", ")),
                n => format!(", also {} and {} more", more[..3].join(", "), n - 3),
            };
            (d, also)
        })
        .collect()
}

/// How [`record`] runs the program.
struct Recording<'a> {
    /// Judge the calls by the unit's own filter (`--check`, `--explain`),
    /// else only by the argument rules no declaration can lift.
    judge_own_filter: bool,
    ready: Vec<Ready>,
    /// With a workload and nothing else saying when the service is ready:
    /// wait for a socket it binds to accept (see [`Ready::Listening`]).
    listen_wait: bool,
    /// A command on the host that drives the service; its exit ends the run.
    workload: Option<&'a str>,
    ready_timeout: Duration,
    /// Standard output is the report's: the program writes to standard error.
    json: bool,
}

/// Runs `spec`'s program under the learning plan (the host's view and
/// network, nothing denied, every call recorded) until it ends (or the
/// workload does): what it did, how it ended, and when it began.
fn record(spec: &ServiceSpec, how: Recording) -> Result<(Observations, Ended, Instant, Vec<HostCommand>), CmdError> {
    // What the run is judged by: the unit's own filter under --check;
    // otherwise only the argument rules no declaration can lift.
    let judge = match how.judge_own_filter {
        true => capexec_sandbox::seccomp::service_filter(&spec.seccomp),
        false => capexec_sandbox::seccomp::rules_filter(),
    }
    .map_err(CmdError::launch(&spec.name))?;

    let rootless = !nix::unistd::geteuid().is_root();
    // The privileged condition and start_pre commands, on the host before
    // the sandbox exists, as `exec` and the daemon run them: what they make
    // is there for the run (pg_dump@'s `+pg_backupcluster createdirectory`
    // makes the backup directory its dump, as postgres, writes in). Nothing
    // of them is recorded: they are not confined.
    let env: Vec<(String, String)> = spec.exec.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let note = |m: &str| eprintln!("capexec learn: {}: {m}", spec.name);
    if let Err(e) = capexec_supervisor::privileged::run_before_start(&spec.exec, &env, spec.service.ready_timeout, None, &note) {
        let why = if e.condition_unmet() { "its condition does not hold, so it does not start: nothing to learn" } else { "it does not start" };
        return Err(CmdError::Run(format!("{}: {e}; {why}", spec.name)));
    }
    let host_env: Vec<(String, String)> = std::env::vars().collect();
    // Network: the host's, so that binds and connects reach something and the
    // recorder sees where they go; the mined declaration gives them back
    // through broker grants.
    let mut learning = spec.clone();
    learning.namespaces.net = capexec_decl::spec::NetMode::Host;
    // As root, the host's pid namespace whatever the unit says, as systemd
    // runs it: a pid file then holds the pid host tools read during the run
    // (`at` signals atd by /run/atd.pid), and mining sees a pid file worth
    // keeping host pids for. init is then the run's subreaper and ends
    // every process of it when the service ends, as a pid namespace's end
    // would, so nothing the run started outlives it and holds the
    // recorder's listener open. Rootless, a pid namespace of its own; so
    // too a forking service without a pid file, which only its pid
    // namespace tells from its start (validation refuses it the host's).
    let forking_blind = spec.service.kind == capexec_decl::spec::ServiceType::Forking && spec.service.pid_file.is_none();
    learning.namespaces.pid = rootless || forking_blind;
    // A notify service says when it is ready: on a socket of its own, read here.
    let notify = match spec.service.kind {
        capexec_decl::spec::ServiceType::Notify => capexec_sandbox::plan::Notify::Relay { watchdog_usec: None },
        _ => capexec_sandbox::plan::Notify::None,
    };
    let extras = capexec_sandbox::plan::Extras { rootless, host_env: &host_env, learning: true, notify, syslog: true, ..Default::default() };
    let plan = capexec_sandbox::plan::compose(&learning, &extras).map_err(CmdError::launch(&spec.name))?;
    // See plan::into_learning: a root service learned as root has every
    // capability (of its capabilities.bound, if it has one).
    let had_capabilities = spec.exec.user.uid == 0 && !rootless;
    // One recorder per listener: each start_pre command's, then the program's.
    let recorders: RefCell<Vec<JoinHandle<Observations>>> = RefCell::new(Vec::new());
    // The addresses the service binds, as the recorder sees the calls.
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    // The program's calls so far (see `settle`).
    let activity = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Clients come once the workload starts (without one, from anywhere).
    let serving = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(how.workload.is_none()));
    let start = |listener| {
        let judge = judge.clone();
        let bound = bound_tx.clone();
        let activity = activity.clone();
        let serving = serving.clone();
        recorders
            .borrow_mut()
            .push(std::thread::spawn(move || capexec_learn::record::record(listener, &judge, had_capabilities, Some(bound), Some(&activity), Some(serving))));
    };
    // The commands run around the program (start_post, reload): recorded
    // for their syscalls and files, not for network grants
    // (Observations::forget_network), each apart (see `host_commands`).
    let commands: RefCell<Vec<(Tasks, usize, JoinHandle<Observations>)>> = RefCell::new(Vec::new());
    let start_command = |which: Tasks, index: usize, listener| {
        let judge = judge.clone();
        commands.borrow_mut().push((
            which,
            index,
            std::thread::spawn(move || {
                let mut o = capexec_learn::record::record(listener, &judge, had_capabilities, None, None, None);
                o.forget_network();
                o
            }),
        ));
    };
    // With --json, standard output is the report's alone: the service and
    // the workload write to standard error.
    let stdio = how.json.then_some([0, 2, 2]);
    let opts = capexec_sandbox::SpawnOptions { learner: Some(&start), stdio, ..Default::default() };
    let began = Instant::now();
    // By the clock file times come from (see forget_creations below): with
    // SystemTime::now(), a directory the run made in its first milliseconds
    // looked older than the run, and its creation was dropped.
    let began_at = capexec_sys::clock::coarse_now();
    let mut spawned = capexec_sandbox::spawn_with(&plan, &opts).map_err(CmdError::launch(&spec.name))?;
    // What the service logs through syslog(3), on standard error as its output is.
    let syslog = spawned.syslog.take().and_then(|fd| super::syslog::Relay::start(fd).ok());
    let mut ready: Vec<Ready> = how
        .ready
        .into_iter()
        .map(|r| match r {
            // The start program: init's child, or none if it already ended.
            Ready::PidFile(p, before, _) => Ready::PidFile(p, before, spawned.started_pid),
            r => r,
        })
        .collect();
    // READY=1 is what a notify service's readiness is; the addresses, if
    // any, must answer too.
    if let Some(fd) = spawned.notify.take() {
        ready.push(Ready::Notify(Notified::start(fd, spawned.pid)));
    }
    // And a forking service is ready once its start has ended, whatever
    // answers before: privoxy's start waits a second to see its daemon
    // live (wait4), and a stop before that left the call unrecorded.
    if how.listen_wait && spec.service.kind == capexec_decl::spec::ServiceType::Forking && !ready.iter().any(|r| matches!(r, Ready::PidFile(..))) {
        ready.push(Ready::StartEnded(spawned.started_pid));
    }
    if ready.is_empty() && how.listen_wait && how.workload.is_some() {
        eprintln!(
            "capexec learn: nothing says when {} is ready: the workload starts once a socket it binds accepts or it has been idle for {} s (at most {} s from now); \
             --wait-for ADDR names the address, --no-wait starts it at once",
            spec.name,
            IDLE_START.as_secs(),
            how.ready_timeout.as_secs()
        );
        ready.push(Ready::Listening(bound_rx, RefCell::new(Vec::new())));
    }
    let ended = match how.workload {
        None => Ended { status: capexec_sandbox::wait_foreground(&spawned), workload: None, interrupted: false, early: None },
        Some(cmd) => {
            drive(&spawned, spec, cmd, &ready, how.ready_timeout, how.json, &Watching { commands: &start_command, activity: &activity, serving: &serving })?
        }
    };
    drop(spawned);
    if let Some(r) = syslog {
        r.finish();
    }
    // As when the service stops anywhere: its runtime directories go (a
    // pid file left in one would stop the next run).
    capexec_sandbox::resources::remove_runtime_directories(spec);
    let mut recorders = recorders.into_inner();
    let Some(program) = recorders.pop() else {
        return Err(CmdError::Run("the recorder never started".into()));
    };
    let mut run = program.join().map_err(|_| CmdError::Run("the recorder failed".into()))?;
    // The recorders before the program's are its start_pre list's, in the
    // order init ran them: the conditions (read only, always the
    // program's), then the start_pre commands.
    let conditions = plan.start_pre.iter().filter(|c| c.condition).count();
    let mut commands_run = Vec::new();
    for (i, r) in recorders.into_iter().enumerate() {
        let o = r.join().map_err(|_| CmdError::Run("a command's recorder failed".into()))?;
        match i.checked_sub(conditions) {
            Some(index) => commands_run.push(("exec.start_pre", index, o)),
            None => run.merge(o),
        }
    }
    for (which, index, r) in commands.into_inner() {
        commands_run.push((which.key(), index, r.join().map_err(|_| CmdError::Run("a command's recorder failed".into()))?));
    }
    // The recorder sees calls, not their results: `mkdir -p /var/lock/app`
    // asks to create /var and /var/lock too. A directory (or link) the run
    // asked to create that is older than the run was there already: the
    // call failed with EEXIST and needs no write to its parent. (Before the
    // commands are judged: postfix's start_pre "wrote" /var and /var/spool.)
    let existed = |p: &str| {
        std::fs::symlink_metadata(p)
            .ok()
            .filter(|m| m.is_dir() || m.file_type().is_symlink())
            .and_then(|m| m.created().or_else(|_| m.modified()).ok())
            .is_some_and(|t| t < began_at)
    };
    run.forget_creations(existed);
    for (_, _, o) in &mut commands_run {
        o.forget_creations(existed);
    }
    // Only when mining: a check judges the commands as the unit has them.
    let host = match had_capabilities && !how.judge_own_filter {
        true => host_commands(spec, &run, &commands_run),
        false => Vec::new(),
    };
    for (which, index, o) in commands_run {
        if !host.iter().any(|h| h.list == which && h.index == index) {
            run.merge(o);
        }
    }
    Ok((run, ended, began, host))
}

/// A command around a root service's program that wrote where the program
/// did not (php-fpm's start_post runs update-alternatives on
/// /etc/alternatives and /var/lib/dpkg): the mined file makes it
/// privileged, run on the host as root as systemd runs such a unit's
/// commands, instead of giving the program those paths.
struct HostCommand {
    list: &'static str,
    /// Its index in the list (privileged ones counted).
    index: usize,
    /// What it wrote, for the comment.
    wrote: Vec<String>,
}

/// The commands of `commands` (by list and index among the list's commands
/// in the sandbox, as the task helper ran them) that wrote, created or
/// removed a path the program's own `run` did not, outside its private /tmp,
/// its devices and /proc. Not one that read or ran anything where the
/// program writes: on the host as root it would do what the program put
/// there (a script, a configuration it follows), which gives the program
/// root on the host; it stays in the sandbox, and its writes are granted.
/// Nor one that read a file the view can give content of its own (the
/// broker's resolv.conf, hosts, passwd and group): on the host it would
/// copy or use the host's instead (postfix's configure-instance.sh copies
/// resolv.conf and hosts into its chroot, where the program then resolves).
fn host_commands(spec: &ServiceSpec, run: &Observations, commands: &[(&'static str, usize, Observations)]) -> Vec<HostCommand> {
    use capexec_learn::observe::Access;
    let writes = |acc: &std::collections::BTreeSet<Access>| acc.iter().any(|a| matches!(a, Access::Write | Access::Create | Access::Remove));
    // Its private /tmp, its devices, and its own process's files in /proc
    // (rndc names its threads in /proc/self/task/N/comm): none is the host's.
    let private = |p: &str| ["/tmp", "/dev", "/proc"].iter().any(|d| p == *d || p.strip_prefix(d).is_some_and(|r| r.starts_with('/')));
    // Where the program writes: each written path and its directory, which
    // mining grants whole.
    let program_writes: Vec<String> = run
        .paths
        .iter()
        .filter(|(p, acc)| writes(acc) && !private(p))
        .flat_map(|(p, _)| [p.clone(), std::path::Path::new(p).parent().map(|d| d.display().to_string()).unwrap_or_default()])
        .filter(|d| d.len() > 1)
        .collect();
    let programs = |p: &str| program_writes.iter().any(|d| p == d || p.strip_prefix(d.as_str()).is_some_and(|r| r.starts_with('/')));
    let mut out = Vec::new();
    for (which, sandboxed, o) in commands {
        let uses = |acc: &std::collections::BTreeSet<Access>| acc.iter().any(|a| matches!(a, Access::Read | Access::Exec));
        const VIEWS_OWN: &[&str] = &["/etc/resolv.conf", "/etc/hosts", "/etc/passwd", "/etc/group"];
        if o.paths.iter().any(|(p, acc)| uses(acc) && ((!private(p) && programs(p)) || VIEWS_OWN.contains(&p.as_str()))) {
            continue;
        }
        let wrote: Vec<String> =
            o.paths.iter().filter(|(p, acc)| writes(acc) && !private(p) && !run.paths.get(*p).is_some_and(&writes)).map(|(p, _)| p.clone()).collect();
        let list = match *which {
            "exec.start_pre" => &spec.exec.start_pre,
            "exec.start_post" => &spec.exec.start_post,
            "exec.reload" => &spec.exec.reload,
            _ => &spec.exec.stop,
        };
        // Init or the helper ran the list's commands in the sandbox, in order.
        let index = list.iter().enumerate().filter(|(_, c)| !c.privileged).nth(*sandboxed).map(|(i, _)| i);
        if let (Some(index), false) = (index, wrote.is_empty()) {
            out.push(HostCommand { list: which, index, wrote });
        }
    }
    out
}

/// A sign that the service is ready for the workload.
#[derive(Debug)]
enum Ready {
    /// A notify service sent READY=1 on its socket.
    Notify(Notified),
    /// An address accepts a connection (see capexec_supervisor::readiness).
    Addr(ReadyAddr),
    /// Nothing else says when: a socket the service binds (as the recorder
    /// sees its calls) accepts a connection, or is a datagram socket (bound
    /// is ready: what arrives waits for it to read). Ports 0 (a client's
    /// socket) and abstract Unix names do not count.
    Listening(std::sync::mpsc::Receiver<capexec_learn::record::Bound>, RefCell<Vec<capexec_learn::record::Bound>>),
    /// A forking service's start has ended (its program's host pid, filled
    /// in once spawned) and its pid file was written since the run began
    /// (its modification time then, if it existed). The pid in it is the
    /// run's own pid namespace's, so it is not looked at: the start's end
    /// is what says the daemon is up (pg_ctl waits for connections).
    PidFile(std::path::PathBuf, Option<std::time::SystemTime>, Option<libc::pid_t>),
    /// A forking service's start program (its host pid) has ended: needed
    /// beside any address that answers.
    StartEnded(Option<libc::pid_t>),
}

impl Ready {
    fn parse(w: &str) -> Result<Ready, CmdError> {
        ReadyAddr::parse(w).map(Ready::Addr).map_err(|e| CmdError::Usage(format!("--wait-for {w}: {e}")))
    }

    fn met(&self) -> bool {
        match self {
            Ready::Notify(n) => n.ready(),
            Ready::Addr(a) => capexec_supervisor::readiness::accepts(a),
            Ready::Listening(rx, seen) => {
                let mut seen = seen.borrow_mut();
                seen.extend(rx.try_iter());
                seen.iter().any(listens)
            }
            Ready::PidFile(p, before, start) => {
                // A file left by an earlier run does not count (compared
                // with what it was, not with the clock: file times come
                // from the kernel's coarser one).
                let fresh = std::fs::metadata(p).and_then(|m| m.modified()).ok().is_some_and(|t| Some(t) != *before);
                // The start program is init's child, reaped by init: gone
                // from /proc once it has ended.
                let started = start.is_none_or(|pid| kill(Pid::from_raw(pid), None).is_err());
                fresh && started
            }
            Ready::StartEnded(start) => start.is_none_or(|pid| kill(Pid::from_raw(pid), None).is_err()),
        }
    }
}

impl std::fmt::Display for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ready::Notify(..) => write!(f, "READY=1 on its notify socket"),
            Ready::Addr(a) => write!(f, "{a}"),
            Ready::Listening(_, seen) => {
                let seen: Vec<String> = seen.borrow().iter().map(|b| b.address.clone()).collect();
                match seen.is_empty() {
                    true => write!(f, "a socket it binds to accept; it bound none"),
                    false => write!(f, "a socket it binds to accept; it bound {}", seen.join(", ")),
                }
            }
            Ready::PidFile(p, _, _) => write!(f, "its start to end and its pid file {}", p.display()),
            Ready::StartEnded(_) => write!(f, "its start to end"),
        }
    }
}

/// What a notify service has said on its socket (the receiving end): read
/// as it arrives by a thread of its own, which also answers the service's
/// init when it asks which process is the main one now (a daemon that
/// replaces itself names its successor: capexec_sandbox::mainpid), and
/// read to the last message before each look.
#[derive(Debug)]
struct Notified {
    fd: std::sync::Arc<OwnedFd>,
    init: libc::pid_t,
    heard: std::sync::Arc<std::sync::Mutex<Heard>>,
}

#[derive(Debug)]
struct Heard {
    /// READY=1 has come.
    ready: bool,
    /// RELOADING=1 has come: the service speaks systemd's reload protocol
    /// (RELOADING=1 when it starts a reload, READY=1 when it is done).
    reloads: bool,
    /// Where a reload asked for by `expect_reload` is.
    reload: Reload,
    named: capexec_sandbox::mainpid::Announced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reload {
    /// None asked for, or the last one is over (READY=1 after RELOADING=1).
    Done,
    /// Asked for: RELOADING=1 has not come yet.
    Asked,
    /// RELOADING=1 has come, READY=1 not yet.
    Running,
}

impl Notified {
    fn start(fd: OwnedFd, init: libc::pid_t) -> Notified {
        let heard = Heard { ready: false, reloads: false, reload: Reload::Done, named: Default::default() };
        let n = Notified { fd: std::sync::Arc::new(fd), init, heard: std::sync::Arc::new(std::sync::Mutex::new(heard)) };
        let (fd, heard) = (n.fd.clone(), n.heard.clone());
        let reader = move || loop {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&*fd), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) | Ok(_) => {}
                Err(_) => return,
            }
            if fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL)) {
                return;
            }
            read(&fd, &mut heard.lock().unwrap_or_else(|e| e.into_inner()), init);
        };
        if let Err(e) = std::thread::Builder::new().name("notified".into()).spawn(reader) {
            eprintln!("capexec learn: cannot read the service's notify socket as it arrives ({e}): a main process it names (MAINPID=) is not followed");
        }
        n
    }

    /// What has been said, every datagram that has arrived read.
    fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        let mut h = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        read(&self.fd, &mut h, self.init);
        h
    }

    fn ready(&self) -> bool {
        self.heard().ready
    }

    /// Called before the reload commands run: whether to wait for the
    /// reload's end (a service that never said RELOADING=1 would not tell).
    fn expect_reload(&self) -> bool {
        let mut h = self.heard();
        if h.reloads {
            h.reload = Reload::Asked;
        }
        h.reloads
    }

    fn reloaded(&self) -> bool {
        self.heard().reload == Reload::Done
    }
}

/// Reads every datagram that has arrived (without waiting), in the order
/// they were sent, into `h`; answers init's question.
fn read(fd: &OwnedFd, h: &mut Heard, init: libc::pid_t) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = nix::sys::socket::recv(std::os::fd::AsRawFd::as_raw_fd(fd), &mut buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
        let msg = String::from_utf8_lossy(&buf[..n]);
        if h.named.hear(&msg) {
            let _ = capexec_sandbox::mainpid::answer(init, h.named);
        }
        for line in msg.split('\n') {
            match line {
                "READY=1" => {
                    h.ready = true;
                    if h.reload == Reload::Running {
                        h.reload = Reload::Done;
                    }
                }
                "RELOADING=1" => {
                    h.reloads = true;
                    if h.reload == Reload::Asked {
                        h.reload = Reload::Running;
                    }
                }
                _ => {}
            }
        }
    }
}

/// When the service is ready for the workload: --wait-for, else the unit's
/// service.ready_address, TCP preopens and exact TCP bind grants, else a
/// forking service's pid file (else, once it runs, READY=1 of a notify
/// service, else the first socket it binds: see `record`). None with --no-wait.
fn ready_addresses(a: &LearnArgs, spec: &ServiceSpec) -> Result<Vec<Ready>, CmdError> {
    if a.no_wait {
        return Ok(Vec::new());
    }
    if !a.wait_for.is_empty() {
        return a.wait_for.iter().map(|w| Ready::parse(w)).collect();
    }
    let mut out: Vec<Ready> = spec.service.ready_address.iter().cloned().map(Ready::Addr).collect();
    for p in &spec.preopen {
        if let capexec_decl::spec::PreopenKind::Listen { address: capexec_decl::spec::ListenAddr::Tcp(addr), .. } = &p.kind {
            out.push(Ready::Addr(ReadyAddr::Tcp(*addr)));
        }
    }
    for g in &spec.broker.bind {
        let exact = g.ports.0 == g.ports.1 && g.ports.0 != 0 && g.prefix == if g.addr.is_ipv4() { 32 } else { 128 };
        if exact && g.proto != Some(capexec_decl::grants::Proto::Udp) && !g.addr.is_unspecified() {
            out.push(Ready::Addr(ReadyAddr::Tcp(SocketAddr::new(g.addr, g.ports.0))));
        }
    }
    let forking = spec.service.kind == capexec_decl::spec::ServiceType::Forking;
    if let (true, true, Some(p)) = (out.is_empty(), forking, &spec.service.pid_file) {
        out.push(Ready::PidFile(p.clone(), std::fs::metadata(p).and_then(|m| m.modified()).ok(), None));
    }
    Ok(out)
}

/// What to add to an early end's message when the program put itself in
/// the background (it called setsid and its main process ended with 0): a
/// service ends with its main process, and what it leaves with it, as under
/// systemd (sniproxy's unit, `Type=simple` with a forking program, relies on
/// `KillMode=process`; learning ended with "nothing recorded" and no why).
fn went_to_background(spec: &ServiceSpec, status: i32, obs: &Observations) -> String {
    use capexec_decl::spec::ServiceType;
    let simple = matches!(spec.service.kind, ServiceType::Simple | ServiceType::Exec);
    if status != 0 || !simple || !obs.syscalls.contains_key("setsid") {
        return String::new();
    }
    let kind = if spec.service.kind == ServiceType::Simple { "simple" } else { "exec" };
    format!(
        "\n  help: it went into the background (it called setsid, and its main process ended), and a {kind} service ends with its main process: \
         run it in the foreground (its option for that, often -f, -n or --foreground), or declare service.type = \"forking\" with service.pid_file"
    )
}

/// The service's status if it has ended (reaping it), without blocking.
fn service_ended(s: &Spawned) -> Option<i32> {
    match process::wait_child(s.pid, false) {
        Ok(Some(status)) => Some(capexec_sandbox::child::exit_code(status)),
        Ok(None) => None,
        Err(_) => Some(1),
    }
}

/// Sleeps up to `d`, returning a signal spawn() blocked that arrived meanwhile
/// (SIGCHLD or one a user sends to end the run).
fn pause(d: Duration) -> Option<i32> {
    let set = capexec_sandbox::launch::blocked_set();
    process::wait_signal(set.as_ref(), Some(d)).filter(|sig| *sig != libc::SIGCHLD)
}

/// How `drive` follows the run: `commands` records the commands run around
/// the program (start_post, reload; see `around`); `activity` counts the
/// program's calls (see `settle`).
struct Watching<'a> {
    commands: &'a dyn Fn(Tasks, usize, OwnedFd),
    activity: &'a std::sync::atomic::AtomicU64,
    /// Set as the workload starts (see `capexec_learn::record::record`).
    serving: &'a std::sync::atomic::AtomicBool,
}

/// Waits for the service to listen, runs the workload, and stops the service
/// when the workload exits.
fn drive(s: &Spawned, spec: &ServiceSpec, cmd: &str, ready: &[Ready], timeout: Duration, quiet_stdout: bool, watching: &Watching) -> Result<Ended, CmdError> {
    let deadline = Instant::now() + timeout;
    let calls = || watching.activity.load(std::sync::atomic::Ordering::Relaxed);
    // Where nothing says when, a service that made calls and then only
    // waits has ended its start: one that binds nothing (cron, irqbalance)
    // waited out the whole timeout before.
    let only_listening = ready.iter().all(|r| matches!(r, Ready::Listening(..)));
    let mut last = (calls(), Instant::now());
    // A start busy computing makes no calls for seconds (rspamd compiles
    // its rules): it is not idle while its processes use the CPU.
    let cpu = || capexec_sys::process::family(s.pid, false).into_iter().filter_map(capexec_sys::process::cpu_ticks).sum::<u64>();
    let busy = busy_ticks();
    let mut used = (cpu(), Instant::now());
    // One address answering is enough: services listen on all of theirs at
    // once, and an optional one (Redis's `-::1`) may be missing on this host.
    while !ready.is_empty() {
        // READY=1 (when the service speaks sd_notify), a forking start's
        // end, and one address answering (when there are any).
        let said = |r: &Ready| matches!(r, Ready::Notify(..) | Ready::StartEnded(..));
        let notified = ready.iter().filter(|r| said(r)).all(|r| r.met());
        let mut addresses = ready.iter().filter(|r| !said(r)).peekable();
        if notified && (addresses.peek().is_none() || addresses.any(|r| r.met())) {
            break;
        }
        if let Some(st) = service_ended(s) {
            let early = format!("{}: the service exited with status {st} before it was ready: nothing was recorded worth mining", spec.name);
            return Ok(Ended { status: st, workload: None, interrupted: false, early: Some(early) });
        }
        if only_listening {
            let now = calls();
            if used.1.elapsed() >= CPU_SAMPLE {
                let ticks = cpu();
                if ticks.saturating_sub(used.0) >= busy {
                    last.1 = Instant::now();
                }
                used = (ticks, Instant::now());
            }
            if now != last.0 {
                last = (now, Instant::now());
            } else if now > 0 && last.1.elapsed() >= IDLE_START {
                eprintln!(
                    "capexec learn: {}: nothing bound, and idle for {} s: starting the workload (--wait-for ADDR names an address to wait for)",
                    spec.name,
                    IDLE_START.as_secs()
                );
                break;
            }
        }
        if Instant::now() > deadline && only_listening {
            // Nothing declared when: a service that listens on nothing
            // (cron) still gets its workload.
            let what = ready.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
            eprintln!(
                "capexec learn: {}: not ready ({what}) after {} s: starting the workload anyway (--wait-for ADDR names the address to wait for, --no-wait starts at once)",
                spec.name,
                timeout.as_secs()
            );
            break;
        }
        if Instant::now() > deadline {
            stop(s, spec, None);
            let list: Vec<String> = ready.iter().map(|r| r.to_string()).collect();
            return Err(CmdError::Run(format!(
                "{}: not ready ({}) after {} s; raise --ready-timeout, or name the address with --wait-for",
                spec.name,
                list.join(", "),
                timeout.as_secs()
            )));
        }
        if let Some(sig) = pause(Duration::from_millis(20)) {
            stop(s, spec, None);
            return Err(CmdError::Run(format!("{}: interrupted by signal {sig} while waiting for the service to listen", spec.name)));
        }
    }
    // The commands the daemon runs once the service is ready, recorded as
    // the program is (they run in its sandbox later).
    if !spec.exec.start_post.is_empty() {
        around(s, spec, Tasks::StartPost, watching.commands);
    }
    watching.serving.store(true, std::sync::atomic::Ordering::Relaxed);
    // Its own process group, so that ending it ends whatever it started.
    let mut workload = std::process::Command::new("/bin/sh");
    workload.arg("-c").arg(cmd).process_group(0);
    if quiet_stdout {
        workload.stdout(std::io::stderr());
    }
    let mut child = workload.spawn().map_err(CmdError::file("start the workload with", "/bin/sh"))?;
    let pgid = child.id() as libc::pid_t;
    let mut interrupted = false;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                let workload = st.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0));
                // A reload after the workload: its commands (often `kill
                // -HUP $MAINPID`) are recorded, and what the program does
                // on it until the stop.
                if !spec.exec.reload.is_empty() && service_ended(s).is_none() {
                    reload(s, spec, ready, timeout, watching);
                    if let Some(st) = service_ended(s) {
                        // What it does at a stop went unrecorded: the mined
                        // file may refuse it (prometheus-pushgateway, which
                        // has no SIGHUP handler, is killed by its unit's
                        // `kill -HUP`, under systemd too).
                        let argv = spec.exec.reload.iter().map(|c| c.argv.join(" ")).collect::<Vec<_>>().join("; ");
                        eprintln!(
                            "capexec learn: warning: {}: the service ended (status {st}) on its reload ({}): what it does at a stop was not \
                             recorded; see whether the program handles that reload (one without a handler for the signal dies of it), and drop \
                             exec.reload if not",
                            spec.name,
                            safe(&argv)
                        );
                    }
                }
                // The stop as the daemon makes it: the stop commands
                // (recorded too), then the signal.
                if !spec.exec.stop.is_empty() && service_ended(s).is_none() {
                    around(s, spec, Tasks::Stop, watching.commands);
                }
                let status = stop(s, spec, Some(watching.activity));
                return Ok(Ended { status, workload: Some(workload), interrupted, early: None });
            }
            Ok(None) => {}
            Err(e) => return Err(CmdError::Run(format!("wait for the workload: {e}"))),
        }
        if let Some(st) = service_ended(s) {
            // The workload's own process group, which we created.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
            let _ = child.wait();
            let early = format!("{}: the service exited with status {st} while the workload ran", spec.name);
            return Ok(Ended { status: st, workload: None, interrupted: false, early: Some(early) });
        }
        if let Some(_sig) = pause(Duration::from_millis(20)) {
            // The user ends the run: end the workload; the service follows.
            interrupted = true;
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        }
    }
}

/// Runs the service's reload commands, and waits for the reload to end if
/// the service says when (RELOADING=1, then READY=1, up to `timeout`): a
/// reload started by a signal runs on after its command has returned, and
/// a stop in its midst is not what the service meets in use (haproxy's
/// master, stopped while it re-executes itself, neither ends nor signals
/// its old worker: the kill(2) that needs CAP_KILL went unrecorded, and the
/// daemon's stop of the mined service waited out its timeout).
fn reload(s: &Spawned, spec: &ServiceSpec, ready: &[Ready], timeout: Duration, watching: &Watching) {
    let notified = ready.iter().find_map(|r| match r {
        Ready::Notify(n) => Some(n),
        _ => None,
    });
    let told = notified.filter(|n| n.expect_reload());
    // How busy it is before: a program that polls (varnishncsa reads
    // varnishd's log in shared memory a thousand times a second) is never
    // silent, and its reload is over when it is back to that.
    let before = match told {
        Some(_) => Some(0),
        None => calls_over(s, watching.activity),
    };
    around(s, spec, Tasks::Reload, watching.commands);
    let Some(n) = told else { return settle(s, spec, timeout, watching.activity, before.unwrap_or(0)) };
    let deadline = Instant::now() + timeout;
    while !n.reloaded() && service_ended(s).is_none() {
        if Instant::now() > deadline {
            eprintln!(
                "capexec learn: warning: {}: no READY=1 ended its reload within {} s (--ready-timeout): stopping it mid-reload",
                spec.name,
                timeout.as_secs()
            );
            return;
        }
        if pause(Duration::from_millis(20)).is_some() {
            return;
        }
    }
}

/// Waits for a service that does not say when its reload is over to be
/// quiet: for [`QUIET`], no more calls of the program than `before` (what
/// it made in as long before the reload) and a quarter (up to `timeout`).
/// A stop right after `kill -USR1` met tinyproxy while it re-read its
/// configuration, and it missed the SIGTERM (its main loop looks for the
/// signal before it blocks, not while): the stop was a SIGKILL 20 s later,
/// and what it does at a stop (removing its pid file) went unrecorded.
fn settle(s: &Spawned, spec: &ServiceSpec, timeout: Duration, activity: &std::sync::atomic::AtomicU64, before: u64) {
    let deadline = Instant::now() + timeout;
    while let Some(calls) = calls_over(s, activity) {
        if calls <= before + before / 4 {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("capexec learn: warning: {}: still busy {} s after its reload (--ready-timeout): stopping it", spec.name, timeout.as_secs());
            return;
        }
    }
}

/// The program's calls over the next [`QUIET`]; `None` once it has ended
/// or the user ends the run.
fn calls_over(s: &Spawned, activity: &std::sync::atomic::AtomicU64) -> Option<u64> {
    let calls = || activity.load(std::sync::atomic::Ordering::Relaxed);
    let (first, start) = (calls(), Instant::now());
    while start.elapsed() < QUIET {
        if service_ended(s).is_some() || pause(Duration::from_millis(20)).is_some() {
            return None;
        }
    }
    Some(calls() - first)
}

/// The least learning waits for a service to be ready (`--ready-timeout`).
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a service that binds nothing waits without a call of its own
/// before learning takes its start as over (see `drive`).
const IDLE_START: Duration = Duration::from_secs(3);

/// How often `drive` looks at the CPU time of a service that binds nothing,
/// and the share of one CPU over that time that counts as busy, not idle.
const CPU_SAMPLE: Duration = Duration::from_millis(500);
const BUSY_PERCENT: u64 = 10;

/// [`BUSY_PERCENT`] of [`CPU_SAMPLE`] in clock ticks (at least one).
fn busy_ticks() -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as u64;
    (hz * CPU_SAMPLE.as_millis() as u64 * BUSY_PERCENT / 100_000).max(1)
}

/// How long a service is as quiet as before its reload before `settle`
/// takes the reload as done.
const QUIET: Duration = Duration::from_millis(200);

/// How many stop timeouts a program that is still making calls gets to end
/// in a learning run (see `stop`).
const STOP_GRACE: u32 = 4;

/// Runs the service's `which` commands through its task helper, recording
/// each; a failure is a warning (the run goes on: what was recorded
/// counts). A stop command may end the service, and its helper with it.
fn around(s: &Spawned, spec: &ServiceSpec, which: Tasks, learner: &dyn Fn(Tasks, usize, OwnedFd)) {
    // The helper runs the list's commands one after another: the n-th
    // listener is the n-th command's.
    let next = std::cell::Cell::new(0);
    let each = |l| {
        learner(which, next.get(), l);
        next.set(next.get() + 1);
    };
    match capexec_sandbox::launch::learn_tasks(s, which, &each) {
        // (A reload that ended the service is said by the caller.)
        Err(capexec_sandbox::launch::TaskError::Gone) if matches!(which, Tasks::Stop | Tasks::Reload) => {}
        Err(e) => {
            eprintln!("capexec learn: warning: {}: {} failed: {}", spec.name, which.key(), safe(&e.to_string()))
        }
        Ok(()) => {}
    }
}

/// Stops the service as the daemon would (its stop signal, then SIGKILL after
/// its stop timeout) and returns its exit status. With `activity` (the
/// recorder's count of the program's calls), a program still making calls
/// at the timeout gets more time, up to [`STOP_GRACE`] times it: every call
/// waits for the recorder, which on a busy machine made nginx's exit (the
/// unlink of its pid file) miss the timeout and go unrecorded.
fn stop(s: &Spawned, spec: &ServiceSpec, activity: Option<&std::sync::atomic::AtomicU64>) -> i32 {
    // The service we spawned: its main process; its init when that has
    // ended (a forking service's start: init forwards the signal to the
    // daemon its pid file names), as the daemon does.
    if let Ok(sig) = Signal::try_from(spec.service.stop_signal) {
        let main = s.main_pid.filter(|_| spec.service.kind != capexec_decl::spec::ServiceType::Forking);
        // SIGCONT after it, as systemd sends it (init does so for its own).
        match main.filter(|m| kill(Pid::from_raw(*m), sig).is_ok()) {
            Some(m) => drop(kill(Pid::from_raw(m), Signal::SIGCONT)),
            None => drop(kill(Pid::from_raw(s.pid), sig)),
        }
    }
    let calls = || activity.map(|a| a.load(std::sync::atomic::Ordering::Relaxed));
    let started = Instant::now();
    let (mut seen, mut since) = (calls(), started);
    loop {
        if let Some(st) = service_ended(s) {
            return st;
        }
        let busy = activity.is_some() && since.elapsed() < QUIET;
        let waited = started.elapsed();
        if waited >= spec.service.stop_timeout && (!busy || waited >= spec.service.stop_timeout * STOP_GRACE) {
            break;
        }
        pause(Duration::from_millis(20));
        if calls() != seen {
            (seen, since) = (calls(), Instant::now());
        }
    }
    if activity.is_some() {
        eprintln!(
            "capexec learn: warning: {}: still running {} s after its stop signal: killed; what it does at a stop was not recorded (service.stop_timeout)",
            spec.name,
            started.elapsed().as_secs()
        );
    }
    // The namespace init is our child; killing it ends its pid namespace.
    // Without one, what init adopted would outlive it (and the recording of
    // its calls with it): killed first, each process the service has, until
    // none but init is left (one may fork while they are listed).
    for _ in 0..100 {
        let family = process::family(s.pid, false);
        if family.len() <= 1 {
            break;
        }
        for p in family.iter().filter(|p| **p != s.pid) {
            process::signal_listed(*p, &family, libc::SIGKILL);
        }
        pause(Duration::from_millis(10));
    }
    let _ = kill(Pid::from_raw(s.pid), Signal::SIGKILL);
    process::wait_child(s.pid, true).ok().flatten().map_or(1, capexec_sandbox::child::exit_code)
}

fn print_report(r: &compare::Report, name: &str, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).expect("reports encode as JSON"));
        return;
    }
    println!(
        "{name}: {} distinct syscalls ({} calls); {:.1}% of them allowed; {} would have been refused",
        r.distinct_syscalls,
        r.calls,
        100.0 * r.syscall_coverage(),
        r.denials()
    );
    for (cat, list) in [("syscalls", &r.syscalls), ("files", &r.files), ("network", &r.network)] {
        println!("  {cat}: {}", if list.is_empty() { "nothing refused".to_owned() } else { format!("{} refused", list.len()) });
        for (d, also) in one_line_per_fix(list) {
            println!("    {} ({}){}: {}; to allow it: {}", safe(&d.what), d.how, safe(&also), safe(&d.why), safe(&d.fix));
        }
    }
    if !r.unused.is_empty() {
        println!("  declared but not used in this run (candidates for removal, if the run was thorough):");
        let mut by_key: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
        for u in &r.unused {
            let (k, v) = u.split_once(' ').unwrap_or((u, ""));
            by_key.entry(k).or_default().push(v);
        }
        for (k, v) in by_key {
            println!("    {k}: {}", safe(&v.join(", ")));
        }
    }
}

/// Whether a socket the service bound (see [`Ready::Listening`]) takes what
/// the workload sends: a datagram socket once bound, a stream socket once it
/// accepts a connection (on loopback for an address of every interface).
fn listens(b: &capexec_learn::record::Bound) -> bool {
    let (kind, rest) = b.address.split_once(':').unwrap_or_default();
    match kind {
        "tcp" | "udp" => {
            let Ok(mut addr) = rest.parse::<SocketAddr>() else { return false };
            if addr.port() == 0 {
                return false;
            }
            if b.datagram {
                return true;
            }
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
            }
            capexec_supervisor::readiness::accepts(&ReadyAddr::Tcp(addr))
        }
        "unix" if rest.starts_with('/') => b.datagram || capexec_supervisor::readiness::accepts(&ReadyAddr::Unix(rest.into())),
        _ => false,
    }
}
