//! The parent's side of a launch: open preopened resources, clone into new
//! namespaces, write the id maps, wait for the service to exec (or for a setup
//! error), and — for `capexec exec` — forward signals and return its status.

use crate::child::{self, ChildArgs, FORWARDED};
use crate::error::LaunchError;
use crate::plan::SetupPlan;
use crate::{resources, sys};
use capexec_sys::process;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

pub struct Spawned {
    /// The namespace init's pid, as the host sees it.
    pub pid: libc::pid_t,
    /// A pidfd of the namespace init, taken at clone time.
    pub pidfd: OwnedFd,
    /// The service's own process (init's child), as the host sees it: where
    /// the daemon sends the stop signal. `None` if it already ended, and for
    /// a forking service, for which init stands (see `Starting::finish`).
    pub main_pid: Option<libc::pid_t>,
    /// Init's first child as the setup ended: the started process, unless it
    /// has ended already (then another of init's children). What a learning
    /// run waits on for a forking start to end.
    pub started_pid: Option<libc::pid_t>,
    /// The seccomp user-notification listener of the service's brokered
    /// syscalls (when the plan has a notify filter): whoever holds it must
    /// answer them — see the capexec-broker crate.
    pub listener: Option<OwnedFd>,
    /// With a gate, in place of `listener`: the socket the listener arrives
    /// on (`sys::recv_fd`) once the service passed its gate, and so installed
    /// its filters. EOF if it never does.
    pub listener_later: Option<OwnedFd>,
    /// The broker's end of the service's explicit connection (when the plan
    /// has a broker channel), with SO_PASSCRED set.
    pub broker_channel: Option<OwnedFd>,
    /// The stub resolver's socket, bound by init on 127.0.0.1:53 in the
    /// service's network namespace (when the plan has `dns_stub`).
    pub dns: Option<OwnedFd>,
    /// The receiving end of the service's NOTIFY_SOCKET (when the plan has
    /// `notify_relay`).
    pub notify: Option<OwnedFd>,
    /// The receiving end of the service's /dev/log (when the plan has
    /// `syslog`): datagrams in syslog's format (see `capexec_supervisor::logs::syslog_line`).
    pub syslog: Option<OwnedFd>,
    /// Preopened files in append mode, for the broker to relay (when the
    /// plan has `append_pipes`).
    pub appends: Vec<resources::AppendPipe>,
    /// The channel to the task helper (when the plan has start_post, reload
    /// or stop commands): [`Tasks::ask`], then read the answer (see [`run_tasks`]).
    pub tasks: Option<OwnedFd>,
    /// The listener of the program's refusals (when the plan has
    /// `report_refusals`): whoever holds it must answer each with the errno
    /// the plan's `seccomp` gives it (see `capexec_supervisor::trail`).
    pub refusals: Option<OwnedFd>,
}

/// Why a request to the task helper brought no success.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The helper ended with the service (a stop command may end both):
    /// no more requests reach it.
    #[error("the service's task helper is gone (the service ended)")]
    Gone,
    /// A command failed or did not end in time; the text names it.
    #[error("{0}")]
    Failed(String),
}

/// Which of a running service's command lists its task helper runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tasks {
    StartPost,
    Reload,
    Stop,
}

impl Tasks {
    /// The declaration key of the list.
    pub fn key(self) -> &'static str {
        match self {
            Tasks::StartPost => "exec.start_post",
            Tasks::Reload => "exec.reload",
            Tasks::Stop => "exec.stop",
        }
    }

    /// The request byte on the helper's channel (see `child::helper`).
    pub(crate) fn byte(self) -> u8 {
        match self {
            Tasks::StartPost => b'p',
            Tasks::Reload => b'r',
            Tasks::Stop => b's',
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Tasks> {
        [Tasks::StartPost, Tasks::Reload, Tasks::Stop].into_iter().find(|t| t.byte() == b)
    }

    /// Asks the task helper on `chan` to run this list.
    pub fn ask(self, chan: std::os::fd::BorrowedFd<'_>) -> Result<(), TaskError> {
        match sys::write_raw(chan.as_raw_fd(), &[self.byte()]) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset) => Err(TaskError::Gone),
            Err(e) => Err(TaskError::Failed(format!("ask the service's task helper: {e}"))),
        }
    }
}

/// Asks the task helper of a running service to run `which` commands and
/// waits for them, at most `limit` when given: `Err` names the command that
/// failed.
pub fn run_tasks(chan: std::os::fd::BorrowedFd<'_>, which: Tasks, limit: Option<std::time::Duration>) -> Result<(), TaskError> {
    which.ask(chan)?;
    if let Some(limit) = limit {
        let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
        if !sys::poll_one(chan, libc::POLLIN, ms).unwrap_or(true) {
            return Err(TaskError::Failed(format!("{} did not end within {}", which.key(), capexec_decl::spec::format_duration(limit))));
        }
    }
    task_answer(chan)
}

/// For a learning run: [`run_tasks`], handing each command's learning
/// listener to `learner` as the command starts. A command waits at its
/// first syscall until its listener is taken out of its fd table (see
/// crate::child's learning filter), so the helper answers only once every
/// command it ran was handed over.
pub fn learn_tasks(s: &Spawned, which: Tasks, learner: &dyn Fn(OwnedFd)) -> Result<(), TaskError> {
    let chan = s.tasks.as_ref().ok_or_else(|| TaskError::Failed("the service has no commands around its program".into()))?;
    which.ask(chan.as_fd())?;
    let mut taken = Vec::new();
    loop {
        // The commands are the task helper's children: init's grandchildren.
        let found = children(s.pid).into_iter().flat_map(children).filter(|c| !taken.contains(c)).find_map(|c| Some((c, seccomp_listener_of(c)?)));
        if let Some((command, fd)) = found {
            let l = sys::pidfd_getfd_of(command, fd).map_err(|e| TaskError::Failed(format!("take the learning listener of command pid {command}: {e}")))?;
            taken.push(command);
            learner(l);
            continue;
        }
        if sys::poll_one(chan.as_fd(), libc::POLLIN, 1).unwrap_or(true) {
            return task_answer(chan.as_fd());
        }
    }
}

