//! `capexec exec`: the foreground wrapper.

use super::systemd::{Handoff, Relay};
use super::CmdError;
use capexec::cli::ExecArgs;
use capexec_decl::spec::ServiceType;
use capexec_decl::{Context, ServiceSpec};
use capexec_supervisor::cgroup::ExecCgroup;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub fn run(args: &ExecArgs) -> i32 {
    let search = super::search_path(&args.search.unit_path);
    let spec = match capexec_decl::load_unit(&args.unit, &search, &Context::current()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return super::EXIT_SETUP;
        }
    };
    if args.explain {
        return super::learn::explain(&spec, "capexec exec", false);
    }
    let host_env: Vec<(String, String)> = std::env::vars().collect();
    let mut handoff = match Handoff::from_env(&host_env) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("capexec: {}: from systemd: {e}", spec.name);
            return e.exit_code();
        }
    };
    // What the kernel refuses the service goes to its standard error as it
    // happens, as the daemon writes it to a service's log: as root from the
    // audit log; rootless, where there is none to read, the refused calls
    // themselves (files and ports: `capexec exec --explain`).
    let name = spec.name.clone();
    let watch = Some(std::rc::Rc::new(capexec_supervisor::trail::Watch::live(
        &spec,
        Box::new(move |line| capexec_decl::terminal::say(format_args!("capexec: {name}: {line}"))),
    )));
    handoff.watch = watch.clone();
    let code = launch_foreground(&spec, handoff);
    if let Some(w) = watch.and_then(|w| std::rc::Rc::try_unwrap(w).ok()) {
        w.finish(code);
    }
    code
}

/// Plans, spawns and waits; shared by `exec` and `run`. `handoff` is what
/// systemd gave `capexec exec` for the service (nothing for `run`).
pub fn launch_foreground(spec: &ServiceSpec, handoff: Handoff) -> i32 {
    for w in spec.warnings.iter().chain(&capexec_sandbox::netguard::ping_warning(spec)) {
        eprintln!("capexec: {}: warning: {w}", spec.name);
    }
    // What this process cannot do: a privileged command after the service
    // started (a brokered capexec exec is confined by then), and knowing
    // when a notify or forking service is ready for its start_post.
    let privileged_later = spec.exec.start_post.iter().chain(&spec.exec.reload).chain(&spec.exec.stop).any(|c| c.privileged);
    let waits = matches!(spec.service.kind, ServiceType::Notify | ServiceType::Forking) && !spec.exec.start_post.is_empty();
    if privileged_later || waits {
        eprintln!(
            "capexec: {}: warning: under capexec exec, privileged start_post, reload and stop commands, and the start_post of a notify or forking service, do not run: they need the daemon (capexec start)",
            spec.name
        );
    }
    let rootless = !nix::unistd::geteuid().is_root();
    // The privileged condition and start_pre commands, on the host before
    // the sandbox exists.
    let env: Vec<(String, String)> = spec.exec.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let note = |m: &str| capexec_decl::terminal::say(format_args!("capexec: {}: {m}", spec.name));
    if let Err(e) = capexec_supervisor::privileged::run_before_start(&spec.exec, &env, spec.service.ready_timeout, None, &note) {
        if e.condition_unmet() {
            return not_started(&spec.name, &e);
        }
        eprintln!("capexec: {}: {e}", spec.name);
        return super::EXIT_SETUP;
    }
    let host_env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| !super::systemd::CONSUMED.contains(&k.as_str())).collect();
    // Only a service that speaks sd_notify gets a socket to speak on (as
    // NotifyAccess= would say: the others cannot alter the unit's state).
    // A notify service gets one where no systemd listens too (a terminal),
    // as under the daemon: collectd daemonizes where it finds none, and
    // its pid file in /run, which no declaration of it lets it write, then
    // stops it.
    let speaks = match spec.service.kind {
        ServiceType::Notify => true,
        ServiceType::Forking => handoff.notify.is_some(),
        _ => false,
    };
    let notify = match speaks {
        true => capexec_sandbox::plan::Notify::Relay { watchdog_usec: handoff.watchdog_usec },
        false => capexec_sandbox::plan::Notify::None,
    };
    let extras = capexec_sandbox::plan::Extras {
        rootless,
        host_env: &host_env,
        inherited: &handoff.names,
        notify,
        credentials: handoff.credentials.as_deref(),
        broker: capexec_broker::contribution(spec),
        learning: false,
        watch_network: handoff.net_watch.is_some() || handoff.net_seen.is_some(),
        syslog: true,
        // Rootless no audit log tells capexec what the kernel refused; the
        // refused calls come to it instead (to a brokered capexec's
        // broker, whose listener is the one the kernel allows).
        report_refusals: rootless && handoff.watch.is_some(),
        ..Default::default()
    };
    let plan = match capexec_sandbox::plan::compose(spec, &extras) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("capexec: {}: {e}", spec.name);
            return super::EXIT_SETUP;
        }
    };
    tracing::debug!(unit = %spec.name, flags = plan.clone_flags, mounts = plan.mounts.len(), "launching");
    // Runtime directories (and the pid file, and the sockets its
    // broker bound) go when the service
    // stops, as systemd removes them, by a helper that outlives this process:
    // once it brokers, this process's seccomp filter allows no unlinking, and
    // a SIGKILL leaves it no chance. Forked before this process joins the
    // guard's cgroup, whose watcher kills everything in it.
    if capexec_sandbox::resources::leaves_anything(spec) {
        let owned = spec.clone();
        match capexec_sys::process::after_exit("fork the runtime directories' remover", move || capexec_sandbox::resources::remove_runtime_directories(&owned))
        {
            // Open until this process exits: its EOF is the helper's signal.
            Ok(wr) => {
                let _ = std::os::fd::IntoRawFd::into_raw_fd(wr);
            }
            Err(e) => {
                eprintln!("capexec: {}: {e}", spec.name);
                return super::EXIT_SETUP;
            }
        }
    }
    // The network guard, where the service has host sockets: as root, a
    // cgroup of its own, with this process (which opens those sockets and
    // brokers) in the child the guard lets through. Rootless, the plan has
    // refused what would be weaker without it. A service without a pid
    // namespace gets the cgroup too, for its watcher to end it whole.
    let cgroup = match exec_cgroup(spec, rootless) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capexec: {e}");
            return e.exit_code();
        }
    };
    // The cgroup watcher removes the directories once this process ends.
    launch_planned(spec, plan, handoff, cgroup)
}

