//! "EmerCoin Signed Message" signatures, as made by `signmessage` and checked by
//! `verifymessage` and by emcdns for ENUMER `SIG=` lines.
//!
//! The signed hash is SHA256d(varstr("EmerCoin Signed Message:\n") ‖ varstr(message));
//! the signature is 65 bytes, base64: a header byte 27 + recovery id (+4 when the
//! key is compressed) followed by r and s.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};

use super::{Address, PrivateKey, hash160, sha256d};

/// The message magic, 25 bytes (compact-size prefix 0x19).
pub const MESSAGE_MAGIC: &str = "EmerCoin Signed Message:\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the signature is not valid base64")]
    Base64,
    #[error("the signature is {0} bytes long, a message signature has 65")]
    Length(usize),
    #[error("the signature header byte {0} is not in 27..=34")]
    Header(u8),
    #[error("no public key can be recovered from this signature")]
    Unrecoverable,
}

fn push_varstr(buf: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 0xfd {
        buf.push(n as u8);
    } else if n <= 0xffff {
        buf.push(0xfd);
        buf.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= 0xffff_ffff {
        buf.push(0xfe);
        buf.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        buf.push(0xff);
        buf.extend_from_slice(&(n as u64).to_le_bytes());
    }
    buf.extend_from_slice(s);
}

/// The 32-byte hash that a message signature signs.
pub fn message_hash(message: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(MESSAGE_MAGIC.len() + message.len() + 4);
    push_varstr(&mut buf, MESSAGE_MAGIC.as_bytes());
    push_varstr(&mut buf, message);
    sha256d(&buf)
}

/// A 65-byte compact recoverable signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MessageSignature([u8; 65]);

impl std::fmt::Debug for MessageSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageSignature({})", self.to_base64())
    }
}

impl MessageSignature {
    /// Decode the base64 form. Surrounding whitespace is ignored, as emcdns does.
    pub fn from_base64(s: &str) -> Result<Self, SignatureError> {
        let raw = STANDARD.decode(s.trim()).map_err(|_| SignatureError::Base64)?;
        Self::from_bytes(&raw)
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Self, SignatureError> {
        let bytes: [u8; 65] = raw.try_into().map_err(|_| SignatureError::Length(raw.len()))?;
        if !(27..=34).contains(&bytes[0]) {
            return Err(SignatureError::Header(bytes[0]));
        }
        Ok(MessageSignature(bytes))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// Sign `message` with `key`, as `signmessage` does.
    pub fn sign(key: &PrivateKey, message: &[u8]) -> Self {
        let hash = message_hash(message);
        let (sig, recid) = key.signing_key().sign_prehash_recoverable(&hash);
        // Bitcoin-style signatures carry a low S; normalising flips the parity of R's y.
        let (sig, recid) = match sig.normalize_s() {
            normalized if normalized != sig => {
                (normalized, RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced()))
            }
            _ => (sig, recid),
        };
        let mut out = [0u8; 65];
        out[0] = 27 + u8::from(recid) + if key.is_compressed() { 4 } else { 0 };
        out[1..].copy_from_slice(&sig.to_bytes());
        MessageSignature(out)
    }

    /// hash160 of the public key that made this signature over `message`, in the
    /// encoding (compressed or not) the header byte names.
    pub fn recover_key_hash(&self, message: &[u8]) -> Result<[u8; 20], SignatureError> {
        let header = self.0[0] - 27;
        let compressed = header & 4 != 0;
        let recid = RecoveryId::from_byte(header & 3).ok_or(SignatureError::Header(self.0[0]))?;
        let sig = Signature::from_slice(&self.0[1..]).map_err(|_| SignatureError::Unrecoverable)?;
        let hash = message_hash(message);
        let key = VerifyingKey::recover_from_prehash(&hash, &sig, recid)
            .map_err(|_| SignatureError::Unrecoverable)?;
        let point = key.to_sec1_point(compressed);
        Ok(hash160(point.as_bytes()))
    }

    /// True if this is a valid signature of `message` by the key of `address`
    /// (P2PKH or P2WPKH), which is what `verifymessage` answers.
    pub fn verifies(&self, address: &Address, message: &[u8]) -> bool {
        match self.recover_key_hash(message) {
            Ok(hash) => address.is_signed_by(&hash),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emercoin::Network;

    // Captured from a real emercoind (fixtures signmessage.ok.json / verifymessage.*).
    const VERIFIER: &str = "emrt1q7380rj7zdyy44z3vzcxn7m3rvf2hx0a8875x92";
    const SIG: &str = "Hwks92Mt5gdg9RfgAdSlwWYYkXaHIQutG0heJqU7BFoxCvXu+vpgw0fXzZI6T7Se8sWB/OMPLdEv+KlBvG/nqBY=";
    const OTHER_SIG: &str = "ILY0zL5nOU1C+U9ScHh4532IAgFRkPrdsLAkEMkcyV4/C9iWmhqXd9nUqLgvjuV4VZLFmYGoNGMd9RANeDsbgwA=";

    #[test]
    fn verifies_signature_made_by_emercoind() {
        let addr = Address::parse(VERIFIER).unwrap();
        let sig = MessageSignature::from_base64(SIG).unwrap();
        assert!(sig.verifies(&addr, b"enum:15551234567:0"));
        // Same signature, another message or another address: false, as verifymessage says.
        assert!(!sig.verifies(&addr, b"enum:15551234567:1"));
        let other = Address::parse("msrJZqre9EsCmVM5FfKpbwxPErdbqAz5PE").unwrap();
        assert!(!sig.verifies(&other, b"enum:15551234567:0"));
        let wrong = MessageSignature::from_base64(OTHER_SIG).unwrap();
        assert!(!wrong.verifies(&addr, b"enum:15551234567:0"));
    }

    #[test]
    fn sign_then_verify_both_address_kinds() {
        for compressed in [true, false] {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            let key = PrivateKey::from_bytes(&bytes, compressed).unwrap();
            for msg in [&b"enum:15551234567:0"[..], b"", &[0xffu8; 300][..]] {
                let sig = MessageSignature::sign(&key, msg);
                let back = MessageSignature::from_base64(&sig.to_base64()).unwrap();
                assert!(back.verifies(&key.p2pkh_address(Network::Regtest), msg));
                if let Some(w) = key.p2wpkh_address(Network::Regtest) {
                    assert!(back.verifies(&w, msg));
                }
                assert!(!back.verifies(&key.p2pkh_address(Network::Regtest), b"other"));
            }
        }
    }

    #[test]
    fn malformed_signatures_are_errors() {
        assert_eq!(MessageSignature::from_base64("not base64!"), Err(SignatureError::Base64));
        assert_eq!(MessageSignature::from_base64("AAAA"), Err(SignatureError::Length(3)));
        let mut raw = [0u8; 65];
        raw[0] = 26;
        assert_eq!(MessageSignature::from_bytes(&raw), Err(SignatureError::Header(26)));
        raw[0] = 31;
        let sig = MessageSignature::from_bytes(&raw).unwrap();
        assert!(sig.recover_key_hash(b"x").is_err());
    }
}
