//! Which services the daemon knows: declarations loaded by name or path,
//! the unit directories scanned, and `capexec reload`.

use super::*;

impl Daemon {
    pub(super) fn load(&self, arg: &str) -> Result<ServiceSpec, capexec_decl::DeclErrors> {
        capexec_decl::load_unit(arg, &self.cfg.unit_path, &self.ctx)
    }

    /// A unit argument → a known service name. A path (anything with a `/`)
    /// is loaded from there; a name not yet known is looked up in the search
    /// path (when `load` is set).
    pub(super) fn resolve_all(&mut self, units: &[String], load: bool) -> Result<Vec<String>, Response> {
        if units.is_empty() {
            return Err(Response::err("no unit given", Some("name one or more units, e.g. `nginx` or `./nginx.svc`".into())));
        }
        let mut out = Vec::new();
        for u in units {
            let by_path = u.contains('/');
            let name = if by_path {
                capexec_decl::source::unit_name(Path::new(u)).map_err(|e| Response::err(e.to_string(), None))?
            } else {
                u.strip_suffix(".svc").unwrap_or(u).to_owned()
            };
            let known = self.services.get(&name).map(|s| s.origin.clone());
            match known {
                Some(origin) => {
                    if by_path {
                        let p = std::fs::canonicalize(u).unwrap_or_else(|_| PathBuf::from(u));
                        let same = match &origin {
                            Origin::Path(q) => *q == p,
                            Origin::Search => self.services[&name].spec.sources.first().is_some_and(|s| std::fs::canonicalize(s).ok().as_ref() == Some(&p)),
                        };
                        if !same {
                            return Err(Response::err(
                                format!(
                                    "a unit named {name} is already loaded from {}",
                                    self.services[&name].spec.sources.first().map(|s| s.display().to_string()).unwrap_or_default()
                                ),
                                Some("unit names are unique in a daemon: rename the file, or stop and use the loaded one".into()),
                            ));
                        }
                    }
                }
                None if !load => {
                    return Err(Response::err(
                        format!("unknown unit {u}: the daemon has not loaded it"),
                        Some("`capexec list` shows the loaded units; `capexec start` loads one by name or path".into()),
                    ));
                }
                None => {
                    let spec = self.load(u).map_err(|e| Response::err(e.to_string(), Some("fix the declaration; `capexec check` shows every error".into())))?;
                    let origin = if by_path { Origin::Path(std::fs::canonicalize(u).unwrap_or_else(|_| PathBuf::from(u))) } else { Origin::Search };
                    self.add(spec, origin);
                }
            }
            out.push(name);
        }
        Ok(out)
    }

    pub(super) fn add(&mut self, spec: ServiceSpec, origin: Origin) {
        let name = spec.name.clone();
        for w in spec.warnings.iter().chain(&capexec_sandbox::netguard::ping_warning(&spec)) {
            tracing::warn!(unit = %name, "{w}");
        }
        self.broken.remove(&name);
        let log = LogSink::new(&name, self.log_target.clone());
        self.services.insert(
            name.clone(),
            Service {
                name,
                origin,
                machine: Machine::new(spec.service.clone()),
                spec,
                launching: None,
                run: None,
                run_id: 0,
                timer_gen: [0; 4],
                cgroup: None,
                log,
                notify: None,
                status_text: None,
                announces_reloads: false,
                reloading: false,
                early_notify: Vec::new(),
                trail: Default::default(),
                guard_reader: None,
                syslog_end: None,
                ready_probe: None,
                last_exit: None,
                error: None,
                pending: Pending::None,
                gone_polls: 0,
                pre_running: None,
            },
        );
    }

    /// Every `*.svc` in the search path: name → path (the first directory wins).
    pub(super) fn scan(&self) -> BTreeMap<String, PathBuf> {
        let mut found = BTreeMap::new();
        for dir in &self.cfg.unit_path {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<PathBuf> =
                rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "svc") && p.is_file()).collect();
            entries.sort();
            for p in entries {
                if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                    found.entry(stem.to_owned()).or_insert(p);
                }
            }
        }
        found
    }

    /// Re-reads every declaration (documented in docs/state-machine.md):
    /// unchanged services are left alone; changed ones are restarted if they
    /// run (or just updated if not); removed ones are stopped and forgotten;
    /// new ones are added and started if enabled. A declaration that no longer
    /// validates leaves the running service untouched and reports the error.
    pub(super) fn reload(&mut self) -> serde_json::Value {
        let found = self.scan();
        let mut report: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut errors = BTreeMap::new();
        let mut to_start = Vec::new();
        self.broken.clear();
        let known: Vec<(String, Origin)> = self.services.iter().map(|(n, s)| (n.clone(), s.origin.clone())).collect();
        let mut seen = BTreeSet::new();
        for (name, origin) in known {
            seen.insert(name.clone());
            let source = match &origin {
                Origin::Search => found.get(&name).map(|p| p.display().to_string()),
                Origin::Path(p) => p.exists().then(|| p.display().to_string()),
            };
            let Some(source) = source else {
                report.entry("removed").or_default().push(name.clone());
                let s = self.services.get_mut(&name).expect("known");
                if SETTLED.contains(&s.machine.state) && s.launching.is_none() {
                    self.services.remove(&name);
                } else {
                    s.pending = Pending::Remove;
                    self.queue.push_back((name, Event::StopRequested));
                }
                continue;
            };
            let new = match self.load(&source) {
                Ok(n) => n,
                Err(e) => {
                    let e = e.to_string();
                    self.services.get_mut(&name).expect("known").error =
                        Some(format!("reload: the declaration has errors, still using the previous one:\n{e}"));
                    errors.insert(name.clone(), e);
                    continue;
                }
            };
            let s = self.services.get_mut(&name).expect("known");
            if new == s.spec {
                report.entry("unchanged").or_default().push(name);
                continue;
            }
            let active = !SETTLED.contains(&s.machine.state) || s.launching.is_some();
            if active {
                report.entry("restarted").or_default().push(name.clone());
                s.pending = Pending::Replace(Box::new(new));
                self.queue.push_back((name, Event::StopRequested));
            } else {
                report.entry("updated").or_default().push(name.clone());
                s.machine = Machine::new(new.service.clone());
                s.spec = new;
                s.error = None;
            }
        }
        for (name, path) in &found {
            if seen.contains(name) {
                continue;
            }
            match self.load(&path.display().to_string()) {
                Ok(spec) => {
                    report.entry("added").or_default().push(name.clone());
                    self.add(spec, Origin::Search);
                    if self.is_enabled(&self.services[name]) {
                        to_start.push(name.clone());
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    self.broken.insert(name.clone(), e.clone());
                    errors.insert(name.clone(), e);
                }
            }
        }
        for n in &to_start {
            self.queue.push_back((n.clone(), Event::StartRequested));
        }
        if !to_start.is_empty() {
            report.insert("started", to_start);
        }
        self.process();
        let mut v = json!(report);
        if !errors.is_empty() {
            v["errors"] = json!(errors);
        }
        v
    }
}
