//! The per-service broker, in the manner of FreeBSD's Casper: a process that
//! holds only what the declaration's `[broker]` grants need and performs, on the
//! service's behalf, the requests those grants allow (and the binds and
//! listens of its host TCP sockets: see `ServiceSpec::brokers_listen`).
//!
//! [`Broker::prepare`] opens what the grants need (a pinned directory per file
//! grant) before the service exists; [`Broker::confine`] then takes away what
//! the broker itself does not need; [`Broker::start`] serves the service's
//! three channels, each on a thread of its own:
//!
//! - [`transparent`]: the syscalls the service's seccomp notify filter hands
//!   over (capexec_sys::notify reads the service's memory and fds, [`open`] and [`net`]
//!   do the granted calls);
//! - [`explicit`]: requests sent with capexec-client over the inherited
//!   SOCK_SEQPACKET connection;
//! - [`dns`]: the stub resolver on the service's own loopback.
//!
//! [`lookup`] does the host-side lookups (names, users, groups, sysctl,
//! syslog) for granted requests.

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod append;
pub mod binder;
pub mod dns;
pub mod error;
pub mod explicit;
pub mod filter;
pub mod lookup;
pub mod net;
pub mod open;
pub mod policy;
mod refusals;
pub mod transparent;

use capexec_decl::grants::BrokerSpec;
use capexec_decl::spec::{NetMode, ServiceSpec};
pub use error::BrokerError;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

/// The service's ends the broker serves (from capexec_sandbox's `Spawned`).
#[derive(Default)]
pub struct Channels {
    /// The seccomp user-notification listener (transparent brokering).
    pub listener: Option<OwnedFd>,
    /// The broker's end of the explicit SOCK_SEQPACKET connection.
    pub explicit: Option<OwnedFd>,
    /// The stub resolver's UDP socket, bound to 127.0.0.1:53 in the service's
    /// network namespace.
    pub dns: Option<OwnedFd>,
    /// Preopened files in append mode, which the service writes through a
    /// pipe (see [`append`]).
    pub appends: Vec<append::Relay>,
}

impl Channels {
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<std::os::fd::RawFd> = [&self.listener, &self.explicit, &self.dns].into_iter().flatten().map(|f| f.as_raw_fd()).collect();
        fds.extend(self.appends.iter().flat_map(|r| [r.file.as_raw_fd(), r.from.as_raw_fd()]));
        fds
    }
}

/// What the service's broker adds to its sandbox, as one value for the
/// plan (`capexec_sandbox::plan::Extras::broker`): empty for a service
/// without a broker.
pub fn contribution(service: &ServiceSpec) -> capexec_sandbox::plan::BrokerPart {
    if !service.has_broker() {
        return Default::default();
    }
    capexec_sandbox::plan::BrokerPart {
        notified: brokered_syscalls(service),
        channel: service.brokers_requests(),
        dns_stub: service.namespaces.net == NetMode::None && !service.broker.dns.names.is_empty(),
        view_files: view_files(service),
        layer: Some(landlock_layer(service)),
        own_bind_tcp: own_bind_ports(service),
    }
}

/// The ports of the service's TCP bind grants, which its sockets in its own
/// network namespace may bind too (`BrokerPart::own_bind_tcp`): a bind
/// there reaches nothing of the host. A service in the host's network has
/// no namespace of its own to bind in; with a range wider than
/// [`MAX_PORTS_PER_RANGE`] they are left to the broker alone.
fn own_bind_ports(service: &ServiceSpec) -> Vec<u16> {
    if service.namespaces.net != NetMode::None {
        return Vec::new();
    }
    port_set(std::iter::empty(), &service.broker.bind).map(|p| p.into_iter().collect()).unwrap_or_default()
}

/// Ranges wider than this are not turned into one Landlock rule per port: the
/// access type is then left unhandled by the broker's layer (the grant check
/// in the broker still applies).
const MAX_PORTS_PER_RANGE: u32 = 1024;

