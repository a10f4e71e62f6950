//! The network guard: capexec's cgroup BPF layer (bpf/netguard.bpf.c).
//!
//! A `net = "none"` service has its own network namespace, yet some of its
//! sockets live in the host's: preopened TCP/UDP listeners and the sockets its
//! broker binds or connects for it. Landlock checks only TCP bind/connect, by
//! port and for every address alike; nothing else looks at what such a socket
//! does next (a datagram `sendto` to any address, a disconnect and a new
//! connect, a new bind). The guard's programs sit on the service's cgroup v2
//! directory and check every bind, connect and addressed datagram of those
//! sockets against the declaration's `[broker.net]` grants, letting a datagram
//! socket answer only peers it received from; and a packet check drops any of
//! the service's packets that names its own route (IPv4 options, an IPv6
//! routing header), whose first hop no hook above was shown.
//!
//! Who creates a socket decides which programs see it (its creator's cgroup),
//! so the launch creates the service's host sockets from a process in a child
//! cgroup of the service's (`supervisor`), whose own calls the programs let
//! through. The programs are attached with BPF_PROG_ATTACH, not a BPF link: the
//! attachment then lasts as long as the cgroup, not as long as some capexec
//! process, so a crashed supervisor leaves its services guarded.
//!
//! Without root or cgroup v2 there is no guard; [`unguarded_gaps`] says what
//! that would leave open, and the plan refuses such declarations.

use crate::sys;
use capexec_decl::grants::{AddrRange, NetGrant, Proto};
use capexec_decl::spec::{ListenAddr, NetMode, PreopenKind};
use capexec_decl::ServiceSpec;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The compiled programs; see scripts/gen-bpf.sh.
static OBJECT: &[u8] = include_bytes!("../bpf/netguard.bpf.o");

/// As `MAX_GRANTS` in netguard.bpf.c; validation holds declarations to it.
pub const MAX_GRANTS: usize = capexec_decl::validate::MAX_NET_GRANTS;
const GRANT_CONNECT: u8 = 1;
const GRANT_BIND: u8 = 2;
const GRANT_PING: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum NetGuardError {
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("load the network guard's BPF programs: {0}\n  help: `capexec doctor` says whether cgroup BPF works on this machine")]
    Load(String),
    #[error("attach the network guard's `{program}` program to {}: {source}\n  help: `capexec doctor` says whether cgroup BPF works on this machine", cgroup.display())]
    Attach { program: &'static str, cgroup: PathBuf, source: std::io::Error },
    #[error(
        "the declaration has {0} [broker.net] grants; the network guard holds at most {MAX_GRANTS}: merge them into address ranges (ADDRESS/PREFIX, PORT-PORT)"
    )]
    TooManyGrants(usize),
}

/// What the guard allows, in the programs' layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPolicy {
    grants: Vec<Grant>,
    /// Every socket of the service is the host's (`net = "host"`): a bind
    /// to port 0 passes, as the port a connect or first send binds by
    /// itself does; the kernel picks it, and no listen follows unchecked
    /// (the broker answers listen).
    port_zero_binds: bool,
    /// Every ICMP packet of the service's must go to a `ping` grant's
    /// range (`net = "host"`, where its ping sockets are the host's).
    check_icmp: bool,
}

/// `struct grant` in netguard.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Grant {
    net: [u32; 4],
    mask: [u32; 4],
    port_lo: u16,
    port_hi: u16,
    kind: u8,
    proto: u8,
    pad: [u8; 2],
}

// SAFETY: `Grant` is `repr(C)`, made of integers only, with its padding
// spelled out as a field, so every byte of it is initialised and any bit
// pattern is valid: aya copies it byte for byte into the programs' .rodata.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Grant {}

impl Grant {
    fn new(g: &NetGrant, kind: u8) -> Grant {
        let mut grant = Grant::range(&AddrRange { addr: g.addr, prefix: g.prefix }, kind);
        (grant.port_lo, grant.port_hi) = g.ports;
        grant.proto = match g.proto {
            None => 0,
            Some(Proto::Tcp) => libc::IPPROTO_TCP as u8,
            Some(Proto::Udp) => libc::IPPROTO_UDP as u8,
        };
        grant
    }

