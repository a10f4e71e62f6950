//! What runs after clone(), inside the new namespaces. The setup order follows
//! docs/architecture.md; each step says why it sits where it does.
//!
//! The process created by clone() becomes the namespace's init ("C"): it builds
//! the sandbox, forks the service ("S"), and then only reaps and forwards signals.
//! S places the fds, installs the seccomp filter and execs. Every error before
//! exec is written to the error pipe as `step\0detail` and the process exits.

use crate::error::{ChildError, Step};
use crate::ops::{Kernel, Ops};
use crate::plan::SetupPlan;
use crate::{mounts, sys};
use capexec_decl::spec::PreopenKind;
use capexec_sys::process;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN): refuse any mapping that is or
/// becomes writable and executable (linux/prctl.h; not in the libc crate yet).
const PR_SET_MDWE: libc::c_int = 65;
const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;

/// Without a pid namespace, init's parent-death signal (see [`Leftovers`]):
/// one nothing else sends it (a service that does is checked against
/// init's parent).
const PARENT_GONE: libc::c_int = libc::SIGSTKFLT;

/// Signals forwarded from `capexec exec` to the service.
pub const FORWARDED: &[libc::c_int] = &[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGQUIT];

pub struct ChildArgs<'a> {
    pub plan: &'a SetupPlan,
    /// The fds to place at 3, 4, ... (their numbers in the parent): the
    /// inherited ones (`plan.inherited` of them), then the preopened ones in
    /// the order of `plan.preopens`, then the broker connection.
    pub fds: &'a [RawFd],
    /// Read end: the parent writes one byte once the id maps are written, and
    /// keeps the write end open until the service has exec'd (liveness).
    pub sync_rd: RawFd,
    pub err_wr: RawFd,
    pub cap_last_cap: u32,
    /// Descriptors to place at 0, 1, 2 (the daemon's log pipes).
    pub stdio: Option<[RawFd; 3]>,
    /// Where init sends the resolver socket and the service its seccomp notify
    /// listener (when the plan has either).
    pub notify_tx: Option<RawFd>,
    /// The helper's end of the task channel (when the plan has start_post or
    /// reload commands; see [`helper`]).
    pub tasks: Option<RawFd>,
    /// Mounts prepared by the launcher, attached in place of their binds:
    /// idmapped copies of read_write paths (`resources::owner_trees`) and
    /// the pid file capexec made (`resources::make_pid_file`).
    pub trees: &'a [(&'a Path, RawFd)],
    /// See `SpawnOptions::gate`.
    pub gate: Option<RawFd>,
    /// See `SpawnOptions::join`.
    pub join: Option<RawFd>,
    /// The root of the sandbox's init to join (`/proc/PID/root`), for a
    /// sandbox in a mount namespace not its own.
    pub join_root: Option<RawFd>,
    /// The namespaces of `plan.enter`, opened: flag and fd.
    pub enter: &'a [(libc::c_int, RawFd)],
    /// The mount namespace of the view's builder (crate::view_builder),
    /// whose view is whole once init is let go: entered in place of
    /// building one.
    pub view: Option<RawFd>,
    /// See `SpawnOptions::detach`.
    pub detach: bool,
    /// See `SpawnOptions::console`.
    pub console: Option<RawFd>,
    /// Init waits for a second byte on `sync_rd` before it starts anything
    /// of the service's (see `SpawnOptions::on_setup`).
    pub held: bool,
    /// Where the service's own process says it is there, first thing: the
    /// caller's end has SO_PASSCRED, so the kernel names it in the
    /// caller's pid namespace (see `Spawned::started_pid`).
    pub announce: Option<RawFd>,
}

/// Reports `e` on the error pipe `fd`, or, once nobody reads it (`-1`: a
/// service that waited at its gate), on the service's stderr.
fn report(fd: RawFd, e: &ChildError) {
    // A short write only shortens the message.
    let _ = match fd {
        0.. => sys::write_raw(fd, &e.encode()),
        _ => sys::write_raw(2, format!("capexec: sandbox setup failed at `{}`: {}\n", e.step, e.detail).as_bytes()),
    };
}

/// Without atexit handlers or destructors: they belong to the parent's copy
/// of this address space.
fn exit(code: i32) -> ! {
    process::exit_now(code)
}

pub fn run(a: &ChildArgs) -> ! {
    if let Some(stdio) = a.stdio {
        // First, so that even setup warnings land in the service's log. The
        // sources are >= 3 (the parent keeps 0-2 open), so no copy overwrites
        // a source still to be copied.
        for (target, fd) in stdio.iter().enumerate() {
            if let Err(e) = nix::unistd::dup2(*fd, target as i32) {
                report(a.err_wr, &ChildError::io(Step::StandardStreams, format!("dup2 onto fd {target}"), std::io::Error::from(e)));
                exit(126);
            }
        }
    }
    // Whose death ends the service: read before anything can make it go.
    let parent = nix::unistd::getppid();
    let (view_ns, leftovers) = match setup(a) {
        Ok(v) => v,
        Err(e) => {
            report(a.err_wr, &e);
            exit(126);
        }
    };
    if a.plan.forking.is_some() && !a.plan.pid_ns {
        // The daemon a forking service leaves behind must come back to init
        // (in a pid namespace init is its reaper anyway), before it exists.
        if let Err(e) = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) {
            report(a.err_wr, &ChildError::io(Step::ForkService, "prctl PR_SET_CHILD_SUBREAPER", e));
            exit(126);
        }
    }
    if a.held {
        let mut b = [0u8; 1];
        if !matches!(nix::unistd::read(a.sync_rd, &mut b), Ok(1)) {
            exit(125); // the parent is gone: nobody to report to
        }
    }
    if let Err(e) = run_commands(a, "exec.start_pre", &a.plan.start_pre, None) {
        report(a.err_wr, &e);
        exit(126);
    }

    let init_pid = nix::unistd::getpid();
    match process::fork("fork the service's program") {
        Err(e) => {
            report(a.err_wr, &ChildError::io(Step::ForkService, "fork", e));
            exit(126)
        }
        Ok(process::Forked::Child) => {
            if !a.plan.pid_ns {
                // Without a pid namespace nothing else ends the program with
                // init (killed, it takes no namespace down): from the fork
                // on, also while it waits at a gate, and checked, as init
                // may be gone already.
                let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                // Joining a pid namespace, this process is in it and
                // its parent outside it: getppid() says 0 while init lives.
                let expected = if a.plan.join & libc::CLONE_NEWPID != 0 { nix::unistd::Pid::from_raw(0) } else { init_pid };
                if nix::unistd::getppid() != expected {
                    exit(126);
                }
            }
            service(a, &a.plan.argv, a.err_wr, true)
        }
        Ok(process::Forked::Parent(pid)) => {
            // The gate is the program's to hold until its exec (see wait_at_gate).
            if let Some(g) = a.gate {
                let _ = nix::unistd::close(g);
            }
            // After the program: the supervisor takes init's first child for it.
            let helper = a.tasks.map(|chan| match process::fork("fork the task helper") {
                Err(e) => {
                    report(a.err_wr, &ChildError::io(Step::ForkService, "fork the task helper", e));
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    exit(126)
                }
                Ok(process::Forked::Child) => helper(a, chan, pid),
                Ok(process::Forked::Parent(h)) => h,
            });
            if a.detach {
                // A created container (or a detached exec) outlives the
                // runtime that created it.
                let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0);
            }
            init(a, pid, helper, view_ns, leftovers.map(|children| Leftovers { children, parent }))
        }
    }
}

