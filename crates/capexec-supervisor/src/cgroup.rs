//! A cgroup per service, on cgroup v2, v1 or both (hybrid), as found in
//! /proc/self/mountinfo.
//!
//! Tracking and killing use cgroup v2 when it is mounted (`cgroup.kill` works even
//! where v2 has no controllers, as on hybrid machines); otherwise a v1 hierarchy
//! (freezer preferred) with freeze, SIGKILL every member, thaw. Each limit goes to
//! the hierarchy that has its controller: v2 if enabled there, else the v1
//! hierarchy of that controller. A limit with no controller anywhere is an error,
//! never silently ignored.

use capexec_decl::spec::Limits;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{limit} cannot be enforced: neither cgroup v2 nor a cgroup v1 hierarchy offers the `{controller}` controller on this machine")]
    NoController { limit: &'static str, controller: &'static str },
    #[error("no cgroup hierarchy is mounted (looked in /proc/self/mountinfo for cgroup2 and cgroup)")]
    NoHierarchy,
    /// The network guard needs a cgroup v2 directory for the service.
    #[error("{}", GUARD_NEEDS_V2)]
    GuardNeedsV2,
    #[error(transparent)]
    Guard(#[from] capexec_sandbox::netguard::NetGuardError),
    #[error("no cgroup v2 line in /proc/self/cgroup")]
    NotInV2,
    /// The watcher of `capexec exec`'s cgroup could not be started.
    #[error("start the cgroup watcher: {0}")]
    Watcher(std::io::Error),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { op, path: path.to_path_buf(), source }
}

/// The mounted hierarchies.
#[derive(Debug, Clone, Default)]
pub struct Hierarchy {
    /// cgroup v2 mount point and the controllers it offers.
    pub v2: Option<(PathBuf, Vec<String>)>,
    /// cgroup v1 controller → mount point.
    pub v1: BTreeMap<String, PathBuf>,
}

