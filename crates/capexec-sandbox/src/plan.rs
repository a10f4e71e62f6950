//! ServiceSpec → SetupPlan: everything the child will do, decided up front in the
//! parent. Pure (no syscalls that change anything), so it is unit-tested without
//! root, and the child only executes it — which also keeps allocation-heavy work
//! (seccomp compilation, string building) out of the child.

use crate::error::LaunchError;
use crate::seccomp;
use capexec_decl::spec::*;
use seccompiler::BpfProgram;
use std::collections::{BTreeSet, HashSet};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Where a fake root finds the configuration capexec gives it (see
/// SetupPlan::attach_fakeroot_config).
pub const FAKEROOT_CONFIG_DIR: &str = "/run/capexec-fakeroot";

#[derive(Debug, Clone)]
pub struct SetupPlan {
    pub name: String,
    /// CLONE_NEW* flags for the child.
    pub clone_flags: libc::c_int,
    /// The CLONE_NEW* namespaces of a running sandbox of the same spec to
    /// enter instead (`Extras::join`; `SpawnOptions::join` names whose): 0
    /// for a new sandbox.
    pub join: libc::c_int,
    /// Namespaces to enter by path (their CLONE_NEW* flag), in place of new
    /// ones: the parent opens each, the child enters it first.
    pub enter: Vec<(libc::c_int, PathBuf)>,
    /// The sandbox lives in a mount namespace not its own (a CLONE_NEWNS
    /// in `enter`: the runtime's or another's): its view is built in a
    /// private one that init keeps open, and each of its processes is
    /// chrooted into that view. A joining plan chroots into its init's root
    /// (`SpawnOptions::join_root`).
    pub foreign_mount_ns: bool,
    pub user_ns: bool,
    pub pid_ns: bool,
    /// Bring up loopback in the service's own network namespace.
    pub loopback: bool,
    /// Written by the parent into /proc/<child>/{uid_map,gid_map}.
    pub uid_map: String,
    pub gid_map: String,
    /// Rootless: setgroups must be denied before an unprivileged gid_map write.
    pub deny_setgroups: bool,
    /// The service's ids as the host sees them.
    pub uid: u32,
    pub gid: u32,
    /// Its ids inside its user namespace when they are not these
    /// (`exec.fakeroot`: 0 and 0).
    pub inside: Option<(u32, u32)>,
    /// Supplementary gids, set unless setgroups is denied.
    pub groups: Vec<u32>,
    pub mounts: Vec<MountStep>,
    /// The view's root: a host directory (an OCI root filesystem) and
    /// whether it is read-only; `None`: an empty tmpfs (see crate::mounts).
    pub root: Option<(PathBuf, bool)>,
    /// Binds of `mounts` that the parent replaces with an idmapped copy
    /// when their owner is not the service's user (`filesystem.as_owner`;
    /// see resources::owner_trees).
    pub as_owner: Vec<PathBuf>,
    /// `filesystem.copy_up`: copied into the overlay layers ahead, rootless
    /// (see crate::layers).
    pub copy_up: Vec<PathBuf>,
    pub workdir: CString,
    pub hostname: Option<CString>,
    /// Kernel parameters written by init (/proc/sys/... and the value)
    /// while the host's /proc still shows its new namespaces' own.
    pub sysctls: Vec<(PathBuf, String)>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    /// Written to /proc/self/oom_score_adj first thing in the setup
    /// (`exec.oom_score_adjust`), so that init and all it forks have it.
    pub oom_score_adj: Option<i32>,
    /// The nice value set next (`exec.nice`), likewise inherited.
    pub nice: Option<i32>,
    pub keep_caps: Vec<caps::Capability>,
    pub landlock: LandlockPlan,
    pub seccomp: BpfProgram,
    /// Filters installed before `seccomp` (a profile given whole is a
    /// stack of them: seccomp::profile_filters).
    pub seccomp_before: Vec<BpfProgram>,
    pub init_seccomp: BpfProgram,
    /// `type = "forking"`: what init does once the started process exits.
    pub forking: Option<Forking>,
    /// A notify service's NOTIFY_SOCKET, on which init asks, when the main
    /// process has ended, which process the service named its main since
    /// (MAINPID=; see `crate::mainpid`).
    pub main_by_notify: Option<CString>,
    /// `exec.condition` then `exec.start_pre` commands that run in the
    /// sandbox, in order, before the program (the privileged ones are the
    /// caller's to run first).
    pub start_pre: Vec<SandboxCommand>,
    /// `exec.start_post`, `exec.reload` and `exec.stop` commands that run
    /// in the sandbox: init forks a helper for them before the program (see
    /// `child::helper`), which the supervisor asks through `Spawned::tasks`.
    pub start_post: Vec<SandboxCommand>,
    pub reload: Vec<SandboxCommand>,
    pub stop: Vec<SandboxCommand>,
    /// How long one of those commands may run before it is killed and counts
    /// as failed (`service.ready_timeout`).
    pub command_timeout: std::time::Duration,
    /// How long an `exec.stop` command may run (`service.stop_timeout`).
    pub stop_timeout: std::time::Duration,
    /// The user-notification filter for the transparent broker, installed under
    /// the allowlist; `None` when the declaration grants nothing brokered.
    pub notify_seccomp: Option<BpfProgram>,
    /// A profile's notify rules (`SeccompProfile`, an OCI config's
    /// SCMP_ACT_NOTIFY): installed just before the service waits at its
    /// gate, the only time the launch can take its listener, which it hands
    /// to `SpawnOptions::agent` (a process has one listener: never with
    /// `notify_seccomp`).
    pub agent_seccomp: Option<BpfProgram>,
    /// `Extras::container_hooks`.
    pub container_hooks: ContainerHooks,
    /// That filter hands over sendmsg too (the network summary of a service
    /// with a broker), so its listener cannot be sent: the parent takes it
    /// out of the service as a learning run's (see crate::child).
    pub listener_taken: bool,
    /// The service inherits an explicit connection to its broker, placed right
    /// after the preopened fds and named by `CAPEXEC_BROKER_FD`.
    pub broker_channel: bool,
    /// Init binds a UDP socket on 127.0.0.1:53 in the service's network
    /// namespace and hands it to the broker (the stub resolver).
    pub dns_stub: bool,
    /// Directories created for the service before it starts, owned by its
    /// ids (`filesystem.runtime_directory` and friends), each with its
    /// declared mode, if any.
    pub directories: Vec<(PathBuf, Option<u32>)>,
    /// Who owns them (uid, gid), and the pid file: the service's user
    /// unless the declaration names another (`filesystem.directories_user`).
    pub directories_owner: (u32, u32),
    /// The pid file capexec makes for the service before it starts (empty,
    /// owned as the directories are), where the view lets it write that file
    /// alone (see `FsSpec::pid_file`).
    pub pid_file: Option<PathBuf>,
    /// The other files capexec makes so (`FsSpec::own_files`).
    pub own_files: Vec<PathBuf>,
    /// The Unix socket paths the broker binds for the service
    /// (`BrokerSpec::bind_unix`): a socket left there by an earlier run is
    /// removed before the start, since the service may not remove it.
    pub unix_sockets: Vec<PathBuf>,
    /// The Landlock layer shared with the broker, applied by the process the
    /// service is cloned from; `None` without a broker.
    pub broker_layer: Option<BrokerLayer>,
    /// A learning run (`capexec learn`): the service installs this filter,
    /// which hands every syscall to the recorder, instead of the allowlist and
    /// the broker's filter; Landlock is not applied.
    pub learn: Option<BpfProgram>,
    /// The network summary (`capexec run --net-summary`): a filter that
    /// hands the network calls to a recorder, which notes them and lets them
    /// run. Taken out of the service like a learning run's listener (see
    /// crate::child), so that sendmsg can be among them.
    pub watch: Option<BpfProgram>,
    /// Rootless, where no audit log reports refusals: `seccomp` with each
    /// refusal handed to a listener ([`seccomp::reporting`]), installed
    /// instead of it by the program's process, which sends the listener to
    /// the caller (`Spawned::refusals`) before it execs. The caller answers
    /// each call with the errno `seccomp` gives it and so knows what was
    /// refused (`capexec run`'s summary, `capexec exec`'s trail).
    pub report_refusals: Option<BpfProgram>,
    /// `report_refusals` holds the broker's filter too (`notify_seccomp`
    /// is then `None`: the kernel allows one listener): the listener is
    /// the broker's (`Spawned::listener`), which answers the refusals with
    /// `seccomp`'s errno and tells them
    /// (`capexec_broker::Broker::judge_refusals`).
    pub refusals_to_broker: bool,
    pub program: CString,
    pub argv: Vec<CString>,
    /// Complete environment; `LISTEN_PID=` (if present) is completed by the service
    /// process itself, since only it knows its pid inside the new pid namespace.
    pub env: Vec<CString>,
    pub listen_pid_slot: Option<usize>,
    /// Sockets handed to `capexec exec` by systemd's socket activation: the
    /// service gets them first, at 3, 4, ..., before the preopened fds.
    pub inherited: usize,
    pub preopens: Vec<Preopen>,
    /// Preopened files in append mode reach the service as the write end of a
    /// pipe, whose read end and the file go to its broker (`Spawned::appends`,
    /// see capexec-broker's `append`): the service never holds the file.
    pub append_pipes: bool,
    /// The service gets a `NOTIFY_SOCKET` inside its own view
    /// ([`NOTIFY_RELAY_DIR`]), whose other end init hands to the caller
    /// (`Spawned::notify`): `capexec exec` relays it to systemd's.
    pub notify_relay: bool,
    /// The service's /dev/log is a datagram socket of capexec's
    /// ([`SYSLOG_SOCKET`]), whose receiving end init hands to the caller
    /// (`Spawned::syslog`), which writes what arrives to the service's log:
    /// daemons that log through syslog(3) lose nothing (systemd gives every
    /// service journald's).
    pub syslog: bool,
    /// PR_SET_MDWE before exec: no writable and executable memory.
    pub mdwe: bool,
    /// SIGPIPE ignored at exec (`exec.ignore_sigpipe`), every other signal
    /// at its default.
    pub ignore_sigpipe: bool,
    /// The umask at exec (`exec.umask`); None keeps capexec's own.
    pub umask: Option<u32>,
    /// PR_SET_NO_NEW_PRIVS (always, but for `exec.allow_new_privileges`;
    /// without it the filters and Landlock are installed holding
    /// CAP_SYS_ADMIN, which the program's exec drops: see crate::creds).
    pub no_new_privs: bool,
}

/// One mount operation, in the order the child performs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountStep {
    /// A minimal /dev: tmpfs with a few device nodes bound from the host.
    Dev,
    /// /dev/log in a minimal /dev: a link to capexec's syslog socket
    /// ([`SYSLOG_SOCKET`]), which init binds later (`SetupPlan::syslog`).
    DevLog,
    /// A further place of capexec's syslog socket, `path` (a chroot's
    /// /dev/log, `filesystem.syslog_sockets`): its directory is capexec's
    /// socket directory ([`NOTIFY_RELAY_DIR`]) bound read-only, where init
    /// makes the socket later.
    SyslogAt {
        path: PathBuf,
    },
    /// A new /proc. `hidepid`: without a pid namespace of its own, the
    /// service's processes only (`hidepid=invisible`: a process shows when
    /// the service may ptrace it, and Landlock allows that only inside the
    /// service's domain), unless `filesystem.host_processes` asks for the
    /// host's. `host_processes`: it shows them, and is mounted read-only:
    /// writes to another process's files that no ptrace check guards
    /// (`oom_score_adj`, `coredump_filter`, `clear_refs`, `autogroup`) are
    /// decided by file ownership alone, and a root service owns root's.
    Proc {
        mode: ProcMode,
        hidepid: bool,
        host_processes: bool,
    },
    /// Bind the host path at the same place, or the host's `source` there
    /// (with a root: `None` is what the root has at `path`, bound again).
    /// `attrs` are MOUNT_ATTR_* to set.
    Bind {
        path: PathBuf,
        attrs: u64,
        optional: bool,
        source: Option<PathBuf>,
    },
    /// A filesystem of its own at `path` (capexec_decl's `Filesystem`),
    /// its options split into mount flags (MS_*) and the filesystem's data.
    Filesystem {
        path: PathBuf,
        fstype: String,
        source: String,
        flags: u64,
        data: String,
    },
    Tmpfs {
        path: PathBuf,
        mode: u32,
    },
    /// Make the device node (with the host's node bound there instead, in a
    /// user namespace, where mknod makes none), unusable unless it is.
    Device {
        node: DeviceNode,
        from_host: bool,
    },
    /// Set the propagation of the mount at `path` (MS_SHARED, MS_SLAVE,
    /// MS_PRIVATE or MS_UNBINDABLE, with MS_REC for its submounts too),
    /// right after it is made.
    Propagation {
        path: PathBuf,
        flags: u64,
    },
    /// An overlayfs at `path` over the host's `path`, its writes in the
    /// layer's upper directory (host paths both).
    Overlay {
        path: PathBuf,
        layer: capexec_decl::overlay::Layer,
    },
    /// A read-only tmpfs at `path` holding these files, readable by the
    /// service's user only (systemd's credentials).
    Secrets {
        path: PathBuf,
        files: Vec<(String, Vec<u8>)>,
    },
    /// A tmpfs at `path`, where init binds the notify relay's socket before
    /// making it read-only.
    NotifyDir {
        path: PathBuf,
    },
    /// Cover with an empty, mode-000, read-only file or directory.
    Mask {
        path: PathBuf,
        optional: bool,
    },
    /// A read-only file with these contents, written by capexec (resolv.conf
    /// naming the broker's stub resolver, a passwd with granted users only).
    File {
        path: PathBuf,
        contents: Vec<u8>,
    },
}