/// Runs the commands of `list` (named `what` in messages) one after another
/// until one fails and is not ignored.
fn run_commands(a: &ChildArgs, what: &str, list: &[crate::plan::SandboxCommand], main_pid: Option<libc::pid_t>) -> Result<(), ChildError> {
    // A stop command has the stop's time; the others, the start's.
    let limit = match what {
        "exec.stop" => (a.plan.stop_timeout, "service.stop_timeout"),
        _ => (a.plan.command_timeout, "service.ready_timeout"),
    };
    // exec.condition commands come first in start_pre's list, each list
    // numbered on its own.
    let conditions = list.iter().filter(|c| c.condition).count();
    for (i, c) in list.iter().enumerate() {
        match c.condition {
            true => run_command(a, "exec.condition", i, c, main_pid, limit)?,
            false => run_command(a, what, i - conditions, c, main_pid, limit)?,
        }
    }
    Ok(())
}

/// Runs `what[i]` as the service would run (its fds, ids and filters; not
/// the broker's notify filter, whose listener belongs to the program) and
/// waits for it. Its own setup or exec error comes back on a pipe of its
/// own and is passed on with its index.
fn run_command(
    a: &ChildArgs,
    what: &str,
    i: usize,
    c: &crate::plan::SandboxCommand,
    main_pid: Option<libc::pid_t>,
    (limit, key): (std::time::Duration, &str),
) -> Result<(), ChildError> {
    let shown = || c.argv.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let (rd, wr) = sys::pipe2(libc::O_CLOEXEC).map_err(|e| ChildError::io(Step::StartPre, "pipe", e))?;
    let pid = match process::fork("fork a command") {
        Err(e) => return Err(ChildError::io(Step::StartPre, "fork", e)),
        Ok(process::Forked::Child) => service_with(a, &c.argv, wr.as_raw_fd(), false, main_pid),
        Ok(process::Forked::Parent(pid)) => pid,
    };
    drop(wr);
    // At most `limit`: SIGCHLD is blocked here (init's mask), so it can be
    // waited for with a timeout.
    let deadline = std::time::Instant::now() + limit;
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    let status = loop {
        if let Some(st) = process::wait_child(pid, false).map_err(|e| ChildError::io(Step::StartPre, "wait", e))? {
            break st;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            // Our own child, and its process group (it made itself a session leader).
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = process::wait_child(pid, true);
            let limit = capexec_decl::spec::format_duration(limit);
            return Err(ChildError::new(Step::StartPre, format!("{what}[{i}] `{}` did not end within {limit} ({key}); killed", shown())));
        }
        process::wait_signal(sigchld.as_ref(), Some(left));
    };
    let mut buf = [0u8; 1024];
    let n = nix::unistd::read(rd.as_raw_fd(), &mut buf).unwrap_or(0);
    let code = exit_code(status);
    if code == 0 || c.ignore_failure {
        return Ok(());
    }
    if c.condition && n == 0 && libc::WIFEXITED(status) && (1..=254).contains(&code) {
        return Err(ChildError::new(Step::Condition, format!("{what}[{i}] `{}` exited with status {code}: the service is not to start now", shown())));
    }
    Err(match n {
        0 => ChildError::new(Step::StartPre, format!("{what}[{i}] `{}` exited with status {code}", shown())),
        n => {
            let e = ChildError::decode(&buf[..n]);
            ChildError { step: Step::StartPre, errno: e.errno, detail: format!("{what}[{i}]: {}: {}", e.step, e.detail) }
        }
    })
}

/// The task helper: forked by init after the sandbox is built and before
/// the program, so that it shares the service's view, namespaces and
/// Landlock domain (a reload command may signal the service, as `nginx -s
/// reload` does, and nothing else), and holds the preopened fds for the
/// commands. It runs `exec.start_post`, `exec.reload` or `exec.stop` when
/// the supervisor asks on `chan` (`launch::Tasks`) and answers with a status byte (0: all ran)
/// and, after a failure, the message. It ends with the channel (the
/// supervisor gone) or with init.
fn helper(a: &ChildArgs, chan: RawFd, program: libc::pid_t) -> ! {
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    if crate::creds::helper_privileges(&a.plan.keep_caps, reads_pid_file(a)).is_err() {
        exit(126);
    }
    // Not the launch's: with them open the parent would never see the end of setup.
    for fd in [Some(a.err_wr), Some(a.sync_rd), a.notify_tx].into_iter().flatten() {
        let _ = nix::unistd::close(fd);
    }
    let mut req = [0u8; 1];
    loop {
        match nix::unistd::read(chan, &mut req) {
            Ok(1) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            _ => exit(0),
        }
        let Some(which) = crate::launch::Tasks::from_byte(req[0]) else { continue };
        let list = match which {
            crate::launch::Tasks::StartPost => &a.plan.start_post,
            crate::launch::Tasks::Reload => &a.plan.reload,
            crate::launch::Tasks::Stop => &a.plan.stop,
        };
        let what = which.key();
        // The service's main process as the commands see it: the daemon a
        // forking start left, by its pid file or as init's one adopted
        // child, else the program, or once it has ended the successor it
        // named (MAINPID=), which init adopted too.
        let main_pid = match a.plan.forking.as_ref() {
            Some(f) => f.pid_file.as_deref().and_then(read_pid).unwrap_or_else(|| forked_daemon(program)),
            None => forked_daemon(program),
        };
        let reply = match run_commands(a, what, list, Some(main_pid)) {
            Ok(()) => vec![0],
            Err(e) => std::iter::once(1).chain(e.detail.into_bytes()).collect(),
        };
        let _ = sys::write_raw(chan, &reply);
    }
}

