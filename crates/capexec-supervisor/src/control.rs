//! The control socket: who may connect (SO_PEERCRED), reading one bounded
//! request, and the client side used by the CLI.

use crate::error::AccessDenied;
use crate::paths::Mode;
use crate::protocol::{Envelope, Request, Response, MAX_REQUEST, VERSION};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// Who may use the daemon: root and the `capexec` group (system mode), or the
/// daemon's own user (user mode).
#[derive(Debug, Clone)]
pub struct Access {
    pub mode: Mode,
    pub owner_uid: u32,
    /// gid of the `capexec` group, when the group exists.
    pub group: Option<u32>,
    /// The daemon's own services, which are never its clients.
    pub services: OwnServices,
}

pub const GROUP: &str = "capexec";

impl Access {
    pub fn new(mode: Mode, services: OwnServices) -> Access {
        let group = capexec_decl::ids::group_by_name(GROUP);
        Access { mode, owner_uid: nix::unistd::geteuid().as_raw(), group, services }
    }

    /// [`Access::check`] for the process that connected `sock`, which must
    /// also be none of the daemon's services. The peer is named by a pidfd
    /// taken at its connect (SO_PEERPIDFD), and must still be alive once it
    /// has been looked at: a pid that had been reused by then would name
    /// another process's ancestry and cgroup. Before Linux 6.5 the pid of
    /// SO_PEERCRED is all there is.
    pub fn check_peer(&self, sock: std::os::fd::BorrowedFd<'_>, uid: u32, gid: u32, pid: Option<i32>) -> Result<(), AccessDenied> {
        self.check(uid, gid, pid)?;
        let pidfd = capexec_sys::peer_pidfd(sock).ok();
        let alive = |fd: &std::os::fd::OwnedFd| capexec_sys::pidfd_pid(std::os::fd::AsRawFd::as_raw_fd(fd)).ok().flatten();
        let pid = match &pidfd {
            Some(fd) => alive(fd).ok_or(AccessDenied::PeerGone)?,
            // A peer in no pid namespace below the daemon's is in none of its
            // services' (each is the daemon's own or a child of it).
            None => match pid.filter(|p| *p > 0) {
                Some(p) => p,
                None => return Ok(()),
            },
        };
        match self.services.hold(pid) {
            Some(Sandboxed::Service) => return Err(AccessDenied::FromService { pid }),
            Some(Sandboxed::View) => return Err(AccessDenied::FromSandbox { pid }),
            None => {}
        }
        match &pidfd {
            Some(fd) if alive(fd) != Some(pid) => Err(AccessDenied::PeerGone),
            _ => Ok(()),
        }
    }

    /// Ok, or the refusal with what to do about it.
    pub fn check(&self, uid: u32, gid: u32, pid: Option<i32>) -> Result<(), AccessDenied> {
        if uid == 0 || uid == self.owner_uid {
            return Ok(());
        }
        match self.mode {
            Mode::User => Err(AccessDenied::NotOwner { uid, owner: self.owner_uid }),
            Mode::System => {
                let Some(g) = self.group else {
                    return Err(AccessDenied::NoGroup { uid, group: GROUP });
                };
                if gid == g || pid.is_some_and(|p| supplementary_groups(p).contains(&g)) {
                    return Ok(());
                }
                Err(AccessDenied::NotInGroup { uid, group: GROUP })
            }
        }
    }
}

/// The processes of the daemon's services: every sandbox its launcher makes
/// (a service's init, its program and everything they start, the commands
/// run before and after it, on reload, in it), whatever uid they run as;
/// and any other process in a view capexec built (`capexec exec` under
/// systemd, `capexec run`, another daemon's services).
///
/// They must never be its clients. A service that runs as root (or in the
/// `capexec` group) in the host's user namespace and has the control socket
/// in its view (a declaration that shows /run) would otherwise pass the uid
/// check: it could stop the other services, or write a declaration anywhere
/// it may write and have the daemon start that file, which runs with
/// whatever the file declares.
#[derive(Debug, Clone, Default)]
pub struct OwnServices {
    /// The launcher's pid: each run's init is its child, and a service's
    /// processes stay below their init (it is their pid namespace's init, or
    /// a child subreaper without one).
    pub launcher: Option<i32>,
    /// The cgroup that holds one cgroup per service (`--cgroup`), for what
    /// outlives an init until the daemon kills it. A process cannot leave
    /// its cgroup: no view holds a cgroup filesystem.
    pub cgroup_parent: Option<String>,
}

/// Where a refused client runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandboxed {
    /// In one of this daemon's services.
    Service,
    /// In some other view capexec built.
    View,
}

impl OwnServices {
    /// Whether process `pid` is one of the services', or in a capexec view.
    pub fn hold(&self, pid: i32) -> Option<Sandboxed> {
        if self.launcher.is_some_and(|l| crate::trail::ancestry(pid).skip(1).any(|p| p == l)) {
            return Some(Sandboxed::Service);
        }
        if let Some(parent) = self.cgroup_parent.as_deref().map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
            let prefix = format!("/{parent}/");
            // `ID:CONTROLLERS:PATH`, a line per hierarchy (v2's is `0::PATH`).
            let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if cgroups.lines().filter_map(|l| l.splitn(3, ':').nth(2)).any(|path| path.starts_with(&prefix)) {
                return Some(Sandboxed::Service);
            }
        }
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        root_is_a_view(&mounts).then_some(Sandboxed::View)
    }
}

