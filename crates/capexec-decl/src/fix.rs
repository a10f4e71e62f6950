//! What would allow a refusal: the declaration key, and the `capexec run`
//! flag in parentheses, worded once for every report that names one (the
//! daemon's denial trail, `capexec run`'s summary and `--explain`,
//! `capexec learn --check`).

use crate::spec::ServiceSpec;

/// A syscall the filter refused, by number, as process `comm` made it:
/// what it was (`syscall NAME (NR) by COMM`) and what would allow it.
/// `None` for clone3: answered ENOSYS whatever the declaration says (its
/// flags sit in memory, where no filter can read them), and glibc falls
/// back to clone: no refusal of the service's, and nothing would allow it.
pub fn refused_syscall(nr: i64, comm: &str, spec: &ServiceSpec) -> Option<(String, String)> {
    let name = crate::syscalls::name_of(nr);
    if name == Some("clone3") {
        return None;
    }
    Some((format!("syscall {} ({nr}) by {comm}", name.unwrap_or("?")), syscall(name, spec)))
}

/// For a syscall the filter refused. `None`: a number capexec does not know.
pub fn syscall(name: Option<&str>, spec: &ServiceSpec) -> String {
    match name {
        None => "nothing: capexec does not know this syscall number".into(),
        // Allowed by the list, so refused by capexec's argument rules.
        Some(n) if spec.seccomp.allowed.contains(n) => {
            format!("nothing: capexec refuses this use of {n} whatever the declaration says ({})", argument_rule(n))
        }
        Some(n) => format!("add \"{n}\" to [seccomp] allow (capexec run: --allow-syscall {n})"),
    }
}

/// What capexec's argument rule for an allowed syscall refuses (the
/// sandbox's seccomp argument blocks), as a reader would look for it in the
/// program's own error: an audit record has the number, not the arguments.
pub fn argument_rule(name: &str) -> &'static str {
    match name {
        "clone" | "unshare" => "a new namespace",
        "socket" => "a family other than unix, netlink, inet and inet6, an inet protocol other than TCP and UDP (SCTP, MPTCP, ICMP), or a raw inet socket",
        "sendto" | "sendmsg" | "sendmmsg" | "setsockopt" => "TCP Fast Open, which connects where no connect rule looks",
        "chmod" | "fchmod" | "fchmodat" | "fchmodat2" | "creat" | "mkdir" | "mkdirat" | "open" | "openat" => "a setuid or setgid bit",
        "openat2" => "openat2 itself, whose flags no filter can read: programs fall back to openat",
        "mknod" | "mknodat" => "a device node, or a setuid or setgid bit",
        "ioctl" => "TIOCSTI and TIOCLINUX, which type into a terminal",
        "personality" => "READ_IMPLIES_EXEC and other personalities",
        "shmat" => "an executable attach (SHM_EXEC)",
        _ => "new namespaces, device nodes, TIOCSTI, setuid bits, ...",
    }
}

/// How a path was used, for the list that would allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    /// Only looked at (stat, access, readlink): shown, not read.
    Look,
    Read,
    Write,
    Execute,
    /// Written, and run or mapped executable (a library it compiled).
    WriteExecute,
}

/// For a path the view or Landlock refused.
pub fn path(path: &str, how: PathUse) -> String {
    let (key, flag) = match how {
        PathUse::Look => ("visible", "--visible"),
        PathUse::Read => ("read_only", "--ro"),
        PathUse::Write => ("read_write", "--rw"),
        PathUse::Execute => ("executable", "--exec-path"),
        PathUse::WriteExecute => ("read_write_exec", "--rw-exec"),
    };
    // Quoted as TOML (and JSON) write it: a path may hold a quote.
    let quoted = serde_json::to_string(path).expect("a string encodes");
    format!("add {quoted} to [filesystem] {key} (capexec run: {flag} {path})")
}

