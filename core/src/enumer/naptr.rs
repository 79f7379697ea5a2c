//! NAPTR records for ENUM: the RFC 3402 substitution expression
//! (`<delim>ERE<delim>replacement<delim>flags`), applied to the number's AUS
//! (`+<digits>`, RFC 6116 §3.2), and the RFC 3403 ordering (order, then preference).

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{LazyLock, Mutex};

use lru::LruCache;
use regex::bytes::{Regex, RegexBuilder};

/// A compiled NAPTR regexp field.
#[derive(Clone)]
pub struct NaptrRegexp {
    raw: String,
    regex: Regex,
    replacement: Vec<ReplPart>,
    case_insensitive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ReplPart {
    Literal(String),
    Group(usize),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegexpError {
    #[error("the regexp field is empty")]
    Empty,
    #[error("'{0}' cannot be a delimiter (digits, backslash and 'i' are not allowed)")]
    BadDelimiter(char),
    #[error("the regexp field has no closing delimiter '{0}' (expected <d>pattern<d>replacement<d>flags)")]
    Unterminated(char),
    #[error("unknown flag '{0}' (only 'i' is defined)")]
    BadFlag(char),
    #[error("back-reference \\{group} but the pattern has only {groups} group(s)")]
    NoSuchGroup { group: usize, groups: usize },
    #[error("the pattern does not compile: {0}")]
    Pattern(String),
}

/// Characters that mean something in a regular expression; a delimiter escaped in
/// the field stays escaped in the pattern when it is one of these.
const REGEX_META: &str = r"\.+*?()|[]{}^$#&-~";

/// Limit on the compiled size of a record's pattern: records are written by anyone.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Lazy-DFA cache of a pattern. The default (2 MiB, allocated and zeroed on first
/// use) costs more than everything else in a lookup; a NAPTR pattern is applied a
/// handful of times to one short string.
const PATTERN_DFA_LIMIT: usize = 16 << 10;

/// Compiled patterns, shared by every record that uses the same one: most records
/// say `^.*$` or `^\+(.*)$`, and compiling costs more than the rest of judging a
/// record. Only short patterns are kept, so the cache stays small whatever
/// records say.
type PatternCache = Mutex<LruCache<(Box<str>, bool), Regex>>;
static COMPILED: LazyLock<PatternCache> =
    LazyLock::new(|| Mutex::new(LruCache::new(NonZeroUsize::new(COMPILED_CAPACITY).expect("non-zero"))));
const COMPILED_CAPACITY: usize = 128;
const COMPILED_MAX_PATTERN: usize = 48;

fn compile(pattern: &str, case_insensitive: bool) -> Result<Regex, RegexpError> {
    let cacheable = pattern.len() <= COMPILED_MAX_PATTERN;
    let key = (Box::<str>::from(pattern), case_insensitive);
    if cacheable
        && let Some(r) = COMPILED.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(r.clone());
        }
    // Byte-oriented, ASCII semantics, like POSIX ERE on the ASCII AUS: no Unicode
    // classes (compiling `.` for UTF-8 costs more than the rest of a lookup).
    let regex = RegexBuilder::new(pattern)
        .unicode(false)
        .case_insensitive(case_insensitive)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_DFA_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|e| RegexpError::Pattern(e.to_string().lines().last().unwrap_or("").trim().to_owned()))?;
    if cacheable {
        COMPILED.lock().unwrap_or_else(|p| p.into_inner()).put(key, regex.clone());
    }
    Ok(regex)
}

impl NaptrRegexp {
    pub fn parse(field: &str) -> Result<Self, RegexpError> {
        let mut chars = field.chars();
        let delim = chars.next().ok_or(RegexpError::Empty)?;
        if delim.is_ascii_digit() || delim == '\\' || delim == 'i' {
            return Err(RegexpError::BadDelimiter(delim));
        }
        let rest = chars.as_str();
        let (pattern_src, after) = split_at_delim(rest, delim).ok_or(RegexpError::Unterminated(delim))?;
        let (repl_src, flags) = split_at_delim(after, delim).ok_or(RegexpError::Unterminated(delim))?;

        let mut case_insensitive = false;
        for f in flags.chars() {
            match f {
                'i' => case_insensitive = true,
                other => return Err(RegexpError::BadFlag(other)),
            }
        }

        let pattern = unescape_delim_in_pattern(pattern_src, delim);
        let regex = compile(&pattern, case_insensitive)?;

        let replacement = parse_replacement(repl_src);
        let groups = regex.captures_len() - 1;
        for part in &replacement {
            if let ReplPart::Group(g) = part
                && *g > groups {
                    return Err(RegexpError::NoSuchGroup { group: *g, groups });
                }
        }
        Ok(NaptrRegexp { raw: field.to_owned(), regex, replacement, case_insensitive })
    }

