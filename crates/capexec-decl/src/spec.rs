//! The validated declaration: typed, every default resolved, every path absolute
//! and normalised. Everything downstream (planning, launching, `capexec check`)
//! works from this and never looks at TOML again.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub description: String,
    /// The unit file followed by its drop-ins, in merge order.
    pub sources: Vec<PathBuf>,
    pub exec: ExecSpec,
    pub filesystem: FsSpec,
    pub namespaces: NsSpec,
    /// In fd order: the first is fd 3.
    pub preopen: Vec<Preopen>,
    pub landlock: LandlockSpec,
    pub seccomp: SeccompSpec,
    /// Capabilities kept after exec (effective, permitted, inheritable, ambient). Empty by default.
    pub capabilities: Vec<caps::Capability>,
    /// `capabilities.bound`: the most `capabilities` may hold, and what a
    /// learning run of a root service starts with (systemd's
    /// CapabilityBoundingSet=). None: every capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability_bound: Option<Vec<caps::Capability>>,
    pub rlimits: BTreeMap<Resource, Rlimit>,
    /// How `capexec daemon` supervises the service.
    pub service: Supervision,
    /// Resource limits enforced through the service's cgroup (by the daemon).
    pub limits: Limits,
    /// What the service may ask its broker for later (`[broker]`); empty: no broker.
    #[serde(default)]
    pub broker: crate::grants::BrokerSpec,
    /// Things the user should know that are not errors (shown by check, exec, run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl ServiceSpec {
    /// Whether the service's `listen()` goes to its broker. On a TCP socket
    /// with no port, listen binds a random port on every address, and neither
    /// Landlock nor a cgroup BPF hook sees that bind. It matters for host
    /// sockets: under `net = "host"` all of the service's (unless
    /// `landlock.bind_tcp` grants port 0, any port), under `net = "none"` those
    /// the broker binds or connects for it (a connection disconnected with
    /// `connect(AF_UNSPEC)` loses its port).
    pub fn brokers_listen(&self) -> bool {
        match self.namespaces.net {
            NetMode::Host => !self.landlock.bind_tcp.contains(&0),
            NetMode::None => !self.broker.connect.is_empty() || !self.broker.bind.is_empty(),
        }
    }

    /// Whether the service runs with a broker process: for its `[broker]`
    /// grants, to answer its `listen()` ([`Self::brokers_listen`]), or to
    /// write its preopened files in append mode (capexec-broker's `append`).
    pub fn has_broker(&self) -> bool {
        self.brokers_listen() || self.brokers_besides_listen()
    }

    /// Whether the service needs a broker for something other than its
    /// `listen()`: grants, or preopened files written in append mode.
    pub fn brokers_besides_listen(&self) -> bool {
        self.brokers_net() || !self.broker.is_empty_but_net() || self.preopen.iter().any(|p| matches!(p.kind, PreopenKind::File { mode: FileMode::Append, .. }))
    }

    /// Whether the broker binds and connects for the service's
    /// `[broker.net]` address grants: under `net = "none"`, where it makes
    /// the host's sockets. Under `net = "host"` the service's sockets are
    /// the host's already, and the network guard (capexec-sandbox's
    /// netguard) holds the same grants on them in the kernel, with no broker.
    pub fn brokers_net(&self) -> bool {
        self.namespaces.net == NetMode::None && self.broker.has_net_grants()
    }

    /// Whether the service has a channel to its broker for explicit
    /// requests (capexec-client): for any grant the broker answers.
    pub fn brokers_requests(&self) -> bool {
        self.brokers_net() || !self.broker.is_empty_but_net()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    pub user: Identity,
    pub environment: BTreeMap<String, String>,
    /// Variables copied from capexec's own environment when set there.
    pub pass_environment: Vec<String>,
    pub working_directory: PathBuf,
    /// No memory that is both writable and executable, ever (PR_SET_MDWE):
    /// systemd's MemoryDenyWriteExecute=. Off by default: JITs need it.
    #[serde(default)]
    pub memory_deny_write_execute: bool,
    /// The program and its commands start with SIGPIPE ignored (systemd's
    /// IgnoreSIGPIPE=, on by default there): a write to a closed pipe or
    /// socket fails with EPIPE instead of killing the writer. Off by
    /// default: every signal starts at its default, as after a login.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_sigpipe: bool,
    /// The file mode creation mask the program and its commands start with
    /// (systemd's UMask=); without it, the one capexec was started with.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "octal_mode")]
    pub umask: Option<u32>,
    /// The program is uid and gid 0 inside its user namespace, mapped to
    /// `user`'s ids outside (with an overlaid view: package installs into
    /// the layers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fakeroot: bool,
    /// The program's /proc/PID/oom_score_adj (`exec.oom_score_adjust`,
    /// systemd's OOMScoreAdjust=, an OCI config's `process.oomScoreAdj`):
    /// inherited by all it starts. Lowering it needs CAP_SYS_RESOURCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adjust: Option<i32>,
    /// The program's nice value (`exec.nice`, systemd's Nice=), -20 to 19:
    /// inherited by all it starts. A negative one needs CAP_SYS_NICE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nice: Option<i32>,
    /// no_new_privs is left off, so that setuid and file-capability
    /// programs work as they would outside (an OCI config's
    /// `process.noNewPrivileges: false`; not a declaration key, whose
    /// services always have it). The bounding set and the securebits still
    /// hold: exec as uid 0 grants nothing, nor can a file capability grant
    /// one the bounding set lacks; Landlock and the filters stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_new_privileges: bool,
    /// Run one after another before everything else of a start (systemd's
    /// `ExecCondition=`): an exit of 1 to 254 means the service is not to
    /// start now, which is not a failure; 255, a signal or no exec fails
    /// the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub condition: Vec<Command>,
    /// Run one after another before the program, each to its end:
    /// systemd's `ExecStartPre=`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_pre: Vec<Command>,
    /// Run one after another once the service is running (systemd's
    /// `ExecStartPost=`); a failure stops it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_post: Vec<Command>,
    /// Run by `capexec reload NAME` (systemd's `ExecReload=`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reload: Vec<Command>,
    /// Run when the running service is asked to stop, before its stop
    /// signal (systemd's `ExecStop=`): a daemon stopped by its own tool
    /// (`rndc stop`, `doveadm stop`). The stop signal follows if the
    /// service is still running once they ended; `service.stop_timeout`
    /// bounds the whole stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<Command>,
}

