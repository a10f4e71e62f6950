//! A bundle's config.json as a capexec service: the validated spec that
//! capexec's composer turns into the launch plan (docs/oci.md). One place
//! decides what of the config becomes what; what cannot be applied yet is
//! an error that names the field, never dropped.

use crate::bundle::Bundle;
use capexec_decl::spec::{
    ArgOp, DevMode, DeviceKind, DeviceNode, Filesystem, IdMap, IdMaps, Identity, IdentitySource, JoinKind, JoinNs, Mount, MountKind, NetMode, ProcMode,
    ProfileAction, ProfileArg, ProfileRule, Resource, Rlimit, RootFs, SeccompProfile, ServiceSpec,
};
use oci_spec::runtime::{LinuxNamespaceType, Mount as OciMount};

/// A config field capexec-oci cannot apply yet (or at all), by name.
#[derive(Debug, thiserror::Error)]
#[error("`{field}`: {why}")]
pub struct NotApplied {
    pub field: String,
    pub why: String,
}

fn not_applied(field: impl Into<String>, why: impl Into<String>) -> NotApplied {
    NotApplied { field: field.into(), why: why.into() }
}

/// The container `id` of bundle `b` as a capexec service.
pub fn service(b: &Bundle, id: &str) -> Result<ServiceSpec, NotApplied> {
    let spec = &b.spec;
    let process = spec.process().as_ref().ok_or_else(|| not_applied("process", "missing: there is nothing to run"))?;
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(not_applied("process.args", "empty: there is nothing to run"));
    }
    let linux = spec.linux().clone().unwrap_or_default();
    // linux.resources: the device rules need no cgroup here (the container
    // reaches only the nodes capexec binds into its /dev and its own
    // devpts, and cannot make one: nodev everywhere else, no mknod in the
    // view); the other limits are set in cgroups of the container's own
    // (crate::cgroups; coverage names the fields it does not set).

    // Validated through the declaration's own path, for its defaults (the
    // seccomp groups, Landlock's mode); the rest is the config's.
    // The annotation's [broker] grants are validated with them, as a
    // declaration's are.
    // Each annotation's text, checked to hold only its tables ("" when absent).
    let annotation = |key: &str, check: fn(&str) -> Result<(), capexec_decl::AnnotationError>| -> Result<(String, &str), NotApplied> {
        let field = format!("annotations.{key}");
        match spec.annotations().as_ref().and_then(|a| a.get(key)) {
            Some(text) => check(text).map_err(|e| not_applied(&field, e.to_string())).map(|()| (field, text.as_str())),
            None => Ok((field, "")),
        }
    };
    let (field, mut grants) = annotation(capexec_decl::BROKER_ANNOTATION, capexec_decl::check_broker_annotation)?;
    // A profile that hands calls to an agent leaves the grants to it (capexec
    // agent reads them from the same annotation): a process has one seccomp
    // listener, the agent's, so capexec-oci runs no broker of its own.
    let notified = |p: &oci_spec::runtime::LinuxSeccomp| {
        p.listener_path().is_some() && p.syscalls().iter().flatten().any(|r| r.action() == oci_spec::runtime::LinuxSeccompAction::ScmpActNotify)
    };
    if linux.seccomp().as_ref().is_some_and(notified) {
        grants = "";
    }
    let (preopen_field, preopens) = annotation(capexec_decl::PREOPEN_ANNOTATION, capexec_decl::check_preopen_annotation)?;
    let text = format!("{grants}\n{preopens}\n[exec]\nargv = [\"/container\"]\n[filesystem]\nsystem = false\nprivate_tmp = false\n");
    let mut s = capexec_decl::from_text(id, &text, &capexec_decl::Context::current()).map_err(|e| match (grants.is_empty(), preopens.is_empty()) {
        (true, true) => not_applied("(defaults)", e.to_string()),
        (false, true) => not_applied(&field, e.to_string()),
        (true, false) => not_applied(&preopen_field, e.to_string()),
        (false, false) => not_applied(format!("{field} or {preopen_field}"), e.to_string()),
    })?;
    s.description = format!("OCI container {id} ({})", b.dir.display());
    s.exec.argv = args;
    let user = process.user();
    s.exec.user = Identity {
        uid: user.uid(),
        gid: user.gid(),
        user_name: None,
        how: IdentitySource::Declared,
        home: None,
        groups: user.additional_gids().clone().unwrap_or_default(),
    };
    s.exec.environment = Default::default();
    for kv in process.env().clone().unwrap_or_default() {
        let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
        s.exec.environment.insert(k.to_owned(), v.to_owned());
    }
    s.exec.working_directory = process.cwd().clone();
    s.exec.oom_score_adjust = process.oom_score_adj();
    // The runtime-spec's default is off (podman's and Kubernetes' too).
    s.exec.allow_new_privileges = !process.no_new_privileges().unwrap_or(false);
    s.capabilities = capabilities(process.capabilities().as_ref())?;
    // The config's profile replaces capexec's allowlist; without one, the
    // allowlist applies.
    if let Some(p) = linux.seccomp() {
        s.seccomp.profile = Some(seccomp_profile(p)?);
    }
    s.rlimits = Default::default();
    for r in process.rlimits().clone().unwrap_or_default() {
        let name = serde_json::to_value(r.typ()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let res = resource(&name).ok_or_else(|| not_applied("process.rlimits[].type", format!("{name} is not a resource capexec knows")))?;
        s.rlimits.insert(res, Rlimit { soft: Some(r.soft()), hard: Some(r.hard()) });
    }

    // Namespaces: each listed one is new, or entered by its path.
    let ns = &mut s.namespaces;
    (ns.user, ns.pid, ns.ipc, ns.uts, ns.cgroup, ns.net) = (false, false, false, false, false, NetMode::Host);
    let listed = linux.namespaces().clone().unwrap_or_default();
    // Without a mount namespace listed, the container lives in the runtime's
    // (the runtime-spec's MUST): entered as by path, with the view in a
    // private one all the same (see capexec_sandbox's `foreign_mount_ns`).
    if !listed.iter().any(|n| n.typ() == LinuxNamespaceType::Mount) {
        ns.join.push(JoinNs { kind: JoinKind::Mount, path: "/proc/self/ns/mnt".into() });
    }
    for n in listed {
        if let Some(path) = n.path() {
            let kind = match n.typ() {
                LinuxNamespaceType::Network => JoinKind::Net,
                LinuxNamespaceType::Ipc => JoinKind::Ipc,
                LinuxNamespaceType::Uts => JoinKind::Uts,
                LinuxNamespaceType::Pid => JoinKind::Pid,
                LinuxNamespaceType::Cgroup => JoinKind::Cgroup,
                LinuxNamespaceType::Mount => JoinKind::Mount,
                LinuxNamespaceType::User => JoinKind::User,
                LinuxNamespaceType::Time => return Err(not_applied("linux.namespaces", "time namespaces are not implemented")),
            };
            if !path.is_absolute() {
                return Err(not_applied("linux.namespaces[].path", format!("{} is not an absolute path", path.display())));
            }
            ns.join.push(JoinNs { kind, path: path.clone() });
            continue;
        }
        match n.typ() {
            LinuxNamespaceType::Mount => {}
            LinuxNamespaceType::Pid => ns.pid = true,
            LinuxNamespaceType::Network => ns.net = NetMode::None,
            LinuxNamespaceType::Ipc => ns.ipc = true,
            LinuxNamespaceType::Uts => ns.uts = true,
            LinuxNamespaceType::Cgroup => ns.cgroup = true,
            LinuxNamespaceType::User => ns.user = true,
            LinuxNamespaceType::Time => return Err(not_applied("linux.namespaces", "time namespaces are not implemented")),
        }
    }
    let user_path = ns.join.iter().find(|j| j.kind == JoinKind::User).map(|j| j.path.clone());
    let in_user = ns.user || user_path.is_some();
    if in_user && ns.join.iter().any(|j| j.kind == JoinKind::Mount) {
        return Err(not_applied(
            "linux.namespaces",
            "a user namespace (new or entered) needs a mount namespace of the container's own (add {\"type\": \"mount\"} without a path)",
        ));
    }
    // An entered user namespace has its maps: read where the path names a
    // process (/proc/PID/ns/user), and then the config's must be the same.
    let entered_maps = user_path.as_deref().and_then(namespace_maps);
    let maps = |field: &str, what: usize, m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> Result<Vec<IdMap>, NotApplied> {
        let m: Vec<IdMap> = m.clone().unwrap_or_default().iter().map(|m| IdMap { inside: m.container_id(), outside: m.host_id(), count: m.size() }).collect();
        if let (Some(path), Some(entered)) = (&user_path, &entered_maps) {
            let theirs = &entered[what];
            if !m.is_empty() && m != *theirs {
                return Err(not_applied(field, format!("differs from the maps of the user namespace at {} ({theirs:?})", path.display())));
            }
            return Ok(theirs.clone());
        }
        if in_user && m.is_empty() {
            return Err(match &user_path {
                Some(path) => not_applied(
                    field,
                    format!("the user namespace at {} is entered: give its id mappings (they are read only from a /proc/PID/ns/user path)", path.display()),
                ),
                None => not_applied(field, "a user namespace needs its id mappings (capexec-oci makes up none)"),
            });
        }
        if !in_user && !m.is_empty() {
            return Err(not_applied(field, "id mappings need a user namespace (add {\"type\": \"user\"} to linux.namespaces)"));
        }
        Ok(m)
    };
    let (uid, gid) = (maps("linux.uidMappings", 0, linux.uid_mappings())?, maps("linux.gidMappings", 1, linux.gid_mappings())?);
    if in_user {
        let unmapped = |field: &str, what: &str, id: u32| not_applied(field, format!("{what} {id} is not in linux.{what}Mappings"));
        if IdMaps::outside(&uid, s.exec.user.uid).is_none() {
            return Err(unmapped("process.user.uid", "uid", s.exec.user.uid));
        }
        for g in std::iter::once(&s.exec.user.gid).chain(&s.exec.user.groups) {
            if IdMaps::outside(&gid, *g).is_none() {
                return Err(unmapped("process.user", "gid", *g));
            }
        }
        ns.id_maps = Some(IdMaps { uid, gid });
    }
    if let Some(h) = spec.hostname() {
        if !ns.uts && !ns.join.iter().any(|j| j.kind == JoinKind::Uts) {
            return Err(not_applied("hostname", "needs a uts namespace (add {\"type\": \"uts\"} to linux.namespaces)"));
        }
        ns.hostname = h.clone();
    }

    for (k, v) in linux.sysctl().clone().unwrap_or_default() {
        sysctl(ns, &k, &v)?;
        ns.sysctls.insert(k, v);
    }

    let root = spec.root().as_ref().expect("bundle::load checked it");
    let fs = &mut s.filesystem;
    let mount_order = spec.mounts().iter().flatten().map(|m| m.destination().clone()).collect();
    fs.root = Some(RootFs { path: b.rootfs.clone(), read_only: root.readonly().unwrap_or(false), mount_order });
    (fs.dev, fs.proc) = (DevMode::None, ProcMode::None);
    fs.mounts.clear();
    for (i, m) in spec.mounts().clone().unwrap_or_default().iter().enumerate() {
        mount(fs, i, m)?;
    }
    let rules = linux.resources().as_ref().and_then(|r| r.devices().clone()).unwrap_or_default();
    for (i, d) in linux.devices().clone().unwrap_or_default().iter().enumerate() {
        fs.devices.push(device(i, d, &rules)?);
    }
    // What the config masks or makes read-only is what the view has there;
    // a path the root filesystem lacks is skipped, as runc does.
    for p in linux.masked_paths().clone().unwrap_or_default() {
        fs.mounts.push(Mount { path: p.into(), kind: MountKind::Inaccessible, optional: true, source: None, propagation: None, layer_of: None });
    }
    for p in linux.readonly_paths().clone().unwrap_or_default() {
        fs.mounts.push(Mount { path: p.into(), kind: MountKind::ReadOnly, optional: true, source: None, propagation: None, layer_of: None });
    }
    let notifies = s.seccomp.profile.as_ref().is_some_and(|p| p.rules.iter().any(|r| r.action == ProfileAction::Notify));
    if notifies && s.has_broker() {
        return Err(not_applied(
            "linux.seccomp.listenerPath",
            "the container needs capexec's broker (for its listen() calls on a network namespace not its own, or a file preopened in append mode), and a process has one seccomp listener: drop the notify rules, or give the container a network namespace of its own and no append preopen",
        ));
    }
    Ok(s)
}

