//! Raw declaration → `ServiceSpec`: resolves every default, checks every value,
//! and collects all problems (each with its key path) instead of stopping at the first.

use crate::error::{DeclError, DeclErrors};
use crate::raw::{LimitValue, NameOrId, RawExec, RawRlimit, RawUnit};
use crate::spec::*;
use crate::syscalls;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

/// Facts about the caller that change defaults and what is allowed.
#[derive(Debug, Clone)]
pub struct Context {
    /// capexec itself runs without root: only the caller's own uid can be used.
    pub rootless: bool,
    pub uid: u32,
    pub gid: u32,
    /// Directory of the declaration file, substituted for `${UNIT_DIR}`.
    pub unit_dir: Option<PathBuf>,
}

impl Context {
    pub fn current() -> Context {
        let uid = nix::unistd::geteuid().as_raw();
        Context { rootless: uid != 0, uid, gid: nix::unistd::getegid().as_raw(), unit_dir: None }
    }
}

/// The system directories put into the view when `filesystem.system = true`.
/// A leading `-` marks paths that may be missing on some distributions.
pub const SYSTEM_EXECUTABLE: &[&str] = &["/usr", "-/bin", "-/sbin", "-/lib", "-/lib64", "-/lib32", "-/libx32"];
pub const SYSTEM_READ_ONLY: &[&str] = &["/etc"];
/// capexec's own directories (the system daemon's runtime directory with its
/// control socket and unit directory, its declarations, state and logs, and
/// capexec-oci's container state): nothing a service should write.
pub const CAPEXEC_DIRS: &[&str] = &["/run/capexec", "/etc/capexec", "/var/lib/capexec", "/var/log/capexec", "/usr/lib/capexec", "/run/capexec-oci"];
/// Links into /run that the view recreates where the host has them.
pub const COMPAT_LINKS: &[&str] = &["/var/run", "/var/lock"];
/// Masked even inside the read-only system directories: password hashes, and
/// the kernel modules (as systemd's ProtectKernelModules= does: a service has
/// no business reading them, and `capexec analyze` counts it).
pub const SYSTEM_INACCESSIBLE: &[&str] = &["-/etc/shadow", "-/etc/gshadow", "-/etc/shadow-", "-/etc/gshadow-", "-/usr/lib/modules", "-/lib/modules"];

/// The host's control sockets that make their caller root in effect, as
/// (home, hidden): systemd's private socket (systemctl without polkit, for
/// uid 0), the system bus (systemd's and logind's methods for uid 0), the
/// container and VM engines (LXD's and Incus's in /var/lib), snapd, udev's
/// control, and the users' runtime directories (their bus, their managers:
/// root's runs anything as root). A declaration that shows one through a
/// directory above it (all of /run) does not show it: `hidden` is masked
/// unless the declaration names `home` or a path in it. Landlock (ABI 7)
/// has no rule for connecting to a path socket, so the view is what keeps
/// them out of reach.
pub const HOST_CONTROLS: &[(&str, &str)] = &[
    ("/run/systemd/private", "/run/systemd/private"),
    ("/run/dbus", "/run/dbus/system_bus_socket"),
    ("/run/docker.sock", "/run/docker.sock"),
    ("/run/docker", "/run/docker"),
    ("/run/containerd", "/run/containerd"),
    ("/run/podman", "/run/podman"),
    ("/run/crio", "/run/crio"),
    ("/run/libvirt", "/run/libvirt"),
    ("/run/snapd.socket", "/run/snapd.socket"),
    ("/run/udev/control", "/run/udev/control"),
    ("/run/user", "/run/user"),
    ("/var/lib/lxd/unix.socket", "/var/lib/lxd/unix.socket"),
    ("/var/lib/incus/unix.socket", "/var/lib/incus/unix.socket"),
];

/// systemd's range for DynamicUser=, so that ids never clash with regular users.
pub const DYNAMIC_UID_MIN: u32 = 61184;
/// `[broker.net]` bind and connect grants together: what capexec-sandbox's
/// network guard holds (its `MAX_GRANTS`).
pub const MAX_NET_GRANTS: usize = 64;
pub const DYNAMIC_UID_MAX: u32 = 65519;

pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const ERRNO_NAMES: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("EACCES", libc::EACCES),
    ("ENOSYS", libc::ENOSYS),
    ("EINVAL", libc::EINVAL),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("ENOTSUP", libc::ENOTSUP),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
];

/// `capabilities.keep` or `.bound`: each name once, in the order given.
fn capability_list(v: &mut V, key: &str, names: Option<&Vec<String>>) -> Vec<caps::Capability> {
    let mut out: Vec<caps::Capability> = Vec::new();
    for (i, c) in names.into_iter().flatten().enumerate() {
        let up = c.to_ascii_uppercase();
        let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
        match full.parse::<caps::Capability>().ok().filter(|_| CAPABILITIES.contains(&full.as_str())) {
            Some(cap) if !out.contains(&cap) => out.push(cap),
            Some(_) => {}
            None => v.err_help(format!("{key}[{i}]"), format!("unknown capability `{c}`"), "use a name from capabilities(7), e.g. CAP_NET_BIND_SERVICE"),
        }
    }
    out
}

struct V<'a> {
    ctx: &'a Context,
    errors: Vec<DeclError>,
    warnings: Vec<String>,
}

impl V<'_> {
    fn err(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(DeclError::at_key(key, msg));
    }
    fn err_help(&mut self, key: impl Into<String>, msg: impl Into<String>, help: impl Into<String>) {
        self.errors.push(DeclError::at_key(key, msg).help(help));
    }

    /// One of a fixed set of values, the first being the default. An unknown
    /// value is an error that lists what is allowed; the default stands in for it
    /// so validation can go on and report the other problems too.
    fn choice<T: Copy>(&mut self, key: &str, value: Option<&str>, options: &[(&str, T)]) -> T {
        let default = options[0].1;
        let Some(value) = value else { return default };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == value) {
            return *t;
        }
        let allowed: Vec<String> =
            options.iter().enumerate().map(|(i, (name, _))| if i == 0 { format!("\"{name}\" (default)") } else { format!("\"{name}\"") }).collect();
        self.err_help(key, format!("unknown value `{value}`"), format!("allowed: {}", allowed.join(", ")));
        default
    }

    fn expand(&self, s: &str) -> String {
        match &self.ctx.unit_dir {
            Some(d) => s.replace("${UNIT_DIR}", &d.display().to_string()),
            None => s.to_owned(),
        }
    }

    /// An absolute, normalised path: no `..`, no `.`, no doubled or trailing slashes.
    fn path(&mut self, key: &str, raw: &str) -> Option<PathBuf> {
        let s = self.expand(raw);
        if s.contains('\0') {
            self.err(key, "path contains a NUL byte");
            return None;
        }
        if !s.starts_with('/') {
            self.err_help(key, format!("path `{s}` is not absolute"), "write the full path, starting with /");
            return None;
        }
        if s.len() >= libc::PATH_MAX as usize {
            self.err(key, format!("path is {} bytes long; the limit is {}", s.len(), libc::PATH_MAX - 1));
            return None;
        }
        let mut out = PathBuf::from("/");
        for c in Path::new(&s).components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(p) => out.push(p),
                Component::ParentDir => {
                    self.err_help(key, format!("path `{s}` contains `..`"), "write the path it stands for");
                    return None;
                }
                Component::Prefix(_) => unreachable!("no prefixes on Unix"),
            }
        }
        Some(out)
    }

    fn name_id(&mut self, key: &str, v: &NameOrId, user: bool) -> Option<(u32, Option<String>, Option<u32>)> {
        match v {
            NameOrId::Id(id) => {
                let (name, primary) = if user {
                    match nix::unistd::User::from_uid((*id).into()) {
                        Ok(Some(u)) => (Some(u.name), Some(u.gid.as_raw())),
                        _ => (None, None),
                    }
                } else {
                    (nix::unistd::Group::from_gid((*id).into()).ok().flatten().map(|g| g.name), None)
                };
                Some((*id, name, primary))
            }
            NameOrId::Name(n) if user => match nix::unistd::User::from_name(n) {
                Ok(Some(u)) => Some((u.uid.as_raw(), Some(u.name), Some(u.gid.as_raw()))),
                _ => {
                    self.err_help(
                        key,
                        format!("no user named `{n}` on this system"),
                        "create the user, give a numeric uid, or use \"dynamic\" for a per-unit uid",
                    );
                    None
                }
            },
            NameOrId::Name(n) => match nix::unistd::Group::from_name(n) {
                Ok(Some(g)) => Some((g.gid.as_raw(), Some(g.name), None)),
                _ => {
                    self.err_help(key, format!("no group named `{n}` on this system"), "create the group or give a numeric gid");
                    None
                }
            },
        }
    }
}

