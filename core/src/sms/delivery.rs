//! The delivery request: what a provider's forwarder POSTs to a renter's inbox, and
//! the checks the inbox makes before it stores anything.
//!
//! ```json
//! {"version": 2, "message_id": "<32 hex>", "from": "<provider Ed25519 key, b64u>",
//!  "envelope": "<sealed envelope, b64u>", "sig": "<v1 only: ptool signature>"}
//! ```
//!
//! A v2 envelope carries its sender, message id and signature inside, and the inbox
//! checks they agree with the outer fields. A v1 envelope binds nothing, so `sig` is
//! ptool_sign's signature over the envelope's base64url text (`ness verify` checks it
//! too). The inbox answers a valid request with the receipt file's JSON
//! ([`crate::envelope::Receipt`]) for the exact envelope bytes.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::envelope::{SealError, b64u, sign_public, signature, verify_v2};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub version: u8,
    pub message_id: String,
    pub from: String,
    pub envelope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("unknown envelope version {0} (this inbox reads 1 and 2)")]
    Version(u8),
    #[error("message_id must be 32 hex digits")]
    MessageId,
    #[error("`from` is not an Ed25519 public key")]
    From,
    #[error("the envelope is not base64url")]
    Envelope,
    #[error("a v1 delivery needs `sig`, the sender's signature over the envelope text")]
    MissingSig,
    #[error("the sender's signature does not verify")]
    Signature,
    #[error("the v2 envelope: {0}")]
    Sealed(#[from] SealError),
    #[error("the v2 envelope was sealed by another key than `from`")]
    SenderMismatch,
    #[error("the v2 envelope carries another message id")]
    IdMismatch,
}

/// A delivery whose sender has been checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sender: VerifyingKey,
    pub message_id: String,
    pub envelope: Vec<u8>,
}

impl Delivery {
    /// Wrap an envelope for sending. `sig` is required for v1 (see the module docs).
    pub fn new(version: u8, message_id: &str, from: &VerifyingKey, envelope: &[u8], sig: Option<String>) -> Self {
        Delivery {
            version,
            message_id: message_id.to_owned(),
            from: b64u::encode(from.as_bytes()),
            envelope: b64u::encode(envelope),
            sig,
        }
    }

    /// Everything an inbox checks before it stores the envelope.
    pub fn check(&self) -> Result<Checked, DeliveryError> {
        if self.message_id.len() != 32 || !self.message_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DeliveryError::MessageId);
        }
        let sender = b64u::decode(&self.from).ok().and_then(|k| sign_public(&k).ok()).ok_or(DeliveryError::From)?;
        let envelope = b64u::decode(&self.envelope).map_err(|_| DeliveryError::Envelope)?;
        match self.version {
            1 => {
                let sig = self.sig.as_deref().ok_or(DeliveryError::MissingSig)?;
                signature::verify(&sender, self.envelope.as_bytes(), sig).map_err(|_| DeliveryError::Signature)?;
            }
            2 => {
                let header = verify_v2(&envelope)?;
                if &header.sender != sender.as_bytes() {
                    return Err(DeliveryError::SenderMismatch);
                }
                if !hex::encode(header.message_id).eq_ignore_ascii_case(&self.message_id) {
                    return Err(DeliveryError::IdMismatch);
                }
            }
            v => return Err(DeliveryError::Version(v)),
        }
        Ok(Checked { sender, message_id: self.message_id.to_ascii_lowercase(), envelope })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{seal_v1, seal_v2, sign};
    use ed25519_dalek::SigningKey;
    use x25519_dalek::{PublicKey, StaticSecret};

    fn keys() -> (SigningKey, PublicKey) {
        (SigningKey::from_bytes(&[7; 32]), PublicKey::from(&StaticSecret::from([9; 32])))
    }

    #[test]
    fn v2_deliveries_check_sender_and_id() {
        let (provider, renter) = keys();
        let id = [0xab; 16];
        let env = seal_v2(&provider, &renter, id, 1, b"hi").unwrap();
        let d = Delivery::new(2, &hex::encode(id), &provider.verifying_key(), &env, None);
        let checked = d.check().unwrap();
        assert_eq!(checked.envelope, env);
        assert_eq!(checked.sender, provider.verifying_key());

        let other = Delivery { message_id: hex::encode([0xcd; 16]), ..d.clone() };
        assert!(matches!(other.check(), Err(DeliveryError::IdMismatch)));
        let stranger = SigningKey::from_bytes(&[8; 32]);
        let claimed = Delivery { from: b64u::encode(stranger.verifying_key().as_bytes()), ..d.clone() };
        assert!(matches!(claimed.check(), Err(DeliveryError::SenderMismatch)));
        let mut bytes = env.clone();
        bytes[100] ^= 1;
        let tampered = Delivery { envelope: b64u::encode(&bytes), ..d };
        assert!(matches!(tampered.check(), Err(DeliveryError::Sealed(SealError::BadSignature))));
    }

    #[test]
    fn v1_deliveries_need_the_ptool_signature() {
        let (provider, renter) = keys();
        let env = seal_v1(&renter, b"hi").unwrap();
        let text = b64u::encode(&env);
        let sig = sign(&provider, text.as_bytes());
        let d = Delivery::new(1, &"0".repeat(32), &provider.verifying_key(), &env, Some(sig));
        assert!(d.check().is_ok());
        assert!(matches!(Delivery { sig: None, ..d.clone() }.check(), Err(DeliveryError::MissingSig)));
        let wrong = sign(&provider, b"something else");
        assert!(matches!(Delivery { sig: Some(wrong), ..d.clone() }.check(), Err(DeliveryError::Signature)));
        assert!(matches!(Delivery { version: 3, ..d }.check(), Err(DeliveryError::Version(3))));
    }
}
