//! The broker's policy: one function per kind of request decides it, for the
//! transparent channel (seccomp notifications) and the explicit one
//! (capexec-client) alike: which grant allows it, or a [`Refusal`] with the
//! errno the service gets, why, and the declaration change that would allow
//! it. The channels read requests, perform what is granted and log refusals;
//! a fix to what is allowed is made here, once.

use capexec_decl::grants::{BrokerSpec, FsGrant, FsRights, NetGrant, Proto};
use std::net::SocketAddr;

/// A refused request: the errno for the service, and for the log why and
/// what would allow it ("to allow it: {fix}").
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub errno: i32,
    pub why: String,
    pub fix: String,
}

fn refuse(errno: i32, why: impl Into<String>, fix: impl Into<String>) -> Refusal {
    Refusal { errno, why: why.into(), fix: fix.into() }
}

/// Open flags the broker understands. Anything else (O_PATH, O_TMPFILE,
/// O_DIRECTORY, bits this code does not know) is refused: an unknown bit may
/// change what the call means.
const KNOWN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_LARGEFILE
    | libc::O_NOFOLLOW
    | libc::O_CLOEXEC
    | libc::O_NOATIME
    | libc::O_DIRECT
    | libc::O_ASYNC;

/// What `flags` need of a grant's rights: `Err((errno, why))`.
fn check_flags(flags: i32, rights: FsRights) -> Result<(), (i32, String)> {
    let unknown = flags & !KNOWN_FLAGS;
    if unknown != 0 {
        return Err((libc::EINVAL, format!("open flags {unknown:#o} are not brokered (O_PATH, O_TMPFILE, O_DIRECTORY and unknown bits never are)")));
    }
    let acc = flags & libc::O_ACCMODE;
    if acc == libc::O_ACCMODE {
        return Err((libc::EINVAL, "access mode 3 is not a valid open mode".into()));
    }
    let reads = acc == libc::O_RDONLY || acc == libc::O_RDWR;
    let writes = acc == libc::O_WRONLY || acc == libc::O_RDWR;
    let append = flags & libc::O_APPEND != 0;
    let trunc = flags & libc::O_TRUNC != 0;
    if reads && !rights.read {
        return Err((libc::EACCES, "opening for reading needs the `read` right".into()));
    }
    if trunc && !writes {
        return Err((libc::EACCES, "O_TRUNC on a read-only open would still truncate the file".into()));
    }
    if writes && !rights.write && !(rights.append && append && !trunc) {
        let need = if rights.append { "the `write` right (the grant allows `append`: open with O_APPEND and without O_TRUNC)" } else { "the `write` right" };
        return Err((libc::EACCES, format!("opening for writing needs {need}")));
    }
    if writes && reads && !rights.write {
        return Err((
            libc::EACCES,
            "an append-only file is written through a pipe, which cannot be read: open it O_WRONLY|O_APPEND to write, and O_RDONLY to read".into(),
        ));
    }
    if flags & libc::O_CREAT != 0 && !rights.create {
        return Err((libc::EACCES, "O_CREAT needs the `create` right".into()));
    }
    Ok(())
}

/// An open of the clean absolute path `clean` with `flags`: the grant (and
/// its index, for its pinned directory) that allows it; `Ok(None)` when no
/// grant covers the path, which each channel answers its own way (the
/// transparent one lets the kernel decide within the service's own view, the
/// explicit one refuses with [`no_fs_grant`]).
pub fn open<'a>(spec: &'a BrokerSpec, clean: &str, flags: i32) -> Result<Option<(usize, &'a FsGrant)>, Refusal> {
    let Some((i, grant)) = spec.fs.iter().enumerate().find(|(_, g)| g.matches(clean)) else { return Ok(None) };
    check_flags(flags, grant.rights).map_err(|(errno, why)| {
        refuse(errno, format!("{why} (grant `{}` allows {})", grant.pattern, grant.rights), "widen that grant's rights in [[broker.fs]]")
    })?;
    Ok(Some((i, grant)))
}

/// An unlink of the clean absolute path `clean`: the grant (and its index)
/// that allows it, `Ok(None)` when no grant covers the path (the kernel
/// decides within the service's own view), or a refusal when the grant
/// that covers it lacks the `remove` right.
pub fn remove<'a>(spec: &'a BrokerSpec, clean: &str) -> Result<Option<(usize, &'a FsGrant)>, Refusal> {
    let Some((i, grant)) = spec.fs.iter().enumerate().find(|(_, g)| g.matches(clean)) else { return Ok(None) };
    if !grant.rights.remove {
        let why = format!("removing a file needs the `remove` right (grant `{}` allows {})", grant.pattern, grant.rights);
        return Err(refuse(libc::EACCES, why, "add \"remove\" to that grant's rights in [[broker.fs]]"));
    }
    Ok(Some((i, grant)))
}