/// For a name lookup no `[broker.dns]` grant covers.
pub fn dns_name(name: &str) -> String {
    format!("add \"{name}\" to broker.dns.names")
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

/// What a fix asks to change in a declaration, read back from its text:
/// an item to add to a list, or a value to set.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowance {
    /// The table, as dotted keys (`seccomp`, `broker.net`).
    pub table: Vec<String>,
    pub key: String,
    pub value: toml::Value,
    /// Add `value` to the list at `key` (else set `key` to it).
    pub add: bool,
}

/// The change a fix written by this module (or the broker, the network
/// guard) names: `add "X" to [table] key`, `add 9 to [table] key`,
/// `add "X" to a.b.key`, `set [table] key = false`, `set a.key = true`;
/// `None` for anything else (a fix that changes no declaration key, or
/// takes something out).
pub fn allowance(fix: &str) -> Option<Allowance> {
    let fix = fix.split(" (capexec run: ").next().unwrap_or(fix);
    // `[table] key` or `table.key`.
    let place = |s: &str| -> Option<(Vec<String>, String)> {
        let s = s.trim();
        let (table, key) = match s.strip_prefix('[') {
            Some(rest) => {
                let (t, k) = rest.split_once("] ")?;
                (t.to_owned(), k.trim().to_owned())
            }
            None => {
                let (t, k) = s.rsplit_once('.')?;
                (t.to_owned(), k.to_owned())
            }
        };
        let ok = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let table: Vec<String> = table.split('.').map(str::to_owned).collect();
        (table.iter().all(|t| ok(t)) && ok(&key)).then_some((table, key))
    };
    let value = |s: &str| -> Option<toml::Value> {
        let s = s.trim();
        match s {
            "true" => Some(toml::Value::Boolean(true)),
            "false" => Some(toml::Value::Boolean(false)),
            _ if s.starts_with('"') => serde_json::from_str::<String>(s).ok().map(toml::Value::String),
            _ => s.parse::<i64>().ok().map(toml::Value::Integer),
        }
    };
    if let Some(rest) = fix.strip_prefix("add ") {
        let (v, target) = rest.rsplit_once(" to ")?;
        let (table, key) = place(target)?;
        return Some(Allowance { table, key, value: value(v)?, add: true });
    }
    let rest = fix.strip_prefix("set ")?;
    let (target, v) = rest.split_once(" = ")?;
    let (table, key) = place(target)?;
    Some(Allowance { table, key, value: value(v)?, add: false })
}

/// A refusal as a log line: `refused by seccomp: syscall mincore (27) by
/// perl; to allow it: add "mincore" to [seccomp] allow ...`. The same words
/// whichever part of capexec refused (the kernel's layers, the broker, the
/// network guard) and whoever writes the line (the daemon into a service's
/// log, `capexec exec` to the journal, a broker on its own).
pub fn refusal_line(mechanism: &str, what: &str, fix: &str) -> String {
    format!("refused by {mechanism}: {what}; to allow it: {fix}")
}

/// Refusal lines a service's log gets per [`REFUSAL_WINDOW`]; the rest are
/// counted: a service looping on a refused call must not flood the log.
pub const REFUSAL_LINES: u32 = 20;
pub const REFUSAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// The rate of refusal lines into one log ([`REFUSAL_LINES`] per
/// [`REFUSAL_WINDOW`]), and the refusal shown last: the same one again
/// within the window is counted, not shown (a service looping on one
/// refused call would spend the budget on it and hide what else it is
/// refused).
#[derive(Debug, Default)]
pub struct LineBudget {
    window: Option<std::time::Instant>,
    shown: u32,
    /// Not shown since the last line that was, over the rate.
    pending: u64,
    /// The line shown last, and how often it came again since, unshown.
    last: Option<String>,
    repeats: u64,
}

/// What to say before a refusal's line about those not shown since the
/// last line (see [`Unshown::lines`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unshown {
    /// The refusal shown last came again this many times.
    pub repeated: u64,
    /// Other refusals, over the rate.
    pub over_rate: u64,
}

