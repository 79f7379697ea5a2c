//! ENUMER record values, read exactly as emcdns reads them (emercoin src/emcdns.cpp,
//! `Answer_ENUM`, `HandleE2U`, `CheckEnumSigList`):
//!
//! - lines are separated by `\n` or `\r`; a line's kind is its first three
//!   characters, compared case-insensitively: `E2U`, `SIG`, `TTL`; others are ignored;
//! - `E2U+<service>=<order>|<preference>|<regexp>` is one NAPTR; the service is
//!   everything before `=` (trailing blanks trimmed); the rest is read like
//!   `sscanf("%u | %u | %s")`, so the regexp ends at the first blank;
//! - `SIG=<verifier>|<base64>` carries signatures, several per line separated by `,`;
//! - `TTL=<seconds>` sets the TTL of all of this record's NAPTRs (last one wins;
//!   read like `atoi`; default 86400).
//!
//! Deliberate differences, each one a line emcdns would have garbled: an order or
//! preference above 65535 (emcdns truncates it to 16 bits) or with a sign is
//! rejected, and reported in [`EnumerRecord::problems`].

/// TTL of a record without a `TTL=` line (emcdns: 24 h).
pub const DEFAULT_TTL_SECS: u32 = 86_400;

/// One `E2U` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct E2uLine {
    /// The service as written, e.g. `E2U+sip`.
    pub service: String,
    pub order: u16,
    pub preference: u16,
    /// The NAPTR regexp field, e.g. `!^(.*)$!sip:\1@pbx.example.org!`.
    pub regexp: String,
}

/// One `<verifier>|<signature>` entry of a `SIG=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigEntry {
    /// NVS name of the verifier, e.g. `ver:enum`.
    pub verifier: String,
    /// The base64 signature text, blanks trimmed.
    pub signature: String,
}

/// A parsed ENUMER value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnumerRecord {
    pub naptrs: Vec<E2uLine>,
    pub signatures: Vec<SigEntry>,
    /// The `TTL=` value (clamped at 0), if any.
    pub ttl: Option<u32>,
    /// E2U lines that were skipped, with the reason.
    pub problems: Vec<String>,
}

impl EnumerRecord {
    pub fn ttl_secs(&self) -> u32 {
        self.ttl.unwrap_or(DEFAULT_TTL_SECS)
    }
}

fn is_blank(b: u8) -> bool {
    // emcdns trims with `<= 040`, i.e. every control character and space.
    b <= b' '
}

fn kind_is(line: &str, kind: &str) -> bool {
    line.len() >= 3 && line.as_bytes()[..3].eq_ignore_ascii_case(kind.as_bytes())
}

/// Parse an ENUMER value. Never fails: unusable lines are skipped (and E2U ones
/// reported in `problems`), as emcdns skips them.
pub fn parse_enumer_value(value: &str) -> EnumerRecord {
    let mut rec = EnumerRecord::default();
    for line in value.split(['\n', '\r']) {
        if kind_is(line, "e2u") {
            match parse_e2u(line) {
                Ok(n) => rec.naptrs.push(n),
                Err(why) => rec.problems.push(format!("{line:?}: {why}")),
            }
        } else if kind_is(line, "ttl") {
            if let Some(eq) = line[3..].find('=') {
                rec.ttl = Some(atoi(&line[3 + eq + 1..]).clamp(0, i64::from(u32::MAX)) as u32);
            }
        } else if kind_is(line, "sig")
            && let Some(eq) = line[3..].find('=') {
                parse_sig_list(&line[3 + eq + 1..], &mut rec.signatures);
            }
    }
    rec
}

/// C `atoi`: leading blanks, optional sign, digits; anything else ends it; 0 if none.
fn atoi(s: &str) -> i64 {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i] == b' ' || (b'\t'..=b'\r').contains(&b[i])) {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add(i64::from(b[i] - b'0'));
        i += 1;
    }
    if neg { -v } else { v }
}

fn parse_e2u(line: &str) -> Result<E2uLine, &'static str> {
    let eq = line.find('=').ok_or("no '=' after the service")?;
    let service = line[..eq].trim_end_matches(|c: char| c.is_ascii() && is_blank(c as u8));
    let mut s = Scanner { b: &line.as_bytes()[eq + 1..], i: 0 };
    let order = s.unsigned().ok_or("order is not a number from 0 to 65535")?;
    s.literal(b'|').ok_or("expected '|' after the order")?;
    let preference = s.unsigned().ok_or("preference is not a number from 0 to 65535")?;
    s.literal(b'|').ok_or("expected '|' after the preference")?;
    let regexp = s.word().ok_or("the regexp is missing")?;
    Ok(E2uLine {
        service: service.to_owned(),
        order,
        preference,
        regexp: String::from_utf8_lossy(regexp).into_owned(),
    })
}