/// The task helper's answer to a request (see [`run_tasks`]).
pub fn task_answer(chan: std::os::fd::BorrowedFd<'_>) -> Result<(), TaskError> {
    let mut buf = [0u8; 2048];
    let n = loop {
        match nix::unistd::read(chan.as_raw_fd(), &mut buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECONNRESET) => return Err(TaskError::Gone),
            r => break r.map_err(|e| TaskError::Failed(format!("the service's task helper: {e}")))?,
        }
    };
    match buf[..n].split_first() {
        Some((0, _)) => Ok(()),
        Some((_, msg)) => Err(TaskError::Failed(String::from_utf8_lossy(msg).into_owned())),
        None => Err(TaskError::Gone),
    }
}

/// How the daemon's launcher differs from `capexec exec`.
#[derive(Default)]
pub struct SpawnOptions<'a> {
    /// stdin, stdout and stderr for the service (and for init's setup messages).
    /// `None`: inherit capexec's own.
    pub stdio: Option<[RawFd; 3]>,
    /// `cgroup.procs` files the namespace init is written into before it runs
    /// any setup, so every process of the service is born inside its cgroups.
    pub cgroup_procs: &'a [std::path::PathBuf],
    /// Clone the service as a sibling of the caller (CLONE_PARENT): the
    /// daemon's broker process creates the service for the launcher, which
    /// reaps it. The caller then cannot wait for it.
    pub clone_parent: bool,
    /// For a learning plan: receives the service's seccomp listener before
    /// the service execs, and must answer its notifications from then on (on
    /// another thread: the exec itself is the first one).
    pub learner: Option<&'a dyn Fn(OwnedFd)>,
    /// For a plan with `agent_seccomp` (which needs a gate): receives the
    /// listener of the profile's notify filter once the service waits at
    /// its gate; it goes to the agent, which answers the calls the filter
    /// hands over (the gate's own included) from then on.
    pub agent: Option<&'a dyn Fn(OwnedFd)>,
    /// Descriptors the service gets first, at 3, 4, ... (systemd's socket
    /// activation); as many as `plan.inherited`.
    pub inherited: &'a [RawFd],
    /// Told the namespace init's pid before it runs anything (`capexec
    /// run`'s refusal summary, which must know the run's processes before
    /// their first syscall).
    pub on_clone: Option<&'a dyn Fn(i32)>,
    /// Runs with init's pid once init has been let go on its setup, while
    /// it sets up; init starts anything of the service's (its start_pre
    /// commands, its program) only after this returned. For what must be in
    /// place before the service's first syscall but need not hold the
    /// setup up: `capexec run` joins the audit log here, on the other CPU
    /// while init builds the view.
    pub on_setup: Option<&'a dyn Fn(i32)>,
    /// Created now, started later (an OCI container's create and start):
    /// the service waits, its setup done, until this fd (the read end of a
    /// FIFO, opened O_RDONLY|O_NONBLOCK, which polls readable once a writer
    /// wrote) is readable, then goes on to exec. Spawning returns once it
    /// waits; errors after that go to the service's stderr. Neither init nor
    /// the service dies with the caller from then on.
    pub gate: Option<RawFd>,
    /// A pidfd of a running sandbox's init whose namespaces a joining plan
    /// (`SetupPlan::join`) enters.
    pub join: Option<RawFd>,
    /// Neither init nor the service dies with the caller once the service
    /// exec'd (an OCI `exec --detach`; always so with a gate).
    pub detach: bool,
    /// The caller is the service's broker: it enters the plan's broker
    /// layer (`landlock_rules::apply_broker_layer`) just before the clone,
    /// after the launch opened what the layer would keep it from (another
    /// process's namespaces: a Landlock domain may not inspect processes
    /// outside it). Its note, if any, goes to stderr.
    pub broker_layer: bool,
    /// A connected console socket (an OCI runtime's `--console-socket`):
    /// the service gets a pseudo-terminal of its view's /dev/ptmx as its
    /// stdio and controlling terminal, whose master goes over this socket.
    pub console: Option<RawFd>,
    /// Runs with the child's pid once it is in its new namespaces (its
    /// cgroups too), before any of its setup: an OCI runtime's prestart and
    /// createRuntime hooks, which set up its network namespace. An error
    /// ends the child and the launch.
    pub before_setup: Option<&'a dyn Fn(i32) -> Result<(), crate::error::BeforeSetupError>>,
}

/// The first child of `pid` (the service, for a namespace init), from
/// /proc/PID/task/PID/children.
fn first_child(pid: libc::pid_t) -> Option<libc::pid_t> {
    children(pid).into_iter().next()
}

/// The children of `pid`'s main thread, oldest first.
fn children(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    s.split_whitespace().filter_map(|c| c.parse().ok()).collect()
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    sys::pipe2(libc::O_CLOEXEC).map_err(|e| LaunchError::io("create", "pipe", e))
}

pub(crate) fn seqpacket_pair(what: &str) -> Result<(OwnedFd, OwnedFd), LaunchError> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(|e| LaunchError::io("create", what, e.into()))
}

/// The signals spawn() blocks in the calling thread (SIGCHLD and the forwarded
/// ones): a caller that waits for the service waits for these.
pub fn blocked_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED.iter().filter_map(|s| Signal::try_from(*s).ok()) {
        set.add(s);
    }
    set
}

/// Makes sure 0, 1 and 2 are open, so that a preopened fd can never land on
/// them and be mistaken for stdin/stdout/stderr by the service.
fn ensure_stdio() {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    for fd in 0..3 {
        if fcntl(fd, FcntlArg::F_GETFD).is_err() {
            // The lowest free number: exactly the hole at `fd`. Kept open for
            // good, and inherited (std opens close-on-exec).
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                let _ = fcntl(std::os::fd::IntoRawFd::into_raw_fd(null), FcntlArg::F_SETFD(FdFlag::empty()));
            }
        }
    }
}

fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// Refuses to start, with a message that says what to do, when the kernel lacks
/// a mechanism the plan requires. Checked before anything is created, and
/// checked again by the child where it is applied.
pub fn preflight(plan: &SetupPlan) -> Result<(), LaunchError> {
    if let Err(e) = sys::seccomp_available() {
        return Err(LaunchError::Unsupported {
            what: format!("{}: seccomp filters are not available here ({e})", plan.name),
            help: "capexec always confines services with a seccomp allowlist; use a kernel built with CONFIG_SECCOMP_FILTER, \
                   and do not run capexec under a filter that denies seccomp(2)"
                .into(),
        });
    }
    let abi = sys::landlock_abi();
    if plan.landlock.required && abi < crate::landlock_rules::REQUIRED_ABI {
        return Err(LaunchError::Unsupported {
            what: format!(
                "{}: the declaration requires Landlock (landlock.mode = \"required\") but this kernel offers Landlock ABI {abi}{}; capexec needs ABI {} (filesystem, TCP and scope rules)",
                plan.name,
                if abi == 0 { " (none)" } else { "" },
                crate::landlock_rules::REQUIRED_ABI
            ),
            help: "run on Linux 6.12 or newer with Landlock enabled (lsm=...,landlock), or set landlock.mode = \"best-effort\" \
                   (capexec run: --landlock best-effort) to run with what this kernel enforces; `capexec doctor` shows what it supports"
                .into(),
        });
    }
    Ok(())
}

/// Starts the service described by `plan`. Blocks SIGCHLD and the forwarded
/// signals in the calling process (they are consumed by [`wait_foreground`]).
///
/// The calling process must be single-threaded (see `sys::clone_fork`).
pub fn spawn(plan: &SetupPlan) -> Result<Spawned, LaunchError> {
    spawn_with(plan, &SpawnOptions::default())
}

/// [`spawn`] with the daemon's options: the service's stdio and its cgroups.
///
/// A view with a root filesystem of its own gets an `oldroot` directory
/// made in it for the time of the setup (crate::mounts), which a setup
/// that fails halfway leaves: removed here then, if it was made.
///
/// With ids of a user namespace's own (an OCI config's maps), the setup's
/// uid cannot make it: the root filesystem's directories belong to the
/// host's root, unmapped there. It is made here then, and removed here
/// once the setup has detached the host tree from it.
pub fn spawn_with(plan: &SetupPlan, opts: &SpawnOptions) -> Result<Spawned, LaunchError> {
    let made_old = plan.root.as_ref().map(|(root, _)| root.join("oldroot")).filter(|old| std::fs::symlink_metadata(old).is_err());
    let made_here = match &made_old {
        Some(old) if plan.inside.is_some() => {
            std::fs::create_dir(old).map_err(|e| LaunchError::io("create", old.display().to_string(), e))?;
            true
        }
        _ => false,
    };
    let spawned = spawn_planned(plan, opts);
    if let (true, Some(old)) = (spawned.is_err() || made_here, made_old) {
        // Empty unless something else made it meanwhile: then it stays.
        let _ = std::fs::remove_dir(old);
    }
    spawned
}

fn spawn_planned(plan: &SetupPlan, opts: &SpawnOptions) -> Result<Spawned, LaunchError> {
    let agent = match (&plan.agent_seccomp, opts.gate, opts.agent) {
        (None, _, _) => None,
        (Some(_), Some(_), Some(agent)) => Some(agent),
        (Some(_), _, _) => return Err(LaunchError::Plan("a profile with notify rules needs a gate and an agent to hand its listener to".into())),
    };
    let started = begin(plan, opts)?;
    if let Some(agent) = agent {
        let pid = started.pid;
        // None: the setup failed before the filter; finish says how.
        if let Some(l) = take_listener(pid, std::os::fd::AsFd::as_fd(&started.err_rd), &mut Vec::new()).map_err(|e| kill_and_reap(pid, e))? {
            agent(l);
        }
    }
    if plan.learn.is_some() || plan.watch.is_some() {
        let pid = started.pid;
        // A learning run records each start_pre command, then the program:
        // one listener each, taken in the order init starts them.
        let count = if plan.learn.is_some() { plan.start_pre.len() + 1 } else { 1 };
        let mut taken = Vec::new();
        for _ in 0..count {
            let listener = take_listener(pid, std::os::fd::AsFd::as_fd(&started.err_rd), &mut taken).map_err(|e| kill_and_reap(pid, e))?;
            match (listener, opts.learner) {
                (Some(l), Some(learner)) => learner(l),
                (Some(_), None) => {
                    return Err(kill_and_reap(pid, LaunchError::Plan("a learning or watched plan needs a learner to answer its syscalls".into())))
                }
                // The child reported an error (or a command failed) before
                // the next filter: read below.
                (None, _) => break,
            }
        }
    }
    let mut taken = None;
    if plan.listener_taken {
        let pid = started.pid;
        if let Some(l) = take_listener(pid, std::os::fd::AsFd::as_fd(&started.err_rd), &mut Vec::new()).map_err(|e| kill_and_reap(pid, e))? {
            taken = Some(release_wait(l).map_err(|e| kill_and_reap(pid, LaunchError::io("answer", "the service's wait for its broker", e)))?);
        }
    }
    let mut spawned = started.finish()?;
    spawned.listener = spawned.listener.or(taken);
    Ok(spawned)
}

/// Lets the service go on from the wait it makes once its broker's filter is
/// installed (see `listener_taken` in crate::child): the first call that
/// filter hands over, a bind that does nothing.
fn release_wait(listener: OwnedFd) -> std::io::Result<OwnedFd> {
    let l = capexec_sys::notify::Listener::new(listener);
    match l.recv()? {
        Some(n) if n.nr == libc::SYS_bind && n.args[0] as i32 == -1 => l.pass_through(n.id)?,
        Some(n) => return Err(std::io::Error::other(format!("the service made syscall {} before exec", n.nr))),
        None => return Err(std::io::Error::other("the service ended before exec")),
    }
    Ok(l.into_fd())
}