/// The config's seccomp profile, as capexec's composer takes it.
fn seccomp_profile(p: &oci_spec::runtime::LinuxSeccomp) -> Result<SeccompProfile, NotApplied> {
    use oci_spec::runtime::{LinuxSeccompAction as A, LinuxSeccompOperator as O};
    let agent = p.listener_path().is_some();
    if let Some(archs) = p.architectures() {
        let names: Vec<String> = archs.iter().filter_map(|a| serde_json::to_value(a).ok()?.as_str().map(str::to_owned)).collect();
        if !names.is_empty() && !names.iter().any(|a| a == "SCMP_ARCH_X86_64") {
            return Err(not_applied("linux.seccomp.architectures", "does not list SCMP_ARCH_X86_64, this machine's"));
        }
    }
    let action = |field: &str, a: A, errno: Option<u32>| -> Result<ProfileAction, NotApplied> {
        Ok(match a {
            A::ScmpActAllow => ProfileAction::Allow,
            A::ScmpActErrno => ProfileAction::Errno(errno.unwrap_or(EPERM).min(4095) as u16),
            A::ScmpActKill | A::ScmpActKillThread => ProfileAction::KillThread,
            A::ScmpActKillProcess => ProfileAction::KillProcess,
            A::ScmpActTrap => ProfileAction::Trap,
            A::ScmpActLog => ProfileAction::Log,
            A::ScmpActNotify if agent => ProfileAction::Notify,
            A::ScmpActNotify => return Err(not_applied(field, "SCMP_ACT_NOTIFY needs an agent: set linux.seccomp.listenerPath to its socket")),
            A::ScmpActTrace => return Err(not_applied(field, "SCMP_ACT_TRACE needs a tracer, which capexec-oci does not run")),
        })
    };
    if p.default_action() == A::ScmpActNotify {
        return Err(not_applied(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY as the default is not implemented: name the calls to hand to the agent in rules",
        ));
    }
    let default = action("linux.seccomp.defaultAction", p.default_action(), p.default_errno_ret())?;
    let mut rules = Vec::new();
    for (i, r) in p.syscalls().clone().unwrap_or_default().iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let args = r
            .args()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                if a.index() > 5 {
                    return Err(not_applied(format!("{field}.args"), format!("argument index {} (syscalls have 6)", a.index())));
                }
                let op = match a.op() {
                    O::ScmpCmpEq => ArgOp::Eq,
                    O::ScmpCmpNe => ArgOp::Ne,
                    O::ScmpCmpLt => ArgOp::Lt,
                    O::ScmpCmpLe => ArgOp::Le,
                    O::ScmpCmpGt => ArgOp::Gt,
                    O::ScmpCmpGe => ArgOp::Ge,
                    O::ScmpCmpMaskedEq => ArgOp::MaskedEq,
                };
                Ok(ProfileArg { index: a.index() as u8, value: a.value(), value_two: a.value_two().unwrap_or(0), op })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(ProfileRule { syscalls: r.names().clone(), action: action(&format!("{field}.action"), r.action(), r.errno_ret())?, args });
    }
    Ok(SeccompProfile { default, rules })
}

