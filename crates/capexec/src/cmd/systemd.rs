//! `capexec exec` under systemd: what systemd hands an ExecStart= process is
//! handed on to the confined service, translated where the service's view
//! differs from capexec's.
//!
//! - Socket activation: the sockets systemd passed (LISTEN_FDS, LISTEN_FDNAMES,
//!   for this process's LISTEN_PID) become the service's first fds, 3, 4, ...,
//!   before the declared preopens; the service's LISTEN_PID is its own pid.
//! - NOTIFY_SOCKET: a `type = "notify"` service gets a socket of its own in its view and
//!   capexec relays what it says (READY=1, STATUS=, RELOADING=1, STOPPING=1,
//!   WATCHDOG=1, ...) to systemd's socket. capexec is the process systemd
//!   started and the one that exits with the service, so it is the main pid:
//!   a MAINPID= from the service (a pid in its own namespace) is replaced by
//!   capexec's. Other services get no socket; capexec says READY=1 for them.
//! - WATCHDOG_USEC (for this process's WATCHDOG_PID) is passed on.
//! - CREDENTIALS_DIRECTORY is shown to the service read-only at the same path.

use nix::sys::socket::MsgFlags;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;

use capexec_sandbox::mainpid::Announced;

/// What systemd gave this process, to be given on to the service.
#[derive(Default)]
pub struct Handoff {
    /// Socket-activated fds, in systemd's order.
    pub fds: Vec<OwnedFd>,
    /// Their names (LISTEN_FDNAMES, or "unknown" as sd_listen_fds_with_names says).
    pub names: Vec<String>,
    /// Connected to systemd's NOTIFY_SOCKET.
    pub notify: Option<UnixDatagram>,
    pub watchdog_usec: Option<u64>,
    pub credentials: Option<PathBuf>,
    /// What the kernel refuses the service (`capexec run`'s refusal
    /// summary; not systemd's): told the init's pid while it sets up,
    /// before it starts the program (see `SpawnOptions::on_setup`), the
    /// program's once it runs, and read while capexec waits for the service
    /// (its audit socket polled with the signals).
    pub watch: Option<std::rc::Rc<capexec_supervisor::trail::Watch>>,
    /// Given the listener of the program's network calls, which it must
    /// answer (`capexec run --net-summary`, see plan::Extras::watch_network).
    pub net_watch: Option<Box<dyn FnOnce(std::os::fd::OwnedFd)>>,
    /// Told of the binds and connects the service's broker answers, which
    /// `net_watch`'s listener never sees (the broker's filter comes first).
    pub net_seen: Option<std::sync::mpsc::Sender<capexec_broker::NetSeen>>,
}

/// Variables that are ours: the service gets its own values or none.
pub const CONSUMED: &[&str] = &["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY"];

fn var(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Whether a `*_PID` variable addresses this process (absent counts as yes for
/// the watchdog, as in sd_watchdog_enabled; socket activation requires it).
fn for_me(pid: Option<String>) -> bool {
    pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id())
}

impl Handoff {
    /// Reads what systemd passed, from `env` (this process's environment).
    /// Takes ownership of the socket-activated fds, so the caller must not
    /// have opened anything else at 3 and above yet.
    pub fn from_env(env: &[(String, String)]) -> Result<Handoff, super::CmdError> {
        let mut h = Handoff::default();
        if let (Some(n), true) = (var(env, "LISTEN_FDS"), for_me(var(env, "LISTEN_PID"))) {
            let n: RawFd =
                n.parse().ok().filter(|n| (0..=4096).contains(n)).ok_or_else(|| super::CmdError::Usage(format!("LISTEN_FDS={n} is not a count of fds")))?;
            let names: Vec<String> = var(env, "LISTEN_FDNAMES").map(|v| v.split(':').map(str::to_owned).collect()).unwrap_or_default();
            // Close-on-exec: they reach the service only where the launcher
            // places them.
            h.fds =
                capexec_sys::take_listen_fds(n).map_err(|e| super::CmdError::Usage(format!("{e} (was capexec started by systemd's socket activation?)")))?;
            h.names = match names.len() == n as usize {
                true => names,
                false => vec!["unknown".to_owned(); n as usize],
            };
        }
        if let Some(path) = var(env, "NOTIFY_SOCKET") {
            h.notify = Some(connect(&path).map_err(super::CmdError::file("connect to systemd's NOTIFY_SOCKET", &path))?);
            let pid = var(env, "WATCHDOG_PID");
            if pid.is_none() || for_me(pid) {
                h.watchdog_usec = var(env, "WATCHDOG_USEC").and_then(|v| v.parse().ok()).filter(|u| *u > 0);
            }
        }
        if let Some(dir) = var(env, "CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
            h.credentials = Some(PathBuf::from(dir));
        }
        Ok(h)
    }

    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.fds.iter().map(|f| f.as_raw_fd()).collect()
    }
}

/// A datagram socket connected to a NOTIFY_SOCKET address: a path, or an
/// abstract name written with a leading `@`.
fn connect(path: &str) -> std::io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            sock.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)?
        }
        None => sock.connect(path)?,
    }
    Ok(sock)
}

/// Tells systemd the service is ready, on its behalf.
pub fn announce_ready(to: &UnixDatagram) {
    if let Err(e) = to.send(format!("READY=1\nMAINPID={}", std::process::id()).as_bytes()) {
        tracing::warn!("tell systemd's NOTIFY_SOCKET the service is ready: {e}");
    }
}

/// sd_notify messages are short; systemd itself reads at most a page or so.
const MAX_MESSAGE: usize = 4096;