/// A service cloned and set going whose setup has not been seen to end:
/// [`spawn_with`] in two halves, so that a caller with many services to
/// start (the daemon's launcher) starts the next while this one sets up.
/// [`Starting::setup_fd`] polls readable once the service exec'd or its setup
/// failed; [`Starting::finish`] then says which, without waiting.
pub struct Starting {
    pub pid: libc::pid_t,
    pidfd: OwnedFd,
    err_rd: OwnedFd,
    sync_wr: std::fs::File,
    /// The preopened fds: the child has its copies; closed after its exec.
    fds: Vec<OwnedFd>,
    appends: Vec<resources::AppendPipe>,
    notify_pair: Option<(OwnedFd, OwnedFd)>,
    channel: Option<(OwnedFd, OwnedFd)>,
    dns_stub: bool,
    notify_relay: bool,
    syslog: bool,
    listener: bool,
    /// The listener (see `listener`) is that of the program's refusals.
    reports: bool,
    tasks: Option<OwnedFd>,
    gated: bool,
    /// A forking service: its started process is not its main one (see
    /// `finish`).
    forking: bool,
    /// Where the started process said it is there (a watched run).
    announce: Option<OwnedFd>,
}

/// Starts the service of a plan that is not a learning run (see [`Starting`]).
pub fn start(plan: &SetupPlan, opts: &SpawnOptions) -> Result<Starting, LaunchError> {
    if plan.learn.is_some() || plan.watch.is_some() || plan.listener_taken || plan.agent_seccomp.is_some() {
        return Err(LaunchError::Plan("a learning or watched run, or one with an agent, is started with spawn_with".into()));
    }
    begin(plan, opts)
}

/// The error the child reported on `err_rd` before it ended, if it did
/// (waited for a moment: it writes its report, then exits).
fn reported(err_rd: &OwnedFd) -> Option<LaunchError> {
    sys::poll_one(err_rd.as_fd(), libc::POLLIN, 1000).ok().filter(|readable| *readable)?;
    let mut msg = [0u8; 4096];
    let n = nix::unistd::read(err_rd.as_raw_fd(), &mut msg).ok().filter(|n| *n > 0)?;
    Some(crate::error::ChildError::decode(&msg[..n]).into())
}

/// Kills and reaps our child `pid` (with clone_parent, the caller's parent
/// reaps it and waitpid fails harmlessly), then returns `e`.
fn kill_and_reap(pid: libc::pid_t, e: LaunchError) -> LaunchError {
    // Our own child.
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = process::wait_child(pid, true);
    e
}

/// Clones init into the user namespace `user_ns` (and the pid namespace
/// `pid_ns`, which that user namespace may own), as the caller's child, the
/// way `clone_fork` does: `(0, None)` in init, its pid and pidfd here. A
/// process that enters a user namespace cannot come back, so a helper forked
/// here enters them, clones init with CLONE_PARENT, and hands over its pidfd,
/// or the errno that stopped it, and exits. With CLONE_PARENT in `flags`
/// (init is to be the caller's sibling) the helper is one too, and the
/// caller's parent reaps it. `only_ours`: the user namespace holds only
/// processes of this launch (a view builder's).
/// The caller must be single-threaded, as for `sys::clone_fork`.
fn clone_in_user_ns(
    user_ns: RawFd,
    pid_ns: Option<RawFd>,
    flags: libc::c_int,
    name: &str,
    only_ours: bool,
) -> Result<(libc::pid_t, Option<OwnedFd>), LaunchError> {
    let (ours, theirs) = seqpacket_pair("the channel to the user namespace's helper")?;
    let sibling = flags & libc::CLONE_PARENT;
    let (helper, helper_fd) = sys::clone_fork("fork the helper that enters the user namespace", sibling)
        .map_err(|e| LaunchError::io("fork", "the helper that enters the user namespace", e))?;
    if helper_fd.is_none() {
        drop(ours);
        // The user namespace has processes already (a pod's): those that are
        // root in it must not ptrace this helper or init (cloned with its
        // memory) once they are in it, before init's ids are its own. A view
        // builder is ours, and the launch must open init's pid namespace.
        let entered = match only_ours {
            true => Ok(0),
            false => sys::prctl(libc::PR_SET_DUMPABLE, 0),
        };
        let entered = entered.and_then(|_| sys::setns(user_ns, libc::CLONE_NEWUSER)).and_then(|()| match pid_ns {
            Some(target) => sys::setns(target, libc::CLONE_NEWPID),
            None => Ok(()),
        });
        let sent = match entered.and_then(|()| sys::clone_fork("clone init in the user namespace", flags | libc::CLONE_PARENT)) {
            Ok((_, None)) => {
                drop(theirs);
                return Ok((0, None));
            }
            Ok((_, Some(pidfd))) => sys::send_fd(theirs.as_raw_fd(), pidfd.as_raw_fd()),
            Err(e) => sys::write_raw(theirs.as_raw_fd(), &e.raw_os_error().unwrap_or(libc::EINVAL).to_le_bytes()).map(drop),
        };
        process::exit_now(i32::from(sent.is_err()))
    }
    drop(theirs);
    let mut errno = [0u8; 4];
    let got = sys::recv_fd_blocking(ours.as_raw_fd(), &mut errno);
    if sibling == 0 {
        let _ = process::wait_child(helper, true);
    }
    let pidfd = match got {
        Ok((_, Some(fd))) => fd,
        Ok((4, None)) => {
            return Err(LaunchError::io(
                "clone into the user namespace entered and new namespaces",
                name,
                std::io::Error::from_raw_os_error(i32::from_le_bytes(errno)),
            ))
        }
        Ok(_) => return Err(LaunchError::Plan(format!("{name}: the helper that enters the user namespace ended without an answer"))),
        Err(e) => return Err(LaunchError::io("receive init's pidfd from", "the helper that enters the user namespace", e)),
    };
    let pid = pid_of(pidfd.as_raw_fd())?;
    Ok((pid, Some(pidfd)))
}

