//! The view of a service (or an OCI container) that shares a Landlock
//! layer with its broker, built by a process outside that layer, so that
//! the layer may handle moves between directories.
//!
//! Why: Landlock refuses a rename or link between two directories
//! (`LANDLOCK_ACCESS_FS_REFER`, EXDEV) in every layer of a domain that has
//! no rule allowing it there, whether the layer handles filesystem access or
//! not; a layer with such a rule handles filesystem access, and then nothing
//! under it may mount. The broker's layer must be an ancestor of the
//! service's domain (a domain may inspect only its own and nested ones, see
//! `landlock_rules::apply_broker_layer`), so it exists before the service's
//! first process, which therefore can no longer build its own view.
//!
//! The order, for a launch with `SpawnOptions::broker_layer`:
//! 1. [`start`]: the builder is cloned with the plan's namespaces but the
//!    pid namespace; the caller writes its id maps; it switches to the
//!    service's ids and mounts the view's steps but /proc, then says so.
//! 2. The caller opens the builder's namespaces and the view's writable
//!    directories (`/proc/PID/ns`, `/proc/PID/root`: the layer may open
//!    neither for a process outside it), applies the layer with REFER beneath
//!    those directories, and clones the service's init under it, in a new
//!    pid namespace of the builder's user namespace; init enters the
//!    builder's other namespaces instead of making its own (`ChildArgs::view`).
//! 3. [`Builder::finish`]: a child of the builder's, in init's pid namespace,
//!    mounts the view's /proc (which shows that namespace) and detaches the
//!    host's tree; the builder ends. Only then is init let go on its setup.

use crate::error::{ChildError, Step};
use crate::ops::Kernel;
use crate::plan::{FsAccess, MountStep, SetupPlan};
use crate::{mounts, sys, LaunchError};
use capexec_sys::process;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