/// The service's cgroup under capexec exec, as root: for the network guard
/// where it has host sockets, and for a service without a pid namespace,
/// which nothing else ends whole if capexec is killed (see [`ExecCgroup`]).
fn exec_cgroup(spec: &ServiceSpec, rootless: bool) -> Result<Option<ExecCgroup>, CmdError> {
    let unit = || spec.name.clone();
    let cgroup = |source| CmdError::Cgroup { unit: unit(), source };
    let Some(policy) = capexec_sandbox::netguard::policy(spec).map_err(|source| CmdError::Guard { unit: unit(), source })? else {
        if rootless || spec.namespaces.pid || !capexec_supervisor::cgroup::v2_mounted() {
            return Ok(None);
        }
        return ExecCgroup::enter(&spec.name, None).map(Some).map_err(cgroup);
    };
    if rootless || !capexec_supervisor::cgroup::v2_mounted() {
        capexec_sandbox::netguard::require_guard(spec).map_err(CmdError::launch(&spec.name))?;
        return Ok(None);
    }
    ExecCgroup::enter(&spec.name, Some(&policy)).map(Some).map_err(cgroup)
}

fn launch_planned(spec: &ServiceSpec, plan: capexec_sandbox::SetupPlan, mut handoff: Handoff, mut cgroup: Option<ExecCgroup>) -> i32 {
    let watch = handoff.watch.take();
    // Told with the kernel's refusals, under one budget: the guard's.
    if let (Some(w), Some(refusals)) = (&watch, cgroup.as_mut().and_then(|c| c.refusals.take())) {
        w.guard(refusals);
    }
    // Under `capexec exec` this process is the service's broker: it opens what
    // the grants need now, while it still can, and serves once the service runs.
    let broker = match spec.has_broker() {
        false => None,
        true => match capexec_broker::Broker::prepare(spec) {
            Ok(mut b) => {
                if let Some(tx) = handoff.net_seen.take() {
                    b.watch_network(tx);
                }
                // And the broker's.
                if let Some(pipe) = watch.as_ref().and_then(|w| w.broker_reports()) {
                    b.report_to(pipe);
                }
                if plan.refusals_to_broker {
                    b.judge_refusals(plan.seccomp.clone(), spec);
                }
                Some(b)
            }
            Err(e) => {
                eprintln!("capexec: {}: {e}", spec.name);
                return super::EXIT_SETUP;
            }
        },
    };
    let inherited = handoff.raw_fds();
    let spawned_watch = |pid| {
        if let Some(w) = &watch {
            w.spawned(pid);
        }
    };
    let on_setup = watch.is_some().then_some(&spawned_watch as &dyn Fn(i32));
    // The network summary's recorder gets its listener while the service
    // waits for it, before exec.
    let net_watch = std::cell::RefCell::new(handoff.net_watch.take());
    let watcher = |listener| {
        if let Some(watch) = net_watch.borrow_mut().take() {
            watch(listener);
        }
    };
    let learner = plan.watch.is_some().then_some(&watcher as &dyn Fn(std::os::fd::OwnedFd));
    // Without a pid namespace and without a cgroup (rootless), init ends
    // what the service leaves; should init itself be killed (by a command of
    // the service's, which shares its domain), what it adopted comes here,
    // and is ended here. A brokered capexec is confined by then: its filter
    // lets it kill any one process only under a Landlock layer of its own
    // that scopes signals (to the service's processes, see
    // `capexec_broker::filter::Foreground`).
    let broker_scoped = plan.broker_layer.is_some() && plan.landlock.scope_signals && capexec_sys::landlock_abi() >= 6;
    let adopts = !spec.namespaces.pid && cgroup.is_none() && (broker.is_none() || broker_scoped);
    if adopts {
        if let Err(e) = capexec_sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) {
            eprintln!("capexec: {}: prctl PR_SET_CHILD_SUBREAPER: {e}", spec.name);
            return super::EXIT_SETUP;
        }
    }
    let cgroup_procs: Vec<std::path::PathBuf> = cgroup.map(|c| c.service.join("cgroup.procs")).into_iter().collect();
    let spawned = capexec_sandbox::spawn_with(
        &plan,
        // The layer this process (the broker) shares with the service: entered
        // before the clone, so that the service's own domain nests in it and
        // the broker can still reach it (see `apply_broker_layer`).
        &capexec_sandbox::SpawnOptions {
            inherited: &inherited,
            cgroup_procs: &cgroup_procs,
            on_setup,
            learner,
            broker_layer: broker.is_some(),
            ..Default::default()
        },
    );
    // The service has its copies; capexec keeps none of systemd's sockets.
    drop(handoff.fds);
    match spawned {
        Ok(mut s) => {
            // Also where no main process is known: a forking service's, or
            // one that ended before the spawn returned (a ping refused at
            // once, under load). A brokered run's reader starts here, and
            // without it nothing was told.
            if let Some(w) = &watch {
                w.started(s.main_pid.or(s.started_pid).unwrap_or(s.pid));
            }
            if let (Some(w), Some(l)) = (&watch, s.refusals.take()) {
                w.refusals(l, plan.seccomp.clone());
            }
            let mut running = None;
            if let Some(b) = broker {
                let ch = capexec_broker::Channels {
                    listener: s.listener.take(),
                    explicit: s.broker_channel.take(),
                    dns: s.dns.take(),
                    appends: std::mem::take(&mut s.appends),
                };
                // Threads end with the service; the process ends right after
                // what the service appended is written.
                match b
                    .confine(plan.uid, plan.gid, Some(capexec_broker::filter::Foreground { init: s.pid as u32, ends_adopted: adopts }))
                    .and_then(|()| b.start(ch, s.pid).map_err(|source| capexec_broker::BrokerError::Io { op: "start its threads", source }))
                {
                    Ok(r) => running = Some(r),
                    Err(e) => {
                        eprintln!("capexec: {}: {e}", spec.name);
                        // Our own child, which must not run with an unconfined or absent broker.
                        let _ = kill(Pid::from_raw(s.pid), Signal::SIGKILL);
                    }
                }
            }
            // After the broker confined this process: every thread of it
            // under the broker's filter.
            let syslog = s
                .syslog
                .take()
                .and_then(|fd| super::syslog::Relay::start(fd).map_err(|e| eprintln!("capexec: {}: cannot read its /dev/log: {e}", spec.name)).ok());
            // A service that does not speak sd_notify is ready once it runs
            // (spawn returns after its exec), so capexec@.service can be
            // Type=notify for every declaration and systemd learns of setup
            // failures instead of calling them started.
            let relay = match (s.notify.take(), handoff.notify) {
                // Without systemd, what the service says is read and dropped.
                (Some(from), to) => Some(Relay::new(from, to, s.pid)),
                (None, Some(to)) => {
                    super::systemd::announce_ready(&to);
                    None
                }
                _ => None,
            };
            if let Some(Err(e)) = relay.as_ref().map(Relay::start) {
                eprintln!("capexec: {}: start relaying notifications to systemd: {e}", spec.name);
                // Our own child: systemd would wait for a READY=1 that cannot arrive.
                let _ = kill(Pid::from_raw(s.pid), Signal::SIGKILL);
            }
            // Once it runs (a service without readiness of its own runs once
            // spawned): start_post, by the task helper in its sandbox.
            let mut post_failed = false;
            let ready_at_exec = matches!(spec.service.kind, ServiceType::Simple | ServiceType::Exec);
            if let Some(chan) = s.tasks.as_ref().filter(|_| !plan.start_post.is_empty() && ready_at_exec) {
                if let Err(e) = capexec_sandbox::launch::run_tasks(std::os::fd::AsFd::as_fd(chan), capexec_sandbox::launch::Tasks::StartPost, None) {
                    eprintln!("capexec: {}: {e}; stopping the service", spec.name);
                    post_failed = true;
                    // Our own child: the stop signal goes on to the service.
                    let _ = kill(Pid::from_raw(s.pid), Signal::try_from(spec.service.stop_signal).unwrap_or(Signal::SIGTERM));
                }
            }
            // SIGHUP (systemd's ExecReload=/bin/kill -HUP $MAINPID on capexec's
            // own unit) runs the reload commands when the declaration has them;
            // the first stop (systemd's SIGTERM, a ^C, the declared stop
            // signal) runs the stop commands before it goes on to the service.
            let stopped = std::cell::Cell::new(false);
            let on_signal = |sig: libc::c_int| -> bool {
                use capexec_sandbox::launch::{run_tasks, TaskError, Tasks};
                let Some(chan) = s.tasks.as_ref().map(std::os::fd::AsFd::as_fd) else { return false };
                let is_stop = [libc::SIGTERM, libc::SIGINT, spec.service.stop_signal].contains(&sig);
                if sig == libc::SIGHUP && !plan.reload.is_empty() {
                    match run_tasks(chan, Tasks::Reload, None) {
                        Ok(()) => eprintln!("capexec: {}: reloaded", spec.name),
                        Err(e) => eprintln!("capexec: {}: reload failed: {e}", spec.name),
                    }
                    return true;
                }
                if is_stop && !plan.stop.is_empty() && !stopped.replace(true) {
                    // A helper gone with the service it stopped is no failure.
                    match run_tasks(chan, Tasks::Stop, Some(spec.service.stop_timeout)) {
                        Err(e @ TaskError::Failed(_)) => eprintln!("capexec: {}: {e}; sending the stop signal", spec.name),
                        Ok(()) | Err(TaskError::Gone) => {}
                    }
                }
                false
            };
            let on_signal: Option<&dyn Fn(libc::c_int) -> bool> = if s.tasks.is_some() { Some(&on_signal) } else { None };
            // As root, what the kernel refused the run is read while capexec waits.
            let status = match &watch {
                Some(w) => w.with_poll_fds(|fds| {
                    let drain = || {
                        w.drain();
                    };
                    let serve = (!fds.is_empty()).then_some(capexec_sandbox::launch::Serve { fds, ready: &drain });
                    capexec_sandbox::launch::wait_foreground_serving(&s, on_signal, serve)
                }),
                None => capexec_sandbox::launch::wait_foreground_with(&s, on_signal),
            };
            let status = if post_failed && status == 0 { 1 } else { status };
            if adopts {
                end_adopted();
            }
            if let Some(r) = relay {
                r.drain();
            }
            if let Some(r) = syslog {
                r.finish();
            }
            if let Some(r) = running {
                r.finish();
            }
            status
        }
        Err(e) if e.condition_unmet() => not_started(&spec.name, &e),
        Err(e) => {
            eprintln!("capexec: {}: {e}", spec.name);
            if let capexec_sandbox::LaunchError::Io { op: "clone into new namespaces", .. } = e {
                eprintln!("  help: the kernel refused new namespaces; `capexec doctor` shows whether user namespaces are available");
            }
            match e {
                capexec_sandbox::LaunchError::Child { step: capexec_sandbox::error::Step::Exec, .. } => super::EXIT_NOEXEC,
                _ => super::EXIT_SETUP,
            }
        }
    }
}

