//! Identity and capabilities of the service.
//!
//! Two phases. `switch_ids` runs first, before any mount: with
//! SECBIT_NO_SETUID_FIXUP the switch to the service's uid keeps the capabilities,
//! so the mount setup runs with the service's uid as fsuid (inside a user
//! namespace that maps only that uid, creating a mount point as an unmapped uid
//! would fail with EOVERFLOW) while still holding CAP_SYS_ADMIN.
//! `drop_privileges` runs after the view is built: it empties the bounding set
//! (every cap up to cap_last_cap, not a fixed list), sets the kept capabilities
//! (default none) in all sets including ambient, and sets the securebits so
//! that nothing gains privileges by becoming uid 0 or by exec (with
//! no_new_privs the kernel grants an exec nothing its caller lacks; without
//! it, NOROOT), while the kernel's setuid fixup works as it does outside (a
//! daemon that starts as root and switches to its user loses its
//! capabilities).

use crate::error::{ChildError, Step};
use crate::sys::{self, *};
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

const STEP: Step = Step::Credentials;

/// `groups`: the supplementary groups to set, `None` where setgroups is
/// denied (a rootless user namespace: the caller's stay, unmapped).
pub fn switch_ids(uid: u32, gid: u32, groups: Option<&[u32]>) -> Result<(), ChildError> {
    sys::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP).map_err(|e| ChildError::io(STEP, "set securebits NO_SETUID_FIXUP", e))?;
    if let Some(groups) = groups {
        let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&gids).map_err(|e| ChildError::io(STEP, format!("set supplementary groups {groups:?}"), e))?;
    }
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|e| ChildError::io(STEP, format!("setresgid {gid}"), e))?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| ChildError::io(STEP, format!("setresuid {uid}"), e))?;
    Ok(())
}

/// What init holds beyond the service's set until it has forked what runs
/// in the sandbox: CAP_KILL (it forwards stop signals to a service that may
/// have switched to another user: a daemon started as root that setuid()s
/// away cannot be signalled by root without it) and CAP_SETPCAP (each child's
/// drop of these from its own bounding set, in [`service_privileges`]), and
/// CAP_DAC_READ_SEARCH, which init and the task helper keep for a forking
/// service's pid file: it lies where the daemon put it, often in a
/// directory only the daemon's user may enter (chronyd's /run/chrony is 0700
/// _chrony), and init, root with nothing else, must read it to know whom to
/// signal. Both stay in the service's Landlock domain, and their filters let
/// them open and read, nothing more.
const INIT_ONLY: [Capability; 3] = [Capability::CAP_KILL, Capability::CAP_SETPCAP, Capability::CAP_DAC_READ_SEARCH];

/// Drops every capability from the bounding set but `keep` (and
/// [`INIT_ONLY`]), up to `cap_last_cap`.
fn bound_to(keep: &CapsHashSet, cap_last_cap: u32) -> Result<(), ChildError> {
    for cap in 0..=cap_last_cap {
        if keep.iter().any(|k| k.index() as u32 == cap) {
            continue;
        }
        match sys::prctl(libc::PR_CAPBSET_DROP, cap.into()) {
            Ok(_) => {}
            // Not a capability this kernel knows: nothing to drop.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(ChildError::io(STEP, format!("drop capability {cap} from the bounding set"), e)),
        }
    }
    Ok(())
}

fn set(which: CapSet, s: &CapsHashSet) -> Result<(), ChildError> {
    caps::set(None, which, s).map_err(|e| ChildError::io(STEP, format!("set {which:?} capabilities"), e))
}

/// In the service's process (and each command's) before exec: what only
/// init holds goes, from every set; the kept ones stay. `hold_admin`: also
/// CAP_SYS_ADMIN, in the effective and permitted sets only, for installing
/// the filters without no_new_privs ([`drop_privileges`]).
pub fn service_privileges(keep: &[Capability], hold_admin: bool) -> Result<(), ChildError> {
    let keep_set: CapsHashSet = keep.iter().copied().collect();
    for c in INIT_ONLY.iter().filter(|c| !keep_set.contains(c)) {
        sys::prctl(libc::PR_CAPBSET_DROP, c.index() as libc::c_ulong).map_err(|e| ChildError::io(STEP, format!("drop {c} from the bounding set"), e))?;
    }
    let mut held = keep_set;
    if hold_admin {
        held.insert(Capability::CAP_SYS_ADMIN);
    }
    set(CapSet::Effective, &held)?;
    set(CapSet::Permitted, &held)
}

