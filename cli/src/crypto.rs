//! `ness keygen|pubkey|seal|open|sign|verify|receipt|receipt-verify|conf`: the
//! privatenumer `ptool_*` tools, one command each, with their flags, inputs and
//! outputs (base64url text without a trailing newline; exit 0 / 1 / 2), plus a key
//! generator, a receipt verifier and the v2 envelope.

use std::path::{Path, PathBuf};

use clap::Args;
use ness_core::envelope::{
    self, KeyRole, Keyfile, Receipt, ReceiptTo, b64u, box_public, box_secret, sign_public, sign_secret,
};
use serde_json::json;

use crate::{Failure, Output};

/// A key given inline or from a key file: `--<p>-b64` or `--<p>-keyfile` [+ `--<p>-field`].
macro_rules! key_source {
    ($name:ident, $b64:literal, $file:literal, $what:literal) => {
        #[derive(Args, Debug)]
        #[group(required = true, multiple = false)]
        pub struct $name {
            #[doc = concat!($what, ", base64url")]
            #[arg(long = $b64, id = $b64, value_name = "B64U")]
            pub b64: Option<String>,
            #[doc = concat!($what, " from this key file")]
            #[arg(long = $file, id = $file, value_name = "PATH")]
            pub keyfile: Option<PathBuf>,
        }
    };
}

key_source!(PeerPub, "peer-pub-b64", "peer-pub-keyfile", "The recipient's X25519 public key");
key_source!(BoxPriv, "priv-b64", "priv-keyfile", "The X25519 private key");
key_source!(SignPriv, "priv-b64", "priv-keyfile", "The Ed25519 private key (seed, or seed+public)");
key_source!(SignPub, "pub-b64", "pub-keyfile", "The Ed25519 public key");
key_source!(FromPriv, "from-priv-b64", "from-priv-keyfile", "The issuer's Ed25519 private key");
key_source!(FromPub, "from-pub-b64", "from-pub-keyfile", "The issuer's Ed25519 public key");

fn key_bytes(b64: &Option<String>, keyfile: &Option<PathBuf>, field: &Option<String>, role: KeyRole) -> Result<Vec<u8>, Failure> {
    match (b64, keyfile) {
        (Some(t), _) => b64u::decode(t).map_err(|e| Failure::error(e.to_string())),
        (None, Some(path)) => Keyfile::read(path)
            .and_then(|k| k.key(role, field.as_deref()))
            .map_err(|e| Failure::error(e.to_string())),
        (None, None) => Err(Failure::usage("a key is required")),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::error(format!("cannot read {}: {e}", path.display())))
}

