//! The control protocol between `capexec <command>` and the daemon, written
//! down in docs/control-protocol.md.
//!
//! One request per connection: a single line of JSON (at most
//! [`MAX_REQUEST`] bytes, newline-terminated), answered by one line of JSON —
//! or, for `logs --follow`, by a line per log line until the client hangs up.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// Requests are small (a command and some unit names); anything larger is
/// refused before it is parsed.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version; the daemon refuses others with a message.
    pub v: u32,
    #[serde(flatten)]
    pub req: Request,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Ping {},
    Start {
        units: Vec<String>,
    },
    Stop {
        units: Vec<String>,
    },
    Restart {
        units: Vec<String>,
    },
    /// Without `units`: re-read every declaration (daemon-wide), like
    /// SIGHUP. With: run those services' `exec.reload` commands.
    Reload {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        units: Vec<String>,
    },
    /// Empty `units`: every service.
    Status {
        units: Vec<String>,
    },
    List {},
    Logs {
        unit: String,
        lines: usize,
        follow: bool,
    },
    Enable {
        units: Vec<String>,
        now: bool,
    },
    Disable {
        units: Vec<String>,
        now: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to do about the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub result: serde_json::Value,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Response {
        Response { ok: true, error: None, hint: None, result }
    }

    pub fn err(error: impl Into<String>, hint: Option<String>) -> Response {
        Response { ok: false, error: Some(error.into()), hint, result: serde_json::Value::Null }
    }

    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a Response always serialises");
        s.push('\n');
        s
    }
}

/// One service as `capexec status` and `capexec list` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub description: String,
    pub state: String,
    /// How the current or last run ended, when it has: success, exit-failure,
    /// spawn-failed, ready-timeout, watchdog-timeout, start-limit.
    pub result: Option<String>,
    /// The declaration (and drop-ins) it was loaded from.
    pub sources: Vec<String>,
    /// Started with the daemon: the declaration's autostart, or `capexec enable`.
    pub enabled: bool,
    /// The service's own process, as the host sees it.
    pub main_pid: Option<i32>,
    /// The namespace init holding it.
    pub init_pid: Option<i32>,
    /// Seconds since the service became running (or started starting).
    pub uptime_secs: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    pub memory_bytes: Option<u64>,
    pub tasks: Option<u64>,
    /// The last STATUS= the service sent.
    pub status_text: Option<String>,
    /// The service has said RELOADING=1 and not yet READY=1.
    #[serde(default)]
    pub reloading: bool,
    pub log_lines_dropped: u64,
    /// The last few log lines.
    pub log_tail: Vec<String>,
    pub cgroup: Option<String>,
    /// The last launch or declaration error, if any.
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// What the kernel refused it (root daemons: the audit log).
    #[serde(default)]
    pub denials: DenialSummary,
}

/// A service's denial trail as `capexec status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DenialSummary {
    /// Refusals since the daemon loaded the service.
    pub total: u64,
    /// Of those, not written to its log (over the rate).
    pub not_shown: u64,
    /// The latest, oldest first; a refusal repeated in a row is one entry.
    pub recent: Vec<DenialEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DenialEntry {
    /// `seccomp` or `landlock`.
    pub mechanism: String,
    pub what: String,
    /// The declaration key, and `capexec run`'s flag, that would allow it.
    pub fix: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastExit {
    /// Exit status; 128+N when killed by signal N (as `capexec exec` reports it).
    pub code: Option<i32>,
    /// success, exit-failure, spawn-failed, ready-timeout, watchdog-timeout, start-limit.
    pub outcome: String,
    /// Seconds since the end.
    pub ago_secs: u64,
}