/// Validates a raw unit. `sources` are the files it came from (empty for `capexec run`).
pub fn validate(name: &str, raw: &RawUnit, sources: Vec<PathBuf>, ctx: &Context) -> Result<ServiceSpec, DeclErrors> {
    let mut v = V { ctx, errors: Vec::new(), warnings: Vec::new() };
    let exec = raw.exec.clone().unwrap_or_default();
    let fs = raw.filesystem.clone().unwrap_or_default();
    let ns = raw.namespaces.clone().unwrap_or_default();

    // --- exec ---
    let argv: Vec<String> = exec.argv.clone().unwrap_or_default().iter().map(|a| v.expand(a)).collect();
    if argv.is_empty() {
        v.err_help("exec.argv", "missing: the command to run", "add e.g. argv = [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]");
    } else if !argv[0].starts_with('/') {
        v.err_help("exec.argv[0]", format!("`{}` is not an absolute path", argv[0]), format!("give the program's full path, e.g. /usr/bin/{}", argv[0]));
    }
    for (i, a) in argv.iter().enumerate() {
        if a.contains('\0') {
            v.err(format!("exec.argv[{i}]"), "argument contains a NUL byte");
        }
    }
    let condition = commands(&mut v, "exec.condition", exec.condition.as_deref());
    let start_pre = commands(&mut v, "exec.start_pre", exec.start_pre.as_deref());
    let start_post = commands(&mut v, "exec.start_post", exec.start_post.as_deref());
    let reload = commands(&mut v, "exec.reload", exec.reload.as_deref());
    let stop = commands(&mut v, "exec.stop", exec.stop.as_deref());
    let user = identity(&mut v, name, &exec);
    let mut environment = BTreeMap::new();
    for (k, val) in exec.environment.unwrap_or_default() {
        if !valid_env_name(&k) {
            v.err(format!("exec.environment.{k}"), "invalid variable name: use letters, digits and _, not starting with a digit");
        } else if val.contains('\0') {
            v.err(format!("exec.environment.{k}"), "value contains a NUL byte");
        } else {
            environment.insert(k, v.expand(&val));
        }
    }
    let pass_environment = exec.pass_environment.unwrap_or_default();
    for (i, k) in pass_environment.iter().enumerate() {
        if !valid_env_name(k) {
            v.err(format!("exec.pass_environment[{i}]"), format!("invalid variable name `{k}`"));
        }
    }
    let working_directory = match &exec.working_directory {
        Some(w) => v.path("exec.working_directory", w).unwrap_or_else(|| PathBuf::from("/")),
        None => PathBuf::from("/"),
    };

    // --- filesystem ---
    let system = fs.system.unwrap_or(true);
    let mut mounts: BTreeMap<PathBuf, (MountKind, bool, Option<String>)> = BTreeMap::new();
    // The overlays that are parts of a split directory: whose layer they write into.
    let mut parts: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let overlay = fs.overlay.as_ref().and_then(|d| {
        let dir = v.path("filesystem.overlay", d)?;
        if dir.to_string_lossy().contains(crate::overlay::UNSAFE_CHARS) {
            v.err_help(
                "filesystem.overlay",
                format!("{} holds a character overlayfs options cannot carry (, : \\ =)", dir.display()),
                "choose a directory without them",
            );
            return None;
        }
        if !system {
            v.err_help("filesystem.overlay", "an overlaid view is the host's system and files: it needs filesystem.system = true", "remove system = false");
        }
        Some(dir)
    });
    if let Some(dir) = &overlay {
        // The host as the caller sees it, every top-level directory and
        // the caller's home overlaid (crate::overlay); the masks stay.
        let home = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(ctx.uid)).ok().flatten().map(|u| u.dir);
        let own: Vec<PathBuf> = home.into_iter().chain(std::env::current_dir().ok()).filter_map(|p| crate::overlay::own_root(&p, ctx.uid, ctx.gid)).collect();
        let host = crate::overlay::host_mounts();
        let view = crate::overlay::view(&host, &own);
        for (p, kind, of) in view.mounts {
            if let Some(of) = of {
                parts.insert(p.clone(), of);
            }
            mounts.insert(p, (kind, false, None));
        }
        // What the run cannot write that it could with no mount there (a
        // read-only mount of the host's is read-only anyway), said once.
        let writable: Vec<&PathBuf> = view.as_is.iter().filter(|p| !host.iter().any(|m| m.path == **p && m.read_only)).collect();
        if !writable.is_empty() {
            let shown: Vec<String> = writable.iter().take(4).map(|p| p.display().to_string()).collect();
            let mut tops: Vec<String> = writable.iter().map(|p| p.components().take(2).collect::<PathBuf>().display().to_string()).collect();
            tops.dedup();
            let more = if writable.len() > 4 { format!(" and {} more", writable.len() - 4) } else { String::new() };
            v.warnings.push(format!(
                "filesystem.overlay: {}{more}: as the host has {}, read-only, and so are the directories above from {} (nothing can be made or removed directly in them; every other directory there is overlaid): overlayfs cannot take a directory with a mount below it in a user namespace",
                shown.join(", "),
                if writable.len() == 1 { "it" } else { "them" },
                tops.join(", ")
            ));
        }
        for p in SYSTEM_INACCESSIBLE {
            let (opt, p) = p.strip_prefix('-').map_or((false, *p), |s| (true, s));
            mounts.insert(PathBuf::from(p), (MountKind::Inaccessible, opt, None));
        }
        // The layers themselves are capexec's, not the program's.
        if mounts.iter().any(|(p, (k, _, _))| *k != MountKind::Inaccessible && dir.starts_with(p)) {
            mounts.insert(dir.clone(), (MountKind::Inaccessible, true, None));
        }
    } else if system {
        for (list, kind) in
            [(SYSTEM_EXECUTABLE, MountKind::Executable), (SYSTEM_READ_ONLY, MountKind::ReadOnly), (SYSTEM_INACCESSIBLE, MountKind::Inaccessible)]
        {
            for p in list {
                let (opt, p) = p.strip_prefix('-').map_or((false, *p), |s| (true, s));
                mounts.insert(PathBuf::from(p), (kind, opt, None));
            }
        }
        // The compatibility links into /run, where the host has them as links
        // (recreated as links, never bound: a directory there would show other
        // services' sockets): programs still name their runtime files through
        // them (apachectl makes /var/run/apache2).
        for link in COMPAT_LINKS {
            if std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
                mounts.insert(PathBuf::from(link), (MountKind::ReadOnly, true, None));
            }
        }
    }
    let lists = [
        ("read_only", &fs.read_only, MountKind::ReadOnly),
        ("visible", &fs.visible, MountKind::Visible),
        ("executable", &fs.executable, MountKind::Executable),
        ("read_write", &fs.read_write, MountKind::ReadWrite),
        ("read_write_exec", &fs.read_write_exec, MountKind::ReadWriteExec),
        ("tmpfs", &fs.tmpfs, MountKind::Tmpfs),
        ("inaccessible", &fs.inaccessible, MountKind::Inaccessible),
    ];
    for (field, list, kind) in lists {
        for (i, raw_p) in list.iter().flatten().enumerate() {
            let key = format!("filesystem.{field}[{i}]");
            let (optional, raw_p) = raw_p.strip_prefix('-').map_or((false, raw_p.as_str()), |s| (true, s));
            let Some(p) = v.path(&key, raw_p) else {
                continue;
            };
            if p == Path::new("/") {
                v.err_help(&key, "`/` cannot be mounted into the view", "list the directories the service needs instead");
                continue;
            }
            if ["/proc", "/dev"].iter().any(|r| p == Path::new(r)) {
                v.err_help(&key, format!("{} is managed by capexec", p.display()), format!("use filesystem.{}", &p.to_str().unwrap_or("")[1..]));
                continue;
            }
            if optional && kind == MountKind::Tmpfs {
                v.err(&key, "a tmpfs is always created; the `-` prefix does not apply");
            }
            match mounts.get(&p) {
                Some((_, _, Some(prev))) => {
                    v.err_help(&key, format!("{} is already listed in {prev}", p.display()), "list each path once");
                }
                _ => {
                    mounts.insert(p, (kind, optional, Some(key.clone())));
                }
            }
        }
    }
    for (home, hidden) in HOST_CONTROLS {
        let (home, hidden) = (Path::new(home), Path::new(hidden));
        let declared = |p: &Path, key: &Option<String>| key.is_some() && p != hidden;
        let shown = mounts.iter().any(|(p, (k, _, key))| declared(p, key) && *k != MountKind::Inaccessible && hidden.starts_with(p));
        let named = mounts.iter().any(|(p, (_, _, key))| key.is_some() && p.starts_with(home));
        if shown && !named {
            mounts.insert(hidden.to_path_buf(), (MountKind::Inaccessible, true, None));
        }
    }
    // A declared mount is what the service sees there, all of it: no part
    // of a split directory on top of it (`capexec run --overlay B --rw
    // /var/lib` writes to the host's /var/lib, as with /var overlaid whole).
    let declared: Vec<PathBuf> = mounts.iter().filter(|(_, (_, _, key))| key.is_some()).map(|(p, _)| p.clone()).collect();
    parts.retain(|p, _| {
        let under = declared.iter().any(|d| p != d && p.starts_with(d));
        if under {
            mounts.remove(p);
        }
        !under
    });
    // Directories capexec makes for the service: writable in the view.
    let mut directories = Vec::new();
    for (kind, list, mode) in [
        (DirKind::Runtime, &fs.runtime_directory, &fs.runtime_directory_mode),
        (DirKind::State, &fs.state_directory, &fs.state_directory_mode),
        (DirKind::Cache, &fs.cache_directory, &fs.cache_directory_mode),
        (DirKind::Logs, &fs.logs_directory, &fs.logs_directory_mode),
    ] {
        let mode = mode.as_ref().and_then(|m| {
            let key = format!("filesystem.{}_mode", kind.key());
            if list.as_ref().is_none_or(|l| l.is_empty()) {
                v.warnings.push(format!("{key} is set, but filesystem.{} names no directory", kind.key()));
            }
            match u32::from_str_radix(m, 8) {
                // Setgid gives what is made there the directory's group: a
                // daemon's root start makes its socket its group's that way
                // (tor's `install -m 02755 -d /run/tor`). Setuid means nothing
                // on a Linux directory and sticky is for shared ones: refused.
                Ok(n) if n & !0o2777 == 0 => Some(n),
                _ => {
                    v.err_help(key, format!("invalid mode `{m}`"), "an octal string of permission bits such as \"0750\" (and the setgid bit, \"02750\")");
                    None
                }
            }
        });
        for (i, name) in list.iter().flatten().enumerate() {
            let key = format!("filesystem.{}[{i}]", kind.key());
            let rel = Path::new(name);
            let relative = !name.is_empty() && rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !relative {
                v.err_help(
                    &key,
                    format!("`{name}` is not a directory name under {}", kind.base()),
                    "a relative path without `..`, e.g. \"chrony\" or \"app/cache\"",
                );
                continue;
            }
            if ctx.rootless {
                v.err_help(
                    &key,
                    format!("capexec creates {}/{name} for the service only when it runs as root", kind.base()),
                    "rootless, create a directory you own and list it in filesystem.read_write",
                );
                continue;
            }
            let p = Path::new(kind.base()).join(rel);
            if let Some((_, _, Some(prev))) = mounts.get(&p) {
                v.err_help(&key, format!("{} is already listed in {prev}", p.display()), "list each path once");
                continue;
            }
            mounts.insert(p.clone(), (MountKind::ReadWrite, false, Some(key.clone())));
            directories.push(ManagedDir { path: p, kind, mode });
        }
    }
    let directories_owner = fs.directories_user.as_ref().and_then(|u| {
        if directories.is_empty() {
            v.warnings.push("filesystem.directories_user is set, but no directory is made (runtime_directory and the others)".into());
        }
        let (uid, _, primary) = v.name_id("filesystem.directories_user", u, true)?;
        match primary {
            Some(gid) => Some((uid, gid)),
            None => {
                v.err_help("filesystem.directories_user", format!("uid {uid} has no passwd entry, so no group"), "name a user of /etc/passwd");
                None
            }
        }
    });
    let mut as_owner = Vec::new();
    for (i, raw_p) in fs.as_owner.iter().flatten().enumerate() {
        let key = format!("filesystem.as_owner[{i}]");
        let Some(p) = v.path(&key, raw_p) else { continue };
        if ctx.rootless {
            v.err_help(&key, "idmapped mounts need root (CAP_SYS_ADMIN where the filesystem was mounted)", "rootless the service runs as you: remove the key");
        } else if !matches!(mounts.get(&p), Some((MountKind::ReadOnly | MountKind::ReadWrite | MountKind::ReadWriteExec, _, Some(_)))) {
            v.err_help(&key, format!("{} is not listed in read_only or read_write", p.display()), "list it there too, exactly as here");
        } else {
            as_owner.push(p);
        }
    }
    let mut copy_up = Vec::new();
    for (i, raw_p) in fs.copy_up.iter().flatten().enumerate() {
        let key = format!("filesystem.copy_up[{i}]");
        let Some(p) = v.path(&key, raw_p) else { continue };
        if overlay.is_none() {
            v.err_help(&key, "copies go into an overlay's layer: there is none", "set filesystem.overlay (capexec run: --overlay DIR --copy-up PATH)");
        } else if !mounts.iter().any(|(m, (k, _, _))| *k == MountKind::Overlay && p.starts_with(m)) {
            v.err_help(
                &key,
                format!("{} is not in an overlaid directory (not /proc, /dev, /tmp, /sys, /run or a mount below a top-level directory)", p.display()),
                "name a path the overlay covers",
            );
        } else if !copy_up.contains(&p) {
            copy_up.push(p);
        }
    }
    if exec.fakeroot == Some(true) && overlay.is_some() {
        for p in crate::overlay::PACKAGE_STATE.iter().map(PathBuf::from) {
            if !copy_up.contains(&p) {
                copy_up.push(p);
            }
        }
    }
    let private_tmp = fs.private_tmp.unwrap_or(true);
    if private_tmp {
        if let Some((_, _, Some(key))) = mounts.get(Path::new("/tmp")) {
            v.err_help(key.clone(), "/tmp is private already (filesystem.private_tmp = true)", "set private_tmp = false to list /tmp yourself");
        } else {
            mounts.insert(PathBuf::from("/tmp"), (MountKind::Tmpfs, false, None));
        }
    }
    let pid_file = pid_file_mount(&mut v, raw, &mut mounts);
    let own_files = own_file_mounts(&mut v, raw, &mut mounts);
    let mounts: Vec<Mount> = mounts
        .into_iter()
        .map(|(path, (kind, optional, _))| {
            // A part replaced by a declared mount is no part.
            let layer_of = parts.get(&path).filter(|_| kind == MountKind::Overlay).cloned();
            Mount { path, kind, optional, source: None, propagation: None, layer_of }
        })
        .collect();
    let dev = v.choice("filesystem.dev", fs.dev.as_deref(), &[("minimal", DevMode::Minimal), ("none", DevMode::None)]);
    let proc = v.choice("filesystem.proc", fs.proc.as_deref(), &[("pid-only", ProcMode::PidOnly), ("full", ProcMode::Full), ("none", ProcMode::None)]);

    // --- namespaces ---
    // "none": an own network namespace with only loopback.
    let net = v.choice("namespaces.net", ns.net.as_deref(), &[("none", NetMode::None), ("host", NetMode::Host)]);
    // As root a service runs as its user in the host's user namespace, seeing
    // host ownership as it is (docs/security.md, "Identity"); a private one is
    // asked for. Rootless there is no other way.
    let user_ns = ns.user.unwrap_or(ctx.rootless);
    if !user_ns && ctx.rootless {
        v.err_help("namespaces.user", "rootless capexec needs a user namespace", "remove `user = false` or run capexec as root");
    }
    let mount_ns = ns.mount.unwrap_or(true);
    if !mount_ns {
        v.err_help("namespaces.mount", "the mount namespace cannot be turned off: the filesystem view is built in it", "remove `mount = false`");
    }
    let uts = ns.uts.unwrap_or(true);
    let hostname = match &ns.hostname {
        Some(h) if !uts => {
            v.err_help("namespaces.hostname", "a hostname needs its own UTS namespace", "remove `uts = false` or the hostname");
            h.clone()
        }
        Some(h) if !valid_hostname(h) => {
            v.err_help("namespaces.hostname", format!("invalid hostname `{h}`"), "use 1-64 letters, digits, - and .");
            h.clone()
        }
        Some(h) => h.clone(),
        // The host's: what syslog lines and the service's own messages name
        // (issue 19: every line said the unit's name instead).
        None => nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).filter(|h| valid_hostname(h)).unwrap_or_else(|| "localhost".into()),
    };
    // A daemon's pid file is read by host tools (pg_lsclusters, apachectl,
    // logrotate's `kill -USR1 $(cat /run/nginx.pid)`, chronyd's own next
    // start): as root it shares the host's pid namespace, so that the pid it
    // writes is the host's, unless it asks for its own. Its /proc then shows
    // its own processes only, and Landlock keeps its signals to itself; in a
    // user namespace of its own too (systemd's PrivateUsers=), where capexec
    // mounts that /proc for it (`resources::proc_tree`).
    let has_pid_file = raw.service.as_ref().is_some_and(|s| s.pid_file.is_some());
    let pid_ns = ns.pid.unwrap_or(ctx.rootless || !has_pid_file);
    let host_processes = fs.host_processes.unwrap_or(false);
    if host_processes && pid_ns {
        v.err_help(
            "filesystem.host_processes",
            "the host's processes cannot show in /proc: the service has a pid namespace of its own",
            match ctx.rootless {
                true => "rootless capexec always makes one; run the service as root",
                false => "set namespaces.pid = false",
            },
        );
    } else if host_processes && proc == ProcMode::None {
        v.err_help(
            "filesystem.host_processes",
            "there is no /proc to show the host's processes in (filesystem.proc = \"none\")",
            "set filesystem.proc = \"pid-only\" or \"full\"",
        );
    }
    if !pid_ns && ctx.rootless && proc != ProcMode::None {
        // A new proc instance needs a pid namespace that the service's user
        // namespace owns; as root capexec mounts the host's for it.
        v.err_help("namespaces.pid", "rootless, a /proc needs a pid namespace of the service's own", "keep pid = true, or set filesystem.proc = \"none\"");
    }
    let namespaces = NsSpec {
        user: user_ns,
        mount: true,
        pid: pid_ns,
        net,
        ipc: ns.ipc.unwrap_or(true),
        uts,
        cgroup: ns.cgroup.unwrap_or(true),
        hostname: if hostname.is_empty() { "capexec".into() } else { hostname },
        sysctls: Default::default(),
        join: Vec::new(),
        id_maps: None,
    };

    // --- preopen ---
    let preopen = preopens(&mut v, raw);
    let syslog_sockets = syslog_sockets(&mut v, &fs, dev, &mounts, &preopen);
    let devices = declared_devices(&mut v, &fs, dev);

    // --- landlock ---
    let ll = raw.landlock.clone().unwrap_or_default();
    let landlock = LandlockSpec {
        mode: v.choice("landlock.mode", ll.mode.as_deref(), &[("required", Enforcement::Required), ("best-effort", Enforcement::BestEffort)]),
        bind_tcp: tcp_ports(&mut v, "landlock.bind_tcp", ll.bind_tcp.as_deref()),
        connect_tcp: tcp_ports(&mut v, "landlock.connect_tcp", ll.connect_tcp.as_deref()),
        scope_abstract_unix: ll.scope_abstract_unix.unwrap_or(true),
        scope_signals: ll.scope_signals.unwrap_or(true),
    };

    // --- seccomp ---
    let seccomp = seccomp(&mut v, raw);

    // --- capabilities ---
    let raw_caps = raw.capabilities.as_ref();
    let capabilities = capability_list(&mut v, "capabilities.keep", raw_caps.and_then(|c| c.keep.as_ref()));
    let capability_bound = raw_caps.and_then(|c| c.bound.as_ref()).map(|b| capability_list(&mut v, "capabilities.bound", Some(b)));
    if let Some(bound) = &capability_bound {
        for cap in capabilities.iter().filter(|c| !bound.contains(c)) {
            v.err_help(
                "capabilities.keep",
                format!("{cap} is outside capabilities.bound, the most this service may be given"),
                format!("remove {cap} from keep, or add it to bound if the service needs it"),
            );
        }
    }

    // A capability counts in the user namespace that owns the resource: in
    // the service's own one it reaches its own network namespace, never the
    // host's (issue 19: caddy could not bind :80 and nothing said why). Under
    // net = "host" the broker binds for the service, and keeps
    // CAP_NET_BIND_SERVICE on the host for the low ports of landlock.bind_tcp.
    if user_ns && net == NetMode::Host {
        let brokered_low = !landlock.bind_tcp.contains(&0) && landlock.bind_tcp.iter().any(|p| *p < 1024);
        for cap in [caps::Capability::CAP_NET_BIND_SERVICE, caps::Capability::CAP_NET_RAW, caps::Capability::CAP_NET_ADMIN, caps::Capability::CAP_NET_BROADCAST]
        {
            if !capabilities.contains(&cap) || (cap == caps::Capability::CAP_NET_BIND_SERVICE && brokered_low) {
                continue;
            }
            let what = match cap {
                caps::Capability::CAP_NET_BIND_SERVICE => {
                    "no port below 1024 is listed in landlock.bind_tcp, where the broker binds it with the capability on the host: list the port there, \
                     or declare it as [[preopen.listen]]"
                }
                _ => "drop it, or remove namespaces.user = true (as root a service runs in the host's user namespace unless it asks for its own)",
            };
            v.warnings.push(format!(
                "capabilities.keep has {cap}, which holds only in the service's own user namespace and so has no effect on the host's network \
                 (namespaces.net = \"host\"): {what}"
            ));
        }
    }

    // In the host's user namespace (as root, by default) a kept capability is
    // the host's. Say so for those whose reach goes past the service's own
    // files, processes and namespaces.
    if !user_ns {
        use caps::Capability as C;
        for cap in &capabilities {
            let reach = match cap {
                C::CAP_SYS_ADMIN => "most of the kernel's administration (what seccomp does not refuse: quotas, some ioctls, sethostname and more)",
                C::CAP_SYS_MODULE | C::CAP_SYS_RAWIO | C::CAP_SYS_BOOT => "the kernel itself, if the allowlist lets the calls through",
                C::CAP_BPF | C::CAP_PERFMON => "BPF programs and performance monitoring of the whole host, if the allowlist lets the calls through",
                C::CAP_MAC_ADMIN | C::CAP_MAC_OVERRIDE => "the host's LSM policy",
                C::CAP_SETFCAP => "file capabilities on every file the service may write",
                C::CAP_AUDIT_CONTROL | C::CAP_AUDIT_WRITE | C::CAP_SYSLOG => "the host's audit and kernel log",
                C::CAP_SYS_TIME => "the host's clock",
                C::CAP_NET_ADMIN if net == NetMode::Host => "the host's network configuration",
                _ => continue,
            };
            v.warnings.push(format!(
                "capabilities.keep has {cap}, which acts on the whole host ({reach}): the service runs in the host's user namespace; \
                 keep it only if the program needs it, or set namespaces.user = true to confine it to the service's own namespaces"
            ));
        }
    }

    // All of /run in the view: every daemon's socket there is the service's
    // to connect to (Landlock has no rule for it), but the host's control
    // sockets, which the view hides (HOST_CONTROLS).
    if mounts.iter().any(|m| m.path == Path::new("/run") && !matches!(m.kind, MountKind::Inaccessible | MountKind::Tmpfs)) {
        v.warnings.push(
            "filesystem has all of the host's /run: the service may connect to every daemon's socket there (a database's, haproxy's admin socket), \
             though capexec hides the host's control sockets (systemd's, the system bus, container engines'); \
             list the directories under /run it needs instead (runtime_directory = [\"NAME\"] for its own)"
                .into(),
        );
    }
    // capexec's own directories in a writable mount: a service that may
    // write there as root could leave a declaration the daemon loads (and,
    // with `autostart`, starts) the next time it starts, or its state.
    let writes_as_root = !user_ns && (user.as_ref().is_some_and(|u| u.uid == 0) || capabilities.contains(&caps::Capability::CAP_DAC_OVERRIDE));
    if writes_as_root {
        for m in mounts.iter().filter(|m| matches!(m.kind, MountKind::ReadWrite | MountKind::ReadWriteExec)) {
            if let Some(own) = CAPEXEC_DIRS.iter().find(|d| Path::new(d).starts_with(&m.path)) {
                v.warnings.push(format!(
                    "filesystem.read_write or read_write_exec has {}, which holds capexec's own {own} (declarations the daemon loads, its sockets or its state), \
                     and the service may write there as root: it could leave a unit for the daemon's next start; \
                     give it its own directory instead (runtime_directory = [\"NAME\"] for /run/NAME, state_directory for /var/lib/NAME)",
                    m.path.display()
                ));
            }
        }
    }

    // --- rlimits ---
    let mut rlimits = BTreeMap::new();
    for (k, r) in raw.rlimits.clone().unwrap_or_default() {
        let key = format!("rlimits.{k}");
        let Some(resource) = Resource::from_name(&k) else {
            let names: Vec<&str> = Resource::ALL.iter().map(|r| r.name()).collect();
            v.err_help(&key, format!("unknown resource limit `{k}`"), format!("allowed: {}", names.join(", ")));
            continue;
        };
        let sized = |l: &LimitValue| matches!(l, LimitValue::Size(_));
        let size_given = match &r {
            RawRlimit::Both(l) => sized(l),
            RawRlimit::Split { soft, hard } => sized(soft) || sized(hard),
        };
        if size_given && !resource.counts_bytes() {
            let bytes: Vec<&str> = Resource::ALL.iter().filter(|r| r.counts_bytes()).map(|r| r.name()).collect();
            v.err_help(
                &key,
                format!("is a size, but `{k}` does not count bytes"),
                format!("write a plain number; sizes (\"64M\") are for {}", bytes.join(", ")),
            );
            continue;
        }
        let lim = |l: LimitValue| match l {
            LimitValue::Value(n) | LimitValue::Size(n) => Some(n),
            LimitValue::Infinity => None,
        };
        let (soft, hard) = match r {
            RawRlimit::Both(l) => (lim(l), lim(l)),
            RawRlimit::Split { soft, hard } => (lim(soft), lim(hard)),
        };
        let soft_gt_hard = match (soft, hard) {
            (None, Some(_)) => true,
            (Some(s), Some(h)) => s > h,
            _ => false,
        };
        if soft_gt_hard {
            v.err(&key, "the soft limit is above the hard limit");
        }
        rlimits.insert(resource, Rlimit { soft, hard });
    }
    // No realtime scheduling unless declared (systemd's RestrictRealtime=):
    // without CAP_SYS_NICE, an RLIMIT_RTPRIO of 0 refuses SCHED_FIFO/RR, and
    // lowering a limit needs no privilege.
    rlimits.entry(Resource::Rtprio).or_insert(Rlimit { soft: Some(0), hard: Some(0) });
    // A task limit for every service, so that a fork bomb meets its own limit
    // and not the host's. RLIMIT_NPROC is counted per user namespace and uid
    // (Linux 5.14+): in the service's own user namespace it counts the
    // service's tasks only. `[limits] tasks_max` (a cgroup) sets it too.
    let tasks_max = raw.limits.as_ref().and_then(|l| l.tasks_max);
    let nproc = tasks_max.unwrap_or(DEFAULT_TASKS);
    rlimits.entry(Resource::Nproc).or_insert(Rlimit { soft: Some(nproc), hard: Some(nproc) });

    let service = supervision(&mut v, raw);
    if service.kind == ServiceType::Forking && !pid_ns && service.pid_file.is_none() {
        // Without a pid namespace capexec cannot tell the daemon's processes
        // from the host's by anything but the pid file.
        v.err_help("service.type", "a forking service without a pid namespace needs service.pid_file", "set service.pid_file, or keep namespaces.pid = true");
    }
    let limits = limits(&mut v, raw);
    let broker = broker(&mut v, raw);
    if broker.guard && net != NetMode::Host {
        v.err_help(
            "broker.net.guard",
            "is for namespaces.net = \"host\"",
            "in a network namespace of its own the guard already holds every socket the service has in the host's network (its preopens and what its broker makes for its grants): remove the key",
        );
    }
    if !broker.ping.is_empty() && net != NetMode::Host {
        v.err_help(
            "broker.net.ping",
            "is for namespaces.net = \"host\"",
            "a ping socket is made in the service's own network, which has only a loopback: set namespaces.net = \"host\" (the network guard then holds \
             every socket of the service to its [broker.net] grants)",
        );
    }
    if net == NetMode::Host {
        // There the service's TCP binds and connects meet Landlock's port
        // rules before the network guard's address grants: a TCP grant
        // whose ports Landlock refuses grants nothing.
        for (key, grants, ports) in [("connect", &broker.connect, &landlock.connect_tcp), ("bind", &broker.bind, &landlock.bind_tcp)] {
            for g in grants.iter().filter(|g| g.proto == Some(crate::grants::Proto::Tcp)) {
                let (lo, hi) = g.ports;
                if !ports.contains(&0) && !(lo..=hi).all(|p| ports.contains(&p)) {
                    v.warnings.push(format!(
                        "broker.net.{key} grants {g}, but with the host's network a TCP {key} needs its port in landlock.{key}_tcp too, which lacks {}: add the port there",
                        if lo == hi { lo.to_string() } else { format!("ports of {lo}-{hi}") }
                    ));
                }
            }
        }
    }
    let mut seccomp = seccomp;
    seccomp.ping = !broker.ping.is_empty();
    if seccomp.allowed.contains("io_uring_setup") {
        // Requests on a ring run in the kernel without passing seccomp: what
        // the argument rules and the transparent broker decide is not decided
        // for them (Landlock, the view and the network guard still hold).
        v.warnings.push(
            "io_uring is allowed: its requests bypass seccomp, so these limits do not hold for them: the socket protocol \
             allowlist (an MPTCP or SCTP socket reaches TCP ports that landlock.connect_tcp does not grant), the Fast Open \
             refusal, the setuid/setgid refusal for created files, and the broker's check of listen() (a random port on \
             every address); drop @io-uring unless the program needs it (see docs/security.md)"
                .into(),
        );
    }
    if !broker.connect.is_empty() || !broker.bind.is_empty() || !broker.bind_unix.is_empty() {
        // The transparent broker answers these in place of the kernel; a
        // syscall the allowlist denies never reaches it (the denial wins).
        seccomp.allowed.union(&BROKER_NET_SYSCALLS);
    }
    if !broker.is_empty() {
        // The explicit connection to the broker (capexec-client).
        seccomp.allowed.union(&BROKER_CLIENT_SYSCALLS);
    }
    if !broker.dns.names.is_empty() {
        // The C library's resolver talking to the stub on 127.0.0.1:53.
        seccomp.allowed.union(&BROKER_DNS_SYSCALLS);
    }
    if broker.fs.iter().any(|g| g.rights.remove) {
        // Removals of granted files, which the broker answers.
        seccomp.allowed.union(&syscalls::Set::of(&["unlink", "unlinkat"]));
    }
    if exec.memory_deny_write_execute == Some(true) {
        // A memfd is written at run time and then mapped or executed from a
        // mount without noexec: code the kernel's MDWE never sees being made.
        if seccomp.declared.iter().any(|d| d == "memfd_create") {
            v.err_help(
                "seccomp.allow",
                "memfd_create is allowed by name, but exec.memory_deny_write_execute = true refuses it",
                "a memfd's contents can be mapped executable after they are written; drop one of the two",
            );
        }
        seccomp.allowed.subtract(&syscalls::Set::of(&["memfd_create"]));
        // Nor a file it wrote and then maps executable.
        if raw.filesystem.as_ref().and_then(|f| f.read_write_exec.as_ref()).is_some_and(|l| !l.is_empty()) {
            v.err_help(
                "filesystem.read_write_exec",
                "exec.memory_deny_write_execute = true, but code written to a read_write_exec path can be run",
                "drop one of the two: memory_deny_write_execute keeps every writable path noexec",
            );
        }
    }
    if service.kind == ServiceType::Notify {
        // sd_notify(3) opens a datagram socket and sends to NOTIFY_SOCKET: a notify
        // service that could not do that could never become ready.
        seccomp.allowed.union(&NOTIFY_SYSCALLS);
    }

    // A preopened directory is what the view shows at its path (see
    // capexec-sandbox's plan): one the view masks would be an empty mask.
    let filesystem = FsSpec {
        system,
        mounts,
        private_tmp,
        dev,
        syslog_sockets,
        proc,
        host_processes,
        directories,
        directories_owner,
        pid_file,
        own_files,
        as_owner,
        overlay,
        copy_up,
        root: None,
        filesystems: Vec::new(),
        devices,
    };
    // Init changes into the working directory before the exec: one the view
    // does not have fails every start (kresd's /var/lib/knot-resolver, the
    // unit's WorkingDirectory=, was left out of a view that learning mined).
    let wd = &working_directory;
    let deepest = filesystem.mounts.iter().filter(|m| wd.starts_with(&m.path)).max_by_key(|m| m.path.components().count());
    let in_view = wd == Path::new("/")
        || ["/proc", "/dev"].iter().any(|d| wd.starts_with(d))
        || (filesystem.private_tmp && wd.starts_with("/tmp"))
        || filesystem.directories.iter().any(|d| wd.starts_with(&d.path))
        || deepest.is_some_and(|m| m.kind != MountKind::Inaccessible);
    if !in_view && filesystem.root.is_none() {
        v.err_help(
            "exec.working_directory",
            format!("{} is not in the filesystem view, and the service starts there", wd.display()),
            format!("add \"{}\" to filesystem.read_only (or read_write, if the service writes there)", wd.display()),
        );
    }
    // Landlock's rights go down the tree: a visible path inside a readable
    // mount is as readable as the mount.
    for m in filesystem.mounts.iter().filter(|m| m.kind == MountKind::Visible) {
        let above = filesystem.mounts.iter().rfind(|o| o.path != m.path && m.path.starts_with(&o.path));
        if let Some(o) = above.filter(|o| !matches!(o.kind, MountKind::Inaccessible | MountKind::Visible)) {
            v.warnings.push(format!(
                "filesystem.visible has {}, inside {} ({}), which lets the service read it: visible keeps a path unreadable only where nothing above it is readable",
                m.path.display(),
                o.path.display(),
                if o.kind == MountKind::Tmpfs { "a tmpfs" } else { "readable in the view" }
            ));
        }
    }
    // Checked from the host: a TCP address must be the host's, a socket
    // path one the host sees where the service made it.
    for (i, a) in service.ready_address.iter().enumerate() {
        let key = format!("service.ready_address[{i}]");
        match a {
            ReadyAddr::Tcp(_) if net != NetMode::Host => v.err_help(
                key,
                "the daemon checks the address from the host, and the service listens in its own network (namespaces.net = \"none\")",
                "preopen the listener instead ([[preopen.listen]]: it accepts from the start), or set namespaces.net = \"host\"",
            ),
            ReadyAddr::Unix(p)
                if filesystem.covering(p).is_none_or(|m| !matches!(m.kind, MountKind::ReadWrite | MountKind::ReadWriteExec))
                    && !broker.bind_unix.contains(p) =>
            {
                v.err_help(
                    key,
                    format!("{} is not in a read_write path or a directory capexec makes, so the host never sees the socket", p.display()),
                    "put the socket in a runtime_directory (unix:/run/NAME/NAME.sock) or a read_write path",
                )
            }
            _ => {}
        }
    }
    // The broker binds a Unix socket only where the service could not: in a
    // directory it may write, it binds the socket itself, and could make
    // the path lead elsewhere for the broker (a root process) to follow.
    for p in &broker.bind_unix {
        let dir = p.parent().unwrap_or(p);
        if let Some(m) =
            filesystem.covering(dir).filter(|m| matches!(m.kind, MountKind::ReadWrite | MountKind::ReadWriteExec | MountKind::Tmpfs | MountKind::Overlay))
        {
            v.err_help(
                format!("broker.net.bind[unix:{}]", p.display()),
                format!("the service may write {} (through {}), so it binds the socket there itself", dir.display(), m.path.display()),
                "drop this grant; a Unix socket bind grant is for a directory the service cannot write, such as /run",
            );
        }
    }
    let dirs = preopen.iter().filter_map(|p| if let PreopenKind::Directory { path } = &p.kind { Some(path) } else { None });
    for (i, path) in dirs.enumerate() {
        if filesystem.covering(path).is_some_and(|m| m.kind == MountKind::Inaccessible) {
            v.err_help(
                format!("preopen.directory[{i}].path"),
                format!("{} is inaccessible in [filesystem]", path.display()),
                "a preopened directory gives what the view shows there: take it out of `inaccessible`, or drop the preopen",
            );
        }
    }

    // Paths to the network that nothing closes yet (docs/security.md, "Still
    // open"): said where a declaration is affected, not left for the user to find.
    // (Host UDP sockets of `net = "none"` services are capexec-sandbox's network
    // guard's; it holds at most this many grants.)
    let net_grants = broker.bind.len() + broker.connect.len() + broker.bind_unix.len() + broker.ping.len();
    if net_grants > MAX_NET_GRANTS {
        v.err_help(
            "broker.net",
            format!("{net_grants} bind, connect and ping grants; at most {MAX_NET_GRANTS} are allowed"),
            "merge addresses into ranges (ADDRESS/PREFIX) and ports into PORT-PORT",
        );
    }

    let fakeroot = exec.fakeroot.unwrap_or(false);
    if fakeroot && (filesystem.overlay.is_none() || !user_ns) {
        v.err_help(
            "exec.fakeroot",
            "a fake root needs an overlaid view in its own user namespace: what it installs must land in the layers",
            "set filesystem.overlay (capexec run: --overlay DIR --fakeroot) and keep namespaces.user = true",
        );
    }
    let octal = |m: &str| (1..=4).contains(&m.len()) && m.bytes().all(|b| (b'0'..=b'7').contains(&b));
    // systemd's ranges (Nice=, OOMScoreAdjust=), the kernel's.
    let ranged = |v: &mut V, key: &str, value: Option<i64>, lo: i64, hi: i64, what: &str| {
        let n = value?;
        if (lo..=hi).contains(&n) {
            return i32::try_from(n).ok();
        }
        v.err_help(key, format!("{n} is out of range"), format!("{lo} to {hi}: {what}"));
        None
    };
    let nice =
        ranged(&mut v, "exec.nice", exec.nice, -20, 19, "lower runs first; a negative value needs CAP_SYS_NICE (as root, without a private user namespace)");
    let oom_score_adjust = ranged(
        &mut v,
        "exec.oom_score_adjust",
        exec.oom_score_adjust,
        -1000,
        1000,
        "-1000 keeps the kernel's OOM killer away, 1000 offers it first; lowering it needs CAP_SYS_RESOURCE",
    );
    let umask = exec.umask.as_ref().and_then(|m| match u32::from_str_radix(m, 8) {
        Ok(n) if n <= 0o777 && octal(m) => Some(n),
        _ => {
            v.err_help("exec.umask", format!("invalid umask `{m}`"), "an octal string of permission bits such as \"0027\" (systemd's UMask=)");
            None
        }
    });
    if !v.errors.is_empty() {
        return Err(DeclErrors(v.errors));
    }
    Ok(ServiceSpec {
        name: name.to_owned(),
        description: raw.description.clone().unwrap_or_default(),
        sources,
        exec: ExecSpec {
            argv,
            user: user.expect("no errors means the identity resolved"),
            environment,
            pass_environment,
            working_directory,
            memory_deny_write_execute: exec.memory_deny_write_execute.unwrap_or(false),
            ignore_sigpipe: exec.ignore_sigpipe.unwrap_or(false),
            umask,
            fakeroot,
            oom_score_adjust,
            nice,
            allow_new_privileges: false,
            condition,
            start_pre,
            start_post,
            reload,
            stop,
        },
        filesystem,
        namespaces,
        preopen,
        landlock,
        seccomp,
        capabilities,
        capability_bound,
        rlimits,
        service,
        limits,
        broker,
        warnings: v.warnings,
    })
}

