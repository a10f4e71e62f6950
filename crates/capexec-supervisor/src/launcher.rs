//! The launcher: a small single-threaded process, forked by `capexec daemon`
//! before the tokio runtime starts, that turns launch requests into confined
//! services.
//!
//! Why a separate process: creating a sandbox forks, and after fork() in a
//! multi-threaded process only async-signal-safe calls are allowed — while
//! nearly all sandbox setup allocates. The launcher never has a second thread,
//! so `capexec_sandbox::spawn_with` is as safe here as in `capexec exec`.
//!
//! It is the parent of every service's namespace init, so it reaps them and
//! reports each exit — also of brokered services, whose init is cloned by
//! their broker process with CLONE_PARENT (see `spawn_brokered`). When the daemon dies (its end of the socket closes), the
//! launcher kills every service and exits; if the launcher itself is killed,
//! each init dies by PR_SET_PDEATHSIG and takes its pid namespace with it.

use crate::{fdpass, SupervisorError};
use capexec_decl::ServiceSpec;
use capexec_sys::process::{self, Forked};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Daemon → launcher. Carries four fds: the service's stdin, stdout, stderr,
/// and the pipe the daemon's denial trail reads the broker's refusals from.
#[derive(Debug, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub id: u64,
    pub spec: ServiceSpec,
    pub rootless: bool,
    /// cgroup.procs files to write the init's pid into before it runs.
    pub cgroup_procs: Vec<PathBuf>,
    /// v2 cgroup directory, killed through cgroup.kill if the daemon dies.
    pub cgroup_kill: Option<PathBuf>,
    /// The network guard's child cgroup of the service's (see
    /// `ServiceCgroup::guard`): the service's host sockets are opened, and its
    /// broker runs, from a process in it.
    pub supervisor_cgroup: Option<PathBuf>,
    /// Directory holding the daemon's notify socket, bound into the view.
    pub notify_dir: Option<PathBuf>,
}

/// Daemon → launcher.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum LauncherRequest {
    /// Start a service; carries its stdin, stdout, stderr and refusal pipe.
    Launch(Box<LaunchRequest>),
    /// Have the task helper of the running service whose init is `init_pid`
    /// run its `which` commands; answered with [`LauncherEvent::TaskDone`].
    Task { id: u64, init_pid: i32, which: capexec_sandbox::launch::Tasks },
}

/// Launcher → daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum LauncherEvent {
    /// The program was executed. Carries pidfds: the init's, then the main
    /// process's (when it is still there); then the receiving end of the
    /// service's /dev/log (with `syslog`); then, rootless, the listener of
    /// the program's refused calls (with `refusals`).
    Launched {
        id: u64,
        init_pid: i32,
        main_pid: Option<i32>,
        /// The service's broker process, whose Landlock domain the
        /// service's nests in: the kernel names a refusal of that layer by
        /// the broker's pid (see `trail::describe`, `fs.refer`).
        #[serde(default)]
        broker_pid: Option<i32>,
        #[serde(default)]
        syslog: bool,
        /// The listener's filter (the program's own, `seccomp::pack`ed),
        /// which says the errno each call it hands over gets: the daemon
        /// answers them (see `crate::refusals`).
        #[serde(default)]
        refusals: Option<Vec<u64>>,
    },
    Failed {
        id: u64,
        error: String,
        /// Not a failure: an `exec.condition` command said not to start.
        #[serde(default)]
        unmet: bool,
    },
    /// A namespace init ended (and with it, its pid namespace).
    Exited { init_pid: i32, code: i32 },
    /// The commands of a [`LauncherRequest::Task`] have ended.
    TaskDone { id: u64, result: Result<(), String> },
}

pub struct Launcher {
    pub pid: i32,
    /// The daemon's end of the seqpacket socket.
    pub sock: OwnedFd,
}

/// Forks the launcher. Fails unless the process is single-threaded (the
/// daemon calls this before it creates the tokio runtime).
pub fn fork_launcher() -> std::io::Result<Launcher> {
    let (daemon_end, launcher_end) = fdpass::socketpair()?;
    match process::fork("fork the launcher")? {
        Forked::Child => {
            drop(daemon_end);
            run(launcher_end)
        }
        Forked::Parent(pid) => {
            drop(launcher_end);
            Ok(Launcher { pid, sock: daemon_end })
        }
    }
}

