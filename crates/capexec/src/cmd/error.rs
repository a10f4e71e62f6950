//! What stops a command of the capexec binary before or around the service:
//! each variant says what went wrong and, where the user can fix it, how.
//! Every one ends the command with [`EXIT_SETUP`](super::EXIT_SETUP), so that
//! capexec's own failures are told apart from the service's statuses.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The arguments ask for something that cannot be done as given.
    #[error("{0}")]
    Usage(String),
    #[error("{op} {}: {source}", path.display())]
    File { op: &'static str, path: PathBuf, source: io::Error },
    /// A file was read but does not hold what the command needs.
    #[error("{}: {detail}", path.display())]
    Content { path: PathBuf, detail: String },
    #[error(transparent)]
    Declaration(#[from] capexec_decl::DeclErrors),
    #[error("{unit}: {source}")]
    Launch { unit: String, source: capexec_sandbox::LaunchError },
    /// The service or the workload did not behave as the command needs.
    #[error("{0}")]
    Run(String),
    /// The service's network guard cannot be had as it is declared.
    #[error("{unit}: {source}")]
    Guard { unit: String, source: capexec_sandbox::netguard::NetGuardError },
    /// The service's cgroup (under `capexec exec`, as root).
    #[error("{unit}: {source}")]
    Cgroup { unit: String, source: capexec_supervisor::cgroup::CgroupError },
    /// A system call without a path of its own failed.
    #[error("{op}: {source}")]
    Io { op: &'static str, source: io::Error },
    /// A peer (an OCI runtime) sent what the command cannot take.
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Annotation(#[from] capexec_decl::AnnotationError),
    /// Grants of an annotation that do not validate as a declaration's.
    #[error("annotation {key}: {source}")]
    AnnotationGrants { key: &'static str, source: capexec_decl::DeclErrors },
}

impl CmdError {
    pub fn file(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CmdError {
        let path = path.into();
        move |source| CmdError::File { op, path, source }
    }

    pub fn launch(unit: &str) -> impl FnOnce(capexec_sandbox::LaunchError) -> CmdError + '_ {
        move |source| CmdError::Launch { unit: unit.to_owned(), source }
    }

    pub fn exit_code(&self) -> i32 {
        super::EXIT_SETUP
    }
}
