//! What travels between the PBXes (docs/randpay.md §2): the payee's challenge
//! (`chap`, exactly as `randpay_mkchap` returned it), the payer's ticket (the hex
//! `randpay_mktx` returned, opaque), and the two header values that carry them.

use std::fmt;

use super::tariff::Amount;

/// Why a challenge, ticket or header value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChapError {
    #[error("challenge {0:?} is not amount:risk:40-hex-digits")]
    Chap(String),
    #[error("ticket is not hex of a transaction (even length, 20 to 200000 hex digits)")]
    Ticket,
    #[error("header value {0:?}: {1}")]
    Header(String, &'static str),
}

/// A RANDPAY challenge: the amount a winning ticket pays, the risk, and c.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chap {
    pub amount: Amount,
    pub risk: u32,
    /// ⌊X / risk⌋ as 40 lowercase hex digits.
    pub c: String,
    /// The text as the node wrote it (`randpay_mktx` takes it back verbatim).
    text: String,
}

impl Chap {
    pub fn parse(text: &str) -> Result<Chap, ChapError> {
        let bad = || ChapError::Chap(text.chars().take(80).collect());
        let mut parts = text.trim().split(':');
        let (Some(a), Some(r), Some(c), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let amount = Amount::parse(a).filter(|a| a.0 > 0).ok_or_else(bad)?;
        let risk = r.parse::<u32>().ok().filter(|&r| r > 0).ok_or_else(bad)?;
        if c.len() != 40 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Chap { amount, risk, c: c.to_ascii_lowercase(), text: text.trim().to_owned() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Chap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A ticket: the transaction hex the payer's node made. Opaque; only checked to
/// be hex of a plausible size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket(String);

impl Ticket {
    pub fn parse(text: &str) -> Result<Ticket, ChapError> {
        let t = text.trim();
        if t.len() < 20 || t.len() > 200_000 || !t.len().is_multiple_of(2) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ChapError::Ticket);
        }
        Ok(Ticket(t.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `Randpay-Challenge: seq=N;chap="…";interval=T;grace=G;price="P"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeHeader {
    pub seq: u32,
    pub chap: Chap,
    pub interval_secs: u32,
    pub grace_secs: u32,
    /// The tariff's price per minute, as announced.
    pub price_per_minute: Amount,
}

/// `Randpay-Ticket: seq=N;ticket="…"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketHeader {
    pub seq: u32,
    pub ticket: Ticket,
}

/// `k=v;k="v"` pairs; values may be quoted (no escapes: none of ours needs one).
fn params(text: &str) -> Result<Vec<(&str, &str)>, ChapError> {
    let bad = |why| ChapError::Header(text.chars().take(80).collect(), why);
    if text.len() > 210_000 {
        return Err(bad("too long"));
    }
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| bad("a parameter without ="))?;
        let v = v.trim();
        let v = match v.strip_prefix('"') {
            Some(rest) => rest.strip_suffix('"').ok_or_else(|| bad("an unterminated quote"))?,
            None => v,
        };
        out.push((k.trim(), v));
    }
    Ok(out)
}

fn get<'a>(ps: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    ps.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v)
}

impl ChallengeHeader {
    pub fn parse(text: &str) -> Result<ChallengeHeader, ChapError> {
        let ps = params(text)?;
        let bad = |why| ChapError::Header(text.chars().take(80).collect(), why);
        let num = |k: &'static str| get(&ps, k).and_then(|v| v.parse::<u32>().ok()).ok_or_else(|| bad(k));
        Ok(ChallengeHeader {
            seq: num("seq")?,
            chap: Chap::parse(get(&ps, "chap").ok_or_else(|| bad("no chap"))?)?,
            interval_secs: num("interval")?,
            grace_secs: num("grace")?,
            price_per_minute: get(&ps, "price").and_then(Amount::parse).ok_or_else(|| bad("price"))?,
        })
    }
}

impl fmt::Display for ChallengeHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq={};chap=\"{}\";interval={};grace={};price=\"{}\"",
            self.seq, self.chap, self.interval_secs, self.grace_secs, self.price_per_minute
        )
    }
}

impl TicketHeader {
    pub fn parse(text: &str) -> Result<TicketHeader, ChapError> {
        let ps = params(text)?;
        let bad = |why| ChapError::Header(text.chars().take(80).collect(), why);
        Ok(TicketHeader {
            seq: get(&ps, "seq").and_then(|v| v.parse().ok()).ok_or_else(|| bad("seq"))?,
            ticket: Ticket::parse(get(&ps, "ticket").ok_or_else(|| bad("no ticket"))?)?,
        })
    }
}

impl fmt::Display for TicketHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq={};ticket=\"{}\"", self.seq, self.ticket.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAP: &str = "0.50:1000000:000003cf782b532f5a7e4d75848284bb66559803";

    #[test]
    fn chaps_as_the_node_writes_them() {
        let c = Chap::parse(CHAP).unwrap();
        assert_eq!((c.amount, c.risk), (Amount(500_000), 1_000_000));
        assert_eq!(c.as_str(), CHAP);
        for bad in ["", "0.50:1:abc", "0:1:000003cf782b532f5a7e4d75848284bb66559803", "0.5:0:000003cf782b532f5a7e4d75848284bb66559803", "0.5:1:000003cf782b532f5a7e4d75848284bb6655980z", "0.5:1:2:3"] {
            assert!(Chap::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_round_trip() {
        let h = ChallengeHeader {
            seq: 3,
            chap: Chap::parse(CHAP).unwrap(),
            interval_secs: 60,
            grace_secs: 10,
            price_per_minute: Amount(83),
        };
        let text = h.to_string();
        assert_eq!(text, format!("seq=3;chap=\"{CHAP}\";interval=60;grace=10;price=\"0.000083\""));
        assert_eq!(ChallengeHeader::parse(&text).unwrap(), h);
        let t = TicketHeader { seq: 3, ticket: Ticket::parse("ECECD3000102030405060708").unwrap() };
        assert_eq!(TicketHeader::parse(&t.to_string()).unwrap(), t);
        assert!(TicketHeader::parse("seq=1;ticket=\"zz\"").is_err());
        assert!(TicketHeader::parse("seq=x;ticket=\"ecec0000000000000000\"").is_err());
        assert!(ChallengeHeader::parse("seq=1;chap=\"0.5:1:00").is_err());
        assert!(Ticket::parse("abc").is_err());
    }
}
