//! The privileged commands of a declaration's lists (`privileged = true`,
//! systemd's `+` prefix): run as root on the host, outside the sandbox, one
//! after another, each within a time limit. Used by the daemon (output into
//! the service's log) and by `capexec exec` (capexec's own streams).

use capexec_decl::spec::Command;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// A privileged command that failed, by its place in its list.
#[derive(Debug, thiserror::Error)]
#[error("{what}[{index}] `{shown}`{failure}")]
pub struct PrivilegedError {
    pub what: String,
    pub index: usize,
    /// Its command line, as shown.
    pub shown: String,
    pub failure: Failure,
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(": {0}")]
    Start(std::io::Error),
    #[error(": wait: {0}")]
    Wait(std::io::Error),
    /// Killed when its time (the declaration's `key`) was up.
    #[error(" did not end within {} ({key}); killed", capexec_decl::spec::format_duration(*limit))]
    TimedOut { limit: Duration, key: &'static str },
    #[error(" failed: {0}")]
    Failed(std::process::ExitStatus),
}

impl PrivilegedError {
    /// An `exec.condition` command exited 1 to 254: the service is not to
    /// start now, which is no failure (systemd's `ExecCondition=`).
    pub fn condition_unmet(&self) -> bool {
        self.what == "exec.condition" && matches!(&self.failure, Failure::Failed(s) if s.code().is_some_and(|c| (1..=254).contains(&c)))
    }
}

/// The privileged commands before a start: `exec.condition`'s, then
/// `exec.start_pre`'s (see [`run`]).
pub fn run_before_start(
    exec: &capexec_decl::spec::ExecSpec,
    env: &[(String, String)],
    limit: Duration,
    stdio: Option<&[OwnedFd; 2]>,
    note: &dyn Fn(&str),
) -> Result<(), PrivilegedError> {
    run("exec.condition", &exec.condition, env, exec.umask, limit, stdio, note)?;
    run("exec.start_pre", &exec.start_pre, env, exec.umask, limit, stdio, note)
}

/// Runs the privileged commands of `list` (named `what` in messages, by
/// their index in it) with a clean environment of `PATH` and `env`, and
/// the service's `umask` (as systemd's UMask= for every command), each
/// killed after `limit`. `stdio`: where their output goes (`None`:
/// inherited); `note`: what is said about them. The first failure not
/// ignored ends the run, as its message.
pub fn run(
    what: &str,
    list: &[Command],
    env: &[(String, String)],
    umask: Option<u32>,
    limit: Duration,
    stdio: Option<&[OwnedFd; 2]>,
    note: &dyn Fn(&str),
) -> Result<(), PrivilegedError> {
    for (i, c) in list.iter().enumerate().filter(|(_, c)| c.privileged) {
        let shown = c.argv.join(" ");
        let fail = |failure| PrivilegedError { what: what.to_owned(), index: i, shown: shown.clone(), failure };
        note(&format!("{what}[{i}] (privileged): {shown}"));
        let mut cmd = std::process::Command::new(&c.argv[0]);
        cmd.args(&c.argv[1..]).env_clear().env("PATH", capexec_sandbox::plan::DEFAULT_PATH).envs(env.iter().map(|(k, v)| (k, v))).current_dir("/");
        if let Some([out, err]) = stdio {
            let to = |fd: &OwnedFd| fd.try_clone().map(std::process::Stdio::from).unwrap_or_else(|_| std::process::Stdio::null());
            cmd.stdin(std::process::Stdio::null()).stdout(to(out)).stderr(to(err));
        }
        if let Some(m) = umask {
            capexec_sys::umask_at_exec(&mut cmd, m);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if c.ignore_failure => {
                note(&format!("{what}[{i}] `{shown}` could not start ({e}); ignored"));
                continue;
            }
            Err(e) => return Err(fail(Failure::Start(e))),
        };
        let deadline = Instant::now() + limit;
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let timed_out = child.try_wait().ok().flatten().is_none();
        if timed_out {
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| fail(Failure::Wait(e)))?;
        if timed_out && !c.ignore_failure {
            let key = if what == "exec.stop" { "service.stop_timeout" } else { "service.ready_timeout" };
            return Err(fail(Failure::TimedOut { limit, key }));
        }
        if !status.success() && !c.ignore_failure {
            return Err(fail(Failure::Failed(status)));
        }
    }
    Ok(())
}
