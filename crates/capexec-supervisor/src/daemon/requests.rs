//! Control requests (`capexec start`, `stop`, `status`, ...) answered from
//! the daemon's state, and a service's status as `capexec status` shows it.

use super::*;

impl Daemon {
    pub(super) fn control(&mut self, req: Request) -> Reply {
        match req {
            Request::Ping {} => Reply::Now(Response::ok(
                json!({"pid": std::process::id(), "mode": self.cfg.paths.mode, "socket": self.cfg.paths.socket(), "logs": self.log_target.describe()}),
            )),
            Request::Start { units } => self.start_like(units, false),
            Request::Restart { units } => self.start_like(units, true),
            Request::Stop { units } => {
                let names = match self.resolve_all(&units, false) {
                    Ok(n) => n,
                    Err(r) => return Reply::Now(r),
                };
                for n in &names {
                    self.services.get_mut(n).expect("resolved").pending = Pending::None;
                    self.queue.push_back((n.clone(), Event::StopRequested));
                }
                self.process();
                Reply::Wait(WaitFor { units: names, until: SETTLED, expect_running: false })
            }
            Request::Reload { .. } => Reply::Now(Response::ok(self.reload())),
            Request::Status { units } => {
                let names = if units.is_empty() {
                    self.services.keys().cloned().collect()
                } else {
                    match self.resolve_all(&units, false) {
                        Ok(n) => n,
                        Err(r) => return Reply::Now(r),
                    }
                };
                let v: Vec<ServiceStatus> = names.iter().map(|n| self.status_of(&self.services[n])).collect();
                Reply::Now(Response::ok(json!(v)))
            }
            Request::List {} => {
                let mut v: Vec<serde_json::Value> = self
                    .services
                    .values()
                    .map(|s| {
                        json!({
                            "name": s.name, "state": state_name(s.machine.state), "main_pid": main_pid(s),
                            "uptime_secs": s.run.as_ref().map(|r| r.started.elapsed().as_secs()), "restarts": s.machine.restarts,
                            "enabled": self.is_enabled(s), "description": s.spec.description,
                        })
                    })
                    .collect();
                for (n, e) in &self.broken {
                    if !self.services.contains_key(n) {
                        v.push(json!({"name": n, "state": "bad-declaration", "error": e, "enabled": false, "restarts": 0, "description": ""}));
                    }
                }
                Reply::Now(Response::ok(json!(v)))
            }
            Request::Logs { unit, lines, follow } => {
                let names = match self.resolve_all(std::slice::from_ref(&unit), false) {
                    Ok(n) => n,
                    Err(r) => return Reply::Now(r),
                };
                let s = &self.services[&names[0]];
                let tail = match s.log.file() {
                    Some(f) => match logs::read_tail(&f, lines.min(100_000)) {
                        Ok(t) => t,
                        Err(e) => return Reply::Now(Response::err(format!("read {}: {e}", f.display()), None)),
                    },
                    None => {
                        let mut t = s.log.tail();
                        let skip = t.len().saturating_sub(lines);
                        t.drain(..skip);
                        t
                    }
                };
                let first = Response::ok(json!({"unit": s.name, "file": s.log.file(), "lines": tail}));
                if follow {
                    Reply::Follow(first, s.log.subscribe())
                } else {
                    Reply::Now(first)
                }
            }
            Request::Enable { units, now } => self.set_enabled(units, true, now),
            Request::Disable { units, now } => self.set_enabled(units, false, now),
        }
    }

    pub(super) fn start_like(&mut self, units: Vec<String>, restart: bool) -> Reply {
        let names = match self.resolve_all(&units, true) {
            Ok(n) => n,
            Err(r) => return Reply::Now(r),
        };
        if self.shutting_down {
            return Reply::Now(Response::err("the daemon is shutting down", None));
        }
        for n in &names {
            if let Err(e) = self.launch_blocker(&self.services[n]) {
                return Reply::Now(Response::err(format!("{n} cannot be started here: {e}"), None));
            }
        }
        for n in &names {
            let s = self.services.get_mut(n).expect("resolved");
            match s.machine.state {
                State::Stopping => s.pending = Pending::Restart,
                State::Starting | State::Running if restart => {
                    s.pending = Pending::Restart;
                    self.queue.push_back((n.clone(), Event::StopRequested));
                }
                State::WaitingToRestart if restart => {
                    s.pending = Pending::Restart;
                    self.queue.push_back((n.clone(), Event::StopRequested));
                }
                _ => self.queue.push_back((n.clone(), Event::StartRequested)),
            }
        }
        self.process();
        Reply::Wait(WaitFor { units: names, until: STARTED, expect_running: true })
    }

