//! Commands run around a running service: `exec.start_post` once it runs,
//! `exec.reload` on `capexec reload NAME`, `exec.stop` when it is stopped
//! (the stop signal follows, if it still runs). Each list runs in two stages:
//! its privileged commands on the host (a blocking task, output into the
//! service's log), then the others in the service's sandbox, by its task
//! helper through the launcher (`LauncherRequest::Task`). A reload of a
//! service that announces its reloads (it has said RELOADING=1) ends only
//! with the READY=1 that follows (systemd's reload protocol): a reload
//! started by a signal goes on after its command has returned.

use super::*;

/// Which list, and for whom the result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobKind {
    Post,
    Reload { group: u64 },
    Stop,
}

impl JobKind {
    fn tasks(self) -> capexec_sandbox::launch::Tasks {
        match self {
            JobKind::Post => capexec_sandbox::launch::Tasks::StartPost,
            JobKind::Reload { .. } => capexec_sandbox::launch::Tasks::Reload,
            JobKind::Stop => capexec_sandbox::launch::Tasks::Stop,
        }
    }

    fn list(self, spec: &ServiceSpec) -> &[capexec_decl::spec::Command] {
        match self {
            JobKind::Post => &spec.exec.start_post,
            JobKind::Reload { .. } => &spec.exec.reload,
            JobKind::Stop => &spec.exec.stop,
        }
    }

    /// How long each stage may take: a stop has the stop's time.
    fn limit(self, spec: &ServiceSpec) -> (Duration, &'static str) {
        match self {
            JobKind::Stop => (spec.service.stop_timeout, "service.stop_timeout"),
            _ => (spec.service.ready_timeout, "service.ready_timeout"),
        }
    }
}

pub(super) struct Job {
    unit: String,
    kind: JobKind,
    /// The run the commands belong to: a result for an older run is dropped.
    run_id: u64,
    stage: Stage,
    /// Where the reload the service announces is (`Announced::Unasked` for
    /// start_post and for services that do not announce theirs).
    announced: Announced,
}

/// What a job waits for; a result for another stage (a timer of a stage
/// already over) is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// The privileged commands, run on the host.
    Privileged,
    /// The others, run by the service's task helper.
    Sandboxed,
    /// The READY=1 that ends the reload the service announced.
    Announced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announced {
    /// Nothing to wait for.
    Unasked,
    /// The service announces its reloads: RELOADING=1 has not come yet.
    Asked,
    /// RELOADING=1 has come, READY=1 not yet.
    Running,
    /// READY=1 has come after RELOADING=1.
    Done,
}