/// The pid of the process of `pidfd`, from /proc/self/fdinfo (where a
/// pidfd names it while it lives, -1 after).
fn pid_of(pidfd: RawFd) -> Result<libc::pid_t, LaunchError> {
    sys::pidfd_pid(pidfd)
        .map_err(|e| LaunchError::io("read", format!("/proc/self/fdinfo/{pidfd}"), e))?
        .ok_or_else(|| LaunchError::Plan(format!("the process of pidfd {pidfd} has ended")))
}

/// The root directory of the process of `pidfd` (its /proc/PID/root),
/// opened; checked to be still that process's after the open.
fn root_of(pidfd: RawFd) -> Result<OwnedFd, LaunchError> {
    let pid = pid_of(pidfd)?;
    let path = format!("/proc/{pid}/root");
    use std::os::unix::fs::OpenOptionsExt;
    let root = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&path)
        .map_err(|e| LaunchError::io("open the root of the sandbox to join:", &path, e))?;
    // Still alive after the open: the pid was not reused meanwhile.
    pid_of(pidfd)?;
    Ok(root.into())
}

/// Writes the id maps of the user namespace `pid` made (and denies
/// setgroups there where the plan says).
pub(crate) fn write_id_maps(pid: libc::pid_t, plan: &SetupPlan) -> Result<(), LaunchError> {
    let write = |file: &str, data: &str| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, data).map_err(|e| LaunchError::io("write", path, e))
    };
    if plan.deny_setgroups {
        write("setgroups", "deny")?;
    }
    write("uid_map", &plan.uid_map)?;
    write("gid_map", &plan.gid_map)
}

