//! Observations → a declaration (TOML text), every entry with a comment that
//! says what in the run needed it.
//!
//! How paths become a view: what the default view already gives (`system =
//! true`: /usr, /bin, /lib*, /etc read-only and executable; a private /tmp; a
//! minimal /dev; the service's own /proc) is left out; under /tmp only files
//! the run read but did not create need the host's. A file that was read
//! puts its directory in `read_only`; a file that was written, created or
//! removed puts its directory in `read_write`; a program executed outside the
//! system directories puts its directory in `executable`. Paths that did not
//! exist when mining (probes that failed) are dropped unless the run created
//! them. Directories already covered by a listed parent are folded into it.

use crate::observe::{Access, Observations};
use capexec_decl::grants::temporary_suffix;
use capexec_decl::syscalls::{self, GROUPS};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

/// Given by the default view (`system = true`); reading or executing below
/// these needs no entry.
fn system_dirs() -> Vec<&'static str> {
    use capexec_decl::validate::{SYSTEM_EXECUTABLE, SYSTEM_READ_ONLY};
    SYSTEM_EXECUTABLE.iter().chain(SYSTEM_READ_ONLY).map(|d| d.trim_start_matches('-')).collect()
}
/// The files of /proc/net that tell the traffic and state of the network's
/// interfaces and its connections (not /proc/net/if_inet6, which Java and
/// others read to learn whether IPv6 is there at all). An ident server
/// (oidentd) looks up the host's connections in the connection tables:
/// in a namespace of its own it found none, and answered NO-USER.
const HOST_NET_STATE: &[&str] = &[
    "/proc/net/dev",
    "/proc/net/snmp",
    "/proc/net/snmp6",
    "/proc/net/netstat",
    "/proc/net/sockstat",
    "/proc/net/route",
    "/proc/net/arp",
    "/proc/net/wireless",
    "/proc/net/tcp",
    "/proc/net/tcp6",
    "/proc/net/udp",
    "/proc/net/udp6",
    "/proc/net/nf_conntrack",
];

/// The reason a unit's writable part of /proc stays (`Origin::proc_writable`).
const PROC_NOTE: &str = "\0the unit's part of /proc";

/// Marks what made a link on the way to a written entry visible (see
/// `through_links`), in place of the paths that needed it.
const LINK_NOTE: &str = "\0link to ";
/// The reason of the view's entry for the unit's working directory.
const WORKDIR_NOTE: &str = "\0working directory";

/// Where `path` leads on the host when a symlink on its way takes it
/// elsewhere: the real path (its existing part resolved, the rest as named)
/// and the links passed that the view must be told of, each as the run
/// named it (not those in the system directories, which every view shows).
/// `None` when no link is passed.
fn through_links(path: &str, system: &[&str]) -> Option<(String, Vec<String>)> {
    let (mut links, mut passed) = (Vec::new(), false);
    let mut at = std::path::PathBuf::from("/");
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let named = format!("/{}", parts[..=i].join("/"));
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                passed = true;
                if !under(&named, system) {
                    links.push(named);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if !passed {
        return None;
    }
    // The longest part that exists, resolved, and what follows it as named.
    let mut existing = std::path::PathBuf::from(path);
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?.to_path_buf();
    }
    let mut real = std::fs::canonicalize(&existing).ok()?;
    real.extend(rest.iter().rev());
    let real = real.display().to_string();
    (real != path && !under(&real, OWN_MOUNTS)).then_some((real, links))
}

/// Whether every view masks `p` (password hashes, kernel modules) unless
/// the declaration lists it.
fn masked(p: &str) -> bool {
    capexec_decl::validate::SYSTEM_INACCESSIBLE.iter().any(|m| crate::within(p, m.trim_start_matches('-')))
}

/// Given by their own mounts in every view. (/sys is not: a program that
/// reads it, glibc's CPU count for one, gets the directory it read.)
const OWN_MOUNTS: &[&str] = &["/proc", "/dev"];

fn under(p: &str, dirs: &[&str]) -> bool {
    dirs.iter().any(|d| crate::within(p, d))
}

/// A TOML basic string, quoted and escaped by the toml crate.
fn quote(s: &str) -> String {
    toml::Value::from(s).to_string()
}

/// Comments name at most this many example paths per entry.
const EXAMPLES: usize = 3;

fn examples(paths: &BTreeSet<String>) -> String {
    // A BTreeSet: already in order.
    let s: Vec<String> = paths.iter().take(EXAMPLES).map(|p| commented(p)).collect();
    let more = paths.len().saturating_sub(EXAMPLES);
    let extra = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{}{extra}", s.join(", "))
}

/// `s` as the text of a TOML comment: what the run named (its paths, its
/// arguments, the addresses it bound) is the program's to choose, and a
/// newline in it would end the comment and start declaration lines of the
/// program's making (`/srv/x\n[capabilities]\nkeep = [\"CAP_SYS_ADMIN\"]`).
/// Control characters are written escaped (`\n`); TOML allows none but tab
/// in a comment.
pub(crate) fn commented(s: &str) -> String {
    s.chars().map(|c| if c.is_control() && c != '\t' { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn parent(p: &str) -> String {
    Path::new(p).parent().map(|d| d.display().to_string()).unwrap_or_else(|| "/".into())
}

/// The entry that gives `p`: its directory, but `p` itself directly in `/`,
/// which cannot be mounted whole (prometheus-node-exporter statfs()es every
/// mount point, files bound at /.dockerenv among them: the run's view was
/// the host's, and `/` in read_only made a declaration that fails `check`).
fn entry_of(p: &str) -> String {
    match parent(p) {
        d if d == "/" => p.to_owned(),
        d => d,
    }
}

/// Directories directly in / that the run made and the host does not have
/// (`view` gives them no entry: nothing can be bound there).
fn made_in_root(obs: &Observations, exists: &impl Fn(&str) -> bool) -> BTreeSet<String> {
    obs.paths
        .iter()
        .filter(|(_, a)| a.contains(&Access::Create) || a.contains(&Access::Write))
        .filter_map(|(p, _)| Path::new(p).components().nth(1).map(|c| format!("/{}", c.as_os_str().to_string_lossy())))
        .filter(|top| !exists(top) && !under(top, OWN_MOUNTS) && top != "/tmp")
        .collect()
}

/// Keeps the shallowest directories: an entry inside another is folded into it.
fn fold(dirs: BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (d, why) in dirs {
        match out.iter_mut().find(|(k, _)| d == **k || d.strip_prefix(k.as_str()).is_some_and(|r| r.starts_with('/'))) {
            Some((_, w)) => w.extend(why),
            None => {
                out.insert(d, why);
            }
        }
    }
    out
}

/// Writable directories a file was renamed or linked between become their
/// common ancestor: each entry is a mount of its own, and a rename across
/// two fails with EXDEV (postfix's queue manager moving a message from
/// /var/spool/postfix/incoming to active stopped it). Not where the
/// ancestor is a directory every service shares, or the root.
fn one_mount_for_moves(mut rw: BTreeMap<String, BTreeSet<String>>, moves: &BTreeSet<(String, String)>) -> BTreeMap<String, BTreeSet<String>> {
    let key_of = |rw: &BTreeMap<String, BTreeSet<String>>, p: &str| rw.keys().find(|k| crate::within(p, k)).cloned();
    for (from, to) in moves {
        let (Some(a), Some(b)) = (key_of(&rw, from), key_of(&rw, to)) else { continue };
        if a == b {
            continue;
        }
        let common = Path::new(&a).ancestors().find(|d| Path::new(&b).starts_with(d)).map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
        if common.is_empty() || common == "/" || SHARED_DIRS.contains(&common.as_str()) {
            continue;
        }
        let inside: Vec<String> = rw.keys().filter(|k| crate::within(k, &common)).cloned().collect();
        let mut why = BTreeSet::new();
        for k in inside {
            why.extend(rw.remove(&k).unwrap_or_default());
        }
        rw.insert(common, why);
    }
    rw
}

/// The names a run asked the host's resolvers (`nameservers`) by DNS
/// queries, reverse lookups aside (the broker's stub answers A and AAAA
/// only). None for a run that is a DNS server itself (it bound port 53:
/// dnsmasq forwards whatever its clients ask to the resolvers of
/// /etc/resolv.conf) or one that watches the host's interfaces (it gets
/// the host's network, where the stub does not answer).
pub(crate) fn asked_of_resolvers(obs: &Observations, nameservers: &[std::net::IpAddr]) -> BTreeSet<String> {
    let binds = || obs.binds.iter().filter_map(|a| crate::compare::inet(a));
    let serves_dns = binds().any(|(_, sa)| sa.port() == 53);
    let watches_interfaces =
        obs.sockets.contains("netlink/raw") && binds().any(|(_, sa)| !sa.ip().is_loopback() && !sa.ip().is_unspecified() && !sa.ip().is_multicast());
    if serves_dns || watches_interfaces {
        return BTreeSet::new();
    }
    obs.dns_queries
        .iter()
        .filter(|(server, _)| crate::compare::inet(server).is_some_and(|(_, sa)| nameservers.contains(&capexec_decl::grants::canonical(sa.ip()))))
        .flat_map(|(_, names)| names.iter().filter(|n| !n.is_empty() && !n.ends_with(".arpa")).cloned())
        .collect()
}

/// How many writable directories side by side become their parent.
const SIBLINGS: usize = 4;

/// Many writable directories side by side become their parent: collectd's
/// csv plugin writes one per thing it measures (cpu-0, df-boot,
/// interface-eth0, ...), which are this host's disks and interfaces as
/// the run found them. Each was an entry of its own, and the start failed
/// on one the host no longer had ("does not exist on the host"); another
/// host, or an interface plugged in later, needs one the run never saw.
/// Only directories that held what the run wrote (not a file entry), and
/// not where the parent is a directory every service shares, /run, /tmp,
/// a top-level one or the root.
fn one_entry_for_siblings(mut rw: BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let dirs = rw.iter().filter(|(k, why)| why.iter().any(|w| w != *k)).map(|(k, _)| k.as_str());
    let groups = side_by_side(dirs);
    if groups.is_empty() {
        return rw;
    }
    for (dir, kids) in groups {
        let mut why = BTreeSet::new();
        for k in kids {
            why.extend(rw.remove(&k).unwrap_or_default());
        }
        rw.entry(dir).or_default().extend(why);
    }
    fold(rw)
}

/// Directories of `dirs` that lie side by side, at least [`SIBLINGS`] in
/// one parent: parent → them. Not where the parent is a directory every
/// service shares, /run, /tmp, a top-level one or the root.
fn side_by_side<'a>(dirs: impl Iterator<Item = &'a str>) -> BTreeMap<String, Vec<String>> {
    let mut by_parent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in dirs {
        let kids = by_parent.entry(parent(d)).or_default();
        if !kids.iter().any(|k| k == d) {
            kids.push(d.to_owned());
        }
    }
    by_parent
        .retain(|dir, kids| kids.len() >= SIBLINGS && !SHARED_DIRS.iter().chain(&["/run", "/tmp", "/var/tmp", "/"]).any(|d| d == dir) && parent(dir) != "/");
    by_parent
}

/// Where systemd's RuntimeDirectory= and the others live, longest first:
/// (base, declaration key, prefix of the name).
const MANAGED: &[(&str, &str, &str)] = &[
    ("/run/lock", "runtime_directory", "lock/"),
    ("/run", "runtime_directory", ""),
    ("/var/lib", "state_directory", ""),
    ("/var/log", "logs_directory", ""),
    ("/var/cache", "cache_directory", ""),
];

/// Directories the run created right under /run, /var/lib, /var/log or
/// /var/cache: what systemd's *Directory= would have made, and what capexec
/// makes as its managed directories (owned by the service, writable), instead
/// of a writable host /run. Key → names; `is_dir` says what is a directory now.
pub fn managed(obs: &Observations, is_dir: impl Fn(&str) -> bool) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (p, acc) in &obs.paths {
        if !acc.contains(&Access::Create) || !is_dir(p) {
            continue;
        }
        let c = crate::without_links(p);
        let hit = MANAGED.iter().find_map(|(base, key, prefix)| {
            let rest = c.strip_prefix(base)?.strip_prefix('/')?;
            (!rest.is_empty() && !rest.contains('/')).then(|| (*key, format!("{prefix}{rest}")))
        });
        if let Some((key, name)) = hit {
            out.entry(key).or_default().insert(name);
        }
    }
    out
}

/// The full paths of [`managed`] directories.
fn managed_paths(m: &BTreeMap<&'static str, BTreeSet<String>>) -> Vec<String> {
    let base = |key: &str| MANAGED.iter().find(|(_, k, p)| *k == key && p.is_empty()).map_or("/run", |(b, _, _)| *b);
    m.iter().flat_map(|(key, names)| names.iter().map(move |n| format!("{}/{n}", base(key)))).collect()
}

/// The view the observations need, as (read_only, read_write, executable,
/// read_write_exec) directory → the paths that needed it.
pub type View = [BTreeMap<String, BTreeSet<String>>; 5];

/// Directories whose files belong to many services, which a service is
/// given one file of rather than the whole (see `view`). Not /run: what a
/// service leaves there is gone after a reboot, and a file entry must
/// exist when the service starts (cron's /run/crond.reboot must not).
const SHARED_DIRS: &[&str] = &["/var/log", "/var/lib", "/var/cache", "/var/spool", "/var", "/etc"];

/// `private`: directories the service gets as its own empty tmpfs (the
/// unit's `tmpfs` entries); like the private /tmp, only files that were there
/// before the run need the host's. `declared`: the directories the unit has
/// capexec make (`runtime_directory` and the others), in the view already.
pub fn view(obs: &Observations, private: &[String], declared: &[String], exists: impl Fn(&str) -> bool) -> View {
    let system = system_dirs();
    let mut made = managed_paths(&managed(obs, |p| Path::new(p).is_dir()));
    made.extend(declared.iter().cloned());
    let (mut ro, mut rw, mut ex): (BTreeMap<String, BTreeSet<String>>, BTreeMap<_, _>, BTreeMap<_, _>) = Default::default();
    let mut vis: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Directories of files the run wrote and ran (or mapped executable).
    let mut ran_written: BTreeSet<String> = BTreeSet::new();
    // A Unix socket the service bound is a file it created: its directory
    // must be writable (a socket alone in /run/app, with nothing else
    // written there, was left out, and the bind refused under the unit).
    let mut paths = obs.paths.clone();
    for sock in obs.binds.iter().filter_map(|b| b.strip_prefix("unix:")).filter(|p| p.starts_with('/')) {
        paths.entry(sock.to_owned()).or_default().insert(Access::Create);
    }
    let mount_points = crate::learning_mount_points(obs);
    let in_root = made_in_root(obs, &exists);
    for (p, acc) in &paths {
        if under(p, OWN_MOUNTS) || p == "/" || mount_points.contains(p) {
            continue;
        }
        // In (or one of) the directories capexec makes for the service.
        let c = crate::without_links(p);
        if made.iter().any(|m| crate::within(&c, m)) {
            continue;
        }
        // A directory only looked at that holds other paths the run used
        // is in the view as their parent already: no entry of its own
        // (stat("/var") made all of /var readable before). Only paths that
        // get an entry count: squid's chdir into /var/spool/squid, whose
        // files it looked for were not there, lost the directory itself.
        let holds_others = || paths.iter().any(|(q, qa)| q != p && crate::within(q, p) && (exists(q) || qa.contains(&Access::Create)));
        // Unless the run opened it (listed it, or made it its working
        // directory) and it is a program's own, not one every service
        // shares, a top-level one or /sys: then it is the entry, not what
        // the run used in it. What is in it may be replaced by another
        // program (varnishd makes its _.vsm_child anew when its child
        // restarts): an entry of the replaced directory keeps showing the
        // old one, and varnishncsa lost varnishd's log.
        let listed = || {
            acc.contains(&Access::Read)
                && !SHARED_DIRS.iter().chain(&["/var/tmp"]).any(|d| d == p)
                && parent(p) != "/"
                && !under(p, &["/sys"])
                && !under(p, &system)
        };
        if acc.iter().all(|a| matches!(a, Access::Read | Access::Look)) && Path::new(p).is_dir() && holds_others() && !listed() {
            continue;
        }
        let changes = acc.iter().any(|a| matches!(a, Access::Write | Access::Create | Access::Remove));
        let created = acc.iter().any(|a| matches!(a, Access::Create));
        // The private /tmp is writable: only files that were there before need the host's.
        let own = private.iter().map(String::as_str).chain(["/tmp"]).find(|d| crate::within(p, d));
        if own.is_some_and(|d| changes || p == d) {
            continue;
        }
        // A remove of what is not there still needs its directory writable:
        // on a read-only mount unlink fails with EROFS before it looks, and
        // a program that expects ENOENT stops (postfix's cleanup removing a
        // stale bounce log of a new queue id). Not in a directory every
        // service shares, nor /run, which a stale pid file's removal would open up,
        // nor / (opendmarc unlinks a name read from memory it never set: one
        // byte string directly in /, which made the mined file fail `check`).
        // By its real directory: collectd removes a /var/run/collectd.pid it
        // never made, and /var/run is /run (all of it was made writable).
        let home = parent(&c);
        let removes_missing =
            acc.contains(&Access::Remove) && !SHARED_DIRS.contains(&home.as_str()) && !["/run", "/"].contains(&home.as_str()) && exists(&home);
        if !exists(p) && !created && !removes_missing {
            continue;
        }
        if changes {
            // By its real directory: /var/run/crond.pid is /run's, and
            // /var/run itself is a link that gives no access. A file of its
            // own directly in a directory every service shares
            // (/var/log/vsftpd.log) is that file, if the run left it there:
            // the directory would give the service every other service's
            // files (and capexec's own /var/log/capexec).
            let dir = parent(&c);
            // (A regular file: not a directory, nor a socket it binds anew at each start.)
            let meta = std::fs::symlink_metadata(&c);
            let regular = meta.as_ref().map_or(true, |m| m.is_file());
            let is_dir = meta.is_ok_and(|m| m.is_dir());
            let kept = SHARED_DIRS.contains(&dir.as_str()) && !acc.contains(&Access::Remove) && exists(&c);
            let own_file = kept && regular;
            // So is a directory it made there (snmpd's /var/agentx, which
            // made all of /var writable): the next start finds it made.
            let own_dir = kept && created && is_dir;
            // A directory changed but neither made nor removed (its owner,
            // mode or times: snmpd's chown of /var/lib/snmp, which made all
            // of /var/lib writable) needs itself writable, not its parent.
            let changed_dir = is_dir && !created && !acc.contains(&Access::Remove);
            let entry = if own_file || own_dir || changed_dir { c.clone() } else { entry_of(&c) };
            // Made directly in / (spamd's prefs under its helper's home
            // /nonexistent): not on the host, so nothing can give it; see
            // `made_in_root`.
            if in_root.iter().any(|top| crate::within(&entry, top)) {
                continue;
            }
            // Written through a link (tomcat's /var/lib/tomcat10/logs ->
            // ../../log/tomcat10): the view makes the link where the entry
            // names it, so the entry is where it leads, and the link itself
            // is shown. Listed as the link, the place it leads to was not in
            // the view, and tomcat could not make its logs.
            let (entry, links) = match through_links(&entry, &system) {
                Some((real, links)) => (real, links),
                None => (entry, Vec::new()),
            };
            for link in links {
                vis.entry(link).or_default().insert(format!("{LINK_NOTE}{entry}"));
            }
            if acc.contains(&Access::Exec) {
                ran_written.insert(entry.clone());
            }
            rw.entry(entry).or_insert_with(BTreeSet::new).insert(p.clone());
        } else if acc.contains(&Access::Exec) {
            if !under(p, &system) {
                ex.entry(entry_of(p)).or_insert_with(BTreeSet::new).insert(p.clone());
            }
        } else if masked(p) {
            // Masked in every view unless listed (/etc/shadow: sshd's and
            // cron's PAM account checks read it): the file itself. A mask is
            // there to be stat'ed: a look alone unmasks nothing.
            if acc.iter().all(|a| *a == Access::Look) && Path::new(p).exists() {
                continue;
            }
            ro.entry(p.clone()).or_insert_with(BTreeSet::new).insert(p.clone());
        } else if acc.iter().all(|a| *a == Access::Look) && !under(p, &system) {
            // Only looked at (stat, access, readlink): shown, not readable.
            vis.entry(c.clone()).or_default().insert(p.clone());
        } else if !under(p, &system) {
            // A directory that was listed or stat'ed is itself the entry.
            let dir = if Path::new(p).is_dir() { p.clone() } else { entry_of(p) };
            ro.entry(dir).or_insert_with(BTreeSet::new).insert(p.clone());
            // Read through a link (/sys/class/net/eth0/address is in
            // /sys/devices/.../net/eth0): the view makes the link, so the
            // place it leads to is an entry too (prometheus-node-exporter's
            // netclass collector found no interface without it).
            let real = std::fs::canonicalize(p).ok().map(|r| r.display().to_string()).filter(|r| r != p && !under(r, &system) && !under(r, OWN_MOUNTS));
            if let Some(real) = real {
                let dir = if Path::new(&real).is_dir() { real.clone() } else { entry_of(&real) };
                ro.entry(dir).or_insert_with(BTreeSet::new).insert(p.clone());
            }
        }
    }
    let within = |d: &str, k: &str| d == k || d.strip_prefix(k).is_some_and(|r| r.starts_with('/'));
    // A writable directory where the run ran code, its own (varnish's
    // compiled VCL, a test binary make built) or found there, must be
    // executable too: a read_write mount is noexec, and an executable one
    // inside it would not be writable.
    let ex = fold(ex);
    let rw = one_entry_for_siblings(one_mount_for_moves(fold(rw), &obs.moves));
    let (rwx, rw): (BTreeMap<_, _>, BTreeMap<_, _>) = rw.into_iter().partition(|(k, _)| ran_written.iter().chain(ex.keys()).any(|d| within(d, k)));
    let ex: BTreeMap<_, _> = ex.into_iter().filter(|(d, _)| !rwx.keys().any(|k| within(d, k))).collect();
    // Read access inside a writable or executable directory needs nothing more.
    let covered = |d: &str| rw.keys().chain(ex.keys()).chain(rwx.keys()).any(|k| within(d, k));
    let ro = fold(ro.into_iter().filter(|(d, _)| !covered(d)).collect());
    // A path only looked at, in none of those nor in another such path
    // (a directory shown shows what is in it).
    let shown: Vec<String> = vis.keys().cloned().collect();
    let vis = vis.into_iter().filter(|(d, _)| !covered(d) && !ro.keys().any(|k| within(d, k)) && !shown.iter().any(|k| k != d && within(d, k))).collect();
    [ro, rw, ex, rwx, vis]
}

/// The allowlist: a group wherever every one of its members was seen, single
/// syscalls otherwise; `@default` is always allowed and not repeated.
pub fn allowlist(obs: &Observations, exists: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
    let seen: BTreeSet<&str> = obs.syscalls.keys().map(String::as_str).collect();
    let default = syscalls::group("@default").map(syscalls::expand).unwrap_or_default();
    let mut left: BTreeSet<&str> = seen.iter().copied().filter(|s| !default.contains(s)).collect();
    let mut out = Vec::new();
    for g in GROUPS.iter().filter(|g| g.name != "@default" && g.name != "@system-service") {
        let mut members = syscalls::expand(g);
        members.subtract(&default);
        if !members.is_empty() && members.iter().all(|m| seen.contains(m)) {
            let calls: u64 = members.iter().map(|m| obs.syscalls.get(m).copied().unwrap_or(0)).sum();
            out.push((g.name.to_owned(), format!("every member used ({calls} calls)")));
            left.retain(|s| !members.contains(s));
        }
    }
    // Variants of an operation the run used: they do nothing the used one
    // cannot (the same read on an fd it already has, with another calling
    // convention), and which one a program picks depends on data sizes and
    // code paths a short run may not reach (Redis answers with writev only
    // when a reply spans several buffers).
    let mut variants: BTreeMap<&str, String> = BTreeMap::new();
    for family in VARIANTS {
        if let Some(used) = family.iter().find(|m| seen.contains(*m)) {
            for m in family.iter().filter(|m| !seen.contains(*m) && !default.contains(m)) {
                variants.insert(m, format!("variant of {used}, which the run used"));
            }
        }
    }
    // A process that starts and reaps children may signal them, and whether a
    // run shows it is timing: nginx's master tells its workers to stop over a
    // socketpair and calls kill() only when that write fails. The pid
    // namespace and Landlock's signal scope keep kill to the service's own
    // processes.
    if ["wait4", "waitid"].iter().any(|w| seen.contains(w)) && !seen.contains("kill") && !default.contains("kill") {
        variants.insert("kill", "the run reaped children it started (wait4), which a process may also signal".into());
    }
    // A process that starts processes reaps them when they end, which a run
    // may not show: sniproxy's binder process ends only at its stop, and its
    // wait4 was refused under the daemon. (glibc forks with clone, and starts
    // threads with clone3, which is no reason.)
    let forks = ["clone", "fork", "vfork"].iter().find(|c| seen.contains(*c));
    if let Some(forked) = forks.filter(|_| !["wait4", "waitid"].iter().any(|w| seen.contains(w))) {
        for w in ["wait4", "waitid"].into_iter().filter(|w| !default.contains(w)) {
            variants.insert(w, format!("the run started processes ({forked}), which a process reaps when they end"));
        }
    }
    // A process that changes its ids or capabilities may look at what it
    // has left (capget only reads them): smbd does, under the daemon, where
    // its learning run (with every capability) never needed to.
    let changes_ids = ["setuid", "setresuid", "setreuid", "setgid", "setresgid", "setgroups", "capset"].iter().find(|c| seen.contains(*c));
    if let Some(changed) = changes_ids.filter(|_| !seen.contains("capget") && !default.contains("capget")) {
        variants.insert("capget", format!("the run changed its ids ({changed}), after which a process may read what capabilities it kept"));
    }
    // A listener takes its connections with accept, which a run whose
    // clients came another way never shows: krb5kdc listens on TCP and UDP,
    // a workload's kinit spoke UDP, and its first TCP client, under the
    // mined file, was refused accept. It takes from the caller's own
    // listening sockets only.
    if seen.contains("listen") && !["accept", "accept4"].iter().any(|a| seen.contains(a)) {
        for a in ["accept", "accept4"].into_iter().filter(|a| !default.contains(a)) {
            variants.insert(a, "the run listened on a stream socket, whose connections a program takes with it".into());
        }
    }
    // A program with stream sockets may half-close one (shutdown) on paths a
    // run did not take: dnsdist does so on its TCP connections to a backend.
    // It acts on the caller's own sockets only.
    if obs.sockets.iter().any(|k| k.ends_with("/stream")) && !seen.contains("shutdown") && !default.contains("shutdown") {
        variants.insert("shutdown", "the run made stream sockets, which a program may half-close".into());
    }
    // The C library's malloc gives memory back with madvise(MADV_DONTNEED)
    // once a thread's arena shrinks past its threshold, and grows a large
    // block in place with mremap: whether a short run gets there is a matter
    // of sizes and timing (privoxy's second request, under the daemon, was
    // refused madvise). Both act on the caller's own memory only.
    if ["mmap", "brk"].iter().any(|m| seen.contains(m)) {
        for (m, why) in [("madvise", "malloc returns freed memory with it"), ("mremap", "realloc grows a large block with it")] {
            if !seen.contains(m) && !default.contains(m) {
                variants.insert(m, format!("the run allocated memory (mmap, brk): {why}, as sizes and timing decide"));
            }
        }
    }
    // Files the run made and left are there at the next start, which may
    // remove them before it makes them anew, or replace them: postgrey's
    // Berkeley DB removes the region files its first start made (refused
    // `unlink` under the mined declaration), mpd's PulseAudio client renames
    // a new link over the one it made (refused `rename`), etcd cuts its
    // write-ahead log back to its last whole record (refused `ftruncate`:
    // its first start made the log, preallocated). Landlock keeps all of
    // them to the writable paths, where the service may rewrite any file.
    let left_behind = obs.made.iter().find(|p| !under(p, &["/tmp", "/dev", "/proc", "/run/capexec"]) && exists(p));
    if let Some(p) = left_behind {
        for family in [&["unlink", "unlinkat"][..], &["rename", "renameat", "renameat2"][..], &["ftruncate", "truncate"][..]] {
            if family.iter().any(|u| seen.contains(u)) {
                continue;
            }
            for u in family.iter().filter(|u| !default.contains(u)) {
                variants.insert(u, format!("the run made {} and left it: a later start finds it there, and may remove, replace or truncate it", commented(p)));
            }
        }
    }
    // Files written in many directories side by side (collectd's csv
    // plugin, one per interface and disk it measures), which the view
    // gives as their parent (`one_entry_for_siblings`): the program makes
    // one for each new thing, and a run that found them all made missed
    // mkdir (refused under the daemon once an interface was new).
    let written = obs.paths.iter().filter(|(_, a)| a.iter().any(|a| matches!(a, Access::Write | Access::Create))).map(|(p, _)| p);
    let dirs: Vec<String> = written.map(|p| parent(p)).collect();
    if let Some((dir, kids)) = side_by_side(dirs.iter().map(String::as_str)).into_iter().next() {
        for m in ["mkdir", "mkdirat"].into_iter().filter(|m| !seen.contains(m) && !default.contains(m)) {
            variants.insert(m, format!("the run wrote in {} directories side by side in {}: a later start may make another", kids.len(), commented(&dir)));
        }
    }
    for s in left {
        let n = obs.syscalls[s];
        out.push((s.to_owned(), format!("{n} call{}", if n == 1 { "" } else { "s" })));
    }
    out.extend(variants.into_iter().map(|(k, v)| (k.to_owned(), v)));
    out
}

/// Syscalls that are one operation under several calling conventions.
const VARIANTS: &[&[&str]] = &[
    &["read", "readv", "pread64", "preadv", "preadv2"],
    &["write", "writev", "pwrite64", "pwritev", "pwritev2"],
    &["sendto", "sendmsg", "sendmmsg"],
    &["recvfrom", "recvmsg", "recvmmsg"],
    &["stat", "fstat", "lstat", "newfstatat", "statx"],
    &["epoll_wait", "epoll_pwait", "epoll_pwait2"],
    &["epoll_create", "epoll_create1"],
    // (Waiting for descriptors or a timeout: postfix waits with poll, and
    // sleeps with select on paths a short run may not reach.)
    &["poll", "ppoll", "select", "pselect6"],
    &["accept", "accept4"],
    &["dup", "dup2", "dup3"],
    &["pipe", "pipe2"],
    &["eventfd", "eventfd2"],
    &["open", "openat"],
    &["wait4", "waitid"],
    &["getdents", "getdents64"],
    &["fsync", "fdatasync"],
    &["nanosleep", "clock_nanosleep"],
    // (Paths given absolute or from a directory fd. postfix's
    // configure-instance.sh replaces its chroot's certificate directory with
    // mv, coreutils' renameat2, only when a copy is there from an earlier
    // start: a first run renames with rename() alone.)
    &["rename", "renameat", "renameat2"],
    &["link", "linkat"],
    &["symlink", "symlinkat"],
    &["mkdir", "mkdirat"],
    &["readlink", "readlinkat"],
    // (By path or by descriptor: dovecot's auth process, learned with a
    // login that called statfs, then called fstatfs under the daemon.)
    &["statfs", "fstatfs"],
    &["access", "faccessat", "faccessat2"],
    &["unlink", "unlinkat"],
    &["truncate", "ftruncate"],
    &["chmod", "fchmod", "fchmodat", "fchmodat2"],
    &["chown", "fchown", "fchownat", "lchown"],
    &["utime", "utimes", "futimesat", "utimensat"],
];

/// What the run is described as in the header.
pub struct Origin<'a> {
    pub argv: &'a [String],
    pub date: String,
    /// The unit's own tmpfs directories (see `view`).
    pub private: Vec<String>,
    /// The unit's writable host-wide parts of /proc (irqbalance's
    /// /proc/irq): kept where the run read in them, since it writes there on
    /// events (a rebalance) a short run may not meet.
    pub proc_writable: Vec<String>,
    /// The unit's own managed directories (see `view`).
    pub managed: Vec<String>,
    /// capexec runs as root (where a service may share the host's pid namespace).
    pub as_root: bool,
    /// The unit's `service.pid_file`, if it names one.
    pub pid_file: Option<String>,
    /// The run had every capability (a service declared as root, learned
    /// as root: as systemd would start it): what its calls point at is kept.
    pub had_capabilities: bool,
    /// The unit's `capabilities.bound`: the run had only these, and no
    /// other is kept (a call that needed one failed, as under systemd).
    pub bound: Option<Vec<String>>,
    /// The unit's `capabilities.keep` where the run had those and no others
    /// (a service declared as another user than root: pdns's
    /// `AmbientCapabilities=`); the mined file says which of them no call
    /// pointed at, and leaves the unit's `keep` as it is.
    pub kept: Vec<String>,
    /// The user a program without a unit ran as (`capexec learn --user`),
    /// which the mined file declares; a unit's own user stays in the unit.
    pub user: Option<String>,
    /// The unit gives the service sockets, or `socket()`, whatever the run
    /// did: preopened sockets, or `type = "notify"` (whose allowlist has
    /// `socket`, `connect` and `sendto` for its notify socket).
    pub unit_sockets: bool,
    /// The unit preopens a listening stream socket (socket activation): the
    /// service takes its connections with accept and never calls listen.
    pub stream_listeners: bool,
    /// The unit's `exec.working_directory`, which the view must hold.
    pub working_directory: Option<String>,
    /// The host's resolvers (the nameservers of its /etc/resolv.conf): the
    /// names a run asked them become `[broker.dns]` grants.
    pub nameservers: Vec<std::net::IpAddr>,
    /// Whom the run's reads were checked as on the host, where no
    /// capability overrode file permissions (`None`: one did, or the run
    /// had every capability).
    pub reader: Option<Reader>,
}

