//! The state directory (`--root`, default /run/capexec-oci): one directory
//! per container, holding `state.json` (what `create` learnt) and, until
//! the container is started, `exec.fifo`, at whose read end the container's
//! program waits (capexec_sandbox's `SpawnOptions::gate`). The status is
//! read from the system each time, never stored: a process that is gone is
//! stopped whatever the file says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/run/capexec-oci";

/// Where the state lives without `--root`: [`DEFAULT_ROOT`], or, for a
/// runtime started in a user namespace (rootless podman runs it in its
/// own) or by a user, `$XDG_RUNTIME_DIR/capexec-oci`, as runc does: the
/// host's /run is not theirs to write.
pub fn default_root() -> PathBuf {
    let initial = std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]);
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !initial || !nix::unistd::geteuid().is_root() => PathBuf::from(dir).join("capexec-oci"),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container id {0:?} is not valid: use letters, digits, `_`, `+`, `-` and `.` (not `.` or `..` alone)")]
    BadId(String),
    #[error("container {0} exists already (delete it first, or choose another id)")]
    Exists(String),
    #[error("container {0} does not exist")]
    Missing(String),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is damaged ({detail}): `capexec-oci delete --force` removes it")]
    Damaged { path: PathBuf, detail: String },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io { op, path, source }
}

/// What `create` records of a container.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The container's init, as the host sees it.
    pub pid: i32,
    /// Its start time in clock ticks since boot (/proc/PID/stat): a pid
    /// reused by another process is not taken for the container.
    pub start_time: u64,
    /// RFC 3339, UTC.
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// The container's cgroups (crate::cgroups), removed with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<PathBuf>,
    /// The config's hooks that `start` and `delete` run (crate::hooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    /// Its init was born in a pid namespace given by path (a pod's, with
    /// other containers' processes in it): its processes are those that
    /// descend from init, or are in its cgroups, not all of that namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pid_ns_entered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store { root: root.to_owned() }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join("exec.fifo")
    }

    /// Makes the container's directory: an id in use is an error, never
    /// overwritten.
    pub fn claim(&self, id: &str) -> Result<PathBuf, StateError> {
        check_id(id)?;
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let _ = std::fs::set_permissions(&self.root, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StateError::Exists(id.to_owned())),
            Err(e) => Err(io("create", &dir)(e)),
        }
    }

    pub fn save(&self, s: &Saved) -> Result<(), StateError> {
        let path = self.dir(&s.id).join("state.json");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(s).expect("serialisable")).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))
    }

    /// The container's record; `Ok(None)`: its directory exists without
    /// one (a `create` that ended before it wrote it).
    pub fn load(&self, id: &str) -> Result<Option<Saved>, StateError> {
        check_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Err(StateError::Missing(id.to_owned()));
        }
        let path = dir.join("state.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| StateError::Damaged { path, detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    pub fn status(&self, s: &Saved) -> Status {
        match alive(s.pid, s.start_time) {
            false => Status::Stopped,
            true if self.fifo(&s.id).exists() => Status::Created,
            true => Status::Running,
        }
    }

    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        let dir = self.dir(id);
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))
    }
}

/// runc's rule: `^[\w+\-.]+$`, so that an id is one path component.
fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty() && id.len() <= 1024 && id != "." && id != ".." && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_owned()))
    }
}

/// The start time of process `pid` (field 22 of /proc/PID/stat) and whether
/// it is a zombie; `None`: no such process.
pub fn start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some((fields.get(19)?.parse().ok()?, fields.first() == Some(&"Z")))
}

/// Whether the process `pid` started at `start` is there and not a zombie.
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid).is_some_and(|(t, zombie)| t == start && !zombie)
}

/// Now, in RFC 3339 (UTC), as runc writes `created`.
pub fn now_rfc3339() -> String {
    capexec_sys::clock::rfc3339_now()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation warns about a service that may write here as root.
    #[test]
    fn the_state_directory_is_one_validation_knows() {
        assert!(capexec_decl::validate::CAPEXEC_DIRS.contains(&DEFAULT_ROOT));
    }

    #[test]
    fn ids_are_one_path_component() {
        for good in ["a", "web-1", "x_y+z.2"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_claimed_id_is_not_claimed_twice_and_processes_are_known_by_their_start() {
        let root = std::env::temp_dir().join(format!("capexec-oci-state-{}", std::process::id()));
        let store = Store::new(&root);
        store.claim("c1").unwrap();
        assert!(matches!(store.claim("c1"), Err(StateError::Exists(_))));
        assert!(store.load("c1").unwrap().is_none(), "no record before create wrote it");
        let me = std::process::id() as i32;
        let (start, zombie) = start_time(me).unwrap();
        assert!(!zombie && alive(me, start) && !alive(me, start + 1));
        let s = Saved {
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            pid: me,
            start_time: start,
            created: now_rfc3339(),
            annotations: BTreeMap::new(),
            cgroups: Vec::new(),
            poststart: Vec::new(),
            poststop: Vec::new(),
            pid_ns_entered: false,
        };
        store.save(&s).unwrap();
        assert_eq!(store.status(&store.load("c1").unwrap().unwrap()), Status::Running);
        std::fs::write(store.fifo("c1"), "").unwrap();
        assert_eq!(store.status(&s), Status::Created);
        assert_eq!(store.status(&Saved { start_time: start + 1, ..s }), Status::Stopped);
        store.remove("c1").unwrap();
        assert!(matches!(store.load("c1"), Err(StateError::Missing(_))));
        std::fs::remove_dir_all(root).unwrap();
        let t = now_rfc3339();
        assert!(t.len() == 24 && t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
