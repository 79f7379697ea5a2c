//! Replies from a node (or from whatever answers on its port).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ness_core::nvs::NameEntry;
use ness_core::nvs::wire::decode_reply;

fuzz_target!(|data: (u16, &[u8])| {
    let (status, body) = data;
    if let Ok(reply) = decode_reply("name_show", status, body) {
        let _ = NameEntry::from_reply(&reply.result);
    }
});