/// Why a service's commands (start_post, reload, stop) did not end well,
/// or a reload was not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    #[error(transparent)]
    Privileged(#[from] crate::privileged::PrivilegedError),
    /// What the service's task helper reported (through the launcher, as text).
    #[error("{0}")]
    Sandboxed(String),
    #[error(transparent)]
    Daemon(#[from] crate::SupervisorError),
    /// The task helper did not answer in time (`key`: the declaration's limit).
    #[error("the commands did not end within {} ({key})", capexec_decl::spec::format_duration(*limit))]
    TimedOut { limit: std::time::Duration, key: &'static str },
    #[error("no READY=1 ended the reload within {} (service.ready_timeout)", capexec_decl::spec::format_duration(*limit))]
    NoReady { limit: std::time::Duration },
    #[error("the service stopped before its reload ended")]
    StoppedInReload,
    #[error("the service stopped meanwhile")]
    Stopped,
    #[error("the declaration has no exec.reload commands")]
    NoReload,
    #[error("it is {0}, not running")]
    NotRunning(&'static str),
}

/// A `capexec reload NAME...`: answered when every unit's commands ended.
pub(super) struct ReloadGroup {
    reply: oneshot::Sender<Reply>,
    left: usize,
    results: BTreeMap<String, Result<(), JobError>>,
}

impl Daemon {
    /// `capexec reload NAME...`: runs each running service's reload commands.
    pub(super) fn reload_units(&mut self, units: Vec<String>, reply: oneshot::Sender<Reply>) {
        let names = match self.resolve_all(&units, false) {
            Ok(n) => n,
            Err(r) => {
                let _ = reply.send(Reply::Now(r));
                return;
            }
        };
        let group = self.next_launch;
        self.next_launch += 1;
        let mut g = ReloadGroup { reply, left: 0, results: BTreeMap::new() };
        for n in &names {
            let s = &self.services[n];
            if s.spec.exec.reload.is_empty() {
                g.results.insert(n.clone(), Err(JobError::NoReload));
            } else if s.machine.state != State::Running || s.run.is_none() {
                g.results.insert(n.clone(), Err(JobError::NotRunning(state_name(s.machine.state))));
            } else {
                g.left += 1;
            }
        }
        let left = g.left;
        self.reloads.insert(group, g);
        for n in names {
            if self.services[&n].machine.state == State::Running && !self.services[&n].spec.exec.reload.is_empty() && self.services[&n].run.is_some() {
                self.start_job(&n, JobKind::Reload { group });
            }
        }
        if left == 0 {
            self.finish_group(group);
        }
    }

    /// The service runs: its start_post commands, if it has any.
    pub(super) fn started(&mut self, name: &str) {
        if !self.services[name].spec.exec.start_post.is_empty() {
            self.start_job(name, JobKind::Post);
        }
    }

    /// The running service is being stopped: its stop commands, the stop
    /// signal when they end (see [`Self::job_step`]); without commands,
    /// the signal now.
    pub(super) fn stopping(&mut self, name: &str) {
        let s = &self.services[name];
        if s.spec.exec.stop.is_empty() || s.run.is_none() {
            self.send_stop_signal(name);
        } else {
            self.start_job(name, JobKind::Stop);
        }
    }

    fn start_job(&mut self, name: &str, kind: JobKind) {
        let s = self.services.get_mut(name).expect("a known service");
        let id = self.next_launch;
        self.next_launch += 1;
        let what = kind.tasks().key();
        s.log.note(&format!("running {what}"));
        let list = kind.list(&s.spec).to_vec();
        let announced = if matches!(kind, JobKind::Reload { .. }) && s.announces_reloads { Announced::Asked } else { Announced::Unasked };
        self.jobs.insert(id, Job { unit: name.to_owned(), kind, run_id: s.run_id, stage: Stage::Privileged, announced });
        if !list.iter().any(|c| c.privileged) {
            return self.job_step(id, Stage::Privileged, Ok(()));
        }
        let (log, tx) = (s.log.clone(), self.tx.clone());
        let env: Vec<(String, String)> = s.spec.exec.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let (limit, umask) = (kind.limit(&s.spec).0, s.spec.exec.umask);
        let pipes = pipe().and_then(|o| Ok((o, pipe()?)));
        let ((out_r, out_w), (err_r, err_w)) = match pipes {
            Ok(p) => p,
            Err(e) => return self.job_step(id, Stage::Privileged, Err(e.into())),
        };
        tokio::spawn(logs::read_pipe(log.clone(), out_r, Stream::Stdout));
        tokio::spawn(logs::read_pipe(log.clone(), err_r, Stream::Stderr));
        tokio::task::spawn_blocking(move || {
            let result = crate::privileged::run(what, &list, &env, umask, limit, Some(&[out_w, err_w]), &|m| log.note(m));
            let _ = tx.send(Ev::JobStep { job: id, stage: Stage::Privileged, result: result.map_err(JobError::from) });
        });
    }

    /// Stage `stage` of job `id` ended with `result`: on to the next stage,
    /// or the job's end.
    pub(super) fn job_step(&mut self, id: u64, stage: Stage, result: Result<(), JobError>) {
        let Some(job) = self.jobs.get_mut(&id).filter(|j| j.stage == stage) else { return };
        let current = self.services.get(&job.unit).filter(|s| s.run_id == job.run_id && s.run.is_some());
        let sandboxed = current.map_or(0, |s| job.kind.list(&s.spec).iter().filter(|c| !c.privileged).count());
        if result.is_ok() && stage == Stage::Privileged && sandboxed > 0 {
            if let Some(s) = current {
                let init_pid = s.run.as_ref().expect("checked").init_pid;
                job.stage = Stage::Sandboxed;
                let req = launcher::LauncherRequest::Task { id, init_pid, which: job.kind.tasks() };
                let data = serde_json::to_vec(&req).expect("requests serialise");
                let _ = self.launch_tx.send((data, Vec::new()));
                // The helper is the service's to stop (SIGSTOP, same uid and
                // domain): a job never waits longer than this for it.
                let (tx, (limit, key)) = (self.tx.clone(), job.kind.limit(&s.spec));
                tokio::spawn(async move {
                    tokio::time::sleep(limit).await;
                    let _ = tx.send(Ev::JobStep { job: id, stage: Stage::Sandboxed, result: Err(JobError::TimedOut { limit, key }) });
                });
                return;
            }
        }
        if result.is_ok() && stage != Stage::Announced && matches!(job.announced, Announced::Asked | Announced::Running) {
            if let Some(s) = current {
                job.stage = Stage::Announced;
                s.log.note("exec.reload done; waiting for the service's READY=1 that ends its reload");
                let (tx, limit) = (self.tx.clone(), s.spec.service.ready_timeout);
                tokio::spawn(async move {
                    tokio::time::sleep(limit).await;
                    let _ = tx.send(Ev::JobStep { job: id, stage: Stage::Announced, result: Err(JobError::NoReady { limit }) });
                });
                return;
            }
        }
        let job = self.jobs.remove(&id).expect("found above");
        let ended = current.is_none();
        let result = if ended && result.is_ok() { Err(JobError::Stopped) } else { result };
        if let Some(s) = self.services.get(&job.unit) {
            match &result {
                // What stop commands are for.
                _ if ended && job.kind == JobKind::Stop => s.log.note("the service ended during exec.stop"),
                Ok(()) => s.log.note(&format!("{} done", job.kind.tasks().key())),
                Err(e) => s.log.note(&format!("failed: {e}")),
            }
        }
        match job.kind {
            JobKind::Post => {
                if let Err(e) = result {
                    if let Some(s) = self.services.get_mut(&job.unit).filter(|s| s.run_id == job.run_id) {
                        s.error = Some(e.to_string());
                        self.queue.push_back((job.unit.clone(), Event::PostFailed));
                        self.process();
                    }
                }
            }
            JobKind::Stop if !ended => {
                // Whatever the commands did, a service still running gets its
                // stop signal, with a stop's time of its own (as systemd gives
                // each stop phase TimeoutStopSec).
                if let Some(s) = self.services.get(&job.unit).filter(|s| s.machine.state == State::Stopping) {
                    let limit = s.spec.service.stop_timeout;
                    self.send_stop_signal(&job.unit);
                    self.arm(&job.unit, crate::state::Timer::Stop, limit);
                }
            }
            JobKind::Stop => {}
            JobKind::Reload { group } => {
                if let Some(g) = self.reloads.get_mut(&group) {
                    g.results.insert(job.unit.clone(), result);
                    g.left -= 1;
                    if g.left == 0 {
                        self.finish_group(group);
                    }
                }
            }
        }
    }

    /// RELOADING=1 (`reloading`) or READY=1 from the current run of `unit`:
    /// its announced reloads move on; one that ends, ends its job.
    pub(super) fn reload_notice(&mut self, unit: &str, reloading: bool) {
        let mut ended = Vec::new();
        for (id, job) in self.jobs.iter_mut().filter(|(_, j)| j.unit == unit) {
            job.announced = match (job.announced, reloading) {
                (Announced::Asked, true) => Announced::Running,
                (Announced::Running, false) => Announced::Done,
                (a, _) => a,
            };
            if job.announced == Announced::Done && job.stage == Stage::Announced {
                ended.push(*id);
            }
        }
        for id in ended {
            self.job_step(id, Stage::Announced, Ok(()));
        }
    }

    /// `unit` has stopped: a reload waiting for its READY=1 ends now.
    pub(super) fn end_announced(&mut self, unit: &str) {
        let waiting: Vec<u64> = self.jobs.iter().filter(|(_, j)| j.unit == unit && j.stage == Stage::Announced).map(|(id, _)| *id).collect();
        for id in waiting {
            self.job_step(id, Stage::Announced, Err(JobError::StoppedInReload));
        }
    }

    fn finish_group(&mut self, group: u64) {
        let Some(g) = self.reloads.remove(&group) else { return };
        let failed: Vec<String> = g.results.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
        let result = json!(g
            .results
            .iter()
            .map(|(n, r)| (n.clone(), json!({"ok": r.is_ok(), "error": r.as_ref().err().map(ToString::to_string)})))
            .collect::<serde_json::Map<_, _>>());
        let resp = if failed.is_empty() {
            Response::ok(result)
        } else {
            let mut r = Response::err(format!("reload failed: {}", failed.join("; ")), Some("see `capexec logs NAME`".into()));
            r.result = result;
            r
        };
        let _ = g.reply.send(Reply::Now(resp));
    }
}