    /// An address range alone (a `ping` grant: no protocol, no port).
    fn range(r: &AddrRange, kind: u8) -> Grant {
        // IPv4 as v4-mapped IPv6, as the programs compare it.
        let (bytes, prefix) = match r.addr {
            IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), r.prefix as u32 + 96),
            IpAddr::V6(a) => (a.octets(), r.prefix as u32),
        };
        let mut grant = Grant { kind, ..Grant::default() };
        for i in 0..4 {
            let bits = prefix.saturating_sub(32 * i as u32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            // The programs read addresses as the kernel stores them: network order.
            grant.mask[i] = mask.to_be();
            grant.net[i] = u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]).to_be() & grant.mask[i];
        }
        grant
    }
}

/// What the programs refused (`struct refusal` in netguard.bpf.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub op: RefusedOp,
    /// `udp` or `tcp`; `None` for an ICMP echo request ([`RefusedOp::Ping`]).
    pub proto: Option<Proto>,
    pub addr: IpAddr,
    pub port: u16,
    /// The process, as the host names it.
    pub pid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedOp {
    Connect,
    Bind,
    /// A datagram to an explicit address (sendto, sendmsg).
    Send,
    /// A packet that named its own route (IPv4 options with a source
    /// route, an IPv6 routing header): dropped as it left. `addr` is the
    /// route's first hop, where it would have gone.
    Route,
    /// An ICMP echo request (a ping socket's send or connect) to an
    /// address no `ping` grant covers: dropped as it left, or refused.
    Ping,
}

impl Refusal {
    /// From one ring buffer record; `None` for a record of another layout or
    /// protocol.
    fn parse(b: &[u8]) -> Option<Refusal> {
        if b.len() < 24 {
            return None;
        }
        let u32_at = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&b[..16]);
        let v6 = std::net::Ipv6Addr::from(octets);
        let op = match b[22] {
            1 => RefusedOp::Connect,
            2 => RefusedOp::Bind,
            3 => RefusedOp::Send,
            4 => RefusedOp::Route,
            5 => RefusedOp::Ping,
            _ => return None,
        };
        let (op, proto) = match i32::from(b[23]) {
            libc::IPPROTO_TCP => (op, Some(Proto::Tcp)),
            libc::IPPROTO_UDP => (op, Some(Proto::Udp)),
            // A ping socket's connect, or an echo request as it left.
            libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6 => (RefusedOp::Ping, None),
            _ => return None,
        };
        let addr = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
        Some(Refusal { op, proto, addr, port: u16::from_ne_bytes([b[20], b[21]]), pid: u32_at(16) })
    }
}

/// The programs' refusal records, read by the daemon for the service's
/// denial trail. Poll its descriptor for readable, then [`Refusals::drain`].
pub struct Refusals(aya::maps::RingBuf<aya::maps::MapData>);

impl Refusals {
    /// Every record there is now.
    pub fn drain(&mut self) -> Vec<Refusal> {
        let mut out = Vec::new();
        while let Some(item) = self.0.next() {
            out.extend(Refusal::parse(&item));
        }
        out
    }
}

