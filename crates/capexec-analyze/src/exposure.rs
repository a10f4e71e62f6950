//! `capexec analyze`: an exposure score from 0 to 10 for a validated
//! declaration, computed with the checks, weights, ranges and arithmetic of
//! `systemd-analyze security` (systemd 252, Debian 12), so that the numbers
//! can be put side by side with a systemd unit's.
//!
//! Each check is answered from what capexec actually enforces for the
//! declaration. Where capexec implements a restriction with another mechanism
//! than systemd's directive (a pivot_root view instead of ProtectSystem=,
//! Landlock, the seccomp argument rules, namespaces), the finding says which,
//! in `credit`. docs/analyze.md explains every mapping.

use capexec_decl::spec::{DevMode, MountKind, NetMode, ProcMode, ServiceSpec};
use std::path::Path;

/// One check of `systemd-analyze security`: its name and JSON field as
/// systemd prints them, its weight and its range of badness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub json_field: &'static str,
    pub weight: u64,
    pub range: u64,
}

const fn c(name: &'static str, json_field: &'static str, weight: u64, range: u64) -> Check {
    Check { name, json_field, weight, range }
}

/// systemd 252's checks (`SYSTEMD_ANALYZE_DEBUG=1 systemd-analyze security
/// --json=short` prints the weights and ranges; a test compares this table
/// with it).
pub const CHECKS: &[Check] = &[
    c("AmbientCapabilities=", "AmbientCapabilities", 500, 1),
    c("CapabilityBoundingSet=~CAP_(CHOWN|FSETID|SETFCAP)", "CapabilityBoundingSet_CAP_CHOWN_FSETID_SETFCAP", 1000, 1),
    c("CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)", "CapabilityBoundingSet_CAP_DAC_FOWNER_IPC_OWNER", 1000, 1),
    c("CapabilityBoundingSet=~CAP_AUDIT_*", "CapabilityBoundingSet_CAP_AUDIT", 500, 1),
    c("CapabilityBoundingSet=~CAP_BLOCK_SUSPEND", "CapabilityBoundingSet_CAP_BLOCK_SUSPEND", 25, 1),
    c("CapabilityBoundingSet=~CAP_BPF", "CapabilityBoundingSet_CAP_BPF", 25, 1),
    c("CapabilityBoundingSet=~CAP_IPC_LOCK", "CapabilityBoundingSet_CAP_IPC_LOCK", 50, 1),
    c("CapabilityBoundingSet=~CAP_KILL", "CapabilityBoundingSet_CAP_KILL", 500, 1),
    c("CapabilityBoundingSet=~CAP_LEASE", "CapabilityBoundingSet_CAP_LEASE", 25, 1),
    c("CapabilityBoundingSet=~CAP_LINUX_IMMUTABLE", "CapabilityBoundingSet_CAP_LINUX_IMMUTABLE", 75, 1),
    c("CapabilityBoundingSet=~CAP_MAC_*", "CapabilityBoundingSet_CAP_MAC", 100, 1),
    c("CapabilityBoundingSet=~CAP_MKNOD", "CapabilityBoundingSet_CAP_MKNOD", 500, 1),
    // The stray ")" is systemd's own spelling of this field.
    c("CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)", "CapabilityBoundingSet_CAP_NET_BIND_SERVICE_BROADCAST_RAW)", 500, 1),
    c("CapabilityBoundingSet=~CAP_NET_ADMIN", "CapabilityBoundingSet_CAP_NET_ADMIN", 1000, 1),
    c("CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)", "CapabilityBoundingSet_CAP_SET_UID_GID_PCAP", 1500, 1),
    c("CapabilityBoundingSet=~CAP_SYSLOG", "CapabilityBoundingSet_CAP_SYSLOG", 500, 1),
    c("CapabilityBoundingSet=~CAP_SYS_(NICE|RESOURCE)", "CapabilityBoundingSet_CAP_SYS_NICE_RESOURCE", 500, 1),
    c("CapabilityBoundingSet=~CAP_SYS_ADMIN", "CapabilityBoundingSet_CAP_SYS_ADMIN", 1500, 1),
    c("CapabilityBoundingSet=~CAP_SYS_BOOT", "CapabilityBoundingSet_CAP_SYS_BOOT", 100, 1),
    c("CapabilityBoundingSet=~CAP_SYS_CHROOT", "CapabilityBoundingSet_CAP_SYS_CHROOT", 50, 1),
    c("CapabilityBoundingSet=~CAP_SYS_MODULE", "CapabilityBoundingSet_CAP_SYS_MODULE", 1000, 1),
    c("CapabilityBoundingSet=~CAP_SYS_PACCT", "CapabilityBoundingSet_CAP_SYS_PACCT", 25, 1),
    c("CapabilityBoundingSet=~CAP_SYS_PTRACE", "CapabilityBoundingSet_CAP_SYS_PTRACE", 1500, 1),
    c("CapabilityBoundingSet=~CAP_SYS_RAWIO", "CapabilityBoundingSet_CAP_SYS_RAWIO", 1000, 1),
    c("CapabilityBoundingSet=~CAP_SYS_TIME", "CapabilityBoundingSet_CAP_SYS_TIME", 1000, 1),
    c("CapabilityBoundingSet=~CAP_SYS_TTY_CONFIG", "CapabilityBoundingSet_CAP_SYS_TTY_CONFIG", 25, 1),
    c("CapabilityBoundingSet=~CAP_WAKE_ALARM", "CapabilityBoundingSet_CAP_WAKE_ALARM", 25, 1),
    c("Delegate=", "Delegate", 100, 1),
    c("DeviceAllow=", "DeviceAllow", 1000, 10),
    c("IPAddressDeny=", "IPAddressDeny", 1000, 10),
    c("KeyringMode=", "KeyringMode", 1000, 1),
    c("LockPersonality=", "LockPersonality", 100, 1),
    c("MemoryDenyWriteExecute=", "MemoryDenyWriteExecute", 100, 1),
    c("NoNewPrivileges=", "NoNewPrivileges", 1000, 1),
    c("NotifyAccess=", "NotifyAccess", 1000, 1),
    c("PrivateDevices=", "PrivateDevices", 1000, 1),
    c("PrivateMounts=", "PrivateMounts", 1000, 1),
    c("PrivateNetwork=", "PrivateNetwork", 2500, 1),
    c("PrivateTmp=", "PrivateTmp", 1000, 1),
    c("PrivateUsers=", "PrivateUsers", 1000, 1),
    c("ProcSubset=", "ProcSubset", 10, 1),
    c("ProtectClock=", "ProtectClock", 1000, 1),
    c("ProtectControlGroups=", "ProtectControlGroups", 1000, 1),
    c("ProtectHome=", "ProtectHome", 1000, 10),
    c("ProtectHostname=", "ProtectHostname", 50, 1),
    c("ProtectKernelLogs=", "ProtectKernelLogs", 1000, 1),
    c("ProtectKernelModules=", "ProtectKernelModules", 1000, 1),
    c("ProtectKernelTunables=", "ProtectKernelTunables", 1000, 1),
    c("ProtectProc=", "ProtectProc", 1000, 3),
    c("ProtectSystem=", "ProtectSystem", 1000, 10),
    c("RemoveIPC=", "RemoveIPC", 100, 1),
    c("RestrictAddressFamilies=~AF_(INET|INET6)", "RestrictAddressFamilies_AF_INET_INET6", 1500, 1),
    c("RestrictAddressFamilies=~AF_NETLINK", "RestrictAddressFamilies_AF_NETLINK", 200, 1),
    c("RestrictAddressFamilies=~AF_PACKET", "RestrictAddressFamilies_AF_PACKET", 1000, 1),
    c("RestrictAddressFamilies=~AF_UNIX", "RestrictAddressFamilies_AF_UNIX", 25, 1),
    c("RestrictAddressFamilies=~…", "RestrictAddressFamilies_OTHER", 1250, 1),
    c("RestrictNamespaces=~cgroup", "RestrictNamespaces_cgroup", 500, 1),
    c("RestrictNamespaces=~ipc", "RestrictNamespaces_ipc", 500, 1),
    c("RestrictNamespaces=~mnt", "RestrictNamespaces_mnt", 500, 1),
    c("RestrictNamespaces=~net", "RestrictNamespaces_net", 500, 1),
    c("RestrictNamespaces=~pid", "RestrictNamespaces_pid", 500, 1),
    c("RestrictNamespaces=~user", "RestrictNamespaces_user", 1500, 1),
    c("RestrictNamespaces=~uts", "RestrictNamespaces_uts", 100, 1),
    c("RestrictRealtime=", "RestrictRealtime", 500, 1),
    c("RestrictSUIDSGID=", "RestrictSUIDSGID", 1000, 1),
    c("RootDirectory=/RootImage=", "RootDirectoryOrRootImage", 200, 1),
    c("SupplementaryGroups=", "SupplementaryGroups", 200, 1),
    c("SystemCallArchitectures=", "SystemCallArchitectures", 1000, 10),
    c("SystemCallFilter=~@clock", "SystemCallFilter_clock", 1000, 10),
    c("SystemCallFilter=~@cpu-emulation", "SystemCallFilter_cpu_emulation", 250, 10),
    c("SystemCallFilter=~@debug", "SystemCallFilter_debug", 1000, 10),
    c("SystemCallFilter=~@module", "SystemCallFilter_module", 1000, 10),
    c("SystemCallFilter=~@mount", "SystemCallFilter_mount", 1000, 10),
    c("SystemCallFilter=~@obsolete", "SystemCallFilter_obsolete", 250, 10),
    c("SystemCallFilter=~@privileged", "SystemCallFilter_privileged", 700, 10),
    c("SystemCallFilter=~@raw-io", "SystemCallFilter_raw_io", 1000, 10),
    c("SystemCallFilter=~@reboot", "SystemCallFilter_reboot", 1000, 10),
    c("SystemCallFilter=~@resources", "SystemCallFilter_resources", 700, 10),
    c("SystemCallFilter=~@swap", "SystemCallFilter_swap", 1000, 10),
    c("UMask=", "UMask", 100, 10),
    c("User=/DynamicUser=", "UserOrDynamicUser", 2000, 10),
];