fn begin(plan: &SetupPlan, opts: &SpawnOptions) -> Result<Starting, LaunchError> {
    preflight(plan)?;
    // clone_fork's contract, checked rather than assumed: a child forked from a
    // process with other threads could deadlock on a lock one of them held.
    sys::require_single_threaded("start a service").map_err(|e| LaunchError::io("check the caller of", "spawn", e))?;
    if (plan.join != 0) != opts.join.is_some() {
        return Err(LaunchError::Plan("a joining plan, and only that, needs the pidfd of the sandbox it joins".into()));
    }
    if opts.inherited.len() != plan.inherited {
        return Err(LaunchError::Plan(format!("the plan counts {} inherited fds but {} were given", plan.inherited, opts.inherited.len())));
    }
    ensure_stdio();
    resources::make_directories(plan)?;
    let (fds, appends) = resources::open_all(plan)?;
    let mut trees = resources::owner_trees(plan)?;
    trees.extend(resources::make_files(plan)?);
    trees.extend(resources::proc_tree(plan)?);
    resources::remove_unix_sockets(&plan.unix_sockets);
    crate::layers::make_layers(plan)?;
    let tree_fds: Vec<(&std::path::Path, RawFd)> = trees.iter().map(|(p, fd)| (p.as_path(), fd.as_raw_fd())).collect();
    let mut raw_fds: Vec<RawFd> = opts.inherited.iter().copied().chain(fds.iter().map(|f| f.as_raw_fd())).collect();
    // Opened here, by the caller's view of the paths.
    // A sandbox living in a mount namespace not its own has its view as its
    // processes' root only (`SetupPlan::foreign_mount_ns`): one joining it
    // takes its init's.
    let join_root = match (opts.join, plan.join != 0 && plan.foreign_mount_ns) {
        (Some(pidfd), true) => Some(root_of(pidfd)?),
        _ => None,
    };
    let mut enter = Vec::with_capacity(plan.enter.len());
    for (flag, path) in &plan.enter {
        let f = std::fs::File::open(path).map_err(|e| LaunchError::io("open the namespace to enter", path.display(), e))?;
        enter.push((*flag, OwnedFd::from(f)));
    }
    // A pid namespace is entered here, not by the child: setns(CLONE_NEWPID)
    // moves where the caller's next child is born, so that init itself is
    // in it (its /proc/PID/ns/pid says so); the caller goes back to its own
    // right after the clone.
    // A user namespace too: init is born in it (see `clone_in_user_ns`).
    let enter_fds: Vec<(libc::c_int, RawFd)> =
        enter.iter().filter(|(flag, _)| *flag != libc::CLONE_NEWPID && *flag != libc::CLONE_NEWUSER).map(|(flag, fd)| (*flag, fd.as_raw_fd())).collect();
    let user_ns = enter.iter().find(|(flag, _)| *flag == libc::CLONE_NEWUSER).map(|(_, fd)| fd.as_raw_fd());
    let pid_ns = match enter.iter().find(|(flag, _)| *flag == libc::CLONE_NEWPID) {
        Some((_, target)) => {
            let own = std::fs::File::open("/proc/self/ns/pid").map_err(|e| LaunchError::io("open", "/proc/self/ns/pid", e))?;
            Some((target.as_raw_fd(), OwnedFd::from(own)))
        }
        None => None,
    };
    // With the broker's layer, a builder outside it makes the view (see
    // crate::view_builder): the layer can then allow moves beneath the
    // view's writable directories, opened here before it exists.
    let builder = match opts.broker_layer && crate::view_builder::applies(plan) {
        true => Some(crate::view_builder::start(plan, &tree_fds, &enter_fds)?),
        false => None,
    };
    let built = match &builder {
        Some(b) => Some((b.namespaces(plan)?, b.writable_dirs(plan)?)),
        None => None,
    };
    if opts.broker_layer {
        let refer = built.as_ref().map_or(&[][..], |(_, dirs)| &dirs[..]);
        let applied = crate::landlock_rules::apply_broker_layer(plan, refer);
        if let Some(note) = applied? {
            eprintln!("capexec: {}: warning: {note}", plan.name);
        }
    }
    // Init makes only its pid namespace and enters the builder's others.
    let (user_ns, view) = match &built {
        Some((ns, _)) => (ns.user.as_ref().map(|fd| fd.as_raw_fd()), Some(ns.mnt.as_raw_fd())),
        None => (user_ns, None),
    };
    let enter_fds: Vec<(libc::c_int, RawFd)> = match &built {
        Some((ns, _)) => ns.others.iter().map(|(flag, fd)| (*flag, fd.as_raw_fd())).collect(),
        None => enter_fds,
    };
    let (sync_rd, sync_wr) = pipe()?;
    let (err_rd, err_wr) = pipe()?;
    // Init sends the stub resolver's socket and the notify socket, and the
    // service its seccomp listener, back over this pair before it execs.
    let notify_pair = match plan.notify_seccomp.is_some() || plan.dns_stub || plan.notify_relay || plan.syslog || plan.report_refusals.is_some() {
        true => Some(seqpacket_pair("the broker's listener socket pair")?),
        false => None,
    };
    // The explicit connection: the service's end goes right after the
    // preopened fds. SO_PASSCRED before anything can be sent, so that every
    // request carries its sender's credentials.
    let channel = match plan.broker_channel {
        true => {
            let (broker_end, service_end) = seqpacket_pair("the broker's connection")?;
            nix::sys::socket::setsockopt(&broker_end, nix::sys::socket::sockopt::PassCred, &true)
                .map_err(|e| LaunchError::io("set SO_PASSCRED on", "the broker's connection", e.into()))?;
            raw_fds.push(service_end.as_raw_fd());
            Some((broker_end, service_end))
        }
        false => None,
    };
    // The supervisor's channel to the task helper (see child::helper).
    let tasks = match plan.start_post.is_empty() && plan.reload.is_empty() && plan.stop.is_empty() {
        true => None,
        false => Some(seqpacket_pair("the task helper's channel")?),
    };
    // Where a watched run's own process says it is there (child::service_with):
    // as init's child in /proc it is gone once it ended before the spawn
    // returned (a program refused at once, on a busy machine), and the trail
    // could not tell its refusals, whose records come after, from another
    // process's. The kernel names the sender in this pid namespace.
    let announce = match opts.on_setup.is_some() {
        true => {
            let (ours, theirs) = seqpacket_pair("the service's announcement")?;
            nix::sys::socket::setsockopt(&ours, nix::sys::socket::sockopt::PassCred, &true)
                .map_err(|e| LaunchError::io("set SO_PASSCRED on", "the service's announcement", e.into()))?;
            Some((ours, theirs))
        }
        false => None,
    };
    let last_cap = cap_last_cap();
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked_set()), None);

    let made = if built.is_some() { plan.clone_flags & libc::CLONE_NEWPID } else { plan.clone_flags };
    let flags = made | if opts.clone_parent { libc::CLONE_PARENT } else { 0 };
    let (pid, pidfd) = match user_ns {
        Some(user_ns) => clone_in_user_ns(user_ns, pid_ns.as_ref().map(|(target, _)| *target), flags, &plan.name, built.is_some())?,
        None => {
            if let Some((target, _)) = &pid_ns {
                sys::setns(*target, libc::CLONE_NEWPID).map_err(|e| LaunchError::io("enter", "the pid namespace to launch in", e))?;
            }
            let cloned = sys::clone_fork("clone init into new namespaces", flags);
            if let (Some((_, own)), Ok((_, Some(_))) | Err(_)) = (&pid_ns, &cloned) {
                // The caller's own active pid namespace: always allowed back into.
                sys::setns(own.as_raw_fd(), libc::CLONE_NEWPID).map_err(|e| {
                    let err = LaunchError::io("go back to", "the caller's pid namespace", e);
                    match &cloned {
                        Ok((pid, _)) => kill_and_reap(*pid, err),
                        Err(_) => err,
                    }
                })?;
            }
            cloned.map_err(|e| LaunchError::io("clone into new namespaces", &plan.name, e))?
        }
    };
    let Some(pidfd) = pidfd else {
        drop(sync_wr);
        drop(err_rd);
        let args = ChildArgs {
            plan,
            fds: &raw_fds,
            sync_rd: sync_rd.as_raw_fd(),
            err_wr: err_wr.as_raw_fd(),
            cap_last_cap: last_cap,
            stdio: opts.stdio,
            notify_tx: notify_pair.as_ref().map(|(_, tx)| tx.as_raw_fd()),
            tasks: tasks.as_ref().map(|(_, helper_end)| helper_end.as_raw_fd()),
            trees: &tree_fds,
            gate: opts.gate,
            join: opts.join,
            join_root: join_root.as_ref().map(|f| f.as_raw_fd()),
            enter: &enter_fds,
            view,
            detach: opts.detach || opts.gate.is_some(),
            console: opts.console,
            held: opts.on_setup.is_some(),
            announce: announce.as_ref().map(|(_, theirs)| theirs.as_raw_fd()),
        };
        child::run(&args);
    };
    drop(sync_rd);
    drop(err_wr);
    let announce = announce.map(|(ours, _theirs)| ours);
    let tasks = tasks.map(|(ours, _helper_end)| ours);
    // A builder is ended when dropped, on any return before its finish.
    let abort = |e: LaunchError| kill_and_reap(pid, e);
    // A user namespace init entered has its maps already (the builder's).
    // Where the child ended already, what it reported (see `signal` below).
    if plan.user_ns && builder.is_none() {
        write_id_maps(pid, plan).map_err(|e| abort(reported(&err_rd).unwrap_or(e)))?;
    }
    // Limits above capexec's own hard limit need CAP_SYS_RESOURCE in the
    // initial user namespace, which the child (in a user namespace of its
    // own) never has: as root, set them on the child from here. The child's
    // own setrlimit of the same values then succeeds. Rootless, the child can
    // only lower limits, and says so if asked for more.
    if nix::unistd::geteuid().is_root() {
        for (res, soft, hard) in &plan.rlimits {
            if let Err(e) = process::set_rlimit_of(pid, *res as libc::c_int, *soft, *hard) {
                let own_hard = process::rlimit(*res as libc::c_int).map_or(0, |(_, hard)| hard);
                let what = format!(
                    "rlimits.{} to {soft}/{hard} (capexec's own hard limit is {own_hard}; raising it needs CAP_SYS_RESOURCE: lower the declared limit or start capexec with a higher one)",
                    capexec_decl::spec::Resource::name_of_raw(*res)
                );
                return Err(abort(LaunchError::io("set the service's limit", what, e)));
            }
        }
    }
    // Into the cgroups before the child runs anything: nothing it forks can be
    // born outside them.
    for procs in opts.cgroup_procs {
        std::fs::write(procs, pid.to_string()).map_err(|e| abort(LaunchError::io("move the service into its cgroup", procs.display(), e)))?;
    }
    if let Some(f) = opts.on_clone {
        f(pid);
    }
    if let Some(f) = opts.before_setup {
        f(pid).map_err(|e| abort(LaunchError::BeforeSetup(e)))?;
    }
    // The view is whole (its /proc that of init's pid namespace) before init
    // enters it.
    if let Some(b) = builder {
        b.finish(pid).map_err(|e| kill_and_reap(pid, e))?;
    }
    let mut sync_wr = std::fs::File::from(sync_wr);
    // The child is gone (EPIPE): it failed in a step before it reads this
    // pipe (exec.nice, exec.oom_score_adjust), and said why on the error
    // pipe: that, not the broken pipe.
    let signal = |sync_wr: &mut std::fs::File| {
        sync_wr.write_all(&[1]).map_err(|e| abort(reported(&err_rd).unwrap_or_else(|| LaunchError::io("signal", "the sandbox child", e))))
    };
    signal(&mut sync_wr)?;
    if let Some(f) = opts.on_setup {
        f(pid);
        signal(&mut sync_wr)?;
    }
    Ok(Starting {
        pid,
        pidfd,
        err_rd,
        sync_wr,
        fds,
        appends,
        notify_pair,
        channel,
        dns_stub: plan.dns_stub,
        notify_relay: plan.notify_relay,
        syslog: plan.syslog,
        listener: (plan.notify_seccomp.is_some() && !plan.listener_taken) || plan.report_refusals.is_some(),
        // With a broker, its listener (which hears the refusals too).
        reports: plan.report_refusals.is_some() && !plan.refusals_to_broker,
        tasks,
        gated: opts.gate.is_some(),
        forking: plan.forking.is_some(),
        announce,
    })
}

