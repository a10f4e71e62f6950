//! A service's denial trail: what the kernel refused it (from the audit
//! records, see `audit`), each with the declaration key, and the `capexec
//! run` flag, that would allow it. Shown in the service's log, at a bounded
//! rate: a service looping on a refused call costs the daemon a counter,
//! not a line per call.

use crate::audit::Record;
use capexec_decl::ServiceSpec;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// Lines a service's log gets per window; the rest are counted.
const LINES_PER_WINDOW: u32 = 20;
const WINDOW: Duration = Duration::from_secs(10);
/// Refusals kept for `capexec status` and the JSON view.
const KEPT: usize = 64;

/// One refusal, as the trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    #[serde(skip)]
    pub at: Option<SystemTime>,
    /// `seccomp` or `landlock`.
    pub mechanism: &'static str,
    /// What was refused: `syscall unshare (272)`, `TCP connect to port 9`.
    pub what: String,
    /// What would allow it.
    pub fix: String,
    /// The process, as the kernel named it.
    pub pid: Option<i32>,
    /// How many times in a row (the same refusal repeated).
    pub count: u64,
}

impl Denial {
    pub fn line(&self) -> String {
        format!("refused by {}: {}; to allow it: {}", self.mechanism, self.what, self.fix)
    }
}

/// What the daemon keeps of a service's refusals.
#[derive(Debug, Default)]
pub struct Trail {
    pub recent: VecDeque<Denial>,
    pub total: u64,
    /// Refusals not written to the log (over the rate).
    pub not_shown: u64,
    window: Option<Instant>,
    shown: u32,
    /// Not shown since the last line that was.
    pending: u64,
}

impl Trail {
    /// Adds a refusal; returns the line(s) for the service's log, if the
    /// rate allows one now.
    pub fn add(&mut self, d: Denial, now: Instant) -> Option<String> {
        self.total += 1;
        match self.recent.back_mut() {
            Some(last) if last.mechanism == d.mechanism && last.what == d.what => last.count += 1,
            _ => {
                if self.recent.len() == KEPT {
                    self.recent.pop_front();
                }
                self.recent.push_back(Denial { count: 1, ..d.clone() });
            }
        }
        if self.window.is_none_or(|w| now.duration_since(w) >= WINDOW) {
            self.window = Some(now);
            self.shown = 0;
        }
        if self.shown >= LINES_PER_WINDOW {
            self.not_shown += 1;
            self.pending += 1;
            return None;
        }
        self.shown += 1;
        let before = std::mem::take(&mut self.pending);
        Some(match before {
            0 => d.line(),
            n => format!("({n} more refusals were not shown: `capexec status --json` counts them)\n{}", d.line()),
        })
    }
}

/// The fix for `r`, by the declaration's key and `capexec run`'s flag.
pub fn describe(r: &Record, spec: &ServiceSpec) -> Option<(&'static str, String, String)> {
    match r {
        Record::Seccomp { nr, comm, .. } => {
            let name = capexec_decl::syscalls::name_of(*nr);
            let what = format!("syscall {} ({nr}) by {comm}", name.unwrap_or("?"));
            let fix = match name {
                None => "nothing: capexec does not know this syscall number".into(),
                // Allowed by the list, so refused by capexec's argument rules.
                Some(n) if spec.seccomp.allowed.contains(n) => {
                    format!("nothing: capexec refuses this use of {n} whatever the declaration says (new namespaces, device nodes, TIOCSTI, ...)")
                }
                Some(n) => format!("add \"{n}\" to [seccomp] allow (capexec run: --allow-syscall {n})"),
            };
            Some(("seccomp", what, fix))
        }
        Record::LandlockAccess { blockers, object, .. } => {
            let value = |k: &str| object.split(' ').find_map(|w| w.strip_prefix(k)?.strip_prefix('=')).map(|v| v.trim_matches('"').to_owned());
            let (what, fix) = match blockers.as_str() {
                "net.connect_tcp" => {
                    let port = value("dest").unwrap_or_default();
                    (
                        format!("TCP connect to {}:{port}", value("daddr").unwrap_or_default()),
                        format!("add {port} to [landlock] connect_tcp (capexec run: --connect-tcp {port})"),
                    )
                }
                "net.bind_tcp" => {
                    let port = value("src").unwrap_or_default();
                    (format!("TCP bind to port {port}"), format!("add {port} to [landlock] bind_tcp (capexec run: --bind-tcp {port})"))
                }
                "scope.signal" => ("a signal to a process outside the service".into(), "set [landlock] scope_signals = false".into()),
                "scope.abstract_unix_socket" => {
                    ("a connection to an abstract Unix socket outside the service".into(), "set [landlock] scope_abstract_unix = false".into())
                }
                b if b.starts_with("fs.") => {
                    let path = value("path").unwrap_or_else(|| object.clone());
                    let (key, flag) = if b.split(',').all(|x| matches!(x, "fs.read_file" | "fs.read_dir")) {
                        ("read_only", "--ro")
                    } else if b == "fs.execute" {
                        ("executable", "--exec-path")
                    } else {
                        ("read_write", "--rw")
                    };
                    (format!("{b} on {path}"), format!("add \"{path}\" to [filesystem] {key} (capexec run: {flag} {path})"))
                }
                b => (format!("{b} ({object})"), "see docs/declaration.md".into()),
            };
            Some(("landlock", what, fix))
        }
        Record::LandlockDomain { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(what: &str) -> Denial {
        Denial { at: None, mechanism: "seccomp", what: what.into(), fix: "f".into(), pid: None, count: 0 }
    }

    #[test]
    fn a_loop_of_refusals_is_counted_not_logged() {
        let mut t = Trail::default();
        let now = Instant::now();
        let lines: Vec<_> = (0..1000).filter_map(|i| t.add(denial(&format!("call {}", i % 2)), now)).collect();
        assert_eq!((lines.len(), t.total, t.not_shown), (LINES_PER_WINDOW as usize, 1000, 980));
        assert_eq!(t.recent.len(), KEPT, "bounded");
        // The next window says how many it did not show.
        let next = t.add(denial("x"), now + WINDOW).unwrap();
        assert!(next.starts_with("(980 more refusals were not shown"), "{next}");
        // The same refusal repeated is one entry with a count.
        let mut t = Trail::default();
        for _ in 0..5 {
            t.add(denial("same"), now);
        }
        assert_eq!((t.recent.len(), t.recent[0].count), (1, 5));
    }
}
