//! capexec-oci's error: what a command says once (on stderr, and in the
//! engine's `--log`), by kind. Each names the container or the file, what
//! was done and why it failed (an errno stays in `source`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A field of config.json capexec-oci does not apply as it stands.
    #[error("{}: {source}", config.display())]
    NotApplied { config: PathBuf, source: crate::container::NotApplied },
    /// The container is not in a state the command can act on.
    #[error("container {id} {why}")]
    Status { id: String, why: String },
    /// Arguments (the engine's or a person's) that do not fit the container.
    #[error("{0}")]
    Usage(String),
    /// An operation on the host failed.
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
    /// The composer refused the container's plan, or its launch failed.
    #[error("{id}: {source}")]
    Launch { id: String, source: capexec_sandbox::LaunchError },
    #[error("{id}: broker: {source}")]
    Broker { id: String, source: capexec_broker::BrokerError },
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// What the process that runs the setup hooks outside the broker's
    /// layer reported (`lifecycle::SetupHooks`): a [`crate::hooks::HookError`]'s text.
    #[error("{0}")]
    HookRunner(String),
    /// The config's cgroups (`linux.cgroupsPath`, `linux.resources`).
    #[error("{id}: {source}")]
    Cgroup { id: String, source: crate::cgroups::CgroupError },
    /// The launch ended before the seccomp agent was sent the container's listener.
    #[error("the container's seccomp listener was never taken for its agent")]
    NoListener,
}

impl OciError {
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        OciError::Io { op: op.into(), source }
    }

    pub fn status(id: &str, why: impl Into<String>) -> Self {
        OciError::Status { id: id.to_owned(), why: why.into() }
    }
}
