//! What can keep a broker from starting: each names the operation, the path
//! or grant, and the cause.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A `[[broker.fs]]` grant's directory cannot be opened (pinned) before the service starts.
    #[error("broker: open the directory {} of grant `{pattern}`: {source}; create it, or fix broker.fs in the declaration", path.display())]
    GrantDirectory { pattern: String, path: PathBuf, source: io::Error },
    /// A grant's directory could not be reopened through a noexec copy of its mount (MDWE).
    #[error("broker: grant `{pattern}`: {source}")]
    Noexec { pattern: String, source: capexec_sandbox::LaunchError },
    /// A system call of the broker's own setup or confinement failed.
    #[error("broker: {op}: {source}")]
    Io { op: &'static str, source: io::Error },
    #[error("broker: set {set} capabilities: {source}")]
    Capabilities { set: &'static str, source: caps::errors::CapsError },
    /// The broker's own seccomp filter could not be built or installed.
    #[error("broker: {op} its seccomp filter: {detail}")]
    Filter { op: &'static str, detail: String },
}