/// A command run around the service's program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub argv: Vec<String>,
    /// A failure (non-zero exit, or no exec) does not fail the start
    /// (systemd's `-` prefix).
    #[serde(default)]
    pub ignore_failure: bool,
    /// Run on the host as root, outside the sandbox, with every privilege
    /// capexec has (systemd's `+` prefix). Otherwise it runs in the
    /// service's sandbox, as the service.
    #[serde(default)]
    pub privileged: bool,
}

/// Who the service runs as, seen from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The passwd name, when there is one (dynamic ids have none).
    pub user_name: Option<String>,
    pub how: IdentitySource,
    /// A declared user's home directory from its passwd entry: the
    /// service's HOME, as systemd sets it for User=. `None`: HOME is `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<std::path::PathBuf>,
    /// Supplementary gids (as root): a declared user's groups from
    /// /etc/group, then `exec.supplementary_groups`; sorted, without the
    /// primary gid. Empty rootless (the caller's own stay, unmapped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentitySource {
    /// `user = "name"` or a number in the declaration.
    Declared,
    /// A per-unit uid from the dynamic range, derived from the unit name.
    Dynamic,
    /// Rootless: the uid that started capexec.
    Caller,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FsSpec {
    /// Whether the system directories (/usr, /etc, ...) are in the view.
    pub system: bool,
    /// Sorted so that parents come before children; later entries are mounted on top.
    pub mounts: Vec<Mount>,
    pub private_tmp: bool,
    pub dev: DevMode,
    /// More places where the service's /dev/log (capexec's syslog socket)
    /// is: a chrooted daemon's `CHROOT/dev/log` (systemd units bind /dev/log
    /// there with `BindReadOnlyPaths=`). Each one's `dev` directory shows
    /// capexec's socket directory instead, read-only: the syslog socket
    /// `log` (and `notify` for a notify service).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syslog_sockets: Vec<PathBuf>,
    pub proc: ProcMode,
    /// /proc shows every process of the host (no `hidepid`), for monitoring
    /// agents that count or look at them (systemd's `ProtectProc=default`).
    /// Only without a pid namespace of the service's own. What the ptrace
    /// check guards (memory, environment, fds) stays the service's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_processes: bool,
    /// Directories capexec creates for the service, owned by its user, and
    /// writable in the view (systemd's RuntimeDirectory= and friends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<ManagedDir>,
    /// Who owns them (uid, gid), when not the service's user: a daemon
    /// started as root that drops to its own user (systemd's `!` prefix,
    /// whose directories belong to User=).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directories_owner: Option<(u32, u32)>,
    /// The service's pid file (`service.pid_file`) when capexec makes it:
    /// its directory is not writable in the view (a pid file directly in
    /// /run), so the file is created empty and owned by the service before
    /// it starts, bound alone writable into the view (a `mounts` entry), and
    /// removed when the service stops, as systemd removes a `PIDFile=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// `filesystem.own_files` that capexec makes as it makes the pid file
    /// (see [`FsSpec::pid_file`]): their directory is not writable in the
    /// view (rpcbind's lock file directly in /run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own_files: Vec<PathBuf>,
    /// read_only and read_write paths whose owner the service acts as: when
    /// that is another user, they are mounted idmapped, their owner and
    /// group seen as the service's (it may write what the owner may, and
    /// what it makes belongs to the owner on the host; git finds its
    /// repository its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub as_owner: Vec<PathBuf>,
    /// The directory the layers of an overlaid view are kept in (see
    /// crate::overlay); `None`: no overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<PathBuf>,
    /// Files (or trees of them) of an overlaid view that a rootless run
    /// gets copied into its layer ahead, as its own, so that it may rewrite
    /// them in place where overlayfs could not copy them up (their owner is
    /// not mapped): see capexec_sandbox::layers. A fake root's include
    /// crate::overlay::PACKAGE_STATE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_up: Vec<PathBuf>,
    /// The view's root: this host directory (an OCI bundle's root
    /// filesystem) instead of an empty read-only tmpfs. `mounts` and
    /// `filesystems` are then places in it, and a mount without a
    /// `source` stands for what the root already has at its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootFs>,
    /// Filesystems of their own (proc, sysfs, devpts, mqueue, tmpfs with
    /// options, cgroup2) mounted into a `root`, as an OCI config's mounts
    /// ask: applied in order, after the binds of `mounts` that are their
    /// parents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem>,
    /// Device nodes made in the view (an OCI config's `linux.devices`;
    /// not a declaration key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceNode>,
}

