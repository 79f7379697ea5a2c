//! Joining the parts of a concatenated SMS, as gammu-smsd does: parts are linked by
//! (sender, reference, total), may arrive in any order and at any storage index,
//! and an incomplete set is released with the parts it has once it has waited long
//! enough. Each part carries a tag (e.g. its SIM index) that comes back with the
//! message, so the caller knows what to delete once the message is safe.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::pdu::{Body, Deliver, Scts};

/// A message put back together (or released incomplete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled<T> {
    pub sender: String,
    pub text: String,
    /// 8-bit data, when the parts carried no text.
    pub binary: Option<Vec<u8>>,
    /// The first part's SMSC time stamp.
    pub scts: Scts,
    pub parts_expected: u8,
    pub parts_received: u8,
    /// The tags of the parts, in part order.
    pub tags: Vec<T>,
}

struct Pending<T> {
    since: Instant,
    parts: BTreeMap<u8, (Deliver, T)>,
    total: u8,
}

pub struct Assembler<T> {
    timeout: Duration,
    pending: HashMap<(String, u16, u8), Pending<T>>,
}

/// Join bodies in part order: UCS-2 code units first, so a surrogate pair split
/// across two parts becomes one character again.
fn join(bodies: &[&Body]) -> (String, Option<Vec<u8>>) {
    if bodies.iter().all(|b| matches!(b, Body::Binary(_))) {
        let data = bodies.iter().flat_map(|b| if let Body::Binary(d) = b { d.clone() } else { vec![] }).collect();
        return (String::new(), Some(data));
    }
    let mut text = String::new();
    let mut units: Vec<u16> = Vec::new();
    for b in bodies {
        match b {
            Body::Ucs2(u) => units.extend_from_slice(u),
            other => {
                text.push_str(&String::from_utf16_lossy(&units));
                units.clear();
                match other {
                    Body::Text(s) => text.push_str(s),
                    Body::Binary(d) => text.push_str(&String::from_utf8_lossy(d)),
                    Body::Ucs2(_) => unreachable!(),
                }
            }
        }
    }
    text.push_str(&String::from_utf16_lossy(&units));
    (text, None)
}

fn assemble<T>(parts: Vec<(Deliver, T)>, expected: u8) -> Assembled<T> {
    let (text, binary) = join(&parts.iter().map(|(d, _)| &d.body).collect::<Vec<_>>());
    let (sender, scts) = (parts[0].0.sender.clone(), parts[0].0.scts);
    let parts_received = parts.len() as u8;
    let tags = parts.into_iter().map(|(_, t)| t).collect();
    Assembled { sender, text, binary, scts, parts_expected: expected, parts_received, tags }
}

impl<T> Assembler<T> {
    pub fn new(timeout: Duration) -> Self {
        Assembler { timeout, pending: HashMap::new() }
    }

    /// Add a part; returns the message when it is complete (a single SMS at once).
    /// A repeated part (same sequence number) replaces the earlier copy.
    pub fn push(&mut self, part: Deliver, tag: T, now: Instant) -> Option<Assembled<T>> {
        let Some(c) = part.concat.filter(|c| c.total > 1 && c.seq >= 1 && c.seq <= c.total) else {
            return Some(assemble(vec![(part, tag)], 1));
        };
        let key = (part.sender.clone(), c.reference, c.total);
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending { since: now, parts: BTreeMap::new(), total: c.total });
        entry.parts.insert(c.seq, (part, tag));
        if entry.parts.len() == usize::from(entry.total) {
            let p = self.pending.remove(&key).expect("present");
            return Some(assemble(p.parts.into_values().collect(), p.total));
        }
        None
    }

    /// Release the sets that have waited longer than the timeout, incomplete.
    pub fn expire(&mut self, now: Instant) -> Vec<Assembled<T>> {
        let due: Vec<_> = self.pending.iter().filter(|(_, p)| now.duration_since(p.since) >= self.timeout).map(|(k, _)| k.clone()).collect();
        due.into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .map(|p| assemble(p.parts.into_values().collect(), p.total))
            .collect()
    }

    /// Parts waiting for their siblings.
    pub fn waiting(&self) -> usize {
        self.pending.values().map(|p| p.parts.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::pdu::{decode_hex, encode_text};

    fn scts() -> Scts {
        Scts { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, tz_quarters: 4 }
    }

    #[test]
    fn parts_in_any_order_and_surrogates_across_parts() {
        let text = "a".repeat(60) + &"👋".repeat(30); // UCS-2: 120 units, a pair at the boundary
        let pdus = encode_text("+4915112345678", &text, &scts(), 0xEE);
        assert_eq!(pdus.len(), 2);
        let mut a = Assembler::new(Duration::from_secs(600));
        let now = Instant::now();
        assert_eq!(a.push(decode_hex(&pdus[1]).unwrap(), 7, now), None);
        assert_eq!(a.waiting(), 1);
        let m = a.push(decode_hex(&pdus[0]).unwrap(), 3, now).unwrap();
        assert_eq!(m.text, text);
        assert_eq!((m.parts_expected, m.parts_received, m.tags), (2, 2, vec![3, 7]));
        assert_eq!(a.waiting(), 0);
    }

    #[test]
    fn incomplete_sets_are_released_after_the_timeout() {
        let pdus = encode_text("+1555", &"x".repeat(400), &scts(), 1);
        assert_eq!(pdus.len(), 3);
        let mut a = Assembler::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(a.push(decode_hex(&pdus[0]).unwrap(), 1, t0).is_none());
        assert!(a.push(decode_hex(&pdus[2]).unwrap(), 3, t0).is_none());
        assert!(a.expire(t0 + Duration::from_secs(9)).is_empty());
        let out = a.expire(t0 + Duration::from_secs(10));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].parts_expected, out[0].parts_received, out[0].tags.clone()), (3, 2, vec![1, 3]));
        assert_eq!(out[0].text.len(), 153 + 400 - 306);
        // Same reference from another sender is another message.
        let other = encode_text("+1666", &"y".repeat(400), &scts(), 1);
        assert!(a.push(decode_hex(&other[0]).unwrap(), 9, t0).is_none());
        assert!(a.push(decode_hex(&pdus[1]).unwrap(), 2, t0).is_none());
        assert_eq!(a.waiting(), 2);
    }
}