/// A user whose reads file permissions decide: its uid and all its gids.
#[derive(Debug, Clone)]
pub struct Reader {
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl Reader {
    /// Whether the file's mode lets this user read it (ACLs aside).
    fn may_read(&self, path: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = std::fs::metadata(path) else { return true };
        let bits = if m.uid() == self.uid {
            0o400
        } else if self.gids.contains(&m.gid()) {
            0o040
        } else {
            0o004
        };
        m.mode() & bits != 0
    }
}

/// The host's resolvers: the nameservers of its /etc/resolv.conf.
pub fn host_nameservers() -> Vec<std::net::IpAddr> {
    nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

/// The nameservers of a resolv.conf's text, as the C library reads them.
pub fn nameservers(resolv_conf: &str) -> Vec<std::net::IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        // (An IPv6 address may carry its interface: fe80::1%eth0.)
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse().ok()))
        .collect()
}

/// Syscalls that succeed only with a capability when they change something.
/// The learning run had none (it runs as the declared user with every
/// capability dropped), so each of these either failed or did not need it.
const CAPABILITY_CALLS: &[(&str, &str)] = &[
    ("setuid", "CAP_SETUID"),
    ("setreuid", "CAP_SETUID"),
    ("setresuid", "CAP_SETUID"),
    ("setfsuid", "CAP_SETUID"),
    ("setgid", "CAP_SETGID"),
    ("setregid", "CAP_SETGID"),
    ("setresgid", "CAP_SETGID"),
    ("setfsgid", "CAP_SETGID"),
    ("setgroups", "CAP_SETGID"),
    ("chown", "CAP_CHOWN"),
    ("fchown", "CAP_CHOWN"),
    ("lchown", "CAP_CHOWN"),
    ("fchownat", "CAP_CHOWN"),
    ("chroot", "CAP_SYS_CHROOT"),
    ("setrlimit", "CAP_SYS_RESOURCE"),
    ("mlockall", "CAP_IPC_LOCK"),
];

/// Why a run's bind below 1024 points at CAP_NET_BIND_SERVICE, which a
/// mined declaration never needs for it (see `declaration`).
const LOW_BIND: &str = "bind below port 1024 (not needed: the broker binds granted ports)";
/// The same under `net = "host"`, where the program binds its ports itself.
const LOW_BIND_HOST: &str = "bind below port 1024 (with the host's network it binds its ports itself)";

/// The capabilities the run's calls point at: capability → the calls (and
/// what the recorder saw a call use, at most three examples each).
pub fn capabilities(obs: &Observations) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (call, cap) in CAPABILITY_CALLS {
        if let Some(n) = obs.syscalls.get(*call) {
            out.entry(cap.to_string()).or_default().push(format!("{call} ({n})"));
        }
    }
    for (cap, why) in &obs.capabilities {
        let list = out.entry(cap.clone()).or_default();
        list.extend(why.iter().take(3).cloned());
        if why.len() > 3 {
            list.push(format!("{} more", why.len() - 3));
        }
    }
    // DAC_OVERRIDE overrides the search and read checks too.
    if out.contains_key("CAP_DAC_OVERRIDE") {
        out.remove("CAP_DAC_READ_SEARCH");
    }
    if obs.binds.iter().filter_map(|a| a.rsplit(':').next()?.parse::<u16>().ok()).any(|p| p > 0 && p < 1024) {
        out.entry("CAP_NET_BIND_SERVICE".into()).or_default().push(LOW_BIND.into());
    }
    if obs.sockets.iter().any(|s| s.ends_with("/raw") && !s.starts_with("netlink") && !s.starts_with("unix")) {
        out.entry("CAP_NET_RAW".into()).or_default().push("raw socket".into());
    }
    // A VPN's interface: TUNSETIFF on /dev/net/tun makes it, and setting its
    // address and routes (netlink) needs the same (OpenVPN).
    if obs.paths.contains_key("/dev/net/tun") && obs.syscalls.contains_key("ioctl") {
        out.entry("CAP_NET_ADMIN".into()).or_default().push("a TUN interface made on /dev/net/tun (ioctl TUNSETIFF), its address set".into());
    }
    out
}

/// The ports a port picked at random may be (see [`bind_grant`]).
const ANY_HIGH_PORT: &str = ":1024-65535";

/// Why a bind became [`ANY_HIGH_PORT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Picked {
    /// A datagram socket's source port for one query.
    SourcePort,
    /// A listener for one session.
    SessionPort,
}

/// A bind as its grant, and why it became a range if it did. A port above
/// 1023 that the next run picks anew is granted as every such port:
/// - a UDP socket bound on every address by a run that also `sent`
///   (connected or sent to an address): a source port picked at random for
///   a query (unbound binds a new one for each upstream query, as DNS source
///   port randomization asks); the caller passes `sent` false for one bound
///   before the workload started, a listener (in.tftpd's);
/// - a TCP socket bound in `session` (once the run served connections, see
///   `Observations::session_binds`): a listener for one session (an FTP
///   server's passive data port, random in vsftpd unless configured).
///
/// Anything else as it was bound.
fn bind_grant(bind: &str, sent: bool, session: bool) -> (String, Option<Picked>) {
    let high = |rest: &str| rest.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok_and(|p| p >= 1024)).map(|(addr, _)| addr.to_owned());
    if let Some(addr) = bind.strip_prefix("udp:").and_then(high).filter(|a| sent && matches!(a.as_str(), "0.0.0.0" | "[::]")) {
        return (format!("udp:{addr}{ANY_HIGH_PORT}"), Some(Picked::SourcePort));
    }
    if let Some(addr) = bind.strip_prefix("tcp:").and_then(high).filter(|_| session) {
        return (format!("tcp:{addr}{ANY_HIGH_PORT}"), Some(Picked::SessionPort));
    }
    (bind.to_owned(), None)
}

/// How many addresses on one port make a run a client of whichever server
/// it is told of (see [`connect_grants`]).
const MANY_PEERS: usize = 3;

/// The root name servers' addresses (IANA's root hints, with b's before
/// its 2023 renumbering): a run that asked one on port 53 resolves from the
/// root down, so it asks whichever servers the delegations name, over UDP
/// and, for a truncated answer, TCP, even where it met fewer than
/// `MANY_PEERS` of them (kresd primes its cache from two).
const ROOT_SERVERS: &[&str] = &[
    "198.41.0.4",
    "2001:503:ba3e::2:30",
    "170.247.170.2",
    "2801:1b8:10::b",
    "199.9.14.201",
    "2001:500:200::b",
    "192.33.4.12",
    "2001:500:2::c",
    "199.7.91.13",
    "2001:500:2d::d",
    "192.203.230.10",
    "2001:500:a8::e",
    "192.5.5.241",
    "2001:500:2f::f",
    "192.112.36.4",
    "2001:500:12::d0d",
    "198.97.190.53",
    "2001:500:1::53",
    "192.36.148.17",
    "2001:7fe::53",
    "192.58.128.30",
    "2001:503:c27::2:30",
    "193.0.14.129",
    "2001:7fd::1",
    "199.7.83.42",
    "2001:500:9f::42",
    "202.12.27.33",
    "2001:dc3::35",
];

/// In the ports [`connect_grants`] opens: port 53, for a root server asked.
const ROOT_OPENED: &str = "port 53, from the root";

/// The connect grants for what the run connected or sent to, and the ports
/// granted on every address. Where the run reached `MANY_PEERS` or more
/// addresses other than loopback on one protocol and port, it asked
/// whichever servers it learnt of (a recursive resolver follows the
/// delegations of the answers it gets: root, top-level and zone servers),
/// and the next run meets others: every address of the families seen, on
/// that port. A datagram server (`serves`: it bound a UDP listener before
/// the workload started) that connected to a port its clients' kernel picks
/// (in this host's ephemeral range: the workload ran here) answered a client
/// from a socket of its own, as in.tftpd does: every high port of that
/// address, named in `replies`. Anything else as it was reached.
fn connect_grants(connects: &[&String], serves: bool, ephemeral: (u16, u16)) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    // proto:port → the addresses reached there.
    let mut by_port: BTreeMap<(&str, &str), Vec<std::net::IpAddr>> = BTreeMap::new();
    for c in connects {
        let (Some((_, a)), Some((proto, rest))) = (crate::compare::inet(c), c.split_once(':')) else { continue };
        let port = rest.rsplit_once(':').map_or(rest, |(_, p)| p);
        by_port.entry((proto, port)).or_default().push(capexec_decl::grants::canonical(a.ip()));
    }
    let many: BTreeMap<(&str, &str), &Vec<std::net::IpAddr>> =
        by_port.iter().filter(|(_, ips)| ips.len() >= MANY_PEERS && ips.iter().all(|ip| !ip.is_loopback())).map(|(k, v)| (*k, v)).collect();
    let mut grants = BTreeSet::new();
    let mut opened = BTreeSet::new();
    let mut replies = BTreeSet::new();
    // Port 53 everywhere, on both protocols, for a run that asked a root
    // name server, in the families it reached servers in.
    let dns: Vec<std::net::IpAddr> = by_port.iter().filter(|((_, port), _)| *port == "53").flat_map(|(_, ips)| ips.iter().copied()).collect();
    let from_root = dns.iter().any(|ip| ROOT_SERVERS.contains(&ip.to_string().as_str()));
    if from_root {
        for proto in ["udp", "tcp"] {
            if dns.iter().any(|ip| ip.is_ipv4()) {
                grants.insert(format!("{proto}:0.0.0.0/0:53"));
            }
            if dns.iter().any(|ip| ip.is_ipv6()) {
                grants.insert(format!("{proto}:[::]/0:53"));
            }
        }
        opened.insert(ROOT_OPENED.to_owned());
    }
    let reply = |c: &str| {
        crate::compare::inet(c).filter(|(p, a)| *p == capexec_decl::grants::Proto::Udp && (ephemeral.0..=ephemeral.1).contains(&a.port()))?;
        Some(format!("{}{ANY_HIGH_PORT}", c.rsplit_once(':')?.0))
    };
    for c in connects {
        let key = c.split_once(':').and_then(|(proto, rest)| Some((proto, rest.rsplit_once(':')?.1)));
        if from_root && key.is_some_and(|(_, port)| port == "53") && crate::compare::inet(c).is_some() {
            continue;
        }
        match key.and_then(|k| many.get(&k).map(|ips| (k, ips))) {
            Some(((proto, port), ips)) => {
                if ips.iter().any(|ip| ip.is_ipv4()) {
                    grants.insert(format!("{proto}:0.0.0.0/0:{port}"));
                }
                if ips.iter().any(|ip| ip.is_ipv6()) {
                    grants.insert(format!("{proto}:[::]/0:{port}"));
                }
                opened.insert(format!("{proto} port {port} ({} addresses)", ips.len()));
            }
            None => match reply(c).filter(|_| serves) {
                Some(g) => {
                    replies.insert((*c).clone());
                    grants.insert(g);
                }
                None => {
                    grants.insert((*c).clone());
                }
            },
        }
    }
    (grants, opened, replies)
}