impl Starting {
    /// Polls readable (a setup error, or EOF) once the service exec'd or its
    /// setup failed.
    pub fn setup_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.err_rd)
    }

    /// Waits for the end of the service's setup (at once, after
    /// [`setup_fd`](Self::setup_fd) polled readable): the running service,
    /// or the error its setup reported.
    pub fn finish(self) -> Result<Spawned, LaunchError> {
        let Starting {
            pid,
            pidfd,
            err_rd,
            sync_wr,
            fds,
            appends,
            notify_pair,
            channel,
            dns_stub,
            notify_relay,
            syslog: has_syslog,
            listener: has_listener,
            reports,
            tasks,
            gated,
            forking,
            announce,
        } = self;
        let abort = |e: LaunchError| kill_and_reap(pid, e);
        // What init was to pass on is missing: said as init's death by a
        // signal when that is why (it could report nothing then).
        let missing = |what: &str, e: std::io::Error| match process::wait_child(pid, false) {
            Ok(Some(status)) if libc::WIFSIGNALED(status) => LaunchError::SetupKilled { signal: libc::WTERMSIG(status) },
            _ => abort(LaunchError::io("receive", what, e)),
        };
        // EOF: the service exec'd (its end is close-on-exec) and init closed its copy.
        let mut msg = Vec::new();
        let mut err_rd = std::fs::File::from(err_rd);
        let _ = err_rd.read_to_end(&mut msg);
        drop(sync_wr);
        drop(fds);
        let broker_channel = channel.map(|(broker_end, _service_end)| broker_end);
        if !msg.is_empty() {
            // Our own child, exiting after the report (ECHILD if the caller
            // reaped it already).
            let _ = process::wait_child(pid, true);
            return Err(crate::error::ChildError::decode(&msg).into());
        }
        // Init sent the resolver's socket and the notify socket during setup and
        // the service its listener before exec, in that order: all wait in the pair.
        let (mut dns, mut notify, mut syslog, mut listener, mut listener_later) = (None, None, None, None, None);
        if let Some((rx, tx)) = notify_pair {
            drop(tx);
            if dns_stub {
                dns = Some(sys::recv_fd(rx.as_raw_fd()).map_err(|e| missing("the service's resolver socket", e))?);
            }
            if notify_relay {
                notify = Some(sys::recv_fd(rx.as_raw_fd()).map_err(|e| missing("the service's notify socket", e))?);
            }
            if has_syslog {
                syslog = Some(sys::recv_fd(rx.as_raw_fd()).map_err(|e| missing("the service's syslog socket", e))?);
            }
            match (has_listener, gated) {
                (true, false) => {
                    listener = Some(sys::recv_fd(rx.as_raw_fd()).map_err(|e| missing("the service's seccomp listener", e))?);
                }
                (true, true) => listener_later = Some(rx),
                (false, _) => {}
            }
        }
        let refusals = if reports { listener.take() } else { None };
        // A forking service's started process exits once its daemon runs,
        // and init then stands for that daemon (by its pid file): no main
        // process here. Taken as init's first child, it was the task
        // helper whenever the start had ended already (a busy machine):
        // the stop signal went to the helper, and varnishncsa ran on until
        // the stop timeout.
        let said = announce.and_then(|fd| sys::recv_fds(fd.as_raw_fd(), &mut [0u8; 1], libc::MSG_DONTWAIT).ok()?.pid);
        let started_pid = said.or_else(|| first_child(pid));
        let main_pid = if forking { None } else { started_pid };
        Ok(Spawned { pid, pidfd, main_pid, started_pid, listener, listener_later, broker_channel, dns, notify, syslog, appends, tasks, refusals })
    }
}

