//! The privatenumer backend's record layout, read on request only
//! (docs/privatenumer-compat.md A1.5): name `enum:<reversed.dotted.digits>.e164.arpa`,
//! value `"!pattern!replacement!flags"|…`.
//!
//! These records carry no verifier signature: enabling the layout means trusting
//! whoever registered the name.

/// One entry of a privatenumer value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivatenumerEntry {
    /// The pattern, `^.*$` when empty.
    pub pattern: String,
    /// The replacement (may be empty).
    pub replacement: String,
    /// The flags field, `u` when empty.
    pub flags: String,
    /// Running index of accepted entries.
    pub order: u16,
    /// Always 10.
    pub preference: u16,
}

/// Parse as the original does: split on every `|`, trim blanks, strip all leading
/// and trailing `"`, then prefix-match `!pattern!replacement!flags`; pieces that do
/// not match are skipped.
pub fn parse_privatenumer_value(value: &str) -> Vec<PrivatenumerEntry> {
    let mut out = Vec::new();
    for piece in value.split('|') {
        let piece = piece.trim().trim_matches('"');
        let Some(rest) = piece.strip_prefix('!') else { continue };
        let mut fields = rest.splitn(3, '!');
        let (Some(pattern), Some(replacement), Some(tail)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let flags = tail.split('!').next().unwrap_or("");
        let Ok(order) = u16::try_from(out.len()) else { break };
        out.push(PrivatenumerEntry {
            pattern: if pattern.is_empty() { "^.*$".into() } else { pattern.into() },
            replacement: replacement.into(),
            flags: if flags.is_empty() { "u".into() } else { flags.into() },
            order,
            preference: 10,
        });
    }
    out
}

impl PrivatenumerEntry {
    /// The entry as a NAPTR regexp field (`!pattern!replacement!`, plus `i` when the
    /// flags ask for case-insensitivity).
    pub fn naptr_regexp(&self) -> String {
        let i = if self.flags.contains('i') { "i" } else { "" };
        format!("!{}!{}!{}", self.pattern, self.replacement, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_examples_from_the_compat_spec() {
        let r = parse_privatenumer_value(r#""!^.*$!sip:user@domain.com!"|"!^.*$!sip:backup@domain.com!u""#);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].replacement, "sip:user@domain.com");
        assert_eq!((r[1].order, r[1].flags.as_str()), (1, "u"));

        let r = parse_privatenumer_value(r#"!!sip:x@y!v|garbage|"!a|b!c!"|!p!!|"!^.*$!sip:é@x!uv!extra""#);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].pattern.as_str(), r[0].replacement.as_str(), r[0].flags.as_str()), ("^.*$", "sip:x@y", "v"));
        assert_eq!((r[1].pattern.as_str(), r[1].replacement.as_str(), r[1].flags.as_str(), r[1].order), ("p", "", "u", 1));
        assert_eq!((r[2].replacement.as_str(), r[2].flags.as_str(), r[2].order), ("sip:é@x", "uv", 2));

        assert!(parse_privatenumer_value(r#"NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:gateway@gateway.ness.cx!" ."#).is_empty());
        assert!(parse_privatenumer_value(r#"{"voice":"sip:x@y"}"#).is_empty());
    }
}