/// This host's ephemeral port range (net.ipv4.ip_local_port_range), where
/// its kernel picks a client socket's port; Linux's default without it.
fn ephemeral_ports() -> (u16, u16) {
    let read = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut ports = read.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
    match (ports.next(), ports.next()) {
        (Some(first), Some(last)) if first <= last => (first, last),
        _ => (32768, 60999),
    }
}

/// How many internet addresses (neither loopback nor private nor link-local)
/// `grants` name one by one, and on how many ports, where that is at least
/// `MANY_PEERS` of each: a run that met them this scattered was likely a
/// client of whatever servers it was told of on any port (Tor's relays
/// listen where their operators chose), which learning cannot widen to
/// safely by itself: the mined file says so.
fn scattered_peers(grants: &BTreeSet<String>) -> Option<(usize, usize)> {
    let public = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => !(a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified()),
        std::net::IpAddr::V6(a) => !(a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xfe00) == 0xfc00 || (a.segments()[0] & 0xffc0) == 0xfe80),
    };
    let reached: Vec<std::net::SocketAddr> =
        grants.iter().filter(|g| !g.contains('/')).filter_map(|g| crate::compare::inet(g).map(|(_, a)| a)).filter(|a| public(a.ip())).collect();
    let addresses: BTreeSet<std::net::IpAddr> = reached.iter().map(|a| a.ip()).collect();
    let ports: BTreeSet<u16> = reached.iter().map(|a| a.port()).collect();
    (addresses.len() >= MANY_PEERS && ports.len() >= MANY_PEERS).then_some((addresses.len(), ports.len()))
}

/// The TCP ports of the loopback `binds` granted to the program that the
/// commands run around it connected to (`Observations::command_connects`).
/// The TCP ports of bind and connect grants, for Landlock's rules under
/// `net = "host"`; `None` when a grant's range is wider than Landlock's
/// rules are made for (one per port), such as Tor's connects to every port.
fn host_tcp_ports<'a>(binds: impl Iterator<Item = &'a String>, connects: impl Iterator<Item = &'a String>) -> Option<(BTreeSet<u16>, BTreeSet<u16>)> {
    use capexec_decl::grants::{NetGrant, Proto};
    let ports = |grants: &mut dyn Iterator<Item = &'a String>| -> Option<BTreeSet<u16>> {
        let mut out = BTreeSet::new();
        for g in grants.filter_map(|a| NetGrant::parse(a).ok()).filter(|g| g.proto != Some(Proto::Udp)) {
            let (lo, hi) = g.ports;
            if u32::from(hi) - u32::from(lo) >= capexec_decl::validate::MAX_LANDLOCK_PORTS {
                return None;
            }
            out.extend(lo..=hi);
        }
        Some(out)
    };
    let (mut b, mut c) = (binds, connects);
    Some((ports(&mut b)?, ports(&mut c)?))
}

fn control_channels(obs: &Observations, binds: &BTreeSet<&String>) -> BTreeSet<u16> {
    use capexec_decl::grants::Proto;
    let tcp_loopback = |a: &str| crate::compare::inet(a).filter(|(p, sa)| *p == Proto::Tcp && sa.port() != 0).map(|(_, sa)| sa);
    let reached: BTreeSet<u16> = obs.command_connects.iter().filter_map(|a| tcp_loopback(a)).filter(|sa| sa.ip().is_loopback()).map(|sa| sa.port()).collect();
    binds
        .iter()
        .filter_map(|a| tcp_loopback(a))
        .filter(|sa| (sa.ip().is_loopback() || sa.ip().is_unspecified()) && reached.contains(&sa.port()))
        .map(|sa| sa.port())
        .collect()
}

