//! The RANDPAY header values a PBX receives from its peer (Randpay-Challenge,
//! Randpay-Ticket) and the challenge text inside: never a panic, and what parses
//! prints back to something that parses to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ness_core::randpay::chap::{Chap, ChallengeHeader, TicketHeader};

fuzz_target!(|text: &str| {
    let _ = Chap::parse(text);
    if let Ok(h) = ChallengeHeader::parse(text) {
        assert_eq!(ChallengeHeader::parse(&h.to_string()).as_ref(), Ok(&h));
    }
    if let Ok(h) = TicketHeader::parse(text) {
        assert_eq!(TicketHeader::parse(&h.to_string()).as_ref(), Ok(&h));
    }
});
