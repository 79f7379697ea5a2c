//! Request bodies as the devnet's legacy-mode JSON parser reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = ness_devnet::univalue::parse(data) {
        let _ = v.to_bytes();
    }
});