/// A granted removal that failed because of what the path is (a
/// directory, a symlink: [`crate::open::remove_granted`] answers EISDIR)
/// or where it leads: a refusal to log. `None`: an ordinary error.
pub fn after_remove(errno: i32, grant: &FsGrant) -> Option<Refusal> {
    match errno {
        libc::EISDIR => Some(refuse(
            libc::EACCES,
            "it is not a regular file (the broker removes regular files only: no directory, no symlink)",
            "leave it to the host, or remove it from a command with privileged = true",
        )),
        _ => after_open(errno, grant),
    }
}

/// Whether an open that `open` allowed is append-only: it writes, and the
/// grant allows appending but not writing. The service then gets a pipe to
/// the file, not the file (see `crate::append`).
pub fn append_only(flags: i32, rights: FsRights) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY && !rights.write
}

/// The explicit channel's answer to a path no grant covers.
pub fn no_fs_grant(clean: &str) -> Refusal {
    refuse(libc::EACCES, "no [[broker.fs]] grant covers it", format!("add a [[broker.fs]] grant with path = \"{clean}\""))
}

/// The explicit channel's answer to a relative path or one with `..`.
pub fn not_clean() -> Refusal {
    refuse(libc::EACCES, "the broker opens absolute paths without `..` only", "pass the absolute path")
}

/// The mode a created file gets: the service's, less its umask (the kernel's
/// rule), less file-type bits. (open_granted strips setuid and setgid.)
pub fn create_mode(flags: i32, mode: u32, umask: u32) -> u32 {
    if flags & libc::O_CREAT != 0 {
        mode & 0o7777 & !umask
    } else {
        0
    }
}

/// A granted open that failed because of what the path turned out to be (a
/// link leaving the grant, not a regular file) rather than an ordinary error:
/// a refusal to log. `None`: an ordinary error, passed on as it is.
pub fn after_open(errno: i32, grant: &FsGrant) -> Option<Refusal> {
    match errno {
        libc::EISDIR => Some(refuse(libc::EACCES, "it is not a regular file (the broker hands out regular files only)", "open a file inside it instead")),
        libc::EXDEV | libc::ELOOP => Some(refuse(
            errno,
            format!("it resolves through a symlink or magic link that leaves grant `{}`", grant.pattern),
            "grant the file the link points to, or a whole tree with `dir/**`",
        )),
        _ => None,
    }
}

/// A bind or a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetOp {
    Bind,
    Connect,
}

impl NetOp {
    pub fn name(self) -> &'static str {
        match self {
            NetOp::Bind => "bind",
            NetOp::Connect => "connect",
        }
    }
}

/// A bind or connect over `proto` to `addr`, checked on the canonical address
/// (`::ffff:a.b.c.d` is a.b.c.d): the grant that allows it.
pub fn net(spec: &BrokerSpec, op: NetOp, proto: Proto, addr: SocketAddr) -> Result<&NetGrant, Refusal> {
    let addr = SocketAddr::new(capexec_decl::grants::canonical(addr.ip()), addr.port());
    let grant = match op {
        NetOp::Bind => spec.bind_grant(proto, addr),
        NetOp::Connect => spec.connect_grant(proto, addr),
    };
    grant.ok_or_else(|| {
        let shown = NetGrant::exact(proto, addr);
        refuse(libc::EACCES, format!("no [broker.net] {} grant covers it", op.name()), format!("add \"{shown}\" to broker.net.{}", op.name()))
    })
}

/// The transparent channel's answer to a bind or connect on a socket that is
/// neither TCP nor UDP.
/// Whether the broker may follow its service across a switch of user
/// (CAP_SYS_PTRACE, see `Broker::follows_switches`): the service keeps
/// CAP_SETUID or CAP_SETGID in the host's user namespace, and the broker's
/// Landlock layer is sure to exist, which alone keeps that capability to the
/// broker's own domain and the service's: required Landlock (else no start)
/// with a scope, which makes the layer a domain whatever the ports say.
pub fn follows_switches(service: &capexec_decl::ServiceSpec) -> bool {
    use capexec_decl::spec::Enforcement;
    let switches = service.capabilities.iter().any(|c| matches!(c, caps::Capability::CAP_SETUID | caps::Capability::CAP_SETGID));
    let layer_sure = service.landlock.mode == Enforcement::Required && (service.landlock.scope_signals || service.landlock.scope_abstract_unix);
    !service.namespaces.user && switches && layer_sure
}

pub fn not_tcp_or_udp() -> Refusal {
    refuse(libc::EACCES, "only TCP and UDP sockets are brokered", "use a stream or datagram socket")
}

/// A TCP bind under `net = "host"`, which Landlock checks too: the broker
/// makes it only so that it knows which sockets have a port of their own
/// (see [`listen_unbound`]).
pub fn host_bind(bind_tcp: &std::collections::BTreeSet<u16>, addr: SocketAddr) -> Result<(), Refusal> {
    if bind_tcp.contains(&addr.port()) {
        return Ok(());
    }
    let p = addr.port();
    Err(refuse(libc::EACCES, format!("landlock.bind_tcp does not list port {p}"), format!("add {p} to landlock.bind_tcp (capexec run: --bind-tcp {p})")))
}

