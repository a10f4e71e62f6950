//! `linux.resources`' limits (pids, memory, cpu, cpuset, block I/O,
//! huge pages, network classes and priorities, rdma, v2 files), in cgroups of the
//! container's own at `linux.cgroupsPath`: for each controller, in the
//! unified (v2) hierarchy where it has the controller, else in the
//! controller's v1 hierarchy (hybrid hosts, such as these machines, keep
//! them there). The container's init is written into them before it runs
//! anything (`SpawnOptions::cgroup_procs`), so every process of the
//! container is born inside.

use std::path::{Component, Path, PathBuf};

/// One value of the config, as a controller's file takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The config's field, for errors (`linux.resources.cpu.quota`).
    pub field: String,
    /// The controller's v1 name (its v2 name: [`v2_controller`]).
    pub controller: String,
    /// The v1 file and what is written to it; `None`: a v2 file only
    /// (`linux.resources.unified`).
    pub v1: Option<(String, String)>,
    pub v2: V2,
}

/// What a [`Setting`] is in the unified hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2 {
    File(String, String),
    /// No control there, and none needed (`swappiness`: the kernel decides).
    Skip,
    /// No control there, and the container would run without what it asks.
    Refuse,
}

fn v2(file: &str, value: impl Into<String>) -> V2 {
    V2::File(file.to_owned(), value.into())
}

/// A controller's name in the unified hierarchy (blkio became io).
fn v2_controller(v1: &str) -> &str {
    match v1 {
        "blkio" => "io",
        other => other,
    }
}

/// The limits capexec-oci sets, in the order they are written (a period
/// before its quota, a memory limit before the swap limit that must not
/// be below it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Limits {
    pub settings: Vec<Setting>,
}

