//! The ptool scripts' base64url codec: writing is strict (URL-safe alphabet, no
//! padding, no line breaks); reading is as lenient as Python's non-strict decoder,
//! because files written by hand or by other tools must keep working.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Base64url without padding, as every ptool output is written.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a base64 text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B64Error {
    #[error("not base64: {0} data characters is one more than a multiple of four")]
    Length(usize),
}

/// Decode the way ptool does (`urlsafe_b64decode` of the stripped text padded with
/// `=`): both alphabets are accepted (`-_` and `+/`), characters outside them are
/// skipped, existing padding is fine, and decoding stops at the first complete
/// padded group.
pub fn decode(text: &str) -> Result<Vec<u8>, B64Error> {
    // Mirrors CPython's binascii.a2b_base64 in non-strict mode.
    let mut data = String::with_capacity(text.len());
    let mut quad = 0usize; // data characters in the current group of four
    let mut pads = 0usize;
    for c in text.trim().chars() {
        if c == '=' {
            if quad >= 2 {
                pads += 1;
                if quad + pads >= 4 {
                    break; // a complete padded group ends the input
                }
            }
            continue;
        }
        let c = match c {
            '-' => '+',
            '_' => '/',
            c if c.is_ascii_alphanumeric() || c == '+' || c == '/' => c,
            _ => continue, // outside the alphabet: skipped
        };
        pads = 0;
        data.push(c);
        quad = (quad + 1) % 4;
    }
    if quad == 1 {
        return Err(B64Error::Length(data.len()));
    }
    while !data.len().is_multiple_of(4) {
        data.push('=');
    }
    // Cannot fail: only alphabet characters, correctly padded.
    STANDARD.decode(data.as_bytes()).map_err(|_| B64Error::Length(data.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_cases() {
        // shared/docs/privatenumer-compat.md B2.1
        assert_eq!(decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        assert_eq!(decode("-_-_").unwrap(), [0xfb, 0xff, 0xbf]);
        for s in ["QU JD", "QU\nJD", "QUJ!D", "  QUJD\n"] {
            assert_eq!(decode(s).unwrap(), b"ABC", "{s:?}");
        }
        assert_eq!(decode("QUI=").unwrap(), b"AB");
        assert_eq!(decode("QUJD====").unwrap(), b"ABC");
        assert_eq!(decode("QQ==QUJD").unwrap(), b"A");
        assert!(matches!(decode("QUJDR"), Err(B64Error::Length(5))));
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(encode(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert_eq!(encode(b"AB"), "QUI");
    }

    #[test]
    fn round_trip() {
        for n in 0..70u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
    }
}
