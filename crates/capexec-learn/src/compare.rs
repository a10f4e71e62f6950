//! Observations against a validated declaration: what the declaration would
//! have refused (per category), and what it grants that the run never used.
//! `capexec learn --check` prints this as its coverage report; `capexec learn
//! --unit` prints it as the difference between the unit and the run.
//!
//! Syscalls are judged exactly: the recorder ran the unit's own seccomp
//! program on every call's real arguments (`Observations::denied`). Files and
//! network are judged here, against the view and the grants the declaration
//! describes, because the learning run had the host's view and network: the
//! rules below are those capexec-sandbox applies when it builds the view.

use crate::observe::{Access, Observations};
use crate::within as under;
use capexec_decl::fix;
use capexec_decl::spec::{DevMode, FsSpec, MountKind, NetMode, ProcMode};
use capexec_decl::ServiceSpec;
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// One thing the declaration would have refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// The syscall, path or address.
    pub what: String,
    /// How it was used: a syscall's call count, a path's accesses, `bind` or `connect`.
    pub how: String,
    /// Why the declaration refuses it.
    pub why: String,
    /// What would allow it: the declaration key, and the `capexec run`
    /// flag in parentheses (see capexec_decl::fix).
    pub fix: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Distinct syscalls the run made, and how many calls in all.
    pub distinct_syscalls: usize,
    pub calls: u64,
    pub syscalls: Vec<Denial>,
    pub files: Vec<Denial>,
    pub network: Vec<Denial>,
    /// Declared entries nothing in the run used (allowlist entries beyond
    /// @default, view directories, broker grants): candidates for removal.
    pub unused: Vec<String>,
}

impl Report {
    pub fn denials(&self) -> usize {
        self.syscalls.len() + self.files.len() + self.network.len()
    }

    /// Drops the connects to Unix sockets `exists` says are not there
    /// (glibc's probe for nscd at each lookup): they fail the same way in
    /// the view, so a report of what the unit would refuse leaves them out.
    /// Not for a summary of what the run did (`capexec run --net-summary`):
    /// the socket a program connected to may be gone when the run has ended.
    pub fn without_absent_sockets(mut self, exists: impl Fn(&str) -> bool) -> Report {
        self.network.retain(|d| d.how != "connect" || d.what.strip_prefix("unix:").is_none_or(&exists));
        self
    }

    /// Share of the run's distinct syscalls the filter allowed every time.
    pub fn syscall_coverage(&self) -> f64 {
        if self.distinct_syscalls == 0 {
            return 1.0;
        }
        1.0 - self.syscalls.len() as f64 / self.distinct_syscalls as f64
    }
}

fn accesses(a: &BTreeSet<Access>) -> String {
    a.iter().map(|x| format!("{x:?}").to_lowercase()).collect::<Vec<_>>().join("+")
}

/// Why a write to /proc is refused under `filesystem.host_processes`.
const HOST_PROC_READ_ONLY: &str = "read-only where /proc shows the host's processes";

