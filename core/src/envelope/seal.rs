//! Sealed envelopes: X25519 + HKDF-SHA256 + ChaCha20-Poly1305.
//!
//! **v1** is ptool_encrypt's format, byte for byte: `epk(32) ‖ nonce(12) ‖ ct ‖ tag(16)`,
//! key = HKDF-SHA256(salt absent, X25519(eph, recipient), info `privateness-sms-v1`),
//! empty AAD. It binds nothing: no sender, recipient, message id or time, and its
//! authenticity rests on a separate signature over its base64url text.
//!
//! **v2** fixes that and says what it is:
//! `"NESS" 0x02 ‖ sender Ed25519 key(32) ‖ recipient X25519 key(32) ‖ message id(16) ‖
//! time ms (u64 BE) ‖ epk(32) ‖ nonce(12) ‖ ct ‖ tag(16) ‖ Ed25519 signature(64)`.
//! Everything before the ciphertext is the AEAD's associated data, the key is
//! HKDF-SHA256(salt = epk ‖ recipient key, info `privateness-sms-v2`), and the
//! signature covers every byte before it. [`open`] reads both.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey as BoxPublic, StaticSecret};

pub const V1_INFO: &[u8] = b"privateness-sms-v1";
pub const V2_INFO: &[u8] = b"privateness-sms-v2";
/// Bytes a v1 envelope adds to its plaintext.
pub const V1_OVERHEAD: usize = 32 + 12 + 16;
/// The first bytes of every v2 envelope.
pub const V2_MAGIC: &[u8; 5] = b"NESS\x02";
const V2_HEADER: usize = 5 + 32 + 32 + 16 + 8 + 32 + 12;
/// Bytes a v2 envelope adds to its plaintext.
pub const V2_OVERHEAD: usize = V2_HEADER + 16 + 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("invalid envelope length ({0} bytes; a v1 envelope has at least 60)")]
    TooShort(usize),
    #[error("the key is a low-order point: no shared secret can be computed")]
    LowOrderKey,
    #[error("the envelope was not sealed for this key, or it was altered")]
    Decrypt,
    #[error("the envelope is sealed for another recipient")]
    WrongRecipient,
    #[error("the sender's signature inside the envelope does not verify")]
    BadSignature,
    #[error("the sender key inside the envelope is not a valid Ed25519 key")]
    BadSenderKey,
}

/// What [`open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// 1 or 2.
    pub version: u8,
    pub plaintext: Vec<u8>,
    /// v2 only: the sender's Ed25519 key (its signature has been checked).
    pub sender: Option<[u8; 32]>,
    /// v2 only.
    pub message_id: Option<[u8; 16]>,
    /// v2 only: milliseconds since the Unix epoch.
    pub time_ms: Option<u64>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b);
    b
}

