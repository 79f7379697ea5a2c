//! ENUMER record values are written by anyone on the chain: parsing one, its
//! regexps and the privatenumer layout must never panic, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ness_core::enumer::{NaptrRegexp, parse_enumer_value, privatenumer::parse_privatenumer_value, trust::Srl};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let record = parse_enumer_value(&text);
    for line in &record.naptrs {
        if let Ok(re) = NaptrRegexp::parse(&line.regexp) {
            let _ = re.apply("+15551234567");
        }
    }
    for entry in parse_privatenumer_value(&text) {
        if let Ok(re) = NaptrRegexp::parse(&entry.naptr_regexp()) {
            let _ = re.apply("+15551234567");
        }
    }
    if let Some(srl) = Srl::from_verifier_value(&text) {
        let _ = srl.record_name("enum:15551234567:0");
    }
});