/// Why the view does not let `path` be used as `acc`; `None` when it does.
/// `created`: the run itself created it (so it need not pre-exist);
/// `existed`: it exists on the host (a file a fresh tmpfs would not have).
pub fn fs_refusal(fs: &FsSpec, path: &str, acc: Access, created: bool, existed: bool) -> Option<&'static str> {
    // /var/run/x is /run/x: the view makes the link, which gives nothing itself.
    let real = crate::without_links(path);
    let path = real.as_str();
    if under(path, "/proc") {
        return match fs.proc {
            ProcMode::None => Some("the view has no /proc"),
            _ if fs.host_processes && matches!(acc, Access::Write | Access::Create | Access::Remove) => Some(HOST_PROC_READ_ONLY),
            // Listed, it shows no error: the processes are simply not there.
            _ if path == "/proc" && acc == Access::Read && !fs.host_processes => Some("listed, it shows only the service's own processes"),
            ProcMode::PidOnly if crate::host_proc(path) => Some("not in a pid-only /proc (the service's own processes only)"),
            _ => None,
        };
    }
    if under(path, "/dev") {
        let name = path.strip_prefix("/dev/").unwrap_or("");
        let given = path == "/dev"
            || capexec_sandbox::plan::DEV_NODES.contains(&name)
            || fs.devices.iter().any(|d| d.path == std::path::Path::new(path))
            || ["shm", "fd", "stdin", "stdout", "stderr", "pts", "log"].iter().any(|d| under(name, d));
        return match (fs.dev, given) {
            (DevMode::Minimal, true) => None,
            (DevMode::Minimal, false) => Some("not in the minimal /dev"),
            (DevMode::None, _) => Some("the view has no /dev"),
        };
    }
    let changes = matches!(acc, Access::Write | Access::Create | Access::Remove);
    // The last mount that covers the path wins: mounts are sorted parents
    // first, later ones mounted on top. (The private /tmp is one of them: a
    // tmpfs the validator adds.)
    let Some(mount) = fs.covering(std::path::Path::new(path)) else {
        // Directories on the way to a mount exist (empty) in the view.
        let ancestor = path == "/" || fs.mounts.iter().any(|m| under(&m.path.to_string_lossy(), path));
        return match (ancestor, acc) {
            (true, Access::Read | Access::Look) => None,
            _ => Some("not in the view"),
        };
    };
    let kind = mount.kind;
    match (kind, acc) {
        (MountKind::Inaccessible, _) => Some("masked (inaccessible) in the view"),
        (MountKind::Overlay | MountKind::ReadWriteExec, _) => None,
        (MountKind::Tmpfs, Access::Exec) => Some("on a tmpfs, which is not executable"),
        (MountKind::Tmpfs, Access::Read | Access::Look) if existed && !created && mount.path.to_string_lossy() != path => {
            Some("exists on the host, but the service's private tmpfs here starts empty")
        }
        (MountKind::Tmpfs, _) | (MountKind::ReadWrite, Access::Read | Access::Look | Access::Write | Access::Create | Access::Remove) => None,
        (MountKind::ReadWrite | MountKind::ReadOnly, Access::Exec) => Some("in a directory that is not executable"),
        // Shown, not readable: the view's listing right on / lists it.
        (MountKind::Visible, Access::Look) => None,
        (MountKind::Visible, Access::Read) if std::path::Path::new(path).is_dir() => None,
        (MountKind::ReadOnly | MountKind::Executable | MountKind::Visible, _) if changes => Some("read-only in the view"),
        (MountKind::Visible, _) => Some("only visible in the view (looked at, not read)"),
        (MountKind::ReadOnly | MountKind::Executable, _) => None,
    }
}

/// What would give the run `acc` on `path`: the list for its strongest use,
/// naming the path; for one the run created or removed, the nearest
/// directory above it that was there before the run (`made` says what the
/// run created): a name made or removed is its directory's to allow (a
/// file listed on its own is a mount, which can be neither), and a path
/// must exist to be listed. The masks, /dev and /proc have keys of their own.
fn path_fix(path: &str, acc: &BTreeSet<Access>, existed: bool, exists: &impl Fn(&str) -> bool, made: &impl Fn(&str) -> bool) -> String {
    if capexec_decl::validate::DEVICES.contains(&path) {
        return format!("add \"{path}\" to [filesystem] devices");
    }
    if under(path, "/dev") {
        return format!(
            "the minimal /dev has only null, zero, full, random, urandom, tty, shm, fd and log (capexec's syslog socket), and of the rest [filesystem] devices gives {}: another device needs a preopened fd ([[preopen.file]])",
            capexec_decl::validate::DEVICES.join(", ")
        );
    }
    if crate::host_proc(path) {
        return "set [filesystem] proc = \"full\"".into();
    }
    if path == "/proc" && acc.contains(&Access::Read) {
        return "set [filesystem] host_processes = true and [namespaces] pid = false (as root), if it is to see the host's processes".into();
    }
    if under(path, "/proc") {
        return "set [filesystem] proc = \"pid-only\" or \"full\"".into();
    }
    let writes = acc.iter().any(|a| matches!(a, Access::Write | Access::Create | Access::Remove));
    let how = if acc.contains(&Access::Exec) && writes {
        fix::PathUse::WriteExecute
    } else if acc.contains(&Access::Exec) {
        fix::PathUse::Execute
    } else if acc.iter().any(|a| matches!(a, Access::Write | Access::Create | Access::Remove)) {
        fix::PathUse::Write
    } else if acc.iter().all(|a| *a == Access::Look) {
        fix::PathUse::Look
    } else {
        fix::PathUse::Read
    };
    let root = std::path::Path::new("/");
    let mut p = std::path::Path::new(path);
    if acc.contains(&Access::Create) || acc.contains(&Access::Remove) {
        p = p.parent().filter(|up| *up != root).unwrap_or(p);
    }
    loop {
        let q = p.to_string_lossy();
        let there = if q == path { existed } else { exists(&q) };
        if there && !made(&q) {
            break;
        }
        match p.parent() {
            Some(up) if up != root => p = up,
            _ => break,
        }
    }
    fix::path(&p.to_string_lossy(), how)
}

