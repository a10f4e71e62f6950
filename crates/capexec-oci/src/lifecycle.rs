//! The container lifecycle as runc's command line has it, which engines
//! (podman, containerd) call: `create` sets the container up to the point
//! where its program would exec and leaves it waiting; `start` lets it go;
//! `state`, `kill`, `delete`, `ps` look at and end it. Each container is a
//! capexec launch (composer, then capexec_sandbox's spawn with a gate);
//! what is known of it lives in the state directory (crate::state).

use crate::bundle;
use crate::error::OciError;
use crate::state::{self, Saved, StateError, Status, Store};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// An error of a lifecycle command, said once (stderr and the `--log`).
pub type Outcome = Result<(), OciError>;

/// The bundle's container as a capexec service, and its plan, composed as
/// any capexec service's; with `join`, of a process entering it (`exec`).
pub fn plan_of(b: &bundle::Bundle, id: &str, join: bool, preserved: usize) -> Result<(capexec_decl::ServiceSpec, capexec_sandbox::SetupPlan), OciError> {
    let spec = crate::container::service(b, id).map_err(|source| OciError::NotApplied { config: b.dir.join("config.json"), source })?;
    let container_hooks = if join { Default::default() } else { container_hooks(b, id)? };
    let extras = capexec_sandbox::plan::Extras { broker: capexec_broker::contribution(&spec), join, preserved, container_hooks, ..Default::default() };
    let plan = capexec_sandbox::compose(&spec, &extras).map_err(|source| OciError::Launch { id: id.to_owned(), source })?;
    Ok((spec, plan))
}

/// The config's createContainer and startContainer hooks, which the
/// container's own processes run during its setup (capexec_sandbox's
/// `ContainerHooks`), with the state they read.
fn container_hooks(b: &bundle::Bundle, id: &str) -> Result<capexec_sandbox::plan::ContainerHooks, bundle::BundleError> {
    let Some(h) = b.spec.hooks() else { return Ok(Default::default()) };
    let refuse = |field: String, detail: String| bundle::BundleError::Field { path: b.dir.join("config.json"), field, detail };
    let c = |field: String, s: &str| std::ffi::CString::new(s).map_err(|_| refuse(field, "holds a NUL byte".into()));
    let convert = |kind: &str, list: &Option<Vec<oci_spec::runtime::Hook>>| -> Result<Vec<capexec_sandbox::plan::ContainerHook>, bundle::BundleError> {
        let mut out = Vec::new();
        for (i, hook) in list.iter().flatten().enumerate() {
            let field = |what: &str| format!("hooks.{kind}[{i}].{what}");
            let path = hook.path().to_string_lossy().into_owned();
            if !hook.path().is_absolute() {
                return Err(refuse(field("path"), format!("{path} is not an absolute path")));
            }
            let mut argv = hook.args().clone().unwrap_or_default();
            if argv.is_empty() {
                argv.push(path.clone());
            }
            out.push(capexec_sandbox::plan::ContainerHook {
                path: c(field("path"), &path)?,
                argv: argv.iter().map(|a| c(field("args"), a)).collect::<Result<_, _>>()?,
                env: hook.env().iter().flatten().map(|e| c(field("env"), e)).collect::<Result<_, _>>()?,
                timeout: hook.timeout().filter(|t| *t > 0).map(|t| std::time::Duration::from_secs(t as u64)),
            });
        }
        Ok(out)
    };
    let state = serde_json::json!({
        "ociVersion": "1.2.0",
        "id": id,
        "bundle": b.dir,
        "annotations": b.spec.annotations().clone().unwrap_or_default(),
    });
    Ok(capexec_sandbox::plan::ContainerHooks {
        create: convert("createContainer", h.create_container())?,
        start: convert("startContainer", h.start_container())?,
        state: state.to_string(),
    })
}

/// The container's broker, when it has one (grants in its annotation, or
/// the listen() calls of a container on a network namespace that is not
/// its own): what the grants need is opened now. The launch then puts this
/// process (whose children the broker and the container will be) into the
/// Landlock layer they share (`SpawnOptions::broker_layer`).
pub fn prepare_broker(spec: &capexec_decl::ServiceSpec) -> Result<Option<capexec_broker::Broker>, OciError> {
    if !spec.has_broker() {
        return Ok(None);
    }
    capexec_broker::Broker::prepare(spec).map(Some).map_err(|source| OciError::Broker { id: spec.name.clone(), source })
}

