//! Starting a service: what must hold before (the network guard, its
//! cgroups, its log pipes and notify socket), the request to the launcher,
//! and what the launcher reports back.

use super::*;

impl Daemon {
    pub(super) fn launch(&mut self, name: &str) {
        let Some(s) = self.services.get_mut(name) else { return };
        if s.spec.exec.condition.iter().chain(&s.spec.exec.start_pre).any(|c| c.privileged) {
            let exec = s.spec.exec.clone();
            // On the host, before the sandbox exists; the start goes on when
            // they have ended (`pre_done`).
            let token = self.next_launch;
            self.next_launch += 1;
            s.pre_running = Some(token);
            let (log, tx, unit) = (s.log.clone(), self.tx.clone(), name.to_owned());
            let env: Vec<(String, String)> = s.spec.exec.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let limit = s.spec.service.ready_timeout;
            let pipes = pipe().and_then(|o| Ok((o, pipe()?)));
            let ((out_r, out_w), (err_r, err_w)) = match pipes {
                Ok(p) => p,
                Err(e) => return self.spawn_failed(name, e.to_string()),
            };
            tokio::spawn(logs::read_pipe(log.clone(), out_r, Stream::Stdout));
            tokio::spawn(logs::read_pipe(log.clone(), err_r, Stream::Stderr));
            tokio::task::spawn_blocking(move || {
                let result = crate::privileged::run_before_start(&exec, &env, limit, Some(&[out_w, err_w]), &|m| log.note(m));
                let _ = tx.send(Ev::PreDone { unit, token, result });
            });
            return;
        }
        if let Err(e) = self.prepare_launch(name) {
            self.spawn_failed(name, e.to_string());
        }
    }

    /// The privileged start_pre commands of start `token` ended: the start
    /// goes on, unless it was stopped (or started anew) meanwhile.
    pub(super) fn pre_done(&mut self, name: &str, token: u64, result: Result<(), crate::privileged::PrivilegedError>) {
        let Some(s) = self.services.get_mut(name) else { return };
        if s.pre_running != Some(token) {
            return;
        }
        s.pre_running = None;
        if s.machine.state != State::Starting {
            self.check_gone(name);
            return;
        }
        if let Err(e) = result.as_ref() {
            if e.condition_unmet() {
                return self.condition_unmet(name, e.to_string());
            }
        }
        match result.map_err(|e| e.to_string()).and_then(|()| self.prepare_launch(name).map_err(|e| e.to_string())) {
            Ok(()) => {}
            Err(e) => self.spawn_failed(name, e),
        }
    }

    /// An `exec.condition` command said the service is not to start now
    /// (`why`): the start ends, as no failure, and is not retried.
    pub(super) fn condition_unmet(&mut self, name: &str, why: String) {
        let Some(s) = self.services.get_mut(name) else { return };
        s.launching = None;
        s.log.note(&format!("not started: {why}"));
        s.last_exit = Some((None, Outcome::ConditionUnmet, Instant::now()));
        if s.machine.state == State::Starting {
            self.queue.push_back((name.to_owned(), Event::ConditionUnmet));
        } else {
            self.check_gone(name);
        }
    }

    /// The run could not start, here or in the launcher: record why, then let
    /// the machine decide (a stop that came meanwhile only needs the cleanup).
    pub(super) fn spawn_failed(&mut self, name: &str, error: String) {
        let Some(s) = self.services.get_mut(name) else { return };
        s.launching = None;
        s.log.note(&format!("cannot start: {error}"));
        s.error = Some(error);
        s.last_exit = Some((None, Outcome::SpawnFailed, Instant::now()));
        if s.machine.state == State::Starting {
            self.queue.push_back((name.to_owned(), Event::SpawnFailed));
        } else {
            self.check_gone(name);
        }
    }

