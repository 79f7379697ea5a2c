//! `ness`: the suite's command line: ENUM records and verifier signatures on
//! Emercoin NVS; keys, sealed envelopes, signatures and receipts (the privatenumer
//! ptool tools, one command each).

mod crypto;
mod enum_cmd;
mod inbox;
mod node;
mod verifier;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "ness", version, about = "Privateness PBX suite: ENUM on Emercoin NVS, sealed SMS, keys and receipts")]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    node: node::NodeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// ENUM records: lookup, register, list.
    #[command(subcommand)]
    Enum(enum_cmd::EnumCommand),
    /// Verifier signatures: sign, revoke.
    #[command(subcommand)]
    Verifier(verifier::VerifierCommand),
    /// Create a key file (X25519 + Ed25519, mode 0600).
    Keygen(crypto::KeygenArgs),
    /// Print the public keys of a key file.
    Pubkey(crypto::PubkeyArgs),
    /// Seal a file for a recipient (ptool_encrypt).
    Seal(crypto::SealArgs),
    /// Open a sealed envelope, v1 or v2 (ptool_decrypt).
    Open(crypto::OpenArgs),
    /// Sign a file's exact bytes with Ed25519 (ptool_sign).
    Sign(crypto::SignArgs),
    /// Check a signature; exit 0 if valid, 1 if not (ptool_verify).
    Verify(crypto::VerifyArgs),
    /// Issue a signed delivery receipt for an envelope (ptool_receipt).
    Receipt(crypto::ReceiptArgs),
    /// Check a receipt against its envelope and issuer.
    ReceiptVerify(crypto::ReceiptVerifyArgs),
    /// Print what ptool reads from an emercoin.conf (ptool_conf).
    Conf(crypto::ConfArgs),
    /// The renter's SMS inbox: serve deliveries, read messages.
    #[command(subcommand)]
    Inbox(inbox::InboxCommand),
}

/// How results are printed.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn json_value(&self, v: &serde_json::Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

/// A command's failure: the message, and the exit code (1 failure, 2 usage).
pub struct Failure {
    message: Option<String>,
    code: u8,
}

impl Failure {
    pub fn error(m: impl Into<String>) -> Self {
        Failure { message: Some(m.into()), code: 1 }
    }
    pub fn usage(m: impl Into<String>) -> Self {
        Failure { message: Some(m.into()), code: 2 }
    }
    /// A failure whose explanation is already in the JSON output.
    pub fn quiet_if(quiet: bool, m: impl Into<String>) -> Self {
        Failure { message: (!quiet).then(|| m.into()), code: 1 }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ness: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Enum(c) => enum_cmd::run(c, &cli.node, &out).await,
            Command::Verifier(c) => verifier::run(c, &cli.node, &out).await,
            Command::Keygen(a) => crypto::keygen(a, &out),
            Command::Pubkey(a) => crypto::pubkey(a, &out),
            Command::Seal(a) => crypto::seal(a),
            Command::Open(a) => crypto::open(a, &out),
            Command::Sign(a) => crypto::sign(a),
            Command::Verify(a) => crypto::verify(a, &out),
            Command::Receipt(a) => crypto::receipt(a),
            Command::ReceiptVerify(a) => crypto::receipt_verify(a, &out),
            Command::Conf(a) => crypto::conf(a),
            Command::Inbox(c) => inbox::run(c, &out).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if let Some(m) = f.message {
                eprintln!("ness: {m}");
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
