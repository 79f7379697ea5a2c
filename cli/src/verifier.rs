//! `ness verifier sign|revoke`: the verifier's side of ENUMER trust.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ness_core::emercoin::PrivateKey;
use ness_core::enumer::registry;
use serde_json::json;

use crate::node::NodeArgs;
use crate::{Failure, Output};

#[derive(Subcommand, Debug)]
pub enum VerifierCommand {
    /// Sign an ENUM record name (enum:<digits>:<n>); prints the SIG= line to put in the record.
    Sign(SignArgs),
    /// Revoke a record's signature through the verifier's SRL.
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The record name, e.g. enum:15551234567:0 (only the name is signed).
    pub record: String,
    /// The verifier's NVS name.
    #[arg(long, default_value = "ver:enum")]
    pub verifier: String,
    /// Sign with this WIF key file (mode 0600) instead of the node's wallet.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    pub record: String,
    #[arg(long, default_value = "ver:enum")]
    pub verifier: String,
}

pub async fn run(cmd: VerifierCommand, node: &NodeArgs, out: &Output) -> Result<(), Failure> {
    match cmd {
        VerifierCommand::Sign(a) => sign(a, node, out).await,
        VerifierCommand::Revoke(a) => revoke(a, node, out).await,
    }
}

fn check_record_name(name: &str) -> Result<(), Failure> {
    if ness_core::enumer::parse_enumer_name(name).is_none() {
        return Err(Failure::usage(format!("{name:?} is not an ENUMER record name (enum:<digits>:<n>)")));
    }
    Ok(())
}

fn read_key(path: &PathBuf) -> Result<PrivateKey, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Failure::error(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Failure::error(format!(
            "{} is readable by group or others; refusing to use it (chmod 600)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Failure::error(format!("{}: {e}", path.display())))?;
    PrivateKey::from_wif(text.trim()).map(|(k, _)| k).map_err(|e| Failure::error(format!("{}: {e}", path.display())))
}

async fn sign(a: SignArgs, node: &NodeArgs, out: &Output) -> Result<(), Failure> {
    check_record_name(&a.record)?;
    let key = a.key_file.as_ref().map(read_key).transpose()?;
    let client = node.client().map_err(Failure::error)?;
    let line = registry::sign_as_verifier(&client, &a.verifier, &a.record, key.as_ref())
        .await
        .map_err(|e| Failure::error(e.to_string()))?;
    if out.json {
        out.json_value(&json!({"record": a.record, "verifier": a.verifier, "sig": line}));
    } else {
        println!("{line}");
    }
    Ok(())
}

async fn revoke(a: RevokeArgs, node: &NodeArgs, out: &Output) -> Result<(), Failure> {
    check_record_name(&a.record)?;
    let client = node.client().map_err(Failure::error)?;
    let (list, txid) =
        registry::revoke(&client, &a.verifier, &a.record).await.map_err(|e| Failure::error(e.to_string()))?;
    if out.json {
        out.json_value(&json!({"record": a.record, "srl_record": list, "txid": txid}));
    } else {
        println!("{} revoked in {list} (transaction {txid})", a.record);
    }
    Ok(())
}
