//! `capexec daemon`: the event loop.
//!
//! Everything that happens — a control request, a launcher report, a timer, a
//! notify message, a signal — becomes an [`Ev`] on one channel, handled by
//! [`Daemon`] on a single-threaded tokio runtime. Per service, the event is
//! fed to its state machine ([`crate::state`]) and the actions it returns are
//! carried out here: launching (through the launcher process), signalling,
//! killing the cgroup, arming timers.

use crate::cgroup::{Hierarchy, ServiceCgroup};
use crate::control::{self, Access};
use crate::launcher::{self, LaunchRequest, LauncherEvent};
use crate::logs::{self, LogSink, Stream, Target};
use crate::paths::{Mode, Paths};
use crate::protocol::{LastExit, Request, Response, ServiceStatus};
use crate::state::{Action, Event, Machine, Outcome, State, Timer};
use crate::{fdpass, notify, SupervisorError};
use capexec_decl::{Context, ServiceSpec};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc, oneshot};

mod commands;
mod launching;
mod registry;
mod requests;
#[cfg(test)]
mod tests;
#[allow(unsafe_code)]
mod watch;

pub struct Config {
    pub paths: Paths,
    pub unit_path: Vec<PathBuf>,
    /// Name of the cgroup under which each service gets its own; `None`: no
    /// cgroups (user mode).
    pub cgroup_parent: Option<String>,
    pub log_max_size: u64,
    /// Force log files even where a journal runs.
    pub log_files: bool,
}

/// What a control request gets back.
enum Reply {
    Now(Response),
    /// Answer later, once the listed units have settled.
    Wait(WaitFor),
    Follow(Response, broadcast::Receiver<Arc<str>>),
}

struct WaitFor {
    units: Vec<String>,
    /// Done when every unit is in one of these states (and has no pending step).
    until: &'static [State],
    /// Report a unit ending in `failed` as an error.
    expect_running: bool,
}

struct Waiter {
    what: WaitFor,
    tx: oneshot::Sender<Reply>,
}

enum Ev {
    Control(Request, oneshot::Sender<Reply>),
    Launcher(LauncherEvent, Vec<OwnedFd>),
    LauncherGone,
    Timer {
        unit: String,
        timer: Timer,
        gen: u64,
    },
    /// A record of the kernel's audit log (see `crate::audit`).
    Audit(crate::audit::Record),
    /// Run `run` of `unit` accepts on its `service.ready_address`.
    Accepting {
        unit: String,
        run: u64,
    },
    /// A refusal by run `run` of `unit`'s broker or network guard, which
    /// report their own (see `reports`).
    Refused {
        unit: String,
        run: u64,
        denial: crate::trail::Denial,
    },
    /// A control connection from process `pid` of one of the services,
    /// refused (see `control::OwnServices`): into that service's trail.
    ControlRefused {
        pid: i32,
    },
    Notify {
        unit: String,
        run: u64,
        msg: String,
        /// The sender, as the kernel names it (SO_PASSCRED).
        pid: Option<i32>,
    },
    /// The privileged start_pre commands of a start (`token`) have ended.
    PreDone {
        unit: String,
        token: u64,
        result: Result<(), crate::privileged::PrivilegedError>,
    },
    /// A stage of a command job (see commands.rs) has ended.
    JobStep {
        job: u64,
        stage: commands::Stage,
        result: Result<(), commands::JobError>,
    },
    PollGone {
        unit: String,
    },
    Shutdown,
    Reload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// Found by name in the unit search path.
    Search,
    /// Started by path (`capexec start ./x.svc`).
    Path(PathBuf),
}

/// A step that waits until the service has stopped.
#[derive(Debug)]
enum Pending {
    None,
    Restart,
    Remove,
    Replace(Box<ServiceSpec>),
}

struct Run {
    init_pid: i32,
    init_fd: Option<OwnedFd>,
    main_pid: Option<i32>,
    main_fd: Option<OwnedFd>,
    /// Its broker (see `LauncherEvent::Launched`).
    broker_pid: Option<i32>,
    started: Instant,
    /// The main process a notify service named last (MAINPID=), which its
    /// init asks for when its main process ends (see capexec_sandbox::mainpid).
    announced: capexec_sandbox::mainpid::Announced,
}