struct Child {
    cgroup_kill: Option<PathBuf>,
    unit: String,
    /// The service's stderr, for the launcher's own messages about it
    /// (kept for brokered services only).
    stderr: Option<OwnedFd>,
    /// The channel to its task helper, and the task request it works on.
    tasks: Option<OwnedFd>,
    task: Option<u64>,
}

/// What the launcher is the parent of: services' namespace inits, and the
/// brokers of brokered services (broker pid → its service's init).
#[derive(Default)]
struct Children {
    services: BTreeMap<i32, Child>,
    brokers: BTreeMap<i32, i32>,
    /// Services cloned whose setup has not been seen to end (by init pid),
    /// in the order they were started.
    starting: BTreeMap<i32, Pending>,
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    capexec_sys::pidfd_open(pid, 0).ok()
}

fn send(sock: RawFd, ev: &LauncherEvent, fds: &[RawFd]) {
    let data = serde_json::to_vec(ev).expect("events serialise");
    // A failure means the daemon is gone; the next recv sees EOF and cleans up.
    let _ = fdpass::send(sock, &data, fds);
}

/// A service being set up: reported to the daemon once its setup ends.
struct Pending {
    id: u64,
    started: capexec_sandbox::launch::Starting,
    /// The program's filter, where its refusals come to a listener.
    judge: Option<Vec<u64>>,
    cgroup_kill: Option<PathBuf>,
    unit: String,
}

/// At most this many services setting up at once: each holds a few fds
/// until it exec'd, and two CPUs gain nothing from more.
const MAX_STARTING: usize = 16;

/// Reports the end of `pid`'s setup to the daemon: it runs (and is
/// supervised from now on) or it failed.
fn complete(sock: RawFd, children: &mut Children, pid: i32) {
    let Some(p) = children.starting.remove(&pid) else { return };
    match p.started.finish() {
        Ok(s) => {
            let main = s.main_pid.and_then(|m| pidfd_open(m).map(|fd| (m, fd)));
            children.services.insert(s.pid, Child { cgroup_kill: p.cgroup_kill, unit: p.unit, stderr: None, tasks: s.tasks, task: None });
            let main_pid = main.as_ref().map(|(m, _)| *m);
            let syslog = s.syslog.is_some();
            let (listener, refusals) = s.refusals.zip(p.judge).unzip();
            let mut pidfds = vec![s.pidfd];
            pidfds.extend(main.map(|(_, fd)| fd));
            pidfds.extend(s.syslog);
            pidfds.extend(listener);
            send(sock, &LauncherEvent::Launched { id: p.id, init_pid: s.pid, main_pid, broker_pid: None, syslog, refusals }, &fdpass::raw(&pidfds));
        }
        Err(e) => send(sock, &LauncherEvent::Failed { id: p.id, error: e.to_string(), unmet: e.condition_unmet() }, &[]),
    }
}

