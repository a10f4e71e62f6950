//! What capexec-oci does with each field of a config.json: the runtime-spec
//! (1.x, config.md and config-linux.md) field by field. A field the runtime
//! does not apply is never passed over in silence: where ignoring it would
//! leave the container less confined than its config asks (an AppArmor
//! profile, a memory limit), the config is refused and the field named;
//! where it would not (a scheduling hint), it is named in a warning.
//!
//! The check walks the JSON itself, not the typed config: serde drops what a
//! type does not know, and a field dropped there would be one ignored here.

use serde_json::Value;

/// What capexec-oci does with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Applied as the runtime-spec says.
    Applied,
    /// Applied, and what is inside is free-form (annotation keys, sysctl names).
    FreeForm,
    /// Not applied, and ignoring it would weaken the container's confinement
    /// or change what it runs: a config that sets it is refused.
    Refused(&'static str),
    /// Not applied; the container is no less confined without it.
    Ignored(&'static str),
}

const NOT_LINUX: &str = "a field of another platform: capexec-oci runs Linux containers only";
const NO_LSM: &str = "capexec-oci confines with Landlock and seccomp, not this security module: the profile or label would not be applied";
const NOT_YET: &str = "not applied by capexec-oci yet";
const CGROUP_NOT_YET: &str = "a resource limit capexec-oci does not set yet: the container would run without it";

/// Every field of runtime-spec 1.2 for Linux, by path: `.` between object
/// keys, `[]` for the elements of an array.
const FIELDS: &[(&str, Verdict)] = &[
    ("ociVersion", Verdict::Applied),
    ("root", Verdict::Applied),
    ("root.path", Verdict::Applied),
    ("root.readonly", Verdict::Applied),
    ("mounts", Verdict::Applied),
    ("mounts[]", Verdict::Applied),
    ("mounts[].destination", Verdict::Applied),
    ("mounts[].type", Verdict::Applied),
    ("mounts[].source", Verdict::Applied),
    ("mounts[].options", Verdict::Applied),
    ("mounts[].options[]", Verdict::Applied),
    ("mounts[].uidMappings", Verdict::Refused("idmapped mounts are not applied by capexec-oci yet: files would show their host owners")),
    ("mounts[].gidMappings", Verdict::Refused("idmapped mounts are not applied by capexec-oci yet: files would show their host owners")),
    ("process", Verdict::Applied),
    ("process.terminal", Verdict::Applied),
    ("process.consoleSize", Verdict::Applied),
    ("process.consoleSize.height", Verdict::Applied),
    ("process.consoleSize.width", Verdict::Applied),
    ("process.cwd", Verdict::Applied),
    ("process.env", Verdict::Applied),
    ("process.env[]", Verdict::Applied),
    ("process.args", Verdict::Applied),
    ("process.args[]", Verdict::Applied),
    ("process.commandLine", Verdict::Refused(NOT_LINUX)),
    ("process.rlimits", Verdict::Applied),
    ("process.rlimits[]", Verdict::Applied),
    ("process.rlimits[].type", Verdict::Applied),
    ("process.rlimits[].soft", Verdict::Applied),
    ("process.rlimits[].hard", Verdict::Applied),
    ("process.apparmorProfile", Verdict::Refused(NO_LSM)),
    ("process.capabilities", Verdict::Applied),
    ("process.capabilities.bounding", Verdict::Applied),
    ("process.capabilities.bounding[]", Verdict::Applied),
    ("process.capabilities.effective", Verdict::Applied),
    ("process.capabilities.effective[]", Verdict::Applied),
    ("process.capabilities.inheritable", Verdict::Applied),
    ("process.capabilities.inheritable[]", Verdict::Applied),
    ("process.capabilities.permitted", Verdict::Applied),
    ("process.capabilities.permitted[]", Verdict::Applied),
    ("process.capabilities.ambient", Verdict::Applied),
    ("process.capabilities.ambient[]", Verdict::Applied),
    ("process.noNewPrivileges", Verdict::Applied),
    ("process.oomScoreAdj", Verdict::Applied),
    ("process.scheduler", Verdict::Ignored("the container keeps the runtime's scheduling policy")),
    ("process.ioPriority", Verdict::Ignored("the container keeps the runtime's I/O priority")),
    ("process.execCPUAffinity", Verdict::Ignored("the container keeps the runtime's CPU affinity")),
    ("process.selinuxLabel", Verdict::Refused(NO_LSM)),
    ("process.user", Verdict::Applied),
    ("process.user.uid", Verdict::Applied),
    ("process.user.gid", Verdict::Applied),
    ("process.user.umask", Verdict::Applied),
    ("process.user.additionalGids", Verdict::Applied),
    ("process.user.additionalGids[]", Verdict::Applied),
    ("process.user.username", Verdict::Refused(NOT_LINUX)),
    ("hostname", Verdict::Applied),
    ("domainname", Verdict::Applied),
    ("hooks", Verdict::Applied),
    ("hooks.prestart", Verdict::Applied),
    ("hooks.createRuntime", Verdict::Applied),
    ("hooks.createContainer", Verdict::Applied),
    ("hooks.startContainer", Verdict::Applied),
    ("hooks.poststart", Verdict::Applied),
    ("hooks.poststop", Verdict::Applied),
    ("annotations", Verdict::FreeForm),
    ("linux", Verdict::Applied),
    ("linux.namespaces", Verdict::Applied),
    ("linux.namespaces[]", Verdict::Applied),
    ("linux.namespaces[].type", Verdict::Applied),
    ("linux.namespaces[].path", Verdict::Applied),
    ("linux.uidMappings", Verdict::Applied),
    ("linux.uidMappings[]", Verdict::Applied),
    ("linux.uidMappings[].containerID", Verdict::Applied),
    ("linux.uidMappings[].hostID", Verdict::Applied),
    ("linux.uidMappings[].size", Verdict::Applied),
    ("linux.gidMappings", Verdict::Applied),
    ("linux.gidMappings[]", Verdict::Applied),
    ("linux.gidMappings[].containerID", Verdict::Applied),
    ("linux.gidMappings[].hostID", Verdict::Applied),
    ("linux.gidMappings[].size", Verdict::Applied),
    ("linux.timeOffsets", Verdict::Refused("time namespace offsets are not applied by capexec-oci yet: the container would see the host's clocks")),
    ("linux.devices", Verdict::Applied),
    ("linux.devices[]", Verdict::Applied),
    ("linux.devices[].type", Verdict::Applied),
    ("linux.devices[].path", Verdict::Applied),
    ("linux.devices[].major", Verdict::Applied),
    ("linux.devices[].minor", Verdict::Applied),
    ("linux.devices[].fileMode", Verdict::Applied),
    ("linux.devices[].uid", Verdict::Applied),
    ("linux.devices[].gid", Verdict::Applied),
    ("linux.cgroupsPath", Verdict::Applied),
    ("linux.resources", Verdict::Applied),
    // The device rules: capexec-oci's /dev holds the standard nodes and
    // linux.devices, nothing else, so a rule can only narrow what is there.
    ("linux.resources.devices", Verdict::Applied),
    ("linux.resources.devices[]", Verdict::Applied),
    ("linux.resources.devices[].allow", Verdict::Applied),
    ("linux.resources.devices[].type", Verdict::Applied),
    ("linux.resources.devices[].major", Verdict::Applied),
    ("linux.resources.devices[].minor", Verdict::Applied),
    ("linux.resources.devices[].access", Verdict::Applied),
    ("linux.resources.memory", Verdict::Applied),
    ("linux.resources.memory.limit", Verdict::Applied),
    ("linux.resources.memory.reservation", Verdict::Applied),
    ("linux.resources.memory.swap", Verdict::Applied),
    ("linux.resources.memory.kernel", Verdict::Ignored("deprecated by the runtime-spec; no cgroup v2 control")),
    ("linux.resources.memory.kernelTCP", Verdict::Ignored("deprecated by the runtime-spec; no cgroup v2 control")),
    ("linux.resources.memory.swappiness", Verdict::Applied),
    ("linux.resources.memory.disableOOMKiller", Verdict::Applied),
    ("linux.resources.memory.useHierarchy", Verdict::Ignored("always true in cgroup v2")),
    ("linux.resources.memory.checkBeforeUpdate", Verdict::Ignored("for `update`, which capexec-oci does not have")),
    ("linux.resources.cpu", Verdict::Applied),
    ("linux.resources.cpu.shares", Verdict::Applied),
    ("linux.resources.cpu.quota", Verdict::Applied),
    ("linux.resources.cpu.burst", Verdict::Applied),
    ("linux.resources.cpu.period", Verdict::Applied),
    ("linux.resources.cpu.realtimeRuntime", Verdict::Applied),
    ("linux.resources.cpu.realtimePeriod", Verdict::Applied),
    ("linux.resources.cpu.cpus", Verdict::Applied),
    ("linux.resources.cpu.mems", Verdict::Applied),
    ("linux.resources.cpu.idle", Verdict::Ignored("a scheduling hint")),
    ("linux.resources.pids", Verdict::Applied),
    ("linux.resources.pids.limit", Verdict::Applied),
    ("linux.resources.blockIO", Verdict::Applied),
    ("linux.resources.blockIO.weight", Verdict::Applied),
    ("linux.resources.blockIO.leafWeight", Verdict::Applied),
    ("linux.resources.blockIO.weightDevice", Verdict::Applied),
    ("linux.resources.blockIO.weightDevice[]", Verdict::Applied),
    ("linux.resources.blockIO.weightDevice[].major", Verdict::Applied),
    ("linux.resources.blockIO.weightDevice[].minor", Verdict::Applied),
    ("linux.resources.blockIO.weightDevice[].weight", Verdict::Applied),
    ("linux.resources.blockIO.weightDevice[].leafWeight", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice[]", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice[].major", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice[].minor", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice[].rate", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice[]", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice[].major", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice[].minor", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice[].rate", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice[]", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice[].major", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice[].minor", Verdict::Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice[].rate", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice[]", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice[].major", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice[].minor", Verdict::Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice[].rate", Verdict::Applied),
    ("linux.resources.hugepageLimits", Verdict::Applied),
    ("linux.resources.hugepageLimits[]", Verdict::Applied),
    ("linux.resources.hugepageLimits[].pageSize", Verdict::Applied),
    ("linux.resources.hugepageLimits[].limit", Verdict::Applied),
    ("linux.resources.network", Verdict::Applied),
    ("linux.resources.network.classID", Verdict::Applied),
    ("linux.resources.network.priorities", Verdict::Applied),
    ("linux.resources.network.priorities[]", Verdict::Applied),
    ("linux.resources.network.priorities[].name", Verdict::Applied),
    ("linux.resources.network.priorities[].priority", Verdict::Applied),
    ("linux.resources.rdma", Verdict::Applied),
    ("linux.resources.rdma.*", Verdict::Applied),
    ("linux.resources.rdma.*.hcaHandles", Verdict::Applied),
    ("linux.resources.rdma.*.hcaObjects", Verdict::Applied),
    ("linux.resources.unified", Verdict::FreeForm),
    ("linux.intelRdt", Verdict::Refused(CGROUP_NOT_YET)),
    ("linux.sysctl", Verdict::FreeForm),
    ("linux.seccomp", Verdict::Applied),
    ("linux.seccomp.defaultAction", Verdict::Applied),
    ("linux.seccomp.defaultErrnoRet", Verdict::Applied),
    ("linux.seccomp.architectures", Verdict::Applied),
    ("linux.seccomp.architectures[]", Verdict::Applied),
    ("linux.seccomp.flags", Verdict::Applied),
    ("linux.seccomp.flags[]", Verdict::Applied),
    ("linux.seccomp.listenerPath", Verdict::Applied),
    ("linux.seccomp.listenerMetadata", Verdict::Applied),
    ("linux.seccomp.syscalls", Verdict::Applied),
    ("linux.seccomp.syscalls[]", Verdict::Applied),
    ("linux.seccomp.syscalls[].names", Verdict::Applied),
    ("linux.seccomp.syscalls[].names[]", Verdict::Applied),
    ("linux.seccomp.syscalls[].action", Verdict::Applied),
    ("linux.seccomp.syscalls[].errnoRet", Verdict::Applied),
    ("linux.seccomp.syscalls[].args", Verdict::Applied),
    ("linux.seccomp.syscalls[].args[]", Verdict::Applied),
    ("linux.seccomp.syscalls[].args[].index", Verdict::Applied),
    ("linux.seccomp.syscalls[].args[].value", Verdict::Applied),
    ("linux.seccomp.syscalls[].args[].valueTwo", Verdict::Applied),
    ("linux.seccomp.syscalls[].args[].op", Verdict::Applied),
    ("linux.rootfsPropagation", Verdict::Applied),
    ("linux.maskedPaths", Verdict::Applied),
    ("linux.maskedPaths[]", Verdict::Applied),
    ("linux.readonlyPaths", Verdict::Applied),
    ("linux.readonlyPaths[]", Verdict::Applied),
    ("linux.mountLabel", Verdict::Refused(NO_LSM)),
    ("linux.personality", Verdict::Refused(NOT_YET)),
    ("linux.memoryPolicy", Verdict::Refused(NOT_YET)),
    ("linux.netDevices", Verdict::Refused("moving host network devices into the container is not done by capexec-oci yet")),
    ("solaris", Verdict::Refused(NOT_LINUX)),
    ("windows", Verdict::Refused(NOT_LINUX)),
    ("vm", Verdict::Refused(NOT_LINUX)),
    ("zos", Verdict::Refused(NOT_LINUX)),
];

/// The verdict on the field at `path` (see [`FIELDS`]); a hook's entries are
/// one shape whatever the hook.
pub fn verdict(path: &str) -> Option<Verdict> {
    if let Some(rest) = path.strip_prefix("hooks.").and_then(|p| p.split_once("[]")).map(|(_, rest)| rest) {
        return matches!(rest, "" | ".path" | ".args" | ".args[]" | ".env" | ".env[]" | ".timeout").then_some(Verdict::Applied);
    }
    FIELDS.iter().find(|(p, _)| *p == path).map(|(_, v)| *v)
}

/// A field the runtime does not apply, where the config sets it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// As in the config: `linux.resources.memory.swap`, `mounts[2].uidMappings`.
    pub field: String,
    /// Refused: the config does not run. Ignored: it runs without the field.
    pub refused: bool,
    pub why: String,
}