/// The declaration, as TOML text with comments.
pub fn declaration(obs: &Observations, origin: &Origin, exists: impl Fn(&str) -> bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Mined by `capexec learn` on {} from a run of:", origin.date);
    let _ = writeln!(o, "#   {}", commented(&origin.argv.join(" ")));
    o.push_str(
        "# Each entry says what in the run needed it. Code paths the run did not reach are not\n\
         # here: review the file, and run `capexec learn --check` with another workload.\n\n",
    );
    o.push_str("[exec]\nargv = [");
    o.push_str(&origin.argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", "));
    o.push_str("]\n");
    if let Some(u) = &origin.user {
        let _ = writeln!(o, "user = {} # the run's (--user)", quote(u));
    }

    // A pid file written by a root run: the unit's, else the one the run
    // wrote (by its real path: /var/run/crond.pid is /run/crond.pid).
    let written_pid_file = obs
        .paths
        .iter()
        .find(|(p, acc)| p.ends_with(".pid") && !under(p, &["/tmp"]) && acc.iter().any(|a| matches!(a, Access::Create | Access::Write)))
        .map(|(p, _)| crate::without_links(p));
    let pid_file = origin.pid_file.clone().or(written_pid_file).filter(|_| origin.as_root);
    // One directly in /run: capexec makes that file alone writable
    // (FsSpec::pid_file), since /run is not the service's to write (it holds
    // capexec's own /run/capexec). One in a directory of the service's own
    // (/run/mysqld, where its socket is too) leaves that directory writable.
    // A Unix socket it binds directly in /run (unbound's /run/unbound.ctl):
    // the broker binds it (`unix:` bind grant), for the same reason; by the
    // path as the program named it, which the broker's grant must match.
    // One bound under a temporary name and renamed or linked into place
    // (haproxy's master binds P.PID.tmp, supervisord P.PID) is granted by
    // the name it ends at: the grant covers its temporary names
    // (BrokerSpec::unix_name), which are then no reason to write /run.
    fn final_name<'a>(obs: &'a Observations, b: &'a str) -> &'a str {
        let to = obs.moves.iter().find(|(from, to)| from == b && b.strip_prefix(to.as_str()).is_some_and(|s| temporary_suffix(s.as_bytes())));
        to.map_or(b, |(_, to)| to.as_str())
    }
    let run_sockets: BTreeSet<&str> = if origin.as_root {
        obs.binds
            .iter()
            .filter_map(|b| b.strip_prefix("unix:"))
            .filter(|p| ["/run", "/var/run"].contains(&parent(p).as_str()))
            .map(|b| final_name(obs, b))
            .collect()
    } else {
        BTreeSet::new()
    };
    let temporary_names: Vec<String> = obs
        .paths
        .keys()
        .chain(obs.moves.iter().flat_map(|(from, to)| [from, to]))
        .filter(|p| run_sockets.iter().any(|s| p.strip_prefix(s).is_some_and(|x| temporary_suffix(x.as_bytes()))))
        .map(|p| crate::without_links(p))
        .collect();
    // Other files it made directly in /run (rpcbind's lock file): capexec
    // makes them as it makes a pid file (FsSpec::own_files). Not one it
    // renamed into place (haproxy's socket, bound under another name), nor
    // a directory (a runtime directory, below), nor one it looked for
    // first: then whether it is there says something, and one capexec made
    // would always be (cron's /run/crond.reboot, there once @reboot jobs ran).
    let moved: BTreeSet<&String> = obs.moves.iter().flat_map(|(from, to)| [from, to]).collect();
    let own_files: BTreeSet<String> = match origin.as_root {
        false => BTreeSet::new(),
        true => obs
            .paths
            .iter()
            .filter(|(p, acc)| acc.contains(&Access::Create) && !acc.iter().any(|a| matches!(a, Access::Look | Access::Read)) && !moved.contains(p))
            .map(|(p, _)| crate::without_links(p))
            .filter(|p| parent(p) == "/run" && Some(p) != pid_file.as_ref() && !run_sockets.contains(p.as_str()) && !Path::new(p).is_dir())
            .filter(|p| !obs.paths.keys().any(|q| under(&crate::without_links(q), &[p.as_str()]) && crate::without_links(q) != *p))
            .collect(),
    };
    let made: Vec<String> = origin
        .managed
        .iter()
        .cloned()
        .chain(pid_file.clone().filter(|p| parent(p) == "/run"))
        .chain(run_sockets.iter().map(|s| crate::without_links(s)))
        .chain(temporary_names)
        .chain(own_files.iter().cloned())
        .collect();
    let [mut ro, mut rw, ex, rwx, vis] = view(obs, &origin.private, &made, &exists);
    // A masked file its user could not read anyway stays masked: the read
    // failed on the host too (perl's getpwnam looks in /etc/shadow as
    // postgres in pg_backupcluster's dump), and unmasking it gives nothing
    // but a view of the password hashes' file.
    if let Some(r) = &origin.reader {
        ro.retain(|k, _| !masked(k) || r.may_read(k));
    }
    // The unit's working directory must be in the view (init changes into
    // it before the exec, and fails the start where it is not): a run that
    // never named a path in it (kresd's /var/lib/knot-resolver, the unit's
    // WorkingDirectory=) gave it no entry.
    if let Some(w) = origin.working_directory.as_deref().filter(|w| *w != "/" && exists(w)) {
        let private = origin.private.iter().map(String::as_str).chain(["/tmp"]);
        let covered = [&ro, &rw, &ex, &rwx].iter().any(|m| m.keys().any(|k| crate::within(w, k)))
            || under(w, &system_dirs())
            || made.iter().chain(&origin.managed).any(|m| crate::within(w, m))
            || private.into_iter().any(|d| crate::within(w, d));
        if !covered {
            ro.entry(w.to_owned()).or_default().insert(WORKDIR_NOTE.to_owned());
        }
    }
    // Where the run makes /run writable anyway (haproxy binds a temporary
    // name and renames it into place), a grant of the one socket is moot.
    let run_sockets = if rw.contains_key("/run") { BTreeSet::new() } else { run_sockets };
    let section = |o: &mut String, key: &str, what: &str, dirs: &BTreeMap<String, BTreeSet<String>>| {
        if dirs.is_empty() {
            return;
        }
        let _ = writeln!(o, "{key} = [");
        for (d, why) in dirs {
            match why.iter().find_map(|w| w.strip_prefix(LINK_NOTE)) {
                Some(to) => _ = writeln!(o, "    {}, # a link the run wrote through, to {}", quote(d), commented(to)),
                None if why.contains(WORKDIR_NOTE) => _ = writeln!(o, "    {}, # the working directory (exec.working_directory)", quote(d)),
                None if why.contains(PROC_NOTE) => {
                    _ = writeln!(o, "    {}, # the unit's, read during the run: written on events a short run may not meet", quote(d))
                }
                None => _ = writeln!(o, "    {}, # {what}: {}", quote(d), examples(why)),
            }
        }
        o.push_str("]\n");
    };
    // A host-wide part of /proc it wrote (irqbalance's /proc/irq/N/smp_affinity):
    // the full /proc has those read-only but where an entry says otherwise.
    // The part (/proc/irq), or in /proc/sys the directory of the key.
    for (p, acc) in &obs.paths {
        if crate::host_proc(p) && acc.contains(&Access::Write) && exists(p) {
            let part: String = if p.starts_with("/proc/sys/") { parent(p) } else { p.split('/').take(3).collect::<Vec<_>>().join("/") };
            rw.entry(part).or_default().insert(p.clone());
        } else if let Some(part) = origin.proc_writable.iter().find(|d| crate::within(p, d)) {
            rw.entry(part.clone()).or_default().insert(PROC_NOTE.to_owned());
        }
    }
    o.push_str("\n[filesystem]\n");
    section(&mut o, "read_only", "read", &ro);
    section(&mut o, "read_write", "written, created or removed", &rw);
    section(&mut o, "executable", "executed", &ex);
    section(&mut o, "read_write_exec", "written, and code run from it", &rwx);
    section(&mut o, "visible", "only looked at (stat, access), not read", &vis);
    // prometheus-node-exporter's collectors read /proc/stat, /proc/meminfo,
    // /proc/loadavg: under the default pid-only /proc every one failed.
    let (optional, host_proc): (BTreeSet<String>, BTreeSet<String>) =
        obs.paths.keys().filter(|p| crate::host_proc(p) && exists(p)).cloned().partition(|p| crate::optional_proc(p, obs));
    if !optional.is_empty() {
        let _ = writeln!(o, "# Read during the run, not in a pid-only /proc, and done without there (the program falls back): {}", examples(&optional));
    }
    if !host_proc.is_empty() {
        let _ = writeln!(o, "# Read during the run, and not in a pid-only /proc (the default): {}", examples(&host_proc));
        o.push_str("proc = \"full\"\n");
    }
    // nagios-nrpe-server's check_procs counted 4 processes of 75: a service
    // sees only its own unless it asks for the host's.
    let lists_processes = origin.as_root && lists_processes(obs);
    if lists_processes {
        let _ = writeln!(
            o,
            "# The run listed /proc, the processes there: here it sees every process of the host (not their\n\
             # memory, environment or fds), where it would see only its own. Remove this{} if it\n\
             # looks for its own processes only.\nhost_processes = true",
            if pid_file.is_none() { " and `pid = false` below" } else { "" }
        );
    }
    // OpenVPN's /dev/net/tun: a device of capexec's short list the run opened.
    let devices: Vec<&str> = capexec_decl::validate::DEVICES.iter().copied().filter(|d| obs.paths.get(*d).is_some_and(|a| !a.is_empty())).collect();
    if !devices.is_empty() {
        let _ = writeln!(o, "devices = [{}] # opened during the run", devices.iter().map(|d| quote(d)).collect::<Vec<_>>().join(", "));
    }
    let in_root = made_in_root(obs, &exists);
    if !in_root.is_empty() {
        let _ = writeln!(
            o,
            "# Made directly in / during the run, and not on the host, so no entry can give it: {}. Under\n\
             # this declaration the program cannot make it (spamd's per-user prefs under a home that does\n\
             # not exist); if it needs it, make it on the host and list it in read_write.",
            examples(&in_root)
        );
    }
    let mount_points = crate::learning_mount_points(obs);
    if !mount_points.is_empty() {
        let _ = writeln!(
            o,
            "# Only stat'ed after the run read its mount table: {}. These are mount points of the learning run's\n\
             # view (it binds each entry of /); under this declaration the service finds its own view's mounts\n\
             # instead. Add any it must see to read_only.",
            examples(&mount_points)
        );
    }
    for (key, names) in managed(obs, |p| Path::new(p).is_dir()) {
        let _ = writeln!(
            o,
            "{key} = [{}] # created during the run; capexec makes it, owned by the service",
            names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ")
        );
    }
    if !own_files.is_empty() && !rw.contains_key("/run") {
        let _ = writeln!(
            o,
            "# Created during the run directly in /run, which is not the service's to write: capexec makes\n\
             # each file alone writable (empty, owned by the service) and removes it at the stop.\nown_files = [{}]",
            own_files.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ")
        );
    }

    // The run's own loopback sockets are the service's own network namespace's.
    let inet = |a: &&String| (a.starts_with("tcp:") || a.starts_with("udp:")) && !obs.own_loopback.contains(*a);
    let asked = asked_of_resolvers(obs, &origin.nameservers);
    // Its lookups become those names, not the resolver's port 53, which
    // would answer it every name (a channel out, whatever the grants), and
    // name this host's resolver only.
    let of_resolver = |a: &&String| {
        !asked.is_empty()
            && crate::compare::inet(a).is_some_and(|(_, sa)| sa.port() == 53 && origin.nameservers.contains(&capexec_decl::grants::canonical(sa.ip())))
    };
    // A DNS server the run asked over UDP is asked over TCP at the same
    // address for an answer too long for a datagram (dnsdist forwards a
    // client's TCP query to its backend over TCP), which a short run rarely
    // meets: the mined dnsdist refused every TCP query.
    let dns_tcp: Vec<String> = obs
        .dns_queries
        .keys()
        .filter(|s| obs.connects.contains(*s) && !of_resolver(s))
        .filter_map(|s| s.strip_prefix("udp:").map(|a| format!("tcp:{a}")))
        .filter(|t| !obs.connects.contains(t))
        .collect();
    // A datagram socket bound to the port of one of the run's TCP listeners
    // is the service's own port (a DNS server's 53; iperf3 binds its UDP
    // test socket to 5201 once a client asks for one, then connects it to
    // the client's port): a listener, however the run sent, and a server
    // whose replies go to its clients' ports.
    let tcp_bound: BTreeSet<u16> = obs
        .binds
        .iter()
        .filter_map(|b| crate::compare::inet(b))
        .filter(|(p, a)| *p == capexec_decl::grants::Proto::Tcp && a.port() != 0)
        .map(|(_, a)| a.port())
        .collect();
    let service_port = |b: &String| crate::compare::inet(b).is_some_and(|(p, a)| p == capexec_decl::grants::Proto::Udp && tcp_bound.contains(&a.port()));
    // Where its ping sockets sent echo requests (`icmp:ADDRESS`); and
    // iputils' ping first connects a UDP socket to port 1025 of its target,
    // sending nothing, to learn its source address: a probe, no grant.
    let pinged: Vec<&str> = obs.connects.iter().filter_map(|a| a.strip_prefix("icmp:")).collect();
    let ping_probe = |a: &String| {
        crate::compare::inet(a).is_some_and(|(p, sa)| {
            p == capexec_decl::grants::Proto::Udp && sa.port() == 1025 && pinged.contains(&capexec_decl::grants::AddrRange::exact(sa.ip()).to_string().as_str())
        })
    };
    let (probes, connects): (Vec<&String>, Vec<&String>) =
        obs.connects.iter().filter(inet).filter(|a| !of_resolver(a)).chain(&dns_tcp).partition(|a| crate::compare::source_probe(a) || ping_probe(a));
    let granted: Vec<(String, Option<Picked>)> = obs
        .binds
        .iter()
        .filter(inet)
        .map(|a| bind_grant(a, !connects.is_empty() && !obs.start_datagram_binds.contains(a) && !service_port(a), obs.session_binds.contains(a)))
        .collect();
    let picked = |why: Picked| granted.iter().any(|(_, p)| *p == Some(why));
    let unix_grants: Vec<String> = run_sockets.iter().map(|p| format!("unix:{p}")).collect();
    let binds: BTreeSet<&String> = granted.iter().map(|(a, _)| a).chain(&unix_grants).collect();
    let serves_datagrams = !obs.start_datagram_binds.is_empty() || obs.binds.iter().any(service_port);
    let connect_grants = connect_grants(&connects, serves_datagrams, ephemeral_ports());
    let control = control_channels(obs, &binds);
    // vnstat counts the host's traffic from /proc/net/dev: in a network
    // namespace of its own that file shows its loopback alone, and it
    // counts nothing (prometheus-node-exporter's network metrics alike).
    let host_net: Vec<&String> = obs
        .paths
        .iter()
        .filter(|(p, acc)| (HOST_NET_STATE.contains(&p.as_str()) || p.starts_with("/sys/class/net/")) && acc.contains(&Access::Read) && exists(p))
        .map(|(p, _)| p)
        .collect();
    let shown_host_net = {
        let shown: Vec<String> = host_net.iter().take(3).map(|p| commented(p)).collect();
        format!("{}{}", shown.join(", "), if host_net.len() > 3 { format!(" and {} more", host_net.len() - 3) } else { String::new() })
    };
    // One that made no socket at all (vnstat) gets the host's network for
    // its state alone: its allowlist has no socket(), and no socket of the
    // host's reaches it, so it can send and receive nothing there. Not where
    // the unit adds sockets or socket() (a notify socket's allowlist, a
    // preopened one, which the guard does not hold under "host"), nor with
    // io_uring, whose requests make sockets out of seccomp's sight.
    let io_uring = obs.syscalls.keys().any(|c| c.starts_with("io_uring"));
    let state_only = !host_net.is_empty() && obs.sockets.is_empty() && obs.binds.is_empty() && obs.connects.is_empty() && !origin.unit_sockets && !io_uring;
    // One that made sockets, but no IP socket (collectd logs to syslog over
    // a Unix socket and lists interfaces over netlink), gets the host's
    // network with the network guard and no grants (`guard = true`): its
    // IP sockets, if it ever makes one, reach no address.
    let ip = |a: &String| a.starts_with("tcp:") || a.starts_with("udp:");
    // A root run that kept CAP_NET_ADMIN and spoke netlink changes the
    // network it is in (bird's kernel protocol writes routes): in a network
    // namespace of its own, that is a namespace nothing else uses.
    let net_admin = origin.had_capabilities
        && origin.bound.as_ref().is_none_or(|b| b.iter().any(|c| c == "CAP_NET_ADMIN"))
        && capabilities(obs).contains_key("CAP_NET_ADMIN");
    let manages_net = net_admin && obs.sockets.iter().any(|k| k.starts_with("netlink"));
    let state_guarded = (!host_net.is_empty() || manages_net)
        && !state_only
        && !io_uring
        && obs.sockets.iter().all(|k| !k.starts_with("inet"))
        && !obs.binds.iter().chain(&obs.connects).any(ip)
        && obs.own_loopback.is_empty();
    // coturn lists the host's interfaces (getifaddrs, over a netlink socket)
    // and binds their addresses: in its own namespace it finds loopback
    // only, and refuses to start ("Cannot configure any meaningful IP
    // listener address"), though the broker would bind what it names.
    let interfaces: BTreeSet<String> = granted
        .iter()
        .filter_map(|(a, _)| crate::compare::inet(a))
        .map(|(_, sa)| sa.ip())
        // A multicast group it joined (SSDP's 239.255.255.250) is no
        // interface's address.
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast())
        .map(|ip| ip.to_string())
        .collect();
    let listed_interfaces = obs.sockets.contains("netlink/raw") && !interfaces.is_empty();
    // Such a program gets the host's network, where the network guard holds
    // the same grants on every socket it makes, and Landlock the ports of
    // its TCP ones: unless a TCP grant's range is too wide for Landlock's
    // rules, or it talks over loopback ports the kernel picks (its own
    // namespace's, which no grant names), or its commands reach a control
    // port in its own namespace. Then the comment below says what to do.
    // Go's runtime asks, at its first listen or dial, whether the host has
    // IPv6 and IPv4-mapped addresses: it binds stream sockets to [::1]:0
    // and [::ffff:127.0.0.1]:0 and closes them (prometheus-blackbox-exporter).
    // Its own network namespace gives it these; the host's, with port 0 in
    // landlock.bind_tcp (the guard passes a bind to a port the kernel picks
    // there, and the broker checks a listen): refused, Go decides the host
    // has no IPv6 and listens on IPv4 alone.
    // Not where the run connected over TCP to loopback: a listener of its
    // own on such a port (a helper's channel), whose port no grant names.
    let tcp_loopback = |a: &String| {
        crate::compare::inet(a).is_some_and(|(p, sa)| p == capexec_decl::grants::Proto::Tcp && capexec_decl::grants::canonical(sa.ip()).is_loopback())
    };
    let talks_to_itself = obs.connects.iter().any(tcp_loopback);
    let stack_probe = |a: &String| !talks_to_itself && obs.binds.contains(a) && tcp_loopback(a) && a.ends_with(":0");
    let stack_probes: Vec<&String> = obs.own_loopback.iter().filter(|a| stack_probe(a)).collect();
    let mut tcp_ports = host_tcp_ports(binds.iter().copied(), connect_grants.0.iter());
    // A monitoring agent (zabbix_agentd, prometheus-node-exporter) that
    // reads the host's interface counters and also listens or connects: in
    // a namespace of its own it reports its loopback's traffic and its own
    // namespace's listening ports, quietly wrong. With the host's network the
    // guard holds its IP sockets to the same grants (as root only: rootless
    // there is no guard, and it keeps its namespace with the comment below).
    // Only with grants: without any, nothing would attach the guard.
    let watches_host = origin.as_root && !host_net.is_empty() && !state_only && !state_guarded && (!binds.is_empty() || !connects.is_empty());
    // Ping sockets are made in the network they are to reach: the host's,
    // where the guard holds their echo requests to `[broker.net] ping` (as
    // root; rootless there is no guard, and the comment below says so).
    let pings = origin.as_root && !pinged.is_empty();
    // A program that adds a socket to an epoll set before it binds or
    // connects it (boost::asio: i2pd) would go on watching its own socket
    // after the broker's bind or connect put a host socket in its place,
    // and never hear of a connection, or of its connect's end: it binds and
    // connects for itself, in the host's network, where the guard holds the
    // same grants (as root).
    let polled: Vec<&String> = obs.polled.iter().filter(|a| inet(a)).collect();
    let polls = origin.as_root && !polled.is_empty();
    let host = (listed_interfaces || watches_host || pings || polls) && tcp_ports.is_some() && obs.own_loopback.iter().all(stack_probe) && control.is_empty();
    let stack_probes = if host { stack_probes } else { Vec::new() };
    if let Some((bind_tcp, _)) = tcp_ports.as_mut().filter(|_| !stack_probes.is_empty()) {
        bind_tcp.insert(0);
    }
    if !pinged.is_empty() && !host {
        let _ = writeln!(
            o,
            "# The run sent ICMP echo requests (ping) to {}: ping sockets reach the host's network only\n\
             # with net = \"host\" and a [broker.net] ping grant of each address, which the network guard holds\n\
             # (as root; rootless such a file is refused at the start){}.",
            pinged.join(", "),
            if origin.as_root { "; the run also used its own loopback or a control port, which the host's network would not give it" } else { "" }
        );
    }
    if !polled.is_empty() && !host {
        let _ = writeln!(
            o,
            "# It added sockets to an epoll set before binding or connecting them ({}): the broker puts a\n\
             # host socket in place of each, which that set does not watch, and the program never hears of a\n\
             # connection or of its connect's end. It needs net = \"host\", where it binds and connects for\n\
             # itself and the network guard holds the [broker.net] grants (as root; rootless such a file is\n\
             # refused at the start){}.",
            polled.iter().map(|a| commented(a)).collect::<Vec<_>>().join(", "),
            if origin.as_root { "; the run also used its own loopback or a control port, which the host's network would not give it" } else { "" }
        );
    }
    if manages_net && !state_guarded {
        let _ = writeln!(
            o,
            "# The run kept CAP_NET_ADMIN and spoke netlink: it changes the network it is in (routes,\n\
             # interfaces), which here is a namespace of its own that nothing else uses. A program that\n\
             # manages the host's network (a routing daemon) wants net = \"host\", with [broker.net] grants\n\
             # for its IP sockets."
        );
    } else if !host_net.is_empty() && !state_only && !state_guarded && !host {
        let _ = writeln!(
            o,
            "# The run read the state of this host's network ({shown_host_net}): here it reads its own namespace's,\n\
             # loopback only. A program that watches the host's interfaces (vnstat, an exporter) wants net = \"host\"."
        );
    }
    o.push_str("\n[namespaces]\n");
    if state_only {
        let _ = writeln!(
            o,
            "# The run read the state of this host's network and made no socket ({shown_host_net}):\n\
             # the host's network, for that state (its own namespace's shows loopback only). With no\n\
             # socket() in its allowlist it reaches nothing there; allowing socket() would give it the\n\
             # host's network whole."
        );
    } else if state_guarded && manages_net {
        let _ = writeln!(
            o,
            "# The run kept CAP_NET_ADMIN, spoke netlink and made no IP socket: it changes the network it\n\
             # is in (a routing daemon's routes), so the host's, where the network guard lets no IP socket\n\
             # of its reach any address ([broker.net] guard = true; as root: rootless such a file is\n\
             # refused at the start). In a namespace of its own it would change one nothing else uses."
        );
    } else if state_guarded {
        let _ = writeln!(
            o,
            "# The run read the state of this host's network and made no IP socket ({shown_host_net}):\n\
             # the host's network, for that state (its own namespace's shows loopback only), where the\n\
             # network guard lets no IP socket of its reach any address ([broker.net] guard = true; as\n\
             # root: rootless such a file is refused at the start)."
        );
    } else if host && polls && !pings && !listed_interfaces && !watches_host {
        let _ = writeln!(
            o,
            "# It added sockets to an epoll set before binding or connecting them ({}): a host socket the\n\
             # broker put in place of each would not be in that set. So the host's network, where it binds\n\
             # and connects by itself, and the network guard holds the [broker.net] grants below on every\n\
             # socket it makes (as root; rootless such a file is refused at the start).",
            polled.iter().map(|a| commented(a)).collect::<Vec<_>>().join(", ")
        );
    } else if host && pings && !listed_interfaces && !watches_host {
        let _ = writeln!(
            o,
            "# The run sent ICMP echo requests (ping): its ping sockets are the host network's, where it binds\n\
             # and connects by itself, and the network guard holds the [broker.net] grants below on every\n\
             # socket it makes, its echo requests to `ping` (as root; rootless such a file is refused at the start)."
        );
    } else if host && !listed_interfaces {
        let _ = writeln!(
            o,
            "# The run read the state of this host's network ({shown_host_net}) and made IP sockets:\n\
             # in a network namespace of its own it would read its loopback's alone. So the host's network,\n\
             # where it binds and connects by itself, and the network guard holds the [broker.net] grants\n\
             # below on every socket it makes (as root; rootless such a file is refused at the start)."
        );
    } else if host {
        let _ = writeln!(
            o,
            "# The run listed this host's interfaces and bound their addresses ({}): in a network\n\
             # namespace of its own it would see loopback only. So the host's network, where it binds\n\
             # and connects by itself, and the network guard holds the [broker.net] grants below on\n\
             # every socket it makes (as root; rootless such a file is refused at the start).",
            interfaces.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    } else {
        o.push_str("# The service's own network namespace; the broker binds and connects for it in the host's.\n");
    }
    if listed_interfaces && !host {
        // With the host's network nothing binds for it: a port below 1024
        // needs the capability the broker made moot (nmbd's 137 and 138).
        let low = obs.binds.iter().any(|b| b.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).is_some_and(|p| p > 0 && p < 1024));
        let _ = writeln!(
            o,
            "# The run listed this host's interfaces and bound their addresses ({}): here it sees\n\
             # loopback only, and a program that picks its addresses so may not start. Name them in\n\
             # its configuration (coturn: listening-ip), or set net = \"host\": the [broker.net] grants below\n\
             # then hold on every socket it makes (the network guard, as root; name the addresses of the\n\
             # host's interfaces it binds there, and the ports of its TCP grants in landlock.bind_tcp and\n\
             # connect_tcp){}.",
            interfaces.iter().cloned().collect::<Vec<_>>().join(", "),
            if low { ",\n# and keep CAP_NET_BIND_SERVICE for its ports below 1024, which it then binds itself" } else { "" }
        );
    }
    o.push_str(if host || state_only || state_guarded { "net = \"host\"\n" } else { "net = \"none\"\n" });
    // A pid file means what host tools read it as only with the host's pids.
    if let Some(p) = pid_file.as_ref() {
        let _ = writeln!(o, "# It writes a pid file ({}): in the host's pid namespace the file holds the pid host tools expect.\npid = false", commented(p));
    } else if lists_processes {
        o.push_str("# The host's processes show only in the host's pid namespace (filesystem.host_processes).\npid = false\n");
    }
    // Named unless the unit names it already.
    let names_pid_file = pid_file.clone().filter(|_| origin.pid_file.is_none());
    // One directly in /run that the run made with O_EXCL fails on the file
    // capexec would make for it (atd removes a file it finds and makes it
    // anew): the broker makes and removes that one file on the host instead.
    let exclusive_pid_file = pid_file.filter(|p| parent(p) == "/run" && obs.exclusive.contains(p));
    if !binds.is_empty() || !connects.is_empty() || state_guarded || (host && pings) {
        o.push_str("\n[broker.net]\n");
        if host && pings {
            let _ = writeln!(o, "ping = [{}] # sent echo requests to during the run", pinged.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", "));
        }
        if state_guarded {
            o.push_str("# It made no IP socket: the network guard lets none of them reach any address (see net above).\nguard = true\n");
        }
        if !binds.is_empty() {
            if picked(Picked::SourcePort) {
                let _ = writeln!(
                    o,
                    "# A datagram socket bound on every address to a high port by a run that also sent: a source port\n\
                     # picked at random for each query (a DNS resolver's), so every such port; narrow the range\n\
                     # if the program has a setting for it (unbound: outgoing-port-permit)."
                );
            }
            if !unix_grants.is_empty() {
                let _ = writeln!(o, "# A Unix socket directly in /run, which is not the service's to write: the broker binds it for the service.");
            }
            if picked(Picked::SessionPort) {
                let _ = writeln!(
                    o,
                    "# A stream socket bound to a high port once the run served connections: a listener for one\n\
                     # session on a port picked for it (an FTP server's passive data port), so every such port;\n\
                     # narrow the range to the program's setting (vsftpd: pasv_min_port, pasv_max_port)."
                );
            }
            let _ = writeln!(o, "bind = [{}] # bound during the run", binds.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", "));
            if !control.is_empty() {
                let ports = control.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
                let _ = writeln!(
                    o,
                    "# The commands run around the program (start_post, reload, stop) connected to the loopback\n\
                     # port(s) {ports} it listens on, a control channel (named's, for rndc). They have no broker and\n\
                     # run in the service's own network namespace, where the host's listener above is not: they\n\
                     # fail there. For them to reach it, move the port(s) from this bind to [landlock] bind_tcp and\n\
                     # connect_tcp: the program then listens in its own network, where only its own processes\n\
                     # reach it (not the host's tools)."
                );
            }
        }
        if !connects.is_empty() {
            let (grants, opened, replies) = &connect_grants;
            if !replies.is_empty() {
                let _ = writeln!(
                    o,
                    "# Answered a client from a socket of its own ({}), as a TFTP server does: the client's port\n\
                     # is one its kernel picks, so every high port of that address. Clients elsewhere need their\n\
                     # addresses (\"udp:192.0.2.0/24:1024-65535\"; \"udp:0.0.0.0/0:1024-65535\" for any).",
                    replies.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            if let Some((peers, ports)) = scattered_peers(grants) {
                let _ = writeln!(
                    o,
                    "# It reached {peers} addresses of the internet on {ports} ports: if it connects wherever its\n\
                     # peers tell it (Tor's relays, a proxy's or a mail server's destinations), the next run meets\n\
                     # others, which these grants refuse. Then grant every address (\"tcp:0.0.0.0/0:*\",\n\
                     # \"tcp:[::]/0:*\"), which is what the program asks for."
                );
            }
            // ngircd (and other IRC and mail servers) ask the ident service
            // of each client on port 113 of the client's own address: the run
            // had the workload's, and clients elsewhere are refused (said).
            if grants.iter().any(|g| g.starts_with("tcp:") && g.ends_with(":113")) && obs.syscalls.keys().any(|c| c.starts_with("accept")) {
                let _ = writeln!(
                    o,
                    "# It asked the ident service (port 113) of a client it served, at that client's address: clients\n\
                     # elsewhere need theirs (\"tcp:192.0.2.0/24:113\"; \"tcp:0.0.0.0/0:113\" for any), or turn the lookup off\n\
                     # (ngircd: Ident = no)."
                );
            }
            if opened.contains(ROOT_OPENED) {
                let _ = writeln!(
                    o,
                    "# It asked a root name server: a resolver that resolves from the root down asks whichever\n\
                     # servers the delegations name, over UDP and TCP, so port 53 on every address; narrow it to\n\
                     # fixed servers if the program only ever asks those (unbound: forward-zone)."
                );
            }
            if !dns_tcp.is_empty() {
                let _ = writeln!(
                    o,
                    "# Not connected to during the run: {}, DNS servers it asked over UDP, over TCP (a long\n\
                     # answer comes over TCP; dnsdist asks its backend so for a client's TCP query).",
                    dns_tcp.join(", ")
                );
            }
            let many: Vec<&str> = opened.iter().map(String::as_str).filter(|p| *p != ROOT_OPENED).collect();
            if !many.is_empty() {
                let _ = writeln!(
                    o,
                    "# Many servers reached on one port ({}): the run asked whichever servers it was told of\n\
                     # (a resolver follows the delegations in its answers), so every address on that port;\n\
                     # narrow it to fixed servers if the program only ever asks those (unbound: forward-zone).",
                    many.join(", ")
                );
            }
            let _ = writeln!(o, "connect = [{}] # connected to during the run", grants.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", "));
        }
    }
    if !asked.is_empty() {
        let servers: BTreeSet<String> = obs
            .dns_queries
            .keys()
            .filter_map(|s| crate::compare::inet(s))
            .map(|(_, sa)| sa.ip())
            .filter(|ip| origin.nameservers.contains(&capexec_decl::grants::canonical(*ip)))
            .map(|ip| ip.to_string())
            .collect();
        let _ = writeln!(
            o,
            "\n[broker.dns]\n# Names the run looked up through this host's resolver ({}): the broker answers these (A and\n\
             # AAAA, from the host's resolver) and refuses others; the resolver's port 53 would answer every name.\nnames = [{}]",
            servers.into_iter().collect::<Vec<_>>().join(", "),
            asked.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some((bind_tcp, connect_tcp)) = tcp_ports.as_ref().filter(|(b, c)| host && !(b.is_empty() && c.is_empty())) {
        let list = |ports: &BTreeSet<u16>| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            o,
            "\n[landlock]\n# With the host's network a TCP bind or connect needs its port here too, beside its grant.{}\nbind_tcp = [{}]\nconnect_tcp = [{}]",
            if stack_probes.is_empty() {
                String::new()
            } else {
                format!(
                    "\n# Port 0: stream sockets bound to loopback on a port the kernel picks ({}):\n\
                     # Go's runtime asks so whether the host has IPv6 (refused, it listens on IPv4 alone).",
                    stack_probes.iter().map(|a| commented(a)).collect::<Vec<_>>().join(", ")
                )
            },
            list(bind_tcp),
            list(connect_tcp)
        );
    }
    if !probes.is_empty() {
        let _ = writeln!(
            o,
            "# Connected to port 0, a datagram socket to no address, or to port 1025 of an address it pinged ({}):\n\
             # a socket connected only to learn which source address the kernel picks (getaddrinfo sorting its\n\
             # answers, ping), which works on without: no grant.",
            probes.iter().map(|a| commented(a)).collect::<Vec<_>>().join(", ")
        );
    }
    let (any, own): (Vec<&String>, Vec<&String>) =
        obs.own_loopback.iter().filter(|a| !(host && stack_probe(a))).partition(|a| crate::compare::inet(a).is_some_and(|(_, s)| s.ip().is_unspecified()));
    if !own.is_empty() {
        let _ = writeln!(
            o,
            "# Loopback sockets the run bound to ports the kernel picked, and talked to ({}): its own\n\
             # network namespace has a loopback of its own for them, so no grant.",
            own.iter().map(|a| commented(a)).collect::<Vec<_>>().join(", ")
        );
    }
    if !any.is_empty() {
        let _ = writeln!(
            o,
            "# Stream sockets the run bound on every address to a port the kernel picked ({}): they\n\
             # stay in the service's own network namespace, where no client of the host reaches them\n\
             # (varnish reads the kernel's TCP defaults from one). A port that clients must reach\n\
             # (a data port announced to them) needs a grant: \"tcp:0.0.0.0:1024-65535\".",
            any.iter().map(|a| commented(a)).collect::<Vec<_>>().join(", ")
        );
    }
    // Sockets in a directory the view above holds need nothing more (postfix's
    // private/ and public/ in its queue); the others are named once each.
    let listed = |p: &str| {
        let p = crate::without_links(p);
        [&ro, &rw, &ex, &rwx].iter().any(|m| m.keys().any(|d| Path::new(&p).starts_with(d))) || made.iter().any(|d| Path::new(&p).starts_with(d))
    };
    let unix: BTreeSet<&String> = obs
        .binds
        .iter()
        // A connect to a socket that is not there was a probe (glibc's for
        // nscd): it fails the same way in the view.
        .chain(obs.connects.iter().filter(|a| a.strip_prefix("unix:").is_some_and(|p| p.starts_with('@') || exists(p))))
        .filter(|a| a.strip_prefix("unix:").is_some_and(|p| !crate::capexecs_own(p) && !listed(p)) && !unix_grants.contains(a))
        .collect();
    for u in unix {
        let _ = writeln!(o, "# Unix socket used during the run: {} (put its directory in the view if it is outside it)", commented(u));
    }

    let mut caps = capabilities(obs);
    // What the unit's bound leaves out, the run did not have either.
    let outside: BTreeMap<String, Vec<String>> = match &origin.bound {
        Some(b) if origin.had_capabilities => {
            let (inside, outside) = std::mem::take(&mut caps).into_iter().partition(|(c, _)| b.contains(c));
            caps = inside;
            outside
        }
        _ => BTreeMap::new(),
    };
    // A mined declaration's binds all go to the broker (net = "none"), which
    // binds granted ports below 1024 with the capability of its own; kept
    // only if the run asked for it otherwise (a capset that keeps it).
    // Under net = "host" the program binds its ports itself, and needs it.
    if host {
        if let Some(why) = caps.get_mut("CAP_NET_BIND_SERVICE") {
            why.iter_mut().filter(|w| *w == LOW_BIND).for_each(|w| *w = LOW_BIND_HOST.to_owned());
        }
    }
    let kept: Vec<&String> =
        caps.iter().filter(|(c, why)| !(c.as_str() == "CAP_NET_BIND_SERVICE" && why.iter().all(|w| w == LOW_BIND))).map(|(c, _)| c).collect();
    let kept_caps: BTreeSet<&str> = kept.iter().map(|c| c.as_str()).collect();
    let kept = kept.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    if !caps.is_empty() && origin.had_capabilities {
        let had = if origin.bound.is_some() { "those of capabilities.bound" } else { "every capability" };
        let _ = write!(
            o,
            "\n# Calls that need a capability when they change something. The run had {had}\n# (a service declared as root, started as systemd would), so these are kept; drop one the\n# service does not need (a chown to its own user, say).\n"
        );
        for (cap, calls) in &caps {
            let _ = writeln!(o, "# {cap}: {}", commented(&calls.join(", ")));
        }
        if !kept.is_empty() {
            let _ = writeln!(o, "[capabilities]\nkeep = [{kept}]");
        }
    } else if !origin.kept.is_empty() {
        let _ = write!(
            o,
            "\n# Capabilities: the run had those of capabilities.keep ({}) and no other. Calls that need a\n# capability when they change something{}\n",
            origin.kept.join(", "),
            if caps.is_empty() { ": none." } else { ":" }
        );
        for (cap, calls) in &caps {
            let _ = writeln!(o, "# {cap}: {}", commented(&calls.join(", ")));
        }
        let pointless: Vec<&str> = origin.kept.iter().filter(|c| !kept_caps.contains(c.as_str())).map(String::as_str).collect();
        if !pointless.is_empty() {
            let _ = writeln!(
                o,
                "# Kept, and no call of the run pointed at it (a candidate for removal if the run was thorough;\n# some uses, a prctl that drops capabilities, do not show): {}",
                pointless.join(", ")
            );
        }
    } else if !caps.is_empty() {
        o.push_str("\n# Calls that need a capability when they change something. The run had none, so each\n# either failed or did not need it; keep one only if the service fails without it.\n");
        for (cap, calls) in &caps {
            let _ = writeln!(o, "# {cap}: {}", commented(&calls.join(", ")));
        }
        if !kept.is_empty() {
            let _ = writeln!(o, "# [capabilities]\n# keep = [{kept}]");
        }
    }
    if !outside.is_empty() {
        o.push_str("\n# Calls that would need a capability outside capabilities.bound: the run did not have it (nor\n# does the service under systemd), so each failed or did not need it; not kept.\n");
        for (cap, calls) in &outside {
            let _ = writeln!(o, "# {cap}: {}", commented(&calls.join(", ")));
        }
    }

    if let Some(p) = &exclusive_pid_file {
        let _ = writeln!(
            o,
            "\n# The run made its pid file with O_EXCL, which fails on a file made for it before the start (atd\n\
             # removes one it finds and makes it anew): the broker makes and removes that file on the host.\n\
             [[broker.fs]]\npath = {}\nrights = [\"read\", \"write\", \"create\", \"remove\"]",
            quote(p)
        );
    }
    if let Some(p) = names_pid_file {
        let made = match exclusive_pid_file.is_some() {
            true => "its broker makes that file (its [[broker.fs]] grant)",
            false => "capexec makes that file alone writable and\n# removes it at the stop",
        };
        let _ = writeln!(
            o,
            "\n[service]\n# Where the daemon writes its pid (the run wrote it): {made}; a forking daemon's also tells init whom to stand for.\npid_file = {}",
            quote(&p)
        );
    }
    let mut allow = allowlist(obs, &exists);
    // A service that keeps CAP_KILL and lists the processes signals the
    // host's (earlyoom ends the largest under memory pressure), which its
    // learning run, in a pid namespace of its own, could not see: it found
    // nothing to end, and the mined file refused its kill().
    let may_kill = kept_caps.contains("CAP_KILL") || origin.kept.iter().any(|c| c == "CAP_KILL");
    let default = syscalls::group("@default").map(syscalls::expand).unwrap_or_default();
    if may_kill && lists_processes && !default.contains("kill") && !allow.iter().any(|(n, _)| n == "kill") {
        allow.push((
            "kill".to_owned(),
            "CAP_KILL is kept and the run listed the processes: the host's, which it signals, were not in its learning view".to_owned(),
        ));
    }
    // A socket-activated service takes its connections from the listeners
    // capexec opens for it, which a workload may not have reached all of
    // (uuidd served nothing in a run whose client failed, and its mined
    // file refused accept); as for a run that listened (`allowlist`).
    let seen = |c: &str| obs.syscalls.contains_key(c) || default.contains(c) || allow.iter().any(|(n, _)| n == c);
    if origin.stream_listeners && !seen("accept") && !seen("accept4") {
        for a in ["accept", "accept4"] {
            allow.push((a.to_owned(), "the unit preopens a listening stream socket, whose connections a program takes with it".to_owned()));
        }
    }
    o.push_str("\n[seccomp]\nallow = [\n");
    for (name, why) in allow {
        let _ = writeln!(o, "    {}, # {why}", quote(&name));
    }
    o.push_str("]\n");
    if !obs.denied.is_empty() {
        let list: Vec<String> = obs.denied.iter().map(|(k, v)| format!("{k} ({v})")).collect();
        let _ = writeln!(
            o,
            "# Refused by capexec's argument rules whatever a declaration allows (new namespaces, device nodes,\n# packet sockets, TIOCSTI, ...): {}",
            list.join(", ")
        );
    }
    if !obs.unknown.is_empty() {
        let _ = writeln!(o, "# Syscall numbers this capexec does not know (not allowed): {:?}", obs.unknown);
    }
    o
}