/// EPERM, the runtime-spec's errno when a rule names none.
const EPERM: u32 = 1;

/// Whether the kernel parameter `name` belongs to a namespace the container
/// has of its own (runc's rule): setting another would change the host.
/// The uid and gid maps of the user namespace at `path` when it names a
/// process's (/proc/PID/ns/user): that process's uid_map and gid_map.
fn namespace_maps(path: &std::path::Path) -> Option<[Vec<IdMap>; 2]> {
    let pid = path.strip_prefix("/proc").ok()?.to_str()?.strip_suffix("/ns/user")?.parse::<u32>().ok()?;
    let read = |file: &str| -> Option<Vec<IdMap>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        text.lines()
            .map(|l| {
                let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
                Some(IdMap { inside: f.next()??, outside: f.next()??, count: f.next()?? })
            })
            .collect()
    };
    Some([read("uid_map")?, read("gid_map")?])
}

fn sysctl(ns: &capexec_decl::spec::NsSpec, name: &str, value: &str) -> Result<(), NotApplied> {
    let refuse = |why: String| not_applied(format!("linux.sysctl.{name}"), why);
    if name.is_empty() || name.split('.').any(|p| p.is_empty() || p == "..") || name.contains('/') || value.contains('\n') {
        return Err(refuse("not a kernel parameter name and value".into()));
    }
    const IPC: [&str; 8] =
        ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];
    let entered = |kind: JoinKind| ns.join.iter().any(|j| j.kind == kind);
    let (owned, which) = if IPC.contains(&name) || name.starts_with("fs.mqueue.") {
        (ns.ipc || entered(JoinKind::Ipc), "an ipc")
    } else if name.starts_with("net.") {
        (ns.net == NetMode::None || entered(JoinKind::Net), "a network")
    } else if name == "kernel.hostname" || name == "kernel.domainname" {
        (ns.uts || entered(JoinKind::Uts), "a uts")
    } else {
        return Err(refuse("not a parameter of a namespace the container can have: it would change the host".into()));
    };
    match owned {
        true => Ok(()),
        false => Err(refuse(format!("needs {which} namespace of the container's own"))),
    }
}

