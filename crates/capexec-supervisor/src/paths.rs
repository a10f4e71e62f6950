//! Where a daemon keeps its socket, state and logs: system mode (root) or user
//! mode (an unprivileged user, under its XDG directories). The CLI uses the same
//! rules to find the daemon it talks to.

use crate::SupervisorError;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    System,
    User,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub mode: Mode,
    /// control.sock, daemon.lock, notify/<unit>/notify.
    pub runtime: PathBuf,
    /// enabled.json (capexec enable/disable).
    pub state: PathBuf,
    /// <unit>.log and its rotations.
    pub logs: PathBuf,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).filter(|p| p.is_absolute())
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// $XDG_RUNTIME_DIR, or /run/user/UID when that exists.
pub fn user_runtime_dir() -> Option<PathBuf> {
    env_path("XDG_RUNTIME_DIR").or_else(|| {
        let p = PathBuf::from(format!("/run/user/{}", nix::unistd::getuid()));
        p.is_dir().then_some(p)
    })
}

pub const SYSTEM_RUNTIME: &str = "/run/capexec";

impl Paths {
    pub fn system() -> Paths {
        Paths { mode: Mode::System, runtime: SYSTEM_RUNTIME.into(), state: "/var/lib/capexec".into(), logs: "/var/log/capexec".into() }
    }

    /// User mode: $XDG_RUNTIME_DIR/capexec, $XDG_STATE_HOME/capexec (default
    /// ~/.local/state/capexec) with logs in its `logs/`. `runtime` and `state`
    /// replace the defaults (and need no environment).
    pub fn user(runtime: Option<PathBuf>, state: Option<PathBuf>) -> Result<Paths, SupervisorError> {
        let runtime = match runtime {
            Some(r) => r,
            None => user_runtime_dir()
                .ok_or(SupervisorError::NoUserDirectory {
                    what: "control socket",
                    needs: "$XDG_RUNTIME_DIR (or /run/user/UID)",
                    help: "set XDG_RUNTIME_DIR to a private directory you own, or pass --runtime-dir",
                })?
                .join("capexec"),
        };
        let state = match state {
            Some(s) => s,
            None => env_path("XDG_STATE_HOME")
                .or_else(|| home().map(|h| h.join(".local/state")))
                .ok_or(SupervisorError::NoUserDirectory { what: "state", needs: "$XDG_STATE_HOME or $HOME", help: "set one, or pass --state-dir" })?
                .join("capexec"),
        };
        let logs = state.join("logs");
        Ok(Paths { mode: Mode::User, runtime, state, logs })
    }

    pub fn socket(&self) -> PathBuf {
        self.runtime.join("control.sock")
    }

    pub fn notify_dir(&self, unit: &str) -> PathBuf {
        self.runtime.join("notify").join(unit)
    }

    pub fn lock(&self) -> PathBuf {
        self.runtime.join("daemon.lock")
    }

    pub fn enabled_file(&self) -> PathBuf {
        self.state.join("enabled.json")
    }

    pub fn log_file(&self, unit: &str) -> PathBuf {
        self.logs.join(format!("{unit}.log"))
    }
}

/// Unit search path of a user-mode daemon: the user's own declarations.
pub fn user_unit_path() -> Vec<PathBuf> {
    let config = env_path("XDG_CONFIG_HOME").or_else(|| home().map(|h| h.join(".config")));
    let mut v = Vec::new();
    if let Some(c) = config {
        v.push(c.join("capexec/units"));
    }
    if let Some(r) = user_runtime_dir() {
        v.push(r.join("capexec/units"));
    }
    v
}

/// The socket the CLI talks to when none is given: the system daemon's for
/// root; for anyone else their own user daemon's if one is running, else the
/// system daemon's (which admits members of the `capexec` group).
pub fn default_socket(user: bool) -> PathBuf {
    let system = Path::new(SYSTEM_RUNTIME).join("control.sock");
    let user_sock = user_runtime_dir().map(|r| r.join("capexec/control.sock"));
    if user {
        return user_sock.unwrap_or(system);
    }
    if nix::unistd::geteuid().is_root() {
        return system;
    }
    match user_sock {
        Some(u) if u.exists() => u,
        _ => system,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What validation warns about for a service that may write as root
    /// (`capexec_decl::validate::CAPEXEC_DIRS`) covers every system directory
    /// the daemon reads declarations and state from.
    #[test]
    fn capexecs_own_directories_are_the_ones_validation_knows() {
        let p = Paths::system();
        let own = |d: &Path| capexec_decl::validate::CAPEXEC_DIRS.iter().any(|o| d.starts_with(o));
        for d in [&p.runtime, &p.state, &p.logs] {
            assert!(own(d), "{} is not in CAPEXEC_DIRS", d.display());
        }
        for d in capexec_decl::source::SEARCH_PATH {
            assert!(own(Path::new(d)), "{d} is not in CAPEXEC_DIRS");
        }
    }
}