/// Forks the container's broker: a process of its own, which outlives
/// this command as the container does, confined as capexec's brokers are
/// (the container's user, no effective capabilities, the broker's seccomp
/// filter), serving the container's brokered calls until it ends. Its
/// refusals go to the container's stderr, with the grant that would allow
/// each.
pub fn fork_broker(b: capexec_broker::Broker, s: &mut capexec_sandbox::Spawned, plan: &capexec_sandbox::SetupPlan) -> Result<(), OciError> {
    let mut ch =
        capexec_broker::Channels { listener: s.listener.take(), explicit: s.broker_channel.take(), dns: s.dns.take(), appends: std::mem::take(&mut s.appends) };
    let later = s.listener_later.take();
    let init = s.pid;
    match capexec_sys::process::fork("fork the container's broker").map_err(|e| OciError::io(plan.name.clone(), e))? {
        // The broker's copies are the ones that serve.
        capexec_sys::process::Forked::Parent(_) => Ok(()),
        capexec_sys::process::Forked::Child => {
            let code = (|| -> Result<(), capexec_broker::BrokerError> {
                let io = |op: &'static str| move |source| capexec_broker::BrokerError::Io { op, source };
                b.confine(plan.uid, plan.gid, None)?;
                if let Some(sock) = later {
                    let mut byte = [0u8; 1];
                    match capexec_sys::recv_fd_blocking(sock.as_raw_fd(), &mut byte).map_err(io("receive the container's seccomp listener"))? {
                        (_, Some(l)) => ch.listener = Some(l),
                        // Deleted before it started: nothing to serve.
                        (_, None) => return Ok(()),
                    }
                }
                let running = b.start(ch, init).map_err(io("start the broker's threads"))?;
                let mut running = running;
                for t in std::mem::take(&mut running.threads) {
                    let _ = t.join();
                }
                running.finish();
                Ok(())
            })();
            if let Err(e) = &code {
                eprintln!("capexec-oci: {}: broker: {e}", plan.name);
                // The container must not run with an absent broker. Our
                // parent's child, not yet reaped: its init.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), nix::sys::signal::Signal::SIGKILL);
            }
            capexec_sys::process::exit_now(i32::from(code.is_err()))
        }
    }
}

/// The cgroups for the config's pids and memory limits, if it has any.
pub fn cgroups_of(b: &bundle::Bundle, id: &str) -> Result<Option<crate::cgroups::Cgroups>, OciError> {
    let linux = b.spec.linux().as_ref();
    let limits = crate::cgroups::Limits::of(linux.and_then(|l| l.resources().as_ref()));
    let path = linux.and_then(|l| l.cgroups_path().as_deref());
    crate::cgroups::plan(Path::new(crate::cgroups::CGROUP_ROOT), &limits, path, id).map_err(|source| OciError::Cgroup { id: id.to_owned(), source })
}

pub struct CreateArgs<'a> {
    pub bundle: &'a Path,
    pub id: &'a str,
    pub pid_file: Option<&'a Path>,
    /// `--preserve-fds`: this many fds from 3 on go to the program as they are.
    pub preserve_fds: u32,
    pub console_socket: Option<&'a Path>,
}

/// The console socket a process with a terminal needs, connected: its
/// pseudo-terminal's master goes there (`SpawnOptions::console`).
pub fn console(terminal: bool, socket: Option<&Path>) -> Result<Option<std::os::unix::net::UnixStream>, OciError> {
    match (terminal, socket) {
        (true, Some(p)) => {
            std::os::unix::net::UnixStream::connect(p).map(Some).map_err(|e| OciError::io(format!("connect to the console socket {}", p.display()), e))
        }
        (true, None) => Err(OciError::Usage(
            "the process has a terminal (process.terminal, -t): give --console-socket, where its master goes (capexec-oci relays no terminal itself)".into(),
        )),
        (false, Some(p)) => Err(OciError::Usage(format!("--console-socket {}: the process has no terminal (process.terminal is false)", p.display()))),
        (false, None) => Ok(None),
    }
}

