//! Which ENUMER records count: those signed by a trusted verifier and not revoked.
//!
//! As emcdns checks them (emcdns.cpp `CheckEnumSig`): a verifier is an NVS name
//! (`ver:enum` by default) whose current owner address holds the signing key; a
//! signature is a message signature over the record's NVS *name*
//! (`enum:<digits>:<n>`) only; a verifier's value may carry `SRL=<nbits>|<template>`
//! naming a revocation list, and a signature is revoked when the SRL record for the
//! name's bucket contains the name.
//!
//! Deliberate difference: a verifier name that has expired or been deleted verifies
//! nothing here (emcdns reads the last owner of any verifier name, live or not).

use crate::emercoin::{Address, MessageSignature};

use super::record::SigEntry;

/// Trust settings of a resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustPolicy {
    /// NVS names of trusted verifiers, e.g. `ver:enum`.
    pub verifiers: Vec<String>,
    /// When false every record counts, signed or not (like an emcdns `~` zone):
    /// for test networks only.
    pub require_signature: bool,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        TrustPolicy { verifiers: vec!["ver:enum".to_owned()], require_signature: true }
    }
}

impl TrustPolicy {
    pub fn trusts(&self, verifier: &str) -> bool {
        self.verifiers.iter().any(|v| v == verifier)
    }
}

/// A verifier as read from the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    /// The address that owns the verifier name now.
    pub address: Address,
    pub srl: Option<Srl>,
}

/// A signature revocation list setting: `SRL=<nbits>|<template>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srl {
    mask: u32,
    template: SrlTemplate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SrlTemplate {
    prefix: String,
    /// None: the template has no conversion and names a single record.
    conversion: Option<Conversion>,
    suffix: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Conversion {
    zero_pad_width: usize,
    kind: char,
}

impl Srl {
    /// Find the first valid `SRL=` line in a verifier's value, as emcdns does: nbits
    /// as by `atoi`, capped at 30; the template may hold one `%d`, `%i`, `%o`, `%u`,
    /// `%x` or `%X`, optionally as `%0<width>x`; an invalid template makes emcdns
    /// skip that line and look further.
    pub fn from_verifier_value(value: &str) -> Option<Srl> {
        for line in value.split(['\n', '\r']) {
            if line.len() < 3 || !line.as_bytes()[..3].eq_ignore_ascii_case(b"srl") {
                continue;
            }
            let Some(eq) = line[3..].find('=') else { continue };
            let spec = &line[3 + eq + 1..];
            let nbits = leading_uint(spec).min(30);
            let Some(bar) = spec.find('|') else { continue };
            let template = &spec[bar + 1..];
            if template.is_empty() {
                continue;
            }
            if let Some(t) = SrlTemplate::parse(template) {
                let nbits = if t.conversion.is_none() { 0 } else { nbits };
                return Some(Srl { mask: (1u32 << nbits) - 1, template: t });
            }
        }
        None
    }

    /// The NVS name of the SRL record that would list `checked_name`.
    pub fn record_name(&self, checked_name: &str) -> String {
        self.template.format(srl_hash(checked_name.as_bytes()) & self.mask)
    }
}

fn leading_uint(s: &str) -> u32 {
    let s = s.trim_start();
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).take(10).collect();
    digits.parse::<u64>().map_or(0, |v| v.min(u64::from(u32::MAX)) as u32)
}

impl SrlTemplate {
    fn parse(t: &str) -> Option<Self> {
        let Some(pct) = t.find('%') else {
            return Some(SrlTemplate { prefix: t.to_owned(), conversion: None, suffix: String::new() });
        };
        let after = &t[pct + 1..];
        let bytes = after.as_bytes();
        let mut i = 0;
        let mut width = 0usize;
        if bytes.first() == Some(&b'0') {
            i = 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                width = width.saturating_mul(10).saturating_add(usize::from(bytes[i] - b'0'));
                i += 1;
            }
        }
        let kind = *bytes.get(i)? as char;
        if !"diouXx".contains(kind) {
            return None;
        }
        let suffix = &after[i + 1..];
        if suffix.contains('%') {
            return None;
        }
        Some(SrlTemplate {
            prefix: t[..pct].to_owned(),
            conversion: Some(Conversion { zero_pad_width: width.min(64), kind }),
            suffix: suffix.to_owned(),
        })
    }

    fn format(&self, bucket: u32) -> String {
        let Some(c) = &self.conversion else { return self.prefix.clone() };
        let body = match c.kind {
            'o' => format!("{bucket:o}"),
            'x' => format!("{bucket:x}"),
            'X' => format!("{bucket:X}"),
            _ => bucket.to_string(),
        };
        let pad = c.zero_pad_width.saturating_sub(body.len());
        format!("{}{}{}{}", self.prefix, "0".repeat(pad), body, self.suffix)
    }
}