    /// The field as it was written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The pattern, delimiter escapes removed.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    /// The replacement with back-references written as `\N`.
    pub fn replacement_text(&self) -> String {
        let mut out = String::new();
        for p in &self.replacement {
            match p {
                ReplPart::Literal(s) => out.push_str(s),
                ReplPart::Group(g) => {
                    out.push('\\');
                    out.push_str(&g.to_string());
                }
            }
        }
        out
    }

    /// Apply to an AUS: `None` when the pattern does not match; otherwise the
    /// replacement with back-references filled in (RFC 3402 §3.2: the result is the
    /// replacement alone, not the input with the match replaced). A group that did
    /// not take part in the match gives the empty string.
    pub fn apply(&self, aus: &str) -> Option<String> {
        let caps = self.regex.captures(aus.as_bytes())?;
        let mut out = String::new();
        for p in &self.replacement {
            match p {
                ReplPart::Literal(s) => out.push_str(s),
                ReplPart::Group(g) => {
                    out.push_str(&String::from_utf8_lossy(caps.get(*g).map_or(&[][..], |m| m.as_bytes())))
                }
            }
        }
        Some(out)
    }
}

impl fmt::Debug for NaptrRegexp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NaptrRegexp({:?})", self.raw)
    }
}

impl PartialEq for NaptrRegexp {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for NaptrRegexp {}

/// Split at the first delimiter not preceded by an escaping backslash.
fn split_at_delim(s: &str, delim: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            return Some((&s[..i], &s[i + c.len_utf8()..]));
        }
    }
    None
}

fn unescape_delim_in_pattern(src: &str, delim: char) -> String {
    if REGEX_META.contains(delim) {
        return src.to_owned();
    }
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) if n == delim => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `\1`…`\9` are back-references; a backslash before any other character makes
/// that character literal (`\\`, an escaped delimiter).
fn parse_replacement(src: &str) -> Vec<ReplPart> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            lit.push(c);
            continue;
        }
        match chars.next() {
            Some(d @ '1'..='9') => {
                if !lit.is_empty() {
                    parts.push(ReplPart::Literal(std::mem::take(&mut lit)));
                }
                parts.push(ReplPart::Group(d as usize - '0' as usize));
            }
            Some(other) => lit.push(other),
            None => lit.push('\\'),
        }
    }
    if !lit.is_empty() {
        parts.push(ReplPart::Literal(lit));
    }
    parts
}

/// One NAPTR resource record of an ENUM answer, with its outcome for the number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    /// Always `u` for ENUM terminal rules.
    pub flags: String,
    /// E.g. `E2U+sip`.
    pub service: String,
    pub regexp: NaptrRegexp,
    /// The regexp applied to the number's AUS; `None` if the pattern does not match.
    pub uri: Option<String>,
    /// TTL of the record this NAPTR came from, in seconds.
    pub ttl: u32,
    /// Index into the answer's records.
    pub record: usize,
}

impl Naptr {
    /// Whether this NAPTR offers `service`, given as an enumservice type
    /// (`sip`, `iax2`, …) or a full service field (`E2U+sip`). Service fields have
    /// the form `E2U+type[:subtype]…` (RFC 6116 §3.4.3); `sip` matches `E2U+sip` and
    /// `E2U+voice:sip`. Comparison ignores ASCII case.
    pub fn offers(&self, service: &str) -> bool {
        service_matches(&self.service, service)
    }
}