/// systemd 252's syscall sets as `systemd-analyze syscall-filter` lists them
/// (a test compares), for the SystemCallFilter=~@set checks.
pub const SYSTEMD_SETS: &[(&str, &[&str])] = &[
    ("@clock", &["adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64", "settimeofday"]),
    ("@cpu-emulation", &["modify_ldt", "subpage_prot", "switch_endian", "vm86", "vm86old"]),
    ("@debug", &["lookup_dcookie", "perf_event_open", "pidfd_getfd", "ptrace", "rtas", "s390_runtime_instr", "sys_debug_setcontext"]),
    ("@module", &["delete_module", "finit_module", "init_module"]),
    ("@mount", &["chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount", "open_tree", "pivot_root", "umount", "umount2"]),
    (
        "@obsolete",
        &[
            "_sysctl",
            "afs_syscall",
            "bdflush",
            "break",
            "create_module",
            "ftime",
            "get_kernel_syms",
            "getpmsg",
            "gtty",
            "idle",
            "lock",
            "mpx",
            "prof",
            "profil",
            "putpmsg",
            "query_module",
            "security",
            "sgetmask",
            "ssetmask",
            "stime",
            "stty",
            "sysfs",
            "tuxcall",
            "ulimit",
            "uselib",
            "ustat",
            "vserver",
        ],
    ),
    (
        "@privileged",
        &[
            "@chown",
            "@clock",
            "@module",
            "@raw-io",
            "@reboot",
            "@swap",
            "_sysctl",
            "acct",
            "bpf",
            "capset",
            "chroot",
            "fanotify_init",
            "fanotify_mark",
            "nfsservctl",
            "open_by_handle_at",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "setfsuid",
            "setfsuid32",
            "setgroups",
            "setgroups32",
            "sethostname",
            "setresuid",
            "setresuid32",
            "setreuid",
            "setreuid32",
            "setuid",
            "setuid32",
            "vhangup",
        ],
    ),
    ("@raw-io", &["ioperm", "iopl", "pciconfig_iobase", "pciconfig_read", "pciconfig_write", "s390_pci_mmio_read", "s390_pci_mmio_write"]),
    ("@reboot", &["kexec_file_load", "kexec_load", "reboot"]),
    (
        "@resources",
        &[
            "ioprio_set",
            "mbind",
            "migrate_pages",
            "move_pages",
            "nice",
            "sched_setaffinity",
            "sched_setattr",
            "sched_setparam",
            "sched_setscheduler",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "setpriority",
            "setrlimit",
        ],
    ),
    ("@swap", &["swapoff", "swapon"]),
    // Referenced by @privileged.
    ("@chown", &["chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32"]),
];