/// Fds 3 .. 3 + `n`, each checked open: runc's `--preserve-fds N`.
pub fn preserved_fds(n: u32) -> Result<Vec<std::os::fd::RawFd>, OciError> {
    let fds: Vec<std::os::fd::RawFd> = (3..3 + n as std::os::fd::RawFd).collect();
    for fd in &fds {
        nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_GETFD)
            .map_err(|e| OciError::Usage(format!("--preserve-fds {n}: fd {fd} is not open here ({e}): start the runtime with fds 3 to {} open", 2 + n)))?;
    }
    Ok(fds)
}

/// Sets the container up and leaves its program waiting for `start`. On
/// any error nothing is left: no process, no state directory, no
/// `oldroot` in the root filesystem.
pub fn create(store: &Store, a: &CreateArgs) -> Outcome {
    let b = bundle::load(a.bundle)?;
    for f in &b.ignored {
        eprintln!("capexec-oci: {}: warning: `{}` is ignored: {}", a.id, f.field, f.why);
    }
    let preserved = preserved_fds(a.preserve_fds)?;
    let (spec, plan) = plan_of(&b, a.id, false, preserved.len())?;
    let console = console(b.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false), a.console_socket)?;
    let cgroups = cgroups_of(&b, a.id)?;
    let broker = prepare_broker(&spec)?;
    let agent = crate::agent::Agent::connect(&b, a.id, &plan, "creating")?;
    store.claim(a.id)?;
    let undo = |e: OciError| {
        let _ = store.remove(a.id);
        if let Some(c) = &cgroups {
            c.remove();
        }
        e
    };
    let procs = match &cgroups {
        Some(c) => c.create().map_err(|source| undo(OciError::Cgroup { id: a.id.to_owned(), source }))?,
        None => Vec::new(),
    };
    let fifo = store.fifo(a.id);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| undo(OciError::io(format!("mkfifo {}", fifo.display()), e.into())))?;
    // Non-blocking: no writer yet. The container's program polls it.
    let gate = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo)
        .map_err(|e| undo(OciError::io(format!("open {}", fifo.display()), e)))?;
    let annotations: std::collections::BTreeMap<String, String> = b.spec.annotations().clone().unwrap_or_default().into_iter().collect();
    let hooks = b.spec.hooks().as_ref();
    // Recorded at once, so that a `create` killed during the setup leaves a
    // record `delete` can act on.
    let record = |pid: i32| {
        let start_time = state::start_time(pid).map_or(0, |(t, _)| t);
        let s = Saved {
            id: a.id.to_owned(),
            bundle: b.dir.clone(),
            rootfs: b.rootfs.clone(),
            pid,
            start_time,
            created: state::now_rfc3339(),
            annotations: annotations.clone(),
            cgroups: cgroups.as_ref().map(crate::cgroups::Cgroups::to_remove).unwrap_or_default(),
            poststart: hooks.and_then(|h| h.poststart().clone()).unwrap_or_default(),
            poststop: hooks.and_then(|h| h.poststop().clone()).unwrap_or_default(),
            pid_ns_entered: spec.namespaces.join.iter().any(|j| j.kind == capexec_decl::spec::JoinKind::Pid),
        };
        let _ = store.save(&s);
    };
    let (cloned, to_agent) = crate::agent::callbacks(&agent);
    let on_clone = |pid: i32| {
        record(pid);
        cloned(pid);
    };
    let hooks = SetupHooks::new(&b, a.id, broker.is_some()).map_err(undo)?;
    let before = |pid: i32| hooks.run(pid).map_err(Into::into);
    let opts = capexec_sandbox::SpawnOptions {
        on_clone: Some(&on_clone),
        agent: to_agent.as_ref().map(|f| f as &dyn Fn(std::os::fd::OwnedFd)),
        before_setup: Some(&before),
        gate: Some(gate.as_raw_fd()),
        broker_layer: broker.is_some(),
        cgroup_procs: &procs,
        inherited: &preserved,
        console: console.as_ref().map(|c| c.as_raw_fd()),
        ..Default::default()
    };
    let spawned = capexec_sandbox::spawn_with(&plan, &opts);
    drop(gate);
    let mut s = match spawned {
        Ok(s) => s,
        Err(source) => return Err(undo(OciError::Launch { id: a.id.to_owned(), source })),
    };
    // Our own child, ended (and reaped, so that its cgroups can go).
    let end = |pid: i32| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    if let Some(b) = broker {
        // The container must not run without its broker.
        fork_broker(b, &mut s, &plan).map_err(|e| {
            end(s.pid);
            undo(e)
        })?;
    }
    if let Some(agent) = &agent {
        // Nor without its agent.
        agent.outcome().map_err(|e| {
            end(s.pid);
            undo(e)
        })?;
    }
    if let Some(f) = a.pid_file {
        write_pid_file(f, s.pid).map_err(|e| {
            end(s.pid);
            undo(e)
        })?;
    }
    Ok(())
}

