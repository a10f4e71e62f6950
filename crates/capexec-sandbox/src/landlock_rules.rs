//! The Landlock ruleset: filesystem rights from the view, TCP ports, scopes.
//!
//! The view already limits what exists; Landlock adds a second, independent wall
//! that also holds where a mount would allow more (e.g. a path bound read-write
//! is still not executable, and nothing outside the listed paths can be opened
//! even through an inherited directory fd).

use crate::error::{ChildError, Step};
use crate::plan::{FsAccess, LandlockPlan};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

const STEP: Step = Step::Landlock;
/// The ABI whose features capexec uses: filesystem incl. truncate and device
/// ioctls (v5), TCP (v4), scopes (v6).
const TARGET: ABI = ABI::V6;
/// `TARGET` as the number the kernel reports.
pub const REQUIRED_ABI: i64 = 6;

fn rights(a: FsAccess) -> BitFlags<AccessFs> {
    let all = AccessFs::from_all(TARGET);
    match a {
        FsAccess::ListDir => AccessFs::ReadDir.into(),
        FsAccess::ReadOnly => AccessFs::ReadFile | AccessFs::ReadDir,
        FsAccess::Execute => AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute,
        FsAccess::ReadWrite => all & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock),
        FsAccess::Device => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir | AccessFs::IoctlDev,
        FsAccess::ReadWriteExec => all & !(AccessFs::MakeChar | AccessFs::MakeBlock),
        // Truncate: what a write to a proc file asks for through
        // open(O_TRUNC) or ftruncate (pam_loginuid's /proc/self/loginuid,
        // pg_ctlcluster's oom_score_adj); it truncates nothing there, and the
        // kernel's own checks on the write still apply.
        FsAccess::Proc => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir | AccessFs::Truncate,
    }
}

fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_PATH: opened without any access to the contents (the access mode
    // std adds is ignored with it).
    Ok(std::fs::File::options().read(true).custom_flags(libc::O_PATH).open(path)?.into())
}

fn is_dir(fd: &OwnedFd) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd()).map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(false)
}

/// Applies the ruleset to the calling process (inherited by its children).
/// Returns a note when best-effort left something out.
pub fn apply(plan: &LandlockPlan, preopened_dirs: &[RawFd]) -> Result<Option<String>, ChildError> {
    let e = |what: &str, e: landlock::RulesetError| ChildError::io(STEP, what, e);
    let compat = if plan.required { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let scopes = scopes_of(plan);
    let mut ruleset = Ruleset::default()
        .set_compatibility(compat)
        .handle_access(AccessFs::from_all(TARGET))
        .map_err(|x| e("handle filesystem access", x))?
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .map_err(|x| e("handle TCP access", x))?;
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes).map_err(|x| e("scope abstract unix sockets and signals", x))?;
    }
    let mut created = ruleset.create().map_err(|x| e("create ruleset", x))?;
    let file_rights = AccessFs::from_file(TARGET);
    for (path, access) in &plan.paths {
        let fd = match open_path(path) {
            Ok(fd) => fd,
            // An optional path that is not there: nothing to allow.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(ChildError::io(STEP, format!("open {} for a rule", path.display()), err)),
        };
        let mut r = rights(*access);
        if !is_dir(&fd) {
            r &= file_rights;
        }
        if r.is_empty() {
            continue;
        }
        created = created.add_rule(PathBeneath::new(fd, r)).map_err(|x| ChildError::io(STEP, format!("rule for {}", path.display()), x))?;
    }
    for raw in preopened_dirs {
        // A descriptor of its own for the rule: the preopened one is the service's.
        let fd = crate::sys::dup_cloexec(*raw).map_err(|x| ChildError::io(STEP, "duplicate a preopened directory", x))?;
        created = created.add_rule(PathBeneath::new(fd, rights(FsAccess::ReadOnly))).map_err(|x| ChildError::io(STEP, "rule for a preopened directory", x))?;
    }
    for port in &plan.bind_tcp {
        created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp)).map_err(|x| ChildError::io(STEP, format!("bind rule for TCP port {port}"), x))?;
    }
    for port in &plan.connect_tcp {
        created =
            created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(|x| ChildError::io(STEP, format!("connect rule for TCP port {port}"), x))?;
    }
    // Denials reach the audit log after the program's exec too (Landlock
    // logs those of the process that restricted itself only, by default):
    // the service's denial trail. Best effort whatever `required` says:
    // kernels before ABI 7 enforce the same rules without logging them.
    created = created.set_compatibility(CompatLevel::BestEffort).log_new_exec(true).map_err(|x| e("log denials after exec", x))?.set_compatibility(compat);
    // The setup set no_new_privs already, or holds CAP_SYS_ADMIN where the
    // plan leaves it off (SetupPlan::no_new_privs): not the crate's to set.
    let status = created.no_new_privs(false).restrict_self().map_err(|x| e("restrict_self", x))?;
    outcome(status.ruleset, plan.required, STEP, "Landlock")
}