/// Every syscall of a systemd set, nested sets expanded.
pub fn systemd_set(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some((_, members)) = SYSTEMD_SETS.iter().find(|(n, _)| *n == name) {
        for m in *members {
            match m.starts_with('@') {
                true => out.extend(systemd_set(m)),
                false => out.push(*m),
            }
        }
    }
    out
}

/// One check answered for a declaration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub name: &'static str,
    pub json_field: &'static str,
    pub weight: u64,
    pub range: u64,
    /// `None`: the check does not apply (systemd's "n/a").
    pub badness: Option<u64>,
    pub description: String,
    /// The capexec mechanism credited where it is not systemd's own directive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<&'static str>,
}

impl Finding {
    /// This check's share of the exposure, in tenths (systemd's column).
    pub fn exposure(&self, weight_sum: u64) -> Option<u64> {
        let b = self.badness.filter(|b| *b > 0)?;
        Some((b * self.weight * 100).div_ceil(self.range).div_ceil(weight_sum))
    }
}

/// The overall exposure in tenths (0..=100), as systemd computes it: each
/// applicable check adds ⌈badness·weight/range⌉, and the sum is scaled by the
/// sum of the applicable weights.
pub fn exposure(findings: &[Finding]) -> u64 {
    let (mut bad, mut weights) = (0u64, 0u64);
    for f in findings {
        if let Some(b) = f.badness {
            bad += (b * f.weight).div_ceil(f.range);
            weights += f.weight;
        }
    }
    if weights == 0 {
        return 0;
    }
    (bad * 100).div_ceil(weights)
}

pub fn weight_sum(findings: &[Finding]) -> u64 {
    findings.iter().filter(|f| f.badness.is_some()).map(|f| f.weight).sum()
}

