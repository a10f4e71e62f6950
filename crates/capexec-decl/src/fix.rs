//! What would allow a refusal: the declaration key, and the `capexec run`
//! flag in parentheses, worded once for every report that names one (the
//! daemon's denial trail, `capexec run`'s summary and `--explain`,
//! `capexec learn --check`).

use crate::spec::ServiceSpec;

/// For a syscall the filter refused. `None`: a number capexec does not know.
pub fn syscall(name: Option<&str>, spec: &ServiceSpec) -> String {
    match name {
        None => "nothing: capexec does not know this syscall number".into(),
        // Allowed by the list, so refused by capexec's argument rules.
        Some(n) if spec.seccomp.allowed.contains(n) => {
            format!("nothing: capexec refuses this use of {n} whatever the declaration says (new namespaces, device nodes, TIOCSTI, setuid bits, ...)")
        }
        Some(n) => format!("add \"{n}\" to [seccomp] allow (capexec run: --allow-syscall {n})"),
    }
}

/// How a path was used, for the list that would allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    Read,
    Write,
    Execute,
}

/// For a path the view or Landlock refused.
pub fn path(path: &str, how: PathUse) -> String {
    let (key, flag) = match how {
        PathUse::Read => ("read_only", "--ro"),
        PathUse::Write => ("read_write", "--rw"),
        PathUse::Execute => ("executable", "--exec-path"),
    };
    format!("add \"{path}\" to [filesystem] {key} (capexec run: {flag} {path})")
}

/// For a TCP connect (`bind` false) or bind Landlock refused.
pub fn tcp(bind: bool, port: u16) -> String {
    match bind {
        true => format!("add {port} to [landlock] bind_tcp (capexec run: --bind-tcp {port})"),
        false => format!("add {port} to [landlock] connect_tcp (capexec run: --connect-tcp {port})"),
    }
}

/// The `capexec run` flag in a fix (`--connect-tcp 9`), or the whole fix
/// when it has none.
pub fn run_flag(fix: &str) -> &str {
    fix.split_once("(capexec run: ").and_then(|(_, f)| f.strip_suffix(')')).unwrap_or(fix)
}
