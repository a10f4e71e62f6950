//! An OCI container's hooks that run inside it during its setup
//! (runtime-spec config.md, "POSIX-platform Hooks"): createContainer, run
//! by init once the view's mounts are made and before the host's root is
//! detached, chrooted to it (their paths are the host's); startContainer,
//! run by the program's process when it is let go, before it execs (their
//! paths are the container's). Each gets the container's state on its
//! standard input, and the first that fails ends the setup.

use crate::error::{ChildError, Step};
use crate::plan::ContainerHook;
use capexec_sys::process;
use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// This process's pid on the host, read by init while the host's /proc is
/// at /oldroot ([`learn_host_pid`]); the program's process, forked by
/// init, has init's copy: the state's `pid` is init's, as `state` says.
static HOST_PID: AtomicI32 = AtomicI32::new(0);

/// Reads this process's pid as the host's /proc (at /oldroot during the
/// setup) shows it: in a pid namespace of its own, getpid() says 1.
pub fn learn_host_pid() {
    let pid = std::fs::read_link("/oldroot/proc/self").ok().and_then(|p| p.to_str()?.parse().ok()).unwrap_or_else(|| std::process::id() as i32);
    HOST_PID.store(pid, Ordering::Relaxed);
}

/// Runs `hooks` (`kind`: createContainer or startContainer) one after
/// another, each with the state (`state`, a JSON object, with the pid and
/// `status` added) on its standard input; chrooted to `root` first when
/// given. The first that fails is the error.
pub fn run(kind: &str, hooks: &[ContainerHook], state: &str, status: &str, root: Option<&CStr>) -> Result<(), ChildError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let pid = HOST_PID.load(Ordering::Relaxed);
    let rest = state.trim_start().strip_prefix('{').unwrap_or("}");
    let sep = if rest.trim_start().starts_with('}') { "" } else { "," };
    let state = format!("{{\"pid\":{pid},\"status\":\"{status}\"{sep}{rest}");
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state.as_bytes(), root).map_err(|e| ChildError::new(Step::ContainerHook, format!("hooks.{kind}[{i}] {}: {e}", h.path.to_string_lossy())))?;
    }
    Ok(())
}

/// Why a hook failed: the container's own (here) and the host's (capexec-oci's
/// prestart, createRuntime, poststart and poststop) alike.
#[derive(Debug, thiserror::Error)]
pub enum HookFailure {
    #[error("{op}: {source}")]
    Io { op: &'static str, source: std::io::Error },
    /// Its exit status (128 + N for signal N); `chrooted`: 126 may also
    /// mean the host's root could not be entered.
    #[error("exited with status {code}{}", match (code, chrooted) {
        (126, true) => " (or could not enter the host's root to run it)",
        (127, _) => " (or could not be executed: is the path right, and executable?)",
        _ => "",
    })]
    Exited { code: i32, chrooted: bool },
    #[error("killed after its timeout of {secs} s")]
    TimedOut { secs: u64 },
}

fn run_one(h: &ContainerHook, state: &[u8], root: Option<&CStr>) -> Result<(), HookFailure> {
    let (rd, wr) = crate::sys::pipe2(libc::O_CLOEXEC).map_err(|source| HookFailure::Io { op: "pipe", source })?;
    let argv = crate::sys::ExecList::new(h.argv.clone());
    let envp = crate::sys::ExecList::new(h.env.clone());
    // The caller is init, or the program's process before its exec.
    let pid = match process::fork("run a container hook") {
        Err(source) => return Err(HookFailure::Io { op: "fork", source }),
        Ok(process::Forked::Child) => {
            if nix::unistd::dup2(rd.as_raw_fd(), 0).is_err() {
                process::exit_now(126);
            }
            if let Some(root) = root {
                if nix::unistd::chroot(root).is_err() || nix::unistd::chdir("/").is_err() {
                    process::exit_now(126);
                }
            }
            // Init blocks the signals it forwards and ignores others; a hook
            // starts as any program does.
            crate::sys::default_signals(&[]);
            let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&nix::sys::signal::SigSet::empty()), None);
            let _ = crate::sys::execve(&h.path, &argv, &envp);
            process::exit_now(127)
        }
        Ok(process::Forked::Parent(pid)) => pid,
    };
    drop(rd);
    // A hook that does not read its input must not block the setup: EPIPE
    // is fine (Rust ignores SIGPIPE).
    let _ = nix::unistd::write(&wr, state);
    drop(wr);
    let deadline = h.timeout.map(|t| std::time::Instant::now() + t);
    let status = loop {
        match process::wait_child(pid, deadline.is_none()).map_err(|source| HookFailure::Io { op: "wait", source })? {
            Some(st) => break st,
            None if deadline.is_some_and(|d| std::time::Instant::now() > d) => {
                // Our own child.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                let _ = process::wait_child(pid, true);
                return Err(HookFailure::TimedOut { secs: h.timeout.unwrap_or_default().as_secs() });
            }
            None => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    };
    match crate::child::exit_code(status) {
        0 => Ok(()),
        code => Err(HookFailure::Exited { code, chrooted: root.is_some() }),
    }
}
