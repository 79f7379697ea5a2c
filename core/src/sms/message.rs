//! One received SMS as the pipeline carries it: spooled by the hook or the modem
//! reader, sealed for the renter as JSON, shown by the renter's inbox. Its id is
//! derived from where the message came from, so reading the same message twice
//! (a hook re-run, a reconciler pass, a modem re-listing) gives the same id and
//! every stage can drop duplicates.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a message was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// gammu-smsd's RunOnReceive environment (SMS_n_*, DECODED_*).
    GammuEnv,
    /// gammu-smsd's files backend inbox.
    GammuFiles,
    /// gammu-smsd's SQL backend inbox table.
    GammuSql,
    /// Our own AT-modem reader.
    Modem,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sms {
    /// 32 hex digits; see [`Sms::derive_id`].
    pub id: String,
    /// gammu's PhoneID (or the modem's name): which SIM received it. May be empty.
    pub phone_id: String,
    /// The sender: `+4915112345678`, a national number, or an alphanumeric name.
    pub sender: String,
    pub text: String,
    /// 8-bit user data (base64), for messages that carry no text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// The SMSC time stamp (RFC 3339), when the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smsc_time: Option<String>,
    /// When the hook or reader got it (RFC 3339, UTC).
    pub received_at: String,
    /// Parts announced by the message (1 for a single SMS).
    pub parts_expected: u8,
    /// Parts that arrived (fewer when released incomplete).
    pub parts_received: u8,
    pub source: Source,
    /// Labels the provider's `on_sms` hook put on it (docs/hooks.md); none usually.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Sms {
    /// A stable id from the parts of a message's origin that identify it, e.g.
    /// `[phone_id, "files", first inbox file name]` or `[phone_id, "sql", row id,
    /// sender, time]`. SHA-256, first 16 bytes, hex.
    pub fn derive_id(parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p.as_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The id as the 16 bytes a v2 envelope carries.
    pub fn id_bytes(&self) -> Option<[u8; 16]> {
        hex::decode(&self.id).ok()?.try_into().ok()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Sms serialises")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Sms, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_unambiguous() {
        let a = Sms::derive_id(&["modem0", "files", "IN20240102_030405_00_+4915112345678_00.txt"]);
        assert_eq!(a, Sms::derive_id(&["modem0", "files", "IN20240102_030405_00_+4915112345678_00.txt"]));
        assert_eq!(a.len(), 32);
        // Length-prefixed: moving a boundary changes the id.
        assert_ne!(Sms::derive_id(&["ab", "c"]), Sms::derive_id(&["a", "bc"]));
    }

    #[test]
    fn json_round_trip() {
        let m = Sms {
            id: Sms::derive_id(&["x"]),
            phone_id: "sim1".into(),
            sender: "MyBank".into(),
            text: "Код 1234 👋".into(),
            binary: None,
            smsc_time: Some("2024-01-02T03:04:05+01:00".into()),
            received_at: "2024-01-02T02:04:07Z".into(),
            parts_expected: 1,
            parts_received: 1,
            source: Source::GammuFiles,
            tags: Vec::new(),
        };
        let j = m.to_json();
        assert!(String::from_utf8_lossy(&j).contains(r#""source":"gammu-files""#));
        assert!(!String::from_utf8_lossy(&j).contains("binary"));
        assert_eq!(Sms::from_json(&j).unwrap(), m);
        assert_eq!(m.id_bytes().unwrap().len(), 16);
    }
}
