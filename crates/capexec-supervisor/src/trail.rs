//! A service's denial trail: what the kernel refused it (from the audit
//! records, see `audit`), each with the declaration key, and the `capexec
//! run` flag, that would allow it. Shown in the service's log, at a bounded
//! rate: a service looping on a refused call costs the daemon a counter,
//! not a line per call.

use crate::audit::Record;
use capexec_decl::fix;
use capexec_decl::ServiceSpec;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// Refusals kept for `capexec status` and the JSON view.
const KEPT: usize = 64;

/// One refusal, as the trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    #[serde(skip)]
    pub at: Option<SystemTime>,
    /// `seccomp`, `landlock`, `broker` or `bpf`.
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
        fix::refusal_line(self.mechanism, &self.what, &self.fix)
    }
}

/// What the daemon keeps of a service's refusals.
#[derive(Debug, Default)]
pub struct Trail {
    pub recent: VecDeque<Denial>,
    pub total: u64,
    /// Refusals not written to the log: over the rate, or the refusal of
    /// the last line again within its window.
    pub not_shown: u64,
    budget: fix::LineBudget,
}

impl Trail {
    /// Adds a refusal; returns the line(s) for the service's log, if the
    /// rate allows one now.
    pub fn add(&mut self, d: Denial, now: Instant) -> Option<String> {
        self.admit(d, now).map(|(unshown, d)| {
            let mut lines = fix::Unshown { over_rate: 0, ..unshown }.lines();
            if unshown.over_rate > 0 {
                lines.push(format!("({} more refusals were not shown: `capexec status --json` counts them)", unshown.over_rate));
            }
            lines.push(d.line());
            lines.join("\n")
        })
    }

    /// Adds a refusal; returns it with what went unshown since the last
    /// line, if it is to be shown now.
    /// A denial whose `count` is above 1 stands for that many of the same
    /// refusal, counted where they came from (`fix::Repeats`).
    fn admit(&mut self, d: Denial, now: Instant) -> Option<(fix::Unshown, Denial)> {
        let n = d.count.max(1);
        self.total += n;
        match self.recent.back_mut() {
            Some(last) if last.mechanism == d.mechanism && last.what == d.what => last.count += n,
            _ => {
                if self.recent.len() == KEPT {
                    self.recent.pop_front();
                }
                self.recent.push_back(Denial { count: n, ..d.clone() });
            }
        }
        let unshown = self.budget.admit_n(now, &d.line(), n);
        self.not_shown += n - u64::from(unshown.is_some());
        unshown.map(|u| (u, d))
    }
}

/// A refusal the service's broker reported: a grant's (declaration keys
/// only: `capexec run` has no broker), or rootless, where its listener
/// hears them, a syscall the service's filter refused.
pub fn broker_denial(r: capexec_broker::Report) -> Denial {
    Denial { at: Some(SystemTime::now()), mechanism: r.by.name(), what: r.what, fix: r.fix, pid: r.pid, count: r.count.max(1) }
}

/// A refusal by the network guard (its grants are `[broker.net]`
/// declaration keys: `capexec run` gives no host sockets to guard).
pub fn guard_denial(r: &capexec_sandbox::netguard::Refusal) -> Denial {
    use capexec_sandbox::netguard::RefusedOp;
    let proto = r.proto.unwrap_or(capexec_decl::grants::Proto::Udp);
    let grant = capexec_decl::grants::NetGrant::exact(proto, std::net::SocketAddr::new(r.addr, r.port));
    let grantable = |what: &str, key: &str| (format!("{what} {grant} on a host socket"), format!("add \"{grant}\" to broker.net.{key}"));
    let (what, fix) = match r.op {
        RefusedOp::Ping => {
            let to = capexec_decl::grants::AddrRange::exact(r.addr);
            (format!("ping (ICMP echo request) to {to}"), format!("add \"{to}\" to broker.net.ping"))
        }
        // iputils' ping connects a UDP socket to port 1025 of its target
        // (sending nothing) to learn its source address.
        RefusedOp::Connect if r.proto == Some(capexec_decl::grants::Proto::Udp) && r.port == 1025 => {
            let (what, fix) = grantable("connect to", "connect");
            let to = capexec_decl::grants::AddrRange::exact(r.addr);
            (what, format!("add \"{to}\" to broker.net.ping if ping made it (its probe for a source address, which sends nothing); else {fix}"))
        }
        RefusedOp::Connect => grantable("connect to", "connect"),
        RefusedOp::Bind => grantable("bind to", "bind"),
        RefusedOp::Send => grantable("datagram to", "connect"),
        // No grant allows it: where a packet goes is what the grants say.
        RefusedOp::Route => (
            format!("a packet that names its own route (IP options or an IPv6 routing header), first to {}, on a host socket", r.addr),
            "none: the program must not set IP_OPTIONS, IP_RETOPTS or IPV6_RTHDR".to_owned(),
        ),
    };
    Denial { at: Some(SystemTime::now()), mechanism: "bpf", what, fix, pid: i32::try_from(r.pid).ok(), count: 1 }
}

