//! capexec-oci: capexec's confinement as an OCI runtime (runtime-spec 1.x),
//! for podman, containerd and Kubernetes. Built on capexec's own launch
//! composer, not youki's libcontainer: docs/oci.md says why.
//!
//! The data flow: `bundle` (config.json read and checked) → `container`
//! (a capexec ServiceSpec) → capexec_sandbox's composer and launch →
//! `lifecycle` (create, start, state, kill, delete, ps, features) over
//! `state` (the state directory). `check` stops after the first step; `run`
//! launches in the foreground. What is not done yet: docs/oci.md, "Status".

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]

mod agent;
mod bundle;
mod cgroups;
mod container;
mod coverage;
mod error;
mod hooks;
mod lifecycle;
mod state;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "capexec-oci",
    version,
    about = "capexec's confinement as an OCI runtime (runtime-spec 1.x)",
    long_about = "capexec's confinement as an OCI runtime (runtime-spec 1.x), with runc's command line, for podman, \
containerd (and so Kubernetes) and CRI-O. A container gets what its config.json says (namespaces, mounts, ids, \
capabilities, rlimits, seccomp, cgroup limits, hooks) and what capexec adds: Landlock derived from its mounts, \
capexec's seccomp allowlist where the config has no profile, and from annotations a capexec declaration's \
[broker] grants (org.capexec.broker) and preopened files and sockets (org.capexec.preopen). A field it does not \
apply is refused by name, never ignored where ignoring would weaken the confinement: `capexec-oci check` says \
which. Rootless engines run it in their user namespace, as root there. docs/oci.md tells each field's fate."
)]
#[command(after_help = "The container lifecycle, as engines call it:
  capexec-oci create --bundle DIR ID    set the container up; its program waits
  capexec-oci start ID                  let it exec
  capexec-oci exec ID COMMAND...        run another process in it
  capexec-oci state ID                  its state as JSON (created, running, stopped)
  capexec-oci kill ID [SIGNAL]          signal it (TERM by default)
  capexec-oci delete [--force] ID       remove a stopped one (--force: kill it first)

Also:
  capexec-oci run --bundle DIR ID       create and start in the foreground, until it ends
  capexec-oci check --bundle DIR        what of DIR/config.json is applied, ignored or refused