/// The task helper: CAP_KILL goes (it signals nothing); CAP_SETPCAP stays
/// for its commands' own [`service_privileges`], with the kept set, and
/// CAP_DAC_READ_SEARCH where it reads a pid file (`reads_pid_file`; the
/// commands' MAINPID).
pub fn helper_privileges(keep: &[Capability], reads_pid_file: bool) -> Result<(), ChildError> {
    let mut rest: CapsHashSet = keep.iter().copied().chain([Capability::CAP_SETPCAP]).collect();
    if reads_pid_file {
        rest.insert(Capability::CAP_DAC_READ_SEARCH);
    }
    for c in INIT_ONLY.iter().filter(|c| !rest.contains(c)) {
        sys::prctl(libc::PR_CAPBSET_DROP, c.index() as libc::c_ulong).map_err(|e| ChildError::io(STEP, format!("drop {c} from the bounding set"), e))?;
    }
    set(CapSet::Effective, &rest)?;
    set(CapSet::Permitted, &rest)
}

/// Init, once the program (and the task helper) exist: CAP_KILL alone, and
/// CAP_DAC_READ_SEARCH where it reads a pid file (`reads_pid_file`).
pub fn init_privileges(cap_last_cap: u32, reads_pid_file: bool) -> Result<(), ChildError> {
    let mut held: CapsHashSet = [Capability::CAP_KILL].into_iter().collect();
    if reads_pid_file {
        held.insert(Capability::CAP_DAC_READ_SEARCH);
    }
    bound_to(&held, cap_last_cap)?;
    set(CapSet::Inheritable, &CapsHashSet::new())?;
    caps::clear(None, CapSet::Ambient).map_err(|e| ChildError::io(STEP, "clear ambient capabilities", e))?;
    set(CapSet::Effective, &held)?;
    set(CapSet::Permitted, &held)
}

/// `hold_admin`: without no_new_privs, Landlock and seccomp filters need
/// CAP_SYS_ADMIN when they are installed. It stays in the effective and
/// permitted sets then, never in the bounding, inheritable or ambient
/// ones: init drops it ([`init_privileges`]), the program's exec does
/// (with SECBIT_NOROOT the new permitted set is the ambient one, plus what
/// a file's capabilities grant within the bounding set).
pub fn drop_privileges(keep: &[Capability], cap_last_cap: u32, hold_admin: bool) -> Result<(), ChildError> {
    let keep_set: CapsHashSet = keep.iter().copied().collect();
    let with_init: CapsHashSet = keep_set.iter().chain(&INIT_ONLY).copied().collect();
    bound_to(&with_init, cap_last_cap)?;
    set(CapSet::Inheritable, &keep_set)?;
    let mut held = with_init;
    if hold_admin {
        held.insert(Capability::CAP_SYS_ADMIN);
    }
    set(CapSet::Effective, &held)?;
    set(CapSet::Permitted, &held)?;
    caps::clear(None, CapSet::Ambient).map_err(|e| ChildError::io(STEP, "clear ambient capabilities", e))?;
    for c in keep {
        caps::raise(None, CapSet::Ambient, *c).map_err(|e| ChildError::io(STEP, format!("raise ambient {c}"), e))?;
    }
    // What the service keeps of these is what a daemon started as root by
    // init keeps, bounded by the kept set: the setuid fixup on (its own
    // setuid() to a user drops its capabilities, as it believes), and
    // PR_SET_KEEPCAPS left to it (a daemon keeping one capability across
    // its switch). Locked: the fixup itself, no raising of ambient
    // capabilities, and NOROOT, which is on only without no_new_privs
    // (`hold_admin`: an OCI config's noNewPrivileges = false), where an exec
    // as uid 0 would be granted the bounding set. With no_new_privs the
    // kernel lets no exec gain a capability (the new permitted set is cut
    // to the old one), and NOROOT would only take from a root process what
    // it holds: dovecot's master lowers its set with capset() and executes
    // its log, config and auth processes as root, each of which then
    // failed at its setgroups().
    let noroot = if hold_admin { SECBIT_NOROOT } else { 0 };
    let locked = noroot | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, locked).map_err(|e| ChildError::io(STEP, "lock securebits", e))?;
    // The service's own process drops INIT_ONLY (service_privileges), init
    // all but CAP_KILL (init_privileges), once it has forked them.
    Ok(())
}

/// What `capexec check` says of a program with file capabilities (Debian's
/// ping and fping have `cap_net_raw`): capexec runs every service with
/// no_new_privs, under which exec grants none of them, so the program has
/// only what the declaration keeps. fping then falls back to a ping socket,
/// and reported every host as lost. `None` for a program without any.
pub fn file_capability_warning(spec: &capexec_decl::ServiceSpec) -> Option<String> {
    let program = spec.exec.argv.first()?;
    let mask = sys::file_capabilities(&std::ffi::CString::new(program.as_bytes()).ok()?).ok()??;
    let mut names: Vec<String> = caps::all().into_iter().filter(|c| c.index() < 64 && mask & (1u64 << c.index()) != 0).map(|c| c.to_string()).collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    Some(format!(
        "{program} has file capabilities ({}), which it does not get under capexec: every service runs with no_new_privs, \
         so exec grants none; a service that starts as root keeps what [capabilities] keep names (raw and packet sockets stay refused whatever)",
        names.join(" ")
    ))
}
