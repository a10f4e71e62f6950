//! The kernel's own reports of what it refused a service: Landlock's denial
//! records (AUDIT_LANDLOCK_ACCESS, with the domain they happened in, and
//! AUDIT_LANDLOCK_DOMAIN, naming the process that made the domain) and
//! seccomp's (AUDIT_SECCOMP, for filters installed with
//! SECCOMP_FILTER_FLAG_LOG), read as root from the audit netlink multicast
//! group: no auditd needed, and none disturbed if it runs. The kernel emits
//! these only while audit is enabled; `open` enables it if it is off, as
//! auditd would (with no auditd the kernel also prints records to its log,
//! rate-limited).

use crate::SupervisorError;
use nix::sys::socket::{bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use std::os::fd::{AsRawFd, OwnedFd};

const AUDIT_GET: u16 = 1000;
const AUDIT_SET: u16 = 1001;
const AUDIT_USER: u16 = 1005;
const AUDIT_SECCOMP: u16 = 1326;
const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
const AUDIT_LANDLOCK_DOMAIN: u16 = 1424;
const AUDIT_NLGRP_READLOG: u32 = 1;
const AUDIT_STATUS_ENABLED: u32 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;

/// One record the trail needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Record {
    /// seccomp refused syscall `nr` to process `pid`.
    Seccomp { pid: i32, nr: i64, comm: String },
    /// Landlock domain `domain` was made by process `pid`.
    LandlockDomain { domain: String, pid: i32 },
    /// A marker this process wrote into the log (see [`mark`]): every record
    /// before it has been read.
    Marker(String),
    /// Landlock refused something in `domain`: `blockers` (`fs.read_file`,
    /// `net.connect_tcp`, ...), and the object, as the kernel wrote it
    /// (`path="/etc/x"`, `daddr=127.0.0.1 dest=9`).
    LandlockAccess { domain: String, blockers: String, object: String },
}

/// The value of `key=` in an audit record's text (quotes removed).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.split(' ').find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?;
    Some(at.trim_matches('"'))
}

/// A field the kernel logs as an untrusted string (`comm`, `exe`): quoted
/// as it is, or, when it holds a space, a quote or a byte outside printable
/// ASCII, written in hex without quotes (postgrey names its process
/// `postgrey --inet=...`, which came out as `706F7374...`).
fn untrusted(text: &str, key: &str) -> Option<String> {
    let raw = text.split(' ').find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?;
    if let Some(quoted) = raw.strip_prefix('"') {
        return Some(quoted.trim_end_matches('"').to_owned());
    }
    let hex = raw.len() % 2 == 0 && !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        return Some(raw.to_owned());
    }
    let bytes: Vec<u8> = (0..raw.len()).step_by(2).filter_map(|i| u8::from_str_radix(&raw[i..i + 2], 16).ok()).collect();
    // The service names its own processes (prctl PR_SET_NAME): a name made
    // of terminal escapes must reach the reader's terminal as text.
    Some(String::from_utf8_lossy(&bytes).chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect())
}

/// The parts of `text` after the `audit(...): ` header that name the object
/// of a Landlock denial: everything but the domain and blockers.
fn object(text: &str) -> String {
    text.split(' ').filter(|w| !w.starts_with("domain=") && !w.starts_with("blockers=") && !w.starts_with("audit(")).collect::<Vec<_>>().join(" ")
}

/// Reads one record of the types the trail needs; `None` for any other.
pub fn parse(kind: u16, text: &str) -> Option<Record> {
    match kind {
        AUDIT_SECCOMP => Some(Record::Seccomp {
            pid: field(text, "pid")?.parse().ok()?,
            nr: field(text, "syscall")?.parse().ok()?,
            comm: untrusted(text, "comm").unwrap_or_default(),
        }),
        AUDIT_LANDLOCK_DOMAIN if field(text, "status") == Some("allocated") => {
            Some(Record::LandlockDomain { domain: field(text, "domain")?.to_owned(), pid: field(text, "pid")?.parse().ok()? })
        }
        AUDIT_USER => text.split_once("capexec-marker=").map(|(_, m)| Record::Marker(m.split(['\'', ' ']).next().unwrap_or_default().to_owned())),
        AUDIT_LANDLOCK_ACCESS => {
            Some(Record::LandlockAccess { domain: field(text, "domain")?.to_owned(), blockers: field(text, "blockers")?.to_owned(), object: object(text) })
        }
        _ => None,
    }
}