/// Takes the seccomp listener out of the service's fd table, for a filter
/// that hands over sendmsg (learning, the network summary): the service
/// cannot send it, as that would wait for whoever holds the listener. `None`:
/// the child reported a setup error (readable on `err_rd`) before it got
/// that far.
fn take_listener(init: libc::pid_t, err_rd: std::os::fd::BorrowedFd<'_>, taken: &mut Vec<libc::pid_t>) -> Result<Option<OwnedFd>, LaunchError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut take = || -> Result<Option<OwnedFd>, LaunchError> {
        // A child of init that has a listener whose listener was not taken yet.
        let found = children(init).into_iter().filter(|c| !taken.contains(c)).find_map(|c| Some((c, seccomp_listener_of(c)?)));
        let Some((service, fd)) = found else { return Ok(None) };
        let l = sys::pidfd_getfd_of(service, fd).map_err(|e| LaunchError::io("take the seccomp listener from", format!("pid {service}"), e))?;
        taken.push(service);
        Ok(Some(l))
    };
    loop {
        if let Some(l) = take()? {
            return Ok(Some(l));
        }
        // A 1 ms wait between looks at /proc. Once the pipe is readable, one
        // more look: a service at its gate installs its filter, then closes
        // the pipe, maybe just after the look above.
        if sys::poll_one(err_rd, libc::POLLIN, 1).unwrap_or(false) {
            return take();
        }
        if std::time::Instant::now() > deadline {
            return Err(LaunchError::io("wait for", "the service's seccomp listener", std::io::Error::from(std::io::ErrorKind::TimedOut)));
        }
    }
}

/// The number of the seccomp listener in `pid`'s fd table, if it has one.
fn seccomp_listener_of(pid: libc::pid_t) -> Option<RawFd> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    dir.flatten().find_map(|e| {
        let target = std::fs::read_link(e.path()).ok()?;
        (target.as_os_str() == "anon_inode:seccomp notify").then(|| e.file_name().to_str()?.parse().ok())?
    })
}

/// Waits for the spawned service, forwarding SIGTERM, SIGINT, SIGHUP, SIGUSR1,
/// SIGUSR2 and SIGQUIT to it. Returns its exit status (128+N if killed by N).
pub fn wait_foreground(s: &Spawned) -> i32 {
    wait_foreground_with(s, None)
}

/// [`wait_foreground`], with each signal but SIGCHLD shown to `on_signal`
/// first: it is forwarded to the service unless that returns true
/// (`capexec exec` runs the reload commands on SIGHUP, the stop commands
/// before it forwards a stop).
pub fn wait_foreground_with(s: &Spawned, on_signal: Option<&dyn Fn(libc::c_int) -> bool>) -> i32 {
    wait_foreground_serving(s, on_signal, None)
}

/// What the foreground wait serves beside the signals: `ready` is called
/// whenever `fd` polls readable (`capexec run` reads the audit log so, in
/// its main thread).
pub struct Serve<'a> {
    pub fds: &'a [BorrowedFd<'a>],
    pub ready: &'a dyn Fn(),
}

/// [`wait_foreground_with`], serving `serve` too. Its signals then come
/// through a signalfd, polled with `serve.fds`; an fd that fails is no
/// longer polled.
pub fn wait_foreground_serving(s: &Spawned, handler: Option<&dyn Fn(libc::c_int) -> bool>, serve: Option<Serve<'_>>) -> i32 {
    let set = blocked_set();
    let on_signal = |sig: Option<libc::c_int>| -> Option<i32> {
        match sig {
            Some(libc::SIGCHLD) | None => match process::wait_child(s.pid, false) {
                Ok(Some(status)) => return Some(child::exit_code(status)),
                Ok(None) => {}
                Err(_) => return Some(1),
            },
            Some(sig) if handler.is_some_and(|h| h(sig)) => {}
            // Forwarded to our own child, the namespace init.
            Some(sig) => {
                let _ = Signal::try_from(sig).map(|sig| kill(Pid::from_raw(s.pid), sig));
            }
        }
        None
    };
    let sigfd = serve.as_ref().and_then(|_| nix::sys::signalfd::SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC).ok());
    let (Some(serve), Some(sigfd)) = (serve, sigfd) else {
        loop {
            if let Some(code) = on_signal(process::wait_signal(set.as_ref(), None)) {
                return code;
            }
        }
    };
    let mut serving = vec![true; serve.fds.len()];
    loop {
        let mut fds = vec![(sigfd.as_fd(), libc::POLLIN)];
        let polled: Vec<usize> = (0..serve.fds.len()).filter(|i| serving[*i]).collect();
        fds.extend(polled.iter().map(|i| (serve.fds[*i], libc::POLLIN)));
        let revents = match capexec_sys::poll_many(&fds, -1) {
            Ok(r) => r,
            // Nothing to wait with: as wait_foreground does.
            Err(_) => return wait_foreground_serving(s, handler, None),
        };
        let mut ready = false;
        for (i, r) in polled.iter().zip(&revents[1..]) {
            ready |= r & libc::POLLIN != 0;
            if r & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                serving[*i] = false;
            }
        }
        if ready {
            (serve.ready)();
        }
        if revents[0] != 0 {
            let sig = sigfd.read_signal().ok().flatten().map(|i| i.ssi_signo as libc::c_int);
            if let Some(code) = on_signal(sig) {
                return code;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_helper_that_ended_is_gone_and_a_failed_command_is_not() {
        let (ours, helper) = seqpacket_pair("test channel").unwrap();
        Tasks::Stop.ask(ours.as_fd()).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(nix::unistd::read(helper.as_raw_fd(), &mut byte).unwrap(), 1);
        assert_eq!(byte[0], b's');
        sys::write_raw(helper.as_raw_fd(), b"\x01exec.stop: /bin/false exited with status 1").unwrap();
        match task_answer(ours.as_fd()) {
            Err(TaskError::Failed(m)) => assert_eq!(m, "exec.stop: /bin/false exited with status 1"),
            other => panic!("{other:?}"),
        }
        sys::write_raw(helper.as_raw_fd(), &[0]).unwrap();
        assert!(task_answer(ours.as_fd()).is_ok());
        // The helper ends with the service: its end of the channel closes.
        drop(helper);
        assert!(matches!(task_answer(ours.as_fd()), Err(TaskError::Gone)));
        assert!(matches!(Tasks::Reload.ask(ours.as_fd()), Err(TaskError::Gone)));
        assert!(matches!(run_tasks(ours.as_fd(), Tasks::Stop, None), Err(TaskError::Gone)));
    }
}