/// Whether the process whose /proc/PID/mountinfo is `mountinfo` stands on
/// the tmpfs of a capexec view: the line of its mount point "/" has the
/// view's source after the " - " and the type. (Paths there have their
/// spaces escaped, so the first " - " is the separator.)
fn root_is_a_view(mountinfo: &str) -> bool {
    mountinfo.lines().any(|l| {
        let Some((left, right)) = l.split_once(" - ") else { return false };
        left.split(' ').nth(4) == Some("/") && right.split(' ').nth(1) == Some(capexec_sandbox::mounts::VIEW_SOURCE)
    })
}

/// The `Groups:` line of /proc/PID/status.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| g.split_whitespace().filter_map(|x| x.parse().ok()).collect()).unwrap_or_default()
}

/// Reads one request line of at most MAX_REQUEST bytes. Errors are the reply
/// to send.
pub async fn read_request<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Result<Request, Response> {
    let mut line = Vec::new();
    let mut limited = tokio::io::BufReader::new(r.take(MAX_REQUEST as u64 + 1));
    limited.read_until(b'\n', &mut line).await.map_err(|e| Response::err(format!("reading the request: {e}"), None))?;
    if line.len() > MAX_REQUEST {
        return Err(Response::err(format!("request too large: the limit is {MAX_REQUEST} bytes"), None));
    }
    if line.last() != Some(&b'\n') {
        return Err(Response::err("incomplete request: expected one line of JSON ending in a newline", Some("see docs/control-protocol.md".into())));
    }
    parse_request(&line)
}

pub fn parse_request(line: &[u8]) -> Result<Request, Response> {
    let v: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| Response::err(format!("malformed request: {e}"), Some("send one line of JSON, see docs/control-protocol.md".into())))?;
    match v.get("v").and_then(|x| x.as_u64()) {
        Some(x) if x == u64::from(VERSION) => {}
        Some(x) => {
            return Err(Response::err(
                format!("protocol version {x} is not supported: this daemon speaks version {VERSION}"),
                Some("use the capexec binary that matches the daemon".into()),
            ))
        }
        None => return Err(Response::err("malformed request: no protocol version (\"v\")", Some("see docs/control-protocol.md".into()))),
    }
    // The request without its version, parsed on its own: serde cannot refuse
    // unknown fields through a flattened struct.
    let mut v = v;
    if let Some(o) = v.as_object_mut() {
        o.remove("v");
    }
    serde_json::from_value(v).map_err(|e| Response::err(format!("malformed request: {e}"), Some("see docs/control-protocol.md".into())))
}

/// CLI side: why talking to the daemon failed, with the fix.
#[derive(Debug)]
pub struct ClientError {
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

pub struct Client {
    reader: BufReader<std::os::unix::net::UnixStream>,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
            let (message, hint) = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => (
                    format!("no capexec daemon is running (nothing listens on {})", socket.display()),
                    if socket.starts_with(crate::paths::SYSTEM_RUNTIME) {
                        "start it with `capexec daemon` as root (or `systemctl start capexecd`); for your own services run `capexec daemon --user` and add --user to each command (`capexec start --user NAME`)"
                    } else {
                        "start your user daemon with `capexec daemon --user`, or pass --socket to reach another one"
                    },
                ),
                std::io::ErrorKind::PermissionDenied => (
                    format!("permission denied connecting to {}", socket.display()),
                    "only root and members of the `capexec` group may control the system daemon; for your own daemon add --user to the command (`capexec status --user`)",
                ),
                _ => (format!("cannot connect to the capexec daemon at {}: {e}", socket.display()), "check that the daemon is running: `capexec status`"),
            };
            ClientError { message, hint: Some(hint.into()) }
        })?;
        Ok(Client { reader: BufReader::new(s) })
    }

    pub fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_string(&Envelope { v: VERSION, req: req.clone() }).expect("requests serialise");
        line.push('\n');
        self.reader.get_mut().write_all(line.as_bytes()).map_err(|e| ClientError { message: format!("sending the request to the daemon: {e}"), hint: None })
    }

    /// Next reply line; `None` at end of stream.
    pub fn next_reply(&mut self) -> Result<Option<Response>, ClientError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| ClientError { message: format!("reading the daemon's reply: {e}"), hint: None })?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line).map(Some).map_err(|e| ClientError {
            message: format!("the daemon's reply is not valid: {e}"),
            hint: Some("use the capexec binary that matches the daemon".into()),
        })
    }

    pub fn call(socket: &Path, req: &Request) -> Result<Response, ClientError> {
        let mut c = Client::connect(socket)?;
        // A refused client is answered (and hung up on) before its request is
        // read; the answer is still there to read.
        let sent = c.send(req);
        match c.next_reply() {
            Ok(Some(r)) => Ok(r),
            Ok(None) => {
                sent?;
                Err(ClientError { message: "the daemon closed the connection without a reply".into(), hint: Some("see the daemon's log".into()) })
            }
            Err(e) => {
                sent?;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_is_told_by_its_roots_source() {
        let view = "69 46 0:41 / / ro,nosuid,nodev,relatime - tmpfs capexec-view rw,mode=755\n70 69 0:42 / /tmp rw - tmpfs tmpfs rw\n";
        assert!(root_is_a_view(view));
        // The host's root, and a view's name on another mount point.
        let host = "27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n90 27 0:50 / /srv/capexec\\040- rw - tmpfs capexec-view rw\n";
        assert!(!root_is_a_view(host));
        assert!(!root_is_a_view(""));
    }
}
