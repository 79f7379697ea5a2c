//! Asterisk dialplan function arguments (EMC_ENUM, EMC_ENUM_QUERY, EMC_ENUM_RESULT)
//! and what EMC_ENUM returns for them from a fuzzed record: never a panic, and never
//! a value that could split a dialplan application's arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ness_core::enumer::dialplan::{self, LookupArgs};
use ness_core::enumer::naptr::{Naptr, NaptrRegexp};
use ness_core::enumer::{E164, EnumAnswer};

fuzz_target!(|data: (&str, &str, &str)| {
    let (args, regexp, service) = data;
    let _ = dialplan::parse_query_args(args);
    let _ = dialplan::parse_result_args(args);
    let Ok(parsed) = LookupArgs::parse(args) else { return };
    let Ok(number) = E164::parse(&parsed.number) else { return };
    let Ok(re) = NaptrRegexp::parse(regexp) else { return };
    let mut answer = EnumAnswer::empty(number.clone());
    answer.naptrs.push(Naptr {
        order: 1,
        preference: 1,
        flags: "u".into(),
        service: service.into(),
        uri: re.apply(&number.aus()),
        regexp: re,
        ttl: 60,
        record: 0,
    });
    let value = dialplan::lookup_value(&answer, &parsed);
    assert!(!value.contains([',', '&', '|', '(', ')', '$', '"', '\'', '\\']), "{value:?}");
});
