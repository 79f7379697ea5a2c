//! What Asterisk's dialplan functions return from an ENUM answer. `EMC_ENUM`
//! follows the built-in `ENUMLOOKUP(number[,method-type[,options[,record#]]])`
//! (funcs/func_enum.c, main/enum.c) so that dialplans switch by renaming the
//! function; `EMC_ENUM_QUERY`/`EMC_ENUM_RESULT` follow `ENUMQUERY`/`ENUMRESULT`.
//!
//! The same as ENUMLOOKUP:
//! - results are the NAPTRs that offer the service, sorted by order, then
//!   preference (all order groups, so `record` 2, 3… reach the fallbacks);
//! - `record` is 1-based and defaults to 1; past the end the result is empty;
//! - the `scheme:` is stripped unless option `u` is given or the service is `ALL`;
//! - option `c` returns the count instead of a URI.
//!
//! Different, on purpose:
//! - the default service is `sip`, and `pjsip` means `sip` (ENUMLOOKUP's default is
//!   `pjsip` since Asterisk 22, which no `E2U+sip` record matches);
//! - `c` gives `0` when the number has no records and `-1` only when the node
//!   failed (ENUMLOOKUP gives `-1` for both, as NXDOMAIN is a DNS failure to it);
//! - options `s`, `i`, `d` (ISN, infrastructure ENUM, direct DNS) and a zone
//!   suffix mean nothing for NVS records and are refused with an error;
//! - a URI that could break out of a dialplan application's arguments (`,`, `&`,
//!   `|`, parentheses, quotes, `\`, `$`) or of a SIP request line (blanks,
//!   control bytes, no scheme) is never returned or counted: records are written
//!   by whoever owns a name, and `Dial(PJSIP/${EMC_ENUM(...)})` must not dial
//!   what a record smuggles in after a comma.

use super::answer::EnumAnswer;
use super::route::usable_uri;

/// Which NAPTRs a function looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceFilter {
    /// `ALL`: every NAPTR, URIs returned whole.
    Any,
    /// An enumservice type (`sip`, `iax2`, …) or a full `E2U+…` field.
    Named(String),
}

impl ServiceFilter {
    /// From the function argument: empty and `pjsip` mean `sip`, `ALL` means any.
    pub fn parse(text: &str) -> ServiceFilter {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("pjsip") {
            ServiceFilter::Named("sip".to_owned())
        } else if t.eq_ignore_ascii_case("all") {
            ServiceFilter::Any
        } else {
            ServiceFilter::Named(t.to_owned())
        }
    }

    pub fn as_match(&self) -> &str {
        match self {
            ServiceFilter::Any => "",
            ServiceFilter::Named(s) => s,
        }
    }

    /// ENUMLOOKUP strips `scheme:` except for `ALL`.
    fn strips_scheme(&self) -> bool {
        matches!(self, ServiceFilter::Named(_))
    }
}

/// Why a function's arguments were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("a number is required, e.g. EMC_ENUM(+15551234567)")]
    NoNumber,
    #[error("option {0:?} is not supported: records come from Emercoin NVS, not DNS (use c and u)")]
    DnsOption(char),
    #[error("unknown option {0:?} (EMC_ENUM knows c = count and u = full URI)")]
    UnknownOption(char),
    #[error("record {0:?} is not a number from 1 up")]
    BadRecord(String),
    #[error("a zone suffix ({0:?}) means nothing here: records are NVS names enum:<digits>:<n>")]
    Zone(String),
    #[error("result {0:?} is neither a number from 1 up nor getnum")]
    BadResult(String),
    #[error("{0}")]
    Usage(&'static str),
}

/// `EMC_ENUM(number[,service[,options[,record]]])`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupArgs {
    pub number: String,
    pub service: ServiceFilter,
    /// Option `c`.
    pub count: bool,
    /// Option `u`.
    pub full_uri: bool,
    /// 1-based.
    pub record: usize,
}

/// Split dialplan function arguments at commas (Asterisk has already substituted
/// variables), trimming blanks around each.
pub fn split_args(text: &str) -> Vec<&str> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    text.split(',').map(str::trim).collect()
}