impl Limits {
    pub fn of(r: Option<&oci_spec::runtime::LinuxResources>) -> Limits {
        let mut l = Limits::default();
        let Some(r) = r else { return l };
        let mut add = |field: &str, controller: &str, v1: Option<(&str, String)>, v2| {
            l.settings.push(Setting { field: field.to_owned(), controller: controller.to_owned(), v1: v1.map(|(f, v)| (f.to_owned(), v)), v2 })
        };
        // A pids limit of 0 or less is none, as the runtime-spec says.
        if let Some(n) = r.pids().as_ref().map(|p| p.limit()).filter(|n| *n > 0) {
            add("linux.resources.pids.limit", "pids", Some(("pids.max", n.to_string())), v2("pids.max", n.to_string()));
        }
        if let Some(m) = r.memory() {
            let limit = m.limit().filter(|l| *l > 0);
            if let Some(n) = limit {
                add("linux.resources.memory.limit", "memory", Some(("memory.limit_in_bytes", n.to_string())), v2("memory.max", n.to_string()));
            }
            if let Some(n) = m.reservation() {
                add("linux.resources.memory.reservation", "memory", Some(("memory.soft_limit_in_bytes", n.to_string())), v2("memory.low", max(n)));
            }
            if let Some(n) = m.swap() {
                // v1 limits memory and swap together, v2 swap alone.
                let to = match (n, limit) {
                    (n, _) if n < 0 => v2("memory.swap.max", "max"),
                    (n, Some(l)) if n >= l => v2("memory.swap.max", (n - l).to_string()),
                    _ => V2::Refuse,
                };
                add("linux.resources.memory.swap", "memory", Some(("memory.memsw.limit_in_bytes", n.to_string())), to);
            }
            if let Some(n) = m.swappiness() {
                add("linux.resources.memory.swappiness", "memory", Some(("memory.swappiness", n.to_string())), V2::Skip);
            }
            if m.disable_oom_killer() == Some(true) {
                add("linux.resources.memory.disableOOMKiller", "memory", Some(("memory.oom_control", "1".into())), V2::Refuse);
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(n) = c.shares() {
                // cgroup v2's weight for v1's shares (runc's conversion).
                let weight = 1 + (n.clamp(2, 262144) - 2) * 9999 / 262142;
                add("linux.resources.cpu.shares", "cpu", Some(("cpu.shares", n.to_string())), v2("cpu.weight", weight.to_string()));
            }
            let quota = c.quota().filter(|q| *q != 0);
            if let Some(n) = c.period() {
                let to = v2("cpu.max", format!("{} {n}", quota.filter(|q| *q > 0).map_or("max".to_owned(), |q| q.to_string())));
                add("linux.resources.cpu.period", "cpu", Some(("cpu.cfs_period_us", n.to_string())), to);
            }
            if let Some(n) = quota {
                // With a period, cpu.max was written with it.
                let to = if c.period().is_some() { V2::Skip } else { v2("cpu.max", if n > 0 { n.to_string() } else { "max".into() }) };
                add("linux.resources.cpu.quota", "cpu", Some(("cpu.cfs_quota_us", n.to_string())), to);
            }
            if let Some(n) = c.burst() {
                add("linux.resources.cpu.burst", "cpu", Some(("cpu.cfs_burst_us", n.to_string())), v2("cpu.max.burst", n.to_string()));
            }
            if let Some(n) = c.realtime_period() {
                add("linux.resources.cpu.realtimePeriod", "cpu", Some(("cpu.rt_period_us", n.to_string())), V2::Refuse);
            }
            if let Some(n) = c.realtime_runtime() {
                add("linux.resources.cpu.realtimeRuntime", "cpu", Some(("cpu.rt_runtime_us", n.to_string())), V2::Refuse);
            }
            if let Some(v) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
                add("linux.resources.cpu.cpus", "cpuset", Some(("cpuset.cpus", v.clone())), v2("cpuset.cpus", v.clone()));
            }
            if let Some(v) = c.mems().as_ref().filter(|v| !v.is_empty()) {
                add("linux.resources.cpu.mems", "cpuset", Some(("cpuset.mems", v.clone())), v2("cpuset.mems", v.clone()));
            }
        }
        if let Some(b) = r.block_io() {
            // v2's io.weight (1..10000) for v1's weight (10..1000), as runc converts.
            let weight = |w: u16| 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
            if let Some(w) = b.weight() {
                add("linux.resources.blockIO.weight", "blkio", Some(("blkio.weight", w.to_string())), v2("io.weight", format!("default {}", weight(w))));
            }
            if let Some(w) = b.leaf_weight() {
                add("linux.resources.blockIO.leafWeight", "blkio", Some(("blkio.leaf_weight", w.to_string())), V2::Refuse);
            }
            for (i, d) in b.weight_device().iter().flatten().enumerate() {
                let dev = format!("{}:{}", d.major(), d.minor());
                if let Some(w) = d.weight() {
                    let field = format!("linux.resources.blockIO.weightDevice[{i}].weight");
                    add(&field, "blkio", Some(("blkio.weight_device", format!("{dev} {w}"))), v2("io.weight", format!("{dev} {}", weight(w))));
                }
                if let Some(w) = d.leaf_weight() {
                    let field = format!("linux.resources.blockIO.weightDevice[{i}].leafWeight");
                    add(&field, "blkio", Some(("blkio.leaf_weight_device", format!("{dev} {w}"))), V2::Refuse);
                }
            }
            let throttles = [
                ("throttleReadBpsDevice", b.throttle_read_bps_device(), "blkio.throttle.read_bps_device", "rbps"),
                ("throttleWriteBpsDevice", b.throttle_write_bps_device(), "blkio.throttle.write_bps_device", "wbps"),
                ("throttleReadIOPSDevice", b.throttle_read_iops_device(), "blkio.throttle.read_iops_device", "riops"),
                ("throttleWriteIOPSDevice", b.throttle_write_iops_device(), "blkio.throttle.write_iops_device", "wiops"),
            ];
            for (name, list, file, key) in throttles {
                for (i, d) in list.iter().flatten().enumerate() {
                    let (dev, rate) = (format!("{}:{}", d.major(), d.minor()), d.rate());
                    add(
                        &format!("linux.resources.blockIO.{name}[{i}]"),
                        "blkio",
                        Some((file, format!("{dev} {rate}"))),
                        v2("io.max", format!("{dev} {key}={rate}")),
                    );
                }
            }
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let (size, limit) = (h.page_size(), h.limit());
            let field = format!("linux.resources.hugepageLimits[{i}]");
            // A size names a file: letters and digits only (2MB, 1GB).
            if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
                add(&field, "hugetlb", None, V2::Refuse);
                continue;
            }
            let v1 = format!("hugetlb.{size}.limit_in_bytes");
            add(&field, "hugetlb", Some((&v1, limit.to_string())), V2::File(format!("hugetlb.{size}.max"), max(limit)));
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                add("linux.resources.network.classID", "net_cls", Some(("net_cls.classid", id.to_string())), V2::Refuse);
            }
            for (i, p) in n.priorities().iter().flatten().enumerate() {
                let field = format!("linux.resources.network.priorities[{i}]");
                add(&field, "net_prio", Some(("net_prio.ifpriomap", format!("{} {}", p.name(), p.priority()))), V2::Refuse);
            }
        }
        let mut rdma: Vec<_> = r.rdma().iter().flatten().collect();
        rdma.sort_by_key(|(dev, _)| dev.as_str());
        for (dev, l) in rdma {
            let field = format!("linux.resources.rdma.{dev}");
            // A device name is one word of the file's line.
            if dev.is_empty() || dev.chars().any(|c| c.is_whitespace()) {
                add(&field, "rdma", None, V2::Refuse);
                continue;
            }
            let n = |v: Option<u32>| v.map_or("max".to_owned(), |v| v.to_string());
            let line = format!("{dev} hca_handle={} hca_object={}", n(l.hca_handles()), n(l.hca_objects()));
            add(&field, "rdma", Some(("rdma.max", line.clone())), v2("rdma.max", line));
        }
        let mut unified: Vec<_> = r.unified().iter().flatten().collect();
        unified.sort();
        for (key, value) in unified {
            // CONTROLLER.FILE of the container's own v2 cgroup; nothing that
            // could name another file, nor the runtime's cgroup.* files.
            let controller = key.split_once('.').map(|(c, _)| c).filter(|c| !c.is_empty() && *c != "cgroup" && !key.contains('/'));
            let field = format!("linux.resources.unified.{key}");
            match controller {
                Some(c) => add(&field, c, None, V2::File(key.clone(), value.clone())),
                None => add(&field, "cgroup", None, V2::Refuse),
            }
        }
        l
    }

    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }
}

