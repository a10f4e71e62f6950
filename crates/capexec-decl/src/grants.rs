//! Broker grants (`[broker]`): what a running service may ask for beyond its
//! static view, and the pure checks the broker makes against them.
//!
//! The checks live here, next to the types, so that `capexec check`, the broker
//! and the tests all read one definition. Nothing here touches the system.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The address the loopback of a service's own network namespace (`net =
/// "none"`) has beside 127.0.0.1. glibc's getaddrinfo with `AI_ADDRCONFIG`
/// resolves no IPv4 address, not even "127.0.0.1", where no interface has an
/// IPv4 address other than 127.0.0.1: znc and in.tftpd name their listening
/// address so, and could not bind it. Only that namespace has the address,
/// so a bind to it stays there, whatever the grants (postfix's
/// `inet_interfaces = loopback-only` binds every loopback address it finds).
pub const OWN_ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 254);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerSpec {
    /// Files the service may open later, outside its static view.
    pub fs: Vec<FsGrant>,
    /// Addresses the service may connect to (through sockets the broker creates
    /// in the host's network namespace).
    pub connect: Vec<NetGrant>,
    /// Addresses the service may bind (in the host's network namespace).
    pub bind: Vec<NetGrant>,
    /// Unix socket paths the broker binds for the service (`unix:PATH` in
    /// `[broker.net] bind`), in a directory the service cannot write: a
    /// control socket directly in /run (unbound's /run/unbound.ctl), which
    /// would otherwise need all of /run writable. Absolute and normalised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bind_unix: Vec<PathBuf>,
    /// `[broker.net] guard = true`: under `net = "host"`, the network guard
    /// holds `connect` and `bind` even where both are empty, so that every
    /// IP socket of the service reaches no address but theirs. Without it,
    /// a `net = "host"` service with no grants has Landlock's TCP ports as
    /// its only network limit, and UDP none (systemd's `IPAddressDeny=any`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard: bool,
    /// `[broker.net] ping`: where the service may send ICMP echo requests,
    /// through ping sockets (`SOCK_DGRAM` of IPPROTO_ICMP or ICMPV6; raw
    /// sockets stay refused). Under `net = "host"` only; the network guard
    /// drops every other ICMP packet of the service's as it leaves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ping: Vec<AddrRange>,
    pub dns: DnsGrant,
    /// User names getpwnam/getpwuid may return.
    pub pwd: Vec<String>,
    /// Group names getgrnam/getgrgid may return.
    pub grp: Vec<String>,
    /// The service may send log lines to the host's syslog or journal.
    pub syslog: bool,
    /// sysctl keys (dotted, e.g. `net.core.somaxconn`) the service may read.
    pub sysctl: Vec<String>,
}

impl BrokerSpec {
    /// True when the declaration grants nothing.
    pub fn is_empty(&self) -> bool {
        !self.has_net_grants() && self.is_empty_but_net()
    }

    /// Whether there are IP address grants (`[broker.net]` connect or bind,
    /// Unix socket paths aside).
    pub fn has_net_grants(&self) -> bool {
        !self.connect.is_empty() || !self.bind.is_empty() || !self.ping.is_empty()
    }

    /// The `ping` grant that covers `ip`, if any.
    pub fn ping_grant(&self, ip: IpAddr) -> Option<&AddrRange> {
        self.ping.iter().find(|r| r.contains(ip))
    }

    /// Whether the network guard holds the address grants on the service's
    /// sockets in the host's network namespace: where there are any, or
    /// where the declaration asks for it with none (`guard = true`).
    pub fn guards_net(&self) -> bool {
        self.has_net_grants() || self.guard
    }

    /// True when nothing but IP address grants is granted: under `net =
    /// "host"` those are the network guard's alone, and no broker starts
    /// for them (`ServiceSpec::brokers_net`).
    pub fn is_empty_but_net(&self) -> bool {
        self.fs.is_empty()
            && self.bind_unix.is_empty()
            && self.dns.names.is_empty()
            && self.pwd.is_empty()
            && self.grp.is_empty()
            && !self.syslog
            && self.sysctl.is_empty()
    }

    /// The first fs grant whose pattern matches `path` (absolute, normalised).
    pub fn fs_grant(&self, path: &str) -> Option<&FsGrant> {
        self.fs.iter().find(|g| g.matches(path))
    }

