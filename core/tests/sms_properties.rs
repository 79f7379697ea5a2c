//! Property tests for what modems and providers hand us: SMS-DELIVER PDUs never
//! panic the decoder, and any text a phone can send — GSM alphabet with escapes,
//! or UCS-2 with emoji, one part or many, parts in any order — comes back exact.

use std::time::{Duration, Instant};

use ness_core::envelope::{b64u, open, seal_v1, seal_v2};
use ness_core::sms::pdu::{decode, decode_hex, encode_text};
use ness_core::sms::{Assembler, Scts};
use proptest::prelude::*;

fn scts() -> Scts {
    Scts { year: 2026, month: 11, day: 21, hour: 12, minute: 0, second: 1, tz_quarters: 4 }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn pdu_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn texts_come_back_exact(
        text in prop_oneof![
            "[a-zA-Z0-9 @£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,./:;<=>?¡ÄÖÑÜ§¿äöñüà^{}\\[~\\]|€\n-]{1,500}",
            "\\PC{1,300}",
        ],
        sender in prop_oneof!["\\+[1-9][0-9]{6,14}", "[A-Za-z][A-Za-z0-9 ]{0,9}"],
        reference in any::<u8>(),
        reverse in any::<bool>(),
    ) {
        let mut pdus = encode_text(&sender, &text, &scts(), reference);
        if reverse { pdus.reverse(); }
        let mut a = Assembler::new(Duration::from_secs(600));
        let now = Instant::now();
        let mut done = None;
        for (i, p) in pdus.iter().enumerate() {
            let d = decode_hex(p).unwrap();
            prop_assert_eq!(&d.sender, &sender);
            prop_assert_eq!(d.scts, scts());
            if let Some(m) = a.push(d, i, now) { done = Some(m); }
        }
        let m = done.expect("all parts given");
        prop_assert_eq!(m.text, text);
        prop_assert_eq!(usize::from(m.parts_received), pdus.len());
    }

    #[test]
    fn envelopes_never_panic_and_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in "\\PC{0,80}") {
        let secret = x25519_dalek::StaticSecret::from([3u8; 32]);
        let _ = open(&secret, &bytes);
        let _ = b64u::decode(&String::from_utf8_lossy(&bytes));
        let public = x25519_dalek::PublicKey::from(&secret);
        let v1 = seal_v1(&public, text.as_bytes()).unwrap();
        prop_assert_eq!(open(&secret, &v1).unwrap().plaintext, text.as_bytes());
        let sender = ed25519_dalek::SigningKey::from_bytes(&[4u8; 32]);
        let v2 = seal_v2(&sender, &public, [5u8; 16], 6, text.as_bytes()).unwrap();
        prop_assert_eq!(open(&secret, &v2).unwrap().plaintext, text.as_bytes());
    }
}