fn run(sock: OwnedFd) -> ! {
    let _ = nix::sys::prctl::set_name(c"capexec-launch");
    // SIGCHLD arrives through a signalfd. The terminal's SIGINT (and SIGTERM,
    // SIGHUP sent to the process group) are for the daemon, which then stops the
    // services in order: the launcher must outlive that.
    let mut blocked = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGCHLD] {
        blocked.add(s);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let sigfd = match SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("capexec-launch: signalfd: {e}");
            // The daemon sees EOF on its socket and reports it.
            process::exit_now(1)
        }
    };
    let host_env: Vec<(String, String)> = std::env::vars().collect();
    let mut children = Children::default();
    let mut buf = Vec::new();
    loop {
        let starting: Vec<i32> = children.starting.keys().copied().collect();
        // Services whose task helper works on a request: its answer polls readable.
        let working: Vec<i32> = children.services.iter().filter(|(_, c)| c.task.is_some() && c.tasks.is_some()).map(|(p, _)| *p).collect();
        let ready: Vec<bool> = {
            let mut pfd = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN), PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            pfd.extend(children.starting.values().map(|p| PollFd::new(p.started.setup_fd(), PollFlags::POLLIN)));
            pfd.extend(working.iter().filter_map(|p| children.services[p].tasks.as_ref()).map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)));
            if poll(&mut pfd, PollTimeout::NONE).is_err() {
                continue; // EINTR
            }
            pfd.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect()
        };
        for (pid, _) in starting.iter().zip(&ready[2..]).filter(|(_, r)| **r) {
            complete(sock.as_raw_fd(), &mut children, *pid);
        }
        for (pid, _) in working.iter().zip(&ready[2 + starting.len()..]).filter(|(_, r)| **r) {
            task_done(sock.as_raw_fd(), &mut children, *pid);
        }
        if ready[1] {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            reap(sock.as_raw_fd(), &mut children);
        }
        if ready[0] {
            match fdpass::recv(sock.as_raw_fd(), &mut buf) {
                Ok(Some((n, fds))) => {
                    let req: Result<LauncherRequest, _> = serde_json::from_slice(&buf[..n]);
                    match req {
                        Ok(LauncherRequest::Launch(req)) => launch(sock.as_raw_fd(), *req, fds, &host_env, &mut children),
                        Ok(LauncherRequest::Task { id, init_pid, which }) => task(sock.as_raw_fd(), &mut children, id, init_pid, which),
                        Err(e) => {
                            eprintln!("capexec-launch: malformed request from the daemon: {e}")
                        }
                    }
                }
                Ok(None) => shutdown(children),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {}
                Err(e) => {
                    eprintln!("capexec-launch: receive: {e}");
                    shutdown(children)
                }
            }
            reap(sock.as_raw_fd(), &mut children);
        }
    }
}

/// Hands a task request to the service's helper; its answer is read when it
/// polls readable ([`task_done`]).
fn task(sock: RawFd, children: &mut Children, id: u64, init_pid: i32, which: capexec_sandbox::launch::Tasks) {
    let fail = |error: String| send(sock, &LauncherEvent::TaskDone { id, result: Err(error) }, &[]);
    let Some(c) = children.services.get_mut(&init_pid) else { return fail("the service is not running".into()) };
    let Some(chan) = &c.tasks else { return fail("the service has no commands to run in its sandbox".into()) };
    if c.task.is_some() {
        return fail("the service's commands are running already".into());
    }
    match which.ask(chan.as_fd()) {
        Ok(()) => c.task = Some(id),
        Err(e) => {
            if matches!(e, capexec_sandbox::launch::TaskError::Gone) {
                c.tasks = None;
            }
            fail(e.to_string())
        }
    }
}

fn task_done(sock: RawFd, children: &mut Children, init_pid: i32) {
    let Some(c) = children.services.get_mut(&init_pid) else { return };
    let (Some(id), Some(chan)) = (c.task.take(), &c.tasks) else { return };
    let result = capexec_sandbox::launch::task_answer(chan.as_fd());
    if matches!(result, Err(capexec_sandbox::launch::TaskError::Gone)) {
        // The helper ended with the service: no more requests to it.
        c.tasks = None;
    }
    send(sock, &LauncherEvent::TaskDone { id, result: result.map_err(|e| e.to_string()) }, &[]);
}