/// Returns the sandbox's own mount namespace when it lives in another
/// (`SetupPlan::foreign_mount_ns`; init keeps it open for the sandbox's
/// life), and, where init ends what the service leaves ([`Leftovers`]), its
/// list of children.
fn setup(a: &ChildArgs) -> Result<(Option<OwnedFd>, Option<OwnedFd>), ChildError> {
    let plan = a.plan;
    // Wait until the parent has written our uid/gid maps: before that we have no
    // ids in the user namespace.
    let mut b = [0u8; 1];
    if !matches!(nix::unistd::read(a.sync_rd, &mut b), Ok(1)) {
        exit(125); // the parent is gone: nobody to report to
    }
    // Into a running sandbox's namespaces before anything that depends on
    // them: ids (its user namespace), the view, and the pid namespace the
    // service is forked into.
    // A mount namespace entered is entered last, once the view is built in
    // this process's own (see `into_foreign_mount_ns`).
    let foreign_ns = a.enter.iter().find(|(flag, _)| *flag == libc::CLONE_NEWNS).map(|(_, fd)| *fd);
    for (flag, fd) in a.enter.iter().filter(|(flag, _)| *flag != libc::CLONE_NEWNS) {
        sys::setns(*fd, *flag).map_err(|e| {
            ChildError::io(
                Step::JoinNamespaces,
                format!("setns into {}", plan.enter.iter().find(|(f, _)| f == flag).map_or_else(String::new, |(_, p)| p.display().to_string())),
                e,
            )
        })?;
    }
    if plan.join != 0 {
        let fd = a.join.ok_or_else(|| ChildError::new(Step::JoinNamespaces, "no pidfd of the sandbox to join"))?;
        sys::setns(fd, plan.join).map_err(|e| ChildError::io(Step::JoinNamespaces, "setns into the running sandbox's namespaces", e))?;
    }
    // While the setup is still its creator's uid, which owns the file. Raising
    // is anyone's right; lowering needs CAP_SYS_RESOURCE, which root lacks
    // in a container (and on these test machines): refused, the service
    // starts with the score it has, and says so, as systemd does
    // ("assuming containerized execution"): gdnsd's OOMScoreAdjust=-900.
    if let Some(v) = plan.oom_score_adj {
        match std::fs::write("/proc/self/oom_score_adj", v.to_string()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!("capexec: {}: warning: oom_score_adj stays as it is: writing {v} needs CAP_SYS_RESOURCE, which capexec lacks here ({e})", plan.name);
            }
            Err(e) => return Err(ChildError::io(Step::OomScoreAdjust, format!("write {v} to /proc/self/oom_score_adj"), e)),
        }
    }
    // Likewise before anything is started, which inherits it.
    if let Some(n) = plan.nice {
        sys::process::set_nice(n).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EACCES) {
                " (a negative value needs CAP_SYS_NICE, which a private user namespace and rootless never have)"
            } else {
                ""
            };
            ChildError::io(Step::Nice, format!("set the nice value {n}{hint}"), e)
        })?;
    }
    // Ids first, keeping capabilities, so mounts are created as the service's uid.
    let (uid, gid) = plan.inside.unwrap_or((plan.uid, plan.gid));
    Kernel.switch_ids(uid, gid, (!plan.deny_setgroups).then_some(&plan.groups[..]))?;
    // PDEATHSIG after the id switch (a credential change clears it), then check the
    // parent did not die before it was set: its end of the sync pipe would be closed.
    // Where init ends the leftovers, one it waits for (blocked until then).
    let ends_leftovers = plan.init_ends_leftovers();
    let death = if ends_leftovers { PARENT_GONE } else { libc::SIGKILL };
    if ends_leftovers {
        let mut set = SigSet::empty();
        set.add(Signal::try_from(PARENT_GONE).expect("a signal"));
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| ChildError::io(Step::ParentDeathSignal, "block the parent-death signal", e))?;
    }
    sys::prctl(libc::PR_SET_PDEATHSIG, death as libc::c_ulong).map_err(|e| ChildError::io(Step::ParentDeathSignal, "prctl", e))?;
    if plan.main_by_notify.is_some() {
        // Blocked before the service exists: anyone on its socket may ask,
        // and the answer's default action would end init.
        process::block_signals(&[crate::mainpid::answer_signal()])
            .map_err(|e| ChildError::io(Step::ParentDeathSignal, "block the signal that names the main process", e))?;
    }
    if sys::poll_raw(a.sync_rd, 0, 0).is_ok_and(|revents| revents & libc::POLLHUP != 0) {
        exit(125);
    }
    // Without a pid namespace, orphans of the service come to init, which
    // ends them with the service. Its list of children is read through an fd
    // opened now: the view may have no /proc (rootless it has none).
    let children = if ends_leftovers {
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).map_err(|e| ChildError::io(Step::Subreaper, "prctl", e))?;
        let f = std::fs::File::open("/proc/thread-self/children").map_err(|e| ChildError::io(Step::Subreaper, "open /proc/thread-self/children", e))?;
        Some(OwnedFd::from(f))
    } else {
        None
    };
    // Before the view: /proc is still the host's mount, and what it shows
    // under sys/net, sys/kernel/shm* and the like is this process's new
    // namespaces' own.
    for (path, value) in &plan.sysctls {
        std::fs::write(path, value).map_err(|e| ChildError::io(Step::Sysctl, format!("write {value:?} to {}", path.display()), e))?;
    }
    // Opened while the host's /proc is still mounted.
    let view_ns = match foreign_ns {
        Some(_) => Some(OwnedFd::from(
            std::fs::File::open("/proc/thread-self/ns/mnt").map_err(|e| ChildError::io(Step::FilesystemView, "open this process's mount namespace", e))?,
        )),
        None => None,
    };
    if plan.join == 0 && a.view.is_none() {
        let hooks = &plan.container_hooks;
        let mut create_container = || {
            if hooks.is_empty() {
                return Ok(());
            }
            crate::container_hooks::learn_host_pid();
            crate::container_hooks::run("createContainer", &hooks.create, &hooks.state, "creating", Some(c"/oldroot"))
        };
        mounts::build(&Kernel, &plan.mounts, plan.root.as_ref().map(|(p, ro)| (p.as_path(), *ro)), &plan.workdir, a.trees, &mut create_container)?;
    } else if plan.foreign_mount_ns {
        // setns put this process at the root of the namespace it joined,
        // which is not the sandbox's view: its init's root is.
        let root = a.join_root.ok_or_else(|| ChildError::new(Step::JoinNamespaces, "no root of the sandbox to join"))?;
        chroot_to(root, &plan.workdir)?;
    } else {
        if let Some(view) = a.view {
            // The view its builder made (and pivoted into).
            sys::setns(view, libc::CLONE_NEWNS).map_err(|e| ChildError::io(Step::FilesystemView, "enter the view its builder made", e))?;
        }
        // setns put this process at the root of the sandbox's view.
        Kernel
            .chdir(Path::new(std::ffi::OsStr::from_bytes(plan.workdir.as_bytes())))
            .map_err(|e| ChildError::io(Step::FilesystemView, format!("chdir {}", plan.workdir.to_string_lossy()), e))?;
    }
    detach_preopened_dirs(a)?;
    if plan.loopback {
        sys::loopback_up(Some(capexec_decl::grants::OWN_ADDRESS)).map_err(|e| ChildError::io(Step::Network, "bring up loopback", e))?;
    }
    if plan.dns_stub {
        // Before the capabilities go (port 53); the broker answers on it.
        let tx = a.notify_tx.ok_or_else(|| ChildError::new(Step::Network, "no channel to the broker for the resolver socket"))?;
        let sent = sys::dns_stub_socket().and_then(|s| sys::send_fd(tx, s.as_raw_fd()));
        sent.map_err(|e| ChildError::io(Step::Network, "bind the broker's resolver on 127.0.0.1:53 and pass it on", e))?;
    }
    // The notify socket, then the syslog socket: the order `Starting::finish` receives them in.
    let names: Vec<&str> = [(plan.notify_relay, "notify"), (plan.syslog, "log")].iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
    if !names.is_empty() {
        let tx = a.notify_tx.ok_or_else(|| ChildError::new(Step::Notify, "no channel to capexec for the notify and syslog sockets"))?;
        for sock in mounts::own_sockets(&Kernel, Path::new(crate::plan::NOTIFY_RELAY_DIR), &names)? {
            sys::send_fd(tx, sock.as_raw_fd()).map_err(|e| ChildError::io(Step::Notify, "pass the notify or syslog socket to capexec", e))?;
        }
    }
    // After the last mount_setattr (the sockets' directory's): the view's mounts
    // are this process's namespace's only while it is in it.
    if let Some(target) = foreign_ns {
        into_foreign_mount_ns(target, &plan.workdir)?;
    }
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h.to_str().unwrap_or("capexec")).map_err(|e| ChildError::io(Step::Hostname, "sethostname", e))?;
    }
    for (res, soft, hard) in &plan.rlimits {
        process::set_rlimit(*res as libc::c_int, *soft, *hard)
            .map_err(|e| ChildError::io(Step::Rlimits, format!("setrlimit rlimits.{} to {soft}/{hard}", capexec_decl::spec::Resource::name_of_raw(*res)), e))?;
    }
    Kernel.drop_privileges(&plan.keep_caps, a.cap_last_cap, !plan.no_new_privs)?;
    // no_new_privs before Landlock (which requires it without CAP_SYS_ADMIN):
    // no setuid or file-capability binary can give anything back. Where the
    // plan leaves it off, CAP_SYS_ADMIN is held for Landlock and the filters.
    if plan.no_new_privs {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| ChildError::io(Step::NoNewPrivs, "prctl", e))?;
    }
    let dirs: Vec<RawFd> =
        plan.preopens.iter().zip(&a.fds[plan.inherited..]).filter(|(p, _)| matches!(p.kind, PreopenKind::Directory { .. })).map(|(_, fd)| *fd).collect();
    // Applied here, in init, so the service and init share one Landlock domain:
    // the service can then signal nothing outside it (not capexec, not the host).
    // A learning run denies nothing (its filter records instead).
    if plan.learn.is_some() {
        return Ok((view_ns, children));
    }
    if let Some(note) = Kernel.landlock(&plan.landlock, &dirs)? {
        eprintln!("capexec: {}: warning: {note} (landlock.mode = \"best-effort\")", plan.name);
    }
    Ok((view_ns, children))
}