/// Whether the run listed the processes in /proc (opened /proc itself to
/// read it: ps, pgrep, check_procs), not just its own (/proc/self/...).
fn lists_processes(obs: &Observations) -> bool {
    obs.paths.get("/proc").is_some_and(|a| a.contains(&Access::Read))
}

#[cfg(test)]
mod tests {
    /// Directories created right under /run (also through /var/run and
    /// /var/lock), /var/lib, /var/log and /var/cache are managed ones; deeper
    /// ones, files and elsewhere are not.
    #[test]
    fn created_directories_become_managed_ones() {
        let mut o = Observations::default();
        for p in ["/var/run/app", "/run/lock/app", "/var/lib/app", "/var/log/app/deeper", "/var/cache/c", "/srv/x", "/run/file.pid"] {
            o.paths.insert(p.into(), [Access::Create].into());
        }
        let m = managed(&o, |p| p != "/run/file.pid");
        let got: Vec<(&str, Vec<&str>)> = m.iter().map(|(k, v)| (*k, v.iter().map(String::as_str).collect())).collect();
        assert_eq!(got, [("cache_directory", vec!["c"]), ("runtime_directory", vec!["app", "lock/app"]), ("state_directory", vec!["app"])]);
        assert_eq!(managed_paths(&m), ["/var/cache/c", "/run/app", "/run/lock/app", "/var/lib/app"]);
    }

    use super::*;