/// The TCP ports of the Landlock layer the broker shares with its service:
/// the service's own plus those the broker needs — bind and connect grants,
/// preopened TCP listeners (bound by the process the service is cloned from),
/// and 53 for the host resolver's TCP fallback when names are granted.
/// Connect is left unhandled when users or groups are granted (an NSS module
/// may reach a directory server on any port), and either type when a grant
/// spans more than [`MAX_PORTS_PER_RANGE`] ports.
///
/// In its own network namespace the service may bind port 0 on its loopback
/// (see `capexec_sandbox::plan`'s `service_bind_tcp`), and the layer is its
/// domain too. The broker gains a host listener on a port nobody chose by
/// it, and nothing the grants do not give it otherwise: the network guard
/// refuses host sockets any bind outside the grants.
fn landlock_layer(service: &ServiceSpec) -> capexec_sandbox::plan::BrokerLayer {
    let b = &service.broker;
    let preopened = service.preopen.iter().filter_map(|p| match &p.kind {
        capexec_decl::spec::PreopenKind::Listen { address: capexec_decl::spec::ListenAddr::Tcp(a), .. } => Some(a.port()),
        _ => None,
    });
    let picked = (service.namespaces.net == NetMode::None).then_some(0);
    let bind = port_set(service.landlock.bind_tcp.iter().copied().chain(preopened).chain(picked), &b.bind);
    let mut connect = port_set(service.landlock.connect_tcp.iter().copied(), &b.connect);
    if let Some(c) = connect.as_mut().filter(|_| !b.dns.names.is_empty()) {
        c.insert(53);
    }
    if !b.pwd.is_empty() || !b.grp.is_empty() {
        connect = None;
    }
    capexec_sandbox::plan::BrokerLayer { bind_tcp: bind, connect_tcp: connect }
}

/// The ports a layer allows for one access type, or `None` to leave the type
/// unhandled.
fn port_set(base: impl Iterator<Item = u16>, grants: &[capexec_decl::grants::NetGrant]) -> Option<std::collections::BTreeSet<u16>> {
    use capexec_decl::grants::Proto;
    let mut ports: std::collections::BTreeSet<u16> = base.collect();
    for g in grants.iter().filter(|g| g.proto != Some(Proto::Udp)) {
        let (lo, hi) = g.ports;
        if u32::from(hi) - u32::from(lo) + 1 > MAX_PORTS_PER_RANGE {
            return None;
        }
        ports.extend(lo..=hi);
    }
    Some(ports)
}

/// The syscalls the transparent broker answers: the open family for fs
/// grants, bind and connect for net grants, the sends that may name an
/// address for UDP connect grants, bind and listen where a listen
/// could bind a host port no rule sees ([`ServiceSpec::brokers_listen`]).
fn brokered_syscalls(spec: &ServiceSpec) -> Vec<u32> {
    let b = &spec.broker;
    let mut nrs = Vec::new();
    if !b.fs.is_empty() {
        nrs.extend([libc::SYS_open, libc::SYS_openat, libc::SYS_creat, libc::SYS_openat2].map(|n| n as u32));
    }
    if b.fs.iter().any(|g| g.rights.remove) {
        nrs.extend([libc::SYS_unlink, libc::SYS_unlinkat].map(|n| n as u32));
    }
    if spec.brokers_net() {
        nrs.extend([libc::SYS_bind, libc::SYS_connect].map(|n| n as u32));
    }
    if !b.bind_unix.is_empty() {
        // And what a daemon does to the socket's names: see
        // transparent::socket_name_call.
        nrs.extend(
            [
                libc::SYS_bind,
                libc::SYS_rename,
                libc::SYS_renameat,
                libc::SYS_renameat2,
                libc::SYS_link,
                libc::SYS_linkat,
                libc::SYS_unlink,
                libc::SYS_unlinkat,
                libc::SYS_chmod,
                libc::SYS_fchmodat,
                libc::SYS_fchmodat2,
                libc::SYS_chown,
                libc::SYS_lchown,
                libc::SYS_fchownat,
            ]
            .map(|n| n as u32),
        );
    }
    if spec.namespaces.net == NetMode::None && b.connect.iter().any(|g| g.proto != Some(capexec_decl::grants::Proto::Tcp)) {
        // A datagram to a granted host address from a socket the service
        // made in its own namespace (a client that sends without connecting:
        // openvpn's `nobind`, a metrics or trap sender). The filter hands
        // sendto over only with an address; sendmsg and sendmmsg carry
        // theirs in memory, so each of those costs a round trip.
        nrs.extend([libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_sendmmsg].map(|n| n as u32));
    }
    if spec.brokers_listen() {
        // And bind: the broker listens only on sockets it bound itself.
        nrs.extend([libc::SYS_bind, libc::SYS_listen].map(|n| n as u32));
    }
    nrs.sort_unstable();
    nrs.dedup();
    nrs
}

