//! The raw declaration: exactly what the TOML file says, nothing resolved.
//!
//! Every field is optional so that drop-ins can carry fragments; defaults and
//! cross-field rules live in `validate`. `deny_unknown_fields` everywhere turns a
//! typo into an error that names the key instead of a silently ignored setting.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnit {
    pub description: Option<String>,
    pub exec: Option<RawExec>,
    pub filesystem: Option<RawFilesystem>,
    pub namespaces: Option<RawNamespaces>,
    pub preopen: Option<RawPreopen>,
    pub landlock: Option<RawLandlock>,
    pub seccomp: Option<RawSeccomp>,
    pub capabilities: Option<RawCapabilities>,
    pub rlimits: Option<BTreeMap<String, RawRlimit>>,
    pub service: Option<RawService>,
    pub limits: Option<RawLimits>,
    pub broker: Option<RawBroker>,
}

/// How the supervisor runs the service (`capexec daemon`); `capexec exec` and
/// `capexec run` leave restarting and readiness to whoever started them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub restart: Option<String>,
    pub restart_delay: Option<Duration>,
    pub restart_delay_max: Option<Duration>,
    pub start_limit_burst: Option<u32>,
    pub start_limit_interval: Option<Duration>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<Duration>,
    pub ready_timeout: Option<Duration>,
    pub watchdog: Option<Duration>,
    pub autostart: Option<bool>,
    pub pid_file: Option<String>,
    pub ready_address: Option<Vec<String>>,
    pub success_exit_status: Option<Vec<RawExitStatus>>,
}

/// What the service may ask its broker for after it started (`[broker]`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    pub fs: Option<Vec<RawFsGrant>>,
    pub net: Option<RawNetGrants>,
    pub dns: Option<RawDnsGrant>,
    pub pwd: Option<Vec<String>>,
    pub grp: Option<Vec<String>>,
    pub syslog: Option<bool>,
    pub sysctl: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFsGrant {
    pub path: Option<String>,
    pub rights: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetGrants {
    pub connect: Option<Vec<String>>,
    pub bind: Option<Vec<String>>,
    pub guard: Option<bool>,
    pub ping: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsGrant {
    pub names: Option<Vec<String>>,
    pub families: Option<Vec<String>>,
}

/// Resource limits enforced through the service's cgroup.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory_max: Option<ByteSize>,
    pub tasks_max: Option<u64>,
    pub cpu_weight: Option<u64>,
}

/// A duration: an integer number of seconds, or a string such as "250ms",
/// "10s", "5min", "1h" (units may be combined: "1min 30s").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration: seconds as an integer, or a string like \"250ms\", \"10s\", \"5min\", \"1h\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v).map(|s| Duration(std::time::Duration::from_secs(s))).map_err(|_| E::custom(format!("duration {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map(Duration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration that does not parse (or overflows), as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration \"{0}\": use e.g. \"250ms\", \"10s\", \"5min\", \"1h\" (units: ms, s, min, h)")]
pub struct BadDuration(pub String);

pub fn parse_duration(s: &str) -> Result<std::time::Duration, BadDuration> {
    let bad = || BadDuration(s.to_owned());
    let mut total = std::time::Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let part = match unit {
            "ms" => std::time::Duration::from_millis(n),
            "s" | "" => std::time::Duration::from_secs(n),
            "min" => std::time::Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => std::time::Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

/// A size in bytes: an integer, or a string with a binary suffix K, M, G, T
/// ("512M" = 512 MiB), or "infinity".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub Option<u64>);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size: bytes as an integer, or a string like \"512M\", \"2G\", \"infinity\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(|b| ByteSize(Some(b))).map_err(|_| E::custom(format!("size {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                if v == "infinity" {
                    return Ok(ByteSize(None));
                }
                size_in_bytes(v)
                    .map(|b| ByteSize(Some(b)))
                    .ok_or_else(|| E::custom(format!("invalid size \"{v}\": use bytes, or a number with K, M, G or T (binary units), or \"infinity\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size as a string: a number of bytes, or one with K, M, G or T
/// (binary units). `None` for anything else, or one too large.
fn size_in_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, 'K')) => (&v[..i], 1u64 << 10),
        Some((i, 'M')) => (&v[..i], 1 << 20),
        Some((i, 'G')) => (&v[..i], 1 << 30),
        Some((i, 'T')) => (&v[..i], 1 << 40),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    pub argv: Option<Vec<String>>,
    pub fakeroot: Option<bool>,
    pub user: Option<NameOrId>,
    pub group: Option<NameOrId>,
    pub supplementary_groups: Option<Vec<NameOrId>>,
    pub environment: Option<BTreeMap<String, String>>,
    pub pass_environment: Option<Vec<String>>,
    pub working_directory: Option<String>,
    pub memory_deny_write_execute: Option<bool>,
    pub ignore_sigpipe: Option<bool>,
    pub umask: Option<String>,
    pub nice: Option<i64>,
    pub oom_score_adjust: Option<i64>,
    pub condition: Option<Vec<RawCommand>>,
    pub start_pre: Option<Vec<RawCommand>>,
    pub start_post: Option<Vec<RawCommand>>,
    pub reload: Option<Vec<RawCommand>>,
    pub stop: Option<Vec<RawCommand>>,
}

/// A command run around the service (`[[exec.condition]]`, `start_pre`, `start_post`,
/// `reload`, `stop`): systemd's `ExecStartPre=` and the others, their `-` prefix as
/// `ignore_failure`, `+` as `privileged`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    pub argv: Option<Vec<String>>,
    pub ignore_failure: Option<bool>,
    pub privileged: Option<bool>,
}

/// A user or group given as a name (`"www-data"`, `"dynamic"`) or a number (`33`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    Name(String),
    Id(u32),
}

