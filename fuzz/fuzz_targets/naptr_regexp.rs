//! The NAPTR regexp field alone, applied to a fuzzed number as well.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ness_core::enumer::NaptrRegexp;

fuzz_target!(|data: (&str, &str)| {
    let (field, aus) = data;
    if let Ok(re) = NaptrRegexp::parse(field) {
        let _ = re.apply(aus);
        let _ = re.replacement_text();
    }
});
