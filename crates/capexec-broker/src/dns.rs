//! The stub resolver for services with `net = "none"` and `[broker.dns]`
//! grants: a UDP socket on 127.0.0.1:53 inside the service's own network
//! namespace (bound by its init, handed to the broker), named by the
//! /etc/resolv.conf of its view. The broker answers A and AAAA queries for
//! granted names from the host's resolver and refuses the rest.
//!
//! Parsing (capexec_decl::dns_query, which learning reads queries with too)
//! is pure and bounded (one question, no compression pointers in the
//! question, names of at most 253 bytes); anything else gets FORMERR.

use crate::lookup;
use crate::Broker;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const REFUSED: u8 = 5;

pub use capexec_decl::dns_query::{parse_query, Query};

/// The answer to `q` (whose raw bytes are `p`): the question echoed, then one
/// record per address of the asked type.
pub fn answer(p: &[u8], q: &Query, rcode: u8, addrs: &[IpAddr]) -> Vec<u8> {
    let records: Vec<&IpAddr> = addrs
        .iter()
        .filter(|a| match a {
            IpAddr::V4(_) => q.qtype == TYPE_A,
            IpAddr::V6(_) => q.qtype == TYPE_AAAA,
        })
        .collect();
    let mut r = Vec::with_capacity(q.question_end + records.len() * 28);
    r.extend_from_slice(&q.id.to_be_bytes());
    // QR, opcode 0, AA 0, TC 0, RD copied; RA 1, rcode.
    r.push(0x80 | u8::from(q.rd));
    r.push(0x80 | (rcode & 0x0f));
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(records.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&p[12..q.question_end]);
    for a in records {
        // The name as a pointer to the question (offset 12).
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&q.qtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        match a {
            IpAddr::V4(v4) => {
                r.extend_from_slice(&4u16.to_be_bytes());
                r.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                r.extend_from_slice(&16u16.to_be_bytes());
                r.extend_from_slice(&v6.octets());
            }
        }
    }
    r
}

/// A FORMERR reply with only the header (the question could not be parsed).
fn formerr(id: u16) -> Vec<u8> {
    let mut r = id.to_be_bytes().to_vec();
    r.extend_from_slice(&[0x80, 0x80 | FORMERR, 0, 0, 0, 0, 0, 0, 0, 0]);
    r
}

/// What the broker answers to one query: the reply bytes.
pub fn respond(b: &Broker, p: &[u8]) -> Option<Vec<u8>> {
    let q = match parse_query(p) {
        Ok(q) => q,
        Err(Some(id)) => return Some(formerr(id)),
        Err(None) => return None,
    };
    let asked = match q.qtype {
        TYPE_A => "A",
        TYPE_AAAA => "AAAA",
        _ => "",
    };
    if q.qclass != CLASS_IN {
        return Some(answer(p, &q, REFUSED, &[]));
    }
    if b.spec.dns.grant_for(&q.name).is_none() {
        b.refused(
            &format!("the name lookup {} {}", q.name, if asked.is_empty() { "(other type)" } else { asked }),
            "no [broker.dns] grant covers it",
            &capexec_decl::fix::dns_name(&q.name),
        );
        return Some(answer(p, &q, REFUSED, &[]));
    }
    let family_granted = match q.qtype {
        TYPE_A => b.spec.dns.inet,
        TYPE_AAAA => b.spec.dns.inet6,
        // Granted name, a type the broker does not serve (MX, TXT, ...): no data.
        _ => return Some(answer(p, &q, NOERROR, &[])),
    };
    if !family_granted {
        return Some(answer(p, &q, NOERROR, &[]));
    }
    let family = if q.qtype == TYPE_A { libc::AF_INET } else { libc::AF_INET6 };
    Some(match lookup::host_addrs(&q.name, family) {
        Ok(a) => answer(p, &q, NOERROR, &a),
        Err(libc::ENOENT) => answer(p, &q, NXDOMAIN, &[]),
        // The name exists but has no address of this family.
        Err(libc::ENODATA) => answer(p, &q, NOERROR, &[]),
        Err(_) => answer(p, &q, SERVFAIL, &[]),
    })
}

/// Answers queries on the stub's socket until it fails.
pub fn serve(b: &Broker, sock: OwnedFd) {
    let mut buf = [0u8; 512];
    loop {
        use nix::sys::socket::{recvfrom, sendto, MsgFlags, SockaddrStorage};
        let (n, from) = match recvfrom::<SockaddrStorage>(sock.as_raw_fd(), &mut buf) {
            Ok(got) => got,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        };
        if let (Some(reply), Some(from)) = (respond(b, &buf[..n]), from) {
            // To the address the query came from. A failure (the client's
            // socket is gone) loses only that reply.
            let _ = sendto(sock.as_raw_fd(), &reply, &from, MsgFlags::MSG_DONTWAIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    #[test]
    fn queries_parse_and_answers_echo_them() {
        let p = query("Db.Example.com", TYPE_AAAA);
        let q = parse_query(&p).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype, q.rd), (0x1234, "db.example.com", TYPE_AAAA, true));
        let r = answer(&p, &q, NOERROR, &["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()]);
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, NOERROR);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "only the AAAA record answers an AAAA query");
        assert_eq!(&r[r.len() - 16..], &"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    }

    #[test]
    fn malformed_queries() {
        assert_eq!(parse_query(&[0; 5]), Err(None));
        let mut p = query("a.b", TYPE_A);
        p[2] |= 0x80;
        assert_eq!(parse_query(&p), Err(None), "responses are dropped");
        let mut p = query("a.b", TYPE_A);
        p[5] = 2;
        assert_eq!(parse_query(&p), Err(Some(0x1234)), "two questions");
        let mut p = query("a.b", TYPE_A);
        p[12] = 0xc0;
        assert_eq!(parse_query(&p), Err(Some(0x1234)), "compression pointer in the question");
        let p = query("a.b", TYPE_A);
        assert_eq!(parse_query(&p[..p.len() - 3]), Err(Some(0x1234)), "truncated");
        let long = vec!["a".repeat(63); 5].join(".");
        assert_eq!(parse_query(&query(&long, TYPE_A)), Err(Some(0x1234)), "longer than 253");
        let mut p = query("ab.c", TYPE_A);
        p[13] = 0;
        assert_eq!(parse_query(&p), Err(Some(0x1234)), "NUL inside a label");
    }
}
