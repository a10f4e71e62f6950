//! Launch errors: each names the operation, the path or resource, and the cause.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{op} {what}: {source}")]
    Io { op: &'static str, what: String, source: io::Error },
    /// A setup step inside the new namespaces failed; reported over the
    /// error pipe as a [`ChildError`] record.
    #[error("sandbox setup failed at `{step}`: {detail}")]
    Child { step: Step, errno: Option<i32>, detail: String },
    #[error("building the seccomp filter: {0}")]
    Seccomp(String),
    #[error("{0}")]
    Plan(String),
    /// `SpawnOptions::before_setup` failed (an OCI prestart hook).
    #[error("before the setup: {0}")]
    BeforeSetup(#[source] BeforeSetupError),
    /// The sandbox's init died of a signal during its setup, before it could
    /// report anything (SIGSYS: a filter refused a call of the setup).
    #[error("the sandbox's init was killed by signal {signal}{} during its setup", if *signal == libc::SIGSYS { " (SIGSYS: a seccomp filter refused one of its calls)" } else { "" })]
    SetupKilled { signal: i32 },
    /// A mechanism the declaration requires is not available on this kernel.
    #[error("{what}\n  help: {help}")]
    Unsupported { what: String, help: String },
}

/// What `SpawnOptions::before_setup` fails with: the caller's own error.
pub type BeforeSetupError = Box<dyn std::error::Error + Send + Sync>;

impl LaunchError {
    /// An `exec.condition` command said not to start: the start ends
    /// without a failure (see [`Step::Condition`]).
    pub fn condition_unmet(&self) -> bool {
        matches!(self, LaunchError::Child { step: Step::Condition, .. })
    }

    pub fn io(op: &'static str, what: impl std::fmt::Display, source: io::Error) -> Self {
        LaunchError::Io { op, what: what.to_string(), source }
    }
}

/// The setup steps the child runs inside the new namespaces, in that order
/// (see child.rs), as a failure names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    StandardStreams = 1,
    ForkService,
    ParentDeathSignal,
    Subreaper,
    Network,
    Notify,
    Hostname,
    Sysctl,
    Rlimits,
    NoNewPrivs,
    FilesystemView,
    PreopenedDirectories,
    Credentials,
    FileDescriptors,
    Landlock,
    BrokerLandlock,
    MemoryDenyWriteExecute,
    Seccomp,
    Exec,
    StartPre,
    JoinNamespaces,
    OomScoreAdjust,
    ContainerHook,
    /// An `exec.condition` command said the service is not to start now
    /// (exit 1 to 254): not a failure, the start ends there.
    Condition,
    Nice,
}

impl Step {
    const ALL: [Step; 25] = [
        Step::StandardStreams,
        Step::ForkService,
        Step::ParentDeathSignal,
        Step::Subreaper,
        Step::Network,
        Step::Notify,
        Step::Hostname,
        Step::Sysctl,
        Step::Rlimits,
        Step::NoNewPrivs,
        Step::FilesystemView,
        Step::PreopenedDirectories,
        Step::Credentials,
        Step::FileDescriptors,
        Step::Landlock,
        Step::BrokerLandlock,
        Step::MemoryDenyWriteExecute,
        Step::Seccomp,
        Step::Exec,
        Step::StartPre,
        Step::JoinNamespaces,
        Step::OomScoreAdjust,
        Step::ContainerHook,
        Step::Condition,
        Step::Nice,
    ];

    /// How messages and `capexec` name the step.
    pub fn name(self) -> &'static str {
        match self {
            Step::StandardStreams => "standard streams",
            Step::ForkService => "fork service",
            Step::ParentDeathSignal => "parent death signal",
            Step::Subreaper => "subreaper",
            Step::Network => "network",
            Step::Notify => "notify",
            Step::Hostname => "hostname",
            Step::Sysctl => "sysctl",
            Step::Rlimits => "rlimits",
            Step::NoNewPrivs => "no_new_privs",
            Step::FilesystemView => "filesystem view",
            Step::PreopenedDirectories => "preopened directories",
            Step::Credentials => "credentials",
            Step::FileDescriptors => "file descriptors",
            Step::Landlock => "landlock",
            Step::BrokerLandlock => "the broker's landlock layer",
            Step::MemoryDenyWriteExecute => "memory_deny_write_execute",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
            Step::StartPre => "start_pre",
            Step::JoinNamespaces => "join namespaces",
            Step::OomScoreAdjust => "oom_score_adj",
            Step::ContainerHook => "container hook",
            Step::Condition => "condition",
            Step::Nice => "nice",
        }
    }

    fn from_code(c: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u8 == c)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The errno behind an error, where there is one: kept across the error
/// pipe, so that the parent decides by it and not by the message's text.
pub trait Errno {
    fn errno(&self) -> Option<i32> {
        None
    }
}

impl Errno for io::Error {
    fn errno(&self) -> Option<i32> {
        self.raw_os_error()
    }
}

impl Errno for nix::errno::Errno {
    fn errno(&self) -> Option<i32> {
        Some(*self as i32)
    }
}

impl Errno for seccompiler::Error {
    fn errno(&self) -> Option<i32> {
        match self {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

impl Errno for landlock::RulesetError {}
impl Errno for caps::errors::CapsError {}
impl Errno for String {}
impl Errno for &str {}

/// An error inside the child, before exec: the step, the errno if any, and a
/// message that already names the path and the cause. Sent to the parent as
/// a fixed record ([`ChildError::encode`]).
#[derive(Debug)]
pub struct ChildError {
    pub step: Step,
    pub errno: Option<i32>,
    pub detail: String,
}

impl ChildError {
    pub fn new(step: Step, detail: impl Into<String>) -> Self {
        ChildError { step, errno: None, detail: detail.into() }
    }
    pub fn io(step: Step, what: impl std::fmt::Display, e: impl std::fmt::Display + Errno) -> Self {
        ChildError { step, errno: e.errno(), detail: format!("{what}: {e}") }
    }

    /// The record: the step's code (one byte), the errno (four bytes, little
    /// endian; 0 for none), then the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![self.step as u8];
        b.extend(self.errno.unwrap_or(0).to_le_bytes());
        b.extend(self.detail.as_bytes());
        b
    }

    /// Reads a record [`encode`](Self::encode) wrote (a short or unknown one
    /// becomes a setup error with what could be read).
    pub fn decode(b: &[u8]) -> ChildError {
        let step = b.first().copied().and_then(Step::from_code);
        match (step, b.get(1..5)) {
            (Some(step), Some(e)) => {
                let errno = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                ChildError { step, errno: (errno != 0).then_some(errno), detail: String::from_utf8_lossy(&b[5..]).into_owned() }
            }
            _ => ChildError::new(Step::ForkService, format!("an unreadable setup report: {}", String::from_utf8_lossy(b))),
        }
    }
}

impl From<ChildError> for LaunchError {
    fn from(e: ChildError) -> Self {
        LaunchError::Child { step: e.step, errno: e.errno, detail: e.detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_pipe() {
        for step in Step::ALL {
            let e = ChildError::io(step, "mount /x", io::Error::from_raw_os_error(libc::EACCES));
            let back = ChildError::decode(&e.encode());
            assert_eq!((back.step, back.errno, back.detail), (step, Some(libc::EACCES), e.detail.clone()));
        }
        let none = ChildError::decode(&ChildError::new(Step::Exec, "x").encode());
        assert_eq!((none.step, none.errno), (Step::Exec, None));
        assert_eq!(ChildError::decode(b"\xff").step, Step::ForkService);
    }
}