/// A small `sscanf` for `%u | %u | %s`: a blank in the format matches any run of
/// blanks (including none), `%u` and `%s` skip leading blanks.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn skip_space(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn unsigned(&mut self) -> Option<u16> {
        self.skip_space();
        if self.b.get(self.i) == Some(&b'+') {
            self.i += 1;
        }
        let start = self.i;
        let mut v: u32 = 0;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            v = v.saturating_mul(10).saturating_add(u32::from(self.b[self.i] - b'0'));
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        u16::try_from(v).ok()
    }

    fn literal(&mut self, c: u8) -> Option<()> {
        self.skip_space();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn word(&mut self) -> Option<&[u8]> {
        self.skip_space();
        let start = self.i;
        while self.i < self.b.len() && !self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
        (self.i > start).then(|| &self.b[start..self.i])
    }
}

/// `CheckEnumSigList` + `CheckEnumSig`: entries separated by `,`; in each, blanks
/// are skipped, the verifier name runs to `|` (trailing blanks trimmed), and the
/// signature is the rest (blanks trimmed).
fn parse_sig_list(list: &str, out: &mut Vec<SigEntry>) {
    for entry in list.split(',') {
        let entry = entry.trim_start_matches(|c: char| c.is_ascii() && is_blank(c as u8));
        let Some((verifier, signature)) = entry.split_once('|') else { continue };
        let trim = |s: &str| s.trim_matches(|c: char| c.is_ascii() && is_blank(c as u8)).to_owned();
        out.push(SigEntry { verifier: trim(verifier), signature: trim(signature) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_record() {
        // The value of enum:15551234567:0 in the fixtures (name_show.enum.ok.json).
        let v = "E2U+sip=100|10|!^(.*)$!sip:\\1@example.net!\nSIG=ver:enum|Hwks92Mt5gdg9RfgAdSlwWYYkXaHIQutG0heJqU7BFoxCvXu+vpgw0fXzZI6T7Se8sWB/OMPLdEv+KlBvG/nqBY=";
        let r = parse_enumer_value(v);
        assert_eq!(r.naptrs, vec![E2uLine {
            service: "E2U+sip".into(),
            order: 100,
            preference: 10,
            regexp: "!^(.*)$!sip:\\1@example.net!".into(),
        }]);
        assert_eq!(r.signatures.len(), 1);
        assert_eq!(r.signatures[0].verifier, "ver:enum");
        assert!(r.signatures[0].signature.starts_with("Hwks92"));
        assert_eq!(r.ttl_secs(), 86_400);
    }

    #[test]
    fn emcdns_reading_rules() {
        let v = "e2u+SIP = 10 | 20 | !^.*$!sip:a@b! trailing junk\r\n\
                 E2U+iax2=5|1|!^.*$!iax2:x@y!\n\
                 ttl=300\nTTL=  120abc\n\
                 sig= ver:enum | AAA= , other |BBB\n\
                 SIG=nobar\n\
                 # comment\nfoo=bar\n\
                 E2U+sip=70000|1|!x!y!\nE2U+sip=-1|1|!x!y!\nE2U+sip=1|1|\nE2U+sip\n";
        let r = parse_enumer_value(v);
        assert_eq!(r.naptrs.len(), 2);
        assert_eq!(r.naptrs[0].service, "e2u+SIP");
        assert_eq!((r.naptrs[0].order, r.naptrs[0].preference), (10, 20));
        assert_eq!(r.naptrs[0].regexp, "!^.*$!sip:a@b!");
        assert_eq!(r.naptrs[1].service, "E2U+iax2");
        assert_eq!(r.ttl, Some(120));
        assert_eq!(r.signatures, vec![
            SigEntry { verifier: "ver:enum".into(), signature: "AAA=".into() },
            SigEntry { verifier: "other".into(), signature: "BBB".into() },
        ]);
        assert_eq!(r.problems.len(), 4, "{:?}", r.problems);
    }

    #[test]
    fn negative_ttl_is_zero() {
        assert_eq!(parse_enumer_value("TTL=-5").ttl, Some(0));
        assert_eq!(parse_enumer_value("TTL=x").ttl, Some(0));
        assert_eq!(parse_enumer_value("TTL 300").ttl, None);
    }
}