/// systemd's words for an exposure (in tenths).
pub fn level(exposure: u64) -> &'static str {
    match exposure {
        100.. => "DANGEROUS",
        90..=99 => "UNSAFE",
        75..=89 => "EXPOSED",
        50..=74 => "MEDIUM",
        10..=49 => "OK",
        1..=9 => "SAFE",
        0 => "PERFECT",
    }
}

/// What the answer to a check is: badness, description, credited mechanism.
type Answer = (Option<u64>, String, Option<&'static str>);

fn yes_no(bad: bool, good: &str, bad_text: &str, credit: Option<&'static str>) -> Answer {
    match bad {
        true => (Some(1), bad_text.to_owned(), None),
        false => (Some(0), good.to_owned(), credit),
    }
}

/// What the declaration shows of `path`: the kind of the mount it is seen
/// through; `None` when it is outside the view.
fn visible(spec: &ServiceSpec, path: &Path) -> Option<MountKind> {
    spec.filesystem.covering(path).map(|m| m.kind)
}

/// Whether anything at or below `path` is visible with one of `kinds`.
fn any_visible(spec: &ServiceSpec, path: &Path, kinds: &[MountKind]) -> bool {
    kinds.contains(&visible(spec, path).unwrap_or(MountKind::Inaccessible))
        || spec.filesystem.mounts.iter().any(|m| m.path.starts_with(path) && kinds.contains(&m.kind))
}

// An overlay shows the host; its writes stay in the layer, never the host.
const READABLE: &[MountKind] = &[MountKind::ReadOnly, MountKind::Executable, MountKind::ReadWrite, MountKind::ReadWriteExec, MountKind::Overlay];
const WRITABLE: &[MountKind] = &[MountKind::ReadWrite, MountKind::ReadWriteExec];

pub fn assess(spec: &ServiceSpec) -> Vec<Finding> {
    // What the launch really installs: the allowlist program of the plan a
    // launch as root would run (the one that runs the service, argument
    // rules and the prologue's answers included), read for every syscall.
    let extras = capexec_sandbox::plan::Extras { broker: capexec_broker::contribution(spec), ..Default::default() };
    let plan = capexec_sandbox::plan::compose(spec, &extras).ok();
    let launch = Launch::of(spec, plan.as_ref());
    CHECKS
        .iter()
        .map(|ch| {
            let (badness, description, credit) = answer(spec, &launch, ch);
            Finding { name: ch.name, json_field: ch.json_field, weight: ch.weight, range: ch.range, badness, description, credit }
        })
        .collect()
}

/// What a launch of the declaration sets up, read from its plan: the
/// seccomp program, the namespaces, the ids, the capabilities kept and MDWE.
/// A declaration no launch would plan falls back to what it declares.
struct Launch<'a> {
    filter: Option<&'a [capexec_sandbox::seccomp::sock_filter]>,
    clone_flags: libc::c_int,
    uid: u32,
    caps: Vec<String>,
    mdwe: bool,
    /// The view's /proc hides the processes the service may not ptrace.
    hidepid: bool,
}