/// One of the config's mounts, into the view.
fn mount(fs: &mut capexec_decl::spec::FsSpec, i: usize, m: &OciMount) -> Result<(), NotApplied> {
    let dest = m.destination();
    let refuse = |why: String| not_applied(format!("mounts[{i}] ({})", dest.display()), why);
    if !dest.is_absolute() || dest.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(refuse("the destination must be an absolute path without `..`".into()));
    }
    let options = m.options().clone().unwrap_or_default();
    let typ = m.typ().clone().unwrap_or_default();
    let is_bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    if is_bind {
        let source = m.source().clone().ok_or_else(|| refuse("a bind mount needs a source".into()))?;
        let source = std::path::absolute(&source).map_err(|e| refuse(format!("source {}: {e}", source.display())))?;
        let ro = options.iter().any(|o| o == "ro");
        // Writable binds are never executable in capexec (docs/oci.md).
        let kind = match (ro, options.iter().any(|o| o == "noexec")) {
            (true, false) => MountKind::Executable,
            (true, true) => MountKind::ReadOnly,
            (false, _) => MountKind::ReadWrite,
        };
        let propagation = capexec_decl::spec::Propagation::of_options(&options);
        fs.mounts.push(Mount { path: dest.clone(), kind, optional: false, source: Some(source), propagation, layer_of: None });
        return Ok(());
    }
    match (typ.as_str(), dest.to_str()) {
        // capexec's own /proc (a new instance, /proc/sys read-only, the
        // dangerous files masked) and /dev (a tmpfs with the usual nodes
        // bound from the host, shm, the fd links).
        ("proc", Some("/proc")) => fs.proc = ProcMode::Full,
        ("tmpfs", Some("/dev")) => fs.dev = DevMode::Minimal,
        ("proc", _) => return Err(refuse("proc is mounted at /proc only".into())),
        ("sysfs" | "devpts" | "mqueue" | "tmpfs" | "cgroup" | "cgroup2", _) => {
            // The unified hierarchy (a cgroup namespace shows the container's own).
            let fstype = if typ == "cgroup" { "cgroup2".to_owned() } else { typ.clone() };
            let source = m.source().as_ref().map(|s| s.display().to_string()).unwrap_or_else(|| fstype.clone());
            fs.filesystems.push(Filesystem { path: dest.clone(), fstype, source, options });
        }
        ("", _) => return Err(refuse("no type: say \"bind\" or a filesystem type".into())),
        (other, _) => {
            return Err(refuse(format!("filesystem type {other:?} is not one capexec-oci mounts (bind, proc, sysfs, devpts, mqueue, tmpfs, cgroup)")))
        }
    }
    Ok(())
}