struct Service {
    name: String,
    origin: Origin,
    spec: ServiceSpec,
    machine: Machine,
    /// Launch request id while the launcher works on it.
    launching: Option<u64>,
    run: Option<Run>,
    /// Incremented per launch; notify messages of an older run are ignored.
    run_id: u64,
    timer_gen: [u64; 4],
    cgroup: Option<ServiceCgroup>,
    log: Arc<LogSink>,
    notify: Option<tokio::task::AbortHandle>,
    /// The task reading the network guard's refusals of the current run.
    guard_reader: Option<tokio::task::AbortHandle>,
    /// Ends the reader of the run's /dev/log (`logs::read_syslog`).
    syslog_end: Option<tokio::sync::oneshot::Sender<()>>,
    /// The task waiting for the current run's `service.ready_address`.
    ready_probe: Option<tokio::task::AbortHandle>,
    status_text: Option<String>,
    /// The current run has said RELOADING=1: it announces its reloads
    /// (systemd's protocol), and a reload ends with its READY=1.
    announces_reloads: bool,
    /// RELOADING=1 has come, and no READY=1 since.
    reloading: bool,
    /// Notifications of the current run that came before the launcher's
    /// report of it (a notify service's READY=1 can overtake it): judged
    /// once the run's pids are known.
    early_notify: Vec<(String, Option<i32>)>,
    /// What the kernel refused the service (see `crate::trail`).
    trail: crate::trail::Trail,
    last_exit: Option<(Option<i32>, Outcome, Instant)>,
    error: Option<String>,
    pending: Pending,
    gone_polls: u32,
    /// The start whose privileged start_pre commands run now.
    pre_running: Option<u64>,
}

impl Service {
    /// A refusal into the trail, and the service's log at a bounded rate.
    fn deny(&mut self, d: crate::trail::Denial) {
        if let Some(line) = self.trail.add(d, Instant::now()) {
            for l in line.lines() {
                self.log.note(l);
            }
        }
    }
}

fn timer_index(t: Timer) -> usize {
    match t {
        Timer::Ready => 0,
        Timer::Watchdog => 1,
        Timer::Stop => 2,
        Timer::Restart => 3,
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Stopped => "stopped",
        State::Starting => "starting",
        State::Running => "running",
        State::Stopping => "stopping",
        State::Exited => "exited",
        State::Failed => "failed",
        State::WaitingToRestart => "waiting-to-restart",
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::ExitFailure => "exit-failure",
        Outcome::SpawnFailed => "spawn-failed",
        Outcome::ReadyTimeout => "ready-timeout",
        Outcome::WatchdogTimeout => "watchdog-timeout",
        Outcome::StartLimit => "start-limit",
        Outcome::ConditionUnmet => "condition-unmet",
    }
}

const SETTLED: &[State] = &[State::Stopped, State::Exited, State::Failed];
const STARTED: &[State] = &[State::Running, State::Stopped, State::Exited, State::Failed, State::WaitingToRestart];

/// Encoded launch requests with their fds, on their way to the launcher.
type LaunchQueue = mpsc::UnboundedSender<(Vec<u8>, Vec<OwnedFd>)>;

fn pidfd_signal(fd: &OwnedFd, sig: i32) -> bool {
    capexec_sys::process::pidfd_send_signal(fd.as_fd(), sig).is_ok()
}

struct Daemon {
    cfg: Config,
    ctx: Context,
    services: BTreeMap<String, Service>,
    /// Declarations in the search path that do not validate: name → error.
    broken: BTreeMap<String, String>,
    enabled: BTreeMap<String, bool>,
    cgroups: Option<Hierarchy>,
    log_target: Target,
    tx: mpsc::UnboundedSender<Ev>,
    launch_tx: LaunchQueue,
    next_launch: u64,
    /// Launch id → unit.
    launches: BTreeMap<u64, String>,
    /// Command lists at work (start_post, reload), by id.
    jobs: BTreeMap<u64, commands::Job>,
    /// `capexec reload NAME...` requests waiting for their commands.
    reloads: BTreeMap<u64, commands::ReloadGroup>,
    queue: VecDeque<(String, Event)>,
    waiters: Vec<Waiter>,
    shutting_down: bool,
    rootless: bool,
    /// Landlock domains (by the id the kernel logs) → the unit whose init
    /// made them, learned from their first denial's domain record.
    domains: std::collections::HashMap<String, String>,
    /// Landlock denials of a domain not known yet (see `audit`).
    unplaced: Vec<crate::audit::Record>,
    /// Records of processes of a run not reported yet (`before_launched`).
    early_audit: Vec<crate::audit::Record>,
}