/// A device node of [`FsSpec::devices`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    /// Its permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Whether the service may open it. One it may not is there all the
    /// same (stat shows it as asked), on a mount that allows no device
    /// (nodev): an OCI config's device rules (`linux.resources.devices`)
    /// that deny it are met without a devices cgroup.
    pub usable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// [`FsSpec::root`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    pub path: PathBuf,
    /// Mounted read-only (OCI `root.readonly`); otherwise writable.
    pub read_only: bool,
    /// The order the mounts at these places are made in (an OCI config's,
    /// which the runtime-spec says to keep): the places not listed follow,
    /// parents first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_order: Vec<PathBuf>,
}

/// A filesystem of [`FsSpec::filesystems`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    /// Where it is mounted in the view.
    pub path: PathBuf,
    /// The kernel's filesystem type (`proc`, `sysfs`, `devpts`, `mqueue`,
    /// `tmpfs`, `cgroup2`).
    pub fstype: String,
    pub source: String,
    /// mount(8)-style options: flags (`ro`, `nosuid`, `nodev`, `noexec`,
    /// ...) and the filesystem's own (`mode=755`, `size=65536k`).
    pub options: Vec<String>,
}

/// A directory of [`FsSpec::directories`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedDir {
    pub path: PathBuf,
    pub kind: DirKind,
    /// Its declared access mode (`filesystem.runtime_directory_mode` and the
    /// others), applied to it whether made or found; `None`: made 0755, an
    /// existing one keeps its own.
    #[serde(default, with = "octal_mode")]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirKind {
    /// Under /run; removed when the service stops.
    Runtime,
    /// Under /var/lib, /var/cache or /var/log; kept.
    State,
    Cache,
    Logs,
}