/// A v1 byte count as v2 writes it (`-1`: no limit).
fn max(n: i64) -> String {
    if n < 0 {
        "max".into()
    } else {
        n.to_string()
    }
}

/// Where the cgroups of one container are, and what goes into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    /// The container's cgroup in each hierarchy used, made by [`Cgroups::create`].
    pub dirs: Vec<PathBuf>,
    /// Their ancestors that did not exist yet, made with them: deepest first.
    made: Vec<PathBuf>,
    /// v2 only: `cgroup.subtree_control` files of the ancestors, with the
    /// controller to enable in them.
    enable: Vec<(PathBuf, String)>,
    /// v1 cpuset directories to make, top first, each given its parent's
    /// cpus and memory nodes.
    inherit: Vec<PathBuf>,
    writes: Vec<(PathBuf, String)>,
}

/// Why the config's cgroups cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("`linux.cgroupsPath`: {}: a systemd cgroup (slice:prefix:name) is not set up by capexec-oci: give a path", .0.display())]
    Systemd(PathBuf),
    #[error("`linux.cgroupsPath`: {}: not a cgroup path (no `..`, not the root)", .0.display())]
    BadPath(PathBuf),
    /// A limit (`field`) this host's cgroups have no control for.
    #[error("`linux.cgroupsPath`: `{field}`: {why}")]
    NoControl { field: String, why: String },
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
}