/// The config's prestart and createRuntime hooks, in that order, for the
/// container whose process `pid` is in its new namespaces, its setup not
/// begun (the state says `creating`): the first that fails is the error.
pub fn setup_hooks(b: &bundle::Bundle, id: &str, pid: i32) -> Result<(), crate::hooks::HookError> {
    let Some(h) = b.spec.hooks() else { return Ok(()) };
    let state = serde_json::json!({
        "ociVersion": "1.2.0",
        "id": id,
        "status": "creating",
        "pid": pid,
        "bundle": b.dir,
        "annotations": b.spec.annotations().clone().unwrap_or_default(),
    });
    crate::hooks::run_strict("prestart", h.prestart().as_deref().unwrap_or_default(), &state)?;
    crate::hooks::run_strict("createRuntime", h.create_runtime().as_deref().unwrap_or_default(), &state)
}

/// Where the config's prestart and createRuntime hooks run. With a broker,
/// the launch puts this process into the broker's Landlock layer (TCP
/// ports, signal and abstract-socket scopes) before the container's process
/// exists; the hooks are the host's programs (a network or device plugin)
/// and must not meet those limits: they run in a process forked before it,
/// asked for each container process by pid.
pub enum SetupHooks<'a> {
    None,
    Here(&'a bundle::Bundle, &'a str),
    Runner(HookRunner),
}

/// The forked process that runs the hooks (see [`SetupHooks`]).
pub struct HookRunner {
    ask: Option<std::fs::File>,
    answer: std::fs::File,
    pid: i32,
}

impl Drop for HookRunner {
    fn drop(&mut self) {
        // Our own child: it ends on EOF of its question, if it got none.
        self.ask.take();
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
    }
}

impl<'a> SetupHooks<'a> {
    pub fn new(b: &'a bundle::Bundle, id: &'a str, broker: bool) -> Result<Self, OciError> {
        use std::io::{Read, Write};
        let any = b
            .spec
            .hooks()
            .as_ref()
            .is_some_and(|h| h.prestart().as_ref().is_some_and(|v| !v.is_empty()) || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(SetupHooks::None);
        }
        if !broker {
            return Ok(SetupHooks::Here(b, id));
        }
        let pipe = || capexec_sys::pipe2(nix::fcntl::OFlag::O_CLOEXEC.bits()).map_err(|e| OciError::io(format!("{id}: pipe for the hook runner"), e));
        let ((ask_rd, ask_wr), (answer_rd, answer_wr)) = (pipe()?, pipe()?);
        match capexec_sys::process::fork("fork the hook runner").map_err(|e| OciError::io(id, e))? {
            capexec_sys::process::Forked::Parent(pid) => Ok(SetupHooks::Runner(HookRunner { ask: Some(ask_wr.into()), answer: answer_rd.into(), pid })),
            capexec_sys::process::Forked::Child => {
                drop((ask_wr, answer_rd));
                let (mut ask, mut answer) = (std::fs::File::from(ask_rd), std::fs::File::from(answer_wr));
                let mut pid = [0u8; 4];
                // No pid: the launch ended before the hooks' turn.
                if ask.read_exact(&mut pid).is_ok() {
                    let outcome = setup_hooks(b, id, i32::from_le_bytes(pid));
                    let _ = answer.write_all(outcome.err().map(|e| e.to_string()).unwrap_or_default().as_bytes());
                }
                capexec_sys::process::exit_now(0)
            }
        }
    }

