//! Launch errors: each names the operation, the path or resource, and the cause.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{op} {what}: {source}")]
    Io { op: &'static str, what: String, source: io::Error },
    /// A setup step inside the new namespaces failed; reported over the error pipe.
    #[error("sandbox setup failed at `{step}`: {detail}")]
    Child { step: String, detail: String },
    #[error("building the seccomp filter: {0}")]
    Seccomp(String),
    #[error("{0}")]
    Plan(String),
    /// A mechanism the declaration requires is not available on this kernel.
    #[error("{what}\n  help: {help}")]
    Unsupported { what: String, help: String },
}

impl LaunchError {
    pub fn io(op: &'static str, what: impl std::fmt::Display, source: io::Error) -> Self {
        LaunchError::Io { op, what: what.to_string(), source }
    }
}

/// An error inside the child, before exec: the step and a message that already
/// names the path and the cause. Sent to the parent as `step\0detail`.
#[derive(Debug)]
pub struct ChildError {
    pub step: &'static str,
    pub detail: String,
}

impl ChildError {
    pub fn new(step: &'static str, detail: impl Into<String>) -> Self {
        ChildError { step, detail: detail.into() }
    }
    pub fn io(step: &'static str, what: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        ChildError { step, detail: format!("{what}: {e}") }
    }
}

impl From<ChildError> for LaunchError {
    fn from(e: ChildError) -> Self {
        LaunchError::Child { step: e.step.to_owned(), detail: e.detail }
    }
}