impl MountStep {
    /// Where in the view the step mounts.
    pub fn target(&self) -> &Path {
        match self {
            MountStep::Dev => Path::new("/dev"),
            MountStep::DevLog => Path::new("/dev/log"),
            MountStep::Proc { .. } => Path::new("/proc"),
            MountStep::Bind { path, .. }
            | MountStep::Filesystem { path, .. }
            | MountStep::Tmpfs { path, .. }
            | MountStep::Propagation { path, .. }
            | MountStep::Device { node: DeviceNode { path, .. }, .. }
            | MountStep::Overlay { path, .. }
            | MountStep::Secrets { path, .. }
            | MountStep::NotifyDir { path }
            | MountStep::SyslogAt { path }
            | MountStep::Mask { path, .. }
            | MountStep::File { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LandlockPlan {
    pub required: bool,
    pub paths: Vec<(PathBuf, FsAccess)>,
    pub bind_tcp: Vec<u16>,
    pub connect_tcp: Vec<u16>,
    pub scope_abstract_unix: bool,
    pub scope_signals: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsAccess {
    /// List directories only (the view's root).
    ListDir,
    ReadOnly,
    Execute,
    ReadWrite,
    /// Device nodes: read, write and device ioctls, nothing created.
    Device,
    /// /proc: read, and write to files that allow it (e.g. /proc/self/oom_score_adj).
    Proc,
    /// Everything but device nodes: an overlay (writes land in its layer),
    /// a read_write_exec path, a tmpfs mounted without noexec.
    ReadWriteExec,
}

/// Device nodes in a minimal /dev, bound from the host's /dev.
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Host-wide parts of a full /proc that are read-only (as systemd's
/// ProtectKernelTunables= makes them): the kernel's tunables, and what a
/// root service could otherwise change by owning the files alone, such as
/// every interrupt's CPU affinity in /proc/irq (no capability is asked). A
/// declaration's `read_write` entry of one makes it writable again
/// (irqbalance's /proc/irq).
pub const PROC_READ_ONLY: &[&str] = &["/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs", "/proc/mtrr"];

/// Files and directories of a full /proc that are masked (as Docker and systemd do).
pub const PROC_MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/kmsg",
    "/proc/sysrq-trigger",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/acpi",
    "/proc/scsi",
    "/proc/kallsyms",
];

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The variable naming the service's broker connection (capexec-client's
/// `wire::ENV_FD` reads it).
pub const BROKER_FD_ENV: &str = "CAPEXEC_BROKER_FD";

/// Where the relayed notify socket lives in the view: at the view's root, on
/// capexec's own tmpfs, so that no bind of a host directory can carry it (or
/// its mount point) onto the host.
pub const NOTIFY_RELAY_DIR: &str = "/.capexec";

/// The service's syslog socket, on the same tmpfs; /dev/log links to it.
pub const SYSLOG_SOCKET: &str = "/.capexec/log";

/// systemd's size limit for one credential; bigger files are refused rather
/// than silently cut.
const CREDENTIAL_MAX: u64 = 1 << 20;

/// `path` with its parent directory resolved on the host (its last component
/// as it is: a link there is recreated as a link). Unchanged when the parent
/// does not exist.
fn real_parent(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent).map_or_else(|_| path.to_path_buf(), |p| p.join(name)),
        _ => path.to_path_buf(),
    }
}

/// The commands of a list that run in the sandbox (the privileged ones are
/// the supervisor's to run on the host).
fn sandboxed(what: &str, list: &[capexec_decl::spec::Command]) -> Result<Vec<SandboxCommand>, LaunchError> {
    list.iter()
        .filter(|c| !c.privileged)
        .map(|c| {
            Ok(SandboxCommand { argv: c.argv.iter().map(|a| cstring(what, a)).collect::<Result<_, _>>()?, ignore_failure: c.ignore_failure, condition: false })
        })
        .collect()
}

/// init's list before the program: the sandboxed `exec.condition`
/// commands (marked so), then the sandboxed `exec.start_pre` ones.
fn conditions_then_start_pre(spec: &ServiceSpec) -> Result<Vec<SandboxCommand>, LaunchError> {
    let mut list = sandboxed("exec.condition", &spec.exec.condition)?;
    list.iter_mut().for_each(|c| c.condition = true);
    list.extend(sandboxed("exec.start_pre", &spec.exec.start_pre)?);
    Ok(list)
}

fn cstring(what: &str, s: &str) -> Result<CString, LaunchError> {
    CString::new(s).map_err(|_| LaunchError::Plan(format!("{what} contains a NUL byte")))
}

/// A command of `exec.start_pre`, `start_post` or `reload` that runs in the
/// sandbox: run as the service would be (same fds, filters, ids), waited
/// for; its failure ends the list unless ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCommand {
    pub argv: Vec<CString>,
    pub ignore_failure: bool,
    /// One of `exec.condition`, which come first in `start_pre`: an exit
    /// of 1 to 254 ends the start as not wanted (`Step::Condition`).
    pub condition: bool,
}

/// A program an OCI config's createContainer or startContainer hook runs,
/// in the container's namespaces during its setup: `argv` (its first is
/// argv[0]) and `env` only, killed after `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerHook {
    pub path: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub timeout: Option<std::time::Duration>,
}

/// An OCI container's hooks that run inside it, and the state they read on
/// their standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerHooks {
    /// createContainer: run by init once the view's mounts are made, while
    /// the host's root is still at /oldroot, chrooted to it (their paths are
    /// the host's, as before runc's pivot_root).
    pub create: Vec<ContainerHook>,
    /// startContainer: run by the program's process once it is let go past
    /// its gate, before anything else: their paths are the container's.
    pub start: Vec<ContainerHook>,
    /// The container's state as a JSON object without `pid` and `status`,
    /// which the child adds: its pid on the host it reads from the host's
    /// /proc while that is still in reach.
    pub state: String,
}

impl ContainerHooks {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.start.is_empty()
    }
}

/// A forking service, for init: when the started process exits with 0, init
/// reads `pid_file` (in the view) for the daemon's main process, sends
/// `READY=1` on `ready_socket` (the supervisor's NOTIFY_SOCKET, when there is
/// one; the service itself does not get it), and from then on stands for
/// the service until that process, or without a pid file every process,
/// has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forking {
    pub pid_file: Option<CString>,
    pub ready_socket: Option<CString>,
}

/// How the service's readiness notifications (sd_notify) reach whoever
/// supervises it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Notify {
    /// No `NOTIFY_SOCKET`.
    #[default]
    None,
    /// The daemon's socket: `dir` holds its datagram socket `notify` and is
    /// bound read-only at the same path (see `attach_notify_socket`).
    Socket { dir: PathBuf, watchdog: Option<std::time::Duration> },
    /// A socket of the service's own that init hands back (`capexec exec`
    /// relays it to systemd's; see `relay_notify`).
    Relay { watchdog_usec: Option<u64> },
}

/// What the service's broker adds to its sandbox, decided by the broker
/// crate from the declaration (`capexec_broker::contribution`), where its
/// policy is, and handed to the plan as this one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerPart {
    /// The syscalls the service's notify filter hands to the broker.
    pub notified: Vec<u32>,
    /// The service inherits an explicit connection to it (`CAPEXEC_BROKER_FD`).
    pub channel: bool,
    /// Init binds the stub resolver's socket on the service's loopback.
    pub dns_stub: bool,
    /// Files written into the view (resolv.conf, hosts, passwd, group).
    pub view_files: Vec<(PathBuf, String)>,
    /// The Landlock layer the broker shares with the service; `None` without a broker.
    pub layer: Option<BrokerLayer>,
    /// TCP ports of the service's bind grants, which its own sockets may
    /// bind in its own network namespace (see `service_bind_tcp`).
    pub own_bind_tcp: Vec<u16>,
}

/// The TCP ports of the Landlock layer a broker shares with its service (see
/// `landlock_rules::apply_broker_layer`): each set is what that access may
/// reach, `None` leaves the access type unhandled by the layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerLayer {
    pub bind_tcp: Option<std::collections::BTreeSet<u16>>,
    pub connect_tcp: Option<std::collections::BTreeSet<u16>>,
}

/// The kernel parameters set in the service's new namespaces: the declared
/// ones (an OCI config's), and in a network namespace of its own
/// `net.ipv4.ip_unprivileged_port_start = 0` (for IPv6 too), as Docker
/// sets it: any port may be bound there without CAP_NET_BIND_SERVICE,
/// since nothing of the host reaches that namespace. A root service's
/// config test (`nginx -t` in Debian's ExecStartPre=, which binds port 80
/// to test it, with no broker) needs no capability for it then; which
/// ports stay Landlock's to say (`own_bind_tcp`), and a host socket's are
/// bound by the broker.
fn sysctls(declared: &std::collections::BTreeMap<String, String>, own_net: bool) -> Vec<(PathBuf, String)> {
    const UNPRIVILEGED_PORTS: &str = "net.ipv4.ip_unprivileged_port_start";
    let mut all: Vec<(&str, &str)> = declared.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if own_net && !declared.contains_key(UNPRIVILEGED_PORTS) {
        all.push((UNPRIVILEGED_PORTS, "0"));
    }
    all.into_iter().map(|(k, v)| (Path::new("/proc/sys").join(k.replace('.', "/")), v.to_owned())).collect()
}