impl<'de> Deserialize<'de> for NameOrId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NameOrId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a user or group name (string) or a numeric id (integer 0..4294967294)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NameOrId, E> {
                Ok(NameOrId::Name(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NameOrId, E> {
                match u32::try_from(v) {
                    Ok(id) if id != u32::MAX => Ok(NameOrId::Id(id)),
                    _ => Err(E::custom(format!("id {v} is out of range 0..4294967294"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    pub system: Option<bool>,
    pub read_only: Option<Vec<String>>,
    pub visible: Option<Vec<String>>,
    pub read_write: Option<Vec<String>>,
    pub read_write_exec: Option<Vec<String>>,
    pub executable: Option<Vec<String>>,
    pub tmpfs: Option<Vec<String>>,
    pub inaccessible: Option<Vec<String>>,
    pub runtime_directory: Option<Vec<String>>,
    pub state_directory: Option<Vec<String>>,
    pub cache_directory: Option<Vec<String>>,
    pub logs_directory: Option<Vec<String>>,
    pub runtime_directory_mode: Option<String>,
    pub state_directory_mode: Option<String>,
    pub cache_directory_mode: Option<String>,
    pub logs_directory_mode: Option<String>,
    pub directories_user: Option<NameOrId>,
    pub own_files: Option<Vec<String>>,
    pub as_owner: Option<Vec<String>>,
    pub overlay: Option<String>,
    pub copy_up: Option<Vec<String>>,
    pub private_tmp: Option<bool>,
    pub dev: Option<String>,
    pub syslog_sockets: Option<Vec<String>>,
    pub devices: Option<Vec<String>>,
    pub proc: Option<String>,
    pub host_processes: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNamespaces {
    pub user: Option<bool>,
    pub mount: Option<bool>,
    pub pid: Option<bool>,
    pub net: Option<String>,
    pub ipc: Option<bool>,
    pub uts: Option<bool>,
    pub cgroup: Option<bool>,
    pub hostname: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreopen {
    pub listen: Option<Vec<RawListen>>,
    pub file: Option<Vec<RawPreFile>>,
    pub directory: Option<Vec<RawPreDir>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub address: Option<String>,
    pub name: Option<String>,
    pub env: Option<String>,
    pub backlog: Option<u32>,
    pub socket_mode: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreFile {
    pub path: Option<String>,
    pub mode: Option<String>,
    pub create: Option<bool>,
    pub name: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreDir {
    pub path: Option<String>,
    pub name: Option<String>,
}

/// An exit status that counts as success: a code, or a signal by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawExitStatus {
    Code(i64),
    Signal(String),
}

/// A TCP port, or a range of them written "FIRST-LAST" (vsftpd's passive ports).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawPorts {
    One(u16),
    Range(String),
}

impl From<u16> for RawPorts {
    fn from(p: u16) -> RawPorts {
        RawPorts::One(p)
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLandlock {
    pub mode: Option<String>,
    pub bind_tcp: Option<Vec<RawPorts>>,
    pub connect_tcp: Option<Vec<RawPorts>>,
    pub scope_abstract_unix: Option<bool>,
    pub scope_signals: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeccomp {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub action: Option<String>,
    pub errno: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    pub keep: Option<Vec<String>>,
    pub bound: Option<Vec<String>>,
}

/// `nofile = 1024`, `nofile = "infinity"` or `nofile = { soft = 1024, hard = 4096 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRlimit {
    Both(LimitValue),
    Split { soft: LimitValue, hard: LimitValue },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LimitValue {
    Value(u64),
    Infinity,
    /// A size written with a unit (`"64M"`), in bytes: only for the limits
    /// that count bytes (validation says so for the others).
    Size(u64),
}

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = LimitValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer, a size such as \"64M\", or \"infinity\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LimitValue, E> {
                u64::try_from(v).map(LimitValue::Value).map_err(|_| E::custom(format!("limit {v} is negative; use an integer >= 0 or \"infinity\"")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LimitValue, E> {
                if v == "infinity" {
                    return Ok(LimitValue::Infinity);
                }
                size_in_bytes(v).map(LimitValue::Size).ok_or_else(|| {
                    E::custom(format!("invalid limit \"{v}\": use an integer >= 0, \"infinity\", or for a limit of bytes a size with K, M, G or T (\"64M\")"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawRlimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawRlimit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer, \"infinity\", or a table { soft = .., hard = .. }")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawRlimit, E> {
                LimitValue::deserialize(serde::de::value::I64Deserializer::new(v)).map(RawRlimit::Both)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRlimit, E> {
                LimitValue::deserialize(serde::de::value::StrDeserializer::new(v)).map(RawRlimit::Both)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawRlimit, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Split {
                    soft: LimitValue,
                    hard: LimitValue,
                }
                let s = Split::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawRlimit::Split { soft: s.soft, hard: s.hard })
            }
        }
        d.deserialize_any(V)
    }
}
