//! Key files: the ptool layout (`{"x25519":{"private","public"},"ed25519":{…}}`, base64url)
//! that ptool's defaults assume, and the layout PrivatenessTools really writes
//! (`users.key.json`: `users.<NAME>.{private,public,verify}`, standard base64, one
//! seed used as both the X25519 and the Ed25519 secret). Fields are addressed by dot
//! paths, as ptool does (`ed25519.private`, `keys.0.private`).
//!
//! Secrets stay secret: files are written 0600, and a file that group or others can
//! read is refused whenever a private key is taken from it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::{Value, json};
use x25519_dalek::{PublicKey as BoxPublic, StaticSecret};

use super::b64u;

/// What a key is for; each has ptool's default field path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRole {
    /// X25519 secret: opens envelopes.
    BoxPrivate,
    /// X25519 public key: envelopes are sealed for it.
    BoxPublic,
    /// Ed25519 seed: signs.
    SignPrivate,
    /// Ed25519 public key: verifies.
    SignPublic,
}

impl KeyRole {
    /// ptool's default field for this role.
    pub fn default_field(self) -> &'static str {
        match self {
            KeyRole::BoxPrivate => "x25519.private",
            KeyRole::BoxPublic => "x25519.public",
            KeyRole::SignPrivate => "ed25519.private",
            KeyRole::SignPublic => "ed25519.public",
        }
    }

    /// The field of the same key in a PrivatenessTools `users.key.json`.
    fn privateness_tools_field(self) -> &'static str {
        match self {
            KeyRole::BoxPrivate | KeyRole::SignPrivate => "private",
            KeyRole::BoxPublic => "public",
            KeyRole::SignPublic => "verify",
        }
    }

    fn is_private(self) -> bool {
        matches!(self, KeyRole::BoxPrivate | KeyRole::SignPrivate)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0} already exists; not overwriting a key file")]
    Exists(PathBuf),
    #[error("key file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("key file {path} is not JSON: {detail}")]
    NotJson { path: PathBuf, detail: String },
    #[error("key file {path} has no field {field}")]
    NoField { path: PathBuf, field: String },
    #[error("field {field} of {path} resolves to an object; need a base64 string")]
    NotAString { path: PathBuf, field: String },
    #[error("field {field} of {path} is not base64: {detail}")]
    NotBase64 { path: PathBuf, field: String, detail: String },
    #[error("{what} must be {expected} bytes, got {got}")]
    Length { what: &'static str, expected: &'static str, got: usize },
    #[error("invalid Ed25519 public key")]
    BadPublicKey,
    #[error("the 64-byte Ed25519 key's second half is not the public key of its seed")]
    MismatchedPair,
}

/// A key file's JSON, with where it came from.
#[derive(Clone, Debug)]
pub struct Keyfile {
    path: PathBuf,
    json: Value,
}

impl Keyfile {
    /// Read a key file. Taking a private key from it later checks its mode.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
        let json = serde_json::from_slice(&bytes)
            .map_err(|e| KeyError::NotJson { path: path.into(), detail: e.to_string() })?;
        Ok(Keyfile { path: path.into(), json })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh key file in the ptool layout with independent X25519 and Ed25519 keys
    /// (PrivatenessTools reuses one seed for both; this does not).
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        let sign = SigningKey::from_bytes(&seed);
        rand::fill(&mut seed);
        let secret = StaticSecret::from(seed);
        let public = BoxPublic::from(&secret);
        seed.fill(0);
        Keyfile {
            path: PathBuf::new(),
            json: json!({
                "x25519": {"private": b64u::encode(secret.as_bytes()), "public": b64u::encode(public.as_bytes())},
                "ed25519": {"private": b64u::encode(&sign.to_bytes()), "public": b64u::encode(sign.verifying_key().as_bytes())},
            }),
        }
    }

    /// Write to a new file, mode 0600 from the start; never overwrites.
    pub fn write_new(&mut self, path: &Path) -> Result<(), KeyError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.into()),
                _ => KeyError::Write { path: path.into(), source },
            })?;
        let mut text = serde_json::to_string_pretty(&self.json).expect("JSON values serialise");
        text.push('\n');
        file.write_all(text.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|source| KeyError::Write { path: path.into(), source })?;
        self.path = path.into();
        Ok(())
    }

    /// The bytes of the field at `path` (dot path; all-digit segments index lists).
    pub fn field(&self, field: &str) -> Result<Vec<u8>, KeyError> {
        let mut v = &self.json;
        for seg in field.split('.') {
            let next = match v {
                Value::Array(items) if seg.bytes().all(|b| b.is_ascii_digit()) && !seg.is_empty() => {
                    seg.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                Value::Object(map) => map.get(seg),
                _ => None,
            };
            v = next.ok_or_else(|| KeyError::NoField { path: self.path.clone(), field: field.into() })?;
        }
        match v {
            Value::String(s) => b64u::decode(s).map_err(|e| KeyError::NotBase64 {
                path: self.path.clone(),
                field: field.into(),
                detail: e.to_string(),
            }),
            _ => Err(KeyError::NotAString { path: self.path.clone(), field: field.into() }),
        }
    }

    /// The key for `role`: from `field` if given, else ptool's default field, else
    /// (for a PrivatenessTools `users.key.json`) the current user's entry.
    pub fn key(&self, role: KeyRole, field: Option<&str>) -> Result<Vec<u8>, KeyError> {
        if role.is_private() {
            self.check_private()?;
        }
        if let Some(f) = field {
            return self.field(f);
        }
        match self.field(role.default_field()) {
            Err(KeyError::NoField { .. }) => {
                if let Some(user) = self.json.get("current").and_then(Value::as_str)
                    && self.json.get("users").and_then(|u| u.get(user)).is_some() {
                        return self.field(&format!("users.{user}.{}", role.privateness_tools_field()));
                    }
                self.field(role.default_field())
            }
            other => other,
        }
    }

    fn check_private(&self) -> Result<(), KeyError> {
        let meta = std::fs::metadata(&self.path).map_err(|source| KeyError::Read { path: self.path.clone(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen { path: self.path.clone(), mode });
        }
        Ok(())
    }
}

/// An X25519 secret from key bytes (exactly 32).
pub fn box_secret(bytes: &[u8]) -> Result<StaticSecret, KeyError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::Length { what: "an X25519 private key", expected: "32", got: bytes.len() })?;
    Ok(StaticSecret::from(arr))
}

