//! What a lookup produces: the NAPTRs of a number's trusted records, in RFC 3403
//! order, with the URI each one gives, plus what was read and why anything was
//! left out.

use super::e164::E164;
use super::naptr::Naptr;
use super::trust::Distrust;

/// Which record layout the answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `enum:<digits>:<n>` with `E2U+` lines (Emercoin ENUMER, as emcdns serves).
    Enumer,
    /// `enum:<reversed digits>.e164.arpa` (privatenumer backend), opt-in.
    Privatenumer,
}

/// A record that contributed NAPTRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// NVS name, e.g. `enum:15551234567:0`.
    pub name: String,
    /// Address that owns the name.
    pub owner: String,
    pub txid: String,
    /// Blocks until the name expires.
    pub expires_in: i64,
    /// TTL from the record (`TTL=`, default 86400 s).
    pub ttl: u32,
    /// The verifier whose signature made it count (None when trust is off or for
    /// the privatenumer layout).
    pub signed_by: Option<String>,
    /// E2U lines or regexps that could not be used.
    pub problems: Vec<String>,
}

/// A record that was read but does not count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredRecord {
    pub name: String,
    pub owner: String,
    pub reason: Distrust,
}

/// The result of resolving one number. Without NAPTRs it means "not found".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumAnswer {
    pub number: E164,
    pub layout: Layout,
    /// Sorted by order, then preference.
    pub naptrs: Vec<Naptr>,
    pub records: Vec<RecordInfo>,
    pub ignored: Vec<IgnoredRecord>,
}

impl EnumAnswer {
    pub fn empty(number: E164) -> Self {
        EnumAnswer { number, layout: Layout::Enumer, naptrs: Vec::new(), records: Vec::new(), ignored: Vec::new() }
    }

    pub fn is_found(&self) -> bool {
        !self.naptrs.is_empty()
    }

    /// Smallest TTL among the contributing records (seconds).
    pub fn ttl(&self) -> Option<u32> {
        self.naptrs.iter().map(|n| n.ttl).min()
    }

    /// NAPTRs that offer `service` (see [`Naptr::offers`]; empty = any) and whose
    /// regexp matched the number, in order.
    pub fn routes<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Naptr> + 'a {
        self.naptrs.iter().filter(move |n| n.uri.is_some() && n.offers(service))
    }

    /// The first route for `service`.
    pub fn best(&self, service: &str) -> Option<&Naptr> {
        self.naptrs.iter().find(|n| n.uri.is_some() && n.offers(service))
    }

    /// The record a NAPTR came from.
    pub fn record_of(&self, naptr: &Naptr) -> Option<&RecordInfo> {
        self.records.get(naptr.record)
    }
}

#[cfg(test)]
impl EnumAnswer {
    /// For tests: an answer for +15551234567 from (order, preference, service,
    /// regexp) rows, sorted as the resolver sorts them.
    pub(crate) fn from_rows(rows: &[(u16, u16, &str, &str)]) -> EnumAnswer {
        use super::naptr::{NaptrRegexp, sort_naptrs};
        let number = E164::parse("+15551234567").unwrap();
        let mut a = EnumAnswer::empty(number.clone());
        for (order, preference, service, regexp) in rows {
            let re = NaptrRegexp::parse(regexp).unwrap();
            a.naptrs.push(Naptr {
                order: *order,
                preference: *preference,
                flags: "u".into(),
                service: (*service).into(),
                uri: re.apply(&number.aus()),
                regexp: re,
                ttl: 60,
                record: 0,
            });
        }
        sort_naptrs(&mut a.naptrs);
        a
    }
}