/// Files capexec writes into the service's view for its grants: what makes
/// unmodified programs' lookups go through the broker (resolv.conf naming the
/// stub resolver) or see only granted entries (passwd, group).
fn view_files(service: &ServiceSpec) -> Vec<(PathBuf, String)> {
    let (spec, own_network) = (&service.broker, service.namespaces.net == NetMode::None);
    let mut files = Vec::new();
    if own_network && !spec.dns.names.is_empty() {
        files.push(("/etc/resolv.conf".into(), "# written by capexec: name lookups go to the service's broker\nnameserver 127.0.0.1\n".to_owned()));
        // Only the service's own loopback; every other name goes to the broker,
        // which answers granted names from the host's resolver.
        files.push(("/etc/hosts".into(), loopback_hosts(&std::fs::read_to_string("/etc/hosts").unwrap_or_default())));
    }
    if !spec.pwd.is_empty() {
        files.push(("/etc/passwd".into(), lookup::passwd_file(&spec.pwd)));
    }
    if !spec.grp.is_empty() {
        files.push(("/etc/group".into(), lookup::group_file(&spec.grp)));
    }
    files
}

/// The view's /etc/hosts where the broker answers lookups: the host's lines
/// of loopback addresses as they are, so that `localhost` and the host's
/// own name resolve as on the host, and no other line. A fixed file named
/// `::1 localhost`, which Debian's own may not: rspamd then bound `[::1]`
/// for each `localhost:PORT`, which its learning run never did, and the
/// broker refused those binds.
fn loopback_hosts(host: &str) -> String {
    let lines: Vec<&str> = host
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| l.split_whitespace().next().and_then(|a| a.parse::<std::net::IpAddr>().ok()).is_some_and(|a| a.is_loopback()))
        .collect();
    let mut out = String::new();
    if !lines.iter().any(|l| l.split_whitespace().skip(1).any(|n| n == "localhost")) {
        out.push_str("127.0.0.1 localhost\n");
    }
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

pub struct Broker {
    pub unit: String,
    pub spec: BrokerSpec,
    /// One pinned directory per `spec.fs` grant, in the same order.
    bases: Vec<OwnedFd>,
    /// Cookie of the host's network namespace: sockets in any other belong to
    /// the service's own namespace.
    host_netns: u64,
    /// Under `net = "host"`, the TCP ports the service may bind
    /// (`landlock.bind_tcp`); `None` for a service in its own namespace.
    host_bind: Option<std::collections::BTreeSet<u16>>,
    /// In its own network namespace, the TCP ports the service may bind
    /// there (`landlock.bind_tcp`): a loopback bind to one of them goes on,
    /// in that namespace, under the service's own Landlock domain. Reached
    /// by its own processes alone (named's control channel, for the
    /// `rndc stop` of its `exec.stop`).
    own_bind: std::collections::BTreeSet<u16>,
    /// Keep CAP_NET_BIND_SERVICE: a bind grant names a port below 1024, or
    /// the service keeps the capability and binds through the broker.
    bind_service: bool,
    /// The capabilities the service keeps, in the host's user namespace: the
    /// broker holds them permitted, never effective (its filter has no
    /// capset), because the kernel lets one process read another's memory
    /// and take its fds only when its permitted set covers the other's.
    service_caps: Vec<caps::Capability>,
    /// The service may switch to another user (it keeps CAP_SETUID or
    /// CAP_SETGID in the host's user namespace: a daemon started as root
    /// that drops to its own, named -u bind). The kernel then lets the broker
    /// read its memory and take its fds only with CAP_SYS_PTRACE (another
    /// uid, no longer dumpable), which the broker holds effective: its filter
    /// has no ptrace, and Landlock lets it reach only its own domain and the
    /// service's nested in it, whatever the capability says; so only where
    /// that layer is sure to exist (`policy::follows_switches`).
    follows_switches: bool,
    /// Binds the service's Unix sockets for its `bind_unix` grants (a
    /// process of its own: see [`binder`]); `None` without such grants.
    binder: Option<binder::Binder>,
    /// The host TCP sockets bound here, which alone may listen (see
    /// `ServiceSpec::brokers_listen`).
    bound: net::BoundSockets,
    /// Relays of append-only files (grants and preopens).
    appender: Arc<append::Appender>,
    /// The rate of refusal lines into the service's log (without `reports`).
    log_budget: std::sync::Mutex<capexec_decl::fix::LineBudget>,
    /// Under the daemon: the pipe its denial trail reads refusals from
    /// ([`Report`]), instead of the service's log, which the service writes
    /// too and so could forge a refusal in.
    reports: Option<OwnedFd>,
    /// `capexec run --net-summary`: the kernel lets a filter chain have one
    /// listener only, so with a broker its filter hands it the network calls
    /// a recorder would watch (`capexec_sandbox::plan::compose`), and it
    /// tells of each here, whatever it answers.
    pub(crate) net_seen: Option<std::sync::mpsc::Sender<NetSeen>>,
    /// The calls this broker answers (what its filter hands it, but for
    /// those it is handed only for the network summary).
    pub(crate) brokered: Vec<u32>,
    /// Where the service's refused syscalls come to this broker's
    /// listener too ([`judge_refusals`](Self::judge_refusals)).
    pub(crate) judge: Option<refusals::Judge>,
}

