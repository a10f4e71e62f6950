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

use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `hooks` one after another; returns a warning for each that failed.
pub fn run(kind: &str, hooks: &[Hook], state: &serde_json::Value) -> Vec<String> {
    hooks.iter().enumerate().filter_map(|(i, h)| run_one(h, state).err().map(|e| format!("hooks.{kind}[{i}] {}: {e}", h.path().display()))).collect()
}

/// Runs `hooks` one after another, up to the first that fails: its error.
pub fn run_strict(kind: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state).map_err(|e| format!("hooks.{kind}[{i}] {}: {e}", h.path().display()))?;
    }
    Ok(())
}

fn run_one(h: &Hook, state: &serde_json::Value) -> Result<(), String> {
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
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().map_err(|e| e.to_string())?;
    // A hook that does not read its input must not block us: EPIPE is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = h.timeout().filter(|t| *t > 0).map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return match status.success() {
                true => Ok(()),
                false => Err(format!("exited with {status}")),
            };
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            // Our own child.
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("killed after its timeout of {} s", h.timeout().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