impl DirKind {
    pub fn base(self) -> &'static str {
        match self {
            DirKind::Runtime => "/run",
            DirKind::State => "/var/lib",
            DirKind::Cache => "/var/cache",
            DirKind::Logs => "/var/log",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            DirKind::Runtime => "runtime_directory",
            DirKind::State => "state_directory",
            DirKind::Cache => "cache_directory",
            DirKind::Logs => "logs_directory",
        }
    }
}

impl FsSpec {
    /// The mount the service sees `path` through: the last one at or above
    /// it, since mounts are sorted parents first and later ones are mounted
    /// on top. `None`: outside every mount.
    pub fn covering(&self, path: &std::path::Path) -> Option<&Mount> {
        self.mounts.iter().rfind(|m| path.starts_with(&m.path))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub path: PathBuf,
    pub kind: MountKind,
    /// Declared with a leading `-`: skipped when the path does not exist.
    pub optional: bool,
    /// For a bind: the host path shown at `path`, when it is not `path`
    /// itself (an OCI mount's source). With a [`FsSpec::root`], `None`
    /// stands for what the root has at `path` (bound again, e.g. read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The propagation an OCI mount asks for, set on it once it is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
    /// For an overlay that is a part of a split directory (see
    /// crate::overlay::view): the directory whose layer its writes go into,
    /// where they would have landed with that directory overlaid whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_of: Option<PathBuf>,
}

/// Mount propagation, in mount(8)'s words (`rshared`: the mount and those
/// under it). The view is made a slave of the host's mounts before anything
/// is mounted, so even `shared` only makes a peer group inside the
/// sandbox's own mount namespace: nothing reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Propagation {
    Shared,
    Rshared,
    Slave,
    Rslave,
    Private,
    Rprivate,
    Unbindable,
    Runbindable,
}