/// A connect in the service's own network namespace to a loopback address
/// its `[broker.net] bind` grants put on the host (named's control channel,
/// which its `rndc stop` reaches for): the port, when so.
fn own_reach_of_a_host_listener(spec: &ServiceSpec, daddr: &str, port: &str) -> Option<u16> {
    let port: u16 = port.parse().ok()?;
    let ip: std::net::IpAddr = daddr.parse().ok()?;
    let on_host = |ip| spec.broker.bind_grant(capexec_decl::grants::Proto::Tcp, std::net::SocketAddr::new(ip, port)).is_some();
    (spec.namespaces.net == capexec_decl::spec::NetMode::None && ip.is_loopback() && on_host(ip)).then_some(port)
}

/// A connect to a loopback address under `net = "none"`: the service's own
/// loopback, where the broker lets it go (a connect to a host port not
/// granted). Landlock refused the port; what the service meant is most
/// often the host's port (blackbox exporter probing a local target), which
/// a broker grant gives. The address, when so.
fn own_loopback(spec: &ServiceSpec, daddr: &str, port: &str) -> Option<std::net::SocketAddr> {
    let ip: std::net::IpAddr = daddr.parse().ok()?;
    let addr = std::net::SocketAddr::new(ip, port.parse().ok()?);
    (spec.namespaces.net == capexec_decl::spec::NetMode::None && ip.is_loopback()).then_some(addr)
}