fn shared_key(secret: &StaticSecret, public: &BoxPublic, salt: Option<&[u8]>, info: &[u8]) -> Result<Key, SealError> {
    let shared = secret.diffie_hellman(public);
    if !shared.was_contributory() {
        return Err(SealError::LowOrderKey);
    }
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(salt, shared.as_bytes())
        .expand(info, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    Ok(Key::from(key))
}

/// Seal `plaintext` for `recipient` in the v1 (ptool) format.
pub fn seal_v1(recipient: &BoxPublic, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    seal_v1_with(random(), random(), recipient, plaintext)
}

/// v1 with given ephemeral secret and nonce (for test vectors).
pub fn seal_v1_with(
    mut eph: [u8; 32],
    nonce: [u8; 12],
    recipient: &BoxPublic,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    // ptool clamps the ephemeral secret; X25519 clamps anyway.
    eph[0] &= 248;
    eph[31] &= 127;
    eph[31] |= 64;
    let secret = StaticSecret::from(eph);
    let epk = BoxPublic::from(&secret);
    let key = shared_key(&secret, recipient, None, V1_INFO)?;
    let ct = ChaCha20Poly1305::new(&key)
        .encrypt(&Nonce::from(nonce), plaintext)
        .expect("ChaCha20-Poly1305 encrypts any length we can hold");
    let mut out = Vec::with_capacity(V1_OVERHEAD + plaintext.len());
    out.extend_from_slice(epk.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Open a v1 envelope.
pub fn open_v1(secret: &StaticSecret, envelope: &[u8]) -> Result<Vec<u8>, SealError> {
    if envelope.len() < V1_OVERHEAD {
        return Err(SealError::TooShort(envelope.len()));
    }
    let epk = BoxPublic::from(<[u8; 32]>::try_from(&envelope[..32]).expect("32 bytes"));
    let nonce = Nonce::from(<[u8; 12]>::try_from(&envelope[32..44]).expect("12 bytes"));
    let key = shared_key(secret, &epk, None, V1_INFO)?;
    ChaCha20Poly1305::new(&key).decrypt(&nonce, &envelope[44..]).map_err(|_| SealError::Decrypt)
}

/// Seal `plaintext` for `recipient` in the v2 format, signed by `sender`.
pub fn seal_v2(
    sender: &SigningKey,
    recipient: &BoxPublic,
    message_id: [u8; 16],
    time_ms: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let secret = StaticSecret::from(random::<32>());
    let epk = BoxPublic::from(&secret);
    let nonce: [u8; 12] = random();
    let mut out = Vec::with_capacity(V2_OVERHEAD + plaintext.len());
    out.extend_from_slice(V2_MAGIC);
    out.extend_from_slice(sender.verifying_key().as_bytes());
    out.extend_from_slice(recipient.as_bytes());
    out.extend_from_slice(&message_id);
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.extend_from_slice(epk.as_bytes());
    out.extend_from_slice(&nonce);
    debug_assert_eq!(out.len(), V2_HEADER);
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(epk.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let key = shared_key(&secret, recipient, Some(&salt), V2_INFO)?;
    let ct = ChaCha20Poly1305::new(&key)
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &out })
        .expect("ChaCha20-Poly1305 encrypts any length we can hold");
    out.extend_from_slice(&ct);
    let sig = sender.sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    Ok(out)
}

/// Open a v2 envelope: check it is for us, check the sender's signature, decrypt.
pub fn open_v2(secret: &StaticSecret, envelope: &[u8]) -> Result<Opened, SealError> {
    if envelope.len() < V2_OVERHEAD || !envelope.starts_with(V2_MAGIC) {
        return Err(SealError::TooShort(envelope.len()));
    }
    let field = |from: usize, len: usize| &envelope[from..from + len];
    let sender = <[u8; 32]>::try_from(field(5, 32)).expect("32 bytes");
    let recipient = <[u8; 32]>::try_from(field(37, 32)).expect("32 bytes");
    let message_id = <[u8; 16]>::try_from(field(69, 16)).expect("16 bytes");
    let time_ms = u64::from_be_bytes(field(85, 8).try_into().expect("8 bytes"));
    let epk = <[u8; 32]>::try_from(field(93, 32)).expect("32 bytes");
    let nonce = <[u8; 12]>::try_from(field(125, 12)).expect("12 bytes");

    if BoxPublic::from(secret).as_bytes() != &recipient {
        return Err(SealError::WrongRecipient);
    }
    let (signed, sig) = envelope.split_at(envelope.len() - 64);
    let sender_key = VerifyingKey::from_bytes(&sender).map_err(|_| SealError::BadSenderKey)?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    sender_key.verify(signed, &sig).map_err(|_| SealError::BadSignature)?;

    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&epk);
    salt[32..].copy_from_slice(&recipient);
    let key = shared_key(secret, &BoxPublic::from(epk), Some(&salt), V2_INFO)?;
    let plaintext = ChaCha20Poly1305::new(&key)
        .decrypt(&Nonce::from(nonce), Payload { msg: &signed[V2_HEADER..], aad: &signed[..V2_HEADER] })
        .map_err(|_| SealError::Decrypt)?;
    Ok(Opened { version: 2, plaintext, sender: Some(sender), message_id: Some(message_id), time_ms: Some(time_ms) })
}

/// The clear header of a v2 envelope, after its signature has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Header {
    pub sender: [u8; 32],
    pub recipient: [u8; 32],
    pub message_id: [u8; 16],
    pub time_ms: u64,
}

/// Check a v2 envelope's signature without the recipient's key (a relay or an
/// inbox that stores envelopes sealed), and return its clear header.
pub fn verify_v2(envelope: &[u8]) -> Result<V2Header, SealError> {
    if envelope.len() < V2_OVERHEAD || !envelope.starts_with(V2_MAGIC) {
        return Err(SealError::TooShort(envelope.len()));
    }
    let field = |from: usize, len: usize| &envelope[from..from + len];
    let header = V2Header {
        sender: field(5, 32).try_into().expect("32 bytes"),
        recipient: field(37, 32).try_into().expect("32 bytes"),
        message_id: field(69, 16).try_into().expect("16 bytes"),
        time_ms: u64::from_be_bytes(field(85, 8).try_into().expect("8 bytes")),
    };
    let (signed, sig) = envelope.split_at(envelope.len() - 64);
    let sender_key = VerifyingKey::from_bytes(&header.sender).map_err(|_| SealError::BadSenderKey)?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    sender_key.verify(signed, &sig).map_err(|_| SealError::BadSignature)?;
    Ok(header)
}

/// Open an envelope of either version (v2 is recognised by its first bytes).
pub fn open(secret: &StaticSecret, envelope: &[u8]) -> Result<Opened, SealError> {
    if envelope.starts_with(V2_MAGIC) && envelope.len() >= V2_OVERHEAD {
        match open_v2(secret, envelope) {
            Ok(o) => return Ok(o),
            // One v1 envelope in 2^40 starts with the v2 magic: try it as v1 too.
            Err(e) => return open_v1(secret, envelope).map(v1).map_err(|_| e),
        }
    }
    open_v1(secret, envelope).map(v1)
}