/// Whether commands run around the program (start_pre, start_post, reload, stop).
fn has_commands(e: &ExecSpec) -> bool {
    !(e.condition.is_empty() && e.start_pre.is_empty() && e.start_post.is_empty() && e.reload.is_empty() && e.stop.is_empty())
}

/// The TCP ports the service's own Landlock domain lets it bind: the
/// declaration's, and where commands run around the program (start_pre,
/// start_post, reload), the ports of its bind grants ([`BrokerPart::own_bind_tcp`]).
/// Those commands have no broker, and `nginx -t` binds the ports nginx will
/// listen on to test them: in the service's own network namespace, which
/// reaches nothing of the host. The program itself never has a TCP bind
/// run by the kernel: with bind grants every bind to an IP address goes to
/// the broker, which binds its own copy of the socket or refuses. Nor can
/// a command bind a host socket: the only ones it holds (preopened or
/// inherited listeners) are bound already, and keep their port.
///
/// In its own network namespace a service may also bind port 0, a port the
/// kernel picks, which only the service learns: its processes talking to
/// each other over loopback (squid and its helpers; the broker lets such a
/// bind go on). A host TCP socket it might hold unbound (a failed connect)
/// gains nothing by it: the network guard refuses a host socket any bind
/// outside the grants, and the broker any listen() on a socket it did not bind.
fn service_bind_tcp(spec: &ServiceSpec, broker: &BrokerPart) -> Vec<u16> {
    let grants = broker.own_bind_tcp.iter().filter(|_| has_commands(&spec.exec));
    let picked = (spec.namespaces.net == NetMode::None).then_some(0);
    spec.landlock.bind_tcp.iter().chain(grants).copied().chain(picked).collect::<std::collections::BTreeSet<u16>>().into_iter().collect()
}

/// What a launch adds to the declaration: everything a [`SetupPlan`] depends
/// on besides the spec. [`compose`] is a function of the two and nothing else,
/// and the plan it returns is the one that runs.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// capexec runs without root (the plan maps the caller's own ids).
    pub rootless: bool,
    /// capexec's own environment, consulted only for `pass_environment`.
    pub host_env: &'a [(String, String)],
    /// Sockets from systemd's socket activation, by name (LISTEN_FDNAMES):
    /// the service gets them first, at 3, 4, ...
    pub inherited: &'a [String],
    /// Descriptors passed on as they are, at 3, 4, ... (an OCI runtime's
    /// `--preserve-fds`), without socket activation's variables: given to
    /// the launch as `SpawnOptions::inherited`. Not with preopened or
    /// socket-activated ones, whose numbers the service is told.
    pub preserved: usize,
    pub notify: Notify,
    /// systemd's `$CREDENTIALS_DIRECTORY`, shown to the service read-only.
    pub credentials: Option<&'a Path>,
    /// The broker's part, when the service has one (capexec_broker::contribution).
    pub broker: BrokerPart,
    /// A learning run (`capexec learn`): the host's view, nothing denied,
    /// every syscall to the recorder.
    pub learning: bool,
    /// Hand the program's network calls that the filter allows (socket,
    /// bind, connect and the addressed sends) to a recorder, which lets them
    /// go on (`SpawnOptions::learner` gets its listener), or, for a service
    /// with a broker, to the broker: `capexec run --net-summary`.
    pub watch_network: bool,
    /// A process for a sandbox of this spec that runs already (an OCI
    /// container's `exec`): it enters that sandbox's namespaces, where the
    /// view is built, and is confined there as the service is (ids,
    /// capabilities, rlimits, Landlock, seccomp), without the setup that
    /// belongs to the sandbox (mounts, sysctls, hostname, directories,
    /// commands, the broker's side).
    pub join: bool,
    /// An OCI container's createContainer and startContainer hooks.
    pub container_hooks: ContainerHooks,
    /// The caller reads the service's syslog socket (`Spawned::syslog`):
    /// the service's /dev/log leads there (see `SetupPlan::syslog`).
    pub syslog: bool,
    /// The caller answers the program's refused calls and reports them
    /// (`SetupPlan::report_refusals`), where the plan allows: not with
    /// another listener (a summary's, an agent's), nor with a profile's
    /// filters, whose refusals would not come to it. With a broker, the
    /// broker answers and tells them (`SetupPlan::refusals_to_broker`).
    pub report_refusals: bool,
}

/// The calls `Extras::watch_network` hands over.
const WATCHED_NETWORK: [libc::c_long; 6] = [libc::SYS_socket, libc::SYS_connect, libc::SYS_bind, libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_sendmmsg];

/// Whether the service gets capexec's /dev/log: in the minimal /dev of a
/// view of the host's (an OCI container's /dev is its config's), unless
/// the service binds /dev/log itself (a syslog daemon's preopen).
fn gets_syslog(spec: &ServiceSpec) -> bool {
    use capexec_decl::spec::ListenAddr;
    let own = spec
        .preopen
        .iter()
        .any(|p| matches!(&p.kind, PreopenKind::Listen { address: ListenAddr::Unix(a) | ListenAddr::UnixDgram(a), .. } if a == Path::new("/dev/log")));
    spec.filesystem.dev == DevMode::Minimal && spec.filesystem.root.is_none() && !own
}

/// The plan for `spec` launched with `extras`: built once, here.
pub fn compose(spec: &ServiceSpec, extras: &Extras) -> Result<SetupPlan, LaunchError> {
    let watched = WATCHED_NETWORK.map(|n| n as u32);
    let mut broker = std::borrow::Cow::Borrowed(&extras.broker);
    if extras.watch_network && spec.has_broker() {
        // The kernel lets a filter chain have one listener (a second is
        // EBUSY): the broker's filter hands it these too, and it tells the
        // summary of them (capexec_broker::Broker::watch_network).
        let b = broker.to_mut();
        b.notified.extend(watched);
        b.notified.sort_unstable();
        b.notified.dedup();
    }
    let e = &spec.exec;
    if e.allow_new_privileges && has_commands(e) {
        // Their processes drop CAP_SYS_ADMIN before their filters, which
        // without no_new_privs need it.
        return Err(LaunchError::Plan("commands around the program (start_pre, start_post, reload) need no_new_privs".into()));
    }
    if extras.preserved > 0 && (!extras.inherited.is_empty() || !spec.preopen.is_empty()) {
        return Err(LaunchError::Plan("descriptors passed on as they are (--preserve-fds) cannot go with preopened or socket-activated ones".into()));
    }
    let mut p = plan_inheriting(spec, extras.rootless, extras.host_env, extras.inherited, extras.preserved, &broker)?;
    match extras.watch_network {
        true if spec.has_broker() => p.listener_taken = true,
        true => p.watch = Some(seccomp::notify_filter(&watched)),
        false => {}
    }
    match &extras.notify {
        Notify::None => {}
        Notify::Socket { dir, watchdog } => p.attach_notify_socket(dir, *watchdog)?,
        Notify::Relay { watchdog_usec } => p.relay_notify(*watchdog_usec)?,
    }
    if extras.syslog && gets_syslog(spec) {
        p.relay_syslog(&spec.filesystem.syslog_sockets);
    }
    if spec.service.kind == capexec_decl::spec::ServiceType::Forking {
        // The readiness of a forking service is init's to tell.
        let ready_socket = p.take_env("NOTIFY_SOCKET");
        let pid_file = spec.service.pid_file.as_ref().map(|f| cstring("service.pid_file", &f.to_string_lossy())).transpose()?;
        p.forking = Some(Forking { pid_file, ready_socket });
        p.init_seccomp = seccomp::init_filter(true, false)?;
    }
    if spec.service.kind == capexec_decl::spec::ServiceType::Notify {
        p.main_by_notify = p.env_value("NOTIFY_SOCKET");
        if p.main_by_notify.is_some() {
            p.init_seccomp = seccomp::init_filter(false, true)?;
        }
    }
    if let Some(dir) = extras.credentials {
        p.attach_credentials(dir)?;
    }
    if spec.exec.fakeroot {
        p.attach_fakeroot_config()?;
    }
    p.attach_files(extras.broker.view_files.clone());
    p.container_hooks = extras.container_hooks.clone();
    if extras.report_refusals && !extras.learning && !extras.join {
        p.report_refusals = p.reporting_filter(&broker.notified);
        if p.report_refusals.is_some() && p.notify_seccomp.take().is_some() {
            p.refusals_to_broker = true;
        }
    }
    if extras.join {
        if extras.learning || extras.watch_network {
            return Err(LaunchError::Plan("a process joining a running sandbox is neither learned nor watched".into()));
        }
        return p.into_joining();
    }
    Ok(if extras.learning { p.into_learning(!extras.rootless, spec.capability_bound.as_deref()) } else { p })
}