docs/oci.md says what each config.json field becomes.")]
struct Cli {
    /// The state directory: one directory per container [default: /run/capexec-oci; in a user
    /// namespace (rootless podman), $XDG_RUNTIME_DIR/capexec-oci, as runc's].
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Also write errors to this file (engines read it).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// The format of --log: text, or json (one object per line, as runc's).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Accepted for runc's command line; capexec-oci has no more to say.
    #[arg(long, global = true, hide = true)]
    debug: bool,
    /// Accepted for podman's and crun's command line: capexec-oci makes cgroups itself (cgroupfs), only for the limits a config sets.
    #[arg(long, global = true, hide = true)]
    cgroup_manager: Option<String>,
    /// Accepted for runc's command line: capexec-oci makes cgroups itself (cgroupfs), not through systemd.
    #[arg(long, global = true, hide = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a bundle's config.json and say what capexec-oci does with it:
    /// fields it does not apply are named, as refused (the container would be
    /// less confined than its config asks, or run something else) or ignored
    /// (it would not). Exits 0 when the bundle can run, 1 when not.
    Check {
        /// The bundle directory (config.json and the root filesystem).
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// One JSON object on stdout: {"bundle", "runs", "error", "ignored": [{"field", "why"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Create and start the container in one step, in the foreground, and
    /// exit with its status (runc's `run`, without --detach): its standard
    /// streams are capexec-oci's own. As root.
    Run {
        /// The bundle directory (config.json and the root filesystem).
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// The container's id: its name in messages.
        id: String,
    },
    /// Set the container up (namespaces, view, Landlock, ids, capabilities)
    /// and leave its program waiting to exec until `start`. Its standard
    /// streams are this command's. As root.
    Create {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// Write the container's pid (its init, as the host sees it) here.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// For a container with a terminal (process.terminal): a Unix
        /// socket where the master of its pseudo-terminal is sent.
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,
        /// Pass fds 3 to 3+N-1 of this command on to the program, as they
        /// are (no LISTEN_FDS is set: the config's environment is the
        /// program's).
        #[arg(long, default_value_t = 0, value_name = "N")]
        preserve_fds: u32,
        /// Accepted for runc's command line (capexec always pivots).
        #[arg(long, hide = true)]
        no_pivot: bool,
        /// Accepted for runc's command line.
        #[arg(long, hide = true)]
        no_new_keyring: bool,
        id: String,
    },
    /// Let a created container's program exec.
    Start { id: String },
    /// Run another process in a created or running container, confined as
    /// its program is (namespaces, ids, capabilities, Landlock, seccomp).
    /// In the foreground it exits with the process's status.
    #[command(after_help = "Examples:
  capexec-oci exec web ls /srv              the container's process, with these args
  capexec-oci exec --process p.json -d web  a runtime-spec process object, detached (as podman exec)")]
    Exec {
        /// A runtime-spec `process` object (JSON) to run, instead of COMMAND.
        #[arg(long, short = 'p')]
        process: Option<PathBuf>,
        /// Return once the process runs; its pid (a parent that stands for
        /// it and exits with its status) goes to --pid-file.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Write the pid of the process (as the host sees it) here.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// The working directory, in the container.
        #[arg(long)]
        cwd: Option<String>,
        /// NAME=VALUE, added to the environment (repeatable).
        #[arg(long, short = 'e')]
        env: Vec<String>,
        /// Give the process a terminal (needs --console-socket).
        #[arg(long, short = 't')]
        tty: bool,
        /// For a process with a terminal: a Unix socket where the master
        /// of its pseudo-terminal is sent.
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,
        /// Pass fds 3 to 3+N-1 of this command on to the program, as they
        /// are (no LISTEN_FDS is set: the config's environment is the
        /// program's).
        #[arg(long, default_value_t = 0, value_name = "N")]
        preserve_fds: u32,
        id: String,
        /// The command and its arguments (without --process).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print the container's state (runtime-spec): id, status, pid, bundle, annotations.
    State { id: String },
    /// Send a signal (a name such as TERM or KILL, or a number; TERM by
    /// default) to the container's init, which passes it on to its program.
    Kill {
        /// To every process of the container.
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Remove a stopped container's state.
    Delete {
        /// Kill a container that is still there first, and wait for it.
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// List the container's processes (host pids).
    Ps {
        #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
    },
    /// Print what this runtime implements (runtime-spec features, JSON).
    Features,
}

fn main() {
    let cli = Cli::parse();
    let store = state::Store::new(&cli.root.clone().unwrap_or_else(state::default_root));
    let outcome: Result<(), error::OciError> = match &cli.command {
        Command::Check { bundle, json } => std::process::exit(check(bundle, *json)),
        Command::Run { bundle, id } => std::process::exit(run(bundle, id)),
        Command::Create { bundle, pid_file, console_socket, preserve_fds, no_pivot: _, no_new_keyring: _, id } => {
            let a = lifecycle::CreateArgs { bundle, id, pid_file: pid_file.as_deref(), preserve_fds: *preserve_fds, console_socket: console_socket.as_deref() };
            lifecycle::create(&store, &a)
        }
        Command::Start { id } => lifecycle::start(&store, id),
        Command::Exec { process, detach, pid_file, cwd, env, tty, console_socket, preserve_fds, id, command } => {
            let a = lifecycle::ExecArgs {
                id,
                process: process.as_deref(),
                args: command,
                cwd: cwd.as_deref(),
                env,
                detach: *detach,
                pid_file: pid_file.as_deref(),
                preserve_fds: *preserve_fds,
                tty: *tty,
                console_socket: console_socket.as_deref(),
            };
            match lifecycle::exec(&store, &a) {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            }
        }
        Command::State { id } => lifecycle::state_json(&store, id).map(|v| println!("{}", serde_json::to_string_pretty(&v).expect("JSON"))),
        Command::Kill { all, id, signal } => lifecycle::signal(signal).and_then(|sig| lifecycle::kill(&store, id, sig, *all)),
        Command::Delete { force, id } => lifecycle::delete(&store, id, *force),
        Command::Ps { format, id } => ps(&store, id, format),
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&lifecycle::features()).expect("JSON"));
            Ok(())
        }
    };
    if let Err(e) = outcome {
        say_error(&cli, &e.to_string());
        std::process::exit(1);
    }
}

/// On stderr and, with --log, in the log (JSON lines as runc's with
/// --log-format json: engines show their `msg`).
fn say_error(cli: &Cli, msg: &str) {
    eprintln!("capexec-oci: {msg}");
    if let Some(path) = &cli.log {
        let line = match cli.log_format.as_str() {
            "json" => serde_json::json!({"level": "error", "msg": msg, "time": state::now_rfc3339()}).to_string(),
            _ => format!("{} error: {msg}", state::now_rfc3339()),
        };
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    }
}

fn ps(store: &state::Store, id: &str, format: &str) -> Result<(), error::OciError> {
    let s = store.load(id)?.ok_or_else(|| error::OciError::status(id, "was not created completely"))?;
    let pids = if store.status(&s) == state::Status::Stopped { Vec::new() } else { lifecycle::pids(&s) };
    match format {
        "json" => println!("{}", serde_json::json!(pids)),
        _ => {
            println!("PID");
            for p in pids {
                println!("{p}");
            }
        }
    }
    Ok(())
}

/// Exit status when the container could not be set up (as `capexec exec`'s).
const EXIT_SETUP: i32 = 125;

fn run(dir: &std::path::Path, id: &str) -> i32 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("capexec-oci: run as root, or as root of a user namespace of your own (rootless podman runs its runtime so: `unshare -r` for a try)");
        return EXIT_SETUP;
    }
    let b = match bundle::load(dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("capexec-oci: {e}");
            return EXIT_SETUP;
        }
    };
    for f in &b.ignored {
        eprintln!("capexec-oci: {id}: warning: `{}` is ignored: {}", f.field, f.why);
    }
    if b.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false) {
        eprintln!("capexec-oci: {id}: process.terminal is true: `run` relays no terminal; use create --console-socket and start, or set it to false");
        return EXIT_SETUP;
    }
    let prepared = lifecycle::plan_of(&b, id, false, 0).and_then(|(spec, plan)| Ok((lifecycle::prepare_broker(&spec)?, lifecycle::cgroups_of(&b, id)?, plan)));
    let (broker, cgroups, plan) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("capexec-oci: {e}");
            return EXIT_SETUP;
        }
    };
    let procs = match cgroups.as_ref().map(cgroups::Cgroups::create).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            eprintln!("capexec-oci: {id}: {e}");
            return EXIT_SETUP;
        }
    };
    let status = run_planned(id, &b, &plan, broker, &procs);
    if let Some(c) = &cgroups {
        c.end();
    }
    status
}