fn launch(sock: RawFd, req: LaunchRequest, fds: Vec<OwnedFd>, host_env: &[(String, String)], children: &mut Children) {
    let fail = |error: String| send(sock, &LauncherEvent::Failed { id: req.id, error, unmet: false }, &[]);
    if fds.len() != 4 {
        return fail(format!("internal: launch request carried {} descriptors instead of 4", fds.len()));
    }
    let notify = match &req.notify_dir {
        Some(dir) => capexec_sandbox::plan::Notify::Socket { dir: dir.clone(), watchdog: req.spec.service.watchdog },
        None => capexec_sandbox::plan::Notify::None,
    };
    let extras = capexec_sandbox::plan::Extras {
        rootless: req.rootless,
        host_env,
        notify,
        broker: capexec_broker::contribution(&req.spec),
        syslog: true,
        // Rootless no audit log says what the kernel refused: the daemon
        // answers the refused calls itself, or the broker, whose listener
        // is the service's one (the plan says where it can).
        report_refusals: req.rootless,
        ..Default::default()
    };
    let plan = match capexec_sandbox::plan::compose(&req.spec, &extras) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    // Opened before the service exists, so a missing granted directory fails the start.
    let broker = match req.spec.has_broker() {
        false => None,
        true => match capexec_broker::Broker::prepare(&req.spec) {
            Ok(mut b) => {
                if let Ok(pipe) = fds[3].try_clone() {
                    b.report_to(pipe);
                }
                if plan.refusals_to_broker {
                    b.judge_refusals(plan.seccomp.clone(), &req.spec);
                }
                Some(b)
            }
            Err(e) => return fail(e.to_string()),
        },
    };
    let stdio = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];
    let mut opts = capexec_sandbox::SpawnOptions {
        stdio: Some(stdio),
        cgroup_procs: &req.cgroup_procs,
        clone_parent: false,
        learner: None,
        inherited: &[],
        ..Default::default()
    };
    let started = match (broker, &req.supervisor_cgroup) {
        (None, None) => {
            // Not waited for: the next request is read while this service
            // sets up (see `complete`), but never more than MAX_STARTING.
            if children.starting.len() >= MAX_STARTING {
                if let Some(oldest) = children.starting.keys().next().copied() {
                    complete(sock, children, oldest);
                }
            }
            match capexec_sandbox::launch::start(&plan, &opts) {
                Ok(s) => {
                    let judge = plan.report_refusals.is_some().then(|| capexec_sandbox::seccomp::pack(&plan.seccomp));
                    let pending = Pending { id: req.id, cgroup_kill: req.cgroup_kill.clone(), unit: req.spec.name.clone(), started: s, judge };
                    children.starting.insert(pending.started.pid, pending);
                    return;
                }
                Err(e) => Err(SupervisorError::Launch(e)),
            }
        }
        (b, cgroup) => {
            opts.clone_parent = true;
            spawn_brokered(&plan, &opts, b, cgroup.as_deref())
        }
    };
    match started {
        Ok(st) => {
            // Only a brokered service can be stopped by the launcher itself (its
            // broker died), the one case it writes to the service's log.
            let stderr = st.broker.and_then(|_| fds[2].try_clone().ok());
            children
                .services
                .insert(st.init_pid, Child { cgroup_kill: req.cgroup_kill.clone(), unit: req.spec.name.clone(), stderr, tasks: st.tasks, task: None });
            if let Some(b) = st.broker {
                children.brokers.insert(b, st.init_pid);
            }
            let main_pid = st.main.as_ref().map(|(m, _)| *m);
            let syslog = st.syslog.is_some();
            let mut pidfds = vec![st.init_pidfd];
            pidfds.extend(st.main.map(|(_, fd)| fd));
            pidfds.extend(st.syslog);
            send(
                sock,
                &LauncherEvent::Launched { id: req.id, init_pid: st.init_pid, main_pid, broker_pid: st.broker, syslog, refusals: None },
                &fdpass::raw(&pidfds),
            );
        }
        Err(e) => send(sock, &LauncherEvent::Failed { id: req.id, error: e.to_string(), unmet: e.condition_unmet() }, &[]),
    }
}

/// A started service, as the launcher tracks it.
struct Started {
    init_pid: i32,
    init_pidfd: OwnedFd,
    /// The service's own process and a pidfd of it, if it is still there.
    main: Option<(i32, OwnedFd)>,
    /// The broker process, for brokered services.
    broker: Option<i32>,
    /// The channel to the service's task helper.
    tasks: Option<OwnedFd>,
    /// The receiving end of the service's /dev/log.
    syslog: Option<OwnedFd>,
}

/// What the broker process reports once it has cloned the service; carries
/// the init's pidfd, then the main process's (with `main_pid`), then the
/// task helper's channel (with `tasks`), then the receiving end of the
/// service's /dev/log (with `syslog`).
#[derive(Serialize, Deserialize)]
struct BrokerReport {
    result: Result<BrokerStarted, String>,
    /// The error is an `exec.condition` command's "not now".
    #[serde(default)]
    unmet: bool,
}

#[derive(Serialize, Deserialize)]
struct BrokerStarted {
    init_pid: i32,
    main_pid: Option<i32>,
    tasks: bool,
    syslog: bool,
}

