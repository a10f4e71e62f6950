//! The command line, defined once: parsing, `--help`, and (later) man pages and
//! completions are all generated from these definitions.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "capexec",
    version,
    about = "Run unmodified Linux services least-privileged, from declarations",
    long_about = "capexec runs a program in its own namespaces with a minimal filesystem view, \
preopened resources, Landlock, a seccomp allowlist and no capabilities. What a service may \
use is written in a declaration file (NAME.svc, TOML; see docs/declaration.md).",
    after_help = "Examples:\n  \
capexec run -- /usr/bin/id                  strictly confined, ad hoc\n  \
capexec run --rw . --net host -- make       open up what a job needs\n  \
capexec check units/nginx.svc               validate and show the resolved declaration\n  \
capexec exec nginx                          run /etc/capexec/units/nginx.svc in the foreground\n  \
capexec doctor                              what this kernel supports\n\n\
Exit status: the service's own status (128+N when killed by signal N); 125 when capexec \
could not set the sandbox up, 127 when the program could not be executed.\n\
Set CAPEXEC_LOG=debug for a trace of each setup step."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Deferred: clap builds only the arguments of the subcommand given, not of
// all twenty (a tenth of `capexec run`'s own CPU per launch otherwise).
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Validate declarations and print them with every default resolved
    #[command(after_help = "A bare NAME is looked up as NAME.svc in /etc/capexec/units, /run/capexec/units, \