fn identity(v: &mut V, unit: &str, exec: &RawExec) -> Option<Identity> {
    let (user, group) = (exec.user.as_ref(), exec.group.as_ref());
    let ctx = v.ctx.clone();
    let dynamic = user.is_none() || matches!(user, Some(NameOrId::Name(n)) if n == "dynamic");
    if ctx.rootless {
        // Only the caller's own uid (and gid) can be mapped into a rootless user
        // namespace. A declared system user is honoured when capexec runs as root;
        // rootless, the service runs as the caller instead, and says so.
        if !dynamic {
            let declared = match user? {
                NameOrId::Name(n) => n.clone(),
                NameOrId::Id(i) => i.to_string(),
            };
            let same = match user? {
                NameOrId::Id(i) => *i == ctx.uid,
                NameOrId::Name(n) => nix::unistd::User::from_name(n).ok().flatten().is_some_and(|u| u.uid.as_raw() == ctx.uid),
            };
            if !same {
                v.warnings.push(format!("exec.user = \"{declared}\" is used only when capexec runs as root; running rootless as your own uid {}", ctx.uid));
            }
        }
        if user.is_none() && group.is_some() {
            v.warnings.push(format!("exec.group is used only when capexec runs as root; running rootless with your own gid {}", ctx.gid));
        }
        if exec.supplementary_groups.as_ref().is_some_and(|g| !g.is_empty()) {
            v.warnings.push("exec.supplementary_groups is used only when capexec runs as root; rootless, the service keeps your own groups".into());
        }
        let name = crate::ids::user_name(ctx.uid);
        return Some(Identity { uid: ctx.uid, gid: ctx.gid, user_name: name, how: IdentitySource::Caller, home: None, groups: Vec::new() });
    }
    let (uid, user_name, primary, how) = if dynamic {
        let uid = dynamic_uid(unit);
        (uid, None, Some(uid), IdentitySource::Dynamic)
    } else {
        let (uid, name, primary) = v.name_id("exec.user", user?, true)?;
        (uid, name, primary, IdentitySource::Declared)
    };
    let gid = match group {
        Some(g) => v.name_id("exec.group", g, false)?.0,
        None => match primary {
            Some(g) => g,
            None => {
                v.err_help("exec.user", format!("uid {uid} has no passwd entry, so it has no primary group"), "set exec.group too");
                return None;
            }
        },
    };
    // Only for a user with a passwd entry (not root: its HOME stays `/`, as
    // the root view has no /root).
    let home = match how {
        IdentitySource::Declared if uid != 0 && user_name.is_some() => crate::ids::home_of(uid),
        _ => None,
    };
    // As initgroups(3) does for a login: the user's groups, then the declared
    // ones (systemd's SupplementaryGroups=). Not for root, whose groups in
    // /etc/group are there for logins, not for services.
    let mut groups = match (&how, &user_name) {
        (IdentitySource::Declared, Some(n)) if uid != 0 => crate::ids::groups_of(n, gid),
        _ => Vec::new(),
    };
    for (i, g) in exec.supplementary_groups.iter().flatten().enumerate() {
        groups.extend(v.name_id(&format!("exec.supplementary_groups[{i}]"), g, false).map(|(gid, _, _)| gid));
    }
    groups.retain(|g| *g != gid);
    groups.sort_unstable();
    groups.dedup();
    if groups.len() > 64 {
        v.err_help("exec.supplementary_groups", format!("{} supplementary groups", groups.len()), "a service may have at most 64");
    }
    Some(Identity { uid, gid, user_name, how, home, groups })
}