/// A device node of `linux.devices`, usable as the device rules say.
fn device(i: usize, d: &oci_spec::runtime::LinuxDevice, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<DeviceNode, NotApplied> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let path = d.path();
    let refuse = |why: String| not_applied(format!("linux.devices[{i}] ({})", path.display()), why);
    if !path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(refuse("the path must be absolute, without `..`".into()));
    }
    if !path.starts_with("/dev") || path == std::path::Path::new("/dev") {
        return Err(refuse("device nodes are made under /dev only (every other mount of the view is nodev)".into()));
    }
    let kind_of = |t: T| match t {
        T::C | T::U => Some(DeviceKind::Char),
        T::B => Some(DeviceKind::Block),
        T::P => Some(DeviceKind::Fifo),
        T::A => None,
    };
    let kind = kind_of(d.typ()).ok_or_else(|| refuse("type `a` is no device".into()))?;
    let number = |n: i64, what: &str| u32::try_from(n).map_err(|_| refuse(format!("{what} number {n} is out of range")));
    let (major, minor) = (number(d.major(), "major")?, number(d.minor(), "minor")?);
    // The device cgroup's way: every device allowed, then each matching
    // rule in order allows or denies its accesses. Fifos are no device.
    let (mut read, mut write) = (true, true);
    if kind != DeviceKind::Fifo {
        for r in rules {
            let matches = r.typ().and_then(kind_of).is_none_or(|k| k == kind)
                && r.major().is_none_or(|m| m < 0 || m == i64::from(major))
                && r.minor().is_none_or(|m| m < 0 || m == i64::from(minor));
            if matches {
                let access = r.access().clone().unwrap_or_else(|| "rwm".into());
                if access.contains('r') {
                    read = r.allow();
                }
                if access.contains('w') {
                    write = r.allow();
                }
            }
        }
    }
    if read != write {
        return Err(refuse(format!(
            "linux.resources.devices allow it for {} only: capexec-oci gives a device node whole or not at all (allow both, or neither)",
            if read { "reading" } else { "writing" }
        )));
    }
    Ok(DeviceNode {
        path: path.clone(),
        kind,
        major,
        minor,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
        usable: read,
    })
}

/// The capabilities the container keeps: capexec keeps one set (bounding,
/// permitted, effective, inheritable and ambient alike), so the config's
/// sets must agree on it; `bounding` may be larger (it only limits).
fn capabilities(c: Option<&oci_spec::runtime::LinuxCapabilities>) -> Result<Vec<caps::Capability>, NotApplied> {
    let Some(c) = c else { return Ok(Vec::new()) };
    let names = |set: &Option<oci_spec::runtime::Capabilities>| -> Vec<String> {
        // By their names in the runtime-spec (CAP_KILL).
        let mut v: Vec<String> = set.iter().flatten().filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_owned)).collect();
        v.sort();
        v
    };
    let effective = names(c.effective());
    let permitted = names(c.permitted());
    if effective != permitted {
        return Err(not_applied("process.capabilities", "capexec keeps one set of capabilities: effective and permitted must be the same"));
    }
    let bounding = names(c.bounding());
    if let Some(x) = effective.iter().find(|e| !bounding.contains(e)) {
        return Err(not_applied("process.capabilities.bounding", format!("lacks {x}, which the effective set has")));
    }
    effective.iter().map(|n| n.parse().map_err(|_| not_applied("process.capabilities", format!("{n} is not a capability this system knows")))).collect()
}