/// Parses `tcp:ADDR:PORT` / `udp:[ADDR]:PORT` as the recorder writes them.
/// An address as observations word it (`tcp:127.0.0.1:80`), parsed; `None`
/// for Unix addresses.
pub fn inet(a: &str) -> Option<(capexec_decl::grants::Proto, SocketAddr)> {
    let (proto, rest) = a.split_once(':')?;
    let proto = match proto {
        "tcp" => capexec_decl::grants::Proto::Tcp,
        "udp" => capexec_decl::grants::Proto::Udp,
        _ => return None,
    };
    Some((proto, rest.parse().ok()?))
}

/// A connect that names no peer: to port 0, or of a datagram socket to the
/// unspecified address. glibc's getaddrinfo connects a datagram socket to
/// each answer (postfix's `0.0.0.0:25`, varnish's `0.0.0.0:0`) only to learn
/// the source address the kernel would pick, and sorts without it when
/// refused: no grant is needed, and none is given.
pub fn source_probe(addr: &str) -> bool {
    inet(addr).is_some_and(|(proto, a)| a.port() == 0 || proto == capexec_decl::grants::Proto::Udp && a.ip().is_unspecified())
}

/// What `spec` would refuse of the run `obs`, judged against the host's
/// resolvers (its /etc/resolv.conf).
pub fn compare(obs: &Observations, spec: &ServiceSpec, exists: impl Fn(&str) -> bool) -> Report {
    compare_with(obs, spec, exists, &crate::mine::host_nameservers())
}