impl LookupArgs {
    pub fn parse(text: &str) -> Result<LookupArgs, ArgError> {
        let args = split_args(text);
        let number = args.first().copied().filter(|n| !n.is_empty()).ok_or(ArgError::NoNumber)?.to_owned();
        let service = ServiceFilter::parse(args.get(1).copied().unwrap_or(""));
        let (mut count, mut full_uri) = (false, false);
        for c in args.get(2).copied().unwrap_or("").chars() {
            match c {
                'c' => count = true,
                'u' => full_uri = true,
                's' | 'i' | 'd' => return Err(ArgError::DnsOption(c)),
                c if c.is_whitespace() => {}
                c => return Err(ArgError::UnknownOption(c)),
            }
        }
        let record = match args.get(3).copied().unwrap_or("") {
            "" => 1,
            r => r.parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(|| ArgError::BadRecord(r.to_owned()))?,
        };
        if let Some(zone) = args.get(4).copied().filter(|z| !z.is_empty()) {
            let z = zone.trim_end_matches('.').to_ascii_lowercase();
            if z != "e164.arpa" && z != "enum" {
                return Err(ArgError::Zone(zone.to_owned()));
            }
        }
        Ok(LookupArgs { number, service, count, full_uri, record })
    }
}

/// `EMC_ENUM_QUERY(number[,service])`.
pub fn parse_query_args(text: &str) -> Result<(String, ServiceFilter), ArgError> {
    let args = split_args(text);
    let number = args.first().copied().filter(|n| !n.is_empty()).ok_or(ArgError::NoNumber)?.to_owned();
    if let Some(zone) = args.get(2).copied().filter(|z| !z.is_empty()) {
        let z = zone.trim_end_matches('.').to_ascii_lowercase();
        if z != "e164.arpa" && z != "enum" {
            return Err(ArgError::Zone(zone.to_owned()));
        }
    }
    Ok((number, ServiceFilter::parse(args.get(1).copied().unwrap_or(""))))
}

/// Which result `EMC_ENUM_RESULT(id,n)` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultIndex {
    /// `getnum`: how many there are.
    Count,
    /// 1-based.
    Nth(usize),
}

/// `EMC_ENUM_RESULT(id,n)`.
pub fn parse_result_args(text: &str) -> Result<(u64, ResultIndex), ArgError> {
    let args = split_args(text);
    let (Some(id), Some(n)) = (args.first(), args.get(1)) else {
        return Err(ArgError::Usage("EMC_ENUM_RESULT needs the id from EMC_ENUM_QUERY and a result number or getnum"));
    };
    let id = id.parse::<u64>().map_err(|_| ArgError::Usage("the id is the number EMC_ENUM_QUERY returned"))?;
    let index = if n.eq_ignore_ascii_case("getnum") {
        ResultIndex::Count
    } else {
        ResultIndex::Nth(n.parse::<usize>().ok().filter(|&i| i >= 1).ok_or_else(|| ArgError::BadResult((*n).to_owned()))?)
    };
    Ok((id, index))
}

/// Bytes that split or re-interpret dialplan application arguments.
const DIALPLAN_SPECIAL: &[char] = &[',', '&', '|', '(', ')', '"', '\'', '\\', '$', '`'];

/// A URI a dialplan may put into `Dial()` as it is.
pub fn dialplan_safe(uri: &str) -> bool {
    usable_uri(uri) && !uri.contains(DIALPLAN_SPECIAL)
}

/// The URIs for `service` in RFC 3403 order, whole, unsafe ones left out.
pub fn results(answer: &EnumAnswer, service: &ServiceFilter) -> Vec<String> {
    answer.routes(service.as_match()).filter_map(|n| n.uri.clone()).filter(|u| dialplan_safe(u)).collect()
}

/// `user@host` from `sip:user@host`, as ENUMLOOKUP returns it.
pub fn strip_scheme(uri: &str) -> &str {
    uri.split_once(':').map_or(uri, |(_, rest)| rest)
}

/// How one result is shown.
pub fn shown<'a>(uri: &'a str, service: &ServiceFilter, full_uri: bool) -> &'a str {
    if full_uri || !service.strips_scheme() { uri } else { strip_scheme(uri) }
}