impl Unshown {
    /// The lines that say so (none when nothing went unshown).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.repeated {
            0 => {}
            1 => out.push("(the last refusal shown came once more)".to_owned()),
            n => out.push(format!("(the last refusal shown came {n} more times)")),
        }
        if self.over_rate > 0 {
            out.push(not_shown(self.over_rate));
        }
        out
    }
}

impl LineBudget {
    /// Whether the refusal whose line is `line` gets it at `now`: `Some`
    /// with what went unshown since the last line (say that first), or
    /// `None`: counted instead. The same refusal as the last shown is shown
    /// again only in a later window.
    pub fn admit(&mut self, now: std::time::Instant, line: &str) -> Option<Unshown> {
        if self.window.is_none_or(|w| now.duration_since(w) >= REFUSAL_WINDOW) {
            self.window = Some(now);
            self.shown = 0;
        } else if self.last.as_deref() == Some(line) {
            self.repeats += 1;
            return None;
        }
        if self.shown >= REFUSAL_LINES {
            self.pending += 1;
            return None;
        }
        self.shown += 1;
        self.last = Some(line.to_owned());
        Some(self.take())
    }

    /// [`admit`](Self::admit) `n` times over for the same refusal at the
    /// same moment (repeats counted elsewhere and told as one): at most
    /// its first may be shown, the others are its repeats or over the rate.
    pub fn admit_n(&mut self, now: std::time::Instant, line: &str, n: u64) -> Option<Unshown> {
        let first = self.admit(now, line);
        let rest = n.saturating_sub(1);
        match self.last.as_deref() == Some(line) {
            true => self.repeats += rest,
            false => self.pending += rest,
        }
        first
    }

    /// What went unshown since the last line, for the log's last word.
    pub fn pending(&self) -> Unshown {
        Unshown { repeated: self.repeats, over_rate: self.pending }
    }

    fn take(&mut self) -> Unshown {
        Unshown { repeated: std::mem::take(&mut self.repeats), over_rate: std::mem::take(&mut self.pending) }
    }
}

/// How long the repeats of a refusal told are counted before they are
/// told ([`Repeats`]).
pub const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Distinct refusals whose repeats [`Repeats`] counts at once; past them,
/// each refusal is told as it comes (a program making more than this many
/// different refused calls a second is rare, and still bounded by the
/// rate of its own calls, each of which waits for its answer).
const REPEAT_KEYS: usize = 64;

/// Refusals told as they come, a loop on one counted: whoever answers a
/// service's refused calls one by one (the daemon, a broker) would
/// otherwise tell its reader once a call. The first of each refusal in a
/// [`REPEAT_WINDOW`] is told at once, its repeats are counted and told as
/// one with their count when the window ends: a loop costs the reader a
/// report a second, and the total stays exact. Keyed by what the refusal
/// was; `T` is what is told.
pub struct Repeats<T> {
    told: std::collections::HashMap<String, Told<T>>,
}

struct Told<T> {
    at: std::time::Instant,
    repeats: u64,
    item: T,
}

impl<T> Default for Repeats<T> {
    fn default() -> Self {
        Repeats { told: Default::default() }
    }
}

impl<T: Clone> Repeats<T> {
    /// Refusal `key` (told as `item`) at `now`: what to tell now with how
    /// many calls it stands for (the repeats counted before it, if its
    /// window had ended), or nothing: counted.
    pub fn add(&mut self, key: String, item: T, now: std::time::Instant) -> Option<(T, u64)> {
        if let Some(t) = self.told.get_mut(&key) {
            if now.duration_since(t.at) < REPEAT_WINDOW {
                t.repeats += 1;
                return None;
            }
            t.at = now;
            return Some((item, 1 + std::mem::take(&mut t.repeats)));
        }
        if self.told.len() >= REPEAT_KEYS {
            self.told.retain(|_, t| t.repeats > 0 || now.duration_since(t.at) < REPEAT_WINDOW);
        }
        if self.told.len() < REPEAT_KEYS {
            self.told.insert(key, Told { at: now, repeats: 0, item: item.clone() });
        }
        Some((item, 1))
    }