/// The declaration's part of [`compose`] (and the broker's), for a service that may also get sockets from systemd's socket
/// activation, named `inherited` (LISTEN_FDNAMES): they come first, so
/// LISTEN_FDS, LISTEN_FDNAMES, the per-socket variables and
/// `CAPEXEC_BROKER_FD` count them.
fn plan_inheriting(
    spec: &ServiceSpec,
    rootless: bool,
    host_env: &[(String, String)],
    inherited: &[String],
    preserved: usize,
    broker: &BrokerPart,
) -> Result<SetupPlan, LaunchError> {
    // As root, the caller puts the network guard on the service's cgroup.
    if rootless {
        crate::netguard::require_guard(spec)?;
    }
    let ns = &spec.namespaces;
    let mut flags = libc::CLONE_NEWNS;
    for (on, f) in [
        (ns.user, libc::CLONE_NEWUSER),
        (ns.pid, libc::CLONE_NEWPID),
        (ns.net == NetMode::None, libc::CLONE_NEWNET),
        (ns.ipc, libc::CLONE_NEWIPC),
        (ns.uts, libc::CLONE_NEWUTS),
        (ns.cgroup, libc::CLONE_NEWCGROUP),
    ] {
        if on {
            flags |= f;
        }
    }
    // A namespace is made or entered, not both; entering one of another
    // user namespace would need a user namespace of the service's to own it.
    for j in &ns.join {
        let new = match j.kind {
            capexec_decl::spec::JoinKind::Net => flags & libc::CLONE_NEWNET,
            capexec_decl::spec::JoinKind::Ipc => flags & libc::CLONE_NEWIPC,
            capexec_decl::spec::JoinKind::Uts => flags & libc::CLONE_NEWUTS,
            capexec_decl::spec::JoinKind::Pid => flags & libc::CLONE_NEWPID,
            capexec_decl::spec::JoinKind::Cgroup => flags & libc::CLONE_NEWCGROUP,
            // The view's own namespace is always made (see `foreign_mount_ns`).
            capexec_decl::spec::JoinKind::Mount => 0,
            capexec_decl::spec::JoinKind::User => flags & libc::CLONE_NEWUSER,
        } != 0;
        if new || ns.user || ns.join.iter().filter(|o| o.kind == j.kind).count() > 1 {
            return Err(LaunchError::Plan(format!(
                "the {:?} namespace at {} is entered, so it cannot also be made (nor entered twice, nor with a user namespace)",
                j.kind,
                j.path.display()
            )));
        }
    }
    let joined_user = ns.join.iter().any(|j| j.kind == capexec_decl::spec::JoinKind::User);
    if joined_user && ns.id_maps.is_none() {
        return Err(LaunchError::Plan("a user namespace entered by path needs its id maps (namespaces.id_maps) to know the service's ids on the host".into()));
    }
    if joined_user && ns.join.iter().any(|j| j.kind == capexec_decl::spec::JoinKind::Mount) {
        return Err(LaunchError::Plan(
            "a mount namespace to live in cannot be entered from a user namespace entered by path (it would need to own it): give the service a mount namespace of its own".into(),
        ));
    }
    let id = &spec.exec.user;
    // The service's ids on the host: given maps say which they are.
    let outside = match &ns.id_maps {
        Some(m) if ns.user || joined_user => {
            let unmapped = |what: &str, v: u32| LaunchError::Plan(format!("the service's {what} {v} is not in the user namespace's {what} map"));
            let uid = capexec_decl::spec::IdMaps::outside(&m.uid, id.uid).ok_or_else(|| unmapped("uid", id.uid))?;
            let gid = capexec_decl::spec::IdMaps::outside(&m.gid, id.gid).ok_or_else(|| unmapped("gid", id.gid))?;
            if let Some(g) = id.groups.iter().find(|g| capexec_decl::spec::IdMaps::outside(&m.gid, **g).is_none()) {
                return Err(unmapped("gid", *g));
            }
            (uid, gid)
        }
        Some(_) => return Err(LaunchError::Plan("id maps are given without a user namespace".into())),
        None => (id.uid, id.gid),
    };

    // Mounts: /dev and /proc first (a fresh proc must be mounted while the host's
    // /proc is still attached, see mounts.rs), then the view sorted by path so a
    // parent is always mounted before anything inside it.
    let mut mounts = Vec::new();
    // /dev and /proc come first, unless the root filesystem orders its mounts.
    let mount_order = spec.filesystem.root.as_ref().map(|r| r.mount_order.as_slice()).unwrap_or_default();
    let mut first = Vec::new();
    if spec.filesystem.dev == DevMode::Minimal {
        first.push(MountStep::Dev);
    }
    if spec.filesystem.proc != ProcMode::None {
        let hidepid = !spec.namespaces.pid && !spec.filesystem.host_processes;
        if hidepid && std::iter::once(&id.gid).chain(&id.groups).any(|g| *g == crate::mounts::PROC_GID) {
            return Err(LaunchError::Plan(format!("gid {} is the group that sees every process in /proc: not the service's", crate::mounts::PROC_GID)));
        }
        first.push(MountStep::Proc { mode: spec.filesystem.proc, hidepid, host_processes: spec.filesystem.host_processes });
    }
    // Preopened directories by their real path: a symlink in the declared
    // path is resolved on the host (as opening it there always did), so that
    // the view holds the directory itself and the copy is made of it.
    let preopens: Vec<Preopen> = spec
        .preopen
        .iter()
        .map(|p| match &p.kind {
            PreopenKind::Directory { path } => {
                Preopen { name: p.name.clone(), kind: PreopenKind::Directory { path: std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()) } }
            }
            _ => p.clone(),
        })
        .collect();
    // A preopened directory is also in the view (read-only where nothing
    // declared covers it): the service gets a detached copy of it as the view
    // shows it, masks and nested mounts included (child.rs,
    // detach_preopened_dirs). Its rights are the same either way: Landlock
    // grants the directory read-only, by fd or by path.
    let preopened: Vec<Mount> = preopens
        .iter()
        .filter_map(|p| match &p.kind {
            // Not where a host bind shows it already: outside every mount, or
            // under a tmpfs (such as the private /tmp). Validation refused
            // preopened directories the view masks.
            PreopenKind::Directory { path } if spec.filesystem.covering(path).is_none_or(|m| m.kind == MountKind::Tmpfs) => {
                Some(Mount { path: path.clone(), kind: MountKind::ReadOnly, optional: false, source: None, propagation: None, layer_of: None })
            }
            _ => None,
        })
        .collect();
    // Declared paths by their host parent's real path: a link on the way
    // (/var/run -> /run) would otherwise be followed in the view, where it
    // may lead onto a read-only bind, and the source, looked up under the
    // old root, to the view's own copy instead of the host's directory.
    let mut declared: Vec<Mount> = Vec::new();
    let mut seen = HashSet::new();
    let rooted = spec.filesystem.root.as_ref();
    for m in &spec.filesystem.mounts {
        // In a root filesystem of its own a path is the view's, not the host's.
        let path = if rooted.is_some() { m.path.clone() } else { real_parent(&m.path) };
        // Two declared paths may now be one (/lib/modules is /usr/lib/modules).
        if seen.insert(path.clone()) {
            declared.push(Mount { path, ..m.clone() });
        }
    }
    let mut view: Vec<&Mount> = declared.iter().chain(&preopened).collect();
    view.sort_by(|a, b| a.path.cmp(&b.path));
    let mut ll_paths = vec![(
        PathBuf::from("/"),
        match rooted {
            None => FsAccess::ListDir,
            Some(r) if r.read_only => FsAccess::Execute,
            // A writable root filesystem: its files are the container's own.
            Some(_) => FsAccess::ReadWriteExec,
        },
    )];
    let mut as_owner = Vec::new();
    // Each step with the path it is at and the access Landlock gives there,
    // sorted by path below so that parents are mounted first.
    let mut entries: Vec<(PathBuf, MountStep, Option<FsAccess>)> = Vec::new();
    if mount_order.is_empty() {
        mounts.append(&mut first);
    } else {
        // Their Landlock rules are added below.
        entries.extend(first.into_iter().map(|m| (m.target().to_path_buf(), m, None)));
    }
    for m in view {
        // By the host path the view binds (see `real_parent`).
        if spec.filesystem.as_owner.iter().any(|p| real_parent(p) == m.path) {
            as_owner.push(m.path.clone());
        }
        let nosuid_nodev = crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV;
        let (step, access) = match m.kind {
            MountKind::ReadOnly => (
                MountStep::Bind {
                    path: m.path.clone(),
                    attrs: nosuid_nodev | crate::sys::MOUNT_ATTR_RDONLY | crate::sys::MOUNT_ATTR_NOEXEC,
                    optional: m.optional,
                    source: m.source.clone(),
                },
                Some(FsAccess::ReadOnly),
            ),
            MountKind::Executable => (
                MountStep::Bind { path: m.path.clone(), attrs: nosuid_nodev | crate::sys::MOUNT_ATTR_RDONLY, optional: m.optional, source: m.source.clone() },
                Some(FsAccess::Execute),
            ),
            // No rule of its own: only the view's listing right on / reaches it.
            MountKind::Visible => (
                MountStep::Bind {
                    path: m.path.clone(),
                    attrs: nosuid_nodev | crate::sys::MOUNT_ATTR_RDONLY | crate::sys::MOUNT_ATTR_NOEXEC,
                    optional: m.optional,
                    source: m.source.clone(),
                },
                None,
            ),
            MountKind::ReadWrite => (
                MountStep::Bind { path: m.path.clone(), attrs: nosuid_nodev | crate::sys::MOUNT_ATTR_NOEXEC, optional: m.optional, source: m.source.clone() },
                Some(FsAccess::ReadWrite),
            ),
            MountKind::ReadWriteExec => {
                (MountStep::Bind { path: m.path.clone(), attrs: nosuid_nodev, optional: m.optional, source: m.source.clone() }, Some(FsAccess::ReadWriteExec))
            }
            MountKind::Tmpfs => {
                let mode = if m.path == Path::new("/tmp") { 0o1777 } else { 0o755 };
                (MountStep::Tmpfs { path: m.path.clone(), mode }, Some(FsAccess::ReadWrite))
            }
            MountKind::Inaccessible => (MountStep::Mask { path: m.path.clone(), optional: m.optional }, None),
            MountKind::Overlay => {
                let dir = spec
                    .filesystem
                    .overlay
                    .as_deref()
                    .ok_or_else(|| LaunchError::Plan(format!("{} is an overlay without a layer directory", m.path.display())))?;
                (
                    MountStep::Overlay { path: m.path.clone(), layer: capexec_decl::overlay::Layer::of(dir, &m.path, m.layer_of.as_deref()) },
                    Some(FsAccess::ReadWriteExec),
                )
            }
        };
        // A compatibility link gives no access of its own: a rule on it would
        // be a rule on all of /run.
        let access = access.filter(|_| !capexec_decl::validate::COMPAT_LINKS.iter().any(|l| m.path == Path::new(l)));
        entries.push((m.path.clone(), step, access));
        if let Some(p) = m.propagation {
            entries.push((m.path.clone(), MountStep::Propagation { path: m.path.clone(), flags: propagation_flags(p) }, None));
        }
    }
    for f in &spec.filesystem.filesystems {
        // Never setuid, whatever the options say: with no_new_privs off (an
        // OCI config's choice), a setuid or file-capability program there
        // would be a way to more privileges. Never device nodes but on a
        // devpts: the view's /dev and linux.devices are the devices there are.
        let (flags, data) = mount_options(&f.options);
        let flags = flags | libc::MS_NOSUID | if f.fstype == "devpts" { 0 } else { libc::MS_NODEV };
        let writable = flags & libc::MS_RDONLY == 0;
        let access = match f.fstype.as_str() {
            "proc" => FsAccess::Proc,
            "devpts" => FsAccess::Device,
            "tmpfs" | "mqueue" if writable && flags & libc::MS_NOEXEC == 0 => FsAccess::ReadWriteExec,
            "tmpfs" | "mqueue" | "cgroup2" if writable => FsAccess::ReadWrite,
            _ => FsAccess::ReadOnly,
        };
        let step = MountStep::Filesystem { path: f.path.clone(), fstype: f.fstype.clone(), source: f.source.clone(), flags, data };
        entries.push((f.path.clone(), step, Some(access)));
        if let Some(p) = Propagation::of_options(&f.options) {
            entries.push((f.path.clone(), MountStep::Propagation { path: f.path.clone(), flags: propagation_flags(p) }, None));
        }
    }
    for d in &spec.filesystem.devices {
        let step = MountStep::Device { node: d.clone(), from_host: ns.user };
        entries.push((d.path.clone(), step, d.usable.then_some(FsAccess::Device)));
    }
    // Stable: what is at one path keeps its declared order.
    let rank = |p: &Path| mount_order.iter().position(|o| o == p).unwrap_or(usize::MAX);
    entries.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
    for (path, step, access) in entries {
        mounts.push(step);
        if let Some(a) = access {
            ll_paths.push((path, a));
        }
    }
    if spec.filesystem.dev == DevMode::Minimal {
        ll_paths.push((PathBuf::from("/dev"), FsAccess::Device));
        // POSIX shared memory and semaphores (shm_open, sem_open) live here.
        ll_paths.push((PathBuf::from("/dev/shm"), FsAccess::ReadWrite));
    }
    if spec.filesystem.proc != ProcMode::None {
        ll_paths.push((PathBuf::from("/proc"), FsAccess::Proc));
    }

    let rlimits = spec
        .rlimits
        .iter()
        .map(|(name, r)| {
            let inf = libc::RLIM_INFINITY;
            (name.raw(), r.soft.unwrap_or(inf), r.hard.unwrap_or(inf))
        })
        .collect();

    let keep_caps = spec.capabilities.to_vec();

    // Environment: a clean one, never capexec's own (it may hold secrets).
    let mut env: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    if let Some(n) = &id.user_name {
        env.push(("USER".into(), n.clone()));
        env.push(("LOGNAME".into(), n.clone()));
    }
    // A declared user's home from its passwd entry, as systemd sets it (the
    // directory is in the view only where the declaration puts it).
    env.push(("HOME".into(), id.home.as_ref().map_or_else(|| "/".into(), |h| h.display().to_string())));
    for k in &spec.exec.pass_environment {
        if let Some((_, v)) = host_env.iter().find(|(hk, _)| hk == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    for (k, v) in &spec.exec.environment {
        env.push((k.clone(), v.clone()));
    }
    let mut listen_pid_slot = None;
    let first = 3 + preserved + inherited.len();
    if !spec.preopen.is_empty() || !inherited.is_empty() {
        env.push(("LISTEN_FDS".into(), (inherited.len() + spec.preopen.len()).to_string()));
        let names: Vec<&str> = inherited.iter().map(String::as_str).chain(spec.preopen.iter().map(|p| p.name.as_str())).collect();
        env.push(("LISTEN_FDNAMES".into(), names.join(":")));
        // Per-socket variables, e.g. NGINX="3;4;".
        let mut extra: Vec<(String, String)> = Vec::new();
        for (i, p) in spec.preopen.iter().enumerate() {
            if let PreopenKind::Listen { env: Some(var), .. } = &p.kind {
                let fd = format!("{};", first + i);
                match extra.iter_mut().find(|(k, _)| k == var) {
                    Some((_, v)) => v.push_str(&fd),
                    None => extra.push((var.clone(), fd)),
                }
            }
        }
        env.extend(extra);
        env.push(("LISTEN_PID".into(), String::new()));
    }
    let broker_channel = broker.channel;
    if broker_channel {
        // Right after the inherited and preopened fds (which start at 3).
        env.push((BROKER_FD_ENV.into(), (first + spec.preopen.len()).to_string()));
    }
    // Later entries win, as in a shell: keep the last value of each name.
    let mut dedup: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        dedup.retain(|(dk, _)| *dk != k);
        dedup.push((k, v));
    }
    let mut env_c = Vec::new();
    for (i, (k, v)) in dedup.iter().enumerate() {
        if k == "LISTEN_PID" {
            listen_pid_slot = Some(i);
        }
        env_c.push(cstring("environment", &format!("{k}={v}"))?);
    }

    let argv = spec.exec.argv.iter().map(|a| cstring("exec.argv", a)).collect::<Result<Vec<_>, _>>()?;
    let (mut profile, agent_seccomp) = match &spec.seccomp.profile {
        Some(p) => {
            let f = seccomp::profile_filters(p)?;
            (f.stack, f.notify)
        }
        None => (Vec::new(), None),
    };
    let foreign_mount_ns = ns.join.iter().any(|j| j.kind == capexec_decl::spec::JoinKind::Mount);
    if foreign_mount_ns {
        profile.push(seccomp::keep_view_filter());
    }
    if agent_seccomp.is_some() && !broker.notified.is_empty() {
        return Err(LaunchError::Plan(
            "the seccomp profile hands calls to an agent and the service has a broker: a process has one seccomp listener, so one of them must go".into(),
        ));
    }
    let program = argv.first().cloned().ok_or_else(|| LaunchError::Plan("exec.argv is empty".into()))?;
    // Started in a user namespace that denies setgroups (rootless podman runs
    // its OCI runtime in one), capexec cannot set groups: none, or an error.
    let setgroups_denied = !rootless && std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if setgroups_denied && !spec.exec.fakeroot && !id.groups.is_empty() {
        return Err(LaunchError::Plan(format!(
            "supplementary groups {:?}: capexec runs in a user namespace that denies setgroups (/proc/self/setgroups), so it cannot give them",
            id.groups
        )));
    }

    Ok(SetupPlan {
        name: spec.name.clone(),
        clone_flags: flags,
        join: 0,
        enter: ns
            .join
            .iter()
            .map(|j| {
                let flag = match j.kind {
                    capexec_decl::spec::JoinKind::Net => libc::CLONE_NEWNET,
                    capexec_decl::spec::JoinKind::Ipc => libc::CLONE_NEWIPC,
                    capexec_decl::spec::JoinKind::Uts => libc::CLONE_NEWUTS,
                    capexec_decl::spec::JoinKind::Pid => libc::CLONE_NEWPID,
                    capexec_decl::spec::JoinKind::Cgroup => libc::CLONE_NEWCGROUP,
                    capexec_decl::spec::JoinKind::Mount => libc::CLONE_NEWNS,
                    capexec_decl::spec::JoinKind::User => libc::CLONE_NEWUSER,
                };
                (flag, j.path.clone())
            })
            .collect(),
        foreign_mount_ns,
        user_ns: ns.user,
        pid_ns: ns.pid,
        loopback: ns.net == NetMode::None,
        uid_map: match (&ns.id_maps, spec.exec.fakeroot) {
            (Some(m), _) => map_lines(&m.uid),
            (None, true) => format!("0 {} 1\n", id.uid),
            (None, false) => format!("{0} {0} 1\n", id.uid),
        },
        // A private user namespace as root maps the supplementary groups too,
        // so that group-owned files stay the group's (rootless there are none).
        gid_map: match (&ns.id_maps, spec.exec.fakeroot) {
            (Some(m), _) => map_lines(&m.gid),
            (None, true) => format!("0 {} 1\n", id.gid),
            (None, false) => std::iter::once(id.gid).chain(id.groups.iter().copied()).map(|g| format!("{g} {g} 1\n")).collect(),
        },
        deny_setgroups: rootless || setgroups_denied,
        uid: outside.0,
        gid: outside.1,
        inside: match (&ns.id_maps, spec.exec.fakeroot) {
            (Some(_), _) => Some((id.uid, id.gid)),
            (None, fakeroot) => fakeroot.then_some((0, 0)),
        },
        // A fake root's namespace maps its one gid only.
        groups: if spec.exec.fakeroot { Vec::new() } else { id.groups.clone() },
        mounts,
        root: spec.filesystem.root.as_ref().map(|r| (r.path.clone(), r.read_only)),
        sysctls: sysctls(&ns.sysctls, flags & libc::CLONE_NEWNET != 0),
        as_owner,
        copy_up: spec.filesystem.copy_up.clone(),
        workdir: cstring("working directory", &spec.exec.working_directory.to_string_lossy())?,
        hostname: if ns.uts || ns.join.iter().any(|j| j.kind == capexec_decl::spec::JoinKind::Uts) { Some(cstring("hostname", &ns.hostname)?) } else { None },
        rlimits,
        oom_score_adj: spec.exec.oom_score_adjust,
        nice: spec.exec.nice,
        keep_caps,
        landlock: LandlockPlan {
            required: spec.landlock.mode == Enforcement::Required,
            paths: ll_paths,
            bind_tcp: service_bind_tcp(spec, broker),
            connect_tcp: spec.landlock.connect_tcp.iter().copied().collect(),
            scope_abstract_unix: spec.landlock.scope_abstract_unix,
            scope_signals: spec.landlock.scope_signals,
        },
        seccomp: match &spec.seccomp.profile {
            Some(_) => profile.pop().expect("profile_filters returns the base at least"),
            None => seccomp::service_filter(&spec.seccomp)?,
        },
        seccomp_before: profile,
        init_seccomp: seccomp::init_filter(false, false)?,
        forking: None,
        main_by_notify: None,
        start_pre: conditions_then_start_pre(spec)?,
        start_post: sandboxed("exec.start_post", &spec.exec.start_post)?,
        reload: sandboxed("exec.reload", &spec.exec.reload)?,
        stop: sandboxed("exec.stop", &spec.exec.stop)?,
        command_timeout: spec.service.ready_timeout,
        stop_timeout: spec.service.stop_timeout,
        notify_seccomp: Some(&broker.notified).filter(|n| !n.is_empty()).map(|n| seccomp::notify_filter(n)),
        agent_seccomp,
        container_hooks: ContainerHooks::default(),
        listener_taken: false,
        broker_channel,
        dns_stub: broker.dns_stub,
        broker_layer: broker.layer.clone(),
        directories: spec.filesystem.directories.iter().map(|d| (d.path.clone(), d.mode)).collect(),
        directories_owner: spec.filesystem.directories_owner.unwrap_or((id.uid, id.gid)),
        pid_file: spec.filesystem.pid_file.clone(),
        own_files: spec.filesystem.own_files.clone(),
        unix_sockets: spec.broker.bind_unix.clone(),
        learn: None,
        watch: None,
        report_refusals: None,
        refusals_to_broker: false,
        program,
        argv,
        env: env_c,
        listen_pid_slot,
        inherited: preserved + inherited.len(),
        preopens,
        // With such a preopen the service has a broker (ServiceSpec::has_broker).
        append_pipes: true,
        notify_relay: false,
        syslog: false,
        mdwe: spec.exec.memory_deny_write_execute,
        ignore_sigpipe: spec.exec.ignore_sigpipe,
        umask: spec.exec.umask,
        no_new_privs: !spec.exec.allow_new_privileges,
    })
}