/// [`compare`], with the host's resolvers given: the names the run looked up
/// through them are judged against `[broker.dns]` (a service of its own
/// network reaches no resolver but its broker's stub), not their port 53.
pub fn compare_with(obs: &Observations, spec: &ServiceSpec, exists: impl Fn(&str) -> bool, nameservers: &[std::net::IpAddr]) -> Report {
    let mut r = Report { distinct_syscalls: obs.syscalls.len(), calls: obs.syscalls.values().sum(), ..Default::default() };
    for (name, n) in &obs.denied {
        let why =
            if spec.seccomp.allowed.contains(name.as_str()) { "allowed by name, refused by capexec's argument rule for it" } else { "not in the allowlist" };
        let how = format!("{n} of {} calls", obs.syscalls.get(name).copied().unwrap_or(*n));
        r.syscalls.push(Denial { what: name.clone(), how, why: why.into(), fix: fix::syscall(Some(name), spec) });
    }

    let mount_points = crate::learning_mount_points(obs);
    let made = |p: &str| obs.paths.get(p).is_some_and(|a| a.contains(&Access::Create));
    for (path, acc) in &obs.paths {
        let created = acc.contains(&Access::Create);
        let existed = exists(path);
        // The learning view's, which the unit's view replaces by its own.
        if mount_points.contains(path) {
            continue;
        }
        // A probe for something that is not there fails the same way in the
        // view; what glibc does without is not missed.
        if !existed && !created || crate::optional_proc(path, obs) {
            continue;
        }
        if let Some(why) = acc.iter().find_map(|a| fs_refusal(&spec.filesystem, path, *a, created, existed)) {
            let fix = match why {
                _ if why.starts_with("masked") => {
                    format!("take \"{path}\" out of [filesystem] inaccessible (the system view masks /etc/shadow and /etc/gshadow itself)")
                }
                HOST_PROC_READ_ONLY => "take out [filesystem] host_processes if the service must write there".to_owned(),
                _ => path_fix(path, acc, existed, &exists, &made),
            };
            r.files.push(Denial { what: path.clone(), how: accesses(acc), why: why.to_owned(), fix });
        }
    }

    let bound: BTreeSet<SocketAddr> = obs.binds.iter().filter_map(|a| inet(a)).map(|(_, a)| a).collect();
    let own_network = spec.namespaces.net == NetMode::None;
    let asked = if own_network { crate::mine::asked_of_resolvers(obs, nameservers) } else { BTreeSet::new() };
    for name in asked.iter().filter(|n| spec.broker.dns.grant_for(n).is_none()) {
        r.network.push(Denial {
            what: name.clone(),
            how: "lookup".into(),
            why: "no [broker.dns] grant covers it: in its own network namespace the service reaches no resolver but its broker's".into(),
            fix: capexec_decl::fix::dns_name(name),
        });
    }
    for (how, set) in [("bind", &obs.binds), ("connect", &obs.connects)] {
        for a in set {
            if let Some(p) = a.strip_prefix("unix:") {
                if p.starts_with('@') || crate::capexecs_own(p) {
                    continue; // abstract: no path to judge; or capexec's own notify socket
                }
                // connect(2) needs write permission on the socket, which a
                // read-only mount does not take away (EROFS is for files,
                // directories and links): only that the view shows it.
                let acc = if how == "bind" { Access::Create } else { Access::Read };
                if let Some(why) = fs_refusal(&spec.filesystem, p, acc, how == "bind", exists(p)) {
                    let fix = path_fix(p, &[acc].into(), exists(p), &exists, &made);
                    r.network.push(Denial { what: a.clone(), how: how.into(), why: format!("its path is {why}"), fix });
                }
                continue;
            }
            if let Some(to) = a.strip_prefix("icmp:").and_then(|r| capexec_decl::grants::AddrRange::parse(r).ok()) {
                let why = match spec.namespaces.net {
                    NetMode::Host if spec.broker.ping_grant(to.addr).is_some() => continue,
                    NetMode::Host => "no [broker.net] ping grant covers it",
                    _ => "ping sockets need namespaces.net = \"host\" (in its own network the service reaches its loopback alone)",
                };
                let fix =
                    format!("add \"{to}\" to [broker.net] ping{}", if spec.namespaces.net == NetMode::Host { "" } else { ", with namespaces.net = \"host\"" });
                r.network.push(Denial { what: format!("echo request to {to}"), how: "ping".into(), why: why.into(), fix });
                continue;
            }
            let Some((proto, addr)) = inet(a) else { continue };
            // Its lookups through the host's resolver: judged by name above.
            if how == "connect" && !asked.is_empty() && addr.port() == 53 && nameservers.contains(&capexec_decl::grants::canonical(addr.ip())) {
                continue;
            }
            let granted = if how == "bind" { spec.broker.bind_grant(proto, addr).is_some() } else { spec.broker.connect_grant(proto, addr).is_some() };
            let grant = format!("add \"{}\" to broker.net.{how}", capexec_decl::grants::NetGrant::exact(proto, addr));
            let (why, fix) = match spec.namespaces.net {
                NetMode::Host => {
                    let ports = if how == "bind" { &spec.landlock.bind_tcp } else { &spec.landlock.connect_tcp };
                    let landlock = (proto == capexec_decl::grants::Proto::Tcp && !ports.contains(&addr.port()))
                        .then(|| (format!("Landlock allows no TCP {how} to port {}", addr.port()), fix::tcp(how == "bind", addr.port())));
                    // The guard passes a bind to a port the kernel picks; a
                    // connect made only to learn a source address fails
                    // harmlessly, and ping's to port 1025 of a pinged
                    // address is let through, muted.
                    let pinged = proto == capexec_decl::grants::Proto::Udp && addr.port() == 1025 && spec.broker.ping_grant(addr.ip()).is_some();
                    let passes = granted || how == "bind" && addr.port() == 0 || how == "connect" && (source_probe(a) || pinged);
                    let guard = (spec.broker.guards_net() && !passes)
                        .then(|| (format!("no [broker.net] {how} grant: the network guard refuses it on the host's network"), grant));
                    match (landlock, guard) {
                        (Some((lw, lf)), Some((gw, gf))) => (Some(format!("{lw}, and {gw}")), format!("{gf}, and {lf}")),
                        (l, g) => l.or(g).map_or((None, String::new()), |(w, f)| (Some(w), f)),
                    }
                }
                _ => {
                    // The service's own loopback: it may talk to itself.
                    // A TCP port of landlock.bind_tcp is its own to bind there.
                    let own_port = proto == capexec_decl::grants::Proto::Tcp && spec.landlock.bind_tcp.contains(&addr.port());
                    let internal = addr.ip().is_loopback() && (how == "bind" && (addr.port() == 0 || own_port) || how == "connect" && bound.contains(&addr))
                        || obs.own_loopback.contains(a)
                        || how == "connect" && source_probe(a);
                    let flag = match proto {
                        capexec_decl::grants::Proto::Tcp => format!("--net host --{how}-tcp {}", addr.port()),
                        capexec_decl::grants::Proto::Udp => "--net host".into(),
                    };
                    (
                        (!granted && !internal).then(|| format!("no broker {how} grant: it would {how} in the service's own network namespace")),
                        format!("{grant} (capexec run: {flag})"),
                    )
                }
            };
            if let Some(why) = why {
                r.network.push(Denial { what: a.clone(), how: how.into(), why, fix });
            }
        }
    }
    r.unused = unused(obs, spec);
    r
}

