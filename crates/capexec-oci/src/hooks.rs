//! The config's hooks (runtime-spec config.md, "POSIX-platform Hooks"):
//! programs of the host that the runtime runs, with the container's state
//! as JSON on their standard input. `prestart` and `createRuntime` run
//! once the container's process is in its new namespaces, before its setup
//! (`SpawnOptions::before_setup`): one that fails ends the create.
//! `poststart` and `poststop` run after `start` let the program go and
//! after `delete` removed the container: one that fails or outlasts its
//! timeout is a warning, as the spec says for these two. createContainer
//! and startContainer run inside the container, by its own processes
//! during the setup: capexec_sandbox's container_hooks.

use capexec_sandbox::HookFailure;
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hook of the config that failed, by its place in the config.
#[derive(Debug, thiserror::Error)]
#[error("hooks.{kind}[{index}] {}: {failure}", path.display())]
pub struct HookError {
    pub kind: &'static str,
    pub index: usize,
    pub path: std::path::PathBuf,
    pub failure: HookFailure,
}

/// Runs `hooks` one after another; returns a warning for each that failed.
pub fn run(kind: &'static str, hooks: &[Hook], state: &serde_json::Value) -> Vec<HookError> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(index, h)| run_one(h, state).err().map(|failure| HookError { kind, index, path: h.path().clone(), failure }))
        .collect()
}

/// Runs `hooks` one after another, up to the first that fails: its error.
pub fn run_strict(kind: &'static str, hooks: &[Hook], state: &serde_json::Value) -> Result<(), HookError> {
    for (index, h) in hooks.iter().enumerate() {
        run_one(h, state).map_err(|failure| HookError { kind, index, path: h.path().clone(), failure })?;
    }
    Ok(())
}

fn run_one(h: &Hook, state: &serde_json::Value) -> Result<(), HookFailure> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in h.env().clone().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // The runtime's own streams stay its own: a hook's output is the hook's to put somewhere.
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().map_err(|source| HookFailure::Io { op: "start it", source })?;
    // A hook that does not read its input must not block us: EPIPE is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = h.timeout().filter(|t| *t > 0).map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait().map_err(|source| HookFailure::Io { op: "wait for it", source })? {
            use std::os::unix::process::ExitStatusExt;
            return match status.success() {
                true => Ok(()),
                false => Err(HookFailure::Exited { code: status.code().unwrap_or(128 + status.signal().unwrap_or(0)), chrooted: false }),
            };
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            // Our own child.
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookFailure::TimedOut { secs: h.timeout().unwrap_or(0).max(0) as u64 });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