/// `[[exec.condition]]`, `[[exec.start_pre]]` and the other command lists.
fn commands(v: &mut V, field: &str, list: Option<&[crate::raw::RawCommand]>) -> Vec<Command> {
    let mut out = Vec::new();
    for (i, c) in list.unwrap_or_default().iter().enumerate() {
        let key = format!("{field}[{i}]");
        let argv: Vec<String> = c.argv.iter().flatten().map(|a| v.expand(a)).collect();
        match argv.first() {
            None => v.err_help(format!("{key}.argv"), "missing: the command to run", "e.g. argv = [\"/usr/sbin/nginx\", \"-t\", \"-q\"]"),
            Some(p) if !p.starts_with('/') => v.err_help(format!("{key}.argv[0]"), format!("`{p}` is not an absolute path"), "give the program's full path"),
            _ => {}
        }
        if argv.iter().any(|a| a.contains('\0')) {
            v.err(format!("{key}.argv"), "an argument contains a NUL byte");
        }
        let privileged = c.privileged.unwrap_or(false);
        if privileged && v.ctx.rootless {
            v.err_help(
                format!("{key}.privileged"),
                "a privileged command runs as root on the host, which rootless capexec cannot",
                "remove privileged = true, or run capexec as root",
            );
        }
        out.push(Command { argv, ignore_failure: c.ignore_failure.unwrap_or(false), privileged });
    }
    out
}