/// A network call of the service's, as the network summary counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSeen {
    /// The calling process (thread group), as the broker's pid namespace sees it.
    pub pid: i32,
    pub comm: String,
    /// "socket", "bind", "connect" or "send" (`Notif::net_op`).
    pub op: &'static str,
    /// The socket's kind (`capexec_decl::grants::socket_kind`) or the
    /// address (`describe_sockaddr`).
    pub what: String,
}

/// A refusal as the broker sends it to the daemon's denial trail: one line,
/// its fields each made safe (no control characters) and separated by
/// U+001F, which `safe` escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub by: Refuser,
    /// What was refused: the call with its argument and why, or the
    /// syscall and the process.
    pub what: String,
    pub fix: String,
    /// The calling process, as the broker's pid namespace sees it, where known.
    pub pid: Option<i32>,
    /// How many calls it stands for (repeats counted: `fix::Repeats`).
    pub count: u64,
}

/// Who refused what a [`Report`] tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refuser {
    /// A grant's check.
    Broker,
    /// The service's seccomp filter, whose refusals the broker answers
    /// where its listener is the only one ([`Broker::judge_refusals`]).
    Seccomp,
}

impl Refuser {
    pub fn name(self) -> &'static str {
        match self {
            Refuser::Broker => "broker",
            Refuser::Seccomp => "seccomp",
        }
    }
}

impl Report {
    const SEPARATOR: char = '\u{1f}';

    pub fn encode(&self) -> String {
        use capexec_decl::terminal::safe;
        let sep = Self::SEPARATOR;
        let pid = self.pid.map_or(String::new(), |p| p.to_string());
        format!("{}{sep}{pid}{sep}{}{sep}{}{sep}{}\n", self.by.name(), self.count, safe(&self.what), safe(&self.fix))
    }

    /// One line of the pipe, without its line break.
    pub fn decode(line: &str) -> Option<Report> {
        let mut f = line.split(Self::SEPARATOR);
        let by = match f.next()? {
            "broker" => Refuser::Broker,
            "seccomp" => Refuser::Seccomp,
            _ => return None,
        };
        let pid = match f.next()? {
            "" => None,
            p => Some(p.parse().ok()?),
        };
        let count = f.next()?.parse().ok()?;
        let r = Report { by, pid, count, what: f.next()?.to_owned(), fix: f.next()?.to_owned() };
        f.next().is_none().then_some(r)
    }

    /// Longer lines are no report the broker wrote whole.
    const MAX_LINE: usize = 8192;

    /// Takes the whole lines out of `partial` (what was read of the pipe so
    /// far), decoded; a line that does not decode is dropped, and so is a
    /// rest grown past [`MAX_LINE`](Self::MAX_LINE) without a line break.
    pub fn take_lines(partial: &mut Vec<u8>) -> Vec<Report> {
        let mut out = Vec::new();
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            out.extend(std::str::from_utf8(&line[..end]).ok().and_then(Report::decode));
        }
        if partial.len() > Self::MAX_LINE {
            partial.clear();
        }
        out
    }
}

