//! Any bytes as a datagram to the broker's stub resolver (ESCAPE-CASES 35):
//! parsing never panics, a parsed question's name is what the grants are
//! matched against (lowercase labels of letters, digits, `-`, `_`), and the
//! answer built for it is a response echoing the query's id and question.
#![no_main]

use capexec_broker::dns::{answer, parse_query};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = parse_query(data) else { return };
    assert!(q.name.len() <= 253, "{}", q.name);
    assert!(q.name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_' || c == b'.'), "{}", q.name);
    let addrs: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    for rcode in [0u8, 3, 5] {
        let a = answer(data, &q, rcode, &addrs);
        assert!(a.len() >= 12 && a[..2] == data[..2], "the answer echoes the id");
        assert!(a[2] & 0x80 != 0, "the answer is a response");
    }
});