impl std::os::fd::AsFd for Refusals {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl std::os::fd::AsRawFd for Refusals {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// The service's sockets in the host's network namespace that the guard is
/// for, by protocol. Under `net = "host"` all of them where it has
/// `[broker.net]` grants (without, Landlock's ports are its network limits);
/// under `net = "none"` those the broker makes and its preopened ones.
fn host_sockets(spec: &ServiceSpec) -> (bool, bool) {
    if spec.namespaces.net == NetMode::Host {
        let guarded = spec.broker.guards_net();
        return (guarded, guarded);
    }
    let (mut tcp, mut udp) = (false, false);
    for p in &spec.preopen {
        match &p.kind {
            PreopenKind::Listen { address: ListenAddr::Tcp(_), .. } => tcp = true,
            PreopenKind::Listen { address: ListenAddr::Udp(_), .. } => udp = true,
            _ => {}
        }
    }
    for g in spec.broker.connect.iter().chain(&spec.broker.bind) {
        tcp |= g.proto != Some(Proto::Udp);
        udp |= g.proto != Some(Proto::Tcp);
    }
    (tcp, udp)
}

/// The guard's policy for `spec`, or `None` when the service needs no guard.
pub fn policy(spec: &ServiceSpec) -> Result<Option<NetPolicy>, NetGuardError> {
    if host_sockets(spec) == (false, false) {
        return Ok(None);
    }
    let b = &spec.broker;
    let grants: Vec<Grant> = b
        .connect
        .iter()
        .map(|g| Grant::new(g, GRANT_CONNECT))
        .chain(b.bind.iter().map(|g| Grant::new(g, GRANT_BIND)))
        .chain(b.ping.iter().map(|r| Grant::range(r, GRANT_PING)))
        .collect();
    if grants.len() > MAX_GRANTS {
        return Err(NetGuardError::TooManyGrants(grants.len()));
    }
    let host = spec.namespaces.net == NetMode::Host;
    Ok(Some(NetPolicy { grants, port_zero_binds: host, check_icmp: host }))
}

/// What stays open for `spec` where the guard cannot be attached (rootless,
/// no cgroup v2): each a sentence, empty when nothing the declaration limits
/// would be reachable.
pub fn unguarded_gaps(spec: &ServiceSpec) -> Vec<String> {
    let (tcp, udp) = host_sockets(spec);
    let mut gaps = Vec::new();
    if spec.namespaces.net == NetMode::Host {
        if tcp || udp {
            gaps.push(
                "with the host's network, its [broker.net] grants are the guard's to hold (no address at all, with guard = true and no grants): \
                 without it, it could send datagrams to any address and bind or connect TCP on any address to the ports of landlock.bind_tcp/connect_tcp"
                    .to_owned(),
            );
        }
        return gaps;
    }
    if udp {
        gaps.push(
            "its UDP sockets in the host's network namespace (a `udp:` preopen, or a [broker.net] grant that covers UDP) could send datagrams to any host address"
                .to_owned(),
        );
    }
    let ll = &spec.landlock;
    if tcp && !(ll.connect_tcp.is_empty() && ll.bind_tcp.is_empty()) {
        gaps.push(
            "its TCP sockets in the host's network namespace could connect to or bind the ports of landlock.connect_tcp/bind_tcp on any host address (those ports are meant for its own loopback)"
                .to_owned(),
        );
    }
    gaps
}

/// `Err` with what to do when `spec` needs the guard to hold as declared and
/// will run without it (rootless, or without a cgroup v2 directory).
pub fn require_guard(spec: &ServiceSpec) -> Result<(), crate::error::LaunchError> {
    let gaps = unguarded_gaps(spec);
    if gaps.is_empty() {
        return Ok(());
    }
    Err(crate::error::LaunchError::Unsupported {
        what: format!(
            "{} would run weaker than declared without capexec's network guard (cgroup BPF, which needs root and a cgroup v2 hierarchy): {}",
            spec.name,
            gaps.join("; and ")
        ),
        help: {
            // As root what is missing is a cgroup v2 hierarchy here.
            let attach = match nix::unistd::geteuid().is_root() {
                true => "mount a cgroup v2 hierarchy, where the guard is attached (cgroup2 at /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid machines;                          `ip netns exec` mounts a /sys of its own without the host's cgroup mounts: enter the network namespace with                          `nsenter --net=/run/netns/NAME` instead)",
                false => "run it as root (`capexec daemon`, or `capexec exec` as root), where the guard checks its sockets",
            };
            match spec.namespaces.net {
                NetMode::Host => format!("{attach}; or drop [broker.net]'s address grants (and `guard = true`), leaving landlock.bind_tcp/connect_tcp as its only network limits"),
                NetMode::None => format!("{attach}; or remove the `udp:` preopens and [broker.net] grants that cover UDP (and landlock.connect_tcp/bind_tcp beside host TCP sockets)"),
            }
        },
    })
}

/// What this host says against `spec`'s `[broker.net] ping` grants: the
/// kernel lets a process make ping sockets only where its group or one of
/// its supplementary groups is in `net.ipv4.ping_group_range` of the
/// network namespace (the host's, under `net = "host"`); the kernel's
/// default, `1 0`, allows no one. `None` where the grants can work.
pub fn ping_warning(spec: &ServiceSpec) -> Option<String> {
    if spec.broker.ping.is_empty() {
        return None;
    }
    let path = "/proc/sys/net/ipv4/ping_group_range";
    let range = std::fs::read_to_string(path).ok()?;
    let mut it = range.split_whitespace().map(|n| n.parse::<u32>());
    let (Some(Ok(lo)), Some(Ok(hi))) = (it.next(), it.next()) else { return None };
    let user = &spec.exec.user;
    if std::iter::once(&user.gid).chain(&user.groups).any(|g| (lo..=hi).contains(g)) {
        return None;
    }
    Some(format!(
        "[broker.net] ping grants addresses, but this host lets no group of the service's (gid {}) make ping sockets: \
         {path} is \"{lo} {hi}\"; set it to include the group (systemd's sysctl.d sets \"0 2147483647\": \
         `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`, and a file in /etc/sysctl.d to keep it)",
        user.gid
    ))
}

/// The cgroup v2 id of a directory: its inode number on cgroupfs, which is
/// what `bpf_get_current_cgroup_id()` returns.
pub fn cgroup_id(dir: &Path) -> Result<u64, NetGuardError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).map(|m| m.ino()).map_err(|source| NetGuardError::Io { op: "stat cgroup", path: dir.to_owned(), source })
}