fn resource(oci: &str) -> Option<Resource> {
    let name = oci.to_ascii_lowercase();
    let name = name.strip_prefix("rlimit").map(|n| n.trim_start_matches('_')).unwrap_or(&name).to_owned();
    Resource::ALL.into_iter().find(|r| r.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The container of a config with `linux` and `mounts` as given, in a
    /// bundle of its own.
    fn translate(linux: &str, mounts: &str, caps: &str) -> Result<ServiceSpec, NotApplied> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("capexec-oci-container-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        let config = format!(
            r#"{{"ociVersion": "1.0.2", "root": {{"path": "rootfs"}}, "hostname": "h",
                "process": {{"args": ["/bin/sh"], "cwd": "/srv", "env": ["A=1", "B=x=y"], "user": {{"uid": 5, "gid": 6, "additionalGids": [7]}},
                             "rlimits": [{{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}}], "capabilities": {caps}}},
                "mounts": {mounts}, "linux": {linux}}}"#
        );
        std::fs::write(dir.join("config.json"), config).unwrap();
        let b = crate::bundle::load(&dir).unwrap();
        let s = service(&b, "c1");
        std::fs::remove_dir_all(dir).unwrap();
        s
    }

    const NS: &str = r#"{"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "network"}], "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/bus"],
                         "sysctl": {"net.ipv4.ping_group_range": "0 0"}}"#;
    const CAPS: &str = r#"{"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}"#;

    #[test]
    fn namespaces_given_by_path_are_entered_and_own_their_parameters() {
        let linux = r#"{"namespaces": [{"type": "mount"}, {"type": "uts", "path": "/run/u"}, {"type": "network", "path": "/run/netns/n"}, {"type": "pid", "path": "/proc/7/ns/pid"}, {"type": "cgroup", "path": "/proc/7/ns/cgroup"}],
                        "sysctl": {"net.ipv4.ping_group_range": "0 0", "kernel.hostname": "x"}}"#;
        let s = translate(linux, "[]", CAPS).unwrap();
        let ns = &s.namespaces;
        assert!(!ns.uts && ns.net == NetMode::Host && !ns.pid, "entered, not made");
        let joined: Vec<_> = ns.join.iter().map(|j| (j.kind, j.path.to_str().unwrap())).collect();
        assert_eq!(
            joined,
            [(JoinKind::Uts, "/run/u"), (JoinKind::Net, "/run/netns/n"), (JoinKind::Pid, "/proc/7/ns/pid"), (JoinKind::Cgroup, "/proc/7/ns/cgroup")]
        );
        assert_eq!(ns.sysctls.len(), 2);

        // A mount namespace by path is lived in; none listed, the runtime's.
        let mount = |linux: &str| -> Vec<(JoinKind, String)> {
            translate(linux, "[]", CAPS).unwrap().namespaces.join.iter().map(|j| (j.kind, j.path.display().to_string())).collect()
        };
        assert_eq!(
            mount(r#"{"namespaces": [{"type": "uts"}, {"type": "mount", "path": "/proc/7/ns/mnt"}]}"#),
            [(JoinKind::Mount, "/proc/7/ns/mnt".to_owned())]
        );
        assert_eq!(mount(r#"{"namespaces": [{"type": "uts"}]}"#), [(JoinKind::Mount, "/proc/self/ns/mnt".to_owned())]);
        assert_eq!(mount(r#"{"namespaces": [{"type": "uts"}, {"type": "mount"}]}"#), []);
    }

    #[test]
    fn features_list_the_namespaces_a_config_may_have() {
        let listed = crate::lifecycle::features()["linux"]["namespaces"].clone();
        let listed: Vec<String> = serde_json::from_value(listed).unwrap();
        let maps = r#", "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 100}], "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 100}]"#;
        for ns in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"] {
            let extra = if ns == "user" { maps } else { "" };
            let config = format!(r#"{{"namespaces": [{{"type": "mount"}}, {{"type": "uts"}}, {{"type": "{ns}"}}]{extra}}}"#);
            let translated = translate(&config, "[]", CAPS);
            assert_eq!(translated.is_ok(), listed.contains(&ns.to_owned()), "{ns}: {:?}", translated.err());
        }
    }

    #[test]
    fn a_user_namespace_by_path_has_its_own_maps() {
        // This process's: the host's, 0 0 4294967295.
        let path = format!("/proc/{}/ns/user", std::process::id());
        let linux = |maps: &str| format!(r#"{{"namespaces": [{{"type": "mount"}}, {{"type": "uts"}}, {{"type": "user", "path": "{path}"}}]{maps}}}"#);
        let s = translate(&linux(""), "[]", CAPS).unwrap();
        let host = vec![IdMap { inside: 0, outside: 0, count: u32::MAX }];
        assert_eq!(s.namespaces.id_maps, Some(IdMaps { uid: host.clone(), gid: host.clone() }));
        assert!(!s.namespaces.user, "entered, not made");
        let same = r#", "uidMappings": [{"containerID": 0, "hostID": 0, "size": 4294967295}]"#;
        assert!(translate(&linux(same), "[]", CAPS).is_ok());
        let other = r#", "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}]"#;
        let e = translate(&linux(other), "[]", CAPS).unwrap_err().to_string();
        assert!(e.contains("`linux.uidMappings`: differs from the maps of the user namespace at"), "{e}");
        // Another path: the config must give them.
        let e = translate(r#"{"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "user", "path": "/run/userns/pod"}]}"#, "[]", CAPS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is entered: give its id mappings"), "{e}");
        // Nor a mount namespace to live in from it.
        let e = translate(&format!(r#"{{"namespaces": [{{"type": "uts"}}, {{"type": "user", "path": "{path}"}}]}}"#), "[]", CAPS).unwrap_err().to_string();
        assert!(e.contains("a user namespace (new or entered) needs a mount namespace of the container's own"), "{e}");
    }

    #[test]
    fn preopens_come_from_their_annotation_and_nothing_else_does() {
        let with = |value: &str| -> Result<ServiceSpec, NotApplied> {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("capexec-oci-preopen-{}-{n}", std::process::id()));
            std::fs::create_dir_all(dir.join("rootfs")).unwrap();
            let config = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                                            "annotations": {capexec_decl::PREOPEN_ANNOTATION: value}});
            std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
            let s = service(&crate::bundle::load(&dir).unwrap(), "c1");
            std::fs::remove_dir_all(dir).unwrap();
            s
        };
        let s = with("[[preopen.listen]]\naddress = 'tcp:127.0.0.1:8080'\nname = 'web'\n[[preopen.file]]\npath = '/etc/hostname'\n").unwrap();
        let names: Vec<&str> = s.preopen.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web", "file0"]);
        for (value, want) in [
            ("[[preopen.directory]]\npath = '/etc'\n", "a container sees a host directory through a bind mount"),
            ("[exec]\nuser = 'root'\n", "has [exec]: it holds [[preopen.listen]] and [[preopen.file]] tables only"),
            ("[[preopen.listen]]\naddress = 'nowhere'\n", "`annotations.org.capexec.preopen`"),
        ] {
            let e = with(value).unwrap_err().to_string();
            assert!(e.contains(want), "{value}: {e}");
        }
    }

    #[test]
    fn a_user_namespace_takes_the_configs_maps() {
        let linux = r#"{"namespaces": [{"type": "user"}, {"type": "mount"}, {"type": "uts"}], "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
                        "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 8}, {"containerID": 100, "hostID": 3000, "size": 1}]}"#;
        let s = translate(linux, "[]", CAPS).unwrap();
        let m = |inside, outside, count| IdMap { inside, outside, count };
        assert!(s.namespaces.user);
        assert_eq!(s.namespaces.id_maps, Some(IdMaps { uid: vec![m(0, 1000, 10)], gid: vec![m(0, 2000, 8), m(100, 3000, 1)] }));
    }

    #[test]
    fn devices_are_usable_as_the_device_rules_say() {
        let devices = r#""devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 5},
                                     {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                                     {"path": "/dev/pipe", "type": "p", "major": 0, "minor": 0}]"#;
        let nodes = |rules: &str| -> Vec<(String, DeviceKind, bool)> {
            let linux = format!(r#"{{"namespaces": [{{"type": "uts"}}], {devices}, "resources": {{"devices": {rules}}}}}"#);
            let s = translate(&linux, "[]", CAPS).unwrap();
            s.filesystem.devices.iter().map(|d| (d.path.display().to_string(), d.kind, d.usable)).collect()
        };
        use DeviceKind::*;
        let all = |u: bool| vec![("/dev/fuse".to_owned(), Char, u), ("/dev/sda".to_owned(), Block, u), ("/dev/pipe".to_owned(), Fifo, true)];
        assert_eq!(nodes("[]"), all(true), "no rules: every device");
        assert_eq!(nodes(r#"[{"allow": false, "access": "rwm"}]"#), all(false), "denied, fifos are no device");
        let some = r#"[{"allow": false}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]"#;
        assert_eq!(nodes(some), [("/dev/fuse".to_owned(), Char, true), ("/dev/sda".to_owned(), Block, false), ("/dev/pipe".to_owned(), Fifo, true)]);
        let s = translate(&format!(r#"{{"namespaces": [{{"type": "uts"}}], {devices}}}"#), "[]", CAPS).unwrap();
        let fuse = &s.filesystem.devices[0];
        assert_eq!((fuse.major, fuse.minor, fuse.mode, fuse.uid, fuse.gid), (10, 229, 0o666, 0, 5));
        let read_only = format!(r#"{{"namespaces": [{{"type": "uts"}}], {devices}, "resources": {{"devices": [{{"allow": false, "access": "w"}}]}}}}"#);
        let e = translate(&read_only, "[]", CAPS).unwrap_err().to_string();
        assert!(e.contains("`linux.devices[0] (/dev/fuse)`: linux.resources.devices allow it for reading only"), "{e}");
        let elsewhere = r#"{"namespaces": [{"type": "uts"}], "devices": [{"path": "/srv/fuse", "type": "c", "major": 10, "minor": 229}]}"#;
        let e = translate(elsewhere, "[]", CAPS).unwrap_err().to_string();
        assert!(e.contains("under /dev only"), "{e}");
    }

    #[test]
    fn a_config_becomes_a_service() {
        let mounts = r#"[{"destination": "/proc", "type": "proc", "source": "proc"},
                         {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                         {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid"]},
                         {"destination": "/etc/conf", "type": "bind", "source": "/etc/hostname", "options": ["rbind", "ro"]},
                         {"destination": "/out", "type": "bind", "source": "/var/tmp", "options": ["rbind"]}]"#;
        let s = translate(NS, mounts, CAPS).unwrap();
        assert_eq!((s.exec.argv.clone(), s.exec.working_directory.clone()), (vec!["/bin/sh".to_owned()], "/srv".into()));
        assert_eq!((s.exec.user.uid, s.exec.user.gid, s.exec.user.groups.clone()), (5, 6, vec![7]));
        assert_eq!(s.exec.environment["B"], "x=y");
        assert_eq!(s.capabilities, [caps::Capability::CAP_KILL]);
        assert_eq!(s.rlimits[&Resource::Nofile], Rlimit { soft: Some(512), hard: Some(1024) });
        let ns = &s.namespaces;
        assert!(ns.pid && ns.uts && !ns.ipc && !ns.user && ns.net == NetMode::None && ns.hostname == "h");
        assert_eq!(ns.sysctls["net.ipv4.ping_group_range"], "0 0");
        let fs = &s.filesystem;
        assert_eq!((fs.proc, fs.dev, fs.system, fs.private_tmp), (ProcMode::Full, DevMode::Minimal, false, false));
        assert_eq!(
            fs.filesystems,
            [Filesystem { path: "/sys".into(), fstype: "sysfs".into(), source: "sysfs".into(), options: vec!["ro".into(), "nosuid".into()] }]
        );
        let m = |p: &str| fs.mounts.iter().find(|m| m.path == std::path::Path::new(p)).unwrap_or_else(|| panic!("no {p}: {:?}", fs.mounts));
        assert_eq!((m("/etc/conf").kind, m("/etc/conf").source.as_deref()), (MountKind::Executable, Some(std::path::Path::new("/etc/hostname"))));
        assert_eq!(m("/out").kind, MountKind::ReadWrite);
        assert_eq!((m("/proc/kcore").kind, m("/proc/kcore").optional), (MountKind::Inaccessible, true));
        assert_eq!((m("/proc/bus").kind, m("/proc/bus").source.as_deref()), (MountKind::ReadOnly, None));
    }

    #[test]
    fn what_cannot_be_applied_is_named() {
        let cases = [
            (r#"{"namespaces": [{"type": "user"}, {"type": "mount"}]}"#, "[]", CAPS, "`linux.uidMappings`: a user namespace needs its id mappings"),
            (r#"{"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}"#, "[]", CAPS, "id mappings need a user namespace"),
            (
                r#"{"namespaces": [{"type": "user"}, {"type": "mount"}, {"type": "uts"}], "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
                    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 7}]}"#,
                "[]",
                CAPS,
                "`process.user`: gid 7 is not in linux.gidMappings",
            ),
            (
                r#"{"namespaces": [{"type": "user"}, {"type": "mount", "path": "/proc/1/ns/mnt"}]}"#,
                "[]",
                CAPS,
                "`linux.namespaces`: a user namespace (new or entered) needs a mount namespace of the container's own",
            ),
            (r#"{"namespaces": [{"type": "user"}]}"#, "[]", CAPS, "a user namespace (new or entered) needs a mount namespace of the container's own"),
            (r#"{"namespaces": [{"type": "uts"}, {"type": "network", "path": "run/netns/x"}]}"#, "[]", CAPS, "is not an absolute path"),
            (r#"{"namespaces": []}"#, "[]", CAPS, "`hostname`: needs a uts namespace"),
            (NS, r#"[{"destination": "/p", "type": "proc"}]"#, CAPS, "`mounts[0] (/p)`: proc is mounted at /proc only"),
            (NS, r#"[{"destination": "/x", "type": "nfs"}]"#, CAPS, "\"nfs\" is not one capexec-oci mounts"),
            (NS, r#"[{"destination": "x", "type": "tmpfs"}]"#, CAPS, "absolute path"),
            (NS, "[]", r#"{"effective": ["CAP_KILL"], "permitted": []}"#, "effective and permitted must be the same"),
            (NS, "[]", r#"{"effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}"#, "`process.capabilities.bounding`: lacks CAP_KILL"),
            (
                r#"{"namespaces": [{"type": "uts"}], "sysctl": {"kernel.panic": "1"}}"#,
                "[]",
                CAPS,
                "`linux.sysctl.kernel.panic`: not a parameter of a namespace",
            ),
            (r#"{"namespaces": [{"type": "uts"}], "sysctl": {"net.ipv4.ip_forward": "1"}}"#, "[]", CAPS, "needs a network namespace of the container's own"),
            (r#"{"namespaces": [{"type": "uts"}], "sysctl": {"kernel.shmmax": "1"}}"#, "[]", CAPS, "needs an ipc namespace"),
            (
                r#"{"namespaces": [{"type": "uts"}], "seccomp": {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock"}}"#,
                "[]",
                CAPS,
                "`linux.seccomp.defaultAction`: SCMP_ACT_NOTIFY as the default is not implemented",
            ),
            (
                r#"{"namespaces": [{"type": "uts"}], "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["openat"], "action": "SCMP_ACT_NOTIFY"}]}}"#,
                "[]",
                CAPS,
                "`linux.seccomp.syscalls[0].action`: SCMP_ACT_NOTIFY needs an agent: set linux.seccomp.listenerPath",
            ),
            (
                r#"{"namespaces": [{"type": "uts"}], "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}}"#,
                "[]",
                CAPS,
                "SCMP_ARCH_X86_64",
            ),
        ];
        for (linux, mounts, caps, want) in cases {
            let e = translate(linux, mounts, caps).unwrap_err().to_string();
            assert!(e.contains(want), "{linux} {mounts} {caps}: {e}");
        }
        let profile = r#"{"namespaces": [{"type": "uts"}], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]}]}}"#;
        let p = translate(profile, "[]", CAPS).unwrap().seccomp.profile.unwrap();
        assert_eq!(p.default, ProfileAction::Errno(38));
        assert_eq!(p.rules[0].action, ProfileAction::Errno(1), "EPERM when a rule names no errno");
        assert_eq!(p.rules[0].args, [ProfileArg { index: 0, value: 16, value_two: 0, op: ArgOp::Eq }]);
        let devices = r#"{"namespaces": [{"type": "uts"}], "resources": {"devices": [{"allow": false, "access": "rwm"}]}}"#;
        assert!(translate(devices, "[]", CAPS).is_ok(), "device rules alone are met by the view");
    }
}
