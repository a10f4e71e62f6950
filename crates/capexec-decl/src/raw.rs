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
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    pub argv: Option<Vec<String>>,
    pub user: Option<NameOrId>,
    pub group: Option<NameOrId>,
    pub environment: Option<BTreeMap<String, String>>,
    pub pass_environment: Option<Vec<String>>,
    pub working_directory: Option<String>,
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
    pub read_write: Option<Vec<String>>,
    pub executable: Option<Vec<String>>,
    pub tmpfs: Option<Vec<String>>,
    pub inaccessible: Option<Vec<String>>,
    pub private_tmp: Option<bool>,
    pub dev: Option<String>,
    pub proc: Option<String>,
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

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLandlock {
    pub mode: Option<String>,
    pub bind_tcp: Option<Vec<u16>>,
    pub connect_tcp: Option<Vec<u16>>,
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
}

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = LimitValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer or \"infinity\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LimitValue, E> {
                u64::try_from(v)
                    .map(LimitValue::Value)
                    .map_err(|_| E::custom(format!("limit {v} is negative; use an integer >= 0 or \"infinity\"")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LimitValue, E> {
                if v == "infinity" {
                    Ok(LimitValue::Infinity)
                } else {
                    Err(E::custom(format!("invalid limit \"{v}\": use an integer >= 0 or \"infinity\"")))
                }
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
