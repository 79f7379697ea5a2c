//! Signed delivery receipts, as ptool_receipt writes them: a JSON object
//! `{from, msg_hash, sig, to, ts}` where `msg_hash` is base64url(SHA-256(binary
//! envelope)), `to` is a key string or `{"listing": id}`, `ts` is Python's
//! `datetime.now(UTC).isoformat()`, and `sig` is Ed25519 over the canonical dump of
//! the other four (`json.dumps(sort_keys=True, separators=(",",":"), ensure_ascii=True)`).
//! The file is the same canonical dump with `sig`, no trailing newline.
//!
//! ptool has no verifier; [`Receipt::verify`] is ours. It also insists that `from`
//! is the signer's key (ptool never checks).

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::b64u;
use super::keyfile::{KeyError, sign_public};
use super::signature::{self, SignatureError};

/// Who a receipt is addressed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiptTo {
    /// A public key string, kept verbatim.
    Key(String),
    /// `{"listing": id}`.
    Listing(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The issuer's Ed25519 public key, as given (verbatim).
    pub from: String,
    pub msg_hash: String,
    pub to: ReceiptTo,
    pub ts: String,
    pub sig: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("the receipt is not JSON: {0}")]
    NotJson(String),
    #[error("the receipt has no string field {0}")]
    Missing(&'static str),
    #[error("the receipt's issuer key: {0}")]
    IssuerKey(#[from] KeyError),
    #[error("the receipt's issuer key is not the key that signs it")]
    IssuerMismatch,
    #[error("the receipt's signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("the receipt is for another envelope")]
    OtherEnvelope,
    #[error("the receipt was issued by another key")]
    OtherIssuer,
}

/// base64url(SHA-256(envelope bytes)), 43 characters.
pub fn msg_hash(envelope: &[u8]) -> String {
    b64u::encode(&Sha256::digest(envelope))
}

/// `datetime.now(timezone.utc).isoformat()` for `t`: microseconds, omitted when zero.
pub fn python_isoformat(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.microsecond() != 0 {
        s.push_str(&format!(".{:06}", t.microsecond()));
    }
    s.push_str("+00:00");
    s
}

impl Receipt {
    /// Issue a receipt for `envelope` (binary), signed by `issuer`. `from` is written
    /// verbatim; it must decode to the issuer's public key.
    pub fn issue(
        issuer: &SigningKey,
        from: &str,
        to: ReceiptTo,
        envelope: &[u8],
        ts: OffsetDateTime,
    ) -> Result<Receipt, ReceiptError> {
        let claimed = sign_public(&b64u::decode(from).map_err(|_| ReceiptError::IssuerMismatch)?)?;
        if claimed != issuer.verifying_key() {
            return Err(ReceiptError::IssuerMismatch);
        }
        let mut r = Receipt { from: from.into(), msg_hash: msg_hash(envelope), to, ts: python_isoformat(ts), sig: String::new() };
        r.sig = signature::sign(issuer, r.canonical(false).as_bytes());
        Ok(r)
    }

    fn to_value(&self, with_sig: bool) -> Value {
        let mut m = Map::new();
        m.insert("from".into(), Value::String(self.from.clone()));
        m.insert("msg_hash".into(), Value::String(self.msg_hash.clone()));
        if with_sig {
            m.insert("sig".into(), Value::String(self.sig.clone()));
        }
        m.insert(
            "to".into(),
            match &self.to {
                ReceiptTo::Key(k) => Value::String(k.clone()),
                ReceiptTo::Listing(id) => {
                    let mut l = Map::new();
                    l.insert("listing".into(), Value::String(id.clone()));
                    Value::Object(l)
                }
            },
        );
        m.insert("ts".into(), Value::String(self.ts.clone()));
        Value::Object(m)
    }

    /// The canonical text: what is signed (without `sig`) and what the file holds.
    pub fn canonical(&self, with_sig: bool) -> String {
        let mut out = String::new();
        python_json(&self.to_value(with_sig), &mut out);
        out
    }

    /// Read a receipt file's text.
    pub fn parse(text: &str) -> Result<Receipt, ReceiptError> {
        let v: Value = serde_json::from_str(text).map_err(|e| ReceiptError::NotJson(e.to_string()))?;
        let s = |k: &'static str| v.get(k).and_then(Value::as_str).map(str::to_owned).ok_or(ReceiptError::Missing(k));
        let to = match v.get("to") {
            Some(Value::String(k)) => ReceiptTo::Key(k.clone()),
            Some(Value::Object(o)) => ReceiptTo::Listing(
                o.get("listing").and_then(Value::as_str).ok_or(ReceiptError::Missing("to.listing"))?.to_owned(),
            ),
            _ => return Err(ReceiptError::Missing("to")),
        };
        Ok(Receipt { from: s("from")?, msg_hash: s("msg_hash")?, to, ts: s("ts")?, sig: s("sig")? })
    }

    /// The issuer's key, checked against the signature.
    pub fn verify(&self) -> Result<VerifyingKey, ReceiptError> {
        let key = sign_public(&b64u::decode(&self.from).map_err(|_| ReceiptError::Missing("from"))?)?;
        signature::verify(&key, self.canonical(false).as_bytes(), &self.sig)?;
        Ok(key)
    }

    /// A valid receipt for exactly `envelope`, issued by `issuer`.
    pub fn verify_for(&self, issuer: &VerifyingKey, envelope: &[u8]) -> Result<(), ReceiptError> {
        let key = self.verify()?;
        if &key != issuer {
            return Err(ReceiptError::OtherIssuer);
        }
        if self.msg_hash != msg_hash(envelope) {
            return Err(ReceiptError::OtherEnvelope);
        }
        Ok(())
    }
}

/// Python's `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
pub fn python_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => python_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // Python sorts str keys by code point; UTF-8 byte order is the same.
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                python_str(k, out);
                out.push(':');
                python_json(&map[*k], out);
            }
            out.push('}');
        }
    }
}