/// Program name (in netguard.bpf.c) and where it attaches. The last is the
/// packet check: no packet of the service's names its own route past the
/// addresses the others checked.
const PROGRAMS: [(&str, u32); 9] = [
    ("connect4", sys::BPF_CGROUP_INET4_CONNECT),
    ("connect6", sys::BPF_CGROUP_INET6_CONNECT),
    ("bind4", sys::BPF_CGROUP_INET4_BIND),
    ("bind6", sys::BPF_CGROUP_INET6_BIND),
    ("sendmsg4", sys::BPF_CGROUP_UDP4_SENDMSG),
    ("sendmsg6", sys::BPF_CGROUP_UDP6_SENDMSG),
    ("recvmsg4", sys::BPF_CGROUP_UDP4_RECVMSG),
    ("recvmsg6", sys::BPF_CGROUP_UDP6_RECVMSG),
    ("egress", sys::BPF_CGROUP_INET_EGRESS),
];

/// Loads the programs for `policy` and attaches them to the service's cgroup
/// v2 directory `service`; the calls of processes in `supervisor` (a child of
/// it) pass. Sockets are told apart by network namespace: those in the
/// caller's (the host's, for the service) are checked. Returns the ring
/// buffer the programs report their refusals in.
pub fn attach(policy: &NetPolicy, service: &Path, supervisor: &Path) -> Result<Refusals, NetGuardError> {
    let host_netns =
        sys::netns_cookie().map_err(|source| NetGuardError::Io { op: "read the network namespace cookie of", path: "/proc/self/ns/net".into(), source })?;
    let exempt = cgroup_id(supervisor)?;
    let mut grants = [Grant::default(); MAX_GRANTS];
    grants[..policy.grants.len()].copy_from_slice(&policy.grants);
    let n = policy.grants.len() as u32;
    let mut ebpf = aya::EbpfLoader::new()
        .override_global("host_netns", &host_netns, true)
        .override_global("exempt_cgroup", &exempt, true)
        .override_global("n_grants", &n, true)
        .override_global("port_zero_binds", &u32::from(policy.port_zero_binds), true)
        .override_global("check_icmp", &u32::from(policy.check_icmp), true)
        .override_global("grants", &grants, true)
        .load(OBJECT)
        .map_err(|e| NetGuardError::Load(e.to_string()))?;
    let cgroup = std::fs::File::open(service).map_err(|source| NetGuardError::Io { op: "open cgroup", path: service.to_owned(), source })?;
    // A cgroup kept from an earlier run (the daemon reuses a service's) still
    // holds that run's programs; all attached programs must allow, so they
    // would narrow the new policy to the old one.
    for (name, attach_type) in PROGRAMS {
        sys::cgroup_detach_all(cgroup.as_fd(), attach_type).map_err(|source| NetGuardError::Attach { program: name, cgroup: service.to_owned(), source })?;
    }
    for (name, attach_type) in PROGRAMS {
        let load = |e: aya::programs::ProgramError| NetGuardError::Load(format!("{name}: {}", verifier_text(&e)));
        let fd = match ebpf.program_mut(name) {
            Some(aya::programs::Program::CgroupSockAddr(p)) => {
                p.load().map_err(load)?;
                p.fd().map_err(load)?
            }
            Some(aya::programs::Program::CgroupSkb(p)) => {
                p.load().map_err(load)?;
                p.fd().map_err(load)?
            }
            _ => return Err(NetGuardError::Load(format!("the object has no cgroup program `{name}`"))),
        };
        sys::cgroup_attach(fd.as_fd(), cgroup.as_fd(), attach_type).map_err(|source| NetGuardError::Attach {
            program: name,
            cgroup: service.to_owned(),
            source,
        })?;
    }
    let map = ebpf.take_map("refusals").ok_or_else(|| NetGuardError::Load("the object has no map `refusals`".into()))?;
    let ring = aya::maps::RingBuf::try_from(map).map_err(|e| NetGuardError::Load(format!("refusals: {e}")))?;
    // Dropping `ebpf` closes capexec's other references; the attachments keep theirs.
    Ok(Refusals(ring))
}