impl Hierarchy {
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(io("read", Path::new("/proc/self/mountinfo")))?;
        let h = Self::parse(&text, |p| std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default());
        if h.v2.is_none() && h.v1.is_empty() {
            return Err(CgroupError::NoHierarchy);
        }
        Ok(h)
    }

    /// Parses mountinfo; `controllers` reads a v2 mount's cgroup.controllers.
    pub fn parse(mountinfo: &str, controllers: impl Fn(&Path) -> String) -> Hierarchy {
        let mut h = Hierarchy::default();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = PathBuf::from(pre.split_whitespace().nth(4).unwrap_or_default());
            let mut post = post.split_whitespace();
            let (fstype, _source, opts) = (post.next().unwrap_or(""), post.next(), post.next().unwrap_or(""));
            match fstype {
                "cgroup2" if h.v2.is_none() => {
                    let c = controllers(&mount_point).split_whitespace().map(str::to_owned).collect();
                    h.v2 = Some((mount_point, c));
                }
                "cgroup" => {
                    for o in opts.split(',') {
                        if ["memory", "pids", "cpu", "freezer"].contains(&o) {
                            h.v1.entry(o.to_owned()).or_insert_with(|| mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        h
    }

    fn v2_has(&self, controller: &str) -> bool {
        self.v2.as_ref().is_some_and(|(_, c)| c.iter().any(|x| x == controller))
    }

    /// Creates (or reuses) `<hierarchy>/<parent>/<name>` everywhere it is needed
    /// and applies `limits`.
    pub fn create(&self, parent: &str, name: &str, limits: &Limits) -> Result<ServiceCgroup, CgroupError> {
        let rel = Path::new(parent).join(name);
        let mut cg = ServiceCgroup { v2: None, v1: BTreeMap::new() };
        if let Some((root, _)) = &self.v2 {
            let p = root.join(&rel);
            std::fs::create_dir_all(&p).map_err(io("create cgroup", &p))?;
            cg.v2 = Some(p);
        }
        let mut v1 = |controller: &str| -> Result<PathBuf, CgroupError> {
            let root = &self.v1[controller];
            let p = root.join(&rel);
            std::fs::create_dir_all(&p).map_err(io("create cgroup", &p))?;
            cg.v1.insert(controller.to_owned(), p.clone());
            Ok(p)
        };
        // Tracking without v2: a v1 hierarchy holds the processes.
        if cg.v2.is_none() {
            let c = ["freezer", "pids", "memory", "cpu"].into_iter().find(|c| self.v1.contains_key(*c)).ok_or(CgroupError::NoHierarchy)?;
            v1(c)?;
        }
        let v2_dir = cg.v2.clone();
        for (limit, controller, value) in [
            ("limits.memory_max", "memory", limits.memory_max.map(|m| m.to_string())),
            ("limits.tasks_max", "pids", limits.tasks_max.map(|t| t.to_string())),
            ("limits.cpu_weight", "cpu", limits.cpu_weight.map(|w| w.to_string())),
        ] {
            let Some(value) = value else { continue };
            if self.v2_has(controller) {
                let dir = v2_dir.as_ref().expect("v2 has controllers only when mounted");
                enable_v2_controller(dir, controller)?;
                let file = match controller {
                    "memory" => "memory.max",
                    "pids" => "pids.max",
                    _ => "cpu.weight",
                };
                write(&dir.join(file), &value)?;
            } else if self.v1.contains_key(controller) {
                let dir = v1(controller)?;
                match controller {
                    "memory" => write(&dir.join("memory.limit_in_bytes"), &value)?,
                    "pids" => write(&dir.join("pids.max"), &value)?,
                    // v2 weight 100 is v1's default 1024 shares.
                    _ => write(&dir.join("cpu.shares"), &(value.parse::<u64>().unwrap_or(100) * 1024 / 100).max(2).to_string())?,
                }
            } else {
                return Err(CgroupError::NoController { limit, controller });
            }
        }
        // Memory accounting for `capexec status`, limit or not.
        if !self.v2_has("memory") && self.v1.contains_key("memory") && limits.memory_max.is_none() {
            v1("memory")?;
        }
        Ok(cg)
    }
}

/// Whether a cgroup v2 hierarchy is mounted (the network guard needs one).
pub fn v2_mounted() -> bool {
    Hierarchy::detect().is_ok_and(|h| h.v2.is_some())
}

/// The child cgroup of a guarded service's that holds capexec's processes for
/// it (see [`ServiceCgroup::guard`]).
const SUPERVISOR: &str = "capexec";

const GUARD_NEEDS_V2: &str = "the service has sockets in the host's network namespace, which capexec's network guard checks from a cgroup v2 directory, and this machine mounts no cgroup v2 hierarchy; mount one (cgroup2 at /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid machines), or declare `net = \"host\"`";

/// `capexec exec`'s cgroups for a guarded service, or one without a pid
/// namespace (as root): a cgroup v2 directory for the service under
/// capexec's own, and its child for capexec itself, which creates the
/// service's host sockets and brokers for it. Named after the unit and
/// capexec's pid, so runs never share one.
///
/// capexec cannot remove them itself at the end: as the broker it has
/// confined itself by then (seccomp, Landlock). A watcher process, forked
/// before capexec moves, waits for capexec's end (a pipe's EOF, which also
/// comes if capexec is killed), then kills what is left of the service and
/// removes the directories. Without a pid namespace that is all that ends a
/// daemon the service forked off when capexec is killed: its init dies by
/// its parent-death signal, but the daemon is no longer its child.
pub struct ExecCgroup {
    pub service: PathBuf,
    pub supervisor: PathBuf,
    /// What the guard refused (for `capexec exec`'s trail to take).
    pub refusals: Option<capexec_sandbox::netguard::Refusals>,
}

impl ExecCgroup {
    /// Creates the directories, puts the guard on them (with a `policy`),
    /// starts the watcher and moves this process into the supervisor's
    /// cgroup. Must be called while the process is single-threaded (it forks).
    pub fn enter(unit: &str, policy: Option<&capexec_sandbox::netguard::NetPolicy>) -> Result<ExecCgroup, CgroupError> {
        let h = Hierarchy::detect()?;
        let Some((root, _)) = h.v2 else {
            return Err(CgroupError::GuardNeedsV2);
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(io("read", Path::new("/proc/self/cgroup")))?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::")).ok_or(CgroupError::NotInV2)?;
        let origin = root.join(own.trim_start_matches('/'));
        remove_stale(&origin);
        let service = origin.join(format!("{EXEC_PREFIX}{unit}.{}", std::process::id()));
        let supervisor = service.join(SUPERVISOR);
        std::fs::create_dir_all(&supervisor).map_err(io("create cgroup", &supervisor))?;
        let cg = ServiceCgroup { v2: Some(service.clone()), v1: BTreeMap::new() };
        let attached = match policy {
            Some(p) => capexec_sandbox::netguard::attach(p, &service, &supervisor).map(Some).map_err(CgroupError::from),
            None => Ok(None),
        };
        let (watcher, refusals) = match attached.and_then(|refusals| Ok((watch(cg.clone())?, refusals))) {
            Ok(w) => w,
            Err(e) => {
                let _ = cg.remove();
                return Err(e);
            }
        };
        write(&supervisor.join("cgroup.procs"), "0")?;
        // Kept open until this process exits, never closed early: the watcher
        // kills everything in the cgroup, capexec included, once it sees EOF.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(watcher);
        Ok(ExecCgroup { service, supervisor, refusals })
    }
}

/// Forks the watcher of [`ExecCgroup`]; returns the pipe's write end.
fn watch(cg: ServiceCgroup) -> Result<std::os::fd::OwnedFd, CgroupError> {
    capexec_sys::process::after_exit("fork its cgroup watcher", move || {
        let _ = cg.kill_all();
        for _ in 0..5000 {
            if cg.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = cg.remove();
    })
    .map_err(CgroupError::Watcher)
}

const EXEC_PREFIX: &str = "capexec-exec-";

/// Directories of `capexec exec` runs that were killed before they could
/// remove them: named `capexec-exec-UNIT.PID` with PID gone, and empty.
fn remove_stale(parent: &Path) {
    let Ok(dir) = std::fs::read_dir(parent) else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(EXEC_PREFIX).and_then(|n| n.rsplit_once('.')).and_then(|(_, p)| p.parse::<i32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let cg = ServiceCgroup { v2: Some(e.path()), v1: BTreeMap::new() };
        if cg.is_empty() {
            let _ = cg.remove();
        }
    }
}

fn enable_v2_controller(dir: &Path, controller: &str) -> Result<(), CgroupError> {
    // Each ancestor below the mount must delegate the controller to its children.
    let mut chain: Vec<&Path> = dir.ancestors().skip(1).collect();
    chain.reverse();
    for a in chain {
        let f = a.join("cgroup.subtree_control");
        if f.exists() {
            let _ = std::fs::write(&f, format!("+{controller}"));
        }
    }
    Ok(())
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io("write", path))
}

/// A service's cgroup(s): the v2 one (tracking, killing, v2 limits) and the v1
/// ones its limits (or tracking without v2) needed.
#[derive(Debug, Clone)]
pub struct ServiceCgroup {
    pub v2: Option<PathBuf>,
    pub v1: BTreeMap<String, PathBuf>,
}

impl ServiceCgroup {
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.v2.iter().chain(self.v1.values())
    }

    /// Where membership is read from.
    fn tracking(&self) -> &Path {
        self.v2.as_deref().or_else(|| self.v1.values().next().map(PathBuf::as_path)).expect("a cgroup has at least one directory")
    }

    /// Moves a process (and so its future children) into every directory.
    /// Every `cgroup.procs` file a new member must be written into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.all().map(|d| d.join("cgroup.procs")).collect()
    }

    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.all() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let f = self.tracking().join("cgroup.procs");
        let text = std::fs::read_to_string(&f).map_err(io("read", &f))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// No process left, in the cgroup or below it (the network guard's
    /// supervisor cgroup holds the broker).
    pub fn is_empty(&self) -> bool {
        if let Some(events) = self.v2.as_ref().and_then(|d| std::fs::read_to_string(d.join("cgroup.events")).ok()) {
            return events.lines().any(|l| l == "populated 0");
        }
        self.pids().map(|p| p.is_empty()).unwrap_or(true)
    }

    /// Puts the network guard on the service's cgroup: creates the child
    /// cgroup capexec's own processes for the service work from (the broker,
    /// the process that opens its sockets), attaches the programs, and
    /// returns that child and the programs' refusal records. Needs cgroup v2.
    pub fn guard(&self, policy: &capexec_sandbox::netguard::NetPolicy) -> Result<(PathBuf, capexec_sandbox::netguard::Refusals), CgroupError> {
        let Some(v2) = &self.v2 else {
            return Err(CgroupError::GuardNeedsV2);
        };
        let supervisor = v2.join(SUPERVISOR);
        std::fs::create_dir_all(&supervisor).map_err(io("create cgroup", &supervisor))?;
        let refusals = capexec_sandbox::netguard::attach(policy, v2, &supervisor)?;
        Ok((supervisor, refusals))
    }

    /// SIGKILL to every process, including ones that double-forked away: the
    /// kernel kills the whole cgroup atomically on v2 (`cgroup.kill`); on v1 the
    /// cgroup is frozen first (when there is a freezer) so nothing can fork while
    /// its members are killed.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        if let Some(v2) = &self.v2 {
            let f = v2.join("cgroup.kill");
            if f.exists() {
                return write(&f, "1");
            }
        }
        let freezer = self.v1.get("freezer");
        if let Some(fz) = freezer {
            write(&fz.join("freezer.state"), "FROZEN")?;
        }
        for _ in 0..100 {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // A pid read from our own cgroup.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL);
            }
            if freezer.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        if let Some(fz) = freezer {
            write(&fz.join("freezer.state"), "THAWED")?;
        }
        Ok(())
    }

    /// Memory in use, in bytes (v2 memory.current or v1 memory.usage_in_bytes).
    pub fn memory_current(&self) -> Option<u64> {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok()?.trim().parse().ok();
        self.v2.as_ref().and_then(|d| read(d.join("memory.current"))).or_else(|| self.v1.get("memory").and_then(|d| read(d.join("memory.usage_in_bytes"))))
    }

    /// Removes the directories; they must be empty (kill_all first, then wait).
    pub fn remove(&self) -> Result<(), CgroupError> {
        let supervisor = self.v2.as_ref().map(|d| d.join(SUPERVISOR));
        for dir in supervisor.iter().chain(self.all()) {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CgroupError::Io { op: "remove cgroup", path: dir.clone(), source: e }),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_a_hybrid_machine() {
        let h = Hierarchy::parse(HYBRID, |_| "hugetlb".into());
        assert_eq!(h.v2, Some((PathBuf::from("/sys/fs/cgroup/unified"), vec!["hugetlb".into()])));
        assert_eq!(h.v1.keys().collect::<Vec<_>>(), ["cpu", "freezer", "memory", "pids"]);
        assert!(!h.v2_has("memory"));
    }

    #[test]
    fn parses_pure_v2() {
        let h = Hierarchy::parse("25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n", |_| "cpu memory pids".into());
        assert!(h.v2_has("memory") && h.v2_has("pids") && h.v1.is_empty());
    }

    #[test]
    fn a_limit_without_controller_is_an_error() {
        let h = Hierarchy { v2: None, v1: BTreeMap::from([("freezer".to_owned(), std::env::temp_dir())]) };
        let dir = format!("capexec-cg-test-{}", std::process::id());
        let e = h.create(&dir, "svc", &Limits { memory_max: Some(1 << 30), tasks_max: None, cpu_weight: None }).unwrap_err();
        assert!(e.to_string().contains("limits.memory_max cannot be enforced"), "{e}");
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(dir));
    }
}
