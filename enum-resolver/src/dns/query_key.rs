//! What identifies a UDP query for the encoded-answer cache, read straight from
//! the packet: the question (name lower-cased), whether EDNS is present, its
//! payload size, version and DO bit. Two queries with the same key get the same
//! answer but for the ID, the RD/CD bits and the question's letter case, which
//! [`patch_response`] copies from the query.
//!
//! Only plain queries qualify (QUERY opcode, one question, no answers or
//! authorities, at most an OPT record, no name compression); anything else takes
//! the full path through hickory. EDNS options (cookies, NSID…) are not part of
//! the key because the server answers none of them.

const HEADER: usize = 12;
const TYPE_OPT: u16 = 41;

/// A query's cache key and where its question ends.
#[derive(Debug, PartialEq, Eq)]
pub struct QueryKey {
    pub key: Vec<u8>,
    /// End of the question section (header + QNAME + QTYPE + QCLASS).
    pub question_end: usize,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// The cache key of a query, or None if it must take the full path.
pub fn query_key(q: &[u8]) -> Option<QueryKey> {
    if q.len() < HEADER + 5 {
        return None;
    }
    let flags = u16_at(q, 2)?;
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if qr || opcode != 0 || flags & 0x0200 != 0 {
        return None; // a response, not QUERY, or truncated
    }
    let (qd, an, ns, ar) = (u16_at(q, 4)?, u16_at(q, 6)?, u16_at(q, 8)?, u16_at(q, 10)?);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut key = Vec::with_capacity(64);
    let mut i = HEADER;
    loop {
        let len = usize::from(*q.get(i)?);
        if len == 0 {
            key.push(0);
            i += 1;
            break;
        }
        if len > 63 || i - HEADER + len + 1 > 254 {
            return None; // compression pointer, bad label, or name too long
        }
        key.push(len as u8);
        key.extend(q.get(i + 1..i + 1 + len)?.iter().map(u8::to_ascii_lowercase));
        i += 1 + len;
    }
    key.extend_from_slice(q.get(i..i + 4)?); // QTYPE, QCLASS
    let question_end = i + 4;
    let mut j = question_end;
    if ar == 1 {
        // OPT: root name, TYPE 41, CLASS = payload, TTL = ext-rcode, version, flags.
        if *q.get(j)? != 0 || u16_at(q, j + 1)? != TYPE_OPT {
            return None;
        }
        let payload = u16_at(q, j + 3)?.max(512);
        let version = *q.get(j + 6)?;
        let do_bit = q.get(j + 7)? & 0x80;
        let rdlen = usize::from(u16_at(q, j + 9)?);
        // Options are well-formed TLVs filling rdata exactly.
        let mut o = j + 11;
        let end = o + rdlen;
        while o < end {
            let olen = usize::from(u16_at(q, o + 2)?);
            o += 4 + olen;
        }
        if o != end {
            return None;
        }
        key.push(1);
        key.extend_from_slice(&payload.to_be_bytes());
        key.push(version);
        key.push(do_bit);
        j = end;
    } else {
        key.push(0);
    }
    (j == q.len()).then_some(QueryKey { key, question_end })
}

/// Turn a cached response into the response to `query`: its ID, its RD and CD
/// bits, and its question bytes (same length, perhaps other letter case).
pub fn patch_response(response: &mut [u8], query: &[u8], question_end: usize) -> bool {
    if response.len() < question_end || query.len() < question_end {
        return false;
    }
    response[0] = query[0];
    response[1] = query[1];
    response[2] = (response[2] & !0x01) | (query[2] & 0x01);
    response[3] = (response[3] & !0x10) | (query[3] & 0x10);
    response[HEADER..question_end].copy_from_slice(&query[HEADER..question_end]);
    true
}

/// RCODE of a response (low four bits; extended RCODEs are not cached).
pub fn rcode(response: &[u8]) -> Option<u8> {
    response.get(3).map(|b| b & 0x0f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16, opt: Option<(u16, bool, &[u8])>) -> Vec<u8> {
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
        for label in name.trim_end_matches('.').split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        if let Some((payload, dnssec_ok, options)) = opt {
            q.extend_from_slice(&[0, 0, 41]);
            q.extend_from_slice(&payload.to_be_bytes());
            q.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
            q.extend_from_slice(&(options.len() as u16).to_be_bytes());
            q.extend_from_slice(options);
        }
        q
    }

    #[test]
    fn same_question_same_key_whatever_the_case_id_and_cookie() {
        let a = query(1, "7.6.e164.ARPA", 35, Some((1232, false, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])));
        let b = query(2, "7.6.e164.arpa", 35, Some((1232, false, &[])));
        assert_eq!(query_key(&a).unwrap().key, query_key(&b).unwrap().key);
        let c = query(2, "7.6.e164.arpa", 35, None);
        let d = query(2, "7.6.e164.arpa", 35, Some((4096, false, &[])));
        let e = query(2, "7.6.e164.arpa", 1, None);
        let keys: Vec<_> = [&b, &c, &d, &e].iter().map(|q| query_key(q).unwrap().key).collect();
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j]);
            }
        }
    }

    #[test]
    fn unusual_queries_take_the_full_path() {
        let ok = query(1, "a.b", 35, None);
        assert!(query_key(&ok).is_some());
        let mut response = ok.clone();
        response[2] |= 0x80;
        assert!(query_key(&response).is_none());
        let mut notify = ok.clone();
        notify[2] |= 4 << 3;
        assert!(query_key(&notify).is_none());
        let mut two = ok.clone();
        two[5] = 2;
        assert!(query_key(&two).is_none());
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(query_key(&trailing).is_none());
        assert!(query_key(&ok[..ok.len() - 1]).is_none());
        let bad_opt = query(1, "a.b", 35, Some((512, false, &[0, 10, 0, 9, 1])));
        assert!(query_key(&bad_opt).is_none());
        let mut pointer = ok.clone();
        pointer[12] = 0xc0;
        assert!(query_key(&pointer).is_none());
    }

    #[test]
    fn patching_copies_id_flags_and_question() {
        let q = query(0xabcd, "X.Y", 35, None);
        let k = query_key(&q).unwrap();
        let mut r = query(0x1111, "x.y", 35, None);
        r[2] = 0x84; // QR, AA, no RD
        r[3] = 0x03; // NXDOMAIN
        assert!(patch_response(&mut r, &q, k.question_end));
        assert_eq!(&r[0..2], &[0xab, 0xcd]);
        assert_eq!(r[2], 0x85);
        assert_eq!(rcode(&r), Some(3));
        assert_eq!(&r[12..k.question_end], &q[12..k.question_end]);
    }
}