/// The assignments relayed to systemd. Others (FDSTORE=1, which would need the
/// fds, MAINPID=, which names a pid systemd cannot see, and anything unknown)
/// are dropped.
const RELAYED: &[&str] =
    &["READY", "RELOADING", "STOPPING", "STATUS", "ERRNO", "BUSERROR", "WATCHDOG", "WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC", "MONOTONIC_USEC", "NOTIFYACCESS"];

/// Rewrites one message from the service for systemd: the known assignments,
/// and `MAINPID=<capexec>` with READY=1 (and where the service named one).
/// `None` when nothing is left to say.
pub fn translate(msg: &str, main_pid: u32) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    let mut mainpid = false;
    for line in msg.split('\n').filter(|l| !l.is_empty()) {
        let Some((key, _)) = line.split_once('=') else { continue };
        if key == "MAINPID" || (key == "READY" && line == "READY=1") {
            mainpid = true;
        }
        if RELAYED.contains(&key) {
            out.push(line);
        }
    }
    let pid = format!("MAINPID={main_pid}");
    if mainpid {
        out.push(&pid);
    }
    (!out.is_empty() && out.iter().any(|l| !l.starts_with("MAINPID="))).then(|| out.join("\n"))
}

/// Relays the service's notify socket to systemd's, from a thread of its own
/// and, once the service has ended, from [`Relay::drain`].
///
/// A message is in flight between the thread's receive and its send. The
/// thread waits for messages without the lock and takes it only to receive
/// and send what is there, so `drain` (which takes it too) waits for a message
/// in flight instead of finding the socket empty and letting capexec exit
/// with it unsent: a final STOPPING=1 was lost that way under load.
///
/// It also answers the service's init, which asks when the main process has
/// ended which process the service named its main one since (see
/// capexec_sandbox::mainpid): the lock holds what the service named.
pub struct Relay {
    from: Arc<OwnedFd>,
    /// `None` where no systemd listens (`capexec exec` on a terminal): what
    /// the service says is read and dropped.
    to: Option<Arc<UnixDatagram>>,
    /// The service's init, as this process sees it.
    init: libc::pid_t,
    in_flight: Arc<std::sync::Mutex<Announced>>,
}

impl Relay {
    pub fn new(from: OwnedFd, to: Option<UnixDatagram>, init: libc::pid_t) -> Relay {
        Relay { from: Arc::new(from), to: to.map(Arc::new), init, in_flight: Arc::default() }
    }

    /// Relays until the process ends. Started after the broker (if any) has
    /// confined this process, so the thread runs under its seccomp filter too.
    pub fn start(&self) -> std::io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let (from, to, in_flight, init) = (self.from.clone(), self.to.clone(), self.in_flight.clone(), self.init);
        let relay = move || loop {
            let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
                Ok(_) => {}
            }
            if fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL)) {
                return;
            }
            let mut named = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            while relay_one(from.as_fd(), to.as_deref(), MsgFlags::MSG_DONTWAIT, &mut named, init) {}
        };
        std::thread::Builder::new().name("notify-relay".into()).spawn(relay).map(drop)
    }

    /// Relays what the service sent before it ended (STOPPING=1, say) and the
    /// thread has not relayed yet, including a message it holds right now.
    pub fn drain(&self) {
        let mut named = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while relay_one(self.from.as_fd(), self.to.as_deref(), MsgFlags::MSG_DONTWAIT, &mut named, self.init) {}
    }
}

/// Receives one message and relays it; answers init's question. `false`
/// when there is nothing more to receive (with MSG_DONTWAIT) or the socket
/// failed. Descriptors a message might carry are not accepted (recv has no
/// control buffer).
fn relay_one(from: BorrowedFd, to: Option<&UnixDatagram>, flags: MsgFlags, named: &mut Announced, init: libc::pid_t) -> bool {
    let mut buf = [0u8; MAX_MESSAGE];
    let n = match nix::sys::socket::recv(from.as_raw_fd(), &mut buf, flags) {
        Ok(n) => n,
        Err(e) => return e == nix::errno::Errno::EINTR,
    };
    let msg = String::from_utf8_lossy(&buf[..n]);
    if named.hear(&msg) {
        if let Err(e) = capexec_sandbox::mainpid::answer(init, *named) {
            tracing::warn!("tell the service's init which process is its main one: {e}");
        }
    }
    if let (Some(out), Some(to)) = (translate(&msg, std::process::id()), to) {
        if let Err(e) = to.send(out.as_bytes()) {
            tracing::warn!("relay to systemd's NOTIFY_SOCKET: {e}");
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn translation_keeps_the_protocol_and_names_capexec_as_main_pid() {
        assert_eq!(translate("READY=1\nSTATUS=serving", 42).as_deref(), Some("READY=1\nSTATUS=serving\nMAINPID=42"));
        assert_eq!(translate("MAINPID=1\nREADY=1", 42).as_deref(), Some("READY=1\nMAINPID=42"));
        assert_eq!(translate("WATCHDOG=1", 42).as_deref(), Some("WATCHDOG=1"));
        assert_eq!(translate("RELOADING=1\nMONOTONIC_USEC=5", 42).as_deref(), Some("RELOADING=1\nMONOTONIC_USEC=5"));
        assert_eq!(translate("FDSTORE=1\nFDNAME=x", 42), None, "fd store needs the fds, which are not relayed");
        assert_eq!(translate("MAINPID=7", 42), None, "a bare MAINPID says nothing new");
        assert_eq!(translate("garbage without equals", 42), None);
        assert_eq!(translate("READY=0", 42).as_deref(), Some("READY=0"));
    }
}
