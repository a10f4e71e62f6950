//! The explicit broker protocol, version 1: one request or reply per
//! SOCK_SEQPACKET message, little-endian integers, descriptors as SCM_RIGHTS.
//! docs/broker-protocol.md is the reference; this module is its one
//! implementation, used by both the client and the broker.
//!
//! ```text
//! request:  u8 version | u8 op | u16 reserved (0) | u32 id | body
//! reply:    u8 version | u8 op | u16 reserved (0) | u32 id | i32 errno | body
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const VERSION: u8 = 1;
/// The largest frame either side sends or accepts. A longer message is
/// truncated by the kernel (MSG_TRUNC) and answered with EMSGSIZE.
pub const MAX_FRAME: usize = 4096;
pub const REQUEST_HEADER: usize = 8;
pub const REPLY_HEADER: usize = 12;
/// The environment variable that names the service's end of the channel.
pub const ENV_FD: &str = "CAPEXEC_BROKER_FD";
/// At most this many addresses in a getaddrinfo reply.
pub const MAX_ADDRS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Open = 1,
    Connect = 2,
    Bind = 3,
    GetAddrInfo = 4,
    GetPwNam = 5,
    GetGrNam = 6,
    Syslog = 7,
    Sysctl = 8,
}

impl Op {
    pub fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            1 => Op::Open,
            2 => Op::Connect,
            3 => Op::Bind,
            4 => Op::GetAddrInfo,
            5 => Op::GetPwNam,
            6 => Op::GetGrNam,
            7 => Op::Syslog,
            8 => Op::Sysctl,
            _ => return None,
        })
    }

    /// Whether a successful reply carries one descriptor.
    pub fn returns_fd(self) -> bool {
        matches!(self, Op::Open | Op::Connect | Op::Bind)
    }
}

/// Transport protocol of a connect or bind request (IPPROTO_* numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    pub fn from_number(n: u8) -> Option<Proto> {
        match n as i32 {
            libc::IPPROTO_TCP => Some(Proto::Tcp),
            libc::IPPROTO_UDP => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// Address families of a getaddrinfo request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Any = 0,
    Inet = 4,
    Inet6 = 6,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Open { path: Vec<u8>, flags: u32, mode: u32 },
    Connect { proto: Proto, addr: SocketAddr },
    Bind { proto: Proto, addr: SocketAddr },
    GetAddrInfo { name: Vec<u8>, family: Family },
    GetPwNam { name: Vec<u8> },
    GetGrNam { name: Vec<u8> },
    Syslog { level: u8, message: Vec<u8> },
    Sysctl { key: Vec<u8> },
}

impl Request {
    pub fn op(&self) -> Op {
        match self {
            Request::Open { .. } => Op::Open,
            Request::Connect { .. } => Op::Connect,
            Request::Bind { .. } => Op::Bind,
            Request::GetAddrInfo { .. } => Op::GetAddrInfo,
            Request::GetPwNam { .. } => Op::GetPwNam,
            Request::GetGrNam { .. } => Op::GetGrNam,
            Request::Syslog { .. } => Op::Syslog,
            Request::Sysctl { .. } => Op::Sysctl,
        }
    }