/// Ends what this process adopted as the service's subreaper (see
/// `launch_planned`): its children, through every thread's list of them
/// (an orphan goes to any thread of its subreaper).
fn end_adopted() {
    let lists: Vec<std::fs::File> = match std::fs::read_dir("/proc/self/task") {
        Ok(tasks) => tasks.flatten().filter_map(|t| std::fs::File::open(t.path().join("children")).ok()).collect(),
        Err(_) => return,
    };
    let borrowed: Vec<std::os::fd::BorrowedFd<'_>> = lists.iter().map(std::os::fd::AsFd::as_fd).collect();
    capexec_sys::process::end_children(&borrowed);
}

/// An exec.condition said not to start (systemd's ExecCondition=): no
/// failure, exit 0. Under systemd (which sets INVOCATION_ID for every
/// service) that exit is a run that ended well, which `Restart=always`
/// repeats: the unit's own ExecCondition= makes systemd skip the start.
fn not_started(unit: &str, why: &dyn std::fmt::Display) -> i32 {
    eprintln!("capexec: {unit}: not started: {why}");
    if std::env::var_os("INVOCATION_ID").is_some() {
        eprintln!(
            "  help: under systemd, give the unit the same check as ExecCondition=, so that systemd skips the start itself (Restart= then leaves it alone)"
        );
    }
    0
}