/// A load error with the verifier's log, which aya keeps in the error's
/// source chain.
fn verifier_text(e: &aya::programs::ProgramError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    #[test]
    fn grants_become_masked_v6_ranges() {
        let g = Grant::new(&NetGrant::parse("udp:10.1.2.3/8:53").unwrap(), GRANT_CONNECT);
        assert_eq!(g.mask.map(u32::from_be), [u32::MAX, u32::MAX, u32::MAX, 0xff00_0000]);
        assert_eq!(g.net.map(u32::from_be), [0, 0, 0xffff, 0x0a00_0000]);
        assert_eq!((g.port_lo, g.port_hi, g.proto, g.kind), (53, 53, 17, GRANT_CONNECT));
        let g = Grant::new(&NetGrant::parse("[::1]:8000-8009").unwrap(), GRANT_BIND);
        assert_eq!(g.mask, [u32::MAX; 4]);
        assert_eq!(g.net.map(u32::from_be), [0, 0, 0, 1]);
        assert_eq!((g.port_lo, g.port_hi, g.proto), (8000, 8009, 0));
        let g = Grant::new(&NetGrant::parse("[2001:db8::]/36:*").unwrap(), GRANT_BIND);
        assert_eq!(g.mask.map(u32::from_be), [u32::MAX, 0xf000_0000, 0, 0]);
        assert_eq!(g.net.map(u32::from_be), [0x2001_0db8, 0, 0, 0]);
    }

    #[test]
    fn the_layout_matches_the_programs() {
        // struct grant in netguard.bpf.c: 16 + 16 + 2 + 2 + 1 + 1 + 2.
        assert_eq!(std::mem::size_of::<Grant>(), 40);
        let src = include_str!("../bpf/netguard.bpf.c");
        assert!(src.contains(&format!("#define MAX_GRANTS {MAX_GRANTS}\n")));
        for (name, _) in PROGRAMS {
            let ctx = if name == "egress" { "struct __sk_buff *skb" } else { "struct bpf_sock_addr *ctx" };
            assert!(src.contains(&format!("int {name}({ctx})")), "{name}");
        }
    }

    /// Runs `body` in a forked child moved into `cgroup` first; its exit
    /// code. The child makes only async-signal-safe calls.
    fn in_cgroup(cgroup: &Path, body: impl FnOnce() -> i32) -> i32 {
        let procs = std::ffi::CString::new(cgroup.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: the child only calls open/write/socket/sendto/connect/_exit,
        // which are async-signal-safe, so the test harness's threads do not matter.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: writing "0" (this process) to cgroup.procs through a path held in a CString.
                let joined = unsafe {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1
                };
                let code = if joined { body() } else { 99 };
                // SAFETY: ending the child without running the harness's destructors.
                unsafe { libc::_exit(code) }
            }
            pid => {
                let mut status = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                libc::WEXITSTATUS(status)
            }
        }
    }

    fn sin(port: u16) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
            sin_zero: [0; 8],
        }
    }

    /// 0: sent; else the errno.
    fn send_to(sock: i32, port: u16) -> i32 {
        let a = sin(port);
        // SAFETY: a valid sockaddr_in of the length passed and a one-byte buffer.
        let r = unsafe { libc::sendto(sock, b"x".as_ptr().cast(), 1, 0, (&a as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&a) as u32) };
        if r < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        } else {
            0
        }
    }

    fn connect_to(sock: i32, port: u16) -> i32 {
        let a = sin(port);
        // SAFETY: a valid sockaddr_in of the length passed.
        let r = unsafe { libc::connect(sock, (&a as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&a) as u32) };
        if r < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        } else {
            0
        }
    }

    fn udp() -> i32 {
        // SAFETY: socket takes integers; the fd dies with the child.
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) }
    }

    /// The programs on a real cgroup: a socket created in it reaches only
    /// granted addresses; one created in the supervisor's child cgroup, and
    /// one in another network namespace, anything.
    #[test]
    fn the_programs_hold_in_a_real_cgroup() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: attaching cgroup BPF programs needs root (CI runs this as root)");
            return;
        }
        let v2 = crate::doctor::cgroups().0.expect("cgroup v2 is mounted here");
        let service = Path::new(&v2.path).join(format!("capexec-netguard-test-{}", std::process::id()));
        let supervisor = service.join("capexec");
        std::fs::create_dir_all(&supervisor).unwrap();
        let witness = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let granted = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (w, g) = (witness.local_addr().unwrap().port(), granted.local_addr().unwrap().port());
        let spec_grant = NetGrant::parse(&format!("udp:127.0.0.1:{g}")).unwrap();
        let policy = NetPolicy { grants: vec![Grant::new(&spec_grant, GRANT_CONNECT)], port_zero_binds: false, check_icmp: false };
        // A first run's programs (granting nothing) must not outlive it.
        attach(&NetPolicy { grants: vec![], port_zero_binds: false, check_icmp: false }, &service, &supervisor).unwrap();
        let mut refusals = attach(&policy, &service, &supervisor).unwrap();
        let eperm = libc::EPERM;
        let checked = in_cgroup(&service, || {
            let s = udp();
            let t = udp();
            (send_to(s, w) == eperm) as i32
                | ((send_to(s, g) == 0) as i32) << 1
                | ((connect_to(t, w) == eperm) as i32) << 2
                | ((connect_to(t, g) == 0) as i32) << 3
        });
        let exempt = in_cgroup(&supervisor, || (send_to(udp(), w) == 0) as i32 | ((connect_to(udp(), w) == 0) as i32) << 1);
        // The two refusals, reported in order; the exempt calls are not.
        let reported = refusals.drain();
        let _ = std::fs::remove_dir(&supervisor);
        let _ = std::fs::remove_dir(&service);
        assert_eq!(
            checked, 0b1111,
            "in the service's cgroup: bit 0 sendto ungranted refused, 1 sendto granted sent, 2 connect ungranted refused, 3 connect granted"
        );
        assert_eq!(exempt, 0b11, "in the supervisor's cgroup everything passes");
        let localhost = IpAddr::from([127, 0, 0, 1]);
        let ops: Vec<_> = reported.iter().map(|r| (r.op, r.proto, r.addr, r.port)).collect();
        assert_eq!(ops, [(RefusedOp::Send, Some(Proto::Udp), localhost, w), (RefusedOp::Connect, Some(Proto::Udp), localhost, w)]);
        assert!(reported.iter().all(|r| r.pid != std::process::id() && r.pid > 0), "the forked process's pid: {reported:?}");
    }

    /// The committed object is what scripts/gen-bpf.sh makes of the source
    /// (clang and bpftool come with scripts/install-test-deps.sh).
    #[test]
    fn the_committed_object_is_current() {
        let out = std::env::temp_dir().join(format!("capexec-netguard-{}.o", std::process::id()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-bpf.sh");
        let st = std::process::Command::new("sh").arg(script).arg(&out).status().expect("run scripts/gen-bpf.sh");
        assert!(st.success(), "scripts/gen-bpf.sh failed (it needs clang, bpftool and libbpf-dev)");
        let fresh = std::fs::read(&out).expect("the fresh object");
        let _ = std::fs::remove_file(&out);
        assert!(fresh == OBJECT, "bpf/netguard.bpf.o is stale: run scripts/gen-bpf.sh and commit the object");
    }
}