fn run_planned(id: &str, b: &bundle::Bundle, plan: &capexec_sandbox::SetupPlan, broker: Option<capexec_broker::Broker>, procs: &[PathBuf]) -> i32 {
    let hooks = match lifecycle::SetupHooks::new(b, id, broker.is_some()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("capexec-oci: {e}");
            return EXIT_SETUP;
        }
    };
    let before = |pid: i32| hooks.run(pid).map_err(Into::into);
    let (agent, gate) = match agent::connect_gated(b, id, plan, "creating") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("capexec-oci: {e}");
            return EXIT_SETUP;
        }
    };
    let (cloned, to_agent) = agent::callbacks(&agent);
    let opts = capexec_sandbox::SpawnOptions {
        broker_layer: broker.is_some(),
        cgroup_procs: procs,
        before_setup: Some(&before),
        on_clone: Some(&cloned),
        gate: gate.as_ref().map(|(rd, _)| std::os::fd::AsRawFd::as_raw_fd(rd)),
        agent: to_agent.as_ref().map(|f| f as &dyn Fn(std::os::fd::OwnedFd)),
        ..Default::default()
    };
    match capexec_sandbox::spawn_with(plan, &opts) {
        Ok(mut s) => {
            // Our own child, which must not run without its broker or its agent.
            let pid = s.pid;
            let kill = |e: error::OciError| {
                eprintln!("capexec-oci: {e}");
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            };
            if let Some(b) = broker {
                if let Err(e) = lifecycle::fork_broker(b, &mut s, plan) {
                    kill(e);
                }
            }
            if let Err(e) = agent::release(&agent, gate) {
                kill(e);
            }
            capexec_sandbox::wait_foreground(&s)
        }
        Err(e) => {
            eprintln!("capexec-oci: {id}: {e}");
            EXIT_SETUP
        }
    }
}

fn check(dir: &std::path::Path, json: bool) -> i32 {
    let loaded = bundle::load(dir);
    if json {
        let (error, ignored) = match &loaded {
            Ok(b) => (None, b.ignored.clone()),
            Err(e) => (Some(e.to_string()), Vec::new()),
        };
        let out = serde_json::json!({
            "bundle": dir,
            "runs": loaded.is_ok(),
            "error": error,
            "ignored": ignored.iter().map(|f| serde_json::json!({"field": f.field, "why": f.why})).collect::<Vec<_>>(),
        });
        println!("{out}");
        return i32::from(loaded.is_err());
    }
    match loaded {
        Ok(b) => {
            for f in &b.ignored {
                println!("ignored: `{}`: {}", f.field, f.why);
            }
            let args = b.spec.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default();
            println!(
                "{}: capexec-oci applies this config: {:?} in the root filesystem {}",
                b.dir.join("config.json").display(),
                args.join(" "),
                b.rootfs.display()
            );
            0
        }
        Err(bundle::BundleError::Unsupported { path, refused }) => {
            eprintln!("capexec-oci: {}: {} field(s) it does not apply, so it would not run this container:", path.display(), refused.len());
            for f in refused {
                eprintln!("  `{}`: {}", f.field, f.why);
            }
            1
        }
        Err(e) => {
            eprintln!("capexec-oci: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    // docs/man/capexec-oci.1 (shipped by the .deb) is generated from the
    // definition above; this fails when it is out of date. Regenerate with
    //   CAPEXEC_UPDATE_MAN=1 cargo test -p capexec-oci man_page
    #[test]
    fn man_page_is_up_to_date() {
        let mut out = Vec::new();
        clap_mangen::Man::new(super::Cli::command()).render(&mut out).unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man/capexec-oci.1");
        if std::env::var_os("CAPEXEC_UPDATE_MAN").is_some() {
            std::fs::write(&path, &out).unwrap();
            return;
        }
        let current = std::fs::read(&path).unwrap_or_default();
        assert!(current == out, "docs/man/capexec-oci.1 is out of date: run `CAPEXEC_UPDATE_MAN=1 cargo test -p capexec-oci man_page`");
    }
}
