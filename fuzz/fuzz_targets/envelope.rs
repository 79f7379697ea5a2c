//! Envelopes, signatures and receipts as they arrive from a provider or a renter:
//! base64 text of any shape, v1 or v2 bytes, receipt JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ness_core::envelope::{Receipt, b64u, open, verify};

fuzz_target!(|data: &[u8]| {
    let secret = x25519_dalek::StaticSecret::from([0x42u8; 32]);
    let _ = open(&secret, data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = b64u::decode(text) {
            let _ = open(&secret, &bytes);
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let _ = verify(&key, data, text);
        if let Ok(r) = Receipt::parse(text) {
            let _ = r.verify();
            let _ = r.canonical(true);
        }
    }
});