/// A stable uid for a unit in systemd's dynamic range, skipping ids that
/// /etc/passwd or /etc/group already use (the local files, not NSS: see ids.rs).
pub fn dynamic_uid(unit: &str) -> u32 {
    let span = DYNAMIC_UID_MAX - DYNAMIC_UID_MIN + 1;
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in unit.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    for i in 0..span {
        let uid = DYNAMIC_UID_MIN + (h.wrapping_add(i) % span);
        if !crate::ids::id_in_local_files(uid) {
            return uid;
        }
    }
    DYNAMIC_UID_MIN + h % span
}

/// The character devices a declaration may add to the minimal /dev
/// (systemd's `DeviceAllow=`): each gives what its driver gives its opener,
/// and none reaches memory, disks, the host's terminals, input or the
/// hardware watchdog. A TUN device (a VPN's: OpenVPN, its interface in the
/// service's own network unless it shares the host's and keeps
/// CAP_NET_ADMIN), FUSE, PPP, KVM and vhost's.
pub const DEVICES: &[&str] = &["/dev/net/tun", "/dev/fuse", "/dev/ppp", "/dev/kvm", "/dev/vhost-net", "/dev/vhost-vsock"];

/// The host's character device at `path` as a node of the view (its
/// numbers, mode and owner); None for another kind of file.
pub fn host_device(path: &Path) -> std::io::Result<Option<DeviceNode>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path)?;
    Ok(m.file_type().is_char_device().then(|| DeviceNode {
        path: path.to_path_buf(),
        kind: DeviceKind::Char,
        major: libc::major(m.rdev()),
        minor: libc::minor(m.rdev()),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        usable: true,
    }))
}

