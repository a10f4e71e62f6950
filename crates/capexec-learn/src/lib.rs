//! `capexec learn`: run a program under a sandbox that denies nothing and
//! records what it does (record), keep the observations (observe), and turn
//! them into a declaration with a comment on every entry (mine).
//! docs/learning.md explains the choices.

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod compare;
pub mod merge;
pub mod mine;
pub mod observe;
pub mod propose;
pub mod record;

pub use observe::{Access, Observations};

/// Whether `path` is one capexec put in the run's view for itself (the
/// relayed notify socket): no declaration names it, every run has it.
pub(crate) fn capexecs_own(path: &str) -> bool {
    // /dev/log leads to capexec's syslog socket (in a minimal /dev).
    within(path, capexec_sandbox::plan::NOTIFY_RELAY_DIR) || path == "/dev/log"
}

/// Whether `path` is a /proc entry beyond the service's own processes
/// (/proc/stat, /proc/meminfo, /proc/net/...), which a pid-only /proc (the
/// default) does not have.
pub(crate) fn host_proc(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/proc/") else { return false };
    let first = rest.split('/').next().unwrap_or_default();
    !(first == "self" || first == "thread-self" || (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit())))
}

/// /proc files beyond the service's own processes that programs read and do
/// without when they are missing: no reason for a full /proc.
/// `sysconf(_SC_NGROUPS_MAX)` (initgroups, opendkim's drop to its user)
/// falls back to NGROUPS_MAX; malloc reads the overcommit policy to decide
/// whether a heap may shrink, and assumes it may not; the listen backlog's
/// ceiling, which Redis reads only to warn about and Go's net package only
/// to size its backlog, has a built-in value in both; the IPv6 route
/// cache's size, which the PowerDNS Recursor reads if it is there to warn
/// when it is low; the list of file systems, which libselinux reads to
/// learn whether selinuxfs exists (php-fpm, smbd: without it, it looks for
/// the mount and finds none); the core pattern, which Samba reads to place
/// its cores, and without which it uses its own directory.
const OPTIONAL_PROC: &[&str] = &[
    "/proc/sys/kernel/ngroups_max",
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/net/core/somaxconn",
    "/proc/sys/net/ipv6/route/max_size",
    "/proc/filesystems",
    "/proc/sys/kernel/core_pattern",
];

/// The highest capability the kernel knows: libcap-ng (in every program
/// linked with it, from its constructor: knot, dovecot), libcap and systemd
/// find it without this file by asking `prctl(PR_CAPBSET_READ)` for each.
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// Whether the run's read of `path`, a host /proc file, is one the program
/// does without in a pid-only /proc (see [`OPTIONAL_PROC`], [`CAP_LAST_CAP`]:
/// only where the run's syscalls include the fallback's prctl).
pub(crate) fn optional_proc(path: &str, obs: &Observations) -> bool {
    OPTIONAL_PROC.contains(&path) || (path == CAP_LAST_CAP && obs.syscalls.contains_key("prctl"))
}

/// The paths the run only looked at (stat, statfs) that are entries of `/`,
/// once it had read a mount table: the learning view binds every entry of
/// `/`, so these are its mount points, which prometheus-node-exporter's
/// filesystem collector statfs'es one by one (that made /home, /root and
/// /srv readable in its mined declaration). Under a declaration the service
/// lists the mounts of its own view instead: they need no entry.
pub fn learning_mount_points(obs: &Observations) -> std::collections::BTreeSet<String> {
    let table = |p: &str| p == "/etc/mtab" || p.strip_prefix("/proc/").is_some_and(|r| r.ends_with("/mounts") || r.ends_with("/mountinfo") || r == "mounts");
    if !obs.paths.keys().any(|p| table(p)) {
        return Default::default();
    }
    obs.paths.iter().filter(|(p, acc)| acc.iter().all(|a| *a == Access::Look) && p.len() > 1 && p.rfind('/') == Some(0)).map(|(p, _)| p.clone()).collect()
}

/// `p` with the compatibility links into /run resolved.
pub(crate) fn without_links(p: &str) -> String {
    for (link, target) in [("/var/run", "/run"), ("/var/lock", "/run/lock")] {
        if let Some(rest) = p.strip_prefix(link).filter(|r| r.is_empty() || r.starts_with('/')) {
            return format!("{target}{rest}");
        }
    }
    p.to_owned()
}

/// Whether `path` is `dir` or below it (`/` holds everything).
pub(crate) fn within(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}