/// Puts this process into the mount namespace `target` (the runtime's, or
/// one entered by path) while the view, built in its own namespace, stays
/// its root: `/` is opened before the setns (which moves root and working
/// directory to `target`'s root) and chrooted into after it. Nothing is
/// mounted in `target`, and the view's root is its own namespace's root
/// mount, so `..` leads nowhere from it, as after pivot_root; the caller
/// keeps that namespace open, or its mounts would go with its last member.
fn into_foreign_mount_ns(target: RawFd, workdir: &std::ffi::CStr) -> Result<(), ChildError> {
    use nix::fcntl::OFlag;
    let root = nix::fcntl::open(c"/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(|e| ChildError::io(Step::FilesystemView, "open the view's root", std::io::Error::from(e)))?;
    sys::setns(target, libc::CLONE_NEWNS).map_err(|e| ChildError::io(Step::JoinNamespaces, "setns into the mount namespace to live in", e))?;
    chroot_to(root.as_raw_fd(), workdir)
}

/// chroot to the directory `root` (an fd), then chdir to `workdir` in it.
fn chroot_to(root: RawFd, workdir: &std::ffi::CStr) -> Result<(), ChildError> {
    nix::unistd::fchdir(root).map_err(|e| ChildError::io(Step::FilesystemView, "fchdir to the view's root", std::io::Error::from(e)))?;
    nix::unistd::chroot(".").map_err(|e| ChildError::io(Step::FilesystemView, "chroot into the view", std::io::Error::from(e)))?;
    Kernel
        .chdir(Path::new(std::ffi::OsStr::from_bytes(workdir.to_bytes())))
        .map_err(|e| ChildError::io(Step::FilesystemView, format!("chdir {}", workdir.to_string_lossy()), e))
}

/// Replaces each preopened directory (opened by capexec in the host's mount
/// tree, where `..` leads anywhere) with a detached copy of the same
/// directory as the view shows it (the plan puts every preopened directory
/// into the view): its `..` leads nowhere, and the declaration's masks and
/// read-only binds inside it come along. Same fd number, so the Landlock rule
/// and the placement at 3, 4, ... use the copy.
fn detach_preopened_dirs(a: &ChildArgs) -> Result<(), ChildError> {
    for (p, fd) in a.plan.preopens.iter().zip(&a.fds[a.plan.inherited..]) {
        let PreopenKind::Directory { path } = &p.kind else { continue };
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("paths were checked for NUL during validation");
        let copy = sys::detached_dir(&c).map_err(|e| ChildError::io(Step::PreopenedDirectories, format!("detached copy of {}", path.display()), e))?;
        // Onto the host-tree fd's number (which closes it); the copy's own
        // number is closed when `copy` drops.
        nix::unistd::dup3(copy.as_raw_fd(), *fd, nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ChildError::io(Step::PreopenedDirectories, format!("replace the fd of {}", path.display()), std::io::Error::from(e)))?;
    }
    Ok(())
}

/// The service process: fds, session, signals, seccomp, exec.
/// The program (`main`) or a start_pre command: place the fds, reset
/// signals, install the filters, exec `argv`. Errors go to `err_wr`.
fn service(a: &ChildArgs, argv: &[std::ffi::CString], err_wr: RawFd, main: bool) -> ! {
    service_with(a, argv, err_wr, main, None)
}

/// [`service`], with `MAINPID` in the environment when given (the task
/// helper's commands: `kill -HUP $MAINPID` is the usual reload).
fn service_with(a: &ChildArgs, argv: &[std::ffi::CString], err_wr: RawFd, main: bool, main_pid: Option<libc::pid_t>) -> ! {
    let plan = a.plan;
    if let Some(fd) = a.announce.filter(|_| main) {
        // Best effort: without it the caller looks for init's child in /proc.
        let _ = nix::sys::socket::send(fd, b"S", nix::sys::socket::MsgFlags::MSG_DONTWAIT);
        let _ = nix::unistd::close(fd);
    }
    // First: from its first instruction of its own, the program cannot kill
    // the init that ends what it leaves. (The commands stay in init's
    // domain: a reload or stop command signals the program.)
    if main && plan.init_ends_leftovers() && plan.learn.is_none() {
        match crate::landlock_rules::apply_signal_layer(&plan.landlock) {
            Ok(Some(note)) => eprintln!("capexec: {}: warning: {note} (landlock.mode = \"best-effort\")", plan.name),
            Ok(None) => {}
            Err(e) => {
                report(err_wr, &e);
                exit(127);
            }
        }
    }
    if let Some(console) = a.console.filter(|_| main) {
        // Before the gate: the engine waits for the terminal while it creates.
        if let Err(e) = terminal(console) {
            report(err_wr, &e);
            exit(127);
        }
    }
    let gate = a.gate.filter(|_| main);
    let err_wr = match gate {
        // The setup is done: the caller learns so from the error pipe's EOF
        // (init closes its copy too), then waits no more for this process.
        Some(g) => {
            // The agent's filter now, while the launch waits to take its
            // listener out of this fd table (it stays there, close-on-exec,
            // until exec): a call it hands over waits for the agent.
            if let Some(prog) = &plan.agent_seccomp {
                match crate::seccomp::install_with_listener(prog) {
                    Ok(l) => std::mem::forget(l),
                    Err(e) => {
                        report(err_wr, &ChildError::io(Step::Seccomp, "install the profile's notify filter", e));
                        exit(127);
                    }
                }
            }
            let _ = nix::unistd::close(err_wr);
            if let Err(e) = wait_at_gate(g) {
                report(-1, &ChildError::io(Step::Exec, "wait to be started", e));
                exit(127);
            }
            -1
        }
        None => err_wr,
    };
    let fail = |e: ChildError| -> ! {
        report(err_wr, &e);
        exit(127)
    };
    if main {
        let hooks = &plan.container_hooks;
        if let Err(e) = crate::container_hooks::run("startContainer", &hooks.start, &hooks.state, "created", None) {
            fail(e);
        }
    }
    // Move every preopened fd above the target range first, so placing them at
    // 3, 4, ... cannot overwrite one that is still to be moved.
    let n = a.fds.len() as i32;
    let mut high = Vec::with_capacity(a.fds.len());
    let above = |fd: RawFd| nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3 + n));
    for fd in a.fds {
        match above(*fd) {
            Ok(h) => high.push(h),
            Err(e) => fail(ChildError::io(Step::FileDescriptors, "duplicate a preopened fd", std::io::Error::from(e))),
        }
    }
    // The error pipe and the listener socket out of the target range too.
    let mut err_wr = err_wr;
    if (0..3 + n).contains(&err_wr) {
        err_wr = above(err_wr).unwrap_or_else(|e| fail(ChildError::io(Step::FileDescriptors, "move the error pipe", std::io::Error::from(e))));
    }
    // The gate out of it too: it stays open until the exec.
    if let Some(g) = gate.filter(|g| *g < 3 + n) {
        let _ = above(g);
        let _ = nix::unistd::close(g);
    }
    let mut notify_tx = a.notify_tx;
    if let Some(fd) = notify_tx.filter(|fd| *fd < 3 + n) {
        // Never None here: without it the broker's filter would not be installed.
        notify_tx = Some(above(fd).unwrap_or_else(|e| fail(ChildError::io(Step::FileDescriptors, "move the broker's socket", std::io::Error::from(e)))));
    }
    for (i, h) in high.iter().enumerate() {
        // dup2 clears CLOEXEC on the copy.
        if let Err(e) = nix::unistd::dup2(*h, 3 + i as i32) {
            report(err_wr, &ChildError::io(Step::FileDescriptors, format!("place preopened fd at {}", 3 + i), std::io::Error::from(e)));
            exit(127);
        }
    }
    // Everything else (inherited from whoever started capexec, capexec's own pipes)
    // is closed by exec; the error pipe stays usable until then.
    if let Err(e) = sys::cloexec_from(3 + n as u32) {
        report(err_wr, &ChildError::io(Step::FileDescriptors, "close_range", e));
        exit(127);
    }
    // A new session: no controlling terminal, so TIOCSTI cannot push input into
    // the terminal capexec was started from.
    let _ = nix::unistd::setsid();
    // Default dispositions and an empty mask: capexec blocked the forwarded
    // signals, Rust ignores SIGPIPE, and whoever started capexec may have
    // ignored others; the service expects none of that, but SIGPIPE ignored
    // where it asks for it (systemd's IgnoreSIGPIPE=).
    sys::default_signals(if plan.ignore_sigpipe { &[libc::SIGPIPE] } else { &[] });
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Last, so that nothing capexec makes for the service above is made
    // with the service's mask.
    if let Some(m) = plan.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    }
    let mut env = plan.env.clone();
    if let Some(i) = plan.listen_pid_slot {
        env[i] = std::ffi::CString::new(format!("LISTEN_PID={}", std::process::id())).expect("no NUL");
    }
    if let Some(pid) = main_pid {
        env.push(std::ffi::CString::new(format!("MAINPID={pid}")).expect("no NUL"));
    }
    let candidates = program_paths(&argv[0], &env);
    let argv = sys::ExecList::new(argv.to_vec());
    let envp = sys::ExecList::new(env);
    // What only init holds (CAP_KILL, CAP_SETPCAP) goes; before the filters,
    // which need not allow capset.
    if let Err(e) = crate::creds::service_privileges(&plan.keep_caps, !plan.no_new_privs) {
        report(err_wr, &e);
        exit(127);
    }
    // Before the filters (they need not allow prctl). Inherited by every child
    // and kept across execve.
    if plan.mdwe {
        if let Err(e) = sys::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) {
            let hint = if e.raw_os_error() == Some(libc::EINVAL) { " (PR_SET_MDWE needs Linux 6.3 or newer)" } else { "" };
            report(err_wr, &ChildError::io(Step::MemoryDenyWriteExecute, format!("prctl PR_SET_MDWE{hint}"), e));
            exit(127);
        }
    }
    // A learning run records its start_pre commands too, each through a
    // listener of its own (see launch::spawn_with).
    if let Some(prog) = plan.learn.as_ref() {
        // From here on every syscall of this process waits for the recorder,
        // which takes the listener out of this fd table itself (pidfd_getfd):
        // sending it would be a syscall that waits for the recorder. The
        // listener is close-on-exec, so the program never holds it. A
        // command of the task helper's (start_post, reload) inherited its
        // helper's non-dumpable state, which would keep a recorder without
        // CAP_SYS_PTRACE (rootless) from it: a learning run confines nothing.
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 1);
        match crate::seccomp::install_with_listener(prog) {
            Ok(l) => std::mem::forget(l),
            Err(e) => {
                report(err_wr, &ChildError::io(Step::Seccomp, "install the learning filter", e));
                exit(127);
            }
        }
    } else {
        if let Some(prog) = plan.watch.as_ref().filter(|_| main) {
            // Taken out by the recorder as a learning listener is: sending
            // it would be a sendmsg, which the filter hands to the listener.
            // The listener is close-on-exec, and the program must not run
            // before the recorder has it (its network calls would fail with
            // ENOSYS): so a call the filter hands over, doing nothing, waits
            // for the recorder to answer.
            match crate::seccomp::install_with_listener(prog) {
                Ok(l) => std::mem::forget(l),
                Err(e) => {
                    report(err_wr, &ChildError::io(Step::Seccomp, "install the network summary's filter", e));
                    exit(127);
                }
            }
            sys::bind_nothing();
        }
        install_filters(plan, notify_tx.filter(|_| main), err_wr, main);
    }
    // As execvp: the first candidate that is there, else the first EACCES.
    let mut e = std::io::Error::from_raw_os_error(libc::ENOENT);
    let mut program = &candidates[0];
    for c in &candidates {
        let this = sys::execve(c, &argv, &envp);
        let missing = matches!(this.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR));
        if !missing && e.raw_os_error() != Some(libc::EACCES) {
            (e, program) = (this, c);
            if e.raw_os_error() != Some(libc::EACCES) {
                break;
            }
        }
    }
    let hint = match e.raw_os_error() {
        Some(libc::ENOENT) => " (is it inside the filesystem view? add its directory to filesystem.executable)",
        Some(libc::EACCES) => " (executables must be under filesystem.executable or /usr; read_write and tmpfs paths are never executable)",
        _ => "",
    };
    let detail = match candidates.len() {
        1 => format!("execve {}: {e}{hint}", program.to_string_lossy()),
        _ if e.raw_os_error() == Some(libc::ENOENT) => {
            format!("execve {}: executable file not found in $PATH", candidates[0].to_string_lossy().rsplit('/').next().unwrap_or_default())
        }
        _ => format!("execve {} (found in PATH): {e}{hint}", program.to_string_lossy()),
    };
    report(err_wr, &ChildError { step: Step::Exec, errno: e.raw_os_error(), detail });
    exit(127)
}