/// `EMC_ENUM`'s value for an answer.
pub fn lookup_value(answer: &EnumAnswer, args: &LookupArgs) -> String {
    let all = results(answer, &args.service);
    if args.count {
        return all.len().to_string();
    }
    all.get(args.record - 1).map(|u| shown(u, &args.service, args.full_uri).to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enumer::E164;

    fn answer(rows: &[(u16, u16, &str, &str)]) -> EnumAnswer {
        EnumAnswer::from_rows(rows)
    }

    fn value(a: &EnumAnswer, args: &str) -> String {
        lookup_value(a, &LookupArgs::parse(args).unwrap())
    }

    #[test]
    fn like_enumlookup_order_records_count_and_scheme() {
        let a = answer(&[
            (200, 10, "E2U+sip", "!^.*$!sip:backup@b.example!"),
            (100, 20, "E2U+sip", "!^\\+1(.*)$!sip:\\1@second.example!"),
            (100, 10, "E2U+sip", "!^.*$!sip:first@a.example!"),
            (50, 10, "E2U+iax2", "!^.*$!iax2:guest@iax.example/1234!"),
        ]);
        assert_eq!(value(&a, "+15551234567"), "first@a.example");
        assert_eq!(value(&a, "+15551234567,sip"), "first@a.example");
        assert_eq!(value(&a, "+15551234567,pjsip"), "first@a.example");
        assert_eq!(value(&a, "+15551234567,sip,u"), "sip:first@a.example");
        assert_eq!(value(&a, "+15551234567,sip,,2"), "5551234567@second.example");
        assert_eq!(value(&a, "+15551234567,sip,,3"), "backup@b.example");
        assert_eq!(value(&a, "+15551234567,sip,,4"), "");
        assert_eq!(value(&a, "+15551234567,sip,c"), "3");
        assert_eq!(value(&a, "+15551234567,iax2"), "guest@iax.example/1234");
        // ALL: every service, in order, URIs whole.
        assert_eq!(value(&a, "+15551234567,ALL"), "iax2:guest@iax.example/1234");
        assert_eq!(value(&a, "+15551234567,all,c"), "4");
        assert_eq!(value(&a, "+15551234567,h323,c"), "0");
        assert_eq!(value(&EnumAnswer::empty(E164::parse("+1555").unwrap()), "+1555,sip,c"), "0");
    }

    #[test]
    fn uris_that_break_dialplan_arguments_are_neither_returned_nor_counted() {
        let a = answer(&[
            (10, 10, "E2U+sip", "!^.*$!sip:a@x,,U(evil)!"),
            (10, 20, "E2U+sip", "!^.*$!sip:a@x&PJSIP/other!"),
            (10, 30, "E2U+sip", "!^.*$!sip:${SHELL(id)}@x!"),
            (10, 40, "E2U+sip", "!^.*$!sip:ok@[2001:db8::1];transport=tcp!"),
        ]);
        assert_eq!(value(&a, "+15551234567,sip,c"), "1");
        assert_eq!(value(&a, "+15551234567"), "ok@[2001:db8::1];transport=tcp");
        for bad in ["sip:a,b@x", "sip:a&b", "sip:(x)", "sip:\"x\"", "sip:x\\y", "sip:$x", "sip:a|b", "sip:a b"] {
            assert!(!dialplan_safe(bad), "{bad}");
        }
    }

    #[test]
    fn arguments() {
        let a = LookupArgs::parse(" +1-555-123-4567 , iax2 , cu , 2 ").unwrap();
        assert_eq!(a, LookupArgs {
            number: "+1-555-123-4567".into(),
            service: ServiceFilter::Named("iax2".into()),
            count: true,
            full_uri: true,
            record: 2
        });
        assert_eq!(LookupArgs::parse(""), Err(ArgError::NoNumber));
        assert_eq!(LookupArgs::parse(",sip"), Err(ArgError::NoNumber));
        assert_eq!(LookupArgs::parse("+1555,sip,s"), Err(ArgError::DnsOption('s')));
        assert_eq!(LookupArgs::parse("+1555,sip,x"), Err(ArgError::UnknownOption('x')));
        assert_eq!(LookupArgs::parse("+1555,sip,,0"), Err(ArgError::BadRecord("0".into())));
        assert_eq!(LookupArgs::parse("+1555,sip,,two"), Err(ArgError::BadRecord("two".into())));
        assert!(LookupArgs::parse("+1555,sip,,1,e164.arpa").is_ok());
        assert_eq!(LookupArgs::parse("+1555,sip,,1,e164.org"), Err(ArgError::Zone("e164.org".into())));
        assert_eq!(parse_query_args("+1555").unwrap(), ("+1555".into(), ServiceFilter::Named("sip".into())));
        assert_eq!(parse_query_args("+1555,ALL").unwrap().1, ServiceFilter::Any);
        assert_eq!(parse_result_args("7,getnum").unwrap(), (7, ResultIndex::Count));
        assert_eq!(parse_result_args("7, 2").unwrap(), (7, ResultIndex::Nth(2)));
        assert!(parse_result_args("7").is_err());
        assert!(parse_result_args("x,1").is_err());
        assert_eq!(parse_result_args("7,0"), Err(ArgError::BadResult("0".into())));
    }
}