/// Top-level host entries a learning run does not bind: they get their own
/// mounts (/dev, /proc) or are nobody's business (/lost+found, /oldroot).
const LEARN_SKIP: &[&str] = &["dev", "proc", "lost+found", "oldroot"];

/// The host directories a learning view must rebuild instead of binding: the
/// deepest existing ancestor of each mount point that is missing on the host.
/// A mount point cannot be created inside a bound host directory (the service's
/// user namespace may not write there, and as real root it would change the
/// host), so such a directory becomes a tmpfs holding binds of its entries,
/// where the missing mount point can be made.
fn shadow_dirs<'a>(root: &Path, points: impl Iterator<Item = &'a Path>) -> BTreeSet<PathBuf> {
    let mut shadows = BTreeSet::new();
    for point in points {
        if under(root, point).symlink_metadata().is_ok() {
            continue;
        }
        // The view's root is capexec's own tmpfs already.
        if let Some(a) = point.ancestors().skip(1).find(|a| under(root, a).is_dir()).filter(|a| *a != Path::new("/")) {
            shadows.insert(a.to_path_buf());
        }
    }
    shadows
}

/// `maps` as /proc/PID/uid_map takes them, a line each.
fn map_lines(maps: &[capexec_decl::spec::IdMap]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count)).collect()
}

/// The mount(2) flags that set propagation `p`.
fn propagation_flags(p: Propagation) -> u64 {
    use Propagation::*;
    let (kind, rec) = match p {
        Shared => (libc::MS_SHARED, false),
        Rshared => (libc::MS_SHARED, true),
        Slave => (libc::MS_SLAVE, false),
        Rslave => (libc::MS_SLAVE, true),
        Private => (libc::MS_PRIVATE, false),
        Rprivate => (libc::MS_PRIVATE, true),
        Unbindable => (libc::MS_UNBINDABLE, false),
        Runbindable => (libc::MS_UNBINDABLE, true),
    };
    kind | if rec { libc::MS_REC } else { 0 }
}

/// mount(8)-style options as mount flags (MS_*) and the filesystem's own
/// data. Propagation words are left to [`Propagation::of_options`]: set
/// once the mount is made, in a view that is a slave of the host's mounts,
/// so that nothing mounted in it reaches the host.
pub fn mount_options(options: &[String]) -> (u64, String) {
    let mut flags = 0;
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "shared" | "rshared" | "private" | "rprivate" | "slave" | "rslave" | "unbindable" | "runbindable" | "defaults" => (0, 0),
            other => {
                data.push(other);
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data.join(","))
}