    pub fn connect_grant(&self, proto: Proto, addr: SocketAddr) -> Option<&NetGrant> {
        self.connect.iter().find(|g| g.matches(proto, addr))
    }

    pub fn bind_grant(&self, proto: Proto, addr: SocketAddr) -> Option<&NetGrant> {
        self.bind.iter().find(|g| g.matches(proto, addr))
    }

    /// The Unix socket grant for `path` as the service's bind names it: the
    /// very path, byte for byte (a relative or unnormalised one is no grant's).
    pub fn bind_unix_grant(&self, path: &[u8]) -> Option<&PathBuf> {
        self.bind_unix.iter().find(|p| p.as_os_str().as_encoded_bytes() == path)
    }

    /// The `bind_unix` grant (its index) that `path`, byte for byte, names
    /// a socket of: the grant's path itself (suffix empty) or a temporary
    /// name beside it, the path and a [`temporary_suffix`] (returned). A
    /// daemon that replaces its socket without a moment in which clients
    /// find none binds such a name and renames or links it into place
    /// (haproxy's `P.PID.tmp`, supervisord's `P.PID`), keeping the old one
    /// as a link meanwhile (haproxy's `P.PID.bak`).
    pub fn unix_name<'a>(&self, path: &'a [u8]) -> Option<(usize, &'a [u8])> {
        self.bind_unix.iter().enumerate().find_map(|(i, p)| {
            let suffix = path.strip_prefix(p.as_os_str().as_encoded_bytes())?;
            (suffix.is_empty() || temporary_suffix(suffix)).then_some((i, suffix))
        })
    }
}

/// Longest temporary suffix of a `unix:` bind grant's name, with its dot.
pub const MAX_TEMPORARY_SUFFIX: usize = 32;

/// Whether `suffix` may follow a `unix:` bind grant's path as a temporary
/// name (see [`BrokerSpec::unix_name`]): a dot and up to 31 letters,
/// digits, `.`, `_` or `-`; never a `/`, so the name stays in the grant's
/// directory.
pub fn temporary_suffix(suffix: &[u8]) -> bool {
    suffix.len() >= 2 && suffix.len() <= MAX_TEMPORARY_SUFFIX && suffix[0] == b'.' && suffix.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// Why a `unix:PATH` bind grant is not one (see [`BrokerSpec::bind_unix`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnixPathError {
    #[error("`{0}` is not an absolute path")]
    Relative(String),
    #[error("`{0}` must name a socket in a directory below / by a plain path (no `.`, `..`, `//` or trailing `/`)")]
    NotPlain(String),
    #[error("`{0}` is longer than a Unix socket address may be (107 bytes)")]
    TooLong(String),
    /// The path, escaped.
    #[error("`{0}` has a control character")]
    Control(String),
}

/// A `unix:PATH` bind grant's path, checked (see [`BrokerSpec::bind_unix`]).
pub fn check_unix_path(path: &str) -> Result<PathBuf, UnixPathError> {
    let p = std::path::Path::new(path);
    if !p.is_absolute() {
        return Err(UnixPathError::Relative(path.to_owned()));
    }
    // (components() would hide a `.`: the path must be the very bytes of the bind.)
    let normal = path.split('/').skip(1).all(|c| !c.is_empty() && c != "." && c != "..");
    if !normal || path.ends_with('/') || path.contains("//") || p.parent().is_none_or(|d| d == std::path::Path::new("/")) {
        return Err(UnixPathError::NotPlain(path.to_owned()));
    }
    // sun_path holds 108 bytes with the terminating NUL.
    if path.len() > 107 {
        return Err(UnixPathError::TooLong(path.to_owned()));
    }
    if path.bytes().any(|b| b.is_ascii_control()) {
        return Err(UnixPathError::Control(path.escape_default().to_string()));
    }
    Ok(p.to_path_buf())
}

/// `{ path = "/srv/www/**", rights = ["read"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsGrant {
    /// Absolute, normalised; may contain `*` and `?` within a component and `**`
    /// as a whole component (any number of components).
    pub pattern: String,
    /// The longest leading directory of `pattern` without a wildcard: the
    /// broker pins it (opens it before the service starts) and opens every
    /// granted file beneath it.
    pub base: PathBuf,
    pub rights: FsRights,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsRights {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub append: bool,
    /// unlink of a granted regular file: a daemon that removes its pid or
    /// lock file and makes it anew with O_EXCL (atd).
    #[serde(default)]
    pub remove: bool,
}