/// The program's terminal: a new pseudo-terminal of the view's /dev/ptmx
/// (the container's devpts instance), its master sent over `console` (a
/// connected console socket, as runc sends it: with the terminal's path),
/// its terminal side the program's stdin, stdout, stderr and controlling
/// terminal, in a session of its own.
fn terminal(console: RawFd) -> Result<(), ChildError> {
    let e = |what: &str, err: std::io::Error| ChildError::io(Step::StandardStreams, format!("terminal: {what}"), err);
    let (master, peer) = sys::open_pty(c"/dev/ptmx").map_err(|err| e("open a pseudo-terminal at /dev/ptmx", err))?;
    let n = sys::pty_number(master.as_fd()).map_err(|err| e("its number", err))?;
    sys::send_fds(console, format!("/dev/pts/{n}").as_bytes(), &[master.as_raw_fd()], 0).map_err(|err| e("send its master over the console socket", err))?;
    drop(master);
    let _ = nix::unistd::close(console);
    nix::unistd::setsid().map_err(|err| e("setsid", err.into()))?;
    for target in 0..3 {
        nix::unistd::dup2(peer.as_raw_fd(), target).map_err(|err| e(&format!("dup2 onto fd {target}"), err.into()))?;
    }
    sys::set_controlling_terminal(peer.as_fd()).map_err(|err| e("make it the controlling terminal", err))
}