    /// What makes a launch impossible with this daemon, whatever the run:
    /// refused at `capexec start` rather than retried by the restart policy.
    pub(super) fn launch_blocker(&self, s: &Service) -> Result<(), SupervisorError> {
        let limits = &s.spec.limits;
        let has_limits = limits.memory_max.is_some() || limits.tasks_max.is_some() || limits.cpu_weight.is_some();
        let cgroups = self.cgroups.is_some() && self.cfg.cgroup_parent.is_some();
        if has_limits && !cgroups {
            return Err(SupervisorError::LimitsNeedCgroup);
        }
        if self.rootless || !cgroups {
            capexec_sandbox::netguard::require_guard(&s.spec)?;
        }
        if !cgroups && !s.spec.namespaces.pid {
            return Err(SupervisorError::NeedsPidNamespace);
        }
        Ok(())
    }

    pub(super) fn prepare_launch(&mut self, name: &str) -> Result<(), SupervisorError> {
        self.launch_blocker(&self.services[name])?;
        let s = self.services.get_mut(name).expect("launching a known service");
        s.error = None;
        s.status_text = None;
        (s.announces_reloads, s.reloading) = (false, false);
        s.early_notify.clear();
        s.run_id += 1;
        // A cgroup per service: limits, accounting and killing every process.
        let limits = &s.spec.limits;
        s.cgroup = match (&self.cgroups, &self.cfg.cgroup_parent) {
            (Some(h), Some(parent)) => {
                let c = h.create(parent, name, limits)?;
                if !c.is_empty() {
                    // Left over from a daemon that died: not ours to keep.
                    let _ = c.kill_all();
                }
                Some(c)
            }
            _ => None,
        };
        // The network guard, where the service has host sockets (see netguard.rs).
        let guard = capexec_sandbox::netguard::policy(&s.spec)?;
        if let Some(old) = s.guard_reader.take() {
            old.abort();
        }
        let supervisor_cgroup = match (guard, &s.cgroup) {
            (Some(policy), Some(c)) if c.v2.is_some() => {
                let (dir, refusals) = c.guard(&policy)?;
                let reader = tokio::spawn(read_guard(refusals, name.to_owned(), s.run_id, self.tx.clone()));
                s.guard_reader = Some(reader.abort_handle());
                Some(dir)
            }
            // No guard possible: refused where that leaves a declared limit open.
            (Some(_), _) => {
                capexec_sandbox::netguard::require_guard(&s.spec)?;
                None
            }
            (None, _) => None,
        };
        use capexec_decl::spec::ServiceType;
        let notify_dir = if matches!(s.spec.service.kind, ServiceType::Notify | ServiceType::Forking) || s.spec.service.watchdog.is_some() {
            let dir = self.cfg.paths.notify_dir(name);
            let user = &s.spec.exec.user;
            let task = notify::listen(&dir, (user.uid, user.gid), name, s.run_id, self.tx.clone(), |unit, run, msg, pid| Ev::Notify { unit, run, msg, pid })?;
            s.notify = Some(task);
            Some(dir)
        } else {
            None
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = std::fs::File::open("/dev/null").map_err(SupervisorError::path("open", "/dev/null"))?;
        tokio::spawn(logs::read_pipe(s.log.clone(), out_r, Stream::Stdout));
        tokio::spawn(logs::read_pipe(s.log.clone(), err_r, Stream::Stderr));
        // Non-blocking at both ends: the broker drops a refusal the daemon
        // has no room for rather than wait for it.
        let (rep_r, rep_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(|e| SupervisorError::Sys { op: "create the refusal pipe", source: e.into() })?;
        tokio::spawn(read_reports(rep_r, name.to_owned(), s.run_id, self.tx.clone()));
        let id = self.next_launch;
        self.next_launch += 1;
        let req = LaunchRequest {
            id,
            spec: s.spec.clone(),
            rootless: self.rootless,
            cgroup_procs: s.cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default(),
            cgroup_kill: s.cgroup.as_ref().and_then(|c| c.v2.clone()),
            supervisor_cgroup,
            notify_dir,
        };
        let data = serde_json::to_vec(&launcher::LauncherRequest::Launch(Box::new(req)))
            .map_err(|source| SupervisorError::Encode { what: "the launch request", source })?;
        if data.len() > fdpass::MAX_MESSAGE {
            return Err(SupervisorError::TooLarge { size: data.len(), limit: fdpass::MAX_MESSAGE });
        }
        s.launching = Some(id);
        self.launches.insert(id, name.to_owned());
        let _ = self.launch_tx.send((data, vec![OwnedFd::from(null), out_w, err_w, rep_w]));
        Ok(())
    }

    pub(super) fn launcher_event(&mut self, ev: LauncherEvent, fds: Vec<OwnedFd>) {
        match ev {
            LauncherEvent::Launched { id, init_pid, main_pid, broker_pid, syslog, refusals } => {
                let Some(name) = self.launches.remove(&id) else {
                    return;
                };
                let Some(s) = self.services.get_mut(&name) else {
                    return;
                };
                s.launching = None;
                let mut fds = fds.into_iter();
                let (init_fd, main_fd) = (fds.next(), main_pid.and_then(|_| fds.next()));
                // Taken only where the launcher sent one: the listener may follow.
                if let Some(sock) = if syslog { fds.next() } else { None } {
                    let (end, ended) = tokio::sync::oneshot::channel();
                    tokio::spawn(logs::read_syslog(s.log.clone(), sock, ended));
                    // Fired when the run has settled; dropped with the service.
                    if let Some(old) = s.syslog_end.replace(end) {
                        let _ = old.send(());
                    }
                }
                if let (Some(listener), Some(judge)) = (fds.next(), refusals) {
                    let r = crate::refusals::Refusals::new(listener, capexec_sandbox::seccomp::unpack(&judge), s.spec.clone());
                    tokio::spawn(answer_refusals(r, name.clone(), s.run_id, self.tx.clone()));
                }
                s.run = Some(Run { init_pid, init_fd, main_pid, main_fd, broker_pid, started: Instant::now(), announced: Default::default() });
                s.log.note(&format!("started (main pid {})", main_pid.map_or("-".into(), |p| p.to_string())));
                if !s.spec.service.ready_address.is_empty() {
                    let (addrs, tx, unit, run) = (s.spec.service.ready_address.clone(), self.tx.clone(), name.clone(), s.run_id);
                    let probe = tokio::spawn(async move {
                        crate::readiness::until_accepting(addrs).await;
                        let _ = tx.send(Ev::Accepting { unit, run });
                    });
                    if let Some(old) = s.ready_probe.replace(probe.abort_handle()) {
                        old.abort();
                    }
                }
                let (run, early) = (s.run_id, std::mem::take(&mut s.early_notify));
                // Running already: a notify service's READY=1 can overtake the
                // launcher's report.
                if matches!(s.machine.state, State::Starting | State::Running) {
                    self.queue.push_back((name.clone(), Event::Spawned));
                    for (msg, pid) in early {
                        self.notify(&name, run, &msg, pid);
                    }
                    self.launched_audit();
                } else {
                    // A stop arrived while the launcher was at work.
                    self.act(&name, Action::KillAll);
                }
            }
            LauncherEvent::TaskDone { id, result } => self.job_step(id, commands::Stage::Sandboxed, result.map_err(commands::JobError::Sandboxed)),
            LauncherEvent::Failed { id, error, unmet } => {
                if let Some(name) = self.launches.remove(&id) {
                    match unmet {
                        true => self.condition_unmet(&name, error),
                        false => self.spawn_failed(&name, error),
                    }
                }
            }
            LauncherEvent::Exited { init_pid, code } => {
                let Some(name) = self.services.iter().find(|(_, s)| s.run.as_ref().is_some_and(|r| r.init_pid == init_pid)).map(|(n, _)| n.clone()) else {
                    return;
                };
                let s = self.services.get_mut(&name).expect("found above");
                s.run = None;
                // The outcome the machine had (a stop it asked for, a timeout) wins
                // over the bare status; a restart queued by `process` clears it.
                let before = s.machine.outcome;
                s.log.note(&format!("main process ended with status {code}"));
                // 0, or a status the declaration counts as clean (SuccessExitStatus=).
                let success = code == 0 || s.spec.service.success_exit_status.contains(&code);
                self.queue.push_back((name.clone(), Event::MainExited { success }));
                self.process();
                if let Some(s) = self.services.get_mut(&name) {
                    let by_status = if success { Outcome::Success } else { Outcome::ExitFailure };
                    s.last_exit = Some((Some(code), s.machine.outcome.or(before).unwrap_or(by_status), Instant::now()));
                }
                self.check_gone(&name);
            }
        }
    }
}

/// The broker's refusals (`capexec_broker::Report` lines) into run `run`'s
/// trail, until the broker (or, for a service without one, the launcher's
/// copy) closes the pipe.
async fn read_reports(fd: OwnedFd, unit: String, run: u64, tx: mpsc::UnboundedSender<Ev>) {
    let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else { return };
    let mut partial = Vec::new();
    while rx.readable().await.is_ok() {
        let read = crate::logs::with_read_buffer(|buf| match rx.try_read(buf) {
            Ok(0) => Err(()),
            Ok(n) => {
                partial.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(_) => Err(()),
        });
        match read {
            Err(()) => break,
            Ok(false) => continue,
            Ok(true) => {}
        }
        for r in capexec_broker::Report::take_lines(&mut partial) {
            let denial = crate::trail::broker_denial(r);
            if tx.send(Ev::Refused { unit: unit.clone(), run, denial }).is_err() {
                return;
            }
        }
    }
}

/// Rootless, the program's refused calls (`crate::refusals`), answered and
/// told to run `run`'s trail until no process of it can make one.
async fn answer_refusals(r: crate::refusals::Refusals, unit: String, run: u64, tx: mpsc::UnboundedSender<Ev>) {
    use crate::refusals::Left;
    let tell = |denials: Vec<crate::trail::Denial>| denials.into_iter().all(|denial| tx.send(Ev::Refused { unit: unit.clone(), run, denial }).is_ok());
    let Ok(mut r) = super::watch::watch(r, tokio::io::Interest::READABLE) else { return };
    loop {
        let due = r.get_ref().next_due();
        let until_due = async move {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = r.readable_mut() => {
                let Ok(mut ready) = ready else { break };
                let (denials, left) = ready.get_inner_mut().answer_waiting(std::time::Instant::now());
                // The kernel says POLLHUP once the filter has no users left.
                let ended = ready.ready().is_read_closed();
                if left == Left::Nothing {
                    ready.clear_ready();
                }
                if !tell(denials) || (ended && left == Left::Nothing) {
                    break;
                }
            }
            () = until_due => {
                if !tell(r.get_mut().due(std::time::Instant::now())) {
                    return;
                }
            }
        }
    }
    tell(r.get_mut().rest());
}

/// The network guard's refusals into run `run`'s trail, for as long as the
/// run lasts (`settled` and the next launch end this task).
async fn read_guard(refusals: capexec_sandbox::netguard::Refusals, unit: String, run: u64, tx: mpsc::UnboundedSender<Ev>) {
    let Ok(mut ring) = super::watch::watch(refusals, tokio::io::Interest::READABLE) else { return };
    loop {
        let Ok(mut ready) = ring.readable_mut().await else { return };
        for r in ready.get_inner_mut().drain() {
            if tx.send(Ev::Refused { unit: unit.clone(), run, denial: crate::trail::guard_denial(&r) }).is_err() {
                return;
            }
        }
        ready.clear_ready();
    }
}