impl std::fmt::Display for FsRights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [(self.read, "read"), (self.write, "write"), (self.create, "create"), (self.append, "append"), (self.remove, "remove")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

impl FsGrant {
    pub fn matches(&self, path: &str) -> bool {
        let pat: Vec<&str> = self.pattern.split('/').filter(|c| !c.is_empty()).collect();
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        path.starts_with('/') && glob_components(&pat, &comps)
    }

    /// Whether the pattern matches every file beneath `base` (`/dir/**`): then a
    /// symlink that stays beneath `base` may be followed, since its target is
    /// granted too. Otherwise the broker refuses symlinks altogether, because the
    /// pattern was checked on the name and not on the target.
    pub fn whole_tree(&self) -> bool {
        self.pattern == format!("{}/**", self.base.display()).replace("//", "/")
    }
}

/// `**` matches zero or more components; other components match one, with `*`
/// (any run of characters) and `?` (one character).
fn glob_components(pat: &[&str], comps: &[&str]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((&"**", rest)) => (0..=comps.len()).any(|skip| glob_components(rest, &comps[skip..])),
        Some((p, rest)) => match comps.split_first() {
            Some((c, crest)) => glob_one(p.as_bytes(), c.as_bytes()) && glob_components(rest, crest),
            None => false,
        },
    }
}

fn glob_one(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_one(&p[1..], s) || (!s.is_empty() && glob_one(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob_one(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob_one(&p[1..], &s[1..]),
        _ => false,
    }
}

pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    Tcp,
    Udp,
}

/// `[tcp:|udp:]ADDR[/PREFIX]:PORT[-PORT]`; ADDR is IPv4 or `[IPv6]`, PORT may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetGrant {
    /// `None`: TCP and UDP.
    pub proto: Option<Proto>,
    pub addr: IpAddr,
    pub prefix: u8,
    pub ports: (u16, u16),
}

impl NetGrant {
    /// The narrowest grant that covers `addr` (made canonical) over `proto`:
    /// what a refusal suggests adding, in the syntax the declaration takes.
    pub fn exact(proto: Proto, addr: SocketAddr) -> NetGrant {
        let ip = canonical(addr.ip());
        NetGrant { proto: Some(proto), addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 }, ports: (addr.port(), addr.port()) }
    }
}

impl std::fmt::Display for NetGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.proto {
            Some(Proto::Tcp) => f.write_str("tcp:")?,
            Some(Proto::Udp) => f.write_str("udp:")?,
            None => {}
        }
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}")?,
            IpAddr::V6(a) => write!(f, "[{a}]")?,
        }
        if self.prefix != full {
            write!(f, "/{}", self.prefix)?;
        }
        match self.ports {
            (0, 65535) => f.write_str(":*"),
            (a, b) if a == b => write!(f, ":{a}"),
            (a, b) => write!(f, ":{a}-{b}"),
        }
    }
}

/// A socket address as the kernel takes it (a `struct sockaddr` of the
/// family's layout, `buf` as long as the caller said) in the words of
/// observations and fixes: `tcp:1.2.3.4:80`, `udp:[::1]:53` (`datagram`: the
/// socket is SOCK_DGRAM), `unix:/run/x.sock`, `unix:@abstract`. `None` for
/// other families and addresses too short for theirs. One wording for the
/// learning recorder and the broker, whose observations meet in one summary.
pub fn describe_sockaddr(buf: &[u8], datagram: bool) -> Option<String> {
    let proto = if datagram { "udp" } else { "tcp" };
    let family = u16::from_ne_bytes([*buf.first()?, *buf.get(1)?]) as i32;
    match family {
        libc::AF_INET if buf.len() >= 8 => {
            let port = u16::from_be_bytes([buf[2], buf[3]]);
            Some(format!("{proto}:{}.{}.{}.{}:{port}", buf[4], buf[5], buf[6], buf[7]))
        }
        libc::AF_INET6 if buf.len() >= 24 => {
            let port = u16::from_be_bytes([buf[2], buf[3]]);
            let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&buf[8..24]).ok()?);
            Some(format!("{proto}:[{ip}]:{port}"))
        }
        libc::AF_UNIX => {
            let path = &buf[2..];
            match path.first() {
                Some(0) => Some(format!("unix:@{}", String::from_utf8_lossy(&path[1..]).trim_end_matches('\0'))),
                Some(_) => Some(format!("unix:{}", String::from_utf8_lossy(path.split(|b| *b == 0).next().unwrap_or_default()))),
                None => None,
            }
        }
        _ => None,
    }
}