/// The fix for `r`, by the declaration's key and `capexec run`'s flag.
pub fn describe(r: &Record, spec: &ServiceSpec) -> Option<(&'static str, String, String)> {
    match r {
        Record::Seccomp { nr, comm, .. } => fix::refused_syscall(*nr, comm, spec).map(|(what, fix)| ("seccomp", what, fix)),
        Record::LandlockAccess { blockers, object, .. } => {
            let value = |k: &str| object.split(' ').find_map(|w| w.strip_prefix(k)?.strip_prefix('=')).map(|v| v.trim_matches('"').to_owned());
            let (what, fix) = match blockers.as_str() {
                "net.connect_tcp" => {
                    let port = value("dest").unwrap_or_default();
                    let daddr = value("daddr").unwrap_or_default();
                    let mut what = format!("TCP connect to {daddr}:{port}");
                    let fix = match own_reach_of_a_host_listener(spec, &daddr, &port) {
                        Some(p) => format!(
                            "its commands run in the service's own network, where the port {p} the broker binds on the host is not: \
                             move {p} from [broker.net] bind to [landlock] bind_tcp and connect_tcp (then the service's own processes alone reach it)"
                        ),
                        None => match own_loopback(spec, &daddr, &port) {
                            Some(host) => {
                                what.push_str(" in the service's own network, whose loopback is not the host's (a port its own processes listen on goes in [landlock] connect_tcp)");
                                format!("add \"{}\" to broker.net.connect", capexec_decl::grants::NetGrant::exact(capexec_decl::grants::Proto::Tcp, host))
                            }
                            None => fix::tcp(false, port.parse().unwrap_or(0)),
                        },
                    };
                    (what, fix)
                }
                "net.bind_tcp" => {
                    let port = value("src").unwrap_or_default();
                    (format!("TCP bind to port {port}"), fix::tcp(true, port.parse().unwrap_or(0)))
                }
                "scope.signal" => ("a signal to a process outside the service".into(), "set [landlock] scope_signals = false".into()),
                "scope.abstract_unix_socket" => {
                    ("a connection to an abstract Unix socket outside the service".into(), "set [landlock] scope_abstract_unix = false".into())
                }
                b if b.starts_with("fs.") => {
                    let path = value("path").unwrap_or_else(|| object.clone());
                    let how = if b.split(',').all(|x| matches!(x, "fs.read_file" | "fs.read_dir")) {
                        fix::PathUse::Read
                    } else if b == "fs.execute" {
                        fix::PathUse::Execute
                    } else {
                        fix::PathUse::Write
                    };
                    (format!("{b} on {path}"), fix::path(&path, how))
                }
                b => (format!("{b} ({object})"), "see docs/declaration.md".into()),
            };
            Some(("landlock", what, fix))
        }
        Record::LandlockDomain { .. } | Record::Marker(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(what: &str) -> Denial {
        Denial { at: None, mechanism: "seccomp", what: what.into(), fix: "f".into(), pid: None, count: 0 }
    }

    #[test]
    fn lineage_climbs_the_parents() {
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        assert_eq!(lineage(me).next(), Some(me));
        assert!(parent <= 1 || descends_from(me, parent));
        assert!(!descends_from(me, me) && !descends_from(i32::MAX, me));
    }

    /// A path Landlock refused (the view refuses first in every case a
    /// program meets by itself: a read-only mount says EROFS, an absent
    /// path ENOENT; Landlock's own come through links into other trees),
    /// with the list its use asks for.
    #[test]
    fn a_landlock_path_refusal_names_its_list() {
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", "[exec]\nargv = [\"/bin/true\"]\n", &ctx).unwrap();
        for (blockers, key) in [
            ("fs.read_file", "read_only"),
            ("fs.read_file,fs.read_dir", "read_only"),
            ("fs.execute", "executable"),
            ("fs.write_file", "read_write"),
            ("fs.truncate", "read_write"),
        ] {
            let r = Record::LandlockAccess { domain: "1a".into(), blockers: blockers.into(), object: "path=\"/srv/data/f\" dev=\"vda\" ino=12".into() };
            let (mechanism, what, fix) = describe(&r, &spec).unwrap();
            assert_eq!((mechanism, what), ("landlock", format!("{blockers} on /srv/data/f")));
            assert!(fix.starts_with(&format!("add \"/srv/data/f\" to [filesystem] {key} (capexec run: --")), "{blockers}: {fix}");
        }
    }

    /// A command run around the program (named's `rndc stop`) connects in
    /// the service's own network namespace to the control port the broker
    /// binds on the host for the program: connect_tcp alone would not reach
    /// it, so the fix says to move the port into the service's own network.
    #[test]
    fn a_connect_to_the_programs_host_listener_says_to_move_it() {
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let text = "[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"none\"\n[broker.net]\nbind = [\"tcp:127.0.0.1:953\"]\n";
        let spec = capexec_decl::from_text("t", text, &ctx).unwrap();
        let connect = |daddr: &str, dest: u16| Record::LandlockAccess {
            domain: "1a".into(),
            blockers: "net.connect_tcp".into(),
            object: format!("opid=7 ocomm=\"rndc\" daddr={daddr} dest={dest}"),
        };
        let (_, what, fix) = describe(&connect("127.0.0.1", 953), &spec).unwrap();
        assert_eq!(what, "TCP connect to 127.0.0.1:953");
        assert!(fix.contains("move 953 from [broker.net] bind to [landlock] bind_tcp and connect_tcp"), "{fix}");
        let (_, _, fix) = describe(&connect("192.0.2.1", 953), &spec).unwrap();
        assert!(fix.starts_with("add 953 to [landlock] connect_tcp"), "{fix}");
        // Another loopback port: most often the host's was meant (blackbox
        // exporter probing a local target), which a broker grant reaches.
        let (_, what, fix) = describe(&connect("127.0.0.1", 954), &spec).unwrap();
        assert_eq!(fix, "add \"tcp:127.0.0.1:954\" to broker.net.connect");
        assert!(what.starts_with("TCP connect to 127.0.0.1:954 in the service's own network, whose loopback is not the host's"), "{what}");
        assert!(fix::allowance(&fix).is_some_and(|a| a.key == "connect" && a.table == ["broker", "net"]), "a fix the suggested drop-in can take");
        let (_, _, fix) = describe(&connect("::1", 954), &spec).unwrap();
        assert_eq!(fix, "add \"tcp:[::1]:954\" to broker.net.connect");
        // With the host's network, the loopback is the host's: the port alone.
        let host = capexec_decl::from_text("h", "[exec]\nargv = [\"/bin/true\"]\n[namespaces]\nnet = \"host\"\n", &ctx).unwrap();
        let (_, _, fix) = describe(&connect("127.0.0.1", 954), &host).unwrap();
        assert!(fix.starts_with("add 954 to [landlock] connect_tcp"), "{fix}");
    }

    /// clone3 is answered ENOSYS by the filter's prologue whatever the
    /// declaration says, and glibc falls back to clone: every threaded
    /// service would show it, with a fix that does nothing.
    #[test]
    fn clone3_is_no_refusal() {
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("t", "[exec]\nargv = [\"/bin/true\"]\n", &ctx).unwrap();
        let seccomp = |nr| Record::Seccomp { pid: 7, nr, comm: "app".into() };
        assert_eq!(describe(&seccomp(libc::SYS_clone3), &spec), None);
        assert!(describe(&seccomp(libc::SYS_mincore), &spec).is_some_and(|(_, what, _)| what.starts_with("syscall mincore")));
    }

    #[test]
    fn a_loop_of_refusals_is_counted_not_logged() {
        let mut t = Trail::default();
        let now = Instant::now();
        let lines: Vec<_> = (0..1000).filter_map(|i| t.add(denial(&format!("call {}", i % 2)), now)).collect();
        assert_eq!((lines.len(), t.total, t.not_shown), (fix::REFUSAL_LINES as usize, 1000, 980));
        assert_eq!(t.recent.len(), KEPT, "bounded");
        // The next window says how many it did not show: the last line's
        // refusal (call 1) again, and the others over the rate.
        let next = t.add(denial("x"), now + fix::REFUSAL_WINDOW).unwrap();
        assert!(next.starts_with("(the last refusal shown came 490 more times)\n(490 more refusals were not shown"), "{next}");
        // The same refusal repeated is one entry with a count, and one line.
        let mut t = Trail::default();
        let lines = (0..5).filter_map(|_| t.add(denial("same"), now)).count();
        assert_eq!((t.recent.len(), t.recent[0].count, lines), (1, 5, 1));
    }

    /// A denial that stands for n (repeats counted at their source) counts
    /// as n, in the total, the entry and what the log did not show.
    #[test]
    fn a_denial_with_a_count_counts_that_many() {
        let now = Instant::now();
        let (mut one, mut many) = (Trail::default(), Trail::default());
        let shown_one = (0..40).filter(|_| one.add(denial("same"), now).is_some()).count();
        let shown_many = [1, 39].into_iter().filter(|n| many.add(Denial { count: *n, ..denial("same") }, now).is_some()).count();
        assert_eq!((shown_one, one.total, one.not_shown, one.recent[0].count), (1, 40, 39, 40));
        assert_eq!((shown_many, many.total, many.not_shown, many.recent[0].count), (1, 40, 39, 40));
        let next = |t: &mut Trail| t.add(denial("other"), now).unwrap();
        assert_eq!(next(&mut one), next(&mut many), "the same count of repeats told");
    }
}

/// `pid`, then its parent, and so on up to (not including) pid 1, by the
/// parents /proc names: it ends where a process has exited. For telling
/// which run a refusal came from; a chain longer than 64 is no service's.
pub fn lineage(pid: i32) -> impl Iterator<Item = i32> {
    ancestry(pid).take(64)
}

/// [`lineage`] without its bound, for decisions a service could otherwise
/// evade by nesting its processes deeper. Every step names a live process
/// whose parent has a pid below the limit, so the chain ends.
pub fn ancestry(pid: i32) -> impl Iterator<Item = i32> {
    let parent = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse::<i32>().ok()))
            .filter(|pp| *pp > 1)
    };
    // A bound far above any real chain (pid_max is at most 4 Mi), against
    // a /proc that lies.
    std::iter::successors(Some(pid), move |p| parent(*p)).take(1 << 22)
}