fn read_text(path: &Path) -> Result<String, Failure> {
    String::from_utf8(read(path)?).map_err(|_| Failure::error(format!("{} is not UTF-8 text", path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::error(format!("cannot write {}: {e}", path.display())))
}

// ---- keygen / pubkey ---------------------------------------------------------

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// The new key file (written 0600; an existing file is never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn keygen(a: KeygenArgs, out: &Output) -> Result<(), Failure> {
    let mut k = Keyfile::generate();
    k.write_new(&a.out).map_err(|e| Failure::error(e.to_string()))?;
    let x = b64u::encode(&k.key(KeyRole::BoxPublic, None).map_err(|e| Failure::error(e.to_string()))?);
    let e = b64u::encode(&k.key(KeyRole::SignPublic, None).map_err(|e| Failure::error(e.to_string()))?);
    if out.json {
        out.json_value(&json!({"keyfile": a.out, "x25519": x, "ed25519": e}));
    } else {
        println!("key file {} written (mode 0600)\nx25519 public: {x}\ned25519 public: {e}", a.out.display());
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct PubkeyArgs {
    /// Key file to read (ptool layout or PrivatenessTools users.key.json).
    #[arg(long)]
    pub keyfile: PathBuf,
    /// Print only the X25519 key (the one others seal for).
    #[arg(long, conflicts_with = "ed25519")]
    pub x25519: bool,
    /// Print only the Ed25519 key (the one that verifies your signatures).
    #[arg(long)]
    pub ed25519: bool,
    /// Also write a public key file to give to others (ptool layout, public keys
    /// only; e.g. a provider's forwarder route `renter_keyfile`). Never overwrites.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The public keys of a key file, derived from its private keys (so a file whose
/// public fields were edited cannot mislead).
pub fn pubkey(a: PubkeyArgs, out: &Output) -> Result<(), Failure> {
    let k = Keyfile::read(&a.keyfile).map_err(|e| Failure::error(e.to_string()))?;
    let err = |e: envelope::KeyError| Failure::error(e.to_string());
    let x = box_secret(&k.key(KeyRole::BoxPrivate, None).map_err(err)?).map_err(err)?;
    let x = b64u::encode(x25519_public(&x).as_bytes());
    let e = sign_secret(&k.key(KeyRole::SignPrivate, None).map_err(err)?).map_err(err)?;
    let e = b64u::encode(e.verifying_key().as_bytes());
    if let Some(path) = &a.out {
        let text = serde_json::to_string_pretty(&json!({"x25519": {"public": x}, "ed25519": {"public": e}}))
            .expect("JSON values serialise");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|err| Failure::error(format!("cannot create {}: {err}", path.display())))?;
        use std::io::Write;
        f.write_all(format!("{text}\n").as_bytes())
            .map_err(|err| Failure::error(format!("cannot write {}: {err}", path.display())))?;
    }
    if a.x25519 {
        println!("{x}");
    } else if a.ed25519 {
        println!("{e}");
    } else if out.json {
        out.json_value(&json!({"x25519": x, "ed25519": e}));
    } else {
        println!("x25519: {x}\ned25519: {e}");
    }
    Ok(())
}

fn x25519_public(s: &x25519_dalek::StaticSecret) -> x25519_dalek::PublicKey {
    x25519_dalek::PublicKey::from(s)
}

// ---- seal / open ---------------------------------------------------------------

#[derive(Args, Debug)]
pub struct SealArgs {
    #[command(flatten)]
    pub peer: PeerPub,
    /// Field of the recipient's key file (default x25519.public).
    #[arg(long)]
    pub peer_pub_field: Option<String>,
    /// Plaintext file.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Envelope file (base64url text).
    #[arg(long)]
    pub out: PathBuf,
    /// Envelope version: 1 (ptool) or 2 (binds sender, recipient, id and time; needs --sign-keyfile).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub version: u8,
    /// v2: the sender's key file (its Ed25519 key signs the envelope).
    #[arg(long)]
    pub sign_keyfile: Option<PathBuf>,
    /// v2: the message id (32 hex digits; random if absent).
    #[arg(long)]
    pub message_id: Option<String>,
}

pub fn seal(a: SealArgs) -> Result<(), Failure> {
    let peer = key_bytes(&a.peer.b64, &a.peer.keyfile, &a.peer_pub_field, KeyRole::BoxPublic)?;
    let peer = box_public(&peer).map_err(|e| Failure::error(e.to_string()))?;
    let plaintext = read(&a.input)?;
    let env = match a.version {
        1 => envelope::seal_v1(&peer, &plaintext),
        _ => {
            let path = a.sign_keyfile.as_ref().ok_or_else(|| Failure::usage("--version 2 needs --sign-keyfile"))?;
            let k = Keyfile::read(path).map_err(|e| Failure::error(e.to_string()))?;
            let sk = sign_secret(&k.key(KeyRole::SignPrivate, None).map_err(|e| Failure::error(e.to_string()))?)
                .map_err(|e| Failure::error(e.to_string()))?;
            let id = match &a.message_id {
                Some(h) => hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .ok_or_else(|| Failure::usage("--message-id must be 32 hex digits"))?,
                None => {
                    let mut id = [0u8; 16];
                    rand::fill(&mut id);
                    id
                }
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            envelope::seal_v2(&sk, &peer, id, now, &plaintext)
        }
    }
    .map_err(|e| Failure::error(e.to_string()))?;
    write(&a.out, b64u::encode(&env).as_bytes())
}

#[derive(Args, Debug)]
pub struct OpenArgs {
    #[command(flatten)]
    pub key: BoxPriv,
    /// Field of the key file (default x25519.private).
    #[arg(long)]
    pub priv_field: Option<String>,
    /// Envelope file (base64url text, v1 or v2).
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Plaintext file.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn open(a: OpenArgs, out: &Output) -> Result<(), Failure> {
    let secret = key_bytes(&a.key.b64, &a.key.keyfile, &a.priv_field, KeyRole::BoxPrivate)?;
    let secret = box_secret(&secret).map_err(|e| Failure::error(e.to_string()))?;
    let env = b64u::decode(&read_text(&a.input)?).map_err(|e| Failure::error(e.to_string()))?;
    let opened = envelope::open(&secret, &env).map_err(|e| Failure::error(e.to_string()))?;
    write(&a.out, &opened.plaintext)?;
    if out.json {
        out.json_value(&json!({
            "version": opened.version,
            "sender": opened.sender.map(|s| b64u::encode(&s)),
            "message_id": opened.message_id.map(hex::encode),
            "time_ms": opened.time_ms,
        }));
    }
    Ok(())
}

// ---- sign / verify ---------------------------------------------------------------

#[derive(Args, Debug)]
pub struct SignArgs {
    #[command(flatten)]
    pub key: SignPriv,
    /// Field of the key file (default ed25519.private).
    #[arg(long)]
    pub priv_field: Option<String>,
    /// The file whose exact bytes are signed.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Signature file (86 base64url characters).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn sign(a: SignArgs) -> Result<(), Failure> {
    let key = key_bytes(&a.key.b64, &a.key.keyfile, &a.priv_field, KeyRole::SignPrivate)?;
    let key = sign_secret(&key).map_err(|e| Failure::error(e.to_string()))?;
    write(&a.out, envelope::sign(&key, &read(&a.input)?).as_bytes())
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub key: SignPub,
    /// Field of the key file (default ed25519.public).
    #[arg(long)]
    pub pub_field: Option<String>,
    /// The signed file.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// The signature file.
    #[arg(long)]
    pub sig: PathBuf,
}

/// Exit 0 if the signature is valid, 1 otherwise; prints nothing (as ptool_verify),
/// unless `--json`.
pub fn verify(a: VerifyArgs, out: &Output) -> Result<(), Failure> {
    let key = key_bytes(&a.key.b64, &a.key.keyfile, &a.pub_field, KeyRole::SignPublic)?;
    let key = sign_public(&key).map_err(|e| Failure::quiet_if(!out.json, e.to_string()))?;
    let result = envelope::verify(&key, &read(&a.input)?, &read_text(&a.sig)?);
    if out.json {
        out.json_value(&json!({"valid": result.is_ok(), "error": result.as_ref().err().map(|e| e.to_string())}));
    }
    result.map_err(|e| Failure::quiet_if(true, e.to_string()))
}

// ---- receipts -------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct ReceiptArgs {
    #[command(flatten)]
    pub from_priv: FromPriv,
    #[arg(long)]
    pub from_priv_field: Option<String>,
    #[command(flatten)]
    pub from_pub: FromPub,
    #[arg(long)]
    pub from_pub_field: Option<String>,
    /// The recipient's public key, written verbatim.
    #[arg(long, value_name = "B64U", required_unless_present_any = ["to_id", "to_pub_keyfile"])]
    pub to_pub_b64: Option<String>,
    /// A listing id: `to` becomes {"listing": ID}.
    #[arg(long, conflicts_with = "to_pub_b64")]
    pub to_id: Option<String>,
    /// The recipient's public key from a key file (wins over --to-id, as in ptool).
    #[arg(long, value_name = "PATH", conflicts_with = "to_pub_b64")]
    pub to_pub_keyfile: Option<PathBuf>,
    #[arg(long)]
    pub to_pub_field: Option<String>,
    /// The envelope file (base64url text) being receipted.
    #[arg(long)]
    pub envelope: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn receipt(a: ReceiptArgs) -> Result<(), Failure> {
    let key = key_bytes(&a.from_priv.b64, &a.from_priv.keyfile, &a.from_priv_field, KeyRole::SignPrivate)?;
    let key = sign_secret(&key).map_err(|e| Failure::error(e.to_string()))?;
    // `from`: the --from-pub-b64 text verbatim, or a key file's key re-encoded.
    let from = match (&a.from_pub.b64, &a.from_pub.keyfile) {
        (Some(t), _) => t.clone(),
        _ => b64u::encode(&key_bytes(&None, &a.from_pub.keyfile, &a.from_pub_field, KeyRole::SignPublic)?),
    };
    let to = if a.to_pub_b64.is_some() || a.to_pub_keyfile.is_some() {
        ReceiptTo::Key(match &a.to_pub_b64 {
            Some(t) => t.clone(),
            None => b64u::encode(&key_bytes(&None, &a.to_pub_keyfile, &a.to_pub_field, KeyRole::SignPublic)?),
        })
    } else {
        ReceiptTo::Listing(a.to_id.clone().ok_or_else(|| Failure::usage("one of --to-pub-b64, --to-id, --to-pub-keyfile is required"))?)
    };
    let env = b64u::decode(&read_text(&a.envelope)?).map_err(|e| Failure::error(e.to_string()))?;
    let r = Receipt::issue(&key, &from, to, &env, time::OffsetDateTime::now_utc()).map_err(|e| Failure::error(e.to_string()))?;
    write(&a.out, r.canonical(true).as_bytes())
}

#[derive(Args, Debug)]
pub struct ReceiptVerifyArgs {
    /// The receipt file.
    #[arg(long)]
    pub receipt: PathBuf,
    /// The envelope it must be for.
    #[arg(long)]
    pub envelope: PathBuf,
    /// The issuer it must come from (else any valid issuer is accepted and shown).
    #[arg(long, value_name = "B64U")]
    pub from_pub_b64: Option<String>,
}

pub fn receipt_verify(a: ReceiptVerifyArgs, out: &Output) -> Result<(), Failure> {
    let r = Receipt::parse(&read_text(&a.receipt)?).map_err(|e| Failure::error(e.to_string()))?;
    let env = b64u::decode(&read_text(&a.envelope)?).map_err(|e| Failure::error(e.to_string()))?;
    let issuer = match &a.from_pub_b64 {
        Some(t) => sign_public(&b64u::decode(t).map_err(|e| Failure::error(e.to_string()))?)
            .map_err(|e| Failure::error(e.to_string()))?,
        None => r.verify().map_err(|e| Failure::error(e.to_string()))?,
    };
    r.verify_for(&issuer, &env).map_err(|e| Failure::error(e.to_string()))?;
    if out.json {
        out.json_value(&json!({"valid": true, "from": r.from, "ts": r.ts}));
    } else {
        println!("valid receipt from {} at {}", r.from, r.ts);
    }
    Ok(())
}

// ---- conf -------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct ConfArgs {
    /// emercoin.conf to read (default ~/.emercoin/emercoin.conf).
    #[arg(long)]
    pub path: Option<PathBuf>,
}

pub fn conf(a: ConfArgs) -> Result<(), Failure> {
    let path = a.path.unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "~".into())).join(".emercoin/emercoin.conf")
    });
    let line = envelope::ptool_conf::ptool_conf(&path).map_err(|e| Failure::error(e.to_string()))?;
    print!("{line}");
    Ok(())
}