impl Broker {
    /// Opens the grants' directories. Run before the service is started, so
    /// that a missing directory stops the start with a clear message.
    pub fn prepare(service: &ServiceSpec) -> Result<Broker, BrokerError> {
        let spec = &service.broker;
        let mut bases = Vec::new();
        for g in &spec.fs {
            let grant_dir = |source| BrokerError::GrantDirectory { pattern: g.pattern.clone(), path: g.base.clone(), source };
            let opened =
                std::os::unix::fs::OpenOptionsExt::custom_flags(std::fs::OpenOptions::new().read(true), libc::O_PATH | libc::O_DIRECTORY).open(&g.base);
            let mut base = OwnedFd::from(opened.map_err(grant_dir)?);
            if service.exec.memory_deny_write_execute && g.rights.read && g.rights.write {
                // A file the service may read and write could be mapped
                // executable after it wrote code into it (capexec_sandbox::noexec).
                let kind = capexec_sandbox::noexec::Kind::Dir;
                base = capexec_sandbox::noexec::reopen(&[(g.base.as_path(), kind, &base)])
                    .map_err(|source| BrokerError::Noexec { pattern: g.pattern.clone(), source })?
                    .remove(0);
            }
            bases.push(base);
        }
        let io = |op| move |source| BrokerError::Io { op, source };
        let host_netns = capexec_sandbox::sys::netns_cookie().map_err(io("read the host network namespace's cookie"))?;
        let appender = Arc::new(append::Appender::new(&service.name).map_err(io("create the append relay's pipe"))?);
        let host_bind = (service.namespaces.net == NetMode::Host).then(|| service.landlock.bind_tcp.clone());
        let own_bind = if service.namespaces.net == NetMode::None { service.landlock.bind_tcp.clone() } else { Default::default() };
        let low = |p: u16| p < 1024;
        let bind_service = spec.bind.iter().any(|g| low(g.ports.0))
            || (host_bind.as_ref().is_some_and(|b| b.iter().copied().any(low)) && service.capabilities.contains(&caps::Capability::CAP_NET_BIND_SERVICE));
        Ok(Broker {
            unit: service.name.clone(),
            spec: spec.clone(),
            bases,
            host_netns,
            host_bind,
            own_bind,
            bind_service,
            service_caps: if service.namespaces.user { Vec::new() } else { service.capabilities.clone() },
            follows_switches: policy::follows_switches(service),
            binder: match spec.bind_unix.is_empty() {
                true => None,
                false => Some(binder::Binder::spawn(&spec.bind_unix, service.exec.user.gid)?),
            },
            bound: net::BoundSockets::default(),
            appender,
            log_budget: Default::default(),
            reports: None,
            net_seen: None,
            brokered: brokered_syscalls(service),
            judge: None,
        })
    }