/// A `listen()` on a host TCP socket the broker did not bind and that is not
/// listening: it has no port (or one a failed connect is about to release),
/// so the kernel would bind a random port on every address, a bind no rule
/// sees. `net_host`: the service runs in the host's network namespace.
pub fn listen_unbound(net_host: bool) -> Refusal {
    let fix = match net_host {
        true => "bind the socket to a port in landlock.bind_tcp before listen() (any port: add 0 to landlock.bind_tcp)",
        false => "bind the socket to an address a broker.net.bind grant covers before listen()",
    };
    refuse(libc::EACCES, "the socket was not bound: listen() would bind a random port on every address", fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CAP_SYS_PTRACE only where Landlock is sure to keep it to the service.
    #[test]
    fn the_broker_follows_switches_only_inside_a_sure_landlock_layer() {
        let spec = |extra: &str| {
            let dir = std::env::temp_dir().join(format!("capexec-follows-{}-{}", std::process::id(), extra.len()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join("t.svc");
            std::fs::write(&p, format!("[exec]\nargv = [\"/bin/true\"]\nuser = \"root\"\n{extra}")).unwrap();
            let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
            let s = capexec_decl::load_unit(p.to_str().unwrap(), &[], &ctx).unwrap_or_else(|e| panic!("{e}"));
            std::fs::remove_dir_all(dir).unwrap();
            s
        };
        let keeps = "[capabilities]\nkeep = [\"CAP_SETUID\"]\n";
        assert!(follows_switches(&spec(keeps)));
        assert!(!follows_switches(&spec("")), "no switch without CAP_SETUID/SETGID");
        assert!(!follows_switches(&spec(&format!("{keeps}[namespaces]\nuser = true\n"))), "a private user namespace");
        assert!(!follows_switches(&spec(&format!("{keeps}[landlock]\nmode = \"best-effort\"\n"))), "Landlock may be missing");
        assert!(!follows_switches(&spec(&format!("{keeps}[landlock]\nscope_signals = false\nscope_abstract_unix = false\n"))), "no scope: maybe no layer");
    }

    fn r(read: bool, write: bool, create: bool, append: bool) -> FsRights {
        FsRights { read, write, create, append, remove: false }
    }

    #[test]
    fn flags_against_rights() {
        let ro = r(true, false, false, false);
        assert!(check_flags(libc::O_RDONLY | libc::O_CLOEXEC, ro).is_ok());
        assert_eq!(check_flags(libc::O_WRONLY, ro).unwrap_err().0, libc::EACCES);
        assert_eq!(check_flags(libc::O_RDWR, ro).unwrap_err().0, libc::EACCES);
        assert_eq!(check_flags(libc::O_RDONLY | libc::O_TRUNC, ro).unwrap_err().0, libc::EACCES);
        assert_eq!(check_flags(libc::O_RDONLY | libc::O_CREAT, ro).unwrap_err().0, libc::EACCES);
        assert_eq!(check_flags(libc::O_PATH, ro).unwrap_err().0, libc::EINVAL);
        assert_eq!(check_flags(libc::O_DIRECTORY, ro).unwrap_err().0, libc::EINVAL);
        assert_eq!(check_flags(libc::O_TMPFILE | libc::O_RDWR, r(true, true, true, false)).unwrap_err().0, libc::EINVAL);
        assert_eq!(check_flags(0o3, ro).unwrap_err().0, libc::EINVAL);
        assert_eq!(check_flags(0x4000_0000, ro).unwrap_err().0, libc::EINVAL);
        let app = r(false, false, true, true);
        assert!(check_flags(libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, app).is_ok());
        assert!(check_flags(libc::O_WRONLY | libc::O_APPEND | libc::O_TRUNC, app).is_err());
        assert!(check_flags(libc::O_WRONLY, app).is_err());
        assert!(check_flags(libc::O_RDWR | libc::O_APPEND, app).is_err(), "append does not grant read");
        let read_app = r(true, false, false, true);
        assert_eq!(check_flags(libc::O_RDWR | libc::O_APPEND, read_app).unwrap_err().0, libc::EACCES, "an append-only pipe cannot be read");
        assert!(check_flags(libc::O_RDONLY, read_app).is_ok() && check_flags(libc::O_WRONLY | libc::O_APPEND, read_app).is_ok());
        assert!(append_only(libc::O_WRONLY | libc::O_APPEND, app) && !append_only(libc::O_RDONLY, read_app));
        assert!(!append_only(libc::O_WRONLY | libc::O_APPEND, r(false, true, false, true)), "a write grant writes the file itself");
        let rw = r(true, true, false, false);
        assert!(check_flags(libc::O_RDWR | libc::O_TRUNC, rw).is_ok());
        assert!(check_flags(libc::O_RDWR | libc::O_CREAT, rw).is_err());
    }
}