/// Where to look for `program`: itself when it names a path (has a `/`),
/// else each directory of the environment's PATH (an OCI process's args[0]
/// is looked up so, as runc does; a declaration's argv[0] is absolute).
fn program_paths(program: &std::ffi::CStr, env: &[std::ffi::CString]) -> Vec<std::ffi::CString> {
    let bytes = program.to_bytes();
    if bytes.contains(&b'/') || bytes.is_empty() {
        return vec![program.to_owned()];
    }
    let path = env.iter().find_map(|e| e.to_bytes().strip_prefix(b"PATH=")).unwrap_or(crate::plan::DEFAULT_PATH.as_bytes());
    let found: Vec<std::ffi::CString> = path
        .split(|b| *b == b':')
        .map(|dir| if dir.is_empty() { &b"."[..] } else { dir })
        .filter_map(|dir| std::ffi::CString::new([dir, b"/", bytes].concat()).ok())
        .collect();
    if found.is_empty() {
        vec![program.to_owned()]
    } else {
        found
    }
}

/// Waits until `gate` (see `SpawnOptions::gate`) is readable: a writer
/// wrote, or came and went. A FIFO nobody has opened for writing yet does
/// not poll as hung up, so this waits for the first `start`.
fn wait_at_gate(gate: RawFd) -> std::io::Result<()> {
    loop {
        match sys::poll_raw(gate, libc::POLLIN, -1) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    let mut b = [0u8; 1];
    let _ = nix::unistd::read(gate, &mut b);
    // Kept open (close-on-exec) until the exec: `start` waits for the last
    // reader to go, so that it returns once the program runs, and a signal
    // sent then meets the program, not the setup before it.
    Ok(())
}

/// The broker's notify filter (if any) and the allowlist, the service's last
/// steps before exec.
fn install_filters(plan: &SetupPlan, notify_tx: Option<RawFd>, err_wr: RawFd, main: bool) {
    // The broker's filter first: the allowlist after it need not allow seccomp()
    // or sendmsg. Until the parent serves the listener, a brokered syscall would
    // wait — and none is made before exec. Only the program has it: a
    // start_pre command's calls meet its view and Landlock unbrokered.
    if let Some(prog) = plan.notify_seccomp.as_ref().filter(|_| main) {
        // Never run without the broker's filter the plan asks for.
        let sent = match notify_tx {
            // The parent takes it (sending it would be a sendmsg the filter
            // hands to the listener itself) and answers this wait, the first
            // call the filter hands over (bind is among them: see compose).
            _ if plan.listener_taken => crate::seccomp::install_with_listener(prog).map(|l| {
                std::mem::forget(l);
                sys::bind_nothing();
            }),
            Some(tx) => {
                let tx = topmost(tx);
                crate::seccomp::install_with_listener(&crate::seccomp::exempt_sender(prog, tx)).and_then(|l| sys::send_fd(tx, l.as_raw_fd()))
            }
            None => {
                report(err_wr, &ChildError::new(Step::Seccomp, "internal: no channel for the broker's notify listener"));
                exit(127)
            }
        };
        if let Err(e) = sent {
            report(err_wr, &ChildError::io(Step::Seccomp, "install the broker's notify filter and pass its listener", e));
            exit(127);
        }
    }
    // Last before exec: the filter does not have to allow any of the setup above.
    for prog in &plan.seccomp_before {
        if let Err(e) = crate::seccomp::install_logged(prog) {
            report(err_wr, &ChildError::io(Step::Seccomp, "install the profile's filters", e));
            exit(127);
        }
    }
    if let Some(prog) = plan.report_refusals.as_ref().filter(|_| main) {
        // Sent at once: the plan made sure that the filter passes sendmsg,
        // exec and the error path, so nothing waits for the listener before
        // the caller has it (see SetupPlan::reporting_filter).
        let sent = match notify_tx {
            Some(tx) => crate::seccomp::install_with_listener(prog).and_then(|l| sys::send_fd(tx, l.as_raw_fd())),
            None => Err(std::io::Error::other("internal: no channel for the listener")),
        };
        if let Err(e) = sent {
            report(err_wr, &ChildError::io(Step::Seccomp, "install the filter and pass the listener of its refusals", e));
            exit(127);
        }
        return;
    }
    if let Err(e) = crate::seccomp::install_logged(&plan.seccomp) {
        report(err_wr, &ChildError::io(Step::Seccomp, "install the filter", e));
        exit(127);
    }
}

/// A close-on-exec copy of `fd` at 1023, or the highest number below the
/// fd limit (`fd` itself if that is taken). The broker's filter lets
/// sendmsg through on the number its listener is sent on, and the program,
/// which gets its fds lowest first, is least likely to put a socket of its
/// own there. Not higher: the kernel keeps the fd table the number needed
/// (8 bytes a slot) for the program's life.
fn topmost(fd: RawFd) -> RawFd {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    let top = RawFd::try_from(limit.clamp(1, 1024) - 1).unwrap_or(1023);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(top)).unwrap_or(fd)
}