/// A socket as socket(2) was asked for it (`domain`, `ty` with its flags),
/// in the words of observations: `inet/stream`, `unix/dgram`, `family 17/raw`.
pub fn socket_kind(domain: i32, ty: i32) -> String {
    let d = match domain {
        libc::AF_UNIX => "unix".to_owned(),
        libc::AF_INET => "inet".to_owned(),
        libc::AF_INET6 => "inet6".to_owned(),
        libc::AF_NETLINK => "netlink".to_owned(),
        other => format!("family {other}"),
    };
    let t = match ty & 0xf {
        libc::SOCK_STREAM => "stream".to_owned(),
        libc::SOCK_DGRAM => "dgram".to_owned(),
        libc::SOCK_SEQPACKET => "seqpacket".to_owned(),
        libc::SOCK_RAW => "raw".to_owned(),
        other => format!("type {other}"),
    };
    format!("{d}/{t}")
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address it maps:
/// grants are checked on what the kernel will actually reach.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

const NET_GRANT_HELP: &str = "write [tcp:|udp:]ADDRESS[/PREFIX]:PORT, e.g. \"tcp:127.0.0.1:6379\", \"10.0.0.0/8:443\", \"[::1]:53\", \"0.0.0.0:8000-8009\"";

/// Why a network grant does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetGrantError {
    #[error("`{0}` has no port; {NET_GRANT_HELP}")]
    NoPort(String),
    #[error("`{0}` is not an IPv6 address; {NET_GRANT_HELP}")]
    NotIpv6(String),
    #[error("write IPv6 addresses in brackets: `[{0}]`; {NET_GRANT_HELP}")]
    Unbracketed(String),
    #[error("`{0}` is not an IP address (names are not allowed here: grant them under [broker.dns]); {NET_GRANT_HELP}")]
    NotAnAddress(String),
    #[error("prefix `/{prefix}` is not a number from 0 to {max}")]
    Prefix { prefix: String, max: u8 },
    #[error("port `{0}` is not a number from 0 to 65535")]
    Port(String),
    #[error("port range `{0}-{1}` is empty")]
    EmptyRange(u16, u16),
}

impl NetGrant {
    pub fn parse(s: &str) -> Result<NetGrant, NetGrantError> {
        let (proto, rest) = match s.split_once(':') {
            Some(("tcp", r)) => (Some(Proto::Tcp), r),
            Some(("udp", r)) => (Some(Proto::Udp), r),
            _ => (None, s),
        };
        let (host, port_s) = rest.rsplit_once(':').ok_or_else(|| NetGrantError::NoPort(s.to_owned()))?;
        let AddrRange { addr, prefix } = AddrRange::parse_bracketed(host)?;
        let port = |p: &str| p.parse::<u16>().map_err(|_| NetGrantError::Port(p.to_owned()));
        let ports = if port_s == "*" {
            (0, 65535)
        } else {
            match port_s.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (port(a)?, port(b)?);
                    if a > b {
                        return Err(NetGrantError::EmptyRange(a, b));
                    }
                    (a, b)
                }
                None => {
                    let p = port(port_s)?;
                    (p, p)
                }
            }
        };
        Ok(NetGrant { proto, addr, prefix, ports })
    }

    pub fn matches(&self, proto: Proto, addr: SocketAddr) -> bool {
        if self.proto.is_some_and(|p| p != proto) {
            return false;
        }
        let port = addr.port();
        if port < self.ports.0 || port > self.ports.1 {
            return false;
        }
        in_prefix(self.addr, self.prefix, canonical(addr.ip()))
    }
}

