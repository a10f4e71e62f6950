//! `linux.resources`' pids and memory limits, in cgroups of the container's
//! own at `linux.cgroupsPath`: in the unified (v2) hierarchy where it has
//! the controller, else in the controller's v1 hierarchy (hybrid hosts, such
//! as these machines, keep pids and memory there). The container's init is
//! written into them before it runs anything (`SpawnOptions::cgroup_procs`),
//! so every process of the container is born inside.

use std::path::{Component, Path, PathBuf};

/// The limits capexec-oci sets; `None` leaves a controller alone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Limits {
    /// pids.max (a limit of 0 or less is none, as the runtime-spec says).
    pub pids: Option<i64>,
    /// Bytes: memory.max (v2) or memory.limit_in_bytes (v1).
    pub memory: Option<i64>,
}

impl Limits {
    pub fn of(r: Option<&oci_spec::runtime::LinuxResources>) -> Limits {
        let Some(r) = r else { return Limits::default() };
        Limits { pids: r.pids().as_ref().map(|p| p.limit()).filter(|l| *l > 0), memory: r.memory().as_ref().and_then(|m| m.limit()).filter(|l| *l > 0) }
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_none() && self.memory.is_none()
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
    enable: Vec<(PathBuf, &'static str)>,
    writes: Vec<(PathBuf, String)>,
}

/// The cgroup filesystem's mount point (a parameter for the tests).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroups for `limits` under `root`, at `cgroups_path` (absolute:
/// from each hierarchy's root; relative or absent: under `capexec-oci/`,
/// the container's id when absent). `None` when there is nothing to limit.
pub fn plan(root: &Path, limits: &Limits, cgroups_path: Option<&Path>, id: &str) -> Result<Option<Cgroups>, String> {
    if limits.is_empty() {
        return Ok(None);
    }
    let rel: PathBuf = match cgroups_path {
        Some(p) if p.as_os_str().as_encoded_bytes().contains(&b':') => {
            return Err(format!("{}: a systemd cgroup (slice:prefix:name) is not set up by capexec-oci: give a path", p.display()))
        }
        Some(p) if p.is_absolute() => p.strip_prefix("/").expect("absolute").to_owned(),
        Some(p) => Path::new("capexec-oci").join(p),
        None => Path::new("capexec-oci").join(id),
    };
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("{}: not a cgroup path (no `..`, not the root)", rel.display()));
    }
    let mut c = Cgroups { dirs: Vec::new(), made: Vec::new(), enable: Vec::new(), writes: Vec::new() };
    let wanted = [("pids", limits.pids, "pids.max", "pids.max"), ("memory", limits.memory, "memory.max", "memory.limit_in_bytes")];
    for (controller, value, v2_file, v1_file) in wanted {
        let Some(value) = value else { continue };
        let (dir, file) = match unified_with(root, controller) {
            Some(base) => {
                let mut at = base.clone();
                for part in rel.components() {
                    c.enable.push((at.join("cgroup.subtree_control"), controller));
                    at = at.join(part);
                }
                (at, v2_file)
            }
            None => {
                let base = root.join(controller);
                if !base.join("cgroup.procs").exists() {
                    return Err(format!("no cgroup hierarchy has the {controller} controller here (neither {} nor a v2 hierarchy)", base.display()));
                }
                (base.join(&rel), v1_file)
            }
        };
        c.writes.push((dir.join(file), value.to_string()));
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
    pub fn create(&self) -> Result<Vec<PathBuf>, String> {
        let fail = |what: String, e: std::io::Error| {
            self.remove();
            format!("{what}: {e}")
        };
        for (file, controller) in &self.enable {
            let parent = file.parent().expect("a file in a directory");
            std::fs::create_dir_all(parent).map_err(|e| fail(format!("create the cgroup {}", parent.display()), e))?;
            let on = std::fs::read_to_string(file).unwrap_or_default();
            if !on.split_whitespace().any(|c| c == *controller) {
                std::fs::write(file, format!("+{controller}")).map_err(|e| fail(format!("enable {controller} in {}", file.display()), e))?;
            }
        }
        for d in &self.dirs {
            std::fs::create_dir_all(d).map_err(|e| fail(format!("create the cgroup {}", d.display()), e))?;
        }
        for (file, value) in &self.writes {
            std::fs::write(file, value).map_err(|e| fail(format!("write {value} to {}", file.display()), e))?;
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

    #[test]
    fn limits_go_to_the_hierarchy_that_has_the_controller() {
        let root = fake("hybrid", &["pids", "memory"], "hugetlb");
        let l = Limits { pids: Some(5), memory: Some(1 << 26) };
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
        let c = plan(&root, &Limits { pids: Some(5), memory: None }, Some(Path::new("/pods/a")), "x").unwrap().unwrap();
        assert_eq!(c.dirs, [root.join("unified/pods/a")]);
        c.create().unwrap();
        assert_eq!(std::fs::read_to_string(root.join("unified/cgroup.subtree_control")).unwrap(), "+pids");
        assert_eq!(std::fs::read_to_string(root.join("unified/pods/a/pids.max")).unwrap(), "5");
    }

    #[test]
    fn nothing_to_limit_is_no_cgroup_and_bad_paths_are_refused() {
        let root = fake("refuse", &["pids"], "");
        assert_eq!(plan(&root, &Limits::default(), None, "x").unwrap(), None);
        let l = Limits { pids: Some(1), memory: None };
        for (path, want) in [("/a/../b", "not a cgroup path"), ("system.slice:libpod:x", "systemd cgroup"), ("/", "not a cgroup path")] {
            let e = plan(&root, &l, Some(Path::new(path)), "x").unwrap_err();
            assert!(e.contains(want), "{path}: {e}");
        }
        let e = plan(&root, &Limits { pids: None, memory: Some(1) }, None, "x").unwrap_err();
        assert!(e.contains("no cgroup hierarchy has the memory controller"), "{e}");
    }
}
