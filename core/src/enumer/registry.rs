//! Writing ENUM records: what registrars, verifiers and the HTTP register route do
//! on the node — build an ENUMER value, find the slot the resolver will read,
//! sign a record name as a verifier, revoke a signature through the verifier's SRL.

use crate::emercoin::{Address, MessageSignature, PrivateKey};
use crate::nvs::{NameValue, NvsClient, NvsError};

use super::e164::E164;
use super::trust::Srl;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Node(#[from] NvsError),
    #[error("{0}")]
    Invalid(String),
    #[error("verifier {0} has no live NVS record")]
    NoVerifier(String),
    #[error("verifier {name} is owned by {address}, which cannot sign messages (not P2PKH/P2WPKH)")]
    VerifierAddress { name: String, address: String },
    #[error("the key given does not own verifier {name} (owner {owner})")]
    WrongKey { name: String, owner: String },
    #[error("verifier {0} has no SRL= line, so it cannot revoke signatures")]
    NoSrl(String),
    #[error("every record slot of {number} up to :{last} is taken")]
    NoFreeSlot { number: E164, last: u32 },
}

/// Check that a URI can sit in a NAPTR regexp field: a scheme, printable ASCII, no
/// blanks (emcdns reads the regexp up to the first blank) and none of `! | " \`.
pub fn validate_uri(uri: &str) -> Result<(), String> {
    let scheme_end = uri.find(':').ok_or("it must start with a scheme such as sip:")?;
    let scheme = &uri[..scheme_end];
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !scheme_ok || scheme_end + 1 >= uri.len() {
        return Err("it must start with a scheme such as sip:".into());
    }
    if uri.len() > 512 {
        return Err("it is longer than 512 characters".into());
    }
    if let Some(c) = uri.chars().find(|c| !c.is_ascii_graphic() || "!|\"\\".contains(*c)) {
        return Err(format!("it contains {c:?}, which cannot be stored in a NAPTR record"));
    }
    Ok(())
}

/// The E2U lines for a primary URI and fallbacks: order 100, preferences 10, 20, …
/// (one order group: clients try them by preference).
pub fn e2u_lines_for_uris(uris: &[String]) -> Result<Vec<String>, String> {
    uris.iter()
        .enumerate()
        .map(|(i, u)| {
            validate_uri(u).map_err(|e| format!("{u:?}: {e}"))?;
            Ok(format!("E2U+sip=100|{}|!^.*$!{u}!", 10 * (i + 1)))
        })
        .collect()
}

/// Normalise a signature given as `SIG=ver:enum|<b64>` or `ver:enum|<b64>` into a
/// `SIG=` line, checking its form (not its validity: that needs the chain).
pub fn sig_line(sig: &str) -> Result<String, String> {
    let s = sig.trim();
    let s = s.strip_prefix("SIG=").unwrap_or(s);
    match s.split_once('|') {
        Some((verifier, b64)) if !verifier.trim().is_empty() && !verifier.contains(char::is_whitespace) => {
            MessageSignature::from_base64(b64).map_err(|e| format!("signature: {e}"))?;
            Ok(format!("SIG={}|{}", verifier.trim(), b64.trim()))
        }
        _ => Err("a signature looks like ver:enum|<base64 signature>".into()),
    }
}

/// The value of an ENUMER record from its lines.
pub fn enumer_value(e2u: &[String], sig: Option<&str>, ttl: Option<u32>) -> String {
    let mut lines: Vec<String> = e2u.to_vec();
    if let Some(t) = ttl {
        lines.push(format!("TTL={t}"));
    }
    lines.extend(sig.map(str::to_owned));
    lines.join("\n")
}

/// The first `enum:<digits>:<n>` that is free (missing, deleted or expired): where
/// the resolver's reading stops, so a record written there is read.
pub async fn free_slot(node: &NvsClient, number: &E164, max_records: u32) -> Result<u32, RegistryError> {
    for n in 0..max_records {
        match node.name_show_any(&number.enumer_name(n)).await? {
            None => return Ok(n),
            Some(e) if e.deleted || e.expires_in < 0 => return Ok(n),
            Some(_) => {}
        }
    }
    Err(RegistryError::NoFreeSlot { number: number.clone(), last: max_records.saturating_sub(1) })
}