    /// The descriptors the broker holds (pinned directories), so that a forked
    /// broker can close everything else.
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<std::os::fd::RawFd> = self.bases.iter().map(|f| f.as_raw_fd()).collect();
        fds.extend(self.appender.fds());
        fds.extend(self.reports.as_ref().map(|f| f.as_raw_fd()));
        fds.extend(self.binder.as_ref().map(|b| b.fd()));
        fds
    }

    /// Sends refusals to `pipe` (the daemon's denial trail, which limits
    /// their rate itself) instead of the service's log. The pipe should be
    /// non-blocking: a refusal the daemon has no room for is dropped, never
    /// waited for.
    pub fn report_to(&mut self, pipe: OwnedFd) {
        self.reports = Some(pipe);
    }

    /// The service's refused syscalls come to this broker's listener
    /// (its plan's `refusals_to_broker`): each call is judged by `prog`,
    /// the service's own filter (the plan's `seccomp`); the broker answers
    /// those it refuses with its errno and tells them with the broker's
    /// own refusals (`service` names their fixes).
    pub fn judge_refusals(&mut self, prog: Vec<capexec_sandbox::seccomp::sock_filter>, service: &ServiceSpec) {
        self.judge = Some(refusals::Judge::new(prog, service));
    }

    /// Tells `tx` of each network call the service's filter hands the broker
    /// (see [`NetSeen`]).
    pub fn watch_network(&mut self, tx: std::sync::mpsc::Sender<NetSeen>) {
        self.net_seen = Some(tx);
    }

    /// Logs a refusal: the unit, the call with its argument, why, and what in
    /// the declaration would allow it — the trail an administrator follows.
    pub fn refused(&self, call: &str, why: &str, fix: &str) {
        self.tell(Report { by: Refuser::Broker, what: format!("{call}: {why}"), fix: fix.to_owned(), pid: None, count: 1 });
    }

    /// Tells `r`: to the daemon's trail where it reads the broker's
    /// reports, else as lines of the service's log.
    pub(crate) fn tell(&self, r: Report) {
        if let Some(pipe) = &self.reports {
            // Shorter than PIPE_BUF in practice, so one write is one line
            // whichever thread writes it; a longer one may be cut, and the
            // daemon then drops it.
            let _ = nix::unistd::write(pipe, r.encode().as_bytes());
            return;
        }
        // The daemon's words and rate (see capexec_decl::fix::refusal_line).
        // What and the fix quote what the service asked for: escaped,
        // since this line may go straight to a terminal (capexec run, exec).
        use capexec_decl::terminal::safe;
        let line = capexec_decl::fix::refusal_line(r.by.name(), &safe(&r.what), &safe(&r.fix));
        let mut budget = self.log_budget.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(unshown) = budget.admit_n(std::time::Instant::now(), &line, r.count) {
            // One write per line: the service writes to this stream too.
            for l in unshown.lines() {
                capexec_decl::terminal::say(format_args!("capexec: {}: {l}", self.unit));
            }
            capexec_decl::terminal::say(format_args!("capexec: {}: {line}", self.unit));
        }
    }

    /// Takes away what the broker does not need once the service runs.
    ///
    /// As root: the real and filesystem ids become the service's (files the
    /// broker creates belong to the service, permission checks are the
    /// service's, and signals to the service are allowed as its own user);
    /// the effective uid stays 0 only because the kernel grants the creator of
    /// the service's user namespace — uid 0 — access to it (reading its memory
    /// and fds); every capability is dropped, except CAP_NET_BIND_SERVICE when
    /// it binds ports below 1024 for the service. no_new_privs and the broker's
    /// seccomp allowlist ([`filter::broker_filter`]) in all
    /// cases; `foreground` names the service's init when this process is also
    /// the wrapper that forwards signals to it and waits for it (`capexec
    /// exec`), and whether it ends what init adopted ([`filter::Foreground`]).
    pub fn confine(&self, uid: u32, gid: u32, foreground: Option<filter::Foreground>) -> Result<(), BrokerError> {
        if euid_is_root() {
            use nix::unistd::{setfsuid, setgroups, setresgid, setresuid, Gid, Uid};
            let sys = |op: &'static str| move |e: nix::errno::Errno| BrokerError::Io { op, source: e.into() };
            setgroups(&[]).map_err(sys("clear supplementary groups"))?;
            let g = Gid::from_raw(gid);
            setresgid(g, g, g).map_err(sys("set group ids"))?;
            setresuid(Uid::from_raw(uid), Uid::from_raw(0), Uid::from_raw(0)).map_err(sys("set user ids"))?;
            setfsuid(Uid::from_raw(uid));
        }
        if euid_is_root() {
            self.drop_capabilities()?;
        }
        nix::sys::prctl::set_no_new_privs().map_err(|e| BrokerError::Io { op: "set no_new_privs", source: e.into() })?;
        // Before any broker thread exists: the threads inherit the filter.
        let prog = filter::broker_filter(std::process::id(), foreground)?;
        seccompiler::apply_filter(&prog).map_err(|e| BrokerError::Filter { op: "install", detail: e.to_string() })?;
        Ok(())
    }

    /// Every capability goes (bounding, permitted, effective, inheritable),
    /// except CAP_NET_BIND_SERVICE when the broker binds low ports for the
    /// service (`bind_service`), and the service's own kept ones, which stay
    /// permitted only (see `service_caps`).
    fn drop_capabilities(&self) -> Result<(), BrokerError> {
        use caps::{CapSet, Capability, CapsHashSet};
        let mut keep: CapsHashSet = if self.bind_service { [Capability::CAP_NET_BIND_SERVICE].into_iter().collect() } else { CapsHashSet::new() };
        if self.follows_switches {
            keep.insert(Capability::CAP_SYS_PTRACE);
        }
        let permitted: CapsHashSet = keep.iter().chain(&self.service_caps).copied().collect();
        for c in caps::all().difference(&permitted) {
            // A capability this kernel does not know is not in the set anyway.
            let _ = caps::drop(None, CapSet::Bounding, *c);
        }
        let none = CapsHashSet::new();
        // Effective before permitted: effective must stay a subset of permitted.
        for (set, name, value) in
            [(CapSet::Inheritable, "Inheritable", &none), (CapSet::Effective, "Effective", &keep), (CapSet::Permitted, "Permitted", &permitted)]
        {
            caps::set(None, set, value).map_err(|source| BrokerError::Capabilities { set: name, source })?;
        }
        Ok(())
    }

    /// Serves each channel on a thread of its own (each blocks in its own
    /// receive call). `init` is the service's namespace init, as the broker
    /// sees it: explicit requests are accepted only from its processes.
    pub fn start(self, ch: Channels, init: i32) -> std::io::Result<Running> {
        let b = Arc::new(self);
        let mut threads = Vec::new();
        for r in ch.appends {
            b.appender.adopt(r)?;
        }
        if let Some(l) = ch.listener {
            let (b, l) = (Arc::clone(&b), Arc::new(capexec_sys::notify::Listener::new(l)));
            threads.push(std::thread::Builder::new().name(NOTIFY_THREAD.into()).spawn(move || transparent::serve(b, l))?);
        }
        if let Some(sock) = ch.explicit {
            let peers = explicit::Peers::of_service(init);
            let b = Arc::clone(&b);
            threads.push(std::thread::Builder::new().name("broker-explicit".into()).spawn(move || explicit::serve(&b, sock, peers))?);
        }
        if let Some(sock) = ch.dns {
            let b = Arc::clone(&b);
            threads.push(std::thread::Builder::new().name("broker-dns".into()).spawn(move || dns::serve(&b, sock))?);
        }
        Ok(Running { threads, appender: Arc::clone(&b.appender), unit: b.unit.clone() })
    }

    /// Relays an append-only open: the service gets a pipe, the broker keeps `file`.
    pub(crate) fn append_through_pipe(&self, file: OwnedFd, flags: i32, path: &str) -> std::io::Result<OwnedFd> {
        self.appender.relay(file, flags & libc::O_NONBLOCK != 0, path)
    }
}

