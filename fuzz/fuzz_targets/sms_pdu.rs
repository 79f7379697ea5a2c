//! SMS-DELIVER PDUs as a modem lists them (hex text or raw bytes), joined.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ness_core::sms::Assembler;
use ness_core::sms::pdu::{decode, decode_hex};

fuzz_target!(|data: &[u8]| {
    let mut a = Assembler::new(Duration::from_secs(1));
    let now = Instant::now();
    for chunk in data.split(|&b| b == b'\n') {
        if let Ok(d) = decode(chunk) {
            let _ = a.push(d, (), now);
        }
        if let Ok(d) = decode_hex(&String::from_utf8_lossy(chunk)) {
            let _ = a.push(d, (), now);
        }
    }
    let _ = a.expire(now + Duration::from_secs(2));
});
