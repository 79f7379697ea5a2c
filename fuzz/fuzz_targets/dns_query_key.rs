//! UDP packets as the DNS front reads them before anything else.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ness_enum_resolver::dns::query_key::{patch_response, query_key, rcode};

fuzz_target!(|data: &[u8]| {
    if let Some(k) = query_key(data) {
        assert!(k.question_end <= data.len());
        let mut response = data.to_vec();
        assert!(patch_response(&mut response, data, k.question_end));
        let _ = rcode(&response);
    }
});