/// A netlink message: header, then `body`.
fn message(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&(16 + body.len() as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Asks the kernel whether audit is enabled, and enables it if not.
/// Returns whether it did.
fn ensure_enabled() -> Result<bool, SupervisorError> {
    let sys = |what: &'static str| move |e: nix::Error| SupervisorError::sys(what)(std::io::Error::from(e));
    let s = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkAudit).map_err(sys("open the audit socket"))?;
    send(s.as_raw_fd(), &message(AUDIT_GET, 1, &[]), MsgFlags::empty()).map_err(sys("ask the audit status"))?;
    let mut buf = [0u8; 512];
    let n = recv(s.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(sys("read the audit status"))?;
    // struct audit_status: mask, enabled, ...
    let enabled = match u32_at(&buf[..n], 4).map(|k| k as u16) {
        Some(AUDIT_GET) => u32_at(&buf[..n], 20).unwrap_or(0),
        _ => return Err(SupervisorError::sys("read the audit status")(std::io::Error::from_raw_os_error(libc::EPROTO))),
    };
    if enabled != 0 {
        return Ok(false);
    }
    let mut status = [0u8; 40];
    status[..4].copy_from_slice(&AUDIT_STATUS_ENABLED.to_ne_bytes());
    status[4..8].copy_from_slice(&1u32.to_ne_bytes());
    let mut set = message(AUDIT_SET, 2, &status);
    // An acknowledgement, so that a refusal is seen.
    set[6..8].copy_from_slice(&(NLM_F_REQUEST | 4).to_ne_bytes());
    send(s.as_raw_fd(), &set, MsgFlags::empty()).map_err(sys("enable audit"))?;
    let n = recv(s.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(sys("enable audit"))?;
    if u32_at(&buf[..n], 4).map(|k| k as u16) == Some(NLMSG_ERROR) {
        let code = u32_at(&buf[..n], 16).unwrap_or(0) as i32;
        if code != 0 {
            return Err(SupervisorError::sys("enable audit")(std::io::Error::from_raw_os_error(-code)));
        }
    }
    Ok(true)
}

/// Writes a marker record (`capexec-marker=TOKEN`, as a user message:
/// CAP_AUDIT_WRITE) into the audit log. The kernel hands records over in
/// order, so a reader that sees it has seen every record before it: the
/// condition `capexec run` waits for, not a delay.
pub fn mark(token: &str) -> std::io::Result<()> {
    let s = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkAudit)?;
    let mut text = format!("capexec-marker={token}").into_bytes();
    text.push(0);
    send(s.as_raw_fd(), &message(AUDIT_USER, 1, &text), MsgFlags::empty())?;
    Ok(())
}

/// The multicast reader: its socket, and whether `open` enabled audit.
pub struct Reader {
    sock: OwnedFd,
    pub enabled_audit: bool,
    /// One receive buffer for every record (a flood reads thousands),
    /// made at the first read: a run that ends well reads none.
    buf: std::cell::RefCell<Vec<u8>>,
}

/// The way into the initial network namespace, and back: the kernel sends
/// its audit records to that namespace's multicast group only. A reader
/// made in another one (capexec started in a container's network, by `ip
/// netns exec`, or in a test's own namespace) heard nothing, and every run
/// ended with a 5 s wait for its marker. Opened before capexec confines
/// itself (a brokered run shares a Landlock layer with its service, which
/// refuses it pid 2's namespaces, and that refusal would be told as the
/// service's); entering it later needs no path.
pub struct FirstNetwork {
    back: std::fs::File,
    there: std::fs::File,
}

impl FirstNetwork {
    /// `None` where capexec is in the first network already, or where it
    /// cannot tell which that is (inside a pid namespace of its own): the
    /// socket is then made where capexec is.
    pub fn open() -> Option<FirstNetwork> {
        use std::os::unix::fs::MetadataExt;
        let first = first_network()?;
        let id = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
        if id("/proc/thread-self/ns/net")? == id(first)? {
            return None;
        }
        Some(FirstNetwork { back: std::fs::File::open("/proc/thread-self/ns/net").ok()?, there: std::fs::File::open(first).ok()? })
    }

    /// Makes `make`'s socket in the first network: the calling thread
    /// enters it for the one call, and goes back; the socket stays where
    /// it was made.
    fn socket(&self, make: impl FnOnce() -> std::io::Result<OwnedFd>) -> std::io::Result<OwnedFd> {
        capexec_sys::setns(self.there.as_raw_fd(), libc::CLONE_NEWNET)?;
        let sock = make();
        // Back before anything else runs on this thread; where that fails the
        // thread would make its sockets in the wrong network: end the process.
        if let Err(e) = capexec_sys::setns(self.back.as_raw_fd(), libc::CLONE_NEWNET) {
            eprintln!("capexec: cannot return to its network namespace after opening the audit socket: {e}");
            std::process::abort();
        }
        sock
    }
}

/// A path to the initial network namespace: that of kthreadd (pid 2, a
/// kernel thread, whose parent is none: so in the first pid namespace),
/// which every kernel thread shares. Not PID 1's: an init may be in a
/// network of its own, or deny root its /proc/1/ns (these machines' does).
/// `None` inside a pid namespace of its own, where pid 2 is anyone.
fn first_network() -> Option<&'static str> {
    let status = std::fs::read_to_string("/proc/2/status").ok()?;
    let kernel_thread = status.lines().any(|l| l == "Name:\tkthreadd") && status.lines().any(|l| l == "PPid:\t0");
    kernel_thread.then_some("/proc/2/ns/net")
}

/// Joins the audit multicast group (CAP_AUDIT_READ), enabling audit first
/// if it is off (CAP_AUDIT_CONTROL), in the first network namespace through
/// `first` ([`FirstNetwork::open`]), else in the one capexec is in.
pub fn open(first: Option<&FirstNetwork>) -> Result<Reader, SupervisorError> {
    let enabled_audit = ensure_enabled()?;
    let make = || socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkAudit).map_err(std::io::Error::from);
    let sock = match first {
        Some(f) => f.socket(make),
        None => make(),
    }
    .map_err(SupervisorError::sys("open the audit socket"))?;
    bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 1 << (AUDIT_NLGRP_READLOG - 1))).map_err(|e| SupervisorError::sys("join the audit log group")(e.into()))?;
    // Room for a burst (a service looping on a refused call): what does not
    // fit is dropped for this reader alone (ENOBUFS), never held against the
    // kernel's own backlog. Best effort: the default buffer works, smaller.
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(8 << 20));
    Ok(Reader { sock, enabled_audit, buf: std::cell::RefCell::new(Vec::new()) })
}