/// Runs the daemon until SIGTERM/SIGINT (after stopping every service) or a
/// fatal error. Call from a single-threaded process: the launcher is forked here.
pub fn run(cfg: Config) -> Result<(), SupervisorError> {
    prepare_dirs(&cfg.paths)?;
    let lock = take_lock(&cfg.paths)?;
    // More services mean more pipes and sockets than the usual soft limit of 1024.
    raise_nofile();
    let launcher = launcher::fork_launcher().map_err(SupervisorError::sys("fork the launcher"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(SupervisorError::sys("create the event loop"))?;
    let r = rt.block_on(main(cfg, launcher));
    drop(lock);
    r
}

/// The denial trail's source: the kernel's audit records, read on a thread
/// of their own (the socket blocks) and handed to the event loop. Without
/// it (no audit in the kernel, no CAP_AUDIT_READ) services run as before,
/// with no trail.
fn start_audit_reader(tx: mpsc::UnboundedSender<Ev>) {
    let reader = match crate::audit::open(crate::audit::FirstNetwork::open().as_ref()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("no denial trail: {e} (refusals by Landlock and seccomp are not reported)");
            return;
        }
    };
    if reader.enabled_audit {
        tracing::info!("enabled the kernel's audit for the denial trail (it was off; with no auditd the kernel also prints its records, rate-limited)");
    }
    let spawned = std::thread::Builder::new().name("audit".into()).spawn(move || loop {
        match reader.next() {
            Ok(r) => {
                if tx.send(Ev::Audit(r)).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("the denial trail stopped: reading the audit log: {e}");
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("no denial trail: start its reader: {e}");
    }
}

fn prepare_dirs(p: &Paths) -> Result<(), SupervisorError> {
    use std::os::unix::fs::PermissionsExt;
    let runtime_mode = if p.mode == Mode::User { 0o700 } else { 0o755 };
    for (dir, mode) in [(&p.runtime, runtime_mode), (&p.state, 0o755), (&p.logs, 0o750)] {
        std::fs::create_dir_all(dir).map_err(SupervisorError::path("create", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(SupervisorError::path("set permissions of", dir))?;
    }
    let notify = p.runtime.join("notify");
    std::fs::create_dir_all(&notify).map_err(SupervisorError::path("create", &notify))?;
    Ok(())
}

/// The daemon's lock, held (flock) for as long as the daemon runs.
fn take_lock(p: &Paths) -> Result<nix::fcntl::Flock<std::fs::File>, SupervisorError> {
    let path = p.lock();
    let f = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(SupervisorError::path("open", &path))?;
    let f = match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(f) => f,
        Err(_) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(SupervisorError::AlreadyRunning { runtime: p.runtime.clone(), pid: pid.trim().to_owned() });
        }
    };
    let _ = f.set_len(0);
    let _ = std::fs::write(&path, format!("{}\n", std::process::id()));
    Ok(f)
}

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

async fn main(cfg: Config, launcher: launcher::Launcher) -> Result<(), SupervisorError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let launcher_pid = launcher.pid;
    let launch_tx = start_launcher_io(launcher, tx.clone())?;
    // Signal handlers before the control socket: whoever sees the socket may
    // send SIGHUP (reload) or SIGTERM, which must not meet the default action.
    for (kind, ev) in
        [(tokio::signal::unix::SignalKind::terminate(), 0), (tokio::signal::unix::SignalKind::interrupt(), 0), (tokio::signal::unix::SignalKind::hangup(), 1)]
    {
        let mut s = tokio::signal::unix::signal(kind).map_err(SupervisorError::sys("install a signal handler"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let _ = tx.send(if ev == 0 { Ev::Shutdown } else { Ev::Reload });
            }
        });
    }
    let listener = bind_control(&cfg.paths)?;
    let own = control::OwnServices { launcher: Some(launcher_pid), cgroup_parent: cfg.cgroup_parent.clone() };
    tokio::spawn(accept_loop(listener, Access::new(cfg.paths.mode, own), tx.clone()));
    let cgroups = match (&cfg.cgroup_parent, Hierarchy::detect()) {
        (Some(_), Ok(h)) => Some(h),
        (Some(_), Err(e)) => {
            tracing::warn!("no cgroups: {e}; services are tracked through their pid namespace only and declared limits cannot be enforced");
            None
        }
        (None, _) => None,
    };
    let log_target = if cfg.log_files {
        Target::Files { dir: cfg.paths.logs.clone(), max_size: cfg.log_max_size, keep: 3 }
    } else {
        Target::detect(&cfg.paths.logs, cfg.log_max_size)
    };
    let rootless = !nix::unistd::geteuid().is_root();
    if !rootless {
        start_audit_reader(tx.clone());
    }
    let mut d = Daemon::new(cfg, Context::current(), cgroups, log_target, rootless, tx.clone(), launch_tx);
    tracing::info!(mode = ?d.cfg.paths.mode, socket = %d.cfg.paths.socket().display(), logs = %d.log_target.describe(), "capexec daemon ready");
    let initial = d.reload();
    if let Some(errors) = initial.get("errors").and_then(|e| e.as_object()) {
        for (unit, e) in errors {
            tracing::warn!("{unit}: not loaded: {}", e.as_str().unwrap_or_default());
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let ev = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(ev) => ev,
                Err(_) => {
                    tracing::error!("services did not stop in time; killing the rest");
                    break;
                }
            },
            None => rx.recv().await,
        };
        let Some(ev) = ev else { break };
        if let Ev::Shutdown = ev {
            if !d.shutting_down {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
                // A service with stop commands may take two stop timeouts:
                // theirs, then its stop signal's.
                let phases = |s: &Service| if s.spec.exec.stop.is_empty() { 1 } else { 2 };
                let longest = d.services.values().map(|s| s.spec.service.stop_timeout * phases(s)).max().unwrap_or_default();
                deadline = Some(tokio::time::Instant::now() + longest + Duration::from_secs(5));
            }
        }
        if !d.handle(ev) {
            break;
        }
        if d.shutting_down && d.services.values().all(|s| SETTLED.contains(&s.machine.state) && s.launching.is_none()) {
            break;
        }
    }
    for s in d.services.values() {
        if let Some(c) = &s.cgroup {
            let _ = c.kill_all();
            let _ = c.remove();
        }
    }
    let _ = std::fs::remove_file(d.cfg.paths.socket());
    tracing::info!("capexec daemon stopped");
    Ok(())
}

fn bind_control(p: &Paths) -> Result<tokio::net::UnixListener, SupervisorError> {
    use std::os::unix::fs::PermissionsExt;
    let sock = p.socket();
    // The socket is bound and made listening under a temporary name and then
    // renamed into place, so that its path appears only once it accepts
    // connections with its final mode: a client (or `capexec daemon & capexec
    // start`) that sees the path never meets the window between bind() and
    // listen(), where a connect fails with ECONNREFUSED.
    let tmp = sock.with_file_name(format!(".control.sock.{}", std::process::id()));
    // The lock is ours, so socket files left here are from a daemon that died.
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&tmp);
    let l = tokio::net::UnixListener::bind(&tmp).map_err(SupervisorError::path("listen on", &tmp))?;
    // System mode: anyone may connect, and SO_PEERCRED decides (so a refused user
    // gets a reply that says why). User mode: the directory is 0700 anyway.
    let mode = if p.mode == Mode::System { 0o666 } else { 0o600 };
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(SupervisorError::path("set permissions of", &tmp))?;
    std::fs::rename(&tmp, &sock).map_err(SupervisorError::path("move into place the control socket", &sock))?;
    Ok(l)
}