/// What init needs to end every process the service leaves when it has no
/// pid namespace, whose end would take them down: its list of children
/// (it is their subreaper: every orphan of the service comes to it), and
/// whose death ends the service with it (`capexec exec`, or the daemon's
/// launcher, killed).
struct Leftovers {
    children: OwnedFd,
    parent: Pid,
}

impl Leftovers {
    /// Kills init's children until it has none (see `process::end_children`).
    fn end(&self) {
        process::end_children(&[self.children.as_fd()]);
    }
}

/// Init of the namespace: reaps every child, forwards signals to the service,
/// and exits with the service's status (128+N when killed by signal N). Its
/// exit takes every remaining process of the pid namespace with it; without
/// one, it ends them itself (`leftovers`). It keeps `view_ns` open for the
/// sandbox's life.
fn init(a: &ChildArgs, service: libc::pid_t, helper: Option<libc::pid_t>, view_ns: Option<OwnedFd>, leftovers: Option<Leftovers>) -> ! {
    // Nothing of the setup is needed any more, and the service must not be able to
    // read this process's memory through /proc.
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    // CAP_KILL alone from here: the program may switch to a user root
    // without it could not signal (and what reads its pid file).
    if let Err(e) = crate::creds::init_privileges(a.cap_last_cap, reads_pid_file(a)) {
        report(a.err_wr, &e);
        let _ = kill(Pid::from_raw(service), Signal::SIGKILL);
        exit(126);
    }
    if let Err(e) = seccompiler::apply_filter(&a.plan.init_seccomp) {
        report(a.err_wr, &ChildError::io(Step::Seccomp, "install the init filter", e));
        // Our own child, which must not run unsupervised.
        let _ = kill(Pid::from_raw(service), Signal::SIGKILL);
        exit(126);
    }
    // Nothing open but the view's namespace and the list of children, where
    // they are kept.
    let mut kept = [view_ns.as_ref(), leftovers.as_ref().map(|l| &l.children)].map(|f| f.map_or(-1, |f| f.as_raw_fd()));
    kept.sort_unstable();
    let _ = sys::close_all_but(&kept[kept.iter().take_while(|f| **f < 0).count()..]);
    let mut set = crate::launch::blocked_set();
    if leftovers.is_some() {
        set.add(Signal::try_from(PARENT_GONE).expect("a signal"));
    }
    // The service's end is init's: with what it left.
    let end = |code: i32| -> ! {
        if let Some(l) = &leftovers {
            l.end();
        }
        exit(code)
    };
    // Whom init stands for: the service's process, then for a forking
    // service the daemon it left (`None`: every process left).
    let mut main = Some(service);
    let mut forked = false;
    // A signal forwarded to a forking service's started process before init
    // reaped it: it may have been exiting already (a zombie takes a signal
    // and does nothing), and SIGTERM comes before SIGCHLD when both wait.
    let mut early = None;
    loop {
        match process::wait_signal(set.as_ref(), None) {
            Some(libc::SIGCHLD) => {
                while let Some((pid, status)) = process::reap_any() {
                    if Some(pid) != main {
                        continue;
                    }
                    match &a.plan.forking {
                        Some(f) if !forked && exit_code(status) == 0 => {
                            forked = true;
                            let sig;
                            // The daemon it left gets that signal now, without
                            // waiting for its pid file: a stop waits for no start.
                            (main, sig) = match early.take() {
                                Some(early) => (daemon_named(f), Some(early)),
                                None => daemon_pid(f, a.plan.command_timeout, helper),
                            };
                            ready(f);
                            if let Some(sig) = sig {
                                forward(sig, main, a.plan.pid_ns, &leftovers, helper);
                            }
                        }
                        // The daemon may have left a successor that its pid
                        // file names now (nginx's binary upgrade, a reload that
                        // re-executes): systemd reads the file again after a
                        // reload. Believed as at the start: one of init's children.
                        Some(f) if forked => match daemon_named(f) {
                            Some(next) => main = Some(next),
                            None => end(exit_code(status)),
                        },
                        _ => match a.plan.main_by_notify.as_deref().and_then(successor) {
                            // The service named another main process (MAINPID=).
                            Some(next) => main = Some(next),
                            None => end(exit_code(status)),
                        },
                    }
                }
                if forked && main.is_none() && !others_left(helper) {
                    exit(0);
                }
            }
            Some(PARENT_GONE) if leftovers.as_ref().is_some_and(|l| nix::unistd::getppid() != l.parent) => {
                // Nobody supervises the service any more.
                end(125)
            }
            Some(PARENT_GONE) if leftovers.is_some() => {}
            Some(sig) => {
                if a.plan.forking.is_some() && !forked {
                    early = Some(sig);
                }
                forward(sig, main, a.plan.pid_ns, &leftovers, helper)
            }
            None => {}
        }
    }
}

/// The process a notify service named its main one (MAINPID=) before its
/// main process ended, as whoever reads its socket answers init's question
/// on it (see `crate::mainpid`): believed only where it is init's child.
fn successor(socket: &std::ffi::CStr) -> Option<libc::pid_t> {
    // Bounds the wait for a reader that has gone (nothing left to
    // supervise); a reader answers as it reads the question.
    const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    let set = process::signal_set(&[crate::mainpid::answer_signal()]);
    // Answers to questions init did not ask (anyone may ask).
    while process::wait_signal_info(&set, Some(std::time::Duration::ZERO)).is_some() {}
    if !send_notify(socket, crate::mainpid::QUESTION.as_bytes()) {
        return None;
    }
    // Waits for a queued answer; the signal sent with kill(2) carries none.
    for _ in 0..4 {
        match process::wait_signal_info(&set, Some(ANSWER_WAIT))? {
            q if q.code == libc::SI_QUEUE => return Some(q.value).filter(|p| *p > 1 && process::is_child(Some(*p))),
            _ => {}
        }
    }
    None
}