    /// The repeats of the refusals whose window has ended, each as one
    /// with their count; each such refusal starts a new window, so that a
    /// loop on it is told once a window.
    pub fn due(&mut self, now: std::time::Instant) -> Vec<(T, u64)> {
        let mut out = Vec::new();
        for t in self.told.values_mut().filter(|t| t.repeats > 0 && now.duration_since(t.at) >= REPEAT_WINDOW) {
            out.push((t.item.clone(), std::mem::take(&mut t.repeats)));
            t.at = now;
        }
        // The ones whose window ended with no repeats: nothing to keep.
        self.told.retain(|_, t| now.duration_since(t.at) < REPEAT_WINDOW);
        out
    }

    /// When [`due`](Self::due) has something next.
    pub fn next_due(&self) -> Option<std::time::Instant> {
        self.told.values().filter(|t| t.repeats > 0).map(|t| t.at + REPEAT_WINDOW).min()
    }

    /// Every repeat counted, the run being over.
    pub fn rest(&mut self) -> Vec<(T, u64)> {
        self.told.drain().filter(|(_, t)| t.repeats > 0).map(|(_, t)| (t.item, t.repeats)).collect()
    }
}

/// The line that says `n` refusals were not shown.
pub fn not_shown(n: u64) -> String {
    format!("({n} more refusals were not shown)")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop on one refused call: told at once, then once a window with
    /// the count of its repeats; nothing is lost, whatever the order of
    /// arrivals and flushes.
    #[test]
    fn a_loop_is_told_once_a_window_with_its_count() {
        let mut r = Repeats::default();
        let t0 = std::time::Instant::now();
        let ms = |n| t0 + std::time::Duration::from_millis(n);
        let mut told: Vec<(&str, u64)> = Vec::new();
        told.extend(r.add("a".into(), "a", t0));
        for i in 1..1000 {
            told.extend(r.add("a".into(), "a", ms(i)));
        }
        assert_eq!(told.len(), 1, "one told in the first window");
        assert_eq!(r.next_due(), Some(ms(1000)));
        assert!(r.due(ms(999)).is_empty());
        let due = r.due(ms(1000));
        assert_eq!(due, [("a", 999)]);
        told.extend(due);
        // Repeats after the flush: counted in the new window, then told
        // with the next arrival after it, or by the run's end.
        told.extend(r.add("a".into(), "a", ms(1500)));
        told.extend(r.add("a".into(), "a", ms(2100)));
        assert_eq!(told.last(), Some(&("a", 2)), "the repeat before it, and itself");
        told.extend(r.add("a".into(), "a", ms(2200)));
        told.extend(r.rest());
        assert_eq!(told.iter().map(|(_, n)| n).sum::<u64>(), 1003, "every call counted");
        assert_eq!(r.next_due(), None);
    }

    /// Different refusals are each told at once; past REPEAT_KEYS of them,
    /// each is told as it comes (none is lost, none is held).
    #[test]
    fn distinct_refusals_are_told_at_once_and_bounded() {
        let mut r = Repeats::default();
        let t0 = std::time::Instant::now();
        let told: Vec<_> = (0..200).filter_map(|i| r.add(format!("call {i}"), i, t0)).collect();
        assert_eq!(told.len(), 200);
        assert!(r.told.len() <= REPEAT_KEYS);
        let again: u64 = (0..200).filter_map(|i| r.add(format!("call {i}"), i, t0)).map(|(_, n)| n).sum();
        let later: u64 = r.due(t0 + REPEAT_WINDOW).iter().map(|(_, n)| n).sum();
        assert_eq!(again + later, 200, "each repeat told now or at its window's end");
        assert!(r.told.len() <= REPEAT_KEYS);
    }

    /// A loop on one refused call is one line, and the count of its
    /// repeats comes before the next line (in the window, or the next
    /// window's same refusal); different refusals spend the rate, and
    /// those over it are counted too.
    #[test]
    fn a_refusal_repeated_is_counted_not_shown_again() {
        let mut b = LineBudget::default();
        let t0 = std::time::Instant::now();
        assert_eq!(b.admit(t0, "a"), Some(Unshown::default()));
        for _ in 0..100 {
            assert_eq!(b.admit(t0, "a"), None);
        }
        assert_eq!(b.pending(), Unshown { repeated: 100, over_rate: 0 });
        let u = b.admit(t0, "b").unwrap();
        assert_eq!(u.lines(), ["(the last refusal shown came 100 more times)"]);
        // 18 more distinct lines fill the window; then each is over the rate.
        for i in 0..18 {
            assert!(b.admit(t0, &format!("c{i}")).is_some());
        }
        assert_eq!(b.admit(t0, "d"), None);
        assert_eq!(b.admit(t0, "c17"), None, "the last shown, again");
        assert_eq!(b.admit(t0, "e"), None);
        // The next window: the same refusal is shown again, with the counts.
        let u = b.admit(t0 + REFUSAL_WINDOW, "c17").unwrap();
        assert_eq!(u.lines(), ["(the last refusal shown came once more)", "(2 more refusals were not shown)"]);
        assert_eq!(b.admit(t0 + REFUSAL_WINDOW, "c17"), None);
    }

    /// `admit_n` is `admit` n times at one moment, whichever way each goes.
    #[test]
    fn admitting_n_at_once_is_admitting_one_n_times() {
        let t0 = std::time::Instant::now();
        // Before: nothing; the same line shown last; a full window.
        let starts: [&[&str]; 3] =
            [&[], &["a"], &["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x19"]];
        for start in starts {
            for n in [1, 2, 50] {
                let (mut one, mut many) = (LineBudget::default(), LineBudget::default());
                for l in start {
                    one.admit(t0, l);
                    many.admit(t0, l);
                }
                let firsts: Vec<_> = (0..n).filter_map(|_| one.admit(t0, "a")).collect();
                assert_eq!(many.admit_n(t0, "a", n), firsts.first().copied(), "{start:?} {n}");
                assert!(firsts.len() <= 1);
                assert_eq!(one.pending(), many.pending(), "{start:?} {n}");
            }
        }
    }

    #[test]
    fn every_fix_this_module_writes_reads_back() {
        let spec = crate::from_text("t", "[exec]\nargv = [\"/bin/true\"]\n", &crate::Context { rootless: false, uid: 0, gid: 0, unit_dir: None }).unwrap();
        let a = allowance(&syscall(Some("mincore"), &spec)).unwrap();
        assert_eq!((a.table, a.key.as_str(), a.value, a.add), (vec!["seccomp".to_owned()], "allow", toml::Value::String("mincore".into()), true));
        let a = allowance(&path("/srv/a \"b\" to x", PathUse::Write)).unwrap();
        assert_eq!((a.table[0].as_str(), a.key.as_str(), a.value.as_str()), ("filesystem", "read_write", Some("/srv/a \"b\" to x")));
        let a = allowance(&tcp(false, 9)).unwrap();
        assert_eq!((a.table[0].as_str(), a.key.as_str(), a.value.as_integer()), ("landlock", "connect_tcp", Some(9)));
        let a = allowance("add \"udp:127.0.0.1:9\" to broker.net.connect").unwrap();
        assert_eq!((a.table, a.key.as_str()), (vec!["broker".to_owned(), "net".to_owned()], "connect"));
        let a = allowance("set [landlock] scope_signals = false").unwrap();
        assert_eq!((a.key.as_str(), a.value.as_bool(), a.add), ("scope_signals", Some(false), false));
        assert_eq!(allowance(&syscall(None, &spec)), None);
        assert_eq!(allowance("take \"/x\" out of [filesystem] inaccessible"), None);
    }
}