fn v1(plaintext: Vec<u8>) -> Opened {
    Opened { version: 1, plaintext, sender: None, message_id: None, time_ms: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::b64u;

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// shared/docs/privatenumer-compat.md B2.8, produced by the real ptool scripts.
    #[test]
    fn ptool_vectors() {
        let recipient_secret = StaticSecret::from([0x42u8; 32]);
        let recipient = BoxPublic::from(&recipient_secret);
        assert_eq!(recipient.as_bytes(), &hex32("132c442be010fbd57e72603328aa76e71fccc1503aae219327d14d9c9993f472"));
        assert_eq!(b64u::encode(recipient.as_bytes()), "EyxEK-AQ-9V-cmAzKKp25x_MwVA6riGTJ9FNnJmT9HI");

        let eph: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
        let nonce: [u8; 12] = hex::decode("a0a1a2a3a4a5a6a7a8a9aaab").unwrap().try_into().unwrap();
        let env = seal_v1_with(eph, nonce, &recipient, b"Telegram code: 12345").unwrap();
        assert_eq!(hex::encode(&env[..32]), "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c");
        assert_eq!(hex::encode(&env[44..]), "2c3995c6d4e1ff6acf2ed687472c1f7b746ef393d49c5b97e8aad9bf5d52b3fbd9dcbd17");
        let text = b64u::encode(&env);
        assert_eq!(
            text,
            "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9_AsrhtHHygoaKjpKWmp6ipqqssOZXG1OH_as8u1odHLB97dG7zk9ScW5foqtm_XVKz-9ncvRc"
        );
        assert_eq!(open_v1(&recipient_secret, &env).unwrap(), b"Telegram code: 12345");
        let opened = open(&recipient_secret, &b64u::decode(&text).unwrap()).unwrap();
        assert_eq!((opened.version, opened.plaintext.as_slice()), (1, &b"Telegram code: 12345"[..]));
    }

    #[test]
    fn v1_rejects_damage_and_low_order_keys() {
        let secret = StaticSecret::from([5u8; 32]);
        let env = seal_v1(&BoxPublic::from(&secret), b"x").unwrap();
        assert_eq!(env.len(), 61);
        let mut bad = env.clone();
        bad[50] ^= 1;
        assert_eq!(open_v1(&secret, &bad), Err(SealError::Decrypt));
        assert_eq!(open_v1(&StaticSecret::from([6u8; 32]), &env), Err(SealError::Decrypt));
        assert_eq!(open_v1(&secret, &env[..59]), Err(SealError::TooShort(59)));
        let mut low = env.clone();
        low[..32].fill(0); // the all-zero point: no contributory secret
        assert_eq!(open_v1(&secret, &low), Err(SealError::LowOrderKey));
        assert_eq!(seal_v1(&BoxPublic::from([0u8; 32]), b"x"), Err(SealError::LowOrderKey));
    }

    #[test]
    fn v2_binds_sender_recipient_id_and_time() {
        let recipient_secret = StaticSecret::from([1u8; 32]);
        let recipient = BoxPublic::from(&recipient_secret);
        let sender = SigningKey::from_bytes(&[2u8; 32]);
        let env = seal_v2(&sender, &recipient, [3u8; 16], 1_700_000_000_123, "Привет 👋".as_bytes()).unwrap();
        assert_eq!(env.len(), V2_OVERHEAD + "Привет 👋".len());
        let o = open(&recipient_secret, &env).unwrap();
        assert_eq!(o.version, 2);
        assert_eq!(o.plaintext, "Привет 👋".as_bytes());
        assert_eq!(o.sender, Some(*sender.verifying_key().as_bytes()));
        assert_eq!((o.message_id, o.time_ms), (Some([3u8; 16]), Some(1_700_000_000_123)));

        // Any changed byte is caught: the header by the signature (and the AEAD).
        for i in [5, 40, 70, 90, 100, 130, V2_HEADER + 1, env.len() - 1] {
            let mut bad = env.clone();
            bad[i] ^= 0x80;
            assert!(open(&recipient_secret, &bad).is_err(), "byte {i}");
        }
        // Re-signed by someone else with the header intact: the sender changes, so
        // the caller sees who signed; a swapped sender key without re-signing fails.
        let mut swapped = env.clone();
        swapped[5..37].copy_from_slice(SigningKey::from_bytes(&[9u8; 32]).verifying_key().as_bytes());
        assert_eq!(open(&recipient_secret, &swapped), Err(SealError::BadSignature));
        assert_eq!(open(&StaticSecret::from([4u8; 32]), &env), Err(SealError::WrongRecipient));
    }
}