/// See [`Naptr::offers`].
pub fn service_matches(field: &str, wanted: &str) -> bool {
    let wanted = wanted.trim();
    if wanted.is_empty() {
        return true;
    }
    if wanted.len() >= 4 && wanted[..4].eq_ignore_ascii_case("e2u+") {
        return field.eq_ignore_ascii_case(wanted);
    }
    let Some(rest) = field.get(..4).filter(|p| p.eq_ignore_ascii_case("e2u+")).map(|_| &field[4..]) else {
        return false;
    };
    rest.split('+').any(|enumservice| {
        let mut parts = enumservice.split(':');
        let kind = parts.next().unwrap_or("");
        kind.eq_ignore_ascii_case(wanted) || parts.any(|sub| sub.eq_ignore_ascii_case(wanted))
    })
}

/// Sort by order, then preference (RFC 3403 §4.1); stable, so records keep their
/// NVS order (`:0` before `:1`) and their line order within a tie.
pub fn sort_naptrs(naptrs: &mut [Naptr]) {
    naptrs.sort_by_key(|n| (n.order, n.preference));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(field: &str, aus: &str) -> Option<String> {
        NaptrRegexp::parse(field).unwrap().apply(aus)
    }

    #[test]
    fn non_ascii_in_records_is_matched_bytewise() {
        // Patterns are ASCII-semantics (POSIX ERE); a non-ASCII literal still matches
        // its UTF-8 bytes, and captured bytes come back intact.
        assert_eq!(apply("!^\\+(.*)$!sip:\\1@bücher.example!", "+4930").as_deref(), Some("sip:4930@bücher.example"));
        assert_eq!(apply("!^(.*)é$!\\1!", "caféé").as_deref(), Some("café"));
    }

    #[test]
    fn rfc_3402_and_6116_examples() {
        // RFC 6116 §3.2.3 / emercoin docs.
        assert_eq!(apply("!^.*$!sip:info@example.com!", "+441632960083").as_deref(), Some("sip:info@example.com"));
        assert_eq!(apply(r"!^(.*)$!sip:\1@pbx.example.org!", "+15551234567").as_deref(), Some("sip:+15551234567@pbx.example.org"));
        assert_eq!(apply(r"!^\+?441865332(.*)$!sip:\1@nominet.org.uk!", "+441865332123").as_deref(), Some("sip:123@nominet.org.uk"));
        // Other delimiter, escaped delimiter, literal backslash, case-insensitivity.
        assert_eq!(apply(r"/^\+1(555)(.*)$/sip:\2@\1.example\/x/", "+15551234567").as_deref(), Some("sip:1234567@555.example/x"));
        assert_eq!(apply(r"!^(.*)$!a\\b!", "+1").as_deref(), Some(r"a\b"));
        assert_eq!(apply("!^ABC$!x!i", "abc").as_deref(), Some("x"));
        assert_eq!(apply("!^ABC$!x!", "abc"), None);
        // Unmatched optional group is empty.
        assert_eq!(apply(r"!^(9)?\+(.*)$!sip:\1\2@h!", "+1").as_deref(), Some("sip:1@h"));
    }

    #[test]
    fn malformed_fields() {
        assert_eq!(NaptrRegexp::parse(""), Err(RegexpError::Empty));
        assert_eq!(NaptrRegexp::parse("1abc1d1"), Err(RegexpError::BadDelimiter('1')));
        assert_eq!(NaptrRegexp::parse("!abc"), Err(RegexpError::Unterminated('!')));
        assert_eq!(NaptrRegexp::parse("!abc!def"), Err(RegexpError::Unterminated('!')));
        assert_eq!(NaptrRegexp::parse("!a!b!x"), Err(RegexpError::BadFlag('x')));
        assert_eq!(NaptrRegexp::parse(r"!(a)!\2!"), Err(RegexpError::NoSuchGroup { group: 2, groups: 1 }));
        assert!(matches!(NaptrRegexp::parse("!(a!b!"), Err(RegexpError::Pattern(_))));
    }

    #[test]
    fn services() {
        assert!(service_matches("E2U+sip", "sip"));
        assert!(service_matches("e2u+SIP", "E2U+sip"));
        assert!(service_matches("E2U+voice:sip", "sip"));
        assert!(service_matches("E2U+voice:sip", "voice"));
        assert!(!service_matches("E2U+iax2", "sip"));
        assert!(!service_matches("E2U+sips", "sip"));
        assert!(!service_matches("sip", "sip"));
        assert!(service_matches("E2U+iax2", ""));
    }
}
