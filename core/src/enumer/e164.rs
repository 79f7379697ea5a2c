//! E.164 numbers: what a caller dials, validated and normalised, and the NVS names
//! and DNS domains derived from it.

use std::fmt;
use std::str::FromStr;

/// At most 15 digits (ITU-T E.164 §6.1).
pub const MAX_DIGITS: usize = 15;
/// Fewer than two digits cannot hold a country code and a subscriber number.
pub const MIN_DIGITS: usize = 2;

/// A valid international number, stored as its digits without `+`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164 {
    digits: Box<str>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NumberError {
    #[error("the number is empty")]
    Empty,
    #[error("'{ch}' at position {position} is not allowed in a phone number (use digits, a leading +, spaces, dashes, dots or parentheses)")]
    InvalidCharacter { ch: char, position: usize },
    #[error("'+' may only appear at the start of the number")]
    MisplacedPlus,
    #[error("the number has {0} digits; an E.164 number has at most 15")]
    TooLong(usize),
    #[error("the number has {0} digit(s); an E.164 number has at least 2")]
    TooShort(usize),
    #[error("an E.164 number starts with a country code, which never starts with 0")]
    LeadingZero,
}

impl E164 {
    /// Parse what a user or a PBX gives: `+1 555-123-4567`, `15551234567`,
    /// `+1 (555) 123.4567`. A leading space stands for a `+` that an HTTP query
    /// string turned into a space.
    pub fn parse(input: &str) -> Result<Self, NumberError> {
        let mut digits = String::with_capacity(input.len());
        let mut seen_content = false;
        for (position, ch) in input.chars().enumerate() {
            match ch {
                '0'..='9' => {
                    digits.push(ch);
                    seen_content = true;
                }
                '+' if !seen_content => seen_content = true,
                '+' => return Err(NumberError::MisplacedPlus),
                ' ' | '\t' | '-' | '.' | '(' | ')' => {}
                _ => return Err(NumberError::InvalidCharacter { ch, position }),
            }
        }
        Self::from_digits(&digits)
    }

    /// From bare ASCII digits (`15551234567`).
    pub fn from_digits(digits: &str) -> Result<Self, NumberError> {
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if let Some((position, ch)) = digits.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(NumberError::InvalidCharacter { ch, position });
        }
        if digits.len() > MAX_DIGITS {
            return Err(NumberError::TooLong(digits.len()));
        }
        if digits.len() < MIN_DIGITS {
            return Err(NumberError::TooShort(digits.len()));
        }
        if digits.starts_with('0') {
            return Err(NumberError::LeadingZero);
        }
        Ok(E164 { digits: digits.into() })
    }

    /// From the labels of an ENUM domain, most significant last
    /// (`["7","6",…,"1"]` for `7.6.….1.e164.arpa`): each label one digit.
    pub fn from_reversed_labels<'a>(labels: impl DoubleEndedIterator<Item = &'a [u8]>) -> Option<Self> {
        let mut digits = String::with_capacity(MAX_DIGITS);
        for label in labels.rev() {
            match label {
                [d @ b'0'..=b'9'] => digits.push(*d as char),
                _ => return None,
            }
            if digits.len() > MAX_DIGITS {
                return None;
            }
        }
        Self::from_digits(&digits).ok()
    }

    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The Application Unique String of RFC 6116: `+` and the digits. NAPTR regexps
    /// are applied to this.
    pub fn aus(&self) -> String {
        format!("+{}", self.digits)
    }

    /// The ENUMER name of the n-th record: `enum:<digits>:<n>`.
    pub fn enumer_name(&self, n: u32) -> String {
        format!("enum:{}:{}", self.digits, n)
    }

    /// Reversed, dot-separated digits: `7.6.5.4.3.2.1.5.5.5.1`.
    pub fn reversed_dotted(&self) -> String {
        let mut out = String::with_capacity(self.digits.len() * 2);
        for (i, d) in self.digits.chars().rev().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push(d);
        }
        out
    }

    /// The ENUM domain under `e164.arpa` (without the final dot).
    pub fn e164_arpa(&self) -> String {
        format!("{}.e164.arpa", self.reversed_dotted())
    }

    /// The privatenumer layout's NVS name: `enum:<reversed dotted digits>.e164.arpa`.
    pub fn privatenumer_name(&self) -> String {
        format!("enum:{}", self.e164_arpa())
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.digits)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164(+{})", self.digits)
    }
}