/// emcdns's bucket hash: h = 0x5555; for each byte c: h += (h << 5) + c, where c is
/// a C `char` (signed on x86, so bytes ≥ 0x80 count as negative).
pub fn srl_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x5555;
    for &b in name {
        h = h.wrapping_add((h << 5).wrapping_add(b as i8 as i32 as u32));
    }
    h
}

/// Why a signature did not make a record trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Distrust {
    /// The record has no `SIG=` entry at all (e.g. a squatter's record).
    Unsigned,
    /// Signed only by verifiers that are not in the trusted list.
    UnknownVerifier(String),
    /// The trusted verifier's NVS name is missing, expired, or not owned by a
    /// P2PKH/P2WPKH address.
    VerifierUnavailable(String),
    /// The signature does not verify against the verifier's current address.
    BadSignature(String),
    /// The verifier's SRL record lists this name.
    Revoked { verifier: String, srl_record: String },
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::Unsigned => write!(f, "not signed by any verifier"),
            Distrust::UnknownVerifier(v) => write!(f, "signed by {v}, which is not a trusted verifier"),
            Distrust::VerifierUnavailable(v) => write!(f, "verifier {v} has no live NVS record with a usable address"),
            Distrust::BadSignature(v) => write!(f, "signature of {v} does not verify for this name"),
            Distrust::Revoked { verifier, srl_record } => write!(f, "revoked by {verifier} in {srl_record}"),
        }
    }
}

/// Check one signature entry against a known verifier (no SRL check).
pub fn signature_verifies(entry: &SigEntry, verifier: &Verifier, record_name: &str) -> bool {
    match MessageSignature::from_base64(&entry.signature) {
        Ok(sig) => sig.verifies(&verifier.address, record_name.as_bytes()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srl_parsing_follows_emcdns() {
        let s = Srl::from_verifier_value("Verifier\nSRL=5|srl:enum-%02x").unwrap();
        let name = "enum:15551234567:2";
        let bucket = srl_hash(name.as_bytes()) & 31;
        assert_eq!(s.record_name(name), format!("srl:enum-{bucket:02x}"));
        // No conversion: one record, nbits ignored.
        let s = Srl::from_verifier_value("SRL=5|srl:enum-revoked").unwrap();
        assert_eq!(s.record_name(name), "srl:enum-revoked");
        // Width without a leading 0, a second %, or an unknown conversion: skipped,
        // and the next SRL line is used.
        assert_eq!(Srl::from_verifier_value("SRL=5|srl-%2x"), None);
        assert_eq!(Srl::from_verifier_value("SRL=5|a%xb%x"), None);
        assert_eq!(Srl::from_verifier_value("SRL=5|a%s"), None);
        assert_eq!(Srl::from_verifier_value("SRL=5|"), None);
        let s = Srl::from_verifier_value("SRL=5|bad%s\nsrl=2|good-%u").unwrap();
        assert!(s.record_name(name).starts_with("good-"));
        // nbits above 30 is capped.
        let s = Srl::from_verifier_value("SRL=99|x%X").unwrap();
        assert_eq!(s.mask, (1 << 30) - 1);
    }

    #[test]
    fn hash_matches_c_semantics() {
        // h = 0x5555 * 33 + 'a'
        assert_eq!(srl_hash(b"a"), 0x5555 * 33 + 97);
        // A byte >= 0x80 is a negative char.
        assert_eq!(srl_hash(&[0xff]), (0x5555u32 * 33).wrapping_sub(1));
    }
}