/// `filesystem.devices`: nodes of `DEVICES`, as the host has them (its
/// numbers, mode and owner), in a minimal /dev; `-` skips one the host
/// lacks (a module not loaded).
fn declared_devices(v: &mut V, fs: &crate::raw::RawFilesystem, dev: DevMode) -> Vec<DeviceNode> {
    let mut out: Vec<DeviceNode> = Vec::new();
    for (i, raw_p) in fs.devices.iter().flatten().enumerate() {
        let key = format!("filesystem.devices[{i}]");
        let (optional, raw_p) = raw_p.strip_prefix('-').map_or((false, raw_p.as_str()), |s| (true, s));
        let Some(p) = v.path(&key, raw_p) else { continue };
        if !DEVICES.iter().any(|d| p == Path::new(d)) {
            v.err_help(&key, format!("{} is not a device capexec gives a service", p.display()), format!("these are: {}", DEVICES.join(", ")));
            continue;
        }
        if dev != DevMode::Minimal {
            v.err_help(&key, "a device goes into the minimal /dev", "remove filesystem.dev = \"none\"");
            continue;
        }
        if out.iter().any(|d| d.path == p) {
            v.err_help(&key, format!("{} is listed twice", p.display()), "list each device once");
            continue;
        }
        match host_device(&p) {
            Ok(Some(node)) => out.push(node),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional => {}
            Ok(None) => v.err(&key, format!("{} is not a character device on this host", p.display())),
            Err(e) => v.err_help(
                &key,
                format!("{}: {e}", p.display()),
                "load its module (modprobe tun), or prefix the path with `-` to go without it where the host lacks it",
            ),
        }
    }
    out
}

/// `filesystem.syslog_sockets`: each a `dev/log` below a chroot, whose `dev`
/// directory shows capexec's socket directory instead (so no declared path
/// may be in it), in a minimal /dev, for a service that does
/// not bind /dev/log itself (which gets no syslog socket of capexec's).
fn syslog_sockets(v: &mut V, fs: &crate::raw::RawFilesystem, dev: DevMode, mounts: &[Mount], preopen: &[Preopen]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let own_dev_log = preopen
        .iter()
        .any(|p| matches!(&p.kind, PreopenKind::Listen { address: ListenAddr::Unix(a) | ListenAddr::UnixDgram(a), .. } if a == Path::new("/dev/log")));
    for (i, raw_p) in fs.syslog_sockets.iter().flatten().enumerate() {
        let key = format!("filesystem.syslog_sockets[{i}]");
        let Some(p) = v.path(&key, raw_p) else { continue };
        let dir = p.parent().unwrap_or(Path::new("/"));
        if dir.file_name().is_none_or(|n| n != "dev") || dir == Path::new("/dev") {
            v.err_help(
                &key,
                format!("{} is not in the `dev` directory of a chroot", p.display()),
                "name the /dev/log a chrooted daemon sends to, such as /var/lib/haproxy/dev/log (the service's own /dev/log is there already)",
            );
        } else if dev != DevMode::Minimal {
            v.err_help(&key, "the service has no syslog socket of capexec's (filesystem.dev is not \"minimal\")", "remove filesystem.dev, or this entry");
        } else if own_dev_log {
            v.err_help(&key, "the service binds /dev/log itself (a preopen), so it has no syslog socket of capexec's", "remove this entry");
        } else if let Some(m) = mounts.iter().find(|m| m.path.starts_with(dir)) {
            v.err_help(
                &key,
                format!("{} is in {}, which shows capexec's syslog socket instead", m.path.display(), dir.display()),
                "keep other paths out of that directory",
            );
        } else if out.contains(&p) {
            v.err_help(&key, format!("{} is listed twice", p.display()), "list each path once");
        } else {
            out.push(p);
        }
    }
    out
}

fn preopens(v: &mut V, raw: &RawUnit) -> Vec<Preopen> {
    let mut out = Vec::new();
    let Some(p) = &raw.preopen else { return out };
    for (i, l) in p.listen.iter().flatten().enumerate() {
        let key = format!("preopen.listen[{i}]");
        let Some(a) = &l.address else {
            v.err_help(format!("{key}.address"), "missing", "e.g. address = \"tcp:127.0.0.1:8080\", \"udp:[::1]:53\" or \"unix:/run/app.sock\"");
            continue;
        };
        let Some(address) = listen_addr(v, &format!("{key}.address"), a) else {
            continue;
        };
        if let Some(e) = &l.env {
            if !valid_env_name(e) {
                v.err(format!("{key}.env"), format!("invalid variable name `{e}`"));
            }
        }
        let socket_mode = match (&l.socket_mode, &address) {
            (None, _) => None,
            (Some(m), ListenAddr::Unix(_) | ListenAddr::UnixDgram(_)) => match u32::from_str_radix(m, 8) {
                Ok(n) if n <= 0o777 => Some(n),
                _ => {
                    v.err_help(format!("{key}.socket_mode"), format!("invalid mode `{m}`"), "an octal string such as \"0660\"");
                    None
                }
            },
            (Some(_), _) => {
                v.err(format!("{key}.socket_mode"), "socket_mode applies to unix sockets only");
                None
            }
        };
        let name = preopen_name(v, &format!("{key}.name"), l.name.as_deref(), &format!("listen{i}"));
        out.push(Preopen { name, kind: PreopenKind::Listen { address, backlog: l.backlog.unwrap_or(511), env: l.env.clone(), socket_mode } });
    }
    for (i, f) in p.file.iter().flatten().enumerate() {
        let key = format!("preopen.file[{i}]");
        let Some(path) = f.path.as_ref().and_then(|p| v.path(&format!("{key}.path"), p)) else {
            if f.path.is_none() {
                v.err(format!("{key}.path"), "missing: the file to open");
            }
            continue;
        };
        let mode = match f.mode.as_deref().unwrap_or("read") {
            "read" => FileMode::Read,
            "write" => FileMode::Write,
            "read-write" => FileMode::ReadWrite,
            "append" => FileMode::Append,
            other => {
                v.err_help(format!("{key}.mode"), format!("unknown mode `{other}`"), "allowed: \"read\" (default), \"write\", \"read-write\", \"append\"");
                continue;
            }
        };
        let create = f.create.unwrap_or(false);
        if create && mode == FileMode::Read {
            v.err_help(format!("{key}.create"), "a file opened for reading only cannot be created", "use mode = \"write\", \"read-write\" or \"append\"");
        }
        let name = preopen_name(v, &format!("{key}.name"), f.name.as_deref(), &format!("file{i}"));
        out.push(Preopen { name, kind: PreopenKind::File { path, mode, create } });
    }
    for (i, d) in p.directory.iter().flatten().enumerate() {
        let key = format!("preopen.directory[{i}]");
        let Some(path) = d.path.as_ref().and_then(|p| v.path(&format!("{key}.path"), p)) else {
            if d.path.is_none() {
                v.err(format!("{key}.path"), "missing: the directory to open");
            }
            continue;
        };
        let name = preopen_name(v, &format!("{key}.name"), d.name.as_deref(), &format!("dir{i}"));
        out.push(Preopen { name, kind: PreopenKind::Directory { path } });
    }
    let mut seen = BTreeSet::new();
    for p in &out {
        if !seen.insert(p.name.clone()) {
            v.err_help("preopen", format!("two preopened resources are named `{}`", p.name), "give each a distinct `name`");
        }
    }
    out
}

/// Landlock makes one rule per port: a range wider than this is refused.
pub const MAX_LANDLOCK_PORTS: u32 = 1024;

/// The ports of `landlock.bind_tcp` or `connect_tcp`, ranges expanded.
fn tcp_ports(v: &mut V, key: &str, raw: Option<&[crate::raw::RawPorts]>) -> BTreeSet<u16> {
    use crate::raw::RawPorts;
    let mut out = BTreeSet::new();
    for (i, p) in raw.unwrap_or_default().iter().enumerate() {
        let key = format!("{key}[{i}]");
        let help = "a port number, or a range written \"FIRST-LAST\" such as \"40000-40100\"";
        match p {
            RawPorts::One(n) => {
                out.insert(*n);
            }
            RawPorts::Range(r) => {
                match r.split_once('-').map_or((r.trim().parse::<u16>(), r.trim().parse::<u16>()), |(a, b)| (a.trim().parse::<u16>(), b.trim().parse::<u16>()))
                {
                    (Ok(a), Ok(b)) if a <= b && u32::from(b - a) < MAX_LANDLOCK_PORTS => out.extend(a..=b),
                    (Ok(a), Ok(b)) if a <= b => v.err_help(
                        key,
                        format!("the range {a}-{b} has {} ports; Landlock makes a rule per port, at most {MAX_LANDLOCK_PORTS} per range", u32::from(b - a) + 1),
                        "narrow it, or use namespaces.net = \"none\" with [broker.net] grants, whose ranges the broker checks",
                    ),
                    (Ok(a), Ok(b)) => v.err_help(key, format!("the range {a}-{b} is empty"), help),
                    _ => v.err_help(key, format!("`{r}` is not a port range"), help),
                }
            }
        }
    }
    out
}