impl FromStr for E164 {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        E164::parse(s)
    }
}

/// Split an ENUMER name `enum:<digits>:<n>` into its number and index.
pub fn parse_enumer_name(name: &str) -> Option<(E164, u32)> {
    let rest = name.strip_prefix("enum:")?;
    let (digits, n) = rest.split_once(':')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    Some((E164::from_digits(digits).ok()?, n.parse().ok()?))
}

/// The number of a privatenumer-layout name `enum:<d>.<d>…<d>.e164.arpa`.
pub fn parse_privatenumer_name(name: &str) -> Option<E164> {
    let domain = name.strip_prefix("enum:")?.strip_suffix(".e164.arpa")?;
    E164::from_reversed_labels(domain.split('.').map(str::as_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_notations() {
        for s in ["+15551234567", "15551234567", "+1 555-123-4567", "+1 (555) 123.4567", " 15551234567"] {
            assert_eq!(E164::parse(s).unwrap().digits(), "15551234567", "{s}");
        }
    }

    #[test]
    fn rejects_with_reasons() {
        assert_eq!(E164::parse(""), Err(NumberError::Empty));
        assert_eq!(E164::parse("+"), Err(NumberError::Empty));
        assert_eq!(E164::parse("+1555a"), Err(NumberError::InvalidCharacter { ch: 'a', position: 5 }));
        assert_eq!(E164::parse("1+555"), Err(NumberError::MisplacedPlus));
        assert_eq!(E164::parse("+1234567890123456"), Err(NumberError::TooLong(16)));
        assert_eq!(E164::parse("+1"), Err(NumberError::TooShort(1)));
        assert_eq!(E164::parse("0123"), Err(NumberError::LeadingZero));
        // Unicode digits are not ASCII digits (privatenumer bug E2/13).
        assert!(matches!(E164::parse("١٢"), Err(NumberError::InvalidCharacter { .. })));
    }

    #[test]
    fn derived_names() {
        let n = E164::parse("+15551234567").unwrap();
        assert_eq!(n.aus(), "+15551234567");
        assert_eq!(n.enumer_name(2), "enum:15551234567:2");
        assert_eq!(n.e164_arpa(), "7.6.5.4.3.2.1.5.5.5.1.e164.arpa");
        // The privatenumer key derivation (compat spec A1.3).
        assert_eq!(E164::parse("+1234567890").unwrap().privatenumer_name(), "enum:0.9.8.7.6.5.4.3.2.1.e164.arpa");
        assert_eq!(parse_enumer_name("enum:15551234567:0"), Some((n.clone(), 0)));
        assert_eq!(parse_enumer_name("enum:15551234567:01"), None);
        assert_eq!(parse_enumer_name("enum:15551234567"), None);
        assert_eq!(parse_enumer_name("dns:myenum:x.com"), None);
        assert_eq!(parse_privatenumer_name("enum:7.6.5.4.3.2.1.5.5.5.1.e164.arpa"), Some(n));
        assert_eq!(parse_privatenumer_name("enum:76.5.e164.arpa"), None);
    }

    #[test]
    fn labels_round_trip() {
        let n = E164::parse("+4930123456").unwrap();
        let dotted = n.reversed_dotted();
        let back = E164::from_reversed_labels(dotted.split('.').map(str::as_bytes)).unwrap();
        assert_eq!(back, n);
    }
}