/// Whether init has a child besides the task helper: for a forking service
/// without a pid file, whether any process of it is left (orphans come to
/// init). Read from /proc (init's forking filter allows the open).
fn others_left(helper: Option<libc::pid_t>) -> bool {
    let Some(h) = helper else { return process::is_child(None) };
    let mut buf = [0u8; 256];
    let fd = match nix::fcntl::open(c"/proc/thread-self/children", nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()) {
        Ok(fd) => fd,
        Err(_) => return process::is_child(None),
    };
    let n = nix::unistd::read(fd, &mut buf).unwrap_or(0);
    let _ = nix::unistd::close(fd);
    // Parsed, not formatted: init's filter has no brk or mmap for malloc.
    std::str::from_utf8(&buf[..n]).unwrap_or("").split_whitespace().any(|p| p.parse::<libc::pid_t>() != Ok(h))
}

/// Forwards `sig` to the process init stands for; when that is every process
/// left (a forking service without a usable pid file), to all of them: in a
/// pid namespace every process but init, without one init's children but
/// the task helper (init is their subreaper: every orphan of the service
/// comes to it). chronyd's stop reached nobody once, when its pid file did
/// not name it yet as the stop came. A stop (SIGTERM, SIGINT, SIGQUIT) is
/// followed by SIGCONT, as systemd follows its kill signal: a stopped
/// process would hold it pending until the stop timeout's SIGKILL
/// (transmission-daemon's unit stops it with `kill -s STOP` first).
fn forward(sig: libc::c_int, main: Option<libc::pid_t>, pid_ns: bool, leftovers: &Option<Leftovers>, helper: Option<libc::pid_t>) {
    let Ok(sig) = Signal::try_from(sig) else { return };
    let send = |s: Signal| match (main, leftovers) {
        (Some(pid), _) => drop(kill(Pid::from_raw(pid), s)),
        // From the namespace's init, -1 is every process in it but init.
        (None, _) if pid_ns => drop(kill(Pid::from_raw(-1), s)),
        (None, Some(l)) => process::signal_children(l.children.as_fd(), helper, s as libc::c_int),
        // A joined pid namespace: nothing names them here; the supervisor's
        // stop timeout and the service's cgroup end them.
        (None, None) => {}
    };
    send(sig);
    if matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) {
        send(Signal::SIGCONT);
    }
}

/// The daemon's main process: the pid file's pid, if it names a child of
/// init (a daemon that forked away from the started process was given to
/// init), else `None`. The daemon may write the file well after the started
/// process exits (apache's master, on a busy machine, after more than the
/// 100 ms this once waited: its stop then reached nobody): waited for, as
/// systemd does, up to the start timeout (`timeout`), while any process of
/// the service is left (`others_left`), and until a signal to forward
/// comes (a stop waits for no start): returned with it, to be forwarded.
fn daemon_pid(f: &crate::plan::Forking, timeout: std::time::Duration, helper: Option<libc::pid_t>) -> (Option<libc::pid_t>, Option<libc::c_int>) {
    if f.pid_file.is_none() {
        return (None, None);
    }
    const STEP: std::time::Duration = std::time::Duration::from_millis(20);
    // SIGCHLD stays pending for init's loop, which reaps.
    let mut forwarded = SigSet::empty();
    for s in FORWARDED.iter().filter_map(|s| Signal::try_from(*s).ok()) {
        forwarded.add(s);
    }
    let named = || daemon_named(f);
    // Counted, not timed: init's filter allows no clock syscall.
    for _ in 0..=timeout.as_millis() / STEP.as_millis() {
        if let Some(pid) = named() {
            return (Some(pid), None);
        }
        if !others_left(helper) {
            return (None, None);
        }
        if let Some(sig) = process::wait_signal(forwarded.as_ref(), Some(STEP)) {
            return (named(), Some(sig));
        }
    }
    (None, None)
}

/// The pid in a forking service's pid file, if there is one: trusted only
/// as far as it names one of the service's own processes (init's children).
fn daemon_named(f: &crate::plan::Forking) -> Option<libc::pid_t> {
    read_pid(f.pid_file.as_ref()?).filter(|pid| process::is_child(Some(*pid)))
}

/// Whether init and the task helper read a forking service's pid file.
fn reads_pid_file(a: &ChildArgs) -> bool {
    a.plan.forking.as_ref().is_some_and(|f| f.pid_file.is_some())
}

/// The daemon a forking start without a pid file left, as systemd guesses
/// it: once the started program has ended, the one process init adopted
/// (its child other than this helper). oidentd's `kill -HUP $MAINPID`
/// reload signalled the ended program's pid, and failed. The program where
/// that is not one process.
fn forked_daemon(program: libc::pid_t) -> libc::pid_t {
    if std::path::Path::new(&format!("/proc/{program}")).exists() {
        return program;
    }
    let (init, me) = (nix::unistd::getppid().as_raw(), std::process::id() as libc::pid_t);
    let adopted: Vec<libc::pid_t> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|p| *p != me && process::parent_of(*p) == Some(init))
        .collect();
    match adopted.as_slice() {
        [daemon] => *daemon,
        _ => program,
    }
}

fn read_pid(path: &std::ffi::CStr) -> Option<libc::pid_t> {
    use nix::fcntl::OFlag;
    // Not a FIFO that would block init, not through a symlink the service
    // left. nix's calls, not std's File: nothing but openat, read and close
    // (init's filter allows no more).
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let fd = nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty()).ok()?;
    let mut buf = [0u8; 32];
    let n = nix::unistd::read(fd, &mut buf);
    let _ = nix::unistd::close(fd);
    let n = n.ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok().filter(|p: &libc::pid_t| *p > 1)
}

/// READY=1 on the supervisor's socket, as the service would send it with
/// sd_notify(3). Without MAINPID=: init knows the daemon's pid in its own
/// namespace only, and systemd (through `capexec exec`) would take it for
/// a host pid.
fn ready(f: &crate::plan::Forking) {
    if let Some(path) = &f.ready_socket {
        send_notify(path, b"READY=1");
    }
}

/// One datagram to a notify socket at `path`, from a socket of its own;
/// whether it was sent.
fn send_notify(path: &std::ffi::CStr, msg: &[u8]) -> bool {
    use nix::sys::socket::{sendto, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
    let Ok(addr) = UnixAddr::new(path.to_bytes()) else { return false };
    let Ok(sock) = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None) else { return false };
    sendto(std::os::fd::AsRawFd::as_raw_fd(&sock), msg, &addr, MsgFlags::empty()).is_ok()
}

pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::program_paths;
    use std::ffi::CString;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn a_bare_program_name_is_looked_up_in_the_environments_path() {
        let env = [c("A=1"), c("PATH=/usr/bin::/bin")];
        assert_eq!(program_paths(&c("sleep"), &env), [c("/usr/bin/sleep"), c("./sleep"), c("/bin/sleep")]);
        assert_eq!(program_paths(&c("/bin/sleep"), &env), [c("/bin/sleep")]);
        assert_eq!(program_paths(&c("./run"), &env), [c("./run")]);
        let default = program_paths(&c("ls"), &[c("A=1")]);
        assert_eq!(default.first(), Some(&c("/usr/local/sbin/ls")));
        assert_eq!(default.last(), Some(&c("/bin/ls")));
    }
}