/// An X25519 public key from key bytes (exactly 32).
pub fn box_public(bytes: &[u8]) -> Result<BoxPublic, KeyError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::Length { what: "an X25519 public key", expected: "32", got: bytes.len() })?;
    Ok(BoxPublic::from(arr))
}

/// An Ed25519 signing key from 32 seed bytes, or 64 bytes seed ‖ public key (the
/// libsodium layout) whose public half must match the seed.
pub fn sign_secret(bytes: &[u8]) -> Result<SigningKey, KeyError> {
    match bytes.len() {
        32 => Ok(SigningKey::from_bytes(bytes.try_into().expect("32 bytes"))),
        64 => {
            let key = SigningKey::from_bytes(bytes[..32].try_into().expect("32 bytes"));
            if key.verifying_key().as_bytes()[..] != bytes[32..] {
                return Err(KeyError::MismatchedPair);
            }
            Ok(key)
        }
        n => Err(KeyError::Length { what: "an Ed25519 private key", expected: "32 or 64", got: n }),
    }
}

/// An Ed25519 public key from key bytes (exactly 32, a valid point).
pub fn sign_public(bytes: &[u8]) -> Result<VerifyingKey, KeyError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::Length { what: "an Ed25519 public key", expected: "32", got: bytes.len() })?;
    VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::BadPublicKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_private_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.key.json");
        let mut k = Keyfile::generate();
        k.write_new(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(Keyfile::generate().write_new(&path), Err(KeyError::Exists(_))));
        let k = Keyfile::read(&path).unwrap();
        let secret = box_secret(&k.key(KeyRole::BoxPrivate, None).unwrap()).unwrap();
        assert_eq!(BoxPublic::from(&secret).as_bytes().to_vec(), k.key(KeyRole::BoxPublic, None).unwrap());
        let sign = sign_secret(&k.key(KeyRole::SignPrivate, None).unwrap()).unwrap();
        assert_eq!(sign.verifying_key().as_bytes().to_vec(), k.key(KeyRole::SignPublic, None).unwrap());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let k = Keyfile::read(&path).unwrap();
        assert!(matches!(k.key(KeyRole::SignPrivate, None), Err(KeyError::TooOpen { mode: 0o644, .. })));
        assert!(k.key(KeyRole::SignPublic, None).is_ok(), "public keys may be read from any file");
    }

    #[test]
    fn privateness_tools_users_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.key.json");
        let seed = [9u8; 32];
        let sign = SigningKey::from_bytes(&seed);
        let x_pub = BoxPublic::from(&StaticSecret::from(seed));
        use base64::Engine;
        let std64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let doc = json!({
            "filedata": {"vendor": "Privateness", "type": "key", "for": "user"},
            "current": "alice",
            "users": {"alice": {"username": "alice", "private": std64(&seed), "public": std64(x_pub.as_bytes()),
                "verify": std64(sign.verifying_key().as_bytes()), "nonce": std64(&[1u8; 16]), "signatures": {}}}
        });
        std::fs::write(&path, doc.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = Keyfile::read(&path).unwrap();
        assert_eq!(k.key(KeyRole::BoxPrivate, None).unwrap(), seed);
        assert_eq!(k.key(KeyRole::BoxPublic, None).unwrap(), x_pub.as_bytes());
        assert_eq!(k.key(KeyRole::SignPublic, None).unwrap(), sign.verifying_key().as_bytes());
        assert_eq!(k.key(KeyRole::SignPrivate, Some("users.alice.private")).unwrap(), seed);
        assert!(matches!(k.field("users.bob.private"), Err(KeyError::NoField { .. })));
        assert!(matches!(k.field("users.alice"), Err(KeyError::NotAString { .. })));
    }

    #[test]
    fn key_lengths_and_pairs() {
        let seed = [7u8; 32];
        let sk = SigningKey::from_bytes(&seed);
        let mut pair = seed.to_vec();
        pair.extend_from_slice(sk.verifying_key().as_bytes());
        assert_eq!(sign_secret(&pair).unwrap().to_bytes(), seed);
        pair[40] ^= 1;
        assert!(matches!(sign_secret(&pair), Err(KeyError::MismatchedPair)));
        assert!(matches!(sign_secret(&[0u8; 31]), Err(KeyError::Length { got: 31, .. })));
        assert!(matches!(box_public(&[0u8; 33]), Err(KeyError::Length { got: 33, .. })));
    }
}