const NOTIFY_THREAD: &str = "broker-notify";

/// A broker serving its service (from [`Broker::start`]).
pub struct Running {
    /// The channels' threads; they end with the service.
    pub threads: Vec<std::thread::JoinHandle<()>>,
    appender: Arc<append::Appender>,
    unit: String,
}

impl Running {
    /// Call once the service's init ended, before the broker exits: what the
    /// service appended and the relays have not written yet reaches its files
    /// (waiting at most 5 s for writers that outlive the init).
    pub fn finish(self) {
        // The notification thread ends once no process of the service can
        // make a call, then tells the repeats of refusals it counted: a
        // moment, which a broker that exits now would cut short.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        for t in self.threads.iter().filter(|t| t.thread().name() == Some(NOTIFY_THREAD)) {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        let left = self.appender.finish(std::time::Duration::from_secs(5));
        if left > 0 {
            eprintln!("capexec: {}: broker: {left} append-only files still had writers 5 s after the service ended; what they write is lost", self.unit);
        }
    }
}

fn euid_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn spec(body: &str) -> ServiceSpec {
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        capexec_decl::from_text("t", &format!("[exec]\nargv = [\"/bin/true\"]\n{body}"), &ctx).unwrap_or_else(|e| panic!("{e}"))
    }

    fn layer(body: &str) -> capexec_sandbox::plan::BrokerLayer {
        contribution(&spec(body)).layer.expect("a brokered service has a shared layer")
    }

    fn ports(p: &[u16]) -> Option<BTreeSet<u16>> {
        Some(p.iter().copied().collect())
    }

    #[test]
    fn a_report_is_one_line_whatever_the_service_asked_for() {
        // The call quotes the service: a separator or a line break in it
        // must not make a second field or a second report.
        let call = "open(\"/x\u{1f}evil\u{1f}fix\nsecond\")";
        let report = Report { by: Refuser::Broker, what: format!("{call}: no grant"), fix: "add it".into(), pid: None, count: 1 };
        let line = report.encode();
        assert_eq!(line.matches('\n').count(), 1);
        let r = Report::decode(line.trim_end_matches('\n')).expect("decodes");
        assert_eq!((r.by, r.fix.as_str(), r.pid, r.count), (Refuser::Broker, "add it", None, 1));
        assert!(r.what.contains("\\x1fevil") && r.what.contains("\\nsecond") && r.what.ends_with(": no grant"), "{}", r.what);
        assert_eq!(Report::decode("a\u{1f}b"), None);
        assert_eq!(Report::decode("kernel\u{1f}\u{1f}1\u{1f}w\u{1f}f"), None, "only the broker's and seccomp's");
        let syscall = Report { by: Refuser::Seccomp, what: "syscall mincore (27) by app".into(), fix: "f".into(), pid: Some(12), count: 5000 };
        assert_eq!(Report::decode(syscall.encode().trim_end()), Some(syscall));
        // Whole lines out of what was read; the rest waits for its end.
        // (a line that does not decode is dropped.)
        let mut partial = [line.as_bytes(), b"x\n", &line.as_bytes()[..3]].concat();
        assert_eq!(Report::take_lines(&mut partial).len(), 1);
        assert_eq!(partial, line.as_bytes()[..3]);
    }

    /// The host's loopback lines, as they are; no other line; localhost
    /// named where the host's file does not.
    #[test]
    fn the_views_hosts_file_keeps_the_hosts_loopback_lines() {
        let host = "127.0.0.1 localhost\n127.0.1.1\tvm.example vm # its name\n192.0.2.7 other\n# ::1 commented\nff02::1 ip6-allnodes\n";
        assert_eq!(loopback_hosts(host), "127.0.0.1 localhost\n127.0.1.1\tvm.example vm\n");
        assert_eq!(loopback_hosts("::1 localhost ip6-localhost\n"), "::1 localhost ip6-localhost\n");
        assert_eq!(loopback_hosts(""), "127.0.0.1 localhost\n");
        assert_eq!(loopback_hosts("127.0.0.1 vm\n"), "127.0.0.1 localhost\n127.0.0.1 vm\n");
    }

    #[test]
    fn a_service_without_a_broker_contributes_nothing() {
        assert_eq!(contribution(&spec("")), capexec_sandbox::plan::BrokerPart::default());
    }

    #[test]
    fn the_shared_layer_allows_the_services_ports_and_the_grants() {
        let l = layer(
            "[landlock]\nconnect_tcp = [443]\n[broker.net]\nbind = [\"tcp:127.0.0.1:8080\"]\nconnect = [\"tcp:127.0.0.1:5432\", \"udp:127.0.0.1:9999\"]\n",
        );
        // 0: a port the kernel picks, on the loopback of the service's own namespace.
        assert_eq!(l.bind_tcp, ports(&[0, 8080]));
        let host = layer("[namespaces]\nnet = \"host\"\n[landlock]\nbind_tcp = [8080]\n[broker]\n[[broker.fs]]\npath = \"/srv/**\"\nrights = [\"read\"]\n");
        assert_eq!(host.bind_tcp, ports(&[8080]), "the host's network: no port the kernel picks");
        assert_eq!(l.connect_tcp, ports(&[443, 5432]), "UDP grants are not TCP ports");
    }

    #[test]
    fn granted_names_open_the_resolvers_tcp_port() {
        let l = layer("[broker.dns]\nnames = [\"example.org\"]\n");
        assert_eq!(l.connect_tcp, ports(&[53]));
    }

    #[test]
    fn user_lookups_and_wide_ranges_leave_the_access_unhandled() {
        assert_eq!(layer("[broker]\npwd = [\"www-data\"]\n").connect_tcp, None, "an NSS module may use any port");
        let wide = layer("[broker.net]\nbind = [\"tcp:127.0.0.1:10000-20000\"]\n");
        assert_eq!(wide.bind_tcp, None);
        assert_eq!(wide.connect_tcp, ports(&[]));
    }
}