/// Every field of `config` that capexec-oci refuses or ignores, by path
/// (object keys in sorted order). A field it does not know (not in runtime-spec 1.2, or a
/// misspelling) is refused: what it asks for would not happen.
pub fn check(config: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    walk(config, &mut String::new(), &mut String::new(), &mut out);
    out
}

/// Objects whose keys are names (a device's), not fields: `*` in [`FIELDS`].
const KEYED_MAPS: [&str; 1] = ["linux.resources.rdma"];

/// `pattern` is the path with `[]` for array indices (looked up in
/// [`FIELDS`]), `shown` the same path with the indices (for the user).
fn walk(v: &Value, pattern: &mut String, shown: &mut String, out: &mut Vec<Finding>) {
    match v {
        Value::Object(m) => {
            // A map's keys are names (`*` in FIELDS), its values fields.
            let keyed = KEYED_MAPS.contains(&pattern.as_str());
            for (k, child) in m {
                let (p0, s0) = (pattern.len(), shown.len());
                for (s, part) in [(&mut *pattern, if keyed { "*" } else { k.as_str() }), (&mut *shown, k.as_str())] {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(part);
                }
                visit(child, pattern, shown, out);
                pattern.truncate(p0);
                shown.truncate(s0);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let (p0, s0) = (pattern.len(), shown.len());
                pattern.push_str("[]");
                shown.push_str(&format!("[{i}]"));
                visit(child, pattern, shown, out);
                pattern.truncate(p0);
                shown.truncate(s0);
            }
        }
        _ => {}
    }
}