/usr/lib/capexec/units (first match wins), then in the current directory; anything containing a `/` is a path. Drop-ins in \
NAME.svc.d/*.toml are merged in lexical order. Exits non-zero if any declaration has an error.")]
    Check(CheckArgs),
    /// Run a declared service in the foreground (what systemd's ExecStart= calls)
    #[command(after_help = "capexec stays in the foreground as the service's parent: it forwards SIGTERM, SIGINT, \
SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT, exits with the service's status, and when it ends or is \
killed, every process of the service ends too. SIGHUP runs the declaration's [[exec.reload]] commands \
instead, when it has some; the first SIGTERM or SIGINT runs its [[exec.stop]] commands (in the \
sandbox, within stop_timeout) before it is forwarded.\n\nUnder systemd: sockets from socket activation \
(LISTEN_FDS for this process) become the service's fds 3, 4, ..., before the declared preopens; the \
service's sd_notify messages are relayed to NOTIFY_SOCKET with MAINPID set to capexec (which says \
READY=1 itself for declarations that are not type = \"notify\"); WATCHDOG_USEC is passed on; \
$CREDENTIALS_DIRECTORY is visible read-only at the same path.\n\nAs root, what is refused the \
service (by seccomp, Landlock, its broker, the network guard) is written to standard error as it happens, \
each with the declaration key that allows it, at most 20 lines per 10 seconds (then how many were not \
shown; the same refusal again is counted, not repeated); rootless, where no audit log can be read, the \
syscalls seccomp refuses and the broker's refusals are, and `capexec exec --explain UNIT` re-runs the service under \
the learning recorder to say what else (files, ports) the kernel would refuse.\n\nExample unit lines:\n  Type=notify\n  ExecStart=/usr/bin/capexec exec nginx")]
    Exec(ExecArgs),
    /// Run a program confined without a declaration file (strict by default)
    #[command(after_help = "With no options the program sees read-only system directories (/usr, /etc, ...), \
no home directories but an empty, writable HOME of its own (a tmpfs at your $HOME's path, gone \
with the program), a private /tmp, no network (own namespace, loopback only), no host processes \
or IPC, no capabilities, and the @system-service syscall allowlist. Options open things up. As \
root, a program that fails is followed by what the kernel refused it, with the flag that allows each.\n\n\
Examples:\n  capexec run -- ./downloaded-binary\n  capexec run --rw \"$PWD\" -- make -j2\n  \
capexec run --net host --connect-tcp 443 -- curl https://example.org\n  \
capexec run --preopen-listen tcp:127.0.0.1:8080 -- ./server   (fd 3, LISTEN_FDS=1)")]
    Run(Box<RunArgs>),
    /// Show what this kernel supports (Landlock ABI, seccomp, user namespaces, cgroups, LSMs)
    Doctor(DoctorArgs),
    /// Run the supervisor: keeps declared services running, answers `capexec start|stop|status|...`
    #[command(
        after_help = "System mode (as root): control socket /run/capexec/control.sock, state in /var/lib/capexec, logs in /var/log/capexec (or the journal when one runs), declarations from /etc/capexec/units, /run/capexec/units, /usr/lib/capexec/units. Root and members of the `capexec` group may control it.

User mode (--user, or any non-root user): socket in $XDG_RUNTIME_DIR/capexec/, state and logs in ~/.local/state/capexec, declarations from ~/.config/capexec/units. Only the user may control it.

Never from inside a sandbox: a process of one of the daemon's services, or of any other view capexec built, is refused whatever its uid (each refusal is in that service's `capexec denials`).

Services with `autostart = true` (or `capexec enable`d) start with the daemon. SIGHUP re-reads the declarations (like `capexec reload`); SIGTERM or SIGINT stop every service within its stop_timeout, then the daemon exits. If the daemon is killed, every service dies with it.

Examples:
  capexec daemon                      system daemon, in the foreground
  capexec daemon --user               your own services
  ExecStart=/usr/bin/capexec daemon   in capexecd.service (Type=notify)"
    )]
    Daemon(DaemonArgs),
    /// Start services (by name from the search path, or by path) and wait until they run
    #[command(after_help = "Examples:
  capexec start nginx
  capexec start ./units/redis.svc

Waits until each service is running (type = notify: has sent READY=1), has exited, or has failed; exits non-zero if one failed, and says why.")]
    Start(UnitsArgs),
    /// Stop services: their exec.stop commands, the declared stop signal, then after stop_timeout every process is killed
    Stop(UnitsArgs),
    /// Stop, then start services
    Restart(UnitsArgs),
    /// Re-read every declaration (unchanged services keep running, changed ones restart, removed ones stop); with names, run those services' exec.reload commands
    #[command(after_help = "Without UNIT: the declarations are read again, like SIGHUP to the daemon. With UNIT...: each \
running service's [[exec.reload]] commands run (systemd's ExecReload=): the privileged ones on the host as root, the \
others inside the service's own sandbox, as the service, where they can signal it (nginx -s reload, apachectl \
graceful, rndc reload). Waits until they have ended, and for a service that announces its reloads \
(RELOADING=1 on its notify socket) until its READY=1 says the reload is over; exits non-zero if one failed, and says \
which.")]
    Reload(ReloadArgs),
    /// Show state, main pid, uptime, restarts, last exit, memory, tasks, STATUS= and last log lines
    Status(StatusArgs),
    /// List every loaded service, one line each
    List(ClientArgs),
    /// Show a service's output (stdout and stderr, with timestamps)
    Logs(LogsArgs),
    /// Show what was refused a service (Landlock, seccomp, its broker, the network guard), each with what would allow it
    #[command(after_help = "The daemon, as root, reads the kernel's audit records of what Landlock and seccomp \
refused each service and keeps the last 64 (a refusal repeated in a row counts as one entry); each \
also goes to the service's log, at most 20 lines per 10 seconds (the same refusal again is counted, \
not repeated). Each entry says what would allow \
it: the declaration key, and the capexec run flag. The service's broker and network guard \
report their own refusals too. Rootless, the kernel's records are out of reach: the user daemon \
answers the syscalls seccomp refuses a service itself (or its broker does) and keeps those (the repeats \
of one within a second come as one entry with their count); for files and ports use `capexec run \
--explain` or `capexec exec --explain`. --propose prints a drop-in that allows what was refused. \
See docs/daemon.md, \"What was refused\".")]
    Denials(DenialsArgs),
    /// Answer the seccomp notifications of containers run by runc or crun with capexec's broker (their listenerPath)
    #[command(after_help = "A container whose config.json has linux.seccomp.listenerPath = PATH, and SCMP_ACT_NOTIFY \
rules for the calls to broker (openat, open, connect, bind), is connected to this agent by its runtime when it \
is created. Each container gets a broker process of its own, confined as capexec's brokers are, with the \
[broker] grants of its annotation org.capexec.broker (TOML: the [broker] tables of a declaration): granted \
host files are opened and granted addresses connected or bound on the host for it; past its grants a \
brokered call is refused, and a call no grant names is the kernel's to decide in the container. See docs/oci.md.\n\n\
Example:\n  capexec agent --socket /run/capexec/agent.sock")]
    Agent(AgentArgs),
    /// Show what an overlaid run (`capexec run --overlay DIR`) changed against the host
    #[command(after_help = "Each line is a change to a host path, as the program saw it: `A` added, \
`M` modified (contents, mode, link target or type), `D` deleted, `R` a directory whose host \
contents were all removed (what it holds now follows as added). A file the program opened for \
writing but left as it was is not a change. Nothing on the host is touched. See docs/overlay.md.\n\n\
Examples:\n  capexec diff ~/box\n  capexec diff --patch ~/box ~/src/project\n  capexec diff --json ~/box")]
    Diff(DiffArgs),
    /// Apply to the host what an overlaid run changed (all of it, or what is at or below PATHs)
    #[command(after_help = "New and modified files get the layer's contents and permission bits (never a \
setuid or setgid bit; they belong to you), links their targets, deleted ones are removed, emptied \
directories emptied. Nothing is applied while a path changed on the host since the run (the file \
is no longer what the program saw): --force applies over it. No link is followed, on the host or \
in the layer; devices, FIFOs and sockets are not made. What is applied leaves the layers. See \
docs/overlay.md.\n\nExamples:\n  capexec commit --dry-run ~/box\n  capexec commit ~/box ~/src/project/build\n  capexec commit ~/box")]
    Commit(CommitArgs),
    /// Drop everything an overlaid run wrote (the layers in DIR); the host was never touched
    Discard(DiscardArgs),
    /// Start services when the daemon starts (overrides the declaration's autostart)
    Enable(EnableArgs),
    /// Do not start services when the daemon starts
    Disable(EnableArgs),
    /// Run a program or a unit with nothing denied, record what it does, and write a declaration for it
    #[command(after_help = "The program runs in its own user, pid, IPC and UTS namespaces with the host's filesystem and \
network visible and nothing denied; every syscall it, its threads and its children make (and every \
program they execute) is recorded through seccomp user notification. The declaration written at the \
end allows what the run used and nothing else, each entry with a comment saying what needed it: \
review it, and exercise the program well (its tests, a load generator) while learning, since code \
paths the run did not reach will be denied later.

With a UNIT and --workload, the unit's service runs (its own program, user, environment and private \
directories) until the workload command, run on the host by /bin/sh once the service accepts \
connections on its listening addresses, exits; the service is then stopped with its stop signal. \
The declaration keeps the unit's other settings, and a report of how the run differs from the unit \
is printed on standard output (without --out, the declaration follows on standard error).

With --check, nothing is mined: the run is judged against UNIT instead. Every syscall goes through \
the unit's own seccomp filter (argument rules included), and every file and network access through \
its view and grants; the report lists, per category, what the unit would have refused, and the exit \
status is 1 if anything would have been.

Examples:
  capexec learn --out app.svc -- ./app --config app.conf
  capexec learn --save run1.json --out app.svc -- ./app --selftest
  capexec learn --merge run1.json --out app.svc -- ./app --serve-once
  capexec learn redis.svc --workload 'redis-benchmark -q -n 10000' --out redis-mined.svc
  capexec learn --check redis-mined.svc --workload 'redis-cli set k v && redis-cli get k'")]
    Learn(LearnArgs),
    /// Score declarations from 0 (confined) to 10 (exposed) with systemd-analyze security's checks
    #[command(after_help = "Each of the 81 checks of `systemd-analyze security` (systemd 252) is answered from \
what capexec enforces for the declaration, with systemd's weights and arithmetic, so the score can be put \
next to a systemd unit's. Where capexec implements a restriction with another mechanism (its own root \
view instead of ProtectSystem=, namespaces, Landlock, seccomp argument rules, the broker), the table \
says which. docs/analyze.md lists every mapping.

Levels, as systemd names them: 0.0 PERFECT, <1.0 SAFE, <5.0 OK, <7.5 MEDIUM, <9.0 EXPOSED, <10.0 UNSAFE.

Examples:
  capexec analyze nginx
  capexec analyze --threshold 1 /usr/lib/capexec/units/*.svc     (for a package's CI)
  capexec analyze --json redis | jq '.units[0].exposure'")]
    Analyze(AnalyzeArgs),
    /// Convert a systemd service unit into a declaration, with a note on everything not carried over
    #[command(after_help = "Carries over ExecStart (with $VARS from Environment= and readable EnvironmentFile=s), \
User, Group, Environment, WorkingDirectory, Type, Restart and its timings, ReadOnlyPaths, ReadWritePaths, \
InaccessiblePaths, ExecPaths, State/Cache/Logs/RuntimeDirectory, PrivateNetwork, MemoryDenyWriteExecute, UMask, AmbientCapabilities, \
SystemCallFilter, Limit*, MemoryMax, TasksMax and CPUWeight. Hardening directives that capexec applies to \
every service anyway (ProtectSystem, PrivateTmp, NoNewPrivileges, ...) are listed as covered; the rest as not \
mapped, each with the reason. The result is a starting point: check it, then run it under \
`capexec learn --check` with a workload.

A unit named without a path is found where systemd finds it (/etc/systemd/system before \
/run/systemd/system and /lib/systemd/system), with its drop-ins (UNIT.d/*.conf there: what \
`systemctl edit` writes), as `systemctl cat` shows it; an instance (NAME@INSTANCE.service) from its \
template. A path in one of those directories gets its drop-ins too; a file elsewhere is read alone.

Examples:
  capexec import coturn.service --out coturn.svc          (with /etc/systemd/system/coturn.service.d/*.conf)
  capexec import postgresql@15-main.service | less
  capexec import ./redis-server.service --out redis.svc   (a copy, without drop-ins)")]
    Import(ImportArgs),
}

#[derive(Args, Debug)]
pub struct LearnArgs {
    /// The unit to run (its own program); with --check, the unit to judge the run against
    #[arg(value_name = "UNIT")]
    pub target: Option<PathBuf>,
    /// Start from this declaration (its user, environment, private directories and preopened sockets), running PROG
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub unit: Option<PathBuf>,
    /// Run this shell command on the host once the service listens; its exit ends the run
    #[arg(long, value_name = "COMMAND")]
    pub workload: Option<String>,
    /// Judge the run against UNIT and report what it would have refused, instead of mining
    #[arg(long, requires = "target")]
    pub check: bool,
    /// Start the workload once ADDR (tcp:HOST:PORT, or unix:PATH) accepts connections (repeatable;
    /// one answering is enough; default: the unit's TCP preopens and exact broker bind grants, else a
    /// forking service's pid file, else READY=1 of a notify service, else the first socket the
    /// service binds, once it accepts)
    #[arg(long, value_name = "ADDR", requires = "workload")]
    pub wait_for: Vec<String>,
    /// Start the workload at once, without waiting for the service to be ready (for a service that
    /// listens on nothing, such as cron)
    #[arg(long, requires = "workload", conflicts_with = "wait_for")]
    pub no_wait: bool,
    /// Give up when the service is not ready within this many seconds (default: the unit's
    /// service.ready_timeout, at least 30; 30 for a program without a unit)
    #[arg(long, value_name = "SECONDS")]
    pub ready_timeout: Option<u64>,
    /// Write the mined declaration here (default: standard output)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also save what was recorded, as JSON, to merge into later runs with --merge
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Add what earlier runs saved with --save (repeatable)
    #[arg(long, value_name = "FILE")]
    pub merge: Vec<PathBuf>,
    /// Run as USER (root only; default: the unit's user, else a dynamic unprivileged uid, or your
    /// own uid when rootless). A program after `--` then runs as a service declared with `user =
    /// USER` would, with the host's ids (a root daemon that drops to its own user can), and the
    /// mined declaration says `user = USER`
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Set an environment variable (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Print the --check report (or the difference from the unit) as JSON
    #[arg(long)]
    pub json: bool,
    /// The program and its arguments (after --)
    #[arg(last = true, allow_hyphen_values = true, value_name = "PROG [ARGS]...")]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)
    #[arg(long)]
    pub user: bool,
    /// The daemon's control socket (default: the system daemon's for root; for other users
    /// their user daemon's if it runs, else the system daemon's). Also CAPEXEC_SOCKET.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the daemon's answer as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReloadArgs {
    /// Services whose reload commands to run; none: re-read every declaration
    #[arg(value_name = "UNIT")]
    pub units: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct UnitsArgs {
    /// Unit names (NAME or NAME.svc) or paths to declaration files
    #[arg(required = true, value_name = "UNIT")]
    pub units: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Units to show (default: every loaded one)
    #[arg(value_name = "UNIT")]
    pub units: Vec<String>,
    /// Log lines to show per unit
    #[arg(long, short = 'n', default_value_t = 10, value_name = "N")]
    pub lines: usize,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct DenialsArgs {
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// Print a drop-in for the unit that allows what it was refused (the smallest change: each
    /// refused item added to its list)
    #[arg(long)]
    pub propose: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The Unix socket to listen on (made mode 0600; a stale one is replaced)
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The directory given to `capexec run --overlay`
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Only changes at or below these host paths
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only the counts
    #[arg(long, conflicts_with_all = ["patch", "json"])]
    pub stat: bool,
    /// A unified diff of each text file added, modified or deleted
    #[arg(long, short = 'p', conflicts_with = "json")]
    pub patch: bool,
    /// The changes as JSON: path, change, kind
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// The directory given to `capexec run --overlay`
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Only changes at or below these host paths (with the new directories above them)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Say what would be applied; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Apply over host paths that changed since the run
    #[arg(long)]
    pub force: bool,
    /// The report as JSON: applied, conflicts, skipped
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DiscardArgs {
    /// The directory given to `capexec run --overlay`
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// Show the last N lines
    #[arg(long, short = 'n', default_value_t = 50, value_name = "N")]
    pub lines: usize,
    /// Keep printing new lines as they come (until interrupted)
    #[arg(long, short)]
    pub follow: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct EnableArgs {
    #[arg(required = true, value_name = "UNIT")]
    pub units: Vec<String>,
    /// Also start (enable) or stop (disable) them now
    #[arg(long)]
    pub now: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// User mode: the caller's own daemon (the default for non-root users)
    #[arg(long)]
    pub user: bool,
    /// Directory for the control socket, lock and notify sockets
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Directory for persistent state (enable/disable)
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory for log files
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Write log files even where a journal runs
    #[arg(long)]
    pub log_files: bool,
    /// Rotate a service's log file when it exceeds this many bytes
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub log_max_size: u64,
    /// Name of the cgroup that holds one cgroup per service (system mode), relative to the cgroup v2
    /// root (`capexec`, or `system.slice/capexec.service` under systemd)
    #[arg(long, value_name = "NAME", default_value = "capexec", value_parser = cgroup_name)]
    pub cgroup: String,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Look up bare names in DIR instead of the default search path (repeatable)
    #[arg(long = "unit-path", value_name = "DIR", global = true)]
    pub unit_path: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Declaration files or names
    #[arg(required = true, value_name = "FILE|NAME")]
    pub units: Vec<String>,
    /// Print JSON (one object: {"units": [...], "errors": [...]})
    #[arg(long)]
    pub json: bool,
    /// Print only errors
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the whole resolved declaration (TOML) instead of a summary
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Declaration files or names
    #[arg(required = true, value_name = "FILE|NAME")]
    pub units: Vec<String>,
    /// Print JSON: {"units": [{"name", "exposure", "level", "checks": [...]}], "errors": [...]}
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when a unit's exposure is above N (0.0 to 10.0)
    #[arg(long, value_name = "N")]
    pub threshold: Option<f64>,
    /// Print only each unit's overall score, one line per unit
    #[arg(long, short)]
    pub short: bool,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The systemd unit: its file, or its name (found where systemd finds it, with its drop-ins)
    #[arg(value_name = "UNIT.service")]
    pub unit: std::path::PathBuf,
    /// Write the declaration here instead of standard output (refuses to overwrite)
    #[arg(long, short, value_name = "FILE.svc")]
    pub out: Option<std::path::PathBuf>,
    /// For a template unit (NAME@.service): the instance, as systemd's %i
    /// (e.g. 15-main for postgresql@.service)
    #[arg(long, value_name = "INSTANCE")]
    pub instance: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Declaration file or name
    #[arg(value_name = "FILE|NAME")]
    pub unit: String,
    /// Run the service with nothing denied, recording what it does, then say what the declaration
    /// would have refused, each with the key that allows it (only for a program you would run
    /// unconfined)
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Start from this declaration, then apply the options below on top
    #[arg(long, value_name = "FILE")]
    pub unit: Option<PathBuf>,
    /// Make PATH visible read-only (repeatable; as root without --user, read as PATH's owner)
    #[arg(long = "ro", value_name = "PATH")]
    pub ro: Vec<String>,
    /// Show PATH without letting the program read it: it may stat it, test that it exists and list
    /// a directory, not open a file (repeatable)
    #[arg(long = "visible", value_name = "PATH")]
    pub visible: Vec<String>,
    /// Make PATH visible read-write, not executable (repeatable; as root without --user, written
    /// as PATH's owner: what the program makes there is the owner's)
    #[arg(long = "rw", value_name = "PATH")]
    pub rw: Vec<String>,
    /// Make PATH visible read-write and executable: the program may run what it writes there
    /// (`make check` running the binaries it built; repeatable; as root without --user, writes as
    /// PATH's owner, as --rw does)
    #[arg(long = "rw-exec", value_name = "PATH")]
    pub rw_exec: Vec<String>,
    /// Show the whole host filesystem and keep every write in layers in DIR, never on the host
    /// (see `capexec diff`, `commit`, `discard`; DIR is made if missing and may be reused)
    #[arg(long, value_name = "DIR")]
    pub overlay: Option<String>,
    /// With --overlay: run as uid 0 in the program's own user namespace, so that dpkg, apt-get
    /// and pip install into the layers (rootless too; `capexec commit` applies what you may write)
    #[arg(long, requires = "overlay")]
    pub fakeroot: bool,
    /// With --overlay, rootless: copy PATH (a file or a tree) into the layers before the run, as
    /// yours, so that the program may rewrite in place what the host's root owns (overlayfs cannot
    /// copy such files up in a user namespace); --fakeroot copies the package tools' state
    /// (repeatable)
    #[arg(long = "copy-up", value_name = "PATH", requires = "overlay")]
    pub copy_up: Vec<String>,
    /// After the run, list the sockets the program made and the addresses it connected, bound and
    /// sent to, each allowed or refused (always with --overlay)
    #[arg(long)]
    pub net_summary: bool,
    /// Hide PATH (an empty, unreadable file or directory in its place; repeatable)
    #[arg(long = "hide", value_name = "PATH")]
    pub hide: Vec<String>,
    /// Make PATH visible read-only and executable (repeatable)
    #[arg(long = "exec-path", value_name = "PATH")]
    pub exec_path: Vec<String>,
    /// Mount a fresh, empty tmpfs at PATH (repeatable)
    #[arg(long = "tmpfs", value_name = "PATH")]
    pub tmpfs: Vec<String>,
    /// Network: `none` (own namespace, loopback only; default) or `host`
    #[arg(long, value_name = "none|host")]
    pub net: Option<String>,
    /// Allow TCP bind to PORT, or to each port of FIRST-LAST (Landlock; repeatable)
    #[arg(long = "bind-tcp", value_name = "PORT|FIRST-LAST")]
    pub bind_tcp: Vec<String>,
    /// At most N tasks, threads included (RLIMIT_NPROC in the service's own user namespace; default 4096)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub tasks: Option<u64>,
    /// Allow TCP connect to PORT, or to each port of FIRST-LAST (Landlock; repeatable)
    #[arg(long = "connect-tcp", value_name = "PORT|FIRST-LAST")]
    pub connect_tcp: Vec<String>,
    /// Also allow a syscall or a group such as @mount (repeatable)
    #[arg(long = "allow-syscall", value_name = "NAME|@GROUP")]
    pub allow_syscall: Vec<String>,
    /// Keep a capability, e.g. CAP_NET_BIND_SERVICE (repeatable)
    #[arg(long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Open a listening socket before confinement and pass it as fd 3, 4, ... (repeatable;
    /// unixgram:PATH is a Unix datagram socket, as syslog's /dev/log)
    #[arg(long = "preopen-listen", value_name = "tcp:ADDR:PORT|udp:ADDR:PORT|unix:PATH|unixgram:PATH")]
    pub preopen_listen: Vec<String>,
    /// Set an environment variable (repeatable)
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Copy a variable from capexec's environment (repeatable; TERM, LANG, LC_*, TZ are passed by default)
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Run as USER (root only; default: a dynamic unprivileged uid, or your own uid when rootless)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory (default: the current one if it is in the view, else /)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Landlock enforcement: `required` (default) or `best-effort`
    #[arg(long, value_name = "MODE")]
    pub landlock: Option<String>,
    /// Print the resolved declaration instead of running
    #[arg(long)]
    pub dry_run: bool,
    /// Run the program with nothing denied, recording what it does, then say what these options
    /// would have refused, each with the flag that allows it (for rootless runs, where only the
    /// refused syscalls are reported after a failure, not files or ports; only for a program you
    /// would run unconfined)
    #[arg(long, conflicts_with = "dry_run")]
    pub explain: bool,
    /// The program and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROG [ARGS]...")]
    pub command: Vec<String>,
    /// Not an option: set by `capexec learn`, whose program given a --user
    /// runs as a service declared with that user would (see `run::build_in`).
    #[arg(skip)]
    pub as_service: bool,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `--cgroup`: a name under the cgroup v2 root, never a path outside it (a
/// path given was made as a directory wherever it led, /sys/fs/cgroup's
/// tmpfs on a hybrid host, and every start then failed to attach the
/// network guard there with EBADF).
fn cgroup_name(v: &str) -> Result<String, String> {
    if v.starts_with('/') {
        return Err(format!("`{v}` is a path: --cgroup takes a name relative to the cgroup v2 root, such as `capexec` or `system.slice/capexec.service`"));
    }
    if v.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("`{v}`: --cgroup takes a name relative to the cgroup v2 root, with no empty, `.` or `..` part"));
    }
    Ok(v.to_owned())
}