/// `ADDR[/PREFIX]`, IPv4 or IPv6: a `[broker.net] ping` grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrRange {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl AddrRange {
    /// `10.0.0.0/8`, `[2001:db8::]/32`, or an IPv6 address without the
    /// brackets (with no port to follow, nothing is ambiguous).
    pub fn parse(s: &str) -> Result<AddrRange, NetGrantError> {
        let (addr, rest) = s.split_at(s.find('/').unwrap_or(s.len()));
        match addr.contains(':') && !addr.starts_with('[') {
            true => AddrRange::parse_bracketed(&format!("[{addr}]{rest}")),
            false => AddrRange::parse_bracketed(s),
        }
    }

    /// The address part of a grant: IPv4, or IPv6 in brackets.
    fn parse_bracketed(host: &str) -> Result<AddrRange, NetGrantError> {
        let (addr, prefix) = match host.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (host, None),
        };
        let addr: IpAddr = if let Some(v6) = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
            v6.parse().map_err(|_| NetGrantError::NotIpv6(v6.to_owned()))?
        } else if addr.contains(':') {
            return Err(NetGrantError::Unbracketed(addr.to_owned()));
        } else {
            addr.parse().map_err(|_| NetGrantError::NotAnAddress(addr.to_owned()))?
        };
        let addr = canonical(addr);
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => full,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= full => n,
                _ => return Err(NetGrantError::Prefix { prefix: p.to_owned(), max: full }),
            },
        };
        Ok(AddrRange { addr, prefix })
    }

    /// The one address `ip` (made canonical), as a refusal suggests it.
    pub fn exact(ip: IpAddr) -> AddrRange {
        let addr = canonical(ip);
        AddrRange { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        in_prefix(self.addr, self.prefix, canonical(ip))
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}")?,
            IpAddr::V6(a) => write!(f, "[{a}]")?,
        }
        match self.prefix == if self.addr.is_ipv4() { 32 } else { 128 } {
            true => Ok(()),
            false => write!(f, "/{}", self.prefix),
        }
    }
}

fn in_prefix(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix as u32) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsGrant {
    /// Lower-case names without a trailing dot; `*.example.com` grants every
    /// name below example.com (not example.com itself).
    pub names: Vec<String>,
    pub inet: bool,
    pub inet6: bool,
}

