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
//! that nothing can regain privileges by becoming uid 0 or by exec, while the
//! kernel's setuid fixup works as it does outside (a daemon that starts as
//! root and switches to its user loses its capabilities).

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

pub fn drop_privileges(keep: &[Capability], cap_last_cap: u32) -> Result<(), ChildError> {
    let keep_set: CapsHashSet = keep.iter().copied().collect();
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
    let mut with_setpcap = keep_set.clone();
    with_setpcap.insert(Capability::CAP_SETPCAP);
    let set = |which: CapSet, s: &CapsHashSet| caps::set(None, which, s).map_err(|e| ChildError::io(STEP, format!("set {which:?} capabilities"), e));
    set(CapSet::Inheritable, &keep_set)?;
    set(CapSet::Effective, &with_setpcap)?;
    set(CapSet::Permitted, &with_setpcap)?;
    caps::clear(None, CapSet::Ambient).map_err(|e| ChildError::io(STEP, "clear ambient capabilities", e))?;
    for c in keep {
        caps::raise(None, CapSet::Ambient, *c).map_err(|e| ChildError::io(STEP, format!("raise ambient {c}"), e))?;
    }
    // What the service keeps of these is what a daemon started as root by
    // init keeps, bounded by the kept set: the setuid fixup on (its own
    // setuid() to a user drops its capabilities, as it believes), and
    // PR_SET_KEEPCAPS left to it (a daemon keeping one capability across
    // its switch). Locked: NOROOT (exec as uid 0 grants nothing), the
    // fixup itself, and no raising of ambient capabilities.
    let locked = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, locked).map_err(|e| ChildError::io(STEP, "lock securebits", e))?;
    set(CapSet::Effective, &keep_set)?;
    set(CapSet::Permitted, &keep_set)?;
    Ok(())
}