fn preopen_name(v: &mut V, key: &str, name: Option<&str>, default: &str) -> String {
    match name {
        None => default.to_owned(),
        Some(n) if !n.is_empty() && n.len() <= 255 && n.chars().all(|c| c.is_ascii_graphic() && c != ':') => n.to_owned(),
        Some(n) => {
            v.err_help(key, format!("invalid name `{n}`"), "1-255 printable ASCII characters without `:` (LISTEN_FDNAMES separates names with it)");
            default.to_owned()
        }
    }
}

fn listen_addr(v: &mut V, key: &str, a: &str) -> Option<ListenAddr> {
    let help =
        "write tcp:HOST:PORT, udp:HOST:PORT (IPv6 as [::1]:PORT), unix:/ABSOLUTE/PATH or unixgram:/ABSOLUTE/PATH (a datagram socket, as syslog's /dev/log)";
    let (family, rest) = match a.split_once(':') {
        Some(x) => x,
        None => {
            v.err_help(key, format!("`{a}` has no family prefix"), help);
            return None;
        }
    };
    match family {
        "tcp" | "udp" => match rest.parse::<SocketAddr>() {
            Ok(sa) if family == "tcp" => Some(ListenAddr::Tcp(sa)),
            Ok(sa) => Some(ListenAddr::Udp(sa)),
            Err(_) => {
                v.err_help(key, format!("`{rest}` is not an IP address with a port"), help);
                None
            }
        },
        "unix" => v.path(key, rest).map(ListenAddr::Unix),
        "unixgram" => v.path(key, rest).map(ListenAddr::UnixDgram),
        other => {
            v.err_help(key, format!("unknown socket family `{other}`"), help);
            None
        }
    }
}

/// The task limit (RLIMIT_NPROC) of a declaration that sets none: systemd's
/// default TasksMax= on a 32768-pid system is 4915; threads count as tasks.
pub const DEFAULT_TASKS: u64 = 4096;

fn seccomp(v: &mut V, raw: &RawUnit) -> SeccompSpec {
    let sc = raw.seccomp.clone().unwrap_or_default();
    let declared = sc.allow.clone().unwrap_or_else(|| vec!["@system-service".to_owned()]);
    // @default is always allowed: without it nothing can even exec.
    let mut allowed = syscalls::expand(syscalls::group("@default").expect("@default exists"));
    for (field, list, add) in [("allow", &declared, true), ("deny", &sc.deny.clone().unwrap_or_default(), false)] {
        for (i, name) in list.iter().enumerate() {
            let set = if let Some(g) = syscalls::group(name) {
                syscalls::expand(g)
            } else if let Some(c) = syscalls::Syscall::named(name) {
                let mut set = syscalls::Set::EMPTY;
                set.insert(c);
                set
            } else {
                let hint = match syscalls::suggest(name) {
                    Some(s) => format!("did you mean `{s}`? groups and names are listed in docs/declaration.md"),
                    None => "see docs/declaration.md for the groups; single names are x86_64 syscall names".to_owned(),
                };
                v.err_help(format!("seccomp.{field}[{i}]"), format!("unknown syscall or group `{name}`"), hint);
                continue;
            };
            if add {
                allowed.union(&set);
            } else {
                allowed.subtract(&set);
            }
        }
    }
    let errno = match sc.errno.as_deref() {
        None => libc::EPERM,
        Some(e) => match ERRNO_NAMES.iter().find(|(n, _)| *n == e) {
            Some((_, n)) => *n,
            None => {
                let names: Vec<&str> = ERRNO_NAMES.iter().map(|(n, _)| *n).collect();
                v.err_help("seccomp.errno", format!("unknown errno `{e}`"), format!("allowed: {}", names.join(", ")));
                libc::EPERM
            }
        },
    };
    let action = v.choice("seccomp.action", sc.action.as_deref(), &[("errno", DenyAction::Errno(errno)), ("kill", DenyAction::Kill), ("log", DenyAction::Log)]);
    if sc.errno.is_some() && !matches!(action, DenyAction::Errno(_)) {
        v.err("seccomp.errno", "errno applies only with action = \"errno\"");
    }
    SeccompSpec { declared, allowed, action, ping: false, profile: None }
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && !k.starts_with(|c: char| c.is_ascii_digit()) && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty() && h.len() <= 64 && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Signals a service may be stopped with, by name (with or without SIG).
pub const STOP_SIGNALS: &[(&str, i32)] = &[
    ("SIGTERM", libc::SIGTERM),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGHUP", libc::SIGHUP),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGKILL", libc::SIGKILL),
];

/// Added to the allowlist of `type = "notify"` services (see docs/declaration.md).
pub const NOTIFY_SYSCALLS: syscalls::Set = syscalls::Set::of(&["socket", "connect", "sendmsg", "sendto"]);

/// An absolute path without `..`, in a directory below `/`: where capexec
/// may make a file for the service.
fn file_below_a_directory(path: &Path) -> bool {
    path.is_absolute() && !path.components().any(|c| matches!(c, Component::ParentDir)) && path.parent().is_some_and(|d| d != Path::new("/"))
}

/// The pid file capexec makes for the service: `service.pid_file` where
/// nothing of the view lets the service create it (a pid file directly in
/// /run, which the service must not be given whole: it holds capexec's own
/// /run/capexec, other daemons' sockets and pid files). The file alone is
/// then a writable mount, and capexec creates it before the start. `None`
/// when the pid file's directory is writable in the view already (a
/// runtime directory, a read_write path, the private /tmp).
fn pid_file_mount(v: &mut V, raw: &RawUnit, mounts: &mut BTreeMap<PathBuf, (MountKind, bool, Option<String>)>) -> Option<PathBuf> {
    let path = PathBuf::from(v.expand(raw.service.as_ref()?.pid_file.as_ref()?));
    // Not an absolute path: supervision() says so.
    if !file_below_a_directory(&path) {
        return None;
    }
    // One the service may create through its broker (a `[[broker.fs]]`
    // grant of that very path with `create`: atd makes its own with O_EXCL,
    // which a file made for it would fail) is the broker's to make.
    let grants = raw.broker.as_ref().and_then(|b| b.fs.as_ref()).into_iter().flatten();
    let creates = |g: &crate::raw::RawFsGrant| g.rights.iter().flatten().any(|r| r == "create");
    if grants.filter(|g| creates(g)).any(|g| g.path.as_ref().is_some_and(|p| Path::new(&v.expand(p)) == path)) {
        return None;
    }
    made_file_mount(v, "service.pid_file", path, mounts)
}

/// `filesystem.own_files`: the files capexec makes as it makes a pid file
/// (see [`pid_file_mount`]), those whose directory the view does not let
/// the service write: rpcbind's lock file directly in /run.
fn own_file_mounts(v: &mut V, raw: &RawUnit, mounts: &mut BTreeMap<PathBuf, (MountKind, bool, Option<String>)>) -> Vec<PathBuf> {
    const KEY: &str = "filesystem.own_files";
    let mut out = Vec::new();
    for p in raw.filesystem.as_ref().and_then(|f| f.own_files.as_ref()).into_iter().flatten() {
        let path = PathBuf::from(v.expand(p));
        if !file_below_a_directory(&path) {
            v.err_help(KEY, format!("`{}` is not an absolute path without `..` below a directory", path.display()), "e.g. own_files = [\"/run/app.lock\"]");
            continue;
        }
        if raw.service.as_ref().and_then(|s| s.pid_file.as_ref()).is_some_and(|f| path == Path::new(&v.expand(f))) {
            v.err_help(KEY, format!("{} is service.pid_file, which capexec makes already", path.display()), "list it once, as service.pid_file");
            continue;
        }
        out.extend(made_file_mount(v, KEY, path, mounts));
    }
    out
}

/// The mount of a file capexec makes for the service (`key` names it):
/// `Some` where the view does not let the service create it, `None` where
/// it may already, or where the view refuses it (said as an error).
fn made_file_mount(v: &mut V, key: &str, path: PathBuf, mounts: &mut BTreeMap<PathBuf, (MountKind, bool, Option<String>)>) -> Option<PathBuf> {
    // The deepest mount at or above it (parents sort before their children).
    let covering = mounts.iter().rev().find(|(m, _)| path.starts_with(m)).map(|(m, (kind, _, key))| (m.clone(), *kind, key.clone()));
    match covering {
        Some((m, kind, listed)) if m == path => {
            if !matches!(kind, MountKind::ReadWrite | MountKind::ReadWriteExec) {
                v.err_help(
                    key,
                    format!("{} is listed in {}, so the service cannot write it", path.display(), listed.as_deref().unwrap_or("the view")),
                    format!("take it out of that list: capexec makes {key} writable by itself"),
                );
            }
            None
        }
        Some((_, MountKind::ReadWrite | MountKind::ReadWriteExec | MountKind::Tmpfs | MountKind::Overlay, _)) => None,
        Some((m, MountKind::Inaccessible, listed)) => {
            v.err_help(
                key,
                format!("{} is inside {}, which {} makes inaccessible", path.display(), m.display(), listed.as_deref().unwrap_or("the view")),
                "put it in a directory the service may see, such as a runtime_directory",
            );
            None
        }
        _ => {
            mounts.insert(path.clone(), (MountKind::ReadWrite, false, Some(key.into())));
            Some(path)
        }
    }
}