/// A brokered or guarded service: its broker is a process of its own, forked
/// from this single-threaded launcher. A guarded service's host sockets must
/// be created from its supervisor cgroup (see capexec_sandbox::netguard), so
/// the broker process moves there first; without grants it ends once the
/// service runs. It applies the Landlock layer it shares with the
/// service (`apply_broker_layer`: the broker may reach only processes in its
/// own domain or nested ones, so the service must be created under it), then
/// clones the service as the launcher's child (CLONE_PARENT: the launcher
/// reaps it and reports its exit as for any service) and reports its pids.
/// It then holds only its channels to the service, the grants' directories
/// and the service's stderr (where refusals are logged, so `capexec logs`
/// shows them), confines itself and serves until the service's init ends, or
/// the launcher does (PDEATHSIG). If the broker ends otherwise, `reap` stops
/// the service: without its broker it cannot work as declared.
fn spawn_brokered(
    plan: &capexec_sandbox::SetupPlan,
    opts: &capexec_sandbox::SpawnOptions,
    b: Option<capexec_broker::Broker>,
    supervisor_cgroup: Option<&std::path::Path>,
) -> Result<Started, SupervisorError> {
    let (ours, theirs) = fdpass::socketpair().map_err(SupervisorError::sys("create the broker's report socket"))?;
    let stderr = opts.stdio.map_or(2, |s| s[2]);
    let broker = match process::fork("fork the broker").map_err(SupervisorError::sys("fork the broker"))? {
        Forked::Child => {
            drop(ours);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let _ = nix::unistd::dup2(stderr, 2);
            broker_main(plan, opts, b, supervisor_cgroup, theirs)
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    let mut buf = Vec::new();
    let (n, fds) = match fdpass::recv(ours.as_raw_fd(), &mut buf) {
        Ok(Some(got)) => got,
        Ok(None) => return Err(SupervisorError::BrokerEnded),
        Err(e) => return Err(SupervisorError::Sys { op: "receive the broker's report", source: e }),
    };
    let report: BrokerReport = serde_json::from_slice(&buf[..n]).map_err(|e| SupervisorError::Broker(format!("internal: the broker's report: {e}")))?;
    let unmet = report.unmet;
    let started = report.result.map_err(|e| if unmet { SupervisorError::BrokerConditionUnmet(e) } else { SupervisorError::Broker(e) })?;
    let want = 1 + usize::from(started.main_pid.is_some()) + usize::from(started.tasks) + usize::from(started.syslog);
    if fds.len() != want {
        return Err(SupervisorError::Broker(format!("internal: the broker's report carried {} descriptors instead of {want}", fds.len())));
    }
    let mut fds = fds.into_iter();
    let init_pidfd = fds.next().expect("counted");
    let main = started.main_pid.zip(started.main_pid.and_then(|_| fds.next()));
    let tasks = if started.tasks { fds.next() } else { None };
    let syslog = if started.syslog { fds.next() } else { None };
    Ok(Started { init_pid: started.init_pid, init_pidfd, main, broker: Some(broker), tasks, syslog })
}

/// The broker process: see [`spawn_brokered`]. Never returns.
fn broker_main(
    plan: &capexec_sandbox::SetupPlan,
    opts: &capexec_sandbox::SpawnOptions,
    b: Option<capexec_broker::Broker>,
    supervisor_cgroup: Option<&std::path::Path>,
    report: OwnedFd,
) -> ! {
    let say = |r: &BrokerReport, fds: &[RawFd]| {
        let _ = fdpass::send(report.as_raw_fd(), &serde_json::to_vec(r).expect("reports serialise"), fds);
    };
    let joined = match supervisor_cgroup {
        Some(dir) => std::fs::write(dir.join("cgroup.procs"), "0").map_err(|e| format!("move the broker into cgroup {}: {e}", dir.display())),
        None => Ok(()),
    };
    // The launch enters the layer it shares with the service, just before
    // the service's clone (see `SpawnOptions::broker_layer`).
    let opts = capexec_sandbox::SpawnOptions { broker_layer: b.is_some(), ..*opts };
    let spawned = joined.map_err(|e| (e, false)).and_then(|()| capexec_sandbox::spawn_with(plan, &opts).map_err(|e| (e.to_string(), e.condition_unmet())));
    let mut s = match spawned {
        Ok(s) => s,
        Err((e, unmet)) => {
            say(&BrokerReport { result: Err(e), unmet }, &[]);
            process::exit_now(1)
        }
    };
    let main = s.main_pid.and_then(|m| pidfd_open(m).map(|fd| (m, fd)));
    let mut sent = vec![s.pidfd.as_raw_fd()];
    sent.extend(main.as_ref().map(|(_, fd)| fd.as_raw_fd()));
    sent.extend(s.tasks.as_ref().map(|fd| fd.as_raw_fd()));
    sent.extend(s.syslog.as_ref().map(|fd| fd.as_raw_fd()));
    let started = BrokerStarted { init_pid: s.pid, main_pid: main.as_ref().map(|(m, _)| *m), tasks: s.tasks.is_some(), syslog: s.syslog.is_some() };
    say(&BrokerReport { result: Ok(started), unmet: false }, &sent);
    drop(main);
    // The launcher's now; the broker must not hold the helper's channel
    // (nor read the service's log).
    drop(s.tasks.take());
    drop(s.syslog.take());
    let Some(b) = b else {
        // Only the sockets needed creating here; the launcher reaps the service.
        process::exit_now(0)
    };
    let ch =
        capexec_broker::Channels { listener: s.listener.take(), explicit: s.broker_channel.take(), dns: s.dns.take(), appends: std::mem::take(&mut s.appends) };
    let mut keep = b.fds();
    keep.extend(ch.fds());
    keep.extend([0, 1, 2, s.pidfd.as_raw_fd()]);
    let open: Vec<RawFd> =
        std::fs::read_dir("/proc/self/fd").map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
    // Inherited from the launcher (or the report socket): not the broker's to hold.
    for fd in open.into_iter().filter(|fd| !keep.contains(fd)) {
        let _ = nix::unistd::close(fd);
    }
    // The launcher's blocked signals: the broker takes the default actions.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let started = b
        .confine(plan.uid, plan.gid, None)
        .and_then(|()| b.start(ch, s.pid).map_err(|source| capexec_broker::BrokerError::Io { op: "start its threads", source }));
    let code = match started {
        Ok(running) => {
            // The threads block in their receive calls; the service's end is the broker's.
            // A pidfd polls readable once its process has ended.
            while poll(&mut [PollFd::new(s.pidfd.as_fd(), PollFlags::POLLIN)], PollTimeout::NONE).is_err() {}
            running.finish();
            0
        }
        Err(e) => {
            eprintln!("capexec: {e}");
            1
        }
    };
    process::exit_now(code)
}

fn reap(sock: RawFd, children: &mut Children) {
    while let Some((pid, status)) = process::reap_any() {
        let code = capexec_sandbox::child::exit_code(status);
        // Ended before its setup was seen to end (it exec'd and exited at
        // once, say): report the launch first, then the exit.
        complete(sock, children, pid);
        if let Some(c) = children.services.remove(&pid) {
            children.brokers.retain(|_, init| *init != pid);
            if let Some(id) = c.task {
                send(sock, &LauncherEvent::TaskDone { id, result: Err("the service ended while its commands ran".into()) }, &[]);
            }
            send(sock, &LauncherEvent::Exited { init_pid: pid, code }, &[]);
        } else if let Some(init) = children.brokers.remove(&pid) {
            // A broker ends with 0 only after its service's init did.
            if code == 0 {
                continue;
            }
            if let Some(c) = children.services.get(&init) {
                let msg = format!("capexec: {}: the service's broker ended (status {code}); stopping the service, which cannot work without it\n", c.unit);
                match &c.stderr {
                    Some(fd) => drop(nix::unistd::write(fd, msg.as_bytes())),
                    None => eprint!("{msg}"),
                }
                // The namespace init, our own child: its exit is reported as usual.
                let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
            }
        }
    }
}

/// The daemon is gone: nothing may keep running unsupervised.
fn shutdown(children: Children) -> ! {
    // Our own children: those still setting up, then the namespace inits
    // (each pid namespace goes with its init).
    for pid in children.starting.keys() {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(*pid), None);
    }
    for (pid, c) in &children.services {
        if let Some(dir) = &c.cgroup_kill {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        }
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    for pid in children.services.keys() {
        let _ = waitpid(Pid::from_raw(*pid), None);
    }
    // Not the daemon's destructors: this process holds copies of its state.
    process::exit_now(0)
}