/// The view's absolute `path` as seen under the host root `root` (`/` in use,
/// a temporary directory in the tests).
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Binds every entry of the host directory `dir` (seen under `root`) at its
/// place, except that a directory on the way to a shadow becomes a tmpfs
/// whose entries are bound in turn.
fn learning_view(root: &Path, shadows: &BTreeSet<PathBuf>, out: &mut Vec<MountStep>) {
    fn walk(root: &Path, dir: &Path, shadows: &BTreeSet<PathBuf>, out: &mut Vec<MountStep>) {
        let host = under(root, dir);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(host).map(|d| d.flatten().map(|e| dir.join(e.file_name())).collect()).unwrap_or_default();
        if dir == Path::new("/") {
            entries.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !LEARN_SKIP.contains(&n)));
        }
        entries.sort();
        for path in entries {
            let is_dir = under(root, &path).symlink_metadata().is_ok_and(|m| m.is_dir());
            if is_dir && shadows.iter().any(|s| s.starts_with(&path)) {
                out.push(MountStep::Tmpfs { path: path.clone(), mode: 0o755 });
                walk(root, &path, shadows, out);
            } else {
                // nosuid as every mount of the service's view is: a file's
                // capabilities then grant nothing, and an exec of one whose
                // capabilities the bounding set lacks works as in the run
                // (ping's cap_net_raw made it fail with EPERM).
                out.push(MountStep::Bind { path, attrs: crate::sys::MOUNT_ATTR_NOSUID, optional: true, source: None });
            }
        }
    }
    walk(root, Path::new("/"), shadows, out);
}

impl SetupPlan {
    /// Whether init ends the service's leftovers itself (`child::Leftovers`):
    /// without a pid namespace, created or joined, whose end would.
    pub(crate) fn init_ends_leftovers(&self) -> bool {
        !self.pid_ns && self.join & libc::CLONE_NEWPID == 0
    }