/// The scopes the declaration asks for.
fn scopes_of(plan: &LandlockPlan) -> BitFlags<Scope> {
    let mut scopes: BitFlags<Scope> = BitFlags::empty();
    if plan.scope_abstract_unix {
        scopes |= Scope::AbstractUnixSocket;
    }
    if plan.scope_signals {
        scopes |= Scope::Signal;
    }
    scopes
}

/// What enforcing `layer` came to: nothing to say, a note (best-effort), or
/// an error when the declaration requires Landlock.
fn outcome(status: RulesetStatus, required: bool, step: Step, layer: &str) -> Result<Option<String>, ChildError> {
    match status {
        RulesetStatus::FullyEnforced => Ok(None),
        RulesetStatus::PartiallyEnforced if !required => Ok(Some(format!("{layer} only partially enforced on this kernel"))),
        RulesetStatus::NotEnforced if !required => Ok(Some(format!("Landlock is not available on this kernel: {layer} not enforced"))),
        other => Err(ChildError::new(step, format!("{layer} is {other:?} on this kernel but the declaration requires it (landlock.mode = \"required\"); `capexec doctor` shows what the kernel supports"))),
    }
}

/// A layer of signal scope alone, applied by the service's program over the
/// domain it shares with init: the program and what it starts can then no
/// longer signal init (init's domain is not theirs but its parent), while
/// init and the task helper's commands, in that parent, can signal them.
/// For a service without a pid namespace, whose init would otherwise die of
/// the service's own SIGKILL, with whatever it forked left unsupervised
/// (see `child::Leftovers`). Nothing to do where the declaration does not
/// scope signals.
pub fn apply_signal_layer(plan: &LandlockPlan) -> Result<Option<String>, ChildError> {
    if !plan.scope_signals {
        return Ok(None);
    }
    let e = |what: &str, e: landlock::RulesetError| ChildError::io(STEP, what, e);
    let compat = if plan.required { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    // A layer that does not handle moves between directories (REFER)
    // refuses them all (postfix's queue manager failed with EXDEV): this one
    // allows them beneath the view's root, and the service's own layer still
    // decides.
    let root = open_path(Path::new("/")).map_err(|x| ChildError::io(STEP, "open / for the signal layer", x))?;
    let ruleset = Ruleset::default()
        .set_compatibility(compat)
        .handle_access(AccessFs::Refer)
        .map_err(|x| e("handle moves between directories", x))?
        .scope(Scope::Signal)
        .map_err(|x| e("scope signals", x))?;
    let created = ruleset.create().map_err(|x| e("create the signal layer", x))?;
    let created = created.add_rule(PathBeneath::new(&root, AccessFs::Refer)).map_err(|x| e("rule for moves beneath /", x))?;
    // As for the service's own layer: not the crate's to set no_new_privs.
    let status = created.no_new_privs(false).restrict_self().map_err(|x| e("restrict_self (signal layer)", x))?;
    outcome(status.ruleset, plan.required, STEP, "the signal layer above init")
}

/// The Landlock layer shared by a service and its broker, applied to the
/// calling process before the service is cloned (`capexec exec`'s wrapper, or
/// the daemon's broker process): the broker keeps exactly this domain, the
/// service's own ruleset nests inside it.
///
/// Why TCP ports, scopes and moves only: Landlock lets a confined process
/// reach (ptrace-class: process_vm_readv, pidfd_getfd, /proc/PID/fdinfo)
/// only processes in its own domain or a nested one, so the broker's domain
/// must be an ancestor of the service's, i.e. the service lives under it
/// too. Filesystem access stays with the broker's ids, its seccomp filter
/// and the service's own layer; but Landlock refuses a move between
/// directories (REFER) in every layer that does not allow it, handled or
/// not, so this layer allows it beneath `refer`, the view's writable
/// directories, opened by the view's builder (crate::view_builder), which
/// mounted the view outside the layer: one that handles filesystem access
/// forbids mounts under it. With `refer` empty, the layer leaves filesystem
/// access alone, and no move between directories can be made under it.
///
/// The rules never restrict the service more than its own layer does: the
/// scopes are the service's, and the ports are those the broker crate chose
/// (`capexec_broker::contribution`): the service's plus what the broker needs.
/// Nothing to do for a plan without a broker.
pub fn apply_broker_layer(plan: &crate::plan::SetupPlan, refer: &[OwnedFd]) -> Result<Option<String>, crate::LaunchError> {
    match &plan.broker_layer {
        Some(layer) => broker_layer(&plan.landlock, layer, refer).map_err(Into::into),
        None => Ok(None),
    }
}

fn broker_layer(ll: &LandlockPlan, layer: &crate::plan::BrokerLayer, refer: &[OwnedFd]) -> Result<Option<String>, ChildError> {
    const STEP: Step = Step::BrokerLandlock;
    let e = |what: &str, e: landlock::RulesetError| ChildError::io(STEP, what, e);
    let compat = if ll.required { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let (bind, connect) = (layer.bind_tcp.as_ref(), layer.connect_tcp.as_ref());
    let mut handled: BitFlags<AccessNet> = BitFlags::empty();
    if bind.is_some() {
        handled |= AccessNet::BindTcp;
    }
    if connect.is_some() {
        handled |= AccessNet::ConnectTcp;
    }
    let scopes = scopes_of(ll);
    if handled.is_empty() && scopes.is_empty() && refer.is_empty() {
        return Ok(None);
    }
    let mut ruleset = Ruleset::default().set_compatibility(compat);
    if !refer.is_empty() {
        ruleset = ruleset.handle_access(AccessFs::Refer).map_err(|x| e("handle moves between directories", x))?;
    }
    if !handled.is_empty() {
        ruleset = ruleset.handle_access(handled).map_err(|x| e("handle TCP access", x))?;
    }
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes).map_err(|x| e("scope abstract unix sockets and signals", x))?;
    }
    let mut created = ruleset.create().map_err(|x| e("create ruleset", x))?;
    for dir in refer {
        created = created.add_rule(PathBeneath::new(dir, AccessFs::Refer)).map_err(|x| e("rule for moves beneath a writable directory", x))?;
    }
    for (ports, access) in [(bind, AccessNet::BindTcp), (connect, AccessNet::ConnectTcp)] {
        for &port in ports.into_iter().flatten() {
            created = created.add_rule(NetPort::new(port, access)).map_err(|x| ChildError::io(STEP, format!("{access:?} rule for TCP port {port}"), x))?;
        }
    }
    // Its refusals of the service after exec are logged too: the one
    // refusal only this layer makes (a move between directories, below the
    // service's own rules) would otherwise be a silent EXDEV.
    created = created.set_compatibility(CompatLevel::BestEffort).log_new_exec(true).map_err(|x| e("log denials after exec", x))?.set_compatibility(compat);
    let status = created.restrict_self().map_err(|x| e("restrict_self", x))?;
    outcome(status.ruleset, ll.required, STEP, "the broker's Landlock layer")
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use crate::plan::BrokerLayer;
    use std::process::{Command, Stdio};

    /// The test re-executes itself in these roles (env CAPEXEC_LL_ROLE), so
    /// that Landlock domains are created in fresh single-threaded processes.
    const ROLE: &str = "CAPEXEC_LL_ROLE";
    const TEST: &str = "landlock_rules::tests::the_broker_layer_nests_the_service_and_limits_the_broker";

    fn me(role: &str) -> Command {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", TEST, "--nocapture", "--test-threads=1"]).env(ROLE, role);
        c
    }

    fn plan(required: bool) -> LandlockPlan {
        LandlockPlan { required, paths: vec![], bind_tcp: vec![], connect_tcp: vec![], scope_abstract_unix: true, scope_signals: true }
    }

    /// A process with a Landlock domain of its own (a service), waiting on stdin.
    fn service_role() {
        apply(&plan(true), &[]).unwrap();
        println!("READY {}", std::process::id());
        let _ = std::io::stdin().read_line(&mut String::new());
    }

    fn errno_of(rc: isize) -> i32 {
        if rc >= 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap()
        }
    }

    /// 0 if this process may read `pid`'s memory (the read itself fails with
    /// EFAULT on the bogus address), else the errno.
    fn may_read(pid: i32) -> i32 {
        let mut b = [0u8; 8];
        let local = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: 8 };
        let remote = libc::iovec { iov_base: 8 as *mut libc::c_void, iov_len: 8 };
        // SAFETY: one local iovec over a live buffer; the remote address is only read by the kernel.
        let e = errno_of(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) });
        if e == libc::EFAULT {
            0
        } else {
            e
        }
    }

    /// Starts a service role; returns it with its pid. Its stdout stays with
    /// it (read to the end by [`end_service`]).
    fn spawn_service(c: &mut Command) -> (std::process::Child, i32) {
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The harness prints "test NAME ... " before the test's own output.
        while !line.contains("READY ") {
            line.clear();
            assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "the service role ended early");
        }
        let pid = line[line.find("READY ").unwrap() + 6..].trim().parse().unwrap();
        child.stdout = Some(out.into_inner());
        (child, pid)
    }

    fn end_service(mut c: std::process::Child) {
        drop(c.stdin.take());
        let _ = std::io::Read::read_to_end(&mut c.stdout.take().unwrap(), &mut Vec::new());
        c.wait().unwrap();
    }

    fn bind_errno(port: u16) -> i32 {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => 0,
            Err(e) => e.raw_os_error().unwrap_or(-1),
        }
    }

    /// The broker role: applies the layer with one granted bind port, then
    /// checks what it may do.
    fn broker_role(sibling: i32, granted: u16, other: u16) {
        let layer = BrokerLayer { bind_tcp: Some([granted].into()), connect_tcp: None };
        assert_eq!(broker_layer(&plan(true), &layer, &[]).unwrap(), None);
        assert_eq!(bind_errno(granted), 0, "the granted port");
        assert_eq!(bind_errno(other), libc::EACCES, "a port no grant names");
        // SAFETY: signal 0 only checks permission.
        let e = errno_of(unsafe { libc::kill(sibling, 0) } as isize);
        assert_eq!(e, libc::EPERM, "signals scoped to the broker's domain");
        // A service created under the layer nests in it: reachable.
        let (nested, pid) = spawn_service(&mut me("service"));
        assert_eq!(may_read(pid), 0, "the broker reaches a service created under its layer");
        end_service(nested);
        // A service with a domain of its own, created elsewhere, is not.
        assert_eq!(may_read(sibling), libc::EPERM, "a sibling domain is out of reach");
        println!("BROKER OK");
    }

    // The design the broker's confinement rests on, on this kernel: Landlock
    // lets a confined process reach only processes in its own domain or a
    // nested one; the broker's layer limits its TCP ports and signals.
    #[test]
    fn the_broker_layer_nests_the_service_and_limits_the_broker() {
        match std::env::var(ROLE).as_deref() {
            Ok("service") => return service_role(),
            Ok(r) if r.starts_with("broker ") => {
                let v: Vec<i32> = r[7..].split(' ').map(|x| x.parse().unwrap()).collect();
                return broker_role(v[0], v[1] as u16, v[2] as u16);
            }
            _ => {}
        }
        let (sibling, sib) = spawn_service(&mut me("service"));
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let o = me(&format!("broker {sib} {} {}", free(), free())).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        end_service(sibling);
        assert!(o.status.success() && out.contains("BROKER OK"), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    }
}