    /// The frame for this request. Fails with EMSGSIZE when it would not fit
    /// in [`MAX_FRAME`], and EINVAL for a NUL byte in a string.
    pub fn encode(&self, id: u32) -> Result<Vec<u8>, i32> {
        let mut f = vec![VERSION, self.op() as u8, 0, 0];
        f.extend_from_slice(&id.to_le_bytes());
        let text = |f: &mut Vec<u8>, s: &[u8]| -> Result<(), i32> {
            if s.contains(&0) {
                return Err(libc::EINVAL);
            }
            f.extend_from_slice(s);
            Ok(())
        };
        match self {
            Request::Open { path, flags, mode } => {
                f.extend_from_slice(&flags.to_le_bytes());
                f.extend_from_slice(&mode.to_le_bytes());
                text(&mut f, path)?;
            }
            Request::Connect { proto, addr } | Request::Bind { proto, addr } => {
                f.extend_from_slice(&[proto.number(), 0]);
                f.extend_from_slice(&addr.port().to_le_bytes());
                match addr.ip() {
                    IpAddr::V4(a) => f.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => f.extend_from_slice(&a.octets()),
                }
            }
            Request::GetAddrInfo { name, family } => {
                f.push(*family as u8);
                text(&mut f, name)?;
            }
            Request::GetPwNam { name } | Request::GetGrNam { name } => text(&mut f, name)?,
            Request::Syslog { level, message } => {
                f.push(*level);
                text(&mut f, message)?;
            }
            Request::Sysctl { key } => text(&mut f, key)?,
        }
        if f.len() > MAX_FRAME {
            return Err(libc::EMSGSIZE);
        }
        Ok(f)
    }

    /// Decodes a request frame: `(op byte, id, request or errno)`. The op and id
    /// are returned even for a bad frame, so the reply can echo them.
    pub fn decode(f: &[u8]) -> (u8, u32, Result<Request, i32>) {
        if f.len() < REQUEST_HEADER {
            return (0, 0, Err(libc::EPROTO));
        }
        let op_byte = f[1];
        let id = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
        if f[0] != VERSION {
            return (op_byte, id, Err(libc::EPROTONOSUPPORT));
        }
        if f[2] != 0 || f[3] != 0 {
            return (op_byte, id, Err(libc::EPROTO));
        }
        let Some(op) = Op::from_u8(op_byte) else { return (op_byte, id, Err(libc::EOPNOTSUPP)) };
        (op_byte, id, decode_body(op, &f[REQUEST_HEADER..]))
    }
}

fn no_nul(b: &[u8]) -> Result<Vec<u8>, i32> {
    if b.contains(&0) {
        Err(libc::EINVAL)
    } else {
        Ok(b.to_vec())
    }
}

fn decode_body(op: Op, b: &[u8]) -> Result<Request, i32> {
    Ok(match op {
        Op::Open => {
            if b.len() < 8 {
                return Err(libc::EPROTO);
            }
            let flags = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let mode = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            Request::Open { path: no_nul(&b[8..])?, flags, mode }
        }
        Op::Connect | Op::Bind => {
            if b.len() != 8 && b.len() != 20 || b[1] != 0 {
                return Err(libc::EPROTO);
            }
            let proto = Proto::from_number(b[0]).ok_or(libc::EPROTONOSUPPORT)?;
            let port = u16::from_le_bytes([b[2], b[3]]);
            let ip: IpAddr = if b.len() == 8 {
                Ipv4Addr::new(b[4], b[5], b[6], b[7]).into()
            } else {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[4..20]);
                Ipv6Addr::from(o).into()
            };
            let addr = SocketAddr::new(ip, port);
            if op == Op::Connect {
                Request::Connect { proto, addr }
            } else {
                Request::Bind { proto, addr }
            }
        }
        Op::GetAddrInfo => {
            let (&fam, name) = b.split_first().ok_or(libc::EPROTO)?;
            let family = match fam {
                0 => Family::Any,
                4 => Family::Inet,
                6 => Family::Inet6,
                _ => return Err(libc::EAFNOSUPPORT),
            };
            Request::GetAddrInfo { name: no_nul(name)?, family }
        }
        Op::GetPwNam => Request::GetPwNam { name: no_nul(b)? },
        Op::GetGrNam => Request::GetGrNam { name: no_nul(b)? },
        Op::Syslog => {
            let (&level, message) = b.split_first().ok_or(libc::EPROTO)?;
            if level > 7 {
                return Err(libc::EINVAL);
            }
            // No NUL, as in every text field (and as `encode` refuses to write).
            Request::Syslog { level, message: no_nul(message)? }
        }
        Op::Sysctl => Request::Sysctl { key: no_nul(b)? },
    })
}