/// Whether `pid` descends from `ancestor` (see [`lineage`]).
pub fn descends_from(pid: i32, ancestor: i32) -> bool {
    lineage(pid).skip(1).any(|p| p == ancestor)
}

/// The refusals of one run, collected from the audit log while it runs, and
/// printed when it has failed (`capexec run`'s summary): seccomp's for the
/// processes of the run's pid namespace (told by its init's pid), looked up
/// when their record arrives, Landlock's for the domain its init made.
///
/// The audit socket is joined while the run's init sets up, before init
/// starts anything of the program's (`SpawnOptions::on_setup`), so that
/// nothing is missed; its records wait there until they are read. Joining
/// asks the kernel whether audit is on, whose answer comes from a kernel
/// thread made for it: some 0.2 ms that run beside init's setup instead of
/// before the launch. capexec reads the socket in its main thread, while it
/// waits for the run ([`with_poll_fd`](Watch::with_poll_fd) beside the forwarded
/// signals, `launch::Serve`) and to the marker once the run failed: no
/// thread of its own, whose start and whose wake-up to die at exit cost
/// 0.09 ms per launch. In a brokered run capexec confines itself to the
/// broker's filter and Landlock layer, and its main thread serves the
/// broker: there the reader is a child process, forked once the program
/// runs (off the launch's path), which reads the socket while it waits for
/// the exit status on a pipe; capexec waits on another for it to end (read
/// and write are all the broker's filter needs).
pub struct Watch {
    spec: ServiceSpec,
    output: Output,
    brokered: bool,
    /// A brokered run's way to the first network namespace, opened before
    /// capexec confines itself (see [`crate::audit::FirstNetwork`]).
    first_network: Option<crate::audit::FirstNetwork>,
    reader: std::cell::RefCell<Option<crate::audit::Reader>>,
    /// Whether the socket was joined (not rootless, audit there).
    listening: std::cell::Cell<bool>,
    collected: std::cell::RefCell<Collected>,
    /// The child process's pipes (a brokered run).
    child: std::cell::RefCell<Option<(std::fs::File, std::fs::File)>>,
    /// Told live, the refusals that do not come through the audit log: the
    /// broker's (`capexec_broker::Report` lines, see
    /// [`broker_reports`](Watch::broker_reports)), and the network guard's.
    broker: std::cell::RefCell<Option<ReportPipe>>,
    guard: std::cell::RefCell<Option<capexec_sandbox::netguard::Refusals>>,
    /// Rootless, the program's refusals themselves (see
    /// [`refusals`](Watch::refusals)).
    notified: std::cell::RefCell<Option<Notified>>,
}