fn python_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const ENVELOPE: &str = "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9_AsrhtHHygoaKjpKWmp6ipqqssOZXG1OH_as8u1odHLB97dG7zk9ScW5foqtm_XVKz-9ncvRc";

    #[test]
    fn ptool_vector() {
        // shared/docs/privatenumer-compat.md B2.8
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let env = b64u::decode(ENVELOPE).unwrap();
        let r = Receipt::issue(
            &key,
            "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw",
            ReceiptTo::Listing("LISTING123".into()),
            &env,
            datetime!(2026-11-21 21:59:59.973692 UTC),
        )
        .unwrap();
        let expected = r#"{"from":"6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw","msg_hash":"fAhKbWzklyPWeAOK-gDGuTXiQEZfdnKi-VxLdRwfE-A","sig":"C5uBao5vR1jCjlTOo-d-yOPdqafIbIyJKFjGL-V-Yltr-OoRicBUTrBMhbrZQUEFQN-0mQjibsVv4Qy0kGNsAQ","to":{"listing":"LISTING123"},"ts":"2026-11-21T21:59:59.973692+00:00"}"#;
        assert_eq!(r.canonical(true), expected);
        let back = Receipt::parse(expected).unwrap();
        back.verify_for(&key.verifying_key(), &env).unwrap();
        assert!(matches!(back.verify_for(&key.verifying_key(), b"other"), Err(ReceiptError::OtherEnvelope)));
        let mut forged = back.clone();
        forged.ts = "2026-11-21T22:00:00+00:00".into();
        assert!(matches!(forged.verify(), Err(ReceiptError::Signature(_))));
    }

    #[test]
    fn isoformat_and_escapes() {
        assert_eq!(python_isoformat(datetime!(2026-01-02 03:04:05 UTC)), "2026-01-02T03:04:05+00:00");
        assert_eq!(python_isoformat(datetime!(2026-01-02 03:04:05.000001 UTC)), "2026-01-02T03:04:05.000001+00:00");
        let mut s = String::new();
        python_json(&serde_json::json!({"b": "é👋\u{1}\"\\\u{7f}", "a": [1, null, true]}), &mut s);
        assert_eq!(s, r#"{"a":[1,null,true],"b":"\u00e9\ud83d\udc4b\u0001\"\\"#.to_owned() + "\u{7f}\"}");
    }

    #[test]
    fn issuer_must_be_the_signer() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let other = b64u::encode(SigningKey::from_bytes(&[8u8; 32]).verifying_key().as_bytes());
        let r = Receipt::issue(&key, &other, ReceiptTo::Key("x".into()), b"e", OffsetDateTime::now_utc());
        assert!(matches!(r, Err(ReceiptError::IssuerMismatch)));
    }
}