/// A reply frame: header plus `body` (empty on error).
pub fn encode_reply(op: u8, id: u32, errno: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(REPLY_HEADER + body.len());
    f.extend_from_slice(&[VERSION, op, 0, 0]);
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&errno.to_le_bytes());
    if errno == 0 {
        f.extend_from_slice(body);
    }
    f.truncate(MAX_FRAME);
    f
}

/// A decoded reply header: `(op, id, errno)` and the body.
pub fn decode_reply(f: &[u8]) -> Result<(u8, u32, i32, &[u8]), i32> {
    if f.len() < REPLY_HEADER || f[0] != VERSION {
        return Err(libc::EPROTO);
    }
    let id = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
    let errno = i32::from_le_bytes([f[8], f[9], f[10], f[11]]);
    Ok((f[1], id, errno, &f[REPLY_HEADER..]))
}

/// getaddrinfo reply body: u8 count, then per address u8 family (4 or 6) and
/// its 4 or 16 bytes.
pub fn encode_addrs(addrs: &[IpAddr]) -> Vec<u8> {
    let addrs = &addrs[..addrs.len().min(MAX_ADDRS)];
    let mut b = vec![addrs.len() as u8];
    for a in addrs {
        match a {
            IpAddr::V4(a) => {
                b.push(4);
                b.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                b.push(6);
                b.extend_from_slice(&a.octets());
            }
        }
    }
    b
}

pub fn decode_addrs(b: &[u8]) -> Result<Vec<IpAddr>, i32> {
    let (&n, mut rest) = b.split_first().ok_or(libc::EPROTO)?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (&fam, r) = rest.split_first().ok_or(libc::EPROTO)?;
        let len = match fam {
            4 => 4,
            6 => 16,
            _ => return Err(libc::EPROTO),
        };
        if r.len() < len {
            return Err(libc::EPROTO);
        }
        out.push(if len == 4 {
            IpAddr::from([r[0], r[1], r[2], r[3]])
        } else {
            let mut o = [0u8; 16];
            o.copy_from_slice(&r[..16]);
            IpAddr::from(o)
        });
        rest = &r[len..];
    }
    Ok(out)
}

/// A passwd entry as the broker returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub dir: String,
    pub shell: String,
}

/// A group entry as the broker returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Strings in a body are NUL-terminated, one after the other.
fn strings(b: &[u8]) -> Result<Vec<String>, i32> {
    if b.last().is_some_and(|c| *c != 0) {
        return Err(libc::EPROTO);
    }
    b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8(s.to_vec()).map_err(|_| libc::EPROTO)).collect()
}

impl Passwd {
    /// u32 uid | u32 gid | name\0 gecos\0 dir\0 shell\0
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.uid.to_le_bytes());
        b.extend_from_slice(&self.gid.to_le_bytes());
        for s in [&self.name, &self.gecos, &self.dir, &self.shell] {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<Passwd, i32> {
        if b.len() < 8 {
            return Err(libc::EPROTO);
        }
        // Empty fields (a blank gecos) are kept: split, not filtered.
        let rest = &b[8..];
        if rest.last() != Some(&0) {
            return Err(libc::EPROTO);
        }
        let f: Vec<String> = rest[..rest.len() - 1].split(|c| *c == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
        let [name, gecos, dir, shell] = <[String; 4]>::try_from(f).map_err(|_| libc::EPROTO)?;
        Ok(Passwd { name, uid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]), gid: u32::from_le_bytes([b[4], b[5], b[6], b[7]]), gecos, dir, shell })
    }
}