    /// Runs the hooks for the container whose process is `pid` (the launch's
    /// `before_setup`): the first that fails is the error.
    pub fn run(&self, pid: i32) -> Result<(), OciError> {
        use std::io::{Read, Write};
        match self {
            SetupHooks::None => Ok(()),
            SetupHooks::Here(b, id) => Ok(setup_hooks(b, id, pid)?),
            SetupHooks::Runner(r) => {
                // Taken only when the runner is dropped.
                let (mut ask, mut answer) = (r.ask.as_ref().expect("the hook runner is asked once"), &r.answer);
                ask.write_all(&pid.to_le_bytes()).map_err(|e| OciError::io("ask the hook runner", e))?;
                let mut error = String::new();
                answer.read_to_string(&mut error).map_err(|e| OciError::io("hear from the hook runner", e))?;
                match error.is_empty() {
                    true => Ok(()),
                    false => Err(OciError::HookRunner(error)),
                }
            }
        }
    }
}

/// As runc writes it: the pid without a newline, atomically.
fn write_pid_file(f: &Path, pid: i32) -> Result<(), OciError> {
    let tmp = f.with_extension("capexec-tmp");
    std::fs::write(&tmp, pid.to_string()).and_then(|()| std::fs::rename(&tmp, f)).map_err(|e| OciError::io(format!("write the pid file {}", f.display()), e))
}

pub struct ExecArgs<'a> {
    pub id: &'a str,
    /// A runtime-spec `process` object (JSON file) to run; else `args`
    /// with the container's own process for the rest.
    pub process: Option<&'a Path>,
    pub args: &'a [String],
    pub cwd: Option<&'a str>,
    /// `NAME=VALUE`, added to (or replacing in) the process's environment.
    pub env: &'a [String],
    pub detach: bool,
    pub pid_file: Option<&'a Path>,
    pub preserve_fds: u32,
    /// `-t`: a terminal, whatever the process says.
    pub tty: bool,
    pub console_socket: Option<&'a Path>,
}

/// Runs another process in a created or running container: it enters the
/// container's namespaces and is confined as the container's program is
/// (ids, capabilities, rlimits, Landlock from the container's mounts,
/// seccomp). It is a new Landlock domain: it cannot signal the container's
/// other processes, nor they it. Returns the exit status to exit with:
/// the process's own, or 0 with `detach` once it runs (its parent, which
/// stands for it and exits with its status, is then in the pid file).
pub fn exec(store: &Store, a: &ExecArgs) -> Result<i32, OciError> {
    let s = load(store, a.id)?;
    if store.status(&s) == Status::Stopped {
        return Err(OciError::status(a.id, "is stopped: there is nothing to exec in"));
    }
    let process: Option<serde_json::Value> = match a.process {
        Some(f) => {
            let text = std::fs::read(f).map_err(|e| OciError::io(format!("read the process file {}", f.display()), e))?;
            Some(serde_json::from_slice(&text).map_err(|e| OciError::Usage(format!("{} is not a JSON process object: {e}", f.display())))?)
        }
        None if a.args.is_empty() => return Err(OciError::Usage("say what to run: a command after the container's id, or --process FILE".into())),
        None => None,
    };
    let b = bundle::load_with(&s.bundle, |config| {
        let p = match process {
            Some(p) => {
                config["process"] = p;
                config["process"].as_object_mut().ok_or("the process file holds no JSON object")?
            }
            None => {
                let p = config["process"].as_object_mut().ok_or("the container's config has no process to take the rest from")?;
                p.insert("args".into(), serde_json::json!(a.args));
                p.insert("terminal".into(), serde_json::json!(a.tty));
                p
            }
        };
        if let Some(cwd) = a.cwd {
            p.insert("cwd".into(), serde_json::json!(cwd));
        }
        if !a.env.is_empty() {
            let mut env: Vec<String> = p.get("env").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
            for kv in a.env {
                let name = kv.split('=').next().unwrap_or_default();
                env.retain(|e| e.split('=').next() != Some(name));
                env.push(kv.clone());
            }
            p.insert("env".into(), serde_json::json!(env));
        }
        Ok(())
    })?;
    let preserved = preserved_fds(a.preserve_fds)?;
    let (_, plan) = plan_of(&b, a.id, true, preserved.len())?;
    let console = console(a.tty || b.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false), a.console_socket)?;
    let (agent, gate) = crate::agent::connect_gated(&b, a.id, &plan, "running")?;
    let pidfd = capexec_sandbox::sys::pidfd_open(s.pid, 0).map_err(|e| OciError::io(format!("container {}: pidfd of its init {}", a.id, s.pid), e))?;
    // The pidfd names one process for good: if that is still the
    // container's init now, the namespaces it leads to are the container's.
    if !state::alive(s.pid, s.start_time) {
        return Err(OciError::status(a.id, "stopped just now: there is nothing to exec in"));
    }
    let (cloned, to_agent) = crate::agent::callbacks(&agent);
    let opts = capexec_sandbox::SpawnOptions {
        join: Some(pidfd.as_raw_fd()),
        detach: a.detach,
        inherited: &preserved,
        console: console.as_ref().map(|c| c.as_raw_fd()),
        on_clone: Some(&cloned),
        gate: gate.as_ref().map(|(rd, _)| rd.as_raw_fd()),
        agent: to_agent.as_ref().map(|f| f as &dyn Fn(std::os::fd::OwnedFd)),
        ..Default::default()
    };
    let spawned = capexec_sandbox::spawn_with(&plan, &opts).map_err(|source| OciError::Launch { id: format!("{}: exec", a.id), source })?;
    crate::agent::release(&agent, gate).inspect_err(|_| {
        // Our own child: it must not run with calls nobody answers.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(spawned.pid), nix::sys::signal::Signal::SIGKILL);
    })?;
    if let Some(f) = a.pid_file {
        write_pid_file(f, spawned.pid).inspect_err(|_| {
            // Our own child.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(spawned.pid), nix::sys::signal::Signal::SIGKILL);
        })?;
    }
    Ok(match a.detach {
        true => 0,
        false => capexec_sandbox::wait_foreground(&spawned),
    })
}