/// The listener of the program's refused calls (`Spawned::refusals`), and
/// the filter whose errno answers each: the program's own, which refused it.
pub(crate) struct Notified {
    pub(crate) listener: capexec_sys::notify::Listener,
    pub(crate) judge: Vec<capexec_sandbox::seccomp::sock_filter>,
}

impl Notified {
    /// Answers one refused call as the program's filter would have, and
    /// says what it was. Never `CONTINUE`: the call was refused, and the
    /// answer is only its errno.
    pub(crate) fn answer(&self, n: &capexec_sys::notify::Notif) -> Record {
        // Only errno refusals come here (seccomp::reporting); anything else
        // would be a mismatch between the two filters: refused all the same.
        let errno = capexec_sandbox::seccomp::refusal_errno(&self.judge, n.nr as u32, n.args).unwrap_or(libc::EPERM);
        // Read before the answer: the thread may end right after it.
        let (pid, comm) = (n.process(), n.comm());
        let _ = self.listener.fail(n.id, errno);
        Record::Seccomp { pid, nr: n.nr, comm }
    }
}

/// The read end of the broker's report pipe, and the part of a line read.
struct ReportPipe {
    pipe: std::fs::File,
    partial: Vec<u8>,
}

impl ReportPipe {
    /// The reports whole in the pipe now (it is non-blocking).
    fn read(&mut self) -> Vec<capexec_broker::Report> {
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        while let Ok(n @ 1..) = std::io::Read::read(&mut self.pipe, &mut buf) {
            self.partial.extend_from_slice(&buf[..n]);
            out.extend(capexec_broker::Report::take_lines(&mut self.partial));
        }
        out
    }
}

/// How a [`Watch`] tells what was refused.
enum Output {
    /// Once the run failed, each refusal once (`capexec run`): mechanism,
    /// what, fix.
    Summary(fn(&str, &str, &str)),
    /// As they come, at the daemon's rate, as lines of the service's log
    /// (`capexec exec`: its standard error is what systemd's journal keeps;
    /// a service runs for months, a summary at its end is too late).
    Live { print: Box<dyn Fn(&str)>, trail: std::cell::RefCell<Trail> },
}

/// Records read in one go (see [`Watch::drain`]).
const DRAIN_MAX: usize = 256;

/// What the reader gathers, for the summary.
#[derive(Default)]
struct Collected {
    run: Run,
    got: Vec<Record>,
    /// Seccomp records of processes gone before they could be placed (the
    /// main process's are placed once its pid is known).
    unresolved: Vec<Record>,
    /// The Landlock domains of the run's processes, and access records
    /// whose domain's record has not come yet (it comes after them).
    domains: std::collections::HashSet<String>,
    unplaced: Vec<Record>,
}

/// What the reader knows of the run: its init, its main process.
#[derive(Default)]
struct Run {
    init: Option<i32>,
    main: Option<i32>,
    /// capexec itself, in a brokered run: the Landlock layer it shares with
    /// the program is its domain, named by its pid.
    broker: Option<i32>,
}

impl Collected {
    /// A process of the run: its init, or one whose parents lead to it
    /// (looked up now, while it may still live). Every process of the run
    /// descends from init, which adopts what is orphaned (as its pid
    /// namespace's first process, or as a subreaper where the run shares the
    /// host's pids). By /proc/PID/stat, which no Landlock layer refuses or
    /// logs: a brokered run's reader is under its broker's layer, and a
    /// ptrace check it failed (reading another process's /proc/PID/ns/pid)
    /// was itself logged in the service's domain, as a refusal of the service.
    fn ours(&self, pid: i32) -> bool {
        let r = &self.run;
        if r.init == Some(pid) || r.main == Some(pid) {
            return true;
        }
        let Some(init) = r.init else { return false };
        let mut p = pid;
        for _ in 0..64 {
            match capexec_sys::process::parent_of(p) {
                Some(parent) if parent == init => return true,
                Some(parent) if parent > 1 => p = parent,
                _ => return false,
            }
        }
        false
    }

