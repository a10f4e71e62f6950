//! The Landlock ruleset: filesystem rights from the view, TCP ports, scopes.
//!
//! The view already limits what exists; Landlock adds a second, independent wall
//! that also holds where a mount would allow more (e.g. a path bound read-write
//! is still not executable, and nothing outside the listed paths can be opened
//! even through an inherited directory fd).

use crate::error::ChildError;
use crate::plan::{FsAccess, LandlockPlan};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const STEP: &str = "landlock";
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
        FsAccess::Proc => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir,
    }
}

fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: valid C string; O_PATH opens without any access to the contents.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn is_dir(fd: &OwnedFd) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd()).map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(false)
}

/// Applies the ruleset to the calling process (inherited by its children).
/// Returns a note when best-effort left something out.
pub fn apply(plan: &LandlockPlan, preopened_dirs: &[RawFd]) -> Result<Option<String>, ChildError> {
    let e = |what: &str, e: landlock::RulesetError| ChildError::io(STEP, what, e);
    let compat = if plan.required { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let mut scopes: BitFlags<Scope> = BitFlags::empty();
    if plan.scope_abstract_unix {
        scopes |= Scope::AbstractUnixSocket;
    }
    if plan.scope_signals {
        scopes |= Scope::Signal;
    }
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
        // SAFETY: the fd is a preopened directory that stays open in this process;
        // borrowing it for the duration of add_rule does not take ownership.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*raw) };
        created = created.add_rule(PathBeneath::new(fd, rights(FsAccess::ReadOnly))).map_err(|x| ChildError::io(STEP, "rule for a preopened directory", x))?;
    }
    for port in &plan.bind_tcp {
        created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp)).map_err(|x| ChildError::io(STEP, format!("bind rule for TCP port {port}"), x))?;
    }
    for port in &plan.connect_tcp {
        created =
            created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(|x| ChildError::io(STEP, format!("connect rule for TCP port {port}"), x))?;
    }
    let status = created.restrict_self().map_err(|x| e("restrict_self", x))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(None),
        RulesetStatus::PartiallyEnforced if !plan.required => Ok(Some("Landlock only partially enforced on this kernel".into())),
        RulesetStatus::NotEnforced if !plan.required => Ok(Some("Landlock is not available on this kernel: not enforced".into())),
        other => Err(ChildError::new(STEP, format!("Landlock is {other:?} on this kernel but the declaration requires it (landlock.mode = \"required\"); `capexec doctor` shows what the kernel supports"))),
    }
}
