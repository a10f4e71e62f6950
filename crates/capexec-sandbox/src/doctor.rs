//! What this kernel supports, for `capexec doctor` and for refusing to start
//! when a required mechanism is missing.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct KernelSupport {
    pub kernel: String,
    /// 0 when Landlock is unavailable.
    pub landlock_abi: i64,
    pub seccomp_filter: bool,
    pub seccomp_user_notif: bool,
    pub seccomp_actions: Vec<String>,
    pub user_namespaces: bool,
    pub max_user_namespaces: Option<u64>,
    pub cgroup_v2: Option<CgroupMount>,
    pub cgroup_v1: Vec<CgroupMount>,
    pub lsms: Vec<String>,
    /// `bpf` is in the LSM list.
    pub bpf_lsm: bool,
    /// Whether an LSM-type BPF program loads (listed is not loadable).
    pub bpf_lsm_programs: BpfProbe,
    /// Whether a cgroup sock_addr BPF program loads and attaches to a cgroup
    /// v2 directory (only root can tell).
    pub cgroup_bpf: Option<BpfProbe>,
    pub pidfd: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupMount {
    pub path: String,
    pub controllers: Vec<String>,
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn lsm_name(id: u64) -> String {
    // include/uapi/linux/lsm.h
    match id {
        100 => "capability",
        101 => "selinux",
        102 => "smack",
        103 => "tomoyo",
        104 => "apparmor",
        105 => "yama",
        106 => "loadpin",
        107 => "safesetid",
        108 => "lockdown",
        109 => "bpf",
        110 => "landlock",
        111 => "ima",
        112 => "evm",
        113 => "ipe",
        _ => return format!("lsm-{id}"),
    }
    .to_owned()
}

/// Probes by asking the kernel, not by reading version numbers.
pub fn probe() -> KernelSupport {
    let actions: Vec<String> = read("/proc/sys/kernel/seccomp/actions_avail").map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
    let max_userns = read("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse().ok());
    let mut lsms: Vec<String> = match crate::sys::lsm_list_modules() {
        Ok(ids) => ids.into_iter().map(lsm_name).collect(),
        Err(_) => read("/sys/kernel/security/lsm").map(|s| s.split(',').map(str::to_owned).collect()).unwrap_or_default(),
    };
    lsms.dedup();
    let (v2, v1) = cgroups();
    let cgroup_bpf = match (&v2, nix::unistd::geteuid().is_root()) {
        (Some(c), true) => Some(BpfProbe::from(crate::sys::probe_cgroup_bpf(std::path::Path::new(&c.path)))),
        _ => None,
    };
    KernelSupport {
        kernel: nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        landlock_abi: crate::sys::landlock_abi(),
        seccomp_filter: actions.iter().any(|a| a == "errno"),
        seccomp_user_notif: actions.iter().any(|a| a == "user_notif"),
        seccomp_actions: actions,
        user_namespaces: max_userns.is_some_and(|n| n > 0) && userns_works(),
        max_user_namespaces: max_userns,
        cgroup_v2: v2,
        cgroup_v1: v1,
        bpf_lsm: lsms.iter().any(|l| l == "bpf"),
        bpf_lsm_programs: BpfProbe::from(crate::sys::probe_bpf_lsm()),
        cgroup_bpf,
        lsms,
        pidfd: pidfd_works(),
    }
}

fn userns_works() -> bool {
    crate::sys::user_namespaces_work()
}

fn pidfd_works() -> bool {
    crate::sys::pidfd_open(std::process::id() as libc::pid_t, 0).is_ok()
}

/// What loading (and attaching) a BPF program of one kind did on this kernel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "error")]
pub enum BpfProbe {
    Works,
    /// The kernel refused: the errno's text.
    Refused(String),
}

impl BpfProbe {
    fn from(r: std::io::Result<()>) -> BpfProbe {
        match r {
            Ok(()) => BpfProbe::Works,
            Err(e) => BpfProbe::Refused(e.to_string()),
        }
    }
}

/// cgroup mounts from /proc/self/mountinfo: the v2 one (with its controllers)
/// and every v1 hierarchy (with the controllers in its mount options).
pub fn cgroups() -> (Option<CgroupMount>, Vec<CgroupMount>) {
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in read("/proc/self/mountinfo").unwrap_or_default().lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = pre.split_whitespace().nth(4).unwrap_or("").to_owned();
        let mut post = post.split_whitespace();
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let opts = post.next().unwrap_or("");
        match fstype {
            "cgroup2" => {
                let controllers =
                    read(&format!("{mountpoint}/cgroup.controllers")).map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
                v2 = Some(CgroupMount { path: mountpoint, controllers });
            }
            "cgroup" => {
                let known = [
                    "cpu",
                    "cpuacct",
                    "cpuset",
                    "memory",
                    "devices",
                    "freezer",
                    "net_cls",
                    "blkio",
                    "perf_event",
                    "net_prio",
                    "hugetlb",
                    "pids",
                    "rdma",
                    "misc",
                ];
                let controllers = opts.split(',').filter(|o| known.contains(o) || o.starts_with("name=")).map(str::to_owned).collect();
                v1.push(CgroupMount { path: mountpoint, controllers });
            }
            _ => {}
        }
    }
    (v2, v1)
}