impl Propagation {
    /// The last propagation word among mount(8)-style `options`, as mount(8) takes them.
    pub fn of_options(options: &[String]) -> Option<Self> {
        options.iter().rev().find_map(|o| {
            Some(match o.as_str() {
                "shared" => Self::Shared,
                "rshared" => Self::Rshared,
                "slave" => Self::Slave,
                "rslave" => Self::Rslave,
                "private" => Self::Private,
                "rprivate" => Self::Rprivate,
                "unbindable" => Self::Unbindable,
                "runbindable" => Self::Runbindable,
                _ => return None,
            })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountKind {
    /// Bind-mounted read-only, not executable.
    ReadOnly,
    /// Bind-mounted read-only and shown, not readable: stat, access and
    /// readlink see it (Landlock governs none of these), but no rule lets
    /// the service open it or list it. For a path a program only checks
    /// for (a stat of /var/lib/app, which made all of /var/lib readable).
    Visible,
    /// Bind-mounted read-only and executable.
    Executable,
    /// Bind-mounted writable, not executable.
    ReadWrite,
    /// Bind-mounted writable and executable: code the service writes there
    /// it may run (varnish compiles its VCL to a library and loads it).
    ReadWriteExec,
    /// A fresh private tmpfs, writable, not executable.
    Tmpfs,
    /// Covered by an empty, unreadable file or directory.
    Inaccessible,
    /// An overlayfs over the host's directory, writes landing in a layer of
    /// `FsSpec::overlay` (see crate::overlay): readable, writable and
    /// executable, the host untouched.
    Overlay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DevMode {
    /// tmpfs with null, zero, full, random, urandom, tty, shm, pts-less.
    Minimal,
    /// No /dev at all.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcMode {
    /// Only the service's own processes: no /proc/sys, kcore, sysrq-trigger, ... (`subset=pid`).
    PidOnly,
    /// All of /proc for the service's pid namespace, with /proc/sys read-only and
    /// the dangerous files (kcore, sysrq-trigger, kmsg, ...) masked.
    Full,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsSpec {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub net: NetMode,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
    pub hostname: String,
    /// Kernel parameters of the service's own namespaces, by dotted name
    /// (`net.ipv4.ping_group_range`), set before anything of it runs: an
    /// OCI config's `linux.sysctl`, which capexec-oci checks to be ones its
    /// new namespaces own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Namespaces entered instead of made: an OCI config's
    /// `linux.namespaces[].path` (the engine's network namespace, a pod's
    /// ipc and uts). Not a declaration key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<JoinNs>,
    /// The user namespace's id maps, where they are given (an OCI config's
    /// `linux.uidMappings` and `gidMappings`): `exec.user` is then the ids
    /// inside it. Not a declaration key: without them a user namespace maps
    /// the service's own ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_maps: Option<IdMaps>,
}

/// [`NsSpec::id_maps`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMaps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
}

/// `count` ids from `inside` in the user namespace are `outside` in the
/// namespace of its creator (a line of /proc/PID/uid_map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMaps {
    /// The id outside that `id` inside is, by `maps`.
    pub fn outside(maps: &[IdMap], id: u32) -> Option<u32> {
        maps.iter().find(|m| id >= m.inside && id - m.inside < m.count).map(|m| m.outside + (id - m.inside))
    }
}

/// A namespace a service enters, by the path of its nsfs file
/// (/proc/PID/ns/net, /run/netns/NAME).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinNs {
    pub kind: JoinKind,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinKind {
    Net,
    Ipc,
    Uts,
    /// The launch is born in it: its init's own pid namespace (a pod's,
    /// shared by its containers).
    Pid,
    Cgroup,
    /// The process lives in it (its /proc/PID/ns/mnt says so), while its
    /// view is built in a private one that init keeps and the process is
    /// chrooted into: nothing is mounted in the namespace entered.
    Mount,
    /// The launch's init is born in it (a pod's, shared by its containers):
    /// its id maps are the namespace's, `id_maps` says what they are, and
    /// the service's other namespaces are made or entered as its root.
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetMode {
    /// An own network namespace with only a loopback interface.
    None,
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preopen {
    /// Reported in LISTEN_FDNAMES.
    pub name: String,
    pub kind: PreopenKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum PreopenKind {
    Listen {
        address: ListenAddr,
        backlog: u32,
        /// Also announce the fd in this variable as `fd;fd;` (nginx reads `NGINX`).
        env: Option<String>,
        /// Permissions of a Unix socket file.
        #[serde(default, with = "octal_mode")]
        socket_mode: Option<u32>,
    },
    File {
        path: PathBuf,
        mode: FileMode,
        create: bool,
    },
    Directory {
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "family", content = "address")]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(PathBuf),
    /// A Unix datagram socket bound at the path (syslog's /dev/log):
    /// nothing listens, the service receives.
    UnixDgram(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "tcp:{a}"),
            ListenAddr::Udp(a) => write!(f, "udp:{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::UnixDgram(p) => write!(f, "unixgram:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileMode {
    Read,
    Write,
    ReadWrite,
    Append,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockSpec {
    pub mode: Enforcement,
    /// TCP ports the service may bind. Empty: none (Landlock handles TCP bind).
    pub bind_tcp: BTreeSet<u16>,
    /// TCP ports the service may connect to. Empty: none.
    pub connect_tcp: BTreeSet<u16>,
    pub scope_abstract_unix: bool,
    pub scope_signals: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// Refuse to start when the kernel cannot enforce every rule.
    Required,
    /// Enforce what the kernel can, and say what was left out.
    BestEffort,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompSpec {
    /// What the declaration listed (groups and names), for display.
    pub declared: Vec<String>,
    /// Every allowed syscall after expanding groups and removing `deny`.
    pub allowed: crate::syscalls::Set,
    pub action: DenyAction,
    /// socket() may make ping sockets (`SOCK_DGRAM` of IPPROTO_ICMP or
    /// ICMPV6), which the protocol rule refuses otherwise: set where
    /// `[broker.net] ping` grants addresses.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ping: bool,
    /// A filter given whole instead of the allowlist (an OCI config's
    /// `linux.seccomp`): `allowed` and `action` are then not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<SeccompProfile>,
}

/// A seccomp profile as the runtime-spec (and libseccomp) has it: for each
/// syscall the first rule whose conditions all hold decides, else `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompProfile {
    pub default: ProfileAction,
    pub rules: Vec<ProfileRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRule {
    /// Syscall names; those this architecture lacks are skipped.
    pub syscalls: Vec<String>,
    pub action: ProfileAction,
    /// All must hold.
    pub args: Vec<ProfileArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileAction {
    Allow,
    Errno(u16),
    KillThread,
    KillProcess,
    Trap,
    Log,
    /// Handed to the seccomp agent that holds the filter's listener (an OCI
    /// config's SCMP_ACT_NOTIFY with its `listenerPath`).
    Notify,
}

/// Argument `index` compared with `value` (`MaskedEq`: `arg & value == value_two`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileArg {
    pub index: u8,
    pub value: u64,
    pub value_two: u64,
    pub op: ArgOp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "errno")]
pub enum DenyAction {
    Errno(i32),
    Kill,
    Log,
}

/// A resource with a limit (setrlimit(2)), named as in `[rlimits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl Resource {
    pub const ALL: [Resource; 16] = [
        Resource::As,
        Resource::Core,
        Resource::Cpu,
        Resource::Data,
        Resource::Fsize,
        Resource::Locks,
        Resource::Memlock,
        Resource::Msgqueue,
        Resource::Nice,
        Resource::Nofile,
        Resource::Nproc,
        Resource::Rss,
        Resource::Rtprio,
        Resource::Rttime,
        Resource::Sigpending,
        Resource::Stack,
    ];

    /// The name in `[rlimits]` (RLIMIT_ in lower case, without the prefix).
    pub fn name(self) -> &'static str {
        match self {
            Resource::As => "as",
            Resource::Core => "core",
            Resource::Cpu => "cpu",
            Resource::Data => "data",
            Resource::Fsize => "fsize",
            Resource::Locks => "locks",
            Resource::Memlock => "memlock",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
            Resource::Rss => "rss",
            Resource::Rtprio => "rtprio",
            Resource::Rttime => "rttime",
            Resource::Sigpending => "sigpending",
            Resource::Stack => "stack",
        }
    }

    pub fn from_name(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The `[rlimits]` name of a raw RLIMIT_ number, for messages ("?" if none).
    pub fn name_of_raw(raw: libc::__rlimit_resource_t) -> &'static str {
        Resource::ALL.iter().find(|r| r.raw() == raw).map_or("?", |r| r.name())
    }

    /// Whether the limit counts bytes (and may be written as a size, "64M").
    pub fn counts_bytes(self) -> bool {
        matches!(
            self,
            Resource::As | Resource::Core | Resource::Data | Resource::Fsize | Resource::Memlock | Resource::Msgqueue | Resource::Rss | Resource::Stack
        )
    }

    /// The kernel's number for it.
    pub fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::As => libc::RLIMIT_AS,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::Fsize => libc::RLIMIT_FSIZE,
            Resource::Locks => libc::RLIMIT_LOCKS,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Resource::Nice => libc::RLIMIT_NICE,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Rss => libc::RLIMIT_RSS,
            Resource::Rtprio => libc::RLIMIT_RTPRIO,
            Resource::Rttime => libc::RLIMIT_RTTIME,
            Resource::Sigpending => libc::RLIMIT_SIGPENDING,
            Resource::Stack => libc::RLIMIT_STACK,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `None` is RLIM_INFINITY.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervision {
    #[serde(rename = "type")]
    pub kind: ServiceType,
    pub restart: RestartPolicy,
    /// First delay before a restart; doubled after each failed start, up to `restart_delay_max`.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub restart_delay: std::time::Duration,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub restart_delay_max: std::time::Duration,
    /// More than this many starts within `start_limit_interval` → failed until started by hand.
    pub start_limit_burst: u32,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub start_limit_interval: std::time::Duration,
    /// Signal number sent first on stop.
    pub stop_signal: i32,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub stop_timeout: std::time::Duration,
    /// `type = "notify"`: how long to wait for READY=1.
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub ready_timeout: std::time::Duration,
    /// Started when the daemon starts (unless `capexec disable` overrides it).
    #[serde(default)]
    pub autostart: bool,
    /// Restart when the service does not send WATCHDOG=1 this often (WATCHDOG_USEC).
    #[serde(serialize_with = "ser_opt_duration", deserialize_with = "de_opt_duration")]
    pub watchdog: Option<std::time::Duration>,
    /// Where the daemon writes its main pid (a path in the service's view),
    /// systemd's `PIDFile=`: read for `type = "forking"`; for every type
    /// made writable (see [`FsSpec::pid_file`]) and removed at the stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// Exit statuses besides 0 that count as a clean end (systemd's
    /// `SuccessExitStatus=`), as the daemon sees them: a code, or 128 plus
    /// the number of the signal that ended the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_exit_status: Vec<i32>,
    /// `type = "simple"` or `"exec"`: running once one of these accepts a
    /// connection (checked from the host), instead of once the program was
    /// executed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready_address: Vec<ReadyAddr>,
}

/// An address a service is ready once it accepts a connection on
/// (`service.ready_address`, `capexec learn --wait-for`): `tcp:HOST:PORT`
/// or `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadyAddr {
    Tcp(std::net::SocketAddr),
    /// A stream or datagram socket's path.
    Unix(PathBuf),
}

/// Why a ready address is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadyAddrError {
    #[error("a Unix socket is named by its absolute path (unix:/run/app/app.sock)")]
    RelativeUnix,
    #[error("{0} (expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:8080 or tcp:[::1]:6379, or unix:PATH)")]
    Tcp(#[from] std::net::AddrParseError),
}

impl ReadyAddr {
    pub fn parse(s: &str) -> Result<ReadyAddr, ReadyAddrError> {
        if let Some(p) = s.strip_prefix("unix:") {
            return match p.starts_with('/') {
                true => Ok(ReadyAddr::Unix(p.into())),
                false => Err(ReadyAddrError::RelativeUnix),
            };
        }
        let a = s.strip_prefix("tcp:").unwrap_or(s);
        Ok(ReadyAddr::Tcp(a.parse()?))
    }
}

impl std::fmt::Display for ReadyAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadyAddr::Tcp(a) => write!(f, "tcp:{a}"),
            ReadyAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceType {
    /// Running as soon as it is started.
    Simple,
    /// Running once the program has been executed (setup succeeded).
    Exec,
    /// Running when the service sends READY=1 on its NOTIFY_SOCKET.
    Notify,
    /// Running when the started process exits with 0, having forked the
    /// daemon (systemd's `Type=forking`); the daemon's main process is the
    /// one `pid_file` names, or else every process left.
    Forking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes; `None` = no limit.
    pub memory_max: Option<u64>,
    pub tasks_max: Option<u64>,
    /// 1..=10000, cgroup v2 semantics (100 = default share).
    pub cpu_weight: Option<u64>,
}

pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn ser_duration<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// A mode or mask as people write it (`"0027"`, as in the declaration),
/// where a number would print in decimal (23).
mod octal_mode {
    pub fn serialize<S: serde::Serializer>(m: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.serialize_str(&format!("{m:04o}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        use serde::Deserialize;
        match Option::<String>::deserialize(d)? {
            Some(t) => u32::from_str_radix(&t, 8).map(Some).map_err(|_| serde::de::Error::custom(format!("`{t}` is not an octal mode"))),
            None => Ok(None),
        }
    }
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<std::time::Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_str("off"),
    }
}

/// Parses what [`format_duration`] writes ("250ms", "10s", "5min", "1h").
pub fn parse_formatted_duration(s: &str) -> Option<std::time::Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(n.checked_mul(ms)?))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_formatted_duration(&s).ok_or_else(|| serde::de::Error::custom(format!("bad duration `{s}`")))
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<std::time::Duration>, D::Error> {
    let s = String::deserialize(d)?;
    if s == "off" {
        return Ok(None);
    }
    parse_formatted_duration(&s).map(Some).ok_or_else(|| serde::de::Error::custom(format!("bad duration `{s}`")))
}