    /// A run of `argv`, nothing private or managed, as root or not.
    fn origin(argv: &[String], as_root: bool) -> Origin<'_> {
        Origin {
            argv,
            date: "today".into(),
            private: vec![],
            managed: vec![],
            as_root,
            pid_file: None,
            had_capabilities: false,
            bound: None,
            kept: vec![],
            user: None,
            unit_sockets: false,
            stream_listeners: false,
            working_directory: None,
            nameservers: Vec::new(),
            proc_writable: Vec::new(),
            reader: None,
        }
    }

    fn obs(paths: &[(&str, &[Access])], calls: &[&str]) -> Observations {
        let mut o = Observations::default();
        for (p, a) in paths {
            o.paths.insert((*p).into(), a.iter().copied().collect());
        }
        for c in calls {
            o.syscalls.insert((*c).into(), 2);
        }
        o
    }

    /// A run that allocated memory may give it back and grow it with
    /// madvise and mremap under the daemon, where a short run did not.
    #[test]
    fn a_run_that_allocates_may_return_memory() {
        let names = |calls: &[&str]| allowlist(&obs(&[], calls), &|_| true).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let allocated = names(&["brk", "read"]);
        assert!(allocated.iter().any(|n| n == "madvise") && allocated.iter().any(|n| n == "mremap"), "{allocated:?}");
        let not = names(&["read"]);
        assert!(!not.iter().any(|n| n == "madvise" || n == "mremap"), "{not:?}");
    }

    /// A host-wide part of /proc the run wrote is writable in the mined
    /// view (the full /proc has it read-only otherwise).
    #[test]
    fn a_written_part_of_proc_is_an_entry() {
        let argv = ["/usr/sbin/irqbalance".to_owned()];
        let o = obs(
            &[
                ("/proc/irq/24/smp_affinity", &[Access::Read, Access::Write]),
                ("/proc/sys/net/ipv4/ip_forward", &[Access::Write]),
                ("/proc/stat", &[Access::Read]),
            ],
            &["openat", "write"],
        );
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let rw: Vec<&str> = v["filesystem"]["read_write"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(rw, ["/proc/irq", "/proc/sys/net/ipv4"], "{text}");
        assert_eq!(v["filesystem"]["proc"].as_str(), Some("full"), "{text}");
        // One the unit declares writable, which the run only read in: kept
        // (irqbalance writes when it rebalances).
        let o = obs(&[("/proc/irq/24/smp_affinity", &[Access::Read]), ("/proc/stat", &[Access::Read])], &["openat"]);
        let unit = Origin { proc_writable: vec!["/proc/irq".into(), "/proc/fs".into()], ..origin(&argv, true) };
        let text = declaration(&o, &unit, |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let rw: Vec<&str> = v["filesystem"]["read_write"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(rw, ["/proc/irq"], "{text}");
    }

    /// An ident lookup of a served client is granted for that client's
    /// address, and the comment says what clients elsewhere need.
    #[test]
    fn an_ident_lookup_of_a_client_is_said() {
        let argv = ["/usr/sbin/ngircd".to_owned()];
        let mut o = obs(&[], &["socket", "bind", "listen", "accept", "connect"]);
        o.sockets.insert("inet/stream".into());
        o.binds.insert("tcp:127.0.0.1:6667".into());
        o.connects.insert("tcp:127.0.0.1:113".into());
        let text = declaration(&o, &origin(&argv, true), |_| true);
        assert!(text.contains("# It asked the ident service (port 113)") && text.contains("\"tcp:127.0.0.1:113\""), "{text}");
        o.syscalls.remove("accept");
        assert!(!declaration(&o, &origin(&argv, true), |_| true).contains("ident service"));
    }

    /// A DNS server asked over UDP may be asked over TCP (a long answer);
    /// a program with stream sockets may shut one down.
    #[test]
    fn a_dns_server_asked_over_udp_is_granted_tcp_too() {
        let argv = ["/usr/bin/dnsdist".to_owned()];
        let mut o = obs(&[], &["socket", "connect", "sendmsg"]);
        o.sockets.extend(["inet/dgram".into(), "inet/stream".into()]);
        o.connects.extend(["udp:127.0.0.1:15300".into(), "udp:127.0.0.1:9999".into()]);
        o.dns_queries.entry("udp:127.0.0.1:15300".into()).or_default().insert("www.example.test".into());
        let text = declaration(&o, &origin(&argv, true), |_| true);
        assert!(text.contains("\"tcp:127.0.0.1:15300\"") && !text.contains("tcp:127.0.0.1:9999"), "{text}");
        assert!(text.contains("# Not connected to during the run: tcp:127.0.0.1:15300, DNS servers it asked over UDP"), "{text}");
        assert!(allowlist(&o, &|_| true).iter().any(|(n, _)| n == "shutdown"));
        o.sockets.remove("inet/stream");
        assert!(!allowlist(&o, &|_| true).iter().any(|(n, _)| n == "shutdown"));
    }

    /// Names asked of the host's resolver become `[broker.dns]` grants,
    /// and its port 53 no connect grant; not for a DNS server (it binds
    /// port 53 and forwards what it is asked), nor names asked of another
    /// server (a resolver asking a root server), nor reverse lookups.
    #[test]
    fn names_asked_of_the_hosts_resolver_are_granted_not_the_resolver() {
        assert_eq!(
            nameservers("# x\nnameserver 10.255.255.53\nsearch example\nnameserver fe80::1%eth0\n"),
            ["10.255.255.53".parse::<std::net::IpAddr>().unwrap(), "fe80::1".parse().unwrap()]
        );
        let argv = ["/usr/bin/app".to_owned()];
        let mut o = obs(&[("/etc/resolv.conf", &[Access::Read])], &["socket", "connect", "sendmmsg"]);
        o.sockets.insert("inet/dgram".into());
        o.connects.extend(["udp:10.0.0.53:53".into(), "udp:192.0.2.1:53".into(), "tcp:127.0.0.1:8080".into()]);
        o.dns_queries.entry("udp:10.0.0.53:53".into()).or_default().extend(["db.example.com".into(), "1.0.0.127.in-addr.arpa".into()]);
        o.dns_queries.entry("udp:192.0.2.1:53".into()).or_default().insert("root-asked.example".into());
        let from = |o: &Observations| declaration(o, &Origin { nameservers: vec!["10.0.0.53".parse().unwrap()], ..origin(&argv, true) }, |_| true);
        let text = from(&o);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["broker"]["dns"]["names"].as_array().unwrap().len(), 1, "{text}");
        assert_eq!(v["broker"]["dns"]["names"][0].as_str(), Some("db.example.com"), "{text}");
        assert!(!text.contains("udp:10.0.0.53:53") && text.contains("udp:192.0.2.1:53") && text.contains("tcp:127.0.0.1:8080"), "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // A DNS server forwards what its clients ask: the resolver it is.
        o.binds.insert("udp:127.0.0.1:53".into());
        let text = from(&o);
        assert!(!text.contains("[broker.dns]") && text.contains("udp:10.0.0.53:53"), "{text}");
    }

    /// Four directories side by side that the run wrote in (collectd's
    /// csv plugin: one per disk and interface) are one entry, their
    /// parent; three stay apart, and so do those in a shared directory.
    #[test]
    fn many_written_directories_side_by_side_are_their_parent() {
        let w: &[Access] = &[Access::Create, Access::Write];
        let o = obs(&[("/srv/cd/vm/cpu-0/a", w), ("/srv/cd/vm/cpu-1/a", w), ("/srv/cd/vm/df-boot/a", w), ("/srv/cd/vm/interface-eth0/a", w)], &[]);
        let [_, rw, _, _, _] = view(&o, &[], &[], |_| true);
        assert_eq!(rw.keys().collect::<Vec<_>>(), ["/srv/cd/vm"], "{rw:?}");
        assert_eq!(rw["/srv/cd/vm"].len(), 4);
        // The program makes one for each new thing: mkdir, which the run never needed.
        let allowed: Vec<String> = allowlist(&o, &|_| true).into_iter().map(|(n, _)| n).collect();
        assert!(allowed.iter().any(|n| n == "mkdir") && allowed.iter().any(|n| n == "mkdirat"), "{allowed:?}");
        let o = obs(&[("/srv/cd/vm/cpu-0/a", w), ("/srv/cd/vm/cpu-1/a", w), ("/srv/cd/vm/df-boot/a", w)], &[]);
        let [_, rw, _, _, _] = view(&o, &[], &[], |_| true);
        assert_eq!(rw.len(), 3, "{rw:?}");
        assert!(!allowlist(&o, &|_| true).iter().any(|(n, _)| n == "mkdir"));
        let o = obs(&[("/var/lib/a/x", w), ("/var/lib/b/x", w), ("/var/lib/c/x", w), ("/var/lib/d/x", w)], &[]);
        let [_, rw, _, _, _] = view(&o, &[], &[], |_| true);
        assert_eq!(rw.len(), 4, "{rw:?}");
    }

    #[test]
    fn paths_become_directories_outside_the_default_view() {
        let o = obs(
            &[
                ("/etc/hosts", &[Access::Read]),
                ("/srv/app/a.conf", &[Access::Read]),
                ("/srv/app/sub/b.conf", &[Access::Read]),
                ("/var/log/app/x.log", &[Access::Create]),
                ("/opt/tool/bin/helper", &[Access::Exec]),
                ("/usr/bin/cat", &[Access::Exec]),
                ("/proc/self/status", &[Access::Read]),
                ("/srv/missing", &[Access::Read]),
                ("/var/run/app.pid", &[Access::Write]),
                ("/etc/shadow", &[Access::Read]),
                // squid's chdir to its coredump_dir, then a look for a file not there.
                ("/var/spool/squid", &[Access::Read]),
                ("/var/spool/squid/swap.state", &[Access::Read]),
            ],
            &[],
        );
        let [ro, rw, ex, _, _] = view(&o, &[], &[], |p| p != "/srv/missing" && p != "/var/spool/squid/swap.state");
        // A masked file the run read is listed itself; a write through the
        // /var/run link is /run's; a directory whose files the run looked for
        // in vain is there itself.
        assert_eq!(ro.keys().collect::<Vec<_>>(), ["/etc/shadow", "/srv/app", "/var/spool/squid"]);
        assert_eq!(rw.keys().collect::<Vec<_>>(), ["/run", "/var/log/app"]);
        assert_eq!(ex.keys().collect::<Vec<_>>(), ["/opt/tool/bin"]);
    }

    /// A masked file the service's user could not read by its permissions
    /// stays masked (pg_backupcluster's dump, as postgres, tries
    /// /etc/shadow through perl's getpwnam and fails on the host too); one
    /// its groups may read is unmasked.
    #[test]
    fn a_masked_file_its_user_cannot_read_stays_masked() {
        use std::os::unix::fs::MetadataExt;
        let o = obs(&[("/etc/shadow", &[Access::Read]), ("/srv/app/a.conf", &[Access::Read])], &["openat"]);
        let argv = vec!["/usr/bin/app".to_owned()];
        let shadow_gid = std::fs::metadata("/etc/shadow").unwrap().gid();
        let mined = |reader: Option<Reader>| declaration(&o, &Origin { reader, ..origin(&argv, true) }, |_| true);
        let text = mined(Some(Reader { uid: 65534, gids: vec![65534] }));
        assert!(!text.contains("\"/etc/shadow\"") && text.contains("\"/srv/app\""), "{text}");
        let text = mined(Some(Reader { uid: 65534, gids: vec![65534, shadow_gid] }));
        assert!(text.contains("\"/etc/shadow\", # read"), "{text}");
        assert!(mined(None).contains("\"/etc/shadow\", # read"));
    }

    /// `/` is no entry (it cannot be mounted whole): a file directly in it
    /// is its own, read, written or run.
    #[test]
    fn files_in_the_root_are_their_own_entries() {
        let o = obs(&[("/capexec-app.conf", &[Access::Read]), ("/capexec-app.log", &[Access::Write]), ("/capexec-app.bin", &[Access::Exec])], &[]);
        let [ro, rw, ex, _, _] = view(&o, &[], &[], |_| true);
        assert_eq!(ro.keys().collect::<Vec<_>>(), ["/capexec-app.conf"]);
        assert_eq!(rw.keys().collect::<Vec<_>>(), ["/capexec-app.log"]);
        assert_eq!(ex.keys().collect::<Vec<_>>(), ["/capexec-app.bin"]);
    }

    /// /proc files beyond the service's own processes, read during the run,
    /// make the /proc full (a pid-only one has none of them); its own
    /// processes' files do not.
    #[test]
    fn reads_of_host_proc_files_make_the_proc_full() {
        let own = obs(&[("/proc/self/status", &[Access::Read]), ("/proc/1/mounts", &[Access::Read]), ("/proc/thread-self/comm", &[Access::Read])], &[]);
        let text = declaration(&own, &origin(&["/usr/bin/app".into()], false), |_| true);
        assert!(!text.contains("proc = "), "{text}");
        let host = obs(&[("/proc/stat", &[Access::Read]), ("/proc/net/dev", &[Access::Read]), ("/proc/self/status", &[Access::Read])], &[]);
        let text = declaration(&host, &origin(&["/usr/bin/app".into()], false), |_| true);
        assert!(text.contains("pid-only /proc (the default): /proc/net/dev, /proc/stat\nproc = \"full\"\n"), "{text}");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["filesystem"]["proc"].as_str(), Some("full"));
        // What glibc does without (opendkim's initgroups) makes it no fuller.
        let glibc = obs(&[("/proc/sys/kernel/ngroups_max", &[Access::Read]), ("/proc/self/status", &[Access::Read])], &[]);
        let text = declaration(&glibc, &origin(&["/usr/bin/app".into()], false), |_| true);
        assert!(!text.contains("proc = ") && text.contains("done without there (the program falls back): /proc/sys/kernel/ngroups_max\n"), "{text}");
        // libcap-ng's last capability (knot), with its fallback's prctl in
        // the run; without prctl the fallback would be refused: a full /proc.
        let capng = obs(
            &[
                ("/proc/sys/kernel/cap_last_cap", &[Access::Read]),
                ("/proc/sys/net/core/somaxconn", &[Access::Read]),
                ("/proc/sys/net/ipv6/route/max_size", &[Access::Read]),
                ("/proc/filesystems", &[Access::Read]),
                ("/proc/sys/kernel/core_pattern", &[Access::Read]),
            ],
            &["prctl"],
        );
        let text = declaration(&capng, &origin(&["/usr/bin/app".into()], false), |_| true);
        let said = "done without there (the program falls back): /proc/filesystems, /proc/sys/kernel/cap_last_cap, /proc/sys/kernel/core_pattern and 2 more\n";
        assert!(!text.contains("proc = ") && text.contains(said), "{text}");
        let capng = obs(&[("/proc/sys/kernel/cap_last_cap", &[Access::Read])], &[]);
        let text = declaration(&capng, &origin(&["/usr/bin/app".into()], false), |_| true);
        assert!(text.contains("proc = \"full\""), "{text}");
    }

    /// Entries of / only stat'ed after the mount table was read are the
    /// learning view's mount points: no entry, a comment naming them. Read,
    /// or stat'ed with no mount table read, they are entries: a path only
    /// stat'ed is `visible` (itself, not readable), one read is `read_only`
    /// (its directory). A stat of /var/lib/app made all of /var/lib readable.
    #[test]
    fn mount_points_of_the_learning_view_are_no_entries() {
        let argv = ["/usr/bin/exporter".to_string()];
        let list = |text: &str, key: &str| -> Vec<String> {
            let v: toml::Value = toml::from_str(text).unwrap();
            v["filesystem"].get(key).and_then(|r| r.as_array()).map_or(vec![], |a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        };
        let ro = |text: &str| list(text, "read_only");
        let visible = |text: &str| list(text, "visible");
        let looked = [
            ("/home", &[Access::Look][..]),
            ("/srv", &[Access::Look]),
            ("/opt", &[Access::Read, Access::Look]),
            ("/var/lib/app", &[Access::Look]),
            ("/etc/shadow", &[Access::Look]),
        ];
        for table in ["/proc/self/mountinfo", "/proc/1/mounts", "/etc/mtab"] {
            let o = obs(&[&looked[..], &[(table, &[Access::Read][..])]].concat(), &[]);
            let text = declaration(&o, &origin(&argv, false), |_| true);
            assert_eq!((ro(&text), visible(&text)), (vec!["/opt".to_owned()], vec!["/var/lib/app".to_owned()]), "{table}:\n{text}");
            assert!(text.contains("# Only stat'ed after the run read its mount table: /home, /srv."), "{text}");
        }
        let o = obs(&looked, &[]);
        let text = declaration(&o, &origin(&argv, false), |_| true);
        assert_eq!((ro(&text), visible(&text)), (vec!["/opt".to_owned()], ["/home", "/srv", "/var/lib/app"].map(str::to_owned).to_vec()), "{text}");
        assert!(!text.contains("mount table"), "{text}");
    }

    /// A socket bound through /var/run in the unit's runtime directory
    /// (pdns-recursor's control socket) is in the view: no comment asks to
    /// put it there.
    #[test]
    fn sockets_through_var_run_in_a_runtime_directory_need_no_comment() {
        let mut o = obs(&[], &["bind"]);
        o.binds.insert("unix:/var/run/app/ctl".into());
        let argv = ["/usr/bin/app".to_string()];
        let text = declaration(&o, &Origin { managed: vec!["/run/app".into()], ..origin(&argv, true) }, |_| true);
        assert!(!text.contains("Unix socket used") && !text.contains("read_write"), "{text}");
    }

    /// A file read through a link outside the system directories: the view
    /// makes the link, and the directory it leads to is an entry too.
    #[test]
    fn reads_through_a_link_give_where_it_leads() {
        let d = std::env::temp_dir().join(format!("capexec-mine-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("devices/net/eth0")).unwrap();
        std::fs::create_dir_all(d.join("class/net")).unwrap();
        std::fs::write(d.join("devices/net/eth0/address"), "x").unwrap();
        std::os::unix::fs::symlink("../../devices/net/eth0", d.join("class/net/eth0")).unwrap();
        let via = d.join("class/net/eth0/address").display().to_string();
        let o = obs(&[(via.as_str(), &[Access::Read])], &[]);
        let [ro, _, _, _, _] = view(&o, &[], &[], |_| true);
        let _ = std::fs::remove_dir_all(&d);
        let want = [d.join("class/net/eth0").display().to_string(), d.join("devices/net/eth0").display().to_string()];
        assert_eq!(ro.keys().cloned().collect::<Vec<_>>(), want);
    }

    /// A run that listed the host's interfaces and bound their addresses
    /// gets the host's network, its grants kept for the network guard and
    /// its TCP ports for Landlock; where that cannot hold what it did, it is
    /// told that its own network namespace has loopback only.
    #[test]
    fn binds_to_listed_interfaces_get_the_hosts_network() {
        let mut o = obs(&[], &["socket", "bind"]);
        o.binds.extend(["udp:192.0.2.2:3478".to_owned(), "udp:127.0.0.1:3478".to_owned(), "tcp:[fd00::2]:3478".to_owned()]);
        o.binds.insert("udp:239.255.255.250:1900".to_owned());
        o.connects.insert("tcp:192.0.2.9:5432".to_owned());
        let text = declaration(&o, &origin(&["/usr/bin/turnserver".into()], false), |_| true);
        assert!(!text.contains("listed this host's interfaces") && text.contains("net = \"none\""), "no netlink socket, no note:\n{text}");
        o.sockets.insert("netlink/raw".into());
        let text = declaration(&o, &origin(&["/usr/bin/turnserver".into()], false), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert!(text.contains("bound their addresses (192.0.2.2, fd00::2)"), "{text}");
        assert_eq!(v["namespaces"]["net"].as_str(), Some("host"), "{text}");
        assert_eq!(v["broker"]["net"]["bind"].as_array().map(Vec::len), Some(4), "{text}");
        assert_eq!(v["landlock"]["bind_tcp"].as_array().unwrap(), &[toml::Value::Integer(3478)], "{text}");
        assert_eq!(v["landlock"]["connect_tcp"].as_array().unwrap(), &[toml::Value::Integer(5432)], "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.warnings.iter().all(|w| !w.contains("landlock")), "{:?}", spec.warnings);
        // nmbd's 137: with the host's network, it binds that port itself.
        o.binds.insert("udp:192.0.2.2:137".to_owned());
        let text = declaration(&o, &origin(&["/usr/sbin/nmbd".into()], false), |_| true);
        assert!(text.contains("CAP_NET_BIND_SERVICE: bind below port 1024 (with the host's network it binds its ports itself)"), "{text}");
        assert!(text.contains("keep = [\"CAP_NET_BIND_SERVICE\"]"), "{text}");
        // Loopback ports the kernel picked, which no grant names: its own
        // namespace, and the comment says what the host's network needs.
        o.own_loopback.insert("tcp:127.0.0.1:0".to_owned());
        let text = declaration(&o, &origin(&["/usr/sbin/nmbd".into()], false), |_| true);
        assert!(text.contains("net = \"none\"") && text.contains("keep CAP_NET_BIND_SERVICE for its ports below 1024, which it then binds itself"), "{text}");
        toml::from_str::<toml::Value>(&text).unwrap();
    }

    /// The unit's working directory stays in the view where the run named
    /// nothing in it (kresd's /var/lib/knot-resolver: init changes into it,
    /// and the start failed without it); not where an entry, a system
    /// directory or a directory capexec makes holds it already.
    #[test]
    fn the_units_working_directory_stays_in_the_view() {
        let o = obs(&[("/var/cache/knot-resolver/data.mdb", &[Access::Create, Access::Write])], &["openat"]);
        let argv = ["/usr/sbin/kresd".to_owned()];
        let unit = |w: &str| Origin { working_directory: Some(w.to_owned()), ..origin(&argv, true) };
        let text = declaration(&o, &unit("/var/lib/knot-resolver"), |_| true);
        assert!(text.contains("\"/var/lib/knot-resolver\", # the working directory (exec.working_directory)"), "{text}");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["filesystem"]["read_only"].as_array().map(Vec::len), Some(1), "{text}");
        for held in ["/var/cache/knot-resolver", "/usr/share", "/tmp", "/"] {
            let text = declaration(&o, &unit(held), |_| true);
            assert!(!text.contains("working directory"), "{held}:\n{text}");
        }
        let made = Origin { managed: vec!["/var/lib/knot-resolver".into()], ..unit("/var/lib/knot-resolver") };
        assert!(!declaration(&o, &made, |_| true).contains("working directory"));
        // Not there on the host: the start fails either way, and says so.
        assert!(!declaration(&o, &unit("/var/lib/knot-resolver"), |p| p != "/var/lib/knot-resolver").contains("working directory"));
    }

    /// A run that pinged (its ping sockets' echo requests, `icmp:ADDRESS`)
    /// gets the host's network with `[broker.net] ping` for those addresses,
    /// as root; ping's UDP probe of its target's port 1025 is no grant.
    /// Rootless, where no guard would hold them, it keeps its own network,
    /// and the comment says what pinging needs.
    #[test]
    fn a_run_that_pinged_gets_ping_grants() {
        let argv = ["/usr/bin/ping".to_owned()];
        let mut o = obs(&[], &["socket", "connect", "sendto", "recvmsg"]);
        o.sockets.insert("inet/dgram".into());
        o.connects.extend(["icmp:192.0.2.1".into(), "icmp:[2001:db8::1]".into(), "udp:192.0.2.1:1025".into()]);
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.namespaces.net == capexec_decl::spec::NetMode::Host && spec.seccomp.ping && spec.broker.connect.is_empty(), "{text}");
        let pinged: Vec<String> = spec.broker.ping.iter().map(ToString::to_string).collect();
        assert_eq!(pinged, ["192.0.2.1", "[2001:db8::1]"], "{text}");
        assert!(text.contains("to port 1025 of an address it pinged (udp:192.0.2.1:1025)"), "{text}");
        let text = declaration(&o, &origin(&argv, false), |_| true);
        assert!(text.contains("net = \"none\"") && text.contains("The run sent ICMP echo requests (ping) to 192.0.2.1, [2001:db8::1]"), "{text}");
        assert!(!text.contains("ping = ["), "{text}");
    }

    /// A run that bound sockets it had added to an epoll set first
    /// (boost::asio: i2pd) binds for itself, in the host's network with
    /// its grants held by the guard and its TCP ports in Landlock's rules:
    /// a host socket the broker put in place of one was not in that set, and
    /// i2pd's console never heard of a connection. Rootless it keeps its own
    /// network, with a comment that says why it will not answer.
    #[test]
    fn a_run_that_polled_its_sockets_before_binding_binds_for_itself() {
        let argv = ["/usr/sbin/i2pd".to_owned()];
        let mut o = obs(&[], &["socket", "epoll_ctl", "bind", "listen", "accept4"]);
        o.sockets.insert("inet/stream".into());
        o.binds.extend(["tcp:127.0.0.1:7070".into(), "tcp:127.0.0.1:4444".into()]);
        o.polled.extend(["tcp:127.0.0.1:7070".into(), "tcp:127.0.0.1:4444".into()]);
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.namespaces.net == capexec_decl::spec::NetMode::Host && spec.broker.bind.len() == 2, "{text}");
        assert_eq!(spec.landlock.bind_tcp, [4444, 7070].into(), "{text}");
        assert!(text.contains("It added sockets to an epoll set before binding or connecting them"), "{text}");
        let text = declaration(&o, &origin(&argv, false), |_| true);
        assert!(text.contains("net = \"none\"") && text.contains("It needs net = \"host\""), "{text}");
    }

    /// The same for a run that connected a socket it had added to an epoll
    /// set first (asio's clients): the broker's connect would put a host
    /// socket in its place, whose connect's end that set never hears of.
    #[test]
    fn a_run_that_polled_its_sockets_before_connecting_connects_for_itself() {
        let argv = ["/usr/bin/asio-client".to_owned()];
        let mut o = obs(&[], &["socket", "epoll_ctl", "connect", "epoll_wait"]);
        o.sockets.insert("inet/stream".into());
        o.connects.insert("tcp:192.0.2.10:443".into());
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.namespaces.net == capexec_decl::spec::NetMode::None, "not polled, the broker connects:\n{text}");
        o.polled.insert("tcp:192.0.2.10:443".into());
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.namespaces.net == capexec_decl::spec::NetMode::Host && spec.broker.connect.len() == 1, "{text}");
        assert_eq!(spec.landlock.connect_tcp, [443].into(), "{text}");
        assert!(text.contains("It added sockets to an epoll set before binding or connecting them (tcp:192.0.2.10:443)"), "{text}");
    }

    /// A Go program that pinged (prometheus-blackbox-exporter) also bound
    /// stream sockets to loopback port 0 and closed them: Go's runtime
    /// asking whether the host has IPv6. With the host's network these need
    /// port 0 in landlock.bind_tcp alone, no grant (refused, Go listens on
    /// IPv4 alone); before, they kept the run in its own network, where
    /// ping sockets reach nothing. Not where it also connected to loopback
    /// over TCP: a listener of its own there, on a port no grant names.
    #[test]
    fn a_go_program_that_pinged_gets_its_ipv6_probes() {
        let argv = ["/usr/bin/prometheus-blackbox-exporter".to_owned()];
        let mut o = obs(&[], &["socket", "bind", "listen", "sendto", "recvmsg"]);
        o.sockets.extend(["inet6/stream".into(), "inet/dgram".into(), "inet6/dgram".into()]);
        o.binds.extend(["tcp:[::1]:0".into(), "tcp:[::ffff:127.0.0.1]:0".into(), "tcp:[::]:9115".into()]);
        o.own_loopback.extend(["tcp:[::1]:0".into(), "tcp:[::ffff:127.0.0.1]:0".into()]);
        o.connects.extend(["icmp:192.0.2.1".into(), "icmp:[2001:db8::1]".into()]);
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.namespaces.net == capexec_decl::spec::NetMode::Host && spec.broker.ping.len() == 2, "{text}");
        let binds: Vec<String> = spec.broker.bind.iter().map(ToString::to_string).collect();
        assert_eq!(binds, ["tcp:[::]:9115"], "{text}");
        assert_eq!(spec.landlock.bind_tcp, [0, 9115].into(), "{text}");
        assert!(text.contains("Go's runtime asks so") && !text.contains("its own\n# network namespace has a loopback"), "{text}");
        o.connects.insert("tcp:127.0.0.1:40000".into());
        let text = declaration(&o, &origin(&argv, true), |_| true);
        assert!(text.contains("net = \"none\"") && text.contains("The run sent ICMP echo requests"), "{text}");
    }

    /// A run that read the host's network state and made no socket
    /// (vnstat's /proc/net/dev) gets the host's network, for that state,
    /// with no socket() to reach it by; one that made sockets but no IP
    /// socket, or whose unit gives it one, gets it with the network guard
    /// and no grants; one that made an IP socket keeps its own namespace
    /// and is told why.
    #[test]
    fn a_run_that_reads_the_hosts_network_state_and_makes_no_socket_gets_its_network() {
        let argv = ["/usr/sbin/vnstatd".to_owned()];
        let mut o = obs(&[("/proc/net/dev", &[Access::Read]), ("/sys/class/net/eth0/speed", &[Access::Read])], &["openat", "read", "pwrite64"]);
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["namespaces"]["net"].as_str(), Some("host"), "{text}");
        assert!(text.contains("and made no socket (/proc/net/dev, /sys/class/net/eth0/speed)"), "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(!spec.seccomp.allowed.contains("socket") && !spec.seccomp.allowed.contains("io_uring_setup"), "{text}");
        // The unit's notify socket, or a preopened one: socket() or a host
        // socket whatever the run did, so the guard holds them to no address.
        let guarded = |o: &Observations, origin: &Origin| {
            let text = declaration(o, origin, |_| true);
            let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert!(spec.namespaces.net == capexec_decl::spec::NetMode::Host && spec.broker.guard && !spec.broker.has_net_grants(), "{text}");
            assert!(text.contains("and made no IP socket (/proc/net/dev"), "{text}");
        };
        guarded(&o, &Origin { unit_sockets: true, ..origin(&argv, true) });
        // io_uring makes sockets out of seccomp's sight.
        o.syscalls.insert("io_uring_setup".into(), 1);
        let text = declaration(&o, &origin(&argv, true), |_| true);
        assert!(text.contains("net = \"none\""), "{text}");
        o.syscalls.remove("io_uring_setup");
        // Sockets, but none of IP (collectd's syslog and netlink ones).
        o.sockets.insert("unix/dgram".into());
        o.sockets.insert("netlink/raw".into());
        guarded(&o, &origin(&argv, true));
        // An IP socket (an exporter's listener): its own namespace, and why.
        o.sockets.insert("inet/stream".into());
        let text = declaration(&o, &origin(&argv, true), |_| true);
        assert!(text.contains("net = \"none\"") && text.contains("wants net = \"host\"") && !text.contains("guard"), "{text}");
        // No read of the host's network state: its own namespace, no comment.
        let o = obs(&[("/etc/vnstat.conf", &[Access::Read])], &["openat", "read"]);
        let text = declaration(&o, &origin(&argv, true), |_| true);
        assert!(text.contains("net = \"none\"") && !text.contains("state of this host's network"), "{text}");
    }

    #[test]
    fn whole_groups_are_named_and_default_members_left_out() {
        let timer = ["alarm", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime"];
        let mut calls: Vec<&str> = timer.to_vec();
        calls.extend(["timerfd_create", "timerfd_gettime", "timerfd_settime", "read", "brk"]);
        let names: Vec<String> = allowlist(&obs(&[], &calls), &|_| false).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"@timer".to_owned()), "{names:?}");
        assert!(names.contains(&"read".to_owned()) && !names.contains(&"brk".to_owned()) && !names.contains(&"alarm".to_owned()), "{names:?}");
    }

    #[test]
    fn files_the_run_made_and_left_may_be_removed_at_the_next_start() {
        let mut o = obs(&[], &["openat", "write"]);
        o.made.insert("/var/lib/postgrey/__db.001".into());
        let list = allowlist(&o, &|p| p == "/var/lib/postgrey/__db.001");
        let why = |n: &str| list.iter().find(|(k, _)| k == n).map(|(_, w)| w.clone());
        assert_eq!(
            why("unlink").as_deref(),
            Some("the run made /var/lib/postgrey/__db.001 and left it: a later start finds it there, and may remove, replace or truncate it")
        );
        assert!(why("unlinkat").is_some() && why("renameat2").is_some() && why("ftruncate").is_some() && why("truncate").is_some(), "{list:?}");
        // Gone after the run (removed at its stop), or in its own /tmp: nothing left to find.
        assert!(allowlist(&o, &|_| false).iter().all(|(k, _)| k != "unlink"));
        o.made = ["/tmp/x".to_owned()].into();
        assert!(allowlist(&o, &|_| true).iter().all(|(k, _)| k != "unlink"));
    }

    /// krb5kdc listened on TCP while its workload spoke UDP: the first TCP
    /// client under the mined file was refused accept.
    /// earlyoom keeps CAP_KILL (its unit's AmbientCapabilities=) and lists
    /// the processes to end the largest: its learning run saw its own pid
    /// namespace only, found nothing to end, and never called kill(), which
    /// its mined file then refused. Kept CAP_KILL and a listing give kill();
    /// neither alone does.
    #[test]
    fn a_process_lister_that_keeps_cap_kill_may_kill() {
        let mut o = obs(&[("/proc", &[Access::Read]), ("/proc/meminfo", &[Access::Read])], &["openat", "getdents64", "mlockall"]);
        o.syscalls.remove("kill");
        let unit = |kept: &[&str]| Origin { kept: kept.iter().map(|c| c.to_string()).collect(), ..origin(&[], true) };
        let allows_kill = |o: &Observations, origin: &Origin| declaration(o, origin, |_| true).contains("    \"kill\", # CAP_KILL is kept");
        assert!(allows_kill(&o, &unit(&["CAP_KILL", "CAP_IPC_LOCK"])));
        assert!(!allows_kill(&o, &unit(&["CAP_IPC_LOCK"])));
        assert!(!allows_kill(&o, &Origin { as_root: false, ..unit(&["CAP_KILL"]) }), "rootless: no host processes");
        o.paths.remove("/proc");
        assert!(!allows_kill(&o, &unit(&["CAP_KILL"])));
    }

    /// A socket-activated service never calls listen: a unit that preopens
    /// a listening stream socket gives accept whatever the run showed.
    #[test]
    fn a_socket_activated_service_may_accept() {
        let o = obs(&[], &["read", "write"]);
        let text = declaration(&o, &Origin { stream_listeners: true, ..origin(&[], true) }, |_| true);
        assert!(text.contains("    \"accept4\", # the unit preopens a listening stream socket"), "{text}");
        assert!(!declaration(&o, &origin(&[], true), |_| true).contains("\"accept"));
        let took = obs(&[], &["read", "accept4"]);
        let text = declaration(&took, &Origin { stream_listeners: true, ..origin(&[], true) }, |_| true);
        assert!(!text.contains("the unit preopens a listening"), "the run's own accept4 and its variant are enough:\n{text}");
    }

    #[test]
    fn a_listener_may_accept() {
        let list = allowlist(&obs(&[], &["socket", "bind", "listen"]), &|_| false);
        let why = |n: &str| list.iter().find(|(k, _)| k == n).map(|(_, w)| w.clone());
        assert_eq!(why("accept").as_deref(), Some("the run listened on a stream socket, whose connections a program takes with it"));
        assert!(why("accept4").is_some(), "{list:?}");
        assert!(allowlist(&obs(&[], &["socket", "bind"]), &|_| false).iter().all(|(k, _)| !k.starts_with("accept")));
    }

    #[test]
    fn variants_of_a_used_call_are_allowed_and_say_so() {
        let list = allowlist(&obs(&[], &["write", "accept4", "mount", "rename"]), &|_| false);
        let why = |n: &str| list.iter().find(|(k, _)| k == n).map(|(_, w)| w.clone());
        assert_eq!(why("writev").as_deref(), Some("variant of write, which the run used"));
        assert_eq!(why("renameat2").as_deref(), Some("variant of rename, which the run used"), "postfix's mv on a second start");
        assert_eq!(why("accept").as_deref(), Some("variant of accept4, which the run used"));
        let list = allowlist(&obs(&[], &["statfs", "unlinkat"]), &|_| false);
        let why2 = |n: &str| list.iter().find(|(k, _)| k == n).map(|(_, w)| w.clone());
        assert_eq!(why2("fstatfs").as_deref(), Some("variant of statfs, which the run used"), "dovecot's auth under the daemon");
        assert_eq!(why2("unlink").as_deref(), Some("variant of unlinkat, which the run used"));
        for name in VARIANTS.iter().flat_map(|f| f.iter()) {
            assert!(capexec_decl::syscalls::number(name).is_some(), "{name} is not a syscall of this architecture");
        }
        // Only the used call's family: nothing from elsewhere.
        assert!(why("readv").is_none() && why("umount2").is_none());
        assert!(why("kill").is_none(), "no children reaped, no signals");
        let list = allowlist(&obs(&[], &["wait4", "clone"]), &|_| false);
        assert!(list.iter().any(|(k, w)| k == "kill" && w.contains("reaped children")), "{list:?}");
        // A run that forked and never reaped (sniproxy's binder lives to
        // the stop) may reap; threads (clone3) are no reason.
        let list = allowlist(&obs(&[], &["clone"]), &|_| false);
        for w in ["wait4", "waitid"] {
            assert!(list.iter().any(|(k, why)| k == w && why.contains("started processes (clone)")), "{w}: {list:?}");
        }
        let list = allowlist(&obs(&[], &["clone3"]), &|_| false);
        assert!(!list.iter().any(|(k, _)| k == "wait4"), "{list:?}");
    }

    #[test]
    fn the_declaration_is_valid_toml_with_comments() {
        let mut o = obs(&[("/srv/app/a.conf", &[Access::Read])], &["read", "openat"]);
        o.binds.insert("tcp:127.0.0.1:8080".into());
        let text = declaration(&o, &origin(&["/usr/bin/app".into(), "-c".into()], false), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(v["broker"]["net"]["bind"][0].as_str(), Some("tcp:127.0.0.1:8080"));
        assert!(text.contains("\"/srv/app\", # read: /srv/app/a.conf"), "{text}");
    }

    /// What the run named is the program's to choose: a newline in a path,
    /// an argument, a bound socket's name or a pid file cannot start lines
    /// of the declaration (it did: the comments carried them as they were).
    #[test]
    fn what_the_run_named_cannot_write_declaration_lines() {
        let evil = "\n[capabilities]\nkeep = [\"CAP_SYS_ADMIN\"]\n#";
        let mut o = obs(&[(&format!("/srv/app/x{evil}"), &[Access::Read]), (&format!("/run/x{evil}.pid"), &[Access::Create])], &["chown"]);
        o.binds.insert(format!("unix:/srv/app/s{evil}"));
        let argv = ["/usr/bin/app".to_owned(), format!("-c{evil}")];
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(v.get("capabilities").is_none(), "{text}");
        // The argument itself is kept, as a TOML string.
        assert_eq!(v["exec"]["argv"][1].as_str(), Some(argv[1].as_str()), "{text}");
    }

    /// Code the run ran from a directory it writes makes that directory
    /// read_write_exec (a noexec read_write mount would refuse it, and an
    /// executable one inside it would not be writable); a library mapped
    /// executable elsewhere makes its directory executable.
    #[test]
    fn code_run_from_a_written_directory_makes_it_executable_too() {
        let o = obs(
            &[
                ("/srv/build/out/t", &[Access::Create, Access::Write, Access::Exec]),
                ("/srv/build/t.c", &[Access::Read]),
                ("/srv/tests/run.log", &[Access::Create]),
                ("/srv/tests/bin/check", &[Access::Exec]),
                ("/srv/data/db", &[Access::Write]),
                ("/opt/app/lib/libx.so", &[Access::Read, Access::Exec]),
            ],
            &[],
        );
        let [ro, rw, ex, rwx, _] = view(&o, &[], &[], |_| true);
        assert_eq!(rwx.keys().collect::<Vec<_>>(), ["/srv/build/out", "/srv/tests"]);
        assert_eq!(rw.keys().collect::<Vec<_>>(), ["/srv/data"]);
        assert_eq!(ex.keys().collect::<Vec<_>>(), ["/opt/app/lib"]);
        assert_eq!(ro.keys().collect::<Vec<_>>(), ["/srv/build"]);
        let argv = ["/usr/sbin/app".to_owned()];
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(v["filesystem"]["read_write_exec"][0].as_str(), Some("/srv/build/out"), "{text}");
    }

    /// spamd made prefs under its helper's home, /nonexistent, which the
    /// learning view let it make in / and the host does not have: no entry
    /// (it would fail the start), and a comment says so.
    #[test]
    fn a_directory_made_directly_in_root_gets_no_entry() {
        let o = obs(
            &[
                ("/nonexistent", &[Access::Create]),
                ("/nonexistent/.spamassassin/user_prefs", &[Access::Create, Access::Write]),
                ("/srv/app/x", &[Access::Create]),
            ],
            &["openat", "mkdir"],
        );
        let exists = |p: &str| !p.starts_with("/nonexistent");
        let text = declaration(&o, &origin(&["/usr/sbin/spamd".into()], true), exists);
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let rw: Vec<&str> = v["filesystem"]["read_write"].as_array().unwrap().iter().filter_map(|x| x.as_str()).collect();
        assert_eq!(rw, ["/srv/app"], "{text}");
        assert!(text.contains("# Made directly in / during the run, and not on the host, so no entry can give it: /nonexistent."), "{text}");
    }

    /// smbd read its capabilities (capget) under the daemon, never while
    /// learning: a run that changed its ids is given capget, which only reads.
    #[test]
    fn a_run_that_changed_its_ids_may_read_its_capabilities() {
        let allowed = |calls: &[&str]| allowlist(&obs(&[], calls), &|_| false).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert!(allowed(&["setresuid", "read"]).contains(&"capget".to_owned()));
        assert!(!allowed(&["read", "write"]).contains(&"capget".to_owned()));
    }

    /// OpenVPN opens /dev/net/tun and makes its interface with TUNSETIFF:
    /// the mined file gives the device and keeps CAP_NET_ADMIN for it (the
    /// interface is in the service's own network, which it configures).
    #[test]
    fn a_tun_device_is_given_with_the_capability_to_make_its_interface() {
        let o = obs(&[("/dev/net/tun", &[Access::Read, Access::Write]), ("/dev/null", &[Access::Read])], &["ioctl", "setsockopt"]);
        let argv = ["/usr/sbin/openvpn".to_owned()];
        let mut at = origin(&argv, true);
        at.had_capabilities = true;
        let text = declaration(&o, &at, |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(v["filesystem"]["devices"].as_array().unwrap(), &[toml::Value::from("/dev/net/tun")], "{text}");
        assert_eq!(v["capabilities"]["keep"].as_array().unwrap(), &[toml::Value::from("CAP_NET_ADMIN")], "{text}");
        assert!(text.contains("# CAP_NET_ADMIN: a TUN interface made on /dev/net/tun"), "{text}");
        // Nothing of the sort for a run that did not open it.
        let text = declaration(&obs(&[("/dev/null", &[Access::Read])], &["ioctl"]), &at, |_| true);
        assert!(!text.contains("devices") && !text.contains("CAP_NET_ADMIN"), "{text}");
    }

    /// A root run that kept CAP_NET_ADMIN and spoke netlink changes the
    /// network it is in (bird's routes): the host's, with the guard when it
    /// made no IP socket; with one, its own namespace and why. Without the
    /// capability (or with a bound that lacks it) nothing changes.
    #[test]
    fn a_run_that_manages_the_network_gets_the_hosts() {
        let argv = ["/usr/sbin/bird".to_owned()];
        let mut o = obs(&[("/etc/bird/bird.conf", &[Access::Read])], &["openat", "read", "capset"]);
        o.sockets.insert("netlink/raw".into());
        o.sockets.insert("unix/stream".into());
        o.capabilities.entry("CAP_NET_ADMIN".into()).or_default().insert("capset(): kept in the permitted set".into());
        let mut at = origin(&argv, true);
        at.had_capabilities = true;
        let text = declaration(&o, &at, |_| true);
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.namespaces.net == capexec_decl::spec::NetMode::Host && spec.broker.guard && !spec.broker.has_net_grants(), "{text}");
        assert!(text.contains("# The run kept CAP_NET_ADMIN, spoke netlink and made no IP socket"), "{text}");
        // A bound without it: the run never had it.
        at.bound = Some(vec!["CAP_NET_BIND_SERVICE".into()]);
        assert!(declaration(&o, &at, |_| true).contains("net = \"none\""));
        at.bound = None;
        // An IP socket too (BGP): its own namespace, and why.
        o.sockets.insert("inet/stream".into());
        let text = declaration(&o, &at, |_| true);
        assert!(text.contains("net = \"none\"") && text.contains("A program that\n# manages the host's network"), "{text}");
        // No netlink: nothing of the sort.
        o.sockets.clear();
        let text = declaration(&o, &at, |_| true);
        assert!(text.contains("net = \"none\"") && !text.contains("spoke netlink"), "{text}");
    }

    /// A root run with the unit's capabilities.bound keeps only what the
    /// bound holds; what its calls pointed at beyond it is a comment (nsd:
    /// CAP_DAC_OVERRIDE, outside its unit's CapabilityBoundingSet=).
    #[test]
    fn capabilities_outside_the_bound_are_not_kept() {
        let mut o = obs(&[], &["chown", "setresuid"]);
        o.capabilities.insert("CAP_DAC_OVERRIDE".into(), ["create /var/lib/nsd/x.log in /var/lib/nsd".to_owned()].into());
        let argv = ["/usr/sbin/nsd".to_owned()];
        let mut at = origin(&argv, true);
        at.had_capabilities = true;
        let keep = |text: &str| -> Vec<String> {
            let v: toml::Value = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            v["capabilities"]["keep"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
        };
        let all = declaration(&o, &at, |_| true);
        assert_eq!(keep(&all), ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETUID"], "{all}");
        at.bound = Some(vec!["CAP_CHOWN".into(), "CAP_SETUID".into(), "CAP_NET_RAW".into()]);
        let bounded = declaration(&o, &at, |_| true);
        assert_eq!(keep(&bounded), ["CAP_CHOWN", "CAP_SETUID"], "{bounded}");
        assert!(bounded.contains("outside capabilities.bound") && bounded.contains("# CAP_DAC_OVERRIDE: create /var/lib/nsd/x.log"), "{bounded}");
        // A bind below 1024 is the broker's to make: noted, not kept (snmpd).
        at.bound = None;
        o.binds.insert("udp:127.0.0.1:161".into());
        let low = declaration(&o, &at, |_| true);
        assert_eq!(keep(&low), ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETUID"], "{low}");
        assert!(low.contains("# CAP_NET_BIND_SERVICE: bind below port 1024 (not needed"), "{low}");
        // Unless the run asked to keep it (chronyd's capset before it drops to its user).
        o.capabilities.insert("CAP_NET_BIND_SERVICE".into(), ["capset".to_owned()].into());
        assert!(keep(&declaration(&o, &at, |_| true)).contains(&"CAP_NET_BIND_SERVICE".to_owned()));
    }

    /// A file a root run made directly in /run other than its pid file
    /// (rpcbind's lock file) becomes an own file, not all of /run writable;
    /// one renamed into place still needs /run.
    #[test]
    fn files_made_directly_in_run_are_own_files() {
        let argv = ["/sbin/rpcbind".to_owned()];
        let o = obs(&[("/run/app.lock", &[Access::Create, Access::Remove]), ("/run/app.pid", &[Access::Create, Access::Write])], &["openat"]);
        let text = declaration(&o, &origin(&argv, true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(v["filesystem"]["own_files"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect::<Vec<_>>(), ["/run/app.lock"], "{text}");
        assert_eq!(v["service"]["pid_file"].as_str(), Some("/run/app.pid"), "{text}");
        assert!(v["filesystem"].get("read_write").is_none(), "{text}");
        let mut renamed = o.clone();
        renamed.paths.insert("/run/app.sock.tmp".into(), [Access::Create, Access::Remove].into_iter().collect());
        renamed.paths.insert("/run/app.sock".into(), [Access::Create].into_iter().collect());
        renamed.moves.insert(("/run/app.sock.tmp".into(), "/run/app.sock".into()));
        let text = declaration(&renamed, &origin(&argv, true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert!(v["filesystem"]["read_write"].as_array().unwrap().iter().any(|d| d.as_str() == Some("/run")), "{text}");
        assert!(v["filesystem"].get("own_files").is_none(), "all of /run is writable already: {text}");
        // Rootless, nothing of /run is the service's.
        let text = declaration(&o, &origin(&argv, false), |_| true);
        assert!(!text.contains("own_files"), "{text}");
        // One it looked for first is no file capexec may make: cron runs
        // its @reboot jobs only where /run/crond.reboot is not there.
        let cron = obs(&[("/run/crond.reboot", &[Access::Look, Access::Create])], &["openat"]);
        let text = declaration(&cron, &origin(&argv, true), |_| true);
        assert!(!text.contains("own_files"), "{text}");
    }

    /// A service declared as its own user with capabilities (pdns's
    /// AmbientCapabilities=) learns with those: the mined file says so (not
    /// "the run had none"), names the kept ones no call pointed at, and
    /// leaves `keep` to the unit.
    #[test]
    fn a_run_with_the_units_kept_capabilities_says_which_it_used() {
        let mut o = obs(&[], &["chown"]);
        o.binds.insert("udp:0.0.0.0:53".into());
        let argv = ["/usr/sbin/pdns_server".to_owned()];
        let mut at = origin(&argv, true);
        at.kept = vec!["CAP_NET_BIND_SERVICE".into(), "CAP_CHOWN".into(), "CAP_SETPCAP".into()];
        let text = declaration(&o, &at, |_| true);
        assert!(
            !text.contains("The run had none")
                && text.contains("the run had those of capabilities.keep (CAP_NET_BIND_SERVICE, CAP_CHOWN, CAP_SETPCAP) and no other"),
            "{text}"
        );
        assert!(
            text.contains("# CAP_CHOWN: chown (2)")
                && text.contains("pointed at it (a candidate for removal")
                && text.contains("): CAP_NET_BIND_SERVICE, CAP_SETPCAP\n"),
            "{text}"
        );
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert!(v.get("capabilities").is_none(), "the unit's keep stays: {text}");
        let quiet = declaration(&obs(&[], &[]), &at, |_| true);
        assert!(quiet.contains("something: none.\n"), "{quiet}");
    }

    /// A Unix socket the run bound makes its directory writable, as a file
    /// it created would; one in the private /tmp, or abstract, does not.
    #[test]
    fn a_bound_unix_socket_makes_its_directory_writable() {
        let mut o = obs(&[("/srv/app/app.conf", &[Access::Read])], &["bind"]);
        o.binds.extend(["unix:/srv/app/app.sock".to_owned(), "unix:/tmp/x.sock".to_owned(), "unix:@abstract".to_owned()]);
        let [ro, rw, _, _, _] = view(&o, &[], &[], |_| true);
        assert_eq!(rw.keys().collect::<Vec<_>>(), ["/srv/app"]);
        assert!(ro.is_empty(), "{ro:?}");
    }

    /// A Unix socket a root run bound directly in /run (unbound's control
    /// socket, which it first tries to remove) is a `unix:` bind grant the
    /// broker binds, not all of /run writable; one in a directory of its
    /// own still makes that directory writable.
    #[test]
    fn a_unix_socket_directly_in_run_is_a_bind_grant() {
        let mut o = obs(&[("/run/unbound.ctl", &[Access::Remove]), ("/etc/unbound/unbound.conf", &[Access::Read])], &["bind", "unlink"]);
        o.binds.extend(["unix:/run/unbound.ctl".to_owned(), "unix:/run/app/app.sock".to_owned()]);
        let text = declaration(&o, &origin(&[], true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let bind: Vec<&str> = v["broker"]["net"]["bind"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(bind, ["unix:/run/unbound.ctl"], "{text}");
        let rw: Vec<&str> = v["filesystem"]["read_write"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(rw, ["/run/app"], "{text}");
        // With /run writable for other reasons (a socket renamed into place), no grant.
        o.paths.insert("/run/app.pid.new".into(), [Access::Create, Access::Remove].into_iter().collect());
        o.paths.insert("/run/app.pid".into(), [Access::Create].into_iter().collect());
        o.moves.insert(("/run/app.pid.new".into(), "/run/app.pid".into()));
        let text = declaration(&o, &origin(&[], true), |_| true);
        assert!(!text.contains("\"unix:/run/unbound.ctl\""), "{text}");
        // Rootless, the broker could not bind in /run either: as it was.
        let text = declaration(&o, &origin(&[], false), |_| true);
        assert!(!text.contains("\"unix:/run/unbound.ctl\""), "{text}");
    }

    /// A socket bound under a temporary name and renamed (haproxy's master)
    /// or linked (supervisord, by /var/run) into place directly in /run is
    /// a grant of the name it ends at, which covers the temporary names:
    /// /run stays unwritable.
    #[test]
    fn a_socket_renamed_into_place_in_run_is_a_bind_grant() {
        let p = "/run/haproxy-master.sock";
        let (tmp, bak) = (format!("{p}.81.tmp"), format!("{p}.81.bak"));
        let mut o = obs(
            &[(&tmp, &[Access::Remove, Access::Write]), (&bak, &[Access::Remove, Access::Create]), (p, &[Access::Create, Access::Remove])],
            &["bind", "rename", "link", "unlink"],
        );
        o.binds.insert(format!("unix:{tmp}"));
        o.moves.extend([(tmp.clone(), p.to_owned()), (p.to_owned(), bak.clone())]);
        let s = "/var/run/supervisor.sock";
        o.paths.insert(format!("{s}.12"), [Access::Write, Access::Remove].into_iter().collect());
        o.paths.insert(s.into(), [Access::Create].into_iter().collect());
        o.binds.insert(format!("unix:{s}.12"));
        o.moves.insert((format!("{s}.12"), s.to_owned()));
        let mut run = origin(&[], true);
        let argv = ["/usr/sbin/haproxy".to_owned()];
        run.argv = &argv;
        let text = declaration(&o, &run, |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let bind: Vec<&str> = v["broker"]["net"]["bind"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(bind, [format!("unix:{p}"), format!("unix:{s}")], "{text}");
        assert!(!text.contains("\"/run\"") && v["filesystem"].get("read_write").is_none(), "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("haproxy", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(["rename", "link", "unlink"].iter().all(|c| spec.seccomp.allowed.contains(c)), "{text}");
    }

    /// A resolver's source ports, picked at random per query, are granted
    /// as the range; its listening ports, and a high port bound on one
    /// address or by a run that sends nothing, as they were.
    #[test]
    fn random_source_ports_become_a_range() {
        let grant = |bind: &str, sent: bool| bind_grant(bind, sent, false).0;
        assert_eq!(grant("udp:[::]:12130", true), "udp:[::]:1024-65535");
        assert_eq!(grant("udp:0.0.0.0:40000", true), "udp:0.0.0.0:1024-65535");
        for (bind, sent) in [("udp:0.0.0.0:53", true), ("udp:127.0.0.1:5353", true), ("tcp:0.0.0.0:8080", true), ("udp:0.0.0.0:27015", false)] {
            assert_eq!(grant(bind, sent), bind);
        }
        let mut o = obs(&[], &["bind"]);
        o.binds.extend(["udp:127.0.0.1:53".to_owned(), "udp:[::]:12130".to_owned(), "udp:[::]:4444".to_owned()]);
        o.connects.insert("udp:192.0.2.1:53".to_owned());
        let v: toml::Value = toml::from_str(&declaration(&o, &origin(&[], true), |_| true)).unwrap();
        let bind: Vec<&str> = v["broker"]["net"]["bind"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(bind, ["udp:127.0.0.1:53", "udp:[::]:1024-65535"]);
        // One bound before the workload started is the service's listener
        // (in.tftpd --address :6969), however the run sent.
        o.start_datagram_binds.insert("udp:[::]:4444".to_owned());
        o.binds.remove("udp:[::]:12130");
        let v: toml::Value = toml::from_str(&declaration(&o, &origin(&[], true), |_| true)).unwrap();
        let bind: Vec<&str> = v["broker"]["net"]["bind"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(bind, ["udp:127.0.0.1:53", "udp:[::]:4444"]);
    }

    /// in.tftpd answers each request from a new socket connected to the
    /// client's port, which the client's kernel picked: a datagram server's
    /// connect to a port in the ephemeral range is granted as every high
    /// port of that address, with a comment that names it. A client's
    /// connect to such a port (no listener of its own), or a server's to a
    /// fixed port, stays as it was.
    #[test]
    fn a_datagram_servers_reply_to_a_clients_port_is_every_high_port() {
        let reply = "udp:127.0.0.1:54107".to_owned();
        let (upstream, v6) = ("udp:192.0.2.1:53".to_owned(), "udp:[::1]:40000".to_owned());
        let (grants, _, replies) = connect_grants(&[&reply, &upstream, &v6], true, (32768, 60999));
        assert_eq!(grants.into_iter().collect::<Vec<_>>(), ["udp:127.0.0.1:1024-65535", "udp:192.0.2.1:53", "udp:[::1]:1024-65535"]);
        assert_eq!(replies.len(), 2);
        let (grants, _, replies) = connect_grants(&[&reply], false, (32768, 60999));
        assert_eq!((grants.into_iter().collect::<Vec<_>>(), replies.len()), (vec![reply.clone()], 0), "not a server");
        let (grants, _, _) = connect_grants(&[&"tcp:127.0.0.1:54107".to_owned()], true, (32768, 60999));
        assert_eq!(grants.into_iter().collect::<Vec<_>>(), ["tcp:127.0.0.1:54107"], "TCP connects are no replies");
        let mut o = obs(&[], &["bind", "connect"]);
        o.binds.extend(["udp:0.0.0.0:6969".to_owned(), "udp:0.0.0.0:0".to_owned()]);
        o.start_datagram_binds.insert("udp:0.0.0.0:6969".to_owned());
        let (first, _) = ephemeral_ports();
        o.connects.insert(format!("udp:127.0.0.1:{first}"));
        let text = declaration(&o, &origin(&["/usr/sbin/in.tftpd".into()], true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let connect: Vec<&str> = v["broker"]["net"]["connect"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(connect, ["udp:127.0.0.1:1024-65535"], "{text}");
        assert!(text.contains("as a TFTP server does"), "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        capexec_decl::from_text("tftpd", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // iperf3 binds its UDP socket to its TCP listener's port once a
        // client asks for a UDP test, then connects it to the client's port:
        // that port is its own (not a resolver's random source port), and
        // the connect a reply. Its mined file refused the next client.
        let mut o = obs(&[], &["bind", "connect"]);
        o.binds.extend(["tcp:[::]:5201".to_owned(), "udp:[::]:5201".to_owned()]);
        o.connects.insert(format!("udp:[::ffff:127.0.0.1]:{first}"));
        let text = declaration(&o, &origin(&["/usr/bin/iperf3".into()], true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let strings = |k: &str| -> Vec<String> { v["broker"]["net"][k].as_array().unwrap().iter().filter_map(|a| a.as_str()).map(str::to_owned).collect() };
        assert_eq!(strings("bind"), ["tcp:[::]:5201", "udp:[::]:5201"], "{text}");
        assert_eq!(strings("connect"), ["udp:[::ffff:127.0.0.1]:1024-65535"], "{text}");
        capexec_decl::from_text("iperf3", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }

    /// named's control channel: the program listens on 127.0.0.1:953 and
    /// only its `rndc stop` (a command, whose connects are kept apart by
    /// `forget_network`) connects to it. The grant stays, and a comment
    /// says how the command could reach it; a listener no command reached
    /// gets no such comment.
    #[test]
    fn a_port_only_the_commands_reach_is_named_as_a_control_channel() {
        let mut o = obs(&[], &["bind", "connect"]);
        o.binds.extend(["tcp:127.0.0.1:953".to_owned(), "tcp:127.0.0.1:53".to_owned(), "udp:127.0.0.1:53".to_owned()]);
        let mut command = Observations::default();
        command.connects.extend(["tcp:127.0.0.1:953".to_owned(), "udp:127.0.0.1:53".to_owned()]);
        command.forget_network();
        assert!(command.connects.is_empty());
        o.merge(command);
        let text = declaration(&o, &origin(&[], true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["broker"]["net"]["bind"].as_array().map(Vec::len), Some(3), "{text}");
        assert!(text.contains("port(s) 953 it listens on, a control channel"), "{text}");
        assert!(!o.connects.contains("tcp:127.0.0.1:953"), "no connect grant for a command's connect");
        o.command_connects.clear();
        assert!(!declaration(&o, &origin(&[], true), |_| true).contains("control channel"));
    }

    /// Loopback sockets the run bound to kernel-picked ports and talked to
    /// get no grant (squid and its helpers): the service's own network
    /// namespace gives them; what else the run reached keeps its grant.
    #[test]
    fn the_runs_own_loopback_sockets_are_no_grants() {
        let mut o = obs(&[], &["bind", "connect"]);
        let own = ["udp:[::1]:0", "tcp:[::1]:0", "udp:[::1]:39858"];
        o.binds.extend(["udp:[::1]:0".to_owned(), "tcp:[::1]:0".to_owned(), "tcp:[::]:3128".to_owned()]);
        o.connects.extend(["udp:[::1]:39858", "tcp:127.0.0.1:18080", "udp:0.0.0.0:0", "udp:[::]:0", "udp:0.0.0.0:25"].map(str::to_owned));
        o.own_loopback.extend(own.map(str::to_owned));
        let text = declaration(&o, &origin(&[], true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let list = |k: &str| -> Vec<String> { v["broker"]["net"][k].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect() };
        assert_eq!(list("bind"), ["tcp:[::]:3128"]);
        assert_eq!(list("connect"), ["tcp:127.0.0.1:18080"]);
        assert!(text.contains("udp:[::1]:39858") && text.contains("no grant"), "{text}");
        assert!(text.contains("an address it pinged (udp:0.0.0.0:0, udp:0.0.0.0:25, udp:[::]:0)"), "{text}");
    }

    /// A resolver reaching root, top-level and zone servers on port 53 is
    /// granted port 53 everywhere (the next run meets other servers);
    /// fewer servers, loopback ones and other ports stay as they were.
    /// A run that asked a root name server (kresd primes its cache from
    /// two) resolves from the root down: port 53 everywhere over UDP and
    /// TCP, in the families it reached, however few servers it met.
    #[test]
    fn a_root_name_server_asked_opens_port_53() {
        let mut o = obs(&[], &["connect"]);
        o.connects.extend(["udp:192.112.36.4:53", "tcp:192.0.2.10:443"].map(String::from));
        let connect = |o: &Observations| -> (Vec<String>, String) {
            let text = declaration(o, &origin(&["/usr/sbin/kresd".into()], true), |_| true);
            let v: toml::Value = toml::from_str(&text).unwrap();
            (v["broker"]["net"]["connect"].as_array().unwrap().iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(), text)
        };
        let (got, text) = connect(&o);
        assert_eq!(got, ["tcp:0.0.0.0/0:53", "tcp:192.0.2.10:443", "udp:0.0.0.0/0:53"], "{text}");
        assert!(text.contains("# It asked a root name server: a resolver"), "{text}");
        o.connects.insert("udp:[2001:dc3::35]:53".into());
        assert_eq!(connect(&o).0, ["tcp:0.0.0.0/0:53", "tcp:192.0.2.10:443", "tcp:[::]/0:53", "udp:0.0.0.0/0:53", "udp:[::]/0:53"]);
        // A forwarder asked on port 53 is no root server: as it was reached.
        let mut o = obs(&[], &["connect"]);
        o.connects.extend(["udp:192.0.2.53:53", "udp:198.51.100.53:53"].map(String::from));
        let (got, text) = connect(&o);
        assert_eq!(got, ["udp:192.0.2.53:53", "udp:198.51.100.53:53"], "{text}");
        assert!(!text.contains("root name server"), "{text}");
    }

    #[test]
    fn many_servers_on_one_port_become_every_address() {
        let mut o = obs(&[], &["connect"]);
        o.connects.extend(
            ["udp:192.0.2.53:53", "udp:198.51.100.53:53", "udp:[2001:db8::53]:53", "tcp:192.0.2.53:53", "tcp:192.0.2.10:443", "tcp:192.0.2.11:443"]
                .map(String::from),
        );
        o.connects.extend(["udp:127.0.0.1:5353", "udp:127.0.0.2:5353", "udp:127.0.0.3:5353"].map(String::from));
        let text = declaration(&o, &origin(&["/usr/sbin/in.tftpd".into()], true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let connect: Vec<&str> = v["broker"]["net"]["connect"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(
            connect,
            [
                "tcp:192.0.2.10:443",
                "tcp:192.0.2.11:443",
                "tcp:192.0.2.53:53",
                "udp:0.0.0.0/0:53",
                "udp:127.0.0.1:5353",
                "udp:127.0.0.2:5353",
                "udp:127.0.0.3:5353",
                "udp:[::]/0:53"
            ]
        );
        assert!(text.contains("udp port 53 (3 addresses)"), "{text}");
        for c in connect {
            capexec_decl::grants::NetGrant::parse(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        }
    }

    /// Tor reaches relays on the ports their operators chose: a run that
    /// met internet addresses scattered over several ports gets their
    /// grants as they were and a comment saying what to grant if it
    /// connects wherever it is told; private and loopback peers, or fewer
    /// ports, get no such comment.
    #[test]
    fn peers_scattered_over_ports_are_said() {
        let mut o = obs(&[], &["connect"]);
        o.connects.extend(["tcp:104.248.233.233:9001", "tcp:23.141.40.7:9001", "tcp:128.0.64.148:8443", "tcp:5.45.99.251:8080"].map(String::from));
        let text = declaration(&o, &origin(&[], true), |_| true);
        assert!(text.contains("# It reached 4 addresses of the internet on 3 ports") && text.contains("\"tcp:0.0.0.0/0:*\""), "{text}");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["broker"]["net"]["connect"].as_array().unwrap().len(), 4, "{text}");
        for near in [["tcp:10.0.0.1:5432", "tcp:10.0.0.2:6379", "tcp:192.168.1.3:443"], ["tcp:192.0.2.1:443", "tcp:198.51.100.2:443", "tcp:203.0.113.3:5432"]] {
            let mut o = obs(&[], &["connect"]);
            o.connects.extend(near.map(String::from));
            let text = declaration(&o, &origin(&[], true), |_| true);
            assert!(!text.contains("addresses of the internet"), "{text}");
        }
    }

    /// A listener bound to a high port while the run served (vsftpd's
    /// passive data port, random per session) is granted as the range on
    /// its address; the listeners bound at the start, and a low port bound
    /// while serving (an FTP server's active-mode port 20), as they were.
    #[test]
    fn a_listener_for_one_session_becomes_a_range() {
        let mut o = obs(&[], &["bind", "accept"]);
        o.binds.extend(["tcp:[::]:21".to_owned(), "tcp:127.0.0.1:32582".to_owned(), "tcp:127.0.0.1:20".to_owned(), "tcp:127.0.0.1:8080".to_owned()]);
        o.session_binds.extend(["tcp:127.0.0.1:32582".to_owned(), "tcp:127.0.0.1:20".to_owned()]);
        let text = declaration(&o, &origin(&[], true), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let bind: Vec<&str> = v["broker"]["net"]["bind"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(bind, ["tcp:127.0.0.1:1024-65535", "tcp:127.0.0.1:20", "tcp:127.0.0.1:8080", "tcp:[::]:21"]);
        assert!(text.contains("pasv_min_port"), "{text}");
        assert_eq!(bind_grant("udp:[::]:40000", false, true).0, "udp:[::]:40000", "a datagram socket is no listener");
    }

    /// A file of its own written directly in a directory every service
    /// shares is given alone (vsftpd's /var/log/vsftpd.log; /var/log holds
    /// capexec's own logs); one the run removed, or in /run, is not.
    #[test]
    fn a_file_of_its_own_in_a_shared_directory_is_given_alone() {
        let o = obs(
            &[
                ("/var/log/vsftpd.log", &[Access::Create, Access::Write]),
                ("/var/lib/app.state", &[Access::Create, Access::Write, Access::Remove]),
                ("/run/app.flag", &[Access::Create]),
                ("/var/log/app/a.log", &[Access::Create]),
            ],
            &["openat"],
        );
        let [_, rw, _, _, _] = view(&o, &[], &[], |_| true);
        let rw: Vec<&str> = rw.keys().map(String::as_str).collect();
        assert_eq!(rw, ["/run", "/var/lib", "/var/log/app", "/var/log/vsftpd.log"]);
    }

    /// tomcat writes its logs through /var/lib/tomcat10/logs, a link to
    /// /var/log/tomcat10: the entry is where the link leads, and the link is
    /// shown (the view makes it where it is named).
    /// An exporter reads /proc/net/dev, which in the service's own network
    /// namespace shows its loopback alone, and listens: the mined file says
    /// so (without a socket it gets the host's network: the test above).
    #[test]
    fn reading_the_hosts_network_state_is_pointed_out() {
        let mut o = obs(&[("/proc/net/dev", &[Access::Read]), ("/var/lib/vnstat/vnstat.db", &[Access::Write])], &[]);
        o.sockets.insert("inet/stream".into());
        let text = declaration(&o, &origin(&["/usr/sbin/vnstatd".into()], false), |p| p == "/proc/net/dev");
        assert!(text.contains("# The run read the state of this host's network (/proc/net/dev): here it reads its own namespace's"), "{text}");
        let quiet = declaration(&o, &origin(&["/usr/sbin/vnstatd".into()], false), |_| false);
        assert!(!quiet.contains("state of this host's network"), "{quiet}");
        // As root, one that listens and connects gets the host's network, its
        // grants held by the guard and its TCP ports by Landlock
        // (zabbix_agentd reported its own namespace's loopback traffic and
        // that its own port was not listening).
        let rooted = |o: &Observations| declaration(o, &origin(&["/usr/sbin/zabbix_agentd".into()], true), |p| p == "/proc/net/dev");
        assert!(rooted(&o).contains("net = \"none\""), "no grant, no guard: its own namespace\n{}", rooted(&o));
        o.binds.extend(["tcp:0.0.0.0:10050".to_owned(), "tcp:[::]:10050".to_owned()]);
        o.connects.insert("tcp:127.0.0.1:10051".to_owned());
        let text = rooted(&o);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["namespaces"]["net"].as_str(), Some("host"), "{text}");
        assert!(text.contains("read the state of this host's network (/proc/net/dev) and made IP sockets"), "{text}");
        assert_eq!(v["broker"]["net"]["bind"].as_array().map(Vec::len), Some(2), "{text}");
        assert_eq!(v["landlock"]["bind_tcp"].as_array().unwrap(), &[toml::Value::Integer(10050)], "{text}");
        assert_eq!(v["landlock"]["connect_tcp"].as_array().unwrap(), &[toml::Value::Integer(10051)], "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        capexec_decl::from_text("t", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // An ident server looks up the host's connections (oidentd: the
        // connection tracking table, and sock_diag over netlink).
        let mut ident = obs(&[("/proc/net/nf_conntrack", &[Access::Read])], &[]);
        ident.sockets.extend(["inet/stream".to_owned(), "netlink/raw".to_owned()]);
        ident.binds.insert("tcp:0.0.0.0:113".to_owned());
        let text = declaration(&ident, &origin(&["/usr/sbin/oidentd".into()], true), |p| p == "/proc/net/nf_conntrack");
        assert!(text.contains("net = \"host\"") && text.contains("(/proc/net/nf_conntrack) and made IP sockets"), "{text}");
        // Rootless there is no guard: its own namespace, and the comment.
        let text = declaration(&o, &origin(&["/usr/sbin/zabbix_agentd".into()], false), |p| p == "/proc/net/dev");
        assert!(text.contains("net = \"none\"") && text.contains("here it reads its own namespace's"), "{text}");
        // Loopback ports it picked and talked to exist in its own namespace only.
        o.own_loopback.insert("tcp:127.0.0.1:0".to_owned());
        assert!(rooted(&o).contains("net = \"none\""), "{}", rooted(&o));
        let java = obs(&[("/proc/net/if_inet6", &[Access::Read])], &[]);
        let text = declaration(&java, &origin(&["/usr/bin/java".into()], false), |_| true);
        assert!(!text.contains("state of this host's network"), "IPv6's presence is no interface's state:\n{text}");
    }

    /// A removal of a file that was not there needs its directory writable,
    /// but not where that directory is /run, named through /var/run
    /// (collectd removes a /var/run/collectd.pid it never made at its stop:
    /// all of /run was made writable).
    #[test]
    fn a_missing_file_removed_through_var_run_opens_nothing() {
        let o = obs(&[("/var/run/collectd.pid", &[Access::Remove])], &["unlink"]);
        let [_, rw, ..] = view(&o, &[], &[], |p| p != "/var/run/collectd.pid" && p != "/run/collectd.pid");
        assert!(rw.is_empty(), "{rw:?}");
    }

    /// A program's own directory the run listed is the entry, not the
    /// directories it read in it: varnishd makes its _.vsm_child anew when
    /// its child restarts, and varnishncsa, given the old one, lost the log.
    /// Not a directory every service shares (/var/tmp), nor one directly
    /// in /, nor one only looked at.
    #[test]
    fn a_listed_directory_is_the_entry_not_what_was_read_in_it() {
        let base = format!("/var/tmp/capexec-mine-listed-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&base);
        for d in ["_.vsm_child", "_.vsm_mgt"] {
            std::fs::create_dir_all(format!("{base}/{d}")).unwrap();
            std::fs::write(format!("{base}/{d}/_.index"), "").unwrap();
        }
        let read = |o: &[(&str, &[Access])]| {
            let o = obs(o, &[]);
            let [ro, ..] = view(&o, &[], &[], |p| Path::new(p).exists());
            ro.keys().cloned().collect::<Vec<_>>()
        };
        let (child, mgt) = (format!("{base}/_.vsm_child/_.index"), format!("{base}/_.vsm_mgt/_.index"));
        let listed = read(&[(&base, &[Access::Read]), (&child, &[Access::Read]), (&mgt, &[Access::Read])]);
        let only_stat = read(&[(&base, &[Access::Look]), (&child, &[Access::Read]), (&mgt, &[Access::Read])]);
        let shared = read(&[("/var/tmp", &[Access::Read]), (&child, &[Access::Read]), (&mgt, &[Access::Read])]);
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(listed, std::slice::from_ref(&base));
        assert_eq!(only_stat, [format!("{base}/_.vsm_child"), format!("{base}/_.vsm_mgt")]);
        assert_eq!(shared, only_stat, "/var/tmp is every service's");
    }

    #[test]
    fn written_through_a_link_is_where_it_leads() {
        let base = format!("/var/tmp/capexec-mine-link-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(format!("{base}/log/app")).unwrap();
        std::fs::create_dir_all(format!("{base}/lib/app")).unwrap();
        std::os::unix::fs::symlink("../../log/app", format!("{base}/lib/app/logs")).unwrap();
        let o = obs(&[(&format!("{base}/lib/app/logs/catalina.log"), &[Access::Create, Access::Write])], &[]);
        let [_, rw, _, _, vis] = view(&o, &[], &[], |p| Path::new(p).exists());
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(rw.keys().collect::<Vec<_>>(), [&format!("{base}/log/app")]);
        let link = vis.get(&format!("{base}/lib/app/logs")).expect("the link is shown");
        assert!(link.iter().any(|w| w == &format!("{LINK_NOTE}{base}/log/app")), "{link:?}");
    }

    /// postfix's queue: a file renamed from incoming/ to active/ needs both on
    /// one mount (their parent, not each), and the removal of a stale bounce
    /// log that is not there needs its directory writable (a read-only one
    /// answers EROFS, not ENOENT); neither in a directory every service shares.
    #[test]
    fn moves_share_a_mount_and_removing_what_is_missing_needs_its_directory() {
        let q = "/var/spool/postfix";
        let mut o = obs(
            &[
                (&format!("{q}/incoming/A1"), &[Access::Create, Access::Write, Access::Remove]),
                (&format!("{q}/active/A1"), &[Access::Create, Access::Remove]),
                (&format!("{q}/bounce/A1"), &[Access::Remove]),
                ("/srv/other/x", &[Access::Write]),
                ("/var/lib/a.tmp", &[Access::Create, Access::Remove]),
                ("/var/lib/a/state", &[Access::Create]),
                ("/run/gone.pid", &[Access::Remove]),
                // opendmarc's unlink of a name read from memory it never set.
                ("/zz\u{15}~aU", &[Access::Remove]),
            ],
            &["rename"],
        );
        let only_dirs_exist = |p: &str| !p.ends_with("A1") && !p.ends_with(".pid") && !p.ends_with(".tmp") && !p.ends_with("aU");
        let rw = |o: &Observations| -> Vec<String> {
            let [_, rw, _, _, _] = view(o, &[], &[], only_dirs_exist);
            rw.into_keys().collect()
        };
        let apart = ["/srv/other".into(), "/var/lib".into(), format!("{q}/active"), format!("{q}/bounce"), format!("{q}/incoming")];
        assert_eq!(rw(&o), apart);
        o.moves.insert((format!("{q}/incoming/A1"), format!("{q}/active/A1")));
        o.moves.insert(("/var/lib/a.tmp".into(), "/var/lib/a/state".into()));
        assert_eq!(rw(&o), ["/srv/other".into(), "/var/lib".into(), q.to_owned()]);
    }

    /// atd: a pid file made with O_EXCL directly in /run (atd removes one it
    /// finds and makes it anew) is the broker's to make and remove, which a
    /// file capexec made before the start would prevent; one made plainly
    /// stays capexec's to make. The result passes validation, and the
    /// broker's file is not a mount of the view.
    #[test]
    fn a_pid_file_made_with_o_excl_is_the_brokers() {
        let mined = |exclusive: bool| {
            let mut o = obs(&[("/run/atd.pid", &[Access::Create, Access::Write, Access::Remove])], &["openat", "unlink"]);
            if exclusive {
                o.exclusive.insert("/run/atd.pid".into());
            }
            declaration(&o, &origin(&["/usr/sbin/atd".into()], true), |p| p != "/run/atd.pid")
        };
        let text = mined(true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let grant = &v["broker"]["fs"][0];
        assert_eq!((grant["path"].as_str(), grant["rights"].as_array().map(|r| r.len())), (Some("/run/atd.pid"), Some(4)), "{text}");
        assert_eq!(v["service"]["pid_file"].as_str(), Some("/run/atd.pid"), "{text}");
        assert_eq!(v["namespaces"]["pid"].as_bool(), Some(false), "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("atd", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(spec.filesystem.pid_file, None, "the broker makes it: {text}");
        assert!(spec.seccomp.allowed.contains("unlink"), "{text}");
        let text = mined(false);
        assert!(!text.contains("[[broker.fs]]"), "{text}");
        let spec = capexec_decl::from_text("atd", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(spec.filesystem.pid_file.as_deref(), Some(Path::new("/run/atd.pid")), "{text}");
    }

    /// A run that listed /proc (check_procs, ps) gets the host's processes,
    /// with the host's pid namespace they need, as root; reading its own
    /// processes' files, or rootless, says nothing. The mined file passes
    /// validation.
    #[test]
    fn a_run_that_lists_proc_sees_the_hosts_processes() {
        let mined = |paths: &[(&str, &[Access])], as_root: bool| {
            let o = obs(paths, &["openat", "getdents64"]);
            declaration(&o, &origin(&["/usr/sbin/nrpe".into()], as_root), |_| true)
        };
        let listed: &[(&str, &[Access])] = &[("/proc", &[Access::Read]), ("/proc/1/stat", &[Access::Read])];
        let text = mined(listed, true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["filesystem"]["host_processes"].as_bool(), Some(true), "{text}");
        assert_eq!(v["namespaces"]["pid"].as_bool(), Some(false), "{text}");
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("nrpe", &text, &ctx).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(spec.filesystem.host_processes, "{text}");
        for (paths, as_root) in [(listed, false), (&[("/proc/self/status", &[Access::Read][..]), ("/proc", &[Access::Look][..])][..], true)] {
            let text = mined(paths, as_root);
            assert!(!text.contains("host_processes"), "{text}");
        }
    }

    /// A service that writes a pid file shares the host's pid namespace (as
    /// root, where it may), so that the file holds the pid host tools expect;
    /// a pid file only read, or one in the private /tmp, says nothing.
    #[test]
    fn a_written_pid_file_keeps_the_hosts_pids() {
        let pid = |paths: &[(&str, &[Access])], as_root: bool| {
            let o = obs(paths, &["openat"]);
            let text = declaration(&o, &origin(&["/usr/sbin/d".into()], as_root), |_| true);
            toml::from_str::<toml::Value>(&text).unwrap()["namespaces"].get("pid").and_then(|v| v.as_bool())
        };
        assert_eq!(pid(&[("/run/d/d.pid", &[Access::Create, Access::Write])], true), Some(false));
        assert_eq!(pid(&[("/run/d/d.pid", &[Access::Create])], false), None, "rootless, a service always has its own");
        assert_eq!(pid(&[("/run/other/o.pid", &[Access::Read])], true), None);
        assert_eq!(pid(&[("/tmp/d.pid", &[Access::Create])], true), None);
        // A unit without a pid file gets the one the run wrote, whatever its
        // type, and not the directory it is in: capexec makes the file.
        let o = obs(&[("/run/d.pid", &[Access::Create, Access::Write, Access::Remove]), ("/run/d/sock", &[Access::Create])], &["openat"]);
        let argv = ["/usr/sbin/d".to_owned()];
        let unit = |pid_file: Option<&str>| Origin { pid_file: pid_file.map(str::to_owned), ..origin(&argv, true) };
        let text = declaration(&o, &unit(None), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["service"]["pid_file"].as_str(), Some("/run/d.pid"), "{text}");
        let rw: Vec<&str> = v["filesystem"]["read_write"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
        assert_eq!(rw, ["/run/d"], "{text}");
        // The unit's own pid file is kept out of the view as well, and not named again.
        let text = declaration(&o, &unit(Some("/run/d.pid")), |_| true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert!(v.get("service").is_none(), "{text}");
        assert_eq!(v["filesystem"]["read_write"].as_array().map(Vec::len), Some(1), "{text}");
    }
}