fn visit(v: &Value, pattern: &mut String, shown: &mut String, out: &mut Vec<Finding>) {
    match verdict(pattern) {
        Some(Verdict::Applied) => walk(v, pattern, shown, out),
        Some(Verdict::FreeForm) => {}
        // Set to nothing (as generators write an empty label): nothing to apply.
        Some(Verdict::Refused(_) | Verdict::Ignored(_)) if unset(v) => {}
        Some(Verdict::Refused(why)) => out.push(Finding { field: shown.clone(), refused: true, why: why.into() }),
        Some(Verdict::Ignored(why)) => out.push(Finding { field: shown.clone(), refused: false, why: why.into() }),
        None => out.push(Finding {
            field: shown.clone(),
            refused: true,
            why: "not a field of the OCI runtime-spec 1.2 that capexec-oci knows (a newer spec, or a misspelling): what it asks for would not happen".into(),
        }),
    }
}

fn unset(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_runc_spec_config_is_applied_whole() {
        // What `runc spec` writes (1.1.5), less its comments.
        let config = json!({
            "ociVersion": "1.0.2-dev",
            "process": {"terminal": true, "user": {"uid": 0, "gid": 0}, "args": ["sh"], "env": ["PATH=/usr/bin", "TERM=xterm"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "runc",
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
                "maskedPaths": ["/proc/acpi"], "readonlyPaths": ["/proc/bus"]}
        });
        assert_eq!(check(&config), vec![]);
    }

    #[test]
    fn what_is_not_applied_is_named_and_refused_where_it_confines() {
        let config = json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["sh"], "cwd": "/", "apparmorProfile": "docker-default", "selinuxLabel": "", "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}},
            "mounts": [{"destination": "/proc", "type": "proc"}, {"destination": "/data", "source": "/srv", "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}],
            "linux": {"resources": {"memory": {"limit": 1048576}, "cpu": {"burst": 5}, "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjectz": 1}}},
                      "sysctl": {}, "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "flagz": ["x"]}},
            "annotations": {"anything.goes": "here"},
            "hooks": {"prestart": [{"path": "/bin/true", "timeout": 5}], "poststop": [{"path": "/bin/true", "argz": []}]}
        });
        let got: Vec<(String, bool)> = check(&config).into_iter().map(|f| (f.field, f.refused)).collect();
        let want = [
            ("hooks.poststop[0].argz", true),
            ("linux.resources.rdma.mlx5_1.hcaObjectz", true),
            ("linux.seccomp.flagz", true),
            ("mounts[1].uidMappings", true),
            ("process.apparmorProfile", true),
            ("process.ioPriority", false),
        ];
        assert_eq!(got, want.map(|(f, r)| (f.to_owned(), r)));
    }

    #[test]
    fn every_listed_field_is_under_a_listed_parent() {
        for (path, _) in FIELDS {
            let parent = path.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
            let parent = parent.strip_suffix("[]").unwrap_or(parent);
            let array_parent = path.strip_suffix("[]");
            assert!(parent.is_empty() || verdict(parent).is_some() || array_parent.is_some_and(|p| verdict(p).is_some()), "{path} has no listed parent");
        }
    }
}