impl<'a> Launch<'a> {
    fn of(spec: &ServiceSpec, plan: Option<&'a capexec_sandbox::SetupPlan>) -> Launch<'a> {
        match plan {
            Some(p) => Launch {
                filter: Some(&p.seccomp),
                clone_flags: p.clone_flags,
                uid: p.uid,
                caps: p.keep_caps.iter().map(|c| c.to_string()).collect(),
                mdwe: p.mdwe,
                hidepid: p.mounts.iter().any(|m| matches!(m, capexec_sandbox::plan::MountStep::Proc { hidepid: true, .. })),
            },
            None => {
                let ns = &spec.namespaces;
                let flag = |on: bool, f: libc::c_int| if on { f } else { 0 };
                Launch {
                    filter: None,
                    clone_flags: flag(ns.user, libc::CLONE_NEWUSER)
                        | flag(ns.pid, libc::CLONE_NEWPID)
                        | flag(ns.ipc, libc::CLONE_NEWIPC)
                        | flag(ns.uts, libc::CLONE_NEWUTS)
                        | flag(ns.net == NetMode::None, libc::CLONE_NEWNET),
                    uid: spec.exec.user.uid,
                    caps: spec.capabilities.iter().map(|c| c.to_string()).collect(),
                    mdwe: spec.exec.memory_deny_write_execute,
                    hidepid: !ns.pid && !spec.filesystem.host_processes,
                }
            }
        }
    }

    fn has(&self, flag: libc::c_int) -> bool {
        self.clone_flags & flag != 0
    }
}

fn answer(spec: &ServiceSpec, launch: &Launch, ch: &Check) -> Answer {
    let caps = &launch.caps;
    let filter = launch.filter;
    let has_cap = |names: &[&str]| names.iter().any(|n| caps.iter().any(|c| c == n));
    let allowed = |name: &str| {
        let by_filter = filter.zip(capexec_decl::syscalls::number(name)).and_then(|(f, nr)| capexec_sandbox::seccomp::allows_some(f, nr as u32));
        by_filter.unwrap_or_else(|| spec.seccomp.allowed.contains(name))
    };
    let any_allowed = |names: &[&str]| names.iter().any(|n| allowed(n));
    let root = launch.uid == 0;
    if let Some(set) = ch.name.strip_prefix("SystemCallFilter=~") {
        let members = systemd_set(set);
        return match members.iter().find(|m| allowed(m)) {
            Some(m) => (Some(9), format!("System call allow list defined, and {set} is included (e.g. {m} is allowed)"), None),
            None => (Some(0), format!("System call allow list defined, and {set} is not included"), Some("seccomp allowlist")),
        };
    }
    if let Some(set) = ch.name.strip_prefix("CapabilityBoundingSet=~") {
        let names = cap_names(set);
        return match names.iter().find(|n| caps.iter().any(|c| c == *n)) {
            Some(n) => (Some(1), format!("The service keeps {n} ([capabilities] keep)"), None),
            None => (Some(0), format!("{} dropped from every set, the bounding set included", set), Some("all capabilities dropped before exec")),
        };
    }
    if let Some(ns_name) = ch.name.strip_prefix("RestrictNamespaces=~") {
        return match any_allowed(&["unshare", "setns"]) {
            true => (Some(1), format!("unshare/setns are allowed: the service may create or join {ns_name} namespaces"), None),
            false => (
                Some(0),
                format!("The service cannot create {ns_name} namespaces"),
                Some("seccomp: clone() refused with any CLONE_NEW* flag, clone3 answers ENOSYS, unshare and setns not allowed"),
            ),
        };
    }
    let socket = allowed("socket");
    match ch.name {
        "User=/DynamicUser=" => match (&spec.exec.user.user_name, spec.exec.user.how) {
            _ if root => (Some(10), "Service runs as root user".into(), None),
            (Some(n), _) if n == "nobody" => (Some(9), "Service runs as the 'nobody' user, which should not own services".into(), None),
            (_, capexec_decl::spec::IdentitySource::Dynamic) => (Some(0), "Service runs under a uid of its own from the dynamic range".into(), None),
            _ => (Some(0), "Service runs under a static non-root user identity".into(), None),
        },
        "SupplementaryGroups=" if root => (None, "Service runs as root, option does not matter".into(), None),
        "SupplementaryGroups=" if spec.exec.user.groups.is_empty() => {
            (Some(0), "Service has no supplementary groups".into(), Some("setgroups() to the declared list in the sandbox setup"))
        }
        "SupplementaryGroups=" => {
            (Some(1), "Service runs with supplementary groups".into(), Some("exec.supplementary_groups and the user's groups in /etc/group"))
        }
        "RemoveIPC=" if root => (None, "Service runs as root, option does not apply".into(), None),
        "RemoveIPC=" => yes_no(
            !launch.has(libc::CLONE_NEWIPC),
            "SysV IPC objects die with the service's IPC namespace",
            "Service user may leave SysV IPC objects around",
            Some("IPC namespace"),
        ),
        "PrivateDevices=" => {
            let dev_mounts = spec.filesystem.mounts.iter().any(|m| m.path.starts_with("/dev") && m.kind != MountKind::Inaccessible);
            let minimal = matches!(spec.filesystem.dev, DevMode::Minimal | DevMode::None) && !dev_mounts;
            yes_no(!minimal, "Service has no access to hardware devices", "Service has access to device nodes declared in its view", Some("minimal /dev"))
        }
        "DeviceAllow=" => {
            let dev_mounts = spec.filesystem.mounts.iter().any(|m| m.path.starts_with("/dev") && m.kind != MountKind::Inaccessible);
            match dev_mounts {
                true => (Some(5), "Device nodes beyond the minimal set are in the view".into(), None),
                false if !spec.filesystem.devices.is_empty() => {
                    let nodes: Vec<String> = spec.filesystem.devices.iter().map(|d| d.path.display().to_string()).collect();
                    (Some(2), format!("Beyond the minimal set, only {}", nodes.join(", ")), Some("filesystem.devices, from capexec's short list"))
                }
                false => (
                    Some(0),
                    "Only null, zero, full, random, urandom and tty exist in the view".into(),
                    Some("minimal /dev; every other mount nodev; mknod of devices refused by seccomp"),
                ),
            }
        }
        "PrivateMounts=" => (Some(0), "Service runs in its own mount namespace, unable to mount".into(), Some("mount namespace (slave), @mount not allowed")),
        "PrivateNetwork=" => yes_no(
            !launch.has(libc::CLONE_NEWNET),
            "Service has no access to the host's network (its own namespace, loopback only)",
            "Service has access to the host's network",
            Some("network namespace; declared sockets passed in or made by the broker"),
        ),
        "IPAddressDeny=" => ip_address_deny(spec),
        "PrivateTmp=" => {
            let tmp = visible(spec, Path::new("/tmp"));
            yes_no(
                matches!(tmp, Some(MountKind::ReadOnly | MountKind::ReadWrite | MountKind::ReadWriteExec | MountKind::Executable)),
                "Service has no access to other software's temporary files",
                "The host's /tmp is in the view",
                Some("private tmpfs /tmp"),
            )
        }
        "PrivateUsers=" => yes_no(
            !launch.has(libc::CLONE_NEWUSER),
            "Service runs in a user namespace that maps only its own ids",
            "Service has access to other users",
            Some("user namespace"),
        ),
        "ProtectControlGroups=" => yes_no(
            any_visible(spec, Path::new("/sys/fs/cgroup"), WRITABLE),
            "Service cannot modify the control group file system",
            "The cgroup file system is writable in the view",
            Some("not in the view (or read-only); cgroup namespace"),
        ),
        "ProtectKernelModules=" => {
            let readable = ["/usr/lib/modules", "/lib/modules"].iter().any(|p| any_visible(spec, Path::new(p), READABLE));
            let load = has_cap(&["CAP_SYS_MODULE"]) || any_allowed(&["init_module", "finit_module", "delete_module"]);
            match (load, readable) {
                (true, _) => (Some(1), "Service may load kernel modules".into(), None),
                (false, true) => (Some(1), "Service may read kernel modules (/usr/lib/modules is in the view)".into(), None),
                (false, false) => (Some(0), "Service cannot load or read kernel modules".into(), Some("module syscalls not allowed; /usr/lib/modules masked")),
            }
        }
        "ProtectKernelTunables=" => {
            let sys = any_visible(spec, Path::new("/sys"), WRITABLE) || any_visible(spec, Path::new("/proc/sys"), WRITABLE);
            yes_no(
                sys,
                "Service cannot alter kernel tunables (/proc/sys read-only or absent, /sys not writable)",
                "Kernel tunables are writable in the view",
                Some("own /proc with /proc/sys read-only; /sys not in the view"),
            )
        }
        "ProtectKernelLogs=" => {
            let kmsg = spec.filesystem.mounts.iter().any(|m| m.path == Path::new("/dev/kmsg") && m.kind != MountKind::Inaccessible);
            yes_no(
                kmsg || allowed("syslog") || has_cap(&["CAP_SYSLOG"]),
                "Service cannot read from or write to the kernel log ring buffer",
                "Service may reach the kernel log",
                Some("syslog() not allowed; /proc/kmsg masked; no /dev/kmsg"),
            )
        }
        "ProtectClock=" => yes_no(
            has_cap(&["CAP_SYS_TIME", "CAP_WAKE_ALARM"]) || systemd_set("@clock").iter().any(|s| allowed(s)),
            "Service cannot write to the hardware clock or system clock",
            "Service may set the clock",
            Some("@clock not allowed, CAP_SYS_TIME dropped, no /dev/rtc"),
        ),
        "ProtectHome=" => {
            let homes = ["/home", "/root", "/run/user"];
            if homes.iter().any(|h| any_visible(spec, Path::new(h), WRITABLE)) {
                (Some(10), "Home directories are writable in the view".into(), None)
            } else if homes.iter().any(|h| any_visible(spec, Path::new(h), READABLE)) {
                (Some(5), "Home directories are readable in the view".into(), None)
            } else {
                (Some(0), "Service has no access to home directories".into(), Some("not in the view"))
            }
        }
        "ProtectHostname=" => yes_no(
            !launch.has(libc::CLONE_NEWUTS) && (has_cap(&["CAP_SYS_ADMIN"]) || any_allowed(&["sethostname", "setdomainname"])),
            "Service cannot change the system's host or domain name",
            "Service may change the system's host name",
            Some("UTS namespace"),
        ),
        "ProtectSystem=" => {
            if ["/usr", "/boot", "/efi"].iter().any(|p| any_visible(spec, Path::new(p), WRITABLE)) {
                (Some(10), "Part of /usr or /boot is writable".into(), None)
            } else if any_visible(spec, Path::new("/etc"), WRITABLE) {
                (Some(5), "Part of /etc is writable".into(), None)
            } else {
                (
                    Some(0),
                    "Everything is read-only except the declared writable paths (like ProtectSystem=strict)".into(),
                    Some("the view: a read-only root with declared paths only"),
                )
            }
        }
        "RootDirectory=/RootImage=" => {
            (Some(0), "Service runs in a root of its own: a read-only tmpfs holding the declared paths".into(), Some("pivot_root into the view"))
        }
        "LockPersonality=" => match allowed("personality") {
            true => (Some(0), "personality() may only query or set plain Linux".into(), Some("seccomp argument rule")),
            false => (Some(0), "personality() is not allowed".into(), Some("seccomp allowlist")),
        },
        "MemoryDenyWriteExecute=" => yes_no(
            !launch.mdwe,
            "Service cannot create writable executable memory mappings",
            "Service may create writable executable memory mappings (exec.memory_deny_write_execute)",
            Some("PR_SET_MDWE: the kernel refuses the mapping, inherited by every process of the service"),
        ),
        "NoNewPrivileges=" => (Some(0), "Service processes cannot acquire new privileges".into(), Some("always set")),
        "NotifyAccess=" => match spec.service.kind {
            capexec_decl::spec::ServiceType::Notify => (Some(1), "Every process of the service may send notifications".into(), None),
            _ => (Some(0), "Service processes get no notification socket; capexec reports readiness".into(), None),
        },
        "Delegate=" => (Some(0), "Service does not maintain its own delegated control group subtree".into(), None),
        "RestrictRealtime=" => {
            let rt = spec.rlimits.get(&capexec_decl::spec::Resource::Rtprio).map(|r| r.hard.unwrap_or(u64::MAX)).unwrap_or(u64::MAX);
            let calls = any_allowed(&["sched_setscheduler", "sched_setattr", "sched_setparam"]);
            match (calls, rt == 0 && !has_cap(&["CAP_SYS_NICE"])) {
                (false, _) => (Some(0), "Scheduling policies cannot be changed".into(), Some("seccomp allowlist")),
                (true, true) => (Some(0), "Realtime scheduling is refused: RLIMIT_RTPRIO 0 and no CAP_SYS_NICE".into(), Some("rlimits.rtprio = 0")),
                (true, false) => (Some(1), "Service may acquire realtime scheduling".into(), None),
            }
        }
        "RestrictSUIDSGID=" => (
            Some(0),
            "Service cannot create SUID/SGID files".into(),
            Some("seccomp: no S_ISUID/S_ISGID in chmod, fchmod*, mkdir*, mknod*, creat, open*(O_CREAT); openat2 ENOSYS; the broker strips them"),
        ),
        "RestrictAddressFamilies=~AF_(INET|INET6)" => {
            yes_no(socket, "Service cannot allocate Internet sockets", "Service may allocate Internet sockets", Some("socket() not allowed"))
        }
        "RestrictAddressFamilies=~AF_UNIX" => {
            yes_no(socket, "Service cannot allocate local sockets", "Service may allocate local sockets", Some("socket() not allowed"))
        }
        "RestrictAddressFamilies=~AF_NETLINK" => {
            yes_no(socket, "Service cannot allocate netlink sockets", "Service may allocate netlink sockets", Some("socket() not allowed"))
        }
        "RestrictAddressFamilies=~AF_PACKET" => {
            (Some(0), "Service cannot allocate packet sockets".into(), Some("seccomp: socket() only for AF_UNIX, AF_INET, AF_INET6, AF_NETLINK"))
        }
        "RestrictAddressFamilies=~…" => {
            (Some(0), "Service cannot allocate exotic sockets".into(), Some("seccomp: socket() only for AF_UNIX, AF_INET, AF_INET6, AF_NETLINK"))
        }
        "SystemCallArchitectures=" => {
            (Some(0), "Only native x86_64 system calls: other architectures are killed, x32 answers ENOSYS".into(), Some("seccomp prologue"))
        }
        // systemd's order of checks (assess_umask), first match.
        "UMask=" => match spec.exec.umask {
            None => (Some(5), "capexec keeps the umask it was started with (0022 under systemd): new files are world-readable".into(), None),
            Some(m) if m & 0o002 == 0 => (Some(10), "Files created by service are world-writable by default".into(), None),
            Some(m) if m & 0o004 == 0 => (Some(5), "Files created by service are world-readable by default".into(), None),
            Some(m) if m & 0o020 == 0 => (Some(2), "Files created by service are group-writable by default".into(), None),
            Some(m) if m & 0o040 == 0 => (Some(1), "Files created by service are group-readable by default".into(), None),
            Some(_) => (Some(0), "Files created by service are accessible only by service's own user by default".into(), Some("exec.umask")),
        },
        "KeyringMode=" => yes_no(
            any_allowed(&["keyctl", "add_key", "request_key"]),
            "Service cannot reach any kernel keyring",
            "Service may use the session keyring it inherited",
            Some("keyring syscalls not allowed"),
        ),
        "ProtectProc=" => match (launch.has(libc::CLONE_NEWPID), spec.filesystem.proc) {
            (_, ProcMode::None) => (Some(0), "No /proc in the view".into(), None),
            (true, _) => (Some(0), "Service sees only its own processes".into(), Some("pid namespace with its own /proc")),
            // As ProtectProc=invisible, which systemd-analyze scores 0.
            (false, _) if launch.hidepid => {
                (Some(0), "Service sees only its own processes (/proc hidepid=invisible)".into(), Some("filesystem.host_processes = false"))
            }
            (false, _) => (Some(3), "Service sees every process of the host (filesystem.host_processes)".into(), None),
        },
        "ProcSubset=" => yes_no(
            spec.filesystem.proc == ProcMode::Full,
            "Service has no access to non-process /proc files",
            "Service has access to non-process /proc files (proc = \"full\")",
            None,
        ),
        "AmbientCapabilities=" => match caps.is_empty() {
            true => (Some(0), "Service process does not receive ambient capabilities".into(), None),
            false => (Some(1), format!("Service process keeps {}", caps.join(", ")), None),
        },
        other => unreachable!("check {other} has no answer"),
    }
}

/// The capability names a `CapabilityBoundingSet=~...` check covers.
fn cap_names(set: &str) -> Vec<&'static str> {
    let names: &[&str] = match set {
        "CAP_(CHOWN|FSETID|SETFCAP)" => &["CAP_CHOWN", "CAP_FSETID", "CAP_SETFCAP"],
        "CAP_(DAC_*|FOWNER|IPC_OWNER)" => &["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_IPC_OWNER"],
        "CAP_AUDIT_*" => &["CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_AUDIT_WRITE"],
        "CAP_MAC_*" => &["CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE"],
        "CAP_NET_(BIND_SERVICE|BROADCAST|RAW)" => &["CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW"],
        "CAP_SET(UID|GID|PCAP)" => &["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"],
        "CAP_SYS_(NICE|RESOURCE)" => &["CAP_SYS_NICE", "CAP_SYS_RESOURCE"],
        "CAP_BLOCK_SUSPEND" => &["CAP_BLOCK_SUSPEND"],
        "CAP_BPF" => &["CAP_BPF"],
        "CAP_IPC_LOCK" => &["CAP_IPC_LOCK"],
        "CAP_KILL" => &["CAP_KILL"],
        "CAP_LEASE" => &["CAP_LEASE"],
        "CAP_LINUX_IMMUTABLE" => &["CAP_LINUX_IMMUTABLE"],
        "CAP_MKNOD" => &["CAP_MKNOD"],
        "CAP_NET_ADMIN" => &["CAP_NET_ADMIN"],
        "CAP_SYSLOG" => &["CAP_SYSLOG"],
        "CAP_SYS_ADMIN" => &["CAP_SYS_ADMIN"],
        "CAP_SYS_BOOT" => &["CAP_SYS_BOOT"],
        "CAP_SYS_CHROOT" => &["CAP_SYS_CHROOT"],
        "CAP_SYS_MODULE" => &["CAP_SYS_MODULE"],
        "CAP_SYS_PACCT" => &["CAP_SYS_PACCT"],
        "CAP_SYS_PTRACE" => &["CAP_SYS_PTRACE"],
        "CAP_SYS_RAWIO" => &["CAP_SYS_RAWIO"],
        "CAP_SYS_TIME" => &["CAP_SYS_TIME"],
        "CAP_SYS_TTY_CONFIG" => &["CAP_SYS_TTY_CONFIG"],
        "CAP_WAKE_ALARM" => &["CAP_WAKE_ALARM"],
        other => unreachable!("capability check {other} unknown"),
    };
    names.to_vec()
}