impl Group {
    /// u32 gid | name\0 member\0 member\0 ...
    pub fn encode(&self) -> Vec<u8> {
        let mut b = self.gid.to_le_bytes().to_vec();
        for s in std::iter::once(&self.name).chain(&self.members) {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<Group, i32> {
        if b.len() < 5 {
            return Err(libc::EPROTO);
        }
        let mut s = strings(&b[4..])?;
        if s.is_empty() {
            return Err(libc::EPROTO);
        }
        let name = s.remove(0);
        Ok(Group { name, gid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]), members: s })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::Open { path: b"/srv/data/x".to_vec(), flags: libc::O_RDONLY as u32, mode: 0 },
            Request::Connect { proto: Proto::Tcp, addr: "127.0.0.1:80".parse().unwrap() },
            Request::Bind { proto: Proto::Udp, addr: "[::1]:5353".parse().unwrap() },
            Request::GetAddrInfo { name: b"example.com".to_vec(), family: Family::Inet6 },
            Request::GetPwNam { name: b"www-data".to_vec() },
            Request::GetGrNam { name: b"adm".to_vec() },
            Request::Syslog { level: 6, message: b"hello".to_vec() },
            Request::Sysctl { key: b"net.core.somaxconn".to_vec() },
        ];
        for (i, r) in reqs.iter().enumerate() {
            let f = r.encode(i as u32).unwrap();
            assert_eq!(Request::decode(&f), (r.op() as u8, i as u32, Ok(r.clone())));
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert_eq!(Request::decode(&[1, 1, 0]).2, Err(libc::EPROTO));
        assert_eq!(Request::decode(&[2, 1, 0, 0, 7, 0, 0, 0]), (1, 7, Err(libc::EPROTONOSUPPORT)));
        assert_eq!(Request::decode(&[1, 99, 0, 0, 7, 0, 0, 0]).2, Err(libc::EOPNOTSUPP));
        assert_eq!(Request::decode(&[1, 1, 1, 0, 7, 0, 0, 0]).2, Err(libc::EPROTO));
        // Open without flags and mode.
        assert_eq!(Request::decode(&[1, 1, 0, 0, 7, 0, 0, 0, 1]).2, Err(libc::EPROTO));
        // A path with a NUL inside.
        let mut f = Request::Open { path: b"/a".to_vec(), flags: 0, mode: 0 }.encode(1).unwrap();
        f.extend_from_slice(b"\0/etc/shadow");
        assert_eq!(Request::decode(&f).2, Err(libc::EINVAL));
        // A syslog message with a NUL inside (found by fuzz/explicit_frame: it
        // decoded, but no client could have encoded it).
        assert_eq!(Request::decode(&[1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, b'/', b'r']).2, Err(libc::EINVAL));
        // An address of the wrong length, an unknown protocol.
        assert_eq!(Request::decode(&[1, 2, 0, 0, 0, 0, 0, 0, 6, 0, 80, 0, 127, 0, 0]).2, Err(libc::EPROTO));
        assert_eq!(Request::decode(&[1, 2, 0, 0, 0, 0, 0, 0, 1, 0, 80, 0, 127, 0, 0, 1]).2, Err(libc::EPROTONOSUPPORT));
        assert_eq!(Request::GetPwNam { name: vec![b'a'; MAX_FRAME] }.encode(1), Err(libc::EMSGSIZE));
    }

    #[test]
    fn bodies_round_trip() {
        let a: Vec<IpAddr> = vec!["10.1.2.3".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(decode_addrs(&encode_addrs(&a)).unwrap(), a);
        assert_eq!(decode_addrs(&[2, 4, 1, 2, 3, 4]), Err(libc::EPROTO));
        let p = Passwd { name: "www-data".into(), uid: 33, gid: 33, gecos: "".into(), dir: "/var/www".into(), shell: "/usr/sbin/nologin".into() };
        assert_eq!(Passwd::decode(&p.encode()).unwrap(), p);
        let g = Group { name: "adm".into(), gid: 4, members: vec!["syslog".into(), "x".into()] };
        assert_eq!(Group::decode(&g.encode()).unwrap(), g);
        let r = encode_reply(5, 9, 0, &p.encode());
        let (op, id, errno, body) = decode_reply(&r).unwrap();
        assert_eq!((op, id, errno, Passwd::decode(body).unwrap()), (5, 9, 0, p));
    }
}