/// The cgroup filesystem's mount point (a parameter for the tests).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroups for `limits` under `root`, at `cgroups_path` (absolute:
/// from each hierarchy's root; relative or absent: under `capexec-oci/`,
/// the container's id when absent). `None` when there is nothing to limit.
pub fn plan(root: &Path, limits: &Limits, cgroups_path: Option<&Path>, id: &str) -> Result<Option<Cgroups>, CgroupError> {
    if limits.is_empty() {
        return Ok(None);
    }
    let rel: PathBuf = match cgroups_path {
        Some(p) if p.as_os_str().as_encoded_bytes().contains(&b':') => return Err(CgroupError::Systemd(p.to_owned())),
        Some(p) if p.is_absolute() => p.strip_prefix("/").expect("absolute").to_owned(),
        Some(p) => Path::new("capexec-oci").join(p),
        None => Path::new("capexec-oci").join(id),
    };
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(CgroupError::BadPath(rel));
    }
    let mut c = Cgroups { dirs: Vec::new(), made: Vec::new(), enable: Vec::new(), inherit: Vec::new(), writes: Vec::new() };
    for set in &limits.settings {
        let controller = set.controller.as_str();
        let no_control = |why: String| CgroupError::NoControl { field: set.field.clone(), why };
        let (dir, write) = match unified_with(root, v2_controller(controller)) {
            Some(base) => {
                let mut at = base.clone();
                let v2 = v2_controller(controller);
                for part in rel.components() {
                    if !c.enable.iter().any(|(f, e)| *f == at.join("cgroup.subtree_control") && e == v2) {
                        c.enable.push((at.join("cgroup.subtree_control"), v2.to_owned()));
                    }
                    at = at.join(part);
                }
                match &set.v2 {
                    V2::File(file, value) => (at, Some((file.clone(), value.clone()))),
                    V2::Skip => (at, None),
                    V2::Refuse => return Err(no_control(format!("the cgroup v2 hierarchy that has the {v2} controller here has no control for it"))),
                }
            }
            None => {
                let Some((file, value)) = &set.v1 else {
                    return Err(no_control(format!("a cgroup v2 file, and no v2 hierarchy here has the {controller} controller")));
                };
                let base = root.join(controller);
                if !base.join("cgroup.procs").exists() {
                    return Err(no_control(format!(
                        "no cgroup hierarchy has the {controller} controller here (neither {} nor a v2 hierarchy)",
                        base.display()
                    )));
                }
                let dir = base.join(&rel);
                // A new v1 cpuset has no cpus and no memory nodes: none
                // could run in it. Each made one starts with its parent's.
                if controller == "cpuset" && !c.dirs.contains(&dir) {
                    let mut fresh: Vec<PathBuf> = dir.ancestors().take_while(|a| !a.exists()).map(Path::to_owned).collect();
                    fresh.reverse();
                    c.inherit.extend(fresh);
                }
                (dir, Some((file.clone(), value.clone())))
            }
        };
        if let Some((file, value)) = write {
            c.writes.push((dir.join(file), value));
        }
        if !c.dirs.contains(&dir) {
            for a in dir.ancestors().skip(1).take_while(|a| !a.exists()) {
                c.made.push(a.to_owned());
            }
            c.dirs.push(dir);
        }
    }
    Ok(Some(c))
}

/// The v2 hierarchy that offers `controller`: mounted at `root` itself, or
/// at `root/unified` on a hybrid host.
fn unified_with(root: &Path, controller: &str) -> Option<PathBuf> {
    [root.to_owned(), root.join("unified")]
        .into_iter()
        .find(|base| std::fs::read_to_string(base.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|x| x == controller)))
}

