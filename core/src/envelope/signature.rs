//! ptool_sign / ptool_verify: a plain Ed25519 (RFC 8032) signature over exact bytes
//! (for `sms.enc` that is the base64url *text* of the envelope), written as 86
//! base64url characters.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::b64u;

/// Sign `message`; the base64url text ptool writes.
pub fn sign(key: &SigningKey, message: &[u8]) -> String {
    b64u::encode(&key.sign(message).to_bytes())
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not base64")]
    NotBase64,
    #[error("an Ed25519 signature is 64 bytes, this one is {0}")]
    Length(usize),
    #[error("the signature does not match the message and key")]
    Mismatch,
}

/// Check a signature given as (leniently decoded) base64 text. Cofactorless,
/// non-canonical S rejected: OpenSSL's rules, which ptool_verify follows.
pub fn verify(key: &VerifyingKey, message: &[u8], signature_text: &str) -> Result<(), SignatureError> {
    let bytes = b64u::decode(signature_text).map_err(|_| SignatureError::NotBase64)?;
    let arr: [u8; 64] = bytes.as_slice().try_into().map_err(|_| SignatureError::Length(bytes.len()))?;
    key.verify(message, &Signature::from_bytes(&arr)).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptool_vector() {
        // shared/docs/privatenumer-compat.md B2.8: the envelope file's text, seed 0x07×32.
        let key = SigningKey::from_bytes(&[7u8; 32]);
        assert_eq!(b64u::encode(key.verifying_key().as_bytes()), "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw");
        let file = b"B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9_AsrhtHHygoaKjpKWmp6ipqqssOZXG1OH_as8u1odHLB97dG7zk9ScW5foqtm_XVKz-9ncvRc";
        let sig = sign(&key, file);
        assert_eq!(sig, "SwlhL7Wh0swl46b7nm2TIjAEBekezr-G_7b9sJyA9zsct_09-KaxTZdnYBqJ90i0IavQgcgDnIVb1MfmCrUrAw");
        assert_eq!(verify(&key.verifying_key(), file, &sig), Ok(()));
        assert_eq!(verify(&key.verifying_key(), &file[1..], &sig), Err(SignatureError::Mismatch));
        assert_eq!(verify(&key.verifying_key(), file, "QUJD"), Err(SignatureError::Length(3)));
    }
}