/// IPAddressDeny=: which IP addresses the service can exchange packets with.
/// In its own network namespace only through what capexec passes in (preopened
/// sockets) or the broker makes (bind and connect grants).
/// In the host's namespace with `[broker.net]` grants, the network guard
/// holds them on every socket (as systemd's IPAddressAllow= does).
fn ip_address_deny(spec: &ServiceSpec) -> Answer {
    if spec.namespaces.net != NetMode::None && !spec.broker.guards_net() {
        return (Some(10), "Service is in the host's network namespace: no IP address restriction".into(), None);
    }
    use capexec_decl::spec::{ListenAddr, PreopenKind};
    // Whether each reachable address (range) is all loopback.
    let mut loopback: Vec<bool> = Vec::new();
    for p in &spec.preopen {
        if let PreopenKind::Listen { address: ListenAddr::Tcp(a) | ListenAddr::Udp(a), .. } = &p.kind {
            loopback.push(a.ip().is_loopback());
        }
    }
    for g in spec.broker.bind.iter().chain(&spec.broker.connect) {
        let whole = match g.addr {
            std::net::IpAddr::V4(_) => g.prefix >= 8,
            std::net::IpAddr::V6(_) => g.prefix == 128,
        };
        loopback.push(g.addr.is_loopback() && whole);
    }
    for r in &spec.broker.ping {
        let whole = if r.addr.is_ipv4() { r.prefix >= 8 } else { r.prefix == 128 };
        loopback.push(r.addr.is_loopback() && whole);
    }
    let credit = match spec.namespaces.net {
        NetMode::None => Some("network namespace: only passed-in sockets and broker grants reach the host"),
        NetMode::Host => Some("network guard: every socket of the service reaches only its [broker.net] grants"),
    };
    if loopback.is_empty() && spec.namespaces.net == NetMode::Host {
        (Some(0), "Service's sockets can reach no IP address ([broker.net] guard = true, no grants)".into(), credit)
    } else if loopback.is_empty() {
        (Some(0), "Service can reach no IP address outside its own namespace".into(), credit)
    } else if loopback.iter().all(|l| *l) {
        (Some(2), "Service can reach only localhost addresses (its sockets and grants)".into(), credit)
    } else {
        (Some(5), "Service can reach non-localhost addresses through its sockets or grants".into(), credit)
    }
}