impl Cgroups {
    /// Makes the cgroups and sets the limits; returns the `cgroup.procs`
    /// files the container's init goes into. What it made goes again on
    /// error.
    pub fn create(&self) -> Result<Vec<PathBuf>, CgroupError> {
        let fail = |op: String, source: std::io::Error| {
            self.remove();
            CgroupError::Io { op, source }
        };
        for (file, controller) in &self.enable {
            let parent = file.parent().expect("a file in a directory");
            std::fs::create_dir_all(parent).map_err(|e| fail(format!("create the cgroup {}", parent.display()), e))?;
            let on = std::fs::read_to_string(file).unwrap_or_default();
            if !on.split_whitespace().any(|c| c == *controller) {
                std::fs::write(file, format!("+{controller}")).map_err(|e| fail(format!("enable {controller} in {}", file.display()), e))?;
            }
        }
        for d in &self.inherit {
            std::fs::create_dir_all(d).map_err(|e| fail(format!("create the cgroup {}", d.display()), e))?;
            let parent = d.parent().expect("below a hierarchy's root");
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let value = std::fs::read_to_string(parent.join(file)).map_err(|e| fail(format!("read {}", parent.join(file).display()), e))?;
                std::fs::write(d.join(file), value.trim()).map_err(|e| fail(format!("write {} to {}", value.trim(), d.join(file).display()), e))?;
            }
        }
        for d in &self.dirs {
            std::fs::create_dir_all(d).map_err(|e| fail(format!("create the cgroup {}", d.display()), e))?;
        }
        for (file, value) in &self.writes {
            let file = bfq_instead(file);
            std::fs::write(&file, value).map_err(|e| fail(format!("write {value} to {}", file.display()), e))?;
        }
        Ok(self.dirs.iter().map(|d| d.join("cgroup.procs")).collect())
    }

    /// What [`Cgroups::create`] makes, in the order to remove it: the
    /// container's cgroups, then the ancestors made for them, deepest first
    /// (what the container's saved state keeps).
    pub fn to_remove(&self) -> Vec<PathBuf> {
        self.dirs.iter().chain(&self.made).cloned().collect()
    }

    /// Removes the container's cgroups (once its processes are gone).
    pub fn remove(&self) {
        remove(&self.to_remove());
    }

    /// Kills what is left in the cgroups (what outlived the container's
    /// init, which no pid namespace took down), waits for it to go, and
    /// removes them.
    pub fn end(&self) {
        let left = || procs(&self.dirs);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !left().is_empty() && std::time::Instant::now() < deadline {
            for pid in left() {
                // In the container's cgroup: the container's own.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.remove();
    }
}

/// v1's blkio.weight and blkio.weight_device are CFQ's; with BFQ (today's
/// kernels) they are blkio.bfq.weight and blkio.bfq.weight_device.
fn bfq_instead(file: &Path) -> PathBuf {
    match file.file_name().and_then(|n| n.to_str()) {
        Some(n @ ("blkio.weight" | "blkio.weight_device")) if !file.exists() => file.with_file_name(format!("blkio.bfq.{}", &n["blkio.".len()..])),
        _ => file.to_owned(),
    }
}

/// The processes in cgroup directories (host pids).
pub fn procs(dirs: &[PathBuf]) -> Vec<i32> {
    let mut all: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|p| p.split_whitespace().filter_map(|x| x.parse().ok()).collect::<Vec<i32>>())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Removes cgroup directories ([`Cgroups::to_remove`], a container's saved
/// state), in that order; missing ones are no error.
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        // A cgroup still in use keeps EBUSY, one with another container in
        // it ENOTEMPTY: nothing else to do about them here.
        let _ = std::fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /sys/fs/cgroup: v1 hierarchies for `v1`, a unified one
    /// offering `unified` at `unified/`.
    fn fake(tag: &str, v1: &[&str], unified: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("capexec-oci-cgroups-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for c in v1 {
            std::fs::create_dir_all(root.join(c)).unwrap();
            std::fs::write(root.join(c).join("cgroup.procs"), "").unwrap();
        }
        std::fs::create_dir_all(root.join("unified")).unwrap();
        std::fs::write(root.join("unified/cgroup.controllers"), unified).unwrap();
        root
    }

    fn limits(resources: serde_json::Value) -> Limits {
        Limits::of(Some(&serde_json::from_value(resources).unwrap()))
    }

    #[test]
    fn limits_go_to_the_hierarchy_that_has_the_controller() {
        let root = fake("hybrid", &["pids", "memory"], "hugetlb");
        let l = limits(serde_json::json!({"pids": {"limit": 5}, "memory": {"limit": 1 << 26}}));
        let c = plan(&root, &l, None, "web").unwrap().unwrap();
        assert_eq!(c.dirs, [root.join("pids/capexec-oci/web"), root.join("memory/capexec-oci/web")]);
        assert_eq!(c.writes[1], (root.join("memory/capexec-oci/web/memory.limit_in_bytes"), (1 << 26).to_string()));
        let procs = c.create().unwrap();
        assert_eq!(std::fs::read_to_string(root.join("pids/capexec-oci/web/pids.max")).unwrap(), "5");
        assert_eq!(procs[0], root.join("pids/capexec-oci/web/cgroup.procs"));
        // The fake's files are no cgroup's: only empty directories go.
        for d in c.to_remove() {
            for f in std::fs::read_dir(&d).unwrap() {
                let f = f.unwrap().path();
                if f.is_file() {
                    std::fs::remove_file(f).unwrap();
                }
            }
        }
        c.remove();
        assert!(!root.join("pids/capexec-oci").exists() && !root.join("memory/capexec-oci").exists() && root.join("pids").exists());

        let root = fake("v2", &[], "cpu pids memory");
        let c = plan(&root, &limits(serde_json::json!({"pids": {"limit": 5}})), Some(Path::new("/pods/a")), "x").unwrap().unwrap();
        assert_eq!(c.dirs, [root.join("unified/pods/a")]);
        c.create().unwrap();
        assert_eq!(std::fs::read_to_string(root.join("unified/cgroup.subtree_control")).unwrap(), "+pids");
        assert_eq!(std::fs::read_to_string(root.join("unified/pods/a/pids.max")).unwrap(), "5");
    }

    #[test]
    fn nothing_to_limit_is_no_cgroup_and_bad_paths_are_refused() {
        let root = fake("refuse", &["pids"], "");
        assert_eq!(plan(&root, &Limits::default(), None, "x").unwrap(), None);
        let l = limits(serde_json::json!({"pids": {"limit": 1}}));
        for (path, want) in [("/a/../b", "not a cgroup path"), ("system.slice:libpod:x", "systemd cgroup"), ("/", "not a cgroup path")] {
            let e = plan(&root, &l, Some(Path::new(path)), "x").unwrap_err().to_string();
            assert!(e.contains(want), "{path}: {e}");
        }
        let e = plan(&root, &limits(serde_json::json!({"pids": {"limit": 0}, "memory": {"limit": 1}})), None, "x").unwrap_err().to_string();
        assert!(e.contains("`linux.resources.memory.limit`: no cgroup hierarchy has the memory controller"), "{e}");
    }

    #[test]
    fn cpu_and_memory_settings_in_v1_and_v2() {
        let all = serde_json::json!({"cpu": {"shares": 2048, "period": 500000, "quota": 200000, "burst": 1000, "realtimePeriod": 1000000, "cpus": "0", "mems": "0"},
                                      "memory": {"limit": 50593792, "reservation": 50593792, "swap": 101187584, "swappiness": 10, "disableOOMKiller": true}});
        let root = fake("v1", &["cpu", "cpuset", "memory"], "");
        std::fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        let c = plan(&root, &limits(all.clone()), Some(Path::new("a/b")), "x").unwrap().unwrap();
        let w = |dir: &str, f: &str, v: &str| (root.join(dir).join("capexec-oci/a/b").join(f), v.to_owned());
        assert_eq!(
            c.writes,
            [
                w("memory", "memory.limit_in_bytes", "50593792"),
                w("memory", "memory.soft_limit_in_bytes", "50593792"),
                w("memory", "memory.memsw.limit_in_bytes", "101187584"),
                w("memory", "memory.swappiness", "10"),
                w("memory", "memory.oom_control", "1"),
                w("cpu", "cpu.shares", "2048"),
                w("cpu", "cpu.cfs_period_us", "500000"),
                w("cpu", "cpu.cfs_quota_us", "200000"),
                w("cpu", "cpu.cfs_burst_us", "1000"),
                w("cpu", "cpu.rt_period_us", "1000000"),
                w("cpuset", "cpuset.cpus", "0"),
                w("cpuset", "cpuset.mems", "0"),
            ]
        );
        c.create().unwrap();
        // Made cpusets start with their parent's cpus and memory nodes.
        assert_eq!(std::fs::read_to_string(root.join("cpuset/capexec-oci/cpuset.cpus")).unwrap(), "0-1");
        assert_eq!(std::fs::read_to_string(root.join("cpuset/capexec-oci/a/cpuset.mems")).unwrap(), "0");

        let root = fake("v2-cpu", &[], "cpu cpuset memory");
        let mut v2 = all.clone();
        v2["cpu"].as_object_mut().unwrap().remove("realtimePeriod");
        v2["memory"].as_object_mut().unwrap().remove("disableOOMKiller");
        let c = plan(&root, &limits(v2), None, "x").unwrap().unwrap();
        let w = |f: &str, v: &str| (root.join("unified/capexec-oci/x").join(f), v.to_owned());
        assert_eq!(
            c.writes,
            [
                w("memory.max", "50593792"),
                w("memory.low", "50593792"),
                w("memory.swap.max", "50593792"),
                w("cpu.weight", "79"),
                w("cpu.max", "200000 500000"),
                w("cpu.max.burst", "1000"),
                w("cpuset.cpus", "0"),
                w("cpuset.mems", "0"),
            ]
        );
        for (field, edit) in [
            ("realtimePeriod", serde_json::json!({"cpu": {"realtimePeriod": 1}})),
            ("disableOOMKiller", serde_json::json!({"memory": {"disableOOMKiller": true}})),
        ] {
            let e = plan(&root, &limits(edit), None, "x").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("has no control for it"), "{e}");
        }
    }

    #[test]
    fn block_io_huge_pages_network_and_v2_files() {
        let r = serde_json::json!({
            "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}], "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 7}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3}},
        });
        let root = fake("v1-io", &["blkio", "hugetlb", "net_cls", "net_prio", "rdma"], "");
        let c = plan(&root, &limits(r.clone()), None, "x").unwrap().unwrap();
        let w = |dir: &str, f: &str, v: &str| (root.join(dir).join("capexec-oci/x").join(f), v.to_owned());
        assert_eq!(
            c.writes,
            [
                w("blkio", "blkio.weight", "500"),
                w("blkio", "blkio.weight_device", "8:0 100"),
                w("blkio", "blkio.throttle.read_bps_device", "8:0 1024"),
                w("blkio", "blkio.throttle.write_iops_device", "8:16 7"),
                w("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
                w("net_cls", "net_cls.classid", "1048577"),
                w("net_prio", "net_prio.ifpriomap", "eth0 5"),
                w("rdma", "rdma.max", "mlx5_1 hca_handle=3 hca_object=max"),
            ]
        );
        // Where blkio.weight is missing (BFQ), blkio.bfq.weight takes it.
        std::fs::create_dir_all(root.join("blkio/capexec-oci/x")).unwrap();
        std::fs::write(root.join("blkio/capexec-oci/x/blkio.bfq.weight"), "").unwrap();
        assert_eq!(bfq_instead(&root.join("blkio/capexec-oci/x/blkio.weight")), root.join("blkio/capexec-oci/x/blkio.bfq.weight"));

        let root = fake("v2-io", &[], "io hugetlb memory rdma");
        let mut r2 = r.clone();
        r2.as_object_mut().unwrap().remove("network");
        r2["unified"] = serde_json::json!({"memory.high": "1000000", "io.latency": "8:0 target=10"});
        let c = plan(&root, &limits(r2), None, "x").unwrap().unwrap();
        let w = |f: &str, v: &str| (root.join("unified/capexec-oci/x").join(f), v.to_owned());
        assert_eq!(
            c.writes,
            [
                w("io.weight", "default 4950"),
                w("io.weight", "8:0 910"),
                w("io.max", "8:0 rbps=1024"),
                w("io.max", "8:16 wiops=7"),
                w("hugetlb.2MB.max", "4194304"),
                w("rdma.max", "mlx5_1 hca_handle=3 hca_object=max"),
                w("io.latency", "8:0 target=10"),
                w("memory.high", "1000000"),
            ]
        );
        let enabled: Vec<&str> = c.enable.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(enabled, ["io", "io", "hugetlb", "hugetlb", "rdma", "rdma", "memory", "memory"], "each controller in each ancestor's subtree_control");
        c.create().unwrap();
        // What v2 cannot do, and v2 files without v2, and names that are no file of the cgroup's.
        for (edit, want) in [
            (serde_json::json!({"network": {"classID": 1}}), "`linux.resources.network.classID`: the cgroup v2 hierarchy that has the net_cls controller"),
            (serde_json::json!({"blockIO": {"leafWeight": 10}}), "`linux.resources.blockIO.leafWeight`: the cgroup v2 hierarchy that has the io controller"),
            (
                serde_json::json!({"unified": {"pids.max": "5"}}),
                "`linux.resources.unified.pids.max`: a cgroup v2 file, and no v2 hierarchy here has the pids controller",
            ),
            (serde_json::json!({"unified": {"cgroup.freeze": "1"}}), "`linux.resources.unified.cgroup.freeze`"),
            (serde_json::json!({"unified": {"memory.max/../x": "1"}}), "`linux.resources.unified.memory.max/../x`"),
            (serde_json::json!({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}), "`linux.resources.hugepageLimits[0]`"),
        ] {
            let root = fake("v2-refuse", &[], "io hugetlb memory net_cls");
            let e = plan(&root, &limits(edit), None, "x").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
