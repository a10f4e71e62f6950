//! What can keep the daemon, or one service's launch, from going ahead: each
//! error names the operation, the path and the cause, and where the user can
//! do something about it, says what.

use crate::cgroup::CgroupError;
use capexec_sandbox::netguard::NetGuardError;
use capexec_sandbox::LaunchError;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A file-system operation on a path of the daemon's own.
    #[error("{op} {}: {source}", path.display())]
    Path { op: &'static str, path: PathBuf, source: io::Error },
    /// A system call with no path (a pipe, a fork, a signal handler).
    #[error("{op}: {source}")]
    Sys { op: &'static str, source: io::Error },
    #[error("another capexec daemon is already running with {} (pid {pid})\n  help: use `capexec status` to talk to it, or stop it first", runtime.display())]
    AlreadyRunning { runtime: PathBuf, pid: String },
    /// User mode found no directory for its socket or its state.
    #[error("user mode needs {needs} for its {what}; {help}")]
    NoUserDirectory { what: &'static str, needs: &'static str, help: &'static str },
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Guard(#[from] NetGuardError),
    /// What the sandbox refuses to set up here (a mechanism this kernel lacks).
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("the declaration sets [limits], which are enforced through a cgroup, and this daemon has none (user mode, or no cgroup hierarchy); remove [limits] or run the service under the system daemon")]
    LimitsNeedCgroup,
    #[error("without a cgroup the daemon tracks a service's processes through its pid namespace; set namespaces.pid = true")]
    NeedsPidNamespace,
    #[error("the declaration is too large to launch ({size} bytes as JSON, limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("internal: encode {what}: {source}")]
    Encode { what: &'static str, source: serde_json::Error },
    /// The broker process of a brokered service could not start it; its
    /// message crossed the report socket as text.
    #[error("{0}")]
    Broker(String),
    /// The same, for an `exec.condition` command that said not to start.
    #[error("{0}")]
    BrokerConditionUnmet(String),
    #[error("the broker process ended before it started the service")]
    BrokerEnded,
}

impl SupervisorError {
    /// An `exec.condition` command said the service is not to start now.
    pub fn condition_unmet(&self) -> bool {
        match self {
            SupervisorError::Launch(e) => e.condition_unmet(),
            SupervisorError::BrokerConditionUnmet(_) => true,
            _ => false,
        }
    }

    pub(crate) fn path(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> SupervisorError {
        let path = path.into();
        move |source| SupervisorError::Path { op, path, source }
    }

    pub(crate) fn sys(op: &'static str) -> impl FnOnce(io::Error) -> SupervisorError {
        move |source| SupervisorError::Sys { op, source }
    }
}

/// Why a peer may not use the control socket, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    #[error("uid {uid} may not control this user daemon: only its owner (uid {owner}) may")]
    NotOwner { uid: u32, owner: u32 },
    #[error("uid {uid} may not control the system daemon: only root and members of the `{group}` group may, and that group does not exist (create it with `groupadd --system {group}`)")]
    NoGroup { uid: u32, group: &'static str },
    #[error("uid {uid} may not control the system daemon: only root and members of the `{group}` group may (`usermod -aG {group} USER`, then log in again)")]
    NotInGroup { uid: u32, group: &'static str },
    #[error("process {pid} belongs to a service of this daemon, and services may not control it (the daemon would start whatever they asked for with more than they were given); run capexec commands from the host")]
    FromService { pid: i32 },
    #[error("process {pid} runs in a capexec sandbox (capexec exec or run, or another daemon's service), and sandboxes may not control the daemon; run capexec commands from the host")]
    FromSandbox { pid: i32 },
    #[error("the connecting process exited before the daemon could tell who it was")]
    PeerGone,
}