fn supervision(v: &mut V, raw: &RawUnit) -> Supervision {
    let s = raw.service.clone().unwrap_or_default();
    let d = |x: Option<crate::raw::Duration>, default_ms: u64| x.map_or(std::time::Duration::from_millis(default_ms), |d| d.0);
    let kind = v.choice(
        "service.type",
        s.kind.as_deref(),
        &[("simple", ServiceType::Simple), ("exec", ServiceType::Exec), ("notify", ServiceType::Notify), ("forking", ServiceType::Forking)],
    );
    let pid_file = s.pid_file.as_ref().map(|p| {
        let path = PathBuf::from(v.expand(p));
        if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
            v.err_help("service.pid_file", format!("`{}` is not an absolute path without `..`", path.display()), "e.g. pid_file = \"/run/app/app.pid\"");
        }
        path
    });
    let mut ready_address = Vec::new();
    for (i, a) in s.ready_address.iter().flatten().enumerate() {
        let key = format!("service.ready_address[{i}]");
        match ReadyAddr::parse(&v.expand(a)) {
            Ok(r) => ready_address.push(r),
            Err(e) => v.err(&key, format!("`{a}`: {e}")),
        }
    }
    if !ready_address.is_empty() && !matches!(kind, ServiceType::Simple | ServiceType::Exec) {
        v.err_help(
            "service.ready_address",
            "is for type = \"simple\" or \"exec\" (a notify service says READY=1, a forking one is ready when its start ends)",
            "remove ready_address, or set service.type = \"simple\"",
        );
    }
    let restart = v.choice(
        "service.restart",
        s.restart.as_deref(),
        &[("on-failure", RestartPolicy::OnFailure), ("no", RestartPolicy::No), ("always", RestartPolicy::Always)],
    );
    let restart_delay = d(s.restart_delay, 100);
    let restart_delay_max = d(s.restart_delay_max, 30_000);
    if restart_delay > restart_delay_max {
        v.err("service.restart_delay", "is longer than service.restart_delay_max");
    }
    let start_limit_burst = s.start_limit_burst.unwrap_or(5);
    if start_limit_burst == 0 {
        v.err_help("service.start_limit_burst", "must be at least 1", "the number of starts allowed within start_limit_interval");
    }
    let start_limit_interval = d(s.start_limit_interval, 10_000);
    let stop_signal = match &s.stop_signal {
        None => libc::SIGTERM,
        Some(name) => {
            let up = name.to_ascii_uppercase();
            let full = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
            match STOP_SIGNALS.iter().find(|(n, _)| *n == full) {
                Some((_, n)) => *n,
                None => {
                    let names: Vec<&str> = STOP_SIGNALS.iter().map(|(n, _)| *n).collect();
                    v.err_help("service.stop_signal", format!("unknown or unsuitable signal `{name}`"), format!("allowed: {}", names.join(", ")));
                    libc::SIGTERM
                }
            }
        }
    };
    let mut success_exit_status = Vec::new();
    for (i, st) in s.success_exit_status.iter().flatten().enumerate() {
        let key = format!("service.success_exit_status[{i}]");
        match st {
            crate::raw::RawExitStatus::Code(c) if (1..=255).contains(c) => success_exit_status.push(*c as i32),
            crate::raw::RawExitStatus::Code(c) => v.err_help(key, format!("{c} is not an exit code"), "an exit code is 1..255 (0 is success anyway)"),
            crate::raw::RawExitStatus::Signal(name) => {
                let up = name.to_ascii_uppercase();
                let full = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
                match full.parse::<nix::sys::signal::Signal>() {
                    // The daemon sees a service a signal ended as 128 + its number.
                    Ok(sig) => success_exit_status.push(128 + sig as i32),
                    Err(_) => v.err_help(key, format!("unknown signal `{name}`"), "a code (143) or a signal name (SIGTERM)"),
                }
            }
        }
    }
    let watchdog = s.watchdog.map(|w| w.0);
    if watchdog == Some(std::time::Duration::ZERO) {
        v.err_help("service.watchdog", "must be longer than 0", "leave it out to turn the watchdog off");
    }
    Supervision {
        kind,
        restart,
        restart_delay,
        restart_delay_max,
        start_limit_burst,
        start_limit_interval,
        stop_signal,
        stop_timeout: d(s.stop_timeout, 10_000),
        ready_timeout: d(s.ready_timeout, 30_000),
        autostart: s.autostart.unwrap_or(false),
        watchdog,
        pid_file,
        ready_address,
        success_exit_status,
    }
}

fn limits(v: &mut V, raw: &RawUnit) -> Limits {
    let l = raw.limits.clone().unwrap_or_default();
    let memory_max = l.memory_max.and_then(|b| b.0);
    if memory_max.is_some_and(|m| m < 1 << 20) {
        v.err_help("limits.memory_max", "is below 1M", "a service needs at least a few MiB; write e.g. \"64M\"");
    }
    if l.tasks_max == Some(0) {
        v.err("limits.tasks_max", "must be at least 1");
    }
    if let Some(w) = l.cpu_weight {
        if !(1..=10000).contains(&w) {
            v.err_help("limits.cpu_weight", format!("{w} is out of range"), "1..10000; 100 is the default share");
        }
    }
    Limits { memory_max, tasks_max: l.tasks_max, cpu_weight: l.cpu_weight }
}

/// Syscalls a service with network grants needs to reach the broker through.
pub const BROKER_CLIENT_SYSCALLS: syscalls::Set = syscalls::Set::of(&["sendto", "sendmsg", "recvfrom", "recvmsg"]);

pub const BROKER_DNS_SYSCALLS: syscalls::Set =
    syscalls::Set::of(&["socket", "connect", "sendto", "sendmmsg", "recvfrom", "recvmsg", "poll", "ppoll", "getsockname", "setsockopt"]);

pub const BROKER_NET_SYSCALLS: syscalls::Set = syscalls::Set::of(&["socket", "bind", "connect", "listen", "getsockname", "getsockopt", "setsockopt"]);

fn broker(v: &mut V, raw: &RawUnit) -> crate::grants::BrokerSpec {
    use crate::grants::*;
    let b = raw.broker.clone().unwrap_or_default();
    let mut out = BrokerSpec { syslog: b.syslog.unwrap_or(false), ..Default::default() };
    for (i, g) in b.fs.clone().unwrap_or_default().iter().enumerate() {
        let key = format!("broker.fs[{i}]");
        let Some(raw_path) = &g.path else {
            v.err_help(format!("{key}.path"), "missing", "add e.g. path = \"/srv/data/**\"");
            continue;
        };
        let Some(path) = v.path(&format!("{key}.path"), raw_path) else { continue };
        let pattern = path.to_string_lossy().into_owned();
        if pattern.split('/').any(|c| c.contains("**") && c != "**") {
            v.err_help(format!("{key}.path"), format!("`**` must be a whole path component in `{pattern}`"), "write e.g. /srv/**/*.log");
            continue;
        }
        let base: PathBuf = path.components().take_while(|c| !has_wildcard(&c.as_os_str().to_string_lossy())).collect();
        // A pattern without wildcards names one file: pin its directory.
        let base = if base == path { path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/")) } else { base };
        let mut rights = FsRights::default();
        let names = g.rights.clone().unwrap_or_default();
        if names.is_empty() {
            v.err_help(
                format!("{key}.rights"),
                "missing or empty",
                "list what the service may do: rights = [\"read\"] (allowed: read, write, create, append, remove)",
            );
        }
        for (j, r) in names.iter().enumerate() {
            match r.as_str() {
                "read" => rights.read = true,
                "write" => rights.write = true,
                "create" => rights.create = true,
                "append" => rights.append = true,
                "remove" => rights.remove = true,
                other => v.err_help(format!("{key}.rights[{j}]"), format!("unknown right `{other}`"), "allowed: read, write, create, append, remove"),
            }
        }
        if rights.create && !rights.write && !rights.append {
            v.err_help(format!("{key}.rights"), "`create` needs `write` or `append`", "a file is created to be written: add \"write\" or \"append\"");
        }
        out.fs.push(FsGrant { pattern, base, rights });
    }
    let net_grants = b.net.clone().unwrap_or_default();
    out.guard = net_grants.guard.unwrap_or(false);
    for (field, list) in [("connect", &net_grants.connect), ("bind", &net_grants.bind)] {
        for (i, s) in list.clone().unwrap_or_default().iter().enumerate() {
            if let Some(path) = s.strip_prefix("unix:") {
                match check_unix_path(path) {
                    Ok(p) if field == "bind" => out.bind_unix.push(p),
                    Ok(_) => v.err_help(
                        format!("broker.net.{field}[{i}]"),
                        "a Unix socket is no connect grant",
                        "the service connects to a Unix socket by its path: put its directory in the view (filesystem.read_only)",
                    ),
                    Err(e) => v.err(format!("broker.net.{field}[{i}]"), e.to_string()),
                }
                continue;
            }
            match NetGrant::parse(s) {
                Ok(g) if field == "connect" => out.connect.push(g),
                Ok(g) => out.bind.push(g),
                Err(e) => v.err(format!("broker.net.{field}[{i}]"), e.to_string()),
            }
        }
    }
    for (i, s) in net_grants.ping.clone().unwrap_or_default().iter().enumerate() {
        match crate::grants::AddrRange::parse(s) {
            Ok(r) => out.ping.push(r),
            Err(e) => v.err_help(
                format!("broker.net.ping[{i}]"),
                match e {
                    crate::grants::NetGrantError::Prefix { .. } => e.to_string(),
                    _ => format!("`{s}` is not an IP address (a name is no ping grant, and there is no port)"),
                },
                "write ADDRESS[/PREFIX], e.g. \"192.0.2.1\", \"10.0.0.0/8\", \"::1\"",
            ),
        }
    }
    let dns = b.dns.clone().unwrap_or_default();
    for (i, n) in dns.names.clone().unwrap_or_default().iter().enumerate() {
        let name = n.trim_end_matches('.').to_ascii_lowercase();
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        let ok = !bare.is_empty()
            && bare.len() <= 253
            && bare.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        if ok {
            out.dns.names.push(name);
        } else {
            v.err_help(
                format!("broker.dns.names[{i}]"),
                format!("`{n}` is not a host name"),
                "write a name such as \"db.example.com\", or \"*.example.com\" for every name below it",
            );
        }
    }
    let families = dns.families.clone().unwrap_or_else(|| vec!["inet".into(), "inet6".into()]);
    for (i, f) in families.iter().enumerate() {
        match f.as_str() {
            "inet" => out.dns.inet = true,
            "inet6" => out.dns.inet6 = true,
            other => v.err_help(format!("broker.dns.families[{i}]"), format!("unknown family `{other}`"), "allowed: inet, inet6"),
        }
    }
    for (field, list, out_list) in [("pwd", &b.pwd, &mut out.pwd), ("grp", &b.grp, &mut out.grp)] {
        for (i, n) in list.clone().unwrap_or_default().iter().enumerate() {
            if n.is_empty() || n.len() > 32 || !n.bytes().all(|c| c.is_ascii_alphanumeric() || b"_-.$".contains(&c)) {
                v.err_help(format!("broker.{field}[{i}]"), format!("`{n}` is not a user or group name"), "use the name as /etc/passwd or /etc/group spells it");
            } else {
                out_list.push(n.clone());
            }
        }
    }
    for (i, k) in b.sysctl.clone().unwrap_or_default().iter().enumerate() {
        let ok = !k.is_empty() && k.split(['.', '/']).all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if ok {
            out.sysctl.push(k.replace('/', "."));
        } else {
            v.err_help(format!("broker.sysctl[{i}]"), format!("`{k}` is not a sysctl key"), "write it as sysctl(8) does, e.g. \"net.core.somaxconn\"");
        }
    }
    out
}