    pub(super) fn set_enabled(&mut self, units: Vec<String>, on: bool, now: bool) -> Reply {
        let names = match self.resolve_all(&units, true) {
            Ok(n) => n,
            Err(r) => return Reply::Now(r),
        };
        for n in &names {
            if let Origin::Path(p) = &self.services[n].origin {
                return Reply::Now(Response::err(
                    format!("{n} was started from {}, outside the unit search path: the daemon would not find it when it starts", p.display()),
                    Some(format!("copy it into {} first", self.cfg.unit_path.first().map(|p| p.display().to_string()).unwrap_or_default())),
                ));
            }
            self.enabled.insert(n.clone(), on);
        }
        let file = self.cfg.paths.enabled_file();
        let tmp = file.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(&self.enabled).expect("a map of bools serialises");
        if let Err(e) = std::fs::write(&tmp, data).and_then(|_| std::fs::rename(&tmp, &file)) {
            return Reply::Now(Response::err(format!("write {}: {e}", file.display()), None));
        }
        if now {
            let units: Vec<String> = names.clone();
            return if on { self.start_like(units, false) } else { self.control(Request::Stop { units }) };
        }
        Reply::Now(Response::ok(json!(names.iter().map(|n| json!({"name": n, "enabled": on})).collect::<Vec<_>>())))
    }

    pub(super) fn is_enabled(&self, s: &Service) -> bool {
        self.enabled.get(&s.name).copied().unwrap_or(s.spec.service.autostart)
    }

    pub(super) fn status_of(&self, s: &Service) -> ServiceStatus {
        let pids = s.cgroup.as_ref().and_then(|c| c.pids().ok());
        ServiceStatus {
            name: s.name.clone(),
            description: s.spec.description.clone(),
            state: state_name(s.machine.state).into(),
            result: s.machine.outcome.map(|o| outcome_name(o).into()),
            sources: s.spec.sources.iter().map(|p| p.display().to_string()).collect(),
            enabled: self.is_enabled(s),
            main_pid: main_pid(s),
            init_pid: s.run.as_ref().map(|r| r.init_pid),
            uptime_secs: s.run.as_ref().map(|r| r.started.elapsed().as_secs()),
            restarts: s.machine.restarts,
            last_exit: s.last_exit.map(|(code, o, at)| LastExit { code, outcome: outcome_name(o).into(), ago_secs: at.elapsed().as_secs() }),
            memory_bytes: s.cgroup.as_ref().and_then(|c| c.memory_current()),
            tasks: pids.map(|p| p.len() as u64),
            status_text: s.status_text.clone(),
            reloading: s.reloading && s.run.is_some(),
            log_lines_dropped: s.log.dropped.load(std::sync::atomic::Ordering::Relaxed),
            log_tail: s.log.tail(),
            cgroup: s.cgroup.as_ref().and_then(|c| c.v2.clone().or_else(|| c.v1.values().next().cloned())).map(|p| p.display().to_string()),
            error: s.error.clone(),
            warnings: s.spec.warnings.clone(),
            denials: crate::protocol::DenialSummary {
                total: s.trail.total,
                not_shown: s.trail.not_shown,
                recent: s
                    .trail
                    .recent
                    .iter()
                    .map(|d| crate::protocol::DenialEntry { mechanism: d.mechanism.into(), what: d.what.clone(), fix: d.fix.clone(), count: d.count })
                    .collect(),
            },
        }
    }
}

/// The service's main process as `status` and `list` show it: the one the
/// launch named, else a forking service's daemon by its pid file (init
/// stands for it, and signals reach it through init), where the file holds
/// a host pid (the host's pid namespace) of a process of this run. The
/// file is the service's to write: believed only for a descendant of its
/// init, and read without following links (`read_pid_file`).
fn main_pid(s: &Service) -> Option<i32> {
    let run = s.run.as_ref()?;
    if run.main_pid.is_some() || s.spec.namespaces.pid {
        return run.main_pid;
    }
    let pid = capexec_sandbox::resources::read_pid_file(s.spec.service.pid_file.as_ref()?)?;
    crate::trail::descends_from(pid, run.init_pid).then_some(pid)
}