fn load(store: &Store, id: &str) -> Result<Saved, OciError> {
    match store.load(id)? {
        Some(s) => Ok(s),
        None => Err(OciError::status(id, format!("was not created completely: `capexec-oci delete --force {id}` removes it"))),
    }
}

/// Lets a created container's program exec.
pub fn start(store: &Store, id: &str) -> Outcome {
    let s = load(store, id)?;
    match store.status(&s) {
        Status::Created => {}
        other => return Err(OciError::status(id, format!("is {}: only a created container starts", other.name()))),
    }
    let fifo = store.fifo(id);
    // Non-blocking: ENXIO if nobody waits at the read end any more.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo)
        .map_err(|e| OciError::io(format!("container {id} is not waiting to start ({})", fifo.display()), e))?;
    std::io::Write::write_all(&mut &f, b"0").map_err(|e| OciError::io(format!("start container {id}"), e))?;
    // Its program holds the read end until it execs (or dies): `running`
    // from then on, and a signal the engine sends next meets the program.
    // A setup that hangs (a startContainer hook) is waited for a while only.
    let mut pfd = nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&f), nix::poll::PollFlags::empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match nix::poll::poll(std::slice::from_mut(&mut pfd), nix::poll::PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            _ => break,
        }
    }
    drop(f);
    let _ = std::fs::remove_file(&fifo);
    if !s.poststart.is_empty() {
        let state = state_json(store, id)?;
        for w in crate::hooks::run("poststart", &s.poststart, &state) {
            eprintln!("capexec-oci: {id}: warning: {w}");
        }
    }
    Ok(())
}

/// The runtime-spec's state of the container, as JSON.
pub fn state_json(store: &Store, id: &str) -> Result<serde_json::Value, OciError> {
    let s = load(store, id)?;
    Ok(state_value(&s, store.status(&s)))
}

fn state_value(s: &Saved, status: Status) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.2.0",
        "id": s.id,
        "status": status.name(),
        "pid": if status == Status::Stopped { 0 } else { s.pid },
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": "",
        "annotations": s.annotations,
    })
}