impl Reader {
    /// Blocks for the next record the trail needs (see [`try_next`](Self::try_next)).
    pub fn next(&self) -> std::io::Result<Record> {
        loop {
            if let Some(r) = self.try_next()? {
                return Ok(r);
            }
            self.wait(-1)?;
        }
    }

    /// Waits at most `timeout_ms` (-1: for ever) until a record may be
    /// read; false when the time passed first.
    pub fn wait(&self, timeout_ms: i32) -> std::io::Result<bool> {
        capexec_sys::poll_one(std::os::fd::AsFd::as_fd(&self.sock), libc::POLLIN, timeout_ms)
    }

    /// The socket, borrowed, to poll for records.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.sock)
    }

    /// The next record the trail needs among those waiting, without
    /// blocking: `None` once none waits. `Err` when the socket failed for
    /// good; records the kernel dropped (ENOBUFS) are skipped.
    pub fn try_next(&self) -> std::io::Result<Option<Record>> {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            buf.resize(16 * 1024, 0);
        }
        loop {
            let n = match recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ENOBUFS) => continue,
                Err(e) => return Err(e.into()),
            };
            let (Some(len), Some(kind)) = (u32_at(&buf[..n], 0), u32_at(&buf[..n], 4).map(|k| k as u16)) else { continue };
            let text = String::from_utf8_lossy(&buf[16..(len as usize).min(n)]);
            if let Some(r) = parse(kind, text.trim_end_matches('\0')) {
                return Ok(Some(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records as this kernel (6.18) wrote them.
    #[test]
    fn records_of_the_three_kinds_are_read() {
        let seccomp = "audit(1796101650.041:380): auid=4294967295 uid=65534 gid=65534 ses=4294967295 pid=7967 comm=\"unshare\" exe=\"/usr/bin/unshare\" sig=0 arch=c000003e syscall=272 compat=0 ip=0x7fa39cea40f7 code=0x50000";
        assert_eq!(parse(AUDIT_SECCOMP, seccomp), Some(Record::Seccomp { pid: 7967, nr: 272, comm: "unshare".into() }));
        // A name with a space is logged in hex.
        let hex = seccomp.replace("comm=\"unshare\"", "comm=706F737467726579202D2D696E6574");
        assert_eq!(parse(AUDIT_SECCOMP, &hex), Some(Record::Seccomp { pid: 7967, nr: 272, comm: "postgrey --inet".into() }));
        let escape = seccomp.replace("comm=\"unshare\"", "comm=1B5B326A");
        assert_eq!(parse(AUDIT_SECCOMP, &escape), Some(Record::Seccomp { pid: 7967, nr: 272, comm: "\\u{1b}[2j".into() }));
        let access = "audit(1796101650.069:381): domain=12ea29d81 blockers=net.connect_tcp daddr=127.0.0.1 dest=9";
        assert_eq!(
            parse(AUDIT_LANDLOCK_ACCESS, access),
            Some(Record::LandlockAccess { domain: "12ea29d81".into(), blockers: "net.connect_tcp".into(), object: "daddr=127.0.0.1 dest=9".into() })
        );
        let domain = "audit(1796101650.069:381): domain=12ea29d81 status=allocated mode=enforcing pid=7964 uid=65534 exe=\"/usr/bin/x\" comm=\"x\"";
        assert_eq!(parse(AUDIT_LANDLOCK_DOMAIN, domain), Some(Record::LandlockDomain { domain: "12ea29d81".into(), pid: 7964 }));
        assert_eq!(parse(AUDIT_LANDLOCK_DOMAIN, "audit(1.2:3): domain=12ea29d81 status=deallocated denials=1"), None);
        assert_eq!(parse(1300, seccomp), None);
        assert_eq!(parse(AUDIT_SECCOMP, "audit(1.2:3): pid=x syscall=1"), None);
        let marker = "audit(1.2:3): pid=9 uid=0 auid=4294967295 ses=4294967295 msg='capexec-marker=9-1 exe=\"/usr/bin/capexec\"'";
        assert_eq!(parse(AUDIT_USER, marker), Some(Record::Marker("9-1".into())));
    }
}
