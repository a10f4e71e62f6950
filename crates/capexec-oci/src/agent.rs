//! The seccomp agent a container's profile names (`linux.seccomp.listenerPath`,
//! runtime-spec config-linux.md): calls its SCMP_ACT_NOTIFY rules match
//! are handed to that process, which answers them (capexec's own is
//! `capexec agent`, the broker; others exist). capexec-oci connects to it
//! before anything of the container is made, as runc does (no agent, no
//! container), and sends it the container's process state with the filter's
//! listener once the container's process waits at its gate, its setup done.

use crate::error::OciError;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

pub struct Agent {
    conn: UnixStream,
    path: PathBuf,
    /// The container's state as the message carries it, without its pid.
    state: serde_json::Value,
    metadata: String,
    /// The container's init, told by the launch (`SpawnOptions::on_clone`).
    pid: Cell<i32>,
    /// What became of the sending: `None` until it was tried (or its
    /// outcome was taken).
    sent: RefCell<Option<std::io::Result<()>>>,
}

impl Agent {
    /// The agent of the bundle's profile, connected, when the plan hands
    /// calls to one; `status` is the container's (`creating`, or `running`
    /// for a process `exec` adds).
    pub fn connect(b: &crate::bundle::Bundle, id: &str, plan: &capexec_sandbox::SetupPlan, status: &str) -> Result<Option<Agent>, OciError> {
        let seccomp = b.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        let (Some(_), Some(path)) = (&plan.agent_seccomp, seccomp.and_then(|s| s.listener_path().clone())) else { return Ok(None) };
        let conn = UnixStream::connect(&path).map_err(|source| {
            OciError::io(format!("{id}: connect to the seccomp agent at {} (linux.seccomp.listenerPath; start the agent first)", path.display()), source)
        })?;
        let state = serde_json::json!({
            "ociVersion": "1.2.0",
            "id": id,
            "status": status,
            "bundle": b.dir,
            "annotations": b.spec.annotations().clone().unwrap_or_default(),
        });
        let metadata = seccomp.and_then(|s| s.listener_metadata().clone()).unwrap_or_default();
        Ok(Some(Agent { conn, path, state, metadata, pid: Cell::new(0), sent: RefCell::new(None) }))
    }

    /// `SpawnOptions::on_clone`'s part.
    pub fn cloned(&self, pid: i32) {
        self.pid.set(pid);
    }

    /// `SpawnOptions::agent`: the container's process state (runtime-spec:
    /// `fds`, `pid`, `metadata`, `state`) with the listener in SCM_RIGHTS,
    /// in one message, as runc sends it.
    pub fn send(&self, listener: OwnedFd) {
        let pid = self.pid.get();
        let mut state = self.state.clone();
        state["pid"] = pid.into();
        let message = serde_json::json!({
            "ociVersion": "1.2.0",
            "fds": ["seccompFd"],
            "pid": pid,
            "metadata": self.metadata,
            "state": state,
        });
        let sent = capexec_sys::send_fds(self.conn.as_raw_fd(), message.to_string().as_bytes(), &[listener.as_raw_fd()], nix::libc::MSG_NOSIGNAL).map(|_| ());
        *self.sent.borrow_mut() = Some(sent);
    }

    /// Whether the agent has the listener: a container whose notified calls
    /// nobody answers must not run (they would fail with ENOSYS). Asked once.
    pub fn outcome(&self) -> Result<(), OciError> {
        match self.sent.borrow_mut().take() {
            Some(sent) => sent.map_err(|source| {
                let id = self.state["id"].as_str().unwrap_or_default();
                OciError::io(format!("{id}: send the container's seccomp listener to the agent at {}", self.path.display()), source)
            }),
            None => Err(OciError::NoListener),
        }
    }
}

/// `SpawnOptions::on_clone` and `SpawnOptions::agent` for a launch that
/// may have an agent.
pub fn callbacks(agent: &Option<Agent>) -> (impl Fn(i32) + '_, Option<impl Fn(OwnedFd) + '_>) {
    let cloned = move |pid| {
        if let Some(a) = agent {
            a.cloned(pid);
        }
    };
    (cloned, agent.as_ref().map(|a| move |l| a.send(l)))
}

/// A pipe: a process started at once (`run`, `exec`) waits on its read
/// end, as a created container at its FIFO, until its listener reached the
/// agent ([`release`]).
pub type Gate = (OwnedFd, OwnedFd);

/// The agent of a process started at once, connected, and its gate; both
/// `None` when the plan hands no calls to an agent.
pub fn connect_gated(b: &crate::bundle::Bundle, id: &str, plan: &capexec_sandbox::SetupPlan, status: &str) -> Result<(Option<Agent>, Option<Gate>), OciError> {
    let agent = Agent::connect(b, id, plan, status)?;
    let gate = match agent {
        Some(_) => Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| OciError::io("make the gate for the agent's listener", e.into()))?),
        None => None,
    };
    Ok((agent, gate))
}

/// Lets a process of [`connect_gated`] go on past its gate once the agent
/// has its listener; the error otherwise (the caller ends the process: its
/// notified calls would have nobody to answer them).
pub fn release(agent: &Option<Agent>, gate: Option<Gate>) -> Result<(), OciError> {
    let (Some(agent), Some((_, write_end))) = (agent, gate) else { return Ok(()) };
    agent.outcome()?;
    nix::unistd::write(&write_end, b"g").map(|_| ()).map_err(|e| OciError::io("let the process go on past its gate", e.into()))
}