fn unused(obs: &Observations, spec: &ServiceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let default = capexec_decl::syscalls::group("@default").map(capexec_decl::syscalls::expand).unwrap_or_default();
    for entry in &spec.seccomp.declared {
        let mut members = match capexec_decl::syscalls::group(entry) {
            Some(g) => capexec_decl::syscalls::expand(g),
            None => [entry.as_str()].into_iter().collect(),
        };
        members.subtract(&default);
        if !members.is_empty() && !members.iter().any(|m| obs.syscalls.contains_key(m)) {
            out.push(format!("seccomp.allow {entry}"));
        }
    }
    let system: Vec<&str> = capexec_decl::validate::SYSTEM_EXECUTABLE
        .iter()
        .chain(capexec_decl::validate::SYSTEM_READ_ONLY)
        .chain(capexec_decl::validate::SYSTEM_INACCESSIBLE)
        .map(|s| s.trim_start_matches('-'))
        .collect();
    for m in &spec.filesystem.mounts {
        let p = m.path.to_string_lossy();
        // The system directories and the private /tmp are defaults, not declared entries.
        let default_tmp = spec.filesystem.private_tmp && p == "/tmp";
        let compat_link = capexec_decl::validate::COMPAT_LINKS.contains(&p.as_ref());
        if m.kind == MountKind::Inaccessible || system.contains(&p.as_ref()) || default_tmp || compat_link {
            continue;
        }
        // By real path (/var/run/app/ctl is in /run/app), sockets included.
        let sockets = obs.binds.iter().chain(&obs.connects).filter_map(|a| a.strip_prefix("unix:"));
        if !obs.paths.keys().map(String::as_str).chain(sockets).any(|q| under(&crate::without_links(q), &p)) {
            let key = match m.kind {
                MountKind::ReadOnly => "read_only",
                MountKind::Visible => "visible",
                MountKind::ReadWrite => "read_write",
                MountKind::ReadWriteExec => "read_write_exec",
                MountKind::Executable => "executable",
                _ => "tmpfs",
            };
            out.push(format!("filesystem.{key} {p}"));
        }
    }
    for (how, grants, seen) in [("bind", &spec.broker.bind, &obs.binds), ("connect", &spec.broker.connect, &obs.connects)] {
        for g in grants {
            if !seen.iter().filter_map(|a| inet(a)).any(|(p, a)| g.matches(p, a)) {
                out.push(format!("broker.net.{how} {g}"));
            }
        }
    }
    let pinged: Vec<std::net::IpAddr> =
        obs.connects.iter().filter_map(|a| a.strip_prefix("icmp:")).filter_map(|r| capexec_decl::grants::AddrRange::parse(r).ok()).map(|r| r.addr).collect();
    for g in spec.broker.ping.iter().filter(|g| !pinged.iter().any(|ip| g.contains(*ip))) {
        out.push(format!("broker.net.ping {g}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use capexec_decl::spec::Mount;

    fn fs(mounts: &[(&str, MountKind)]) -> FsSpec {
        FsSpec {
            directories: Vec::new(),
            directories_owner: None,
            pid_file: None,
            own_files: Vec::new(),
            as_owner: Vec::new(),
            overlay: None,
            copy_up: Vec::new(),
            root: None,
            filesystems: Vec::new(),
            devices: Vec::new(),
            system: true,
            mounts: mounts.iter().map(|(p, k)| Mount { path: p.into(), kind: *k, optional: false, source: None, propagation: None, layer_of: None }).collect(),
            private_tmp: true,
            dev: DevMode::Minimal,
            syslog_sockets: Vec::new(),
            proc: ProcMode::PidOnly,
            host_processes: false,
        }
    }

    #[test]
    fn the_view_is_judged_as_the_sandbox_builds_it() {
        let f = fs(&[
            ("/usr", MountKind::Executable),
            ("/etc", MountKind::ReadOnly),
            ("/etc/shadow", MountKind::Inaccessible),
            // The validator adds the private /tmp as a tmpfs mount.
            ("/tmp", MountKind::Tmpfs),
            ("/var/lib/app", MountKind::ReadWrite),
        ]);
        let ok = |p: &str, a: Access| fs_refusal(&f, p, a, false, true).is_none();
        assert!(ok("/usr/bin/cat", Access::Exec) && ok("/etc/hosts", Access::Read));
        assert!(!ok("/etc/hosts", Access::Write) && !ok("/etc/shadow", Access::Read));
        assert!(ok("/var/lib/app/db", Access::Write) && !ok("/var/lib/app/run.sh", Access::Exec));
        // Directories on the way to a mount can be looked at, nothing else.
        assert!(ok("/var", Access::Read) && !ok("/var/log/x", Access::Read) && !ok("/srv/x", Access::Read));
        assert!(ok("/dev/urandom", Access::Read) && !ok("/dev/sda", Access::Read));
        // A pid-only /proc (the fixture's) has the service's processes only.
        assert!(ok("/proc/self/status", Access::Read) && ok("/proc/12/stat", Access::Read) && !ok("/proc/meminfo", Access::Read));
        // Listing /proc (ps) finds the service's own processes only, unless
        // it is given the host's.
        assert!(!ok("/proc", Access::Read) && ok("/proc", Access::Look));
        let host = FsSpec { host_processes: true, ..f.clone() };
        assert!(fs_refusal(&host, "/proc", Access::Read, false, true).is_none());
        // ... and is read-only then.
        assert!(ok("/proc/self/oom_score_adj", Access::Write) && fs_refusal(&host, "/proc/self/oom_score_adj", Access::Write, false, true).is_some());
        // The private /tmp: what the run made is fine, the host's files are not there.
        assert!(fs_refusal(&f, "/tmp/x", Access::Read, true, true).is_none());
        assert!(fs_refusal(&f, "/tmp/host-file", Access::Read, false, true).is_some());
    }

    /// A visible path may be looked at (and a directory listed), not read,
    /// run or changed; a path only looked at is allowed by `visible`.
    #[test]
    fn a_visible_path_is_looked_at_not_read() {
        let f = fs(&[("/usr", MountKind::Executable), ("/srv/app.conf", MountKind::Visible), ("/var/tmp", MountKind::Visible)]);
        let ok = |p: &str, a: Access| fs_refusal(&f, p, a, false, true).is_none();
        assert!(ok("/srv/app.conf", Access::Look) && ok("/var/tmp", Access::Read), "a look, and a listing of a directory");
        for a in [Access::Read, Access::Exec, Access::Write] {
            assert!(!ok("/srv/app.conf", a), "{a:?}");
        }
        let s = spec("[exec]\nargv = [\"/usr/bin/true\"]\nuser = 1000\n");
        let mut o = Observations::default();
        o.paths.insert("/srv/looked".into(), [Access::Look].into());
        o.paths.insert("/srv/read".into(), [Access::Look, Access::Read].into());
        let r = compare(&o, &s, |_| true);
        let fixes: Vec<&str> = r.files.iter().map(|d| d.fix.as_str()).collect();
        assert_eq!(
            fixes,
            [
                "add \"/srv/looked\" to [filesystem] visible (capexec run: --visible /srv/looked)",
                "add \"/srv/read\" to [filesystem] read_only (capexec run: --ro /srv/read)"
            ],
            "{r:#?}"
        );
    }

    fn spec(body: &str) -> ServiceSpec {
        // A directory per call: tests run in parallel and each removes its own.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("capexec-compare-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.svc");
        std::fs::write(&f, body).unwrap();
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let s = capexec_decl::load_unit(f.to_str().unwrap(), &[], &ctx).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        s
    }

    /// Lookups through the host's resolver are judged by name against
    /// `[broker.dns]`, not as connects to its port 53, which granted would
    /// answer every name.
    #[test]
    fn lookups_through_the_hosts_resolver_are_judged_by_name() {
        let s = spec("[exec]\nargv = [\"/usr/bin/true\"]\nuser = 1000\n[namespaces]\nnet = \"none\"\n[broker.dns]\nnames = [\"*.example.com\"]\n");
        let mut o = Observations::default();
        o.connects.insert("udp:10.0.0.53:53".into());
        o.dns_queries.entry("udp:10.0.0.53:53".into()).or_default().extend(["db.example.com".into(), "other.example.org".into()]);
        let ns = ["10.0.0.53".parse().unwrap()];
        let r = compare_with(&o, &s, |_| true, &ns);
        let what: Vec<&str> = r.network.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(what, ["other.example.org"], "{:?}", r.network);
        assert_eq!(r.network[0].fix, "add \"other.example.org\" to broker.dns.names");
        // Another resolver than the host's: a connect like any other.
        let r = compare_with(&o, &s, |_| true, &[]);
        assert_eq!(r.network.iter().map(|d| d.what.as_str()).collect::<Vec<_>>(), ["udp:10.0.0.53:53"], "{:?}", r.network);
    }

    /// With the host's network and the guard (any address grant), a bind
    /// or connect is judged by its grant too, not only by Landlock's TCP
    /// ports: a UDP connect to an ungranted address was reported as fine,
    /// though the guard refuses it. Without the guard, UDP is not held.
    #[test]
    fn on_the_hosts_network_the_guard_is_judged_too() {
        let body = "[exec]\nargv = [\"/usr/bin/true\"]\nuser = 1000\n[namespaces]\nnet = \"host\"\n\
             [landlock]\nbind_tcp = [0, 9115]\nconnect_tcp = [443]\n";
        let guarded = spec(&format!("{body}[broker.net]\nbind = [\"tcp:[::]:9115\"]\nconnect = [\"tcp:192.0.2.1:443\"]\nping = [\"192.0.2.7\"]\n"));
        let mut o = Observations::default();
        o.binds.extend(["tcp:[::]:9115".into(), "tcp:[::1]:0".into(), "tcp:127.0.0.1:8080".into()]);
        o.connects.extend([
            "tcp:192.0.2.1:443".into(),
            "tcp:192.0.2.2:443".into(),
            "tcp:192.0.2.3:80".into(),
            "udp:192.0.2.53:53".into(),
            // ping's source probe of a pinged address, getaddrinfo's.
            "udp:192.0.2.7:1025".into(),
            "udp:[::]:25".into(),
        ]);
        let r = compare(&o, &guarded, |_| true);
        let told: Vec<(&str, &str)> = r.network.iter().map(|d| (d.what.as_str(), d.fix.as_str())).collect();
        assert_eq!(
            told,
            [
                ("tcp:127.0.0.1:8080", "add \"tcp:127.0.0.1:8080\" to broker.net.bind, and add 8080 to [landlock] bind_tcp (capexec run: --bind-tcp 8080)"),
                ("tcp:192.0.2.2:443", "add \"tcp:192.0.2.2:443\" to broker.net.connect"),
                ("tcp:192.0.2.3:80", "add \"tcp:192.0.2.3:80\" to broker.net.connect, and add 80 to [landlock] connect_tcp (capexec run: --connect-tcp 80)"),
                ("udp:192.0.2.53:53", "add \"udp:192.0.2.53:53\" to broker.net.connect"),
            ],
            "{r:#?}"
        );
        assert!(r.network[1].why.contains("the network guard refuses it"), "{r:#?}");
        // No grant, no guard: Landlock's TCP ports alone.
        let r = compare(&o, &spec(body), |_| true);
        let what: Vec<&str> = r.network.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(what, ["tcp:127.0.0.1:8080", "tcp:192.0.2.3:80"], "{r:#?}");
    }

    #[test]
    fn network_is_judged_by_grants_and_unused_entries_are_named() {
        let s = spec(
            "[exec]\nargv = [\"/usr/bin/true\"]\nuser = 1000\n[namespaces]\nnet = \"none\"\n\
             [landlock]\nbind_tcp = [953]\n\
             [broker.net]\nbind = [\"tcp:127.0.0.1:6379\", \"tcp:[::1]:6379\"]\n[seccomp]\nallow = [\"@timer\", \"getrusage\"]\n",
        );
        let mut o = Observations::default();
        o.binds.insert("tcp:127.0.0.1:6379".into());
        // A port of landlock.bind_tcp: the service's own, on its own loopback.
        o.binds.insert("tcp:127.0.0.1:953".into());
        o.binds.insert("tcp:127.0.0.1:7000".into());
        o.connects.insert("tcp:10.0.0.1:80".into());
        // A socket on a read-only mount can be connected to (EROFS is for
        // files, directories and links); one the view lacks cannot.
        o.connects.insert("unix:/usr/lib/x.sock".into());
        o.connects.insert("unix:/srv/x.sock".into());
        // glibc's nscd probe: refused in the view as on the host, where it is not there.
        o.connects.insert("unix:/var/run/nscd/socket".into());
        // The run's own loopback sockets (squid's helpers), and capexec's notify socket.
        o.binds.insert("udp:[::1]:0".into());
        o.connects.insert("udp:[::1]:39858".into());
        o.own_loopback.extend(["udp:[::1]:0".into(), "udp:[::1]:39858".into()]);
        o.connects.insert("unix:/.capexec/notify".into());
        // getaddrinfo's source-address probe: no peer, nothing refused.
        o.connects.insert("udp:0.0.0.0:0".into());
        o.connects.insert("udp:[::]:25".into());
        o.syscalls.insert("getrusage".into(), 1);
        o.syscalls.insert("socket".into(), 1);
        o.denied.insert("socket".into(), 1);
        let absent = |p: &str| p != "/var/run/nscd/socket";
        let r = compare(&o, &s, absent);
        let what: Vec<&str> = r.network.iter().map(|d| d.what.as_str()).collect();
        // What the run did is judged as it is (the net summary's verdicts) ...
        assert_eq!(what, ["tcp:127.0.0.1:7000", "tcp:10.0.0.1:80", "unix:/srv/x.sock", "unix:/var/run/nscd/socket"], "{r:#?}");
        // ... a report of what the unit refuses leaves out what is not there.
        let r = r.without_absent_sockets(absent);
        let what: Vec<&str> = r.network.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(what, ["tcp:127.0.0.1:7000", "tcp:10.0.0.1:80", "unix:/srv/x.sock"], "{r:#?}");
        assert_eq!(r.syscalls.len(), 1);
        assert!(r.syscall_coverage() < 1.0);
        assert!(r.unused.contains(&"seccomp.allow @timer".to_owned()) && !r.unused.iter().any(|u| u.contains("getrusage")), "{r:#?}");
        assert!(r.unused.contains(&"broker.net.bind tcp:[::1]:6379".to_owned()), "{r:#?}");
    }

    /// A path named through /var/run is judged at /run (pdns-recursor binds
    /// its control socket in /var/run/pdns-recursor, its runtime directory);
    /// the compatibility link itself is no declared entry.
    #[test]
    fn paths_through_var_run_are_judged_where_they_lead() {
        let s = spec("[exec]\nargv = [\"/usr/bin/true\"]\nuser = 1000\n[filesystem]\nruntime_directory = [\"app\"]\nread_only = [\"/srv\"]\n");
        let mut o = Observations::default();
        o.binds.insert("unix:/var/run/app/ctl".into());
        o.paths.insert("/var/run/app/app.pid".into(), [Access::Create].into());
        let r = compare(&o, &s, |_| true);
        assert!(r.network.is_empty() && r.files.is_empty(), "{r:#?}");
        assert_eq!(r.unused, ["seccomp.allow @system-service", "filesystem.read_only /srv"], "{r:#?}");
    }
    /// A file the run created or removed is its directory's to allow: the
    /// nearest one that was there before the run (apt-cacher-ng makes
    /// `_xstore/qstats/i/<time>` below its cache, fresh names at each
    /// start); a file only written is listed itself.
    #[test]
    fn what_the_run_made_is_allowed_in_the_directory_that_was_there() {
        let s = spec("[exec]\nargv = [\"/usr/bin/true\"]\nuser = 1000\n");
        let mut o = Observations::default();
        for p in ["/var/cache/app/x", "/var/cache/app/x/q", "/var/cache/app/x/q/123.4"] {
            o.paths.insert(p.into(), [Access::Create].into());
        }
        o.paths.insert("/var/cache/app/stale".into(), [Access::Remove].into());
        o.paths.insert("/var/lib/app/db".into(), [Access::Write].into());
        o.binds.insert("unix:/run/app/ctl".into());
        let r = compare(&o, &s, |p| p.starts_with("/var/cache/app") || p.starts_with("/var/lib/app") || p.starts_with("/run/app"));
        let fixes: BTreeSet<&str> = r.files.iter().chain(&r.network).map(|d| d.fix.as_str()).collect();
        assert_eq!(
            fixes,
            [
                "add \"/run/app\" to [filesystem] read_write (capexec run: --rw /run/app)",
                "add \"/var/cache/app\" to [filesystem] read_write (capexec run: --rw /var/cache/app)",
                "add \"/var/lib/app/db\" to [filesystem] read_write (capexec run: --rw /var/lib/app/db)",
            ]
            .into(),
            "{r:#?}"
        );
    }
}