/// A signal by name (`TERM`, `SIGTERM`) or number.
pub fn signal(name: &str) -> Result<i32, OciError> {
    if let Ok(n) = name.parse::<i32>() {
        return Ok(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| OciError::Usage(format!("{name:?} is not a signal (give a name such as TERM or KILL, or a number)")))
}

/// The container's processes, as the host sees them: those in its pid
/// namespace, or, sharing this process's (the host's) or one entered by
/// path (a pod's, shared with others), init and its descendants. Compared with this process's namespace, not with PID 1's,
/// which may not be readable: taking every process for the container's
/// would have `kill --all` and `delete --force` signal the whole host.
pub fn pids(s: &Saved) -> Vec<i32> {
    let mut found = capexec_sys::process::family(s.pid, s.pid_ns_entered);
    // Its cgroups hold every process of it, also those that left init.
    found.extend(crate::cgroups::procs(&s.cgroups));
    found.sort_unstable();
    found.dedup();
    found
}

/// Sends `sig` to the container's init (which passes it on to the
/// program), or with `all` to every process of the container.
pub fn kill(store: &Store, id: &str, sig: i32, all: bool) -> Outcome {
    let s = load(store, id)?;
    if store.status(&s) == Status::Stopped {
        return Err(OciError::status(id, "is not running"));
    }
    let sig = nix::sys::signal::Signal::try_from(sig).map_err(|e| OciError::Usage(format!("signal {sig}: {e}")))?;
    let targets = if all { pids(&s) } else { vec![s.pid] };
    for pid in targets {
        // Checked just before: the container's own processes.
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(OciError::io(format!("signal {sig} to pid {pid} of container {id}"), e.into())),
        }
    }
    Ok(())
}

/// Removes a stopped container's state; `force` kills a live one first
/// and waits until it is gone.
pub fn delete(store: &Store, id: &str, force: bool) -> Outcome {
    let s = match store.load(id) {
        Ok(s) => s,
        Err(StateError::Damaged { .. }) if force => None,
        // Engines delete by force after a failed create, whose state is gone
        // already: nothing to do is not an error then (as rm -f).
        Err(StateError::Missing(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if let Some(s) = &s {
        if store.status(s) != Status::Stopped {
            if !force {
                return Err(OciError::status(id, format!("is {}: stop it (`capexec-oci kill {id}`) or delete it with --force", store.status(s).name())));
            }
            for pid in pids(s) {
                // The container's own processes (init's start time was checked).
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
            // Its parent (the engine's monitor, or PID 1) reaps it.
            while state::alive(s.pid, s.start_time) {
                if std::time::Instant::now() > end {
                    return Err(OciError::status(id, format!("still has its pid {} 10 s after SIGKILL", s.pid)));
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
    // The state poststop hooks get: the container's, stopped.
    let stopped = s.as_ref().filter(|s| !s.poststop.is_empty()).map(|s| state_value(s, Status::Stopped));
    if let Some(s) = s.as_ref().filter(|s| !s.cgroups.is_empty()) {
        // Empty once its processes are gone (the last may still be a zombie
        // for a moment: its cgroup stays busy until reaped).
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !crate::cgroups::procs(&s.cgroups).is_empty() && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        crate::cgroups::remove(&s.cgroups);
    }
    store.remove(id)?;
    if let (Some(s), Some(state)) = (&s, &stopped) {
        for w in crate::hooks::run("poststop", &s.poststop, state) {
            eprintln!("capexec-oci: {id}: warning: {w}");
        }
    }
    Ok(())
}

/// `features`: what this runtime implements (runtime-spec features.md).
pub fn features() -> serde_json::Value {
    let namespaces = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "dirsync", "noatime", "nodiratime", "relatime", "strictatime",
                         "bind", "rbind", "private", "rprivate", "slave", "rslave", "unbindable", "runbindable"],
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps::all().iter().map(|c| c.to_string()).collect::<std::collections::BTreeSet<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"],
                "operators": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"],
                "archs": ["SCMP_ARCH_X86_64"],
                "knownFlags": [],
                "supportedFlags": [],
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
        },
        "annotations": {"org.capexec.landlock": "derived from the container's mounts", "org.capexec.seccomp": "capexec's allowlist"},
    })
}