/// Writer and reader tasks for the launcher's socket. Writes go through a
/// queue so that the event loop never waits on a full socket (the launcher
/// may be busy writing its own reports, which only the reader drains).
fn start_launcher_io(l: launcher::Launcher, tx: mpsc::UnboundedSender<Ev>) -> Result<LaunchQueue, SupervisorError> {
    nix::fcntl::fcntl(l.sock.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .map_err(|e| SupervisorError::Sys { op: "make the launcher's socket non-blocking", source: e.into() })?;
    let fd = Arc::new(
        watch::watch(l.sock, tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE)
            .map_err(|source| SupervisorError::Sys { op: "watch the launcher's socket", source })?,
    );
    let (ltx, mut lrx) = mpsc::unbounded_channel::<(Vec<u8>, Vec<OwnedFd>)>();
    let wfd = fd.clone();
    tokio::spawn(async move {
        while let Some((data, fds)) = lrx.recv().await {
            loop {
                let Ok(mut guard) = wfd.writable().await else {
                    return;
                };
                match fdpass::send(wfd.get_ref().as_raw_fd(), &data, &fdpass::raw(&fds)) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => guard.clear_ready(),
                    Err(e) => {
                        tracing::error!("sending to the launcher: {e}");
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = Vec::new();
        loop {
            let Ok(mut guard) = fd.readable().await else {
                break;
            };
            match fdpass::recv(fd.get_ref().as_raw_fd(), &mut buf) {
                Ok(Some((n, fds))) => match serde_json::from_slice::<LauncherEvent>(&buf[..n]) {
                    Ok(ev) => {
                        let _ = tx.send(Ev::Launcher(ev, fds));
                    }
                    Err(e) => tracing::error!("malformed report from the launcher: {e}"),
                },
                Ok(None) => break,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => guard.clear_ready(),
                Err(e) => {
                    tracing::error!("receiving from the launcher: {e}");
                    break;
                }
            }
        }
        let _ = tx.send(Ev::LauncherGone);
    });
    Ok(ltx)
}

async fn accept_loop(l: tokio::net::UnixListener, access: Access, tx: mpsc::UnboundedSender<Ev>) {
    // Bounds the work a flood of connections can cause; each one is tiny.
    let slots = Arc::new(tokio::sync::Semaphore::new(256));
    loop {
        let Ok((stream, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let mut s = stream;
            let _ = s.write_all(Response::err("too many connections to the daemon; try again", None).to_line().as_bytes()).await;
            continue;
        };
        let access = access.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            serve(stream, access, tx).await;
            drop(permit);
        });
    }
}

async fn serve(stream: tokio::net::UnixStream, access: Access, tx: mpsc::UnboundedSender<Ev>) {
    let (mut r, mut w) = stream.into_split();
    let cred = r.as_ref().peer_cred();
    let refusal = match &cred {
        Ok(c) => access.check_peer(std::os::fd::AsFd::as_fd(r.as_ref()), c.uid(), c.gid(), c.pid()).err().map(|e| {
            let from_service = match e {
                crate::error::AccessDenied::FromService { pid } => Some(pid),
                _ => None,
            };
            (e.to_string(), from_service)
        }),
        Err(e) => Some((format!("cannot identify the peer (SO_PEERCRED): {e}"), None)),
    };
    if let Some((msg, from_service)) = refusal {
        tracing::warn!("refused a control connection: {msg}");
        if let Some(pid) = from_service {
            let _ = tx.send(Ev::ControlRefused { pid });
        }
        let _ = w.write_all(Response::err(format!("permission denied: {msg}"), None).to_line().as_bytes()).await;
        return;
    }
    let req = match tokio::time::timeout(Duration::from_secs(10), control::read_request(&mut r)).await {
        Ok(Ok(req)) => req,
        Ok(Err(resp)) => {
            let _ = w.write_all(resp.to_line().as_bytes()).await;
            return;
        }
        Err(_) => {
            let _ = w.write_all(Response::err("no request within 10 s", None).to_line().as_bytes()).await;
            return;
        }
    };
    let (rtx, rrx) = oneshot::channel();
    if tx.send(Ev::Control(req, rtx)).is_err() {
        return;
    }
    match rrx.await {
        Ok(Reply::Now(resp)) => {
            let _ = w.write_all(resp.to_line().as_bytes()).await;
        }
        Ok(Reply::Wait(_)) => {
            let _ = w.write_all(Response::err("internal: the daemon answered too early", None).to_line().as_bytes()).await;
        }
        Ok(Reply::Follow(first, mut lines)) => {
            if w.write_all(first.to_line().as_bytes()).await.is_err() {
                return;
            }
            let mut probe = [0u8; 1];
            loop {
                // Also watch the client: one that hangs up (EOF) or sends anything
                // ends the follow, even while the service is silent.
                let next = tokio::select! {
                    l = lines.recv() => l,
                    _ = tokio::io::AsyncReadExt::read(&mut r, &mut probe) => break,
                };
                let line = match next {
                    Ok(l) => json!({"line": &*l}),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        json!({"line": format!("capexec: {n} lines skipped (the reader was too slow)")})
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let resp = Response::ok(line);
                if w.write_all(resp.to_line().as_bytes()).await.is_err() {
                    break;
                }
            }
        }
        Err(_) => {
            let _ = w.write_all(Response::err("the daemon is shutting down", None).to_line().as_bytes()).await;
        }
    }
}

impl Daemon {
    /// A daemon with no service loaded yet. Launches go to `launch_tx` (the
    /// launcher's queue; a test's fake launcher), every event comes back on `tx`.
    fn new(
        cfg: Config,
        ctx: Context,
        cgroups: Option<Hierarchy>,
        log_target: Target,
        rootless: bool,
        tx: mpsc::UnboundedSender<Ev>,
        launch_tx: LaunchQueue,
    ) -> Daemon {
        let enabled = std::fs::read(cfg.paths.enabled_file()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Daemon {
            ctx,
            cfg,
            services: BTreeMap::new(),
            broken: BTreeMap::new(),
            enabled,
            cgroups,
            log_target,
            tx,
            launch_tx,
            next_launch: 1,
            launches: BTreeMap::new(),
            jobs: BTreeMap::new(),
            reloads: BTreeMap::new(),
            queue: VecDeque::new(),
            waiters: Vec::new(),
            shutting_down: false,
            rootless,
            domains: std::collections::HashMap::new(),
            unplaced: Vec::new(),
            early_audit: Vec::new(),
        }
    }

    /// false: stop the loop.
    fn handle(&mut self, ev: Ev) -> bool {
        match ev {
            Ev::Control(Request::Reload { units }, reply) if !units.is_empty() => self.reload_units(units, reply),
            Ev::Control(req, reply) => match self.control(req) {
                Reply::Wait(what) => self.waiters.push(Waiter { what, tx: reply }),
                r => {
                    let _ = reply.send(r);
                }
            },
            Ev::Launcher(ev, fds) => self.launcher_event(ev, fds),
            Ev::LauncherGone => {
                tracing::error!("the launcher process ended unexpectedly; every service ended with it (pid namespaces) — stopping the daemon");
                return false;
            }
            Ev::Timer { unit, timer, gen } => {
                if let Some(s) = self.services.get(&unit) {
                    if s.timer_gen[timer_index(timer)] == gen {
                        let ev = match timer {
                            Timer::Ready => Event::ReadyTimeout,
                            Timer::Watchdog => Event::WatchdogTimeout,
                            Timer::Stop => Event::StopTimeout,
                            Timer::Restart => Event::RestartTimer,
                        };
                        if timer == Timer::Watchdog {
                            s.log.note("watchdog timeout: no WATCHDOG=1 in time, restarting");
                        }
                        self.queue.push_back((unit, ev));
                    }
                }
            }
            Ev::Notify { unit, run, msg, pid } => self.notify(&unit, run, &msg, pid),
            Ev::Audit(r) => self.audit(r),
            Ev::Accepting { unit, run } => {
                if let Some(s) = self.services.get(&unit).filter(|s| s.run_id == run && s.run.is_some()) {
                    let addrs: Vec<String> = s.spec.service.ready_address.iter().map(|a| a.to_string()).collect();
                    s.log.note(&format!("ready: accepting on {}", addrs.join(" or ")));
                    self.queue.push_back((unit, Event::Ready));
                }
            }
            Ev::ControlRefused { pid } => {
                if let Some(s) = self.unit_of(pid).and_then(|u| self.services.get_mut(&u)) {
                    s.deny(crate::trail::Denial {
                        at: Some(std::time::SystemTime::now()),
                        mechanism: "daemon",
                        what: "a request on capexec's control socket (start, stop, ...)".into(),
                        fix: "nothing: a service may not control the daemon; run capexec commands from the host".into(),
                        pid: Some(pid),
                        count: 1,
                    });
                }
            }
            Ev::Refused { unit, run, denial } => {
                if let Some(s) = self.services.get_mut(&unit).filter(|s| s.run_id == run) {
                    s.deny(denial);
                }
            }
            Ev::PreDone { unit, token, result } => self.pre_done(&unit, token, result),
            Ev::JobStep { job, stage, result } => self.job_step(job, stage, result),
            Ev::PollGone { unit } => self.check_gone(&unit),
            Ev::Shutdown => {
                if !self.shutting_down {
                    tracing::info!("stopping every service");
                    self.shutting_down = true;
                    let names: Vec<String> = self.services.keys().cloned().collect();
                    for n in names {
                        if let Some(s) = self.services.get_mut(&n) {
                            s.pending = Pending::None;
                        }
                        self.queue.push_back((n, Event::StopRequested));
                    }
                }
            }
            Ev::Reload => {
                let r = self.reload();
                tracing::info!("reloaded declarations: {r}");
            }
        }
        self.process();
        true
    }

    /// Feeds queued events to their machines and carries out the actions.
    fn process(&mut self) {
        while let Some((name, ev)) = self.queue.pop_front() {
            let Some(s) = self.services.get_mut(&name) else {
                continue;
            };
            let before = s.machine.state;
            let actions = s.machine.handle(ev, Instant::now());
            let after = s.machine.state;
            if before != after {
                tracing::debug!(unit = %name, ?ev, from = state_name(before), to = state_name(after), "transition");
            }
            for a in actions {
                self.act(&name, a);
            }
            if before == State::Starting && after == State::Running {
                self.started(&name);
            }
            if before != after && SETTLED.contains(&after) {
                self.settled(&name);
            }
        }
        self.wake_waiters();
    }

    fn act(&mut self, name: &str, a: Action) {
        match a {
            Action::Launch => self.launch(name),
            Action::SendStopSignal => self.send_stop_signal(name),
            Action::RunStopCommands => self.stopping(name),
            Action::KillAll => {
                let s = &self.services[name];
                if let Some(c) = &s.cgroup {
                    if let Err(e) = c.kill_all() {
                        tracing::warn!(unit = name, "cgroup kill: {e}");
                    }
                }
                if let Some(fd) = s.run.as_ref().and_then(|r| r.init_fd.as_ref()) {
                    pidfd_signal(fd, libc::SIGKILL);
                }
                self.check_gone(name);
            }
            Action::ArmTimer(t, d) => self.arm(name, t, d),
            Action::CancelTimer(t) => {
                if let Some(s) = self.services.get_mut(name) {
                    s.timer_gen[timer_index(t)] += 1;
                }
            }
        }
    }

    /// The declared stop signal to the service's main process, then SIGCONT
    /// as systemd sends it: a stopped process would keep the stop signal
    /// pending until the stop timeout's SIGKILL.
    fn send_stop_signal(&self, name: &str) {
        let s = &self.services[name];
        let sig = s.spec.service.stop_signal;
        if let Some(run) = &s.run {
            let sent = run.main_fd.as_ref().is_some_and(|fd| pidfd_signal(fd, sig));
            if let Some(fd) = run.main_fd.as_ref().filter(|_| sent) {
                pidfd_signal(fd, libc::SIGCONT);
            }
            if !sent {
                // No main process (it ended, or was never seen): the init
                // forwards the usual stop signals to whatever is left.
                if let Some(fd) = &run.init_fd {
                    pidfd_signal(fd, sig);
                }
            }
        }
    }

    fn arm(&mut self, name: &str, t: Timer, d: Duration) {
        let Some(s) = self.services.get_mut(name) else {
            return;
        };
        s.timer_gen[timer_index(t)] += 1;
        let gen = s.timer_gen[timer_index(t)];
        let tx = self.tx.clone();
        let unit = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tx.send(Ev::Timer { unit, timer: t, gen });
        });
    }

    /// Feeds AllGone once nothing of the service is left; polls the cgroup
    /// while processes are still dying.
    fn check_gone(&mut self, name: &str) {
        let Some(s) = self.services.get_mut(name) else {
            return;
        };
        if s.machine.state != State::Stopping || s.launching.is_some() || s.run.is_some() {
            return;
        }
        let empty = s.cgroup.as_ref().is_none_or(|c| c.is_empty());
        if empty || s.gone_polls > 500 {
            if !empty {
                tracing::error!(unit = name, "processes remain in the cgroup after 10 s of killing; giving up on them");
            }
            s.gone_polls = 0;
            self.queue.push_back((name.to_owned(), Event::AllGone));
        } else {
            s.gone_polls += 1;
            if let Some(c) = &s.cgroup {
                let _ = c.kill_all();
            }
            let tx = self.tx.clone();
            let unit = name.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(Ev::PollGone { unit });
            });
        }
    }

    /// The service reached stopped, exited or failed: release what the run
    /// held and carry out a step that waited for it.
    fn settled(&mut self, name: &str) {
        self.end_announced(name);
        let Some(s) = self.services.get_mut(name) else {
            return;
        };
        if let Some(n) = s.notify.take() {
            n.abort();
        }
        for task in [s.guard_reader.take(), s.ready_probe.take()].into_iter().flatten() {
            task.abort();
        }
        if let Some(end) = s.syslog_end.take() {
            let _ = end.send(());
        }
        let _ = std::fs::remove_dir_all(self.cfg.paths.notify_dir(name));
        if let Some(c) = s.cgroup.take() {
            let _ = c.remove();
        }
        capexec_sandbox::resources::remove_runtime_directories(&s.spec);
        let state = s.machine.state;
        let outcome = s.machine.outcome.map(outcome_name).unwrap_or("success");
        s.log.note(&format!("{} ({outcome})", state_name(state)));
        if self.shutting_down {
            return;
        }
        match std::mem::replace(&mut s.pending, Pending::None) {
            Pending::None => {}
            Pending::Restart => self.queue.push_back((name.to_owned(), Event::StartRequested)),
            Pending::Remove => {
                self.services.remove(name);
            }
            Pending::Replace(spec) => {
                s.machine = Machine::new(spec.service.clone());
                s.spec = *spec;
                self.queue.push_back((name.to_owned(), Event::StartRequested));
            }
        }
    }

    fn notify(&mut self, name: &str, run: u64, msg: &str, pid: Option<i32>) {
        let Some(s) = self.services.get_mut(name) else { return };
        if s.run_id != run {
            return; // from a run that has ended
        }
        let Some(_) = &s.run else {
            if s.early_notify.len() < 16 {
                s.early_notify.push((msg.to_owned(), pid));
            }
            return;
        };
        // Anyone may send to the socket; only the service is listened to:
        // its init (a forking service's readiness), its main process, or a
        // process they started.
        let from_service =
            s.run.as_ref().is_some_and(|r| pid.is_some_and(|p| p == r.init_pid || Some(p) == r.main_pid || crate::trail::descends_from(p, r.init_pid)));
        if !from_service {
            tracing::warn!(unit = name, sender = pid, "ignored a notification from a process that is not the service's");
            return;
        }
        if let Some(r) = s.run.as_mut() {
            let before = r.announced;
            let asked = r.announced.hear(msg);
            if r.announced != before {
                take_main(name, r, &s.log, s.spec.namespaces.pid);
            }
            // Only init's question: here the sender is known.
            if asked && pid == Some(r.init_pid) {
                if let Err(e) = capexec_sandbox::mainpid::answer(r.init_pid, r.announced) {
                    tracing::warn!(unit = name, "tell init {} which process is the main one: {e}", r.init_pid);
                }
            }
        }
        let mut ping = false;
        let mut notices = Vec::new();
        for line in msg.lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => {
                    self.queue.push_back((name.to_owned(), Event::Ready));
                    s.reloading = false;
                    notices.push(false);
                }
                Some(("RELOADING", "1")) => {
                    (s.announces_reloads, s.reloading) = (true, true);
                    notices.push(true);
                }
                Some(("STATUS", v)) => s.status_text = Some(v.chars().take(512).collect()),
                Some(("WATCHDOG", "1")) => ping = true,
                Some(("WATCHDOG", "trigger")) => self.queue.push_back((name.to_owned(), Event::WatchdogTimeout)),
                _ => {}
            }
        }
        // A ping re-arms the watchdog (the machine armed it on becoming running).
        if let (true, State::Running, Some(w)) = (ping, s.machine.state, s.spec.service.watchdog) {
            self.arm(name, Timer::Watchdog, w);
        }
        for reloading in notices {
            self.reload_notice(name, reloading);
        }
    }

    /// The unit a process belongs to: its own pid, or one of its ancestors,
    /// is a run's init or main process.
    fn unit_of(&self, pid: i32) -> Option<String> {
        let runs: std::collections::HashMap<i32, &str> = self
            .services
            .iter()
            .filter_map(|(n, s)| s.run.as_ref().map(|r| (r, n.as_str())))
            .flat_map(|(r, n)| std::iter::once((r.init_pid, n)).chain(r.main_pid.map(|m| (m, n))))
            .collect();
        crate::trail::lineage(pid).find_map(|p| runs.get(&p).map(|n| (*n).to_owned()))
    }

    /// The service whose broker is `pid` (itself, not its children: the
    /// binder's own domain is no layer of the service's). Only for Landlock
    /// domains: the broker's layer is the service's too, its seccomp filter
    /// is not (a kill by it is no refusal a declaration could allow).
    fn unit_of_broker(&self, pid: i32) -> Option<String> {
        self.services.iter().find(|(_, s)| s.run.as_ref().is_some_and(|r| r.broker_pid == Some(pid))).map(|(n, _)| n.clone())
    }

    /// Whether `r`, whose process `pid` belongs to no known run, must wait
    /// for a launch the launcher has not reported yet (a program refused at
    /// once can be faster than that report): kept, bounded, and taken again
    /// when a run is reported.
    fn before_launched(&mut self, r: &crate::audit::Record, pid: i32) -> bool {
        let launching = self.services.values().any(|s| s.launching.is_some());
        if !launching || self.unit_of(pid).is_some() {
            return false;
        }
        if self.early_audit.len() >= 64 {
            self.early_audit.remove(0);
        }
        self.early_audit.push(r.clone());
        true
    }

    /// A run was reported: the records that waited for one, again.
    fn launched_audit(&mut self) {
        for r in std::mem::take(&mut self.early_audit) {
            self.audit(r);
        }
    }

    /// A record of what the kernel refused: into the trail of the service
    /// it happened in, and its log at a bounded rate.
    fn audit(&mut self, r: crate::audit::Record) {
        use crate::audit::Record;
        let unit = match &r {
            Record::LandlockDomain { domain, pid } => {
                if self.before_launched(&r, *pid) {
                    return;
                }
                if let Some(u) = self.unit_of(*pid).or_else(|| self.unit_of_broker(*pid)) {
                    // Domains end with their services; the map only grows
                    // by first denials, so an occasional reset is enough.
                    if self.domains.len() >= 4096 {
                        self.domains.clear();
                    }
                    self.domains.insert(domain.clone(), u);
                }
                // The kernel writes a domain's first denial before the
                // record that names the domain: those waited for it.
                let (now, later): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.unplaced).into_iter().partition(|a| matches!(a, Record::LandlockAccess { domain: d, .. } if d == domain));
                self.unplaced = later;
                for a in now {
                    self.audit(a);
                }
                return;
            }
            Record::LandlockAccess { domain, .. } => match self.domains.get(domain).cloned() {
                Some(u) => Some(u),
                None => {
                    // Bounded: a domain that never gets its record is no service's.
                    if self.unplaced.len() >= 64 {
                        self.unplaced.remove(0);
                    }
                    self.unplaced.push(r);
                    return;
                }
            },
            Record::Seccomp { pid, .. } => {
                if self.before_launched(&r, *pid) {
                    return;
                }
                self.unit_of(*pid)
            }
            // Another capexec's (`capexec run` waits for its own).
            Record::Marker(_) => return,
        };
        let Some(s) = unit.and_then(|u| self.services.get_mut(&u)) else { return };
        let Some((mechanism, what, fix)) = crate::trail::describe(&r, &s.spec) else { return };
        let pid = match &r {
            Record::Seccomp { pid, .. } => Some(*pid),
            _ => None,
        };
        s.deny(crate::trail::Denial { at: Some(std::time::SystemTime::now()), mechanism, what, fix, pid, count: 1 });
    }

    fn wake_waiters(&mut self) {
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i].what;
            let done = w.units.iter().all(|u| match self.services.get(u) {
                None => true,
                Some(s) => w.until.contains(&s.machine.state) && matches!(s.pending, Pending::None) && s.launching.is_none(),
            });
            if done {
                let Waiter { what: w, tx } = self.waiters.swap_remove(i);
                let statuses: Vec<ServiceStatus> = w.units.iter().filter_map(|u| self.services.get(u)).map(|s| self.status_of(s)).collect();
                // Failed, or waiting to retry a run that could not even start.
                let failed: Vec<&ServiceStatus> = statuses
                    .iter()
                    .filter(|s| w.expect_running && (s.state == "failed" || (s.state == "waiting-to-restart" && s.result.as_deref() == Some("spawn-failed"))))
                    .collect();
                let resp = if failed.is_empty() {
                    Response::ok(json!(statuses))
                } else {
                    let names: Vec<String> = failed.iter().map(|s| format!("{}: {}", s.name, s.error.clone().unwrap_or_else(|| "failed".into()))).collect();
                    let mut r = Response::err(
                        format!("failed to start: {}", names.join("; ")),
                        Some(format!("see `capexec status {}` and `capexec logs {}`", failed[0].name, failed[0].name)),
                    );
                    r.result = json!(statuses);
                    r
                };
                let _ = tx.send(Reply::Now(resp));
            } else {
                i += 1;
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SupervisorError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SupervisorError::Sys { op: "create a log pipe", source: e.into() })
}

/// The process a notify service named its main one (MAINPID=, in its own pid
/// namespace) becomes the run's main process here: stop signals go to it,
/// status shows it. A pid that names no process of the run is ignored.
fn take_main(unit: &str, r: &mut Run, log: &LogSink, pid_ns: bool) {
    let Some(named) = r.announced.pid else { return };
    let host = match pid_ns {
        true => capexec_sys::process::in_family_as(r.init_pid, named),
        false => Some(named).filter(|p| crate::trail::descends_from(*p, r.init_pid)),
    };
    let Some(host) = host.filter(|p| Some(*p) != r.main_pid) else { return };
    let Ok(fd) = capexec_sys::pidfd_open(host, 0) else { return };
    (r.main_pid, r.main_fd) = (Some(host), Some(fd));
    log.note(&format!("main process is now pid {host} (MAINPID= from the service)"));
    tracing::info!(unit, main_pid = host, "the service named its main process");
}