/// The namespaces a builder makes: all the plan's but the pid namespace.
const BUILT: [(libc::c_int, &str); 6] = [
    (libc::CLONE_NEWUSER, "user"),
    (libc::CLONE_NEWNS, "mnt"),
    (libc::CLONE_NEWNET, "net"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
];

/// Whether `plan` is launched with a view builder when its caller enters
/// the broker's layer: a view the launch makes (capexec's own, or an OCI
/// container's on its root filesystem, also in a pod's network, IPC, UTS,
/// cgroup and pid namespaces entered by path), not one in a user or mount
/// namespace entered by path, a sandbox joined or one with createContainer
/// hooks (which run in init between the mounts and the host tree's detach,
/// with the host's root at /oldroot): their setup stays in init, and a
/// broker's layer there refuses moves between directories (docs/broker.md,
/// "Limits").
pub fn applies(plan: &SetupPlan) -> bool {
    plan.broker_layer.is_some()
        && plan.join == 0
        && plan.enter.iter().all(|(flag, _)| ENTERED.contains(flag) || *flag == libc::CLONE_NEWPID)
        && plan.container_hooks.create.is_empty()
        && !plan.foreign_mount_ns
        && plan.clone_flags & libc::CLONE_NEWNS != 0
}

/// The view's steps split for the builder: those mounted before init
/// exists, and /proc with anything below it, mounted once init's pid
/// namespace does (last: it must show that namespace), in their order.
fn split(steps: &[MountStep]) -> (Vec<MountStep>, Vec<MountStep>) {
    steps.iter().cloned().partition(|m| !matches!(m, MountStep::Proc { .. }) && !m.target().starts_with("/proc"))
}

/// A builder that has mounted everything but /proc and waits for init.
/// Dropped before [`Builder::finish`] (the launch failed), it is killed and reaped.
pub struct Builder {
    pid: libc::pid_t,
    chan: OwnedFd,
    /// Reaped already: its pid may name another process now.
    reaped: std::cell::Cell<bool>,
}

/// The namespaces a builder enters by path where the plan says so (a pod's),
/// before it mounts: what it mounts (/sys, a cgroup tree) shows them. The
/// pid namespace is init's to enter (`launch::begin`), the builder's child
/// mounts /proc in it.
const ENTERED: [libc::c_int; 4] = [libc::CLONE_NEWNET, libc::CLONE_NEWIPC, libc::CLONE_NEWUTS, libc::CLONE_NEWCGROUP];

/// The builder's namespaces, opened: init enters them.
pub struct Namespaces {
    pub user: Option<OwnedFd>,
    pub mnt: OwnedFd,
    /// net, ipc, uts, cgroup: those the plan makes or enters by path.
    pub others: Vec<(libc::c_int, OwnedFd)>,
}

/// Clones the builder and waits until it has mounted the view but /proc.
/// The caller must be single-threaded (`sys::clone_fork` checks); `trees` are the
/// mounts the launch prepared (`ChildArgs::trees`), `enter` the plan's
/// namespaces to enter, opened (those of [`ENTERED`] are entered).
pub fn start(plan: &SetupPlan, trees: &[(&Path, RawFd)], enter: &[(libc::c_int, RawFd)]) -> Result<Builder, LaunchError> {
    let (ours, theirs) = crate::launch::seqpacket_pair("the channel to the view's builder")?;
    let flags = plan.clone_flags & !libc::CLONE_NEWPID;
    let (pid, pidfd) =
        sys::clone_fork("clone the builder of the service's view", flags).map_err(|e| LaunchError::io("clone", "the builder of the service's view", e))?;
    if pidfd.is_none() {
        drop(ours);
        main(plan, trees, enter, theirs.as_raw_fd())
    }
    drop(theirs);
    let b = Builder { pid, chan: ours, reaped: std::cell::Cell::new(false) };
    if plan.user_ns {
        crate::launch::write_id_maps(pid, plan).map_err(|e| b.abort(e))?;
    }
    sys::write_raw(b.chan.as_raw_fd(), b"g").map_err(|e| b.abort(LaunchError::io("signal", "the builder of the service's view", e)))?;
    b.answer()?;
    Ok(b)
}

impl Builder {
    /// Opens the builder's namespaces (before the broker's layer exists).
    pub fn namespaces(&self, plan: &SetupPlan) -> Result<Namespaces, LaunchError> {
        let open = |name: &str| {
            let path = format!("/proc/{}/ns/{name}", self.pid);
            std::fs::File::open(&path).map(OwnedFd::from).map_err(|e| LaunchError::io("open the namespace of the view's builder", path, e))
        };
        let mut user = None;
        let mut mnt = None;
        let mut others = Vec::new();
        let entered = |flag: &libc::c_int| ENTERED.contains(flag) && plan.enter.iter().any(|(f, _)| f == flag);
        for (flag, name) in BUILT.iter().filter(|(flag, _)| plan.clone_flags & flag != 0 || entered(flag)) {
            let fd = open(name)?;
            match *flag {
                libc::CLONE_NEWUSER => user = Some(fd),
                libc::CLONE_NEWNS => mnt = Some(fd),
                _ => others.push((*flag, fd)),
            }
        }
        let mnt = mnt.ok_or_else(|| LaunchError::Plan("a view builder for a plan without a mount namespace".into()))?;
        Ok(Namespaces { user, mnt, others })
    }

    /// The view's writable directories (a move between two of them, or
    /// within one, is one the service's own layer allows), opened in the
    /// view through the builder's root, before the broker's layer exists:
    /// looked up in that root (RESOLVE_IN_ROOT: a link in the view leads
    /// where it leads there, never onto the host's tree). Those missing
    /// (optional) or not directories are left out.
    pub fn writable_dirs(&self, plan: &SetupPlan) -> Result<Vec<OwnedFd>, LaunchError> {
        let root_path = format!("/proc/{}/root", self.pid);
        use std::os::unix::fs::OpenOptionsExt;
        let root: OwnedFd = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&root_path)
            .map_err(|e| self.abort(LaunchError::io("open the root of the view's builder", &root_path, e)))?
            .into();
        let mut dirs = Vec::new();
        for (path, access) in &plan.landlock.paths {
            if !matches!(access, FsAccess::ReadWrite | FsAccess::ReadWriteExec) {
                continue;
            }
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("paths were checked for NUL during validation");
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
            match sys::openat2(root.as_fd(), &c, flags, 0, sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS) {
                Ok(fd) => dirs.push(fd),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
                Err(e) => return Err(self.abort(LaunchError::io("open a writable directory of the view", format!("{root_path}{}", path.display()), e))),
            }
        }
        Ok(dirs)
    }

    /// Has the builder mount the view's /proc in the pid namespace of
    /// `init` (the caller's child, not reaped) and end the view, and waits
    /// until it did.
    pub fn finish(self, init: libc::pid_t) -> Result<(), LaunchError> {
        // Opened here (the builder, in a user namespace, may not read init,
        // not dumpable, through a pidfd), in the caller's domain, init's too.
        let path = format!("/proc/{init}/ns/pid");
        let ns = std::fs::File::open(&path).map_err(|e| self.abort(LaunchError::io("open", path, e)))?;
        sys::send_fd(self.chan.as_raw_fd(), ns.as_raw_fd())
            .map_err(|e| self.abort(LaunchError::io("send", "the service's pid namespace to the view's builder", e)))?;
        self.answer()?;
        let _ = process::wait_child(self.pid, true);
        self.reaped.set(true);
        Ok(())
    }

    /// Ends and reaps the builder, then returns `e`.
    fn abort(&self, e: LaunchError) -> LaunchError {
        self.end();
        e
    }

    fn end(&self) {
        if !self.reaped.replace(true) {
            // Under the broker's layer, which scopes signals, the builder
            // cannot be killed from here: it ends when its channel does.
            let _ = nix::sys::socket::shutdown(self.chan.as_raw_fd(), nix::sys::socket::Shutdown::Both);
            // Our own child, not reaped yet: its pid is still its own.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGKILL);
            let _ = process::wait_child(self.pid, true);
        }
    }

    /// Reads the builder's answer: done (a 0 byte), or the error it met.
    fn answer(&self) -> Result<(), LaunchError> {
        let mut buf = [0u8; 4096];
        let n = loop {
            match nix::unistd::read(self.chan.as_raw_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(|e| self.abort(LaunchError::io("read", "the answer of the view's builder", e.into())))?,
            }
        };
        match &buf[..n] {
            [0] => Ok(()),
            [] => {
                let status = process::wait_child(self.pid, true);
                self.reaped.set(true);
                Err(match status {
                    Ok(Some(status)) if libc::WIFSIGNALED(status) => LaunchError::SetupKilled { signal: libc::WTERMSIG(status) },
                    _ => LaunchError::Plan("the builder of the service's view ended without an answer".into()),
                })
            }
            record => Err(self.abort(ChildError::decode(record).into())),
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.end();
    }
}

/// The builder: see the module's order. Answers on `chan` with a 0 byte per
/// phase done, or the error record, and ends.
fn main(plan: &SetupPlan, trees: &[(&Path, RawFd)], enter: &[(libc::c_int, RawFd)], chan: RawFd) -> ! {
    let fail = |e: ChildError| -> ! {
        let _ = sys::write_raw(chan, &e.encode());
        process::exit_now(126)
    };
    let mut go = [0u8; 1];
    // The caller wrote the id maps, or is gone.
    if !matches!(nix::unistd::read(chan, &mut go), Ok(1)) {
        process::exit_now(125)
    }
    // After the caller's last look at this process's ids: a credential
    // change clears it. A builder left behind would hold the view's mounts.
    for (flag, fd) in enter.iter().filter(|(flag, _)| ENTERED.contains(flag)) {
        if let Err(e) = sys::setns(*fd, *flag) {
            let path = plan.enter.iter().find(|(f, _)| f == flag).map_or_else(String::new, |(_, p)| p.display().to_string());
            fail(ChildError::io(Step::JoinNamespaces, format!("setns into {path}"), e))
        }
    }
    let (uid, gid) = plan.inside.unwrap_or((plan.uid, plan.gid));
    let prepared = crate::ops::Ops::switch_ids(&Kernel, uid, gid, (!plan.deny_setgroups).then_some(&plan.groups[..])).and_then(|()| {
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).map(drop).map_err(|e| ChildError::io(Step::ParentDeathSignal, "prctl", e))
    });
    let (before, proc) = split(&plan.mounts);
    let built = prepared.and_then(|()| {
        let mut view = mounts::View::start(&Kernel, plan.root.as_ref().map(|(p, ro)| (p.as_path(), *ro)))?;
        view.steps(&Kernel, &before, trees)?;
        Ok(view)
    });
    let view = built.unwrap_or_else(|e| fail(e));
    let _ = sys::write_raw(chan, &[0]);
    // init's pid namespace, or EOF: the launch gave up.
    let Ok((_, Some(init))) = sys::recv_fd_blocking(chan, &mut go) else { process::exit_now(125) };
    if plan.pid_ns {
        // Where this process's next child is born.
        if let Err(e) = sys::setns(init.as_raw_fd(), libc::CLONE_NEWPID) {
            fail(ChildError::io(Step::FilesystemView, "enter the pid namespace of the service's init to mount its /proc", e))
        }
    }
    match sys::clone_fork("fork the builder's child", 0) {
        Err(e) => fail(ChildError::io(Step::FilesystemView, "fork the builder's child in the service's pid namespace", e)),
        Ok((_, None)) => {
            let mut view = view;
            let ended = view.steps(&Kernel, &proc, trees).and_then(|()| view.finish(&Kernel, &plan.mounts, &plan.workdir, &mut || Ok(())));
            match ended {
                Ok(()) => process::exit_now(0),
                Err(e) => fail(e),
            }
        }
        Ok((child, Some(_))) => match process::wait_child(child, true) {
            Ok(Some(status)) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 => {
                let _ = sys::write_raw(chan, &[0]);
                process::exit_now(0)
            }
            // Its error is on the channel already.
            Ok(Some(status)) if libc::WIFEXITED(status) => process::exit_now(126),
            _ => fail(ChildError::new(Step::FilesystemView, "the builder's child in the service's pid namespace was killed")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capexec_decl::spec::ProcMode;

    #[test]
    fn proc_and_what_is_below_it_come_last_and_everything_in_its_order() {
        let bind = |p: &str| MountStep::Bind { path: p.into(), attrs: 0, optional: false, source: None };
        let proc = MountStep::Proc { mode: ProcMode::Full, hidepid: false, host_processes: false };
        let steps = vec![MountStep::Dev, proc.clone(), bind("/etc"), bind("/proc/sys/fs"), bind("/var/spool")];
        let (before, after) = split(&steps);
        assert_eq!(before, vec![MountStep::Dev, bind("/etc"), bind("/var/spool")]);
        assert_eq!(after, vec![proc, bind("/proc/sys/fs")]);
    }
}