    fn keep(&mut self, r: Record) {
        if self.got.len() < 256 {
            self.got.push(r);
        }
    }

    fn add(&mut self, r: Record) {
        let gone = |pid: i32| !std::path::Path::new(&format!("/proc/{pid}")).exists();
        match &r {
            Record::Seccomp { pid, .. } if self.ours(*pid) => self.keep(r),
            Record::Seccomp { pid, .. } if gone(*pid) && self.unresolved.len() < 64 => self.unresolved.push(r),
            // The broker's layer is the program's too; its seccomp filter is not.
            Record::LandlockDomain { domain, pid } if self.ours(*pid) || self.run.broker == Some(*pid) => {
                self.domains.insert(domain.clone());
                let domain = domain.clone();
                let (now, later): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.unplaced).into_iter().partition(|a| matches!(a, Record::LandlockAccess { domain: d, .. } if *d == domain));
                self.unplaced = later;
                for a in now {
                    self.keep(a);
                }
            }
            Record::LandlockAccess { domain, .. } if self.domains.contains(domain) => self.keep(r),
            // Its domain's record comes after it.
            Record::LandlockAccess { .. } if self.unplaced.len() < 64 => self.unplaced.push(r),
            Record::Marker(_) => self.keep(r),
            _ => {}
        }
    }
}

impl Watch {
    /// `print` writes the summary lines.
    pub fn new(spec: &ServiceSpec, print: fn(&str, &str, &str)) -> Watch {
        Watch::with_output(spec, Output::Summary(print))
    }

    /// `print` writes each refusal's line as it is read, at most
    /// `fix::REFUSAL_LINES` per `fix::REFUSAL_WINDOW` (the next line says how
    /// many were not shown), whatever the run's end: the kernel's from the
    /// audit log, the broker's ([`broker_reports`](Self::broker_reports)) and
    /// the network guard's ([`guard`](Self::guard)), under one budget.
    pub fn live(spec: &ServiceSpec, print: Box<dyn Fn(&str)>) -> Watch {
        Watch::with_output(spec, Output::Live { print, trail: Default::default() })
    }

    fn with_output(spec: &ServiceSpec, output: Output) -> Watch {
        Watch {
            spec: spec.clone(),
            output,
            brokered: spec.has_broker(),
            first_network: spec.has_broker().then(crate::audit::FirstNetwork::open).flatten(),
            reader: Default::default(),
            listening: Default::default(),
            collected: Default::default(),
            child: Default::default(),
            broker: Default::default(),
            guard: Default::default(),
            notified: Default::default(),
        }
    }

