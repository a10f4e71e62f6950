//! The question of a DNS query as a client sends it: what the broker's stub
//! resolver answers for granted names, and what `capexec learn` reads from
//! the queries a run sends to the host's resolver (so that the mined
//! declaration grants the names asked, not the resolver). Pure and bounded:
//! one question, no compression pointers in it, names of at most 253 bytes.

/// One parsed query: its id, the question name (lower-case, dotted, no
/// trailing dot), type and class, and where the question ends.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub rd: bool,
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Where the question ends (its answer echoes the bytes up to here).
    pub question_end: usize,
}

/// Parses a query. `Err(Some(id))`: malformed but with an id to answer
/// FORMERR to; `Err(None)`: not even a header (dropped).
pub fn parse_query(p: &[u8]) -> Result<Query, Option<u16>> {
    if p.len() < 12 {
        return Err(None);
    }
    let id = u16::from_be_bytes([p[0], p[1]]);
    let is_response = p[2] & 0x80 != 0;
    let opcode = (p[2] >> 3) & 0x0f;
    let qdcount = u16::from_be_bytes([p[4], p[5]]);
    if is_response {
        return Err(None);
    }
    if opcode != 0 || qdcount != 1 {
        return Err(Some(id));
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        let len = *p.get(at).ok_or(Some(id))? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // 0xC0: a compression pointer, which a question never needs.
        if len > 63 {
            return Err(Some(id));
        }
        let label = p.get(at..at + len).ok_or(Some(id))?;
        if !label.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_') {
            return Err(Some(id));
        }
        total += len + 1;
        if total > 254 {
            return Err(Some(id));
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let tail = p.get(at..at + 4).ok_or(Some(id))?;
    Ok(Query {
        id,
        rd: p[2] & 0x01 != 0,
        name: labels.join("."),
        qtype: u16::from_be_bytes([tail[0], tail[1]]),
        qclass: u16::from_be_bytes([tail[2], tail[3]]),
        question_end: at + 4,
    })
}