impl DnsGrant {
    /// The grant that covers `name`, if any (case-insensitive, trailing dot ignored).
    pub fn grant_for(&self, name: &str) -> Option<&str> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names
            .iter()
            .find(|g| match g.strip_prefix("*.") {
                Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(suffix) && name.as_bytes()[name.len() - suffix.len() - 1] == b'.',
                None => **g == name,
            })
            .map(|s| s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(p: &str) -> FsGrant {
        FsGrant { pattern: p.into(), base: PathBuf::from("/"), rights: FsRights::default() }
    }

    #[test]
    fn socket_addresses_are_described_as_grants_name_them() {
        let v4 = [(libc::AF_INET as u16).to_ne_bytes().as_slice(), &53u16.to_be_bytes(), &[192, 0, 2, 1], &[0; 8]].concat();
        assert_eq!(describe_sockaddr(&v4, true).as_deref(), Some("udp:192.0.2.1:53"));
        assert_eq!(describe_sockaddr(&v4[..7], true), None, "shorter than a sockaddr_in's address");
        let mut v6 = [(libc::AF_INET6 as u16).to_ne_bytes().as_slice(), &443u16.to_be_bytes(), &[0; 4]].concat();
        v6.extend(std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(describe_sockaddr(&v6, false).as_deref(), Some("tcp:[::1]:443"));
        let unix = |p: &[u8]| [(libc::AF_UNIX as u16).to_ne_bytes().as_slice(), p].concat();
        assert_eq!(describe_sockaddr(&unix(b"/run/x.sock\0junk"), false).as_deref(), Some("unix:/run/x.sock"));
        assert_eq!(describe_sockaddr(&unix(b"\0name"), true).as_deref(), Some("unix:@name"));
        assert_eq!(describe_sockaddr(&unix(b""), false), None, "an unnamed Unix address");
        assert_eq!(describe_sockaddr(&(libc::AF_PACKET as u16).to_ne_bytes(), false), None);
        assert_eq!(describe_sockaddr(&[1], false), None);
    }

    /// A grant's path names its socket and the temporary names beside it,
    /// never a name in another directory or one that merely starts alike.
    #[test]
    fn temporary_names_of_a_unix_grant() {
        let b = BrokerSpec { bind_unix: vec!["/run/a.sock".into(), "/run/haproxy-master.sock".into()], ..Default::default() };
        assert_eq!(b.unix_name(b"/run/haproxy-master.sock"), Some((1, &b""[..])));
        assert_eq!(b.unix_name(b"/run/haproxy-master.sock.9881.tmp"), Some((1, &b".9881.tmp"[..])));
        assert_eq!(b.unix_name(b"/run/a.sock.42"), Some((0, &b".42"[..])));
        for no in [
            &b"/run/a.sockx"[..],
            b"/run/a.sock.",
            b"/run/a.sock./x",
            b"/run/a.sock./../../etc/passwd",
            b"/run/a.sock.x y",
            b"/run/a.sock.\n",
            b"/run/a.sock.01234567890123456789012345678901",
            b"/run/./a.sock",
            b"/run/b.sock",
        ] {
            assert_eq!(b.unix_name(no), None, "{}", String::from_utf8_lossy(no));
        }
        assert!(temporary_suffix(b".0123456789012345678901234567890"), "32 bytes with the dot");
    }

    #[test]
    fn globs() {
        assert!(fs("/srv/**").matches("/srv/a/b/c"));
        assert!(fs("/srv/**").matches("/srv"));
        assert!(fs("/srv/*.log").matches("/srv/x.log"));
        assert!(!fs("/srv/*.log").matches("/srv/a/x.log"));
        assert!(fs("/srv/**/*.log").matches("/srv/a/b/x.log"));
        assert!(fs("/srv/?.txt").matches("/srv/a.txt"));
        assert!(!fs("/srv/?.txt").matches("/srv/ab.txt"));
        assert!(fs("/etc/app.conf").matches("/etc/app.conf"));
        assert!(!fs("/etc/app.conf").matches("/etc/app.conf2"));
        assert!(!fs("/etc/app.conf").matches("etc/app.conf"));
    }

    #[test]
    fn net_grants_parse_and_match() {
        let g = NetGrant::parse("tcp:127.0.0.1:6379").unwrap();
        assert!(g.matches(Proto::Tcp, "127.0.0.1:6379".parse().unwrap()));
        assert!(g.matches(Proto::Tcp, "[::ffff:127.0.0.1]:6379".parse().unwrap()), "v4-mapped is the v4 address");
        assert!(!g.matches(Proto::Udp, "127.0.0.1:6379".parse().unwrap()));
        assert!(!g.matches(Proto::Tcp, "127.0.0.2:6379".parse().unwrap()));
        let g = NetGrant::parse("10.0.0.0/8:*").unwrap();
        assert!(g.matches(Proto::Udp, "10.200.1.1:53".parse().unwrap()));
        assert!(!g.matches(Proto::Udp, "169.254.169.254:80".parse().unwrap()));
        let g = NetGrant::parse("[::]:8000-8009").unwrap();
        assert!(g.matches(Proto::Tcp, "[::]:8005".parse().unwrap()));
        assert!(!g.matches(Proto::Tcp, "0.0.0.0:8005".parse().unwrap()));
        assert_eq!(g.to_string(), "[::]:8000-8009");
        assert_eq!(NetGrant::parse("[::ffff:1.2.3.4]:1").unwrap().to_string(), "1.2.3.4:1");
        for bad in ["127.0.0.1", "localhost:80", "::1:80", "1.2.3.4/33:1", "1.2.3.4:70000", "1.2.3.4:9-1", "sctp:1.2.3.4:1"] {
            assert!(NetGrant::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_grants_print_as_declared() {
        assert_eq!(NetGrant::exact(Proto::Tcp, "[::ffff:127.0.0.1]:80".parse().unwrap()).to_string(), "tcp:127.0.0.1:80");
        assert_eq!(NetGrant::exact(Proto::Udp, "[::1]:53".parse().unwrap()).to_string(), "udp:[::1]:53");
    }

    #[test]
    fn dns_names() {
        let d = DnsGrant { names: vec!["example.com".into(), "*.svc.local".into()], inet: true, inet6: true };
        assert!(d.grant_for("Example.COM.").is_some());
        assert!(d.grant_for("a.svc.local").is_some());
        assert!(d.grant_for("svc.local").is_none());
        assert!(d.grant_for("evilsvc.local").is_none());
        assert!(d.grant_for("www.example.com").is_none());
    }
}