    /// Told live: the write end of a pipe for the broker's refusals
    /// (`capexec_broker::Broker::report_to`), read with the audit log's,
    /// into the same lines at the same rate. Call before the run is
    /// [`started`](Self::started). `None` for a summary (the broker then
    /// writes its own lines) or if no pipe could be made.
    pub fn broker_reports(&self) -> Option<std::os::fd::OwnedFd> {
        if !matches!(self.output, Output::Live { .. }) {
            return None;
        }
        // Non-blocking both ways: the broker never waits for the reader, and
        // the reader takes what is there.
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).ok()?;
        *self.broker.borrow_mut() = Some(ReportPipe { pipe: rd.into(), partial: Vec::new() });
        Some(wr)
    }

    /// Told live: the network guard's refusals (`capexec exec`'s cgroup),
    /// read beside the audit log. Call before the run is started.
    pub fn guard(&self, refusals: capexec_sandbox::netguard::Refusals) {
        if matches!(self.output, Output::Live { .. }) {
            *self.guard.borrow_mut() = Some(refusals);
        }
    }

    /// Rootless, where no audit log tells what the kernel refused: the
    /// listener the program's refused calls come to (`Spawned::refusals`,
    /// `SetupPlan::report_refusals`), answered with the errno of `judge`
    /// (the program's filter, the plan's `seccomp`) while capexec waits for
    /// the run. A call waits until it is answered: read with the other
    /// sources, in capexec's main thread.
    pub fn refusals(&self, listener: std::os::fd::OwnedFd, judge: Vec<capexec_sandbox::seccomp::sock_filter>) {
        *self.notified.borrow_mut() = Some(Notified { listener: capexec_sys::notify::Listener::new(listener), judge });
        self.listening.set(true);
    }

    /// Whether the audit log is read (false where there is none to read:
    /// rootless, no audit), or, rootless, the program's refusals; known once
    /// [`spawned`](Self::spawned) returned.
    pub fn listening(&self) -> bool {
        self.listening.get()
    }

    /// The run's init exists, as `pid`, and sets up; it starts the program
    /// only once this returns: the audit socket is joined now, so that no
    /// record of the run comes before it.
    pub fn spawned(&self, pid: i32) {
        // Unconfined, the way is looked for now, beside init's setup.
        let now = (!self.brokered).then(crate::audit::FirstNetwork::open).flatten();
        let Ok(reader) = crate::audit::open(self.first_network.as_ref().or(now.as_ref())) else { return };
        let broker = self.brokered.then(|| std::process::id() as i32);
        self.collected.borrow_mut().run = Run { init: Some(pid), main: None, broker };
        *self.reader.borrow_mut() = Some(reader);
        self.listening.set(true);
    }

    /// Runs `f` with what capexec's wait for the run polls, where capexec
    /// reads it (not in a brokered run): [`drain`](Self::drain) when one is
    /// readable. Empty: nothing to read.
    pub fn with_poll_fds<R>(&self, f: impl FnOnce(&[std::os::fd::BorrowedFd<'_>]) -> R) -> R {
        // Copies, so that `drain` may take the sources while `f` polls.
        let copies: Vec<std::os::fd::OwnedFd> = match self.brokered {
            true => Vec::new(),
            false => {
                let (reader, broker, guard) = (self.reader.borrow(), self.broker.borrow(), self.guard.borrow());
                let notified = self.notified.borrow();
                let mut fds = Self::sources(&reader, &broker, &guard);
                fds.extend(notified.iter().map(|n| n.listener.as_fd()));
                fds.iter().filter_map(|fd| fd.try_clone_to_owned().ok()).collect()
            }
        };
        let fds: Vec<std::os::fd::BorrowedFd<'_>> = copies.iter().map(std::os::fd::AsFd::as_fd).collect();
        f(&fds)
    }

    /// The descriptors of what is read: the audit socket, the broker's
    /// pipe, the guard's ring buffer.
    fn sources<'a>(
        reader: &'a Option<crate::audit::Reader>,
        broker: &'a Option<ReportPipe>,
        guard: &'a Option<capexec_sandbox::netguard::Refusals>,
    ) -> Vec<std::os::fd::BorrowedFd<'a>> {
        use std::os::fd::AsFd;
        reader.iter().map(|r| r.as_fd()).chain(broker.iter().map(|b| b.pipe.as_fd())).chain(guard.iter().map(|g| g.as_fd())).collect()
    }

    /// Reads the records that wait on the socket, at most [`DRAIN_MAX`] of
    /// them: under a flood of records the wait goes back to its signals
    /// between two batches (a Ctrl-C for a program looping on a refused
    /// call is forwarded). Returns how many it read.
    pub fn drain(&self) -> usize {
        let mut c = self.collected.borrow_mut();
        let mut n = 0;
        if let Some(reader) = self.reader.borrow().as_ref() {
            while n < DRAIN_MAX {
                match reader.try_next() {
                    Ok(Some(r)) => c.add(r),
                    _ => break,
                }
                n += 1;
            }
        }
        if let Some(notified) = self.notified.borrow().as_ref() {
            let summary = matches!(self.output, Output::Summary(_));
            while n < DRAIN_MAX {
                let Ok(Some(call)) = notified.listener.recv_now() else { break };
                let r = notified.answer(&call);
                n += 1;
                // A summary says each once: a loop on one refused call
                // leaves room for the others.
                let told =
                    |g: &Record| matches!((g, &r), (Record::Seccomp { nr, comm, .. }, Record::Seccomp { nr: n2, comm: c2, .. }) if nr == n2 && comm == c2);
                if !(summary && c.got.iter().any(told)) {
                    c.keep(r);
                }
            }
        }
        let Output::Live { print, trail } = &self.output else { return n };
        // Told now, and not kept for a summary; a marker is kept for
        // `summarize` to find.
        let mut denials = Vec::new();
        for r in std::mem::take(&mut c.got) {
            if let Record::Marker(_) = r {
                c.got.push(r);
                continue;
            }
            let Some((mechanism, what, fix)) = describe(&r, &self.spec) else { continue };
            let pid = match r {
                Record::Seccomp { pid, .. } => Some(pid),
                _ => None,
            };
            denials.push(Denial { at: Some(SystemTime::now()), mechanism, what, fix, pid, count: 1 });
        }
        if let Some(pipe) = self.broker.borrow_mut().as_mut() {
            denials.extend(pipe.read().into_iter().map(broker_denial));
        }
        if let Some(ring) = self.guard.borrow_mut().as_mut() {
            denials.extend(ring.drain().iter().map(guard_denial));
        }
        n += denials.len();
        for d in denials {
            if let Some((unshown, d)) = trail.borrow_mut().admit(d, Instant::now()) {
                for l in unshown.lines() {
                    print(&l);
                }
                print(&d.line());
            }
        }
        n
    }

    /// The run's own process exists, as `pid` (and has exec'd): in a
    /// brokered run, the reader's process starts now.
    pub fn started(&self, pid: i32) {
        self.collected.borrow_mut().run.main = Some(pid);
        let (reader, broker, guard) = (self.reader.borrow(), self.broker.borrow(), self.guard.borrow());
        if !self.brokered || Self::sources(&reader, &broker, &guard).is_empty() {
            return;
        }
        drop((reader, broker, guard));
        let Ok((rd, wr)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else { return };
        let Ok((done_rd, done_wr)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else { return };
        match capexec_sys::process::fork("start the refusals' reader") {
            Ok(capexec_sys::process::Forked::Child) => {
                drop((wr, done_rd));
                // Ends with capexec, whatever happens to it.
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                // The log until the exit status comes; EOF: capexec ended
                // without one, and there is nothing to say.
                let mut rd = std::fs::File::from(rd);
                let status = loop {
                    let revents = {
                        let (reader, broker, guard) = (self.reader.borrow(), self.broker.borrow(), self.guard.borrow());
                        let mut fds = vec![(std::os::fd::AsFd::as_fd(&rd), libc::POLLIN)];
                        fds.extend(Self::sources(&reader, &broker, &guard).into_iter().map(|fd| (fd, libc::POLLIN)));
                        capexec_sys::poll_many(&fds, -1)
                    };
                    let Ok(revents) = revents else { break None };
                    if revents[1..].iter().any(|r| *r != 0) {
                        self.drain();
                    }
                    if revents[0] != 0 {
                        let mut msg = [0u8; 4];
                        break std::io::Read::read_exact(&mut rd, &mut msg).is_ok().then(|| i32::from_ne_bytes(msg));
                    }
                };
                if let Some(status) = status {
                    self.summarize(status);
                }
                drop(done_wr);
                capexec_sys::process::exit_now(0)
            }
            Ok(capexec_sys::process::Forked::Parent(_)) => {
                *self.child.borrow_mut() = Some((std::fs::File::from(wr), std::fs::File::from(done_rd)));
            }
            Err(_) => {}
        }
    }

    /// The program ended with `status`: prints what was refused if it
    /// failed; returns once it has, with how many refusals a summary told
    /// (0 where a process of its own told them).
    pub fn finish(self, status: i32) -> usize {
        use std::io::{Read, Write};
        match self.child.borrow_mut().take() {
            Some((mut to, mut done_from)) => {
                if to.write_all(&status.to_ne_bytes()).is_ok() {
                    let mut rest = Vec::new();
                    let _ = done_from.read_to_end(&mut rest);
                }
                0
            }
            None if self.brokered => 0,
            None => self.summarize(status),
        }
    }

    /// The summary, where the reader runs: nothing for a success. Told
    /// live, the refusals not told yet. Returns how many a summary told.
    fn summarize(&self, status: i32) -> usize {
        let live = matches!(self.output, Output::Live { .. });
        if status == 0 && !live {
            return 0;
        }
        // The kernel hands records over asynchronously, in order: read up to
        // a marker written now (a few seconds at most, should the log lose it).
        let token = format!("{}-end", std::process::id());
        if self.listening.get() && crate::audit::mark(&token).is_ok() {
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                let read = self.drain();
                if self.collected.borrow().got.contains(&Record::Marker(token.clone())) {
                    break;
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                if read == 0 {
                    let waited = self.reader.borrow().as_ref().map(|r| r.wait(left.as_millis().min(i32::MAX as u128) as i32));
                    if !matches!(waited, Some(Ok(_))) {
                        break;
                    }
                }
            }
        }
        let print = match &self.output {
            Output::Summary(print) => print,
            Output::Live { print, trail } => {
                // The broker's and the guard's last ones.
                self.drain();
                for l in trail.borrow().budget.pending().lines() {
                    print(&l);
                }
                return 0;
            }
        };
        if !self.listening.get() {
            return 0;
        }
        let c = self.collected.borrow();
        // The main process's refusals whose record came after it had ended,
        // once it is known.
        let main = c.run.main;
        let mut records = c.got.clone();
        records.extend(c.unresolved.iter().filter(|r| matches!(r, Record::Seccomp { pid, .. } if Some(*pid) == main)).cloned());
        let mut seen: Vec<(&'static str, String, String)> = Vec::new();
        for d in records.iter().filter_map(|r| describe(r, &self.spec)) {
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        for (mechanism, what, fix) in &seen {
            print(mechanism, what, fix);
        }
        seen.len()
    }
}