    /// The whole plan as text, one fact a line, in a fixed order: what golden
    /// tests compare (a change to what a launch does shows up as a diff). The
    /// seccomp programs appear as their length and an FNV-1a hash.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let lossy = |c: &CString| c.to_string_lossy().into_owned();
        let prog = |p: &[seccompiler::sock_filter]| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for i in p {
                for b in i.code.to_le_bytes().into_iter().chain([i.jt, i.jf]).chain(i.k.to_le_bytes()) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
            format!("{} instructions, fnv {h:016x}", p.len())
        };
        let _ = writeln!(o, "name: {}", self.name);
        let flags: Vec<&str> = [
            (libc::CLONE_NEWNS, "mount"),
            (libc::CLONE_NEWUSER, "user"),
            (libc::CLONE_NEWPID, "pid"),
            (libc::CLONE_NEWNET, "net"),
            (libc::CLONE_NEWIPC, "ipc"),
            (libc::CLONE_NEWUTS, "uts"),
            (libc::CLONE_NEWCGROUP, "cgroup"),
        ]
        .into_iter()
        .filter(|(f, _)| self.clone_flags & f != 0)
        .map(|(_, n)| n)
        .collect();
        let _ = writeln!(o, "namespaces: {}", flags.join(" "));
        let _ = writeln!(o, "ids: {}:{}, groups {:?}", self.uid, self.gid, self.groups);
        let _ = writeln!(o, "uid_map: {}", self.uid_map.trim());
        let _ = writeln!(o, "gid_map: {}", self.gid_map.trim().replace('\n', "; "));
        let _ = writeln!(o, "setgroups denied: {}, loopback: {}, hostname: {:?}", self.deny_setgroups, self.loopback, self.hostname.as_ref().map(lossy));
        for (path, value) in &self.sysctls {
            let _ = writeln!(o, "sysctl: {} = {value}", path.display());
        }
        let _ = writeln!(o, "workdir: {}", lossy(&self.workdir));
        let _ = writeln!(o, "mounts:");
        for m in &self.mounts {
            match m {
                MountStep::File { path, contents } => {
                    let _ = writeln!(o, "  File {} {:?}", path.display(), String::from_utf8_lossy(contents));
                }
                MountStep::Secrets { path, files } => {
                    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
                    let _ = writeln!(o, "  Secrets {} {names:?}", path.display());
                }
                other => {
                    let _ = writeln!(o, "  {other:?}");
                }
            }
        }
        let ll = &self.landlock;
        let _ = writeln!(o, "landlock: required {}, scopes abstract_unix {} signals {}", ll.required, ll.scope_abstract_unix, ll.scope_signals);
        for (p, a) in &ll.paths {
            let _ = writeln!(o, "  {} {a:?}", p.display());
        }
        let _ = writeln!(o, "  bind_tcp {:?} connect_tcp {:?}", ll.bind_tcp, ll.connect_tcp);
        if let Some(b) = &self.broker_layer {
            let _ = writeln!(o, "landlock shared with the broker: bind_tcp {:?} connect_tcp {:?}", b.bind_tcp, b.connect_tcp);
        }
        let _ = writeln!(o, "seccomp: {}", prog(&self.seccomp));
        let _ = writeln!(o, "init seccomp: {}", prog(&self.init_seccomp));
        for (list, c) in [("start_pre", &self.start_pre), ("start_post", &self.start_post), ("reload", &self.reload), ("stop", &self.stop)]
            .iter()
            .flat_map(|(l, cs)| cs.iter().map(move |c| (*l, c)))
        {
            let argv: Vec<String> = c.argv.iter().map(lossy).collect();
            let list = if c.condition { "condition" } else { list };
            let _ = writeln!(o, "{list}: {argv:?}{}", if c.ignore_failure { " (failure ignored)" } else { "" });
        }
        if let Some(f) = &self.forking {
            let _ = writeln!(o, "forking: pid file {:?}, ready socket {:?}", f.pid_file.as_ref().map(lossy), f.ready_socket.as_ref().map(lossy));
        }
        if let Some(q) = &self.main_by_notify {
            let _ = writeln!(o, "main process by MAINPID=, asked on {:?}", lossy(q));
        }
        let _ = writeln!(o, "notify seccomp: {}", self.notify_seccomp.as_deref().map_or("none".into(), prog));
        if let Some(a) = &self.agent_seccomp {
            let _ = writeln!(o, "agent seccomp: {}", prog(a));
        }
        if let Some(r) = &self.report_refusals {
            let whose = if self.refusals_to_broker { " (with the broker's, its listener)" } else { "" };
            let _ = writeln!(o, "reporting seccomp{whose}: {}", prog(r));
        }
        let _ = writeln!(o, "learn seccomp: {}", self.learn.as_deref().map_or("none".into(), prog));
        let _ = writeln!(o, "rlimits: {:?}", self.rlimits);
        let _ = writeln!(o, "capabilities: {:?}", self.keep_caps);
        let _ = writeln!(o, "program: {}", lossy(&self.program));
        let _ = writeln!(o, "argv: {:?}", self.argv.iter().map(lossy).collect::<Vec<_>>());
        let _ = writeln!(o, "env:");
        for e in &self.env {
            let _ = writeln!(o, "  {}", lossy(e));
        }
        let _ = writeln!(o, "listen_pid slot: {:?}, inherited: {}", self.listen_pid_slot, self.inherited);
        for (d, mode) in &self.directories {
            match mode {
                Some(m) => writeln!(o, "directory: {} mode {m:04o}", d.display()),
                None => writeln!(o, "directory: {}", d.display()),
            }
            .ok();
        }
        if let Some(p) = &self.pid_file {
            let _ = writeln!(o, "pid file made: {}", p.display());
        }
        for p in &self.own_files {
            let _ = writeln!(o, "file made: {}", p.display());
        }
        for p in &self.preopens {
            let _ = writeln!(o, "preopen: {p:?}");
        }
        let _ = writeln!(
            o,
            "broker channel: {}, dns stub: {}, append pipes: {}, notify relay: {}, mdwe: {}",
            self.broker_channel, self.dns_stub, self.append_pipes, self.notify_relay, self.mdwe
        );
        o
    }

    /// Turns the plan into a learning run's (`capexec learn`): the same
    /// namespaces, ids, environment and preopened resources, but nothing is
    /// denied, so that the recorder sees what the program does rather than
    /// what the declaration lets it do. The view is the host's (every top-level
    /// directory bound at its place, writable where the host allows it, with the
    /// declared /dev, /proc and tmpfs directories); no Landlock, no broker; the seccomp
    /// filter hands every syscall to the recorder.
    /// `as_root`: capexec runs as root. A service declared as root then learns
    /// with every capability capexec has, as systemd would start it: a daemon that drops
    /// to its own user cannot get that far without them, and what its calls
    /// used is what the miner proposes to keep. Only those of `bound`, if the
    /// declaration has one: what the unit's CapabilityBoundingSet= gave it,
    /// so that the run neither gets nor mines what its packager took away.
    /// The plan of a process joining a running sandbox of the same spec
    /// (`Extras::join`): what makes the sandbox is done and stays its own.
    fn into_joining(mut self) -> Result<SetupPlan, LaunchError> {
        // The running sandbox's ids are mapped already; a new map would be
        // a new namespace.
        self.join = self.clone_flags | self.enter.iter().fold(0, |f, (flag, _)| f | flag);
        self.clone_flags = 0;
        self.enter.clear();
        // The joining init stays in the caller's pid namespace (only what it
        // forks enters the sandbox's): it is no namespace's init, and -1 is
        // not its namespace's processes but the host's.
        self.pid_ns = false;
        self.user_ns = false;
        self.mounts.clear();
        self.root = None;
        self.as_owner.clear();
        self.copy_up.clear();
        self.sysctls.clear();
        self.hostname = None;
        self.loopback = false;
        self.directories.clear();
        self.pid_file = None;
        self.own_files.clear();
        self.start_pre.clear();
        self.start_post.clear();
        self.reload.clear();
        self.stop.clear();
        self.forking = None;
        self.main_by_notify = None;
        self.container_hooks = ContainerHooks::default();
        self.init_seccomp = seccomp::init_filter(false, false)?;
        // The sandbox's broker answers its own service; a joining process
        // has Landlock and seccomp without the brokered calls.
        self.notify_seccomp = None;
        self.listener_taken = false;
        self.broker_channel = false;
        self.dns_stub = false;
        self.broker_layer = None;
        self.notify_relay = false;
        Ok(self)
    }

    fn into_learning(mut self, as_root: bool, bound: Option<&[caps::Capability]>) -> SetupPlan {
        if as_root && self.uid == 0 {
            // Every capability capexec itself has (root may lack some: no
            // CAP_SYS_RESOURCE on some hosts), within the bound.
            let within = |c: &caps::Capability| bound.is_none_or(|b| b.contains(c));
            self.keep_caps = caps::read(None, caps::CapSet::Permitted).unwrap_or_default().into_iter().filter(within).collect();
            self.keep_caps.sort_by_key(|c| c.index());
        }
        // The run writes the host's pid file where the program names it.
        self.pid_file = None;
        self.own_files.clear();
        // The commands before the program run and are recorded as it is
        // (they run in its sandbox later, and what they prepare the program
        // needs: unbound's root.key, made by `unbound-helper
        // root_trust_anchor_update`); those after it and on reload too, when
        // `capexec learn` asks the task helper for them (launch::learn_tasks).
        // A full /proc for a pid-only one: what the program does once a file
        // there opened is recorded too (libcap-ng's fstatfs of the
        // cap_last_cap it read), and the miner proposes `full` only for the
        // reads a pid-only /proc would refuse and the program would miss.
        let mut mounts: Vec<MountStep> = self
            .mounts
            .iter()
            .filter(|m| matches!(m, MountStep::Dev | MountStep::DevLog | MountStep::Proc { .. }))
            .map(|m| match m {
                MountStep::Proc { mode: ProcMode::PidOnly, hidepid, host_processes } => {
                    MountStep::Proc { mode: ProcMode::Full, hidepid: *hidepid, host_processes: *host_processes }
                }
                m => m.clone(),
            })
            .collect();
        // Every device a declaration may add that the host has, so that a
        // run that opens one (OpenVPN's /dev/net/tun) is recorded doing it,
        // and the miner proposes `filesystem.devices`.
        if mounts.contains(&MountStep::Dev) {
            let user_ns = self.user_ns;
            let nodes = capexec_decl::validate::DEVICES.iter().filter_map(|d| capexec_decl::validate::host_device(Path::new(d)).ok().flatten());
            mounts.extend(nodes.map(|node| MountStep::Device { node, from_host: user_ns }));
        }
        // The declared tmpfs directories stay the service's own (a pid file
        // directory that does not exist on the host, say), mounted on top; not
        // the private /tmp, whose host files the recorder must see being read.
        // So does the notify relay: `capexec learn` waits for READY=1.
        let tmpfs: Vec<MountStep> = self
            .mounts
            .iter()
            .filter(|m| {
                matches!(m, MountStep::Tmpfs { path, .. } if path != Path::new("/tmp")) || matches!(m, MountStep::NotifyDir { .. } | MountStep::SyslogAt { .. })
            })
            .cloned()
            .collect();
        let points = tmpfs.iter().filter_map(|m| match m {
            MountStep::Tmpfs { path, .. } | MountStep::NotifyDir { path } => Some(path.as_path()),
            MountStep::SyslogAt { path } => path.parent(),
            _ => None,
        });
        learning_view(Path::new("/"), &shadow_dirs(Path::new("/"), points), &mut mounts);
        mounts.extend(tmpfs);
        self.mounts = mounts;
        self.landlock = LandlockPlan {
            required: false,
            paths: Vec::new(),
            bind_tcp: Vec::new(),
            connect_tcp: Vec::new(),
            scope_abstract_unix: false,
            scope_signals: false,
        };
        self.notify_seccomp = None;
        self.agent_seccomp = None;
        self.listener_taken = false;
        self.dns_stub = false;
        self.broker_layer = None;
        self.append_pipes = false;
        if self.broker_channel {
            self.broker_channel = false;
            self.env.retain(|e| !e.to_bytes().starts_with(BROKER_FD_ENV.as_bytes()));
        }
        self.learn = Some(seccomp::learn_filter());
        self.watch = None;
        self
    }

    /// The filter that reports refusals (see `report_refusals`), where this
    /// plan can have it: no other listener in the chain (the kernel allows
    /// one), no filter before it whose refusals would not reach it, and the
    /// calls the program's process makes between installing it and exec
    /// (sending and closing the listener, exec, a setup error's report and
    /// exit) passed
    /// by the filter itself: refused, they would wait for a listener nobody
    /// holds yet.
    ///
    /// With a broker (`brokered`: the calls its filter hands it), the one
    /// program is both filters, installed instead of both, and its listener
    /// is the broker's (`refusals_to_broker`).
    fn reporting_filter(&self, brokered: &[u32]) -> Option<BpfProgram> {
        let others = self.listener_taken || self.watch.is_some() || self.learn.is_some() || self.agent_seccomp.is_some();
        if others || !self.seccomp_before.is_empty() {
            return None;
        }
        let brokered = match self.notify_seccomp {
            Some(_) => brokered,
            None => &[],
        };
        let passes = |nr: libc::c_long, args: [u64; 6]| {
            seccomp::answer(&self.seccomp, nr as u32, args) == seccomp::SECCOMP_RET_ALLOW && !brokered.contains(&(nr as u32))
        };
        let sends = passes(libc::SYS_sendmsg, [0, 0, libc::MSG_NOSIGNAL as u64, 0, 0, 0]);
        let rest = [libc::SYS_close, libc::SYS_execve, libc::SYS_write, libc::SYS_exit_group].into_iter().all(|nr| passes(nr, [0; 6]));
        (sends && rest).then(|| seccomp::reporting(&self.seccomp, brokered)).flatten()
    }

    /// Puts generated read-only files into the view (after everything else is
    /// mounted, so nothing covers them), readable under Landlock.
    fn attach_files(&mut self, files: Vec<(PathBuf, String)>) {
        for (path, contents) in files {
            if !self.landlock.paths.iter().any(|(p, a)| path.starts_with(p) && *a != FsAccess::ListDir) {
                self.landlock.paths.push((path.clone(), FsAccess::ReadOnly));
            }
            self.mounts.push(MountStep::File { path, contents: contents.into_bytes() });
        }
    }

    /// Gives the service a `NOTIFY_SOCKET` (and `WATCHDOG_USEC`): `dir`, which
    /// holds the daemon's datagram socket `notify` and nothing else, is bound
    /// read-only at the same path. A directory rather than the socket itself, so
    /// the daemon can re-create the socket without touching the service's mounts.
    fn attach_notify_socket(&mut self, dir: &Path, watchdog: Option<std::time::Duration>) -> Result<(), LaunchError> {
        let attrs = crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV | crate::sys::MOUNT_ATTR_RDONLY | crate::sys::MOUNT_ATTR_NOEXEC;
        // Appended after the sorted view: its parents (if the view has them) are
        // mounted first, and nothing mounted later can cover it.
        self.mounts.push(MountStep::Bind { path: dir.to_path_buf(), attrs, optional: false, source: None });
        self.landlock.paths.push((dir.to_path_buf(), FsAccess::ReadOnly));
        self.set_env("NOTIFY_SOCKET", &dir.join("notify").display().to_string())?;
        if let Some(w) = watchdog {
            self.set_env("WATCHDOG_USEC", &w.as_micros().to_string())?;
        }
        Ok(())
    }

    /// Gives the service a `NOTIFY_SOCKET` of its own, `NOTIFY_RELAY_DIR/notify`:
    /// init binds it in the service's view and hands the other end to the
    /// caller, so nothing is created on the host and only the service can
    /// reach it. `WATCHDOG_USEC` is passed on as given.
    fn relay_notify(&mut self, watchdog_usec: Option<u64>) -> Result<(), LaunchError> {
        let dir = self.own_socket_dir();
        self.set_env("NOTIFY_SOCKET", &dir.join("notify").display().to_string())?;
        if let Some(w) = watchdog_usec {
            self.set_env("WATCHDOG_USEC", &w.to_string())?;
        }
        self.notify_relay = true;
        Ok(())
    }

    /// capexec's tmpfs for the sockets init binds in the view (notify relay,
    /// syslog), made once.
    fn own_socket_dir(&mut self) -> PathBuf {
        let dir = PathBuf::from(NOTIFY_RELAY_DIR);
        if !self.mounts.iter().any(|m| matches!(m, MountStep::NotifyDir { .. })) {
            self.mounts.push(MountStep::NotifyDir { path: dir.clone() });
            self.landlock.paths.push((dir.clone(), FsAccess::ReadOnly));
        }
        dir
    }

    /// /dev/log, and the chroots' of `elsewhere`, lead to capexec's syslog socket.
    fn relay_syslog(&mut self, elsewhere: &[PathBuf]) {
        self.own_socket_dir();
        self.mounts.push(MountStep::DevLog);
        for path in elsewhere {
            self.mounts.push(MountStep::SyslogAt { path: path.clone() });
            if let Some(dir) = path.parent() {
                self.landlock.paths.push((dir.to_path_buf(), FsAccess::ReadOnly));
            }
        }
        self.syslog = true;
    }

    /// Shows the files of `dir` (systemd's `$CREDENTIALS_DIRECTORY`) to the
    /// service at the same path, read-only and readable by its user only.
    /// They are copied now, while capexec can read them: systemd makes them
    /// readable by the unit's user, which is capexec's (root), not the service's.
    fn attach_credentials(&mut self, dir: &Path) -> Result<(), LaunchError> {
        let io = |op: &'static str, p: &Path, e: std::io::Error| LaunchError::io(op, format!("credential {}", p.display()), e);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
            let entry = entry.map_err(|e| io("list", dir, e))?;
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| io("stat", &path, e))?;
            if !meta.is_file() {
                continue;
            }
            if meta.len() > CREDENTIAL_MAX {
                return Err(LaunchError::Plan(format!("credential {} is larger than systemd's 1 MiB limit", path.display())));
            }
            let name = entry.file_name().into_string().map_err(|_| LaunchError::Plan(format!("credential {}: name is not UTF-8", path.display())))?;
            files.push((name, std::fs::read(&path).map_err(|e| io("read", &path, e))?));
        }
        files.sort();
        self.mounts.push(MountStep::Secrets { path: dir.to_path_buf(), files });
        self.landlock.paths.push((dir.to_path_buf(), FsAccess::ReadOnly));
        self.set_env("CREDENTIALS_DIRECTORY", &dir.display().to_string())
    }

    /// A fake root's namespace maps one id: apt-get, which drops to its
    /// `_apt` user to fetch (setgroups, seteuid 42), fails there. Told
    /// through APT_CONFIG (read before apt's own configuration, which may
    /// still override it) to fetch as root, from a read-only file only the
    /// run sees: nothing lands in the layers or on the host.
    fn attach_fakeroot_config(&mut self) -> Result<(), LaunchError> {
        let dir = Path::new(FAKEROOT_CONFIG_DIR);
        self.mounts.push(MountStep::Secrets { path: dir.to_path_buf(), files: vec![("apt.conf".into(), b"APT::Sandbox::User \"root\";\n".to_vec())] });
        self.landlock.paths.push((dir.to_path_buf(), FsAccess::ReadOnly));
        self.set_env("APT_CONFIG", &dir.join("apt.conf").display().to_string())
    }

    /// Sets one variable of the service's environment, replacing a value the
    /// declaration may have given it (capexec's wins: it describes what
    /// capexec set up).
    /// The value of `key` in the service's environment.
    fn env_value(&self, key: &str) -> Option<CString> {
        let prefix = format!("{key}=");
        let e = self.env.iter().find(|e| e.to_bytes().starts_with(prefix.as_bytes()))?;
        CString::new(&e.to_bytes()[prefix.len()..]).ok()
    }

    /// Removes `key` from the service's environment, returning its value.
    fn take_env(&mut self, key: &str) -> Option<CString> {
        let prefix = format!("{key}=");
        let i = self.env.iter().position(|e| e.to_bytes().starts_with(prefix.as_bytes()))?;
        let value = self.env.remove(i).to_bytes()[prefix.len()..].to_vec();
        self.listen_pid_slot = self.env.iter().position(|e| e.to_bytes().starts_with(b"LISTEN_PID="));
        CString::new(value).ok()
    }

    fn set_env(&mut self, key: &str, value: &str) -> Result<(), LaunchError> {
        let prefix = format!("{key}=");
        self.env.retain(|e| !e.to_bytes().starts_with(prefix.as_bytes()));
        self.env.push(cstring(key, &format!("{key}={value}"))?);
        self.listen_pid_slot = self.env.iter().position(|e| e.to_bytes().starts_with(b"LISTEN_PID="));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake host root (one per test: they run in parallel): /run holds a
    /// directory and a file, /usr and /var/lib directories.
    fn host(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("capexec-plan-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["run/lock", "usr/lib", "var/lib/dpkg"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("run/utmp"), "").unwrap();
        root
    }

    fn binds(steps: &[MountStep]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                MountStep::Bind { path, .. } => format!("bind {}", path.display()),
                MountStep::Overlay { path, layer } => format!("overlay {} (layer {})", path.display(), layer.upper().display()),
                MountStep::Tmpfs { path, .. } => format!("tmpfs {}", path.display()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn spec_of(body: &str) -> ServiceSpec {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("capexec-plan-spec-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.svc");
        std::fs::write(&p, body).unwrap();
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::load_unit(p.to_str().unwrap(), &[], &ctx).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_dir_all(dir).unwrap();
        spec
    }

    fn bind_of<'a>(p: &'a SetupPlan, path: &str) -> Option<(usize, &'a MountStep)> {
        p.mounts.iter().enumerate().find(|(_, m)| matches!(m, MountStep::Bind { path: b, .. } if b == Path::new(path)))
    }

    // A root filesystem of its own (capexec-oci): its paths are the view's
    // (no host path resolved), filesystems go in by path among the binds,
    // Landlock's rule on / follows the root's writability.
    #[test]
    fn a_root_filesystem_of_its_own_is_planned_as_given() {
        use capexec_decl::spec::{Filesystem, Mount, MountKind, RootFs};
        let mut spec = spec_of("[exec]\nargv = [\"/bin/true\"]\n[filesystem]\nsystem = false\nprivate_tmp = false\n");
        spec.filesystem.root = Some(RootFs { path: "/srv/bundle/rootfs".into(), read_only: false, mount_order: Vec::new() });
        (spec.filesystem.dev, spec.filesystem.proc) = (DevMode::None, ProcMode::None);
        // /var/run is a link on the host: in a root of its own it is not followed.
        spec.filesystem.mounts.push(Mount {
            path: "/var/run/x".into(),
            kind: MountKind::ReadOnly,
            optional: false,
            source: Some("/etc".into()),
            propagation: None,
            layer_of: None,
        });
        spec.filesystem.mounts.push(Mount {
            path: "/sys/a".into(),
            kind: MountKind::ReadWrite,
            optional: false,
            source: Some("/srv".into()),
            propagation: None,
            layer_of: None,
        });
        let fsys = |path: &str, options: &[&str]| Filesystem {
            path: path.into(),
            fstype: "tmpfs".into(),
            source: "tmpfs".into(),
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        spec.filesystem.filesystems = vec![fsys("/sys", &["ro", "nosuid", "size=1k"]), fsys("/run", &["noexec", "rprivate"])];
        let p = compose(&spec, &Extras::default()).unwrap();
        assert_eq!(p.root, Some(("/srv/bundle/rootfs".into(), false)));
        let order = |p: &SetupPlan| -> Vec<String> {
            p.mounts
                .iter()
                .map(|m| match m {
                    MountStep::Bind { path, source, .. } => format!("bind {} from {:?}", path.display(), source),
                    MountStep::Filesystem { path, flags, data, .. } => format!("fs {} {flags:#x} {data}", path.display()),
                    MountStep::Propagation { path, flags } => format!("propagation {} {flags:#x}", path.display()),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        let ro_nosuid = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        let run =
            [format!("fs /run {:#x} ", libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV), format!("propagation /run {:#x}", libc::MS_PRIVATE | libc::MS_REC)];
        let sys = [format!("fs /sys {ro_nosuid:#x} size=1k"), "bind /sys/a from Some(\"/srv\")".to_owned()];
        let var = ["bind /var/run/x from Some(\"/etc\")".to_owned()];
        assert_eq!(order(&p), [&run[..], &sys, &var].concat(), "by path, parents first, each propagation right after its mount");
        // An OCI config's order is kept; what it does not list follows.
        spec.filesystem.root.as_mut().unwrap().mount_order = vec!["/var/run/x".into(), "/sys".into(), "/sys/a".into()];
        assert_eq!(order(&compose(&spec, &Extras::default()).unwrap()), [&var[..], &sys, &run].concat());
        spec.filesystem.root.as_mut().unwrap().mount_order.clear();
        assert_eq!(p.landlock.paths[0], (PathBuf::from("/"), FsAccess::ReadWriteExec));
        assert!(p.landlock.paths.contains(&(PathBuf::from("/sys"), FsAccess::ReadOnly)));
        assert!(p.landlock.paths.contains(&(PathBuf::from("/run"), FsAccess::ReadWrite)));
        spec.filesystem.root = Some(RootFs { path: "/srv/bundle/rootfs".into(), read_only: true, mount_order: Vec::new() });
        assert_eq!(compose(&spec, &Extras::default()).unwrap().landlock.paths[0], (PathBuf::from("/"), FsAccess::Execute));
        assert_eq!(
            mount_options(&["rw".into(), "ro".into(), "exec".into(), "noexec".into(), "mode=755".into(), "gid=5".into()]),
            (libc::MS_RDONLY | libc::MS_NOEXEC, "mode=755,gid=5".into())
        );
    }

    #[test]
    fn preopened_directories_are_in_the_view_as_the_declaration_shows_them() {
        let spec = spec_of(
            "[exec]\nargv = [\"/bin/true\"]\n[filesystem]\nread_write = [\"/srv/out\"]\nread_only = [\"/srv/out/conf\"]\n\
             [[preopen.directory]]\npath = \"/srv/data\"\n[[preopen.directory]]\npath = \"/srv/out\"\n[[preopen.directory]]\npath = \"/tmp/x\"\n",
        );
        let p = compose(&spec, &Extras::default()).unwrap();
        // Outside every mount: bound read-only at its own path.
        let (_, data) = bind_of(&p, "/srv/data").expect("/srv/data is in the view");
        let MountStep::Bind { attrs, .. } = data else { unreachable!() };
        assert_ne!(attrs & crate::sys::MOUNT_ATTR_RDONLY, 0, "read-only");
        // Under the private /tmp: bound on top of it.
        let tmp = p.mounts.iter().position(|m| matches!(m, MountStep::Tmpfs { path, .. } if path == Path::new("/tmp"))).unwrap();
        let (x, _) = bind_of(&p, "/tmp/x").expect("/tmp/x is in the view");
        assert!(x > tmp, "mounted after the tmpfs that would cover it");
        // Already covered by a declared path: nothing added, the nested
        // read-only path stays after it.
        assert_eq!(p.mounts.iter().filter(|m| matches!(m, MountStep::Bind { path, .. } if path.starts_with("/srv/out"))).count(), 2);
        assert!(bind_of(&p, "/srv/out").unwrap().0 < bind_of(&p, "/srv/out/conf").unwrap().0);
    }

    /// As root: the host's user namespace unless asked; a private one maps
    /// the supplementary groups too, and setgroups sets them either way.
    #[test]
    fn identity_as_root_and_its_maps() {
        let body = "[exec]\nargv = [\"/bin/true\"]\nuser = \"nobody\"\nsupplementary_groups = [4, 7]\n";
        let p = compose(&spec_of(body), &Extras::default()).unwrap();
        assert!(!p.user_ns && p.clone_flags & libc::CLONE_NEWUSER == 0);
        assert_eq!((p.uid, p.gid, &p.groups[..], p.deny_setgroups), (65534, 65534, &[4, 7][..], false));
        let p = compose(&spec_of(&format!("{body}[namespaces]\nuser = true\n")), &Extras::default()).unwrap();
        assert!(p.user_ns && p.clone_flags & libc::CLONE_NEWUSER != 0);
        assert_eq!(p.uid_map, "65534 65534 1\n");
        assert_eq!(p.gid_map, "65534 65534 1\n4 4 1\n7 7 1\n");
        // Maps given (an OCI config's): the declared ids are inside them.
        use capexec_decl::spec::{IdMap, IdMaps};
        let mut spec = spec_of(&format!("{body}[namespaces]\nuser = true\n"));
        let m = |inside, outside, count| IdMap { inside, outside, count };
        spec.namespaces.id_maps = Some(IdMaps { uid: vec![m(0, 100000, 65536)], gid: vec![m(0, 200000, 10), m(65534, 300000, 1)] });
        let p = compose(&spec, &Extras::default()).unwrap();
        assert_eq!((p.uid_map.as_str(), p.gid_map.as_str()), ("0 100000 65536\n", "0 200000 10\n65534 300000 1\n"));
        assert_eq!((p.inside, p.uid, p.gid, &p.groups[..]), (Some((65534, 65534)), 165534, 300000, &[4, 7][..]));
        spec.exec.user.groups.push(11);
        let e = compose(&spec, &Extras::default()).unwrap_err().to_string();
        assert!(e.contains("gid 11 is not in the user namespace's gid map"), "{e}");
    }

    #[test]
    fn a_preopened_directory_named_through_a_symlink_is_its_target() {
        let root = host("symlink");
        std::os::unix::fs::symlink(root.join("usr/lib"), root.join("link")).unwrap();
        let spec = spec_of(&format!("[exec]\nargv = [\"/bin/true\"]\n[[preopen.directory]]\npath = \"{}\"\n", root.join("link").display()));
        let p = compose(&spec, &Extras::default()).unwrap();
        let real = root.join("usr/lib");
        assert!(bind_of(&p, real.to_str().unwrap()).is_some(), "the target is in the view: {:?}", p.mounts);
        assert!(matches!(&p.preopens[0].kind, PreopenKind::Directory { path } if *path == real), "{:?}", p.preopens);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn learning_view_rebuilds_only_the_parents_of_missing_mount_points() {
        let root = host("learn");
        let points = [Path::new("/run/nginx"), Path::new("/var/lib/nginx/body"), Path::new("/usr/lib"), Path::new("/srv/new")];
        let shadows = shadow_dirs(&root, points.into_iter());
        // /usr/lib exists (mounted on in place); /srv is missing at the top,
        // where the view's own root tmpfs takes the mount point.
        assert_eq!(shadows, BTreeSet::from([PathBuf::from("/run"), PathBuf::from("/var/lib")]));
        let mut out = Vec::new();
        learning_view(&root, &shadows, &mut out);
        assert_eq!(
            binds(&out),
            ["tmpfs /run", "bind /run/lock", "bind /run/utmp", "bind /usr", "tmpfs /var", "tmpfs /var/lib", "bind /var/lib/dpkg"],
            "every host entry is still in the view, and nothing is created in a host directory"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}

#[cfg(test)]
mod joining {
    use super::*;
    use capexec_decl::spec::{JoinKind, JoinNs};

    fn spec() -> ServiceSpec {
        let text = "[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"none\"\nuser = false\n";
        capexec_decl::from_text("t", text, &capexec_decl::Context::current()).unwrap()
    }

    #[test]
    fn an_entered_namespace_is_opened_not_made_and_never_both() {
        let mut s = spec();
        s.namespaces.net = NetMode::Host;
        s.namespaces.join = vec![JoinNs { kind: JoinKind::Net, path: "/run/netns/n".into() }];
        let p = compose(&s, &Extras::default()).unwrap();
        assert_eq!((p.clone_flags & libc::CLONE_NEWNET, p.enter.clone()), (0, vec![(libc::CLONE_NEWNET, PathBuf::from("/run/netns/n"))]));
        assert!(!p.loopback, "the entered namespace is set up by whoever made it");
        // A process joining the sandbox enters that namespace with the rest.
        let j = compose(&s, &Extras { join: true, ..Default::default() }).unwrap();
        assert!(j.enter.is_empty() && j.join & libc::CLONE_NEWNET != 0 && j.clone_flags == 0 && j.mounts.is_empty());
        s.namespaces.net = NetMode::None;
        let e = compose(&s, &Extras::default()).unwrap_err().to_string();
        assert!(e.contains("cannot also be made"), "{e}");
    }
}