/// Register a record with `name_new`; returns the txid.
pub async fn register(node: &NvsClient, name: &str, value: &str, days: i64) -> Result<String, RegistryError> {
    if value.len() > 20 * 1024 {
        return Err(RegistryError::Invalid(format!("the value is {} bytes; NVS allows 20480", value.len())));
    }
    Ok(node.name_new(name, &NameValue::from(value), days, None).await?)
}

/// The current owner of a verifier name.
pub async fn verifier_address(node: &NvsClient, verifier: &str) -> Result<Address, RegistryError> {
    let entry = node.name_show(verifier).await?.ok_or_else(|| RegistryError::NoVerifier(verifier.to_owned()))?;
    Address::parse(&entry.address)
        .ok()
        .filter(|a| a.kind != crate::emercoin::AddressKind::P2sh)
        .ok_or(RegistryError::VerifierAddress { name: verifier.to_owned(), address: entry.address })
}

/// Sign `record_name` as `verifier`: with the node's wallet (`signmessage` by the
/// address that owns the verifier name), or with a local key that must own it.
/// Returns the `SIG=` line.
pub async fn sign_as_verifier(
    node: &NvsClient,
    verifier: &str,
    record_name: &str,
    key: Option<&PrivateKey>,
) -> Result<String, RegistryError> {
    let owner = verifier_address(node, verifier).await?;
    let sig = match key {
        Some(k) => {
            if k.key_hash() != owner.hash {
                return Err(RegistryError::WrongKey { name: verifier.to_owned(), owner: owner.to_string() });
            }
            MessageSignature::sign(k, record_name.as_bytes()).to_base64()
        }
        None => node.sign_message(&owner.to_string(), record_name).await?,
    };
    Ok(format!("SIG={verifier}|{sig}"))
}

/// Revoke `record_name`'s signature by `verifier`: add the name to the SRL record of
/// its bucket (creating it if needed). Returns (SRL record name, txid).
pub async fn revoke(node: &NvsClient, verifier: &str, record_name: &str) -> Result<(String, String), RegistryError> {
    let entry = node.name_show(verifier).await?.ok_or_else(|| RegistryError::NoVerifier(verifier.to_owned()))?;
    let srl = Srl::from_verifier_value(&entry.value.to_string_lossy())
        .ok_or_else(|| RegistryError::NoSrl(verifier.to_owned()))?;
    let list = srl.record_name(record_name);
    let txid = match node.name_show(&list).await? {
        Some(existing) => {
            let old = existing.value.to_string_lossy();
            if old.contains(record_name) {
                return Err(RegistryError::Invalid(format!("{record_name} is already listed in {list}")));
            }
            let value = format!("{}\n{record_name}", old.trim_end());
            node.name_update(&list, &NameValue::from(value.as_str()), 0, Some(&entry.address)).await?
        }
        None => node.name_new(&list, &NameValue::from(record_name), 365, Some(&entry.address)).await?,
    };
    Ok((list, txid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_validation() {
        let lines = e2u_lines_for_uris(&["sip:a@b".into(), "sip:c@d".into()]).unwrap();
        assert_eq!(lines, vec!["E2U+sip=100|10|!^.*$!sip:a@b!", "E2U+sip=100|20|!^.*$!sip:c@d!"]);
        assert!(e2u_lines_for_uris(&["sip:a b@c".into()]).is_err());
        assert!(validate_uri("nocolon").is_err());
        assert!(validate_uri("sip:x|y").is_err());
        assert!(validate_uri("1sip:x").is_err());
        let v = enumer_value(&lines, Some("SIG=ver:enum|AAAA"), Some(60));
        let parsed = super::super::record::parse_enumer_value(&v);
        assert_eq!(parsed.naptrs.len(), 2);
        assert_eq!(parsed.ttl, Some(60));
        assert_eq!(parsed.signatures[0].verifier, "ver:enum");
        let sig = MessageSignature::sign(&PrivateKey::generate(), b"x").to_base64();
        assert_eq!(sig_line(&format!("ver:enum|{sig}")).unwrap(), format!("SIG=ver:enum|{sig}"));
        assert!(sig_line("ver:enum|nope").is_err());
        assert!(sig_line("nobar").is_err());
    }
}
